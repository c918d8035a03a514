import BangfuTesting
import Foundation
import GRDB
import Models
import Storage
import Testing

@testable import Notifier

/// The texts the notifier queues, rendered from the events that cause them: every kind of
/// notification, with the amount as the templates expect it (`8,451.00`, the template adds 元).
@Suite("Notification texts")
struct NotificationTextTests {
    static let uscc: String = {
        var f = Fixtures(seed: 7)
        return f.uscc()
    }()

    static func entitlementEvent(_ type: String, id: String, extra: JSONObject = [:]) -> CloudEvent {
        var data: JSONObject = [
            "entitlement_id": .string(id), "policy_id": "catering-2022", "uscc": .string(uscc), "title": "餐饮业一次性补助",
            "benefit": "cash", "amount_fen": 845_100, "name": "某某餐饮有限公司", "kind": "enterprise", "district": "411002",
            "state": .string(String(type.dropFirst("entitlement.".count))),
        ]
        for (k, v) in extra.members { data[k] = v }
        return CloudEvent(
            id: "\(type)/\(id)", source: "/bangfu/matcher", type: type, subject: uscc, time: "2022-04-01T09:00:00+08:00",
            datacontenttype: "application/json", data: .object(data))
    }

    /// The matcher's `application.assessed` for an applicant found not eligible.
    static func assessedEvent(name: String = "某某餐饮有限公司", kind: String = "enterprise", publicName: String? = nil) -> CloudEvent {
        var data: JSONObject = [
            "assessment_id": "asm-1", "uscc": .string(uscc), "policy_id": "soe-rent-waiver", "policy_revision": 2,
            "title": "承租国有房屋的服务业小微企业和个体工商户免除3个月租金", "benefit": "rent_waiver", "outcome": "ineligible",
            "submitted_at": "2022-05-10T10:00:00+08:00", "name": .string(name), "kind": .string(kind), "district": "411002",
            "window": ["apply_from": "2022-04-01", "apply_until": "2022-06-30"],
            "reasons": ["按《中小企业划型标准规定》，贵单位划型为大型企业，不属于本政策支持的范围", "存在严重违法失信等不良信用记录"],
            "determinations": [["binding": "L-1", "result": "ineligible", "reasons": [], "trace": ["clauses": []]]],
        ]
        if let publicName { data["public_name"] = .string(publicName) }
        return CloudEvent(
            id: "application.assessed/asm-1", source: "/bangfu/matcher", type: "application.assessed", subject: uscc,
            time: "2022-05-10T10:00:00+08:00", datacontenttype: "application/json", data: .object(data))
    }

    static func paymentEvent(_ type: String, id: String, code: String) -> CloudEvent {
        CloudEvent(
            id: "\(type)/\(id)", source: "/bangfu/payments", type: type, subject: uscc, time: "2022-04-01T09:00:00+08:00",
            datacontenttype: "application/json",
            data: [
                "payment_id": .string(id), "uscc": .string(uscc), "policy_id": "catering-2022", "title": "餐饮业一次性补助",
                "amount_fen": 845_100, "hold_code": .string(code), "reason": .string(code),
            ])
    }

    /// A notifier engine on a database in a fresh temporary directory (the caller removes it).
    static func makeEngine() throws -> (String, NotifierDatabase, NotifierEngine) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("notifier-texts-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let database = try NotifierDatabase(stateDir: dir)
        let clock = TestClock(rfc3339: "2022-04-01T09:00:00+08:00")
        let outbox = Outbox(source: "/bangfu/notifier", clock: clock)
        let engine = NotifierEngine(
            disclosure: Disclosure(calendar: WorkingCalendar(), outbox: outbox, clock: clock), templates: .zhCN, outbox: outbox,
            clock: clock)
        return (dir, database, engine)
    }

    /// Runs one event of each kind through the engine and returns the queued texts by kind.
    static func queuedTexts() throws -> [NotificationKind: String] {
        let (dir, database, engine) = try makeEngine()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try database.db.writer.write { db in
            let id = "ent-1"
            let proposed = try engine.entitlement(
                entitlementEvent("entitlement.proposed", id: id, extra: ["disclosure": ["working_days": 5]]), db)
            let enrol = try #require(proposed)
            try engine.notifyDisclosure(try engine.disclosure.enrol([(enrol.0, enrol.1, enrol.2)], db), db)
            try NotifierApplier(engine: engine, channels: []).apply(
                .objection(entitlementID: id, reason: "怀疑其未实际经营", contact: "13800001234"),
                event: CloudEvent(id: "o1", source: "/public/board", type: "objection.filed", data: [:]), db: db)
            try engine.notifyCleared([id], db)
            _ = try engine.entitlement(entitlementEvent("entitlement.incomplete", id: "ent-2", extra: ["missing": ["application"]]), db)
            _ = try engine.entitlement(entitlementEvent("entitlement.approved", id: id), db)
            _ = try engine.entitlement(entitlementEvent("entitlement.paid", id: id), db)
            try engine.payment(paymentEvent("payment.failed", id: id, code: "account_closed"), db)
            try engine.payment(paymentEvent("payment.held", id: id, code: "pool_short"), db)
            try engine.payment(paymentEvent("clawback.opened", id: id, code: "fraud"), db)
            _ = try engine.entitlement(
                entitlementEvent("entitlement.revoked", id: "ent-2", extra: ["reason": "not eligible: merchant.status == \"active\""]), db)
            try engine.assessed(assessedEvent(), db)
        }
        let rows = try database.db.writer.read { db in try Row.fetchAll(db, sql: "SELECT kind, text, data FROM notifications") }
        var out: [NotificationKind: String] = [:]
        for r in rows {
            let kind = try #require(NotificationKind(rawValue: r["kind"]))
            out[kind] = r["text"]
            let data = try JSONParser.parse([UInt8](r["data"] as Data))
            if let amount = data["amount"] { #expect(amount == "8,451.00", "the amount value is without 元: \(kind)") }
        }
        return out
    }

    @Test func everyKindWritesItsAmountOnceWithOneYuan() throws {
        let texts = try Self.queuedTexts()
        #expect(Set(texts.keys) == Set(NotificationKind.allCases), "one notification of every kind")
        for kind in NotificationKind.allCases {
            let text = try #require(texts[kind], "\(kind)")
            #expect(!text.contains("元元"), "\(kind): \(text)")
            if kind.placeholders.contains("amount") {
                #expect(text.components(separatedBy: "8,451.00元").count == 2, "\(kind): the amount once, with 元: \(text)")
                #expect(text.components(separatedBy: "8,451.00").count == 2, "\(kind): \(text)")
            }
        }
    }

    /// A bank return names its reason in Chinese (ISO 20022 code AC04 → 银行账户已销户), and a
    /// return after settlement says the money came back.
    @Test func aBankReturnAfterSettlementSaysTheMoneyCameBackAndWhy() throws {
        let (dir, database, engine) = try Self.makeEngine()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try database.db.writer.write { db in
            _ = try engine.entitlement(Self.entitlementEvent("entitlement.approved", id: "ent-2"), db)
            let returned = CloudEvent(
                id: "payment.failed/ent-2/4", source: "/bangfu/payments", type: "payment.failed", subject: Self.uscc,
                time: "2022-04-01T09:00:00+08:00", datacontenttype: "application/json",
                data: [
                    "payment_id": "ent-2", "uscc": .string(Self.uscc), "policy_id": "catering-2022", "title": "餐饮业一次性补助",
                    "amount_fen": 845_100, "reason": "AC04", "after_settlement": true,
                ])
            try engine.payment(returned, db)
        }
        let text = try database.db.writer.read { db in
            try String.fetchOne(db, sql: "SELECT text FROM notifications WHERE kind = 'failed'")
        }
        #expect(text?.contains("原因：资金到账后被银行退回：银行账户已销户") == true, "\(text ?? "none")")
    }

    /// The disclosure text names the window's last day (objections until its 24:00), the same day
    /// as the board — not the next day, on whose 00:00 the window closes.
    @Test func theDisclosureTextNamesTheLastDayOfTheWindow() throws {
        let (dir, database, engine) = try Self.makeEngine()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try database.db.writer.write { db in
            let proposed = try engine.entitlement(
                Self.entitlementEvent("entitlement.proposed", id: "ent-9", extra: ["disclosure": ["working_days": 5]]), db)
            let enrol = try #require(proposed)
            try engine.notifyDisclosure(try engine.disclosure.enrol([(enrol.0, enrol.1, enrol.2)], db), db)
        }
        let (text, lastDay, closesAt) = try database.db.writer.read { db in
            (
                try String.fetchOne(db, sql: "SELECT text FROM notifications WHERE kind = 'disclosure'") ?? "",
                try String.fetchOne(db, sql: "SELECT closes_on FROM rounds") ?? "",
                try String.fetchOne(db, sql: "SELECT closes_at FROM rounds") ?? ""
            )
        }
        // Opened on Friday 2022-04-01: five working days end on Friday 2022-04-08.
        #expect(lastDay == "2022-04-08")
        #expect(closesAt.hasPrefix("2022-04-09T00:00:00"))
        #expect(text.contains("公示期至2022-04-08"), "\(text)")
        #expect(!text.contains("2022-04-09"), "\(text)")
    }
}

extension NotificationTextTests {
    /// An entitlement whose objection was dismissed does not clear as 无异议: the board says
    /// 异议不成立 and the merchant's text says the objection was examined and not upheld. One
    /// without an objection clears as before.
    @Test func aDismissedObjectionIsNotClearedAsNoObjection() throws {
        let (dir, database, engine) = try Self.makeEngine()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let applier = NotifierApplier(engine: engine, channels: [])
        try database.db.writer.write { db in
            var enrolled: [(String, String, Int)] = []
            for id in ["ent-quiet", "ent-objected"] {
                let proposed = try engine.entitlement(
                    Self.entitlementEvent("entitlement.proposed", id: id, extra: ["disclosure": ["working_days": 5]]), db)
                let e = try #require(proposed)
                enrolled.append((e.0, e.1, e.2))
            }
            try engine.notifyDisclosure(try engine.disclosure.enrol(enrolled, db), db)
            let filed = CloudEvent(id: "o1", source: "/public/board", type: "objection.filed", data: [:])
            try applier.apply(.objection(entitlementID: "ent-objected", reason: "怀疑", contact: nil), event: filed, db: db)
            let resolved = CloudEvent(id: "o2", source: "/ops/test", type: "objection.resolved", data: [:])
            try applier.apply(.resolve(entitlementID: "ent-objected", upheld: false, by: "区人社局", note: nil), event: resolved, db: db)
            try engine.disclosure.clear(["ent-quiet", "ent-objected"], round: "r", db)
            try engine.notifyCleared(["ent-quiet", "ent-objected"], db)
        }
        try database.db.writer.read { db in
            let board = try Dictionary(
                uniqueKeysWithValues: Row.fetchAll(db, sql: "SELECT id, board_status FROM entitlements").map {
                    ($0["id"] as String, $0["board_status"] as String)
                })
            #expect(board == ["ent-quiet": "无异议", "ent-objected": "异议不成立"])
            let texts = try Row.fetchAll(db, sql: "SELECT text FROM notifications WHERE kind = 'cleared' ORDER BY key").map {
                $0["text"] as String
            }
            let objected = try #require(texts.first { $0.contains("ent-objected") })
            let quiet = try #require(texts.first { $0.contains("ent-quiet") })
            #expect(objected.contains("公示期间收到的异议经核查不成立") && !objected.contains("无异议"), "\(objected)")
            #expect(quiet.contains("经核无异议"), "\(quiet)")
        }
    }
}

extension NotificationTextTests {
    /// The merchant learns an objection is being checked and by when it can give its side (the
    /// window's last day); the objection's reason and the objector's contact stay out of it.
    @Test func theMerchantIsToldOfAnObjectionButNotWhoOrWhy() throws {
        let text = try #require(try Self.queuedTexts()[.objection])
        #expect(text.contains("公示期间收到异议") && text.contains("ent-1"), "\(text)")
        #expect(text.range(of: #"（\d{4}-\d{2}-\d{2} 24时）前"#, options: .regularExpression) != nil, "the last day: \(text)")
        #expect(!text.contains("怀疑其未实际经营") && !text.contains("13800001234"), "\(text)")
    }
}
