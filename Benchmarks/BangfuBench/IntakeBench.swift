import BangfuTesting
import Bus
import Foundation
import GRDB
import Models

#if canImport(Glibc)
    import Glibc
#endif

/// `bangfu-bench intake`: N registrations pipelined over TCP loopback into the real
/// `bangfu-registry` process with durable acks, beside raw libzmq PUSH/PULL of the same frames
/// and raw SQLite batched inserts of the same rows, in the same run.
struct IntakeBench {
    var events = 100_000
    var window = 2_000
    var seed: UInt64 = 20_221_129
    var json = false

    struct Figures {
        var events: Int
        var seconds: Double
        var perSecond: Double { Double(events) / seconds }
    }

    func run() async throws -> String {
        let county = SyntheticCounty(seed: seed, merchants: events, badEvery: 0)
        let frames = county.registrations().map(OutgoingEvent.init)
        log("generated \(frames.count) registrations (\(frames.reduce(0) { $0 + $1.frame.count } / frames.count) bytes each on average)")

        // 1. The registry, durable acks.
        let dir = NSTemporaryDirectory() + "bangfu-bench-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let registry = try ChildService(binary: Self.sibling("bangfu-registry"), stateDir: dir + "/registry")
        try await registry.start()
        let ctx = ZContext()
        var options = IntakeClientOptions()
        options.window = window
        options.timeoutMs = 30_000
        let clientOptions = options
        let intake = registry.endpoints.intake
        let started = DispatchTime.now().uptimeNanoseconds
        let results = try await OwnerThread.run {
            let c = IntakeClient(context: ctx, endpoint: intake, options: clientOptions)
            defer { c.close() }
            return try c.publish(frames)
        }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        let accepted = results.filter { $0.ack?.status == .accepted }.count
        guard accepted == frames.count else {
            throw BenchError("only \(accepted) of \(frames.count) registrations were accepted")
        }
        let latencies = results.map(\.latencyNs).sorted()
        let p50 = Double(latencies[latencies.count / 2]) / 1e6
        let p99 = Double(latencies[min(latencies.count - 1, latencies.count * 99 / 100)]) / 1e6
        let rss = registry.peakRSSKiB()
        let status = try QueryClient.request(context: ctx, endpoint: registry.endpoints.replay, ["op": "status"])?.last
        let batches = status?["counters"]?["batches"]?.intValue ?? 0
        _ = try await registry.terminate()
        let intakeFig = Figures(events: frames.count, seconds: elapsed)
        log("registry: \(Int(intakeFig.perSecond)) acknowledged facts/s")

        // 2. Raw libzmq PUSH/PULL of the same frames over TCP loopback.
        let push = try pushPull(frames.map(\.frame), context: ctx)
        log("raw PUSH/PULL: \(Int(push.perSecond)) frames/s")

        // 3. Raw SQLite (WAL, synchronous=FULL) batched inserts of the same rows.
        let sqlite = try rawSQLite(frames, dir: dir, batch: max(1, frames.count / max(1, Int(batches))))
        log("raw SQLite: \(Int(sqlite.perSecond)) rows/s")
        ctx.terminate()

        if json {
            let o: JSON = [
                "benchmark": "intake", "events": .int(Int64(frames.count)), "window": .int(Int64(window)),
                "facts_per_second": .int(Int64(intakeFig.perSecond)), "ack_p50_ms": .string(String(format: "%.2f", p50)),
                "ack_p99_ms": .string(String(format: "%.2f", p99)), "commit_batches": .int(batches),
                "registry_peak_rss_kib": .int(Int64(rss)), "push_pull_per_second": .int(Int64(push.perSecond)),
                "sqlite_rows_per_second": .int(Int64(sqlite.perSecond)),
            ]
            return o.serialized()
        }
        return """
            | measure | figure |
            | --- | --- |
            | registrations | \(frames.count) (window \(window)) |
            | registry, acknowledged facts/s (durable, TCP loopback) | \(Int(intakeFig.perSecond)) |
            | ack latency p50 / p99 | \(String(format: "%.2f", p50)) ms / \(String(format: "%.2f", p99)) ms |
            | commit batches (group commit) | \(batches) (\(frames.count / max(1, Int(batches))) events per transaction on average) |
            | registry peak RSS | \(rss / 1024) MiB |
            | raw libzmq PUSH/PULL, frames/s | \(Int(push.perSecond)) |
            | raw SQLite batched inserts, rows/s | \(Int(sqlite.perSecond)) |
            | registry ÷ PUSH/PULL | \(String(format: "%.3f", intakeFig.perSecond / push.perSecond)) |
            | registry ÷ raw SQLite | \(String(format: "%.3f", intakeFig.perSecond / sqlite.perSecond)) |
            """
    }

    func pushPull(_ frames: [[UInt8]], context: ZContext) throws -> Figures {
        let port = try freePort()
        let ep = "tcp://127.0.0.1:\(port)"
        let pull = try context.socket(.pull)
        var o = ZSocketOptions()
        o.receiveHWM = 100_000
        o.sendHWM = 100_000
        try pull.apply(o, tcpHeartbeats: false)
        try pull.bind(ep)
        let socketOptions = o
        let done = DispatchSemaphore(value: 0)
        let count = frames.count
        let started = DispatchTime.now().uptimeNanoseconds
        try DedicatedThread.start(name: "bench.push") {
            do {
                let push = try context.socket(.push)
                try push.apply(socketOptions, tcpHeartbeats: false)
                try push.connect(ep)
                for f in frames { _ = try push.send([f], dontWait: false) }
                push.close(lingerMs: 10_000)
            } catch {
                FileHandle.standardError.write(Data("push failed: \(error)\n".utf8))
            }
            done.signal()
        }
        var received = 0
        while received < count {
            if try pull.receive(dontWait: false) != nil { received += 1 }
        }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        done.wait()
        pull.close()
        return Figures(events: count, seconds: elapsed)
    }

    func rawSQLite(_ frames: [OutgoingEvent], dir: String, batch: Int) throws -> Figures {
        var config = Configuration()
        config.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        let pool = try DatabasePool(path: dir + "/raw.sqlite", configuration: config)
        try pool.write { db in
            try db.execute(sql: "CREATE TABLE rows (source TEXT, event_id TEXT, body BLOB, PRIMARY KEY (source, event_id)) WITHOUT ROWID")
        }
        let started = DispatchTime.now().uptimeNanoseconds
        var k = 0
        while k < frames.count {
            let end = min(frames.count, k + batch)
            try pool.write { db in
                let st = try db.cachedStatement(sql: "INSERT INTO rows(source, event_id, body) VALUES (?, ?, ?)")
                for f in frames[k..<end] { try st.execute(arguments: ["/samr/xuchang", f.id, Data(f.frame)]) }
            }
            k = end
        }
        return Figures(events: frames.count, seconds: Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9)
    }

    static func sibling(_ name: String) -> String {
        URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent(name)
            .path
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

func log(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }

/// Asks the kernel for a free TCP port on loopback.
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
            bind(fd, sa, len) == 0 && getsockname(fd, sa, &len) == 0
        }
    }
    guard ok else { throw BenchError("no free port") }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// A service executable as a child process on free loopback TCP ports.
final class ChildService: @unchecked Sendable {
    let binary: String
    let stateDir: String
    let endpoints: NodeEndpoints
    var process: Process?

    init(binary: String, stateDir: String) throws {
        guard FileManager.default.isExecutableFile(atPath: binary) else { throw BenchError("\(binary) is not built") }
        self.binary = binary
        self.stateDir = stateDir
        endpoints = NodeEndpoints(
            intake: "tcp://127.0.0.1:\(try freePort())", feed: "tcp://127.0.0.1:\(try freePort())",
            replay: "tcp://127.0.0.1:\(try freePort())")
    }

    func start() async throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = [
            "--state-dir", stateDir, "--intake", endpoints.intake, "--feed", endpoints.feed, "--replay", endpoints.replay, "--log-level",
            "warning",
        ]
        try p.run()
        process = p
        let ctx = ZContext()
        defer { ctx.terminate() }
        for _ in 0..<300 {
            if (try? QueryClient.replay(context: ctx, endpoint: endpoints.replay, after: 0, max: 0, timeoutMs: 200)) ?? nil != nil {
                return
            }
            if !p.isRunning { break }
        }
        throw BenchError("\(binary) did not become ready")
    }

    func peakRSSKiB() -> Int { peakResidentKiB(pid: process?.processIdentifier ?? 0) }

    func terminate() async throws -> Int32 {
        guard let p = process else { return 0 }
        p.terminate()
        p.waitUntilExit()
        return p.terminationStatus
    }
}
