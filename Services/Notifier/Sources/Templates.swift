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

    /// The placeholders a template of this kind may use, in the order they are documented.
    ///
    /// | placeholder | value |
    /// | --- | --- |
    /// | `merchant` | the merchant's name, masked where it is a natural person's (DESIGN §3.5) |
    /// | `programme` | the programme's title |
    /// | `entitlement` | the entitlement id (the reference a merchant quotes on the hotline) |
    /// | `missing` | the facts to supplement, in Chinese, e.g. `申请材料、参保人数` (see ``Templates/missingText(_:)``) |
    /// | `closes_on` | the deadline: the end of the disclosure window (or, for `incomplete`, of the application window when known; the built-in `incomplete` text does not use it) |
    /// | `amount` | the amount in yuan, e.g. `3,000.00` (see ``Templates/yuanText(fen:)``); templates add `元` |
    /// | `reason` | why a payment failed, is held, or is recovered, in Chinese (see ``Templates/reasonText(_:)``) |
    public var placeholders: [String] {
        switch self {
        case .incomplete: ["merchant", "programme", "entitlement", "missing", "closes_on"]
        case .disclosure: ["merchant", "programme", "entitlement", "amount", "closes_on"]
        case .cleared, .approved, .paid: ["merchant", "programme", "entitlement", "amount"]
        case .failed, .held, .clawback: ["merchant", "programme", "entitlement", "amount", "reason"]
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
        case .unknownKind:
            let kinds = NotificationKind.allCases.map { $0.rawValue + ".txt" }.joined(separator: ", ")
            return "\(path): not a notification kind (expected one of \(kinds))"
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
/// keep the built-in text. A file is checked when it is loaded, so that a typo in a placeholder
/// stops the service at start (or `--check-config`) instead of sending a broken text to every
/// merchant. `{{ name }}` (with spaces) is accepted.
public struct Templates: Sendable {
    private enum Piece: Sendable {
        case text(String)
        case field(String)
    }

    private var compiled: [NotificationKind: [Piece]]
    /// The template texts, as loaded.
    public private(set) var sources: [NotificationKind: String]

    /// The built-in zh-CN templates.
    public static let zhCN: Templates = {
        var t = Templates(compiled: [:], sources: [:])
        for kind in NotificationKind.allCases {
            // The built-in texts are checked by the tests; a failure here is a programming error.
            let pieces = try! parse(defaultText(kind), kind: kind, path: "<built-in \(kind.rawValue)>")
            t.compiled[kind] = pieces
            t.sources[kind] = defaultText(kind)
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
            guard let kind = NotificationKind(rawValue: String(name.dropLast(4))) else {
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
            compiled[kind] = try Self.parse(text, kind: kind, path: path)
            sources[kind] = text
        }
    }

    /// The text for `kind` with each `{{name}}` replaced by `values[name]`.
    ///
    /// Values are inserted as they are (they are never themselves expanded); a placeholder with
    /// no value renders as an empty string; values for names the template does not use are ignored.
    public func render(_ kind: NotificationKind, _ values: [String: String]) -> String {
        var out = ""
        for piece in compiled[kind] ?? [] {
            switch piece {
            case .text(let s): out += s
            case .field(let name): out += values[name] ?? ""
            }
        }
        return out
    }

    private static func parse(_ text: String, kind: NotificationKind, path: String) throws(TemplateError) -> [Piece] {
        var pieces: [Piece] = []
        var rest = Substring(text)
        let allowed = Set(kind.placeholders)
        while let open = rest.range(of: "{{") {
            if open.lowerBound > rest.startIndex { pieces.append(.text(String(rest[..<open.lowerBound]))) }
            let after = rest[open.upperBound...]
            guard let close = after.range(of: "}}") else {
                throw TemplateError(path: path, problem: .unclosedPlaceholder)
            }
            let name = after[..<close.lowerBound].trimmingCharacters(in: .whitespaces)
            guard allowed.contains(name) else { throw TemplateError(path: path, problem: .unknownPlaceholder(name)) }
            pieces.append(.field(name))
            rest = after[close.upperBound...]
        }
        if !rest.isEmpty { pieces.append(.text(String(rest))) }
        return pieces
    }

    // MARK: - Built-in texts

    /// The built-in zh-CN text for `kind`.
    public static func defaultText(_ kind: NotificationKind) -> String {
        switch kind {
        case .incomplete:
            "【惠企帮扶】{{merchant}}：您好！经线上筛查，贵单位可能符合“{{programme}}”的享受条件，但以下信息尚不完整："
                + "{{missing}}。请在政策规定的申报期限内登录本地惠企政策服务平台，在“线上补报”栏目补报以上信息，"
                + "补报完成后系统将自动重新核定，逾期将无法受理。业务编号：{{entitlement}}。"
                + "如有疑问，请拨打12345政务服务便民热线咨询。"
        case .disclosure:
            "【惠企帮扶】{{merchant}}：您好！贵单位享受“{{programme}}”的拟补助（减免）金额{{amount}}元，"
                + "现已在惠企政策公示平台予以公示，公示期至{{closes_on}}。公示期间如有异议，可通过公示平台或"
                + "12345政务服务便民热线提出；公示期满无异议的，将按程序审核拨付。业务编号：{{entitlement}}。"
        case .cleared:
            "【惠企帮扶】{{merchant}}：您好！贵单位享受“{{programme}}”的补助（减免）金额{{amount}}元"
                + "公示期满，经核无异议，已转入审核程序。审核通过后资金将直接拨付，无需另行申请。"
                + "业务编号：{{entitlement}}。"
        case .approved:
            "【惠企帮扶】{{merchant}}：您好！贵单位享受“{{programme}}”已审核通过，核定补助（减免）金额{{amount}}元。"
                + "资金将直接拨付至贵单位经实名核验的银行账户（租金减免由出租方按规定办理），请留意到账情况。"
                + "业务编号：{{entitlement}}。"
        case .paid:
            "【惠企帮扶】{{merchant}}：您好！贵单位享受“{{programme}}”的补助（减免）资金{{amount}}元已拨付办理完毕，"
                + "请注意核对账户或租金结算情况。如有疑问，请携营业执照到属地政务服务中心或拨打12345政务服务便民热线查询。"
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

    /// The `reason` value for a hold or failure code (``reasonNames``); any other text is
    /// returned as it is.
    public static func reasonText(_ code: String) -> String { reasonNames[code] ?? code }

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
