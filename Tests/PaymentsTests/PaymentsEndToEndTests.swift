import BangfuTesting
import Bus
import Foundation
import GRDB
import ISO20022
import Models
import Testing

/// Registry + matcher + payments in process (the notifier's stand-in is not needed: the test
/// policy approves without disclosure): facts in, a cash policy published, entitlements
/// approved, pools funded, checks and holds, a pain.001 batch out, a pain.002 return in,
/// settled and failed events out, the ledger and the audit chain verified.
@Suite("Payments end to end", .serialized)
struct PaymentsEndToEndTests {
    static let policy = """
        id: test-cash
        revision: 1
        title: 测试现金补助
        authority: test
        benefit: cash
        channel: treasury
        pool: test-pool
        requires_application: false
        period: {from: 2022-01-01, to: 2022-12-31}
        disclosure: {working_days: 0, auto_approve: true}
        priority: merchant.tags.priority_sector
        per: merchant
        eligible: merchant.status == "active" && !merchant.disqualified
        amount_fen: 100000
        """

    final class World: Sendable {
        let h: Harness
        let registry: RunningService
        let matcher: RunningService
        let payments: RunningService
        let feed: FeedCollector
        let matcherFeed: FeedCollector

        init() async throws {
            h = try Harness()
            registry = try await h.startRegistry()
            _ = try await h.startStandIn("notifier")
            payments = try await h.startPayments()
            matcher = try await h.startMatcher()
            feed = try h.collect("payments")
            matcherFeed = try h.collect("matcher")
        }

        func account(_ uscc: String, holder: String, number: String) -> CloudEvent {
            Fixtures.event(
                "account.verified",
                [
                    "uscc": .string(uscc), "bank": "中国工商银行许昌分行", "account_no": .string(number), "holder_name": .string(holder),
                    "verified_on": "2022-03-15",
                ],
                subject: uscc)
        }

        /// The last `type` event about `uscc` whose data satisfies `where`, once there is one.
        func paymentEvent(_ type: String, _ uscc: String, where check: @escaping @Sendable (JSON) -> Bool = { _ in true }) async -> JSON? {
            let matches: @Sendable (CloudEvent) -> Bool = { $0.type == type && $0.subject == uscc && check($0.data ?? .null) }
            guard await feed.wait(until: { $0.contains(where: matches) }) else { return nil }
            return feed.events.last(where: matches)?.data
        }

        func held(_ uscc: String, _ code: String) async -> Bool {
            await paymentEvent("payment.held", uscc) { $0["hold_code"]?.stringValue == code } != nil
        }

        func command(_ type: String, _ data: JSON) async throws -> Ack {
            try await payments.publish(Fixtures.event(type, data, source: "/ops/test"))
        }

        func close() async {
            await feed.stop()
            await matcherFeed.stop()
            await h.shutdown()
        }
    }

    @Test func fundCheckHoldBatchReturnSettleAndVerify() async throws {
        let w = try await World()
        var f = Fixtures(seed: 51)
        let good = f.uscc()  // verified account in its own name
        let noAccount = f.uscc()  // no verified account: held (实名制)
        let twinA = f.uscc()  // twinA and twinB share one bank account: both are held
        let twinB = f.uscc()
        try await w.registry.publish([
            f.registration(uscc: good, name: "甲商贸有限公司"), w.account(good, holder: "甲商贸有限公司", number: "6222020000000001"),
            f.registration(uscc: noAccount, name: "乙商贸有限公司"),
            f.registration(uscc: twinA, name: "丙商贸有限公司"), w.account(twinA, holder: "丙商贸有限公司", number: "6222020000000099"),
        ]).forEach { #expect($0.status == .accepted) }
        #expect(
            try await w.matcher.publish(Fixtures.event("policy.published", ["yaml": .string(Self.policy)], source: "/ops/test")).status
                == .accepted)

        // No money in the pool yet: good and twinA wait (pool_short); noAccount is held for its account.
        #expect(await w.held(good, "pool_short"))
        #expect(await w.held(twinA, "pool_short"))
        #expect(await w.held(noAccount, "no_verified_account"))
        // 150,000 fen: enough for one payment of 100,000, in priority then approval order.
        #expect(try await w.command("pool.funded", ["pool": "test-pool", "source": "central", "amount_fen": 150_000]).status == .accepted)
        var pools = try await w.payments.query(["op": "pool.status"])
        #expect(pools["items"]?.arrayValue?.first?["reserved_fen"]?.intValue == 100_000)
        #expect(pools["items"]?.arrayValue?.first?["available_fen"]?.intValue == 50_000)
        // `status` carries the pools' balances and the intake's batch latencies (DESIGN §11).
        let status = try await w.payments.query(["op": "status"])
        #expect(status["pools"]?.arrayValue?.first?["pool"]?.stringValue == "test-pool")
        #expect(status["pools"]?.arrayValue?.first?["available_fen"]?.intValue == 50_000)
        #expect((status["intake_batch_ms"]?["batches"]?.intValue ?? 0) >= 1)
        #expect(status["intake_batch_ms"]?["p99"]?.stringValue != nil)
        #expect(
            try await w.command("pool.funded", ["pool": "test-pool", "source": "special_bond", "amount_fen": 200_000]).status == .accepted)
        pools = try await w.payments.query(["op": "pool.status"])
        #expect(pools["items"]?.arrayValue?.first?["reserved_fen"]?.intValue == 200_000, "both waiting payments reserved once funded")

        // twinB registers with twinA's bank account: both held as shared_account (twinA's
        // reservation released).
        try await w.registry.publish([
            f.registration(uscc: twinB, name: "丁商贸有限公司"), w.account(twinB, holder: "丁商贸有限公司", number: "6222020000000099"),
        ])
        .forEach { #expect($0.status == .accepted) }
        #expect(await w.held(twinB, "shared_account"))
        #expect(await w.held(twinA, "shared_account"))
        // The hold list says since when each is held.
        let holds = try await w.payments.query(["op": "holds"])["items"]?.arrayValue ?? []
        #expect(holds.count >= 2 && holds.allSatisfy { $0["held_since"]?.stringValue.map(Timestamp.isRFC3339) == true }, "\(holds)")
        // An operator clears each side, with a reason that goes into the audit chain.
        for twin in [twinB, twinA] {
            let id = try #require(w.feed.events.last { $0.subject == twin }?.data?["payment_id"]?.stringValue)
            #expect(
                try await w.command("hold.released", ["payment_id": .string(id), "by": "区财政局 张三", "reason": "夫妻店，共用账户已核实"]).status
                    == .accepted)
            let released = try await w.payments.query(["op": "payment.show", "id": .string(id)])
            #expect(released["payment"]?["state"]?.stringValue == "ready")
        }

        // The treasury batch: one pain.001 file with every ready payment.
        #expect(try await w.command("payments.batch", ["channel": "treasury"]).status == .accepted)
        // The return below names payments by the ids their instructed events carry: wait for all three.
        for u in [good, twinA, twinB] { #expect(await w.paymentEvent("payment.instructed", u) != nil) }
        let outbox = w.h.directory + "/payments/outbox"
        let files = try FileManager.default.contentsOfDirectory(atPath: outbox).filter { $0.hasSuffix(".xml") }
        #expect(files.count == 1)
        let xml = try String(contentsOfFile: outbox + "/" + files[0], encoding: .utf8)
        if let samples = ProcessInfo.processInfo.environment["BANGFU_ISO_SAMPLES_DIR"], !samples.isEmpty {
            // CI validates the service's real batch against the official XSD too.
            try? xml.write(toFile: samples + "/payments-e2e-" + files[0], atomically: true, encoding: .utf8)
        }
        #expect(xml.contains("<NbOfTxs>3</NbOfTxs>"))
        #expect(xml.contains("<CtrlSum>3000.00</CtrlSum>"))

        // The bank's return: good settled, twinA failed.
        let instructed = w.feed.events.filter { $0.type == "payment.instructed" }.compactMap(\.data)
        // The bank answers with the EndToEndIds of the file (an attempt after the first carries `-<n>`).
        let fileIDs = xml.components(separatedBy: "<EndToEndId>").dropFirst().compactMap {
            $0.components(separatedBy: "</EndToEndId>").first
        }
        func e2e(_ uscc: String) -> String {
            let id = instructed.first { $0["uscc"]?.stringValue == uscc }?["payment_id"]?.stringValue ?? ""
            let hex = String(id.dropFirst(4))
            return fileIDs.first { $0.hasPrefix(hex) } ?? hex
        }
        let ret = Pain002.xml(
            originalMessageID: "BANGFU-B000001", messageID: "RET-1",
            lines: [
                ReturnLine(endToEndID: e2e(good), status: .settled, amountFen: 100_000),
                ReturnLine(endToEndID: e2e(twinA), status: .failed(reasonCode: "AC04", reason: "账户已销户"), amountFen: 100_000),
            ])
        #expect(try await w.command("bank.returned", ["file": .string(ret)]).status == .accepted)
        #expect(await w.paymentEvent("payment.settled", good)?["amount_fen"]?.intValue == 100_000)
        #expect(await w.paymentEvent("payment.failed", twinA)?["reason"]?.stringValue == "AC04")
        // The matcher hears it: entitlement.paid.
        #expect(await w.matcherFeed.wait { $0.contains { $0.type == "entitlement.paid" && $0.subject == good } })
        // The same return again changes nothing.
        #expect(try await w.command("bank.returned", ["file": .string(ret), "return_id": "RET-1-again"]).status == .accepted)
        #expect(w.feed.events.filter { $0.type == "payment.settled" && $0.subject == good }.count == 1)

        // A return whose control totals disagree is refused and quarantined.
        let bad = Pain002.xml(
            originalMessageID: "BANGFU-B000001", messageID: "RET-BAD",
            lines: [ReturnLine(endToEndID: e2e(twinB), status: .settled, amountFen: 100_000)], declaredCount: 2, declaredTotalFen: 200_000)
        let refused = try await w.command("bank.returned", ["file": .string(bad)])
        #expect(refused.rejection?.code == .invalidAmount)

        // The ledger balances and the audit chain verifies.
        let ledger = try await w.payments.query(["op": "ledger.check"])
        #expect(ledger["ok"]?.boolValue == true, "\(ledger)")
        let audit = try await w.payments.query(["op": "audit.verify"])
        #expect(audit["ok"]?.boolValue == true)
        #expect((audit["entries"]?.intValue ?? 0) > 10)
        #expect(audit["head"]?["seq"]?.intValue == audit["entries"]?.intValue)
        // Each instruction carries its batch's audit link: an anchor that subscribers keep.
        let link = try #require(await w.paymentEvent("payment.instructed", good)?["audit_link"])
        let anchored = try await w.payments.query(["op": "audit.verify", "anchor": link])
        #expect(anchored["anchor_ok"]?.boolValue == true, "\(link) \(anchored)")
        // An auditor reads who released each hold and why, by the payment's id.
        let twinAID = try #require(
            w.feed.events.last { $0.subject == twinA && $0.type == "payment.failed" }?.data?["payment_id"]?.stringValue)
        let trail = try await w.payments.query(["op": "audit.list", "ref": .string(twinAID), "max": 1_000])
        let trailItems = trail["items"]?.arrayValue ?? []
        let kinds = trailItems.compactMap { $0["kind"]?.stringValue }
        #expect(kinds.contains("hold.opened") && kinds.contains("hold.released") && kinds.contains("payment.instructed"), "\(kinds)")
        let release = try #require(trailItems.first { $0["kind"]?.stringValue == "hold.released" })
        #expect(release["entry"]?["by"]?.stringValue == "区财政局 张三")
        #expect(release["entry"]?["reason"]?.stringValue == "夫妻店，共用账户已核实")
        #expect(release["hash"]?.stringValue?.utf8.count == 64)
        // In chain order, and every one names the payment.
        let seqs = trailItems.compactMap { $0["seq"]?.intValue }
        #expect(seqs == seqs.sorted() && !seqs.isEmpty)
        #expect(trailItems.allSatisfy { ($0["entry"]?.serialized() ?? "").contains(twinAID) })
        // By kind, paged.
        let releases = try await w.payments.query(["op": "audit.list", "kind": "hold.released", "max": 1])
        #expect(releases["items"]?.arrayValue?.count == 1 && releases["more"]?.boolValue == true)
        let next = try await w.payments.query([
            "op": "audit.list", "kind": "hold.released", "after": releases["items"]?.arrayValue?.first?["seq"] ?? 0,
        ])
        #expect(next["items"]?.arrayValue?.count == 1)
        #expect(next["items"]?.arrayValue?.first?["kind"]?.stringValue == "hold.released")
        pools = try await w.payments.query(["op": "pool.status"])
        // 350,000 funded − 100,000 paid; twinA's failed reservation released; twinB still reserved.
        #expect(pools["items"]?.arrayValue?.first?["posted_fen"]?.intValue == 250_000)
        #expect(pools["items"]?.arrayValue?.first?["reserved_fen"]?.intValue == 100_000)

        // Fraud found later: the paid merchant's payment is clawed back; recovery closes it.
        try await w.registry.publish([
            Fixtures.event("fraud.confirmed", ["uscc": .string(good), "finding": "虚报", "confirmed_by": "区纪委"], subject: good)
        ])
        .forEach { #expect($0.status == .accepted) }
        let claw = await w.paymentEvent("clawback.opened", good)
        #expect(claw?["receivable_fen"]?.intValue == 100_000)
        let paidID = try #require(claw?["payment_id"]?.stringValue)
        #expect(try await w.command("clawback.recovered", ["payment_id": .string(paidID), "amount_fen": 100_000]).status == .accepted)
        #expect(
            try await w.command("clawback.recovered", ["payment_id": .string(paidID), "amount_fen": 1]).rejection?.code == .invalidAmount)
        #expect(try await w.payments.query(["op": "ledger.check"])["ok"]?.boolValue == true)
        await w.close()
    }

    /// Link analysis reads the legal representative's fingerprint from the registry's profiles
    /// (payments keeps only the profile members it reads): two recipients of one programme
    /// with one legal representative are both held.
    @Test func aSharedLegalRepresentativeIsHeld() async throws {
        let w = try await World()
        var f = Fixtures(seed: 52)
        let first = f.uscc()
        let second = f.uscc()
        let idNumber = f.idNumber()
        func registration(_ uscc: String, _ name: String) -> CloudEvent {
            Fixtures.event(
                "business.registered",
                [
                    "uscc": .string(uscc), "name": .string(name), "kind": "enterprise",
                    "legal_rep": ["name": "王五", "id_number": .string(idNumber)], "industry": "H6210", "district": "411002",
                    "registered_on": "2019-03-01", "status": "active",
                ], subject: uscc)
        }
        #expect(
            try await w.command("pool.funded", ["pool": "test-pool", "source": "central", "amount_fen": 1_000_000]).status == .accepted)
        #expect(
            try await w.matcher.publish(Fixtures.event("policy.published", ["yaml": .string(Self.policy)], source: "/ops/test")).status
                == .accepted)
        try await w.registry.publish([
            registration(first, "戊商贸有限公司"), w.account(first, holder: "戊商贸有限公司", number: "6222020000000201"),
            registration(second, "己商贸有限公司"), w.account(second, holder: "己商贸有限公司", number: "6222020000000202"),
            Fixtures.finance(uscc: first, employees: 12, revenueFen: 3_000_000_00, assetsFen: 1_000_000_00),
        ]).forEach { #expect($0.status == .accepted) }
        let shared: @Sendable (CloudEvent) -> Bool = {
            $0.type == "payment.held" && $0.data?["hold_code"]?.stringValue == "shared_legal_rep"
        }
        #expect(await w.feed.wait(until: { Set($0.filter(shared).compactMap(\.subject)).count == 2 }))
        let held = Set(w.feed.events.filter(shared).compactMap(\.subject))
        #expect(held == [first, second], "both are held: \(held)")
        await w.close()
    }

    @Test func tamperingWithTheAuditChainIsFoundAtTheFirstBrokenLink() async throws {
        let w = try await World()
        var f = Fixtures(seed: 52)
        let u = f.uscc()
        try await w.registry.publish([
            f.registration(uscc: u, name: "审计测试有限公司"), w.account(u, holder: "审计测试有限公司", number: "6222020000000777"),
        ])
        .forEach { #expect($0.status == .accepted) }
        _ = try await w.matcher.publish(Fixtures.event("policy.published", ["yaml": .string(Self.policy)], source: "/ops/test"))
        _ = try await w.command("pool.funded", ["pool": "test-pool", "source": "central", "amount_fen": 1_000_000])
        #expect(await w.matcherFeed.wait { $0.contains { $0.type == "entitlement.approved" && $0.subject == u } })
        #expect(try await w.payments.query(["op": "audit.verify"])["ok"]?.boolValue == true)
        // Change one entry's content behind the service's back, in the database file.
        let path = w.h.directory + "/payments/payments.sqlite"
        // The service may be writing (an outbox publish, a checkpoint): wait for the lock.
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        let dbq = try DatabaseQueue(path: path, configuration: configuration)
        try await dbq.write { db in
            try db.execute(
                sql: """
                    UPDATE audit_chain SET entry = CAST(replace(CAST(entry AS TEXT), '1000000', '9000000') AS BLOB)
                    WHERE seq = (SELECT MIN(seq) FROM audit_chain WHERE CAST(entry AS TEXT) LIKE '%1000000%')
                    """)
        }
        let broken = try await dbq.read { db in
            try Int64.fetchOne(db, sql: "SELECT MIN(seq) FROM audit_chain WHERE CAST(entry AS TEXT) LIKE '%9000000%'")
        }
        #expect(broken != nil)
        let v = try await w.payments.query(["op": "audit.verify"])
        #expect(v["ok"]?.boolValue == false)
        #expect(v["first_broken"]?.intValue == broken)
        await w.close()
    }

    /// A tamperer who rewrites an entry and recomputes every hash after it leaves a chain that
    /// verifies on its own; the head an auditor recorded earlier (the anchor) exposes it, and so
    /// does cutting the newest entries off.
    @Test func aRecomputedChainFailsTheAnchorRecordedBefore() async throws {
        let w = try await World()
        var f = Fixtures(seed: 53)
        let u = f.uscc()
        try await w.registry.publish([
            f.registration(uscc: u, name: "锚点测试有限公司"), w.account(u, holder: "锚点测试有限公司", number: "6222020000000778"),
        ])
        .forEach { #expect($0.status == .accepted) }
        _ = try await w.matcher.publish(Fixtures.event("policy.published", ["yaml": .string(Self.policy)], source: "/ops/test"))
        _ = try await w.command("pool.funded", ["pool": "test-pool", "source": "central", "amount_fen": 1_000_000])
        #expect(await w.matcherFeed.wait { $0.contains { $0.type == "entitlement.approved" && $0.subject == u } })
        let first = try await w.payments.query(["op": "audit.verify"])
        #expect(first["ok"]?.boolValue == true)
        let head = try #require(first["head"])
        let headSeq = try #require(head["seq"]?.intValue)
        #expect(headSeq >= 3)
        let held = try await w.payments.query(["op": "audit.verify", "anchor": head])
        #expect(held["anchor_ok"]?.boolValue == true, "\(held)")
        // A malformed anchor is an invalid request, not a pass.
        let malformed = try await w.payments.query(["op": "audit.verify", "anchor": ["seq": 1, "hash": "abc"]])
        #expect(malformed["code"]?.stringValue == "invalid_request")

        // Rewrite the first entry that names the pool and recompute every link after it, in the
        // database file (the pool was funded, and its entries written, before the head was read).
        let path = w.h.directory + "/payments/payments.sqlite"
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        let dbq = try DatabaseQueue(path: path, configuration: configuration)
        try await dbq.write { db in
            let rows = try Row.fetchAll(db, sql: "SELECT seq, at, kind, entry FROM audit_chain ORDER BY seq")
            var prev = String(repeating: "0", count: 64)
            var rewritten = false
            for r in rows {
                let seq: Int64 = r["seq"]
                var entry = [UInt8]((r["entry"] as Data))
                let text = String(decoding: entry, as: UTF8.self)
                if !rewritten, text.contains("test-pool") {
                    entry = Array(text.replacingOccurrences(of: "test-pool", with: "tset-pool").utf8)
                    rewritten = true
                }
                var bytes = Array(prev.utf8) + [UInt8(ascii: "\n")]
                bytes += Array(#"{"at":"#.utf8) + JSON.string(r["at"]).serializedBytes() + Array(#","entry":"#.utf8) + entry
                bytes +=
                    Array(#","kind":"#.utf8) + JSON.string(r["kind"]).serializedBytes() + Array(#","seq":"#.utf8) + Array("\(seq)}".utf8)
                let hash = SHA256.hash(bytes).hexString
                try db.execute(
                    sql: "UPDATE audit_chain SET entry = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                    arguments: [Data(entry), prev, hash, seq])
                prev = hash
            }
        }
        let rewritten = try await w.payments.query(["op": "audit.verify", "anchor": head])
        #expect(rewritten["ok"]?.boolValue == true, "the recomputed chain verifies on its own")
        #expect(rewritten["anchor_ok"]?.boolValue == false)
        #expect(rewritten["anchor_problem"]?.stringValue?.contains("the chain was rewritten") == true, "\(rewritten)")

        // Cut short below the anchor: no longer holds it either (payments may have appended
        // since, in which case the anchor's seq names another entry).
        try await dbq.write { db in try db.execute(sql: "DELETE FROM audit_chain WHERE seq >= ?", arguments: [headSeq]) }
        let cut = try await w.payments.query(["op": "audit.verify", "anchor": head])
        #expect(cut["ok"]?.boolValue == true)
        #expect(cut["anchor_ok"]?.boolValue == false)
        #expect(cut["anchor_problem"]?.stringValue?.isEmpty == false, "\(cut)")
        await w.close()
    }
}
