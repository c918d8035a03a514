/// Why an amount text is not an acceptable yuan amount.
public struct AmountError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The offending text (at most 40 characters of it).
    public var text: String
    public var reason: String

    public init(text: String, reason: String) {
        self.text = String(text.prefix(40))
        self.reason = reason
    }

    public var description: String { "amount \"\(text)\": \(reason)" }
}

/// Yuan amounts as ISO 20022 writes them, converted to and from Int64 fen with integer arithmetic
/// only (never `Double`).
public enum YuanAmount {
    /// The largest amount an ISO 20022 amount or control sum can carry (18 total digits,
    /// i.e. 9999999999999999.99 yuan).
    public static let maxFen: Int64 = 999_999_999_999_999_999

    /// Yuan with exactly two decimals: 123456 → "1234.56", 1 → "0.01", -5 → "-0.05".
    public static func format(fen: Int64) -> String {
        let magnitude = fen.magnitude
        let yuan = magnitude / 100
        let cents = magnitude % 100
        return (fen < 0 ? "-" : "") + String(yuan) + (cents < 10 ? ".0" : ".") + String(cents)
    }

    /// Parses a non-negative decimal yuan amount with at most two decimals ("1234.56", "1234.5",
    /// "1234"; surrounding XML whitespace is ignored) into fen, exactly. Rejects signs, more than
    /// two decimals, exponents, grouping separators and values that overflow Int64.
    public static func parse(_ text: String) throws(AmountError) -> Int64 {
        let bytes = Array(text.utf8)
        var lo = 0
        var hi = bytes.count
        while lo < hi, isXMLSpace(bytes[lo]) { lo += 1 }
        while hi > lo, isXMLSpace(bytes[hi - 1]) { hi -= 1 }
        guard lo < hi else { throw AmountError(text: text, reason: "is empty") }
        if bytes[lo] == UInt8(ascii: "-") { throw AmountError(text: text, reason: "negative amounts are not accepted") }
        if bytes[lo] == UInt8(ascii: "+") { throw AmountError(text: text, reason: "a sign is not accepted") }
        var i = lo
        var yuan: Int64 = 0
        var integerDigits = 0
        while i < hi, isDigit(bytes[i]) {
            let (m, o1) = yuan.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(Int64(bytes[i] - 0x30))
            guard !o1, !o2 else { throw AmountError(text: text, reason: "is too large") }
            yuan = a
            integerDigits += 1
            i += 1
        }
        guard integerDigits > 0 else {
            throw AmountError(text: text, reason: "must be digits with at most two decimals, e.g. 1234.56")
        }
        var cents: Int64 = 0
        if i < hi {
            guard bytes[i] == UInt8(ascii: ".") else {
                throw AmountError(text: text, reason: "must be digits with at most two decimals, e.g. 1234.56")
            }
            i += 1
            var decimals = 0
            while i < hi, isDigit(bytes[i]) {
                decimals += 1
                guard decimals <= 2 else { throw AmountError(text: text, reason: "has more than two decimals") }
                cents = cents * 10 + Int64(bytes[i] - 0x30)
                i += 1
            }
            guard decimals > 0, i == hi else {
                throw AmountError(text: text, reason: "must be digits with at most two decimals, e.g. 1234.56")
            }
            if decimals == 1 { cents *= 10 }
        }
        let (m, o1) = yuan.multipliedReportingOverflow(by: 100)
        let (fen, o2) = m.addingReportingOverflow(cents)
        guard !o1, !o2 else { throw AmountError(text: text, reason: "is too large") }
        return fen
    }

    /// The sum of `amounts`, or `nil` on Int64 overflow.
    static func sum(_ amounts: some Sequence<Int64>) -> Int64? {
        var total: Int64 = 0
        for a in amounts {
            let (s, overflow) = total.addingReportingOverflow(a)
            if overflow { return nil }
            total = s
        }
        return total
    }
}

@inline(__always) func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
@inline(__always) func isXMLSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D }
