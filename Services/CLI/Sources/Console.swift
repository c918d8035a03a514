import Bus
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Where a command writes: its result on `out`, problems on `err`, and (only when stderr is a
/// terminal) a redrawn progress line on `progress`. The commands' logic takes a `Console`, so
/// tests drive them in process with a `CapturedConsole`.
public struct Console: Sendable {
    public var out: @Sendable (String) -> Void
    public var err: @Sendable (String) -> Void
    /// Redraws the progress line; nil when there is no terminal to draw on.
    public var progress: (@Sendable (String) -> Void)?
    public var flush: @Sendable () -> Void

    public init(
        out: @escaping @Sendable (String) -> Void, err: @escaping @Sendable (String) -> Void,
        progress: (@Sendable (String) -> Void)? = nil, flush: @escaping @Sendable () -> Void = {}
    ) {
        self.out = out
        self.err = err
        self.progress = progress
        self.flush = flush
    }

    /// stdout (buffered, flushed by `flush`), stderr (unbuffered), progress when `isatty(2)`.
    public static func standard() -> Console {
        let stdoutWriter = FDWriter(fd: 1, bufferLimit: 64 * 1024)
        let stderrWriter = FDWriter(fd: 2, bufferLimit: 0)
        var progress: (@Sendable (String) -> Void)?
        if isatty(2) == 1 { progress = { (s: String) in stderrWriter.write(s) } }
        return Console(
            out: { (s: String) in stdoutWriter.write(s) },
            err: { (s: String) in stderrWriter.write(s) },
            progress: progress,
            flush: { stdoutWriter.flush() })
    }

    /// The same console with `out` flushed at every write: for long runs whose progress must show
    /// when stdout is a file or a pipe.
    public func flushingEveryLine() -> Console {
        var c = self
        let (out, flush) = (self.out, self.flush)
        c.out = { s in
            out(s)
            flush()
        }
        return c
    }

    /// Writes one line (a newline is added) to `out`.
    public func line(_ s: String) { out(s + "\n") }
    /// Writes one line to `err`.
    public func error(_ s: String) { err(s + "\n") }
}

/// A buffered writer on a file descriptor (stdout/stderr globals are not concurrency-safe in Swift 6).
final class FDWriter: Sendable {
    let fd: Int32
    let bufferLimit: Int
    private let buffer = Mutex<[UInt8]>([])

    init(fd: Int32, bufferLimit: Int) {
        self.fd = fd
        self.bufferLimit = bufferLimit
    }

    func write(_ s: String) {
        buffer.withLock { b in
            b.append(contentsOf: s.utf8)
            if b.count >= bufferLimit { Self.writeAll(fd, &b) }
        }
    }

    func flush() {
        buffer.withLock { Self.writeAll(fd, &$0) }
    }

    private static func writeAll(_ fd: Int32, _ b: inout [UInt8]) {
        var off = 0
        b.withUnsafeBytes { p in
            while off < p.count {
                let n = Glibc.write(fd, p.baseAddress! + off, p.count - off)
                if n < 0 {
                    if errno == EINTR { continue }
                    return
                }
                off += n
            }
        }
        b.removeAll(keepingCapacity: true)
    }
}

/// A `Console` that keeps what was written, for tests; `wait` awaits a condition on the output.
public final class CapturedConsole: Sendable {
    struct Waiter {
        let onErr: Bool
        let predicate: @Sendable (String) -> Bool
        let continuation: CheckedContinuation<Bool, Never>
    }

    struct State {
        var out = ""
        var err = ""
        var waiters: [UUID: Waiter] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    public var console: Console {
        Console(out: { [self] s in append(s, err: false) }, err: { [self] s in append(s, err: true) })
    }

    public var out: String { state.withLock { $0.out } }
    public var err: String { state.withLock { $0.err } }
    /// The non-empty lines written to `out`.
    public var lines: [String] { out.split(separator: "\n").map(String.init) }

    private func append(_ s: String, err: Bool) {
        let ready = state.withLock { st -> [CheckedContinuation<Bool, Never>] in
            if err { st.err += s } else { st.out += s }
            var done: [CheckedContinuation<Bool, Never>] = []
            for (k, w) in st.waiters where w.onErr == err && w.predicate(err ? st.err : st.out) {
                done.append(w.continuation)
                st.waiters[k] = nil
            }
            return done
        }
        for c in ready { c.resume(returning: true) }
    }

    /// Waits until `out` (with `err`: what was written to `err`) satisfies `predicate`; false
    /// after `timeout` (a safety net only).
    public func wait(
        err: Bool = false, timeout: Duration = .seconds(20), until predicate: @escaping @Sendable (String) -> Bool
    ) async -> Bool {
        let key = UUID()
        return await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
            let satisfied = state.withLock { st -> Bool in
                if predicate(err ? st.err : st.out) { return true }
                st.waiters[key] = Waiter(onErr: err, predicate: predicate, continuation: c)
                return false
            }
            if satisfied {
                c.resume(returning: true)
                return
            }
            Task {
                try? await Task.sleep(for: timeout)
                let w = self.state.withLock { $0.waiters.removeValue(forKey: key) }
                w?.continuation.resume(returning: false)
            }
        }
    }
}

/// A failure the CLI reports on stderr with an exit code (sysexits where one fits).
public struct CLIError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var exitCode: Int32

    public init(_ message: String, exitCode: Int32 = ExitCodes.failure) {
        self.message = message
        self.exitCode = exitCode
    }

    public var description: String { message }
}

public enum ExitCodes {
    public static let ok: Int32 = 0
    /// A service did not answer, or answered with an error.
    public static let failure: Int32 = 1
    /// Something was rejected.
    public static let rejected: Int32 = 2
    /// Something went unacknowledged after every retry.
    public static let unacknowledged: Int32 = 3
    /// EX_USAGE.
    public static let usage: Int32 = 64
    /// EX_DATAERR: an input file's content is unusable.
    public static let dataError: Int32 = 65
    /// EX_NOINPUT: an input file cannot be read.
    public static let noInput: Int32 = 66
    /// EX_CANTCREAT: an output directory cannot be used (`bangfu demo --dir` that is not the demo's).
    public static let cantCreate: Int32 = 73
}

/// Asks a long-running command (tail --follow) to stop; wakes its poll loop from any thread.
public final class StopSignal: Sendable {
    let wake = WakePipe()
    private let flag = Mutex(false)

    public init() {}

    public func stop() {
        flag.withLock { $0 = true }
        wake.wake()
    }

    public var isStopped: Bool { flag.withLock { $0 } }
}

enum Format {
    /// 12345 → "12,345".
    static func grouped<T: BinaryInteger>(_ n: T) -> String {
        let s = String(n.magnitude)
        var out = ""
        for (k, c) in s.enumerated() {
            if k > 0 && (s.count - k) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return (n < 0 ? "-" : "") + out
    }

    /// Truncates to `max` characters with an ellipsis; newlines become spaces.
    static func truncate(_ s: String, _ max: Int) -> String {
        let flat = s.replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "\r", with: " ")
        return flat.count <= max ? flat : String(flat.prefix(max - 1)) + "…"
    }

    static func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
    }
}
