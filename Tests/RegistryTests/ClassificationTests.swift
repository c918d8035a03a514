import Testing

@testable import Models
@testable import Registry

/// DESIGN §5.1, typed again independently of `Classification.sizeTable`, so that a typo in either
/// is caught. E in persons; R and A in 万元.
struct SizeRowSpec: Sendable, CustomTestStringConvertible {
    enum M: Sendable { case E, R, A }
    let sector: Sector
    /// A GB/T 4754-2017 code in this row.
    let code: String
    let sme: [(M, Int64)]
    let medium: [(M, Int64)]
    let small: [(M, Int64)]

    var testDescription: String { "\(sector.rawValue) (\(code))" }

    static let all: [SizeRowSpec] = [
        .init(sector: .agriculture, code: "A0111", sme: [(.R, 20000)], medium: [(.R, 500)], small: [(.R, 50)]),
        .init(
            sector: .industry, code: "C1391", sme: [(.E, 1000), (.R, 40000)], medium: [(.E, 300), (.R, 2000)], small: [(.E, 20), (.R, 300)]),
        .init(
            sector: .construction, code: "E4710", sme: [(.R, 80000), (.A, 80000)], medium: [(.R, 6000), (.A, 5000)],
            small: [(.R, 300), (.A, 300)]),
        .init(
            sector: .wholesale, code: "F5121", sme: [(.E, 200), (.R, 40000)], medium: [(.E, 20), (.R, 5000)], small: [(.E, 5), (.R, 1000)]),
        .init(
            sector: .retail, code: "F5211", sme: [(.E, 300), (.R, 20000)], medium: [(.E, 50), (.R, 500)], small: [(.E, 10), (.R, 100)]),
        .init(
            sector: .transport, code: "G5411", sme: [(.E, 1000), (.R, 30000)], medium: [(.E, 300), (.R, 3000)],
            small: [(.E, 20), (.R, 200)]),
        .init(
            sector: .warehousing, code: "G5920", sme: [(.E, 200), (.R, 30000)], medium: [(.E, 100), (.R, 1000)],
            small: [(.E, 20), (.R, 100)]),
        .init(
            sector: .postal, code: "G6010", sme: [(.E, 1000), (.R, 30000)], medium: [(.E, 300), (.R, 2000)], small: [(.E, 20), (.R, 100)]),
        .init(
            sector: .accommodation, code: "H6110", sme: [(.E, 300), (.R, 10000)], medium: [(.E, 100), (.R, 2000)],
            small: [(.E, 10), (.R, 100)]),
        .init(
            sector: .catering, code: "H6210", sme: [(.E, 300), (.R, 10000)], medium: [(.E, 100), (.R, 2000)], small: [(.E, 10), (.R, 100)]),
        .init(
            sector: .informationTransmission, code: "I6311", sme: [(.E, 2000), (.R, 100000)], medium: [(.E, 100), (.R, 1000)],
            small: [(.E, 10), (.R, 100)]),
        .init(
            sector: .softwareIT, code: "I6510", sme: [(.E, 300), (.R, 10000)], medium: [(.E, 100), (.R, 1000)], small: [(.E, 10), (.R, 50)]),
        .init(
            sector: .realEstateDevelopment, code: "K7010", sme: [(.R, 200000), (.A, 10000)], medium: [(.R, 1000), (.A, 5000)],
            small: [(.R, 100), (.A, 2000)]),
        .init(
            sector: .propertyManagement, code: "K7020", sme: [(.E, 1000), (.R, 5000)], medium: [(.E, 300), (.R, 1000)],
            small: [(.E, 100), (.R, 500)]),
        .init(
            sector: .leasingBusinessServices, code: "L7212", sme: [(.E, 300), (.A, 120000)], medium: [(.E, 100), (.A, 8000)],
            small: [(.E, 10), (.A, 100)]),
        .init(sector: .other, code: "O8010", sme: [(.E, 300)], medium: [(.E, 100)], small: [(.E, 10)]),
    ]

    /// Exact figures: persons, or fen (1 万元 = 1,000,000 fen).
    static func exact(_ m: M, _ v: Int64) -> Int64 { m == .E ? v : v * 1_000_000 }

    /// Finance with the given metrics (exact units) and 0 for the others.
    static func finance(_ values: [(M, Int64)]) -> Finance {
        var f = Finance(employees: 0, operatingRevenueFen: 0, totalAssetsFen: 0)
        for (m, v) in values {
            switch m {
            case .E: f.employees = v
            case .R: f.operatingRevenueFen = v
            case .A: f.totalAssetsFen = v
            }
        }
        return f
    }

    /// All thresholds exactly, with metric `i` lowered by one unit (one person or one fen) if given.
    static func at(_ thresholds: [(M, Int64)], lowering i: Int? = nil) -> Finance {
        finance(thresholds.enumerated().map { k, t in (t.0, exact(t.0, t.1) - (k == i ? 1 : 0)) })
    }

    func size(_ f: Finance) -> SizeClass {
        Classification.size(kind: "enterprise", industry: IndustryCode.parse(code)!, finance: f)
    }
}

@Suite("Enterprise size (工信部联企业〔2011〕300号)")
struct SizeTests {
    @Test func tableHasOneRowPerSector() {
        #expect(Classification.sizeTable.map(\.sector) == Sector.allCases)
        #expect(SizeRowSpec.all.map(\.sector) == Sector.allCases)
        #expect(Sector.allCases.count == 16)
    }

    @Test(arguments: SizeRowSpec.all)
    func tableMatchesTheDesign(_ spec: SizeRowSpec) {
        func convert(_ ts: [(SizeRowSpec.M, Int64)]) -> [SizeThreshold] {
            ts.map { m, v in
                switch m {
                case .E: SizeThreshold(.employees, v)
                case .R: SizeThreshold(.operatingRevenue, v)
                case .A: SizeThreshold(.totalAssets, v)
                }
            }
        }
        let row = Classification.row(for: spec.sector)
        #expect(row.ceilings == convert(spec.sme))
        #expect(row.mediumFloors == convert(spec.medium))
        #expect(row.smallFloors == convert(spec.small))
        #expect(Classification.sector(of: IndustryCode.parse(spec.code)!) == spec.sector)
    }

    @Test(arguments: SizeRowSpec.all)
    func mediumFloor(_ spec: SizeRowSpec) {
        #expect(spec.size(SizeRowSpec.at(spec.medium)) == .medium)
        for i in spec.medium.indices {
            // One person or one fen under any medium floor: small (the small floors are still met).
            #expect(spec.size(SizeRowSpec.at(spec.medium, lowering: i)) == .small, "metric \(i)")
        }
    }

    @Test(arguments: SizeRowSpec.all)
    func smallFloor(_ spec: SizeRowSpec) {
        #expect(spec.size(SizeRowSpec.at(spec.small)) == .small)
        for i in spec.small.indices {
            #expect(spec.size(SizeRowSpec.at(spec.small, lowering: i)) == .micro, "metric \(i)")
        }
        #expect(spec.size(SizeRowSpec.finance([])) == .micro)
    }

    @Test(arguments: SizeRowSpec.all)
    func ceiling(_ spec: SizeRowSpec) {
        #expect(spec.size(SizeRowSpec.at(spec.sme)) == .large)
        for i in spec.sme.indices {
            // Under any one ceiling: an SME, and medium since every medium floor is met.
            #expect(spec.size(SizeRowSpec.at(spec.sme, lowering: i)) == .medium, "metric \(i)")
        }
    }

    @Test(arguments: SizeRowSpec.all)
    func metricsOutsideTheRowAreIgnored(_ spec: SizeRowSpec) {
        let listed = Set(spec.sme.map { "\($0.0)" })
        var f = SizeRowSpec.at(spec.small)
        if !listed.contains("E") { f.employees = 1_000_000 }
        if !listed.contains("R") { f.operatingRevenueFen = 1_000_000_000_000_000 }
        if !listed.contains("A") { f.totalAssetsFen = 1_000_000_000_000_000 }
        #expect(spec.size(f) == .small)
    }

    @Test func unknownWhenFiguresAreMissing() {
        let catering = IndustryCode.parse("H6210")
        let f = Finance(employees: 50, operatingRevenueFen: 5_000_000_000, totalAssetsFen: 0)
        #expect(Classification.size(kind: "enterprise", industry: catering, finance: nil) == .unknown)
        #expect(Classification.size(kind: "enterprise", industry: nil, finance: f) == .unknown)
        #expect(Classification.size(kind: "enterprise", industry: nil, finance: nil) == .unknown)
        #expect(Classification.size(kind: "cooperative", industry: catering, finance: f) == .unknown)
        #expect(Classification.size(kind: "enterprise", industry: catering, finance: f) == .small)
    }

    @Test func individualBusinessesAreNotSized() {
        let catering = IndustryCode.parse("H6210")
        let big = Finance(employees: 5000, operatingRevenueFen: 1_000_000_000_000, totalAssetsFen: 0)
        #expect(Classification.size(kind: "individual", industry: catering, finance: big) == .individual)
        #expect(Classification.size(kind: "individual", industry: nil, finance: nil) == .individual)
    }

    @Test func handComputedCases() {
        func size(_ code: String, _ e: Int64, _ rYuan: Int64, _ aYuan: Int64 = 0) -> SizeClass {
            Classification.size(
                kind: "enterprise", industry: IndustryCode.parse(code),
                finance: Finance(employees: e, operatingRevenueFen: rYuan * 100, totalAssetsFen: aYuan * 100))
        }
        // A restaurant with 12 staff and 1.5 million yuan revenue: small (E≥10, R≥100万).
        #expect(size("H6210", 12, 1_500_000) == .small)
        // 12 staff but 999,999.99 yuan: micro.
        #expect(
            Classification.size(
                kind: "enterprise", industry: IndustryCode.parse("H6210"),
                finance: Finance(employees: 12, operatingRevenueFen: 99_999_999, totalAssetsFen: 0)) == .micro)
        // A factory with 5000 staff but revenue of 1 million yuan: an SME (R<40000万), and micro (R<300万).
        #expect(size("C1391", 5000, 1_000_000) == .micro)
        // A factory with 1000 staff and 400 million yuan: large.
        #expect(size("C1391", 1000, 400_000_000) == .large)
        // A developer with 2 billion yuan revenue but 99.99 million yuan assets: SME (A<10000万), medium.
        #expect(size("K7010", 0, 2_000_000_000, 99_990_000) == .medium)
    }
}

@Suite("Industry codes (GB/T 4754-2017)")
struct IndustryCodeTests {
    @Test(arguments: ["H62", "H621", "H6210", "A01", "A05", "T97", "K70", "C43", "S96"])
    func parsesCodes(_ s: String) throws {
        let code = try #require(IndustryCode.parse(s))
        #expect(code.code == s)
        #expect(code.description == s)
        #expect(code.section == s.first)
    }

    @Test(arguments: [
        "", "H", "H6", "H62101", "h6210", "H6X", "H 62", "H62 ", " H62", "H６２", "U99", "Z12", "62", "HH62",
        "H01", "C44", "A06", "B05", "K71", "L70", "T96", "S97", "P84", "A00",
    ])
    func rejectsNonCodes(_ s: String) {
        #expect(IndustryCode.parse(s) == nil)
    }

    @Test(arguments: [
        ("A", 1, 5), ("B", 6, 12), ("C", 13, 43), ("D", 44, 46), ("E", 47, 50), ("F", 51, 52), ("G", 53, 60),
        ("H", 61, 62), ("I", 63, 65), ("J", 66, 69), ("K", 70, 70), ("L", 71, 72), ("M", 73, 75), ("N", 76, 79),
        ("O", 80, 82), ("P", 83, 83), ("Q", 84, 85), ("R", 86, 90), ("S", 91, 96), ("T", 97, 97),
    ])
    func sectionDivisionBoundaries(_ section: String, _ first: Int, _ last: Int) {
        func code(_ d: Int) -> String { section + (d < 10 ? "0" : "") + String(d) }
        #expect(IndustryCode.parse(code(first)) != nil)
        #expect(IndustryCode.parse(code(last)) != nil)
        #expect(IndustryCode.parse(code(first - 1)) == nil)
        #expect(IndustryCode.parse(code(last + 1)) == nil)
        #expect(IndustryCode.parse(code(first))?.division == first)
    }

    @Test(arguments: [
        ("A0111", Sector.agriculture), ("A0511", .agriculture), ("B0610", .industry), ("C1310", .industry),
        ("C43", .industry), ("D4411", .industry), ("E4710", .construction), ("F51", .wholesale),
        ("F5111", .wholesale), ("F5211", .retail), ("G53", .other), ("G5310", .other), ("G5411", .transport),
        ("G55", .transport), ("G56", .transport), ("G57", .transport), ("G5810", .transport),
        ("G59", .warehousing), ("G5910", .warehousing), ("G60", .postal), ("G6020", .postal),
        ("H61", .accommodation), ("H6110", .accommodation), ("H62", .catering), ("H6210", .catering),
        ("I63", .informationTransmission), ("I6410", .informationTransmission), ("I65", .softwareIT),
        ("I6510", .softwareIT), ("K70", .other), ("K701", .realEstateDevelopment),
        ("K7010", .realEstateDevelopment), ("K702", .propertyManagement), ("K7020", .propertyManagement),
        ("K7030", .other), ("K7040", .other), ("K7090", .other), ("L7111", .leasingBusinessServices),
        ("L7291", .leasingBusinessServices), ("J6620", .other), ("M7310", .other), ("N7860", .other),
        ("O8010", .other), ("P8310", .other), ("Q8411", .other), ("R8760", .other), ("S9100", .other),
        ("T9700", .other),
    ])
    func sectorMapping(_ code: String, _ sector: Sector) {
        #expect(Classification.sector(of: IndustryCode.parse(code)!) == sector)
    }

    @Test func sectorRawValues() {
        #expect(
            Sector.allCases.map(\.rawValue) == [
                "agriculture", "industry", "construction", "wholesale", "retail", "transport", "warehousing", "postal",
                "accommodation", "catering", "information_transmission", "software_it", "real_estate_development",
                "property_management", "leasing_business_services", "other",
            ])
        #expect(SizeClass.medium.rawValue == "medium")
    }

    @Test(arguments: [
        ("A0511", true), ("A05", true), ("A0111", false), ("A04", false), ("B1110", true), ("B1200", false),
        ("B0610", false), ("C4310", true), ("C4210", false), ("C1310", false), ("D4411", false),
        ("E4710", false), ("E50", false), ("F5211", true), ("F51", true), ("G5310", true), ("H6210", true),
        ("K7010", true), ("O8040", true), ("S9100", true), ("T9700", true),
    ])
    func serviceIndustry(_ code: String, _ expected: Bool) {
        #expect(Classification.serviceIndustry(IndustryCode.parse(code)!) == expected)
    }

    @Test(arguments: [
        ("H61", true), ("H6110", true), ("H6210", true), ("H6291", true), ("L7291", true), ("N786", true),
        ("N7860", true), ("P83", true), ("P8310", true), ("P8391", true), ("O801", true), ("O8010", true),
        ("R876", true), ("R8760", true), ("R882", true), ("R8820", true), ("O804", true), ("O8040", true),
        ("L7292", false), ("L729", false), ("L72", false), ("N785", false), ("N78", false), ("O8020", false),
        ("O80", false), ("R8810", false), ("R87", false), ("R8750", false), ("C1310", false), ("I6510", false),
        ("F5211", false),
    ])
    func prioritySector(_ code: String, _ expected: Bool) {
        #expect(Classification.prioritySector(IndustryCode.parse(code)!) == expected)
    }

    @Test func everyPriorityPrefixIsAValidCodeAndAServiceIndustry() {
        for (prefix, _) in Classification.priorityCodes {
            let code = IndustryCode.parse(prefix)
            #expect(code != nil, "\(prefix)")
            if let code { #expect(Classification.serviceIndustry(code), "\(prefix)") }
        }
        for (prefix, _) in Classification.tertiaryOutsideFtoT {
            #expect(IndustryCode.parse(prefix) != nil, "\(prefix)")
        }
    }
}
