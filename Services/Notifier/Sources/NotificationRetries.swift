import Bus
import Foundation
import GRDB
import Logging
import Models
import Storage

// MARK: - Delivery passes

/// One notification read for a delivery pass, with what its earlier passes left.
struct DueNotification {
    var rowid: Int64
    var notification: Notification
    /// `pending` (never tried, or re-queued by an operator) or `failed` (its next pass is due).
    var state: String
    /// The channels that already took it: never sent to again.
    var delivered: Set<String>
    var attempts: [JSON]
    var attemptCount: Int
    var passes: Int
    var failedAt: String?
    var lastError: String?
    var requeues: Int

    static let columns =
        "rowid, key, uscc, kind, text, data, state, attempts, attempt_count, passes, failed_at, delivered_channels, last_error, requeues"

    init(_ row: Row) {
        let data: Data = row["data"]
        rowid = row["rowid"]
        notification = Notification(
            key: row["key"], uscc: row["uscc"], kind: NotificationKind(rawValue: row["kind"]) ?? .incomplete, text: row["text"],
            data: (try? JSONParser.parse([UInt8](data))) ?? .null)
        state = row["state"]
        delivered = Set(ChannelList.parse(row["delivered_channels"]))
        attempts = (row["attempts"] as Data?).flatMap { try? JSONParser.parse([UInt8]($0)).arrayValue } ?? []
        attemptCount = row["attempt_count"]
        passes = row["passes"]
        failedAt = row["failed_at"]
        lastError = row["last_error"]
        requeues = row["requeues"]
    }
}

/// A list of channel names in one column: `jsonl,webhook`.
enum ChannelList {
    static func parse(_ text: String?) -> [String] {
        (text ?? "").split(separator: ",").map(String.init).filter { !$0.isEmpty }
    }

    static func format(_ names: some Sequence<String>) -> String? {
        let sorted = Set(names).sorted()
        return sorted.isEmpty ? nil : sorted.joined(separator: ",")
    }

    /// What a pass's attempts (`[{channel, ok, error, …}]`) say: the channels that took the
    /// notification, those that did not, and the last error (`channel: error`).
    static func summary(of attempts: [JSON]) -> (delivered: Set<String>, failed: Set<String>, lastError: String?) {
        var delivered = Set<String>()
        var tried = Set<String>()
        var lastError: String?
        for a in attempts {
            guard let channel = a["channel"]?.stringValue else { continue }
            tried.insert(channel)
            if a["ok"]?.boolValue == true {
                delivered.insert(channel)
            } else if let e = a["error"]?.stringValue {
                lastError = "\(channel): \(e)"
            }
        }
        return (delivered, tried.subtracting(delivered), lastError)
    }
}

extension NotifierWorker {
    /// How many of a notification's most recent attempts it keeps (`attempt_count` counts all).
    static let attemptsKept = 100

    /// One delivery pass over a batch: pending notifications (oldest first), then failed ones
    /// whose next attempt is due. Each goes to every channel that has not taken it yet; every
    /// attempt is recorded. A notification every channel took is `sent` (`notification.sent`);
    /// one that a channel did not take is `failed`, with its next pass scheduled by
    /// `settings.retry` (none after a permanent refusal or past the horizon). The first failed
    /// pass after it was queued publishes `notification.failed`, once; a later pass that
    /// delivers it publishes `notification.sent`.
    ///
    /// In a pass, a channel that failed before is asked with one due notification first: while
    /// it still fails (not permanently), the others due on it wait for their next pass without
    /// an attempt, so that a gateway that is down costs one attempt per pass, not one per
    /// notification. `down` carries the channels found down from one batch to the next of the
    /// same tick (they are not asked again for due notifications). Returns the number of
    /// notifications in the batch.
    @discardableResult
    func deliver(down: inout Set<String>) throws -> Int {
        let nowText = Timestamp.format(engine.clock.now())
        let due = try database.writer.read { db -> [DueNotification] in
            var rows = try Row.fetchAll(
                db,
                sql: "SELECT \(DueNotification.columns) FROM notifications WHERE state = 'pending' ORDER BY created_at LIMIT ?",
                arguments: [Self.deliveryBatch])
            if rows.count < Self.deliveryBatch {
                rows += try Row.fetchAll(
                    db,
                    sql: """
                        SELECT \(DueNotification.columns) FROM notifications
                        WHERE next_attempt_at <= ? AND state = 'failed' ORDER BY next_attempt_at LIMIT ?
                        """,
                    arguments: [nowText, Self.deliveryBatch - rows.count])
            }
            return rows.map(DueNotification.init)
        }
        if due.isEmpty { return 0 }

        // What each channel did with each notification; none: not asked in this pass.
        var outcomes = Array(repeating: [String: DeliveryResult](), count: due.count)
        for channel in channels {
            var asked = due.indices.filter { !due[$0].delivered.contains(channel.name) }
            let retried = asked.filter { due[$0].state == "failed" }
            if down.contains(channel.name) {
                asked.removeAll { due[$0].state == "failed" }
            } else if retried.count > 1 {
                let probe = retried[0]
                let r = channel.deliver(batch: [due[probe].notification])[0]
                outcomes[probe][channel.name] = r
                asked.removeAll { $0 == probe }
                if !r.delivered && !r.permanent {
                    down.insert(channel.name)
                    asked.removeAll { due[$0].state == "failed" }
                }
            }
            if asked.isEmpty { continue }
            for (i, r) in zip(asked, channel.deliver(batch: asked.map { due[$0].notification })) { outcomes[i][channel.name] = r }
        }

        var report = PassReport()
        try database.writer.write { db in
            let now = engine.clock.now()
            let at = Timestamp.format(now)
            for (i, d) in due.enumerated() {
                try record(d, outcomes[i], now: now, at: at, report: &report, db)
            }
        }
        handle.node?.notifyOutbox()
        report.log(logger)
        return due.count
    }

    /// What one pass did, for one log line.
    struct PassReport {
        var sent = 0
        var sentAfterFailing = 0
        var failed = 0
        var waited = 0
        var gaveUp = 0
        var permanent = 0
        var channels = Set<String>()
        var error: String?
        var next: String?

        func log(_ logger: Logger) {
            if sentAfterFailing > 0 {
                logger.notice("failed notifications delivered on a later attempt", metadata: ["count": "\(sentAfterFailing)"])
            }
            guard failed > 0 else { return }
            var metadata: Logger.Metadata = [
                "failed": "\(failed)", "waiting_for_channel": "\(waited)", "given_up": "\(gaveUp)", "permanent": "\(permanent)",
                "channels": "\(channels.sorted().joined(separator: ","))",
            ]
            if let error { metadata["error"] = "\(Mask.numbersInText(error))" }
            if let next { metadata["next_attempt_at"] = "\(next)" }
            logger.warning("notifications not delivered; retried later unless given up", metadata: metadata)
            if gaveUp > 0 {
                logger.error(
                    "notifications given up after the retry horizon; bangfu notifications retry re-sends them",
                    metadata: ["count": "\(gaveUp)"])
            }
        }
    }

    /// Records one notification's pass and publishes what it became.
    private func record(
        _ d: DueNotification, _ outcome: [String: DeliveryResult], now: Date, at: String, report: inout PassReport, _ db: Database
    ) throws {
        let n = d.notification
        var delivered = d.delivered
        var newAttempts: [JSON] = []
        var failed: [String] = []
        var permanent = false
        var lastError = d.lastError
        var attempted = false
        for channel in channels where !d.delivered.contains(channel.name) {
            guard let r = outcome[channel.name] else {
                failed.append(channel.name)  // down in this pass: waits for the next
                continue
            }
            attempted = true
            for a in r.attempts {
                newAttempts.append([
                    "channel": .string(channel.name), "at": .string(Timestamp.format(a.at)), "ok": .bool(a.ok),
                    "status": a.status.map { .int(Int64($0)) } ?? .null, "error": a.error.map { .string($0) } ?? .null,
                ])
            }
            if r.delivered {
                delivered.insert(channel.name)
            } else {
                failed.append(channel.name)
                permanent = permanent || r.permanent
                lastError = "\(channel.name): \(r.lastError ?? "not delivered")"
            }
        }
        let attempts = Data(JSON.array(Array((d.attempts + newAttempts).suffix(Self.attemptsKept))).serializedBytes())
        let count = d.attemptCount + newAttempts.count
        let digest = SHA256.hex(n.key).prefix(32)
        var data: JSONObject = [
            "key": .string(n.key), "uscc": .string(n.uscc), "kind": .string(n.kind.rawValue), "attempts": .int(Int64(count)),
        ]
        if failed.isEmpty {
            try db.cachedStatement(
                sql: """
                    UPDATE notifications SET state = 'sent', attempts = ?, attempt_count = ?, delivered_channels = ?,
                        failed_channels = NULL, next_attempt_at = NULL, updated_at = ? WHERE rowid = ?
                    """
            ).execute(arguments: [attempts, count, ChannelList.format(delivered), at, d.rowid])
            try engine.outbox.append(db, type: "notification.sent", subject: n.uscc, id: "notification.sent/\(digest)", data: .object(data))
            report.sent += 1
            if d.state == "failed" { report.sentAfterFailing += 1 }
            return
        }
        // The first failed pass after the notification was queued (or re-queued) starts its
        // failure: the horizon counts from here, and `notification.failed` goes out once.
        let first = d.state != "failed"
        let passes = first ? 1 : d.passes + 1
        let failedAt = first ? now : (d.failedAt.flatMap(Timestamp.parse) ?? now)
        let next = permanent ? nil : settings.retry.next(afterPass: passes, key: n.key, failedAt: failedAt, now: now)
        let nextText = next.map(Timestamp.format)
        try db.cachedStatement(
            sql: """
                UPDATE notifications SET state = 'failed', attempts = ?, attempt_count = ?, delivered_channels = ?, failed_channels = ?,
                    last_error = ?, passes = ?, failed_at = ?, next_attempt_at = ?, updated_at = ? WHERE rowid = ?
                """
        ).execute(arguments: [
            attempts, count, ChannelList.format(delivered), ChannelList.format(failed), lastError, passes, Timestamp.format(failedAt),
            nextText, at, d.rowid,
        ])
        report.failed += 1
        report.channels.formUnion(failed)
        if !attempted { report.waited += 1 }
        if permanent { report.permanent += 1 }
        if next == nil && !permanent && settings.retry.horizonSeconds > 0 { report.gaveUp += 1 }
        if let lastError, attempted { report.error = lastError }
        if let nextText { report.next = min(report.next ?? nextText, nextText) }
        if first {
            data["error"] = lastError.map { .string(Mask.numbersInText($0)) } ?? .null
            data["channels"] = .array(failed.map { .string($0) })
            data["next_attempt_at"] = nextText.map { .string($0) } ?? .null
            // After an operator's re-send, a new failure is a new event.
            let id = "notification.failed/\(digest)" + (d.requeues > 0 ? "/\(d.requeues)" : "")
            try engine.outbox.append(db, type: "notification.failed", subject: n.uscc, id: id, data: .object(data))
        }
    }
}

// MARK: - Re-sending and listing failed notifications

/// Which failed notifications an operator means (`notifications.retry`, `notification.list`).
struct NotificationFilter: Sendable, Equatable {
    var key: String?
    var kind: String?
    var uscc: String?
    var entitlement: String?
    /// Failed on this channel (in its last pass).
    var channel: String?
    /// Failed at or after this instant (the service's clock, formatted as stored).
    var since: String?

    static let members = ["kind", "channel", "entitlement_id", "uscc", "since", "key"]

    /// The filter's members of an event's `data` or a query; a member that is not a non-empty
    /// string, an unknown kind or channel, a `since` that is not an instant or a date, or a
    /// member that is neither a filter's nor one of `others` (a misspelt filter would widen a
    /// re-send to every failed notification), is a rejection naming it (`prefix` + member).
    static func parse(
        _ d: JSONObject, channels: [String], prefix: String, others: Set<String> = []
    ) throws(Rejection) -> NotificationFilter {
        for (k, _) in d.members where !members.contains(k) && !others.contains(k) {
            throw Rejection(
                .invalidData, field: prefix + k, "\(k) is not a filter (\(members.joined(separator: ", ")))")
        }
        func string(_ k: String) throws(Rejection) -> String? {
            guard let v = d[k], !v.isNull else { return nil }
            guard let s = v.stringValue, !s.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw Rejection(.invalidData, field: prefix + k, "\(k) must be a non-empty string")
            }
            return s
        }
        var f = NotificationFilter()
        f.key = try string("key")
        f.uscc = try string("uscc")
        f.entitlement = try string("entitlement_id")
        if let kind = try string("kind") {
            guard NotificationKind(rawValue: kind) != nil else {
                let known = NotificationKind.allCases.map(\.rawValue).joined(separator: ", ")
                throw Rejection(.invalidData, field: prefix + "kind", "kind must be one of \(known), got \(kind)")
            }
            f.kind = kind
        }
        if let channel = try string("channel") {
            guard channels.contains(channel) else {
                throw Rejection(
                    .invalidData, field: prefix + "channel",
                    "channel must be one of the notifier's channels (\(channels.joined(separator: ", "))), got \(channel)")
            }
            f.channel = channel
        }
        if let since = try string("since") {
            if let instant = Timestamp.parseInstant(since) {
                f.since = Timestamp.format(instant)
            } else if let day = CivilDate.parse(since) {
                f.since = day.description + "T00:00:00.000+08:00"
            } else {
                throw Rejection(
                    .invalidDate, field: prefix + "since", "since must be an RFC 3339 instant or a date (YYYY-MM-DD), got \(since)")
            }
        }
        return f
    }

    /// The SQL condition (after `state = 'failed'`) and its arguments.
    var condition: (sql: String, arguments: StatementArguments) {
        var sql = ""
        var arguments: [(any DatabaseValueConvertible)?] = []
        if let key {
            sql += " AND key = ?"
            arguments.append(key)
        }
        if let kind {
            sql += " AND kind = ?"
            arguments.append(kind)
        }
        if let uscc {
            sql += " AND uscc = ?"
            arguments.append(uscc)
        }
        if let entitlement {
            sql += " AND json_extract(CAST(data AS TEXT), '$.entitlement') = ?"
            arguments.append(entitlement)
        }
        if let channel {
            sql += " AND (',' || failed_channels || ',') LIKE ?"
            arguments.append("%,\(channel),%")
        }
        if let since {
            sql += " AND failed_at >= ?"
            arguments.append(since)
        }
        return (sql, StatementArguments(arguments))
    }
}

extension NotifierEngine {
    /// `notifications.retry`: every failed notification the filter matches is pending again,
    /// now, with a fresh failure count and horizon (its channels that took it are not asked
    /// again; a notification that was delivered is never re-sent). Returns how many.
    func requeue(_ filter: NotificationFilter, _ db: Database) throws -> Int {
        let (condition, arguments) = filter.condition
        try db.execute(
            sql: """
                UPDATE notifications SET state = 'pending', next_attempt_at = NULL, passes = 0, failed_at = NULL,
                    requeues = requeues + 1, updated_at = ? WHERE state = 'failed'
                """ + condition,
            arguments: [now] + arguments)
        let count = db.changesCount
        logger.notice("failed notifications re-queued by an operator", metadata: ["count": "\(count)"])
        return count
    }
}

/// `notification.list`: failed notifications (by default) with why and what happens next.
enum NotificationListing {
    static let maxPage = 1_000

    static func respond(_ req: JSON, channels: [String], _ db: Database) throws -> JSON {
        guard case .object(let o) = req else { return ["op": "error", "code": "invalid_request", "message": "not an object"] }
        let filter: NotificationFilter
        do {
            filter = try NotificationFilter.parse(o, channels: channels, prefix: "", others: ["op", "max", "after"])
        } catch {
            return ["op": "error", "code": "invalid_request", "message": .string(error.message)]
        }
        let limit = Int(clamping: o["max"]?.intValue ?? 100)
        guard (1...maxPage).contains(limit) else {
            return ["op": "error", "code": "invalid_request", "message": .string("max must be from 1 to \(maxPage)")]
        }
        let after = o["after"]?.intValue ?? 0
        let (condition, arguments) = filter.condition
        let total =
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM notifications WHERE state = 'failed'" + condition, arguments: arguments) ?? 0
        let rows = try Row.fetchAll(
            db,
            sql: """
                SELECT rowid, key, uscc, kind, data, attempts, attempt_count, passes, failed_at, next_attempt_at, failed_channels,
                    last_error, created_at, updated_at
                FROM notifications WHERE state = 'failed'
                """ + condition + " AND rowid > ? ORDER BY rowid LIMIT ?",
            arguments: arguments + [after, limit])
        let items: [JSON] = rows.map { r in
            let data = (r["data"] as Data?).flatMap { try? JSONParser.parse([UInt8]($0)) }
            // Failed before the retries were recorded (notifier-v5-retries): from its attempts.
            let attempts = (r["attempts"] as Data?).flatMap { try? JSONParser.parse([UInt8]($0)).arrayValue } ?? []
            let legacy = ChannelList.summary(of: attempts)
            let failed = (r["failed_channels"] as String?).map(ChannelList.parse) ?? legacy.failed.sorted()
            let error = (r["last_error"] as String?) ?? legacy.lastError
            let count = max(r["attempt_count"] as Int64, Int64(attempts.count))
            return [
                "key": .string(r["key"]), "uscc": .string(r["uscc"]), "kind": .string(r["kind"]),
                "entitlement_id": data?["entitlement"]?.stringValue.map { .string($0) } ?? .null,
                "created_at": .string(r["created_at"]), "failed_at": (r["failed_at"] as String?).map { .string($0) } ?? .null,
                "updated_at": .string(r["updated_at"]), "attempts": .int(count), "passes": .int(r["passes"]),
                "channels": .array(failed.map { .string($0) }),
                "error": error.map { .string(Mask.numbersInText($0)) } ?? .null,
                "next_attempt_at": (r["next_attempt_at"] as String?).map { .string($0) } ?? .null,
            ]
        }
        var out: JSONObject = ["op": "notification.list", "items": .array(items), "total": .int(Int64(total))]
        if rows.count == limit, let last = rows.last?["rowid"] as Int64? { out["next"] = .int(last) }
        return .object(out)
    }
}
