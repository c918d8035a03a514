import Bus
import Foundation
import Logging
import Models
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A Bangfu service as a `ServiceLifecycle.Service`: its bus node (intake, feed, replay) and the
/// subscriptions to its upstream feeds. All of its work happens inside `run()`; on graceful
/// shutdown it stops following upstreams, answers what already arrived, and closes its sockets.
public final class BusService: Service, Sendable {
    public let name: String
    public let node: ServiceNode
    public let subscribers: [FeedSubscriber]
    let logger: Logger
    let notifier: SystemdNotifier
    let extraStart: @Sendable () throws -> Void
    let extraStop: @Sendable () -> Void
    let zap: ZAPHandler?

    public init(
        name: String, node: ServiceNode, subscribers: [FeedSubscriber] = [], logger: Logger,
        notifier: SystemdNotifier = SystemdNotifier(), security: ServiceSecurity? = nil,
        onStart: @escaping @Sendable () throws -> Void = {},
        onStop: @escaping @Sendable () -> Void = {}
    ) {
        self.zap = security?.zap
        self.name = name
        self.node = node
        self.subscribers = subscribers
        self.logger = logger
        self.notifier = notifier
        self.extraStart = onStart
        self.extraStop = onStop
    }

    public func run() async throws {
        if let usec = notifier.watchdogMicroseconds {
            // WATCHDOG=1 comes from the bus loop itself (every heartbeat), so a stuck loop trips
            // systemd's WatchdogSec=; long work on the loop's thread (a policy screening a county)
            // reports progress in between, at most every quarter of the watchdog's time.
            let n = notifier
            node.liveness.setMinInterval(microseconds: usec / 4)
            // A progress note becomes STATUS=; the next beat without one says `serving` again.
            let noted = NotedFlag()
            node.liveness.onAlive { note in
                if let note {
                    noted.value.store(true, ordering: .relaxed)
                    n.notify("WATCHDOG=1\nSTATUS=" + note)
                } else {
                    n.notify(noted.value.exchange(false, ordering: .relaxed) ? "WATCHDOG=1\nSTATUS=serving" : "WATCHDOG=1")
                }
            }
        }
        // The ZAP handler first: no CURVE socket may exist without it (fail closed).
        if let zap { try await OwnerThread.run { try zap.start() } }
        var extraStarted = false
        do {
            try await OwnerThread.run { [node] in try node.start() }
            // Bound: the socket files exist now (FileModes).
            FileModes.setSocketModes([node.endpoints.intake, node.endpoints.feed, node.endpoints.replay])
            try extraStart()
            extraStarted = true
            for s in subscribers { try s.start() }
        } catch {
            // A bind or a thread refused: stop what did start, then fail (the process exits non-zero).
            logger.error("service failed to start", metadata: ["service": "\(name)", "error": "\(error)"])
            await stopParts(extraStarted: extraStarted)
            throw error
        }
        notifier.notify("READY=1\nSTATUS=serving")
        logger.info("service ready", metadata: ["service": "\(name)"])
        try? await gracefulShutdown()
        notifier.notify("STOPPING=1")
        logger.info("service stopping", metadata: ["service": "\(name)"])
        await stopParts(extraStarted: true)
        logger.info("service stopped", metadata: ["service": "\(name)"])
    }

    /// Stops the subscribers, the service's own extras, the node and the ZAP handler, in that
    /// order; each part that never started returns at once.
    private func stopParts(extraStarted: Bool) async {
        for s in subscribers { await s.stop() }
        if extraStarted { extraStop() }
        await node.stop()
        if let zap { try? await OwnerThread.run { zap.stopAndWait() } }
    }
}

/// Whether the last watchdog beat set a progress `STATUS=`.
private final class NotedFlag: Sendable {
    let value = Atomic<Bool>(false)
}

/// sd_notify(3) without libsystemd: a datagram to `$NOTIFY_SOCKET`. Does nothing outside systemd.
public struct SystemdNotifier: Sendable {
    public let socketPath: String?
    public let watchdogMicroseconds: UInt64?

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        socketPath = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        if let w = environment["WATCHDOG_USEC"].flatMap({ UInt64($0) }),
            environment["WATCHDOG_PID"].map({ $0 == String(getpid()) }) ?? true
        {
            watchdogMicroseconds = w
        } else {
            watchdogMicroseconds = nil
        }
    }

    public func notify(_ state: String) {
        guard let path = socketPath else { return }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }  // abstract namespace
        let cap = MemoryLayout.size(ofValue: addr.sun_path)
        guard bytes.count < cap else { return }
        withUnsafeMutableBytes(of: &addr.sun_path) { p in
            for (k, b) in bytes.enumerated() { p[k] = b }
        }
        let len = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count)
        let msg = Array(state.utf8)
        _ = withUnsafePointer(to: &addr) { ap in
            ap.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                msg.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, 0, sa, len) }
            }
        }
    }
}
