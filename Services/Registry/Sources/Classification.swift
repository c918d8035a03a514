import Models

// Enterprise size and sector tagging (DESIGN §5.1).
//
// Sources:
// - 中小企业划型标准规定, 工信部联企业〔2011〕300号 (MIIT 2011 SME size standard): the size table.
// - GB/T 4754-2017 国民经济行业分类: industry codes (section letter + 2–4 digit code).
// - 国家统计局《三次产业划分规定》(2018): which codes are tertiary (service) industry.
//
// All comparisons are exact integer comparisons in fen (1 万元 = 1,000,000 fen) and persons.

/// An enterprise's size class as published in `merchant.profiled` `tags.size`.
public enum SizeClass: String, Sendable, Codable, CaseIterable {
    case large, medium, small, micro, individual, unknown
}

/// The rows of the MIIT 2011 size table (`tags.sector`).
public enum Sector: String, Sendable, Codable, CaseIterable {
    case agriculture
    case industry
    case construction
    case wholesale
    case retail
    case transport
    case warehousing
    case postal
    case accommodation
    case catering
    case informationTransmission = "information_transmission"
    case softwareIT = "software_it"
    case realEstateDevelopment = "real_estate_development"
    case propertyManagement = "property_management"
    case leasingBusinessServices = "leasing_business_services"
    case other
}

// MARK: - Industry codes

/// A GB/T 4754-2017 industry code: a section letter A–T followed by the 2-digit division, the
/// 3-digit group or the 4-digit class (e.g. `"H62"`, `"H621"`, `"H6210"`).
public struct IndustryCode: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The section letter, "A" … "T".
    public let section: Character
    /// The 2, 3 or 4 digits after the letter.
    public let digits: String

    /// Which divisions each section holds in GB/T 4754-2017.
    public static let sectionDivisions: [Character: ClosedRange<Int>] = [
        "A": 1...5, "B": 6...12, "C": 13...43, "D": 44...46, "E": 47...50,
        "F": 51...52, "G": 53...60, "H": 61...62, "I": 63...65, "J": 66...69,
        "K": 70...70, "L": 71...72, "M": 73...75, "N": 76...79, "O": 80...82,
        "P": 83...83, "Q": 84...85, "R": 86...90, "S": 91...96, "T": 97...97,
    ]

    /// Strict: uppercase section letter, 2–4 ASCII digits, and the division must belong to the section.
    public static func parse(_ s: String) -> IndustryCode? {
        let chars = Array(s)
        guard (3...5).contains(chars.count), let letter = chars.first, let range = sectionDivisions[letter] else {
            return nil
        }
        let rest = chars.dropFirst()
        guard rest.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        let digits = String(rest)
        guard let division = Int(digits.prefix(2)), range.contains(division) else { return nil }
        return IndustryCode(section: letter, digits: digits)
    }

    private init(section: Character, digits: String) {
        self.section = section
        self.digits = digits
    }

    /// The 2-digit division (大类) as a number, e.g. 62 for `"H6210"`.
    public var division: Int { Int(digits.prefix(2))! }

    /// The code as written, e.g. `"H6210"`.
    public var code: String { String(section) + digits }

    public var description: String { code }

    /// Whether this code is `prefix` or lies under it (e.g. `"K7010"` under `"K701"`).
    /// A less specific code does not lie under a more specific prefix: `"K70"` is not under `"K701"`.
    public func isWithin(_ prefix: String) -> Bool { code.hasPrefix(prefix) }

    public static func < (a: IndustryCode, b: IndustryCode) -> Bool { a.code < b.code }
}

// MARK: - The size table

/// What a size threshold measures.
public enum SizeMetric: String, Sendable, Codable, CaseIterable {
    /// E: employees (persons).
    case employees
    /// R: operating revenue (营业收入), threshold in 万元.
    case operatingRevenue = "operating_revenue"
    /// A: total assets (资产总额), threshold in 万元.
    case totalAssets = "total_assets"
}

/// One threshold: persons for employees, 万元 for revenue and assets.
public struct SizeThreshold: Sendable, Hashable, CustomStringConvertible {
    public let metric: SizeMetric
    /// Persons, or 万元.
    public let value: Int64

    public init(_ metric: SizeMetric, _ value: Int64) {
        self.metric = metric
        self.value = value
    }

    /// The threshold in the unit of `Finance`: persons, or fen.
    public var exactValue: Int64 {
        metric == .employees ? value : value * Classification.fenPerWan
    }

    /// `finance`'s figure for this metric is at or above the threshold.
    public func isMet(by finance: Finance) -> Bool { finance.value(of: metric) >= exactValue }

    public var description: String {
        switch metric {
        case .employees: "E≥\(value)"
        case .operatingRevenue: "R≥\(value)万元"
        case .totalAssets: "A≥\(value)万元"
        }
    }
}

/// One row of the MIIT 2011 table.
public struct SizeRow: Sendable, Hashable {
    public let sector: Sector
    /// SME if **any** of these is under its value; large if all are at or above.
    public let ceilings: [SizeThreshold]
    /// Medium if **every** one of these is met.
    public let mediumFloors: [SizeThreshold]
    /// Small if **every** one of these is met (and not medium); otherwise micro.
    public let smallFloors: [SizeThreshold]
}

/// The figures sizing needs: employees, and operating revenue and total assets in fen.
public struct Finance: Sendable, Hashable {
    public var employees: Int64
    public var operatingRevenueFen: Int64
    public var totalAssetsFen: Int64

    public init(employees: Int64, operatingRevenueFen: Int64, totalAssetsFen: Int64) {
        self.employees = employees
        self.operatingRevenueFen = operatingRevenueFen
        self.totalAssetsFen = totalAssetsFen
    }

    public func value(of metric: SizeMetric) -> Int64 {
        switch metric {
        case .employees: employees
        case .operatingRevenue: operatingRevenueFen
        case .totalAssets: totalAssetsFen
        }
    }
}

public enum Classification {
    /// 1 万元 = 10,000 yuan = 1,000,000 fen.
    public static let fenPerWan: Int64 = 1_000_000

    private static func E(_ v: Int64) -> SizeThreshold { SizeThreshold(.employees, v) }
    private static func R(_ v: Int64) -> SizeThreshold { SizeThreshold(.operatingRevenue, v) }
    private static func A(_ v: Int64) -> SizeThreshold { SizeThreshold(.totalAssets, v) }

    /// DESIGN §5.1, one row per sector, exactly as 工信部联企业〔2011〕300号 lists it.
    /// E in persons; R and A in 万元.
    public static let sizeTable: [SizeRow] = [
        //                                  SME if (any <)         medium (all ≥)          small (all ≥)
        SizeRow(sector: .agriculture, ceilings: [R(20000)], mediumFloors: [R(500)], smallFloors: [R(50)]),
        SizeRow(sector: .industry, ceilings: [E(1000), R(40000)], mediumFloors: [E(300), R(2000)], smallFloors: [E(20), R(300)]),
        SizeRow(sector: .construction, ceilings: [R(80000), A(80000)], mediumFloors: [R(6000), A(5000)], smallFloors: [R(300), A(300)]),
        SizeRow(sector: .wholesale, ceilings: [E(200), R(40000)], mediumFloors: [E(20), R(5000)], smallFloors: [E(5), R(1000)]),
        SizeRow(sector: .retail, ceilings: [E(300), R(20000)], mediumFloors: [E(50), R(500)], smallFloors: [E(10), R(100)]),
        SizeRow(sector: .transport, ceilings: [E(1000), R(30000)], mediumFloors: [E(300), R(3000)], smallFloors: [E(20), R(200)]),
        SizeRow(sector: .warehousing, ceilings: [E(200), R(30000)], mediumFloors: [E(100), R(1000)], smallFloors: [E(20), R(100)]),
        SizeRow(sector: .postal, ceilings: [E(1000), R(30000)], mediumFloors: [E(300), R(2000)], smallFloors: [E(20), R(100)]),
        SizeRow(sector: .accommodation, ceilings: [E(300), R(10000)], mediumFloors: [E(100), R(2000)], smallFloors: [E(10), R(100)]),
        SizeRow(sector: .catering, ceilings: [E(300), R(10000)], mediumFloors: [E(100), R(2000)], smallFloors: [E(10), R(100)]),
        SizeRow(
            sector: .informationTransmission, ceilings: [E(2000), R(100000)], mediumFloors: [E(100), R(1000)], smallFloors: [E(10), R(100)]),
        SizeRow(sector: .softwareIT, ceilings: [E(300), R(10000)], mediumFloors: [E(100), R(1000)], smallFloors: [E(10), R(50)]),
        SizeRow(
            sector: .realEstateDevelopment, ceilings: [R(200000), A(10000)], mediumFloors: [R(1000), A(5000)],
            smallFloors: [R(100), A(2000)]),
        SizeRow(
            sector: .propertyManagement, ceilings: [E(1000), R(5000)], mediumFloors: [E(300), R(1000)], smallFloors: [E(100), R(500)]),
        SizeRow(
            sector: .leasingBusinessServices, ceilings: [E(300), A(120000)], mediumFloors: [E(100), A(8000)], smallFloors: [E(10), A(100)]),
        SizeRow(sector: .other, ceilings: [E(300)], mediumFloors: [E(100)], smallFloors: [E(10)]),
    ]

    private static let rowsBySector: [Sector: SizeRow] = Dictionary(
        uniqueKeysWithValues: sizeTable.map { ($0.sector, $0) })

    public static func row(for sector: Sector) -> SizeRow { rowsBySector[sector]! }

    /// The size-table row of an industry code:
    ///
    /// | code | sector |
    /// |---|---|
    /// | A | agriculture |
    /// | B, C, D | industry |
    /// | E | construction |
    /// | F51 / F52 | wholesale / retail |
    /// | G53 (rail: not covered by the 2011 standard) | other |
    /// | G59 / G60 | warehousing / postal |
    /// | other G (G54–G58) | transport |
    /// | H61 / H62 | accommodation / catering |
    /// | I63, I64 / I65 | information_transmission / software_it |
    /// | K701… / K702… | real_estate_development / property_management |
    /// | L | leasing_business_services |
    /// | everything else (J, other K, M–T) | other |
    ///
    /// A bare `"K70"` (no group digit) cannot be told apart and maps to `other`.
    public static func sector(of code: IndustryCode) -> Sector {
        switch code.section {
        case "A": return .agriculture
        case "B", "C", "D": return .industry
        case "E": return .construction
        case "F": return code.division == 51 ? .wholesale : .retail
        case "G":
            switch code.division {
            case 53: return .other
            case 59: return .warehousing
            case 60: return .postal
            default: return .transport
            }
        case "H": return code.division == 61 ? .accommodation : .catering
        case "I": return code.division == 65 ? .softwareIT : .informationTransmission
        case "K":
            if code.isWithin("K701") { return .realEstateDevelopment }
            if code.isWithin("K702") { return .propertyManagement }
            return .other
        case "L": return .leasingBusinessServices
        default: return .other
        }
    }

    /// The size tag. `kind` is `"enterprise"` or `"individual"` (个体工商户 are not sized);
    /// any other kind, a missing industry or missing finance figures give `.unknown` (never `.micro`).
    public static func size(kind: String, industry: IndustryCode?, finance: Finance?) -> SizeClass {
        if kind == "individual" { return .individual }
        guard kind == "enterprise", let industry, let finance else { return .unknown }
        return size(sector: sector(of: industry), finance: finance)
    }

    /// Large unless some ceiling metric is under its ceiling; then medium if every medium floor is
    /// met, small if every small floor is met, otherwise micro.
    public static func size(sector: Sector, finance: Finance) -> SizeClass {
        let row = row(for: sector)
        if row.ceilings.allSatisfy({ $0.isMet(by: finance) }) { return .large }
        if row.mediumFloors.allSatisfy({ $0.isMet(by: finance) }) { return .medium }
        if row.smallFloors.allSatisfy({ $0.isMet(by: finance) }) { return .small }
        return .micro
    }

    // MARK: Service industry and priority sectors

    /// Outside sections F–T, the divisions that 《三次产业划分规定》(2018) counts as tertiary.
    public static let tertiaryOutsideFtoT: [(prefix: String, label: String)] = [
        ("A05", "农、林、牧、渔专业及辅助性活动 (agricultural services)"),
        ("B11", "开采专业及辅助性活动 (mining auxiliary activities)"),
        ("C43", "金属制品、机械和设备修理业 (repair of metal products, machinery and equipment)"),
    ]

    /// Tertiary industry (第三产业) per 国家统计局《三次产业划分规定》(2018): sections F–T, plus
    /// A05, B11 and C43.
    public static func serviceIndustry(_ code: IndustryCode) -> Bool {
        if ("F"..."T").contains(code.section) { return true }
        return tertiaryOutsideFtoT.contains { code.isWithin($0.prefix) }
    }

    /// The seed's priority sectors (餐饮、住宿、旅游、教育培训、家政、影院剧场、美容美发) as
    /// GB/T 4754-2017 codes. A merchant's code is priority if it lies under one of these prefixes;
    /// a less specific code (e.g. `"L72"`) is not, as it may be some other business.
    /// Operators: check this table against the programme text before each round.
    public static let priorityCodes: [(prefix: String, label: String)] = [
        ("H61", "住宿业 accommodation"),
        ("H62", "餐饮业 catering"),
        ("L7291", "旅行社及相关服务 travel agencies (tourism)"),
        ("N786", "游览景区管理 scenic-area management (tourism)"),
        ("P83", "教育 education and training"),
        ("O801", "家庭服务 housekeeping (家政)"),
        ("R876", "电影放映 cinemas"),
        ("R882", "艺术表演场馆 theatres (group 882 holds only class 8820)"),
        ("O804", "理发及美容服务 hairdressing and beauty"),
    ]

    public static func prioritySector(_ code: IndustryCode) -> Bool {
        priorityCodes.contains { code.isWithin($0.prefix) }
    }
}
