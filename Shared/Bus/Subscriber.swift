import CZeroMQ
import Foundation
import Logging
import Models
import Synchronization

/// Where one upstream feed is.
public struct UpstreamFeed: Sendable {
    /// The feed's name, used as the inbox cursor key (e.g. "registry").
    public var name: String
    public var feed: String
    public var replay: String

    public init(name: String, feed: String, replay: String) {
        self.name = name
        self.feed = feed
        self.replay = replay
    }
}

public struct SubscriberSettings: Sendable {
    public var socket = ZSocketOptions()
    public var replayPage = 1_000
    public var replayTimeoutMs = 3_000
    /// Retry pause after a failed apply (a database error), so a broken disk is not spun on.
    public var applyRetryMs = 500
    /// Largest batch of live events applied in one transaction.
    public var maxLiveBatch = 2_000
    /// The keys this subscriber presents to a CURVE upstream.
    public var curve: CurveClientKeys?
    /// The upstream's heartbeat interval (`NodeSettings.heartbeatMs`).
    public var heartbeatMs = 1_000
    /// Silence on the feed for this many heartbeat intervals means the subscription is dead
    /// (libzmq drops a connection for good on a frame over `ZMQ_MAXMSGSIZE`, without telling
    /// the socket): the SUB socket is recreated and a replay probes for what was missed.
    public var silentHeartbeats = 5
    /// Consecutive replay timeouts at which a warning is logged (and every 20th after it).
    public var replayTimeoutsBeforeWarning = 3

    public init() {}
}

public struct SubscriberStatus: Sendable {
    public var cursor: UInt64 = 0
    /// The upstream's last sequence as last heard (replay end frame or heartbeat).
    public var upstreamLast: UInt64 = 0
    public var replayPages = 0
    public var gapsDetected = 0
    public var liveApplied = 0
    public var replayApplied = 0
    public var caughtUp = false
    /// Times the SUB socket was recreated because the feed fell silent.
    public var resubscribes = 0
    /// Replay requests that timed out in a row (0 once one is answered).
    public var replayTimeoutsInARow = 0
    public var lag: UInt64 { upstreamLast > cursor ? upstreamLast - cursor : 0 }
}

/// Follows one upstream feed exactly once (DESIGN §3.3): SUB first, then replay from the stored
/// cursor until caught up, then live events; a gap in sequences or a heartbeat ahead of the
/// cursor sends it back to replay. Its sockets live on one dedicated thread.
public final class FeedSubscriber: Sendable {
    public let upstream: UpstreamFeed
    let context: ZContext
    let consumer: any FeedConsumer
    let omitted: Set<String>
    let settings: SubscriberSettings
    let logger: Logger
    /// Test hook: return true to drop a live event as if the network lost it.
    let dropLive: (@Sendable (UInt64) -> Bool)?
    let wake = WakePipe()
    let state = Mutex(Shared())
    private let finished = DispatchSemaphore(value: 0)

    struct Shared {
        var stopping = false
        var started = false
        var status = SubscriberStatus()
    }

    public init(
        upstream: UpstreamFeed, context: ZContext, consumer: any FeedConsumer, settings: SubscriberSettings = SubscriberSettings(),
        logger: Logger, dropLive: (@Sendable (UInt64) -> Bool)? = nil
    ) {
        self.upstream = upstream
        self.context = context
        self.consumer = consumer
        self.omitted = consumer.omittedDataMembers(feed: upstream.name)
        self.settings = settings
        self.logger = logger
        self.dropLive = dropLive
    }

    public var status: SubscriberStatus { state.withLock { $0.status } }

    /// Starts the subscriber's thread; throws if the system refuses one.
    public func start() throws(ThreadStartError) {
        state.withLock { $0.started = true }
        do {
            try DedicatedThread.start(name: "sub.\(upstream.name)") { [self] in self.threadMain() }
        } catch {
            state.withLock { $0.started = false }
            throw error
        }
    }

    public func stopAndWait() {
        let started = state.withLock { s -> Bool in
            s.stopping = true
            return s.started
        }
        wake.wake()
        if started { finished.wait() }
    }

    public func stop() async {
        await DedicatedThread.run(name: "sub.stop") { self.stopAndWait() }
    }

    private var stopping: Bool { state.withLock { $0.stopping } }

    private func threadMain() {
        defer { finished.signal() }
        var sub: ZSocket
        do {
            sub = try openSubscription()
        } catch {
            logger.critical("cannot open the feed subscription", metadata: ["feed": "\(upstream.feed)", "error": "\(error)"])
            return
        }
        defer { sub.close() }
        var dealer: ZSocket?
        defer { dealer?.close() }

        var cursor: UInt64
        while true {
            do {
                cursor = try consumer.cursor(feed: upstream.name)
                break
            } catch {
                logger.error("cannot read the inbox cursor", metadata: ["error": "\(error)"])
                if waitForWake(ms: settings.applyRetryMs) { return }
            }
        }
        setStatus { $0.cursor = cursor }
        var needCatchUp = true
        var poller = ZPoller([.socket(sub), .fd(wake.readFD)])
        // The feed watchdog (docs/protocol.md §7 rule 4): the upstream sends a heartbeat every
        // `heartbeatMs`, so a longer silence means this subscription no longer hears it.
        let silenceNs = UInt64(max(1, settings.silentHeartbeats)) * UInt64(max(1, settings.heartbeatMs)) * 1_000_000
        var lastHeard = DispatchTime.now().uptimeNanoseconds
        while !stopping {
            if needCatchUp {
                switch replayPage(&dealer, after: cursor) {
                case .stopped:
                    return
                case .unavailable:
                    continue
                case .page(let deliveries, let last):
                    setStatus {
                        $0.upstreamLast = max($0.upstreamLast, last)
                        $0.replayPages += 1
                    }
                    let fresh = deliveries.filter { $0.sequence > cursor }
                    if !fresh.isEmpty {
                        guard Self.contiguous(fresh, after: cursor) else {
                            logger.error("replay page is not contiguous; asking again", metadata: ["after": "\(cursor)"])
                            continue
                        }
                        guard applyOrPause(fresh) else { continue }
                        cursor = fresh.last!.sequence
                        let c = cursor
                        setStatus {
                            $0.cursor = c
                            $0.replayApplied += fresh.count
                        }
                    }
                    if cursor >= last {
                        needCatchUp = false
                        setStatus { $0.caughtUp = true }
                        // The upstream just answered: give the live feed a fresh window.
                        lastHeard = DispatchTime.now().uptimeNanoseconds
                    }
                    continue
                }
            }
            let readable: [Bool]
            do {
                readable = try poller.poll(timeoutMs: 250)
            } catch {
                if error.isTerminated { return }
                continue
            }
            if readable[1] { wake.drain() }
            guard readable[0] else {
                if DispatchTime.now().uptimeNanoseconds - lastHeard >= silenceNs {
                    // Nothing, not even a heartbeat: recreate the SUB socket (connect first, as
                    // at start) and probe with a replay.
                    logger.warning(
                        "feed silent past its heartbeat; resubscribing and replaying",
                        metadata: ["feed": "\(upstream.name)", "silent_ms": "\(silenceNs / 1_000_000)"])
                    do {
                        let fresh = try openSubscription()
                        sub.close()
                        sub = fresh
                        poller = ZPoller([.socket(sub), .fd(wake.readFD)])
                    } catch {
                        if error.isTerminated { return }
                        logger.error("cannot reopen the feed subscription", metadata: ["feed": "\(upstream.feed)", "error": "\(error)"])
                    }
                    lastHeard = DispatchTime.now().uptimeNanoseconds
                    needCatchUp = true
                    setStatus {
                        $0.resubscribes += 1
                        $0.caughtUp = false
                    }
                }
                continue
            }
            lastHeard = DispatchTime.now().uptimeNanoseconds
            var batch: [FeedDelivery] = []
            var expected = cursor + 1
            while batch.count < settings.maxLiveBatch {
                guard let msg = try? sub.receive(dontWait: true, maxFrames: 2), msg.frames.count == 2 else { break }
                let topic = msg.frames[0]
                if topic == Self.heartbeatTopic {
                    if let hb = try? JSONParser.parse(msg.frames[1]), let s = hb["sequence"]?.stringValue, let last = UInt64(s) {
                        setStatus { $0.upstreamLast = max($0.upstreamLast, last) }
                        if last >= expected {
                            // The tail was lost (or the publisher restarted): replay it.
                            needCatchUp = true
                        }
                    }
                    continue
                }
                // An event of a type the consumer does not apply is read only for its sequence.
                let delivery: FeedDelivery
                if let type = UTF8Text.string(msg.frames[0]), !consumer.wants(feed: upstream.name, type: type),
                    let peek = EventPeek.typeAndSequence(msg.frames[1]), peek.type == type
                {
                    delivery = .skipped(peek.sequence)
                } else if let ev = try? CloudEvent.parse(msg.frames[1], omittingData: omitted), let seq = ev.sequenceNumber {
                    delivery = FeedDelivery(sequence: seq, event: ev, raw: msg.frames[1], error: nil)
                } else {
                    logger.warning("unparseable live event; will replay", metadata: ["feed": "\(upstream.name)"])
                    needCatchUp = true
                    break
                }
                let seq = delivery.sequence
                if seq < expected { continue }
                if let dropLive, dropLive(seq) { continue }
                if seq > expected {
                    needCatchUp = true
                    setStatus {
                        $0.gapsDetected += 1
                        $0.upstreamLast = max($0.upstreamLast, seq)
                    }
                    break
                }
                batch.append(delivery)
                expected += 1
            }
            if needCatchUp { setStatus { $0.caughtUp = false } }
            if !batch.isEmpty {
                if applyOrPause(batch) {
                    cursor = batch.last!.sequence
                    let c = cursor
                    let n = batch.count
                    setStatus {
                        $0.cursor = c
                        $0.liveApplied += n
                        $0.upstreamLast = max($0.upstreamLast, c)
                    }
                } else {
                    needCatchUp = true
                }
            }
        }
    }

    static let heartbeatTopic = Array("_hb".utf8)

    /// A SUB socket connected to the upstream's feed, subscribed to everything.
    private func openSubscription() throws(ZMQError) -> ZSocket {
        let sub = try context.socket(.sub)
        do {
            // The socket options' receive HWM (10,000): a subscriber that falls further behind
            // loses live events past it, sees the gap and replays them from the upstream's
            // outbox, so its memory stays bounded (at 100,000 queued events of ~2 KB, three
            // feeds held ~600 MB in a lagging notifier).
            try sub.apply(settings.socket, tcpHeartbeats: Endpoint.isTCP(upstream.feed))
            if let c = settings.curve { try sub.applyCurveClient(c) }
            try sub.subscribe("")
            try sub.connect(upstream.feed)
        } catch {
            sub.close()
            throw error
        }
        return sub
    }

    static func contiguous(_ d: [FeedDelivery], after cursor: UInt64) -> Bool {
        var expected = cursor + 1
        for x in d {
            if x.sequence != expected { return false }
            expected += 1
        }
        return true
    }

    private func setStatus(_ f: (inout SubscriberStatus) -> Void) {
        state.withLock { f(&$0.status) }
    }

    /// Waits for a wake-up or `ms`; returns true if stopping.
    private func waitForWake(ms: Int) -> Bool {
        var p = ZPoller([.fd(wake.readFD)])
        _ = try? p.poll(timeoutMs: ms)
        wake.drain()
        return stopping
    }

    private func applyOrPause(_ deliveries: [FeedDelivery]) -> Bool {
        do {
            try consumer.apply(feed: upstream.name, deliveries.filter { !$0.skipped }, through: deliveries.last!.sequence)
            return true
        } catch {
            logger.error(
                "applying upstream events failed; will retry",
                metadata: ["feed": "\(upstream.name)", "from": "\(deliveries.first?.sequence ?? 0)", "error": "\(error)"])
            _ = waitForWake(ms: settings.applyRetryMs)
            return false
        }
    }

    enum ReplayResult {
        case page([FeedDelivery], last: UInt64)
        case unavailable
        case stopped
    }

    /// One replay request (Lazy Pirate: a timed-out DEALER is closed and replaced).
    private func replayPage(_ dealer: inout ZSocket?, after: UInt64) -> ReplayResult {
        if dealer == nil {
            do {
                let d = try context.socket(.dealer)
                try d.apply(settings.socket, tcpHeartbeats: Endpoint.isTCP(upstream.replay))
                try d.set(ZMQ_IMMEDIATE, Int32(0))
                if let c = settings.curve { try d.applyCurveClient(c) }
                try d.connect(upstream.replay)
                dealer = d
            } catch {
                logger.error("cannot open the replay socket", metadata: ["error": "\(error)"])
                return waitForWake(ms: settings.applyRetryMs) ? .stopped : .unavailable
            }
        }
        let d = dealer!
        let req = JSON.object(
            JSONObject(["op": "replay", "after": .string(String(after)), "max": .int(Int64(settings.replayPage))]))
        _ = try? d.send([req.serializedBytes()], dontWait: true)
        var poller = ZPoller([.socket(d), .fd(wake.readFD)])
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(settings.replayTimeoutMs) * 1_000_000
        while true {
            if stopping { return .stopped }
            let now = DispatchTime.now().uptimeNanoseconds
            if now >= deadline {
                d.close()
                dealer = nil
                let inARow = state.withLock { s -> Int in
                    s.status.replayTimeoutsInARow += 1
                    return s.status.replayTimeoutsInARow
                }
                // One timeout is a restart or a blip; several in a row is an upstream that
                // cannot be reached (or that drops this client: a frame over max_message_bytes).
                let metadata: Logger.Metadata = [
                    "feed": "\(upstream.name)", "replay": "\(upstream.replay)", "timeouts_in_a_row": "\(inARow)",
                ]
                // A warning at the threshold and every 20th after it: an upstream down for hours
                // is one line a minute, not one every few seconds.
                let threshold = settings.replayTimeoutsBeforeWarning
                if inARow == threshold || (inARow > threshold && (inARow - threshold) % 20 == 0) {
                    logger.warning("replay keeps timing out; reconnecting", metadata: metadata)
                } else {
                    logger.debug("replay timed out; reconnecting", metadata: metadata)
                }
                return .unavailable
            }
            guard let r = try? poller.poll(timeoutMs: Int((deadline - now) / 1_000_000) + 1) else { continue }
            if r[1] { wake.drain() }
            if r[0] {
                guard let msg = try? d.receive(dontWait: true, maxFrames: settings.replayPage + 2) else { continue }
                setStatus { $0.replayTimeoutsInARow = 0 }
                let frames = msg.frames.filter { !$0.isEmpty }
                guard let endFrame = frames.last, let end = try? JSONParser.parse(endFrame),
                    end["op"]?.stringValue == "end", let lastText = end["last"]?.stringValue, let last = UInt64(lastText)
                else {
                    logger.error("unexpected replay answer", metadata: ["feed": "\(upstream.name)"])
                    return waitForWake(ms: settings.applyRetryMs) ? .stopped : .unavailable
                }
                var deliveries: [FeedDelivery] = []
                var previous = after
                for body in frames.dropLast() {
                    if let peek = EventPeek.typeAndSequence(body), !consumer.wants(feed: upstream.name, type: peek.type) {
                        deliveries.append(.skipped(peek.sequence))
                        previous = peek.sequence
                        continue
                    }
                    do {
                        let ev = try CloudEvent.parse(body, omittingData: omitted)
                        let seq = ev.sequenceNumber ?? previous + 1
                        deliveries.append(FeedDelivery(sequence: seq, event: ev, raw: body, error: nil))
                        previous = seq
                    } catch {
                        deliveries.append(FeedDelivery(sequence: previous + 1, event: nil, raw: body, error: error))
                        previous += 1
                    }
                }
                return .page(deliveries, last: last)
            }
        }
    }
}
