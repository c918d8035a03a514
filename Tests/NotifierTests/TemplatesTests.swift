import Foundation
import Notifier
import Testing

@Suite("Notification templates")
struct TemplatesTests {
    /// A fresh, empty directory for one test.
    private func scratchDirectory() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bangfu-templates-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    private func write(_ text: String, _ name: String, in dir: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: dir).appendingPathComponent(name))
    }

    @Test("every kind's built-in text renders every one of its placeholders")
    func rendersAllKinds() {
        for kind in NotificationKind.allCases {
            var values: [String: String] = [:]
            for p in kind.placeholders { values[p] = "⟨\(p)⟩" }
            let text = Templates.zhCN.render(kind, values)
            // Every placeholder but the optional deadline of `incomplete` (not always known) and the
            // rent waiver's own (how the lessor carries it out), which its own texts render.
            for p in kind.placeholders where !(kind == .incomplete && p == "closes_on") && !["methods", "offset_allowed"].contains(p) {
                #expect(text.contains("⟨\(p)⟩"), "\(kind): {{\(p)}} is not rendered")
            }
            if [.cleared, .approved, .paid].contains(kind), let waiver = Templates.defaultText(kind, benefit: "rent_waiver") {
                #expect(waiver.contains("{{methods}}"), "\(kind): the rent waiver's text says how the lessor carries it out")
            }
            #expect(!text.contains("{{") && !text.contains("}}"), "\(kind): \(text)")
            #expect(text.hasPrefix("【惠企帮扶】⟨merchant⟩：您好！"), "\(kind)")
            #expect(text.contains("⟨entitlement⟩"))
        }
    }

    @Test("the built-in texts say what to do next")
    func builtInTextsAreActionable() throws {
        let t = Templates.zhCN
        let incomplete = t.render(
            .incomplete,
            [
                "merchant": "郑州市金水区张*丰烩面馆", "programme": "稳岗留工培训补助", "entitlement": "ent-1",
                "missing": Templates.missingText(["application", "merchant.finance"]),
            ])
        #expect(
            incomplete
                == "【惠企帮扶】郑州市金水区张*丰烩面馆：您好！经线上筛查，贵单位可能符合“稳岗留工培训补助”的享受条件，但以下信息尚不完整："
                + "申请材料、年度财务数据（从业人员、营业收入、资产总额）。请登录本地惠企政策服务平台，在“线上补报”栏目补报以上信息，"
                + "补报完成后系统将自动重新核定。业务编号：ent-1。如有疑问，请拨打12345政务服务便民热线咨询。")
        // A custom `incomplete.txt` may use the deadline.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bangfu-templates-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Data("请于{{closes_on}}前补报：{{missing}}".utf8).write(to: URL(fileURLWithPath: dir + "/incomplete.txt"))
        #expect(
            try Templates(directory: dir).render(.incomplete, ["closes_on": "2022年6月30日", "missing": "参保人数"]) == "请于2022年6月30日前补报：参保人数")
        #expect(t.render(.disclosure, ["closes_on": "2022年5月9日"]).contains("公示期至2022年5月9日"))
        #expect(t.render(.disclosure, [:]).contains("异议"))
        #expect(t.render(.paid, ["amount": "3,000.00"]).contains("3,000.00元"))
        #expect(t.render(.failed, ["reason": "账户已销户"]).contains("原因：账户已销户"))
        #expect(t.render(.held, ["reason": Templates.reasonText("pool_short")]).contains("资金池余额暂时不足"))
        #expect(t.render(.clawback, [:]).contains("收回"))
    }

    @Test("values are inserted literally, absent values render empty, extra values are ignored")
    func renderingRules() throws {
        let dir = try scratchDirectory()
        try write("{{merchant}}|{{amount}}|{{programme}}", "paid.txt", in: dir)
        let t = try Templates(directory: dir)
        #expect(t.render(.paid, ["merchant": "{{amount}}", "amount": "1.00", "reason": "x"]) == "{{amount}}|1.00|")
    }

    @Test("a template directory overrides only the kinds it has files for")
    func customDirectoryOverridesOneKind() throws {
        let dir = try scratchDirectory()
        try write("\u{FEFF}{{ merchant }}：您申请的{{programme}}已批准，金额{{amount}}元。\n\n", "approved.txt", in: dir)
        try write("notes for operators", "README.md", in: dir)
        let t = try Templates(directory: dir)
        #expect(t.render(.approved, ["merchant": "某商户", "programme": "房租减免", "amount": "1,500.00"]) == "某商户：您申请的房租减免已批准，金额1,500.00元。")
        #expect(t.sources[.approved] == "{{ merchant }}：您申请的{{programme}}已批准，金额{{amount}}元。")
        for kind in NotificationKind.allCases where kind != .approved {
            let values = Dictionary(uniqueKeysWithValues: kind.placeholders.map { ($0, "v-\($0)") })
            #expect(t.render(kind, values) == Templates.zhCN.render(kind, values))
            #expect(t.sources[kind] == Templates.defaultText(kind))
        }
    }

    @Test("an unknown placeholder in a template file fails the load, naming the file and the placeholder")
    func unknownPlaceholderIsAnError() throws {
        let dir = try scratchDirectory()
        try write("{{merchant}}：补助{{amont}}元已拨付。", "paid.txt", in: dir)
        let error = try #require(throws: TemplateError.self) { try Templates(directory: dir) }
        #expect(error.problem == .unknownPlaceholder("amont"))
        #expect(error.path.hasSuffix("/paid.txt"))
        #expect(error.description.contains("paid.txt"))
        #expect(error.description.contains("{{amont}}"))
        #expect(error.description.contains("{{amount}}"), "the message lists the allowed placeholders")
    }

    @Test("a placeholder of another kind is unknown in this kind's file")
    func placeholderOfAnotherKind() throws {
        let dir = try scratchDirectory()
        try write("{{merchant}} {{missing}}", "paid.txt", in: dir)
        let error = try #require(throws: TemplateError.self) { try Templates(directory: dir) }
        #expect(error.problem == .unknownPlaceholder("missing"))
    }

    @Test("malformed template directories are errors at load")
    func malformedDirectories() throws {
        let unclosed = try scratchDirectory()
        try write("{{merchant}：", "held.txt", in: unclosed)
        #expect(throws: TemplateError(path: unclosed + "/held.txt", problem: .unclosedPlaceholder)) {
            try Templates(directory: unclosed)
        }

        let typo = try scratchDirectory()
        try write("{{merchant}}", "aproved.txt", in: typo)
        #expect(throws: TemplateError(path: typo + "/aproved.txt", problem: .unknownKind)) { try Templates(directory: typo) }

        let empty = try scratchDirectory()
        try write(" \n", "cleared.txt", in: empty)
        #expect(throws: TemplateError(path: empty + "/cleared.txt", problem: .empty)) { try Templates(directory: empty) }

        let latin1 = try scratchDirectory()
        try Data([0x7B, 0x7B, 0xFF, 0x7D, 0x7D]).write(to: URL(fileURLWithPath: latin1 + "/failed.txt"))
        #expect(throws: TemplateError(path: latin1 + "/failed.txt", problem: .notUTF8)) { try Templates(directory: latin1) }

        let missing = try scratchDirectory() + "/nope"
        let error = try #require(throws: TemplateError.self) { try Templates(directory: missing) }
        #expect(error.path == missing)
    }

    @Test("a kind's text for one benefit: <kind>.<benefit>.txt; an unknown benefit is an error")
    func benefitVariants() throws {
        let dir = try scratchDirectory()
        try write("{{merchant}} 租金 {{amount}}", "paid.rent_waiver.txt", in: dir)
        let t = try Templates(directory: dir)
        #expect(t.render(.paid, benefit: "rent_waiver", ["merchant": "m", "amount": "1.00"]) == "m 租金 1.00")
        #expect(t.render(.paid, benefit: "cash", ["amount": "1.00"]) == Templates.zhCN.render(.paid, ["amount": "1.00"]))
        #expect(t.render(.paid, benefit: "deferral", [:]) == Templates.zhCN.render(.paid, benefit: "deferral", [:]))
        // An operator's own paid.txt replaces the built-in benefit texts it does not override.
        let own = try scratchDirectory()
        try write("已办理 {{amount}}", "paid.txt", in: own)
        #expect(try Templates(directory: own).render(.paid, benefit: "deferral", ["amount": "0.00"]) == "已办理 0.00")
        let bogus = try scratchDirectory()
        try write("{{merchant}}", "paid.loan.txt", in: bogus)
        #expect(throws: TemplateError(path: bogus + "/paid.loan.txt", problem: .unknownKind)) { try Templates(directory: bogus) }
        // Every built-in benefit text uses only its kind's placeholders and renders them.
        for kind in NotificationKind.allCases {
            for benefit in Templates.benefits {
                guard let source = Templates.defaultText(kind, benefit: benefit) else { continue }
                var values: [String: String] = [:]
                for p in kind.placeholders { values[p] = "⟨\(p)⟩" }
                let text = Templates.zhCN.render(kind, benefit: benefit, values)
                #expect(!text.contains("{{"), "\(kind).\(benefit): \(source)")
                #expect(text.hasPrefix("【惠企帮扶】⟨merchant⟩：您好！") && text.contains("⟨entitlement⟩"), "\(kind).\(benefit)")
            }
        }
    }

    @Test("{{#name}}…{{/name}} is kept only when name has a value; sections must pair up")
    func optionalSections() throws {
        let dir = try scratchDirectory()
        try write("请{{#closes_on}}于{{closes_on}}前{{/closes_on}}补报{{missing}}", "incomplete.txt", in: dir)
        let t = try Templates(directory: dir)
        #expect(t.render(.incomplete, ["closes_on": "2022-06-30", "missing": "参保人数"]) == "请于2022-06-30前补报参保人数")
        #expect(t.render(.incomplete, ["closes_on": "", "missing": "参保人数"]) == "请补报参保人数")
        #expect(t.render(.incomplete, ["missing": "参保人数"]) == "请补报参保人数")
        let open = try scratchDirectory()
        try write("{{#closes_on}}于{{closes_on}}", "incomplete.txt", in: open)
        #expect(throws: TemplateError(path: open + "/incomplete.txt", problem: .unbalancedSection("closes_on"))) {
            try Templates(directory: open)
        }
        let stray = try scratchDirectory()
        try write("{{merchant}}{{/closes_on}}", "incomplete.txt", in: stray)
        #expect(throws: TemplateError(path: stray + "/incomplete.txt", problem: .unbalancedSection("closes_on"))) {
            try Templates(directory: stray)
        }
        let unknown = try scratchDirectory()
        try write("{{#missing}}x{{/missing}}", "paid.txt", in: unknown)
        #expect(throws: TemplateError(path: unknown + "/paid.txt", problem: .unknownPlaceholder("missing"))) {
            try Templates(directory: unknown)
        }
    }

    @Test("missing facts are translated to Chinese")
    func missingFactNames() {
        #expect(Templates.factName("application") == "申请材料")
        #expect(Templates.factName("merchant.finance") == "年度财务数据（从业人员、营业收入、资产总额）")
        #expect(Templates.factName("merchant.social_insurance") == "参保人数")
        #expect(Templates.factName("lease") == "租赁合同")
        #expect(Templates.factName("merchant.leases") == "租赁信息")
        #expect(Templates.factName("application.documents") == "申请佐证材料")
        #expect(Templates.factName("merchant.finance.employees") == "年度财务数据（从业人员、营业收入、资产总额）")
        #expect(Templates.factName("merchant.leases.0.monthly_rent_fen") == "租赁信息")
        #expect(Templates.factName("lease.root_lessor") == "原出租方信息（转租情形）")
        #expect(Templates.factName("merchant.tags.size") == "merchant.tags.size")
        #expect(Templates.factName("window") == "window")
        #expect(Templates.factName("") == "")
        #expect(
            Templates.missingText(["application", "merchant.finance", "merchant.finance.employees", "merchant.social_insurance", "x.y"])
                == "申请材料、年度财务数据（从业人员、营业收入、资产总额）、参保人数、x.y")
        #expect(Templates.missingText([]) == "")
    }

    /// Every hold code payments documents (protocol.md §14.2) reads in Chinese in a notification.
    @Test func everyDocumentedHoldCodeHasAChineseText() throws {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let protocolText = try String(contentsOf: repo.appendingPathComponent("docs/protocol.md"), encoding: .utf8)
        let section = try #require(protocolText.components(separatedBy: "### 14.2 Hold codes").dropFirst().first)
        let table = section.components(separatedBy: "\n###").first ?? ""
        var codes: [String] = []
        for line in table.split(separator: "\n") where line.hasPrefix("| `") {
            let first = line.dropFirst(2).prefix { $0 != "|" }
            codes += first.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: ["`"]) }
        }
        #expect(codes.count >= 12, "\(codes)")
        for code in codes {
            #expect(Templates.reasonNames[code] != nil, "no Chinese text for hold code \(code)")
        }
        #expect(Templates.missingText(["merchant.social_insurance_history"]) == "指定月份的社会保险参保人数申报")
    }

    @Test("reasons and amounts are formatted for the texts")
    func reasonsAndAmounts() {
        #expect(Templates.reasonText("no_verified_account") == "尚未登记经实名核验的银行账户")
        #expect(Templates.reasonText("bank return AC04: 账户已销户") == "bank return AC04: 账户已销户")
        #expect(Templates.yuanText(fen: 0) == "0.00")
        #expect(Templates.yuanText(fen: 5) == "0.05")
        #expect(Templates.yuanText(fen: 300_000) == "3,000.00")
        #expect(Templates.yuanText(fen: 123_456_789) == "1,234,567.89")
        #expect(Templates.yuanText(fen: -150_050) == "-1,500.50")
    }
}
