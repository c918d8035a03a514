import Bus
import Foundation
import GRDB
import Logging
import Models
import ServiceKit
import Storage

/// The registry's intake: validates every fact type, folds accepted facts into the merchant's
/// state and publishes `merchant.profiled` whenever the profile changes (same transaction).
public struct RegistryApplier: IntakeApplier {
    public typealias Command = Fact
    public let acceptedTypes: Set<String> = Set(Fact.types)
    /// Every refusal happens in `validate`: a fact about any USCC is kept.
    public let refusesWhileApplying = false
    let outbox: Outbox
    let clock: any WallClock
    /// The secret salt of this registry's personal-data fingerprints.
    let salt: String

    public init(outbox: Outbox, clock: any WallClock, salt: String) {
        self.outbox = outbox
        self.clock = clock
        self.salt = salt
    }

    /// A fact sent without a `subject` is still logged under its merchant.
    public func subject(of fact: Fact) -> String? { fact.uscc }

    public func validate(_ event: CloudEvent) throws(Rejection) -> Fact {
        let fact = try Fact.decode(type: event.type, data: event.data)
        if let subject = event.subject, subject != fact.uscc {
            throw Rejection(.invalidEnvelope, field: "subject", "subject must be the USCC the fact is about (\(fact.uscc))")
        }
        return fact
    }

    public func apply(_ fact: Fact, event: CloudEvent, db: Database) throws {
        var affected: [String] = []
        if case .lease(let lease) = fact {
            affected = try upsertLease(lease, db)
        } else {
            // One read and one write of the merchant row per fact.
            let row = try Row.fetchOne(
                db.cachedStatement(sql: "SELECT state, version, profile_hash FROM merchants WHERE uscc = ?"), arguments: [fact.uscc])
            var state = MerchantState()
            if let row {
                let data: Data = row["state"]
                state = MerchantState(json: try JSONParser.parse([UInt8](data)))
            }
            let previousAccount = state.account
            let wasRegistered = state.registration != nil
            let matchedBefore = state.account.map { Self.holderMatches($0, state) }
            state.apply(fact)
            var version: Int64 = row?["version"] ?? 0
            var hash: Data? = row?["profile_hash"]
            let update = try render(fact.uscc, state, db, version: version, hash: hash)
            if let update {
                version = update.version
                hash = update.hash
            }
            try db.cachedStatement(
                sql: """
                    INSERT INTO merchants(uscc, registered, version, state, profile_hash, updated_at) VALUES (?, ?, ?, ?, ?, ?)
                    ON CONFLICT(uscc) DO UPDATE SET registered = excluded.registered, version = excluded.version,
                        state = excluded.state, profile_hash = excluded.profile_hash, updated_at = excluded.updated_at
                    """
            ).execute(arguments: [
                fact.uscc, state.registration != nil, version, Data(state.json.serializedBytes()), hash, Timestamp.format(clock.now()),
            ])
            if let update { try publish(fact.uscc, update, db) }
            // The payee for payments (DESIGN §8): the account number in clear, on the internal feed
            // only (merchant.profiled carries it masked) — when the account changes, when the
            // registration arrives after the bank's verification, and when a change of name or
            // operator turns the real-name check (holder = registered name) one way or the other.
            if let account = state.account, state.registration != nil,
                account != previousAccount || !wasRegistered || matchedBefore != Self.holderMatches(account, state)
            {
                try publishPayee(fact.uscc, account, state: state, version: version, db)
            }
        }
        for uscc in affected { try republish(uscc, db) }
    }

    struct ProfileUpdate {
        var version: Int64
        var hash: Data
        /// The profile's compact JSON, without its version.
        var bytes: [UInt8]
    }

    /// The merchant's profile if it differs from the one last published (by fingerprint), with
    /// the next version; nil if unregistered or unchanged.
    func render(_ uscc: String, _ state: MerchantState, _ db: Database, version: Int64, hash: Data?) throws -> ProfileUpdate? {
        guard state.registration != nil,
            let profile = ProfileBuilder.build(uscc: uscc, state: state, leases: try leases(of: uscc, db), salt: salt)
        else { return nil }
        // The builder emits members in a fixed order, so the compact text is canonical; only its
        // fingerprint is kept, to tell whether the next profile differs.
        let bytes = profile.serializedBytes()
        let fingerprint = Data(SHA256.hash(bytes))
        if fingerprint == hash { return nil }
        return ProfileUpdate(version: version + 1, hash: fingerprint, bytes: bytes)
    }

    /// The real-name check (DESIGN §8): the account holder is the registered name, or for an
    /// individual business its operator.
    static func holderMatches(_ account: JSON, _ state: MerchantState) -> Bool {
        let name = state.registration?["name"]?.stringValue ?? ""
        let kind = state.registration?["kind"]?.stringValue ?? ""
        let operatorName = state.registration?["legal_rep"]?["name"]?.stringValue ?? ""
        let holder = account["holder_name"]?.stringValue ?? ""
        return holder == name || (kind == "individual" && holder == operatorName)
    }

    func publishPayee(_ uscc: String, _ account: JSON, state: MerchantState, version: Int64, _ db: Database) throws {
        let holder = account["holder_name"]?.stringValue ?? ""
        let number = account["account_no"]?.stringValue ?? ""
        let matches = Self.holderMatches(account, state)
        let data: JSON = [
            "uscc": .string(uscc), "bank": account["bank"] ?? .null, "account_no": .string(number), "holder_name": .string(holder),
            "holder_matches": .bool(matches), "verified_on": account["verified_on"] ?? .null,
            "fingerprint": .string(ProfileBuilder.fingerprint("account", number, salt: salt)),
        ]
        // The profile version makes each publication its own event: a check that turns false and
        // back again is two new events, never a repeat of an earlier id a consumer has seen.
        let id = "payee.verified/\(uscc)/\(version)/\(String(SHA256.hex(data.serialized(sortedKeys: true)).prefix(16)))"
        try outbox.append(db, type: "payee.verified", subject: uscc, id: id, data: data)
    }

    /// Appends `merchant.profiled`: the profile with its version as the last member.
    func publish(_ uscc: String, _ update: ProfileUpdate, _ db: Database) throws {
        var bytes = update.bytes
        bytes.removeLast()
        bytes.append(contentsOf: Array(",\"version\":\(update.version)}".utf8))
        try outbox.append(db, type: "merchant.profiled", subject: uscc, id: "merchant.profiled/\(uscc)/\(update.version)", rawData: bytes)
    }

    // MARK: Leases

    /// Stores a lease and returns every merchant whose profile it may change: its tenant, the
    /// previous tenant if the lease changed hands, the tenant of the lease it sublets (now
    /// `sublet`), and the tenants further down its chain (their root lessor may change).
    func upsertLease(_ lease: LeaseRegistered, _ db: Database) throws -> [String] {
        var affected: [String] = [lease.tenantUSCC]
        if let old = try String.fetchOne(db, sql: "SELECT tenant_uscc FROM leases WHERE lease_id = ?", arguments: [lease.leaseId]),
            old != lease.tenantUSCC
        {
            affected.append(old)
        }
        var oldParent: String?
        if let row = try Row.fetchOne(db, sql: "SELECT sublease_of FROM leases WHERE lease_id = ?", arguments: [lease.leaseId]) {
            oldParent = row["sublease_of"]
        }
        try db.execute(
            sql: """
                INSERT INTO leases(lease_id, tenant_uscc, sublease_of, body) VALUES (?, ?, ?, ?)
                ON CONFLICT(lease_id) DO UPDATE SET tenant_uscc = excluded.tenant_uscc, sublease_of = excluded.sublease_of, body = excluded.body
                """, arguments: [lease.leaseId, lease.tenantUSCC, lease.subleaseOf, Data(lease.json.serializedBytes())])
        for parent in [lease.subleaseOf, oldParent].compactMap({ $0 }) {
            if let t = try String.fetchOne(db, sql: "SELECT tenant_uscc FROM leases WHERE lease_id = ?", arguments: [parent]) {
                affected.append(t)
            }
        }
        // Descendants, breadth first, bounded (a chain longer than this is refused as data).
        var frontier = [lease.leaseId]
        var seen: Set<String> = [lease.leaseId]
        var depth = 0
        while !frontier.isEmpty && depth < Self.maxChain {
            var next: [String] = []
            for id in frontier {
                for row in try Row.fetchAll(db, sql: "SELECT lease_id, tenant_uscc FROM leases WHERE sublease_of = ?", arguments: [id]) {
                    let child: String = row["lease_id"]
                    if seen.insert(child).inserted {
                        next.append(child)
                        affected.append(row["tenant_uscc"])
                    }
                }
            }
            frontier = next
            depth += 1
        }
        var unique: [String] = []
        for a in affected where !unique.contains(a) { unique.append(a) }
        return unique
    }

    static let maxChain = 16

    /// The tenant's leases as the profile shows them, each with its root lessor (following
    /// `sublease_of` up the chain) and whether it is itself sublet.
    func leases(of uscc: String, _ db: Database) throws -> [JSON] {
        let own = try Data.fetchAll(
            db.cachedStatement(sql: "SELECT body FROM leases WHERE tenant_uscc = ? ORDER BY lease_id"), arguments: [uscc]
        ).map { try JSONParser.parse([UInt8]($0)) }
        return try LeaseViews.resolve(
            own,
            parent: { id in
                try Data.fetchOne(db.cachedStatement(sql: "SELECT body FROM leases WHERE lease_id = ?"), arguments: [id])
                    .map { try JSONParser.parse([UInt8]($0)) }
            },
            subleases: { id in
                try Data.fetchAll(db.cachedStatement(sql: "SELECT body FROM leases WHERE sublease_of = ?"), arguments: [id])
                    .map { try JSONParser.parse([UInt8]($0)) }
            })
    }

    /// Recomputes a merchant's profile after a change outside its own row (a lease in its
    /// chain) and, if it changed, bumps its version and appends `merchant.profiled`.
    func republish(_ uscc: String, _ db: Database) throws {
        guard
            let row = try Row.fetchOne(
                db.cachedStatement(sql: "SELECT state, version, profile_hash FROM merchants WHERE uscc = ?"), arguments: [uscc])
        else { return }
        let stateData: Data = row["state"]
        let state = MerchantState(json: try JSONParser.parse([UInt8](stateData)))
        guard let update = try render(uscc, state, db, version: row["version"], hash: row["profile_hash"]) else { return }
        try db.cachedStatement(sql: "UPDATE merchants SET version = ?, profile_hash = ? WHERE uscc = ?")
            .execute(arguments: [update.version, update.hash, uscc])
        try publish(uscc, update, db)
    }
}

/// Builds the registry service: the same function `bangfu-registry`'s `main` and the tests call.
public enum RegistryService {
    public static let name = "registry"
    public static let eventSource = "/bangfu/registry"

    /// The registry's own settings, checked without a database (`--check-config` and every
    /// start): it has none beyond the common ones, and takes no upstream.
    public static func validate(options: ServiceOptions) throws {
        if let unknown = options.extra.keys.sorted().first {
            throw ConfigError("the registry has no setting \"\(unknown)\"")
        }
    }

    public static func build(options: ServiceOptions, environment env: ServiceEnvironment) throws -> BusService {
        var logger = env.logger
        logger[metadataKey: "service"] = "registry"
        let security = try ServiceSecurity(options: options, environment: env)
        let database = try RegistryDatabase(stateDir: options.stateDir)
        try SimulatedTime.restore(env.clock, from: database.db)
        let outbox = Outbox(source: eventSource, clock: env.clock, maxEventBytes: options.maxMessageBytes)
        let salt = try FingerprintSalt.load(database.db)
        let pipeline = IntakePipeline(
            database: database.db, applier: RegistryApplier(outbox: outbox, clock: env.clock, salt: salt), clock: env.clock,
            authorize: security.authorizer, logger: logger)
        var settings = NodeSettings()
        security.secure(&settings)
        settings.socket.maxMessageBytes = options.maxMessageBytes
        let handle = ServiceHandle()
        handle.zap = security.zap
        let queries = StandardQueries(
            service: name, database: database.db,
            live: { handle.figures(simulatedClock: options.simulatedClock, clock: env.clock) },
            extra: { req in
                if req["op"]?.stringValue == "merchant.facts" { return try MerchantFacts.respond(req, database.db) }
                guard req["op"]?.stringValue == "merchant.show" else { return nil }
                // A request without the USCC is the client's mistake, as quarantine.show without
                // its id: invalid_request, never "unknown op merchant.show".
                guard let uscc = req["uscc"]?.stringValue, !uscc.isEmpty else {
                    return [
                        "op": "error", "code": "invalid_request", "message": "uscc is required: {\"op\":\"merchant.show\",\"uscc\":\"…\"}",
                    ]
                }
                let applier = RegistryApplier(outbox: outbox, clock: env.clock, salt: salt)
                let profile = try database.db.writer.read { db -> JSON? in
                    guard let row = try Row.fetchOne(db, sql: "SELECT state, version FROM merchants WHERE uscc = ?", arguments: [uscc])
                    else {
                        return nil
                    }
                    let stateData: Data = row["state"]
                    let state = MerchantState(json: try JSONParser.parse([UInt8](stateData)))
                    guard
                        case .object(var o)? = ProfileBuilder.build(
                            uscc: uscc, state: state, leases: try applier.leases(of: uscc, db), salt: salt)
                    else {
                        return nil
                    }
                    o["version"] = .int(row["version"])
                    return .object(o)
                }
                guard let profile else {
                    return ["op": "error", "code": "not_found", "message": .string("no registered merchant \(uscc)")]
                }
                return ["op": "merchant", "profile": profile]
            })
        let node = ServiceNode(
            name: name, context: env.context, endpoints: options.endpoints, settings: settings, processor: pipeline,
            feed: OutboxFeedStore(database: database.db), responder: queries, logger: logger)
        handle.node = node
        return BusService(name: name, node: node, logger: logger, security: security)
    }
}
/// The registry's fingerprint salt: 32 random bytes made at first start and kept in the database
/// (a backup restores it, so fingerprints stay stable).
enum FingerprintSalt {
    static func load(_ database: ServiceDatabase) throws -> String {
        try database.writer.write { db in
            if let s = try String.fetchOne(db, sql: "SELECT value FROM bus_meta WHERE key = 'fingerprint_salt'") { return s }
            var rng = SystemRandomNumberGenerator()
            let salt = (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }.hexString
            try db.execute(sql: "INSERT INTO bus_meta(key, value) VALUES ('fingerprint_salt', ?)", arguments: [salt])
            return salt
        }
    }
}

/// `merchant.facts`: the facts the registry took about one merchant, oldest first, from its
/// intake log — which agency (`source`), the event's id and type, when it arrived, and its data
/// with resident IDs, bank accounts and phone numbers masked — so an auditor can go from an
/// entitlement's `profile_version` to the facts behind it. `after` (an intake sequence) and
/// `max` (1–1,000, default 200) page through a long history.
enum MerchantFacts {
    static func respond(_ req: JSON, _ database: ServiceDatabase) throws -> JSON {
        guard let uscc = req["uscc"]?.stringValue, !uscc.isEmpty else {
            return ["op": "error", "code": "invalid_request", "message": "uscc is required: {\"op\":\"merchant.facts\",\"uscc\":\"…\"}"]
        }
        let after = max(req["after"]?.intValue ?? 0, 0)
        let limit = Int(min(max(req["max"]?.intValue ?? 200, 1), 1_000))
        let rows = try database.writer.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT seq, source, event_id, type, received_at, body FROM bus_intake INDEXED BY bus_intake_subject
                    WHERE subject = ? AND seq > ? ORDER BY seq LIMIT ?
                    """, arguments: [uscc, after, limit])
        }
        let items: [JSON] = rows.map { r in
            let body: Data = r["body"]
            let data = (try? CloudEvent.parse([UInt8](body)))?.data ?? .null
            return [
                "seq": .int(r["seq"]), "source": .string(r["source"]), "id": .string(r["event_id"]), "type": .string(r["type"]),
                "received_at": .string(r["received_at"]), "data": masked(data),
            ]
        }
        return ["op": "merchant_facts", "uscc": .string(uscc), "items": .array(items), "more": .bool(items.count == limit)]
    }

    /// A fact as an operator or auditor may read it, masked like the profile: resident IDs, bank
    /// accounts and phone numbers (``Mask/personalData(in:)``), and natural persons' names — the
    /// legal representative, an account's holder (an individual business's is its operator), a
    /// lessor who is a person — with the street address shortened to its first characters.
    static func masked(_ data: JSON) -> JSON {
        guard case .object(var o) = Mask.personalData(in: data) else { return Mask.personalData(in: data) }
        if case .object(var rep)? = o["legal_rep"], let name = rep["name"]?.stringValue {
            rep["name"] = .string(Mask.name(name))
            o["legal_rep"] = .object(rep)
        }
        if let holder = o["holder_name"]?.stringValue { o["holder_name"] = .string(Mask.name(holder)) }
        if let address = o["address"]?.stringValue {
            o["address"] = .string(String(address.prefix(6)) + (address.count > 6 ? "…" : ""))
        }
        if o["lessor"] != nil { return ProfileBuilder.maskPersonLessor(.object(o)) }
        return .object(o)
    }
}
