import Models
import Testing

@testable import Policy

/// The result of evaluating a bare expression.
enum R: Equatable, CustomStringConvertible {
    case value(JSON)
    case unknown([String])
    case error(String)

    var description: String {
        switch self {
        case .value(let j): "value(\(j))"
        case .unknown(let m): "unknown(\(m))"
        case .error(let e): "error(\(e))"
        }
    }

    static let t = R.value(true)
    static let f = R.value(false)
    static func int(_ v: Int64) -> R { .value(.int(v)) }

    var isError: Bool {
        if case .error = self { return true }
        return false
    }
}

struct CompileFailure: Error, CustomStringConvertible {
    var diagnostics: [ExprDiagnostic]
    var description: String { diagnostics.map { "@\($0.offset): \($0.message)" }.joined(separator: "; ") }
}

enum Fx {
    /// A complete registry profile: an individual catering business, active, micro, with one
    /// lease of state-enterprise property.
    static func merchant(_ edit: (inout JSONObject) -> Void = { _ in }) -> JSON {
        var o = JSONObject()
        o["uscc"] = "92110105MA01ABCD1X"
        o["name"] = "老王面馆"
        o["kind"] = "individual"
        o["industry"] = "H6210"
        o["district"] = "110105"
        o["registered_on"] = "2015-03-01"
        o["status"] = "active"
        o["version"] = 3
        o["tags"] = ["size": "individual", "sector": "catering", "service_industry": true, "priority_sector": true]
        o["finance"] = ["year": 2021, "employees": 6, "operating_revenue_fen": 80_000_000, "total_assets_fen": 20_000_000]
        o["tax"] = .null
        o["social_insurance"] = ["month": "2022-03", "insured_employees": 5]
        o["leases"] = [lease()]
        o["closures"] = []
        o["damages"] = []
        o["credit_flags"] = []
        o["account"] = .null
        o["aid"] = []
        o["fraud"] = []
        o["disqualified"] = false
        edit(&o)
        return .object(o)
    }

    static func lease(
        id: String = "L-1", rent: Int64 = 300_000, starts: String = "2021-01-01", ends: String = "2023-12-31",
        ownership: String = "state_enterprise", sublet: Bool = false, chainComplete: Bool = true, use: String = "business",
        sublets: [(String, String)]? = nil
    ) -> JSON {
        let terms: [(String, String)] = sublets ?? (sublet ? [("2021-01-01", "2023-12-31")] : [])
        let lessor: JSON = ["name": "市国资公司", "uscc": "91110000100000000X", "ownership": .string(ownership), "level": "city"]
        return [
            "lease_id": .string(id), "lessor": lessor, "root_lessor": chainComplete ? lessor : .null,
            "chain_complete": .bool(chainComplete), "sublease_of": .null, "sublet": .bool(!terms.isEmpty),
            "sublets": .array(
                terms.enumerated().map { k, t in ["lease_id": .string("\(id)-S\(k)"), "starts_on": .string(t.0), "ends_on": .string(t.1)] }),
            "use": .string(use),
            "monthly_rent_fen": .int(rent), "starts_on": .string(starts), "ends_on": .string(ends),
        ]
    }

    static func set(_ m: JSON, _ key: String, _ v: JSON) -> JSON {
        guard case .object(var o) = m else { return m }
        o[key] = v
        return .object(o)
    }

    /// Compiles and evaluates a bare expression with period 2022-01-01…2022-06-30 and window
    /// 2022-04-01…2022-06-30.
    static func eval(
        _ expr: String, merchant: JSON = Fx.merchant(), binding: JSON? = Fx.lease(), per: PerKind = .lease,
        application: JSON? = nil, params: [String: JSON] = [:]
    ) throws -> R {
        let (typed, _) = try compile(expr, per: per, params: params)
        var roots = [Value](repeating: .unknown([]), count: RootSlot.allCases.count)
        guard case .object(let m) = merchant else { return .error("merchant") }
        roots[RootSlot.merchant.rawValue] = .obj(m, path: "merchant")
        roots[RootSlot.period.rawValue] = .obj(JSONObject(["from": "2022-01-01", "to": "2022-06-30"]), path: "period")
        roots[RootSlot.window.rawValue] = .obj(
            JSONObject(["apply_from": "2022-04-01", "apply_until": "2022-06-30"]), path: "window")
        if case .object(let a) = application {
            roots[RootSlot.application.rawValue] = .obj(a, path: "application")
        } else {
            roots[RootSlot.application.rawValue] = .unknown(["application"])
        }
        var p = JSONObject()
        for k in params.keys.sorted() { p[k] = params[k] }
        roots[RootSlot.params.rawValue] = .obj(p, path: "params")
        if case .object(let b) = binding { roots[RootSlot.binding.rawValue] = .obj(b, path: per.rawValue) }
        let ctx = EvalContext(roots: roots)
        do {
            let v = try typed.eval(ctx)
            if case .unknown(let missing) = v { return .unknown(missing.sorted()) }
            return .value(v.json)
        } catch {
            return .error(error.message)
        }
    }

    static func compile(_ expr: String, per: PerKind = .lease, params: [String: JSON] = [:]) throws -> (Typed, ExprCompiler) {
        let text = Array(expr.unicodeScalars)
        let ast: Expr
        do {
            ast = try ExprParser.parse(text)
        } catch {
            throw CompileFailure(diagnostics: [error])
        }
        var fields: [(String, PType)] = []
        for k in params.keys.sorted() { fields.append((k, DocumentBuilder.paramType(params[k]!)!)) }
        let (roots, unavailable) = DocumentBuilder.contextRoots(
            per: per, perBroken: false, window: true, params: ObjectSchema("params", fields))
        let c = ExprCompiler(text: text, roots: roots, unavailable: unavailable)
        guard let t = c.compile(ast), c.diagnostics.isEmpty else { throw CompileFailure(diagnostics: c.diagnostics) }
        return (t, c)
    }

    /// The diagnostics of an expression that must not compile (offset and message of each).
    static func errors(_ expr: String, per: PerKind = .lease, params: [String: JSON] = [:]) -> [ExprDiagnostic] {
        do {
            _ = try compile(expr, per: per, params: params)
            return []
        } catch let e as CompileFailure {
            return e.diagnostics
        } catch {
            return []
        }
    }

    /// The static type of an expression.
    static func type(_ expr: String) throws -> String {
        try compile(expr).0.type.description
    }

    /// The DESIGN §6 sketch: the state-property rent waiver (seed 篇二/篇五).
    static let rentWaiver = """
        id: soe-rent-waiver
        revision: 1
        title: 承租国有房屋的服务业小微企业和个体工商户免除3个月租金
        authority: 区发改局 区房产局 (seed 篇二/篇五)
        benefit: rent_waiver            # cash | rent_waiver | deferral | fee_waiver
        channel: lessor                 # treasury | lessor | agency:<name>
        pool: null                      # fund pool id for cash benefits
        requires_application: true
        window: {apply_from: 2022-04-01, apply_until: 2022-06-30}
        period: {from: 2022-01-01, to: 2022-06-30}     # the benefit period
        disclosure: {working_days: 5, auto_approve: false}
        exclusive_group: null           # at most one entitlement per merchant across a group
        priority: merchant.tags.priority_sector        # paid first when a pool is short
        eligible: >
          merchant.status == "active"
          && (merchant.kind == "individual" || merchant.tags.size in ["small", "micro"])
          && merchant.tags.service_industry
          && root_lessor(lease).ownership in ["state_enterprise", "government"]
          && !sublet(lease)              # a sublease chain benefits its final tenant only
          && lease.use == "business"
          && overlap_days(lease, period) > 0
          && !merchant.credit_flags.exists(f, f.list == "serious_violation")
        amount_fen: >
          overlap_days(lease, period) >= 90
            ? lease.monthly_rent_fen * 3
            : lease.monthly_rent_fen * 12 * overlap_days(lease, period) / 365
        per: lease                      # one entitlement per merchant, or per lease / damage event

        """

    /// A minimal valid document; `eligible`, `amount` and extra lines can be replaced.
    static func document(
        eligible: String = "true", amount: String? = "0", per: String = "merchant", benefit: String = "deferral",
        extra: String = ""
    ) -> String {
        var s = """
            id: test-policy
            revision: 1
            title: 测试
            authority: 测试局
            benefit: \(benefit)
            channel: \(benefit == "cash" ? "treasury" : "agency:test-bureau")
            pool: test-pool
            requires_application: false
            period: {from: 2022-01-01, to: 2022-06-30}
            disclosure: {working_days: 5, auto_approve: true}
            per: \(per)
            eligible: \(eligible)

            """
        if let amount { s += "amount_fen: \(amount)\n" }
        s += extra
        return s
    }

    static func compileErrors(_ yaml: String) -> [PolicyError] {
        do {
            _ = try PolicyCompiler.compile(yaml: yaml)
            return []
        } catch {
            return error.errors
        }
    }
}
