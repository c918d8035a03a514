import Bus
import Foundation
import GRDB
import Logging
import Models
import Policy
import Storage
import Synchronization

/// The live policies, compiled once per revision. Changed only inside a write transaction (so
/// every transaction sees a set consistent with the database); a rolled-back change reloads.
public final class PolicyCache: Sendable {
    private let live = Mutex<[String: CompiledPolicy]>([:])

    public init() {}

    /// Live policies in a stable order (by id), so exclusive groups resolve deterministically.
    public var policies: [CompiledPolicy] {
        live.withLock { $0.values.sorted { $0.document.id < $1.document.id } }
    }

    public func policy(_ id: String) -> CompiledPolicy? { live.withLock { $0[id] } }

    /// Policies under which an entitlement may be waiting for an application (marked when an
    /// evaluation leaves one incomplete without an application; nil: not known yet, so every
    /// policy). The deadline sweep looks only at these once their window has closed.
    private let awaiting = Mutex<Set<String>?>(nil)

    func markAwaitingApplication(_ policyID: String) { awaiting.withLock { _ = $0?.insert(policyID) } }

    func mayAwaitApplication(_ policyID: String) -> Bool { awaiting.withLock { $0?.contains(policyID) ?? true } }

    /// Called inside the sweep's write transaction, so no mark made by another one is lost.
    func swept(_ policyIDs: [String]) {
        awaiting.withLock { set in
            var s = set ?? Set(live.withLock { Array($0.keys) })
            for id in policyIDs { s.remove(id) }
            set = s
        }
    }

    func set(_ p: CompiledPolicy) { live.withLock { $0[p.document.id] = p } }
    func remove(_ id: String) { live.withLock { $0[id] = nil } }

    /// Loads the latest non-withdrawn revision of every policy.
    public func reload(_ db: Database) throws {
        var fresh: [String: CompiledPolicy] = [:]
        let rows = try Row.fetchAll(
            db,
            sql: """
                SELECT p.policy_id, p.yaml FROM policies p
                WHERE p.withdrawn_at IS NULL AND p.revision = (SELECT MAX(revision) FROM policies q WHERE q.policy_id = p.policy_id)
                """)
        for row in rows {
            let yaml: String = row["yaml"]
            if let compiled = try? PolicyCompiler.compile(yaml: yaml) { fresh[compiled.document.id] = compiled }
        }
        live.withLock { $0 = fresh }
    }
}

/// Evaluates merchants against policies and keeps each entitlement's state, appending the
/// `entitlement.*` events its changes cause to the outbox in the same transaction.
public struct MatcherEngine: Sendable {
    let cache: PolicyCache
    let outbox: Outbox
    let clock: any WallClock
    let logger: Logger
    /// Told of progress through long work (screening every merchant), so the watchdog stays fed.
    var liveness: Liveness?
    /// Merchants screened between two progress reports.
    static let progressEvery = 256

    public static let source = "/bangfu/matcher"

    /// The stable entitlement id: a hash of policy id, USCC, benefit period and binding
    /// (DESIGN §4) — the same for every revision of the policy, so retries and replays never
    /// make a second entitlement.
    public static func entitlementID(policy: PolicyDocument, uscc: String, bindingKey: String) -> String {
        let key = "\(policy.id)|\(uscc)|\(policy.periodFrom)..\(policy.periodTo)|\(bindingKey)"
        return "ent-" + String(SHA256.hex(key).prefix(32))
    }

    var now: String { Timestamp.format(clock.now()) }

    // MARK: Evaluation

    /// What an evaluation read and left behind: the merchant's entitlements after it (every
    /// policy's) and its applications on file, for a caller that goes on with the same merchant
    /// in the same transaction.
    struct Evaluated {
        var existing: [String: EntitlementRecord]
        var applications: [String: JSON]
    }

    /// Re-evaluates one merchant against `policies` (all live ones by default).
    @discardableResult
    func evaluate(uscc: String, profile: JSON, db: Database, only: [CompiledPolicy]? = nil) throws -> Evaluated? {
        let policies = only ?? cache.policies
        guard !policies.isEmpty else { return nil }
        var existing: [String: EntitlementRecord] = [:]
        for e in try EntitlementRecord.all(uscc: uscc, db) { existing[e.id] = e }
        let applications = try self.applications(uscc: uscc, db)
        for policy in policies {
            let doc = policy.document
            let application = applications[doc.id]
            // Screen without a trace; trace only what is kept, changed or revoked (most
            // merchant × policy pairs are simply not eligible and leave nothing behind).
            let input = PolicyInput(merchant: profile, application: application)
            // A merchant with an entitlement under this policy is always traced: evaluate once.
            let held = existing.values.contains { $0.policyID == doc.id }
            var determinations = policy.evaluate(input, traced: held)
            let touched =
                held
                || determinations.contains {
                    if case .ineligible = $0.outcome { return false }
                    return true
                }
            if touched && !held { determinations = policy.evaluate(input, traced: true) }
            var seen: Set<String> = []
            for d in determinations {
                let id = Self.entitlementID(policy: doc, uscc: uscc, bindingKey: d.bindingKey)
                seen.insert(id)
                let outcome = try decide(d, policy: doc, applied: application != nil, uscc: uscc, existing: existing, db: db)
                if let updated = try reconcile(
                    id: id, determination: d, outcome: outcome, policy: doc, uscc: uscc, profile: profile, existing: existing[id],
                    note: application == nil ? applicationNote(doc) : nil, db: db)
                {
                    existing[id] = updated
                }
            }
            // Bindings that disappeared (a lease or damage no longer in the profile).
            for e in existing.values where e.policyID == doc.id && !seen.contains(e.id) && e.state != .revoked {
                if let updated = try reconcile(
                    id: e.id, determination: nil, outcome: .none(reason: "the \(doc.per.rawValue) is no longer in the profile"),
                    policy: doc, uscc: uscc, profile: profile, existing: e, note: nil, db: db)
                {
                    existing[e.id] = updated
                }
            }
        }
        return Evaluated(existing: existing, applications: applications)
    }

    enum Wanted {
        case proposed(amountFen: Int64)
        case incomplete(missing: [String])
        case none(reason: String)
    }

    /// Whether a policy that needs an application has stopped taking them: 24:00 China Standard
    /// Time of the window's last day has passed on the matcher's clock (超过时限不再受理).
    func applicationsClosed(_ policy: PolicyDocument) -> Bool {
        guard policy.requiresApplication, let until = policy.applyUntil else { return false }
        return clock.now() >= ChinaTime.endOfDay(until)
    }

    /// Why a merchant without an application on file gets nothing once the window has closed.
    static func noApplicationReason(_ policy: PolicyDocument) -> String {
        "not eligible: no application by \(policy.applyUntil?.description ?? "the deadline") "
            + "(applications closed at 24:00 China Standard Time; 超过时限不再受理)"
    }

    /// What the trace records about the application when none is on file (nil when the policy
    /// needs none).
    func applicationNote(_ policy: PolicyDocument) -> JSON? {
        guard policy.requiresApplication, let until = policy.applyUntil else { return nil }
        let closed = applicationsClosed(policy)
        return [
            "required": true, "received": false, "apply_until": .string(until.description), "closed": .bool(closed),
            "text": .string(
                closed
                    ? Self.noApplicationReason(policy)
                    : "awaiting the application until 24:00 China Standard Time on \(until) (线上补报)"),
        ]
    }

    /// What the entitlement should be, given the determination, the application and the
    /// exclusive group.
    func decide(
        _ d: Determination, policy: PolicyDocument, applied: Bool, uscc: String, existing: [String: EntitlementRecord], db: Database
    ) throws -> Wanted {
        // No application on file and the window closed: nothing can come of it any more.
        if !applied, applicationsClosed(policy) {
            switch d.outcome {
            case .eligible, .incomplete: return .none(reason: Self.noApplicationReason(policy))
            case .ineligible, .error: break
            }
        }
        switch d.outcome {
        case .ineligible:
            return .none(reason: "not eligible: " + failingClauses(d.trace))
        case .error(let message):
            logger.error("policy evaluation failed", metadata: ["policy": "\(policy.id)", "uscc": "\(uscc)", "error": "\(message)"])
            return .none(reason: "evaluation error: \(message)")
        case .incomplete(let missing):
            if policy.requiresApplication && !applied { cache.markAwaitingApplication(policy.id) }
            return .incomplete(missing: missing)
        case .eligible(let amount):
            // Cash that works out at nothing (e.g. a rent subsidy on a rent of 0) is no entitlement:
            // there is nothing to disclose, approve or pay.
            if policy.benefit == .cash, amount <= 0 {
                return .none(reason: "nothing to pay: the amount works out at \(amount) fen")
            }
            if policy.requiresApplication && !applied {
                cache.markAwaitingApplication(policy.id)
                return .incomplete(missing: ["application"])
            }
            if let group = policy.exclusiveGroup {
                let id = Self.entitlementID(policy: policy, uscc: uscc, bindingKey: d.bindingKey)
                if let other = existing.values.first(where: {
                    $0.exclusiveGroup == group && $0.policyID != policy.id && $0.id != id && $0.state.holdsExclusiveGroup
                }) {
                    return .none(reason: "exclusive group \(group): already entitled under \(other.policyID) (\(other.id))")
                }
            }
            return .proposed(amountFen: amount)
        }
    }

    func failingClauses(_ trace: Trace) -> String {
        let clauses = trace.json["clauses"]?.arrayValue ?? []
        let failing = clauses.filter { $0["value"]?.boolValue == false }.compactMap { $0["source"]?.stringValue ?? $0["text"]?.stringValue }
        return failing.isEmpty ? "the eligibility rule is false" : failing.joined(separator: "; ")
    }

    /// Moves one entitlement toward what the facts now say; returns the record if it changed.
    func reconcile(
        id: String, determination d: Determination?, outcome: Wanted, policy: PolicyDocument, uscc: String, profile: JSON,
        existing: EntitlementRecord?, note: JSON?, db: Database
    ) throws -> EntitlementRecord? {
        var trace = d.map { $0.trace.json.serializedBytes() } ?? existing?.traceBytes ?? Array("{}".utf8)
        if let d, let note, case .object(var o) = d.trace.json {
            o["application"] = note
            trace = JSON.object(o).serializedBytes()
        }
        let priority = d?.priority ?? existing?.priority ?? false
        guard var e = existing else {
            switch outcome {
            case .none:
                return nil
            case .incomplete(let missing):
                var e = EntitlementRecord(
                    id: id, policyID: policy.id, policyRevision: policy.revision, uscc: uscc, bindingKey: d?.bindingKey ?? "merchant",
                    exclusiveGroup: policy.exclusiveGroup, state: .incomplete, amountFen: 0, priority: priority, missing: missing,
                    trace: .null)
                e.traceBytes = trace
                try emit(&e, "entitlement.incomplete", policy: policy, profile: profile, db: db)
                return e
            case .proposed(let amount):
                var e = EntitlementRecord(
                    id: id, policyID: policy.id, policyRevision: policy.revision, uscc: uscc, bindingKey: d?.bindingKey ?? "merchant",
                    exclusiveGroup: policy.exclusiveGroup, state: .proposed, amountFen: amount, priority: priority, missing: [],
                    trace: .null)
                e.traceBytes = trace
                try emit(&e, "entitlement.proposed", policy: policy, profile: profile, db: db)
                try autoApproveIfNoDisclosure(&e, policy: policy, profile: profile, db: db)
                return e
            }
        }
        let before = e
        e.policyRevision = policy.revision
        e.exclusiveGroup = policy.exclusiveGroup
        if e.state.beforeApproval {
            switch outcome {
            case .proposed(let amount):
                e.traceBytes = trace
                e.priority = priority
                if e.state == .incomplete || amount != e.amountFen {
                    // New or changed amount: (re-)proposed, and disclosed again.
                    e.state = .proposed
                    e.amountFen = amount
                    e.missing = []
                    e.reason = nil
                    try emit(&e, "entitlement.proposed", policy: policy, profile: profile, db: db)
                    try autoApproveIfNoDisclosure(&e, policy: policy, profile: profile, db: db)
                } else if e != before {
                    try e.save(db, now: now)
                }
            case .incomplete(let missing):
                if e.state == .incomplete && e.missing == missing { return nil }
                e.state = .incomplete
                e.missing = missing
                e.traceBytes = trace
                try emit(&e, "entitlement.incomplete", policy: policy, profile: profile, db: db)
            case .none(let reason):
                e.state = .revoked
                e.reason = "facts_changed: \(reason)"
                e.traceBytes = trace
                try emit(&e, "entitlement.revoked", policy: policy, profile: profile, db: db)
            }
            return e
        }
        if e.state == .revoked {
            // An entitlement revoked because the facts changed comes back with the facts, and one
            // revoked by the withdrawal of an earlier revision comes back under a later revision
            // (DESIGN §6.4: the new revision screens everyone). One revoked by an objection, a
            // review or fraud stays revoked. A withdrawal never revokes money instructed or paid,
            // and the comeback starts again from `proposed` (disclosed and approved anew); payments
            // keys a payment by the entitlement id, so a second approval never pays twice.
            let factsChanged = e.reason?.hasPrefix("facts_changed") == true
            let withdrawnEarlier = e.reason?.hasPrefix("policy_withdrawn") == true && before.policyRevision < policy.revision
            guard factsChanged || withdrawnEarlier else {
                e = before
                return nil
            }
            e.approvedAmountFen = nil
            e.reviewFlag = nil
            switch outcome {
            case .none: return nil
            case .incomplete(let missing):
                e.state = .incomplete
                e.missing = missing
                e.reason = nil
                e.traceBytes = trace
                try emit(&e, "entitlement.incomplete", policy: policy, profile: profile, db: db)
            case .proposed(let amount):
                e.state = .proposed
                e.amountFen = amount
                e.missing = []
                e.reason = nil
                e.traceBytes = trace
                try emit(&e, "entitlement.proposed", policy: policy, profile: profile, db: db)
                try autoApproveIfNoDisclosure(&e, policy: policy, profile: profile, db: db)
            }
            return e
        }
        if e.state == .clawedBack { return nil }
        // Approved or later: the amount is frozen (DESIGN §7). Fraud revokes; any other change
        // raises a review flag for an operator instead of changing what is being paid.
        if profile["disqualified"]?.boolValue == true {
            e.state = .revoked
            e.reason = "fraud: disqualified from every programme"
            e.traceBytes = trace
            try emit(&e, "entitlement.revoked", policy: policy, profile: profile, db: db)
            return e
        }
        var flag: JSON?
        switch outcome {
        case .proposed(let amount) where amount == e.approvedAmountFen ?? e.amountFen:
            flag = nil
        case .proposed(let amount):
            flag = ["kind": "amount_changed", "would_be_fen": .int(amount), "frozen_fen": .int(e.approvedAmountFen ?? e.amountFen)]
        case .incomplete(let missing):
            flag = ["kind": "facts_missing", "missing": .array(missing.map { .string($0) })]
        case .none(let reason):
            flag = ["kind": "no_longer_eligible", "reason": .string(reason)]
        }
        if flag != e.reviewFlag {
            e.reviewFlag = flag
            if let flag {
                logger.warning(
                    "approved entitlement flagged for review",
                    metadata: ["entitlement": "\(e.id)", "policy": "\(e.policyID)", "flag": "\(flag.serialized())"])
            }
            try e.save(db, now: now)
            return e
        }
        return nil
    }

    func autoApproveIfNoDisclosure(_ e: inout EntitlementRecord, policy: PolicyDocument, profile: JSON, db: Database) throws {
        guard policy.disclosureWorkingDays == 0 && policy.autoApprove else { return }
        try approve(&e, by: "auto (no disclosure period)", policy: policy, profile: profile, db: db)
    }

    func approve(_ e: inout EntitlementRecord, by: String, policy: PolicyDocument?, profile: JSON?, db: Database) throws {
        e.state = .approved
        e.approvedAmountFen = e.amountFen
        e.reason = "approved by \(by)"
        try emit(&e, "entitlement.approved", policy: policy, profile: profile, db: db)
    }

    /// One step of the entitlement's history (`entitlement_history`): what happened, the state
    /// it left, and the detail an auditor needs (who, why, which round, which profile version).
    func history(_ e: EntitlementRecord, _ step: String, detail: String?, db: Database) throws {
        try db.cachedStatement(sql: "INSERT INTO entitlement_history(entitlement_id, at, step, state, detail) VALUES (?, ?, ?, ?, ?)")
            .execute(arguments: [e.id, now, step, e.state.rawValue, detail])
    }

    /// Saves the record and appends its event: `<type>/<entitlement id>/<n>` is the event id.
    func emit(
        _ e: inout EntitlementRecord, _ type: String, policy: PolicyDocument?, profile: JSON?, note: String? = nil, db: Database
    ) throws {
        e.events += 1
        try e.save(db, now: now)
        // The step, with the profile version it was decided on (the registry's facts up to it).
        var detail = [String]()
        if let note { detail.append(note) }
        if let version = profile?["version"]?.intValue { detail.append("profile version \(version)") }
        if type == "entitlement.proposed" || type == "entitlement.incomplete" {
            detail.append("policy revision \(e.policyRevision)")
        }
        if let reason = e.reason { detail.append(reason) }
        try history(e, String(type.dropFirst("entitlement.".count)), detail: detail.isEmpty ? nil : detail.joined(separator: "; "), db: db)
        var o = JSONObject()
        o["entitlement_id"] = .string(e.id)
        o["policy_id"] = .string(e.policyID)
        o["policy_revision"] = .int(Int64(e.policyRevision))
        o["uscc"] = .string(e.uscc)
        if let profile {
            // The registry's profile version the decision rests on (its facts up to that version).
            if let version = profile["version"] { o["profile_version"] = version }
            o["name"] = profile["name"] ?? .null
            // The name as the public board may show it (the operator's name masked in it).
            if let publicName = profile["public_name"] { o["public_name"] = publicName }
            o["kind"] = profile["kind"] ?? .null
            o["district"] = profile["district"] ?? .null
        }
        o["state"] = .string(e.state.rawValue)
        o["amount_fen"] = .int(e.approvedAmountFen ?? e.amountFen)
        o["binding"] = .string(e.bindingKey)
        let lease =
            policy?.per == .lease ? profile?["leases"]?.arrayValue?.first(where: { $0["lease_id"]?.stringValue == e.bindingKey }) : nil
        // A waiver the lessor must refund directly (the policy's `refund_only`: a lease under three
        // months in the period, seed 篇二 (二)): the lessor's instruction and the tenant's texts say so.
        if let lease, let profile, policy?.refundOnlySource != nil,
            cache.policy(e.policyID)?.refundOnly(merchant: profile, binding: lease) == true
        {
            o["refund_only"] = true
        }
        // An approved rent waiver names its lease and lessor: the lessor carries it out.
        if type == "entitlement.approved", let lease {
            o["lease"] = [
                "lease_id": lease["lease_id"] ?? .null, "lessor": lease["lessor"] ?? .null, "root_lessor": lease["root_lessor"] ?? .null,
                "monthly_rent_fen": lease["monthly_rent_fen"] ?? .null, "starts_on": lease["starts_on"] ?? .null,
                "ends_on": lease["ends_on"] ?? .null,
            ]
        }
        if let policy {
            o["title"] = .string(policy.title)
            o["authority"] = .string(policy.authority)
            // What the public is told (the board): the policy's own zh-CN `standard`, never the
            // operators' `notes`.
            if let standard = policy.standard { o["standard"] = .string(standard) }
            o["benefit"] = .string(policy.benefit.rawValue)
            o["channel"] = .string(policy.channel)
            o["pool"] = policy.pool.map { .string($0) } ?? .null
            o["period"] = ["from": .string(policy.periodFrom.description), "to": .string(policy.periodTo.description)]
            o["disclosure"] = ["working_days": .int(Int64(policy.disclosureWorkingDays)), "auto_approve": .bool(policy.autoApprove)]
            o["requires_application"] = .bool(policy.requiresApplication)
            // The application window, so the merchant can be told by when to apply (线上补报).
            if policy.requiresApplication, let until = policy.applyUntil {
                o["window"] = [
                    "apply_from": policy.applyFrom.map { .string($0.description) } ?? .null, "apply_until": .string(until.description),
                ]
            }
        }
        o["exclusive_group"] = e.exclusiveGroup.map { .string($0) } ?? .null
        o["priority"] = .bool(e.priority)
        if !e.missing.isEmpty { o["missing"] = .array(e.missing.map { .string($0) }) }
        if let reason = e.reason { o["reason"] = .string(reason) }
        // The trace goes in as stored (already compact JSON) rather than parsed and written again,
        // unless it is too big for the feed: then its bulky list inputs go as summaries
        // (`PublishedTrace`), and the full trace stays with the entitlement.
        var bytes = JSON.object(o).serializedBytes()
        bytes.removeLast()
        bytes.append(contentsOf: Array(",\"trace\":".utf8))
        let room = Int(clamping: outbox.maxEventBytes) - bytes.count - Outbox.envelopeBytes - 2 * (type.utf8.count + e.id.utf8.count + 64)
        let trace = PublishedTrace.fit(
            e.traceBytes.isEmpty ? Array("{}".utf8) : e.traceBytes, budget: Swift.max(0, Swift.min(PublishedTrace.budget, room)))
        if trace.count != e.traceBytes.count && !e.traceBytes.isEmpty {
            logger.notice(
                "entitlement event published with a shortened trace",
                metadata: [
                    "entitlement": "\(e.id)", "type": "\(type)", "trace_bytes": "\(e.traceBytes.count)",
                    "published_bytes": "\(trace.count)",
                ])
        }
        bytes.append(contentsOf: trace)
        bytes.append(UInt8(ascii: "}"))
        try outbox.append(db, type: type, subject: e.uscc, id: "\(type)/\(e.id)/\(e.events)", rawData: bytes)
    }

    // MARK: Inputs

    func applications(uscc: String, _ db: Database) throws -> [String: JSON] {
        var out: [String: JSON] = [:]
        for row in try Row.fetchAll(
            db.cachedStatement(sql: "SELECT policy_id, submitted_at, documents FROM applications WHERE uscc = ?"), arguments: [uscc])
        {
            let submitted: String = row["submitted_at"]
            let docs: Data = row["documents"]
            let submittedOn = MatcherTime.wholeSeconds(submitted).map { ChinaTime.civilDate(of: $0).description } ?? submitted
            out[row["policy_id"]] = [
                "submitted_on": .string(submittedOn), "submitted_at": .string(submitted),
                "documents": (try? JSONParser.parse([UInt8](docs))) ?? .array([]),
            ]
        }
        return out
    }

    static func profile(uscc: String, _ db: Database) throws -> JSON? {
        guard let data = try Data.fetchOne(db.cachedStatement(sql: "SELECT body FROM profiles WHERE uscc = ?"), arguments: [uscc]) else {
            return nil
        }
        return try JSONParser.parse([UInt8](data))
    }

    /// Screens every merchant in the projection against one policy (after publication).
    func screenAll(_ policy: CompiledPolicy, db: Database) throws -> Int {
        // Under a policy nobody holds an entitlement under or has applied to yet, a merchant it
        // finds ineligible leaves nothing behind: only the others need their entitlements and
        // applications read (`evaluate` would reach the same nothing through them).
        let id = policy.document.id
        let fresh = try
            !(Bool.fetchOne(
                db,
                sql:
                    "SELECT EXISTS(SELECT 1 FROM entitlements WHERE policy_id = ?) OR EXISTS(SELECT 1 FROM applications WHERE policy_id = ?)",
                arguments: [id, id]) ?? true)
        let rows = try Row.fetchCursor(db, sql: "SELECT uscc, body FROM profiles ORDER BY id")
        var n = 0
        while let row = try rows.next() {
            let body: Data = row["body"]
            let profile = try JSONParser.parse([UInt8](body))
            n += 1
            // One transaction on the node's thread, minutes long at county scale: keep the
            // watchdog fed (`Liveness` sends at most one beat per interval).
            if n % Self.progressEvery == 0 { liveness?.progress("screening \(id) revision \(policy.document.revision): \(n) merchants") }
            if fresh
                && policy.evaluate(PolicyInput(merchant: profile, application: nil), traced: false).allSatisfy({
                    if case .ineligible = $0.outcome { return true }
                    return false
                })
            {
                continue
            }
            try evaluate(uscc: row["uscc"], profile: profile, db: db, only: [policy])
        }
        return n
    }
}
