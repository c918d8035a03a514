import Foundation
import GRDB
import Storage
import Testing

@testable import Models
@testable import Payments

/// A rent waiver or deferral revoked once the lessor or agency had it is taken back by a line
/// of the channel's next instruction file (`Reversals.swift`), confirmed as the instruction was.
@Suite struct ReversalTests {
    static let a = "91411002MA0000001A"
    static let b = "91411002MA0000002B"
    static let idA = "ent-" + String(repeating: "a", count: 32)
    static let idB = "ent-" + String(repeating: "b", count: 32)

    /// The header and the lines of an instruction file.
    static func lines(_ file: PendingFile) throws -> (JSON, [JSON]) {
        let all = try file.content.split(separator: "\n").map { try JSONParser.parse(String($0)) }
        return (try #require(all.first), Array(all.dropFirst()))
    }

    func reversal(_ f: EngineFixture, _ id: String) throws -> ReversalRecord? {
        try f.database.db.writer.read { db in try ReversalRecord.find(id, db) }
    }

    func reviews(_ f: EngineFixture, _ id: String) throws -> [String] {
        try f.database.db.writer.read { db in
            try String.fetchAll(db, sql: "SELECT code FROM reviews WHERE payment_id = ? ORDER BY id", arguments: [id])
        }
    }

    func auditKinds(_ f: EngineFixture) throws -> [String] {
        try f.database.db.writer.read { db in try String.fetchAll(db, sql: "SELECT kind FROM audit_chain ORDER BY seq") }
    }

    func waiver(_ f: EngineFixture, _ id: String = idA, uscc: String = a, lease: String = "L-1") throws {
        try f.approve(
            id, uscc: uscc, amountFen: 300_000, policy: "test-rent", benefit: "rent_waiver", channel: "lessor", pool: nil, binding: lease)
    }

    /// A waiver the lessor carried out, then found fraudulent: no receivable (no public money
    /// left), but a reversal in the lessor's next file — alone in it, with the lease, what to do
    /// and by when — which the lessor's confirmation closes; a repeat changes nothing.
    @Test func aCarriedOutWaiverRevokedForFraudIsReversedByTheNextFile() throws {
        let f = try EngineFixture()
        try f.merchant(Self.a, name: "甲")
        try waiver(f)
        let first = try #require(try f.batch("lessor"))
        try f.write { db in try f.engine.confirmed(by: "lessor", paymentID: Self.idA, lease: nil, ok: true, method: "refund", db) }
        #expect(try f.state(Self.idA) == .settled)
        #expect(try f.batch("lessor") == nil, "nothing to send")

        try f.write { db in try f.engine.fraud(uscc: Self.a, db) }
        #expect(try f.state(Self.idA) == .clawedBack)
        let opened = try #require(try reversal(f, Self.idA))
        #expect(opened.action == .reverse && opened.state == .pending && opened.originalBatchID == first.batchID)
        #expect(try reviews(f, Self.idA).isEmpty, "an instruction file carries it: no note for an operator")
        let claw = try #require(try f.events("clawback.opened", Self.idA).first)
        #expect(claw["receivable_fen"]?.intValue == 0 && claw["amount_fen"]?.intValue == 300_000 && claw["reversal"]?.boolValue == true)

        let file = try #require(try f.batch("lessor"))
        let (header, lines) = try Self.lines(file)
        #expect(header["count"]?.intValue == 0 && header["total_fen"]?.intValue == 0)
        #expect(header["reversal_count"]?.intValue == 1 && header["reversal_total_fen"]?.intValue == 300_000)
        let line = try #require(lines.first)
        #expect(lines.count == 1)
        #expect(line["line"]?.stringValue == "reversal" && line["reversal_of"]?.stringValue == Self.idA)
        #expect(line["action"]?.stringValue == "reverse" && line["original_batch_id"]?.stringValue == first.batchID)
        #expect(line["binding"]?.stringValue == "L-1" && line["confirm_by"]?.stringValue != nil)
        let instruction = try #require(line["instruction"]?.stringValue)
        #expect(instruction.hasPrefix("reverse_rent_waiver") && instruction.contains("collect the waived rent"), "\(instruction)")
        let sent = try #require(try reversal(f, Self.idA))
        #expect(sent.state == .instructed && sent.batchID == file.batchID && sent.deadline == line["confirm_by"]?.stringValue)
        #expect(try f.batch("lessor") == nil, "never in a second file")

        let note = try f.write { db in
            try f.engine.confirmed(by: "lessor", paymentID: nil, lease: "L-1", ok: true, method: "reversed", reversal: true, db)
        }
        #expect(note == nil)
        let done = try #require(try reversal(f, Self.idA))
        #expect(done.state == .confirmed && done.method == "reversed" && done.closedAt != nil)
        #expect(try f.state(Self.idA) == .clawedBack)
        let again = try f.write { db in
            try f.engine.confirmed(by: "lessor", paymentID: Self.idA, lease: nil, ok: true, method: nil, reversal: true, db)
        }
        #expect(again?.contains("changed nothing") == true)
        // On the feed: in which file, and the lessor's word (the matcher keeps both in the history).
        let sentEvent = try #require(try f.events("reversal.instructed", Self.idA).first)
        #expect(sentEvent["batch_id"]?.stringValue == file.batchID && sentEvent["file"]?.stringValue == file.name)
        #expect(sentEvent["action"]?.stringValue == "reverse" && sentEvent["audit_link"]?["seq"]?.intValue != nil)
        let doneEvents = try f.events("reversal.confirmed", Self.idA)
        #expect(
            doneEvents.count == 1 && doneEvents.first?["ok"]?.boolValue == true && doneEvents.first?["method"]?.stringValue == "reversed")
        let kinds = try auditKinds(f)
        for kind in ["reversal.opened", "reversal.instructed", "reversal.confirmed"] {
            #expect(kinds.filter { $0 == kind }.count == 1, "\(kind): \(kinds)")
        }
        #expect(try f.balanced())
    }

    /// A deferral revoked while the agency has it (unconfirmed): a cancellation goes out with the
    /// channel's next instructions (counted apart from them); its confirmation voids the payment,
    /// and the agency's late confirmation of the deferral then changes nothing — no clawback.
    @Test func anUnconfirmedDeferralRevokedIsCancelledAndNeverSettles() throws {
        let f = try EngineFixture()
        try f.merchant(Self.a, name: "甲")
        try f.merchant(Self.b, name: "乙")
        try f.approve(Self.idA, uscc: Self.a, amountFen: 50_000, policy: "si", benefit: "deferral", channel: "agency:si", pool: nil)
        let first = try #require(try f.batch("agency:si"))
        try f.write { db in try f.engine.revoked(["entitlement_id": .string(Self.idA), "reason": "objection_upheld"], db) }
        #expect(try f.state(Self.idA) == .instructed)
        let opened = try #require(try reversal(f, Self.idA))
        #expect(opened.action == .cancel && opened.state == .pending)

        try f.approve(Self.idB, uscc: Self.b, amountFen: 70_000, policy: "si", benefit: "deferral", channel: "agency:si", pool: nil)
        let file = try #require(try f.batch("agency:si"))
        let (header, lines) = try Self.lines(file)
        #expect(header["count"]?.intValue == 1 && header["total_fen"]?.intValue == 70_000)
        #expect(header["reversal_count"]?.intValue == 1 && header["reversal_total_fen"]?.intValue == 50_000)
        #expect(lines.map { $0["payment_id"]?.stringValue ?? $0["reversal_of"]?.stringValue } == [Self.idA, Self.idB], "reversals first")
        #expect(lines.map { $0["line"]?.stringValue } == ["reversal", "instruction"])
        #expect(lines.first?["payment_id"] == nil, "a reversal line is never taken for an instruction")
        let cancel = try #require(lines.first)
        #expect(cancel["action"]?.stringValue == "cancel" && cancel["confirm_by"] == nil, "an agency has no deadline")
        let instruction = try #require(cancel["instruction"]?.stringValue)
        #expect(instruction.contains("do not carry out the instruction of batch \(first.batchID)"), "\(instruction)")
        let listed = try PaymentsQueries(database: f.database.db, engine: f.engine).respond(["op": "batch.list"])
        let batches = try #require(listed?["items"]?.arrayValue)
        #expect(batches.last?["count"]?.intValue == 1 && batches.last?["reversals"]?.intValue == 1)

        try f.write { db in
            try f.engine.confirmed(by: "agency", paymentID: Self.idA, lease: nil, ok: true, method: "cancelled", reversal: true, db)
        }
        #expect(try f.state(Self.idA) == .voided)
        #expect(try f.payment(Self.idA).holdReason?.contains("cancelled before it was carried out") == true)
        let late = try f.write { db in try f.engine.confirmed(by: "agency", paymentID: Self.idA, lease: nil, ok: true, method: nil, db) }
        #expect(late?.contains("changed nothing") == true)
        #expect(try f.state(Self.idA) == .voided)
        #expect(try f.events("clawback.opened", Self.idA).isEmpty)
        #expect(try f.balanced())
    }

    /// A cancellation still waiting for its file when the lessor confirms the waiver after all
    /// becomes a reversal: one line, never two, and the payment is clawed back.
    @Test func aPendingCancellationBecomesAReversalWhenTheWaiverIsConfirmed() throws {
        let f = try EngineFixture()
        try f.merchant(Self.a, name: "甲")
        try waiver(f)
        #expect(try f.batch("lessor") != nil)
        try f.write { db in try f.engine.revoked(["entitlement_id": .string(Self.idA), "reason": "objection_upheld"], db) }
        #expect(try reversal(f, Self.idA)?.action == .cancel)
        try f.write { db in try f.engine.confirmed(by: "lessor", paymentID: Self.idA, lease: nil, ok: true, method: "offset", db) }
        #expect(try f.state(Self.idA) == .clawedBack)
        let r = try #require(try reversal(f, Self.idA))
        #expect(r.action == .reverse && r.state == .pending)
        let (_, lines) = try Self.lines(try #require(try f.batch("lessor")))
        #expect(lines.count == 1 && lines.first?["action"]?.stringValue == "reverse")
        #expect(try f.batch("lessor") == nil)
    }

    /// The lessor declines: an operator is told to pursue it; the lessor's later word that it was
    /// done closes it. A lessor reversal unconfirmed past its deadline is escalated once.
    @Test func declinedAndOverdueReversalsGoToAnOperator() throws {
        let f = try EngineFixture()
        try f.merchant(Self.a, name: "甲")
        try f.merchant(Self.b, name: "乙")
        for (id, uscc, lease) in [(Self.idA, Self.a, "L-1"), (Self.idB, Self.b, "L-2")] {
            try waiver(f, id, uscc: uscc, lease: lease)
        }
        #expect(try f.batch("lessor") != nil)
        for id in [Self.idA, Self.idB] {
            try f.write { db in try f.engine.confirmed(by: "lessor", paymentID: id, lease: nil, ok: true, method: "refund", db) }
        }
        try f.write { db in try f.engine.fraud(uscc: Self.a, db) }
        try f.write { db in try f.engine.fraud(uscc: Self.b, db) }
        #expect(try f.batch("lessor") != nil)

        try f.write { db in
            try f.engine.confirmed(by: "lessor", paymentID: Self.idA, lease: nil, ok: false, method: nil, reversal: true, db)
        }
        #expect(try reversal(f, Self.idA)?.state == .declined)
        #expect(try reviews(f, Self.idA) == ["reversal_declined"])

        #expect(try f.write { db in try f.engine.anyOverdue(db) } == false)
        f.clock.advance(seconds: 31 * 86_400)
        #expect(try f.write { db in try f.engine.anyOverdue(db) } == true)
        #expect(try f.write { db in try f.engine.escalateOverdue(db) } == 1, "only the one still awaited")
        #expect(try reviews(f, Self.idB) == ["reversal_unconfirmed"])
        #expect(try f.write { db in try f.engine.escalateOverdue(db) } == 0, "once")
        let counts = try f.write { db in try f.engine.reversalCounts(db) }
        #expect(counts.open == 2 && counts.needOperator == 2, "A declined, B overdue: \(counts)")
        #expect(try f.write { db in try f.engine.anyOverdue(db) } == false)

        try f.write { db in
            try f.engine.confirmed(by: "lessor", paymentID: Self.idA, lease: nil, ok: true, method: "reversed", reversal: true, db)
        }
        #expect(try reversal(f, Self.idA)?.state == .confirmed)
        #expect(try f.write { db in try f.engine.reversalCounts(db) } == (1, 1))
        let open = try PaymentsQueries(database: f.database.db, engine: f.engine).respond(["op": "reversals"])
        let items = try #require(open?["items"]?.arrayValue)
        #expect(items.map { $0["payment_id"]?.stringValue } == [Self.idB])
        #expect(items.first?["escalated_at"]?.stringValue != nil && items.first?["uscc"]?.stringValue == Self.b)
        let shown = try PaymentsQueries(database: f.database.db, engine: f.engine).respond(["op": "payment.show", "id": .string(Self.idA)])
        #expect(shown?["payment"]?["reversal"]?["state"]?.stringValue == "confirmed")
        #expect(try f.balanced())
    }

    /// Cash is taken back by a receivable, never by a reversal line; a confirmation naming a
    /// reversal that does not exist is refused, not taken for the instruction's.
    @Test func cashIsNeverReversedByAFileAndAMissingReversalIsRefused() throws {
        let f = try EngineFixture()
        try f.verified(Self.a, name: "甲", account: "6222020000000000001")
        try f.fund(1_000_000)
        try f.approve(Self.idA, uscc: Self.a)
        let file = try #require(try f.batch())
        #expect(try f.answer(batch: file.batchID, messageID: "R1", [Self.idA], .settled) == (1, 0))
        try f.write { db in try f.engine.fraud(uscc: Self.a, db) }
        #expect(try f.state(Self.idA) == .clawedBack)
        #expect(try reversal(f, Self.idA) == nil)

        try f.merchant(Self.b, name: "乙")
        try waiver(f, Self.idB, uscc: Self.b, lease: "L-2")
        #expect(try f.batch("lessor") != nil)
        #expect(throws: Rejection.self) {
            try f.write { db in
                try f.engine.confirmed(by: "lessor", paymentID: Self.idB, lease: nil, ok: true, method: nil, reversal: true, db)
            }
        }
        #expect(try f.state(Self.idB) == .instructed)
    }

    /// The lessor says the instruction was never carried out: its cancellation has nothing left to
    /// do and is closed, never sent; an instruction with an open cancellation is neither escalated
    /// when its deadline passes nor sent a reminder by an operator's release.
    @Test func aCancellationEndsWithTheInstructionAndStopsItsEscalation() throws {
        let f = try EngineFixture()
        try f.merchant(Self.a, name: "甲")
        try f.merchant(Self.b, name: "乙")
        try waiver(f)
        try waiver(f, Self.idB, uscc: Self.b, lease: "L-2")
        #expect(try f.batch("lessor") != nil)
        for id in [Self.idA, Self.idB] {
            try f.write { db in try f.engine.revoked(["entitlement_id": .string(id), "reason": "review_rejected"], db) }
        }
        try f.write { db in try f.engine.confirmed(by: "lessor", paymentID: Self.idA, lease: nil, ok: false, method: "refund", db) }
        #expect(try f.state(Self.idA) == .failed)
        let closed = try #require(try reversal(f, Self.idA))
        #expect(closed.state == .confirmed && closed.method == "not_carried_out")
        #expect(try f.events("reversal.confirmed", Self.idA).count == 1)

        // B's cancellation goes out; A's never does.
        let (_, lines) = try Self.lines(try #require(try f.batch("lessor")))
        #expect(lines.map { $0["reversal_of"]?.stringValue } == [Self.idB])
        f.clock.advance(seconds: 31 * 86_400)
        #expect(try f.write { db in try f.engine.escalateOverdue(db) } == 1, "the cancellation, not the instruction it cancels")
        #expect(try f.state(Self.idB) == .instructed)
        #expect(try reviews(f, Self.idB) == ["reversal_unconfirmed"])
    }

    /// An instruction escalated, then revoked: releasing its hold would remind the lessor to carry
    /// out what it was told to cancel, so it is refused.
    @Test func anEscalatedInstructionWithACancellationIsNotReleased() throws {
        let f = try EngineFixture()
        try f.merchant(Self.a, name: "甲")
        try waiver(f)
        #expect(try f.batch("lessor") != nil)
        f.clock.advance(seconds: 31 * 86_400)
        #expect(try f.write { db in try f.engine.escalateOverdue(db) } == 1)
        try f.write { db in try f.engine.revoked(["entitlement_id": .string(Self.idA), "reason": "review_rejected"], db) }
        #expect(try reversal(f, Self.idA)?.action == .cancel)
        #expect(throws: Rejection.self) {
            try f.write { db in try f.engine.releaseHold(id: Self.idA, by: "区商务局 李四", reason: "已电话催办", db) }
        }
        #expect(try f.payment(Self.idA).holdCode == "lessor_unconfirmed")
        #expect(try f.events("payment.instructed", Self.idA).count == 1, "no reminder")
    }

    /// `max` bounds a file's lines, reversals first; a reversal not yet sent cannot be declined
    /// (it would never be sent).
    @Test func maxBoundsTheLinesAndAnUnsentReversalIsNotDeclined() throws {
        let f = try EngineFixture()
        try f.merchant(Self.a, name: "甲")
        try f.merchant(Self.b, name: "乙")
        try f.approve(Self.idA, uscc: Self.a, amountFen: 1_000, policy: "si", benefit: "deferral", channel: "agency:si", pool: nil)
        #expect(try f.write { db in try f.engine.batch(channel: "agency:si", db) } != nil)
        try f.write { db in try f.engine.revoked(["entitlement_id": .string(Self.idA), "reason": "review_rejected"], db) }
        #expect(throws: Rejection.self) {
            try f.write { db in
                try f.engine.confirmed(by: "agency", paymentID: Self.idA, lease: nil, ok: false, method: nil, reversal: true, db)
            }
        }
        #expect(try reversal(f, Self.idA)?.state == .pending)
        try f.approve(Self.idB, uscc: Self.b, amountFen: 2_000, policy: "si", benefit: "deferral", channel: "agency:si", pool: nil)
        let first = try #require(try f.write { db in try f.engine.batch(channel: "agency:si", max: 1, db) })
        let (header, lines) = try Self.lines(first)
        #expect(lines.count == 1 && lines.first?["reversal_of"]?.stringValue == Self.idA)
        #expect(header["count"]?.intValue == 0 && header["reversal_count"]?.intValue == 1)
        let second = try #require(try f.write { db in try f.engine.batch(channel: "agency:si", max: 1, db) })
        #expect(try Self.lines(second).1.map { $0["payment_id"]?.stringValue } == [Self.idB])
    }

    /// A payment approved again after its cancellation voided it, and revoked again: the new
    /// instruction gets a cancellation of its own, and confirming it voids only that instruction.
    @Test func aRevivedPaymentRevokedAgainGetsAFreshCancellation() throws {
        let f = try EngineFixture()
        try f.merchant(Self.a, name: "甲")
        try waiver(f)
        let b1 = try #require(try f.batch("lessor"))
        try f.write { db in try f.engine.revoked(["entitlement_id": .string(Self.idA), "reason": "review_rejected"], db) }
        #expect(try f.batch("lessor") != nil)
        try f.write { db in
            try f.engine.confirmed(by: "lessor", paymentID: Self.idA, lease: nil, ok: true, method: "cancelled", reversal: true, db)
        }
        #expect(try f.state(Self.idA) == .voided)

        try waiver(f)
        let b3 = try #require(try f.batch("lessor"))
        #expect(try f.state(Self.idA) == .instructed && f.payment(Self.idA).batchID == b3.batchID)
        try f.write { db in try f.engine.revoked(["entitlement_id": .string(Self.idA), "reason": "review_rejected"], db) }
        let fresh = try #require(try reversal(f, Self.idA))
        #expect(
            fresh.state == .pending && fresh.action == .cancel && fresh.originalBatchID == b3.batchID && fresh.originalBatchID != b1.batchID
        )
        let (_, lines) = try Self.lines(try #require(try f.batch("lessor")))
        #expect(lines.first?["original_batch_id"]?.stringValue == b3.batchID)
        try f.write { db in
            try f.engine.confirmed(by: "lessor", paymentID: Self.idA, lease: nil, ok: true, method: nil, reversal: true, db)
        }
        #expect(try f.state(Self.idA) == .voided)
        #expect(try f.balanced())
    }

    /// A confirmation naming the payment and a programme that is not the payment's is refused,
    /// as a lease that is not its lease is; `payment.list` refuses a state that does not exist
    /// and a programme without its lease, instead of answering a list that is not the one asked for.
    @Test func aConfirmationAndAListSayExactlyWhatTheyMean() throws {
        let f = try EngineFixture()
        try f.merchant(Self.a, name: "甲")
        try waiver(f)
        #expect(try f.batch("lessor") != nil)
        #expect(throws: Rejection.self) {
            try f.write { db in
                try f.engine.confirmed(
                    by: "lessor", paymentID: Self.idA, lease: nil, policyID: "city-soe-extra-month", ok: true, method: "refund", db)
            }
        }
        #expect(try f.state(Self.idA) == .instructed)
        try f.write { db in
            try f.engine.confirmed(by: "lessor", paymentID: Self.idA, lease: nil, policyID: "test-rent", ok: true, method: "refund", db)
        }
        #expect(try f.state(Self.idA) == .settled)
        let queries = PaymentsQueries(database: f.database.db, engine: f.engine)
        #expect(try queries.respond(["op": "payment.list", "state": "paid"])?["code"]?.stringValue == "invalid_request")
        #expect(try queries.respond(["op": "payment.list", "policy": "test-rent"])?["code"]?.stringValue == "invalid_request")
        #expect(try queries.respond(["op": "reversals", "state": "open"])?["code"]?.stringValue == "invalid_request")
        let listed = try queries.respond(["op": "payment.list", "lease": "L-1", "policy": "test-rent"])?["items"]?.arrayValue
        #expect(listed?.map { $0["payment_id"]?.stringValue } == [Self.idA])
    }

    /// A waiver the matcher says is refunded directly (a lease under three months, seed 篇二 (二))
    /// says so on its instruction line, and the lessor's confirmation of an offset or extension is
    /// refused; any other waiver may be refunded, offset or extended.
    @Test func aRefundOnlyWaiverIsConfirmedOnlyAsARefund() throws {
        let f = try EngineFixture()
        try f.merchant(Self.a, name: "甲")
        try f.merchant(Self.b, name: "乙")
        try f.approve(
            Self.idA, uscc: Self.a, amountFen: 60_000, policy: "test-rent", benefit: "rent_waiver", channel: "lessor", pool: nil,
            binding: "L-1", extra: ["refund_only": true])
        try waiver(f, Self.idB, uscc: Self.b, lease: "L-2")
        let (_, lines) = try Self.lines(try #require(try f.batch("lessor")))
        let short = try #require(lines.first { $0["payment_id"]?.stringValue == Self.idA })
        let full = try #require(lines.first { $0["payment_id"]?.stringValue == Self.idB })
        #expect(short["methods"] == ["refund"] && short["instruction"]?.stringValue?.contains("refund directly") == true, "\(short)")
        #expect(full["methods"] == ["refund", "offset", "extension"], "\(full)")
        #expect(throws: Rejection.self) {
            try f.write { db in try f.engine.confirmed(by: "lessor", paymentID: Self.idA, lease: nil, ok: true, method: "offset", db) }
        }
        #expect(try f.state(Self.idA) == .instructed)
        try f.write { db in try f.engine.confirmed(by: "lessor", paymentID: Self.idA, lease: nil, ok: true, method: "refund", db) }
        try f.write { db in try f.engine.confirmed(by: "lessor", paymentID: Self.idB, lease: nil, ok: true, method: "offset", db) }
        #expect(try f.state(Self.idA) == .settled && f.state(Self.idB) == .settled)
    }
}
