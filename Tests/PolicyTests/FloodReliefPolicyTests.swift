import Foundation
import Models
import Testing

@testable import Policy

/// The shipped flood-relief file (seed 篇三, DESIGN §6.5 #4) on hand-built profiles.
@Suite("Flood relief policy file")
struct FloodReliefPolicyTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func shipped() throws -> CompiledPolicy {
        try PolicyCompiler.compile(
            yaml: String(contentsOf: repo.appendingPathComponent("policies/flood-relief.yaml"), encoding: .utf8))
    }

    static let application: JSON = ["submitted_on": "2021-08-01", "documents": ["申请表.pdf"]]

    /// An individual retail shop hit by the July 2021 flood, renting for 4,000 yuan a month.
    static func shop(district: String = "411071", aid: [JSON] = [], damaged: Bool = true) -> JSON {
        Fx.merchant {
            $0["district"] = .string(district)
            $0["industry"] = "F5261"
            $0["tags"] = ["size": "individual", "sector": "retail", "service_industry": true, "priority_sector": true]
            $0["leases"] = [Fx.lease(id: "FL", rent: 400_000, starts: "2020-01-01", ends: "2022-12-31", ownership: "private")]
            $0["damages"] = damaged ? [["event": "flood-2021-07", "loss_fen": 8_000_000, "evidence": ["photo.jpg"]]] : []
            $0["aid"] = .array(aid)
        }
    }

    static func aid(_ programme: String) -> JSON {
        ["programme": .string(programme), "source": "省应急厅", "amount_fen": 300_000, "on": "2021-07-30"]
    }

    func outcomes(_ m: JSON) throws -> [Determination.Outcome] {
        try Self.shipped().evaluate(PolicyInput(merchant: m, application: Self.application)).map(\.outcome)
    }

    @Test func onlyMerchantsRegisteredInTheDevelopmentZoneQualify() throws {
        // 在经开区行政区域内办理有营业执照: 411071 (经开区) yes; 411002 (魏都区) is outside the zone.
        #expect(try outcomes(Self.shop(district: "411071")) == [.eligible(amountFen: 1_000_000)])  // min(cap, 3 × 400,000)
        #expect(try outcomes(Self.shop(district: "411002")) == [.ineligible])
        #expect(try Self.shipped().document.params["zone_districts"] == ["411071"])
    }

    /// A merchant with no damage on file: outside the zone, the zone is what decides (whatever
    /// damage it registered, it would not qualify); inside, nothing on the merchant fails, and the
    /// missing damage is the whole answer.
    @Test func withNothingBoundTheMerchantsOwnFailingConditionIsFound() throws {
        func unbound(_ district: String) throws -> Determination? {
            try Self.shipped().evaluateUnbound(
                PolicyInput(merchant: Self.shop(district: district, damaged: false), application: Self.application))
        }
        let outside = try #require(try unbound("411002"))
        #expect(ClauseWording.reasons(outside.trace) == ["经营地不在本政策的实施区域内"], "\(ClauseWording.reasons(outside.trace))")
        #expect(try unbound("411071") == nil)
    }

    @Test func otherFloodAidExcludesWhateverItsProgrammeIsCalled() throws {
        // 未通过任何渠道享受或正在申请其他中央或地方财政支持的防汛救灾资金: the programme's id or
        // name marks it as flood aid, wherever the mark stands and in either language.
        for programme in ["flood-relief-province", "xuchang-flood-aid-2021", "省级防汛救灾资金", "2021年河南汛期救助", "抗洪救灾补助", "水灾救助"] {
            #expect(try outcomes(Self.shop(aid: [Self.aid(programme)])) == [.ineligible], "\(programme)")
        }
        // Aid for something else does not exclude, nor does this programme's own payment.
        for programme in ["retention-training-subsidy", "稳岗补贴", "flood-relief"] {
            #expect(try outcomes(Self.shop(aid: [Self.aid(programme)])) == [.eligible(amountFen: 1_000_000)], "\(programme)")
        }
    }
}

@Suite("Policy reviewers")
struct PolicyReviewerTests {
    @Test func theFloodFileNamesBothBureausAndReviewersRuleOutAutoApproval() throws {
        let shipped = try FloodReliefPolicyTests.shipped().document
        #expect(shipped.reviewers == ["经开区招商局", "市场监管经开区分局"])
        #expect(!shipped.autoApprove)
        let yaml = try String(
            contentsOf: FloodReliefPolicyTests.repo.appendingPathComponent("policies/flood-relief.yaml"), encoding: .utf8)
        let auto = yaml.replacingOccurrences(of: "auto_approve: false", with: "auto_approve: true")
        #expect(throws: PolicyErrors.self) { try PolicyCompiler.compile(yaml: auto) }
        let twice = yaml.replacingOccurrences(of: "reviewers: [经开区招商局, 市场监管经开区分局]", with: "reviewers: [经开区招商局, 经开区招商局]")
        #expect(throws: PolicyErrors.self) { try PolicyCompiler.compile(yaml: twice) }
        let bad = yaml.replacingOccurrences(of: "reviewers: [经开区招商局, 市场监管经开区分局]", with: "reviewers: 经开区招商局")
        #expect(throws: PolicyErrors.self) { try PolicyCompiler.compile(yaml: bad) }
    }
}
