import Foundation
import Models
import ServiceKit

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

// The public disclosure board (公示, the seed's 公开查): "公开补助政策、补助标准，在线公示拟直补对象
// 名称、补助金额、补助进度，接受社会监督" (DESIGN §9). A static site — index.html with a client-side
// search, data.json and data.csv — regenerated atomically into a directory that nginx or any static
// server serves. What is shown is decided by `BoardConfig`; personal data is masked (DESIGN §3.5).

/// What the board shows (operator configuration).
public struct BoardConfig: Sendable {
    /// The page title.
    public var title: String = "惠企政策资金公示"
    /// The columns shown, in this order, in the HTML table, the CSV and the JSON rows.
    public var fields: [BoardField] = BoardField.allCases
    /// A row is taken down once its round closed more than this many days before `today`.
    public var retentionDays: Int = 180
    /// Rows per HTML page: the first page is `index.html`, the next `page-2.html`, ….
    /// `data.json` and `data.csv` always hold every row.
    public var pageRows: Int = 2_000

    public init() {}

    /// The `board-fields` setting: field names (``BoardField`` raw values) separated by commas
    /// or spaces, in the order to show, e.g. `name,uscc,programme,amount` (a YAML list
    /// `[name, uscc]` is read the same). Throws `ConfigError` naming `setting` for an unknown or
    /// repeated name, or for none at all.
    public static func parseFields(_ text: String, setting: String = "board-fields") throws(ConfigError) -> [BoardField] {
        let names = text.split { $0 == "," || $0 == " " || $0 == "\t" || $0 == "\n" }
            .map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "[]\"'")) }.filter { !$0.isEmpty }
        let known = BoardField.allCases.map(\.rawValue).joined(separator: ", ")
        var fields: [BoardField] = []
        for name in names {
            guard let field = BoardField(rawValue: name) else {
                throw ConfigError("\(setting): unknown board field \"\(name.prefix(40))\" (known: \(known))")
            }
            guard !fields.contains(field) else { throw ConfigError("\(setting): the field \(name) is listed twice") }
            fields.append(field)
        }
        guard !fields.isEmpty else { throw ConfigError("\(setting): name at least one board field (known: \(known))") }
        return fields
    }

    /// The `board-retention-days` setting: a whole number of days, 0 to 36,500, after the close
    /// of its round that a row stays on the board. Throws `ConfigError` naming `setting`.
    public static func parseRetentionDays(_ text: String, setting: String = "board-retention-days") throws(ConfigError) -> Int {
        guard let days = Int(text.trimmingCharacters(in: .whitespaces)), (0...36_500).contains(days) else {
            throw ConfigError("\(setting): must be a whole number of days from 0 to 36500, got \"\(text.prefix(40))\"")
        }
        return days
    }
}

/// A column of the board.
public enum BoardField: String, CaseIterable, Sendable {
    /// The merchant's name (masked with `Mask.name` when the merchant is a natural person).
    case name
    /// The unified social credit code, always masked with `Mask.uscc`.
    case uscc
    /// The programme's title (and, in JSON, its id).
    case programme
    /// The amount to be granted, in yuan with two decimals (JSON also has the exact fen).
    case amount
    /// The entitlement's progress: 公示中, 无异议, 有异议待处理, 异议不成立, 异议成立, 已批准, 已拨付, 拨付失败, 不予拨付.
    case status
    /// The merchant's district.
    case district
    /// The disclosure round: its id and its open/close dates.
    case round
    /// The amount paid so far (补助进度), in yuan; empty when nothing has been paid.
    case payment

    /// The column heading (zh-CN).
    public var heading: String {
        switch self {
        case .name: "市场主体名称"
        case .uscc: "统一社会信用代码"
        case .programme: "补助政策"
        case .amount: "补助金额（元）"
        case .status: "进度"
        case .district: "所属区域"
        case .round: "公示期"
        case .payment: "已拨付（元）"
        }
    }
}

/// A programme as the public sees it: the policy and its standard (公开补助政策、补助标准).
public struct BoardProgramme: Sendable {
    public var id: String
    public var title: String
    /// The authority responsible (e.g. 县财政局).
    public var authority: String
    /// Who qualifies and how much, in plain words.
    public var standard: String
    /// The kind of benefit (e.g. 一次性补助, 房租减免).
    public var benefit: String

    public init(id: String, title: String, authority: String, standard: String, benefit: String) {
        self.id = id
        self.title = title
        self.authority = authority
        self.standard = standard
        self.benefit = benefit
    }
}

/// One entitlement on the board, in the clear; `BoardSite` masks on output.
public struct BoardRow: Sendable {
    /// Not published: the entitlement id is a hash of (policy, USCC, period), so together with the
    /// masked USCC it would let anyone recover the clear code by brute force.
    public var entitlementID: String
    public var roundID: String
    public var programmeID: String
    public var merchantName: String
    /// An individual business registered under a natural person's name: the name is masked.
    public var merchantIsPerson: Bool
    /// The clear code; published only as `Mask.uscc(uscc)`.
    public var uscc: String
    public var amountFen: Int64
    /// One of 公示中, 无异议, 有异议待处理, 异议不成立, 异议成立, 已批准, 已拨付 (cash), 已落实减免 (a
    /// rent or fee waiver carried out), 已落实缓缴 (a deferral granted), 拨付失败, 不予拨付.
    public var status: String
    /// The six-digit division code.
    public var district: String
    /// Its name from the operator's table (`districts`), when the table has it.
    public var districtName: String?
    public var openedOn: CivilDate
    public var closesOn: CivilDate
    /// Paid so far; `nil` when nothing has been paid.
    public var paidFen: Int64?

    public init(
        entitlementID: String, roundID: String, programmeID: String, merchantName: String, merchantIsPerson: Bool,
        uscc: String, amountFen: Int64, status: String, district: String, openedOn: CivilDate, closesOn: CivilDate,
        paidFen: Int64? = nil, districtName: String? = nil
    ) {
        self.entitlementID = entitlementID
        self.roundID = roundID
        self.programmeID = programmeID
        self.merchantName = merchantName
        self.merchantIsPerson = merchantIsPerson
        self.uscc = uscc
        self.amountFen = amountFen
        self.status = status
        self.district = district
        self.districtName = districtName
        self.openedOn = openedOn
        self.closesOn = closesOn
        self.paidFen = paidFen
    }
}

/// The board's status once an entitlement is carried out: only cash is 已拨付 (paid out of
/// public funds); a waiver or a deferral moves no public money.
public enum BoardStatus {
    public static let paid = "已拨付"
    public static let waived = "已落实减免"
    public static let deferred = "已落实缓缴"

    public static func carriedOut(benefit: String) -> String {
        switch benefit {
        case "rent_waiver", "fee_waiver": waived
        case "deferral": deferred
        default: paid
        }
    }
}

/// Why the board or a report could not be written.
public struct BoardWriteError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var operation: String
    public var errno: Int32

    public var description: String {
        "cannot \(operation) \(path): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

/// Generates the static disclosure board.
public enum BoardSite {
    /// The file names always written into the board directory; a board of more than
    /// `BoardConfig.pageRows` rows also has `page-2.html`, `page-3.html`, ….
    public static let files = ["index.html", "data.json", "data.csv"]

    /// The file of page `n` (1-based): `index.html` for the first.
    public static func pageFile(_ n: Int) -> String { n <= 1 ? "index.html" : "page-\(n).html" }

    /// Writes the board into `directory` from an array of rows (see the streaming variant).
    public static func generate(
        programmes: [BoardProgramme], rows: [BoardRow], config: BoardConfig, generatedAt: Date, today: CivilDate,
        into directory: String
    ) throws {
        try generate(programmes: programmes, config: config, generatedAt: generatedAt, today: today, into: directory) { body in
            for r in rows { try body(r) }
        }
    }

    /// Writes `index.html` (and further pages), `data.json` and `data.csv` into `directory`,
    /// replacing what was there, streaming: `forEachRow` is called twice (once to count, once to
    /// write) and must give the same rows, in the order to show, both times — the notifier reads
    /// them through a cursor in one read transaction, so a board of millions of rows is never held
    /// in memory.
    ///
    /// Published atomically *inside* `directory` (see ``BoardFiles/publishDirectory(_:fill:)``):
    /// everything is written into a new `versions/<random>` and fsynced, then the `current`
    /// symlink is swapped to it with one `rename`, so a static server never serves a half-written
    /// board; `index.html`, `data.json`, `data.csv` and the pages are also reachable at the top of
    /// `directory` through links into `current`. Only `directory` needs to be writable (it is
    /// created, with its parents, when missing). Not to be called concurrently for the same
    /// `directory`.
    ///
    /// Rows whose round closed more than `config.retentionDays` days before `today` are taken down.
    public static func generate(
        programmes: [BoardProgramme], config: BoardConfig, generatedAt: Date, today: CivilDate, into directory: String,
        rows forEachRow: ((BoardRow) throws -> Void) throws -> Void
    ) throws {
        let fields = uniqueFields(config.fields)
        let titles = Dictionary(programmes.map { ($0.id, $0.title) }, uniquingKeysWith: { a, _ in a })
        var tally = Tally()
        try forEachRow { r in
            guard isShown(r, config: config, today: today) else { return }
            tally.add(r)
        }
        let layout = PageLayout(
            programmes: programmes, tally: tally, fields: fields, title: config.title, stamp: Timestamp.format(generatedAt),
            pageRows: max(config.pageRows, 1))
        try BoardFiles.publishDirectory(directory) { temp in
            let json = try BoardFiles.SyncedWriter(path: temp + "/data.json")
            let csv = try BoardFiles.SyncedWriter(path: temp + "/data.csv")
            json.append(jsonHead(layout))
            csv.append([0xEF, 0xBB, 0xBF])
            csv.append(csvHeader(fields))
            var page: BoardFiles.SyncedWriter?
            var pageNumber = 0
            var inPage = 0
            var written = 0
            try forEachRow { r in
                guard isShown(r, config: config, today: today) else { return }
                let p = PublicRow(r, titles: titles)
                if page == nil {
                    pageNumber += 1
                    let first = (pageNumber - 1) * layout.pageRows + 1
                    let rowsHere = min(layout.pageRows, max(layout.total - first + 1, 1))
                    page = try BoardFiles.SyncedWriter(path: temp + "/" + pageFile(pageNumber))
                    page!.append(htmlHead(layout, page: pageNumber, rowsHere: rowsHere))
                }
                page!.append(htmlRow(p, fields))
                inPage += 1
                if inPage == layout.pageRows {
                    page!.append(htmlFoot(layout, page: pageNumber, hasRows: true))
                    try page!.finish()
                    page = nil
                    inPage = 0
                }
                json.append(written == 0 ? [] : [UInt8(ascii: ",")])
                json.append(jsonRow(p, fields))
                csv.append(csvRow(p, fields))
                written += 1
            }
            if let open = page {
                open.append(htmlFoot(layout, page: pageNumber, hasRows: true))
                try open.finish()
            } else if pageNumber == 0 {
                let index = try BoardFiles.SyncedWriter(path: temp + "/index.html")
                index.append(htmlHead(layout, page: 1, rowsHere: 0))
                index.append(htmlFoot(layout, page: 1, hasRows: false))
                try index.finish()
            }
            json.append(Array("]}\n".utf8))
            try json.finish()
            try csv.finish()
        }
    }

    /// Whether a row is still shown on `today` (not yet past its retention period).
    public static func isShown(_ row: BoardRow, config: BoardConfig, today: CivilDate) -> Bool {
        today.dayNumber - row.closesOn.dayNumber <= config.retentionDays
    }

    /// Rows shown, in all and per programme (count and amount), from the counting pass.
    struct Tally {
        var total = 0
        var rows: [String: Int] = [:]
        var fen: [String: Int64] = [:]

        mutating func add(_ r: BoardRow) {
            total += 1
            rows[r.programmeID, default: 0] += 1
            fen[r.programmeID, default: 0] &+= r.amountFen
        }
    }

    /// What every page shares.
    struct PageLayout {
        var programmes: [BoardProgramme]
        var tally: Tally
        var fields: [BoardField]
        var title: String
        var stamp: String
        var pageRows: Int
        var total: Int { tally.total }
        var pages: Int { max(1, (tally.total + pageRows - 1) / pageRows) }
    }

    private static func uniqueFields(_ fields: [BoardField]) -> [BoardField] {
        var seen = Set<BoardField>()
        return fields.filter { seen.insert($0).inserted }
    }

    /// A row as published: masked, with the programme's title resolved.
    struct PublicRow {
        var name: String
        var uscc: String
        var programmeID: String
        var programme: String
        var amountFen: Int64
        var status: String
        /// The division's name, or its code when the operator's table does not have it.
        var district: String
        var districtCode: String
        var districtName: String?
        var roundID: String
        var openedOn: CivilDate
        var closesOn: CivilDate
        var paidFen: Int64?

        init(_ r: BoardRow, titles: [String: String]) {
            name = r.merchantIsPerson ? Mask.name(r.merchantName) : r.merchantName
            uscc = Mask.uscc(r.uscc)
            programmeID = r.programmeID
            programme = titles[r.programmeID] ?? r.programmeID
            amountFen = r.amountFen
            status = r.status
            district = r.districtName ?? r.district
            districtCode = r.district
            districtName = r.districtName
            roundID = r.roundID
            openedOn = r.openedOn
            closesOn = r.closesOn
            paidFen = r.paidFen
        }

        /// What the search box matches: the visible name, USCC, programme and district.
        func searchText(_ fields: [BoardField]) -> String {
            var parts: [String] = []
            if fields.contains(.name) { parts.append(name) }
            if fields.contains(.uscc) { parts.append(uscc) }
            if fields.contains(.programme) { parts.append(programme) }
            if fields.contains(.district) { parts.append(district) }
            return parts.joined(separator: " ").lowercased()
        }
    }

    // MARK: HTML

    /// A page up to its first row (or its "nothing to show" line when the board is empty).
    static func htmlHead(_ l: PageLayout, page: Int, rowsHere: Int) -> String {
        let e = BoardText.html
        var h = ""
        h.reserveCapacity(8192)
        h += """
            <!DOCTYPE html>
            <html lang="zh-CN">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(e(l.title))\(l.pages > 1 ? e("（第 \(page) 页）") : "")</title>
            <style>\(boardCSS)</style>
            </head>
            <body>
            <header>
            <h1>\(e(l.title))</h1>
            <p class="meta">更新时间：<time datetime="\(e(l.stamp))">\(e(BoardText.displayTime(l.stamp)))</time>（北京时间）</p>
            </header>
            <main>

            """
        // The programmes: policy, authority and standard (公开补助政策、补助标准).
        h += "<section id=\"programmes\">\n<h2>补助政策与标准</h2>\n"
        if l.programmes.isEmpty { h += "<p class=\"empty\">暂无补助政策。</p>\n" }
        for p in l.programmes {
            h += "<article class=\"programme\">\n<h3>\(e(p.title))</h3>\n<dl>\n"
            h += "<dt>主管部门</dt><dd>\(e(p.authority))</dd>\n"
            h += "<dt>补助方式</dt><dd>\(e(p.benefit))</dd>\n"
            h += "<dt>补助标准</dt><dd class=\"standard\">\(e(p.standard))</dd>\n"
            var listed = "\(l.tally.rows[p.id] ?? 0) 户"
            if l.fields.contains(.amount) {
                listed += "，合计 \(BoardText.yuan(l.tally.fen[p.id] ?? 0)) 元"
            }
            h += "<dt>公示对象</dt><dd>\(e(listed))</dd>\n</dl>\n</article>\n"
        }
        h += "</section>\n"

        // The rows, with a search box.
        h += """
            <section id="list">
            <h2>拟补助对象公示</h2>
            <div class="search">
            <label for="q">搜索</label>
            <input type="search" id="q" name="q" placeholder="名称、信用代码、政策或区域" autocomplete="off">
            </div>

            """
        if l.pages > 1 {
            let first = (page - 1) * l.pageRows + 1
            h += "<p class=\"meta\">共 \(l.total) 条，分 \(l.pages) 页；本页第 \(first)–\(first + rowsHere - 1) 条，搜索只在本页内进行，"
            h += "全部数据请下载 <a href=\"data.csv\" download>CSV</a>。</p>\n"
            h += pageNav(l, page: page)
        }
        h += "<p id=\"count\" class=\"meta\">共 \(l.pages > 1 ? rowsHere : l.total) 条</p>\n"
        if rowsHere == 0 {
            h += "<p class=\"empty\">暂无公示信息。</p>\n"
        } else {
            h += "<div class=\"scroll\">\n<table class=\"board\">\n<thead><tr>"
            for f in l.fields {
                h += "<th scope=\"col\" class=\"c-\(f.rawValue)\">\(e(f.heading))</th>"
            }
            h += "</tr></thead>\n<tbody>\n"
        }
        return h
    }

    /// Links to the first, previous, nearby, next and last pages.
    static func pageNav(_ l: PageLayout, page: Int) -> String {
        var h = "<nav class=\"pages\" aria-label=\"分页\">"
        func link(_ n: Int, _ text: String) {
            h += n == page ? "<span class=\"here\">\(text)</span> " : "<a href=\"\(pageFile(n))\">\(text)</a> "
        }
        if page > 1 {
            link(1, "首页")
            link(page - 1, "上一页")
        }
        for n in max(1, page - 5)...min(l.pages, page + 5) { link(n, String(n)) }
        if page < l.pages {
            link(page + 1, "下一页")
            link(l.pages, "末页")
        }
        return h + "</nav>\n"
    }

    static func htmlRow(_ r: PublicRow, _ fields: [BoardField]) -> String {
        let e = BoardText.html
        var h = "<tr class=\"row\" data-search=\"\(e(r.searchText(fields)))\">"
        for f in fields {
            h += "<td class=\"c-\(f.rawValue)\" data-label=\"\(e(f.heading))\">\(htmlCell(r, f))</td>"
        }
        return h + "</tr>\n"
    }

    /// A page after its last row.
    static func htmlFoot(_ l: PageLayout, page: Int, hasRows: Bool) -> String {
        var h = ""
        if hasRows {
            h += "</tbody>\n</table>\n</div>\n"
            h += "<p id=\"nomatch\" class=\"empty\" hidden>没有符合条件的公示信息。</p>\n"
            if l.pages > 1 { h += pageNav(l, page: page) }
        }
        h += """
            </section>
            </main>
            <footer>
            <p>公示期内对公示内容有异议的，可向主管部门反映。涉及自然人的姓名等个人信息已按规定脱敏显示。</p>
            <p>数据下载：<a href="data.csv" download>CSV</a> · <a href="data.json">JSON</a></p>
            </footer>
            <script>\(boardJS)</script>
            </body>
            </html>

            """
        return h
    }

    private static func htmlCell(_ r: PublicRow, _ f: BoardField) -> String {
        let e = BoardText.html
        switch f {
        case .name: return e(r.name)
        case .uscc: return "<span class=\"code\">\(e(r.uscc))</span>"
        case .programme: return e(r.programme)
        case .amount: return BoardText.yuan(r.amountFen)
        case .status: return "<span class=\"st \(statusClass(r.status))\">\(e(r.status))</span>"
        case .district: return e(r.district)
        case .round:
            return "<span class=\"nw\">\(r.openedOn)</span> 至 <span class=\"nw\">\(r.closesOn)</span><br>"
                + "<span class=\"rid\">\(e(r.roundID))</span>"
        case .payment: return r.paidFen.map { BoardText.yuan($0) } ?? "—"
        }
    }

    private static func statusClass(_ s: String) -> String {
        switch s {
        case "公示中": "st-open"
        case "无异议", "异议不成立", "已批准": "st-ok"
        case "有异议待处理": "st-held"
        case "异议成立", "拨付失败", "不予拨付": "st-bad"
        case BoardStatus.paid, BoardStatus.waived, BoardStatus.deferred: "st-paid"
        default: "st-other"
        }
    }

    // MARK: JSON

    /// The document up to the rows' opening bracket: `{"title":…,"programmes":[…],"rows":[`.
    static func jsonHead(_ l: PageLayout) -> [UInt8] {
        var doc = JSONObject()
        doc["title"] = .string(l.title)
        doc["generated_at"] = .string(l.stamp)
        doc["fields"] = .array(l.fields.map { .string($0.rawValue) })
        doc["programmes"] = .array(
            l.programmes.map { p in
                var o = JSONObject()
                o["id"] = .string(p.id)
                o["title"] = .string(p.title)
                o["authority"] = .string(p.authority)
                o["benefit"] = .string(p.benefit)
                o["standard"] = .string(p.standard)
                o["rows"] = .int(Int64(l.tally.rows[p.id] ?? 0))
                return .object(o)
            })
        doc["rows"] = .array([])
        var out = JSON.object(doc).serializedBytes()
        // Serialised in insertion order, so the text ends with `"rows":[]}`: reopen the array.
        out.removeLast(2)
        return out
    }

    static func jsonRow(_ r: PublicRow, _ fields: [BoardField]) -> [UInt8] {
        var o = JSONObject()
        for f in fields {
            switch f {
            case .name: o["name"] = .string(r.name)
            case .uscc: o["uscc"] = .string(r.uscc)
            case .programme:
                o["programme_id"] = .string(r.programmeID)
                o["programme"] = .string(r.programme)
            case .amount:
                o["amount_fen"] = .int(r.amountFen)
                o["amount_yuan"] = .string(BoardText.yuan(r.amountFen, grouped: false))
            case .status: o["status"] = .string(r.status)
            case .district:
                // The code, as the registry gave it, and the name when the operator's table has it.
                o["district"] = .string(r.districtCode)
                if let name = r.districtName { o["district_name"] = .string(name) }
            case .round:
                o["round_id"] = .string(r.roundID)
                o["opened_on"] = .string(r.openedOn.description)
                o["closes_on"] = .string(r.closesOn.description)
            case .payment:
                o["paid_fen"] = r.paidFen.map { .int($0) } ?? .null
                o["paid_yuan"] = r.paidFen.map { .string(BoardText.yuan($0, grouped: false)) } ?? .null
            }
        }
        return JSON.object(o).serializedBytes()
    }

    // MARK: CSV

    /// RFC 4180 text with CRLF line ends (the caller prepends the UTF-8 byte order mark so that
    /// Excel opens it as UTF-8). Amounts are plain decimals without grouping (`1234.56`).
    static func csvHeader(_ fields: [BoardField]) -> String {
        var header: [String] = []
        for f in fields {
            switch f {
            case .round: header += ["公示批次", "公示开始日期", "公示截止日期"]
            default: header.append(f.heading)
            }
        }
        return BoardText.csvLine(header)
    }

    static func csvRow(_ r: PublicRow, _ fields: [BoardField]) -> String {
        var cells: [String] = []
        for f in fields {
            switch f {
            case .name: cells.append(BoardText.csvText(r.name))
            case .uscc: cells.append(BoardText.csvText(r.uscc))
            case .programme: cells.append(BoardText.csvText(r.programme))
            case .amount: cells.append(BoardText.yuan(r.amountFen, grouped: false))
            case .status: cells.append(BoardText.csvText(r.status))
            case .district: cells.append(BoardText.csvText(r.district))
            case .round:
                cells += [BoardText.csvText(r.roundID), r.openedOn.description, r.closesOn.description]
            case .payment: cells.append(r.paidFen.map { BoardText.yuan($0, grouped: false) } ?? "")
            }
        }
        return BoardText.csvLine(cells)
    }

    // MARK: assets (inline: the board works offline, with no external requests)

    static let boardCSS = """
        :root{color-scheme:light;--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--accent:#b3261e;--bg2:#f6f8fa}
        *{box-sizing:border-box}
        body{margin:0;font:16px/1.6 system-ui,-apple-system,"PingFang SC","Hiragino Sans GB","Noto Sans CJK SC","Source Han Sans SC","Microsoft YaHei",sans-serif;color:var(--fg);background:#fff}
        header{background:var(--accent);color:#fff;padding:1em 1rem .6em}
        header h1{margin:0;font-size:1.5em}
        header .meta{color:#fde8e6}
        main,footer{max-width:1200px;margin:0 auto;padding:0 1rem}
        h2{font-size:1.2em;border-left:4px solid var(--accent);padding-left:.5em;margin:1.4em 0 .6em}
        .meta{color:var(--muted);font-size:.9em;margin:.3em 0}
        #programmes{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:.8em}
        #programmes h2{grid-column:1/-1}
        .programme{border:1px solid var(--line);border-radius:8px;padding:.6em .9em;background:var(--bg2)}
        .programme h3{margin:.2em 0 .4em;font-size:1.05em}
        .programme dl{display:grid;grid-template-columns:auto 1fr;gap:.2em .8em;margin:0}
        .programme dt{color:var(--muted)}
        .programme dd{margin:0}
        .standard{white-space:pre-line}
        .search{display:flex;gap:.5em;align-items:center}
        .search input{flex:1;font:inherit;padding:.45em .6em;border:1px solid var(--line);border-radius:6px;min-width:0}
        .scroll{overflow-x:auto}
        table.board{border-collapse:collapse;width:100%;font-size:.95em}
        table.board th,table.board td{border-bottom:1px solid var(--line);padding:.45em .6em;text-align:left;vertical-align:top}
        table.board th{background:var(--bg2);white-space:nowrap}
        table.board .c-amount,table.board .c-payment{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
        .code{font-family:ui-monospace,"SFMono-Regular",Menlo,Consolas,monospace;white-space:nowrap}
        .rid{color:var(--muted);font-size:.85em;overflow-wrap:anywhere}
        .nw{white-space:nowrap}
        .st{display:inline-block;padding:0 .5em;border-radius:1em;font-size:.9em;white-space:nowrap;background:#eef1f4}
        .st-open{background:#fff4d6;color:#7a5200}.st-ok{background:#e3f4e8;color:#1a6b34}.st-held{background:#ffe8cc;color:#8a4500}
        .st-bad{background:#fde3e1;color:#a11d15}.st-paid{background:#ddeeff;color:#0b4f94}
        .empty{color:var(--muted)}
        nav.pages{margin:.6em 0;display:flex;flex-wrap:wrap;gap:.2em .5em}
        nav.pages .here{font-weight:bold}
        [hidden]{display:none!important}
        footer{color:var(--muted);font-size:.9em;border-top:1px solid var(--line);margin-top:2em;padding-bottom:2em}
        @media (max-width:640px){
        table.board thead{display:none}
        table.board tr{display:block;border:1px solid var(--line);border-radius:8px;margin:0 0 .7em;padding:.4em .7em}
        table.board td{display:flex;justify-content:space-between;gap:1em;border:0;padding:.15em 0;text-align:right}
        table.board td::before{content:attr(data-label);color:var(--muted);text-align:left;flex:none}
        table.board td.c-amount,table.board td.c-payment{white-space:normal}
        }
        """

    /// Filters rows by the search box; `?q=` in the URL pre-fills it. Every whitespace-separated
    /// term must occur (case-insensitively) in the row's visible name, USCC, programme or district.
    static let boardJS = """
        (function(){
        var input=document.getElementById('q');
        var rows=Array.prototype.slice.call(document.querySelectorAll('tr.row'));
        var count=document.getElementById('count');
        var none=document.getElementById('nomatch');
        function apply(){
        var terms=input.value.toLowerCase().split(/\\s+/).filter(function(t){return t.length>0;});
        var n=0;
        rows.forEach(function(r){
        var s=r.getAttribute('data-search')||'';
        var ok=terms.every(function(t){return s.indexOf(t)>=0;});
        r.hidden=!ok;
        if(ok){n++;}
        });
        count.textContent=terms.length?('找到 '+n+' 条（共 '+rows.length+' 条）'):('共 '+rows.length+' 条');
        if(none){none.hidden=n>0;}
        }
        var q='';
        try{q=new URLSearchParams(window.location.search).get('q')||'';}catch(e){}
        if(q){input.value=q;}
        input.addEventListener('input',function(){
        apply();
        try{var u=new URL(window.location.href);if(input.value){u.searchParams.set('q',input.value);}else{u.searchParams.delete('q');}
        history.replaceState(null,'',u.toString());}catch(e){}
        });
        apply();
        })();
        """
}

// MARK: - Text helpers (shared with MonthlyReport)

enum BoardText {
    /// Escapes text for HTML element content and quoted attribute values (also valid in inline SVG).
    static func html(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// Yuan with exactly two decimals from integer fen, e.g. 123456 → "1,234.56" (or "1234.56"
    /// without grouping). Never goes through floating point.
    static func yuan(_ fen: Int64, grouped: Bool = true) -> String {
        let m = fen.magnitude
        let whole = String(m / 100)
        let cents = m % 100
        var intPart = ""
        if grouped {
            for (i, ch) in whole.enumerated() {
                if i > 0, (whole.count - i) % 3 == 0 { intPart.append(",") }
                intPart.append(ch)
            }
        } else {
            intPart = whole
        }
        return (fen < 0 ? "-" : "") + intPart + "." + (cents < 10 ? "0" : "") + String(cents)
    }

    /// A text cell for CSV: a value starting with `=`, `+`, `-`, `@`, tab or CR would be run as a
    /// formula by spreadsheet programs, so it is prefixed with `'` (OWASP "CSV injection").
    static func csvText(_ s: String) -> String {
        if let f = s.unicodeScalars.first, ["=", "+", "-", "@", "\t", "\r"].contains(f) { return "'" + s }
        return s
    }

    /// Quotes a CSV cell if it contains a comma, a quote, CR or LF (quotes doubled), per RFC 4180.
    static func csvCell(_ s: String) -> String {
        let needs = s.unicodeScalars.contains { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }
        guard needs else { return s }
        return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// One CSV record ending in CRLF.
    static func csvLine(_ cells: [String]) -> String {
        cells.map(csvCell).joined(separator: ",") + "\r\n"
    }

    /// "2022-05-08T10:00:00.000+08:00" → "2022-05-08 10:00:00".
    static func displayTime(_ rfc3339: String) -> String {
        let c = Array(rfc3339)
        guard c.count >= 19 else { return rfc3339 }
        return String(c[0..<10]) + " " + String(c[11..<19])
    }
}

// MARK: - Durable, atomic file output (shared with MonthlyReport)

enum BoardFiles {
    static func randomSuffix() -> String {
        let v = UInt64.random(in: 0...UInt64.max)
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }

    /// Writes `bytes` to a new file at `path` (mode 0644) and fsyncs it.
    static func writeSynced(_ bytes: [UInt8], to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw BoardWriteError(path: path, operation: "create", errno: errno) }
        // Readable by the static server whatever the service's umask (the unit's is 0007).
        _ = fchmod(fd, 0o644)
        var ok = false
        defer {
            close(fd)
            if !ok { unlink(path) }
        }
        var offset = 0
        try bytes.withUnsafeBytes { buf in
            while offset < buf.count {
                let n = write(fd, buf.baseAddress! + offset, buf.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw BoardWriteError(path: path, operation: "write", errno: errno)
                }
                offset += n
            }
        }
        guard fsync(fd) == 0 else { throw BoardWriteError(path: path, operation: "fsync", errno: errno) }
        ok = true
    }

    /// A file written through a 1 MiB buffer and fsynced by `finish()`; closed (and, unless
    /// finished, removed) when released.
    final class SyncedWriter {
        let path: String
        private let fd: Int32
        private var buffer: [UInt8] = []
        private var error: BoardWriteError?
        private var finished = false
        static let flushAt = 1 << 20

        init(path: String) throws {
            self.path = path
            fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw BoardWriteError(path: path, operation: "create", errno: errno) }
            _ = fchmod(fd, 0o644)
            buffer.reserveCapacity(Self.flushAt + 65_536)
        }

        deinit {
            close(fd)
            if !finished { unlink(path) }
        }

        func append(_ bytes: [UInt8]) {
            buffer += bytes
            if buffer.count >= Self.flushAt { flush() }
        }

        func append(_ text: String) {
            buffer.append(contentsOf: text.utf8)
            if buffer.count >= Self.flushAt { flush() }
        }

        /// Writes the buffer out; the first failure is kept and thrown by `finish()`.
        private func flush() {
            guard error == nil else {
                buffer.removeAll(keepingCapacity: true)
                return
            }
            var offset = 0
            buffer.withUnsafeBytes { buf in
                while offset < buf.count {
                    let n = write(fd, buf.baseAddress! + offset, buf.count - offset)
                    if n < 0 {
                        if errno == EINTR { continue }
                        error = BoardWriteError(path: path, operation: "write", errno: errno)
                        return
                    }
                    offset += n
                }
            }
            buffer.removeAll(keepingCapacity: true)
        }

        func finish() throws {
            flush()
            if let error { throw error }
            guard fsync(fd) == 0 else { throw BoardWriteError(path: path, operation: "fsync", errno: errno) }
            finished = true
        }
    }

    /// fsyncs a directory so that renames and new entries in it are durable (best effort).
    static func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        close(fd)
    }

    static func parent(of path: String) -> String {
        let p = (path as NSString).deletingLastPathComponent
        return p.isEmpty ? "." : p
    }

    /// Writes `path` via `<path>.tmp-<random>` + fsync + rename.
    static func replaceFile(_ path: String, bytes: [UInt8]) throws {
        let temp = path + ".tmp-" + randomSuffix()
        try writeSynced(bytes, to: temp)
        guard rename(temp, path) == 0 else {
            let e = errno
            unlink(temp)
            throw BoardWriteError(path: path, operation: "rename into", errno: e)
        }
        syncDirectory(parent(of: path))
    }

    /// The subdirectory of a published directory that holds its versions.
    static let versionsName = "versions"
    /// The symlink naming the version being served.
    static let currentName = "current"

    /// Publishes a new version of a site inside `directoryPath`, so that only that directory
    /// needs to be writable (a hardened unit grants `ReadWritePaths=` to it alone; nothing is
    /// created beside it):
    ///
    /// 1. `fill` writes the files into a new `versions/<random>`, which is fsynced;
    /// 2. `current`, a symlink to the version served, is swapped to it atomically (a new link
    ///    renamed over the old one);
    /// 3. every file of the version is also reachable at the top, through a link
    ///    `<name> -> current/<name>` (made once, when a name first appears); links to names the
    ///    new version lacks (the pages of a longer board) are removed, as are the plain files a
    ///    board written before this layout left there;
    /// 4. every other version is removed.
    ///
    /// A static server may serve `<directory>/current` (one switch for the whole site) or
    /// `<directory>` itself (through the links). If `fill` throws, its version is removed and
    /// what was served stays. `directoryPath` is created, with its parents, only when missing.
    static func publishDirectory(_ directoryPath: String, fill: (String) throws -> Void) throws {
        var directory = directoryPath
        while directory.count > 1, directory.hasSuffix("/") { directory.removeLast() }
        var st = stat()
        if stat(directory, &st) != 0 {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            _ = chmod(directory, 0o755)
        } else if (st.st_mode & S_IFMT) != S_IFDIR {
            throw BoardWriteError(path: directory, operation: "publish into", errno: ENOTDIR)
        }
        let versions = directory + "/" + versionsName
        if mkdir(versions, 0o755) == 0 {
            _ = chmod(versions, 0o755)
        } else if errno != EEXIST {
            throw BoardWriteError(path: versions, operation: "create directory", errno: errno)
        }
        let current = directory + "/" + currentName
        let served = readLink(current)
        removeLeftovers(in: directory, versions: versions, keeping: served)

        let id = randomSuffix()
        let version = versions + "/" + id
        guard mkdir(version, 0o755) == 0 else { throw BoardWriteError(path: version, operation: "create directory", errno: errno) }
        _ = chmod(version, 0o755)
        do {
            try fill(version)
            syncDirectory(version)
            syncDirectory(versions)
        } catch {
            try? FileManager.default.removeItem(atPath: version)
            throw error
        }
        do {
            try replaceLink(at: current, target: versionsName + "/" + id, in: directory)
        } catch {
            try? FileManager.default.removeItem(atPath: version)
            throw error
        }
        syncDirectory(directory)

        // The top-level names: a link into `current` for each file of the new version.
        let names = Set((try? FileManager.default.contentsOfDirectory(atPath: version)) ?? [])
        for name in names.sorted() {
            let target = currentName + "/" + name
            if readLink(directory + "/" + name) != target { try replaceLink(at: directory + "/" + name, target: target, in: directory) }
        }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where !names.contains(name) {
            let path = directory + "/" + name
            if let target = readLink(path), target.hasPrefix(currentName + "/") {
                unlink(path)
            } else if isGeneratedPage(name), lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG {
                unlink(path)
            }
        }
        for old in (try? FileManager.default.contentsOfDirectory(atPath: versions)) ?? [] where old != id {
            try? FileManager.default.removeItem(atPath: versions + "/" + old)
        }
        syncDirectory(directory)
    }

    /// A file name the board writes (a page, or one of the downloads), left as a plain file by a
    /// board written before the `current` layout.
    static func isGeneratedPage(_ name: String) -> Bool {
        if BoardSite.files.contains(name) { return true }
        guard name.hasPrefix("page-"), name.hasSuffix(".html") else { return false }
        let n = name.dropFirst(5).dropLast(5)
        return !n.isEmpty && n.allSatisfy { $0 >= "0" && $0 <= "9" }
    }

    /// The target of the symlink at `path`, or `nil` if it is not a symlink.
    static func readLink(_ path: String) -> String? {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink(path, &buf, buf.count - 1)
        guard n >= 0 else { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Points the symlink at `path` to `target`, atomically: a new link under a temporary name in
    /// `directory`, renamed over `path` (whatever file or link was there).
    static func replaceLink(at path: String, target: String, in directory: String) throws {
        let temp = directory + "/.link.tmp-" + randomSuffix()
        guard symlink(target, temp) == 0 else { throw BoardWriteError(path: temp, operation: "create link", errno: errno) }
        guard rename(temp, path) == 0 else {
            let e = errno
            unlink(temp)
            throw BoardWriteError(path: path, operation: "rename into", errno: e)
        }
    }

    /// Removes what an interrupted publication left: versions other than the one served, and
    /// temporary links.
    private static func removeLeftovers(in directory: String, versions: String, keeping served: String?) {
        let fm = FileManager.default
        let keep = served.map { ($0 as NSString).lastPathComponent }
        for name in (try? fm.contentsOfDirectory(atPath: versions)) ?? [] where name != keep {
            try? fm.removeItem(atPath: versions + "/" + name)
        }
        for name in (try? fm.contentsOfDirectory(atPath: directory)) ?? [] where name.hasPrefix(".link.tmp-") {
            unlink(directory + "/" + name)
        }
    }
}
