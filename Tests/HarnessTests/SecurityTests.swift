import BangfuTesting
import Bus
import Foundation
import Models
import Testing

/// CurveZMQ with a fail-closed ZAP allowlist (DESIGN §3.5), with the real executables over TCP
/// on loopback: a client without a key gets nothing; an unknown key is refused; the tax
/// bureau's key cannot publish `account.verified`, nor from a source that merely starts like its
/// own, nor read the registry's feed, replay or queries; the matcher follows the registry's feed
/// with its own key and read rights; the operator's key asks the queries.
@Suite("CURVE security", .serialized)
struct SecurityTests {
    @Test func onlyAllowlistedKeysPublishWhatTheirRightsAllow() async throws {
        let dir = "/tmp/bangfu-curve-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let registryKeys = try CurveKeyPair.generate()
        let matcherKeys = try CurveKeyPair.generate()
        let tax = try CurveKeyPair.generate()
        let samr = try CurveKeyPair.generate()
        let stranger = try CurveKeyPair.generate()
        let operatorKeys = try CurveKeyPair.generate()
        let allow = """
            - name: tax-bureau
              key: "\(tax.publicKey)"
              types: ["tax.period_reported"]
              sources: ["/tax/"]
            - name: market-regulation
              key: "\(samr.publicKey)"
              types: ["business.*"]
              sources: ["/samr/"]
            - name: matcher
              key: "\(matcherKeys.publicKey)"
              read: [feed, replay]
            - name: operator
              key: "\(operatorKeys.publicKey)"
              read: [queries]
            """
        try allow.write(toFile: dir + "/clients.yaml", atomically: true, encoding: .utf8)
        let ports = (0..<6).map { _ in ServiceProcess.freeLoopbackPort() }
        let ep = ports.map { "tcp://127.0.0.1:\($0)" }
        let context = ZContext()
        let registry = try ServiceProcess(name: "bangfu-registry", dir: dir, context: context)
        let matcher = try ServiceProcess(name: "bangfu-matcher", dir: dir, context: context)
        defer {
            registry.cleanup(removeDirectory: false)
            matcher.cleanup(removeDirectory: false)
        }
        // The registry: CURVE on all three sockets; the readiness probe needs a key, so the helper
        // cannot probe it: start it and probe with a key below.
        let registryArgs = [
            "--state-dir", dir + "/registry", "--intake", ep[0], "--feed", ep[1], "--replay", ep[2], "--curve-public-key",
            registryKeys.publicKey,
            "--curve-secret-key", registryKeys.secretKey, "--curve-clients", dir + "/clients.yaml", "--log-level", "warning",
        ]
        let p = try registry.launch(arguments: registryArgs)
        defer {
            p.terminate()
            p.waitUntilExit()
        }
        func keys(_ k: CurveKeyPair) -> CurveClientKeys {
            CurveClientKeys(serverPublic: registryKeys.publicKey, clientPublic: k.publicKey, clientSecret: k.secretKey)
        }
        var ready = false
        for _ in 0..<300 where !ready {
            ready =
                (try? QueryClient.request(context: context, endpoint: ep[2], ["op": "status"], timeoutMs: 200, curve: keys(operatorKeys)))
                ?? nil
                != nil
        }
        #expect(ready)

        func publish(_ e: CloudEvent, as k: CurveKeyPair?) async throws -> Ack? {
            var o = IntakeClientOptions()
            o.timeoutMs = 1_500
            o.retries = 0
            o.curve = k.map(keys)
            return try await IntakeClient.publish(context: context, endpoint: ep[0], events: [OutgoingEvent(e)], options: o)[0].ack
        }
        var f = Fixtures(seed: 101)
        let uscc = f.uscc()
        var reg = f.registration(uscc: uscc, name: "安全测试有限公司")
        reg.source = "/samr/xuchang"
        // Without a key, and with a key not in the allowlist: no answer at all (refused at the handshake).
        #expect(try await publish(reg, as: nil) == nil)
        #expect(try await publish(reg, as: stranger) == nil)
        // The market regulator may register businesses.
        #expect(try await publish(reg, as: samr)?.status == .accepted)
        // The tax bureau may report taxes from its own source, but not verify accounts.
        var taxEvent = Fixtures.event(
            "tax.period_reported",
            [
                "uscc": .string(uscc), "period": "2022-03", "revenue_fen": 1_000, "taxpayer_class": "small_scale", "tax_paid_fen": 0,
                "tax_relief_fen": 100,
            ],
            subject: uscc, source: "/tax/xuchang")
        #expect(try await publish(taxEvent, as: tax)?.status == .accepted)
        let account = Fixtures.event(
            "account.verified",
            [
                "uscc": .string(uscc), "bank": "工行", "account_no": "6222020000001234", "holder_name": "安全测试有限公司",
                "verified_on": "2022-03-01",
            ],
            subject: uscc, source: "/tax/xuchang")
        let refused = try await publish(account, as: tax)
        #expect(refused?.rejection?.code == .unauthorized)
        taxEvent.id = UUID().uuidString
        taxEvent.source = "/samr/xuchang"
        #expect(try await publish(taxEvent, as: tax)?.rejection?.code == .unauthorized, "the right source prefix is part of the grant")
        taxEvent.id = UUID().uuidString
        taxEvent.source = "/taxi-forged"
        #expect(try await publish(taxEvent, as: tax)?.rejection?.code == .unauthorized, "a source prefix ends at a /")

        // A publisher's key reads nothing: the replay socket refuses it at the handshake (no
        // answer to a replay or a query).
        for k in [tax, samr] {
            let replay = try QueryClient.request(
                context: context, endpoint: ep[2], ["op": "replay", "after": "0", "max": 100], timeoutMs: 1_000, curve: keys(k))
            #expect(replay == nil)
            #expect(
                try QueryClient.request(context: context, endpoint: ep[2], ["op": "quarantine.list"], timeoutMs: 1_000, curve: keys(k))
                    == nil)
        }
        // The operator asks queries but replays nothing.
        let quarantined = try QueryClient.request(context: context, endpoint: ep[2], ["op": "quarantine.list"], curve: keys(operatorKeys))
        #expect(quarantined?.last?["items"]?.arrayValue?.count == 3)
        #expect(quarantined?.last?["items"]?.arrayValue?.first?["sender_key"]?.stringValue == tax.publicKey)
        let operatorReplay = try QueryClient.request(
            context: context, endpoint: ep[2], ["op": "replay", "after": "0", "max": 100], curve: keys(operatorKeys))
        #expect(operatorReplay?.last?["code"]?.stringValue == "unauthorized")

        // The matcher follows the registry's CURVE feed with its own key.
        matcher.baseArguments = [
            "--registry-feed", ep[1], "--registry-replay", ep[2], "--registry-server-key", registryKeys.publicKey, "--curve-public-key",
            matcherKeys.publicKey, "--curve-secret-key", matcherKeys.secretKey, "--curve-clients", dir + "/clients.yaml",
            "--notifier-feed", "ipc://\(dir)/n-f", "--notifier-replay", "ipc://\(dir)/n-r", "--payments-feed", "ipc://\(dir)/p-f",
            "--payments-replay", "ipc://\(dir)/p-r",
        ]
        try await matcher.start()
        let registryLast = try QueryClient.request(context: context, endpoint: ep[2], ["op": "status"], curve: keys(operatorKeys))?.last?[
            "last"]?
            .stringValue
        #expect(registryLast == "2")
        var cursor: String?
        for _ in 0..<2_000 where cursor != registryLast {
            cursor = try await matcher.query(["op": "status"])["inbox"]?["registry"]?.stringValue
        }
        #expect(cursor == registryLast, "the matcher applied the registry's feed through CURVE")
        #expect(try await matcher.terminate() == 0)
    }
}
