import BangfuTesting
import Bus
import Foundation
import GRDB
import Logging
import Models
import Storage
import Synchronization
import Testing

/// A tiny service used to test the bus library on its own: it takes `note.recorded` events,
/// stores the note, and publishes `note.stored`. `note.refused` is validated but refused when
/// applied (a database-dependent refusal).
struct NoteApplier: IntakeApplier {
    typealias Command = String
    let acceptedTypes: Set<String> = ["note.recorded", "note.refused", "note.echoed"]
    let refusesWhileApplying = true
    let outbox: Outbox

    func validate(_ event: CloudEvent) throws(Rejection) -> String {
        guard let text = event.data?["text"]?.stringValue else {
            throw Rejection(.invalidData, field: "data.text", "text is required")
        }
        return text
    }

    func apply(_ text: String, event: CloudEvent, db: Database) throws {
        if event.type == "note.refused" { throw Rejection(.late, "refused while applying") }
        try db.execute(sql: "INSERT INTO notes(text) VALUES (?)", arguments: [text])
        // Notes marked "aside" go out under another type, for subscribers that pass them over.
        let type = text.hasPrefix("aside") ? "note.aside" : "note.stored"
        // An echoed note publishes its text three times (an event that grows on the way out).
        let out = event.type == "note.echoed" ? String(repeating: text, count: 3) : text
        try outbox.append(db, type: type, subject: nil, id: "note/\(event.id)", data: ["text": .string(out)])
    }
}

/// A consumer that stores what it applies in its own database, cursor in the same transaction.
struct NoteConsumer: DatabaseFeedConsumer {
    let database: ServiceDatabase
    let applied = AsyncCondition()
    /// The types it applies (nil: every type).
    var wanted: Set<String>?

    static func inMemory(wanted: Set<String>? = nil) throws -> NoteConsumer {
        var c = try NoteConsumer(path: nil)
        c.wanted = wanted
        return c
    }

    func wants(feed: String, type: String) -> Bool { wanted?.contains(type) ?? true }

    init(path: String?) throws {
        database = try ServiceDatabase(path: path) { m in
            m.registerMigration("copies") { db in try db.execute(sql: "CREATE TABLE copies(sequence INTEGER PRIMARY KEY, text TEXT)") }
        }
    }

    /// Waits until the stored copies satisfy `predicate`.
    func wait(_ predicate: @escaping @Sendable ([Int64]) -> Bool) async -> Bool {
        await applied.wait { predicate((try? copies()) ?? []) }
    }

    func cursor(feed: String) throws -> UInt64 {
        try database.writer.read { db in try InboxCursor.get(db, feed: feed) }
    }

    func apply(feed: String, _ deliveries: [FeedDelivery], through: UInt64) throws {
        try database.writer.write { db in
            for d in deliveries {
                try db.execute(
                    sql: "INSERT INTO copies(sequence, text) VALUES (?, ?)",
                    arguments: [Int64(d.sequence), d.event?.data?["text"]?.stringValue])
            }
            try InboxCursor.set(db, feed: feed, to: through)
        }
        applied.signal()
    }

    func texts() throws -> [String] {
        try database.writer.read { db in try String.fetchAll(db, sql: "SELECT text FROM copies ORDER BY sequence") }
    }

    func storedCursor() throws -> UInt64 { try database.writer.read { db in try InboxCursor.get(db, feed: "notes") } }

    func copies() throws -> [Int64] {
        try database.writer.read { db in try Int64.fetchAll(db, sql: "SELECT sequence FROM copies ORDER BY sequence") }
    }
}

final class NoteService: Sendable {
    let context: ZContext
    let database: ServiceDatabase
    let node: ServiceNode
    let endpoints: NodeEndpoints

    init(
        context: ZContext, path: String? = nil, tag: String = UUID().uuidString, settings: NodeSettings = NodeSettings(),
        authorize: IntakeAuthorizer? = nil, feed: String? = nil, endpoints given: NodeEndpoints? = nil
    ) throws {
        self.context = context
        database = try ServiceDatabase(path: path) { m in
            m.registerMigration("notes") { db in try db.execute(sql: "CREATE TABLE notes(text TEXT)") }
        }
        let clock = TestClock(rfc3339: "2026-11-29T10:00:00+08:00")
        var logger = Logger(label: "test.notes")
        logger.logLevel = .warning
        let pipeline = IntakePipeline(
            database: database, applier: NoteApplier(outbox: Outbox(source: "/test/notes", clock: clock)), clock: clock,
            authorize: authorize, logger: logger)
        endpoints =
            given ?? NodeEndpoints(intake: "inproc://\(tag)-in", feed: feed ?? "inproc://\(tag)-feed", replay: "inproc://\(tag)-replay")
        node = ServiceNode(
            name: "notes", context: context, endpoints: endpoints, settings: settings, processor: pipeline,
            feed: OutboxFeedStore(database: database),
            responder: StandardQueries(service: "notes", database: database, live: { JSONObject() }), logger: logger)
        try node.start()
    }

    func publish(_ events: [CloudEvent]) async throws -> [PublishResult] {
        try await IntakeClient.publish(
            context: context, endpoint: endpoints.intake, events: events.map(OutgoingEvent.init), options: .forTests)
    }

    func notes() throws -> Int { try database.writer.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM notes")! } }
}

func note(_ text: String, id: String = UUID().uuidString, type: String = "note.recorded") -> CloudEvent {
    CloudEvent(id: id, source: "/test/client", type: type, data: ["text": .string(text)])
}

func quietLogger() -> Logger {
    var l = Logger(label: "test")
    l.logLevel = .critical
    return l
}

@Suite("Intake")
struct IntakeTests {
    @Test func pipelinedEventsAreAcknowledgedOnceCommittedInGroups() async throws {
        let ctx = ZContext()
        let svc = try NoteService(context: ctx)
        defer { svc.node.stopAndWait() }
        let events = (0..<3_000).map { note("n\($0)") }
        let results = try await svc.publish(events)
        #expect(results.count == 3_000)
        #expect(results.allSatisfy { $0.ack?.status == .accepted })
        #expect(Set(results.compactMap(\.ack?.id)) == Set(events.map(\.id)))
        #expect(try svc.notes() == 3_000)
        let c = svc.node.counters
        #expect(c.accepted == 3_000)
        // Group commit: many events per transaction.
        #expect(c.batches < 3_000)
    }

    @Test func aNodeThatCannotBindSaysWhyAndStopsCleanly() async throws {
        let ctx = ZContext()
        let tag = UUID().uuidString
        let first = try NoteService(context: ctx, tag: tag)
        defer { first.node.stopAndWait() }
        // A second node on the same replay endpoint: its replay thread cannot bind, and its
        // intake thread, which could, is stopped too.
        var endpoints = first.endpoints
        endpoints.intake = "inproc://\(tag)-other-in"
        endpoints.feed = "inproc://\(tag)-other-feed"
        let second = ServiceNode(
            name: "second", context: ctx, endpoints: endpoints,
            processor: IntakePipeline(
                database: first.database, applier: NoteApplier(outbox: Outbox(source: "/test/notes", clock: SystemClock())),
                clock: SystemClock(), logger: quietLogger()),
            feed: OutboxFeedStore(database: first.database), logger: quietLogger())
        #expect(throws: NodeError.self) { try second.start() }
        // Stopping a node whose start failed returns at once (nothing is left to wait for).
        let stopped = DispatchSemaphore(value: 0)
        try DedicatedThread.start(name: "test.stop") {
            second.stopAndWait()
            stopped.signal()
        }
        #expect(stopped.wait(timeout: .now() + 30) == .success, "stop after a failed start must not hang")
        // The other endpoints were released: a third node binds them.
        let third = ServiceNode(
            name: "third", context: ctx,
            endpoints: NodeEndpoints(intake: endpoints.intake, feed: endpoints.feed, replay: "inproc://\(tag)-third-replay"),
            processor: IntakePipeline(
                database: first.database, applier: NoteApplier(outbox: Outbox(source: "/test/notes", clock: SystemClock())),
                clock: SystemClock(), logger: quietLogger()),
            feed: OutboxFeedStore(database: first.database), logger: quietLogger())
        try third.start()
        third.stopAndWait()
    }

    @Test func aNodeRefusedItsThreadsSaysWhyAndLeavesItsEndpointsFree() async throws {
        let ctx = ZContext()
        let tag = UUID().uuidString
        let first = try NoteService(context: ctx, tag: tag)
        defer { first.node.stopAndWait() }
        let endpoints = NodeEndpoints(
            intake: "inproc://\(tag)-refused-in", feed: "inproc://\(tag)-refused-feed", replay: "inproc://\(tag)-refused-replay")
        func node(_ name: String, stackBytes: Int) -> ServiceNode {
            var settings = NodeSettings()
            settings.threadStackBytes = stackBytes
            return ServiceNode(
                name: name, context: ctx, endpoints: endpoints, settings: settings,
                processor: IntakePipeline(
                    database: first.database, applier: NoteApplier(outbox: Outbox(source: "/test/notes", clock: SystemClock())),
                    clock: SystemClock(), logger: quietLogger()),
                feed: OutboxFeedStore(database: first.database), logger: quietLogger())
        }
        let refused = node("refused", stackBytes: 1)
        #expect(throws: ThreadStartError.self) { try refused.start() }
        let stopped = DispatchSemaphore(value: 0)
        try DedicatedThread.start(name: "test.stop") {
            refused.stopAndWait()
            stopped.signal()
        }
        #expect(stopped.wait(timeout: .now() + 30) == .success, "stop after a refused start must not hang")
        // Nothing was bound: a node with the usual stack takes the same endpoints.
        let next = node("next", stackBytes: DedicatedThread.stackBytes)
        try next.start()
        next.stopAndWait()
    }

    @Test func sameEventTwiceIsADuplicateAndDifferentContentIsAConflict() async throws {
        let svc = try NoteService(context: ZContext())
        defer { svc.node.stopAndWait() }
        let e = note("hello", id: "fixed-id")
        let first = try await svc.publish([e])
        #expect(first[0].ack?.status == .accepted)
        // Same content with keys in another order and extra whitespace is the same event.
        let reordered = Array(
            #"{ "data": {"text":"hello"}, "type":"note.recorded","source":"/test/client","id":"fixed-id","specversion":"1.0","datacontenttype":"application/json" }"#
                .utf8)
        let again = try await IntakeClient.publish(
            context: svc.context, endpoint: svc.endpoints.intake, events: [OutgoingEvent(frame: reordered)], options: .forTests)
        #expect(again[0].ack?.status == .duplicate)
        let other = try await svc.publish([note("different", id: "fixed-id")])
        #expect(other[0].ack?.status == .rejected)
        #expect(other[0].ack?.rejection?.code == .conflict)
        #expect(try svc.notes() == 1)
        // The conflicting event is kept in quarantine.
        let q = try await svc.database.writer.read { db in try Quarantine.list(db, after: 0, max: 10, code: "conflict") }
        #expect(q.count == 1)
        // The same id from another source is a different event.
        var fromElsewhere = note("hello", id: "fixed-id")
        fromElsewhere.source = "/test/other"
        #expect(try await svc.publish([fromElsewhere])[0].ack?.status == .accepted)
    }

    @Test func duplicatesWithinOneBatchTakeEffectOnce() async throws {
        let svc = try NoteService(context: ZContext())
        defer { svc.node.stopAndWait() }
        let e = note("twice")
        let frames = [OutgoingEvent(e), OutgoingEvent(e)]
        // Sent back to back on one socket they usually land in one batch.
        let r = try await IntakeClient.publish(context: svc.context, endpoint: svc.endpoints.intake, events: frames, options: .forTests)
        #expect(r.compactMap(\.ack?.status).sorted { $0.rawValue < $1.rawValue } == [.accepted, .duplicate])
        #expect(try svc.notes() == 1)
    }

    @Test func refusalWhileApplyingRollsBackOnlyThatEvent() async throws {
        let svc = try NoteService(context: ZContext())
        defer { svc.node.stopAndWait() }
        let r = try await svc.publish([note("a"), note("b", type: "note.refused"), note("c")])
        #expect(r.map { $0.ack?.status } == [.accepted, .rejected, .accepted])
        #expect(r[1].ack?.rejection?.code == .late)
        #expect(try svc.notes() == 2)
        // Refused events are not recorded as taken: a retry is judged again, not "duplicate".
        let again = try await svc.publish([note("b", id: r[1].id!, type: "note.refused")])
        #expect(again[0].ack?.status == .rejected)
    }

    @Test func authorizerRefusalIsUnauthorized() async throws {
        let svc = try NoteService(context: ZContext()) { _, event in
            event.source.hasPrefix("/tax/") ? nil : Rejection(.unauthorized, field: "source", "this key may publish only /tax/ sources")
        }
        defer { svc.node.stopAndWait() }
        let r = try await svc.publish([note("x")])
        #expect(r[0].ack?.rejection?.code == .unauthorized)
        var ok = note("y")
        ok.source = "/tax/xuchang"
        #expect(try await svc.publish([ok])[0].ack?.status == .accepted)
    }

    @Test func malformedFramesGetStableCodesAndAreQuarantined() async throws {
        var settings = NodeSettings()
        settings.socket.maxMessageBytes = 4_096
        let svc = try NoteService(context: ZContext(), settings: settings)
        defer { svc.node.stopAndWait() }
        let cases: [([UInt8], RejectionCode)] = [
            ([0xFF, 0xFE, 0x00], .invalidJSON),
            (Array("{\"specversion\":".utf8), .invalidJSON),
            (Array("[1,2]".utf8), .invalidJSON),
            (Array(String(repeating: "[", count: 3_000).utf8), .invalidJSON),
            (Array(#"{"specversion":"0.3","id":"a","source":"/s","type":"note.recorded"}"#.utf8), .invalidEnvelope),
            (Array(#"{"specversion":"1.0","source":"/s","type":"note.recorded"}"#.utf8), .invalidEnvelope),
            (Array(#"{"specversion":"1.0","id":"b","source":"/s","type":"note.recorded","time":"yesterday"}"#.utf8), .invalidEnvelope),
            (Array(#"{"specversion":"1.0","id":"c","source":"/s","type":"weather.reported"}"#.utf8), .unknownType),
            (Array(#"{"specversion":"1.0","id":"d","source":"/s","type":"note.recorded","data":{}}"#.utf8), .invalidData),
            (
                Array(
                    ("{\"specversion\":\"1.0\",\"id\":\"e\",\"source\":\"/s\",\"type\":\"note.recorded\",\"data\":{\"text\":\""
                        + String(repeating: "x", count: 5_000) + "\"}}").utf8), .tooLarge
            ),
        ]
        for (frame, code) in cases {
            let r = try await IntakeClient.publish(
                context: svc.context, endpoint: svc.endpoints.intake, events: [OutgoingEvent(frame: frame)], options: .forTests)
            #expect(r[0].ack?.status == .rejected)
            #expect(r[0].ack?.rejection?.code == code, "frame \(String(decoding: frame.prefix(40), as: UTF8.self))")
            #expect(!(r[0].ack?.rejection?.message.isEmpty ?? true))
        }
        let kept = try await svc.database.writer.read { db in try Quarantine.count(db) }
        #expect(kept == cases.count)
        // Still healthy.
        #expect(try await svc.publish([note("fine")])[0].ack?.status == .accepted)
    }

    @Test func anEventWhoseEffectsWouldPublishOverTheLimitIsRefusedAlone() async throws {
        var settings = NodeSettings()
        settings.socket.maxMessageBytes = 4_096
        let svc = try NoteService(context: ZContext(), settings: settings)
        defer { svc.node.stopAndWait() }
        // The frame fits (2 KB), the event it would publish (6 KB) does not: a subscriber's libzmq
        // would drop its connection on it.
        let big = note(String(repeating: "y", count: 2_000), type: "note.echoed")
        let r = try await svc.publish([note("before"), big, note("echo", type: "note.echoed"), note("after")])
        #expect(r.map { $0.ack?.status } == [.accepted, .rejected, .accepted, .accepted])
        #expect(r[1].ack?.id == big.id)
        #expect(r[1].ack?.rejection?.code == .tooLarge)
        #expect(r[1].ack?.rejection?.message.contains("max_message_bytes") == true)
        #expect(try svc.notes() == 3)  // only the refused event's effects were undone
        let (quarantined, duplicateOfBig) = try await svc.database.writer.read { db in
            (
                try Quarantine.countsByCode(db),
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM bus_intake WHERE event_id = ?", arguments: [big.id])
            )
        }
        #expect(quarantined == ["too_large": 1])
        #expect(duplicateOfBig == 0)
        let records = try OutboxFeedStore(database: svc.database).records(after: 0, max: 10)
        #expect(records.map(\.sequence) == [1, 2, 3])
        #expect(records.allSatisfy { $0.body.count <= 4_096 })
    }

    /// A batch run again without its too-large event starts from the simulated clock as it was:
    /// an event before a `clock.advanced` in it is applied at the time before the move.
    @Test func aBatchRunAgainStartsFromTheClockAsItWas() throws {
        let database = try ServiceDatabase(path: nil) { m in
            m.registerMigration("notes") { db in try db.execute(sql: "CREATE TABLE notes(text TEXT)") }
        }
        let clock = TestClock(rfc3339: "2026-11-29T10:00:00+08:00")
        let start = clock.now()
        let pipeline = IntakePipeline(
            database: database, applier: NoteApplier(outbox: Outbox(source: "/test/notes", clock: clock)), clock: clock,
            logger: quietLogger())
        pipeline.limitPublishedEvents(toBytes: 4_096)
        let advance = CloudEvent(id: "day", source: "/test/operator", type: "clock.advanced", data: ["seconds": 86_400])
        let big = note(String(repeating: "y", count: 2_000), type: "note.echoed")  // publishes ~6 KB
        let acks = try pipeline.process(
            [note("before"), advance, big].map { IntakeFrame(payload: Array($0.serialized().utf8)) })
        #expect(acks.map(\.status) == [.accepted, .accepted, .rejected])
        #expect(acks[2].rejection?.code == .tooLarge)
        #expect(clock.now().timeIntervalSince(start) == 86_400)
        // The note before the clock's move was applied (in the run that committed) at the old time.
        let first = try #require(try OutboxFeedStore(database: database).records(after: 0, max: 1).first)
        let time = try JSONParser.parse(first.body)["time"]?.stringValue
        #expect(time.flatMap(Timestamp.parse) == start, "\(time ?? "no time")")
    }

    @Test func aClockAdvancedFarBeyondAnyDateIsRefusedNotACrash() async throws {
        let svc = try NoteService(context: ZContext())  // a TestClock: a simulated-clock service
        defer { svc.node.stopAndWait() }
        func advance(_ data: JSON) -> CloudEvent {
            CloudEvent(id: UUID().uuidString, source: "/test/operator", type: "clock.advanced", data: data)
        }
        let r = try await svc.publish([
            advance(["seconds": .int(Int64.max)]), advance(["to": "9999-12-31T23:59:59+08:00"]),
            advance(["to": "1066-10-14T09:00:00+00:00", "set": true]), advance(["seconds": .int(3_155_760_001)]),
        ])
        #expect(r.map { $0.ack?.rejection?.code } == [.invalidData, .invalidDate, .invalidDate, .invalidData])
        #expect(r[0].ack?.rejection?.field == "data.seconds")
        #expect(r[1].ack?.rejection?.field == "data.to")
        let kept = try await svc.database.writer.read { db in try Quarantine.count(db) }
        #expect(kept == 4)
        // Still serving, and a sensible step still moves the clock.
        #expect(try await svc.publish([advance(["seconds": 86_400]), note("after")]).map { $0.ack?.status } == [.accepted, .accepted])
    }

    @Test func anEmptyEventFrameIsInvalidJSONAndOnlyADelimiterBeforeABodyIsOne() async throws {
        let svc = try NoteService(context: ZContext())
        defer { svc.node.stopAndWait() }
        let event = note("two frames")
        let good = Array(event.serialized().utf8)
        let answers: [JSON?] = try await OwnerThread.run {
            let dealer = try svc.context.socket(.dealer)
            defer { dealer.close() }
            try dealer.connect(svc.endpoints.intake)
            var out: [JSON?] = []
            // An empty event; an event followed by an empty frame; a REQ-style delimiter with an
            // empty body; a REQ-style delimiter with an event.
            for frames in [[[]], [good, []], [[], []], [[], Array(note("req style").serialized().utf8)]] as [[[UInt8]]] {
                try dealer.send(frames, dontWait: false)
                var p = ZPoller([.socket(dealer)])
                guard try p.poll(timeoutMs: 10_000)[0], let m = try dealer.receive() else { return out }
                out.append(m.frames.last.flatMap { try? JSONParser.parse($0) })
            }
            return out
        }
        #expect(answers.count == 4)
        #expect(answers[0]?["error"]?["code"]?.stringValue == "invalid_json")
        #expect(answers[1]?["error"]?["code"]?.stringValue == "too_large")
        #expect(answers[1]?["id"]?.stringValue == event.id)
        #expect(answers[2]?["error"]?["code"]?.stringValue == "invalid_json")
        #expect(answers[3]?["status"]?.stringValue == "accepted")
    }

    @Test func messagesWithTooManyFramesAreRefusedAndReqClientsWork() async throws {
        let svc = try NoteService(context: ZContext())
        defer { svc.node.stopAndWait() }
        let good = Array(note("req").serialized().utf8)
        let answers: [[JSON]] = try await OwnerThread.run {
            let dealer = try svc.context.socket(.dealer)
            defer { dealer.close() }
            try dealer.connect(svc.endpoints.intake)
            try dealer.send([good, good, good], dontWait: false)
            var p = ZPoller([.socket(dealer)])
            guard try p.poll(timeoutMs: 10_000)[0], let m1 = try dealer.receive() else { return [] }
            let req = try svc.context.socket(.req)
            defer { req.close() }
            try req.connect(svc.endpoints.intake)
            try req.send([good], dontWait: false)
            var p2 = ZPoller([.socket(req)])
            guard try p2.poll(timeoutMs: 10_000)[0], let m2 = try req.receive() else { return [] }
            return [m1.frames.compactMap { try? JSONParser.parse($0) }, m2.frames.compactMap { try? JSONParser.parse($0) }]
        }
        #expect(answers.count == 2)
        #expect(answers[0].last?["error"]?["code"]?.stringValue == "too_large")
        #expect(answers[1].count == 1)
        #expect(answers[1].last?["status"]?.stringValue == "accepted")
    }

    @Test func lazyPirateClientRetriesWithTheSameIdUntilTheServiceAppears() async throws {
        let ctx = ZContext()
        let tag = UUID().uuidString
        let events = (0..<50).map { note("late \($0)") }
        var options = IntakeClientOptions()
        options.timeoutMs = 300
        options.retries = 20
        // A black hole takes the first attempt and never answers; then the real service binds
        // the same endpoint. Only a retry (same ids, fresh socket) can reach it.
        let hole = try ctx.socket(.router)
        try hole.bind("inproc://\(tag)-in")
        async let results = IntakeClient.publish(
            context: ctx, endpoint: "inproc://\(tag)-in", events: events.map(OutgoingEvent.init), options: options)
        let swallowed = try await OwnerThread.run {
            var p = ZPoller([.socket(hole)])
            guard try p.poll(timeoutMs: 20_000)[0] else { return false }
            hole.close()
            return true
        }
        #expect(swallowed)
        let svc = try NoteService(context: ctx, tag: tag)
        defer { svc.node.stopAndWait() }
        let r = try await results
        #expect(r.allSatisfy { $0.ack?.status == .accepted })
        // The hole took the first event (one DEALER's messages arrive in order): only a retry
        // reached the service. Events the client had not sent before the hole closed may go out
        // first on the fresh socket.
        #expect(r[0].attempts > 1)
        #expect(try svc.notes() == 50)
    }
}

@Suite("Feed and replay")
struct FeedTests {
    @Test func replayPagesAreGaplessAndTheEndFrameNamesTheLast() async throws {
        let svc = try NoteService(context: ZContext())
        defer { svc.node.stopAndWait() }
        _ = try await svc.publish((0..<25).map { note("p\($0)") })
        let ctx = svc.context
        let ep = svc.endpoints.replay
        let ready = try QueryClient.replay(context: ctx, endpoint: ep, after: 0, max: 0)
        #expect(ready?.events.isEmpty == true)
        #expect(ready?.last == 25)
        var seen: [UInt64] = []
        var after: UInt64 = 0
        while let page = try QueryClient.replay(context: ctx, endpoint: ep, after: after, max: 7), !page.events.isEmpty {
            #expect(page.events.count <= 7)
            #expect(page.last == 25)
            seen += page.events.compactMap(\.sequenceNumber)
            after = seen.last!
        }
        #expect(seen == Array(1...25))
        let mid = try QueryClient.replay(context: ctx, endpoint: ep, after: 10, max: 5)
        #expect(mid?.events.compactMap(\.sequenceNumber) == [11, 12, 13, 14, 15])
        let bad = try QueryClient.request(context: ctx, endpoint: ep, ["op": "replay", "after": "x"])
        #expect(bad?.last?["op"]?.stringValue == "error")
    }

    @Test func subscriberAppliesEveryEventExactlyOnceAndRecoversDroppedLiveEvents() async throws {
        let ctx = ZContext()
        let svc = try NoteService(context: ctx)
        defer { svc.node.stopAndWait() }
        _ = try await svc.publish((0..<10).map { note("before \($0)") })  // replayed on start
        let consumer = try NoteConsumer.inMemory()
        let dropped = Mutex<Set<UInt64>>([])
        let sub = FeedSubscriber(
            upstream: UpstreamFeed(name: "notes", feed: svc.endpoints.feed, replay: svc.endpoints.replay), context: ctx,
            consumer: consumer, logger: quietLogger(),
            dropLive: { seq in
                // Lose every 7th live event, once: the subscriber must notice and replay it.
                guard seq % 7 == 0 else { return false }
                return dropped.withLock { $0.insert(seq).inserted }
            })
        try sub.start()
        defer { sub.stopAndWait() }
        #expect(await consumer.wait { $0.count == 10 })
        _ = try await svc.publish((0..<200).map { note("live \($0)") })
        #expect(await consumer.wait { $0.count == 210 })
        #expect(try consumer.copies() == Array(1...210))  // the primary key also forbids applying twice
        #expect(sub.status.gapsDetected + sub.status.replayPages > 1)
        #expect(!dropped.withLock { $0 }.isEmpty)
    }

    @Test func eventsTheConsumerDoesNotWantArePassedOverButMoveTheCursor() async throws {
        let ctx = ZContext()
        let svc = try NoteService(context: ctx)
        defer { svc.node.stopAndWait() }
        func batch(_ tag: String, _ n: Int) -> [CloudEvent] { (0..<n).map { note($0 % 3 == 0 ? "aside \(tag)\($0)" : "kept \(tag)\($0)") } }
        _ = try await svc.publish(batch("r", 30))  // replayed on start
        let consumer = try NoteConsumer.inMemory(wanted: ["note.stored"])
        let dropped = Mutex<Set<UInt64>>([])
        let sub = FeedSubscriber(
            upstream: UpstreamFeed(name: "notes", feed: svc.endpoints.feed, replay: svc.endpoints.replay), context: ctx,
            consumer: consumer, logger: quietLogger(),
            dropLive: { seq in
                // Lose some live events once (wanted or not): the gap still has to be noticed.
                guard seq % 11 == 0 else { return false }
                return dropped.withLock { $0.insert(seq).inserted }
            })
        try sub.start()
        defer { sub.stopAndWait() }
        _ = try await svc.publish(batch("l", 300))
        #expect(await consumer.applied.wait { (try? consumer.storedCursor()) == 330 })
        let texts = try consumer.texts()
        #expect(texts.count == 20 + 200)
        #expect(texts.allSatisfy { $0.hasPrefix("kept") })
        #expect(Set(texts).count == texts.count)
        #expect(!dropped.withLock { $0 }.isEmpty)
        // Only the unwanted events at the very end: the cursor still reaches them.
        _ = try await svc.publish([note("aside tail 1"), note("aside tail 2")])
        #expect(await consumer.applied.wait { (try? consumer.storedCursor()) == 332 })
        #expect(try consumer.texts().count == 220)
    }

    @Test func aLostTailIsFoundThroughTheHeartbeat() async throws {
        let ctx = ZContext()
        var settings = NodeSettings()
        settings.heartbeatMs = 100
        let svc = try NoteService(context: ctx, settings: settings)
        defer { svc.node.stopAndWait() }
        let consumer = try NoteConsumer.inMemory()
        // Every live event is lost: only heartbeats can tell the subscriber that it is behind.
        let sub = FeedSubscriber(
            upstream: UpstreamFeed(name: "notes", feed: svc.endpoints.feed, replay: svc.endpoints.replay), context: ctx,
            consumer: consumer, logger: quietLogger(), dropLive: { _ in true })
        try sub.start()
        defer { sub.stopAndWait() }
        // The first event predates the subscriber and arrives by its initial replay; the second
        // is published after that, and its live copy is lost.
        _ = try await svc.publish([note("first")])
        #expect(await consumer.wait { $0 == [1] })
        _ = try await svc.publish([note("second")])
        #expect(await consumer.wait { $0 == [1, 2] })
    }

    @Test func aSubscriberDroppedByAnOversizedFrameRecoversThroughItsWatchdog() async throws {
        let ctx = ZContext()
        var settings = NodeSettings()
        settings.heartbeatMs = 100
        // ipc:// (like tcp://) goes through libzmq's decoder, which enforces ZMQ_MAXMSGSIZE.
        let feed = "ipc://" + NSTemporaryDirectory() + "bangfu-feed-\(UUID().uuidString.prefix(8))"
        let svc = try NoteService(context: ctx, settings: settings, feed: feed)
        defer { svc.node.stopAndWait() }
        let consumer = try NoteConsumer.inMemory()
        var subSettings = SubscriberSettings()
        subSettings.socket.maxMessageBytes = 4_096
        subSettings.heartbeatMs = 100
        let sub = FeedSubscriber(
            upstream: UpstreamFeed(name: "notes", feed: feed, replay: svc.endpoints.replay), context: ctx, consumer: consumer,
            settings: subSettings, logger: quietLogger())
        try sub.start()
        defer { sub.stopAndWait() }
        _ = try await svc.publish([note("first")])
        #expect(await consumer.wait { $0 == [1] })
        // A 6 KB event on the feed: libzmq drops this subscriber's connection for good (no
        // reconnect after a protocol error), so no later event or heartbeat reaches its SUB.
        _ = try await svc.publish([note(String(repeating: "z", count: 2_000), type: "note.echoed")])
        _ = try await svc.publish([note("later")])
        // The watchdog notices the silence, resubscribes and replays (inproc replay has no limit).
        #expect(await consumer.wait { $0 == [1, 2, 3] })
        #expect(sub.status.resubscribes >= 1)
        _ = try await svc.publish([note("live again")])
        #expect(await consumer.wait { $0 == [1, 2, 3, 4] })
    }

    @Test func aReplayThatKeepsTimingOutIsAWarning() async throws {
        let ctx = ZContext()
        let records = CapturedLogs()
        var logger = Logger(label: "test.capture") { _ in records }
        logger.logLevel = .debug
        var settings = SubscriberSettings()
        settings.replayTimeoutMs = 50
        // Nothing answers at this replay endpoint.
        let tag = UUID().uuidString
        let sub = FeedSubscriber(
            upstream: UpstreamFeed(name: "gone", feed: "inproc://\(tag)-feed", replay: "inproc://\(tag)-replay"), context: ctx,
            consumer: try NoteConsumer.inMemory(), settings: settings, logger: logger)
        try sub.start()
        defer { sub.stopAndWait() }
        #expect(await records.changed.wait { records.contains(level: .warning, "replay keeps timing out; reconnecting") })
        #expect(records.contains(level: .debug, "replay timed out; reconnecting"))
        #expect(sub.status.replayTimeoutsInARow >= 3)
    }

    @Test func subscriberResumesFromItsStoredCursorAcrossRestartsOfBothSides() async throws {
        let dir = NSTemporaryDirectory() + "bangfu-bus-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let ctx = ZContext()
        let tag = UUID().uuidString
        let consumer = try NoteConsumer(path: dir + "/consumer.sqlite")
        var svc: NoteService? = try NoteService(context: ctx, path: dir + "/notes.sqlite", tag: tag)
        _ = try await svc!.publish((0..<30).map { note("a\($0)") })
        var sub: FeedSubscriber? = FeedSubscriber(
            upstream: UpstreamFeed(name: "notes", feed: svc!.endpoints.feed, replay: svc!.endpoints.replay), context: ctx,
            consumer: consumer, logger: quietLogger())
        try sub!.start()
        #expect(await consumer.wait { $0.count == 30 })
        sub!.stopAndWait()
        sub = nil
        // The publisher restarts with more events while the subscriber is away.
        svc!.node.stopAndWait()
        svc = nil
        svc = try NoteService(context: ctx, path: dir + "/notes.sqlite", tag: tag)
        _ = try await svc!.publish((0..<20).map { note("b\($0)") })
        sub = FeedSubscriber(
            upstream: UpstreamFeed(name: "notes", feed: svc!.endpoints.feed, replay: svc!.endpoints.replay), context: ctx,
            consumer: consumer, logger: quietLogger())
        try sub!.start()
        #expect(await consumer.wait { $0.count == 50 })
        #expect(try consumer.copies() == Array(1...50))
        sub!.stopAndWait()
        svc!.node.stopAndWait()
    }
}

@Suite("Storage")
struct StorageTests {
    @Test func fileDatabasesUseWALWithFullSync() throws {
        let dir = NSTemporaryDirectory() + "bangfu-db-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let db = try ServiceDatabase(stateDir: dir, name: "x")
        #expect(try db.journalMode() == "wal")
        #expect(try db.synchronousLevel() == 2)  // FULL
    }

    @Test func outboxSequencesAreGaplessAcrossRolledBackTransactions() throws {
        let db = try ServiceDatabase(path: nil)
        let outbox = Outbox(source: "/test", clock: TestClock(rfc3339: "2026-11-29T10:00:00+08:00"))
        _ = try db.writer.write { d in try outbox.append(d, type: "t", subject: nil, id: "1", data: [:]) }
        struct Boom: Error {}
        _ = try? db.writer.write { d in
            try outbox.append(d, type: "t", subject: nil, id: "2", data: [:])
            throw Boom()
        }
        _ = try db.writer.write { d in try outbox.append(d, type: "t", subject: nil, id: "3", data: [:]) }
        let records = try OutboxFeedStore(database: db).records(after: 0, max: 10)
        #expect(records.map(\.sequence) == [1, 2])
        let second = try CloudEvent.parse(records[1].body)
        #expect(second.id == "3")
        #expect(second.sequence == "2")
    }

    /// Every path that appends to an outbox (intake, a feed being applied, a timer) goes through
    /// `append`: an event over the limit is refused there, and nothing is appended.
    @Test func theOutboxRefusesAnEventOverItsLimit() throws {
        let db = try ServiceDatabase(path: nil)
        let outbox = Outbox(source: "/test", clock: TestClock(rfc3339: "2026-11-29T10:00:00+08:00"), maxEventBytes: 2_048)
        _ = try db.writer.write { d in
            try outbox.append(d, type: "t", subject: nil, id: "small", data: ["text": .string(String(repeating: "x", count: 1_500))])
        }
        #expect(throws: OutboxEventTooLarge.self) {
            _ = try db.writer.write { d in
                try outbox.append(d, type: "t", subject: nil, id: "big", data: ["text": .string(String(repeating: "x", count: 2_048))])
            }
        }
        let records = try OutboxFeedStore(database: db).records(after: 0, max: 10)
        #expect(records.count == 1)
        #expect(records.allSatisfy { $0.body.count <= 2_048 })
    }
}

/// A log handler that keeps every message (for tests that check what is logged, and how loud).
final class CapturedLogs: LogHandler, @unchecked Sendable {
    private let lines = Mutex<[(Logger.Level, String)]>([])
    let changed = AsyncCondition()
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        lines.withLock { $0.append((event.level, event.message.description)) }
        changed.signal()
    }

    func contains(level: Logger.Level, _ message: String) -> Bool {
        lines.withLock { $0.contains { $0.0 == level && $0.1 == message } }
    }
}
