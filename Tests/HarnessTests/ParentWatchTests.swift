import BangfuTesting
import Bus
import Foundation
import Logging
import Models
import ServiceKit
import ServiceLifecycle
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A service that runs until the group shuts down gracefully, and says whether it saw that.
private final class Sentinel: Service {
    let sawShutdown = Mutex(false)
    func run() async throws {
        try? await gracefulShutdown()
        sawShutdown.withLock { $0 = true }
    }
}

private func quietLogger() -> Logger {
    var l = Logger(label: "test.parent-watch")
    l.logLevel = .critical
    return l
}

@Suite("Parent watch", .serialized)
struct ParentWatchTests {
    @Test func theGroupShutsDownGracefullyWhenTheParentChanges() async throws {
        let parent = Mutex<pid_t>(4242)
        let watch = ParentWatch(parent: 4242, logger: quietLogger(), currentParent: { parent.withLock { $0 } })
        let sentinel = Sentinel()
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: sentinel), .init(service: watch, successTerminationBehavior: .gracefullyShutdownGroup)],
                logger: quietLogger()))
        let running = Task { try await group.run() }
        parent.withLock { $0 = 1 }  // reparented: the starter is gone
        try await running.value
        #expect(sentinel.sawShutdown.withLock { $0 })
    }

    @Test func theWatchEndsQuietlyWhenTheGroupShutsDownForAnotherReason() async throws {
        let watch = ParentWatch(parent: getppid(), logger: quietLogger())
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: watch, successTerminationBehavior: .gracefullyShutdownGroup)], logger: quietLogger()))
        let running = Task { try await group.run() }
        await group.triggerGracefulShutdown()
        try await running.value
    }

    @Test func onlyANamedLiveParentIsWatched() {
        #expect(ParentWatch.fromEnvironment([:], logger: quietLogger()) == nil)
        #expect(ParentWatch.fromEnvironment(["BANGFU_PARENT_PID": "1"], logger: quietLogger()) == nil)
        #expect(ParentWatch.fromEnvironment(["BANGFU_PARENT_PID": "abc"], logger: quietLogger()) == nil)
        #expect(ParentWatch.fromEnvironment(["BANGFU_PARENT_PID": "\(getpid())"], logger: quietLogger()) != nil)
    }

    /// The real thing: a registry started by a shell that is then killed with SIGKILL notices
    /// that its starter is gone, drains and exits 0 instead of running on as an orphan.
    @Test func aServiceWhoseStarterIsKilledShutsItselfDown() async throws {
        let proc = try ServiceProcess(name: "bangfu-registry")
        defer { proc.cleanup() }
        let pidFile = proc.dir + "/registry.pid"
        let shell = Process()
        shell.executableURL = URL(fileURLWithPath: "/bin/sh")
        // The shell starts the service naming itself as its parent, writes the service's pid,
        // and waits.
        shell.arguments = [
            "-c", "BANGFU_PARENT_PID=$$ \"$@\" & echo $! > \(pidFile); wait", "sh", proc.binaryPath,
            "--state-dir", proc.dir + "/state", "--intake", proc.endpoint("intake"), "--feed", proc.endpoint("feed"),
            "--replay", proc.endpoint("replay"), "--log-level", "info",
        ]
        var environment = ProcessInfo.processInfo.environment
        environment["BANGFU_PARENT_PID"] = nil
        shell.environment = environment
        _ = FileManager.default.createFile(atPath: proc.logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: proc.logPath))
        shell.standardOutput = log
        shell.standardError = log
        try shell.run()
        defer {
            // Whatever happened above, nothing this test started outlives it.
            if shell.isRunning { kill(shell.processIdentifier, SIGKILL) }
            if let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
                let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)),
                kill(pid, 0) == 0
            {
                kill(pid, SIGKILL)
            }
        }
        let context = proc.context
        let replay = proc.endpoint("replay")
        // Ready: the pid is written and the service answers a replay request.
        let servicePid: pid_t = try await OwnerThread.run {
            for _ in 0..<300 {
                // The request waits up to 200 ms for an answer: it paces the loop.
                let answered = (try? QueryClient.replay(context: context, endpoint: replay, after: 0, max: 0, timeoutMs: 200)) ?? nil != nil
                if answered, let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
                    let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines))
                {
                    return pid
                }
            }
            throw HarnessError.notReady("registry under a shell")
        }
        // (Not `waitUntilExit()`: Foundation notices the shell's end only when every process
        // holding its inherited descriptors has ended, the orphaned service included.)
        #expect(kill(shell.processIdentifier, SIGKILL) == 0)
        // Gone within the watch's second plus the drain (bounded at 30 s).
        let exited = try await OwnerThread.run { waitForProcessEnd(pid: servicePid, timeoutMs: 30_000) }
        #expect(exited, "the orphaned service shut itself down")
        let text = try String(contentsOfFile: proc.logPath, encoding: .utf8)
        #expect(text.contains("the process that started this service is gone; shutting down"))
        #expect(text.contains("service stopped"), "it drained and stopped like on SIGTERM")
    }
}
