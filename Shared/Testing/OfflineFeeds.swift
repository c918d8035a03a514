import Models
import Registry

extension SyntheticCounty {
    /// Each registered merchant's `merchant.profiled` frame, its profile built offline from its
    /// facts as the registry builds it (for tests of what a subscriber keeps of a profile).
    public func profiledFrames() -> [(uscc: String, frame: [UInt8])] {
        (0..<merchants).compactMap { i in
            let facts = facts(of: i).compactMap { try? Fact.decode(type: $0.type, data: $0.data) }
            guard let profile = OfflineProfiles.profile(uscc: uscc(i), facts: facts) else { return nil }
            return (uscc(i), Fixtures.event("merchant.profiled", profile, subject: uscc(i)).json.serializedBytes())
        }
    }
}
