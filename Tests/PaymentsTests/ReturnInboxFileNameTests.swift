import Foundation
import GRDB
import ISO20022
import Logging
import ServiceKit
import Storage
import Testing

@testable import Models
@testable import Payments

/// A bank that drops its return files under a reused name (`camt054.xml` every day): each file
/// leaves the inbox once, under a name of its own when its name is taken, and a bad one is
/// quarantined once — not again at every scan (once a second).
@Suite struct ReturnInboxFileNameTests {
    static func inbox(_ f: EngineFixture) -> ReturnInbox {
        ReturnInbox(
            directory: f.engine.settings.inboxDirectory, database: f.database.db, engine: f.engine, handle: ServiceHandle(),
            logger: Logger(label: "test"))
    }

    static func quarantineRows(_ f: EngineFixture) throws -> Int {
        try f.database.db.writer.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM bus_quarantine") ?? 0 }
    }

    @Test func aBadReturnFileWithAReusedNameIsQuarantinedOnceNotEverySecond() throws {
        let f = try EngineFixture()
        let inbox = f.engine.settings.inboxDirectory
        let fm = FileManager.default
        try fm.createDirectory(atPath: inbox + "/quarantined", withIntermediateDirectories: true)
        try "<Document>yesterday</Document>".write(toFile: inbox + "/quarantined/camt054.xml", atomically: true, encoding: .utf8)
        try "<Document>not a return</Document>".write(toFile: inbox + "/camt054.xml", atomically: true, encoding: .utf8)
        let returns = Self.inbox(f)
        defer {
            returns.timer.resume()
            returns.stop()
        }
        for _ in 0..<5 { returns.scan() }
        #expect(try Self.quarantineRows(f) == 1)
        #expect(!fm.fileExists(atPath: inbox + "/camt054.xml"), "moved out of the inbox")
        let kept = try fm.contentsOfDirectory(atPath: inbox + "/quarantined").sorted()
        #expect(kept.count == 2, "\(kept)")
        #expect(try String(contentsOfFile: inbox + "/quarantined/camt054.xml", encoding: .utf8) == "<Document>yesterday</Document>")
        let moved = try #require(kept.first { $0 != "camt054.xml" })
        #expect(moved.hasPrefix("camt054.") && moved.hasSuffix(".xml"), "\(moved)")
        #expect(try String(contentsOfFile: inbox + "/quarantined/" + moved, encoding: .utf8) == "<Document>not a return</Document>")

        // The same bad file dropped again: moved out under yet another name, no second row.
        try "<Document>not a return</Document>".write(toFile: inbox + "/camt054.xml", atomically: true, encoding: .utf8)
        returns.scan()
        returns.scan()
        #expect(try Self.quarantineRows(f) == 1)
        #expect(!fm.fileExists(atPath: inbox + "/camt054.xml"))
        #expect(try fm.contentsOfDirectory(atPath: inbox + "/quarantined").count == 3)
        // Another bad file under that name is a quarantine row of its own.
        try "<Document>another bad one</Document>".write(toFile: inbox + "/camt054.xml", atomically: true, encoding: .utf8)
        returns.scan()
        #expect(try Self.quarantineRows(f) == 2)
        #expect(!fm.fileExists(atPath: inbox + "/camt054.xml"))
    }

    /// A good return under a name already in `processed/` is applied once and moved out too.
    @Test func aGoodReturnFileWithAReusedNameLeavesTheInbox() throws {
        let f = try EngineFixture()
        let inbox = f.engine.settings.inboxDirectory
        let fm = FileManager.default
        try fm.createDirectory(atPath: inbox + "/processed", withIntermediateDirectories: true)
        try "<Document>yesterday</Document>".write(toFile: inbox + "/processed/camt054.xml", atomically: true, encoding: .utf8)
        // A line for a payment this router never made: applied as one anomaly.
        let camt = Camt054.xml(
            messageID: "CAMT-1", accountNumber: "0000000000000000",
            lines: [ReturnLine(endToEndID: "UNKNOWN0001", status: .settled, amountFen: 100)])
        try camt.write(toFile: inbox + "/camt054.xml", atomically: true, encoding: .utf8)
        let returns = Self.inbox(f)
        defer {
            returns.timer.resume()
            returns.stop()
        }
        returns.scan()
        returns.scan()
        #expect(!fm.fileExists(atPath: inbox + "/camt054.xml"))
        #expect(try fm.contentsOfDirectory(atPath: inbox + "/processed").count == 2)
        #expect(try Self.quarantineRows(f) == 0)
        #expect(try f.anomalies().count == 1)
    }
}
