import BangfuTesting
import Foundation
import GRDB
import Models
import Testing

@testable import Notifier

/// What a merchant reads must be true of its programme: why an entitlement it was told of is
/// revoked, that a rent waiver is carried out by the lessor (not paid into a bank account), that a
/// deferral moves no money, and its own name as the board shows it.
@Suite("Notification texts for merchants")
struct MerchantTextsTests {
    typealias T = NotificationTextTests

    /// The texts queued for `events` (entitlement and payment events, in order), oldest first.
    static func texts(_ events: [CloudEvent]) throws -> [(kind: String, text: String)] {
        let (dir, database, engine) = try T.makeEngine()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try database.db.writer.write { db in
            for e in events {
                if e.type.hasPrefix("entitlement.") { _ = try engine.entitlement(e, db) } else { try engine.payment(e, db) }
            }
        }
        return try database.db.writer.read { db in
            try Row.fetchAll(db, sql: "SELECT kind, text FROM notifications ORDER BY rowid").map { ($0["kind"], $0["text"]) }
        }
    }

    @Test func anUpheldObjectionIsExplainedToTheMerchant() throws {
        let texts = try Self.texts([
            T.entitlementEvent("entitlement.proposed", id: "ent-1"),
            T.entitlementEvent("entitlement.revoked", id: "ent-1", extra: ["reason": "objection_upheld: 核实该店已于2022年3月转租"]),
        ])
        let revoked = try #require(texts.first { $0.kind == "revoked" }, "\(texts)")
        #expect(revoked.text.contains("原因：公示期间收到异议，经核实异议成立（核实该店已于2022年3月转租）"), "\(revoked.text)")
        #expect(revoked.text.contains("12345") && revoked.text.contains("ent-1"), "\(revoked.text)")
        #expect(!revoked.text.contains("objection_upheld"))
    }

    @Test func revocationReasonsReadInChinese() throws {
        let texts = try Self.texts([
            T.entitlementEvent("entitlement.proposed", id: "ent-1"),
            T.entitlementEvent("entitlement.revoked", id: "ent-1", extra: ["reason": "review_rejected by 经开区招商局 李科长: 受灾证明材料不实"]),
            T.entitlementEvent("entitlement.incomplete", id: "ent-2", extra: ["missing": ["application"]]),
            T.entitlementEvent(
                "entitlement.revoked", id: "ent-2",
                extra: [
                    "reason":
                        "facts_changed: not eligible: no application by 2022-06-30 (applications closed at 24:00 China Standard Time; 超过时限不再受理)"
                ]),
            T.entitlementEvent("entitlement.proposed", id: "ent-3"),
            T.entitlementEvent(
                "entitlement.revoked", id: "ent-3", extra: ["reason": "facts_changed: not eligible: merchant.status == \"active\""]),
            T.entitlementEvent("entitlement.approved", id: "ent-4"),
            T.entitlementEvent("entitlement.revoked", id: "ent-4", extra: ["reason": "fraud: disqualified from every programme"]),
        ]).filter { $0.kind == "revoked" }
        #expect(texts.count == 4, "\(texts)")
        guard texts.count == 4 else { return }
        #expect(texts[0].text.contains("原因：经主管部门审核未予通过（受灾证明材料不实）"), "\(texts[0].text)")
        #expect(!texts[0].text.contains("李科长"), "the reviewer's name is not sent")
        #expect(texts[1].text.contains("原因：未在申报截止日期（2022-06-30 24时）前提出申请，超过时限不再受理"), "\(texts[1].text)")
        #expect(texts[2].text.contains("原因：市场主体登记状态非正常经营（已停业、注销等）"), "\(texts[2].text)")
        #expect(texts[3].text.contains("原因：经查存在弄虚作假等情形，已取消涉企政策补助资格"), "\(texts[3].text)")
        for t in texts { #expect(!t.text.contains("facts_changed") && !t.text.contains("merchant."), "\(t.text)") }
    }

    /// Money already paid is recovered, and payments' clawback says so: no second text, and the
    /// clawback's reason (the matcher's) reads in Chinese too.
    @Test func aPaidEntitlementRevokedIsToldByItsClawback() throws {
        let reason = "review_rejected by 经开区招商局 李科长: 重复申报"
        let texts = try Self.texts([
            T.entitlementEvent("entitlement.approved", id: "ent-1"),
            T.entitlementEvent("entitlement.paid", id: "ent-1"),
            T.entitlementEvent("entitlement.revoked", id: "ent-1", extra: ["reason": .string(reason)]),
            T.paymentEvent("clawback.opened", id: "ent-1", code: reason),
        ])
        #expect(texts.map(\.kind) == ["approved", "paid", "clawback"], "\(texts)")
        #expect(texts.last?.text.contains("原因：经主管部门审核未予通过（重复申报）") == true, "\(texts)")
        #expect(texts.last?.text.contains("review_rejected") == false)
    }

    /// A rent waiver, fee waiver or deferral taken back after it was carried out is not money the merchant
    /// returns: its text says the lessor collects the waived rent, or that the deferred amounts
    /// fall due — never "补助资金0.00元 … 退回".
    @Test func aReversedWaiverOrDeferralIsNotToldAsMoneyToReturn() throws {
        let reason = "fraud: disqualified"
        let rent: JSONObject = ["benefit": "rent_waiver", "channel": "lessor"]
        let deferral: JSONObject = ["benefit": "deferral", "channel": "agency:social-insurance", "amount_fen": 0]
        let fee: JSONObject = ["benefit": "fee_waiver", "channel": "agency:water"]
        let texts = try Self.texts([
            T.entitlementEvent("entitlement.approved", id: "ent-rent", extra: rent),
            T.entitlementEvent("entitlement.paid", id: "ent-rent", extra: rent),
            T.paymentEvent("clawback.opened", id: "ent-rent", code: reason),
            T.entitlementEvent("entitlement.approved", id: "ent-defer", extra: deferral),
            T.entitlementEvent("entitlement.paid", id: "ent-defer", extra: deferral),
            T.paymentEvent("clawback.opened", id: "ent-defer", code: reason),
            T.entitlementEvent("entitlement.approved", id: "ent-fee", extra: fee),
            T.entitlementEvent("entitlement.paid", id: "ent-fee", extra: fee),
            T.paymentEvent("clawback.opened", id: "ent-fee", code: reason),
        ]).filter { $0.kind == "clawback" }
        #expect(texts.count == 3, "\(texts)")
        guard texts.count == 3 else { return }
        #expect(texts[2].text.contains("减免费用8,451.00元") && texts[2].text.contains("经办机构收回"), "\(texts[2].text)")
        #expect(texts[0].text.contains("减免房屋租金8,451.00元") && texts[0].text.contains("出租方收回"), "\(texts[0].text)")
        #expect(texts[1].text.contains("经办机构停止办理") && !texts[1].text.contains("元"), "\(texts[1].text)")
        for t in texts {
            #expect(!t.text.contains("补助资金") && !t.text.contains("退回手续"), "\(t.text)")
            #expect(t.text.contains("弄虚作假"), "the reason reads in Chinese: \(t.text)")
        }
    }

    /// A lease under three months in the period is refunded directly (seed 篇二 (二)): its texts
    /// offer no offset or extension.
    @Test func aShortLeasesWaiverIsToldAsADirectRefund() throws {
        let short: JSONObject = ["benefit": "rent_waiver", "channel": "lessor", "refund_only": true]
        let full: JSONObject = ["benefit": "rent_waiver", "channel": "lessor"]
        let texts = try Self.texts([
            T.entitlementEvent("entitlement.approved", id: "ent-1", extra: short),
            T.entitlementEvent("entitlement.paid", id: "ent-1", extra: short),
            T.entitlementEvent("entitlement.approved", id: "ent-2", extra: full),
        ])
        #expect(texts.count == 3)
        guard texts.count == 3 else { return }
        for t in texts[..<2] {
            #expect(t.text.contains("直接退付相应租金") && !t.text.contains("抵扣") && !t.text.contains("合同延期"), "\(t.text)")
        }
        #expect(texts[2].text.contains("抵扣租金或合同延期") && texts[2].text.contains("签字盖章"), "\(texts[2].text)")
    }

    @Test func aRentWaiverIsCarriedOutByTheLessorNotPaidIntoAnAccount() throws {
        let waiver: JSONObject = ["benefit": "rent_waiver", "channel": "lessor"]
        let texts = try Self.texts([
            T.entitlementEvent("entitlement.approved", id: "ent-1", extra: waiver),
            T.entitlementEvent("entitlement.paid", id: "ent-1", extra: waiver),
        ])
        #expect(texts.count == 2)
        for (kind, text) in texts {
            #expect(text.contains("出租方"), "\(kind): \(text)")
            #expect(text.contains("8,451.00元"), "\(kind): \(text)")
            #expect(!text.contains("拨付至贵单位经实名核验的银行账户") && !text.contains("已拨付"), "\(kind): \(text)")
        }
        #expect(texts[0].text.contains("30日内"), "\(texts[0].text)")
    }

    /// On the board, only cash is 已拨付 with a paid amount: a rent waiver carried out by its
    /// lessor is 已落实减免 and a deferral 已落实缓缴, with nothing in the 已拨付 column, so the
    /// board's paid total is the money that left the pools.
    @Test func onlyCashIsPaidOnTheBoard() throws {
        let (dir, database, engine) = try T.makeEngine()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let benefits: [(String, JSONObject)] = [
            ("ent-cash", [:]), ("ent-rent", ["benefit": "rent_waiver", "channel": "lessor"]),
            ("ent-fee", ["benefit": "fee_waiver", "channel": "agency:water"]),
            ("ent-defer", ["benefit": "deferral", "channel": "agency:social-insurance", "amount_fen": 0]),
        ]
        try database.db.writer.write { db in
            for (id, extra) in benefits {
                _ = try engine.entitlement(T.entitlementEvent("entitlement.approved", id: id, extra: extra), db)
                _ = try engine.entitlement(T.entitlementEvent("entitlement.paid", id: id, extra: extra), db)
            }
        }
        let rows = try database.db.writer.read { db in
            try Row.fetchAll(db, sql: "SELECT id, board_status, paid_fen, paid_at FROM entitlements ORDER BY id")
        }
        let board = Dictionary(uniqueKeysWithValues: rows.map { ($0["id"] as String, $0["board_status"] as String) })
        #expect(board == ["ent-cash": "已拨付", "ent-rent": "已落实减免", "ent-fee": "已落实减免", "ent-defer": "已落实缓缴"])
        for r in rows {
            let id: String = r["id"]
            #expect((r["paid_fen"] as Int64?) == (id == "ent-cash" ? 845_100 : nil), "\(id)")
            #expect((r["paid_at"] as String?) != nil, "\(id): the month it was carried out counts in the report")
        }
    }

    /// A rent waiver whose policy was withdrawn while the lessor held the instruction: its
    /// `entitlement.paid` carries no benefit (the matcher no longer has the policy), and the board
    /// goes by the benefit stored with the entitlement — 已落实减免, not 已拨付.
    @Test func aWaiverPaidAfterItsPolicyWasWithdrawnIsNotCash() throws {
        let (dir, database, engine) = try T.makeEngine()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try database.db.writer.write { db in
            _ = try engine.entitlement(
                T.entitlementEvent("entitlement.approved", id: "ent-w", extra: ["benefit": "rent_waiver", "channel": "lessor"]), db)
            var paid = T.entitlementEvent("entitlement.paid", id: "ent-w")
            if case .object(var d)? = paid.data {
                d["benefit"] = nil
                paid.data = .object(d)
            }
            _ = try engine.entitlement(paid, db)
        }
        let row = try database.db.writer.read { db in try Row.fetchOne(db, sql: "SELECT board_status, paid_fen FROM entitlements") }
        #expect(row?["board_status"] as String? == "已落实减免")
        #expect(row?["paid_fen"] as Int64? == nil)
    }

    /// Cash the bank sent back after settling it (camt.054) leaves the board's 已拨付 column and
    /// the monthly report's paid figures: it was not paid after all.
    @Test func cashReturnedAfterSettlementIsNoLongerPaid() throws {
        let (dir, database, engine) = try T.makeEngine()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try database.db.writer.write { db in
            _ = try engine.entitlement(T.entitlementEvent("entitlement.approved", id: "ent-1"), db)
            _ = try engine.entitlement(T.entitlementEvent("entitlement.paid", id: "ent-1"), db)
        }
        let before = try database.db.writer.read { db in try Row.fetchOne(db, sql: "SELECT paid_fen FROM entitlements") }
        #expect(before?["paid_fen"] as Int64? == 845_100)
        var returned = T.paymentEvent("payment.failed", id: "ent-1", code: "AC04")
        if case .object(var d)? = returned.data {
            d["after_settlement"] = true
            returned.data = .object(d)
        }
        try database.db.writer.write { db in try engine.payment(returned, db) }
        let row = try database.db.writer.read { db in try Row.fetchOne(db, sql: "SELECT board_status, paid_fen, paid_at FROM entitlements")
        }
        #expect(row?["board_status"] as String? == "拨付失败")
        #expect(row?["paid_fen"] as Int64? == nil)
        #expect(row?["paid_at"] as String? == nil)
    }

    /// The monthly evaluation's 受益主体（户）counts merchants: one paid under two programmes in
    /// the month is one, while both payments count in 已拨付.
    @Test func theMonthlyReportCountsMerchantsNotPayments() throws {
        let (dir, database, engine) = try T.makeEngine()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try database.db.writer.write { db in
            for id in ["ent-1", "ent-2"] {
                _ = try engine.entitlement(T.entitlementEvent("entitlement.approved", id: id), db)
                _ = try engine.entitlement(T.entitlementEvent("entitlement.paid", id: id), db)
            }
        }
        let figures = try database.db.writer.read { db in
            try MonthlyFigures.compute(month: try #require(YearMonth.parse("2022-04")), db)
        }
        #expect(figures.count == 1, "\(figures)")
        #expect(figures.first?.paidFen == Int64(1_690_200))
        #expect(figures.first?.merchantsPaid == 1)
    }

    @Test func aDeferralNamesNoAmountAndNoPayment() throws {
        let deferral: JSONObject = ["benefit": "deferral", "channel": "agency:social-insurance", "amount_fen": 0]
        let texts = try Self.texts([
            T.entitlementEvent("entitlement.approved", id: "ent-1", extra: deferral),
            T.entitlementEvent("entitlement.paid", id: "ent-1", extra: deferral),
        ])
        #expect(texts.count == 2)
        for (kind, text) in texts {
            #expect(!text.contains("0.00元") && !text.contains("银行账户") && !text.contains("已拨付"), "\(kind): \(text)")
            #expect(text.contains("不涉及资金拨付"), "\(kind): \(text)")
        }
    }

    /// A held or failed cash payment keeps the bank-account texts.
    @Test func cashKeepsItsTexts() throws {
        let texts = try Self.texts([
            T.entitlementEvent("entitlement.approved", id: "ent-1"),
            T.paymentEvent("payment.failed", id: "ent-1", code: "AC04"),
        ])
        #expect(texts.first?.text.contains("经实名核验的银行账户") == true)
        #expect(texts.last?.text.contains("更新账户") == true)
    }

    /// 线上补报 says by when: the programme's application deadline, when it takes applications and
    /// the deadline has not passed; a programme without applications (the city's extra month, the
    /// retention subsidy) invents none, and a passed deadline is not held out as still open.
    @Test func anIncompleteTextNamesTheApplicationDeadline() throws {
        let texts = try Self.texts([
            T.entitlementEvent(
                "entitlement.incomplete", id: "ent-1",
                extra: ["missing": ["application"], "window": ["apply_from": "2022-04-01", "apply_until": "2022-06-30"]]),
            T.entitlementEvent("entitlement.incomplete", id: "ent-2", extra: ["missing": ["merchant.finance"]]),
            // The engine's clock is 2022-04-01: this deadline passed the day before.
            T.entitlementEvent(
                "entitlement.incomplete", id: "ent-3",
                extra: ["missing": ["merchant.finance"], "window": ["apply_from": "2022-01-01", "apply_until": "2022-03-31"]]),
        ])
        #expect(texts.count == 3)
        guard texts.count == 3 else { return }
        #expect(texts[0].text.contains("请在申报截止日期（2022-06-30 24时）前登录") == true, "\(texts)")
        #expect(texts[0].text.contains("逾期将无法受理"), "\(texts[0].text)")
        for t in texts[1...] {
            #expect(t.text.contains("请登录本地惠企政策服务平台") && t.text.contains("补报完成后系统将自动重新核定。"), "\(t.text)")
            #expect(!t.text.contains("截止") && !t.text.contains("申报期限") && !t.text.contains("逾期"), "\(t.text)")
        }
    }

    /// A clawback that arrives before the matcher's `entitlement.paid` (the notifier reads the two
    /// feeds in no fixed order) waits for it: the merchant hears of the payment, then of its
    /// clawback — the same texts in the same order as when the feeds came the other way round.
    @Test func aClawbackThatRunsAheadWaitsForThePayment() throws {
        let ahead = try Self.texts([
            T.entitlementEvent("entitlement.approved", id: "ent-1"),
            T.paymentEvent("clawback.opened", id: "ent-1", code: "fraud: disqualified"),
            T.entitlementEvent("entitlement.paid", id: "ent-1"),
        ])
        let inOrder = try Self.texts([
            T.entitlementEvent("entitlement.approved", id: "ent-1"),
            T.entitlementEvent("entitlement.paid", id: "ent-1"),
            T.entitlementEvent("entitlement.revoked", id: "ent-1", extra: ["reason": "fraud: disqualified from every programme"]),
            T.paymentEvent("clawback.opened", id: "ent-1", code: "fraud: disqualified"),
        ])
        #expect(ahead.map(\.kind) == ["approved", "paid", "clawback"], "\(ahead)")
        #expect(inOrder.map(\.kind) == ["approved", "paid", "clawback"], "\(inOrder)")
        #expect(ahead.last?.text == inOrder.last?.text)
    }

    /// A cash text speaks of the bank account only: a rent waiver has texts of its own.
    @Test func aCashTextSaysNothingOfRent() throws {
        let texts = try Self.texts([
            T.entitlementEvent("entitlement.approved", id: "ent-1"),
            T.entitlementEvent("entitlement.paid", id: "ent-1"),
        ])
        #expect(texts.count == 2)
        for t in texts { #expect(!t.text.contains("租金") && !t.text.contains("减免") && t.text.contains("银行账户"), "\(t.text)") }
    }

    /// An individual business is addressed by the name the board shows (its trade name, its
    /// operator's name masked in it), not by a mask of its whole name.
    @Test func anIndividualBusinessIsAddressedByItsBoardName() throws {
        let texts = try Self.texts([
            T.entitlementEvent(
                "entitlement.approved", id: "ent-1",
                extra: ["kind": "individual", "name": "许昌市魏都区张伟小吃店", "public_name": "许昌市魏都区张*小吃店"]),
            T.paymentEvent("payment.held", id: "ent-1", code: "pool_short"),
        ])
        #expect(texts.count == 2)
        for (kind, text) in texts {
            #expect(text.hasPrefix("【惠企帮扶】许昌市魏都区张*小吃店：您好！"), "\(kind): \(text)")
            #expect(!text.contains("张伟"))
        }
        // Without a public name (an older matcher), the whole name is masked as before.
        let older = try Self.texts([
            T.entitlementEvent("entitlement.approved", id: "ent-2", extra: ["kind": "individual", "name": "张伟"])
        ])
        #expect(older.first?.text.hasPrefix("【惠企帮扶】张*：") == true, "\(older)")
    }
}
