import BangfuTesting
import Bus
import Foundation
import Models
import Testing

/// Registry + matcher + notifier in process with the test clock (payments is a stand-in): a
/// round opens, an objection blocks one entitlement, the window passes in test time, the rest
/// clear and are approved (the programme auto-approves), a late objection is refused, the
/// upheld objection revokes, the board and the monthly report are written, notifications go
/// out once each.
@Suite("Notifier end to end", .serialized)
struct NotifierEndToEndTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// An individual business's trade name shows on the board with its operator's name masked in
    /// it (`张三小吃店` → `张*小吃店`), and in full when it does not contain it: searchable, while no
    /// natural person's name is published.
    @Test func theBoardShowsTradeNamesWithTheOperatorsNameMasked() async throws {
        let h = try Harness(start: "2022-04-01T09:00:00+08:00")
        let registry = try await h.startRegistry()
        _ = try await h.startStandIn("payments")
        let notifier = try await h.startNotifier()
        let matcher = try await h.startMatcher()
        var f = Fixtures(seed: 92)
        let (named, trade) = (f.uscc(individual: true), f.uscc(individual: true))
        func registration(_ u: String, _ name: String, operator op: String) -> CloudEvent {
            Fixtures.event(
                "business.registered",
                [
                    "uscc": .string(u), "name": .string(name), "kind": "individual",
                    "legal_rep": ["name": .string(op), "id_number": "41102319850615003X"], "industry": "H6210", "district": "411002",
                    "registered_on": "2019-03-01", "status": "active",
                ], subject: u)
        }
        #expect(
            try await registry.publish([registration(named, "张三丰小吃店", operator: "张三丰"), registration(trade, "顺发五金店", operator: "李四")])
                .allSatisfy { $0.status == .accepted })
        let yaml = """
            id: test-individuals
            revision: 1
            title: 个体工商户测试项目
            authority: 测试局
            benefit: deferral
            channel: agency:test
            requires_application: false
            period: {from: 2022-01-01, to: 2022-06-30}
            disclosure: {working_days: 5, auto_approve: true}
            per: merchant
            eligible: merchant.kind == "individual"
            """
        #expect(
            try await matcher.publish(Fixtures.event("policy.published", ["yaml": .string(yaml)], source: "/ops/test")).status == .accepted)
        let board = h.directory + "/notifier/board"
        var names: [String] = []
        for _ in 0..<5_000 where names.count < 2 {
            _ = try await notifier.query(["op": "status"])
            guard let text = try? String(contentsOfFile: board + "/data.json", encoding: .utf8), let json = try? JSONParser.parse(text)
            else { continue }
            names = (json["rows"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
        }
        #expect(Set(names) == ["张*丰小吃店", "顺发五金店"], "\(names)")
        let page = (try? String(contentsOfFile: board + "/index.html", encoding: .utf8)) ?? ""
        #expect(!page.contains("张三丰"))
        await h.shutdown()
    }

    /// The demo's synthetic county has individual businesses trading under their operator's own
    /// name (one merchant in 30), and the board shows each with the operator's name masked
    /// inside the trade name (`许昌市张*丰小吃店36`).
    @Test func theSyntheticCountysOwnNameTradersAreMaskedOnTheBoard() async throws {
        let county = SyntheticCounty(seed: 20_220_401, merchants: 100, badEvery: 0)
        let picked = (0..<county.merchants).filter(county.tradesUnderOperatorsName)
        #expect(picked == [6, 36, 66, 96])
        var expected: [String: String] = [:]
        var operators: [String] = []
        var facts: [CloudEvent] = []
        for i in picked {
            let all = county.facts(of: i)
            let reg = try #require(all.first?.data)
            let name = try #require(reg["name"]?.stringValue)
            let op = try #require(reg["legal_rep"]?["name"]?.stringValue)
            #expect(reg["kind"]?.stringValue == "individual")
            #expect(name.contains(op), "\(name) does not contain \(op)")
            // The bank verified the account in the trade name as registered (实名制 still holds).
            #expect(all.first { $0.type == "account.verified" }?.data?["holder_name"]?.stringValue == name)
            expected[county.uscc(i)] = name.replacingOccurrences(of: op, with: Mask.name(op))
            operators.append(op)
            facts += all
        }
        // Everyone else keeps a trade name without a person's name in it.
        for i in (0..<county.merchants) where !county.tradesUnderOperatorsName(i) {
            let reg = county.facts(of: i)[0].data
            let op = reg?["legal_rep"]?["name"]?.stringValue ?? "?"
            #expect(reg?["name"]?.stringValue?.contains(op) == false)
        }

        let h = try Harness(start: "2022-04-01T09:00:00+08:00")
        let registry = try await h.startRegistry()
        _ = try await h.startStandIn("payments")
        let notifier = try await h.startNotifier()
        let matcher = try await h.startMatcher()
        #expect(try await registry.publish(facts).allSatisfy { $0.status == .accepted })
        let yaml = """
            id: test-individuals
            revision: 1
            title: 个体工商户测试项目
            authority: 测试局
            benefit: deferral
            channel: agency:test
            requires_application: false
            period: {from: 2022-01-01, to: 2022-06-30}
            disclosure: {working_days: 5, auto_approve: true}
            per: merchant
            eligible: merchant.kind == "individual"
            """
        #expect(
            try await matcher.publish(Fixtures.event("policy.published", ["yaml": .string(yaml)], source: "/ops/test")).status == .accepted)
        let board = h.directory + "/notifier/board"
        var names: [String] = []
        for _ in 0..<5_000 where names.count < picked.count {
            _ = try await notifier.query(["op": "status"])
            guard let text = try? String(contentsOfFile: board + "/data.json", encoding: .utf8), let json = try? JSONParser.parse(text)
            else { continue }
            names = (json["rows"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
        }
        #expect(Set(names) == Set(expected.values), "\(names)")
        #expect(names.allSatisfy { $0.hasPrefix("许昌市") && $0.contains("*") }, "\(names)")
        for file in ["index.html", "data.json", "data.csv"] {
            let text = (try? String(contentsOfFile: board + "/" + file, encoding: .utf8)) ?? ""
            for op in operators { #expect(!text.contains(op), "\(file) shows the operator \(op) in clear") }
        }
        await h.shutdown()
    }

    @Test func disclosureObjectionClearingApprovalBoardAndNotifications() async throws {
        let h = try Harness(start: "2022-04-01T09:00:00+08:00")  // a Friday
        let registry = try await h.startRegistry()
        _ = try await h.startStandIn("payments")
        let notifier = try await h.startNotifier()
        let matcher = try await h.startMatcher()
        let matcherFeed = try h.collect("matcher")
        let notifierFeed = try h.collect("notifier")
        var f = Fixtures(seed: 91)
        let (a, b, c) = (f.uscc(), f.uscc(), f.uscc())
        var facts: [CloudEvent] = []
        for (u, name) in [(a, "甲工厂有限公司"), (b, "乙工厂有限公司"), (c, "丙工厂有限公司")] {
            facts += f.closedFactory(uscc: u, name: name, insured: 10)
        }
        #expect(try await registry.publish(facts).allSatisfy { $0.status == .accepted })
        let yaml = try String(contentsOf: Self.repo.appendingPathComponent("policies/retention-training-subsidy.yaml"), encoding: .utf8)
        #expect(
            try await matcher.publish(Fixtures.event("policy.published", ["yaml": .string(yaml)], source: "/ops/test")).status == .accepted)

        // The round opens; the matcher marks the entitlements disclosed.
        #expect(
            await notifierFeed.wait {
                $0.filter { $0.type == "disclosure.opened" }.flatMap { $0.data?["entitlement_ids"]?.arrayValue ?? [] }.count == 3
            })
        let opened = try #require(notifierFeed.events.first { $0.type == "disclosure.opened" }?.data)
        // The test's own copy of the matcher's feed may trail the notifier's.
        #expect(await matcherFeed.wait { $0.filter { $0.type == "entitlement.proposed" }.count >= 3 })
        #expect(opened["closes_at"]?.stringValue == "2022-04-09T00:00:00.000+08:00")  // 5 working days after Friday: Mon..Fri, 24:00
        let ids = Dictionary(
            uniqueKeysWithValues: matcherFeed.events.filter { $0.type == "entitlement.proposed" }.compactMap { e in
                e.subject.flatMap { s in e.data?["entitlement_id"]?.stringValue.map { (s, $0) } }
            })
        try #require(ids.count == 3)

        // Someone objects to b during the window.
        let objection = try await notifier.publish(
            Fixtures.event(
                "objection.filed", ["entitlement_id": .string(try #require(ids[b])), "reason": "该企业三月份并未停业", "contact": "13800000000"],
                source: "/public/board"))
        #expect(objection.status == .accepted)

        // The window passes in test time: a and c clear; b waits for its objection.
        h.clock.advance(seconds: 8 * 86_400)
        #expect(
            await notifierFeed.wait {
                $0.filter { $0.type == "disclosure.cleared" }.flatMap { $0.data?["entitlement_ids"]?.arrayValue ?? [] }.count == 2
            })
        let cleared = notifierFeed.events.filter { $0.type == "disclosure.cleared" }.flatMap {
            $0.data?["entitlement_ids"]?.arrayValue ?? []
        }.compactMap(\.stringValue)
        #expect(Set(cleared) == [ids[a]!, ids[c]!])
        #expect(
            await matcherFeed.wait { events in
                [a, c].allSatisfy { u in events.contains { $0.type == "entitlement.approved" && $0.subject == u } }
            })

        // Too late to object now.
        let late = try await notifier.publish(
            Fixtures.event("objection.filed", ["entitlement_id": .string(ids[a]!), "reason": "迟到的异议"], source: "/public/board"))
        #expect(late.rejection?.code == .late)

        // b is still held back by its objection after the window: not cleared.
        #expect(
            !notifierFeed.events.contains {
                $0.type == "disclosure.cleared" && ($0.data?["entitlement_ids"]?.arrayValue ?? []).contains(.string(ids[b]!))
            })

        // The objection to b is upheld: the matcher revokes b.
        let upheld = try await notifier.publish(
            Fixtures.event(
                "objection.resolved", ["entitlement_id": .string(ids[b]!), "outcome": "upheld", "by": "区人社局 李科长", "note": "核实停业不足7日"],
                source: "/ops/test"))
        #expect(upheld.status == .accepted)
        #expect(await matcherFeed.wait { $0.contains { $0.type == "entitlement.revoked" && $0.subject == b } })

        // The board: rows with masked codes, no clear USCC anywhere.
        // The board is regenerated by the notifier's worker; poll it (each status query is a round
        // trip through the notifier) until it shows the three rows with no objection pending.
        let board = h.directory + "/notifier/board"
        let notifierHandle = notifier
        var html = ""
        for _ in 0..<5_000 {
            _ = try await notifierHandle.query(["op": "status"])
            guard let text = try? String(contentsOfFile: board + "/data.json", encoding: .utf8),
                let json = try? JSONParser.parse(text), let rows = json["rows"]?.arrayValue,
                let page = try? String(contentsOfFile: board + "/index.html", encoding: .utf8)
            else { continue }
            let statuses = rows.compactMap { $0["status"]?.stringValue }
            if rows.count == 3, !statuses.contains("有异议待处理"), statuses.contains("已撤销") {
                html = page
                break
            }
        }
        for u in [a, b, c] {
            #expect(!html.contains(u))
            #expect(html.contains(Mask.uscc(u)))
        }
        #expect(html.contains("甲工厂有限公司"))
        // The programme's public standard (zh-CN), never the operators' notes.
        #expect(html.contains("按每名参保职工500元的标准发放一次性留工培训补助"), "the policy's standard")
        #expect(!html.contains("Closed days are counted"), "not the operators' notes")

        // Notifications: one per event, in the JSON Lines channel.
        let file = h.directory + "/notifier/notifications.jsonl"
        let wanted: Set<[String]> = [[a, "disclosure"], [a, "approved"], [c, "approved"], [b, "disclosure"]]
        #expect(
            await notifierFeed.wait { events in
                let sent = Set(
                    events.filter { $0.type == "notification.sent" }.compactMap { e -> [String]? in
                        guard let u = e.data?["uscc"]?.stringValue, let k = e.data?["kind"]?.stringValue else { return nil }
                        return [u, k]
                    })
                return wanted.isSubset(of: sent)
            })
        let lines = try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n").compactMap {
            try? JSONParser.parse(String($0))
        }
        let keys = lines.compactMap { $0["key"]?.stringValue }
        #expect(Set(keys).count == keys.count, "never the same notification twice")
        #expect(lines.contains { $0["uscc"]?.stringValue == a && $0["kind"]?.stringValue == "disclosure" })
        #expect(lines.contains { $0["uscc"]?.stringValue == a && $0["kind"]?.stringValue == "approved" })

        // The monthly evaluation (月度评) for April 2022.
        let report = try await notifier.query(["op": "report.monthly", "month": "2022-04"])
        let reportHTML = try String(contentsOfFile: try #require(report["html"]?.stringValue), encoding: .utf8)
        #expect(reportHTML.contains("<svg"))
        #expect(report["districts"]?.intValue ?? 0 >= 1)
        let rounds = try await notifier.query(["op": "round.list"])
        #expect(rounds["items"]?.arrayValue?.first?["state"]?.stringValue == "closed")

        // The round's record, kept after the board moves on: every entitlement as disclosed, with
        // its outcome when the round closed (b's objection was still pending then), and its SHA-256.
        let roundID = try #require(opened["round_id"]?.stringValue)
        let reports = (try #require(report["html"]?.stringValue) as NSString).deletingLastPathComponent
        let archive = reports + "/disclosures/\(roundID).csv"
        var archived: Data?
        for _ in 0..<5_000 where archived == nil {
            _ = try await notifierHandle.query(["op": "status"])
            if FileManager.default.fileExists(atPath: archive + ".sha256") { archived = FileManager.default.contents(atPath: archive) }
        }
        let bytes = try #require(archived, "the round's record at \(archive)")
        #expect(Array(bytes.prefix(3)) == [0xEF, 0xBB, 0xBF])
        let sum = try String(contentsOfFile: archive + ".sha256", encoding: .utf8)
        #expect(sum == "\(SHA256.hash([UInt8](bytes)).hexString)  \(roundID).csv\n")
        let recordRows = String(decoding: bytes.dropFirst(3), as: UTF8.self).components(separatedBy: "\r\n").filter { !$0.isEmpty }
        #expect(recordRows.count == 4, "a header and the round's three entitlements: \(recordRows)")
        for u in [a, b, c] {
            #expect(!recordRows.joined().contains(u))
            #expect(recordRows.contains { $0.contains(Mask.uscc(u)) })
        }
        #expect(recordRows.contains { $0.contains(Mask.uscc(b)) && $0.contains("有异议待处理") }, "\(recordRows)")
        #expect(recordRows.contains { $0.contains(Mask.uscc(a)) && $0.contains("无异议") }, "\(recordRows)")
        await matcherFeed.stop()
        await notifierFeed.stop()
        await h.shutdown()
    }

    @Test func aDismissedObjectionClearsItsEntitlementAfterTheWindow() async throws {
        let h = try Harness(start: "2022-04-01T09:00:00+08:00")
        let registry = try await h.startRegistry()
        _ = try await h.startStandIn("payments")
        let notifier = try await h.startNotifier()
        let matcher = try await h.startMatcher()
        let notifierFeed = try h.collect("notifier")
        let matcherFeed = try h.collect("matcher")
        var f = Fixtures(seed: 92)
        let u = f.uscc()
        #expect(
            try await registry.publish(f.closedFactory(uscc: u, name: "丁工厂有限公司", insured: 4)).allSatisfy { $0.status == .accepted })
        let yaml = try String(contentsOf: Self.repo.appendingPathComponent("policies/retention-training-subsidy.yaml"), encoding: .utf8)
        _ = try await matcher.publish(Fixtures.event("policy.published", ["yaml": .string(yaml)], source: "/ops/test"))
        #expect(await notifierFeed.wait { $0.contains { $0.type == "disclosure.opened" } })
        let id = try #require(
            notifierFeed.events.first { $0.type == "disclosure.opened" }?.data?["entitlement_ids"]?.arrayValue?.first?.stringValue)
        #expect(
            try await notifier.publish(
                Fixtures.event("objection.filed", ["entitlement_id": .string(id), "reason": "怀疑"], source: "/public/board")
            ).status == .accepted)
        h.clock.advance(seconds: 8 * 86_400)
        // The round closes with nothing to clear (its only entitlement is held back) …
        let notifierHandle = notifier
        while try await notifierHandle.query(["op": "round.list"])["items"]?.arrayValue?.first?["state"]?.stringValue != "closed" {
            await Task.yield()
        }
        #expect(!notifierFeed.events.contains { $0.type == "disclosure.cleared" })
        // … and the dismissal clears it at once.
        #expect(
            try await notifier.publish(
                Fixtures.event(
                    "objection.resolved", ["entitlement_id": .string(id), "outcome": "dismissed", "by": "区人社局"], source: "/ops/test")
            ).status
                == .accepted)
        #expect(await notifierFeed.wait { $0.contains { $0.type == "disclosure.cleared" } })
        #expect(await matcherFeed.wait { $0.contains { $0.type == "entitlement.approved" && $0.subject == u } })
        await notifierFeed.stop()
        await matcherFeed.stop()
        await h.shutdown()
    }
}
