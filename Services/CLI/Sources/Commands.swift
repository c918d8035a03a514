import ArgumentParser
import Bus
import Dispatch
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The `bangfu` command line. Each subcommand parses its flags and calls the matching
/// `…Command` function with a fresh `ZContext`; tests call those functions directly.
public struct Bangfu: AsyncParsableCommand {
    public static let version = "0.1.0"

    public static let configuration = CommandConfiguration(
        commandName: "bangfu",
        abstract: "Operate Bangfu: publish facts, follow feeds, inspect quarantine, check services.",
        discussion: """
            Endpoints: --service picks a service's defaults (registry tcp://127.0.0.1:7101/7102/7103, \
            matcher 72xx, notifier 73xx, payments 74xx); BANGFU_<SERVICE>_INTAKE, _REPLAY and _FEED \
            override them (e.g. BANGFU_REGISTRY_INTAKE), and --intake, --replay, --feed override both.
            """,
        version: "bangfu \(version)",
        subcommands: [
            PublishVerb.self, TailVerb.self, QuarantineVerb.self, StatusVerb.self, PolicyVerb.self, ExplainVerb.self, ApplyVerb.self,
            ReviewVerb.self, ObjectionVerb.self, EntitlementVerb.self, PoolVerb.self, HoldVerb.self, PaymentsVerb.self, LedgerVerb.self,
            AuditVerb.self, ReportVerb.self, NotificationsVerb.self, KeysVerb.self, MerchantVerb.self, DemoVerb.self,
        ]
    )

    public init() {}

    /// The executable's entry point: parses `arguments` (the process's when nil), runs the
    /// chosen subcommand, and exits with its status.
    public static func runMain(_ arguments: [String]? = nil) async -> Never {
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            exit()
        } catch {
            exit(withError: error)
        }
    }
}

/// Endpoint selection shared by every verb.
struct EndpointOptions: ParsableArguments {
    @Option(help: "The service to talk to: registry, matcher, notifier or payments.")
    var service: String = "registry"

    @Option(help: ArgumentHelp("The intake endpoint (overrides --service and the environment).", valueName: "EP"))
    var intake: String?

    @Option(help: ArgumentHelp("The replay endpoint.", valueName: "EP"))
    var replay: String?

    @Option(help: ArgumentHelp("The feed endpoint.", valueName: "EP"))
    var feed: String?

    func target() throws(CLIError) -> ServiceTarget {
        try EndpointResolver.resolve(service: service, intake: intake, replay: replay, feed: feed)
    }
}

/// Runs a command body with a fresh context and standard console; maps `CLIError`s to a message
/// on stderr and their exit code.
func execute(_ body: (ZContext, Console) async throws -> Int32) async throws {
    let console = Console.standard()
    let context = ZContext()
    let code: Int32
    do {
        code = try await body(context, console)
    } catch let e as CLIError {
        console.flush()
        console.error("bangfu: \(e.message)")
        context.shutdown()
        context.terminate()
        throw ExitCode(e.exitCode)
    }
    console.flush()
    context.shutdown()
    context.terminate()
    if code != 0 { throw ExitCode(code) }
}

func positive(_ name: String, _ v: Int, min: Int = 1) throws {
    if v < min { throw ValidationError("\(name) must be at least \(min)") }
}

struct PublishVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publish",
        abstract: "Publish CloudEvents from JSON Lines (one event per line) to a service's intake.",
        discussion: """
            Blank lines are skipped. A line that is not JSON is still sent: the service quarantines \
            it and answers invalid_json. Exit status: 0 everything accepted or duplicate, 2 something \
            rejected, 3 something unacknowledged, 66 the input cannot be read.
            """)

    @Argument(help: ArgumentHelp("The JSON Lines file; - or absent for stdin.", valueName: "FILE"))
    var file: String?

    @OptionGroup var endpoints: EndpointOptions

    @Option(help: "Events in flight at once.")
    var window: Int = 1_000

    @Option(name: .customLong("timeout-ms"), help: "How long to wait for an ack before re-sending.")
    var timeoutMs: Int = 5_000

    @Option(help: "Re-sends (same id) before an event counts as unacknowledged.")
    var retries: Int = 3

    @Flag(help: "No progress and no summary; the exit status tells.")
    var quiet = false

    @Flag(help: "Print the summary as JSON.")
    var json = false

    func validate() throws {
        try positive("--window", window)
        try positive("--timeout-ms", timeoutMs)
        try positive("--retries", retries, min: 0)
    }

    func run() async throws {
        try await execute { context, console in
            let target = try endpoints.target()
            let input = try LineReader.open(path: file)
            var o = PublishOptions()
            o.window = window
            o.timeoutMs = timeoutMs
            o.retries = retries
            o.quiet = quiet
            o.json = json
            let summary = try await PublishCommand.run(
                context: context, endpoint: target.intake, input: input, options: o, console: console)
            return summary.exitCode
        }
    }
}

struct TailVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tail",
        abstract: "Print a service's feed events as JSON lines (replay, and with --follow, live).")

    @OptionGroup var endpoints: EndpointOptions

    @Option(help: "Print events with a sequence greater than this.")
    var after: UInt64 = 0

    @Flag(help: "Keep following live events (until SIGINT/SIGTERM or --max).")
    var follow = false

    @Option(help: ArgumentHelp("Only print events whose type starts with PREFIX.", valueName: "PREFIX"))
    var type: String?

    @Option(help: ArgumentHelp("Only print events about this subject (a merchant's USCC).", valueName: "USCC"))
    var subject: String?

    @Option(help: "Stop after printing this many events.")
    var max: Int?

    @Option(name: .customLong("timeout-ms"), help: "How long to wait for a replay answer.")
    var timeoutMs: Int = 5_000

    @Flag(
        help: ArgumentHelp(
            "Print bank account numbers, resident IDs and phone numbers in clear (masked by default)."))
    var unmasked = false

    func validate() throws {
        if let max { try positive("--max", max) }
        try positive("--timeout-ms", timeoutMs)
    }

    func run() async throws {
        try await execute { context, console in
            let target = try endpoints.target()
            var o = TailOptions()
            o.after = after
            o.follow = follow
            o.typePrefix = type
            o.subject = subject
            o.max = max
            o.timeoutMs = timeoutMs
            o.unmasked = unmasked
            let stop = StopSignal()
            let sources = follow ? stop.onInterrupt() : []
            defer { for s in sources { s.cancel() } }
            return try await TailCommand.run(context: context, target: target, options: o, console: console, stop: stop)
        }
    }
}

struct QuarantineVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quarantine",
        abstract: "List, show and re-submit rejected input a service keeps.",
        subcommands: [List.self, Show.self, Resubmit.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List quarantined items, oldest first.")

        @OptionGroup var endpoints: EndpointOptions

        @Option(help: "Only items rejected with this code (e.g. invalid_uscc).")
        var code: String?

        @Option(help: ArgumentHelp("Only items with an id greater than this.", valueName: "ID"))
        var after: String?

        @Option(help: "At most this many items.")
        var max: Int = 100

        @Flag(help: "One JSON object per line instead of a table.")
        var json = false

        @Option(name: .customLong("timeout-ms"))
        var timeoutMs: Int = 5_000

        func validate() throws {
            try positive("--max", max)
            try positive("--timeout-ms", timeoutMs)
        }

        func run() async throws {
            try await execute { context, console in
                var o = QuarantineCommand.ListOptions()
                o.code = code
                o.after = after
                o.max = max
                o.json = json
                o.timeoutMs = timeoutMs
                return try await QuarantineCommand.list(context: context, target: try endpoints.target(), options: o, console: console)
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show one quarantined item and its frame (resident IDs, phones and bank accounts masked unless --raw).")

        @Argument(help: "The quarantined item's id (a number, from quarantine list).")
        var id: String

        @OptionGroup var endpoints: EndpointOptions

        @Flag(help: "Print the item as JSON.")
        var json = false

        @Flag(help: "Print the frame exactly as received, personal data included (a frame that is not JSON is shown only so).")
        var raw = false

        @Option(name: .customLong("timeout-ms"))
        var timeoutMs: Int = 5_000

        func validate() throws {
            do { try QuarantineCommand.checkID(id) } catch { throw ValidationError(error.message) }
        }

        func run() async throws {
            try await execute { context, console in
                try await QuarantineCommand.show(
                    context: context, target: try endpoints.target(), id: id, json: json, raw: raw, timeoutMs: timeoutMs, console: console)
            }
        }
    }

    struct Resubmit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Publish a quarantined item again: its stored frame, or a corrected event from --file.",
            discussion:
                "An item refused as unauthorized is re-sent only with --force. Exit status: 0 accepted or duplicate, 2 rejected, 3 no answer, 64 an unauthorized item without --force."
        )

        @Argument(help: "The quarantined item's id.")
        var id: String

        @OptionGroup var endpoints: EndpointOptions

        @Option(help: ArgumentHelp("A file holding the corrected event (one JSON object).", valueName: "FIXED.json"))
        var file: String?

        @Flag(help: "Print the ack as JSON.")
        var json = false

        @Option(name: .customLong("timeout-ms"))
        var timeoutMs: Int = 5_000

        @Option(help: "Re-sends (same id) before giving up.")
        var retries: Int = 3

        @Flag(help: "Re-send an item refused as unauthorized: it goes in under your own key and rights.")
        var force = false

        func validate() throws {
            do { try QuarantineCommand.checkID(id) } catch { throw ValidationError(error.message) }
        }

        func run() async throws {
            try await execute { context, console in
                var o = QuarantineCommand.ResubmitOptions()
                o.file = file
                o.json = json
                o.force = force
                o.timeoutMs = timeoutMs
                o.retries = retries
                return try await QuarantineCommand.resubmit(
                    context: context, target: try endpoints.target(), id: id, options: o, console: console)
            }
        }
    }
}

struct StatusVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show services' readiness, last sequence, intake counters, quarantine and inbox cursors.",
        discussion: "Exit status: 0 if every asked service answered, 1 otherwise.")

    @OptionGroup var endpoints: EndpointOptions

    @Flag(help: "Ask all four services (at their configured endpoints).")
    var all = false

    @Flag(help: "Print the answers as JSON.")
    var json = false

    @Option(name: .customLong("timeout-ms"), help: "How long to wait for each service.")
    var timeoutMs: Int = 2_000

    func validate() throws {
        try positive("--timeout-ms", timeoutMs)
        if all && (endpoints.intake != nil || endpoints.replay != nil || endpoints.feed != nil) {
            throw ValidationError("--all uses each service's configured endpoints; drop --intake/--replay/--feed or --all")
        }
    }

    func run() async throws {
        try await execute { context, console in
            let targets: [ServiceTarget]
            if all {
                targets = try EndpointResolver.services.map { s throws(CLIError) in try EndpointResolver.resolve(service: s) }
            } else {
                targets = [try endpoints.target()]
            }
            return await StatusCommand.run(context: context, targets: targets, timeoutMs: timeoutMs, json: json, console: console)
        }
    }
}

struct DemoVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run the pipeline on a synthetic county with the real executables as separate processes.",
        discussion: """
            Starts the services on ipc:// endpoints in a fresh directory with the simulated clock, \
            publishes a deterministic county's facts (some of them bad on purpose), and prints a \
            summary. The executables are looked up beside `bangfu` unless --bin is given.
            """)

    @Option(help: "How many merchants the synthetic county has.")
    var merchants: Int = 10_000

    @Option(help: "The generator's seed (same seed, same county).")
    var seed: UInt64 = 20_220_401

    @Option(
        help: """
            The directory for state, sockets and logs. An existing one is emptied only if an earlier demo made it \
            (it holds a .bangfu-demo file) or with --force, and never while a service runs on it.
            """)
    var dir: String = "demo-out"

    @Flag(help: "Empty a non-empty --dir that an earlier demo did not make.")
    var force = false

    @Flag(name: .customLong("keep-running"), help: "Leave the services running at the end until Ctrl-C, and print the endpoints to use.")
    var keepRunning = false

    @Option(help: ArgumentHelp("The folder with the service executables.", valueName: "DIR"))
    var bin: String?

    @Option(help: ArgumentHelp("The policy files to publish to the matcher.", valueName: "DIR"))
    var policies: String = "policies"

    @Option(help: ArgumentHelp("Where every service's simulated clock starts (RFC 3339).", valueName: "INSTANT"))
    var start: String = DemoOptions().start

    @Option(
        help: "The crash proof: kill a random service with SIGKILL at random moments at least this many times, restarting it each time.")
    var chaosKills: Int = 0

    @Option(help: ArgumentHelp("The mean time between two kills.", valueName: "MS"))
    var chaosIntervalMs: Int = 3_000

    @Option(help: ArgumentHelp("Write the run's end state (sorted lines) to this file, to compare runs.", valueName: "FILE"))
    var endState: String?

    func validate() throws {
        try positive("--merchants", merchants)
        try positive("--chaos-interval-ms", chaosIntervalMs)
        if chaosKills < 0 { throw ValidationError("--chaos-kills must not be negative") }
    }

    func run() async throws {
        try await execute { _, console in
            var o = DemoOptions()
            o.start = start
            o.chaosKills = chaosKills
            o.chaosIntervalMs = chaosIntervalMs
            o.endStatePath = endState
            o.merchants = merchants
            o.seed = seed
            o.directory = dir
            o.binDirectory = bin
            o.policiesDirectory = policies
            o.force = force
            o.keepRunning = keepRunning
            let stop = StopSignal()
            let sources = keepRunning ? stop.onInterrupt() : []
            defer { for s in sources { s.cancel() } }
            return try await DemoCommand.run(options: o, console: console, stop: stop)
        }
    }
}

extension StopSignal {
    /// SIGINT and SIGTERM stop this signal instead of the process (a command that runs until
    /// interrupted, then tidies up). Cancel the returned sources when done.
    func onInterrupt() -> [any DispatchSourceSignal] {
        [SIGINT, SIGTERM].map { sig in
            signal(sig, SIG_IGN)
            let src = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            src.setEventHandler { self.stop() }
            src.resume()
            return src
        }
    }
}
