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
}

extension FeedStore {
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

    static func skipped(_ sequence: UInt64) -> FeedDelivery {
        var d = FeedDelivery(sequence: sequence, event: nil, raw: [], error: nil)
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
}

extension FeedConsumer {
    public func wants(feed: String, type: String) -> Bool { true }
    public func omittedDataMembers(feed: String) -> Set<String> { [] }
}
