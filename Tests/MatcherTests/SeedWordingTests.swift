import BangfuTesting
import Bus
import Foundation
import Models
import Testing

/// The shipped programmes read as the seed words them: who qualifies for the rent waiver, which
/// premises are "用于经营", which month's insured employees count, and when flood applications open.
@Suite("The seed's wording")
struct SeedWordingTests {
    typealias World = SeedProgrammeTests.World

    func outcome(_ w: World, _ uscc: String, _ policy: String) async throws -> String? {
        try await w.explain(uscc, policy)["determinations"]?.arrayValue?.first?["outcome"]?["result"]?.stringValue
    }

    /// 减免租金的承租方应为…服务业小微企业、…个体工商户: individual businesses in any industry;
    /// enterprises only in the service industry; offices and workshops are premises 用于经营.
    @Test func rentWaiverIndividualsInAnyIndustryAndBusinessPremisesOfAnyKind() async throws {
        let w = try await World()
        var f = Fixtures(seed: 61)
        let tofu = f.uscc(individual: true)  // individual tofu workshop (manufacturing)
        let software = f.uscc()  // small software firm renting an office
        let factory = f.uscc()  // small manufacturing enterprise: not service industry
        let flat = f.uscc(individual: true)  // individual renting a flat: residential
        try await w.facts([
            f.registration(uscc: tofu, name: "王记豆腐坊", kind: "individual", industry: "C1392"),
            Fixtures.lease(id: "L-TOFU", tenant: tofu, rentFen: 100_000, use: "industrial"),
            f.registration(uscc: software, name: "许昌码农软件有限公司", industry: "I6513"),
            Fixtures.finance(uscc: software, employees: 12, revenueFen: 200 * 1_000_000, assetsFen: 0),
            Fixtures.lease(id: "L-SOFT", tenant: software, rentFen: 200_000, use: "office"),
            f.registration(uscc: factory, name: "许昌小五金制造有限公司", industry: "C3311"),
            Fixtures.finance(uscc: factory, employees: 12, revenueFen: 200 * 1_000_000, assetsFen: 0),
            Fixtures.lease(id: "L-FAC", tenant: factory, rentFen: 300_000, use: "industrial"),
            f.registration(uscc: flat, name: "李记裁缝铺", kind: "individual", industry: "O8090"),
            Fixtures.lease(id: "L-FLAT", tenant: flat, rentFen: 80_000, use: "residential"),
        ])
        try await w.settle()
        try await w.publish("soe-rent-waiver")
        for u in [tofu, software, factory, flat] {
            #expect(try await w.apply(u, "soe-rent-waiver", at: "2022-05-10T10:00:00+08:00").status == .accepted)
        }
        #expect(await w.await("entitlement.proposed", "soe-rent-waiver", tofu)?["amount_fen"]?.intValue == 300_000)
        #expect(await w.await("entitlement.proposed", "soe-rent-waiver", software)?["amount_fen"]?.intValue == 600_000)
        #expect(try await outcome(w, factory, "soe-rent-waiver") == "ineligible")
        #expect(try await outcome(w, flat, "soe-rent-waiver") == "ineligible")
        await w.close()
    }

    /// 转租、分租国有房屋的，免租惠及最终承租方: a sublease running in the period makes its tenant the
    /// final one; a tenant who sublet years before is the final tenant again.
    @Test func onlyASubleaseInThePeriodMovesTheWaiverDown() async throws {
        let w = try await World()
        var f = Fixtures(seed: 64)
        let once = f.uscc(individual: true)  // sublet 2019-06..2020-05, its own shop again in 2022
        let formerSub = f.uscc(individual: true)
        let head = f.uscc(individual: true)  // sublets during 2022
        let sub = f.uscc(individual: true)
        try await w.facts([
            f.registration(uscc: once, name: "甲面馆", kind: "individual"),
            Fixtures.lease(id: "L-ONCE", tenant: once, rentFen: 100_000, from: "2019-01-01", to: "2024-12-31"),
            f.registration(uscc: formerSub, name: "乙面馆", kind: "individual"),
            Fixtures.lease(
                id: "L-ONCE-SUB", tenant: formerSub, lessorName: "甲面馆", lessorOwnership: "private", subleaseOf: "L-ONCE", rentFen: 90_000,
                from: "2019-06-01", to: "2020-05-31"),
            f.registration(uscc: head, name: "丙商贸", kind: "individual"),
            Fixtures.lease(id: "L-HEAD", tenant: head, rentFen: 200_000, from: "2019-01-01", to: "2024-12-31"),
            f.registration(uscc: sub, name: "丁小吃", kind: "individual"),
            Fixtures.lease(
                id: "L-SUB", tenant: sub, lessorName: "丙商贸", lessorOwnership: "private", subleaseOf: "L-HEAD", rentFen: 150_000,
                from: "2022-03-01", to: "2023-02-28"),
        ])
        try await w.settle()
        try await w.publish("soe-rent-waiver")
        for u in [once, head, sub] {
            #expect(try await w.apply(u, "soe-rent-waiver", at: "2022-05-10T10:00:00+08:00").status == .accepted)
        }
        #expect(await w.await("entitlement.proposed", "soe-rent-waiver", once)?["amount_fen"]?.intValue == 300_000)
        // The sub-tenant's lease covers 2022-03-01..06-30: 122 days of the period, 3 months.
        #expect(await w.await("entitlement.proposed", "soe-rent-waiver", sub)?["amount_fen"]?.intValue == 450_000)
        #expect(try await outcome(w, head, "soe-rent-waiver") == "ineligible")
        // A programme that screens everyone takes no application: refused, not kept unread.
        try await w.publish("city-soe-extra-month")
        let needless = try await w.apply(once, "city-soe-extra-month", at: "2022-05-10T10:00:00+08:00")
        #expect(needless.rejection?.code == .invalidData)
        #expect(needless.rejection?.message.contains("takes no applications") == true)
        await w.close()
    }

    /// The employees counted are those insured in the programme's month: a later report does not
    /// change the amount, and a merchant with only an old report is asked for that month's.
    @Test func retentionSubsidyCountsTheInsuredOfItsMonth() async throws {
        let w = try await World()
        var f = Fixtures(seed: 62)
        let hired = f.uscc()
        let stale = f.uscc()
        func closure(_ u: String) -> CloudEvent {
            Fixtures.event(
                "closure.reported",
                ["uscc": .string(u), "from": "2022-04-01", "to": "2022-04-10", "reason": "epidemic_control", "district": "411002"],
                subject: u)
        }
        try await w.facts([
            f.registration(uscc: hired, name: "扩招工厂"),
            Fixtures.finance(uscc: hired, employees: 40, revenueFen: 1_000 * 1_000_000, assetsFen: 0),
            Fixtures.socialInsurance(uscc: hired, month: "2022-03", insured: 12),
            Fixtures.socialInsurance(uscc: hired, month: "2022-09", insured: 40), closure(hired),
            f.registration(uscc: stale, name: "旧报工厂"),
            Fixtures.finance(uscc: stale, employees: 40, revenueFen: 1_000 * 1_000_000, assetsFen: 0),
            Fixtures.socialInsurance(uscc: stale, month: "2020-06", insured: 50), closure(stale),
        ])
        try await w.settle()
        try await w.publish("retention-training-subsidy")
        // 12 insured in 2022-03 × 500 yuan, not the 40 of the later report.
        #expect(await w.await("entitlement.proposed", "retention-training-subsidy", hired)?["amount_fen"]?.intValue == 600_000)
        let incomplete = await w.await("entitlement.incomplete", "retention-training-subsidy", stale)
        #expect(incomplete?["missing"]?.arrayValue?.compactMap(\.stringValue) == ["merchant.social_insurance_history"])
        // The month's report arrives (线上补报): proposed on it.
        try await w.facts([Fixtures.socialInsurance(uscc: stale, month: "2022-03", insured: 7)])
        #expect(await w.await("entitlement.proposed", "retention-training-subsidy", stale)?["amount_fen"]?.intValue == 350_000)
        await w.close()
    }

    /// The seed sets only the closing date: applications are taken from the day of the flood.
    @Test func floodApplicationsOpenOnTheDayOfTheFlood() async throws {
        let w = try await World(start: "2021-07-21T09:00:00+08:00")
        var f = Fixtures(seed: 63)
        let shop = f.uscc(individual: true)
        try await w.facts([
            f.registration(uscc: shop, name: "受灾五金店", kind: "individual", industry: "F5274", district: "411071"),
            Fixtures.lease(
                id: "FL-OFFICE", tenant: shop, lessorOwnership: "private", rentFen: 200_000, from: "2020-01-01", to: "2022-12-31",
                use: "warehouse"),
            Fixtures.event(
                "damage.reported", ["uscc": .string(shop), "event": "flood-2021-07", "loss_fen": 3_000_000, "evidence": ["photo.jpg"]],
                subject: shop),
        ])
        // A shop whose registered rent is 0: the subsidy works out at nothing, so no entitlement.
        let free = f.uscc(individual: true)
        try await w.facts([
            f.registration(uscc: free, name: "免租五金店", kind: "individual", industry: "F5274", district: "411071"),
            Fixtures.lease(id: "FL-FREE", tenant: free, lessorOwnership: "private", rentFen: 0, from: "2020-01-01", to: "2022-12-31"),
            Fixtures.event(
                "damage.reported", ["uscc": .string(free), "event": "flood-2021-07", "loss_fen": 3_000_000, "evidence": ["photo.jpg"]],
                subject: free),
        ])
        try await w.settle()
        try await w.publish("flood-relief")
        #expect(try await w.apply(free, "flood-relief", at: "2021-07-21T09:30:00+08:00", documents: ["申请表.pdf"]).status == .accepted)
        let early = try await w.apply(shop, "flood-relief", at: "2021-07-21T10:00:00+08:00", documents: ["申请表.pdf"])
        #expect(early.status == .accepted, "\(early.rejection?.description ?? "")")
        #expect(await w.await("entitlement.proposed", "flood-relief", shop)?["amount_fen"]?.intValue == 600_000)  // 3 × 200,000
        // The applications are taken in order: the free shop's was decided before — with nothing
        // to pay, its waiting entitlement (incomplete: the application) is revoked, never proposed.
        #expect(!w.events("flood-relief", free).contains { $0.type == "entitlement.proposed" }, "no 0-fen cash entitlement")
        let last = w.events("flood-relief", free).last
        #expect(last?.type == "entitlement.revoked")
        #expect(last?.data?["reason"]?.stringValue?.contains("nothing to pay") == true)
        let x = try await w.explain(free, "flood-relief")
        #expect(x["determinations"]?.arrayValue?.first?["outcome"]?["amount_fen"]?.intValue == 0)
        await w.close()
    }
}
