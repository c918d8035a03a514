import BangfuTesting
import Bus
import Foundation
import Models
import Registry
import Testing

/// An entitlement's trace records its inputs whole, and the flood-relief programme reads
/// `merchant.leases` twice: a profile the registry may publish (under 1 MiB) would make an
/// entitlement event of megabytes, which every subscriber's libzmq drops (and with it the
/// connection), cutting payments and the notifier off for every merchant.
@Suite("Published trace", .serialized)
struct PublishedTraceTests {
    static let leases = 2_300

    /// A merchant in the development zone with flood damage and 2,300 leases at 100 fen a month:
    /// 3 months of all of them is 690,000 fen, under the cap.
    static func bigProfile() throws -> (uscc: String, profile: JSON) {
        var fx = Fixtures(seed: 7)
        let u = fx.uscc(individual: true, division: "411071")
        var events = [fx.registration(uscc: u, name: "张三商店", kind: "individual", industry: "F5211", district: "411071")]
        events.append(
            Fixtures.event(
                "damage.reported",
                ["uscc": .string(u), "event": "flood-2021-07", "loss_fen": 500_000, "evidence": ["photo-1.jpg"]], subject: u))
        for i in 0..<leases {
            events.append(
                Fixtures.lease(id: "L-\(i)", tenant: u, lessorName: "某某物业管理有限公司第\(i)分公司", lessorOwnership: "private", rentFen: 100))
        }
        let facts = try events.map { try Fact.decode(type: $0.type, data: $0.data) }
        let profile = try #require(OfflineProfiles.profile(uscc: u, facts: facts))
        return (u, profile)
    }

    @Test func anEntitlementFromAHugeProfileGoesOutWithASummarisedTraceThatSubscribersReceive() async throws {
        let h = try Harness(start: "2021-08-01T09:00:00+08:00")
        do {
            let registry = try await h.startStandIn("registry")
            let matcher = try await h.startMatcher()
            let feed = try h.collect("matcher")
            let (u, profile) = try Self.bigProfile()
            #expect(profile.serializedBytes().count < 1 << 20, "the registry may publish this profile")
            let yaml = try SeedProgrammeTests.policyYAML("flood-relief")
            #expect(
                try await matcher.publish(Fixtures.event("policy.published", ["yaml": .string(yaml)], source: "/ops/test")).status
                    == .accepted)
            let application = Fixtures.event(
                "application.submitted", ["uscc": .string(u), "policy_id": "flood-relief", "documents": ["a.pdf"]], subject: u,
                source: "/portal/test")
            #expect(try await matcher.publish(application).status == .accepted)
            let profiled = Fixtures.event(
                "merchant.profiled", profile, subject: u, source: "/bangfu/registry", id: "merchant.profiled/\(u)/1")
            #expect(try await registry.publish(profiled).status == .accepted)

            // A subscriber with the default max-message-bytes receives the entitlement (the
            // matcher works through a profile of 840 KB and a trace of 1.7 MB: a long safety net,
            // for a machine busy with other tests).
            #expect(await feed.wait(timeout: .seconds(240)) { $0.contains { $0.type == "entitlement.proposed" && $0.subject == u } })
            let event = try #require(feed.events.first { $0.type == "entitlement.proposed" && $0.subject == u })
            let data = try #require(event.data)
            #expect(data["amount_fen"]?.intValue == 690_000, "3 months of 2,300 leases at 100 fen")
            let trace = try #require(data["trace"])
            #expect(trace["trace_truncated"]?.boolValue == true)
            #expect(trace["amount"]?["rounded_fen"]?.intValue == 690_000)
            #expect(trace["amount"]?["exact"]?.stringValue != nil)
            // Every clause keeps its value; the lease list is a summary: count and SHA-256.
            let clauses = trace["clauses"]?.arrayValue ?? []
            #expect(!clauses.isEmpty && clauses.allSatisfy { $0["value"]?.boolValue == true })
            let leaseInputs = (clauses + [trace["amount"] ?? .null]).flatMap { $0["inputs"]?.arrayValue ?? [] }
                .filter { $0["path"]?.stringValue == "merchant.leases" }
            #expect(leaseInputs.count == 2)
            let leases = try #require(profile["leases"])
            let digest = SHA256.hash(leases.serializedBytes(sortedKeys: true)).hexString
            for i in leaseInputs {
                #expect(i["value"] == nil)
                #expect(i["summary"]?["count"]?.intValue == Int64(Self.leases))
                #expect(i["summary"]?["sha256"]?.stringValue == digest)
            }
            // Scalar inputs stay as they were.
            #expect(
                clauses.flatMap { $0["inputs"]?.arrayValue ?? [] }.contains {
                    $0["path"]?.stringValue == "damage.loss_fen" && $0["value"]?.intValue == 500_000
                })

            // The matcher keeps the whole trace for the operator.
            let id = try #require(data["entitlement_id"]?.stringValue)
            let shown = try await matcher.query(["op": "entitlement.show", "id": .string(id)])
            let kept = try #require(shown["entitlement"]?["trace"])
            #expect(kept["trace_truncated"] == nil)
            let keptLeases = (kept["clauses"]?.arrayValue ?? []).flatMap { $0["inputs"]?.arrayValue ?? [] }
                .first { $0["path"]?.stringValue == "merchant.leases" }
            #expect(keptLeases?["value"]?.arrayValue?.count == Self.leases)
        } catch {
            await h.shutdown()
            throw error
        }
        await h.shutdown()
    }
}
