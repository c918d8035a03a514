import Foundation
import GRDB
import ISO20022
import Logging
import Storage
import Synchronization
import Testing

@testable import Models
@testable import Payments

/// The payment router's engine on an in-memory database, driven directly (no bus): the feeds'
/// facts, the intake's commands and the inbox's returns, each in one write transaction as the
/// service applies them.
final class EngineFixture: Sendable {
    let database: PaymentsDatabase
    let clock = TestClock(rfc3339: "2026-11-29T10:00:00+08:00")
    let engine: PaymentsEngine
    let directory: String

    init(_ configure: (inout PaymentsSettings) -> Void = { _ in }) throws {
        database = try PaymentsDatabase(stateDir: nil)
        directory = (NSTemporaryDirectory() as NSString).appendingPathComponent("payments-engine-\(UUID().uuidString)")
        var settings = PaymentsSettings(
            outboxDirectory: (directory as NSString).appendingPathComponent("outbox"),
            inboxDirectory: (directory as NSString).appendingPathComponent("inbox"))
        configure(&settings)
        let audit = AuditChain(clock: clock)
        engine = PaymentsEngine(
            ledger: Ledger(clock: clock, audit: audit), audit: audit, outbox: Outbox(source: PaymentsEngine.source, clock: clock),
            clock: clock, settings: settings, logger: Logger(label: "payments-test"))
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    @discardableResult
    /// One unit of work, as the service runs it: the body, then the pools money came back into.
    func write<T>(_ body: (Database) throws -> T) throws -> T {
        try database.db.writer.write { db in
            let result = try body(db)
            try engine.releaseTouchedPools(db)
            return result
        }
    }

    func merchant(_ uscc: String, name: String, phone: String? = nil) throws {
        var data: JSONObject = ["uscc": .string(uscc), "name": .string(name), "kind": "enterprise", "status": "active"]
        if let phone { data["contact"] = ["phone_fingerprint": .string(phone)] }
        try write { db in try engine.profiled(.object(data), db) }
    }

    /// A merchant with an account verified in its registered name.
    func verified(_ uscc: String, name: String, account: String) throws {
        try merchant(uscc, name: name)
        try payee(uscc, account: account)
    }

    func disqualify(_ uscc: String, name: String) throws {
        try write { db in
            try engine.profiled(
                ["uscc": .string(uscc), "name": .string(name), "kind": "enterprise", "status": "active", "disqualified": true], db)
        }
    }

    /// `payee.verified`: the account in clear; its fingerprint is the number's.
    func payee(_ uscc: String, account: String, holderMatches: Bool = true, verifiedOn: String = "2022-03-01") throws {
        try write { db in
            try engine.payee(
                [
                    "uscc": .string(uscc), "bank": "中国工商银行", "account_no": .string(account), "holder_name": "持有人",
                    "holder_matches": .bool(holderMatches), "verified_on": .string(verifiedOn), "fingerprint": .string("fp-\(account)"),
                ], db)
        }
    }

    private static let sequence = Mutex<UInt64>(0)

    /// `entitlement.approved` for a cash treasury payment (or another benefit and channel).
    func approve(
        _ id: String, uscc: String, amountFen: Int64 = 100_000, policy: String = "test-cash", benefit: String = "cash",
        channel: String = "treasury", pool: String? = "pool", binding: String = "merchant", extra: JSONObject = [:]
    ) throws {
        let n = Self.sequence.withLock {
            $0 += 1
            return $0
        }
        var data: JSONObject = [
            "entitlement_id": .string(id), "policy_id": .string(policy), "uscc": .string(uscc), "amount_fen": .int(amountFen),
            "benefit": .string(benefit), "channel": .string(channel), "binding": .string(binding),
        ]
        data["pool"] = pool.map { .string($0) } ?? .null
        for (k, v) in extra.members { data[k] = v }
        try write { db in try engine.approved(.object(data), sequence: n, db) }
    }

    func fund(_ fen: Int64, pool: String = "pool", transfer: String = UUID().uuidString) throws {
        try write { db in try engine.fund(pool: pool, source: "central", amountFen: fen, transferID: "fund/\(transfer)", db) }
    }

    @discardableResult
    func batch(_ channel: String = "treasury") throws -> PendingFile? {
        try write { db in try engine.batch(channel: channel, db) }
    }

    func payment(_ id: String) throws -> PaymentRecord {
        try #require(try database.db.writer.read { db in try PaymentRecord.find(id, db) })
    }

    func state(_ id: String) throws -> PaymentState { try payment(id).state }

    /// The `data` of every outbox event of `type` about payment `id`, in order.
    func events(_ type: String, _ id: String) throws -> [JSON] {
        try database.db.writer.read { db in
            try Data.fetchAll(db, sql: "SELECT body FROM bus_outbox WHERE type = ? ORDER BY sequence", arguments: [type])
        }
        .compactMap { try? JSONParser.parse(String(decoding: $0, as: UTF8.self))["data"] }
        .filter { $0["payment_id"]?.stringValue == id }
    }

    func ledgerOK() throws -> Bool { try database.db.writer.read { db in try engine.ledger.check(db).ok } }

    func auditOK() throws -> Bool { try database.db.writer.read { db in try engine.audit.verify(db).ok } }

    func pool(_ pool: String = "pool") throws -> AccountBalance {
        try database.db.writer.read { db in try engine.ledger.balance(db, account: PaymentsEngine.poolAccount(pool)) }
    }

    func anomalies() throws -> [String] {
        try database.db.writer.read { db in
            try String.fetchAll(db, sql: "SELECT payment_id || ': ' || problem FROM return_anomalies ORDER BY id")
        }
    }

    /// The pain.001 EndToEndIds in a batch file.
    static func endToEndIDs(_ file: PendingFile) -> [String] {
        file.content.components(separatedBy: "<EndToEndId>").dropFirst().compactMap { $0.components(separatedBy: "</EndToEndId>").first }
    }

    /// Applies the bank's pain.002 for batch `batchID` (message `messageID`), answering each of
    /// `paymentIDs` with `status`; returns (applied, anomalies).
    func answer(
        batch batchID: String, messageID: String, _ paymentIDs: [String], _ status: ReturnStatus, amountFen: Int64 = 100_000
    ) throws -> (Int, Int) {
        try applyReturn(
            Pain002.xml(
                originalMessageID: "BANGFU-\(batchID)", messageID: messageID,
                lines: try paymentIDs.map {
                    ReturnLine(endToEndID: PaymentsEngine.endToEndID(try payment($0)), status: status, amountFen: amountFen)
                }))
    }

    /// The ledger balances and the audit chain verifies.
    func balanced() throws -> Bool { try ledgerOK() && auditOK() }

    func applyReturn(_ xml: String) throws -> (Int, Int) {
        let file = try ReturnParser.parse(xml)
        try file.checkTotals()
        return try write { db in try engine.applyReturn(file, returnID: file.messageID, db) }
    }
}
