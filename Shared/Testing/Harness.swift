import Bus
import Foundation
import Logging
import Matcher
import Models
import Notifier
import Payments
import Registry
import ServiceKit
import ServiceLifecycle
import Synchronization

/// The in-process harness: Bangfu's services in one process over `inproc://`, each with its own
/// database in a temporary directory, all reading one injected `TestClock`. Tests publish
/// events to intakes and await the events they cause on feeds.
public final class Harness: Sendable {
    public let context = ZContext()
    public let clock: TestClock
    public let directory: String
    public let logger: Logger
    let id = UUID().uuidString.prefix(8).lowercased()
    let running = Mutex<[RunningService]>([])

    public init(start: String = "2022-04-01T09:00:00+08:00", logLevel: Logger.Level = .warning) throws {
        clock = TestClock(rfc3339: start)
        directory = NSTemporaryDirectory() + "bangfu-harness-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var l = Logger(label: "bangfu.harness")
        l.logLevel = logLevel
        logger = l
    }

    /// In-process endpoints for a service.
    public func endpoints(_ service: String) -> NodeEndpoints {
        NodeEndpoints(
            intake: "inproc://\(id)-\(service)-intake", feed: "inproc://\(id)-\(service)-feed",
            replay: "inproc://\(id)-\(service)-replay")
    }

    public func options(_ service: String, upstreams: [String] = []) -> ServiceOptions {
        var o = ServiceOptions(service: service, upstreams: upstreams)
        o.stateDir = directory + "/" + service
        o.endpoints = endpoints(service)
        o.upstreams = upstreams.map { u in
            let e = endpoints(u)
            return UpstreamFeed(name: u, feed: e.feed, replay: e.replay)
        }
        return o
    }

    public func environment(dropLive: (@Sendable (String, UInt64) -> Bool)? = nil) -> ServiceEnvironment {
        ServiceEnvironment(context: context, clock: clock, logger: logger, dropLive: dropLive)
    }

    /// Starts the registry and waits until it answers.
    @discardableResult
    public func startRegistry() async throws -> RunningService {
        let svc = try RegistryService.build(options: options(RegistryService.name), environment: environment())
        return try await start(svc, endpoints: endpoints(RegistryService.name))
    }

    /// Starts the matcher, following the registry and (stand-ins for) the notifier and payments.
    @discardableResult
    public func startMatcher(dropLive: (@Sendable (String, UInt64) -> Bool)? = nil) async throws -> RunningService {
        let svc = try MatcherService.build(
            options: options(MatcherService.name, upstreams: MatcherService.upstreams), environment: environment(dropLive: dropLive))
        return try await start(svc, endpoints: endpoints(MatcherService.name))
    }

    /// Starts payments, following the registry and the matcher; its files go under the
    /// harness directory (`payments/outbox`, `payments/inbox`).
    @discardableResult
    public func startPayments() async throws -> RunningService {
        let svc = try PaymentsService.build(
            options: options(PaymentsService.name, upstreams: PaymentsService.upstreams), environment: environment())
        return try await start(svc, endpoints: endpoints(PaymentsService.name))
    }

    /// Starts the notifier, following the registry, the matcher and payments; its board,
    /// reports and notifications file go under the harness directory (`notifier/…`).
    @discardableResult
    public func startNotifier(settings: [String: String] = [:]) async throws -> RunningService {
        var o = options(NotifierService.name, upstreams: NotifierService.upstreams)
        o.extra = NotifierService.settings.merging(settings) { $1 }
        let svc = try NotifierService.build(options: o, environment: environment())
        return try await start(svc, endpoints: endpoints(NotifierService.name))
    }

    /// Starts a stand-in for a service not built yet ("notifier", "payments"): what a test
    /// publishes to its intake appears on its feed.
    @discardableResult
    public func startStandIn(_ name: String) async throws -> RunningService {
        let svc = try StandInService.build(name: name, options: options(name), environment: environment())
        return try await start(svc, endpoints: endpoints(name))
    }

    /// Runs a built service in a `ServiceGroup` and waits for its readiness probe.
    public func start(_ service: BusService, endpoints: NodeEndpoints) async throws -> RunningService {
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: [service], logger: logger))
        let task = Task { try await group.run() }
        let r = RunningService(harness: self, name: service.name, endpoints: endpoints, service: service, group: group, task: task)
        try await r.waitReady()
        running.withLock { $0.append(r) }
        return r
    }

    /// Follows a service's feed with the real subscriber, collecting events in memory.
    public func collect(_ service: String, dropLive: (@Sendable (UInt64) -> Bool)? = nil) throws -> FeedCollector {
        let e = endpoints(service)
        return try FeedCollector(
            context: context, upstream: UpstreamFeed(name: service, feed: e.feed, replay: e.replay), logger: logger, dropLive: dropLive)
    }

    /// Stops every service (in reverse order of start) and removes the temporary directory.
    public func shutdown() async {
        let all = running.withLock { r -> [RunningService] in
            defer { r.removeAll() }
            return r
        }
        for r in all.reversed() { await r.stop() }
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// A service running inside the harness.
public final class RunningService: Sendable {
    public let name: String
    public let endpoints: NodeEndpoints
    public let service: BusService
    let harness: Harness
    let group: ServiceGroup
    let task: Task<Void, any Error>
    let stopped = Mutex(false)

    init(harness: Harness, name: String, endpoints: NodeEndpoints, service: BusService, group: ServiceGroup, task: Task<Void, any Error>) {
        self.harness = harness
        self.name = name
        self.endpoints = endpoints
        self.service = service
        self.group = group
        self.task = task
    }

    func waitReady() async throws {
        for _ in 0..<200 {
            let ctx = harness.context
            let ep = endpoints.replay
            if let _ = try await OwnerThread.run({ try QueryClient.replay(context: ctx, endpoint: ep, after: 0, max: 0, timeoutMs: 100) }) {
                return
            }
        }
        throw HarnessError.notReady(name)
    }

    /// Publishes events to this service's intake (pipelined) and returns their acks in order.
    public func publish(_ events: [CloudEvent]) async throws -> [Ack] {
        let results = try await IntakeClient.publish(
            context: harness.context, endpoint: endpoints.intake, events: events.map(OutgoingEvent.init), options: .forTests)
        return try results.map { r in
            guard let ack = r.ack else { throw HarnessError.noAck(r.id ?? "?") }
            return ack
        }
    }

    public func publish(_ event: CloudEvent) async throws -> Ack {
        try await publish([event])[0]
    }

    /// Sends raw frames (for bad-input tests).
    public func publishRaw(_ frames: [[UInt8]]) async throws -> [Ack] {
        let results = try await IntakeClient.publish(
            context: harness.context, endpoint: endpoints.intake, events: frames.map { OutgoingEvent(frame: $0) },
            options: .forTests)
        return try results.map { r in
            guard let ack = r.ack else { throw HarnessError.noAck(r.id ?? "?") }
            return ack
        }
    }

    /// Every event on this service's feed, through replay paging.
    public func replayAll(page: Int = 1_000) async throws -> [CloudEvent] {
        let ctx = harness.context
        let ep = endpoints.replay
        return try await OwnerThread.run {
            var out: [CloudEvent] = []
            var after: UInt64 = 0
            while true {
                guard let (events, last) = try QueryClient.replay(context: ctx, endpoint: ep, after: after, max: page) else {
                    throw HarnessError.noAck("replay")
                }
                out += events
                guard let l = events.last?.sequenceNumber, l < last else { return out }
                after = l
            }
        }
    }

    /// Sends an operator query (`status`, `quarantine.list`, …) and returns the answer.
    public func query(_ request: JSON) async throws -> JSON {
        let ctx = harness.context
        let ep = endpoints.replay
        return try await OwnerThread.run {
            guard let frames = try QueryClient.request(context: ctx, endpoint: ep, request), let f = frames.last else {
                throw HarnessError.noAck("query")
            }
            return f
        }
    }

    /// Graceful shutdown, as on SIGTERM.
    public func stop() async {
        let already = stopped.withLock { s -> Bool in
            defer { s = true }
            return s
        }
        if already { return }
        await group.triggerGracefulShutdown()
        _ = try? await task.value
    }
}

public enum HarnessError: Error, CustomStringConvertible {
    case notReady(String)
    case noAck(String)
    case timeout(String)

    public var description: String {
        switch self {
        case .notReady(let s): "\(s) did not become ready"
        case .noAck(let s): "no answer for \(s)"
        case .timeout(let s): "timed out waiting for \(s)"
        }
    }
}

/// Collects a feed in memory through the real `FeedSubscriber` (exactly once, gap recovery and
/// all), and lets a test await events without sleeping.
public final class FeedCollector: Sendable {
    struct State {
        var events: [CloudEvent] = []
        var cursor: UInt64 = 0
    }

    let state = Mutex(State())
    let changed = AsyncCondition()
    public let subscriber: FeedSubscriber

    init(context: ZContext, upstream: UpstreamFeed, logger: Logger, dropLive: (@Sendable (UInt64) -> Bool)?) throws {
        var settings = SubscriberSettings()
        settings.replayTimeoutMs = 1_000
        let sink = Sink()
        subscriber = FeedSubscriber(
            upstream: upstream, context: context, consumer: sink, settings: settings, logger: logger, dropLive: dropLive)
        sink.collector.withLock { $0 = self }
        try subscriber.start()
    }

    /// The subscriber's consumer; forwards to the collector.
    final class Sink: FeedConsumer {
        let collector = Mutex<FeedCollector?>(nil)
        func cursor(feed: String) throws -> UInt64 { collector.withLock { $0! }.state.withLock { $0.cursor } }
        func apply(feed: String, _ deliveries: [FeedDelivery], through: UInt64) throws {
            collector.withLock { $0! }.apply(deliveries, through: through)
        }
    }

    func apply(_ deliveries: [FeedDelivery], through: UInt64) {
        state.withLock { s in
            for d in deliveries {
                precondition(d.sequence == s.cursor + 1, "collector got sequence \(d.sequence) after \(s.cursor)")
                if let e = d.event { s.events.append(e) }
                s.cursor = d.sequence
            }
            precondition(through >= s.cursor, "collector told to stop at \(through) after \(s.cursor)")
            s.cursor = through
        }
        changed.signal()
    }

    public var events: [CloudEvent] { state.withLock { $0.events } }

    /// Waits until the collected events satisfy `predicate`; returns false after `timeout`
    /// (a safety net so a broken build fails instead of hanging, not a synchronisation device).
    public func wait(timeout: Duration = .seconds(20), until predicate: @escaping @Sendable ([CloudEvent]) -> Bool) async -> Bool {
        await changed.wait(timeout: timeout) { [self] in predicate(events) }
    }

    /// Waits until at least `count` events arrived.
    public func wait(count: Int, timeout: Duration = .seconds(20)) async -> Bool {
        await wait(timeout: timeout) { $0.count >= count }
    }

    public func stop() async { await subscriber.stop() }
}

extension IntakeClientOptions {
    /// Test clients wait longer for an ack than a deployed client's default (5 s): tests check
    /// what is answered, not how fast, and a sanitizer build or a busy CI machine may take
    /// longer than 5 s to work through a window of 2,000 events (seen under AddressSanitizer).
    public static var forTests: IntakeClientOptions {
        var o = IntakeClientOptions()
        o.timeoutMs = 30_000
        return o
    }
}
