import BangfuCLI
import BangfuTesting
import Bus
import Foundation
import Models
import Testing

/// The CLI against a service whose tcp:// endpoints require CurveZMQ (DESIGN §3.5): with the
/// operator's key pair and the service's public key in the environment it is let in; without,
/// it is not.
@Suite("bangfu CLI over CURVE", .serialized)
struct CurveCLITests {
    @Test func theCLIPresentsItsKeysToACurveService() async throws {
        let dir = "/tmp/bangfu-cli-curve-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try CurveKeyPair.generate()
        let operatorKeys = try CurveKeyPair.generate()
        try """
        - name: operator
          key: "\(operatorKeys.publicKey)"
          types: ["business.*"]
          sources: ["/samr/"]
          read: [queries, replay, feed]
        """.write(toFile: dir + "/clients.yaml", atomically: true, encoding: .utf8)
        let ep = (0..<3).map { _ in "tcp://127.0.0.1:\(ServiceProcess.freeLoopbackPort())" }
        let registry = try ServiceProcess(name: "bangfu-registry", dir: dir)
        defer { registry.cleanup(removeDirectory: false) }
        let p = try registry.launch(arguments: [
            "--state-dir", dir + "/registry", "--intake", ep[0], "--feed", ep[1], "--replay", ep[2], "--curve-public-key", server.publicKey,
            "--curve-secret-key", server.secretKey, "--curve-clients", dir + "/clients.yaml", "--log-level", "warning",
        ])
        defer {
            p.terminate()
            p.waitUntilExit()
        }
        let context = ZContext()
        defer { context.terminate() }
        let keyed: [String: String] = [
            "BANGFU_REGISTRY_SERVER_KEY": server.publicKey, "BANGFU_CURVE_PUBLIC_KEY": operatorKeys.publicKey,
            "BANGFU_CURVE_SECRET_KEY": operatorKeys.secretKey,
        ]
        // Half a configuration is a usage error, not a silent plain-text attempt.
        #expect(throws: CLIError.self) {
            _ = try EndpointResolver.resolve(
                service: "registry", intake: ep[0], replay: ep[2], feed: ep[1],
                environment: ["BANGFU_REGISTRY_SERVER_KEY": server.publicKey])
        }
        // Without keys: no answer (the handshake fails).
        let plain = try EndpointResolver.resolve(service: "registry", intake: ep[0], replay: ep[2], feed: ep[1], environment: [:])
        #expect(await StatusCommand.run(context: context, targets: [plain], timeoutMs: 300, console: CapturedConsole().console) == 1)
        // With the operator's keys: status answers (once the service is up), and a fact is published.
        let target = try EndpointResolver.resolve(service: "registry", intake: ep[0], replay: ep[2], feed: ep[1], environment: keyed)
        var up = false
        for _ in 0..<100 where !up {
            up = await StatusCommand.run(context: context, targets: [target], timeoutMs: 300, console: CapturedConsole().console) == 0
        }
        #expect(up, "status over CURVE")
        var f = Fixtures(seed: 131)
        var reg = f.registration(uscc: f.uscc(), name: "加密通道测试有限公司")
        reg.source = "/samr/xuchang"
        let out = CapturedConsole()
        let summary = try await PublishCommand.run(
            context: context, endpoint: target.intake, input: LineReader(text: reg.serialized() + "\n"), console: out.console)
        #expect(summary.accepted == 1, "\(out.out)")
        var tail = TailOptions()
        tail.max = 1
        let tailed = CapturedConsole()
        #expect(try await TailCommand.run(context: context, target: target, options: tail, console: tailed.console) == 0)
        #expect(tailed.out.contains(reg.subject ?? "-"), "the feed's replay over CURVE")

    }
}
