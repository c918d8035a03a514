import CZeroMQ
import Foundation
import Logging
import Models
import Synchronization

/// A CurveZMQ key pair, Z85-encoded (40 characters each).
public struct CurveKeyPair: Sendable, Equatable {
    public let publicKey: String
    public let secretKey: String

    public init(publicKey: String, secretKey: String) {
        self.publicKey = publicKey
        self.secretKey = secretKey
    }

    public static func generate() throws(ZMQError) -> CurveKeyPair {
        var pub = [CChar](repeating: 0, count: 41)
        var sec = [CChar](repeating: 0, count: 41)
        guard zmq_curve_keypair(&pub, &sec) == 0 else { throw ZMQError("zmq_curve_keypair") }
        func text(_ c: [CChar]) -> String { String(decoding: c.prefix(40).map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        return CurveKeyPair(publicKey: text(pub), secretKey: text(sec))
    }

    /// True for a 40-character Z85 key.
    public static func isKey(_ s: String) -> Bool {
        s.utf8.count == 40
            && s.utf8.allSatisfy {
                $0 > 0x20 && $0 < 0x7F && $0 != 0x22 && $0 != 0x27 && $0 != 0x2C && $0 != 0x3B && $0 != 0x5C && $0 != 0x5F && $0 != 0x60
                    && $0 != 0x7C && $0 != 0x7E
            }
    }
}

/// The sockets of a service a CURVE client can connect to, each with a ZAP domain of its own
/// (`bangfu-intake`, `bangfu-feed`, `bangfu-replay`), so that the ZAP handler knows which one a
/// client asks for and admits it only with the right to use it.
public enum CurveSocketKind: String, Sendable, CaseIterable {
    case intake, feed, replay
}

/// What a client key may read (DESIGN §3.5): the live feed, replay pages, operator queries.
public enum ReadRight: String, Sendable, CaseIterable {
    case feed, replay, queries
}

/// What one client key may do (DESIGN §3.5). Publishing: event types (exact, or `prefix.*`)
/// from `source` prefixes (matched on a `/` boundary: `/tax` covers `/tax` and `/tax/xuchang`,
/// not `/taxi`). Reading: the rights in `read` (the feed, replay, every operator query) and the
/// operator queries in `queries` (exact, or `prefix.*`). It fails closed: a grant with no types
/// may publish nothing, a grant with no sources may publish from no source, and a grant with no
/// `read` and no `queries` may read nothing — a publisher's key does not see the feed, replay
/// pages or quarantined frames. The tax bureau's key cannot publish `account.verified`.
public struct ClientGrant: Sendable, Equatable {
    public var name: String
    public var publicKey: String
    public var types: [String]
    public var sources: [String]
    public var read: Set<ReadRight>
    public var queries: [String]
    /// Whom the key decides for (a bureau such as `经开区招商局`): a decision it publishes
    /// (`ClientGrant.decisionTypes`) must name it at the start of its `by`, so that one key
    /// cannot approve as two reviewers or release a hold in another office's name.
    public var actsAs: String?

    /// Events whose `data.by` names who decided: a review, a hold's release or rejection, an
    /// objection's resolution.
    public static let decisionTypes: Set<String> = [
        "review.approved", "review.rejected", "hold.released", "hold.rejected", "objection.resolved",
    ]

    public init(
        name: String, publicKey: String, types: [String] = [], sources: [String] = [], read: Set<ReadRight> = [], queries: [String] = [],
        actsAs: String? = nil
    ) {
        self.name = name
        self.publicKey = publicKey
        self.types = types
        self.sources = sources
        self.read = read
        self.queries = queries
        self.actsAs = actsAs
    }

    /// Refuses a decision whose `by` does not start with the office this key acts as, and any
    /// decision from a key bound to no office (nil: allowed).
    public func decisionRefusal(type: String, by: String?) -> String? {
        guard Self.decisionTypes.contains(type) else { return nil }
        guard let actsAs else {
            return "the key of \(name) acts as no one (acts_as in its grant), so it may not decide \(type)"
        }
        guard let by, by.hasPrefix(actsAs) else {
            return "the key of \(name) acts as \(actsAs): by must start with it, got \"\((by ?? "").prefix(60))\""
        }
        return nil
    }

    static func matches(_ patterns: [String], _ value: String) -> Bool {
        patterns.contains { $0 == value || ($0.hasSuffix(".*") && value.hasPrefix(String($0.dropLast()))) }
    }

    /// `source` is `prefix` or below it: `/tax` and `/tax/` cover `/tax` and `/tax/xuchang`, never
    /// `/taxi-forged`.
    public static func source(_ source: String, isUnder prefix: String) -> Bool {
        let base = prefix.hasSuffix("/") ? String(prefix.dropLast()) : prefix
        return source == base || source.hasPrefix(base + "/")
    }

    public func allows(type: String, source: String) -> Bool {
        Self.matches(types, type) && sources.contains { Self.source(source, isUnder: $0) }
    }

    /// May publish events of `type` from some source (its `types` cover it).
    public func mayPublish(type: String) -> Bool { Self.matches(types, type) }

    /// May follow the live feed (the PUB socket).
    public var mayFollowFeed: Bool { read.contains(.feed) }
    /// May ask for replay pages.
    public var mayReplay: Bool { read.contains(.replay) }

    /// May ask the operator query `op` (`status`, `quarantine.list`, `merchant.show`, …).
    public func mayQuery(_ op: String) -> Bool { read.contains(.queries) || Self.matches(queries, op) }

    /// May connect to the socket of `kind` at all: the intake takes any listed key (a key that may
    /// publish nothing gets `unauthorized` acks, which say why); the feed needs `feed`; the replay
    /// socket needs `replay` or some query.
    public func mayConnect(to kind: CurveSocketKind) -> Bool {
        switch kind {
        case .intake: true
        case .feed: mayFollowFeed
        case .replay: mayReplay || read.contains(.queries) || !queries.isEmpty
        }
    }
}

/// A service's CURVE identity and the clients it admits.
public struct CurveServer: Sendable {
    public var keys: CurveKeyPair
    public var grants: [ClientGrant]
    /// The ZAP domains are this, a dash and the socket kind (`bangfu-feed`).
    public var domain = "bangfu"

    public init(keys: CurveKeyPair, grants: [ClientGrant]) {
        self.keys = keys
        self.grants = grants
    }

    public func grant(for key: String?) -> ClientGrant? {
        guard let key else { return nil }
        return grants.first { $0.publicKey == key }
    }

    /// The ZAP domain of a socket of `kind`.
    public func domain(for kind: CurveSocketKind) -> String { "\(domain)-\(kind.rawValue)" }

    /// The socket kind a ZAP domain names, nil for any other domain.
    public func kind(ofDomain d: String) -> CurveSocketKind? { CurveSocketKind.allCases.first { domain(for: $0) == d } }

    /// The ZAP handler's decision for a CURVE client presenting `key` to the socket whose
    /// domain is `zapDomain`: its grant when admitted, else why not.
    public func admit(key: String, zapDomain: String) -> Result<ClientGrant, ZAPRefusal> {
        guard let kind = kind(ofDomain: zapDomain) else { return .failure(.unknownDomain) }
        guard let grant = grant(for: key) else { return .failure(.notListed) }
        guard grant.mayConnect(to: kind) else { return .failure(.noRight(kind)) }
        return .success(grant)
    }
}

/// Why the ZAP handler refused a CURVE client.
public enum ZAPRefusal: Error, Equatable, Sendable {
    /// The key is not in the allowlist.
    case notListed
    /// The key is listed, but its grant gives no right to the socket it connects to.
    case noRight(CurveSocketKind)
    /// Not one of this service's domains.
    case unknownDomain
}

/// `ZMQ_ZAP_ENFORCE_DOMAIN`: libzmq 4.3 takes it without the draft API (its number is 93).
let zapEnforceDomain: Int32 = 93

extension ZSocket {
    /// Makes this socket (the service's socket of `kind`) a CURVE server that asks the ZAP
    /// handler about every client, in the socket's own ZAP domain, and fails closed
    /// (`ZMQ_ZAP_ENFORCE_DOMAIN`). Returns false when libzmq refused `ZMQ_ZAP_ENFORCE_DOMAIN`: the
    /// caller warns; the ZAP handler, bound before any CURVE socket and outliving them all,
    /// still admits a client only by its 200.
    @discardableResult
    public func applyCurveServer(_ s: CurveServer, kind: CurveSocketKind) throws(ZMQError) -> Bool {
        try set(ZMQ_CURVE_SERVER, Int32(1))
        try set(ZMQ_CURVE_SECRETKEY, string: s.keys.secretKey)
        try set(ZMQ_ZAP_DOMAIN, string: s.domain(for: kind))
        var enforce: Int32 = 1
        return zmq_setsockopt(handle, zapEnforceDomain, &enforce, MemoryLayout<Int32>.size) == 0
    }

    /// Reads `ZMQ_ZAP_ENFORCE_DOMAIN` back (1 when set).
    public func zapEnforceDomainSetting() throws(ZMQError) -> Int32 { try getInt32(zapEnforceDomain) }

    public func applyCurveClient(_ c: CurveClientKeys) throws(ZMQError) {
        try set(ZMQ_CURVE_SERVERKEY, string: c.serverPublic)
        try set(ZMQ_CURVE_PUBLICKEY, string: c.clientPublic)
        try set(ZMQ_CURVE_SECRETKEY, string: c.clientSecret)
    }
}

/// The ZAP handler (RFC 27) of one context: a REP socket at `inproc://zeromq.zap.01` on its own
/// thread. A CURVE client whose public key is in the allowlist is admitted to the intake, and to
/// the feed or the replay socket only when its grant has a read right there (each socket kind has
/// its own ZAP domain, which the request names), with its key as the connection's User-Id (so
/// the intake knows who published each event, and the replay socket who asks); any other is
/// refused, logged and counted.
public final class ZAPHandler: Sendable {
    let context: ZContext
    let server: CurveServer
    let logger: Logger
    let state = Mutex<(stopping: Bool, refused: Int, admitted: Int, bindError: String?, started: Bool)>((false, 0, 0, nil, false))
    let wake = WakePipe()
    private let finished = DispatchSemaphore(value: 0)
    private let bound = DispatchSemaphore(value: 0)

    public init(context: ZContext, server: CurveServer, logger: Logger) {
        self.context = context
        self.server = server
        self.logger = logger
    }

    /// Connections refused (a key not in the allowlist, a key without the right to that socket,
    /// or not a CURVE client of these domains).
    public var refused: Int { state.withLock { $0.refused } }
    /// Connections admitted.
    public var admitted: Int { state.withLock { $0.admitted } }

    /// Starts the handler's thread and returns once it is bound. Throws if the system refuses
    /// a thread or the handler cannot bind (`ZAPError.bindFailed`, e.g. another handler already
    /// holds this context's ZAP endpoint): without its own handler the service must not start.
    public func start() throws {
        try DedicatedThread.start(name: "zap") { [self] in self.threadMain() }
        bound.wait()
        if let error = state.withLock({ $0.bindError }) {
            finished.wait()
            throw ZAPError.bindFailed(error)
        }
        state.withLock { $0.started = true }
    }

    public func stopAndWait() {
        let started = state.withLock { s -> Bool in
            s.stopping = true
            return s.started
        }
        wake.wake()
        if started { finished.wait() }
    }

    private func threadMain() {
        defer { finished.signal() }
        let rep: ZSocket
        do {
            rep = try context.socket(.rep)
        } catch {
            state.withLock { $0.bindError = "\(error)" }
            bound.signal()
            return
        }
        defer { rep.close() }
        do {
            try rep.set(ZMQ_LINGER, Int32(0))
            try rep.bind("inproc://zeromq.zap.01")
        } catch {
            logger.critical("cannot bind the ZAP handler", metadata: ["error": "\(error)"])
            state.withLock { $0.bindError = "\(error)" }
            bound.signal()
            return
        }
        bound.signal()
        var poller = ZPoller([.socket(rep), .fd(wake.readFD)])
        while !state.withLock({ $0.stopping }) {
            guard let r = try? poller.poll(timeoutMs: 500) else { continue }
            if r[1] { wake.drain() }
            guard r[0], let msg = try? rep.receive(dontWait: true, maxFrames: 16) else { continue }
            let f = msg.frames
            guard f.count >= 6 else { continue }
            let version = f[0]
            let requestID = f[1]
            let domain = String(decoding: f[2], as: UTF8.self)
            let mechanism = String(decoding: f[5], as: UTF8.self)
            var status = "400"
            var text = "refused"
            var userID = ""
            if server.kind(ofDomain: domain) != nil, mechanism == "CURVE", f.count >= 7, f[6].count == 32 {
                let key = Self.z85(f[6])
                switch server.admit(key: key, zapDomain: domain) {
                case .success(let grant):
                    status = "200"
                    text = "OK"
                    userID = key
                    state.withLock { $0.admitted += 1 }
                    logger.debug("client admitted", metadata: ["client": "\(grant.name)", "domain": "\(domain)"])
                case .failure(.noRight(let kind)):
                    state.withLock { $0.refused += 1 }
                    logger.warning(
                        "client key refused: its grant has no right to this socket",
                        metadata: [
                            "client": "\(server.grant(for: key)?.name ?? "?")", "socket": "\(kind.rawValue)", "key": "\(key.prefix(8))…",
                        ])
                case .failure:
                    state.withLock { $0.refused += 1 }
                    logger.warning("client key refused: not in the allowlist", metadata: ["key": "\(key.prefix(8))…"])
                }
            } else {
                state.withLock { $0.refused += 1 }
                logger.warning("client refused: not a CURVE client of this domain", metadata: ["mechanism": "\(mechanism)"])
            }
            _ = try? rep.send(
                [version, requestID, Array(status.utf8), Array(text.utf8), Array(userID.utf8), []], dontWait: false)
        }
    }

    static func z85(_ key: [UInt8]) -> String {
        var out = [CChar](repeating: 0, count: 41)
        _ = key.withUnsafeBufferPointer { zmq_z85_encode(&out, $0.baseAddress, 32) }
        return String(decoding: out.prefix(40).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

public enum ZAPError: Error, CustomStringConvertible {
    case bindFailed(String)

    public var description: String {
        switch self {
        case .bindFailed(let s): "cannot bind the ZAP handler at inproc://zeromq.zap.01: \(s)"
        }
    }
}
