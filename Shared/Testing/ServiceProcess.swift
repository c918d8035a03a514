import Bus
import CZeroMQ
import Foundation
import Models

#if canImport(Glibc)
    import Glibc
#endif

/// One service executable run as a child process on `ipc://` endpoints in a temporary directory.
public final class ServiceProcess: @unchecked Sendable {
    public let name: String
    public let binaryPath: String
    public let dir: String
    public let context: ZContext
    public private(set) var process: Process?
    /// Flags given on every start (e.g. upstream endpoints).
    public var baseArguments: [String] = []
    /// Extra environment variables for the child (e.g. NOTIFY_SOCKET).
    public var environment: [String: String] = [:]

    public static func binary(_ name: String) throws -> String {
        let dir =
            ProcessInfo.processInfo.environment["BANGFU_BIN"]
            ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
        let path = dir + "/" + name
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw HarnessError.notReady("\(name) is not built at \(path); run `swift build` first or set BANGFU_BIN")
        }
        return path
    }

    /// `dir` defaults to a fresh directory under /tmp (ipc:// paths must stay short).
    /// A TCP port on 127.0.0.1 that nothing listens on now (the kernel's choice for port 0).
    public static func freeLoopbackPort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    public init(name: String, dir: String? = nil, context: ZContext = ZContext()) throws {
        self.name = name
        self.context = context
        binaryPath = try Self.binary(name)
        self.dir = dir ?? "/tmp/bangfu-proc-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: self.dir, withIntermediateDirectories: true)
    }

    public var pid: Int32 { process?.processIdentifier ?? 0 }

    public func endpoint(_ which: String) -> String { "ipc://\(dir)/\(name)-\(which).sock" }

    public func start(_ extra: [String] = []) async throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binaryPath)
        p.arguments =
            [
                "--state-dir", dir + "/\(name)-state", "--intake", endpoint("intake"), "--feed", endpoint("feed"), "--replay",
                endpoint("replay"),
                "--log-level", "warning",
            ] + baseArguments + extra
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        log.seekToEndOfFile()
        p.standardOutput = log
        p.standardError = log
        // The child shuts itself down if this test process dies without stopping it.
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }.merging([
            "BANGFU_PARENT_PID": String(getpid())
        ]) { $1 }
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
            let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            throw HarnessError.notReady("\(name): \(log.suffix(2000))")
        }
    }

    public var logPath: String { dir + "/\(name).log" }

    /// Starts the executable with exactly `arguments` (for a test that needs endpoints or keys
    /// of its own, e.g. CURVE on TCP, where `start`'s readiness probe cannot speak), logging to
    /// `logPath` — never to the test runner's pipe, which a child left behind would hold open —
    /// with stdin closed and `BANGFU_PARENT_PID` set, so it stops by itself if the test process
    /// dies. The caller terminates it.
    public func launch(arguments: [String]) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binaryPath)
        p.arguments = arguments
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        p.standardOutput = log
        p.standardError = log
        p.standardInput = FileHandle.nullDevice
        p.environment = ProcessInfo.processInfo.environment.merging(["BANGFU_PARENT_PID": String(getpid())]) { $1 }
        try p.run()
        return p
    }

    public func waitForExit() async throws -> Int32 {
        guard let p = process else { return 0 }
        return try await OwnerThread.run {
            p.waitUntilExit()
            return p.terminationStatus
        }
    }

    /// SIGTERM, then the exit status.
    public func terminate() async throws -> Int32 {
        guard let p = process else { return 0 }
        p.terminate()
        return try await waitForExit()
    }

    /// Sends an operator query to the replay endpoint.
    public func query(_ request: JSON) async throws -> JSON {
        let ctx = context
        let ep = endpoint("replay")
        return try await OwnerThread.run {
            guard let f = try QueryClient.request(context: ctx, endpoint: ep, request)?.last else { throw HarnessError.noAck("query") }
            return f
        }
    }

    public func replayAll() async throws -> [CloudEvent] {
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

    /// Kills the process if it runs and removes the directory (unless others share it).
    public func cleanup(removeDirectory: Bool = true) {
        if let p = process, p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }
        if removeDirectory { try? FileManager.default.removeItem(atPath: dir) }
    }
}

/// A process's peak resident memory (VmHWM from `/proc/<pid>/status`), in KiB; 0 when unknown
/// (the process is gone, or this is not Linux).
public func peakResidentKiB(pid: Int32) -> Int {
    guard pid > 0, let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
        let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") })
    else { return 0 }
    return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
}

/// The CPU time a process has used so far (user + system, from `/proc/<pid>/stat`), in clock
/// ticks of `sysconf(_SC_CLK_TCK)`; 0 when unknown.
public func cpuTicks(pid: Int32) -> Int {
    guard pid > 0, let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = text.lastIndex(of: ")")
    else { return 0 }
    // After the command name in parentheses: state is field 3, utime 14, stime 15.
    let fields = text[text.index(after: close)...].split(separator: " ")
    guard fields.count > 12, let user = Int(fields[11]), let system = Int(fields[12]) else { return 0 }
    return user + system
}

/// Clock ticks per second for `cpuTicks`.
public let cpuTicksPerSecond = max(Int(sysconf(Int32(_SC_CLK_TCK))), 1)

/// Waits until process `pid` — any process, not only a child of this one — has ended, for at
/// most `timeoutMs`; true when it has. Uses a pidfd (Linux 5.3+): `poll` wakes when the process
/// exits, so nothing is polled on a timer.
public func waitForProcessEnd(pid: Int32, timeoutMs: Int32) -> Bool {
    let fd = bangfu_pidfd_open(pid)
    if fd < 0 { return errno == ESRCH }  // already gone (and reaped)
    defer { close(fd) }
    var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    while true {
        let n = poll(&p, 1, timeoutMs)
        if n < 0 && errno == EINTR { continue }
        return n > 0
    }
}
