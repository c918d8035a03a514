import Bus
import Foundation
import GRDB
import ISO20022
import Logging
import Models
import ServiceKit
import Storage
import Synchronization

/// A validated payments command.
public enum PaymentsCommand: Sendable {
    case fund(pool: String, source: String, amountFen: Int64)
    case bankReturned(ReturnFile, returnID: String)
    /// `lessor.confirmed` (`lessor`) or `agency.confirmed` (`agency`), naming the payment or
    /// (lessor) the lease.
    /// `reversal`: the confirmation is of the payment's cancellation or reversal (`Reversals.swift`).
    case confirmed(by: String, paymentID: String?, lease: String?, policyID: String?, ok: Bool, method: String?, reversal: Bool)
    case recovered(paymentID: String, amountFen: Int64)
    case releaseHold(paymentID: String, by: String, reason: String)
    case rejectHold(paymentID: String, by: String, reason: String)
    case batch(channel: String, max: Int?)
    case resume(channel: String)
}

/// The payment router's intake (DESIGN §4): pool funding, bank returns, confirmations,
/// recoveries, and the operator's hold and batch commands.
struct PaymentsApplier: IntakeApplier {
    typealias Command = PaymentsCommand
    let acceptedTypes: Set<String> = [
        "pool.funded", "bank.returned", "lessor.confirmed", "agency.confirmed", "clawback.recovered", "hold.released", "hold.rejected",
        "payments.batch", "channel.resumed",
    ]
    let refusesWhileApplying = true
    let engine: PaymentsEngine

    func validate(_ event: CloudEvent) throws(Rejection) -> PaymentsCommand {
        guard case .object(let d)? = event.data else { throw Rejection(.invalidData, field: "data", "data must be an object") }
        func string(_ k: String) throws(Rejection) -> String {
            guard let s = d[k]?.stringValue, !s.isEmpty else { throw Rejection(.invalidData, field: "data.\(k)", "\(k) is required") }
            return s
        }
        func fen(_ k: String) throws(Rejection) -> Int64 {
            guard let v = d[k] else { throw Rejection(.invalidData, field: "data.\(k)", "\(k) is required") }
            guard case .int(let n) = v, n > 0, n <= 1_000_000_000_000_000 else {
                throw Rejection(.invalidAmount, field: "data.\(k)", "\(k) must be a positive whole number of fen")
            }
            return n
        }
        switch event.type {
        case "pool.funded":
            let source = try string("source")
            guard ["central", "special_bond", "local"].contains(source) else {
                throw Rejection(.invalidData, field: "data.source", "source must be central, special_bond or local")
            }
            return .fund(pool: try string("pool"), source: source, amountFen: try fen("amount_fen"))
        case "bank.returned":
            let xml = try string("file")
            let parsed: ReturnFile
            do {
                parsed = try ReturnParser.parse(xml)
            } catch {
                throw Rejection(.invalidData, field: "data.file", "not a readable pain.002 or camt.054 file: \(error)")
            }
            do {
                try parsed.checkTotals()
            } catch {
                throw Rejection(.invalidAmount, field: "data.file", "the return's control totals disagree with its lines: \(error)")
            }
            return .bankReturned(parsed, returnID: d["return_id"]?.stringValue ?? parsed.messageID)
        case "lessor.confirmed", "agency.confirmed":
            // DESIGN §4: `lessor.confirmed (lease, method: refund|offset|extension)`. The event is
            // the confirmation: without `ok` it confirms; `ok` is a JSON bool when present.
            let lessor = event.type == "lessor.confirmed"
            func optionalString(_ k: String) throws(Rejection) -> String? {
                guard let v = d[k] else { return nil }
                guard let s = v.stringValue, !s.isEmpty else {
                    throw Rejection(.invalidData, field: "data.\(k)", "\(k) must be a non-empty string")
                }
                return s
            }
            var ok = true
            if let v = d["ok"] {
                guard case .bool(let b) = v else { throw Rejection(.invalidData, field: "data.ok", "ok must be true or false") }
                ok = b
            }
            let paymentID = try optionalString("payment_id")
            let lease = lessor ? try optionalString("lease") : nil
            guard paymentID != nil || lease != nil else {
                throw Rejection(
                    .invalidData, field: lessor ? "data.lease" : "data.payment_id",
                    lessor ? "lease (or payment_id) is required" : "payment_id is required")
            }
            var reversal = false
            if let v = d["reversal"] {
                guard case .bool(let b) = v else {
                    throw Rejection(.invalidData, field: "data.reversal", "reversal must be true or false")
                }
                reversal = b
            }
            let method = try optionalString("method")
            if reversal {
                // A cancellation or reversal: done as told, whichever it turned out to be.
                if let method, !["cancelled", "reversed"].contains(method) {
                    throw Rejection(.invalidData, field: "data.method", "a reversal's method must be cancelled or reversed")
                }
            } else if lessor {
                guard let method, ["refund", "offset", "extension"].contains(method) else {
                    throw Rejection(.invalidData, field: "data.method", "method must be refund, offset or extension")
                }
            }
            let policyID = lessor ? try optionalString("policy_id") : nil
            return .confirmed(
                by: lessor ? "lessor" : "agency", paymentID: paymentID, lease: lease, policyID: policyID, ok: ok, method: method,
                reversal: reversal)
        case "clawback.recovered":
            return .recovered(paymentID: try string("payment_id"), amountFen: try fen("amount_fen"))
        case "hold.released":
            return .releaseHold(paymentID: try string("payment_id"), by: try string("by"), reason: try string("reason"))
        case "hold.rejected":
            return .rejectHold(paymentID: try string("payment_id"), by: try string("by"), reason: try string("reason"))
        case "payments.batch":
            var max: Int?
            if let m = d["max"], !m.isNull {
                guard let n = m.intValue, n >= 1, n <= 1_000_000 else {
                    throw Rejection(.invalidData, field: "data.max", "max must be a whole number of payments from 1 to 1,000,000")
                }
                max = Int(n)
            }
            return .batch(channel: try Self.channel(try string("channel")), max: max)
        case "channel.resumed":
            return .resume(channel: try Self.channel(try string("channel")))
        default:
            throw Rejection(.unknownType, field: "type", "this service takes no events of type \(event.type)")
        }
    }

    /// A channel name as the policies give it: `treasury`, `lessor` or `agency:<name>`
    /// (`invalid_data` for anything else, which would otherwise be taken and do nothing).
    static func channel(_ name: String) throws(Rejection) -> String {
        if Channel.isValid(name) { return name }
        throw Rejection(
            .invalidData, field: "data.channel",
            "channel must be treasury, lessor or agency:<name> (1-40 of a-z 0-9 - _), got \(name.prefix(60))")
    }

    func apply(_ command: PaymentsCommand, event: CloudEvent, db: Database) throws {
        _ = try applyNoting(command, event: event, db: db)
    }

    /// `apply`, with a note for the ack when a confirmation changed nothing (the payment was no
    /// longer awaiting one: already settled, failed, …).
    func applyNoting(_ command: PaymentsCommand, event: CloudEvent, db: Database) throws -> String? {
        engine.touchedPools.clear()
        var note: String?
        do {
            switch command {
            case .fund(let pool, let source, let amount):
                try engine.fund(pool: pool, source: source, amountFen: amount, transferID: "fund/\(event.source)/\(event.id)", db)
            case .bankReturned(let file, let id):
                _ = try engine.applyReturn(file, returnID: id, db)
            case .confirmed(let by, let id, let lease, let policyID, let ok, let method, let reversal):
                note = try engine.confirmed(
                    by: by, paymentID: id, lease: lease, policyID: policyID, ok: ok, method: method, reversal: reversal,
                    source: event.source, db)
            case .recovered(let id, let amount):
                try engine.recovered(paymentID: id, amountFen: amount, transferID: "recovered/\(event.source)/\(event.id)", db)
            case .releaseHold(let id, let by, let reason):
                try engine.releaseHold(id: id, by: by, reason: reason, db)
            case .rejectHold(let id, let by, let reason):
                try engine.rejectHold(id: id, by: by, reason: reason, db)
            case .batch(let channel, let max):
                _ = try engine.escalateOverdue(db)
                // Written by `PendingFiles.flush` after the commit.
                _ = try engine.batch(channel: channel, max: max, commandID: event.id, db)
            case .resume(let channel):
                try engine.resume(channel: channel, db)
            }
            try engine.releaseTouchedPools(db)
        } catch let e as LedgerError {
            // SQLite failed inside the ledger: the command is retried, never quarantined.
            if e.code == .database { throw e }
            throw Rejection(e.code == .insufficientFunds ? .invalidAmount : .invalidData, e.message)
        } catch let e as BatchError {
            // A batch that cannot be written is refused (and quarantined), never a failed group
            // retried forever; the payments stay ready (`batch` holds the ones it can tell apart).
            throw Rejection(.invalidData, field: "data.channel", "the batch file cannot be written: \(e)")
        }
        return note
    }
}

/// Batch files decided inside a transaction and written after it commits (atomically, temp +
/// link, every step checked: `InstructionFiles`). A batch whose file could not be written stays
/// unwritten and is tried again after every commit and at every tick of the node's loop (once a
/// second), each batch on its own: one that fails never keeps the others from being written.
/// A crash never loses a file: the content is stored with the batch. A file is written only if
/// its content has the SHA-256 recorded in the batch's `batch.created` audit entry.
///
/// A file of the batch's name already in the outbox or in `<outbox>/sent/` (where the pickup
/// agent moves what it takes) is the batch's own only if its SHA-256 is the batch's: then it
/// is not written again (a crash between the write and its record). With other content the
/// batch number was used before for another batch — by a database this one does not know,
/// restored from an older backup — and the batch is refused (never recorded written), logged
/// at critical level and counted in `status`.
final class PendingFiles: Sendable {
    let directory: String
    let database: ServiceDatabase
    let logger: Logger
    let calls: FileSystemCalls
    /// One flush at a time (after a commit, at start, at a tick).
    private let flushing = Mutex(())
    /// Why each batch still unwritten failed last (read by `status`).
    private let failures = Mutex<[String: WriteFailure]>([:])

    struct WriteFailure: Sendable {
        var error: String
        var attempts: Int
        var lastLogged: ContinuousClock.Instant
    }

    enum Outcome {
        case written
        case alreadyThere(String)
        case refused(String)
    }

    /// Where the pickup agent moves the files it has taken (operations.md §10).
    var sentDirectory: String { (directory as NSString).appendingPathComponent("sent") }

    init(directory: String, database: ServiceDatabase, logger: Logger, calls: FileSystemCalls = .system) {
        self.directory = directory
        self.database = database
        self.logger = logger
        self.calls = calls
    }

    /// Writes every batch not yet written (and not refused); returns how many are still not
    /// written (nil when the database could not say).
    @discardableResult
    func flush() -> Int? {
        flushing.withLock { _ in flushNow() }
    }

    /// `flush`, when a batch is waiting for its file (each tick of the node's loop).
    func retryUnwritten() {
        let waiting = try? database.writer.read { db in
            try Bool.fetchOne(db, sql: "SELECT EXISTS(SELECT 1 FROM batches WHERE written = 0 AND refused IS NULL)")
        }
        if waiting != false { flush() }
    }

    private func flushNow() -> Int? {
        let rows: [Row]
        do {
            rows = try database.writer.read { db in
                try Row.fetchAll(
                    db,
                    sql: """
                        SELECT b.id, b.file_name, f.content, b.sha256, a.entry AS audit_entry
                        FROM batches b JOIN batch_files f ON f.batch_id = b.id LEFT JOIN audit_chain a ON a.seq = b.audit_seq
                        WHERE b.written = 0 AND b.refused IS NULL ORDER BY b.seq
                        """)
            }
        } catch {
            logger.error(
                "the batches waiting for their files could not be read; tried again at the next tick", metadata: ["error": "\(error)"])
            return nil
        }
        var left = 0
        for row in rows {
            let id: String = row["id"]
            let name: String = row["file_name"]
            do {
                switch try deliver(row) {
                case .written:
                    break
                case .alreadyThere(let place):
                    logger.warning(
                        "a batch file with the batch's SHA-256 was already there: not written again",
                        metadata: ["batch": "\(id)", "file": "\(name)", "where": "\(place)"])
                case .refused(let problem):
                    logger.critical(
                        "a batch file is refused: it is not written, and its payments wait for an operator",
                        metadata: ["batch": "\(id)", "file": "\(name)", "problem": "\(problem)"])
                    try database.writer.write { db in
                        try db.execute(sql: "UPDATE batches SET refused = ? WHERE id = ? AND written = 0", arguments: [problem, id])
                    }
                    failures.withLock { _ = $0.removeValue(forKey: id) }
                    continue
                }
                try database.writer.write { db in try db.execute(sql: "UPDATE batches SET written = 1 WHERE id = ?", arguments: [id]) }
                failures.withLock { _ = $0.removeValue(forKey: id) }
            } catch {
                left += 1
                noteFailure(batch: id, file: name, error: error)
            }
        }
        return left
    }

    /// What to do with one unwritten batch: write its file, or find it already there (its own
    /// SHA-256), or refuse it. Throws when the file could not be written or read now.
    func deliver(_ row: Row) throws -> Outcome {
        let name: String = row["file_name"]
        let content: Data = row["content"]
        if let problem = Self.tampered(content: content, stored: row["sha256"], auditEntry: row["audit_entry"]) {
            return .refused("a stored batch file does not match its recorded SHA-256: \(problem)")
        }
        let expected = (row["sha256"] as String?) ?? SHA256.hash([UInt8](content)).hexString
        for (path, place) in [
            ((sentDirectory as NSString).appendingPathComponent(name), "sent/"),
            ((directory as NSString).appendingPathComponent(name), "outbox"),
        ] {
            guard let there = try InstructionFiles.existingBytes(path) else { continue }
            let digest = SHA256.hash(there).hexString
            guard digest == expected else {
                let whereText = place == "sent/" ? "in sent/ (taken by the pickup agent)" : "in the outbox"
                return .refused(
                    "\(name) is already \(whereText) with other content (SHA-256 \(digest); this batch's is \(expected)): the batch number was used before for another batch, by a database this one does not know (restored from an older backup?); see operations.md §7, restoring payments"
                )
            }
            if place == "sent/" { return .alreadyThere(place) }
            // In the outbox already (a crash before its record): flushed again, then recorded.
            try InstructionFiles.writeAtomically(content, name: name, directory: directory, calls: calls)
            return .alreadyThere(place)
        }
        try InstructionFiles.writeAtomically(content, name: name, directory: directory, calls: calls)
        return .written
    }

    /// At start: logs (critical) when a batch file in the outbox is numbered above the
    /// database's highest batch — no batch is made until an operator deals with it.
    func checkNumbering() {
        let highest = (try? database.writer.read { db in try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM batches") ?? 0 }) ?? 0
        if let why = BatchFiles.blocked(highest: highest, outbox: directory) {
            logger.critical(
                "batch numbering is blocked: no batch is made until an operator deals with the outbox", metadata: ["problem": "\(why)"])
        }
    }

    /// Logged at the first failure of a batch's file, then at most once a minute while it lasts.
    private func noteFailure(batch: String, file: String, error: any Error) {
        let now = ContinuousClock.now
        let log = failures.withLock { all -> Bool in
            var f = all[batch] ?? WriteFailure(error: "", attempts: 0, lastLogged: now)
            f.error = "\(error)"
            f.attempts += 1
            let log = f.attempts == 1 || now - f.lastLogged >= .seconds(60)
            if log { f.lastLogged = now }
            all[batch] = f
            return log
        }
        if log {
            logger.error(
                "a batch file could not be written; tried again every second",
                metadata: ["batch": "\(batch)", "file": "\(file)", "error": "\(error)"])
        }
    }

    /// The last write error of a batch still unwritten, if a write of it failed.
    func lastFailure(_ batch: String) -> WriteFailure? { failures.withLock { $0[batch] } }

    /// `status`: the batches decided but not on disk yet (`unwritten_batches`, and for the
    /// oldest its id, age in seconds on the service's clock and last error), the refused ones
    /// (`refused_batches`), and `batch_numbering_blocked` when a file in the outbox is numbered
    /// above the database's highest batch (no batch is made until an operator deals with it).
    func status(now: Date) throws -> JSONObject {
        var o = JSONObject()
        let (unwritten, oldest, refused, highest) = try database.writer.read { db in
            (
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM batches WHERE written = 0 AND refused IS NULL") ?? 0,
                try Row.fetchOne(
                    db, sql: "SELECT id, created_at FROM batches WHERE written = 0 AND refused IS NULL ORDER BY seq LIMIT 1"),
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM batches WHERE refused IS NOT NULL") ?? 0,
                try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM batches") ?? 0
            )
        }
        o["unwritten_batches"] = .int(Int64(unwritten))
        if let oldest {
            let id: String = oldest["id"]
            o["unwritten_oldest_batch"] = .string(id)
            if let created = Timestamp.parse(oldest["created_at"]) {
                o["unwritten_oldest_age_s"] = .int(Int64(max(0, now.timeIntervalSince(created)).rounded(.down)))
            }
            if let failure = lastFailure(id) { o["unwritten_last_error"] = .string(failure.error) }
        }
        o["refused_batches"] = .int(Int64(refused))
        if let why = BatchFiles.blocked(highest: highest, outbox: directory) { o["batch_numbering_blocked"] = .string(why) }
        return o
    }

    /// Why `content` is not the file the batch recorded, or nil. A batch stored before hashes
    /// were recorded has none and is written as it is.
    static func tampered(content: Data, stored: String?, auditEntry: Data?) -> String? {
        let digest = SHA256.hash([UInt8](content)).hexString
        if let stored, stored != digest { return "the content's SHA-256 is \(digest), the batch recorded \(stored)" }
        if let auditEntry {
            let recorded = (try? JSONParser.parse(String(decoding: auditEntry, as: UTF8.self)))?["sha256"]?.stringValue
            if let recorded, recorded != digest {
                return "the content's SHA-256 is \(digest), the audit chain's batch.created says \(recorded)"
            }
            if recorded == nil, stored != nil { return "the audit chain's batch.created entry has no SHA-256" }
        } else if stored != nil {
            return "the batch's batch.created audit entry is missing"
        }
        return nil
    }
}

/// Applies the feeds payments follows: the matcher's entitlements and the registry's profiles
/// and payees, each delivery batch in one transaction with its cursor.
struct PaymentsFeeds: DatabaseFeedConsumer {
    let database: ServiceDatabase
    let engine: PaymentsEngine
    let handle: ServiceHandle

    static let wanted: Set<String> = ["merchant.profiled", "payee.verified", "entitlement.approved", "entitlement.revoked"]

    func wants(feed: String, type: String) -> Bool { Self.wanted.contains(type) }
    /// Payments reads a profile only for its name, kind, status, disqualification and link
    /// fingerprints (`PaymentsEngine.profiled`); the rest of it is checked as JSON and left unbuilt.
    func omittedDataMembers(feed: String) -> Set<String> {
        feed == "registry" ? Self.unreadProfileMembers : ["trace"]
    }

    static let unreadProfileMembers: Set<String> = [
        "industry", "district", "registered_on", "tags", "finance", "tax", "tax_history", "social_insurance",
        "social_insurance_history", "leases", "closures", "damages", "credit_flags", "account", "aid", "fraud", "public_name",
    ]

    func apply(feed: String, _ deliveries: [FeedDelivery], through: UInt64) throws {
        try database.writer.write { db in
            for d in deliveries {
                guard let e = d.event, let data = e.data else { continue }
                try Self.applyOne(e.type, data, sequence: d.sequence, engine: engine, db)
            }
            try InboxCursor.set(db, feed: feed, to: through)
        }
        handle.node?.notifyOutbox()
    }

    /// One upstream event, in a savepoint of its own. An error that is about this event only
    /// (the ledger refusing a transfer, a constraint) undoes it alone and turns into a hold or a
    /// review note on its payment: a delivery never fails for one event, which would stall every
    /// later one (revocations, fraud voids). Only the database failing is thrown (retried).
    static func applyOne(_ type: String, _ data: JSON, sequence: UInt64, engine: PaymentsEngine, _ db: Database) throws {
        engine.touchedPools.clear()
        do {
            try db.inSavepoint {
                switch type {
                case "merchant.profiled": try engine.profiled(data, db)
                case "payee.verified": try engine.payee(data, db)
                case "entitlement.approved": try engine.approved(data, sequence: sequence, db)
                case "entitlement.revoked": try engine.revoked(data, db)
                default: break
                }
                try engine.releaseTouchedPools(db)
                return .commit
            }
        } catch let error as DatabaseError where error.resultCode != .SQLITE_CONSTRAINT {
            throw error
        } catch let error as LedgerError where error.code == .database {
            throw error
        } catch {
            // The event's own work was undone: only what refusing it frees counts.
            engine.touchedPools.clear()
            try engine.refusedEvent(type, data, sequence: sequence, error: error, db)
            try engine.releaseTouchedPools(db)
        }
    }
}

/// Builds the payment router: the same function `bangfu-payments`'s `main` and the tests call.
public enum PaymentsService {
    public static let name = "payments"
    public static let upstreams = ["registry", "matcher"]
    /// The service's own settings (flags, `BANGFU_…` variables, config keys), empty = default.
    public static let settings: [String: String] = [
        "outbox-dir": "", "inbox-dir": "", "failure-pause-percent": "", "batch-max-payments": "", "treasury-debtor-name": "",
        "treasury-debtor-account": "", "treasury-debtor-agent": "",
    ]

    /// The router's settings from the service's options (flag, `BANGFU_…` variable or config
    /// key; empty = default). A value that is not valid is a configuration error (exit 64),
    /// never silently replaced by the default.
    public static func paymentsSettings(options: ServiceOptions) throws -> PaymentsSettings {
        let base = options.stateDir ?? NSTemporaryDirectory()
        func setting(_ key: String) -> String? { options.extra[key].flatMap { $0.isEmpty ? nil : $0 } }
        var settings = PaymentsSettings(
            outboxDirectory: setting("outbox-dir") ?? (base as NSString).appendingPathComponent("outbox"),
            inboxDirectory: setting("inbox-dir") ?? (base as NSString).appendingPathComponent("inbox"))
        if let t = setting("failure-pause-percent") {
            guard let pct = Int64(t), (0...100).contains(pct) else {
                throw ConfigError("failure-pause-percent must be a whole number from 0 to 100, not \(t)")
            }
            settings.failurePauseThreshold = .init(numerator: pct, denominator: 100)
        }
        if let t = setting("batch-max-payments") {
            guard let n = Int(t), n >= 1, n <= 1_000_000 else {
                throw ConfigError("batch-max-payments must be a whole number from 1 to 1,000,000, not \(t)")
            }
            settings.batchMaxPayments = n
        }
        // The treasury account every pain.001 batch is paid from (DbtrAcct, Dbtr, DbtrAgt).
        if let t = setting("treasury-debtor-name") { settings.debtorName = t }
        if let t = setting("treasury-debtor-account") { settings.debtorAccount = t }
        if let t = setting("treasury-debtor-agent") { settings.debtorAgent = t }
        // Checked as the batch writer will check them (lengths, characters, the agent's form),
        // so that a bad value stops the service at start rather than every batch.
        let probe = CreditTransferBatch(
            messageID: "BANGFU-CONFIG-CHECK", createdAt: Date(timeIntervalSince1970: 0), initiatingParty: "Bangfu 帮扶",
            debtorName: settings.debtorName, debtorAccount: settings.debtorAccount, debtorAgent: settings.debtorAgent,
            requestedExecutionDate: ChinaTime.civilDate(of: Date(timeIntervalSince1970: 0)),
            payments: [
                CreditTransfer(endToEndID: "CHECK", amountFen: 1, creditorName: "check", creditorAccount: "0", creditorAgent: "check")
            ])
        do {
            _ = try Pain001.xml(probe)
        } catch {
            throw ConfigError(
                "treasury-debtor-name, treasury-debtor-account, treasury-debtor-agent do not make a valid pain.001 debtor: \(error)")
        }
        return settings
    }

    /// Each of the router's settings as the service would use it, defaults included (for
    /// `--check-config`). A directory under a state directory not given is shown as
    /// `<state-dir>/…`; empty when the settings are not valid (the check says why).
    public static func effectiveSettings(options: ServiceOptions) -> [String: String] {
        guard let s = try? paymentsSettings(options: options) else { return [:] }
        func dir(_ key: String, _ value: String, _ name: String) -> String {
            options.stateDir == nil && options.extra[key].map({ $0.isEmpty }) ?? true ? "<state-dir>/\(name)" : value
        }
        let t = s.failurePauseThreshold
        let percent =
            (t.numerator * 100) % t.denominator == 0 ? "\(t.numerator * 100 / t.denominator)" : "\(t.numerator * 100)/\(t.denominator)"
        return [
            "outbox-dir": dir("outbox-dir", s.outboxDirectory, "outbox"), "inbox-dir": dir("inbox-dir", s.inboxDirectory, "inbox"),
            "failure-pause-percent": percent, "batch-max-payments": "\(s.batchMaxPayments)", "treasury-debtor-name": s.debtorName,
            "treasury-debtor-account": s.debtorAccount, "treasury-debtor-agent": s.debtorAgent,
        ]
    }

    /// Valid settings an operator probably does not want in production (`--check-config` prints
    /// them; the service logs them at start).
    public static func warnings(options: ServiceOptions) -> [String] {
        guard let settings = try? paymentsSettings(options: options) else { return [] }
        var out: [String] = []
        if settings.debtorAccount.allSatisfy({ $0 == "0" }) {
            out.append(
                "treasury-debtor-account is the placeholder \(settings.debtorAccount): every pain.001 would name it as the paying account; set the treasury's account"
            )
        }
        return out
    }

    public static func build(options: ServiceOptions, environment env: ServiceEnvironment) throws -> BusService {
        let settings = try paymentsSettings(options: options)
        var logger = env.logger
        logger[metadataKey: "service"] = "payments"
        let security = try ServiceSecurity(options: options, environment: env)
        let database = try PaymentsDatabase(stateDir: options.stateDir)
        try SimulatedTime.restore(env.clock, from: database.db)
        let audit = AuditChain(clock: env.clock)
        let engine = PaymentsEngine(
            ledger: Ledger(clock: env.clock, audit: audit), audit: audit,
            outbox: Outbox(source: PaymentsEngine.source, clock: env.clock, maxEventBytes: options.maxMessageBytes),
            clock: env.clock, settings: settings, logger: logger)
        let files = PendingFiles(directory: settings.outboxDirectory, database: database.db, logger: logger)
        let pipeline = IntakePipeline(
            database: database.db, applier: PaymentsApplier(engine: engine), clock: env.clock, authorize: security.authorizer,
            logger: logger,
            afterCommit: { files.flush() })
        var nodeSettings = NodeSettings()
        security.secure(&nodeSettings)
        nodeSettings.socket.maxMessageBytes = options.maxMessageBytes
        let handle = ServiceHandle()
        let queries = StandardQueries(
            service: name, database: database.db,
            live: {
                // DESIGN §11: the pools' balances are part of the router's status.
                var o = handle.figures(simulatedClock: options.simulatedClock, clock: env.clock)
                if let pools = try? PaymentsQueries(database: database.db, engine: engine).respond(["op": "pool.status"])?["items"] {
                    o["pools"] = pools
                }
                // Batch files not written yet (retried every second), refused ones, and batch
                // numbering blocked by a file the database does not know.
                if let files = try? files.status(now: env.clock.now()) {
                    for (k, v) in files.members { o[k] = v }
                }
                // Reversals sent to lessors and agencies and not yet confirmed, and how many of
                // them wait for an operator (declined, or a lessor's overdue).
                if let counts = try? database.db.writer.read({ db in try engine.reversalCounts(db) }) {
                    o["reversals_open"] = .int(Int64(counts.open))
                    o["reversals_for_operator"] = .int(Int64(counts.needOperator))
                }
                return o
            },
            extra: { req in try PaymentsQueries(database: database.db, engine: engine).respond(req) })
        let node = ServiceNode(
            name: name, context: env.context, endpoints: options.endpoints, settings: nodeSettings, processor: pipeline,
            feed: OutboxFeedStore(database: database.db), responder: queries, logger: logger)
        handle.node = node
        let consumer = PaymentsFeeds(database: database.db, engine: engine, handle: handle)
        let subs = env.subscribers(options: options, consumer: consumer, security: security, handle: handle, logger: logger)
        let inbox = ReturnInbox(directory: settings.inboxDirectory, database: database.db, engine: engine, handle: handle, logger: logger)
        // A rent waiver the lessor has not confirmed by its deadline is escalated (held
        // `lessor_unconfirmed`) when the deadline passes, not only when the next batch is asked for.
        // A batch file that could not be written (a full disk, an I/O error) is tried again at
        // every tick, not only after the next commit.
        node.onTick { files.retryUnwritten() }
        node.onTick { [weak node, logger] in
            do {
                guard try database.db.writer.read({ db in try engine.anyOverdue(db) }) else { return }
                if try database.db.writer.write({ db in try engine.escalateOverdue(db) }) > 0 { node?.notifyOutbox() }
            } catch {
                logger.error("lessor escalation failed; it is tried again at the next tick", metadata: ["error": "\(error)"])
            }
        }
        return BusService(
            name: name, node: node, subscribers: subs, logger: logger, security: security,
            onStart: {
                files.checkNumbering()
                files.flush()
                inbox.start()
            },
            onStop: { inbox.stop() })
    }
}

/// Watches the inbox directory for the bank's return files (pain.002, camt.054): each is read,
/// its totals checked (a mismatch is quarantined, never applied), applied in one transaction,
/// and moved to `processed/` or `quarantined/`.
final class ReturnInbox: Sendable {
    let directory: String
    let database: ServiceDatabase
    let engine: PaymentsEngine
    let handle: ServiceHandle
    let logger: Logger
    nonisolated(unsafe) let timer: any DispatchSourceTimer

    init(directory: String, database: ServiceDatabase, engine: PaymentsEngine, handle: ServiceHandle, logger: Logger) {
        self.directory = directory
        self.database = database
        self.engine = engine
        self.handle = handle
        self.logger = logger
        timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "bangfu.payments.inbox"))
    }

    func start() {
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        timer.schedule(deadline: .now(), repeating: .seconds(1))
        timer.setEventHandler { [self] in self.scan() }
        timer.resume()
    }

    func stop() { timer.cancel() }

    /// SQLite failing (I/O, disk full, busy), as opposed to the file being wrong.
    static func isDatabaseFailure(_ error: any Error) -> Bool {
        if let e = error as? DatabaseError { return e.resultCode != .SQLITE_CONSTRAINT }
        if let e = error as? LedgerError { return e.code == .database }
        return false
    }

    func scan() {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: directory).filter({ $0.hasSuffix(".xml") }).sorted(), !names.isEmpty else {
            return
        }
        for name in names {
            let path = (directory as NSString).appendingPathComponent(name)
            guard let data = fm.contents(atPath: path) else { continue }
            let text = String(decoding: data, as: UTF8.self)
            // Only a file whose declared totals disagree with its lines is labelled so; a line
            // that cannot be applied is an anomaly of its own (`applyReturn`), never the file's.
            var rejection: Rejection?
            switch Result(catching: { try ReturnParser.parse(text) }) {
            case .failure(let error):
                rejection = Rejection(.invalidData, field: "file", "return \(name) unreadable: \(error)")
                logger.error("return file quarantined: unreadable", metadata: ["file": "\(name)", "error": "\(error)"])
            case .success(let file):
                do {
                    try file.checkTotals()
                    do {
                        try database.writer.write { db in
                            engine.touchedPools.clear()
                            _ = try engine.applyReturn(file, returnID: file.messageID, db)
                            try engine.releaseTouchedPools(db)
                        }
                    } catch let error where Self.isDatabaseFailure(error) {
                        // The database failed, not the file: left in the inbox, tried at the next scan.
                        logger.error("a return file could not be applied now; retried", metadata: ["file": "\(name)", "error": "\(error)"])
                        continue
                    } catch {
                        rejection = Rejection(.invalidData, field: "file", "return \(name) could not be applied: \(error)")
                        logger.error(
                            "return file quarantined: it could not be applied", metadata: ["file": "\(name)", "error": "\(error)"])
                    }
                } catch {
                    rejection = Rejection(.invalidAmount, field: "file", "return \(name): control \(error)")
                    logger.error("return file quarantined: its totals disagree", metadata: ["file": "\(name)"])
                }
            }
            var destination = "processed"
            let digest = SHA256.hash([UInt8](data)).hexString
            if let rejection {
                do {
                    // Once per content: a file quarantined before (the same bytes under a reused
                    // name, or one whose move failed) adds no second row.
                    let added = try database.writer.write { db -> Bool in
                        if try Bool.fetchOne(db, sql: "SELECT 1 FROM inbox_quarantined WHERE sha256 = ?", arguments: [digest]) == true {
                            return false
                        }
                        try Quarantine.add(
                            db, origin: "inbox", at: engine.now, rejection: rejection, source: nil, eventID: name, type: "bank.returned",
                            frame: [UInt8](data))
                        try db.execute(
                            sql: "INSERT INTO inbox_quarantined(sha256, file_name, quarantined_at) VALUES (?, ?, ?)",
                            arguments: [digest, name, engine.now])
                        return true
                    }
                    if !added {
                        logger.warning(
                            "a return file with the content of one already quarantined: moved, not quarantined again",
                            metadata: ["file": "\(name)", "sha256": "\(digest)"])
                    }
                    destination = "quarantined"
                } catch {
                    // Left in the inbox: the next scan tries again.
                    logger.error("a return file could not be quarantined", metadata: ["file": "\(name)", "error": "\(error)"])
                    continue
                }
            }
            if let movedTo = move(path, name: name, into: destination, sha256: digest), destination == "quarantined" {
                try? database.writer.write { db in
                    try db.execute(sql: "UPDATE inbox_quarantined SET moved_to = ? WHERE sha256 = ?", arguments: [movedTo, digest])
                }
            }
            handle.node?.notifyOutbox()
        }
    }

    /// Moves an inbox file into `<inbox>/<destination>/`: under its own name when that is free,
    /// otherwise under `<name>.<time>-<SHA-256 prefix>.<ext>` (a bank that reuses file names,
    /// `camt054.xml` every day, never leaves one stuck in the inbox). Returns the path moved to
    /// (relative to the inbox), or nil when it could not be moved (logged; the next scan finds
    /// it again, applies nothing twice and adds no second quarantine row).
    func move(_ path: String, name: String, into destination: String, sha256: String) -> String? {
        let fm = FileManager.default
        let dir = (directory as NSString).appendingPathComponent(destination)
        let stem = (name as NSString).deletingPathExtension
        let ext = (name as NSString).pathExtension
        let stamp = String(engine.now.filter { $0.isASCII && $0.isNumber }.prefix(14))
        let unique = "\(stem).\(stamp)-\(sha256.prefix(12))"
        let suffix = ext.isEmpty ? "" : ".\(ext)"
        let candidates = [name, unique + suffix, unique + "-" + UUID().uuidString.prefix(8).lowercased() + suffix]
        var failure: (any Error)?
        do {
            try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
            for candidate in candidates {
                let target = (dir as NSString).appendingPathComponent(candidate)
                if fm.fileExists(atPath: target) { continue }
                do {
                    try fm.moveItem(atPath: path, toPath: target)
                    return "\(destination)/\(candidate)"
                } catch {
                    failure = error
                }
            }
        } catch {
            failure = error
        }
        logger.error(
            "a return file could not be moved out of the inbox; looked at again at the next scan",
            metadata: ["file": "\(name)", "into": "\(destination)", "error": "\(failure.map { "\($0)" } ?? "every name taken")"])
        return nil
    }
}

/// The payment router's operator queries: `ledger.check`, `audit.verify`, `payment.show`,
/// `payment.list`, `payment.summary`, `batch.list`, `pool.status`, `holds`, `return.anomalies`.
struct PaymentsQueries {
    /// `payment.list` with only the filters given, so that a page of one state on one channel
    /// is one range of `payments_state_seq` in approval order, not a sort of every payment of
    /// the state (a lessor's or agency's system pages through its instructions this way).
    static func listSQL(state: String?, channel: String?, limit: Int) -> (String, StatementArguments) {
        var filters: [String] = []
        var arguments: StatementArguments = []
        if let state {
            filters.append("state = ?")
            arguments += [state]
        }
        if let channel {
            filters.append("channel = ?")
            arguments += [channel]
        }
        arguments += [limit]
        let condition = filters.isEmpty ? "" : " WHERE " + filters.joined(separator: " AND ")
        return ("SELECT * FROM payments\(condition) ORDER BY approved_seq LIMIT ?", arguments)
    }

    let database: ServiceDatabase
    let engine: PaymentsEngine

    /// `audit.list`: the chain's entries in order, each with its link (seq, at, kind, the entry
    /// as stored, hash), after `after` (a seq), at most `max` (1–1,000, default 100); only those
    /// of `kind`, and only those that name `ref` (a payment or entitlement id, a batch, a pool,
    /// an account: any string the entry holds as a JSON string). A filtered search reads at most
    /// `scanLimit` links per request (queries share a thread with replay): the answer's
    /// `scanned_to` is where the next request goes on (`after`), and `more` says whether the
    /// chain goes past it.
    static let scanLimit: Int64 = 100_000

    func auditList(_ req: JSON) throws -> JSON {
        let after = max(req["after"]?.intValue ?? 0, 0)
        let limit = Int(min(max(req["max"]?.intValue ?? 100, 1), 1_000))
        let kind = req["kind"]?.stringValue
        // The quoted form: `"ent-1"` never matches inside `"ent-10"`.
        let needle = req["ref"]?.stringValue.map { String(decoding: JSON.string($0).serializedBytes(), as: UTF8.self) }
        let upTo = after + Self.scanLimit
        let (rows, head) = try database.writer.read { db in
            (
                try Row.fetchAll(
                    db,
                    sql: """
                        SELECT seq, at, kind, entry, hash FROM audit_chain
                        WHERE seq > ? AND seq <= ? AND (? IS NULL OR kind = ?) AND (? IS NULL OR instr(CAST(entry AS TEXT), ?) > 0)
                        ORDER BY seq LIMIT ?
                        """, arguments: [after, upTo, kind, kind, needle, needle, limit]),
                try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM audit_chain") ?? 0
            )
        }
        let items: [JSON] = rows.map { r in
            let entry: Data = r["entry"]
            return [
                "seq": .int(r["seq"]), "at": .string(r["at"]), "kind": .string(r["kind"]),
                "entry": (try? JSONParser.parse([UInt8](entry))) ?? .string(String(decoding: entry, as: UTF8.self)),
                "hash": .string(r["hash"]),
            ]
        }
        // Full: the next page starts after the last entry; else after what this request read.
        let scannedTo = items.count == limit ? (items.last?["seq"]?.intValue ?? upTo) : min(upTo, head)
        return ["op": "audit_entries", "items": .array(items), "scanned_to": .int(scannedTo), "more": .bool(scannedTo < head)]
    }

    func respond(_ req: JSON) throws -> JSON? {
        switch req["op"]?.stringValue {
        case "ledger.check":
            let c = try database.writer.read { db in try engine.ledger.check(db) }
            return ["op": "ledger", "ok": .bool(c.ok), "problems": .array(c.problems.map { .string($0) }), "report": .string("\(c)")]
        case "audit.verify":
            // `anchor` ({"seq", "hash"}): a link recorded earlier, outside this database (the
            // head an earlier verify printed). A chain rewritten and recomputed from its first
            // entry, or cut short, still verifies on its own; it no longer holds that link.
            var anchor: (seq: Int64, hash: String)?
            if let a = req["anchor"] {
                guard let seq = a["seq"]?.intValue, seq >= 1, let hash = a["hash"]?.stringValue, hash.utf8.count == 64 else {
                    return [
                        "op": "error", "code": "invalid_request",
                        "message": "anchor is {\"seq\": N ≥ 1, \"hash\": 64 hex digits}, as an earlier audit verify printed it",
                    ]
                }
                anchor = (seq, hash.lowercased())
            }
            let (v, anchored) = try database.writer.read { db -> (AuditVerification, String?) in
                let v = try engine.audit.verify(db)
                guard let anchor else { return (v, nil) }
                let stored = try String.fetchOne(db, sql: "SELECT hash FROM audit_chain WHERE seq = ?", arguments: [anchor.seq])
                return (v, stored)
            }
            var o: JSONObject = [
                "op": "audit", "ok": .bool(v.ok), "entries": .int(Int64(v.entries)),
                "first_broken": v.firstBroken.map { .int($0) } ?? .null,
                "reason": v.reason.map { .string($0) } ?? .null,
                // The newest good link: record it elsewhere and pass it as the anchor next time.
                "head": v.entries > 0 ? ["seq": .int(v.entries), "hash": .string(v.headHash)] : .null,
            ]
            if let anchor {
                let held = anchored == anchor.hash && v.entries >= anchor.seq
                o["anchor_ok"] = .bool(held)
                if !held {
                    o["anchor_problem"] = .string(
                        anchored == nil
                            ? "the chain has no entry \(anchor.seq) (it has \(v.entries)): entries recorded before were removed"
                            : anchored != anchor.hash
                                ? "entry \(anchor.seq) has hash \(anchored ?? "") where \(anchor.hash) was recorded: the chain was rewritten"
                                : "entry \(anchor.seq) is past the first broken link")
                }
            }
            return .object(o)
        case "audit.list":
            return try auditList(req)
        case "payment.show":
            guard let id = req["id"]?.stringValue else { return ["op": "error", "code": "invalid_request", "message": "id is required"] }
            guard
                let (p, r) = try database.writer.read({ db in try PaymentRecord.find(id, db).map { ($0, try ReversalRecord.find(id, db)) } }
                )
            else {
                return ["op": "error", "code": "not_found", "message": .string("no payment \(id)")]
            }
            var o = p.json.objectValue ?? JSONObject()
            if let r { o["reversal"] = r.json }
            return ["op": "payment", "payment": .object(o)]
        case "reversals":
            // Cancellations and reversals sent (or to be sent) to lessors and agencies, oldest
            // first: by `state`, or (default) every one not yet confirmed.
            let state = req["state"]?.stringValue
            if let state, ReversalRecord.State(rawValue: state) == nil {
                return [
                    "op": "error", "code": "invalid_request",
                    "message": "state must be pending, instructed, confirmed or declined",
                ]
            }
            let limit = Int(min(max(req["max"]?.intValue ?? 100, 1), 1_000))
            let items = try database.writer.read { db in
                try Row.fetchAll(
                    db,
                    sql: """
                        SELECT r.*, p.uscc, p.benefit, p.amount_fen, p.policy_id, p.state AS payment_state FROM reversals r
                        JOIN payments p ON p.id = r.payment_id
                        WHERE (?1 IS NULL AND r.state != 'confirmed') OR r.state = ?1 ORDER BY r.seq LIMIT ?2
                        """,
                    arguments: [state, limit]
                ).map { row -> JSON in
                    var o = ReversalRecord(row: row).json.objectValue ?? JSONObject()
                    o["uscc"] = .string(row["uscc"])
                    o["benefit"] = .string(row["benefit"])
                    o["amount_fen"] = .int(row["amount_fen"])
                    o["policy_id"] = .string(row["policy_id"])
                    o["payment_state"] = .string(row["payment_state"])
                    return .object(o)
                }
            }
            return ["op": "reversals", "items": .array(items)]
        case "payment.list", "holds":
            let state = req["op"]?.stringValue == "holds" ? "held" : req["state"]?.stringValue
            // A misspelt state or a programme without its lease would answer an empty or a wider
            // list as if it were the one asked for.
            if let state, PaymentState(rawValue: state) == nil {
                return [
                    "op": "error", "code": "invalid_request",
                    "message": "state must be received, held, ready, instructed, settled, failed, voided or clawed_back",
                ]
            }
            if req["policy"] != nil, req["lease"] == nil {
                return ["op": "error", "code": "invalid_request", "message": "policy goes with lease (the lease's rent waivers under it)"]
            }
            let channel = req["channel"]?.stringValue
            let limit = Int(min(max(req["max"]?.intValue ?? 100, 1), 1_000))
            let rows = try database.writer.read { db in
                // `lease`: the payments bound to that lease (its rent waivers), by their index.
                if let lease = req["lease"]?.stringValue {
                    let policy = req["policy"]?.stringValue
                    return try Row.fetchAll(
                        db,
                        sql: """
                            SELECT * FROM payments WHERE binding = ? AND (? IS NULL OR state = ?) AND (? IS NULL OR channel = ?)
                                AND (? IS NULL OR policy_id = ?) ORDER BY approved_seq LIMIT ?
                            """,
                        arguments: [lease, state, state, channel, channel, policy, policy, limit])
                }
                let (sql, arguments) = Self.listSQL(state: state, channel: channel, limit: limit)
                return try Row.fetchAll(db.cachedStatement(sql: sql), arguments: arguments)
            }
            guard req["op"]?.stringValue == "holds" else {
                return ["op": "payments", "items": .array(rows.map { PaymentRecord(row: $0).json })]
            }
            // A held payment says since when: its open hold's opening.
            let items = try database.writer.read { db in
                try rows.map { row -> JSON in
                    var o = PaymentRecord(row: row).json.objectValue ?? JSONObject()
                    let since = try String.fetchOne(
                        db.cachedStatement(
                            sql: "SELECT opened_at FROM holds WHERE payment_id = ? AND resolution IS NULL ORDER BY id DESC LIMIT 1"),
                        arguments: [row["id"] as String])
                    o["held_since"] = since.map { .string($0) } ?? .null
                    return .object(o)
                }
            }
            return ["op": "payments", "items": .array(items)]
        case "payment.summary":
            let rows = try database.writer.read { db in
                try Row.fetchAll(
                    db,
                    sql:
                        "SELECT policy_id, channel, state, hold_code, COUNT(*) AS n, SUM(amount_fen) AS fen FROM payments GROUP BY policy_id, channel, state, hold_code ORDER BY policy_id, state"
                )
            }
            let items: [JSON] = rows.map { r in
                [
                    "policy_id": .string(r["policy_id"]), "channel": .string(r["channel"]), "state": .string(r["state"]),
                    "hold_code": (r["hold_code"] as String?).map { .string($0) } ?? .null,
                    "count": .int(r["n"]), "amount_fen": .int(r["fen"] ?? 0),
                ]
            }
            return ["op": "payment.summary", "items": .array(items)]
        case "batch.list":
            // All batches, or (`command_id`) those one payments.batch command made.
            let command = req["command_id"]?.stringValue
            let rows = try database.writer.read { db in
                try Row.fetchAll(
                    db,
                    sql:
                        "SELECT b.id, b.channel, b.file_name, b.count, b.total_fen, b.created_at, b.written, COALESCE(t.settled, 0) AS settled, COALESCE(t.failed, 0) AS failed, b.sha256, b.refused, b.command_id, b.reversals FROM batches b LEFT JOIN batch_tallies t ON t.batch_id = b.id WHERE ?1 IS NULL OR b.command_id = ?1 ORDER BY b.seq",
                    arguments: [command])
            }
            let items: [JSON] = rows.map { r in
                [
                    "batch_id": .string(r["id"]), "channel": .string(r["channel"]), "file": .string(r["file_name"]),
                    "count": .int(r["count"]), "total_fen": .int(r["total_fen"]), "reversals": .int(r["reversals"]),
                    "created_at": .string(r["created_at"]),
                    "written": .bool(r["written"]), "settled": .int(r["settled"]), "failed": .int(r["failed"]),
                    "sha256": (r["sha256"] as String?).map { .string($0) } ?? .null,
                    "refused": (r["refused"] as String?).map { .string($0) } ?? .null,
                    "command_id": (r["command_id"] as String?).map { .string($0) } ?? .null,
                ]
            }
            return ["op": "batches", "items": .array(items)]
        case "reviews":
            // Notes for an operator that hold no money (a withdrawal after the money left, an
            // event the ledger refused, a refund owed after a return), newest first.
            let rows = try database.writer.read { db in
                try Row.fetchAll(
                    db, sql: "SELECT id, payment_id, code, detail, opened_at FROM reviews ORDER BY id DESC LIMIT ?",
                    arguments: [Int(min(max(req["max"]?.intValue ?? 100, 1), 1_000))])
            }
            let items: [JSON] = rows.map { r in
                [
                    "id": .int(r["id"]), "payment_id": .string(r["payment_id"]), "code": .string(r["code"]),
                    "detail": .string(r["detail"]), "opened_at": .string(r["opened_at"]),
                ]
            }
            return ["op": "reviews", "items": .array(items)]
        case "return.anomalies":
            // Return lines that were not applied (unknown payment, wrong state or amount, a line
            // the ledger refused), newest first: each needs an operator's look.
            let rows = try database.writer.read { db in
                try Row.fetchAll(
                    db, sql: "SELECT id, return_id, payment_id, problem FROM return_anomalies ORDER BY id DESC LIMIT ?",
                    arguments: [Int(min(max(req["max"]?.intValue ?? 100, 1), 1_000))])
            }
            let items: [JSON] = rows.map { r in
                [
                    "id": .int(r["id"]), "return_id": .string(r["return_id"]), "payment_id": .string(r["payment_id"]),
                    "problem": .string(r["problem"]),
                ]
            }
            return ["op": "return.anomalies", "items": .array(items)]
        case "pool.status":
            let pools = try database.writer.read { db -> [JSON] in
                try String.fetchAll(db, sql: "SELECT id FROM ledger_accounts WHERE kind = 'pool' ORDER BY id").map { account in
                    let b = try engine.ledger.balance(db, account: account)
                    return [
                        "pool": .string(String(account.dropFirst("pool:".count))), "posted_fen": .int(b.posted),
                        "reserved_fen": .int(b.pendingDebits),
                        "available_fen": .int(b.available),
                    ]
                }
            }
            return ["op": "pools", "items": .array(pools)]
        default:
            return nil
        }
    }
}
