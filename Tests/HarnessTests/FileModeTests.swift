import BangfuTesting
import Bus
import Foundation
import Models
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// What the real executable leaves on disk, started by hand with a loose umask: its state
/// directory, database and lock are never open to others nor writable by the group; its ipc://
/// sockets are the group's only when the umask it was started with gave the group write
/// (systemd's `UMask=0007`); a key file others may read stops it with the configuration-error
/// status.
@Suite("File modes of a service started by hand", .serialized)
struct FileModeTests {
    static func mode(_ path: String) -> mode_t? {
        var st = stat()
        guard lstat(path, &st) == 0 else { return nil }
        return st.st_mode & 0o7777
    }

    /// Runs `bangfu-registry` with `arguments` under `umask`, through the shell (so that this
    /// test process's umask, shared with every other test, is left alone).
    static func launch(umask: String, _ arguments: [String], log: String, environment: [String: String] = [:]) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "umask \(umask) && exec \"$0\" \"$@\"", try ServiceProcess.binary("bangfu-registry")] + arguments
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        p.standardOutput = handle
        p.standardError = handle
        p.standardInput = FileHandle.nullDevice
        p.environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("BANGFU_") && $0.key != "CREDENTIALS_DIRECTORY" }
            .merging(environment) { $1 }.merging(["BANGFU_PARENT_PID": String(getpid())]) { $1 }
        try p.run()
        return p
    }

    @Test(arguments: [("0000", mode_t(0o660)), ("0022", mode_t(0o640)), ("0007", mode_t(0o660))])
    func theDatabaseIsNeverOpenToOthers(umask: String, socketMode: mode_t) async throws {
        let dir = "/tmp/bangfu-modes-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let state = dir + "/state/registry"
        let ep = ["intake", "feed", "replay"].map { "ipc://\(dir)/registry-\($0)" }
        let p = try Self.launch(
            umask: umask, ["--state-dir", state, "--intake", ep[0], "--feed", ep[1], "--replay", ep[2], "--log-level", "warning"],
            log: dir + "/registry.log")
        defer {
            if p.isRunning { p.terminate() }
            p.waitUntilExit()
        }
        let context = ZContext()
        defer { context.terminate() }
        let replay = ep[2]
        let ready = try await OwnerThread.run {
            for _ in 0..<300 {
                if !p.isRunning { return false }
                if (try? QueryClient.replay(context: context, endpoint: replay, after: 0, max: 0, timeoutMs: 200)) ?? nil != nil {
                    return true
                }
            }
            return false
        }
        #expect(ready, "\((try? String(contentsOfFile: dir + "/registry.log", encoding: .utf8)) ?? "")")
        #expect(Self.mode(state) == 0o750, "the state directory it made")
        for name in ["registry.sqlite", "registry.sqlite-wal", "registry.sqlite-shm", "registry.lock"] {
            let m = Self.mode(state + "/" + name)
            #expect(m != nil, "\(name) exists")
            if let m { #expect(m & 0o027 == 0, "\(name) is \(String(m, radix: 8)) under umask \(umask)") }
        }
        for e in ep {
            let path = String(e.dropFirst("ipc://".count))
            #expect(Self.mode(path) == socketMode, "\(path) under umask \(umask)")
        }
        p.terminate()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
    }

    @Test func databaseFilesAnEarlierStartLeftOpenAreTightened() async throws {
        let dir = "/tmp/bangfu-modes-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir + "/state", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // What a registry started by hand before this fix left: an (empty, new) database of 0644.
        let database = dir + "/state/registry.sqlite"
        #expect(FileManager.default.createFile(atPath: database, contents: nil, attributes: [.posixPermissions: 0o644]))
        #expect(chmod(database, 0o644) == 0)
        let ep = ["intake", "feed", "replay"].map { "ipc://\(dir)/registry-\($0)" }
        let p = try Self.launch(
            umask: "0022", ["--state-dir", dir + "/state", "--intake", ep[0], "--feed", ep[1], "--replay", ep[2]],
            log: dir + "/registry.log")
        defer {
            if p.isRunning { p.terminate() }
            p.waitUntilExit()
        }
        let context = ZContext()
        defer { context.terminate() }
        let replay = ep[2]
        let ready = try await OwnerThread.run {
            for _ in 0..<300 {
                if !p.isRunning { return false }
                if (try? QueryClient.replay(context: context, endpoint: replay, after: 0, max: 0, timeoutMs: 200)) ?? nil != nil {
                    return true
                }
            }
            return false
        }
        #expect(ready)
        #expect(Self.mode(database) == 0o640)
        #expect(Self.mode(database + "-wal").map { $0 & 0o027 == 0 } == true)
        p.terminate()
        p.waitUntilExit()
        let log = (try? String(contentsOfFile: dir + "/registry.log", encoding: .utf8)) ?? ""
        #expect(log.contains("state file was open to others") && log.contains(database), "\(log)")
    }

    @Test func aKeyFileOthersMayReadStopsTheServiceWithTheConfigurationErrorStatus() async throws {
        let dir = "/tmp/bangfu-modes-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let keys = try CurveKeyPair.generate()
        try "- name: operator\n  key: \"\(keys.publicKey)\"\n".write(toFile: dir + "/clients.yaml", atomically: true, encoding: .utf8)
        let keyFile = dir + "/registry.key"
        try (keys.secretKey + "\n").write(toFile: keyFile, atomically: false, encoding: .utf8)
        #expect(chmod(keyFile, 0o644) == 0)
        let curve = ["--curve-public-key", keys.publicKey, "--curve-clients", dir + "/clients.yaml"]
        let port = ServiceProcess.freeLoopbackPort()
        let common = curve + ["--state-dir", dir + "/state", "--intake", "tcp://127.0.0.1:\(port)", "--check-config"]

        func run(_ arguments: [String], environment: [String: String] = [:]) async throws -> (Int32, String) {
            let log = dir + "/run-\(UUID().uuidString.prefix(8)).log"
            let p = try Self.launch(umask: "0022", arguments, log: log, environment: environment)
            try await OwnerThread.run { p.waitUntilExit() }
            return (p.terminationStatus, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
        }
        // World-readable: refused, exit 64, the file named; not even --check-config passes.
        let (refused, refusal) = try await run(common + ["--curve-secret-key-file", keyFile])
        #expect(refused == 64, "\(refusal)")
        #expect(refusal.contains(keyFile) && refusal.contains("chmod 600"), "\(refusal)")
        #expect(!refusal.contains(keys.secretKey))
        // 0600: accepted.
        #expect(chmod(keyFile, 0o600) == 0)
        let (accepted, summary) = try await run(common + ["--curve-secret-key-file", keyFile])
        #expect(accepted == 0, "\(summary)")
        #expect(
            summary.contains("curve-secret-key: (set, not shown)") && summary.contains("curve-secret-key-file: \(keyFile)"), "\(summary)")
        #expect(!summary.contains("warning:"), "\(summary)")
        // systemd's credential (LoadCredential=curve-secret-key:…).
        let credentials = dir + "/credentials"
        try FileManager.default.createDirectory(atPath: credentials, withIntermediateDirectories: true)
        try (keys.secretKey + "\n").write(toFile: credentials + "/curve-secret-key", atomically: false, encoding: .utf8)
        let (loaded, credentialSummary) = try await run(common, environment: ["CREDENTIALS_DIRECTORY": credentials])
        #expect(loaded == 0, "\(credentialSummary)")
        #expect(credentialSummary.contains("curve-secret-key-file: \(credentials)/curve-secret-key"), "\(credentialSummary)")
        // On the command line: accepted, with a warning.
        let (flagged, warning) = try await run(common + ["--curve-secret-key", keys.secretKey])
        #expect(flagged == 0, "\(warning)")
        #expect(warning.contains("warning: curve-secret-key is given on the command line"), "\(warning)")
    }
}
