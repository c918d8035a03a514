#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Why a `YYYY-MM-DD` or `YYYY-MM` text is not an acceptable date (the message is user-facing).
public struct DateParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A calendar date without a time zone (DESIGN §3.1: dates are `YYYY-MM-DD` in China Standard Time),
/// in the proleptic Gregorian calendar. All arithmetic is exact integer arithmetic.
public struct CivilDate: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public let year: Int
    public let month: Int
    public let day: Int

    /// The years `parse` accepts.
    public static let yearRange: ClosedRange<Int> = 1900...2100

    /// A real calendar date (month 1...12, day within the month), any year; `nil` otherwise.
    public init?(year: Int, month: Int, day: Int) {
        guard (1...12).contains(month), day >= 1, day <= CivilDate.daysInMonth(year: year, month: month) else {
            return nil
        }
        self.year = year
        self.month = month
        self.day = day
    }

    private init(unchecked year: Int, _ month: Int, _ day: Int) {
        self.year = year
        self.month = month
        self.day = day
    }

    public static func isLeapYear(_ year: Int) -> Bool {
        (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
    }

    /// Days in `month` (1...12) of `year`; 0 for a month outside 1...12.
    public static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 1, 3, 5, 7, 8, 10, 12: 31
        case 4, 6, 9, 11: 30
        case 2: isLeapYear(year) ? 29 : 28
        default: 0
        }
    }

    /// Strict `YYYY-MM-DD`: exactly 10 ASCII characters, a real date, year 1900...2100.
    public static func parse(_ s: String) -> CivilDate? {
        try? parsing(s)
    }

    /// Like `parse`, but says what is wrong (e.g. "2021-02-30 is not a real date").
    public static func parsing(_ s: String) throws(DateParseError) -> CivilDate {
        let b = Array(s.utf8)
        let shown = String(s.prefix(40))
        guard b.count == 10, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"),
            let y = decimal(b, 0..<4), let m = decimal(b, 5..<7), let d = decimal(b, 8..<10)
        else {
            throw DateParseError("must be a date written YYYY-MM-DD, got \"\(shown)\"")
        }
        guard yearRange.contains(y) else {
            throw DateParseError("year must be between 1900 and 2100, got \(s)")
        }
        guard let date = CivilDate(year: y, month: m, day: d) else {
            throw DateParseError("\(s) is not a real date")
        }
        return date
    }

    /// Days since 1970-01-01 (negative before it).
    public var dayNumber: Int {
        // H. Hinnant, "chrono-Compatible Low-Level Date Algorithms" (days_from_civil).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The date `dayNumber` days after 1970-01-01.
    public init(dayNumber: Int) {
        let z = dayNumber + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        self.init(unchecked: y, m, d)
    }

    public func adding(days: Int) -> CivilDate {
        CivilDate(dayNumber: dayNumber + days)
    }

    /// Days from `from` to `to`, counting both ends (DESIGN §5.3); 0 if `to` is before `from`.
    public static func daysInclusive(from: CivilDate, to: CivilDate) -> Int {
        max(0, to.dayNumber - from.dayNumber + 1)
    }

    /// ISO weekday: 1 = Monday … 7 = Sunday.
    public var weekday: Int {
        // 1970-01-01 was a Thursday (4).
        let r = ((dayNumber % 7) + 7) % 7
        return (r + 3) % 7 + 1
    }

    public var yearMonth: YearMonth { YearMonth(unchecked: year, month) }

    public static func < (a: CivilDate, b: CivilDate) -> Bool {
        (a.year, a.month, a.day) < (b.year, b.month, b.day)
    }

    public var description: String {
        pad(year, 4) + "-" + pad(month, 2) + "-" + pad(day, 2)
    }

    // Codable as the string "YYYY-MM-DD".
    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        let s = try c.decode(String.self)
        guard let d = CivilDate.parse(s) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "not a YYYY-MM-DD date: \(s.prefix(40))")
        }
        self = d
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

/// A calendar month, e.g. a tax period or a social-insurance month (`YYYY-MM`).
public struct YearMonth: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public let year: Int
    public let month: Int

    /// `nil` unless month is 1...12.
    public init?(year: Int, month: Int) {
        guard (1...12).contains(month) else { return nil }
        self.year = year
        self.month = month
    }

    fileprivate init(unchecked year: Int, _ month: Int) {
        self.year = year
        self.month = month
    }

    /// Strict `YYYY-MM`: exactly 7 ASCII characters, month 01...12, year 1900...2100.
    public static func parse(_ s: String) -> YearMonth? {
        try? parsing(s)
    }

    public static func parsing(_ s: String) throws(DateParseError) -> YearMonth {
        let b = Array(s.utf8)
        guard b.count == 7, b[4] == UInt8(ascii: "-"), let y = decimal(b, 0..<4), let m = decimal(b, 5..<7) else {
            throw DateParseError("must be a month written YYYY-MM, got \"\(s.prefix(40))\"")
        }
        guard CivilDate.yearRange.contains(y) else {
            throw DateParseError("year must be between 1900 and 2100, got \(s)")
        }
        guard (1...12).contains(m) else { throw DateParseError("\(s) is not a real month") }
        return YearMonth(unchecked: y, m)
    }

    public var firstDay: CivilDate { CivilDate(year: year, month: month, day: 1)! }
    public var lastDay: CivilDate {
        CivilDate(year: year, month: month, day: CivilDate.daysInMonth(year: year, month: month))!
    }
    public var numberOfDays: Int { CivilDate.daysInMonth(year: year, month: month) }

    public func contains(_ d: CivilDate) -> Bool { d.year == year && d.month == month }

    public func adding(months: Int) -> YearMonth {
        let index = year * 12 + (month - 1) + months
        let y = index >= 0 ? index / 12 : (index - 11) / 12
        return YearMonth(unchecked: y, index - y * 12 + 1)
    }

    public static func < (a: YearMonth, b: YearMonth) -> Bool {
        (a.year, a.month) < (b.year, b.month)
    }

    public var description: String { pad(year, 4) + "-" + pad(month, 2) }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        let s = try c.decode(String.self)
        guard let v = YearMonth.parse(s) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "not a YYYY-MM month: \(s.prefix(40))")
        }
        self = v
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

/// China Standard Time (UTC+8; China has had no daylight saving time since 1991).
public enum ChinaTime {
    public static let offsetSeconds = 8 * 3600
    private static let secondsPerDay: Int64 = 86_400

    /// The CST calendar date of an instant. (Dates outside the years 0000–9999 are clamped.)
    public static func civilDate(of date: Date) -> CivilDate {
        // Whole seconds, rounded down, so that 23:59:59.999 is still the same day.
        civilDate(of: Instant(seconds: Int64(Instant.clampedSeconds(date.timeIntervalSince1970).rounded(.down))))
    }

    /// The CST calendar date of an instant, exactly.
    public static func civilDate(of instant: Instant) -> CivilDate {
        let seconds = instant.seconds + Int64(offsetSeconds)
        let days = seconds >= 0 ? seconds / secondsPerDay : (seconds - (secondsPerDay - 1)) / secondsPerDay
        return CivilDate(dayNumber: Int(days))
    }

    /// 00:00 CST of `d`.
    public static func startOfDay(_ d: CivilDate) -> Date {
        Date(timeIntervalSince1970: TimeInterval(Int64(d.dayNumber) * secondsPerDay - Int64(offsetSeconds)))
    }

    /// 24:00 CST of `d`, i.e. 00:00 +08:00 of the next day: the end of a deadline (DESIGN §5.3).
    /// An instant is within the deadline iff it is `< endOfDay(d)`.
    public static func endOfDay(_ d: CivilDate) -> Date {
        startOfDay(d.adding(days: 1))
    }
}

// MARK: - helpers

private func decimal(_ b: [UInt8], _ r: Range<Int>) -> Int? {
    var v = 0
    for k in r {
        let c = b[k]
        guard c >= 0x30, c <= 0x39 else { return nil }
        v = v * 10 + Int(c - 0x30)
    }
    return v
}

private func pad(_ v: Int, _ width: Int) -> String {
    let s = String(abs(v))
    let p = s.count < width ? String(repeating: "0", count: width - s.count) + s : s
    return v < 0 ? "-" + p : p
}
