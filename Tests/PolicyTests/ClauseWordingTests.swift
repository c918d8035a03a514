import Foundation
import Models
import Testing

@testable import Policy

/// What a merchant is told about a failing clause must be true of it.
@Suite("Clause wording")
struct ClauseWordingTests {
    static let soe = #"!merchant.credit_flags.exists(f, f.list in ["serious_violation", "dishonest_debtor"])"#
    static let flood = "size(merchant.credit_flags) == 0"

    static func flags(_ lists: [String]) -> [String: JSON] {
        ["merchant.credit_flags": .array(lists.map { ["list": .string($0), "since": "2021-11-01"] })]
    }

    /// A merchant only on the 经营异常名录 is told so — not that it is a 严重违法失信 entity — where
    /// any record excludes it (flood relief: 无不良记录); where only some lists exclude, only those
    /// it is on are named.
    @Test func aCreditReasonNamesTheListsTheMerchantIsOn() {
        #expect(ClauseWording.reason(source: Self.flood, inputs: Self.flags(["abnormal_operation"])) == "存在不良信用记录（列入经营异常名录）")
        #expect(
            ClauseWording.reason(source: Self.soe, inputs: Self.flags(["abnormal_operation", "serious_violation"]))
                == "存在不良信用记录（列入严重违法失信名单）")
        #expect(
            ClauseWording.reason(source: Self.flood, inputs: Self.flags(["dishonest_debtor", "abnormal_operation"]))
                == "存在不良信用记录（被列为失信被执行人、列入经营异常名录）")
        #expect(ClauseWording.reason(source: Self.flood, inputs: [:]) == "存在不良信用记录")
    }
}
