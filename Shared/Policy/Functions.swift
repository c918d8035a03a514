import Models

// The fixed function library (DESIGN §6.1). Each function is checked at publish time and
// compiled to a closure; every one runs in time linear in its input (sum_closure_days sorts).

extension ExprCompiler {
    private func arity(_ name: String, _ args: [Expr], _ n: Int, _ e: Expr) -> Bool {
        guard args.count == n else {
            error(e.start, "'\(name)' takes \(n) argument\(n == 1 ? "" : "s"), got \(args.count)")
            return false
        }
        return true
    }

    /// The names of the start and end date fields of an interval-like object.
    private func intervalFields(_ t: PType) -> (String, String)? {
        guard case .object(let s) = t else { return nil }
        if s.field("starts_on") == .date, s.field("ends_on") == .date { return ("starts_on", "ends_on") }
        if s.field("from") == .date, s.field("to") == .date { return ("from", "to") }
        return nil
    }

    private static func isPath(_ e: Expr) -> Bool {
        switch e.kind {
        case .ident: true
        case .select(let b, _, _): isPath(b)
        default: false
        }
    }

    /// Function results an auditor needs to check a number by hand, recorded in the trace as
    /// `call text = value` (not inside a macro, where one entry would stand for many values).
    private static let tracedFunctions: Set<String> = [
        "days_between", "max", "min", "overlap_days", "size", "sum", "sum_closure_days",
    ]

    func compileCall(_ name: String, _ args: [Expr], _ e: Expr) -> Typed? {
        guard let t = compileCallUntraced(name, args, e) else { return nil }
        guard vars.isEmpty, ExprCompiler.tracedFunctions.contains(name) else { return t }
        let f = t.eval
        let key = source(e)
        return Typed(
            type: t.type,
            eval: { (ctx) throws(EvalError) in
                let v = try f(ctx)
                if case .unknown = v {} else { ctx.record(key, v.json) }
                return v
            }, path: t.path)
    }

    private func compileCallUntraced(_ name: String, _ args: [Expr], _ e: Expr) -> Typed? {
        guard libraryFunctions.contains(name) else {
            let hint: String
            switch name {
            case "count", "len", "length": hint = "; use size(…)"
            case "exists", "all", "filter", "find", "map": hint = "; write it as a method: list.\(name)(x, …)"
            default: hint = ""
            }
            error(e.start, "unknown function '\(name)' (functions: \(libraryFunctions.joined(separator: ", ")))\(hint)")
            for a in args { _ = compile(a) }
            return nil
        }
        switch name {
        case "date":
            guard arity(name, args, 1, e) else { return nil }
            guard case .string(let s) = args[0].kind else {
                error(args[0].start, "date(…) takes a string literal, such as date(\"2022-04-01\")")
                return nil
            }
            do {
                let val = Value.date(try CivilDate.parsing(s))
                return Typed(type: .date, eval: { _ in val })
            } catch {
                self.error(args[0].start, "date(…): \(error.message)")
                return nil
            }
        case "has":
            guard arity(name, args, 1, e) else { return nil }
            guard ExprCompiler.isPath(args[0]) else {
                error(args[0].start, "has(…) takes a field path, such as has(merchant.finance)")
                return nil
            }
            guard let t = compile(args[0]) else { return nil }
            let f = t.eval
            return Typed(
                type: .bool,
                eval: { (ctx) throws(EvalError) in
                    if case .unknown = try f(ctx) { return .false }
                    return .true
                })
        default:
            break
        }
        let typed = args.map { compile($0) }
        guard typed.allSatisfy({ $0 != nil }) else { return nil }
        let ts = typed.map { $0! }
        let snippet = source(e)
        switch name {
        case "size":
            guard arity(name, args, 1, e) else { return nil }
            return sizeOf(ts[0], args[0])
        case "abs":
            guard arity(name, args, 1, e) else { return nil }
            guard ts[0].type.isNumeric else {
                error(args[0].start, "abs(…) needs a number, got \(ts[0].type)")
                return nil
            }
            let f = ts[0].eval
            return Typed(
                type: ts[0].type,
                eval: { (ctx) throws(EvalError) in
                    let v = try f(ctx)
                    guard case .num(let r) = v else { return v }
                    do throws(Rational.ArithmeticError) { return .num(try r.magnitude()) } catch {
                        throw EvalError("\(error.message) in `\(snippet)`")
                    }
                })
        case "min", "max":
            return minMax(name, ts, args, e)
        case "sum":
            guard arity(name, args, 1, e) else { return nil }
            guard case .list(let el) = ts[0].type, el.isNumeric else {
                error(args[0].start, "sum(…) needs a list of numbers, got \(ts[0].type)")
                return nil
            }
            let f = ts[0].eval
            return Typed(
                type: el == .number ? .number : .int,
                eval: { (ctx) throws(EvalError) in
                    let v = try f(ctx)
                    guard case .list(let items) = v else { return v }
                    if let u = Value.unknowns(items) { return u }
                    var total = Rational.zero
                    for case .num(let r) in items {
                        do throws(Rational.ArithmeticError) { total = try total.adding(r) } catch {
                            throw EvalError("\(error.message) in `\(snippet)`")
                        }
                    }
                    return .num(total)
                })
        case "days_between":
            guard arity(name, args, 2, e) else { return nil }
            for (t, a) in zip(ts, args) where t.type != .date {
                error(a.start, "days_between(…) needs two dates, got \(t.type)")
                return nil
            }
            let f = ts[0].eval
            let g = ts[1].eval
            return Typed(
                type: .int,
                eval: { (ctx) throws(EvalError) in
                    let a = try f(ctx)
                    let b = try g(ctx)
                    if let u = Value.unknowns(a, b) { return u }
                    guard case .date(let x) = a, case .date(let y) = b else { throw EvalError("days_between needs dates") }
                    // DESIGN §5.3: day counts include both ends (`days_between(d, d)` is 1).
                    return .num(Rational(Int64(y.dayNumber - x.dayNumber + 1)))
                })
        case "overlap_days":
            guard arity(name, args, 2, e) else { return nil }
            guard let (xs, xe) = intervalFields(ts[0].type) else {
                error(
                    args[0].start,
                    "overlap_days(…) needs a lease or a closure (an object with starts_on/ends_on or from/to dates), got \(ts[0].type)")
                return nil
            }
            guard let (ps, pe) = intervalFields(ts[1].type), ps == "from" else {
                error(args[1].start, "overlap_days(…) needs a period (an object with from/to dates) second, got \(ts[1].type)")
                return nil
            }
            let f = ts[0].eval
            let g = ts[1].eval
            return Typed(
                type: .int,
                eval: { (ctx) throws(EvalError) in
                    let x = try f(ctx)
                    let p = try g(ctx)
                    let a = try ExprCompiler.read(x, xs, .date, ctx)
                    let b = try ExprCompiler.read(x, xe, .date, ctx)
                    let c = try ExprCompiler.read(p, ps, .date, ctx)
                    let d = try ExprCompiler.read(p, pe, .date, ctx)
                    if let u = Value.unknowns(x, p, a, b, c, d) { return u }
                    guard case .date(let s1) = a, case .date(let e1) = b, case .date(let s2) = c, case .date(let e2) = d else {
                        throw EvalError("overlap_days needs dates")
                    }
                    return .num(Rational(Int64(CivilDate.daysInclusive(from: max(s1, s2), to: min(e1, e2)))))
                })
        case "sum_closure_days":
            guard arity(name, args, 3, e) else { return nil }
            guard case .list(let el) = ts[0].type, let (cs, ce) = intervalFields(el), cs == "from" else {
                error(args[0].start, "sum_closure_days(…) needs a list of closures (objects with from/to dates) first, got \(ts[0].type)")
                return nil
            }
            for (t, a) in zip(ts.dropFirst(), args.dropFirst()) where t.type != .date {
                error(a.start, "sum_closure_days(…) needs dates for from and to, got \(t.type)")
                return nil
            }
            let f = ts[0].eval
            let g = ts[1].eval
            let h = ts[2].eval
            return Typed(
                type: .int,
                eval: { (ctx) throws(EvalError) in
                    try ExprCompiler.sumClosureDays(try f(ctx), try g(ctx), try h(ctx), cs, ce, ctx)
                })
        case "sublet" where args.count == 2:
            // Sublet onwards during the period: a sublease whose term overlaps it. A lease sublet
            // years before (or after) is its tenant's own again in the period.
            guard ts[0].type == .object(Schema.lease) else {
                error(args[0].start, "sublet(…) needs a lease, got \(ts[0].type)")
                return nil
            }
            guard let (ps, pe) = intervalFields(ts[1].type), ps == "from" else {
                error(args[1].start, "sublet(lease, …) needs a period (an object with from/to dates) second, got \(ts[1].type)")
                return nil
            }
            let f = ts[0].eval
            let g = ts[1].eval
            return Typed(
                type: .bool,
                eval: { (ctx) throws(EvalError) in
                    let l = try f(ctx)
                    let p = try g(ctx)
                    let terms = try ExprCompiler.read(l, "sublets", .list(.object(Schema.sublease)), ctx)
                    let from = try ExprCompiler.read(p, ps, .date, ctx)
                    let to = try ExprCompiler.read(p, pe, .date, ctx)
                    if let u = Value.unknowns(l, p, terms, from, to) { return u }
                    guard case .list(let items) = terms, case .date(let c) = from, case .date(let d) = to else {
                        throw EvalError("sublet needs a lease's sublets and a period")
                    }
                    var missing: Set<String>?
                    for item in items {
                        let a = try ExprCompiler.read(item, "starts_on", .date, ctx)
                        let b = try ExprCompiler.read(item, "ends_on", .date, ctx)
                        if case .unknown(let m) = a {
                            missing = (missing ?? []).union(m)
                            continue
                        }
                        if case .unknown(let m) = b {
                            missing = (missing ?? []).union(m)
                            continue
                        }
                        guard case .date(let s) = a, case .date(let e) = b else { throw EvalError("sublet needs dates") }
                        if max(s, c) <= min(e, d) { return .bool(true) }
                    }
                    return missing.map { .unknown($0) } ?? .bool(false)
                })
        case "root_lessor", "sublet":
            if name == "sublet", args.count != 1 {
                error(e.start, "'sublet' takes 1 argument (the lease) or 2 (the lease and a period), got \(args.count)")
                return nil
            }
            guard arity(name, args, 1, e) else { return nil }
            guard ts[0].type == .object(Schema.lease) else {
                error(args[0].start, "\(name)(…) needs a lease, got \(ts[0].type)")
                return nil
            }
            let f = ts[0].eval
            if name == "sublet" {
                return Typed(
                    type: .bool,
                    eval: { (ctx) throws(EvalError) in try ExprCompiler.read(try f(ctx), "sublet", .bool, ctx) })
            }
            return Typed(
                type: .object(Schema.lessor),
                eval: { (ctx) throws(EvalError) in
                    let l = try f(ctx)
                    let complete = try ExprCompiler.read(l, "chain_complete", .bool, ctx)
                    if case .unknown = complete { return complete }
                    if case .bool(false) = complete, case .obj(_, let base) = l {
                        // The registry cannot follow the sublease chain: the missing fact is the
                        // root lessor (a lease higher up the chain).
                        return .unknown([base + ".root_lessor"])
                    }
                    return try ExprCompiler.read(l, "root_lessor", .object(Schema.lessor), ctx)
                }, path: nil)
        default:
            error(e.start, "unknown function '\(name)'")
            return nil
        }
    }

    private func sizeOf(_ t: Typed, _ at: Expr) -> Typed? {
        switch t.type {
        case .list, .string: break
        default:
            error(at.start, "size(…) needs a list or a string, got \(t.type)")
            return nil
        }
        let f = t.eval
        return Typed(
            type: .int,
            eval: { (ctx) throws(EvalError) in
                let v = try f(ctx)
                switch v {
                case .list(let a): return .num(Rational(Int64(a.count)))
                case .str(let s): return .num(Rational(Int64(s.unicodeScalars.count)))
                default: return v
                }
            })
    }

    private func minMax(_ name: String, _ ts: [Typed], _ args: [Expr], _ e: Expr) -> Typed? {
        let isMin = name == "min"
        guard !ts.isEmpty else {
            error(e.start, "'\(name)' takes at least 1 argument, got 0")
            return nil
        }
        let snippet = source(e)
        if ts.count == 1 {
            guard case .list(let el) = ts[0].type, el.isNumeric || el == .date else {
                error(args[0].start, "\(name)(…) of one argument needs a list of numbers or dates, got \(ts[0].type)")
                return nil
            }
            let f = ts[0].eval
            return Typed(
                type: el == .any ? .int : el,
                eval: { (ctx) throws(EvalError) in
                    let v = try f(ctx)
                    guard case .list(let items) = v else { return v }
                    if let u = Value.unknowns(items) { return u }
                    guard !items.isEmpty else { throw EvalError("\(name) of an empty list in `\(snippet)`") }
                    return ExprCompiler.pick(items, isMin)
                })
        }
        var type: PType?
        for (t, a) in zip(ts, args) {
            let ok = t.type.isNumeric || t.type == .date
            guard ok, let u = PType.unify(type ?? t.type, t.type), u.isNumeric || u == .date else {
                error(a.start, "\(name)(…) needs numbers or dates, all of one kind, got \(t.type)")
                return nil
            }
            type = u
        }
        let fs = ts.map(\.eval)
        return Typed(
            type: type!,
            eval: { (ctx) throws(EvalError) in
                var items: [Value] = []
                for f in fs { items.append(try f(ctx)) }
                if let u = Value.unknowns(items) { return u }
                return ExprCompiler.pick(items, isMin)
            })
    }

    private static func pick(_ items: [Value], _ isMin: Bool) -> Value {
        var best = items[0]
        for v in items.dropFirst() {
            if let c = order(v, best), isMin ? c < 0 : c > 0 { best = v }
        }
        return best
    }

    /// Distinct days in [from, to] covered by the union of the closures' [from, to] intervals.
    static func sumClosureDays(
        _ list: Value, _ from: Value, _ to: Value, _ cs: String, _ ce: String, _ ctx: EvalContext
    ) throws(EvalError) -> Value {
        if let u = Value.unknowns(list, from, to) { return u }
        guard case .list(let items) = list, case .date(let lo) = from, case .date(let hi) = to else {
            throw EvalError("sum_closure_days needs a list and two dates")
        }
        var missing: Set<String>?
        var spans: [(Int, Int)] = []
        for item in items {
            let a = try read(item, cs, .date, ctx)
            let b = try read(item, ce, .date, ctx)
            if let u = Value.unknowns(item, a, b), case .unknown(let m) = u {
                missing = (missing ?? []).union(m)
                continue
            }
            guard case .date(let s) = a, case .date(let e) = b else { continue }
            let start = max(s, lo).dayNumber
            let end = min(e, hi).dayNumber
            if start <= end { spans.append((start, end)) }
        }
        if let missing { return .unknown(missing) }
        spans.sort { $0.0 < $1.0 }
        var total = 0
        var current: (Int, Int)?
        for s in spans {
            if let c = current, s.0 <= c.1 + 1 {
                current = (c.0, max(c.1, s.1))
            } else {
                if let c = current { total += c.1 - c.0 + 1 }
                current = s
            }
        }
        if let c = current { total += c.1 - c.0 + 1 }
        return .num(Rational(Int64(total)))
    }

    // MARK: - Methods and macros

    func compileMethod(_ base: Expr, _ name: String, _ args: [Expr], _ namePos: Int, _ e: Expr) -> Typed? {
        guard libraryMethods.contains(name) else {
            error(namePos, "unknown method '\(name)' (methods: \(libraryMethods.joined(separator: ", ")))")
            return nil
        }
        guard let b = compile(base) else { return nil }
        switch name {
        case "exists", "all", "filter", "find", "map":
            guard case .list(let el) = b.type else {
                error(namePos, "'\(name)' applies to a list, \(source(base)) is a \(b.type)")
                return nil
            }
            guard args.count == 2 else {
                error(namePos, "'\(name)' takes 2 arguments (a variable name and an expression), got \(args.count)")
                return nil
            }
            guard case .ident(let v) = args[0].kind else {
                error(args[0].start, "the first argument of '\(name)' must be a variable name")
                return nil
            }
            if roots[v] != nil || unavailable[v] != nil || vars.contains(where: { $0.name == v }) || v == "true" || v == "false" {
                error(args[0].start, "'\(v)' is already defined: choose another variable name")
                return nil
            }
            let slot = vars.count
            vars.append((v, el))
            let body = compile(args[1])
            vars.removeLast()
            guard let body else { return nil }
            if name != "map", body.type != .bool {
                error(args[1].start, "the condition of '\(name)' must be a bool, got \(body.type)")
                return nil
            }
            return macro(name, b.eval, body.eval, slot, elem: el, bodyType: body.type, listSource: source(base))
        case "size":
            guard args.isEmpty else {
                error(namePos, "'size' takes no arguments as a method, got \(args.count)")
                return nil
            }
            return sizeOf(b, base)
        default:  // startsWith, endsWith, contains
            guard b.type == .string else {
                error(namePos, "'\(name)' applies to a string, \(source(base)) is a \(b.type)")
                return nil
            }
            guard args.count == 1 else {
                error(namePos, "'\(name)' takes 1 argument, got \(args.count)")
                return nil
            }
            guard let a = compile(args[0]) else { return nil }
            guard a.type == .string else {
                error(args[0].start, "'\(name)' needs a string, got \(a.type)")
                return nil
            }
            let f = b.eval
            let g = a.eval
            let test: @Sendable (String, String) -> Bool =
                switch name {
                case "startsWith": { $0.unicodeScalars.starts(with: $1.unicodeScalars) }
                case "endsWith": { $0.unicodeScalars.reversed().starts(with: $1.unicodeScalars.reversed()) }
                default: { $1.isEmpty || $0.contains($1) }
                }
            return Typed(
                type: .bool,
                eval: { (ctx) throws(EvalError) in
                    let x = try f(ctx)
                    let y = try g(ctx)
                    if let u = Value.unknowns(x, y) { return u }
                    guard case .str(let s) = x, case .str(let t) = y else { throw EvalError("\(name) needs strings") }
                    return .bool(test(s, t))
                })
        }
    }

    private func macro(
        _ name: String, _ list: @escaping Eval, _ body: @escaping Eval, _ slot: Int, elem: PType, bodyType: PType, listSource: String
    ) -> Typed {
        switch name {
        case "find":
            // The first element for which the condition holds. None is a fact not there yet
            // (unknown, naming the list: 线上补报), never a default; an undecided condition before
            // the first match leaves the answer undecided too.
            return Typed(
                type: elem,
                eval: { (ctx) throws(EvalError) in
                    let lv = try list(ctx)
                    guard case .list(let items) = lv else { return lv }
                    ctx.vars.append(.unknown([]))
                    defer { ctx.vars.removeLast() }
                    var missing: Set<String>?
                    for item in items {
                        ctx.vars[slot] = item
                        switch try body(ctx) {
                        case .bool(true): return missing.map { .unknown($0) } ?? item
                        case .unknown(let m): missing = (missing ?? []).union(m)
                        default: break
                        }
                    }
                    return .unknown(missing ?? [listSource])
                })
        case "exists", "all":
            let absorbing = name == "exists"
            return Typed(
                type: .bool,
                eval: { (ctx) throws(EvalError) in
                    let lv = try list(ctx)
                    guard case .list(let items) = lv else { return lv }
                    ctx.vars.append(.unknown([]))
                    defer { ctx.vars.removeLast() }
                    return try ExprCompiler.logical(absorbing: absorbing, items) { (item) throws(EvalError) in
                        ctx.vars[slot] = item
                        return try body(ctx)
                    }
                })
        case "filter":
            return Typed(
                type: .list(elem),
                eval: { (ctx) throws(EvalError) in
                    let lv = try list(ctx)
                    guard case .list(let items) = lv else { return lv }
                    ctx.vars.append(.unknown([]))
                    defer { ctx.vars.removeLast() }
                    var out: [Value] = []
                    var missing: Set<String>?
                    for item in items {
                        ctx.vars[slot] = item
                        switch try body(ctx) {
                        case .bool(true): out.append(item)
                        case .unknown(let m): missing = (missing ?? []).union(m)
                        default: break
                        }
                    }
                    return missing.map { .unknown($0) } ?? .list(out)
                })
        default:  // map
            return Typed(
                type: .list(bodyType),
                eval: { (ctx) throws(EvalError) in
                    let lv = try list(ctx)
                    guard case .list(let items) = lv else { return lv }
                    ctx.vars.append(.unknown([]))
                    defer { ctx.vars.removeLast() }
                    var out: [Value] = []
                    out.reserveCapacity(items.count)
                    for item in items {
                        ctx.vars[slot] = item
                        out.append(try body(ctx))
                    }
                    return .list(out)
                })
        }
    }
}

extension Value {
    /// The union of the unknowns among `vs`, or nil when none is unknown.
    static func unknowns(_ vs: [Value]) -> Value? {
        var out: Set<String>?
        for v in vs {
            if case .unknown(let m) = v { out = (out ?? []).union(m) }
        }
        return out.map { .unknown($0) }
    }
}
