import Foundation
import Synchronization

/// The one source of "now" for a service (DESIGN §11): production uses the system clock; tests
/// and `--simulated-clock` use a clock that only moves when told.
public protocol WallClock: Sendable {
    func now() -> Date
}

public struct SystemClock: WallClock {
    public init() {}
    public func now() -> Date { Date() }
}

/// A clock that stands still until advanced. Thread-safe.
public final class TestClock: WallClock {
    private let current: Mutex<Date>

    public init(_ start: Date) { current = Mutex(start) }

    /// Starts at the given RFC 3339 instant, e.g. "2022-04-01T09:00:00+08:00".
    public convenience init(rfc3339: String) {
        self.init(Timestamp.parse(rfc3339) ?? Date(timeIntervalSince1970: 0))
    }

    public func now() -> Date { current.withLock { $0 } }

    public func advance(seconds: Int64) {
        current.withLock { $0 = $0.addingTimeInterval(TimeInterval(seconds)) }
    }

    /// Moves to `date`; never backwards.
    public func set(_ date: Date) {
        current.withLock { if date > $0 { $0 = date } }
    }

    /// Puts the clock at `date`, earlier or later: only for restoring a saved simulated time
    /// when a service starts.
    public func restore(_ date: Date) {
        current.withLock { $0 = date }
    }
}

/// An instant as whole seconds since 1970-01-01T00:00:00Z and nanoseconds within the second,
/// both integers, so that comparisons are exact: `2022-06-30T23:59:59.9999999+08:00` is before
/// `2022-07-01T00:00:00+08:00` (as a `Date`, a `Double`, the two may round to the same value).
public struct Instant: Comparable, Hashable, Sendable, CustomStringConvertible {
    /// Seconds since 1970-01-01T00:00:00Z (negative before).
    public let seconds: Int64
    /// Nanoseconds within the second, 0 ..< 1,000,000,000.
    public let nanoseconds: Int32

    /// The instant `seconds` + `nanoseconds` (any value; normalised into the second).
    public init(seconds: Int64, nanoseconds: Int64 = 0) {
        let (carry, rest) = nanoseconds.quotientAndRemainder(dividingBy: 1_000_000_000)
        let s = rest < 0 ? carry - 1 : carry
        self.seconds = seconds &+ s
        self.nanoseconds = Int32(rest < 0 ? rest + 1_000_000_000 : rest)
    }

    /// The instant a `Date` holds, to its precision (about a tenth of a microsecond today).
    /// Dates outside the years 0000–9999 (and NaN) are clamped into them.
    public init(_ date: Date) {
        let t = Self.clampedSeconds(date.timeIntervalSince1970)
        let whole = t.rounded(.down)
        let nanos = min(999_999_999, max(0, Int64(((t - whole) * 1e9).rounded())))
        self.init(seconds: Int64(whole), nanoseconds: nanos)
    }

    /// The earliest and latest instants whose China Standard Time date has a 4-digit year.
    public static let earliest = Instant(seconds: Timestamp.daysFromCivil(0, 1, 1) * 86_400 - 8 * 3600)
    public static let latest = Instant(
        seconds: Timestamp.daysFromCivil(9999, 12, 31) * 86_400 + 86_399 - 8 * 3600, nanoseconds: 999_999_999)

    /// `t` (seconds since 1970) within `earliest...latest`; NaN as `earliest`.
    static func clampedSeconds(_ t: Double) -> Double {
        guard !t.isNaN else { return Double(earliest.seconds) }
        return min(max(t, Double(earliest.seconds)), Double(latest.seconds) + 0.999_999)
    }

    /// The nearest `Date` that is not later than this instant's second allows: sub-second digits
    /// a `Double` cannot hold are dropped, never rounded up into the next second — whether the
    /// `Date` is read since 2001 (its own reference) or since 1970.
    /// Instants outside the years 0000–9999 are clamped into them first.
    public var date: Date {
        let i = min(max(self, .earliest), .latest)
        let sinceReference = i.seconds - 978_307_200
        let nextSecond = Double(sinceReference + 1)
        let nextSecond1970 = Double(i.seconds + 1)
        var d = Double(sinceReference) + Double(i.nanoseconds) / 1e9
        while d >= nextSecond || d + 978_307_200 >= nextSecond1970 { d = d.nextDown }
        return Date(timeIntervalSinceReferenceDate: d)
    }

    public static func < (a: Instant, b: Instant) -> Bool {
        a.seconds != b.seconds ? a.seconds < b.seconds : a.nanoseconds < b.nanoseconds
    }

    /// RFC 3339 in China Standard Time, to the nanosecond when it has a fraction.
    public var description: String { Timestamp.format(self, fractionDigits: 9) }
}

extension Timestamp {
    /// Formats an instant as RFC 3339 in China Standard Time, e.g. `2026-11-29T10:00:00.123+08:00`.
    ///
    /// To the nearest millisecond within its second (an instant parsed from "…39.898" formats as
    /// "…39.898"; one of "…59.9999999" as "…59.999", never the next second). Never traps: dates
    /// outside the years 0000–9999 (and NaN) are clamped to the first or last millisecond of them.
    public static func format(_ date: Date) -> String {
        let t = Instant.clampedSeconds(date.timeIntervalSince1970)
        let whole = t.rounded(.down)
        let ms = min(999, max(0, Int64(((t - whole) * 1000).rounded())))
        return format(Instant(seconds: Int64(whole), nanoseconds: ms * 1_000_000), fractionDigits: 3)
    }

    /// Formats an instant as RFC 3339 in China Standard Time with `fractionDigits` (0–9) digits
    /// of the second, truncated. Instants outside the years 0000–9999 are clamped into them.
    public static func format(_ instant: Instant, fractionDigits: Int = 3) -> String {
        let i = min(max(instant, Instant.earliest), Instant.latest)
        let local = i.seconds + 8 * 3600
        let days = local >= 0 ? local / 86_400 : (local - 86_399) / 86_400
        let secondOfDay = local - days * 86_400
        let civil = civilFromDays(days)
        func pad(_ v: Int64, _ n: Int) -> String {
            let t = String(v)
            return String(repeating: "0", count: max(0, n - t.count)) + t
        }
        var out = "\(pad(civil.y, 4))-\(pad(civil.m, 2))-\(pad(civil.d, 2))T"
        out += "\(pad(secondOfDay / 3600, 2)):\(pad((secondOfDay / 60) % 60, 2)):\(pad(secondOfDay % 60, 2))"
        let digits = min(max(fractionDigits, 0), 9)
        if digits > 0 {
            var scale: Int64 = 1
            for _ in digits..<9 { scale *= 10 }
            out += "." + pad(Int64(i.nanoseconds) / scale, digits)
        }
        return out + "+08:00"
    }

    /// Parses an RFC 3339 instant (any offset) as a `Date`: ``parseInstant(_:)``'s instant, with
    /// the digits a `Date` cannot hold dropped (never rounded up into the next second, so a
    /// `Date` parsed from `…23:59:59.9999999+08:00` is still on that day).
    public static func parse(_ s: String) -> Date? { parseInstant(s)?.date }

    /// Parses an RFC 3339 instant (any offset) exactly: whole seconds and nanoseconds, as
    /// integers (digits past the ninth are dropped). A leap second (`:60`) is read as the last
    /// nanosecond of its minute, so it stays in the minute (and the day) it is written in.
    public static func parseInstant(_ s: String) -> Instant? {
        guard isRFC3339(s) else { return nil }
        let b = Array(s.utf8)
        func num(_ r: Range<Int>) -> Int64 { r.reduce(0) { $0 * 10 + Int64(b[$1] - 0x30) } }
        let days = daysFromCivil(num(0..<4), num(5..<7), num(8..<10))
        var second = num(17..<19)
        var nanos: Int64 = 0
        var k = 19
        if b[k] == UInt8(ascii: ".") {
            k += 1
            var digits = 0
            while k < b.count, b[k] >= 0x30, b[k] <= 0x39 {
                if digits < 9 {
                    nanos = nanos * 10 + Int64(b[k] - 0x30)
                    digits += 1
                }
                k += 1
            }
            while digits < 9 {
                nanos *= 10
                digits += 1
            }
        }
        if second == 60 {
            second = 59
            nanos = 999_999_999
        }
        var seconds = days * 86_400 + num(11..<13) * 3600 + num(14..<16) * 60 + second
        if b[k] == UInt8(ascii: "+") || b[k] == UInt8(ascii: "-") {
            let off = num((k + 1)..<(k + 3)) * 3600 + num((k + 4)..<(k + 6)) * 60
            seconds += b[k] == UInt8(ascii: "+") ? -off : off
        }
        return Instant(seconds: seconds, nanoseconds: nanos)
    }

    static func daysFromCivil(_ y0: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civilFromDays(_ z0: Int64) -> (y: Int64, m: Int64, d: Int64) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp + (mp < 10 ? 3 : -9)
        return (m <= 2 ? y + 1 : y, m, d)
    }
}
