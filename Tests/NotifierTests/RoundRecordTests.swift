import BangfuTesting
import Foundation
import GRDB
import Models
import Testing

@testable import Notifier

/// The record of a disclosure round (公示): written once, from the outcomes saved at the close —
/// never rewritten when the entitlements move on — and a record that cannot be written stops
/// nothing else.
@Suite("Disclosure round records")
struct RoundRecordTests {
    typealias T = NotificationTextTests

    /// Two entitlements disclosed in one round; the round closes with one cleared and one still
    /// under objection. Returns the round's id.
    static func closeARound(_ database: NotifierDatabase, _ engine: NotifierEngine, clock: TestClock) throws -> String {
        try database.db.writer.write { db in
            var enrolled: [(String, String, Int)] = []
            for id in ["ent-a", "ent-b"] {
                let e = try #require(
                    try engine.entitlement(
                        T.entitlementEvent("entitlement.proposed", id: id, extra: ["disclosure": ["working_days": 5]]), db))
                enrolled.append((e.0, e.1, e.2))
            }
            try engine.notifyDisclosure(try engine.disclosure.enrol(enrolled, db), db)
            try NotifierApplier(engine: engine, channels: []).apply(
                .objection(entitlementID: "ent-b", reason: "怀疑", contact: nil),
                event: CloudEvent(id: "o1", source: "/public/board", type: "objection.filed", data: [:]), db: db)
        }
        clock.advance(seconds: 10 * 86_400)
        try database.db.writer.write { db in _ = try engine.disclosure.closeDue(db) }
        return try database.db.writer.read { db in try String.fetchOne(db, sql: "SELECT id FROM rounds") ?? "" }
    }

    @Test func aRoundsRecordIsItsCloseAndIsWrittenOnce() throws {
        let (dir, database, engine) = try T.makeEngine()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let clock = try #require(engine.clock as? TestClock)
        let round = try Self.closeARound(database, engine, clock: clock)
        let reports = dir + "/reports"
        let written = try RoundArchive.archiveClosed(
            database: database.db, reportsDirectory: reports, board: BoardConfig(), districts: DistrictNames(), now: "t1")
        #expect(written == [round])
        let path = reports + "/disclosures/\(round).csv"
        let first = try #require(FileManager.default.contents(atPath: path))
        let text = String(decoding: first.dropFirst(3), as: UTF8.self)
        #expect(text.contains("无异议") && text.contains("有异议待处理"), "\(text)")
        #expect(!text.contains("已拨付（元）"), "no payment column in a record of the disclosure")
        let sum = try String(contentsOfFile: path + ".sha256", encoding: .utf8)
        #expect(sum == "\(SHA256.hash([UInt8](first)).hexString)  \(round).csv\n")

        // Later the objection is upheld and a is paid: the record stays as the round closed.
        try database.db.writer.write { db in
            try NotifierApplier(engine: engine, channels: []).apply(
                .resolve(entitlementID: "ent-b", upheld: true, by: "区人社局", note: nil),
                event: CloudEvent(id: "o2", source: "/ops/test", type: "objection.resolved", data: [:]), db: db)
            _ = try engine.entitlement(T.entitlementEvent("entitlement.paid", id: "ent-a"), db)
        }
        #expect(
            try RoundArchive.archiveClosed(
                database: database.db, reportsDirectory: reports, board: BoardConfig(), districts: DistrictNames(), now: "t2"
            ).isEmpty)
        #expect(FileManager.default.contents(atPath: path) == first)

        // A crash after the file but before the round was marked: the file is kept as it was.
        try database.db.writer.write { db in try db.execute(sql: "UPDATE rounds SET archived_at = NULL") }
        #expect(
            try RoundArchive.archiveClosed(
                database: database.db, reportsDirectory: reports, board: BoardConfig(), districts: DistrictNames(), now: "t3") == [round])
        #expect(FileManager.default.contents(atPath: path) == first, "never replaced")
        #expect(try String(contentsOfFile: path + ".sha256", encoding: .utf8) == sum)
    }

    /// A `reports-dir` that cannot be written (a file where the folder should be) fails the record
    /// with an error (the worker logs it and tries again a minute later, apart from its other
    /// work) and leaves the round to be recorded.
    @Test func aRecordThatCannotBeWrittenIsTriedAgain() throws {
        let (dir, database, engine) = try T.makeEngine()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let clock = try #require(engine.clock as? TestClock)
        _ = try Self.closeARound(database, engine, clock: clock)
        let blocked = dir + "/not-a-folder"
        try Data("x".utf8).write(to: URL(fileURLWithPath: blocked))
        #expect(throws: (any Error).self) {
            try RoundArchive.archiveClosed(
                database: database.db, reportsDirectory: blocked, board: BoardConfig(), districts: DistrictNames(), now: "t1")
        }
        let pending = try database.db.writer.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM rounds WHERE archived_at IS NULL") ?? 0
        }
        #expect(pending == 1, "tried again later")
        let round = try database.db.writer.read { db in try String.fetchOne(db, sql: "SELECT id FROM rounds") ?? "" }
        #expect(
            try RoundArchive.archiveClosed(
                database: database.db, reportsDirectory: dir + "/reports", board: BoardConfig(), districts: DistrictNames(), now: "t2")
                == [round])
    }
}
