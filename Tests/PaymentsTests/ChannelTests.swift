import BangfuTesting
import Bus
import Foundation
import Models
import Testing

/// The lessor channel (rent waivers carried out by the lessor: refund, offset or extension
/// within 30 days; a failed offset or extension owes a refund; silence is escalated) and the
/// agency channel (deferral instructions to utilities and the social insurance agency).
@Suite("Payment channels", .serialized)
struct ChannelTests {
    static let rentWaiver = """
        id: test-rent
        revision: 1
        title: 测试免租
        authority: test
        benefit: rent_waiver
        channel: lessor
        pool: null
        requires_application: false
        period: {from: 2022-01-01, to: 2022-06-30}
        disclosure: {working_days: 0, auto_approve: true}
        per: lease
        eligible: merchant.status == "active" && overlap_days(lease, period) > 0
        amount_fen: lease.monthly_rent_fen * 3
        """

    static let deferral = """
        id: test-deferral
        revision: 1
        title: 测试缓缴
        authority: test
        benefit: deferral
        channel: agency:social-insurance
        pool: null
        requires_application: false
        period: {from: 2022-01-01, to: 2022-12-31}
        disclosure: {working_days: 0, auto_approve: true}
        per: merchant
        eligible: merchant.status == "active"
        """

    @Test func lessorInstructionsConfirmationsRefundsAndEscalation() async throws {
        let w = try await PaymentsEndToEndTests.World()
        var f = Fixtures(seed: 61)
        let (a, b, c) = (f.uscc(), f.uscc(), f.uscc())
        var facts: [CloudEvent] = []
        for (u, rent) in [(a, Int64(100_000)), (b, 200_000), (c, 300_000)] {
            facts += [f.registration(uscc: u, name: "租户\(rent)"), Fixtures.lease(id: "L-\(u)", tenant: u, rentFen: rent)]
        }
        try await w.registry.publish(facts).forEach { #expect($0.status == .accepted) }
        #expect(
            try await w.matcher.publish(Fixtures.event("policy.published", ["yaml": .string(Self.rentWaiver)], source: "/ops/test")).status
                == .accepted)
        #expect(
            await w.matcherFeed.wait { events in
                [a, b, c].allSatisfy { u in events.contains { $0.type == "entitlement.approved" && $0.subject == u } }
            })
        // Wait until payments has all three (its matcher subscription is its own).
        let payments = w.payments
        while try await payments.query(["op": "payment.list", "state": "ready"])["items"]?.arrayValue?.count ?? 0 < 3 { await Task.yield() }

        #expect(try await w.command("payments.batch", ["channel": "lessor"]).status == .accepted)
        for u in [a, b, c] { #expect(await w.paymentEvent("payment.instructed", u)?["deadline"] != nil) }
        let outbox = w.h.directory + "/payments/outbox"
        let file = try #require(try FileManager.default.contentsOfDirectory(atPath: outbox).first { $0.hasSuffix("-lessor.jsonl") })
        let lines = try String(contentsOfFile: outbox + "/" + file, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 4)  // header + 3 instructions
        #expect(try JSONParser.parse(String(lines[0]))["count"]?.intValue == 3)
        #expect(try JSONParser.parse(String(lines[0]))["total_fen"]?.intValue == 1_800_000)  // (100k + 200k + 300k) × 3

        func id(_ u: String) -> String { w.feed.events.last { $0.subject == u }?.data?["payment_id"]?.stringValue ?? "" }
        // a: refunded by the lessor. b: the offset failed, so the lessor owes a refund instead.
        #expect(
            try await w.command("lessor.confirmed", ["payment_id": .string(id(a)), "method": "refund", "ok": true]).status == .accepted)
        #expect(await w.paymentEvent("payment.settled", a)?["method"]?.stringValue == "refund")
        #expect(
            try await w.command("lessor.confirmed", ["payment_id": .string(id(b)), "method": "offset", "ok": false]).status == .accepted)
        #expect(await w.paymentEvent("payment.instructed", b) { $0["instruction"]?.stringValue == "refund" } != nil)
        // 31 days later nobody has confirmed b's refund or c's waiver: both are escalated when
        // the deadline passes, without waiting for an operator's next batch.
        w.h.clock.advance(seconds: 31 * 86_400)
        #expect(await w.held(b, "lessor_unconfirmed"))
        #expect(await w.held(c, "lessor_unconfirmed"))
        #expect(try await w.payments.query(["op": "audit.verify"])["ok"]?.boolValue == true)
        await w.close()
    }

    @Test func aBatchHoldsAtMostMaxPaymentsAndTheNextTakesTheRest() async throws {
        let w = try await PaymentsEndToEndTests.World()
        var f = Fixtures(seed: 63)
        let tenants = (0..<3).map { _ in f.uscc() }
        var facts: [CloudEvent] = []
        for (k, u) in tenants.enumerated() {
            facts += [f.registration(uscc: u, name: "租户\(k)"), Fixtures.lease(id: "L-\(u)", tenant: u, rentFen: Int64(k + 1) * 100_000)]
        }
        try await w.registry.publish(facts).forEach { #expect($0.status == .accepted) }
        #expect(
            try await w.matcher.publish(Fixtures.event("policy.published", ["yaml": .string(Self.rentWaiver)], source: "/ops/test")).status
                == .accepted)
        let payments = w.payments
        while try await payments.query(["op": "payment.list", "state": "ready"])["items"]?.arrayValue?.count ?? 0 < 3 { await Task.yield() }

        // A max that is not a whole number of payments from 1 up is refused, and writes nothing.
        let bad: [JSON] = [.int(0), .int(-1), .number("1.5"), .string("2")]
        for max in bad {
            let r = try await w.command("payments.batch", ["channel": "lessor", "max": max])
            #expect(r.status == Ack.Status.rejected, "\(max)")
            #expect(r.rejection?.code == RejectionCode.invalidData, "\(max)")
        }
        #expect(try await payments.query(["op": "batch.list"])["items"]?.arrayValue?.isEmpty == true)

        #expect(try await w.command("payments.batch", ["channel": "lessor", "max": 2]).status == .accepted)
        #expect(try await payments.query(["op": "payment.list", "state": "ready"])["items"]?.arrayValue?.count == 1)
        #expect(try await w.command("payments.batch", ["channel": "lessor", "max": 2]).status == .accepted)
        // Nothing is left: a third batch writes no file.
        #expect(try await w.command("payments.batch", ["channel": "lessor", "max": 2]).status == .accepted)
        let batches = try await payments.query(["op": "batch.list"])["items"]?.arrayValue ?? []
        let counts: [Int64?] = batches.map { $0["count"]?.intValue }
        #expect(counts == [2, 1])
        // Every payment went out once: two in the first file, the third in the second.
        let totals: [Int64] = batches.compactMap { $0["total_fen"]?.intValue }
        let all: Int64 = (1 + 2 + 3) * 100_000 * 3
        #expect(totals.reduce(0, +) == all)
        var files: [String: Int] = [:]
        for u in tenants {
            let batch = await w.paymentEvent("payment.instructed", u)?["batch_id"]?.stringValue
            files[batch ?? "none", default: 0] += 1
        }
        let first = batches[0]["batch_id"]?.stringValue ?? "?"
        let second = batches[1]["batch_id"]?.stringValue ?? "?"
        #expect(files == [first: 2, second: 1])
        await w.close()
    }

    @Test func agencyDeferralInstructionsAreConfirmed() async throws {
        let w = try await PaymentsEndToEndTests.World()
        var f = Fixtures(seed: 62)
        let u = f.uscc()
        try await w.registry.publish([f.registration(uscc: u, name: "缓缴企业")]).forEach { #expect($0.status == .accepted) }
        #expect(
            try await w.matcher.publish(Fixtures.event("policy.published", ["yaml": .string(Self.deferral)], source: "/ops/test")).status
                == .accepted)
        let payments = w.payments
        while try await payments.query(["op": "payment.list", "state": "ready"])["items"]?.arrayValue?.count ?? 0 < 1 { await Task.yield() }
        // A channel no payment was ever approved on is named as unknown, with the known ones —
        // not answered like an empty channel. An empty known channel is no error.
        let unknown = try await w.command("payments.batch", ["channel": "agency:nope"])
        #expect(unknown.status == .rejected && unknown.rejection?.code == .invalidData && unknown.rejection?.field == "data.channel")
        #expect(
            unknown.rejection?.message
                == "unknown channel agency:nope: no payment has been approved on it; known channels: treasury, lessor, agency:social-insurance",
            "\(unknown)")
        #expect(try await w.command("payments.batch", ["channel": "treasury"]).status == .accepted)
        #expect(try await w.command("payments.batch", ["channel": "agency:social-insurance"]).status == .accepted)
        let instructed = await w.paymentEvent("payment.instructed", u)
        #expect(instructed?["benefit"]?.stringValue == "deferral")
        let outbox = w.h.directory + "/payments/outbox"
        #expect(try FileManager.default.contentsOfDirectory(atPath: outbox).contains { $0.hasSuffix("-agency_social-insurance.jsonl") })
        let pid = try #require(instructed?["payment_id"]?.stringValue)
        #expect(try await w.command("agency.confirmed", ["payment_id": .string(pid), "ok": true]).status == .accepted)
        #expect(await w.paymentEvent("payment.settled", u) != nil)
        // Confirmed again: accepted, with a note that nothing changed.
        let again = try await w.command("agency.confirmed", ["payment_id": .string(pid), "ok": true])
        #expect(
            again.status == .accepted && again.note == "payment \(pid) is settled, not awaiting a confirmation: this one changed nothing")
        // Once the channel has made a batch it stays known, with nothing ready.
        #expect(try await w.command("payments.batch", ["channel": "agency:social-insurance"]).status == .accepted)
        await w.close()
    }
}
