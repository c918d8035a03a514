import Models

// Static types (checked at publish time) and run-time values of the expression language.

/// The shape of an object the expressions can read: its fields and their types.
final class ObjectSchema: Sendable {
    let name: String
    let fields: [(name: String, type: PType)]

    init(_ name: String, _ fields: [(String, PType)]) {
        self.name = name
        self.fields = fields.map { (name: $0.0, type: $0.1) }
    }

    func field(_ n: String) -> PType? { fields.first { $0.name == n }?.type }

    var fieldNames: String { fields.map(\.name).joined(separator: ", ") }
}

/// A static type. `int` is a subtype of `number` (an exact rational); `any` is the element type
/// of the empty list literal and unifies with everything.
indirect enum PType: Sendable, Equatable, CustomStringConvertible {
    case int
    case number
    case bool
    case string
    case date
    case list(PType)
    case object(ObjectSchema)
    case any

    static func == (a: PType, b: PType) -> Bool {
        switch (a, b) {
        case (.int, .int), (.number, .number), (.bool, .bool), (.string, .string), (.date, .date), (.any, .any): true
        case (.list(let x), .list(let y)): x == y
        case (.object(let x), .object(let y)): x === y
        default: false
        }
    }

    var isNumeric: Bool { self == .int || self == .number || self == .any }

    var description: String {
        switch self {
        case .int: "int"
        case .number: "number"
        case .bool: "bool"
        case .string: "string"
        case .date: "date"
        case .list(let e): "list<\(e)>"
        case .object(let s): s.name
        case .any: "any"
        }
    }

    /// The common type of two types (for `==`, list literals, `?:` branches), or nil.
    static func unify(_ a: PType, _ b: PType) -> PType? {
        switch (a, b) {
        case (.any, _): b
        case (_, .any): a
        case (.int, .number), (.number, .int): .number
        case (.list(let x), .list(let y)): unify(x, y).map { .list($0) }
        default: a == b ? a : nil
        }
    }
}

/// The context the expressions are checked against (DESIGN §6.1, the `merchant.profiled` data §4).
enum Schema {
    static let lessor = ObjectSchema(
        "lessor", [("name", .string), ("uscc", .string), ("ownership", .string), ("level", .string)])
    /// The term of a lease that sublets another onwards.
    static let sublease = ObjectSchema("sublease", [("lease_id", .string), ("starts_on", .date), ("ends_on", .date)])
    static let lease = ObjectSchema(
        "lease",
        [
            ("lease_id", .string), ("lessor", .object(lessor)), ("root_lessor", .object(lessor)),
            ("chain_complete", .bool), ("sublease_of", .string), ("sublet", .bool), ("sublets", .list(.object(sublease))),
            ("use", .string), ("monthly_rent_fen", .int), ("starts_on", .date), ("ends_on", .date),
        ])
    static let damage = ObjectSchema("damage", [("event", .string), ("loss_fen", .int), ("evidence", .list(.string))])
    static let closure = ObjectSchema(
        "closure", [("from", .date), ("to", .date), ("reason", .string), ("district", .string)])
    static let creditFlag = ObjectSchema("credit_flag", [("list", .string), ("since", .date)])
    static let account = ObjectSchema(
        "account",
        [
            ("bank", .string), ("account_no", .string), ("fingerprint", .string), ("holder_name", .string),
            ("holder_matches", .bool), ("verified_on", .date),
        ])
    static let aid = ObjectSchema(
        "aid", [("programme", .string), ("source", .string), ("amount_fen", .int), ("on", .date)])
    static let fraud = ObjectSchema("fraud", [("finding", .string), ("confirmed_by", .string)])
    static let finance = ObjectSchema(
        "finance", [("year", .int), ("employees", .int), ("operating_revenue_fen", .int), ("total_assets_fen", .int)])
    static let tax = ObjectSchema(
        "tax",
        [
            ("period", .string), ("revenue_fen", .int), ("taxpayer_class", .string), ("tax_paid_fen", .int),
            ("tax_relief_fen", .int),
        ])
    static let socialInsurance = ObjectSchema("social_insurance", [("month", .string), ("insured_employees", .int)])
    static let tags = ObjectSchema(
        "tags", [("size", .string), ("sector", .string), ("service_industry", .bool), ("priority_sector", .bool)])
    static let legalRep = ObjectSchema("legal_rep", [("name", .string), ("id_number", .string), ("id_fingerprint", .string)])
    static let contact = ObjectSchema(
        "contact", [("phone", .string), ("phone_fingerprint", .string), ("address_fingerprint", .string)])
    static let merchant = ObjectSchema(
        "merchant",
        [
            ("uscc", .string), ("name", .string), ("kind", .string), ("industry", .string), ("district", .string),
            ("registered_on", .date), ("status", .string), ("version", .int), ("legal_rep", .object(legalRep)),
            ("contact", .object(contact)),
            ("tags", .object(tags)), ("finance", .object(finance)), ("tax", .object(tax)),
            ("tax_history", .list(.object(tax))), ("social_insurance", .object(socialInsurance)),
            ("social_insurance_history", .list(.object(socialInsurance))), ("leases", .list(.object(lease))),
            ("closures", .list(.object(closure))), ("damages", .list(.object(damage))),
            ("credit_flags", .list(.object(creditFlag))), ("account", .object(account)), ("aid", .list(.object(aid))),
            ("fraud", .list(.object(fraud))), ("disqualified", .bool),
        ])
    static let period = ObjectSchema("period", [("from", .date), ("to", .date)])
    static let window = ObjectSchema("window", [("apply_from", .date), ("apply_until", .date)])
    static let application = ObjectSchema("application", [("submitted_on", .date), ("documents", .list(.string))])

    /// Fields whose published value stands for a missing fact: reading them yields `unknown`,
    /// naming the facts that would decide them (the registry tags a merchant `unknown` size when
    /// it has no finance figures, DESIGN §5.1).
    static let derived: [String: (matches: @Sendable (JSON) -> Bool, fact: String)] = [
        "merchant.tags.size": ({ $0 == .string("unknown") || $0 == .null }, "merchant.finance"),
        "merchant.tags.sector": ({ $0 == .null }, "merchant.industry"),
        "merchant.tags.service_industry": ({ $0 == .null }, "merchant.industry"),
        "merchant.tags.priority_sector": ({ $0 == .null }, "merchant.industry"),
    ]
}

/// A run-time failure (overflow, division by zero, a fact of the wrong type): reported in the
/// determination, never silently wrapped or defaulted.
struct EvalError: Error, Sendable {
    var message: String
    init(_ message: String) { self.message = message }
}

/// A run-time value. `unknown` carries the paths of the facts that would decide it.
enum Value: Sendable {
    case num(Rational)
    case bool(Bool)
    case str(String)
    case date(CivilDate)
    case list([Value])
    /// A JSON object and the path it was read from (e.g. `merchant.leases[2]`).
    case obj(JSONObject, path: String)
    case unknown(Set<String>)

    static let `true` = Value.bool(true)
    static let `false` = Value.bool(false)

    var missing: Set<String>? {
        if case .unknown(let m) = self { return m }
        return nil
    }

    /// The union of the unknowns among `vs`, or nil when none is unknown.
    static func unknowns(_ vs: Value...) -> Value? {
        var out: Set<String>?
        for v in vs {
            if case .unknown(let m) = v { out = (out ?? []).union(m) }
        }
        return out.map { .unknown($0) }
    }

    /// Converts a fact to a value of the statically expected type.
    static func from(_ j: JSON, _ t: PType, path: String) throws(EvalError) -> Value {
        switch (t, j) {
        case (_, .null): return .unknown([path])
        case (.int, .int(let v)), (.number, .int(let v)): return .num(Rational(v))
        case (.number, .number(let s)):
            guard let r = Rational.parseDecimal(s) else { throw EvalError("\(path): number \(s) is not exact or out of range") }
            return .num(r)
        case (.bool, .bool(let b)): return .bool(b)
        case (.string, .string(let s)): return .str(s)
        case (.date, .string(let s)):
            do {
                return .date(try CivilDate.parsing(s))
            } catch {
                throw EvalError("\(path): \(error.message)")
            }
        case (.list(let e), .array(let a)):
            var out: [Value] = []
            out.reserveCapacity(a.count)
            for (i, x) in a.enumerated() { out.append(try from(x, e, path: "\(path)[\(i)]")) }
            return .list(out)
        case (.object, .object(let o)): return .obj(o, path: path)
        case (.any, _): return try untyped(j, path: path)
        default:
            throw EvalError("\(path): expected \(t), found \(j.kindName) \(j.serialized().prefix(40))")
        }
    }

    /// A value from JSON without a static type (constants whose type is inferred from the value).
    static func untyped(_ j: JSON, path: String) throws(EvalError) -> Value {
        switch j {
        case .null: return .unknown([path])
        case .bool(let b): return .bool(b)
        case .int(let v): return .num(Rational(v))
        case .number(let s):
            guard let r = Rational.parseDecimal(s) else { throw EvalError("\(path): number \(s) is not exact") }
            return .num(r)
        case .string(let s): return CivilDate.parse(s).map { .date($0) } ?? .str(s)
        case .array(let a):
            var out: [Value] = []
            for (i, x) in a.enumerated() { out.append(try untyped(x, path: "\(path)[\(i)]")) }
            return .list(out)
        case .object(let o): return .obj(o, path: path)
        }
    }

    /// The value as JSON, for traces (an exact non-integer is shown as its `"n/d"` string).
    var json: JSON {
        switch self {
        case .num(let r): r.isInteger ? .int(r.numerator) : .string(r.fraction)
        case .bool(let b): .bool(b)
        case .str(let s): .string(s)
        case .date(let d): .string(d.description)
        case .list(let a): .array(a.map(\.json))
        case .obj(let o, _): .object(o)
        case .unknown: .string("unknown")
        }
    }

    /// Three-valued equality.
    static func equal(_ a: Value, _ b: Value) -> Value {
        if let u = unknowns(a, b) { return u }
        switch (a, b) {
        case (.num(let x), .num(let y)): return .bool(x == y)
        case (.bool(let x), .bool(let y)): return .bool(x == y)
        case (.str(let x), .str(let y)): return .bool(x == y)
        case (.date(let x), .date(let y)): return .bool(x == y)
        case (.list(let x), .list(let y)):
            guard x.count == y.count else { return .false }
            var missing: Set<String>?
            for (p, q) in zip(x, y) {
                switch equal(p, q) {
                case .bool(false): return .false
                case .unknown(let m): missing = (missing ?? []).union(m)
                default: break
                }
            }
            return missing.map { .unknown($0) } ?? .true
        case (.obj(let x, _), .obj(let y, _)): return .bool(x == y)
        default: return .false
        }
    }
}

/// The mutable state of one evaluation: the root values, the macro variables in scope and the
/// reads recorded for the trace. Local to one call of `evaluate`.
final class EvalContext {
    /// Indexed by `RootSlot`.
    var roots: [Value]
    /// Macro variables (`x` in `list.exists(x, …)`), a stack indexed by nesting depth.
    var vars: [Value] = []
    /// Inputs read, in order, by path (the trace).
    var reads: [(path: String, value: JSON)] = []
    var seen: Set<String> = []
    /// When false (screening), nothing is recorded: the trace is built later, only for the
    /// determinations that need one.
    let tracing: Bool

    init(roots: [Value], tracing: Bool = true) {
        self.roots = roots
        self.tracing = tracing
    }

    func record(_ path: String, _ value: JSON) {
        guard tracing else { return }
        // Elements of lists are covered by the list itself.
        guard !path.utf8.contains(UInt8(ascii: "[")), seen.insert(path).inserted else { return }
        reads.append((path, value))
    }

    func takeReads() -> [(path: String, value: JSON)] {
        defer {
            reads = []
            seen = []
        }
        return reads
    }
}

enum RootSlot: Int, CaseIterable {
    case merchant, period, window, application, params, binding
}
