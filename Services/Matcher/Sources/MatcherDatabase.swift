import Foundation
import GRDB
import Models
import Storage

/// The matcher's database façade: its copy of the registry's profiles, the policies by revision,
/// applications, and the entitlements whose state it owns (DESIGN §7).
public struct MatcherDatabase: Sendable {
    public let db: ServiceDatabase

    public init(stateDir: String?) throws {
        db = try ServiceDatabase(stateDir: stateDir, name: "matcher", migrations: Self.migrations)
    }

    static func migrations(_ m: inout DatabaseMigrator) {
        m.registerMigration("matcher-v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE profiles (
                        id INTEGER PRIMARY KEY,
                        uscc TEXT NOT NULL UNIQUE,
                        version INTEGER NOT NULL,
                        body BLOB NOT NULL
                    );
                    CREATE TABLE policies (
                        policy_id TEXT NOT NULL,
                        revision INTEGER NOT NULL,
                        yaml TEXT NOT NULL,
                        source_hash TEXT NOT NULL,
                        published_at TEXT NOT NULL,
                        withdrawn_at TEXT,
                        withdraw_reason TEXT,
                        PRIMARY KEY (policy_id, revision)
                    );
                    CREATE TABLE applications (
                        policy_id TEXT NOT NULL,
                        uscc TEXT NOT NULL,
                        submitted_at TEXT NOT NULL,
                        documents BLOB NOT NULL,
                        event_id TEXT NOT NULL,
                        PRIMARY KEY (policy_id, uscc)
                    );
                    CREATE TABLE entitlements (
                        id TEXT PRIMARY KEY,
                        policy_id TEXT NOT NULL,
                        policy_revision INTEGER NOT NULL,
                        uscc TEXT NOT NULL,
                        binding_key TEXT NOT NULL,
                        exclusive_group TEXT,
                        state TEXT NOT NULL,
                        amount_fen INTEGER NOT NULL,
                        approved_amount_fen INTEGER,
                        priority INTEGER NOT NULL DEFAULT 0,
                        missing BLOB,
                        reason TEXT,
                        review_flag BLOB,
                        trace BLOB NOT NULL,
                        events INTEGER NOT NULL DEFAULT 0,
                        created_at TEXT NOT NULL,
                        updated_at TEXT NOT NULL
                    );
                    CREATE INDEX entitlements_uscc ON entitlements(uscc);
                    CREATE INDEX entitlements_policy ON entitlements(policy_id, state);
                    """)
        }
        // Every evaluation reads the merchant's applications by USCC; the primary key starts
        // with the policy, so without this each one was a scan of the whole table.
        m.registerMigration("matcher-v2-applications-by-merchant") { db in
            try db.execute(sql: "CREATE INDEX applications_uscc ON applications(uscc)")
        }
        // A policy with `reviewers` is approved once each of them has approved (e.g. flood relief:
        // 招商局会同市场监管分局审定). `round` is the entitlement's event count when approved, so a
        // re-proposal (a new event) starts the review again.
        m.registerMigration("matcher-v3-review-approvals") { db in
            try db.execute(
                sql: """
                    CREATE TABLE review_approvals (
                        entitlement_id TEXT NOT NULL,
                        round INTEGER NOT NULL,
                        reviewer TEXT NOT NULL,
                        by TEXT NOT NULL,
                        approved_at TEXT NOT NULL,
                        PRIMARY KEY (entitlement_id, round, reviewer)
                    )
                    """)
        }
        // 不符合条件告知: an applicant found not eligible is told so once per application (as
        // submitted, with its documents): `application.assessed` on the feed. A row here is that
        // event's idempotency key, so a replayed or repeated application tells nobody twice.
        m.registerMigration("matcher-v4-assessments") { db in
            try db.execute(
                sql: """
                    CREATE TABLE assessments (
                        id TEXT PRIMARY KEY,
                        policy_id TEXT NOT NULL,
                        policy_revision INTEGER NOT NULL,
                        uscc TEXT NOT NULL,
                        outcome TEXT NOT NULL,
                        reasons BLOB NOT NULL,
                        assessed_at TEXT NOT NULL
                    );
                    CREATE INDEX assessments_uscc ON assessments(uscc, policy_id);
                    """)
        }
        // 全程督: every step of an entitlement's lifecycle as the matcher took it, oldest first
        // (`seq` order) — proposed on which profile version, the disclosure round it was
        // disclosed and cleared in, who approved it, held, instructed, paid, revoked and why —
        // so `entitlement.show` answers an auditor without joining four feeds.
        m.registerMigration("matcher-v5-entitlement-history") { db in
            try db.execute(
                sql: """
                    CREATE TABLE entitlement_history (
                        seq INTEGER PRIMARY KEY,
                        entitlement_id TEXT NOT NULL,
                        at TEXT NOT NULL,
                        step TEXT NOT NULL,
                        state TEXT NOT NULL,
                        detail TEXT
                    );
                    CREATE INDEX entitlement_history_id ON entitlement_history(entitlement_id);
                    """)
        }
    }
}

/// An entitlement as stored. Amounts are Int64 fen.
public struct EntitlementRecord: Sendable, Equatable {
    public var id: String
    public var policyID: String
    public var policyRevision: Int
    public var uscc: String
    public var bindingKey: String
    public var exclusiveGroup: String?
    public var state: EntitlementState
    public var amountFen: Int64
    public var approvedAmountFen: Int64?
    public var priority: Bool
    public var missing: [String]
    public var reason: String?
    public var reviewFlag: JSON?
    /// The trace as stored (compact JSON): kept as bytes, because most records are loaded to
    /// be compared with a fresh evaluation and saved or left alone, never to read the trace.
    var traceBytes: [UInt8]
    public var events: Int

    public var trace: JSON {
        get { (try? JSONParser.parse(traceBytes)) ?? .object(JSONObject()) }
        set { traceBytes = newValue.serializedBytes() }
    }

    /// The columns `init(row:)` reads, in its order: select with `SELECT \(columns) FROM entitlements`.
    static let columns = """
        id, policy_id, policy_revision, uscc, binding_key, exclusive_group, state, amount_fen, approved_amount_fen, priority,
        missing, reason, review_flag, trace, events
        """

    /// A row of `columns`, read by position (reading by name costs a case-insensitive lookup
    /// per column, which showed in the matcher's profile).
    init(row: Row) throws {
        id = row[0]
        policyID = row[1]
        policyRevision = row[2]
        uscc = row[3]
        bindingKey = row[4]
        exclusiveGroup = row[5]
        state = EntitlementState(rawValue: row[6]) ?? .revoked
        amountFen = row[7]
        approvedAmountFen = row[8]
        priority = (row[9] as Int64) != 0
        if let m: Data = row[10], let j = try? JSONParser.parse([UInt8](m)) {
            missing = j.arrayValue?.compactMap(\.stringValue) ?? []
        } else {
            missing = []
        }
        reason = row[11]
        reviewFlag = (row[12] as Data?).flatMap { try? JSONParser.parse([UInt8]($0)) }
        // Straight from SQLite's buffer (no intermediate `Data` copy) when the row is a cursor's.
        traceBytes = try row.withUnsafeData(atIndex: 13) { $0.map { [UInt8]($0) } ?? [] }
        events = row[14]
    }

    public init(
        id: String, policyID: String, policyRevision: Int, uscc: String, bindingKey: String, exclusiveGroup: String?,
        state: EntitlementState, amountFen: Int64, priority: Bool, missing: [String], trace: JSON
    ) {
        self.id = id
        self.policyID = policyID
        self.policyRevision = policyRevision
        self.uscc = uscc
        self.bindingKey = bindingKey
        self.exclusiveGroup = exclusiveGroup
        self.state = state
        self.amountFen = amountFen
        self.approvedAmountFen = nil
        self.priority = priority
        self.missing = missing
        self.reason = nil
        self.reviewFlag = nil
        self.traceBytes = trace.serializedBytes()
        self.events = 0
    }

    func save(_ db: Database, now: String) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO entitlements(id, policy_id, policy_revision, uscc, binding_key, exclusive_group, state, amount_fen,
                    approved_amount_fen, priority, missing, reason, review_flag, trace, events, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(id) DO UPDATE SET policy_revision = excluded.policy_revision, exclusive_group = excluded.exclusive_group,
                    state = excluded.state, amount_fen = excluded.amount_fen, approved_amount_fen = excluded.approved_amount_fen,
                    priority = excluded.priority, missing = excluded.missing, reason = excluded.reason,
                    review_flag = excluded.review_flag, trace = excluded.trace, events = excluded.events, updated_at = excluded.updated_at
                """
        ).execute(arguments: [
            id, policyID, policyRevision, uscc, bindingKey, exclusiveGroup, state.rawValue, amountFen, approvedAmountFen,
            priority ? 1 : 0, missing.isEmpty ? nil : Data(JSON.array(missing.map { .string($0) }).serializedBytes()), reason,
            reviewFlag.map { Data($0.serializedBytes()) }, Data(traceBytes), events, now, now,
        ])
    }

    static func all(uscc: String, _ db: Database) throws -> [EntitlementRecord] {
        // A cursor's rows read the statement's columns in place: each record is built without a
        // copied row in between.
        try Array(
            Row.fetchCursor(db.cachedStatement(sql: "SELECT \(columns) FROM entitlements WHERE uscc = ?"), arguments: [uscc]).map(
                EntitlementRecord.init))
    }

    static func find(_ id: String, _ db: Database) throws -> EntitlementRecord? {
        try Row.fetchOne(db.cachedStatement(sql: "SELECT \(columns) FROM entitlements WHERE id = ?"), arguments: [id]).map(
            EntitlementRecord.init)
    }
}

/// The lifecycle of DESIGN §7. The matcher owns it; the notifier owns disclosure and payments own
/// money, and their feeds move it along.
public enum EntitlementState: String, Sendable, CaseIterable {
    case incomplete, proposed, disclosed, cleared, approved, instructed, held, paid, failed, revoked
    case clawedBack = "clawed_back"

    /// Before approval the amount may still change with the facts.
    public var beforeApproval: Bool { [.incomplete, .proposed, .disclosed, .cleared].contains(self) }
    /// Counts toward an exclusive group: a live claim on the programme's money.
    public var holdsExclusiveGroup: Bool { ![.incomplete, .revoked, .clawedBack].contains(self) }
}
