import Foundation
import GRDB
import Logging
import Models
import Policy
import Storage

/// A validated matcher command.
public enum MatcherCommand: Sendable {
    case publish(CompiledPolicy, yaml: String)
    case withdraw(policyID: String, reason: String)
    /// `submittedAt` nil: not given, the matcher's clock at receipt is the time of submission.
    case apply(uscc: String, policyID: String, submittedAt: String?, submitted: Date?, documents: [String])
    case review(ids: [String], approved: Bool, by: String, reason: String?)
}

/// The matcher's intake (DESIGN §4): policies, applications, reviews.
public struct MatcherApplier: IntakeApplier {
    public typealias Command = MatcherCommand
    public let acceptedTypes: Set<String> = [
        "policy.published", "policy.withdrawn", "application.submitted", "review.approved", "review.rejected",
    ]
    public let refusesWhileApplying = true
    let engine: MatcherEngine

    public func validate(_ event: CloudEvent) throws(Rejection) -> MatcherCommand {
        guard case .object(let data)? = event.data else {
            throw Rejection(.invalidData, field: "data", "data must be an object")
        }
        func string(_ key: String) throws(Rejection) -> String {
            guard let v = data[key] else { throw Rejection(.invalidData, field: "data.\(key)", "\(key) is required") }
            guard let s = v.stringValue, !s.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw Rejection(.invalidData, field: "data.\(key)", "\(key) must be a non-empty string")
            }
            return s
        }
        switch event.type {
        case "policy.published":
            // `data.yaml` carries the document as written; a JSON object is accepted too (JSON is YAML).
            let yaml: String
            if let y = data["yaml"] {
                guard let s = y.stringValue else { throw Rejection(.invalidData, field: "data.yaml", "yaml must be a string") }
                yaml = s
            } else {
                yaml = JSON.object(data).serialized()
            }
            do {
                return .publish(try PolicyCompiler.compile(yaml: yaml), yaml: yaml)
            } catch {
                let first = error.errors.first
                throw Rejection(
                    .invalidData, field: "data.yaml",
                    error.errors.map(\.description).joined(separator: "; ") + (first == nil ? "invalid policy" : ""))
            }
        case "policy.withdrawn":
            return .withdraw(policyID: try string("policy_id"), reason: (data["reason"]?.stringValue) ?? "withdrawn")
        case "application.submitted":
            let uscc = try string("uscc")
            try USCC.validate(uscc, field: "data.uscc")
            if let subject = event.subject, subject != uscc {
                throw Rejection(.invalidEnvelope, field: "subject", "subject must be the applicant's USCC (\(uscc))")
            }
            // Optional: without it the application was submitted when the matcher receives it (an
            // operator's `bangfu apply`, whose retry must then say exactly the same).
            var at: String?
            var date: Date?
            if let given = data["submitted_at"], !given.isNull {
                guard let text = given.stringValue, let parsed = Timestamp.parse(text) else {
                    throw Rejection(
                        .invalidDate, field: "data.submitted_at",
                        "submitted_at must be an RFC 3339 instant, got \(given.stringValue?.prefix(40) ?? Substring(given.kindName))")
                }
                at = text
                date = parsed
            }
            var documents: [String] = []
            if let d = data["documents"], !d.isNull {
                guard let list = d.arrayValue else { throw Rejection(.invalidData, field: "data.documents", "documents must be a list") }
                for (k, item) in list.enumerated() {
                    guard let s = item.stringValue, !s.isEmpty else {
                        throw Rejection(.invalidData, field: "data.documents[\(k)]", "each document is a non-empty string reference")
                    }
                    documents.append(s)
                }
            }
            return .apply(uscc: uscc, policyID: try string("policy_id"), submittedAt: at, submitted: date, documents: documents)
        case "review.approved", "review.rejected":
            var ids: [String] = []
            if let one = data["entitlement_id"]?.stringValue { ids.append(one) }
            if let many = data["entitlement_ids"] {
                guard let list = many.arrayValue, list.allSatisfy({ $0.stringValue != nil }) else {
                    throw Rejection(.invalidData, field: "data.entitlement_ids", "entitlement_ids must be a list of ids")
                }
                ids += list.compactMap(\.stringValue)
            }
            guard !ids.isEmpty else {
                throw Rejection(.invalidData, field: "data.entitlement_id", "entitlement_id (or entitlement_ids) is required")
            }
            return .review(ids: ids, approved: event.type == "review.approved", by: try string("by"), reason: data["reason"]?.stringValue)
        default:
            throw Rejection(.unknownType, field: "type", "this service takes no events of type \(event.type)")
        }
    }

    public func apply(_ command: MatcherCommand, event: CloudEvent, db: Database) throws {
        let now = Timestamp.format(engine.clock.now())
        switch command {
        case .publish(let policy, let yaml):
            let doc = policy.document
            if let old = try String.fetchOne(
                db, sql: "SELECT source_hash FROM policies WHERE policy_id = ? AND revision = ?", arguments: [doc.id, doc.revision])
            {
                if old == policy.sourceHash { return }  // the same revision again: nothing to do
                throw Rejection(
                    .conflict, field: "data.yaml",
                    "revision \(doc.revision) of \(doc.id) was already published with other content; publish a new revision")
            }
            let latest = try Int.fetchOne(db, sql: "SELECT MAX(revision) FROM policies WHERE policy_id = ?", arguments: [doc.id])
            if let latest, latest > doc.revision {
                throw Rejection(
                    .invalidData, field: "data.yaml", "revision \(doc.revision) of \(doc.id) is older than the published revision \(latest)"
                )
            }
            try db.execute(
                sql: "INSERT INTO policies(policy_id, revision, yaml, source_hash, published_at) VALUES (?, ?, ?, ?, ?)",
                arguments: [doc.id, doc.revision, yaml, policy.sourceHash, now])
            let cache = engine.cache
            cache.set(policy)
            db.afterNextTransaction(onCommit: { _ in }, onRollback: { db in try? cache.reload(db) })
            let screened = try engine.screenAll(policy, db: db)
            engine.logger.info(
                "policy published and screened",
                metadata: ["policy": "\(doc.id)", "revision": "\(doc.revision)", "merchants": "\(screened)"])
        case .withdraw(let policyID, let reason):
            let n =
                try Int.fetchOne(
                    db, sql: "SELECT COUNT(*) FROM policies WHERE policy_id = ? AND withdrawn_at IS NULL", arguments: [policyID]) ?? 0
            guard n > 0 else { throw Rejection(.invalidData, field: "data.policy_id", "no live policy \(policyID)") }
            let policy = engine.cache.policy(policyID)?.document
            try db.execute(
                sql: "UPDATE policies SET withdrawn_at = ?, withdraw_reason = ? WHERE policy_id = ? AND withdrawn_at IS NULL",
                arguments: [now, reason, policyID])
            let cache = engine.cache
            cache.remove(policyID)
            db.afterNextTransaction(onCommit: { _ in }, onRollback: { db in try? cache.reload(db) })
            // Entitlements whose money is not out are revoked — held (pool short, account
            // changed, …) and failed (returned by the bank, awaiting a retry) included, or a
            // later pool.funded or payee.verified would pay them under a withdrawn policy. Money
            // instructed or paid is left to payments and to an operator (a withdrawal is not a
            // finding of fraud) — and so is a rent waiver held after its instruction reached the
            // lessor (`lessor_unconfirmed`): the lessor may still carry it out and confirm.
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT \(EntitlementRecord.columns) FROM entitlements WHERE policy_id = ?
                        AND state IN ('incomplete','proposed','disclosed','cleared','approved','held','failed')
                        AND NOT (state = 'held' AND reason LIKE 'held: lessor_unconfirmed%')
                    """,
                arguments: [policyID])
            for row in rows {
                var e = try EntitlementRecord(row: row)
                e.state = .revoked
                e.reason = "policy_withdrawn: \(reason)"
                try engine.emit(&e, "entitlement.revoked", policy: policy, profile: try MatcherEngine.profile(uscc: e.uscc, db), db: db)
            }
        case .apply(let uscc, let policyID, let submittedAt, let submitted, let documents):
            guard let policy = engine.cache.policy(policyID) else {
                throw Rejection(.invalidData, field: "data.policy_id", "no live policy \(policyID)")
            }
            let doc = policy.document
            // A programme that screens every merchant on the registry's facts takes no
            // application: saying so beats keeping one that nothing reads.
            guard doc.requiresApplication else {
                throw Rejection(
                    .invalidData, field: "data.policy_id",
                    "\(doc.id) takes no applications: every merchant is screened on the registry's facts (requires_application: false)")
            }
            // Compared in whole seconds: exact, where the parsed instant (a Double) may round a
            // fraction such as 23:59:59.9999999 up to 24:00.
            let receivedAt = engine.clock.now()
            let submittedAt = submittedAt ?? Timestamp.format(receivedAt)
            let submitted = MatcherTime.wholeSeconds(submittedAt) ?? submitted ?? receivedAt
            if let until = doc.applyUntil {
                // Late by the matcher's own clock at receipt (DESIGN §5.3: 00:00:01 the next day is
                // late), whatever the applicant wrote; and late too if it says so itself.
                let closes = ChinaTime.endOfDay(until)
                let received = engine.clock.now()
                if received >= closes {
                    throw Rejection(
                        .late, field: "data.submitted_at",
                        "applications to \(doc.id) closed at 24:00 China Standard Time on \(until) (超过时限不再受理); received at \(Timestamp.format(received))"
                    )
                }
                if submitted >= closes {
                    throw Rejection(
                        .late, field: "data.submitted_at",
                        "applications to \(doc.id) closed at 24:00 China Standard Time on \(until) (超过时限不再受理)")
                }
            }
            if let from = doc.applyFrom, submitted < ChinaTime.startOfDay(from) {
                throw Rejection(.invalidDate, field: "data.submitted_at", "applications to \(doc.id) open on \(from)")
            }
            // 线上补报: while the window is open a later application (another event) by the same
            // merchant to the same policy adds its documents to the one on file, which keeps its
            // first `submitted_at`; the merchant is then evaluated again.
            var merged = documents
            if let old = try Data.fetchOne(
                db.cachedStatement(sql: "SELECT documents FROM applications WHERE policy_id = ? AND uscc = ?"),
                arguments: [policyID, uscc])
            {
                let before = (try? JSONParser.parse([UInt8](old)))?.arrayValue?.compactMap(\.stringValue) ?? []
                merged = before
                for d in documents where !merged.contains(d) { merged.append(d) }
                if merged != before {
                    try db.cachedStatement(sql: "UPDATE applications SET documents = ? WHERE policy_id = ? AND uscc = ?").execute(
                        arguments: [Data(JSON.array(merged.map { .string($0) }).serializedBytes()), policyID, uscc])
                }
            } else {
                try db.cachedStatement(
                    sql: "INSERT INTO applications(policy_id, uscc, submitted_at, documents, event_id) VALUES (?, ?, ?, ?, ?)"
                ).execute(arguments: [
                    policyID, uscc, submittedAt, Data(JSON.array(merged.map { .string($0) }).serializedBytes()), event.id,
                ])
            }
            if let profile = try MatcherEngine.profile(uscc: uscc, db) {
                if let evaluated = try engine.evaluate(uscc: uscc, profile: profile, db: db, only: [policy]) {
                    // 不符合条件告知: an applicant found not eligible is told so, and why.
                    try engine.assessApplication(uscc: uscc, policy: policy, profile: profile, evaluated: evaluated, db: db)
                }
            }
        case .review(let ids, let approved, let by, let reason):
            _ = try review(ids: ids, approved: approved, by: by, reason: reason, now: now, db: db)
        }
    }

    /// `apply`, with a note for the ack when a review decision changed nothing (the same
    /// reviewer approving again, an entitlement already approved or revoked): the operator is
    /// told so, and the event is still accepted, so a retry never fails.
    public func applyNoting(_ command: MatcherCommand, event: CloudEvent, db: Database) throws -> String? {
        guard case .review(let ids, let approved, let by, let reason) = command else {
            try apply(command, event: event, db: db)
            return nil
        }
        let notes = try review(ids: ids, approved: approved, by: by, reason: reason, now: Timestamp.format(engine.clock.now()), db: db)
        guard !notes.isEmpty else { return nil }
        // Bounded: an ack is one small frame, however many ids the decision named.
        let shown = notes.prefix(20).joined(separator: "\n")
        return notes.count > 20 ? shown + "\n… and \(notes.count - 20) more unchanged" : shown
    }

    /// `review.approved` / `review.rejected`: returns one line per entitlement the decision left
    /// as it was, saying why (`<id>: already approved by <reviewer> at <time> (<by>); …`).
    func review(ids: [String], approved: Bool, by: String, reason: String?, now: String, db: Database) throws -> [String] {
        var notes: [String] = []
        for id in ids {
            guard var e = try EntitlementRecord.find(id, db) else {
                throw Rejection(.invalidData, field: "data.entitlement_id", "no entitlement \(id)")
            }
            let policy = engine.cache.policy(e.policyID)?.document
            let profile = try MatcherEngine.profile(uscc: e.uscc, db)
            if approved {
                if e.state == .approved || !e.state.beforeApproval && e.state != .revoked {
                    notes.append(
                        "\(id): already \(e.state.rawValue)" + (e.reason.map { " (\($0))" } ?? "") + "; this approval changed nothing")
                    continue
                }
                let noDisclosure = (policy?.disclosureWorkingDays ?? 1) == 0
                guard e.state == .cleared || (noDisclosure && [.proposed, .disclosed].contains(e.state)) else {
                    throw Rejection(
                        .invalidData, field: "data.entitlement_id",
                        "entitlement \(id) is \(e.state.rawValue); only a cleared entitlement (after disclosure) can be approved")
                }
                let signed = by + (reason.map { ": \($0)" } ?? "")
                if let reviewers = policy?.reviewers, !reviewers.isEmpty {
                    // Every listed reviewer approves, each in its own review.approved.
                    let named = reviewers.filter { by.contains($0) }
                    guard named.count == 1, let reviewer = named.first else {
                        throw Rejection(
                            .invalidData, field: "data.by",
                            "\(e.policyID) is approved by each of \(reviewers.joined(separator: ", ")): by must name exactly one of them, got \(by.prefix(60))"
                        )
                    }
                    try db.execute(
                        sql:
                            "INSERT INTO review_approvals(entitlement_id, round, reviewer, by, approved_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                        arguments: [e.id, e.events, reviewer, signed, now])
                    // The same reviewer again in this round: its first approval stands.
                    let repeated = db.changesCount == 0
                    var done: [String: String] = [:]
                    var at: [String: String] = [:]
                    for row in try Row.fetchAll(
                        db, sql: "SELECT reviewer, by, approved_at FROM review_approvals WHERE entitlement_id = ? AND round = ?",
                        arguments: [e.id, e.events])
                    {
                        done[row["reviewer"]] = row["by"]
                        at[row["reviewer"]] = row["approved_at"]
                    }
                    let waiting = reviewers.filter { done[$0] == nil }
                    if repeated {
                        engine.logger.info(
                            "review approval repeated by a reviewer who had approved: nothing changed",
                            metadata: ["entitlement": "\(e.id)", "reviewer": "\(reviewer)"])
                        notes.append(
                            "\(id): already approved by \(reviewer) at \(at[reviewer] ?? "?") (\(done[reviewer] ?? "?")); this approval changed nothing"
                                + (waiting.isEmpty ? "" : "; awaiting " + waiting.joined(separator: ", ")))
                    }
                    if !waiting.isEmpty {
                        e.reason =
                            "approved by " + reviewers.compactMap { done[$0] }.joined(separator: "; ") + "; awaiting "
                            + waiting.joined(separator: ", ")
                        try e.save(db, now: now)
                        continue
                    }
                    try engine.approve(
                        &e, by: reviewers.compactMap { done[$0] }.joined(separator: "; "), policy: policy, profile: profile, db: db)
                    continue
                }
                try engine.approve(&e, by: signed, policy: policy, profile: profile, db: db)
            } else {
                if e.state == .revoked {
                    notes.append("\(id): already revoked" + (e.reason.map { " (\($0))" } ?? "") + "; this rejection changed nothing")
                    continue
                }
                guard e.state.beforeApproval || e.state == .approved else {
                    throw Rejection(
                        .invalidData, field: "data.entitlement_id",
                        "entitlement \(id) is \(e.state.rawValue) and can no longer be rejected")
                }
                e.state = .revoked
                e.reason = "review_rejected by \(by)" + (reason.map { ": \($0)" } ?? "")
                try engine.emit(&e, "entitlement.revoked", policy: policy, profile: profile, db: db)
            }
        }
        return notes
    }
}

/// Deadlines against RFC 3339 text, exactly.
enum MatcherTime {
    /// The instant with its fraction of a second dropped. Every deadline is a whole second (24:00
    /// China Standard Time), so for a deadline `d` and an instant `t` with whole part `w`,
    /// `t >= d` exactly when `w >= d`, and `t < d` exactly when `w < d` — with no rounding of the
    /// fraction (`Timestamp.parse` keeps seconds in a Double, which turns
    /// `2022-06-30T23:59:59.9999999+08:00` into 24:00).
    static func wholeSeconds(_ text: String) -> Date? {
        let b = Array(text.utf8)
        guard b.count > 20, b[19] == UInt8(ascii: ".") else { return Timestamp.parse(text) }
        var k = 20
        while k < b.count, b[k] >= 0x30, b[k] <= 0x39 { k += 1 }
        return Timestamp.parse(String(decoding: b[0..<19] + b[k...], as: UTF8.self))
    }
}
