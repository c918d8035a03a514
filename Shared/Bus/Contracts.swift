import Models

/// One event as received on an intake socket.
public struct IntakeFrame: Sendable {
    public var payload: [UInt8]
    /// Set when the message was refused before parsing (too many frames, too large).
    public var preRejection: Rejection?
    /// The publishing client's identity (its CURVE public key, Z85) when security is on.
    public var clientKey: String?
    /// The event id, when known before parsing (so a refused oversized frame's ack names it).
    public var idHint: String?

    public init(payload: [UInt8], preRejection: Rejection? = nil, clientKey: String? = nil, idHint: String? = nil) {
        self.payload = payload
        self.preRejection = preRejection
        self.clientKey = clientKey
        self.idHint = idHint
    }
}

/// An intake acknowledgement (DESIGN §3.2).
public struct Ack: Sendable, Equatable {
    public enum Status: String, Sendable { case accepted, duplicate, rejected }
    public var id: String?
    public var status: Status
    public var rejection: Rejection?
    /// What an accepted event did not change, and why, for a person to read (e.g. a second
    /// approval by a reviewer who had already approved): `"note"` in the ack, absent when there
    /// is nothing to say. Informational: a client never needs it to act.
    public var note: String?

    public init(id: String?, status: Status, rejection: Rejection? = nil, note: String? = nil) {
        self.id = id
        self.status = status
        self.rejection = rejection
        self.note = note
    }

    public static func rejected(_ id: String?, _ r: Rejection) -> Ack { Ack(id: id, status: .rejected, rejection: r) }

    public var json: JSON {
        var o = JSONObject()
        o["id"] = id.map { .string($0) } ?? .null
        o["status"] = .string(status.rawValue)
        if let rejection { o["error"] = rejection.json }
        if let note { o["note"] = .string(note) }
        return .object(o)
    }

    public init?(json: JSON) {
        guard let s = json["status"]?.stringValue, let st = Status(rawValue: s) else { return nil }
        status = st
        id = json["id"]?.stringValue
        note = json["note"]?.stringValue
        if let e = json["error"], let c = e["code"]?.stringValue, let code = RejectionCode(rawValue: c) {
            rejection = Rejection(code, field: e["field"]?.stringValue, e["message"]?.stringValue ?? "")
        } else if st == .rejected {
            rejection = Rejection(.invalidData, "rejected without a recognised code: \(json.serialized())")
        }
    }
}

/// Applies intake events durably. Called on the intake socket's owner thread with every frame
/// that arrived together; the implementation commits them in one transaction (group commit)
/// and returns one ack per frame, in order. Throwing means nothing was committed: no acks are
/// sent and clients retry.
public protocol IntakeProcessor: Sendable {
    func process(_ batch: [IntakeFrame]) throws -> [Ack]
    /// The largest event the node can put on its feed (its `max_message_bytes`): an intake
    /// event whose effects would publish a larger one is refused `too_large` instead, since a
    /// subscriber's libzmq drops the connection on such a frame. The node calls this once, when
    /// it is made.
    func limitPublishedEvents(toBytes: Int64)
}

extension IntakeProcessor {
    public func limitPublishedEvents(toBytes: Int64) {}
}

/// One row of a service's outbox, ready to go on the wire.
public struct FeedRecord: Sendable {
    public var sequence: UInt64
    public var type: String
    public var body: [UInt8]

    public init(sequence: UInt64, type: String, body: [UInt8]) {
        self.sequence = sequence
        self.type = type
        self.body = body
    }
}

/// Read access to a service's outbox, for the publisher and the replay server.
public protocol FeedStore: Sendable {
    func lastSequence() throws -> UInt64
    func records(after: UInt64, max: Int) throws -> [FeedRecord]
    /// At most `max` records after `after` whose bodies add up to at most `maxBytes`; at least
    /// one when there is any (a replay page that ends early).
    func records(after: UInt64, max: Int, maxBytes: Int) throws -> [FeedRecord]
    /// The feed's epoch: a random id new at every start of the publisher, sent in heartbeats and
    /// replay end frames, so that a subscriber notices a publisher that is not the one it followed
    /// (restarted, or restored from a backup) and checks that its history still holds. Nil: none.
    var epoch: String? { get }
}

extension FeedStore {
    public var epoch: String? { nil }

    public func records(after: UInt64, max: Int, maxBytes: Int) throws -> [FeedRecord] {
        FeedRecord.prefix(try records(after: after, max: max), maxBytes: maxBytes)
    }
}

extension FeedRecord {
    /// The leading records whose bodies add up to at most `maxBytes` (at least the first).
    public static func prefix(_ records: [FeedRecord], maxBytes: Int) -> [FeedRecord] {
        var total = 0
        var n = 0
        for r in records {
            if n > 0 && total + r.body.count > maxBytes { break }
            total += r.body.count
            n += 1
        }
        return Array(records.prefix(n))
    }
}

/// What a subscriber keeps about an upstream feed beside its cursor: the last event it checked
/// against the upstream (its sequence and the SHA-256 of its bytes), the upstream's epoch then,
/// and whether it halted the feed because the upstream's history no longer holds.
public struct FeedGuard: Sendable, Equatable {
    public var epoch: String?
    public var anchorSequence: UInt64
    /// Lowercase hex SHA-256 of the event's bytes as published.
    public var anchorSHA256: String
    /// Why the feed is halted (nil: it is not).
    public var halted: String?

    public init(epoch: String?, anchorSequence: UInt64, anchorSHA256: String, halted: String? = nil) {
        self.epoch = epoch
        self.anchorSequence = anchorSequence
        self.anchorSHA256 = anchorSHA256
        self.halted = halted
    }
}

/// A consumer that cannot reset its cursor was asked to.
public struct CursorResetUnsupported: Error, CustomStringConvertible {
    public var description: String { "this consumer keeps no cursor it could reset" }
}

/// Answers the operator queries carried on the replay socket beside `replay` (status, quarantine).
/// Returns nil for an op it does not know.
public protocol QueryResponder: Sendable {
    func respond(to request: JSON) throws -> JSON?
}

/// One event from an upstream feed, in sequence order.
public struct FeedDelivery: Sendable {
    public var sequence: UInt64
    /// The parsed event, or nil when the upstream frame could not be parsed (`error` says why).
    public var event: CloudEvent?
    public var raw: [UInt8]
    public var error: Rejection?
    /// Passed over: the consumer does not want its type (only its sequence counts).
    var skipped = false

    public init(sequence: UInt64, event: CloudEvent?, raw: [UInt8], error: Rejection?) {
        self.sequence = sequence
        self.event = event
        self.raw = raw
        self.error = error
    }

    static func skipped(_ sequence: UInt64, raw: [UInt8]) -> FeedDelivery {
        var d = FeedDelivery(sequence: sequence, event: nil, raw: raw, error: nil)
        d.skipped = true
        return d
    }
}

/// The downstream side of a feed subscription. `apply` receives, in order, the wanted events of
/// the consecutive sequences right after `cursor()` up to `through`, and must store `through` as
/// the new cursor in the same transaction as their effects (the idempotent inbox of DESIGN
/// §3.3). Events whose type `wants` refuses are passed over without being parsed; their
/// sequences still move the cursor, so `deliveries` may be empty.
public protocol FeedConsumer: Sendable {
    func cursor(feed: String) throws -> UInt64
    func wants(feed: String, type: String) -> Bool
    /// Members of the events' `data` the consumer never reads (an entitlement's `trace`): parsed
    /// as JSON syntax only, not built, and absent from the delivered events.
    func omittedDataMembers(feed: String) -> Set<String>
    func apply(feed: String, _ deliveries: [FeedDelivery], through: UInt64) throws
    /// The feed's guard as last saved (nil: none yet), and saving it (see `FeedGuard`).
    func feedGuard(feed: String) throws -> FeedGuard?
    func saveFeedGuard(feed: String, _ value: FeedGuard) throws
    /// Sets the cursor to `sequence` and forgets the guard (a halted feed goes on): the
    /// operator's way out after reconciling with an upstream restored from a backup.
    func resetCursor(feed: String, to sequence: UInt64) throws
}

extension FeedConsumer {
    public func wants(feed: String, type: String) -> Bool { true }
    public func omittedDataMembers(feed: String) -> Set<String> { [] }
    public func feedGuard(feed: String) throws -> FeedGuard? { nil }
    public func saveFeedGuard(feed: String, _ value: FeedGuard) throws {}
    public func resetCursor(feed: String, to sequence: UInt64) throws { throw CursorResetUnsupported() }
}
