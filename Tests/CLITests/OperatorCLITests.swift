import BangfuTesting
import Bus
import Foundation
import Models
import Testing

@testable import BangfuCLI

#if canImport(Glibc)
    import Glibc
#endif

let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// Until `condition` holds (a safety net of 20 s), asking again between tries.
func eventually(_ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + .seconds(20)
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        await Task.yield()
    }
    return try await condition()
}

func scratchDirectory(_ name: String) throws -> String {
    let dir = NSTemporaryDirectory() + "bangfu-cli-\(name)-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

/// A policy file written to a scratch directory.
func policyFile(_ yaml: String) throws -> String {
    let path = try scratchDirectory("policy") + "/policy.yaml"
    try yaml.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

@Suite("bangfu demo: every argument checked before --dir is touched")
struct DemoSafetyTests {
    /// Stand-ins for the four service executables (only their presence is checked).
    func fakeBin() throws -> String {
        let bin = try scratchDirectory("bin")
        for s in ["registry", "matcher", "payments", "notifier"] {
            let p = bin + "/bangfu-" + s
            try "#!/bin/sh\nexit 1\n".write(toFile: p, atomically: true, encoding: .utf8)
            chmod(p, 0o755)
        }
        return bin
    }

    func options(dir: String) throws -> DemoOptions {
        var o = DemoOptions()
        o.directory = dir
        o.binDirectory = try fakeBin()
        o.policiesDirectory = repoRoot.appendingPathComponent("policies").path
        o.merchants = 10
        return o
    }

    @Test func aBadArgumentLeavesTheDirectoryAsItWas() async throws {
        let dir = try scratchDirectory("demo")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A directory an earlier demo made (so it may be emptied), with something in it.
        try "".write(toFile: dir + "/" + DemoCommand.marker, atomically: true, encoding: .utf8)
        try "state".write(toFile: dir + "/keep.txt", atomically: true, encoding: .utf8)
        var o = try options(dir: dir)
        o.start = "bogus"
        do {
            _ = try await DemoCommand.run(options: o, console: CapturedConsole().console)
            Issue.record("ran with --start bogus")
        } catch let e as CLIError {
            #expect(e.exitCode == ExitCodes.usage)
            #expect(e.message.contains("--start bogus"))
        }
        #expect(FileManager.default.fileExists(atPath: dir + "/keep.txt"))

        o = try options(dir: dir)
        o.policiesDirectory = dir + "/no-policies"
        #expect(throws: CLIError.self) { try DemoCommand.validate(o) }
        o = try options(dir: dir)
        o.binDirectory = dir + "/no-bin"
        #expect(throws: CLIError.self) { try DemoCommand.validate(o) }
        #expect(FileManager.default.fileExists(atPath: dir + "/keep.txt"))
        // A directory that cannot be made (under a file) is a clear refusal, not a Foundation dump.
        do {
            try DemoCommand.prepareDirectory(dir + "/keep.txt/sub")
            Issue.record("made a directory under a file")
        } catch {
            #expect(error.exitCode == ExitCodes.cantCreate)
            #expect(error.message.hasSuffix("cannot be made or emptied: Not a directory"), "\(error.message)")
        }
    }

    @Test func aNonEmptyDirectoryTheDemoDidNotMakeIsEmptiedOnlyWithForce() throws {
        let dir = try scratchDirectory("state")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "precious".write(toFile: dir + "/registry.sqlite", atomically: true, encoding: .utf8)
        var o = try options(dir: dir)
        do {
            _ = try DemoCommand.validate(o)
            Issue.record("accepted a foreign directory")
        } catch let e as CLIError {
            #expect(e.exitCode == ExitCodes.cantCreate)
            #expect(e.message.contains(DemoCommand.marker) && e.message.contains("--force"), "\(e.message)")
        }
        #expect(FileManager.default.fileExists(atPath: dir + "/registry.sqlite"))
        o.force = true
        let plan = try DemoCommand.validate(o)
        #expect(plan.directory == dir)
        #expect(FileManager.default.fileExists(atPath: dir + "/registry.sqlite"), "validating touches nothing")
        try DemoCommand.prepareDirectory(dir)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == [DemoCommand.marker])
        // Now the demo's: a later run may empty it without --force.
        o.force = false
        try "old run".write(toFile: dir + "/registry.log", atomically: true, encoding: .utf8)
        _ = try DemoCommand.validate(o)
    }

    @Test func aDirectoryWhoseStateLockIsHeldIsNeverEmptied() throws {
        let dir = try scratchDirectory("locked")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "".write(toFile: dir + "/" + DemoCommand.marker, atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: dir + "/registry", withIntermediateDirectories: true)
        let lock = dir + "/registry/registry.lock"
        let fd = open(lock, O_RDWR | O_CREAT, 0o644)
        #expect(fd >= 0)
        #expect(flock(fd, LOCK_EX | LOCK_NB) == 0)  // as a running service holds it (StateLock)
        var o = try options(dir: dir)
        o.force = true
        do {
            _ = try DemoCommand.validate(o)
            Issue.record("accepted a directory a service runs on")
        } catch let e as CLIError {
            #expect(e.exitCode == ExitCodes.cantCreate)
            #expect(e.message.contains(lock), "\(e.message)")
        }
        #expect(FileManager.default.fileExists(atPath: lock))
        close(fd)
        _ = try DemoCommand.validate(o)  // released: fine
    }

    @Test func theClosingHintsSayTheServicesAreStoppedAndHowToReachThem() {
        let services = ["registry", "matcher"].map { n in
            DemoServiceLine(
                name: n, commandLine: ["/opt/bin/bangfu-\(n)", "--state-dir", "/d/\(n)", "--simulated-clock"],
                intake: "ipc:///d/s/\(n)-intake",
                feed: "ipc:///d/s/\(n)-feed", replay: "ipc:///d/s/\(n)-replay")
        }
        let stopped = DemoCommand.closingHints(dir: "/d", services: services, keepRunning: false, quarantineCode: "invalid_amount")
        #expect(stopped[0].contains("stopped"))
        let start = stopped.firstIndex { $0.contains("/opt/bin/bangfu-registry --state-dir /d/registry --simulated-clock") }
        let list = stopped.firstIndex { $0.contains("bangfu quarantine list --code invalid_amount") }
        #expect(start != nil && list != nil)
        #expect((start ?? 99) < (list ?? 0), "started before the CLI is pointed at them")
        #expect(stopped.contains { $0.contains("start-services.sh") } && stopped.contains { $0.contains("bangfu-env.sh") })
        let env = DemoCommand.envScript(services)
        #expect(
            env.contains(
                "export BANGFU_REGISTRY_INTAKE=ipc:///d/s/registry-intake BANGFU_REGISTRY_REPLAY=ipc:///d/s/registry-replay BANGFU_REGISTRY_FEED=ipc:///d/s/registry-feed"
            ))
        #expect(
            DemoCommand.startScript(services, dir: "/d").contains("nohup /opt/bin/bangfu-matcher --state-dir /d/matcher --simulated-clock"))
        let running = DemoCommand.closingHints(dir: "/d", services: services, keepRunning: true, quarantineCode: nil)
        #expect(running[0].contains("keep running until Ctrl-C"))
        #expect(running.contains { $0.contains("BANGFU_MATCHER_FEED=ipc:///d/s/matcher-feed") })
    }
}

@Suite("bangfu: ids of state-changing commands")
struct EventIDTests {
    @Test func theRetryLineIsTheSameCommandWithItsID() {
        var r = RetryHint(arguments: ["pool", "fund", "--pool", "p", "--source", "central", "--amount-fen", "100"])
        #expect(r.command(id: "abc") == "bangfu pool fund --pool p --source central --amount-fen 100 --id abc")
        r = RetryHint(arguments: ["hold", "release", "--id", "old", "--reason", "夫妻店 共用账户", "--id=older", "--payment", "ent-1"])
        #expect(r.command(id: "x1") == "bangfu hold release --reason '夫妻店 共用账户' --payment ent-1 --id x1")
        let pinned = RetryHint(arguments: ["apply", "--uscc", "U"]).pinning("--submitted-at", "2022-05-01T10:00:00+08:00")
        #expect(pinned.command(id: "a") == "bangfu apply --uscc U --submitted-at 2022-05-01T10:00:00+08:00 --id a")
        #expect(RetryHint.quoted("it's") == "'it'\\''s'")
    }

    @Test func noAnswerPrintsTheIDAndTheCommandToRetrySafely() async throws {
        let context = ZContext()
        defer { context.terminate() }
        let t = ServiceTarget(
            service: "payments", intake: "tcp://127.0.0.1:\(closedPort())", feed: "inproc://none-f", replay: "inproc://none-r")
        let args = ["pool", "fund", "--pool", "p", "--source", "central", "--amount-fen", "100"]
        let out = CapturedConsole()
        let code = try await PaymentsCommands.command(
            context: context, target: t, type: "pool.funded", data: ["pool": "p", "source": "central", "amount_fen": 100], timeoutMs: 150,
            console: out.console, retry: RetryHint(arguments: args))
        #expect(code == ExitCodes.unacknowledged)
        let line = try #require(out.err.split(separator: "\n").first { $0.contains("retry: ") })
        let id = try #require(line.components(separatedBy: " --id ").last)
        #expect(line.hasSuffix("retry: bangfu pool fund --pool p --source central --amount-fen 100 --id \(id)"))
        #expect(out.err.contains("pool.funded \(id)"))
        // Retrying with that id names the same id again.
        let again = CapturedConsole()
        _ = try await PaymentsCommands.command(
            context: context, target: t, type: "pool.funded", data: ["pool": "p", "source": "central", "amount_fen": 100], id: id,
            timeoutMs: 150, console: again.console, retry: RetryHint(arguments: args + ["--id", id]))
        #expect(again.err.contains("retry: bangfu pool fund --pool p --source central --amount-fen 100 --id \(id)\n"))
    }

    @Test func fundingTwiceWithOneIDCreditsThePoolOnce() async throws {
        let h = try Harness()
        _ = try await h.startRegistry()
        _ = try await h.startStandIn("notifier")
        _ = try await h.startMatcher()
        let payments = try await h.startPayments()
        let t = ServiceTarget(service: "payments", endpoints: payments.endpoints)
        let data: JSON = ["pool": "relief-pool", "source": "central", "amount_fen": 500_000]
        let first = CapturedConsole()
        #expect(
            try await PaymentsCommands.command(
                context: h.context, target: t, type: "pool.funded", data: data, id: "fund-2022-05-01", timeoutMs: 10_000,
                console: first.console) == 0)
        #expect(first.out.contains("accepted: fund-2022-05-01"))
        let second = CapturedConsole()
        #expect(
            try await PaymentsCommands.command(
                context: h.context, target: t, type: "pool.funded", data: data, id: "fund-2022-05-01", timeoutMs: 10_000,
                console: second.console) == 0)
        #expect(second.out.contains("duplicate: fund-2022-05-01"))
        let pools = try await payments.query(["op": "pool.status"])["items"]?.arrayValue ?? []
        #expect(pools.first { $0["pool"]?.stringValue == "relief-pool" }?["posted_fen"]?.intValue == 500_000)
        await h.shutdown()
    }

    /// `bangfu audit verify` prints the head to record elsewhere; `--anchor` with that head
    /// holds, with another hash it does not (exit 1), and a malformed one is a usage error.
    /// `bangfu audit list --ref` shows the entries naming an id.
    @Test func auditVerifyPrintsTheHeadAndChecksAnAnchor() async throws {
        let h = try Harness()
        _ = try await h.startRegistry()
        _ = try await h.startStandIn("notifier")
        _ = try await h.startMatcher()
        let payments = try await h.startPayments()
        let t = ServiceTarget(service: "payments", endpoints: payments.endpoints)
        let data: JSON = ["pool": "anchor-pool", "source": "central", "amount_fen": 700_000]
        #expect(
            try await PaymentsCommands.command(
                context: h.context, target: t, type: "pool.funded", data: data, timeoutMs: 10_000, console: CapturedConsole().console) == 0)
        let first = CapturedConsole()
        #expect(try await PaymentsCommands.auditVerify(context: h.context, target: t, timeoutMs: 10_000, console: first.console) == 0)
        let headLine = try #require(first.out.split(separator: "\n").first { $0.hasPrefix("head: ") })
        let anchor = String(headLine.dropFirst("head: ".count).prefix { $0 != " " })
        #expect(anchor.split(separator: ":").last?.count == 64, "\(anchor)")
        let held = CapturedConsole()
        #expect(
            try await PaymentsCommands.auditVerify(context: h.context, target: t, timeoutMs: 10_000, anchor: anchor, console: held.console)
                == 0)
        #expect(held.out.contains("anchor \(anchor) held"), "\(held.out)")
        let seq = anchor.split(separator: ":")[0]
        let forged = CapturedConsole()
        #expect(
            try await PaymentsCommands.auditVerify(
                context: h.context, target: t, timeoutMs: 10_000, anchor: "\(seq):" + String(repeating: "ab", count: 32),
                console: forged.console) == ExitCodes.failure)
        #expect(forged.out.contains("ANCHOR NOT HELD") && forged.out.contains("the chain was rewritten"), "\(forged.out)")
        for bad in ["12", "0:" + String(repeating: "a", count: 64), "3:xyz", "3:" + String(repeating: "g", count: 64)] {
            do {
                _ = try await PaymentsCommands.auditVerify(
                    context: h.context, target: t, timeoutMs: 10_000, anchor: bad, console: CapturedConsole().console)
                Issue.record("\(bad) was taken as an anchor")
            } catch let e as CLIError {
                #expect(e.exitCode == ExitCodes.usage)
            }
        }
        let listed = CapturedConsole()
        #expect(
            try await PaymentsCommands.auditList(
                context: h.context, target: t, timeoutMs: 10_000, ref: "pool:anchor-pool", kind: nil, after: 0, max: 100, json: true,
                console: listed.console) == 0)
        let entries = try listed.out.split(separator: "\n").map { try JSONParser.parse(Array($0.utf8)) }
        #expect(!entries.isEmpty)
        #expect(entries.allSatisfy { ($0["entry"]?.serialized() ?? "").contains("pool:anchor-pool") })
        #expect(entries.contains { $0["entry"]?["amount_fen"]?.intValue == 700_000 }, "the funding transfer: \(listed.out)")
        await h.shutdown()
    }

    @Test func anAmountMustBeAPositiveNumberOfFen() {
        func message(_ args: [String]) -> String? {
            do {
                _ = try PoolFundVerb.parse(["--pool", "p", "--source", "central"] + args)
                return nil
            } catch {
                return PoolFundVerb.message(for: error)
            }
        }
        #expect(message(["--amount-fen=-5"])?.contains("must be a positive number of fen") == true)
        #expect(message(["--amount-fen", "0"])?.contains("must be a positive number of fen") == true)
        #expect(message(["--amount-fen", "1.5"])?.contains("must be a positive number of fen") == true)
        #expect(message(["--amount-fen", "-5"])?.contains("must be a positive number of fen") == true)
        #expect(message(["--amount-fen", "100000"]) == nil)
        #expect((try? PoolFundVerb.parse(["--pool", "p", "--source", "central", "--amount-fen", "1", "--id", "f-1"]))?.eventID.id == "f-1")
    }
}

@Suite("bangfu apply: ids from content")
struct ApplyIDTests {
    @Test func aRetryIsDuplicateAndMoreDocumentsAreANewApplication() async throws {
        let h = try Harness()
        let reg = try await h.startRegistry()
        let matcher = try await h.startMatcher()
        let t = ServiceTarget(service: "matcher", endpoints: matcher.endpoints)
        var f = Fixtures(seed: 43)
        let uscc = f.uscc(individual: true)
        #expect(
            try await reg.publish([
                f.registration(uscc: uscc, name: "王记早点", kind: "individual"), Fixtures.lease(id: "L9", tenant: uscc, rentFen: 100_000),
            ]).allSatisfy { $0.status == .accepted })
        let policy = repoRoot.appendingPathComponent("policies/soe-rent-waiver.yaml").path
        #expect(
            try await PolicyCommands.publish(
                context: h.context, target: t, path: policy, timeoutMs: 10_000, console: CapturedConsole().console) == 0)

        func apply(_ docs: [String], at: String?, id: String? = nil) async throws -> (Int32, String) {
            let out = CapturedConsole()
            let code = try await PolicyCommands.apply(
                context: h.context, target: t, uscc: uscc, policy: "soe-rent-waiver", documents: docs, submittedAt: at, id: id,
                timeoutMs: 10_000, console: out.console)
            return (code, out.out)
        }
        let at = "2022-05-01T10:00:00+08:00"
        let first = try await apply(["申请书.pdf"], at: at)
        #expect(first.0 == 0 && first.1.contains("accepted"), "\(first.1)")
        let retry = try await apply(["申请书.pdf"], at: at)
        #expect(retry.0 == 0 && retry.1.contains("duplicate"), "\(retry.1)")
        // 线上补报: more documents, same merchant and policy — a new application, merged.
        let more = try await apply(["租赁合同.pdf", "申请书.pdf"], at: at)
        #expect(more.0 == 0 && more.1.contains("accepted"), "\(more.1)")
        let sameSetOtherOrder = try await apply(["申请书.pdf", "租赁合同.pdf"], at: at)
        #expect(sameSetOtherOrder.1.contains("duplicate"), "\(sameSetOtherOrder.1)")
        // Without --submitted-at (the matcher's clock at receipt): sent twice, the second is a
        // duplicate — the same content — and leaves no conflict in the quarantine.
        let now1 = try await apply(["营业执照.pdf"], at: nil)
        #expect(now1.0 == 0 && now1.1.contains("accepted"), "\(now1.1)")
        let now2 = try await apply(["营业执照.pdf"], at: nil)
        #expect(now2.0 == 0 && now2.1.contains("duplicate"), "\(now2.1)")
        let quarantined = try await matcher.query(["op": "quarantine.list", "code": "conflict"])["items"]?.arrayValue ?? []
        #expect(quarantined.isEmpty, "\(quarantined)")
        // An explicit id.
        let explicit = try await apply(["补充说明.pdf"], at: at, id: "portal-4711")
        #expect(explicit.1.contains("accepted: portal-4711"), "\(explicit.1)")
        let explained = try await matcher.query(["op": "explain", "uscc": .string(uscc), "policy": "soe-rent-waiver"])
        let documents = Set(explained["application"]?["documents"]?.arrayValue?.compactMap(\.stringValue) ?? [])
        #expect(documents == ["申请书.pdf", "租赁合同.pdf", "营业执照.pdf", "补充说明.pdf"], "\(explained.serialized())")

        // --submitted-at is checked before anything is sent.
        do {
            _ = try await apply(["x.pdf"], at: "2022-05-01")
            Issue.record("sent a date that is not RFC 3339")
        } catch let e as CLIError {
            #expect(e.exitCode == ExitCodes.usage)
        }
        #expect((try? ApplyVerb.parse(["--uscc", uscc, "--policy", "p", "--submitted-at", "yesterday"])) == nil)
        #expect(
            PolicyCommands.applicationID(policy: "p", uscc: "U", documents: ["b", "a"], submittedAt: nil)
                == PolicyCommands.applicationID(policy: "p", uscc: "U", documents: ["a", "b"], submittedAt: nil))
        await h.shutdown()
    }
}

@Suite("bangfu review, entitlement, policy withdraw, objection")
struct OperatorVerbTests {
    static let reviewed = """
        id: test-reviewed
        revision: 1
        title: 测试两局审核补助
        authority: test
        benefit: cash
        channel: treasury
        pool: test-pool
        requires_application: false
        period: {from: 2022-01-01, to: 2022-12-31}
        disclosure: {working_days: 0, auto_approve: false}
        reviewers: [甲局, 乙局]
        per: merchant
        eligible: merchant.status == "active"
        amount_fen: 100000
        """

    @Test func reviewApproveRejectListShowAndWithdraw() async throws {
        let h = try Harness()
        let reg = try await h.startRegistry()
        let matcher = try await h.startMatcher()
        let t = ServiceTarget(service: "matcher", endpoints: matcher.endpoints)
        var f = Fixtures(seed: 71)
        let (a, b) = (f.uscc(), f.uscc())
        #expect(
            try await reg.publish([f.registration(uscc: a, name: "甲商户"), f.registration(uscc: b, name: "乙商户")]).allSatisfy {
                $0.status == .accepted
            })
        #expect(
            try await PolicyCommands.publish(
                context: h.context, target: t, path: try policyFile(Self.reviewed), timeoutMs: 10_000, console: CapturedConsole().console)
                == 0)
        var ids: [String: String] = [:]
        #expect(
            try await eventually {
                let items = try await matcher.query(["op": "entitlement.list", "policy": "test-reviewed"])["items"]?.arrayValue ?? []
                for i in items { if let u = i["uscc"]?.stringValue, let id = i["id"]?.stringValue { ids[u] = id } }
                return items.count == 2 && items.allSatisfy { $0["state"]?.stringValue == "proposed" }
            })
        let (ea, eb) = (try #require(ids[a]), try #require(ids[b]))

        func review(_ approve: Bool, _ id: String, by: String, reason: String? = nil) async throws -> (Int32, String) {
            let out = CapturedConsole()
            let code = try await OperatorCommands.review(
                context: h.context, target: t, approve: approve, entitlements: [id], by: by, reason: reason, timeoutMs: 10_000,
                console: out.console)
            return (code, out.out)
        }
        let one = try await review(true, ea, by: "甲局 张科长")
        #expect(one.0 == 0 && one.1.contains("review.approved accepted"), "\(one.1)")
        #expect(one.1.contains("\(ea): proposed (approved by 甲局 张科长; awaiting 乙局)"), "\(one.1)")
        let half = try await matcher.query(["op": "entitlement.show", "id": .string(ea)])["entitlement"]?["review"]
        #expect(half?["awaiting"] == ["乙局"])
        #expect(half?["approvals"]?.arrayValue?.first?["by"]?.stringValue == "甲局 张科长")
        // The same bureau again: accepted (idempotent), and the operator is told it changed nothing.
        let repeated = try await review(true, ea, by: "甲局 赵科长")
        #expect(repeated.0 == 0 && repeated.1.contains("review.approved accepted"), "\(repeated.1)")
        #expect(repeated.1.contains("  \(ea): already approved by 甲局 at "), "\(repeated.1)")
        #expect(repeated.1.contains("(甲局 张科长); this approval changed nothing; awaiting 乙局"), "\(repeated.1)")
        let stranger = try await review(true, ea, by: "丙局 王五")
        #expect(stranger.0 == ExitCodes.rejected && stranger.1.contains("data.by"), "\(stranger.1)")
        let two = try await review(true, ea, by: "乙局 李科长", reason: "材料齐全")
        #expect(two.0 == 0 && two.1.contains("\(ea): approved"), "\(two.1)")
        let rejected = try await review(false, eb, by: "甲局 张科长", reason: "材料不实")
        #expect(rejected.0 == 0 && rejected.1.contains("\(eb): revoked"), "\(rejected.1)")

        let shown = CapturedConsole()
        #expect(
            try await OperatorCommands.showEntitlement(
                context: h.context, target: t, id: ea, json: false, timeoutMs: 10_000, console: shown.console) == 0)
        #expect(shown.lines.contains { $0.hasPrefix("state:") && $0.hasSuffix("approved") }, "\(shown.out)")
        // The matcher's own record of the review, reviewer by reviewer.
        #expect(shown.lines.contains("reviewers:       甲局, 乙局"), "\(shown.out)")
        #expect(shown.lines.contains { $0.hasPrefix("  approved:      甲局 — 甲局 张科长 at ") }, "\(shown.out)")
        #expect(shown.lines.contains { $0.hasPrefix("  approved:      乙局 — 乙局 李科长: 材料齐全 at ") }, "\(shown.out)")
        #expect(!shown.lines.contains { $0.hasPrefix("  awaiting") }, "\(shown.out)")
        let review = try await matcher.query(["op": "entitlement.show", "id": .string(ea)])["entitlement"]?["review"]
        #expect(review?["approvals"]?.arrayValue?.compactMap { $0["reviewer"]?.stringValue }.sorted() == ["乙局", "甲局"])
        #expect(review?["awaiting"] == .array([]))
        // entitlement.list pages by id: the next page starts after the last id of the one before.
        let sorted = [ea, eb].sorted()
        let page2 = try await matcher.query(["op": "entitlement.list", "policy": "test-reviewed", "after": .string(sorted[0])])
        #expect(page2["items"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == [sorted[1]])
        #expect(OperatorCommands.reviewers(reason: "approved by A; awaiting B, C")?.awaiting == ["B", "C"])

        var filter = OperatorCommands.EntitlementFilter()
        filter.state = "approved"
        let listed = CapturedConsole()
        #expect(
            try await OperatorCommands.listEntitlements(
                context: h.context, target: t, filter: filter, json: false, timeoutMs: 10_000, console: listed.console) == 0)
        #expect(listed.lines.first?.hasPrefix("ENTITLEMENT") == true)
        #expect(listed.lines.count == 2 && listed.lines[1].hasPrefix(ea) && listed.lines[1].contains("¥1,000.00"), "\(listed.out)")
        filter.state = nil
        filter.uscc = b
        let json = CapturedConsole()
        _ = try await OperatorCommands.listEntitlements(
            context: h.context, target: t, filter: filter, json: true, timeoutMs: 10_000, console: json.console)
        #expect(try jsonLines(json).map { $0["state"]?.stringValue } == ["revoked"])

        let withdrawn = CapturedConsole()
        #expect(
            try await OperatorCommands.withdrawPolicy(
                context: h.context, target: t, policy: "test-reviewed", reason: "资金已用完", id: "withdraw-1", timeoutMs: 10_000,
                console: withdrawn.console)
                == 0)
        // What the withdrawal did: the approved one revoked (the rejected one was revoked before).
        #expect(
            withdrawn.lines.contains { $0.hasPrefix("  withdrew test-reviewed revision 1 at ") && $0.hasSuffix(" (资金已用完)") },
            "\(withdrawn.out)")
        #expect(withdrawn.lines.contains("  revoked: 1 entitlement (policy_withdrawn)"), "\(withdrawn.out)")
        #expect(withdrawn.lines.contains("  left as they were: none"), "\(withdrawn.out)")
        // A retry of the same command says the same.
        let retried = CapturedConsole()
        _ = try await OperatorCommands.withdrawPolicy(
            context: h.context, target: t, policy: "test-reviewed", reason: "资金已用完", id: "withdraw-1", timeoutMs: 10_000,
            console: retried.console)
        #expect(
            retried.out.contains("duplicate") && retried.lines.contains("  revoked: 1 entitlement (policy_withdrawn)"), "\(retried.out)")
        #expect(
            OperatorCommands.withdrawalLines([
                "policy_id": "p", "states": ["paid": 3, "instructed": 2, "held": 1, "revoked": 7], "held_lessor_unconfirmed": 1,
                "withdrawal": ["revision": 2, "withdrawn_at": "2022-05-01T10:00:00.000+08:00", "reason": "r", "revoked": 7],
            ]) == [
                "withdrew p revision 2 at 2022-05-01T10:00:00.000+08:00 (r)", "revoked: 7 entitlements (policy_withdrawn)",
                "left as they were: 2 instructed, 3 paid, 1 held awaiting the lessor's confirmation",
            ])
        let policies = try await matcher.query(["op": "policy.list"])["items"]?.arrayValue ?? []
        #expect(policies.first { $0["policy_id"]?.stringValue == "test-reviewed" }?["state"]?.stringValue == "withdrawn")
        #expect(
            (try? ReviewApproveVerb.parse(["--entitlement", "ent-1", "--entitlement", "ent-2", "--by", "甲局", "--id", "r-1"]))?.review
                .entitlements == ["ent-1", "ent-2"])
        #expect((try? ReviewApproveVerb.parse(["--by", "甲局"])) == nil, "no entitlement")
        await h.shutdown()
    }

    @Test func objectionsAreFiledAndResolvedAtTheNotifierAndLateAfterTheWindow() async throws {
        let h = try Harness(start: "2022-04-01T09:00:00+08:00")
        let registry = try await h.startRegistry()
        _ = try await h.startStandIn("payments")
        let notifier = try await h.startNotifier()
        let matcher = try await h.startMatcher()
        let notifierFeed = try h.collect("notifier")
        var f = Fixtures(seed: 92)
        let u = f.uscc()
        #expect(
            try await registry.publish(f.closedFactory(uscc: u, name: "甲工厂有限公司", insured: 10)).allSatisfy { $0.status == .accepted })
        let mt = ServiceTarget(service: "matcher", endpoints: matcher.endpoints)
        let path = repoRoot.appendingPathComponent("policies/retention-training-subsidy.yaml").path
        #expect(
            try await PolicyCommands.publish(
                context: h.context, target: mt, path: path, timeoutMs: 10_000, console: CapturedConsole().console) == 0)
        #expect(await notifierFeed.wait { $0.contains { $0.type == "disclosure.opened" } })
        let id = try #require(
            notifierFeed.events.first { $0.type == "disclosure.opened" }?.data?["entitlement_ids"]?.arrayValue?.first?.stringValue)
        let t = ServiceTarget(service: "notifier", endpoints: notifier.endpoints)

        let filed = CapturedConsole()
        #expect(
            try await OperatorCommands.fileObjection(
                context: h.context, target: t, entitlement: id, reason: "该企业三月份并未停业", contact: "13800000000", timeoutMs: 10_000,
                console: filed.console) == 0)
        #expect(filed.out.contains("objection.filed accepted"))
        let dismissed = CapturedConsole()
        #expect(
            try await OperatorCommands.resolveObjection(
                context: h.context, target: t, entitlement: id, outcome: "dismissed", by: "区人社局 李科长", note: "核实停业属实",
                timeoutMs: 10_000, console: dismissed.console) == 0)
        #expect(dismissed.out.contains("objection.resolved accepted"))
        let nothingPending = CapturedConsole()
        #expect(
            try await OperatorCommands.resolveObjection(
                context: h.context, target: t, entitlement: id, outcome: "upheld", by: "区人社局 李科长", note: nil, timeoutMs: 10_000,
                console: nothingPending.console) == ExitCodes.rejected)
        #expect(nothingPending.out.contains("no pending objection"))

        h.clock.advance(seconds: 8 * 86_400)
        #expect(await notifierFeed.wait { $0.contains { $0.type == "disclosure.cleared" } })
        let late = CapturedConsole()
        #expect(
            try await OperatorCommands.fileObjection(
                context: h.context, target: t, entitlement: id, reason: "迟到的异议", contact: nil, timeoutMs: 10_000, console: late.console)
                == ExitCodes.rejected)
        #expect(late.out.contains("rejected: late"), "\(late.out)")
        #expect((try? ObjectionResolveVerb.parse(["--entitlement", id, "--outcome", "maybe", "--by", "x"])) == nil)
        await notifierFeed.stop()
        await h.shutdown()
    }
}

@Suite("bangfu payments batch, hold list")
struct BatchCLITests {
    static let cash = """
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
        per: merchant
        eligible: merchant.status == "active"
        amount_fen: 100000
        """

    @Test func aBatchSaysWhatItWroteAndHoldsAreATable() async throws {
        let h = try Harness()
        let registry = try await h.startRegistry()
        _ = try await h.startStandIn("notifier")
        let payments = try await h.startPayments()
        let matcher = try await h.startMatcher()
        let pt = ServiceTarget(service: "payments", endpoints: payments.endpoints)
        var f = Fixtures(seed: 17)
        let (a, b) = (f.uscc(), f.uscc())
        #expect(
            try await registry.publish([
                f.registration(uscc: a, name: "甲商户"), f.registration(uscc: b, name: "乙商户"),
                Fixtures.event(
                    "account.verified",
                    [
                        "uscc": .string(a), "bank": "中国工商银行许昌分行", "account_no": "6222021234567890123", "holder_name": "甲商户",
                        "verified_on": "2022-03-15",
                    ], subject: a),
            ]).allSatisfy { $0.status == .accepted })
        _ = try await PaymentsCommands.command(
            context: h.context, target: pt, type: "pool.funded",
            data: ["pool": "test-pool", "source": "central", "amount_fen": 10_000_000],
            timeoutMs: 10_000, console: CapturedConsole().console)
        #expect(
            try await PolicyCommands.publish(
                context: h.context, target: ServiceTarget(service: "matcher", endpoints: matcher.endpoints),
                path: try policyFile(Self.cash),
                timeoutMs: 10_000, console: CapturedConsole().console) == 0)
        #expect(
            try await eventually {
                let ready = try await payments.query(["op": "payment.list", "state": "ready"])["items"]?.arrayValue ?? []
                let held = try await payments.query(["op": "holds"])["items"]?.arrayValue ?? []
                return ready.count == 1 && held.count == 1
            })

        let holds = CapturedConsole()
        #expect(try await PaymentsCommands.holds(context: h.context, target: pt, timeoutMs: 10_000, console: holds.console) == 0)
        #expect(holds.lines.first?.hasPrefix("PAYMENT") == true && holds.lines.first?.contains("HOLD") == true, "\(holds.out)")
        #expect(holds.lines.count == 2 && holds.lines[1].contains(b) && holds.lines[1].contains("no_verified_account"), "\(holds.out)")
        let holdsJSON = CapturedConsole()
        _ = try await PaymentsCommands.holds(context: h.context, target: pt, timeoutMs: 10_000, json: true, console: holdsJSON.console)
        #expect(try jsonLines(holdsJSON).map { $0["hold_code"]?.stringValue } == ["no_verified_account"])

        let batch = CapturedConsole()
        #expect(
            try await PaymentsCommands.batch(
                context: h.context, target: pt, channel: "treasury", max: nil, id: "batch-1", timeoutMs: 10_000, console: batch.console)
                == 0)
        #expect(batch.out.contains("batch B000001 BANGFU-B000001.xml: 1 payment, ¥1,000.00 (100000 fen)"), "\(batch.out)")
        // The same command again (a retry after no answer): a duplicate, naming what that command made.
        let again = CapturedConsole()
        _ = try await PaymentsCommands.batch(
            context: h.context, target: pt, channel: "treasury", max: nil, id: "batch-1", timeoutMs: 10_000, console: again.console)
        #expect(again.out.contains("duplicate") && again.out.contains("batch B000001 BANGFU-B000001.xml"), "\(again.out)")
        // Another command with nothing left to batch says so, and names no earlier batch.
        let empty = CapturedConsole()
        #expect(
            try await PaymentsCommands.batch(
                context: h.context, target: pt, channel: "treasury", max: nil, timeoutMs: 10_000, console: empty.console) == 0)
        #expect(empty.out.contains("nothing ready to batch on channel treasury"), "\(empty.out)")
        #expect(!empty.out.contains("B000001"))
        // The batches so far, and the operators' notes (none here).
        let listed = CapturedConsole()
        #expect(
            try await PaymentsCommands.batches(context: h.context, target: pt, json: false, timeoutMs: 10_000, console: listed.console) == 0
        )
        #expect(listed.lines.first?.hasPrefix("BATCH") == true, "\(listed.out)")
        #expect(
            listed.lines.count == 2 && listed.lines[1].hasPrefix("B000001") && listed.lines[1].contains("BANGFU-B000001.xml"),
            "\(listed.out)")
        let notes = CapturedConsole()
        #expect(
            try await PaymentsCommands.reviews(
                context: h.context, target: pt, max: 10, json: false, timeoutMs: 10_000, console: notes.console)
                == 0)
        #expect(notes.out.contains("no review notes"), "\(notes.out)")
        #expect(
            PaymentsCommands.pausedHint("channel treasury is paused: failure rate 100% over 20%", channel: "treasury")?.hasSuffix(
                "bangfu payments resume --channel treasury") == true)
        #expect(PaymentsCommands.pausedHint("max must be a whole number", channel: "treasury") == nil)
        await h.shutdown()
    }
}

@Suite("bangfu payments confirm says what became of the payment")
struct ConfirmCLITests {
    @Test func aConfirmationPrintsThePaymentsStateAfterIt() async throws {
        let h = try Harness()
        let registry = try await h.startRegistry()
        _ = try await h.startStandIn("notifier")
        let payments = try await h.startPayments()
        let matcher = try await h.startMatcher()
        let pt = ServiceTarget(service: "payments", endpoints: payments.endpoints)
        var f = Fixtures(seed: 19)
        let (a, b) = (f.uscc(), f.uscc())
        #expect(
            try await registry.publish([
                f.registration(uscc: a, name: "甲租户"), Fixtures.lease(id: "L-A", tenant: a, rentFen: 100_000),
                f.registration(uscc: b, name: "乙租户"), Fixtures.lease(id: "L-B", tenant: b, rentFen: 200_000),
            ]).allSatisfy { $0.status == .accepted })
        let rentWaiver = """
            id: test-rent
            revision: 1
            title: 测试免租
            authority: test
            benefit: rent_waiver
            channel: lessor
            requires_application: false
            period: {from: 2022-01-01, to: 2022-06-30}
            disclosure: {working_days: 0, auto_approve: true}
            per: lease
            eligible: merchant.status == "active" && overlap_days(lease, period) > 0
            amount_fen: lease.monthly_rent_fen * 3
            """
        #expect(
            try await PolicyCommands.publish(
                context: h.context, target: ServiceTarget(service: "matcher", endpoints: matcher.endpoints),
                path: try policyFile(rentWaiver),
                timeoutMs: 10_000, console: CapturedConsole().console) == 0)
        #expect(
            try await eventually {
                try await payments.query(["op": "payment.list", "state": "ready"])["items"]?.arrayValue?.count == 2
            })
        _ = try await PaymentsCommands.batch(
            context: h.context, target: pt, channel: "lessor", max: nil, timeoutMs: 10_000, console: CapturedConsole().console)
        let items = try await payments.query(["op": "payment.list", "state": "instructed"])["items"]?.arrayValue ?? []
        let pid = try #require(items.first { $0["uscc"]?.stringValue == a }?["payment_id"]?.stringValue)

        // By lease: refunded, so settled.
        let refunded = CapturedConsole()
        #expect(
            try await PaymentsCommands.confirm(
                context: h.context, target: pt, agency: false, payment: nil, lease: "L-A", policy: nil, method: "refund", declined: false,
                timeoutMs: 10_000, console: refunded.console) == 0)
        #expect(refunded.out.contains("lessor.confirmed accepted"), "\(refunded.out)")
        #expect(refunded.lines.contains("  \(pid): settled"), "\(refunded.out)")
        // Again (another command): accepted, and the router says it changed nothing.
        let again = CapturedConsole()
        #expect(
            try await PaymentsCommands.confirm(
                context: h.context, target: pt, agency: false, payment: pid, lease: nil, policy: nil, method: "refund", declined: false,
                timeoutMs: 10_000, console: again.console) == 0)
        #expect(again.out.contains("payment \(pid) is settled, not awaiting a confirmation: this one changed nothing"), "\(again.out)")
        // b's offset failed: instructed again, the lessor owing a refund by a new deadline.
        let failed = CapturedConsole()
        #expect(
            try await PaymentsCommands.confirm(
                context: h.context, target: pt, agency: false, payment: nil, lease: "L-B", policy: "test-rent", method: "offset",
                declined: true, timeoutMs: 10_000, console: failed.console) == 0)
        #expect(
            failed.lines.contains { $0.contains(": instructed (offset failed: the lessor owes a refund of the waived rent); deadline ") },
            "\(failed.out)")
        await h.shutdown()
    }
}

@Suite("bangfu quarantine show masks personal data")
struct QuarantineMaskTests {
    @Test func showMasksByDefaultRawShowsTheFrameAndResubmitSendsTheStoredFrame() async throws {
        let h = try Harness()
        let reg = try await h.startRegistry()
        let t = target(reg)
        var f = Fixtures(seed: 33)
        let idNumber = f.idNumber()
        let phone = "13812345678"
        let bad = Fixtures.event(
            "business.registered",
            [
                "uscc": .string(corrupted(f.uscc())), "name": "校验码错误商户", "kind": "enterprise",
                "legal_rep": ["name": "李四", "id_number": .string(idNumber)], "industry": "H6210", "district": "411002",
                "registered_on": "2019-03-01", "status": "active", "phone": .string(phone),
            ])
        #expect(try await reg.publish(bad).rejection?.code == .invalidUSCC)
        let items = try await reg.query(["op": "quarantine.list", "max": 10])["items"]?.arrayValue ?? []
        let id = try #require(items.first?["id"]?.stringValue)

        let masked = CapturedConsole()
        #expect(try await QuarantineCommand.show(context: h.context, target: t, id: id, console: masked.console) == 0)
        #expect(!masked.out.contains(idNumber) && !masked.out.contains(phone), "\(masked.out)")
        #expect(masked.out.contains(Mask.idNumber(idNumber)) && masked.out.contains(Mask.phone(phone)))
        #expect(masked.out.contains("--raw"))
        let raw = CapturedConsole()
        _ = try await QuarantineCommand.show(context: h.context, target: t, id: id, raw: true, console: raw.console)
        #expect(raw.out.contains(idNumber) && raw.out.contains(phone))
        let maskedJSON = CapturedConsole()
        _ = try await QuarantineCommand.show(context: h.context, target: t, id: id, json: true, console: maskedJSON.console)
        let mj = try #require(try jsonLines(maskedJSON).first)
        #expect(mj["frame_masked"]?.boolValue == true && !maskedJSON.out.contains(idNumber))
        let rawJSON = CapturedConsole()
        _ = try await QuarantineCommand.show(context: h.context, target: t, id: id, json: true, raw: true, console: rawJSON.console)
        let frame = try #require(try jsonLines(rawJSON).first?["frame"]?.stringValue)
        #expect(try JSONParser.parse(frame)["data"]?["legal_rep"]?["id_number"]?.stringValue == idNumber)

        // Resubmitting sends the stored frame, personal data and all: the new quarantine row is
        // the same event (rejected for its USCC again), not a masked copy.
        let resubmitted = CapturedConsole()
        #expect(
            try await QuarantineCommand.resubmit(
                context: h.context, target: t, id: id, options: QuarantineCommand.ResubmitOptions(), console: resubmitted.console)
                == ExitCodes.rejected)
        #expect(resubmitted.out.contains("invalid_uscc"))
        let newest = try #require(try await reg.query(["op": "quarantine.list", "max": 10])["items"]?.arrayValue?.last?["id"]?.stringValue)
        let newRaw = CapturedConsole()
        _ = try await QuarantineCommand.show(context: h.context, target: t, id: newest, json: true, raw: true, console: newRaw.console)
        #expect(newRaw.out.contains(idNumber))

        // An id that is not a number is a usage error.
        do {
            _ = try await QuarantineCommand.show(context: h.context, target: t, id: "abc", console: CapturedConsole().console)
            Issue.record("showed abc")
        } catch {
            #expect(error.exitCode == ExitCodes.usage)
            #expect(error.message.contains("numbers"))
        }
        #expect((try? QuarantineVerb.Show.parse(["abc"])) == nil)
        #expect((try? QuarantineVerb.Show.parse(["26", "--raw"]))?.raw == true)
        await h.shutdown()
    }
}

@Suite("bangfu tail --follow on a silent feed, status, install.sh")
struct FeedAndStatusTests {
    @Test func aSilentFeedIsReportedWithItsEndpointAndResubscribed() async throws {
        let h = try Harness()
        let reg = try await h.startRegistry()
        var t = target(reg)
        t.feed = "inproc://nobody-publishes-here-\(UUID().uuidString.prefix(6))"
        var o = TailOptions()
        o.follow = true
        o.silenceMs = 300
        let out = CapturedConsole()
        let stop = StopSignal()
        let context = h.context
        let console = out.console
        let tail = Task { try await TailCommand.run(context: context, target: t, options: o, console: console, stop: stop) }
        let feed = t.feed
        #expect(await out.wait(err: true) { $0.contains("nothing from \(feed)") && $0.contains("BANGFU_REGISTRY_FEED") })
        stop.stop()
        #expect(try await tail.value == 0)
        await h.shutdown()
    }

    @Test func aFollowedFeedIsNotReportedSilent() async throws {
        let h = try Harness()
        let reg = try await h.startRegistry()
        var f = Fixtures(seed: 5)
        var o = TailOptions()
        o.follow = true
        o.max = 1
        o.silenceMs = 3_000
        let out = CapturedConsole()
        let context = h.context
        let console = out.console
        let t = target(reg)
        let tail = Task { try await TailCommand.run(context: context, target: t, options: o, console: console) }
        #expect(try await reg.publish(f.registration(uscc: f.uscc(), name: "丁")).status == .accepted)
        #expect(try await tail.value == 0)
        #expect(!out.err.contains("nothing from"))
        await h.shutdown()
    }

    @Test func installExportsTheFeedsToo() throws {
        let script = try String(contentsOf: repoRoot.appendingPathComponent("deploy/install.sh"), encoding: .utf8)
        #expect(script.contains("BANGFU_${u}_FEED=ipc:///run/bangfu/$s-feed"))
    }

    @Test func statusShowsFeedsAndLivePoliciesReadably() {
        let s: JSON = [
            "op": "status", "service": "matcher", "ready": true, "last": "12",
            "feeds": [
                "registry": [
                    "cursor": "5", "upstream_last": "7", "lag": 2, "caught_up": false, "resubscribes": 1, "replay_timeouts_in_a_row": 0,
                ],
                "notifier": [
                    "cursor": "3", "upstream_last": "3", "lag": 0, "caught_up": true, "resubscribes": 0, "replay_timeouts_in_a_row": 0,
                ],
            ],
            "live_policies": ["soe-rent-waiver@1", "flood-relief@2"],
        ]
        let t = ServiceTarget(service: "matcher", intake: "i", feed: "f", replay: "r")
        let text = StatusCommand.text(StatusCommand.Report(target: t, status: s, problem: nil), timeoutMs: 1_000)
        #expect(text.contains("  feeds            notifier: applied 3 of 3 (caught up)\n"), "\(text)")
        #expect(text.contains("                   registry: applied 5 of 7 (2 behind), resubscribed 1×\n"), "\(text)")
        #expect(text.contains("  live policies    soe-rent-waiver@1, flood-relief@2\n"), "\(text)")
        #expect(!text.contains("{\""), "no raw JSON")
    }
}
