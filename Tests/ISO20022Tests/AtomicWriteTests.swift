import Foundation
import Models
import Synchronization
import Testing

@testable import ISO20022

@Suite("Atomic, idempotent outbox writes")
struct AtomicWriteTests {
    @Test func writesTheBatchUnderItsMessageIDAndLeavesNoTemporaryFile() throws {
        let dir = try Fixture.directory()
        let batch = Fixture.batch()
        let url = try Pain001.writeAtomically(batch, to: dir)
        #expect(url.lastPathComponent == "BF-20220506-0001.xml")
        #expect(try Fixture.names(in: dir) == ["BF-20220506-0001.xml"])
        let written = try String(contentsOf: url, encoding: .utf8)
        #expect(written == (try Pain001.xml(batch)))
    }

    @Test func rewritingIdenticalContentIsANoOp() throws {
        let dir = try Fixture.directory()
        let url = try Pain001.writeAtomically(Fixture.batch(), to: dir)
        let before = try FileManager.default.attributesOfItem(atPath: url.path)[.modificationDate] as? Date
        let again = try Pain001.writeAtomically(Fixture.batch(), to: dir)
        #expect(again == url)
        #expect(try FileManager.default.attributesOfItem(atPath: url.path)[.modificationDate] as? Date == before)
        #expect(try Fixture.names(in: dir) == ["BF-20220506-0001.xml"])
    }

    @Test func differentContentUnderTheSameNameThrowsAndKeepsTheFirstFile() throws {
        let dir = try Fixture.directory()
        let url = try Pain001.writeAtomically(Fixture.batch(), to: dir)
        let original = try Data(contentsOf: url)
        var changed = Fixture.batch()
        changed.payments[0].amountFen += 1
        #expect(throws: BatchError.fileConflict(path: url.path)) { try Pain001.writeAtomically(changed, to: dir) }
        #expect(try Data(contentsOf: url) == original)
        #expect(try Fixture.names(in: dir) == ["BF-20220506-0001.xml"])
    }

    @Test func aMissingDirectoryIsAnIOError() throws {
        let dir = try Fixture.directory().appendingPathComponent("missing")
        #expect {
            try Pain001.writeAtomically(Fixture.batch(), to: dir)
        } throws: { error in
            guard case .io = error as? BatchError else { return false }
            return true
        }
    }

    @Test func refusesUnsafeFileNames() throws {
        let dir = try Fixture.directory()
        for name in ["", ".hidden", "a/b", "../up", "名字.xml"] {
            #expect(throws: BatchError.self) { try AtomicFile.write([1, 2, 3], name: name, to: dir) }
        }
    }

    @Test func concurrentWritersOfTheSameFileAllSucceedAndDifferentContentLoses() async throws {
        let dir = try Fixture.directory()
        let outcomes = await withTaskGroup(of: String.self) { group in
            for k in 0..<16 {
                group.addTask {
                    let bytes = Array((k % 2 == 0 ? "same content\n" : "other content \(k)\n").utf8)
                    do {
                        _ = try AtomicFile.write(bytes, name: "race.txt", to: dir)
                        return "ok"
                    } catch {
                        return "conflict"
                    }
                }
            }
            var all: [String] = []
            for await o in group { all.append(o) }
            return all
        }
        #expect(try Fixture.names(in: dir) == ["race.txt"])
        let winner = try String(contentsOf: dir.appendingPathComponent("race.txt"), encoding: .utf8)
        // Everyone who wrote the winner's content succeeded; every other writer got a conflict.
        let expectedOK = winner == "same content\n" ? 8 : 1
        #expect(outcomes.filter { $0 == "ok" }.count == expectedOK)
    }

    @Test func aReaderNeverSeesAPartialFile() async throws {
        let dir = try Fixture.directory()
        let payments = (1...400).map { Fixture.transfer("PAY-\($0)", Int64($0) * 100) }
        let batches = (1...12).map { Fixture.batch("BF-BIG-\($0)", payments: payments) }
        let expected = try Dictionary(uniqueKeysWithValues: batches.map { ("\($0.messageID).xml", try Pain001.xml($0)) })
        let done = Atomic<Bool>(false)
        let reader = Task.detached { () -> Int in
            var checked = 0
            while !done.load(ordering: .acquiring) {
                for name in (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? [] where !name.hasPrefix(".") {
                    let text = try? String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)
                    #expect(text == expected[name], "\(name) was visible before it was complete")
                    checked += 1
                }
            }
            return checked
        }
        for b in batches { try Pain001.writeAtomically(b, to: dir) }
        done.store(true, ordering: .releasing)
        _ = await reader.value
        #expect(try Fixture.names(in: dir).count == 12)
    }
}
