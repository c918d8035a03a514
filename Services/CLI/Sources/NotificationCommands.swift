import ArgumentParser
import Bus
import Foundation
import Models

/// `bangfu notifications failed` and `bangfu notifications retry`: the notifications the
/// notifier could not deliver, and re-sending them (protocol.md §15).
public enum NotificationCommands {
    /// Which failed notifications: every member that is set must match.
    public struct Filter: Sendable, Equatable {
        public var kind: String?
        /// Failed on this channel (`jsonl`, `webhook`) in its last pass.
        public var channel: String?
        public var entitlement: String?
        public var uscc: String?
        /// Failed at or after this instant (RFC 3339) or date (YYYY-MM-DD, China time).
        public var since: String?
        public var key: String?
        public init() {}

        /// The members of `notifications.retry`'s data and of `notification.list`.
        var members: JSONObject {
            var o = JSONObject()
            if let kind { o["kind"] = .string(kind) }
            if let channel { o["channel"] = .string(channel) }
            if let entitlement { o["entitlement_id"] = .string(entitlement) }
            if let uscc { o["uscc"] = .string(uscc) }
            if let since { o["since"] = .string(since) }
            if let key { o["key"] = .string(key) }
            return o
        }
    }

    /// `notification.list`: the failed notifications, oldest first, as a table (or JSON lines).
    public static func listFailed(
        context: ZContext, target: ServiceTarget, filter: Filter, max: Int = 100, json: Bool, timeoutMs: Int, console: Console
    ) async throws -> Int32 {
        var items: [JSON] = []
        var after: Int64 = 0
        var total: Int64 = 0
        while items.count < max {
            var req = filter.members
            req["op"] = "notification.list"
            let ask = Swift.min(1_000, max - items.count)
            req["max"] = .int(Int64(ask))
            req["after"] = .int(after)
            let a = try await Query.require(context: context, target: target, .object(req), timeoutMs: timeoutMs)
            total = a["total"]?.intValue ?? total
            items += a["items"]?.arrayValue ?? []
            guard let next = a["next"]?.intValue else { break }
            after = next
        }
        if json {
            for i in items { console.line(i.serialized()) }
            return ExitCodes.ok
        }
        if items.isEmpty {
            console.line("no failed notifications")
            return ExitCodes.ok
        }
        let header = ["KEY", "USCC", "KIND", "ENTITLEMENT", "FAILED AT", "ATTEMPTS", "NEXT ATTEMPT", "CHANNELS", "ERROR"]
        let rows = items.map { i in
            [
                i["key"].text, i["uscc"].text, i["kind"].text, i["entitlement_id"].text, i["failed_at"].text, i["attempts"].text,
                i["next_attempt_at"]?.stringValue ?? "none (re-send with bangfu notifications retry)",
                (i["channels"]?.arrayValue ?? []).map(\.text).joined(separator: ","), Format.truncate(i["error"].text, 80),
            ]
        }
        Table.print(header: header, rows: rows, console: console)
        if total > Int64(items.count) {
            console.line(
                "(\(items.count) of \(total) shown: narrow with --kind, --channel, --entitlement, --uscc or --since, or raise --max)")
        }
        return ExitCodes.ok
    }

    /// `notifications.retry` to the notifier: every failed notification the filter matches is
    /// queued again now; the ack says how many.
    public static func retry(
        context: ZContext, target: ServiceTarget, filter: Filter, id: String? = nil, timeoutMs: Int, console: Console,
        retry: RetryHint? = nil
    ) async throws -> Int32 {
        let event = CloudEvent(
            id: id ?? OperatorEvent.newID(), source: OperatorEvent.source, type: "notifications.retry", data: .object(filter.members))
        return try await OperatorEvent.send(
            context: context, target: target, event: event, timeoutMs: timeoutMs, console: console, retry: retry
        ).0
    }
}

// MARK: - Verbs

struct NotificationsVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "notifications", abstract: "Notifications the notifier could not deliver, and re-sending them.",
        subcommands: [NotificationsFailedVerb.self, NotificationsRetryVerb.self])
}

struct NotificationFilterOptions: ParsableArguments {
    @Option(help: "Only this kind (incomplete, disclosure, cleared, approved, paid, held, failed, clawback).") var kind: String?
    @Option(help: "Only those that failed on this channel (jsonl, webhook).") var channel: String?
    @Option(help: ArgumentHelp("Only those about this entitlement.", valueName: "ID")) var entitlement: String?
    @Option(help: "Only this merchant's.") var uscc: String?
    @Option(help: ArgumentHelp("Only those that failed at or after this instant (RFC 3339) or date.", valueName: "WHEN"))
    var since: String?
    @Option(help: ArgumentHelp("Only the notification with this key.", valueName: "KEY")) var key: String?

    var filter: NotificationCommands.Filter {
        var f = NotificationCommands.Filter()
        f.kind = kind
        f.channel = channel
        f.entitlement = entitlement
        f.uscc = uscc
        f.since = since
        f.key = key
        return f
    }

    func validate() throws {
        for (name, value) in [
            ("--kind", kind), ("--channel", channel), ("--entitlement", entitlement), ("--uscc", uscc), ("--since", since), ("--key", key),
        ] {
            if let value, value.trimmingCharacters(in: .whitespaces).isEmpty { throw ValidationError("\(name) must not be empty") }
        }
        if let since, Timestamp.parse(since) == nil, CivilDate.parse(since) == nil {
            throw ValidationError("--since must be an RFC 3339 instant or a date (YYYY-MM-DD)")
        }
    }
}

struct NotificationsFailedVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "failed",
        abstract: "List failed notifications: when they failed, the last error, and when they are tried again (if at all).")
    @OptionGroup var filterOptions: NotificationFilterOptions
    @Option(help: "At most this many (fetched 1,000 at a time).") var max: Int = 100
    @Flag(help: "One JSON object per line.") var json = false
    @OptionGroup var endpoints: NotifierEndpointOptions

    func validate() throws { try positive("--max", max) }

    func run() async throws {
        try await execute { context, console in
            try await NotificationCommands.listFailed(
                context: context, target: try endpoints.target(), filter: filterOptions.filter, max: max, json: json,
                timeoutMs: endpoints.timeoutMs, console: console)
        }
    }
}

struct NotificationsRetryVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retry",
        abstract: "Re-send failed notifications now (notifications.retry); without a filter, every failed one.",
        discussion: """
            A notification that was delivered is never sent again; one a channel already took is not sent to that \
            channel again. The answer says how many were re-queued; bangfu notifications failed shows what is left.
            """)
    @OptionGroup var filterOptions: NotificationFilterOptions
    @OptionGroup var eventID: EventIDOption
    @OptionGroup var endpoints: NotifierEndpointOptions

    func run() async throws {
        try await execute { context, console in
            try await NotificationCommands.retry(
                context: context, target: try endpoints.target(), filter: filterOptions.filter, id: eventID.id,
                timeoutMs: endpoints.timeoutMs, console: console, retry: .current())
        }
    }
}
