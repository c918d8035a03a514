import BangfuCLI
import BangfuTesting
import Bus
import Foundation
import Models
import Testing

@Suite("bangfu policy, explain and apply")
struct PolicyCLITests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static func policyPath(_ id: String) -> String { repo.appendingPathComponent("policies/\(id).yaml").path }

    @Test func checkReportsEveryErrorWithFileLineAndColumnAndExitsOne() throws {
        let good = CapturedConsole()
        #expect(PolicyCommands.check(path: Self.policyPath("soe-rent-waiver"), console: good.console).0 == 0)
        #expect(good.out.contains("OK — soe-rent-waiver revision 3"))

        let broken = NSTemporaryDirectory() + "broken-\(UUID().uuidString).yaml"
        defer { try? FileManager.default.removeItem(atPath: broken) }
        var yaml = try String(contentsOfFile: Self.policyPath("soe-rent-waiver"), encoding: .utf8)
        yaml = yaml.replacingOccurrences(of: "merchant.tags.service_industry", with: "merchant.tags.service_industy")
        yaml = yaml.replacingOccurrences(of: "benefit: rent_waiver", with: "benefit: rent_holiday")
        try yaml.write(toFile: broken, atomically: true, encoding: .utf8)
        let bad = CapturedConsole()
        #expect(PolicyCommands.check(path: broken, console: bad.console).0 == 1)
        let lines = bad.lines
        let benefitLine = yaml.components(separatedBy: "\n").firstIndex { $0.hasPrefix("benefit:") }! + 1
        #expect(lines.contains { $0.hasPrefix("\(broken):\(benefitLine):10:") }, "\(lines)")
        let typoLine = yaml.components(separatedBy: "\n").firstIndex { $0.contains("service_industy") }! + 1
        let typoColumn =
            yaml.components(separatedBy: "\n")[typoLine - 1].distance(
                from: yaml.components(separatedBy: "\n")[typoLine - 1].startIndex,
                to: yaml.components(separatedBy: "\n")[typoLine - 1].range(of: "merchant.tags.service_industy")!.lowerBound) + 1
        #expect(lines.contains { $0.hasPrefix("\(broken):\(typoLine):") && $0.contains("service_industy") }, "\(lines)")
        _ = typoColumn
        #expect(lines.last?.contains("2 errors") == true)
        #expect(PolicyCommands.check(path: "/no/such/file.yaml", console: CapturedConsole().console).0 == ExitCodes.noInput)
    }

    @Test func publishListExplainAndApplyAgainstTheMatcher() async throws {
        let h = try Harness()
        let reg = try await h.startRegistry()
        let matcher = try await h.startMatcher()
        let target = ServiceTarget(service: "matcher", endpoints: matcher.endpoints)
        var f = Fixtures(seed: 41)
        let uscc = f.uscc(individual: true)
        _ = try await reg.publish([
            f.registration(uscc: uscc, name: "王记早点", kind: "individual"), Fixtures.lease(id: "L1", tenant: uscc, rentFen: 123_456),
        ])

        let out = CapturedConsole()
        #expect(
            try await PolicyCommands.publish(
                context: h.context, target: target, path: Self.policyPath("soe-rent-waiver"), timeoutMs: 5_000, console: out.console) == 0)
        #expect(out.out.contains("policy.published accepted"))
        // Publishing the same file again is a duplicate, not a second policy.
        let again = CapturedConsole()
        #expect(
            try await PolicyCommands.publish(
                context: h.context, target: target, path: Self.policyPath("soe-rent-waiver"), timeoutMs: 5_000, console: again.console) == 0
        )
        #expect(again.out.contains("duplicate"))

        let list = CapturedConsole()
        #expect(
            try await PolicyCommands.list(context: h.context, target: target, timeoutMs: 5_000, json: false, console: list.console) == 0)
        #expect(list.lines.contains { $0.hasPrefix("soe-rent-waiver") && $0.contains(" live ") })

        let applied = CapturedConsole()
        #expect(
            try await PolicyCommands.apply(
                context: h.context, target: target, uscc: uscc, policy: "soe-rent-waiver", documents: ["申请书.pdf"],
                submittedAt: "2022-05-01T10:00:00+08:00", timeoutMs: 5_000, console: applied.console) == 0)
        let late = CapturedConsole()
        #expect(
            try await PolicyCommands.apply(
                context: h.context, target: target, uscc: f.uscc(), policy: "soe-rent-waiver", documents: [],
                submittedAt: "2022-07-01T00:00:01+08:00", timeoutMs: 5_000, console: late.console) == ExitCodes.rejected)
        #expect(late.out.contains("late"))

        // The explanation: each clause with its value, and the amount worked out by hand.
        let matcherFeed = try h.collect("matcher")
        #expect(await matcherFeed.wait { $0.contains { $0.type == "entitlement.proposed" } })
        let x = CapturedConsole()
        #expect(
            try await PolicyCommands.explain(
                context: h.context, target: target, uscc: uscc, policy: "soe-rent-waiver", timeoutMs: 5_000, json: false, console: x.console
            ) == 0)
        #expect(x.out.contains("[L1] eligible: ¥3,703.68 (370368 fen)"))  // 123,456 × 3
        #expect(x.out.contains("entitlement ent-"))
        #expect(x.out.contains("proposed"))
        #expect(x.out.contains("overlap_days"))
        await matcherFeed.stop()
        await h.shutdown()
    }

    /// A merchant who qualifies under a programme that needs an application, and never applied:
    /// the explanation leads with what the merchant gets (nothing), in Chinese for the hotline,
    /// not with "eligible" and an amount a clerk could promise.
    @Test func explainLeadsWithNothingPaidForAnEligibleMerchantWhoNeverApplied() async throws {
        // After the window (2022-06-30) has closed.
        let h = try Harness(start: "2022-07-05T09:00:00+08:00")
        let reg = try await h.startRegistry()
        let matcher = try await h.startMatcher()
        let target = ServiceTarget(service: "matcher", endpoints: matcher.endpoints)
        var f = Fixtures(seed: 42)
        let uscc = f.uscc(individual: true)
        _ = try await reg.publish([
            f.registration(uscc: uscc, name: "李记早点", kind: "individual"), Fixtures.lease(id: "L1", tenant: uscc, rentFen: 123_456),
        ])
        #expect(
            try await PolicyCommands.publish(
                context: h.context, target: target, path: Self.policyPath("soe-rent-waiver"), timeoutMs: 5_000,
                console: CapturedConsole().console) == 0)
        var answer = JSON.null
        for _ in 0..<2_000 {
            answer = try await matcher.query(["op": "explain", "uscc": .string(uscc), "policy": "soe-rent-waiver"])
            if answer["op"]?.stringValue == "explanation" { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        let d = try #require(answer["determinations"]?.arrayValue?.first)
        #expect(d["outcome"]?["result"]?.stringValue == "eligible")
        #expect(d["conclusion"]?["code"]?.stringValue == "not_applied")
        #expect(d["conclusion"]?["payable"]?.boolValue == false)
        #expect(d["text"]?.stringValue?.contains("结论 outcome: 符合") == false, "\(d["text"]?.stringValue ?? "")")

        let x = CapturedConsole()
        #expect(
            try await PolicyCommands.explain(
                context: h.context, target: target, uscc: uscc, policy: "soe-rent-waiver", timeoutMs: 5_000, json: false, console: x.console
            ) == 0)
        let lines = x.lines
        let head = try #require(lines.first { $0.hasPrefix("[L1]") })
        #expect(head == "[L1] 结论 符合条件但未在申报期内（截至 2022-06-30 24时）提出申请，不予拨付", "\(lines)")
        #expect(!lines.contains { $0.hasPrefix("[L1] eligible") }, "\(lines)")
        #expect(x.out.contains("eligible, but no application by 2022-06-30: nothing is paid"))
        #expect(lines.contains("申请 application: 未提出 not submitted（本政策须申请 required，申报截止 2022-06-30 24时）"), "\(lines)")
        #expect(!lines.contains { $0.hasPrefix("结论 outcome: 符合") }, "\(lines)")
        #expect(lines.last { $0.hasPrefix("结论 conclusion:") }?.contains("不予拨付") == true, "\(lines)")
        await h.shutdown()
    }

    /// While the window is open, the same merchant is told to apply: nothing is paid until then.
    @Test func explainSaysAnEligibleMerchantMustStillApplyWhileTheWindowIsOpen() async throws {
        let h = try Harness(start: "2022-05-05T09:00:00+08:00")
        let reg = try await h.startRegistry()
        let matcher = try await h.startMatcher()
        let target = ServiceTarget(service: "matcher", endpoints: matcher.endpoints)
        var f = Fixtures(seed: 43)
        let uscc = f.uscc(individual: true)
        let big = f.uscc()
        _ = try await reg.publish([
            f.registration(uscc: uscc, name: "周记早点", kind: "individual"), Fixtures.lease(id: "L1", tenant: uscc, rentFen: 123_456),
            f.registration(uscc: big, name: "大酒店集团有限公司"),
            Fixtures.finance(uscc: big, employees: 400, revenueFen: 20_000 * 1_000_000, assetsFen: 0),
            Fixtures.lease(id: "L2", tenant: big, rentFen: 123_456),
        ])
        #expect(
            try await PolicyCommands.publish(
                context: h.context, target: target, path: Self.policyPath("soe-rent-waiver"), timeoutMs: 5_000,
                console: CapturedConsole().console) == 0)
        let feed = try h.collect("matcher")
        #expect(await feed.wait { $0.contains { $0.type == "entitlement.incomplete" && $0.subject == uscc } })
        let x = CapturedConsole()
        #expect(
            try await PolicyCommands.explain(
                context: h.context, target: target, uscc: uscc, policy: "soe-rent-waiver", timeoutMs: 5_000, json: false, console: x.console
            ) == 0)
        #expect(x.lines.contains("[L1] 结论 符合条件，但尚未提出申请；须在 2022-06-30 24时 前申请，未申请不予拨付"), "\(x.lines)")
        // Not eligible: the reasons read in Chinese.
        let y = CapturedConsole()
        #expect(
            try await PolicyCommands.explain(
                context: h.context, target: target, uscc: big, policy: "soe-rent-waiver", timeoutMs: 5_000, json: false, console: y.console
            ) == 0)
        #expect(y.lines.contains { $0.hasPrefix("结论 不符合条件，不予拨付：") && $0.contains("大型企业") }, "\(y.lines)")
        await feed.stop()
        await h.shutdown()
    }
}
