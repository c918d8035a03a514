import BangfuTesting
import Foundation
import Models
import Testing

@testable import BangfuCLI

/// `bangfu status` and `bangfu payments batch` say when a batch file is not on disk yet (retried
/// every second), when batches were refused, and when no batch can be made at all.
@Suite struct PaymentsBatchFilesStatusTests {
    static let target = ServiceTarget(service: "payments", intake: "i", feed: "f", replay: "r")

    static func text(_ extra: JSONObject) -> String {
        var o: JSONObject = ["op": "status", "service": "payments", "ready": true, "last": "3"]
        for (k, v) in extra.members { o[k] = v }
        return StatusCommand.text(StatusCommand.Report(target: target, status: .object(o), problem: nil), timeoutMs: 1_000)
    }

    @Test func statusShowsBatchFilesNotWrittenYetWithTheirAgeAndError() {
        let waiting = Self.text([
            "unwritten_batches": 2, "unwritten_oldest_batch": "B000007", "unwritten_oldest_age_s": 1_830,
            "unwritten_last_error": "cannot fsync /srv/outbox/.tmp-BANGFU-B000007.xml.3f: Input/output error", "refused_batches": 1,
        ])
        #expect(
            waiting.contains(
                "  batch files      2 NOT WRITTEN (retried every second); oldest B000007, 1,830 s old: cannot fsync /srv/outbox/.tmp-BANGFU-B000007.xml.3f: Input/output error; 1 refused (bangfu payments batches)\n"
            ), "\(waiting)")
        #expect(!waiting.contains("unwritten"), "no raw keys: \(waiting)")
        let fine = Self.text(["unwritten_batches": 0, "refused_batches": 0])
        #expect(fine.contains("  batch files      all written\n"), "\(fine)")
    }

    @Test func statusWarnsWhenBatchNumberingIsBlocked() {
        let blocked = Self.text([
            "unwritten_batches": 0, "refused_batches": 0,
            "batch_numbering_blocked": "sent/BANGFU-B000009.xml in the outbox is numbered above this database's highest batch (B000007): …",
        ])
        #expect(
            blocked.contains(
                "  WARNING: no batch is made: sent/BANGFU-B000009.xml in the outbox is numbered above this database's highest batch (B000007): …\n"
            ), "\(blocked)")
    }

    @Test func aBatchWhoseFileIsNotWrittenYetIsNotSaidToBeWritten() {
        let unwritten = PaymentsCommands.describeBatch([
            "batch_id": "B000002", "file": "BANGFU-B000002.xml", "count": 3, "total_fen": 300_000, "written": false,
        ])
        #expect(unwritten.contains("NOT WRITTEN yet: payments tries again every second"), "\(unwritten)")
        let refused = PaymentsCommands.describeBatch([
            "batch_id": "B000002", "file": "BANGFU-B000002.xml", "count": 3, "total_fen": 300_000, "written": false,
            "refused": "BANGFU-B000002.xml is already in sent/ with other content",
        ])
        #expect(refused.contains("REFUSED, not written"), "\(refused)")
    }
}
