import BangfuTesting
import Foundation
import GRDB
import ISO20022
import Logging
import ServiceKit
import Storage
import Synchronization
import Testing

@testable import Models
@testable import Payments

#if canImport(Glibc)
    import Glibc
#endif

/// Batch files and the outbox: a batch number is never reused for other content (a database
/// restored from an older backup), a file that could not be written is written later without
/// holding the others back, and a write counts only once it is on disk.
@Suite struct BatchFileSafetyTests {
    typealias R = PaymentsReviewTests

    /// Two merchants with verified accounts and approved cash payments (A, B) and a third
    /// merchant (C) with a verified account, on a pool of 1,000,000 fen, writing into `outbox`.
    static func world(outbox: String) throws -> EngineFixture {
        let f = try EngineFixture { $0.outboxDirectory = outbox }
        for (u, name, account) in [(R.a, "甲", "6222000000000001"), (R.b, "乙", "6222000000000002"), (R.c, "丙", "6222000000000003")] {
            try f.verified(u, name: name, account: account)
        }
        try f.fund(1_000_000, transfer: "f1")
        try f.approve(R.idA, uscc: R.a)
        try f.approve(R.idB, uscc: R.b)
        return f
    }

    static func temporaryOutbox() -> String { NSTemporaryDirectory() + "payments-outbox-\(UUID().uuidString)" }

    static func files(_ f: EngineFixture, _ outbox: String, calls: FileSystemCalls = .system) -> PendingFiles {
        PendingFiles(directory: outbox, database: f.database.db, logger: Logger(label: "test"), calls: calls)
    }

    static func batchRow(_ f: EngineFixture, _ id: String) throws -> Row? {
        try f.database.db.writer.read { db in
            try Row.fetchOne(db, sql: "SELECT written, refused FROM batches WHERE id = ?", arguments: [id])
        }
    }

    /// The payments database is restored from a backup taken before batch B000001 was made; the
    /// bank had already taken (and paid) BANGFU-B000001.xml, which the pickup agent moved into
    /// `sent/`. The restored service must not number a new batch B000001 (the same MsgId and
    /// file name, other content: "taken as sent" and never delivered) nor instruct A and B again
    /// (paid twice): every batch is refused, naming the file, until an operator deals with it.
    @Test func aRestoredDatabaseMakesNoBatchUnderANumberAFileInSentAlreadyHas() throws {
        let outbox = Self.temporaryOutbox()
        defer { try? FileManager.default.removeItem(atPath: outbox) }
        let fm = FileManager.default
        let original = try Self.world(outbox: outbox)
        let first = try #require(try original.write { db in try original.engine.batch(channel: "treasury", max: 2, db) })
        Self.files(original, outbox).flush()
        try fm.createDirectory(atPath: outbox + "/sent", withIntermediateDirectories: true)
        try fm.moveItem(atPath: outbox + "/\(first.name)", toPath: outbox + "/sent/\(first.name)")

        // The restored database (the backup before the batch); replay brings C's approval.
        let restored = try Self.world(outbox: outbox)
        restored.clock.advance(seconds: 3_600)
        try restored.approve(R.idC, uscc: R.c, extra: ["priority": true])
        let refused = try #require(throws: Rejection.self) {
            try restored.write { db in try restored.engine.batch(channel: "treasury", max: 2, db) }
        }
        #expect(refused.code == .invalidData)
        #expect(refused.message.hasPrefix("batch_numbering_blocked: sent/BANGFU-B000001.xml"), "\(refused.message)")
        #expect(refused.message.contains("highest batch (none)"), "\(refused.message)")
        #expect(try restored.database.db.writer.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM batches") } == 0)
        for id in [R.idA, R.idB, R.idC] { #expect(try restored.state(id) == .ready, "\(id) is not instructed again") }
        #expect(try fm.contentsOfDirectory(atPath: outbox).filter { $0.hasPrefix("BANGFU-") }.isEmpty, "no file written")
        let status = try Self.files(restored, outbox).status(now: restored.clock.now())
        #expect(status["batch_numbering_blocked"]?.stringValue?.contains("sent/BANGFU-B000001.xml") == true, "\(status)")
        // The original database (which knows B000001) numbers on.
        #expect(try Self.files(original, outbox).status(now: original.clock.now())["batch_numbering_blocked"] == nil)
        try original.approve(R.idC, uscc: R.c)
        #expect(try original.batch()?.batchID == "B000002")
    }

    /// The same with the file still in the outbox (not yet taken), an instruction file of another
    /// channel, and a file numbered two ahead: the lowest such file is named.
    @Test func aRestoredDatabaseMakesNoBatchUnderANumberAFileInTheOutboxAlreadyHas() throws {
        let outbox = Self.temporaryOutbox()
        defer { try? FileManager.default.removeItem(atPath: outbox) }
        let f = try Self.world(outbox: outbox)
        try FileManager.default.createDirectory(atPath: outbox + "/sent", withIntermediateDirectories: true)
        try "{}\n".write(toFile: outbox + "/sent/BANGFU-B000003-agency_si.jsonl", atomically: true, encoding: .utf8)
        try "<Document/>".write(toFile: outbox + "/BANGFU-B000002.xml", atomically: true, encoding: .utf8)
        try "other".write(toFile: outbox + "/README-B000009.txt", atomically: true, encoding: .utf8)
        #expect(BatchFiles.number("BANGFU-B000003-agency_si.jsonl") == 3)
        #expect(BatchFiles.number("BANGFU-B000002.xml") == 2)
        #expect(BatchFiles.number(".tmp-BANGFU-B000004.xml.1f") == nil)
        #expect(BatchFiles.number("BANGFU-B12.xml") == nil)
        let refused = try #require(throws: Rejection.self) { try f.batch() }
        #expect(
            refused.message.hasPrefix("batch_numbering_blocked: BANGFU-B000002.xml in the outbox is numbered above"), "\(refused.message)")
        #expect(try f.state(R.idA) == .ready)
    }

    /// A batch whose name is already in `sent/` with other content (the number used before, by a
    /// database this one does not know) is refused: never recorded written, not written, logged,
    /// counted in `status`. One with its own content there is recorded written, not written again.
    @Test func aFileOfTheBatchsNameInSentWithOtherContentRefusesTheBatch() throws {
        let outbox = Self.temporaryOutbox()
        defer { try? FileManager.default.removeItem(atPath: outbox) }
        let fm = FileManager.default
        let f = try Self.world(outbox: outbox)
        let batch = try #require(try f.write { db in try f.engine.batch(channel: "treasury", max: 1, db) })
        try fm.createDirectory(atPath: outbox + "/sent", withIntermediateDirectories: true)
        try "<Document>another batch</Document>".write(toFile: outbox + "/sent/\(batch.name)", atomically: true, encoding: .utf8)
        let files = Self.files(f, outbox)
        #expect(files.flush() == 0)
        let row = try Self.batchRow(f, batch.batchID)
        #expect(row?["written"] == false)
        let refused = try #require(row?["refused"] as String?)
        #expect(refused.contains("in sent/") && refused.contains("other content"), "\(refused)")
        #expect(!fm.fileExists(atPath: outbox + "/\(batch.name)"), "not written")
        #expect(try String(contentsOfFile: outbox + "/sent/\(batch.name)", encoding: .utf8) == "<Document>another batch</Document>")
        let status = try files.status(now: f.clock.now())
        #expect(status["refused_batches"]?.intValue == 1)
        #expect(status["unwritten_batches"]?.intValue == 0)

        // The next batch, whose own file the pickup agent already took (a crash before its record).
        let next = try #require(try f.write { db in try f.engine.batch(channel: "treasury", max: 1, db) })
        try Data(next.content.utf8).write(to: URL(fileURLWithPath: outbox + "/sent/\(next.name)"))
        files.flush()
        #expect(try Self.batchRow(f, next.batchID)?["written"] == true)
        #expect(!fm.fileExists(atPath: outbox + "/\(next.name)"), "not delivered twice")
    }

    /// A file of the batch's name already in the outbox with other content: the batch is refused
    /// (the file left as it is); with the batch's own content it is recorded written.
    @Test func aFileOfTheBatchsNameInTheOutboxWithOtherContentRefusesTheBatch() throws {
        let outbox = Self.temporaryOutbox()
        defer { try? FileManager.default.removeItem(atPath: outbox) }
        let f = try Self.world(outbox: outbox)
        let batch = try #require(try f.write { db in try f.engine.batch(channel: "treasury", max: 1, db) })
        try FileManager.default.createDirectory(atPath: outbox, withIntermediateDirectories: true)
        try "<Document>another batch</Document>".write(toFile: outbox + "/\(batch.name)", atomically: true, encoding: .utf8)
        let files = Self.files(f, outbox)
        files.flush()
        let row = try Self.batchRow(f, batch.batchID)
        #expect(row?["written"] == false)
        #expect((row?["refused"] as String?)?.contains("in the outbox with other content") == true)
        #expect(try String(contentsOfFile: outbox + "/\(batch.name)", encoding: .utf8) == "<Document>another batch</Document>")

        let next = try #require(try f.write { db in try f.engine.batch(channel: "treasury", max: 1, db) })
        try Data(next.content.utf8).write(to: URL(fileURLWithPath: outbox + "/\(next.name)"))
        files.flush()
        #expect(try Self.batchRow(f, next.batchID)?["written"] == true)
        #expect(try String(contentsOfFile: outbox + "/\(next.name)", encoding: .utf8) == next.content)
    }

    /// A batch whose file cannot be written now (here its name is taken by a directory) stays
    /// unwritten — counted in `status` with its age and error — without keeping the next batch
    /// from being written, and is written by a later retry once the cause is gone.
    @Test func aBatchFileThatFailsIsRetriedAndDoesNotHoldTheOthersBack() throws {
        let outbox = Self.temporaryOutbox()
        defer { try? FileManager.default.removeItem(atPath: outbox) }
        let fm = FileManager.default
        let f = try Self.world(outbox: outbox)
        let first = try #require(try f.write { db in try f.engine.batch(channel: "treasury", max: 1, db) })
        let second = try #require(try f.write { db in try f.engine.batch(channel: "treasury", max: 1, db) })
        try fm.createDirectory(atPath: outbox + "/BANGFU-B000001.xml", withIntermediateDirectories: true)
        let files = Self.files(f, outbox)
        #expect(files.flush() == 1)
        #expect(try Self.batchRow(f, first.batchID)?["written"] == false)
        #expect(try Self.batchRow(f, second.batchID)?["written"] == true, "the failed batch does not hold the next one back")
        #expect(try String(contentsOfFile: outbox + "/\(second.name)", encoding: .utf8) == second.content)
        f.clock.advance(seconds: 90)
        let status = try files.status(now: f.clock.now())
        #expect(status["unwritten_batches"]?.intValue == 1)
        #expect(status["unwritten_oldest_batch"]?.stringValue == "B000001")
        #expect(status["unwritten_oldest_age_s"]?.intValue == 90)
        #expect(status["unwritten_last_error"]?.stringValue?.contains("BANGFU-B000001.xml") == true, "\(status)")

        try fm.removeItem(atPath: outbox + "/BANGFU-B000001.xml")
        files.retryUnwritten()
        #expect(try Self.batchRow(f, first.batchID)?["written"] == true)
        #expect(try String(contentsOfFile: outbox + "/\(first.name)", encoding: .utf8) == first.content)
        let after = try files.status(now: f.clock.now())
        #expect(after["unwritten_batches"]?.intValue == 0)
        #expect(after["unwritten_oldest_batch"] == nil && after["unwritten_last_error"] == nil)
    }

    /// A disk that refuses `fsync` (of the file, or of the directory after the link) is a failed
    /// write: the batch stays unwritten and is written at a later try once `fsync` works.
    @Test func aFailedFsyncIsAFailedWriteRetriedLater() throws {
        let outbox = Self.temporaryOutbox()
        defer { try? FileManager.default.removeItem(atPath: outbox) }
        let fm = FileManager.default
        let f = try Self.world(outbox: outbox)
        let batch = try #require(try f.write { db in try f.engine.batch(channel: "treasury", max: 1, db) })
        // Which path fails: the file (its temporary name), then the directory.
        let failing = Mutex<String?>(".tmp-")
        let calls = FileSystemCalls(fsync: { fd, path in
            if let part = failing.withLock({ $0 }), (path as NSString).lastPathComponent.hasPrefix(part) || path == part {
                errno = EIO
                return -1
            }
            return fsync(fd)
        })
        let files = Self.files(f, outbox, calls: calls)
        #expect(files.flush() == 1)
        #expect(try Self.batchRow(f, batch.batchID)?["written"] == false)
        #expect(!fm.fileExists(atPath: outbox + "/\(batch.name)"), "a file whose fsync failed is not put in place")
        #expect(try fm.contentsOfDirectory(atPath: outbox).filter { $0.hasPrefix(".tmp-") }.isEmpty, "no temporary file left")
        #expect(try files.status(now: f.clock.now())["unwritten_last_error"]?.stringValue?.contains("fsync") == true)

        failing.withLock { $0 = outbox }  // the directory's fsync fails after the link
        #expect(files.flush() == 1)
        #expect(try Self.batchRow(f, batch.batchID)?["written"] == false, "not recorded written until the directory is on disk")

        failing.withLock { $0 = nil }
        #expect(files.flush() == 0)
        #expect(try Self.batchRow(f, batch.batchID)?["written"] == true)
        #expect(try String(contentsOfFile: outbox + "/\(batch.name)", encoding: .utf8) == batch.content)
    }

    /// The running service writes a batch file that failed as soon as it can — at a tick of its
    /// loop, with no further command — and `status` shows it waiting meanwhile.
    @Test func theServiceWritesAFailedBatchFileAtALaterTick() async throws {
        let h = try Harness()
        let payments = try await h.startPayments()
        let outbox = h.directory + "/payments/outbox"
        let fm = FileManager.default
        // The batch's name is taken (by a directory): its file cannot be written.
        try fm.createDirectory(atPath: outbox + "/BANGFU-B000001-agency_si.jsonl", withIntermediateDirectories: true)
        // The batch, decided beside the service on its database (its engine numbers against an
        // empty outbox of its own), as a payments.batch command would.
        let database = try PaymentsDatabase(stateDir: h.directory + "/payments")
        let clock = TestClock(rfc3339: "2022-04-01T09:00:00+08:00")
        let audit = AuditChain(clock: clock)
        let engine = PaymentsEngine(
            ledger: Ledger(clock: clock, audit: audit), audit: audit, outbox: Outbox(source: PaymentsEngine.source, clock: clock),
            clock: clock, settings: PaymentsSettings(outboxDirectory: h.directory + "/elsewhere", inboxDirectory: h.directory + "/in"),
            logger: Logger(label: "test"))
        let batch = try await database.db.writer.write { db -> PendingFile? in
            try engine.profiled(["uscc": .string(R.a), "name": "甲", "kind": "enterprise", "status": "active"], db)
            try engine.approved(
                [
                    "entitlement_id": .string(R.idA), "policy_id": "si", "uscc": .string(R.a), "amount_fen": 1_000,
                    "benefit": "deferral", "channel": "agency:si", "binding": "merchant",
                ], sequence: 1, db)
            return try engine.batch(channel: "agency:si", db)
        }
        let name = try #require(batch?.name)
        #expect(name == "BANGFU-B000001-agency_si.jsonl")
        let deadline = ContinuousClock.now + .seconds(30)
        var status = try await payments.query(["op": "status"])
        while status["unwritten_last_error"] == nil && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
            status = try await payments.query(["op": "status"])
        }
        #expect(status["unwritten_batches"]?.intValue == 1, "\(status)")
        #expect(status["unwritten_oldest_batch"]?.stringValue == "B000001")
        #expect(status["unwritten_last_error"]?.stringValue != nil)

        try fm.removeItem(atPath: outbox + "/BANGFU-B000001-agency_si.jsonl")
        while !fm.fileExists(atPath: outbox + "/" + name) && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(try String(contentsOfFile: outbox + "/" + name, encoding: .utf8) == batch?.content)
        status = try await payments.query(["op": "status"])
        #expect(status["unwritten_batches"]?.intValue == 0, "\(status)")
        await h.shutdown()
    }
}
