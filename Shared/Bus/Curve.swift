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

/// What one client key may publish (DESIGN §3.5): event types (exact, or `prefix.*`) and
/// `source` prefixes. It fails closed: a grant with no types may publish nothing (a downstream
/// service that only follows the feed and asks replay questions needs none), and a grant with
/// types but no source prefixes may publish those types from any source. The tax bureau's key
/// cannot publish `account.verified`.
public struct ClientGrant: Sendable, Equatable {
    public var name: String
    public var publicKey: String
    public var types: [String]
    public var sources: [String]

    public init(name: String, publicKey: String, types: [String] = [], sources: [String] = []) {
        self.name = name
        self.publicKey = publicKey
        self.types = types
        self.sources = sources
    }

    public func allows(type: String, source: String) -> Bool {
        let typeOK = types.contains { $0 == type || ($0.hasSuffix(".*") && type.hasPrefix(String($0.dropLast()))) }
        let sourceOK = sources.isEmpty || sources.contains { source.hasPrefix($0) }
        return typeOK && sourceOK
    }
}

/// A service's CURVE identity and the clients it admits.
public struct CurveServer: Sendable {
    public var keys: CurveKeyPair
    public var grants: [ClientGrant]
    public var domain = "bangfu"

    public init(keys: CurveKeyPair, grants: [ClientGrant]) {
        self.keys = keys
        self.grants = grants
    }

    public func grant(for key: String?) -> ClientGrant? {
        guard let key else { return nil }
        return grants.first { $0.publicKey == key }
    }
}

extension ZSocket {
    /// Makes this socket a CURVE server that asks the ZAP handler about every client and fails
    /// closed (`ZMQ_ZAP_ENFORCE_DOMAIN`).
    public func applyCurveServer(_ s: CurveServer) throws(ZMQError) {
        try set(ZMQ_CURVE_SERVER, Int32(1))
        try set(ZMQ_CURVE_SECRETKEY, string: s.keys.secretKey)
        try set(ZMQ_ZAP_DOMAIN, string: s.domain)
        // ZMQ_ZAP_ENFORCE_DOMAIN (93) is a draft option; a libzmq built without the draft API
        // refuses it. The service then stays closed because its ZAP handler is bound before any
        // CURVE socket and outlives them all (a client is admitted only by the handler's 200).
        var enforce: Int32 = 1
        _ = zmq_setsockopt(handle, 93, &enforce, MemoryLayout<Int32>.size)
    }

    public func applyCurveClient(_ c: CurveClientKeys) throws(ZMQError) {
        try set(ZMQ_CURVE_SERVERKEY, string: c.serverPublic)
        try set(ZMQ_CURVE_PUBLICKEY, string: c.clientPublic)
        try set(ZMQ_CURVE_SECRETKEY, string: c.clientSecret)
    }
}

/// The ZAP handler (RFC 27) of one context: a REP socket at `inproc://zeromq.zap.01` on its own
/// thread. A CURVE client whose public key is in the allowlist is admitted, with its key as the
/// connection's User-Id (so the intake knows who published each event); any other is refused,
/// logged and counted.
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

    /// Connections refused (a key not in the allowlist, or not a CURVE client of this domain).
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
            if domain == server.domain, mechanism == "CURVE", f.count >= 7, f[6].count == 32 {
                let key = Self.z85(f[6])
                if let grant = server.grant(for: key) {
                    status = "200"
                    text = "OK"
                    userID = key
                    state.withLock { $0.admitted += 1 }
                    logger.debug("client admitted", metadata: ["client": "\(grant.name)"])
                } else {
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
