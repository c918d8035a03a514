#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A named `ipc://` socket file that a socket of this process bound: its path and the identity
/// (device and inode) of the file it created, so that closing removes that file and no other.
struct IPCSocketFile: Sendable {
    let path: String
    let device: UInt64
    let inode: UInt64

    /// The file system path of a named `ipc://` endpoint; nil for other transports, the abstract
    /// namespace (`ipc://@name`) and libzmq's wildcard (`ipc://*`).
    static func path(of endpoint: String) -> String? {
        guard endpoint.hasPrefix("ipc://") else { return nil }
        let path = String(endpoint.dropFirst(6))
        guard !path.isEmpty, path != "*", !path.hasPrefix("@") else { return nil }
        return path
    }

    /// Records the file now at `path` (just bound); nil when it cannot be read.
    init?(boundAt path: String) {
        guard let id = Self.identity(path) else { return nil }
        self.path = path
        device = id.device
        inode = id.inode
    }

    /// Throws EADDRINUSE when a process accepts connections on `path`, and EEXIST when `path`
    /// is something other than a socket (libzmq would delete it). A socket file nobody listens
    /// on (its process is gone) is left for libzmq to replace.
    static func ensureFree(_ path: String, endpoint: String) throws(ZMQError) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }  // nothing there (or unreadable: let zmq_bind say)
        guard (st.st_mode & S_IFMT) == S_IFSOCK else {
            throw ZMQError("zmq_bind \(endpoint): \(path) exists and is not a socket", errno: EEXIST)
        }
        if listening(path) {
            throw ZMQError("zmq_bind \(endpoint): another process listens on \(path)", errno: EADDRINUSE)
        }
    }

    /// Whether a connection to the Unix socket at `path` is accepted (or queued: a full backlog
    /// answers EAGAIN, which also means somebody listens).
    static func listening(_ path: String) -> Bool {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (k, b) in bytes.enumerated() { raw[k] = b }
            raw[bytes.count] = 0
        }
        #if canImport(Glibc)
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
            let fd = socket(AF_UNIX, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if rc == 0 { return true }
        let e = errno
        return e == EAGAIN || e == EINPROGRESS
    }

    static func identity(_ path: String) -> (device: UInt64, inode: UInt64)? {
        var st = stat()
        guard lstat(path, &st) == 0 else { return nil }
        return (UInt64(st.st_dev), UInt64(st.st_ino))
    }

    /// Removes the file if it is still the one recorded at bind.
    func removeIfOurs() {
        guard let now = Self.identity(path), now.device == device, now.inode == inode else { return }
        unlink(path)
    }
}
