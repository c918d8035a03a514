import BangfuTesting
import Bus
import CZeroMQ
import Foundation
import GRDB
import Logging
import Models
import ServiceKit
import Storage
import Synchronization
import Testing

/// What a CURVE client key may read (DESIGN §3.5): the feed, replay pages and operator queries
/// only with the read rights its grant lists; a publisher's key reads nothing.
@Suite("Read rights", .serialized)
struct ReadRightsTests {
    static let key = String(repeating: "A", count: 40)

    static func allowlist(_ text: String) throws -> String {
        let path = NSTemporaryDirectory() + "bangfu-clients-\(UUID().uuidString).yaml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func grantsReadTheirReadRightsAndQueries() throws {
        let path = try Self.allowlist(
            """
            - name: matcher
              key: "\(Self.key)"
              read: [feed, replay]
            - name: operator
              key: "\(Self.key)"
              types: ["business.*"]
              sources: ["/samr/"]
              read: [queries]
            - name: dashboard
              key: "\(Self.key)"
              queries: [status, "quarantine.*"]
            - name: tax-bureau
              key: "\(Self.key)"
              types: [tax.period_reported]
              sources: [/tax/]
            """)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let g = try ServiceSecurity.loadGrants(path)
        #expect(g[0].read == [.feed, .replay] && g[0].mayConnect(to: .feed) && g[0].mayConnect(to: .replay))
        #expect(g[0].mayReplay && !g[0].mayQuery("status"))
        #expect(g[1].mayQuery("quarantine.show") && g[1].mayQuery("merchant.show") && !g[1].mayReplay && !g[1].mayFollowFeed)
        #expect(g[1].mayConnect(to: .replay) && !g[1].mayConnect(to: .feed))
        #expect(g[2].mayQuery("status") && g[2].mayQuery("quarantine.list") && !g[2].mayQuery("merchant.show"))
        #expect(!g[2].mayReplay && g[2].mayConnect(to: .replay))
        // No read and no queries: publish only.
        #expect(g[3].read.isEmpty && !g[3].mayConnect(to: .feed) && !g[3].mayConnect(to: .replay) && g[3].mayConnect(to: .intake))
        #expect(!g[3].mayQuery("status"))
    }

    @Test func badReadRightsAndPublishingWithoutSourcesAreConfigurationErrors() throws {
        for entry in [
            "read: feed", "read: [everything]", "read: [queries]\n  queries: [status]", "queries: status",
            "types: [tax.period_reported]", "types: [tax.period_reported]\n  sources: []",
        ] {
            let path = try Self.allowlist("- name: tax-bureau\n  key: \"\(Self.key)\"\n  \(entry)\n")
            defer { try? FileManager.default.removeItem(atPath: path) }
            #expect(throws: ConfigError.self, "\(entry)") { try ServiceSecurity.loadGrants(path) }
            // A real start refuses the same file (exit 64), and so does --check-config.
            var options = try ServiceOptions.parse(
                service: "registry",
                arguments: ["--curve-public-key", Self.key, "--curve-secret-key", Self.key, "--curve-clients", path], environment: [:])
            options.checkConfig = true
            #expect(throws: ConfigError.self) { try ServiceMain.check(options, validate: { _ in }) }
        }
        let path = try Self.allowlist("- name: tax-bureau\n  key: \"\(Self.key)\"\n  types: [tax.period_reported]\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            _ = try ServiceSecurity.loadGrants(path)
            Issue.record("a grant with types and no sources was taken")
        } catch let e as ConfigError {
            #expect(e.description.contains("(tax-bureau): types needs sources"), "\(e)")
        }
    }

    /// The example allowlists shipped in deploy/config load (keys filled in), give each
    /// downstream service what it follows the feed with, and the operator its queries.
    @Test func theShippedExampleAllowlistsGiveEachServiceWhatItNeeds() throws {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let downstream = [
            "registry": ["matcher", "payments", "notifier"], "matcher": ["payments", "notifier"], "payments": ["matcher", "notifier"],
            "notifier": ["matcher"],
        ]
        for (service, readers) in downstream {
            var text = try String(contentsOf: repo.appendingPathComponent("deploy/config/\(service)-clients.yaml.example"), encoding: .utf8)
            while let r = text.range(of: "\"…\"") { text.replaceSubrange(r, with: "\"\(try CurveKeyPair.generate().publicKey)\"") }
            let path = try Self.allowlist(text)
            defer { try? FileManager.default.removeItem(atPath: path) }
            let grants = try ServiceSecurity.loadGrants(path)
            for r in readers {
                let g = try #require(grants.first { $0.name == r }, "\(service): \(r)")
                #expect(g.mayFollowFeed && g.mayReplay && g.types.isEmpty, "\(service): \(r)")
            }
            let op = try #require(grants.first { $0.name == "operator" }, "\(service)")
            #expect(op.mayQuery("status") && op.mayQuery("quarantine.show"), "\(service)")
            // Every other key publishes only: it reads nothing.
            for g in grants where !readers.contains(g.name) && g.name != "operator" && g.name != "dashboard" {
                if g.actsAs != nil {
                    // A reviewer's key asks about what it decides on, and follows nothing.
                    #expect(!g.mayConnect(to: .feed) && g.mayQuery("entitlement.show"), "\(service): \(g.name)")
                } else {
                    #expect(!g.mayConnect(to: .feed) && !g.mayConnect(to: .replay), "\(service): \(g.name)")
                }
            }
        }
    }

    @Test func sourcePrefixesMatchOnASlashBoundary() {
        for prefix in ["/tax", "/tax/"] {
            let tax = ClientGrant(name: "tax", publicKey: Self.key, types: ["tax.period_reported"], sources: [prefix])
            #expect(tax.allows(type: "tax.period_reported", source: "/tax"), "\(prefix)")
            #expect(tax.allows(type: "tax.period_reported", source: "/tax/xuchang"), "\(prefix)")
            #expect(!tax.allows(type: "tax.period_reported", source: "/taxi-forged"), "\(prefix)")
            #expect(!tax.allows(type: "tax.period_reported", source: "/taxes"), "\(prefix)")
            #expect(!tax.allows(type: "tax.period_reported", source: "/ta"), "\(prefix)")
        }
        // A grant that names no source may publish from none.
        #expect(
            !ClientGrant(name: "samr", publicKey: Self.key, types: ["business.*"]).allows(type: "business.registered", source: "/samr/x"))
    }

    @Test func theZAPHandlerAdmitsAKeyToTheFeedAndReplayOnlyWithItsRight() throws {
        let reader = ClientGrant(name: "matcher", publicKey: "R" + Self.key.dropFirst(), read: [.feed, .replay])
        let publisher = ClientGrant(name: "tax", publicKey: "P" + Self.key.dropFirst(), types: ["tax.*"], sources: ["/tax/"])
        let asker = ClientGrant(name: "dashboard", publicKey: "Q" + Self.key.dropFirst(), queries: ["status"])
        let server = CurveServer(keys: try CurveKeyPair.generate(), grants: [reader, publisher, asker])
        #expect(server.domain(for: .intake) == "bangfu-intake")
        #expect(server.domain(for: .feed) == "bangfu-feed")
        #expect(server.domain(for: .replay) == "bangfu-replay")
        func admitted(_ g: ClientGrant, _ kind: CurveSocketKind) -> Bool {
            (try? server.admit(key: g.publicKey, zapDomain: server.domain(for: kind)).get()) != nil
        }
        #expect(admitted(reader, .feed) && admitted(reader, .replay) && admitted(reader, .intake))
        #expect(!admitted(publisher, .feed) && !admitted(publisher, .replay) && admitted(publisher, .intake))
        #expect(!admitted(asker, .feed) && admitted(asker, .replay))
        #expect(server.admit(key: publisher.publicKey, zapDomain: "bangfu-feed") == .failure(.noRight(.feed)))
        #expect(server.admit(key: Self.key, zapDomain: "bangfu-feed") == .failure(.notListed))
        #expect(server.admit(key: reader.publicKey, zapDomain: "bangfu") == .failure(.unknownDomain))
    }

    /// `ZMQ_ZAP_ENFORCE_DOMAIN` is set (libzmq 4.3.4 takes it) and reads back 1.
    @Test func aCurveServerSocketEnforcesItsZAPDomain() async throws {
        let context = ZContext()
        defer { context.terminate() }
        let server = CurveServer(keys: try CurveKeyPair.generate(), grants: [])
        let read: [Int32] = try await OwnerThread.run {
            var out: [Int32] = []
            for kind in CurveSocketKind.allCases {
                let s = try context.socket(kind == .feed ? .pub : .router)
                defer { s.close() }
                guard try s.applyCurveServer(server, kind: kind) else { return [] }
                out.append(try s.zapEnforceDomainSetting())
            }
            return out
        }
        #expect(read == [1, 1, 1])
    }

    /// A service node over CURVE on loopback TCP, its ZAP handler running, three keys: a
    /// downstream reader (feed and replay), a dashboard (the `status` query) and a publisher.
    final class SecuredNotes: Sendable {
        let context = ZContext()
        let serverKeys: CurveKeyPair
        let reader: CurveKeyPair
        let asker: CurveKeyPair
        let publisher: CurveKeyPair
        let zap: ZAPHandler
        let svc: NoteService

        init(settings base: NodeSettings = NodeSettings()) throws {
            serverKeys = try CurveKeyPair.generate()
            reader = try CurveKeyPair.generate()
            asker = try CurveKeyPair.generate()
            publisher = try CurveKeyPair.generate()
            let server = CurveServer(
                keys: serverKeys,
                grants: [
                    ClientGrant(name: "matcher", publicKey: reader.publicKey, read: [.feed, .replay]),
                    ClientGrant(name: "dashboard", publicKey: asker.publicKey, queries: ["status"]),
                    ClientGrant(name: "notary", publicKey: publisher.publicKey, types: ["note.recorded"], sources: ["/test"]),
                ])
            zap = ZAPHandler(context: context, server: server, logger: quietLogger())
            try zap.start()
            var settings = base
            settings.curve = server
            settings.heartbeatMs = 100
            let port = { "tcp://127.0.0.1:\(ServiceProcess.freeLoopbackPort())" }
            svc = try NoteService(
                context: context, settings: settings, endpoints: NodeEndpoints(intake: port(), feed: port(), replay: port()))
        }

        func keys(_ k: CurveKeyPair) -> CurveClientKeys {
            CurveClientKeys(serverPublic: serverKeys.publicKey, clientPublic: k.publicKey, clientSecret: k.secretKey)
        }

        func ask(_ request: JSON, as k: CurveKeyPair, timeoutMs: Int = 5_000) async throws -> [JSON]? {
            let (ctx, ep, c) = (context, svc.endpoints.replay, keys(k))
            return try await OwnerThread.run {
                try QueryClient.request(context: ctx, endpoint: ep, request, timeoutMs: timeoutMs, curve: c)
            }
        }

        /// Whether a SUB with `k` hears the feed (its heartbeat, every 100 ms) within `ms`.
        func hearsFeed(as k: CurveKeyPair, ms: Int) async throws -> Bool {
            let (ctx, ep, c) = (context, svc.endpoints.feed, keys(k))
            return try await OwnerThread.run {
                let sub = try ctx.socket(.sub)
                defer { sub.close() }
                try sub.applyCurveClient(c)
                try sub.subscribe("")
                try sub.connect(ep)
                var p = ZPoller([.socket(sub)])
                return try p.poll(timeoutMs: ms)[0]
            }
        }

        func stop() {
            svc.node.stopAndWait()
            zap.stopAndWait()
            context.terminate()
        }
    }

    @Test func replayQueriesAndTheFeedAnswerOnlyTheKeysWithTheRight() async throws {
        let s = try SecuredNotes()
        defer { s.stop() }
        var o = IntakeClientOptions.forTests
        o.curve = s.keys(s.publisher)
        var e = note("private")
        e.source = "/test/client"
        let acks = try await IntakeClient.publish(
            context: s.context, endpoint: s.svc.endpoints.intake, events: [OutgoingEvent(e)], options: o)
        #expect(acks[0].ack?.status == .accepted)

        // The downstream reader replays; it asks no queries.
        let page = try await s.ask(["op": "replay", "after": "0", "max": 10], as: s.reader)
        #expect(page?.count == 2 && page?.first?["type"]?.stringValue == "note.stored")
        let status = try await s.ask(["op": "status"], as: s.reader)
        #expect(status?.last?["code"]?.stringValue == "unauthorized")
        // The dashboard asks its one query, nothing else.
        #expect(try await s.ask(["op": "status"], as: s.asker)?.last?["op"]?.stringValue == "status")
        for op: JSON in [["op": "replay", "max": 10], ["op": "quarantine.list"], ["op": "quarantine.show", "id": "1"]] {
            #expect(try await s.ask(op, as: s.asker)?.last?["code"]?.stringValue == "unauthorized", "\(op.serialized())")
        }
        #expect(s.svc.node.counters.unauthorizedRequests == 4)
        // The publisher is not even let in to the replay socket, nor to the feed.
        let refusedBefore = s.zap.refused
        #expect(try await s.ask(["op": "replay", "max": 10], as: s.publisher, timeoutMs: 1_000) == nil)
        #expect(try await s.hearsFeed(as: s.reader, ms: 10_000))
        #expect(!(try await s.hearsFeed(as: s.publisher, ms: 1_000)))
        #expect(s.zap.refused > refusedBefore)
    }

    /// A page ends early at the byte cap (holding at least one event); paging on from the last
    /// sequence received gets every event, in order.
    @Test func aReplayPageEndsEarlyAtItsByteCap() async throws {
        var settings = NodeSettings()
        settings.maxReplayPageBytes = 4_000
        let ctx = ZContext()
        let svc = try NoteService(context: ctx, settings: settings)
        defer { svc.node.stopAndWait() }
        let text = String(repeating: "x", count: 900)
        _ = try await svc.publish((0..<20).map { note("\($0)-" + text) })
        _ = try await svc.publish([note(String(repeating: "big", count: 3_000))])
        let ep = svc.endpoints.replay
        let pages = try await OwnerThread.run {
            var pages: [[UInt64]] = []
            var after: UInt64 = 0
            while let page = try QueryClient.replay(context: ctx, endpoint: ep, after: after, max: 1_000), !page.events.isEmpty {
                pages.append(page.events.compactMap(\.sequenceNumber))
                after = page.events.last!.sequenceNumber!
            }
            return pages
        }
        #expect(pages.flatMap { $0 } == Array(1...21))
        #expect(pages.count > 4)
        #expect(pages.dropLast().allSatisfy { $0.count <= 4 })
        #expect(pages.last == [21], "an event over the cap comes alone")
    }

    /// A client that sends replay requests and never reads its answers: the service queues only
    /// a few answers for it and drops the rest (it would ask again), instead of holding every
    /// page it asked for in memory.
    @Test func aClientThatNeverReadsHasFewAnswersQueued() async throws {
        let ctx = ZContext()
        let port = { "tcp://127.0.0.1:\(ServiceProcess.freeLoopbackPort())" }
        let svc = try NoteService(context: ctx, endpoints: NodeEndpoints(intake: port(), feed: port(), replay: port()))
        defer { svc.node.stopAndWait() }
        let text = String(repeating: "y", count: 2_000)
        _ = try await svc.publish((0..<100).map { note("\($0)-" + text) })
        let requests = 300
        let ep = svc.endpoints.replay
        let sock = try await OwnerThread.run {
            let s = try ctx.socket(.dealer)
            try s.set(ZMQ_RCVHWM, Int32(1))
            try s.set(ZMQ_RCVBUF, Int32(4_096))
            try s.set(ZMQ_LINGER, Int32(0))
            try s.connect(ep)
            for _ in 0..<requests { _ = try s.send([Array(#"{"op":"replay","after":"0","max":10000}"#.utf8)], dontWait: false) }
            return s
        }
        var served = 0
        for _ in 0..<600 where served < requests {
            served = svc.node.counters.replayRequests
            try await Task.sleep(for: .milliseconds(50))
        }
        let dropped = svc.node.counters.unroutableReplies
        try await OwnerThread.run { sock.close() }
        // Let the service see the client go before the node closes its replay socket (libzmq
        // 4.3.4 asserts when a socket closes with linger 0 while a connection it is still writing
        // a multipart answer to fails).
        try await Task.sleep(for: .milliseconds(500))
        #expect(served == requests)
        // 8 queued, a few more in the engine and the kernel's buffers: the rest are dropped.
        #expect(dropped >= requests - 60, "dropped \(dropped) of \(requests)")
    }

    /// An intake batch stops taking events at its byte cap, however many are waiting.
    @Test func anIntakeBatchIsBoundedInBytes() async throws {
        final class Recorder: IntakeProcessor, Sendable {
            let sizes = Mutex<[Int]>([])
            /// The first batch waits here until every event has been sent, so that the rest are
            /// all queued behind it (a safety net of 30 s, not a timing assertion).
            let gate = DispatchSemaphore(value: 0)
            func process(_ batch: [IntakeFrame]) throws -> [Ack] {
                if sizes.withLock({ $0.isEmpty }) { _ = gate.wait(timeout: .now() + 30) }
                sizes.withLock { $0.append(batch.reduce(0) { $0 + $1.payload.count }) }
                return batch.map { Ack(id: (try? JSONParser.parse($0.payload))?["id"]?.stringValue, status: .accepted) }
            }
        }
        let ctx = ZContext()
        let recorder = Recorder()
        var settings = NodeSettings()
        settings.maxBatchBytes = 100_000
        let tag = UUID().uuidString
        let node = ServiceNode(
            name: "bytes", context: ctx,
            endpoints: NodeEndpoints(intake: "inproc://\(tag)-in", feed: "inproc://\(tag)-feed", replay: "inproc://\(tag)-replay"),
            settings: settings, processor: recorder, feed: OutboxFeedStore(database: try ServiceDatabase(path: nil)), logger: quietLogger())
        try node.start()
        defer { node.stopAndWait() }
        let text = String(repeating: "z", count: 10_000)
        let frames = (0..<60).map { Array(note("\($0)-" + text).serialized().utf8) }
        let endpoint = "inproc://\(tag)-in"
        let sock = try await OwnerThread.run {
            let s = try ctx.socket(.dealer)
            try s.set(ZMQ_LINGER, Int32(0))
            try s.connect(endpoint)
            for f in frames { _ = try s.send([f], dontWait: false) }
            return s
        }
        recorder.gate.signal()
        var taken = 0
        for _ in 0..<600 where taken < 60 {
            taken = recorder.sizes.withLock { $0 }.reduce(0, +) / 10_000
            try await Task.sleep(for: .milliseconds(50))  // polling the recorder; a safety net, not a timing
        }
        try await OwnerThread.run { sock.close() }
        let sizes = recorder.sizes.withLock { $0 }
        #expect(sizes.reduce(0, +) >= 600_000)
        #expect(sizes.allSatisfy { $0 <= 100_000 + 11_000 }, "\(sizes)")
        // The events queued behind the first batch were taken several at a time, each batch up to
        // the cap: without it the second batch would hold all 59.
        #expect(sizes.dropFirst().contains { $0 > 50_000 }, "\(sizes)")
    }

    /// An `unauthorized` refusal keeps who sent it with the quarantined frame, and is logged.
    @Test func anUnauthorizedRefusalKeepsItsSenderAndIsLogged() throws {
        let records = CapturedLogs()
        var logger = Logger(label: "test.capture") { _ in records }
        logger.logLevel = .info
        let database = try ServiceDatabase(path: nil) { m in
            m.registerMigration("notes") { db in try db.execute(sql: "CREATE TABLE notes(text TEXT)") }
        }
        let clock = TestClock(rfc3339: "2026-11-29T10:00:00+08:00")
        let sender = "S" + Self.key.dropFirst()
        let pipeline = IntakePipeline(
            database: database, applier: NoteApplier(outbox: Outbox(source: "/test/notes", clock: clock)), clock: clock,
            authorize: { key, _ in key == sender ? Rejection(.unauthorized, field: "type", "not this key") : nil }, logger: logger)
        let acks = try pipeline.process([
            IntakeFrame(payload: Array(note("forged").serialized().utf8), clientKey: sender),
            IntakeFrame(payload: Array("{".utf8), clientKey: "T" + Self.key.dropFirst()),
        ])
        #expect(acks.map(\.rejection?.code) == [.unauthorized, .invalidJSON])
        let items = try database.writer.read { db in try Quarantine.list(db, after: 0, max: 10, code: nil) }
        #expect(items.map { $0["sender_key"]?.stringValue } == [sender, "T" + Self.key.dropFirst()])
        let shown = try database.writer.read { db in try Quarantine.show(db, id: 1) }
        #expect(shown?["sender_key"]?.stringValue == sender)
        #expect(records.contains(level: .warning, "intake events refused: unauthorized"))
    }
}
