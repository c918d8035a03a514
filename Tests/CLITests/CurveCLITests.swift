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
        let bank = try CurveKeyPair.generate()
        try """
        - name: operator
          key: "\(operatorKeys.publicKey)"
          types: ["business.*"]
          sources: ["/samr/"]
          read: [queries, replay, feed]
        - name: bank
          key: "\(bank.publicKey)"
          types: ["account.verified"]
          sources: ["/bank/"]
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
        // The secret key from a file the operator alone may read (BANGFU_CURVE_SECRET_KEY_FILE),
        // as `bangfu keys generate --secret-file` writes it: the same keys as in clear.
        let keyFile = dir + "/operator.key"
        try (operatorKeys.secretKey + "\n").write(toFile: keyFile, atomically: true, encoding: .utf8)
        #expect(chmod(keyFile, 0o600) == 0)
        var fromFile = keyed
        fromFile["BANGFU_CURVE_SECRET_KEY"] = nil
        fromFile["BANGFU_CURVE_SECRET_KEY_FILE"] = keyFile
        let fileTarget = try EndpointResolver.resolve(service: "registry", intake: ep[0], replay: ep[2], feed: ep[1], environment: fromFile)
        #expect(CLICurve.keys(for: fileTarget.intake)?.clientSecret == operatorKeys.secretKey)
        // A key file its group or others may read, a missing one, or both ways at once: refused.
        #expect(chmod(keyFile, 0o644) == 0)
        do {
            _ = try EndpointResolver.resolve(service: "registry", intake: ep[0], replay: ep[2], feed: ep[1], environment: fromFile)
            Issue.record("a key file others may read was taken")
        } catch {
            #expect(error.message.contains("open to its group or to others"), "\(error.message)")
            #expect(error.exitCode == ExitCodes.usage)
        }
        #expect(chmod(keyFile, 0o600) == 0)
        var both = fromFile
        both["BANGFU_CURVE_SECRET_KEY"] = operatorKeys.secretKey
        #expect(throws: CLIError.self) {
            _ = try EndpointResolver.resolve(service: "registry", intake: ep[0], replay: ep[2], feed: ep[1], environment: both)
        }
        fromFile["BANGFU_CURVE_SECRET_KEY_FILE"] = dir + "/missing.key"
        #expect(throws: CLIError.self) {
            _ = try EndpointResolver.resolve(service: "registry", intake: ep[0], replay: ep[2], feed: ep[1], environment: fromFile)
        }
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

        // The bank publishes what its key may not (a registration): quarantined with its key.
        var forged = f.registration(uscc: f.uscc(), name: "冒名登记有限公司")
        forged.source = "/bank/icbc"
        var o = IntakeClientOptions()
        o.curve = CurveClientKeys(serverPublic: server.publicKey, clientPublic: bank.publicKey, clientSecret: bank.secretKey)
        let forgedAck = try await IntakeClient.publish(context: context, endpoint: ep[0], events: [OutgoingEvent(forged)], options: o)
        #expect(forgedAck[0].ack?.rejection?.code == .unauthorized)
        // The operator sends a registration with a wrong check digit: quarantined with the operator's key.
        let rightUSCC = f.uscc()
        let wrongUSCC = String(rightUSCC.dropLast()) + (rightUSCC.last == "0" ? "1" : "0")
        var bad = f.registration(uscc: wrongUSCC, name: "校验位错误有限公司")
        bad.source = "/samr/xuchang"
        var good = f.registration(uscc: rightUSCC, name: "校验位错误有限公司")
        good.id = bad.id
        good.source = bad.source
        let badOut = CapturedConsole()
        _ = try await PublishCommand.run(
            context: context, endpoint: target.intake, input: LineReader(text: bad.serialized() + "\n"), console: badOut.console)
        let list = CapturedConsole()
        #expect(try await QuarantineCommand.list(context: context, target: target, options: .init(), console: list.console) == 0)
        #expect(list.lines.first?.contains("  KEY  ") == true, "\(list.out)")
        let forgedRow = try #require(list.lines.first { $0.contains("unauthorized") })
        #expect(forgedRow.contains(String(bank.publicKey.prefix(8))))
        let badRow = try #require(list.lines.first { $0.contains("invalid_uscc") })
        #expect(badRow.contains(String(operatorKeys.publicKey.prefix(8))))
        let forgedID = String(forgedRow.prefix { $0 != " " })
        let badID = String(badRow.prefix { $0 != " " })
        let shown = CapturedConsole()
        _ = try await QuarantineCommand.show(context: context, target: target, id: forgedID, console: shown.console)
        #expect(shown.out.contains("sender_key:  \(bank.publicKey)"))

        // An unauthorized item is not re-sent under the operator's key without --force.
        var resubmit = QuarantineCommand.ResubmitOptions()
        resubmit.retries = 0
        resubmit.timeoutMs = 3_000
        do {
            _ = try await QuarantineCommand.resubmit(
                context: context, target: target, id: forgedID, options: resubmit, console: CapturedConsole().console)
            Issue.record("an unauthorized item was re-sent without --force")
        } catch {
            #expect(error.exitCode == ExitCodes.usage)
            #expect(error.message.contains(String(bank.publicKey.prefix(8))))
        }
        // With --force it goes to the CURVE intake, under the operator's key: the operator may
        // not publish it either (2: rejected, not 3: no answer).
        resubmit.force = true
        #expect(
            try await QuarantineCommand.resubmit(
                context: context, target: target, id: forgedID, options: resubmit, console: CapturedConsole().console) == ExitCodes.rejected
        )
        // A fixed event goes in through the CURVE intake with the operator's keys.
        let fixed = dir + "/fixed.json"
        try good.serialized().write(toFile: fixed, atomically: true, encoding: .utf8)
        resubmit.force = false
        resubmit.file = fixed
        let resubmitted = CapturedConsole()
        #expect(
            try await QuarantineCommand.resubmit(
                context: context, target: target, id: badID, options: resubmit, console: resubmitted.console)
                == ExitCodes.ok, "\(resubmitted.out)")
    }
}
