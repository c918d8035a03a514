import Bus
import Foundation
import GRDB
import Models

/// One service's SQLite database (DESIGN §10): a GRDB `DatabasePool` in WAL mode with
/// `synchronous=FULL`, so that a committed transaction survives power loss; or an in-memory
/// database for tests. Owns the bus tables every service shares (intake log, outbox, inbox
/// cursors, quarantine) and runs the service's own migrations after them.
public final class ServiceDatabase: Sendable {
    public let writer: any DatabaseWriter
    public let path: String?

    /// Opens (creating if needed) the database at `path`, or an in-memory one when nil.
    public init(path: String?, migrations: (inout DatabaseMigrator) -> Void = { _ in }) throws {
        var config = Configuration()
        config.busyMode = .timeout(30)
        config.maximumReaderCount = 3
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            // The writer's page cache is large enough that a group-commit batch does not spill to
            // the WAL before it commits (64 MiB at most); readers (queries, replay) keep 8 MiB each,
            // so that a big county's database does not cost a quarter GiB of cache per service.
            try db.execute(sql: db.configuration.readonly ? "PRAGMA cache_size = -8192" : "PRAGMA cache_size = -65536")
            // The WAL grows while readers hold old snapshots; after a checkpoint resets it, give the
            // disk back down to 64 MiB.
            if !db.configuration.readonly { try db.execute(sql: "PRAGMA journal_size_limit = 67108864") }
        }
        if let path {
            let dir = (path as NSString).deletingLastPathComponent
            if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
            writer = try DatabasePool(path: path, configuration: config)
        } else {
            writer = try DatabaseQueue(configuration: config)
        }
        self.path = path
        var migrator = DatabaseMigrator()
        BusSchema.register(&migrator)
        migrations(&migrator)
        try migrator.migrate(writer)
    }

    /// Opens `<stateDir>/<name>.sqlite`, or in memory when `stateDir` is nil.
    public convenience init(stateDir: String?, name: String, migrations: (inout DatabaseMigrator) -> Void = { _ in }) throws {
        try self.init(path: stateDir.map { ($0 as NSString).appendingPathComponent("\(name).sqlite") }, migrations: migrations)
    }

    public func journalMode() throws -> String {
        try writer.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "" }
    }

    public func synchronousLevel() throws -> Int {
        try writer.read { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1 }
    }
}

/// The tables the bus library keeps in every service database. Migrations are append-only:
/// never edit one that has been released; add a new one.
public enum BusSchema {
    public static func register(_ m: inout DatabaseMigrator) {
        m.registerMigration("bus-v1") { db in
            // Every accepted intake event, in arrival order; the unique index is the
            // idempotency key (source + id).
            try db.execute(
                sql: """
                    CREATE TABLE bus_intake (
                        seq INTEGER PRIMARY KEY,
                        source TEXT NOT NULL,
                        event_id TEXT NOT NULL,
                        content_hash BLOB NOT NULL,
                        type TEXT NOT NULL,
                        subject TEXT,
                        received_at TEXT NOT NULL,
                        body BLOB NOT NULL
                    );
                    CREATE UNIQUE INDEX bus_intake_key ON bus_intake(source, event_id);
                    CREATE TABLE bus_outbox (
                        sequence INTEGER PRIMARY KEY,
                        event_id TEXT NOT NULL,
                        type TEXT NOT NULL,
                        subject TEXT,
                        body BLOB NOT NULL
                    );
                    CREATE TABLE bus_inbox (
                        feed TEXT PRIMARY KEY,
                        sequence INTEGER NOT NULL
                    );
                    CREATE TABLE bus_quarantine (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        received_at TEXT NOT NULL,
                        origin TEXT NOT NULL,
                        code TEXT NOT NULL,
                        field TEXT,
                        message TEXT NOT NULL,
                        source TEXT,
                        event_id TEXT,
                        type TEXT,
                        frame BLOB NOT NULL
                    );
                    CREATE INDEX bus_quarantine_code ON bus_quarantine(code);
                    """)
        }
        m.registerMigration("bus-v2-meta") { db in
            try db.execute(sql: "CREATE TABLE bus_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        }
        m.registerMigration("bus-v3-feed-guard") { db in
            // Per upstream feed, beside its cursor in bus_inbox: the last event checked against
            // the upstream, the upstream's epoch then, and why the feed is halted (FeedGuard).
            try db.execute(
                sql: """
                    CREATE TABLE bus_feed_guard (
                        feed TEXT PRIMARY KEY,
                        epoch TEXT,
                        anchor_sequence INTEGER NOT NULL,
                        anchor_sha256 TEXT NOT NULL,
                        halted TEXT
                    )
                    """)
        }
        m.registerMigration("bus-v4-quarantine-sender") { db in
            // Who sent each quarantined intake frame: the CURVE client's public key (Z85), or
            // NULL (ipc:// and inproc://, no CURVE, rows from before this migration, feed rows).
            try db.execute(sql: "ALTER TABLE bus_quarantine ADD COLUMN sender_key TEXT")
        }
    }
}

/// The inbox cursor of each upstream feed: the last sequence whose effects are committed.
public enum InboxCursor {
    public static func get(_ db: Database, feed: String) throws -> UInt64 {
        UInt64(try Int64.fetchOne(db, sql: "SELECT sequence FROM bus_inbox WHERE feed = ?", arguments: [feed]) ?? 0)
    }

    public static func set(_ db: Database, feed: String, to sequence: UInt64) throws {
        try db.cachedStatement(
            sql: "INSERT INTO bus_inbox(feed, sequence) VALUES (?, ?) ON CONFLICT(feed) DO UPDATE SET sequence = excluded.sequence"
        ).execute(arguments: [feed, Int64(sequence)])
    }

    public static func all(_ db: Database) throws -> [String: UInt64] {
        var out: [String: UInt64] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT feed, sequence FROM bus_inbox") {
            out[row["feed"]] = UInt64(row["sequence"] as Int64)
        }
        return out
    }
}

/// A feed consumer whose inbox cursors live in its service database (every service's).
public protocol DatabaseFeedConsumer: FeedConsumer {
    var database: ServiceDatabase { get }
}

extension DatabaseFeedConsumer {
    public func cursor(feed: String) throws -> UInt64 {
        try database.writer.read { db in try InboxCursor.get(db, feed: feed) }
    }

    public func feedGuard(feed: String) throws -> FeedGuard? {
        try database.writer.read { db in try FeedGuards.get(db, feed: feed) }
    }

    public func saveFeedGuard(feed: String, _ value: FeedGuard) throws {
        try database.writer.write { db in try FeedGuards.set(db, feed: feed, value) }
    }

    public func resetCursor(feed: String, to sequence: UInt64) throws {
        try FeedGuards.resetCursor(database, feed: feed, to: sequence)
    }
}

/// The `FeedGuard` of each upstream feed (bus_feed_guard).
public enum FeedGuards {
    public static func get(_ db: Database, feed: String) throws -> FeedGuard? {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM bus_feed_guard WHERE feed = ?", arguments: [feed]) else { return nil }
        return FeedGuard(
            epoch: row["epoch"], anchorSequence: UInt64(row["anchor_sequence"] as Int64), anchorSHA256: row["anchor_sha256"],
            halted: row["halted"])
    }

    public static func set(_ db: Database, feed: String, _ g: FeedGuard) throws {
        try db.execute(
            sql: """
                INSERT INTO bus_feed_guard(feed, epoch, anchor_sequence, anchor_sha256, halted) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT(feed) DO UPDATE SET epoch = excluded.epoch, anchor_sequence = excluded.anchor_sequence,
                    anchor_sha256 = excluded.anchor_sha256, halted = excluded.halted
                """,
            arguments: [feed, g.epoch, Int64(clamping: g.anchorSequence), g.anchorSHA256, g.halted])
    }

    /// The cursor set to `sequence` and the guard forgotten, in one transaction.
    public static func resetCursor(_ database: ServiceDatabase, feed: String, to sequence: UInt64) throws {
        try database.writer.write { db in
            try InboxCursor.set(db, feed: feed, to: sequence)
            try db.execute(sql: "DELETE FROM bus_feed_guard WHERE feed = ?", arguments: [feed])
        }
    }
}
