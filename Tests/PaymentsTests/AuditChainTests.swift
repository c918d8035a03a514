import Foundation
import GRDB
import Testing

@testable import Models
@testable import Payments

@Suite struct AuditChainTests {
    /// Appends `count` entries, one second apart.
    func fill(_ f: LedgerFixture, count: Int) throws {
        try f.writer.write { db in
            for i in 1...count {
                let entry: JSON = [
                    "payment": .string("pay-\(i)"), "amount_fen": .int(Int64(i) * 100), "hold": i % 7 == 0 ? "shared_bank_account" : .null,
                    "who": ["operator": "张三", "reason": "核实\n通过"],
                ]
                let link = try f.audit.append(db, kind: i % 2 == 0 ? "hold.cleared" : "payment.instructed", entry: entry)
                #expect(link.seq == Int64(i))
                f.clock.advance(seconds: 1)
            }
        }
    }

    func verify(_ f: LedgerFixture) throws -> AuditVerification {
        try f.writer.read { db in try f.audit.verify(db) }
    }

    @Test func anEmptyChainVerifies() throws {
        let f = try LedgerFixture()
        try f.writer.read { db in
            let head = try f.audit.head(db)
            let verification = try f.audit.verify(db)
            #expect(head == nil)
            #expect(
                verification == AuditVerification(ok: true, entries: 0, firstBroken: nil, reason: nil, headHash: AuditChain.genesisHash))
        }
    }

    @Test func theHashIsSHA256OfThePreviousHashAndTheCanonicalLink() throws {
        let f = try LedgerFixture()
        try f.writer.write { db in
            let entry: JSON = ["z": 1, "a": ["y": "中文", "b": .null], "m": [true, false, .number("1.5")]]
            let first = try f.audit.append(db, kind: "test", entry: entry)
            f.clock.advance(seconds: 60)
            let second = try f.audit.append(db, kind: "test2", entry: "just a string")
            // Computed independently with the JSON serializer.
            func link(_ seq: Int64, _ at: String, _ kind: String, _ entry: JSON) -> String {
                let canonical: JSON = ["seq": .int(seq), "at": .string(at), "kind": .string(kind), "entry": entry]
                return canonical.serialized(sortedKeys: true)
            }
            let h1 = SHA256.hex(AuditChain.genesisHash + "\n" + link(1, "2026-11-29T10:00:00.000+08:00", "test", entry))
            let h2 = SHA256.hex(h1 + "\n" + link(2, "2026-11-29T10:01:00.000+08:00", "test2", "just a string"))
            #expect(first == (1, h1))
            #expect(second == (2, h2))
            #expect(try f.audit.head(db)! == (2, h2))
            let stored = try Row.fetchOne(db, sql: "SELECT entry, prev_hash FROM audit_chain WHERE seq = 1")!
            #expect([UInt8](stored["entry"] as Data) == entry.serializedBytes(sortedKeys: true))
            #expect(stored["prev_hash"] as String == String(repeating: "0", count: 64))
        }
    }

    @Test func aThousandEntriesVerify() throws {
        let f = try LedgerFixture(file: true)
        try fill(f, count: 1_000)
        let v = try verify(f)
        #expect(v.ok && v.entries == 1_000 && v.firstBroken == nil && v.reason == nil)
        #expect(v.headHash == (try f.writer.read { db in try f.audit.head(db)!.hash }))
    }

    @Test func theChainContinuesAcrossReopening() throws {
        let f = try LedgerFixture(file: true)
        try fill(f, count: 10)
        let path = try #require(f.directory.map { ($0 as NSString).appendingPathComponent("payments.sqlite") })
        let reopened = try DatabasePool(path: path)
        try reopened.write { db in
            let link = try f.audit.append(db, kind: "after-restart", entry: ["n": 11])
            #expect(link.seq == 11)
        }
        #expect(try reopened.read { db in try f.audit.verify(db) }.entries == 11)
        try reopened.close()
    }

    /// Each tampering is applied to a fresh chain of 1,000 entries by raw SQL on the file.
    @Test(arguments: [
        ("entry", "UPDATE audit_chain SET entry = CAST(REPLACE(CAST(entry AS TEXT), '\"pay-', '\"PAY-') AS BLOB) WHERE seq = 417", 417),
        ("amount", "UPDATE audit_chain SET entry = CAST(REPLACE(CAST(entry AS TEXT), '41700', '41701') AS BLOB) WHERE seq = 417", 417),
        ("entry as text", "UPDATE audit_chain SET entry = CAST(entry AS TEXT) || ' ' WHERE seq = 1", 1),
        ("hash", "UPDATE audit_chain SET hash = '0' || substr(hash, 2) WHERE seq = 333", 333),
        ("last hash", "UPDATE audit_chain SET hash = upper(hash) WHERE seq = 1000", 1000),
        ("prev_hash", "UPDATE audit_chain SET prev_hash = (SELECT prev_hash FROM audit_chain WHERE seq = 10) WHERE seq = 11", 11),
        ("kind", "UPDATE audit_chain SET kind = 'hold.opened' WHERE seq = 600", 600),
        ("at", "UPDATE audit_chain SET at = '2026-11-29T10:00:00.000+08:00' WHERE seq = 2", 2),
        ("deleted row", "DELETE FROM audit_chain WHERE seq = 500", 500),
        ("deleted first row", "DELETE FROM audit_chain WHERE seq = 1", 1),
        ("deleted rows renumbered", "DELETE FROM audit_chain WHERE seq = 700; UPDATE audit_chain SET seq = seq - 1 WHERE seq > 700", 700),
        (
            "rows swapped",
            "UPDATE audit_chain SET seq = -1 WHERE seq = 250; UPDATE audit_chain SET seq = 250 WHERE seq = 750; UPDATE audit_chain SET seq = 750 WHERE seq = -1",
            250
        ),
        (
            "contents swapped",
            """
            UPDATE audit_chain SET at = (SELECT at FROM audit_chain WHERE seq = 901), kind = (SELECT kind FROM audit_chain WHERE seq = 901),
                entry = (SELECT entry FROM audit_chain WHERE seq = 901), prev_hash = (SELECT prev_hash FROM audit_chain WHERE seq = 901),
                hash = (SELECT hash FROM audit_chain WHERE seq = 901)
            WHERE seq = 900
            """,
            900
        ),
        (
            "adjacent rows swapped",
            "UPDATE audit_chain SET seq = -1 WHERE seq = 42; UPDATE audit_chain SET seq = 42 WHERE seq = 43; UPDATE audit_chain SET seq = 43 WHERE seq = -1",
            42
        ),
    ])
    func tamperingIsDetectedAtTheFirstBrokenLink(name: String, sql: String, firstBroken: Int64) throws {
        let f = try LedgerFixture(file: true)
        try fill(f, count: 1_000)
        #expect(try verify(f).ok)
        try f.writer.write { db in try db.execute(sql: sql) }
        let v = try verify(f)
        #expect(!v.ok, "\(name)")
        #expect(v.firstBroken == firstBroken, "\(name): \(v.reason ?? "")")
        #expect(v.entries == firstBroken - 1, "\(name)")
        #expect(v.reason != nil)
    }

    @Test func tamperingWithALedgerEntryIsDetected() throws {
        let f = try LedgerFixture(file: true)
        try f.writer.write { db in
            try f.fundPool(db, fen: 10_000)
            try f.ledger.openAccount(db, id: "m", kind: "merchant", mayGoNegative: false)
            try f.ledger.reserve(db, id: "r1", debit: "pool", credit: "m", amountFen: 1_000, ref: "pay-1", note: nil)
            try f.ledger.post(db, id: "p1", pendingID: "r1", note: nil)
        }
        #expect(try verify(f).ok)
        try f.writer.write { db in
            try db.execute(
                sql: "UPDATE audit_chain SET entry = CAST(REPLACE(CAST(entry AS TEXT), '1000', '9000') AS BLOB) WHERE kind = 'post'")
        }
        let v = try verify(f)
        #expect(v.firstBroken == 6 && v.entries == 5, "\(v)")
    }
}
