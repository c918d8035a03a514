import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The system calls a batch file's durability rests on, replaceable in tests (a disk that
/// refuses `fsync`). `fsync` is given the descriptor and the path it is open on.
struct FileSystemCalls: Sendable {
    var fsync: @Sendable (_ fd: Int32, _ path: String) -> Int32

    static let system = FileSystemCalls(fsync: { fd, _ in systemFsync(fd) })
}

private func systemFsync(_ fd: Int32) -> Int32 { fsync(fd) }

/// Atomic file delivery into an outbox directory that a bank or agency picks up: the content is
/// written to a temporary name, flushed to disk, linked (or renamed) to its name, and the
/// directory flushed, so a reader never sees half a file and a file reported written survives a
/// power cut. Every step is checked: any failure (a short write, `fsync`, `close`, the link,
/// the directory's `fsync`) throws, and the batch stays unwritten, to be written again. A file
/// that already exists with the same content is flushed again and left alone; with other
/// content the write is refused (a written batch is never overwritten).
enum InstructionFiles {
    struct Refused: Error, CustomStringConvertible {
        var description: String
    }

    static func writeAtomically(_ content: Data, name: String, directory: String, calls: FileSystemCalls = .system) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let final = (directory as NSString).appendingPathComponent(name)
        let bytes = [UInt8](content)
        if let existing = try existingBytes(final) {
            guard existing == bytes else {
                throw Refused(description: "\(final) exists with other content; a written batch is never overwritten")
            }
            // Written before (a crash, or a failed flush of the directory): made durable now.
            try sync(final, calls)
            try sync(directory, calls)
            return
        }
        let temp = (directory as NSString).appendingPathComponent(
            ".tmp-\(name).\(String(UInt64.random(in: 0...UInt64.max), radix: 16))")
        try writeSynced(bytes, to: temp, calls)
        defer { _ = unlink(temp) }
        if link(temp, final) != 0 {
            let e = errno
            if e == EEXIST {
                guard try existingBytes(final) == bytes else {
                    throw Refused(description: "\(final) appeared with other content; a written batch is never overwritten")
                }
            } else if [EPERM, ENOTSUP, EXDEV, ENOSYS, EMLINK].contains(e) {
                // No hard links on this file system: rename, after checking nothing took the name.
                if let existing = try existingBytes(final) {
                    guard existing == bytes else {
                        throw Refused(description: "\(final) appeared with other content; a written batch is never overwritten")
                    }
                } else if rename(temp, final) != 0 {
                    throw Refused(description: "cannot rename \(temp) to \(final): \(errorText(errno))")
                }
            } else {
                throw Refused(description: "cannot link \(temp) to \(final): \(errorText(e))")
            }
        }
        try sync(directory, calls)
    }

    /// The file's bytes, or nil when there is no file of that name.
    static func existingBytes(_ path: String) throws -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw Refused(description: "cannot open \(path): \(errorText(errno))")
        }
        defer { _ = close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Refused(description: "cannot read \(path): \(errorText(errno))")
            }
            if n == 0 { return out }
            out.append(contentsOf: chunk[0..<n])
        }
    }

    static func writeSynced(_ bytes: [UInt8], to path: String, _ calls: FileSystemCalls) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Refused(description: "cannot create \(path): \(errorText(errno))") }
        var ok = false
        var closed = false
        defer {
            if !closed { _ = close(fd) }
            if !ok { _ = unlink(path) }
        }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Refused(description: "cannot write \(path): \(errorText(errno))")
            }
            offset += n
        }
        guard calls.fsync(fd, path) == 0 else { throw Refused(description: "cannot fsync \(path): \(errorText(errno))") }
        closed = true
        guard close(fd) == 0 else { throw Refused(description: "cannot close \(path): \(errorText(errno))") }
        ok = true
    }

    /// Flushes a file or a directory to disk; a failure throws.
    static func sync(_ path: String, _ calls: FileSystemCalls) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Refused(description: "cannot open \(path) to fsync it: \(errorText(errno))") }
        defer { _ = close(fd) }
        guard calls.fsync(fd, path) == 0 else { throw Refused(description: "cannot fsync \(path): \(errorText(errno))") }
    }

    static func errorText(_ code: Int32) -> String { String(cString: strerror(code)) }
}
