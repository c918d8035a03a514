import Foundation
import Models
import Testing

@testable import Notifier

@Suite("Monthly evaluation report (月度评)")
struct MonthlyReportTests {
    static let month = YearMonth(year: 2022, month: 5)!
    static let generatedAt = Timestamp.parse("2022-06-01T08:00:00+08:00")!

    static let figures = [
        MonthlyFigures(
            district: "城关镇", allocatedFen: 1_000_000, paidFen: 333_333, taxReliefFen: 120_000, feeReliefFen: 30_000,
            rentReliefFen: 50_000, interestReliefFen: 0, insuredEmployees: 120, merchantsPaid: 3),
        MonthlyFigures(
            district: "东城街道", allocatedFen: 300, paidFen: 200, taxReliefFen: 1, feeReliefFen: 2, rentReliefFen: 3,
            interestReliefFen: 4, insuredEmployees: 7, merchantsPaid: 1),
        MonthlyFigures(
            district: "西湖乡", allocatedFen: 0, paidFen: 0, taxReliefFen: 0, feeReliefFen: 0, rentReliefFen: 0,
            interestReliefFen: 99_999, insuredEmployees: 0, merchantsPaid: 0),
    ]

    /// Plausible figures for the sample written next to the sample board.
    static let sampleFigures = [
        MonthlyFigures(
            district: "城关镇", allocatedFen: 186_000_000, paidFen: 142_350_000, taxReliefFen: 95_420_000, feeReliefFen: 31_200_000,
            rentReliefFen: 48_600_000, interestReliefFen: 12_750_000, insuredEmployees: 3_412, merchantsPaid: 611),
        MonthlyFigures(
            district: "东城街道", allocatedFen: 98_500_000, paidFen: 91_200_000, taxReliefFen: 40_100_000, feeReliefFen: 15_800_000,
            rentReliefFen: 22_000_000, interestReliefFen: 6_300_000, insuredEmployees: 1_786, merchantsPaid: 356),
        MonthlyFigures(
            district: "西湖乡", allocatedFen: 41_200_000, paidFen: 18_900_000, taxReliefFen: 9_800_000, feeReliefFen: 4_100_000,
            rentReliefFen: 3_600_000, interestReliefFen: 2_200_000, insuredEmployees: 524, merchantsPaid: 97),
    ]

    // MARK: arithmetic

    @Test func percentIsExactAndRoundsHalfUp() {
        #expect(MonthlyReport.percent(1, of: 3) == "33.3")
        #expect(MonthlyReport.percent(2, of: 3) == "66.7")
        #expect(MonthlyReport.percent(1, of: 6) == "16.7")
        #expect(MonthlyReport.percent(1, of: 8) == "12.5")
        #expect(MonthlyReport.percent(1, of: 16) == "6.3")
        #expect(MonthlyReport.percent(1, of: 80) == "1.3")
        #expect(MonthlyReport.percent(1, of: 2000) == "0.1")
        #expect(MonthlyReport.percent(1, of: 2001) == "0.0")
        #expect(MonthlyReport.percent(0, of: 5) == "0.0")
        #expect(MonthlyReport.percent(5, of: 5) == "100.0")
        #expect(MonthlyReport.percent(3, of: 2) == "150.0")
        #expect(MonthlyReport.percent(Int64.max, of: Int64.max) == "100.0")
        #expect(MonthlyReport.percent(Int64.max / 2, of: Int64.max) == "50.0")
        #expect(MonthlyReport.percent(Int64.max, of: 1) == "922337203685477580700.0")
        #expect(MonthlyReport.percent(-1, of: 3) == "-33.3")
        #expect(MonthlyReport.percent(1, of: 0) == nil)
        #expect(MonthlyReport.percent(1, of: -3) == nil)
    }

    @Test func totalsAreExact() {
        let t = MonthlyFigures.total(Self.figures)
        #expect(
            t
                == MonthlyFigures(
                    district: "合计", allocatedFen: 1_000_300, paidFen: 333_533, taxReliefFen: 120_001, feeReliefFen: 30_002,
                    rentReliefFen: 50_003, interestReliefFen: 100_003, insuredEmployees: 127, merchantsPaid: 4))
        #expect(t.fourReliefsFen == 300_009)
        #expect(Self.figures[0].fourReliefsFen == 200_000)
    }

    @Test func barsScaleWithIntegers() {
        #expect(MonthlyReport.barLength(1_000_000, max: 1_000_000) == MonthlyReport.barArea)
        #expect(MonthlyReport.barLength(333_333, max: 1_000_000) == 139)
        #expect(MonthlyReport.barLength(1, max: Int64.max) == 1)
        #expect(MonthlyReport.barLength(0, max: 10) == 0)
        #expect(MonthlyReport.barLength(Int64.max, max: Int64.max) == MonthlyReport.barArea)
    }

    // MARK: CSV

    @Test func csvRowsAndTotals() {
        let csv = MonthlyReport.csv(month: Self.month, figures: Self.figures)
        let lines = csv.components(separatedBy: "\r\n")
        #expect(lines.count == 6)
        #expect(
            lines[0]
                == "月份,区域,分配资金（元）,已拨付资金（元）,拨付率（%）,受益主体（户）,减税（元）,降费（元）,减租（元）,减息（元）,四减合计（元）,吸纳就业（参保职工人数）,区划代码")
        #expect(lines[1] == "2022-05,城关镇,10000.00,3333.33,33.3,3,1200.00,300.00,500.00,0.00,2000.00,120,城关镇")
        #expect(lines[2] == "2022-05,东城街道,3.00,2.00,66.7,1,0.01,0.02,0.03,0.04,0.10,7,东城街道")
        #expect(lines[3] == "2022-05,西湖乡,0.00,0.00,,0,0.00,0.00,0.00,999.99,999.99,0,西湖乡")
        #expect(lines[4] == "2022-05,合计,10003.00,3335.33,33.3,4,1200.01,300.02,500.03,1000.03,3000.09,127,")
        #expect(lines[5] == "")
    }

    /// With the operator's table (`districts`), a division is shown by its name, in the CSV and
    /// the HTML, and the CSV keeps its code in the last column; a code not in the table stays.
    @Test func districtsAreShownByTheirNames() {
        var named = MonthlyFigures(district: "411002", allocatedFen: 100, paidFen: 100, merchantsPaid: 1)
        named.name = "魏都区"
        let unknown = MonthlyFigures(district: "411099", allocatedFen: 1)
        let csv = MonthlyReport.csv(month: Self.month, figures: [named, unknown]).components(separatedBy: "\r\n")
        #expect(csv[1] == "2022-05,魏都区,1.00,1.00,100.0,1,0.00,0.00,0.00,0.00,0.00,0,411002")
        #expect(csv[2] == "2022-05,411099,0.01,0.00,0.0,0,0.00,0.00,0.00,0.00,0.00,0,411099")
        let html = MonthlyReport.html(month: Self.month, figures: [named, unknown], generatedAt: Date(timeIntervalSince1970: 0))
        #expect(html.contains("<th scope=\"row\">魏都区</th>"))
        #expect(!html.contains(">411002<"))
        #expect(html.contains("<th scope=\"row\">411099</th>"))
    }

    @Test func csvQuotesDistrictNames() {
        let csv = MonthlyReport.csv(month: Self.month, figures: [MonthlyFigures(district: "甲,\"乙\"")])
        #expect(csv.contains("2022-05,\"甲,\"\"乙\"\"\",0.00"))
    }

    // MARK: HTML

    @Test func htmlHasTablesTotalsAndPercentages() {
        let html = MonthlyReport.html(month: Self.month, figures: Self.figures, generatedAt: Self.generatedAt)
        #expect(html.hasPrefix("<!DOCTYPE html>\n<html lang=\"zh-CN\">"))
        #expect(html.contains("2022年5月小微企业和个体工商户帮扶工作月度评价"))
        #expect(html.contains("2022-06-01 08:00:00"))
        // 两直: per district and total, with the paid share.
        #expect(
            html.contains(
                "<tr><th scope=\"row\">城关镇</th><td>10,000.00</td><td>3,333.33</td><td>33.3%</td><td>3</td></tr>"))
        #expect(html.contains("<tr><th scope=\"row\">东城街道</th><td>3.00</td><td>2.00</td><td>66.7%</td><td>1</td></tr>"))
        #expect(html.contains("<tr><th scope=\"row\">西湖乡</th><td>0.00</td><td>0.00</td><td>—</td><td>0</td></tr>"))
        #expect(
            html.contains(
                "<tr class=\"total\"><th scope=\"row\">合计</th><td>10,003.00</td><td>3,335.33</td><td>33.3%</td><td>4</td></tr>"))
        // 四减.
        #expect(html.contains("<th scope=\"col\">减税（元）</th><th scope=\"col\">降费（元）</th>"))
        #expect(
            html.contains(
                "<tr class=\"total\"><th scope=\"row\">合计</th><td>1,200.01</td><td>300.02</td><td>500.03</td><td>1,000.03</td><td>3,000.09</td></tr>"
            ))
        // Jobs kept.
        #expect(html.contains("<tr class=\"total\"><th scope=\"row\">合计</th><td>127</td><td>4</td></tr>"))
        #expect(html.contains("<b>127 人</b>"))
        // Self-contained: no scripts, no external resources.
        #expect(!html.contains("<script"))
        #expect(!html.contains("src="))
        #expect(!html.contains("<link"))
    }

    @Test func htmlHasInlineSVGCharts() {
        let html = MonthlyReport.html(month: Self.month, figures: Self.figures, generatedAt: Self.generatedAt)
        #expect(BoardTests.count("<svg", in: html) == 2)
        #expect(BoardTests.count("</svg>", in: html) == 2)
        #expect(html.contains("id=\"chart-funds\""))
        #expect(html.contains("id=\"chart-reliefs\""))
        let funds = html.components(separatedBy: "id=\"chart-funds\"")[1].components(separatedBy: "</svg>")[0]
        let reliefs = html.components(separatedBy: "id=\"chart-reliefs\"")[1].components(separatedBy: "</svg>")[0]
        // Two legend swatches + allocated and paid per district.
        #expect(BoardTests.count("<rect", in: funds) == 2 + 2 * 3)
        #expect(funds.contains("width=\"420\" height=\"16\" fill=\"#c9d1d9\""))
        #expect(funds.contains("width=\"139\" height=\"16\" fill=\"#b3261e\""))
        // Four legend swatches + one segment per non-zero relief (3 + 4 + 1).
        #expect(BoardTests.count("<rect", in: reliefs) == 4 + 8)
        // 西湖乡's 999.99 of interest relief is the largest total after 城关镇's 2,000.00: 420 × 99999 / 200000.
        #expect(reliefs.contains("<rect x=\"110\" y=\"98\" width=\"209\""))
        for district in ["城关镇", "东城街道", "西湖乡"] { #expect(funds.contains(district)) }
    }

    @Test func reportEscapesText() {
        let html = MonthlyReport.html(
            month: Self.month, figures: [MonthlyFigures(district: "<script>x</script>", allocatedFen: 1, paidFen: 1)],
            generatedAt: Self.generatedAt)
        #expect(!html.contains("<script"))
        #expect(html.contains("&lt;script&gt;x&lt;/script&gt;"))
    }

    @Test func emptyMonth() {
        let html = MonthlyReport.html(month: Self.month, figures: [], generatedAt: Self.generatedAt)
        #expect(html.contains("本月暂无数据"))
        #expect(!html.contains("<svg"))
        #expect(MonthlyReport.csv(month: Self.month, figures: []).components(separatedBy: "\r\n").count == 3)
    }

    // MARK: files

    @Test func writeIsAtomicAndReturnsThePaths() throws {
        let root = try BoardTests.scratch()
        defer { BoardTests.remove(root) }
        let dir = root + "/reports"
        let paths = try MonthlyReport.write(month: Self.month, figures: Self.figures, generatedAt: Self.generatedAt, into: dir)
        #expect(paths.html == dir + "/monthly-2022-05.html")
        #expect(paths.csv == dir + "/monthly-2022-05.csv")
        let csv = Array(try Data(contentsOf: URL(fileURLWithPath: paths.csv)))
        #expect(Array(csv.prefix(3)) == [0xEF, 0xBB, 0xBF])
        #expect(String(decoding: csv.dropFirst(3), as: UTF8.self) == MonthlyReport.csv(month: Self.month, figures: Self.figures))
        #expect(
            try String(contentsOfFile: paths.html, encoding: .utf8)
                == MonthlyReport.html(month: Self.month, figures: Self.figures, generatedAt: Self.generatedAt))
        // Rewriting replaces the files and leaves no temp files.
        _ = try MonthlyReport.write(month: Self.month, figures: [], generatedAt: Self.generatedAt, into: dir)
        _ = try MonthlyReport.write(month: Self.month.adding(months: 1), figures: [], generatedAt: Self.generatedAt, into: dir)
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == [
                "monthly-2022-05.csv", "monthly-2022-05.html", "monthly-2022-06.csv", "monthly-2022-06.html",
            ])
        #expect(try String(contentsOfFile: paths.html, encoding: .utf8).contains("本月暂无数据"))
    }
}
