import Foundation
import Models

/// A deterministic synthetic county for demos and benchmarks: merchants across industries,
/// sizes and districts, with the facts agencies would publish about them — and, on purpose, a
/// few bad records (wrong check digits, impossible dates, negative money) that the registry
/// must refuse and quarantine.
public struct SyntheticCounty: Sendable {
    public let seed: UInt64
    public let merchants: Int
    /// One record in this many is deliberately bad (0: none).
    public let badEvery: Int

    public static let districts = ["411002", "411003", "411023", "411024", "411025"]
    /// The development zone (经开区), where the flood-relief programme applies (seed 篇三: 在经开区行政区域内办理有营业执照):
    /// the merchants the July 2021 flood hit are registered there.
    public static let developmentZone = "411071"
    /// The state-owned lessor of the county's state property (许昌市国有资产经营有限公司): its
    /// confirmations come from `/lessors/<this USCC>`, the source a lessor's key is bound to.
    public static let stateLessorUSCC = "91411000MA40XCGY1Y"
    /// The names the board and the monthly evaluation show for those codes (the notifier's
    /// `districts` table; 411023 is 许昌县's code from before it became 建安区).
    public static let districtNames: [(code: String, name: String)] = [
        ("411002", "魏都区"), ("411003", "建安区"), ("411023", "许昌县"), ("411024", "鄢陵县"), ("411025", "襄城县"), ("411071", "经开区"),
    ]
    /// The `districts` file of the county: one `code name` per line.
    public static var districtTable: String {
        "# The synthetic county's divisions (bangfu demo)\n" + districtNames.map { "\($0.code) \($0.name)\n" }.joined()
    }
    /// Industry codes with rough weights: catering and retail dominate a county's small merchants.
    static let industries: [(String, Int)] = [
        ("H6210", 18), ("F5261", 14), ("F5212", 10), ("H6110", 5), ("O8040", 6), ("O8010", 3), ("P8391", 3),
        ("R8760", 1), ("L7291", 2), ("C1391", 6), ("E4790", 3), ("G5430", 4), ("G5960", 2), ("I6510", 4),
        ("K7020", 2), ("K7010", 1), ("L7212", 3), ("M7320", 2), ("A0141", 3), ("F5172", 4), ("S9221", 1), ("I6311", 1),
    ]
    static let surnames = Array("王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗")
    static let givenNames = Array("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂")
    static let shopWords = ["好味道", "老街坊", "鑫源", "福满楼", "百姓", "顺发", "华联", "金牛", "佳美", "同心"]
    static let shopKinds = ["餐馆", "商店", "超市", "理发店", "五金店", "家政服务部", "培训中心", "便利店", "小吃店", "旅行社"]

    public init(seed: UInt64 = 20_220_401, merchants: Int = 10_000, badEvery: Int = 200) {
        self.seed = seed
        self.merchants = merchants
        self.badEvery = badEvery
    }

    /// The USCC of merchant `i` (stable for a seed).
    public func uscc(_ i: Int) -> String {
        var f = Fixtures(seed: seed &+ UInt64(i) &* 7919)
        return f.uscc(individual: isIndividual(i), division: district(i))
    }

    /// Whether the July 2021 flood damaged merchant `i` (about one in ten): decided apart from the
    /// merchant's other facts, because it also places the merchant in the development zone.
    public func floodHit(_ i: Int) -> Bool {
        var f = Fixtures(seed: (seed ^ 0xF100D) &+ UInt64(i) &* 104_729)
        return f.int(0...9) == 0
    }

    /// The division merchant `i` is registered in: the development zone if the flood hit it,
    /// otherwise one of the county's districts.
    public func district(_ i: Int) -> String {
        floodHit(i) ? Self.developmentZone : Self.districts[i % Self.districts.count]
    }

    func isIndividual(_ i: Int) -> Bool { i % 3 == 0 }

    /// Whether merchant `i` is an individual business trading under its operator's own name
    /// (`许昌市张伟丰小吃店6`, as many 个体工商户 do): one merchant in 30, one individual in 10.
    /// The public board masks the operator's name inside such a trade name (`许昌市张*丰小吃店6`).
    /// Only the name differs from what the merchant would otherwise be: every other fact, and
    /// every other merchant, is the same as without it.
    public func tradesUnderOperatorsName(_ i: Int) -> Bool { i % 30 == 6 }

    func industry(_ rng: inout Fixtures) -> String {
        let total = Self.industries.reduce(0) { $0 + $1.1 }
        var pick = rng.int(0...(total - 1))
        for (code, w) in Self.industries {
            if pick < w { return code }
            pick -= w
        }
        return "H6210"
    }

    func personName(_ rng: inout Fixtures) -> String {
        var name = String(Self.surnames[rng.int(0...Self.surnames.count - 1)])
        name.append(Self.givenNames[rng.int(0...Self.givenNames.count - 1)])
        if rng.int(0...1) == 0 { name.append(Self.givenNames[rng.int(0...Self.givenNames.count - 1)]) }
        return name
    }

    /// Only the `business.registered` events (for the intake benchmark).
    public func registrations() -> [CloudEvent] {
        (0..<merchants).map { i in
            var rng = Fixtures(seed: seed ^ UInt64(i) &* 0x5851_F42D)
            return registration(i, &rng)
        }
    }

    func registration(_ i: Int, _ rng: inout Fixtures) -> CloudEvent {
        let u = uscc(i)
        let district = district(i)
        let word = Self.shopWords[rng.int(0...Self.shopWords.count - 1)]
        let shop = Self.shopKinds[rng.int(0...Self.shopKinds.count - 1)]
        let name = "许昌市\(word)\(shop)\(i)"
        let registeredOn = CivilDate(year: 2005 + rng.int(0...16), month: rng.int(1...12), day: rng.int(1...28))!.description
        let phone = "13\(rng.int(0...9))" + String(100_000_000 + rng.int(0...99_999_999)).dropFirst()
        let repName = personName(&rng)
        let repID = rng.idNumber(division: district)
        var data = JSONObject()
        data["uscc"] = .string(u)
        // The operator's name in the trade name: chosen after every draw, so that the random
        // sequence, and with it everything else about every merchant, stays as it was.
        data["name"] = .string(tradesUnderOperatorsName(i) ? "许昌市\(repName)\(shop)\(i)" : name)
        data["kind"] = .string(isIndividual(i) ? "individual" : "enterprise")
        data["legal_rep"] = ["name": .string(repName), "id_number": .string(repID)]
        data["industry"] = .string(industry(&rng))
        data["district"] = .string(district)
        data["registered_on"] = .string(registeredOn)
        data["status"] = .string(i % 97 == 0 ? "suspended" : "active")
        data["phone"] = .string(phone)
        // One address per merchant, except every 200th, which shares the previous one's (a
        // deliberate link for the payments' fraud checks).
        let addressOwner = i % 200 == 199 ? i - 1 : i
        data["address"] = .string("许昌市魏都区\(Self.shopWords[addressOwner % Self.shopWords.count])路\(addressOwner + 1)号")
        if badEvery > 0, i % badEvery == badEvery / 2 {
            // A bad record: a USCC with the wrong check character.
            let wrong = String(u.dropLast()) + (u.last == "0" ? "1" : "0")
            data["uscc"] = .string(wrong)
            return Fixtures.event(
                "business.registered", .object(data), subject: wrong, source: "/samr/xuchang", id: "samr-reg-\(seed)-\(i)")
        }
        return Fixtures.event("business.registered", .object(data), subject: u, source: "/samr/xuchang", id: "samr-reg-\(seed)-\(i)")
    }

    /// Every fact about merchant `i`, registration first.
    public func facts(of i: Int) -> [CloudEvent] {
        var rng = Fixtures(seed: seed ^ UInt64(i) &* 0x5851_F42D)
        let reg = registration(i, &rng)
        var out = [reg]
        let u = uscc(i)
        let individual = isIndividual(i)
        // Finance: most enterprises report; sizes spread from micro to medium, a few large.
        if !individual || rng.int(0...3) == 0, rng.int(0...9) > 0 {
            let scale = rng.int(0...99)
            let employees = Int64(
                scale < 60 ? rng.int(1...9) : scale < 90 ? rng.int(10...99) : scale < 99 ? rng.int(100...299) : rng.int(300...2_000))
            var revenue = Int64(rng.int(10...5_000)) * 1_000_000 / 10 * Int64(1 + employees / 10)
            if badEvery > 0, i % (badEvery * 3) == badEvery { revenue = -revenue }  // bad: negative money
            out.append(
                Fixtures.event(
                    "finance.reported",
                    [
                        "uscc": .string(u), "year": 2021, "employees": .int(employees), "operating_revenue_fen": .int(revenue),
                        "total_assets_fen": .int(revenue / 2),
                    ], subject: u, source: "/stats/xuchang", id: "fin-\(seed)-\(i)"))
        }
        let insured = Int64(rng.int(0...40))
        out.append(
            Fixtures.event(
                "social_insurance.reported", ["uscc": .string(u), "month": "2022-03", "insured_employees": .int(insured)], subject: u,
                source: "/si/xuchang", id: "si-\(seed)-\(i)"))
        out.append(
            Fixtures.event(
                "tax.period_reported",
                [
                    "uscc": .string(u), "period": "2022-03", "revenue_fen": .int(Int64(rng.int(1_000...2_000_000)) * 100),
                    "taxpayer_class": .string(individual || rng.int(0...3) > 0 ? "small_scale" : "general"),
                    "tax_paid_fen": .int(Int64(rng.int(0...500_000))), "tax_relief_fen": .int(Int64(rng.int(0...200_000))),
                ], subject: u, source: "/tax/xuchang", id: "tax-\(seed)-\(i)"))
        // Leases: half rent; of those a third from state property; some sublet onwards.
        if rng.int(0...1) == 0 {
            let state = rng.int(0...2) == 0
            let start = rng.int(0...5) == 0 ? "2022-05-01" : "2021-01-01"
            let end = rng.int(0...9) == 0 ? "2022-06-15" : "2024-12-31"
            var bad = false
            if badEvery > 0, i % (badEvery * 5) == badEvery * 2 { bad = true }  // bad: impossible date
            out.append(
                Fixtures.event(
                    "lease.registered",
                    [
                        "lease_id": .string("L-\(seed)-\(i)"), "tenant_uscc": .string(u),
                        "lessor": [
                            "name": .string(state ? "许昌市国有资产经营有限公司" : personName(&rng)),
                            "uscc": state ? .string(Self.stateLessorUSCC) : .null,
                            "ownership": .string(state ? (rng.int(0...1) == 0 ? "state_enterprise" : "government") : "private"),
                            "level": state ? .string(rng.int(0...1) == 0 ? "city" : "district") : .null,
                        ],
                        "sublease_of": .null, "use": "business", "monthly_rent_fen": .int(Int64(rng.int(800...20_000)) * 100),
                        "starts_on": .string(bad ? "2022-02-30" : start), "ends_on": .string(end),
                    ], subject: u, source: "/housing/xuchang", id: "lease-\(seed)-\(i)"))
        }
        if rng.int(0...4) == 0 {
            let from = rng.int(1...20)
            let days = rng.int(3...20)
            out.append(
                Fixtures.event(
                    "closure.reported",
                    [
                        "uscc": .string(u), "from": .string(String(format: "2022-04-%02d", from)),
                        "to": .string(CivilDate(year: 2022, month: 4, day: from)!.adding(days: days - 1).description),
                        "reason": "epidemic_control", "district": .string(district(i)),
                    ], subject: u, source: "/health/xuchang", id: "closure-\(seed)-\(i)"))
        }
        if floodHit(i) {
            out.append(
                Fixtures.event(
                    "damage.reported",
                    [
                        "uscc": .string(u), "event": "flood-2021-07", "loss_fen": .int(Int64(rng.int(1_000...200_000)) * 100),
                        "evidence": [.string("photo-\(i).jpg"), .string("survey-\(i).pdf")],
                    ], subject: u, source: "/emergency/xuchang", id: "damage-\(seed)-\(i)"))
        }
        if rng.int(0...49) == 0 {
            out.append(
                Fixtures.event(
                    "credit.flagged",
                    ["uscc": .string(u), "list": rng.int(0...1) == 0 ? "serious_violation" : "abnormal_operation", "since": "2021-11-01"],
                    subject: u, source: "/credit/xuchang", id: "credit-\(seed)-\(i)"))
        }
        // Verified accounts; every 150th merchant shares the account of the one before it.
        let accountOwner = i % 150 == 149 ? i - 1 : i
        var arng = Fixtures(seed: seed &+ UInt64(accountOwner))
        out.append(
            Fixtures.event(
                "account.verified",
                [
                    "uscc": .string(u), "bank": "中国工商银行许昌分行",
                    "account_no": .string("6222" + String(String(1_000_000_000_000_000 + arng.next() % 999_999_999_999_999).dropFirst())),
                    "holder_name": reg.data?["name"] ?? "", "verified_on": "2022-03-15",
                ], subject: u, source: "/bank/icbc-xuchang", id: "acct-\(seed)-\(i)"))
        if rng.int(0...99) == 0 {
            out.append(
                Fixtures.event(
                    "aid.received",
                    ["uscc": .string(u), "programme": "flood-relief-2021", "source": "市应急管理局", "amount_fen": 500_000, "on": "2021-08-20"],
                    subject: u, source: "/finance/xuchang", id: "aid-\(seed)-\(i)"))
        }
        if i % 1_000 == 500 {
            out.append(
                Fixtures.event(
                    "fraud.confirmed", ["uscc": .string(u), "finding": "虚报受灾损失", "confirmed_by": "区纪委监委"], subject: u,
                    source: "/audit/xuchang", id: "fraud-\(seed)-\(i)"))
        }
        return out
    }

    /// Every fact of the county, as JSON Lines.
    public func writeJSONLines(to path: String) throws -> Int {
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? h.close() }
        var count = 0
        var buffer = ""
        for i in 0..<merchants {
            for e in facts(of: i) {
                buffer += e.serialized()
                buffer += "\n"
                count += 1
            }
            if buffer.utf8.count > 1 << 20 {
                h.write(Data(buffer.utf8))
                buffer = ""
            }
        }
        h.write(Data(buffer.utf8))
        return count
    }
}
