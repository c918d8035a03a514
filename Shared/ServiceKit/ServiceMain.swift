import Bus
import Foundation
import Logging
import Models
import ServiceLifecycle

#if canImport(Glibc)
    import Glibc
#endif

/// What a service's `build…` function is given besides its options.
public struct ServiceEnvironment: Sendable {
    public var context: ZContext
    public var clock: any WallClock
    public var logger: Logger
    /// Test hook passed to every subscriber: drop this live sequence as if lost.
    public var dropLive: (@Sendable (String, UInt64) -> Bool)?
    /// Where readiness and the watchdog are reported (systemd's `$NOTIFY_SOCKET`; tests give their own).
    public var notifier = SystemdNotifier()

    public init(context: ZContext, clock: any WallClock, logger: Logger, dropLive: (@Sendable (String, UInt64) -> Bool)? = nil) {
        self.context = context
        self.clock = clock
        self.logger = logger
        self.dropLive = dropLive
    }
}

/// The body of every service executable's `@main`: parse settings, set up logging, build the
/// service with the same `build…` function the tests call, run it under a `ServiceGroup` that
/// shuts down gracefully on SIGTERM/SIGINT, and exit 0 after draining.
public enum ServiceMain {
    ///
    /// `validate` checks the service's own settings (`options.extra`) the way its `build`
    /// function reads them, without opening a database or binding a socket. It runs at every
    /// start and for `--check-config`; a service that supplies none has its `build` run
    /// against an in-memory database for `--check-config` instead (see `check`).
    ///
    /// `warnings` names settings that are valid but probably not what an operator wants in
    /// production (a placeholder account, a holiday calendar that misses the year): printed by
    /// `--check-config` as `warning: …` lines, and logged at start.
    ///
    /// `effective` gives the value each of the service's own settings (`extraKeys`) takes, as
    /// its `build` resolves it (a default included): `--check-config` prints those.
    public static func run(
        service: String, upstreams: [String] = [], extraKeys: [String: String] = [:],
        validate: ((ServiceOptions) throws -> Void)? = nil,
        warnings: ((ServiceOptions) -> [String])? = nil,
        effective: ((ServiceOptions) -> [String: String])? = nil,
        build: (ServiceOptions, ServiceEnvironment) throws -> BusService
    ) async -> Int32 {
        // Before anything is created: nothing this service writes is for others (FileModes).
        FileModes.tightenUmask()
        let options: ServiceOptions
        do {
            options = try ServiceOptions.parse(
                service: service, upstreams: upstreams, extraKeys: extraKeys, arguments: Array(CommandLine.arguments.dropFirst()))
        } catch {
            let text = "\(error)"
            FileHandle.standardError.write(Data((text + "\n").utf8))
            return text.hasPrefix("usage:") ? 0 : 64
        }
        do {
            try withoutActuallyEscaping(build) { b in try check(options, validate: validate, build: options.checkConfig ? b : nil) }
        } catch {
            FileHandle.standardError.write(Data("configuration error: \(error)\n".utf8))
            return 64
        }
        let cautions = options.cautions + (warnings?(options) ?? [])
        if options.checkConfig {
            print(options.summary(effective: effective?(options) ?? [:]))
            for w in cautions { print("warning: \(w)") }
            print("configuration OK" + (cautions.isEmpty ? "" : " (with \(cautions.count) warning\(cautions.count == 1 ? "" : "s"))"))
            return 0
        }
        guard let stateDir = options.stateDir else {
            FileHandle.standardError.write(
                Data("no state directory: give --state-dir DIR (or BANGFU_STATE_DIR, or systemd's StateDirectory=)\n".utf8))
            return 64
        }
        // One process per state directory: a second one would share the database and the
        // ipc:// sockets of the first.
        let lock: Int32
        do {
            lock = try StateLock.acquire(directory: stateDir, service: service)
        } catch {
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            return 1
        }
        defer { close(lock) }
        let level = Logger.Level(rawValue: options.logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardOutput(label: label)
            h.logLevel = level
            return h
        }
        var logger = Logger(label: "bangfu.\(service)")
        logger.logLevel = level
        for w in cautions { logger.warning("configuration warning", metadata: ["warning": "\(w)"]) }
        for path in FileModes.repairStateFiles(directory: stateDir, service: service) {
            logger.warning("state file was open to others: its mode is tightened", metadata: ["path": "\(path)"])
        }
        let clock: any WallClock
        if options.simulatedClock {
            clock = TestClock(Date())
            logger.warning("simulated clock: time moves only on clock.advanced commands; never use in production")
        } else {
            clock = SystemClock()
        }
        let context = ZContext()
        let env = ServiceEnvironment(context: context, clock: clock, logger: logger)
        let svc: BusService
        do {
            svc = try build(options, env)
        } catch {
            logger.critical("service could not start", metadata: ["error": "\(error)"])
            context.terminate()
            // A setting that only the build could judge is still a configuration error.
            return error is ConfigError ? 64 : 1
        }
        if let reset = options.resetFeedCursor {
            // A one-off with the service stopped (the state lock is held): set the cursor, lift
            // the halt, and exit without serving.
            guard let sub = svc.subscribers.first(where: { $0.upstream.name == reset.feed }) else {
                FileHandle.standardError.write(Data("this service does not follow \(reset.feed)\n".utf8))
                context.terminate()
                return 64
            }
            do {
                let before = try sub.consumer.cursor(feed: reset.feed)
                try sub.resetCursor(to: reset.sequence)
                logger.warning(
                    "feed cursor reset by the operator",
                    metadata: ["feed": "\(reset.feed)", "from": "\(before)", "to": "\(reset.sequence)"])
                print("\(service): \(reset.feed) cursor reset from \(before) to \(reset.sequence); the feed is no longer halted")
            } catch {
                FileHandle.standardError.write(Data("cannot reset the \(reset.feed) cursor: \(error)\n".utf8))
                context.terminate()
                return 1
            }
            context.terminate()
            return 0
        }
        var services = [ServiceGroupConfiguration.ServiceConfiguration(service: svc)]
        if let watch = ParentWatch.fromEnvironment(ProcessInfo.processInfo.environment, logger: logger) {
            services.append(.init(service: watch, successTerminationBehavior: .gracefullyShutdownGroup))
        }
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: services, gracefulShutdownSignals: [.sigterm, .sigint], cancellationSignals: [], logger: logger))
        do {
            try await group.run()
        } catch {
            logger.critical("service failed", metadata: ["error": "\(error)"])
            context.terminate()
            return 1
        }
        context.terminate()
        return 0
    }
}

extension ServiceMain {
    /// Everything `--check-config` checks beyond parsing (which `ServiceOptions.parse` did): the
    /// CURVE allowlist file (each grant's `types`/`sources` must be lists), then the service's
    /// own settings — through its `validate` hook, or, when it has none and `build` is given,
    /// by building the service against an in-memory database on a context of its own, binding
    /// nothing and starting nothing, and discarding it.
    public static func check(
        _ options: ServiceOptions, validate: ((ServiceOptions) throws -> Void)?,
        build: ((ServiceOptions, ServiceEnvironment) throws -> BusService)? = nil
    ) throws {
        if let file = options.curveClientsFile { _ = try ServiceSecurity.loadGrants(file) }
        if let validate {
            try validate(options)
        } else if let build {
            var dry = options
            dry.stateDir = nil
            var logger = Logger(label: "bangfu.\(options.service).check-config")
            logger.logLevel = .critical
            let context = ZContext()
            defer { context.terminate() }
            let built = try build(dry, ServiceEnvironment(context: context, clock: TestClock(Date()), logger: logger))
            // Deliberately never released: a service's parts may expect to be started before they
            // are freed (a suspended DispatchSource traps when released), and `--check-config`
            // ends the process right after this. It holds no socket and no file.
            _ = Unmanaged.passRetained(built)
        }
    }
}

/// An exclusive `flock` on `<state-dir>/<service>.lock`, held for the life of the process.
public enum StateLock {
    public static func acquire(directory: String, service: String) throws -> Int32 {
        try FileModes.createStateDirectory(directory)
        let path = (directory as NSString).appendingPathComponent("\(service).lock")
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw ConfigError("cannot open \(path): errno \(errno)") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw ConfigError("another bangfu-\(service) is already running with the state directory \(directory)")
        }
        return fd
    }
}
