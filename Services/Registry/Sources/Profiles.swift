import Foundation
import GRDB
import Models
import Storage

/// The registry's database façade: merchants (the facts joined per USCC), leases (a global table,
/// since sublease chains cross merchants), on top of the shared bus tables.
public struct RegistryDatabase: Sendable {
    public let db: ServiceDatabase

    public init(stateDir: String?) throws {
        db = try ServiceDatabase(stateDir: stateDir, name: "registry", migrations: Self.migrations)
    }

    static func migrations(_ m: inout DatabaseMigrator) {
        m.registerMigration("registry-v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE merchants (
                        id INTEGER PRIMARY KEY,
                        uscc TEXT NOT NULL UNIQUE,
                        registered INTEGER NOT NULL DEFAULT 0,
                        version INTEGER NOT NULL DEFAULT 0,
                        state BLOB NOT NULL,
                        profile_hash BLOB,
                        updated_at TEXT NOT NULL
                    );
                    CREATE TABLE leases (
                        lease_id TEXT PRIMARY KEY,
                        tenant_uscc TEXT NOT NULL,
                        sublease_of TEXT,
                        body BLOB NOT NULL
                    ) WITHOUT ROWID;
                    CREATE INDEX leases_tenant ON leases(tenant_uscc);
                    CREATE INDEX leases_parent ON leases(sublease_of);
                    """)
        }
        // merchant.facts: the intake log by merchant (facts sent without a subject are logged
        // under their USCC from now on; those logged before without one are not found by it).
        m.registerMigration("registry-v2-intake-by-subject") { db in
            try db.execute(sql: "CREATE INDEX bus_intake_subject ON bus_intake(subject, seq)")
        }
    }
}

/// Everything the registry knows of one merchant, as stored (unmasked: this is the registry's
/// own database). Facts may arrive before the registration; they wait here and join the profile
/// when it arrives.
struct MerchantState {
    var registration: JSON?
    /// The latest `business.status_changed` by date.
    var statusChange: JSON?
    var finance: JSON?
    var tax: [String: JSON] = [:]
    var socialInsurance: [String: JSON] = [:]
    var closures: [JSON] = []
    var damages: [String: JSON] = [:]
    var credit: [String: JSON] = [:]
    /// The latest clearance date per list, kept so that a clearance that arrives before its flag
    /// (feeds arrive in any order) still clears it.
    var creditCleared: [String: JSON] = [:]
    var account: JSON?
    var aid: [JSON] = []
    var fraud: [JSON] = []

    static let historyMonths = 24

    init() {}

    init(json: JSON) {
        registration = json["registration"].flatMap { $0.isNull ? nil : $0 }
        statusChange = json["status_change"].flatMap { $0.isNull ? nil : $0 }
        finance = json["finance"].flatMap { $0.isNull ? nil : $0 }
        tax = Self.dict(json["tax"])
        socialInsurance = Self.dict(json["social_insurance"])
        closures = json["closures"]?.arrayValue ?? []
        damages = Self.dict(json["damages"])
        credit = Self.dict(json["credit"])
        creditCleared = Self.dict(json["credit_cleared"])
        account = json["account"].flatMap { $0.isNull ? nil : $0 }
        aid = json["aid"]?.arrayValue ?? []
        fraud = json["fraud"]?.arrayValue ?? []
    }

    static func dict(_ j: JSON?) -> [String: JSON] {
        var out: [String: JSON] = [:]
        for (k, v) in j?.objectValue?.members ?? [] { out[k] = v }
        return out
    }

    static func object(_ d: [String: JSON]) -> JSON {
        var o = JSONObject()
        for k in d.keys.sorted() { o[k] = d[k]! }
        return .object(o)
    }

    var json: JSON {
        var o = JSONObject()
        o["registration"] = registration ?? .null
        o["status_change"] = statusChange ?? .null
        o["finance"] = finance ?? .null
        o["tax"] = Self.object(tax)
        o["social_insurance"] = Self.object(socialInsurance)
        o["closures"] = .array(closures)
        o["damages"] = Self.object(damages)
        o["credit"] = Self.object(credit)
        if !creditCleared.isEmpty { o["credit_cleared"] = Self.object(creditCleared) }
        o["account"] = account ?? .null
        o["aid"] = .array(aid)
        o["fraud"] = .array(fraud)
        return .object(o)
    }

    /// Folds one fact in. Facts of the same kind are ordered by their own dates, not by arrival,
    /// since agencies' feeds arrive in any order; on a tie the later arrival wins.
    mutating func apply(_ fact: Fact) {
        switch fact {
        case .registered(let f):
            registration = f.json
        case .statusChanged(let f):
            if let old = statusChange?["on"]?.stringValue, old > f.on.description { return }
            statusChange = f.json
        case .finance(let f):
            if let y = finance?["year"]?.intValue, y > Int64(f.year) { return }
            finance = f.json
        case .tax(let f):
            tax[f.period.description] = f.json
            Self.trim(&tax)
        case .socialInsurance(let f):
            socialInsurance[f.month.description] = f.json
            Self.trim(&socialInsurance)
        case .lease:
            break  // kept in the leases table
        case .closure(let f):
            let j = f.json
            if !closures.contains(j) { closures.append(j) }
            closures.sort { ($0["from"]?.stringValue ?? "") < ($1["from"]?.stringValue ?? "") }
        case .damage(let f):
            damages[f.event] = f.json
        case .creditFlagged(let f):
            if let cleared = creditCleared[f.list.rawValue]?.stringValue, cleared >= f.since.description { return }
            credit[f.list.rawValue] = f.json
        case .creditCleared(let f):
            let on = f.since.description
            if let old = creditCleared[f.list.rawValue]?.stringValue, old >= on {
                // an older clearance adds nothing
            } else {
                creditCleared[f.list.rawValue] = .string(on)
            }
            if let since = credit[f.list.rawValue]?["since"]?.stringValue, since <= on {
                credit[f.list.rawValue] = nil
            }
        case .accountVerified(let f):
            if let old = account?["verified_on"]?.stringValue, old > f.verifiedOn.description { return }
            account = f.json
        case .aidReceived(let f):
            let j = f.json
            if !aid.contains(j) { aid.append(j) }
        case .fraudConfirmed(let f):
            let j = f.json
            if !fraud.contains(j) { fraud.append(j) }
        }
    }

    static func trim(_ d: inout [String: JSON]) {
        while d.count > historyMonths, let oldest = d.keys.min() { d[oldest] = nil }
    }
}

/// Builds the published `merchant.profiled` data (DESIGN §4) from the stored state: derived tags,
/// latest figures, leases with their root lessor, and personal data masked (a fingerprint lets
/// downstream services compare values without seeing them).
enum ProfileBuilder {
    /// A keyed fingerprint: the same value gives the same fingerprint within one registry (so
    /// downstream services can compare), but without the registry's secret salt an ID or phone
    /// number cannot be recovered by trying every value.
    /// The name as it may be shown in public (the disclosure board): an enterprise's as
    /// registered; an individual business's with its operator's name masked where it appears in
    /// it (`张三小吃店` → `张*小吃店`), so a trade name stays searchable while a natural person's
    /// name is not published (DESIGN §3.5, §9). A name that is all the operator's is masked whole.
    public static func publicName(name: String, kind: String?, operatorName: String) -> String {
        guard kind == "individual" else { return name }
        let person = operatorName.trimmingCharacters(in: .whitespaces)
        guard !person.isEmpty else { return Mask.name(name) }
        if name.contains(person) { return name.replacingOccurrences(of: person, with: Mask.name(person)) }
        return name
    }

    static func fingerprint(_ kind: String, _ value: String, salt: String) -> String {
        String(SHA256.hex("\(salt):\(kind):\(value)").prefix(32))
    }

    /// A natural person's name is masked. A lessor with a USCC, and any state enterprise or
    /// government office (an organisation whatever its registration shows), keeps it: the
    /// lessor must find its own rent waivers in the instruction files by that name.
    static func maskPersonLessor(_ lease: JSON) -> JSON {
        guard case .object(var l) = lease else { return lease }
        for key in ["lessor", "root_lessor"] {
            guard case .object(var who)? = l[key] else { continue }
            let organisation =
                who["uscc"]?.stringValue != nil || ["state_enterprise", "government"].contains(who["ownership"]?.stringValue ?? "")
            if !organisation, let name = who["name"]?.stringValue { who["name"] = .string(Mask.name(name)) }
            l[key] = .object(who)
        }
        return .object(l)
    }

    static func build(uscc: String, state: MerchantState, leases: [JSON], salt: String) -> JSON? {
        guard let reg = state.registration else { return nil }
        var o = JSONObject()
        o["uscc"] = .string(uscc)
        let name = reg["name"]?.stringValue ?? ""
        o["name"] = .string(name)
        let kind = reg["kind"]?.stringValue ?? "enterprise"
        o["kind"] = .string(kind)
        o["public_name"] = .string(Self.publicName(name: name, kind: kind, operatorName: reg["legal_rep"]?["name"]?.stringValue ?? ""))
        let industryText = reg["industry"]?.stringValue ?? ""
        o["industry"] = .string(industryText)
        o["district"] = reg["district"] ?? .null
        o["registered_on"] = reg["registered_on"] ?? .null
        var status = reg["status"]?.stringValue ?? "active"
        if let sc = state.statusChange, let on = sc["on"]?.stringValue, let s = sc["status"]?.stringValue,
            on >= (reg["registered_on"]?.stringValue ?? "")
        {
            status = s
        }
        o["status"] = .string(status)

        var rep = JSONObject()
        let repName = reg["legal_rep"]?["name"]?.stringValue ?? ""
        let repID = reg["legal_rep"]?["id_number"]?.stringValue ?? ""
        rep["name"] = .string(Mask.name(repName))
        rep["id_number"] = .string(Mask.idNumber(repID))
        rep["id_fingerprint"] = .string(fingerprint("id", repID, salt: salt))
        o["legal_rep"] = .object(rep)
        var contact = JSONObject()
        if let phone = reg["phone"]?.stringValue {
            contact["phone"] = .string(Mask.phone(phone))
            contact["phone_fingerprint"] = .string(fingerprint("phone", phone.filter(\.isNumber), salt: salt))
        } else {
            contact["phone"] = .null
            contact["phone_fingerprint"] = .null
        }
        contact["address_fingerprint"] =
            reg["address"]?.stringValue.map { .string(fingerprint("address", $0.filter { !$0.isWhitespace }, salt: salt)) } ?? .null
        o["contact"] = .object(contact)

        let industry = IndustryCode.parse(industryText)
        var finance: Finance?
        if let f = state.finance, let e = f["employees"]?.intValue, let r = f["operating_revenue_fen"]?.intValue,
            let a = f["total_assets_fen"]?.intValue
        {
            finance = Finance(employees: e, operatingRevenueFen: r, totalAssetsFen: a)
        }
        var tags = JSONObject()
        tags["size"] = .string(Classification.size(kind: kind, industry: industry, finance: finance).rawValue)
        tags["sector"] = industry.map { .string(Classification.sector(of: $0).rawValue) } ?? .null
        tags["service_industry"] = industry.map { .bool(Classification.serviceIndustry($0)) } ?? .null
        tags["priority_sector"] = industry.map { .bool(Classification.prioritySector($0)) } ?? .null
        o["tags"] = .object(tags)

        o["finance"] = state.finance.map { without($0, "uscc") } ?? .null
        let taxKeys = state.tax.keys.sorted()
        o["tax"] = taxKeys.last.map { without(state.tax[$0]!, "uscc") } ?? .null
        o["tax_history"] = .array(taxKeys.map { without(state.tax[$0]!, "uscc") })
        let siKeys = state.socialInsurance.keys.sorted()
        o["social_insurance"] = siKeys.last.map { without(state.socialInsurance[$0]!, "uscc") } ?? .null
        o["social_insurance_history"] = .array(siKeys.map { without(state.socialInsurance[$0]!, "uscc") })
        o["leases"] = .array(leases.map(maskPersonLessor))
        o["closures"] = .array(state.closures.map { without($0, "uscc") })
        o["damages"] = .array(state.damages.keys.sorted().map { without(state.damages[$0]!, "uscc") })
        o["credit_flags"] = .array(state.credit.keys.sorted().map { without(state.credit[$0]!, "uscc") })
        if let acc = state.account {
            var a = JSONObject()
            let number = acc["account_no"]?.stringValue ?? ""
            let holder = acc["holder_name"]?.stringValue ?? ""
            a["bank"] = acc["bank"] ?? .null
            a["account_no"] = .string(Mask.bankAccount(number))
            a["fingerprint"] = .string(fingerprint("account", number, salt: salt))
            a["holder_name"] = .string(kind == "individual" ? Mask.name(holder) : holder)
            a["holder_matches"] = .bool(holder == name || (kind == "individual" && holder == repName))
            a["verified_on"] = acc["verified_on"] ?? .null
            o["account"] = .object(a)
        } else {
            o["account"] = .null
        }
        o["aid"] = .array(state.aid.map { without($0, "uscc") })
        o["fraud"] = .array(state.fraud.map { without($0, "uscc") })
        o["disqualified"] = .bool(!state.fraud.isEmpty)
        return .object(o)
    }

    static func without(_ j: JSON, _ key: String) -> JSON {
        guard case .object(var o) = j else { return j }
        o[key] = nil
        return .object(o)
    }
}

/// How the profile shows a tenant's leases: each with its root lessor (following `sublease_of`
/// up the chain, at most `maxChain` hops, cycle-safe), whether the chain is complete, whether
/// the lease is itself sublet, and when (`sublets`: the terms of the leases that sublet it, so
/// a policy can tell a sublet in its period from one years before). The lookups come from the
/// database or, for benchmarks and tools, from memory.
public enum LeaseViews {
    public static let maxChain = 16

    public static func resolve(
        _ own: [JSON], parent: (String) throws -> JSON?, subleases: (String) throws -> [JSON]
    ) throws -> [JSON] {
        var out: [JSON] = []
        for lease in own {
            guard case .object(var l) = lease else { continue }
            let id = l["lease_id"]?.stringValue ?? ""
            var root: JSON? = l["lessor"]
            var next = l["sublease_of"]?.stringValue
            var complete = true
            var hops = 0
            var visited: Set<String> = [id]
            while let p = next {
                hops += 1
                guard hops <= maxChain, visited.insert(p).inserted, let pj = try parent(p) else {
                    complete = false
                    root = nil
                    break
                }
                root = pj["lessor"]
                next = pj["sublease_of"]?.stringValue
            }
            l["root_lessor"] = root ?? .null
            l["chain_complete"] = .bool(complete)
            let terms = try subleases(id).map { s -> JSON in
                ["lease_id": s["lease_id"] ?? .null, "starts_on": s["starts_on"] ?? .null, "ends_on": s["ends_on"] ?? .null]
            }
            l["sublet"] = .bool(!terms.isEmpty)
            func order(_ t: JSON) -> (String, String) { (t["starts_on"]?.stringValue ?? "", t["lease_id"]?.stringValue ?? "") }
            l["sublets"] = .array(terms.sorted { order($0) < order($1) })
            l["tenant_uscc"] = nil
            out.append(.object(l))
        }
        return out
    }
}

/// Profiles built in memory from facts, exactly as the registry builds them (same state folding,
/// same builder), for benchmarks and tools that need many profiles without the bus.
public enum OfflineProfiles {
    /// The profile of one merchant from its facts (in arrival order), or nil if unregistered.
    /// `leases` looks up any lease by id (for sublease chains); `subleases` gives the leases that
    /// sublet a lease onwards.
    public static func profile(
        uscc: String, facts: [Fact], version: Int64 = 1, salt: String = "offline", leases: (String) -> JSON? = { _ in nil },
        subleases: (String) -> [JSON] = { _ in [] }
    ) -> JSON? {
        var state = MerchantState()
        var own: [String: JSON] = [:]
        for f in facts {
            if case .lease(let l) = f {
                own[l.leaseId] = l.json
            } else {
                state.apply(f)
            }
        }
        let views =
            (try? LeaseViews.resolve(own.keys.sorted().map { own[$0]! }, parent: { own[$0] ?? leases($0) }, subleases: { subleases($0) }))
            ?? []
        guard case .object(var o)? = ProfileBuilder.build(uscc: uscc, state: state, leases: views, salt: salt) else { return nil }
        o["version"] = .int(version)
        return .object(o)
    }
}
