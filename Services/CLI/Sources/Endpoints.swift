import Bus
import Foundation
import ServiceKit

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
        return ServiceTarget(
            service: service, intake: try pick(intake, "INTAKE", d.intake), feed: try pick(feed, "FEED", d.feed),
            replay: try pick(replay, "REPLAY", d.replay))
    }
}
