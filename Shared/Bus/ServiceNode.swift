import CZeroMQ
import Foundation
import Logging
import Models
import Synchronization

/// The endpoints a service binds (DESIGN §3).
public struct NodeEndpoints: Sendable {
    public var intake: String
    public var feed: String
    public var replay: String

    public init(intake: String, feed: String, replay: String) {
        self.intake = intake
        self.feed = feed
        self.replay = replay
    }
}

/// Tuning of a service node.
public struct NodeSettings: Sendable {
    public var socket = ZSocketOptions()
    /// The most intake events committed in one transaction.
    public var maxBatch = 2_000
    /// The most event bytes taken into one intake batch (the frame that crosses it is the last).
    public var maxBatchBytes = 64 << 20
    /// The intake's receive high-water mark, per client connection: libzmq holds at most this
    /// many whole messages of one client before it stops reading that client's connection.
    public var intakeReceiveHWM: Int32 = 1_000
    /// The most frames an intake message may have (identity, delimiter and event included).
    public var maxFrames = 4
    public var heartbeatMs = 1_000
    /// The largest replay page served, whatever the client asks for.
    public var maxReplayPage = 10_000
    /// The most event bytes in one replay page: a page ends early at the event that would cross
    /// it (it holds at least one event), and the client asks again from the last one it got.
    public var maxReplayPageBytes = 8 << 20
    /// The replay socket's send high-water mark, per client connection: answers past it are
    /// dropped (counted as `unroutable_replies`) and the client asks again, instead of this
    /// process queuing a client's unread pages in memory.
    public var replaySendHWM: Int32 = 8
    /// How long to wait after stop for in-flight work (the drain limit).
    public var drainMs = 5_000
    /// CurveZMQ on the three sockets (DESIGN §3.5); a ZAP handler must run on the context.
    public var curve: CurveServer?
    /// The stack of each of the node's two threads.
    public var threadStackBytes = DedicatedThread.stackBytes

    public init() {}
}

/// Counters a node keeps for `status`.
public struct NodeCounters: Sendable {
    public var accepted: Int = 0
    public var duplicate: Int = 0
    public var rejected: Int = 0
    public var batches: Int = 0
    public var published: Int = 0
    public var replayRequests: Int = 0
    public var unroutableAcks: Int = 0
    /// Replay answers dropped: the client had gone, or had not read its earlier answers.
    public var unroutableReplies: Int = 0
    /// Replay requests and queries refused because the client's key has no right to them.
    public var unauthorizedRequests: Int = 0
    public var lastPublished: UInt64 = 0
    /// How long the recent intake batches took, from taking a batch's first event off the socket
    /// to its acks ready to send (parse, checks, apply, durable commit).
    public var batchLatency = LatencyWindow()
}

/// The last `capacity` durations (microseconds) and their percentiles, for `status`: a fixed
/// ring, so its memory never grows.
public struct LatencyWindow: Sendable {
    public static let capacity = 1_024
    private var samples: [UInt64] = []
    private var next = 0
    public private(set) var count = 0

    public init() {}

    public mutating func record(microseconds: UInt64) {
        count += 1
        if samples.count < Self.capacity {
            samples.append(microseconds)
        } else {
            samples[next] = microseconds
            next = (next + 1) % Self.capacity
        }
    }

    /// The nearest-rank percentile (0 < p ≤ 100) of the window, in microseconds; nil when empty.
    public func percentile(_ p: Int) -> UInt64? {
        guard !samples.isEmpty else { return nil }
        let sorted = samples.sorted()
        let rank = Swift.max(1, (sorted.count * p + 99) / 100)
        return sorted[min(rank, sorted.count) - 1]
    }

    public var max: UInt64? { samples.max() }
}

/// One service's bus presence: the intake ROUTER and the feed PUB, owned by one dedicated thread
/// running a `zmq_poll` loop, and the replay ROUTER (replay and queries), owned by a second one
/// (DESIGN §3.4) — so a subscriber catching up, or an operator's query, never waits behind an
/// intake batch being applied. Swift's cooperative pool is never blocked on libzmq: async code
/// talks to the node only through `start`, `stop` and `notifyOutbox`, which return at once.
public final class ServiceNode: Sendable {
    public let name: String
    public let endpoints: NodeEndpoints
    let context: ZContext
    let settings: NodeSettings
    let processor: any IntakeProcessor
    let feed: any FeedStore
    let responder: (any QueryResponder)?
    let logger: Logger
    /// Beaten at every heartbeat tick; long work on the node's thread reports progress on it
    /// (the service turns both into systemd's WATCHDOG=1).
    public let liveness: Liveness
    let wake = WakePipe()
    /// Wakes the replay thread (to stop).
    let replayWake = WakePipe()
    let state = Mutex(State())
    /// Signalled once by each of the two threads.
    private let finished = DispatchSemaphore(value: 0)
    private let ready = DispatchSemaphore(value: 0)

    struct State {
        var stopping = false
        var started = false
        var counters = NodeCounters()
        var startError: String?
        var ticks: [@Sendable () -> Void] = []
    }

    /// Adds `f` to what the node's loop calls on its own thread at every heartbeat tick (work
    /// between intake batches; proof of life goes through `liveness`).
    public func onTick(_ f: @escaping @Sendable () -> Void) { state.withLock { $0.ticks.append(f) } }

    public init(
        name: String, context: ZContext, endpoints: NodeEndpoints, settings: NodeSettings = NodeSettings(),
        processor: any IntakeProcessor, feed: any FeedStore, responder: (any QueryResponder)? = nil, logger: Logger,
        liveness: Liveness = Liveness()
    ) {
        self.liveness = liveness
        self.name = name
        self.context = context
        self.endpoints = endpoints
        self.settings = settings
        self.processor = processor
        self.feed = feed
        self.responder = responder
        self.logger = logger
        processor.limitPublishedEvents(toBytes: settings.socket.maxMessageBytes)
    }

    public var counters: NodeCounters { state.withLock { $0.counters } }

    /// Binds the three sockets on the owner thread and starts its loop. Returns once the sockets
    /// are bound (so the caller can report readiness), or throws if a bind failed.
    public func start() throws {
        state.withLock { $0.started = true }
        var running = 0
        do {
            try DedicatedThread.start(name: "\(name).node", stackBytes: settings.threadStackBytes) { [self] in self.threadMain() }
            running += 1
            try DedicatedThread.start(name: "\(name).replay", stackBytes: settings.threadStackBytes) { [self] in
                self.replayThreadMain()
            }
            running += 1
        } catch {
            // The system refused a thread: stop the one that may be up, then say why.
            for _ in 0..<running { ready.wait() }
            state.withLock { $0.stopping = true }
            wake.wake()
            replayWake.wake()
            for _ in 0..<running { finished.wait() }
            state.withLock { $0.started = false }
            throw error
        }
        ready.wait()
        ready.wait()
        if let err = state.withLock({ $0.startError }) {
            // One of the two may be up: stop it too.
            state.withLock { $0.stopping = true }
            wake.wake()
            replayWake.wake()
            finished.wait()
            finished.wait()
            // Both threads are gone: a later stop has nothing to wait for.
            state.withLock { $0.started = false }
            throw NodeError.bindFailed(err)
        }
    }

    /// Asks the loop to finish the batch in hand, close its sockets and end. Blocks (on the
    /// caller's thread) until it has; call from a detached context, not the cooperative pool.
    public func stopAndWait() {
        let started = state.withLock { s -> Bool in
            s.stopping = true
            return s.started
        }
        wake.wake()
        replayWake.wake()
        if started {
            finished.wait()
            finished.wait()
        }
    }

    public func stop() async {
        await DedicatedThread.run(name: "\(name).stop") { self.stopAndWait() }
    }

    /// Tells the publisher that new outbox rows were committed by another thread.
    public func notifyOutbox() { wake.wake() }

    /// The replay ROUTER's thread: replay pages and queries, read from the database's readers.
    private func replayThreadMain() {
        defer { finished.signal() }
        let replay: ZSocket
        do {
            replay = try context.socket(.router)
            try replay.apply(settings.socket, tcpHeartbeats: Endpoint.isTCP(endpoints.replay))
            // A client that asks and never reads gets few answers queued (the rest are dropped
            // and it asks again), however many pages it asked for.
            try replay.set(ZMQ_SNDHWM, settings.replaySendHWM)
            if let curve = settings.curve, Endpoint.isTCP(endpoints.replay) {
                if !(try replay.applyCurveServer(curve, kind: .replay)) { warnEnforceDomainRefused() }
            }
            try replay.bind(endpoints.replay, patienceMs: 2_000)
        } catch {
            state.withLock { $0.startError = $0.startError ?? "\(error)" }
            ready.signal()
            return
        }
        ready.signal()
        var poller = ZPoller([.socket(replay), .fd(replayWake.readFD)])
        while !state.withLock({ $0.stopping }) {
            let readable: [Bool]
            do {
                readable = try poller.poll(timeoutMs: 1_000)
            } catch {
                if error.isTerminated { break }
                logger.error("poll failed", metadata: ["error": "\(error)"])
                continue
            }
            if readable[1] { replayWake.drain() }
            if readable[0] { serveReplay(replay) }
        }
        replay.close()
    }

    private func threadMain() {
        defer { finished.signal() }
        let intake: ZSocket
        let pub: ZSocket
        do {
            intake = try context.socket(.router)
            pub = try context.socket(.pub)
            try intake.apply(settings.socket, tcpHeartbeats: Endpoint.isTCP(endpoints.intake))
            try intake.set(ZMQ_RCVHWM, settings.intakeReceiveHWM)
            // The feed keeps the socket options' send HWM (10,000 per subscriber): past it a slow
            // subscriber loses live events and replays them from the outbox, instead of this
            // process queuing a big commit's events for it in memory (600,000 × 2 KB at a million
            // merchants).
            try pub.apply(settings.socket, tcpHeartbeats: Endpoint.isTCP(endpoints.feed))
            if let curve = settings.curve {
                // Over tcp:// (DESIGN §3.5); ipc:// and inproc:// stay on this host, behind file
                // permissions and the process boundary.
                for (s, ep, kind) in [(intake, endpoints.intake, CurveSocketKind.intake), (pub, endpoints.feed, .feed)]
                where Endpoint.isTCP(ep) {
                    // The feed's own ZAP domain: a PUB cannot filter per subscriber, so the ZAP
                    // handler admits only keys whose grant may read the feed.
                    if !(try s.applyCurveServer(curve, kind: kind)) { warnEnforceDomainRefused() }
                }
            }
            try intake.bind(endpoints.intake, patienceMs: 2_000)
            try pub.bind(endpoints.feed, patienceMs: 2_000)
        } catch {
            state.withLock { $0.startError = $0.startError ?? "\(error)" }
            ready.signal()
            return
        }
        var lastPublished: UInt64
        do {
            lastPublished = try feed.lastSequence()
        } catch {
            state.withLock { $0.startError = $0.startError ?? "reading the outbox: \(error)" }
            intake.close()
            pub.close()
            ready.signal()
            return
        }
        state.withLock { $0.counters.lastPublished = lastPublished }
        ready.signal()
        logger.info(
            "bus node listening",
            metadata: [
                "intake": "\(endpoints.intake)", "feed": "\(endpoints.feed)", "replay": "\(endpoints.replay)",
                "last_sequence": "\(lastPublished)",
            ])

        var poller = ZPoller([.socket(intake), .fd(wake.readFD)])
        // The first heartbeat at once: a subscriber that followed this feed before learns of the
        // new epoch before anything else this start publishes (when its SUB is connected by then).
        var nextHeartbeat = DispatchTime.now().uptimeNanoseconds
        while true {
            if state.withLock({ $0.stopping }) { break }
            let now = DispatchTime.now().uptimeNanoseconds
            let timeout = nextHeartbeat > now ? Int((nextHeartbeat - now) / 1_000_000) + 1 : 0
            let readable: [Bool]
            do {
                readable = try poller.poll(timeoutMs: timeout)
            } catch {
                if error.isTerminated { break }
                logger.error("poll failed", metadata: ["error": "\(error)"])
                continue
            }
            if readable[1] { wake.drain() }
            if readable[0] { serveIntake(intake) }
            publish(pub, after: &lastPublished)
            if DispatchTime.now().uptimeNanoseconds >= nextHeartbeat {
                _ = try? pub.send([Array("_hb".utf8), heartbeat(lastPublished)])
                liveness.beat()
                for f in state.withLock({ $0.ticks }) { f() }
                nextHeartbeat = DispatchTime.now().uptimeNanoseconds + UInt64(settings.heartbeatMs) * 1_000_000
            }
        }
        // Drain: answer what already arrived on the intake, publish what was committed, and say
        // where the feed ends (subscribers then know this epoch's last event).
        serveIntake(intake)
        publish(pub, after: &lastPublished)
        _ = try? pub.send([Array("_hb".utf8), heartbeat(lastPublished)])
        intake.close(lingerMs: Int32(min(settings.drainMs, 2_000)))
        pub.close(lingerMs: Int32(min(settings.drainMs, 2_000)))
        logger.info("bus node stopped", metadata: ["last_sequence": "\(lastPublished)"])
    }

    /// `{"sequence":"<last>","epoch":"<epoch>"}` (no epoch when the feed has none).
    private func heartbeat(_ last: UInt64) -> [UInt8] {
        var o = JSONObject(["sequence": .string(String(last))])
        if let epoch = feed.epoch { o["epoch"] = .string(epoch) }
        return JSON.object(o).serializedBytes()
    }

    private func serveIntake(_ sock: ZSocket) {
        var envelopes: [[[UInt8]]] = []
        var frames: [IntakeFrame] = []
        var bytes = 0
        let started = DispatchTime.now().uptimeNanoseconds
        while frames.count < settings.maxBatch && bytes < settings.maxBatchBytes {
            let msg: ZMessage?
            do {
                msg = try sock.receive(dontWait: true, maxFrames: settings.maxFrames + 1)
            } catch {
                if !error.isTerminated { logger.error("intake receive failed", metadata: ["error": "\(error)"]) }
                break
            }
            guard let msg else { break }
            bytes += msg.frames.reduce(0) { $0 + $1.count }
            let (envelope, body) = Self.split(msg.frames)
            envelopes.append(envelope)
            if msg.overflow || msg.frames.count > settings.maxFrames || body.count != 1 {
                let n = msg.overflow ? "more than \(settings.maxFrames)" : "\(body.count)"
                // Name the first frame's id when it is readable, so a pipelining client can match the ack.
                let head = body.first ?? []
                let id = head.count <= Int(settings.socket.maxMessageBytes) ? (try? JSONParser.parse(head))?["id"]?.stringValue : nil
                frames.append(
                    IntakeFrame(
                        payload: Array(head.prefix(Int(settings.socket.maxMessageBytes))),
                        preRejection: Rejection(.tooLarge, "a message must carry exactly one event frame; got \(n) frames"), idHint: id))
            } else if body[0].count > Int(settings.socket.maxMessageBytes) {
                // Name the id in the ack when the frame is otherwise readable; keep only its head.
                let id = (try? JSONParser.parse(body[0]))?["id"]?.stringValue
                frames.append(
                    IntakeFrame(
                        payload: Array(body[0].prefix(4096)),
                        preRejection: Rejection(.tooLarge, "the frame exceeds max_message_bytes (\(settings.socket.maxMessageBytes))"),
                        idHint: id))
            } else {
                frames.append(IntakeFrame(payload: body[0], clientKey: msg.userID))
            }
        }
        guard !frames.isEmpty else { return }
        let acks: [Ack]
        do {
            acks = try processor.process(frames)
        } catch {
            logger.error("intake batch not committed; clients will retry", metadata: ["error": "\(error)", "events": "\(frames.count)"])
            return
        }
        var accepted = 0
        var duplicate = 0
        var rejected = 0
        for ack in acks {
            switch ack.status {
            case .accepted: accepted += 1
            case .duplicate: duplicate += 1
            case .rejected: rejected += 1
            }
        }
        // Counted before the acks go out, so a client that has its ack sees it in `status`.
        state.withLock {
            $0.counters.accepted += accepted
            $0.counters.duplicate += duplicate
            $0.counters.rejected += rejected
            $0.counters.batches += 1
            $0.counters.batchLatency.record(microseconds: (DispatchTime.now().uptimeNanoseconds &- started) / 1_000)
        }
        var unroutable = 0
        for (envelope, ack) in zip(envelopes, acks) {
            let sent = (try? sock.send(envelope + [ack.json.serializedBytes()])) ?? false
            if !sent { unroutable += 1 }
        }
        if unroutable > 0 { state.withLock { $0.counters.unroutableAcks += unroutable } }
    }

    /// Splits a ROUTER message into its envelope (identity and, for REQ peers, the empty
    /// delimiter) and its body. Only an empty frame right after the identity and followed by a
    /// body is a delimiter: a DEALER's lone empty frame is an (empty, so `invalid_json`) event.
    static func split(_ frames: [[UInt8]]) -> ([[UInt8]], [[UInt8]]) {
        guard !frames.isEmpty else { return ([], []) }
        if frames.count >= 3 && frames[1].isEmpty {
            return (Array(frames[...1]), Array(frames[2...]))
        }
        return ([frames[0]], Array(frames.dropFirst()))
    }

    private func serveReplay(_ sock: ZSocket) {
        for _ in 0..<64 {
            let msg: ZMessage?
            do {
                msg = try sock.receive(dontWait: true, maxFrames: settings.maxFrames + 1)
            } catch {
                break
            }
            guard let msg else { return }
            let (envelope, body) = Self.split(msg.frames)
            state.withLock { $0.counters.replayRequests += 1 }
            let reply = answer(body, client: msg.userID)
            // Never blocks: past the peer's high-water mark (or when it is gone) the answer is
            // dropped, and the client asks again.
            let sent = (try? sock.send(envelope + reply, dontWait: true)) ?? false
            if !sent { state.withLock { $0.counters.unroutableReplies += 1 } }
        }
    }

    /// Whether the client may have `op` answered: always on `ipc://` and `inproc://` and without
    /// CURVE (no keys there); over CURVE only with its grant's read right (`replay`, or the query).
    func mayAsk(_ op: String, client: String?) -> Bool {
        guard let curve = settings.curve, Endpoint.isTCP(endpoints.replay) else { return true }
        guard let grant = curve.grant(for: client) else { return false }
        return op == "replay" ? grant.mayReplay : grant.mayQuery(op)
    }

    private func answer(_ body: [[UInt8]], client: String?) -> [[UInt8]] {
        func error(_ code: String, _ message: String) -> [[UInt8]] {
            [JSON.object(JSONObject(["op": "error", "code": .string(code), "message": .string(message)])).serializedBytes()]
        }
        guard body.count == 1, let req = try? JSONParser.parse(body[0]), let op = req["op"]?.stringValue else {
            return error("invalid_request", "send one frame: a JSON object with an \"op\"")
        }
        guard mayAsk(op, client: client) else {
            state.withLock { $0.counters.unauthorizedRequests += 1 }
            let name = settings.curve?.grant(for: client)?.name
            logger.warning(
                "replay socket request refused: unauthorized",
                metadata: ["client": "\(name ?? "-")", "key": "\(client.map { "\($0.prefix(8))…" } ?? "-")", "op": "\(op.prefix(40))"])
            return error("unauthorized", "this key may not ask \(op.prefix(80)) here: its grant has no such read right")
        }
        if op == "replay" {
            let after: UInt64
            switch req["after"] {
            case .string(let s)?:
                guard let v = UInt64(s) else { return error("invalid_request", "after must be a decimal sequence") }
                after = v
            case .int(let v)? where v >= 0: after = UInt64(v)
            case nil: after = 0
            default: return error("invalid_request", "after must be a decimal sequence")
            }
            var max = 1_000
            switch req["max"] {
            case .int(let v)? where v >= 0: max = Int(Swift.min(v, Int64(settings.maxReplayPage)))
            case .string(let s)?: if let v = Int(s), v >= 0 { max = Swift.min(v, settings.maxReplayPage) }
            case nil: break
            default: return error("invalid_request", "max must be a non-negative integer")
            }
            do {
                let last = try feed.lastSequence()
                let records = max > 0 ? try feed.records(after: after, max: max, maxBytes: settings.maxReplayPageBytes) : []
                var endObject = JSONObject(["op": "end", "last": .string(String(last))])
                if let epoch = feed.epoch { endObject["epoch"] = .string(epoch) }
                let end = JSON.object(endObject)
                return records.map(\.body) + [end.serializedBytes()]
            } catch {
                return self.errorFrames(error)
            }
        }
        guard let responder else { return error("unknown_op", "unknown op \(op)") }
        do {
            if let reply = try responder.respond(to: req) { return [reply.serializedBytes()] }
            return error("unknown_op", "unknown op \(op)")
        } catch {
            return self.errorFrames(error)
        }
    }

    private func warnEnforceDomainRefused() {
        logger.warning(
            "libzmq refused ZMQ_ZAP_ENFORCE_DOMAIN; the ZAP handler still admits only the allowlist",
            metadata: ["errno": "\(zmq_errno())"])
    }

    private func errorFrames(_ e: any Error) -> [[UInt8]] {
        [JSON.object(JSONObject(["op": "error", "code": "internal", "message": .string("\(e)")])).serializedBytes()]
    }

    private func publish(_ pub: ZSocket, after last: inout UInt64) {
        while true {
            let records: [FeedRecord]
            do {
                records = try feed.records(after: last, max: 5_000)
            } catch {
                logger.error("reading the outbox failed", metadata: ["error": "\(error)"])
                return
            }
            if records.isEmpty { return }
            for r in records {
                _ = try? pub.send([Array(r.type.utf8), r.body])
                last = r.sequence
            }
            let l = last
            state.withLock {
                $0.counters.published += records.count
                $0.counters.lastPublished = l
            }
            if records.count < 5_000 { return }
        }
    }
}

public enum NodeError: Error, CustomStringConvertible {
    case bindFailed(String)

    public var description: String {
        switch self {
        case .bindFailed(let s): "could not bind: \(s)"
        }
    }
}
