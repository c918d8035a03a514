import Models
import Synchronization

// Type-checks an expression against the context schema and compiles it, once, to Swift
// closures (DESIGN §6.1). Run-time evaluation never looks at the text again.

typealias Eval = @Sendable (EvalContext) throws(EvalError) -> Value

/// A checked, compiled expression: its static type, its closure and, for a field path rooted
/// at a context variable, the static path (e.g. `merchant.tags.size`).
struct Typed {
    var type: PType
    var eval: Eval
    var path: String?
}

/// Counts expression parses, so that tests can prove that evaluation never re-parses.
public final class ParseCounter: Sendable {
    private let value = Mutex(0)
    public init() {}
    public var count: Int { value.withLock { $0 } }
    func increment() { value.withLock { $0 += 1 } }

    /// The counter in effect for this task (set it with `ParseCounter.$current.withValue`).
    @TaskLocal public static var current: ParseCounter?
}

/// The functions and methods of the fixed library (for error messages).
let libraryFunctions = [
    "abs", "date", "days_between", "has", "max", "min", "overlap_days", "root_lessor", "size", "sublet", "sum",
    "sum_closure_days",
]
let libraryMethods = ["all", "contains", "endsWith", "exists", "filter", "find", "map", "size", "startsWith"]

final class ExprCompiler {
    struct Root {
        var slot: RootSlot
        var type: PType
    }

    private(set) var diagnostics: [ExprDiagnostic] = []
    let roots: [String: Root]
    /// Context names that exist in the language but not in this policy, with the reason.
    let unavailable: [String: String]
    let text: [Unicode.Scalar]
    var vars: [(name: String, type: PType)] = []
    /// Set when the document's params had errors: unknown params are then not reported again.
    var quietParams = false

    init(text: [Unicode.Scalar], roots: [String: Root], unavailable: [String: String]) {
        self.text = text
        self.roots = roots
        self.unavailable = unavailable
    }

    func error(_ offset: Int, _ message: String) {
        diagnostics.append(ExprDiagnostic(offset: offset, message: message))
    }

    /// The source text of `e`, comments dropped and whitespace collapsed to single spaces.
    func source(_ e: Expr) -> String {
        ExprCompiler.source(text, e.start, e.end)
    }

    static func source(_ text: [Unicode.Scalar], _ start: Int, _ end: Int) -> String {
        var out = String.UnicodeScalarView()
        var quote: Unicode.Scalar?
        var inComment = false
        var pendingSpace = false
        var escaped = false
        for c in text[max(0, start)..<min(end, text.count)] {
            if inComment {
                if c == "\n" {
                    inComment = false
                    pendingSpace = true
                }
                continue
            }
            if let q = quote {
                out.append(c)
                if escaped {
                    escaped = false
                } else if c == "\\" {
                    escaped = true
                } else if c == q {
                    quote = nil
                }
                continue
            }
            if c == "#" {
                inComment = true
                continue
            }
            if c == " " || c == "\n" || c == "\t" || c == "\r" {
                pendingSpace = true
                continue
            }
            if pendingSpace && !out.isEmpty { out.append(" ") }
            pendingSpace = false
            if c == "\"" || c == "'" { quote = c }
            out.append(c)
        }
        return String(out)
    }

    // MARK: - Expressions

    func compile(_ e: Expr) -> Typed? {
        switch e.kind {
        case .int(let v):
            let val = Value.num(Rational(v))
            return Typed(type: .int, eval: { _ in val })
        case .decimal(let r):
            let val = Value.num(r)
            return Typed(type: r.isInteger ? .int : .number, eval: { _ in val })
        case .string(let s):
            let val = Value.str(s)
            return Typed(type: .string, eval: { _ in val })
        case .bool(let b):
            let val = Value.bool(b)
            return Typed(type: .bool, eval: { _ in val })
        case .list(let items):
            return compileList(items)
        case .ident(let name):
            return compileIdent(name, at: e.start)
        case .select(let base, let name, let namePos):
            return compileSelect(base, name, namePos)
        case .call(let name, let args):
            return compileCall(name, args, e)
        case .method(let base, let name, let args, let namePos):
            return compileMethod(base, name, args, namePos, e)
        case .unary(let op, let x):
            return compileUnary(op, x, e)
        case .binary(let op, let l, let r, let opPos):
            return compileBinary(op, l, r, opPos, e)
        case .cond(let c, let a, let b):
            return compileCond(c, a, b)
        }
    }

    private func compileList(_ items: [Expr]) -> Typed? {
        let typed = items.map { compile($0) }
        var elem = PType.any
        var ok = true
        for (t, item) in zip(typed, items) {
            guard let t else {
                ok = false
                continue
            }
            guard let u = PType.unify(elem, t.type) else {
                error(item.start, "a list's elements must all have one type: \(elem) and \(t.type) are mixed")
                ok = false
                continue
            }
            elem = u
        }
        guard ok else { return nil }
        let evals = typed.map { $0!.eval }
        return Typed(
            type: .list(elem),
            eval: { (ctx) throws(EvalError) in
                var out: [Value] = []
                out.reserveCapacity(evals.count)
                for f in evals { out.append(try f(ctx)) }
                return .list(out)
            })
    }

    private func compileIdent(_ name: String, at offset: Int) -> Typed? {
        if let slot = vars.lastIndex(where: { $0.name == name }) {
            return Typed(type: vars[slot].type, eval: { ctx in ctx.vars[slot] })
        }
        if let r = roots[name] {
            let slot = r.slot.rawValue
            return Typed(type: r.type, eval: { ctx in ctx.roots[slot] }, path: name)
        }
        if let why = unavailable[name] {
            error(offset, why)
            return nil
        }
        if libraryFunctions.contains(name) {
            error(offset, "'\(name)' is a function: call it as \(name)(…)")
            return nil
        }
        let known = (roots.keys.sorted() + vars.map(\.name)).joined(separator: ", ")
        error(offset, "unknown name '\(name)' (known: \(known))")
        return nil
    }

    /// Reads field `name` of an object value (recording the read for the trace).
    static func read(
        _ v: Value, _ name: String, _ t: PType, _ ctx: EvalContext,
        derived: (matches: @Sendable (JSON) -> Bool, fact: String)? = nil
    ) throws(EvalError) -> Value {
        switch v {
        case .unknown: return v
        case .obj(let o, let base):
            let p = base + "." + name
            let j = o[name] ?? .null
            if case .object = j {} else { ctx.record(p, j) }
            if let derived, derived.matches(j) { return .unknown([derived.fact]) }
            if j.isNull { return .unknown([p]) }
            return try Value.from(j, t, path: p)
        default:
            throw EvalError("field '\(name)' read from a value that is not an object")
        }
    }

    private func compileSelect(_ base: Expr, _ name: String, _ namePos: Int) -> Typed? {
        guard let b = compile(base) else { return nil }
        guard case .object(let schema) = b.type else {
            let hint = name == "size" || name == "length" ? "; for its length use size(\(source(base)))" : ""
            error(namePos, "\(source(base)) is a \(b.type), it has no field '\(name)'\(hint)")
            return nil
        }
        guard let ft = schema.field(name) else {
            if quietParams, schema.name == "params" {
                // The document's params had errors; this one is probably among them.
                diagnostics.append(ExprDiagnostic(offset: namePos, message: "", quiet: true))
                return nil
            }
            let hint = name == "size" || name == "length" ? "; for a list's length use size(…)" : ""
            error(namePos, "unknown field '\(name)' of \(source(base)) (\(schema.name) has: \(schema.fieldNames))\(hint)")
            return nil
        }
        let path = b.path.map { $0 + "." + name }
        let derived = path.flatMap { Schema.derived[$0] }
        let be = b.eval
        return Typed(
            type: ft,
            eval: { (ctx) throws(EvalError) in
                try ExprCompiler.read(try be(ctx), name, ft, ctx, derived: derived)
            }, path: path)
    }

    // MARK: - Operators

    private func compileUnary(_ op: UnaryOp, _ x: Expr, _ e: Expr) -> Typed? {
        guard let t = compile(x) else { return nil }
        let f = t.eval
        switch op {
        case .not:
            guard t.type == .bool else {
                error(e.start, "'!' needs a bool, got \(t.type)")
                return nil
            }
            return Typed(
                type: .bool,
                eval: { (ctx) throws(EvalError) in
                    let v = try f(ctx)
                    if case .bool(let b) = v { return .bool(!b) }
                    return v
                })
        case .negate:
            guard t.type.isNumeric else {
                error(e.start, "'-' needs a number, got \(t.type)")
                return nil
            }
            let snippet = source(e)
            return Typed(
                type: t.type,
                eval: { (ctx) throws(EvalError) in
                    let v = try f(ctx)
                    guard case .num(let r) = v else { return v }
                    do throws(Rational.ArithmeticError) { return .num(try r.negated()) } catch {
                        throw EvalError("\(error.message) in `\(snippet)`")
                    }
                })
        }
    }

    private func compileBinary(_ op: BinaryOp, _ l: Expr, _ r: Expr, _ opPos: Int, _ e: Expr) -> Typed? {
        let lt = compile(l)
        let rt = compile(r)
        guard let lt, let rt else { return nil }
        let lf = lt.eval
        let rf = rt.eval
        let snippet = source(e)
        switch op {
        case .and, .or:
            guard lt.type == .bool, rt.type == .bool else {
                let bad = lt.type == .bool ? rt : lt
                error(lt.type == .bool ? r.start : l.start, "'\(op.rawValue)' needs bools, got \(bad.type)")
                return nil
            }
            let absorbing = op == .or  // true absorbs in ||, false in &&
            return Typed(
                type: .bool,
                eval: { (ctx) throws(EvalError) in
                    try ExprCompiler.logical(absorbing: absorbing, [lf, rf], ctx)
                })
        case .lt, .le, .gt, .ge:
            let ok =
                (lt.type.isNumeric && rt.type.isNumeric) || (lt.type == .date && rt.type == .date)
                || (lt.type == .string && rt.type == .string)
            guard ok else {
                error(opPos, "'\(op.rawValue)' cannot compare \(lt.type) with \(rt.type) (numbers, dates or strings, both the same)")
                return nil
            }
            let test: @Sendable (Int) -> Bool =
                switch op {
                case .lt: { $0 < 0 }
                case .le: { $0 <= 0 }
                case .gt: { $0 > 0 }
                default: { $0 >= 0 }
                }
            return Typed(
                type: .bool,
                eval: { (ctx) throws(EvalError) in
                    let a = try lf(ctx)
                    let b = try rf(ctx)
                    if let u = Value.unknowns(a, b) { return u }
                    guard let c = ExprCompiler.order(a, b) else { throw EvalError("cannot compare in `\(snippet)`") }
                    return .bool(test(c))
                })
        case .eq, .ne:
            guard let u = PType.unify(lt.type, rt.type) else {
                error(opPos, "'\(op.rawValue)' compares values of one type, got \(lt.type) and \(rt.type)")
                return nil
            }
            if case .object = u {
                error(opPos, "'\(op.rawValue)' cannot compare objects; compare their fields")
                return nil
            }
            let negate = op == .ne
            return Typed(
                type: .bool,
                eval: { (ctx) throws(EvalError) in
                    let v = Value.equal(try lf(ctx), try rf(ctx))
                    if negate, case .bool(let b) = v { return .bool(!b) }
                    return v
                })
        case .in:
            guard case .list(let elem) = rt.type else {
                error(opPos, "'in' needs a list on its right, got \(rt.type)")
                return nil
            }
            guard PType.unify(lt.type, elem) != nil else {
                error(opPos, "'in' looks for a \(lt.type) in a list of \(elem)")
                return nil
            }
            return Typed(
                type: .bool,
                eval: { (ctx) throws(EvalError) in
                    let x = try lf(ctx)
                    let list = try rf(ctx)
                    if let u = Value.unknowns(x, list) { return u }
                    guard case .list(let items) = list else { throw EvalError("'in' needs a list in `\(snippet)`") }
                    var missing: Set<String>?
                    for item in items {
                        switch Value.equal(x, item) {
                        case .bool(true): return .true
                        case .unknown(let m): missing = (missing ?? []).union(m)
                        default: break
                        }
                    }
                    return missing.map { .unknown($0) } ?? .false
                })
        case .add, .sub, .mul, .div, .mod:
            if op == .add, lt.type == .string, rt.type == .string {
                return Typed(
                    type: .string,
                    eval: { (ctx) throws(EvalError) in
                        let a = try lf(ctx)
                        let b = try rf(ctx)
                        if let u = Value.unknowns(a, b) { return u }
                        guard case .str(let x) = a, case .str(let y) = b else { throw EvalError("bad operands in `\(snippet)`") }
                        return .str(x + y)
                    })
            }
            guard lt.type.isNumeric, rt.type.isNumeric else {
                let also = op == .add ? " (or two strings)" : ""
                error(opPos, "'\(op.rawValue)' needs two numbers\(also), got \(lt.type) and \(rt.type)")
                return nil
            }
            if op == .mod, lt.type != .int || rt.type != .int {
                error(opPos, "'%' needs two integers, got \(lt.type) and \(rt.type)")
                return nil
            }
            let type: PType = op != .div && lt.type == .int && rt.type == .int ? .int : .number
            let fn: @Sendable (Rational, Rational) throws(Rational.ArithmeticError) -> Rational =
                switch op {
                case .add: { (a, b) throws(Rational.ArithmeticError) in try a.adding(b) }
                case .sub: { (a, b) throws(Rational.ArithmeticError) in try a.subtracting(b) }
                case .mul: { (a, b) throws(Rational.ArithmeticError) in try a.multiplied(by: b) }
                case .div: { (a, b) throws(Rational.ArithmeticError) in try a.divided(by: b) }
                default: { (a, b) throws(Rational.ArithmeticError) in try a.remainder(dividingBy: b) }
                }
            return Typed(
                type: type,
                eval: { (ctx) throws(EvalError) in
                    let a = try lf(ctx)
                    let b = try rf(ctx)
                    if let u = Value.unknowns(a, b) { return u }
                    guard case .num(let x) = a, case .num(let y) = b else { throw EvalError("bad operands in `\(snippet)`") }
                    do throws(Rational.ArithmeticError) { return .num(try fn(x, y)) } catch {
                        throw EvalError("\(error.message) in `\(snippet)`")
                    }
                })
        }
    }

    /// `&&` (absorbing false) and `||` (absorbing true) over operands, with CEL's commutative
    /// treatment of unknowns and errors: an absorbing value wins over both; then unknown (naming
    /// every fact that could decide it: it may yet turn out absorbing); then an error.
    static func logical(absorbing: Bool, _ operands: [Eval], _ ctx: EvalContext) throws(EvalError) -> Value {
        try logical(absorbing: absorbing, operands) { (f) throws(EvalError) in try f(ctx) }
    }

    /// The same rule over any sequence, each element evaluated on demand (`exists`, `all`).
    static func logical<S: Sequence>(
        absorbing: Bool, _ elements: S, _ evaluate: (S.Element) throws(EvalError) -> Value
    ) throws(EvalError) -> Value {
        var missing: Set<String>?
        var firstError: EvalError?
        for e in elements {
            let v: Value
            do throws(EvalError) { v = try evaluate(e) } catch {
                if firstError == nil { firstError = error }
                continue
            }
            switch v {
            case .bool(let b) where b == absorbing: return .bool(absorbing)
            case .unknown(let m): missing = (missing ?? []).union(m)
            default: break
            }
        }
        if let missing { return .unknown(missing) }
        if let firstError { throw firstError }
        return .bool(!absorbing)
    }

    /// The order of two known values of one comparable kind.
    static func order(_ a: Value, _ b: Value) -> Int? {
        switch (a, b) {
        case (.num(let x), .num(let y)): x < y ? -1 : (x == y ? 0 : 1)
        case (.date(let x), .date(let y)): x < y ? -1 : (x == y ? 0 : 1)
        case (.str(let x), .str(let y)): x < y ? -1 : (x == y ? 0 : 1)
        default: nil
        }
    }

    private func compileCond(_ c: Expr, _ a: Expr, _ b: Expr) -> Typed? {
        let ct = compile(c)
        let at = compile(a)
        let bt = compile(b)
        guard let ct, let at, let bt else { return nil }
        guard ct.type == .bool else {
            error(c.start, "the condition of '?:' must be a bool, got \(ct.type)")
            return nil
        }
        guard let u = PType.unify(at.type, bt.type) else {
            error(b.start, "both branches of '?:' must have one type, got \(at.type) and \(bt.type)")
            return nil
        }
        let cf = ct.eval
        let af = at.eval
        let bf = bt.eval
        return Typed(
            type: u,
            eval: { (ctx) throws(EvalError) in
                let v = try cf(ctx)
                switch v {
                case .bool(true): return try af(ctx)
                case .bool(false): return try bf(ctx)
                default: return v
                }
            })
    }
}
