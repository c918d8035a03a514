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
        #expect(try await proc.terminate() == 0)
    }

    @Test func sigtermDrainsAndExitsZero() async throws {
        let proc = try ServiceProcess(name: "bangfu-registry")
        defer { proc.cleanup() }
        try await proc.start()
        var f = Fixtures(seed: 10)
        let results = try await IntakeClient.publish(
            context: proc.context, endpoint: proc.endpoint("intake"),
            events: (0..<200).map { _ in OutgoingEvent(f.registration(uscc: f.uscc(), name: "下班前")) })
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
            let r = try await IntakeClient.publish(context: proc.context, endpoint: proc.endpoint("intake"), events: [OutgoingEvent(ev)])
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

/// One service executable run as a child process on `ipc://` endpoints in a temporary directory.
final class ServiceProcess: @unchecked Sendable {
    let name: String
    let binaryPath: String
    let dir: String
    let context = ZContext()
    private(set) var process: Process?

    static func binary(_ name: String) throws -> String {
        let dir =
            ProcessInfo.processInfo.environment["BANGFU_BIN"]
            ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
        let path = dir + "/" + name
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw HarnessError.notReady("\(name) is not built at \(path); run `swift build` first or set BANGFU_BIN")
        }
        return path
    }

    init(name: String) throws {
        self.name = name
        binaryPath = try Self.binary(name)
        dir = "/tmp/bangfu-proc-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    var pid: Int32 { process?.processIdentifier ?? 0 }

    func endpoint(_ which: String) -> String { "ipc://\(dir)/\(which).sock" }

    func start(_ extra: [String] = []) async throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binaryPath)
        p.arguments =
            [
                "--state-dir", dir + "/state", "--intake", endpoint("intake"), "--feed", endpoint("feed"), "--replay", endpoint("replay"),
                "--log-level", "warning",
            ] + extra
        FileManager.default.createFile(atPath: dir + "/log", contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: dir + "/log"))
        log.seekToEndOfFile()
        p.standardOutput = log
        p.standardError = log
        try p.run()
        process = p
        let ctx = context
        let ep = endpoint("replay")
        let ready = try await OwnerThread.run {
            for _ in 0..<300 {
                if !p.isRunning { return false }
                if (try? QueryClient.replay(context: ctx, endpoint: ep, after: 0, max: 0, timeoutMs: 200)) ?? nil != nil { return true }
            }
            return false
        }
        guard ready else {
            let log = (try? String(contentsOfFile: dir + "/log", encoding: .utf8)) ?? ""
            throw HarnessError.notReady("\(name): \(log.suffix(2000))")
        }
    }

    func waitForExit() async throws -> Int32 {
        guard let p = process else { return 0 }
        return try await OwnerThread.run {
            p.waitUntilExit()
            return p.terminationStatus
        }
    }

    /// SIGTERM, then the exit status.
    func terminate() async throws -> Int32 {
        guard let p = process else { return 0 }
        p.terminate()
        return try await waitForExit()
    }

    func replayAll() async throws -> [CloudEvent] {
        let ctx = context
        let ep = endpoint("replay")
        return try await OwnerThread.run {
            var out: [CloudEvent] = []
            var after: UInt64 = 0
            while true {
                guard let (events, last) = try QueryClient.replay(context: ctx, endpoint: ep, after: after, max: 1_000) else {
                    throw HarnessError.noAck("replay")
                }
                out += events
                guard let l = events.last?.sequenceNumber, l < last else { return out }
                after = l
            }
        }
    }

    func cleanup() {
        if let p = process, p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: dir)
    }
}
