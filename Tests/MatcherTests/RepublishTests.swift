import BangfuTesting
import Bus
import Foundation
import Models
import Testing

/// Withdrawing a policy and publishing a later revision (DESIGN §6.4, §7).
@Suite("Withdraw and republish")
struct RepublishTests {
    typealias World = SeedProgrammeTests.World

    @Test func aLaterRevisionReProposesWhatTheWithdrawalRevokedButNotWhatWasPaid() async throws {
        let w = try await World()
        var f = Fixtures(seed: 51)
        let proposed = f.uscc(individual: true)
        let approved = f.uscc(individual: true)
        let paid = f.uscc(individual: true)
        let held = f.uscc(individual: true)
        let failed = f.uscc(individual: true)
        try await w.facts([
            f.registration(uscc: held, name: "丁面馆", kind: "individual"), Fixtures.lease(id: "LH", tenant: held, rentFen: 110_000),
            f.registration(uscc: failed, name: "戊面馆", kind: "individual"), Fixtures.lease(id: "LF", tenant: failed, rentFen: 120_000),
        ])
        try await w.facts([
            f.registration(uscc: proposed, name: "甲面馆", kind: "individual"), Fixtures.lease(id: "LP", tenant: proposed, rentFen: 100_000),
            f.registration(uscc: approved, name: "乙面馆", kind: "individual"), Fixtures.lease(id: "LA", tenant: approved, rentFen: 200_000),
            f.registration(uscc: paid, name: "丙面馆", kind: "individual"), Fixtures.lease(id: "LD", tenant: paid, rentFen: 300_000),
        ])
        try await w.settle()
        try await w.publish("soe-rent-waiver")
        for u in [proposed, approved, paid, held, failed] {
            _ = try await w.apply(u, "soe-rent-waiver", at: "2022-05-01T09:00:00+08:00")
        }
        var ids: [String: String] = [:]
        for u in [proposed, approved, paid, held, failed] {
            ids[u] = try #require(await w.await("entitlement.proposed", "soe-rent-waiver", u)?["entitlement_id"]?.stringValue)
        }
        let ia = ids[approved]!
        let ip = ids[paid]!
        let ih = ids[held]!
        let iff = ids[failed]!
        let round: JSON = .array([ia, ip, ih, iff].map { .string($0) })
        _ = try await w.notifier.publish(Fixtures.event("disclosure.opened", ["round_id": "R1", "entitlement_ids": round]))
        _ = try await w.notifier.publish(Fixtures.event("disclosure.cleared", ["round_id": "R1", "entitlement_ids": round]))
        for id in [ia, ip, ih, iff] { try await w.waitFor(id, "cleared") }
        let review = try await w.matcher.publish(
            Fixtures.event("review.approved", ["entitlement_ids": round, "by": "区房产局 王科长"], source: "/ops/review"))
        #expect(review.status == .accepted)
        // An approved rent waiver names its lease and lessor: the lessor carries it out.
        let approvedEvent = await w.await("entitlement.approved", "soe-rent-waiver", approved)
        #expect(approvedEvent?["lease"]?["lease_id"]?.stringValue == "LA")
        #expect(approvedEvent?["lease"]?["lessor"]?["ownership"]?.stringValue == "state_enterprise")
        #expect(approvedEvent?["lease"]?["monthly_rent_fen"]?.intValue == 200_000)
        _ = try await w.payments.publish(Fixtures.event("payment.instructed", ["payment_id": .string(ip), "amount_fen": 900_000]))
        _ = try await w.payments.publish(Fixtures.event("payment.settled", ["payment_id": .string(ip), "amount_fen": 900_000]))
        _ = await w.await("entitlement.paid", "soe-rent-waiver", paid)
        // One held (money not out), one returned by the bank and awaiting a retry.
        _ = try await w.payments.publish(Fixtures.event("payment.held", ["payment_id": .string(ih), "reason": "pool_short"]))
        try await w.waitFor(ih, "held")
        // Released (the pool funded): approved again, the hold named in its reason; then held anew.
        _ = try await w.payments.publish(Fixtures.event("payment.released", ["payment_id": .string(ih), "reason": "pool_short"]))
        try await w.waitFor(ih, "approved")
        let released = try await w.matcher.query(["op": "entitlement.show", "id": .string(ih)])["entitlement"]?["reason"]?.stringValue
        #expect(released == "released: pool_short")
        _ = try await w.payments.publish(Fixtures.event("payment.held", ["payment_id": .string(ih), "reason": "account_changed"]))
        // And the paid one's twin case: a waiver whose instruction is with the lessor, escalated
        // (held lessor_unconfirmed) — not revoked by the withdrawal: the lessor may still confirm.
        _ = try await w.payments.publish(Fixtures.event("payment.instructed", ["payment_id": .string(ia), "amount_fen": 600_000]))
        _ = try await w.payments.publish(Fixtures.event("payment.held", ["payment_id": .string(ia), "reason": "lessor_unconfirmed"]))
        try await w.waitFor(ia, "held")
        _ = try await w.payments.publish(Fixtures.event("payment.instructed", ["payment_id": .string(iff), "amount_fen": 360_000]))
        _ = try await w.payments.publish(Fixtures.event("payment.failed", ["payment_id": .string(iff), "reason": "AC04"]))
        try await w.waitFor(ih, "held")
        try await w.waitFor(iff, "failed")

        _ = try await w.matcher.publish(
            Fixtures.event("policy.withdrawn", ["policy_id": "soe-rent-waiver", "reason": "政策调整"], source: "/ops/test"))
        // Everything whose money is not out is revoked, held and failed included: a later
        // pool.funded or payee.verified must not pay them under a withdrawn policy.
        for u in [proposed, held, failed] {
            let r = await w.await("entitlement.revoked", "soe-rent-waiver", u)
            #expect(r?["reason"]?.stringValue?.hasPrefix("policy_withdrawn") == true)
        }
        let paidEvents = w.events("soe-rent-waiver", paid).count
        let escalatedEvents = w.events("soe-rent-waiver", approved).count
        #expect(try await w.state(ia) == "held", "the waiver with its lessor is left to payments")
        // The operator's list still names the withdrawn revision and says what became of it.
        let withdrawn = try await w.matcher.query(["op": "policy.list"])["items"]?.arrayValue ?? []
        #expect(withdrawn.count == 1)
        #expect(withdrawn.first?["state"]?.stringValue == "withdrawn")
        #expect(withdrawn.first?["title"]?.stringValue?.isEmpty == false)
        #expect(withdrawn.first?["withdraw_reason"]?.stringValue == "政策调整")
        #expect(withdrawn.first?["entitled"]?.intValue == 2, "the paid one and the waiver with its lessor")

        // The next revision: the same programme again. Those the withdrawal revoked are proposed anew
        // (same entitlement ids, the new revision, the amount worked out again); the paid one is
        // left alone — no second proposal, so no second payment.
        let yaml = try SeedProgrammeTests.policyYAML("soe-rent-waiver").replacingOccurrences(of: "revision: 3\n", with: "revision: 4\n")
        let pub = try await w.matcher.publish(Fixtures.event("policy.published", ["yaml": .string(yaml)], source: "/ops/test"))
        #expect(pub.status == .accepted, "\(pub.rejection?.description ?? "")")
        let ok = await w.feed.wait { events in
            [proposed, held, failed].allSatisfy { u in
                events.contains {
                    $0.type == "entitlement.proposed" && $0.subject == u && $0.data?["policy_revision"]?.intValue == 4
                }
            }
        }
        #expect(ok, "all three re-proposed under revision 4")
        let again = w.events("soe-rent-waiver", held).last
        #expect(again?.type == "entitlement.proposed")
        #expect(again?.data?["entitlement_id"]?.stringValue == ih)
        #expect(again?.data?["amount_fen"]?.intValue == 330_000)  // 110,000 × 3, worked out again
        #expect(w.events("soe-rent-waiver", approved).count == escalatedEvents, "nothing new for the waiver with its lessor")
        #expect(w.events("soe-rent-waiver", proposed).last?.data?["amount_fen"]?.intValue == 300_000)
        #expect(try await w.state(ip) == "paid")
        #expect(w.events("soe-rent-waiver", paid).count == paidEvents, "nothing new for the paid entitlement")
        #expect(Set(w.feed.events.compactMap { $0.data?["entitlement_id"]?.stringValue }).count == 5, "never a second entitlement")
        // Each revision with its own state and the entitlements held under it.
        let revisions = try await w.matcher.query(["op": "policy.list"])["items"]?.arrayValue ?? []
        #expect(revisions.map { $0["state"]?.stringValue } == ["withdrawn", "live"])
        #expect(revisions.map { $0["entitled"]?.intValue } == [2, 3])
        #expect(revisions[0]["title"]?.stringValue == revisions[1]["title"]?.stringValue)
        await w.close()
    }
}
