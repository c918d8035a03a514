import Foundation
import GRDB
import Models

/// Why the ledger refused an operation. Nothing is written when one is thrown.
public struct LedgerError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable, Equatable {
        /// Debiting a fund pool (an account that may not go negative) beyond its available balance.
        case insufficientFunds = "insufficient_funds"
        /// The id is taken by a transfer (or account) with other content.
        case conflict
        case unknownAccount = "unknown_account"
        /// `post` / `void` names no pending transfer.
        case unknownPending = "unknown_pending"
        /// The pending transfer was already posted or voided (by another transfer id).
        case alreadyResolved = "already_resolved"
        /// Not in 1 ... `Ledger.maxAmountFen`.
        case invalidAmount = "invalid_amount"
        case sameAccount = "same_account"
        /// An empty transfer or account id.
        case invalidID = "invalid_id"
        /// SQLite failed; the caller's transaction must be rolled back.
        case database
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}

/// The four kinds of transfer (TigerBeetle's two-phase model).
public enum TransferKind: String, Sendable, Equatable {
    /// Moves posted balances at once.
    case posted
    /// Reserves: adds to the debit account's pending debits and the credit account's pending credits.
    case pending
    /// Resolves a pending transfer by moving its amount from pending to posted.
    case post
    /// Resolves a pending transfer by releasing its reservation.
    case void
}

/// A transfer as stored: immutable once written.
public struct LedgerTransfer: Sendable, Equatable {
    /// The position in the ledger (1, 2, 3, ...).
    public var seq: Int64
    public var id: String
    public var kind: TransferKind
    public var debit: String
    public var credit: String
    public var amountFen: Int64
    /// For `post` / `void`: the pending transfer resolved.
    public var pendingID: String?
    /// The caller's reference, e.g. the payment id (`post` / `void` copy the pending transfer's).
    public var ref: String?
    public var note: String?
    /// RFC 3339, China Standard Time.
    public var at: String

    public init(
        seq: Int64, id: String, kind: TransferKind, debit: String, credit: String, amountFen: Int64, pendingID: String?, ref: String?,
        note: String?, at: String
    ) {
        self.seq = seq
        self.id = id
        self.kind = kind
        self.debit = debit
        self.credit = credit
        self.amountFen = amountFen
        self.pendingID = pendingID
        self.ref = ref
        self.note = note
        self.at = at
    }

    /// The audit chain's kind for this transfer.
    public var auditKind: String {
        switch kind {
        case .posted: "transfer"
        case .pending: "reserve"
        case .post: "post"
        case .void: "void"
        }
    }

    /// The audit chain entry of this transfer, as a `JSON` value.
    public var auditEntry: JSON {
        func opt(_ s: String?) -> JSON { s.map(JSON.string) ?? .null }
        return [
            "seq": .int(seq), "id": .string(id), "debit": .string(debit), "credit": .string(credit), "amount_fen": .int(amountFen),
            "pending_id": opt(pendingID), "ref": opt(ref), "note": opt(note),
        ]
    }

    /// `auditEntry` in canonical form, written directly (keys in sorted order) for the hot path.
    func canonicalAuditEntry() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(160 + id.utf8.count + debit.utf8.count + credit.utf8.count + (ref?.utf8.count ?? 0) + (note?.utf8.count ?? 0))
        func optional(_ s: String?) {
            if let s { JSON.writeString(s, into: &out) } else { out.append(contentsOf: "null".utf8) }
        }
        out.append(contentsOf: #"{"amount_fen":"#.utf8)
        JSON.int(amountFen).write(into: &out, sortedKeys: true)
        out.append(contentsOf: #","credit":"#.utf8)
        JSON.writeString(credit, into: &out)
        out.append(contentsOf: #","debit":"#.utf8)
        JSON.writeString(debit, into: &out)
        out.append(contentsOf: #","id":"#.utf8)
        JSON.writeString(id, into: &out)
        out.append(contentsOf: #","note":"#.utf8)
        optional(note)
        out.append(contentsOf: #","pending_id":"#.utf8)
        optional(pendingID)
        out.append(contentsOf: #","ref":"#.utf8)
        optional(ref)
        out.append(contentsOf: #","seq":"#.utf8)
        JSON.int(seq).write(into: &out, sortedKeys: true)
        out.append(UInt8(ascii: "}"))
        return out
    }
}

/// An account's counters (all Int64 fen) and the balances derived from them.
public struct AccountBalance: Sendable, Equatable {
    public var account: String
    public var kind: String
    public var mayGoNegative: Bool
    public var postedDebits: Int64
    public var postedCredits: Int64
    public var pendingDebits: Int64
    public var pendingCredits: Int64

    public init(
        account: String, kind: String, mayGoNegative: Bool, postedDebits: Int64, postedCredits: Int64, pendingDebits: Int64,
        pendingCredits: Int64
    ) {
        self.account = account
        self.kind = kind
        self.mayGoNegative = mayGoNegative
        self.postedDebits = postedDebits
        self.postedCredits = postedCredits
        self.pendingDebits = pendingDebits
        self.pendingCredits = pendingCredits
    }

    /// Posted credits − posted debits (negative for a funding source: the money it issued).
    public var posted: Int64 { postedCredits &- postedDebits }
    /// What can still be reserved or transferred out: posted − pending debits.
    public var available: Int64 { posted &- pendingDebits }
}

/// Where a pending transfer stands.
public enum PendingState: Sendable, Equatable {
    case pending
    case posted(by: String)
    case voided(by: String)
}

/// The report of `Ledger.check`.
public struct LedgerCheck: Sendable, Equatable, CustomStringConvertible {
    public var ok: Bool
    /// What is wrong, at most `Ledger.maxReportedProblems` of them (then a "… more" line).
    public var problems: [String]
    public var accounts: Int
    public var transfers: Int
    /// Pending transfers neither posted nor voided.
    public var openPending: Int
    public var totals: LedgerTotals

    public init(ok: Bool, problems: [String], accounts: Int, transfers: Int, openPending: Int, totals: LedgerTotals) {
        self.ok = ok
        self.problems = problems
        self.accounts = accounts
        self.transfers = transfers
        self.openPending = openPending
        self.totals = totals
    }

    public var description: String {
        let head =
            "\(ok ? "ok" : "NOT OK"): \(accounts) accounts, \(transfers) transfers, \(openPending) open pending; "
            + "posted debits \(totals.postedDebits) = credits \(totals.postedCredits) fen, pending debits \(totals.pendingDebits) "
            + "= credits \(totals.pendingCredits) fen, issued \(totals.issued) fen"
        return ([head] + problems).joined(separator: "\n")
    }
}

/// Sums of the stored account counters (fen).
public struct LedgerTotals: Sendable, Equatable {
    public var postedDebits: Int64 = 0
    public var postedCredits: Int64 = 0
    public var pendingDebits: Int64 = 0
    public var pendingCredits: Int64 = 0
    /// The money issued: minus the posted balances of the accounts that may go negative.
    public var issued: Int64 = 0

    public init() {}

    /// Σ posted balances over all accounts: 0 in a sound ledger.
    public var postedBalanceSum: Int64 { postedCredits &- postedDebits }
}

/// A double-entry ledger in the style of TigerBeetle (DESIGN §8): immutable transfers between
/// accounts, idempotent by transfer id, two-phase (reserve → post | void). Every function works
/// inside the caller's write transaction and never opens one; each successful transfer appends
/// its audit chain entry in that same transaction. Corrections are new reversing transfers:
/// there is no API to change or delete a transfer.
///
/// Money is Int64 fen. An account that may not go negative (a fund pool, 资金池) can never be
/// debited beyond its available balance (posted − pending debits); funding sources (central,
/// special_bond, local) may go negative, their negative balance being the money they issued.
public struct Ledger: Sendable {
    /// The largest amount of one transfer: 10^15 fen (10 trillion yuan), far above any real
    /// payment and far enough below `Int64.max` that counters cannot overflow in practice.
    public static let maxAmountFen: Int64 = 1_000_000_000_000_000
    public static let maxReportedProblems = 100

    public let clock: any WallClock
    public let audit: AuditChain

    public init(clock: any WallClock, audit: AuditChain) {
        self.clock = clock
        self.audit = audit
    }

    // MARK: - Accounts

    /// Opens an account. Idempotent: opening an existing account with the same kind and
    /// `mayGoNegative` is a no-op; with other values it throws `.conflict`.
    public func openAccount(_ db: Database, id: String, kind: String, mayGoNegative: Bool) throws {
        guard !id.isEmpty else { throw LedgerError(.invalidID, "an account id must not be empty") }
        let at = Timestamp.format(clock.now())
        try db.cachedStatement(
            sql: "INSERT INTO ledger_accounts(id, kind, may_go_negative, opened_at) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO NOTHING"
        ).execute(arguments: [id, kind, mayGoNegative, at])
        if db.changesCount == 0 {
            let existing = try balance(db, account: id)
            guard existing.kind == kind, existing.mayGoNegative == mayGoNegative else {
                throw LedgerError(
                    .conflict,
                    "account \(id) exists as kind \(existing.kind), may go negative \(existing.mayGoNegative)")
            }
            return
        }
        let entry: JSON = ["id": .string(id), "kind": .string(kind), "may_go_negative": .bool(mayGoNegative)]
        _ = try audit.append(db, kind: "account", at: at, canonicalEntry: entry.serializedBytes(sortedKeys: true))
    }

    /// An account's counters and balances; `.unknownAccount` if there is none.
    public func balance(_ db: Database, account: String) throws -> AccountBalance {
        let statement = try db.cachedStatement(
            sql: """
                SELECT kind, may_go_negative, posted_debits, posted_credits, pending_debits, pending_credits
                FROM ledger_accounts WHERE id = ?
                """)
        guard let row = try Row.fetchOne(statement, arguments: [account]) else {
            throw LedgerError(.unknownAccount, "no account \(account)")
        }
        return AccountBalance(
            account: account, kind: AuditChain.text(row, 0) ?? "", mayGoNegative: (AuditChain.int64(row, 1) ?? 0) != 0,
            postedDebits: AuditChain.int64(row, 2) ?? 0, postedCredits: AuditChain.int64(row, 3) ?? 0,
            pendingDebits: AuditChain.int64(row, 4) ?? 0, pendingCredits: AuditChain.int64(row, 5) ?? 0)
    }

    /// Every account, ordered by id.
    public func accounts(_ db: Database) throws -> [AccountBalance] {
        try Row.fetchAll(
            db,
            sql: """
                SELECT id, kind, may_go_negative, posted_debits, posted_credits, pending_debits, pending_credits
                FROM ledger_accounts ORDER BY id
                """
        ).map { row in
            AccountBalance(
                account: AuditChain.text(row, 0) ?? "", kind: AuditChain.text(row, 1) ?? "",
                mayGoNegative: (AuditChain.int64(row, 2) ?? 0) != 0, postedDebits: AuditChain.int64(row, 3) ?? 0,
                postedCredits: AuditChain.int64(row, 4) ?? 0, pendingDebits: AuditChain.int64(row, 5) ?? 0,
                pendingCredits: AuditChain.int64(row, 6) ?? 0)
        }
    }

    // MARK: - Transfers

    /// A posted transfer (moves balances at once). Idempotent by id: the same id with the same
    /// content is a no-op returning the existing transfer; with other content, `.conflict`.
    @discardableResult
    public func transfer(
        _ db: Database, id: String, debit: String, credit: String, amountFen: Int64, ref: String?, note: String?
    ) throws(LedgerError) -> LedgerTransfer {
        try guarded { try create(db, kind: .posted, id: id, debit: debit, credit: credit, amountFen: amountFen, ref: ref, note: note) }
    }

    /// A pending transfer: reserves the amount (pending debits / pending credits) without moving
    /// posted balances. Idempotent like `transfer`.
    @discardableResult
    public func reserve(
        _ db: Database, id: String, debit: String, credit: String, amountFen: Int64, ref: String?, note: String?
    ) throws(LedgerError) -> LedgerTransfer {
        try guarded { try create(db, kind: .pending, id: id, debit: debit, credit: credit, amountFen: amountFen, ref: ref, note: note) }
    }

    /// Posts a pending transfer in full. A second call with the same id is a no-op; posting a
    /// transfer already voided (or posted under another id) is `.alreadyResolved`.
    @discardableResult
    public func post(_ db: Database, id: String, pendingID: String, note: String?) throws(LedgerError) -> LedgerTransfer {
        try guarded { try resolve(db, kind: .post, id: id, pendingID: pendingID, note: note) }
    }

    /// Voids a pending transfer, releasing its reservation. A second call with the same id is a
    /// no-op; voiding a transfer already posted (or voided under another id) is `.alreadyResolved`.
    @discardableResult
    public func void(_ db: Database, id: String, pendingID: String, note: String?) throws(LedgerError) -> LedgerTransfer {
        try guarded { try resolve(db, kind: .void, id: id, pendingID: pendingID, note: note) }
    }

    /// The transfer with this id, if any.
    public func lookup(_ db: Database, id: String) throws -> LedgerTransfer? {
        let statement = try db.cachedStatement(sql: "SELECT \(Self.transferColumns) FROM ledger_transfers WHERE id = ?")
        return try Row.fetchOne(statement, arguments: [id]).flatMap(Self.decodeTransfer)
    }

    /// The transfers carrying this reference (e.g. a payment id), in ledger order.
    public func transfers(_ db: Database, ref: String) throws -> [LedgerTransfer] {
        let statement = try db.cachedStatement(sql: "SELECT \(Self.transferColumns) FROM ledger_transfers WHERE ref = ? ORDER BY seq")
        return try Row.fetchAll(statement, arguments: [ref]).compactMap(Self.decodeTransfer)
    }

    /// Whether a pending transfer is still open; nil if `pendingID` names no pending transfer.
    public func pendingState(_ db: Database, pendingID: String) throws -> PendingState? {
        guard let row = try Row.fetchOne(Self.pendingStatement(db), arguments: [pendingID]),
            AuditChain.text(row, 0) == TransferKind.pending.rawValue
        else { return nil }
        guard let by = AuditChain.text(row, 5) else { return .pending }
        return AuditChain.text(row, 6) == TransferKind.void.rawValue ? .voided(by: by) : .posted(by: by)
    }

    // MARK: - The write paths

    private func guarded<T>(_ body: () throws -> T) throws(LedgerError) -> T {
        do {
            return try body()
        } catch let error as LedgerError {
            throw error
        } catch {
            throw LedgerError(.database, String(describing: error))
        }
    }

    // The hot path runs 5 statements for a transfer or reservation (insert, debit, credit, audit
    // head, audit insert) and 6 for a post or void (plus reading the pending transfer). Failures
    // are rare, so they pay for diagnosis and undo instead of every call paying for checks first.

    private func create(
        _ db: Database, kind: TransferKind, id: String, debit: String, credit: String, amountFen: Int64, ref: String?, note: String?
    ) throws -> LedgerTransfer {
        guard !id.isEmpty else { throw LedgerError(.invalidID, "a transfer id must not be empty") }
        guard amountFen > 0, amountFen <= Self.maxAmountFen else {
            throw LedgerError(.invalidAmount, "amount \(amountFen) fen is not in 1...\(Self.maxAmountFen)")
        }
        guard debit != credit else { throw LedgerError(.sameAccount, "transfer \(id) debits and credits the same account \(debit)") }
        let at = Timestamp.format(clock.now())
        guard
            let seq = try insertTransfer(
                db, id: id, kind: kind, debit: debit, credit: credit, amountFen: amountFen, pendingID: nil, ref: ref, note: note, at: at)
        else {
            // The id is taken: a replay of the same transfer is a no-op.
            let existing = try lookup(db, id: id)
            if let existing, existing.kind == kind, existing.debit == debit, existing.credit == credit, existing.amountFen == amountFen,
                existing.pendingID == nil, existing.ref == ref, existing.note == note
            {
                return existing
            }
            throw LedgerError(
                .conflict, "transfer \(id) exists with other content (seq \(existing?.seq ?? 0), \(existing?.kind.rawValue ?? "?"))")
        }
        // The debit, guarded by the funds rule in the same statement, then the credit. (One
        // statement for both rows would be slower: SQLite runs multi-row updates in two passes.)
        let (debitColumn, creditColumn) = kind == .posted ? ("posted_debits", "posted_credits") : ("pending_debits", "pending_credits")
        try db.cachedStatement(
            sql: """
                UPDATE ledger_accounts SET \(debitColumn) = \(debitColumn) + ?1
                WHERE id = ?2 AND (may_go_negative <> 0 OR posted_credits - posted_debits - pending_debits >= ?1)
                """
        ).execute(arguments: [amountFen, debit])
        let debited = db.changesCount == 1
        if debited {
            try db.cachedStatement(sql: "UPDATE ledger_accounts SET \(creditColumn) = \(creditColumn) + ?1 WHERE id = ?2")
                .execute(arguments: [amountFen, credit])
        }
        if !debited || db.changesCount != 1 {
            // Undo what was written (a caller that catches the error may still commit), then say why.
            try db.cachedStatement(sql: "DELETE FROM ledger_transfers WHERE seq = ?").execute(arguments: [seq])
            if debited {
                try db.execute(
                    sql: "UPDATE ledger_accounts SET \(debitColumn) = \(debitColumn) - ? WHERE id = ?", arguments: [amountFen, debit])
                throw LedgerError(.unknownAccount, "no account \(credit)")
            }
            let account = try balance(db, account: debit)  // throws .unknownAccount
            throw LedgerError(.insufficientFunds, "account \(debit) has \(account.available) fen available, \(id) needs \(amountFen) fen")
        }
        let transfer = LedgerTransfer(
            seq: seq, id: id, kind: kind, debit: debit, credit: credit, amountFen: amountFen, pendingID: nil, ref: ref, note: note, at: at)
        _ = try audit.append(db, kind: transfer.auditKind, at: at, canonicalEntry: transfer.canonicalAuditEntry())
        return transfer
    }

    private func resolve(_ db: Database, kind: TransferKind, id: String, pendingID: String, note: String?) throws -> LedgerTransfer {
        guard !id.isEmpty else { throw LedgerError(.invalidID, "a transfer id must not be empty") }
        let row = try Row.fetchOne(Self.pendingStatement(db), arguments: [pendingID])
        guard let row, AuditChain.text(row, 0) == TransferKind.pending.rawValue,
            let debit = AuditChain.text(row, 1), let credit = AuditChain.text(row, 2), let amount = AuditChain.int64(row, 3),
            AuditChain.text(row, 5) == nil
        else {
            // A replay, a conflict, an unknown or an already resolved pending transfer.
            if let existing = try lookup(db, id: id) {
                if existing.kind == kind, existing.pendingID == pendingID, existing.note == note { return existing }
                throw LedgerError(.conflict, "transfer \(id) exists with other content (seq \(existing.seq), \(existing.kind.rawValue))")
            }
            guard let row, AuditChain.text(row, 0) == TransferKind.pending.rawValue else {
                throw LedgerError(.unknownPending, "no pending transfer \(pendingID)")
            }
            let how = AuditChain.text(row, 6) == TransferKind.void.rawValue ? "voided" : "posted"
            throw LedgerError(.alreadyResolved, "pending transfer \(pendingID) was already \(how) by \(AuditChain.text(row, 5) ?? "?")")
        }
        let at = Timestamp.format(clock.now())
        let ref = AuditChain.text(row, 4)
        guard
            let seq = try insertTransfer(
                db, id: id, kind: kind, debit: debit, credit: credit, amountFen: amount, pendingID: pendingID, ref: ref, note: note, at: at)
        else {
            let existing = try lookup(db, id: id)
            throw LedgerError(
                .conflict, "transfer \(id) exists with other content (seq \(existing?.seq ?? 0), \(existing?.kind.rawValue ?? "?"))")
        }
        let (debitSQL, creditSQL) =
            kind == .post
            ? (
                "UPDATE ledger_accounts SET pending_debits = pending_debits - ?1, posted_debits = posted_debits + ?1 WHERE id = ?2",
                "UPDATE ledger_accounts SET pending_credits = pending_credits - ?1, posted_credits = posted_credits + ?1 WHERE id = ?2"
            )
            : (
                "UPDATE ledger_accounts SET pending_debits = pending_debits - ?1 WHERE id = ?2",
                "UPDATE ledger_accounts SET pending_credits = pending_credits - ?1 WHERE id = ?2"
            )
        try db.cachedStatement(sql: debitSQL).execute(arguments: [amount, debit])
        try db.cachedStatement(sql: creditSQL).execute(arguments: [amount, credit])
        let transfer = LedgerTransfer(
            seq: seq, id: id, kind: kind, debit: debit, credit: credit, amountFen: amount, pendingID: pendingID, ref: ref, note: note,
            at: at)
        _ = try audit.append(db, kind: transfer.auditKind, at: at, canonicalEntry: transfer.canonicalAuditEntry())
        return transfer
    }

    /// Inserts a transfer row and returns its seq, or nil when the id is taken.
    private func insertTransfer(
        _ db: Database, id: String, kind: TransferKind, debit: String, credit: String, amountFen: Int64, pendingID: String?, ref: String?,
        note: String?, at: String
    ) throws -> Int64? {
        try db.cachedStatement(
            sql: """
                INSERT INTO ledger_transfers(id, debit_account, credit_account, amount_fen, kind, pending_id, ref, note, at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING
                """
        ).execute(arguments: [id, debit, credit, amountFen, kind.rawValue, pendingID, ref, note, at])
        return db.changesCount == 1 ? db.lastInsertedRowID : nil
    }

    static let transferColumns = "seq, id, kind, debit_account, credit_account, amount_fen, pending_id, ref, note, at"

    static func decodeTransfer(_ row: Row) -> LedgerTransfer? {
        guard let seq = AuditChain.int64(row, 0), let id = AuditChain.text(row, 1),
            let kind = AuditChain.text(row, 2).flatMap(TransferKind.init(rawValue:)), let debit = AuditChain.text(row, 3),
            let credit = AuditChain.text(row, 4), let amount = AuditChain.int64(row, 5)
        else { return nil }
        return LedgerTransfer(
            seq: seq, id: id, kind: kind, debit: debit, credit: credit, amountFen: amount, pendingID: AuditChain.text(row, 6),
            ref: AuditChain.text(row, 7), note: AuditChain.text(row, 8), at: AuditChain.text(row, 9) ?? "")
    }

    /// A transfer by id with its resolution, if any: kind, debit, credit, amount, ref, resolver id, resolver kind.
    static func pendingStatement(_ db: Database) throws -> Statement {
        try db.cachedStatement(
            sql: """
                SELECT p.kind, p.debit_account, p.credit_account, p.amount_fen, p.ref, r.id, r.kind
                FROM ledger_transfers p LEFT JOIN ledger_transfers r ON r.pending_id = p.id
                WHERE p.id = ?
                """)
    }

    // MARK: - Check

    /// Recomputes every account's counters from the transfers (in ledger order) and compares
    /// them with the stored counters; checks that posted balances sum to zero, that pending
    /// debits equal pending credits, that every post / void resolves an open pending transfer
    /// with the same accounts and amount, and that no account that may not go negative ever had
    /// a negative available balance. Never throws on a bad ledger (only on a database error):
    /// it reports the problems.
    public func check(_ db: Database) throws -> LedgerCheck {
        var problems: [String] = []
        var problemCount = 0
        func problem(_ text: @autoclosure () -> String) {
            problemCount += 1
            if problems.count < Self.maxReportedProblems { problems.append(text()) }
        }
        func add(_ a: inout Int64, _ b: Int64, _ what: @autoclosure () -> String) {
            let (sum, overflow) = a.addingReportingOverflow(b)
            if overflow { problem("\(what()) overflows Int64") }
            a = sum
        }

        struct Counters {
            var mayGoNegative: Bool
            var postedDebits: Int64 = 0
            var postedCredits: Int64 = 0
            var pendingDebits: Int64 = 0
            var pendingCredits: Int64 = 0
            var available: Int64 { postedCredits &- postedDebits &- pendingDebits }
        }
        let stored = try accounts(db)
        var recomputed: [String: Counters] = [:]
        recomputed.reserveCapacity(stored.count)
        for account in stored { recomputed[account.account] = Counters(mayGoNegative: account.mayGoNegative) }

        struct Open {
            var debit: String
            var credit: String
            var amount: Int64
        }
        var open: [String: Open] = [:]
        var resolved: Set<String> = []
        var transfers = 0
        let rows = try Row.fetchCursor(db, sql: "SELECT \(Self.transferColumns) FROM ledger_transfers ORDER BY seq")
        while let row = try rows.next() {
            transfers += 1
            guard let t = Self.decodeTransfer(row) else {
                problem("transfer at seq \(AuditChain.int64(row, 0).map(String.init) ?? "?") cannot be read (a column has a wrong type)")
                continue
            }
            let name = "transfer \(t.id) (seq \(t.seq))"
            if t.amountFen <= 0 || t.amountFen > Self.maxAmountFen { problem("\(name) has amount \(t.amountFen) fen") }
            if t.debit == t.credit { problem("\(name) debits and credits the same account") }
            guard recomputed[t.debit] != nil, recomputed[t.credit] != nil else {
                problem("\(name) names an unknown account")
                continue
            }
            let a = t.amountFen
            switch t.kind {
            case .posted, .pending:
                if t.pendingID != nil { problem("\(name) is \(t.kind.rawValue) but has a pending_id") }
                if t.kind == .posted {
                    add(&recomputed[t.debit]!.postedDebits, a, "\(t.debit) posted debits at \(name)")
                    add(&recomputed[t.credit]!.postedCredits, a, "\(t.credit) posted credits at \(name)")
                } else {
                    add(&recomputed[t.debit]!.pendingDebits, a, "\(t.debit) pending debits at \(name)")
                    add(&recomputed[t.credit]!.pendingCredits, a, "\(t.credit) pending credits at \(name)")
                    if open[t.id] != nil || resolved.contains(t.id) { problem("\(name) repeats a pending id") }
                    open[t.id] = Open(debit: t.debit, credit: t.credit, amount: a)
                }
                let debited = recomputed[t.debit]!
                if !debited.mayGoNegative, debited.available < 0 {
                    problem("account \(t.debit) may not go negative but had \(debited.available) fen available after \(name)")
                }
            case .post, .void:
                guard let pendingID = t.pendingID, let pending = open.removeValue(forKey: pendingID) else {
                    problem("\(name) resolves \(t.pendingID ?? "nothing"), which is not an open pending transfer before it")
                    continue
                }
                resolved.insert(pendingID)
                if pending.debit != t.debit || pending.credit != t.credit || pending.amount != a {
                    problem("\(name) differs from its pending transfer \(pendingID) in accounts or amount")
                }
                add(&recomputed[pending.debit]!.pendingDebits, -pending.amount, "\(pending.debit) pending debits at \(name)")
                add(&recomputed[pending.credit]!.pendingCredits, -pending.amount, "\(pending.credit) pending credits at \(name)")
                if t.kind == .post {
                    add(&recomputed[pending.debit]!.postedDebits, pending.amount, "\(pending.debit) posted debits at \(name)")
                    add(&recomputed[pending.credit]!.postedCredits, pending.amount, "\(pending.credit) posted credits at \(name)")
                }
            }
        }

        var totals = LedgerTotals()
        for account in stored {
            let r = recomputed[account.account]!
            let id = account.account
            if r.postedDebits != account.postedDebits || r.postedCredits != account.postedCredits
                || r.pendingDebits != account.pendingDebits || r.pendingCredits != account.pendingCredits
            {
                problem(
                    "account \(id) stores posted \(account.postedDebits)/\(account.postedCredits) pending "
                        + "\(account.pendingDebits)/\(account.pendingCredits) (debits/credits) but its transfers give posted "
                        + "\(r.postedDebits)/\(r.postedCredits) pending \(r.pendingDebits)/\(r.pendingCredits)")
            }
            if !account.mayGoNegative, account.available < 0 {
                problem("account \(id) may not go negative but has \(account.available) fen available")
            }
            add(&totals.postedDebits, account.postedDebits, "the total of posted debits")
            add(&totals.postedCredits, account.postedCredits, "the total of posted credits")
            add(&totals.pendingDebits, account.pendingDebits, "the total of pending debits")
            add(&totals.pendingCredits, account.pendingCredits, "the total of pending credits")
            if account.mayGoNegative { add(&totals.issued, -account.posted, "the money issued") }
        }
        if totals.postedBalanceSum != 0 {
            problem("posted balances sum to \(totals.postedBalanceSum) fen, not 0")
        }
        if totals.pendingDebits != totals.pendingCredits {
            problem("pending debits total \(totals.pendingDebits) fen but pending credits \(totals.pendingCredits) fen")
        }
        if problemCount > problems.count { problems.append("… and \(problemCount - problems.count) more problems") }
        return LedgerCheck(
            ok: problemCount == 0, problems: problems, accounts: stored.count, transfers: transfers, openPending: open.count,
            totals: totals)
    }
}

// MARK: - Benchmark

/// Measures the ledger's hot path (DESIGN §8): N payments, each a reserve and a post with their
/// two audit links, in transactions of 1,000 payments on a temporary file `DatabasePool` (WAL,
/// `synchronous=FULL`); then plain INSERTs of the very same rows into a fresh database with the
/// same schema, for the ratio of ledger work to SQLite's own cost. Called by the bench executable.
public enum LedgerBenchmark {
    public struct Figures: Sendable, CustomStringConvertible {
        public var payments: Int
        public var batchSize: Int
        public var ledgerSeconds: Double
        public var paymentsPerSecond: Double
        /// The same 2 transfer rows + 2 audit rows per payment, as plain prepared INSERTs.
        public var rawSeconds: Double
        public var rawPaymentsPerSecond: Double
        /// ledger time ÷ raw insert time.
        public var ratio: Double
        public var checkSeconds: Double
        public var verifySeconds: Double
        public var checkOK: Bool
        public var verifyOK: Bool

        public var description: String {
            func f(_ v: Double, _ digits: Int = 0) -> String { String(format: "%.\(digits)f", v) }
            return """
                ledger: \(payments) payments (reserve + post + 2 audit links) in batches of \(batchSize): \
                \(f(ledgerSeconds, 3)) s, \(f(paymentsPerSecond)) payments/s
                raw inserts of the same rows: \(f(rawSeconds, 3)) s, \(f(rawPaymentsPerSecond)) payments/s; \
                ledger/raw time ratio \(f(ratio, 2))
                check: \(f(checkSeconds, 3)) s (ok: \(checkOK)); audit verify: \(f(verifySeconds, 3)) s (ok: \(verifyOK))
                """
        }
    }

    public static func run(transfers payments: Int, batchSize: Int = 1000, directory: String? = nil) throws -> Figures {
        let base = directory ?? NSTemporaryDirectory()
        let dir = (base as NSString).appendingPathComponent("ledger-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }

        var config = Configuration()
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            try db.execute(sql: "PRAGMA cache_size = -65536")
        }
        let amount: Int64 = 500_000
        let merchants = 1000
        let clock = SystemClock()
        let ledger = Ledger(clock: clock, audit: AuditChain(clock: clock))

        var ledgerSeconds = 0.0
        var checkSeconds = 0.0
        var verifySeconds = 0.0
        var checkOK = false
        var verifyOK = false
        var transferRows: [Row] = []
        var auditRows: [Row] = []
        do {
            let pool = try DatabasePool(path: (dir as NSString).appendingPathComponent("ledger.sqlite"), configuration: config)
            var migrator = DatabaseMigrator()
            PaymentsSchema.register(&migrator)
            try migrator.migrate(pool)
            try pool.write { db in
                try ledger.openAccount(db, id: "central", kind: "central", mayGoNegative: true)
                try ledger.openAccount(db, id: "pool:bench", kind: "pool", mayGoNegative: false)
                for m in 0..<merchants { try ledger.openAccount(db, id: "merchant:\(m)", kind: "merchant", mayGoNegative: true) }
                try ledger.transfer(
                    db, id: "fund:bench", debit: "central", credit: "pool:bench", amountFen: amount * Int64(payments), ref: nil,
                    note: "funding")
            }
            let start = DispatchTime.now()
            var i = 0
            while i < payments {
                let end = min(i + batchSize, payments)
                try pool.write { db in
                    for p in i..<end {
                        let payment = "pay:\(p)"
                        try ledger.reserve(
                            db, id: "reserve:\(p)", debit: "pool:bench", credit: "merchant:\(p % merchants)", amountFen: amount,
                            ref: payment, note: nil)
                        try ledger.post(db, id: "post:\(p)", pendingID: "reserve:\(p)", note: nil)
                    }
                }
                i = end
            }
            ledgerSeconds = seconds(since: start)
            try pool.read { db in
                let c0 = DispatchTime.now()
                checkOK = try ledger.check(db).ok
                checkSeconds = seconds(since: c0)
                let v0 = DispatchTime.now()
                verifyOK = try AuditChain(clock: clock).verify(db).ok
                verifySeconds = seconds(since: v0)
                transferRows = try Row.fetchAll(
                    db, sql: "SELECT \(Ledger.transferColumns) FROM ledger_transfers WHERE ref IS NOT NULL ORDER BY seq")
                auditRows = try Row.fetchAll(
                    db, sql: "SELECT seq, at, kind, entry, prev_hash, hash FROM audit_chain WHERE kind IN ('reserve', 'post') ORDER BY seq")
            }
            try pool.close()
        }

        // The same rows, inserted with plain prepared statements.
        let raw = try DatabasePool(path: (dir as NSString).appendingPathComponent("raw.sqlite"), configuration: config)
        var migrator = DatabaseMigrator()
        PaymentsSchema.register(&migrator)
        try migrator.migrate(raw)
        let rowsPerBatch = batchSize * 2
        let rawStart = DispatchTime.now()
        var k = 0
        while k < transferRows.count {
            let end = min(k + rowsPerBatch, transferRows.count)
            try raw.write { db in
                let insertTransfer = try db.cachedStatement(
                    sql: "INSERT INTO ledger_transfers(\(Ledger.transferColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
                let insertAudit = try db.cachedStatement(
                    sql: "INSERT INTO audit_chain(seq, at, kind, entry, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?)")
                for r in k..<end {
                    try insertTransfer.execute(arguments: StatementArguments(transferRows[r].databaseValues))
                    try insertAudit.execute(arguments: StatementArguments(auditRows[r].databaseValues))
                }
            }
            k = end
        }
        let rawSeconds = seconds(since: rawStart)
        try raw.close()

        return Figures(
            payments: payments, batchSize: batchSize, ledgerSeconds: ledgerSeconds,
            paymentsPerSecond: Double(payments) / ledgerSeconds, rawSeconds: rawSeconds,
            rawPaymentsPerSecond: Double(payments) / rawSeconds, ratio: ledgerSeconds / rawSeconds, checkSeconds: checkSeconds,
            verifySeconds: verifySeconds, checkOK: checkOK, verifyOK: verifyOK)
    }

    private static func seconds(since start: DispatchTime) -> Double {
        Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
    }
}
