import BangfuTesting
import Bus
import CZeroMQ
import Foundation
import Logging
import Models
import ServiceKit
import Storage
import Synchronization
import Testing

/// Configuration and CURVE rules that fail closed (DESIGN §3.5, §11).
@Suite("Security configuration")
struct SecurityConfigTests {
    static func tempFile(_ text: String) throws -> String {
        let path = NSTemporaryDirectory() + "bangfu-clients-\(UUID().uuidString).yaml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static let key = String(repeating: "A", count: 40)

    @Test func aGrantWithoutTypesMayPublishNothing() {
        #expect(!ClientGrant(name: "matcher", publicKey: Self.key).allows(type: "account.verified", source: "/bank/x"))
        #expect(!ClientGrant(name: "m", publicKey: Self.key, sources: ["/bank/"]).allows(type: "account.verified", source: "/bank/x"))
        let tax = ClientGrant(name: "tax", publicKey: Self.key, types: ["tax.period_reported"], sources: ["/tax/"])
        #expect(tax.allows(type: "tax.period_reported", source: "/tax/xuchang"))
        #expect(!tax.allows(type: "account.verified", source: "/tax/xuchang"))
        #expect(!tax.allows(type: "tax.period_reported", source: "/bank/x"))
        let samr = ClientGrant(name: "samr", publicKey: Self.key, types: ["business.*"], sources: ["/samr"])
        #expect(samr.allows(type: "business.registered", source: "/samr/xuchang"))
    }

    @Test func scalarTypesOrSourcesAreAConfigurationError() throws {
        for entry in [
            "types: tax.period_reported", "sources: /tax/", "types: [tax.period_reported]\n  sources: /tax/", "types: [1, 2]",
            "types: [\"\"]", "type: [tax.period_reported]",
        ] {
            let path = try Self.tempFile("- name: tax-bureau\n  key: \"\(Self.key)\"\n  \(entry)\n")
            defer { try? FileManager.default.removeItem(atPath: path) }
            #expect(throws: ConfigError.self, "\(entry)") { try ServiceSecurity.loadGrants(path) }
            // --check-config reports it (and a real start exits 64 on the same check).
            var options = try ServiceOptions.parse(
                service: "registry",
                arguments: ["--curve-public-key", Self.key, "--curve-secret-key", Self.key, "--curve-clients", path], environment: [:])
            options.checkConfig = true
            #expect(throws: ConfigError.self) { try ServiceMain.check(options, validate: { _ in }) }
        }
        let path = try Self.tempFile(
            "- name: tax-bureau\n  key: \"\(Self.key)\"\n  types: [tax.period_reported]\n  sources: [/tax/]\n- name: matcher\n  key: \"\(Self.key)\"\n  read: [feed, replay]\n"
        )
        defer { try? FileManager.default.removeItem(atPath: path) }
        let grants = try ServiceSecurity.loadGrants(path)
        #expect(grants.map(\.types) == [["tax.period_reported"], []])
        #expect(!grants[1].allows(type: "tax.period_reported", source: "/tax/x"))
    }

    @Test func theKeyRuleAppliesOnlyToATCPIntake() throws {
        let path = try Self.tempFile("- name: tax-bureau\n  key: \"\(Self.key)\"\n  types: [tax.period_reported]\n  sources: [/tax/]\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let env = ServiceEnvironment(context: ZContext(), clock: TestClock(Date()), logger: Logger(label: "test"))
        func security(intake: String) throws -> ServiceSecurity {
            try ServiceSecurity(
                options: ServiceOptions.parse(
                    service: "registry",
                    arguments: [
                        "--curve-public-key", Self.key, "--curve-secret-key", Self.key, "--curve-clients", path, "--intake", intake,
                    ], environment: [:]), environment: env)
        }
        let event = CloudEvent(id: "1", source: "/samr/x", type: "business.registered")
        for onHost in ["ipc:///tmp/bangfu-intake-\(UUID().uuidString.prefix(8))", "inproc://intake"] {
            #expect(try security(intake: onHost).authorizer == nil, "\(onHost)")
        }
        let tcp = try #require(try security(intake: "tcp://127.0.0.1:7101").authorizer)
        #expect(tcp(nil, event)?.code == .unauthorized)
    }

    /// An event refused by the per-key rule names what is outside the grant: `type` when the key
    /// may not publish that type at all, `source` (with the prefixes it may use) when it may
    /// publish the type but not from that source — a bank sending from `/bank/ccb` under a grant
    /// for `/bank/icbc` is told to look at its source, not at a type it is allowed.
    @Test func anUnauthorizedSourceIsNamedAsTheSource() throws {
        let path = try Self.tempFile(
            "- name: bank-icbc\n  key: \"\(Self.key)\"\n  types: [account.verified]\n  sources: [/bank/icbc]\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let env = ServiceEnvironment(context: ZContext(), clock: TestClock(Date()), logger: Logger(label: "test"))
        let security = try ServiceSecurity(
            options: ServiceOptions.parse(
                service: "registry",
                arguments: [
                    "--curve-public-key", Self.key, "--curve-secret-key", Self.key, "--curve-clients", path, "--intake",
                    "tcp://127.0.0.1:7101",
                ], environment: [:]), environment: env)
        let authorize = try #require(security.authorizer)
        #expect(authorize(Self.key, CloudEvent(id: "1", source: "/bank/icbc/xuchang", type: "account.verified")) == nil)
        let wrongSource = authorize(Self.key, CloudEvent(id: "2", source: "/bank/ccb", type: "account.verified"))
        #expect(wrongSource?.code == .unauthorized)
        #expect(wrongSource?.field == "source")
        #expect(wrongSource?.message.contains("/bank/icbc") == true, "it says where the key may publish from")
        let wrongType = authorize(Self.key, CloudEvent(id: "3", source: "/bank/icbc", type: "tax.period_reported"))
        #expect(wrongType?.code == .unauthorized)
        #expect(wrongType?.field == "type")
        let both = authorize(Self.key, CloudEvent(id: "4", source: "/tax/x", type: "tax.period_reported"))
        #expect(both?.field == "type", "a type the key may not publish is named first")
    }

    /// A decision (a review, a hold's release or rejection, an objection's resolution) sent with a
    /// key is bound to the office the key acts as: one key cannot approve as both of flood
    /// relief's bureaus, and a key bound to no office decides nothing.
    @Test func aDecisionIsBoundToTheOfficeItsKeyActsAs() throws {
        let other = String(repeating: "B", count: 40)
        let path = try Self.tempFile(
            "- name: zhaoshang\n  key: \"\(Self.key)\"\n  types: [review.*, hold.*]\n  sources: [/ops/]\n  acts_as: 经开区招商局\n"
                + "- name: unbound\n  key: \"\(other)\"\n  types: [review.*]\n  sources: [/ops/]\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let grants = try ServiceSecurity.loadGrants(path)
        #expect(grants.map(\.actsAs) == ["经开区招商局", nil])
        let env = ServiceEnvironment(context: ZContext(), clock: TestClock(Date()), logger: Logger(label: "test"))
        let security = try ServiceSecurity(
            options: ServiceOptions.parse(
                service: "matcher",
                arguments: [
                    "--curve-public-key", Self.key, "--curve-secret-key", Self.key, "--curve-clients", path, "--intake",
                    "tcp://127.0.0.1:7104",
                ], environment: [:]), environment: env)
        let authorize = try #require(security.authorizer)
        func decision(_ type: String, by: String) -> CloudEvent {
            CloudEvent(id: UUID().uuidString, source: "/ops/x", type: type, data: ["entitlement_id": "ent-1", "by": .string(by)])
        }
        #expect(authorize(Self.key, decision("review.approved", by: "经开区招商局 张三")) == nil)
        #expect(authorize(Self.key, decision("hold.released", by: "经开区招商局 李四")) == nil)
        let asTheOtherBureau = authorize(Self.key, decision("review.approved", by: "市场监管经开区分局 张三"))
        #expect(asTheOtherBureau?.code == .unauthorized)
        #expect(asTheOtherBureau?.field == "data.by")
        #expect(authorize(other, decision("review.approved", by: "经开区招商局 张三"))?.code == .unauthorized)
        // Events that name no decision are not affected.
        #expect(ClientGrant.decisionTypes.contains("objection.resolved"))
        for bad in ["acts_as: \"\"", "acts_as: [a, b]"] {
            let p = try Self.tempFile("- name: x\n  key: \"\(Self.key)\"\n  types: [review.*]\n  sources: [/ops/]\n  \(bad)\n")
            defer { try? FileManager.default.removeItem(atPath: p) }
            #expect(throws: ConfigError.self, "\(bad)") { try ServiceSecurity.loadGrants(p) }
        }
    }

    @Test func onlyLiteralLoopbackAddressesAreLoopback() {
        for ep in [
            "tcp://127.0.0.1:7102", "tcp://127.1.2.3:1", "tcp://localhost:7102", "tcp://[::1]:7102", "tcp://LOCALHOST:1", "ipc:///tmp/x",
            "inproc://x",
        ] {
            #expect(Endpoint.isLocal(ep), "\(ep)")
        }
        for ep in [
            "tcp://127.example.com:7102", "tcp://127.0.0.1.example.com:1", "tcp://127.0.0.256:1", "tcp://127.0.0:1", "tcp://*:7102",
            "tcp://0.0.0.0:7102", "tcp://10.0.0.1:7102", "tcp://localhost.example.com:1", "tcp://127.0.0.1",
        ] {
            #expect(!Endpoint.isLocal(ep), "\(ep)")
        }
    }

    @Test func aRemoteUpstreamWithoutItsServerKeyIsRefusedWithCurveKeysToo() throws {
        let keys = ["--curve-public-key", Self.key, "--curve-secret-key", Self.key, "--curve-clients", "/dev/null"]
        let remote = ["--registry-feed", "tcp://10.0.0.5:7102", "--registry-replay", "tcp://10.0.0.5:7103"]
        func parse(_ args: [String]) throws -> ServiceOptions {
            try ServiceOptions.parse(service: "matcher", upstreams: ["registry"], arguments: args, environment: [:])
        }
        #expect(throws: ConfigError.self) { try parse(keys + remote) }
        #expect(throws: ConfigError.self) { try parse(remote) }
        #expect(throws: ConfigError.self) { try parse(["--registry-feed", "tcp://127.example.com:7102"]) }
        _ = try parse(keys + remote + ["--registry-server-key", Self.key])
        _ = try parse(keys + remote + ["--insecure"])
        _ = try parse(keys)  // loopback upstreams: plain TCP stays allowed there
    }

    @Test func checkConfigRunsTheServicesOwnValidation() throws {
        struct Refused: Error {}
        let options = try ServiceOptions.parse(
            service: "payments", extraKeys: ["batch-max-payments": ""], arguments: ["--batch-max-payments", "0"], environment: [:])
        #expect(throws: Refused.self) { try ServiceMain.check(options, validate: { _ in throw Refused() }) }
        // Without a hook, the build itself runs, on an in-memory database, and its refusal counts.
        let seen = Mutex<String??>(nil)
        #expect(throws: Refused.self) {
            try ServiceMain.check(
                options, validate: nil,
                build: { o, _ in
                    seen.withLock { $0 = .some(o.stateDir) }
                    throw Refused()
                })
        }
        #expect(seen.withLock { $0 } == .some(nil))
        try ServiceMain.check(options, validate: { _ in })
    }

    @Test func aZAPHandlerThatCannotBindFailsToStart() throws {
        let context = ZContext()
        defer { context.terminate() }
        let server = CurveServer(keys: try CurveKeyPair.generate(), grants: [])
        let first = ZAPHandler(context: context, server: server, logger: quietLogger())
        try first.start()
        defer { first.stopAndWait() }
        let second = ZAPHandler(context: context, server: server, logger: quietLogger())
        #expect(throws: ZAPError.self) { try second.start() }
        second.stopAndWait()  // returns at once: it never ran
    }

    @Test func zapRefusalsAreInTheStatusFigures() async throws {
        let context = ZContext()
        let serverKeys = try CurveKeyPair.generate()
        let stranger = try CurveKeyPair.generate()
        let server = CurveServer(keys: serverKeys, grants: [])
        let zap = ZAPHandler(context: context, server: server, logger: quietLogger())
        try zap.start()
        let handle = ServiceHandle()
        handle.zap = zap
        let endpoint = "ipc://" + NSTemporaryDirectory() + "bangfu-zap-\(UUID().uuidString.prefix(8))"
        let failedAuth: Bool = try await OwnerThread.run {
            let router = try context.socket(.router)
            defer { router.close() }
            try router.applyCurveServer(server, kind: .intake)
            try router.bind(endpoint)
            let dealer = try context.socket(.dealer)
            defer { dealer.close() }
            try dealer.applyCurveClient(
                CurveClientKeys(serverPublic: serverKeys.publicKey, clientPublic: stranger.publicKey, clientSecret: stranger.secretKey))
            let monitor = "inproc://zap-monitor-\(UUID().uuidString)"
            guard zmq_socket_monitor(dealer.handle, monitor, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) == 0 else { return false }
            let events = try context.socket(.pair)
            defer { events.close() }
            try events.connect(monitor)
            try dealer.connect(endpoint)
            var p = ZPoller([.socket(events)])
            return try p.poll(timeoutMs: 10_000)[0]
        }
        #expect(failedAuth)
        let figures = handle.figures(simulatedClock: false, clock: TestClock(Date()))
        #expect(figures["curve"]?["zap_refused"]?.intValue == 1)
        zap.stopAndWait()
        context.terminate()
    }

    /// `-h` is `--help`: the usage, which the service prints and exits 0 on (not an unknown argument).
    @Test func dashHIsHelp() throws {
        for flag in ["-h", "--help"] {
            do {
                _ = try ServiceOptions.parse(service: "registry", arguments: [flag], environment: [:])
                Issue.record("\(flag) parsed as a start")
            } catch let e as ConfigError {
                #expect(e.description.hasPrefix("usage: bangfu-registry"), "\(flag): \(e)")
            }
        }
    }

    /// An ipc:// path longer than a socket path may be is a configuration error (64, and
    /// `--check-config` says so), not a start that fails at bind.
    @Test func anIpcPathLongerThanASocketPathMayBeIsRefused() throws {
        let long = "ipc:///tmp/" + String(repeating: "d", count: 120) + "/intake"
        #expect(throws: ConfigError.self) {
            _ = try ServiceOptions.parse(service: "registry", arguments: ["--intake", long], environment: [:])
        }
        _ = try ServiceOptions.parse(service: "registry", arguments: ["--intake", "ipc:///run/bangfu/registry-intake"], environment: [:])
    }

    /// An allowlist that is not YAML at all names its file in the error.
    @Test func anUnreadableAllowlistNamesItsFile() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("clients-\(UUID().uuidString).yaml").path
        try "- name: tax\n  key: [unclosed\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            _ = try ServiceSecurity.loadGrants(path)
            Issue.record("broken YAML was taken")
        } catch let e as ConfigError {
            #expect(e.description.hasPrefix("\(path): not valid YAML"), "\(e)")
        }
    }
}
