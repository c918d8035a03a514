import Bus
import Foundation
import GRDB
import Logging
import Models
import ServiceKit
import Storage

/// The notifier's database: its copies of profiles and entitlements, disclosure rounds,
/// objections, and the notifications outbox.
public struct NotifierDatabase: Sendable {
    public let db: ServiceDatabase

    public init(stateDir: String?) throws {
        db = try ServiceDatabase(stateDir: stateDir, name: "notifier") { m in
            m.registerMigration("notifier-v1") { db in
                try db.execute(
                    sql: """
                        CREATE TABLE profiles (uscc TEXT PRIMARY KEY, version INTEGER NOT NULL, body BLOB NOT NULL) WITHOUT ROWID;
                        CREATE TABLE programmes (
                            policy_id TEXT PRIMARY KEY, title TEXT NOT NULL, authority TEXT, standard TEXT, benefit TEXT NOT NULL
                        ) WITHOUT ROWID;
                        CREATE TABLE entitlements (
                            id TEXT PRIMARY KEY,
                            policy_id TEXT NOT NULL,
                            uscc TEXT NOT NULL,
                            name TEXT,
                            kind TEXT,
                            district TEXT,
                            benefit TEXT,
                            amount_fen INTEGER NOT NULL,
                            state TEXT NOT NULL,
                            working_days INTEGER NOT NULL DEFAULT 0,
                            round_id TEXT,
                            board_status TEXT,
                            approved_at TEXT,
                            paid_fen INTEGER,
                            paid_at TEXT
                        ) WITHOUT ROWID;
                        CREATE INDEX entitlements_round ON entitlements(round_id);
                        CREATE TABLE rounds (
                            id TEXT PRIMARY KEY, policy_id TEXT NOT NULL, opened_on TEXT NOT NULL, closes_on TEXT NOT NULL,
                            closes_at TEXT NOT NULL, working_days INTEGER NOT NULL, state TEXT NOT NULL
                        ) WITHOUT ROWID;
                        CREATE TABLE objections (
                            id INTEGER PRIMARY KEY,
                            entitlement_id TEXT NOT NULL,
                            round_id TEXT NOT NULL,
                            reason TEXT NOT NULL,
                            contact TEXT,
                            filed_at TEXT NOT NULL,
                            state TEXT NOT NULL,
                            resolved_by TEXT,
                            resolved_at TEXT
                        );
                        CREATE INDEX objections_entitlement ON objections(entitlement_id);
                        CREATE TABLE notifications (
                            key TEXT PRIMARY KEY,
                            uscc TEXT NOT NULL,
                            kind TEXT NOT NULL,
                            text TEXT NOT NULL,
                            data BLOB NOT NULL,
                            state TEXT NOT NULL,
                            attempts BLOB,
                            created_at TEXT NOT NULL,
                            updated_at TEXT NOT NULL
                        ) WITHOUT ROWID;
                        CREATE INDEX notifications_state ON notifications(state);
                        """)
            }
            // The monthly evaluation counts each merchant's entitlements; pending notifications
            // are delivered oldest first.
            m.registerMigration("notifier-v2-indexes") { db in
                try db.execute(
                    sql: """
                        CREATE INDEX entitlements_uscc ON entitlements(uscc);
                        CREATE INDEX notifications_pending ON notifications(state, created_at);
                        """)
            }
            // A notification (~1.2 KB with its Chinese text) and a profile (~1.5 KB) are larger than
            // what a WITHOUT ROWID table keeps on its own page (~1 KB at 4 KiB pages): each row
            // spilled onto an overflow page that stayed two-thirds empty. Rowid tables keep them
            // whole (the notifications took 3.6 KB each on disk, the profiles 4 KB).
            m.registerMigration("notifier-v3-rowid-tables") { db in
                try db.execute(
                    sql: """
                        CREATE TABLE profiles_v3 (uscc TEXT NOT NULL UNIQUE, version INTEGER NOT NULL, body BLOB NOT NULL);
                        INSERT INTO profiles_v3(uscc, version, body) SELECT uscc, version, body FROM profiles ORDER BY uscc;
                        DROP TABLE profiles;
                        ALTER TABLE profiles_v3 RENAME TO profiles;
                        CREATE TABLE notifications_v3 (
                            key TEXT NOT NULL UNIQUE,
                            uscc TEXT NOT NULL,
                            kind TEXT NOT NULL,
                            text TEXT NOT NULL,
                            data BLOB NOT NULL,
                            state TEXT NOT NULL,
                            attempts BLOB,
                            created_at TEXT NOT NULL,
                            updated_at TEXT NOT NULL
                        );
                        INSERT INTO notifications_v3(key, uscc, kind, text, data, state, attempts, created_at, updated_at)
                            SELECT key, uscc, kind, text, data, state, attempts, created_at, updated_at FROM notifications
                            ORDER BY created_at, key;
                        DROP TABLE notifications;
                        ALTER TABLE notifications_v3 RENAME TO notifications;
                        CREATE INDEX notifications_pending ON notifications(state, created_at);
                        """)
            }
            // The name the board may show: the registry's `public_name` (an individual business's
            // trade name with its operator's name masked), when the matcher's event carries it.
            m.registerMigration("notifier-v4-public-name") { db in
                try db.execute(sql: "ALTER TABLE entitlements ADD COLUMN public_name TEXT")
            }
            // A notification that failed is tried again later (`next_attempt_at`, with a longer
            // backoff, until `failed_at` plus the retry horizon) and an operator may re-send it:
            // `passes` counts the delivery passes of its current failure, `attempt_count` every
            // attempt, `delivered_channels` the channels that already took it (never sent again),
            // `failed_channels` and `last_error` what went wrong last, `requeues` the operator's
            // re-sends (each failure after one is a new `notification.failed`). Notifications that
            // failed before this migration get a `failed_at` and no scheduled attempt: `bangfu
            // notifications retry` re-sends them.
            m.registerMigration("notifier-v5-retries") { db in
                try db.execute(
                    sql: """
                        ALTER TABLE notifications ADD COLUMN next_attempt_at TEXT;
                        ALTER TABLE notifications ADD COLUMN failed_at TEXT;
                        ALTER TABLE notifications ADD COLUMN passes INTEGER NOT NULL DEFAULT 0;
                        ALTER TABLE notifications ADD COLUMN attempt_count INTEGER NOT NULL DEFAULT 0;
                        ALTER TABLE notifications ADD COLUMN delivered_channels TEXT;
                        ALTER TABLE notifications ADD COLUMN failed_channels TEXT;
                        ALTER TABLE notifications ADD COLUMN last_error TEXT;
                        ALTER TABLE notifications ADD COLUMN requeues INTEGER NOT NULL DEFAULT 0;
                        UPDATE notifications SET failed_at = updated_at, passes = 1 WHERE state = 'failed';
                        CREATE INDEX notifications_retry ON notifications(next_attempt_at) WHERE next_attempt_at IS NOT NULL;
                        """)
                // What their one pass left in `attempts`: the channels that took them are not
                // asked again when they are re-sent.
                var after: Int64 = 0
                while true {
                    let rows = try Row.fetchAll(
                        db, sql: "SELECT rowid, attempts FROM notifications WHERE state = 'failed' AND rowid > ? ORDER BY rowid LIMIT 1000",
                        arguments: [after])
                    guard let last = rows.last else { break }
                    after = last["rowid"]
                    for row in rows {
                        let attempts = (row["attempts"] as Data?).flatMap { try? JSONParser.parse([UInt8]($0)).arrayValue } ?? []
                        let summary = ChannelList.summary(of: attempts)
                        try db.execute(
                            sql:
                                "UPDATE notifications SET attempt_count = ?, delivered_channels = ?, failed_channels = ?, last_error = ? WHERE rowid = ?",
                            arguments: [
                                attempts.count, ChannelList.format(summary.delivered), ChannelList.format(summary.failed),
                                summary.lastError,
                                row["rowid"] as Int64,
                            ])
                    }
                }
            }
            // The board said 已拨付, with a paid amount, for rent waivers, fee waivers and
            // deferrals too, though no public money moved: its paid total exceeded the ledger's.
            m.registerMigration("notifier-v6-non-cash-carried-out") { db in
                guard try db.tableExists("entitlements") else { return }
                try db.execute(
                    sql: """
                        UPDATE entitlements SET paid_fen = NULL,
                            board_status = CASE benefit WHEN 'deferral' THEN '已落实缓缴' ELSE '已落实减免' END
                        WHERE board_status = '已拨付' AND benefit IN ('rent_waiver', 'fee_waiver', 'deferral')
                        """)
            }
            // The record of each disclosure round, written once when it closes (RoundArchive):
            // each entitlement's amount and outcome at the close, and when its file was written.
            // Rounds closed before have no saved outcomes: they get no record.
            m.registerMigration("notifier-v7-round-archive") { db in
                try db.execute(
                    sql: """
                        CREATE TABLE round_outcomes (
                            round_id TEXT NOT NULL,
                            entitlement_id TEXT NOT NULL,
                            amount_fen INTEGER NOT NULL,
                            status TEXT NOT NULL,
                            PRIMARY KEY (round_id, entitlement_id)
                        )
                        """)
                guard try db.tableExists("rounds") else { return }
                try db.execute(sql: "ALTER TABLE rounds ADD COLUMN archived_at TEXT")
                try db.execute(sql: "UPDATE rounds SET archived_at = 'closed before round records' WHERE state = 'closed'")
            }
            // The entitlements payments has clawed back. The notifier reads payments' and the
            // matcher's feeds in no fixed order: a clawback can arrive before the matcher's
            // `entitlement.paid` (or `revoked`) of the same entitlement. Its text then waits here
            // (`waiting`: the event and its values) and goes out right after that one's, so the
            // merchant hears of the payment before its clawback, whichever feed ran ahead.
            m.registerMigration("notifier-v8-clawbacks") { db in
                try db.execute(
                    sql: "CREATE TABLE clawbacks (entitlement_id TEXT PRIMARY KEY, at TEXT NOT NULL, waiting BLOB) WITHOUT ROWID")
            }
        }
    }
}

/// Settings of the notifier (DESIGN §9).
public struct NotifierSettings: Sendable {
    public var boardDirectory: String
    public var reportsDirectory: String
    public var notificationsFile: String
    public var webhook: URL?
    public var calendar = WorkingCalendar()
    public var board = BoardConfig()
    /// The names of the county's division codes, for the board and the monthly report (`districts`).
    public var districts = DistrictNames()
    /// When a notification that failed is tried again (`notification-retry-hours`).
    public var retry = RetrySchedule()
}

/// When a notification whose delivery failed is tried again (DESIGN §9: retries with backoff).
///
/// A channel retries quickly on its own first (a webhook: 5 attempts over about 3 seconds).
/// When a delivery pass still fails, the notification is `failed` and the next pass is
/// scheduled `firstDelaySeconds` later, doubling each pass up to `maxDelaySeconds`, with ±10 %
/// jitter (fixed per notification and pass), until `horizonSeconds` after the pass that first
/// failed: the last pass is at that horizon, and after it no other is scheduled (an operator
/// re-sends it with `notifications.retry`). A permanent refusal (a `4xx` other than 408 and
/// 429, a redirect) is not retried on its own. Times are the service's clock.
public struct RetrySchedule: Sendable, Equatable {
    /// How long after its first failed pass a notification is still retried; 0: never.
    public var horizonSeconds: Int64 = 72 * 3600
    public var firstDelaySeconds: Int64 = 60
    public var maxDelaySeconds: Int64 = 3600

    public init(horizonSeconds: Int64 = 72 * 3600, firstDelaySeconds: Int64 = 60, maxDelaySeconds: Int64 = 3600) {
        self.horizonSeconds = max(0, horizonSeconds)
        self.firstDelaySeconds = max(1, firstDelaySeconds)
        self.maxDelaySeconds = max(self.firstDelaySeconds, maxDelaySeconds)
    }

    /// The greatest `notification-retry-hours` (a year).
    public static let maxHours = 8_760

    /// The delay after failed pass `pass` (1 for the first), in seconds: `min(max, first ×
    /// 2^(pass-1))` times a factor in [0.9, 1.1] drawn from the key and the pass, at least 1.
    public func delay(afterPass pass: Int, key: String) -> Int64 {
        let shift = min(max(pass - 1, 0), 40)
        let (exp, overflow) = firstDelaySeconds.multipliedReportingOverflow(by: 1 << shift)
        let base = overflow ? maxDelaySeconds : min(maxDelaySeconds, exp)
        var rng = SplitMix64(seed: SplitMix64.fnv1a(key) ^ UInt64(truncatingIfNeeded: pass))
        let factor = Double.random(in: 0.9...1.1, using: &rng)
        return max(1, Int64((Double(base) * factor).rounded()))
    }

    /// The next pass of a notification whose failure began at `failedAt`, after failed pass
    /// `pass` ended at `now`: nil once the horizon is reached (it is given up).
    public func next(afterPass pass: Int, key: String, failedAt: Date, now: Date) -> Date? {
        guard horizonSeconds > 0 else { return nil }
        let horizon = failedAt.addingTimeInterval(TimeInterval(horizonSeconds))
        guard now < horizon else { return nil }
        return min(now.addingTimeInterval(TimeInterval(delay(afterPass: pass, key: key))), horizon)
    }

    /// `notification-retry-hours`: a whole number of hours, 0 to a year.
    public static func parseHours(_ text: String, setting: String) throws -> Int64 {
        guard let h = Int(text.trimmingCharacters(in: .whitespaces)), (0...maxHours).contains(h) else {
            throw ConfigError("\(setting): \(text) is not a whole number of hours from 0 to \(maxHours)")
        }
        return Int64(h) * 3600
    }
}

/// The notifier's decisions, inside the caller's write transaction.
struct NotifierEngine: Sendable {
    let disclosure: Disclosure
    let templates: Templates
    let outbox: Outbox
    let clock: any WallClock
    let logger: Logger

    init(
        disclosure: Disclosure, templates: Templates, outbox: Outbox, clock: any WallClock,
        logger: Logger = Logger(label: "bangfu.notifier")
    ) {
        self.disclosure = disclosure
        self.templates = templates
        self.outbox = outbox
        self.clock = clock
        self.logger = logger
    }

    var now: String { Timestamp.format(clock.now()) }

    /// An event's application deadline (`window.apply_until`, a date: applications close at its
    /// 24:00 China Standard Time) while it is still today or later on this service's clock.
    func openDeadline(_ d: JSON) -> String? {
        guard let until = d["window"]?["apply_until"]?.stringValue else { return nil }
        return until >= ChinaTime.civilDate(of: clock.now()).description ? until : nil
    }

    /// Keeps the part of a profile the notifier speaks of: who the merchant is (name, kind,
    /// district) and what the monthly report counts (tax relief per period, insured employees).
    func profiled(_ data: JSON, _ db: Database) throws {
        guard let uscc = data["uscc"]?.stringValue, let version = data["version"]?.intValue else { return }
        try db.cachedStatement(
            sql:
                "INSERT INTO profiles(uscc, version, body) VALUES (?, ?, ?) ON CONFLICT(uscc) DO UPDATE SET version = excluded.version, body = excluded.body WHERE excluded.version > profiles.version"
        ).execute(arguments: [uscc, version, Data(Self.reportedPart(of: data).serializedBytes())])
    }

    static func reportedPart(of profile: JSON) -> JSON {
        var o = JSONObject()
        for key in ["uscc", "name", "kind", "district"] { o[key] = profile[key] ?? .null }
        o["tax_history"] = .array(
            (profile["tax_history"]?.arrayValue ?? []).map { t in
                ["period": t["period"] ?? .null, "tax_relief_fen": t["tax_relief_fen"] ?? .null]
            })
        o["social_insurance"] = ["insured_employees": profile["social_insurance"]?["insured_employees"] ?? .null]
        return .object(o)
    }

    /// The matcher's entitlement events: the copy the board shows, disclosure, notifications.
    func entitlement(_ e: CloudEvent, _ db: Database) throws -> (String, String, Int)? {
        guard let d = e.data, let id = d["entitlement_id"]?.stringValue, let policy = d["policy_id"]?.stringValue,
            let uscc = d["uscc"]?.stringValue
        else { return nil }
        try db.cachedStatement(
            sql:
                "INSERT INTO programmes(policy_id, title, authority, standard, benefit) VALUES (?, ?, ?, ?, ?) ON CONFLICT(policy_id) DO UPDATE SET title = excluded.title, authority = excluded.authority, standard = excluded.standard"
        ).execute(arguments: [
            policy, d["title"]?.stringValue ?? policy, d["authority"]?.stringValue, d["standard"]?.stringValue,
            d["benefit"]?.stringValue ?? "",
        ])
        // The matcher names the merchant, its kind and district; the profile copy is read only for
        // events of a matcher that did not (before it carried `kind`).
        var name = d["name"]?.stringValue
        var kind = d["kind"]?.stringValue
        var district = d["district"]?.stringValue
        if d["kind"] == nil || name == nil || district == nil,
            let body = try Data.fetchOne(db.cachedStatement(sql: "SELECT body FROM profiles WHERE uscc = ?"), arguments: [uscc]),
            let profile = try? JSONParser.parse([UInt8](body))
        {
            name = name ?? profile["name"]?.stringValue
            kind = kind ?? profile["kind"]?.stringValue
            district = district ?? profile["district"]?.stringValue
        }
        let state = d["state"]?.stringValue ?? ""
        let working = Int(d["disclosure"]?["working_days"]?.intValue ?? 0)
        // What the merchant was last told of (nil: nothing yet), before this event changes it.
        let before = try String.fetchOne(db.cachedStatement(sql: "SELECT state FROM entitlements WHERE id = ?"), arguments: [id])
        try db.cachedStatement(
            sql: """
                INSERT INTO entitlements(id, policy_id, uscc, name, kind, district, benefit, amount_fen, state, working_days, public_name)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(id) DO UPDATE SET amount_fen = excluded.amount_fen, state = excluded.state, name = excluded.name,
                    kind = excluded.kind, district = excluded.district, working_days = excluded.working_days,
                    public_name = excluded.public_name
                """
        ).execute(arguments: [
            id, policy, uscc, name, kind, district, d["benefit"]?.stringValue, d["amount_fen"]?.intValue ?? 0, state, working,
            d["public_name"]?.stringValue,
        ])
        let programme = d["title"]?.stringValue ?? policy
        let amount = Templates.yuanText(fen: d["amount_fen"]?.intValue ?? 0)
        var values = [
            "merchant": Self.displayName(name ?? "", kind: kind, publicName: d["public_name"]?.stringValue), "programme": programme,
            "amount": amount, "entitlement": id,
        ]
        // How the lessor carries a rent waiver out: refunded directly when the matcher says so
        // (`refund_only`: a lease under three months in the period, seed 篇二 (二)).
        if d["refund_only"]?.boolValue == true {
            values["methods"] = "以现金直接退付相应租金的方式（租赁期不足3个月，按实际发生天数计算）"
        } else if d["channel"]?.stringValue == "lessor" {
            values["methods"] = "以现金直接退付、抵扣租金或合同延期方式"
            values["offset_allowed"] = "1"
        }
        switch e.type {
        case "entitlement.proposed":
            try db.cachedStatement(sql: "UPDATE entitlements SET board_status = NULL, round_id = NULL WHERE id = ? AND round_id IS NULL")
                .execute(arguments: [id])
            return working > 0 ? (id, policy, working) : nil
        case "entitlement.incomplete":
            values["missing"] = Templates.missingText((d["missing"]?.arrayValue ?? []).compactMap(\.stringValue))
            // The application deadline (24:00 China Standard Time of that day), when the programme has
            // one and it has not passed: a passed one would be an instruction nobody can follow.
            if let until = openDeadline(d) { values["closes_on"] = until }
            try notify(e, .incomplete, uscc, values, db)
        case "entitlement.approved":
            try db.cachedStatement(sql: "UPDATE entitlements SET board_status = '已批准', approved_at = ? WHERE id = ?").execute(
                arguments: [now, id])
            try notify(e, .approved, uscc, values, db)
        case "entitlement.paid":
            // Cash is 已拨付 with the amount paid; a rent waiver (the lessor refunded, offset or
            // extended), a fee waiver or a deferral moved no public money: the board says it was
            // carried out, and its 已拨付 column stays empty, so the board's paid total is the
            // ledger's.
            // A withdrawn policy's events carry no benefit: the one stored with the entitlement then.
            let stored = try String.fetchOne(db.cachedStatement(sql: "SELECT benefit FROM entitlements WHERE id = ?"), arguments: [id])
            let benefit = d["benefit"]?.stringValue ?? stored ?? "cash"
            try db.cachedStatement(
                sql: "UPDATE entitlements SET board_status = ?, paid_fen = CASE WHEN ? THEN amount_fen END, paid_at = ? WHERE id = ?"
            ).execute(arguments: [BoardStatus.carriedOut(benefit: benefit), benefit == "cash", now, id])
            try notify(e, .paid, uscc, values, db)
        case "entitlement.revoked":
            try db.cachedStatement(sql: "UPDATE entitlements SET board_status = '已撤销' WHERE id = ?").execute(arguments: [id])
            // The merchant was told it was coming (incomplete, disclosed, approved, …): it is told
            // that it is not, and why. Money already paid is recovered instead: payments' clawback
            // notification says so.
            if let before, before != "revoked", before != "paid" {
                values["reason"] = Templates.revocationText(d["reason"]?.stringValue ?? "") ?? "经重新核定，不再符合该政策的享受条件"
                try notify(e, .revoked, uscc, values, db)
            }
        default:
            break
        }
        // A clawback that arrived before this payment or revocation: its text follows now.
        if e.type == "entitlement.paid" || e.type == "entitlement.revoked" { try releaseClawback(id, uscc: uscc, db) }
        return nil
    }

    /// The matcher's `application.assessed` (不符合条件告知): an applicant found not eligible is
    /// told which programme, why not (the matcher's reasons, in Chinese) and what it can do. It
    /// concerns no entitlement: nothing goes on the board.
    func assessed(_ e: CloudEvent, _ db: Database) throws {
        guard let d = e.data, d["outcome"]?.stringValue == "ineligible", let id = d["assessment_id"]?.stringValue,
            let uscc = d["uscc"]?.stringValue
        else { return }
        var name = d["name"]?.stringValue
        var kind = d["kind"]?.stringValue
        if name == nil || kind == nil,
            let body = try Data.fetchOne(db.cachedStatement(sql: "SELECT body FROM profiles WHERE uscc = ?"), arguments: [uscc]),
            let profile = try? JSONParser.parse([UInt8](body))
        {
            name = name ?? profile["name"]?.stringValue
            kind = kind ?? profile["kind"]?.stringValue
        }
        let reasons = (d["reasons"]?.arrayValue ?? []).compactMap(\.stringValue)
        var values = [
            "merchant": Self.displayName(name ?? "", kind: kind, publicName: d["public_name"]?.stringValue),
            "programme": d["title"]?.stringValue ?? d["policy_id"]?.stringValue ?? "", "entitlement": id,
            "reason": reasons.isEmpty ? "不符合该政策规定的享受条件" : reasons.joined(separator: "；"),
        ]
        // The application deadline: until then the merchant may supplement and be assessed again
        // (not named once it has passed).
        if let until = openDeadline(d) { values["closes_on"] = until }
        try notify(e, .ineligible, uscc, values, db)
    }

    /// Sends the clawback text that waited for the entitlement's payment or revocation.
    func releaseClawback(_ id: String, uscc: String, _ db: Database) throws {
        guard
            let raw = try Data.fetchOne(
                db.cachedStatement(sql: "SELECT waiting FROM clawbacks WHERE entitlement_id = ? AND waiting IS NOT NULL"), arguments: [id]),
            let waiting = try? JSONParser.parse([UInt8](raw)), let source = waiting["source"]?.stringValue,
            let eventID = waiting["id"]?.stringValue
        else { return }
        var values: [String: String] = [:]
        for (k, v) in waiting["values"]?.objectValue?.members ?? [] { values[k] = v.stringValue ?? "" }
        try notify(
            CloudEvent(id: eventID, source: source, type: "clawback.opened"), .clawback, waiting["uscc"]?.stringValue ?? uscc, values, db)
        try db.cachedStatement(sql: "UPDATE clawbacks SET waiting = NULL WHERE entitlement_id = ?").execute(arguments: [id])
    }

    /// payments' events that the merchant must hear of.
    func payment(_ e: CloudEvent, _ db: Database) throws {
        guard let d = e.data, let uscc = d["uscc"]?.stringValue, let id = d["payment_id"]?.stringValue else { return }
        let row = try Row.fetchOne(
            db.cachedStatement(sql: "SELECT name, kind, public_name FROM entitlements WHERE id = ?"), arguments: [id])
        let values = [
            "merchant": Self.displayName(row?["name"] ?? "", kind: row?["kind"], publicName: row?["public_name"]),
            "programme": d["title"]?.stringValue ?? d["policy_id"]?.stringValue ?? "",
            "amount": Templates.yuanText(fen: d["amount_fen"]?.intValue ?? 0),
            "reason": (d["after_settlement"]?.boolValue == true ? "资金到账后被银行退回：" : "")
                + Templates.reasonText(d["hold_code"]?.stringValue ?? d["reason"]?.stringValue ?? ""),
            "entitlement": id,
        ]
        switch e.type {
        case "payment.failed":
            // An operator's rejection of a held payment is a decision, not a failed transfer.
            let status = d["voided"]?.boolValue == true ? "不予拨付" : "拨付失败"
            // Money the bank sent back after settling it (camt.054) was not paid after all: off the
            // board's 已拨付 column and the monthly report's paid figures.
            try db.execute(
                sql: """
                    UPDATE entitlements SET board_status = ?, paid_fen = CASE WHEN ? THEN NULL ELSE paid_fen END,
                        paid_at = CASE WHEN ? THEN NULL ELSE paid_at END WHERE id = ?
                    """, arguments: [status, d["after_settlement"]?.boolValue == true, d["after_settlement"]?.boolValue == true, id])
            try notify(e, .failed, uscc, values, db)
        case "payment.held": try notify(e, .held, uscc, values, db)
        case "clawback.opened":
            // Money is clawed back only after the payment settled: while the matcher's
            // `entitlement.paid` (or its revocation) has not been read here, the text waits for it.
            let state = try String.fetchOne(db.cachedStatement(sql: "SELECT state FROM entitlements WHERE id = ?"), arguments: [id])
            if state == nil || ["approved", "instructed", "held"].contains(state ?? "") {
                var o = JSONObject()
                for (k, v) in values.sorted(by: { $0.key < $1.key }) { o[k] = .string(v) }
                let waiting: JSON = ["source": .string(e.source), "id": .string(e.id), "uscc": .string(uscc), "values": .object(o)]
                try db.cachedStatement(sql: "INSERT INTO clawbacks(entitlement_id, at, waiting) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
                    .execute(arguments: [id, now, Data(waiting.serializedBytes())])
            } else {
                try db.cachedStatement(sql: "INSERT INTO clawbacks(entitlement_id, at) VALUES (?, ?) ON CONFLICT DO NOTHING").execute(
                    arguments: [id, now])
                try notify(e, .clawback, uscc, values, db)
            }
        default: break
        }
    }

    /// The name a text addresses the merchant by: the name the board shows (the registry's
    /// `public_name`: an individual business's trade name with its operator's name masked in
    /// it), so the merchant and the hotline recognise the row; without one, an individual
    /// business's name is masked whole (it is often a person's name).
    static func displayName(_ name: String, kind: String?, publicName: String? = nil) -> String {
        if let publicName, !publicName.isEmpty { return publicName }
        return kind == "individual" ? Mask.name(name) : name
    }

    /// Queues a notification; its key (the event and the kind) makes a redelivery after a crash
    /// recognisable to the receiver.
    func notify(_ e: CloudEvent, _ kind: NotificationKind, _ uscc: String, _ values: [String: String], _ db: Database) throws {
        let key = "\(e.source)|\(e.id)|\(kind.rawValue)"
        // A rent waiver (carried out by the lessor) and a deferral (no money) have texts of their own.
        let benefit = try values["entitlement"].flatMap {
            try String.fetchOne(db.cachedStatement(sql: "SELECT benefit FROM entitlements WHERE id = ?"), arguments: [$0])
        }
        let text = templates.render(kind, benefit: benefit, values)
        var data = JSONObject()
        for (k, v) in values.sorted(by: { $0.key < $1.key }) { data[k] = .string(v) }
        data["event"] = .string(e.type)
        let at = now
        try db.cachedStatement(
            sql:
                "INSERT INTO notifications(key, uscc, kind, text, data, state, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?) ON CONFLICT(key) DO NOTHING"
        ).execute(arguments: [key, uscc, kind.rawValue, text, Data(JSON.object(data).serializedBytes()), at, at])
    }

    /// Tells the merchant an objection to its entitlement is being checked, and by when it can
    /// give its side (the last day of the disclosure window). Once per `objection.filed` event.
    func notifyObjection(_ id: String, round: String, event: CloudEvent, _ db: Database) throws {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM entitlements WHERE id = ?", arguments: [id]) else { return }
        let title =
            try String.fetchOne(db, sql: "SELECT title FROM programmes WHERE policy_id = ?", arguments: [row["policy_id"] as String]) ?? ""
        let lastDay = try String.fetchOne(db, sql: "SELECT closes_on FROM rounds WHERE id = ?", arguments: [round]) ?? ""
        try notify(
            event, .objection, row["uscc"],
            [
                "merchant": Self.displayName(row["name"] ?? "", kind: row["kind"], publicName: row["public_name"]), "programme": title,
                "entitlement": id, "closes_on": lastDay,
            ],
            db)
    }

    func notifyDisclosure(_ rounds: [(String, [String], String)], _ db: Database) throws {
        for (round, ids, closes) in rounds {
            // The last day of the window (a merchant may object until its 24:00), not the date of
            // the instant the window closes at, which is the next day's 00:00.
            let lastDay =
                try String.fetchOne(db, sql: "SELECT closes_on FROM rounds WHERE id = ?", arguments: [round])
                ?? Timestamp.parse(closes).map { ChinaTime.civilDate(of: $0.addingTimeInterval(-1)).description }
                ?? String(closes.prefix(10))
            for id in ids {
                guard let row = try Row.fetchOne(db, sql: "SELECT * FROM entitlements WHERE id = ?", arguments: [id]) else { continue }
                let title =
                    try String.fetchOne(
                        db, sql: "SELECT title FROM programmes WHERE policy_id = ?", arguments: [row["policy_id"] as String]) ?? ""
                let values = [
                    "merchant": Self.displayName(row["name"] ?? "", kind: row["kind"], publicName: row["public_name"]), "programme": title,
                    "amount": Templates.yuanText(fen: row["amount_fen"]), "closes_on": lastDay, "entitlement": id,
                ]
                let e = CloudEvent(id: "\(round)/\(id)", source: "/bangfu/notifier", type: "disclosure.opened")
                try notify(e, .disclosure, row["uscc"], values, db)
            }
        }
    }

    func notifyCleared(_ ids: [String], _ db: Database) throws {
        for id in ids {
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM entitlements WHERE id = ?", arguments: [id]) else { continue }
            let title =
                try String.fetchOne(db, sql: "SELECT title FROM programmes WHERE policy_id = ?", arguments: [row["policy_id"] as String])
                ?? ""
            let e = CloudEvent(id: "cleared/\(id)", source: "/bangfu/notifier", type: "disclosure.cleared")
            let dismissed = try Disclosure.objectionDismissed(id, db)
            try notify(
                e, .cleared, row["uscc"],
                [
                    "merchant": Self.displayName(row["name"] ?? "", kind: row["kind"], publicName: row["public_name"]), "programme": title,
                    "amount": Templates.yuanText(fen: row["amount_fen"]), "entitlement": id,
                    "outcome": Templates.clearedOutcome(objectionDismissed: dismissed),
                ],
                db)
        }
    }
}
