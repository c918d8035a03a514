import Bus
import Foundation
import Models
import Notifier
import Synchronization
import Testing

// MARK: - Helpers

/// A real HTTP/1.1 receiver on 127.0.0.1 (Python's http.server on a free port) that records
/// every request (headers lower-cased, body) to a JSON file before it answers.
///
/// Modes: `fail-first N` answers 503 to the first N requests per `Idempotency-Key`, then 200;
/// `always S` answers status S (a 302 carries a `Location`); `retry-after S` answers the first
/// request per key 503 with `Retry-After: S`, then 200; `hang` never answers. `port` 0 takes a
/// free port; another listens on that one (e.g. where a receiver that was stopped listened).
final class Receiver {
    let process = Process()
    /// Held open while the receiver should live: the receiver exits when it reads EOF.
    let stdin = Pipe()
    let port: Int
    let recordPath: String

    static let script = """
        import http.server, json, os, signal, sys, threading, time
        # Swift's Process starts children with the spawning thread's signals blocked: unblock them.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, signal.valid_signals())
        mode, arg, record, port = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
        def orphan_guard():
            sys.stdin.buffer.read()  # EOF: the test process is gone
            os._exit(0)
        threading.Thread(target=orphan_guard, daemon=True).start()
        lock = threading.Lock()
        seen, log = {}, []
        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def log_message(self, *args):
                pass
            def do_POST(self):
                if self.headers.get("Expect", "").lower() == "100-continue":
                    pass  # http.server has already answered 100 Continue
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    body = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        chunk = self.rfile.read(size + 2)[:size]
                        if size == 0:
                            break
                        body += chunk
                else:
                    body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                key = self.headers.get("Idempotency-Key", "")
                with lock:
                    seen[key] = seen.get(key, 0) + 1
                    count = seen[key]
                    log.append({"method": self.command, "path": self.path, "version": self.request_version,
                                "headers": {k.lower(): v for k, v in self.headers.items()},
                                "body": body.decode("utf-8")})
                    with open(record + ".tmp", "w", encoding="utf-8") as f:
                        json.dump(log, f, ensure_ascii=False)
                    os.replace(record + ".tmp", record)
                if mode == "hang":
                    # A receiver that never answers: the client's own timeout is under test.
                    time.sleep(120)
                    return
                if mode == "retry-after":
                    status = 503 if count == 1 else 200
                else:
                    status = (503 if count <= arg else 200) if mode == "fail-first" else arg
                payload = b'{"ok":true}' if status < 300 else b'{"error":"unavailable"}'
                self.send_response(status)
                if mode == "retry-after" and status == 503:
                    self.send_header("Retry-After", str(arg))
                if 300 <= status < 400:
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
        http.server.ThreadingHTTPServer.request_queue_size = 128
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
        server.daemon_threads = True
        print(server.server_address[1], flush=True)
        server.serve_forever()
        """

    init(_ mode: String, _ arg: Int = 0, port: Int = 0) throws {
        recordPath = FileManager.default.temporaryDirectory.appendingPathComponent("bangfu-receiver-\(UUID().uuidString).json").path
        let out = Pipe()
        process.standardInput = stdin
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", Self.script, mode, String(arg), recordPath, String(port)]
        process.standardOutput = out
        try process.run()
        // Readiness: the receiver prints its port once it is listening (EOF if it died).
        var line: [UInt8] = []
        while true {
            let chunk = out.fileHandleForReading.readData(ofLength: 1)
            guard let b = chunk.first, b != UInt8(ascii: "\n") else { break }
            line.append(b)
        }
        guard let port = Int(String(decoding: line, as: UTF8.self)) else {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw ChannelConfigError("the receiver did not start (python3 missing?)")
        }
        self.port = port
    }

    var url: URL { URL(string: "http://127.0.0.1:\(port)/notify")! }

    /// The requests received so far.
    func requests() throws -> [JSON] {
        guard FileManager.default.fileExists(atPath: recordPath) else { return [] }
        let data = try Data(contentsOf: URL(fileURLWithPath: recordPath))
        return try #require(try JSONParser.parse(data).arrayValue)
    }

    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        try? stdin.fileHandleForWriting.close()
        try? FileManager.default.removeItem(atPath: recordPath)
    }
}

/// A sleeper that records the requested delays instead of sleeping.
private final class Delays: Sendable {
    private let recorded = Mutex<[Int]>([])
    var sleeper: @Sendable (Int) -> Void { { ms in self.recorded.withLock { $0.append(ms) } } }
    var all: [Int] { recorded.withLock { $0 } }
}

/// Runs a blocking call on a thread of its own, as the service does (never the cooperative pool).
private func onWorkerThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await DedicatedThread.run(name: "test.delivery", body)
}

private func sample(_ key: String = MerchantNotification.key(event: "evt-1", recipient: "91410100MA00000001", kind: .paid))
    -> MerchantNotification
{
    MerchantNotification(
        key: key, uscc: "91410100MA00000001", kind: .paid,
        text: "【惠企帮扶】郑州市金水区张*丰烩面馆：您好！补助资金3,000.00元已拨付。",
        data: ["entitlement": "ent-42", "amount_fen": 300_000, "event": "evt-1"])
}

/// `min(cap, base × 2ⁿ)` with ±20 % jitter, never over the cap.
private func expectBackoff(_ delays: [Int], base: Int, cap: Int, sourceLocation: SourceLocation = #_sourceLocation) {
    for (n, d) in delays.enumerated() {
        let nominal = Double(min(cap, base << n))
        #expect(
            Double(d) >= (nominal * 0.8).rounded(.down) && Double(d) <= min(Double(cap), (nominal * 1.2).rounded(.up)),
            "delay \(n) = \(d) ms, nominal \(nominal)", sourceLocation: sourceLocation)
    }
}

private func tempPath(_ name: String) -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("bangfu-jsonl-\(UUID().uuidString)").appendingPathComponent(name).path
}

private func lines(_ path: String) throws -> [String] {
    let text = try String(contentsOfFile: path, encoding: .utf8)
    #expect(text.hasSuffix("\n"))
    return text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
}

// MARK: - Notification

@Suite("Notifications")
struct NotificationTests {
    @Test("the idempotency key is stable per (event, recipient, kind)")
    func idempotencyKey() {
        let k = MerchantNotification.key(event: "evt-1", recipient: "91410100MA00000001", kind: .paid)
        #expect(k == MerchantNotification.key(event: "evt-1", recipient: "91410100MA00000001", kind: .paid))
        #expect(k.hasPrefix("ntf-") && k.count == 36)
        #expect(k != MerchantNotification.key(event: "evt-2", recipient: "91410100MA00000001", kind: .paid))
        #expect(k != MerchantNotification.key(event: "evt-1", recipient: "91410100MA00000002", kind: .paid))
        #expect(k != MerchantNotification.key(event: "evt-1", recipient: "91410100MA00000001", kind: .failed))
        // The separator keeps the parts apart.
        #expect(
            MerchantNotification.key(event: "a", recipient: "bc", kind: .held)
                != MerchantNotification.key(event: "ab", recipient: "c", kind: .held))
    }

    @Test("the payload carries key, uscc, kind, text and data")
    func payload() {
        let n = sample("k-1")
        #expect(
            n.payload.serialized()
                == #"{"key":"k-1","uscc":"91410100MA00000001","kind":"paid","text":"\#(n.text)","data":{"entitlement":"ent-42","amount_fen":300000,"event":"evt-1"}}"#
        )
    }
}

// MARK: - Webhook

/// One test at a time: each test has its own channel and so its own URLSession, and several
/// FoundationNetworking sessions created and torn down at once in one process have corrupted the
/// heap on Linux (twice in seven parallel runs of the suite). A service has one session per
/// channel for its life.
@Suite("HTTP webhook channel", .serialized)
struct WebhookChannelTests {
    @Test("a receiver that fails the first attempts gets the notification on attempt N+1, with every attempt recorded")
    func deliveredAfterRetries() async throws {
        let receiver = try Receiver("fail-first", 2)
        defer { receiver.stop() }
        let delays = Delays()
        let clock = TestClock(rfc3339: "2022-05-10T09:00:00+08:00")
        let channel = WebhookChannel(
            url: receiver.url, backoffMs: 200, backoffCapMs: 5_000, jitterSeed: 7, clock: clock, sleeper: delays.sleeper)
        let n = sample()
        let result = await onWorkerThread { channel.deliver(n) }

        #expect(result.delivered)
        #expect(!result.duplicate)
        #expect(result.attempts.map { $0.status } == [503, 503, 200])
        #expect(result.attempts.map { $0.ok } == [false, false, true])
        #expect(result.attempts[0].error?.hasPrefix("HTTP 503") == true)
        #expect(result.attempts[2].error == nil)
        #expect(result.attempts.allSatisfy { $0.at == clock.now() })
        #expect(delays.all.count == 2)
        expectBackoff(delays.all, base: 200, cap: 5_000)

        let requests = try receiver.requests()
        #expect(requests.count == 3)
        for r in requests {
            #expect(r["method"] == "POST")
            #expect(r["path"] == "/notify")
            #expect(r["version"] == "HTTP/1.1")
            #expect(r["headers"]?["idempotency-key"] == .string(n.key))
            #expect(r["headers"]?["content-type"] == "application/json; charset=utf-8")
            let body = try JSONParser.parse(try #require(r["body"]?.stringValue))
            #expect(body == n.payload)
            #expect(body["text"]?.stringValue == n.text)
        }
    }

    @Test("a 400 is a permanent failure: one attempt, no retry")
    func permanentFailure() async throws {
        let receiver = try Receiver("always", 400)
        defer { receiver.stop() }
        let delays = Delays()
        let channel = WebhookChannel(url: receiver.url, maxAttempts: 5, sleeper: delays.sleeper)
        let result = await onWorkerThread { channel.deliver(sample()) }
        #expect(!result.delivered)
        #expect(result.attempts.count == 1)
        #expect(result.attempts[0].status == 400)
        #expect(result.lastError == #"HTTP 400: {"error":"unavailable"}"#)
        #expect(result.permanent, "the notifier schedules no other attempt")
        #expect(delays.all.isEmpty)
        #expect(try receiver.requests().count == 1)
    }

    @Test("a redirect is not followed and not retried")
    func redirectIsPermanent() async throws {
        let receiver = try Receiver("always", 302)
        defer { receiver.stop() }
        let delays = Delays()
        let channel = WebhookChannel(url: receiver.url, sleeper: delays.sleeper)
        let result = await onWorkerThread { channel.deliver(sample()) }
        #expect(!result.delivered)
        #expect(result.attempts.map { $0.status } == [302])
        #expect(result.lastError?.contains("redirects are not followed") == true)
        #expect(result.permanent)
        #expect(try receiver.requests().count == 1)
    }

    @Test("always 503: maxAttempts attempts with exponential, capped backoff, then not delivered")
    func alwaysUnavailable() async throws {
        let receiver = try Receiver("always", 503)
        defer { receiver.stop() }
        let delays = Delays()
        let channel = WebhookChannel(
            url: receiver.url, maxAttempts: 6, backoffMs: 100, backoffCapMs: 1_000, jitterSeed: 1, sleeper: delays.sleeper)
        let result = await onWorkerThread { channel.deliver(sample()) }
        #expect(!result.delivered)
        #expect(result.attempts.map { $0.status } == Array(repeating: 503, count: 6))
        #expect(result.attempts.allSatisfy { !$0.ok && $0.error != nil })
        #expect(try receiver.requests().count == 6)
        // 100, 200, 400, 800, then the 1,000 ms cap, each ±20 %.
        #expect(delays.all.count == 5)
        expectBackoff(delays.all, base: 100, cap: 1_000)
        #expect(delays.all[4] <= 1_000 && delays.all[4] >= 800)
        #expect(delays.all[2] > delays.all[0])
    }

    @Test("408 and 429 are retried")
    func retriableClientErrors() async throws {
        for status in [408, 429] {
            let receiver = try Receiver("always", status)
            defer { receiver.stop() }
            let channel = WebhookChannel(url: receiver.url, maxAttempts: 2, sleeper: Delays().sleeper)
            let result = await onWorkerThread { channel.deliver(sample()) }
            #expect(!result.delivered)
            #expect(result.attempts.map { $0.status } == [status, status])
        }
    }

    @Test("Retry-After stretches the backoff, within the cap")
    func retryAfter() async throws {
        for (seconds, cap, expected) in [(2, 5_000, 2_000), (60, 3_000, 3_000)] {
            let receiver = try Receiver("retry-after", seconds)
            defer { receiver.stop() }
            let delays = Delays()
            let channel = WebhookChannel(url: receiver.url, backoffMs: 100, backoffCapMs: cap, sleeper: delays.sleeper)
            let result = await onWorkerThread { channel.deliver(sample()) }
            #expect(result.delivered)
            #expect(result.attempts.map { $0.status } == [503, 200])
            #expect(delays.all == [expected])
        }
    }

    @Test("a closed port: connection errors are retried, then not delivered")
    func connectionRefused() async throws {
        let receiver = try Receiver("always", 200)
        let url = receiver.url
        receiver.stop()  // nothing listens on that port any more
        let delays = Delays()
        let channel = WebhookChannel(url: url, maxAttempts: 3, backoffMs: 50, sleeper: delays.sleeper)
        let result = await onWorkerThread { channel.deliver(sample()) }
        #expect(!result.delivered)
        #expect(!result.permanent, "the notifier tries again later")
        #expect(result.attempts.count == 3)
        #expect(result.attempts.allSatisfy { $0.status == nil && !$0.ok })
        #expect(result.attempts.allSatisfy { $0.error?.contains("cannot connect") == true }, "\(result.attempts.map { $0.error })")
        #expect(delays.all.count == 2)
        expectBackoff(delays.all, base: 50, cap: 5_000)
    }

    @Test("a receiver that never answers times out, and the attempt is retried")
    func timeout() async throws {
        let receiver = try Receiver("hang")
        defer { receiver.stop() }
        let channel = WebhookChannel(url: receiver.url, timeoutSeconds: 1, maxAttempts: 2, sleeper: Delays().sleeper)
        let result = await onWorkerThread { channel.deliver(sample()) }
        #expect(!result.delivered)
        #expect(result.attempts.count == 2)
        // Each attempt ended by its own timeout (the receiver never answers), not by an error.
        #expect(
            result.attempts.allSatisfy { $0.status == nil && $0.error?.hasPrefix("timed out") == true },
            "\(result.attempts.map { $0.error })")
    }

    @Test("a large body is delivered in one attempt")
    func largeBody() async throws {
        let receiver = try Receiver("fail-first", 0)
        defer { receiver.stop() }
        var n = sample()
        n.text = String(repeating: "补报申请材料。", count: 2_000)
        let big = n
        let channel = WebhookChannel(url: receiver.url, sleeper: Delays().sleeper)
        let result = await onWorkerThread { channel.deliver(big) }
        #expect(result.delivered && result.attempts.count == 1)
        let request = try #require(try receiver.requests().first)
        let body = try JSONParser.parse(try #require(request["body"]?.stringValue))
        #expect(body["text"]?.stringValue == big.text)
        #expect(request["headers"]?["expect"] == nil, "no 100-continue round trip")
        #expect(request["headers"]?["user-agent"]?.stringValue?.hasPrefix("bangfu-notifier") == true)
    }

    @Test("concurrent deliveries from several threads each arrive once")
    func concurrentDeliveries() async throws {
        let receiver = try Receiver("fail-first", 1)
        defer { receiver.stop() }
        let channel = WebhookChannel(url: receiver.url, sleeper: Delays().sleeper)
        let results = await withTaskGroup(of: DeliveryResult.self) { group in
            for i in 0..<8 {
                group.addTask { await onWorkerThread { channel.deliver(sample("key-\(i)")) } }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.allSatisfy { $0.delivered && $0.attempts.count == 2 })
        let keys = try receiver.requests().compactMap { $0["headers"]?["idempotency-key"]?.stringValue }
        #expect(keys.count == 16)
        #expect(Set(keys).count == 8)
    }

    @Test("a key that is not visible ASCII is percent-encoded in the header, exact in the body")
    func headerSafeKey() async throws {
        #expect(WebhookChannel.headerValue("/bangfu/matcher|evt-1|paid") == "/bangfu/matcher|evt-1|paid")
        #expect(WebhookChannel.headerValue("a b\r\nX-Evil: 1") == "a%20b%0D%0AX-Evil:%201")
        #expect(WebhookChannel.headerValue("补报%") == "%E8%A1%A5%E6%8A%A5%25")
        let receiver = try Receiver("fail-first", 0)
        defer { receiver.stop() }
        let key = "事件 1\n|paid"
        let channel = WebhookChannel(url: receiver.url)
        let result = await onWorkerThread { channel.deliver(sample(key)) }
        #expect(result.delivered)
        let request = try #require(try receiver.requests().first)
        #expect(request["headers"]?["idempotency-key"] == .string(WebhookChannel.headerValue(key)))
        #expect(try JSONParser.parse(try #require(request["body"]?.stringValue))["key"] == .string(key))
    }

    @Test("only http and https URLs")
    func schemes() {
        #expect(throws: ChannelConfigError.self) { try WebhookChannel.validate(URL(string: "ftp://127.0.0.1/x")!) }
        #expect(throws: ChannelConfigError.self) { try WebhookChannel.validate(URL(fileURLWithPath: "/tmp/x")) }
        #expect(throws: Never.self) { try WebhookChannel.validate(URL(string: "https://sms.example.gov.cn/api/send")!) }
        #expect(throws: Never.self) { try WebhookChannel.validate(URL(string: "http://127.0.0.1:8080/")!) }
        let delays = Delays()
        let result = WebhookChannel(url: URL(string: "ftp://127.0.0.1/x")!, sleeper: delays.sleeper).deliver(sample())
        #expect(!result.delivered)
        #expect(result.attempts.count == 1)
        #expect(result.lastError?.contains("only http:// and https://") == true)
        #expect(delays.all.isEmpty)
    }

    @Test("backoff doubles up to the cap, with ±20 % jitter reproducible from a seed")
    func backoffSchedule() async throws {
        struct Seeded: RandomNumberGenerator {
            var state: UInt64
            mutating func next() -> UInt64 {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return state
            }
        }
        var rng = Seeded(state: 42)
        for n in 0..<70 {
            let nominal = n < 40 ? min(5_000, 200 << n) : 5_000
            for _ in 0..<20 {
                let d = WebhookChannel.backoffDelay(retry: n, baseMs: 200, capMs: 5_000, using: &rng)
                #expect(d >= nominal * 8 / 10 && d <= min(5_000, nominal * 12 / 10), "retry \(n): \(d)")
            }
        }
        // The jitter really varies.
        let spread = Set((0..<50).map { _ in WebhookChannel.backoffDelay(retry: 0, baseMs: 1_000, capMs: 10_000, using: &rng) })
        #expect(spread.count > 10)

        // A seeded channel repeats its delays exactly.
        let receiver = try Receiver("always", 503)
        defer { receiver.stop() }
        let a = Delays()
        let b = Delays()
        let one = WebhookChannel(url: receiver.url, maxAttempts: 4, jitterSeed: 99, sleeper: a.sleeper)
        let two = WebhookChannel(url: receiver.url, maxAttempts: 4, jitterSeed: 99, sleeper: b.sleeper)
        _ = await onWorkerThread { one.deliver(sample("same")) }
        _ = await onWorkerThread { two.deliver(sample("same")) }
        #expect(a.all == b.all && a.all.count == 3)
    }
}

// MARK: - JSON Lines outbox

@Suite("JSON Lines outbox channel")
struct JSONLinesChannelTests {
    @Test("appends one JSON line per notification, creating the directory")
    func appends() throws {
        let path = tempPath("outbox.jsonl")
        let clock = TestClock(rfc3339: "2022-05-10T09:00:00+08:00")
        let channel = JSONLinesChannel(path: path, clock: clock)
        var first = sample("k-1")
        first.text = "第一行\n第二行"
        let r1 = channel.deliver(first)
        clock.advance(seconds: 60)
        let r2 = channel.deliver(sample("k-2"))
        #expect(r1.delivered && r2.delivered && !r1.duplicate)
        #expect(r1.attempts.count == 1 && r1.attempts[0].ok && r1.attempts[0].error == nil)

        let ls = try lines(path)
        #expect(ls.count == 2)
        let one = try JSONParser.parse(ls[0])
        #expect(one.objectValue?.keys == ["key", "uscc", "kind", "text", "data", "at"])
        #expect(one["key"] == "k-1")
        #expect(one["uscc"] == "91410100MA00000001")
        #expect(one["kind"] == "paid")
        #expect(one["text"]?.stringValue == "第一行\n第二行")
        #expect(one["data"]?["amount_fen"] == 300_000)
        #expect(one["at"] == "2022-05-10T09:00:00.000+08:00")
        #expect(try JSONParser.parse(ls[1])["at"] == "2022-05-10T09:01:00.000+08:00")
        #expect(channel.contains(key: "k-1") && channel.contains(key: "k-2"))
    }

    @Test("the same key is written once, also after a crash and restart")
    func idempotentAcrossRestart() throws {
        let path = tempPath("outbox.jsonl")
        do {
            let channel = JSONLinesChannel(path: path)
            #expect(channel.deliver(sample("k-1")).delivered)
            let again = channel.deliver(sample("k-1"))
            #expect(again.delivered && again.duplicate && again.attempts.isEmpty)
        }
        // The process dies here; a new one opens the same file.
        let restarted = JSONLinesChannel(path: path)
        #expect(restarted.contains(key: "k-1"))
        let replayed = restarted.deliver(sample("k-1"))
        #expect(replayed.delivered && replayed.duplicate)
        #expect(restarted.deliver(sample("k-2")).attempts.count == 1)
        #expect(try lines(path).count == 2)
    }

    @Test("a batch is written together: new keys once each, known and repeated keys not again")
    func batch() throws {
        let path = tempPath("outbox.jsonl")
        let channel = JSONLinesChannel(path: path)
        #expect(channel.deliver(sample("k-1")).delivered)
        let results = channel.deliver(batch: [sample("k-1"), sample("k-2"), sample("k-3"), sample("k-2")])
        #expect(results.map(\.delivered) == [true, true, true, true])
        #expect(results.map(\.duplicate) == [true, false, false, true])
        #expect(results.map(\.attempts.count) == [0, 1, 1, 0])
        let keys = try lines(path).map { line in try JSONParser.parse(line)["key"]?.stringValue }
        #expect(keys == ["k-1", "k-2", "k-3"])
        // After a restart, the whole batch is known.
        let again = JSONLinesChannel(path: path).deliver(batch: [sample("k-2"), sample("k-3")])
        #expect(again.allSatisfy { $0.duplicate })
    }

    @Test("only the most recent keys are remembered, so memory stays bounded")
    func boundedWindow() throws {
        let path = tempPath("outbox.jsonl")
        let channel = JSONLinesChannel(path: path, window: 3)
        _ = channel.deliver(batch: (1...5).map { sample("k-\($0)") })
        #expect(channel.rememberedKeys == 3)
        #expect(!channel.contains(key: "k-2"))
        #expect(channel.contains(key: "k-3") && channel.contains(key: "k-5"))
        // The last batch again (a crash before its commit): not written twice.
        #expect(channel.deliver(batch: [sample("k-4"), sample("k-5")]).allSatisfy { $0.duplicate })
        // After a restart the window is read back from the file's end.
        let restarted = JSONLinesChannel(path: path, window: 3)
        #expect(restarted.rememberedKeys == 3)
        #expect(restarted.deliver(sample("k-5")).duplicate)
        #expect(!restarted.contains(key: "k-1"))
        #expect(try lines(path).count == 5)
    }

    @Test("at start only the file's tail is read, from its first whole line")
    func tailScan() throws {
        let path = tempPath("outbox.jsonl")
        _ = JSONLinesChannel(path: path).deliver(batch: (1...50).map { sample("k-\($0)") })
        let all = try lines(path)
        // A tail that starts inside line 41 (of 50): lines 42–50 are whole.
        let tail = all[41...].reduce(0) { $0 + $1.utf8.count + 1 } + 10
        let keys = try JSONLinesChannel.scanKeys(path, tailBytes: tail)
        #expect(keys == (42...50).map { "k-\($0)" })
        // A tail that starts exactly on a line boundary keeps that line.
        let exact = all[40...].reduce(0) { $0 + $1.utf8.count + 1 }
        #expect(try JSONLinesChannel.scanKeys(path, tailBytes: exact) == (41...50).map { "k-\($0)" })
        #expect(try JSONLinesChannel.scanKeys(path).count == 50)
        let channel = JSONLinesChannel(path: path, tailBytes: tail)
        #expect(channel.rememberedKeys == 9 && channel.contains(key: "k-50") && !channel.contains(key: "k-41"))
    }

    @Test("lines written between opening and first use are found by the re-scan")
    func rescanOnFirstUse() throws {
        let path = tempPath("outbox.jsonl")
        let channel = JSONLinesChannel(path: path)
        #expect(!channel.contains(key: "k-1"))
        // The previous run of the service was still finishing its last write.
        #expect(JSONLinesChannel(path: path).deliver(sample("k-1")).delivered)
        let result = channel.deliver(sample("k-1"))
        #expect(result.duplicate)
        #expect(try lines(path).count == 1)
    }

    @Test("a line cut short by a crash does not count, and the next line starts on its own")
    func truncatedLine() throws {
        let path = tempPath("outbox.jsonl")
        #expect(JSONLinesChannel(path: path).deliver(sample("k-1")).delivered)
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(#"{"key":"k-2","uscc":"9141"#.utf8))
        try handle.close()

        let channel = JSONLinesChannel(path: path)
        #expect(channel.deliver(sample("k-1")).duplicate)
        let resent = channel.deliver(sample("k-2"))
        #expect(resent.delivered && !resent.duplicate)
        let ls = try lines(path)
        #expect(ls.count == 3)
        #expect(ls[1] == #"{"key":"k-2","uscc":"9141"#)
        #expect(try JSONParser.parse(ls[2])["key"] == "k-2")
        #expect(JSONLinesChannel(path: path).contains(key: "k-2"))
    }

    @Test("many threads append whole lines, each key once")
    func concurrentAppends() async throws {
        let path = tempPath("outbox.jsonl")
        let channel = JSONLinesChannel(path: path)
        await withTaskGroup(of: Void.self) { group in
            for i in 0..<40 {
                group.addTask { _ = await onWorkerThread { channel.deliver(sample("k-\(i % 20)")) } }
            }
        }
        let keys = try lines(path).map { line in try JSONParser.parse(line)["key"]?.stringValue }
        #expect(keys.count == 20)
        #expect(Set(keys).count == 20)
    }

    @Test("an unwritable path is a failed delivery with the reason")
    func unwritable() throws {
        let dir = tempPath("")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        // A directory where the file should be.
        let path = dir + "/outbox.jsonl"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let result = JSONLinesChannel(path: path).deliver(sample("k-1"))
        #expect(!result.delivered)
        #expect(result.attempts.count == 1 && !result.attempts[0].ok)
        #expect(result.lastError?.contains(path) == true)
    }
}
