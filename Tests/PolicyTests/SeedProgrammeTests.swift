import Models
import Testing

@testable import Policy

/// The rest of the seed's programmes (DESIGN §6.5), written in the language, on hand-computed cases.
@Suite("Seed programmes")
struct SeedProgrammeTests {
    static let header = """
        revision: 1
        title: t
        authority: a
        period: {from: 2022-04-01, to: 2022-06-30}
        disclosure: {working_days: 5, auto_approve: true}

        """

    @Test func extraMonthForCityStateProperty() throws {
        // 篇一 #4: one more month for final tenants of city-level government or state-enterprise property.
        let p = try PolicyCompiler.compile(
            yaml: "id: city-extra-month\n" + SeedProgrammeTests.header + """
                benefit: rent_waiver
                channel: lessor
                requires_application: false
                per: lease
                eligible: >
                  merchant.status == "active"
                  && root_lessor(lease).ownership in ["state_enterprise", "government"]
                  && root_lessor(lease).level == "city"
                  && !sublet(lease)
                  && lease.use == "business"
                  && overlap_days(lease, period) > 0
                amount_fen: lease.monthly_rent_fen

                """)
        let m = Fx.merchant { $0["leases"] = [Fx.lease(id: "A", rent: 123_456), Fx.lease(id: "B", sublet: true)] }
        let ds = p.evaluate(PolicyInput(merchant: m))
        #expect(ds.map(\.outcome) == [.eligible(amountFen: 123_456), .ineligible])
        // A lessor whose level the registry does not know: incomplete, naming that fact.
        guard case .object(var lease) = Fx.lease(id: "C"), case .object(var root) = lease["root_lessor"] ?? .null else { return }
        root["level"] = nil
        lease["root_lessor"] = .object(root)
        let n = Fx.merchant { $0["leases"] = [.object(lease)] }
        #expect(p.evaluate(PolicyInput(merchant: n)).map(\.outcome) == [.incomplete(missing: ["lease.root_lessor.level"])])
    }

    @Test func utilitiesNotCutOff() throws {
        // 篇一 #2: small/micro enterprises and individual businesses in difficulty (here: closed
        // during the period): a deferral routed to the utility, no amount.
        let p = try PolicyCompiler.compile(
            yaml: "id: utilities-deferral\n" + SeedProgrammeTests.header + """
                benefit: deferral
                channel: agency:utilities
                requires_application: false
                per: merchant
                eligible: >
                  merchant.status == "active"
                  && (merchant.kind == "individual" || merchant.tags.size in ["small", "micro"])
                  && sum_closure_days(merchant.closures, period.from, period.to) > 0
                  && !merchant.credit_flags.exists(f, f.list in ["serious_violation", "dishonest_debtor"])
                  && !merchant.disqualified

                """)
        let closed = Fx.merchant {
            $0["closures"] = [["from": "2022-04-10", "to": "2022-04-20", "reason": "epidemic_control", "district": "110105"]]
        }
        #expect(p.evaluate(PolicyInput(merchant: closed)).map(\.outcome) == [.eligible(amountFen: 0)])
        #expect(p.evaluate(PolicyInput(merchant: Fx.merchant())).map(\.outcome) == [.ineligible])
        let fraud = Fx.set(closed, "disqualified", true)
        #expect(p.evaluate(PolicyInput(merchant: fraud)).map(\.outcome) == [.ineligible])
    }

    @Test func socialInsuranceDeferral() throws {
        // 篇一 #9: all SMEs, and individual businesses insured as units: three contributions deferred.
        let p = try PolicyCompiler.compile(
            yaml: "id: si-deferral\n" + SeedProgrammeTests.header + """
                benefit: deferral
                channel: agency:social-insurance
                requires_application: true
                window: {apply_from: 2022-04-01, apply_until: 2022-12-31}
                per: merchant
                eligible: >
                  merchant.status == "active"
                  && (merchant.tags.size in ["medium", "small", "micro"]
                      || (merchant.kind == "individual" && merchant.social_insurance.insured_employees > 0))
                  && has(application)

                """)
        #expect(p.evaluate(PolicyInput(merchant: Fx.merchant())).map(\.outcome) == [.ineligible])
        let app: JSON = ["submitted_on": "2022-05-01", "documents": []]
        #expect(p.evaluate(PolicyInput(merchant: Fx.merchant(), application: app)).map(\.outcome) == [.eligible(amountFen: 0)])
        let unknownSize = Fx.merchant {
            $0["kind"] = "enterprise"
            $0["tags"] = ["size": "unknown", "sector": "catering", "service_industry": true, "priority_sector": true]
        }
        #expect(
            p.evaluate(PolicyInput(merchant: unknownSize, application: app)).map(\.outcome) == [
                .incomplete(missing: ["merchant.finance"])
            ])
    }
}
