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
}

/// The notifier's decisions, inside the caller's write transaction.
struct NotifierEngine: Sendable {
    let disclosure: Disclosure
    let templates: Templates
    let outbox: Outbox
    let clock: any WallClock
    let logger: Logger

    var now: String { Timestamp.format(clock.now()) }

    func profiled(_ data: JSON, _ db: Database) throws {
        guard let uscc = data["uscc"]?.stringValue, let version = data["version"]?.intValue else { return }
        try db.cachedStatement(
            sql:
                "INSERT INTO profiles(uscc, version, body) VALUES (?, ?, ?) ON CONFLICT(uscc) DO UPDATE SET version = excluded.version, body = excluded.body WHERE excluded.version > profiles.version"
        ).execute(arguments: [uscc, version, Data(data.serializedBytes())])
    }

    /// The matcher's entitlement events: the copy the board shows, disclosure, notifications.
    func entitlement(_ e: CloudEvent, _ db: Database) throws -> (String, String, Int)? {
        guard let d = e.data, let id = d["entitlement_id"]?.stringValue, let policy = d["policy_id"]?.stringValue,
            let uscc = d["uscc"]?.stringValue
        else { return nil }
        try db.execute(
            sql:
                "INSERT INTO programmes(policy_id, title, authority, standard, benefit) VALUES (?, ?, ?, ?, ?) ON CONFLICT(policy_id) DO UPDATE SET title = excluded.title, authority = excluded.authority, standard = excluded.standard",
            arguments: [
                policy, d["title"]?.stringValue ?? policy, d["authority"]?.stringValue, d["standard"]?.stringValue,
                d["benefit"]?.stringValue ?? "",
            ])
        let profile = try Data.fetchOne(db, sql: "SELECT body FROM profiles WHERE uscc = ?", arguments: [uscc]).flatMap {
            try? JSONParser.parse([UInt8]($0))
        }
        let state = d["state"]?.stringValue ?? ""
        let working = Int(d["disclosure"]?["working_days"]?.intValue ?? 0)
        try db.execute(
            sql: """
                INSERT INTO entitlements(id, policy_id, uscc, name, kind, district, benefit, amount_fen, state, working_days)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(id) DO UPDATE SET amount_fen = excluded.amount_fen, state = excluded.state, name = excluded.name,
                    kind = excluded.kind, district = excluded.district, working_days = excluded.working_days
                """,
            arguments: [
                id, policy, uscc, d["name"]?.stringValue ?? profile?["name"]?.stringValue, profile?["kind"]?.stringValue,
                d["district"]?.stringValue ?? profile?["district"]?.stringValue, d["benefit"]?.stringValue, d["amount_fen"]?.intValue ?? 0,
                state, working,
            ])
        let programme = d["title"]?.stringValue ?? policy
        let amount = YuanText.format(d["amount_fen"]?.intValue ?? 0)
        let name = Self.displayName(d["name"]?.stringValue ?? "", kind: profile?["kind"]?.stringValue)
        var values = ["merchant": name, "programme": programme, "amount": amount, "entitlement": id]
        switch e.type {
        case "entitlement.proposed":
            try db.execute(
                sql: "UPDATE entitlements SET board_status = NULL, round_id = NULL WHERE id = ? AND round_id IS NULL", arguments: [id])
            return working > 0 ? (id, policy, working) : nil
        case "entitlement.incomplete":
            values["missing"] = Templates.missingText((d["missing"]?.arrayValue ?? []).compactMap(\.stringValue))
            try notify(e, .incomplete, uscc, values, db)
        case "entitlement.approved":
            try db.execute(sql: "UPDATE entitlements SET board_status = '已批准', approved_at = ? WHERE id = ?", arguments: [now, id])
            try notify(e, .approved, uscc, values, db)
        case "entitlement.paid":
            try db.execute(
                sql: "UPDATE entitlements SET board_status = '已拨付', paid_fen = amount_fen, paid_at = ? WHERE id = ?", arguments: [now, id])
            try notify(e, .paid, uscc, values, db)
        case "entitlement.revoked":
            try db.execute(sql: "UPDATE entitlements SET board_status = '已撤销' WHERE id = ?", arguments: [id])
        default:
            break
        }
        return nil
    }

    /// payments' events that the merchant must hear of.
    func payment(_ e: CloudEvent, _ db: Database) throws {
        guard let d = e.data, let uscc = d["uscc"]?.stringValue, let id = d["payment_id"]?.stringValue else { return }
        let name = try String.fetchOne(db, sql: "SELECT name FROM entitlements WHERE id = ?", arguments: [id]) ?? ""
        let kind = try String.fetchOne(db, sql: "SELECT kind FROM entitlements WHERE id = ?", arguments: [id])
        let values = [
            "merchant": Self.displayName(name, kind: kind), "programme": d["title"]?.stringValue ?? d["policy_id"]?.stringValue ?? "",
            "amount": YuanText.format(d["amount_fen"]?.intValue ?? 0),
            "reason": Templates.reasonText(d["hold_code"]?.stringValue ?? d["reason"]?.stringValue ?? ""),
            "entitlement": id,
        ]
        switch e.type {
        case "payment.failed":
            try db.execute(sql: "UPDATE entitlements SET board_status = '拨付失败' WHERE id = ?", arguments: [id])
            try notify(e, .failed, uscc, values, db)
        case "payment.held": try notify(e, .held, uscc, values, db)
        case "clawback.opened": try notify(e, .clawback, uscc, values, db)
        default: break
        }
    }

    /// Individual businesses are often named after a person: masked on the board and in texts.
    static func displayName(_ name: String, kind: String?) -> String { kind == "individual" ? Mask.name(name) : name }

    /// Queues a notification; its key (the event and the kind) makes a redelivery after a crash
    /// recognisable to the receiver.
    func notify(_ e: CloudEvent, _ kind: NotificationKind, _ uscc: String, _ values: [String: String], _ db: Database) throws {
        let key = "\(e.source)|\(e.id)|\(kind.rawValue)"
        let text = templates.render(kind, values)
        var data = JSONObject()
        for (k, v) in values.sorted(by: { $0.key < $1.key }) { data[k] = .string(v) }
        data["event"] = .string(e.type)
        try db.execute(
            sql:
                "INSERT INTO notifications(key, uscc, kind, text, data, state, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?) ON CONFLICT(key) DO NOTHING",
            arguments: [key, uscc, kind.rawValue, text, Data(JSON.object(data).serializedBytes()), now, now])
    }

    func notifyDisclosure(_ rounds: [(String, [String], String)], _ db: Database) throws {
        for (round, ids, closes) in rounds {
            for id in ids {
                guard let row = try Row.fetchOne(db, sql: "SELECT * FROM entitlements WHERE id = ?", arguments: [id]) else { continue }
                let title =
                    try String.fetchOne(
                        db, sql: "SELECT title FROM programmes WHERE policy_id = ?", arguments: [row["policy_id"] as String]) ?? ""
                let values = [
                    "merchant": Self.displayName(row["name"] ?? "", kind: row["kind"]), "programme": title,
                    "amount": YuanText.format(row["amount_fen"]), "closes_on": String(closes.prefix(10)), "entitlement": id,
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
            try notify(
                e, .cleared, row["uscc"],
                [
                    "merchant": Self.displayName(row["name"] ?? "", kind: row["kind"]), "programme": title,
                    "amount": YuanText.format(row["amount_fen"]), "entitlement": id,
                ],
                db)
        }
    }
}

/// Fen as yuan text with exact integer arithmetic: 123456 → "1,234.56元".
enum YuanText {
    static func format(_ fen: Int64) -> String {
        let m = fen.magnitude
        var whole = String(m / 100)
        var grouped = ""
        while whole.count > 3 {
            grouped = "," + whole.suffix(3) + grouped
            whole = String(whole.dropLast(3))
        }
        let cents = m % 100
        return (fen < 0 ? "-" : "") + whole + grouped + "." + (cents < 10 ? "0" : "") + String(cents) + "元"
    }
}
