import Bus
import Foundation
import GRDB
import Logging
import Models
import Policy
import ServiceKit
import Storage
import Synchronization

/// Applies the upstream feeds the matcher follows, each delivery batch in one transaction with
/// the inbox cursor: the registry's profiles (re-evaluate that merchant), the notifier's
/// disclosure events and payments' payment events (move the entitlement along its lifecycle).
struct MatcherFeeds: DatabaseFeedConsumer {
    let database: ServiceDatabase
    let engine: MatcherEngine
    let handle: ServiceHandle

    /// Profiles, disclosure rounds and payment outcomes; not the notifier's `notification.*`
    /// nor payments' own bookkeeping.
    func wants(feed: String, type: String) -> Bool {
        type == "merchant.profiled" || type.hasPrefix("disclosure.") || type.hasPrefix("payment.") || type == "clawback.opened"
            || type.hasPrefix("reversal.")
    }

    func apply(feed: String, _ deliveries: [FeedDelivery], through: UInt64) throws {
        try database.writer.write { db in
            for d in deliveries {
                guard let event = d.event else {
                    try Quarantine.add(
                        db, origin: "feed:\(feed)", at: Timestamp.format(engine.clock.now()),
                        rejection: d.error ?? Rejection(.invalidJSON, "unreadable upstream event"), source: nil, eventID: nil, type: nil,
                        frame: d.raw)
                    continue
                }
                switch event.type {
                case "merchant.profiled": try profiled(event, db)
                default: try lifecycle(event, db)
                }
            }
            try InboxCursor.set(db, feed: feed, to: through)
        }
        handle.node?.notifyOutbox()
    }

    func profiled(_ event: CloudEvent, _ db: Database) throws {
        guard let data = event.data, let uscc = data["uscc"]?.stringValue, let version = data["version"]?.intValue else { return }
        let stored = try Int64.fetchOne(db.cachedStatement(sql: "SELECT version FROM profiles WHERE uscc = ?"), arguments: [uscc])
        if let stored, stored >= version { return }
        try db.cachedStatement(
            sql:
                "INSERT INTO profiles(uscc, version, body) VALUES (?, ?, ?) ON CONFLICT(uscc) DO UPDATE SET version = excluded.version, body = excluded.body"
        ).execute(arguments: [uscc, version, Data(data.serializedBytes())])
        try engine.evaluate(uscc: uscc, profile: data, db: db)
    }

    /// The disclosure round an event names.
    static func round(_ event: CloudEvent) -> String? {
        event.data?["round_id"]?.stringValue.map { "round \($0)" }
    }

    /// Where a payment event says the money went: its batch or file and the bank's return.
    static func paymentDetail(_ event: CloudEvent) -> String? {
        let d = event.data
        let parts = [
            d?["batch_id"]?.stringValue.map { "batch \($0)" }, d?["file"]?.stringValue.map { "file \($0)" },
            d?["return_id"]?.stringValue.map { "return \($0)" },
            d?["method"]?.stringValue.map { "carried out by \(d?["channel"]?.stringValue ?? "the channel"): \($0)" },
            d?["audit_link"].flatMap { link in
                link["seq"]?.intValue.flatMap { seq in link["hash"]?.stringValue.map { "payments audit link \(seq):\($0)" } }
            },
        ].compactMap { $0 }
        return parts.isEmpty ? nil : parts.joined(separator: ", ")
    }

    static func ids(_ data: JSON?) -> [String] {
        var out: [String] = []
        for key in ["entitlement_id", "payment_id"] { if let s = data?[key]?.stringValue { out.append(s) } }
        out += data?["entitlement_ids"]?.arrayValue?.compactMap(\.stringValue) ?? []
        var seen: Set<String> = []
        return out.filter { seen.insert($0).inserted }
    }

    /// disclosure.* (notifier) and payment.* (payments) move an entitlement along DESIGN §7.
    func lifecycle(_ event: CloudEvent, _ db: Database) throws {
        for id in Self.ids(event.data) {
            guard var e = try EntitlementRecord.find(id, db) else {
                engine.logger.warning(
                    "lifecycle event for an unknown entitlement", metadata: ["type": "\(event.type)", "entitlement": "\(id)"])
                continue
            }
            let policy = engine.cache.policy(e.policyID)?.document
            // Read (and parsed) only when an event goes out: most steps just save the state.
            let uscc = e.uscc
            var profile: JSON? { get throws { try MatcherEngine.profile(uscc: uscc, db) } }
            let from = e.state
            switch (event.type, e.state) {
            case ("disclosure.opened", .proposed):
                e.state = .disclosed
                try e.save(db, now: engine.now)
                try engine.history(e, "disclosed", detail: Self.round(event), db: db)
            case ("disclosure.cleared", .proposed), ("disclosure.cleared", .disclosed):
                e.state = .cleared
                e.reason = "disclosure cleared"
                try engine.history(e, "cleared", detail: Self.round(event), db: db)
                if policy?.autoApprove == true {
                    try engine.approve(&e, by: "auto after disclosure", policy: policy, profile: profile, db: db)
                } else {
                    try e.save(db, now: engine.now)
                }
            case ("disclosure.objection_upheld", let s) where s.beforeApproval:
                e.state = .revoked
                e.reason = "objection_upheld" + (event.data?["reason"]?.stringValue.map { ": \($0)" } ?? "")
                try engine.emit(&e, "entitlement.revoked", policy: policy, profile: profile, db: db)
            case ("payment.instructed", .approved), ("payment.instructed", .held), ("payment.instructed", .failed):
                e.state = .instructed
                // A hold or a failure is over once the money is instructed.
                if let r = e.reason, ["held: ", "failed: ", "released: ", "voided: "].contains(where: { r.hasPrefix($0) }) {
                    e.reason = nil
                }
                try e.save(db, now: engine.now)
                try engine.history(e, "instructed", detail: Self.paymentDetail(event), db: db)
            case ("payment.released", .held), ("payment.released", .failed):
                // Payments let the payment go on (a hold released, a failed payment retried).
                e.state = .approved
                e.reason = "released: " + (event.data?["reason"]?.stringValue ?? "hold")
                try e.save(db, now: engine.now)
                try engine.history(e, "released", detail: e.reason, db: db)
            case ("payment.held", .approved), ("payment.held", .instructed), ("payment.held", .failed), ("payment.held", .held):
                e.state = .held
                e.reason = "held: " + (event.data?["reason"]?.stringValue ?? "unspecified")
                try e.save(db, now: engine.now)
                try engine.history(e, "held", detail: e.reason, db: db)
            case ("payment.settled", .approved), ("payment.settled", .instructed), ("payment.settled", .held):
                e.state = .paid
                e.reason = nil
                try engine.emit(&e, "entitlement.paid", policy: policy, profile: profile, note: Self.paymentDetail(event), db: db)
            case ("payment.failed", .instructed), ("payment.failed", .approved), ("payment.failed", .held):
                e.state = .failed
                if event.data?["voided"]?.boolValue == true {
                    // An operator rejected the payment's hold: payments voided it (no retry).
                    e.reason =
                        "voided: " + (event.data?["reason"]?.stringValue ?? "hold_rejected")
                        + (event.data?["rejected_hold"]?.stringValue.map { " (\($0))" } ?? "")
                } else {
                    e.reason = "failed: " + (event.data?["reason"]?.stringValue ?? "bank return")
                }
                try e.save(db, now: engine.now)
                try engine.history(
                    e, "failed", detail: [e.reason, Self.paymentDetail(event)].compactMap { $0 }.joined(separator: "; "), db: db)
            case ("payment.failed", .paid) where event.data?["after_settlement"]?.boolValue == true:
                // The bank sent the money back after settling it (camt.054): not paid after all.
                e.state = .failed
                e.reason = "returned after settlement: " + (event.data?["reason"]?.stringValue ?? "bank return")
                try e.save(db, now: engine.now)
                try engine.history(e, "failed", detail: e.reason, db: db)
            case ("clawback.opened", _):
                e.state = .clawedBack
                e.reason = "clawback: " + (event.data?["reason"]?.stringValue ?? "opened")
                try e.save(db, now: engine.now)
                try engine.history(e, "clawed_back", detail: e.reason, db: db)
            case ("reversal.instructed", _):
                // A waiver or deferral taken back through the lessor or agency: the entitlement's
                // state stays (revoked, clawed back); its history says in which file and why.
                let d = event.data
                let what = [
                    d?["action"]?.stringValue, d?["reason"]?.stringValue.map { "(\($0))" },
                    d?["confirm_by"]?.stringValue.map { "confirm by \($0)" },
                ].compactMap { $0 }.joined(separator: " ")
                try engine.history(
                    e, "reversal_instructed", detail: [what, Self.paymentDetail(event)].compactMap { $0 }.joined(separator: "; "), db: db)
            case ("reversal.confirmed", _):
                let ok = event.data?["ok"]?.boolValue != false
                let detail = [
                    (event.data?["action"]?.stringValue ?? "reversal") + (ok ? " done" : " not done"),
                    event.data?["method"]?.stringValue, event.data?["batch_id"]?.stringValue.map { "batch \($0)" },
                ].compactMap { $0 }.joined(separator: "; ")
                try engine.history(e, ok ? "reversal_confirmed" : "reversal_declined", detail: detail, db: db)
            default:
                engine.logger.debug(
                    "lifecycle event does not apply in this state",
                    metadata: ["type": "\(event.type)", "entitlement": "\(id)", "state": "\(from.rawValue)"])
            }
        }
    }
}

/// Builds the matcher: the same function `bangfu-matcher`'s `main` and the tests call.
public enum MatcherService {
    public static let name = "matcher"
    public static let upstreams = ["registry", "notifier", "payments"]

    public static func build(options: ServiceOptions, environment env: ServiceEnvironment) throws -> BusService {
        var logger = env.logger
        logger[metadataKey: "service"] = "matcher"
        let security = try ServiceSecurity(options: options, environment: env)
        let database = try MatcherDatabase(stateDir: options.stateDir)
        try SimulatedTime.restore(env.clock, from: database.db)
        let cache = PolicyCache()
        try database.db.writer.read { db in try cache.reload(db) }
        // Screening a county for a new policy runs on the node's thread for minutes: it reports
        // progress here, which keeps systemd's watchdog fed.
        let liveness = Liveness()
        var built = MatcherEngine(
            cache: cache, outbox: Outbox(source: MatcherEngine.source, clock: env.clock, maxEventBytes: options.maxMessageBytes),
            clock: env.clock, logger: logger)
        built.liveness = liveness
        let engine = built
        let pipeline = IntakePipeline(
            database: database.db, applier: MatcherApplier(engine: engine), clock: env.clock, authorize: security.authorizer, logger: logger
        )
        var settings = NodeSettings()
        security.secure(&settings)
        settings.socket.maxMessageBytes = options.maxMessageBytes
        let handle = ServiceHandle()
        let queries = StandardQueries(
            service: name, database: database.db,
            live: {
                var o = handle.figures(simulatedClock: options.simulatedClock, clock: env.clock)
                o["live_policies"] = .array(cache.policies.map { .string("\($0.document.id)@\($0.document.revision)") })
                return o
            },
            extra: { req in try MatcherQueries(database: database.db, engine: engine).respond(req) })
        let node = ServiceNode(
            name: name, context: env.context, endpoints: options.endpoints, settings: settings, processor: pipeline,
            feed: OutboxFeedStore(database: database.db), responder: queries, logger: logger, liveness: liveness)
        handle.node = node
        let consumer = MatcherFeeds(database: database.db, engine: engine, handle: handle)
        let subs = env.subscribers(options: options, consumer: consumer, security: security, handle: handle, logger: logger)
        // A closed application window revokes what waits for an application (on the node's
        // thread, between intake batches: no fact arrives to trigger it).
        let sweep = DeadlineSweep(database: database.db, engine: engine)
        node.onTick { [weak node, logger] in
            do {
                if try sweep.run() > 0 { node?.notifyOutbox() }
            } catch {
                logger.error("deadline sweep failed; it is tried again at the next tick", metadata: ["error": "\(error)"])
            }
        }
        return BusService(name: name, node: node, subscribers: subs, logger: logger, notifier: env.notifier, security: security)
    }
}

/// The matcher's operator queries: `policy.list`, `explain`, `entitlement.show`, `entitlement.list`,
/// `entitlement.summary`.
struct MatcherQueries {
    let database: ServiceDatabase
    let engine: MatcherEngine

    func respond(_ req: JSON) throws -> JSON? {
        switch req["op"]?.stringValue {
        case "policy.list":
            // Every revision with its own title (from its stored YAML, so a withdrawn or
            // superseded revision keeps its name) and the entitlements held under it.
            let rows = try database.writer.read { db in
                try Row.fetchAll(
                    db,
                    sql: """
                        SELECT policy_id, revision, yaml, source_hash, published_at, withdrawn_at, withdraw_reason,
                            (SELECT COUNT(*) FROM entitlements e WHERE e.policy_id = p.policy_id AND e.policy_revision = p.revision
                                AND e.state NOT IN ('revoked','incomplete')) AS entitled,
                            (SELECT COUNT(*) FROM entitlements e WHERE e.policy_id = p.policy_id AND e.policy_revision = p.revision
                                AND e.state = 'incomplete') AS incomplete
                        FROM policies p ORDER BY policy_id, revision
                        """)
            }
            let items: [JSON] = rows.map { r in
                let id: String = r["policy_id"]
                let revision: Int = r["revision"]
                let live = engine.cache.policy(id)?.document
                let doc = live?.revision == revision ? live : (try? PolicyCompiler.compile(yaml: r["yaml"]))?.document
                let withdrawn = r["withdrawn_at"] as String?
                let isLive = live?.revision == revision && withdrawn == nil
                let state = isLive ? "live" : withdrawn != nil ? "withdrawn" : "superseded"
                return [
                    "policy_id": .string(id), "revision": .int(Int64(revision)), "source_hash": .string(r["source_hash"]),
                    "published_at": .string(r["published_at"]),
                    "withdrawn_at": withdrawn.map { .string($0) } ?? .null,
                    "withdraw_reason": (r["withdraw_reason"] as String?).map { .string($0) } ?? .null,
                    "live": .bool(isLive), "state": .string(state),
                    "title": doc.map { .string($0.title) } ?? .null, "entitled": .int(r["entitled"]), "incomplete": .int(r["incomplete"]),
                    "reviewers": .array((doc?.reviewers ?? []).map { .string($0) }),
                ]
            }
            return ["op": "policies", "items": .array(items)]
        case "explain":
            guard let uscc = req["uscc"]?.stringValue, let policyID = req["policy"]?.stringValue else {
                return ["op": "error", "code": "invalid_request", "message": "uscc and policy are required"]
            }
            guard let policy = engine.cache.policy(policyID) else {
                return ["op": "error", "code": "not_found", "message": .string("no live policy \(policyID)")]
            }
            return try database.writer.read { db -> JSON in
                guard let profile = try MatcherEngine.profile(uscc: uscc, db) else {
                    return ["op": "error", "code": "not_found", "message": .string("the matcher has no profile for \(uscc)")]
                }
                let application = try engine.applications(uscc: uscc, db)[policyID]
                let determinations = policy.evaluate(PolicyInput(merchant: profile, application: application))
                let closed = application == nil && engine.applicationsClosed(policy.document)
                let note = application == nil ? engine.applicationNote(policy.document) : nil
                var items: [JSON] = []
                for d in determinations {
                    let id = MatcherEngine.entitlementID(policy: policy.document, uscc: uscc, bindingKey: d.bindingKey)
                    let e = try EntitlementRecord.find(id, db)
                    var o = JSONObject()
                    o["entitlement_id"] = .string(id)
                    o["binding"] = .string(d.bindingKey)
                    o["outcome"] = Self.outcome(d.outcome)
                    o["priority"] = .bool(d.priority)
                    var trace = d.trace.json
                    if let note, case .object(var t) = trace {
                        t["application"] = note
                        trace = .object(t)
                    }
                    o["trace"] = trace
                    // What this merchant actually gets (not what the conditions alone say): a
                    // merchant who qualifies but never applied gets nothing, and the hotline must
                    // not read "符合" as a promise of money.
                    let conclusion = Self.conclusion(
                        d, policy: policy.document, applied: application != nil, closed: closed, record: e)
                    o["conclusion"] = conclusion.json
                    var text = d.trace.text()
                    if let line = note?["text"]?.stringValue { text += "\napplication: " + line }
                    if conclusion.overrides {
                        // The trace's own 结论 line is the evaluation of the conditions only.
                        text = text.replacingOccurrences(of: "结论 outcome: 符合 eligible", with: "条件评估 evaluation: 符合 eligible")
                        text = text.replacingOccurrences(of: "结论 outcome: 待补报 incomplete", with: "条件评估 evaluation: 待补报 incomplete")
                    }
                    text += "\n结论 conclusion: \(conclusion.zh)（\(conclusion.en)）"
                    o["text"] = .string(text)
                    o["state"] = e.map { .string($0.state.rawValue) } ?? .null
                    // Past the window with no application, what the evaluation alone would say is moot.
                    let moot: Bool
                    switch d.outcome {
                    case .eligible, .incomplete: moot = closed
                    case .ineligible, .error: moot = false
                    }
                    o["reason"] =
                        e?.reason.map { .string($0) } ?? (moot ? .string(MatcherEngine.noApplicationReason(policy.document)) : .null)
                    o["review_flag"] = e?.reviewFlag ?? .null
                    items.append(.object(o))
                }
                return [
                    "op": "explanation", "uscc": .string(uscc), "policy": .string(policyID),
                    "revision": .int(Int64(policy.document.revision)),
                    "title": .string(policy.document.title), "profile_version": profile["version"] ?? .null,
                    "applied": .bool(application != nil), "requires_application": .bool(policy.document.requiresApplication),
                    "apply_until": policy.document.applyUntil.map { .string($0.description) } ?? .null,
                    "applications_closed": .bool(closed),
                    "application": application ?? .null,
                    "determinations": .array(items),
                ]
            }
        case "entitlement.show":
            guard let id = req["id"]?.stringValue else { return ["op": "error", "code": "invalid_request", "message": "id is required"] }
            let found = try database.writer.read { db -> (EntitlementRecord, [Row], [Row])? in
                guard let e = try EntitlementRecord.find(id, db) else { return nil }
                let history = try Row.fetchAll(
                    db, sql: "SELECT at, step, state, detail FROM entitlement_history WHERE entitlement_id = ? ORDER BY seq",
                    arguments: [id])
                // The approvals of the entitlement's latest review round (a re-proposal starts a new one).
                let approvals = try Row.fetchAll(
                    db,
                    sql: """
                        SELECT reviewer, by, approved_at, round FROM review_approvals
                        WHERE entitlement_id = ? AND round = (SELECT MAX(round) FROM review_approvals WHERE entitlement_id = ?)
                        ORDER BY approved_at, reviewer
                        """, arguments: [id, id])
                return (e, approvals, history)
            }
            guard let (e, approvals, history) = found else {
                return ["op": "error", "code": "not_found", "message": .string("no entitlement \(id)")]
            }
            var o = Self.json(e).objectValue ?? JSONObject()
            let reviewers = engine.cache.policy(e.policyID)?.document.reviewers ?? []
            if !reviewers.isEmpty || !approvals.isEmpty {
                let done = Set(approvals.map { $0["reviewer"] as String })
                let stillOpen = e.state.beforeApproval && e.state != .revoked
                o["review"] = [
                    "reviewers": .array(reviewers.map { .string($0) }),
                    "approvals": .array(
                        approvals.map { r in
                            [
                                "reviewer": .string(r["reviewer"]), "by": .string(r["by"]), "approved_at": .string(r["approved_at"]),
                                "round": .int(r["round"]),
                            ]
                        }),
                    "awaiting": .array(stillOpen ? reviewers.filter { !done.contains($0) }.map { .string($0) } : []),
                ]
            }
            // Every step the matcher took, oldest first (entitlements from before
            // matcher-v5-entitlement-history start at the first step after it).
            o["history"] = .array(
                history.map { r in
                    [
                        "at": .string(r["at"]), "step": .string(r["step"]), "state": .string(r["state"]),
                        "detail": (r["detail"] as String?).map { .string($0) } ?? .null,
                    ]
                })
            return ["op": "entitlement", "entitlement": .object(o)]
        case "entitlement.summary":
            // A policy's entitlements counted by state, and what its latest withdrawal did: the
            // entitlements it revoked, and those it left alone (money out, or with the lessor).
            guard let policyID = req["policy"]?.stringValue else {
                return ["op": "error", "code": "invalid_request", "message": "policy is required"]
            }
            return try database.writer.read { db -> JSON in
                var states = JSONObject()
                for r in try Row.fetchAll(
                    db, sql: "SELECT state, COUNT(*) AS n FROM entitlements WHERE policy_id = ? GROUP BY state ORDER BY state",
                    arguments: [policyID])
                {
                    states[r["state"]] = .int(r["n"])
                }
                let lessor =
                    try Int.fetchOne(
                        db,
                        sql:
                            "SELECT COUNT(*) FROM entitlements WHERE policy_id = ? AND state = 'held' AND reason LIKE 'held: lessor_unconfirmed%'",
                        arguments: [policyID]) ?? 0
                var withdrawal: JSON = .null
                if let w = try Row.fetchOne(
                    db,
                    sql: """
                        SELECT MAX(revision) AS revision, withdrawn_at, withdraw_reason FROM policies
                        WHERE policy_id = ? AND withdrawn_at = (SELECT MAX(withdrawn_at) FROM policies WHERE policy_id = ?)
                        """, arguments: [policyID, policyID]), let at = w["withdrawn_at"] as String?
                {
                    // A withdrawal revokes in its own transaction, stamped with its own time.
                    let revoked =
                        try Int.fetchOne(
                            db,
                            sql: """
                                SELECT COUNT(*) FROM entitlements WHERE policy_id = ? AND state = 'revoked'
                                    AND reason LIKE 'policy_withdrawn:%' AND updated_at >= ?
                                """, arguments: [policyID, at]) ?? 0
                    withdrawal = [
                        "revision": .int(w["revision"]), "withdrawn_at": .string(at),
                        "reason": (w["withdraw_reason"] as String?).map { .string($0) } ?? .null, "revoked": .int(Int64(revoked)),
                    ]
                }
                return [
                    "op": "entitlement.summary", "policy_id": .string(policyID), "live": .bool(engine.cache.policy(policyID) != nil),
                    "states": .object(states), "held_lessor_unconfirmed": .int(Int64(lessor)), "withdrawal": withdrawal,
                ]
            }
        case "entitlement.list":
            var sql = "SELECT \(EntitlementRecord.columns) FROM entitlements WHERE 1 = 1"
            var args: [any DatabaseValueConvertible] = []
            if let p = req["policy"]?.stringValue {
                sql += " AND policy_id = ?"
                args.append(p)
            }
            if let s = req["state"]?.stringValue {
                sql += " AND state = ?"
                args.append(s)
            }
            if let u = req["uscc"]?.stringValue {
                sql += " AND uscc = ?"
                args.append(u)
            }
            // A page at a time: the next page starts after the last id of this one.
            if let a = req["after"]?.stringValue {
                sql += " AND id > ?"
                args.append(a)
            }
            sql += " ORDER BY id LIMIT ?"
            args.append(Int(min(max(req["max"]?.intValue ?? 100, 1), 1_000)))
            let list = try database.writer.read { db in
                try Row.fetchAll(db, sql: sql, arguments: StatementArguments(args)).map(EntitlementRecord.init)
            }
            return ["op": "entitlements", "items": .array(list.map { Self.json($0) })]
        default:
            return nil
        }
    }

    /// What a determination comes to for the merchant, in Chinese for the hotline and in English:
    /// `code` is stable (`eligible`, `awaiting_application`, `not_applied`, `incomplete`,
    /// `ineligible`, `revoked`, `evaluation_error`); `overrides` is true when it differs from
    /// what the conditions alone say (eligible or incomplete, but nothing will be paid).
    struct Conclusion {
        var code: String
        var zh: String
        var en: String
        var reasons: [String]
        var payable: Bool
        var overrides: Bool

        var json: JSON {
            [
                "code": .string(code), "text": .string(zh), "text_en": .string(en), "payable": .bool(payable),
                "reasons": .array(reasons.map { .string($0) }),
            ]
        }
    }

    static func conclusion(
        _ d: Determination, policy: PolicyDocument, applied: Bool, closed: Bool, record: EntitlementRecord?
    ) -> Conclusion {
        let needsApplication = policy.requiresApplication && !applied
        let until = policy.applyUntil?.description ?? "the deadline"
        let untilZh = policy.applyUntil.map { "\($0.description) 24时" } ?? "申报截止日期"
        switch d.outcome {
        case .eligible(let amount) where needsApplication && closed:
            let reason = "未在申报截止日期（\(untilZh)）前提出申请，超过时限不再受理"
            return Conclusion(
                code: "not_applied", zh: "符合条件但未在申报期内（截至 \(untilZh)）提出申请，不予拨付",
                en: "eligible, but no application by \(until): nothing is paid (had it been applied for: ¥\(Trace.yuanText(amount)))",
                reasons: [reason], payable: false, overrides: true)
        case .eligible(let amount) where needsApplication:
            return Conclusion(
                code: "awaiting_application", zh: "符合条件，但尚未提出申请；须在 \(untilZh) 前申请，未申请不予拨付",
                en:
                    "eligible, but not applied for: nothing is paid unless the merchant applies by \(until) (¥\(Trace.yuanText(amount)) if so)",
                reasons: ["尚未提出申请（申报截止 \(untilZh)）"], payable: false, overrides: true)
        case .incomplete where needsApplication && closed:
            let reason = "未在申报截止日期（\(untilZh)）前提出申请，超过时限不再受理"
            return Conclusion(
                code: "not_applied", zh: "未在申报期内（截至 \(untilZh)）提出申请，不予拨付",
                en: "no application by \(until): nothing is paid", reasons: [reason], payable: false, overrides: true)
        case .incomplete(let missing):
            return Conclusion(
                code: "incomplete", zh: "信息不完整，待补报（缺少：\(missing.joined(separator: "、"))），补齐并核定前不予拨付",
                en: "incomplete: missing \(missing.joined(separator: ", ")); nothing is paid until they are supplied",
                reasons: [], payable: false, overrides: needsApplication)
        case .ineligible:
            let reasons = ClauseWording.reasons(d.trace)
            return Conclusion(
                code: "ineligible", zh: "不符合条件，不予拨付：" + (reasons.isEmpty ? ClauseWording.fallback : reasons.joined(separator: "；")),
                en: "not eligible: nothing is paid", reasons: reasons, payable: false, overrides: false)
        case .error(let message):
            return Conclusion(
                code: "evaluation_error", zh: "核定出错，待人工核实", en: "evaluation error: \(message)", reasons: [], payable: false,
                overrides: false)
        case .eligible(let amount):
            if let record, record.state == .revoked {
                return Conclusion(
                    code: "revoked", zh: "符合条件，但该享受事项已撤销，不予拨付",
                    en: "eligible, but the entitlement is revoked (\(record.reason ?? "")): nothing is paid", reasons: [],
                    payable: false, overrides: true)
            }
            return Conclusion(
                code: "eligible", zh: "符合条件，金额 \(Trace.yuanText(amount)) 元", en: "eligible: ¥\(Trace.yuanText(amount))", reasons: [],
                payable: true, overrides: false)
        }
    }

    static func outcome(_ o: Determination.Outcome) -> JSON {
        switch o {
        case .eligible(let amount): ["result": "eligible", "amount_fen": .int(amount)]
        case .ineligible: ["result": "ineligible"]
        case .incomplete(let missing): ["result": "incomplete", "missing": .array(missing.map { .string($0) })]
        case .error(let m): ["result": "error", "message": .string(m)]
        }
    }

    static func json(_ e: EntitlementRecord) -> JSON {
        var o = JSONObject()
        o["id"] = .string(e.id)
        o["policy_id"] = .string(e.policyID)
        o["policy_revision"] = .int(Int64(e.policyRevision))
        o["uscc"] = .string(e.uscc)
        o["binding"] = .string(e.bindingKey)
        o["state"] = .string(e.state.rawValue)
        o["amount_fen"] = .int(e.amountFen)
        o["approved_amount_fen"] = e.approvedAmountFen.map { .int($0) } ?? .null
        o["priority"] = .bool(e.priority)
        o["missing"] = .array(e.missing.map { .string($0) })
        o["reason"] = e.reason.map { .string($0) } ?? .null
        o["review_flag"] = e.reviewFlag ?? .null
        o["trace"] = e.trace
        return .object(o)
    }
}
