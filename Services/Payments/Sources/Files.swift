import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Atomic file delivery into an outbox directory that a bank or agency picks up: the content is
/// written to a temporary name, flushed to disk, then renamed, so a reader never sees half a
/// file. A file that already exists with the same content is left alone; with other content the
/// write is refused (a written batch is never overwritten).
enum InstructionFiles {
    struct Refused: Error, CustomStringConvertible {
        var description: String
    }

    static func writeAtomically(_ content: Data, name: String, directory: String) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let final = (directory as NSString).appendingPathComponent(name)
        if let existing = fm.contents(atPath: final) {
            if existing == content { return }
            throw Refused(description: "\(final) exists with other content; a written batch is never overwritten")
        }
        let temp = (directory as NSString).appendingPathComponent(".tmp-\(name)-\(getpid())")
        guard fm.createFile(atPath: temp, contents: content) else { throw Refused(description: "cannot create \(temp)") }
        let fd = open(temp, O_RDONLY)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
        guard rename(temp, final) == 0 else {
            unlink(temp)
            throw Refused(description: "cannot rename \(temp) to \(final): errno \(errno)")
        }
        let dfd = open(directory, O_RDONLY)
        if dfd >= 0 {
            fsync(dfd)
            close(dfd)
        }
    }
}
