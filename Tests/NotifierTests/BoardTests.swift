import Foundation
import Models
import Testing

@testable import Notifier

@Suite("Disclosure board (公示)")
struct BoardTests {
    // MARK: fixtures

    static let today = CivilDate(year: 2022, month: 6, day: 1)!
    static let generatedAt = Timestamp.parse("2022-06-01T09:30:00+08:00")!

    static let programmes = [
        BoardProgramme(
            id: "rent-2022", title: "国有房屋租金减免", authority: "县国资局",
            standard: "承租国有房屋的服务业小微企业和个体工商户\n减免3个月租金", benefit: "房租减免"),
        BoardProgramme(
            id: "catering-2022", title: "餐饮业一次性补助", authority: "县商务局", standard: "受疫情影响停业的餐饮个体工商户，每户2000元",
            benefit: "一次性补助"),
    ]

    static func row(
        _ id: String, name: String, person: Bool = false, uscc: String = "91410102MA9XYZ1234", programme: String = "catering-2022",
        amountFen: Int64 = 200_000, status: String = "公示中", district: String = "城关镇",
        opened: CivilDate = CivilDate(year: 2022, month: 5, day: 25)!, closes: CivilDate = CivilDate(year: 2022, month: 5, day: 31)!,
        paidFen: Int64? = nil, districtName: String? = nil
    ) -> BoardRow {
        BoardRow(
            entitlementID: id, roundID: "round-\(programme)-1", programmeID: programme, merchantName: name, merchantIsPerson: person,
            uscc: uscc, amountFen: amountFen, status: status, district: district, openedOn: opened, closesOn: closes, paidFen: paidFen,
            districtName: districtName)
    }

    /// What a board directory holds besides its pages: the versions, the link to the one served,
    /// and links to its files.
    static let layout = BoardSite.files + ["current", "versions"]

    /// A fresh directory under the system temp directory; the board goes into `<it>/board`.
    static func scratch() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("board-tests-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    struct Output {
        var html: String
        var json: String
        var csvBytes: [UInt8]
        var csv: String { String(decoding: csvBytes.dropFirst(3), as: UTF8.self) }
        var all: [String] { [html, json, csv] }
        var document: JSON { try! JSONParser.parse(json) }
        var jsonRows: [JSON] { document["rows"]?.arrayValue ?? [] }
    }

    static func generate(
        rows: [BoardRow], config: BoardConfig = BoardConfig(), programmes: [BoardProgramme] = programmes, into dir: String? = nil
    ) throws -> Output {
        let root = dir == nil ? try scratch() : nil
        defer { if let root { remove(root) } }
        let base = dir ?? root! + "/board"
        try BoardSite.generate(
            programmes: programmes, rows: rows, config: config, generatedAt: generatedAt, today: today, into: base)
        return try read(base)
    }

    static func remove(_ dir: String) {
        try? FileManager.default.removeItem(atPath: dir)
    }

    static func read(_ dir: String) throws -> Output {
        func bytes(_ name: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/" + name))) }
        return Output(
            html: String(decoding: try bytes("index.html"), as: UTF8.self),
            json: String(decoding: try bytes("data.json"), as: UTF8.self),
            csvBytes: try bytes("data.csv"))
    }

    /// RFC 4180 records (CRLF between records; quoted cells may hold commas, quotes and newlines).
    static func parseCSV(_ text: String) -> [[String]] {
        var records: [[String]] = []
        var record: [String] = []
        var cell = ""
        var quoted = false
        var chars = Array(text.unicodeScalars)[...]
        while let c = chars.popFirst() {
            if quoted {
                if c == "\"" {
                    if chars.first == "\"" {
                        cell.unicodeScalars.append("\"")
                        chars.removeFirst()
                    } else {
                        quoted = false
                    }
                } else {
                    cell.unicodeScalars.append(c)
                }
            } else if c == "\"" {
                quoted = true
            } else if c == "," {
                record.append(cell)
                cell = ""
            } else if c == "\r", chars.first == "\n" {
                chars.removeFirst()
                record.append(cell)
                records.append(record)
                record = []
                cell = ""
            } else {
                cell.unicodeScalars.append(c)
            }
        }
        if !cell.isEmpty || !record.isEmpty { records.append(record + [cell]) }
        return records
    }

    static func count(_ needle: String, in haystack: String) -> Int {
        haystack.components(separatedBy: needle).count - 1
    }

    // MARK: money

    @Test func yuanIsExactIntegerFormatting() {
        #expect(BoardText.yuan(123_456) == "1,234.56")
        #expect(BoardText.yuan(123_456, grouped: false) == "1234.56")
        #expect(BoardText.yuan(0) == "0.00")
        #expect(BoardText.yuan(5) == "0.05")
        #expect(BoardText.yuan(99) == "0.99")
        #expect(BoardText.yuan(100) == "1.00")
        #expect(BoardText.yuan(100_000) == "1,000.00")
        #expect(BoardText.yuan(99_999) == "999.99")
        #expect(BoardText.yuan(100_000_000_01) == "100,000,000.01")
        #expect(BoardText.yuan(-150) == "-1.50")
        #expect(BoardText.yuan(Int64.max) == "92,233,720,368,547,758.07")
        #expect(BoardText.yuan(Int64.min) == "-92,233,720,368,547,758.08")
    }

    // MARK: masking

    @Test func personalDataIsMaskedInEveryFile() throws {
        let personUSCC = "92410102MA45PQ7X8K"
        let companyUSCC = "91410102MA9XYZ1234"
        let out = try Self.generate(rows: [
            Self.row("ent-1", name: "张三丰", person: true, uscc: personUSCC),
            Self.row("ent-2", name: "欧阳娜娜", person: true, uscc: "92410102MA45PQ7Y9L"),
            Self.row("ent-3", name: "郑州市好味道餐饮有限公司", uscc: companyUSCC),
        ])
        for (file, text) in zip(["index.html", "data.json", "data.csv"], out.all) {
            for clear in [personUSCC, companyUSCC, "92410102MA45PQ7Y9L", "张三丰", "欧阳娜娜"] {
                #expect(!text.contains(clear), "\(file) contains the clear value \(clear)")
            }
            #expect(text.contains(Mask.uscc(personUSCC)), "\(file) lacks the masked USCC")
            #expect(text.contains("张*丰"), "\(file) lacks the masked name")
            #expect(text.contains("欧**娜"), "\(file) lacks the masked name")
            #expect(text.contains("郑州市好味道餐饮有限公司"), "\(file): an enterprise's name is public")
            // The entitlement id is a hash of the clear USCC: never published.
            #expect(!text.contains("ent-1"), "\(file) contains an entitlement id")
        }
        #expect(Mask.uscc(personUSCC) == "924101**********8K")
        #expect(out.jsonRows.first?["uscc"] == "924101**********8K")
        #expect(out.jsonRows.first?["name"] == "张*丰")
    }

    // MARK: configured fields

    @Test func onlyConfiguredFieldsAreShown() throws {
        var config = BoardConfig()
        config.fields = [.name, .programme, .status, .district]
        let out = try Self.generate(
            rows: [Self.row("e1", name: "某某商行", amountFen: 345_678, paidFen: 345_678)], config: config)
        // No amount, USCC, round or payment column anywhere.
        for text in out.all {
            #expect(!text.contains("3,456.78"))
            #expect(!text.contains("3456.78"))
            #expect(!text.contains("345678"))
            #expect(!text.contains(Mask.uscc("91410102MA9XYZ1234")))
            #expect(!text.contains("round-catering-2022-1"))
            #expect(!text.contains(BoardField.amount.heading))
            #expect(!text.contains(BoardField.uscc.heading))
        }
        #expect(!out.html.contains("<td class=\"c-amount\""))
        #expect(!out.html.contains("<th scope=\"col\" class=\"c-amount\""))
        #expect(!out.html.contains("合计"), "programme totals are amounts too")
        #expect(Self.parseCSV(out.csv).first == ["市场主体名称", "补助政策", "进度", "所属区域"])
        #expect(out.jsonRows.first?.objectValue?.keys == ["name", "programme_id", "programme", "status", "district"])
        #expect(out.document["fields"] == ["name", "programme", "status", "district"])
        #expect(Self.count("<th scope=\"col\"", in: out.html) == 4)
    }

    @Test func fieldsFollowTheConfiguredOrder() throws {
        var config = BoardConfig()
        config.fields = [.amount, .name, .amount]
        let out = try Self.generate(rows: [Self.row("e1", name: "某某商行", amountFen: 123_456)], config: config)
        #expect(Self.parseCSV(out.csv) == [["补助金额（元）", "市场主体名称"], ["1234.56", "某某商行"]])
        #expect(out.jsonRows.first?.objectValue?.keys == ["amount_fen", "amount_yuan", "name"])
        #expect(out.html.contains("<td class=\"c-amount\" data-label=\"补助金额（元）\">1,234.56</td>"))
    }

    @Test func allFieldsInJSONAndCSV() throws {
        let out = try Self.generate(rows: [
            Self.row("e1", name: "李记面馆", amountFen: 200_000, status: "已拨付", paidFen: 200_000),
            Self.row("e2", name: "王记面馆", amountFen: 150_050, status: "已批准"),
        ])
        let first = try #require(out.jsonRows.first?.objectValue)
        #expect(
            first.keys == [
                "name", "uscc", "programme_id", "programme", "amount_fen", "amount_yuan", "status", "district", "round_id",
                "opened_on", "closes_on", "paid_fen", "paid_yuan",
            ])
        #expect(first["amount_fen"] == .int(200_000))
        #expect(first["amount_yuan"] == "2000.00")
        #expect(first["paid_yuan"] == "2000.00")
        #expect(first["programme"] == "餐饮业一次性补助")
        #expect(first["opened_on"] == "2022-05-25")
        #expect(out.jsonRows[1]["paid_fen"] == .null)
        let csv = Self.parseCSV(out.csv)
        #expect(
            csv[0] == [
                "市场主体名称", "统一社会信用代码", "补助政策", "补助金额（元）", "进度", "所属区域", "公示批次", "公示开始日期", "公示截止日期",
                "已拨付（元）",
            ])
        #expect(
            csv[2] == [
                "王记面馆", "914101**********34", "餐饮业一次性补助", "1500.50", "已批准", "城关镇", "round-catering-2022-1",
                "2022-05-25", "2022-05-31", "",
            ])
        // Programme index: authority, standard and per-programme totals.
        #expect(out.html.contains("县商务局"))
        #expect(out.html.contains("受疫情影响停业的餐饮个体工商户，每户2000元"))
        #expect(out.html.contains("2 户，合计 3,500.50 元"))
        #expect(out.html.contains("0 户，合计 0.00 元"))
        #expect(out.document["programmes"]?.arrayValue?.map { $0["rows"] } == [.int(0), .int(2)])
        #expect(out.document["generated_at"] == "2022-06-01T09:30:00.000+08:00")
    }

    // MARK: retention

    @Test func rowsAreTakenDownAfterTheRetentionPeriod() throws {
        var config = BoardConfig()
        config.retentionDays = 180
        let t = Self.today
        let out = try Self.generate(
            rows: [
                Self.row("e1", name: "刚好保留", opened: t.adding(days: -190), closes: t.adding(days: -180)),
                Self.row("e2", name: "已经撤下", opened: t.adding(days: -191), closes: t.adding(days: -181)),
                Self.row("e3", name: "公示之中", opened: t.adding(days: -1), closes: t.adding(days: 5)),
            ], config: config)
        #expect(out.jsonRows.compactMap { $0["name"]?.stringValue } == ["刚好保留", "公示之中"])
        for text in out.all {
            #expect(!text.contains("已经撤下"))
            #expect(text.contains("刚好保留"))
        }
        #expect(Self.count("<tr class=\"row\"", in: out.html) == 2)
        #expect(Self.parseCSV(out.csv).count == 3)

        config.retentionDays = 0
        let short = try Self.generate(
            rows: [
                Self.row("e1", name: "昨天截止", closes: t.adding(days: -1)),
                Self.row("e2", name: "今天截止", closes: t),
            ], config: config)
        #expect(short.jsonRows.compactMap { $0["name"]?.stringValue } == ["今天截止"])
    }

    @Test func anEmptyBoardSaysSo() throws {
        let out = try Self.generate(rows: [], programmes: [])
        #expect(out.html.contains("暂无公示信息"))
        #expect(out.jsonRows.isEmpty)
        #expect(Self.parseCSV(out.csv).count == 1)
    }

    // MARK: escaping

    @Test func htmlIsEscaped() throws {
        let evil = "<script>alert(\"x\")</script>&'"
        let programme = BoardProgramme(
            id: "p<1>", title: "政策<b>&\"'", authority: "<img src=x onerror=alert(1)>", standard: "<i>标准</i>", benefit: "a&b")
        let out = try Self.generate(
            rows: [Self.row("e1", name: evil, programme: "p<1>", district: "\"><svg onload=alert(2)>")],
            programmes: [programme])
        #expect(!out.html.contains("<script>alert"))
        #expect(!out.html.contains("<img"))
        #expect(!out.html.contains("<svg"))
        #expect(!out.html.contains("<b>"))
        #expect(!out.html.contains("<i>"))
        #expect(out.html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"))
        #expect(out.html.contains("政策&lt;b&gt;&amp;&quot;&#39;"))
        #expect(out.html.contains("data-search=\"&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39; "))
        // Exactly one <script> element: the board's own.
        #expect(Self.count("<script", in: out.html) == 1)
        // JSON and CSV carry the text itself (the JSON serialiser and the CSV quoting handle it).
        #expect(out.jsonRows.first?["name"] == .string(evil))
        #expect(Self.parseCSV(out.csv)[1][0] == evil)
        #expect(BoardText.html("&<>\"'中") == "&amp;&lt;&gt;&quot;&#39;中")
    }

    // MARK: CSV

    @Test func csvIsQuotedAndHasABOM() throws {
        let tricky = "甲,乙\"丙\"\n丁"
        let out = try Self.generate(rows: [
            Self.row("e1", name: tricky),
            Self.row("e2", name: "=HYPERLINK(\"http://x\")", district: "+区"),
            Self.row("e3", name: "普通商户"),
        ])
        #expect(Array(out.csvBytes.prefix(3)) == [0xEF, 0xBB, 0xBF])
        #expect(out.csv.contains("\"甲,乙\"\"丙\"\"\n丁\""))
        #expect(out.csv.hasSuffix("\r\n"))
        let records = Self.parseCSV(out.csv)
        #expect(records.count == 4)
        #expect(records.allSatisfy { $0.count == records[0].count })
        #expect(records[1][0] == tricky)
        // Formula injection is defused.
        #expect(records[2][0] == "'=HYPERLINK(\"http://x\")")
        #expect(records[2][5] == "'+区")
        #expect(records[3][0] == "普通商户")
        #expect(BoardText.csvCell("a,b") == "\"a,b\"")
        #expect(BoardText.csvCell("a\rb") == "\"a\rb\"")
        #expect(BoardText.csvCell("plain") == "plain")
    }

    // MARK: HTML

    @Test func htmlIsSelfContainedWithSearch() throws {
        let out = try Self.generate(rows: [Self.row("e1", name: "某某商行", uscc: "91410102MA9XYZ1234", district: "城关镇")])
        #expect(out.html.hasPrefix("<!DOCTYPE html>\n<html lang=\"zh-CN\">"))
        #expect(out.html.contains("<meta charset=\"utf-8\">"))
        #expect(out.html.contains("name=\"viewport\""))
        #expect(out.html.contains("<title>惠企政策资金公示</title>"))
        #expect(out.html.contains("2022-06-01 09:30:00"))
        #expect(out.html.contains("<input type=\"search\" id=\"q\""))
        #expect(out.html.contains("URLSearchParams"))
        // No external assets: no src attributes, no remote links, no @import.
        #expect(!out.html.contains("src="))
        #expect(!out.html.contains("http://"))
        #expect(!out.html.contains("https://"))
        #expect(!out.html.contains("@import"))
        #expect(out.html.contains("data-search=\"某某商行 914101**********34 餐饮业一次性补助 城关镇\""))
        #expect(out.html.contains("<span class=\"st st-open\">公示中</span>"))
    }

    /// With the operator's table (`districts`), the board shows a division's name where it had
    /// the six-digit code (the page, the search text and `data.csv`); `data.json` keeps the
    /// code in `district` and adds `district_name`. A code not in the table is shown as it is.
    @Test func aDistrictIsShownByItsName() throws {
        let out = try Self.generate(rows: [
            Self.row("e1", name: "某某商行", district: "411002", districtName: "魏都区"),
            Self.row("e2", name: "另一商行", uscc: "91410102MA9XYZ1235", district: "411099"),
        ])
        #expect(out.html.contains("魏都区"))
        #expect(!out.html.contains(">411002<"), "the code is not shown where the name is known")
        #expect(out.html.contains("411099"))
        let csv = Self.parseCSV(out.csv)
        let column = try #require(csv.first?.firstIndex(of: "所属区域"))
        #expect(csv.dropFirst().map { $0[column] }.sorted() == ["411099", "魏都区"])
        let named = try #require(out.jsonRows.first { $0["name"]?.stringValue == "某某商行" })
        #expect(named["district"]?.stringValue == "411002")
        #expect(named["district_name"]?.stringValue == "魏都区")
        let other = try #require(out.jsonRows.first { $0["name"]?.stringValue == "另一商行" })
        #expect(other["district"]?.stringValue == "411099")
        #expect(other["district_name"] == nil)
    }

    @Test func configuredTitle() throws {
        var config = BoardConfig()
        config.title = "某县纾困资金公示"
        let out = try Self.generate(rows: [], config: config)
        #expect(out.html.contains("<h1>某县纾困资金公示</h1>"))
        #expect(out.document["title"] == "某县纾困资金公示")
    }

    // MARK: atomic regeneration

    @Test func regenerationSwapsACompleteDirectory() throws {
        let root = try Self.scratch()
        defer { Self.remove(root) }
        let dir = root + "/board"
        let first = try Self.generate(rows: [Self.row("e1", name: "第一版")], into: dir)
        #expect(first.jsonRows.count == 1)
        #expect(try FileManager.default.contentsOfDirectory(atPath: root) == ["board"])
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: dir)) == Set(Self.layout))
        let firstVersion = try FileManager.default.destinationOfSymbolicLink(atPath: dir + "/current")

        // Something an interrupted run left behind is cleaned up.
        try FileManager.default.createDirectory(atPath: dir + "/versions/deadbeef", withIntermediateDirectories: false)
        try FileManager.default.createSymbolicLink(atPath: dir + "/.link.tmp-0123", withDestinationPath: "current/index.html")
        let second = try Self.generate(rows: [Self.row("e1", name: "第二版"), Self.row("e2", name: "第二版乙")], into: dir + "/")
        #expect(second.jsonRows.count == 2)
        #expect(second.html.contains("第二版乙"))
        #expect(!second.html.contains("第一版"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: root) == ["board"])
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: dir)) == Set(Self.layout))
        // One version, the one served; the files at the top are links into it.
        let secondVersion = try FileManager.default.destinationOfSymbolicLink(atPath: dir + "/current")
        #expect(secondVersion != firstVersion)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/versions") == [(secondVersion as NSString).lastPathComponent])
        for name in BoardSite.files {
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: dir + "/" + name) == "current/" + name)
        }
        let attributes = try FileManager.default.attributesOfItem(atPath: dir + "/index.html")
        #expect((attributes[.posixPermissions] as? Int).map { $0 & 0o044 } == 0o044, "readable by a static server")
    }

    // MARK: pages

    @Test func aBigBoardIsPagedAndItsDownloadsHoldEveryRow() throws {
        let root = try Self.scratch()
        defer { Self.remove(root) }
        let dir = root + "/board"
        var config = BoardConfig()
        config.pageRows = 3
        let rows = (1...7).map { Self.row("e\($0)", name: "商行\($0)号", amountFen: Int64($0) * 100) }
        let out = try Self.generate(rows: rows, config: config, into: dir)
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: dir)) == Set(Self.layout + ["page-2.html", "page-3.html"]))
        func page(_ n: Int) throws -> String {
            String(decoding: try Data(contentsOf: URL(fileURLWithPath: dir + "/" + BoardSite.pageFile(n))), as: UTF8.self)
        }
        let pages = [out.html, try page(2), try page(3)]
        // Rows go to the pages in order, 3 + 3 + 1, each exactly once.
        #expect(pages.map { Self.count("<tr class=\"row\"", in: $0) } == [3, 3, 1])
        for (i, name) in rows.map(\.merchantName).enumerated() {
            #expect(pages.map { Self.count(">\(name)<", in: $0) } == (0..<3).map { $0 == i / 3 ? 1 : 0 }, "\(name)")
        }
        // Every page shows the whole board's tallies and links to its neighbours.
        for p in pages {
            #expect(p.contains("7 户，合计 28.00 元"))
            #expect(p.contains("共 7 条，分 3 页"))
        }
        #expect(out.html.contains("<a href=\"page-2.html\">下一页</a>"))
        #expect(!out.html.contains("上一页"))
        #expect(try page(2).contains("<a href=\"index.html\">上一页</a>"))
        #expect(try page(2).contains("<a href=\"page-3.html\">下一页</a>"))
        #expect(try page(3).contains("本页第 7–7 条"))
        #expect(!(try page(3)).contains("下一页"))
        // The count line (which the search script rewrites) counts this page's rows.
        #expect(try page(3).contains("<p id=\"count\" class=\"meta\">共 1 条</p>"))
        // The downloads are whole.
        #expect(out.jsonRows.count == 7)
        #expect(out.jsonRows.compactMap { $0["amount_fen"]?.intValue } == (1...7).map { Int64($0) * 100 })
        #expect(Self.parseCSV(out.csv).count == 8)
        // A board that fits on one page has no page links.
        let small = try Self.generate(rows: Array(rows.prefix(3)), config: config)
        #expect(!small.html.contains("nav class=\"pages\""))
        #expect(small.html.contains("<p id=\"count\" class=\"meta\">共 3 条</p>"))
    }

    @Test func rowsPastRetentionAreLeftOutOfThePageCount() throws {
        var config = BoardConfig()
        config.pageRows = 2
        config.retentionDays = 30
        let old = CivilDate(year: 2021, month: 1, day: 10)!
        let rows = [
            Self.row("e1", name: "旧甲", opened: old, closes: old), Self.row("e2", name: "新乙"),
            Self.row("e3", name: "旧丙", opened: old, closes: old), Self.row("e4", name: "新丁"),
        ]
        let out = try Self.generate(rows: rows, config: config)
        #expect(Self.count("<tr class=\"row\"", in: out.html) == 2)
        #expect(!out.html.contains("nav class=\"pages\""), "two shown rows fit on one page")
        #expect(out.jsonRows.count == 2)
        #expect(!out.html.contains("旧甲"))
    }

    struct Interrupted: Error {}

    @Test func aFailedGenerationLeavesTheOldBoard() throws {
        let root = try Self.scratch()
        defer { Self.remove(root) }
        let dir = root + "/board"
        _ = try Self.generate(rows: [Self.row("e1", name: "旧版")], into: dir)
        // Writing the new board fails half-way: the old one stays, and the temp directory goes.
        #expect(throws: Interrupted.self) {
            try BoardFiles.publishDirectory(dir) { temp in
                try BoardFiles.writeSynced(Array("half".utf8), to: temp + "/index.html")
                throw Interrupted()
            }
        }
        #expect(try Self.read(dir).html.contains("旧版"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: root) == ["board"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/versions").count == 1, "the half-written version goes")
        // A file that cannot be created is reported with its path.
        #expect(throws: BoardWriteError.self) { try BoardFiles.writeSynced([], to: root + "/missing/x") }
    }

    @Test func generatesIntoANewParentDirectory() throws {
        let root = try Self.scratch()
        defer { Self.remove(root) }
        let dir = root + "/a/b/board"
        let out = try Self.generate(rows: [Self.row("e1", name: "某某商行")], into: dir)
        #expect(out.jsonRows.count == 1)
    }

    /// The deployed board directory (`/var/www/bangfu-board`) is the only one the unit may write
    /// (`ReadWritePaths=`): publishing creates nothing beside it, so it works under a parent that
    /// is not writable, and a shorter board leaves none of the longer one's pages behind.
    @Test func publishesInsideTheBoardDirectoryAlone() throws {
        let root = try Self.scratch()
        let parent = root + "/www"
        let dir = parent + "/board"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        // A board written before the `current` layout: plain files, and a page this board won't have.
        for name in BoardSite.files + ["page-9.html"] { try BoardFiles.writeSynced(Array("旧的".utf8), to: dir + "/" + name) }
        // The parent is read-only, and its modification time is pinned: any entry made in it
        // (even by root, for whom the mode is moot) would move it.
        #expect(chmod(parent, 0o555) == 0)
        var pinned = [timeval(tv_sec: 1_000_000_000, tv_usec: 0), timeval(tv_sec: 1_000_000_000, tv_usec: 0)]
        #expect(utimes(parent, &pinned) == 0)
        defer {
            _ = chmod(parent, 0o755)
            Self.remove(root)
        }
        var config = BoardConfig()
        config.pageRows = 2
        let rows = (1...5).map { Self.row("e\($0)", name: "商行\($0)号") }
        let long = try Self.generate(rows: rows, config: config, into: dir)
        #expect(long.jsonRows.count == 5)
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: dir)) == Set(Self.layout + ["page-2.html", "page-3.html"]))
        let short = try Self.generate(rows: Array(rows.prefix(3)), config: config, into: dir)
        #expect(short.jsonRows.count == 3)
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: dir)) == Set(Self.layout + ["page-2.html"]))
        #expect(try String(contentsOfFile: dir + "/page-2.html", encoding: .utf8).contains("商行3号"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: parent) == ["board"])
        let modified = try FileManager.default.attributesOfItem(atPath: parent)[.modificationDate] as? Date
        #expect(modified == Date(timeIntervalSince1970: 1_000_000_000), "nothing was created, renamed or removed in the parent")
        if getuid() != 0 {
            #expect(access(parent, W_OK) != 0, "the parent really is read-only for this user")
        }
        // The files are readable by a static server running as another user.
        for name in BoardSite.files {
            let attributes = try FileManager.default.attributesOfItem(atPath: dir + "/current/" + name)
            #expect((attributes[.posixPermissions] as? Int).map { $0 & 0o044 } == 0o044, "\(name)")
        }
    }

    // MARK: sample for the browser check (Tests/board/check)

    @Test(.enabled(if: ProcessInfo.processInfo.environment["BANGFU_BOARD_SAMPLE_DIR"] != nil))
    func writesTheSampleBoard() throws {
        let dir = ProcessInfo.processInfo.environment["BANGFU_BOARD_SAMPLE_DIR"]!
        let sample = BoardSample.make(today: Self.today)
        try BoardSite.generate(
            programmes: sample.programmes, rows: sample.rows, config: BoardConfig(), generatedAt: Self.generatedAt, today: Self.today,
            into: dir)
        let out = try Self.read(dir)
        #expect(out.jsonRows.count == 30)
        // Also the monthly report, next to the board, for a look.
        try MonthlyReport.write(
            month: YearMonth(year: 2022, month: 5)!, figures: MonthlyReportTests.sampleFigures, generatedAt: Self.generatedAt,
            into: dir + "-monthly")
    }
}

/// About 30 rows across 3 programmes with Chinese names, some of them natural persons.
enum BoardSample {
    static func uscc(_ prefix: String, _ n: Int) -> String {
        let digits = String(n)
        let body = prefix + String(repeating: "0", count: 17 - prefix.count - digits.count) + digits
        return body + String(USCC.checkCharacter(body17: body)!)
    }

    static func make(today: CivilDate) -> (programmes: [BoardProgramme], rows: [BoardRow]) {
        let programmes = [
            BoardProgramme(
                id: "catering-relief-2022", title: "餐饮业纾困一次性补助", authority: "县商务局",
                standard: "2022年受疫情影响停业7天以上的餐饮业小微企业和个体工商户；每户补助2,000元，吸纳就业10人以上的补助5,000元。",
                benefit: "一次性现金补助"),
            BoardProgramme(
                id: "rent-waiver-2022", title: "国有房屋租金减免", authority: "县国资局、县财政局",
                standard: "承租国有房屋从事生产经营的服务业小微企业和个体工商户；减免3个月租金，按月租金计算。",
                benefit: "房租减免（由出租方退还或抵扣）"),
            BoardProgramme(
                id: "jobs-subsidy-2022", title: "稳岗留工补助", authority: "县人社局",
                standard: "2022年参保职工人数不减少的小微企业；按参保职工每人500元补助，每户最高50,000元。",
                benefit: "一次性现金补助"),
        ]
        let people = ["张伟", "王芳", "李娜", "刘洋", "陈静", "杨磊", "赵敏", "黄海燕", "周杰", "吴晓丽", "欧阳娜娜", "孙强"]
        let shops = ["早餐店", "烩面馆", "小吃部", "理发店", "便利店", "水果店"]
        let companies = [
            "郑州市好味道餐饮有限公司", "城关镇福满楼酒店", "豫香源食品有限公司", "新华书店城关分店", "金穗农业科技有限公司",
            "顺达物流有限公司", "绿源环保科技有限公司", "恒信商贸有限公司", "博雅文化传媒有限公司",
        ]
        let districts = ["城关镇", "东城街道", "西湖乡"]
        var rows: [BoardRow] = []
        for i in 0..<30 {
            let programme = programmes[i % 3]
            let district = districts[(i / 2) % 3]
            // Two in three are individual businesses: every other one is named after its owner
            // (a natural person: masked), the others have a shop name.
            let individual = i % 3 != 2
            let namedAfterOwner = individual && i % 2 == 0
            let name: String
            if namedAfterOwner {
                name = people[(i / 2) % people.count]
            } else if individual {
                name = String(district.prefix(2)) + "老" + String(people[i % people.count].prefix(1)) + shops[i % shops.count]
            } else {
                name = companies[(i / 3) % companies.count]
            }
            let amount: Int64 =
                switch programme.id {
                case "catering-relief-2022": i % 4 == 0 ? 500_000 : 200_000
                case "rent-waiver-2022": Int64(180_000 + i * 12_345)
                default: Int64(50_000 * (3 + i % 17))
                }
            // Rounds of 7 days; the later ones are still open today.
            let opened = today.adding(days: -3 * (i % 10))
            let closes = opened.adding(days: 6)
            let status = closes >= today ? ["公示中", "公示中", "有异议待处理"][i % 3] : ["无异议", "已批准", "已拨付", "已拨付", "异议成立", "拨付失败"][i % 6]
            rows.append(
                BoardRow(
                    entitlementID: "ent-\(i)", roundID: "\(["CY", "FZ", "WG"][i % 3])\(opened.description.filter(\.isNumber))",
                    programmeID: programme.id, merchantName: name,
                    merchantIsPerson: namedAfterOwner, uscc: uscc(individual ? "92410122" : "91410122", 1_000 + i * 7), amountFen: amount,
                    status: status, district: district, openedOn: opened, closesOn: closes, paidFen: status == "已拨付" ? amount : nil))
        }
        return (programmes, rows)
    }
}
