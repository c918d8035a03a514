import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Files that appear in an outbox only complete, and are never overwritten.
///
/// `write` puts the bytes in `<directory>/.tmp-<name>.<random>`, fsyncs it, then links it to
/// `<directory>/<name>` (an atomic create that fails if the name exists; `rename` where the file
/// system has no hard links), removes the temporary name and fsyncs the directory. A reader that
/// picks up `<name>` therefore never sees a partial file. If `<name>` already exists with the
/// same bytes, nothing is written and its URL is returned (idempotent retries); with different
/// bytes, `.fileConflict` is thrown.
public enum AtomicFile {
    /// The prefix of temporary files; an outbox reader must ignore names starting with it (or
    /// with '.').
    public static let temporaryPrefix = ".tmp-"

    @discardableResult
    public static func write(_ bytes: [UInt8], name: String, to directory: URL) throws(BatchError) -> URL {
        guard isSafeFileName(name) else {
            throw .invalidIdentifier(field: "file name", value: name, expected: "a plain file name of A-Z a-z 0-9 . _ -")
        }
        let dir = directory.path
        let final = directory.appendingPathComponent(name)
        if let existing = try readIfExists(final.path) {
            guard existing == bytes else { throw .fileConflict(path: final.path) }
            return final
        }
        let temp = directory.appendingPathComponent(temporaryPrefix + name + "." + String(UInt64.random(in: 0...UInt64.max), radix: 16))
        try writeSynced(bytes, to: temp.path)
        defer { _ = unlink(temp.path) }
        if link(temp.path, final.path) != 0 {
            let e = errno
            if e == EEXIST {
                // Someone else won the race: same content is fine, anything else is a conflict.
                guard try readIfExists(final.path) == bytes else { throw .fileConflict(path: final.path) }
                return final
            }
            // No hard links here (e.g. some network file systems): fall back to rename.
            guard e == EPERM || e == ENOTSUP || e == EXDEV || e == ENOSYS || e == EMLINK else {
                throw .io(path: final.path, message: "cannot link the temporary file: " + errorText(e))
            }
            if let existing = try readIfExists(final.path) {
                guard existing == bytes else { throw .fileConflict(path: final.path) }
                return final
            }
            guard rename(temp.path, final.path) == 0 else {
                throw .io(path: final.path, message: "cannot rename the temporary file: " + errorText(errno))
            }
        }
        syncDirectory(dir)
        return final
    }

    /// A name without path separators or a leading '.', made of `A-Z a-z 0-9 . _ -`, 1–200 bytes.
    public static func isSafeFileName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 200 && !name.hasPrefix(".") && name.utf8.allSatisfy { Pain001.fileNameBytes.contains($0) }
    }

    static func readIfExists(_ path: String) throws(BatchError) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw .io(path: path, message: "cannot open: " + errorText(errno))
        }
        defer { _ = close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .io(path: path, message: "cannot read: " + errorText(errno))
            }
            if n == 0 { return out }
            out.append(contentsOf: chunk[0..<n])
        }
    }

    static func writeSynced(_ bytes: [UInt8], to path: String) throws(BatchError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .io(path: path, message: "cannot create: " + errorText(errno)) }
        var ok = false
        defer {
            _ = close(fd)
            if !ok { _ = unlink(path) }
        }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { posixWrite(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .io(path: path, message: "cannot write: " + errorText(errno))
            }
            offset += n
        }
        guard fsync(fd) == 0 else { throw .io(path: path, message: "cannot fsync: " + errorText(errno)) }
        ok = true
    }

    static func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        _ = close(fd)
    }

    static func errorText(_ code: Int32) -> String { String(cString: strerror(code)) }
}

/// The system `write(2)` (the name is taken inside `AtomicFile`).
private func posixWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, buffer, count)
}
