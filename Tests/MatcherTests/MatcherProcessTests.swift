import BangfuTesting
import Bus
import Foundation
import Models
import Policy
import Registry
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The real `bangfu-registry` and `bangfu-matcher` processes over `ipc://`: the matcher is killed
/// with SIGKILL while it works through the registry's feed, restarted, and must end with exactly
/// the entitlements an undisturbed computation gives — none missing, none twice.
@Suite("Matcher process", .serialized)
struct MatcherProcessTests {
    @Test func kill9WhileScreeningEndsWithExactlyTheExpectedEntitlements() async throws {
        let dir = "/tmp/bangfu-mk-\(UUID().uuidString.prefix(8))"
        let context = ZContext()
        let registry = try ServiceProcess(name: "bangfu-registry", dir: dir, context: context)
        let matcher = try ServiceProcess(name: "bangfu-matcher", dir: dir, context: context)
        defer {
            registry.cleanup(removeDirectory: false)
            matcher.cleanup()
        }
        matcher.baseArguments = [
            "--registry-feed", registry.endpoint("feed"), "--registry-replay", registry.endpoint("replay"),
            "--notifier-feed", "ipc://\(dir)/no-notifier-feed", "--notifier-replay", "ipc://\(dir)/no-notifier-replay",
            "--payments-feed", "ipc://\(dir)/no-payments-feed", "--payments-replay", "ipc://\(dir)/no-payments-replay",
        ]
        matcher.baseArguments.append("--simulated-clock")
        try await registry.start()
        try await matcher.start()
        // The applications are judged late by the matcher's clock at receipt: put it inside the window.
        let clock = try await IntakeClient.publish(
            context: context, endpoint: matcher.endpoint("intake"),
            events: [
                OutgoingEvent(
                    Fixtures.event(
                        "clock.advanced", ["to": "2022-05-10T12:00:00+08:00", "set": true], source: "/ops/test", id: "clock-1"))
            ], options: .forTests)
        #expect(clock[0].ack?.status == .accepted)

        let yaml = try String(contentsOf: SeedProgrammeTests.repo.appendingPathComponent("policies/soe-rent-waiver.yaml"), encoding: .utf8)
        let policy = try PolicyCompiler.compile(yaml: yaml)
        let county = SyntheticCounty(seed: 77, merchants: 1_500, badEvery: 0)
        let facts = (0..<county.merchants).flatMap { county.facts(of: $0) }
        let usccs = (0..<county.merchants).map { county.uscc($0) }
        let at = "2022-05-10T10:00:00+08:00"
        let applications = usccs.map { u in
            Fixtures.event(
                "application.submitted",
                ["uscc": .string(u), "policy_id": "soe-rent-waiver", "submitted_at": .string(at), "documents": ["a.pdf"]],
                subject: u, source: "/portal/xuchang", id: "app-\(u)")
        }
        let p = try await IntakeClient.publish(
            context: context, endpoint: matcher.endpoint("intake"),
            events: [OutgoingEvent(Fixtures.event("policy.published", ["yaml": .string(yaml)], source: "/ops/test", id: "pol-1"))],
            options: .forTests)
        #expect(p[0].ack?.status == .accepted)
        let a = try await IntakeClient.publish(
            context: context, endpoint: matcher.endpoint("intake"), events: applications.map(OutgoingEvent.init), options: .forTests)
        #expect(a.allSatisfy { $0.ack?.status == .accepted })
        let r = try await IntakeClient.publish(
            context: context, endpoint: registry.endpoint("intake"), events: facts.map(OutgoingEvent.init), options: .forTests)
        #expect(r.allSatisfy { $0.ack?.status == .accepted })
        let registryLast = try await registry.query(["op": "status"])["last"]?.stringValue ?? "0"

        // Kill the matcher once it has applied part of the registry's feed, not all of it.
        var killedAt = ""
        while true {
            let s = try await matcher.query(["op": "status"])
            let cursor = s["inbox"]?["registry"]?.stringValue ?? "0"
            if (UInt64(cursor) ?? 0) > 0 {
                kill(matcher.pid, SIGKILL)
                killedAt = cursor
                break
            }
            await Task.yield()
        }
        _ = try await matcher.waitForExit()
        #expect(killedAt != registryLast, "killed before it caught up (cursor \(killedAt) of \(registryLast))")
        try await matcher.start()
        while try await matcher.query(["op": "status"])["inbox"]?["registry"]?.stringValue != registryLast { await Task.yield() }

        // The expectation, computed without the bus from the same facts.
        var expected: [String: Int64] = [:]
        let application: JSON = ["submitted_on": "2022-05-10", "submitted_at": .string(at), "documents": ["a.pdf"]]
        for i in 0..<county.merchants {
            let decoded = county.facts(of: i).compactMap { try? Fact.decode(type: $0.type, data: $0.data) }
            guard let profile = OfflineProfiles.profile(uscc: usccs[i], facts: decoded) else { continue }
            for d in policy.evaluate(PolicyInput(merchant: profile, application: application)) {
                if case .eligible(let fen) = d.outcome {
                    expected[MatcherEngineID.id(policy.document, usccs[i], d.bindingKey)] = fen
                }
            }
        }
        let events = try await matcher.replayAll()
        #expect(events.compactMap(\.sequenceNumber) == Array(1...UInt64(events.count)), "the matcher's feed is gapless")
        #expect(Set(events.map(\.id)).count == events.count, "no event twice")
        var final: [String: JSON] = [:]
        for e in events { if let id = e.data?["entitlement_id"]?.stringValue { final[id] = e.data } }
        let proposed = final.filter { $0.value["state"]?.stringValue == "proposed" }.mapValues { $0["amount_fen"]?.intValue ?? -1 }
        #expect(!expected.isEmpty)
        #expect(proposed == expected, "exactly the expected entitlements and amounts")
        #expect(try await matcher.terminate() == 0)
        #expect(try await registry.terminate() == 0)
    }
}

/// The entitlement id as the matcher computes it (DESIGN §4: a hash of policy, USCC, benefit
/// period and binding), recomputed here independently to check the service.
enum MatcherEngineID {
    static func id(_ d: PolicyDocument, _ uscc: String, _ binding: String) -> String {
        "ent-" + String(SHA256.hex("\(d.id)|\(uscc)|\(d.periodFrom)..\(d.periodTo)|\(binding)").prefix(32))
    }
}
