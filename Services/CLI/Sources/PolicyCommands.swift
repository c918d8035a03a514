import ArgumentParser
import Bus
import Foundation
import Models
import Policy

/// Endpoint selection for the matcher's verbs (same rules as `EndpointOptions`, matcher by default).
struct MatcherEndpointOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The matcher's intake endpoint.", valueName: "EP"))
    var intake: String?

    @Option(help: ArgumentHelp("The matcher's replay endpoint.", valueName: "EP"))
    var replay: String?

    @Option(name: .customLong("timeout-ms"), help: "How long to wait for the matcher.")
    var timeoutMs: Int = 10_000

    func target() throws(CLIError) -> ServiceTarget {
        try EndpointResolver.resolve(service: "matcher", intake: intake, replay: replay)
    }
}

/// `bangfu policy check|publish|list`, `bangfu explain`, `bangfu apply`.
public enum PolicyCommands {
    /// Compiles a policy file offline; prints `FILE:LINE:COLUMN: message` per error.
    public static func check(path: String, console: Console) -> (Int32, CompiledPolicy?) {
        guard let yaml = try? String(contentsOfFile: path, encoding: .utf8) else {
            console.error("bangfu: cannot read \(path)")
            return (ExitCodes.noInput, nil)
        }
        do {
            let p = try PolicyCompiler.compile(yaml: yaml)
            let d = p.document
            console.line(
                "\(path): OK — \(d.id) revision \(d.revision): \(d.title) [\(d.benefit.rawValue) via \(d.channel), per \(d.per.rawValue)]")
            return (ExitCodes.ok, p)
        } catch {
            for e in error.errors { console.line("\(path):\(e.line):\(e.column): \(e.message)") }
            console.line("\(path): \(error.errors.count) error\(error.errors.count == 1 ? "" : "s")")
            return (ExitCodes.failure, nil)
        }
    }

    public static func publish(
        context: ZContext, target: ServiceTarget, path: String, id: String? = nil, timeoutMs: Int, console: Console,
        retry: RetryHint? = nil
    ) async throws -> Int32 {
        let (code, compiled) = check(path: path, console: console)
        guard code == 0, let compiled, let yaml = try? String(contentsOfFile: path, encoding: .utf8) else { return code }
        let d = compiled.document
        // One id per revision and no `time`: re-publishing the same file is `duplicate`; changing
        // a published revision's text is a `conflict` (publish a new revision instead).
        let event = CloudEvent(
            id: id ?? "policy.published/\(d.id)/\(d.revision)", source: "/bangfu/cli", type: "policy.published",
            data: ["yaml": .string(yaml), "source_hash": .string(compiled.sourceHash)])
        return try await send(context: context, target: target, event: event, timeoutMs: timeoutMs, console: console, retry: retry)
    }

    static func send(
        context: ZContext, target: ServiceTarget, event: CloudEvent, timeoutMs: Int, console: Console, retry: RetryHint? = nil
    ) async throws -> Int32 {
        try await OperatorEvent.send(context: context, target: target, event: event, timeoutMs: timeoutMs, console: console, retry: retry).0
    }

    public static func list(context: ZContext, target: ServiceTarget, timeoutMs: Int, json: Bool, console: Console) async throws -> Int32 {
        let answer = try await Query.require(context: context, target: target, ["op": "policy.list"], timeoutMs: timeoutMs)
        let items = answer["items"]?.arrayValue ?? []
        if json {
            for i in items { console.line(i.serialized()) }
            return ExitCodes.ok
        }
        console.line(
            Format.pad("policy", 30) + Format.pad("rev", 5) + Format.pad("state", 12) + Format.pad("entitled", 10)
                + Format.pad("incomplete", 12) + "title")
        for i in items {
            console.line(
                Format.pad(i["policy_id"].text, 30) + Format.pad(i["revision"].text, 5) + Format.pad(i["state"].text, 12)
                    + Format.pad(i["entitled"].text, 10) + Format.pad(i["incomplete"].text, 12) + i["title"].text)
        }
        return ExitCodes.ok
    }

    public static func explain(
        context: ZContext, target: ServiceTarget, uscc: String, policy: String, timeoutMs: Int, json: Bool, console: Console
    ) async throws -> Int32 {
        let answer = try await Query.require(
            context: context, target: target, ["op": "explain", "uscc": .string(uscc), "policy": .string(policy)], timeoutMs: timeoutMs)
        if json {
            console.line(answer.serialized())
            return ExitCodes.ok
        }
        console.line(
            "\(answer["title"].text) (\(policy) revision \(answer["revision"].text)) — merchant \(uscc), profile version \(answer["profile_version"].text)"
        )
        if answer["requires_application"]?.boolValue == true {
            let until = answer["apply_until"].map { $0.isNull ? "" : "，申报截止 \($0.text) 24时" } ?? ""
            console.line(
                answer["applied"]?.boolValue == true
                    ? "申请 application: 已提出 submitted"
                    : "申请 application: 未提出 not submitted（本政策须申请 required\(until)）")
        }
        let determinations = answer["determinations"]?.arrayValue ?? []
        if determinations.isEmpty { console.line("nothing to evaluate (no \(policy) binding such as a lease or a damage report)") }
        for d in determinations {
            console.line("")
            for line in headline(d) { console.line(line) }
            console.line(
                "entitlement \(d["entitlement_id"].text): \(d["state"].text)\(d["reason"].map { $0.isNull ? "" : " (\($0.text))" } ?? "")")
            if let flag = d["review_flag"], !flag.isNull { console.line("REVIEW FLAG: \(flag.serialized())") }
            console.out(d["text"].text)
            if !d["text"].text.hasSuffix("\n") { console.line("") }
        }
        return ExitCodes.ok
    }

    /// The first lines of one determination: what it comes to for the merchant (the matcher's
    /// `conclusion`), so that a clerk reading the top never takes "eligible" for money that will
    /// not be paid (eligible, but never applied for), and the evaluation of the conditions.
    static func headline(_ d: JSON) -> [String] {
        let outcome = d["outcome"]
        let binding = "[\(d["binding"].text)]"
        var evaluation = outcome?["result"].text ?? "?"
        if let amount = outcome?["amount_fen"]?.intValue { evaluation += ": \(Money.yuan(amount))" }
        if let missing = outcome?["missing"]?.arrayValue { evaluation += " — missing: " + missing.map(\.text).joined(separator: ", ") }
        guard let c = d["conclusion"], !c.isNull else { return ["\(binding) \(evaluation)"] }
        if c["payable"]?.boolValue == false && !["ineligible", "incomplete", "evaluation_error"].contains(c["code"].text) {
            // The conditions hold but nothing is paid: the conclusion leads, the evaluation follows.
            return [
                "\(binding) 结论 \(c["text"].text)", "    \(c["text_en"].text)",
                "    条件评估 evaluation of the conditions only: \(evaluation)",
            ]
        }
        return ["\(binding) \(evaluation)", "结论 \(c["text"].text)"]
    }

    /// The id of an application: derived from what it says (policy, merchant, the documents
    /// sorted, and `submitted_at` when the operator gave one), so that sending the same application
    /// again is `duplicate` and one with other documents is a new application (线上补报: the
    /// matcher adds its documents to the one on file).
    public static func applicationID(policy: String, uscc: String, documents: [String], submittedAt: String?) -> String {
        let content = [policy, uscc, documents.sorted().joined(separator: "\u{1F}"), submittedAt ?? ""].joined(separator: "\u{1E}")
        return "application/\(policy)/\(uscc)/\(SHA256.hex(content).prefix(20))"
    }

    /// Submits an application. `submittedAt` must be an RFC 3339 instant (exit 64 otherwise);
    /// without it the matcher's clock at receipt is the time of submission. Without `id`, the id
    /// is `applicationID(…)`.
    public static func apply(
        context: ZContext, target: ServiceTarget, uscc: String, policy: String, documents: [String], submittedAt: String?,
        id: String? = nil, timeoutMs: Int, console: Console, retry: RetryHint? = nil
    ) async throws -> Int32 {
        if let submittedAt, Timestamp.parse(submittedAt) == nil {
            throw CLIError(
                "--submitted-at \(submittedAt) is not an RFC 3339 instant (e.g. 2022-05-01T10:00:00+08:00)", exitCode: ExitCodes.usage)
        }
        var docs: [String] = []
        for d in documents.sorted() where !docs.contains(d) { docs.append(d) }
        let eventID = id ?? applicationID(policy: policy, uscc: uscc, documents: docs, submittedAt: submittedAt)
        // Without --submitted-at the matcher takes its own clock at receipt as the time of
        // submission, so the event's content is the same on every retry: a repeat is `duplicate`.
        let event = CloudEvent(
            id: eventID, source: "/bangfu/cli", type: "application.submitted", subject: uscc,
            data: [
                "uscc": .string(uscc), "policy_id": .string(policy), "submitted_at": submittedAt.map { .string($0) } ?? .null,
                "documents": .array(docs.map { .string($0) }),
            ])
        return try await send(context: context, target: target, event: event, timeoutMs: timeoutMs, console: console, retry: retry)
    }

}

/// Fen shown as yuan, exactly (no floating point): 123456 → "¥1,234.56 (123456 fen)".
enum Money {
    static func yuan(_ fen: Int64) -> String {
        let sign = fen < 0 ? "-" : ""
        let m = fen.magnitude
        let cents = m % 100
        return "\(sign)¥\(Format.grouped(m / 100)).\(cents < 10 ? "0" : "")\(cents) (\(fen) fen)"
    }
}

struct PolicyVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy", abstract: "Check, publish, list and withdraw policies (the matcher's programmes).",
        subcommands: [PolicyCheckVerb.self, PolicyPublishVerb.self, PolicyListVerb.self, PolicyWithdrawVerb.self])
}

struct PolicyCheckVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check", abstract: "Parse and type-check policy files offline; errors with line and column (exit 1).")

    @Argument(help: "Policy YAML files.") var files: [String]

    func run() async throws {
        try await execute { _, console in
            var worst: Int32 = 0
            for f in files { worst = max(worst, PolicyCommands.check(path: f, console: console).0) }
            return worst
        }
    }
}

struct PolicyPublishVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publish", abstract: "Check a policy file, then publish it to the matcher (which screens every merchant).")

    @Argument(help: "The policy YAML file.") var file: String
    @OptionGroup var eventID: EventIDOption
    @OptionGroup var endpoints: MatcherEndpointOptions

    func run() async throws {
        try await execute { context, console in
            try await PolicyCommands.publish(
                context: context, target: try endpoints.target(), path: file, id: eventID.id, timeoutMs: endpoints.timeoutMs,
                console: console, retry: .current())
        }
    }
}

struct PolicyListVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List published policies with their entitlement counts.")

    @OptionGroup var endpoints: MatcherEndpointOptions
    @Flag(help: "One JSON object per line.") var json = false

    func run() async throws {
        try await execute { context, console in
            try await PolicyCommands.list(
                context: context, target: try endpoints.target(), timeoutMs: endpoints.timeoutMs, json: json, console: console)
        }
    }
}

struct ExplainVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain", abstract: "Explain a merchant's result under a policy: every clause, its inputs, and the amount worked out."
    )

    @Option(help: "The merchant's USCC.") var uscc: String
    @Option(help: "The policy id.") var policy: String
    @OptionGroup var endpoints: MatcherEndpointOptions
    @Flag(help: "Print the explanation as JSON.") var json = false

    func run() async throws {
        try await execute { context, console in
            try await PolicyCommands.explain(
                context: context, target: try endpoints.target(), uscc: uscc, policy: policy, timeoutMs: endpoints.timeoutMs, json: json,
                console: console)
        }
    }
}

struct ApplyVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply", abstract: "Submit a merchant's application to a programme (rejected as late after its window).",
        discussion: """
            The event id is derived from the policy, the merchant, the documents and --submitted-at: \
            the same application again is answered duplicate, and one with more documents is a new \
            application whose documents the matcher adds to the one on file (线上补报).
            """)

    @Option(help: "The merchant's USCC.") var uscc: String
    @Option(help: "The policy id.") var policy: String
    @Option(parsing: .upToNextOption, help: "Document references (evidence).") var documents: [String] = []
    @Option(name: .customLong("submitted-at"), help: "RFC 3339 instant of submission (default: now).") var submittedAt: String?
    @OptionGroup var eventID: EventIDOption
    @OptionGroup var endpoints: MatcherEndpointOptions

    func validate() throws {
        if let submittedAt, Timestamp.parse(submittedAt) == nil {
            throw ValidationError("--submitted-at \(submittedAt) is not an RFC 3339 instant (e.g. 2022-05-01T10:00:00+08:00)")
        }
    }

    func run() async throws {
        try await execute { context, console in
            try await PolicyCommands.apply(
                context: context, target: try endpoints.target(), uscc: uscc, policy: policy, documents: documents,
                submittedAt: submittedAt, id: eventID.id, timeoutMs: endpoints.timeoutMs, console: console, retry: .current())
        }
    }
}
