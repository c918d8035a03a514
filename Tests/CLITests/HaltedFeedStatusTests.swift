import BangfuTesting
import Bus
import Foundation
import Models
import Testing

@testable import BangfuCLI

@Suite("Halted feed status")
struct HaltedFeedStatusTests {
    /// `bangfu status` shows a halted feed, and why, on its feed line.
    @Test func statusShowsAHaltedFeedAndWhy() {
        let s: JSON = [
            "op": "status", "service": "matcher", "ready": true, "last": "12",
            "feeds": [
                "registry": [
                    "cursor": "5", "upstream_last": "3", "lag": 0, "caught_up": false, "resubscribes": 0, "replay_timeouts_in_a_row": 0,
                    "halted": "the upstream's last sequence 3 is below this subscriber's cursor 5",
                ]
            ],
        ]
        let t = ServiceTarget(service: "matcher", intake: "i", feed: "f", replay: "r")
        let text = StatusCommand.text(StatusCommand.Report(target: t, status: s, problem: nil), timeoutMs: 1_000)
        #expect(
            text.contains(
                "  feeds            registry: applied 5 of 3 — HALTED: the upstream's last sequence 3 is below this subscriber's cursor 5\n"
            ),
            "\(text)")
    }
}
