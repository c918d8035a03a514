import BangfuTesting
import Models
import Testing

@testable import Notifier

/// The notifier parses the registry's profiles without the members its monthly report never
/// reads. Over a synthetic county, the part it keeps must be the same with and without them.
@Suite("The notifier's copy of the registry's profiles")
struct NotifierProfileCopyTests {
    @Test func leavingUnreadMembersOutKeepsTheReportedPart() throws {
        let county = SyntheticCounty(seed: 8, merchants: 400, badEvery: 0)
        var compared = 0
        var withTaxRelief = 0
        var withInsured = 0
        for (uscc, frame) in county.profiledFrames() {
            let full = try CloudEvent.parse(frame, omittingData: [])
            let lean = try CloudEvent.parse(frame, omittingData: NotifierFeeds.unreadProfileMembers)
            let kept = NotifierEngine.reportedPart(of: try #require(full.data))
            #expect(NotifierEngine.reportedPart(of: try #require(lean.data)) == kept, "\(uscc)")
            #expect(lean.data?["leases"] == nil && full.data?["leases"] != nil, "the unread members are left out")
            #expect(lean.data?["version"] != nil)
            if !(kept["tax_history"]?.arrayValue ?? []).isEmpty { withTaxRelief += 1 }
            if kept["social_insurance"]?["insured_employees"]?.intValue != nil { withInsured += 1 }
            compared += 1
        }
        #expect(compared > 300)
        #expect(withTaxRelief > 100 && withInsured > 100, "the county exercises what the report reads")
    }
}
