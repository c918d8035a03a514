import Bus
import Foundation
import ServiceKit
import Synchronization

/// One service as the CLI addresses it.
public struct ServiceTarget: Sendable, Equatable {
    public var service: String
    public var intake: String
    public var feed: String
    public var replay: String

    public init(service: String, intake: String, feed: String, replay: String) {
        self.service = service
        self.intake = intake
        self.feed = feed
        self.replay = replay
    }

    public init(service: String, endpoints: NodeEndpoints) {
        self.init(service: service, intake: endpoints.intake, feed: endpoints.feed, replay: endpoints.replay)
    }
}

public enum EndpointResolver {
    public static let services = ["registry", "matcher", "notifier", "payments"]

    /// The endpoints of `service`: a flag beats `BANGFU_<SERVICE>_INTAKE|_REPLAY|_FEED`, which beats
    /// the DESIGN §3 default.
    public static func resolve(
        service: String, intake: String? = nil, replay: String? = nil, feed: String? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(CLIError) -> ServiceTarget {
        guard services.contains(service) else {
            throw CLIError(
                "unknown service \"\(service)\" (expected one of \(services.joined(separator: ", ")))", exitCode: ExitCodes.usage)
        }
        let d = DefaultEndpoints.of(service)
        let prefix = "BANGFU_\(service.uppercased())_"
        func pick(_ flag: String?, _ suffix: String, _ def: String) throws(CLIError) -> String {
            let (value, origin): (String, String)
            if let flag {
                (value, origin) = (flag, "--\(suffix.lowercased())")
            } else if let env = environment[prefix + suffix], !env.isEmpty {
                (value, origin) = (env, prefix + suffix)
            } else {
                return def
            }
            guard value.hasPrefix("tcp://") || value.hasPrefix("ipc://") || value.hasPrefix("inproc://") else {
                throw CLIError("\(origin): \"\(value)\" is not a tcp://, ipc:// or inproc:// endpoint", exitCode: ExitCodes.usage)
            }
            return value
        }
        let target = ServiceTarget(
            service: service, intake: try pick(intake, "INTAKE", d.intake), feed: try pick(feed, "FEED", d.feed),
            replay: try pick(replay, "REPLAY", d.replay))
        try CLICurve.configure(target, environment: environment)
        return target
    }
}

/// The CLI's CurveZMQ identity, for services whose `tcp://` endpoints require CURVE (DESIGN
/// §3.5): the operator's key pair (`BANGFU_CURVE_PUBLIC_KEY`, and the secret key from the file
/// `BANGFU_CURVE_SECRET_KEY_FILE` names — readable by its owner alone, as `bangfu keys generate
/// --secret-file` writes it — or, in clear, `BANGFU_CURVE_SECRET_KEY`; its public key in the
/// service's `curve-clients` allowlist) and each service's public key
/// (`BANGFU_<SERVICE>_SERVER_KEY`). Every socket the CLI opens to a `tcp://` endpoint of such a
/// service presents them; `ipc://` needs none.
public enum CLICurve {
    private static let table = Mutex<[String: CurveClientKeys]>([:])

    /// Records the keys for `target`'s tcp endpoints when the environment names the service's key.
    static func configure(_ target: ServiceTarget, environment: [String: String]) throws(CLIError) {
        let serverVar = "BANGFU_\(target.service.uppercased())_SERVER_KEY"
        guard let server = environment[serverVar], !server.isEmpty else { return }
        var secret = environment["BANGFU_CURVE_SECRET_KEY"].flatMap { $0.isEmpty ? nil : $0 }
        if let file = environment["BANGFU_CURVE_SECRET_KEY_FILE"], !file.isEmpty {
            guard secret == nil else {
                throw CLIError(
                    "BANGFU_CURVE_SECRET_KEY and BANGFU_CURVE_SECRET_KEY_FILE are both set: give the secret key one way",
                    exitCode: ExitCodes.usage)
            }
            do {
                secret = try SecretKeyFile.read(file, credentialsDirectory: nil)
            } catch let e as ConfigError {
                throw CLIError("BANGFU_CURVE_SECRET_KEY_FILE: \(e.message)", exitCode: ExitCodes.usage)
            } catch {
                throw CLIError("BANGFU_CURVE_SECRET_KEY_FILE: cannot read \(file)", exitCode: ExitCodes.usage)
            }
        }
        guard let pub = environment["BANGFU_CURVE_PUBLIC_KEY"], let secret, !pub.isEmpty else {
            throw CLIError(
                "\(serverVar) is set: the CLI needs its own key pair too (BANGFU_CURVE_PUBLIC_KEY, and BANGFU_CURVE_SECRET_KEY_FILE or BANGFU_CURVE_SECRET_KEY; bangfu keys generate)",
                exitCode: ExitCodes.usage)
        }
        for (name, value) in [(serverVar, server), ("BANGFU_CURVE_PUBLIC_KEY", pub), ("BANGFU_CURVE_SECRET_KEY", secret)]
        where value.utf8.count != 40 {
            throw CLIError("\(name) must be a 40-character Z85 key (bangfu keys generate)", exitCode: ExitCodes.usage)
        }
        let keys = CurveClientKeys(serverPublic: server, clientPublic: pub, clientSecret: secret)
        table.withLock { t in
            for ep in [target.intake, target.feed, target.replay] where Endpoint.isTCP(ep) { t[ep] = keys }
        }
    }

    /// The keys to present on `endpoint`, if its service requires CURVE.
    public static func keys(for endpoint: String) -> CurveClientKeys? {
        table.withLock { $0[endpoint] }
    }
}
