import Foundation
import Testing

@testable import Models

@Suite("CivilDate, YearMonth and ChinaTime")
struct CivilDateTests {
    private func date(_ s: String) -> CivilDate { CivilDate.parse(s)! }

    @Test(arguments: ["2021-01-01", "2020-02-29", "2000-02-29", "1900-01-01", "2100-12-31", "2024-12-31"])
    func parsesRealDates(_ s: String) {
        let d = CivilDate.parse(s)
        #expect(d != nil)
        #expect(d?.description == s)
    }

    @Test(arguments: [
        "2021-02-29", "1900-02-29", "2100-02-29", "2021-02-30", "2021-04-31", "2021-00-10", "2021-13-01",
        "2021-01-00", "2021-01-32", "1899-12-31", "2101-01-01", "2021-1-01", "2021-01-1", "21-01-01",
        " 2021-01-01", "2021-01-01 ", "2021/01/01", "20210101", "2021-01-01T00:00:00", "+021-01-01",
        "２０２１-01-01", "", "abcd-ef-gh", "2021--1-01",
    ])
    func rejectsNonDates(_ s: String) {
        #expect(CivilDate.parse(s) == nil)
    }

    @Test func parsingExplainsWhy() {
        #expect(throws: DateParseError("2021-02-30 is not a real date")) { try CivilDate.parsing("2021-02-30") }
        #expect(throws: DateParseError("year must be between 1900 and 2100, got 2101-01-01")) {
            try CivilDate.parsing("2101-01-01")
        }
        #expect(throws: DateParseError("must be a date written YYYY-MM-DD, got \"2021/01/01\"")) {
            try CivilDate.parsing("2021/01/01")
        }
    }

    @Test func daysInMonth() {
        #expect(CivilDate.daysInMonth(year: 2021, month: 2) == 28)
        #expect(CivilDate.daysInMonth(year: 2024, month: 2) == 29)
        #expect(CivilDate.daysInMonth(year: 1900, month: 2) == 28)
        #expect(CivilDate.daysInMonth(year: 2000, month: 2) == 29)
        #expect(CivilDate.daysInMonth(year: 2021, month: 4) == 30)
        #expect(CivilDate.daysInMonth(year: 2021, month: 12) == 31)
        #expect(CivilDate.daysInMonth(year: 2021, month: 13) == 0)
        #expect(CivilDate.daysInMonth(year: 2021, month: 0) == 0)
    }

    @Test func dayNumbers() {
        #expect(date("1970-01-01").dayNumber == 0)
        #expect(date("1969-12-31").dayNumber == -1)
        #expect(date("2000-03-01").dayNumber == 11017)
        #expect(date("1900-01-01").dayNumber == -25567)
        #expect(date("2100-12-31").dayNumber == 47846)
        #expect(date("2024-02-29").dayNumber == 19782)
        #expect(CivilDate(dayNumber: 19782) == date("2024-02-29"))
        #expect(CivilDate(dayNumber: -25567) == date("1900-01-01"))
    }

    @Test func everyDayFrom1900To2100RoundTrips() {
        var d = date("1900-01-01")
        var n = d.dayNumber
        let end = date("2100-12-31")
        var count = 0
        var mismatches: [String] = []
        while d <= end {
            if d.dayNumber != n || CivilDate(dayNumber: n) != d || CivilDate.parse(d.description) != d {
                mismatches.append(d.description)
            }
            // next day by calendar rules, independently of dayNumber
            if d.day < CivilDate.daysInMonth(year: d.year, month: d.month) {
                d = CivilDate(year: d.year, month: d.month, day: d.day + 1)!
            } else if d.month < 12 {
                d = CivilDate(year: d.year, month: d.month + 1, day: 1)!
            } else {
                d = CivilDate(year: d.year + 1, month: 1, day: 1)!
            }
            n += 1
            count += 1
        }
        #expect(mismatches.isEmpty)
        #expect(count == 73_414)
    }

    @Test func addingAndInclusiveDays() {
        #expect(date("2021-02-28").adding(days: 1) == date("2021-03-01"))
        #expect(date("2020-02-28").adding(days: 1) == date("2020-02-29"))
        #expect(date("2021-01-01").adding(days: -1) == date("2020-12-31"))
        #expect(date("2022-01-01").adding(days: 365) == date("2023-01-01"))
        #expect(CivilDate.daysInclusive(from: date("2022-01-01"), to: date("2022-06-30")) == 181)
        #expect(CivilDate.daysInclusive(from: date("2022-01-01"), to: date("2022-01-01")) == 1)
        #expect(CivilDate.daysInclusive(from: date("2022-01-02"), to: date("2022-01-01")) == 0)
        #expect(CivilDate.daysInclusive(from: date("2020-01-01"), to: date("2020-12-31")) == 366)
    }

    @Test func weekdays() {
        #expect(date("1970-01-01").weekday == 4)
        #expect(date("2024-01-01").weekday == 1)
        #expect(date("2022-04-03").weekday == 7)
        #expect(date("1900-01-01").weekday == 1)
        #expect(date("1969-12-28").weekday == 7)
        #expect(date("1969-12-29").weekday == 1)
    }

    @Test func ordering() {
        #expect(date("2021-12-31") < date("2022-01-01"))
        #expect(date("2022-01-31") < date("2022-02-01"))
        #expect(!(date("2022-01-01") < date("2022-01-01")))
        #expect(
            [date("2022-03-01"), date("2021-03-01"), date("2022-02-28")].sorted().map(\.description)
                == ["2021-03-01", "2022-02-28", "2022-03-01"])
    }

    @Test func failableInit() {
        #expect(CivilDate(year: 2021, month: 2, day: 29) == nil)
        #expect(CivilDate(year: 2021, month: 0, day: 1) == nil)
        #expect(CivilDate(year: 2021, month: 1, day: 0) == nil)
        #expect(CivilDate(year: 2021, month: 1, day: 5)?.description == "2021-01-05")
    }

    @Test func codableAsString() throws {
        let encoded = try JSONEncoder().encode([date("2022-04-01")])
        #expect(String(decoding: encoded, as: UTF8.self) == "[\"2022-04-01\"]")
        let decoded = try JSONDecoder().decode([CivilDate].self, from: encoded)
        #expect(decoded == [date("2022-04-01")])
        #expect(throws: (any Error).self) {
            try JSONDecoder().decode([CivilDate].self, from: Data("[\"2022-02-30\"]".utf8))
        }
    }

    // MARK: YearMonth

    @Test func yearMonthParse() {
        #expect(YearMonth.parse("2022-04")?.description == "2022-04")
        #expect(YearMonth.parse("1900-01") != nil)
        #expect(YearMonth.parse("2100-12") != nil)
        for bad in ["2022-4", "2022-00", "2022-13", "1899-12", "2101-01", "2022-04-01", "202204", " 2022-04", "2022/04", ""] {
            #expect(YearMonth.parse(bad) == nil, "\(bad)")
        }
        #expect(throws: DateParseError("2022-13 is not a real month")) { try YearMonth.parsing("2022-13") }
    }

    @Test func yearMonthArithmetic() {
        let m = YearMonth.parse("2024-02")!
        #expect(m.firstDay.description == "2024-02-01")
        #expect(m.lastDay.description == "2024-02-29")
        #expect(m.numberOfDays == 29)
        #expect(m.adding(months: 11).description == "2025-01")
        #expect(m.adding(months: -2).description == "2023-12")
        #expect(m.adding(months: -14).description == "2022-12")
        #expect(m.contains(CivilDate.parse("2024-02-15")!))
        #expect(!m.contains(CivilDate.parse("2024-03-01")!))
        #expect(YearMonth.parse("2021-12")! < m)
        #expect(CivilDate.parse("2024-02-15")!.yearMonth == m)
    }

    // MARK: ChinaTime

    @Test func civilDateInChinaStandardTime() {
        #expect(ChinaTime.civilDate(of: Date(timeIntervalSince1970: 0)).description == "1970-01-01")
        // 2021-12-31T16:00:00Z is 2022-01-01 00:00 CST.
        #expect(ChinaTime.civilDate(of: Date(timeIntervalSince1970: 1_640_966_400)).description == "2022-01-01")
        #expect(ChinaTime.civilDate(of: Date(timeIntervalSince1970: 1_640_966_399)).description == "2021-12-31")
        #expect(ChinaTime.civilDate(of: Date(timeIntervalSince1970: 1_640_966_399.5)).description == "2021-12-31")
        // Before 1970: 1970-01-01 00:00 CST is -28800.
        #expect(ChinaTime.civilDate(of: Date(timeIntervalSince1970: -28_800)).description == "1970-01-01")
        #expect(ChinaTime.civilDate(of: Date(timeIntervalSince1970: -28_801)).description == "1969-12-31")
    }

    @Test func deadlineEndsAtMidnightCST() {
        let deadline = CivilDate.parse("2022-06-30")!
        let end = ChinaTime.endOfDay(deadline)
        // 2022-07-01T00:00:00+08:00 = 2022-06-30T16:00:00Z
        #expect(end == Date(timeIntervalSince1970: 1_656_604_800))
        #expect(ChinaTime.startOfDay(deadline) == Date(timeIntervalSince1970: 1_656_604_800 - 86_400))
        let lastSecond = Date(timeIntervalSince1970: 1_656_604_799)
        let nextDay = Date(timeIntervalSince1970: 1_656_604_801)  // 00:00:01 on 07-01: late
        #expect(lastSecond < end)
        #expect(!(nextDay < end))
        #expect(ChinaTime.civilDate(of: lastSecond) == deadline)
        #expect(ChinaTime.civilDate(of: end) == deadline.adding(days: 1))
    }
}

@Suite("Timestamps")
struct TimestampRoundTripTests {
    @Test func everyMillisecondRoundTripsThroughParseAndFormat() {
        for ms in 0..<1_000 {
            let text = "2026-11-29T10:00:39.\(String(1_000 + ms).dropFirst())+08:00"
            #expect(Timestamp.format(Timestamp.parse(text)!) == text)
        }
    }
}
