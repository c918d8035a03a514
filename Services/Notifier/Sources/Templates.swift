import Foundation

/// What a notification to a merchant is about (DESIGN §9).
///
/// The raw value is the template's file name without `.txt` (`incomplete.txt`, …) and the `kind`
/// field of every delivered notification.
public enum NotificationKind: String, CaseIterable, Sendable {
    /// Facts are missing: the merchant should supplement them online (线上补报).
    case incomplete
    /// The entitlement is on the public disclosure board (公示).
    case disclosure
    /// The disclosure window closed without an upheld objection.
    case cleared
    /// The entitlement was approved; payment follows.
    case approved
    /// The money was paid (or the waiver carried out).
    case paid
    /// The payment failed (e.g. a bank return).
    case failed
    /// The payment is held (pool short, no verified account, fraud hold).
    case held
    /// Money already paid is being recovered (收回).
    case clawback
    /// The entitlement was revoked before its money or waiver reached the merchant (an objection
    /// upheld, a review rejected, the facts changed, the deadline passed, the policy withdrawn):
    /// the merchant is told why and whom to ask.
    case revoked
    /// An applicant was found not eligible under the programme applied to (不符合条件告知,
    /// `application.assessed`): the merchant is told which programme, why not, and what it can do
    /// (supplement, object, ask). No entitlement exists: `entitlement` is the assessment's id.
    case ineligible
    /// Someone objected to the entitlement during its disclosure (公示期间收到异议): the merchant
    /// is told that it is being checked and how to give its side before the window closes. The
    /// objection's reason and whoever filed it are never in the text.
    case objection

    /// The placeholders a template of this kind may use, in the order they are documented.
    ///
    /// | placeholder | value |
    /// | --- | --- |
    /// | `merchant` | the merchant's name, masked where it is a natural person's (DESIGN §3.5) |
    /// | `programme` | the programme's title |
    /// | `entitlement` | the entitlement id (the reference a merchant quotes on the hotline); for `ineligible`, the assessment id |
    /// | `missing` | the facts to supplement, in Chinese, e.g. `申请材料、参保人数` (see ``Templates/missingText(_:)``) |
    /// | `closes_on` | the deadline: the last day of the disclosure window (or, for `incomplete` and `ineligible`, of the application window when the programme takes applications; empty otherwise) |
    /// | `amount` | the amount in yuan, e.g. `3,000.00` (see ``Templates/yuanText(fen:)``); templates add `元` |
    /// | `outcome` | how the disclosure ended, for `cleared`: `经核无异议`, or `公示期间收到的异议经核查不成立` when an objection was dismissed |
    /// | `reason` | why a payment failed, is held, or is recovered, or why an entitlement was revoked, in Chinese (see ``Templates/reasonText(_:)``); for `ineligible`, the matcher's reasons joined with `；` |
    public var placeholders: [String] {
        switch self {
        case .incomplete: ["merchant", "programme", "entitlement", "missing", "closes_on"]
        case .disclosure: ["merchant", "programme", "entitlement", "amount", "closes_on"]
        // `methods`: how the lessor carries a rent waiver out; `offset_allowed` (a section): set
        // unless the waiver is refunded directly (a lease under three months, seed 篇二 (二)).
        case .cleared: ["merchant", "programme", "entitlement", "amount", "outcome", "methods", "offset_allowed"]
        case .approved, .paid: ["merchant", "programme", "entitlement", "amount", "methods", "offset_allowed"]
        case .failed, .held, .clawback: ["merchant", "programme", "entitlement", "amount", "reason"]
        case .revoked: ["merchant", "programme", "entitlement", "reason"]
        case .ineligible: ["merchant", "programme", "entitlement", "reason", "closes_on"]
        case .objection: ["merchant", "programme", "entitlement", "closes_on"]
        }
    }
}

/// Why a template file cannot be used. Raised when templates are loaded, never when rendering.
public struct TemplateError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Problem: Sendable, Equatable {
        /// `{{name}}` where `name` is not one of the kind's placeholders.
        case unknownPlaceholder(String)
        /// `{{` without a closing `}}`.
        case unclosedPlaceholder
        /// `{{#name}}` without its `{{/name}}`, or a `{{/name}}` that closes no open section.
        case unbalancedSection(String)
        /// A `.txt` file whose name is not a notification kind (a typo would otherwise be ignored).
        case unknownKind
        /// The file has no text.
        case empty
        /// The file is not UTF-8.
        case notUTF8
        /// The file or directory cannot be read.
        case unreadable(String)
    }

    /// The file (or directory) at fault.
    public var path: String
    public var problem: Problem

    public init(path: String, problem: Problem) {
        self.path = path
        self.problem = problem
    }

    public var description: String {
        switch problem {
        case .unknownPlaceholder(let name):
            let kind = NotificationKind(rawValue: ((path as NSString).lastPathComponent as NSString).deletingPathExtension)
            let allowed = kind.map { " (allowed: " + $0.placeholders.map { "{{\($0)}}" }.joined(separator: ", ") + ")" } ?? ""
            return "\(path): unknown placeholder {{\(name)}}\(allowed)"
        case .unclosedPlaceholder: return "\(path): '{{' without a closing '}}'"
        case .unbalancedSection(let name): return "\(path): {{#\(name)}} and {{/\(name)}} do not pair up"
        case .unknownKind:
            let kinds = NotificationKind.allCases.map { $0.rawValue + ".txt" }.joined(separator: ", ")
            let benefits = Templates.benefits.joined(separator: "|")
            return "\(path): not a notification kind (expected one of \(kinds), or <kind>.<\(benefits)>.txt)"
        case .empty: return "\(path): the template is empty"
        case .notUTF8: return "\(path): the template is not UTF-8 text"
        case .unreadable(let why): return "\(path): cannot be read: \(why)"
        }
    }
}

/// Notification texts, one template per ``NotificationKind``, with `{{placeholder}}` fields.
///
/// ``zhCN`` holds the built-in Simplified Chinese texts. Operators override any of them with a
/// directory of `<kind>.txt` files (UTF-8; a trailing newline is ignored): kinds without a file
/// keep the built-in text. `{{#name}}…{{/name}}` is kept only when `name` has a value (the
/// built-in `incomplete` text names the application deadline that way, when the programme has one).
/// A kind's text may differ by the programme's benefit: `<kind>.<benefit>.txt`
/// (`paid.rent_waiver.txt`, `approved.deferral.txt`) is used for entitlements of that benefit, and
/// the built-in texts have such variants, because a rent waiver is carried out by the lessor and a
/// deferral moves no money — telling those merchants that money "was paid into their bank account"
/// would send them looking for money that never comes. A file is checked when it is loaded, so that a typo in a placeholder
/// stops the service at start (or `--check-config`) instead of sending a broken text to every
/// merchant. `{{ name }}` (with spaces) is accepted.
public struct Templates: Sendable {
    private enum Piece: Sendable {
        case text(String)
        case field(String)
        /// `{{#name}}`: what follows, up to the matching `{{/name}}`, is left out when `name` has
        /// no value (or an empty one).
        case sectionStart(String)
        case sectionEnd
    }

    private var compiled: [NotificationKind: [Piece]]
    /// The texts for one benefit, keyed `<kind>.<benefit>`; a kind without one uses `compiled`.
    private var variants: [String: [Piece]] = [:]
    /// The template texts, as loaded.
    public private(set) var sources: [NotificationKind: String]

    /// The benefits (DESIGN §6) a template may be specific to.
    public static let benefits = ["cash", "rent_waiver", "deferral", "fee_waiver"]

    /// The built-in zh-CN templates.
    public static let zhCN: Templates = {
        var t = Templates(compiled: [:], sources: [:])
        for kind in NotificationKind.allCases {
            // The built-in texts are checked by the tests; a failure here is a programming error.
            let pieces = try! parse(defaultText(kind), kind: kind, path: "<built-in \(kind.rawValue)>")
            t.compiled[kind] = pieces
            t.sources[kind] = defaultText(kind)
            for benefit in benefits {
                guard let text = defaultText(kind, benefit: benefit) else { continue }
                t.variants["\(kind.rawValue).\(benefit)"] = try! parse(text, kind: kind, path: "<built-in \(kind.rawValue).\(benefit)>")
            }
        }
        return t
    }()

    private init(compiled: [NotificationKind: [Piece]], sources: [NotificationKind: String]) {
        self.compiled = compiled
        self.sources = sources
    }

    /// Loads `<kind>.txt` files from `directory` over the built-in zh-CN texts.
    ///
    /// Throws ``TemplateError`` naming the file for an unknown placeholder, an unclosed `{{`, an
    /// empty or non-UTF-8 file, or a `.txt` file that is not named after a kind. Other files
    /// (a README, editor backups) are ignored.
    public init(directory: String) throws {
        self = .zhCN
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            throw TemplateError(path: directory, problem: .unreadable("not a directory"))
        }
        let names: [String]
        do {
            names = try fm.contentsOfDirectory(atPath: directory).sorted()
        } catch {
            throw TemplateError(path: directory, problem: .unreadable("\(error)"))
        }
        for name in names where name.hasSuffix(".txt") && !name.hasPrefix(".") {
            let path = (directory as NSString).appendingPathComponent(name)
            let stem = name.dropLast(4).split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
            guard let kind = NotificationKind(rawValue: String(stem[0])), stem.count == 1 || Self.benefits.contains(String(stem[1]))
            else {
                throw TemplateError(path: path, problem: .unknownKind)
            }
            let data: Data
            do {
                data = try Data(contentsOf: URL(fileURLWithPath: path))
            } catch {
                throw TemplateError(path: path, problem: .unreadable("\(error)"))
            }
            guard var text = String(validating: data, as: UTF8.self) else {
                throw TemplateError(path: path, problem: .notUTF8)
            }
            if text.hasPrefix("\u{FEFF}") { text.removeFirst() }
            while let last = text.last, last.isNewline { text.removeLast() }
            if text.allSatisfy(\.isWhitespace) { throw TemplateError(path: path, problem: .empty) }
            let pieces = try Self.parse(text, kind: kind, path: path)
            if stem.count == 2 {
                variants["\(kind.rawValue).\(stem[1])"] = pieces
            } else {
                compiled[kind] = pieces
                sources[kind] = text
                // An operator's own text for a kind replaces the built-in benefit variants too
                // (they would otherwise still be sent); their own `<kind>.<benefit>.txt` files win.
                for benefit in Self.benefits where !names.contains("\(kind.rawValue).\(benefit).txt") {
                    variants["\(kind.rawValue).\(benefit)"] = nil
                }
            }
        }
    }

    /// The text for `kind` with each `{{name}}` replaced by `values[name]`.
    ///
    /// Values are inserted as they are (they are never themselves expanded); a placeholder with
    /// no value renders as an empty string; values for names the template does not use are ignored.
    public func render(_ kind: NotificationKind, _ values: [String: String]) -> String {
        render(kind, benefit: nil, values)
    }

    /// The text for `kind` for an entitlement of `benefit` (`rent_waiver`, `deferral`, …): the
    /// benefit's own text when there is one, else the kind's.
    public func render(_ kind: NotificationKind, benefit: String?, _ values: [String: String]) -> String {
        let pieces = benefit.flatMap { variants["\(kind.rawValue).\($0)"] } ?? compiled[kind] ?? []
        var out = ""
        var skipping = 0
        for piece in pieces {
            switch piece {
            case .sectionStart(let name):
                if skipping > 0 || (values[name] ?? "").isEmpty { skipping += 1 }
            case .sectionEnd:
                if skipping > 0 { skipping -= 1 }
            case .text(let s) where skipping == 0: out += s
            case .field(let name) where skipping == 0: out += values[name] ?? ""
            case .text, .field: break
            }
        }
        return out
    }

    private static func parse(_ text: String, kind: NotificationKind, path: String) throws(TemplateError) -> [Piece] {
        var pieces: [Piece] = []
        var sections: [String] = []
        var rest = Substring(text)
        let allowed = Set(kind.placeholders)
        while let open = rest.range(of: "{{") {
            if open.lowerBound > rest.startIndex { pieces.append(.text(String(rest[..<open.lowerBound]))) }
            let after = rest[open.upperBound...]
            guard let close = after.range(of: "}}") else {
                throw TemplateError(path: path, problem: .unclosedPlaceholder)
            }
            var name = after[..<close.lowerBound].trimmingCharacters(in: .whitespaces)
            let marker = name.first
            if marker == "#" || marker == "/" { name = String(name.dropFirst()).trimmingCharacters(in: .whitespaces) }
            guard allowed.contains(name) else { throw TemplateError(path: path, problem: .unknownPlaceholder(name)) }
            switch marker {
            case "#":
                sections.append(name)
                pieces.append(.sectionStart(name))
            case "/":
                guard sections.last == name else { throw TemplateError(path: path, problem: .unbalancedSection(name)) }
                sections.removeLast()
                pieces.append(.sectionEnd)
            default:
                pieces.append(.field(name))
            }
            rest = after[close.upperBound...]
        }
        if let open = sections.last { throw TemplateError(path: path, problem: .unbalancedSection(open)) }
        if !rest.isEmpty { pieces.append(.text(String(rest))) }
        return pieces
    }

    // MARK: - Built-in texts

    /// The built-in zh-CN text for `kind`.
    /// `outcome` of a `cleared` text: whether an objection was raised and dismissed.
    public static func clearedOutcome(objectionDismissed: Bool) -> String {
        objectionDismissed ? "公示期间收到的异议经核查不成立" : "经核无异议"
    }

    public static func defaultText(_ kind: NotificationKind) -> String {
        switch kind {
        case .incomplete:
            "【惠企帮扶】{{merchant}}：您好！经线上筛查，贵单位可能符合“{{programme}}”的享受条件，但以下信息尚不完整："
                + "{{missing}}。请{{#closes_on}}在申报截止日期（{{closes_on}} 24时）前{{/closes_on}}登录本地惠企政策服务平台，在“线上补报”栏目补报以上信息，"
                + "补报完成后系统将自动重新核定{{#closes_on}}，逾期将无法受理{{/closes_on}}。业务编号：{{entitlement}}。"
                + "如有疑问，请拨打12345政务服务便民热线咨询。"
        case .disclosure:
            "【惠企帮扶】{{merchant}}：您好！贵单位享受“{{programme}}”的拟补助（减免）金额{{amount}}元，"
                + "现已在惠企政策公示平台予以公示，公示期至{{closes_on}}。公示期间如有异议，可通过公示平台或"
                + "12345政务服务便民热线提出；公示期满无异议的，将按程序审核拨付。业务编号：{{entitlement}}。"
        case .cleared:
            "【惠企帮扶】{{merchant}}：您好！贵单位享受“{{programme}}”的补助（减免）金额{{amount}}元"
                + "公示期满，{{outcome}}，已转入审核程序。审核通过后资金将直接拨付，无需另行申请。"
                + "业务编号：{{entitlement}}。"
        case .approved:
            "【惠企帮扶】{{merchant}}：您好！贵单位享受“{{programme}}”已审核通过，核定补助金额{{amount}}元。"
                + "资金将直接拨付至贵单位经实名核验的银行账户，请留意到账情况。"
                + "业务编号：{{entitlement}}。"
        case .paid:
            "【惠企帮扶】{{merchant}}：您好！贵单位享受“{{programme}}”的补助资金{{amount}}元已拨付至贵单位经实名核验的银行账户，"
                + "请注意核对到账情况。如有疑问，请携营业执照到属地政务服务中心或拨打12345政务服务便民热线查询。"
                + "业务编号：{{entitlement}}。"
        case .failed:
            "【惠企帮扶】{{merchant}}：您好！贵单位享受“{{programme}}”的补助资金{{amount}}元拨付未成功，原因：{{reason}}。"
                + "请核实银行账户信息是否正确有效；如账户已变更，请登录本地惠企政策服务平台更新账户并完成实名核验，"
                + "核验通过后将重新拨付。业务编号：{{entitlement}}。"
        case .held:
            "【惠企帮扶】{{merchant}}：您好！贵单位享受“{{programme}}”的补助资金{{amount}}元暂缓拨付，原因：{{reason}}。"
                + "请登录本地惠企政策服务平台查看详情，如需补充材料请按提示办理；相关情况核实或资金到位后将及时拨付。"
                + "业务编号：{{entitlement}}。如有疑问，请拨打12345政务服务便民热线咨询。"
        case .clawback:
            "【惠企帮扶】{{merchant}}：您好！经核查，贵单位已领取的“{{programme}}”补助资金{{amount}}元不符合有关规定，"
                + "依规予以收回，原因：{{reason}}。请按属地纾困专班的要求及时办理退回手续，具体事项请登录本地惠企政策服务平台查看。"
                + "如有异议，可在规定期限内提出申诉。业务编号：{{entitlement}}。"
        case .revoked:
            "【惠企帮扶】{{merchant}}：您好！经核定，贵单位享受“{{programme}}”的资格已撤销，原有拟补助（减免）事项不再办理，原因：{{reason}}。"
                + "如对结果有异议，请携营业执照到属地政务服务中心或拨打12345政务服务便民热线反映，并提供业务编号：{{entitlement}}。"
        case .ineligible:
            "【惠企帮扶】{{merchant}}：您好！贵单位提交的“{{programme}}”申请已受理。经核定，贵单位暂不符合该政策的享受条件，"
                + "原因：{{reason}}。如对结果有异议或情况有变化，可{{#closes_on}}在申报截止日期（{{closes_on}} 24时）前{{/closes_on}}"
                + "登录本地惠企政策服务平台补充材料、更新信息，补充后系统将重新核定；也可携营业执照到属地政务服务中心"
                + "或拨打12345政务服务便民热线反映，并提供业务编号：{{entitlement}}。"
        case .objection:
            "【惠企帮扶】{{merchant}}：您好！贵单位享受“{{programme}}”的公示期间收到异议，相关部门正在核查，核查结束前暂缓办理。"
                + "如需说明情况或补充材料，请{{#closes_on}}在公示期满（{{closes_on}} 24时）前{{/closes_on}}登录本地惠企政策服务平台提交，"
                + "或拨打12345政务服务便民热线反映，并提供业务编号：{{entitlement}}。核查结果将另行告知。"
        }
    }

    /// The built-in zh-CN text for `kind` when the entitlement's benefit is `benefit`, or nil when
    /// the kind's own text fits it. A rent waiver is carried out by the lessor (refund, offset or
    /// extension within 30 days; seed 篇二/篇五), not paid into the merchant's account; a deferral
    /// (缓缴, 欠费不停供) moves no money at all, so its texts name no amount.
    public static func defaultText(_ kind: NotificationKind, benefit: String) -> String? {
        switch (kind, benefit) {
        case (.disclosure, "rent_waiver"):
            "【惠企帮扶】{{merchant}}：您好！贵单位享受“{{programme}}”的拟减免房屋租金{{amount}}元，"
                + "现已在惠企政策公示平台予以公示，公示期至{{closes_on}}。公示期间如有异议，可通过公示平台或"
                + "12345政务服务便民热线提出；公示期满无异议的，将按程序审核后由出租方落实。业务编号：{{entitlement}}。"
        case (.cleared, "rent_waiver"):
            "【惠企帮扶】{{merchant}}：您好！贵单位享受“{{programme}}”的减免房屋租金{{amount}}元公示期满，"
                + "{{outcome}}，已转入审核程序。审核通过后将由出租方{{#methods}}{{methods}}{{/methods}}落实，无需另行申请。"
                + "业务编号：{{entitlement}}。"
        case (.approved, "rent_waiver"):
            "【惠企帮扶】{{merchant}}：您好！贵单位享受“{{programme}}”已审核通过，核定减免房屋租金{{amount}}元。"
                + "该减免不拨付至银行账户，由出租方在30日内{{methods}}为贵单位落实"
                + "{{#offset_allowed}}；采用抵扣或合同延期方式的，请与出租方在租赁合同上注明并签字盖章{{/offset_allowed}}。"
                + "出租方逾期未落实的，请拨打12345政务服务便民热线反映。"
                + "业务编号：{{entitlement}}。"
        case (.paid, "rent_waiver"):
            "【惠企帮扶】{{merchant}}：您好！出租方已确认为贵单位落实“{{programme}}”，减免房屋租金{{amount}}元"
                + "（{{methods}}），请与出租方核对租金结算情况。"
                + "{{#offset_allowed}}若抵扣或合同延期因不可抗力或出租方违约未能享受，出租方须向贵单位退付相应租金。{{/offset_allowed}}"
                + "如有疑问，请拨打12345政务服务便民热线查询。业务编号：{{entitlement}}。"
        case (.held, "rent_waiver"):
            "【惠企帮扶】{{merchant}}：您好！贵单位享受“{{programme}}”的减免房屋租金{{amount}}元暂未落实，原因：{{reason}}。"
                + "相关情况核实后将督促出租方及时落实。业务编号：{{entitlement}}。如有疑问，请拨打12345政务服务便民热线咨询。"
        case (.failed, "rent_waiver"):
            "【惠企帮扶】{{merchant}}：您好！贵单位享受“{{programme}}”的减免房屋租金{{amount}}元未能落实，原因：{{reason}}。"
                + "若抵扣或合同延期因不可抗力或出租方违约未能享受，出租方须向贵单位退付相应租金；"
                + "请与出租方联系，或拨打12345政务服务便民热线反映。业务编号：{{entitlement}}。"
        case (.clawback, "rent_waiver"):
            "【惠企帮扶】{{merchant}}：您好！经核查，贵单位享受的“{{programme}}”减免房屋租金{{amount}}元不符合有关规定，依规予以撤销，"
                + "原因：{{reason}}。已通知出租方收回已减免的租金（尚未落实的不再落实），请按出租方通知补缴相应租金。"
                + "如有异议，可在规定期限内提出申诉，或拨打12345政务服务便民热线反映。业务编号：{{entitlement}}。"
        case (.approved, "fee_waiver"):
            "【惠企帮扶】{{merchant}}：您好！贵单位享受“{{programme}}”已审核通过，核定减免费用{{amount}}元。"
                + "该减免不拨付至银行账户，由经办机构在收费时直接为贵单位减免。业务编号：{{entitlement}}。"
        case (.paid, "fee_waiver"):
            "【惠企帮扶】{{merchant}}：您好！经办机构已确认为贵单位落实“{{programme}}”，减免费用{{amount}}元，请注意核对缴费情况。"
                + "如有疑问，请拨打12345政务服务便民热线查询。业务编号：{{entitlement}}。"
        case (.clawback, "fee_waiver"):
            "【惠企帮扶】{{merchant}}：您好！经核查，贵单位享受的“{{programme}}”减免费用{{amount}}元不符合有关规定，依规予以撤销，"
                + "原因：{{reason}}。已通知经办机构收回已减免的费用（尚未落实的不再落实），请按经办机构通知补缴相应费用。"
                + "如有异议，可在规定期限内提出申诉，或拨打12345政务服务便民热线反映。业务编号：{{entitlement}}。"
        case (.disclosure, "deferral"):
            "【惠企帮扶】{{merchant}}：您好！贵单位拟享受“{{programme}}”，现已在惠企政策公示平台予以公示，公示期至{{closes_on}}。"
                + "公示期间如有异议，可通过公示平台或12345政务服务便民热线提出；公示期满无异议的，将按程序审核办理。"
                + "本项为缓缴政策，不涉及资金拨付。业务编号：{{entitlement}}。"
        case (.cleared, "deferral"):
            "【惠企帮扶】{{merchant}}：您好！贵单位拟享受“{{programme}}”公示期满，{{outcome}}，已转入审核程序，审核通过后由经办机构办理，"
                + "无需另行申请。业务编号：{{entitlement}}。"
        case (.approved, "deferral"):
            "【惠企帮扶】{{merchant}}：您好！贵单位享受“{{programme}}”已审核通过，将通知经办机构按政策办理，无需另行申请。"
                + "本项为缓缴政策，不涉及资金拨付；缓缴期间免收滞纳金，缓缴的款项请在政策规定的缓缴期限届满前缴纳。"
                + "业务编号：{{entitlement}}。"
        case (.paid, "deferral"):
            "【惠企帮扶】{{merchant}}：您好！经办机构已确认为贵单位办理“{{programme}}”。"
                + "本项为缓缴政策，不涉及资金拨付；缓缴期间免收滞纳金，缓缴的款项请在政策规定的缓缴期限届满前缴纳。"
                + "如有疑问，请拨打12345政务服务便民热线查询。业务编号：{{entitlement}}。"
        case (.held, "deferral"):
            "【惠企帮扶】{{merchant}}：您好！贵单位享受“{{programme}}”暂未办理，原因：{{reason}}。"
                + "相关情况核实后将及时办理。业务编号：{{entitlement}}。如有疑问，请拨打12345政务服务便民热线咨询。"
        case (.clawback, "deferral"):
            "【惠企帮扶】{{merchant}}：您好！经核查，贵单位享受“{{programme}}”不符合有关规定，依规予以撤销，原因：{{reason}}。"
                + "已通知经办机构停止办理，相关款项不再享受缓缴，请按经办机构通知及时缴纳。"
                + "如有异议，可在规定期限内提出申诉，或拨打12345政务服务便民热线反映。业务编号：{{entitlement}}。"
        case (.failed, "deferral"):
            "【惠企帮扶】{{merchant}}：您好！贵单位享受“{{programme}}”未能办理，原因：{{reason}}。"
                + "请与经办机构联系，或拨打12345政务服务便民热线反映。业务编号：{{entitlement}}。"
        default: nil
        }
    }

    // MARK: - Values

    /// Chinese names of the facts a merchant may be asked to supplement, by the machine name the
    /// matcher reports (a path of the policy's fact model).
    public static let factNames: [String: String] = [
        "application": "申请材料",
        "application.documents": "申请佐证材料",
        "merchant.finance": "年度财务数据（从业人员、营业收入、资产总额）",
        "merchant.social_insurance": "参保人数",
        "merchant.social_insurance_history": "指定月份的社会保险参保人数申报",
        "merchant.tax": "纳税申报信息",
        "merchant.industry": "所属行业",
        "merchant.account": "经实名核验的银行账户",
        "merchant.closures": "停业情况",
        "merchant.damages": "受灾损失情况",
        "merchant.leases": "租赁信息",
        "lease": "租赁合同",
        "lease.root_lessor": "原出租方信息（转租情形）",
        "lease.sublets": "转租情况",
    ]

    /// The Chinese name of a missing fact: the entry of ``factNames`` for the name or, failing
    /// that, for its longest dotted prefix (`merchant.finance.employees` → the finance entry);
    /// a name with no entry is returned as it is.
    public static func factName(_ machineName: String) -> String {
        var name = Substring(machineName)
        while true {
            if let zh = factNames[String(name)] { return zh }
            guard let dot = name.lastIndex(of: ".") else { return machineName }
            name = name[..<dot]
        }
    }

    /// The `missing` value: the Chinese names joined with `、`, without repeats, in the given order.
    /// `["application", "merchant.finance"]` → `申请材料、年度财务数据（从业人员、营业收入、资产总额）`.
    public static func missingText(_ machineNames: [String]) -> String {
        var seen = Set<String>()
        var out: [String] = []
        for n in machineNames {
            let zh = factName(n)
            if seen.insert(zh).inserted { out.append(zh) }
        }
        return out.joined(separator: "、")
    }

    /// Chinese texts for the hold and failure codes that payments publish.
    public static let reasonNames: [String: String] = [
        "pool_short": "纾困资金池余额暂时不足，资金到位后将按顺序拨付",
        "no_pool": "该项目资金尚未落实",
        "no_verified_account": "尚未登记经实名核验的银行账户",
        "holder_mismatch": "银行账户户名与登记的名称（经营者）不一致，请以登记名称重新核验账户",
        "invalid_amount": "核定金额有误，待重新核定",
        "channel_mismatch": "拨付渠道与补助类型不符，待重新核定",
        "invalid_payee_data": "收款信息无法写入支付指令（名称或开户行过长等），需人工核实",
        "ledger_refused": "资金账务处理异常，需人工核实",
        "attempts_exhausted": "多次拨付未成功，需人工核实",
        "account_changed": "银行账户在申请后发生变更，需人工核实",
        "shared_account": "银行账户与其他申领主体存在关联，需人工核实",
        "shared_legal_rep": "法定代表人（经营者）与其他申领主体相同，需人工核实",
        "shared_phone": "联系电话与其他申领主体相同，需人工核实",
        "shared_address": "经营地址与其他申领主体相同，需人工核实",
        "lessor_unconfirmed": "出租方未在规定期限内确认租金减免，已转人工督办",
        "not_carried_out": "出租方或经办机构反馈未能办理",
        "hold_rejected": "经人工核实，不予拨付",
        // ISO 20022 return reason codes (pain.002 / camt.054) the banks use most.
        "AC01": "银行账号有误",
        "AC04": "银行账户已销户",
        "AC06": "银行账户已冻结",
        "AG01": "该账户不允许此类交易",
        "BE01": "收款人户名与账户不一致",
        "MS03": "银行未说明原因",
        "fraud": "经核查存在异常情况，需人工核实",
        "revoked": "享受资格已被撤销",
    ]

    /// The `reason` value for a hold or failure code (``reasonNames``), or for the matcher's
    /// reason of a revocation (``revocationText(_:)``, which a clawback also carries); any other
    /// text is returned as it is.
    public static func reasonText(_ code: String) -> String { reasonNames[code] ?? revocationText(code) ?? code }

    /// Why an entitlement was revoked, in Chinese, from the matcher's reason (protocol.md):
    /// `objection_upheld: <note>`, `review_rejected by <who>: <reason>`, `policy_withdrawn: <reason>`,
    /// `fraud: …`, `facts_changed: <why>` (`not eligible: …`, `exclusive group …`, `the lease is no
    /// longer in the profile`, …); nil for a
    /// text that is none of them. An operator's note is kept when it is written in Chinese (the
    /// merchant reads it); the reviewer's name and the policy's expressions are not shown — the
    /// hotline reads them with `bangfu explain` and the entitlement id.
    public static func revocationText(_ reason: String) -> String? {
        // The facts changed (a re-evaluation): why they no longer qualify follows the prefix.
        if reason.hasPrefix("facts_changed: ") {
            return revocationText(String(reason.dropFirst("facts_changed: ".count))) ?? "经重新核定，不再符合该政策的享受条件"
        }
        if reason.hasPrefix("fraud") { return "经查存在弄虚作假等情形，已取消涉企政策补助资格" }
        func note(after prefix: String) -> String {
            guard let r = reason.range(of: prefix) else { return "" }
            let text = reason[r.upperBound...].trimmingCharacters(in: .whitespaces)
            return text.unicodeScalars.contains(where: { $0.value > 0x7F }) ? "（\(text)）" : ""
        }
        if reason.hasPrefix("objection_upheld") { return "公示期间收到异议，经核实异议成立" + note(after: ":") }
        if reason.hasPrefix("review_rejected") {
            return "经主管部门审核未予通过" + (reason.contains(": ") ? note(after: ": ") : "")
        }
        if reason.hasPrefix("policy_withdrawn") { return "该政策已停止执行" + note(after: ":") }
        if reason.hasPrefix("not eligible: no application by ") {
            let date = reason.dropFirst("not eligible: no application by ".count).prefix { $0 != " " }
            return "未在申报截止日期（\(date) 24时）前提出申请，超过时限不再受理"
        }
        if reason.hasPrefix("not eligible") {
            // The negative list (几个不帮) reads the same in every programme; other rules are the
            // programme's own conditions, which the hotline explains.
            if reason.contains("merchant.disqualified") { return "经查存在弄虚作假等情形，已取消涉企政策补助资格" }
            if reason.contains("merchant.status") { return "市场主体登记状态非正常经营（已停业、注销等）" }
            if reason.contains("merchant.credit_flags") { return "存在影响享受该政策的不良信用记录" }
            return "经重新核定，不再符合该政策的享受条件"
        }
        if reason.hasPrefix("exclusive group") { return "已享受同类帮扶资金，不得重复享受" }
        if reason.hasPrefix("nothing to pay") { return "经核定，可享受的金额为零" }
        if reason.hasPrefix("the lease is no longer") { return "据以享受政策的租赁登记信息已变更或撤销" }
        if reason.hasPrefix("the damage is no longer") { return "据以享受政策的受灾登记信息已变更或撤销" }
        if reason.hasPrefix("the ") && reason.hasSuffix(" is no longer in the profile") { return "据以享受政策的登记信息已变更或撤销" }
        if reason.hasPrefix("evaluation error") { return "系统核定异常，待人工核实" }
        return nil
    }

    /// The `amount` value: fen as yuan with two decimals and thousands separators,
    /// `300000` → `3,000.00`.
    public static func yuanText(fen: Int64) -> String {
        let m = fen.magnitude
        let digits = Array(String(m / 100))
        var out = fen < 0 ? "-" : ""
        for (i, d) in digits.enumerated() {
            if i > 0, (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(d)
        }
        let cents = m % 100
        return out + "." + (cents < 10 ? "0" : "") + String(cents)
    }
}
