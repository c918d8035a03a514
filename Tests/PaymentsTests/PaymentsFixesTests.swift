import BangfuTesting
import Foundation
import GRDB
import ISO20022
import Logging
import ServiceKit
import Storage
import Testing

@testable import Models
@testable import Payments

/// The payment router's decisions on money that must not be lost or paid twice: reservations
/// per attempt, return files applied line by line, clawbacks of payments revoked in flight,
/// confirmations only on their own channel, the real-name rule, retries of failed payments.
@Suite struct PaymentsFixesTests {
    static let twoMerchants = ("91411002MA0000001A", "91411002MA0000002B")
    /// Entitlement ids as the matcher makes them (`ent-` and 32 hex digits: the EndToEndId is the rest).
    static let (idA, idB, idC) = (
        "ent-" + String(repeating: "a", count: 32), "ent-" + String(repeating: "b", count: 32), "ent-" + String(repeating: "c", count: 32)
    )

    /// A payment held because its account changed after approval, then released by an
    /// operator, reserves again (a fresh reservation id): the pool covers it, the bank's
    /// settlement posts it, and the other line of the same return is applied too.
    @Test func reApprovalAfterAnAccountChangeReservesAfresh() throws {
        let f = try EngineFixture()
        let (a, b) = Self.twoMerchants
        try f.verified(a, name: "甲", account: "6222000000000001")
        try f.verified(b, name: "乙", account: "6222000000000002")
        try f.fund(1_000_000)
        try f.approve(Self.idA, uscc: a)
        try f.approve(Self.idB, uscc: b)
        #expect(try f.state(Self.idA) == .ready)
        #expect(try f.pool().pendingDebits == 200_000)

        try f.payee(a, account: "6222000000000009")  // changed after approval: held, reservation voided
        #expect(try f.payment(Self.idA).holdCode == "account_changed")
        #expect(try f.pool().pendingDebits == 100_000)
        try f.write { db in try f.engine.releaseHold(id: Self.idA, by: "区财政局 张三", reason: "新账户已核实", db) }
        #expect(try f.state(Self.idA) == .ready)
        #expect(try f.pool().pendingDebits == 200_000, "the re-approved payment holds a reservation again")
        #expect(try f.payment(Self.idA).attempt == 1)

        let file = try #require(try f.batch())
        let ids = EngineFixture.endToEndIDs(file)
        #expect(ids.count == 2)
        let ret = Pain002.xml(
            originalMessageID: "BANGFU-\(file.batchID)", messageID: "RET-1",
            lines: ids.map { ReturnLine(endToEndID: $0, status: .settled, amountFen: 100_000) })
        #expect(try f.applyReturn(ret) == (2, 0))
        #expect(try f.state(Self.idA) == .settled)
        #expect(try f.state(Self.idB) == .settled)
        #expect(try f.pool().posted == 800_000)
        #expect(try f.pool().pendingDebits == 0)
        #expect(try f.balanced())
    }

    /// A return line the ledger refuses is rolled back alone and recorded as an anomaly an
    /// operator can list; the other lines of the file are applied, and the file is processed,
    /// not quarantined as a totals mismatch. Only a file whose totals disagree is labelled so.
    @Test func aBadLineIsAnAnomalyAndTheRestOfTheFileIsApplied() throws {
        let f = try EngineFixture()
        let (a, b) = Self.twoMerchants
        try f.verified(a, name: "甲", account: "6222000000000001")
        try f.verified(b, name: "乙", account: "6222000000000002")
        try f.fund(1_000_000)
        try f.approve(Self.idA, uscc: a)
        try f.approve(Self.idB, uscc: b)
        let file = try #require(try f.batch())
        // Behind the router's back, a's reservation is resolved already: its settlement cannot post.
        try f.write { db in
            _ = try f.engine.ledger.void(db, id: "void/elsewhere", pendingID: "reserve/\(Self.idA)", note: "test")
        }
        let inbox = f.engine.settings.inboxDirectory
        try FileManager.default.createDirectory(atPath: inbox, withIntermediateDirectories: true)
        let lines = EngineFixture.endToEndIDs(file).map { ReturnLine(endToEndID: $0, status: .settled, amountFen: 100_000) }
        try Pain002.xml(originalMessageID: "BANGFU-\(file.batchID)", messageID: "RET-OK", lines: lines)
            .write(toFile: inbox + "/ret-ok.xml", atomically: true, encoding: .utf8)
        try Pain002.xml(
            originalMessageID: "BANGFU-\(file.batchID)", messageID: "RET-BAD", lines: lines, declaredCount: 3, declaredTotalFen: 300_000
        )
        .write(toFile: inbox + "/ret-totals.xml", atomically: true, encoding: .utf8)
        try "<Document>not a return</Document>".write(toFile: inbox + "/ret-junk.xml", atomically: true, encoding: .utf8)
        let returns = ReturnInbox(
            directory: inbox, database: f.database.db, engine: f.engine, handle: ServiceHandle(), logger: Logger(label: "test"))
        returns.scan()
        returns.timer.resume()  // never scheduled: activated only so that it can be cancelled and released
        returns.stop()

        #expect(try f.state(Self.idB) == .settled)
        #expect(try f.state(Self.idA) == .instructed)
        let anomalies = try f.anomalies()
        #expect(anomalies.count == 1)
        #expect(anomalies.first?.hasPrefix("\(Self.idA): could not be applied") == true, "\(anomalies)")
        let fm = FileManager.default
        #expect(fm.fileExists(atPath: inbox + "/processed/ret-ok.xml"))
        #expect(fm.fileExists(atPath: inbox + "/quarantined/ret-totals.xml"))
        #expect(fm.fileExists(atPath: inbox + "/quarantined/ret-junk.xml"))
        let quarantined = try f.database.db.writer.read { db in
            try Row.fetchAll(db, sql: "SELECT event_id, code, message FROM bus_quarantine ORDER BY event_id")
        }
        #expect(quarantined.map { $0["event_id"] as String } == ["ret-junk.xml", "ret-totals.xml"])
        #expect(quarantined.map { $0["code"] as String } == ["invalid_data", "invalid_amount"])
        #expect((quarantined[0]["message"] as String).contains("unreadable"))
        #expect((quarantined[1]["message"] as String).contains("control totals disagree"))
        // The operator's query lists it.
        let listed = try PaymentsQueries(database: f.database.db, engine: f.engine).respond(["op": "return.anomalies"])
        #expect(listed?["items"]?.arrayValue?.first?["payment_id"]?.stringValue == Self.idA)
        #expect(try f.ledgerOK())
    }
}

extension PaymentsFixesTests {
    /// Two instructed payments: one revoked (`entitlement.revoked`), the other's merchant
    /// found out (`fraud.confirmed` → a disqualified profile) while the bank has them. Both
    /// settle: both open a clawback, and the ledger stays balanced.
    @Test func aPaymentRevokedOrFraudulentInFlightIsClawedBackWhenItSettles() throws {
        let f = try EngineFixture()
        let (a, b) = Self.twoMerchants
        try f.verified(a, name: "甲", account: "6222000000000001")
        try f.verified(b, name: "乙", account: "6222000000000002")
        try f.fund(1_000_000)
        try f.approve(Self.idA, uscc: a)
        try f.approve(Self.idB, uscc: b)
        let file = try #require(try f.batch())
        try f.write { db in try f.engine.revoked(["entitlement_id": .string(Self.idA), "reason": "objection_upheld"], db) }
        try f.disqualify(b, name: "乙")
        #expect(try f.state(Self.idA) == .instructed)
        #expect(try f.payment(Self.idA).revoked == "objection_upheld")
        #expect(try f.payment(Self.idB).revoked == "fraud: disqualified")

        let ret = Pain002.xml(
            originalMessageID: "BANGFU-\(file.batchID)", messageID: "RET-1",
            lines: EngineFixture.endToEndIDs(file).map { ReturnLine(endToEndID: $0, status: .settled, amountFen: 100_000) })
        #expect(try f.applyReturn(ret) == (2, 0))
        for id in [Self.idA, Self.idB] {
            #expect(try f.state(id) == .clawedBack)
            #expect(try f.events("payment.settled", id).count == 1)
            #expect(try f.events("clawback.opened", id).first?["receivable_fen"]?.intValue == 100_000)
        }
        let receivable = try f.database.db.writer.read { db in try f.engine.ledger.balance(db, account: "receivable:pool") }
        #expect(receivable.posted == 200_000)
        #expect(try f.balanced())
    }
}

extension PaymentsFixesTests {
    func validate(_ type: String, _ data: JSON, _ f: EngineFixture) -> Result<PaymentsCommand, Rejection> {
        Result { () throws(Rejection) in try PaymentsApplier(engine: f.engine).validate(Fixtures.event(type, data, source: "/ops/test")) }
    }

    /// `ok` is a JSON bool (absent: the event is the confirmation, DESIGN §4), `method` one of
    /// refund, offset, extension; a lessor names the lease (DESIGN) or the payment.
    @Test func confirmationsAreValidatedStrictly() throws {
        let f = try EngineFixture()
        let bad: [(String, JSON)] = [
            ("lessor.confirmed", ["payment_id": "p", "method": "refund", "ok": "false"]),
            ("lessor.confirmed", ["payment_id": "p", "method": "refund", "ok": 0]),
            ("lessor.confirmed", ["payment_id": "p", "method": "refund", "ok": .null]),
            ("lessor.confirmed", ["payment_id": "p", "method": "cash"]),
            ("lessor.confirmed", ["payment_id": "p"]),
            ("lessor.confirmed", ["method": "refund"]),
            ("lessor.confirmed", ["lease": 7, "method": "refund"]),
            ("agency.confirmed", ["payment_id": "p", "ok": "true"]),
            ("agency.confirmed", ["lease": "L-1"]),
            ("agency.confirmed", ["payment_id": "p", "reversal": "true"]),
            ("lessor.confirmed", ["payment_id": "p", "reversal": true, "method": "refund"]),
            ("agency.confirmed", ["payment_id": "p", "reversal": true, "method": ""]),
        ]
        for (type, data) in bad {
            guard case .failure(let r) = validate(type, data, f) else {
                Issue.record("accepted: \(type) \(data)")
                continue
            }
            #expect(r.code == .invalidData, "\(type) \(data)")
        }
        guard
            case .success(.confirmed(let by, let id, let lease, let policyID, let ok, let method, _)) = validate(
                "lessor.confirmed", ["lease": "L-1", "method": "offset", "policy_id": "soe-rent-waiver"], f)
        else {
            Issue.record("a lessor.confirmed by lease was refused")
            return
        }
        #expect(by == "lessor" && id == nil && lease == "L-1" && policyID == "soe-rent-waiver" && ok && method == "offset")
        guard case .success(.confirmed(_, _, _, _, let notOK, _, _)) = validate("agency.confirmed", ["payment_id": "p", "ok": false], f)
        else {
            Issue.record("an agency.confirmed was refused")
            return
        }
        #expect(!notOK)
        // A reversal's confirmation needs no method (done as told), or says which it was.
        for data: JSON in [["payment_id": "p", "reversal": true], ["lease": "L-1", "reversal": true, "method": "reversed"]] {
            guard case .success(.confirmed(_, _, _, _, _, _, let reversal)) = validate("lessor.confirmed", data, f) else {
                Issue.record("a reversal's confirmation was refused: \(data)")
                continue
            }
            #expect(reversal)
        }
    }

    /// A lessor or agency confirmation never settles a treasury payment (only the bank's return
    /// moves cash), nor another channel's instruction; a lessor's confirmation names the lease.
    @Test func confirmationsSettleOnlyTheirOwnChannel() throws {
        let f = try EngineFixture()
        let (a, b) = Self.twoMerchants
        try f.merchant(a, name: "甲")
        try f.merchant(b, name: "乙")
        try f.payee(a, account: "6222000000000001")
        try f.fund(1_000_000)
        try f.approve(Self.idA, uscc: a)
        try f.approve(
            Self.idB, uscc: b, amountFen: 300_000, policy: "test-rent", benefit: "rent_waiver", channel: "lessor", pool: nil, binding: "L-9"
        )
        try f.approve(Self.idC, uscc: b, amountFen: 0, policy: "test-deferral", benefit: "deferral", channel: "agency:utilities", pool: nil)
        #expect(try f.batch() != nil)
        #expect(try f.batch("lessor") != nil)
        #expect(try f.batch("agency:utilities") != nil)
        func confirm(_ by: String, _ id: String?, lease: String? = nil) -> RejectionCode? {
            do {
                try f.write { db in try f.engine.confirmed(by: by, paymentID: id, lease: lease, ok: true, method: "refund", db) }
                return nil
            } catch let r as Rejection {
                return r.code
            } catch {
                Issue.record(error)
                return nil
            }
        }
        #expect(confirm("lessor", Self.idA) == .invalidData)
        #expect(confirm("agency", Self.idA) == .invalidData)
        #expect(try f.state(Self.idA) == .instructed, "a treasury payment settles only by the bank's return")
        #expect(confirm("agency", Self.idB) == .invalidData)
        #expect(confirm("lessor", Self.idC) == .invalidData)
        #expect(try f.state(Self.idB) == .instructed)
        #expect(try f.state(Self.idC) == .instructed)
        #expect(confirm("lessor", nil, lease: "L-404") == .invalidData)
        #expect(confirm("lessor", nil, lease: "L-9") == nil)
        #expect(try f.state(Self.idB) == .settled)
        #expect(confirm("lessor", nil, lease: "L-9") == nil, "a repeat changes nothing")
        #expect(confirm("agency", Self.idC) == nil)
        #expect(try f.state(Self.idC) == .settled)
        #expect(try f.ledgerOK())
        // Each confirmation that changed a payment is in the audit chain (a repeat adds nothing).
        let confirmations = try f.database.db.writer.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM audit_chain WHERE kind = 'payment.confirmed'")
        }
        #expect(confirmations == 2)
        #expect(try f.auditOK())
    }
}

extension PaymentsFixesTests {
    /// The real-name rule (实名制) cannot be waived: an operator's release of a
    /// `no_verified_account` hold is refused (only a verified account in the registered name
    /// releases it), and a payment without such an account when the batch is made is held and
    /// kept out of the file, whose stored count and total equal its lines.
    @Test func theRealNameRuleIsNeverOverriddenNorSilentlyDroppedFromABatch() throws {
        let f = try EngineFixture()
        let (a, b) = Self.twoMerchants
        let (c, d) = ("91411002MA0000003C", "91411002MA0000004D")
        for (u, n) in [(a, "甲"), (b, "乙"), (c, "丙"), (d, "丁")] { try f.merchant(u, name: n) }
        try f.payee(b, account: "6222000000000002", holderMatches: false)
        try f.payee(c, account: "6222000000000003")
        try f.payee(d, account: "6222000000000004")
        try f.fund(1_000_000)
        let idD = "ent-" + String(repeating: "d", count: 32)
        for (id, u) in [(Self.idA, a), (Self.idB, b), (Self.idC, c), (idD, d)] { try f.approve(id, uscc: u) }
        for (id, code) in [(Self.idA, "no_verified_account"), (Self.idB, "holder_mismatch")] {
            #expect(try f.payment(id).holdCode == code)
            #expect(throws: Rejection.self) {
                try f.write { db in try f.engine.releaseHold(id: id, by: "区财政局 张三", reason: "口头核实", db) }
            }
            #expect(try f.state(id) == .held)
        }
        // c's account is re-verified and its holder no longer matches: held at once. d's payee
        // is gone behind the feed's back: held when the batch is made.
        try f.payee(c, account: "6222000000000003", holderMatches: false)
        #expect(try f.payment(Self.idC).holdCode == "holder_mismatch")
        try f.write { db in try db.execute(sql: "DELETE FROM payees WHERE uscc = ?", arguments: [d]) }
        #expect(try f.state(idD) == .ready)
        #expect(try f.batch() == nil, "no file: nobody has a verified account")
        for (id, code) in [(Self.idC, "holder_mismatch"), (idD, "no_verified_account")] {
            #expect(try f.payment(id).holdCode == code)
            #expect(try f.events("payment.instructed", id).isEmpty)
        }
        #expect(try f.pool().pendingDebits == 0)
        // A verified account in the registered name releases b: it goes out, alone in its file.
        try f.payee(b, account: "6222000000000002", verifiedOn: "2022-04-01")
        #expect(try f.state(Self.idB) == .ready)
        let file = try #require(try f.batch())
        #expect(EngineFixture.endToEndIDs(file) == [String(Self.idB.dropFirst(4))])
        let stored = try f.database.db.writer.read { db in try Row.fetchOne(db, sql: "SELECT count, total_fen FROM batches") }
        #expect(stored?["count"] == 1)
        #expect(stored?["total_fen"] == 100_000)
        #expect(try f.ledgerOK())
    }
}

extension PaymentsFixesTests {
    /// A payment the bank returned (closed account) is retried once the merchant's account is
    /// verified again: every check again, a fresh reservation, once in a later file, settled;
    /// a replay of the same verification retries nothing, and a payment revoked in flight is
    /// not retried.
    @Test func aFailedPaymentIsRetriedOnANewVerifiedAccount() throws {
        let f = try EngineFixture()
        let (a, b) = Self.twoMerchants
        try f.verified(a, name: "甲", account: "6222000000000001")
        try f.verified(b, name: "乙", account: "6222000000000002")
        try f.fund(1_000_000)
        try f.approve(Self.idA, uscc: a)
        try f.approve(Self.idB, uscc: b)
        let first = try #require(try f.batch())
        try f.write { db in try f.engine.revoked(["entitlement_id": .string(Self.idB), "reason": "objection_upheld"], db) }
        let failed = Pain002.xml(
            originalMessageID: "BANGFU-\(first.batchID)", messageID: "RET-1",
            lines: EngineFixture.endToEndIDs(first).map {
                ReturnLine(endToEndID: $0, status: .failed(reasonCode: "AC04", reason: "账户已销户"), amountFen: 100_000)
            })
        #expect(try f.applyReturn(failed) == (2, 0))
        #expect(try f.state(Self.idA) == .failed)
        #expect(try f.pool().pendingDebits == 0)

        try f.payee(a, account: "6222000000000001")  // a replay of the same verification: nothing new
        #expect(try f.state(Self.idA) == .failed)
        try f.payee(a, account: "6222000000000011", verifiedOn: "2022-05-01")
        try f.payee(b, account: "6222000000000012", verifiedOn: "2022-05-01")
        #expect(try f.state(Self.idA) == .ready)
        #expect(try f.state(Self.idB) == .failed, "revoked in flight: not paid again")
        #expect(try f.payment(Self.idA).attempt == 1)
        #expect(try f.pool().pendingDebits == 100_000)

        try f.write { db in try f.engine.resume(channel: "treasury", db) }  // 2 of 2 failed paused it
        let second = try #require(try f.batch())
        #expect(EngineFixture.endToEndIDs(second) == [String(Self.idA.dropFirst(4)) + "-1"], "the retry's own EndToEndId")
        #expect(second.content.contains("6222000000000011"))
        #expect(try f.batch() == nil, "never in two files")
        // A late report on the first batch (another message id) is not about the retried payment.
        #expect(try f.answer(batch: first.batchID, messageID: "RET-1-LATE", [Self.idA], .settled) == (0, 1))
        #expect(try f.state(Self.idA) == .instructed)
        #expect(try f.answer(batch: second.batchID, messageID: "RET-2", [Self.idA], .settled) == (1, 0))
        #expect(try f.state(Self.idA) == .settled)
        #expect(try f.pool().posted == 900_000)
        #expect(try f.pool().pendingDebits == 0)
        #expect(try f.balanced())
    }
}

extension PaymentsFixesTests {
    /// The bank settles a payment, then returns it (camt.054 `RtrInf`): the settlement is
    /// reversed in the ledger (balanced), the payment is failed and counted, and a new verified
    /// account pays it again.
    @Test func aReturnAfterSettlementReversesThePayment() throws {
        let f = try EngineFixture()
        let (a, _) = Self.twoMerchants
        try f.verified(a, name: "甲", account: "6222000000000001")
        try f.fund(1_000_000)
        try f.approve(Self.idA, uscc: a)
        let file = try #require(try f.batch())
        let e2e = String(Self.idA.dropFirst(4))
        #expect(try f.answer(batch: file.batchID, messageID: "RET-1", [Self.idA], .settled) == (1, 0))
        #expect(try f.pool().posted == 900_000)
        let returned = Camt054.xml(
            messageID: "CAMT-9", accountNumber: "0000000000000000",
            lines: [ReturnLine(endToEndID: e2e, status: .failed(reasonCode: "AC04", reason: "账户已销户"), amountFen: 100_000)])
        #expect(try f.applyReturn(returned) == (1, 0))
        #expect(try f.anomalies().isEmpty)
        #expect(try f.state(Self.idA) == .failed)
        #expect(try f.events("payment.failed", Self.idA).first?["after_settlement"]?.boolValue == true)
        #expect(try f.pool().posted == 1_000_000, "the money is back in the pool")
        let counted = try f.database.db.writer.read { db in try Int.fetchOne(db, sql: "SELECT reversed FROM returns WHERE id = 'CAMT-9'") }
        #expect(counted == 1)
        #expect(try f.ledgerOK())
        // The same return again changes nothing.
        #expect(try f.applyReturn(returned) == (0, 0))
        #expect(try f.pool().posted == 1_000_000)

        try f.payee(a, account: "6222000000000011", verifiedOn: "2022-05-01")
        #expect(try f.state(Self.idA) == .ready)
        try f.write { db in try f.engine.resume(channel: "treasury", db) }  // its batch's 1 of 1 failed paused it
        let again = try #require(try f.batch())
        #expect(try f.answer(batch: again.batchID, messageID: "RET-3", [Self.idA], .settled) == (1, 0))
        #expect(try f.state(Self.idA) == .settled)
        #expect(try f.pool().posted == 900_000)
        #expect(try f.pool().pendingDebits == 0)
        #expect(try f.balanced())

        // The bank sends the old return again under a new message id: it names the first
        // attempt's EndToEndId, so it cannot undo the retry's settlement.
        let resent = Camt054.xml(
            messageID: "CAMT-9-RESENT", accountNumber: "0000000000000000",
            lines: [ReturnLine(endToEndID: e2e, status: .failed(reasonCode: "AC04", reason: "账户已销户"), amountFen: 100_000)])
        #expect(try f.applyReturn(resent) == (0, 1))
        #expect(try f.state(Self.idA) == .settled)
        #expect(try f.pool().posted == 900_000, "no money came back: the pool is unchanged")
        #expect(try f.anomalies().last?.contains("attempt 0") == true)
        #expect(try f.balanced())
    }
}

extension PaymentsFixesTests {
    /// Two recipients of one programme sharing a phone: both are held (the earlier one's
    /// reservation released), each released only by an operator. One already instructed stays
    /// in the bank's hands; the later recipient is held.
    @Test func aSharedIdentifierHoldsBothSides() throws {
        let f = try EngineFixture()
        let (a, b) = Self.twoMerchants
        let (c, d) = ("91411002MA0000003C", "91411002MA0000004D")
        try f.merchant(a, name: "甲", phone: "phone-1")
        try f.merchant(b, name: "乙", phone: "phone-1")
        try f.merchant(c, name: "丙")
        try f.merchant(d, name: "丁")
        for (u, n) in [(a, "1"), (b, "2"), (c, "3"), (d, "3")] { try f.payee(u, account: "622200000000000\(n)") }
        try f.fund(1_000_000)
        let idD = "ent-" + String(repeating: "d", count: 32)
        try f.approve(Self.idA, uscc: a)
        #expect(try f.state(Self.idA) == .ready)
        try f.approve(Self.idB, uscc: b)
        for id in [Self.idA, Self.idB] { #expect(try f.payment(id).holdCode == "shared_phone") }
        #expect(try f.pool().pendingDebits == 0)
        try f.write { db in try f.engine.releaseHold(id: Self.idA, by: "区财政局 张三", reason: "同一家庭的两家店，已核实", db) }
        #expect(try f.state(Self.idA) == .ready)
        #expect(try f.payment(Self.idB).holdCode == "shared_phone", "each side is released on its own")
        #expect(try f.pool().pendingDebits == 100_000)

        // c is in the bank's hands when d turns up with c's account: only d is held.
        try f.approve(Self.idC, uscc: c, policy: "other-cash")
        _ = try #require(try f.batch())
        try f.approve(idD, uscc: d, policy: "other-cash")
        #expect(try f.payment(idD).holdCode == "shared_account")
        #expect(try f.state(Self.idC) == .instructed)
        #expect(try f.ledgerOK())
    }
}

extension PaymentsFixesTests {
    /// A rent waiver escalated for want of the lessor's confirmation and released by an
    /// operator awaits the lessor again (a new deadline, a reminder) and is never put in a
    /// second lessor file; the lessor's confirmation then settles it.
    @Test func aReleasedUnconfirmedRentWaiverIsNeverInstructedTwice() throws {
        let f = try EngineFixture()
        let (a, _) = Self.twoMerchants
        try f.merchant(a, name: "甲")
        try f.approve(
            Self.idA, uscc: a, amountFen: 300_000, policy: "test-rent", benefit: "rent_waiver", channel: "lessor", pool: nil, binding: "L-1"
        )
        let first = try #require(try f.batch("lessor"))
        #expect(first.content.contains(Self.idA))
        f.clock.advance(seconds: 31 * 86_400)
        #expect(try f.write { db in try f.engine.escalateOverdue(db) } == 1)
        #expect(try f.payment(Self.idA).holdCode == "lessor_unconfirmed")
        try f.write { db in try f.engine.releaseHold(id: Self.idA, by: "区商务局 李四", reason: "已电话催办出租方", db) }
        #expect(try f.state(Self.idA) == .instructed)
        #expect(try f.payment(Self.idA).batchID == first.batchID)
        #expect(try f.batch("lessor") == nil, "not in a second file")
        let instructed = try f.events("payment.instructed", Self.idA)
        #expect(instructed.count == 2)
        #expect(instructed.last?["reminder"]?.boolValue == true)
        try f.write { db in try f.engine.confirmed(by: "lessor", paymentID: nil, lease: "L-1", ok: true, method: "refund", db) }
        #expect(try f.state(Self.idA) == .settled)
    }
}

extension PaymentsFixesTests {
    /// An escalated rent waiver (held `lessor_unconfirmed`) is still with the lessor: revoking
    /// it is remembered, not a void, so the lessor's late confirmation is taken — and opens the
    /// clawback — instead of being ignored.
    @Test func aRevokedEscalatedWaiverIsStillWithTheLessor() throws {
        let f = try EngineFixture()
        let (a, _) = Self.twoMerchants
        try f.merchant(a, name: "甲")
        try f.approve(
            Self.idA, uscc: a, amountFen: 300_000, policy: "test-rent", benefit: "rent_waiver", channel: "lessor", pool: nil, binding: "L-1"
        )
        #expect(try f.batch("lessor") != nil)
        f.clock.advance(seconds: 31 * 86_400)
        #expect(try f.write { db in try f.engine.escalateOverdue(db) } == 1)
        try f.write { db in try f.engine.revoked(["entitlement_id": .string(Self.idA), "reason": "objection_upheld"], db) }
        #expect(try f.state(Self.idA) == .held, "not voided: the lessor holds the instruction")
        #expect(try f.payment(Self.idA).revoked == "objection_upheld")
        try f.write { db in try f.engine.confirmed(by: "lessor", paymentID: Self.idA, lease: nil, ok: true, method: "refund", db) }
        #expect(try f.state(Self.idA) == .clawedBack)
        #expect(try f.events("clawback.opened", Self.idA).count == 1)
        #expect(try f.balanced())
        // No money to recover, but the lessor carried the waiver out: its reversal goes to the
        // lessor in the next file (opened as a cancellation at the revocation, now a reversal).
        let reversal = try #require(try f.database.db.writer.read { db in try ReversalRecord.find(Self.idA, db) })
        #expect(reversal.action == .reverse && reversal.state == .pending && reversal.reason == "objection_upheld")
        let next = try #require(try f.batch("lessor"))
        #expect(next.content.contains("\"reversal_of\":\"\(Self.idA)\""), "\(next.content)")
    }
}

extension PaymentsFixesTests {
    func settings(_ extra: [String: String]) throws -> PaymentsSettings {
        var options = ServiceOptions(service: PaymentsService.name, upstreams: PaymentsService.upstreams)
        options.extra = PaymentsService.settings.merging(extra) { $1 }
        return try PaymentsService.paymentsSettings(options: options)
    }

    /// The placeholder treasury account is valid (the demo runs on it) but named as a warning by
    /// `--check-config` and at start; a real account is not.
    @Test func thePlaceholderTreasuryAccountIsAWarning() throws {
        func warnings(_ extra: [String: String]) -> [String] {
            var options = ServiceOptions(service: PaymentsService.name, upstreams: PaymentsService.upstreams)
            options.extra = PaymentsService.settings.merging(extra) { $1 }
            return PaymentsService.warnings(options: options)
        }
        #expect(warnings([:]).count == 1)
        #expect(warnings([:]).first?.contains("treasury-debtor-account is the placeholder") == true)
        #expect(warnings(["treasury-debtor-account": "4100000000000123"]).isEmpty)
    }

    /// `bangfu-payments --check-config` prints every setting with the value it would use, a
    /// default marked `(default)` — the percentage, the batch size, the debtor — never "(the
    /// built-in default)"; a secret key is never printed.
    @Test func checkConfigPrintsEveryEffectiveValue() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try ServiceProcess.binary("bangfu-payments"))
        p.arguments = ["--check-config", "--batch-max-payments", "500", "--state-dir", "/var/lib/bangfu/payments"]
        p.environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("BANGFU_") && $0.key != "STATE_DIRECTORY" }
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        try p.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(text)")
        let lines = text.split(separator: "\n").map(String.init)
        #expect(!text.contains("built-in default"), "\(text)")
        for key in PaymentsService.settings.keys { #expect(lines.contains { $0.hasPrefix(key + ": ") }, "\(key) missing: \(text)") }
        for line in [
            "failure-pause-percent: 20 (default)", "batch-max-payments: 500", "treasury-debtor-name: 国库集中支付账户 (default)",
            "treasury-debtor-account: 0000000000000000 (default)", "treasury-debtor-agent: PBOC-TREASURY (default)",
            "outbox-dir: /var/lib/bangfu/payments/outbox (default)", "inbox-dir: /var/lib/bangfu/payments/inbox (default)",
            "state-dir: /var/lib/bangfu/payments", "intake: tcp://127.0.0.1:7401 (default)", "matcher-feed: tcp://127.0.0.1:7202 (default)",
            "max-message-bytes: 1048576 (default)", "curve-secret-key: none (default)", "configuration OK (with 1 warning)",
        ] {
            #expect(lines.contains(line), "\(line) missing: \(text)")
        }
        // Without a state directory the directories are named by it.
        var o = ServiceOptions(service: PaymentsService.name, upstreams: PaymentsService.upstreams)
        o.extra = PaymentsService.settings
        #expect(PaymentsService.effectiveSettings(options: o)["outbox-dir"] == "<state-dir>/outbox")
        o.extra["failure-pause-percent"] = "35"
        #expect(PaymentsService.effectiveSettings(options: o)["failure-pause-percent"] == "35")
    }

    /// The treasury debtor is a setting (defaults as before), written into every pain.001.
    @Test func theTreasuryDebtorIsASetting() throws {
        let defaults = try settings([:])
        #expect(defaults.debtorName == "国库集中支付账户")
        #expect(defaults.debtorAccount == "0000000000000000")
        #expect(defaults.debtorAgent == "PBOC-TREASURY")
        let s = try settings([
            "treasury-debtor-name": "许昌市财政局国库支付中心", "treasury-debtor-account": "4100000000000123", "treasury-debtor-agent": "PBOC-XUCHANG",
        ])
        #expect(s.debtorName == "许昌市财政局国库支付中心" && s.debtorAccount == "4100000000000123" && s.debtorAgent == "PBOC-XUCHANG")
        #expect(throws: ConfigError.self) { try settings(["treasury-debtor-account": String(repeating: "1", count: 35)]) }

        let f = try EngineFixture { $0 = s }
        let (a, _) = Self.twoMerchants
        try f.verified(a, name: "甲", account: "6222000000000001")
        try f.fund(1_000_000)
        try f.approve(Self.idA, uscc: a)
        let file = try #require(try f.batch())
        let debtor = try Pain001.parse(file.content).debtor
        #expect(debtor.accountNumber == "4100000000000123")
        #expect(debtor.name == "许昌市财政局国库支付中心")
        #expect(file.content.contains("PBOC-XUCHANG"))
    }

    /// A failure-pause percentage that is not a whole number from 0 to 100 is refused, and the
    /// service exits 64 (a configuration error) instead of running with the default.
    @Test(arguments: ["abc", "-5", "101", "12.5"])
    func aBadFailurePausePercentIsAConfigurationError(value: String) throws {
        #expect(throws: ConfigError.self) { try settings(["failure-pause-percent": value]) }
        #expect(try settings(["failure-pause-percent": "35"]).failurePauseThreshold.numerator == 35)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try ServiceProcess.binary("bangfu-payments"))
        p.arguments = ["--state-dir", NSTemporaryDirectory() + "/payments-config-\(UUID().uuidString)", "--failure-pause-percent", value]
        p.standardError = FileHandle.nullDevice
        p.standardOutput = FileHandle.nullDevice
        let exited = DispatchSemaphore(value: 0)
        p.terminationHandler = { _ in exited.signal() }
        try p.run()
        if exited.wait(timeout: .now() + 60) == .timedOut {
            p.terminate()
            p.waitUntilExit()
            Issue.record("bangfu-payments started with --failure-pause-percent \(value)")
        }
        #expect(p.terminationStatus == 64)
    }
}

extension PaymentsFixesTests {
    /// A payment revoked after the bank failed it is voided: a new account does not pay it.
    @Test func aFailedPaymentRevokedAfterwardsIsNotRetried() throws {
        let f = try EngineFixture()
        let (a, _) = Self.twoMerchants
        try f.verified(a, name: "甲", account: "6222000000000001")
        try f.fund(1_000_000)
        try f.approve(Self.idA, uscc: a)
        let file = try #require(try f.batch())
        let failed = Pain002.xml(
            originalMessageID: "BANGFU-\(file.batchID)", messageID: "RET-1",
            lines: [
                ReturnLine(endToEndID: String(Self.idA.dropFirst(4)), status: .failed(reasonCode: "AC04", reason: nil), amountFen: 100_000)
            ])
        #expect(try f.applyReturn(failed) == (1, 0))
        try f.write { db in try f.engine.revoked(["entitlement_id": .string(Self.idA), "reason": "facts_changed"], db) }
        #expect(try f.state(Self.idA) == .voided)
        try f.payee(a, account: "6222000000000011", verifiedOn: "2022-05-01")
        #expect(try f.state(Self.idA) == .voided)
        #expect(try f.pool().pendingDebits == 0)
        #expect(try f.ledgerOK())
    }

    /// An entitlement revoked before it was paid (a policy withdrawn) and approved again under a
    /// later revision is paid after all, with a fresh reservation; an approval older than the
    /// revocation (a stale one) revives nothing, and nothing is paid twice.
    @Test func aVoidedPaymentApprovedAgainIsPaidOnce() throws {
        let f = try EngineFixture()
        let (a, _) = Self.twoMerchants
        try f.verified(a, name: "甲", account: "6222000000000001")
        try f.fund(1_000_000)
        try f.approve(Self.idA, uscc: a)
        #expect(try f.state(Self.idA) == .ready)
        let firstSeq = try f.payment(Self.idA).approvedSeq
        try f.write { db in try f.engine.revoked(["entitlement_id": .string(Self.idA), "reason": "policy_withdrawn: 政策调整"], db) }
        #expect(try f.state(Self.idA) == .voided)
        #expect(try f.pool().pendingDebits == 0)

        // A stale approval (not later than the one that made the payment) changes nothing.
        try f.write { db in
            try f.engine.approved(
                [
                    "entitlement_id": .string(Self.idA), "policy_id": "test-cash", "uscc": .string(a), "amount_fen": 100_000,
                    "benefit": "cash", "channel": "treasury", "pool": "pool",
                ], sequence: UInt64(firstSeq), db)
        }
        #expect(try f.state(Self.idA) == .voided)

        try f.approve(Self.idA, uscc: a, amountFen: 120_000)
        #expect(try f.state(Self.idA) == .ready)
        #expect(try f.payment(Self.idA).amountFen == 120_000)
        #expect(try f.pool().pendingDebits == 120_000)
        let file = try #require(try f.batch())
        #expect(EngineFixture.endToEndIDs(file).count == 1)
        #expect(try f.batch() == nil, "never in a second file")
        #expect(try f.balanced())
    }

    /// A lease with two rent waivers (the waiver and a city-owned property's extra month) cannot
    /// be confirmed by lease: the payment must be named, so the lessor's confirmation of one never
    /// settles the other.
    @Test func aLeaseWithTwoWaiversIsConfirmedOnlyByPayment() throws {
        let f = try EngineFixture()
        let (_, b) = Self.twoMerchants
        try f.merchant(b, name: "乙")
        let lease: JSON = [
            "lease_id": "L-7", "lessor": ["name": "许昌市国有资产经营公司", "uscc": "91411000MA40000001", "ownership": "state_enterprise"],
            "root_lessor": ["name": "许昌市国有资产经营公司", "uscc": "91411000MA40000001", "ownership": "state_enterprise"],
            "monthly_rent_fen": 100_000, "starts_on": "2021-01-01", "ends_on": "2023-12-31",
        ]
        for (id, policy) in [(Self.idB, "test-rent"), (Self.idC, "test-rent-extra")] {
            try f.approve(
                id, uscc: b, amountFen: 300_000, policy: policy, benefit: "rent_waiver", channel: "lessor", pool: nil, binding: "L-7",
                extra: ["name": "乙", "period": ["from": "2022-01-01", "to": "2022-06-30"], "lease": lease])
        }
        let file = try #require(try f.batch("lessor"))
        // Each instruction line says what the lessor needs to act: whose lease, which lessor, for
        // which period, and by when to confirm.
        let lines = try file.content.split(separator: "\n").dropFirst().map { try JSONParser.parse(Array($0.utf8)) }
        #expect(lines.count == 2)
        for line in lines {
            #expect(line["binding"]?.stringValue == "L-7")
            #expect(line["lease"]?["lessor"]?["name"]?.stringValue == "许昌市国有资产经营公司")
            #expect(line["tenant_name"]?.stringValue == "乙")
            #expect(line["period"]?["to"]?.stringValue == "2022-06-30")
            #expect(line["confirm_by"]?.stringValue?.isEmpty == false)
            #expect(line["state"]?.stringValue == "instructed", "the file instructs the payment: it is not ready any more")
        }
        func confirm(_ id: String?, lease: String?, policy: String? = nil) -> RejectionCode? {
            do {
                try f.write { db in
                    try f.engine.confirmed(by: "lessor", paymentID: id, lease: lease, policyID: policy, ok: true, method: "offset", db)
                }
                return nil
            } catch let r as Rejection {
                return r.code
            } catch {
                Issue.record(error)
                return nil
            }
        }
        #expect(confirm(nil, lease: "L-7") == .invalidData)
        #expect(try f.state(Self.idB) == .instructed)
        #expect(try f.state(Self.idC) == .instructed)
        #expect(confirm(Self.idB, lease: "L-7") == nil)
        #expect(try f.state(Self.idB) == .settled)
        #expect(try f.state(Self.idC) == .instructed, "the other waiver still awaits its lessor")
        // The lessor repeats its confirmation by lease: refused, not taken for the other waiver.
        #expect(confirm(nil, lease: "L-7") == .invalidData)
        #expect(try f.state(Self.idC) == .instructed)
        // By lease and programme: exactly one waiver.
        #expect(confirm(nil, lease: "L-7", policy: "no-such-programme") == .invalidData)
        #expect(confirm(nil, lease: "L-7", policy: "test-rent-extra") == nil)
        #expect(try f.state(Self.idC) == .settled)
        // The batch counts what its lessor confirmed, as a bank return's lines are counted.
        let settled = try f.database.db.writer.read { db in
            try Int.fetchOne(db, sql: "SELECT settled FROM batch_tallies WHERE batch_id = ?", arguments: [file.batchID])
        }
        #expect(settled == 2)
        #expect(try f.balanced())
    }

    /// A batch or resume for a channel that cannot exist is refused, not taken and ignored.
    @Test func aChannelIsTreasuryLessorOrAnAgency() throws {
        let f = try EngineFixture()
        let applier = PaymentsApplier(engine: f.engine)
        func code(_ type: String, _ channel: String) -> RejectionCode? {
            do {
                _ = try applier.validate(CloudEvent(id: "c", source: "/ops", type: type, data: ["channel": .string(channel)]))
                return nil
            } catch {
                return error.code
            }
        }
        for ok in ["treasury", "lessor", "agency:utilities", "agency:social-insurance"] {
            #expect(code("payments.batch", ok) == nil, "\(ok)")
        }
        for bad in ["bogus", "agency:", "agency_social-insurance", "agency:water works"] {
            #expect(code("payments.batch", bad) == .invalidData, "\(bad)")
            #expect(code("channel.resumed", bad) == .invalidData, "\(bad)")
        }
    }
}

extension PaymentsFixesTests {
    /// One agency cannot settle another agency's instructions, nor one lessor another lessor's
    /// rent waivers: a confirmation from `/agencies/<name>` settles only `agency:<name>`, one from
    /// `/lessors/<USCC>` only the leases that lessor lets; an operator's source is bound by its
    /// grant's types alone.
    @Test func aConfirmationSettlesOnlyTheConfirmersOwnInstructions() throws {
        let f = try EngineFixture()
        let (a, b) = Self.twoMerchants
        try f.merchant(a, name: "甲")
        try f.merchant(b, name: "乙")
        let owner = ["name": "许昌市国有资产经营公司", "uscc": "91411000MA4000000T", "ownership": "state_enterprise"] as JSON
        let lease: JSON = [
            "lease_id": "L-9", "lessor": owner, "root_lessor": owner, "monthly_rent_fen": 100_000, "starts_on": "2021-01-01",
            "ends_on": "2023-12-31",
        ]
        try f.approve(
            Self.idA, uscc: a, amountFen: 300_000, policy: "test-rent", benefit: "rent_waiver", channel: "lessor", pool: nil,
            binding: "L-9", extra: ["name": "甲", "lease": lease])
        try f.approve(
            Self.idB, uscc: b, amountFen: 0, policy: "test-utilities", benefit: "deferral", channel: "agency:utilities", pool: nil)
        _ = try #require(try f.batch("lessor"))
        _ = try #require(try f.batch("agency:utilities"))
        func confirm(_ id: String, by: String, source: String) -> RejectionCode? {
            do {
                try f.write { db in
                    try f.engine.confirmed(
                        by: by, paymentID: id, lease: nil, ok: true, method: by == "lessor" ? "refund" : nil, source: source, db)
                }
                return nil
            } catch let r as Rejection {
                return r.code
            } catch {
                Issue.record(error)
                return nil
            }
        }
        #expect(confirm(Self.idB, by: "agency", source: "/agencies/social-insurance") == .unauthorized)
        #expect(confirm(Self.idA, by: "lessor", source: "/lessors/91411000MA4000009N") == .unauthorized)
        #expect(try f.state(Self.idA) == .instructed)
        #expect(try f.state(Self.idB) == .instructed)
        #expect(confirm(Self.idB, by: "agency", source: "/agencies/utilities") == nil)
        #expect(try f.state(Self.idB) == .settled)
        #expect(confirm(Self.idA, by: "lessor", source: "/lessors/91411000MA4000000T") == nil)
        #expect(try f.state(Self.idA) == .settled)
    }

    /// An operator (or a county office confirming for the state lessors) is bound by its grant's
    /// types, not by the lessor's identity.
    @Test func anOperatorMayConfirmAnyLessorsWaiver() throws {
        let f = try EngineFixture()
        let (a, _) = Self.twoMerchants
        try f.merchant(a, name: "甲")
        try f.approve(
            Self.idA, uscc: a, amountFen: 300_000, policy: "test-rent", benefit: "rent_waiver", channel: "lessor", pool: nil,
            binding: "L-9", extra: ["name": "甲"])
        _ = try #require(try f.batch("lessor"))
        try f.write { db in
            try f.engine.confirmed(by: "lessor", paymentID: Self.idA, lease: nil, ok: true, method: "refund", source: "/bangfu/cli/ops", db)
        }
        #expect(try f.state(Self.idA) == .settled)
    }
}
