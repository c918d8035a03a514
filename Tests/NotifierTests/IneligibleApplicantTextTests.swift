import BangfuTesting
import Foundation
import GRDB
import Models
import Storage
import Testing

@testable import Notifier

/// 不符合条件告知: the matcher's `application.assessed` becomes a zh-CN notification that names
/// the programme, the reasons and what the merchant can do, addressed as the other texts are.
@Suite("Texts for applicants found not eligible")
struct IneligibleApplicantTextTests {
    static func queued(_ event: CloudEvent) throws -> [Row] {
        let (dir, database, engine) = try NotificationTextTests.makeEngine()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try database.db.writer.write { db in
            try engine.assessed(event, db)
            // A redelivery of the same event queues nothing more.
            try engine.assessed(event, db)
        }
        return try database.db.writer.read { db in
            try Row.fetchAll(db, sql: "SELECT kind, uscc, text, data FROM notifications")
        }
    }

    @Test func theApplicantIsToldWhichProgrammeWhyNotAndWhatToDo() throws {
        let rows = try Self.queued(NotificationTextTests.assessedEvent())
        #expect(rows.count == 1)
        let row = try #require(rows.first)
        #expect(row["kind"] as String == "ineligible")
        #expect(row["uscc"] as String == NotificationTextTests.uscc)
        let text: String = row["text"]
        #expect(text.hasPrefix("【惠企帮扶】某某餐饮有限公司：您好！"), "\(text)")
        #expect(text.contains("“承租国有房屋的服务业小微企业和个体工商户免除3个月租金”"), "\(text)")
        #expect(text.contains("不符合该政策的享受条件"), "\(text)")
        #expect(text.contains("原因：按《中小企业划型标准规定》，贵单位划型为大型企业，不属于本政策支持的范围；存在严重违法失信等不良信用记录。"), "\(text)")
        #expect(text.contains("如对结果有异议或情况有变化"), "\(text)")
        #expect(text.contains("2022-06-30 24时"), "the application deadline: \(text)")
        #expect(text.contains("12345政务服务便民热线"), "\(text)")
        #expect(text.contains("业务编号：asm-1"), "\(text)")
        let data = try JSONParser.parse([UInt8](row["data"] as Data))
        #expect(data["event"]?.stringValue == "application.assessed")
    }

    /// An individual business is addressed by the board's name (its operator's name masked in it),
    /// or masked whole without one — as every other text.
    @Test func anIndividualBusinessIsAddressedMasked() throws {
        let masked = try #require(
            try Self.queued(NotificationTextTests.assessedEvent(name: "张三丰", kind: "individual")).first)
        let text: String = masked["text"]
        #expect(!text.contains("张三丰"), "\(text)")
        #expect(text.hasPrefix("【惠企帮扶】" + Mask.name("张三丰") + "：您好！"), "\(text)")
        let board = try #require(
            try Self.queued(NotificationTextTests.assessedEvent(name: "张三丰面馆", kind: "individual", publicName: "张*丰面馆")).first)
        #expect((board["text"] as String).hasPrefix("【惠企帮扶】张*丰面馆：您好！"))
    }

    /// Nothing goes on the board: an assessment is no entitlement.
    @Test func nothingGoesOnTheBoard() throws {
        let (dir, database, engine) = try NotificationTextTests.makeEngine()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try database.db.writer.write { db in try engine.assessed(NotificationTextTests.assessedEvent(), db) }
        let n = try database.db.writer.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM entitlements") }
        #expect(n == 0)
    }
}

/// Registry + matcher + notifier in process: a large enterprise applies for the state-property
/// rent waiver and is told, once, that it does not qualify and why.
@Suite("Ineligible applicant end to end")
struct IneligibleApplicantEndToEndTests {
    @Test func aLargeEnterpriseThatAppliesHearsBack() async throws {
        let h = try Harness(start: "2022-05-05T09:00:00+08:00")
        let registry = try await h.startRegistry()
        _ = try await h.startStandIn("payments")
        let notifier = try await h.startNotifier()
        let matcher = try await h.startMatcher()
        var f = Fixtures(seed: 93)
        let big = f.uscc()
        let facts = [
            f.registration(uscc: big, name: "大酒店集团有限公司"),
            Fixtures.finance(uscc: big, employees: 400, revenueFen: 20_000 * 1_000_000, assetsFen: 0),
            Fixtures.lease(id: "L-BIG", tenant: big, rentFen: 5_000_000),
        ]
        #expect(try await registry.publish(facts).allSatisfy { $0.status == .accepted })
        let yaml = try String(
            contentsOf: NotifierEndToEndTests.repo.appendingPathComponent("policies/soe-rent-waiver.yaml"), encoding: .utf8)
        #expect(
            try await matcher.publish(Fixtures.event("policy.published", ["yaml": .string(yaml)], source: "/ops/test")).status == .accepted)
        let feed = try h.collect("matcher")
        // The matcher has the profile once `explain` answers for it.
        for _ in 0..<2_000 {
            if try await matcher.query(["op": "explain", "uscc": .string(big), "policy": "soe-rent-waiver"])["op"] == "explanation" {
                break
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        let apply = Fixtures.event(
            "application.submitted",
            ["uscc": .string(big), "policy_id": "soe-rent-waiver", "submitted_at": "2022-05-05T10:00:00+08:00", "documents": ["申请书.pdf"]],
            subject: big, source: "/portal/xuchang")
        #expect(try await matcher.publish(apply).status == .accepted)
        #expect(await feed.wait { $0.contains { $0.type == "application.assessed" && $0.subject == big } })
        let notifierFeed = try h.collect("notifier")
        #expect(
            await notifierFeed.wait { events in
                events.contains {
                    $0.type == "notification.sent" && $0.data?["uscc"]?.stringValue == big && $0.data?["kind"] == "ineligible"
                }
            })
        let lines = try String(contentsOfFile: h.directory + "/notifier/notifications.jsonl", encoding: .utf8).split(separator: "\n")
            .compactMap { try? JSONParser.parse(String($0)) }
        let sent = lines.filter { $0["uscc"]?.stringValue == big && $0["kind"]?.stringValue == "ineligible" }
        #expect(sent.count == 1)
        let text = sent.first?["text"]?.stringValue ?? ""
        #expect(text.contains("“承租国有房屋的服务业小微企业和个体工商户免除3个月租金”申请已受理"), "\(text)")
        #expect(text.contains("大型企业"), "\(text)")
        #expect(text.contains("如对结果有异议或情况有变化"), "\(text)")
        await feed.stop()
        await notifierFeed.stop()
        await h.shutdown()
    }
}
