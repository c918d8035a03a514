import BangfuTesting
import Bus
import Foundation
import Models
import Testing

@Suite("Synthetic county")
struct SyntheticCountyTests {
    @Test func theOnlyRejectionsAreTheDeliberatelyBadRecords() async throws {
        let h = try Harness()
        let reg = try await h.startRegistry()
        let county = SyntheticCounty(seed: 7, merchants: 1_200, badEvery: 200)
        let events = (0..<county.merchants).flatMap { county.facts(of: $0) }
        let acks = try await reg.publish(events)
        var codes: [String: Int] = [:]
        for (e, a) in zip(events, acks) where a.status == .rejected {
            codes[a.rejection!.code.rawValue, default: 0] += 1
            if a.rejection!.code == .invalidData { Issue.record("\(e.type): \(a.rejection!)") }
        }
        // 1,200 merchants: every 200th registration has a bad check digit (6), every 600th
        // finance report negative money (when it reports), every 1,000th lease an impossible date.
        #expect(codes["invalid_uscc"] == 6)
        #expect(codes["invalid_data"] == nil)
        #expect(Set(codes.keys).isSubset(of: ["invalid_uscc", "invalid_amount", "invalid_date"]))
        // Same seed, same county.
        #expect(
            SyntheticCounty(seed: 7, merchants: 50).facts(of: 42).map { $0.serialized() } == county.facts(of: 42).map { $0.serialized() })
        await h.shutdown()
    }
}
