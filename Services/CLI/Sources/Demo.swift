import BangfuTesting
import Bus
import Foundation
import ISO20022
import Models
import Policy

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

    public init() {}
}

/// `bangfu demo`: the pipeline on a synthetic county, with the real executables as separate
/// processes on `ipc://` endpoints and the simulated clock. Today it runs the registry (名录库):
/// facts in, profiles out, bad records quarantined; the matcher, notifier and payments join it
/// as they land.
public enum DemoCommand {
    public static func run(options: DemoOptions, console: Console) async throws -> Int32 {
        let fm = FileManager.default
        let dir = URL(fileURLWithPath: options.directory, relativeTo: URL(fileURLWithPath: fm.currentDirectoryPath)).standardizedFileURL
            .path
        try? fm.removeItem(atPath: dir)
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let bin =
            options.binDirectory
            ?? URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path
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
        let notifier = DemoProcess(
            name: "notifier", binary: bin + "/bangfu-notifier", stateDir: dir + "/notifier", socketDir: socketDir,
            logPath: dir + "/notifier.log")
        try notifier.start(extra: [
            "--simulated-clock", "--registry-feed", registry.endpoint("feed"), "--registry-replay", registry.endpoint("replay"),
            "--matcher-feed", matcher.endpoint("feed"), "--matcher-replay", matcher.endpoint("replay"), "--payments-feed",
            payments.endpoint("feed"),
            "--payments-replay", payments.endpoint("replay"), "--board-dir", dir + "/board", "--reports-dir", dir + "/reports",
        ])
        defer { notifier.stopOrKill() }
        for p in [payments, notifier] {
            guard try await p.waitReady(context: context) else {
                throw CLIError("bangfu-\(p.name) did not start; see \(dir)/\(p.name).log", exitCode: 1)
            }
        }
        console.line("  started bangfu-payments (pid \(payments.pid)) and bangfu-notifier (pid \(notifier.pid))")

        // Facts from every agency, as they would arrive.
        let county = SyntheticCounty(seed: options.seed, merchants: options.merchants)
        var events: [OutgoingEvent] = []
        events.reserveCapacity(options.merchants * 5)
        for i in 0..<options.merchants {
            for e in county.facts(of: i) { events.append(OutgoingEvent(e)) }
        }
        console.line(
            "  generated \(Format.grouped(events.count)) facts from registration, statistics, tax, social insurance, housing, health, emergency, credit and bank feeds"
        )

        var clientOptions = IntakeClientOptions()
        clientOptions.window = options.window
        clientOptions.timeoutMs = 30_000
        let endpoint = registry.endpoint("intake")
        let progress = console.progress
        let total = events.count
        let snapshot = events
        let copts = clientOptions
        let started = DispatchTime.now().uptimeNanoseconds
        let results = try await OwnerThread.run {
            let client = IntakeClient(context: context, endpoint: endpoint, options: copts)
            defer { client.close() }
            var meter = progress.map { ProgressMeter(total: total, draw: $0) }
            var lastTenth = 0
            let r = try client.publish(snapshot) { done, _ in
                meter?.advance(to: done)
                if progress == nil, done * 10 / total > lastTenth {
                    lastTenth = done * 10 / total
                    console.line("  published \(lastTenth * 10)%")
                }
            }
            meter?.finish(at: total)
            return r
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        var accepted = 0
        var duplicate = 0
        var rejected: [String: Int] = [:]
        var unanswered = 0
        for r in results {
            switch r.ack?.status {
            case .accepted?: accepted += 1
            case .duplicate?: duplicate += 1
            case .rejected?: rejected[r.ack?.rejection?.code.rawValue ?? "?", default: 0] += 1
            case nil: unanswered += 1
            }
        }
        console.line(
            "  intake: \(Format.grouped(accepted)) accepted, \(duplicate) duplicate, \(rejected.values.reduce(0, +)) rejected, \(unanswered) unacknowledged in \(String(format: "%.1f", seconds)) s (\(Int(Double(total) / max(seconds, 0.001)))/s)"
        )
        for (code, n) in rejected.sorted(by: { $0.key < $1.key }) {
            console.line("    rejected \(code): \(n)  (kept in quarantine: bangfu quarantine list --code \(code))")
        }

        // Read the profiles back from the feed, as any downstream service would.
        let replayEP = registry.endpoint("replay")
        let profiles = try await OwnerThread.run { () -> [String: JSON] in
            var latest: [String: JSON] = [:]
            var after: UInt64 = 0
            while let page = try QueryClient.replay(context: context, endpoint: replayEP, after: after, max: 5_000), !page.events.isEmpty {
                for e in page.events where e.type == "merchant.profiled" {
                    if let s = e.subject, let d = e.data { latest[s] = d }
                }
                after = page.events.last?.sequenceNumber ?? after
                if after >= page.last { break }
            }
            return latest
        }
        var sizes: [String: Int] = [:]
        var sectors: [String: Int] = [:]
        var priority = 0
        var service = 0
        var stateLeases = 0
        var disqualified = 0
        var flagged = 0
        for p in profiles.values {
            sizes[p["tags"]?["size"]?.stringValue ?? "?", default: 0] += 1
            sectors[p["tags"]?["sector"]?.stringValue ?? "?", default: 0] += 1
            if p["tags"]?["priority_sector"]?.boolValue == true { priority += 1 }
            if p["tags"]?["service_industry"]?.boolValue == true { service += 1 }
            if p["disqualified"]?.boolValue == true { disqualified += 1 }
            if !(p["credit_flags"]?.arrayValue?.isEmpty ?? true) { flagged += 1 }
            let leases = p["leases"]?.arrayValue ?? []
            if leases.contains(where: { ["state_enterprise", "government"].contains($0["root_lessor"]?["ownership"]?.stringValue ?? "") }) {
                stateLeases += 1
            }
        }
        let status = try QueryClient.request(context: context, endpoint: replayEP, ["op": "status"])?.last
        console.line("")
        console.line(
            "名录库 registry: \(Format.grouped(profiles.count)) merchant profiles (feed sequence \(status?["last"]?.stringValue ?? "?"))")
        console.line("  size (MIIT 2011): " + sizes.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        console.line(
            "  sectors: " + sectors.sorted { $0.value > $1.value }.prefix(8).map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        console.line("  service industry \(service), priority sectors \(priority), renting state property \(stateLeases)")
        console.line("  credit-flagged \(flagged), disqualified for fraud \(disqualified)")
        console.line(
            "  quarantined: \(status?["quarantined"]?.intValue ?? 0) bad records, by code \(status?["quarantined_by_code"]?.serialized() ?? "{}")"
        )

        // 政策匹配: publish the seed programmes, let merchants apply, read the entitlements.
        let matched = try await DemoMatcher.run(
            context: context, matcher: matcher, registry: registry, county: county, options: options, console: console)
        // 公示 → 审核 → 拨付 → 回单 → 月度评.
        let paid = try await DemoPayout.run(
            context: context, matcher: matcher, notifier: notifier, payments: payments, dir: dir, console: console)
        console.line("")
        console.line("Board (公示):        \(dir)/board/index.html (serve the directory with any static web server)")
        console.line("Payment files:       \(dir)/payment-files/ (pain.001.001.09, lessor and agency instructions)")
        console.line("Bank returns:        \(dir)/bank-returns/processed/")
        console.line("Notifications:       \(dir)/notifier/notifications.jsonl")
        console.line("State and logs:      \(dir)/{registry,matcher,payments,notifier}/, \(dir)/*.log")
        let wall = Double(DispatchTime.now().uptimeNanoseconds - demoStarted) / 1e9
        console.line(
            "Wall time \(String(format: "%.1f", wall)) s; peak memory: "
                + [registry, matcher, payments, notifier].map { "\($0.name) \($0.peakRSSMiB()) MiB" }.joined(separator: ", "))
        console.flush()
        return unanswered == 0 && accepted > 0 && matched && paid ? 0 : 1
    }
}

/// A service executable started by the demo.
final class DemoProcess: @unchecked Sendable {
    let name: String
    let binary: String
    let stateDir: String
    let socketDir: String
    let logPath: String
    var process: Process?

    init(name: String, binary: String, stateDir: String, socketDir: String, logPath: String) {
        self.name = name
        self.binary = binary
        self.stateDir = stateDir
        self.socketDir = socketDir
        self.logPath = logPath
    }

    var pid: Int32 { process?.processIdentifier ?? 0 }

    func endpoint(_ which: String) -> String { "ipc://\(socketDir)/\(name)-\(which)" }

    func start(extra: [String] = []) throws {
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw CLIError("\(binary) is not built (build it with `swift build -c release`)", exitCode: 1)
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments =
            ["--state-dir", stateDir, "--intake", endpoint("intake"), "--feed", endpoint("feed"), "--replay", endpoint("replay")] + extra
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        p.standardOutput = log
        p.standardError = log
        try p.run()
        process = p
    }

    func waitReady(context: ZContext) async throws -> Bool {
        let ep = endpoint("replay")
        let p = process
        return try await OwnerThread.run {
            for _ in 0..<300 {
                if let p, !p.isRunning { return false }
                if (try? QueryClient.replay(context: context, endpoint: ep, after: 0, max: 0, timeoutMs: 200)) ?? nil != nil { return true }
            }
            return false
        }
    }

    /// The process's peak resident memory (VmHWM), in MiB.
    func peakRSSMiB() -> Int {
        guard let pid = process?.processIdentifier, let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") })
        else { return 0 }
        return (Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) / 1024
    }

    func stopOrKill() {
        guard let p = process, p.isRunning else { return }
        p.terminate()
        p.waitUntilExit()
    }
}

/// The matcher stage of the demo.
enum DemoMatcher {
    static func run(
        context: ZContext, matcher: DemoProcess, registry: DemoProcess, county: SyntheticCounty, options: DemoOptions, console: Console
    ) async throws -> Bool {
        let fm = FileManager.default
        guard let files = try? fm.contentsOfDirectory(atPath: options.policiesDirectory).filter({ $0.hasSuffix(".yaml") }).sorted(),
            !files.isEmpty
        else {
            console.line("  no policy files in \(options.policiesDirectory): the matcher stage is skipped (run from the repository root)")
            return true
        }
        var policies: [OutgoingEvent] = []
        var titles: [String: String] = [:]
        var windows: [(id: String, until: String)] = []
        for f in files {
            let yaml = try String(contentsOfFile: options.policiesDirectory + "/" + f, encoding: .utf8)
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
        let intake = matcher.endpoint("intake")
        let published = try await IntakeClient.publish(context: context, endpoint: intake, events: policies)
        let ok = published.filter { $0.ack?.status == .accepted || $0.ack?.status == .duplicate }.count
        console.line("  published \(ok)/\(policies.count) policies: \(titles.keys.sorted().joined(separator: ", "))")

        // Applications: most merchants apply to the programmes that need one, on time; a few
        // apply a second after the deadline and are refused (超过时限不再受理).
        var applications: [OutgoingEvent] = []
        for i in 0..<county.merchants where i % 10 < 7 {
            let u = county.uscc(i)
            for w in windows {
                let late = i % 97 == 0
                let day = CivilDate.parse(w.until)!
                let at = late ? "\(day.adding(days: 1))T00:00:01+08:00" : "\(day)T10:00:00+08:00"
                applications.append(
                    OutgoingEvent(
                        CloudEvent(
                            id: "application/\(w.id)/\(u)", source: "/portal/xuchang", type: "application.submitted", subject: u,
                            data: ["uscc": .string(u), "policy_id": .string(w.id), "submitted_at": .string(at), "documents": ["申请书.pdf"]])))
            }
        }
        var options2 = IntakeClientOptions()
        options2.timeoutMs = 60_000
        let applied = try await IntakeClient.publish(context: context, endpoint: intake, events: applications, options: options2)
        let lateCount = applied.filter { $0.ack?.rejection?.code == .late }.count
        let acceptedApps = applied.filter { $0.ack?.status == .accepted }.count
        console.line("  applications: \(acceptedApps) taken, \(lateCount) refused as late (after 24:00 CST of the last day)")

        // Wait until the matcher has applied the registry's whole feed.
        let registryLast =
            try QueryClient.request(context: context, endpoint: registry.endpoint("replay"), ["op": "status"])?.last?["last"]?
            .stringValue ?? "0"
        while true {
            let s = try await OwnerThread.run {
                try QueryClient.request(context: context, endpoint: matcher.endpoint("replay"), ["op": "status"])?.last
            }
            if s?["inbox"]?["registry"]?.stringValue == registryLast { break }
        }
        // Fold the matcher's feed: the last state of every entitlement.
        let replayEP = matcher.endpoint("replay")
        let final = try await OwnerThread.run { () -> [String: JSON] in
            var latest: [String: JSON] = [:]
            var after: UInt64 = 0
            while let page = try QueryClient.replay(context: context, endpoint: replayEP, after: after, max: 5_000), !page.events.isEmpty {
                for e in page.events { if let id = e.data?["entitlement_id"]?.stringValue { latest[id] = e.data } }
                after = page.events.last?.sequenceNumber ?? after
                if after >= page.last { break }
            }
            return latest
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
            let p = e["policy_id"]?.stringValue ?? "?"
            var r = rows[p] ?? Row()
            switch e["state"]?.stringValue {
            case "proposed"?:
                r.proposed += 1
                r.fen += e["amount_fen"]?.intValue ?? 0
            case "approved"?:
                r.approved += 1
                r.fen += e["amount_fen"]?.intValue ?? 0
            case "incomplete"?: r.incomplete += 1
            case "revoked"?: r.revoked += 1
            default: break
            }
            rows[p] = r
        }
        console.line("")
        console.line("政策匹配 matcher: \(final.count) entitlements")
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
    static func status(_ context: ZContext, _ p: DemoProcess) async throws -> JSON {
        try await OwnerThread.run {
            try QueryClient.request(context: context, endpoint: p.endpoint("replay"), ["op": "status"])?.last ?? [:]
        }
    }

    static func query(_ context: ZContext, _ p: DemoProcess, _ req: JSON) async throws -> JSON {
        try await OwnerThread.run {
            try QueryClient.request(context: context, endpoint: p.endpoint("replay"), req, timeoutMs: 60_000)?.last ?? [:]
        }
    }

    /// Waits until `downstream` has applied `upstream`'s whole feed.
    static func settle(_ context: ZContext, _ downstream: DemoProcess, follows upstream: DemoProcess) async throws {
        while true {
            let last = try await status(context, upstream)["last"]?.stringValue ?? "0"
            let cursor = try await status(context, downstream)["inbox"]?[upstream.name]?.stringValue ?? "0"
            if cursor == last { return }
        }
    }

    static func send(_ context: ZContext, _ p: DemoProcess, _ type: String, _ data: JSON) async throws -> Ack? {
        let e = CloudEvent(id: UUID().uuidString, source: "/bangfu/demo", type: type, data: data)
        var o = IntakeClientOptions()
        o.timeoutMs = 120_000
        return try await IntakeClient.publish(context: context, endpoint: p.endpoint("intake"), events: [OutgoingEvent(e)], options: o)
            .first?.ack
    }

    static func run(
        context: ZContext, matcher: DemoProcess, notifier: DemoProcess, payments: DemoProcess, dir: String, console: Console
    ) async throws -> Bool {
        try await settle(context, notifier, follows: matcher)
        let rounds = try await query(context, notifier, ["op": "round.list"])["items"]?.arrayValue ?? []
        console.line("")
        console.line("公示与通知 notifier: \(rounds.count) disclosure rounds opened; letting 8 days pass on the simulated clock")
        _ = try await send(context, notifier, "clock.advanced", ["seconds": .int(8 * 86_400)])
        while try await query(context, notifier, ["op": "round.list"])["items"]?.arrayValue?.contains(where: {
            $0["state"]?.stringValue == "open"
        }) == true {
            await Task.yield()
        }
        try await settle(context, matcher, follows: notifier)
        // Programmes without auto-approval are reviewed by an operator (here, the demo).
        var reviewed = 0
        while true {
            let cleared =
                try await query(context, matcher, ["op": "entitlement.list", "state": "cleared", "max": 1_000])["items"]?.arrayValue ?? []
            if cleared.isEmpty { break }
            let ids = cleared.compactMap { $0["id"] }
            _ = try await send(context, matcher, "review.approved", ["entitlement_ids": .array(ids), "by": "区财政局（演示审核）"])
            reviewed += ids.count
        }
        console.line("  disclosure passed; \(reviewed) entitlements approved by review, the rest by their programmes' auto-approval")

        // 支付路由: fund the pools, batch, and feed back the bank's return.
        try await settle(context, payments, follows: matcher)
        _ = try await send(
            context, payments, "pool.funded", ["pool": "unemployment-insurance-fund", "source": "central", "amount_fen": 50_000_000_000])
        _ = try await send(
            context, payments, "pool.funded", ["pool": "flood-relief-2021", "source": "special_bond", "amount_fen": 5_000_000])
        for channel in ["treasury", "lessor", "agency:utilities", "agency:social-insurance"] {
            _ = try await send(context, payments, "payments.batch", ["channel": .string(channel)])
        }
        let files = (try? FileManager.default.contentsOfDirectory(atPath: dir + "/payment-files").sorted()) ?? []
        var returned = 0
        var failed = 0
        try FileManager.default.createDirectory(atPath: dir + "/bank-returns", withIntermediateDirectories: true)
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
            let xml = Pain002.xml(originalMessageID: batch.messageID, messageID: "RET-" + batch.messageID, lines: lines)
            try xml.write(toFile: dir + "/bank-returns/RET-\(f)", atomically: true, encoding: .utf8)
        }
        // The inbox is read once a second; wait until every treasury payment has its answer.
        while true {
            let summary = try await query(context, payments, ["op": "payment.summary"])["items"]?.arrayValue ?? []
            let waiting = summary.contains { $0["state"]?.stringValue == "instructed" && $0["channel"]?.stringValue == "treasury" }
            if returned == 0 || !waiting { break }
            await Task.yield()
        }
        let summary = try await query(context, payments, ["op": "payment.summary"])["items"]?.arrayValue ?? []
        console.line("")
        console.line("支付路由 payments: \(files.count) batch files; bank return: \(returned - failed) settled, \(failed) failed")
        console.line(Format.pad("programme", 28) + Format.pad("state", 22) + Format.pad("count", 8) + "amount")
        for r in summary {
            let state = r["state"].text + (r["hold_code"].map { $0.isNull ? "" : " (\($0.text))" } ?? "")
            console.line(
                Format.pad(r["policy_id"].text, 28) + Format.pad(state, 22) + Format.pad(r["count"].text, 8)
                    + Money.yuan(r["amount_fen"]?.intValue ?? 0))
        }
        let ledger = try await query(context, payments, ["op": "ledger.check"])
        let audit = try await query(context, payments, ["op": "audit.verify"])
        console.line(
            "  ledger check: \(ledger["ok"]?.boolValue == true ? "OK (balances sum to zero)" : "BROKEN"); audit chain: \(audit["ok"]?.boolValue == true ? "OK, \(audit["entries"].text) links" : "BROKEN")"
        )
        // 月度评.
        try await settle(context, notifier, follows: matcher)
        let clock = try await status(context, notifier)["clock"]?.stringValue ?? ""
        let month = String(clock.prefix(7))
        let report = try await query(context, notifier, ["op": "report.monthly", "month": .string(month)])
        console.line("")
        console.line("月度评 monthly evaluation \(month): \(report["html"].text)")
        return ledger["ok"]?.boolValue == true && audit["ok"]?.boolValue == true
    }
}
