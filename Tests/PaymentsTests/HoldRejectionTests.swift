import BangfuTesting
import Bus
import Foundation
import GRDB
import ISO20022
import Logging
import Storage
import Testing

@testable import Models
@testable import Payments

/// An operator's `hold.rejected` voids the payment and says so on the payments feed
/// (`payment.failed`, reason `hold_rejected`), so the matcher's entitlement no longer reads
/// "held" and the merchant hears why.
@Suite("Hold rejection", .serialized)
struct HoldRejectionTests {
    typealias R = PaymentsReviewTests

    @Test func aRejectedHoldIsPublishedAsAVoidedFailure() throws {
        let f = try EngineFixture()
        try f.merchant(R.a, name: "甲")
        try f.approve(R.idA, uscc: R.a)
        #expect(try f.payment(R.idA).holdCode == "no_verified_account")
        try f.write { db in try f.engine.rejectHold(id: R.idA, by: "区财政局 张三", reason: "核实后不予拨付", db) }
        #expect(try f.state(R.idA) == .voided)
        let failed = try #require(try f.events("payment.failed", R.idA).last, "the rejection is on the feed")
        #expect(failed["reason"]?.stringValue == "hold_rejected")
        #expect(failed["rejected_hold"]?.stringValue == "no_verified_account")
        #expect(failed["voided"]?.boolValue == true)
        #expect(failed["state"]?.stringValue == "voided")
        #expect(failed["hold_code"]?.stringValue == nil, "the hold is over")
        #expect(try f.balanced())
    }

    /// Through the services: two merchants share a bank account (both held `shared_account`);
    /// the operator rejects one hold; the matcher's entitlement leaves "held" for "failed", its
    /// reason saying it was voided and why.
    @Test func theMatcherFollowsARejectedHoldOutOfHeld() async throws {
        let w = try await PaymentsEndToEndTests.World()
        // Money in the pool first: the first twin approved is ready, and the second's approval
        // holds both `shared_account`.
        #expect(
            try await w.command("pool.funded", ["pool": "test-pool", "source": "central", "amount_fen": 1_000_000]).status == .accepted)
        var f = Fixtures(seed: 93)
        let twinA = f.uscc()
        let twinB = f.uscc()
        try await w.registry.publish([
            f.registration(uscc: twinA, name: "丙商贸有限公司"), w.account(twinA, holder: "丙商贸有限公司", number: "6222020000000099"),
            f.registration(uscc: twinB, name: "丁商贸有限公司"), w.account(twinB, holder: "丁商贸有限公司", number: "6222020000000099"),
        ]).forEach { #expect($0.status == .accepted) }
        #expect(
            try await w.matcher.publish(
                Fixtures.event("policy.published", ["yaml": .string(PaymentsEndToEndTests.policy)], source: "/ops/test")
            ).status == .accepted)
        let held = try #require(await w.paymentEvent("payment.held", twinA) { $0["hold_code"]?.stringValue == "shared_account" })
        let id = try #require(held["payment_id"]?.stringValue)
        let matcher = w.matcher
        func entitlement() async throws -> JSON? { try await matcher.query(["op": "entitlement.show", "id": .string(id)])["entitlement"] }
        var deadline = ContinuousClock.now + .seconds(30)
        while try await entitlement()?["state"]?.stringValue != "held" && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(try await entitlement()?["state"]?.stringValue == "held")

        let ack = try await w.command("hold.rejected", ["payment_id": .string(id), "by": "区财政局 张三", "reason": "共用账户，不予拨付"])
        #expect(ack.status == .accepted)
        #expect(await w.paymentEvent("payment.failed", twinA) { $0["reason"]?.stringValue == "hold_rejected" } != nil)
        deadline = ContinuousClock.now + .seconds(30)
        while try await entitlement()?["state"]?.stringValue != "failed" && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        let shown = try await entitlement()
        #expect(shown?["state"]?.stringValue == "failed")
        #expect(shown?["reason"]?.stringValue == "voided: hold_rejected (shared_account)", "\(shown?["reason"]?.stringValue ?? "-")")
        await w.close()
    }
}
