import BangfuTesting
import Bus
import Foundation
import Models
import Testing

/// Flood relief is reviewed by two bureaus (seed 篇三 招商局会同市场监管分局审定; DESIGN §6.5 #4).
@Suite("Review by several bureaus")
struct ReviewTests {
    typealias World = SeedProgrammeTests.World

    func show(_ w: World, _ id: String) async throws -> JSON? {
        try await w.matcher.query(["op": "entitlement.show", "id": .string(id)])["entitlement"]
    }

    func review(_ w: World, _ type: String, _ id: String, by: String) async throws -> Ack {
        try await w.matcher.publish(Fixtures.event(type, ["entitlement_id": .string(id), "by": .string(by)], source: "/ops/review"))
    }

    @Test func floodReliefIsApprovedOnlyOnceBothBureausHaveApprovedAndEitherCanReject() async throws {
        let w = try await World(start: "2021-07-25T09:00:00+08:00")
        var f = Fixtures(seed: 61)
        let a = f.uscc(individual: true)
        let b = f.uscc(individual: true)
        try await w.facts(
            ApplicationWindowTests.floodedShop(&f, a, name: "甲受灾商户") + ApplicationWindowTests.floodedShop(&f, b, name: "乙受灾商户"))
        try await w.settle()
        try await w.publish("flood-relief")
        var ids: [String] = []
        for u in [a, b] {
            #expect(try await w.apply(u, "flood-relief", at: "2021-08-01T10:00:00+08:00", documents: ["申请表.pdf"]).status == .accepted)
            ids.append(try #require(await w.await("entitlement.proposed", "flood-relief", u)?["entitlement_id"]?.stringValue))
        }
        let list: JSON = .array(ids.map { .string($0) })
        _ = try await w.notifier.publish(Fixtures.event("disclosure.opened", ["round_id": "F1", "entitlement_ids": list]))
        _ = try await w.notifier.publish(Fixtures.event("disclosure.cleared", ["round_id": "F1", "entitlement_ids": list]))
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            let states = try await [show(w, ids[0]), show(w, ids[1])].map { $0?["state"]?.stringValue }
            if states == ["cleared", "cleared"] { break }
            await Task.yield()
        }

        // One bureau: accepted, but not yet approved.
        #expect(try await review(w, "review.approved", ids[0], by: "经开区招商局 李科长").status == .accepted)
        let half = try await show(w, ids[0])
        #expect(half?["state"]?.stringValue == "cleared")
        #expect(half?["reason"]?.stringValue?.contains("awaiting 市场监管经开区分局") == true)
        #expect(w.events("flood-relief", a).allSatisfy { $0.type != "entitlement.approved" })
        // Someone who is neither bureau cannot approve.
        #expect(try await review(w, "review.approved", ids[0], by: "区财政局 张三").rejection?.code == .invalidData)
        // The same bureau again does not count twice: accepted (a retry never fails), with a note
        // in the ack saying who approved for that bureau, when, and who is still awaited.
        let again = try await review(w, "review.approved", ids[0], by: "经开区招商局 赵科长")
        #expect(again.status == .accepted)
        let note = try #require(again.note)
        #expect(note.hasPrefix("\(ids[0]): already approved by 经开区招商局 at 2021-"), "\(note)")
        #expect(note.contains("(经开区招商局 李科长)") && note.hasSuffix("; awaiting 市场监管经开区分局"), "\(note)")
        #expect(try await show(w, ids[0])?["state"]?.stringValue == "cleared")
        #expect(try await show(w, ids[0])?["review"]?["approvals"]?.arrayValue?.count == 1)
        #expect(Ack(json: again.json)?.note == note, "the note survives the wire")
        // The second bureau: approved, signed by both.
        #expect(try await review(w, "review.approved", ids[0], by: "市场监管经开区分局 王科长").status == .accepted)
        let approved = await w.await("entitlement.approved", "flood-relief", a)
        #expect(approved?["amount_fen"]?.intValue == 600_000)
        // Approving an approved entitlement again changes nothing and says so.
        let late = try await review(w, "review.approved", ids[0], by: "市场监管经开区分局 王科长")
        #expect(late.status == .accepted && late.note?.hasPrefix("\(ids[0]): already approved (approved by ") == true, "\(late)")
        #expect(approved?["reason"]?.stringValue?.contains("经开区招商局 李科长") == true)
        #expect(approved?["reason"]?.stringValue?.contains("市场监管经开区分局 王科长") == true)

        // b: one bureau approves, the other rejects: revoked.
        #expect(try await review(w, "review.approved", ids[1], by: "经开区招商局 李科长").status == .accepted)
        #expect(try await review(w, "review.rejected", ids[1], by: "市场监管经开区分局 王科长").status == .accepted)
        let revoked = await w.await("entitlement.revoked", "flood-relief", b)
        #expect(revoked?["reason"]?.stringValue?.hasPrefix("review_rejected by 市场监管经开区分局") == true)
        let rejectedAgain = try await review(w, "review.rejected", ids[1], by: "经开区招商局 李科长")
        #expect(rejectedAgain.status == .accepted && rejectedAgain.note?.contains("already revoked (review_rejected by") == true)
        #expect(w.events("flood-relief", b).allSatisfy { $0.type != "entitlement.approved" })
        await w.close()
    }
}
