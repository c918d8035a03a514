import Foundation
import Models
import Testing

@testable import ISO20022

@Suite("Agency and lessor instruction files (JSON Lines)")
struct InstructionFileTests {
    static let header: JSON = [
        "kind": "agency:social-insurance", "batch_id": "B-2022-0042", "created_at": "2022-05-06T10:00:00.000+08:00",
        "total_fen": 1500,
    ]
    static let lines: [JSON] = [
        ["payment_id": "P-1", "uscc": "91310000MA1FL0XX1X", "months": ["2022-04", "2022-05"], "amount_fen": 1000],
        ["payment_id": "P-2", "name": "王记\n修车铺", "amount_fen": 500],
    ]

    @Test func writesAHeaderLineAndOneLinePerInstruction() throws {
        let text = try InstructionFile.text(lines: Self.lines, header: Self.header)
        let rows = text.split(separator: "\n")
        #expect(rows.count == 3)
        #expect(
            rows[0]
                == #"{"kind":"agency:social-insurance","batch_id":"B-2022-0042","count":2,"created_at":"2022-05-06T10:00:00.000+08:00","total_fen":1500}"#
        )
        let back = try InstructionFile.parse(text)
        #expect(back.kind == "agency:social-insurance")
        #expect(back.batchID == "B-2022-0042")
        #expect(back.lines == Self.lines)
    }

    @Test func writesAtomicallyAndIdempotently() throws {
        let dir = try Fixture.directory()
        let url = try InstructionFile.writeAtomically(lines: Self.lines, header: Self.header, name: "B-2022-0042.jsonl", to: dir)
        #expect(try Fixture.names(in: dir) == ["B-2022-0042.jsonl"])
        #expect(try InstructionFile.writeAtomically(lines: Self.lines, header: Self.header, name: "B-2022-0042.jsonl", to: dir) == url)
        #expect(throws: BatchError.fileConflict(path: url.path)) {
            try InstructionFile.writeAtomically(lines: Array(Self.lines.prefix(1)), header: Self.header, name: "B-2022-0042.jsonl", to: dir)
        }
        #expect(try InstructionFile.parse(String(contentsOf: url, encoding: .utf8)).lines.count == 2)
    }

    @Test func refusesABadHeader() {
        #expect(throws: BatchError.invalidInstructionFile("the header must be a JSON object")) {
            try InstructionFile.text(lines: [], header: "x")
        }
        #expect(throws: BatchError.invalidInstructionFile("the header needs a non-empty string \"batch_id\"")) {
            try InstructionFile.text(lines: [], header: ["kind": "lessor", "created_at": "2022-05-06T10:00:00+08:00"])
        }
        var wrongCount = Self.header.objectValue!
        wrongCount["count"] = 5
        #expect(throws: BatchError.invalidInstructionFile("the header declares count 5 but there are 2 lines")) {
            try InstructionFile.text(lines: Self.lines, header: .object(wrongCount))
        }
    }

    @Test func readingChecksTheCount() throws {
        let text = try InstructionFile.text(lines: Self.lines, header: Self.header)
        let truncated = text.split(separator: "\n").prefix(2).joined(separator: "\n") + "\n"
        #expect(throws: BatchError.invalidInstructionFile("the header declares count 2 but there are 1 lines")) {
            try InstructionFile.parse(truncated)
        }
        #expect(throws: BatchError.self) { try InstructionFile.parse(String(text.dropLast())) }
        #expect(throws: BatchError.self) { try InstructionFile.parse("") }
    }
}
