import Foundation
import GRDB
import Models

/// The result of recomputing the audit chain from its first entry.
public struct AuditVerification: Sendable, Equatable {
    /// True when every link recomputes and the sequence has no gap.
    public var ok: Bool
    /// How many entries were verified good (all of them when `ok`).
    public var entries: Int64
    /// The sequence number of the first broken link (a missing entry's own number for a gap).
    public var firstBroken: Int64?
    public var reason: String?
    /// The hash of the last good entry (64 zeros for an empty chain).
    public var headHash: String

    public init(ok: Bool, entries: Int64, firstBroken: Int64?, reason: String?, headHash: String) {
        self.ok = ok
        self.entries = entries
        self.firstBroken = firstBroken
        self.reason = reason
        self.headHash = headHash
    }
}

/// The tamper-evident audit chain (全程督, DESIGN §8): every ledger transfer and state change is
/// appended, in the caller's transaction, as a link whose hash covers the previous link's hash.
///
/// `hash = hex(SHA-256(prev_hash + "\n" + canonical JSON of {"at", "entry", "kind", "seq"}))`,
/// where the canonical JSON is `JSON.serializedBytes(sortedKeys: true)` and the first entry's
/// `prev_hash` is 64 zeros. `verify` recomputes every link from the start and names the first
/// broken one. (Truncating the newest entries leaves a valid shorter chain: compare `head` with
/// a copy kept elsewhere to detect that.)
public struct AuditChain: Sendable {
    public static let genesisHash = String(repeating: "0", count: 64)

    public let clock: any WallClock

    public init(clock: any WallClock) {
        self.clock = clock
    }

    /// Appends one entry (any JSON value, stored in canonical form) and returns its link.
    @discardableResult
    public func append(_ db: Database, kind: String, entry: JSON) throws -> (seq: Int64, hash: String) {
        try append(db, kind: kind, at: Timestamp.format(clock.now()), canonicalEntry: entry.serializedBytes(sortedKeys: true))
    }

    /// Appends an entry that is already canonical JSON (the ledger's hot path writes its entries
    /// directly in canonical form instead of building a `JSON` value).
    func append(_ db: Database, kind: String, at: String, canonicalEntry: [UInt8]) throws -> (seq: Int64, hash: String) {
        let previous = try head(db)
        let seq = (previous?.seq ?? 0) + 1
        let prevHash = previous?.hash ?? Self.genesisHash
        let hash = Self.linkHash(prevHash: prevHash, seq: seq, at: at, kind: kind, entry: canonicalEntry)
        try db.cachedStatement(sql: "INSERT INTO audit_chain(seq, at, kind, entry, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?)")
            .execute(arguments: [seq, at, kind, Data(canonicalEntry), prevHash, hash])
        return (seq, hash)
    }

    /// The newest link, or nil for an empty chain.
    public func head(_ db: Database) throws -> (seq: Int64, hash: String)? {
        let statement = try db.cachedStatement(sql: "SELECT seq, hash FROM audit_chain ORDER BY seq DESC LIMIT 1")
        guard let row = try Row.fetchOne(statement) else { return nil }
        return (row[0], row[1])
    }

    /// Recomputes the chain from its first entry. Never throws on a broken chain (only on a
    /// database error): the first broken link is reported.
    public func verify(_ db: Database) throws -> AuditVerification {
        var expected: Int64 = 1
        var prevHash = Self.genesisHash
        var scratch: [UInt8] = []
        scratch.reserveCapacity(1024)
        let rows = try Row.fetchCursor(db, sql: "SELECT seq, at, kind, entry, prev_hash, hash FROM audit_chain ORDER BY seq")
        func broken(_ seq: Int64, _ reason: String) -> AuditVerification {
            AuditVerification(ok: false, entries: expected - 1, firstBroken: seq, reason: reason, headHash: prevHash)
        }
        while let row = try rows.next() {
            guard let seq = Self.int64(row, 0) else { return broken(expected, "entry \(expected) has no integer seq") }
            if seq != expected {
                return broken(expected, "entry \(expected) is missing (the next entry is \(seq))")
            }
            guard let at = Self.text(row, 1), let kind = Self.text(row, 2), let storedPrev = Self.text(row, 4),
                let storedHash = Self.text(row, 5)
            else { return broken(seq, "entry \(seq) has a missing or non-text column") }
            guard let entry = Self.bytes(row, 3) else { return broken(seq, "entry \(seq) has no entry") }
            if storedPrev != prevHash {
                return broken(seq, "entry \(seq) does not link to entry \(seq - 1) (prev_hash differs)")
            }
            let hash = Self.linkHash(prevHash: prevHash, seq: seq, at: at, kind: kind, entry: entry, scratch: &scratch)
            if hash != storedHash {
                return broken(seq, "entry \(seq) does not match its hash (its content or hash was changed)")
            }
            prevHash = hash
            expected += 1
        }
        return AuditVerification(ok: true, entries: expected - 1, firstBroken: nil, reason: nil, headHash: prevHash)
    }

    // MARK: - Hashing

    /// The bytes a link's hash covers: `prev_hash`, a newline, and the canonical JSON of the link.
    static func linkBytes(prevHash: String, seq: Int64, at: String, kind: String, entry: some Collection<UInt8>, into out: inout [UInt8]) {
        out.removeAll(keepingCapacity: true)
        out.append(contentsOf: prevHash.utf8)
        out.append(UInt8(ascii: "\n"))
        // Members in key order: at, entry, kind, seq.
        out.append(contentsOf: #"{"at":"#.utf8)
        JSON.writeString(at, into: &out)
        out.append(contentsOf: #","entry":"#.utf8)
        out.append(contentsOf: entry)
        out.append(contentsOf: #","kind":"#.utf8)
        JSON.writeString(kind, into: &out)
        out.append(contentsOf: #","seq":"#.utf8)
        JSON.int(seq).write(into: &out, sortedKeys: true)
        out.append(UInt8(ascii: "}"))
    }

    static func linkHash(
        prevHash: String, seq: Int64, at: String, kind: String, entry: some Collection<UInt8>, scratch: inout [UInt8]
    ) -> String {
        linkBytes(prevHash: prevHash, seq: seq, at: at, kind: kind, entry: entry, into: &scratch)
        return SHA256.hash(scratch).hexString
    }

    static func linkHash(prevHash: String, seq: Int64, at: String, kind: String, entry: some Collection<UInt8>) -> String {
        var scratch: [UInt8] = []
        scratch.reserveCapacity(entry.count + 192)
        return linkHash(prevHash: prevHash, seq: seq, at: at, kind: kind, entry: entry, scratch: &scratch)
    }

    // MARK: - Defensive column decoding (a tampered row must be reported, never crash)

    static func int64(_ row: Row, _ i: Int) -> Int64? {
        (row[i] as (any DatabaseValueConvertible)?) as? Int64
    }

    static func text(_ row: Row, _ i: Int) -> String? {
        switch row[i] as (any DatabaseValueConvertible)? {
        case let s as String: s
        case let d as Data: String(data: d, encoding: .utf8)
        default: nil
        }
    }

    static func bytes(_ row: Row, _ i: Int) -> [UInt8]? {
        switch row[i] as (any DatabaseValueConvertible)? {
        case let d as Data: [UInt8](d)
        case let s as String: Array(s.utf8)
        default: nil
        }
    }
}
