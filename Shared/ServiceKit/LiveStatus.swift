import Bus
import Foundation
import Models
import Synchronization

/// What a service's `build…` function knows only after it has made its node and subscribers:
/// the status query reads them through this handle.
public final class ServiceHandle: Sendable {
    private let state = Mutex<(node: ServiceNode?, subscribers: [FeedSubscriber], zap: ZAPHandler?)>((nil, [], nil))

    public init() {}

    public var node: ServiceNode? {
        get { state.withLock { $0.node } }
        set { state.withLock { $0.node = newValue } }
    }

    /// The service's ZAP handler (when CURVE is on): its refusals are part of the status.
    public var zap: ZAPHandler? {
        get { state.withLock { $0.zap } }
        set { state.withLock { $0.zap = newValue } }
    }

    public var subscribers: [FeedSubscriber] {
        get { state.withLock { $0.subscribers } }
        set { state.withLock { $0.subscribers = newValue } }
    }

    /// The live part of every service's `status` answer: clock mode, intake counters, and per
    /// upstream feed the cursor, the upstream's last sequence and the lag.
    public func figures(simulatedClock: Bool, clock: any WallClock) -> JSONObject {
        var o = JSONObject()
        o["simulated_clock"] = .bool(simulatedClock)
        o["clock"] = .string(Timestamp.format(clock.now()))
        if let c = node?.counters {
            o["counters"] = [
                "accepted": .int(Int64(c.accepted)), "duplicate": .int(Int64(c.duplicate)), "rejected": .int(Int64(c.rejected)),
                "batches": .int(Int64(c.batches)), "published": .int(Int64(c.published)), "replay_requests": .int(Int64(c.replayRequests)),
                "unroutable_acks": .int(Int64(c.unroutableAcks)), "unroutable_replies": .int(Int64(c.unroutableReplies)),
                "unauthorized_requests": .int(Int64(c.unauthorizedRequests)),
            ]
            let w = c.batchLatency
            if let p50 = w.percentile(50), let p99 = w.percentile(99), let max = w.max {
                // Milliseconds with three decimals, over the last (at most 1,024) batches.
                func ms(_ us: UInt64) -> JSON { .string(String(format: "%.3f", Double(us) / 1_000)) }
                o["intake_batch_ms"] = [
                    "p50": ms(p50), "p99": ms(p99), "max": ms(max), "batches": .int(Int64(Swift.min(w.count, LatencyWindow.capacity))),
                ]
            }
        }
        if let zap {
            o["curve"] = ["zap_refused": .int(Int64(zap.refused)), "zap_admitted": .int(Int64(zap.admitted))]
        }
        let subs = subscribers
        if !subs.isEmpty {
            var feeds = JSONObject()
            for s in subs {
                let st = s.status
                var f: JSONObject = [
                    "cursor": .string(String(st.cursor)), "upstream_last": .string(String(st.upstreamLast)), "lag": .int(Int64(st.lag)),
                    "caught_up": .bool(st.caughtUp), "resubscribes": .int(Int64(st.resubscribes)),
                    "replay_timeouts_in_a_row": .int(Int64(st.replayTimeoutsInARow)),
                ]
                if let epoch = st.upstreamEpoch { f["upstream_epoch"] = .string(epoch) }
                // Nothing is applied from a halted feed until an operator resets its cursor.
                if let why = st.halted { f["halted"] = .string(why) }
                feeds[s.upstream.name] = .object(f)
            }
            o["feeds"] = .object(feeds)
        }
        return o
    }
}
