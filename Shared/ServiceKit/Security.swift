import Bus
import Foundation
import Logging
import Models
import Storage
import Yams

/// A service's CurveZMQ setup (DESIGN §3.5): its server identity on its three sockets, the ZAP
/// handler that admits only allowlisted client keys, the authorizer that binds each key to the
/// event types and `source` prefixes it may publish, and the keys it presents to its upstreams.
public struct ServiceSecurity: Sendable {
    public let server: CurveServer?
    public let zap: ZAPHandler?
    let clientKeys: CurveKeyPair?
    let upstreamServerKeys: [String: String]
    /// Whether the intake is reached over `tcp://`, where CURVE identifies each client.
    let intakeOverTCP: Bool

    public init(options: ServiceOptions, environment env: ServiceEnvironment) throws {
        upstreamServerKeys = options.upstreamServerKeys
        intakeOverTCP = Endpoint.isTCP(options.endpoints.intake)
        guard let pub = options.curvePublicKey, let sec = options.curveSecretKey, let file = options.curveClientsFile else {
            server = nil
            zap = nil
            clientKeys = nil
            return
        }
        let keys = CurveKeyPair(publicKey: pub, secretKey: sec)
        let s = CurveServer(keys: keys, grants: try Self.loadGrants(file))
        // Before read rights existed, a downstream service was listed with its name and key
        // alone; such a grant now lets the key do nothing at all.
        for g in s.grants where g.types.isEmpty && g.read.isEmpty && g.queries.isEmpty {
            env.logger.warning(
                "client grant gives no rights: it may neither publish nor read (add read: [feed, replay] for a downstream service)",
                metadata: ["client": "\(g.name)"])
        }
        server = s
        zap = ZAPHandler(context: env.context, server: s, logger: env.logger)
        clientKeys = keys
    }

    /// The allowlist file: a YAML list of `{name, key, types: [...], sources: [...], read: [...],
    /// queries: [...]}` (docs/operations.md §11). A grant with `types` must list its `sources`; a
    /// grant without `read` or `queries` reads nothing (publish only).
    public static func loadGrants(_ path: String) throws -> [ClientGrant] {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError("cannot read the client allowlist \(path)")
        }
        let loaded: Any?
        do {
            loaded = try Yams.load(yaml: text)
        } catch {
            throw ConfigError("\(path): not valid YAML: \(error)")
        }
        guard let list = loaded as? [[String: Any]] else {
            throw ConfigError("\(path): the client allowlist is a YAML list of {name, key, types, sources, read, queries, acts_as}")
        }
        return try list.enumerated().map { k, e in
            guard let name = e["name"] as? String, let key = e["key"] as? String, key.utf8.count == 40 else {
                throw ConfigError("\(path): entry \(k + 1) needs a name and a 40-character key")
            }
            // Fail closed: a scalar (`types: tax.period_reported`) or anything but a list of
            // non-empty strings is a mistake to report, never read as "no restriction".
            func list(_ field: String) throws -> [String] {
                guard let v = e[field], !(v is NSNull) else { return [] }
                guard let items = v as? [Any], let strings = items as? [String], !strings.contains(where: \.isEmpty) else {
                    throw ConfigError(
                        "\(path): entry \(k + 1) (\(name)): \(field) must be a YAML list of non-empty strings, e.g. \(field): [\"…\"]")
                }
                return strings
            }
            let known: Set<String> = ["name", "key", "types", "sources", "read", "queries", "acts_as"]
            if let unknown = e.keys.sorted().first(where: { !known.contains($0) }) {
                throw ConfigError(
                    "\(path): entry \(k + 1) (\(name)): unknown member \"\(unknown)\" (name, key, types, sources, read, queries, acts_as)")
            }
            let types = try list("types")
            let sources = try list("sources")
            // A grant that may publish names where from: without sources it would take any
            // `source`, the agency's own included.
            if !types.isEmpty && sources.isEmpty {
                throw ConfigError(
                    "\(path): entry \(k + 1) (\(name)): types needs sources, the source prefixes this key may publish from, e.g. sources: [\"/tax/\"]"
                )
            }
            var read: Set<ReadRight> = []
            for r in try list("read") {
                guard let right = ReadRight(rawValue: r) else {
                    throw ConfigError(
                        "\(path): entry \(k + 1) (\(name)): read takes \(ReadRight.allCases.map(\.rawValue).joined(separator: ", ")), not \"\(r)\""
                    )
                }
                read.insert(right)
            }
            let queries = try list("queries")
            if read.contains(.queries) && !queries.isEmpty {
                throw ConfigError(
                    "\(path): entry \(k + 1) (\(name)): read: [queries] grants every query; list queries to grant only some, not both")
            }
            var actsAs: String?
            if let v = e["acts_as"], !(v is NSNull) {
                guard let office = v as? String, !office.trimmingCharacters(in: .whitespaces).isEmpty else {
                    throw ConfigError(
                        "\(path): entry \(k + 1) (\(name)): acts_as must be the office this key decides for, e.g. acts_as: \"经开区招商局\"")
                }
                actsAs = office
            }
            return ClientGrant(
                name: name, publicKey: key, types: types, sources: sources, read: read, queries: queries, actsAs: actsAs)
        }
    }

    /// Refuses an event its publisher's key may not publish (`unauthorized`). Only over
    /// `tcp://`: CURVE runs there alone, and an `ipc://` or `inproc://` intake stays on this host
    /// (behind file permissions and the process boundary), where no client has a key to check.
    public var authorizer: IntakeAuthorizer? {
        guard let server, intakeOverTCP else { return nil }
        return { key, event in
            guard let grant = server.grant(for: key) else {
                return Rejection(.unauthorized, "no client key: this intake takes only CURVE clients in its allowlist")
            }
            if grant.allows(type: event.type, source: event.source) {
                guard let why = grant.decisionRefusal(type: event.type, by: event.data?["by"]?.stringValue) else { return nil }
                return Rejection(.unauthorized, field: "data.by", why)
            }
            // Name what is outside the grant: the type, or — for a type the key may publish — the
            // source, with the prefixes it may publish from (the key's holder knows its own grant).
            guard grant.mayPublish(type: event.type) else {
                return Rejection(
                    .unauthorized, field: "type",
                    "the key of \(grant.name) may not publish \(event.type.prefix(80)) from \(event.source.prefix(80))")
            }
            return Rejection(
                .unauthorized, field: "source",
                "the key of \(grant.name) may publish \(event.type.prefix(80)) only from \(grant.sources.joined(separator: ", ").prefix(200)), not from \(event.source.prefix(80))"
            )
        }
    }

    /// Applies the server side to a node's settings.
    public func secure(_ settings: inout NodeSettings) { settings.curve = server }

    /// The keys for subscribing to `upstream` (nil when it is not CURVE-secured).
    public func clientKeys(for upstream: String) -> CurveClientKeys? {
        guard let mine = clientKeys, let theirs = upstreamServerKeys[upstream] else { return nil }
        return CurveClientKeys(serverPublic: theirs, clientPublic: mine.publicKey, clientSecret: mine.secretKey)
    }
}

extension ServiceEnvironment {
    /// One subscriber per upstream in `options`, each presenting this service's CURVE keys to
    /// its upstream and honouring the test hook that drops live events; recorded in `handle`
    /// for the status query.
    public func subscribers(
        options: ServiceOptions, consumer: any FeedConsumer, security: ServiceSecurity, handle: ServiceHandle, logger: Logger
    ) -> [FeedSubscriber] {
        var subs: [FeedSubscriber] = []
        for u in options.upstreams {
            var drop: (@Sendable (UInt64) -> Bool)?
            if let dropLive {
                let name = u.name
                drop = { seq in dropLive(name, seq) }
            }
            var settings = SubscriberSettings()
            settings.curve = security.clientKeys(for: u.name)
            // An upstream's events obey the same limit as this service's own sockets.
            settings.socket.maxMessageBytes = options.maxMessageBytes
            subs.append(
                FeedSubscriber(upstream: u, context: context, consumer: consumer, settings: settings, logger: logger, dropLive: drop))
        }
        handle.subscribers = subs
        handle.zap = security.zap
        return subs
    }
}
