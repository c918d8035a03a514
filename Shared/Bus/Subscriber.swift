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
    /// The upstream's epoch as last heard (nil: it sends none).
    public var upstreamEpoch: String?
    /// Why this feed is halted — the upstream's history no longer holds what was applied (its
    /// sequence went backwards, or the event at a checked sequence changed: restored from a
    /// backup?). Nothing more is applied from it until an operator resets the cursor.
    public var halted: String?
    public var lag: UInt64 { upstreamLast > cursor ? upstreamLast - cursor : 0 }
}

/// Follows one upstream feed exactly once (DESIGN §3.3): SUB first, then replay from the stored
/// cursor until caught up, then live events; a gap in sequences or a heartbeat ahead of the
/// cursor sends it back to replay. Its sockets live on one dedicated thread.
///
/// An upstream restored from a backup reuses sequences this subscriber already applied. It halts
/// the feed (never skips nor re-applies silently) when the upstream's last sequence is below its
/// cursor, when a live event at its cursor is not the one it applied, or when the upstream has a
/// new epoch (a new start) and the event at the last checked sequence (`FeedGuard`) changed.
public final class FeedSubscriber: Sendable {
    public let upstream: UpstreamFeed
    let context: ZContext
    public let consumer: any FeedConsumer
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

    /// Sets this feed's cursor to `sequence` and lifts a halt (`FeedConsumer.resetCursor`): for an
    /// operator who has reconciled with an upstream restored from a backup. Only while the
    /// subscriber is not running (`bangfu-<service> --reset-feed-cursor FEED=SEQ`).
    public func resetCursor(to sequence: UInt64) throws {
        try consumer.resetCursor(feed: upstream.name, to: sequence)
    }

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
        var saved: FeedGuard?
        while true {
            do {
                saved = try consumer.feedGuard(feed: upstream.name)
                break
            } catch {
                logger.error("cannot read the feed guard", metadata: ["error": "\(error)"])
                if waitForWake(ms: settings.applyRetryMs) { return }
            }
        }
        if let reason = saved?.halted {
            haltAndWait(reason, saving: nil, cursor: cursor)
            return
        }
        // The last event checked against the upstream under `verifiedEpoch`, and the last applied.
        var verifiedEpoch = saved?.epoch
        var anchor: Anchor? = saved.flatMap { $0.anchorSequence > 0 ? Anchor(sequence: $0.anchorSequence, sha256: $0.anchorSHA256) : nil }
        var savedGuard = saved
        var lastApplied: Anchor? = anchor?.sequence == cursor ? anchor : nil
        var guardValue: FeedGuard {
            FeedGuard(epoch: verifiedEpoch, anchorSequence: anchor?.sequence ?? 0, anchorSHA256: anchor?.sha256 ?? "")
        }
        /// Saves the guard when it changed (at most once per heartbeat, or per replay page).
        func saveAnchor() {
            let g = guardValue
            guard g != savedGuard else { return }
            do {
                try consumer.saveFeedGuard(feed: upstream.name, g)
                savedGuard = g
            } catch {
                logger.warning(
                    "cannot save the feed guard; trying again later", metadata: ["feed": "\(upstream.name)", "error": "\(error)"])
            }
        }
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
                case .page(let deliveries, let last, let epoch):
                    setStatus {
                        $0.upstreamLast = last
                        $0.replayPages += 1
                        $0.upstreamEpoch = epoch
                    }
                    if last < cursor {
                        haltAndWait(
                            "the upstream's last sequence \(last) is below this subscriber's cursor \(cursor): its history went backwards (restored from a backup?)",
                            saving: guardValue, cursor: cursor)
                        return
                    }
                    if let epoch, epoch != verifiedEpoch {
                        // A new start of the upstream: does it still hold the event last checked?
                        if let a = anchor {
                            switch check(&dealer, a) {
                            case .stopped: return
                            case .unavailable: continue
                            case .differs(let why):
                                haltAndWait(why, saving: guardValue, cursor: cursor)
                                return
                            case .holds: break
                            }
                        } else if cursor > 0 {
                            // Nothing checked yet (a guard new to this database): take the event at
                            // the cursor as the upstream has it now.
                            switch replayPage(&dealer, after: cursor - 1, max: 1) {
                            case .stopped: return
                            case .unavailable: continue
                            case .page(let d, _, _):
                                if let first = d.first, first.sequence == cursor {
                                    anchor = Anchor(first)
                                    lastApplied = anchor
                                }
                            }
                        }
                        verifiedEpoch = epoch
                        saveAnchor()
                        // Ask again under the epoch now checked.
                        continue
                    }
                    let fresh = deliveries.filter { $0.sequence > cursor }
                    if !fresh.isEmpty {
                        guard Self.contiguous(fresh, after: cursor) else {
                            logger.error("replay page is not contiguous; asking again", metadata: ["after": "\(cursor)"])
                            continue
                        }
                        guard applyOrPause(fresh) else { continue }
                        cursor = fresh.last!.sequence
                        lastApplied = Anchor(fresh.last!)
                        // Served under the epoch checked: the new anchor.
                        if epoch != nil { anchor = lastApplied }
                        saveAnchor()
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
            // Where a heartbeat of the checked epoch found the stream: the next anchor, once applied.
            var heardAt: Anchor?
            var diverged: String?
            while batch.count < settings.maxLiveBatch {
                guard let msg = try? sub.receive(dontWait: true, maxFrames: 2), msg.frames.count == 2 else { break }
                let topic = msg.frames[0]
                if topic == Self.heartbeatTopic {
                    if let hb = try? JSONParser.parse(msg.frames[1]), let s = hb["sequence"]?.stringValue, let last = UInt64(s) {
                        let epoch = hb["epoch"]?.stringValue
                        setStatus {
                            $0.upstreamLast = last
                            if epoch != nil { $0.upstreamEpoch = epoch }
                        }
                        if let epoch, epoch != verifiedEpoch {
                            // Another start of the upstream: what came with it is not applied until
                            // a replay has checked its history (and then gives it again).
                            batch = []
                            needCatchUp = true
                            break
                        }
                        if last >= expected || last < expected - 1 {
                            // The tail was lost (or the publisher restarted), or the upstream is
                            // behind what was applied: replay (which halts if it really is).
                            needCatchUp = true
                        } else if epoch != nil {
                            heardAt = batch.last.map(Anchor.init) ?? lastApplied
                        }
                    }
                    continue
                }
                // An event of a type the consumer does not apply is read only for its sequence.
                let delivery: FeedDelivery
                if let type = UTF8Text.string(msg.frames[0]), !consumer.wants(feed: upstream.name, type: type),
                    let peek = EventPeek.typeAndSequence(msg.frames[1]), peek.type == type
                {
                    delivery = .skipped(peek.sequence, raw: msg.frames[1])
                } else if let ev = try? CloudEvent.parse(msg.frames[1], omittingData: omitted), let seq = ev.sequenceNumber {
                    delivery = FeedDelivery(sequence: seq, event: ev, raw: msg.frames[1], error: nil)
                } else {
                    logger.warning("unparseable live event; will replay", metadata: ["feed": "\(upstream.name)"])
                    needCatchUp = true
                    break
                }
                let seq = delivery.sequence
                if seq < expected {
                    // The event at the cursor again (a slow joiner's overlap): the same bytes, or
                    // the upstream's history changed under this subscriber.
                    if let a = lastApplied, seq == a.sequence, Anchor(delivery).sha256 != a.sha256 {
                        diverged =
                            "the upstream's event at sequence \(seq) is not the one this subscriber applied: its history changed (restored from a backup?)"
                        break
                    }
                    continue
                }
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
            if let diverged {
                haltAndWait(diverged, saving: guardValue, cursor: cursor)
                return
            }
            if needCatchUp { setStatus { $0.caughtUp = false } }
            if batch.isEmpty, let h = heardAt {
                anchor = h
                saveAnchor()
            }
            if !batch.isEmpty {
                if applyOrPause(batch) {
                    cursor = batch.last!.sequence
                    lastApplied = Anchor(batch.last!)
                    if let h = heardAt {
                        anchor = h
                        saveAnchor()
                    }
                    let c = cursor
                    let n = batch.count
                    setStatus {
                        $0.cursor = c
                        $0.liveApplied += n
                        $0.upstreamLast = Swift.max($0.upstreamLast, c)
                    }
                } else {
                    needCatchUp = true
                }
            }
        }
    }

    static let heartbeatTopic = Array("_hb".utf8)

    /// One event as this subscriber saw it: its sequence and the SHA-256 of its bytes.
    struct Anchor: Equatable {
        var sequence: UInt64
        var sha256: String

        init(sequence: UInt64, sha256: String) {
            self.sequence = sequence
            self.sha256 = sha256
        }

        init(_ d: FeedDelivery) {
            sequence = d.sequence
            sha256 = SHA256.hash(d.raw).hexString
        }
    }

    enum Check {
        case holds
        case differs(String)
        case unavailable
        case stopped
    }

    /// Asks the upstream for the event at `a.sequence` and compares it with the one applied.
    private func check(_ dealer: inout ZSocket?, _ a: Anchor) -> Check {
        switch replayPage(&dealer, after: a.sequence - 1, max: 1) {
        case .stopped: return .stopped
        case .unavailable: return .unavailable
        case .page(let d, let last, _):
            guard let first = d.first, first.sequence == a.sequence else {
                return .differs(
                    "the upstream has no event at sequence \(a.sequence) (its last is \(last)), which this subscriber applied: its history changed (restored from a backup?)"
                )
            }
            if Anchor(first).sha256 == a.sha256 { return .holds }
            return .differs(
                "the upstream's event at sequence \(a.sequence) is not the one this subscriber applied: its history changed (restored from a backup?)"
            )
        }
    }

    /// Stops applying this feed, for good (until an operator resets its cursor): saves and shows
    /// why, logs it at critical, and waits for the stop.
    private func haltAndWait(_ reason: String, saving: FeedGuard?, cursor: UInt64) {
        logger.critical(
            "upstream feed halted: its history no longer holds what was applied; reconcile, then reset the cursor",
            metadata: ["feed": "\(upstream.name)", "cursor": "\(cursor)", "reason": "\(reason)"])
        setStatus {
            $0.halted = reason
            $0.caughtUp = false
        }
        if var g = saving {
            g.halted = reason
            while true {
                do {
                    try consumer.saveFeedGuard(feed: upstream.name, g)
                    break
                } catch {
                    logger.error("cannot save the halted feed guard", metadata: ["feed": "\(upstream.name)", "error": "\(error)"])
                    if waitForWake(ms: settings.applyRetryMs) { return }
                }
            }
        }
        while !waitForWake(ms: 60_000) {}
    }

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
        case page([FeedDelivery], last: UInt64, epoch: String?)
        case unavailable
        case stopped
    }

    /// One replay request (Lazy Pirate: a timed-out DEALER is closed and replaced).
    private func replayPage(_ dealer: inout ZSocket?, after: UInt64, max: Int? = nil) -> ReplayResult {
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
            JSONObject(["op": "replay", "after": .string(String(after)), "max": .int(Int64(max ?? settings.replayPage))]))
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
                        deliveries.append(.skipped(peek.sequence, raw: body))
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
                return .page(deliveries, last: last, epoch: end["epoch"]?.stringValue)
            }
        }
    }
}
