import BangfuTesting
import Bus
import Foundation
import Models
import ServiceKit
import Testing

/// The operator's way out of a halted feed (docs/operations.md): the stopped service run once
/// with `--reset-feed-cursor FEED=SEQ` sets that feed's cursor, lifts the halt and exits.
@Suite("Feed cursor reset", .serialized)
struct FeedCursorResetTests {
    @Test func resetFeedCursorSetsTheCursorAndExitsWithoutServing() async throws {
        let matcher = try ServiceProcess(name: "bangfu-matcher")
        defer { matcher.cleanup() }
        let state = matcher.dir + "/bangfu-matcher-state"
        let once = try matcher.launch(arguments: [
            "--state-dir", state, "--log-level", "warning", "--reset-feed-cursor", "registry=3",
            "--intake", matcher.endpoint("intake"), "--feed", matcher.endpoint("feed"), "--replay", matcher.endpoint("replay"),
        ])
        let status = try await OwnerThread.run {
            once.waitUntilExit()
            return once.terminationStatus
        }
        let log = (try? String(contentsOfFile: matcher.logPath, encoding: .utf8)) ?? ""
        #expect(status == 0, "\(log)")
        #expect(log.contains("registry cursor reset from 0 to 3"), "\(log)")

        let bad = try matcher.launch(arguments: ["--state-dir", state, "--reset-feed-cursor", "tax=3"])
        let badStatus = try await OwnerThread.run {
            bad.waitUntilExit()
            return bad.terminationStatus
        }
        #expect(badStatus == 64, "the matcher follows no feed called tax")

        try await matcher.start([
            "--registry-feed", "ipc://\(matcher.dir)/none-feed", "--registry-replay", "ipc://\(matcher.dir)/none-replay",
        ])
        let answer = try await matcher.query(["op": "status"])
        #expect(answer["inbox"]?["registry"]?.stringValue == "3" || answer["inbox"]?["registry"]?.intValue == 3, "\(answer)")
        _ = try await matcher.terminate()
    }

    @Test func theResetIsAFlagOnlyNeverAStandingSetting() throws {
        #expect(throws: ConfigError.self) {
            try ServiceOptions.parse(
                service: "matcher", upstreams: ["registry"], arguments: [], environment: ["BANGFU_RESET_FEED_CURSOR": "registry=3"])
        }
        #expect(throws: ConfigError.self) {
            try ServiceOptions.parse(service: "matcher", upstreams: ["registry"], arguments: ["--reset-feed-cursor", "registry"])
        }
        let o = try ServiceOptions.parse(
            service: "matcher", upstreams: ["registry"], arguments: ["--reset-feed-cursor", "registry=7"], environment: [:])
        #expect(o.resetFeedCursor?.feed == "registry" && o.resetFeedCursor?.sequence == 7)
    }
}
