import Logging
import ServiceLifecycle

#if canImport(Glibc)
    import Glibc
#endif

/// Shuts the service down gracefully when the process that started it is gone.
///
/// A service started by a supervisor that is not systemd — `bangfu demo`, a test — names that
/// supervisor in `BANGFU_PARENT_PID`. If the supervisor dies without stopping its services (a
/// `kill -9`, a crash, a closed terminal), they would otherwise run on, orphaned, holding their
/// state directories and sockets; with the watch they notice within a second that they have a
/// new parent, drain and exit like on SIGTERM. Under systemd the variable is not set and
/// nothing is watched.
public struct ParentWatch: Service {
    public static let environmentKey = "BANGFU_PARENT_PID"
    let parent: pid_t
    let logger: Logger
    let currentParent: @Sendable () -> pid_t

    /// A watch for the parent named in `environment`, or nil when none is named (or the named
    /// one is already gone, which the watch reports at once).
    public static func fromEnvironment(_ environment: [String: String], logger: Logger) -> ParentWatch? {
        guard let text = environment[environmentKey], let pid = pid_t(text), pid > 1 else { return nil }
        return ParentWatch(parent: pid, logger: logger)
    }

    public init(parent: pid_t, logger: Logger, currentParent: @escaping @Sendable () -> pid_t = { getppid() }) {
        self.parent = parent
        self.logger = logger
        self.currentParent = currentParent
    }

    /// Returns when the parent is gone (the group then shuts down gracefully) or, quietly, when
    /// the group shuts down for another reason.
    public func run() async throws {
        let parent = parent
        let currentParent = currentParent
        let gone: Bool = await cancelWhenGracefulShutdown {
            while currentParent() == parent {
                do { try await Task.sleep(for: .seconds(1)) } catch { return false }
            }
            return true
        }
        if gone {
            logger.warning(
                "the process that started this service is gone; shutting down",
                metadata: ["parent_pid": "\(parent)", "now_parent_pid": "\(currentParent())"])
        }
    }
}
