import Models
import Yams

// Policy documents (DESIGN §6): YAML, validated field by field, every problem reported with its
// line and column in the file, all of them at once.

/// One problem in a policy document, at a 1-based line and column (columns count Unicode scalars).
public struct PolicyError: Error, Sendable, Equatable, CustomStringConvertible {
    public var line: Int
    public var column: Int
    public var message: String

    public init(line: Int, column: Int, message: String) {
        self.line = line
        self.column = column
        self.message = message
    }

    public var description: String { "line \(line), column \(column): \(message)" }
}

/// Every problem found in a policy document, sorted by position.
public struct PolicyErrors: Error, Sendable, CustomStringConvertible {
    public var errors: [PolicyError]

    public init(_ errors: [PolicyError]) {
        self.errors = errors.sorted { ($0.line, $0.column) < ($1.line, $1.column) }
    }

    public var description: String { errors.map(\.description).joined(separator: "\n") }
}

public enum BenefitKind: String, Sendable, CaseIterable {
    case cash
    case rentWaiver = "rent_waiver"
    case deferral
    case feeWaiver = "fee_waiver"
}

public enum PerKind: String, Sendable, CaseIterable {
    case merchant, lease, damage
}

/// A validated policy document (DESIGN §6).
public struct PolicyDocument: Sendable {
    public var id: String
    public var revision: Int
    public var title: String
    public var authority: String
    public var benefit: BenefitKind
    /// `treasury`, `lessor` or `agency:<name>`.
    public var channel: String

    /// The fund pool (required for cash benefits).
    public var pool: String?
    public var requiresApplication: Bool
    public var applyFrom: CivilDate?
    public var applyUntil: CivilDate?
    public var periodFrom: CivilDate
    public var periodTo: CivilDate
    public var disclosureWorkingDays: Int
    public var autoApprove: Bool
    public var exclusiveGroup: String?
    public var per: PerKind
    public var notes: String?
    /// The expressions' source text (comments kept, as written in the file).
    public var eligibleSource: String
    public var amountSource: String?
    public var prioritySource: String?
    /// Named constants the expressions read as `params.name` (dates as `"YYYY-MM-DD"` strings).
    public var params: [String: JSON]
    /// The bodies that must each approve an entitlement (`review.approved` whose `by` names
    /// them) before it is approved, e.g. `[经开区招商局, 市场监管经开区分局]`; empty: one approval.
    public var reviewers: [String] = []
    /// The programme's standard as the public is told it (the board, notifications): zh-CN
    /// text for merchants. `notes` are the operators' own; without a `standard` the board shows
    /// the title only.
    public var standard: String? = nil
    /// A rent waiver the lessor must refund directly (no offset against later rent, no extension
    /// of the lease), where this bool expression on the merchant and its lease holds (seed 篇二
    /// (二): 租赁期不足3个月的 … 直接退付). Only on the `lessor` channel.
    public var refundOnlySource: String? = nil

    /// The document as JSON (e.g. the data of `policy.published`).
    public var json: JSON {
        var o = JSONObject()
        o["id"] = .string(id)
        o["revision"] = .int(Int64(revision))
        o["title"] = .string(title)
        o["authority"] = .string(authority)
        o["benefit"] = .string(benefit.rawValue)
        o["channel"] = .string(channel)
        o["pool"] = pool.map { .string($0) } ?? .null
        o["requires_application"] = .bool(requiresApplication)
        if let applyFrom, let applyUntil {
            o["window"] = ["apply_from": .string(applyFrom.description), "apply_until": .string(applyUntil.description)]
        } else {
            o["window"] = .null
        }
        o["period"] = ["from": .string(periodFrom.description), "to": .string(periodTo.description)]
        o["disclosure"] = ["working_days": .int(Int64(disclosureWorkingDays)), "auto_approve": .bool(autoApprove)]
        o["exclusive_group"] = exclusiveGroup.map { .string($0) } ?? .null
        o["priority"] = prioritySource.map { .string($0) } ?? .null
        if let refundOnlySource { o["refund_only"] = .string(refundOnlySource) }
        o["eligible"] = .string(eligibleSource)
        o["amount_fen"] = amountSource.map { .string($0) } ?? .null
        o["per"] = .string(per.rawValue)
        o["notes"] = notes.map { .string($0) } ?? .null
        o["standard"] = standard.map { .string($0) } ?? .null
        var p = JSONObject()
        for k in params.keys.sorted() { p[k] = params[k] }
        o["params"] = .object(p)
        if !reviewers.isEmpty { o["reviewers"] = .array(reviewers.map { .string($0) }) }
        return .object(o)
    }
}

// MARK: - Source positions

/// The YAML text as lines of Unicode scalars (libyaml counts columns in scalars).
struct SourceLines {
    let lines: [[Unicode.Scalar]]

    init(_ text: String) {
        var out: [[Unicode.Scalar]] = [[]]
        for c in text.unicodeScalars {
            if c == "\n" {
                if out[out.count - 1].last == "\r" { out[out.count - 1].removeLast() }
                out.append([])
            } else {
                out[out.count - 1].append(c)
            }
        }
        lines = out
    }

    func indent(_ i: Int) -> Int { lines[i].prefix { $0 == " " }.count }
    func isBlank(_ i: Int) -> Bool { lines[i].allSatisfy { $0 == " " || $0 == "\t" } }
}

/// An expression's text and, for each offset in it, its (line, column) in the YAML file.
struct ExprSource {
    var text: [Unicode.Scalar]
    var positions: [(line: Int, column: Int)]
    /// The text as written in the file (for block scalars: the block with its indentation removed).
    var written: String

    func position(_ offset: Int) -> (line: Int, column: Int) {
        if positions.isEmpty { return (1, 1) }
        return positions[min(max(0, offset), positions.count - 1)]
    }

    /// Locates an expression scalar in the file.
    ///
    /// Block scalars (`>` and `|`) are read from the file's own lines, so that `#` comments end
    /// at the end of their line (YAML would fold them into the following lines) and each
    /// character keeps its exact line and column. Other scalars use YAML's value, aligned
    /// character by character with the file from the scalar's start.
    static func locate(_ scalar: Node.Scalar, in src: SourceLines) -> ExprSource {
        let mark = (line: scalar.mark?.line ?? 1, column: scalar.mark?.column ?? 1)
        let value = Array(scalar.string.unicodeScalars)
        if scalar.style == .literal || scalar.style == .folded, let block = blockLines(after: mark.line, in: src) {
            var text: [Unicode.Scalar] = []
            var pos: [(Int, Int)] = []
            for (n, (lineIndex, indent)) in block.enumerated() {
                if n > 0 {
                    text.append("\n")
                    pos.append((lineIndex + 1, 1))
                }
                let line = src.lines[lineIndex]
                if line.count > indent {
                    for (k, c) in line[indent...].enumerated() {
                        text.append(c)
                        pos.append((lineIndex + 1, indent + k + 1))
                    }
                }
            }
            // A sanity check: the block must hold the same non-blank characters as YAML's value.
            let strip: ([Unicode.Scalar]) -> [Unicode.Scalar] = { $0.filter { $0 != " " && $0 != "\n" && $0 != "\t" } }
            if strip(text) == strip(value) {
                pos.append(pos.last.map { ($0.0, $0.1 + 1) } ?? (mark.line, mark.column))
                var w = String(String.UnicodeScalarView(text))
                while w.last?.isWhitespace == true { w.removeLast() }
                return ExprSource(text: text, positions: pos.map { (line: $0.0, column: $0.1) }, written: w)
            }
        }
        // Align YAML's value with the file.
        var pos: [(line: Int, column: Int)] = []
        var li = mark.line - 1
        var ci = mark.column - 1
        var last = (line: mark.line, column: mark.column)
        for c in value {
            if c == " " || c == "\n" || c == "\t" {
                pos.append(last)
                continue
            }
            var found = false
            var l = li
            var k = ci
            // Look a bounded distance ahead so that an escape cannot make this quadratic.
            var budget = 64
            while l < src.lines.count, budget > 0 {
                if k < src.lines[l].count {
                    if src.lines[l][k] == c {
                        found = true
                        break
                    }
                    k += 1
                    budget -= 1
                } else {
                    l += 1
                    k = 0
                }
            }
            if found {
                last = (line: l + 1, column: k + 1)
                pos.append(last)
                li = l
                ci = k + 1
            } else {
                pos.append(last)
            }
        }
        pos.append((line: last.line, column: last.column + 1))
        return ExprSource(text: value, positions: pos, written: scalar.string)
    }

    /// The lines of a block scalar whose header is on `headerLine` (1-based), each with the
    /// block's indentation; nil if there are none.
    private static func blockLines(after headerLine: Int, in src: SourceLines) -> [(Int, Int)]? {
        var i = headerLine  // 0-based index of the line after the header
        var indent: Int?
        var out: [(Int, Int)] = []
        var trailingBlank: [(Int, Int)] = []
        while i < src.lines.count {
            if src.isBlank(i) {
                trailingBlank.append((i, indent ?? 0))
                i += 1
                continue
            }
            let ind = src.indent(i)
            if let indent {
                if ind < indent { break }
            } else {
                if ind == 0 { break }
                indent = ind
            }
            out.append(contentsOf: trailingBlank)
            trailingBlank = []
            out.append((i, indent!))
            i += 1
        }
        return out.isEmpty ? nil : out
    }
}

// MARK: - The compiler

public enum PolicyCompiler {
    /// The largest policy file accepted.
    public static let maxSourceBytes = 256 * 1024

    /// Parses, validates, type-checks and compiles a policy document. Throws every problem
    /// found, each with its line and column.
    public static func compile(yaml: String) throws(PolicyErrors) -> CompiledPolicy {
        var b = DocumentBuilder(yaml)
        return try b.build()
    }
}

private let knownKeys = [
    "id", "revision", "title", "authority", "benefit", "channel", "pool", "requires_application", "window", "period",
    "disclosure", "exclusive_group", "priority", "eligible", "amount_fen", "per", "notes", "params", "reviewers", "standard",
    "refund_only",
]

private let requiredKeys = [
    "id", "revision", "title", "authority", "benefit", "channel", "requires_application", "period", "disclosure",
    "eligible", "per",
]

/// Levenshtein distance, for "did you mean" hints (short strings only).
func editDistance(_ a: String, _ b: String) -> Int {
    let x = Array(a.unicodeScalars)
    let y = Array(b.unicodeScalars)
    if x.isEmpty { return y.count }
    if y.isEmpty { return x.count }
    var prev = Array(0...y.count)
    for i in 1...x.count {
        var cur = [i] + Array(repeating: 0, count: y.count)
        for j in 1...y.count {
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x[i - 1] == y[j - 1] ? 0 : 1))
        }
        prev = cur
    }
    return prev[y.count]
}

func suggestion(_ name: String, among: [String]) -> String {
    let best = among.map { ($0, editDistance(name, $0)) }.min { $0.1 < $1.1 }
    if let best, best.1 <= max(1, name.count / 4) { return " (did you mean '\(best.0)'?)" }
    return ""
}

struct DocumentBuilder {
    let yaml: String
    let src: SourceLines
    var errors: [PolicyError] = []

    init(_ yaml: String) {
        self.yaml = yaml
        self.src = SourceLines(yaml)
    }

    mutating func fail(_ mark: Mark?, _ message: String) {
        errors.append(PolicyError(line: mark?.line ?? 1, column: mark?.column ?? 1, message: message))
    }

    // MARK: Scalars

    enum Plain {
        case null, bool(Bool), int(Int64), decimal(String), string(String)
    }

    /// YAML 1.2 core-schema resolution of a scalar (quoted scalars are always strings).
    static func resolve(_ s: Node.Scalar) -> Plain {
        guard s.style == .plain || s.style == .any else { return .string(s.string) }
        let t = s.string
        switch t {
        case "", "~", "null", "Null", "NULL": return .null
        case "true", "True", "TRUE": return .bool(true)
        case "false", "False", "FALSE": return .bool(false)
        default: break
        }
        let body = t.first == "-" || t.first == "+" ? t.dropFirst() : Substring(t)
        if !body.isEmpty, body.first!.isASCII, body.first!.isNumber,
            body.allSatisfy({ ($0.isASCII && $0.isNumber) || $0 == "_" })
        {
            if let v = Int64(t.filter { $0 != "_" && $0 != "+" }) { return .int(v) }
            return .decimal(t)
        }
        if Rational.parseDecimal(t) != nil, t.contains(".") { return .decimal(t) }
        return .string(t)
    }

    mutating func scalar(_ n: Node, _ what: String) -> Node.Scalar? {
        guard case .scalar(let s) = n else {
            fail(n.mark, "\(what) must be a single value, not a \(n.isMapping ? "mapping" : "list")")
            return nil
        }
        return s
    }

    mutating func text(_ n: Node, _ key: String, nullable: Bool = false) -> String?? {
        guard let s = scalar(n, key) else { return nil }
        if case .null = DocumentBuilder.resolve(s) {
            if nullable { return .some(nil) }
            fail(s.mark, "\(key) must be a text, not null")
            return nil
        }
        if s.string.allSatisfy(\.isWhitespace) {
            fail(s.mark, "\(key) must not be empty")
            return nil
        }
        return .some(s.string)
    }

    mutating func int(_ n: Node, _ key: String, min: Int) -> Int? {
        guard let s = scalar(n, key) else { return nil }
        guard case .int(let v) = DocumentBuilder.resolve(s) else {
            fail(s.mark, "\(key) must be an integer, got \(describe(s))")
            return nil
        }
        guard v >= Int64(min) else {
            fail(s.mark, "\(key) must be at least \(min), got \(v)")
            return nil
        }
        guard v <= 1_000_000_000 else {
            fail(s.mark, "\(key) is too large: \(v)")
            return nil
        }
        return Int(v)
    }

    mutating func bool(_ n: Node, _ key: String) -> Bool? {
        guard let s = scalar(n, key) else { return nil }
        guard case .bool(let b) = DocumentBuilder.resolve(s) else {
            fail(s.mark, "\(key) must be true or false, got \(describe(s))")
            return nil
        }
        return b
    }

    mutating func date(_ n: Node, _ key: String) -> CivilDate? {
        guard let s = scalar(n, key) else { return nil }
        do {
            return try CivilDate.parsing(s.string)
        } catch {
            fail(s.mark, "\(key): \(error.message)")
            return nil
        }
    }

    func describe(_ s: Node.Scalar) -> String {
        switch DocumentBuilder.resolve(s) {
        case .null: "null"
        case .bool(let b): "\(b)"
        case .int(let v): "\(v)"
        case .decimal(let t): t
        case .string(let t): "\"\(t.prefix(40))\""
        }
    }

    /// The members of a nested mapping such as `period`, checking its keys.
    mutating func members(_ n: Node, _ key: String, _ keyMark: Mark?, required: [String], optional: [String] = [])
        -> [String: Node]?
    {
        guard case .mapping(let m) = n else {
            fail(n.mark, "\(key) must be a mapping with \(required.joined(separator: " and "))")
            return nil
        }
        var out: [String: Node] = [:]
        for (k, v) in m {
            let name = k.string ?? ""
            if required.contains(name) || optional.contains(name) {
                out[name] = v
            } else {
                fail(k.mark, "unknown key '\(name)' in \(key)\(suggestion(name, among: required + optional))")
            }
        }
        for r in required where out[r] == nil {
            fail(keyMark, "\(key) is missing '\(r)'")
        }
        return out
    }

    // MARK: Params

    mutating func paramValue(_ n: Node, _ path: String) -> JSON? {
        switch n {
        case .scalar(let s):
            switch DocumentBuilder.resolve(s) {
            case .null:
                fail(s.mark, "\(path) cannot be null")
                return nil
            case .bool(let b): return .bool(b)
            case .int(let v): return .int(v)
            case .decimal(let t):
                guard Rational.parseDecimal(t) != nil else {
                    fail(s.mark, "\(path): \(t) is not an exact decimal number (write digits, e.g. 0.5)")
                    return nil
                }
                return .number(t.filter { $0 != "_" && $0 != "+" })
            case .string(let t): return .string(t)
            }
        case .sequence(let seq):
            var items: [JSON] = []
            for (i, item) in seq.enumerated() {
                if case .sequence = item {
                    fail(item.mark, "\(path)[\(i)]: lists of lists are not supported")
                    return nil
                }
                guard let v = paramValue(item, "\(path)[\(i)]") else { return nil }
                items.append(v)
            }
            let types = items.map { DocumentBuilder.paramType($0) }
            var t = PType.any
            for (i, x) in types.enumerated() {
                guard let x, let u = PType.unify(t, x) else {
                    fail(seq[i].mark, "\(path): a list's elements must all have one type")
                    return nil
                }
                t = u
            }
            return .array(items)
        default:
            fail(n.mark, "\(path) must be an int, a decimal, a string, a bool, a date or a list of them")
            return nil
        }
    }

    static func paramType(_ j: JSON) -> PType? {
        switch j {
        case .int: return .int
        case .number: return .number
        case .bool: return .bool
        case .string(let s): return CivilDate.parse(s) != nil ? .date : .string
        case .array(let a):
            var t = PType.any
            for x in a {
                guard let xt = paramType(x), let u = PType.unify(t, xt) else { return nil }
                t = u
            }
            return .list(t)
        default: return nil
        }
    }

    // MARK: The document

    mutating func build() throws(PolicyErrors) -> CompiledPolicy {
        guard yaml.utf8.count <= PolicyCompiler.maxSourceBytes else {
            throw PolicyErrors([PolicyError(line: 1, column: 1, message: "policy file larger than \(PolicyCompiler.maxSourceBytes) bytes")])
        }
        let root: Node
        do {
            guard let r = try Yams.compose(yaml: yaml) else {
                throw PolicyErrors([PolicyError(line: 1, column: 1, message: "the policy document is empty")])
            }
            root = r
        } catch let e as PolicyErrors {
            throw e
        } catch let e as YamlError {
            throw PolicyErrors([yamlError(e)])
        } catch {
            throw PolicyErrors([PolicyError(line: 1, column: 1, message: "YAML: \(error)")])
        }
        guard case .mapping(let m) = root else {
            throw PolicyErrors([
                PolicyError(line: root.mark?.line ?? 1, column: root.mark?.column ?? 1, message: "a policy must be a YAML mapping")
            ])
        }
        var nodes: [String: (key: Node, value: Node)] = [:]
        for (k, v) in m {
            guard case .scalar(let ks) = k else {
                fail(k.mark, "keys must be plain names")
                continue
            }
            if knownKeys.contains(ks.string) {
                nodes[ks.string] = (k, v)
            } else {
                fail(k.mark, "unknown key '\(ks.string)'\(suggestion(ks.string, among: knownKeys))")
            }
        }
        for r in requiredKeys where nodes[r] == nil {
            fail(root.mark, "missing required key '\(r)'")
        }

        var id: String?
        if let n = nodes["id"]?.value, let s = text(n, "id") ?? nil {
            if s.unicodeScalars.allSatisfy({ ($0 >= "a" && $0 <= "z") || ($0 >= "0" && $0 <= "9") || $0 == "-" }), s.count <= 100 {
                id = s
            } else {
                fail(n.mark, "id must be lowercase letters, digits and '-' (e.g. soe-rent-waiver), got \"\(s.prefix(40))\"")
            }
        }
        let revision = nodes["revision"].flatMap { int($0.value, "revision", min: 1) }
        let title = nodes["title"].flatMap { text($0.value, "title") ?? nil }
        let authority = nodes["authority"].flatMap { text($0.value, "authority") ?? nil }
        var benefit: BenefitKind?
        if let n = nodes["benefit"]?.value, let s = scalar(n, "benefit") {
            benefit = BenefitKind(rawValue: s.string)
            if benefit == nil {
                fail(s.mark, "benefit must be one of \(BenefitKind.allCases.map(\.rawValue).joined(separator: ", ")), got \(describe(s))")
            }
        }
        var channel: String?
        if let n = nodes["channel"]?.value, let s = text(n, "channel") ?? nil {
            let agency = s.hasPrefix("agency:") ? s.dropFirst("agency:".count) : nil
            if s == "treasury" || s == "lessor" || (agency.map(Channel.isAgencyName) ?? false) {
                channel = s
            } else if let agency {
                fail(
                    n.mark,
                    "channel agency:<name> takes a name of 1 to 40 lowercase letters, digits, - or _ (it names the agency's instruction files), got \"\(agency.prefix(40))\""
                )
            } else {
                fail(n.mark, "channel must be treasury, lessor or agency:<name>, got \"\(s.prefix(40))\"")
            }
        }
        var pool: String?
        if let n = nodes["pool"]?.value, let p = text(n, "pool", nullable: true) { pool = p }
        if benefit == .cash, pool == nil {
            fail(nodes["pool"]?.value.mark ?? root.mark, "a cash benefit needs a pool (the fund pool it is paid from)")
        }
        // Money leaves only through the treasury's credit transfers, and the treasury moves only
        // money: a lessor or an agency carries out waivers and deferrals, never pays cash.
        if let benefit, let channel {
            if benefit == .cash, channel != "treasury" {
                fail(nodes["channel"]?.value.mark, "a cash benefit is paid through the treasury channel, got \"\(channel)\"")
            } else if benefit != .cash, channel == "treasury" {
                fail(
                    nodes["channel"]?.value.mark,
                    "the treasury channel pays cash only; a \(benefit.rawValue) is carried out by the lessor or an agency:<name>")
            }
        }
        let requiresApplication = nodes["requires_application"].flatMap { bool($0.value, "requires_application") }

        var applyFrom: CivilDate?
        var applyUntil: CivilDate?
        var windowGiven = false
        if let (k, v) = nodes["window"] {
            if case .scalar(let s) = v, case .null = DocumentBuilder.resolve(s) {
                // window: null
            } else {
                windowGiven = true
                if let w = members(v, "window", k.mark, required: ["apply_from", "apply_until"]) {
                    applyFrom = w["apply_from"].flatMap { date($0, "window.apply_from") }
                    applyUntil = w["apply_until"].flatMap { date($0, "window.apply_until") }
                    if let a = applyFrom, let b = applyUntil, b < a {
                        fail(w["apply_until"]?.mark, "window.apply_until (\(b)) is before window.apply_from (\(a))")
                    }
                }
            }
        }
        if requiresApplication == true, !windowGiven {
            fail(
                nodes["requires_application"]?.value.mark,
                "requires_application is true, so the policy needs a window {apply_from, apply_until}")
        }

        var periodFrom: CivilDate?
        var periodTo: CivilDate?
        if let (k, v) = nodes["period"], let p = members(v, "period", k.mark, required: ["from", "to"]) {
            periodFrom = p["from"].flatMap { date($0, "period.from") }
            periodTo = p["to"].flatMap { date($0, "period.to") }
            if let a = periodFrom, let b = periodTo, b < a {
                fail(p["to"]?.mark, "period.to (\(b)) is before period.from (\(a))")
            }
        }
        var workingDays: Int?
        var autoApprove: Bool?
        if let (k, v) = nodes["disclosure"], let d = members(v, "disclosure", k.mark, required: ["working_days", "auto_approve"]) {
            workingDays = d["working_days"].flatMap { int($0, "disclosure.working_days", min: 0) }
            autoApprove = d["auto_approve"].flatMap { bool($0, "disclosure.auto_approve") }
        }
        var exclusiveGroup: String?
        if let n = nodes["exclusive_group"]?.value, let g = text(n, "exclusive_group", nullable: true) { exclusiveGroup = g }
        var per: PerKind?
        if let n = nodes["per"]?.value, let s = scalar(n, "per") {
            per = PerKind(rawValue: s.string)
            if per == nil { fail(s.mark, "per must be merchant, lease or damage, got \(describe(s))") }
        }
        var notes: String?
        if let n = nodes["notes"]?.value, let t = text(n, "notes", nullable: true) { notes = t }
        var standard: String?
        if let n = nodes["standard"]?.value, let t = text(n, "standard", nullable: true) { standard = t }
        var reviewers: [String] = []
        if let (k, v) = nodes["reviewers"] {
            if case .sequence(let seq) = v {
                for (i, item) in seq.enumerated() {
                    guard let name = text(item, "reviewers[\(i)]") ?? nil else { continue }
                    let trimmed = name
                    if reviewers.contains(trimmed) {
                        fail(item.mark, "reviewers[\(i)]: \(trimmed) is listed twice")
                    } else if reviewers.contains(where: { $0.contains(trimmed) || trimmed.contains($0) }) {
                        fail(item.mark, "reviewers[\(i)]: \(trimmed) and another reviewer's name contain one another")
                    } else {
                        reviewers.append(trimmed)
                    }
                }
                if seq.isEmpty { fail(k.mark, "reviewers must list at least one reviewer (or leave the key out)") }
                if autoApprove == true, !reviewers.isEmpty {
                    fail(k.mark, "a policy with reviewers is approved by them: set disclosure.auto_approve to false")
                }
            } else if case .scalar(let s) = v, case .null = DocumentBuilder.resolve(s) {
            } else {
                fail(k.mark, "reviewers must be a list of the bodies that must each approve, e.g. [经开区招商局, 市场监管经开区分局]")
            }
        }

        var params: [String: JSON] = [:]
        var paramsOK = true
        var paramFields: [(String, PType)] = []
        if let (k, v) = nodes["params"] {
            if case .mapping(let pm) = v {
                for (pk, pv) in pm {
                    let name = pk.string ?? ""
                    let okName =
                        !name.isEmpty
                        && name.unicodeScalars.allSatisfy { ($0 >= "a" && $0 <= "z") || ($0 >= "0" && $0 <= "9") || $0 == "_" }
                        && !(name.first!.isNumber)
                    guard okName else {
                        fail(pk.mark, "a param name must be lowercase letters, digits and '_', got \"\(name.prefix(40))\"")
                        paramsOK = false
                        continue
                    }
                    guard let j = paramValue(pv, "params.\(name)"), let t = DocumentBuilder.paramType(j) else {
                        paramsOK = false
                        continue
                    }
                    params[name] = j
                    paramFields.append((name, t))
                }
            } else if case .scalar(let s) = v, case .null = DocumentBuilder.resolve(s) {
            } else {
                fail(k.mark, "params must be a mapping of names to values")
            }
        }

        // Expressions.
        let (roots, unavailable) = DocumentBuilder.contextRoots(
            per: per, perBroken: per == nil && nodes["per"] != nil, window: windowGiven,
            params: ObjectSchema("params", paramFields))
        // When params has errors, do not add errors about the params that failed to parse.
        let quietParams = !paramsOK

        var eligible: CompiledExpression?
        var eligibleSource: String?
        if let n = nodes["eligible"]?.value, let s = scalar(n, "eligible") {
            let located = ExprSource.locate(s, in: src)
            eligibleSource = located.written
            eligible = compileExpression(located, roots, unavailable, quietParams, expect: .bool, what: "eligible", splitClauses: true)
        }
        var amount: CompiledExpression?
        var amountSource: String?
        if let n = nodes["amount_fen"]?.value, let s = scalar(n, "amount_fen") {
            let located = ExprSource.locate(s, in: src)
            amountSource = located.written
            amount = compileExpression(located, roots, unavailable, quietParams, expect: .number, what: "amount_fen", splitClauses: false)
        } else if nodes["amount_fen"] == nil, benefit == .cash || benefit == .rentWaiver {
            fail(root.mark, "missing required key 'amount_fen' (a \(benefit!.rawValue) benefit needs an amount)")
        }
        var priority: CompiledExpression?
        var prioritySource: String?
        if let n = nodes["priority"]?.value, let s = scalar(n, "priority") {
            if case .null = DocumentBuilder.resolve(s) {
            } else {
                let located = ExprSource.locate(s, in: src)
                prioritySource = located.written
                priority = compileExpression(located, roots, unavailable, quietParams, expect: .bool, what: "priority", splitClauses: false)
            }
        }
        var refundOnly: CompiledExpression?
        var refundOnlySource: String?
        if let n = nodes["refund_only"]?.value, let s = scalar(n, "refund_only") {
            if channel != "lessor" {
                fail(n.mark, "refund_only applies to rent waivers the lessor carries out (channel: lessor)")
            } else {
                let located = ExprSource.locate(s, in: src)
                refundOnlySource = located.written
                refundOnly = compileExpression(
                    located, roots, unavailable, quietParams, expect: .bool, what: "refund_only", splitClauses: false)
            }
        }

        guard errors.isEmpty, let id, let revision, let title, let authority, let benefit, let channel,
            let requiresApplication, let periodFrom, let periodTo, let workingDays, let autoApprove, let per,
            let eligible, let eligibleSource
        else {
            if errors.isEmpty { fail(root.mark, "the policy is incomplete") }
            throw PolicyErrors(errors)
        }
        var doc = PolicyDocument(
            id: id, revision: revision, title: title, authority: authority, benefit: benefit, channel: channel, pool: pool,
            requiresApplication: requiresApplication, applyFrom: applyFrom, applyUntil: applyUntil, periodFrom: periodFrom,
            periodTo: periodTo, disclosureWorkingDays: workingDays, autoApprove: autoApprove, exclusiveGroup: exclusiveGroup,
            per: per, notes: notes, eligibleSource: eligibleSource, amountSource: amountSource, prioritySource: prioritySource,
            params: params, reviewers: reviewers, standard: standard)
        doc.refundOnlySource = refundOnlySource
        return CompiledPolicy(
            document: doc, source: yaml, eligible: eligible, amount: amount, priority: priority, refundOnly: refundOnly,
            paramTypes: paramFields)
    }

    /// The context variables an expression may use (DESIGN §6.1), and why the others are not.
    static func contextRoots(per: PerKind?, perBroken: Bool, window: Bool, params: ObjectSchema)
        -> ([String: ExprCompiler.Root], [String: String])
    {
        var roots: [String: ExprCompiler.Root] = [
            "merchant": .init(slot: .merchant, type: .object(Schema.merchant)),
            "period": .init(slot: .period, type: .object(Schema.period)),
            "application": .init(slot: .application, type: .object(Schema.application)),
            "params": .init(slot: .params, type: .object(params)),
        ]
        var unavailable: [String: String] = [:]
        if window {
            roots["window"] = .init(slot: .window, type: .object(Schema.window))
        } else {
            unavailable["window"] = "this policy has no window: add window {apply_from, apply_until} to use it"
        }
        for kind in [PerKind.lease, .damage] {
            let schema = kind == .lease ? Schema.lease : Schema.damage
            // When `per` itself is wrong, do not add errors about the binding on top of that one.
            if per == kind || perBroken {
                roots[kind.rawValue] = .init(slot: .binding, type: .object(schema))
            } else {
                unavailable[kind.rawValue] = "'\(kind.rawValue)' is only defined in a policy with per: \(kind.rawValue)"
            }
        }
        return (roots, unavailable)
    }

    enum Expected { case bool, number }

    mutating func compileExpression(
        _ located: ExprSource, _ roots: [String: ExprCompiler.Root], _ unavailable: [String: String], _ quietParams: Bool,
        expect: Expected,
        what: String, splitClauses: Bool
    ) -> CompiledExpression? {
        let ast: Expr
        do {
            ast = try ExprParser.parse(located.text)
        } catch {
            let p = located.position(error.offset)
            errors.append(PolicyError(line: p.line, column: p.column, message: "\(what): \(error.message)"))
            return nil
        }
        let c = ExprCompiler(text: located.text, roots: roots, unavailable: unavailable)
        c.quietParams = quietParams
        var parts: [Expr] = []
        if splitClauses {
            flattenAnd(ast, into: &parts)
        } else {
            parts = [ast]
        }
        var clauses: [CompiledExpression.Clause] = []
        for part in parts {
            guard let t = c.compile(part) else { continue }
            switch expect {
            case .bool where t.type != .bool:
                c.error(part.start, "\(what) must be a bool (true or false), got \(t.type)")
            case .number where !(t.type == .int || t.type == .number):
                c.error(part.start, "\(what) must be a number (an amount in fen), got \(t.type)")
            default:
                clauses.append(.init(source: c.source(part), eval: t.eval))
            }
        }
        for d in c.diagnostics where !d.quiet {
            let p = located.position(d.offset)
            errors.append(PolicyError(line: p.line, column: p.column, message: "\(what): \(d.message)"))
        }
        guard c.diagnostics.isEmpty, clauses.count == parts.count else { return nil }
        return CompiledExpression(source: ExprCompiler.source(located.text, 0, located.text.count), clauses: clauses)
    }

    func flattenAnd(_ e: Expr, into out: inout [Expr]) {
        if case .binary(.and, let l, let r, _) = e.kind {
            flattenAnd(l, into: &out)
            flattenAnd(r, into: &out)
        } else {
            out.append(e)
        }
    }

    func yamlError(_ e: YamlError) -> PolicyError {
        switch e {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            let ctx = context.map { " (\($0.text))" } ?? ""
            return PolicyError(line: mark.line, column: mark.column, message: "YAML: \(problem)\(ctx)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            // Point at the second occurrence of the first duplicated key, if it can be found.
            if let key = duplicates.first {
                var seen = 0
                for (i, line) in src.lines.enumerated() {
                    let s = String(String.UnicodeScalarView(line))
                    let trimmed = s.drop { $0 == " " }
                    if trimmed.hasPrefix(key + ":") || trimmed.hasPrefix(key + " :") {
                        seen += 1
                        if seen == 2 {
                            return PolicyError(line: i + 1, column: s.count - trimmed.count + 1, message: "duplicate key '\(key)'")
                        }
                    }
                }
            }
            return PolicyError(
                line: context.mark.line, column: context.mark.column,
                message: "duplicate key(s) \(duplicates.map { "'\($0)'" }.joined(separator: ", "))")
        case .reader(let problem, _, _, _):
            return PolicyError(line: 1, column: 1, message: "YAML: \(problem)")
        default:
            return PolicyError(line: 1, column: 1, message: "YAML: \(e)")
        }
    }
}

extension Node {
    fileprivate var isMapping: Bool {
        if case .mapping = self { return true }
        return false
    }
}
