import BangfuTesting
import Bus
import Foundation
import Models
import Testing

/// The seed's programmes end to end in the harness: facts published at the registry, the shipped
/// policy files published at the matcher, entitlements awaited on the matcher's feed. Amounts
/// are hand-computed in the comments.
@Suite("Seed programmes end to end")
struct SeedProgrammeTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func policyYAML(_ id: String) throws -> String {
        try String(contentsOf: repo.appendingPathComponent("policies/\(id).yaml"), encoding: .utf8)
    }

    /// Registry + matcher (+ stand-ins for the notifier and payments) and a collector on the
    /// matcher's feed.
    final class World: Sendable {
        let h: Harness
        let registry: RunningService
        let matcher: RunningService
        let notifier: RunningService
        let payments: RunningService
        let feed: FeedCollector

        init(start: String = "2022-04-01T09:00:00+08:00") async throws {
            h = try Harness(start: start)
            registry = try await h.startRegistry()
            notifier = try await h.startStandIn("notifier")
            payments = try await h.startStandIn("payments")
            matcher = try await h.startMatcher()
            feed = try h.collect("matcher")
        }

        func facts(_ events: [CloudEvent]) async throws {
            let acks = try await registry.publish(events)
            for (e, a) in zip(events, acks) { #expect(a.status == .accepted, "\(e.type): \(a.rejection?.description ?? "")") }
        }

        func publish(_ policy: String) async throws {
            let ack = try await matcher.publish(
                Fixtures.event("policy.published", ["yaml": .string(try SeedProgrammeTests.policyYAML(policy))], source: "/ops/test"))
            #expect(ack.status == .accepted, "\(policy): \(ack.rejection?.description ?? "")")
        }

        /// Waits until the matcher has applied the registry's feed up to its current end, so that
        /// what follows sees every profile published so far.
        func settle() async throws {
            let last = try await registry.query(["op": "status"])["last"]?.stringValue ?? "0"
            let matcher = self.matcher
            let deadline = ContinuousClock.now + .seconds(20)
            while ContinuousClock.now < deadline {
                let s = try await matcher.query(["op": "status"])
                if s["inbox"]?["registry"]?.stringValue == last { return }
                await Task.yield()
            }
            Issue.record("the matcher did not catch up with the registry")
        }

        /// An entitlement's state, as the matcher answers `entitlement.show`.
        func state(_ id: String) async throws -> String {
            try await matcher.query(["op": "entitlement.show", "id": .string(id)])["entitlement"]?["state"]?.stringValue ?? ""
        }

        /// Waits (up to 20 s) until the entitlement is in state `wanted`.
        func waitFor(_ id: String, _ wanted: String) async throws {
            let deadline = ContinuousClock.now + .seconds(20)
            while ContinuousClock.now < deadline {
                if try await state(id) == wanted { return }
                await Task.yield()
            }
            Issue.record("\(id) never reached \(wanted); it is \(try await state(id))")
        }

        func apply(_ uscc: String, _ policy: String, at: String, documents: [String] = ["申请书.pdf"]) async throws -> Ack {
            try await matcher.publish(
                Fixtures.event(
                    "application.submitted",
                    [
                        "uscc": .string(uscc), "policy_id": .string(policy), "submitted_at": .string(at),
                        "documents": .array(documents.map { .string($0) }),
                    ], subject: uscc, source: "/portal/xuchang"))
        }

        /// The latest entitlement event for (policy, uscc, optional binding), once one of `types` arrives.
        func await(_ type: String, _ policy: String, _ uscc: String, binding: String? = nil) async -> JSON? {
            let ok = await feed.wait { events in
                events.contains { Self.matches($0, type, policy, uscc, binding) }
            }
            guard ok else { return nil }
            return feed.events.last { Self.matches($0, type, policy, uscc, binding) }?.data
        }

        static func matches(_ e: CloudEvent, _ type: String, _ policy: String, _ uscc: String, _ binding: String?) -> Bool {
            e.type == type && e.data?["policy_id"]?.stringValue == policy && e.subject == uscc
                && (binding == nil || e.data?["binding"]?.stringValue == binding)
        }

        func events(_ policy: String, _ uscc: String) -> [CloudEvent] {
            feed.events.filter { $0.data?["policy_id"]?.stringValue == policy && $0.subject == uscc }
        }

        func explain(_ uscc: String, _ policy: String) async throws -> JSON {
            try await matcher.query(["op": "explain", "uscc": .string(uscc), "policy": .string(policy)])
        }

        func close() async {
            await feed.stop()
            await h.shutdown()
        }
    }

    static let small: (Int64, Int64) = (12, 200 * 1_000_000)  // catering: E ≥ 10, R ≥ 100 万元 → small
    static let medium: (Int64, Int64) = (150, 3_000 * 1_000_000)  // catering: E ≥ 100, R ≥ 2000 万元 → medium

    @Test func stateRentWaiverFullProRataSubleaseSizeCreditAndDeadline() async throws {
        let w = try await World()
        var f = Fixtures(seed: 31)
        let a = f.uscc(individual: true)  // individual catering, long lease: 3 months
        let b = f.uscc()  // small enterprise, lease 2022-05-01..06-30: 61 days, pro rata
        let c = f.uscc()  // small enterprise, lease 2022-04-02..06-30: exactly 90 days → 3 months
        let d = f.uscc()  // medium enterprise: excluded
        let e = f.uscc()  // enterprise without finance figures: size unknown → incomplete
        let g = f.uscc()  // small enterprise with a serious_violation flag only: excluded
        var facts = [
            f.registration(uscc: a, name: "张记面馆", kind: "individual"),
            Fixtures.lease(id: "L-A", tenant: a, rentFen: 300_000, from: "2021-01-01", to: "2023-12-31"),
        ]
        for (u, name, lease) in [
            (b, "乙餐饮有限公司", ("L-B", "2022-05-01")), (c, "丙餐饮有限公司", ("L-C", "2022-04-02")), (g, "庚餐饮有限公司", ("L-G", "2021-01-01")),
        ] {
            facts += [
                f.registration(uscc: u, name: name),
                Fixtures.finance(uscc: u, employees: Self.small.0, revenueFen: Self.small.1, assetsFen: 0),
                Fixtures.lease(id: lease.0, tenant: u, rentFen: 300_000, from: lease.1, to: "2022-06-30"),
            ]
        }
        facts += [
            f.registration(uscc: d, name: "丁酒楼有限公司"),
            Fixtures.finance(uscc: d, employees: Self.medium.0, revenueFen: Self.medium.1, assetsFen: 0),
            Fixtures.lease(id: "L-D", tenant: d, rentFen: 300_000),
            f.registration(uscc: e, name: "戊小吃店有限公司"),
            Fixtures.lease(id: "L-E", tenant: e, rentFen: 300_000),
            Fixtures.event("credit.flagged", ["uscc": .string(g), "list": "serious_violation", "since": "2021-06-01"], subject: g),
        ]
        try await w.facts(facts)
        try await w.settle()
        try await w.publish("soe-rent-waiver")

        // Eligible but not applied: incomplete, naming the application (线上补报).
        let before = await w.await("entitlement.incomplete", "soe-rent-waiver", a)
        #expect(before?["missing"]?.arrayValue?.compactMap(\.stringValue) == ["application"])
        for u in [a, b, c, d, e, g] {
            #expect(try await w.apply(u, "soe-rent-waiver", at: "2022-05-10T10:00:00+08:00").status == .accepted)
        }

        let pa = await w.await("entitlement.proposed", "soe-rent-waiver", a)
        #expect(pa?["amount_fen"]?.intValue == 900_000)  // 300,000 × 3
        #expect(pa?["priority"]?.boolValue == true)  // catering is a priority sector
        #expect(pa?["channel"]?.stringValue == "lessor")
        let pb = await w.await("entitlement.proposed", "soe-rent-waiver", b)
        #expect(pb?["amount_fen"]?.intValue == 601_644)  // 300,000 × 12 × 61 / 365 = 601,643.84 → 601,644
        // Under three months in the period: refunded directly (seed 篇二 (二)); the full one is not.
        #expect(pb?["refund_only"]?.boolValue == true)
        #expect(pa?["refund_only"] == nil)
        let pc = await w.await("entitlement.proposed", "soe-rent-waiver", c)
        #expect(pc?["amount_fen"]?.intValue == 900_000)  // 90 days: 3 months
        let pe = await w.await("entitlement.incomplete", "soe-rent-waiver", e)
        #expect(pe?["missing"]?.arrayValue?.contains { ($0.stringValue ?? "").hasPrefix("merchant.finance") } == true)

        // d (medium) and g (serious violation) never get an entitlement; the explanation says why.
        // They applied: each is told why not (application.assessed), and nothing else. g applied
        // last: its assessment may still be on its way after e's event.
        #expect(await w.await("application.assessed", "soe-rent-waiver", d) != nil)
        #expect(await w.await("application.assessed", "soe-rent-waiver", g) != nil)
        #expect(w.events("soe-rent-waiver", d).map(\.type) == ["application.assessed"])
        #expect(w.events("soe-rent-waiver", g).map(\.type) == ["application.assessed"])
        #expect(w.events("soe-rent-waiver", g).first?.data?["reasons"] == ["存在不良信用记录（列入严重违法失信名单）"])
        let xd = try await w.explain(d, "soe-rent-waiver")
        #expect(xd["determinations"]?.arrayValue?.first?["outcome"]?["result"]?.stringValue == "ineligible")
        #expect(xd["determinations"]?.arrayValue?.first?["text"]?.stringValue?.contains("medium") == true)
        let xg = try await w.explain(g, "soe-rent-waiver")
        #expect(xg["determinations"]?.arrayValue?.first?["outcome"]?["result"]?.stringValue == "ineligible")

        // The deadline: 24:00 CST of 2022-06-30. One second before is taken; one second after is late.
        let late = f.uscc(individual: true)
        let onTime = f.uscc(individual: true)
        try await w.facts([
            f.registration(uscc: late, name: "迟到商户", kind: "individual"), f.registration(uscc: onTime, name: "准时商户", kind: "individual"),
        ])
        let lateAck = try await w.apply(late, "soe-rent-waiver", at: "2022-07-01T00:00:01+08:00")
        #expect(lateAck.rejection?.code == .late)
        #expect(try await w.apply(onTime, "soe-rent-waiver", at: "2022-06-30T23:59:59+08:00").status == .accepted)
        await w.close()
    }

    @Test func aSubleasePaysTheFinalTenantNotTheIntermediateLessee() async throws {
        let w = try await World()
        var f = Fixtures(seed: 32)
        let middle = f.uscc()
        let final = f.uscc(individual: true)
        try await w.facts([
            f.registration(uscc: middle, name: "二房东餐饮有限公司"),
            Fixtures.finance(uscc: middle, employees: Self.small.0, revenueFen: Self.small.1, assetsFen: 0),
            f.registration(uscc: final, name: "李记小吃", kind: "individual"),
            Fixtures.lease(id: "HEAD", tenant: middle, lessorOwnership: "state_enterprise", rentFen: 500_000),
            Fixtures.lease(
                id: "SUB", tenant: final, lessorName: "二房东餐饮有限公司", lessorOwnership: "private", subleaseOf: "HEAD", rentFen: 200_000),
        ])
        try await w.settle()
        try await w.publish("soe-rent-waiver")
        for u in [middle, final] { _ = try await w.apply(u, "soe-rent-waiver", at: "2022-05-01T09:00:00+08:00") }
        let p = await w.await("entitlement.proposed", "soe-rent-waiver", final)
        #expect(p?["amount_fen"]?.intValue == 600_000)  // the final tenant's own rent, 200,000 × 3
        #expect(p?["binding"]?.stringValue == "SUB")
        #expect(w.events("soe-rent-waiver", middle).allSatisfy { $0.type != "entitlement.proposed" })
        let x = try await w.explain(middle, "soe-rent-waiver")
        #expect(x["determinations"]?.arrayValue?.first?["outcome"]?["result"]?.stringValue == "ineligible")
        await w.close()
    }

    @Test func retentionSubsidyNeedsSevenClosedDaysCountedOnce() async throws {
        let w = try await World()
        var f = Fixtures(seed: 33)
        let seven = f.uscc()
        let six = f.uscc()
        func closure(_ u: String, _ from: String, _ to: String) -> CloudEvent {
            Fixtures.event(
                "closure.reported",
                ["uscc": .string(u), "from": .string(from), "to": .string(to), "reason": "epidemic_control", "district": "411002"],
                subject: u)
        }
        try await w.facts([
            f.registration(uscc: seven, name: "七天工厂"),
            Fixtures.finance(uscc: seven, employees: 40, revenueFen: 1_000 * 1_000_000, assetsFen: 0),
            Fixtures.socialInsurance(uscc: seven, month: "2022-03", insured: 12),
            // 04-01..04-04 and 04-03..04-07 overlap: 7 distinct days, not 9.
            closure(seven, "2022-04-01", "2022-04-04"), closure(seven, "2022-04-03", "2022-04-07"),
            f.registration(uscc: six, name: "六天工厂"),
            Fixtures.finance(uscc: six, employees: 40, revenueFen: 1_000 * 1_000_000, assetsFen: 0),
            Fixtures.socialInsurance(uscc: six, month: "2022-03", insured: 12), closure(six, "2022-04-10", "2022-04-15"),
        ])
        try await w.settle()
        try await w.publish("retention-training-subsidy")
        let p = await w.await("entitlement.proposed", "retention-training-subsidy", seven)
        #expect(p?["amount_fen"]?.intValue == 600_000)  // 12 insured × 50,000 fen (500 yuan)
        #expect(p?["pool"]?.stringValue == "unemployment-insurance-fund")
        #expect(w.events("retention-training-subsidy", six).isEmpty)
        let x = try await w.explain(six, "retention-training-subsidy")
        #expect(x["determinations"]?.arrayValue?.first?["outcome"]?["result"]?.stringValue == "ineligible")
        await w.close()
    }

    @Test func floodReliefExcludesOtherAidAndCapsTheAmount() async throws {
        let w = try await World(start: "2021-07-25T09:00:00+08:00")
        var f = Fixtures(seed: 34)
        let shop = f.uscc(individual: true)
        let aided = f.uscc(individual: true)
        var facts: [CloudEvent] = []
        for u in [shop, aided] {
            facts += [
                f.registration(uscc: u, name: "受灾商户", kind: "individual", industry: "F5261", district: "411071"),
                Fixtures.lease(
                    id: "FL-\(u)", tenant: u, lessorOwnership: "private", rentFen: 400_000, from: "2020-01-01", to: "2022-12-31"),
                Fixtures.event(
                    "damage.reported", ["uscc": .string(u), "event": "flood-2021-07", "loss_fen": 8_000_000, "evidence": ["photo.jpg"]],
                    subject: u),
            ]
        }
        facts.append(
            Fixtures.event(
                "aid.received",
                [
                    "uscc": .string(aided), "programme": "flood-relief-province", "source": "省应急厅", "amount_fen": 300_000,
                    "on": "2021-07-30",
                ],
                subject: aided))
        try await w.facts(facts)
        try await w.settle()
        try await w.publish("flood-relief")
        for u in [shop, aided] {
            #expect(
                try await w.apply(u, "flood-relief", at: "2021-08-10T10:00:00+08:00", documents: ["申请表.pdf", "受灾照片.jpg"]).status
                    == .accepted)
        }
        let p = await w.await("entitlement.proposed", "flood-relief", shop)
        #expect(p?["amount_fen"]?.intValue == 1_000_000)  // min(10,000 yuan cap, 3 × 400,000)
        #expect(p?["exclusive_group"]?.stringValue == "flood-relief")
        #expect(w.events("flood-relief", aided).allSatisfy { $0.type != "entitlement.proposed" })
        let late = try await w.apply(f.uscc(individual: true), "flood-relief", at: "2021-08-14T00:00:00+08:00")
        #expect(late.rejection?.code == .late)
        await w.close()
    }

    @Test func cityPropertyExtraMonthNeedsNoApplicationAndDeferralsAreApprovedAtOnce() async throws {
        let w = try await World()
        var f = Fixtures(seed: 35)
        let tenant = f.uscc(individual: true)
        let unitInsured = f.uscc(individual: true)
        let noEmployees = f.uscc(individual: true)
        let cityLease = Fixtures.event(
            "lease.registered",
            [
                "lease_id": "CITY-1", "tenant_uscc": .string(tenant),
                "lessor": ["name": "许昌市机关事务管理局", "ownership": "government", "level": "city"], "use": "business",
                "monthly_rent_fen": 250_000, "starts_on": "2021-06-01", "ends_on": "2024-05-31",
            ], subject: tenant)
        try await w.facts([
            f.registration(uscc: tenant, name: "市属房屋租户", kind: "individual"), cityLease,
            f.registration(uscc: unitInsured, name: "单位参保个体户", kind: "individual"),
            Fixtures.socialInsurance(uscc: unitInsured, month: "2022-03", insured: 3),
            f.registration(uscc: noEmployees, name: "无雇员个体户", kind: "individual"),
        ])
        try await w.settle()
        try await w.publish("city-soe-extra-month")
        try await w.publish("si-deferral")
        let extra = await w.await("entitlement.proposed", "city-soe-extra-month", tenant)
        #expect(extra?["amount_fen"]?.intValue == 250_000)  // one more month, no application needed
        for u in [unitInsured, noEmployees] { _ = try await w.apply(u, "si-deferral", at: "2022-05-01T09:00:00+08:00") }
        let approved = await w.await("entitlement.approved", "si-deferral", unitInsured)
        #expect(approved?["benefit"]?.stringValue == "deferral")
        #expect(approved?["channel"]?.stringValue == "agency:social-insurance")
        #expect(w.events("si-deferral", noEmployees).allSatisfy { $0.type != "entitlement.proposed" })
        await w.close()
    }

    @Test func lifecycleDisclosureReviewFrozenAmountPaymentAndWithdrawal() async throws {
        let w = try await World()
        var f = Fixtures(seed: 36)
        let a = f.uscc(individual: true)
        let b = f.uscc(individual: true)
        try await w.facts([
            f.registration(uscc: a, name: "甲面馆", kind: "individual"), Fixtures.lease(id: "LA", tenant: a, rentFen: 300_000),
            f.registration(uscc: b, name: "乙面馆", kind: "individual"), Fixtures.lease(id: "LB", tenant: b, rentFen: 100_000),
        ])
        try await w.settle()
        try await w.publish("soe-rent-waiver")
        for u in [a, b] { _ = try await w.apply(u, "soe-rent-waiver", at: "2022-05-01T09:00:00+08:00") }
        let pa = try #require(await w.await("entitlement.proposed", "soe-rent-waiver", a))
        let pb = try #require(await w.await("entitlement.proposed", "soe-rent-waiver", b))
        let ida = try #require(pa["entitlement_id"]?.stringValue)
        let idb = try #require(pb["entitlement_id"]?.stringValue)

        // The notifier's disclosure round: opened, then a's cleared and b's objection upheld.
        _ = try await w.notifier.publish(
            Fixtures.event("disclosure.opened", ["round_id": "R1", "entitlement_ids": [.string(ida), .string(idb)]]))
        _ = try await w.notifier.publish(Fixtures.event("disclosure.cleared", ["round_id": "R1", "entitlement_ids": [.string(ida)]]))
        _ = try await w.notifier.publish(
            Fixtures.event("disclosure.objection_upheld", ["entitlement_id": .string(idb), "reason": "转租给亲属"]))
        let revoked = await w.await("entitlement.revoked", "soe-rent-waiver", b)
        #expect(revoked?["reason"]?.stringValue?.hasPrefix("objection_upheld") == true)

        // No auto-approval for this programme: an operator approves after clearing.
        let deadline = ContinuousClock.now + .seconds(20)
        var state = ""
        while ContinuousClock.now < deadline && state != "cleared" {
            state = try await w.matcher.query(["op": "entitlement.show", "id": .string(ida)])["entitlement"]?["state"]?.stringValue ?? ""
            await Task.yield()
        }
        #expect(state == "cleared")
        let review = try await w.matcher.publish(
            Fixtures.event("review.approved", ["entitlement_id": .string(ida), "by": "区房产局 王科长"], source: "/ops/review"))
        #expect(review.status == .accepted)
        let approved = await w.await("entitlement.approved", "soe-rent-waiver", a)
        #expect(approved?["amount_fen"]?.intValue == 900_000)

        // After approval the amount is frozen: a new rent raises a review flag, not a new amount.
        let countBefore = w.events("soe-rent-waiver", a).count
        try await w.facts([Fixtures.lease(id: "LA", tenant: a, rentFen: 400_000)])
        try await w.settle()
        let shown = try await w.matcher.query(["op": "entitlement.show", "id": .string(ida)])["entitlement"]
        #expect(shown?["state"]?.stringValue == "approved")
        #expect(shown?["approved_amount_fen"]?.intValue == 900_000)
        #expect(shown?["review_flag"]?["kind"]?.stringValue == "amount_changed")
        #expect(shown?["review_flag"]?["would_be_fen"]?.intValue == 1_200_000)
        #expect(w.events("soe-rent-waiver", a).count == countBefore, "no event for a frozen amount")

        // Payments settle it: entitlement.paid.
        _ = try await w.payments.publish(Fixtures.event("payment.instructed", ["payment_id": .string(ida), "amount_fen": 900_000]))
        _ = try await w.payments.publish(Fixtures.event("payment.settled", ["payment_id": .string(ida), "amount_fen": 900_000]))
        let paid = await w.await("entitlement.paid", "soe-rent-waiver", a)
        #expect(paid?["state"]?.stringValue == "paid")

        // Withdrawing the policy revokes what is not yet paying out; the paid one stays paid.
        let c = f.uscc(individual: true)
        try await w.facts([f.registration(uscc: c, name: "丙面馆", kind: "individual"), Fixtures.lease(id: "LC", tenant: c, rentFen: 100_000)])
        _ = try await w.apply(c, "soe-rent-waiver", at: "2022-05-02T09:00:00+08:00")
        _ = await w.await("entitlement.proposed", "soe-rent-waiver", c)
        _ = try await w.matcher.publish(
            Fixtures.event("policy.withdrawn", ["policy_id": "soe-rent-waiver", "reason": "政策调整"], source: "/ops/test"))
        let rc = await w.await("entitlement.revoked", "soe-rent-waiver", c)
        #expect(rc?["reason"]?.stringValue?.hasPrefix("policy_withdrawn") == true)
        let paidStill = try await w.matcher.query(["op": "entitlement.show", "id": .string(ida)])["entitlement"]
        #expect(paidStill?["state"]?.stringValue == "paid")
        // Every entitlement id is unique on the feed per event number; never a second entitlement.
        let ids = Set(w.feed.events.compactMap { $0.data?["entitlement_id"]?.stringValue })
        #expect(ids.count == 3)
        await w.close()
    }

    @Test func utilitiesDeferralExclusiveGroupsAndNoEventWhenNothingChanges() async throws {
        let w = try await World()
        var f = Fixtures(seed: 37)
        let shop = f.uscc(individual: true)
        let mid = f.uscc()
        try await w.facts([
            f.registration(uscc: shop, name: "水电缓缴小店", kind: "individual"),
            f.registration(uscc: mid, name: "中型商场有限公司", industry: "F5211"),
            // retail: E ≥ 50 and R ≥ 500 万元 → medium
            Fixtures.finance(uscc: mid, employees: 200, revenueFen: 20_000 * 1_000_000, assetsFen: 0),
        ])
        try await w.settle()
        try await w.publish("utilities-no-cutoff")
        for u in [shop, mid] { _ = try await w.apply(u, "utilities-no-cutoff", at: "2022-06-01T09:00:00+08:00") }
        let ok = await w.await("entitlement.approved", "utilities-no-cutoff", shop)
        #expect(ok?["channel"]?.stringValue == "agency:utilities")
        #expect(ok?["amount_fen"]?.intValue == 0)
        #expect(
            w.events("utilities-no-cutoff", mid).allSatisfy { $0.type != "entitlement.proposed" }, "a medium enterprise is not small/micro")

        // A fact that changes the profile but not the outcome: no entitlement event.
        let before = w.events("utilities-no-cutoff", shop).count
        try await w.facts([Fixtures.socialInsurance(uscc: shop, month: "2022-05", insured: 2)])
        try await w.settle()
        #expect(w.events("utilities-no-cutoff", shop).count == before)

        // Two programmes in one exclusive group: a merchant gets only one of them.
        let flooded = f.uscc(individual: true)
        try await w.facts([
            f.registration(uscc: flooded, name: "双重申报商户", kind: "individual", industry: "F5261", district: "411071"),
            Fixtures.lease(id: "FX", tenant: flooded, lessorOwnership: "private", rentFen: 200_000, from: "2020-01-01", to: "2022-12-31"),
            Fixtures.event(
                "damage.reported", ["uscc": .string(flooded), "event": "flood-2021-07", "loss_fen": 500_000, "evidence": ["p.jpg"]],
                subject: flooded),
        ])
        try await w.settle()
        var city = try SeedProgrammeTests.policyYAML("flood-relief")
        city = city.replacingOccurrences(of: "id: flood-relief\n", with: "id: flood-relief-city\n")
        city = city.replacingOccurrences(of: "apply_until: 2021-08-13", with: "apply_until: 2022-12-31")
        let pub = try await w.matcher.publish(Fixtures.event("policy.published", ["yaml": .string(city)], source: "/ops/test"))
        #expect(pub.status == .accepted, "\(pub.rejection?.description ?? "")")
        // The matcher's clock reads 2022-04-01: both windows are kept open to then.
        let county = try SeedProgrammeTests.policyYAML("flood-relief").replacingOccurrences(
            of: "apply_until: 2021-08-13", with: "apply_until: 2022-12-31")
        let pub2 = try await w.matcher.publish(Fixtures.event("policy.published", ["yaml": .string(county)], source: "/ops/test"))
        #expect(pub2.status == .accepted, "\(pub2.rejection?.description ?? "")")
        #expect(try await w.apply(flooded, "flood-relief", at: "2022-04-01T09:00:00+08:00").status == .accepted)
        #expect(try await w.apply(flooded, "flood-relief-city", at: "2022-04-01T09:00:00+08:00").status == .accepted)
        let first = await w.await("entitlement.proposed", "flood-relief", flooded)
        #expect(first?["amount_fen"]?.intValue == 600_000)
        #expect(w.events("flood-relief-city", flooded).allSatisfy { $0.type != "entitlement.proposed" })
        let x = try await w.explain(flooded, "flood-relief-city")
        let d = x["determinations"]?.arrayValue?.first
        #expect(d?["outcome"]?["result"]?.stringValue == "eligible", "eligible on its own terms …")
        #expect(d?["state"]?.stringValue == "revoked", "… but the group already pays under flood-relief")
        #expect(d?["reason"]?.stringValue?.contains("exclusive group flood-relief") == true)
        await w.close()
    }

    @Test func badPoliciesAreRejectedWithLineAndColumnAndRevisionsAreImmutable() async throws {
        let w = try await World()
        var yaml = try Self.policyYAML("utilities-no-cutoff")
        let typo = yaml.replacingOccurrences(of: "merchant.tags.size in", with: "merchant.tags.sise in")
        let bad = try await w.matcher.publish(Fixtures.event("policy.published", ["yaml": .string(typo)], source: "/ops/test"))
        #expect(bad.rejection?.code == .invalidData)
        #expect(bad.rejection?.message.contains("line") == true)
        #expect(bad.rejection?.message.contains("sise") == true)
        try await w.publish("utilities-no-cutoff")
        yaml = yaml.replacingOccurrences(of: "extension_months: 1", with: "extension_months: 2")
        let changed = try await w.matcher.publish(Fixtures.event("policy.published", ["yaml": .string(yaml)], source: "/ops/test"))
        #expect(changed.rejection?.code == .conflict, "revision 1 is already published with other content")
        let list = try await w.matcher.query(["op": "policy.list"])
        #expect(list["items"]?.arrayValue?.count == 1)
        await w.close()
    }
}
