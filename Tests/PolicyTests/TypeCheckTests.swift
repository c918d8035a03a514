import Models
import Testing

@testable import Policy

@Suite("Type checking at publish time")
struct TypeCheckTests {
    @Test(arguments: [
        // (expression, offset, part of the message)
        ("\"a\" + 1", 4, "'+' needs two numbers (or two strings), got string and int"),
        ("period.from < 3", 12, "'<' cannot compare date with int"),
        ("merchant.name > 3", 14, "cannot compare string with int"),
        ("frobnicate(1)", 0, "unknown function 'frobnicate'"),
        ("count(merchant.leases)", 0, "use size"),
        ("size(1, 2)", 0, "'size' takes 1 argument, got 2"),
        ("days_between(period.from)", 0, "'days_between' takes 2 arguments, got 1"),
        ("abs()", 0, "'abs' takes 1 argument, got 0"),
        ("min()", 0, "at least 1 argument"),
        ("1 in [\"a\", \"b\"]", 2, "'in' looks for a int in a list of string"),
        ("1 in 2", 2, "'in' needs a list"),
        ("merchant.tags.sise == \"small\"", 14, "unknown field 'sise'"),
        ("merchant.nmae", 9, "unknown field 'nmae' of merchant"),
        ("merchant.status.length", 16, "is a string, it has no field 'length'"),
        ("merchant.leases.size > 0", 16, "for its length use size(merchant.leases)"),
        ("!1", 0, "'!' needs a bool, got int"),
        ("-\"a\"", 0, "'-' needs a number, got string"),
        ("1 && true", 0, "'&&' needs bools, got int"),
        ("true || \"x\"", 8, "'||' needs bools, got string"),
        ("1.5 % 2", 4, "'%' needs two integers"),
        ("7 / 2 % 2", 6, "'%' needs two integers"),
        ("true ? 1 : \"a\"", 11, "both branches"),
        ("1 ? 2 : 3", 0, "condition of '?:' must be a bool"),
        ("[1, \"a\"]", 4, "one type"),
        ("1 == \"1\"", 2, "compares values of one type, got int and string"),
        ("merchant == merchant", 9, "cannot compare objects"),
        ("date(\"2022-02-30\") > period.from", 5, "2022-02-30 is not a real date"),
        ("date(merchant.name)", 5, "string literal"),
        ("has(1)", 4, "field path"),
        ("nobody.x", 0, "unknown name 'nobody'"),
        ("size", 0, "is a function"),
        ("damage.loss_fen > 0", 0, "only defined in a policy with per: damage"),
        ("merchant.leases.exists(merchant, true)", 23, "already defined"),
        ("merchant.leases.exists(l, l.monthly_rent_fen)", 26, "must be a bool"),
        ("merchant.leases.exists(1, true)", 23, "variable name"),
        ("merchant.name.exists(x, true)", 14, "applies to a list"),
        ("merchant.leases.frob()", 16, "unknown method 'frob'"),
        ("merchant.name.startsWith(1)", 25, "needs a string"),
        ("root_lessor(merchant)", 12, "needs a lease"),
        ("overlap_days(merchant, period)", 13, "needs a lease or a closure"),
        ("overlap_days(lease, lease)", 20, "needs a period"),
        ("sum_closure_days(merchant.leases, period.from, period.to)", 17, "list of closures"),
        ("sum_closure_days(merchant.closures, 1, period.to)", 36, "needs dates"),
        ("sum(merchant.leases)", 4, "list of numbers"),
        ("min(1, period.from)", 7, "all of one kind"),
        ("params.missing > 0", 7, "unknown field 'missing'"),
    ])
    func rejects(_ expr: String, _ offset: Int, _ message: String) {
        let errs = Fx.errors(expr)
        #expect(errs.count >= 1, "\(expr) compiled")
        #expect(errs.first?.offset == offset, "\(expr): \(errs)")
        #expect(errs.first?.message.contains(message) == true, "\(expr): \(errs)")
    }

    @Test func reportsEveryIndependentErrorInOneExpression() {
        let errs = Fx.errors("merchant.tags.sise == \"a\" && merchant.nmae == \"b\" && frob(1)")
        #expect(errs.map(\.offset) == [14, 38, 53])
    }

    @Test(arguments: [
        ("1 + 2", "int"),
        ("7 / 2", "number"),
        ("1 + 0.5", "number"),
        ("lease.monthly_rent_fen * 3", "int"),
        ("lease.monthly_rent_fen * 12 * overlap_days(lease, period) / 365", "number"),
        ("merchant.leases.map(l, l.monthly_rent_fen)", "list<int>"),
        ("merchant.leases.filter(l, l.sublet)", "list<lease>"),
        ("merchant.leases.find(l, l.sublet)", "lease"),
        ("merchant.social_insurance_history.find(s, s.month == \"2022-03\").insured_employees", "int"),
        ("root_lessor(lease)", "lessor"),
        ("min(1, 2.5)", "number"),
        ("max(period.from, period.to)", "date"),
        ("[]", "list<any>"),
        ("has(merchant.finance)", "bool"),
        ("merchant.tags.size", "string"),
        ("application.documents", "list<string>"),
    ])
    func infersTypes(_ expr: String, _ type: String) throws {
        #expect(try Fx.type(expr) == type)
    }

    @Test func paramsAreTypedByTheirValues() throws {
        let params: [String: JSON] = ["cap_fen": 1_000_000, "rate": .number("0.5"), "start": "2022-04-01", "sectors": ["catering"]]
        #expect(try Fx.eval("params.cap_fen * 2", params: params) == .int(2_000_000))
        #expect(try Fx.eval("params.rate * 3", params: params) == .value("3/2"))
        #expect(try Fx.eval("params.start > period.from", params: params) == .t)
        #expect(try Fx.eval("merchant.tags.sector in params.sectors", params: params) == .t)
        #expect(Fx.errors("params.start + 1", params: params).first?.message.contains("got date and int") == true)
    }
}
