import CZeroMQ

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An error from libzmq, with its errno and message.
public struct ZMQError: Error, Sendable, CustomStringConvertible {
    public let errno: Int32
    public let operation: String

    init(_ operation: String) {
        self.errno = zmq_errno()
        self.operation = operation
    }

    init(_ operation: String, errno: Int32) {
        self.errno = errno
        self.operation = operation
    }

    public var description: String {
        "\(operation): \(String(cString: zmq_strerror(errno))) (errno \(errno))"
    }

    public var isInterrupted: Bool { errno == EINTR }
    public var isAgain: Bool { errno == EAGAIN }
    public var isTerminated: Bool { errno == ETERM }
}

/// A libzmq context. Contexts are thread-safe; sockets are not (see `ZSocket`).
public final class ZContext: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer
    private let lock = NSLockish()
    private var terminated = false

    public init(ioThreads: Int32 = 1) {
        handle = zmq_ctx_new()!
        zmq_ctx_set(handle, ZMQ_IO_THREADS, ioThreads)
        zmq_ctx_set(handle, ZMQ_MAX_SOCKETS, 4096)
    }

    /// Makes every blocking call on this context's sockets return ETERM.
    public func shutdown() {
        zmq_ctx_shutdown(handle)
    }

    /// Ends the context. Every socket must have been closed (by its owner thread) first.
    public func terminate() {
        lock.withLock {
            guard !terminated else { return }
            terminated = true
            while zmq_ctx_term(handle) != 0 && zmq_errno() == EINTR {}
        }
    }

    public func socket(_ type: ZSocketType) throws(ZMQError) -> ZSocket {
        guard let s = zmq_socket(handle, type.rawValue) else { throw ZMQError("zmq_socket") }
        return ZSocket(s, type: type)
    }
}

/// A small pthread mutex, usable where `Synchronization.Mutex`'s non-copyable value does not fit.
final class NSLockish: @unchecked Sendable {
    private var m = pthread_mutex_t()
    init() { pthread_mutex_init(&m, nil) }
    deinit { pthread_mutex_destroy(&m) }
    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(&m)
        defer { pthread_mutex_unlock(&m) }
        return try body()
    }
}

public enum ZSocketType: Int32, Sendable {
    case pair = 0
    case pub = 1
    case sub = 2
    case req = 3
    case rep = 4
    case dealer = 5
    case router = 6
    case pull = 7
    case push = 8
}

/// Socket options Bangfu sets (DESIGN §3.4).
public struct ZSocketOptions: Sendable {
    public var lingerMs: Int32 = 1000
    public var sendHWM: Int32 = 10_000
    public var receiveHWM: Int32 = 10_000
    /// Largest single frame accepted; a larger one makes libzmq drop the peer.
    public var maxMessageBytes: Int64 = 1 << 20
    public var heartbeatIntervalMs: Int32 = 5_000
    public var heartbeatTimeoutMs: Int32 = 15_000

    public init() {}
}

/// One libzmq socket. Not thread-safe: owned and used by exactly one thread from creation to
/// `close()`. It is `@unchecked Sendable` only so that it can be handed to that thread.
public final class ZSocket: @unchecked Sendable {
    public private(set) var handle: UnsafeMutableRawPointer?
    public let type: ZSocketType
    /// The `ipc://` socket files this socket bound, removed again when it closes.
    private var boundFiles: [IPCSocketFile] = []

    init(_ handle: UnsafeMutableRawPointer, type: ZSocketType) {
        self.handle = handle
        self.type = type
    }

    deinit {
        if let handle { zmq_close(handle) }
        removeBoundFiles()
    }

    public func close() {
        close(lingerMs: 0)
    }

    /// Closes after letting queued messages go out for up to `lingerMs`.
    public func close(lingerMs: Int32) {
        if let h = handle {
            var v = lingerMs
            zmq_setsockopt(h, ZMQ_LINGER, &v, MemoryLayout<Int32>.size)
            zmq_close(h)
            handle = nil
        }
        removeBoundFiles()
    }

    /// libzmq leaves a named `ipc://` socket file behind when the socket closes; this removes the
    /// ones this socket bound — only while the file is still the one it created, never a file
    /// another process has bound since.
    private func removeBoundFiles() {
        for f in boundFiles { f.removeIfOurs() }
        boundFiles = []
    }

    public func set(_ option: Int32, _ value: Int32) throws(ZMQError) {
        var v = value
        if zmq_setsockopt(handle, option, &v, MemoryLayout<Int32>.size) != 0 { throw ZMQError("zmq_setsockopt \(option)") }
    }

    public func set(_ option: Int32, _ value: Int64) throws(ZMQError) {
        var v = value
        if zmq_setsockopt(handle, option, &v, MemoryLayout<Int64>.size) != 0 { throw ZMQError("zmq_setsockopt \(option)") }
    }

    public func set(_ option: Int32, bytes: [UInt8]) throws(ZMQError) {
        let rc = bytes.withUnsafeBytes { zmq_setsockopt(handle, option, $0.baseAddress, $0.count) }
        if rc != 0 { throw ZMQError("zmq_setsockopt \(option)") }
    }

    public func set(_ option: Int32, string: String) throws(ZMQError) {
        try set(option, bytes: Array(string.utf8))
    }

    public func getInt32(_ option: Int32) throws(ZMQError) -> Int32 {
        var v: Int32 = 0
        var size = MemoryLayout<Int32>.size
        if zmq_getsockopt(handle, option, &v, &size) != 0 { throw ZMQError("zmq_getsockopt \(option)") }
        return v
    }

    /// Applies linger, high-water marks, max message size, and the options of DESIGN §3.4 that
    /// fit this socket's type.
    public func apply(_ o: ZSocketOptions, tcpHeartbeats: Bool) throws(ZMQError) {
        try set(ZMQ_LINGER, o.lingerMs)
        try set(ZMQ_SNDHWM, o.sendHWM)
        try set(ZMQ_RCVHWM, o.receiveHWM)
        try set(ZMQ_MAXMSGSIZE, o.maxMessageBytes)
        if type == .router { try set(ZMQ_ROUTER_MANDATORY, Int32(1)) }
        if type == .dealer || type == .req { try set(ZMQ_IMMEDIATE, Int32(1)) }
        if tcpHeartbeats {
            try set(ZMQ_HEARTBEAT_IVL, o.heartbeatIntervalMs)
            try set(ZMQ_HEARTBEAT_TIMEOUT, o.heartbeatTimeoutMs)
            try set(ZMQ_HEARTBEAT_TTL, o.heartbeatTimeoutMs)
        }
    }

    /// Binds. For a named `ipc://` path it first makes sure no live process listens there:
    /// libzmq would silently take the file over and leave that process unreachable (EADDRINUSE,
    /// as for a taken tcp port); a file left behind by a process that is gone is taken over.
    public func bind(_ endpoint: String) throws(ZMQError) {
        let path = IPCSocketFile.path(of: endpoint)
        if let path { try IPCSocketFile.ensureFree(path, endpoint: endpoint) }
        if zmq_bind(handle, endpoint) != 0 { throw ZMQError("zmq_bind \(endpoint)") }
        if let path, let file = IPCSocketFile(boundAt: path) { boundFiles.append(file) }
    }

    /// `bind`, waiting up to `patienceMs` while the address is still in use: a socket that had it
    /// in this process is released by libzmq's reaper thread after `close` returns, so a node
    /// restarted in the same process can find its `inproc://` name still taken for a moment.
    public func bind(_ endpoint: String, patienceMs: Int) throws(ZMQError) {
        var waited = 0
        while true {
            do {
                return try bind(endpoint)
            } catch {
                guard error.errno == EADDRINUSE, waited < patienceMs else { throw error }
                usleep(10_000)
                waited += 10
            }
        }
    }

    public func connect(_ endpoint: String) throws(ZMQError) {
        if zmq_connect(handle, endpoint) != 0 { throw ZMQError("zmq_connect \(endpoint)") }
    }

    public func subscribe(_ prefix: String) throws(ZMQError) {
        try set(ZMQ_SUBSCRIBE, string: prefix)
    }

    /// Sends a multipart message. Returns false when it would block (`dontWait`) or, on a
    /// ROUTER with ROUTER_MANDATORY, when the peer is gone (EHOSTUNREACH).
    @discardableResult
    public func send(_ frames: [[UInt8]], dontWait: Bool = true) throws(ZMQError) -> Bool {
        for (k, frame) in frames.enumerated() {
            var flags: Int32 = dontWait ? ZMQ_DONTWAIT : 0
            if k < frames.count - 1 { flags |= ZMQ_SNDMORE }
            var rc: Int32
            repeat {
                rc = frame.withUnsafeBytes { zmq_send(handle, $0.baseAddress, $0.count, flags) }
            } while rc < 0 && zmq_errno() == EINTR
            if rc < 0 {
                let e = zmq_errno()
                if e == EAGAIN || e == EHOSTUNREACH {
                    if k == 0 { return false }
                    // A partly sent message cannot be withdrawn; ZMQ drops the incomplete
                    // message when the socket is closed. Finish it with empty frames is wrong, so
                    // report the failure.
                    return false
                }
                throw ZMQError("zmq_send")
            }
        }
        return true
    }

    /// Receives one multipart message, or nil when none is waiting (`dontWait`). At most
    /// `maxFrames` frames are kept; the rest are read and discarded, and `overflow` is set.
    public func receive(dontWait: Bool = true, maxFrames: Int = 16) throws(ZMQError) -> ZMessage? {
        var frames: [[UInt8]] = []
        var overflow = false
        var userID: String?
        // A zmq_msg_t must stay at one address from init to close (a small message's bytes live
        // inside it): give it heap storage rather than a Swift variable passed with `&`, whose
        // address is only guaranteed for the length of one call.
        let msg = UnsafeMutablePointer<zmq_msg_t>.allocate(capacity: 1)
        defer { msg.deallocate() }
        while true {
            zmq_msg_init(msg)
            var rc: Int32
            repeat {
                rc = zmq_msg_recv(msg, handle, dontWait && frames.isEmpty ? ZMQ_DONTWAIT : 0)
            } while rc < 0 && zmq_errno() == EINTR
            if rc < 0 {
                let e = zmq_errno()
                zmq_msg_close(msg)
                if e == EAGAIN && frames.isEmpty { return nil }
                throw ZMQError("zmq_msg_recv")
            }
            if frames.count < maxFrames {
                let size = zmq_msg_size(msg)
                if size == 0 {
                    frames.append([])
                } else {
                    frames.append(Array(UnsafeRawBufferPointer(start: zmq_msg_data(msg), count: size)))
                }
            } else {
                overflow = true
            }
            let more = zmq_msg_more(msg) != 0
            if !more, let uid = zmq_msg_gets(msg, "User-Id") {
                // Set by the ZAP handler: the CURVE client's public key.
                let s = String(cString: uid)
                userID = s.isEmpty ? nil : s
            }
            zmq_msg_close(msg)
            if !more { break }
        }
        return ZMessage(frames: frames, overflow: overflow, userID: userID)
    }
}

/// A received multipart message.
public struct ZMessage: Sendable {
    public var frames: [[UInt8]]
    /// True when the message had more frames than the receiver keeps.
    public var overflow: Bool
    /// The authenticated client (its CURVE public key, Z85), when the socket is a CURVE server.
    public var userID: String? = nil
}

/// `zmq_poll` over sockets and plain file descriptors.
public struct ZPoller {
    public enum Item {
        case socket(ZSocket)
        case fd(Int32)
    }

    private var items: [zmq_pollitem_t]

    public init(_ entries: [Item]) {
        items = entries.map { e in
            switch e {
            case .socket(let s): zmq_pollitem_t(socket: s.handle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0)
            case .fd(let fd): zmq_pollitem_t(socket: nil, fd: fd, events: Int16(ZMQ_POLLIN), revents: 0)
            }
        }
    }

    /// Waits up to `timeoutMs` for input; returns which entries are readable.
    public mutating func poll(timeoutMs: Int) throws(ZMQError) -> [Bool] {
        for k in items.indices { items[k].revents = 0 }
        let rc = items.withUnsafeMutableBufferPointer { zmq_poll($0.baseAddress, Int32($0.count), timeoutMs) }
        if rc < 0 {
            if zmq_errno() == EINTR { return Array(repeating: false, count: items.count) }
            throw ZMQError("zmq_poll")
        }
        return items.map { $0.revents & Int16(ZMQ_POLLIN) != 0 }
    }
}

/// A self-pipe that lets any thread wake a `zmq_poll` loop.
public final class WakePipe: @unchecked Sendable {
    public let readFD: Int32
    private let writeFD: Int32

    public init() {
        var fds: [Int32] = [0, 0]
        precondition(pipe(&fds) == 0, "pipe() failed")
        readFD = fds[0]
        writeFD = fds[1]
        for fd in fds {
            let flags = fcntl(fd, F_GETFL)
            _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        }
    }

    deinit {
        Glibc.close(readFD)
        Glibc.close(writeFD)
    }

    public func wake() {
        var b: UInt8 = 1
        _ = write(writeFD, &b, 1)
    }

    public func drain() {
        var buf = [UInt8](repeating: 0, count: 256)
        while read(readFD, &buf, 256) > 0 {}
    }
}

public enum Endpoint {
    public static func isTCP(_ ep: String) -> Bool { ep.hasPrefix("tcp://") }

    /// True for ipc and inproc, and for tcp endpoints whose host is loopback: a literal
    /// 127.0.0.0/8 address, `::1` or `localhost` (`127.example.com` is a name like any other).
    public static func isLocal(_ ep: String) -> Bool {
        guard isTCP(ep) else { return true }
        guard let host = host(ep) else { return false }
        return host == "localhost" || host == "::1" || host == "[::1]" || isLoopbackIPv4(host)
    }

    /// The host of a `tcp://host:port` endpoint (for a connect, `source;host:port` names the
    /// remote after the `;`); nil when there is no port.
    static func host(_ ep: String) -> String? {
        var rest = Substring(ep.dropFirst("tcp://".count))
        if let semi = rest.lastIndex(of: ";") { rest = rest[rest.index(after: semi)...] }
        guard let colon = rest.lastIndex(of: ":") else { return nil }
        return String(rest[..<colon]).lowercased()
    }

    /// A dotted-quad 127.a.b.c with every part a decimal 0–255.
    static func isLoopbackIPv4(_ host: String) -> Bool {
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "127" else { return false }
        return parts.allSatisfy { p in p.count >= 1 && p.count <= 3 && p.allSatisfy(\.isASCII) && p.allSatisfy(\.isNumber) && Int(p)! <= 255
        }
    }
}
