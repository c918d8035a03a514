import Models
import Testing

@testable import Policy

@Suite("Exact arithmetic and money")
struct ArithmeticTests {
    @Test func divisionNeverTruncates() throws {
        #expect(try Fx.eval("7 / 2") == .value("7/2"))
        #expect(try Fx.eval("7 / 2 * 2 == 7") == .t)
        #expect(try Fx.eval("1 / 3 + 1 / 3 + 1 / 3 == 1") == .t)
        #expect(try Fx.eval("2 / 4 == 1 / 2") == .t)
        #expect(try Fx.eval("-6 / 4") == .value("-3/2"))
        #expect(try Fx.eval("6 / -4") == .value("-3/2"))
        #expect(try Fx.eval("1 / 3 < 0.34 && 1 / 3 > 0.33") == .t)
    }

    @Test(
        arguments: [
            (5, 2, 3), (-5, 2, -3), (3, 2, 2), (-3, 2, -2), (1, 2, 1), (-1, 2, -1), (7, 3, 2), (-7, 3, -2), (8, 3, 3),
            (-8, 3, -3), (4, 1, 4), (0, 5, 0), (2_499, 1_000, 2), (2_500, 1_000, 3), (-2_500, 1_000, -3),
            (-2_499, 1_000, -2), (219_600_000, 365, 601_644),
        ] as [(Int64, Int64, Int64)])
    func roundsHalfAwayFromZero(_ n: Int64, _ d: Int64, _ expected: Int64) throws {
        #expect(try Rational(n, d).roundedHalfAwayFromZero() == expected)
    }

    @Test func roundsAtTheExtremes() throws {
        #expect(try Rational(Int64.max, 2).roundedHalfAwayFromZero() == Int64.max / 2 + 1)
        #expect(try Rational(Int64.min + 1, 2).roundedHalfAwayFromZero() == (Int64.min + 1) / 2 - 1)
        #expect(try Rational(Int64.max, Int64.max - 1).roundedHalfAwayFromZero() == 1)
        #expect(Rational(Int64.min).roundedHalfAwayFromZero() == Int64.min)
    }

    @Test func normalises() throws {
        let r = try Rational(10, -4)
        #expect(r.numerator == -5 && r.denominator == 2)
        #expect(try Rational(0, -7) == Rational.zero)
        #expect(throws: Rational.ArithmeticError.self) { try Rational(1, 0) }
    }

    @Test func overflowIsReportedNotWrapped() throws {
        #expect(try Fx.eval("9223372036854775807 + 1").isError)
        #expect(try Fx.eval("-9223372036854775807 - 2").isError)
        #expect(try Fx.eval("3037000500 * 3037000500").isError)
        guard case .error(let m) = try Fx.eval("9223372036854775807 * 2") else {
            Issue.record("no error")
            return
        }
        #expect(m.contains("overflow"))
        #expect(m.contains("9223372036854775807 * 2"))
        // Cross-reduction keeps exact products in range where they fit.
        #expect(try Fx.eval("9223372036854775807 / 3 * 3") == .int(Int64.max))
        #expect(try Fx.eval("(9223372036854775807 / 2) * (2 / 9223372036854775807)") == .int(1))
    }

    @Test func comparisonsOfLargeRationalsAreExact() throws {
        let a = try Rational(Int64.max, Int64.max - 1)
        let b = try Rational(Int64.max - 1, Int64.max - 2)
        #expect(a < b)
        #expect(!(b < a))
        #expect(try Fx.eval("9223372036854775807 / 9223372036854775806 < 9223372036854775806 / 9223372036854775805") == .t)
    }

    @Test func divisionByZeroIsAnError() throws {
        #expect(try Fx.eval("1 / (2 - 2)") == .error("division by zero in `1 / (2 - 2)`"))
        #expect(try Fx.eval("1 % 0").isError)
    }

    @Test func decimalsAreExact() throws {
        #expect(try Fx.eval("0.1 + 0.2 == 0.3") == .t)
        #expect(Rational.parseDecimal("1_000.25") == (try Rational(100_025, 100)))
        #expect(Rational.parseDecimal("-0.5") == (try Rational(-1, 2)))
        #expect(Rational.parseDecimal("1e3") == nil)
        #expect(Rational.parseDecimal(".5") == nil)
    }

    @Test func absMinMaxSum() throws {
        #expect(try Fx.eval("abs(-7 / 2)") == .value("7/2"))
        #expect(try Fx.eval("min(3, 1 / 2, 2)") == .value("1/2"))
        #expect(try Fx.eval("max(3, 1 / 2, 2)") == .int(3))
        #expect(try Fx.eval("min([4, 2, 9])") == .int(2))
        #expect(try Fx.eval("max(period.from, period.to) == period.to") == .t)
        #expect(try Fx.eval("sum([1, 2, 3]) == 6") == .t)
        #expect(try Fx.eval("sum([]) == 0") == .t)
        #expect(try Fx.eval("min([])").isError)
        #expect(try Fx.eval("min(100000 * 12 * 61 / 365, 1000000)") == .value("14640000/73"))
    }

    @Test func rentWaiverProRataRoundsOnce() throws {
        // 300,000 fen × 12 × 61 / 365 = 601,643.835… → 601,644 fen, rounded once at the end.
        let lease = Fx.lease(rent: 300_000, starts: "2022-05-01", ends: "2022-06-30")
        let policy = try PolicyCompiler.compile(yaml: Fx.rentWaiver)
        let m = Fx.merchant { $0["leases"] = [lease] }
        let ds = policy.evaluate(PolicyInput(merchant: m))
        #expect(ds.count == 1)
        #expect(ds[0].outcome == .eligible(amountFen: 601_644))
        #expect(ds[0].trace.amount?.exact == "43920000/73")
        #expect(ds[0].trace.amount?.roundedFen == 601_644)
    }

    @Test func negativeAmountIsAnError() throws {
        let policy = try PolicyCompiler.compile(yaml: Fx.document(amount: "0 - 1 / 3"))
        let d = policy.evaluate(PolicyInput(merchant: Fx.merchant()))[0]
        guard case .error(let m) = d.outcome else {
            Issue.record("not an error: \(d.outcome)")
            return
        }
        #expect(m.contains("negative"))
    }

    @Test func amountOverflowIsAnErrorOutcome() throws {
        let policy = try PolicyCompiler.compile(yaml: Fx.document(amount: "merchant.finance.operating_revenue_fen * 9223372036854775807"))
        let d = policy.evaluate(PolicyInput(merchant: Fx.merchant()))[0]
        guard case .error(let m) = d.outcome else {
            Issue.record("not an error: \(d.outcome)")
            return
        }
        #expect(m.contains("overflow"))
    }

    @Test func yuanFormatting() {
        #expect(Trace.fenText(601_644) == "601,644 分（6,016.44 元）")
        #expect(Trace.yuanText(5) == "0.05")
        #expect(Trace.yuanText(-123_456_789) == "-1,234,567.89")
        #expect(Trace.yuanText(100) == "1.00")
    }
}
