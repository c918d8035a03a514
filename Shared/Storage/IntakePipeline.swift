import Bus
import Foundation
import GRDB
import Logging
import Models
import Synchronization

/// What a service does with the events its intake accepts.
public protocol IntakeApplier: Sendable {
    associatedtype Command: Sendable

    /// The event types this service takes; anything else is `unknown_type`.
    var acceptedTypes: Set<String> { get }

    /// Whether `apply` may throw a `Rejection` (so each event needs a savepoint of its own).
    /// An applier whose refusals all happen in `validate` says false and saves the savepoints.
    var refusesWhileApplying: Bool { get }

    /// Checks one event without touching the database (types, check digits, dates, money).
    func validate(_ event: CloudEvent) throws(Rejection) -> Command

    /// Applies a validated event inside the batch's write transaction (in a savepoint of its
    /// own). Throwing a `Rejection` undoes this event only and quarantines it; any other error
    /// fails the whole batch, which is then not acknowledged.
    func apply(_ command: Command, event: CloudEvent, db: Database) throws

    /// `apply`, answering a note for the event's ack (`Ack.note`): what an accepted event left
    /// as it was and why (a reviewer approving again), or nil. By default `apply` and no note.
    func applyNoting(_ command: Command, event: CloudEvent, db: Database) throws -> String?

    /// What the event is about when its envelope names no `subject` (a fact's USCC), kept as the
    /// intake log row's `subject` so the log can be searched by it. By default nil.
    func subject(of command: Command) -> String?
}

extension IntakeApplier {
    public func subject(of command: Command) -> String? { nil }

    public func applyNoting(_ command: Command, event: CloudEvent, db: Database) throws -> String? {
        try apply(command, event: event, db: db)
        return nil
    }
}

/// Decides whether the client holding `clientKey` may publish this event (DESIGN §3.5).
public typealias IntakeAuthorizer = @Sendable (_ clientKey: String?, _ event: CloudEvent) -> Rejection?

/// The generic intake of every service: parse, authorise, validate, deduplicate by
/// `source`+`id` (conflict on different content), apply, quarantine what is refused — all of a
/// batch in one durable transaction (group commit), acks only after the commit.
public final class IntakePipeline<Applier: IntakeApplier>: IntakeProcessor {
    public let database: ServiceDatabase
    public let applier: Applier
    let clock: any WallClock
    let authorize: IntakeAuthorizer?
    /// Set when the service runs with `--simulated-clock`: `clock.advanced` moves it.
    let simulatedClock: TestClock?
    /// Runs after each batch commits and before its acks go out (e.g. writing the files a
    /// batch decided on), outside the database's write lock.
    let afterCommit: (@Sendable () -> Void)?
    let logger: Logger
    /// The largest outbox event one intake event may produce (`limitPublishedEvents`).
    let publishLimit = Atomic<Int64>(1 << 20)

    public init(
        database: ServiceDatabase, applier: Applier, clock: any WallClock, authorize: IntakeAuthorizer? = nil,
        logger: Logger, afterCommit: (@Sendable () -> Void)? = nil
    ) {
        self.afterCommit = afterCommit
        self.database = database
        self.applier = applier
        self.clock = clock
        self.authorize = authorize
        self.simulatedClock = clock as? TestClock
        self.logger = logger
    }

    public func limitPublishedEvents(toBytes: Int64) { publishLimit.store(toBytes, ordering: .relaxed) }

    /// Logs the batch's `unauthorized` refusals (DESIGN §3.5: refusals are logged), one line per
    /// sending key, with the key's first characters and what it tried.
    private func logUnauthorized(_ batch: [IntakeFrame], _ prepared: [Prepared?]) {
        var byKey: [String: (events: Int, type: String, source: String)] = [:]
        var order: [String] = []
        for (frame, p) in zip(batch, prepared) {
            guard case .rejected(_, let source, let type, let r)? = p, r.code == .unauthorized else { continue }
            let key = frame.clientKey.map { "\($0.prefix(8))…" } ?? "-"
            if byKey[key] == nil {
                order.append(key)
                byKey[key] = (0, String((type ?? "-").prefix(80)), String((source ?? "-").prefix(80)))
            }
            byKey[key]!.events += 1
        }
        for key in order {
            let e = byKey[key]!
            logger.warning(
                "intake events refused: unauthorized",
                metadata: ["key": "\(key)", "events": "\(e.events)", "type": "\(e.type)", "source": "\(e.source)"])
        }
    }

    /// Thrown inside a batch's transaction when event `index` appended an outbox event over the
    /// limit: the transaction rolls back and the batch is run again with that event refused.
    struct PublishesTooMuch: Error {
        var index: Int
        var type: String
        var bytes: Int64
    }

    enum Prepared {
        case rejected(id: String?, source: String?, type: String?, Rejection)
        case ready(CloudEvent, hash: [UInt8], Applier.Command)
        case clock(CloudEvent, hash: [UInt8], Date)
    }

    public func process(_ batch: [IntakeFrame]) throws -> [Ack] {
        // CPU work outside the write lock.
        let t0 = DispatchTime.now().uptimeNanoseconds
        // Parsing, validation and hashing are independent per frame: spread them over the cores.
        var prepared = [Prepared?](repeating: nil, count: batch.count)
        if batch.count >= 64 {
            let chunks = Swift.min(ProcessInfo.processInfo.activeProcessorCount, 8)
            let per = (batch.count + chunks - 1) / chunks
            prepared.withUnsafeMutableBufferPointer { out in
                nonisolated(unsafe) let out = out
                DispatchQueue.concurrentPerform(iterations: chunks) { c in
                    for k in (c * per)..<Swift.min(batch.count, (c + 1) * per) { out[k] = prepare(batch[k]) }
                }
            }
        } else {
            for k in batch.indices { prepared[k] = prepare(batch[k]) }
        }
        let t1 = DispatchTime.now().uptimeNanoseconds
        logUnauthorized(batch, prepared)
        let receivedAt = Timestamp.format(clock.now())
        var applied: UInt64 = 0
        defer {
            let t2 = DispatchTime.now().uptimeNanoseconds
            logger.debug(
                "intake batch committed",
                metadata: [
                    "events": "\(batch.count)", "prepare_ms": "\((t1 - t0) / 1_000_000)",
                    "apply_ms": "\((applied &- t1) / 1_000_000)", "commit_ms": "\((t2 &- applied) / 1_000_000)",
                ])
        }
        let limit = publishLimit.load(ordering: .relaxed)
        // A `clock.advanced` in the batch moves the simulated clock as it is applied; a batch run
        // again must start from the clock as it was (the rolled-back run's move is undone too).
        let clockBefore = simulatedClock?.now()
        var acks: [Ack]
        while true {
            if let clockBefore { simulatedClock?.restore(clockBefore) }
            do {
                acks = try write(batch, prepared, receivedAt: receivedAt, publishLimit: limit, applied: &applied)
                break
            } catch let big as PublishesTooMuch {
                // Rare: undo the whole batch and run it again with that event refused, so only its
                // effects are lost (the other events need no savepoint of their own).
                guard case .ready(let event, _, _)? = prepared[big.index] else { throw big }
                logger.warning(
                    "intake event refused: it would publish an event over max_message_bytes",
                    metadata: ["type": "\(event.type)", "publishes": "\(big.type)", "bytes": "\(big.bytes)", "limit": "\(limit)"])
                prepared[big.index] = .rejected(
                    id: event.id, source: event.source, type: event.type,
                    Rejection(
                        .tooLarge,
                        "applying this event would publish a \(big.type) event of \(big.bytes) bytes, over max_message_bytes (\(limit))"
                    ))
            } catch {
                // Not committed: the clients re-send, and the clock must not have moved.
                if let clockBefore { simulatedClock?.restore(clockBefore) }
                throw error
            }
        }
        afterCommit?()
        return acks
    }

    private func write(_ batch: [IntakeFrame], _ prepared: [Prepared?], receivedAt: String, publishLimit: Int64, applied: inout UInt64)
        throws -> [Ack]
    {
        var done: UInt64 = 0
        defer { applied = done }
        return try database.writer.write { db in
            defer { done = DispatchTime.now().uptimeNanoseconds }
            var acks: [Ack] = []
            acks.reserveCapacity(prepared.count)
            // The outbox's last sequence: each accepted event's new rows are checked for size.
            var outboxLast = Int64(clamping: try Outbox.lastSequence(db))
            let appended = try db.cachedStatement(sql: "SELECT sequence, type, length(body) FROM bus_outbox WHERE sequence > ?")
            for (k, (frame, p)) in zip(batch, prepared).enumerated() {
                switch p! {
                case .rejected(let id, let source, let type, let r):
                    try Quarantine.add(
                        db, origin: "intake", at: receivedAt, rejection: r, source: source, eventID: id, type: type, frame: frame.payload,
                        sender: frame.clientKey)
                    acks.append(.rejected(id, r))
                case .ready(let event, let hash, let command):
                    let ack: Ack
                    do {
                        ack = try admit(
                            db, event: event, hash: hash, command: command, frame: frame.payload, sender: frame.clientKey,
                            receivedAt: receivedAt)
                    } catch let big as OutboxEventTooLarge {
                        // The outbox refused it already (its limit is the service's): the same refusal.
                        throw PublishesTooMuch(index: k, type: big.type, bytes: big.bytes)
                    }
                    if ack.status == .accepted {
                        let rows = try Row.fetchCursor(appended, arguments: [outboxLast])
                        while let row = try rows.next() {
                            let bytes: Int64 = row[2]
                            if bytes > publishLimit { throw PublishesTooMuch(index: k, type: row[1], bytes: bytes) }
                            outboxLast = Swift.max(outboxLast, row[0])
                        }
                    }
                    acks.append(ack)
                case .clock(let event, let hash, let to):
                    acks.append(try admitClock(db, event: event, hash: hash, to: to, frame: frame.payload, receivedAt: receivedAt))
                }
            }
            return acks
        }
    }

    private func prepare(_ frame: IntakeFrame) -> Prepared {
        if let r = frame.preRejection { return .rejected(id: frame.idHint, source: nil, type: nil, r) }
        let event: CloudEvent
        do {
            event = try CloudEvent.parse(frame.payload)
        } catch {
            // Name the id when the frame is JSON with one, so pipelined clients can match the ack.
            let json = try? JSONParser.parse(frame.payload)
            return .rejected(id: json?["id"]?.stringValue, source: json?["source"]?.stringValue, type: json?["type"]?.stringValue, error)
        }
        if let authorize, let r = authorize(frame.clientKey, event) {
            return .rejected(id: event.id, source: event.source, type: event.type, r)
        }
        if event.type == SimulatedTime.eventType {
            return prepareClock(event)
        }
        guard applier.acceptedTypes.contains(event.type) else {
            return .rejected(
                id: event.id, source: event.source, type: event.type,
                Rejection(.unknownType, field: "type", "this service takes no events of type \(event.type.prefix(80))"))
        }
        do {
            let command = try applier.validate(event)
            return .ready(event, hash: SHA256.hash(event.canonicalContent().utf8), command)
        } catch {
            return .rejected(id: event.id, source: event.source, type: event.type, error)
        }
    }

    /// The furthest one `clock.advanced` may move the simulated clock: 100 years (of 365.25 days).
    static var maxClockStep: TimeInterval { 100 * 365.25 * 86_400 }

    /// `clock.advanced` (DESIGN §11): `data.to` (an RFC 3339 instant) or `data.seconds`; only a
    /// service started with `--simulated-clock` takes it; time never goes backwards.
    private func prepareClock(_ event: CloudEvent) -> Prepared {
        func refuse(_ r: Rejection) -> Prepared { .rejected(id: event.id, source: event.source, type: event.type, r) }
        guard let sim = simulatedClock else {
            return refuse(
                Rejection(.unauthorized, field: "type", "clock.advanced is taken only by a service started with --simulated-clock"))
        }
        var target: Date
        let now = sim.now()
        if let to = event.data?["to"] {
            guard let text = to.stringValue, let d = Timestamp.parse(text) else {
                return refuse(Rejection(.invalidDate, field: "data.to", "to must be an RFC 3339 instant"))
            }
            // Bounded both ways, so that no instant reaches a date the formatter cannot write.
            guard abs(d.timeIntervalSince(now)) <= Self.maxClockStep else {
                return refuse(
                    Rejection(
                        .invalidDate, field: "data.to", "to must be within 100 years of the simulated clock (\(Timestamp.format(now)))"))
            }
            target = d
        } else if let sec = event.data?["seconds"] {
            guard let n = sec.intValue, n >= 0 else {
                return refuse(Rejection(.invalidData, field: "data.seconds", "seconds must be a non-negative integer"))
            }
            guard Double(n) <= Self.maxClockStep else {
                return refuse(
                    Rejection(.invalidData, field: "data.seconds", "seconds must be at most \(Int64(Self.maxClockStep)) (100 years)"))
            }
            target = now.addingTimeInterval(TimeInterval(n))
        } else {
            return refuse(Rejection(.invalidData, field: "data.to", "give data.to (an RFC 3339 instant) or data.seconds"))
        }
        // Time only moves forward, unless the command says `"set": true` (placing a simulated
        // clock on a past date, e.g. the 2022 windows of the seed programmes, for a demo).
        if target < now && event.data?["set"]?.boolValue != true { target = now }
        return .clock(event, hash: SHA256.hash(event.canonicalContent().utf8), target)
    }

    private func admitClock(_ db: Database, event: CloudEvent, hash: [UInt8], to: Date, frame: [UInt8], receivedAt: String) throws -> Ack {
        let existing = try Data.fetchOne(
            db.cachedStatement(sql: "SELECT content_hash FROM bus_intake INDEXED BY bus_intake_key WHERE source = ? AND event_id = ?"),
            arguments: [event.source, event.id])
        if let existing {
            return existing == Data(hash)
                ? Ack(id: event.id, status: .duplicate)
                : .rejected(event.id, Rejection(.conflict, field: "id", "id reused for different content"))
        }
        try db.cachedStatement(
            sql: "INSERT INTO bus_intake(source, event_id, content_hash, type, subject, received_at, body) VALUES (?, ?, ?, ?, ?, ?, ?)"
        ).execute(arguments: [event.source, event.id, Data(hash), event.type, event.subject, receivedAt, Data(frame)])
        simulatedClock?.restore(to)
        try SimulatedTime.save(db, Timestamp.format(to))
        return Ack(id: event.id, status: .accepted)
    }

    private func admit(
        _ db: Database, event: CloudEvent, hash: [UInt8], command: Applier.Command, frame: [UInt8], sender: String?, receivedAt: String
    ) throws -> Ack {
        let existing = try Data.fetchOne(
            db.cachedStatement(sql: "SELECT content_hash FROM bus_intake INDEXED BY bus_intake_key WHERE source = ? AND event_id = ?"),
            arguments: [event.source, event.id])
        if let existing {
            if existing == Data(hash) { return Ack(id: event.id, status: .duplicate) }
            let r = Rejection(
                .conflict, field: "id", "id \(event.id.prefix(80)) from \(event.source.prefix(80)) was already used for different content")
            try Quarantine.add(
                db, origin: "intake", at: receivedAt, rejection: r, source: event.source, eventID: event.id, type: event.type, frame: frame,
                sender: sender)
            return .rejected(event.id, r)
        }
        var refusal: Rejection?
        var note: String?
        func take() throws {
            try db.cachedStatement(
                sql: "INSERT INTO bus_intake(source, event_id, content_hash, type, subject, received_at, body) VALUES (?, ?, ?, ?, ?, ?, ?)"
            ).execute(arguments: [
                event.source, event.id, Data(hash), event.type, event.subject ?? applier.subject(of: command), receivedAt, Data(frame),
            ])
            note = try applier.applyNoting(command, event: event, db: db)
        }
        if applier.refusesWhileApplying {
            try db.inSavepoint {
                do {
                    try take()
                } catch let r as Rejection {
                    refusal = r
                    return .rollback
                }
                return .commit
            }
        } else {
            try take()
        }
        if let r = refusal {
            try Quarantine.add(
                db, origin: "intake", at: receivedAt, rejection: r, source: event.source, eventID: event.id, type: event.type, frame: frame,
                sender: sender)
            return .rejected(event.id, r)
        }
        return Ack(id: event.id, status: .accepted, note: note)
    }
}

/// Rejected input, kept with its reason so that an operator can list, fix and re-submit it.
public enum Quarantine {
    /// Adds a row. `sender` is the publishing client's CURVE public key, when it had one.
    public static func add(
        _ db: Database, origin: String, at: String, rejection r: Rejection, source: String?, eventID: String?, type: String?,
        frame: [UInt8], sender: String? = nil
    ) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO bus_quarantine(received_at, origin, code, field, message, source, event_id, type, frame, sender_key)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).execute(arguments: [at, origin, r.code.rawValue, r.field, r.message, source, eventID, type, Data(frame), sender])
    }

    public static func count(_ db: Database) throws -> Int {
        try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM bus_quarantine") ?? 0
    }

    public static func countsByCode(_ db: Database) throws -> [String: Int] {
        var out: [String: Int] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT code, COUNT(*) AS n FROM bus_quarantine GROUP BY code") {
            out[row["code"]] = row["n"]
        }
        return out
    }

    static func item(_ row: Row, withFrame: Bool) -> JSON {
        var o = JSONObject()
        o["id"] = .string(String(row["id"] as Int64))
        o["received_at"] = .string(row["received_at"])
        o["origin"] = .string(row["origin"])
        o["code"] = .string(row["code"])
        o["field"] = (row["field"] as String?).map { .string($0) } ?? .null
        o["message"] = .string(row["message"])
        o["source"] = (row["source"] as String?).map { .string($0) } ?? .null
        o["event_id"] = (row["event_id"] as String?).map { .string($0) } ?? .null
        o["type"] = (row["type"] as String?).map { .string($0) } ?? .null
        o["sender_key"] = (row["sender_key"] as String?).map { .string($0) } ?? .null
        if withFrame {
            let frame: Data = row["frame"]
            if let text = String(validating: [UInt8](frame), as: UTF8.self) {
                o["frame"] = .string(text)
            } else {
                o["frame_base64"] = .string(frame.base64EncodedString())
            }
        }
        return .object(o)
    }

    public static func list(_ db: Database, after: Int64, max: Int, code: String?) throws -> [JSON] {
        var sql =
            "SELECT id, received_at, origin, code, field, message, source, event_id, type, sender_key FROM bus_quarantine WHERE id > ?"
        var args: [any DatabaseValueConvertible] = [after]
        if let code {
            sql += " AND code = ?"
            args.append(code)
        }
        sql += " ORDER BY id LIMIT ?"
        args.append(max)
        return try Row.fetchAll(db, sql: sql, arguments: StatementArguments(args)).map { item($0, withFrame: false) }
    }

    public static func show(_ db: Database, id: Int64) throws -> JSON? {
        try Row.fetchOne(db, sql: "SELECT * FROM bus_quarantine WHERE id = ?", arguments: [id]).map { item($0, withFrame: true) }
    }
}

/// The simulated clock's position, kept in the database so that a restarted service resumes at
/// the simulated time it had reached.
public enum SimulatedTime {
    public static let eventType = "clock.advanced"

    public static func save(_ db: Database, _ rfc3339: String) throws {
        try db.execute(
            sql: "INSERT INTO bus_meta(key, value) VALUES ('simulated_now', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            arguments: [rfc3339])
    }

    /// Restores a simulated clock from the database (no-op for a system clock).
    public static func restore(_ clock: any WallClock, from database: ServiceDatabase) throws {
        guard let sim = clock as? TestClock else { return }
        let saved = try database.writer.read { db in
            try String.fetchOne(db, sql: "SELECT value FROM bus_meta WHERE key = 'simulated_now'")
        }
        if let saved, let d = Timestamp.parse(saved) { sim.restore(d) }
    }
}
