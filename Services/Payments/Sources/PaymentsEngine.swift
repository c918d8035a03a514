import Foundation
import GRDB
import ISO20022
import Logging
import Models
import Storage
import Synchronization

/// Settings of the payment router (DESIGN §8).
public struct PaymentsSettings: Sendable {
    /// Where batch and instruction files are written (the bank or agency picks them up).
    public var outboxDirectory: String
    /// Where the bank drops pain.002 / camt.054 returns.
    public var inboxDirectory: String
    /// A batch whose failed share exceeds this pauses its channel.
    public var failurePauseThreshold: Rational = Rational(numerator: 1, denominator: 5)
    /// Days a lessor has to confirm a rent waiver (seed 篇二: 30 days).
    public var lessorDeadlineDays = 30
    /// The treasury account batches are paid from (`treasury-debtor-name`, `-account`,
    /// `-agent`; operations.md §10): pain.001 `Dbtr/Nm`, `DbtrAcct/Id/Othr/Id`, `DbtrAgt`.
    public var debtorName = "国库集中支付账户"
    public var debtorAccount = "0000000000000000"
    public var debtorAgent = "PBOC-TREASURY"
    /// Most payments in one batch file; the rest wait for the next `payments.batch` (a file, its
    /// transaction and the service's memory stay bounded however many payments are ready).
    public var batchMaxPayments = 10_000

    public init(outboxDirectory: String, inboxDirectory: String) {
        self.outboxDirectory = outboxDirectory
        self.inboxDirectory = inboxDirectory
    }

    public struct Rational: Sendable {
        public var numerator: Int64
        public var denominator: Int64
        public init(numerator: Int64, denominator: Int64) {
            self.numerator = numerator
            self.denominator = denominator
        }
        /// `failed / total > this`, in integers.
        func exceeded(failed: Int64, total: Int64) -> Bool { total > 0 && failed * denominator > numerator * total }
    }
}

/// A file to write once the transaction that decided it has committed.
public struct PendingFile: Sendable {
    public var batchID: String
    public var name: String
    public var content: String
}

/// The payment router's decisions. Every function runs inside the caller's write transaction;
/// ledger movements, state changes, audit entries and `payment.*` events commit together.
public struct PaymentsEngine: Sendable {
    let ledger: Ledger
    let audit: AuditChain
    let outbox: Outbox
    let clock: any WallClock
    let settings: PaymentsSettings
    let logger: Logger
    /// Pools money came back into during the current unit of work (an upstream event, a
    /// command, a return file); their `pool_short` holds are checked once the unit's own loops
    /// are done (`releaseTouchedPools`), never from inside them — a release re-checks other
    /// payments, which a loop may hold a stale copy of.
    let touchedPools = TouchedPools()

    public static let source = "/bangfu/payments"

    var now: String { Timestamp.format(clock.now()) }

    static func poolAccount(_ pool: String) -> String { "pool:\(pool)" }
    static func paidAccount(_ pool: String) -> String { "paid:\(pool)" }
    static func receivableAccount(_ pool: String) -> String { "receivable:\(pool)" }

    /// A ledger transfer id of the payment's current attempt: `<kind>/<id>` for attempt 0 (the
    /// only form before attempts were numbered, so existing databases read the same), then
    /// `<kind>/<id>/<n>`. A reservation that was voided or posted is never reserved again: the
    /// next attempt has its own ids (`reserve`, `settle`, `void`, `returned`).
    static func transferID(_ kind: String, _ p: PaymentRecord) -> String {
        p.attempt == 0 ? "\(kind)/\(p.id)" : "\(kind)/\(p.id)/\(p.attempt)"
    }

    // MARK: Events

    func emit(_ p: inout PaymentRecord, _ type: String, extra: JSONObject = JSONObject(), db: Database) throws {
        p.events += 1
        try p.save(db, now: now)
        guard case .object(var o) = p.json else { return }
        for (k, v) in extra.members { o[k] = v }
        try outbox.append(db, type: type, subject: p.uscc, id: "\(type)/\(p.id)/\(p.events)", data: .object(o))
    }

    func record(_ db: Database, _ kind: String, _ entry: JSON) throws { _ = try audit.append(db, kind: kind, entry: entry) }

    // MARK: Upstream facts

    /// The registry's profile: what the checks need (status, fraud, fingerprints).
    func profiled(_ data: JSON, _ db: Database) throws {
        guard let uscc = data["uscc"]?.stringValue else { return }
        let disqualified = data["disqualified"]?.boolValue == true
        let columns = Self.keptColumns(of: data)
        let stored = try Row.fetchOne(
            db.cachedStatement(sql: "SELECT name, kind, status, disqualified, id_fp, phone_fp, address_fp FROM merchants WHERE uscc = ?"),
            arguments: [uscc])
        // Most profile changes (figures, leases, closures) leave what payments keeps as it was.
        if let stored, (0..<columns.count).allSatisfy({ stored[$0] as DatabaseValue == columns[$0] }) { return }
        let before = stored.map { ($0[3] as Bool?) ?? false }
        try db.cachedStatement(
            sql: """
                INSERT INTO merchants(uscc, name, kind, status, disqualified, id_fp, phone_fp, address_fp) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(uscc) DO UPDATE SET name = excluded.name, kind = excluded.kind, status = excluded.status,
                    disqualified = excluded.disqualified, id_fp = excluded.id_fp, phone_fp = excluded.phone_fp, address_fp = excluded.address_fp
                """
        ).execute(arguments: StatementArguments([uscc.databaseValue] + columns))
        if disqualified && before != true { return try fraud(uscc: uscc, db) }
        // A name that could not be written into a pain.001 (too long, say) may fit now.
        for row in try Row.fetchAll(
            db.cachedStatement(sql: "SELECT * FROM payments WHERE uscc = ? AND state = 'held' AND hold_code = 'invalid_payee_data'"),
            arguments: [uscc])
        {
            var p = PaymentRecord(row: row)
            try check(&p, db)
        }
    }

    /// What payments keeps of a profile, in the order of the `merchants` columns name, kind,
    /// status, disqualified, id_fp, phone_fp, address_fp.
    static func keptColumns(of data: JSON) -> [DatabaseValue] {
        [
            (data["name"]?.stringValue ?? "").databaseValue, (data["kind"]?.stringValue ?? "").databaseValue,
            (data["status"]?.stringValue ?? "").databaseValue, (data["disqualified"]?.boolValue == true).databaseValue,
            data["legal_rep"]?["id_fingerprint"]?.stringValue.databaseValue ?? .null,
            data["contact"]?["phone_fingerprint"]?.stringValue.databaseValue ?? .null,
            data["contact"]?["address_fingerprint"]?.stringValue.databaseValue ?? .null,
        ]
    }

    /// The registry's payee (the verified account, in clear). A change of account after a
    /// payment was approved holds it (a fraud signal: DESIGN §8).
    func payee(_ data: JSON, _ db: Database) throws {
        guard let uscc = data["uscc"]?.stringValue, let number = data["account_no"]?.stringValue,
            let fp = data["fingerprint"]?.stringValue
        else { return }
        let holderMatches = data["holder_matches"]?.boolValue == true
        let verifiedOn = data["verified_on"]?.stringValue
        let before = try Row.fetchOne(
            db.cachedStatement(sql: "SELECT fingerprint, holder_matches, verified_on FROM payees WHERE uscc = ?"), arguments: [uscc])
        // A new verification (another account, or the same one verified again) — not a replay.
        let renewed =
            before.map { ($0[0] as String) != fp || ($0[1] as Bool) != holderMatches || ($0[2] as String?) != verifiedOn } ?? true
        try db.cachedStatement(
            sql: """
                INSERT INTO payees(uscc, bank, account_no, holder_name, holder_matches, verified_on, fingerprint, changed_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(uscc) DO UPDATE SET bank = excluded.bank, account_no = excluded.account_no, holder_name = excluded.holder_name,
                    holder_matches = excluded.holder_matches, verified_on = excluded.verified_on, fingerprint = excluded.fingerprint,
                    changed_at = excluded.changed_at
                """
        ).execute(arguments: [
            uscc, data["bank"]?.stringValue, number, data["holder_name"]?.stringValue ?? "", holderMatches, verifiedOn, fp, now,
        ])
        // Payments waiting for an account get another chance; ready or held ones whose account
        // changed are held `account_changed`; failed ones (the bank returned them) are retried
        // through every check, with a fresh reservation, into a later batch (DESIGN §7: `failed`
        // is retried or re-routed). A holder that is not the registered name (after a change of
        // name or operator) holds every cash payment not yet instructed (实名制).
        for row in try Row.fetchAll(
            db.cachedStatement(
                sql: "SELECT * FROM payments WHERE uscc = ? AND state IN ('received', 'held', 'ready', 'failed') AND benefit = 'cash'"),
            arguments: [uscc])
        {
            var p = PaymentRecord(row: row)
            if p.state == .held, Self.approvalHolds.contains(p.holdCode ?? "") || p.holdCode == "lessor_unconfirmed" { continue }
            if p.state == .failed {
                guard renewed, p.revoked == nil, p.channel == "treasury" else { continue }
                try record(db, "payment.retried", ["payment_id": .string(p.id), "after": .string(p.holdReason ?? "failed")])
                p.state = .received
                p.holdCode = nil
                // The bank returned the payment: the merchant's newly verified account is the
                // one it is retried to (the retry is what the new verification is for).
                p.payeeFingerprint = nil
                p.accountHoldFP = nil
                try check(&p, db, releasing: "failed")
            } else if !holderMatches {
                try releaseReservation(&p, db)
                try hold(
                    &p, "holder_mismatch",
                    "the verified account's holder is not the registered name (实名制): released only by a verification in that name", db)
            } else if p.state == .held && ["no_verified_account", "holder_mismatch", "invalid_payee_data"].contains(p.holdCode ?? "") {
                try check(&p, db)
            } else if p.state == .held && p.holdCode == "account_changed" {
                // Changed again: back to the account accepted (the checks resume), or to another
                // one (the hold now names it).
                if fp == p.payeeFingerprint { try check(&p, db) } else { try holdAccountChanged(&p, fp, db) }
            } else if let old = p.payeeFingerprint, old != fp {
                try holdAccountChanged(&p, fp, db)
            }
        }
    }

    // MARK: Entitlements

    /// `entitlement.approved`: a payment is born (payment id = entitlement id) and checked.
    /// An approval is never dropped: one whose amount cannot be paid (a cash benefit of 0 fen or
    /// less, any negative or missing amount) is recorded and held `invalid_amount` — it reserves
    /// nothing, so it can never stall the feed (the ledger refuses a reservation of 0 fen).
    func approved(_ data: JSON, sequence: UInt64, _ db: Database) throws {
        guard let id = data["entitlement_id"]?.stringValue, let uscc = data["uscc"]?.stringValue else { return }
        let given = data["amount_fen"]?.intValue
        let amount = given ?? 0
        // Never defaulted: an approval without its benefit or channel is held (channel_mismatch).
        let benefit = data["benefit"]?.stringValue ?? ""
        let channel = data["channel"]?.stringValue ?? ""
        if var p = try PaymentRecord.find(id, db) {
            // A repeated approval changes nothing — except a later approval of a payment that was
            // voided (its entitlement revoked, e.g. by a policy's withdrawal, and approved again
            // under a later revision) or held for an amount or channel that could not be paid:
            // nothing of it is out, so it is paid after all, checked afresh (a fresh reservation:
            // `check` moves past the voided one).
            let revivable = p.state == .voided || (p.state == .held && Self.approvalHolds.contains(p.holdCode ?? ""))
            guard revivable, Int64(sequence) > p.approvedSeq else { return }
            if p.state == .held {
                try db.execute(
                    sql:
                        "UPDATE holds SET resolution = 'superseded', resolved_by = 'matcher', resolved_at = ?, reason = 'a later approval' WHERE payment_id = ? AND resolution IS NULL",
                    arguments: [now, p.id])
            }
            p.policyID = data["policy_id"]?.stringValue ?? p.policyID
            p.amountFen = amount
            p.pool = data["pool"]?.stringValue ?? p.pool
            p.priority = data["priority"]?.boolValue == true
            p.benefit = benefit
            p.channel = channel
            p.approvedSeq = Int64(sequence)
            p.state = .received
            p.holdCode = nil
            p.holdReason = nil
            p.revoked = nil
            // A new approval: the account seen from now on is the one it is checked against.
            p.payeeFingerprint = nil
            p.accountHoldFP = nil
            try p.save(db, now: now)
            if channel != "treasury" { try Self.recordInstructionDetail(id, data, db) }
            try record(db, "payment.received", p.json)
            try checkApproval(&p, amountGiven: given != nil, db)
            return
        }
        var p = PaymentRecord(
            id: id, policyID: data["policy_id"]?.stringValue ?? "", title: data["title"]?.stringValue, uscc: uscc,
            benefit: benefit, channel: channel,
            pool: data["pool"]?.stringValue, amountFen: amount, priority: data["priority"]?.boolValue == true,
            binding: data["binding"]?.stringValue,
            approvedSeq: Int64(sequence))
        try p.save(db, now: now)
        if channel != "treasury" { try Self.recordInstructionDetail(id, data, db) }
        try record(db, "payment.received", p.json)
        try checkApproval(&p, amountGiven: given != nil, db)
    }

    /// What the lessor or agency needs beside the amount: the tenant's name, the programme's
    /// period and, for a rent waiver, the lease with its lessor (from the matcher's approval).
    static func recordInstructionDetail(_ id: String, _ data: JSON, _ db: Database) throws {
        var d = JSONObject()
        d["tenant_name"] = data["name"] ?? .null
        d["period"] = data["period"] ?? .null
        if let lease = data["lease"], lease.objectValue != nil { d["lease"] = lease }
        // How the lessor may carry it out: only a direct refund when the policy says so (a lease
        // under three months in the period, seed 篇二 (二)); else refund, offset or extension.
        if data["channel"]?.stringValue == "lessor" {
            d["methods"] = data["refund_only"]?.boolValue == true ? ["refund"] : ["refund", "offset", "extension"]
        }
        try db.cachedStatement(sql: "UPDATE payments SET instruction_detail = ? WHERE id = ?")
            .execute(arguments: [Data(JSON.object(d).serializedBytes()), id])
    }

    /// Whether a lessor's waiver may only be refunded directly (its instruction detail's `methods`).
    static func refundOnly(_ id: String, _ db: Database) throws -> Bool {
        guard let raw = try Data.fetchOne(db.cachedStatement(sql: "SELECT instruction_detail FROM payments WHERE id = ?"), arguments: [id]),
            case .object(let detail) = try? JSONParser.parse([UInt8](raw))
        else { return false }
        return detail["methods"] == ["refund"]
    }

    /// Counts a batch's line as settled or failed (or moves it from one to the other), in the
    /// batch's own small tally row, never in the row that holds the file.
    static func tally(_ batchID: String, settled: Int64 = 0, failed: Int64 = 0, _ db: Database) throws {
        try db.cachedStatement(sql: "UPDATE batch_tallies SET settled = settled + ?, failed = failed + ? WHERE batch_id = ?")
            .execute(arguments: [settled, failed, batchID])
    }

    /// Who may confirm an instruction. An agency publishing from its own source
    /// `/agencies/<name>` confirms only `agency:<name>` instructions, and a lessor publishing from
    /// `/lessors/<USCC>` only rent waivers on leases it lets (as lessor or root lessor); a grant
    /// binds each key to its source (DESIGN §3.5), so one agency or lessor cannot settle another's
    /// instructions. Other sources (an operator's CLI, a county office confirming for the state
    /// lessors) are bound by their grant's event types alone.
    static func checkConfirmer(_ source: String, of p: PaymentRecord, _ db: Database) throws {
        let parts = source.split(separator: "/", omittingEmptySubsequences: true)
        guard parts.count >= 2 else { return }
        if parts[0] == "agencies", p.channel.hasPrefix("agency:") {
            let own = p.channel.dropFirst("agency:".count)
            guard parts[1] == own else {
                throw Rejection(
                    .unauthorized, field: "source",
                    "\(source.prefix(80)) confirms only agency:\(parts[1].prefix(40)) instructions; payment \(p.id) is on \(p.channel)")
            }
        } else if parts[0] == "lessors", p.channel == "lessor", USCC.isValid(String(parts[1])) {
            var lessors: Set<String> = []
            if let raw = try Data.fetchOne(
                db.cachedStatement(sql: "SELECT instruction_detail FROM payments WHERE id = ?"), arguments: [p.id]),
                case .object(let detail) = try? JSONParser.parse([UInt8](raw)), case .object(let lease)? = detail["lease"]
            {
                for key in ["lessor", "root_lessor"] {
                    if let u = lease[key]?["uscc"]?.stringValue { lessors.insert(u) }
                }
            }
            guard lessors.contains(String(parts[1])) else {
                throw Rejection(
                    .unauthorized, field: "source",
                    "\(source.prefix(80)) is not the lessor of the lease of payment \(p.id): a lessor confirms only its own leases' rent waivers"
                )
            }
        }
    }

    /// The `invalid_amount` hold's detail for an amount over the most one payment may be.
    static func overMaximum(_ p: PaymentRecord) -> String {
        "the approved amount \(p.amountFen) fen is over the most one payment may be (\(Ledger.maxAmountFen) fen): a later approval with a payable amount releases it"
    }

    /// Holds an approval can carry that only a later approval (or an operator's rejection) ends:
    /// the matcher's numbers are frozen once approved (DESIGN §7), so no operator release.
    static let approvalHolds: Set<String> = ["invalid_amount", "channel_mismatch"]

    /// What an approval itself must satisfy before the checks run: an amount that can be paid,
    /// and a benefit on its own channel (cash only through the treasury, and the treasury only
    /// for cash). Otherwise the payment is held with a stable code, visible to operators.
    func checkApproval(_ p: inout PaymentRecord, amountGiven: Bool, _ db: Database) throws {
        if p.amountFen > Ledger.maxAmountFen {
            // On every channel: a file's total is a sum of these, and must never overflow.
            return try hold(&p, "invalid_amount", Self.overMaximum(p), db)
        }
        if !amountGiven || p.amountFen < 0 || (p.benefit == "cash" && p.amountFen == 0) {
            return try hold(
                &p, "invalid_amount",
                amountGiven
                    ? "the approved amount \(p.amountFen) fen cannot be paid as \(p.benefit): a later approval with a payable amount releases it"
                    : "the approval carries no amount_fen: a later approval with a payable amount releases it", db)
        }
        if p.benefit.isEmpty || !Channel.isValid(p.channel) {
            return try hold(
                &p, "channel_mismatch",
                "the approval names \(p.benefit.isEmpty ? "no benefit" : "a \(p.benefit) benefit") on \(p.channel.isEmpty ? "no channel" : "the channel \(p.channel.prefix(60))"): a channel is treasury, lessor or agency:<name> (1-40 of a-z 0-9 - _)",
                db)
        }
        if (p.benefit == "cash") != (p.channel == "treasury") {
            return try hold(
                &p, "channel_mismatch",
                "a \(p.benefit) benefit on the \(p.channel) channel: cash is paid only through the treasury, and the treasury pays only cash",
                db)
        }
        try check(&p, db)
    }

    /// `entitlement.revoked`: money not yet out is released; money already paid opens a clawback.
    func revoked(_ data: JSON, _ db: Database) throws {
        guard let id = data["entitlement_id"]?.stringValue, var p = try PaymentRecord.find(id, db) else { return }
        // A fraud finding reaches payments twice: from the registry (the merchant disqualified,
        // `fraud`) and from the matcher (each entitlement revoked). Whichever comes first, the
        // payment records the same reason.
        let given = data["reason"]?.stringValue ?? "revoked"
        let reason = given.hasPrefix("fraud") ? Self.fraudReason : given
        if reason.hasPrefix("policy_withdrawn") {
            return try withdrawn(&p, reason: reason, db)
        }
        switch p.state {
        case .held where p.holdCode == "lessor_unconfirmed":
            // Escalated, but the instruction is with the lessor: it may still confirm it.
            try revokeInFlight(&p, reason: reason, db)
        case .received, .held, .ready:
            try releaseReservation(&p, db)
            p.state = .voided
            p.holdReason = reason
            try p.save(db, now: now)
            try closeOpenHolds(p.id, "voided", db)
            try record(db, "payment.voided", p.json)
        case .instructed:
            // In the bank's hands: it settles or fails; a settlement then opens the clawback
            // (remembered in `revoked`), a failure is not retried.
            try revokeInFlight(&p, reason: reason, db)
        case .settled:
            try openClawback(&p, reason: reason, db)
        case .failed:
            // The bank returned it: nothing is out, and it must not be retried (`payee`).
            p.state = .voided
            p.revoked = reason
            p.holdReason = reason
            try p.save(db, now: now)
            try closeOpenHolds(p.id, "voided", db)
            try record(db, "payment.voided", p.json)
        case .voided, .clawedBack:
            break
        }
    }

    /// A revocation because the policy was withdrawn (`policy_withdrawn…`). The matcher revokes
    /// believing nothing is out yet; a withdrawal never takes back money instructed or paid
    /// (DESIGN §7): only a payment not yet instructed (received, held, ready, failed) is voided.
    /// One the bank, lessor or agency already has, or has paid, is left as it is — no clawback,
    /// nothing remembered for its settlement — and an operator's review note records the race.
    func withdrawn(_ p: inout PaymentRecord, reason: String, _ db: Database) throws {
        switch p.state {
        case .held where p.batchID != nil && p.holdCode == "lessor_unconfirmed":
            try review(p, "withdrawn_after_instruction", "\(reason): the instruction is with the lessor; nothing is taken back", db)
        case .received, .held, .ready, .failed:
            try releaseReservation(&p, db)
            if p.state == .failed { p.revoked = reason }
            p.state = .voided
            p.holdReason = reason
            try p.save(db, now: now)
            try closeOpenHolds(p.id, "voided", db)
            try record(db, "payment.voided", p.json)
        case .instructed, .settled:
            try review(
                p, "withdrawn_after_instruction",
                "\(reason): the payment was \(p.state.rawValue) before the withdrawal; a withdrawal never takes back money instructed or paid",
                db)
        case .voided, .clawedBack:
            break
        }
    }

    /// An upstream event whose effect was refused (a ledger error other than the database's, a
    /// constraint) and undone: its payment, if not yet instructed, is held `ledger_refused` (an
    /// approval that could not be recorded is recorded held); otherwise a review note says what
    /// was not applied. The feed goes on either way.
    func refusedEvent(_ type: String, _ data: JSON, sequence: UInt64, error: any Error, _ db: Database) throws {
        let detail = "\(type) could not be applied: \(error)"
        let id = data["entitlement_id"]?.stringValue
        logger.error(
            "an upstream event could not be applied; its payment is held or flagged for review",
            metadata: ["type": "\(type)", "payment": "\(id ?? "-")", "error": "\(error)"])
        if type == "entitlement.approved", let id, let uscc = data["uscc"]?.stringValue, try PaymentRecord.find(id, db) == nil {
            var p = PaymentRecord(
                id: id, policyID: data["policy_id"]?.stringValue ?? "", title: data["title"]?.stringValue, uscc: uscc,
                benefit: data["benefit"]?.stringValue ?? "", channel: data["channel"]?.stringValue ?? "",
                pool: data["pool"]?.stringValue, amountFen: data["amount_fen"]?.intValue ?? 0,
                priority: data["priority"]?.boolValue == true,
                binding: data["binding"]?.stringValue, approvedSeq: Int64(sequence))
            try p.save(db, now: now)
            try record(db, "payment.received", p.json)
            return try hold(&p, "ledger_refused", detail, db)
        }
        // A revocation that could not be applied still stops the money: voided, never a hold an
        // operator could release into paying a revoked entitlement.
        if type == "entitlement.revoked", let id, var p = try PaymentRecord.find(id, db),
            [.received, .held, .ready, .failed].contains(p.state), p.holdCode != "lessor_unconfirmed"
        {
            let reserved = p.state == .ready
            let released =
                (try? db.inSavepoint {
                    try releaseReservation(&p, db)
                    return .commit
                }) != nil
            if p.state == .failed { p.revoked = data["reason"]?.stringValue ?? "revoked" }
            p.state = .voided
            p.holdReason = data["reason"]?.stringValue ?? "revoked"
            try p.save(db, now: now)
            try closeOpenHolds(p.id, "voided", db)
            try record(db, "payment.voided", p.json)
            let stuck = reserved && !released
            return try review(
                p, "event_refused",
                detail + "; the payment is voided"
                    + (stuck ? "; its reservation could not be released: the pool's money stays reserved until an operator looks" : ""),
                db)
        }
        if let id, var p = try PaymentRecord.find(id, db), [.received, .held, .ready].contains(p.state),
            p.holdCode != "lessor_unconfirmed"
        {
            try? db.inSavepoint {
                try releaseReservation(&p, db)
                return .commit
            }
            return try hold(&p, "ledger_refused", detail, db)
        }
        try review(paymentID: id ?? data["uscc"]?.stringValue ?? type, "event_refused", detail, db)
    }

    /// A note for an operator about a payment (`reviews`, the `reviews` query), in the audit
    /// chain and the log; it moves no money and changes no state.
    func review(_ p: PaymentRecord, _ code: String, _ detail: String, _ db: Database) throws {
        try review(paymentID: p.id, code, detail, db)
    }

    func review(paymentID: String, _ code: String, _ detail: String, _ db: Database) throws {
        try db.execute(
            sql: "INSERT INTO reviews(payment_id, code, detail, opened_at) VALUES (?, ?, ?, ?)", arguments: [paymentID, code, detail, now])
        try record(db, "review.flagged", ["payment_id": .string(paymentID), "code": .string(code), "detail": .string(detail)])
        logger.warning("a payment needs an operator's review", metadata: ["payment": "\(paymentID)", "code": "\(code)"])
    }

    /// Why a payment of a merchant found fraudulent was voided, clawed back or reversed.
    static let fraudReason = "fraud: disqualified"

    /// Fraud (DESIGN §8 收回): pending payments to the merchant are voided, paid ones clawed back.
    func fraud(uscc: String, _ db: Database) throws {
        for row in try Row.fetchAll(db, sql: "SELECT * FROM payments WHERE uscc = ?", arguments: [uscc]) {
            var p = PaymentRecord(row: row)
            switch p.state {
            case .held where p.holdCode == "lessor_unconfirmed":
                try revokeInFlight(&p, reason: Self.fraudReason, db)
            case .received, .held, .ready, .failed:
                try releaseReservation(&p, db)
                p.state = .voided
                p.holdReason = Self.fraudReason
                try p.save(db, now: now)
                try closeOpenHolds(p.id, "voided", db)
                try record(db, "payment.voided", p.json)
            case .instructed:
                try revokeInFlight(&p, reason: Self.fraudReason, db)
            case .settled:
                try openClawback(&p, reason: Self.fraudReason, db)
            default:
                break
            }
        }
    }

    /// A revocation or fraud finding while the payment is in the bank's, lessor's or agency's
    /// hands: remembered on the payment, so that its settlement opens the clawback (DESIGN §7).
    func revokeInFlight(_ p: inout PaymentRecord, reason: String, _ db: Database) throws {
        guard p.revoked == nil else { return }
        p.revoked = reason
        p.holdReason = "revoked while instructed: \(reason)"
        try p.save(db, now: now)
        try record(db, "payment.revoked_in_flight", p.json)
        // A lessor or agency is told at once not to carry it out (the channel's next file): only
        // the bank's money cannot be called back.
        try openReversal(p, action: .cancel, reason: reason, db)
    }

    /// A payment just settled: if it was revoked in flight, the money is owed back.
    func settledAfterRevocation(_ p: inout PaymentRecord, _ db: Database) throws {
        guard p.state == .settled, let reason = p.revoked else { return }
        try openClawback(&p, reason: reason, db)
    }

    func openClawback(_ p: inout PaymentRecord, reason: String, _ db: Database) throws {
        guard p.benefit == "cash", let pool = p.pool else {
            p.state = .clawedBack
            // The event names what was waived or deferred (`amount_fen`, as every payment event)
            // and that nothing is owed back to a pool (`receivable_fen` 0).
            try emit(&p, "clawback.opened", extra: ["reason": .string(reason), "receivable_fen": 0, "reversal": true], db: db)
            // No public money to recover, but the lessor or agency carried the waiver or deferral
            // out: its reversal goes to them in the channel's next instruction file.
            try openReversal(p, action: .reverse, reason: reason, db)
            return
        }
        let receivable = Self.receivableAccount(pool)
        try ledger.openAccount(db, id: receivable, kind: "receivable", mayGoNegative: true)
        try ledger.transfer(
            db, id: "clawback/\(p.id)", debit: Self.paidAccount(pool), credit: receivable, amountFen: p.amountFen, ref: p.id, note: reason)
        try db.execute(
            sql:
                "INSERT INTO receivables(id, payment_id, uscc, amount_fen, state, reason, opened_at) VALUES (?, ?, ?, ?, 'open', ?, ?) ON CONFLICT DO NOTHING",
            arguments: ["recv/\(p.id)", p.id, p.uscc, p.amountFen, reason, now])
        p.state = .clawedBack
        try emit(&p, "clawback.opened", extra: ["reason": .string(reason), "receivable_fen": .int(p.amountFen)], db: db)
    }

    // MARK: Checks

    /// Runs every check that is not cleared, in order: fraud, real-name account, shared
    /// identifiers within the programme, then the pool reservation. `releasing` names the hold
    /// (or `failed`) a caller took the payment out of before checking it again, so that its
    /// going on is said on the feed (`payment.released`) as when a held payment is checked.
    func check(_ p: inout PaymentRecord, _ db: Database, releasing: String? = nil) throws {
        guard [.received, .held].contains(p.state) else { return }
        let merchant = try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM merchants WHERE uscc = ?"), arguments: [p.uscc])
        if merchant?["disqualified"] == true {
            p.state = .voided
            p.holdReason = Self.fraudReason
            try p.save(db, now: now)
            try closeOpenHolds(p.id, "voided", db)
            try record(db, "payment.voided", p.json)
            return
        }
        if p.benefit == "cash" {
            let payee = try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM payees WHERE uscc = ?"), arguments: [p.uscc])
            // The real-name rule (实名制, DESIGN §8) is never cleared by an operator: only a
            // verified account in the registered name releases it (a release recorded in older
            // databases is ignored).
            guard let payee else {
                return try hold(&p, "no_verified_account", "no bank account verified for this merchant (实名制)", db)
            }
            guard (payee["holder_matches"] as Bool?) == true else {
                return try hold(
                    &p, "holder_mismatch",
                    "the verified account's holder is not the registered name (实名制): released only by a verification in that name",
                    db)
            }
            let fingerprint: String = payee["fingerprint"]
            // The account seen at approval (or at the first check that found one) is the one paid:
            // any other is a change after approval (a fraud signal, DESIGN §8), held whatever
            // hold the payment was in, unless an operator released that hold for this very account.
            if let seen = p.payeeFingerprint, seen != fingerprint {
                return try holdAccountChanged(&p, fingerprint, db)
            }
            if let link = try sharedIdentifier(p, merchant: merchant, payeeFP: fingerprint, db),
                !p.clearedHolds.contains(link.code)
            {
                try holdOtherSide(link, of: p, db)
                return try hold(
                    &p, link.code, "the same \(link.what) as \(link.others.joined(separator: ", ")), another recipient of \(p.policyID)", db
                )
            }
            p.payeeFingerprint = fingerprint
            p.accountHoldFP = nil
            if let problem = try payeeDataProblem(p, payee: payee, db) {
                return try hold(&p, "invalid_payee_data", problem, db)
            }
            guard let pool = p.pool else { return try hold(&p, "no_pool", "a cash benefit without a fund pool", db) }
            try ledger.openAccount(db, id: Self.poolAccount(pool), kind: "pool", mayGoNegative: false)
            try ledger.openAccount(db, id: Self.paidAccount(pool), kind: "paid", mayGoNegative: true)
            // A resolved reservation (voided when the account changed or the bank failed the
            // payment, posted and then returned) stays resolved: this attempt reserves under the
            // next id. A reservation still pending is this payment's already.
            var reserved = false
            while let state = try ledger.pendingState(db, pendingID: Self.transferID("reserve", p)) {
                if state == .pending {
                    reserved = true
                    break
                }
                p.attempt += 1
            }
            if !reserved {
                guard p.attempt <= Self.maxAttempt else {
                    return try hold(
                        &p, "attempts_exhausted",
                        "\(p.attempt) instructions of this payment were returned or voided; no further EndToEndId: an operator rejects it",
                        db)
                }
                do {
                    try ledger.reserve(
                        db, id: Self.transferID("reserve", p), debit: Self.poolAccount(pool), credit: Self.paidAccount(pool),
                        amountFen: p.amountFen, ref: p.id, note: p.policyID)
                } catch {
                    switch error.code {
                    case .insufficientFunds:
                        return try hold(
                            &p, "pool_short",
                            "pool \(pool) cannot cover \(p.amountFen) fen now; released in priority order when funds arrive", db)
                    case .database:
                        throw error
                    default:
                        // The ledger refused the reservation for another reason (nothing was
                        // written): the payment is held for a person, never a failed delivery.
                        return try hold(&p, "ledger_refused", "the ledger refused the reservation: \(error)", db)
                    }
                }
            }
        }
        if p.state == .held { try closeOpenHolds(p.id, "cleared", db) }
        // A payment that was held (or failed, now retried) goes on: said on the feed, so the
        // matcher's entitlement (and what the board shows) no longer reads "held".
        let released = releasing ?? (p.state == .held || p.state == .failed ? (p.holdCode ?? p.state.rawValue) : nil)
        p.state = .ready
        p.holdCode = nil
        p.holdReason = nil
        try p.save(db, now: now)
        try record(db, "payment.ready", p.json)
        if let released { try emit(&p, "payment.released", extra: ["reason": .string(released)], db: db) }
    }

    /// Resolves the payment's open hold rows (`cleared` when it goes on, `superseded` by a new
    /// hold, `voided` with the payment): a payment has at most one open hold.
    func closeOpenHolds(_ paymentID: String, _ resolution: String, _ db: Database) throws {
        try db.cachedStatement(
            sql:
                "UPDATE holds SET resolution = ?, resolved_by = 'payments', resolved_at = ?, reason = ? WHERE payment_id = ? AND resolution IS NULL"
        ).execute(arguments: [resolution, now, resolution, paymentID])
    }

    /// A link between recipients of one programme (the PPP/EIDL lessons): the hold code, what
    /// they share, and the other recipients sharing it.
    struct SharedIdentifier {
        var code: String
        var what: String
        var others: [String]
    }

    /// Other recipients of the same programme with the same bank account, legal
    /// representative, phone or address (the first kind that links any).
    func sharedIdentifier(_ p: PaymentRecord, merchant: Row?, payeeFP: String?, _ db: Database) throws -> SharedIdentifier? {
        // The identifier's index leads (CROSS JOIN fixes the order), then each of the few
        // merchants sharing it is looked up by USCC (`+` keeps the planner off the programme's
        // index): a programme has thousands of payments.
        let live = "p.state NOT IN ('voided', 'failed') AND +p.policy_id = ? AND p.uscc != ?"
        if let fp = payeeFP {
            let others = try String.fetchAll(
                db.cachedStatement(
                    sql:
                        "SELECT DISTINCT p.uscc FROM payees y CROSS JOIN payments p ON p.uscc = y.uscc WHERE y.fingerprint = ? AND \(live) LIMIT 20"
                ),
                arguments: [fp, p.policyID, p.uscc])
            if !others.isEmpty { return SharedIdentifier(code: "shared_account", what: "bank account", others: others) }
        }
        for (column, code, what) in [
            ("id_fp", "shared_legal_rep", "legal representative"), ("phone_fp", "shared_phone", "phone"),
            ("address_fp", "shared_address", "address"),
        ] {
            guard let fp: String = merchant?[column] else { continue }
            let others = try String.fetchAll(
                db.cachedStatement(
                    sql:
                        "SELECT DISTINCT p.uscc FROM merchants m CROSS JOIN payments p ON p.uscc = m.uscc WHERE m.\(column) = ? AND \(live) LIMIT 20"
                ),
                arguments: [fp, p.policyID, p.uscc])
            if !others.isEmpty { return SharedIdentifier(code: code, what: what, others: others) }
        }
        return nil
    }

    /// DESIGN §8 flags merchants that share an identifier "with another recipient": both sides.
    /// The other recipients' payments of the programme that are not yet instructed (received or
    /// ready: a ready one's reservation is released) are held too, unless an operator already
    /// cleared that code for them.
    func holdOtherSide(_ link: SharedIdentifier, of p: PaymentRecord, _ db: Database) throws {
        for other in link.others {
            for row in try Row.fetchAll(
                db.cachedStatement(sql: "SELECT * FROM payments WHERE uscc = ? AND policy_id = ? AND state IN ('received', 'ready')"),
                arguments: [other, p.policyID])
            {
                var q = PaymentRecord(row: row)
                guard !q.clearedHolds.contains(link.code) else { continue }
                try releaseReservation(&q, db)
                try hold(&q, link.code, "the same \(link.what) as \(p.uscc), another recipient of \(p.policyID)", db)
            }
        }
    }

    func hold(_ p: inout PaymentRecord, _ code: String, _ detail: String, _ db: Database) throws {
        if p.state == .held && p.holdCode == code { return }
        // One open hold per payment: the one it is under now replaces any before.
        try closeOpenHolds(p.id, "superseded", db)
        p.state = .held
        p.holdCode = code
        p.holdReason = detail
        try db.execute(
            sql: "INSERT INTO holds(payment_id, code, detail, opened_at) VALUES (?, ?, ?, ?)", arguments: [p.id, code, detail, now])
        try record(db, "hold.opened", ["payment_id": .string(p.id), "code": .string(code), "detail": .string(detail)])
        try emit(&p, "payment.held", extra: ["reason": .string(code)], db: db)
    }

    /// Holds `account_changed` for the account `fingerprint` (a later change while held moves
    /// the hold to the newest account: a release accepts only the account it names).
    func holdAccountChanged(_ p: inout PaymentRecord, _ fingerprint: String, _ db: Database) throws {
        try releaseReservation(&p, db)
        if p.state == .held && p.holdCode == "account_changed" {
            guard p.accountHoldFP != fingerprint else { return }
            p.accountHoldFP = fingerprint
            try p.save(db, now: now)
            try record(
                db, "hold.updated", ["payment_id": .string(p.id), "code": "account_changed", "payee_fingerprint": .string(fingerprint)])
            return
        }
        p.accountHoldFP = fingerprint
        try hold(
            &p, "account_changed", "the bank account changed after approval: an operator's release accepts the new account (and only it)",
            db)
    }

    /// The most attempts of one payment: an EndToEndId is the 32 hex digits of the payment id, a
    /// dash and at most two digits (35 characters). A payment returned or voided that often is
    /// held `attempts_exhausted` instead of reserving again.
    static let maxAttempt = 99

    /// The pain.001 line of a payment to `payee` (a `payees` row), as the batch writes it.
    func creditTransfer(_ p: PaymentRecord, payee: Row, _ db: Database) throws -> CreditTransfer {
        let name =
            (try String.fetchOne(db.cachedStatement(sql: "SELECT name FROM merchants WHERE uscc = ?"), arguments: [p.uscc])) ?? p.uscc
        return CreditTransfer(
            endToEndID: Self.endToEndID(p), amountFen: p.amountFen, creditorName: name, creditorAccount: payee["account_no"],
            creditorAgent: (payee["bank"] as String?) ?? "", remittanceInformation: String((p.title ?? p.policyID).prefix(140)),
            creditorUSCC: p.uscc)
    }

    /// Why the payment's pain.001 line could not be written (a name or bank over the lengths
    /// pain.001 allows, characters XML cannot carry, an empty field), or nil. Only treasury
    /// payments are written as pain.001.
    func payeeDataProblem(_ p: PaymentRecord, payee: Row, _ db: Database) throws -> String? {
        guard p.channel == "treasury" else { return nil }
        do {
            try Pain001.validate(try creditTransfer(p, payee: payee, db), field: "payment")
            return nil
        } catch let e as BatchError {
            return "the payment cannot be written into a pain.001 file: \(e)"
        }
    }

    func releaseReservation(_ p: inout PaymentRecord, _ db: Database) throws {
        guard p.benefit == "cash", p.pool != nil, p.state == .ready || p.state == .instructed else { return }
        do {
            try ledger.void(db, id: Self.transferID("void", p), pendingID: Self.transferID("reserve", p), note: "released")
        } catch {
            // Nothing reserved, or already resolved: nothing to release.
            guard error.code == .unknownPending || error.code == .alreadyResolved else { throw error }
            return
        }
        if let pool = p.pool { touchedPools.add(pool) }
    }

    /// Checks the `pool_short` holds of every pool money came back into during this unit of
    /// work (`touchedPools`), until no release frees more. Called at the end of each upstream
    /// event, command and return file, inside its transaction.
    public func releaseTouchedPools(_ db: Database) throws {
        while let pool = touchedPools.next() { try releasePoolShort(pool: pool, db) }
    }

    /// Money came back into `pool` (funding, a released reservation, a failed or returned
    /// payment, a recovered clawback): payments held `pool_short` are checked again in priority
    /// order, and the first that still does not fit stops the pass (strict priority order).
    /// Reads only the pool's `pool_short` holds (the partial index `payments_pool_short`).
    /// The head of the line is read one payment at a time: each one checked leaves `pool_short`
    /// or ends the pass, so a pass costs (payments released + 1) index lookups however many wait.
    func releasePoolShort(pool: String, _ db: Database) throws {
        let head = try db.cachedStatement(
            sql:
                "SELECT * FROM payments WHERE state = 'held' AND hold_code = 'pool_short' AND pool = ? ORDER BY priority DESC, approved_seq LIMIT 1"
        )
        while let row = try Row.fetchOne(head, arguments: [pool]) {
            var p = PaymentRecord(row: row)
            try check(&p, db)
            if p.state == .held && p.holdCode == "pool_short" { break }
        }
    }

    // MARK: Operator commands

    /// `pool.funded`: money into a pool, then held payments released in priority order.
    func fund(pool: String, source: String, amountFen: Int64, transferID: String, _ db: Database) throws {
        try ledger.openAccount(db, id: "source:\(source)", kind: "source", mayGoNegative: true)
        try ledger.openAccount(db, id: Self.poolAccount(pool), kind: "pool", mayGoNegative: false)
        try ledger.transfer(
            db, id: transferID, debit: "source:\(source)", credit: Self.poolAccount(pool), amountFen: amountFen, ref: pool, note: source)
        try releasePoolShort(pool: pool, db)
    }

    func releaseHold(id: String, by: String, reason: String, _ db: Database) throws {
        guard var p = try PaymentRecord.find(id, db) else { throw Rejection(.invalidData, field: "data.payment_id", "no payment \(id)") }
        guard p.state == .held, let code = p.holdCode else {
            throw Rejection(.invalidData, field: "data.payment_id", "payment \(id) is \(p.state.rawValue), not held")
        }
        guard code != "pool_short" else {
            throw Rejection(.invalidData, field: "data.payment_id", "a pool_short hold is released by funding the pool, not by an operator")
        }
        guard code != "no_verified_account" && code != "holder_mismatch" else {
            throw Rejection(
                .invalidData, field: "data.payment_id",
                "a \(code) hold is released by an account verified in the merchant's registered name (实名制), not by an operator")
        }
        guard !Self.approvalHolds.contains(code) && code != "attempts_exhausted" else {
            throw Rejection(
                .invalidData, field: "data.payment_id",
                "a \(code) hold is ended by a later approval from the matcher or by hold.rejected, not by a release")
        }
        if code == "lessor_unconfirmed", try hasOpenReversal(p, db) {
            throw Rejection(
                .invalidData, field: "data.payment_id",
                "payment \(id) is revoked (\(p.revoked ?? "revoked")) and its cancellation is with the lessor (bangfu payments reversals): a reminder would ask the lessor to carry it out; end the hold with hold.rejected"
            )
        }
        try db.execute(
            sql:
                "UPDATE holds SET resolution = 'released', resolved_by = ?, resolved_at = ?, reason = ? WHERE payment_id = ? AND resolution IS NULL",
            arguments: [by, now, reason, id])
        try record(db, "hold.released", ["payment_id": .string(id), "code": .string(code), "by": .string(by), "reason": .string(reason)])
        if code == "lessor_unconfirmed" {
            // The instruction is in a lessor file already: it goes back to awaiting the lessor's
            // confirmation with a new deadline and a reminder, never into another file.
            p.state = .instructed
            p.holdCode = nil
            p.deadline = Timestamp.format(clock.now().addingTimeInterval(TimeInterval(settings.lessorDeadlineDays * 86_400)))
            try emit(&p, "payment.instructed", extra: ["reminder": true], db: db)
            return
        }
        if code == "account_changed" {
            // The operator accepted this account — the one the hold names, and no other.
            // (A hold opened before the account was kept with it accepts the current account.)
            p.payeeFingerprint = p.accountHoldFP
            p.accountHoldFP = nil
        } else if !["invalid_payee_data", "ledger_refused"].contains(code) {
            p.clearedHolds.insert(code)
        }
        p.state = .received
        try check(&p, db, releasing: code)
    }

    func rejectHold(id: String, by: String, reason: String, _ db: Database) throws {
        guard var p = try PaymentRecord.find(id, db), p.state == .held else {
            throw Rejection(.invalidData, field: "data.payment_id", "payment \(id) is not held")
        }
        try db.execute(
            sql:
                "UPDATE holds SET resolution = 'rejected', resolved_by = ?, resolved_at = ?, reason = ? WHERE payment_id = ? AND resolution IS NULL",
            arguments: [by, now, reason, id])
        try record(
            db, "hold.rejected",
            ["payment_id": .string(id), "code": .string(p.holdCode ?? ""), "by": .string(by), "reason": .string(reason)])
        let code = p.holdCode ?? ""
        p.state = .voided
        p.holdReason = "hold rejected by \(by): \(reason)"
        // Said on the feed: the matcher's entitlement (and the merchant) no longer read "held".
        // `payment.failed` (DESIGN §4 has no voided type) with the stable reason `hold_rejected`;
        // the hold it ends is `rejected_hold`, and `voided` says no retry follows.
        try emit(
            &p, "payment.failed",
            extra: [
                "reason": "hold_rejected", "hold_code": .null, "rejected_hold": .string(code), "voided": true,
            ], db: db)
    }

    func recovered(paymentID: String, amountFen: Int64, transferID: String, _ db: Database) throws {
        guard let p = try PaymentRecord.find(paymentID, db), p.state == .clawedBack, let pool = p.pool else {
            throw Rejection(.invalidData, field: "data.payment_id", "no open clawback for \(paymentID)")
        }
        guard
            let row = try Row.fetchOne(
                db, sql: "SELECT amount_fen, recovered_fen, returned_at FROM receivables WHERE payment_id = ?", arguments: [paymentID])
        else {
            throw Rejection(.invalidData, field: "data.payment_id", "no receivable for \(paymentID)")
        }
        if row["returned_at"] as String? != nil {
            throw Rejection(
                .invalidData, field: "data.payment_id",
                "the clawback of \(paymentID) was closed by the bank's return: nothing more is owed (what the merchant repaid is owed back to it)"
            )
        }
        let open: Int64 = (row["amount_fen"] as Int64) - (row["recovered_fen"] as Int64)
        guard amountFen <= open else {
            throw Rejection(.invalidAmount, field: "data.amount_fen", "only \(open) fen is still owed on \(paymentID)")
        }
        try ledger.transfer(
            db, id: transferID, debit: Self.receivableAccount(pool), credit: Self.poolAccount(pool), amountFen: amountFen, ref: paymentID,
            note: "clawback recovered")
        try db.execute(
            sql:
                "UPDATE receivables SET recovered_fen = recovered_fen + ?, state = CASE WHEN recovered_fen + ? >= amount_fen THEN 'closed' ELSE 'open' END WHERE payment_id = ?",
            arguments: [amountFen, amountFen, paymentID])
        try releasePoolShort(pool: pool, db)
    }

    // MARK: Channels

    /// Writes the next batch of a channel: its ready payments in priority order, at most
    /// `max` (default `settings.batchMaxPayments`). The file's content is stored with the batch
    /// (same transaction), then written after commit.
    func batch(channel: String, max: Int? = nil, commandID: String? = nil, _ db: Database) throws -> PendingFile? {
        if let paused = try Row.fetchOne(db, sql: "SELECT reason FROM channels WHERE channel = ? AND paused = 1", arguments: [channel]) {
            throw Rejection(.invalidData, field: "data.channel", "channel \(channel) is paused: \(paused["reason"] as String? ?? "")")
        }
        // A batch is numbered from the database: never under a number a file in the outbox (or
        // in `sent/`) already has, which the bank may have taken (a database restored from an
        // older backup would otherwise reuse it, and pay again what that file paid).
        let highest = try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM batches") ?? 0
        if let why = BatchFiles.blocked(highest: highest, outbox: settings.outboxDirectory) {
            logger.critical(
                "batch numbering is blocked: no batch is made until an operator deals with the outbox", metadata: ["problem": "\(why)"])
            throw Rejection(.invalidData, field: "data.channel", "batch_numbering_blocked: \(why)")
        }
        // A lessor's or agency's file also carries the cancellations and reversals of what they
        // were told before (`Reversals.swift`), first: they stop what should not be carried out.
        // The treasury's money comes back by clawback. `max` bounds the file's lines, and the
        // reversals' total is summed as the instructions' (below).
        let limit = Swift.max(1, max ?? settings.batchMaxPayments)
        var reversals: [(ReversalRecord, PaymentRecord)] = []
        var reversalTotal: Int64 = 0
        for item in channel == "treasury" ? [] : try pendingReversals(channel: channel, max: limit, db) {
            let (sum, overflow) = reversalTotal.addingReportingOverflow(item.1.amountFen)
            guard !overflow, (0...YuanAmount.maxFen).contains(sum) else { break }
            reversalTotal = sum
            reversals.append(item)
        }
        let rows =
            limit > reversals.count
            ? try Row.fetchAll(
                db, sql: "SELECT * FROM payments WHERE state = 'ready' AND channel = ? ORDER BY priority DESC, approved_seq LIMIT ?",
                arguments: [channel, limit - reversals.count]) : []
        guard !rows.isEmpty || !reversals.isEmpty else {
            // Nothing ready: say so only for a channel that exists. A mistyped agency (or one no
            // approval has named yet) would otherwise be answered like an empty channel.
            let known = try knownChannels(db)
            guard known.contains(channel) else {
                throw Rejection(
                    .invalidData, field: "data.channel",
                    "unknown channel \(channel): no payment has been approved on it; known channels: \(known.joined(separator: ", "))")
            }
            return nil
        }
        var payments = rows.map(PaymentRecord.init)
        let kind = channel == "treasury" ? "pain001" : channel == "lessor" ? "lessor" : "agency"
        var transfers: [String: CreditTransfer] = [:]
        if kind == "pain001" {
            // Cash goes only to a verified account in the registered name (DESIGN §8), the one
            // seen at approval: a payment that has none now is held, its reservation released,
            // and kept out of the file, so that the file, the stored batch and the
            // `payment.instructed` events agree. So is a payment whose line cannot be written
            // (a name or bank longer than pain.001 allows, …): the rest of the batch goes out.
            var kept: [PaymentRecord] = []
            for var p in payments {
                let payee = try Row.fetchOne(
                    db.cachedStatement(sql: "SELECT account_no, bank, holder_matches, fingerprint FROM payees WHERE uscc = ?"),
                    arguments: [p.uscc])
                guard let payee else {
                    try releaseReservation(&p, db)
                    try hold(&p, "no_verified_account", "no bank account verified when the batch was made (实名制)", db)
                    continue
                }
                guard (payee["holder_matches"] as Bool?) == true else {
                    try releaseReservation(&p, db)
                    try hold(
                        &p, "holder_mismatch", "the verified account's holder was not the registered name when the batch was made (实名制)", db
                    )
                    continue
                }
                let fingerprint: String = payee["fingerprint"]
                if let seen = p.payeeFingerprint, seen != fingerprint {
                    try holdAccountChanged(&p, fingerprint, db)
                    continue
                }
                let transfer = try creditTransfer(p, payee: payee, db)
                do {
                    try Pain001.validate(transfer, field: "payment \(p.id)")
                } catch {
                    try releaseReservation(&p, db)
                    try hold(&p, "invalid_payee_data", "the payment cannot be written into a pain.001 file: \(error)", db)
                    continue
                }
                transfers[p.id] = transfer
                kept.append(p)
            }
            payments = kept
            guard !payments.isEmpty else { return nil }
        }
        // The file's total is summed with overflow checked and kept within what a control sum
        // carries (`YuanAmount.maxFen`): the payments that would pass it wait for the next batch,
        // as those over `max` do. A payment over the most one payment may be (approved before
        // approvals were bounded) is held `invalid_amount`, never summed.
        var total: Int64 = 0
        var fitting: [PaymentRecord] = []
        for var p in payments {
            guard (0...Ledger.maxAmountFen).contains(p.amountFen) else {
                try releaseReservation(&p, db)
                try hold(&p, "invalid_amount", Self.overMaximum(p), db)
                continue
            }
            let (sum, overflow) = total.addingReportingOverflow(p.amountFen)
            guard !overflow, sum <= YuanAmount.maxFen else { break }
            total = sum
            fitting.append(p)
        }
        payments = fitting
        guard !payments.isEmpty || !reversals.isEmpty else { return nil }
        let seq = highest + 1
        let batchID = String(format: "B%06d", seq)
        // One deadline for the whole file: written on its lines and stored with its payments.
        let deadline =
            kind == "lessor" ? Timestamp.format(clock.now().addingTimeInterval(TimeInterval(settings.lessorDeadlineDays * 86_400))) : nil
        let content: String
        let fileName: String
        switch kind {
        case "pain001":
            let batch = CreditTransferBatch(
                messageID: "BANGFU-\(batchID)", createdAt: clock.now(), initiatingParty: "Bangfu 帮扶", debtorName: settings.debtorName,
                debtorAccount: settings.debtorAccount, debtorAgent: settings.debtorAgent,
                requestedExecutionDate: ChinaTime.civilDate(of: clock.now()), payments: payments.compactMap { transfers[$0.id] })
            content = try Pain001.xml(batch)
            fileName = "BANGFU-\(batchID).xml"
        default:
            var lines: [JSON] = []
            let due = deadline
            for p in payments {
                var o = p.json.objectValue ?? JSONObject()
                // The line is the instruction: its payment is instructed by this file, never the
                // `ready` it was in while the batch was being decided.
                o["line"] = "instruction"
                o["state"] = .string(PaymentState.instructed.rawValue)
                o["instruction"] = .string(
                    kind == "lessor" ? "rent_waiver: refund, offset or extension within \(settings.lessorDeadlineDays) days" : "deferral")
                if kind == "lessor", try Self.refundOnly(p.id, db) {
                    o["instruction"] = .string(
                        "rent_waiver: refund directly within \(settings.lessorDeadlineDays) days (a lease under three months in the period: no offset, no extension)"
                    )
                }
                // Enough to act on: whose lease, which lessor, for which period, confirm by when.
                if let raw = try Data.fetchOne(
                    db.cachedStatement(sql: "SELECT instruction_detail FROM payments WHERE id = ?"), arguments: [p.id]),
                    case .object(let detail) = try? JSONParser.parse([UInt8](raw))
                {
                    for (k, v) in detail.members { o[k] = v }
                }
                if let binding = p.binding { o["binding"] = .string(binding) }
                if let due { o["confirm_by"] = .string(due) }
                lines.append(.object(o))
            }
            let instructions = Int64(lines.count)
            // The reversals come first, as they were chosen first.
            lines = try reversals.map { try reversalLine($0.0, $0.1, batchID: batchID, deadline: due, db) } + lines
            let header: JSON = [
                "kind": .string(channel), "batch_id": .string(batchID), "count": .int(instructions), "total_fen": .int(total),
                "reversal_count": .int(Int64(reversals.count)),
                "reversal_total_fen": .int(reversalTotal), "created_at": .string(now),
            ]
            content = ([header] + lines).map { $0.serialized() }.joined(separator: "\n") + "\n"
            fileName = "BANGFU-\(batchID)-\(channel.replacingOccurrences(of: ":", with: "_")).jsonl"
        }
        let bytes = Data(content.utf8)
        let digest = SHA256.hash([UInt8](bytes)).hexString
        // The file's SHA-256 is in the audit chain: the file written (now, or after a restart) must
        // be exactly this content (`PendingFiles.flush`).
        var created: JSONObject = [
            "batch_id": .string(batchID), "channel": .string(channel), "count": .int(Int64(payments.count)), "total_fen": .int(total),
            "file": .string(fileName), "sha256": .string(digest),
        ]
        if !reversals.isEmpty { created["reversals"] = .int(Int64(reversals.count)) }
        let link = try audit.append(db, kind: "batch.created", entry: .object(created))
        try db.execute(
            sql:
                "INSERT INTO batches(id, seq, channel, file_name, count, total_fen, created_at, sha256, audit_seq, command_id, reversals) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            arguments: [batchID, seq, channel, fileName, payments.count, total, now, digest, link.seq, commandID, reversals.count])
        try db.execute(sql: "INSERT INTO batch_files(batch_id, content) VALUES (?, ?)", arguments: [batchID, bytes])
        try db.execute(sql: "INSERT INTO batch_tallies(batch_id) VALUES (?)", arguments: [batchID])
        for (r, p) in reversals {
            var p = p
            try instructReversal(r, batchID: batchID, deadline: deadline, db)
            // On the feed too: the matcher keeps it in the entitlement's history.
            var extra: JSONObject = [
                "action": .string(r.action.rawValue), "reason": .string(r.reason), "batch_id": .string(batchID), "file": .string(fileName),
                "original_batch_id": r.originalBatchID.map { .string($0) } ?? .null,
                "audit_link": ["seq": .int(link.seq), "hash": .string(link.hash)],
            ]
            if let deadline { extra["confirm_by"] = .string(deadline) }
            try emit(&p, "reversal.instructed", extra: extra, db: db)
        }
        for k in payments.indices {
            payments[k].state = .instructed
            payments[k].batchID = batchID
            payments[k].deadline = deadline
            // Each payment's move to `instructed` is in the audit chain: what, how much, to which
            // account (its fingerprint and the masked number — never the number in clear).
            var entry: JSONObject = [
                "payment_id": .string(payments[k].id), "batch_id": .string(batchID), "amount_fen": .int(payments[k].amountFen),
                "attempt": .int(Int64(payments[k].attempt)), "channel": .string(channel),
            ]
            if let t = transfers[payments[k].id] {
                entry["end_to_end_id"] = .string(t.endToEndID)
                entry["payee_fingerprint"] = payments[k].payeeFingerprint.map { .string($0) } ?? .null
                entry["account"] = .string(Mask.bankAccount(t.creditorAccountNumber))
            }
            try record(db, "payment.instructed", .object(entry))
            // The batch's link in the audit chain goes out with each instruction: every subscriber
            // that keeps it (the matcher's entitlement history) holds an anchor of the chain
            // outside this database (`bangfu audit verify --anchor SEQ:HASH`).
            try emit(
                &payments[k], "payment.instructed",
                extra: ["file": .string(fileName), "audit_link": ["seq": .int(link.seq), "hash": .string(link.hash)]], db: db)
        }
        return PendingFile(batchID: batchID, name: fileName, content: content)
    }

    /// The payment id is the entitlement id; ISO 20022's EndToEndId holds 35 characters, so the
    /// `ent-` prefix is left out on the wire.
    static func endToEndID(_ paymentID: String) -> String {
        paymentID.hasPrefix("ent-") ? String(paymentID.dropFirst(4)) : String(paymentID.prefix(35))
    }

    /// The EndToEndId of a payment's current attempt: the payment id's, then `-<attempt>` for an
    /// attempt after the first (each instruction its own id, as ISO 20022 means it), so that a
    /// bank's report on an earlier attempt can never be taken for the current one. 32 hex digits,
    /// a dash and up to two digits fit the 35 characters (`maxAttempt`: a payment never
    /// reserves a further attempt). Should a longer one ever be asked for, the base is shortened
    /// so that the suffix stays: an id of its own, never the first attempt's.
    static func endToEndID(_ p: PaymentRecord) -> String {
        let base = endToEndID(p.id)
        guard p.attempt > 0 else { return base }
        let suffix = "-" + String(p.attempt)
        return String(base.prefix(35 - suffix.count)) + suffix
    }

    static func paymentID(endToEnd: String) -> String { attempt(endToEnd: endToEnd).id }

    /// The payment id and attempt an EndToEndId names (attempt 0 without a `-<n>` suffix).
    static func attempt(endToEnd: String) -> (id: String, attempt: Int) {
        let parts = endToEnd.split(separator: "-", omittingEmptySubsequences: false)
        if parts.count == 2, parts[0].count == 32, let n = Int(parts[1]), n > 0 { return ("ent-" + parts[0], n) }
        return (endToEnd.count == 32 ? "ent-" + endToEnd : endToEnd, 0)
    }

    /// What one line of a bank return did.
    enum LineOutcome: Equatable {
        /// Applied to a payment of this batch (nil for none).
        case applied(batch: String?)
        /// A settled payment the bank returned afterwards (camt.054 `RtrInf`): reversed to `failed`.
        case reversed(batch: String?)
        /// Not applied: the problem, kept in `return_anomalies` for an operator.
        case anomaly(String)
    }

    /// Applies a bank return line by line; lines for unknown or already settled payments are
    /// reported, not applied twice. Each line runs in its own savepoint: a line the ledger or the
    /// store refuses is rolled back alone and recorded as an anomaly (an operator sees it with
    /// `return.anomalies`), and every other line of the file is still applied.
    /// Returns (applied, anomalies).
    func applyReturn(_ file: ReturnFile, returnID: String, _ db: Database) throws -> (Int, Int) {
        if try Bool.fetchOne(db, sql: "SELECT 1 FROM returns WHERE id = ?", arguments: [returnID]) == true { return (0, 0) }
        var applied = 0
        var anomalies = 0
        var reversed = 0
        var batches: Set<String> = []
        // A pain.002 that rejects the whole batch at group level (GrpSts RJCT) without a line
        // per transaction fails every payment of that batch's current attempt.
        var lines = file.lines
        if file.isGroupRejection {
            switch try groupRejection(file, returnID: returnID, db) {
            case .success(let expanded): lines = expanded
            case .failure(let problem):
                anomalies += 1
                try db.execute(
                    sql: "INSERT INTO return_anomalies(return_id, payment_id, problem) VALUES (?, ?, ?)",
                    arguments: [returnID, file.originalMessageID ?? "", problem.description])
                logger.error(
                    "a bank return rejecting a whole batch was not applied (recorded as an anomaly)",
                    metadata: ["return": "\(returnID)", "batch": "\(file.originalMessageID ?? "-")", "problem": "\(problem)"])
            }
        }
        for line in lines {
            let (id, attempt) = Self.attempt(endToEnd: line.endToEndID)
            var outcome = LineOutcome.anomaly("not applied")
            do {
                try db.inSavepoint {
                    outcome = try applyLine(line, paymentID: id, attempt: attempt, file: file, returnID: returnID, db)
                    return .commit
                }
            } catch let error as DatabaseError where ![.SQLITE_CONSTRAINT].contains(error.resultCode) {
                // The database itself failed (I/O, disk full, …): SQLite may have rolled back the
                // whole transaction, so nothing more may be applied in it — the file is retried.
                throw error
            } catch let error as LedgerError where error.code == .database {
                // The same, met inside the ledger (which wraps SQLite's errors).
                throw error
            } catch {
                outcome = .anomaly("could not be applied: \(error)")
            }
            switch outcome {
            case .applied(let batch):
                applied += 1
                if let batch { batches.insert(batch) }
            case .reversed(let batch):
                applied += 1
                reversed += 1
                if let batch { batches.insert(batch) }
            case .anomaly(let problem):
                anomalies += 1
                try db.execute(
                    sql: "INSERT INTO return_anomalies(return_id, payment_id, problem) VALUES (?, ?, ?)",
                    arguments: [returnID, id, problem])
                logger.error(
                    "a bank return line was not applied (recorded as an anomaly)",
                    metadata: ["return": "\(returnID)", "payment": "\(id)", "problem": "\(problem)"])
            }
        }
        try db.execute(
            sql: "INSERT INTO returns(id, kind, lines, applied, anomalies, reversed, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            arguments: [returnID, file.kind == .pain002 ? "pain.002" : "camt.054", lines.count, applied, anomalies, reversed, now])
        try record(
            db, "return.applied",
            [
                "return_id": .string(returnID), "applied": .int(Int64(applied)), "anomalies": .int(Int64(anomalies)),
                "reversed": .int(Int64(reversed)),
            ])
        // A batch whose failure share is over the threshold pauses its channel (an alert).
        for b in batches {
            guard
                let row = try Row.fetchOne(
                    db,
                    sql:
                        "SELECT b.count, COALESCE(t.failed, 0) AS failed, b.channel FROM batches b LEFT JOIN batch_tallies t ON t.batch_id = b.id WHERE b.id = ?",
                    arguments: [b])
            else {
                continue
            }
            let failed: Int64 = row["failed"]
            let count: Int64 = row["count"]
            if settings.failurePauseThreshold.exceeded(failed: failed, total: count) {
                let channel: String = row["channel"]
                let reason = "batch \(b): \(failed) of \(count) payments failed"
                try db.execute(
                    sql:
                        "INSERT INTO channels(channel, paused, reason) VALUES (?, 1, ?) ON CONFLICT(channel) DO UPDATE SET paused = 1, reason = excluded.reason",
                    arguments: [channel, reason])
                try record(db, "channel.paused", ["channel": .string(channel), "reason": .string(reason)])
                logger.critical(
                    "payment channel paused: failure rate over the threshold", metadata: ["channel": "\(channel)", "batch": "\(b)"])
            }
        }
        return (applied, anomalies)
    }

    /// The lines a group-level rejection (pain.002 `GrpSts` RJCT, no `TxInfAndSts`) stands
    /// for: one failed line per payment whose current attempt is in the batch it names, or why
    /// it cannot be applied (an unknown batch, totals that disagree with the batch's).
    func groupRejection(_ file: ReturnFile, returnID: String, _ db: Database) throws -> Result<[ReturnLine], GroupProblem> {
        guard let original = file.originalMessageID, original.hasPrefix("BANGFU-") else {
            return .failure(
                GroupProblem("the report rejects a whole batch but names none of ours (OrgnlMsgId \(file.originalMessageID ?? "-"))"))
        }
        let batchID = String(original.dropFirst("BANGFU-".count))
        guard let batch = try Row.fetchOne(db, sql: "SELECT count, total_fen, channel FROM batches WHERE id = ?", arguments: [batchID])
        else {
            return .failure(GroupProblem("the report rejects batch \(original), which is unknown"))
        }
        let count: Int = batch["count"]
        let total: Int64 = batch["total_fen"]
        if let c = file.declaredCount, c != count {
            return .failure(GroupProblem("the report rejects \(original) with \(c) payments; the batch has \(count)"))
        }
        if let t = file.declaredTotalFen, t != total {
            return .failure(GroupProblem("the report rejects \(original) with a total of \(t) fen; the batch has \(total) fen"))
        }
        let code = file.groupReasonCode ?? "RJCT"
        let payments = try Row.fetchAll(
            db, sql: "SELECT * FROM payments WHERE batch_id = ? AND channel = 'treasury' AND state = 'instructed' ORDER BY approved_seq",
            arguments: [batchID]
        ).map(PaymentRecord.init)
        logger.error(
            "the bank rejected a whole batch: every payment of it fails", metadata: ["batch": "\(batchID)", "code": "\(code)"])
        return .success(
            payments.map {
                ReturnLine(
                    endToEndID: Self.endToEndID($0), status: .failed(reasonCode: code, reason: "batch \(original) rejected as a whole"),
                    amountFen: $0.amountFen)
            })
    }

    struct GroupProblem: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    /// One line of a return, inside its own savepoint.
    func applyLine(
        _ line: ReturnLine, paymentID id: String, attempt: Int, file: ReturnFile, returnID: String, _ db: Database
    ) throws -> LineOutcome {
        guard var p = try PaymentRecord.find(id, db) else { return .anomaly("unknown payment") }
        // A report on an earlier attempt (a retried payment's old instruction, a return the bank
        // sends again) is never applied to the current one.
        guard attempt == p.attempt else {
            return .anomaly("the line reports on attempt \(attempt) of the payment; its current attempt is \(p.attempt)")
        }
        if p.state == .settled, p.channel == "treasury", file.kind == .camt054, case .failed(let code, let reason) = line.status {
            if let amount = line.amountFen, amount != p.amountFen {
                return .anomaly("returned amount \(amount) fen does not match the settled \(p.amountFen) fen")
            }
            return try returnedAfterSettlement(&p, code: code, reason: reason, returnID: returnID, db)
        }
        if p.state == .clawedBack, p.channel == "treasury", file.kind == .camt054, case .failed(let code, _) = line.status {
            if let amount = line.amountFen, amount != p.amountFen {
                return .anomaly("returned amount \(amount) fen does not match the clawed-back \(p.amountFen) fen")
            }
            return try returnedAfterClawback(p, code: code, returnID: returnID, db)
        }
        guard p.state == .instructed, p.channel == "treasury" else {
            return .anomaly("payment is \(p.state.rawValue), not awaiting a return")
        }
        if let amount = line.amountFen, amount != p.amountFen {
            return .anomaly("amount \(amount) fen does not match the instructed \(p.amountFen) fen")
        }
        // A retried payment is in a later batch: a (late) report on the earlier one is not about it.
        if let original = file.originalMessageID, let b = p.batchID, original != "BANGFU-\(b)" {
            return .anomaly("the return reports on \(original); the payment is instructed in BANGFU-\(b)")
        }
        switch line.status {
        case .settled:
            if p.benefit == "cash", p.pool != nil {
                try ledger.post(
                    db, id: Self.transferID("settle", p), pendingID: Self.transferID("reserve", p), note: "bank return \(returnID)")
            }
            p.state = .settled
            try emit(&p, "payment.settled", extra: ["return_id": .string(returnID)], db: db)
            if let b = p.batchID { try Self.tally(b, settled: 1, db) }
            try settledAfterRevocation(&p, db)
        case .failed(let code, let reason):
            if p.benefit == "cash", let pool = p.pool {
                try ledger.void(
                    db, id: Self.transferID("void", p), pendingID: Self.transferID("reserve", p), note: "bank return \(returnID): \(code)")
                touchedPools.add(pool)
            }
            p.state = .failed
            p.holdReason = "bank return \(code)" + (reason.map { ": \($0)" } ?? "")
            try emit(&p, "payment.failed", extra: ["reason": .string(code), "return_id": .string(returnID)], db: db)
            if let b = p.batchID { try Self.tally(b, failed: 1, db) }
        }
        return .applied(batch: p.batchID)
    }

    /// The bank returned a payment it had settled (camt.054 `RtrInf`: the money came back).
    /// The settlement is reversed by a posted transfer back into the pool (double entry, the
    /// reservation stays posted), the payment is `failed` and is retried like any failure
    /// (`payee`): a new verified account reserves afresh.
    func returnedAfterSettlement(
        _ p: inout PaymentRecord, code: String, reason: String?, returnID: String, _ db: Database
    ) throws -> LineOutcome {
        if p.benefit == "cash", let pool = p.pool {
            try ledger.transfer(
                db, id: Self.transferID("returned", p), debit: Self.paidAccount(pool), credit: Self.poolAccount(pool),
                amountFen: p.amountFen, ref: p.id, note: "returned after settlement: \(returnID) \(code)")
            touchedPools.add(pool)
        }
        p.state = .failed
        p.holdReason = "returned after settlement \(code)" + (reason.map { ": \($0)" } ?? "")
        try emit(
            &p, "payment.failed", extra: ["reason": .string(code), "return_id": .string(returnID), "after_settlement": true], db: db)
        if let b = p.batchID {
            try Self.tally(b, settled: -1, failed: 1, db)
        }
        logger.error(
            "a settled payment was returned by the bank: settlement reversed, payment failed",
            metadata: ["payment": "\(p.id)", "return": "\(returnID)", "code": "\(code)", "amount_fen": "\(p.amountFen)"])
        return .reversed(batch: p.batchID)
    }

    /// The bank returned a payment whose clawback is open (camt.054 `RtrInf` after settlement):
    /// the treasury has the money back, so the receivable is settled by it — a posted transfer
    /// from `receivable:<pool>` into `pool:<pool>` of what is still owed (as a recovery), and the
    /// receivable closed. Money already recovered from the merchant as well is now owed back to
    /// them: a review note says how much. The payment stays `clawed_back`.
    func returnedAfterClawback(_ p: PaymentRecord, code: String, returnID: String, _ db: Database) throws -> LineOutcome {
        guard p.benefit == "cash", let pool = p.pool,
            let row = try Row.fetchOne(
                db, sql: "SELECT amount_fen, recovered_fen, state, returned_at FROM receivables WHERE payment_id = ?", arguments: [p.id])
        else { return .anomaly("payment is clawed_back without a receivable") }
        // The bank returns a payment once: the same return again (under another message id) is
        // an anomaly, never a second closing nor a refund note for money nobody repaid.
        if let at = row["returned_at"] as String? {
            return .anomaly("the clawback of this payment was already closed by a bank return at \(at)")
        }
        let owed: Int64 = row["amount_fen"]
        let recovered: Int64 = row["recovered_fen"]
        let open = max(0, owed - recovered)
        if open > 0 {
            try ledger.transfer(
                db, id: "returned/\(p.id)/clawback", debit: Self.receivableAccount(pool), credit: Self.poolAccount(pool), amountFen: open,
                ref: p.id, note: "returned by the bank after the clawback opened: \(returnID) \(code)")
            touchedPools.add(pool)
        }
        try db.execute(
            sql: "UPDATE receivables SET state = 'closed', returned_at = ? WHERE payment_id = ?", arguments: [now, p.id])
        try record(
            db, "clawback.returned",
            [
                "payment_id": .string(p.id), "return_id": .string(returnID), "code": .string(code), "closed_fen": .int(open),
                "already_recovered_fen": .int(recovered),
            ])
        if recovered > 0 {
            try review(
                p, "refund_owed",
                "the bank returned the payment after \(recovered) fen was recovered from the merchant: that much is owed back to them", db)
        }
        logger.error(
            "a clawed-back payment was returned by the bank: receivable closed",
            metadata: ["payment": "\(p.id)", "return": "\(returnID)", "closed_fen": "\(open)"])
        return .applied(batch: nil)
    }

    /// `lessor.confirmed` / `agency.confirmed`: the lessor or agency carried the instruction
    /// out; a failed offset or extension turns into a refund the lessor owes (seed 篇二 (三)).
    /// `by` is `lessor` or `agency`: each confirms only its own channel's instructions (a treasury
    /// payment settles only by the bank's return). A lessor names the payment, or the lease (and
    /// the programme, `policy_id`, when the lease has more than one rent waiver).
    /// Returns a note when the confirmation changed nothing (the payment no longer awaited one).
    @discardableResult
    func confirmed(
        by: String, paymentID: String?, lease: String?, policyID: String? = nil, ok: Bool, method: String?, reversal: Bool = false,
        source: String? = nil, _ db: Database
    ) throws -> String? {
        var found: PaymentRecord?
        if let paymentID {
            guard let p = try PaymentRecord.find(paymentID, db) else {
                throw Rejection(.invalidData, field: "data.payment_id", "no payment \(paymentID)")
            }
            if let lease, p.binding != lease {
                throw Rejection(.invalidData, field: "data.lease", "payment \(paymentID) is not for lease \(lease)")
            }
            if let policyID, p.policyID != policyID {
                throw Rejection(.invalidData, field: "data.policy_id", "payment \(paymentID) is under \(p.policyID), not \(policyID)")
            }
            found = p
        } else if let lease {
            // A lease names its rent waiver only when it has exactly one: with two (the waiver
            // and a city-owned property's extra month, say) a confirmation by lease could settle
            // the one the lessor did not confirm, so the payment must be named.
            let waivers = try Row.fetchAll(
                db.cachedStatement(
                    sql:
                        "SELECT * FROM payments WHERE binding = ? AND channel = 'lessor' AND (?2 IS NULL OR policy_id = ?2) ORDER BY id LIMIT 2"
                ),
                arguments: [lease, policyID]
            ).map(PaymentRecord.init)
            guard let only = waivers.first else {
                throw Rejection(
                    .invalidData, field: "data.lease",
                    "no rent waiver for lease \(lease)\(policyID.map { " under \($0)" } ?? "")")
            }
            if waivers.count > 1 {
                throw Rejection(
                    .invalidData, field: "data.lease",
                    "lease \(lease) has more than one rent waiver: name the programme (policy_id) or the payment_id")
            }

            found = only
        }
        guard var p = found else { throw Rejection(.invalidData, field: "data.payment_id", "payment_id is required") }
        let ownChannel = by == "lessor" ? p.channel == "lessor" : p.channel.hasPrefix("agency:")
        guard ownChannel else {
            throw Rejection(
                .invalidData, field: "data.payment_id",
                "payment \(p.id) is on the \(p.channel) channel: \(by).confirmed confirms only \(by == "lessor" ? "lessor" : "agency:<name>") instructions"
            )
        }
        if let source { try Self.checkConfirmer(source, of: p, db) }
        if reversal { return try confirmedReversal(p, by: by, ok: ok, method: method, db) }
        // Instructed, or escalated (held) after it was instructed; a repeat changes nothing.
        guard p.state == .instructed || (p.state == .held && p.batchID != nil) else {
            return "payment \(p.id) is \(p.state.rawValue), not awaiting a confirmation: this one changed nothing"
        }
        if p.channel == "lessor", let m = method, m != "refund", try Self.refundOnly(p.id, db) {
            throw Rejection(
                .invalidData, field: "data.method",
                "payment \(p.id) is refunded directly (its lease runs under three months in the period: 直接退付): method must be refund")
        }
        if ok {
            if p.state == .held { try closeOpenHolds(p.id, "cleared", db) }
            p.state = .settled
            try emit(&p, "payment.settled", extra: ["method": method.map { .string($0) } ?? .null], db: db)
            try settledAfterRevocation(&p, db)
            // The batch's count of settled lines: a confirmation settles an instruction as a bank
            // return settles a transfer.
            if let b = p.batchID { try Self.tally(b, settled: 1, db) }
        } else if p.channel == "lessor", let m = method, m == "offset" || m == "extension" {
            p.state = .instructed
            p.holdReason = "\(m) failed: the lessor owes a refund of the waived rent"
            p.deadline = Timestamp.format(clock.now().addingTimeInterval(TimeInterval(settings.lessorDeadlineDays * 86_400)))
            try emit(&p, "payment.instructed", extra: ["instruction": "refund", "reason": .string("\(m)_failed")], db: db)
        } else {
            if p.state == .held { try closeOpenHolds(p.id, "cleared", db) }
            p.state = .failed
            p.holdReason = "not carried out" + (method.map { " (\($0))" } ?? "")
            try emit(&p, "payment.failed", extra: ["reason": "not_carried_out"], db: db)
            if let b = p.batchID { try Self.tally(b, failed: 1, db) }
            try closeCancellation(&p, by: by, db)
        }
        // DESIGN §8: every state change is in the audit chain — a confirmation moves no money
        // through the ledger, so it is recorded here (who confirmed, how, what it became).
        try record(
            db, "payment.confirmed",
            [
                "payment_id": .string(p.id), "by": .string(by), "ok": .bool(ok), "method": method.map { .string($0) } ?? .null,
                "state": .string(p.state.rawValue),
            ])
        return nil
    }

    /// A lessor instruction with an open cancellation (`Reversals.swift`) is not escalated: the
    /// lessor was told not to carry it out, and the cancellation has a deadline of its own.
    static let cancelled =
        "EXISTS (SELECT 1 FROM reversals r WHERE r.payment_id = payments.id AND r.original_batch_id = payments.batch_id AND r.state IN ('pending', 'instructed', 'declined'))"

    /// Lessor instructions unconfirmed past their deadline are escalated (held, for an operator).
    /// Whether a lessor instruction is past its deadline (a read, for the loop's every tick).
    func anyOverdue(_ db: Database) throws -> Bool {
        try Bool.fetchOne(
            db.cachedStatement(
                sql:
                    "SELECT 1 FROM payments INDEXED BY payments_lessor_deadline WHERE state = 'instructed' AND channel = 'lessor' AND deadline IS NOT NULL AND deadline < ? AND NOT \(Self.cancelled) LIMIT 1"
            ),
            arguments: [now]) ?? false || anyReversalOverdue(db)
    }

    /// Escalates what is overdue: lessor instructions (held `lessor_unconfirmed`) and lessor
    /// reversals (a review note each); returns how many.
    func escalateOverdue(_ db: Database) throws -> Int {
        let rows = try Row.fetchAll(
            db,
            sql:
                "SELECT * FROM payments INDEXED BY payments_lessor_deadline WHERE state = 'instructed' AND channel = 'lessor' AND deadline IS NOT NULL AND deadline < ? AND NOT \(Self.cancelled) ORDER BY deadline",
            arguments: [now])
        for row in rows {
            var p = PaymentRecord(row: row)
            try hold(&p, "lessor_unconfirmed", "no confirmation from the lessor within \(settings.lessorDeadlineDays) days", db)
        }
        return rows.count + (try escalateOverdueReversals(db))
    }

    /// The channels there is something to batch on or had been: `treasury` and `lessor` always,
    /// and each `agency:<name>` once a payment was approved on it (a policy names the channel,
    /// and payments learns it from `entitlement.approved`). Read by skipping through the
    /// `(state, channel)` index, a few seeks per state and channel, however many payments there are.
    func knownChannels(_ db: Database) throws -> [String] {
        var known: Set<String> = ["treasury", "lessor"]
        var state = ""
        let nextState = try db.cachedStatement(
            sql: "SELECT state FROM payments INDEXED BY payments_state_seq WHERE state > ? ORDER BY state LIMIT 1")
        let nextChannel = try db.cachedStatement(
            sql:
                "SELECT channel FROM payments INDEXED BY payments_state_seq WHERE state = ? AND channel > ? ORDER BY state, channel LIMIT 1"
        )
        while let s = try String.fetchOne(nextState, arguments: [state]) {
            var channel = ""
            while let c = try String.fetchOne(nextChannel, arguments: [s, channel]) {
                known.insert(c)
                channel = c
            }
            state = s
        }
        for c in try String.fetchAll(db, sql: "SELECT channel FROM channels UNION SELECT DISTINCT channel FROM batches") { known.insert(c) }
        let builtIn = ["treasury", "lessor"]
        return builtIn + known.subtracting(builtIn).sorted()
    }

    func resume(channel: String, _ db: Database) throws {
        try db.execute(sql: "UPDATE channels SET paused = 0, reason = NULL WHERE channel = ?", arguments: [channel])
        try record(db, "channel.resumed", ["channel": .string(channel)])
    }
}

/// The pools money came back into during one unit of work (see `PaymentsEngine.touchedPools`).
final class TouchedPools: Sendable {
    private let pools = Mutex<[String]>([])

    func add(_ pool: String) {
        pools.withLock { if !$0.contains(pool) { $0.append(pool) } }
    }

    /// Forgets every pool: a unit of work starts (what an undone one added does not count).
    func clear() {
        pools.withLock { $0.removeAll() }
    }

    /// The next pool to check, removed from the list; nil when none is left.
    func next() -> String? {
        pools.withLock { $0.isEmpty ? nil : $0.removeFirst() }
    }
}
