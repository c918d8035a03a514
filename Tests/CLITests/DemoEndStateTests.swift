import Foundation
import Models
import Testing

@testable import BangfuCLI

/// The crash proof compares end states; these are the checks each end state must pass on its
/// own, fed with files that break them on purpose.
@Suite("Demo end state")
struct DemoEndStateTests {
    func directory() throws -> String {
        let dir = NSTemporaryDirectory() + "bangfu-endstate-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    func instructions(_ batch: String, _ ids: [String]) -> String {
        let header: JSON = ["kind": "agency:utilities", "batch_id": .string(batch), "count": .int(Int64(ids.count))]
        return ([header.serialized()] + ids.map { (["payment_id": .string($0), "amount_fen": 0] as JSON).serialized() })
            .joined(separator: "\n") + "\n"
    }

    @Test func aPaymentInTwoFilesIsAProblemAndEveryFileIsDigested() throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try instructions("B000001", ["ent-a", "ent-b"]).write(
            toFile: dir + "/BANGFU-B000001-agency.jsonl", atomically: true, encoding: .utf8)
        try instructions("B000002", ["ent-c"]).write(toFile: dir + "/BANGFU-B000002-agency.jsonl", atomically: true, encoding: .utf8)
        var clean = DemoEndState()
        clean.checkPaymentFiles(dir)
        #expect(clean.problems.isEmpty)
        #expect(clean.lines.filter { $0.hasPrefix("file\t") }.count == 2)
        #expect(clean.lines.allSatisfy { $0.split(separator: "\t").last?.count == 64 }, "a SHA-256 per file")

        try instructions("B000003", ["ent-d", "ent-b"]).write(
            toFile: dir + "/BANGFU-B000003-agency.jsonl", atomically: true, encoding: .utf8)
        var twice = DemoEndState()
        twice.checkPaymentFiles(dir)
        #expect(twice.problems == ["payment ent-b is in both BANGFU-B000001-agency.jsonl and BANGFU-B000003-agency.jsonl"])
    }

    @Test func aNotificationWrittenTwiceIsAProblemAndKindsAreCounted() throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/notifications.jsonl"
        let lines: [JSON] = [
            ["key": "k1", "kind": "approved"], ["key": "k2", "kind": "approved"], ["key": "k3", "kind": "paid"],
        ]
        try (lines.map { $0.serialized() }.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        var once = DemoEndState()
        once.checkNotificationFile(path)
        #expect(once.problems.isEmpty)
        #expect(Set(once.lines) == ["notified\tapproved\t2", "notified\tpaid\t1"])

        try ((lines + [["key": "k2", "kind": "approved"]]).map { $0.serialized() }.joined(separator: "\n") + "\n")
            .write(toFile: path, atomically: true, encoding: .utf8)
        var twice = DemoEndState()
        twice.checkNotificationFile(path)
        #expect(twice.problems == ["notification k2 written twice"])
    }

    @Test func profilesCompareWithoutTheirSaltedFingerprints() throws {
        let a: JSON = [
            "uscc": "x", "fingerprint": "aaa", "contact": ["phone_fingerprint": "bbb", "phone": "138****0000"],
            "leases": [["id_fingerprint": "c"]],
        ]
        let b: JSON = [
            "uscc": "x", "fingerprint": "zzz", "contact": ["phone_fingerprint": "yyy", "phone": "138****0000"],
            "leases": [["id_fingerprint": "w"]],
        ]
        let c: JSON = [
            "uscc": "x", "fingerprint": "zzz", "contact": ["phone_fingerprint": "yyy", "phone": "139****0000"],
            "leases": [["id_fingerprint": "w"]],
        ]
        #expect(DemoEndState.unsalted(a) == DemoEndState.unsalted(b))
        #expect(DemoEndState.unsalted(a) != DemoEndState.unsalted(c), "anything but a fingerprint still counts")
    }
}
