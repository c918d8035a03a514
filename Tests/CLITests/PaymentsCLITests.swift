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
    }

    @Test func aMonthlyReportNamesARealMonth() {
        func refused(_ month: String) -> Bool { (try? ReportMonthlyVerb.parse(["--month", month])) == nil }
        #expect(!refused("2022-05"))
        for bad in ["2022-13", "2022-00", "2022-5", "May 2022", "2022-05-01"] { #expect(refused(bad), "\(bad)") }
    }
}
