import Models

/// Why a merchant does not qualify, in plain Chinese, from the failing top-level clauses of a
/// trace (DESIGN §6.3). The merchant is told these (不符合条件告知) and the hotline clerk reads them
/// in `bangfu explain`; the clauses themselves (expressions) stay in the trace for operators and
/// auditors.
///
/// A clause is recognised by the facts it reads (its source text and its inputs), so the wording
/// holds for every programme written in the policy language, not only the seed's; a clause that
/// matches no rule reads as the generic ``ClauseWording/fallback``.
public enum ClauseWording {
    /// The text for a failing clause that no rule recognises.
    public static let fallback = "不符合本政策规定的其他享受条件"

    /// The reason for each failing (`false`) top-level clause of `trace` (the trace's JSON as
    /// published), in clause order, without repeats. Empty when no clause is false.
    public static func reasons(trace: JSON) -> [String] {
        var out: [String] = []
        for clause in trace["clauses"]?.arrayValue ?? [] where clause["value"]?.boolValue == false {
            let text = reason(source: clause["source"]?.stringValue ?? "", inputs: inputs(of: clause))
            if !out.contains(text) { out.append(text) }
        }
        return out
    }

    /// The reasons of a trace not yet turned into JSON.
    public static func reasons(_ trace: Trace) -> [String] { reasons(trace: trace.json) }

    static func inputs(of clause: JSON) -> [String: JSON] {
        var out: [String: JSON] = [:]
        for i in clause["inputs"]?.arrayValue ?? [] {
            if let p = i["path"]?.stringValue { out[p] = i["value"] ?? .null }
        }
        return out
    }

    /// The credit lists a merchant is on, in the words of the lists themselves: a programme that
    /// excludes only some lists (严重违法失信, 失信被执行人) names those the merchant is on, one that
    /// excludes any record (flood relief: 无不良记录) names every one — never a list it is not on.
    static func creditReason(source: String, flags: JSON?) -> String {
        let names: [(String, String)] = [
            ("serious_violation", "列入严重违法失信名单"), ("dishonest_debtor", "被列为失信被执行人"), ("abnormal_operation", "列入经营异常名录"),
        ]
        let lists = Set((flags?.arrayValue ?? []).compactMap { $0["list"]?.stringValue ?? $0.stringValue })
        let named = names.filter { lists.contains($0.0) && (!source.contains("\"") || source.contains("\"\($0.0)\"")) }.map(\.1)
        guard !named.isEmpty else { return "存在不良信用记录" }
        return "存在不良信用记录（" + named.joined(separator: "、") + "）"
    }

    /// The reason for one failing clause: `source` is its text, `inputs` the facts it read (by path).
    public static func reason(source: String, inputs: [String: JSON]) -> String {
        func reads(_ fragment: String) -> Bool { source.contains(fragment) }
        // The negative list (几个不帮) first: it reads the same in every programme.
        if reads("merchant.disqualified") { return "经查存在弄虚作假等情形，已取消涉企政策补助资格" }
        if reads("merchant.status") { return "市场主体登记状态不是正常经营（已停业、注销等）" }
        if reads("credit_flags") { return creditReason(source: source, flags: inputs["merchant.credit_flags"]) }
        // Who the programme is for: size (中小企业划型标准规定), kind, industry.
        if reads("merchant.tags.size") || reads("merchant.kind") || reads("service_industry") || reads("merchant.tags.sector") {
            let size = inputs["merchant.tags.size"]?.stringValue
            let kind = inputs["merchant.kind"]?.stringValue
            switch size {
            case "large":
                return "按《中小企业划型标准规定》，贵单位划型为大型企业，不属于本政策支持的范围"
            case "medium" where !source.contains("\"medium\""):
                return "按《中小企业划型标准规定》，贵单位划型为中型企业，不属于本政策支持的范围"
            default: break
            }
            if inputs["merchant.tags.service_industry"]?.boolValue == false {
                return "所属行业不属于本政策支持的服务业"
            }
            if reads("merchant.tags.sector") { return "所属行业不在本政策支持的行业范围内" }
            if reads("insured_employees") { return "未参加职工社会保险（参保人数为零）" }
            if kind == "individual" && reads("merchant.kind == \"enterprise\"") { return "本政策面向企业，个体工商户不在支持范围内" }
            return "市场主体类型或企业规模不属于本政策支持的范围"
        }
        // Leases (rent waivers).
        if reads("root_lessor") || reads("ownership") {
            return "所租房屋的出租方不是国有企业或政府部门等行政事业单位（不属于本政策规定的国有房屋）"
        }
        if reads("sublet(") { return "该租赁房屋在政策期间已转租、分租，减免惠及最终承租方" }
        if reads("merchant.leases") { return "没有符合条件的经营场所租赁登记" }
        if reads("lease.use") { return "所租房屋不是用于经营" }
        if reads("overlap_days") { return "租赁期与政策规定的期间没有重叠" }
        // Place, events, losses.
        if reads("merchant.district") { return "经营地不在本政策的实施区域内" }
        if reads("closure") { return "停业情况（停业天数）未达到政策规定" }
        if reads("damage.evidence") { return "未提供受灾损失的佐证材料" }
        if reads("damage.loss_fen") { return "未登记受灾损失" }
        if reads("damage.") { return "受灾情况不属于本政策帮扶的灾害" }
        if reads("merchant.aid") { return "已享受或正在申请其他同类帮扶资金，不得重复享受" }
        if reads("social_insurance") { return "参加社会保险的情况（参保人数）不符合政策规定" }
        if reads("application.documents") { return "申请未附佐证材料" }
        return fallback
    }

    /// Why a merchant has nothing to be evaluated for under a programme granted per lease or per
    /// damage event (no lease or damage report on file).
    public static func nothingBound(per: PerKind) -> String {
        switch per {
        case .lease: "没有据以享受本政策的房屋租赁登记"
        case .damage: "没有据以享受本政策的受灾损失登记"
        case .merchant: fallback
        }
    }
}
