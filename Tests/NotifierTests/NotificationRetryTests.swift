import BangfuTesting
import Bus
import Foundation
import GRDB
import Models
import ServiceKit
import Testing

@testable import Notifier

/// A webhook outage loses nothing (DESIGN §9: retries with backoff, every attempt recorded): a
/// notification the webhook's quick retries could not deliver is `failed`, `notification.failed`
/// goes out once, and later passes (1 min, doubling to 1 h, for 72 h, on the service's clock)
/// deliver it when the webhook is back, `notification.sent`; an operator re-sends failed ones
/// with `notifications.retry`, and never one that was delivered.
@Suite("Notification retries", .serialized)
struct NotificationRetryTests {
    /// A loopback port nothing listens on (a receiver listened there and stopped), where a
    /// receiver can listen again later.
    static func closedPort() throws -> Int {
        let r = try Receiver("always", 200)
        let port = r.port
        r.stop()
        return port
    }

    struct Running {
        let h: Harness
        let notifier: RunningService
        let payments: RunningService
        let feed: FeedCollector

        /// A `payment.held` the merchant must hear of: one notification of kind `held`.
        func hold(_ uscc: String, payment: String, type: String = "payment.held") async throws {
            let held = Fixtures.event(
                type,
                [
                    "payment_id": .string(payment), "uscc": .string(uscc), "policy_id": "catering-2022", "title": "餐饮业一次性补助",
                    "amount_fen": 200_000, "hold_code": "pool_short", "reason": "bank_rejected",
                ],
                subject: uscc)
            #expect(try await payments.publish(held).status == .accepted)
        }

        /// The notification of `uscc` in `notification.list` (failed ones).
        func failed(_ uscc: String) async throws -> JSON? {
            try await notifier.query(["op": "notification.list", "uscc": .string(uscc)])["items"]?.arrayValue?.first
        }

        /// Waits (polling the notifier's own answers) until `done` holds for what it lists as failed.
        func untilFailed(_ done: @escaping @Sendable ([JSON]) -> Bool) async throws -> [JSON] {
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline {
                let items = try await notifier.query(["op": "notification.list"])["items"]?.arrayValue ?? []
                if done(items) { return items }
                try await Task.sleep(for: .milliseconds(20))
            }
            Issue.record("the failed notifications never reached the expected state")
            return []
        }

        /// The events of `type` about the notification `key` in the notifier's outbox (read
        /// through replay: everything committed so far).
        func events(_ type: String, key: String) async throws -> [CloudEvent] {
            try await notifier.replayAll().filter { $0.type == type && $0.data?["key"]?.stringValue == key }
        }

        func retry(_ data: JSON, id: String = UUID().uuidString) async throws -> Ack {
            try await notifier.publish(Fixtures.event("notifications.retry", data, source: "/bangfu/cli/ops", id: id))
        }

        func stop() async {
            await feed.stop()
            await h.shutdown()
        }
    }

    static func start(port: Int, settings: [String: String] = [:]) async throws -> Running {
        let h = try Harness(start: "2022-04-01T09:00:00+08:00")
        try await h.startStandIn("registry")
        try await h.startStandIn("matcher")
        let payments = try await h.startStandIn("payments")
        let notifier = try await h.startNotifier(
            settings: ["webhook-url": "http://127.0.0.1:\(port)/notify"].merging(settings) { $1 })
        return Running(h: h, notifier: notifier, payments: payments, feed: try h.collect("notifier"))
    }

    /// How many requests the receiver got for `key`.
    static func requests(_ receiver: Receiver, key: String) throws -> Int {
        try receiver.requests().filter { $0["headers"]?["idempotency-key"]?.stringValue == key }.count
    }

    @Test func aNotificationThatFailedDuringAnOutageIsDeliveredOnceWhenTheWebhookIsBack() async throws {
        let port = try Self.closedPort()
        let s = try await Self.start(port: port)
        var f = Fixtures(seed: 11)
        let (a, b) = (f.uscc(), f.uscc())
        try await s.hold(a, payment: "ent-outage-a")

        // The quick retries fail against the closed port: failed, and another pass is scheduled.
        #expect(await s.feed.wait { $0.contains { $0.type == "notification.failed" && $0.subject == a } })
        let item = try #require(try await s.failed(a))
        let key = try #require(item["key"]?.stringValue)
        #expect(item["attempts"]?.intValue == 6, "the file's one and the webhook's five")
        #expect(item["channels"] == ["webhook"], "the JSON Lines file took it")
        #expect(item["error"]?.stringValue?.hasPrefix("webhook: cannot connect") == true, "\(item)")
        let next = try #require(item["next_attempt_at"]?.stringValue.flatMap(Timestamp.parse))
        let failedAt = try #require(item["failed_at"]?.stringValue.flatMap(Timestamp.parse))
        #expect(failedAt == s.h.clock.now())
        #expect((54...66).contains(next.timeIntervalSince(failedAt)), "the first later pass is about a minute on")
        let failedEvent = try #require(try await s.events("notification.failed", key: key).first)
        #expect(failedEvent.data?["next_attempt_at"]?.stringValue == item["next_attempt_at"]?.stringValue)
        #expect(failedEvent.data?["channels"] == ["webhook"])

        // The webhook is back; the service's clock passes the next attempt.
        let receiver = try Receiver("always", 200, port: port)
        defer { receiver.stop() }
        s.h.clock.advance(seconds: 120)
        #expect(await s.feed.wait { $0.contains { $0.type == "notification.sent" && $0.data?["key"]?.stringValue == key } })
        #expect(try Self.requests(receiver, key: key) == 1)
        #expect(try await s.failed(a) == nil)

        // Days pass and another notification goes out (a pass after every later attempt would
        // have been due): the first is not sent again, and each event went out once.
        s.h.clock.advance(seconds: 7 * 86_400)
        try await s.hold(b, payment: "ent-outage-b")
        #expect(await s.feed.wait { $0.contains { $0.type == "notification.sent" && $0.subject == b } })
        #expect(try Self.requests(receiver, key: key) == 1)
        #expect(try await s.events("notification.failed", key: key).count == 1)
        let sent = try await s.events("notification.sent", key: key)
        #expect(sent.count == 1)
        #expect(sent.first?.data?["attempts"]?.intValue == 7, "the file's, five quick ones, then the one that delivered it")
        let lines = try String(contentsOfFile: s.h.directory + "/notifier/notifications.jsonl", encoding: .utf8)
            .split(separator: "\n").compactMap { try? JSONParser.parse(String($0)) }
        #expect(lines.filter { $0["key"]?.stringValue == key }.count == 1, "the file took it once, and is not written again")
        let summary = try await s.notifier.query(["op": "notification.summary"])
        #expect(summary["failed"]?.intValue == 0 && summary["pending"]?.intValue == 0)
        await s.stop()
    }

    @Test func theRetryCommandResendsFailedNotificationsAndNeverOneThatWasDelivered() async throws {
        let port = try Self.closedPort()
        let s = try await Self.start(port: port)
        var f = Fixtures(seed: 12)
        let (a, b, c, d) = (f.uscc(), f.uscc(), f.uscc(), f.uscc())
        try await s.hold(a, payment: "ent-retry-a")
        try await s.hold(b, payment: "ent-retry-b", type: "payment.failed")
        let both = try await s.untilFailed { $0.count == 2 }
        let keyA = try #require(both.first { $0["uscc"]?.stringValue == a }?["key"]?.stringValue)
        let keyB = try #require(both.first { $0["uscc"]?.stringValue == b }?["key"]?.stringValue)

        // The webhook is back; c goes out at once. a and b wait for their next pass (the clock
        // stands still), or for an operator.
        let receiver = try Receiver("always", 200, port: port)
        defer { receiver.stop() }
        try await s.hold(c, payment: "ent-retry-c")
        #expect(await s.feed.wait { $0.contains { $0.type == "notification.sent" && $0.subject == c } })
        #expect(try await s.untilFailed { $0.count == 2 }.count == 2)

        // Filters: an entitlement, a kind, a time, a channel.
        let none = try await s.retry(["since": "2022-04-02"])
        #expect(none.status == .accepted)
        #expect(none.note == "requeued 0 failed notifications")
        let byEntitlement = try await s.retry(["entitlement_id": "ent-retry-a", "channel": "webhook"])
        #expect(byEntitlement.note == "requeued 1 failed notification")
        #expect(await s.feed.wait { $0.contains { $0.type == "notification.sent" && $0.data?["key"]?.stringValue == keyA } })
        let byKind = try await s.retry(["kind": "failed", "since": "2022-04-01T09:00:00+08:00"])
        #expect(byKind.note == "requeued 1 failed notification")
        #expect(await s.feed.wait { $0.contains { $0.type == "notification.sent" && $0.data?["key"]?.stringValue == keyB } })

        // Everything was delivered: a retry of everything re-queues nothing, and sends nothing
        // again (d, queued after it, goes out in a pass that would have sent them).
        let all = try await s.retry([:])
        #expect(all.note == "requeued 0 failed notifications")
        try await s.hold(d, payment: "ent-retry-d")
        #expect(await s.feed.wait { $0.contains { $0.type == "notification.sent" && $0.subject == d } })
        for key in [keyA, keyB] {
            #expect(try Self.requests(receiver, key: key) == 1, "\(key)")
            #expect(try await s.events("notification.sent", key: key).count == 1)
            #expect(try await s.events("notification.failed", key: key).count == 1)
        }
        let sentC = try #require(s.feed.events.first { $0.type == "notification.sent" && $0.subject == c }?.data?["key"]?.stringValue)
        #expect(try Self.requests(receiver, key: sentC) == 1)

        // What the command refuses.
        let unknownChannel = try await s.retry(["channel": "sms"])
        #expect(unknownChannel.rejection?.code == .invalidData)
        #expect(unknownChannel.rejection?.field == "data.channel")
        #expect(try await s.retry(["kind": "postcard"]).rejection?.field == "data.kind")
        #expect(try await s.retry(["since": "yesterday"]).rejection?.code == .invalidDate)
        #expect(try await s.retry(["uscc": ""]).rejection?.field == "data.uscc")
        let misspelt = try await s.retry(["entitlement": "ent-retry-a"])
        #expect(misspelt.rejection?.code == .invalidData, "a misspelt filter re-sends nothing")
        #expect(misspelt.rejection?.field == "data.entitlement")
        #expect(try await s.retry(.null).rejection?.field == "data")
        await s.stop()
    }

    /// A notification that fails again after an operator's re-send is a new failure: a second
    /// `notification.failed` (its own id) and a fresh horizon.
    @Test func aResendThatFailsAgainIsANewFailure() async throws {
        let port = try Self.closedPort()
        let s = try await Self.start(port: port)
        var f = Fixtures(seed: 13)
        let a = f.uscc()
        try await s.hold(a, payment: "ent-again-a")
        let first = try await s.untilFailed { $0.count == 1 }
        let key = try #require(first.first?["key"]?.stringValue)
        // (The clock stands still: no pass of its own comes between.)
        let retried = try await s.retry(["key": .string(key)])
        #expect(retried.note == "requeued 1 failed notification")
        let again = try await s.untilFailed { ($0.first?["attempts"]?.intValue ?? 0) >= 11 }
        #expect(again.first?["attempts"]?.intValue == 11, "the webhook's five again; the file is not asked again")
        #expect(again.first?["passes"]?.intValue == 1, "counted from the re-send")
        #expect(again.first?["next_attempt_at"]?.isNull == false)
        let failed = try await s.events("notification.failed", key: key)
        #expect(failed.count == 2)
        #expect(Set(failed.map(\.id)).count == 2, "a new failure, a new event id")
        await s.stop()
    }

    /// Past the horizon a notification is given up: no further pass, it waits for an operator.
    @Test func aNotificationIsGivenUpAfterTheHorizon() async throws {
        let port = try Self.closedPort()
        let s = try await Self.start(port: port, settings: ["notification-retry-hours": "1"])
        var f = Fixtures(seed: 14)
        let a = f.uscc()
        try await s.hold(a, payment: "ent-horizon-a")
        let first = try await s.untilFailed { $0.count == 1 }
        let key = try #require(first.first?["key"]?.stringValue)
        #expect(first.first?["next_attempt_at"]?.isNull == false)
        s.h.clock.advance(seconds: 2 * 3600)
        let given = try await s.untilFailed { ($0.first?["passes"]?.intValue ?? 0) >= 2 }
        #expect(given.first?["next_attempt_at"]?.isNull == true)
        #expect(given.first?["attempts"]?.intValue == 11)
        let summary = try await s.notifier.query(["op": "notification.summary"])
        #expect(summary["failed"]?.intValue == 1)
        #expect(summary["retry_scheduled"]?.intValue == 0)
        #expect(try await s.events("notification.failed", key: key).count == 1)
        await s.stop()
    }

    /// While the webhook is still down, a pass tries one of the notifications due on it; the
    /// others wait for their next pass without an attempt (an outage costs one attempt per
    /// pass, not one per notification).
    @Test func aChannelThatIsStillDownIsAskedOncePerPass() async throws {
        let port = try Self.closedPort()
        let s = try await Self.start(port: port)
        var f = Fixtures(seed: 15)
        let (a, b, c) = (f.uscc(), f.uscc(), f.uscc())
        try await s.hold(a, payment: "ent-probe-a")
        try await s.hold(b, payment: "ent-probe-b")
        try await s.hold(c, payment: "ent-probe-c")
        _ = try await s.untilFailed { $0.count == 3 }
        s.h.clock.advance(seconds: 3600)
        let after = try await s.untilFailed { items in items.count == 3 && items.allSatisfy { $0["passes"]?.intValue == 2 } }
        #expect(after.map { $0["attempts"]?.intValue ?? 0 }.sorted() == [6, 6, 11])
        let now = Timestamp.format(s.h.clock.now())
        #expect(after.allSatisfy { ($0["next_attempt_at"]?.stringValue ?? "") > now }, "each has its next pass")
        await s.stop()
    }

    @Test func theScheduleDoublesToTheCapWithJitterAndEndsAtTheHorizon() throws {
        let r = RetrySchedule()
        for (pass, base) in [(1, 60.0), (2, 120), (3, 240), (6, 1920), (7, 3600), (70, 3600), (10_000, 3600)] {
            let d = Double(r.delay(afterPass: pass, key: "k-\(pass)"))
            #expect(d >= (base * 0.9).rounded(.down) && d <= (base * 1.1).rounded(.up), "pass \(pass): \(d)")
            #expect(r.delay(afterPass: pass, key: "k-\(pass)") == Int64(d), "the same for the same key and pass")
        }
        let start = try #require(Timestamp.parse("2022-04-01T09:00:00+08:00"))
        let late = start.addingTimeInterval(72 * 3600 - 30)
        #expect(
            r.next(afterPass: 80, key: "k", failedAt: start, now: late) == start.addingTimeInterval(72 * 3600), "the last at the horizon")
        #expect(r.next(afterPass: 81, key: "k", failedAt: start, now: start.addingTimeInterval(72 * 3600)) == nil)
        #expect(RetrySchedule(horizonSeconds: 0).next(afterPass: 1, key: "k", failedAt: start, now: start) == nil)
        #expect(throws: ConfigError.self) { try RetrySchedule.parseHours("-1", setting: "notification-retry-hours") }
        #expect(try RetrySchedule.parseHours("72", setting: "x") == 72 * 3600)
    }

    /// Notifications that failed before `notifier-v5-retries` keep what their one pass says:
    /// the channels that took them are not asked again, and none is retried on its own.
    @Test func notificationsThatFailedBeforeTheMigrationWaitForAnOperator() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("notifier-v5-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let old = try DatabaseQueue(path: dir + "/notifier.sqlite")
        try old.write { db in
            try db.execute(
                sql: """
                    CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY);
                    INSERT INTO grdb_migrations VALUES
                        ('notifier-v1'), ('notifier-v2-indexes'), ('notifier-v3-rowid-tables'), ('notifier-v4-public-name');
                    CREATE TABLE notifications (
                        key TEXT NOT NULL UNIQUE, uscc TEXT NOT NULL, kind TEXT NOT NULL, text TEXT NOT NULL, data BLOB NOT NULL,
                        state TEXT NOT NULL, attempts BLOB, created_at TEXT NOT NULL, updated_at TEXT NOT NULL
                    );
                    CREATE INDEX notifications_pending ON notifications(state, created_at);
                    """)
            let attempts = #"[{"channel":"jsonl","ok":true},{"channel":"webhook","ok":false,"error":"HTTP 503"}]"#
            try db.execute(
                sql: "INSERT INTO notifications VALUES ('f', 'u', 'held', '文本', x'7b7d', 'failed', ?, '2022-04-01T09:00:00.000+08:00', ?)",
                arguments: [Data(attempts.utf8), "2022-04-01T09:00:05.000+08:00"])
            try db.execute(
                sql: "INSERT INTO notifications VALUES ('s', 'u', 'held', '文本', x'7b7d', 'sent', NULL, ?, ?)",
                arguments: ["2022-04-01T09:00:00.000+08:00", "2022-04-01T09:00:00.000+08:00"])
        }
        try old.close()
        let database = try NotifierDatabase(stateDir: dir)
        try database.db.writer.read { db in
            let f = try #require(try Row.fetchOne(db, sql: "SELECT * FROM notifications WHERE key = 'f'"))
            #expect(f["failed_at"] as String? == "2022-04-01T09:00:05.000+08:00")
            #expect(f["next_attempt_at"] as String? == nil)
            #expect(f["delivered_channels"] as String? == "jsonl")
            #expect(f["failed_channels"] as String? == "webhook")
            #expect(f["last_error"] as String? == "webhook: HTTP 503")
            #expect(f["attempt_count"] as Int == 2)
            let s = try #require(try Row.fetchOne(db, sql: "SELECT * FROM notifications WHERE key = 's'"))
            #expect(s["failed_at"] as String? == nil && s["delivered_channels"] as String? == nil)
        }
    }
}
