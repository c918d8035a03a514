import Foundation
import Models

// The monthly evaluation (月度评, DESIGN §9): "重点围绕“两直”资金兑现情况、“四减”政策落实情况、
// 吸纳就业情况等3个方面" — per district and month, 两直 funds paid vs allocated, the 四减 amounts
// (tax, fee, rent and interest relief) and jobs kept (insured employees), as an HTML report with
// inline SVG charts and a CSV. All arithmetic is on integers (fen, people, per-mille).

/// One district's figures for one month.
public struct MonthlyFigures: Sendable, Equatable {
    /// The six-digit division code (or `合计` for the total row).
    public var district: String
    /// The division's name from the operator's table (`districts`), when it has it.
    public var name: String?
    /// What the report shows: the name, or the code.
    public var label: String { name ?? district }
    /// 两直 funds allocated to merchants in the district (approved entitlements).
    public var allocatedFen: Int64
    /// 两直 funds actually paid.
    public var paidFen: Int64
    /// 四减: tax relief (减税).
    public var taxReliefFen: Int64
    /// 四减: fee relief (降费, e.g. deferred or reduced social insurance contributions).
    public var feeReliefFen: Int64
    /// 四减: rent relief (减租).
    public var rentReliefFen: Int64
    /// 四减: interest relief (减息).
    public var interestReliefFen: Int64
    /// Jobs kept: insured employees of the merchants helped (吸纳就业).
    public var insuredEmployees: Int64
    /// Merchants that received a payment.
    public var merchantsPaid: Int

    public init(
        district: String, allocatedFen: Int64 = 0, paidFen: Int64 = 0, taxReliefFen: Int64 = 0, feeReliefFen: Int64 = 0,
        rentReliefFen: Int64 = 0, interestReliefFen: Int64 = 0, insuredEmployees: Int64 = 0, merchantsPaid: Int = 0
    ) {
        self.district = district
        self.allocatedFen = allocatedFen
        self.paidFen = paidFen
        self.taxReliefFen = taxReliefFen
        self.feeReliefFen = feeReliefFen
        self.rentReliefFen = rentReliefFen
        self.interestReliefFen = interestReliefFen
        self.insuredEmployees = insuredEmployees
        self.merchantsPaid = merchantsPaid
    }

    /// 四减 total: tax + fee + rent + interest relief.
    public var fourReliefsFen: Int64 { taxReliefFen + feeReliefFen + rentReliefFen + interestReliefFen }

    /// The sum of several districts' figures, named `district`.
    public static func total(_ figures: [MonthlyFigures], district: String = "合计") -> MonthlyFigures {
        var t = MonthlyFigures(district: district)
        for f in figures {
            t.allocatedFen += f.allocatedFen
            t.paidFen += f.paidFen
            t.taxReliefFen += f.taxReliefFen
            t.feeReliefFen += f.feeReliefFen
            t.rentReliefFen += f.rentReliefFen
            t.interestReliefFen += f.interestReliefFen
            t.insuredEmployees += f.insuredEmployees
            t.merchantsPaid += f.merchantsPaid
        }
        return t
    }
}

/// Renders and writes the monthly evaluation report.
public enum MonthlyReport {
    /// `part / whole` as a percentage with one decimal, rounded half up, in exact integer
    /// arithmetic: (1, 3) → "33.3", (2, 3) → "66.7", (1, 1) → "100.0". `nil` when `whole` ≤ 0.
    public static func percent(_ part: Int64, of whole: Int64) -> String? {
        guard whole > 0 else { return nil }
        let p = Int128(part)
        let w = Int128(whole)
        // Tenths of a percent, rounded half away from zero.
        let scaled = p.magnitude * 2000 + w.magnitude
        let tenths = scaled / (2 * w.magnitude)
        return (part < 0 && tenths != 0 ? "-" : "") + String(tenths / 10) + "." + String(tenths % 10)
    }

    /// The file names `write` uses for `month`.
    public static func fileNames(month: YearMonth) -> (html: String, csv: String) {
        ("monthly-\(month).html", "monthly-\(month).csv")
    }

    /// Writes `monthly-YYYY-MM.html` and `monthly-YYYY-MM.csv` (UTF-8 with BOM) into `directory`
    /// (created if missing), each via a temp file, fsync and rename; returns their paths.
    @discardableResult
    public static func write(month: YearMonth, figures: [MonthlyFigures], generatedAt: Date, into directory: String) throws
        -> (html: String, csv: String)
    {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let names = fileNames(month: month)
        let base = directory.hasSuffix("/") ? directory : directory + "/"
        let paths = (html: base + names.html, csv: base + names.csv)
        try BoardFiles.replaceFile(paths.html, bytes: Array(html(month: month, figures: figures, generatedAt: generatedAt).utf8))
        try BoardFiles.replaceFile(paths.csv, bytes: [0xEF, 0xBB, 0xBF] + Array(csv(month: month, figures: figures).utf8))
        return paths
    }

    // MARK: CSV

    /// One row per district and a 合计 row, CRLF line ends, amounts in yuan without grouping,
    /// the paid share in percent with one decimal (empty when nothing was allocated). Without the
    /// byte order mark (`write` adds it).
    public static func csv(month: YearMonth, figures: [MonthlyFigures]) -> String {
        var out = BoardText.csvLine([
            "月份", "区域", "分配资金（元）", "已拨付资金（元）", "拨付率（%）", "受益主体（户）",
            "减税（元）", "降费（元）", "减租（元）", "减息（元）", "四减合计（元）", "吸纳就业（参保职工人数）", "区划代码",
        ])
        for f in figures + [MonthlyFigures.total(figures)] {
            out += BoardText.csvLine([
                month.description, BoardText.csvText(f.label),
                yuan(f.allocatedFen), yuan(f.paidFen), percent(f.paidFen, of: f.allocatedFen) ?? "", String(f.merchantsPaid),
                yuan(f.taxReliefFen), yuan(f.feeReliefFen), yuan(f.rentReliefFen), yuan(f.interestReliefFen),
                yuan(f.fourReliefsFen), String(f.insuredEmployees), f.district == "合计" ? "" : BoardText.csvText(f.district),
            ])
        }
        return out
    }

    private static func yuan(_ fen: Int64) -> String { BoardText.yuan(fen, grouped: false) }

    // MARK: HTML

    public static func html(month: YearMonth, figures: [MonthlyFigures], generatedAt: Date) -> String {
        let e = BoardText.html
        let y = BoardText.yuan
        let total = MonthlyFigures.total(figures)
        let title = "\(month.year)年\(month.month)月小微企业和个体工商户帮扶工作月度评价"
        let stamp = Timestamp.format(generatedAt)
        var h = """
            <!DOCTYPE html>
            <html lang="zh-CN">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(e(title))</title>
            <style>\(reportCSS)</style>
            </head>
            <body>
            <header>
            <h1>\(e(title))</h1>
            <p class="meta">月份：\(month) · 生成时间：<time datetime="\(e(stamp))">\(e(BoardText.displayTime(stamp)))</time>（北京时间）</p>
            </header>
            <main>
            <section class="kpis">
            <div class="kpi"><span>两直资金已拨付（元）</span><b>\(y(total.paidFen, true))</b><small>分配 \(y(total.allocatedFen, true)) 元，拨付率 \(percentText(total.paidFen, total.allocatedFen))</small></div>
            <div class="kpi"><span>四减合计（元）</span><b>\(y(total.fourReliefsFen, true))</b><small>减税、降费、减租、减息</small></div>
            <div class="kpi"><span>吸纳就业（参保职工）</span><b>\(total.insuredEmployees) 人</b><small>受益主体 \(total.merchantsPaid) 户</small></div>
            </section>

            """
        if figures.isEmpty { h += "<p class=\"empty\">本月暂无数据。</p>\n" }

        // 1. 两直 funds.
        h += "<section id=\"funds\">\n<h2>一、“两直”资金兑现情况</h2>\n"
        h += "<div class=\"scroll\"><table>\n<thead><tr><th scope=\"col\">区域</th><th scope=\"col\">分配资金（元）</th>"
        h += "<th scope=\"col\">已拨付（元）</th><th scope=\"col\">拨付率</th><th scope=\"col\">受益主体（户）</th></tr></thead>\n<tbody>\n"
        for f in figures {
            h += "<tr><th scope=\"row\">\(e(f.label))</th><td>\(y(f.allocatedFen, true))</td><td>\(y(f.paidFen, true))</td>"
            h += "<td>\(percentText(f.paidFen, f.allocatedFen))</td><td>\(f.merchantsPaid)</td></tr>\n"
        }
        h += "</tbody>\n<tfoot><tr class=\"total\"><th scope=\"row\">合计</th><td>\(y(total.allocatedFen, true))</td>"
        h += "<td>\(y(total.paidFen, true))</td><td>\(percentText(total.paidFen, total.allocatedFen))</td>"
        h += "<td>\(total.merchantsPaid)</td></tr></tfoot>\n</table></div>\n"
        if !figures.isEmpty { h += fundsChart(figures) }
        h += "</section>\n"

        // 2. 四减.
        h += "<section id=\"reliefs\">\n<h2>二、“四减”政策落实情况</h2>\n"
        h += "<div class=\"scroll\"><table>\n<thead><tr><th scope=\"col\">区域</th>"
        for (name, _, _) in reliefKinds { h += "<th scope=\"col\">\(name)（元）</th>" }
        h += "<th scope=\"col\">合计（元）</th></tr></thead>\n<tbody>\n"
        func reliefCells(_ f: MonthlyFigures) -> String {
            reliefKinds.map { "<td>\(y($0.2(f), true))</td>" }.joined() + "<td>\(y(f.fourReliefsFen, true))</td></tr>\n"
        }
        for f in figures { h += "<tr><th scope=\"row\">\(e(f.label))</th>" + reliefCells(f) }
        h += "</tbody>\n<tfoot><tr class=\"total\"><th scope=\"row\">合计</th>" + reliefCells(total)
        h += "</tfoot>\n</table></div>\n"
        if !figures.isEmpty { h += reliefChart(figures) }
        h += "</section>\n"

        // 3. Jobs.
        h += "<section id=\"jobs\">\n<h2>三、吸纳就业情况</h2>\n"
        h += "<div class=\"scroll\"><table>\n<thead><tr><th scope=\"col\">区域</th><th scope=\"col\">参保职工（人）</th>"
        h += "<th scope=\"col\">受益主体（户）</th></tr></thead>\n<tbody>\n"
        for f in figures {
            h += "<tr><th scope=\"row\">\(e(f.label))</th><td>\(f.insuredEmployees)</td><td>\(f.merchantsPaid)</td></tr>\n"
        }
        h += "</tbody>\n<tfoot><tr class=\"total\"><th scope=\"row\">合计</th><td>\(total.insuredEmployees)</td>"
        h += "<td>\(total.merchantsPaid)</td></tr></tfoot>\n</table></div>\n</section>\n"

        h += """
            </main>
            <footer><p>金额单位：元；拨付率 = 已拨付 ÷ 分配资金，保留一位小数。数据来源：兑付平台支付记录与各部门按月报送数据。</p></footer>
            </body>
            </html>

            """
        return h
    }

    private static func percentText(_ part: Int64, _ whole: Int64) -> String {
        percent(part, of: whole).map { $0 + "%" } ?? "—"
    }

    /// The four reliefs: name, chart colour, value.
    static let reliefKinds: [(String, String, @Sendable (MonthlyFigures) -> Int64)] = [
        ("减税", "#b3261e", { $0.taxReliefFen }),
        ("降费", "#e8833a", { $0.feeReliefFen }),
        ("减租", "#2f7d4f", { $0.rentReliefFen }),
        ("减息", "#2b6cb0", { $0.interestReliefFen }),
    ]

    // MARK: charts (inline SVG, no libraries)

    static let chartWidth = 800
    static let labelWidth = 110
    static let barArea = 420

    /// `value` scaled to `barArea` pixels against `max`, in integer arithmetic; at least 1 px for a
    /// positive value.
    static func barLength(_ value: Int64, max: Int64) -> Int {
        guard max > 0, value > 0 else { return 0 }
        let w = Int((Int128(value) * Int128(barArea)) / Int128(max))
        return Swift.max(1, w)
    }

    /// Paid vs allocated per district: two bars per district.
    static func fundsChart(_ figures: [MonthlyFigures]) -> String {
        let e = BoardText.html
        let maxValue = figures.map { Swift.max($0.allocatedFen, $0.paidFen) }.max() ?? 0
        let rowHeight = 46
        let top = 30
        let height = top + figures.count * rowHeight + 8
        var s = "<figure>\n<svg class=\"chart\" id=\"chart-funds\" viewBox=\"0 0 \(chartWidth) \(height)\" width=\"100%\" "
        s += "role=\"img\" aria-label=\"各区域两直资金已拨付与分配对比\" xmlns=\"http://www.w3.org/2000/svg\">\n"
        s += "<title>各区域两直资金已拨付与分配对比</title>\n"
        s += "<rect x=\"\(labelWidth)\" y=\"6\" width=\"12\" height=\"12\" fill=\"#c9d1d9\"/>"
        s += "<text x=\"\(labelWidth + 18)\" y=\"17\">分配资金</text>"
        s += "<rect x=\"\(labelWidth + 100)\" y=\"6\" width=\"12\" height=\"12\" fill=\"#b3261e\"/>"
        s += "<text x=\"\(labelWidth + 118)\" y=\"17\">已拨付</text>\n"
        for (i, f) in figures.enumerated() {
            let y0 = top + i * rowHeight
            let a = barLength(f.allocatedFen, max: maxValue)
            let p = barLength(f.paidFen, max: maxValue)
            s += "<g class=\"bar\"><text x=\"\(labelWidth - 8)\" y=\"\(y0 + 24)\" text-anchor=\"end\">\(e(f.label))</text>"
            s += "<rect x=\"\(labelWidth)\" y=\"\(y0 + 4)\" width=\"\(a)\" height=\"16\" fill=\"#c9d1d9\">"
            s += "<title>\(e(f.label)) 分配 \(BoardText.yuan(f.allocatedFen)) 元</title></rect>"
            s += "<rect x=\"\(labelWidth)\" y=\"\(y0 + 22)\" width=\"\(p)\" height=\"16\" fill=\"#b3261e\">"
            s += "<title>\(e(f.label)) 已拨付 \(BoardText.yuan(f.paidFen)) 元</title></rect>"
            s += "<text class=\"v\" x=\"\(labelWidth + a + 6)\" y=\"\(y0 + 17)\">\(BoardText.yuan(f.allocatedFen))</text>"
            s +=
                "<text class=\"v\" x=\"\(labelWidth + p + 6)\" y=\"\(y0 + 35)\">\(BoardText.yuan(f.paidFen))（\(percentText(f.paidFen, f.allocatedFen))）</text>"
            s += "</g>\n"
        }
        s += "</svg>\n<figcaption>图1 各区域“两直”资金已拨付与分配（元）</figcaption>\n</figure>\n"
        return s
    }

    /// 四减 composition per district: one stacked bar per district.
    static func reliefChart(_ figures: [MonthlyFigures]) -> String {
        let e = BoardText.html
        let maxValue = figures.map(\.fourReliefsFen).max() ?? 0
        let rowHeight = 32
        let top = 30
        let height = top + figures.count * rowHeight + 8
        var s = "<figure>\n<svg class=\"chart\" id=\"chart-reliefs\" viewBox=\"0 0 \(chartWidth) \(height)\" width=\"100%\" "
        s += "role=\"img\" aria-label=\"各区域四减构成\" xmlns=\"http://www.w3.org/2000/svg\">\n<title>各区域四减构成</title>\n"
        for (k, kind) in reliefKinds.enumerated() {
            let x = labelWidth + k * 80
            s += "<rect x=\"\(x)\" y=\"6\" width=\"12\" height=\"12\" fill=\"\(kind.1)\"/><text x=\"\(x + 18)\" y=\"17\">\(kind.0)</text>"
        }
        s += "\n"
        for (i, f) in figures.enumerated() {
            let y0 = top + i * rowHeight
            s += "<g class=\"bar\"><text x=\"\(labelWidth - 8)\" y=\"\(y0 + 18)\" text-anchor=\"end\">\(e(f.label))</text>"
            // Each segment ends where the running total ends, so rounding never adds up to a gap.
            var running: Int64 = 0
            var x = labelWidth
            for kind in reliefKinds {
                let v = kind.2(f)
                running += Swift.max(0, v)
                let end = labelWidth + (maxValue > 0 ? Int((Int128(running) * Int128(barArea)) / Int128(maxValue)) : 0)
                if v > 0 {
                    let w = Swift.max(1, end - x)
                    s += "<rect x=\"\(x)\" y=\"\(y0 + 4)\" width=\"\(w)\" height=\"20\" fill=\"\(kind.1)\">"
                    s += "<title>\(e(f.label)) \(kind.0) \(BoardText.yuan(v)) 元</title></rect>"
                    x += w
                }
            }
            s += "<text class=\"v\" x=\"\(x + 6)\" y=\"\(y0 + 19)\">\(BoardText.yuan(f.fourReliefsFen))</text></g>\n"
        }
        s += "</svg>\n<figcaption>图2 各区域“四减”构成（元）</figcaption>\n</figure>\n"
        return s
    }

    static let reportCSS = """
        *{box-sizing:border-box}
        body{margin:0;font:16px/1.6 system-ui,-apple-system,"PingFang SC","Hiragino Sans GB","Noto Sans CJK SC","Source Han Sans SC","Microsoft YaHei",sans-serif;color:#1f2328}
        header{background:#b3261e;color:#fff;padding:1em 1rem .6em}
        header h1{margin:0;font-size:1.4em}
        header .meta{color:#fde8e6;margin:.3em 0}
        main,footer{max-width:1000px;margin:0 auto;padding:0 1rem}
        h2{font-size:1.15em;border-left:4px solid #b3261e;padding-left:.5em;margin:1.6em 0 .6em}
        .kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(220px,1fr));gap:.8em;margin-top:1em}
        .kpi{border:1px solid #d1d9e0;border-radius:8px;padding:.6em .9em;background:#f6f8fa;display:flex;flex-direction:column}
        .kpi span,.kpi small{color:#59636e}.kpi b{font-size:1.4em;font-variant-numeric:tabular-nums}
        .scroll{overflow-x:auto}
        table{border-collapse:collapse;width:100%;font-size:.95em}
        th,td{border-bottom:1px solid #d1d9e0;padding:.4em .6em;white-space:nowrap}
        thead th{background:#f6f8fa;text-align:left}
        thead th:not(:first-child){text-align:right}
        td{text-align:right;font-variant-numeric:tabular-nums}
        tbody th,tfoot th{text-align:left;font-weight:normal}
        tr.total th,tr.total td{font-weight:bold;border-top:2px solid #59636e}
        figure{margin:1em 0}
        figcaption{color:#59636e;font-size:.9em;text-align:center}
        svg.chart{max-width:100%;height:auto;font-size:13px}
        svg.chart text{fill:#1f2328}
        svg.chart text.v{fill:#59636e;font-size:12px}
        .empty{color:#59636e}
        footer{color:#59636e;font-size:.9em;border-top:1px solid #d1d9e0;margin-top:2em;padding-bottom:2em}
        """
}
