import Bus
import Foundation
import Models

/// How the demo talks to its services. Every query is retried until the service answers, and
/// every event is re-sent with the same id until it is acknowledged (Lazy Pirate), for as long
/// as `patienceSeconds`: a service may be busy in a long transaction, or — in a chaos run —
/// restarting after a kill -9. Re-sending is safe because the services deduplicate by
/// `source` + `id`; the demo's own commands therefore carry ids derived from what they say.
struct DemoLink: Sendable {
    let context: ZContext
    /// How long one attempt waits for its answer.
    var timeoutMs = 5_000
    /// How long the demo keeps trying before it gives up on a service.
    var patienceSeconds = 900.0
    /// When the pipeline started (uptime nanoseconds), for the stage stamps.
    var started = DispatchTime.now().uptimeNanoseconds

    /// `[+12.3 s]`: the time since the pipeline started, for progress lines.
    var stamp: String { "[+\(String(format: "%.1f", Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9)) s]" }

    /// One operator query on `p`'s replay socket, retried until it is answered.
    func query(_ p: DemoProcess, _ request: JSON) async throws -> JSON {
        let ep = p.endpoint("replay")
        let context = context
        let timeout = timeoutMs
        let started = DispatchTime.now().uptimeNanoseconds
        while true {
            let answer = try? await OwnerThread.run {
                try QueryClient.request(context: context, endpoint: ep, request, timeoutMs: timeout)?.last
            }
            if let answer { return answer }
            try giveUpIfOverdue(started, p, request["op"]?.stringValue ?? "?")
        }
    }

    func status(_ p: DemoProcess) async throws -> JSON { try await query(p, ["op": "status"]) }

    /// `p`'s whole feed, page by page, each page retried until it is answered.
    func replay(_ p: DemoProcess, page size: Int = 5_000, _ body: (CloudEvent) -> Void) async throws {
        let ep = p.endpoint("replay")
        let context = context
        let timeout = timeoutMs
        let started = DispatchTime.now().uptimeNanoseconds
        var after: UInt64 = 0
        while true {
            let from = after
            let page = try? await OwnerThread.run {
                try QueryClient.replay(context: context, endpoint: ep, after: from, max: size, timeoutMs: timeout)
            }
            guard let page else {
                try giveUpIfOverdue(started, p, "replay")
                continue
            }
            if page.events.isEmpty { return }
            for e in page.events { body(e) }
            after = page.events.last?.sequenceNumber ?? after
            if after >= page.last { return }
        }
    }

    /// Publishes `events` to `p`'s intake; unanswered events are re-sent with the same id until
    /// they are acknowledged or the patience runs out.
    func publish(
        _ p: DemoProcess, _ events: [OutgoingEvent], window: Int = 2_000, progress: (@Sendable (Int, Int) -> Void)? = nil
    ) async throws -> [PublishResult] {
        var options = IntakeClientOptions()
        options.window = window
        options.timeoutMs = timeoutMs
        options.retries = max(3, Int(patienceSeconds * 1_000) / max(timeoutMs, 1))
        let endpoint = p.endpoint("intake")
        let context = context
        let settings = options
        return try await OwnerThread.run {
            let client = IntakeClient(context: context, endpoint: endpoint, options: settings)
            defer { client.close() }
            return try client.publish(events, progress: progress)
        }
    }

    /// Publishes `events`, every one of which `p` must take (accepted, or a duplicate of one it
    /// took before a restart): how many; otherwise fails naming `what` it refused and why.
    func publishAll(_ p: DemoProcess, _ events: [OutgoingEvent], what: String) async throws -> Int {
        let results = try await publish(p, events)
        let taken = results.filter { $0.ack?.status == .accepted || $0.ack?.status == .duplicate }.count
        guard taken == events.count else {
            let why = results.compactMap { $0.ack?.rejection?.message }.first ?? "no answer"
            throw CLIError("bangfu-\(p.name) refused \(what): \(why)", exitCode: 1)
        }
        return taken
    }

    /// Publishes what `events` makes for each slice of `merchants` (in order, `slice` merchants
    /// at a time), handing each slice's results to `results` before the next slice is made: the
    /// demo holds one slice's events, not the county's. Returns the number of events sent.
    func publishInSlices(
        _ p: DemoProcess, merchants: Int, slice: Int = 20_000, window: Int = 2_000, events: (Range<Int>) -> [OutgoingEvent],
        progress: (@Sendable (Int) -> Void)? = nil, results: ([PublishResult]) -> Void
    ) async throws -> Int {
        var sent = 0
        var first = 0
        while first < merchants {
            let range = first..<min(first + slice, merchants)
            let batch = events(range)
            let count = batch.count
            let base = range.lowerBound
            let span = range.count
            results(
                try await publish(p, batch, window: window) { done, _ in
                    progress?(base + done * span / max(count, 1))
                })
            sent += count
            first = range.upperBound
        }
        return sent
    }

    /// One operator command. Its id is derived from `key`, so a command re-sent after a crash (of
    /// the service or of the demo) is recognised as the same command.
    @discardableResult
    func send(_ p: DemoProcess, _ type: String, key: String, _ data: JSON) async throws -> Ack {
        let e = CloudEvent(id: "demo/\(type)/\(key)", source: "/bangfu/demo", type: type, data: data)
        guard let ack = try await publish(p, [OutgoingEvent(e)]).first?.ack else {
            throw CLIError("bangfu-\(p.name) did not acknowledge \(type) within \(Int(patienceSeconds)) s", exitCode: 1)
        }
        return ack
    }

    /// Places a service's simulated clock at `instant` (forward or back: `"set": true`), and
    /// fails unless the service took it.
    func setClock(_ p: DemoProcess, to instant: String, key: String) async throws {
        let ack = try await send(p, "clock.advanced", key: key, ["to": .string(instant), "set": true])
        guard ack.status == .accepted || ack.status == .duplicate else {
            throw CLIError(
                "bangfu-\(p.name) refused to set its clock to \(instant): \(ack.rejection?.message ?? "\(ack.status)")", exitCode: 1)
        }
    }

    /// Whether any payment is in `state` on `channel`: one index lookup in payments (a summary
    /// of every payment, asked for every batch or every poll, would read them all each time).
    func anyPayment(_ payments: DemoProcess, state: String, channel: String) async throws -> Bool {
        let page = try await query(payments, ["op": "payment.list", "state": .string(state), "channel": .string(channel), "max": 1])
        return !(page["items"]?.arrayValue ?? []).isEmpty
    }

    /// Waits until `downstream` has applied `upstream`'s whole feed.
    func settle(_ downstream: DemoProcess, follows upstream: DemoProcess) async throws {
        let started = DispatchTime.now().uptimeNanoseconds
        while true {
            let last = try await status(upstream)["last"]?.stringValue ?? "0"
            let cursor = try await status(downstream)["inbox"]?[upstream.name]?.stringValue ?? "0"
            if cursor == last { return }
            try giveUpIfOverdue(started, downstream, "following \(upstream.name)")
            try await Task.sleep(for: .milliseconds(100))  // polling: leave the cores to the services
        }
    }

    /// Repeats `condition` (each evaluation is at least one round trip to a service) until it holds.
    func until(_ what: String, _ p: DemoProcess, _ condition: () async throws -> Bool) async throws {
        let started = DispatchTime.now().uptimeNanoseconds
        while try await !condition() {
            try giveUpIfOverdue(started, p, what)
            try await Task.sleep(for: .milliseconds(100))  // polling: leave the cores to the services
        }
    }

    private func giveUpIfOverdue(_ started: UInt64, _ p: DemoProcess, _ what: String) throws {
        if Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9 > patienceSeconds {
            throw CLIError("bangfu-\(p.name) did not answer (\(what)) within \(Int(patienceSeconds)) s; see \(p.logPath)", exitCode: 1)
        }
    }
}
