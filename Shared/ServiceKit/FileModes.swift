import Bus
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// What a service's files may be opened to (DESIGN §3.5): at start it tightens its umask to at
/// least 0027, so that its database, its lock and anything else it writes is never readable by
/// others nor writable by its group, however it was started (by hand, from a script, or by
/// systemd with `UMask=0007`). Its `ipc://` socket files are the exception that the group may
/// need: connecting to one takes write permission on it, so each gets read-write for its owner,
/// and for its group when the umask the service was started with let the group write (the
/// shipped units' `UMask=0007`, so that members of the group `bangfu` reach the services'
/// sockets in `/run/bangfu`); never anything for others. Files meant to be public (the
/// notifier's board) set their modes explicitly.
public enum FileModes {
    /// The bits a service always takes away: everything for others, write for the group.
    public static let minimumUmask: mode_t = 0o027
    /// The state directory's mode when the service creates it (systemd's `StateDirectoryMode=`
    /// in the units).
    public static let stateDirectoryMode: mode_t = 0o750

    private static let startedWith = Mutex<mode_t?>(nil)

    /// Sets the umask to the current one with `minimumUmask` added, remembering the first
    /// umask this process had. Returns the umask now in force.
    @discardableResult
    public static func tightenUmask() -> mode_t {
        let current = umask(0o077)
        let tightened = current | minimumUmask
        umask(tightened)
        startedWith.withLock { if $0 == nil { $0 = current } }
        return tightened
    }

    /// The umask the process had before `tightenUmask`, or nil when it was never called (a
    /// service built in-process by a test).
    public static var originalUmask: mode_t? { startedWith.withLock { $0 } }

    /// The mode of an `ipc://` socket file for a service started with umask `original`.
    public static func socketMode(startedWith original: mode_t) -> mode_t { 0o666 & ~(original | 0o007) }

    /// Gives the `ipc://` socket files among `endpoints` their mode (see above). Does nothing
    /// when `tightenUmask` was never called, or for an abstract socket (`ipc://@name`).
    public static func setSocketModes(_ endpoints: [String]) {
        guard let original = originalUmask else { return }
        for ep in endpoints where ep.hasPrefix("ipc://") {
            let path = String(ep.dropFirst("ipc://".count))
            if path.isEmpty || path.hasPrefix("@") { continue }
            _ = chmod(path, socketMode(startedWith: original))
        }
    }

    /// Creates `directory` (and its missing parents) with `stateDirectoryMode` when it does
    /// not exist; an existing directory keeps its mode.
    public static func createStateDirectory(_ directory: String) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue { return }
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: Int(stateDirectoryMode)])
        // Whatever the umask took away from the attributes above.
        _ = chmod(directory, stateDirectoryMode)
    }

    /// Takes the bits of `minimumUmask` away from this service's own files in `directory`
    /// (`<service>.sqlite`, its `-wal` and `-shm`, `<service>.lock`) when an earlier start —
    /// by hand, before the service set its umask — left them open to others. Returns the files
    /// it changed.
    public static func repairStateFiles(directory: String, service: String) -> [String] {
        var changed: [String] = []
        for name in ["\(service).sqlite", "\(service).sqlite-wal", "\(service).sqlite-shm", "\(service).lock"] {
            let path = (directory as NSString).appendingPathComponent(name)
            var st = stat()
            guard lstat(path, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { continue }
            let mode = st.st_mode & 0o7777
            if mode & minimumUmask != 0, chmod(path, mode & ~minimumUmask) == 0 { changed.append(path) }
        }
        return changed
    }
}
