import Foundation
import GRDB
import ISO20022
import Logging
import Storage
import Testing

@testable import Models
@testable import Payments

/// Amounts the ledger never bounded: no channel takes an approval over the most one payment may
/// be, and a batch's total is summed with overflow checked (never a trap inside the
/// `payments.batch` transaction, which would crash the service at every retry).
@Suite struct AmountBoundsTests {
    typealias R = PaymentsReviewTests

    /// An approval over `Ledger.maxAmountFen` is held `invalid_amount` on every channel; one of
    /// exactly that amount goes on.
    @Test func anApprovalOverTheMostOnePaymentMayBeIsHeldOnEveryChannel() throws {
        let f = try EngineFixture()
        try f.verified(R.a, name: "甲", account: "6222000000000001")
        try f.merchant(R.b, name: "乙")
        try f.merchant(R.c, name: "丙")
        try f.fund(1_000_000)
        let over = Ledger.maxAmountFen + 1
        try f.approve(R.idA, uscc: R.a, amountFen: over)
        try f.approve(R.idB, uscc: R.b, amountFen: over, policy: "si", benefit: "deferral", channel: "agency:si", pool: nil)
        try f.approve(R.idC, uscc: R.c, amountFen: Ledger.maxAmountFen, policy: "si", benefit: "deferral", channel: "agency:si", pool: nil)
        for id in [R.idA, R.idB] {
            let p = try f.payment(id)
            #expect(p.state == .held && p.holdCode == "invalid_amount", "\(id): \(p.state) \(p.holdCode ?? "-")")
            #expect(try f.events("payment.held", id).last?["hold_code"]?.stringValue == "invalid_amount")
        }
        #expect(try f.state(R.idC) == .ready)
        #expect(try f.balanced())
    }

    /// Ready payments whose amounts (from a database made before approvals were bounded) would
    /// overflow the file's total: the batch is no trap; each such payment is held `invalid_amount`.
    @Test func aBatchWhoseTotalWouldOverflowIsNoTrap() async {
        await #expect(processExitsWith: .success) {
            let f = try EngineFixture()
            try f.merchant(R.a, name: "甲")
            try f.merchant(R.b, name: "乙")
            try f.approve(R.idA, uscc: R.a, amountFen: 1_000, policy: "si", benefit: "deferral", channel: "agency:si", pool: nil)
            try f.approve(R.idB, uscc: R.b, amountFen: 1_000, policy: "si", benefit: "deferral", channel: "agency:si", pool: nil)
            try f.write { db in try db.execute(sql: "UPDATE payments SET amount_fen = ?", arguments: [Int64.max / 2 + 1]) }
            let file = try f.write { db in try f.engine.batch(channel: "agency:si", db) }
            guard file == nil else { exit(2) }
            for id in [R.idA, R.idB] {
                let p = try f.payment(id)
                guard p.state == .held, p.holdCode == "invalid_amount" else { exit(3) }
            }
        }
    }

    /// A batch takes payments while its total stays within what a control sum carries
    /// (`YuanAmount.maxFen`); the rest wait for the next batch, as those over `max` do.
    @Test func aBatchStopsBeforeItsTotalPassesTheControlSumsMaximum() throws {
        let f = try EngineFixture()
        var ids: [String] = []
        try f.write { db in
            for k in 0..<1_001 {
                let uscc = String(format: "91411002MA%07dX", k)
                let id = "ent-" + String(format: "%032x", k)
                ids.append(id)
                try f.engine.profiled(["uscc": .string(uscc), "name": .string("商户\(k)"), "kind": "enterprise", "status": "active"], db)
                try f.engine.approved(
                    [
                        "entitlement_id": .string(id), "policy_id": "si", "uscc": .string(uscc), "amount_fen": .int(Ledger.maxAmountFen),
                        "benefit": "deferral", "channel": "agency:si", "binding": "merchant",
                    ], sequence: UInt64(k + 1), db)
            }
        }
        let first = try #require(try f.batch("agency:si"))
        let header = try JSONParser.parse(String(first.content.split(separator: "\n")[0]))
        #expect(header["count"]?.intValue == 999)
        #expect(header["total_fen"]?.intValue == 999 * Ledger.maxAmountFen)
        #expect(try f.state(ids[998]) == .instructed)
        #expect(try f.state(ids[999]) == .ready && f.state(ids[1_000]) == .ready, "they wait for the next batch")
        let second = try #require(try f.batch("agency:si"))
        #expect(try JSONParser.parse(String(second.content.split(separator: "\n")[0]))["count"]?.intValue == 2)
    }
}
