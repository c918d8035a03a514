import BangfuTesting
import Bus
import Foundation
import Models
import Testing

@testable import BangfuCLI

/// `bangfu notifications failed` lists what the notifier could not deliver and when it tries
/// again; `bangfu notifications retry` re-sends failed ones and says how many.
@Suite("bangfu notifications failed, retry", .serialized)
struct NotificationsCLITests {
    @Test func failedNotificationsAreListedAndResent() async throws {
        let h = try Harness(start: "2022-04-01T09:00:00+08:00")
        try await h.startStandIn("registry")
        try await h.startStandIn("matcher")
        let payments = try await h.startStandIn("payments")
        // Nothing listens on the discard port: every webhook delivery fails.
        let notifier = try await h.startNotifier(settings: ["webhook-url": "http://127.0.0.1:9/notify"])
        let feed = try h.collect("notifier")
        var f = Fixtures(seed: 21)
        let u = f.uscc()
        let held = Fixtures.event(
            "payment.held",
            [
                "payment_id": "ent-cli-1", "uscc": .string(u), "policy_id": "catering-2022", "title": "餐饮业一次性补助", "amount_fen": 200_000,
                "hold_code": "pool_short",
            ],
            subject: u)
        #expect(try await payments.publish(held).status == .accepted)
        #expect(await feed.wait { $0.contains { $0.type == "notification.failed" } })
        let t = ServiceTarget(service: "notifier", endpoints: notifier.endpoints)

        let table = CapturedConsole()
        #expect(
            try await NotificationCommands.listFailed(
                context: h.context, target: t, filter: .init(), json: false, timeoutMs: 10_000, console: table.console) == 0)
        #expect(table.out.hasPrefix("KEY"), "\(table.out)")
        for text in [u, "held", "ent-cli-1", "webhook", "cannot connect", "2022-04-01T09:00:00.000+08:00"] {
            #expect(table.out.contains(text), "\(text) in \(table.out)")
        }
        let lines = CapturedConsole()
        var byEntitlement = NotificationCommands.Filter()
        byEntitlement.entitlement = "ent-cli-1"
        #expect(
            try await NotificationCommands.listFailed(
                context: h.context, target: t, filter: byEntitlement, json: true, timeoutMs: 10_000, console: lines.console) == 0)
        let item = try #require(try jsonLines(lines).first)
        #expect(item["attempts"]?.intValue == 6 && item["next_attempt_at"]?.stringValue != nil, "\(item)")
        var otherKind = NotificationCommands.Filter()
        otherKind.kind = "approved"
        let empty = CapturedConsole()
        #expect(
            try await NotificationCommands.listFailed(
                context: h.context, target: t, filter: otherKind, json: false, timeoutMs: 10_000, console: empty.console) == 0)
        #expect(empty.out == "no failed notifications\n")

        var onWebhook = NotificationCommands.Filter()
        onWebhook.channel = "webhook"
        let retried = CapturedConsole()
        #expect(
            try await NotificationCommands.retry(
                context: h.context, target: t, filter: onWebhook, id: "retry-1", timeoutMs: 10_000, console: retried.console) == 0)
        #expect(retried.out.contains("notifications.retry accepted: retry-1"), "\(retried.out)")
        #expect(retried.out.contains("  requeued 1 failed notification\n"), "\(retried.out)")
        // Sent again, it fails again: a second notification.failed.
        #expect(await feed.wait { $0.filter { $0.type == "notification.failed" }.count == 2 })
        let again = CapturedConsole()
        #expect(
            try await NotificationCommands.retry(
                context: h.context, target: t, filter: onWebhook, id: "retry-1", timeoutMs: 10_000, console: again.console) == 0)
        #expect(again.out.contains("duplicate"), "the same id is applied once: \(again.out)")

        var sms = NotificationCommands.Filter()
        sms.channel = "sms"
        let refused = CapturedConsole()
        #expect(
            try await NotificationCommands.retry(context: h.context, target: t, filter: sms, timeoutMs: 10_000, console: refused.console)
                == ExitCodes.rejected)
        #expect(refused.out.contains("rejected: invalid_data (data.channel)"), "\(refused.out)")

        #expect((try? NotificationsRetryVerb.parse(["--since", "yesterday"])) == nil)
        #expect((try? NotificationsRetryVerb.parse(["--channel", ""])) == nil)
        let parsed = try NotificationsRetryVerb.parse(["--channel", "webhook", "--since", "2022-04-01", "--id", "r-2"])
        #expect(parsed.filterOptions.filter.channel == "webhook" && parsed.filterOptions.filter.since == "2022-04-01")
        #expect((try? NotificationsFailedVerb.parse(["--max", "0"])) == nil)
        await feed.stop()
        await h.shutdown()
    }
}
