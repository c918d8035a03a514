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

/// The batch files in an outbox (and in `sent/`, where the pickup agent moves what it takes),
/// by their batch number: `BANGFU-B000007.xml`, `BANGFU-B000007-lessor.jsonl`, ….
///
/// Batches are numbered from the database (its highest batch + 1). A file numbered above the
/// database's highest batch was made by a database this one does not know — typically the same
/// service before its database was restored from an older backup: numbering on would give a
/// new batch the name (and pain.001 `MsgId`) of a file the bank already has. Payments then
/// refuses to make batches until an operator has dealt with it (operations.md §7).
enum BatchFiles {
    /// The batch number in a batch file's name, or nil for any other name.
    static func number(_ name: String) -> Int64? {
        guard name.hasPrefix("BANGFU-B") else { return nil }
        let digits = name.dropFirst("BANGFU-B".count).prefix(while: { $0.isASCII && $0.isNumber })
        guard digits.count >= 6, let n = Int64(digits) else { return nil }
        let rest = name.dropFirst("BANGFU-B".count + digits.count)
        guard rest == ".xml" || (rest.hasPrefix("-") && rest.hasSuffix(".jsonl")) else { return nil }
        return n
    }

    /// The batch files in `outbox` and `outbox/sent` numbered above `highest`, as paths relative
    /// to the outbox (`sent/BANGFU-B000007.xml`), lowest number first. A directory that exists
    /// but cannot be listed throws: what it holds is unknown, so nothing may be numbered.
    static func numberedAbove(_ highest: Int64, outbox: String) throws -> [String] {
        let fm = FileManager.default
        var found: [(Int64, String)] = []
        for (dir, prefix) in [(outbox, ""), ((outbox as NSString).appendingPathComponent("sent"), "sent/")] {
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: dir, isDirectory: &isDirectory) else { continue }
            let names: [String]
            do {
                names = try fm.contentsOfDirectory(atPath: dir)
            } catch {
                throw InstructionFiles.Refused(description: "cannot list \(dir): \(error)")
            }
            for name in names {
                if let n = number(name), n > highest { found.append((n, prefix + name)) }
            }
        }
        return found.sorted { ($0.0, $0.1) < ($1.0, $1.1) }.map(\.1)
    }

    /// Why no batch may be numbered now (naming the first file in the way), or nil.
    static func blocked(highest: Int64, outbox: String) -> String? {
        do {
            guard let file = try numberedAbove(highest, outbox: outbox).first else { return nil }
            let db = highest == 0 ? "none" : String(format: "B%06d", highest)
            return
                "\(file) in the outbox is numbered above this database's highest batch (\(db)): the database does not know that batch (restored from an older backup?), so a new batch would reuse its number; see operations.md §7, restoring payments"
        } catch {
            return "the outbox cannot be read, so the batch files already made are not known: \(error)"
        }
    }
}
