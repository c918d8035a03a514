import Foundation
import GRDB
import Models
import Storage

/// The cancellation or reversal of a rent waiver, fee waiver or deferral that the lessor or
/// agency had when its entitlement was revoked (fraud, an upheld objection). No public money
/// moves, so no receivable is owed to the pool: what is owed is an act of the lessor or agency —
/// not to carry the instruction out, or to undo it (collect the waived rent, end the deferral).
/// It goes to them as a line of the channel's next instruction file and awaits their
/// confirmation as the instruction did (DESIGN §7–8: a revoked entitlement that was carried out
/// is taken back).
public struct ReversalRecord: Sendable, Equatable {
    /// `cancel` (revoked while the lessor or agency had the instruction, not yet confirmed) or
    /// `reverse` (revoked after they confirmed carrying it out).
    public enum Action: String, Sendable {
        case cancel
        case reverse
    }

    /// `pending` (waiting for the channel's next file), `instructed` (in a file, awaiting the
    /// confirmation), `confirmed` (done), `declined` (the lessor or agency said it was not done:
    /// an operator pursues it).
    public enum State: String, Sendable {
        case pending
        case instructed
        case confirmed
        case declined
    }

    public var paymentID: String
    public var channel: String
    public var action: Action
    public var reason: String
    public var state: State
    public var originalBatchID: String?
    public var batchID: String?
    public var deadline: String?
    public var escalatedAt: String?
    public var method: String?
    public var openedAt: String
    public var closedAt: String?

    init(row: Row) {
        paymentID = row["payment_id"]
        channel = row["channel"]
        action = Action(rawValue: row["action"]) ?? .reverse
        reason = row["reason"]
        state = State(rawValue: row["state"]) ?? .pending
        originalBatchID = row["original_batch_id"]
        batchID = row["batch_id"]
        deadline = row["deadline"]
        escalatedAt = row["escalated_at"]
        method = row["method"]
        openedAt = row["opened_at"]
        closedAt = row["closed_at"]
    }

    static func find(_ paymentID: String, _ db: Database) throws -> ReversalRecord? {
        try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM reversals WHERE payment_id = ?"), arguments: [paymentID])
            .map(ReversalRecord.init)
    }

    public var json: JSON {
        var o: JSONObject = [
            "payment_id": .string(paymentID), "channel": .string(channel), "action": .string(action.rawValue),
            "reason": .string(reason), "state": .string(state.rawValue), "opened_at": .string(openedAt),
        ]
        if let originalBatchID { o["original_batch_id"] = .string(originalBatchID) }
        if let batchID { o["batch_id"] = .string(batchID) }
        if let deadline { o["confirm_by"] = .string(deadline) }
        if let escalatedAt { o["escalated_at"] = .string(escalatedAt) }
        if let method { o["method"] = .string(method) }
        if let closedAt { o["closed_at"] = .string(closedAt) }
        return .object(o)
    }

    /// What the lessor or agency is asked to do, in the line's `instruction`.
    func instruction(benefit: String, deadlineDays: Int?) -> String {
        let undo =
            benefit == "rent_waiver"
            ? "collect the waived rent from the tenant"
            : benefit == "deferral" ? "end the deferral: the deferred amounts fall due" : "charge the waived fees"
        let by = deadlineDays.map { "; confirm within \($0) days" } ?? ""
        switch action {
        case .cancel:
            return
                "cancel_\(benefit): the entitlement is revoked (\(reason)): do not carry out the instruction of batch \(originalBatchID ?? "?"); if it was carried out, \(undo)\(by)"
        case .reverse:
            return "reverse_\(benefit): the entitlement is revoked (\(reason)): \(undo)\(by)"
        }
    }
}

extension PaymentsEngine {
    /// Opens the payment's reversal (at most one per payment): `cancel` while the instruction is
    /// with the lessor or agency, `reverse` once they carried it out. A cancellation still
    /// waiting for its file becomes a reversal when the instruction is confirmed after all.
    func openReversal(_ p: PaymentRecord, action: ReversalRecord.Action, reason: String, _ db: Database) throws {
        guard p.benefit != "cash", p.channel != "treasury" else { return }
        if let existing = try ReversalRecord.find(p.id, db) {
            let open = [.pending, .instructed, .declined].contains(existing.state)
            if existing.originalBatchID == p.batchID {
                // The same instruction: a cancellation not yet sent becomes a reversal once the
                // instruction is confirmed after all; anything else is already in hand.
                if existing.state == .pending, existing.action == .cancel, action == .reverse {
                    try db.execute(sql: "UPDATE reversals SET action = 'reverse' WHERE payment_id = ?", arguments: [p.id])
                    try record(
                        db, "reversal.opened", ["payment_id": .string(p.id), "action": "reverse", "reason": .string(existing.reason)])
                }
                return
            }
            if open {
                // A later instruction of the payment (approved again after its first was
                // cancelled) revoked while the first's reversal is still open: one reversal per
                // payment is tracked, so an operator tells the lessor or agency about this one.
                return try review(
                    p, "reversal_by_hand",
                    "the \(p.benefit) of \(p.uscc) in batch \(p.batchID ?? "?") is revoked (\(reason)) while the reversal of batch \(existing.originalBatchID ?? "?") is still \(existing.state.rawValue): tell \(p.channel == "lessor" ? "the lessor" : p.channel) by hand",
                    db)
            }
            // The earlier reversal is closed: this instruction's takes its place (the chain keeps both).
            try db.execute(sql: "DELETE FROM reversals WHERE payment_id = ?", arguments: [p.id])
        }
        try db.execute(
            sql: """
                INSERT INTO reversals(payment_id, channel, action, reason, state, original_batch_id, opened_at)
                VALUES (?, ?, ?, ?, 'pending', ?, ?)
                """,
            arguments: [p.id, p.channel, action.rawValue, reason, p.batchID, now])
        try record(
            db, "reversal.opened",
            [
                "payment_id": .string(p.id), "channel": .string(p.channel), "benefit": .string(p.benefit),
                "action": .string(action.rawValue),
                "reason": .string(reason), "original_batch_id": p.batchID.map { .string($0) } ?? .null,
            ])
        logger.notice(
            "a reversal awaits the channel's next instruction file",
            metadata: ["payment": "\(p.id)", "channel": "\(p.channel)", "action": "\(action.rawValue)"])
    }

    /// The channel's reversals waiting for a file: the first `max` opened, in payment id order.
    /// A fraud finding reaches payments from the registry and from the matcher, in either order,
    /// and so opens a merchant's reversals in either order: the file is the same either way.
    func pendingReversals(channel: String, max: Int, _ db: Database) throws -> [(ReversalRecord, PaymentRecord)] {
        let rows = try Row.fetchAll(
            db.cachedStatement(
                sql: "SELECT * FROM reversals INDEXED BY reversals_pending WHERE state = 'pending' AND channel = ? ORDER BY seq LIMIT ?"),
            arguments: [channel, Swift.max(1, max)])
        return try rows.map(ReversalRecord.init).sorted { $0.paymentID < $1.paymentID }.compactMap { r in
            try PaymentRecord.find(r.paymentID, db).map { (r, $0) }
        }
    }

    /// A reversal's line in an instruction file: the payment it takes back, what to do, why,
    /// and (a lessor's) by when to confirm — with the lease and tenant, as the instruction had.
    func reversalLine(_ r: ReversalRecord, _ p: PaymentRecord, batchID: String, deadline: String?, _ db: Database) throws -> JSON {
        // No `payment_id`: a reader that knows only instructions must not take this line for one
        // (and confirm a cancellation as the waiver carried out).
        var o: JSONObject = [
            "line": "reversal", "reversal_of": .string(p.id), "policy_id": .string(p.policyID),
            "title": p.title.map { .string($0) } ?? .null, "uscc": .string(p.uscc),
            "benefit": .string(p.benefit), "channel": .string(p.channel), "amount_fen": .int(p.amountFen),
            "action": .string(r.action.rawValue), "reason": .string(r.reason),
            "original_batch_id": r.originalBatchID.map { .string($0) } ?? .null,
            "instruction": .string(r.instruction(benefit: p.benefit, deadlineDays: deadline == nil ? nil : settings.lessorDeadlineDays)),
        ]
        if let raw = try Data.fetchOne(
            db.cachedStatement(sql: "SELECT instruction_detail FROM payments WHERE id = ?"), arguments: [p.id]),
            case .object(let detail) = try? JSONParser.parse([UInt8](raw))
        {
            for (k, v) in detail.members where o[k] == nil { o[k] = v }
        }
        if let binding = p.binding { o["binding"] = .string(binding) }
        if let deadline { o["confirm_by"] = .string(deadline) }
        return .object(o)
    }

    /// The reversal is in batch `batchID`'s file: it awaits the confirmation from now on.
    func instructReversal(_ r: ReversalRecord, batchID: String, deadline: String?, _ db: Database) throws {
        try db.execute(
            sql: "UPDATE reversals SET state = 'instructed', batch_id = ?, deadline = ? WHERE payment_id = ?",
            arguments: [batchID, deadline, r.paymentID])
        try record(
            db, "reversal.instructed",
            [
                "payment_id": .string(r.paymentID), "batch_id": .string(batchID), "action": .string(r.action.rawValue),
                "confirm_by": deadline.map { .string($0) } ?? .null,
            ])
    }

    /// The lessor's or agency's word on a reversal (`lessor.confirmed` / `agency.confirmed` with
    /// `"reversal": true`). Done: the reversal is closed, and an instruction never confirmed is
    /// voided (cancelled before it was carried out: a late confirmation of it changes nothing).
    /// Not done: the reversal is `declined` and an operator is told to pursue it. Returns a note
    /// when it changed nothing.
    func confirmedReversal(_ p: PaymentRecord, by: String, ok: Bool, method: String?, _ db: Database) throws -> String? {
        guard let r = try ReversalRecord.find(p.id, db) else {
            throw Rejection(
                .invalidData, field: "data.reversal",
                "payment \(p.id) has no reversal to confirm (it is \(p.state.rawValue)): leave out \"reversal\" to confirm the instruction")
        }
        let awaiting: Set<ReversalRecord.State> = ok ? [.pending, .instructed, .declined] : [.pending, .instructed]
        guard awaiting.contains(r.state) else {
            return "the reversal of payment \(p.id) is \(r.state.rawValue), not awaiting a confirmation: this one changed nothing"
        }
        // Declined before it was sent: it would never be sent (declined is not pending), so the
        // lessor or agency declines only what its file told it.
        if !ok, r.state == .pending {
            throw Rejection(
                .invalidData, field: "data.ok",
                "the reversal of payment \(p.id) is not in a file yet (it goes in the channel's next one): it can be confirmed done, not declined"
            )
        }
        let state: ReversalRecord.State = ok ? .confirmed : .declined
        try db.execute(
            sql: "UPDATE reversals SET state = ?, method = ?, closed_at = ? WHERE payment_id = ?",
            arguments: [state.rawValue, method, now, p.id])
        var payment = p
        // Only the instruction the reversal cancels is voided (not a later one of the payment).
        if ok, payment.batchID == r.originalBatchID, payment.state == .instructed || (payment.state == .held && payment.batchID != nil) {
            if payment.state == .held { try closeOpenHolds(payment.id, "voided", db) }
            payment.state = .voided
            payment.holdReason = "cancelled before it was carried out: \(r.reason)"
            payment.deadline = nil
            try payment.save(db, now: now)
            try record(db, "payment.voided", payment.json)
        }
        if !ok {
            let who = p.channel == "lessor" ? "the lessor" : p.channel
            try review(
                p, "reversal_declined",
                "\(who) did not \(r.action == .cancel ? "cancel" : "reverse") the \(p.benefit) of \(p.uscc) (revoked: \(r.reason))\(method.map { ", \($0)" } ?? ""): pursue it by hand",
                db)
        }
        try emit(
            &payment, "reversal.confirmed",
            extra: [
                "action": .string(r.action.rawValue), "ok": .bool(ok), "method": method.map { .string($0) } ?? .null,
                "reversal_state": .string(state.rawValue), "batch_id": r.batchID.map { .string($0) } ?? .null,
            ], db: db)
        try record(
            db, "reversal.confirmed",
            [
                "payment_id": .string(p.id), "by": .string(by), "ok": .bool(ok), "method": method.map { .string($0) } ?? .null,
                "state": .string(state.rawValue), "payment_state": .string(payment.state.rawValue),
            ])
        return nil
    }

    /// The lessor or agency says the instruction was not carried out: its cancellation has nothing
    /// left to do and is closed (`not_carried_out`), never sent or escalated.
    func closeCancellation(_ p: inout PaymentRecord, by: String, _ db: Database) throws {
        guard let r = try ReversalRecord.find(p.id, db), r.action == .cancel, r.originalBatchID == p.batchID,
            [.pending, .instructed, .declined].contains(r.state)
        else { return }
        try db.execute(
            sql: "UPDATE reversals SET state = 'confirmed', method = 'not_carried_out', closed_at = ? WHERE payment_id = ?",
            arguments: [now, p.id])
        try emit(
            &p, "reversal.confirmed",
            extra: [
                "action": "cancel", "ok": true, "method": "not_carried_out", "reversal_state": "confirmed",
                "batch_id": r.batchID.map { .string($0) } ?? .null,
            ], db: db)
        try record(
            db, "reversal.confirmed",
            [
                "payment_id": .string(p.id), "by": .string(by), "ok": true, "method": "not_carried_out", "state": "confirmed",
                "payment_state": .string(p.state.rawValue),
            ])
    }

    /// Whether the payment's instruction has an open cancellation or reversal (an escalation or a
    /// reminder of the instruction would contradict it).
    func hasOpenReversal(_ p: PaymentRecord, _ db: Database) throws -> Bool {
        guard let r = try ReversalRecord.find(p.id, db) else { return false }
        return r.originalBatchID == p.batchID && [.pending, .instructed, .declined].contains(r.state)
    }

    /// For `status`: the reversals not yet confirmed, and those of them escalated (a lessor's past
    /// its deadline) or declined — the ones an operator pursues.
    func reversalCounts(_ db: Database) throws -> (open: Int, needOperator: Int) {
        let row = try Row.fetchOne(
            db,
            sql: """
                SELECT COUNT(*) AS open, COALESCE(SUM(state = 'declined' OR escalated_at IS NOT NULL), 0) AS operator
                FROM reversals WHERE state != 'confirmed'
                """)
        return (row?["open"] ?? 0, row?["operator"] ?? 0)
    }

    /// Whether a lessor's reversal is past its deadline unconfirmed and not yet escalated.
    func anyReversalOverdue(_ db: Database) throws -> Bool {
        try Bool.fetchOne(
            db.cachedStatement(
                sql:
                    "SELECT 1 FROM reversals INDEXED BY reversals_overdue WHERE state = 'instructed' AND deadline IS NOT NULL AND escalated_at IS NULL AND deadline < ? LIMIT 1"
            ),
            arguments: [now]) ?? false
    }

    /// A lessor's reversal unconfirmed past its deadline: an operator is told, once.
    func escalateOverdueReversals(_ db: Database) throws -> Int {
        let rows = try Row.fetchAll(
            db.cachedStatement(
                sql:
                    "SELECT * FROM reversals INDEXED BY reversals_overdue WHERE state = 'instructed' AND deadline IS NOT NULL AND escalated_at IS NULL AND deadline < ? ORDER BY deadline"
            ),
            arguments: [now]
        ).map(ReversalRecord.init)
        for r in rows {
            try db.execute(sql: "UPDATE reversals SET escalated_at = ? WHERE payment_id = ?", arguments: [now, r.paymentID])
            try review(
                paymentID: r.paymentID, "reversal_unconfirmed",
                "the lessor has not confirmed the \(r.action.rawValue) of batch \(r.batchID ?? "?") within \(settings.lessorDeadlineDays) days (revoked: \(r.reason))",
                db)
        }
        return rows.count
    }
}
