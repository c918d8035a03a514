import BangfuTesting
import Bus
import Foundation
import Models
import Testing

/// The notifier reads time through the clock it is given (DESIGN §11), its delivery channels
/// included: with the harness's test clock (as with `--simulated-clock`) a delivered
/// notification is stamped with the service's time, not the machine's.
@Suite("Notifier clock", .serialized)
struct NotifierClockTests {
    @Test func deliveredNotificationsAreStampedWithTheServicesClock() async throws {
        let h = try Harness(start: "2022-04-01T09:00:00+08:00")
        try await h.startStandIn("registry")
        try await h.startStandIn("matcher")
        let payments = try await h.startStandIn("payments")
        _ = try await h.startNotifier()
        let feed = try h.collect("notifier")
        var f = Fixtures(seed: 5)
        let uscc = f.uscc()
        let held = Fixtures.event(
            "payment.held",
            [
                "payment_id": "ent-clock-1", "uscc": .string(uscc), "policy_id": "catering-2022", "title": "餐饮业一次性补助",
                "amount_fen": 200_000, "hold_code": "pool_short",
            ],
            subject: uscc)
        #expect(try await payments.publish(held).status == .accepted)
        #expect(await feed.wait { $0.contains { $0.type == "notification.sent" && $0.data?["uscc"]?.stringValue == uscc } })
        let lines = try String(contentsOfFile: h.directory + "/notifier/notifications.jsonl", encoding: .utf8)
            .split(separator: "\n").map { try JSONParser.parse(String($0)) }
        let line = try #require(lines.first { $0["uscc"]?.stringValue == uscc })
        #expect(line["kind"] == "held")
        #expect(line["at"]?.stringValue == Timestamp.format(h.clock.now()), "stamped by the test clock, not the wall clock")
        #expect(line["at"]?.stringValue == "2022-04-01T09:00:00.000+08:00")
        await feed.stop()
        await h.shutdown()
    }
}
