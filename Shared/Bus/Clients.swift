import CZeroMQ
import Foundation
import Models

/// One event to publish: its frame, and its id when the frame parses (unparseable frames are
/// sent one at a time, since their ack cannot name them).
public struct OutgoingEvent: Sendable {
    public var id: String?
    public var frame: [UInt8]

    public init(id: String?, frame: [UInt8]) {
        self.id = id
        self.frame = frame
    }

    public init(_ event: CloudEvent) {
        id = event.id
        frame = Array(event.serialized().utf8)
    }

    /// Reads the id out of a frame, if the frame is a JSON object with a string id.
    public init(frame: [UInt8]) {
        self.frame = frame
        id = (try? JSONParser.parse(frame))?["id"]?.stringValue
    }
}

public struct PublishResult: Sendable {
    public var index: Int
    public var id: String?
    /// nil when no ack came back after every retry.
    public var ack: Ack?
    public var attempts: Int
    /// Nanoseconds from the last send of this event to its ack (0 when unacknowledged).
    public var latencyNs: UInt64 = 0
}

public struct IntakeClientOptions: Sendable {
    public var timeoutMs = 5_000
    /// Attempts after the first, each with the same id (Lazy Pirate).
    public var retries = 3
    /// Events in flight at once.
    public var window = 2_000
    public var socket = ZSocketOptions()
    public var curve: CurveClientKeys?

    public init() {}
}

/// Keys a client presents to a CURVE server.
public struct CurveClientKeys: Sendable {
    public var serverPublic: String
    public var clientPublic: String
    public var clientSecret: String

    public init(serverPublic: String, clientPublic: String, clientSecret: String) {
        self.serverPublic = serverPublic
        self.clientPublic = clientPublic
        self.clientSecret = clientSecret
    }
}

/// A DEALER client of a service intake: pipelines up to `window` events, matches acks by id,
/// and on a timeout closes its socket, opens a new one and re-sends what is unanswered with
/// the same ids (the service answers `duplicate` for what it already committed), in their
/// original order — so the service commits one client's events in the order they were sent,
/// even across a crash and restart of the service. Confined to
/// the thread that created it; use `IntakeClient.publish(...)` (async) from async code.
public final class IntakeClient {
    let context: ZContext
    let endpoint: String
    let options: IntakeClientOptions
    private var socket: ZSocket?

    public init(context: ZContext, endpoint: String, options: IntakeClientOptions = IntakeClientOptions()) {
        self.context = context
        self.endpoint = endpoint
        self.options = options
    }

    deinit { socket?.close() }

    public func close() {
        socket?.close()
        socket = nil
    }

    private func open() throws -> ZSocket {
        if let socket { return socket }
        let s = try context.socket(.dealer)
        try s.apply(options.socket, tcpHeartbeats: Endpoint.isTCP(endpoint))
        try s.set(ZMQ_SNDTIMEO, Int32(options.timeoutMs))
        try s.set(ZMQ_LINGER, Int32(0))
        // No automatic reconnection: after a service restart the old socket would reconnect and
        // deliver the events queued behind the lost ones before they are re-sent, so the service
        // would commit them out of order. Instead, a timeout opens a fresh socket and re-sends
        // everything unanswered in the original order (see docs/protocol.md §3.3).
        try s.set(ZMQ_RECONNECT_IVL, Int32(-1))
        if let c = options.curve {
            try s.set(ZMQ_CURVE_SERVERKEY, string: c.serverPublic)
            try s.set(ZMQ_CURVE_PUBLICKEY, string: c.clientPublic)
            try s.set(ZMQ_CURVE_SECRETKEY, string: c.clientSecret)
        }
        try s.connect(endpoint)
        socket = s
        return s
    }

    /// Publishes every event and returns one result per event, in input order.
    public func publish(_ events: [OutgoingEvent], progress: ((Int, Int) -> Void)? = nil) throws -> [PublishResult] {
        var results: [PublishResult?] = Array(repeating: nil, count: events.count)
        struct Pending {
            var index: Int
            var sentAt: UInt64
            var attempts: Int
        }
        var pending: [String: Pending] = [:]
        var anonymous: Pending?  // an unparseable frame awaiting its id-less ack
        var next = 0
        var done = 0
        let timeoutNs = UInt64(options.timeoutMs) * 1_000_000

        func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
        func send(_ index: Int) throws -> Bool {
            let s = try open()
            return try s.send([events[index].frame], dontWait: false)
        }
        func finish(_ index: Int, _ ack: Ack?, _ attempts: Int, sentAt: UInt64 = 0) {
            guard results[index] == nil else { return }
            var ack = ack
            // A retried event answered `duplicate` was committed by an earlier attempt.
            if attempts > 1, ack?.status == .duplicate { ack?.status = .accepted }
            let latency = ack != nil && sentAt > 0 ? now() &- sentAt : 0
            results[index] = PublishResult(index: index, id: events[index].id, ack: ack, attempts: attempts, latencyNs: latency)
            done += 1
            progress?(done, events.count)
        }

        // Set when a send could not be queued within the timeout (no connection to the service):
        // nothing more is sent on this socket; the timeout path opens a fresh one.
        var stalled = false
        while done < events.count {
            // Fill the window.
            while !stalled, next < events.count, anonymous == nil, pending.count < options.window {
                let ev = events[next]
                if let id = ev.id {
                    if pending[id] != nil { break }  // the same id twice: wait for the first ack
                    pending[id] = Pending(index: next, sentAt: now(), attempts: 1)
                    if try !send(next) {  // not sent: times out at once
                        pending[id]!.sentAt = 0
                        stalled = true
                    }
                } else {
                    if !pending.isEmpty { break }
                    anonymous = Pending(index: next, sentAt: now(), attempts: 1)
                    _ = try send(next)
                }
                next += 1
            }
            if pending.isEmpty && anonymous == nil { continue }
            // Wait for acks until the oldest outstanding one is due.
            let oldest = min(pending.values.map(\.sentAt).min() ?? UInt64.max, anonymous?.sentAt ?? UInt64.max)
            let due = oldest == 0 ? 0 : oldest &+ timeoutNs
            let t = now()
            let waitMs = due > t ? Int((due - t) / 1_000_000) + 1 : 0
            let s = try open()
            var poller = ZPoller([.socket(s)])
            let readable = try poller.poll(timeoutMs: waitMs)
            if readable[0] {
                while let msg = try s.receive(dontWait: true) {
                    guard let last = msg.frames.last, let json = try? JSONParser.parse(last), let ack = Ack(json: json) else {
                        continue
                    }
                    if let id = ack.id, let p = pending.removeValue(forKey: id) {
                        finish(p.index, ack, p.attempts, sentAt: p.sentAt)
                    } else if ack.id == nil, let a = anonymous {
                        anonymous = nil
                        finish(a.index, ack, a.attempts, sentAt: a.sentAt)
                    }
                }
                continue
            }
            // Timed out: give up on those out of retries, re-send the rest on a fresh socket.
            let t2 = now()
            var expired = false
            for (id, p) in pending where p.sentAt == 0 || p.sentAt &+ timeoutNs <= t2 {
                expired = true
                if p.attempts > options.retries {
                    pending[id] = nil
                    finish(p.index, nil, p.attempts)
                }
            }
            if let a = anonymous, a.sentAt &+ timeoutNs <= t2 {
                expired = true
                if a.attempts > options.retries {
                    anonymous = nil
                    finish(a.index, nil, a.attempts)
                }
            }
            guard expired else { continue }
            close()
            stalled = false
            for (id, p) in pending.sorted(by: { $0.value.index < $1.value.index }) {
                pending[id] = Pending(index: p.index, sentAt: 0, attempts: p.attempts + 1)
                // Once one send fails (the service is not there yet), the rest wait for the next
                // round rather than each waiting out the send timeout.
                if !stalled, try send(p.index) { pending[id]!.sentAt = now() } else { stalled = true }
            }
            if let a = anonymous {
                anonymous = Pending(index: a.index, sentAt: now(), attempts: a.attempts + 1)
                _ = try send(a.index)
            }
        }
        return results.map { $0! }
    }

    /// Publishes from a dedicated thread, so async callers never block the cooperative pool.
    public static func publish(
        context: ZContext, endpoint: String, events: [OutgoingEvent], options: IntakeClientOptions = IntakeClientOptions()
    ) async throws -> [PublishResult] {
        try await OwnerThread.run {
            let c = IntakeClient(context: context, endpoint: endpoint, options: options)
            defer { c.close() }
            return try c.publish(events)
        }
    }
}

/// Request/answer on a service's replay socket: replay pages, status, quarantine queries.
public enum QueryClient {
    /// Sends one request frame and returns the answer's frames (empty delimiter frames removed),
    /// or nil on timeout.
    public static func request(
        context: ZContext, endpoint: String, _ request: JSON, timeoutMs: Int = 5_000, curve: CurveClientKeys? = nil
    ) throws -> [JSON]? {
        let s = try context.socket(.dealer)
        defer { s.close() }
        var o = ZSocketOptions()
        o.maxMessageBytes = -1
        try s.apply(o, tcpHeartbeats: false)
        try s.set(ZMQ_IMMEDIATE, Int32(0))
        try s.set(ZMQ_LINGER, Int32(0))
        if let c = curve {
            try s.set(ZMQ_CURVE_SERVERKEY, string: c.serverPublic)
            try s.set(ZMQ_CURVE_PUBLICKEY, string: c.clientPublic)
            try s.set(ZMQ_CURVE_SECRETKEY, string: c.clientSecret)
        }
        try s.connect(endpoint)
        try s.send([request.serializedBytes()], dontWait: true)
        var p = ZPoller([.socket(s)])
        guard try p.poll(timeoutMs: timeoutMs)[0], let msg = try s.receive(dontWait: true, maxFrames: 1_000_000) else {
            return nil
        }
        return msg.frames.filter { !$0.isEmpty }.compactMap { try? JSONParser.parse($0) }
    }

    /// One replay page: events and the `end` frame's last sequence.
    public static func replay(
        context: ZContext, endpoint: String, after: UInt64, max: Int, timeoutMs: Int = 5_000
    ) throws -> (events: [CloudEvent], last: UInt64)? {
        let req: JSON = ["op": "replay", "after": .string(String(after)), "max": .int(Int64(max))]
        guard let frames = try request(context: context, endpoint: endpoint, req, timeoutMs: timeoutMs),
            let end = frames.last, end["op"]?.stringValue == "end", let last = end["last"]?.stringValue.flatMap({ UInt64($0) })
        else { return nil }
        var events: [CloudEvent] = []
        for f in frames.dropLast() { events.append(try CloudEvent(json: f)) }
        return (events, last)
    }
}

/// Runs blocking libzmq work on a dedicated thread and hands the result back to async code.
public enum OwnerThread {
    public static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await DedicatedThread.run(name: "bangfu.client", body)
    }
}
