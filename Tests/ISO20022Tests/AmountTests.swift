import Testing

@testable import ISO20022

@Suite("Yuan amounts from and to fen")
struct AmountTests {
    @Test(arguments: [
        (Int64(0), "0.00"), (1, "0.01"), (9, "0.09"), (10, "0.10"), (99, "0.99"), (100, "1.00"), (101, "1.01"),
        (123_456, "1234.56"), (123_456_789_012_345, "1234567890123.45"), (-1, "-0.01"), (-123_456, "-1234.56"),
        (Int64.max, "92233720368547758.07"), (Int64.min, "-92233720368547758.08"),
        (YuanAmount.maxFen, "9999999999999999.99"),
    ])
    func formatsWithTwoDecimals(_ fen: Int64, _ text: String) {
        #expect(YuanAmount.format(fen: fen) == text)
    }

    @Test(arguments: [
        ("0.01", Int64(1)), ("1.00", 100), ("1", 100), ("1.5", 150), ("1234.56", 123_456), ("0001234.56", 123_456),
        ("1234567890123.45", 123_456_789_012_345), (" 12.30\n", 1230), ("92233720368547758.07", Int64.max),
        ("0", 0), ("0.00", 0),
    ])
    func parsesExactly(_ text: String, _ fen: Int64) throws {
        #expect(try YuanAmount.parse(text) == fen)
    }

    @Test func roundTripsEveryFormattedValue() throws {
        for fen: Int64 in [0, 1, 5, 10, 55, 99, 100, 12_345, 99_999_999, YuanAmount.maxFen, Int64.max] {
            #expect(try YuanAmount.parse(YuanAmount.format(fen: fen)) == fen)
        }
    }

    @Test(arguments: [
        ("1.001", "has more than two decimals"), ("0.125", "has more than two decimals"),
        ("-1.00", "negative amounts are not accepted"), ("-0.01", "negative amounts are not accepted"),
        ("+1.00", "a sign is not accepted"), ("", "is empty"), ("  ", "is empty"),
        ("1.", "must be digits with at most two decimals, e.g. 1234.56"),
        (".50", "must be digits with at most two decimals, e.g. 1234.56"),
        ("1,000.00", "must be digits with at most two decimals, e.g. 1234.56"),
        ("1e3", "must be digits with at most two decimals, e.g. 1234.56"),
        ("12 34", "must be digits with at most two decimals, e.g. 1234.56"),
        ("NaN", "must be digits with at most two decimals, e.g. 1234.56"),
        ("１２.００", "must be digits with at most two decimals, e.g. 1234.56"),
        ("92233720368547758.08", "is too large"), ("99999999999999999999", "is too large"),
    ])
    func rejects(_ text: String, _ reason: String) {
        #expect(throws: AmountError(text: text, reason: reason)) { try YuanAmount.parse(text) }
    }
}
