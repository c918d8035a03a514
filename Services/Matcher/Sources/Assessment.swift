import Bus
import Foundation
import GRDB
import Logging
import Models
import Policy
import Storage

/// 不符合条件告知: an applicant the matcher finds not eligible is told so, with the reasons.
///
/// An application to a programme a merchant qualifies for (or might, once facts are supplied)
/// leads to `entitlement.proposed` / `entitlement.incomplete`; one it does not qualify for would
/// otherwise leave nothing behind, and the applicant would never hear back. When the matcher takes
/// an application and finds nothing for the merchant under that programme, it publishes
/// `application.assessed` (subject = uscc, `outcome: "ineligible"`) with the reasons in plain
/// Chinese from the failing top-level clauses of the trace (``ClauseWording``), the traces, and the
/// `explain` query that reproduces them. It is sent when the application is taken (a supplement
/// with new documents is a new assessment); a later re-evaluation that finds the merchant eligible
/// proposes an entitlement as usual, which supersedes it.
extension MatcherEngine {
    /// The stable id of an assessment: a hash of the policy, the merchant and the application as
    /// it stands (its first `submitted_at` and its documents, sorted), so that a replay or a
    /// retry makes no second one, and a supplement (线上补报) with new documents is answered anew.
    public static func assessmentID(policyID: String, uscc: String, submittedAt: String, documents: [String]) -> String {
        let key = [policyID, uscc, submittedAt, documents.sorted().joined(separator: "\u{1F}")].joined(separator: "\u{1E}")
        return "asm-" + String(SHA256.hex(key).prefix(32))
    }

    /// Why a determination the evaluation kept nothing for leaves the applicant with nothing, in
    /// Chinese; nil when it does lead to an entitlement (or the evaluation failed: an operator's
    /// matter, not the merchant's).
    func assessmentReasons(
        _ d: Determination, policy: PolicyDocument, uscc: String, existing: [String: EntitlementRecord], db: Database
    ) throws -> [String]? {
        switch d.outcome {
        case .ineligible:
            let reasons = ClauseWording.reasons(d.trace)
            return reasons.isEmpty ? [ClauseWording.fallback] : reasons
        case .incomplete, .error:
            return nil
        case .eligible:
            guard case .none(let reason) = try decide(d, policy: policy, applied: true, uscc: uscc, existing: existing, db: db) else {
                return nil
            }
            if reason.hasPrefix("exclusive group") { return ["已享受同类帮扶资金，不得重复享受"] }
            if reason.hasPrefix("nothing to pay") { return ["经核定，可享受的金额为零"] }
            return [ClauseWording.fallback]
        }
    }

    /// Called once an application has been taken and the merchant evaluated under `policy`
    /// (`evaluated`: what that evaluation read and left, so nothing is read twice): publishes
    /// `application.assessed` when the merchant holds no entitlement under the policy (in any
    /// state) and every determination says not eligible. Returns the assessment id when it
    /// published one.
    @discardableResult
    func assessApplication(
        uscc: String, policy compiled: CompiledPolicy, profile: JSON, evaluated: Evaluated, db: Database
    ) throws -> String? {
        let policy = compiled.document
        guard let application = evaluated.applications[policy.id],
            let submittedAt = application["submitted_at"]?.stringValue
        else { return nil }
        // Eligible, incomplete, or with an entitlement under this policy at all (under way, or
        // revoked — e.g. just now, with nothing to pay): the entitlement's own events tell the
        // merchant, and one text is enough.
        if evaluated.existing.values.contains(where: { $0.policyID == policy.id }) {
            return nil
        }
        let determinations = compiled.evaluate(PolicyInput(merchant: profile, application: application), traced: true)
        var reasons: [String] = []
        var items: [(binding: String, reasons: [String], trace: [UInt8])] = []
        for d in determinations {
            guard let r = try assessmentReasons(d, policy: policy, uscc: uscc, existing: evaluated.existing, db: db) else {
                return nil
            }
            for text in r where !reasons.contains(text) { reasons.append(text) }
            items.append((d.bindingKey, r, d.trace.json.serializedBytes()))
        }
        if determinations.isEmpty {
            // Nothing bound (no lease, no damage): a condition on the merchant alone that fails
            // decides the matter whatever it registers, and is named first — a merchant outside
            // the programme's area is not sent to register a damage that could not help it.
            let unbound = compiled.evaluateUnbound(PolicyInput(merchant: profile, application: application))
            reasons = (unbound.map { ClauseWording.reasons($0.trace) } ?? []) + [ClauseWording.nothingBound(per: policy.per)]
        }

        let documents = application["documents"]?.arrayValue?.compactMap(\.stringValue) ?? []
        let id = Self.assessmentID(policyID: policy.id, uscc: uscc, submittedAt: submittedAt, documents: documents)
        try db.cachedStatement(
            sql: """
                INSERT INTO assessments(id, policy_id, policy_revision, uscc, outcome, reasons, assessed_at)
                VALUES (?, ?, ?, ?, 'ineligible', ?, ?) ON CONFLICT(id) DO NOTHING
                """
        ).execute(arguments: [id, policy.id, policy.revision, uscc, Data(JSON.array(reasons.map { .string($0) }).serializedBytes()), now])
        guard db.changesCount > 0 else { return nil }

        var o = JSONObject()
        o["assessment_id"] = .string(id)
        o["uscc"] = .string(uscc)
        o["policy_id"] = .string(policy.id)
        o["policy_revision"] = .int(Int64(policy.revision))
        o["title"] = .string(policy.title)
        o["authority"] = .string(policy.authority)
        o["benefit"] = .string(policy.benefit.rawValue)
        o["outcome"] = "ineligible"
        o["submitted_at"] = .string(submittedAt)
        o["documents"] = .array(documents.map { .string($0) })
        o["name"] = profile["name"] ?? .null
        if let publicName = profile["public_name"] { o["public_name"] = publicName }
        o["kind"] = profile["kind"] ?? .null
        o["district"] = profile["district"] ?? .null
        if let until = policy.applyUntil {
            o["window"] = [
                "apply_from": policy.applyFrom.map { .string($0.description) } ?? .null, "apply_until": .string(until.description),
            ]
        }
        o["reasons"] = .array(reasons.map { .string($0) })
        o["assessed_at"] = .string(now)
        // The query that reproduces the traces on the matcher's current profile (`bangfu explain`).
        o["explain"] = ["op": "explain", "uscc": .string(uscc), "policy": .string(policy.id)]
        // The traces as an entitlement event carries them (`PublishedTrace`), shared out over the
        // room the event has; an event with no room for them says so and points to `explain`.
        var head = JSON.object(o).serializedBytes()
        let room = Int(clamping: outbox.maxEventBytes) - head.count - Outbox.envelopeBytes - 512
        let each = items.isEmpty ? 0 : Swift.min(PublishedTrace.budget, room / items.count - 256)
        var list: [JSON] = []
        // Nothing bound (no lease, no damage): there are no traces, and none is left out.
        var omitted = !items.isEmpty && each < 1_024
        if !omitted {
            var total = 0
            for item in items {
                let trace = PublishedTrace.fit(item.trace, budget: each)
                total += trace.count + 256
                list.append([
                    "binding": .string(item.binding), "result": "ineligible", "reasons": .array(item.reasons.map { .string($0) }),
                    "trace": (try? JSONParser.parse(trace)) ?? .null,
                ])
            }
            omitted = total > room
        }
        if omitted {
            list = items.map {
                ["binding": .string($0.binding), "result": "ineligible", "reasons": .array($0.reasons.map { .string($0) })]
            }
            o["trace_omitted"] = true
            logger.notice(
                "application assessment published without its traces", metadata: ["assessment": "\(id)", "policy": "\(policy.id)"])
        }
        o["determinations"] = .array(list)
        head = JSON.object(o).serializedBytes()
        try outbox.append(db, type: "application.assessed", subject: uscc, id: "application.assessed/\(id)", rawData: head)
        logger.debug(
            "applicant found not eligible: told so",
            metadata: ["assessment": "\(id)", "policy": "\(policy.id)", "reasons": "\(reasons.count)"])
        return id
    }
}
