import Models

// Typed, validated decoding of the registry's fact types (DESIGN §4), one struct per type.
//
// Every rule throws a `Rejection` whose `field` is the JSON path (`data.legal_rep.id_number`,
// `data.evidence[2]`):
// - a required field missing, or any field of the wrong JSON type → `invalid_data`
//   (money fields excepted: anything but a JSON integer in 0...10^15 is `invalid_amount`);
// - USCC → `invalid_uscc`; resident ID number → `invalid_id_number`;
// - a date/month string that is malformed or not a real date, or a range whose end precedes its
//   start → `invalid_date` (on the end field);
// - strings are trimmed and must then be non-empty; names are at most 200 characters;
//   enumerations must be one of the listed values.
// Optional fields may be absent or `null`. Unknown extra members are ignored.
// `json` renders a fact back with the same member names; absent optionals are rendered as `null`.

// MARK: - Enumerations

public enum BusinessKind: String, Sendable, Codable, CaseIterable { case enterprise, individual }

public enum BusinessStatus: String, Sendable, Codable, CaseIterable { case active, suspended, deregistered }

public enum TaxpayerClass: String, Sendable, Codable, CaseIterable {
    case smallScale = "small_scale"
    case general
}

public enum LessorOwnership: String, Sendable, Codable, CaseIterable {
    case stateEnterprise = "state_enterprise"
    case government
    case `private`
}

/// The administrative level of a state or government owner.
public enum AdministrativeLevel: String, Sendable, Codable, CaseIterable {
    case central, provincial, city, district, county
}

public enum LeaseUse: String, Sendable, Codable, CaseIterable {
    case business, residential, office, industrial, warehouse, other
}

public enum ClosureReason: String, Sendable, Codable, CaseIterable {
    case epidemicControl = "epidemic_control"
    case disaster, other
}

public enum CreditList: String, Sendable, Codable, CaseIterable {
    case abnormalOperation = "abnormal_operation"
    case seriousViolation = "serious_violation"
    case dishonestDebtor = "dishonest_debtor"
}

// MARK: - Fact payloads

/// Common shape of the decoded `data` of a fact.
public protocol FactPayload: Sendable, Equatable {
    /// The merchant the fact is about.
    var uscc: String { get }
    /// The fact rendered back as `data`, with the wire member names.
    var json: JSON { get }
}

public struct LegalRepresentative: Sendable, Equatable {
    public var name: String
    public var idNumber: String
    public init(name: String, idNumber: String) {
        self.name = name
        self.idNumber = idNumber
    }
    public var json: JSON { ["name": .string(name), "id_number": .string(idNumber)] }
}

/// `business.registered`
public struct BusinessRegistered: FactPayload {
    public var uscc: String
    public var name: String
    public var kind: BusinessKind
    public var legalRep: LegalRepresentative
    public var industry: IndustryCode
    /// 6-digit administrative division code.
    public var district: String
    public var registeredOn: CivilDate
    public var status: BusinessStatus
    public var phone: String?
    public var address: String?

    public init(
        uscc: String, name: String, kind: BusinessKind, legalRep: LegalRepresentative, industry: IndustryCode, district: String,
        registeredOn: CivilDate, status: BusinessStatus, phone: String? = nil, address: String? = nil
    ) {
        self.uscc = uscc
        self.name = name
        self.kind = kind
        self.legalRep = legalRep
        self.industry = industry
        self.district = district
        self.registeredOn = registeredOn
        self.status = status
        self.phone = phone
        self.address = address
    }

    public var json: JSON {
        [
            "uscc": .string(uscc), "name": .string(name), "kind": .string(kind.rawValue),
            "legal_rep": legalRep.json, "industry": .string(industry.code), "district": .string(district),
            "registered_on": .string(registeredOn.description), "status": .string(status.rawValue),
            "phone": phone.map(JSON.string) ?? .null, "address": address.map(JSON.string) ?? .null,
        ]
    }
}

/// `business.status_changed`
public struct BusinessStatusChanged: FactPayload {
    public var uscc: String
    public var status: BusinessStatus
    public var on: CivilDate

    public init(uscc: String, status: BusinessStatus, on: CivilDate) {
        self.uscc = uscc
        self.status = status
        self.on = on
    }

    public var json: JSON {
        ["uscc": .string(uscc), "status": .string(status.rawValue), "on": .string(on.description)]
    }
}

/// `finance.reported`
public struct FinanceReported: FactPayload {
    public var uscc: String
    public var year: Int
    public var employees: Int64
    public var operatingRevenueFen: Int64
    public var totalAssetsFen: Int64

    /// The figures for sizing (§5.1).
    public init(uscc: String, year: Int, employees: Int64, operatingRevenueFen: Int64, totalAssetsFen: Int64) {
        self.uscc = uscc
        self.year = year
        self.employees = employees
        self.operatingRevenueFen = operatingRevenueFen
        self.totalAssetsFen = totalAssetsFen
    }

    public var finance: Finance {
        Finance(employees: employees, operatingRevenueFen: operatingRevenueFen, totalAssetsFen: totalAssetsFen)
    }

    public var json: JSON {
        [
            "uscc": .string(uscc), "year": .int(Int64(year)), "employees": .int(employees),
            "operating_revenue_fen": .int(operatingRevenueFen), "total_assets_fen": .int(totalAssetsFen),
        ]
    }
}

/// `tax.period_reported`
public struct TaxPeriodReported: FactPayload {
    public var uscc: String
    public var period: YearMonth
    public var revenueFen: Int64
    public var taxpayerClass: TaxpayerClass
    public var taxPaidFen: Int64
    public var taxReliefFen: Int64

    public init(uscc: String, period: YearMonth, revenueFen: Int64, taxpayerClass: TaxpayerClass, taxPaidFen: Int64, taxReliefFen: Int64) {
        self.uscc = uscc
        self.period = period
        self.revenueFen = revenueFen
        self.taxpayerClass = taxpayerClass
        self.taxPaidFen = taxPaidFen
        self.taxReliefFen = taxReliefFen
    }

    public var json: JSON {
        [
            "uscc": .string(uscc), "period": .string(period.description), "revenue_fen": .int(revenueFen),
            "taxpayer_class": .string(taxpayerClass.rawValue), "tax_paid_fen": .int(taxPaidFen),
            "tax_relief_fen": .int(taxReliefFen),
        ]
    }
}

/// `social_insurance.reported`
public struct SocialInsuranceReported: FactPayload {
    public var uscc: String
    public var month: YearMonth
    public var insuredEmployees: Int64

    public init(uscc: String, month: YearMonth, insuredEmployees: Int64) {
        self.uscc = uscc
        self.month = month
        self.insuredEmployees = insuredEmployees
    }

    public var json: JSON {
        ["uscc": .string(uscc), "month": .string(month.description), "insured_employees": .int(insuredEmployees)]
    }
}

public struct Lessor: Sendable, Equatable {
    public var name: String
    /// `nil` for natural-person lessors.
    public var uscc: String?
    public var ownership: LessorOwnership
    public var level: AdministrativeLevel?

    public init(name: String, uscc: String? = nil, ownership: LessorOwnership, level: AdministrativeLevel? = nil) {
        self.name = name
        self.uscc = uscc
        self.ownership = ownership
        self.level = level
    }

    public var json: JSON {
        [
            "name": .string(name), "uscc": uscc.map(JSON.string) ?? .null,
            "ownership": .string(ownership.rawValue), "level": level.map { JSON.string($0.rawValue) } ?? .null,
        ]
    }
}

/// `lease.registered`
public struct LeaseRegistered: FactPayload {
    public var leaseId: String
    public var tenantUSCC: String
    public var lessor: Lessor
    /// The `lease_id` of the lease this one sublets, if any.
    public var subleaseOf: String?
    public var use: LeaseUse
    public var monthlyRentFen: Int64
    public var startsOn: CivilDate
    public var endsOn: CivilDate

    public init(
        leaseId: String, tenantUSCC: String, lessor: Lessor, subleaseOf: String? = nil, use: LeaseUse, monthlyRentFen: Int64,
        startsOn: CivilDate, endsOn: CivilDate
    ) {
        self.leaseId = leaseId
        self.tenantUSCC = tenantUSCC
        self.lessor = lessor
        self.subleaseOf = subleaseOf
        self.use = use
        self.monthlyRentFen = monthlyRentFen
        self.startsOn = startsOn
        self.endsOn = endsOn
    }

    public var uscc: String { tenantUSCC }

    public var json: JSON {
        [
            "lease_id": .string(leaseId), "tenant_uscc": .string(tenantUSCC), "lessor": lessor.json,
            "sublease_of": subleaseOf.map(JSON.string) ?? .null, "use": .string(use.rawValue),
            "monthly_rent_fen": .int(monthlyRentFen), "starts_on": .string(startsOn.description),
            "ends_on": .string(endsOn.description),
        ]
    }
}

/// `closure.reported`
public struct ClosureReported: FactPayload {
    public var uscc: String
    public var from: CivilDate
    public var to: CivilDate
    public var reason: ClosureReason
    public var district: String

    /// Days closed, both ends included.
    public init(uscc: String, from: CivilDate, to: CivilDate, reason: ClosureReason, district: String) {
        self.uscc = uscc
        self.from = from
        self.to = to
        self.reason = reason
        self.district = district
    }

    public var days: Int { CivilDate.daysInclusive(from: from, to: to) }

    public var json: JSON {
        [
            "uscc": .string(uscc), "from": .string(from.description), "to": .string(to.description),
            "reason": .string(reason.rawValue), "district": .string(district),
        ]
    }
}

/// `damage.reported`
public struct DamageReported: FactPayload {
    public var uscc: String
    /// e.g. `flood-2021-07`.
    public var event: String
    public var lossFen: Int64
    /// Document references.
    public var evidence: [String]

    public init(uscc: String, event: String, lossFen: Int64, evidence: [String]) {
        self.uscc = uscc
        self.event = event
        self.lossFen = lossFen
        self.evidence = evidence
    }

    public var json: JSON {
        [
            "uscc": .string(uscc), "event": .string(event), "loss_fen": .int(lossFen),
            "evidence": .array(evidence.map(JSON.string)),
        ]
    }
}

/// `credit.flagged` and `credit.cleared`
public struct CreditFlag: FactPayload {
    public var uscc: String
    public var list: CreditList
    public var since: CivilDate

    public init(uscc: String, list: CreditList, since: CivilDate) {
        self.uscc = uscc
        self.list = list
        self.since = since
    }

    public var json: JSON {
        ["uscc": .string(uscc), "list": .string(list.rawValue), "since": .string(since.description)]
    }
}

/// `account.verified`
public struct AccountVerified: FactPayload {
    public var uscc: String
    public var bank: String
    /// Digits only (spaces removed).
    public var accountNo: String
    public var holderName: String
    public var verifiedOn: CivilDate

    public init(uscc: String, bank: String, accountNo: String, holderName: String, verifiedOn: CivilDate) {
        self.uscc = uscc
        self.bank = bank
        self.accountNo = accountNo
        self.holderName = holderName
        self.verifiedOn = verifiedOn
    }

    public var json: JSON {
        [
            "uscc": .string(uscc), "bank": .string(bank), "account_no": .string(accountNo),
            "holder_name": .string(holderName), "verified_on": .string(verifiedOn.description),
        ]
    }
}

/// `aid.received`
public struct AidReceived: FactPayload {
    public var uscc: String
    public var programme: String
    public var source: String
    public var amountFen: Int64
    public var on: CivilDate

    public init(uscc: String, programme: String, source: String, amountFen: Int64, on: CivilDate) {
        self.uscc = uscc
        self.programme = programme
        self.source = source
        self.amountFen = amountFen
        self.on = on
    }

    public var json: JSON {
        [
            "uscc": .string(uscc), "programme": .string(programme), "source": .string(source),
            "amount_fen": .int(amountFen), "on": .string(on.description),
        ]
    }
}

/// `fraud.confirmed`
public struct FraudConfirmed: FactPayload {
    public var uscc: String
    public var finding: String
    public var confirmedBy: String

    public init(uscc: String, finding: String, confirmedBy: String) {
        self.uscc = uscc
        self.finding = finding
        self.confirmedBy = confirmedBy
    }

    public var json: JSON {
        ["uscc": .string(uscc), "finding": .string(finding), "confirmed_by": .string(confirmedBy)]
    }
}

// MARK: - The entry point

/// One decoded registry fact.
public enum Fact: Sendable, Equatable {
    case registered(BusinessRegistered)
    case statusChanged(BusinessStatusChanged)
    case finance(FinanceReported)
    case tax(TaxPeriodReported)
    case socialInsurance(SocialInsuranceReported)
    case lease(LeaseRegistered)
    case closure(ClosureReported)
    case damage(DamageReported)
    case creditFlagged(CreditFlag)
    case creditCleared(CreditFlag)
    case accountVerified(AccountVerified)
    case aidReceived(AidReceived)
    case fraudConfirmed(FraudConfirmed)

    /// The CloudEvents `type`s the registry takes (the 12 rows of DESIGN §4; credit has two types).
    public static let types: [String] = [
        "business.registered", "business.status_changed", "finance.reported", "tax.period_reported",
        "social_insurance.reported", "lease.registered", "closure.reported", "damage.reported",
        "credit.flagged", "credit.cleared", "account.verified", "aid.received", "fraud.confirmed",
    ]

    /// Validates and decodes `data` of an event of `type`.
    /// Throws `unknown_type` for a type not in `types`, `invalid_data` (field `data`) if `data` is
    /// missing or not an object, or the rule's code and field.
    public static func decode(type: String, data: JSON?) throws(Rejection) -> Fact {
        guard types.contains(type) else {
            throw Rejection(.unknownType, field: "type", "the registry takes no events of type \"\(type.prefix(80))\"")
        }
        guard let data else { throw Rejection(.invalidData, field: "data", "data is required for \(type)") }
        guard case .object(let object) = data else {
            throw Rejection(.invalidData, field: "data", "data must be a JSON object, got \(data.kindName)")
        }
        let r = FactDataReader(object: object, path: "data")
        switch type {
        case "business.registered": return .registered(try r.businessRegistered())
        case "business.status_changed":
            return .statusChanged(
                BusinessStatusChanged(uscc: try r.uscc("uscc"), status: try r.choice("status"), on: try r.date("on")))
        case "finance.reported":
            return .finance(
                FinanceReported(
                    uscc: try r.uscc("uscc"), year: try r.year("year"), employees: try r.count("employees"),
                    operatingRevenueFen: try r.money("operating_revenue_fen"),
                    totalAssetsFen: try r.money("total_assets_fen")))
        case "tax.period_reported":
            return .tax(
                TaxPeriodReported(
                    uscc: try r.uscc("uscc"), period: try r.month("period"), revenueFen: try r.money("revenue_fen"),
                    taxpayerClass: try r.choice("taxpayer_class"), taxPaidFen: try r.money("tax_paid_fen"),
                    taxReliefFen: try r.money("tax_relief_fen")))
        case "social_insurance.reported":
            return .socialInsurance(
                SocialInsuranceReported(
                    uscc: try r.uscc("uscc"), month: try r.month("month"),
                    insuredEmployees: try r.count("insured_employees")))
        case "lease.registered": return .lease(try r.leaseRegistered())
        case "closure.reported":
            let uscc = try r.uscc("uscc")
            let from = try r.date("from")
            let to = try r.date("to")
            guard to >= from else {
                throw Rejection(.invalidDate, field: r.path("to"), "to \(to) is before from \(from)")
            }
            return .closure(
                ClosureReported(
                    uscc: uscc, from: from, to: to, reason: try r.choice("reason"), district: try r.district("district")))
        case "damage.reported":
            return .damage(
                DamageReported(
                    uscc: try r.uscc("uscc"), event: try r.string("event", maxLength: 64),
                    lossFen: try r.money("loss_fen"),
                    evidence: try r.stringArray(
                        "evidence", maxItems: FactDataReader.maxEvidenceItems, maxLength: FactDataReader.maxEvidenceLength)))
        case "credit.flagged": return .creditFlagged(try r.creditFlag())
        case "credit.cleared": return .creditCleared(try r.creditFlag())
        case "account.verified":
            return .accountVerified(
                AccountVerified(
                    uscc: try r.uscc("uscc"), bank: try r.string("bank"), accountNo: try r.accountNumber("account_no"),
                    holderName: try r.string("holder_name", maxLength: FactDataReader.maxNameLength),
                    verifiedOn: try r.date("verified_on")))
        case "aid.received":
            return .aidReceived(
                AidReceived(
                    uscc: try r.uscc("uscc"), programme: try r.string("programme"), source: try r.string("source"),
                    amountFen: try r.money("amount_fen"), on: try r.date("on")))
        case "fraud.confirmed":
            return .fraudConfirmed(
                FraudConfirmed(
                    uscc: try r.uscc("uscc"), finding: try r.string("finding"),
                    confirmedBy: try r.string("confirmed_by")))
        default:
            throw Rejection(.unknownType, field: "type", "the registry takes no events of type \"\(type.prefix(80))\"")
        }
    }

    /// The CloudEvents type of this fact.
    public var type: String {
        switch self {
        case .registered: "business.registered"
        case .statusChanged: "business.status_changed"
        case .finance: "finance.reported"
        case .tax: "tax.period_reported"
        case .socialInsurance: "social_insurance.reported"
        case .lease: "lease.registered"
        case .closure: "closure.reported"
        case .damage: "damage.reported"
        case .creditFlagged: "credit.flagged"
        case .creditCleared: "credit.cleared"
        case .accountVerified: "account.verified"
        case .aidReceived: "aid.received"
        case .fraudConfirmed: "fraud.confirmed"
        }
    }

    public var payload: any FactPayload {
        switch self {
        case .registered(let f): f
        case .statusChanged(let f): f
        case .finance(let f): f
        case .tax(let f): f
        case .socialInsurance(let f): f
        case .lease(let f): f
        case .closure(let f): f
        case .damage(let f): f
        case .creditFlagged(let f): f
        case .creditCleared(let f): f
        case .accountVerified(let f): f
        case .aidReceived(let f): f
        case .fraudConfirmed(let f): f
        }
    }

    /// The merchant the fact is about (for a lease, the tenant).
    public var uscc: String { payload.uscc }

    /// The fact rendered back as `data`.
    public var json: JSON { payload.json }
}

// MARK: - Reading

/// Reads the members of one JSON object, naming each failure by its path.
struct FactDataReader {
    static let maxNameLength = 200
    /// Any other free text (a bank's name, a finding, a programme): every string a fact carries
    /// is bounded, so that no fact can grow a merchant's profile past what the feed can carry.
    static let maxTextLength = 1_000
    /// `damage.reported`'s `evidence`: at most this many references of at most this length.
    static let maxEvidenceItems = 32
    static let maxEvidenceLength = 500
    static let maxAmountFen: Int64 = 1_000_000_000_000_000

    let object: JSONObject
    let prefix: String

    init(object: JSONObject, path: String) {
        self.object = object
        self.prefix = path
    }

    func path(_ key: String) -> String { prefix + "." + key }

    private func invalid(_ key: String, _ message: String) -> Rejection {
        Rejection(.invalidData, field: path(key), message)
    }

    /// The member, or `invalid_data` if it is missing.
    func required(_ key: String) throws(Rejection) -> JSON {
        guard let v = object[key] else { throw invalid(key, "\(key) is required") }
        return v
    }

    /// The member, or `nil` if it is missing or `null`.
    func optional(_ key: String) -> JSON? {
        guard let v = object[key], !v.isNull else { return nil }
        return v
    }

    private func rawString(_ key: String, _ v: JSON, what: String = "a string") throws(Rejection) -> String {
        guard case .string(let s) = v else { throw invalid(key, "\(key) must be \(what), got \(v.kindName)") }
        return s
    }

    private func checkedText(_ key: String, _ s: String, maxLength: Int?) throws(Rejection) -> String {
        let t = trimmed(s)
        guard !t.isEmpty else { throw invalid(key, "\(key) must not be empty") }
        let limit = maxLength ?? Self.maxTextLength
        if t.utf8.count > limit {
            let n = t.count
            guard n <= limit else {
                throw invalid(key, "\(key) must be at most \(limit) characters, got \(n)")
            }
        }
        return t
    }

    /// A required string, trimmed, non-empty, at most `maxLength` characters.
    func string(_ key: String, maxLength: Int? = nil) throws(Rejection) -> String {
        try checkedText(key, try rawString(key, try required(key)), maxLength: maxLength)
    }

    /// An optional string (absent or `null` → `nil`); if present, trimmed, non-empty, at most `maxLength`.
    func optionalString(_ key: String, maxLength: Int? = nil) throws(Rejection) -> String? {
        guard let v = optional(key) else { return nil }
        return try checkedText(key, try rawString(key, v), maxLength: maxLength)
    }

    func uscc(_ key: String) throws(Rejection) -> String {
        let s = try rawString(key, try required(key))
        try USCC.validate(s, field: path(key))
        return s
    }

    func optionalUSCC(_ key: String) throws(Rejection) -> String? {
        guard let v = optional(key) else { return nil }
        let s = try rawString(key, v)
        try USCC.validate(s, field: path(key))
        return s
    }

    func idNumber(_ key: String) throws(Rejection) -> String {
        let s = try rawString(key, try required(key))
        try ResidentID.validate(s, field: path(key))
        return s
    }

    /// An amount of fen: a JSON integer in 0...10^15. Missing → `invalid_data`; anything else wrong
    /// (negative, fractional, exponent, too large, not a number, null) → `invalid_amount`.
    func money(_ key: String) throws(Rejection) -> Int64 {
        let v = try required(key)
        func fail(_ m: String) -> Rejection { Rejection(.invalidAmount, field: path(key), "\(key) \(m)") }
        switch v {
        case .int(let n):
            guard n >= 0 else { throw fail("must not be negative, got \(n)") }
            guard n <= FactDataReader.maxAmountFen else {
                throw fail("must be at most \(FactDataReader.maxAmountFen) fen, got \(n)")
            }
            return n
        case .number(let text):
            if text.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) {
                throw fail("must be a whole number of fen, got \(text.prefix(40))")
            }
            if text.hasPrefix("-") { throw fail("must not be negative, got \(text.prefix(40))") }
            throw fail("must be at most \(FactDataReader.maxAmountFen) fen, got \(text.prefix(40))")
        default:
            throw fail("must be a whole number of fen written as a JSON integer, got \(v.kindName)")
        }
    }

    /// A non-money count (employees …): a JSON integer ≥ 0.
    func count(_ key: String) throws(Rejection) -> Int64 {
        let v = try required(key)
        guard case .int(let n) = v else {
            if case .number(let t) = v { throw invalid(key, "\(key) must be a whole number, got \(t.prefix(40))") }
            throw invalid(key, "\(key) must be a whole number, got \(v.kindName)")
        }
        guard n >= 0 else { throw invalid(key, "\(key) must not be negative, got \(n)") }
        return n
    }

    func year(_ key: String) throws(Rejection) -> Int {
        let n = try count(key)
        guard CivilDate.yearRange.contains(Int(n)) else {
            throw invalid(key, "\(key) must be between 1900 and 2100, got \(n)")
        }
        return Int(n)
    }

    func date(_ key: String) throws(Rejection) -> CivilDate {
        let s = try rawString(key, try required(key), what: "a date string YYYY-MM-DD")
        do {
            return try CivilDate.parsing(s)
        } catch {
            throw Rejection(.invalidDate, field: path(key), error.message)
        }
    }

    func month(_ key: String) throws(Rejection) -> YearMonth {
        let s = try rawString(key, try required(key), what: "a month string YYYY-MM")
        do {
            return try YearMonth.parsing(s)
        } catch {
            throw Rejection(.invalidDate, field: path(key), error.message)
        }
    }

    private func choiceValue<E: RawRepresentable & CaseIterable>(_ key: String, _ v: JSON) throws(Rejection) -> E
    where E.RawValue == String {
        let allowed = E.allCases.map(\.rawValue).joined(separator: ", ")
        guard case .string(let s) = v else {
            throw invalid(key, "\(key) must be one of \(allowed); got \(v.kindName)")
        }
        guard let e = E(rawValue: s) else {
            throw invalid(key, "\(key) must be one of \(allowed); got \"\(s.prefix(40))\"")
        }
        return e
    }

    func choice<E: RawRepresentable & CaseIterable>(_ key: String, as: E.Type = E.self) throws(Rejection) -> E
    where E.RawValue == String {
        try choiceValue(key, try required(key))
    }

    func optionalChoice<E: RawRepresentable & CaseIterable>(_ key: String, as: E.Type = E.self) throws(Rejection) -> E?
    where E.RawValue == String {
        guard let v = optional(key) else { return nil }
        let e: E = try choiceValue(key, v)
        return e
    }

    func object(_ key: String) throws(Rejection) -> FactDataReader {
        let v = try required(key)
        guard case .object(let o) = v else { throw invalid(key, "\(key) must be an object, got \(v.kindName)") }
        return FactDataReader(object: o, path: path(key))
    }

    /// A 6-digit administrative division code.
    func district(_ key: String) throws(Rejection) -> String {
        let s = try rawString(key, try required(key))
        guard s.utf8.count == 6, s.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            throw invalid(key, "\(key) must be a 6-digit division code, got \"\(s.prefix(40))\"")
        }
        return s
    }

    func industry(_ key: String) throws(Rejection) -> IndustryCode {
        let s = try rawString(key, try required(key))
        guard let code = IndustryCode.parse(s) else {
            throw invalid(
                key,
                "\(key) must be a GB/T 4754-2017 code (section letter A–T and 2–4 digits of a division in that section, e.g. H6210), got \"\(s.prefix(40))\""
            )
        }
        return code
    }

    /// Optional phone: 5–20 characters, each a digit, '+', '-' or a space (after trimming).
    func phone(_ key: String) throws(Rejection) -> String? {
        guard let v = optional(key) else { return nil }
        let s = trimmed(try rawString(key, v))
        let ok = s.unicodeScalars.allSatisfy { ("0"..."9").contains($0) || $0 == "+" || $0 == "-" || $0 == " " }
        guard ok, (5...20).contains(s.count) else {
            // The value is shown masked: rejections reach operator terminals and the quarantine list.
            throw invalid(
                key, "\(key) must be 5–20 characters of digits, '+', '-' or spaces, got \"\(Mask.phone(String(s.prefix(40))))\"")
        }
        return s
    }

    /// A bank account number: 8–34 digits once spaces are removed; returned without spaces.
    func accountNumber(_ key: String) throws(Rejection) -> String {
        let s = try rawString(key, try required(key))
        let digits = String(s.unicodeScalars.filter { $0 != " " })
        guard digits.unicodeScalars.allSatisfy({ ("0"..."9").contains($0) }) else {
            throw invalid(key, "\(key) must contain only digits and spaces")
        }
        guard (8...34).contains(digits.count) else {
            throw invalid(key, "\(key) must have 8–34 digits, got \(digits.count)")
        }
        return digits
    }

    /// An array of at most `maxItems` non-empty (trimmed) strings of at most `maxLength`
    /// characters each; may be empty.
    func stringArray(_ key: String, maxItems: Int, maxLength: Int) throws(Rejection) -> [String] {
        let v = try required(key)
        guard case .array(let items) = v else { throw invalid(key, "\(key) must be an array, got \(v.kindName)") }
        guard items.count <= maxItems else {
            throw invalid(key, "\(key) must have at most \(maxItems) entries, got \(items.count)")
        }
        var out: [String] = []
        out.reserveCapacity(items.count)
        for (i, item) in items.enumerated() {
            let element = "\(key)[\(i)]"
            guard case .string(let s) = item else {
                throw invalid(element, "\(element) must be a string, got \(item.kindName)")
            }
            let t = trimmed(s)
            guard !t.isEmpty else { throw invalid(element, "\(element) must not be empty") }
            if t.utf8.count > maxLength, t.count > maxLength {
                throw invalid(element, "\(element) must be at most \(maxLength) characters, got \(t.count)")
            }
            out.append(t)
        }
        return out
    }

    // MARK: composite facts

    func businessRegistered() throws(Rejection) -> BusinessRegistered {
        let uscc = try uscc("uscc")
        let name = try string("name", maxLength: FactDataReader.maxNameLength)
        let kind: BusinessKind = try choice("kind")
        let rep = try object("legal_rep")
        let legalRep = LegalRepresentative(
            name: try rep.string("name", maxLength: FactDataReader.maxNameLength), idNumber: try rep.idNumber("id_number"))
        return BusinessRegistered(
            uscc: uscc, name: name, kind: kind, legalRep: legalRep, industry: try industry("industry"),
            district: try district("district"), registeredOn: try date("registered_on"), status: try choice("status"),
            phone: try phone("phone"), address: try optionalString("address", maxLength: 200))
    }

    func leaseRegistered() throws(Rejection) -> LeaseRegistered {
        let leaseId = try string("lease_id", maxLength: 64)
        let tenant = try uscc("tenant_uscc")
        let l = try object("lessor")
        let lessor = Lessor(
            name: try l.string("name", maxLength: FactDataReader.maxNameLength), uscc: try l.optionalUSCC("uscc"),
            ownership: try l.choice("ownership"), level: try l.optionalChoice("level"))
        let subleaseOf = try optionalString("sublease_of", maxLength: 64)
        let use: LeaseUse = try choice("use")
        let rent = try money("monthly_rent_fen")
        let starts = try date("starts_on")
        let ends = try date("ends_on")
        guard ends >= starts else {
            throw Rejection(.invalidDate, field: path("ends_on"), "ends_on \(ends) is before starts_on \(starts)")
        }
        return LeaseRegistered(
            leaseId: leaseId, tenantUSCC: tenant, lessor: lessor, subleaseOf: subleaseOf, use: use,
            monthlyRentFen: rent, startsOn: starts, endsOn: ends)
    }

    func creditFlag() throws(Rejection) -> CreditFlag {
        CreditFlag(uscc: try uscc("uscc"), list: try choice("list"), since: try date("since"))
    }
}

/// Drops leading and trailing whitespace (including full-width spaces and newlines).
private func trimmed(_ s: String) -> String {
    var sub = Substring(s)
    while let f = sub.first, f.isWhitespace { sub.removeFirst() }
    while let l = sub.last, l.isWhitespace { sub.removeLast() }
    return String(sub)
}
