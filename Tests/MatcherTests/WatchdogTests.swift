import BangfuTesting
import Bus
import Foundation
import Matcher
import Models
import ServiceKit
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A datagram socket standing in for systemd's `$NOTIFY_SOCKET`: what the service tells systemd
/// queues up here and is read back without waiting.
final class NotifySocket {
    let path: String
    let fd: Int32

    init() throws {
        path = "/tmp/bangfu-notify-\(UUID().uuidString.prefix(8))"
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        var big: Int32 = 4 << 20
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { p in
            for (k, b) in path.utf8.enumerated() { p[k] = b }
        }
        let len = socklen_t(MemoryLayout<sa_family_t>.size + path.utf8.count)
        let rc = withUnsafePointer(to: &addr) { ap in
            ap.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) }
        }
        guard rc == 0 else { throw POSIXError(.EADDRINUSE) }
    }

    /// Every message queued so far, in the order sent.
    func drain() -> [String] {
        var out: [String] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n <= 0 { return out }
            out.append(String(decoding: buf[0..<n], as: UTF8.self))
        }
    }

    deinit {
        close(fd)
        unlink(path)
    }
}

@Suite("Matcher watchdog", .serialized)
struct WatchdogTests {
    /// Publishing a policy screens every merchant in one intake transaction on the node's thread,
    /// where the heartbeat tick (the usual source of WATCHDOG=1) cannot run: the screening itself
    /// must keep systemd's watchdog fed. The beats it sends carry a `STATUS=screening …` note, and
    /// all of them are queued on the notify socket before the policy's ack is sent.
    @Test func screeningACountyKeepsTheWatchdogFed() async throws {
        let h = try Harness()
        let notify = try NotifySocket()
        do {
            let registry = try await h.startRegistry()
            var env = h.environment()
            // A 4 µs watchdog: every progress report is due, so the count below is exact.
            env.notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "4"])
            let svc = try MatcherService.build(
                options: h.options(MatcherService.name, upstreams: MatcherService.upstreams), environment: env)
            let matcher = try await h.start(svc, endpoints: h.endpoints(MatcherService.name))
            var fx = Fixtures(seed: 41)
            let merchants = 700
            let events = (0..<merchants).map { i in fx.registration(uscc: fx.uscc(), name: "商户\(i)") }
            #expect(try await registry.publish(events).allSatisfy { $0.status == .accepted })
            // The matcher has every profile once its registry cursor reaches the registry's feed.
            var cursor = ""
            for _ in 0..<600 where cursor != String(merchants) {
                cursor = try await matcher.query(["op": "status"])["feeds"]?["registry"]?["cursor"]?.stringValue ?? ""
                if cursor != String(merchants) { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(cursor == String(merchants))
            #expect(notify.drain().contains { $0.hasPrefix("READY=1") })

            let yaml = try SeedProgrammeTests.policyYAML("flood-relief")
            let ack = try await matcher.publish(Fixtures.event("policy.published", ["yaml": .string(yaml)], source: "/ops/test"))
            #expect(ack.status == .accepted)
            let beats = notify.drain().filter { $0.hasPrefix("WATCHDOG=1\nSTATUS=screening flood-relief") }
            // One report per 256 merchants screened: 256 and 512 of 700.
            #expect(beats.count == merchants / 256, "watchdog beats sent while screening: \(beats)")
            #expect(beats.last?.hasSuffix(": 512 merchants") == true)
        } catch {
            await h.shutdown()
            throw error
        }
        await h.shutdown()
    }
}
