import BangfuTesting
import Bus
import Foundation
import Models
import Testing

@testable import Matcher

/// Applications and the window (DESIGN §5.3, §6.2 线上补报): a second application merges, a
/// closed window turns "waiting for the application" into "not eligible".
@Suite("Application window")
struct ApplicationWindowTests {
    typealias World = SeedProgrammeTests.World

    /// A flood-hit individual shop in the development zone, renting for 4,000 yuan a month.
    static func floodedShop(_ f: inout Fixtures, _ u: String, name: String = "受灾商户") -> [CloudEvent] {
        [
            f.registration(uscc: u, name: name, kind: "individual", industry: "F5261", district: "411071"),
            Fixtures.lease(id: "FL-\(u)", tenant: u, lessorOwnership: "private", rentFen: 200_000, from: "2020-01-01", to: "2022-12-31"),
            Fixtures.event(
                "damage.reported", ["uscc": .string(u), "event": "flood-2021-07", "loss_fen": 8_000_000, "evidence": ["photo.jpg"]],
                subject: u),
        ]
    }

    @Test func aSecondApplicationInTheWindowAddsItsDocumentsAndReEvaluates() async throws {
        let w = try await World(start: "2021-07-25T09:00:00+08:00")
        var f = Fixtures(seed: 41)
        let u = f.uscc(individual: true)
        try await w.facts(Self.floodedShop(&f, u))
        try await w.settle()
        try await w.publish("flood-relief")
        // The first application forgot the documents: not eligible (size(application.documents) > 0).
        let first = try await w.apply(u, "flood-relief", at: "2021-08-01T10:00:00+08:00", documents: [])
        #expect(first.status == .accepted)
        let revoked = await w.await("entitlement.revoked", "flood-relief", u)
        #expect(revoked?["reason"]?.stringValue?.contains("application.documents") == true)
        // The second (another event) brings them: merged and evaluated again.
        let second = try await w.apply(u, "flood-relief", at: "2021-08-05T10:00:00+08:00", documents: ["申请表.pdf", "受灾照片.jpg"])
        #expect(second.status == .accepted)
        let proposed = await w.await("entitlement.proposed", "flood-relief", u)
        #expect(proposed?["amount_fen"]?.intValue == 600_000)  // 3 × 200,000, under the cap
        let third = try await w.apply(u, "flood-relief", at: "2021-08-06T10:00:00+08:00", documents: ["受灾照片.jpg", "补充说明.pdf"])
        #expect(third.status == .accepted)
        let x = try await w.explain(u, "flood-relief")
        #expect(x["application"]?["submitted_at"]?.stringValue == "2021-08-01T10:00:00+08:00", "the first submission time is kept")
        #expect(
            x["application"]?["documents"]?.arrayValue?.compactMap(\.stringValue) == ["申请表.pdf", "受灾照片.jpg", "补充说明.pdf"])
        // After the window a further application is late, however it is dated.
        w.h.clock.set(Timestamp.parse("2021-08-14T00:00:00+08:00")!)
        let late = try await w.apply(u, "flood-relief", at: "2021-08-14T00:00:00+08:00", documents: ["迟交.pdf"])
        #expect(late.rejection?.code == .late)
        await w.close()
    }

    @Test func afterTheDeadlineWithoutAnApplicationTheMerchantIsNotEligible() async throws {
        let w = try await World(start: "2021-07-25T09:00:00+08:00")
        var f = Fixtures(seed: 42)
        let waiting = f.uscc(individual: true)
        try await w.facts(Self.floodedShop(&f, waiting))
        try await w.settle()
        try await w.publish("flood-relief")
        let incomplete = await w.await("entitlement.incomplete", "flood-relief", waiting)
        #expect(incomplete?["missing"]?.arrayValue?.compactMap(\.stringValue) == ["application"])
        #expect(incomplete?["trace"]?["application"]?["closed"]?.boolValue == false)

        // 24:00 CST on 13 August passes; the next evaluation (a new fact) says no, and why.
        w.h.clock.set(Timestamp.parse("2021-08-14T00:00:00+08:00")!)
        try await w.facts([Fixtures.socialInsurance(uscc: waiting, month: "2021-08", insured: 1)])
        let revoked = await w.await("entitlement.revoked", "flood-relief", waiting)
        #expect(revoked?["reason"]?.stringValue?.contains("no application by 2021-08-13") == true)
        #expect(revoked?["trace"]?["application"]?["closed"]?.boolValue == true)
        let x = try await w.explain(waiting, "flood-relief")
        #expect(x["applications_closed"]?.boolValue == true)
        let d = x["determinations"]?.arrayValue?.first
        #expect(d?["state"]?.stringValue == "revoked")
        #expect(d?["reason"]?.stringValue?.contains("no application by 2021-08-13") == true)
        #expect(d?["text"]?.stringValue?.contains("no application by 2021-08-13") == true)

        // A merchant the matcher first sees after the deadline gets nothing at all, not "incomplete".
        let newcomer = f.uscc(individual: true)
        try await w.facts(Self.floodedShop(&f, newcomer, name: "后来商户"))
        try await w.settle()
        #expect(w.events("flood-relief", newcomer).isEmpty)
        let y = try await w.explain(newcomer, "flood-relief")
        #expect(y["determinations"]?.arrayValue?.first?["reason"]?.stringValue?.contains("no application by 2021-08-13") == true)
        await w.close()
    }

    /// The incomplete event names the application window, so the merchant can be told by when
    /// to apply (线上补报).
    @Test func anIncompleteEntitlementNamesTheApplicationWindow() async throws {
        let w = try await World(start: "2021-07-25T09:00:00+08:00")
        var f = Fixtures(seed: 44)
        let waiting = f.uscc(individual: true)
        try await w.facts(Self.floodedShop(&f, waiting))
        try await w.settle()
        try await w.publish("flood-relief")
        let incomplete = await w.await("entitlement.incomplete", "flood-relief", waiting)
        #expect(incomplete?["window"]?["apply_until"]?.stringValue == "2021-08-13")
        #expect(incomplete?["window"]?["apply_from"]?.stringValue == "2021-07-20")
        await w.close()
    }

    /// No fact needs to arrive: when the window closes, the matcher's own loop revokes what still
    /// waits for an application, and leaves alone what was applied for. A simulated clock set
    /// back into the window and forward again sweeps again.
    @Test func theWindowClosingRevokesWhatWaitsForAnApplicationWithoutANewFact() async throws {
        let w = try await World(start: "2021-07-25T09:00:00+08:00")
        var f = Fixtures(seed: 43)
        let waiting = f.uscc(individual: true)
        let applied = f.uscc(individual: true)
        try await w.facts(Self.floodedShop(&f, waiting) + Self.floodedShop(&f, applied, name: "已申请商户"))
        try await w.settle()
        try await w.publish("flood-relief")
        _ = await w.await("entitlement.incomplete", "flood-relief", waiting)
        #expect(try await w.apply(applied, "flood-relief", at: "2021-08-01T10:00:00+08:00").status == .accepted)
        #expect(await w.await("entitlement.proposed", "flood-relief", applied) != nil)
        let appliedEvents = w.events("flood-relief", applied).count

        w.h.clock.set(Timestamp.parse("2021-08-14T00:00:00+08:00")!)
        let revoked = await w.await("entitlement.revoked", "flood-relief", waiting)
        #expect(revoked?["reason"]?.stringValue?.contains("no application by 2021-08-13") == true)
        #expect(w.events("flood-relief", applied).count == appliedEvents, "an applicant is left alone")

        // Back into the window (a simulated clock placed with "set": true), a newcomer waits
        // again; forward past the deadline, the sweep runs again.
        w.h.clock.restore(Timestamp.parse("2021-08-10T09:00:00+08:00")!)
        let late = f.uscc(individual: true)
        try await w.facts(Self.floodedShop(&f, late, name: "新商户"))
        #expect(await w.await("entitlement.incomplete", "flood-relief", late) != nil)
        w.h.clock.set(Timestamp.parse("2021-08-20T00:00:00+08:00")!)
        let again = await w.await("entitlement.revoked", "flood-relief", late)
        #expect(again?["reason"]?.stringValue?.contains("no application by 2021-08-13") == true)
        await w.close()
    }

    /// More waiting merchants than one tick sweeps (500): the rest follow on the next ticks,
    /// each merchant once.
    @Test func aLargeSweepIsWorkedOffOverSeveralTicks() async throws {
        let w = try await World(start: "2021-07-25T09:00:00+08:00")
        var f = Fixtures(seed: 44)
        var waiting: [String] = []
        var facts: [CloudEvent] = []
        for k in 0..<(DeadlineSweep.maxPerTick + 7) {
            let u = f.uscc(individual: true)
            waiting.append(u)
            facts += Self.floodedShop(&f, u, name: "商户\(k)")
        }
        try await w.facts(facts)
        try await w.settle()
        try await w.publish("flood-relief")
        let count = waiting.count
        let incomplete = await w.feed.wait { events in
            events.filter { $0.type == "entitlement.incomplete" }.count >= count
        }
        #expect(incomplete)
        w.h.clock.set(Timestamp.parse("2021-08-14T00:00:00+08:00")!)
        let all = await w.feed.wait { events in
            events.filter { $0.type == "entitlement.revoked" }.count >= count
        }
        #expect(all, "every waiting merchant revoked")
        let revoked = w.feed.events.filter { $0.type == "entitlement.revoked" }.compactMap(\.subject)
        #expect(revoked.count == waiting.count, "each once")
        #expect(Set(revoked) == Set(waiting))
        await w.close()
    }

    @Test func latenessIsJudgedByTheMatchersClockAtReceiptNotByTheApplicantsDate() async throws {
        let w = try await World()  // 2022-04-01
        var f = Fixtures(seed: 43)
        let honest = f.uscc(individual: true)
        let backdated = f.uscc(individual: true)
        try await w.facts([
            f.registration(uscc: honest, name: "准时商户", kind: "individual"),
            f.registration(uscc: backdated, name: "倒签商户", kind: "individual"),
        ])
        try await w.settle()
        try await w.publish("soe-rent-waiver")
        #expect(try await w.apply(honest, "soe-rent-waiver", at: "2022-06-30T23:59:59+08:00").status == .accepted)
        // 00:00:01 on 1 July by the matcher's clock: late, though the application says 30 June.
        w.h.clock.set(Timestamp.parse("2022-07-01T00:00:01+08:00")!)
        let late = try await w.apply(backdated, "soe-rent-waiver", at: "2022-06-30T10:00:00+08:00")
        #expect(late.rejection?.code == .late)
        #expect(late.rejection?.message.contains("received at") == true)
        await w.close()
    }

    @Test func aFractionOfASecondBeforeMidnightIsOnTimeAndOneAfterIsLate() async throws {
        let w = try await World()  // 2022-04-01
        var f = Fixtures(seed: 44)
        let justInTime = f.uscc(individual: true)
        let justLate = f.uscc(individual: true)
        try await w.facts([
            f.registration(uscc: justInTime, name: "最后一刻商户", kind: "individual"),
            f.registration(uscc: justLate, name: "晚了一点商户", kind: "individual"),
        ])
        try await w.settle()
        try await w.publish("soe-rent-waiver")
        // 23:59:59.9999999 is before 24:00 (a Double of seconds since 1970 would round it up).
        let inTime = try await w.apply(justInTime, "soe-rent-waiver", at: "2022-06-30T23:59:59.9999999+08:00")
        #expect(inTime.status == .accepted, "\(inTime.rejection?.description ?? "")")
        #expect(try await w.explain(justInTime, "soe-rent-waiver")["application"]?["submitted_on"]?.stringValue == "2022-06-30")
        let late = try await w.apply(justLate, "soe-rent-waiver", at: "2022-07-01T00:00:00.0000001+08:00")
        #expect(late.rejection?.code == .late)
        #expect(MatcherTime.wholeSeconds("2022-06-30T23:59:59.9999999+08:00") == Timestamp.parse("2022-06-30T23:59:59+08:00"))
        #expect(MatcherTime.wholeSeconds("2022-06-30T15:59:59.5Z") == Timestamp.parse("2022-06-30T15:59:59Z"))
        await w.close()
    }
}
