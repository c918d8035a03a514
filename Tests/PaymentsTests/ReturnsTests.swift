import BangfuTesting
import Bus
import Foundation
import ISO20022
import Models
import Testing

/// Bank returns through the inbox directory, and a failure rate that pauses the channel.
@Suite("Payment returns", .serialized)
struct ReturnsTests {
    /// Three treasury payments, instructed in one batch; returns their EndToEndIds by USCC.
    func instructedBatch(_ w: PaymentsEndToEndTests.World, seed: UInt64) async throws -> [String: String] {
        var f = Fixtures(seed: seed)
        var facts: [CloudEvent] = []
        var usccs: [String] = []
        for i in 0..<3 {
            let u = f.uscc()
            usccs.append(u)
            facts += [f.registration(uscc: u, name: "回单商户\(i)"), w.account(u, holder: "回单商户\(i)", number: "62220300000\(10 + i)")]
        }
        try await w.registry.publish(facts).forEach { #expect($0.status == .accepted) }
        _ = try await w.command("pool.funded", ["pool": "test-pool", "source": "local", "amount_fen": 1_000_000])
        _ = try await w.matcher.publish(
            Fixtures.event("policy.published", ["yaml": .string(PaymentsEndToEndTests.policy)], source: "/ops/test"))
        let payments = w.payments
        while try await payments.query(["op": "payment.list", "state": "ready"])["items"]?.arrayValue?.count ?? 0 < 3 { await Task.yield() }
        #expect(try await w.command("payments.batch", ["channel": "treasury"]).status == .accepted)
        var ids: [String: String] = [:]
        for u in usccs { ids[u] = String(((await w.paymentEvent("payment.instructed", u))?["payment_id"]?.stringValue ?? "").dropFirst(4)) }
        return ids
    }

    @Test func returnsDroppedInTheInboxAreAppliedAndBadTotalsAreQuarantined() async throws {
        let w = try await PaymentsEndToEndTests.World()
        let ids = try await instructedBatch(w, seed: 81)
        let inbox = w.h.directory + "/payments/inbox"
        let usccs = ids.keys.sorted()
        // A file whose declared totals disagree with its lines: quarantined whole, nothing applied.
        let bad = Pain002.xml(
            originalMessageID: "BANGFU-B000001", messageID: "RET-BAD",
            lines: [ReturnLine(endToEndID: ids[usccs[0]]!, status: .settled, amountFen: 100_000)], declaredCount: 3,
            declaredTotalFen: 300_000)
        try bad.write(toFile: inbox + "/ret-bad.xml", atomically: true, encoding: .utf8)
        let good = Camt054.xml(
            messageID: "CAMT-1", accountNumber: "0000000000000000",
            lines: usccs.map { ReturnLine(endToEndID: ids[$0]!, status: .settled, amountFen: 100_000) })
        try good.write(toFile: inbox + "/ret-good.xml", atomically: true, encoding: .utf8)
        for u in usccs { #expect(await w.paymentEvent("payment.settled", u) != nil) }
        let status = try await w.payments.query(["op": "status"])
        #expect(status["quarantined_by_code"]?["invalid_amount"]?.intValue == 1)
        #expect(FileManager.default.fileExists(atPath: inbox + "/quarantined/ret-bad.xml"))
        // The file is moved just after the transaction that applied it commits.
        let processed = inbox + "/processed/ret-good.xml"
        let deadline = Date().addingTimeInterval(30)
        while !FileManager.default.fileExists(atPath: processed) && Date() < deadline { await Task.yield() }
        #expect(FileManager.default.fileExists(atPath: processed))
        #expect(try await w.payments.query(["op": "ledger.check"])["ok"]?.boolValue == true)
        await w.close()
    }

    @Test func aBatchFailingOverTheThresholdPausesTheChannel() async throws {
        let w = try await PaymentsEndToEndTests.World()
        let ids = try await instructedBatch(w, seed: 82)
        let usccs = ids.keys.sorted()
        // Two of three failed: over the default 20 %.
        let ret = Pain002.xml(
            originalMessageID: "BANGFU-B000001", messageID: "RET-2",
            lines: [
                ReturnLine(endToEndID: ids[usccs[0]]!, status: .settled, amountFen: 100_000),
                ReturnLine(endToEndID: ids[usccs[1]]!, status: .failed(reasonCode: "AC01", reason: "账号错误"), amountFen: 100_000),
                ReturnLine(endToEndID: ids[usccs[2]]!, status: .failed(reasonCode: "AC04", reason: "账户已销户"), amountFen: 100_000),
            ])
        #expect(try await w.command("bank.returned", ["file": .string(ret)]).status == .accepted)
        let refused = try await w.command("payments.batch", ["channel": "treasury"])
        #expect(refused.rejection?.code == .invalidData)
        #expect(refused.rejection?.message.contains("paused") == true)
        #expect(try await w.command("channel.resumed", ["channel": "treasury"]).status == .accepted)
        #expect(try await w.command("payments.batch", ["channel": "treasury"]).status == .accepted)
        await w.close()
    }
}
