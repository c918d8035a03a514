import Foundation
import GRDB
import Synchronization
import Testing

@testable import Models
@testable import Payments

/// A fresh database with the payments schema: in memory, or a file `DatabasePool` (WAL,
/// synchronous=FULL) in a temporary directory removed with the fixture.
final class LedgerFixture: Sendable {
    let writer: any DatabaseWriter
    let directory: String?
    let clock = TestClock(rfc3339: "2026-11-29T10:00:00+08:00")

    init(file: Bool = false) throws {
        var config = Configuration()
        config.busyMode = .timeout(30)
        config.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        if file {
            let dir = (NSTemporaryDirectory() as NSString).appendingPathComponent("ledger-test-\(UUID().uuidString)")
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            directory = dir
            writer = try DatabasePool(path: (dir as NSString).appendingPathComponent("payments.sqlite"), configuration: config)
        } else {
            directory = nil
            writer = try DatabaseQueue(configuration: config)
        }
        var migrator = DatabaseMigrator()
        PaymentsSchema.register(&migrator)
        try migrator.migrate(writer)
    }

    deinit {
        try? (writer as? DatabasePool)?.close()
        if let directory { try? FileManager.default.removeItem(atPath: directory) }
    }

    var ledger: Ledger { Ledger(clock: clock, audit: AuditChain(clock: clock)) }
    var audit: AuditChain { AuditChain(clock: clock) }

    /// Opens the funding source `central` and a pool holding `fen`.
    func fundPool(_ db: Database, pool: String = "pool", fen: Int64) throws {
        try ledger.openAccount(db, id: "central", kind: "central", mayGoNegative: true)
        try ledger.openAccount(db, id: pool, kind: "pool", mayGoNegative: false)
        try ledger.transfer(db, id: "fund:\(pool)", debit: "central", credit: pool, amountFen: fen, ref: nil, note: "pool.funded")
    }

    func counts(_ db: Database) throws -> (transfers: Int, audit: Int) {
        (
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM ledger_transfers") ?? -1,
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM audit_chain") ?? -1
        )
    }
}

/// The error code a ledger call throws, or nil when it succeeds.
/// (Any other error is a test failure, reported as `.database`.)
func outcome(_ body: () throws -> Void) -> LedgerError.Code? {
    do {
        try body()
        return nil
    } catch let error as LedgerError {
        return error.code
    } catch {
        Issue.record(error)
        return .database
    }
}

@Suite struct LedgerTests {
    @Test func openAccountIsIdempotentAndRefusesOtherContent() throws {
        let f = try LedgerFixture()
        try f.writer.write { db in
            try f.ledger.openAccount(db, id: "pool", kind: "pool", mayGoNegative: false)
            try f.ledger.openAccount(db, id: "pool", kind: "pool", mayGoNegative: false)
            #expect(try f.counts(db).audit == 1)
            #expect(throws: LedgerError.self) { try f.ledger.openAccount(db, id: "pool", kind: "pool", mayGoNegative: true) }
            #expect(throws: LedgerError.self) { try f.ledger.openAccount(db, id: "pool", kind: "central", mayGoNegative: false) }
            #expect(throws: LedgerError.self) { try f.ledger.openAccount(db, id: "", kind: "pool", mayGoNegative: false) }
            let b = try f.ledger.balance(db, account: "pool")
            #expect(
                b
                    == AccountBalance(
                        account: "pool", kind: "pool", mayGoNegative: false, postedDebits: 0, postedCredits: 0, pendingDebits: 0,
                        pendingCredits: 0))
            #expect(throws: LedgerError(.unknownAccount, "no account nope")) { try f.ledger.balance(db, account: "nope") }
        }
    }

    @Test func aPostedTransferMovesBalancesAtOnce() throws {
        let f = try LedgerFixture()
        try f.writer.write { db in
            try f.fundPool(db, fen: 1_000_000)
            try f.ledger.openAccount(db, id: "m1", kind: "merchant", mayGoNegative: false)
            let t = try f.ledger.transfer(db, id: "t1", debit: "pool", credit: "m1", amountFen: 250_000, ref: "pay-1", note: "rent")
            #expect(t.kind == .posted && t.seq == 2 && t.amountFen == 250_000 && t.ref == "pay-1" && t.note == "rent")
            #expect(t.at == "2026-11-29T10:00:00.000+08:00")
            let central = try f.ledger.balance(db, account: "central")
            let pool = try f.ledger.balance(db, account: "pool")
            let m1 = try f.ledger.balance(db, account: "m1")
            #expect(central.posted == -1_000_000 && central.available == -1_000_000)
            #expect(pool.posted == 750_000 && pool.available == 750_000 && pool.postedDebits == 250_000 && pool.postedCredits == 1_000_000)
            #expect(m1.posted == 250_000 && m1.pendingCredits == 0)
            #expect(try f.ledger.lookup(db, id: "t1") == t)
            #expect(try f.ledger.transfers(db, ref: "pay-1") == [t])
            let check = try f.ledger.check(db)
            #expect(check.ok, "\(check.problems)")
            #expect(check.accounts == 3 && check.transfers == 2 && check.totals.issued == 1_000_000 && check.totals.postedBalanceSum == 0)
        }
    }

    @Test(arguments: [TransferKind.posted, .pending])
    func aPoolCannotBeOverdrawn(kind: TransferKind) throws {
        let f = try LedgerFixture()
        try f.writer.write { db in
            try f.fundPool(db, fen: 10_000)
            try f.ledger.openAccount(db, id: "m1", kind: "merchant", mayGoNegative: false)
            try f.ledger.openAccount(db, id: "m2", kind: "merchant", mayGoNegative: false)
            func move(_ id: String, _ credit: String, _ fen: Int64) throws(LedgerError) {
                if kind == .posted {
                    try f.ledger.transfer(db, id: id, debit: "pool", credit: credit, amountFen: fen, ref: nil, note: nil)
                } else {
                    try f.ledger.reserve(db, id: id, debit: "pool", credit: credit, amountFen: fen, ref: nil, note: nil)
                }
            }
            try move("a", "m1", 6_000)
            let before = try f.counts(db)
            let poolBefore = try f.ledger.balance(db, account: "pool")
            let m2Before = try f.ledger.balance(db, account: "m2")
            // One fen more than available: refused, and nothing is written.
            #expect(outcome { try move("b", "m2", 4_001) } == .insufficientFunds)
            #expect(try f.counts(db) == before)
            #expect(try f.ledger.balance(db, account: "pool") == poolBefore)
            #expect(try f.ledger.balance(db, account: "m2") == m2Before)
            #expect(try f.ledger.lookup(db, id: "b") == nil)
            // Exactly down to zero works.
            try move("c", "m2", 4_000)
            #expect(try f.ledger.balance(db, account: "pool").available == 0)
            #expect(outcome { try move("d", "m2", 1) } == .insufficientFunds)
            #expect(try f.ledger.check(db).ok)
        }
    }

    @Test func pendingReservationsCountAgainstAvailableForBothKinds() throws {
        let f = try LedgerFixture()
        try f.writer.write { db in
            try f.fundPool(db, fen: 1_000)
            try f.ledger.openAccount(db, id: "m", kind: "merchant", mayGoNegative: false)
            try f.ledger.reserve(db, id: "r", debit: "pool", credit: "m", amountFen: 700, ref: nil, note: nil)
            #expect(
                outcome { try f.ledger.transfer(db, id: "t", debit: "pool", credit: "m", amountFen: 301, ref: nil, note: nil) }
                    == .insufficientFunds)
            try f.ledger.transfer(db, id: "t", debit: "pool", credit: "m", amountFen: 300, ref: nil, note: nil)
            // A merchant account that may not go negative cannot pass on money it only has pending.
            try f.ledger.openAccount(db, id: "m2", kind: "merchant", mayGoNegative: false)
            #expect(
                outcome { try f.ledger.transfer(db, id: "x", debit: "m", credit: "m2", amountFen: 301, ref: nil, note: nil) }
                    == .insufficientFunds)
            try f.ledger.transfer(db, id: "x", debit: "m", credit: "m2", amountFen: 300, ref: nil, note: "reversal")
        }
    }

    @Test func twoPhaseReservePostAndVoid() throws {
        let f = try LedgerFixture()
        try f.writer.write { db in
            try f.fundPool(db, fen: 100_000)
            try f.ledger.openAccount(db, id: "m1", kind: "merchant", mayGoNegative: false)
            let r1 = try f.ledger.reserve(db, id: "r1", debit: "pool", credit: "m1", amountFen: 30_000, ref: "pay-1", note: nil)
            try f.ledger.reserve(db, id: "r2", debit: "pool", credit: "m1", amountFen: 20_000, ref: "pay-2", note: nil)
            var pool = try f.ledger.balance(db, account: "pool")
            var m1 = try f.ledger.balance(db, account: "m1")
            #expect(pool.posted == 100_000 && pool.pendingDebits == 50_000 && pool.available == 50_000)
            #expect(m1.posted == 0 && m1.pendingCredits == 50_000 && m1.available == 0)
            #expect(try f.ledger.pendingState(db, pendingID: "r1") == .pending)

            let p1 = try f.ledger.post(db, id: "p1", pendingID: "r1", note: "settled")
            #expect(p1.kind == .post && p1.debit == "pool" && p1.credit == "m1" && p1.amountFen == 30_000 && p1.ref == "pay-1")
            pool = try f.ledger.balance(db, account: "pool")
            m1 = try f.ledger.balance(db, account: "m1")
            #expect(pool.posted == 70_000 && pool.pendingDebits == 20_000 && pool.available == 50_000)
            #expect(m1.posted == 30_000 && m1.pendingCredits == 20_000)
            #expect(try f.ledger.pendingState(db, pendingID: "r1") == .posted(by: "p1"))

            try f.ledger.void(db, id: "v2", pendingID: "r2", note: "bank return")
            pool = try f.ledger.balance(db, account: "pool")
            m1 = try f.ledger.balance(db, account: "m1")
            #expect(pool.posted == 70_000 && pool.pendingDebits == 0 && pool.available == 70_000)
            #expect(m1.posted == 30_000 && m1.pendingCredits == 0)
            #expect(try f.ledger.pendingState(db, pendingID: "r2") == .voided(by: "v2"))
            #expect(try f.ledger.pendingState(db, pendingID: "nope") == nil)
            #expect(try f.ledger.transfers(db, ref: "pay-1").map(\.id) == [r1.id, "p1"])
            let check = try f.ledger.check(db)
            #expect(check.ok && check.openPending == 0, "\(check.problems)")
            #expect(try f.audit.verify(db).ok)
        }
    }

    @Test func postAndVoidResolveOnce() throws {
        let f = try LedgerFixture()
        try f.writer.write { db in
            try f.fundPool(db, fen: 100_000)
            try f.ledger.openAccount(db, id: "m1", kind: "merchant", mayGoNegative: false)
            try f.ledger.reserve(db, id: "r1", debit: "pool", credit: "m1", amountFen: 10_000, ref: nil, note: nil)
            try f.ledger.reserve(db, id: "r2", debit: "pool", credit: "m1", amountFen: 10_000, ref: nil, note: nil)
            let p1 = try f.ledger.post(db, id: "p1", pendingID: "r1", note: nil)
            let before = try f.counts(db)
            // The same post again: a no-op returning the first.
            #expect(try f.ledger.post(db, id: "p1", pendingID: "r1", note: nil) == p1)
            #expect(try f.counts(db) == before)
            #expect(outcome { try f.ledger.void(db, id: "v1", pendingID: "r1", note: nil) } == .alreadyResolved)
            #expect(outcome { try f.ledger.post(db, id: "p1-again", pendingID: "r1", note: nil) } == .alreadyResolved)
            try f.ledger.void(db, id: "v2", pendingID: "r2", note: nil)
            try f.ledger.void(db, id: "v2", pendingID: "r2", note: nil)
            #expect(outcome { try f.ledger.post(db, id: "p2", pendingID: "r2", note: nil) } == .alreadyResolved)
            // The same id with other content.
            #expect(outcome { try f.ledger.void(db, id: "p1", pendingID: "r1", note: nil) } == .conflict)
            #expect(outcome { try f.ledger.post(db, id: "p1", pendingID: "r1", note: "other") } == .conflict)
            #expect(outcome { try f.ledger.post(db, id: "p1", pendingID: "r2", note: nil) } == .conflict)
            // Only pending transfers can be resolved.
            #expect(outcome { try f.ledger.post(db, id: "p3", pendingID: "nope", note: nil) } == .unknownPending)
            #expect(outcome { try f.ledger.post(db, id: "p4", pendingID: "fund:pool", note: nil) } == .unknownPending)
            #expect(outcome { try f.ledger.void(db, id: "p5", pendingID: "p1", note: nil) } == .unknownPending)
            #expect(outcome { try f.ledger.post(db, id: "", pendingID: "r1", note: nil) } == .invalidID)
            #expect(try f.counts(db).transfers == before.transfers + 1)
            #expect(try f.ledger.check(db).ok)
        }
    }

    @Test func transfersAreIdempotentByIDAndConflictOnOtherContent() throws {
        let f = try LedgerFixture()
        try f.writer.write { db in
            try f.fundPool(db, fen: 100_000)
            try f.ledger.openAccount(db, id: "m1", kind: "merchant", mayGoNegative: false)
            try f.ledger.openAccount(db, id: "m2", kind: "merchant", mayGoNegative: false)
            let t = try f.ledger.transfer(db, id: "t", debit: "pool", credit: "m1", amountFen: 60_000, ref: "pay", note: "n")
            let r = try f.ledger.reserve(db, id: "r", debit: "pool", credit: "m1", amountFen: 40_000, ref: nil, note: nil)
            let before = try f.counts(db)
            let pool = try f.ledger.balance(db, account: "pool")
            // Replays succeed even though the pool is now empty, and write nothing.
            #expect(try f.ledger.transfer(db, id: "t", debit: "pool", credit: "m1", amountFen: 60_000, ref: "pay", note: "n") == t)
            #expect(try f.ledger.reserve(db, id: "r", debit: "pool", credit: "m1", amountFen: 40_000, ref: nil, note: nil) == r)
            #expect(try f.counts(db) == before)
            #expect(try f.ledger.balance(db, account: "pool") == pool)
            let conflicts: [() throws -> Void] = [
                { try f.ledger.transfer(db, id: "t", debit: "pool", credit: "m1", amountFen: 60_001, ref: "pay", note: "n") },
                { try f.ledger.transfer(db, id: "t", debit: "pool", credit: "m2", amountFen: 60_000, ref: "pay", note: "n") },
                { try f.ledger.transfer(db, id: "t", debit: "central", credit: "m1", amountFen: 60_000, ref: "pay", note: "n") },
                { try f.ledger.transfer(db, id: "t", debit: "pool", credit: "m1", amountFen: 60_000, ref: nil, note: "n") },
                { try f.ledger.transfer(db, id: "t", debit: "pool", credit: "m1", amountFen: 60_000, ref: "pay", note: nil) },
                { try f.ledger.reserve(db, id: "t", debit: "pool", credit: "m1", amountFen: 60_000, ref: "pay", note: "n") },
                { try f.ledger.transfer(db, id: "r", debit: "pool", credit: "m1", amountFen: 40_000, ref: nil, note: nil) },
                { try f.ledger.post(db, id: "r", pendingID: "r", note: nil) },
            ]
            for (i, call) in conflicts.enumerated() {
                #expect(outcome(call) == .conflict, "case \(i)")
            }
            #expect(try f.counts(db) == before)
            #expect(try f.ledger.balance(db, account: "pool") == pool)
        }
    }

    @Test func invalidTransfersWriteNothing() throws {
        let f = try LedgerFixture()
        try f.writer.write { db in
            try f.fundPool(db, fen: 100_000)
            try f.ledger.openAccount(db, id: "m1", kind: "merchant", mayGoNegative: false)
            let before = try f.counts(db)
            let balances = try f.ledger.accounts(db)
            let cases: [(LedgerError.Code, () throws -> Void)] = [
                (.invalidAmount, { try f.ledger.transfer(db, id: "a", debit: "pool", credit: "m1", amountFen: 0, ref: nil, note: nil) }),
                (.invalidAmount, { try f.ledger.reserve(db, id: "a", debit: "pool", credit: "m1", amountFen: -5, ref: nil, note: nil) }),
                (
                    .invalidAmount,
                    {
                        try f.ledger.transfer(
                            db, id: "a", debit: "central", credit: "m1", amountFen: Ledger.maxAmountFen + 1, ref: nil, note: nil)
                    }
                ),
                (.sameAccount, { try f.ledger.transfer(db, id: "a", debit: "pool", credit: "pool", amountFen: 1, ref: nil, note: nil) }),
                (.unknownAccount, { try f.ledger.transfer(db, id: "a", debit: "nope", credit: "m1", amountFen: 1, ref: nil, note: nil) }),
                // The debit is applied first and must be undone when the credit account is unknown.
                (.unknownAccount, { try f.ledger.transfer(db, id: "a", debit: "pool", credit: "nope", amountFen: 1, ref: nil, note: nil) }),
                (
                    .unknownAccount,
                    { try f.ledger.reserve(db, id: "a", debit: "central", credit: "nope", amountFen: 1, ref: nil, note: nil) }
                ),
                (.invalidID, { try f.ledger.transfer(db, id: "", debit: "pool", credit: "m1", amountFen: 1, ref: nil, note: nil) }),
            ]
            for (i, (code, call)) in cases.enumerated() {
                #expect(outcome(call) == code, "case \(i)")
            }
            #expect(try f.counts(db) == before)
            #expect(try f.ledger.accounts(db) == balances)
            #expect(try f.ledger.check(db).ok)
        }
    }

    @Test func aFailureCaughtInsideTheCallersTransactionLeavesItConsistent() throws {
        let f = try LedgerFixture(file: true)
        try f.writer.write { db in try f.fundPool(db, fen: 500) }
        try f.writer.write { db in
            try f.ledger.openAccount(db, id: "m", kind: "merchant", mayGoNegative: false)
            try f.ledger.reserve(db, id: "r1", debit: "pool", credit: "m", amountFen: 400, ref: nil, note: nil)
            #expect(
                outcome { try f.ledger.reserve(db, id: "r2", debit: "pool", credit: "m", amountFen: 101, ref: nil, note: nil) }
                    == .insufficientFunds)
            #expect(
                outcome { try f.ledger.reserve(db, id: "r3", debit: "pool", credit: "x", amountFen: 50, ref: nil, note: nil) }
                    == .unknownAccount)
        }
        try f.writer.read { db in
            let pool = try f.ledger.balance(db, account: "pool")
            #expect(pool.pendingDebits == 400 && pool.available == 100)
            #expect(try f.ledger.check(db).ok)
            #expect(try f.audit.verify(db).ok)
        }
    }

    @Test func everyOperationAppendsItsAuditEntryInCanonicalForm() throws {
        let f = try LedgerFixture()
        try f.writer.write { db in
            try f.fundPool(db, fen: 100_000)
            try f.ledger.openAccount(db, id: "商户\"1\"", kind: "merchant", mayGoNegative: false)
            try f.ledger.reserve(db, id: "r1", debit: "pool", credit: "商户\"1\"", amountFen: 1_000, ref: "pay\\1", note: "line\nbreak")
            try f.ledger.post(db, id: "p1", pendingID: "r1", note: nil)
            try f.ledger.reserve(db, id: "r2", debit: "pool", credit: "商户\"1\"", amountFen: 2_000, ref: nil, note: nil)
            try f.ledger.void(db, id: "v2", pendingID: "r2", note: "返回")
            let rows = try Row.fetchAll(db, sql: "SELECT seq, kind, entry FROM audit_chain ORDER BY seq")
            #expect(
                rows.map { $0["kind"] as String } == ["account", "account", "transfer", "account", "reserve", "post", "reserve", "void"])
            let transfers = try Row.fetchAll(db, sql: "SELECT id FROM ledger_transfers ORDER BY seq").map {
                try f.ledger.lookup(db, id: $0[0])!
            }
            let ledgerRows = rows.filter { ($0["kind"] as String) != "account" }
            #expect(ledgerRows.count == transfers.count)
            for (row, t) in zip(ledgerRows, transfers) {
                let stored = [UInt8](row["entry"] as Data)
                #expect(stored == t.auditEntry.serializedBytes(sortedKeys: true))
                #expect(stored == t.canonicalAuditEntry())
                #expect(try JSONParser.parse(stored) == t.auditEntry)
                #expect(row["kind"] as String == t.auditKind)
            }
            let post = try JSONParser.parse([UInt8](ledgerRows[2]["entry"] as Data))
            #expect(post["pending_id"] == "r1" && post["amount_fen"] == 1_000 && post["ref"] == "pay\\1" && post["note"] == .null)
            #expect(
                try f.audit.verify(db)
                    == AuditVerification(ok: true, entries: 8, firstBroken: nil, reason: nil, headHash: try f.audit.head(db)!.hash))
        }
    }

    /// Property: random transfers, reservations, posts, voids and replays, checked against a model.
    @Test(arguments: [1, 2, 3, 42, 20_261_129] as [UInt64])
    func randomOperationsKeepTheLedgerBalanced(seed: UInt64) throws {
        let f = try LedgerFixture()
        var rng = SplitMix64(seed: seed)
        struct Model {
            var mayGoNegative: Bool
            var postedDebits: Int64 = 0
            var postedCredits: Int64 = 0
            var pendingDebits: Int64 = 0
            var pendingCredits: Int64 = 0
            var available: Int64 { postedCredits - postedDebits - pendingDebits }
        }
        var model: [String: Model] = [:]
        let sources = ["central", "special_bond", "local"]
        let pools = ["pool:a", "pool:b", "pool:c"]
        let merchants = (0..<10).map { "merchant:\($0)" }
        let all = sources + pools + merchants
        try f.writer.write { db in
            for a in all {
                let mayGoNegative = sources.contains(a)
                try f.ledger.openAccount(db, id: a, kind: String(a.split(separator: ":")[0]), mayGoNegative: mayGoNegative)
                model[a] = Model(mayGoNegative: mayGoNegative)
            }
        }
        struct Created {
            var kind: TransferKind
            var debit: String
            var credit: String
            var amount: Int64
            var ref: String?
        }
        var created: [String: Created] = [:]
        var createdIDs: [String] = []
        var pendings: [String: Bool] = [:]  // id → resolved
        var pendingIDs: [String] = []
        var next = 0
        var successes = 0
        var failures: [LedgerError.Code: Int] = [:]

        for _ in 0..<6 {
            try f.writer.write { db in
                for _ in 0..<400 {
                    next += 1
                    let roll = Int.random(in: 0..<100, using: &rng)
                    if roll < 55 {
                        // A new posted or pending transfer; sources fund pools more often.
                        let kind: TransferKind = Bool.random(using: &rng) ? .posted : .pending
                        let debit = roll < 15 ? sources.randomElement(using: &rng)! : all.randomElement(using: &rng)!
                        let credit = roll < 15 ? pools.randomElement(using: &rng)! : all.randomElement(using: &rng)!
                        let amount: Int64 =
                            Int.random(in: 0..<20, using: &rng) == 0
                            ? Int64.random(in: -3...0, using: &rng) : Int64.random(in: 1...50_000, using: &rng)
                        let id = "t\(next)"
                        let ref: String? = Bool.random(using: &rng) ? "pay-\(next % 50)" : nil
                        var expected: LedgerError.Code?
                        if amount <= 0 {
                            expected = .invalidAmount
                        } else if debit == credit {
                            expected = .sameAccount
                        } else if !model[debit]!.mayGoNegative, model[debit]!.available < amount {
                            expected = .insufficientFunds
                        }
                        let got = outcome {
                            if kind == .posted {
                                try f.ledger.transfer(db, id: id, debit: debit, credit: credit, amountFen: amount, ref: ref, note: nil)
                            } else {
                                try f.ledger.reserve(db, id: id, debit: debit, credit: credit, amountFen: amount, ref: ref, note: nil)
                            }
                        }
                        #expect(got == expected, "seed \(seed) op \(next)")
                        if let got {
                            failures[got, default: 0] += 1
                            continue
                        }
                        successes += 1
                        created[id] = Created(kind: kind, debit: debit, credit: credit, amount: amount, ref: ref)
                        createdIDs.append(id)
                        if kind == .posted {
                            model[debit]!.postedDebits += amount
                            model[credit]!.postedCredits += amount
                        } else {
                            model[debit]!.pendingDebits += amount
                            model[credit]!.pendingCredits += amount
                            pendings[id] = false
                            pendingIDs.append(id)
                        }
                    } else if roll < 85, !pendingIDs.isEmpty {
                        // Post or void a pending transfer (perhaps one already resolved).
                        let pid = pendingIDs.randomElement(using: &rng)!
                        let post = Bool.random(using: &rng)
                        let id = "t\(next)"
                        let got = outcome {
                            if post {
                                try f.ledger.post(db, id: id, pendingID: pid, note: nil)
                            } else {
                                try f.ledger.void(db, id: id, pendingID: pid, note: nil)
                            }
                        }
                        let expected: LedgerError.Code? = pendings[pid]! ? .alreadyResolved : nil
                        #expect(got == expected, "seed \(seed) op \(next)")
                        if let got {
                            failures[got, default: 0] += 1
                            continue
                        }
                        successes += 1
                        pendings[pid] = true
                        let p = created[pid]!
                        model[p.debit]!.pendingDebits -= p.amount
                        model[p.credit]!.pendingCredits -= p.amount
                        if post {
                            model[p.debit]!.postedDebits += p.amount
                            model[p.credit]!.postedCredits += p.amount
                        }
                    } else if roll < 95, let id = createdIDs.randomElement(using: &rng) {
                        // A replay of a created transfer: the same content is a no-op, other content a conflict.
                        let c = created[id]!
                        let changed = Bool.random(using: &rng)
                        let amount = changed ? c.amount + 1 : c.amount
                        let got = outcome {
                            if c.kind == .posted {
                                try f.ledger.transfer(
                                    db, id: id, debit: c.debit, credit: c.credit, amountFen: amount, ref: c.ref, note: nil)
                            } else {
                                try f.ledger.reserve(db, id: id, debit: c.debit, credit: c.credit, amountFen: amount, ref: c.ref, note: nil)
                            }
                        }
                        #expect(got == (changed ? .conflict : nil), "seed \(seed) op \(next)")
                    } else {
                        #expect(
                            outcome { try f.ledger.post(db, id: "t\(next)", pendingID: "missing\(next)", note: nil) } == .unknownPending)
                    }

                    // The invariant after every operation: posted balances sum to zero.
                    let sum = try Int64.fetchOne(db, sql: "SELECT SUM(posted_credits - posted_debits) FROM ledger_accounts")
                    #expect(sum == 0)
                }
                for a in all {
                    let b = try f.ledger.balance(db, account: a)
                    let m = model[a]!
                    #expect(
                        [b.postedDebits, b.postedCredits, b.pendingDebits, b.pendingCredits]
                            == [m.postedDebits, m.postedCredits, m.pendingDebits, m.pendingCredits], "seed \(seed) account \(a)")
                    if !m.mayGoNegative { #expect(b.available >= 0) }
                }
                let check = try f.ledger.check(db)
                #expect(check.ok, "\(check.problems)")
                #expect(check.totals.postedBalanceSum == 0 && check.totals.pendingDebits == check.totals.pendingCredits)
            }
        }
        try f.writer.read { db in
            let check = try f.ledger.check(db)
            #expect(check.ok, "\(check.problems)")
            #expect(check.transfers == successes)
            #expect(check.openPending == pendings.values.filter { !$0 }.count)
            #expect(try f.audit.verify(db).entries == Int64(successes + all.count))
        }
        #expect(successes > 1_000)
        #expect(failures[.insufficientFunds, default: 0] > 0 && failures[.alreadyResolved, default: 0] > 0)
    }

    /// Eight threads, each with its own write transactions on a file `DatabasePool`, race to
    /// reserve from one pool that can pay only 100 of their 400 requests.
    @Test func concurrentReservationsNeverOverdrawAPool() throws {
        let f = try LedgerFixture(file: true)
        let ledger = f.ledger
        try f.writer.write { db in
            try f.fundPool(db, fen: 10_050)
            for t in 0..<8 { try ledger.openAccount(db, id: "m\(t)", kind: "merchant", mayGoNegative: false) }
        }
        let succeeded = Mutex(0)
        let refused = Mutex(0)
        let unexpected = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 8) { t in
            for i in 0..<50 {
                do {
                    try f.writer.write { db in
                        _ = try ledger.reserve(db, id: "r\(t)-\(i)", debit: "pool", credit: "m\(t)", amountFen: 100, ref: nil, note: nil)
                    }
                    succeeded.withLock { $0 += 1 }
                } catch let error as LedgerError where error.code == .insufficientFunds {
                    refused.withLock { $0 += 1 }
                } catch {
                    unexpected.withLock { $0.append(String(describing: error)) }
                }
            }
        }
        #expect(unexpected.withLock { $0 } == [])
        #expect(succeeded.withLock { $0 } == 100 && refused.withLock { $0 } == 300)
        try f.writer.read { db in
            let pool = try ledger.balance(db, account: "pool")
            #expect(pool.pendingDebits == 10_000 && pool.available == 50)
            let merchants = try (0..<8).map { try ledger.balance(db, account: "m\($0)").pendingCredits }
            #expect(merchants.reduce(0, +) == 10_000)
            let check = try ledger.check(db)
            #expect(check.ok && check.openPending == 100, "\(check.problems)")
            #expect(try f.audit.verify(db).ok)
        }
    }

    /// The same race with posts and voids: voided reservations return to the pool.
    @Test func concurrentTwoPhasePaymentsNeverOverdrawAPool() throws {
        let f = try LedgerFixture(file: true)
        let ledger = f.ledger
        try f.writer.write { db in
            try f.fundPool(db, fen: 100_000)
            for t in 0..<8 { try ledger.openAccount(db, id: "m\(t)", kind: "merchant", mayGoNegative: false) }
        }
        let unexpected = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 8) { t in
            var rng = SplitMix64(seed: UInt64(t))
            for i in 0..<100 {
                let amount = Int64.random(in: 500...3_000, using: &rng)
                do {
                    try f.writer.write { db in
                        _ = try ledger.reserve(db, id: "r\(t)-\(i)", debit: "pool", credit: "m\(t)", amountFen: amount, ref: nil, note: nil)
                    }
                } catch let error as LedgerError where error.code == .insufficientFunds {
                    continue
                } catch {
                    unexpected.withLock { $0.append(String(describing: error)) }
                    continue
                }
                do {
                    try f.writer.write { db in
                        if i % 3 == 0 {
                            _ = try ledger.void(db, id: "v\(t)-\(i)", pendingID: "r\(t)-\(i)", note: nil)
                        } else {
                            _ = try ledger.post(db, id: "p\(t)-\(i)", pendingID: "r\(t)-\(i)", note: nil)
                        }
                    }
                } catch {
                    unexpected.withLock { $0.append(String(describing: error)) }
                }
            }
        }
        #expect(unexpected.withLock { $0 } == [])
        try f.writer.read { db in
            let pool = try ledger.balance(db, account: "pool")
            #expect(pool.available >= 0 && pool.pendingDebits == 0)
            #expect(pool.postedDebits <= 100_000)
            let paid = try (0..<8).map { try ledger.balance(db, account: "m\($0)").posted }.reduce(0, +)
            #expect(paid == pool.postedDebits)
            #expect(try ledger.check(db).ok)
            #expect(try f.audit.verify(db).ok)
        }
    }

    @Test func checkDetectsATamperedTransferAmount() throws {
        let f = try LedgerFixture(file: true)
        try f.writer.write { db in
            try f.fundPool(db, fen: 10_000)
            try f.ledger.openAccount(db, id: "m", kind: "merchant", mayGoNegative: false)
            try f.ledger.transfer(db, id: "t1", debit: "pool", credit: "m", amountFen: 4_000, ref: nil, note: nil)
            try f.ledger.reserve(db, id: "r1", debit: "pool", credit: "m", amountFen: 1_000, ref: nil, note: nil)
        }
        #expect(try f.writer.read { db in try f.ledger.check(db).ok })
        try f.writer.write { db in try db.execute(sql: "UPDATE ledger_transfers SET amount_fen = 40 WHERE id = 't1'") }
        try f.writer.read { db in
            let check = try f.ledger.check(db)
            #expect(!check.ok)
            #expect(check.problems.contains { $0.hasPrefix("account pool stores") }, "\(check.problems)")
            #expect(check.problems.contains { $0.hasPrefix("account m stores") }, "\(check.problems)")
            // The chain still holds the true amount: verify is unaffected, and the entry disagrees.
            #expect(try f.audit.verify(db).ok)
        }
    }

    @Test func checkDetectsTamperedCountersAndBrokenResolutions() throws {
        let f = try LedgerFixture(file: true)
        try f.writer.write { db in
            try f.fundPool(db, fen: 10_000)
            try f.ledger.openAccount(db, id: "m", kind: "merchant", mayGoNegative: false)
            try f.ledger.reserve(db, id: "r1", debit: "pool", credit: "m", amountFen: 1_000, ref: nil, note: nil)
            try f.ledger.post(db, id: "p1", pendingID: "r1", note: nil)
        }
        try f.writer.write { db in try db.execute(sql: "UPDATE ledger_accounts SET posted_credits = posted_credits + 1 WHERE id = 'm'") }
        try f.writer.read { db in
            let check = try f.ledger.check(db)
            #expect(!check.ok)
            #expect(check.problems.contains { $0.hasPrefix("account m stores") })
            #expect(check.problems.contains { $0 == "posted balances sum to 1 fen, not 0" }, "\(check.problems)")
        }
        try f.writer.write { db in
            try db.execute(sql: "UPDATE ledger_accounts SET posted_credits = posted_credits - 1 WHERE id = 'm'")
            // A pool drained below zero by an edited funding amount; a post whose amount differs from its pending.
            try db.execute(sql: "UPDATE ledger_transfers SET amount_fen = 500 WHERE id = 'fund:pool'")
            try db.execute(sql: "UPDATE ledger_transfers SET amount_fen = 999 WHERE id = 'p1'")
        }
        try f.writer.read { db in
            let check = try f.ledger.check(db)
            #expect(!check.ok)
            #expect(
                check.problems.contains { $0.contains("may not go negative but had -500 fen available after transfer r1") },
                "\(check.problems)")
            #expect(check.problems.contains { $0.contains("differs from its pending transfer r1") }, "\(check.problems)")
        }
    }

    @Test func theCanonicalAuditEntryMatchesTheJSONSerializer() {
        let samples = [
            LedgerTransfer(
                seq: 1, id: "a", kind: .posted, debit: "d", credit: "c", amountFen: 1, pendingID: nil, ref: nil, note: nil, at: ""),
            LedgerTransfer(
                seq: 9_000_000_000, id: "id\u{1}\t\"", kind: .post, debit: "资金池", credit: "商户", amountFen: Ledger.maxAmountFen,
                pendingID: "p\\", ref: "ref/1", note: "备注 \u{1F600}", at: ""),
        ]
        for t in samples {
            #expect(t.canonicalAuditEntry() == t.auditEntry.serializedBytes(sortedKeys: true))
        }
    }
}
