import Models
import Testing

@testable import Policy

@Suite("Evaluating policies: bindings, outcomes, traces")
struct EvaluationTests {
    let rentWaiver: CompiledPolicy

    init() throws {
        rentWaiver = try PolicyCompiler.compile(yaml: Fx.rentWaiver)
    }

    @Test func threeMonthsWhenTheLeaseCoversNinetyDays() {
        let ds = rentWaiver.evaluate(PolicyInput(merchant: Fx.merchant()))
        #expect(ds.count == 1)
        #expect(ds[0].bindingKey == "L-1")
        #expect(ds[0].binding?["lease_id"] == "L-1")
        #expect(ds[0].outcome == .eligible(amountFen: 900_000))
        #expect(ds[0].priority)
        #expect(ds[0].trace.amount?.exact == "900000/1")
    }

    @Test func ninetyDaysExactlyIsThreeMonths() {
        // 2022-04-02 … 2022-06-30 is 90 days.
        let m = Fx.merchant { $0["leases"] = [Fx.lease(rent: 100_000, starts: "2022-04-02", ends: "2022-09-30")] }
        #expect(rentWaiver.evaluate(PolicyInput(merchant: m))[0].outcome == .eligible(amountFen: 300_000))
        // 89 days: 100,000 × 12 × 89 / 365 = 292,602.739… → 292,603.
        let n = Fx.merchant { $0["leases"] = [Fx.lease(rent: 100_000, starts: "2022-04-03", ends: "2022-09-30")] }
        #expect(rentWaiver.evaluate(PolicyInput(merchant: n))[0].outcome == .eligible(amountFen: 292_603))
    }

    @Test func oneDeterminationPerLease() {
        let m = Fx.merchant {
            $0["leases"] = [
                Fx.lease(id: "A"), Fx.lease(id: "B", ownership: "private"), Fx.lease(id: "C", sublet: true),
                Fx.lease(id: "D", chainComplete: false),
            ]
        }
        let ds = rentWaiver.evaluate(PolicyInput(merchant: m))
        #expect(ds.map(\.bindingKey) == ["A", "B", "C", "D"])
        #expect(ds[0].outcome == .eligible(amountFen: 900_000))
        #expect(ds[1].outcome == .ineligible)
        #expect(ds[2].outcome == .ineligible)
        #expect(ds[3].outcome == .incomplete(missing: ["lease.root_lessor"]))
    }

    @Test func noLeasesNoDeterminations() {
        let m = Fx.merchant { $0["leases"] = [] }
        #expect(rentWaiver.evaluate(PolicyInput(merchant: m)).isEmpty)
        let unknown = Fx.merchant { $0["leases"] = nil }
        let ds = rentWaiver.evaluate(PolicyInput(merchant: unknown))
        #expect(ds.map(\.outcome) == [.incomplete(missing: ["merchant.leases"])])
    }

    @Test func unknownSizeIsIncompleteAndNamesTheFacts() {
        let m = Fx.merchant {
            $0["kind"] = "enterprise"
            $0["tags"] = ["size": "unknown", "sector": "catering", "service_industry": true, "priority_sector": true]
            $0["finance"] = .null
        }
        let d = rentWaiver.evaluate(PolicyInput(merchant: m))[0]
        #expect(d.outcome == .incomplete(missing: ["merchant.finance"]))
        #expect(d.trace.amount == nil)
        #expect(d.trace.clauses[1].value == .unknown)
        #expect(d.trace.clauses[1].missing == ["merchant.finance"])
    }

    @Test func falseWinsOverUnknown() {
        let m = Fx.merchant {
            $0["kind"] = "enterprise"
            $0["tags"] = ["size": "unknown", "sector": "catering", "service_industry": true, "priority_sector": true]
            $0["status"] = "deregistered"
        }
        #expect(rentWaiver.evaluate(PolicyInput(merchant: m))[0].outcome == .ineligible)
    }

    @Test func seriousViolationExcludes() {
        let m = Fx.merchant { $0["credit_flags"] = [["list": "serious_violation", "since": "2021-05-01"]] }
        let d = rentWaiver.evaluate(PolicyInput(merchant: m))[0]
        #expect(d.outcome == .ineligible)
        #expect(d.trace.clauses.last?.value == .false)
    }

    @Test func tracesListEachClauseWithItsInputs() {
        let d = rentWaiver.evaluate(PolicyInput(merchant: Fx.merchant()))[0]
        let t = d.trace
        #expect(
            t.clauses.map(\.source) == [
                "merchant.status == \"active\"",
                "(merchant.kind == \"individual\" || merchant.tags.size in [\"small\", \"micro\"])",
                "merchant.tags.service_industry",
                "root_lessor(lease).ownership in [\"state_enterprise\", \"government\"]",
                "!sublet(lease)",
                "lease.use == \"business\"",
                "overlap_days(lease, period) > 0",
                "!merchant.credit_flags.exists(f, f.list == \"serious_violation\")",
            ])
        #expect(t.clauses.allSatisfy { $0.value == .true })
        #expect(t.clauses[0].inputs == [TraceInput(path: "merchant.status", value: "active")])
        // `||` short-circuits: the size was not needed.
        #expect(t.clauses[1].inputs == [TraceInput(path: "merchant.kind", value: "individual")])
        #expect(
            t.clauses[3].inputs == [
                TraceInput(path: "lease.chain_complete", value: true),
                TraceInput(path: "lease.root_lessor.ownership", value: "state_enterprise"),
            ])
        #expect(
            t.clauses[6].inputs.map(\.path) == [
                "lease.starts_on", "lease.ends_on", "period.from", "period.to", "overlap_days(lease, period)",
            ])
        #expect(t.clauses[6].inputs.last?.value == 181)
        #expect(t.clauses[7].inputs == [TraceInput(path: "merchant.credit_flags", value: [])])
        #expect(
            t.amount?.inputs.map(\.path) == [
                "lease.starts_on", "lease.ends_on", "period.from", "period.to", "overlap_days(lease, period)",
                "lease.monthly_rent_fen",
            ])
        #expect(t.priority?.value == .true)
        #expect(t.priority?.inputs == [TraceInput(path: "merchant.tags.priority_sector", value: true)])
    }

    @Test func traceJSONAndText() {
        let m = Fx.merchant { $0["leases"] = [Fx.lease(rent: 300_000, starts: "2022-05-01", ends: "2022-06-30")] }
        let d = rentWaiver.evaluate(PolicyInput(merchant: m))[0]
        let j = d.trace.json
        #expect(j["policy_id"] == "soe-rent-waiver")
        #expect(j["binding"] == "L-1")
        #expect(j["clauses"]?.arrayValue?.count == 8)
        #expect(j["clauses"]?.arrayValue?.first?["value"] == true)
        #expect(j["amount"]?["exact"] == "43920000/73")
        #expect(j["amount"]?["rounded_fen"] == 601_644)
        #expect(j["outcome"]?["result"] == "eligible")
        #expect(j["outcome"]?["amount_fen"] == 601_644)
        let text = d.trace.text()
        #expect(text.contains("soe-rent-waiver"))
        #expect(text.contains("✓ 成立 true  merchant.status == \"active\""))
        #expect(text.contains("lease.monthly_rent_fen = 300,000 分（3,000.00 元）"))
        #expect(text.contains("overlap_days(lease, period) = 61"))
        #expect(text.contains("43920000/73"))
        #expect(text.contains("601,644 分（6,016.44 元）"))
        #expect(text.contains("符合 eligible"))
    }

    @Test func incompleteTraceTextNamesMissingFacts() throws {
        let p = try PolicyCompiler.compile(yaml: Fx.document(eligible: "merchant.finance.employees < 300"))
        let d = p.evaluate(PolicyInput(merchant: Fx.merchant { $0["finance"] = .null }))[0]
        #expect(d.outcome == .incomplete(missing: ["merchant.finance"]))
        #expect(d.trace.clauses[0].inputs == [TraceInput(path: "merchant.finance", value: .null)])
        #expect(d.trace.text().contains("缺少 missing: merchant.finance"))
        #expect(d.trace.json["outcome"]?["missing"] == ["merchant.finance"])
    }

    @Test func compiledOnceEvaluatedManyTimes() throws {
        let counter = ParseCounter()
        try ParseCounter.$current.withValue(counter) {
            let p = try PolicyCompiler.compile(yaml: Fx.rentWaiver)
            #expect(counter.count == 3)  // eligible, amount_fen, priority
            var total: Int64 = 0
            for i in 0..<1_000 {
                let m = Fx.merchant { $0["leases"] = [Fx.lease(id: "L\(i)", rent: Int64(1_000 + i))] }
                for d in p.evaluate(PolicyInput(merchant: m)) {
                    if case .eligible(let fen) = d.outcome { total += fen }
                }
            }
            #expect(counter.count == 3)
            // Σ 3 × (1000 + i) for i < 1000.
            #expect(total == 3 * (1_000 * 1_000 + 999 * 1_000 / 2))
        }
    }

    @Test func retentionTrainingSubsidyPerMerchant() throws {
        // Seed 篇一 #10: SMEs in a district with an outbreak since a date, unable to operate for
        // 7 days or more: 500 yuan per insured employee, from the unemployment insurance fund.
        let yaml = """
            id: retention-training-subsidy
            revision: 2
            title: 一次性留工培训补助
            authority: 人社局 (seed 篇一 #10)
            benefit: cash
            channel: treasury
            pool: unemployment-insurance-fund
            requires_application: false
            period: {from: 2022-03-01, to: 2022-05-31}
            disclosure: {working_days: 5, auto_approve: true}
            per: merchant
            params:
              outbreak_since: 2022-03-10
              per_employee_fen: 50_000
              min_days: 7
            eligible: >
              merchant.status == "active"
              && (merchant.kind == "individual" || merchant.tags.size in ["medium", "small", "micro"])
              && sum_closure_days(merchant.closures, params.outbreak_since, period.to) >= params.min_days
            amount_fen: merchant.social_insurance.insured_employees * params.per_employee_fen

            """
        let p = try PolicyCompiler.compile(yaml: yaml)
        func closed(_ spans: [(String, String)]) -> JSON {
            Fx.merchant {
                $0["closures"] = .array(
                    spans.map { ["from": .string($0.0), "to": .string($0.1), "reason": "epidemic_control", "district": "110105"] })
            }
        }
        // 03-08…03-12 counts from 03-10 (3 days) + 03-11…03-14 overlaps (2 more) = 5: not enough.
        #expect(
            p.evaluate(PolicyInput(merchant: closed([("2022-03-08", "2022-03-12"), ("2022-03-11", "2022-03-14")])))[0].outcome
                == .ineligible)
        // 03-10…03-16 is 7 days: 5 insured employees × 50,000 fen.
        #expect(p.evaluate(PolicyInput(merchant: closed([("2022-03-10", "2022-03-16")])))[0].outcome == .eligible(amountFen: 250_000))
        let noInsurance = Fx.set(closed([("2022-03-10", "2022-03-16")]), "social_insurance", .null)
        #expect(p.evaluate(PolicyInput(merchant: noInsurance))[0].outcome == .incomplete(missing: ["merchant.social_insurance"]))
    }

    @Test func floodReliefPerDamageWithACap() throws {
        // Seed 篇三; the amount (3 months' rent capped at 10,000 yuan) is the operator's to set.
        let yaml = """
            id: flood-relief-2021
            revision: 1
            title: 受灾小商户帮扶
            authority: 区商务局 区财政局 (seed 篇三)
            benefit: cash
            channel: treasury
            pool: flood-relief
            requires_application: true
            window: {apply_from: 2021-07-25, apply_until: 2021-08-13}
            period: {from: 2021-07-20, to: 2021-12-31}
            disclosure: {working_days: 5, auto_approve: false}
            exclusive_group: flood-relief
            per: damage
            params:
              cap_fen: 1_000_000
              months: 3
            eligible: >
              damage.event == "flood-2021-07"
              && damage.loss_fen > 0
              && size(damage.evidence) > 0
              && !merchant.aid.exists(a, a.programme.startsWith("flood"))
              && application.submitted_on <= window.apply_until
            amount_fen: >
              min(params.cap_fen,
                  params.months * sum(merchant.leases.map(l, l.monthly_rent_fen)))

            """
        let p = try PolicyCompiler.compile(yaml: yaml)
        let m = Fx.merchant {
            $0["damages"] = [
                ["event": "flood-2021-07", "loss_fen": 5_000_000, "evidence": ["photo-1"]],
                ["event": "storm-2020", "loss_fen": 100, "evidence": ["x"]],
            ]
            $0["leases"] = [Fx.lease(id: "A", rent: 200_000), Fx.lease(id: "B", rent: 50_000)]
        }
        let app: JSON = ["submitted_on": "2021-08-13", "documents": ["photo-1"]]
        let ds = p.evaluate(PolicyInput(merchant: m, application: app))
        #expect(ds.map(\.bindingKey) == ["flood-2021-07", "storm-2020"])
        #expect(ds[0].outcome == .eligible(amountFen: 750_000))
        #expect(ds[1].outcome == .ineligible)
        // Not applied yet: incomplete, naming the application.
        #expect(p.evaluate(PolicyInput(merchant: m))[0].outcome == .incomplete(missing: ["application"]))
        // Late.
        let late: JSON = ["submitted_on": "2021-08-14", "documents": []]
        #expect(p.evaluate(PolicyInput(merchant: m, application: late))[0].outcome == .ineligible)
        // Capped.
        let big = Fx.set(m, "leases", [Fx.lease(rent: 400_000)])
        #expect(p.evaluate(PolicyInput(merchant: big, application: app))[0].outcome == .eligible(amountFen: 1_000_000))
    }

    @Test func evaluationErrorsAreOutcomes() throws {
        let p = try PolicyCompiler.compile(yaml: Fx.document(eligible: "merchant.finance.employees / (merchant.version - 3) > 1"))
        guard case .error(let m) = p.evaluate(PolicyInput(merchant: Fx.merchant()))[0].outcome else {
            Issue.record("expected an error")
            return
        }
        #expect(m.contains("division by zero"))
        let notObject = p.evaluate(PolicyInput(merchant: "nope"))
        #expect(notObject.map(\.outcome) == [.error("the merchant profile is not a JSON object")])
    }

    @Test func deterministicAndConcurrent() async throws {
        let p = rentWaiver
        let results = await withTaskGroup(of: Int64.self) { group in
            for i in 0..<8 {
                group.addTask {
                    var sum: Int64 = 0
                    for j in 0..<200 {
                        let m = Fx.merchant { $0["leases"] = [Fx.lease(rent: Int64(i * 1_000 + j))] }
                        if case .eligible(let fen) = p.evaluate(PolicyInput(merchant: m))[0].outcome { sum += fen }
                    }
                    return sum
                }
            }
            var all: [Int64] = []
            for await r in group { all.append(r) }
            return all.sorted()
        }
        let expected = (0..<8).map { i in (0..<200).reduce(Int64(0)) { $0 + 3 * Int64(i * 1_000 + $1) } }.sorted()
        #expect(results == expected)
    }
}
