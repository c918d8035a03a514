import Models
import Testing

@testable import Policy

@Suite("The function library")
struct FunctionTests {
    private func closures(_ spans: [(String, String)]) -> JSON {
        Fx.merchant {
            $0["closures"] = .array(
                spans.map { ["from": .string($0.0), "to": .string($0.1), "reason": "epidemic_control", "district": "110105"] })
        }
    }

    @Test func sumClosureDaysCountsTheUnionOnce() throws {
        let m = closures([
            ("2022-01-01", "2022-01-10"), ("2022-01-05", "2022-01-15"), ("2022-01-20", "2022-01-20"),
            ("2022-02-01", "2022-02-05"),
        ])
        // Within 01-03…02-02: 01-03…01-15 (13) + 01-20 (1) + 02-01…02-02 (2).
        #expect(try Fx.eval("sum_closure_days(merchant.closures, date(\"2022-01-03\"), date(\"2022-02-02\"))", merchant: m) == .int(16))
        // The whole period: 01-01…01-15 (15) + 1 + 5.
        #expect(try Fx.eval("sum_closure_days(merchant.closures, period.from, period.to)", merchant: m) == .int(21))
    }

    @Test func sumClosureDaysEdgeCases() throws {
        let q = "sum_closure_days(merchant.closures, period.from, period.to)"
        #expect(try Fx.eval(q, merchant: closures([])) == .int(0))
        // Identical and nested reports.
        #expect(try Fx.eval(q, merchant: closures([("2022-03-01", "2022-03-07"), ("2022-03-01", "2022-03-07")])) == .int(7))
        #expect(try Fx.eval(q, merchant: closures([("2022-03-01", "2022-03-31"), ("2022-03-10", "2022-03-12")])) == .int(31))
        // Adjacent intervals.
        #expect(try Fx.eval(q, merchant: closures([("2022-03-01", "2022-03-05"), ("2022-03-06", "2022-03-10")])) == .int(10))
        // Outside the window, and reversed.
        #expect(try Fx.eval(q, merchant: closures([("2021-12-01", "2021-12-31"), ("2022-03-05", "2022-03-01")])) == .int(0))
        // Straddling both ends.
        #expect(try Fx.eval(q, merchant: closures([("2021-12-25", "2022-01-02"), ("2022-06-29", "2022-07-10")])) == .int(4))
        // An unknown end date makes the count unknown.
        let m = Fx.merchant { $0["closures"] = [["from": "2022-03-01", "to": .null]] }
        #expect(try Fx.eval(q, merchant: m) == .unknown(["merchant.closures[0].to"]))
    }

    @Test(
        arguments: [
            ("2021-06-01", "2021-12-31", 0),  // ends the day before the period
            ("2021-06-01", "2022-01-01", 1),  // ends on its first day
            ("2022-06-30", "2022-12-31", 1),  // starts on its last day
            ("2022-07-01", "2022-12-31", 0),  // starts the day after
            ("2021-01-01", "2023-12-31", 181),  // covers it
            ("2022-05-01", "2022-06-30", 61),
            ("2022-02-10", "2022-02-10", 1),
            ("2022-03-10", "2022-03-01", 0),  // reversed
        ] as [(String, String, Int64)])
    func overlapDaysIsInclusive(_ starts: String, _ ends: String, _ days: Int64) throws {
        #expect(try Fx.eval("overlap_days(lease, period)", binding: Fx.lease(starts: starts, ends: ends)) == .int(days))
    }

    @Test func overlapDaysOfAClosure() throws {
        let m = Fx.merchant { $0["closures"] = [["from": "2021-12-20", "to": "2022-01-07", "reason": "other", "district": "x"]] }
        #expect(try Fx.eval("merchant.closures.map(c, overlap_days(c, period))", merchant: m) == .value([7]))
        let open = Fx.lease(starts: "2022-01-01", ends: "2022-12-31")
        guard case .object(var o) = open else { return }
        o["ends_on"] = nil
        #expect(try Fx.eval("overlap_days(lease, period)", binding: .object(o)) == .unknown(["lease.ends_on"]))
    }

    @Test func daysBetweenCountsBothEnds() throws {
        // DESIGN §5.3: day counts are inclusive of both ends. 2022-01-01 … 2022-06-30 is 181 days.
        #expect(try Fx.eval("days_between(period.from, period.to)") == .int(181))
        #expect(try Fx.eval("days_between(period.from, period.from)") == .int(1))
        #expect(try Fx.eval("days_between(date(\"2020-02-28\"), date(\"2020-03-01\"))") == .int(3))  // 28, 29, 1
        // `to` before `from`: to − from + 1, so zero or less.
        #expect(try Fx.eval("days_between(date(\"2022-01-02\"), date(\"2022-01-01\"))") == .int(0))
        #expect(try Fx.eval("days_between(period.to, period.from)") == .int(-179))
        // The same count as overlap_days over the whole period.
        #expect(try Fx.eval("days_between(period.from, period.to) == overlap_days(period, period)") == .t)
    }

    @Test func hasIsNeverUnknown() throws {
        let none = Fx.merchant { $0["finance"] = .null }
        #expect(try Fx.eval("has(merchant.finance)") == .t)
        #expect(try Fx.eval("has(merchant.finance)", merchant: none) == .f)
        #expect(try Fx.eval("has(merchant.finance.employees)", merchant: none) == .f)
        #expect(try Fx.eval("has(merchant.tax)") == .f)
        #expect(try Fx.eval("has(merchant.account.verified_on)") == .f)
        #expect(try Fx.eval("has(application)") == .f)
        #expect(try Fx.eval("has(application)", application: ["submitted_on": "2022-04-02", "documents": []]) == .t)
        #expect(try Fx.eval("has(merchant.finance) || merchant.finance.employees > 0", merchant: none) == .unknown(["merchant.finance"]))
    }

    @Test func rootLessorAndSublet() throws {
        #expect(try Fx.eval("root_lessor(lease).ownership") == .value("state_enterprise"))
        #expect(try Fx.eval("root_lessor(lease).ownership", binding: Fx.lease(chainComplete: false)) == .unknown(["lease.root_lessor"]))
        #expect(try Fx.eval("sublet(lease)") == .f)
        #expect(try Fx.eval("sublet(lease)", binding: Fx.lease(sublet: true)) == .t)
        // Sublet during the period (2022-01-01..2022-06-30): only a sublease whose term overlaps it.
        #expect(try Fx.eval("sublet(lease, period)", binding: Fx.lease(sublets: [("2019-06-01", "2020-05-31")])) == .f)
        #expect(try Fx.eval("sublet(lease, period)", binding: Fx.lease(sublets: [("2021-06-01", "2022-01-01")])) == .t)
        #expect(try Fx.eval("sublet(lease, period)", binding: Fx.lease(sublets: [("2022-06-30", "2024-01-01")])) == .t)
        #expect(
            try Fx.eval("sublet(lease, period)", binding: Fx.lease(sublets: [("2019-06-01", "2020-05-31"), ("2022-03-01", "2022-03-31")]))
                == .t)
        #expect(try Fx.eval("sublet(lease, period)") == .f)
        guard case .object(var s) = Fx.lease(sublets: [("2019-06-01", "2020-05-31")]) else { return }
        s["sublets"] = .null
        #expect(try Fx.eval("sublet(lease, period)", binding: .object(s)) == .unknown(["lease.sublets"]))
        #expect(Fx.errors("sublet(lease, period, period)").count == 1)
        #expect(Fx.errors("sublet(lease, lease)").count == 1)
        guard case .object(var o) = Fx.lease() else { return }
        o["root_lessor"] = .null
        #expect(try Fx.eval("root_lessor(lease).ownership in [\"government\"]", binding: .object(o)) == .unknown(["lease.root_lessor"]))
        o["chain_complete"] = .null
        #expect(try Fx.eval("root_lessor(lease).ownership", binding: .object(o)) == .unknown(["lease.chain_complete"]))
        let m = Fx.merchant { $0["leases"] = [Fx.lease(id: "A", ownership: "private"), Fx.lease(id: "B", ownership: "government")] }
        #expect(try Fx.eval("merchant.leases.exists(l, root_lessor(l).ownership == \"government\")", merchant: m) == .t)
    }

    @Test func sizeAndStrings() throws {
        #expect(try Fx.eval("size(merchant.leases)") == .int(1))
        #expect(try Fx.eval("merchant.leases.size()") == .int(1))
        #expect(try Fx.eval("size(merchant.name)") == .int(4))
        #expect(try Fx.eval("merchant.industry.startsWith(\"H62\")") == .t)
        #expect(try Fx.eval("merchant.tags.size") == .value("individual"))
        #expect(try Fx.eval("size(merchant.tax_history)", merchant: Fx.merchant()) == .unknown(["merchant.tax_history"]))
    }

    @Test func applicationIsUnknownUntilSubmitted() throws {
        let app: JSON = ["submitted_on": "2022-06-30", "documents": ["photo-1", "invoice-2"]]
        #expect(try Fx.eval("application.submitted_on <= window.apply_until") == .unknown(["application"]))
        #expect(try Fx.eval("application.submitted_on <= window.apply_until", application: app) == .t)
        #expect(try Fx.eval("size(application.documents) >= 2", application: app) == .t)
        #expect(try Fx.eval("\"photo-1\" in application.documents", application: app) == .t)
    }
}
