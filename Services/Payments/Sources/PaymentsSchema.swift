import GRDB

/// The ledger's and the audit chain's tables (DESIGN §8), registered by the payments service
/// beside its own. Migrations are append-only: never edit one that has been released; add a new one.
///
/// - `ledger_accounts`: one row per account, with its four counters kept incrementally by
///   `Ledger` (all Int64 fen). `may_go_negative` is 0 for a fund pool (资金池) and 1 for a
///   funding source (central, special_bond, local), whose negative balance is the money issued.
/// - `ledger_transfers`: immutable, append-only. `seq` (the rowid) is the order of the ledger;
///   `id` is the caller's idempotency key. `kind` is `posted` (moves posted balances at once),
///   `pending` (reserves), `post` / `void` (resolve the pending transfer named by `pending_id`;
///   at most one of them per pending transfer, enforced by a unique index).
/// - `audit_chain`: the hash chain of `AuditChain`; `entry` is canonical JSON.
public enum PaymentsSchema {
    public static func register(_ m: inout DatabaseMigrator) {
        m.registerMigration("payments-v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE ledger_accounts (
                        id TEXT PRIMARY KEY,
                        kind TEXT NOT NULL,
                        may_go_negative INTEGER NOT NULL,
                        posted_debits INTEGER NOT NULL DEFAULT 0,
                        posted_credits INTEGER NOT NULL DEFAULT 0,
                        pending_debits INTEGER NOT NULL DEFAULT 0,
                        pending_credits INTEGER NOT NULL DEFAULT 0,
                        opened_at TEXT NOT NULL
                    ) WITHOUT ROWID;
                    CREATE TABLE ledger_transfers (
                        seq INTEGER PRIMARY KEY,
                        id TEXT NOT NULL UNIQUE,
                        debit_account TEXT NOT NULL,
                        credit_account TEXT NOT NULL,
                        amount_fen INTEGER NOT NULL,
                        kind TEXT NOT NULL CHECK (kind IN ('posted', 'pending', 'post', 'void')),
                        pending_id TEXT,
                        ref TEXT,
                        note TEXT,
                        at TEXT NOT NULL
                    );
                    CREATE UNIQUE INDEX ledger_transfers_resolution ON ledger_transfers(pending_id) WHERE pending_id IS NOT NULL;
                    CREATE INDEX ledger_transfers_ref ON ledger_transfers(ref) WHERE ref IS NOT NULL;
                    CREATE TABLE audit_chain (
                        seq INTEGER PRIMARY KEY,
                        at TEXT NOT NULL,
                        kind TEXT NOT NULL,
                        entry BLOB NOT NULL,
                        prev_hash TEXT NOT NULL,
                        hash TEXT NOT NULL
                    );
                    """)
        }
    }
}
