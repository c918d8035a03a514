import BangfuTesting
import Bus
import Foundation
import GRDB
import Models
import Testing

@testable import Notifier

/// Payments says an operator rejected a held payment with `payment.failed`, reason
/// `hold_rejected` (the hold it ended in `rejected_hold`): the merchant reads why in Chinese.
@Suite struct HoldRejectedTextTests {
    @Test func aRejectedHoldReadsInChinese() throws {
        let (dir, database, engine) = try NotificationTextTests.makeEngine()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try database.db.writer.write { db in
            _ = try engine.entitlement(NotificationTextTests.entitlementEvent("entitlement.approved", id: "ent-3"), db)
            let rejected = CloudEvent(
                id: "payment.failed/ent-3/3", source: "/bangfu/payments", type: "payment.failed", subject: NotificationTextTests.uscc,
                time: "2022-04-01T09:00:00+08:00", datacontenttype: "application/json",
                data: [
                    "payment_id": "ent-3", "uscc": .string(NotificationTextTests.uscc), "policy_id": "catering-2022",
                    "title": "餐饮业一次性补助", "amount_fen": 845_100, "state": "voided", "reason": "hold_rejected",
                    "rejected_hold": "shared_account", "voided": true,
                ])
            try engine.payment(rejected, db)
        }
        let text = try database.db.writer.read { db in
            try String.fetchOne(db, sql: "SELECT text FROM notifications WHERE kind = 'failed'")
        }
        #expect(text?.contains("经人工核实，不予拨付") == true, "\(text ?? "none")")
        #expect(text?.contains("hold_rejected") == false)
        // The public board says it was decided, not that a transfer failed.
        let status = try database.db.writer.read { db in
            try String.fetchOne(db, sql: "SELECT board_status FROM entitlements WHERE id = 'ent-3'")
        }
        #expect(status == "不予拨付")
    }
}
