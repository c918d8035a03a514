/// An exact rational number `numerator / denominator` over `Int64` (DESIGN §5.3, §6.1).
///
/// Always normalised: the denominator is positive and coprime with the numerator, so that `==`
/// is structural. Every operation detects overflow and reports it (never wraps); the policy
/// language has no binary floating point at all.
public struct Rational: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let numerator: Int64
    public let denominator: Int64

    /// Overflow, or division by zero.
    public struct ArithmeticError: Error, Sendable, Equatable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    public init(_ value: Int64) {
        numerator = value
        denominator = 1
    }

    private init(normalised n: Int64, _ d: Int64) {
        numerator = n
        denominator = d
    }

    /// `n / d`, normalised.
    public init(_ n: Int64, _ d: Int64) throws(ArithmeticError) {
        guard d != 0 else { throw ArithmeticError(message: "division by zero") }
        var n = n
        var d = d
        if d < 0 {
            guard n != .min, d != .min else { throw Rational.overflow }
            n = -n
            d = -d
        }
        let g = Rational.gcd(n, d)
        self.init(normalised: n / g, d / g)
    }

    static let overflow = ArithmeticError(message: "arithmetic overflow (beyond 64-bit exact arithmetic)")

    public static let zero = Rational(0)
    public static let one = Rational(1)

    public var isInteger: Bool { denominator == 1 }
    public var isNegative: Bool { numerator < 0 }

    /// Greatest common divisor of |a| and |b| (b > 0), as a positive Int64.
    static func gcd(_ a: Int64, _ b: Int64) -> Int64 {
        var x = a.magnitude
        var y = b.magnitude
        while y != 0 { (x, y) = (y, x % y) }
        // x ≤ |b| ≤ Int64.max here because b is a positive denominator or the result of a gcd.
        return x == 0 ? 1 : Int64(x)
    }

    private static func mul(_ a: Int64, _ b: Int64) throws(ArithmeticError) -> Int64 {
        let (r, o) = a.multipliedReportingOverflow(by: b)
        if o { throw overflow }
        return r
    }

    private static func add(_ a: Int64, _ b: Int64) throws(ArithmeticError) -> Int64 {
        let (r, o) = a.addingReportingOverflow(b)
        if o { throw overflow }
        return r
    }

    public func adding(_ o: Rational) throws(ArithmeticError) -> Rational {
        if denominator == 1 && o.denominator == 1 { return Rational(try Rational.add(numerator, o.numerator)) }
        let g = Rational.gcd(denominator, o.denominator)
        let n = try Rational.add(
            try Rational.mul(numerator, o.denominator / g), try Rational.mul(o.numerator, denominator / g))
        let d = try Rational.mul(denominator / g, o.denominator)
        return try Rational(n, d)
    }

    public func negated() throws(ArithmeticError) -> Rational {
        guard numerator != .min else { throw Rational.overflow }
        return Rational(normalised: -numerator, denominator)
    }

    public func subtracting(_ o: Rational) throws(ArithmeticError) -> Rational {
        try adding(try o.negated())
    }

    public func multiplied(by o: Rational) throws(ArithmeticError) -> Rational {
        // Cross-reduce first so that intermediate products stay as small as possible.
        let g1 = Rational.gcd(numerator, o.denominator)
        let g2 = Rational.gcd(o.numerator, denominator)
        let n = try Rational.mul(numerator / g1, o.numerator / g2)
        let d = try Rational.mul(denominator / g2, o.denominator / g1)
        return try Rational(n, d)
    }

    public func divided(by o: Rational) throws(ArithmeticError) -> Rational {
        guard o.numerator != 0 else { throw ArithmeticError(message: "division by zero") }
        guard o.numerator != .min else { throw Rational.overflow }
        let inv =
            o.numerator < 0
            ? Rational(normalised: -o.denominator, -o.numerator) : Rational(normalised: o.denominator, o.numerator)
        return try multiplied(by: inv)
    }

    /// Integer remainder (sign of the dividend); both operands must be integers.
    public func remainder(dividingBy o: Rational) throws(ArithmeticError) -> Rational {
        guard isInteger, o.isInteger else { throw ArithmeticError(message: "% needs integers") }
        guard o.numerator != 0 else { throw ArithmeticError(message: "division by zero") }
        let (r, ovf) = numerator.remainderReportingOverflow(dividingBy: o.numerator)
        if ovf { throw Rational.overflow }
        return Rational(r)
    }

    public func magnitude() throws(ArithmeticError) -> Rational {
        numerator < 0 ? try negated() : self
    }

    /// Rounds to an integer once, half away from zero (DESIGN §5.3).
    public func roundedHalfAwayFromZero() -> Int64 {
        let q = numerator / denominator
        let r = (numerator % denominator).magnitude
        // |r| ≥ d − |r|  ⇔  2|r| ≥ d, without overflowing.
        if r >= denominator.magnitude - r {
            // q ± 1 cannot overflow: |q| < Int64.max when the remainder is non-zero and d ≥ 2.
            return numerator < 0 ? q - 1 : q + 1
        }
        return q
    }

    /// The value as an `Int64` when it is an integer.
    public var int64Value: Int64? { isInteger ? numerator : nil }

    public static func < (a: Rational, b: Rational) -> Bool {
        // a.n * b.d < b.n * a.d exactly, in 128 bits.
        let l = a.numerator.multipliedFullWidth(by: b.denominator)
        let r = b.numerator.multipliedFullWidth(by: a.denominator)
        return (l.high, l.low) < (r.high, r.low)
    }

    /// `"n/d"` (always with the denominator, e.g. `"7/2"`, `"12/1"`).
    public var fraction: String { "\(numerator)/\(denominator)" }

    /// `"12"` for an integer, `"7/2"` otherwise.
    public var description: String { isInteger ? String(numerator) : fraction }

    /// Parses an exact decimal such as `"12"`, `"-0.5"`, `"1_000.25"` (no exponent).
    public static func parseDecimal(_ text: String) -> Rational? {
        var s = Substring(text.filter { $0 != "_" })
        var negative = false
        if s.first == "-" || s.first == "+" {
            negative = s.first == "-"
            s = s.dropFirst()
        }
        let parts = s.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let intPart = parts.first, !intPart.isEmpty, intPart.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            return nil
        }
        var value = Rational.zero
        do {
            guard let i = Int64(intPart) else { return nil }
            value = Rational(i)
            if parts.count == 2 {
                let frac = parts[1]
                guard !frac.isEmpty, frac.count <= 18, frac.allSatisfy({ $0.isASCII && $0.isNumber }), let f = Int64(frac)
                else { return nil }
                var scale: Int64 = 1
                for _ in 0..<frac.count { scale *= 10 }
                value = try value.adding(try Rational(f, scale))
            }
            if negative { value = try value.negated() }
        } catch {
            return nil
        }
        return value
    }
}
