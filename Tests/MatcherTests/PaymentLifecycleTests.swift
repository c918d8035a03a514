import BangfuTesting
import Bus
import Foundation
import Models
import Testing

/// What payments reports moves the entitlement (DESIGN §7): a bank return after settlement
/// (camt.054) makes a paid entitlement failed again, and a retry is held, instructed and paid.
@Suite("Payment lifecycle in the matcher")
struct PaymentLifecycleTests {
    typealias World = SeedProgrammeTests.World

    /// A rent waiver of an individual business applied for, disclosed, cleared and approved by
    /// review; its entitlement id and the review's ack.
    static func approvedWaiver(_ w: World, seed: UInt64, name: String, lease: String) async throws -> (String, String, Ack) {
        var f = Fixtures(seed: seed)
        let u = f.uscc(individual: true)
        try await w.facts([f.registration(uscc: u, name: name, kind: "individual"), Fixtures.lease(id: lease, tenant: u, rentFen: 300_000)])
        try await w.settle()
        try await w.publish("soe-rent-waiver")
        _ = try await w.apply(u, "soe-rent-waiver", at: "2022-05-01T09:00:00+08:00")
        let id = try #require(await w.await("entitlement.proposed", "soe-rent-waiver", u)?["entitlement_id"]?.stringValue)
        _ = try await w.notifier.publish(Fixtures.event("disclosure.opened", ["round_id": "R1", "entitlement_ids": [.string(id)]]))
        _ = try await w.notifier.publish(Fixtures.event("disclosure.cleared", ["round_id": "R1", "entitlement_ids": [.string(id)]]))
        try await w.waitFor(id, "cleared")
        let review = try await w.matcher.publish(
            Fixtures.event("review.approved", ["entitlement_id": .string(id), "by": "区房产局 王科长"], source: "/ops/review"))
        return (u, id, review)
    }

    @Test func aReturnAfterSettlementMakesThePaidEntitlementFailedAndARetryPaysIt() async throws {
        let w = try await World()
        let (u, id, review) = try await Self.approvedWaiver(w, seed: 61, name: "甲面馆", lease: "LA")
        #expect(review.status == .accepted)
        _ = try await w.payments.publish(Fixtures.event("payment.instructed", ["payment_id": .string(id), "amount_fen": 900_000]))
        _ = try await w.payments.publish(Fixtures.event("payment.settled", ["payment_id": .string(id), "amount_fen": 900_000]))
        try await w.waitFor(id, "paid")

        // The bank returns the money after settling it (camt.054).
        _ = try await w.payments.publish(
            Fixtures.event("payment.failed", ["payment_id": .string(id), "reason": "AC04", "after_settlement": true]))
        try await w.waitFor(id, "failed")
        let shown = try await w.matcher.query(["op": "entitlement.show", "id": .string(id)])["entitlement"]
        #expect(shown?["reason"]?.stringValue?.hasPrefix("returned after settlement") == true)

        // The retry: held until a verified account comes, then instructed and settled.
        _ = try await w.payments.publish(Fixtures.event("payment.held", ["payment_id": .string(id), "reason": "no_verified_account"]))
        try await w.waitFor(id, "held")
        _ = try await w.payments.publish(
            Fixtures.event(
                "payment.instructed",
                [
                    "payment_id": .string(id), "amount_fen": 900_000,
                    "audit_link": ["seq": 42, "hash": .string(String(repeating: "ab", count: 32))],
                ]))
        try await w.waitFor(id, "instructed")
        _ = try await w.payments.publish(
            Fixtures.event(
                "payment.settled", ["payment_id": .string(id), "amount_fen": 900_000, "batch_id": "B000002", "return_id": "RET-9"]))
        try await w.waitFor(id, "paid")

        // 全程督: the entitlement's own history, in order — on which profile version and policy
        // revision it was proposed, the disclosure round, who approved it, each payment step.
        let history = try #require(
            try await w.matcher.query(["op": "entitlement.show", "id": .string(id)])["entitlement"]?["history"]?.arrayValue)
        let steps = history.map { "\($0["step"].map { $0.stringValue ?? "" } ?? "")>\($0["state"]?.stringValue ?? "")" }
        #expect(
            steps == [
                "incomplete>incomplete", "proposed>proposed", "disclosed>disclosed", "cleared>cleared", "approved>approved",
                "instructed>instructed", "paid>paid", "failed>failed", "held>held", "instructed>instructed", "paid>paid",
            ]
                || steps == [
                    "proposed>proposed", "disclosed>disclosed", "cleared>cleared", "approved>approved", "instructed>instructed",
                    "paid>paid", "failed>failed", "held>held", "instructed>instructed", "paid>paid",
                ], "\(steps)")
        func detail(_ step: String) -> [String] {
            history.filter { $0["step"]?.stringValue == step }.compactMap { $0["detail"]?.stringValue }
        }
        #expect(detail("proposed").first?.contains("profile version") == true, "\(detail("proposed"))")
        #expect(detail("proposed").first?.contains("policy revision 3") == true, "\(detail("proposed"))")
        #expect(detail("disclosed") == ["round R1"])
        #expect(detail("cleared") == ["round R1"])
        #expect(detail("approved").first?.contains("区房产局 王科长") == true, "\(detail("approved"))")
        #expect(detail("failed").first?.hasPrefix("returned after settlement: AC04") == true, "\(detail("failed"))")
        #expect(detail("held") == ["held: no_verified_account"])
        #expect(detail("paid").last?.contains("batch B000002, return RET-9") == true, "\(detail("paid"))")
        // The payments audit link an instruction carried: the matcher keeps a witness of that chain.
        #expect(detail("instructed").last == "payments audit link 42:" + String(repeating: "ab", count: 32), "\(detail("instructed"))")
        // The event says which profile version it rests on.
        let approved = try #require(await w.await("entitlement.approved", "soe-rent-waiver", u))
        #expect(approved["profile_version"]?.intValue != nil)
        await w.close()
    }

    /// A rent waiver carried out, then clawed back: its reversal through the lessor (in which file,
    /// confirmed or not) is in the entitlement's history, and the state stays clawed back.
    @Test func aReversedWaiverKeepsItsReversalInTheHistory() async throws {
        let w = try await World()
        let (_, id, _) = try await Self.approvedWaiver(w, seed: 62, name: "乙面馆", lease: "LB")
        _ = try await w.payments.publish(Fixtures.event("payment.instructed", ["payment_id": .string(id), "batch_id": "B000001"]))
        _ = try await w.payments.publish(Fixtures.event("payment.settled", ["payment_id": .string(id), "method": "refund"]))
        try await w.waitFor(id, "paid")
        _ = try await w.payments.publish(
            Fixtures.event(
                "clawback.opened", ["payment_id": .string(id), "reason": "objection_upheld", "receivable_fen": 0, "reversal": true]))
        try await w.waitFor(id, "clawed_back")
        _ = try await w.payments.publish(
            Fixtures.event(
                "reversal.instructed",
                [
                    "payment_id": .string(id), "action": "reverse", "reason": "objection_upheld", "batch_id": "B000005",
                    "file": "BANGFU-B000005-lessor.jsonl", "confirm_by": "2022-07-01T09:00:00.000+08:00",
                ]))
        _ = try await w.payments.publish(
            Fixtures.event(
                "reversal.confirmed",
                ["payment_id": .string(id), "action": "reverse", "ok": true, "method": "reversed", "batch_id": "B000005"]))
        var history: [JSON] = []
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            history = try await w.matcher.query(["op": "entitlement.show", "id": .string(id)])["entitlement"]?["history"]?.arrayValue ?? []
            if history.contains(where: { $0["step"]?.stringValue == "reversal_confirmed" }) { break }
            await Task.yield()
        }
        let tail = history.suffix(3).map { "\($0["step"]?.stringValue ?? "")>\($0["state"]?.stringValue ?? "")" }
        #expect(tail == ["clawed_back>clawed_back", "reversal_instructed>clawed_back", "reversal_confirmed>clawed_back"], "\(history)")
        let instructed = history.first { $0["step"]?.stringValue == "reversal_instructed" }?["detail"]?.stringValue ?? ""
        #expect(
            instructed.contains("reverse (objection_upheld) confirm by 2022-07-01") && instructed.contains("batch B000005")
                && instructed.contains("file BANGFU-B000005-lessor.jsonl"), "\(instructed)")
        let confirmed = history.last?["detail"]?.stringValue ?? ""
        #expect(confirmed == "reverse done; reversed; batch B000005", "\(confirmed)")
        try await w.waitFor(id, "clawed_back")
        await w.close()
    }
}
