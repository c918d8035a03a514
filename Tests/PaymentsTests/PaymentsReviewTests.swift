import Bus
import Foundation
import GRDB
import ISO20022
import Logging
import ServiceKit
import Storage
import Testing

@testable import Models
@testable import Payments

/// The second review of the payment router: approvals that cannot be paid never stall the
/// matcher's feed, the real-name rule after a change of holder, account changes whatever the
/// hold, policy withdrawals racing the money, batch lines pain.001 cannot carry, returns of
/// clawed-back payments, batches rejected whole, database errors retried, EndToEndIds past
/// attempt 99, benefits on the wrong channel, and the audit of every instruction and file.
@Suite struct PaymentsReviewTests {
    static let (a, b, c) = ("91411002MA0000001A", "91411002MA0000002B", "91411002MA0000003C")
    static let (idA, idB, idC) = (
        "ent-" + String(repeating: "a", count: 32), "ent-" + String(repeating: "b", count: 32), "ent-" + String(repeating: "c", count: 32)
    )

    static func delivery(_ seq: UInt64, _ type: String, _ data: JSON) -> FeedDelivery {
        FeedDelivery(
            sequence: seq, event: CloudEvent(id: "\(type)-\(seq)", source: "/bangfu/matcher", type: type, data: data), raw: [], error: nil)
    }

    static func approval(_ id: String, uscc: String, amountFen: Int64, pool: String = "pool") -> JSON {
        [
            "entitlement_id": .string(id), "policy_id": "test-cash", "uscc": .string(uscc), "amount_fen": .int(amountFen),
            "benefit": "cash", "channel": "treasury", "pool": .string(pool),
        ]
    }

    func holds(_ f: EngineFixture, _ id: String) throws -> [String] {
        try f.database.db.writer.read { db in
            try String.fetchAll(db, sql: "SELECT code FROM holds WHERE payment_id = ? ORDER BY id", arguments: [id])
        }
    }

    func reviews(_ f: EngineFixture) throws -> [String] {
        try f.database.db.writer.read { db in try String.fetchAll(db, sql: "SELECT payment_id || ' ' || code FROM reviews ORDER BY id") }
    }

    func auditEntries(_ f: EngineFixture, _ kind: String) throws -> [JSON] {
        try f.database.db.writer.read { db in
            try Data.fetchAll(db, sql: "SELECT entry FROM audit_chain WHERE kind = ? ORDER BY seq", arguments: [kind])
        }.compactMap { try? JSONParser.parse(String(decoding: $0, as: UTF8.self)) }
    }

    func releaseRefused(_ f: EngineFixture, _ id: String) -> Bool {
        do {
            try f.write { db in try f.engine.releaseHold(id: id, by: "区财政局 张三", reason: "试图放行", db) }
            return false
        } catch {
            return error is Rejection
        }
    }
}

// MARK: 1. A 0-fen cash approval

extension PaymentsReviewTests {
    /// A cash approval of 0 fen arrives on the feed before a revocation: it is recorded, held
    /// `invalid_amount` (in the audit chain, reserving nothing), and the revocation after it in
    /// the same delivery is applied, so the revoked payment is never batched. An approval the
    /// ledger refuses for another reason is recorded held `ledger_refused`: the delivery never fails.
    @Test func aZeroFenCashApprovalIsHeldAndTheFeedGoesOn() throws {
        let f = try EngineFixture()
        try f.verified(Self.a, name: "甲", account: "6222000000000001")
        try f.verified(Self.b, name: "乙", account: "6222000000000002")
        try f.verified(Self.c, name: "丙", account: "6222000000000003")
        try f.fund(1_000_000)
        try f.approve(Self.idA, uscc: Self.a)
        #expect(try f.state(Self.idA) == .ready)
        // The ledger has an account c's pool needs, opened as another kind: c's approval fails
        // there (outside the reservation), so only the feed's own net can keep it from failing
        // the delivery.
        try f.write { db in try f.engine.ledger.openAccount(db, id: "paid:odd", kind: "other", mayGoNegative: true) }
        let feeds = PaymentsFeeds(database: f.database.db, engine: f.engine, handle: ServiceHandle())
        try feeds.apply(
            feed: "matcher",
            [
                Self.delivery(9_001, "entitlement.approved", Self.approval(Self.idB, uscc: Self.b, amountFen: 0)),
                Self.delivery(9_002, "entitlement.approved", Self.approval(Self.idC, uscc: Self.c, amountFen: 50_000, pool: "odd")),
                Self.delivery(9_003, "entitlement.revoked", ["entitlement_id": .string(Self.idA), "reason": "objection_upheld"]),
            ], through: 9_003)
        #expect(try f.payment(Self.idB).holdCode == "invalid_amount")
        #expect(try f.events("payment.held", Self.idB).first?["hold_code"]?.stringValue == "invalid_amount")
        #expect(try holds(f, Self.idB) == ["invalid_amount"])
        #expect(try f.payment(Self.idC).holdCode == "ledger_refused")
        #expect(try f.state(Self.idA) == .voided, "the revocation after the bad approvals is applied")
        #expect(try f.database.db.writer.read { db in try InboxCursor.get(db, feed: "matcher") } == 9_003)
        #expect(try f.batch() == nil, "nothing is ready: the revoked payment is not batched")
        #expect(releaseRefused(f, Self.idB), "an amount is the matcher's: no operator release")
        // A later approval with a payable amount releases it.
        try feeds.apply(
            feed: "matcher", [Self.delivery(9_004, "entitlement.approved", Self.approval(Self.idB, uscc: Self.b, amountFen: 80_000))],
            through: 9_004)
        #expect(try f.state(Self.idB) == .ready)
        #expect(try f.pool().pendingDebits == 80_000)
        #expect(try f.ledgerOK())
        #expect(try f.auditOK())
    }
}

// MARK: 2. Real-name rule after a change of name or operator

extension PaymentsReviewTests {
    /// A `payee.verified` whose holder no longer matches the registered name holds every cash
    /// payment of the merchant not yet instructed (`holder_mismatch`, reservation released); the
    /// instructed one stays with the bank. No operator can release it; a verification in the
    /// registered name does.
    @Test func aHolderMismatchHoldsEveryPaymentNotYetInstructed() throws {
        let f = try EngineFixture()
        try f.verified(Self.a, name: "甲", account: "6222000000000001")
        try f.fund(250_000)
        try f.approve(Self.idA, uscc: Self.a)
        _ = try #require(try f.batch())
        try f.approve(Self.idB, uscc: Self.a, policy: "other-cash")
        try f.approve(Self.idC, uscc: Self.a, amountFen: 900_000, policy: "third-cash")
        #expect(try f.state(Self.idB) == .ready)
        #expect(try f.payment(Self.idC).holdCode == "pool_short")

        try f.payee(Self.a, account: "6222000000000001", holderMatches: false, verifiedOn: "2022-06-01")  // 经营者变更
        #expect(try f.state(Self.idA) == .instructed)
        for id in [Self.idB, Self.idC] {
            #expect(try f.payment(id).holdCode == "holder_mismatch")
            #expect(releaseRefused(f, id))
        }
        #expect(try f.pool().pendingDebits == 100_000, "only the instructed payment keeps its reservation")
        #expect(try f.batch() == nil)

        try f.payee(Self.a, account: "6222000000000001", verifiedOn: "2022-06-10")
        #expect(try f.state(Self.idB) == .ready)
        #expect(try f.payment(Self.idC).holdCode == "pool_short")
        #expect(try f.balanced())
    }
}

// MARK: 3. account_changed whatever the hold

extension PaymentsReviewTests {
    /// A payment held `pool_short` whose account changes is held `account_changed` (on the
    /// verification, and in `check` when the pool is funded); an operator's release accepts the
    /// account it names and no later one; the file pays the accepted account.
    @Test func anAccountChangeIsHeldWhateverHoldThePaymentIsIn() throws {
        let f = try EngineFixture()
        try f.verified(Self.a, name: "甲", account: "6222000000000001")
        try f.verified(Self.b, name: "乙", account: "6222000000000002")
        try f.fund(50_000)
        try f.approve(Self.idA, uscc: Self.a)
        try f.approve(Self.idB, uscc: Self.b)
        for id in [Self.idA, Self.idB] { #expect(try f.payment(id).holdCode == "pool_short") }

        // a's account changes through the registry's feed.
        try f.payee(Self.a, account: "6222000000000009", verifiedOn: "2022-06-01")
        #expect(try f.payment(Self.idA).holdCode == "account_changed")
        // b's changes behind the feed's back: the check the funding runs sees it.
        try f.write { db in
            try db.execute(
                sql: "UPDATE payees SET account_no = '6222000000000008', fingerprint = 'fp-6222000000000008' WHERE uscc = ?",
                arguments: [Self.b])
        }
        try f.fund(1_000_000)
        #expect(try f.payment(Self.idB).holdCode == "account_changed")
        #expect(try f.pool().pendingDebits == 0)

        // The operator accepts a's new account; before that, it changes once more: the release
        // accepts only the account the hold names now (…0007), checked afresh.
        try f.payee(Self.a, account: "6222000000000007", verifiedOn: "2022-06-02")
        #expect(try f.payment(Self.idA).accountHoldFP == "fp-6222000000000007")
        try f.write { db in try f.engine.releaseHold(id: Self.idA, by: "区财政局 张三", reason: "新账户已电话核实", db) }
        #expect(try f.state(Self.idA) == .ready)
        // An operator's release is said on the feed too: the matcher's entitlement goes on.
        #expect(try f.events("payment.released", Self.idA).last?["reason"]?.stringValue == "account_changed")
        try f.payee(Self.a, account: "6222000000000006", verifiedOn: "2022-06-03")
        #expect(try f.payment(Self.idA).holdCode == "account_changed", "a further change is held again")
        // Back to the accepted account: nothing left to clear.
        try f.payee(Self.a, account: "6222000000000007", verifiedOn: "2022-06-04")
        #expect(try f.state(Self.idA) == .ready)
        let file = try #require(try f.batch())
        #expect(file.content.contains("6222000000000007"))
        #expect(!file.content.contains("6222000000000001"))
        #expect(try f.payment(Self.idB).holdCode == "account_changed")
        #expect(try f.balanced())
    }
}

// MARK: 4. Policy withdrawal racing the feed

extension PaymentsReviewTests {
    /// A `policy_withdrawn` revocation voids a payment not yet instructed, but takes back nothing
    /// instructed or paid: no clawback now, none on settlement; an operator's review note each.
    @Test func aPolicyWithdrawalNeverTakesBackMoneyInstructedOrPaid() throws {
        let f = try EngineFixture()
        try f.verified(Self.a, name: "甲", account: "6222000000000001")
        try f.verified(Self.b, name: "乙", account: "6222000000000002")
        try f.verified(Self.c, name: "丙", account: "6222000000000003")
        try f.fund(1_000_000)
        try f.approve(Self.idA, uscc: Self.a)
        let first = try #require(try f.batch())
        #expect(try f.answer(batch: first.batchID, messageID: "RET-A", [Self.idA], .settled) == (1, 0))
        try f.approve(Self.idB, uscc: Self.b)
        let second = try #require(try f.batch())
        try f.approve(Self.idC, uscc: Self.c)

        for id in [Self.idA, Self.idB, Self.idC] {
            try f.write { db in try f.engine.revoked(["entitlement_id": .string(id), "reason": "policy_withdrawn: 政策撤回"], db) }
        }
        #expect(try f.state(Self.idA) == .settled)
        #expect(try f.state(Self.idB) == .instructed)
        #expect(try f.payment(Self.idB).revoked == nil)
        #expect(try f.state(Self.idC) == .voided)
        #expect(try reviews(f) == ["\(Self.idA) withdrawn_after_instruction", "\(Self.idB) withdrawn_after_instruction"])
        #expect(try f.answer(batch: second.batchID, messageID: "RET-B", [Self.idB], .settled) == (1, 0))
        #expect(try f.state(Self.idB) == .settled, "no clawback on settlement either")
        let receivables = try f.database.db.writer.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM receivables") }
        #expect(receivables == 0)
        #expect(try f.pool().posted == 800_000)
        #expect(try f.balanced())
    }
}

// MARK: 5. Lines pain.001 cannot carry

extension PaymentsReviewTests {
    /// A merchant name longer than pain.001's 140 characters holds its payment
    /// `invalid_payee_data` (at approval, or at batch time after a change of name, its reservation
    /// released) and the rest of the batch is written; a shorter name releases it. A batch the
    /// writer still refuses is a rejection, not a failed command retried forever.
    @Test func aNameTooLongForPain001IsHeldAndTheRestIsWritten() throws {
        let f = try EngineFixture()
        let long = String(repeating: "超", count: 141)
        try f.verified(Self.a, name: long, account: "6222000000000001")
        try f.verified(Self.b, name: "乙", account: "6222000000000002")
        try f.verified(Self.c, name: "丙", account: "6222000000000003")
        try f.fund(1_000_000)
        try f.approve(Self.idA, uscc: Self.a)
        try f.approve(Self.idB, uscc: Self.b)
        try f.approve(Self.idC, uscc: Self.c)
        #expect(try f.payment(Self.idA).holdCode == "invalid_payee_data")
        try f.merchant(Self.c, name: String(repeating: "长", count: 200))  // renamed while ready
        let file = try #require(try f.batch())
        #expect(EngineFixture.endToEndIDs(file) == [String(Self.idB.dropFirst(4))])
        #expect(try f.payment(Self.idC).holdCode == "invalid_payee_data")
        #expect(try f.pool().pendingDebits == 100_000)
        try f.merchant(Self.a, name: "甲")
        #expect(try f.state(Self.idA) == .ready)

        let g = try EngineFixture { $0.debtorName = String(repeating: "库", count: 141) }
        try g.verified(Self.a, name: "甲", account: "6222000000000001")
        try g.fund(1_000_000)
        try g.approve(Self.idA, uscc: Self.a)
        let applier = PaymentsApplier(engine: g.engine)
        #expect(throws: Rejection.self) {
            try g.write { db in
                try applier.apply(
                    .batch(channel: "treasury", max: nil), event: CloudEvent(id: "b", source: "/ops", type: "payments.batch"), db: db)
            }
        }
        #expect(try g.state(Self.idA) == .ready)
    }
}

// MARK: 6. A return of a clawed-back payment

extension PaymentsReviewTests {
    /// The bank returns (camt.054 `RtrInf`) a payment whose clawback is open: the money is back,
    /// so the receivable is closed by a transfer into the pool; the ledger balances.
    @Test func aBankReturnOfAClawedBackPaymentClosesItsReceivable() throws {
        let f = try EngineFixture()
        try f.verified(Self.a, name: "甲", account: "6222000000000001")
        try f.fund(1_000_000)
        try f.approve(Self.idA, uscc: Self.a)
        let file = try #require(try f.batch())
        #expect(try f.answer(batch: file.batchID, messageID: "RET-1", [Self.idA], .settled) == (1, 0))
        try f.write { db in try f.engine.revoked(["entitlement_id": .string(Self.idA), "reason": "objection_upheld"], db) }
        #expect(try f.state(Self.idA) == .clawedBack)
        let returned = Camt054.xml(
            messageID: "CAMT-1", accountNumber: "0000000000000000",
            lines: [
                ReturnLine(
                    endToEndID: String(Self.idA.dropFirst(4)), status: .failed(reasonCode: "AC04", reason: "账户已销户"), amountFen: 100_000)
            ])
        #expect(try f.applyReturn(returned) == (1, 0))
        #expect(try f.anomalies().isEmpty)
        let receivable = try f.database.db.writer.read { db in
            try Row.fetchOne(
                db, sql: "SELECT state, recovered_fen, returned_at FROM receivables WHERE payment_id = ?", arguments: [Self.idA])
        }
        #expect(receivable?["state"] == "closed")
        // What the merchant repaid stays what it repaid (nothing): closed by the return.
        #expect(receivable?["recovered_fen"] == 0)
        #expect((receivable?["returned_at"] as String?) != nil)
        let account = try f.database.db.writer.read { db in try f.engine.ledger.balance(db, account: "receivable:pool") }
        #expect(account.posted == 0)
        #expect(try f.pool().posted == 1_000_000)
        #expect(try auditEntries(f, "clawback.returned").count == 1)
        // The bank sends the same return again under another message id: an anomaly, no second
        // closing, and no note that the merchant is owed a refund of money it never repaid.
        let again = Camt054.xml(
            messageID: "CAMT-2", accountNumber: "0000000000000000",
            lines: [
                ReturnLine(
                    endToEndID: String(Self.idA.dropFirst(4)), status: .failed(reasonCode: "AC04", reason: "账户已销户"), amountFen: 100_000)
            ])
        #expect(try f.applyReturn(again) == (0, 1))
        #expect(try reviews(f).filter { $0.hasSuffix("refund_owed") }.isEmpty)
        #expect(try auditEntries(f, "clawback.returned").count == 1)
        #expect(try f.pool().posted == 1_000_000)
        // And nothing more can be recorded as recovered on it.
        #expect(throws: Rejection.self) {
            try f.write { db in try f.engine.recovered(paymentID: Self.idA, amountFen: 100, transferID: "rec-1", db) }
        }
        #expect(try f.balanced())
    }
}

// MARK: 7. A batch rejected whole

extension PaymentsReviewTests {
    static func groupRejection(batch: String, messageID: String, count: Int, total: String) -> String {
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"><CstmrPmtStsRpt>\
        <GrpHdr><MsgId>\(messageID)</MsgId><CreDtTm>2026-11-29T11:00:00+08:00</CreDtTm></GrpHdr>\
        <OrgnlGrpInfAndSts><OrgnlMsgId>BANGFU-\(batch)</OrgnlMsgId><OrgnlMsgNmId>pain.001.001.09</OrgnlMsgNmId>\
        <OrgnlNbOfTxs>\(count)</OrgnlNbOfTxs><OrgnlCtrlSum>\(total)</OrgnlCtrlSum><GrpSts>RJCT</GrpSts>\
        <StsRsnInf><Rsn><Cd>DU01</Cd></Rsn></StsRsnInf></OrgnlGrpInfAndSts></CstmrPmtStsRpt></Document>
        """
    }

    /// A pain.002 rejecting a whole batch at group level with no transaction lines fails every
    /// payment of the batch (reservations voided, retried on a new verification as usual); one
    /// naming an unknown batch or other totals is an anomaly naming the batch.
    @Test func aGroupLevelRejectionFailsTheWholeBatch() throws {
        let f = try EngineFixture()
        try f.verified(Self.a, name: "甲", account: "6222000000000001")
        try f.verified(Self.b, name: "乙", account: "6222000000000002")
        try f.fund(1_000_000)
        try f.approve(Self.idA, uscc: Self.a)
        try f.approve(Self.idB, uscc: Self.b)
        let file = try #require(try f.batch())
        #expect(try f.applyReturn(Self.groupRejection(batch: "B999999", messageID: "RJ-0", count: 2, total: "2000.00")) == (0, 1))
        #expect(try f.anomalies().last?.contains("BANGFU-B999999") == true)
        #expect(try f.applyReturn(Self.groupRejection(batch: file.batchID, messageID: "RJ-1", count: 3, total: "3000.00")) == (0, 1))
        #expect(try f.state(Self.idA) == .instructed)
        #expect(try f.applyReturn(Self.groupRejection(batch: file.batchID, messageID: "RJ-2", count: 2, total: "2000.00")) == (2, 0))
        for id in [Self.idA, Self.idB] {
            #expect(try f.state(id) == .failed)
            #expect(try f.events("payment.failed", id).first?["reason"]?.stringValue == "DU01")
        }
        #expect(try f.pool().pendingDebits == 0)
        try f.write { db in try f.engine.resume(channel: "treasury", db) }
        try f.payee(Self.a, account: "6222000000000011", verifiedOn: "2022-05-01")
        #expect(try f.state(Self.idA) == .ready, "retried as usual")
        #expect(try f.balanced())
    }
}

// MARK: 8. Database errors inside the ledger

extension PaymentsReviewTests {
    /// Makes every ledger transfer whose id starts with `prefix` fail with an SQLite error (one
    /// that leaves the transaction open, so that only the router's handling decides its fate).
    func breakLedger(_ f: EngineFixture, prefix: String) throws {
        try f.write { db in
            db.add(
                function: DatabaseFunction("bangfu_test_ioerr", argumentCount: 0, pure: false) { _ in
                    throw DatabaseError(resultCode: .SQLITE_ERROR, message: "simulated database failure (test)")
                })
            try db.execute(
                sql: """
                    CREATE TRIGGER test_ioerr BEFORE INSERT ON ledger_transfers WHEN NEW.id LIKE '\(prefix)%'
                    BEGIN SELECT bangfu_test_ioerr(); END
                    """)
        }
    }

    /// A database error met inside the ledger is thrown (the file or command is retried), not
    /// recorded as a return anomaly nor answered as a rejection.
    @Test func databaseErrorsInsideTheLedgerAreRetried() throws {
        let f = try EngineFixture()
        try f.verified(Self.a, name: "甲", account: "6222000000000001")
        try f.fund(1_000_000)
        try f.approve(Self.idA, uscc: Self.a)
        let file = try #require(try f.batch())
        try breakLedger(f, prefix: "settle/")
        do {
            _ = try f.answer(batch: file.batchID, messageID: "RET-1", [Self.idA], .settled)
            Issue.record("the return was taken")
        } catch {
            #expect(!(error is Rejection))
        }
        #expect(try f.anomalies().isEmpty)
        #expect(try f.state(Self.idA) == .instructed)
        try f.write { db in try db.execute(sql: "DROP TRIGGER test_ioerr") }
        #expect(try f.answer(batch: file.batchID, messageID: "RET-1", [Self.idA], .settled) == (1, 0))

        try breakLedger(f, prefix: "fund/")
        let applier = PaymentsApplier(engine: f.engine)
        do {
            try f.write { db in
                try applier.apply(
                    .fund(pool: "pool", source: "central", amountFen: 5), event: CloudEvent(id: "f", source: "/ops", type: "pool.funded"),
                    db: db)
            }
            Issue.record("the funding was taken")
        } catch {
            #expect(!(error is Rejection), "\(error)")
        }
    }
}

// MARK: 9. EndToEndIds past attempt 99

extension PaymentsReviewTests {
    /// Every attempt's EndToEndId is its own and at most 35 characters; none from attempt 100 on
    /// reads as the first attempt. A payment would need attempt 100: held `attempts_exhausted`.
    @Test func anEndToEndIdBeyondAttempt99IsNeverTheFirstAttempts() throws {
        var p = PaymentRecord(
            id: Self.idA, policyID: "p", title: nil, uscc: Self.a, benefit: "cash", channel: "treasury", pool: "pool", amountFen: 1,
            priority: false, binding: nil, approvedSeq: 1)
        var seen: Set<String> = []
        for attempt in [0, 1, 9, 10, 99, 100, 101, 999, 1000, 12345] {
            p.attempt = attempt
            let id = PaymentsEngine.endToEndID(p)
            #expect(id.count <= 35, "\(attempt): \(id)")
            #expect(seen.insert(id).inserted, "\(attempt): \(id) repeats")
            if attempt > 0 { #expect(PaymentsEngine.attempt(endToEnd: id) != (Self.idA, 0), "\(attempt) reads as attempt 0") }
        }

        let f = try EngineFixture()
        try f.verified(Self.a, name: "甲", account: "6222000000000001")
        try f.fund(1_000_000)
        try f.approve(Self.idA, uscc: Self.a)
        let file = try #require(try f.batch())
        #expect(try f.answer(batch: file.batchID, messageID: "RET-1", [Self.idA], .failed(reasonCode: "AC04", reason: nil)) == (1, 0))
        try f.write { db in
            try db.execute(sql: "UPDATE payments SET attempt = 99 WHERE id = ?", arguments: [Self.idA])
            try f.engine.ledger.reserve(
                db, id: "reserve/\(Self.idA)/99", debit: "pool:pool", credit: "paid:pool", amountFen: 100_000, ref: Self.idA, note: "test")
            try f.engine.ledger.void(db, id: "void/\(Self.idA)/99", pendingID: "reserve/\(Self.idA)/99", note: "test")
        }
        try f.payee(Self.a, account: "6222000000000011", verifiedOn: "2022-05-01")
        #expect(try f.payment(Self.idA).holdCode == "attempts_exhausted")
        #expect(try f.pool().pendingDebits == 0)
        #expect(releaseRefused(f, Self.idA))
        #expect(try f.balanced())
    }
}

// MARK: 10. Benefit and channel

extension PaymentsReviewTests {
    /// Cash on a lessor or agency channel, or a rent waiver on the treasury, is held
    /// `channel_mismatch` (nothing reserved, no operator release); a later approval on the right
    /// channel pays it.
    @Test func aBenefitOnTheWrongChannelIsHeld() throws {
        let f = try EngineFixture()
        try f.verified(Self.a, name: "甲", account: "6222000000000001")
        try f.verified(Self.b, name: "乙", account: "6222000000000002")
        try f.fund(1_000_000)
        try f.approve(Self.idA, uscc: Self.a, channel: "lessor")
        try f.approve(Self.idB, uscc: Self.b, benefit: "rent_waiver", channel: "treasury", pool: nil)
        for id in [Self.idA, Self.idB] {
            #expect(try f.payment(id).holdCode == "channel_mismatch")
            #expect(releaseRefused(f, id))
        }
        #expect(try f.pool().pendingDebits == 0)
        #expect(try f.batch("lessor") == nil)
        #expect(try f.batch() == nil)
        try f.approve(Self.idA, uscc: Self.a)
        #expect(try f.state(Self.idA) == .ready)
        #expect(try f.payment(Self.idA).channel == "treasury")
        #expect(try f.batch() != nil)
        #expect(try f.balanced())
    }
}

extension PaymentsReviewTests {
    /// An approval that names no benefit or channel, or an agency whose name could not name a
    /// file, is held `channel_mismatch` (nothing reserved, never defaulted to cash through the
    /// treasury); a later approval that names them pays it.
    @Test func anApprovalWithoutAUsableChannelIsHeldNeverDefaulted() throws {
        let f = try EngineFixture()
        try f.verified(Self.a, name: "甲", account: "6222000000000001")
        try f.verified(Self.b, name: "乙", account: "6222000000000002")
        try f.fund(1_000_000)
        try f.approve(Self.idA, uscc: Self.a, extra: ["benefit": .null, "channel": .null])
        try f.approve(Self.idB, uscc: Self.b, benefit: "deferral", channel: "agency:水务/电力", pool: nil)
        for id in [Self.idA, Self.idB] {
            #expect(try f.payment(id).holdCode == "channel_mismatch")
            #expect(releaseRefused(f, id))
        }
        #expect(try f.payment(Self.idA).holdReason?.contains("no benefit on no channel") == true)
        #expect(try f.pool().pendingDebits == 0)
        #expect(try f.batch() == nil)
        try f.approve(Self.idA, uscc: Self.a)
        #expect(try f.state(Self.idA) == .ready)
        #expect(try f.batch() != nil)
        #expect(try f.balanced())
    }
}

// MARK: 11–12. Audit of instructions and files

extension PaymentsReviewTests {
    /// Each payment's move to `instructed` is in the audit chain (EndToEndId, amount, fingerprint
    /// and masked account, never the number); `batch.created` carries the file's SHA-256, and a
    /// stored file whose content does not match it is refused at start, not written.
    @Test func everyInstructionIsAuditedAndAFileIsWrittenOnlyAsRecorded() throws {
        let f = try EngineFixture()
        try f.verified(Self.a, name: "甲", account: "6222000000000001")
        try f.verified(Self.b, name: "乙", account: "6222000000000002")
        try f.fund(1_000_000)
        try f.approve(Self.idA, uscc: Self.a)
        let file = try #require(try f.batch())
        let instructed = try auditEntries(f, "payment.instructed")
        #expect(instructed.count == 1)
        #expect(instructed.first?["payment_id"]?.stringValue == Self.idA)
        #expect(instructed.first?["end_to_end_id"]?.stringValue == String(Self.idA.dropFirst(4)))
        #expect(instructed.first?["amount_fen"]?.intValue == 100_000)
        #expect(instructed.first?["payee_fingerprint"]?.stringValue == "fp-6222000000000001")
        #expect(instructed.first?["account"]?.stringValue == "6222 **** **** 0001")
        // (The fixture's fingerprint is made from the number: only the number itself must not appear.)
        let entryText = (instructed.first?.serialized() ?? "").replacingOccurrences(of: "fp-6222000000000001", with: "")
        #expect(!entryText.contains("6222000000000001"))
        let created = try #require(try auditEntries(f, "batch.created").first)
        #expect(created["sha256"]?.stringValue == SHA256.hash(Array(file.content.utf8)).hexString)

        let outbox = f.engine.settings.outboxDirectory
        let files = PendingFiles(directory: outbox, database: f.database.db, logger: Logger(label: "test"))
        files.flush()
        #expect(FileManager.default.fileExists(atPath: outbox + "/\(file.name)"))

        try f.approve(Self.idB, uscc: Self.b)
        let second = try #require(try f.batch())
        try f.write { db in
            try db.execute(
                sql: "UPDATE batch_files SET content = ? WHERE batch_id = ?",
                arguments: [
                    Data(second.content.replacingOccurrences(of: "6222000000000002", with: "6222000000000666").utf8), second.batchID,
                ])
        }
        files.flush()
        #expect(!FileManager.default.fileExists(atPath: outbox + "/\(second.name)"))
        let refused = try f.database.db.writer.read { db in
            try Row.fetchOne(db, sql: "SELECT written, refused FROM batches WHERE id = ?", arguments: [second.batchID])
        }
        #expect(refused?["written"] == false)
        #expect((refused?["refused"] as String?)?.contains("SHA-256") == true)
        let listed = try PaymentsQueries(database: f.database.db, engine: f.engine).respond(["op": "batch.list"])
        #expect(listed?["items"]?.arrayValue?.last?["refused"]?.stringValue != nil)
        #expect(try f.auditOK())
    }

    /// A file written and taken by the pickup agent (moved to `<outbox>/sent/`) before a crash
    /// kept it from being recorded as written is not written again at the next start.
    @Test func aFileThePickupAgentTookIsNeverWrittenAgain() throws {
        let f = try EngineFixture()
        try f.verified(Self.a, name: "甲", account: "6222000000000001")
        try f.fund(1_000_000)
        try f.approve(Self.idA, uscc: Self.a)
        let file = try #require(try f.batch())
        let outbox = f.engine.settings.outboxDirectory
        let files = PendingFiles(directory: outbox, database: f.database.db, logger: Logger(label: "test"))
        files.flush()
        let fm = FileManager.default
        try fm.createDirectory(atPath: outbox + "/sent", withIntermediateDirectories: true)
        try fm.moveItem(atPath: outbox + "/\(file.name)", toPath: outbox + "/sent/\(file.name)")
        try f.write { db in try db.execute(sql: "UPDATE batches SET written = 0") }  // the crash
        files.flush()
        #expect(!fm.fileExists(atPath: outbox + "/\(file.name)"), "not delivered twice")
        let written = try f.database.db.writer.read { db in try Bool.fetchOne(db, sql: "SELECT written FROM batches") }
        #expect(written == true)
    }
}

/// Money that comes back into a pool releases the payments waiting for it (`pool_short`), in
/// priority order — not only new funding.
@Suite struct PoolShortReleaseTests {
    typealias R = PaymentsReviewTests

    func twoWaiting() throws -> EngineFixture {
        let f = try EngineFixture()
        for (u, name, account) in [(R.a, "甲", "6222000000000001"), (R.b, "乙", "6222000000000002"), (R.c, "丙", "6222000000000003")] {
            try f.merchant(u, name: name)
            try f.verified(u, name: name, account: account)
        }
        try f.fund(100_000)
        try f.approve(R.idA, uscc: R.a, amountFen: 100_000)
        try f.approve(R.idB, uscc: R.b, amountFen: 100_000)
        try f.approve(R.idC, uscc: R.c, amountFen: 100_000)
        #expect(try f.state(R.idA) == .ready)
        #expect(try f.payment(R.idB).holdCode == "pool_short")
        #expect(try f.payment(R.idC).holdCode == "pool_short")
        return f
    }

    @Test func aRevokedReservationReleasesTheNextInLine() throws {
        let f = try twoWaiting()
        try f.write { db in try f.engine.revoked(["entitlement_id": .string(R.idA), "reason": "objection_upheld"], db) }
        #expect(try f.state(R.idA) == .voided)
        #expect(try f.state(R.idB) == .ready, "the freed 1,000 yuan goes to the next in line")
        // Said on the feed, so the matcher's entitlement no longer reads "held".
        #expect(try f.events("payment.released", R.idB).map { $0["reason"]?.stringValue } == ["pool_short"])
        let openHolds = try f.database.db.writer.read { db in
            try String.fetchAll(
                db, sql: "SELECT payment_id FROM holds WHERE resolution IS NULL AND payment_id IN (?, ?, ?)",
                arguments: [R.idA, R.idB, R.idC])
        }
        #expect(openHolds == [R.idC], "the released hold is resolved; only the one still waiting is open")
        #expect(try f.payment(R.idC).holdCode == "pool_short", "and no further than the money goes")
        #expect(try f.balanced())
    }

    /// One merchant, two payments in one pool (flood relief is per damage): the ready one and
    /// the one waiting for money. Its account changes: each is held once — the money the first
    /// frees is not handed to the second in the middle of the same change.
    @Test func anAccountChangeHoldsEachPaymentOnce() throws {
        let f = try EngineFixture()
        try f.merchant(R.a, name: "甲")
        try f.verified(R.a, name: "甲", account: "6222000000000001")
        try f.fund(100_000)
        try f.approve(R.idA, uscc: R.a, amountFen: 100_000)
        try f.approve(R.idB, uscc: R.a, amountFen: 100_000)
        #expect(try f.state(R.idA) == .ready)
        #expect(try f.payment(R.idB).holdCode == "pool_short")
        try f.verified(R.a, name: "甲", account: "6222000000000009")
        for id in [R.idA, R.idB] {
            #expect(try f.payment(id).holdCode == "account_changed", "\(id)")
            let open = try f.database.db.writer.read { db in
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM holds WHERE payment_id = ? AND resolution IS NULL", arguments: [id])
            }
            #expect(open == 1, "\(id): one open hold")
        }
        let eventIDs = try f.database.db.writer.read { db in try String.fetchAll(db, sql: "SELECT event_id FROM bus_outbox") }
        #expect(Set(eventIDs).count == eventIDs.count, "every event id once")
        #expect(try f.balanced())
    }

    @Test func aFailedPaymentReleasesTheNextInLine() throws {
        let f = try twoWaiting()
        let file = try #require(try f.batch())
        _ = try f.answer(batch: file.batchID, messageID: "RET-1", [R.idA], .failed(reasonCode: "AC04", reason: nil))
        #expect(try f.state(R.idA) == .failed)
        #expect(try f.state(R.idB) == .ready)
        #expect(try f.payment(R.idC).holdCode == "pool_short")
        #expect(try f.balanced())
    }
}

extension PaymentsReviewTests {
    struct Refused: Error {}

    /// A revocation whose effect could not be applied still stops the money: the payment is
    /// voided (with a review note), never held in a way an operator could release into paying it.
    @Test func aRefusedRevocationVoidsThePayment() throws {
        let f = try EngineFixture()
        try f.verified(Self.a, name: "甲", account: "6222000000000001")
        try f.fund(1_000_000)
        try f.approve(Self.idA, uscc: Self.a)
        #expect(try f.state(Self.idA) == .ready)
        try f.write { db in
            try f.engine.refusedEvent(
                "entitlement.revoked", ["entitlement_id": .string(Self.idA), "reason": "objection_upheld"], sequence: 99, error: Refused(),
                db)
        }
        #expect(try f.state(Self.idA) == .voided)
        #expect(try reviews(f) == ["\(Self.idA) event_refused"])
        #expect(releaseRefused(f, Self.idA), "nothing to release")
        #expect(try f.batch() == nil, "never batched")
        #expect(try f.pool().available == 1_000_000, "the reservation is released")
        #expect(try f.balanced())
    }
}
