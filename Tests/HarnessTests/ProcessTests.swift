import BangfuTesting
import Bus
import Foundation
import Models
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The real executable in its own process, over `ipc://`: kill -9 in the middle of a pipelined
/// stream loses nothing acknowledged and applies nothing twice; SIGTERM exits 0.
@Suite("Registry process", .serialized)
struct ProcessTests {
    @Test func kill9DuringAPipelinedStreamLosesNothingAndDuplicatesNothing() async throws {
        let proc = try ServiceProcess(name: "bangfu-registry")
        defer { proc.cleanup() }
        try await proc.start()
        var f = Fixtures(seed: 9)
        let events = (0..<3_000).map { i in f.registration(uscc: f.uscc(), name: "断电测试店\(i)") }
        let killed = AsyncCondition()
        let killedOnce = Mutex(false)
        var options = IntakeClientOptions()
        options.timeoutMs = 1_000
        options.retries = 60
        options.window = 500
        let context = proc.context
        let intake = proc.endpoint("intake")
        let clientOptions = options
        let pid = proc.pid
        let publishing = Task {
            try await OwnerThread.run {
                let client = IntakeClient(context: context, endpoint: intake, options: clientOptions)
                defer { client.close() }
                return try client.publish(events.map(OutgoingEvent.init)) { done, _ in
                    guard done >= 700 else { return }
                    let first = killedOnce.withLock { k -> Bool in
                        defer { k = true }
                        return !k
                    }
                    if first {
                        kill(pid, SIGKILL)
                        killed.signal()
                    }
                }
            }
        }
        #expect(await killed.wait { killedOnce.withLock { $0 } })
        let status = try await proc.waitForExit()
        #expect(status == SIGKILL || status == 128 + SIGKILL || status == -SIGKILL || status != 0)
        try await proc.start()  // same state directory
        let results = try await publishing.value
        #expect(results.allSatisfy { $0.ack?.status == .accepted }, "every event acknowledged as taken, before or after the crash")
        #expect(results.contains { $0.attempts > 1 }, "some events were re-sent after the crash")
        let feed = try await proc.replayAll()
        #expect(feed.compactMap(\.sequenceNumber) == Array(1...UInt64(events.count)), "gapless, one profile per registration")
        #expect(Set(feed.compactMap(\.subject)) == Set(events.compactMap(\.subject)))
        #expect(feed.compactMap(\.subject) == events.compactMap(\.subject), "committed in the order sent, across the crash")
        #expect(try await proc.terminate() == 0)
    }

    @Test func sigtermDrainsAndExitsZero() async throws {
        let proc = try ServiceProcess(name: "bangfu-registry")
        defer { proc.cleanup() }
        try await proc.start()
        var f = Fixtures(seed: 10)
        let results = try await IntakeClient.publish(
            context: proc.context, endpoint: proc.endpoint("intake"),
            events: (0..<200).map { _ in OutgoingEvent(f.registration(uscc: f.uscc(), name: "下班前")) }, options: .forTests)
        #expect(results.allSatisfy { $0.ack?.status == .accepted })
        #expect(try await proc.terminate() == 0)
        try await proc.start()
        #expect(try await proc.replayAll().count == 200)
        #expect(try await proc.terminate() == 0)
    }

    @Test func clockAdvancedNeedsTheSimulatedClockAndSurvivesARestart() async throws {
        let proc = try ServiceProcess(name: "bangfu-registry")
        defer { proc.cleanup() }
        func advance(_ to: String) async throws -> Ack {
            let ev = CloudEvent(id: UUID().uuidString, source: "/ops/demo", type: "clock.advanced", data: ["to": .string(to)])
            let r = try await IntakeClient.publish(
                context: proc.context, endpoint: proc.endpoint("intake"), events: [OutgoingEvent(ev)], options: .forTests)
            return try #require(r[0].ack)
        }
        func status() async throws -> JSON {
            let ctx = proc.context
            let ep = proc.endpoint("replay")
            return try await OwnerThread.run { try QueryClient.request(context: ctx, endpoint: ep, ["op": "status"])?.last ?? [:] }
        }
        try await proc.start()
        #expect(try await advance("2030-01-01T00:00:00+08:00").rejection?.code == .unauthorized)
        #expect(try await status()["simulated_clock"]?.boolValue == false)
        #expect(try await proc.terminate() == 0)
        try await proc.start(["--simulated-clock"])
        #expect(try await advance("2030-01-01T00:00:00+08:00").status == .accepted)
        #expect(try await status()["clock"]?.stringValue?.hasPrefix("2030-01-01T00:00:00") == true)
        #expect(try await proc.terminate() == 0)
        try await proc.start(["--simulated-clock"])
        #expect(try await status()["clock"]?.stringValue?.hasPrefix("2030-01-01T00:00:00") == true, "the simulated time survives a restart")
        #expect(try await proc.terminate() == 0)
    }

    @Test func oneProcessPerStateDirectoryAndNoneWithoutOne() async throws {
        let first = try ServiceProcess(name: "bangfu-registry")
        defer { first.cleanup() }
        try await first.start()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: first.binaryPath)
        p.arguments = [
            "--state-dir", first.dir + "/bangfu-registry-state", "--intake", "ipc://\(first.dir)/other-i", "--feed",
            "ipc://\(first.dir)/other-f", "--replay", "ipc://\(first.dir)/other-r",
        ]
        let pipe = Pipe()
        p.standardError = pipe
        p.standardOutput = pipe
        try p.run()
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 1)
        #expect(out.contains("already running"))
        #expect(try await first.terminate() == 0)

        let q = Process()
        q.executableURL = URL(fileURLWithPath: first.binaryPath)
        q.arguments = ["--intake", "ipc://\(first.dir)/x-i"]
        q.environment = ProcessInfo.processInfo.environment.filter { $0.key != "STATE_DIRECTORY" && $0.key != "BANGFU_STATE_DIR" }
        let qpipe = Pipe()
        q.standardError = qpipe
        q.standardOutput = qpipe
        try q.run()
        let qout = String(decoding: qpipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        q.waitUntilExit()
        #expect(q.terminationStatus == 64)
        #expect(qout.contains("no state directory"))
    }

    @Test func systemdNotificationsReadyWatchdogAndStopping() async throws {
        let proc = try ServiceProcess(name: "bangfu-registry")
        defer { proc.cleanup() }
        let socketPath = proc.dir + "/notify.sock"
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        #expect(fd >= 0)
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { p in
            for (k, b) in socketPath.utf8.enumerated() { p[k] = b }
        }
        let bound = withUnsafePointer(to: &addr) { ap in
            ap.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(bound == 0)
        proc.environment = ["NOTIFY_SOCKET": socketPath, "WATCHDOG_USEC": "2000000"]
        try await proc.start()
        func receive() async throws -> String {
            try await OwnerThread.run {
                var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&pfd, 1, 20_000) == 1 else { return "" }
                var buf = [UInt8](repeating: 0, count: 4096)
                let n = recv(fd, &buf, buf.count, 0)
                return n > 0 ? String(decoding: buf[0..<n], as: UTF8.self) : ""
            }
        }
        var seen: [String] = []
        while !seen.contains(where: { $0.contains("READY=1") }) {
            let m = try await receive()
            if m.isEmpty { break }
            seen.append(m)
        }
        #expect(seen.contains { $0.contains("READY=1") })
        // The bus loop's heartbeat tick sends WATCHDOG=1 (once a second).
        var watchdog = false
        for _ in 0..<5 where !watchdog { watchdog = try await receive().contains("WATCHDOG=1") }
        #expect(watchdog)
        proc.process?.terminate()
        var stopping = false
        for _ in 0..<10 where !stopping {
            let m = try await receive()
            if m.isEmpty { break }
            stopping = m.contains("STOPPING=1")
        }
        #expect(stopping)
        #expect(try await proc.waitForExit() == 0)
    }

    @Test func badFlagsAndNonLoopbackWithoutKeysRefuseToStart() async throws {
        let bin = try ServiceProcess.binary("bangfu-registry")
        func run(_ args: [String]) throws -> (Int32, String) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: bin)
            p.arguments = args
            let pipe = Pipe()
            p.standardError = pipe
            p.standardOutput = pipe
            try p.run()
            let out = pipe.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return (p.terminationStatus, String(decoding: out, as: UTF8.self))
        }
        let (c1, o1) = try run(["--no-such-flag"])
        #expect(c1 == 64)
        #expect(o1.contains("unknown option --no-such-flag"))
        let (c2, o2) = try run(["--intake", "tcp://10.1.2.3:7101", "--check-config"])
        #expect(c2 == 64)
        #expect(o2.contains("not on loopback"))
        let (c3, o3) = try run(["--intake", "ipc:///tmp/x", "--check-config"])
        #expect(c3 == 0)
        #expect(o3.contains("intake: ipc:///tmp/x"))
    }
}
