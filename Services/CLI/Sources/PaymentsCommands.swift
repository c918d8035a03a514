import ArgumentParser
import Bus
import Foundation
import Models

#if canImport(Glibc)
    import Glibc
#endif

/// Endpoint selection for the payment router's verbs.
struct PaymentsEndpointOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The payment router's intake endpoint.", valueName: "EP"))
    var intake: String?

    @Option(help: ArgumentHelp("The payment router's replay endpoint.", valueName: "EP"))
    var replay: String?

    @Option(name: .customLong("timeout-ms"), help: "How long to wait for the payment router.")
    var timeoutMs: Int = 10_000

    func target() throws(CLIError) -> ServiceTarget {
        try EndpointResolver.resolve(service: "payments", intake: intake, replay: replay)
    }
}

/// `bangfu ledger check`, `bangfu audit verify`, `bangfu pool fund|status`, `bangfu hold
/// release|reject|list`, `bangfu payments batch`.
public enum PaymentsCommands {
    static func operatorName() -> String {
        ProcessInfo.processInfo.environment["BANGFU_OPERATOR"] ?? ProcessInfo.processInfo.environment["USER"] ?? "operator"
    }

    /// Publishes an operator's command to the payment router: id `id` (a new one when nil), no
    /// `time` (a retry with `--id` says exactly the same). Exit 3 prints the retry line.
    public static func command(
        context: ZContext, target: ServiceTarget, type: String, data: JSON, id: String? = nil, timeoutMs: Int, console: Console,
        retry: RetryHint? = nil, describe: String? = nil
    ) async throws -> Int32 {
        try await commandWithAck(
            context: context, target: target, type: type, data: data, id: id, timeoutMs: timeoutMs, console: console, retry: retry,
            describe: describe
        ).0
    }

    static func commandWithAck(
        context: ZContext, target: ServiceTarget, type: String, data: JSON, id: String?, timeoutMs: Int, console: Console,
        retry: RetryHint?, describe: String? = nil
    ) async throws -> (Int32, Ack?) {
        let event = CloudEvent(id: id ?? OperatorEvent.newID(), source: OperatorEvent.source, type: type, data: data)
        return try await OperatorEvent.send(
            context: context, target: target, event: event, timeoutMs: timeoutMs, console: console, retry: retry, describe: describe)
    }

    /// `bangfu payments batch`: asks for the channel's next batch, then says what it made (from
    /// `batch.list`): each new batch's file, count and total, or that nothing was ready.
    public static func batch(
        context: ZContext, target: ServiceTarget, channel: String, max: Int?, id: String? = nil, timeoutMs: Int, console: Console,
        retry: RetryHint? = nil
    ) async throws -> Int32 {
        // The command's own id: the service records it with every batch the command makes, so
        // the answer names exactly those (a retry's `duplicate` included), whoever else batches.
        let eventID = id ?? OperatorEvent.newID()
        var data = JSONObject()
        data["channel"] = .string(channel)
        if let max { data["max"] = .int(Int64(max)) }
        let (code, ack) = try await commandWithAck(
            context: context, target: target, type: "payments.batch", data: .object(data), id: eventID, timeoutMs: timeoutMs,
            console: console, retry: retry)
        guard let ack else { return code }
        if ack.status == .rejected {
            if let hint = pausedHint(ack.rejection?.message, channel: channel) { console.line(hint) }
            return code
        }
        guard
            let answer = try? await Query.ask(
                context: context, endpoint: target.replay, ["op": "batch.list", "command_id": .string(eventID)], timeoutMs: timeoutMs),
            answer["op"]?.stringValue != "error", let made = answer["items"]?.arrayValue
        else {
            console.line("(the batch list did not come back from \(target.replay): see bangfu status --service payments)")
            return code
        }
        if made.isEmpty {
            console.line("nothing ready to batch on channel \(channel): no file written")
        }
        for b in made { console.line("batch " + describeBatch(b)) }
        return code
    }

    /// `bangfu payments confirm`: `lessor.confirmed` or `agency.confirmed` (by payment, or a
    /// lessor's by lease), then the payment's state after it, from `payment.show` (or, by lease,
    /// `payment.list`): settled, instructed again for a refund the lessor owes, or failed.
    public static func confirm(
        context: ZContext, target: ServiceTarget, agency: Bool, payment: String?, lease: String?, policy: String?, method: String?,
        declined: Bool, reversal: Bool = false, id: String? = nil, timeoutMs: Int, console: Console, retry: RetryHint? = nil
    ) async throws -> Int32 {
        var data = JSONObject()
        if reversal { data["reversal"] = true }
        if let payment { data["payment_id"] = .string(payment) }
        if let lease { data["lease"] = .string(lease) }
        if let policy { data["policy_id"] = .string(policy) }
        if let method { data["method"] = .string(method) }
        data["ok"] = .bool(!declined)
        let (code, ack) = try await commandWithAck(
            context: context, target: target, type: agency ? "agency.confirmed" : "lessor.confirmed", data: .object(data), id: id,
            timeoutMs: timeoutMs, console: console, retry: retry)
        guard let ack, ack.status != .rejected else { return code }
        // The payment as the router has it now (best effort: the confirmation stands).
        var found: [JSON] = []
        if let payment {
            if let a = try? await Query.ask(
                context: context, endpoint: target.replay, ["op": "payment.show", "id": .string(payment)], timeoutMs: timeoutMs),
                let p = a["payment"], p.objectValue != nil
            {
                found = [p]
            }
        } else if let lease {
            var req: JSONObject = ["op": "payment.list", "lease": .string(lease), "channel": "lessor", "max": 10]
            if let policy { req["policy"] = .string(policy) }
            found =
                (try? await Query.ask(context: context, endpoint: target.replay, .object(req), timeoutMs: timeoutMs))?["items"]?
                .arrayValue ?? []
        }
        if found.isEmpty { console.line("  (the payment's state: bangfu hold list, or the payment.show query)") }
        // A payment listed by lease carries no reversal: ask for each one's (a lease has one or two).
        if reversal, payment == nil {
            var shown: [JSON] = []
            for p in found {
                if let id = p["payment_id"]?.stringValue,
                    let a = try? await Query.ask(
                        context: context, endpoint: target.replay, ["op": "payment.show", "id": .string(id)], timeoutMs: timeoutMs),
                    let full = a["payment"], full.objectValue != nil
                {
                    shown.append(full)
                } else {
                    shown.append(p)
                }
            }
            found = shown
        }
        for p in found {
            console.line("  " + describePayment(p))
            if let r = p["reversal"], r.objectValue != nil { console.line("  " + describeReversal(r)) }
        }
        return code
    }

    /// A payment as `payments show` prints it: one `label: value` line per member that is set,
    /// then its reversal, if any.
    static func showLines(_ p: JSON) -> [String] {
        var lines = [describePayment(p)]
        let keys: [(String, String)] = [
            ("policy_id", "programme"), ("title", "title"), ("uscc", "merchant"), ("benefit", "benefit"), ("channel", "channel"),
            ("pool", "pool"), ("batch_id", "batch"), ("deadline", "deadline"), ("revoked", "revoked"),
        ]
        for (key, label) in keys {
            if let v = p[key]?.stringValue { lines.append("  \(label): \(v)") }
        }
        if let fen = p["amount_fen"]?.intValue { lines.append("  amount: \(Money.yuan(fen))") }
        if p["priority"]?.boolValue == true { lines.append("  priority: yes") }
        if let r = p["reversal"], r.objectValue != nil { lines.append("  " + describeReversal(r)) }
        return lines
    }

    /// `reversal (reverse, objection_upheld): instructed in B000012; confirm by …`.
    static func describeReversal(_ r: JSON) -> String {
        var s = "reversal (\(r["action"].text), \(r["reason"].text)): \(r["state"].text)"
        if let b = r["batch_id"]?.stringValue { s += " in \(b)" }
        if let m = r["method"]?.stringValue { s += " (\(m))" }
        if let by = r["confirm_by"]?.stringValue, r["state"]?.stringValue == "instructed" { s += "; confirm by \(by)" }
        if let e = r["escalated_at"]?.stringValue { s += "; OVERDUE since \(e)" }
        return s
    }

    /// `bangfu payments reversals`: cancellations and reversals sent (or to be sent) to lessors
    /// and agencies, oldest first; by default every one not yet confirmed.
    public static func reversals(
        context: ZContext, target: ServiceTarget, state: String?, max: Int, json: Bool, timeoutMs: Int, console: Console
    ) async throws -> Int32 {
        var req: JSONObject = ["op": "reversals", "max": .int(Int64(max))]
        if let state { req["state"] = .string(state) }
        let a = try await Query.require(context: context, target: target, .object(req), timeoutMs: timeoutMs)
        let items = a["items"]?.arrayValue ?? []
        if json {
            for i in items { console.line(i.serialized()) }
            return ExitCodes.ok
        }
        if items.isEmpty {
            console.line(
                state == nil ? "no reversals open (none waiting for a file, a confirmation or an operator)" : "no \(state ?? "") reversals")
            return ExitCodes.ok
        }
        // Closed ones say how and when; open ones by when (or that they are overdue).
        let closed = state == "confirmed"
        let rows = items.map { r in
            [
                r["payment_id"].text, r["channel"].text, r["benefit"].text, Money.yuan(r["amount_fen"]?.intValue ?? 0), r["action"].text,
                r["state"].text, r["batch_id"]?.stringValue ?? "-",
                closed
                    ? "\(r["method"]?.stringValue ?? "-") \(r["closed_at"]?.stringValue ?? "")"
                    : r["escalated_at"]?.stringValue != nil ? "OVERDUE" : r["confirm_by"]?.stringValue ?? "",
                Format.truncate(r["reason"].text, 40),
            ]
        }
        Table.print(
            header: ["PAYMENT", "CHANNEL", "BENEFIT", "AMOUNT", "ACTION", "STATE", "BATCH", closed ? "HOW, WHEN" : "CONFIRM BY", "REASON"],
            rows: rows, console: console)
        return ExitCodes.ok
    }

    /// `ent-… : settled`, `ent-…: instructed (offset failed: …; deadline …)`, `ent-…: held [code] (why)`.
    static func describePayment(_ p: JSON) -> String {
        var s = "\(p["payment_id"].text): \(p["state"].text)"
        if let code = p["hold_code"]?.stringValue { s += " [\(code)]" }
        if let why = p["reason"]?.stringValue { s += " (\(why))" }
        if let deadline = p["deadline"]?.stringValue, p["state"]?.stringValue == "instructed" { s += "; deadline \(deadline)" }
        return s
    }

    /// `bangfu payments batches`: every batch file, oldest first.
    public static func batches(context: ZContext, target: ServiceTarget, json: Bool, timeoutMs: Int, console: Console) async throws
        -> Int32
    {
        let a = try await Query.require(context: context, target: target, ["op": "batch.list"], timeoutMs: timeoutMs)
        let items = a["items"]?.arrayValue ?? []
        if json {
            for i in items { console.line(i.serialized()) }
            return ExitCodes.ok
        }
        if items.isEmpty {
            console.line("no batches yet")
            return ExitCodes.ok
        }
        let rows = items.map { b in
            [
                b["batch_id"].text, b["channel"].text, b["file"].text, b["count"].text, Money.yuan(b["total_fen"]?.intValue ?? 0),
                b["reversals"]?.intValue.map(String.init) ?? "0", b["written"]?.boolValue == true ? "yes" : "no", b["settled"].text,
                b["failed"].text,
                b["refused"]?.stringValue.map { "REFUSED: " + Format.truncate($0, 60) } ?? "",
            ]
        }
        Table.print(
            header: ["BATCH", "CHANNEL", "FILE", "COUNT", "TOTAL", "REVERSALS", "WRITTEN", "SETTLED", "FAILED", ""], rows: rows,
            console: console)
        return ExitCodes.ok
    }

    /// `bangfu payments reviews`: operators' notes, newest first.
    public static func reviews(context: ZContext, target: ServiceTarget, max: Int, json: Bool, timeoutMs: Int, console: Console)
        async throws -> Int32
    {
        let a = try await Query.require(
            context: context, target: target, ["op": "reviews", "max": .int(Int64(max))], timeoutMs: timeoutMs)
        let items = a["items"]?.arrayValue ?? []
        if json {
            for i in items { console.line(i.serialized()) }
            return ExitCodes.ok
        }
        if items.isEmpty {
            console.line("no review notes")
            return ExitCodes.ok
        }
        let rows = items.map { r in [r["opened_at"].text, r["payment_id"].text, r["code"].text, Format.truncate(r["detail"].text, 100)] }
        Table.print(header: ["OPENED", "PAYMENT", "CODE", "DETAIL"], rows: rows, console: console)
        return ExitCodes.ok
    }

    /// What to do about a `payments.batch` refused because its channel is paused.
    static func pausedHint(_ message: String?, channel: String) -> String? {
        guard let message, message.contains("is paused") else { return nil }
        return "the channel is paused (a batch failed too often); once the cause is dealt with: bangfu payments resume --channel \(channel)"
    }

    /// `B000001 BANGFU-B000001.xml: 3 payments, ¥3,000.00 (300000 fen)`.
    static func describeBatch(_ b: JSON) -> String {
        let n = b["count"]?.intValue ?? 0
        var s = "\(b["batch_id"].text) \(b["file"].text): \(n) payment\(n == 1 ? "" : "s"), \(Money.yuan(b["total_fen"]?.intValue ?? 0))"
        if let r = b["reversals"]?.intValue, r > 0 { s += ", \(r) reversal\(r == 1 ? "" : "s")" }
        if let refused = b["refused"]?.stringValue {
            s += " (REFUSED, not written: \(refused))"
        } else if b["written"]?.boolValue == false {
            s += " (decided, but the file is NOT WRITTEN yet: payments tries again every second; bangfu status --service payments)"
        }
        return s
    }

    public static func ledgerCheck(context: ZContext, target: ServiceTarget, timeoutMs: Int, console: Console) async throws -> Int32 {
        let a = try await Query.require(context: context, target: target, ["op": "ledger.check"], timeoutMs: timeoutMs)
        let ok = a["ok"]?.boolValue == true
        console.line(ok ? "ledger OK: every balance recomputed from its transfers; the sum of all balances is zero" : "LEDGER BROKEN")
        console.line(a["report"].text)
        for p in a["problems"]?.arrayValue ?? [] { console.line("  problem: \(p.text)") }
        return ok ? ExitCodes.ok : ExitCodes.failure
    }

    /// `--anchor SEQ:HASH`: a link an earlier `audit verify` printed as the head.
    public static func anchor(_ text: String) throws(CLIError) -> JSON {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2, let seq = Int64(parts[0]), seq >= 1, parts[1].utf8.count == 64,
            parts[1].utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) || ($0 >= 0x41 && $0 <= 0x46) })
        else {
            throw CLIError(
                "--anchor is SEQ:HASH, the head an earlier audit verify printed (e.g. 9182:3f…, 64 hex digits), got \(text)",
                exitCode: ExitCodes.usage)
        }
        return ["seq": .int(seq), "hash": .string(parts[1])]
    }

    public static func auditVerify(
        context: ZContext, target: ServiceTarget, timeoutMs: Int, anchor: String? = nil, console: Console
    ) async throws -> Int32 {
        var req: JSONObject = ["op": "audit.verify"]
        if let anchor { req["anchor"] = try Self.anchor(anchor) }
        let a = try await Query.require(context: context, target: target, .object(req), timeoutMs: timeoutMs)
        let head = a["head"].flatMap { $0 == .null ? nil : $0 }
        var status = ExitCodes.ok
        if a["ok"]?.boolValue == true {
            console.line("audit chain OK: \(a["entries"].text) entries, every link recomputed")
        } else {
            console.line("AUDIT CHAIN BROKEN at entry \(a["first_broken"].text): \(a["reason"].text)")
            status = ExitCodes.failure
        }
        if anchor != nil {
            if a["anchor_ok"]?.boolValue == true {
                console.line("anchor \(anchor ?? "") held: the chain still holds that link")
            } else {
                console.line("ANCHOR NOT HELD: \(a["anchor_problem"].text)")
                status = ExitCodes.failure
            }
        }
        if let head {
            // Written down outside the payments database (the audit file, a signed record), the
            // head lets the next verify prove that nothing up to it was rewritten or removed.
            console.line(
                "head: \(head["seq"].text):\(head["hash"].text)  (record it outside this server; next time: bangfu audit verify --anchor \(head["seq"].text):\(head["hash"].text))"
            )
        }
        return status
    }

    /// `bangfu audit list`: the chain's entries, oldest first, with what each records.
    public static func auditList(
        context: ZContext, target: ServiceTarget, timeoutMs: Int, ref: String?, kind: String?, after: Int64, max: Int, json: Bool,
        console: Console
    ) async throws -> Int32 {
        // Each request reads a bounded stretch of the chain: go on until `max` entries are found
        // or the chain's end is reached.
        var items: [JSON] = []
        var cursor = after
        var more = true
        while more && items.count < max {
            var req: JSONObject = ["op": "audit.list", "after": .int(cursor), "max": .int(Int64(max - items.count))]
            if let ref { req["ref"] = .string(ref) }
            if let kind { req["kind"] = .string(kind) }
            let a = try await Query.require(context: context, target: target, .object(req), timeoutMs: timeoutMs)
            items += a["items"]?.arrayValue ?? []
            guard let next = a["scanned_to"]?.intValue, next > cursor else { break }
            cursor = next
            more = a["more"]?.boolValue == true
        }
        if json {
            for e in items { console.line(e.serialized()) }
            return ExitCodes.ok
        }
        if items.isEmpty {
            console.line(
                "no audit entries" + (ref.map { " naming \($0)" } ?? "") + (kind.map { " of kind \($0)" } ?? "") + " after \(after)")
            return ExitCodes.ok
        }
        Table.print(
            header: ["SEQ", "AT", "KIND", "ENTRY"],
            rows: items.map { e in [e["seq"].text, e["at"].text, e["kind"].text, Format.truncate(e["entry"]?.serialized() ?? "", 160)] },
            console: console)
        if more, items.count >= max { console.line("(more: --after \(cursor))") }
        return ExitCodes.ok
    }

    public static func poolStatus(context: ZContext, target: ServiceTarget, timeoutMs: Int, console: Console) async throws -> Int32 {
        let a = try await Query.require(context: context, target: target, ["op": "pool.status"], timeoutMs: timeoutMs)
        console.line(Format.pad("pool", 32) + Format.pad("funded less paid", 34) + Format.pad("reserved", 34) + "available")
        for p in a["items"]?.arrayValue ?? [] {
            console.line(
                Format.pad(p["pool"].text, 32) + Format.pad(Money.yuan(p["posted_fen"]?.intValue ?? 0), 34)
                    + Format.pad(Money.yuan(p["reserved_fen"]?.intValue ?? 0), 34) + Money.yuan(p["available_fen"]?.intValue ?? 0))
        }
        return ExitCodes.ok
    }

    public static func holds(context: ZContext, target: ServiceTarget, timeoutMs: Int, json: Bool = false, console: Console) async throws
        -> Int32
    {
        let a = try await Query.require(context: context, target: target, ["op": "holds", "max": 1_000], timeoutMs: timeoutMs)
        let items = a["items"]?.arrayValue ?? []
        if json {
            for p in items { console.line(p.serialized()) }
            return ExitCodes.ok
        }
        if items.isEmpty {
            console.line("no held payments")
            return ExitCodes.ok
        }
        Table.print(
            header: ["PAYMENT", "USCC", "POLICY", "AMOUNT", "HOLD", "HELD SINCE", "REASON"],
            rows: items.map { p in
                [
                    p["payment_id"].text, p["uscc"].text, p["policy_id"].text, Money.yuan(p["amount_fen"]?.intValue ?? 0),
                    p["hold_code"].text, p["held_since"].text,
                    Format.truncate(p["reason"].text, 80),
                ]
            }, console: console)
        if items.count == 1_000 { console.line("(the first 1,000 held payments)") }
        return ExitCodes.ok
    }

    /// `--amount-fen`: a positive whole number of fen.
    static func fen(_ text: String) throws(CLIError) -> Int64 {
        guard let n = Int64(text), n > 0 else {
            throw CLIError(
                "--amount-fen must be a positive number of fen (a whole number: 100000 is ¥1,000.00), got \(text)",
                exitCode: ExitCodes.usage)
        }
        return n
    }
}

struct LedgerVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger", abstract: "The payment router's double-entry ledger.", subcommands: [LedgerCheckVerb.self])
}

struct LedgerCheckVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check", abstract: "Recompute every balance from the transfers; prove the sum of all balances is zero (exit 1 if not)."
    )
    @OptionGroup var endpoints: PaymentsEndpointOptions

    func run() async throws {
        try await execute { context, console in
            try await PaymentsCommands.ledgerCheck(
                context: context, target: try endpoints.target(), timeoutMs: endpoints.timeoutMs, console: console)
        }
    }
}

struct AuditVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "The audit chain (全程督).", subcommands: [AuditVerifyVerb.self, AuditListVerb.self])
}

struct AuditVerifyVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract:
            "Recompute the SHA-256 hash chain, name the first broken link, and print the head to record elsewhere (exit 1 if broken or the anchor is not held)."
    )
    @Option(
        help:
            "SEQ:HASH, a head an earlier verify printed (kept outside this server): the chain must still hold that link — a chain rewritten and recomputed, or cut short, does not."
    ) var anchor: String?
    @OptionGroup var endpoints: PaymentsEndpointOptions

    func run() async throws {
        try await execute { context, console in
            try await PaymentsCommands.auditVerify(
                context: context, target: try endpoints.target(), timeoutMs: endpoints.timeoutMs, anchor: anchor, console: console)
        }
    }
}

struct AuditListVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract:
            "The audit chain's entries, oldest first: transfers, holds and who released them, approvals ledgered, batches, returns, confirmations."
    )
    @Option(help: "Only entries naming this id (a payment or entitlement id, a batch id, a pool, a ledger account).") var ref: String?
    @Option(help: "Only entries of this kind (e.g. hold.released, payment.instructed, reserve, post, void, transfer).") var kind: String?
    @Option(help: "Entries after this sequence number (to page on).") var after: Int64 = 0
    @Option(help: "At most this many entries (1–1000).") var max: Int = 100
    @Flag(help: "One JSON object per line: seq, at, kind, entry, hash.") var json = false
    @OptionGroup var endpoints: PaymentsEndpointOptions

    func run() async throws {
        try await execute { context, console in
            try await PaymentsCommands.auditList(
                context: context, target: try endpoints.target(), timeoutMs: endpoints.timeoutMs, ref: ref, kind: kind, after: after,
                max: max, json: json, console: console)
        }
    }
}

struct PoolVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pool", abstract: "Fund pools (资金池) and show their balances.", subcommands: [PoolFundVerb.self, PoolStatusVerb.self])
}

struct PoolFundVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fund", abstract: "Credit a pool (central, special_bond or local funds); held payments are released in priority order."
    )
    @Option(help: "The pool id, as policies name it.") var pool: String
    @Option(help: "central, special_bond or local.") var source: String
    @Option(
        name: .customLong("amount-fen"), parsing: .unconditional,
        help: ArgumentHelp("The amount in fen: a positive whole number (100000 is ¥1,000.00).", valueName: "FEN"))
    var amountFen: String
    @OptionGroup var eventID: EventIDOption
    @OptionGroup var endpoints: PaymentsEndpointOptions

    func validate() throws {
        do {
            _ = try PaymentsCommands.fen(amountFen)
        } catch {
            throw ValidationError(error.message)
        }
    }

    func run() async throws {
        let fen = try PaymentsCommands.fen(amountFen)
        try await execute { context, console in
            try await PaymentsCommands.command(
                context: context, target: try endpoints.target(), type: "pool.funded",
                data: ["pool": .string(pool), "source": .string(source), "amount_fen": .int(fen)], id: eventID.id,
                timeoutMs: endpoints.timeoutMs, console: console, retry: .current(), describe: "\(Money.yuan(fen)) into \(pool)")
        }
    }
}

struct PoolStatusVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Each pool's funds, reservations and availability.")
    @OptionGroup var endpoints: PaymentsEndpointOptions

    func run() async throws {
        try await execute { context, console in
            try await PaymentsCommands.poolStatus(
                context: context, target: try endpoints.target(), timeoutMs: endpoints.timeoutMs, console: console)
        }
    }
}

struct HoldVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hold", abstract: "Payments held by a check (fraud signals, no verified account).",
        subcommands: [HoldListVerb.self, HoldReleaseVerb.self, HoldRejectVerb.self])
}

struct HoldListVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "Held payments with their hold codes.")
    @Flag(help: "One JSON object per line.") var json = false
    @OptionGroup var endpoints: PaymentsEndpointOptions

    func run() async throws {
        try await execute { context, console in
            try await PaymentsCommands.holds(
                context: context, target: try endpoints.target(), timeoutMs: endpoints.timeoutMs, json: json, console: console)
        }
    }
}

struct HoldReleaseVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "release", abstract: "Release a hold (recorded in the audit chain: who, when, why); the other checks still run.")
    @Option(help: "The payment id (= entitlement id).") var payment: String
    @Option(help: "Why the hold is released.") var reason: String
    @Option(help: "Who releases it (default: $BANGFU_OPERATOR or $USER).") var by: String?
    @OptionGroup var eventID: EventIDOption
    @OptionGroup var endpoints: PaymentsEndpointOptions

    func run() async throws {
        try await execute { context, console in
            try await PaymentsCommands.command(
                context: context, target: try endpoints.target(), type: "hold.released",
                data: ["payment_id": .string(payment), "reason": .string(reason), "by": .string(by ?? PaymentsCommands.operatorName())],
                id: eventID.id, timeoutMs: endpoints.timeoutMs, console: console, retry: .current())
        }
    }
}

struct HoldRejectVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reject", abstract: "Reject a held payment: it is voided (recorded in the audit chain).")
    @Option(help: "The payment id (= entitlement id).") var payment: String
    @Option(help: "Why it is rejected.") var reason: String
    @Option(help: "Who rejects it (default: $BANGFU_OPERATOR or $USER).") var by: String?
    @OptionGroup var eventID: EventIDOption
    @OptionGroup var endpoints: PaymentsEndpointOptions

    func run() async throws {
        try await execute { context, console in
            try await PaymentsCommands.command(
                context: context, target: try endpoints.target(), type: "hold.rejected",
                data: ["payment_id": .string(payment), "reason": .string(reason), "by": .string(by ?? PaymentsCommands.operatorName())],
                id: eventID.id, timeoutMs: endpoints.timeoutMs, console: console, retry: .current())
        }
    }
}

struct PaymentsVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "payments", abstract: "Payment batches and channels.",
        subcommands: [
            PaymentsBatchVerb.self, PaymentsResumeVerb.self, PaymentsConfirmVerb.self, PaymentsAnomaliesVerb.self, PaymentsBatchesVerb.self,
            PaymentsReviewsVerb.self, PaymentsReversalsVerb.self, PaymentsShowVerb.self,
        ])
}

struct PaymentsShowVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract:
            "One payment as payments has it (payment.show): state, channel, pool, amount, hold, batch, attempt; its audit entries: bangfu audit list --ref ID."
    )
    @Option(help: "The payment id (= entitlement id).") var payment: String
    @Flag(help: "The answer as JSON (one line).") var json = false
    @OptionGroup var endpoints: PaymentsEndpointOptions

    func run() async throws {
        try await execute { context, console in
            let a = try await Query.require(
                context: context, target: try endpoints.target(), ["op": "payment.show", "id": .string(payment)],
                timeoutMs: endpoints.timeoutMs)
            guard let p = a["payment"] else { throw CLIError("payments answered payment.show without a payment") }
            if json {
                console.line(p.serialized())
            } else {
                for line in PaymentsCommands.showLines(p) { console.line(line) }
            }
            return ExitCodes.ok
        }
    }
}

struct PaymentsConfirmVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "confirm",
        abstract:
            "Record a lessor's (lessor.confirmed) or an agency's (agency.confirmed, --agency) confirmation that an instruction was carried out (or, with --declined, that it was not).",
        discussion: """
            A rent waiver is confirmed by its lessor, by payment id or by lease, with how the rent was \
            waived (refund, offset or extension); a deferral or a no-cut-off instruction by its agency, \
            by payment id. Only an instruction of that channel can be confirmed. With --reversal, the \
            confirmation is of the cancellation or reversal sent after the entitlement was revoked \
            (bangfu payments reversals), --method cancelled or reversed (optional).
            """)
    @Option(help: "The payment id (= entitlement id).") var payment: String?
    @Option(help: "The lease (a lessor's confirmation only).") var lease: String?
    @Option(help: "With --lease: the programme, when the lease has more than one rent waiver.") var policy: String?
    @Option(help: "refund, offset or extension (a lessor's confirmation).") var method: String?
    @Flag(help: "An agency's confirmation (agency.confirmed) instead of a lessor's.") var agency = false
    @Flag(help: "The instruction was not carried out (ok: false).") var declined = false
    @Flag(help: "Confirm the cancellation or reversal of a revoked entitlement's instruction, not the instruction.")
    var reversal = false
    @OptionGroup var eventID: EventIDOption
    @OptionGroup var endpoints: PaymentsEndpointOptions

    func validate() throws {
        if payment == nil && lease == nil { throw ValidationError("give --payment ID or --lease LEASE") }
        if agency && lease != nil { throw ValidationError("an agency confirms by --payment, not --lease") }
        if policy != nil && lease == nil { throw ValidationError("--policy goes with --lease") }
        if reversal {
            if let method, !["cancelled", "reversed"].contains(method) {
                throw ValidationError("a reversal's --method is cancelled or reversed")
            }
        } else if !agency && method.map({ !["refund", "offset", "extension"].contains($0) }) ?? true {
            throw ValidationError("a lessor's confirmation needs --method refund, offset or extension")
        }
    }

    func run() async throws {
        try await execute { context, console in
            try await PaymentsCommands.confirm(
                context: context, target: try endpoints.target(), agency: agency, payment: payment, lease: lease, policy: policy,
                method: method, declined: declined, reversal: reversal, id: eventID.id, timeoutMs: endpoints.timeoutMs, console: console,
                retry: .current())
        }
    }
}

struct PaymentsAnomaliesVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "anomalies",
        abstract: "Bank return lines that were not applied (unknown payment, wrong state or amount), newest first: each needs a look.")
    @Option(help: "At most this many (1–1000).") var max: Int = 100
    @OptionGroup var endpoints: PaymentsEndpointOptions

    func validate() throws { if !(1...1_000).contains(max) { throw ValidationError("--max must be from 1 to 1000") } }

    func run() async throws {
        let limit = Int64(max)
        try await execute { context, console in
            let a = try await Query.require(
                context: context, target: try endpoints.target(), ["op": "return.anomalies", "max": .int(limit)],
                timeoutMs: endpoints.timeoutMs)
            let items = a["items"]?.arrayValue ?? []
            if items.isEmpty { console.line("no return anomalies") }
            for r in items { console.line("\(r["return_id"].text)  \(r["payment_id"].text)  \(r["problem"].text)") }
            return ExitCodes.ok
        }
    }
}

struct PaymentsBatchesVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "batches",
        abstract:
            "The batch files made so far: channel, file, count, total, written, settled and failed lines, and a file refused for not matching its recorded SHA-256."
    )
    @Flag(help: "One JSON object per line.") var json = false
    @OptionGroup var endpoints: PaymentsEndpointOptions

    func run() async throws {
        try await execute { context, console in
            try await PaymentsCommands.batches(
                context: context, target: try endpoints.target(), json: json, timeoutMs: endpoints.timeoutMs, console: console)
        }
    }
}

struct PaymentsReviewsVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reviews",
        abstract:
            "Notes for an operator that hold no money (a withdrawal after the money left, an event that could not be applied, a refund owed after a bank return), newest first."
    )
    @Option(help: "At most this many (1–1000).") var max: Int = 100
    @Flag(help: "One JSON object per line.") var json = false
    @OptionGroup var endpoints: PaymentsEndpointOptions

    func validate() throws { if !(1...1_000).contains(max) { throw ValidationError("--max must be from 1 to 1000") } }

    func run() async throws {
        let limit = max
        try await execute { context, console in
            try await PaymentsCommands.reviews(
                context: context, target: try endpoints.target(), max: limit, json: json, timeoutMs: endpoints.timeoutMs, console: console)
        }
    }
}

struct PaymentsReversalsVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reversals",
        abstract:
            "Cancellations and reversals of rent waivers and deferrals whose entitlement was revoked after the lessor or agency had them: in which file, confirmed or not, overdue.",
        discussion: """
            By default every one not yet confirmed (pending: waiting for the channel's next file; \
            instructed: in a file, awaiting the confirmation; declined: the lessor or agency said it \
            was not done). Confirm one with bangfu payments confirm --reversal.
            """)
    @Option(help: "Only this state: pending, instructed, confirmed or declined.") var state: String?
    @Option(help: "At most this many (1–1000).") var max: Int = 100
    @Flag(help: "One JSON object per line.") var json = false
    @OptionGroup var endpoints: PaymentsEndpointOptions

    func validate() throws {
        if !(1...1_000).contains(max) { throw ValidationError("--max must be from 1 to 1000") }
        if let state, !["pending", "instructed", "confirmed", "declined"].contains(state) {
            throw ValidationError("--state must be pending, instructed, confirmed or declined")
        }
    }

    func run() async throws {
        let limit = max
        try await execute { context, console in
            try await PaymentsCommands.reversals(
                context: context, target: try endpoints.target(), state: state, max: limit, json: json, timeoutMs: endpoints.timeoutMs,
                console: console)
        }
    }
}

struct PaymentsBatchVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "batch",
        abstract: "Write the next batch of a channel (treasury: a pain.001 file; lessor, agency:<name>: instruction files).")
    @Option(help: "treasury, lessor or agency:<name>.") var channel: String = "treasury"
    @Option(help: "At most this many payments in the file (default: the service's batch-max-payments).") var max: Int?
    @OptionGroup var eventID: EventIDOption
    @OptionGroup var endpoints: PaymentsEndpointOptions

    func validate() throws {
        if let max, !(1...1_000_000).contains(max) { throw ValidationError("--max must be from 1 to 1,000,000") }
    }

    func run() async throws {
        try await execute { context, console in
            try await PaymentsCommands.batch(
                context: context, target: try endpoints.target(), channel: channel, max: max, id: eventID.id,
                timeoutMs: endpoints.timeoutMs, console: console, retry: .current())
        }
    }
}

struct PaymentsResumeVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "resume", abstract: "Resume a channel paused by a high failure rate.")
    @Option(help: "The channel.") var channel: String = "treasury"
    @OptionGroup var eventID: EventIDOption
    @OptionGroup var endpoints: PaymentsEndpointOptions

    func run() async throws {
        try await execute { context, console in
            try await PaymentsCommands.command(
                context: context, target: try endpoints.target(), type: "channel.resumed", data: ["channel": .string(channel)],
                id: eventID.id, timeoutMs: endpoints.timeoutMs, console: console, retry: .current())
        }
    }
}

struct ReportVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report", abstract: "Reports of the notifier (月度评, 公示 rounds).",
        subcommands: [ReportMonthlyVerb.self, ReportRoundsVerb.self])
}

struct ReportRoundsVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rounds",
        abstract:
            "The disclosure rounds (公示): programme, opened, closes, state, how many entitlements, pending objections (round.list)."
    )
    @Flag(help: "One JSON object per line.") var json = false
    @Option(help: ArgumentHelp("The notifier's replay endpoint.", valueName: "EP")) var replay: String?
    @Option(name: .customLong("timeout-ms"), help: "How long to wait for the notifier.") var timeoutMs: Int = 30_000

    func run() async throws {
        try await execute { context, console in
            let target = try EndpointResolver.resolve(service: "notifier", replay: replay)
            let a = try await Query.require(context: context, target: target, ["op": "round.list"], timeoutMs: timeoutMs)
            let items = a["items"]?.arrayValue ?? []
            if json {
                for r in items { console.line(r.serialized()) }
                return ExitCodes.ok
            }
            if items.isEmpty {
                console.line("no disclosure rounds")
                return ExitCodes.ok
            }
            Table.print(
                header: ["ROUND", "PROGRAMME", "OPENED", "CLOSES AT", "STATE", "ENTITLEMENTS", "PENDING OBJECTIONS"],
                rows: items.map { r in
                    [
                        r["round_id"].text, r["policy_id"].text, r["opened_on"].text, r["closes_at"].text, r["state"].text,
                        r["entitlements"].text, r["pending_objections"].text,
                    ]
                }, console: console)
            return ExitCodes.ok
        }
    }
}

struct ReportMonthlyVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "monthly",
        abstract: "The monthly evaluation per district: 两直 funds paid vs allocated, 四减 amounts, jobs kept (HTML with charts, and CSV).")
    @Option(help: "The month, YYYY-MM.") var month: String
    @Option(help: ArgumentHelp("The notifier's replay endpoint.", valueName: "EP")) var replay: String?
    @Option(name: .customLong("timeout-ms"), help: "How long to wait for the notifier.") var timeoutMs: Int = 30_000

    func validate() throws {
        let parts = month.split(separator: "-")
        guard month.count == 7, parts.count == 2, let y = Int(parts[0]), let m = Int(parts[1]), y >= 1, (1...12).contains(m) else {
            throw ValidationError("--month must be a month as YYYY-MM, e.g. 2022-05")
        }
    }

    func run() async throws {
        try await execute { context, console in
            let target = try EndpointResolver.resolve(service: "notifier", replay: replay)
            let a = try await Query.require(
                context: context, target: target, ["op": "report.monthly", "month": .string(month)], timeoutMs: timeoutMs)
            console.line("monthly evaluation \(month): \(a["districts"].text) districts, paid \(Money.yuan(a["paid_fen"]?.intValue ?? 0))")
            console.line("  HTML: \(a["html"].text)")
            console.line("  CSV:  \(a["csv"].text)")
            return ExitCodes.ok
        }
    }
}

struct KeysVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "CurveZMQ keys (DESIGN §3.5).", subcommands: [KeysGenerateVerb.self])
}

struct KeysGenerateVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract:
            "Print a new CurveZMQ key pair (Z85): the public key goes into the server's allowlist, the secret key stays with its owner.",
        discussion:
            "In the service's allowlist (curve-clients) the key's grant says what it may publish (types, with the sources they come from) and what it may read: read: [feed, replay] for a downstream service, read: [queries] for an operator's bangfu (status, quarantine, the services' queries; add replay and feed for bangfu tail). A grant without read is publish-only. See docs/operations.md §11."
    )
    @Option(help: "A name for the key's owner, printed with it (e.g. tax-bureau).") var name: String = "client"
    @Option(
        name: .customLong("secret-file"),
        help: ArgumentHelp(
            "Write the secret key to this new file (mode 0600) instead of printing it: a service's curve-secret-key-file, or its LoadCredential= source.",
            valueName: "path")) var secretFile: String?

    func run() async throws {
        try await execute { _, console in
            let k = try CurveKeyPair.generate()
            console.line("# \(name)")
            console.line("public: \(k.publicKey)")
            if let secretFile {
                try Self.writeSecret(k.secretKey, to: secretFile)
                console.line("secret: written to \(secretFile) (mode 0600)")
            } else {
                console.line("secret: \(k.secretKey)")
            }
            return ExitCodes.ok
        }
    }

    /// Creates `path` (never over an existing file or link) readable by its owner alone, and
    /// writes the key and a newline.
    static func writeSecret(_ key: String, to path: String) throws(CLIError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let reason = String(cString: strerror(errno))
            throw CLIError("cannot create \(path): \(reason) (an existing key file is never overwritten)", exitCode: ExitCodes.cantCreate)
        }
        defer { close(fd) }
        // Whatever the umask left, only the owner may read it.
        let bytes = Array((key + "\n").utf8)
        guard fchmod(fd, 0o600) == 0, bytes.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == bytes.count, fsync(fd) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(path)
            throw CLIError("cannot write \(path): \(reason)", exitCode: ExitCodes.cantCreate)
        }
    }
}
