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

extension Timestamp {
    /// Formats an instant as RFC 3339 in China Standard Time, e.g. `2026-11-29T10:00:00.123+08:00`.
    public static func format(_ date: Date) -> String {
        // To the nearest millisecond: an instant parsed from "…39.898" formats as "…39.898".
        let ms = Int64((date.timeIntervalSince1970 * 1000).rounded())
        let local = ms + 8 * 3_600_000
        let days = Int64((Double(local) / 86_400_000).rounded(.down))
        let msOfDay = local - days * 86_400_000
        let civil = civilFromDays(days)
        let h = msOfDay / 3_600_000
        let mi = (msOfDay / 60_000) % 60
        let s = (msOfDay / 1000) % 60
        let frac = msOfDay % 1000
        func pad(_ v: Int64, _ n: Int) -> String {
            let t = String(v)
            return String(repeating: "0", count: max(0, n - t.count)) + t
        }
        return "\(pad(civil.y, 4))-\(pad(civil.m, 2))-\(pad(civil.d, 2))T\(pad(h, 2)):\(pad(mi, 2)):\(pad(s, 2)).\(pad(frac, 3))+08:00"
    }

    /// Parses an RFC 3339 instant (any offset).
    public static func parse(_ s: String) -> Date? {
        guard isRFC3339(s) else { return nil }
        let b = Array(s.utf8)
        func num(_ r: Range<Int>) -> Int64 { r.reduce(0) { $0 * 10 + Int64(b[$1] - 0x30) } }
        let days = daysFromCivil(num(0..<4), num(5..<7), num(8..<10))
        var seconds = Double(days * 86_400 + num(11..<13) * 3600 + num(14..<16) * 60 + num(17..<19))
        var k = 19
        if b[k] == UInt8(ascii: ".") {
            k += 1
            // The fraction as an exact integer of nanoseconds, added once.
            var nanos: Int64 = 0
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
            seconds += Double(nanos) / 1e9
        }
        if b[k] == UInt8(ascii: "+") || b[k] == UInt8(ascii: "-") {
            let off = Double(num((k + 1)..<(k + 3)) * 3600 + num((k + 4)..<(k + 6)) * 60)
            seconds += b[k] == UInt8(ascii: "+") ? -off : off
        }
        return Date(timeIntervalSince1970: seconds)
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
