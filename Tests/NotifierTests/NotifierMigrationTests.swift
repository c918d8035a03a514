import Foundation
import GRDB
import Models
import Storage
import Testing

@testable import Notifier

/// A database written before `notifier-v3-rowid-tables` keeps its profiles and notifications
/// (and their delivery order) when the notifier next opens it.
@Suite("Notifier database migrations")
struct NotifierMigrationTests {
    @Test func rowidMigrationKeepsProfilesAndNotifications() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("notifier-migration-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // The two tables as notifier-v1 and notifier-v2-indexes left them, with rows.
        let old = try DatabaseQueue(path: dir + "/notifier.sqlite")
        try old.write { db in
            try db.execute(
                sql: """
                    CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY);
                    INSERT INTO grdb_migrations VALUES ('notifier-v1'), ('notifier-v2-indexes');
                    CREATE TABLE profiles (uscc TEXT PRIMARY KEY, version INTEGER NOT NULL, body BLOB NOT NULL) WITHOUT ROWID;
                    CREATE TABLE notifications (
                        key TEXT PRIMARY KEY, uscc TEXT NOT NULL, kind TEXT NOT NULL, text TEXT NOT NULL, data BLOB NOT NULL,
                        state TEXT NOT NULL, attempts BLOB, created_at TEXT NOT NULL, updated_at TEXT NOT NULL
                    ) WITHOUT ROWID;
                    CREATE INDEX notifications_state ON notifications(state);
                    CREATE INDEX notifications_pending ON notifications(state, created_at);
                    CREATE TABLE entitlements (
                        id TEXT PRIMARY KEY, name TEXT, kind TEXT, benefit TEXT, amount_fen INTEGER, board_status TEXT, paid_fen INTEGER
                    );
                    INSERT INTO entitlements VALUES ('ent-1', '张三小吃店', 'individual', 'cash', 300000, '已拨付', 300000);
                    INSERT INTO entitlements VALUES ('ent-2', '李四商店', 'individual', 'rent_waiver', 845100, '已拨付', 845100);
                    INSERT INTO entitlements VALUES ('ent-3', '王五超市', 'individual', 'deferral', 0, '已拨付', 0);
                    INSERT INTO entitlements VALUES ('ent-4', '赵六饭店', 'individual', 'rent_waiver', 500000, '已批准', NULL);
                    """)
            try db.execute(sql: "INSERT INTO profiles VALUES ('91410102MA9XYZ1234', 3, ?)", arguments: [Data(#"{"name":"甲"}"#.utf8)])
            for (key, created, state) in [
                ("z", "2022-04-01T09:00:00.000+08:00", "pending"), ("a", "2022-04-01T10:00:00.000+08:00", "pending"),
                ("m", "2022-04-01T08:00:00.000+08:00", "sent"),
            ] {
                try db.execute(
                    sql: "INSERT INTO notifications VALUES (?, 'u', 'approved', '文本', x'7b7d', ?, NULL, ?, ?)",
                    arguments: [key, state, created, created])
            }
        }
        try old.close()

        let database = try NotifierDatabase(stateDir: dir)
        try database.db.writer.read { db in
            for table in ["profiles", "notifications"] {
                let sql = try String.fetchOne(db, sql: "SELECT sql FROM sqlite_master WHERE name = ?", arguments: [table]) ?? ""
                #expect(!sql.isEmpty)
                #expect(!sql.uppercased().contains("WITHOUT ROWID"), "\(table) is a rowid table now")
            }
            #expect(try Int.fetchOne(db, sql: "SELECT version FROM profiles WHERE uscc = '91410102MA9XYZ1234'") == 3)
            #expect(try String.fetchAll(db, sql: "SELECT key FROM notifications ORDER BY rowid") == ["m", "z", "a"])
            let pending = try String.fetchAll(db, sql: "SELECT key FROM notifications WHERE state = 'pending' ORDER BY created_at")
            #expect(pending == ["z", "a"])
            // notifier-v4-public-name: the board's name column, empty for what came before.
            #expect(try Row.fetchOne(db, sql: "SELECT name, public_name FROM entitlements")?["public_name"] as String? == nil)
            #expect(try String.fetchOne(db, sql: "SELECT name FROM entitlements WHERE id = 'ent-1'") == "张三小吃店")
            // notifier-v6-non-cash-carried-out: only cash stays 已拨付 with a paid amount.
            let board = try Row.fetchAll(db, sql: "SELECT id, board_status, paid_fen FROM entitlements ORDER BY id").map {
                "\($0["id"] as String) \($0["board_status"] as String) \(($0["paid_fen"] as Int64?).map(String.init) ?? "-")"
            }
            #expect(board == ["ent-1 已拨付 300000", "ent-2 已落实减免 -", "ent-3 已落实缓缴 -", "ent-4 已批准 -"])
        }
        // The key stays unique.
        let error = #expect(throws: DatabaseError.self) {
            try database.db.writer.write { db in
                try db.execute(sql: "INSERT INTO notifications SELECT * FROM notifications WHERE key = 'z'")
            }
        }
        #expect(error?.resultCode == .SQLITE_CONSTRAINT)
    }

    /// A round of a million merchants clears hundreds of thousands of entitlements at once: its
    /// `disclosure.cleared` ids are split over events of at most 5,000 (each far under 1 MiB).
    @Test func aBigRoundClearsInEventsOfAtMost5000Ids() throws {
        let database = try NotifierDatabase(stateDir: nil)
        let clock = TestClock(rfc3339: "2022-04-01T09:00:00+08:00")
        let disclosure = Disclosure(calendar: WorkingCalendar(), outbox: Outbox(source: "/bangfu/notifier", clock: clock), clock: clock)
        let ids = (0..<12_345).map { String(format: "ent-%06d", $0) }
        try database.db.writer.write { db in
            for id in ids {
                try db.execute(
                    sql: "INSERT INTO entitlements(id, policy_id, uscc, amount_fen, state) VALUES (?, 'p', 'u', 1, 'proposed')",
                    arguments: [id])
            }
            try disclosure.clear(ids, round: "R-p-20220401", db)
        }
        let events = try database.db.writer.read { db in
            try Row.fetchAll(db, sql: "SELECT event_id, body FROM bus_outbox WHERE type = 'disclosure.cleared' ORDER BY sequence")
        }
        let chunks = try events.map { row -> [String] in
            let body: Data = row["body"]
            #expect(body.count < 1 << 20)
            let event = try CloudEvent.parse([UInt8](body))
            return event.data?["entitlement_ids"]?.arrayValue?.compactMap(\.stringValue) ?? []
        }
        #expect(chunks.map(\.count) == [5_000, 5_000, 2_345])
        #expect(chunks.flatMap { $0 } == ids, "every id once, in order")
        #expect(Set(events.map { $0["event_id"] as String }).count == 3, "distinct event ids")
        let cleared = try database.db.writer.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM entitlements WHERE board_status = '无异议'")
        }
        #expect(cleared == ids.count)
    }
}
