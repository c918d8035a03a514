import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The built `bangfu` executable: the test bundle sits next to the executables in the bin path.
let bangfuBinary: String? = {
    var dirs: [String] = []
    for b in Bundle.allBundles where b.bundlePath.hasSuffix(".xctest") {
        dirs.append((b.bundlePath as NSString).deletingLastPathComponent)
    }
    if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
        dirs.append((exe as NSString).deletingLastPathComponent)
    }
    if let arg0 = CommandLine.arguments.first {
        dirs.append((arg0 as NSString).deletingLastPathComponent)
    }
    for d in dirs {
        // On Linux the .xctest is itself an executable in the bin directory.
        let p = d + "/bangfu"
        if FileManager.default.isExecutableFile(atPath: p) { return p }
    }
    return nil
}()

/// A TCP port nothing listens on (bound, then released).
func closedPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let port = withUnsafeMutablePointer(to: &addr) { p -> Int in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sp in
            guard bind(fd, sp, len) == 0, getsockname(fd, sp, &len) == 0 else { return 1 }
            return Int(UInt16(bigEndian: p.pointee.sin_port))
        }
    }
    return port
}

/// Runs the executable; returns its exit status, stdout and stderr.
func runBangfu(_ arguments: [String]) throws -> (status: Int32, out: String, err: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: bangfuBinary!)
    p.arguments = arguments
    let out = Pipe()
    let err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

@Suite("the bangfu executable")
struct ExecutableTests {
    @Test("--version, and status of a closed port is unreachable with exit 1", .enabled(if: bangfuBinary != nil, "bangfu is not built"))
    func versionAndUnreachable() throws {
        let v = try runBangfu(["--version"])
        #expect(v.status == 0)
        #expect(v.out.trimmingCharacters(in: .whitespacesAndNewlines) == "bangfu 0.1.0")

        let s = try runBangfu(["status", "--service", "registry", "--replay", "tcp://127.0.0.1:\(closedPort())", "--timeout-ms", "300"])
        #expect(s.status == 1)
        #expect(s.out.contains("unreachable"))

        let missing = try runBangfu(["publish", "/nonexistent/bangfu-input.jsonl"])
        #expect(missing.status == 66)
        #expect(missing.err.contains("cannot read /nonexistent/bangfu-input.jsonl"))
    }
}

@Suite("bangfu keys generate")
struct KeysGenerateTests {
    @Test("--secret-file writes the secret key alone to a new file of mode 0600", .enabled(if: bangfuBinary != nil, "bangfu is not built"))
    func secretFile() throws {
        let dir = NSTemporaryDirectory() + "bangfu-keygen-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/registry.key"
        let r = try runBangfu(["keys", "generate", "--name", "registry", "--secret-file", path])
        #expect(r.status == 0, "\(r.err)")
        var st = stat()
        #expect(stat(path, &st) == 0)
        #expect(st.st_mode & 0o777 == 0o600)
        let secret = try String(contentsOfFile: path, encoding: .utf8)
        #expect(secret.utf8.count == 41 && secret.hasSuffix("\n"))
        let key = String(secret.dropLast())
        #expect(!r.out.contains(key), "the secret key is not printed")
        #expect(r.out.contains("public: ") && r.out.contains("secret: written to \(path)"), "\(r.out)")
        // Never over an existing file.
        let again = try runBangfu(["keys", "generate", "--secret-file", path])
        #expect(again.status == 73, "\(again.err)")
        #expect(again.err.contains(path))
        #expect(try String(contentsOfFile: path, encoding: .utf8) == secret)
        // Without --secret-file: printed, as before.
        let printed = try runBangfu(["keys", "generate"])
        #expect(printed.status == 0 && printed.out.contains("secret: ") && !printed.out.contains("written to"))
    }
}
