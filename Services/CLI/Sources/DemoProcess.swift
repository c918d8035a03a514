import BangfuTesting
import Bus
import Foundation
import Models
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A service executable started by the demo. A chaos run kills it with SIGKILL and starts it
/// again with the same arguments, so everything about the running process sits behind a lock.
final class DemoProcess: Sendable {
    let name: String
    let binary: String
    let stateDir: String
    let socketDir: String
    let logPath: String
    private struct Running {
        var process: Process?
        var arguments: [String] = []
        /// The highest VmHWM seen in an earlier incarnation (before a kill), in KiB.
        var earlierPeakKiB = 0
        /// CPU time of the incarnations killed before this one.
        var earlierCPUTicks = 0
        var starts = 0
    }
    private let running = Mutex(Running())

    init(name: String, binary: String, stateDir: String, socketDir: String, logPath: String) {
        self.name = name
        self.binary = binary
        self.stateDir = stateDir
        self.socketDir = socketDir
        self.logPath = logPath
    }

    var pid: Int32 { running.withLock { $0.process?.processIdentifier ?? 0 } }

    /// How many times the process has been started (1 unless a chaos run restarted it).
    var starts: Int { running.withLock { $0.starts } }

    func endpoint(_ which: String) -> String { "ipc://\(socketDir)/\(name)-\(which)" }

    /// The executable and the arguments it was (last) started with.
    var commandLine: [String] { [binary] + running.withLock { $0.arguments } }

    func start(extra: [String] = []) throws {
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw CLIError("\(binary) is not built (build it with `swift build -c release`)", exitCode: 1)
        }
        let arguments =
            ["--state-dir", stateDir, "--intake", endpoint("intake"), "--feed", endpoint("feed"), "--replay", endpoint("replay")] + extra
        try launch(arguments)
    }

    private func launch(_ arguments: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = arguments
        // Appended to, so a restarted process's log follows its predecessor's.
        if !FileManager.default.fileExists(atPath: logPath) { _ = FileManager.default.createFile(atPath: logPath, contents: nil) }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        try log.seekToEnd()
        p.standardOutput = log
        p.standardError = log
        // The service shuts itself down if the demo dies without stopping it (kill -9, a crash).
        p.environment = ProcessInfo.processInfo.environment.merging(["BANGFU_PARENT_PID": String(getpid())]) { $1 }
        try p.run()
        running.withLock {
            $0.process = p
            $0.arguments = arguments
            $0.starts += 1
        }
    }

    /// `kill -9`, then the same command line again. Returns the pid that was killed.
    func killAndRestart() throws -> Int32 {
        let (p, arguments) = running.withLock { ($0.process, $0.arguments) }
        guard let p else { throw CLIError("bangfu-\(name) was never started", exitCode: 1) }
        let pid = p.processIdentifier
        let peak = peakResidentKiB(pid: pid)
        let ticks = cpuTicks(pid: pid)
        _ = kill(pid, SIGKILL)
        p.waitUntilExit()
        running.withLock {
            $0.earlierPeakKiB = max($0.earlierPeakKiB, peak)
            $0.earlierCPUTicks += ticks
        }
        try launch(arguments)
        return pid
    }

    /// Blocks until the service answers the readiness probe (replay with `max: 0`). Call it from a
    /// thread of its own (it polls libzmq).
    func waitReadyBlocking(context: ZContext, attempts: Int = 600) -> Bool {
        let ep = endpoint("replay")
        for _ in 0..<attempts {
            if let p = running.withLock({ $0.process }), !p.isRunning { return false }
            if (try? QueryClient.replay(context: context, endpoint: ep, after: 0, max: 0, timeoutMs: 200)) ?? nil != nil { return true }
        }
        return false
    }

    func waitReady(context: ZContext) async throws -> Bool {
        try await OwnerThread.run { self.waitReadyBlocking(context: context, attempts: 300) }
    }

    /// The process's peak resident memory (VmHWM), in MiB, over every incarnation.
    func peakRSSMiB() -> Int {
        let (pid, earlier) = running.withLock { ($0.process?.processIdentifier ?? 0, $0.earlierPeakKiB) }
        return max(peakResidentKiB(pid: pid), earlier) / 1024
    }

    /// CPU seconds used so far (user + system), over every incarnation.
    func cpuSeconds() -> Double {
        let (pid, earlier) = running.withLock { ($0.process?.processIdentifier ?? 0, $0.earlierCPUTicks) }
        return Double(cpuTicks(pid: pid) + earlier) / Double(cpuTicksPerSecond)
    }

    func stopOrKill() {
        guard let p = running.withLock({ $0.process }), p.isRunning else { return }
        p.terminate()
        p.waitUntilExit()
    }
}

/// One kill of a chaos run.
struct ChaosKill: Sendable {
    var service: String
    var pid: Int32
    /// Seconds since the monkey started.
    var at: Double
    /// The demo stage that was running.
    var stage: String
    /// Seconds until the restarted service answered again.
    var downSeconds: Double
}

/// The crash proof's monkey (`bangfu demo --chaos-kills N`): on a thread of its own, at random
/// moments it picks one of the services (each of them in turn, in a shuffled order), kills it with
/// SIGKILL and starts it again with the same command line. The demo keeps going: its clients
/// retry with the same event ids (Lazy Pirate) and its queries retry until the service answers.
final class ChaosMonkey: Sendable {
    private let processes: [DemoProcess]
    private let context: ZContext
    private let minimumKills: Int
    private let meanIntervalMs: Int
    private let seed: UInt64
    private struct State {
        var stage = "start"
        var stopping = false
        var finished = false
        var kills: [ChaosKill] = []
        var failure: String?
    }
    private let state = Mutex(State())
    private let done = DispatchSemaphore(value: 0)

    init(processes: [DemoProcess], context: ZContext, minimumKills: Int, meanIntervalMs: Int, seed: UInt64) {
        self.processes = processes
        self.context = context
        self.minimumKills = minimumKills
        self.meanIntervalMs = max(meanIntervalMs, 50)
        self.seed = seed
    }

    var kills: [ChaosKill] { state.withLock { $0.kills } }

    /// Names the demo stage now running (recorded with each kill).
    func enter(stage: String) { state.withLock { $0.stage = stage } }

    func start() throws {
        try DedicatedThread.start(name: "chaos") { [self] in
            loop()
            done.signal()
        }
    }

    /// Stops killing once at least the minimum number of kills has happened (killing on, quickly,
    /// until it has), and returns when the last restarted service answers again.
    func finish() async throws -> [ChaosKill] {
        state.withLock { $0.stopping = true }
        let sem = done
        try await OwnerThread.run { sem.wait() }
        let (kills, failure) = state.withLock { ($0.kills, $0.failure) }
        if let failure { throw CLIError(failure, exitCode: 1) }
        return kills
    }

    private func loop() {
        var rng = Fixtures(seed: seed ^ 0xC4A0_5C4A_05)
        var order: [Int] = []
        let started = DispatchTime.now().uptimeNanoseconds
        func elapsed() -> Double { Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9 }
        while true {
            let (stopping, count) = state.withLock { ($0.stopping, $0.kills.count) }
            if stopping && count >= minimumKills { return }
            // A random moment: between half and one and a half of the mean interval (short once the
            // demo's work is done and kills are still owed).
            let waitMs = stopping ? 100 : rng.int(meanIntervalMs / 2...meanIntervalMs * 3 / 2)
            var waited = 0
            while waited < waitMs {
                let slice = min(20, waitMs - waited)
                usleep(UInt32(slice * 1_000))
                waited += slice
                if !stopping, state.withLock({ $0.stopping }), state.withLock({ $0.kills.count }) >= minimumKills { return }
            }
            if order.isEmpty {
                order = Array(processes.indices)
                order.shuffle(using: &rng)
            }
            let victim = processes[order.removeLast()]
            let at = elapsed()
            let stage = state.withLock { $0.stage }
            do {
                let pid = try victim.killAndRestart()
                guard victim.waitReadyBlocking(context: context) else {
                    state.withLock { $0.failure = "bangfu-\(victim.name) did not come back after kill -9; see \(victim.logPath)" }
                    return
                }
                let kill = ChaosKill(service: victim.name, pid: pid, at: at, stage: stage, downSeconds: elapsed() - at)
                state.withLock { $0.kills.append(kill) }
            } catch {
                state.withLock { $0.failure = "could not restart bangfu-\(victim.name): \(error)" }
                return
            }
        }
    }
}
