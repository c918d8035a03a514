import Models

// Evaluating a compiled policy against one merchant (DESIGN §6.2, §6.3): one determination per
// binding, each with a trace of every clause, the inputs it read and the amount's arithmetic.

/// A compiled expression: for `eligible`, one entry per top-level `&&` clause.
struct CompiledExpression: Sendable {
    struct Clause: Sendable {
        var source: String
        var eval: Eval
    }
    var source: String
    var clauses: [Clause]
}

/// What a policy is evaluated against.
public struct PolicyInput: Sendable {
    /// The merchant's profile as the registry publishes it (`merchant.profiled` data).
    public var merchant: JSON
    /// The merchant's application to this policy `{submitted_on, documents}`, or nil if it has
    /// not applied (then `application` is unknown).
    public var application: JSON?

    public init(merchant: JSON, application: JSON? = nil) {
        self.merchant = merchant
        self.application = application
    }
}

/// The result of one policy for one binding (the merchant, a lease or a damage event).
public struct Determination: Sendable {
    public enum Outcome: Sendable, Equatable {
        case eligible(amountFen: Int64)
        case ineligible
        /// The facts that would decide it (线上补报), sorted.
        case incomplete(missing: [String])
        case error(String)
    }

    /// `"merchant"`, the lease id or the damage event.
    public var bindingKey: String
    /// The lease or damage object the determination is about.
    public var binding: JSON?
    public var outcome: Outcome
    /// Paid first when a pool is short (the policy's `priority`; false when it is not true).
    public var priority: Bool
    public var trace: Trace
}

/// A three-valued truth (or an evaluation error), as shown in traces.
public enum TruthValue: String, Sendable, Equatable {
    case `true`, `false`, unknown, error
}

/// One fact read by an expression, with the value it had.
public struct TraceInput: Sendable, Equatable {
    public var path: String
    /// `null` when the fact was missing.
    public var value: JSON
}

/// One top-level clause of `eligible` (or the `priority` expression).
public struct ClauseTrace: Sendable {
    public var source: String
    public var value: TruthValue
    /// When unknown: the facts that would decide it.
    public var missing: [String]
    public var error: String?
    public var inputs: [TraceInput]
}

/// How the amount was computed.
public struct AmountTrace: Sendable {
    public var formula: String
    public var inputs: [TraceInput]
    /// The exact value before rounding, `"n/d"`.
    public var exact: String?
    /// The amount after rounding once, half away from zero.
    public var roundedFen: Int64?
    public var missing: [String]
    public var error: String?
}

/// Why a determination came out as it did (DESIGN §6.3).
public struct Trace: Sendable {
    public var policyID: String
    public var revision: Int
    public var bindingKey: String
    public var clauses: [ClauseTrace]
    public var amount: AmountTrace?
    public var priority: ClauseTrace?
    public var outcome: Determination.Outcome

    public var json: JSON {
        var o = JSONObject()
        o["policy_id"] = .string(policyID)
        o["revision"] = .int(Int64(revision))
        o["binding"] = .string(bindingKey)
        o["clauses"] = .array(clauses.map(Trace.clauseJSON))
        if let a = amount {
            var m = JSONObject()
            m["formula"] = .string(a.formula)
            m["inputs"] = Trace.inputsJSON(a.inputs)
            m["exact"] = a.exact.map { .string($0) } ?? .null
            m["rounded_fen"] = a.roundedFen.map { .int($0) } ?? .null
            if !a.missing.isEmpty { m["missing"] = .array(a.missing.map { .string($0) }) }
            if let e = a.error { m["error"] = .string(e) }
            o["amount"] = .object(m)
        } else {
            o["amount"] = .null
        }
        o["priority"] = priority.map(Trace.clauseJSON) ?? .null
        var r = JSONObject()
        switch outcome {
        case .eligible(let fen):
            r["result"] = "eligible"
            r["amount_fen"] = .int(fen)
        case .ineligible:
            r["result"] = "ineligible"
        case .incomplete(let missing):
            r["result"] = "incomplete"
            r["missing"] = .array(missing.map { .string($0) })
        case .error(let e):
            r["result"] = "error"
            r["error"] = .string(e)
        }
        o["outcome"] = .object(r)
        return .object(o)
    }

    static func inputsJSON(_ inputs: [TraceInput]) -> JSON {
        .array(inputs.map { ["path": .string($0.path), "value": $0.value] })
    }

    static func clauseJSON(_ c: ClauseTrace) -> JSON {
        var m = JSONObject()
        m["source"] = .string(c.source)
        switch c.value {
        case .true: m["value"] = .bool(true)
        case .false: m["value"] = .bool(false)
        case .unknown, .error: m["value"] = .string(c.value.rawValue)
        }
        if !c.missing.isEmpty { m["missing"] = .array(c.missing.map { .string($0) }) }
        if let e = c.error { m["error"] = .string(e) }
        m["inputs"] = inputsJSON(c.inputs)
        return .object(m)
    }

    /// Fen as `"300,000 分（3,000.00 元）"`.
    public static func fenText(_ fen: Int64) -> String {
        "\(grouped(fen.magnitude, negative: fen < 0)) 分（\(yuanText(fen)) 元）"
    }

    /// Fen as yuan with two decimals and thousands separators, e.g. `"3,000.00"`.
    public static func yuanText(_ fen: Int64) -> String {
        let m = fen.magnitude
        let cents = m % 100
        return grouped(m / 100, negative: fen < 0) + "." + (cents < 10 ? "0" : "") + String(cents)
    }

    private static func grouped(_ v: UInt64, negative: Bool) -> String {
        let digits = Array(String(v))
        var out = ""
        for (i, d) in digits.enumerated() {
            if i > 0, (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(d)
        }
        return (negative ? "-" : "") + out
    }

    private static func inputText(_ i: TraceInput) -> String {
        if i.path.hasSuffix("_fen"), case .int(let v) = i.value { return "\(i.path) = \(fenText(v))" }
        if case .null = i.value { return "\(i.path) = （缺失 missing）" }
        return "\(i.path) = \(i.value.serialized())"
    }

    private static func mark(_ v: TruthValue) -> String {
        switch v {
        case .true: "✓ 成立 true"
        case .false: "✗ 不成立 false"
        case .unknown: "? 未知 unknown"
        case .error: "! 出错 error"
        }
    }

    /// A human-readable account, for operators and auditors.
    public func text() -> String {
        var lines: [String] = []
        lines.append("政策 policy \(policyID)（第 \(revision) 版 revision）· \(bindingKey)")
        lines.append("资格条件 eligible:")
        for c in clauses {
            lines.append("  \(Trace.mark(c.value))  \(c.source)")
            if !c.missing.isEmpty { lines.append("      缺少 missing: \(c.missing.joined(separator: ", "))") }
            if let e = c.error { lines.append("      错误 error: \(e)") }
            for i in c.inputs { lines.append("      · \(Trace.inputText(i))") }
        }
        if let a = amount {
            lines.append("金额 amount_fen: \(a.formula)")
            for i in a.inputs { lines.append("      · \(Trace.inputText(i))") }
            if let exact = a.exact, let r = a.roundedFen {
                lines.append("  精确值 exact: \(exact) 分 → 四舍五入一次 rounded once (half away from zero): \(Trace.fenText(r))")
            }
            if !a.missing.isEmpty { lines.append("  缺少 missing: \(a.missing.joined(separator: ", "))") }
            if let e = a.error { lines.append("  错误 error: \(e)") }
        }
        if let p = priority {
            lines.append("优先 priority: \(Trace.mark(p.value))  \(p.source)")
        }
        switch outcome {
        case .eligible(let fen): lines.append("结论 outcome: 符合 eligible，金额 amount \(Trace.fenText(fen))")
        case .ineligible: lines.append("结论 outcome: 不符合 ineligible")
        case .incomplete(let m): lines.append("结论 outcome: 待补报 incomplete，缺少 missing: \(m.joined(separator: ", "))")
        case .error(let e): lines.append("结论 outcome: 出错 error: \(e)")
        }
        return lines.joined(separator: "\n")
    }
}

/// A policy, validated and compiled once; evaluate it against any number of merchants.
public final class CompiledPolicy: Sendable {
    public let document: PolicyDocument
    /// SHA-256 (hex) of the YAML text.
    public let sourceHash: String
    /// The YAML text as published.
    public let source: String

    let eligible: CompiledExpression
    let amount: CompiledExpression?
    let priority: CompiledExpression?
    let refundOnly: CompiledExpression?
    let periodValue: Value
    let windowValue: Value
    let paramsValue: Value

    init(
        document: PolicyDocument, source: String, eligible: CompiledExpression, amount: CompiledExpression?,
        priority: CompiledExpression?, refundOnly: CompiledExpression? = nil, paramTypes: [(String, PType)]
    ) {
        self.refundOnly = refundOnly
        self.document = document
        self.source = source
        self.sourceHash = SHA256.hex(source)
        self.eligible = eligible
        self.amount = amount
        self.priority = priority
        var period = JSONObject()
        period["from"] = .string(document.periodFrom.description)
        period["to"] = .string(document.periodTo.description)
        periodValue = .obj(period, path: "period")
        if let a = document.applyFrom, let b = document.applyUntil {
            var w = JSONObject()
            w["apply_from"] = .string(a.description)
            w["apply_until"] = .string(b.description)
            windowValue = .obj(w, path: "window")
        } else {
            windowValue = .unknown(["window"])
        }
        var p = JSONObject()
        for (name, _) in paramTypes { p[name] = document.params[name] }
        paramsValue = .obj(p, path: "params")
    }

    public var id: String { document.id }
    public var revision: Int { document.revision }

    /// The determinations for one merchant: one for `per: merchant`, one per lease or per
    /// damage event otherwise (none when the merchant has none).
    public func evaluate(_ input: PolicyInput) -> [Determination] { evaluate(input, traced: true) }

    /// With `traced: false` (screening), the outcome and amount are the same but the trace is
    /// empty and evaluation stops at the first false clause; evaluate again with a trace for the
    /// determinations that are kept or explained.
    public func evaluate(_ input: PolicyInput, traced: Bool) -> [Determination] {
        guard case .object(let m) = input.merchant else {
            return [failure("merchant", nil, "the merchant profile is not a JSON object")]
        }
        let roots = roots(merchant: m, application: input.application)

        let listKey: String
        let idKey: String
        switch document.per {
        case .merchant:
            return [determine(roots, key: "merchant", binding: nil, traced: traced)]
        case .lease:
            listKey = "leases"
            idKey = "lease_id"
        case .damage:
            listKey = "damages"
            idKey = "event"
        }
        guard case .array(let items) = m[listKey] ?? .null else {
            if let v = m[listKey], !v.isNull {
                return [failure("merchant", nil, "merchant.\(listKey) is not a list")]
            }
            // Not knowing whether there are any leases is not the same as having none.
            return [incomplete("merchant", ["merchant.\(listKey)"])]
        }
        var out: [Determination] = []
        out.reserveCapacity(items.count)
        for (i, item) in items.enumerated() {
            let key = item[idKey]?.stringValue ?? "\(listKey)[\(i)]"
            guard case .object(let o) = item else {
                out.append(failure(key, item, "merchant.\(listKey)[\(i)] is not an object"))
                continue
            }
            var r = roots
            r[RootSlot.binding.rawValue] = .obj(o, path: document.per.rawValue)
            out.append(determine(r, key: key, binding: item, traced: traced))
        }
        return out
    }

    /// For a merchant with nothing to bind (no lease, no damage): the policy evaluated with its
    /// binding unknown. Every clause on the binding is then unknown, so the outcome is
    /// `ineligible` only when a clause on the merchant alone (district, size, credit, …) fails —
    /// the reason that decides the matter whatever lease or damage it registers. Nil for a
    /// per-merchant policy or any other outcome.
    public func evaluateUnbound(_ input: PolicyInput) -> Determination? {
        guard document.per != .merchant, case .object(let m) = input.merchant else { return nil }
        var roots = roots(merchant: m, application: input.application)
        roots[RootSlot.binding.rawValue] = .unknown([document.per.rawValue])
        let d = determine(roots, key: "unbound", binding: nil, traced: true)
        if case .ineligible = d.outcome { return d }
        return nil
    }

    /// Whether the lessor must refund this lease's waiver directly (the policy's `refund_only` on
    /// the merchant and the lease): false without the expression, or when it is not true.
    public func refundOnly(merchant: JSON, binding: JSON) -> Bool {
        guard let refundOnly, let f = refundOnly.clauses.first, document.per != .merchant, case .object(let m) = merchant,
            case .object(let b) = binding
        else { return false }
        var roots = roots(merchant: m, application: nil)
        roots[RootSlot.binding.rawValue] = .obj(b, path: document.per.rawValue)
        return CompiledPolicy.truth(f.eval, refundOnly.source, EvalContext(roots: roots, tracing: false)).value == .true
    }

    /// The context of an evaluation (DESIGN §6.1) but its binding: the merchant, the programme's
    /// period, window and params, and the application (unknown without one).
    private func roots(merchant m: JSONObject, application input: JSON?) -> [Value] {
        var roots: [Value] = Array(repeating: .unknown([]), count: RootSlot.allCases.count)
        roots[RootSlot.merchant.rawValue] = .obj(m, path: "merchant")
        roots[RootSlot.period.rawValue] = periodValue
        roots[RootSlot.window.rawValue] = windowValue
        roots[RootSlot.application.rawValue] = .unknown(["application"])
        if case .object(let a)? = input { roots[RootSlot.application.rawValue] = .obj(a, path: "application") }
        roots[RootSlot.params.rawValue] = paramsValue
        return roots
    }

    private func failure(_ key: String, _ binding: JSON?, _ message: String) -> Determination {
        let outcome = Determination.Outcome.error(message)
        return Determination(
            bindingKey: key, binding: binding, outcome: outcome, priority: false,
            trace: Trace(policyID: document.id, revision: document.revision, bindingKey: key, clauses: [], outcome: outcome))
    }

    private func incomplete(_ key: String, _ missing: [String]) -> Determination {
        let outcome = Determination.Outcome.incomplete(missing: missing)
        return Determination(
            bindingKey: key, binding: nil, outcome: outcome, priority: false,
            trace: Trace(policyID: document.id, revision: document.revision, bindingKey: key, clauses: [], outcome: outcome))
    }

    private static func inputs(_ ctx: EvalContext) -> [TraceInput] {
        ctx.takeReads().map { TraceInput(path: $0.path, value: $0.value) }
    }

    private static func truth(_ f: Eval, _ source: String, _ ctx: EvalContext) -> ClauseTrace {
        var c = ClauseTrace(source: source, value: .error, missing: [], error: nil, inputs: [])
        do {
            switch try f(ctx) {
            case .bool(let b): c.value = b ? .true : .false
            case .unknown(let m):
                c.value = .unknown
                c.missing = m.sorted()
            default: c.error = "not a bool"
            }
        } catch {
            c.error = error.message
        }
        c.inputs = inputs(ctx)
        return c
    }

    private func determine(_ roots: [Value], key: String, binding: JSON?, traced: Bool = true) -> Determination {
        let ctx = EvalContext(roots: roots, tracing: traced)
        // Every clause is evaluated (for the trace); combined as `&&` is: false wins, then
        // unknown, then an error. Untraced, the first false clause decides.
        var clauses: [ClauseTrace] = []
        clauses.reserveCapacity(eligible.clauses.count)
        for c in eligible.clauses {
            let t = CompiledPolicy.truth(c.eval, c.source, ctx)
            clauses.append(t)
            if !traced && t.value == .false { break }
        }
        var outcome: Determination.Outcome
        var amountTrace: AmountTrace?
        if clauses.contains(where: { $0.value == .false }) {
            outcome = .ineligible
        } else if clauses.contains(where: { $0.value == .unknown }) {
            outcome = .incomplete(missing: Set(clauses.flatMap(\.missing)).sorted())
        } else if let e = clauses.first(where: { $0.value == .error }) {
            outcome = .error("eligible: \(e.error ?? "error") in `\(e.source)`")
        } else if let amount, let f = amount.clauses.first {
            var t = AmountTrace(formula: amount.source, inputs: [], exact: nil, roundedFen: nil, missing: [], error: nil)
            do {
                switch try f.eval(ctx) {
                case .num(let r):
                    t.exact = r.fraction
                    if r.isNegative {
                        t.error = "the amount is negative (\(r))"
                        outcome = .error("amount_fen: the amount is negative (\(r) fen)")
                    } else {
                        let fen = r.roundedHalfAwayFromZero()
                        t.roundedFen = fen
                        outcome = .eligible(amountFen: fen)
                    }
                case .unknown(let m):
                    t.missing = m.sorted()
                    outcome = .incomplete(missing: t.missing)
                default:
                    t.error = "not a number"
                    outcome = .error("amount_fen: not a number")
                }
            } catch {
                t.error = error.message
                outcome = .error("amount_fen: \(error.message)")
            }
            t.inputs = CompiledPolicy.inputs(ctx)
            amountTrace = t
        } else {
            outcome = .eligible(amountFen: 0)
        }
        var priorityTrace: ClauseTrace?
        if let priority, let f = priority.clauses.first {
            priorityTrace = CompiledPolicy.truth(f.eval, priority.source, ctx)
        }
        let trace =
            traced
            ? Trace(
                policyID: document.id, revision: document.revision, bindingKey: key, clauses: clauses, amount: amountTrace,
                priority: priorityTrace, outcome: outcome)
            : Trace(policyID: document.id, revision: document.revision, bindingKey: key, clauses: [], outcome: outcome)
        return Determination(
            bindingKey: key, binding: binding, outcome: outcome, priority: priorityTrace?.value == .true, trace: trace)
    }
}
