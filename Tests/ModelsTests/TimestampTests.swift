import Foundation
import Testing

@testable import Models

/// DESIGN §5.3: a deadline ends at 24:00 China Standard Time; an instant just before it is on
/// time, however many digits its fraction has.
@Suite("Timestamps: exact parsing, formatting that never traps")
struct TimestampExactnessTests {
    static let deadline = CivilDate(year: 2022, month: 6, day: 30)!

    @Test(arguments: [
        "2022-06-30T23:59:59.9999999+08:00", "2022-06-30T23:59:59.999999999+08:00", "2022-06-30T23:59:59.99999999999999+08:00",
        "2022-06-30T15:59:59.9999999Z", "2022-06-30T10:59:59.9999999-05:00", "2022-06-30T23:59:59.999+08:00",
    ])
    func anInstantJustBeforeMidnightIsOnTime(_ text: String) throws {
        let instant = try #require(Timestamp.parseInstant(text))
        let midnight = try #require(Timestamp.parseInstant("2022-07-01T00:00:00+08:00"))
        #expect(instant < midnight)
        #expect(instant.seconds == midnight.seconds - 1)
        #expect(ChinaTime.civilDate(of: instant) == Self.deadline)
        // Through `Date` (the API the services use) too: never rounded up into the next second.
        let date = try #require(Timestamp.parse(text))
        #expect(date < ChinaTime.endOfDay(Self.deadline), "\(text) is on time")
        #expect(ChinaTime.civilDate(of: date) == Self.deadline)
        #expect(date.timeIntervalSince1970 < 1_656_604_800)
        #expect(date.timeIntervalSinceReferenceDate < 1_656_604_800 - 978_307_200)
        #expect(Timestamp.format(date).hasPrefix("2022-06-30T23:59:59."))
    }

    @Test func instantsAreExactToTheNanosecond() throws {
        let a = try #require(Timestamp.parseInstant("2022-06-30T23:59:59.999999998+08:00"))
        let b = try #require(Timestamp.parseInstant("2022-06-30T23:59:59.999999999+08:00"))
        #expect(a < b)
        #expect(b.nanoseconds == 999_999_999)
        #expect(Timestamp.parseInstant("2022-06-30T23:59:59.9999999999+08:00") == b, "digits past the ninth are dropped")
        #expect(Timestamp.parseInstant("2022-07-01T00:00:00.000000001+08:00")!.nanoseconds == 1)
        #expect(b.description == "2022-06-30T23:59:59.999999999+08:00")
        #expect(Timestamp.format(b) == "2022-06-30T23:59:59.999+08:00")
        #expect(Timestamp.format(b, fractionDigits: 0) == "2022-06-30T23:59:59+08:00")
        // Offsets, and before 1970.
        #expect(Timestamp.parseInstant("1969-12-31T23:59:59.5Z") == Instant(seconds: -1, nanoseconds: 500_000_000))
        #expect(Timestamp.parseInstant("1970-01-01T08:00:00+08:00") == Instant(seconds: 0))
        #expect(Instant(seconds: 0, nanoseconds: -1) == Instant(seconds: -1, nanoseconds: 999_999_999))
        // A leap second stays in its minute and its day.
        let leap = try #require(Timestamp.parseInstant("2016-12-31T23:59:60Z"))
        #expect(leap < Timestamp.parseInstant("2017-01-01T00:00:00Z")!)
        #expect(Timestamp.parseInstant("2016-12-31T23:59:60.5Z") == leap)
    }

    @Test func datesRoundTrip() throws {
        for text in ["2026-11-29T10:00:39.898+08:00", "2022-06-30T23:59:59.999+08:00", "1900-01-01T00:00:00.000+08:00"] {
            #expect(Timestamp.format(try #require(Timestamp.parse(text))) == text)
        }
        let date = Date(timeIntervalSince1970: 1_656_604_799.25)
        #expect(Instant(date) == Instant(seconds: 1_656_604_799, nanoseconds: 250_000_000))
        #expect(Instant(date).date == date)
    }

    @Test(arguments: [
        1e18, -1e18, 9.3e15, -9.3e15, .greatestFiniteMagnitude, -.greatestFiniteMagnitude, .infinity, -.infinity, .nan,
        Date.distantFuture.timeIntervalSince1970, Date.distantPast.timeIntervalSince1970,
    ])
    func formattingNeverTraps(_ seconds: Double) {
        let text = Timestamp.format(Date(timeIntervalSince1970: seconds))
        #expect(Timestamp.isRFC3339(text), "\(text)")
        if seconds > 0 {
            #expect(text == "9999-12-31T23:59:59.999+08:00" || seconds == Date.distantFuture.timeIntervalSince1970)
        } else {
            #expect(text.hasPrefix("0"), "\(text)")
        }
        _ = ChinaTime.civilDate(of: Date(timeIntervalSince1970: seconds))
    }

    @Test func theLimitsFormat() {
        #expect(Timestamp.format(Instant.latest) == "9999-12-31T23:59:59.999+08:00")
        #expect(Timestamp.format(Instant.earliest) == "0000-01-01T00:00:00.000+08:00")
        #expect(Timestamp.format(Instant(seconds: .max)) == "9999-12-31T23:59:59.999+08:00")
        #expect(Timestamp.format(Instant(seconds: .min)) == "0000-01-01T00:00:00.000+08:00")
        #expect(Timestamp.format(Date.distantFuture) == "4001-01-01T08:00:00.000+08:00")
        #expect(Timestamp.format(Instant(seconds: .max).date) == "9999-12-31T23:59:59.999+08:00")
        #expect(Timestamp.format(Instant(seconds: .min).date) == "0000-01-01T00:00:00.000+08:00")
    }
}
