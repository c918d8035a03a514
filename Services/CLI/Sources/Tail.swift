import Bus
import CZeroMQ
import Foundation
import Models

public struct TailOptions: Sendable {
    /// Print events with sequence greater than this.
    public var after: UInt64 = 0
    /// Keep following the live feed after catching up.
    public var follow = false
    /// Only print events whose type starts with this.
    public var typePrefix: String?
    /// Only print events about this subject (a merchant's USCC): its profile versions, its
    /// entitlements, its payments.
    public var subject: String?
    /// Stop after printing this many events.
    public var max: Int?
    /// Events asked for per replay request.
    public var page = 1_000
    public var timeoutMs = 5_000
    /// Print bank account numbers, resident IDs and phone numbers as the feed carries them
    /// (masked by default: the registry's `payee.verified` carries the account in clear, for payments).
    public var unmasked = false
    /// With `follow`: no message at all (not even a `_hb` heartbeat) for this long means the feed
    /// endpoint is wrong or the service is gone (5 heartbeat intervals, protocol.md §7 rule 4):
    /// warn on stderr and subscribe again.
    public var silenceMs = 5_000

    public init() {}
}

/// `bangfu tail`: a feed's events as JSON lines, from replay and (with follow) live, gapless.
public enum TailCommand {
    /// Prints events to `console.out`, one JSON object per line. Returns the exit code; throws
    /// a `CLIError` when the replay endpoint does not answer. With `follow`, runs until `stop`
    /// is signalled or `max` events were printed.
    public static func run(
        context: ZContext, target: ServiceTarget, options: TailOptions, console: Console, stop: StopSignal = StopSignal()
    ) async throws -> Int32 {
        try await OwnerThread.run {
            var t = Tailer(context: context, target: target, options: options, console: console, stop: stop)
            defer { console.flush() }
            return try t.run()
        }
    }
}

struct Tailer {
    let context: ZContext
    let target: ServiceTarget
    let options: TailOptions
    let console: Console
    let stop: StopSignal
    /// The last sequence seen (printed or filtered out).
    var last: UInt64
    var printed = 0

    init(context: ZContext, target: ServiceTarget, options: TailOptions, console: Console, stop: StopSignal) {
        self.context = context
        self.target = target
        self.options = options
        self.console = console
        self.stop = stop
        last = options.after
    }

    var done: Bool {
        if let m = options.max, printed >= m { return true }
        return false
    }

    /// Handles one event in sequence order.
    mutating func emit(_ event: JSON, _ sequence: UInt64) {
        last = sequence
        if let p = options.typePrefix, !(event["type"]?.stringValue ?? "").hasPrefix(p) { return }
        if let s = options.subject, event["subject"]?.stringValue != s { return }
        console.line((options.unmasked ? event : Mask.personalData(in: event)).serialized())
        printed += 1
    }

    /// Pages through replay until caught up with the feed's last sequence (or `max` is reached).
    mutating func catchUp() throws {
        while !done && !stop.isStopped {
            let req: JSON = ["op": "replay", "after": .string(String(last)), "max": .int(Int64(Swift.max(1, options.page)))]
            let frames: [JSON]?
            do {
                frames = try QueryClient.request(
                    context: context, endpoint: target.replay, req, timeoutMs: options.timeoutMs, curve: CLICurve.keys(for: target.replay))
            } catch {
                throw CLIError("replay request to \(target.replay) failed: \(error)")
            }
            guard let frames else {
                throw CLIError("\(target.service) did not answer on \(target.replay) within \(options.timeoutMs) ms")
            }
            guard let end = frames.last, end["op"]?.stringValue == "end",
                let endLast = end["last"]?.stringValue.flatMap({ UInt64($0) })
            else {
                if let e = frames.last, e["op"]?.stringValue == "error" {
                    throw CLIError(
                        "\(target.service) refused the replay: \(e["code"]?.stringValue ?? "?"): \(e["message"]?.stringValue ?? "")")
                }
                throw CLIError("\(target.service) answered the replay with an unexpected message")
            }
            var progressed = false
            for f in frames.dropLast() {
                guard let s = f["sequence"]?.stringValue.flatMap({ UInt64($0) }), s > last else { continue }
                emit(f, s)
                progressed = true
                if done { break }
            }
            console.flush()
            if !progressed || last >= endLast { return }
        }
    }

    /// A SUB on the feed, subscribed to everything, connected.
    func subscribe() throws(CLIError) -> ZSocket {
        do {
            let sub = try context.socket(.sub)
            var o = ZSocketOptions()
            o.maxMessageBytes = -1
            try sub.apply(o, tcpHeartbeats: Endpoint.isTCP(target.feed))
            try sub.set(ZMQ_RCVHWM, Int32(100_000))
            try sub.set(ZMQ_LINGER, Int32(0))
            try sub.subscribe("")
            if let keys = CLICurve.keys(for: target.feed) { try sub.applyCurveClient(keys) }
            try sub.connect(target.feed)
            return sub
        } catch {
            throw CLIError("cannot subscribe to \(target.feed): \(error)")
        }
    }

    mutating func run() throws -> Int32 {
        guard options.follow else {
            try catchUp()
            return ExitCodes.ok
        }
        // Slow joiner (DESIGN §3.4): SUB first, then replay, then live minus what replay covered.
        var sub = try subscribe()
        defer { sub.close() }
        try catchUp()
        var poller = ZPoller([.socket(sub), .fd(stop.wake.readFD)])
        let silence = UInt64(Swift.max(1, options.silenceMs)) * 1_000_000
        var lastHeard = DispatchTime.now().uptimeNanoseconds
        var silences = 0
        while !done && !stop.isStopped {
            let readable: [Bool]
            do {
                readable = try poller.poll(timeoutMs: Swift.min(1_000, Swift.max(1, options.silenceMs / 2)))
            } catch {
                throw CLIError("following \(target.feed) failed: \(error)")
            }
            if readable[1] { stop.wake.drain() }
            guard readable[0] else {
                let now = DispatchTime.now().uptimeNanoseconds
                if now - lastHeard >= silence && !stop.isStopped {
                    // Rule 4: nothing at all for 5 heartbeat intervals. Say so (the endpoint may be
                    // wrong: the feed is the one endpoint a wrong value leaves silent), then close
                    // the SUB, open a new one and probe with replay.
                    silences += 1
                    if silences == 1 || silences % 12 == 0 {
                        let seconds = String(format: "%.1f", Double(now - lastHeard) / 1e9)
                        console.error(
                            "bangfu: nothing from \(target.feed) for \(seconds) s, not even a heartbeat: is it \(target.service)'s feed "
                                + "(--feed, BANGFU_\(target.service.uppercased())_FEED) and is the service running? subscribing again")
                    }
                    sub.close()
                    sub = try subscribe()
                    poller = ZPoller([.socket(sub), .fd(stop.wake.readFD)])
                    do {
                        try catchUp()
                    } catch let e as CLIError {
                        console.error("bangfu: \(e.message); will retry")
                    }
                    lastHeard = DispatchTime.now().uptimeNanoseconds
                }
                continue
            }
            var gap = false
            while !gap && !done, let msg = try? sub.receive(dontWait: true) {
                lastHeard = DispatchTime.now().uptimeNanoseconds
                if silences > 0 {
                    console.error("bangfu: \(target.feed) is talking again")
                    silences = 0
                }
                guard msg.frames.count == 2 else { continue }
                let topic = String(decoding: msg.frames[0], as: UTF8.self)
                guard let body = try? JSONParser.parse(msg.frames[1]),
                    let s = body["sequence"]?.stringValue.flatMap({ UInt64($0) })
                else { continue }
                if topic == "_hb" {
                    if s > last { gap = true }  // the tail was lost: fetch it
                    continue
                }
                if s <= last { continue }  // already printed through replay
                if s == last + 1 {
                    emit(body, s)
                } else {
                    gap = true  // missed some: replay from the last one seen
                }
            }
            console.flush()
            if gap {
                do {
                    try catchUp()
                } catch let e as CLIError {
                    // The service may be restarting: say so, and retry on its next heartbeat.
                    console.error("bangfu: \(e.message); will retry")
                }
            }
        }
        return ExitCodes.ok
    }
}
