import BangfuTesting
import GRDB
import Models
import Testing

@testable import Payments

/// Payments parses the registry's profiles without the members it never reads. Over a
/// synthetic county, what it keeps of each profile must be the same with and without them.
@Suite("Payments' copy of the registry's profiles")
struct PaymentsProfileCopyTests {
    @Test func leavingUnreadMembersOutKeepsEverythingPaymentsReads() throws {
        let county = SyntheticCounty(seed: 7, merchants: 400, badEvery: 0)
        var compared = 0
        var withRepresentative = 0
        var withPhone = 0
        for (uscc, frame) in county.profiledFrames() {
            let full = try CloudEvent.parse(frame, omittingData: [])
            let lean = try CloudEvent.parse(frame, omittingData: PaymentsFeeds.unreadProfileMembers)
            let kept = PaymentsEngine.keptColumns(of: try #require(full.data))
            #expect(PaymentsEngine.keptColumns(of: try #require(lean.data)) == kept, "\(uscc)")
            #expect(lean.data?["leases"] == nil && full.data?["leases"] != nil, "the unread members are left out")
            if kept[4] != .null { withRepresentative += 1 }
            if kept[5] != .null { withPhone += 1 }
            compared += 1
        }
        #expect(compared > 300)
        #expect(withRepresentative > 100 && withPhone > 10, "the county exercises the link fingerprints")
    }
}
