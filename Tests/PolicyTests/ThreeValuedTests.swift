import Models
import Testing

@testable import Policy

/// A merchant without finance figures: `merchant.finance.employees > 0` is unknown.
private let noFinance = Fx.merchant { $0["finance"] = .null }
private let U = "merchant.finance.employees > 0"
private let UU = "merchant.tax.revenue_fen > 0"
private let missingU = R.unknown(["merchant.finance"])

private enum V: String, CaseIterable, CustomStringConvertible {
    case t, f, u
    var expr: String {
        switch self {
        case .t: "true"
        case .f: "false"
        case .u: U
        }
    }
    var r: R {
        switch self {
        case .t: .t
        case .f: .f
        case .u: missingU
        }
    }
    var description: String { rawValue }
}

@Suite("Three-valued logic (DESIGN §6.2)")
struct ThreeValuedTests {
    private static let pairs: [(V, V)] = V.allCases.flatMap { a in V.allCases.map { (a, $0) } }

    private static func and(_ a: V, _ b: V) -> R {
        if a == .f || b == .f { return .f }
        if a == .u || b == .u { return missingU }
        return .t
    }

    private static func or(_ a: V, _ b: V) -> R {
        if a == .t || b == .t { return .t }
        if a == .u || b == .u { return missingU }
        return .f
    }

    @Test func andTruthTable() throws {
        for (a, b) in ThreeValuedTests.pairs {
            #expect(try Fx.eval("\(a.expr) && \(b.expr)", merchant: noFinance) == ThreeValuedTests.and(a, b), "\(a) && \(b)")
        }
    }

    @Test func orTruthTable() throws {
        for (a, b) in ThreeValuedTests.pairs {
            #expect(try Fx.eval("\(a.expr) || \(b.expr)", merchant: noFinance) == ThreeValuedTests.or(a, b), "\(a) || \(b)")
        }
    }

    @Test func notTruthTable() throws {
        #expect(try Fx.eval("!true") == .f)
        #expect(try Fx.eval("!false") == .t)
        #expect(try Fx.eval("!(\(U))", merchant: noFinance) == missingU)
    }

    @Test func unknownsNameEveryDecidingFact() throws {
        let m = Fx.merchant {
            $0["finance"] = .null
            $0["tax"] = .null
        }
        #expect(try Fx.eval("\(U) && \(UU)", merchant: m) == .unknown(["merchant.finance", "merchant.tax"]))
        #expect(try Fx.eval("\(U) || \(UU)", merchant: m) == .unknown(["merchant.finance", "merchant.tax"]))
        #expect(try Fx.eval("\(U) && false && \(UU)", merchant: m) == .f)
    }

    @Test func operatorsOnUnknownAreUnknown() throws {
        let m = noFinance
        #expect(try Fx.eval("merchant.finance.employees + 1", merchant: m) == missingU)
        #expect(try Fx.eval("0 * merchant.finance.employees", merchant: m) == missingU)
        #expect(try Fx.eval("merchant.finance.employees == 3", merchant: m) == missingU)
        #expect(try Fx.eval("merchant.finance.employees != 3", merchant: m) == missingU)
        #expect(try Fx.eval("-merchant.finance.employees", merchant: m) == missingU)
        #expect(try Fx.eval("merchant.finance.employees in [1, 2]", merchant: m) == missingU)
        #expect(try Fx.eval("abs(merchant.finance.employees)", merchant: m) == missingU)
        #expect(try Fx.eval("min(1, merchant.finance.employees)", merchant: m) == missingU)
        #expect(try Fx.eval("(\(U)) ? 1 : 2", merchant: m) == missingU)
        #expect(try Fx.eval("true ? 1 : merchant.finance.employees", merchant: m) == .int(1))
        #expect(try Fx.eval("[merchant.finance.employees].size()", merchant: m) == .int(1))
        #expect(try Fx.eval("sum([1, merchant.finance.employees])", merchant: m) == missingU)
    }

    @Test func missingKeyAndNullAreBothUnknown() throws {
        let m = Fx.merchant { $0["finance"] = ["year": 2021] }
        #expect(try Fx.eval("merchant.finance.employees > 5", merchant: m) == .unknown(["merchant.finance.employees"]))
        let n = Fx.merchant { $0["finance"] = ["year": 2021, "employees": .null] }
        #expect(try Fx.eval("merchant.finance.employees > 5", merchant: n) == .unknown(["merchant.finance.employees"]))
        #expect(try Fx.eval("merchant.finance.employees > 5") == .t)
    }

    @Test func unknownSizeTagMeansMissingFinance() throws {
        let enterprise = Fx.merchant {
            $0["kind"] = "enterprise"
            $0["tags"] = ["size": "unknown", "sector": "catering", "service_industry": true, "priority_sector": true]
            $0["finance"] = .null
        }
        #expect(try Fx.eval("merchant.tags.size in [\"small\", \"micro\"]", merchant: enterprise) == missingU)
        #expect(try Fx.eval("merchant.tags.size == \"unknown\"", merchant: enterprise) == missingU)
        let clause = "merchant.kind == \"individual\" || merchant.tags.size in [\"small\", \"micro\"]"
        #expect(try Fx.eval(clause, merchant: enterprise) == missingU)
        #expect(try Fx.eval(clause) == .t)
        let noIndustry = Fx.merchant {
            $0["tags"] = ["size": "individual", "sector": .null, "service_industry": .null, "priority_sector": .null]
        }
        #expect(try Fx.eval("merchant.tags.service_industry", merchant: noIndustry) == .unknown(["merchant.industry"]))
    }

    @Test func errorsAreAbsorbedLikeCEL() throws {
        let err = "(1 / (1 - 1) > 0)"
        #expect(try Fx.eval("false && \(err)") == .f)
        #expect(try Fx.eval("\(err) && false") == .f)
        #expect(try Fx.eval("true || \(err)") == .t)
        #expect(try Fx.eval("\(err) || true") == .t)
        #expect(try Fx.eval("true && \(err)").isError)
        #expect(try Fx.eval("\(err) || false").isError)
        // Unknown wins over an error: the missing fact may yet make it false.
        #expect(try Fx.eval("\(U) && \(err)", merchant: noFinance) == missingU)
    }

    @Test func existsAndAllWithUnknowns() throws {
        func flags(_ lists: [JSON]) -> JSON {
            Fx.merchant {
                $0["credit_flags"] = .array(lists.map { l in l == .null ? ["since": "2021-01-01"] : ["list": l, "since": "2021-01-01"] })
            }
        }
        let exists = "merchant.credit_flags.exists(f, f.list == \"serious_violation\")"
        let all = "merchant.credit_flags.all(f, f.list == \"serious_violation\")"
        let sv: JSON = "serious_violation"
        let ab: JSON = "abnormal_operation"
        // A flag without `list` is an unknown element.
        #expect(try Fx.eval(exists, merchant: flags([])) == .f)
        #expect(try Fx.eval(all, merchant: flags([])) == .t)
        #expect(try Fx.eval(exists, merchant: flags([ab, sv])) == .t)
        #expect(try Fx.eval(exists, merchant: flags([.null, sv])) == .t)
        #expect(try Fx.eval(exists, merchant: flags([ab, .null])) == .unknown(["merchant.credit_flags[1].list"]))
        #expect(try Fx.eval(exists, merchant: flags([ab, ab])) == .f)
        #expect(try Fx.eval(all, merchant: flags([sv, sv])) == .t)
        #expect(try Fx.eval(all, merchant: flags([sv, .null])) == .unknown(["merchant.credit_flags[1].list"]))
        #expect(try Fx.eval(all, merchant: flags([.null, ab])) == .f)
        let missing = Fx.merchant { $0["credit_flags"] = nil }
        #expect(try Fx.eval(exists, merchant: missing) == .unknown(["merchant.credit_flags"]))
        #expect(try Fx.eval("!\(exists)", merchant: flags([ab, .null])) == .unknown(["merchant.credit_flags[1].list"]))
    }

    @Test func filterAndMapWithUnknowns() throws {
        let m = Fx.merchant {
            $0["aid"] = [
                ["programme": "a", "source": "central", "amount_fen": 100, "on": "2022-01-01"],
                ["programme": "b", "source": "local", "amount_fen": .null, "on": "2022-02-01"],
            ]
        }
        #expect(try Fx.eval("merchant.aid.filter(a, a.source == \"central\").size()", merchant: m) == .int(1))
        #expect(try Fx.eval("sum(merchant.aid.map(a, a.amount_fen))", merchant: m) == .unknown(["merchant.aid[1].amount_fen"]))
        #expect(try Fx.eval("merchant.aid.map(a, a.amount_fen).size()", merchant: m) == .int(2))
        #expect(
            try Fx.eval("sum(merchant.aid.filter(a, a.source == \"central\").map(a, a.amount_fen))", merchant: m) == .int(100))
        let n = Fx.merchant { $0["aid"] = [["programme": "a", "amount_fen": 100, "on": "2022-01-01"]] }
        #expect(try Fx.eval("merchant.aid.filter(a, a.source == \"central\")", merchant: n) == .unknown(["merchant.aid[0].source"]))
    }

    @Test func findIsTheFirstMatchAndNoMatchIsAFactNotThereYet() throws {
        func month(_ m: JSON, _ n: JSON) -> JSON { .object(JSONObject(["month": m, "insured_employees": n])) }
        func merchant(_ entries: [JSON]) -> JSON { Fx.merchant { $0["social_insurance_history"] = .array(entries) } }
        let march = "merchant.social_insurance_history.find(s, s.month == \"2022-03\").insured_employees"
        #expect(try Fx.eval(march, merchant: merchant([month("2022-02", 9), month("2022-03", 12), month("2022-09", 40)])) == .int(12))
        // Not reported for that month: unknown, naming the list (线上补报), never 0.
        let stale = merchant([month("2020-06", 50)])
        #expect(try Fx.eval(march, merchant: stale) == .unknown(["merchant.social_insurance_history"]))
        #expect(try Fx.eval("\(march) * 50000", merchant: stale) == .unknown(["merchant.social_insurance_history"]))
        #expect(try Fx.eval(march, merchant: merchant([])) == .unknown(["merchant.social_insurance_history"]))
        // An undecided element before the first match leaves the answer undecided; a match before it decides.
        #expect(
            try Fx.eval(march, merchant: merchant([month(.null, 3), month("2022-03", 12)]))
                == .unknown(["merchant.social_insurance_history[0].month"]))
        #expect(try Fx.eval(march, merchant: merchant([month("2022-03", 12), month(.null, 3)])) == .int(12))
    }

    @Test func nestedMacros() throws {
        let m = Fx.merchant {
            $0["leases"] = [Fx.lease(id: "A", rent: 100), Fx.lease(id: "B", rent: 200)]
            $0["damages"] = [["event": "flood-2021-07", "loss_fen": 150, "evidence": []]]
        }
        #expect(
            try Fx.eval("merchant.leases.exists(l, merchant.damages.exists(d, d.loss_fen < l.monthly_rent_fen))", merchant: m) == .t)
        #expect(try Fx.eval("merchant.leases.all(l, merchant.damages.all(d, d.loss_fen < l.monthly_rent_fen))", merchant: m) == .f)
    }

    @Test func wrongTypedFactIsAnErrorNotAGuess() throws {
        let m = Fx.merchant { $0["finance"] = ["employees": "six"] }
        guard case .error(let e) = try Fx.eval("merchant.finance.employees > 5", merchant: m) else {
            Issue.record("expected an error")
            return
        }
        #expect(e.contains("merchant.finance.employees: expected int, found string"))
        let d = Fx.merchant { $0["registered_on"] = "2021-02-30" }
        #expect(try Fx.eval("merchant.registered_on < period.from", merchant: d).isError)
    }
}
