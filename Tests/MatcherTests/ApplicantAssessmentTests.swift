import BangfuTesting
import Bus
import Foundation
import Matcher
import Models
import Testing

/// 不符合条件告知: an applicant the matcher finds not eligible hears back (`application.assessed`),
/// with the reasons in plain Chinese; one who qualifies or is incomplete gets the entitlement's
/// events instead, and a repeated application tells nobody twice.
@Suite("Applicants found not eligible are told why")
struct ApplicantAssessmentTests {
    typealias World = SeedProgrammeTests.World

    static let large: (Int64, Int64) = (400, 20_000 * 1_000_000)  // catering: E ≥ 300 and R ≥ 10000 万元 → large

    @Test func anIneligibleApplicantIsToldWhyAndOnlyOnce() async throws {
        let w = try await World()
        var f = Fixtures(seed: 71)
        let big = f.uscc()  // large enterprise, state lease
        let privateLease = f.uscc()  // small enterprise, private lessor
        let noLease = f.uscc(individual: true)  // individual business with no lease at all
        let small = f.uscc()  // small enterprise, state lease: eligible
        let unknown = f.uscc()  // no finance figures: incomplete
        try await w.facts([
            f.registration(uscc: big, name: "大酒店集团有限公司"),
            Fixtures.finance(uscc: big, employees: Self.large.0, revenueFen: Self.large.1, assetsFen: 0),
            Fixtures.lease(id: "L-BIG", tenant: big, rentFen: 5_000_000),
            f.registration(uscc: privateLease, name: "私房餐饮有限公司"),
            Fixtures.finance(
                uscc: privateLease, employees: SeedProgrammeTests.small.0, revenueFen: SeedProgrammeTests.small.1, assetsFen: 0),
            Fixtures.lease(id: "L-PRIV", tenant: privateLease, lessorName: "王某某", lessorOwnership: "private", rentFen: 300_000),
            f.registration(uscc: noLease, name: "赵记面馆", kind: "individual"),
            f.registration(uscc: small, name: "小餐饮有限公司"),
            Fixtures.finance(uscc: small, employees: SeedProgrammeTests.small.0, revenueFen: SeedProgrammeTests.small.1, assetsFen: 0),
            Fixtures.lease(id: "L-SMALL", tenant: small, rentFen: 300_000),
            f.registration(uscc: unknown, name: "未报财务餐饮有限公司"),
            Fixtures.lease(id: "L-UNK", tenant: unknown, rentFen: 300_000),
        ])
        try await w.settle()
        try await w.publish("soe-rent-waiver")

        let at = "2022-05-10T10:00:00+08:00"
        for u in [big, privateLease, noLease, small, unknown] {
            #expect(try await w.apply(u, "soe-rent-waiver", at: at).status == .accepted)
        }
        // The same application again (another event, the same documents): nobody is told twice.
        #expect(try await w.apply(big, "soe-rent-waiver", at: at).status == .accepted)

        let b = try #require(await w.await("application.assessed", "soe-rent-waiver", big))
        #expect(b["outcome"]?.stringValue == "ineligible")
        #expect(b["uscc"]?.stringValue == big)
        #expect(b["policy_revision"]?.intValue == 3)
        #expect(b["title"]?.stringValue == "承租国有房屋的服务业小微企业和个体工商户免除3个月租金")
        #expect(b["submitted_at"]?.stringValue == at)
        let reasons = b["reasons"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(reasons.contains { $0.contains("大型企业") }, "\(reasons)")
        // Plain Chinese: no policy expressions in what the merchant reads.
        #expect(!reasons.joined().contains("merchant."), "\(reasons)")
        #expect(b["window"]?["apply_until"]?.stringValue == "2022-06-30")
        #expect(b["explain"]?["op"]?.stringValue == "explain")
        let trace = b["determinations"]?.arrayValue?.first?["trace"]
        #expect(trace?["outcome"]?["result"]?.stringValue == "ineligible")
        #expect(trace?["clauses"]?.arrayValue?.isEmpty == false)
        // The stable id: (policy, merchant, the application as submitted).
        let id = try #require(b["assessment_id"]?.stringValue)
        #expect(id == MatcherEngine.assessmentID(policyID: "soe-rent-waiver", uscc: big, submittedAt: at, documents: ["申请书.pdf"]))

        let p = try #require(await w.await("application.assessed", "soe-rent-waiver", privateLease))
        let pr = p["reasons"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(pr.contains { $0.contains("出租方不是国有企业") }, "\(pr)")

        let n = try #require(await w.await("application.assessed", "soe-rent-waiver", noLease))
        #expect(n["reasons"]?.arrayValue?.compactMap(\.stringValue) == ["没有据以享受本政策的房屋租赁登记"])
        // Nothing bound, nothing traced: no trace was left out for want of room.
        #expect(n["determinations"]?.arrayValue?.isEmpty == true)
        #expect(n["trace_omitted"] == nil)
        #expect(b["trace_omitted"] == nil)

        // Eligible and incomplete applicants get their entitlement's events, not an assessment.
        #expect(await w.await("entitlement.proposed", "soe-rent-waiver", small) != nil)
        #expect(await w.await("entitlement.incomplete", "soe-rent-waiver", unknown) != nil)
        // A marker after everything above: the repeated application has been taken by now.
        let marker = f.uscc(individual: true)
        try await w.facts([f.registration(uscc: marker, name: "标记商户", kind: "individual")])
        try await w.settle()
        #expect(try await w.apply(marker, "soe-rent-waiver", at: at).status == .accepted)
        #expect(await w.await("application.assessed", "soe-rent-waiver", marker) != nil)
        for u in [small, unknown] {
            #expect(!w.events("soe-rent-waiver", u).contains { $0.type == "application.assessed" })
        }
        #expect(w.events("soe-rent-waiver", big).filter { $0.type == "application.assessed" }.count == 1)
        #expect(w.events("soe-rent-waiver", big).allSatisfy { $0.type == "application.assessed" }, "no entitlement for big")

        // A supplement with new documents (线上补报) is a new application: it is answered anew.
        #expect(
            try await w.apply(big, "soe-rent-waiver", at: "2022-05-12T10:00:00+08:00", documents: ["补充说明.pdf"]).status == .accepted)
        let ok = await w.feed.wait { events in events.filter { $0.type == "application.assessed" && $0.subject == big }.count == 2 }
        #expect(ok)
        let second = w.events("soe-rent-waiver", big).last { $0.type == "application.assessed" }
        #expect(second?.data?["assessment_id"]?.stringValue != id)
        // The first submission stands; the documents are merged.
        #expect(second?.data?["submitted_at"]?.stringValue == at)
        await w.close()
    }

    /// A merchant told "not eligible" who becomes eligible (its facts change) gets the normal
    /// entitlement flow: the application is on file.
    @Test func aLaterEligibleApplicantIsProposedAsUsual() async throws {
        let w = try await World()
        var f = Fixtures(seed: 72)
        let u = f.uscc()
        try await w.facts([
            f.registration(uscc: u, name: "先大后小餐饮有限公司"),
            Fixtures.finance(uscc: u, employees: Self.large.0, revenueFen: Self.large.1, assetsFen: 0),
            Fixtures.lease(id: "L-U", tenant: u, rentFen: 300_000),
        ])
        try await w.settle()
        try await w.publish("soe-rent-waiver")
        #expect(try await w.apply(u, "soe-rent-waiver", at: "2022-05-10T10:00:00+08:00").status == .accepted)
        #expect(await w.await("application.assessed", "soe-rent-waiver", u) != nil)
        try await w.facts([
            Fixtures.finance(
                uscc: u, year: 2022, employees: SeedProgrammeTests.small.0, revenueFen: SeedProgrammeTests.small.1, assetsFen: 0)
        ])
        let proposed = await w.await("entitlement.proposed", "soe-rent-waiver", u)
        #expect(proposed?["amount_fen"]?.intValue == 900_000)
        await w.close()
    }
}
