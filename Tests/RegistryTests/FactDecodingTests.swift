import Testing

@testable import Models
@testable import Registry

/// Good samples of every registry fact, with identifiers whose check characters are computed here.
enum FactSamples {
    static func uscc(_ body17: String) -> String { body17 + String(USCC.checkCharacter(body17: body17)!) }
    static func idNumber(_ body17: String) -> String { body17 + String(ResidentID.checkCharacter(body17: body17)!) }

    static let merchant = uscc("91411002MA9XYW123")
    static let lessor = uscc("91411000MA44PQR78")
    static let legalRep = idNumber("41102319850615003")
    /// `merchant` with a wrong check character.
    static var badUSCC: String {
        let good = merchant
        let wrong = USCC.alphabet.first { $0 != good.last }!
        return String(good.dropLast()) + String(wrong)
    }

    static func data(_ type: String) -> JSON {
        let m = JSON.string(merchant)
        switch type {
        case "business.registered":
            return [
                "uscc": m, "name": "许昌市魏都区好再来餐馆", "kind": "enterprise",
                "legal_rep": ["name": "张三丰", "id_number": .string(legalRep)], "industry": "H6210",
                "district": "411002", "registered_on": "2015-03-18", "status": "active", "phone": "0374-2345678",
                "address": "魏都区七一路12号",
            ]
        case "business.status_changed":
            return ["uscc": m, "status": "suspended", "on": "2022-04-02"]
        case "finance.reported":
            return [
                "uscc": m, "year": 2021, "employees": 12, "operating_revenue_fen": 150_000_000,
                "total_assets_fen": 80_000_000,
            ]
        case "tax.period_reported":
            return [
                "uscc": m, "period": "2022-03", "revenue_fen": 12_345_600, "taxpayer_class": "small_scale",
                "tax_paid_fen": 0, "tax_relief_fen": 370_368,
            ]
        case "social_insurance.reported":
            return ["uscc": m, "month": "2022-03", "insured_employees": 9]
        case "lease.registered":
            return [
                "lease_id": "XC-2021-0042", "tenant_uscc": m,
                "lessor": [
                    "name": "许昌市城市建设投资有限公司", "uscc": .string(lessor), "ownership": "state_enterprise",
                    "level": "city",
                ],
                "sublease_of": .null, "use": "business", "monthly_rent_fen": 450_000, "starts_on": "2021-07-01",
                "ends_on": "2024-06-30",
            ]
        case "closure.reported":
            return ["uscc": m, "from": "2022-04-02", "to": "2022-04-15", "reason": "epidemic_control", "district": "411002"]
        case "damage.reported":
            return [
                "uscc": m, "event": "flood-2021-07", "loss_fen": 8_800_000,
                "evidence": ["doc://photos/20210721-1.jpg", "doc://insurance/claim-77.pdf"],
            ]
        case "credit.flagged", "credit.cleared":
            return ["uscc": m, "list": "abnormal_operation", "since": "2021-11-01"]
        case "account.verified":
            return [
                "uscc": m, "bank": "中国工商银行许昌分行", "account_no": "6222 0212 3456 7891 234",
                "holder_name": "许昌市魏都区好再来餐馆", "verified_on": "2022-03-28",
            ]
        case "aid.received":
            return [
                "uscc": m, "programme": "2021 flood relief (province)", "source": "河南省财政厅", "amount_fen": 500_000,
                "on": "2021-09-01",
            ]
        case "fraud.confirmed":
            return ["uscc": m, "finding": "forged lease contract", "confirmed_by": "区市场监管局"]
        default:
            fatalError("no sample for \(type)")
        }
    }

    /// `json` with the member at a dotted `path` replaced (or removed when `value` is nil).
    static func setting(_ json: JSON, _ path: String, _ value: JSON?) -> JSON {
        setting(json, path.split(separator: ".").map(String.init)[...], value)
    }

    private static func setting(_ json: JSON, _ path: ArraySlice<String>, _ value: JSON?) -> JSON {
        guard case .object(var o) = json, let head = path.first else { return json }
        if path.count == 1 {
            o[head] = value
        } else {
            o[head] = setting(o[head] ?? .object(JSONObject()), path.dropFirst(), value)
        }
        return .object(o)
    }

    static func rejection(_ type: String, _ data: JSON?) -> Rejection? {
        do {
            _ = try Fact.decode(type: type, data: data)
            return nil
        } catch {
            return error
        }
    }

    static func rejection(_ type: String, setting path: String, to value: JSON?) -> Rejection? {
        rejection(type, setting(data(type), path, value))
    }

    static func decode(_ type: String, setting path: String, to value: JSON?) throws -> Fact {
        try Fact.decode(type: type, data: setting(data(type), path, value))
    }
}

/// (type, field path) pairs for parameterised tests.
struct FactField: Sendable, CustomTestStringConvertible {
    let type: String
    let path: String
    init(_ type: String, _ path: String) {
        self.type = type
        self.path = path
    }
    var testDescription: String { "\(type) \(path)" }
    var field: String { "data." + path }
    var key: String { String(path.split(separator: ".").last!) }
}

@Suite("Registry fact decoding")
struct FactDecodingTests {
    typealias S = FactSamples

    // MARK: good samples

    @Test func typesAreTheCatalogue() {
        #expect(Fact.types.count == 13)
        #expect(Set(Fact.types).count == 13)
    }

    @Test(arguments: Fact.types)
    func acceptsGoodSample(_ type: String) throws {
        let fact = try Fact.decode(type: type, data: S.data(type))
        #expect(fact.type == type)
        #expect(fact.uscc == S.merchant)
        // Rendering back and decoding again gives the same fact.
        #expect(try Fact.decode(type: type, data: fact.json) == fact)
    }

    @Test(arguments: Fact.types)
    func rendersTheSameMemberNames(_ type: String) throws {
        let fact = try Fact.decode(type: type, data: S.data(type))
        let sample = try #require(S.data(type).objectValue)
        let rendered = try #require(fact.json.objectValue)
        #expect(Set(rendered.keys).isSuperset(of: sample.keys))
        // Nothing but absent optionals (rendered as null) is added.
        for k in rendered.keys where sample[k] == nil {
            #expect(rendered[k] == .null, "\(k)")
        }
    }

    @Test(arguments: Fact.types)
    func ignoresUnknownMembers(_ type: String) throws {
        let plain = try Fact.decode(type: type, data: S.data(type))
        let extended = try S.decode(type, setting: "x_future_field", to: ["nested": [1, 2]])
        #expect(plain == extended)
    }

    @Test func registeredValues() throws {
        guard case .registered(let b) = try Fact.decode(type: "business.registered", data: S.data("business.registered"))
        else {
            Issue.record("wrong case")
            return
        }
        #expect(b.name == "许昌市魏都区好再来餐馆")
        #expect(b.kind == .enterprise)
        #expect(b.legalRep == LegalRepresentative(name: "张三丰", idNumber: S.legalRep))
        #expect(b.industry == IndustryCode.parse("H6210"))
        #expect(b.district == "411002")
        #expect(b.registeredOn.description == "2015-03-18")
        #expect(b.status == .active)
        #expect(b.phone == "0374-2345678")
        #expect(b.address == "魏都区七一路12号")
    }

    @Test func leaseValues() throws {
        let fact = try Fact.decode(type: "lease.registered", data: S.data("lease.registered"))
        guard case .lease(let l) = fact else {
            Issue.record("wrong case")
            return
        }
        #expect(fact.uscc == l.tenantUSCC)
        #expect(l.leaseId == "XC-2021-0042")
        #expect(l.lessor == Lessor(name: "许昌市城市建设投资有限公司", uscc: S.lessor, ownership: .stateEnterprise, level: .city))
        #expect(l.subleaseOf == nil)
        #expect(l.use == .business)
        #expect(l.monthlyRentFen == 450_000)
        #expect(l.startsOn.description == "2021-07-01")
        #expect(l.endsOn.description == "2024-06-30")
        #expect(l.json["sublease_of"] == .null)
    }

    @Test func otherValues() throws {
        guard case .finance(let f) = try Fact.decode(type: "finance.reported", data: S.data("finance.reported")) else {
            Issue.record("wrong case")
            return
        }
        #expect(f.finance == Finance(employees: 12, operatingRevenueFen: 150_000_000, totalAssetsFen: 80_000_000))
        #expect(f.year == 2021)
        guard case .tax(let t) = try Fact.decode(type: "tax.period_reported", data: S.data("tax.period_reported")) else {
            Issue.record("wrong case")
            return
        }
        #expect(t.period == YearMonth.parse("2022-03"))
        #expect(t.taxpayerClass == .smallScale)
        #expect(t.taxReliefFen == 370_368)
        guard case .closure(let c) = try Fact.decode(type: "closure.reported", data: S.data("closure.reported")) else {
            Issue.record("wrong case")
            return
        }
        #expect(c.days == 14)
        #expect(c.reason == .epidemicControl)
        guard case .creditCleared(let cf) = try Fact.decode(type: "credit.cleared", data: S.data("credit.cleared"))
        else {
            Issue.record("wrong case")
            return
        }
        #expect(cf.list == .abnormalOperation)
        guard case .damage(let d) = try Fact.decode(type: "damage.reported", data: S.data("damage.reported")) else {
            Issue.record("wrong case")
            return
        }
        #expect(d.evidence.count == 2)
        #expect(d.lossFen == 8_800_000)
    }

    @Test func accountNumberIsStoredWithoutSpaces() throws {
        guard case .accountVerified(let a) = try Fact.decode(type: "account.verified", data: S.data("account.verified"))
        else {
            Issue.record("wrong case")
            return
        }
        #expect(a.accountNo == "6222021234567891234")
        #expect(a.json["account_no"] == "6222021234567891234")
        #expect(a.holderName == "许昌市魏都区好再来餐馆")
    }

    @Test func stringsAreTrimmed() throws {
        guard case .registered(let b) = try S.decode("business.registered", setting: "name", to: "  好再来餐馆 \n")
        else {
            Issue.record("wrong case")
            return
        }
        #expect(b.name == "好再来餐馆")
    }

    // MARK: envelope-level failures

    @Test func unknownType() {
        let r = S.rejection("business.renamed", S.data("business.registered"))
        #expect(r?.code == .unknownType)
        #expect(S.rejection("merchant.profiled", [:])?.code == .unknownType)
        #expect(S.rejection("", nil)?.code == .unknownType)
    }

    @Test(arguments: Fact.types)
    func dataMustBeAnObject(_ type: String) {
        for data: JSON? in [nil, .null, "x", 1, [], true] {
            let r = S.rejection(type, data)
            #expect(r?.code == .invalidData)
            #expect(r?.field == "data")
        }
    }

    // MARK: required members

    static let optionalMembers: Set<String> = ["phone", "address", "sublease_of"]

    static let requiredFields: [FactField] =
        Fact.types.flatMap { type in
            S.data(type).objectValue!.keys.filter { !optionalMembers.contains($0) }.map { FactField(type, $0) }
        } + [
            FactField("business.registered", "legal_rep.name"), FactField("business.registered", "legal_rep.id_number"),
            FactField("lease.registered", "lessor.name"), FactField("lease.registered", "lessor.ownership"),
        ]

    @Test(arguments: requiredFields)
    func missingRequiredMember(_ f: FactField) {
        let r = S.rejection(f.type, setting: f.path, to: nil)
        #expect(r?.code == .invalidData)
        #expect(r?.field == f.field)
        #expect(r?.message == "\(f.key) is required")
    }

    @Test(arguments: requiredFields.filter { !["legal_rep", "lessor", "evidence"].contains($0.path) })
    func wrongTypeForScalarMember(_ f: FactField) {
        // An object is never acceptable for a scalar member.
        let r = S.rejection(f.type, setting: f.path, to: ["a": 1])
        let isMoney = f.path.hasSuffix("_fen")
        #expect(r?.code == (isMoney ? .invalidAmount : .invalidData))
        #expect(r?.field == f.field)
    }

    @Test(arguments: [FactField("business.registered", "legal_rep"), FactField("lease.registered", "lessor")])
    func nestedObjectMustBeAnObject(_ f: FactField) {
        for v: JSON in ["x", 1, [], .null] {
            let r = S.rejection(f.type, setting: f.path, to: v)
            #expect(r?.code == .invalidData)
            #expect(r?.field == f.field)
        }
    }

    // MARK: identifiers

    static let usccFields: [FactField] =
        Fact.types.filter { $0 != "lease.registered" }.map { FactField($0, "uscc") } + [
            FactField("lease.registered", "tenant_uscc"), FactField("lease.registered", "lessor.uscc"),
        ]

    @Test(arguments: usccFields)
    func invalidUSCC(_ f: FactField) {
        let wrong = S.rejection(f.type, setting: f.path, to: .string(S.badUSCC))
        #expect(wrong?.code == .invalidUSCC)
        #expect(wrong?.field == f.field)
        #expect(wrong?.message.hasPrefix("check digit mismatch: expected ") == true)
        let short = S.rejection(f.type, setting: f.path, to: "9141100")
        #expect(short == Rejection(.invalidUSCC, field: f.field, "must be 18 characters, got 7"))
        let lower = S.rejection(f.type, setting: f.path, to: .string(S.merchant.lowercased()))
        #expect(lower?.code == .invalidUSCC)
        let number = S.rejection(f.type, setting: f.path, to: 914_110_021)
        #expect(number?.code == .invalidData)
        #expect(number?.field == f.field)
    }

    @Test func naturalPersonLessorHasNoUSCC() throws {
        for v: JSON? in [nil, .null] {
            let fact = try S.decode("lease.registered", setting: "lessor.uscc", to: v)
            guard case .lease(let l) = fact else {
                Issue.record("wrong case")
                return
            }
            #expect(l.lessor.uscc == nil)
            #expect(l.json["lessor"]?["uscc"] == .null)
        }
    }

    @Test func invalidIDNumber() {
        let f = "data.legal_rep.id_number"
        let body = String(S.legalRep.prefix(17))
        let wrongCheck = body + (S.legalRep.last == "0" ? "1" : "0")
        let r = S.rejection("business.registered", setting: "legal_rep.id_number", to: .string(wrongCheck))
        #expect(r?.code == .invalidIDNumber)
        #expect(r?.field == f)
        #expect(r?.message.hasPrefix("check digit mismatch") == true)
        let badBirth = S.idNumber("41102319850230003")
        let r2 = S.rejection("business.registered", setting: "legal_rep.id_number", to: .string(badBirth))
        #expect(r2?.code == .invalidIDNumber)
        #expect(r2?.field == f)
        #expect(r2?.message.contains("birth date") == true && r2?.message.contains("19850230") == false)
        let r3 = S.rejection("business.registered", setting: "legal_rep.id_number", to: "12345")
        #expect(r3 == Rejection(.invalidIDNumber, field: f, "must be 18 characters, got 5"))
    }

    @Test func lowercaseXInIDNumber() throws {
        let withX = S.idNumber("11010519491231002")
        #expect(withX.hasSuffix("X"))
        _ = try S.decode("business.registered", setting: "legal_rep.id_number", to: .string(withX))
        let r = S.rejection("business.registered", setting: "legal_rep.id_number", to: .string(withX.lowercased()))
        #expect(r?.code == .invalidIDNumber)
        #expect(r?.message.contains("uppercase") == true)
    }

    // MARK: money

    static let moneyFields: [FactField] = [
        FactField("finance.reported", "operating_revenue_fen"), FactField("finance.reported", "total_assets_fen"),
        FactField("tax.period_reported", "revenue_fen"), FactField("tax.period_reported", "tax_paid_fen"),
        FactField("tax.period_reported", "tax_relief_fen"), FactField("lease.registered", "monthly_rent_fen"),
        FactField("damage.reported", "loss_fen"), FactField("aid.received", "amount_fen"),
    ]

    @Test func everyMoneyFieldIsListed() {
        let all = Fact.types.flatMap { t in S.data(t).objectValue!.keys.filter { $0.hasSuffix("_fen") }.map { "\(t) \($0)" } }
        #expect(Set(all) == Set(Self.moneyFields.map(\.testDescription)))
    }

    @Test(arguments: moneyFields)
    func acceptedAmounts(_ f: FactField) throws {
        for v: Int64 in [0, 1, 1_000_000_000_000_000] {
            let fact = try S.decode(f.type, setting: f.path, to: .int(v))
            #expect(fact.json[f.path] == .int(v))
        }
    }

    @Test(arguments: moneyFields)
    func rejectedAmounts(_ f: FactField) throws {
        let cases: [(JSON, String)] = [
            (-1, "must not be negative, got -1"),
            (.int(Int64.min), "must not be negative, got -9223372036854775808"),
            (.int(1_000_000_000_000_001), "must be at most 1000000000000000 fen, got 1000000000000001"),
            (.int(Int64.max), "must be at most 1000000000000000 fen, got 9223372036854775807"),
            (.number("10.5"), "must be a whole number of fen, got 10.5"),
            (.number("100.0"), "must be a whole number of fen, got 100.0"),
            (.number("1e3"), "must be a whole number of fen, got 1e3"),
            (.number("-0.5"), "must be a whole number of fen, got -0.5"),
            (.number("99999999999999999999"), "must be at most 1000000000000000 fen, got 99999999999999999999"),
            (.number("-99999999999999999999"), "must not be negative, got -99999999999999999999"),
            ("100", "must be a whole number of fen written as a JSON integer, got string"),
            (true, "must be a whole number of fen written as a JSON integer, got boolean"),
            (.null, "must be a whole number of fen written as a JSON integer, got null"),
            ([1], "must be a whole number of fen written as a JSON integer, got array"),
        ]
        for (value, message) in cases {
            let r = S.rejection(f.type, setting: f.path, to: value)
            #expect(r == Rejection(.invalidAmount, field: f.field, "\(f.key) \(message)"), "\(value)")
        }
    }

    @Test func amountsFromParsedText() throws {
        // Through the real parser: a fraction is never rounded.
        let text = #"{"uscc":"\#(S.merchant)","programme":"p","source":"s","amount_fen":10.5,"on":"2021-09-01"}"#
        let data = try JSONParser.parse(text)
        let r = S.rejection("aid.received", data)
        #expect(r == Rejection(.invalidAmount, field: "data.amount_fen", "amount_fen must be a whole number of fen, got 10.5"))
    }

    // MARK: dates

    static let dateFields: [FactField] = [
        FactField("business.registered", "registered_on"), FactField("business.status_changed", "on"),
        FactField("lease.registered", "starts_on"), FactField("lease.registered", "ends_on"),
        FactField("closure.reported", "from"), FactField("closure.reported", "to"), FactField("credit.flagged", "since"),
        FactField("credit.cleared", "since"), FactField("account.verified", "verified_on"), FactField("aid.received", "on"),
    ]

    @Test(arguments: dateFields)
    func invalidDates(_ f: FactField) {
        #expect(
            S.rejection(f.type, setting: f.path, to: "2021-02-30")
                == Rejection(.invalidDate, field: f.field, "2021-02-30 is not a real date"))
        #expect(
            S.rejection(f.type, setting: f.path, to: "2021/02/03")
                == Rejection(.invalidDate, field: f.field, "must be a date written YYYY-MM-DD, got \"2021/02/03\""))
        #expect(S.rejection(f.type, setting: f.path, to: "1899-12-31")?.code == .invalidDate)
        #expect(S.rejection(f.type, setting: f.path, to: "2021-02-03T00:00:00+08:00")?.code == .invalidDate)
        let number = S.rejection(f.type, setting: f.path, to: 20_210_203)
        #expect(number?.code == .invalidData)
        #expect(number?.field == f.field)
    }

    @Test(arguments: [FactField("tax.period_reported", "period"), FactField("social_insurance.reported", "month")])
    func invalidMonths(_ f: FactField) throws {
        #expect(
            S.rejection(f.type, setting: f.path, to: "2022-13")
                == Rejection(.invalidDate, field: f.field, "2022-13 is not a real month"))
        #expect(S.rejection(f.type, setting: f.path, to: "2022-4")?.code == .invalidDate)
        #expect(S.rejection(f.type, setting: f.path, to: "2022-04-01")?.code == .invalidDate)
        #expect(S.rejection(f.type, setting: f.path, to: 202_204)?.code == .invalidData)
        _ = try S.decode(f.type, setting: f.path, to: "2022-12")
    }

    @Test func leaseEndingBeforeItStarts() throws {
        let r = S.rejection(
            "lease.registered", S.setting(S.data("lease.registered"), "ends_on", "2021-06-30"))
        #expect(r == Rejection(.invalidDate, field: "data.ends_on", "ends_on 2021-06-30 is before starts_on 2021-07-01"))
        // A one-day lease is fine.
        _ = try S.decode("lease.registered", setting: "ends_on", to: "2021-07-01")
    }

    @Test func closureEndingBeforeItStarts() throws {
        let r = S.rejection("closure.reported", setting: "to", to: "2022-04-01")
        #expect(r == Rejection(.invalidDate, field: "data.to", "to 2022-04-01 is before from 2022-04-02"))
        let one = try S.decode("closure.reported", setting: "to", to: "2022-04-02")
        guard case .closure(let c) = one else {
            Issue.record("wrong case")
            return
        }
        #expect(c.days == 1)
    }

    // MARK: enumerations

    static let enumFields: [(FactField, String)] = [
        (FactField("business.registered", "kind"), "enterprise, individual"),
        (FactField("business.registered", "status"), "active, suspended, deregistered"),
        (FactField("business.status_changed", "status"), "active, suspended, deregistered"),
        (FactField("tax.period_reported", "taxpayer_class"), "small_scale, general"),
        (FactField("lease.registered", "use"), "business, residential, office, industrial, warehouse, other"),
        (FactField("lease.registered", "lessor.ownership"), "state_enterprise, government, private"),
        (FactField("lease.registered", "lessor.level"), "central, provincial, city, district, county"),
        (FactField("closure.reported", "reason"), "epidemic_control, disaster, other"),
        (FactField("credit.flagged", "list"), "abnormal_operation, serious_violation, dishonest_debtor"),
        (FactField("credit.cleared", "list"), "abnormal_operation, serious_violation, dishonest_debtor"),
    ]

    @Test(arguments: enumFields)
    func enumerations(_ f: FactField, _ allowed: String) throws {
        #expect(
            S.rejection(f.type, setting: f.path, to: "Active")
                == Rejection(.invalidData, field: f.field, "\(f.key) must be one of \(allowed); got \"Active\""))
        #expect(S.rejection(f.type, setting: f.path, to: 1)?.field == f.field)
        for value in allowed.split(separator: ", ") {
            let fact = try S.decode(f.type, setting: f.path, to: .string(String(value)))
            let rendered = f.path.split(separator: ".").reduce(Optional(fact.json)) { $0?[String($1)] }
            #expect(rendered == .string(String(value)))
        }
    }

    @Test func optionalLevelMayBeAbsent() throws {
        for v: JSON? in [nil, .null] {
            guard case .lease(let l) = try S.decode("lease.registered", setting: "lessor.level", to: v) else {
                Issue.record("wrong case")
                return
            }
            #expect(l.lessor.level == nil)
        }
    }

    // MARK: strings

    static let nonEmptyStrings: [FactField] = [
        FactField("business.registered", "name"), FactField("business.registered", "legal_rep.name"),
        FactField("lease.registered", "lease_id"), FactField("lease.registered", "lessor.name"),
        FactField("damage.reported", "event"), FactField("account.verified", "bank"), FactField("account.verified", "holder_name"),
        FactField("aid.received", "programme"), FactField("aid.received", "source"), FactField("fraud.confirmed", "finding"),
        FactField("fraud.confirmed", "confirmed_by"),
    ]

    @Test(arguments: nonEmptyStrings)
    func stringsMustBeNonEmpty(_ f: FactField) {
        for v: JSON in ["", "   ", "\n\t", "\u{3000}"] {
            #expect(S.rejection(f.type, setting: f.path, to: v) == Rejection(.invalidData, field: f.field, "\(f.key) must not be empty"))
        }
        let n = S.rejection(f.type, setting: f.path, to: 5)
        #expect(n == Rejection(.invalidData, field: f.field, "\(f.key) must be a string, got number"))
        #expect(S.rejection(f.type, setting: f.path, to: .null)?.code == .invalidData)
    }

    @Test(arguments: [
        FactField("business.registered", "name"), FactField("business.registered", "legal_rep.name"),
        FactField("lease.registered", "lessor.name"), FactField("account.verified", "holder_name"),
    ])
    func namesAreAtMost200Characters(_ f: FactField) throws {
        _ = try S.decode(f.type, setting: f.path, to: .string(String(repeating: "张", count: 200)))
        _ = try S.decode(f.type, setting: f.path, to: .string(" " + String(repeating: "a", count: 200) + " "))
        #expect(
            S.rejection(f.type, setting: f.path, to: .string(String(repeating: "张", count: 201)))
                == Rejection(.invalidData, field: f.field, "\(f.key) must be at most 200 characters, got 201"))
    }

    @Test(arguments: [
        FactField("lease.registered", "lease_id"), FactField("lease.registered", "sublease_of"),
        FactField("damage.reported", "event"),
    ])
    func identifiersAreAtMost64Characters(_ f: FactField) throws {
        _ = try S.decode(f.type, setting: f.path, to: .string(String(repeating: "x", count: 64)))
        #expect(
            S.rejection(f.type, setting: f.path, to: .string(String(repeating: "x", count: 65)))
                == Rejection(.invalidData, field: f.field, "\(f.key) must be at most 64 characters, got 65"))
    }

    @Test func sublease() throws {
        guard case .lease(let l) = try S.decode("lease.registered", setting: "sublease_of", to: "XC-2019-0007") else {
            Issue.record("wrong case")
            return
        }
        #expect(l.subleaseOf == "XC-2019-0007")
        #expect(l.json["sublease_of"] == "XC-2019-0007")
        guard case .lease(let l2) = try S.decode("lease.registered", setting: "sublease_of", to: nil) else {
            Issue.record("wrong case")
            return
        }
        #expect(l2.subleaseOf == nil)
        #expect(S.rejection("lease.registered", setting: "sublease_of", to: 7)?.field == "data.sublease_of")
        #expect(S.rejection("lease.registered", setting: "sublease_of", to: "")?.field == "data.sublease_of")
    }

    // MARK: business.registered specifics

    @Test(arguments: ["H6310", "Z1234", "h6210", "H6", "H621000", "6210", "H 6210"])
    func invalidIndustry(_ code: String) {
        let r = S.rejection("business.registered", setting: "industry", to: .string(code))
        #expect(r?.code == .invalidData)
        #expect(r?.field == "data.industry")
        #expect(r?.message.contains("GB/T 4754-2017") == true)
    }

    @Test(arguments: ["H62", "H621", "K7010", "A0511"])
    func validIndustry(_ code: String) throws {
        guard case .registered(let b) = try S.decode("business.registered", setting: "industry", to: .string(code))
        else {
            Issue.record("wrong case")
            return
        }
        #expect(b.industry.code == code)
    }

    @Test(arguments: [FactField("business.registered", "district"), FactField("closure.reported", "district")])
    func districtIsSixDigits(_ f: FactField) {
        for bad: JSON in ["41100", "4110021", "41100a", " 411002", "４１１００２", 411_002] {
            let r = S.rejection(f.type, setting: f.path, to: bad)
            #expect(r?.code == .invalidData, "\(bad)")
            #expect(r?.field == f.field)
        }
    }

    @Test func phone() throws {
        for ok: JSON? in [nil, .null, "13812345678", "+86 138-1234-5678", "12345", "01234567890123456789"] {
            guard case .registered(let b) = try S.decode("business.registered", setting: "phone", to: ok) else {
                Issue.record("wrong case")
                return
            }
            #expect(b.phone == ok?.stringValue)
        }
        for bad: JSON in ["1234", "012345678901234567890", "138-1234-567x", "(0374)2345678", "", 13_812_345_678] {
            let r = S.rejection("business.registered", setting: "phone", to: bad)
            #expect(r?.code == .invalidData, "\(bad)")
            #expect(r?.field == "data.phone")
        }
        // The rejection shows the number masked: it reaches operator terminals and the quarantine list.
        let shown = S.rejection("business.registered", setting: "phone", to: "138-1234-5678abc")
        #expect(shown?.message.contains("138-1234-5678") == false, "\(shown?.message ?? "")")
        #expect(shown?.message.contains("138*********8abc") == true, "\(shown?.message ?? "")")
    }

    @Test func address() throws {
        for ok: JSON? in [nil, .null, .string(String(repeating: "路", count: 200))] {
            _ = try S.decode("business.registered", setting: "address", to: ok)
        }
        let long = S.rejection("business.registered", setting: "address", to: .string(String(repeating: "路", count: 201)))
        #expect(long?.code == .invalidData)
        #expect(long?.field == "data.address")
        #expect(S.rejection("business.registered", setting: "address", to: 1)?.field == "data.address")
    }

    // MARK: integers that are not money

    static let countFields: [FactField] = [
        FactField("finance.reported", "employees"), FactField("finance.reported", "year"),
        FactField("social_insurance.reported", "insured_employees"),
    ]

    @Test(arguments: countFields)
    func nonMoneyIntegers(_ f: FactField) {
        for bad: JSON in [-1, .number("1.5"), .number("1e2"), "12", .null, true] {
            let r = S.rejection(f.type, setting: f.path, to: bad)
            #expect(r?.code == .invalidData, "\(bad)")
            #expect(r?.field == f.field)
        }
    }

    @Test func employeesMayBeZero() throws {
        _ = try S.decode("finance.reported", setting: "employees", to: 0)
        _ = try S.decode("social_insurance.reported", setting: "insured_employees", to: 0)
    }

    @Test func yearRange() throws {
        _ = try S.decode("finance.reported", setting: "year", to: 1900)
        _ = try S.decode("finance.reported", setting: "year", to: 2100)
        #expect(
            S.rejection("finance.reported", setting: "year", to: 1899)
                == Rejection(.invalidData, field: "data.year", "year must be between 1900 and 2100, got 1899"))
        #expect(S.rejection("finance.reported", setting: "year", to: 2101)?.code == .invalidData)
    }

    // MARK: damage evidence

    @Test func evidence() throws {
        guard case .damage(let d) = try S.decode("damage.reported", setting: "evidence", to: []) else {
            Issue.record("wrong case")
            return
        }
        #expect(d.evidence.isEmpty)
        #expect(
            S.rejection("damage.reported", setting: "evidence", to: ["doc://a", " "])
                == Rejection(.invalidData, field: "data.evidence[1]", "evidence[1] must not be empty"))
        #expect(
            S.rejection("damage.reported", setting: "evidence", to: [1])
                == Rejection(.invalidData, field: "data.evidence[0]", "evidence[0] must be a string, got number"))
        #expect(
            S.rejection("damage.reported", setting: "evidence", to: "doc://a")
                == Rejection(.invalidData, field: "data.evidence", "evidence must be an array, got string"))
    }

    @Test func evidenceIsBoundedInCountAndLength() throws {
        // A fact can no longer grow a profile by megabytes (two 700 KB damage facts made a 1.4 MB
        // merchant.profiled, over every subscriber's max_message_bytes).
        _ = try S.decode("damage.reported", setting: "evidence", to: .array((0..<32).map { .string("doc://\($0)") }))
        _ = try S.decode("damage.reported", setting: "evidence", to: [.string(String(repeating: "x", count: 500))])
        #expect(
            S.rejection("damage.reported", setting: "evidence", to: .array((0..<33).map { .string("doc://\($0)") }))
                == Rejection(.invalidData, field: "data.evidence", "evidence must have at most 32 entries, got 33"))
        #expect(
            S.rejection("damage.reported", setting: "evidence", to: ["doc://a", .string(String(repeating: "x", count: 700_000))])
                == Rejection(.invalidData, field: "data.evidence[1]", "evidence[1] must be at most 500 characters, got 700000"))
    }

    @Test(arguments: [
        FactField("account.verified", "bank"), FactField("aid.received", "programme"), FactField("aid.received", "source"),
        FactField("fraud.confirmed", "finding"), FactField("fraud.confirmed", "confirmed_by"),
    ])
    func otherTextIsAtMost1000Characters(_ f: FactField) throws {
        _ = try S.decode(f.type, setting: f.path, to: .string(String(repeating: "许", count: 1_000)))
        #expect(
            S.rejection(f.type, setting: f.path, to: .string(String(repeating: "许", count: 1_001)))
                == Rejection(.invalidData, field: f.field, "\(f.key) must be at most 1000 characters, got 1001"))
    }

    // MARK: bank accounts

    @Test func accountNumbers() throws {
        for (given, stored) in [
            ("12345678", "12345678"), (String(repeating: "9", count: 34), String(repeating: "9", count: 34)),
            ("6222 0212 3456", "622202123456"),
        ] {
            guard case .accountVerified(let a) = try S.decode("account.verified", setting: "account_no", to: .string(given))
            else {
                Issue.record("wrong case")
                return
            }
            #expect(a.accountNo == stored)
        }
        for bad: JSON in [
            "1234567", .string(String(repeating: "9", count: 35)), "6222-0212-3456", "62220212345x", "        ", 62_220_212_345,
        ] {
            let r = S.rejection("account.verified", setting: "account_no", to: bad)
            #expect(r?.code == .invalidData, "\(bad)")
            #expect(r?.field == "data.account_no")
        }
    }
}
