import BangfuTesting
import Bus
import Foundation
import ISO20022
import Models
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The three real executables over `ipc://`; payments is killed with SIGKILL while a treasury
/// batch is being made, restarted, and asked again: every payment is in exactly one batch file,
/// no file is written twice, the ledger balances and the audit chain verifies.
@Suite("Payments process", .serialized)
struct PaymentsProcessTests {
    @Test func kill9DuringABatchLeavesEveryPaymentOnceAndTheLedgerBalanced() async throws {
        let dir = "/tmp/bangfu-pk-\(UUID().uuidString.prefix(8))"
        let context = ZContext()
        let registry = try ServiceProcess(name: "bangfu-registry", dir: dir, context: context)
        let matcher = try ServiceProcess(name: "bangfu-matcher", dir: dir, context: context)
        let payments = try ServiceProcess(name: "bangfu-payments", dir: dir, context: context)
        defer {
            registry.cleanup(removeDirectory: false)
            matcher.cleanup(removeDirectory: false)
            payments.cleanup()
        }
        let none = [
            "--notifier-feed", "ipc://\(dir)/x-nf", "--notifier-replay", "ipc://\(dir)/x-nr", "--payments-feed", payments.endpoint("feed"),
            "--payments-replay", payments.endpoint("replay"),
        ]
        matcher.baseArguments = ["--registry-feed", registry.endpoint("feed"), "--registry-replay", registry.endpoint("replay")] + none
        payments.baseArguments = [
            "--registry-feed", registry.endpoint("feed"), "--registry-replay", registry.endpoint("replay"), "--matcher-feed",
            matcher.endpoint("feed"),
            "--matcher-replay", matcher.endpoint("replay"), "--outbox-dir", dir + "/outbox",
        ]
        try await registry.start()
        try await matcher.start()
        try await payments.start()

        var f = Fixtures(seed: 71)
        var facts: [CloudEvent] = []
        let n = 300
        for i in 0..<n {
            let u = f.uscc()
            facts += [
                f.registration(uscc: u, name: "批次商户\(i)"),
                Fixtures.event(
                    "account.verified",
                    [
                        "uscc": .string(u), "bank": "工行", "account_no": .string("62220200\(100_000 + i)"),
                        "holder_name": .string("批次商户\(i)"), "verified_on": "2022-03-01",
                    ],
                    subject: u),
            ]
        }
        func publish(_ ep: String, _ events: [CloudEvent]) async throws -> [PublishResult] {
            try await IntakeClient.publish(context: context, endpoint: ep, events: events.map(OutgoingEvent.init), options: .forTests)
        }
        #expect(try await publish(registry.endpoint("intake"), facts).allSatisfy { $0.ack?.status == .accepted })
        #expect(
            try await publish(
                payments.endpoint("intake"),
                [Fixtures.event("pool.funded", ["pool": "test-pool", "source": "central", "amount_fen": 100_000_000], source: "/ops/test")])[
                    0
                ].ack?.status == .accepted)
        #expect(
            try await publish(
                matcher.endpoint("intake"),
                [Fixtures.event("policy.published", ["yaml": .string(PaymentsEndToEndTests.policy)], source: "/ops/test")])[0].ack?.status
                == .accepted)
        while try await payments.query(["op": "payment.list", "state": "ready", "max": 1_000])["items"]?.arrayValue?.count ?? 0 < n {
            await Task.yield()
        }

        // Ask for a batch and kill the service while it works on it.
        let batch = OutgoingEvent(Fixtures.event("payments.batch", ["channel": "treasury"], source: "/ops/test", id: "batch-1"))
        let dealer = try context.socket(.dealer)
        try dealer.connect(payments.endpoint("intake"))
        _ = try dealer.send([batch.frame], dontWait: false)
        kill(payments.pid, SIGKILL)
        dealer.close()
        _ = try await payments.waitForExit()
        try await payments.start()
        // The same request again (a retry with the same id), then a fresh one: whatever the first
        // attempt committed is not done twice.
        _ = try await publish(
            payments.endpoint("intake"), [Fixtures.event("payments.batch", ["channel": "treasury"], source: "/ops/test", id: "batch-1")])
        _ = try await publish(
            payments.endpoint("intake"), [Fixtures.event("payments.batch", ["channel": "treasury"], source: "/ops/test", id: "batch-2")])

        let files = try FileManager.default.contentsOfDirectory(atPath: dir + "/outbox").filter { $0.hasSuffix(".xml") }
        #expect(!files.isEmpty)
        var ids: [String] = []
        for file in files {
            let doc = try Pain001.parse(String(contentsOfFile: dir + "/outbox/" + file, encoding: .utf8))
            ids += doc.payments.map(\.endToEndID)
        }
        #expect(ids.count == n, "every payment in a file")
        #expect(Set(ids).count == n, "no payment in two files")
        let events = try await payments.replayAll()
        let instructed = events.filter { $0.type == "payment.instructed" }.compactMap { $0.data?["payment_id"]?.stringValue }
        #expect(instructed.count == n && Set(instructed).count == n, "each payment instructed once")
        #expect(try await payments.query(["op": "ledger.check"])["ok"]?.boolValue == true)
        #expect(try await payments.query(["op": "audit.verify"])["ok"]?.boolValue == true)
        let pools = try await payments.query(["op": "pool.status"])
        #expect(pools["items"]?.arrayValue?.first?["reserved_fen"]?.intValue == Int64(n) * 100_000)
        for p in [payments, matcher, registry] { #expect(try await p.terminate() == 0) }
    }
}
