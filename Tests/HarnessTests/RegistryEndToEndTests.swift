import BangfuTesting
import Bus
import Foundation
import Models
import Testing

/// The registry end to end in the in-process harness: facts in at the intake, profiles out on the
/// feed, through the real subscriber.
@Suite("Registry end to end")
struct RegistryEndToEndTests {
    func profiles(_ events: [CloudEvent], _ uscc: String) -> [JSON] {
        events.filter { $0.type == "merchant.profiled" && $0.subject == uscc }.compactMap(\.data)
    }

    @Test func registrationPublishesAProfileWithMaskedPersonalDataAndUnknownSize() async throws {
        let h = try Harness()
        let reg = try await h.startRegistry()
        let feed = try h.collect("registry")
        var f = Fixtures()
        let uscc = f.uscc()
        let ev = f.registration(uscc: uscc, name: "许昌市魏都区好味道餐馆")
        #expect(try await reg.publish(ev).status == .accepted)
        #expect(await feed.wait(count: 1))
        let p = try #require(profiles(feed.events, uscc).first)
        #expect(p["name"]?.stringValue == "许昌市魏都区好味道餐馆")
        #expect(p["version"]?.intValue == 1)
        #expect(p["tags"]?["size"]?.stringValue == "unknown")
        #expect(p["tags"]?["sector"]?.stringValue == "catering")
        #expect(p["tags"]?["service_industry"]?.boolValue == true)
        #expect(p["tags"]?["priority_sector"]?.boolValue == true)
        let idNumber = ev.data!["legal_rep"]!["id_number"]!.stringValue!
        #expect(!feed.events[0].serialized().contains(idNumber), "the resident ID must never be on the bus in clear")
        #expect(p["legal_rep"]?["id_number"]?.stringValue == Mask.idNumber(idNumber))
        #expect(p["legal_rep"]?["name"]?.stringValue == "李*")
        #expect(feed.events[0].source == "/bangfu/registry")
        #expect(feed.events[0].id == "merchant.profiled/\(uscc)/1")
        await feed.stop()
        await h.shutdown()
    }

    @Test func factsChangeTheProfileAndAnUnchangingFactPublishesNothing() async throws {
        let h = try Harness()
        let reg = try await h.startRegistry()
        let feed = try h.collect("registry")
        var f = Fixtures()
        let uscc = f.uscc()
        _ = try await reg.publish(f.registration(uscc: uscc, name: "小餐馆", industry: "H6210"))
        // catering: small needs E ≥ 10 and R ≥ 100 万元 (1,000,000 fen per 万元).
        _ = try await reg.publish(Fixtures.finance(uscc: uscc, employees: 10, revenueFen: 100 * 1_000_000, assetsFen: 0))
        #expect(await feed.wait(count: 2))
        #expect(profiles(feed.events, uscc).last?["tags"]?["size"]?.stringValue == "small")
        // The same figures again under a new id: accepted, but nothing changes, so no event.
        #expect(
            try await reg.publish(Fixtures.finance(uscc: uscc, employees: 10, revenueFen: 100 * 1_000_000, assetsFen: 0)).status
                == .accepted)
        // One fen under the floor makes it micro; an older year never overrides a newer one.
        _ = try await reg.publish(Fixtures.finance(uscc: uscc, year: 2020, employees: 500, revenueFen: 1, assetsFen: 0))
        _ = try await reg.publish(Fixtures.finance(uscc: uscc, employees: 10, revenueFen: 100 * 1_000_000 - 1, assetsFen: 0))
        #expect(await feed.wait(count: 3))
        // Replay reads what is committed, so a stray fourth profile could not hide here.
        let all = profiles(try await reg.replayAll(), uscc)
        #expect(all.count == 3)
        #expect(all.map { $0["version"]?.intValue } == [1, 2, 3])
        #expect(all.last?["tags"]?["size"]?.stringValue == "micro")
        #expect(all.last?["finance"]?["year"]?.intValue == 2021)
        let seqs = feed.events.compactMap(\.sequenceNumber)
        #expect(seqs == Array(1...UInt64(seqs.count)))
        await feed.stop()
        await h.shutdown()
    }

    @Test func factsBeforeTheRegistrationJoinTheProfileWhenItArrives() async throws {
        let h = try Harness()
        let reg = try await h.startRegistry()
        var f = Fixtures()
        let uscc = f.uscc()
        #expect(try await reg.publish(Fixtures.socialInsurance(uscc: uscc, month: "2022-03", insured: 4321)).status == .accepted)
        #expect(try await reg.publish(Fixtures.finance(uscc: uscc, employees: 3, revenueFen: 5, assetsFen: 5)).status == .accepted)
        #expect(try await reg.replayAll().isEmpty, "no profile before the registration")
        _ = try await reg.publish(f.registration(uscc: uscc, name: "先到的参保数据"))
        let events = try await reg.replayAll()
        let p = try #require(profiles(events, uscc).first)
        #expect(profiles(events, uscc).count == 1)
        #expect(p["social_insurance"]?["insured_employees"]?.intValue == 4321)
        #expect(p["tags"]?["size"]?.stringValue == "micro")
        await h.shutdown()
    }

    @Test func subleaseChainsResolveTheRootLessorAndMarkTheIntermediateLease() async throws {
        let h = try Harness()
        let reg = try await h.startRegistry()
        var f = Fixtures()
        let middle = f.uscc()
        let final = f.uscc(individual: true)
        _ = try await reg.publish(f.registration(uscc: middle, name: "二房东商贸"))
        _ = try await reg.publish(f.registration(uscc: final, name: "张记小吃", kind: "individual"))
        // The sublease arrives before the head lease: its root is unknown until then.
        _ = try await reg.publish(
            Fixtures.lease(id: "L-2", tenant: final, lessorName: "二房东商贸", lessorOwnership: "private", subleaseOf: "L-1", rentFen: 200_000))
        var events = try await reg.replayAll()
        let early = try #require(profiles(events, final).last?["leases"]?.arrayValue?.first)
        #expect(early["chain_complete"]?.boolValue == false)
        #expect(early["root_lessor"]?.isNull == true)
        _ = try await reg.publish(Fixtures.lease(id: "L-1", tenant: middle, lessorOwnership: "state_enterprise", rentFen: 500_000))
        events = try await reg.replayAll()
        let finalLease = try #require(profiles(events, final).last?["leases"]?.arrayValue?.first)
        #expect(finalLease["chain_complete"]?.boolValue == true)
        #expect(finalLease["root_lessor"]?["ownership"]?.stringValue == "state_enterprise")
        #expect(finalLease["lessor"]?["ownership"]?.stringValue == "private")
        #expect(finalLease["sublet"]?.boolValue == false)
        #expect(finalLease["sublets"] == .array([]))
        let middleLease = try #require(profiles(events, middle).last?["leases"]?.arrayValue?.first)
        #expect(middleLease["sublet"]?.boolValue == true)
        // When it is sublet: the sublease's term, so a policy can tell it from its own period.
        #expect(middleLease["sublets"] == [["lease_id": "L-2", "starts_on": "2021-01-01", "ends_on": "2023-12-31"]])
        #expect(profiles(events, final).last?["tags"]?["size"]?.stringValue == "individual")
        await h.shutdown()
    }

    @Test func statusCreditAndFraudShowInTheProfile() async throws {
        let h = try Harness()
        let reg = try await h.startRegistry()
        var f = Fixtures()
        let uscc = f.uscc()
        _ = try await reg.publish(f.registration(uscc: uscc, name: "信用测试店"))
        let flag: JSON = ["uscc": .string(uscc), "list": "serious_violation", "since": "2022-01-05"]
        _ = try await reg.publish(Fixtures.event("credit.flagged", flag, subject: uscc))
        var p = profiles(try await reg.replayAll(), uscc).last!
        #expect(p["credit_flags"]?.arrayValue?.first?["list"]?.stringValue == "serious_violation")
        // A clearance dated before the flag does not clear it; one after does.
        _ = try await reg.publish(
            Fixtures.event("credit.cleared", ["uscc": .string(uscc), "list": "serious_violation", "since": "2021-12-01"], subject: uscc))
        p = profiles(try await reg.replayAll(), uscc).last!
        #expect(p["credit_flags"]?.arrayValue?.count == 1)
        _ = try await reg.publish(
            Fixtures.event("credit.cleared", ["uscc": .string(uscc), "list": "serious_violation", "since": "2022-03-01"], subject: uscc))
        p = profiles(try await reg.replayAll(), uscc).last!
        #expect(p["credit_flags"]?.arrayValue?.isEmpty == true)
        _ = try await reg.publish(
            Fixtures.event("business.status_changed", ["uscc": .string(uscc), "status": "suspended", "on": "2022-05-01"], subject: uscc))
        _ = try await reg.publish(
            Fixtures.event("fraud.confirmed", ["uscc": .string(uscc), "finding": "虚报损失", "confirmed_by": "区市场监管局"], subject: uscc))
        p = profiles(try await reg.replayAll(), uscc).last!
        #expect(p["status"]?.stringValue == "suspended")
        #expect(p["disqualified"]?.boolValue == true)
        await h.shutdown()
    }

    @Test func aClearanceBeforeItsFlagStillClearsAndPersonLessorsAreMasked() async throws {
        let h = try Harness()
        let reg = try await h.startRegistry()
        var f = Fixtures()
        let uscc = f.uscc()
        _ = try await reg.publish(f.registration(uscc: uscc, name: "乱序测试店"))
        // The credit bureau's clearance arrives before its flag: the flag must not stick.
        _ = try await reg.publish(
            Fixtures.event("credit.cleared", ["uscc": .string(uscc), "list": "abnormal_operation", "since": "2022-03-01"], subject: uscc))
        _ = try await reg.publish(
            Fixtures.event("credit.flagged", ["uscc": .string(uscc), "list": "abnormal_operation", "since": "2022-01-01"], subject: uscc))
        // A later flag after the clearance does stick.
        _ = try await reg.publish(
            Fixtures.event("credit.flagged", ["uscc": .string(uscc), "list": "dishonest_debtor", "since": "2022-04-01"], subject: uscc))
        _ = try await reg.publish(Fixtures.lease(id: "P-1", tenant: uscc, lessorName: "刘桂芳", lessorOwnership: "private"))
        // A state enterprise registered without a USCC is still an organisation: its name stays,
        // so it can find its rent waivers in the instruction files.
        _ = try await reg.publish(Fixtures.lease(id: "S-1", tenant: uscc, lessorName: "许昌市国有资产经营有限公司"))
        let p = try #require(profiles(try await reg.replayAll(), uscc).last)
        #expect(p["credit_flags"]?.arrayValue?.compactMap { $0["list"]?.stringValue } == ["dishonest_debtor"])
        let lease = try #require(p["leases"]?.arrayValue?.first { $0["lease_id"]?.stringValue == "P-1" })
        #expect(lease["lessor"]?["name"]?.stringValue == "刘*芳", "a natural person's name is masked")
        #expect(lease["root_lessor"]?["name"]?.stringValue == "刘*芳")
        let state = try #require(p["leases"]?.arrayValue?.first { $0["lease_id"]?.stringValue == "S-1" })
        #expect(state["lessor"]?["name"]?.stringValue == "许昌市国有资产经营有限公司")
        await h.shutdown()
    }

    @Test func everyRegistryRejectionCodeIsAnsweredAndQuarantined() async throws {
        let h = try Harness()
        let reg = try await h.startRegistry()
        var f = Fixtures()
        let good = f.registration(uscc: f.uscc(), name: "好店")
        func mutate(_ e: CloudEvent, _ change: (inout JSONObject) -> Void) -> [UInt8] {
            guard case .object(var o) = e.json else { return [] }
            o["id"] = .string(UUID().uuidString)
            change(&o)
            return JSON.object(o).serializedBytes()
        }
        func mutateData(_ e: CloudEvent, _ change: @escaping (inout JSONObject) -> Void) -> [UInt8] {
            mutate(e) { o in
                guard case .object(var d)? = o["data"] else { return }
                change(&d)
                o["data"] = .object(d)
            }
        }
        let badUSCC = String(good.subject!.dropLast()) + (good.subject!.last == "0" ? "1" : "0")
        let cases: [(String, [UInt8], RejectionCode, String?)] = [
            ("not json", Array("not json".utf8), .invalidJSON, nil),
            ("no specversion", mutate(good) { $0["specversion"] = nil }, .invalidEnvelope, "specversion"),
            ("unknown type", mutate(good) { $0["type"] = "weather.reported" }, .unknownType, "type"),
            ("missing name", mutateData(good) { $0["name"] = nil }, .invalidData, "data.name"),
            ("bad kind", mutateData(good) { $0["kind"] = "cooperative" }, .invalidData, "data.kind"),
            (
                "bad uscc",
                mutate(good) { o in
                    o["subject"] = .string(badUSCC)
                    if case .object(var d)? = o["data"] { d["uscc"] = .string(badUSCC); o["data"] = .object(d) }
                }, .invalidUSCC, "data.uscc"
            ),
            (
                "bad id number", mutateData(good) { $0["legal_rep"] = ["name": "李四", "id_number": "411002198001011230"] }, .invalidIDNumber,
                "data.legal_rep.id_number"
            ),
            ("impossible date", mutateData(good) { $0["registered_on"] = "2021-02-30" }, .invalidDate, "data.registered_on"),
            (
                "negative money", Fixtures.finance(uscc: good.subject!, employees: 1, revenueFen: -1, assetsFen: 0).serializedBytes,
                .invalidAmount, "data.operating_revenue_fen"
            ),
            (
                "fractional money",
                Array(
                    #"{"specversion":"1.0","id":"frac","source":"/t","type":"finance.reported","data":{"uscc":"\#(good.subject!)","year":2021,"employees":1,"operating_revenue_fen":10.5,"total_assets_fen":0}}"#
                        .utf8), .invalidAmount, "data.operating_revenue_fen"
            ),
            ("subject mismatch", mutate(good) { $0["subject"] = .string(f.uscc()) }, .invalidEnvelope, "subject"),
        ]
        for (label, frame, code, field) in cases {
            let ack = try await reg.publishRaw([frame])[0]
            #expect(ack.status == .rejected, "\(label)")
            #expect(ack.rejection?.code == code, "\(label): \(ack.rejection?.description ?? "accepted")")
            if let field { #expect(ack.rejection?.field == field, "\(label)") }
        }
        // conflict: the same id with different content.
        #expect(try await reg.publish(good).status == .accepted)
        var twin = f.registration(uscc: good.subject!, name: "另一家店")
        twin.id = good.id
        #expect(try await reg.publish(twin).rejection?.code == .conflict)
        // too_large: over max_message_bytes (1 MiB by default).
        let huge = f.registration(uscc: f.uscc(), name: String(repeating: "大", count: 400_000))
        #expect(try await reg.publish(huge).rejection?.code == .tooLarge)
        let status = try await reg.query(["op": "status"])
        #expect(status["quarantined"]?.intValue == Int64(cases.count + 2))
        #expect(status["quarantined_by_code"]?["invalid_amount"]?.intValue == 2)
        let list = try await reg.query(["op": "quarantine.list", "max": 100])
        #expect(list["items"]?.arrayValue?.count == cases.count + 2)
        let first = try await reg.query(["op": "quarantine.show", "id": "1"])
        #expect(first["item"]?["frame"]?.stringValue == "not json")
        await h.shutdown()
    }

    /// `merchant.show` answers the profile; asked without a USCC it is the client's mistake
    /// (`invalid_request`, as `quarantine.show` without an id), not an unknown op.
    @Test func merchantShowWithoutAUSCCIsAnInvalidRequest() async throws {
        let h = try Harness()
        let reg = try await h.startRegistry()
        var f = Fixtures()
        let uscc = f.uscc()
        #expect(try await reg.publish(f.registration(uscc: uscc, name: "许昌市魏都区好味道餐馆")).status == .accepted)
        let shown = try await reg.query(["op": "merchant.show", "uscc": .string(uscc)])
        #expect(shown["op"]?.stringValue == "merchant")
        #expect(shown["profile"]?["uscc"]?.stringValue == uscc)
        for request: JSON in [["op": "merchant.show"], ["op": "merchant.show", "uscc": 5], ["op": "merchant.show", "uscc": ""]] {
            let answer = try await reg.query(request)
            #expect(answer["op"]?.stringValue == "error", "\(request)")
            #expect(answer["code"]?.stringValue == "invalid_request", "\(request)")
        }
        let unknown = try await reg.query(["op": "merchant.show", "uscc": .string(f.uscc())])
        #expect(unknown["code"]?.stringValue == "not_found")
        await h.shutdown()
    }

    /// `merchant.facts`: an auditor lists the facts behind a merchant's profile, oldest first —
    /// a fact sent without a `subject` included — with the legal representative's resident ID
    /// masked, and pages through them.
    @Test func merchantFactsListsWhatTheRegistryTookAboutOneMerchant() async throws {
        let h = try Harness()
        let reg = try await h.startRegistry()
        var f = Fixtures()
        let (uscc, other) = (f.uscc(), f.uscc())
        let registration = f.registration(uscc: uscc, name: "许昌市魏都区好味道餐馆")
        var finance = Fixtures.finance(uscc: uscc, employees: 8, revenueFen: 1_000_000, assetsFen: 0)
        finance.subject = nil
        #expect(try await reg.publish(registration).status == .accepted)
        #expect(try await reg.publish(f.registration(uscc: other, name: "别家商店")).status == .accepted)
        #expect(try await reg.publish(finance).status == .accepted)
        let facts = try await reg.query(["op": "merchant.facts", "uscc": .string(uscc)])
        let items = facts["items"]?.arrayValue ?? []
        #expect(items.compactMap { $0["id"]?.stringValue } == [registration.id, finance.id], "\(facts)")
        #expect(items.first?["source"]?.stringValue == registration.source)
        #expect(items.first?["type"]?.stringValue == "business.registered")
        let idNumber = try #require(registration.data?["legal_rep"]?["id_number"]?.stringValue)
        #expect(!facts.serialized().contains(idNumber), "the resident ID is masked")
        let repName = try #require(registration.data?["legal_rep"]?["name"]?.stringValue)
        #expect(items.first?["data"]?["legal_rep"]?["name"]?.stringValue == Mask.name(repName), "a person's name is masked")
        #expect(items.first?["data"]?["name"]?.stringValue == "许昌市魏都区好味道餐馆")
        let paged = try await reg.query(["op": "merchant.facts", "uscc": .string(uscc), "max": 1])
        #expect(paged["items"]?.arrayValue?.count == 1 && paged["more"]?.boolValue == true)
        let rest = try await reg.query([
            "op": "merchant.facts", "uscc": .string(uscc), "after": paged["items"]?.arrayValue?.first?["seq"] ?? 0,
        ])
        #expect(rest["items"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == [finance.id])
        #expect(try await reg.query(["op": "merchant.facts"])["code"]?.stringValue == "invalid_request")
        await h.shutdown()
    }

    @Test func aRestartedRegistryKeepsItsSequenceAndDeduplication() async throws {
        let h = try Harness()
        var reg = try await h.startRegistry()
        var f = Fixtures()
        let events = (0..<20).map { i in f.registration(uscc: f.uscc(), name: "店\(i)") }
        _ = try await reg.publish(events)
        await reg.stop()
        reg = try await h.startRegistry()
        #expect(try await reg.publish(events[3]).status == .duplicate)
        _ = try await reg.publish(f.registration(uscc: f.uscc(), name: "重启之后"))
        let all = try await reg.replayAll(page: 6)
        #expect(all.compactMap(\.sequenceNumber) == Array(1...21))
        await h.shutdown()
    }
}

extension CloudEvent {
    var serializedBytes: [UInt8] { Array(serialized().utf8) }
}

/// The real-name check (DESIGN §8) follows the registration: a change of name or operator that
/// turns it publishes the payee again, so payments never pays a former operator's account.
@Suite("Payee real-name check follows the registration")
struct PayeeRealNameTests {
    static func registration(_ uscc: String, name: String, operatorName: String) -> CloudEvent {
        Fixtures.event(
            "business.registered",
            [
                "uscc": .string(uscc), "name": .string(name), "kind": "individual",
                "legal_rep": ["name": .string(operatorName), "id_number": "41102319850615003X"], "industry": "H6210",
                "district": "411002", "registered_on": "2019-03-01", "status": "active",
            ], subject: uscc)
    }

    @Test func aChangeOfOperatorRepublishesThePayee() async throws {
        let h = try Harness()
        let reg = try await h.startRegistry()
        let feed = try h.collect("registry")
        var f = Fixtures(seed: 71)
        let uscc = f.uscc(individual: true)
        @Sendable func payees() -> [JSON] { feed.events.filter { $0.type == "payee.verified" }.compactMap(\.data) }
        let account = Fixtures.event(
            "account.verified",
            [
                "uscc": .string(uscc), "bank": "中国工商银行许昌分行", "account_no": "6222000011112222", "holder_name": "张三",
                "verified_on": "2022-03-15",
            ], subject: uscc, source: "/bank/icbc-xuchang")
        for e in [Self.registration(uscc, name: "张三小吃店", operatorName: "张三"), account] {
            #expect(try await reg.publish(e).status == .accepted)
        }
        #expect(await feed.wait { e in e.filter { $0.type == "payee.verified" }.count == 1 })
        #expect(payees().last?["holder_matches"]?.boolValue == true)

        // The shop changes hands: the account's holder is no longer the operator.
        #expect(try await reg.publish(Self.registration(uscc, name: "李四小吃店", operatorName: "李四")).status == .accepted)
        #expect(await feed.wait { e in e.filter { $0.type == "payee.verified" }.count == 2 })
        #expect(payees().last?["holder_matches"]?.boolValue == false)

        // A change that leaves the check as it is publishes no payee.
        #expect(try await reg.publish(Self.registration(uscc, name: "李四小吃部", operatorName: "李四")).status == .accepted)
        // And back to the first operator: matches again, as a new event (never an id seen before).
        #expect(try await reg.publish(Self.registration(uscc, name: "张三小吃店", operatorName: "张三")).status == .accepted)
        #expect(await feed.wait { e in e.filter { $0.type == "payee.verified" }.count == 3 })
        let all = feed.events.filter { $0.type == "payee.verified" }
        #expect(all.map { $0.data?["holder_matches"]?.boolValue } == [true, false, true])
        #expect(Set(all.map(\.id)).count == 3)
        await feed.stop()
        await h.shutdown()
    }
}
