import BangfuTesting
import Foundation
import Models
import Policy
import Registry
import Testing

/// Screening without traces must decide exactly as evaluation with traces does, for every
/// shipped policy over a synthetic county (the matcher relies on it to skip traces).
@Suite("Screening")
struct ScreeningTests {
    @Test func untracedScreeningDecidesExactlyAsTracedEvaluation() throws {
        let dir = SeedProgrammeTests.repo.appendingPathComponent("policies").path
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".yaml") }.sorted()
        #expect(files.count == 6)
        let policies = try files.map { try PolicyCompiler.compile(yaml: String(contentsOfFile: dir + "/" + $0, encoding: .utf8)) }
        let county = SyntheticCounty(seed: 5, merchants: 500, badEvery: 0)
        let application: JSON = ["submitted_on": "2022-05-01", "documents": ["a.pdf"]]
        var compared = 0
        var eligible = 0
        for i in 0..<county.merchants {
            let facts = county.facts(of: i).compactMap { try? Fact.decode(type: $0.type, data: $0.data) }
            let profile = try #require(OfflineProfiles.profile(uscc: county.uscc(i), facts: facts))
            for p in policies {
                let input = PolicyInput(merchant: profile, application: application)
                let fast = p.evaluate(input, traced: false)
                let full = p.evaluate(input, traced: true)
                #expect(fast.map(\.outcome) == full.map(\.outcome), "\(p.document.id) \(county.uscc(i))")
                #expect(fast.map(\.bindingKey) == full.map(\.bindingKey))
                #expect(fast.allSatisfy { $0.trace.clauses.isEmpty })
                compared += fast.count
                eligible += full.filter { if case .eligible = $0.outcome { return true } else { return false } }.count
            }
        }
        #expect(compared > 1_000)
        #expect(eligible > 50, "the county exercises eligible cases too")
    }

    /// The flood-relief programme pays only in the development zone (seed 篇三): the synthetic
    /// county registers the merchants the flood hit there, so the demo still has flood cases.
    @Test func theCountysFloodHitMerchantsAreInTheDevelopmentZoneAndSomeQualify() throws {
        let yaml = try SeedProgrammeTests.policyYAML("flood-relief")
        let policy = try PolicyCompiler.compile(yaml: yaml)
        let county = SyntheticCounty(seed: 5, merchants: 500, badEvery: 0)
        let application: JSON = ["submitted_on": "2021-08-01", "documents": ["a.pdf"]]
        var damaged = 0
        var eligible = 0
        for i in 0..<county.merchants {
            let facts = county.facts(of: i).compactMap { try? Fact.decode(type: $0.type, data: $0.data) }
            let profile = try #require(OfflineProfiles.profile(uscc: county.uscc(i), facts: facts))
            let hit = profile["damages"]?.arrayValue?.isEmpty == false
            if hit {
                damaged += 1
                #expect(profile["district"]?.stringValue == SyntheticCounty.developmentZone, "\(county.uscc(i))")
            }
            for d in policy.evaluate(PolicyInput(merchant: profile, application: application)) {
                if case .eligible = d.outcome { eligible += 1 }
            }
        }
        #expect(damaged > 20)
        #expect(eligible > 5, "the county has flood-relief cases in the zone")
    }
}
