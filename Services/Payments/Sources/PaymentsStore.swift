import Foundation
import GRDB
import Models
import Storage

/// The payment router's own tables, beside the ledger and the audit chain (PaymentsSchema):
/// its copies of merchants and payees, payments, holds, batches, returns and receivables.
public struct PaymentsDatabase: Sendable {
    public let db: ServiceDatabase

    public init(stateDir: String?) throws {
        db = try ServiceDatabase(stateDir: stateDir, name: "payments") { m in
            PaymentsSchema.register(&m)
            Self.migrations(&m)
        }
    }

    static func migrations(_ m: inout DatabaseMigrator) {
        m.registerMigration("payments-service-v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE merchants (
                        uscc TEXT PRIMARY KEY,
                        name TEXT NOT NULL,
                        kind TEXT NOT NULL,
                        status TEXT NOT NULL,
                        disqualified INTEGER NOT NULL DEFAULT 0,
                        id_fp TEXT, phone_fp TEXT, address_fp TEXT
                    ) WITHOUT ROWID;
                    CREATE TABLE payees (
                        uscc TEXT PRIMARY KEY,
                        bank TEXT, account_no TEXT NOT NULL, holder_name TEXT NOT NULL,
                        holder_matches INTEGER NOT NULL, verified_on TEXT, fingerprint TEXT NOT NULL,
                        changed_at TEXT NOT NULL
                    ) WITHOUT ROWID;
                    CREATE TABLE payments (
                        id TEXT PRIMARY KEY,
                        policy_id TEXT NOT NULL,
                        title TEXT,
                        uscc TEXT NOT NULL,
                        benefit TEXT NOT NULL,
                        channel TEXT NOT NULL,
                        pool TEXT,
                        amount_fen INTEGER NOT NULL,
                        priority INTEGER NOT NULL DEFAULT 0,
                        binding TEXT,
                        state TEXT NOT NULL,
                        hold_code TEXT,
                        hold_reason TEXT,
                        cleared_holds TEXT NOT NULL DEFAULT '',
                        batch_id TEXT,
                        approved_seq INTEGER NOT NULL,
                        payee_fp TEXT,
                        deadline TEXT,
                        events INTEGER NOT NULL DEFAULT 0,
                        updated_at TEXT NOT NULL
                    );
                    CREATE INDEX payments_state ON payments(state, channel);
                    CREATE INDEX payments_uscc ON payments(uscc);
                    CREATE INDEX payments_policy ON payments(policy_id);
                    CREATE TABLE holds (
                        id INTEGER PRIMARY KEY,
                        payment_id TEXT NOT NULL,
                        code TEXT NOT NULL,
                        detail TEXT,
                        opened_at TEXT NOT NULL,
                        resolution TEXT,
                        resolved_by TEXT,
                        resolved_at TEXT,
                        reason TEXT
                    );
                    CREATE INDEX holds_payment ON holds(payment_id);
                    CREATE TABLE batches (
                        id TEXT PRIMARY KEY,
                        seq INTEGER NOT NULL UNIQUE,
                        channel TEXT NOT NULL,
                        file_name TEXT NOT NULL,
                        content BLOB NOT NULL,
                        count INTEGER NOT NULL,
                        total_fen INTEGER NOT NULL,
                        created_at TEXT NOT NULL,
                        written INTEGER NOT NULL DEFAULT 0,
                        settled INTEGER NOT NULL DEFAULT 0,
                        failed INTEGER NOT NULL DEFAULT 0
                    );
                    CREATE TABLE returns (
                        id TEXT PRIMARY KEY,
                        kind TEXT NOT NULL,
                        lines INTEGER NOT NULL,
                        applied INTEGER NOT NULL,
                        anomalies INTEGER NOT NULL,
                        received_at TEXT NOT NULL
                    );
                    CREATE TABLE return_anomalies (
                        id INTEGER PRIMARY KEY,
                        return_id TEXT NOT NULL,
                        payment_id TEXT NOT NULL,
                        problem TEXT NOT NULL
                    );
                    CREATE TABLE channels (
                        channel TEXT PRIMARY KEY,
                        paused INTEGER NOT NULL DEFAULT 0,
                        reason TEXT
                    );
                    CREATE TABLE receivables (
                        id TEXT PRIMARY KEY,
                        payment_id TEXT NOT NULL,
                        uscc TEXT NOT NULL,
                        amount_fen INTEGER NOT NULL,
                        recovered_fen INTEGER NOT NULL DEFAULT 0,
                        state TEXT NOT NULL,
                        reason TEXT,
                        opened_at TEXT NOT NULL
                    );
                    """)
        }
        // The link analysis looks for another recipient with the same account, legal
        // representative, phone or address: without these, every check walked the programme's
        // payments. Receivables are found by payment.
        m.registerMigration("payments-service-v2-indexes") { db in
            try db.execute(
                sql: """
                    CREATE INDEX payees_fingerprint ON payees(fingerprint);
                    CREATE INDEX merchants_id_fp ON merchants(id_fp);
                    CREATE INDEX merchants_phone_fp ON merchants(phone_fp);
                    CREATE INDEX merchants_address_fp ON merchants(address_fp);
                    CREATE INDEX receivables_payment ON receivables(payment_id);
                    """)
        }
        // `attempt` numbers a payment's reservations: attempt 0 is `reserve/<id>` (as before this
        // migration), attempt n ≥ 1 is `reserve/<id>/<n>`, so that a payment whose reservation was
        // voided (account changed, bank return) reserves afresh. `revoked` remembers an
        // `entitlement.revoked` or a fraud finding that arrived while the money was in the bank's
        // hands: its settlement then opens the clawback. Returns count the settled payments the
        // bank later returned (camt.054 `RtrInf`).
        m.registerMigration("payments-service-v3-attempts") { db in
            try db.execute(
                sql: """
                    ALTER TABLE payments ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE payments ADD COLUMN revoked TEXT;
                    ALTER TABLE returns ADD COLUMN reversed INTEGER NOT NULL DEFAULT 0;
                    """)
        }
        // Lessor instructions awaiting confirmation, by deadline: the escalation at every tick
        // of the node's loop reads only the overdue ones.
        m.registerMigration("payments-service-v4-lessor-deadlines") { db in
            try db.execute(
                sql:
                    "CREATE INDEX payments_lessor_deadline ON payments(deadline) WHERE state = 'instructed' AND channel = 'lessor' AND deadline IS NOT NULL"
            )
        }
        // Confirmations by lease find their payment by binding.
        m.registerMigration("payments-service-v5-binding") { db in
            try db.execute(sql: "CREATE INDEX payments_binding ON payments(binding) WHERE binding IS NOT NULL")
        }
        // `account_hold_fp`: the payee fingerprint an `account_changed` hold is about (an
        // operator's release accepts that account, and only that one). Batches keep the SHA-256
        // of their file (also in the `batch.created` audit entry, at `audit_seq`) so that a file
        // is written only with the content decided; `refused` says why one was not. `reviews`
        // are notes for an operator about a payment that need a person but hold no money (a
        // policy withdrawn after the money left, an event the ledger refused, a batch the bank
        // rejected whole that names no payment).
        m.registerMigration("payments-service-v6-review") { db in
            try db.execute(
                sql: """
                    ALTER TABLE payments ADD COLUMN account_hold_fp TEXT;
                    ALTER TABLE batches ADD COLUMN sha256 TEXT;
                    ALTER TABLE batches ADD COLUMN audit_seq INTEGER;
                    ALTER TABLE batches ADD COLUMN refused TEXT;
                    CREATE TABLE reviews (
                        id INTEGER PRIMARY KEY,
                        payment_id TEXT NOT NULL,
                        code TEXT NOT NULL,
                        detail TEXT NOT NULL,
                        opened_at TEXT NOT NULL
                    );
                    CREATE INDEX reviews_payment ON reviews(payment_id);
                    """)
        }
        // What a lessor or an agency needs to carry an instruction out (the tenant, the lease and
        // its lessor, the benefit period), from the approval, written into their instruction lines.
        m.registerMigration("payments-service-v7-instruction-detail") { db in
            try db.execute(sql: "ALTER TABLE payments ADD COLUMN instruction_detail BLOB")
        }
        // The `payments.batch` command (its event id) that made each batch: the operator's CLI
        // names exactly the batches its own command wrote, a retry included. A pool's
        // `pool_short` holds in release order, read whenever money comes back into a pool. A bank
        // return that closed a clawback (a second one is an anomaly, never a second closing).
        m.registerMigration("payments-service-v8") { db in
            try db.execute(
                sql: """
                    ALTER TABLE batches ADD COLUMN command_id TEXT;
                    CREATE INDEX payments_pool_short ON payments(pool, priority DESC, approved_seq)
                        WHERE state = 'held' AND hold_code = 'pool_short';
                    ALTER TABLE receivables ADD COLUMN returned_at TEXT;
                    """)
        }
        // Return files quarantined from the inbox, by the SHA-256 of their content: a file seen
        // again (the same bytes under a reused name, or one whose move out of the inbox failed)
        // adds no second quarantine row.
        m.registerMigration("payments-service-v9") { db in
            try db.execute(
                sql: """
                    CREATE TABLE inbox_quarantined (
                        sha256 TEXT PRIMARY KEY,
                        file_name TEXT NOT NULL,
                        moved_to TEXT,
                        quarantined_at TEXT NOT NULL
                    ) WITHOUT ROWID;
                    """)
        }
        // The batches still waiting for their file, looked for at every tick of the node's loop
        // (without it, every tick would read the whole table, files included).
        m.registerMigration("payments-service-v10-unwritten") { db in
            try db.execute(sql: "CREATE INDEX batches_unwritten ON batches(seq) WHERE written = 0 AND refused IS NULL")
        }
        // A batch's row holds only what is looked up and counted. Its file moves to a table of
        // its own, and its counts of settled and failed lines to another: beside the file
        // (megabytes, in overflow pages), every confirmation or return line rewrote the whole
        // row, settling a 10,000-line batch cost ~10,000 such rewrites, and every `status` read
        // every file to reach the columns after it. SQLite 3.35+ drops a plain column.
        m.registerMigration("payments-service-v11-batch-files") { db in
            try db.execute(
                sql: """
                    CREATE TABLE batch_files (
                        batch_id TEXT PRIMARY KEY REFERENCES batches(id),
                        content BLOB NOT NULL
                    );
                    CREATE TABLE batch_tallies (
                        batch_id TEXT PRIMARY KEY REFERENCES batches(id),
                        settled INTEGER NOT NULL DEFAULT 0,
                        failed INTEGER NOT NULL DEFAULT 0
                    ) WITHOUT ROWID;
                    INSERT INTO batch_files(batch_id, content) SELECT id, content FROM batches ORDER BY seq;
                    INSERT INTO batch_tallies(batch_id, settled, failed) SELECT id, settled, failed FROM batches;
                    ALTER TABLE batches DROP COLUMN content;
                    ALTER TABLE batches DROP COLUMN settled;
                    ALTER TABLE batches DROP COLUMN failed;
                    """)
        }
        // Payments of a state on a channel, in approval order, read through one index: a page
        // of `payment.list` (what a lessor's or agency's system pages through to confirm its
        // instructions) no longer sorts every payment of the state. It replaces the index on
        // (state, channel), which it covers.
        m.registerMigration("payments-service-v12-state-order") { db in
            try db.execute(
                sql: """
                    CREATE INDEX payments_state_seq ON payments(state, channel, approved_seq);
                    DROP INDEX payments_state;
                    """)
        }
        // A rent waiver, fee waiver or deferral revoked once the lessor or agency had it (fraud,
        // an upheld objection): its cancellation or reversal goes to them as a line of the
        // channel's next instruction file and awaits their confirmation, as the instruction did.
        // One per payment; `seq` keeps the order they were opened in.
        m.registerMigration("payments-service-v13-reversals") { db in
            try db.execute(
                sql: """
                    CREATE TABLE reversals (
                        seq INTEGER PRIMARY KEY,
                        payment_id TEXT NOT NULL UNIQUE REFERENCES payments(id),
                        channel TEXT NOT NULL,
                        action TEXT NOT NULL,
                        reason TEXT NOT NULL,
                        state TEXT NOT NULL,
                        original_batch_id TEXT,
                        batch_id TEXT,
                        deadline TEXT,
                        escalated_at TEXT,
                        method TEXT,
                        opened_at TEXT NOT NULL,
                        closed_at TEXT
                    );
                    CREATE INDEX reversals_pending ON reversals(channel, seq) WHERE state = 'pending';
                    CREATE INDEX reversals_overdue ON reversals(deadline)
                        WHERE state = 'instructed' AND deadline IS NOT NULL AND escalated_at IS NULL;
                    ALTER TABLE batches ADD COLUMN reversals INTEGER NOT NULL DEFAULT 0;
                    """)
        }
    }
}

/// A payment: one per approved entitlement (payment id = entitlement id).
public struct PaymentRecord: Sendable, Equatable {
    public var id: String
    public var policyID: String
    public var title: String?
    public var uscc: String
    public var benefit: String
    public var channel: String
    public var pool: String?
    public var amountFen: Int64
    public var priority: Bool
    public var binding: String?
    public var state: PaymentState
    public var holdCode: String?
    public var holdReason: String?
    /// Hold codes an operator released; the checks skip them from then on.
    public var clearedHolds: Set<String>
    public var batchID: String?
    public var approvedSeq: Int64
    public var payeeFingerprint: String?
    public var deadline: String?
    public var events: Int
    /// The reservation attempt (see `PaymentsEngine.reservationID`).
    public var attempt: Int
    /// Why the entitlement was revoked (or fraud found) while the payment was in the bank's
    /// hands; its settlement then opens a clawback, and a failure is not retried.
    public var revoked: String?
    /// The payee fingerprint an open `account_changed` hold is about.
    public var accountHoldFP: String?

    init(row: Row) {
        id = row["id"]
        policyID = row["policy_id"]
        title = row["title"]
        uscc = row["uscc"]
        benefit = row["benefit"]
        channel = row["channel"]
        pool = row["pool"]
        amountFen = row["amount_fen"]
        priority = (row["priority"] as Int64) != 0
        binding = row["binding"]
        state = PaymentState(rawValue: row["state"]) ?? .failed
        holdCode = row["hold_code"]
        holdReason = row["hold_reason"]
        clearedHolds = Set(((row["cleared_holds"] as String?) ?? "").split(separator: ",").map(String.init))
        batchID = row["batch_id"]
        approvedSeq = row["approved_seq"]
        payeeFingerprint = row["payee_fp"]
        deadline = row["deadline"]
        events = row["events"]
        attempt = row["attempt"] ?? 0
        revoked = row["revoked"]
        accountHoldFP = row["account_hold_fp"]
    }

    init(
        id: String, policyID: String, title: String?, uscc: String, benefit: String, channel: String, pool: String?, amountFen: Int64,
        priority: Bool, binding: String?, approvedSeq: Int64
    ) {
        self.id = id
        self.policyID = policyID
        self.title = title
        self.uscc = uscc
        self.benefit = benefit
        self.channel = channel
        self.pool = pool
        self.amountFen = amountFen
        self.priority = priority
        self.binding = binding
        self.state = .received
        self.clearedHolds = []
        self.approvedSeq = approvedSeq
        self.events = 0
        self.attempt = 0
    }

    func save(_ db: Database, now: String) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO payments(id, policy_id, title, uscc, benefit, channel, pool, amount_fen, priority, binding, state, hold_code,
                    hold_reason, cleared_holds, batch_id, approved_seq, payee_fp, deadline, events, updated_at, attempt, revoked, account_hold_fp)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(id) DO UPDATE SET state = excluded.state, hold_code = excluded.hold_code, hold_reason = excluded.hold_reason,
                    cleared_holds = excluded.cleared_holds, batch_id = excluded.batch_id, payee_fp = excluded.payee_fp,
                    deadline = excluded.deadline, events = excluded.events, updated_at = excluded.updated_at,
                    attempt = excluded.attempt, revoked = excluded.revoked, policy_id = excluded.policy_id, pool = excluded.pool,
                    amount_fen = excluded.amount_fen, priority = excluded.priority, approved_seq = excluded.approved_seq,
                    account_hold_fp = excluded.account_hold_fp, benefit = excluded.benefit, channel = excluded.channel,
                    title = excluded.title, binding = excluded.binding
                """
        ).execute(arguments: [
            id, policyID, title, uscc, benefit, channel, pool, amountFen, priority ? 1 : 0, binding, state.rawValue, holdCode, holdReason,
            clearedHolds.sorted().joined(separator: ","), batchID, approvedSeq, payeeFingerprint, deadline, events, now, attempt, revoked,
            accountHoldFP,
        ])
    }

    static func find(_ id: String, _ db: Database) throws -> PaymentRecord? {
        try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM payments WHERE id = ?"), arguments: [id]).map(PaymentRecord.init)
    }

    var json: JSON {
        var o = JSONObject()
        o["payment_id"] = .string(id)
        o["entitlement_id"] = .string(id)
        o["policy_id"] = .string(policyID)
        o["title"] = title.map { .string($0) } ?? .null
        o["uscc"] = .string(uscc)
        o["benefit"] = .string(benefit)
        o["channel"] = .string(channel)
        o["pool"] = pool.map { .string($0) } ?? .null
        o["amount_fen"] = .int(amountFen)
        o["priority"] = .bool(priority)
        o["state"] = .string(state.rawValue)
        if let holdCode { o["hold_code"] = .string(holdCode) }
        if let holdReason { o["reason"] = .string(holdReason) }
        if let batchID { o["batch_id"] = .string(batchID) }
        if let deadline { o["deadline"] = .string(deadline) }
        if let revoked { o["revoked"] = .string(revoked) }
        return .object(o)
    }
}

/// A payment's life in the router.
public enum PaymentState: String, Sendable {
    /// Approved, checks not yet passed.
    case received
    /// Held: pool short, no verified account, a fraud signal; `hold_code` says which.
    case held
    /// Checks passed and the amount reserved in the pool: waiting for the channel's next batch.
    case ready
    /// In a written batch (treasury file, lessor or agency instruction).
    case instructed
    /// The bank, lessor or agency confirmed it.
    case settled
    /// Returned or refused; the reservation is voided.
    case failed
    /// Withdrawn before money left (entitlement revoked, operator rejected the hold).
    case voided
    /// Paid, then revoked: a receivable is open.
    case clawedBack = "clawed_back"
}
