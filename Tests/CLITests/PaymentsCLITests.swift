import BangfuTesting
import Foundation
import Models
import Testing

@testable import BangfuCLI

/// `bangfu payments confirm`: what a confirmation must name before anything is sent.
@Suite("bangfu payments confirm")
struct PaymentsCLITests {
    func refused(_ arguments: [String]) -> Bool {
        do {
            _ = try PaymentsConfirmVerb.parse(arguments)
            return false
        } catch {
            return true
        }
    }

    @Test func aConfirmationNamesItsPaymentOrLeaseAndALessorsMethod() {
        #expect(refused([]), "neither --payment nor --lease")
        #expect(refused(["--payment", "ent-1"]), "a lessor's confirmation without --method")
        #expect(refused(["--payment", "ent-1", "--method", "cash"]), "not refund, offset or extension")
        #expect(refused(["--agency", "--lease", "L-1"]), "an agency confirms by payment")
        #expect(!refused(["--payment", "ent-1", "--method", "refund"]))
        #expect(!refused(["--lease", "L-1", "--method", "offset", "--declined"]))
        #expect(!refused(["--agency", "--payment", "ent-2"]))
        // A reversal's confirmation needs no method; if given, cancelled or reversed.
        #expect(!refused(["--payment", "ent-1", "--reversal"]))
        #expect(!refused(["--lease", "L-1", "--reversal", "--method", "reversed"]))
        #expect(!refused(["--agency", "--payment", "ent-2", "--reversal", "--method", "cancelled", "--declined"]))
        #expect(refused(["--payment", "ent-1", "--reversal", "--method", "refund"]), "not a reversal's method")
        #expect(refused(["--agency", "--payment", "ent-2", "--reversal", "--method", "undone"]))
    }

    /// `payments show` prints a payment a line per member, its reversal last.
    @Test func aPaymentIsShownReadably() {
        let lines = PaymentsCommands.showLines([
            "payment_id": "ent-1", "state": "clawed_back", "policy_id": "soe-rent-waiver", "uscc": "91411002MA0000001A",
            "benefit": "rent_waiver", "channel": "lessor", "amount_fen": 603_600, "batch_id": "B000002",
            "reversal": [
                "action": "reverse", "reason": "fraud: disqualified", "state": "instructed", "batch_id": "B000005",
                "confirm_by": "2026-12-10T09:00:00.000+08:00",
            ],
        ])
        #expect(lines.first == "ent-1: clawed_back")
        #expect(lines.contains("  programme: soe-rent-waiver") && lines.contains("  batch: B000002"), "\(lines)")
        #expect(lines.contains { $0.hasPrefix("  amount: ¥6,036.00") }, "\(lines)")
        #expect(
            lines.last == "  reversal (reverse, fraud: disqualified): instructed in B000005; confirm by 2026-12-10T09:00:00.000+08:00",
            "\(lines)")
    }

    @Test func reversalsAreListedByAState() {
        func refused(_ arguments: [String]) -> Bool { (try? PaymentsReversalsVerb.parse(arguments)) == nil }
        #expect(!refused([]))
        for state in ["pending", "instructed", "confirmed", "declined"] { #expect(!refused(["--state", state]), "\(state)") }
        #expect(refused(["--state", "open"]))
        #expect(refused(["--max", "0"]))
    }

    @Test func aMonthlyReportNamesARealMonth() {
        func refused(_ month: String) -> Bool { (try? ReportMonthlyVerb.parse(["--month", month])) == nil }
        #expect(!refused("2022-05"))
        for bad in ["2022-13", "2022-00", "2022-5", "May 2022", "2022-05-01"] { #expect(refused(bad), "\(bad)") }
    }

    /// A bank-return file quarantined from the inbox directory is not an event: resubmitting it
    /// is refused with the way it must go back (exit 65), instead of sending XML as an event.
    @Test func aQuarantinedReturnFileIsNotResubmittedAsAnEvent() async throws {
        let h = try Harness()
        let payments = try await h.startPayments()
        let inbox = h.directory + "/payments/inbox"
        try FileManager.default.createDirectory(atPath: inbox, withIntermediateDirectories: true)
        try "not a bank file".write(toFile: inbox + "/ret-garbled.xml", atomically: true, encoding: .utf8)
        let deadline = ContinuousClock.now + .seconds(20)
        var quarantined = 0
        while quarantined == 0 && ContinuousClock.now < deadline {
            quarantined = Int(try await payments.query(["op": "status"])["quarantined"]?.intValue ?? 0)
            await Task.yield()
        }
        #expect(quarantined >= 1)
        let items = try await payments.query(["op": "quarantine.list", "max": 10])["items"]?.arrayValue ?? []
        let item = try #require(items.first { $0["origin"]?.stringValue == "inbox" }, "\(items)")
        let id = try #require(item["id"]?.stringValue)
        let target = ServiceTarget(service: "payments", endpoints: payments.endpoints)
        var options = QuarantineCommand.ResubmitOptions()
        options.timeoutMs = 30_000  // a loaded machine answers late; only the refusal matters here
        do {
            _ = try await QuarantineCommand.resubmit(
                context: h.context, target: target, id: id, options: options, console: CapturedConsole().console)
            Issue.record("resubmitted")
        } catch {
            #expect(error.exitCode == ExitCodes.dataError, "\(error.message)")
            #expect(error.message.contains("inbox-dir"), "\(error.message)")
        }
        await h.shutdown()
    }
}
