import ArgumentParser
import Bus
import Foundation
import Models

/// `--id` for every verb that changes state: the event's id, so that a command whose answer was
/// lost can be run again without taking effect twice (protocol.md §3.3: same `source` + `id` and
/// the same content is `duplicate`).
struct EventIDOption: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "The event's id (default: a new one, printed when no answer comes). Give the id an unanswered attempt printed to retry it safely.",
            valueName: "ID"))
    var id: String?

    func validate() throws {
        if let id {
            if id.trimmingCharacters(in: .whitespaces).isEmpty { throw ValidationError("--id must not be empty") }
            if id.utf8.count > 256 { throw ValidationError("--id must be at most 256 bytes (UTF-8)") }
        }
    }
}

/// The command line to print when a state-changing command got no answer: the same command with
/// `--id` (and whatever else must not change on a retry, such as `--submitted-at`).
public struct RetryHint: Sendable, Equatable {
    /// The command's arguments as given, without the executable.
    public var arguments: [String]
    /// Options to add unless the command line already has them (name, value).
    public var pinned: [(String, String)] = []

    public init(arguments: [String]) { self.arguments = arguments }

    /// The running process's command line.
    public static func current() -> RetryHint { RetryHint(arguments: Array(CommandLine.arguments.dropFirst())) }

    public static func == (a: RetryHint, b: RetryHint) -> Bool {
        a.arguments == b.arguments && a.pinned.map(\.0) == b.pinned.map(\.0) && a.pinned.map(\.1) == b.pinned.map(\.1)
    }

    /// `pin("--submitted-at", value)`: the retry must carry this value.
    public func pinning(_ option: String, _ value: String) -> RetryHint {
        var r = self
        r.pinned.append((option, value))
        return r
    }

    /// `bangfu …` with any `--id` of the original replaced by `--id ID`, shell-quoted.
    public func command(id: String) -> String {
        var out: [String] = []
        var k = 0
        while k < arguments.count {
            let a = arguments[k]
            if a == "--id" {
                k += 2
                continue
            }
            if a.hasPrefix("--id=") {
                k += 1
                continue
            }
            out.append(a)
            k += 1
        }
        for (option, value) in pinned where !out.contains(where: { $0 == option || $0.hasPrefix(option + "=") }) {
            out += [option, value]
        }
        out += ["--id", id]
        return (["bangfu"] + out).map(Self.quoted).joined(separator: " ")
    }

    /// A shell word: as it is when it is plain, in single quotes otherwise.
    static func quoted(_ s: String) -> String {
        let plain =
            !s.isEmpty
            && s.unicodeScalars.allSatisfy { c in
                (c.isASCII && (CharacterSet.alphanumerics.contains(c) || "@%+=:,./_-".unicodeScalars.contains(c)))
            }
        return plain ? s : "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}

/// Sending one operator event and reporting its ack.
enum OperatorEvent {
    /// The source of the events an operator's commands publish: `/bangfu/cli/<operator>`.
    static var source: String { "/bangfu/cli/\(PaymentsCommands.operatorName())" }

    /// A fresh id for a command that was given none.
    static func newID() -> String { UUID().uuidString.lowercased() }

    /// Publishes `event` (two re-sends with the same id) and prints its ack. No `time` is ever
    /// set on an operator's event: a retry with `--id` then has the same content, and is
    /// `duplicate` if the first attempt was applied. Returns the exit code and the ack.
    static func send(
        context: ZContext, target: ServiceTarget, event: CloudEvent, timeoutMs: Int, console: Console, retry: RetryHint?,
        describe: String? = nil
    ) async throws -> (Int32, Ack?) {
        var options = IntakeClientOptions()
        options.timeoutMs = timeoutMs
        options.retries = 2
        options.curve = CLICurve.keys(for: target.intake)
        let results: [PublishResult]
        do {
            results = try await IntakeClient.publish(
                context: context, endpoint: target.intake, events: [OutgoingEvent(event)], options: options)
        } catch {
            throw CLIError("publishing to \(target.intake) failed: \(error)")
        }
        guard let ack = results.first?.ack else {
            console.flush()
            console.error("bangfu: \(target.service) did not acknowledge \(event.type) \(event.id) on \(target.intake)")
            console.error("  It may or may not have been applied. Run it again with the same id: it is applied at most once.")
            if let retry { console.error("  retry: \(retry.command(id: event.id))") }
            return (ExitCodes.unacknowledged, nil)
        }
        switch ack.status {
        case .accepted:
            console.line("\(event.type) accepted: \(event.id)" + (describe.map { " — \($0)" } ?? ""))
            // What the service says the event left as it was (e.g. a reviewer approving again).
            for line in ack.note?.split(separator: "\n") ?? [] { console.line("  \(line)") }
            return (ExitCodes.ok, ack)
        case .duplicate:
            console.line("\(event.type) duplicate: \(event.id) (already applied by an earlier attempt; nothing was done twice)")
            return (ExitCodes.ok, ack)
        case .rejected:
            let r = ack.rejection
            console.line(
                "\(event.type) rejected: \(r?.code.rawValue ?? "?")" + (r?.field.map { " (\($0))" } ?? "") + ": \(r?.message ?? "")")
            return (ExitCodes.rejected, ack)
        }
    }
}

/// Endpoint selection for the notifier's verbs.
struct NotifierEndpointOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The notifier's intake endpoint.", valueName: "EP"))
    var intake: String?

    @Option(help: ArgumentHelp("The notifier's replay endpoint.", valueName: "EP"))
    var replay: String?

    @Option(name: .customLong("timeout-ms"), help: "How long to wait for the notifier.")
    var timeoutMs: Int = 10_000

    func target() throws(CLIError) -> ServiceTarget {
        try EndpointResolver.resolve(service: "notifier", intake: intake, replay: replay)
    }
}

/// `bangfu review`, `bangfu objection`, `bangfu policy withdraw`, `bangfu entitlement list|show`.
public enum OperatorCommands {
    /// `review.approved` / `review.rejected` to the matcher (`entitlement_ids`, `by`, `reason`),
    /// then each entitlement's state as the matcher now has it.
    public static func review(
        context: ZContext, target: ServiceTarget, approve: Bool, entitlements: [String], by: String, reason: String?, id: String? = nil,
        timeoutMs: Int, console: Console, retry: RetryHint? = nil
    ) async throws -> Int32 {
        let ids = entitlements.filter { !$0.isEmpty }
        guard !ids.isEmpty else { throw CLIError("give at least one --entitlement ID", exitCode: ExitCodes.usage) }
        guard !by.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw CLIError("--by must name who decides (a policy with reviewers: one of them)", exitCode: ExitCodes.usage)
        }
        var data = JSONObject()
        data["entitlement_ids"] = .array(ids.map { .string($0) })
        data["by"] = .string(by)
        if let reason { data["reason"] = .string(reason) }
        let event = CloudEvent(
            id: id ?? OperatorEvent.newID(), source: OperatorEvent.source, type: approve ? "review.approved" : "review.rejected",
            data: .object(data))
        let (code, ack) = try await OperatorEvent.send(
            context: context, target: target, event: event, timeoutMs: timeoutMs, console: console, retry: retry)
        guard let ack, ack.status != .rejected else { return code }
        // What the decision did, as far as the matcher says now (best effort: the decision stands);
        // an entitlement the ack's note already names as unchanged is not repeated.
        let noted = Set((ack.note ?? "").split(separator: "\n").compactMap { $0.split(separator: ":").first.map(String.init) })
        for e in ids where !noted.contains(e) {
            guard
                let a = try? await Query.ask(
                    context: context, endpoint: target.replay, ["op": "entitlement.show", "id": .string(e)], timeoutMs: timeoutMs),
                let ent = a["entitlement"]
            else { continue }
            console.line("  \(e): \(ent["state"].text)" + (ent["reason"].map { $0.isNull ? "" : " (\($0.text))" } ?? ""))
        }
        return code
    }

    /// `objection.filed` to the notifier (during the disclosure window; `late` after it).
    public static func fileObjection(
        context: ZContext, target: ServiceTarget, entitlement: String, reason: String, contact: String?, id: String? = nil,
        timeoutMs: Int, console: Console, retry: RetryHint? = nil
    ) async throws -> Int32 {
        var data = JSONObject()
        data["entitlement_id"] = .string(entitlement)
        data["reason"] = .string(reason)
        if let contact { data["contact"] = .string(contact) }
        let event = CloudEvent(id: id ?? OperatorEvent.newID(), source: OperatorEvent.source, type: "objection.filed", data: .object(data))
        return try await OperatorEvent.send(
            context: context, target: target, event: event, timeoutMs: timeoutMs, console: console, retry: retry
        ).0
    }

    /// `objection.resolved` to the notifier: `upheld` revokes the entitlement, `dismissed` lets it clear.
    public static func resolveObjection(
        context: ZContext, target: ServiceTarget, entitlement: String, outcome: String, by: String, note: String?, id: String? = nil,
        timeoutMs: Int, console: Console, retry: RetryHint? = nil
    ) async throws -> Int32 {
        guard outcome == "upheld" || outcome == "dismissed" else {
            throw CLIError("--outcome must be upheld or dismissed, got \(outcome)", exitCode: ExitCodes.usage)
        }
        var data = JSONObject()
        data["entitlement_id"] = .string(entitlement)
        data["outcome"] = .string(outcome)
        data["by"] = .string(by)
        if let note { data["note"] = .string(note) }
        let event = CloudEvent(
            id: id ?? OperatorEvent.newID(), source: OperatorEvent.source, type: "objection.resolved", data: .object(data))
        return try await OperatorEvent.send(
            context: context, target: target, event: event, timeoutMs: timeoutMs, console: console, retry: retry
        ).0
    }

    /// `policy.withdrawn` to the matcher.
    public static func withdrawPolicy(
        context: ZContext, target: ServiceTarget, policy: String, reason: String, id: String? = nil, timeoutMs: Int, console: Console,
        retry: RetryHint? = nil
    ) async throws -> Int32 {
        let event = CloudEvent(
            id: id ?? OperatorEvent.newID(), source: OperatorEvent.source, type: "policy.withdrawn",
            data: ["policy_id": .string(policy), "reason": .string(reason)])
        let (code, ack) = try await OperatorEvent.send(
            context: context, target: target, event: event, timeoutMs: timeoutMs, console: console, retry: retry)
        guard let ack, ack.status != .rejected else { return code }
        // What the withdrawal did, as the matcher counts it now (best effort: the withdrawal stands).
        guard
            let a = try? await Query.ask(
                context: context, endpoint: target.replay, ["op": "entitlement.summary", "policy": .string(policy)], timeoutMs: timeoutMs),
            a["op"]?.stringValue == "entitlement.summary"
        else {
            console.line("  (what it did: bangfu entitlement list --policy \(policy))")
            return code
        }
        for line in withdrawalLines(a) { console.line("  " + line) }
        return code
    }

    /// What a withdrawal did, from `entitlement.summary`: the revision withdrawn, the
    /// entitlements it revoked, and those it left as they were (money out, or with the lessor).
    static func withdrawalLines(_ a: JSON) -> [String] {
        let policy = a["policy_id"].text
        guard let w = a["withdrawal"], w.objectValue != nil else { return ["\(policy) has no withdrawal on record"] }
        var lines = [
            "withdrew \(policy) revision \(w["revision"].text) at \(w["withdrawn_at"].text)"
                + (w["reason"].map { $0.isNull ? "" : " (\($0.text))" } ?? "")
        ]
        let revoked = w["revoked"]?.intValue ?? 0
        lines.append("revoked: \(revoked) entitlement\(revoked == 1 ? "" : "s") (policy_withdrawn)")
        // Left alone by a withdrawal: money instructed or paid (payments and an operator deal with
        // it), and rent waivers held awaiting their lessor, who may still carry them out.
        let states = a["states"]?.objectValue ?? JSONObject()
        var left: [String] = []
        for s in ["instructed", "paid", "clawed_back"] {
            if let n = states[s]?.intValue, n > 0 { left.append("\(n) \(s)") }
        }
        if let n = a["held_lessor_unconfirmed"]?.intValue, n > 0 { left.append("\(n) held awaiting the lessor's confirmation") }
        lines.append("left as they were: " + (left.isEmpty ? "none" : left.joined(separator: ", ")))
        return lines
    }

    public struct EntitlementFilter: Sendable {
        public var policy: String?
        public var state: String?
        public var uscc: String?
        public var max = 100
        public init() {}
    }

    /// `entitlement.list` as a table (or JSON lines).
    public static func listEntitlements(
        context: ZContext, target: ServiceTarget, filter: EntitlementFilter, json: Bool, timeoutMs: Int, console: Console
    ) async throws -> Int32 {
        // Pages of at most 1,000, each after the last id of the one before.
        var items: [JSON] = []
        var after: String?
        while items.count < filter.max {
            var req = JSONObject()
            req["op"] = "entitlement.list"
            if let p = filter.policy { req["policy"] = .string(p) }
            if let s = filter.state { req["state"] = .string(s) }
            if let u = filter.uscc { req["uscc"] = .string(u) }
            if let after { req["after"] = .string(after) }
            let ask = Swift.min(1_000, filter.max - items.count)
            req["max"] = .int(Int64(ask))
            let a = try await Query.require(context: context, target: target, .object(req), timeoutMs: timeoutMs)
            let page = a["items"]?.arrayValue ?? []
            items += page
            guard page.count == ask, let last = page.last?["id"]?.stringValue else { break }
            after = last
        }
        if json {
            for i in items { console.line(i.serialized()) }
            return ExitCodes.ok
        }
        if items.isEmpty {
            console.line("no entitlements")
            return ExitCodes.ok
        }
        let header = ["ENTITLEMENT", "POLICY", "REV", "USCC", "STATE", "AMOUNT", "REASON"]
        let rows = items.map { i in
            [
                i["id"].text, i["policy_id"].text, i["policy_revision"].text, i["uscc"].text, i["state"].text,
                Money.yuan(i["approved_amount_fen"]?.intValue ?? i["amount_fen"]?.intValue ?? 0),
                // An incomplete one says what is missing (线上补报) when it has no other reason.
                Format.truncate(
                    i["reason"]?.stringValue
                        ?? (i["missing"]?.arrayValue).flatMap { $0.isEmpty ? nil : "missing: " + $0.map(\.text).joined(separator: ", ") }
                        ?? "-", 80),
            ]
        }
        Table.print(header: header, rows: rows, console: console)
        if items.count == filter.max {
            console.line("(at most \(filter.max) shown: narrow with --policy, --state or --uscc, or raise --max)")
        }
        return ExitCodes.ok
    }

    /// Who approved and who is awaited, from an entitlement's `reason` (`approved by A: why; B`,
    /// `approved by A; awaiting B, C`).
    public static func reviewers(reason: String?) -> (approvedBy: [String], awaiting: [String])? {
        guard let reason, reason.hasPrefix("approved by ") else { return nil }
        var rest = String(reason.dropFirst("approved by ".count))
        var awaiting: [String] = []
        if let r = rest.range(of: "; awaiting ") {
            awaiting = rest[r.upperBound...].components(separatedBy: ", ").filter { !$0.isEmpty }
            rest = String(rest[..<r.lowerBound])
        }
        return (rest.components(separatedBy: "; ").filter { !$0.isEmpty }, awaiting)
    }

    /// `entitlement.show`: the entitlement's fields, who approved it, its review flag.
    public static func showEntitlement(
        context: ZContext, target: ServiceTarget, id: String, json: Bool, timeoutMs: Int, console: Console
    ) async throws -> Int32 {
        let a = try await Query.require(
            context: context, target: target, ["op": "entitlement.show", "id": .string(id)], timeoutMs: timeoutMs)
        guard let e = a["entitlement"], e.objectValue != nil else {
            throw CLIError("\(target.service) answered entitlement.show without an entitlement")
        }
        if json {
            console.line(e.serialized())
            return ExitCodes.ok
        }
        func row(_ k: String, _ v: String) { console.line(Format.pad(k + ":", 17) + v) }
        row("entitlement", e["id"].text)
        row("policy", "\(e["policy_id"].text) revision \(e["policy_revision"].text)")
        row("merchant", e["uscc"].text)
        row("binding", e["binding"].text)
        row("state", e["state"].text)
        row("amount", Money.yuan(e["amount_fen"]?.intValue ?? 0))
        if let approved = e["approved_amount_fen"]?.intValue { row("approved amount", Money.yuan(approved)) }
        if e["priority"]?.boolValue == true { row("priority", "yes (paid first when a pool is short)") }
        if let missing = e["missing"]?.arrayValue, !missing.isEmpty { row("missing", missing.map(\.text).joined(separator: ", ")) }
        row("reason", e["reason"].text)
        if let review = e["review"], review.objectValue != nil {
            // The matcher's own record of the review: each reviewer's approval with who signed it.
            let approvals = review["approvals"]?.arrayValue ?? []
            row("reviewers", (review["reviewers"]?.arrayValue ?? []).map(\.text).joined(separator: ", "))
            for a in approvals {
                row("  approved", "\(a["reviewer"].text) — \(a["by"].text) at \(a["approved_at"].text)")
            }
            if approvals.isEmpty { row("  approved", "-") }
            if let waiting = review["awaiting"]?.arrayValue, !waiting.isEmpty {
                row("  awaiting", waiting.map(\.text).joined(separator: ", "))
            }
        } else if let r = reviewers(reason: e["reason"]?.stringValue) {
            row("approved by", r.approvedBy.isEmpty ? "-" : r.approvedBy.joined(separator: "; "))
            if !r.awaiting.isEmpty { row("awaiting", r.awaiting.joined(separator: ", ")) }
        }
        if let flag = e["review_flag"], !flag.isNull { row("REVIEW FLAG", flag.serialized()) }
        if let history = e["history"]?.arrayValue, !history.isEmpty {
            console.line("history:")
            for h in history {
                let detail = h["detail"]?.stringValue.map { "  " + $0 } ?? ""
                console.line("  \(h["at"].text)  \(Format.pad(h["step"].text, 12)) → \(Format.pad(h["state"].text, 11))\(detail)")
            }
        }
        console.line("(the clause-by-clause trace: --json, or bangfu explain --uscc \(e["uscc"].text) --policy \(e["policy_id"].text))")
        return ExitCodes.ok
    }
}

/// A plain text table: columns as wide as their widest cell, two spaces apart.
enum Table {
    static func print(header: [String], rows: [[String]], console: Console) {
        var widths = header.map(\.count)
        for r in rows { for (k, c) in r.enumerated() where k < widths.count { widths[k] = Swift.max(widths[k], c.count) } }
        func render(_ r: [String]) -> String {
            r.enumerated().map { k, c in k == r.count - 1 ? c : Format.pad(c, widths[k]) }.joined(separator: "  ")
        }
        console.line(render(header))
        for r in rows { console.line(render(r)) }
    }
}

// MARK: - Verbs

struct ReviewVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "review", abstract: "Approve or reject entitlements after disclosure (review.approved / review.rejected).",
        subcommands: [ReviewApproveVerb.self, ReviewRejectVerb.self])
}

struct ReviewOptions: ParsableArguments {
    @Option(name: .customLong("entitlement"), help: ArgumentHelp("An entitlement id (repeat for several: all or none).", valueName: "ID"))
    var entitlements: [String] = []
    @Option(help: "Who decides. A policy with reviewers needs one of them named here, e.g. \"经开区招商局 李科长\".")
    var by: String
    @Option(help: "Why (kept with the decision).") var reason: String?

    func validate() throws {
        if entitlements.isEmpty { throw ValidationError("give at least one --entitlement ID") }
        if by.trimmingCharacters(in: .whitespaces).isEmpty { throw ValidationError("--by must not be empty") }
    }
}

struct ReviewApproveVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "approve",
        abstract: "Approve cleared entitlements (a policy with reviewers: once each reviewer has approved).")
    @OptionGroup var review: ReviewOptions
    @OptionGroup var eventID: EventIDOption
    @OptionGroup var endpoints: MatcherEndpointOptions

    func run() async throws {
        try await execute { context, console in
            try await OperatorCommands.review(
                context: context, target: try endpoints.target(), approve: true, entitlements: review.entitlements, by: review.by,
                reason: review.reason, id: eventID.id, timeoutMs: endpoints.timeoutMs, console: console, retry: .current())
        }
    }
}

struct ReviewRejectVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reject", abstract: "Reject entitlements before payment: they are revoked (review_rejected).")
    @OptionGroup var review: ReviewOptions
    @OptionGroup var eventID: EventIDOption
    @OptionGroup var endpoints: MatcherEndpointOptions

    func run() async throws {
        try await execute { context, console in
            try await OperatorCommands.review(
                context: context, target: try endpoints.target(), approve: false, entitlements: review.entitlements, by: review.by,
                reason: review.reason, id: eventID.id, timeoutMs: endpoints.timeoutMs, console: console, retry: .current())
        }
    }
}

struct ObjectionVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "objection", abstract: "Objections to a disclosed entitlement (公示异议), at the notifier.",
        subcommands: [ObjectionFileVerb.self, ObjectionResolveVerb.self])
}

struct ObjectionFileVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "file",
        abstract: "Record an objection during the disclosure window (objection.filed); it holds the entitlement until resolved.",
        discussion: "After the window has closed the notifier answers late (exit 2).")
    @Option(help: ArgumentHelp("The entitlement objected to.", valueName: "ID")) var entitlement: String
    @Option(help: "The objection (at most 2,000 characters).") var reason: String
    @Option(help: "How to reach whoever objected (optional).") var contact: String?
    @OptionGroup var eventID: EventIDOption
    @OptionGroup var endpoints: NotifierEndpointOptions

    func validate() throws {
        if reason.trimmingCharacters(in: .whitespaces).isEmpty { throw ValidationError("--reason must not be empty") }
        if reason.count > 2_000 { throw ValidationError("--reason is longer than 2,000 characters") }
    }

    func run() async throws {
        try await execute { context, console in
            try await OperatorCommands.fileObjection(
                context: context, target: try endpoints.target(), entitlement: entitlement, reason: reason, contact: contact,
                id: eventID.id, timeoutMs: endpoints.timeoutMs, console: console, retry: .current())
        }
    }
}

struct ObjectionResolveVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resolve",
        abstract: "Resolve the pending objection to an entitlement (objection.resolved): upheld revokes it, dismissed lets it clear.")
    @Option(help: ArgumentHelp("The entitlement.", valueName: "ID")) var entitlement: String
    @Option(help: "upheld or dismissed.") var outcome: String
    @Option(help: "Who resolves it.") var by: String
    @Option(help: "A note (kept with the resolution; an upheld objection's note is the revocation's reason).") var note: String?
    @OptionGroup var eventID: EventIDOption
    @OptionGroup var endpoints: NotifierEndpointOptions

    func validate() throws {
        if outcome != "upheld" && outcome != "dismissed" { throw ValidationError("--outcome must be upheld or dismissed") }
        if by.trimmingCharacters(in: .whitespaces).isEmpty { throw ValidationError("--by must not be empty") }
    }

    func run() async throws {
        try await execute { context, console in
            try await OperatorCommands.resolveObjection(
                context: context, target: try endpoints.target(), entitlement: entitlement, outcome: outcome, by: by, note: note,
                id: eventID.id, timeoutMs: endpoints.timeoutMs, console: console, retry: .current())
        }
    }
}

struct PolicyWithdrawVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "withdraw",
        abstract: "Withdraw a live policy (policy.withdrawn): its entitlements not yet paying out are revoked.")
    @Option(help: "The policy id.") var policy: String
    @Option(help: "Why it is withdrawn.") var reason: String
    @OptionGroup var eventID: EventIDOption
    @OptionGroup var endpoints: MatcherEndpointOptions

    func validate() throws {
        if reason.trimmingCharacters(in: .whitespaces).isEmpty { throw ValidationError("--reason must not be empty") }
    }

    func run() async throws {
        try await execute { context, console in
            try await OperatorCommands.withdrawPolicy(
                context: context, target: try endpoints.target(), policy: policy, reason: reason, id: eventID.id,
                timeoutMs: endpoints.timeoutMs, console: console, retry: .current())
        }
    }
}

struct EntitlementVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "entitlement", abstract: "Entitlements as the matcher has them.",
        subcommands: [EntitlementListVerb.self, EntitlementShowVerb.self])
}

struct EntitlementListVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List entitlements by id (at most --max).")
    @Option(help: "Only this policy's.") var policy: String?
    @Option(help: "Only in this state (proposed, disclosed, cleared, approved, instructed, held, paid, failed, revoked, …).")
    var state: String?
    @Option(help: "Only this merchant's.") var uscc: String?
    @Option(help: "At most this many (fetched 1,000 at a time).") var max: Int = 100
    @Flag(help: "One JSON object per line.") var json = false
    @OptionGroup var endpoints: MatcherEndpointOptions

    func validate() throws { if max < 1 { throw ValidationError("--max must be at least 1") } }

    func run() async throws {
        var f = OperatorCommands.EntitlementFilter()
        f.policy = policy
        f.state = state
        f.uscc = uscc
        f.max = max
        let filter = f
        try await execute { context, console in
            try await OperatorCommands.listEntitlements(
                context: context, target: try endpoints.target(), filter: filter, json: json, timeoutMs: endpoints.timeoutMs,
                console: console)
        }
    }
}

struct EntitlementShowVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "Show one entitlement: state, amount, reason, who approved it, review flag.")
    @Argument(help: "The entitlement id (ent-…).") var id: String
    @Flag(help: "Print it as JSON (with its trace).") var json = false
    @OptionGroup var endpoints: MatcherEndpointOptions

    func run() async throws {
        try await execute { context, console in
            try await OperatorCommands.showEntitlement(
                context: context, target: try endpoints.target(), id: id, json: json, timeoutMs: endpoints.timeoutMs, console: console)
        }
    }
}
