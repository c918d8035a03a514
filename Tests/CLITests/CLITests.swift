import BangfuCLI
import BangfuTesting
import Bus
import Foundation
import Models
import Testing

/// A USCC whose check character is wrong.
func corrupted(_ uscc: String) -> String {
    let alphabet = Array(USCC.alphabet)
    let last = uscc.last!
    let other = alphabet.first { $0 != last }!
    return String(uscc.dropLast()) + String(other)
}

func target(_ reg: RunningService) -> ServiceTarget {
    ServiceTarget(service: "registry", endpoints: reg.endpoints)
}

/// Lines of JSON output, parsed.
func jsonLines(_ console: CapturedConsole) throws -> [JSON] {
    try console.lines.map { try JSONParser.parse($0) }
}

/// Three good registrations, one duplicate line, one bad check digit, one non-JSON line.
struct Scenario {
    var good: [CloudEvent] = []
    var bad: CloudEvent
    var text: String

    init() {
        var f = Fixtures()
        for k in 0..<3 { good.append(f.registration(uscc: f.uscc(), name: "许昌测试商户\(k)")) }
        bad = f.registration(uscc: corrupted(f.uscc()), name: "校验码错误商户")
        let lines = [
            good[0].serialized(), good[1].serialized(), "", good[0].serialized(), good[2].serialized(), bad.serialized(),
            "this is not json", "   ",
        ]
        text = lines.joined(separator: "\n") + "\n"
    }
}

@Suite("bangfu CLI against the in-process registry")
struct CLIHarnessTests {
    @Test("publish → tail → quarantine list/show/resubmit → status")
    func endToEnd() async throws {
        let h = try Harness()
        let reg = try await h.startRegistry()
        let t = target(reg)
        let s = Scenario()

        // publish: 3 accepted, 1 duplicate, 2 rejected (invalid_uscc, invalid_json) → exit 2.
        let out = CapturedConsole()
        let summary = try await PublishCommand.run(
            context: h.context, endpoint: t.intake, input: LineReader(text: s.text, name: "events.jsonl"), console: out.console)
        #expect(summary.lines == 6)
        #expect(summary.accepted == 3)
        #expect(summary.duplicate == 1)
        #expect(summary.rejected == 2)
        #expect(summary.unacknowledged == 0)
        #expect(summary.rejectedByCode == ["invalid_uscc": 1, "invalid_json": 1])
        #expect(summary.exitCode == 2)
        #expect(summary.rejections.map(\.line) == [6, 7])
        #expect(summary.rejections[0].id == s.bad.id)
        #expect(summary.rejections[0].field == "data.uscc")
        #expect(out.out.contains("line 6  id=\(s.bad.id)  invalid_uscc  data.uscc  "))
        #expect(out.out.contains("line 7  id=-  invalid_json"))

        // The JSON summary says the same.
        let jsonOut = CapturedConsole()
        var o = PublishOptions()
        o.json = true
        let again = try await PublishCommand.run(
            context: h.context, endpoint: t.intake, input: LineReader(text: s.good.map { $0.serialized() }.joined(separator: "\n")),
            options: o, console: jsonOut.console)
        #expect(again.duplicate == 3 && again.exitCode == 0)
        let j = try JSONParser.parse(jsonOut.out.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(j["duplicate"]?.intValue == 3)
        #expect(j["exit_code"]?.intValue == 0)

        // tail without --follow: exactly the three profiles, sequences 1...3; paging works.
        let tailOut = CapturedConsole()
        var to = TailOptions()
        to.page = 2
        #expect(try await TailCommand.run(context: h.context, target: t, options: to, console: tailOut.console) == 0)
        let events = try jsonLines(tailOut)
        #expect(events.count == 3)
        #expect(events.map { $0["sequence"]?.stringValue } == ["1", "2", "3"])
        #expect(events.allSatisfy { $0["type"]?.stringValue == "merchant.profiled" })
        #expect(Set(events.compactMap { $0["subject"]?.stringValue }) == Set(s.good.map { $0.subject! }))

        let afterOut = CapturedConsole()
        to.after = 1
        to.typePrefix = "merchant."
        _ = try await TailCommand.run(context: h.context, target: t, options: to, console: afterOut.console)
        #expect(try jsonLines(afterOut).map { $0["sequence"]?.stringValue } == ["2", "3"])
        let none = CapturedConsole()
        to.after = 0
        to.typePrefix = "payment."
        _ = try await TailCommand.run(context: h.context, target: t, options: to, console: none.console)
        #expect(none.lines.isEmpty)
        // --subject: one merchant's events only.
        let one = CapturedConsole()
        to.typePrefix = nil
        to.subject = s.good[1].subject
        _ = try await TailCommand.run(context: h.context, target: t, options: to, console: one.console)
        let its = try jsonLines(one)
        #expect(its.count == 1 && its.first?["subject"]?.stringValue == s.good[1].subject, "\(its)")
        to.subject = nil

        // quarantine list: the two rejected items with their codes.
        let listOut = CapturedConsole()
        var lo = QuarantineCommand.ListOptions()
        #expect(try await QuarantineCommand.list(context: h.context, target: t, options: lo, console: listOut.console) == 0)
        #expect(listOut.lines.count == 3)  // header + 2 rows
        #expect(listOut.lines[0].hasPrefix("ID"))
        #expect(listOut.lines[0].contains("  SOURCE  "))
        // The sender of the bad registration is on its row (the agency to send the list to).
        #expect(listOut.lines.contains { $0.contains("invalid_uscc") && $0.contains(s.bad.source) })
        #expect(listOut.out.contains("invalid_uscc") && listOut.out.contains("invalid_json"))
        lo.json = true
        let listJSON = CapturedConsole()
        _ = try await QuarantineCommand.list(context: h.context, target: t, options: lo, console: listJSON.console)
        let items = try jsonLines(listJSON)
        #expect(items.compactMap { $0["code"]?.stringValue } == ["invalid_uscc", "invalid_json"])
        let usccItem = try #require(items.first { $0["code"]?.stringValue == "invalid_uscc" })
        let jsonItem = try #require(items.first { $0["code"]?.stringValue == "invalid_json" })
        #expect(usccItem["event_id"]?.stringValue == s.bad.id)
        lo.code = "invalid_json"
        let filtered = CapturedConsole()
        _ = try await QuarantineCommand.list(context: h.context, target: t, options: lo, console: filtered.console)
        #expect(try jsonLines(filtered).count == 1)

        // show: details and the raw frame.
        let showOut = CapturedConsole()
        let jsonID = try #require(jsonItem["id"]?.stringValue)
        #expect(try await QuarantineCommand.show(context: h.context, target: t, id: jsonID, console: showOut.console) == 0)
        #expect(showOut.out.contains("code:        invalid_json"))
        // A frame that is not JSON cannot be masked: it is shown only with --raw.
        #expect(!showOut.out.contains("this is not json"))
        #expect(showOut.lines.last?.contains("shown only with --raw") == true)
        let rawOut = CapturedConsole()
        _ = try await QuarantineCommand.show(context: h.context, target: t, id: jsonID, raw: true, console: rawOut.console)
        #expect(rawOut.lines.last == "this is not json")
        await #expect(throws: CLIError.self) {
            try await QuarantineCommand.show(context: h.context, target: t, id: "999999", console: CapturedConsole().console)
        }

        // resubmit unchanged: still not JSON → rejected, exit 2.
        let rejOut = CapturedConsole()
        #expect(
            try await QuarantineCommand.resubmit(
                context: h.context, target: t, id: jsonID, options: QuarantineCommand.ResubmitOptions(), console: rejOut.console) == 2)
        #expect(rejOut.out.hasPrefix("rejected"))
        #expect(rejOut.out.contains("invalid_json"))

        // resubmit with a corrected file (same id, valid USCC) → accepted.
        var f = Fixtures(seed: 7)
        var fixed = f.registration(uscc: f.uscc(), name: "校验码已更正商户")
        fixed.id = s.bad.id
        let path = h.directory + "/fixed.json"
        try fixed.serialized().write(toFile: path, atomically: true, encoding: .utf8)
        let fixOut = CapturedConsole()
        var ro = QuarantineCommand.ResubmitOptions()
        ro.file = path
        let usccID = try #require(usccItem["id"]?.stringValue)
        #expect(try await QuarantineCommand.resubmit(context: h.context, target: t, id: usccID, options: ro, console: fixOut.console) == 0)
        #expect(fixOut.out == "accepted  id=\(s.bad.id)\n")

        // A file that is not one JSON event is refused locally (65); a missing one is 66.
        let notJSON = h.directory + "/broken.json"
        try "{\"id\": ".write(toFile: notJSON, atomically: true, encoding: .utf8)
        ro.file = notJSON
        do {
            _ = try await QuarantineCommand.resubmit(
                context: h.context, target: t, id: usccID, options: ro, console: CapturedConsole().console)
            Issue.record("expected an error")
        } catch {
            #expect(error.exitCode == 65)
        }
        ro.file = h.directory + "/missing.json"
        do {
            _ = try await QuarantineCommand.resubmit(
                context: h.context, target: t, id: usccID, options: ro, console: CapturedConsole().console)
            Issue.record("expected an error")
        } catch {
            #expect(error.exitCode == 66)
        }

        // status: last sequence 4 (three profiles + the corrected one), counters, quarantine.
        let statusOut = CapturedConsole()
        #expect(await StatusCommand.run(context: h.context, targets: [t], json: true, console: statusOut.console) == 0)
        let st = try JSONParser.parse(statusOut.out.trimmingCharacters(in: .whitespacesAndNewlines))
        let svc = try #require(st["services"]?.arrayValue?.first)
        #expect(svc["reachable"]?.boolValue == true)
        let status = try #require(svc["status"])
        #expect(status["last"]?.stringValue == "4")
        #expect(status["ready"]?.boolValue == true)
        #expect(status["counters"]?["accepted"]?.intValue == 4)
        #expect(status["counters"]?["duplicate"]?.intValue == 4)
        #expect(status["counters"]?["rejected"]?.intValue == 3)
        #expect(status["quarantined"]?.intValue == 3)
        #expect(status["quarantined_by_code"]?["invalid_json"]?.intValue == 2)

        let statusText = CapturedConsole()
        #expect(await StatusCommand.run(context: h.context, targets: [t], console: statusText.console) == 0)
        #expect(statusText.lines.first?.hasPrefix("registry  ready") == true)
        #expect(statusText.out.contains("last sequence    4"))
        #expect(statusText.out.contains("accepted 4, duplicate 4, rejected 3"))
        #expect(statusText.out.contains("invalid_json 2"))

        await h.shutdown()
    }

    @Test("tail --follow --max prints replayed events, then a live one published after it caught up")
    func follow() async throws {
        let h = try Harness()
        let reg = try await h.startRegistry()
        let t = target(reg)
        var f = Fixtures(seed: 99)
        let first = [f.registration(uscc: f.uscc(), name: "甲"), f.registration(uscc: f.uscc(), name: "乙")]
        let acks = try await reg.publish(first)
        #expect(acks.allSatisfy { $0.status == .accepted })

        let out = CapturedConsole()
        let stop = StopSignal()
        var o = TailOptions()
        o.follow = true
        o.max = 3
        let context = h.context
        let console = out.console
        let task = Task { try await TailCommand.run(context: context, target: t, options: o, console: console, stop: stop) }
        // Safety net only: a broken build stops instead of hanging.
        let guardTask = Task {
            try await Task.sleep(for: .seconds(30))
            stop.stop()
        }
        #expect(await out.wait { $0.split(separator: "\n").count >= 2 })
        let live = f.registration(uscc: f.uscc(), name: "丙")
        #expect(try await reg.publish(live).status == .accepted)
        #expect(try await task.value == 0)
        guardTask.cancel()
        let events = try jsonLines(out)
        #expect(events.map { $0["sequence"]?.stringValue } == ["1", "2", "3"])
        #expect(events.last?["subject"]?.stringValue == live.subject)
        await h.shutdown()
    }

    @Test("tail masks bank accounts, resident IDs and phones unless --unmasked")
    func tailMasksPersonalData() async throws {
        let h = try Harness()
        let reg = try await h.startRegistry()
        let t = target(reg)
        var f = Fixtures(seed: 98)
        let uscc = f.uscc(individual: true)
        let account = "6222021234567890123"
        let acks = try await reg.publish([
            f.registration(uscc: uscc, name: "李记小吃", kind: "individual"),
            Fixtures.event(
                "account.verified",
                [
                    "uscc": .string(uscc), "bank": "中国工商银行许昌分行", "account_no": .string(account),
                    "holder_name": "李记小吃", "verified_on": "2022-03-15",
                ], subject: uscc, source: "/bank/icbc-xuchang"),
        ])
        #expect(acks.allSatisfy { $0.status == .accepted })
        var o = TailOptions()
        o.typePrefix = "payee."
        let masked = CapturedConsole()
        #expect(try await TailCommand.run(context: h.context, target: t, options: o, console: masked.console) == 0)
        let payee = try #require(try jsonLines(masked).first)
        #expect(payee["data"]?["account_no"]?.stringValue == "6222 **** **** 0123")
        #expect(!masked.out.contains(account))
        o.unmasked = true
        let clear = CapturedConsole()
        _ = try await TailCommand.run(context: h.context, target: t, options: o, console: clear.console)
        #expect(try jsonLines(clear).first?["data"]?["account_no"]?.stringValue == account)
        // The profiles the registry publishes mask the representative's ID itself.
        o = TailOptions()
        o.typePrefix = "merchant."
        let profiles = CapturedConsole()
        _ = try await TailCommand.run(context: h.context, target: t, options: o, console: profiles.console)
        #expect(!profiles.lines.isEmpty)
        #expect(!profiles.out.contains(account))
        await h.shutdown()
    }

    @Test("tail --follow stops on the stop signal")
    func followStops() async throws {
        let h = try Harness()
        let reg = try await h.startRegistry()
        let out = CapturedConsole()
        let stop = StopSignal()
        var o = TailOptions()
        o.follow = true
        let context = h.context
        let console = out.console
        let t = target(reg)
        let task = Task { try await TailCommand.run(context: context, target: t, options: o, console: console, stop: stop) }
        stop.stop()
        #expect(try await task.value == 0)
        #expect(out.lines.isEmpty)
        await h.shutdown()
    }

    @Test("status of a service that does not answer: unreachable, exit 1")
    func statusUnreachable() async throws {
        let context = ZContext()
        let out = CapturedConsole()
        let t = ServiceTarget(service: "matcher", intake: "inproc://nobody-i", feed: "inproc://nobody-f", replay: "inproc://nobody-r")
        #expect(await StatusCommand.run(context: context, targets: [t], timeoutMs: 200, console: out.console) == 1)
        #expect(out.out.hasPrefix("matcher  unreachable"))
        context.terminate()
    }
}

@Suite("bangfu CLI pieces")
struct CLIUnitTests {
    @Test("endpoints: flag > environment > default")
    func endpoints() throws {
        let d = try EndpointResolver.resolve(service: "matcher", environment: [:])
        #expect(
            d
                == ServiceTarget(
                    service: "matcher", intake: "tcp://127.0.0.1:7201", feed: "tcp://127.0.0.1:7202", replay: "tcp://127.0.0.1:7203"))
        let env = ["BANGFU_REGISTRY_INTAKE": "ipc:///run/bangfu/registry-intake", "BANGFU_REGISTRY_REPLAY": "tcp://10.0.0.1:9"]
        let e = try EndpointResolver.resolve(service: "registry", replay: "tcp://127.0.0.1:1", environment: env)
        #expect(e.intake == "ipc:///run/bangfu/registry-intake")
        #expect(e.replay == "tcp://127.0.0.1:1")
        #expect(e.feed == "tcp://127.0.0.1:7102")
        #expect(throws: CLIError.self) { try EndpointResolver.resolve(service: "bank", environment: [:]) }
        #expect(throws: CLIError.self) { try EndpointResolver.resolve(service: "registry", intake: "127.0.0.1:7101", environment: [:]) }
    }

    @Test("line reader: CRLF, last line without newline, blank lines, over-long lines")
    func lineReader() throws {
        let long = String(repeating: "x", count: 100)
        let r = LineReader(text: "a\r\n\n\(long)\nb", maxLineBytes: 50)
        var got: [LineReader.Line] = []
        while let l = try r.next() { got.append(l) }
        #expect(
            got == [
                .text(number: 1, bytes: Array("a".utf8)), .text(number: 2, bytes: []), .tooLong(number: 3, bytes: 100),
                .text(number: 4, bytes: Array("b".utf8)),
            ])
        #expect(LineReader(text: "a\n\n  \nb\n").countRemainingLines() == 2)
    }

    @Test("line reader from a file descriptor, with a line longer than the read block")
    func lineReaderFile() throws {
        let path = NSTemporaryDirectory() + "bangfu-cli-\(UUID().uuidString).jsonl"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let big = String(repeating: "y", count: 200_000)
        try "one\n\(big)\nthree".write(toFile: path, atomically: true, encoding: .utf8)
        let r = try LineReader.open(path: path, maxLineBytes: 150_000)
        #expect(r.countRemainingLines() == 3)
        var got: [LineReader.Line] = []
        while let l = try r.next() { got.append(l) }
        #expect(
            got == [
                .text(number: 1, bytes: Array("one".utf8)), .tooLong(number: 2, bytes: 200_000),
                .text(number: 3, bytes: Array("three".utf8)),
            ])
        #expect(throws: CLIError.self) { try LineReader.open(path: path + ".missing") }
    }

    @Test("an over-long line is not sent and counts as too_large; an empty input is a clean exit 0")
    func tooLarge() async throws {
        let h = try Harness()
        let reg = try await h.startRegistry()
        var f = Fixtures(seed: 5)
        let ok = f.registration(uscc: f.uscc(), name: "正常").serialized()
        var o = PublishOptions()
        o.maxMessageBytes = 2_000
        o.quiet = true
        let out = CapturedConsole()
        let input = LineReader(text: ok + "\n" + String(repeating: "z", count: 5_000) + "\n", maxLineBytes: o.maxMessageBytes)
        let s = try await PublishCommand.run(
            context: h.context, endpoint: reg.endpoints.intake, input: input, options: o, console: out.console)
        #expect(s.accepted == 1 && s.rejected == 1 && s.rejectedByCode == ["too_large": 1] && s.exitCode == 2)
        #expect(out.out.isEmpty)
        let empty = try await PublishCommand.run(
            context: h.context, endpoint: reg.endpoints.intake, input: LineReader(text: "\n\n"), options: o, console: out.console)
        #expect(empty.lines == 0 && empty.exitCode == 0)
        await h.shutdown()
    }

    @Test("no answer from the intake: the rest is counted unacknowledged without waiting it out, exit 3")
    func unacknowledged() async throws {
        let context = ZContext()
        var o = PublishOptions()
        o.timeoutMs = 100
        o.retries = 1
        o.quiet = true
        let text = (0..<50).map { "{\"id\":\"e\($0)\"}" }.joined(separator: "\n")
        let s = try await PublishCommand.run(
            context: context, endpoint: "tcp://127.0.0.1:\(closedPort())", input: LineReader(text: text), options: o,
            console: CapturedConsole().console)
        #expect(s.lines == 50 && s.unacknowledged == 50 && s.exitCode == 3)
        #expect(s.abandonedAfterLine == 1)
        context.terminate()
    }
}
