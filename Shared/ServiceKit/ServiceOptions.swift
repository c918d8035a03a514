import Bus
import Foundation
import Yams

#if canImport(Glibc)
    import Glibc
#endif

/// The default endpoints of DESIGN §3.
public enum DefaultEndpoints {
    public static let basePort: [String: Int] = ["registry": 7100, "matcher": 7200, "notifier": 7300, "payments": 7400]

    public static func of(_ service: String) -> NodeEndpoints {
        let base = basePort[service] ?? 7900
        return NodeEndpoints(
            intake: "tcp://127.0.0.1:\(base + 1)", feed: "tcp://127.0.0.1:\(base + 2)", replay: "tcp://127.0.0.1:\(base + 3)")
    }
}

/// A configuration error: what is wrong and where it came from.
public struct ConfigError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A service's settings (DESIGN §11): defaults, overridden by the config file (`--config`, YAML),
/// then by environment variables (`BANGFU_STATE_DIR`, `BANGFU_INTAKE`, …), then by flags.
public struct ServiceOptions: Sendable {
    public var service: String
    public var configFile: String?
    public var stateDir: String?
    public var endpoints: NodeEndpoints
    /// The upstream feeds this service follows, by name.
    public var upstreams: [UpstreamFeed]
    public var simulatedClock = false
    public var insecure = false
    public var checkConfig = false
    public var logLevel = "info"
    public var maxMessageBytes: Int64 = 1 << 20
    /// Service-specific settings, by flag name.
    public var extra: [String: String] = [:]
    /// This service's CurveZMQ identity (`curve-public-key`, `curve-secret-key`).
    public var curvePublicKey: String?
    public var curveSecretKey: String?
    /// The file the secret key was read from: `curve-secret-key-file`, or systemd's credential
    /// `curve-secret-key` (`$CREDENTIALS_DIRECTORY/curve-secret-key`, from `LoadCredential=`).
    public var curveSecretKeyFile: String?
    /// Settings that are valid but unsafe as given (a secret key on the command line, or in a
    /// config file that others may read): logged as warnings at start, printed by `--check-config`.
    public var cautions: [String] = []
    /// The allowlist of client keys with their rights (`curve-clients`, a YAML file).
    public var curveClientsFile: String?
    /// Each upstream's server public key (`<upstream>-server-key`).
    public var upstreamServerKeys: [String: String] = [:]
    /// Where each setting came from (for `--check-config`).
    public var origins: [String: String] = [:]
    /// `--reset-feed-cursor FEED=SEQ`: set that upstream feed's cursor (lifting a halt) and exit,
    /// without serving. A flag only, never from the config file or the environment.
    public var resetFeedCursor: (feed: String, sequence: UInt64)?

    public init(service: String, upstreams: [String] = []) {
        self.service = service
        endpoints = DefaultEndpoints.of(service)
        self.upstreams = upstreams.map { u in
            let d = DefaultEndpoints.of(u)
            return UpstreamFeed(name: u, feed: d.feed, replay: d.replay)
        }
    }

    static let booleanKeys: Set<String> = ["simulated-clock", "insecure", "check-config"]

    /// Parses settings. `extraKeys` are the service's own settings (with their defaults).
    public static func parse(
        service: String, upstreams: [String] = [], extraKeys: [String: String] = [:], arguments: [String],
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> ServiceOptions {
        var o = ServiceOptions(service: service, upstreams: upstreams)
        o.extra = extraKeys
        var keys: Set<String> = [
            "config", "state-dir", "intake", "feed", "replay", "log-level", "max-message-bytes", "curve-public-key", "curve-secret-key",
            "curve-secret-key-file", "curve-clients",
        ]
        keys.formUnion(booleanKeys)
        for u in upstreams { keys.formUnion(["\(u)-feed", "\(u)-replay", "\(u)-server-key"]) }
        if !upstreams.isEmpty { keys.insert("reset-feed-cursor") }
        keys.formUnion(extraKeys.keys)

        // Flags first (to find --config), applied last.
        var flags: [(String, String)] = []
        var i = 0
        while i < arguments.count {
            let arg = arguments[i]
            if arg == "-h" { throw ConfigError(usage(service: service, keys: keys)) }
            guard arg.hasPrefix("--") else { throw ConfigError("unexpected argument \(arg)") }
            var name = String(arg.dropFirst(2))
            var value: String?
            if let eq = name.firstIndex(of: "=") {
                value = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
            }
            if name == "help" { throw ConfigError(usage(service: service, keys: keys)) }
            guard keys.contains(name) else { throw ConfigError("unknown option --\(name)\n\(usage(service: service, keys: keys))") }
            if booleanKeys.contains(name) {
                flags.append((name, value ?? "true"))
            } else {
                if value == nil {
                    i += 1
                    guard i < arguments.count else { throw ConfigError("--\(name) needs a value") }
                    value = arguments[i]
                }
                flags.append((name, value!))
            }
            i += 1
        }
        let configPath = flags.last(where: { $0.0 == "config" })?.1 ?? environment["BANGFU_CONFIG"]
        var configMode: mode_t?
        if let configPath {
            o.configFile = configPath
            var st = stat()
            if stat(configPath, &st) == 0 { configMode = st.st_mode & 0o777 }
            let text: String
            do {
                text = try String(contentsOfFile: configPath, encoding: .utf8)
            } catch {
                throw ConfigError("cannot read config file \(configPath): \(error.localizedDescription)")
            }
            let loaded: Any?
            do {
                loaded = try Yams.load(yaml: text)
            } catch {
                throw ConfigError("config file \(configPath) is not valid YAML: \(error)")
            }
            if let map = loaded as? [String: Any] {
                for (k, v) in map.sorted(by: { $0.key < $1.key }) {
                    guard keys.contains(k), k != "config" else { throw ConfigError("\(configPath): unknown setting \"\(k)\"") }
                    try o.set(k, "\(v)", origin: "file \(configPath)")
                }
            } else if loaded != nil {
                throw ConfigError("config file \(configPath) must be a mapping of setting: value")
            }
        }
        for k in keys.sorted() where k != "config" {
            let env = "BANGFU_" + k.uppercased().replacingOccurrences(of: "-", with: "_")
            if let v = environment[env] { try o.set(k, v, origin: "env \(env)") }
        }
        if o.stateDir == nil, let sd = environment["STATE_DIRECTORY"], !sd.isEmpty {
            // systemd's StateDirectory= (may list several, colon-separated).
            o.stateDir = String(sd.split(separator: ":").first ?? "")
            o.origins["state-dir"] = "env STATE_DIRECTORY"
        }
        for (k, v) in flags where k != "config" { try o.set(k, v, origin: "flag --\(k)") }
        try o.loadSecretKey(environment: environment)
        o.cautions += o.secretKeyCautions(configMode: configMode)
        try o.validate()
        return o
    }

    mutating func set(_ key: String, _ value: String, origin: String) throws {
        func bool() throws -> Bool {
            switch value.lowercased() {
            case "true", "1", "yes", "on": return true
            case "false", "0", "no", "off": return false
            default: throw ConfigError("\(key) (\(origin)) must be true or false (or yes/no, on/off, 1/0), got \(value)")
            }
        }
        switch key {
        case "state-dir":
            guard !value.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw ConfigError("state-dir (\(origin)) is empty: give a directory, or leave the setting out")
            }
            stateDir = value
        case "intake": endpoints.intake = value
        case "feed": endpoints.feed = value
        case "replay": endpoints.replay = value
        case "simulated-clock": simulatedClock = try bool()
        case "insecure": insecure = try bool()
        case "check-config": checkConfig = try bool()
        case "log-level":
            guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(value) else {
                throw ConfigError("log-level (\(origin)) must be one of trace debug info notice warning error critical")
            }
            logLevel = value
        case "curve-public-key", "curve-secret-key":
            guard value.utf8.count == 40 else {
                throw ConfigError("\(key) (\(origin)) must be a 40-character Z85 key (bangfu keys generate)")
            }
            if key == "curve-public-key" { curvePublicKey = value } else { curveSecretKey = value }
        case "curve-secret-key-file":
            guard !value.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw ConfigError("curve-secret-key-file (\(origin)) is empty: give the key file's path, or leave the setting out")
            }
            curveSecretKeyFile = value
        case "curve-clients":
            curveClientsFile = value
        case "reset-feed-cursor":
            guard origin.hasPrefix("flag") else {
                throw ConfigError("reset-feed-cursor (\(origin)) is a one-off: give it as a flag to a stopped service, never in a config")
            }
            let parts = value.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, let seq = UInt64(parts[1]), upstreams.contains(where: { $0.name == parts[0] }) else {
                throw ConfigError(
                    "reset-feed-cursor must be FEED=SEQUENCE with FEED one of \(upstreams.map(\.name).joined(separator: ", ")), got \(value)"
                )
            }
            resetFeedCursor = (parts[0], seq)
        case _ where key.hasSuffix("-server-key"):
            guard value.utf8.count == 40 else { throw ConfigError("\(key) (\(origin)) must be a 40-character Z85 key") }
            upstreamServerKeys[String(key.dropLast("-server-key".count))] = value
        case "max-message-bytes":
            guard let v = Int64(value), v >= 1024 else { throw ConfigError("max-message-bytes (\(origin)) must be an integer ≥ 1024") }
            maxMessageBytes = v
        default:
            if let u = upstreams.firstIndex(where: { key == "\($0.name)-feed" }) {
                upstreams[u].feed = value
            } else if let u = upstreams.firstIndex(where: { key == "\($0.name)-replay" }) {
                upstreams[u].replay = value
            } else {
                extra[key] = value
            }
        }
        origins[key] = origin
    }

    func validate() throws {
        if (curvePublicKey == nil) != (curveSecretKey == nil) {
            throw ConfigError("curve-public-key and curve-secret-key go together")
        }
        if curvePublicKey != nil && curveClientsFile == nil {
            throw ConfigError("curve keys without curve-clients: give the allowlist of client keys (a YAML file)")
        }
        let ownKeys = curvePublicKey != nil && curveSecretKey != nil
        // This service's own sockets are CURVE servers when it has keys; an upstream is followed
        // over CURVE only when this service has keys and knows the upstream's server key.
        var all = [("intake", endpoints.intake, ownKeys), ("feed", endpoints.feed, ownKeys), ("replay", endpoints.replay, ownKeys)]
        for u in upstreams {
            let secured = ownKeys && upstreamServerKeys[u.name] != nil
            all += [("\(u.name)-feed", u.feed, secured), ("\(u.name)-replay", u.replay, secured)]
        }
        for (k, ep, secured) in all {
            guard ep.hasPrefix("tcp://") || ep.hasPrefix("ipc://") || ep.hasPrefix("inproc://") else {
                throw ConfigError("\(k): \(ep) is not a tcp://, ipc:// or inproc:// endpoint")
            }
            // A Unix socket path holds at most 107 bytes (sun_path); longer fails only at bind.
            if ep.hasPrefix("ipc://"), ep.utf8.count - "ipc://".utf8.count > 107 {
                throw ConfigError("\(k): the ipc:// path of \(ep) is longer than 107 bytes, the most a socket path may be")
            }
            if !Endpoint.isLocal(ep) && !insecure && !secured {
                let upstream = upstreams.first { k == "\($0.name)-feed" || k == "\($0.name)-replay" }
                if let upstream, ownKeys {
                    throw ConfigError(
                        "\(k): \(ep) is not on loopback and \(upstream.name)-server-key is not set, so it would be followed in plain TCP; give the upstream's public key, or --insecure to accept the risk"
                    )
                }
                throw ConfigError(
                    "\(k): \(ep) is not on loopback; plain TCP off loopback needs CURVE keys, or --insecure to accept the risk")
            }
        }
    }

    static func usage(service: String, keys: Set<String>) -> String {
        "usage: bangfu-\(service) "
            + keys.sorted().map { booleanKeys.contains($0) ? "[--\($0)]" : "[--\($0) VALUE]" }.joined(separator: " ")
    }

    /// A readable summary for `--check-config`: every setting with the value the service would
    /// use, `(default)` after each one no flag, variable or file set.
    public var summary: String { summary(effective: [:]) }

    /// The summary, with the service's own settings (`extra`) shown as `effective` has them —
    /// the value the service resolves, a default included (a directory under the state
    /// directory, a percentage, a built-in text) — rather than as given.
    public func summary(effective: [String: String]) -> String {
        func line(_ key: String, _ value: String, given: Bool? = nil) -> String {
            "\(key): \(value)" + ((given ?? (origins[key] != nil)) ? "" : " (default)")
        }
        var lines = [
            "service: \(service)",
            "config: \(configFile ?? "none")" + (configFile == nil ? " (default)" : ""),
            stateDir.map { line("state-dir", $0, given: true) } ?? "state-dir: (in memory)",
            line("intake", endpoints.intake), line("feed", endpoints.feed), line("replay", endpoints.replay),
        ]
        for u in upstreams {
            lines += [
                line("\(u.name)-feed", u.feed), line("\(u.name)-replay", u.replay),
                line("\(u.name)-server-key", upstreamServerKeys[u.name] ?? "none"),
            ]
        }
        lines += [
            line("simulated-clock", "\(simulatedClock)"), line("insecure", "\(insecure)"), line("log-level", logLevel),
            line("max-message-bytes", "\(maxMessageBytes)"),
            line("curve-public-key", curvePublicKey ?? "none"),
            // Never printed: a secret key in a terminal or a log is a secret key given away.
            line("curve-secret-key", curveSecretKey == nil ? "none" : "(set, not shown)"),
            line("curve-secret-key-file", curveSecretKeyFile ?? "none"),
            line("curve-clients", curveClientsFile ?? "none"),
        ]
        for (k, v) in extra.sorted(by: { $0.key < $1.key }) {
            // An empty value is the service's default, whoever wrote it.
            lines.append(line(k, effective[k] ?? (v.isEmpty ? "(the built-in default)" : v), given: origins[k] != nil && !v.isEmpty))
        }
        return lines.joined(separator: "\n")
    }
}
