import Foundation
import Models

/// Deterministic test data: valid identifiers and CloudEvents for every fact type.
public struct Fixtures: Sendable, RandomNumberGenerator {
    var rng: SplitMix64

    public init(seed: UInt64 = 20_261_129) { rng = SplitMix64(seed: seed &* 0x9E37_79B9_7F4A_7C15 | 1) }

    public mutating func next() -> UInt64 { rng.next() }

    public mutating func int(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.count))
    }

    /// A valid USCC: `91` (enterprise) or `92` (individual business), the division, 9 random
    /// characters, and the check character.
    public mutating func uscc(individual: Bool = false, division: String = "411002") -> String {
        let alphabet = Array(USCC.alphabet)
        var body = (individual ? "92" : "91") + division
        for _ in 0..<9 { body.append(alphabet[Int(next() % 31)]) }
        return body + String(USCC.checkCharacter(body17: body)!)
    }

    public mutating func idNumber(division: String = "411002") -> String {
        let year = 1960 + int(0...40)
        let month = int(1...12)
        let day = int(1...28)
        var body = division + String(format: "%04d%02d%02d", year, month, day)
        for _ in 0..<3 { body.append(Character(String(int(0...9)))) }
        return body + String(ResidentID.checkCharacter(body17: body)!)
    }

    public static func event(
        _ type: String, _ data: JSON, subject: String? = nil, source: String = "/test/integrator", id: String = UUID().uuidString
    ) -> CloudEvent {
        CloudEvent(
            id: id, source: source, type: type, subject: subject, time: "2026-11-29T10:00:00+08:00",
            datacontenttype: "application/json", data: data)
    }

    public mutating func registration(
        uscc: String, name: String, kind: String = "enterprise", industry: String = "H6210", district: String = "411002",
        status: String = "active", registeredOn: String = "2019-03-01"
    ) -> CloudEvent {
        Self.event(
            "business.registered",
            [
                "uscc": .string(uscc), "name": .string(name), "kind": .string(kind),
                "legal_rep": ["name": "李四", "id_number": .string(idNumber())], "industry": .string(industry),
                "district": .string(district), "registered_on": .string(registeredOn), "status": .string(status),
            ], subject: uscc)
    }

    public static func finance(uscc: String, year: Int64 = 2021, employees: Int64, revenueFen: Int64, assetsFen: Int64) -> CloudEvent {
        event(
            "finance.reported",
            [
                "uscc": .string(uscc), "year": .int(year), "employees": .int(employees),
                "operating_revenue_fen": .int(revenueFen), "total_assets_fen": .int(assetsFen),
            ], subject: uscc)
    }

    /// A medium factory in an outbreak district, closed 2022-03-20..31 for epidemic control, with
    /// `insured` employees in 2022-03: eligible for the retention subsidy (12 days closed).
    public mutating func closedFactory(uscc: String, name: String, insured: Int64) -> [CloudEvent] {
        [
            registration(uscc: uscc, name: name),
            Self.finance(uscc: uscc, employees: 40, revenueFen: 1_000 * 1_000_000, assetsFen: 0),
            Self.socialInsurance(uscc: uscc, month: "2022-03", insured: insured),
            Self.event(
                "closure.reported",
                ["uscc": .string(uscc), "from": "2022-03-20", "to": "2022-03-31", "reason": "epidemic_control", "district": "411002"],
                subject: uscc),
        ]
    }

    public static func socialInsurance(uscc: String, month: String, insured: Int64) -> CloudEvent {
        event(
            "social_insurance.reported", ["uscc": .string(uscc), "month": .string(month), "insured_employees": .int(insured)], subject: uscc
        )
    }

    public static func lease(
        id: String, tenant: String, lessorName: String = "许昌市国有资产经营公司", lessorOwnership: String = "state_enterprise",
        subleaseOf: String? = nil, rentFen: Int64 = 300_000, from: String = "2021-01-01", to: String = "2023-12-31",
        use: String = "business"
    ) -> CloudEvent {
        event(
            "lease.registered",
            [
                "lease_id": .string(id), "tenant_uscc": .string(tenant),
                "lessor": ["name": .string(lessorName), "ownership": .string(lessorOwnership)],
                "sublease_of": subleaseOf.map { .string($0) } ?? .null, "use": .string(use), "monthly_rent_fen": .int(rentFen),
                "starts_on": .string(from), "ends_on": .string(to),
            ], subject: tenant)
    }
}
