import BangfuTesting
import Bus
import Foundation
import ISO20022
import Models
import Policy
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

public struct DemoOptions: Sendable {
    public var merchants = 10_000
    public var seed: UInt64 = 20_220_401
    /// Where the services keep their state and sockets (made fresh).
    public var directory = "demo-out"
    /// The folder holding the service executables (default: beside `bangfu`).
    public var binDirectory: String?
    public var window = 2_000
    /// The policy files published to the matcher.
    public var policiesDirectory = "policies"
    /// Where every service's simulated clock starts (a Monday), so that two runs of one seed
    /// write the same files.
    public var start = "2026-11-02T09:00:00+08:00"
    /// The crash proof: kill a random service with SIGKILL at random moments, at least this many
    /// times, restarting it each time (0: an undisturbed run).
    public var chaosKills = 0
    /// The mean time between two kills.
    public var chaosIntervalMs = 3_000
    /// Where to write the run's end state (sorted lines; see `DemoEndState`).
    public var endStatePath: String?
    /// Empty a non-empty `directory` that has no demo marker (never one a running service locks).
    public var force = false
    /// Leave the services running at the end until `stop` is signalled (Ctrl-C).
    public var keepRunning = false

    public init() {}
}

/// `bangfu demo`: the whole pipeline on a synthetic county, with the four real executables as
/// separate processes on `ipc://` endpoints and the simulated clock: facts in → profiles →
/// policies and applications → entitlements → disclosure → review → pools, batches and files →
/// a synthetic bank return → ledger and audit checks → the monthly evaluation.
public enum DemoCommand {
    /// The file `bangfu demo` writes into a directory it made: a later run may empty that
    /// directory; one without it (and not empty) is left alone unless `--force` is given.
    public static let marker = ".bangfu-demo"

    /// What a run needs, worked out and checked before anything is touched.
    public struct Plan: Sendable {
        public var directory: String
        public var bin: String
        public var start: Date
        public var policiesDirectory: String
        public var policyFiles: [String]
    }

    /// Checks every argument without touching anything: the start instant (64), the counts (64),
    /// the policy files (66 none, 65 one that does not compile), the executables, the end-state
    /// file's folder and the directory (73: a file, a directory a running service locks, or a
    /// non-empty one without the demo's marker and no `force`).
    public static func validate(_ options: DemoOptions) throws -> Plan {
        let fm = FileManager.default
        guard let startDate = Timestamp.parse(options.start) else {
            throw CLIError(
                "--start \(options.start) is not an RFC 3339 instant (e.g. 2026-11-02T09:00:00+08:00)", exitCode: ExitCodes.usage)
        }
        guard options.merchants >= 1 else { throw CLIError("--merchants must be at least 1", exitCode: ExitCodes.usage) }
        guard options.chaosKills >= 0 else { throw CLIError("--chaos-kills must not be negative", exitCode: ExitCodes.usage) }
        guard options.chaosIntervalMs >= 1 else { throw CLIError("--chaos-interval-ms must be at least 1", exitCode: ExitCodes.usage) }
        let (policiesDirectory, files) = try DemoMatcher.policyFiles(options)
        for f in files {
            guard let yaml = try? String(contentsOfFile: policiesDirectory + "/" + f, encoding: .utf8) else {
                throw CLIError("cannot read \(policiesDirectory)/\(f)", exitCode: ExitCodes.noInput)
            }
            do {
                _ = try PolicyCompiler.compile(yaml: yaml)
            } catch {
                let first = error.errors.first.map { "\($0.line):\($0.column): \($0.message)" } ?? "invalid policy"
                throw CLIError("\(policiesDirectory)/\(f):\(first) (bangfu policy check shows every error)", exitCode: ExitCodes.dataError)
            }
        }
        // Beside this executable (/proc/self/exe: found through PATH too), unless --bin says.
        let me = (try? fm.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let bin = options.binDirectory ?? URL(fileURLWithPath: me).resolvingSymlinksInPath().deletingLastPathComponent().path
        for name in ["registry", "matcher", "payments", "notifier"] where !fm.isExecutableFile(atPath: bin + "/bangfu-" + name) {
            throw CLIError(
                "\(bin)/bangfu-\(name) is not built (build it with `swift build -c release`, or give --bin DIR)",
                exitCode: ExitCodes.noInput)
        }
        if let path = options.endStatePath {
            let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: folder, isDirectory: &isDir), isDir.boolValue else {
                throw CLIError("--end-state \(path): the folder \(folder) does not exist", exitCode: ExitCodes.cantCreate)
            }
        }
        let dir = URL(fileURLWithPath: options.directory, relativeTo: URL(fileURLWithPath: fm.currentDirectoryPath)).standardizedFileURL
            .path
        try checkDirectory(dir, force: options.force)
        return Plan(directory: dir, bin: bin, start: startDate, policiesDirectory: policiesDirectory, policyFiles: files)
    }

    /// Whether the demo may (empty and) use `dir`; throws a `CLIError` (73) saying why not.
    public static func checkDirectory(_ dir: String, force: Bool) throws(CLIError) {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: dir, isDirectory: &isDir) else { return }  // made fresh
        guard isDir.boolValue else { throw CLIError("--dir \(dir) is a file, not a directory", exitCode: ExitCodes.cantCreate) }
        let cwd = URL(fileURLWithPath: fm.currentDirectoryPath).standardizedFileURL.path
        let home = URL(fileURLWithPath: NSHomeDirectory()).standardizedFileURL.path
        if dir == "/" || dir == home || cwd == dir || cwd.hasPrefix(dir + "/") {
            throw CLIError(
                "refusing to empty \(dir) (the root, your home or a folder the current directory is in): give --dir a folder of its own",
                exitCode: ExitCodes.cantCreate)
        }
        if let held = heldLock(in: dir) {
            throw CLIError(
                "\(held) is locked: a Bangfu service is running with its state directory in \(dir); nothing was touched (stop it, or give another --dir)",
                exitCode: ExitCodes.cantCreate)
        }
        let contents = (try? fm.contentsOfDirectory(atPath: dir)) ?? []
        if contents.isEmpty || contents.contains(marker) || force { return }
        throw CLIError(
            "--dir \(dir) is not empty and was not made by bangfu demo (it has no \(marker) file): nothing was touched. Give a new or empty directory, or add --force to empty it",
            exitCode: ExitCodes.cantCreate)
    }

    /// A `*.lock` file within three levels of `dir` that a process holds (a service's state-dir
    /// lock, `StateLock`), or that cannot be opened to tell.
    static func heldLock(in dir: String) -> String? {
        let fm = FileManager.default
        guard
            let walk = fm.enumerator(
                at: URL(fileURLWithPath: dir), includingPropertiesForKeys: [.isRegularFileKey], options: [.skipsPackageDescendants])
        else { return nil }
        var seen = 0
        while let url = walk.nextObject() as? URL {
            seen += 1
            if seen > 100_000 { break }
            if walk.level >= 3 { walk.skipDescendants() }
            guard url.pathExtension == "lock" else { continue }
            let fd = open(url.path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { return url.path }
            defer { close(fd) }
            guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { return url.path }
            flock(fd, LOCK_UN)
        }
        return nil
    }

    /// Empties (or makes) the directory and marks it as the demo's.
    static func prepareDirectory(_ dir: String) throws(CLIError) {
        let fm = FileManager.default
        do {
            if fm.fileExists(atPath: dir) {
                for name in try fm.contentsOfDirectory(atPath: dir) { try fm.removeItem(atPath: dir + "/" + name) }
            } else {
                try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
            }
            try "made by bangfu demo: a later `bangfu demo --dir` with this directory empties it\n".write(
                toFile: dir + "/" + marker, atomically: true, encoding: .utf8)
        } catch {
            let ns = error as NSError
            let underlying = (ns.userInfo[NSUnderlyingErrorKey] as? any Error).map { $0 as NSError }
            let reason =
                underlying.flatMap { $0.domain == NSPOSIXErrorDomain ? String(cString: strerror(Int32($0.code))) : nil }
                ?? (ns.domain == NSPOSIXErrorDomain ? String(cString: strerror(Int32(ns.code))) : "\(error)")
            throw CLIError("--dir \(dir) cannot be made or emptied: \(reason)", exitCode: ExitCodes.cantCreate)
        }
    }

    public static func run(options: DemoOptions, console: Console, stop: StopSignal = StopSignal()) async throws -> Int32 {
        let console = console.flushingEveryLine()  // progress shows in a log file too
        let fm = FileManager.default
        // Every argument is checked before the directory is touched.
        let plan = try validate(options)
        let dir = plan.directory
        let bin = plan.bin
        let startDate = plan.start
        try prepareDirectory(dir)
        // ipc:// paths must be short (108 bytes); fall back to /tmp for deep directories.
        var socketDir = dir + "/sockets"
        if socketDir.utf8.count > 80 { socketDir = "/tmp/bangfu-demo-\(getpid())" }
        try fm.createDirectory(atPath: socketDir, withIntermediateDirectories: true)

        console.line("Bangfu demo: \(options.merchants) merchants (seed \(options.seed)) in \(dir)")
        let demoStarted = DispatchTime.now().uptimeNanoseconds
        let registry = DemoProcess(
            name: "registry", binary: bin + "/bangfu-registry", stateDir: dir + "/registry", socketDir: socketDir,
            logPath: dir + "/registry.log")
        try registry.start(extra: ["--simulated-clock"])
        defer { registry.stopOrKill() }
        let context = ZContext()
        defer { context.terminate() }
        guard try await registry.waitReady(context: context) else {
            throw CLIError("bangfu-registry did not start; see \(dir)/registry.log", exitCode: 1)
        }
        console.line("  started bangfu-registry (pid \(registry.pid)), intake \(registry.endpoint("intake"))")
        let matcher = DemoProcess(
            name: "matcher", binary: bin + "/bangfu-matcher", stateDir: dir + "/matcher", socketDir: socketDir,
            logPath: dir + "/matcher.log")
        try matcher.start(extra: [
            "--simulated-clock", "--registry-feed", registry.endpoint("feed"), "--registry-replay", registry.endpoint("replay"),
            "--notifier-feed", "ipc://\(socketDir)/notifier-feed", "--notifier-replay", "ipc://\(socketDir)/notifier-replay",
            "--payments-feed", "ipc://\(socketDir)/payments-feed", "--payments-replay", "ipc://\(socketDir)/payments-replay",
        ])
        defer { matcher.stopOrKill() }
        guard try await matcher.waitReady(context: context) else {
            throw CLIError("bangfu-matcher did not start; see \(dir)/matcher.log", exitCode: 1)
        }
        console.line("  started bangfu-matcher (pid \(matcher.pid)), following the registry's feed")
        let payments = DemoProcess(
            name: "payments", binary: bin + "/bangfu-payments", stateDir: dir + "/payments", socketDir: socketDir,
            logPath: dir + "/payments.log")
        try payments.start(extra: [
            "--simulated-clock", "--registry-feed", registry.endpoint("feed"), "--registry-replay", registry.endpoint("replay"),
            "--matcher-feed", matcher.endpoint("feed"), "--matcher-replay", matcher.endpoint("replay"), "--outbox-dir",
            dir + "/payment-files",
            "--inbox-dir", dir + "/bank-returns",
        ])
        defer { payments.stopOrKill() }
        // The board and the monthly evaluation name the county's divisions (`districts`).
        try SyntheticCounty.districtTable.write(toFile: dir + "/districts.txt", atomically: true, encoding: .utf8)
        let notifier = DemoProcess(
            name: "notifier", binary: bin + "/bangfu-notifier", stateDir: dir + "/notifier", socketDir: socketDir,
            logPath: dir + "/notifier.log")
        try notifier.start(extra: [
            "--simulated-clock", "--registry-feed", registry.endpoint("feed"), "--registry-replay", registry.endpoint("replay"),
            "--matcher-feed", matcher.endpoint("feed"), "--matcher-replay", matcher.endpoint("replay"), "--payments-feed",
            payments.endpoint("feed"),
            "--payments-replay", payments.endpoint("replay"), "--board-dir", dir + "/board", "--reports-dir", dir + "/reports",
            "--districts", dir + "/districts.txt",
        ])
        defer { notifier.stopOrKill() }
        for p in [payments, notifier] {
            guard try await p.waitReady(context: context) else {
                throw CLIError("bangfu-\(p.name) did not start; see \(dir)/\(p.name).log", exitCode: 1)
            }
        }
        console.line("  started bangfu-payments (pid \(payments.pid)) and bangfu-notifier (pid \(notifier.pid))")
        let services = [registry, matcher, payments, notifier]

        // Every service's simulated clock starts at the same instant, so that two runs of one seed
        // produce the same timestamps and files.
        let chaos = options.chaosKills > 0
        // A chaos run notices a killed service by its silence, so it waits less for each answer.
        let link = DemoLink(
            context: context, timeoutMs: chaos ? 5_000 : 30_000, patienceSeconds: 900 + Double(options.merchants) / 100)
        for p in services {
            try await link.send(p, "clock.advanced", key: "start", ["to": .string(Timestamp.format(startDate)), "set": true])
        }
        console.line("  simulated clocks set to \(options.start)")
        let monkey =
            chaos
            ? ChaosMonkey(
                processes: services, context: context, minimumKills: options.chaosKills, meanIntervalMs: options.chaosIntervalMs,
                seed: options.seed)
            : nil
        if let monkey {
            console.line(
                "  chaos: killing a random service with SIGKILL every ~\(options.chaosIntervalMs) ms (at least \(options.chaosKills) kills), restarting it each time"
            )
            try monkey.start()
        }

        // Facts from every agency, as they would arrive.
        monkey?.enter(stage: "facts")
        let county = SyntheticCounty(seed: options.seed, merchants: options.merchants)
        console.line(
            "  publishing the facts of \(Format.grouped(options.merchants)) merchants from registration, statistics, tax, social insurance, housing, health, emergency, credit and bank feeds"
        )
        var accepted = 0
        var duplicate = 0
        var rejected: [String: Int] = [:]
        var unanswered = 0
        let meter = Mutex((meter: console.progress.map { ProgressMeter(total: options.merchants, draw: $0) }, tenth: 0))
        let started = DispatchTime.now().uptimeNanoseconds
        // Generated and sent a slice of the county at a time, so the demo holds one slice's
        // facts (about 110,000), not the county's (5.5 million at a million merchants).
        let total = try await link.publishInSlices(
            registry, merchants: options.merchants, window: options.window,
            events: { range in range.flatMap { county.facts(of: $0).map { OutgoingEvent($0) } } },
            progress: { merchantsDone in
                meter.withLock { m in
                    m.meter?.advance(to: merchantsDone)
                    if m.meter == nil, merchantsDone * 10 / options.merchants > m.tenth {
                        m.tenth = merchantsDone * 10 / options.merchants
                        console.line("  published \(m.tenth * 10)%")
                    }
                }
            },
            results: { results in
                for r in results {
                    switch r.ack?.status {
                    case .accepted?: accepted += 1
                    case .duplicate?: duplicate += 1
                    case .rejected?: rejected[r.ack?.rejection?.code.rawValue ?? "?", default: 0] += 1
                    case nil: unanswered += 1
                    }
                }
            })
        meter.withLock { $0.meter?.finish(at: options.merchants) }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        console.line(
            "  intake: \(Format.grouped(total)) facts, \(Format.grouped(accepted)) accepted, \(duplicate) duplicate, \(rejected.values.reduce(0, +)) rejected, \(unanswered) unacknowledged in \(String(format: "%.1f", seconds)) s (\(Int(Double(total) / max(seconds, 0.001)))/s)"
        )
        for (code, n) in rejected.sorted(by: { $0.key < $1.key }) {
            console.line(
                "    rejected \(code): \(n)  (kept in quarantine: bangfu quarantine list --code \(code); see the end for the endpoints)")
        }

        // Read the profiles back from the feed, as any downstream service would — while the matcher
        // works: the demo's own reading (6.5 million events at a million merchants, minutes of one
        // core) is not a stage of the pipeline.
        let readBack = Task { try await DemoRegistrySummary.run(link: link, registry: registry, console: console) }
        defer { readBack.cancel() }

        // 政策匹配: publish the seed programmes, let merchants apply, read the entitlements.
        monkey?.enter(stage: "matching")
        let matched = try await DemoMatcher.run(
            link: link, matcher: matcher, registry: registry, county: county, options: options, console: console)
        try await readBack.value
        // 公示 → 审核 → 拨付 → 回单 → 月度评.
        let paid = try await DemoPayout.run(
            link: link, registry: registry, matcher: matcher, notifier: notifier, payments: payments, dir: dir, monkey: monkey,
            console: console)

        // The end state, once every service has applied every feed it follows (after the last
        // kill of a chaos run, every restarted service catches up first).
        var checksPassed = true
        if let monkey {
            monkey.enter(stage: "end")
            let kills = try await monkey.finish()
            console.line("")
            console.line("\(link.stamp) Chaos: \(kills.count) kills with SIGKILL, each followed by a restart")
            var byService: [String: Int] = [:]
            for k in kills { byService[k.service, default: 0] += 1 }
            console.line("  by service: " + byService.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
            var byStage: [String: Int] = [:]
            for k in kills { byStage[k.stage, default: 0] += 1 }
            console.line("  by stage: " + byStage.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
            let down = kills.map(\.downSeconds)
            if !down.isEmpty {
                console.line(
                    "  back up after \(String(format: "%.2f", down.reduce(0, +) / Double(down.count))) s on average (max \(String(format: "%.2f", down.max() ?? 0)) s)"
                )
            }
            try
                (kills.map {
                    "\(String(format: "%.3f", $0.at))\t\($0.service)\t\($0.pid)\t\($0.stage)\t\(String(format: "%.3f", $0.downSeconds))"
                }
                .joined(separator: "\n") + "\n").write(toFile: dir + "/kills.tsv", atomically: true, encoding: .utf8)
        }
        if options.endStatePath != nil || monkey != nil {
            try await quiesce(link: link, registry: registry, matcher: matcher, payments: payments, notifier: notifier)
            let end = try await DemoEndState.collect(
                link: link, registry: registry, matcher: matcher, payments: payments, notifier: notifier, dir: dir)
            console.line("")
            console.line(
                "\(link.stamp) End state: \(Format.grouped(end.lines.count)) lines, digest \(end.digest.prefix(16)); audit chain \(end.auditEntries) links"
            )
            for p in end.problems.prefix(20) { console.line("  PROBLEM: \(p)") }
            if end.problems.isEmpty {
                console.line("  checks: ledger balanced, audit chain intact, no payment in two files, no notification twice")
            }
            checksPassed = end.problems.isEmpty
            if let path = options.endStatePath { try end.write(to: path) }
        }

        console.line("")
        console.line("Board (公示):        \(dir)/board/current/index.html (serve board/current with any static web server)")
        console.line("Disclosure records:  \(dir)/reports/disclosures/ (each round as disclosed, with its outcome and SHA-256)")
        console.line("Payment files:       \(dir)/payment-files/ (pain.001.001.09, lessor and agency instructions)")
        console.line("Bank returns:        \(dir)/bank-returns/processed/")
        console.line("Notifications:       \(dir)/notifier/notifications.jsonl")
        console.line("State and logs:      \(dir)/{registry,matcher,payments,notifier}/, \(dir)/*.log")
        let wall = Double(DispatchTime.now().uptimeNanoseconds - demoStarted) / 1e9
        console.line(
            "Wall time \(String(format: "%.1f", wall)) s; peak memory: "
                + services.map { "\($0.name) \($0.peakRSSMiB()) MiB" }.joined(separator: ", ")
                + ", this demo \(peakResidentKiB(pid: getpid()) / 1024) MiB")
        console.line(
            "CPU time: " + services.map { "\($0.name) \(String(format: "%.1f", $0.cpuSeconds())) s" }.joined(separator: ", ")
                + ", this demo \(String(format: "%.1f", Double(cpuTicks(pid: getpid())) / Double(cpuTicksPerSecond))) s")
        // How to use the CLI on what the demo made: the services stop with the demo (unless
        // --keep-running), so say how to start them again on its state, and where they listen.
        let lines = services.map {
            DemoServiceLine(
                name: $0.name, commandLine: $0.commandLine, intake: $0.endpoint("intake"), feed: $0.endpoint("feed"),
                replay: $0.endpoint("replay"))
        }
        try envScript(lines).write(toFile: dir + "/bangfu-env.sh", atomically: true, encoding: .utf8)
        try startScript(lines, dir: dir).write(toFile: dir + "/start-services.sh", atomically: true, encoding: .utf8)
        console.line("")
        for l in closingHints(dir: dir, services: lines, keepRunning: options.keepRunning, quarantineCode: rejected.keys.sorted().first) {
            console.line(l)
        }
        console.flush()
        if options.keepRunning {
            while !stop.isStopped { try? await Task.sleep(for: .milliseconds(200)) }
            console.line("stopping the services")
        }
        return unanswered == 0 && accepted > 0 && matched && paid && checksPassed ? 0 : 1
    }

    /// Waits until every service has applied everything upstream of it and has no notification
    /// left to deliver; repeated until a whole pass changes nothing.
    static func quiesce(link: DemoLink, registry: DemoProcess, matcher: DemoProcess, payments: DemoProcess, notifier: DemoProcess)
        async throws
    {
        let follows: [(DemoProcess, [DemoProcess])] = [
            (matcher, [registry, notifier, payments]), (payments, [registry, matcher]), (notifier, [registry, matcher, payments]),
        ]
        while true {
            var before: [String] = []
            for p in [registry, matcher, payments, notifier] { before.append(try await link.status(p)["last"].text) }
            for (downstream, upstreams) in follows {
                for u in upstreams { try await link.settle(downstream, follows: u) }
            }
            try await link.until("delivering notifications", notifier) {
                try await link.query(notifier, ["op": "notification.summary"])["pending"]?.intValue == 0
            }
            var after: [String] = []
            for p in [registry, matcher, payments, notifier] { after.append(try await link.status(p)["last"].text) }
            if before == after { return }
        }
    }
}

/// The matcher stage of the demo.
enum DemoMatcher {
    /// The policy files to publish: `--policies`, or by default the repository's `policies/`
    /// or (for an installation) the copy `deploy/install.sh` makes. None is an error (66).
    static func policyFiles(_ options: DemoOptions) throws -> (String, [String]) {
        let fm = FileManager.default
        func yaml(_ dir: String) -> [String] {
            ((try? fm.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".yaml") }.sorted()
        }
        var directory = options.policiesDirectory
        if yaml(directory).isEmpty, options.policiesDirectory == DemoOptions().policiesDirectory {
            directory = "/usr/local/share/bangfu/policies"
        }
        let files = yaml(directory)
        guard !files.isEmpty else {
            throw CLIError(
                "no policy files in \(options.policiesDirectory): run the demo from the repository root, or give --policies DIR",
                exitCode: 66)
        }
        return (directory, files)
    }

    static func run(
        link: DemoLink, matcher: DemoProcess, registry: DemoProcess, county: SyntheticCounty, options: DemoOptions, console: Console
    ) async throws -> Bool {
        let (policiesDirectory, files) = try policyFiles(options)
        var policies: [OutgoingEvent] = []
        var titles: [String: String] = [:]
        var windows: [(id: String, until: String)] = []
        for f in files {
            let yaml = try String(contentsOfFile: policiesDirectory + "/" + f, encoding: .utf8)
            let compiled = try PolicyCompiler.compile(yaml: yaml)
            let d = compiled.document
            titles[d.id] = d.title
            if d.requiresApplication, let until = d.applyUntil { windows.append((d.id, until.description)) }
            policies.append(
                OutgoingEvent(
                    CloudEvent(
                        id: "policy.published/\(d.id)/\(d.revision)", source: "/bangfu/demo", type: "policy.published",
                        data: ["yaml": .string(yaml)])))
        }
        // The programmes are published once the matcher has caught up with the registry: a
        // matcher still replaying older profile versions would screen them against the live
        // policies and leave entitlements behind (incomplete, then revoked) that a matcher which
        // kept up never makes — so two runs would differ by when the matcher last restarted.
        try await link.settle(matcher, follows: registry)
        let published = try await link.publish(matcher, policies)
        let ok = published.filter { $0.ack?.status == .accepted || $0.ack?.status == .duplicate }.count
        console.line("  published \(ok)/\(policies.count) policies: \(titles.keys.sorted().joined(separator: ", "))")

        // The application window opens once the matcher knows every profile, so that each
        // application is judged on the merchant's full record.
        try await link.settle(matcher, follows: registry)
        // Applications: most merchants apply to the programmes that need one, on time; a few
        // apply a second after the deadline and are refused (超过时限不再受理). The matcher judges
        // lateness by its own clock at receipt, and the seed's programmes ran in 2021 and 2022:
        // its simulated clock is placed on each programme's last day while that programme's
        // applications arrive (earliest deadline first), then returned to the demo's clock.
        let demoClock = try await link.status(matcher)["clock"]?.stringValue ?? Timestamp.format(Date())
        var lateCount = 0
        var acceptedApps = 0
        for w in windows.sorted(by: { ($0.until, $0.id) < ($1.until, $1.id) }) {
            guard let day = CivilDate.parse(w.until) else { continue }
            try await link.setClock(matcher, to: "\(day)T10:00:00+08:00", key: "window/\(w.id)")
            _ = try await link.publishInSlices(
                matcher, merchants: county.merchants,
                events: { range in
                    var applications: [OutgoingEvent] = []
                    for i in range where i % 10 < 7 {
                        let u = county.uscc(i)
                        let late = i % 97 == 0
                        let at = late ? "\(day.adding(days: 1))T00:00:01+08:00" : "\(day)T10:00:00+08:00"
                        applications.append(
                            OutgoingEvent(
                                CloudEvent(
                                    id: "application/\(w.id)/\(u)", source: "/portal/xuchang", type: "application.submitted", subject: u,
                                    data: [
                                        "uscc": .string(u), "policy_id": .string(w.id), "submitted_at": .string(at),
                                        "documents": ["申请书.pdf"],
                                    ])))
                    }
                    return applications
                },
                results: { applied in
                    lateCount += applied.filter { $0.ack?.rejection?.code == .late }.count
                    acceptedApps += applied.filter { $0.ack?.status == .accepted }.count
                })
        }
        try await link.setClock(matcher, to: demoClock, key: "windows-closed")
        console.line("  applications: \(acceptedApps) taken, \(lateCount) refused as late (after 24:00 CST of the last day)")

        // Wait until the matcher has applied the registry's whole feed.
        try await link.settle(matcher, follows: registry)
        // Fold the matcher's feed: the last state of every entitlement.
        var final: [String: (policy: String, state: String, fen: Int64)] = [:]
        try await link.replay(matcher) { e in
            if let d = e.data, let id = d["entitlement_id"]?.stringValue {
                final[id] = (d["policy_id"]?.stringValue ?? "?", d["state"]?.stringValue ?? "?", d["amount_fen"]?.intValue ?? 0)
            }
        }
        struct Row {
            var proposed = 0
            var approved = 0
            var incomplete = 0
            var revoked = 0
            var fen: Int64 = 0
        }
        var rows: [String: Row] = [:]
        for e in final.values {
            var r = rows[e.policy] ?? Row()
            switch e.state {
            case "proposed":
                r.proposed += 1
                r.fen += e.fen
            case "approved":
                r.approved += 1
                r.fen += e.fen
            case "incomplete": r.incomplete += 1
            case "revoked": r.revoked += 1
            default: break
            }
            rows[e.policy] = r
        }
        console.line("")
        console.line("\(link.stamp) 政策匹配 matcher: \(final.count) entitlements")
        console.line(
            Format.pad("programme", 28) + Format.pad("proposed", 10) + Format.pad("approved", 10) + Format.pad("incomplete", 12)
                + Format.pad("revoked", 9) + "amount")
        for id in titles.keys.sorted() {
            let r = rows[id] ?? Row()
            console.line(
                Format.pad(id, 28) + Format.pad("\(r.proposed)", 10) + Format.pad("\(r.approved)", 10) + Format.pad("\(r.incomplete)", 12)
                    + Format.pad("\(r.revoked)", 9) + Money.yuan(r.fen))
        }
        console.line("  (proposed: awaiting disclosure 公示; incomplete: facts or an application missing, 线上补报)")
        return ok == policies.count
    }
}

/// The disclosure, review, payment and evaluation stages of the demo.
enum DemoPayout {
    static func run(
        link: DemoLink, registry: DemoProcess, matcher: DemoProcess, notifier: DemoProcess, payments: DemoProcess, dir: String,
        monkey: ChaosMonkey?, console: Console
    ) async throws -> Bool {
        monkey?.enter(stage: "disclosure")
        try await link.settle(notifier, follows: registry)
        try await link.settle(notifier, follows: matcher)
        let rounds = try await link.query(notifier, ["op": "round.list"])["items"]?.arrayValue ?? []
        console.line("")
        console.line("\(link.stamp) 公示与通知 notifier: \(rounds.count) disclosure rounds opened; letting 8 days pass on the simulated clock")
        // Every service's clock moves together (their records stay in one time); the notifier's
        // last, as it is the one that closes the rounds.
        for p in [registry, matcher, payments, notifier] {
            try await link.send(p, "clock.advanced", key: "disclosure+8d", ["seconds": .int(8 * 86_400)])
        }
        try await link.until("closing the disclosure rounds", notifier) {
            try await link.query(notifier, ["op": "round.list"])["items"]?.arrayValue?.contains(where: {
                $0["state"]?.stringValue == "open"
            }) == false
        }
        try await link.settle(matcher, follows: notifier)
        // Programmes without auto-approval are reviewed by an operator (here, the demo); a
        // programme that names its reviewers (flood relief: 招商局 and 市场监管分局) is approved
        // once each of them has approved.
        monkey?.enter(stage: "review")
        var reviewers: [String: [String]] = [:]
        for p in try await link.query(matcher, ["op": "policy.list"])["items"]?.arrayValue ?? [] {
            guard let id = p["policy_id"]?.stringValue else { continue }
            reviewers[id] = (p["reviewers"]?.arrayValue ?? []).compactMap(\.stringValue)
        }
        var reviewed = 0
        while true {
            let cleared =
                try await link.query(matcher, ["op": "entitlement.list", "state": "cleared", "max": 1_000])["items"]?.arrayValue ?? []
            if cleared.isEmpty { break }
            let byPolicy = Dictionary(grouping: cleared, by: { $0["policy_id"]?.stringValue ?? "" })
            for (policy, items) in byPolicy.sorted(by: { $0.key < $1.key }) {
                let ids = items.compactMap { $0["id"] }
                let key = SHA256.hex(ids.map(\.text).joined(separator: ",")).prefix(32)
                let names = reviewers[policy].flatMap { $0.isEmpty ? nil : $0 } ?? ["区财政局"]
                for (n, name) in names.enumerated() {
                    let ack = try await link.send(
                        matcher, "review.approved", key: "\(key)/\(n)", ["entitlement_ids": .array(ids), "by": .string(name + "（演示审核）")])
                    guard ack.status == .accepted || ack.status == .duplicate else {
                        throw CLIError(
                            "bangfu-matcher refused the review of \(policy): \(ack.rejection?.message ?? "\(ack.status)")", exitCode: 1)
                    }
                }
                reviewed += ids.count
            }
        }
        console.line("  disclosure passed; \(reviewed) entitlements approved by review, the rest by their programmes' auto-approval")

        // 支付路由: fund the pools, batch, and feed back the bank's return.
        monkey?.enter(stage: "payments")
        try await link.settle(payments, follows: registry)
        try await link.settle(payments, follows: matcher)
        try await link.send(
            payments, "pool.funded", key: "unemployment-insurance-fund",
            ["pool": "unemployment-insurance-fund", "source": "central", "amount_fen": 50_000_000_000])
        try await link.send(
            payments, "pool.funded", key: "flood-relief-2021",
            ["pool": "flood-relief-2021", "source": "special_bond", "amount_fen": 5_000_000])
        // A batch file holds at most the service's batch-max-payments: ask again until the
        // channel has nothing ready. A channel with nothing ready is not asked at all (in a small
        // county an agency may have no approved payment, and payments refuses a channel it does
        // not know).
        for channel in ["treasury", "lessor", "agency:utilities", "agency:social-insurance"] {
            var n = 0
            while true {
                if try await !link.anyPayment(payments, state: "ready", channel: channel) { break }
                n += 1
                let ack = try await link.send(payments, "payments.batch", key: "\(channel)/\(n)", ["channel": .string(channel)])
                if ack.status == .rejected { break }  // e.g. a paused channel: asking again would not help
            }
        }
        // A batch's file is written after its transaction commits (or on the next start, after a
        // crash): wait until every batch is on disk.
        var batches: [JSON] = []
        try await link.until("writing the batch files", payments) {
            batches = try await link.query(payments, ["op": "batch.list"])["items"]?.arrayValue ?? []
            return batches.allSatisfy { $0["written"]?.boolValue == true }
        }
        let files = batches.compactMap { $0["file"]?.stringValue }
        var returned = 0
        var failed = 0
        // The bank answers after the batch: its return is dated by payments' (simulated) clock.
        let answeredAt = (try await link.status(payments)["clock"]?.stringValue).flatMap { Timestamp.parse($0) } ?? Date()
        try FileManager.default.createDirectory(atPath: dir + "/bank-returns", withIntermediateDirectories: true)
        monkey?.enter(stage: "bank-return")
        for f in files where f.hasSuffix(".xml") {
            let batch = try Pain001.parse(String(contentsOfFile: dir + "/payment-files/" + f, encoding: .utf8))
            var lines: [ReturnLine] = []
            for (k, p) in batch.payments.enumerated() {
                let fail = k % 40 == 7
                if fail { failed += 1 }
                lines.append(
                    ReturnLine(
                        endToEndID: p.endToEndID, status: fail ? .failed(reasonCode: "AC04", reason: "账户已销户") : .settled,
                        amountFen: p.amountFen))
            }
            returned += lines.count
            let xml = Pain002.xml(
                originalMessageID: batch.messageID, messageID: "RET-" + batch.messageID, lines: lines, createdAt: answeredAt)
            try xml.write(toFile: dir + "/bank-returns/RET-\(f)", atomically: true, encoding: .utf8)
        }
        // The inbox is read once a second; wait until every treasury payment has its answer.
        try await link.until("reading the bank return", payments) {
            if returned == 0 { return true }
            return try await !link.anyPayment(payments, state: "instructed", channel: "treasury")
        }
        // Lessors confirm their rent waivers (refund or offset against later rent) and the
        // agencies their deferrals and no-cut-off instructions (lessor.confirmed, agency.confirmed).
        monkey?.enter(stage: "confirmations")
        var confirmed = 0
        // A lessor may offset only what its instruction line allows (`methods`: a lease under three
        // months in the period is refunded directly), as a lessor's system reads it off the file.
        var refundOnly: Set<String> = []
        for f in files where f.hasSuffix("-lessor.jsonl") {
            let text = (try? String(contentsOfFile: dir + "/payment-files/" + f, encoding: .utf8)) ?? ""
            for line in text.split(separator: "\n").dropFirst() {
                guard let l = try? JSONParser.parse(String(line)), let id = l["payment_id"]?.stringValue else { continue }
                if l["methods"] == ["refund"] { refundOnly.insert(id) }
            }
        }
        for channel in ["lessor", "agency:utilities", "agency:social-insurance"] {
            while true {
                let page =
                    try await link.query(
                        payments, ["op": "payment.list", "state": "instructed", "channel": .string(channel), "max": 1_000])[
                        "items"]?.arrayValue ?? []
                if page.isEmpty { break }
                let events: [OutgoingEvent] = page.enumerated().compactMap { k, p in
                    guard let id = p["payment_id"]?.stringValue else { return nil }
                    let lessor = channel == "lessor"
                    var data: JSONObject = ["payment_id": .string(id), "ok": true]
                    if lessor { data["method"] = k % 2 == 0 || refundOnly.contains(id) ? "refund" : "offset" }
                    return OutgoingEvent(
                        CloudEvent(
                            id: "confirm/\(id)",
                            source: lessor
                                ? "/lessors/\(SyntheticCounty.stateLessorUSCC)" : "/agencies/\(channel.dropFirst("agency:".count))",
                            type: lessor ? "lessor.confirmed" : "agency.confirmed", data: .object(data)))
                }
                confirmed += try await link.publishAll(payments, events, what: "a confirmation on \(channel)")
            }
        }
        console.line("")
        console.line(
            "\(link.stamp) 支付路由 payments: \(files.count) batch files; bank return: \(returned - failed) settled, \(failed) failed; \(confirmed) instructions confirmed by lessors and agencies"
        )
        monkey?.enter(stage: "post-audit")
        try await DemoPostAudit.run(link: link, registry: registry, matcher: matcher, payments: payments, console: console)
        let summary = try await link.query(payments, ["op": "payment.summary"])["items"]?.arrayValue ?? []
        console.line(Format.pad("programme", 28) + Format.pad("state", 22) + Format.pad("count", 8) + "amount")
        for r in summary {
            let state = r["state"].text + (r["hold_code"].map { $0.isNull ? "" : " (\($0.text))" } ?? "")
            console.line(
                Format.pad(r["policy_id"].text, 28) + Format.pad(state, 22) + Format.pad(r["count"].text, 8)
                    + Money.yuan(r["amount_fen"]?.intValue ?? 0))
        }
        let ledger = try await link.query(payments, ["op": "ledger.check"])
        let audit = try await link.query(payments, ["op": "audit.verify"])
        console.line(
            "  ledger check: \(ledger["ok"]?.boolValue == true ? "OK (balances sum to zero)" : "BROKEN"); audit chain: \(audit["ok"]?.boolValue == true ? "OK, \(audit["entries"].text) links" : "BROKEN")"
        )
        // 月度评.
        monkey?.enter(stage: "report")
        try await link.settle(notifier, follows: matcher)
        let clock = try await link.status(notifier)["clock"]?.stringValue ?? ""
        let month = String(clock.prefix(7))
        let report = try await link.query(notifier, ["op": "report.monthly", "month": .string(month)])
        console.line("")
        console.line("\(link.stamp) 月度评 monthly evaluation \(month): \(report["html"].text)")
        return ledger["ok"]?.boolValue == true && audit["ok"]?.boolValue == true
    }
}

/// 事后审计: after the payout, an audit finds a few recipients fraudulent (取消所有涉企政策补助资格).
/// Their cash is clawed back (a receivable in the pool's ledger); their rent waivers and
/// deferrals, already carried out, are reversed by a line of the lessor's or agency's next
/// instruction file, which the lessor and agency then confirm.
enum DemoPostAudit {
    /// The merchants the audit finds: of each programme's paid entitlements (a rent waiver, a
    /// deferral, a cash subsidy), the one with the smallest id — the same in every run of a seed.
    static func pick(link: DemoLink, matcher: DemoProcess) async throws -> [String] {
        var found: [String] = []
        for policy in ["soe-rent-waiver", "si-deferral", "retention-training-subsidy"] {
            let page =
                try await link.query(matcher, ["op": "entitlement.list", "policy": .string(policy), "state": "paid", "max": 1])["items"]?
                .arrayValue ?? []
            if let uscc = page.first?["uscc"]?.stringValue, !found.contains(uscc) { found.append(uscc) }
        }
        return found
    }

    static func run(link: DemoLink, registry: DemoProcess, matcher: DemoProcess, payments: DemoProcess, console: Console) async throws {
        try await link.settle(matcher, follows: payments)
        let found = try await pick(link: link, matcher: matcher)
        guard !found.isEmpty else { return }
        for uscc in found {
            let ack = try await link.send(
                registry, "fraud.confirmed", key: "post-audit/\(uscc)",
                ["uscc": .string(uscc), "finding": "事后审计：虚报租赁及参保材料", "confirmed_by": "区审计局（演示）"])
            guard ack.status == .accepted || ack.status == .duplicate else {
                throw CLIError("bangfu-registry refused the audit's finding: \(ack.rejection?.message ?? "\(ack.status)")", exitCode: 1)
            }
        }
        try await link.settle(matcher, follows: registry)
        try await link.settle(payments, follows: registry)
        try await link.settle(payments, follows: matcher)
        // The reversals go out in each channel's next file.
        var batched = 0
        for channel in ["lessor", "agency:utilities", "agency:social-insurance"] {
            var n = 0
            while try await pending(link: link, payments: payments, channel: channel) {
                n += 1
                let ack = try await link.send(payments, "payments.batch", key: "reversals/\(channel)/\(n)", ["channel": .string(channel)])
                if ack.status == .rejected { break }
                batched += 1
            }
        }
        var files: [String] = []
        try await link.until("writing the reversal files", payments) {
            let batches = try await link.query(payments, ["op": "batch.list"])["items"]?.arrayValue ?? []
            files = batches.filter { ($0["reversals"]?.intValue ?? 0) > 0 }.compactMap { $0["file"]?.stringValue }
            return batches.allSatisfy { $0["written"]?.boolValue == true }
        }
        // The lessors and agencies confirm that they reversed them.
        var reversed = 0
        while true {
            let page =
                try await link.query(payments, ["op": "reversals", "state": "instructed", "max": 1_000])["items"]?.arrayValue ?? []
            if page.isEmpty { break }
            let events: [OutgoingEvent] = page.compactMap { r in
                guard let id = r["payment_id"]?.stringValue, let channel = r["channel"]?.stringValue else { return nil }
                let lessor = channel == "lessor"
                return OutgoingEvent(
                    CloudEvent(
                        id: "confirm-reversal/\(id)",
                        source: lessor ? "/lessors/\(SyntheticCounty.stateLessorUSCC)" : "/agencies/\(channel.dropFirst("agency:".count))",
                        type: lessor ? "lessor.confirmed" : "agency.confirmed",
                        data: ["payment_id": .string(id), "reversal": true, "ok": true, "method": "reversed"]))
            }
            reversed += try await link.publishAll(payments, events, what: "a reversal's confirmation")
        }
        let clawedBack =
            try await link.query(payments, ["op": "payment.list", "state": "clawed_back", "max": 1_000])["items"]?.arrayValue ?? []
        let cash = clawedBack.filter { $0["benefit"]?.stringValue == "cash" }
        let owed = cash.reduce(Int64(0)) { $0 + ($1["amount_fen"]?.intValue ?? 0) }
        console.line(
            "\(link.stamp) 事后审计 post-payout audit: \(found.count) recipient\(found.count == 1 ? "" : "s") found fraudulent; \(cash.count) cash payment\(cash.count == 1 ? "" : "s") clawed back (\(Money.yuan(owed)) owed back to the pools); \(reversed) rent waivers and deferrals reversed by lessors and agencies"
                + (files.isEmpty ? "" : " (\(files.joined(separator: ", ")))"))
    }

    static func pending(link: DemoLink, payments: DemoProcess, channel: String) async throws -> Bool {
        let page = try await link.query(payments, ["op": "reversals", "state": "pending", "max": 1_000])["items"]?.arrayValue ?? []
        return page.contains { $0["channel"]?.stringValue == channel }
    }
}

/// The registry's side of the demo summary, from its feed.
enum DemoRegistrySummary {
    /// Reads every profile back from the registry's feed (only what the summary needs is kept of
    /// each merchant's latest profile) and prints the summary as one block.
    static func run(link: DemoLink, registry: DemoProcess, console: Console) async throws {
        var lines: [String] = []
        struct ProfileSummary {
            var size = "?"
            var sector = "?"
            var priority = false
            var service = false
            var disqualified = false
            var flagged = false
            var stateLease = false
        }
        var profiles: [String: ProfileSummary] = [:]
        try await link.replay(registry) { e in
            guard e.type == "merchant.profiled", let s = e.subject, let p = e.data else { return }
            let leases = p["leases"]?.arrayValue ?? []
            profiles[s] = ProfileSummary(
                size: p["tags"]?["size"]?.stringValue ?? "?", sector: p["tags"]?["sector"]?.stringValue ?? "?",
                priority: p["tags"]?["priority_sector"]?.boolValue == true, service: p["tags"]?["service_industry"]?.boolValue == true,
                disqualified: p["disqualified"]?.boolValue == true, flagged: !(p["credit_flags"]?.arrayValue?.isEmpty ?? true),
                stateLease: leases.contains {
                    ["state_enterprise", "government"].contains($0["root_lessor"]?["ownership"]?.stringValue ?? "")
                })
        }
        var sizes: [String: Int] = [:]
        var sectors: [String: Int] = [:]
        var priority = 0
        var service = 0
        var stateLeases = 0
        var disqualified = 0
        var flagged = 0
        for p in profiles.values {
            sizes[p.size, default: 0] += 1
            sectors[p.sector, default: 0] += 1
            if p.priority { priority += 1 }
            if p.service { service += 1 }
            if p.disqualified { disqualified += 1 }
            if p.flagged { flagged += 1 }
            if p.stateLease { stateLeases += 1 }
        }
        let status = try await link.status(registry)
        lines.append("")
        lines.append(
            "\(link.stamp) 名录库 registry: \(Format.grouped(profiles.count)) merchant profiles (feed sequence \(status["last"].text))")
        lines.append("  size (MIIT 2011): " + sizes.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        lines.append(
            "  sectors: " + sectors.sorted { $0.value > $1.value }.prefix(8).map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        lines.append("  service industry \(service), priority sectors \(priority), renting state property \(stateLeases)")
        lines.append("  credit-flagged \(flagged), disqualified for fraud \(disqualified)")
        lines.append(
            "  quarantined: \(status["quarantined"]?.intValue ?? 0) bad records, by code \(status["quarantined_by_code"]?.serialized() ?? "{}")"
        )
        console.line(lines.joined(separator: "\n"))
    }
}

/// One demo service as the closing hints name it.
struct DemoServiceLine: Sendable {
    var name: String
    /// The executable and its arguments, as the demo started it.
    var commandLine: [String]
    var intake: String
    var feed: String
    var replay: String
}

extension DemoCommand {
    /// `export BANGFU_<SERVICE>_INTAKE=… _REPLAY=… _FEED=…` for each service: what the CLI reads.
    static func envScript(_ services: [DemoServiceLine]) -> String {
        var out = "# The demo's endpoints for the bangfu CLI: . ./bangfu-env.sh\n"
        for s in services {
            let u = s.name.uppercased()
            out += "export BANGFU_\(u)_INTAKE=\(s.intake) BANGFU_\(u)_REPLAY=\(s.replay) BANGFU_\(u)_FEED=\(s.feed)\n"
        }
        return out
    }

    /// A script that starts the four services again on the demo's state (in the background, logs
    /// appended, pids in `<dir>/<service>.pid`).
    static func startScript(_ services: [DemoServiceLine], dir: String) -> String {
        var out = "#!/bin/sh\n# Starts the demo's services again on its state directories (written by bangfu demo).\nset -e\n"
        for s in services {
            let q = RetryHint.quoted
            out += "nohup \(s.commandLine.map(q).joined(separator: " ")) >>\(q(dir + "/" + s.name + ".log")) 2>&1 &\n"
            out += "echo $! >\(q(dir + "/" + s.name + ".pid")); echo \"bangfu-\(s.name) pid $!\"\n"
        }
        out += "echo \"stop them with: kill \\$(cat \(RetryHint.quoted(dir))/*.pid)\"\n"
        return out
    }

    /// The lines the demo ends with: truthful about whether the services still run, and how to
    /// reach them with the CLI.
    static func closingHints(dir: String, services: [DemoServiceLine], keepRunning: Bool, quarantineCode: String?) -> [String] {
        let q = RetryHint.quoted
        var out: [String] = []
        let example = "bangfu quarantine list" + (quarantineCode.map { " --code \($0)" } ?? "")
        if keepRunning {
            out.append("The services keep running until Ctrl-C (or SIGTERM). Point the CLI at them in another shell:")
            out.append("  . \(q(dir + "/bangfu-env.sh"))        # or:")
            for s in services {
                let u = s.name.uppercased()
                out.append("  export BANGFU_\(u)_INTAKE=\(s.intake) BANGFU_\(u)_REPLAY=\(s.replay) BANGFU_\(u)_FEED=\(s.feed)")
            }
            out.append("  bangfu status --all")
            out.append("  \(example)")
            return out
        }
        out.append("The services are stopped now; their state stays in \(dir).")
        out.append("To look at it with the CLI, start them again on it and point the CLI at them:")
        out.append("  sh \(q(dir + "/start-services.sh"))     # starts all four in the background:")
        for s in services { out.append("    " + s.commandLine.map(q).joined(separator: " ")) }
        out.append("  . \(q(dir + "/bangfu-env.sh"))          # exports BANGFU_<SERVICE>_INTAKE, _REPLAY, _FEED")
        out.append("  bangfu status --all")
        out.append("  \(example)")
        out.append("  kill $(cat \(q(dir))/*.pid)              # stops them again")
        out.append("(or run the demo with --keep-running: it leaves them up until Ctrl-C)")
        return out
    }
}
