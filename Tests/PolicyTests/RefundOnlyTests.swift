import Foundation
import Models
import Testing

@testable import Policy

/// 对租赁期不足3个月的，按实际发生天数计算直接退付相应租金 (seed 篇二 (二)): the shipped rent waiver
/// says which leases the lessor must refund directly (`refund_only`), and only a lessor's
/// programme may say it.
@Suite("Refund-only rent waivers")
struct RefundOnlyTests {
    static func shipped() throws -> CompiledPolicy {
        try PolicyCompiler.compile(
            yaml: String(
                contentsOf: FloodReliefPolicyTests.repo.appendingPathComponent("policies/soe-rent-waiver.yaml"), encoding: .utf8))
    }

    @Test func aLeaseUnderThreeMonthsInThePeriodIsRefundedDirectly() throws {
        let p = try Self.shipped()
        let short = Fx.lease(id: "S", starts: "2022-05-01", ends: "2022-06-30")  // 61 days of the half-year
        let full = Fx.lease(id: "F", starts: "2021-01-01", ends: "2023-12-31")
        let exactly = Fx.lease(id: "E", starts: "2022-04-02", ends: "2022-06-30")  // 90 days: the full three months
        let m = Fx.merchant { $0["leases"] = [short, full, exactly] }
        #expect(p.refundOnly(merchant: m, binding: short))
        #expect(!p.refundOnly(merchant: m, binding: full))
        #expect(!p.refundOnly(merchant: m, binding: exactly))
        #expect(p.document.json["refund_only"]?.stringValue?.contains("overlap_days") == true)
    }

    @Test func onlyALessorsProgrammeIsRefundOnly() throws {
        let yaml = try String(
            contentsOf: FloodReliefPolicyTests.repo.appendingPathComponent("policies/soe-rent-waiver.yaml"), encoding: .utf8
        ).replacingOccurrences(of: "channel: lessor", with: "channel: agency:housing")
        do {
            _ = try PolicyCompiler.compile(yaml: yaml)
            Issue.record("compiled")
        } catch {
            #expect("\(error)".contains("refund_only applies to rent waivers the lessor carries out"), "\(error)")
        }
    }
}
