import Bus
import Foundation
import GRDB
import Models

/// The transactional outbox (DESIGN §3.3): a service appends the events it produces in the same
/// transaction as the state change that caused them; the outbox assigns the gapless `sequence`.
public struct Outbox: Sendable {
    /// The CloudEvents `source` of this service's events, e.g. `/bangfu/registry`.
    public let source: String
    public let clock: any WallClock
    /// The largest event this outbox takes (the service's `max-message-bytes`): a subscriber's
    /// libzmq drops its connection on a larger frame, live and on replay, so such an event would
    /// cut every subscriber off at it. `append` refuses one with `OutboxEventTooLarge`.
    public let maxEventBytes: Int64

    public init(source: String, clock: any WallClock, maxEventBytes: Int64 = 1 << 20) {
        self.source = source
        self.clock = clock
        self.maxEventBytes = maxEventBytes
    }

    /// The envelope `append` puts around `data` takes at most this many bytes beyond the
    /// attributes' own text (ids, type, subject).
    public static let envelopeBytes = 256

    /// Appends one event and returns its sequence. `id` must be stable for the same logical
    /// event (e.g. `merchant.profiled/<uscc>/<version>`), so that consumers can deduplicate.
    @discardableResult
    public func append(_ db: Database, type: String, subject: String?, id: String, data: JSON) throws -> UInt64 {
        try append(db, type: type, subject: subject, id: id, rawData: data.serializedBytes())
    }

    /// Appends an event whose `data` is already serialised JSON (must be one JSON value).
    @discardableResult
    public func append(_ db: Database, type: String, subject: String?, id: String, rawData: [UInt8]) throws -> UInt64 {
        let last = try Int64.fetchOne(db.cachedStatement(sql: "SELECT MAX(sequence) FROM bus_outbox")) ?? 0
        let sequence = UInt64(last) + 1
        // The envelope in the same attribute order as `CloudEvent.json`.
        var out: [UInt8] = []
        out.reserveCapacity(rawData.count + 320)
        func attribute(_ name: StaticString, _ value: String, first: Bool = false) {
            if !first { out.append(UInt8(ascii: ",")) }
            out.append(UInt8(ascii: "\""))
            out.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
            out.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
            JSON.writeString(value, into: &out)
        }
        out.append(UInt8(ascii: "{"))
        attribute("specversion", CloudEvent.specVersion, first: true)
        attribute("id", id)
        attribute("source", source)
        attribute("type", type)
        if let subject { attribute("subject", subject) }
        attribute("time", Timestamp.format(clock.now()))
        attribute("datacontenttype", "application/json")
        attribute("sequence", String(sequence))
        out.append(contentsOf: Array(",\"data\":".utf8))
        out.append(contentsOf: rawData)
        out.append(UInt8(ascii: "}"))
        guard out.count <= maxEventBytes else {
            throw OutboxEventTooLarge(type: type, id: id, bytes: Int64(out.count), limit: maxEventBytes)
        }
        try db.cachedStatement(sql: "INSERT INTO bus_outbox(sequence, event_id, type, subject, body) VALUES (?, ?, ?, ?, ?)")
            .execute(arguments: [Int64(sequence), id, type, subject, Data(out)])
        return sequence
    }

    public static func lastSequence(_ db: Database) throws -> UInt64 {
        UInt64(try Int64.fetchOne(db, sql: "SELECT MAX(sequence) FROM bus_outbox") ?? 0)
    }
}

/// An event over the outbox's `maxEventBytes` was refused: nothing was appended. Thrown inside
/// the caller's transaction, which fails unless the caller makes the event smaller.
public struct OutboxEventTooLarge: Error, CustomStringConvertible, Sendable {
    public var type: String
    public var id: String
    public var bytes: Int64
    public var limit: Int64

    public var description: String {
        "a \(type) event of \(bytes) bytes (\(id.prefix(120))) is over max_message_bytes (\(limit)); not appended to the outbox"
    }
}

/// The outbox as the publisher and the replay server read it.
public struct OutboxFeedStore: FeedStore {
    public let database: ServiceDatabase
    /// New at every start of the service (each store made is one start), and kept in bus_meta
    /// (`feed_epoch`) for the operator.
    public let epoch: String?

    public init(database: ServiceDatabase) {
        self.database = database
        let epoch = Self.newEpoch()
        self.epoch = epoch
        try? database.writer.write { db in
            try db.execute(
                sql: "INSERT INTO bus_meta(key, value) VALUES ('feed_epoch', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                arguments: [epoch])
        }
    }

    /// 16 random bytes, hex.
    static func newEpoch() -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<16).map { _ in UInt8.random(in: 0...255, using: &g) }.hexString
    }

    public func lastSequence() throws -> UInt64 {
        try database.writer.read { db in try Outbox.lastSequence(db) }
    }

    public func records(after: UInt64, max: Int) throws -> [FeedRecord] {
        try database.writer.read { db in
            let rows = try Row.fetchCursor(
                db.cachedStatement(sql: "SELECT sequence, type, body FROM bus_outbox WHERE sequence > ? ORDER BY sequence LIMIT ?"),
                arguments: [Int64(clamping: after), max])
            var out: [FeedRecord] = []
            out.reserveCapacity(Swift.min(max, 1024))
            while let row = try rows.next() {
                let body: Data = row[2]
                out.append(FeedRecord(sequence: UInt64(row[0] as Int64), type: row[1], body: [UInt8](body)))
            }
            return out
        }
    }

    /// Stops reading at the record that would take the page over `maxBytes`, so a replay page
    /// never holds more than that in memory (beyond one record).
    public func records(after: UInt64, max: Int, maxBytes: Int) throws -> [FeedRecord] {
        try database.writer.read { db in
            let rows = try Row.fetchCursor(
                db.cachedStatement(sql: "SELECT sequence, type, body FROM bus_outbox WHERE sequence > ? ORDER BY sequence LIMIT ?"),
                arguments: [Int64(clamping: after), max])
            var out: [FeedRecord] = []
            var total = 0
            while let row = try rows.next() {
                let body: Data = row[2]
                if !out.isEmpty && total + body.count > maxBytes { break }
                total += body.count
                out.append(FeedRecord(sequence: UInt64(row[0] as Int64), type: row[1], body: [UInt8](body)))
            }
            return out
        }
    }
}
