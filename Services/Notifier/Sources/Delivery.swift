import Foundation
import Models
import Synchronization

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// MARK: - Notification, attempts, results

/// One message to one merchant, ready for a channel (DESIGN §9).
public struct Notification: Sendable, Equatable {
    /// The idempotency key: stable per (event, recipient, kind), see ``key(event:recipient:kind:)``.
    /// Channels never deliver the same key twice on their side (the JSON Lines outbox skips it;
    /// a webhook sends it as `Idempotency-Key` so the receiver can).
    public var key: String
    /// The recipient merchant.
    public var uscc: String
    public var kind: NotificationKind
    /// The rendered text (already masked: DESIGN §3.5).
    public var text: String
    /// A structured payload for the receiving system (entitlement id, amount_fen, …).
    public var data: JSON

    public init(key: String, uscc: String, kind: NotificationKind, text: String, data: JSON = .object(JSONObject())) {
        self.key = key
        self.uscc = uscc
        self.kind = kind
        self.text = text
        self.data = data
    }

    /// The idempotency key of the notification of `kind` that `event` (its CloudEvents id)
    /// causes for `recipient`: `ntf-` and 32 hex digits of a SHA-256. The same inputs give the
    /// same key in every process and after every restart.
    public static func key(event: String, recipient: String, kind: NotificationKind) -> String {
        "ntf-" + String(SHA256.hex(event + "\u{1F}" + recipient + "\u{1F}" + kind.rawValue).prefix(32))
    }

    /// The JSON a channel sends: `{key, uscc, kind, text, data}`.
    public var payload: JSON {
        ["key": .string(key), "uscc": .string(uscc), "kind": .string(kind.rawValue), "text": .string(text), "data": data]
    }
}

/// An unambiguous name for ``Notification``: outside this module, a file that imports both
/// Foundation and Notifier sees two `Notification` types (Foundation's is NSNotification's) and
/// must write `Notifier.Notification`, or this.
public typealias MerchantNotification = Notification

/// One try at handing a notification to a channel.
public struct DeliveryAttempt: Sendable, Equatable {
    /// When the attempt started (by the channel's clock).
    public var at: Date
    public var ok: Bool
    /// The HTTP status, when a response arrived.
    public var status: Int?
    /// What went wrong (`HTTP 503: …`, `connection refused …`, `timed out …`); `nil` when `ok`.
    public var error: String?

    public init(at: Date, ok: Bool, status: Int? = nil, error: String? = nil) {
        self.at = at
        self.ok = ok
        self.status = status
        self.error = error
    }
}

/// The outcome of ``NotificationChannel/deliver(_:)``: every attempt, in order.
public struct DeliveryResult: Sendable, Equatable {
    public var delivered: Bool
    public var attempts: [DeliveryAttempt]
    /// The channel had already delivered this key (e.g. before a crash), so nothing was sent
    /// now; `delivered` is `true` and `attempts` is empty.
    public var duplicate: Bool
    /// Not delivered, and trying again later will not help until someone changes something (the
    /// receiver refused this request with a `4xx`, a redirect, an unusable URL): the notifier
    /// does not schedule another attempt on its own (an operator re-sends it).
    public var permanent: Bool

    public init(delivered: Bool, attempts: [DeliveryAttempt], duplicate: Bool = false, permanent: Bool = false) {
        self.delivered = delivered
        self.attempts = attempts
        self.duplicate = duplicate
        self.permanent = permanent
    }

    /// The last attempt's error, for `notification.failed`.
    public var lastError: String? { attempts.last?.error }
}

/// Somewhere notifications go.
///
/// `deliver` blocks (it waits for the network, sleeps between retries and fsyncs files): call
/// it on a dedicated worker thread, never on Swift's cooperative pool. It is safe to call from
/// several threads at once.
public protocol NotificationChannel: Sendable {
    var name: String { get }
    func deliver(_ n: Notification) -> DeliveryResult
    /// Several notifications at once, one result each, in order. A channel that can (a file)
    /// makes them durable together; the default delivers them one by one.
    func deliver(batch: [Notification]) -> [DeliveryResult]
}

extension NotificationChannel {
    public func deliver(batch: [Notification]) -> [DeliveryResult] { batch.map { deliver($0) } }
}

/// A channel's configuration is unusable.
public struct ChannelConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

// MARK: - HTTP webhook

/// Posts each notification as JSON to an HTTP endpoint (an SMS gateway, a 12345 hotline system).
///
/// The request is `POST` with the body `{key, uscc, kind, text, data}` and the headers
/// `Content-Type: application/json; charset=utf-8` and `Idempotency-Key: <key>`; the receiver
/// must treat a repeated key as already handled (a notifier that crashed after sending and
/// before recording sends it again on restart).
///
/// - A `2xx` response is delivery.
/// - `408`, `429`, `5xx`, connection errors and timeouts are retried after
///   `backoffMs × 2ⁿ` ms (n = 0 for the first retry), capped at `backoffCapMs`, with ±20 %
///   jitter, or after the response's `Retry-After` seconds if longer (still capped), up to
///   `maxAttempts` attempts in all.
/// - Any other status (other `4xx`, and redirects, which are never followed) is a permanent
///   failure: no more attempts.
///
/// Each attempt has its own deadline of `timeoutSeconds` (connect, send and response
/// together). `http://` and `https://` URLs only (TLS through the platform's URLSession,
/// libcurl on Linux, which also honours the usual `https_proxy`/`no_proxy` variables).
public struct WebhookChannel: NotificationChannel {
    public let name: String
    public let url: URL
    public let timeoutSeconds: Int
    public let maxAttempts: Int
    public let backoffMs: Int
    public let backoffCapMs: Int
    /// Seeds the jitter (per notification: mixed with its key), so that tests can predict delays.
    public let jitterSeed: UInt64?
    private let clock: any WallClock
    private let sleeper: @Sendable (Int) -> Void
    private let http: HTTPSession

    /// One URLSession for the channel's life. (A session per delivery, invalidated after it, is
    /// the pattern behind FoundationNetworking's teardown races on Linux — a heap corruption seen
    /// here once under parallel tests; a session is torn down only when the channel goes, idle.)
    private final class HTTPSession: Sendable {
        let session: URLSession

        init(timeoutSeconds: Int) {
            let config = URLSessionConfiguration.ephemeral
            config.timeoutIntervalForRequest = TimeInterval(timeoutSeconds)
            config.timeoutIntervalForResource = TimeInterval(timeoutSeconds)
            config.requestCachePolicy = .reloadIgnoringLocalCacheData
            config.urlCache = nil
            config.httpShouldSetCookies = false
            config.httpMaximumConnectionsPerHost = 4
            session = URLSession(configuration: config, delegate: RefuseRedirects(), delegateQueue: nil)
        }

        deinit { session.finishTasksAndInvalidate() }
    }

    /// Sleeps the calling thread for the given number of milliseconds.
    public static let realSleep: @Sendable (Int) -> Void = { ms in
        if ms > 0 { Thread.sleep(forTimeInterval: Double(ms) / 1000) }
    }

    /// - Parameter sleeper: waits the given number of milliseconds between attempts.
    public init(
        name: String = "webhook", url: URL, timeoutSeconds: Int = 5, maxAttempts: Int = 5, backoffMs: Int = 200,
        backoffCapMs: Int = 5_000, jitterSeed: UInt64? = nil, clock: any WallClock = SystemClock(),
        sleeper: @escaping @Sendable (Int) -> Void = WebhookChannel.realSleep
    ) {
        self.name = name
        self.url = url
        self.timeoutSeconds = max(1, timeoutSeconds)
        self.maxAttempts = max(1, maxAttempts)
        self.backoffMs = max(0, backoffMs)
        self.backoffCapMs = max(0, backoffCapMs)
        self.jitterSeed = jitterSeed
        self.clock = clock
        self.sleeper = sleeper
        self.http = HTTPSession(timeoutSeconds: self.timeoutSeconds)
    }

    /// Checks a webhook URL for configuration (`--check-config`): `http` or `https` with a host.
    public static func validate(_ url: URL) throws(ChannelConfigError) {
        guard let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https" else {
            throw ChannelConfigError("webhook URL \(url.absoluteString): only http:// and https:// are supported")
        }
        guard let host = url.host, !host.isEmpty else {
            throw ChannelConfigError("webhook URL \(url.absoluteString): no host")
        }
    }

    /// `key` as a header value: as it is when it is visible ASCII (the keys Bangfu makes always
    /// are), otherwise percent-encoded (UTF-8), so that no key can break or inject a header.
    public static func headerValue(_ key: String) -> String {
        if !key.isEmpty, key.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "%") }) { return key }
        var out = ""
        for b in key.utf8 {
            if b > 0x20 && b < 0x7F && b != UInt8(ascii: "%") {
                out.unicodeScalars.append(Unicode.Scalar(b))
            } else {
                let hex = Array("0123456789ABCDEF")
                out += "%" + String(hex[Int(b >> 4)]) + String(hex[Int(b & 0xF)])
            }
        }
        return out
    }

    /// The delay before retry `n` (0 for the first retry), in milliseconds:
    /// `min(cap, base × 2ⁿ)` times a random factor in [0.8, 1.2], never over `cap`.
    public static func backoffDelay(
        retry n: Int, baseMs: Int, capMs: Int, using rng: inout some RandomNumberGenerator
    ) -> Int {
        let shift = min(max(n, 0), 62)
        let (exp, overflow) = baseMs.multipliedReportingOverflow(by: 1 << shift)
        let capped = overflow ? capMs : min(capMs, exp)
        let factor = Double.random(in: 0.8...1.2, using: &rng)
        return max(0, min(capMs, Int((Double(capped) * factor).rounded())))
    }

    public func deliver(_ n: Notification) -> DeliveryResult {
        do {
            try Self.validate(url)
        } catch {
            return DeliveryResult(
                delivered: false, attempts: [DeliveryAttempt(at: clock.now(), ok: false, error: error.message)], permanent: true)
        }
        var rng = SplitMix64(seed: (jitterSeed ?? UInt64.random(in: .min ... .max)) ^ SplitMix64.fnv1a(n.key))
        var request = URLRequest(url: url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: TimeInterval(timeoutSeconds))
        request.httpMethod = "POST"
        request.setValue("application/json; charset=utf-8", forHTTPHeaderField: "Content-Type")
        request.setValue("application/json", forHTTPHeaderField: "Accept")
        request.setValue("bangfu-notifier", forHTTPHeaderField: "User-Agent")
        request.setValue(Self.headerValue(n.key), forHTTPHeaderField: "Idempotency-Key")
        request.httpBody = Data(n.payload.serializedBytes())

        let session = http.session
        var attempts: [DeliveryAttempt] = []
        for attempt in 0..<maxAttempts {
            let at = clock.now()
            let outcome = post(request, session: session)
            switch outcome {
            case .delivered(let status):
                attempts.append(DeliveryAttempt(at: at, ok: true, status: status))
                return DeliveryResult(delivered: true, attempts: attempts)
            case .permanent(let status, let error):
                attempts.append(DeliveryAttempt(at: at, ok: false, status: status, error: error))
                return DeliveryResult(delivered: false, attempts: attempts, permanent: true)
            case .retry(let status, let error, let retryAfterSeconds):
                attempts.append(DeliveryAttempt(at: at, ok: false, status: status, error: error))
                if attempt + 1 < maxAttempts {
                    var delay = Self.backoffDelay(retry: attempt, baseMs: backoffMs, capMs: backoffCapMs, using: &rng)
                    if let retryAfterSeconds {
                        delay = max(delay, min(backoffCapMs, retryAfterSeconds.multipliedReportingOverflow(by: 1000).partialValue))
                    }
                    sleeper(delay)
                }
            }
        }
        return DeliveryResult(delivered: false, attempts: attempts)
    }

    private enum Outcome {
        case delivered(status: Int)
        case permanent(status: Int?, error: String)
        case retry(status: Int?, error: String, retryAfterSeconds: Int?)
    }

    /// What came back from one request, reduced to `Sendable` values inside the callback.
    private struct Reply: Sendable {
        var status: Int?
        var retryAfter: String?
        var bodyPrefix: String?
        var errorCode: Int?
        var errorText: String?
    }

    private final class ReplyBox: Sendable {
        let value = Mutex<Reply?>(nil)
    }

    private func post(_ request: URLRequest, session: URLSession) -> Outcome {
        let done = DispatchSemaphore(value: 0)
        let box = ReplyBox()
        let task = session.dataTask(with: request) { data, response, error in
            var reply = Reply()
            if let http = response as? HTTPURLResponse {
                reply.status = http.statusCode
                for (k, v) in http.allHeaderFields {
                    if let k = k as? String, k.lowercased() == "retry-after" { reply.retryAfter = v as? String }
                }
                if let data, !data.isEmpty {
                    reply.bodyPrefix = String(decoding: data.prefix(200), as: UTF8.self)
                        .trimmingCharacters(in: .whitespacesAndNewlines)
                }
            }
            if let error {
                let ns = error as NSError
                reply.errorCode = ns.domain == NSURLErrorDomain ? ns.code : nil
                reply.errorText = Self.describe(ns)
            }
            box.value.withLock { $0 = reply }
            done.signal()
        }
        task.resume()
        // URLSession enforces the deadline; this is a backstop in case it does not.
        if done.wait(timeout: .now() + .seconds(timeoutSeconds + 5)) == .timedOut {
            task.cancel()
            _ = done.wait(timeout: .now() + .seconds(5))
            return .retry(status: nil, error: "timed out after \(timeoutSeconds) s (no response)", retryAfterSeconds: nil)
        }
        let reply = box.value.withLock { $0 } ?? Reply(errorText: "no reply")

        if let code = reply.errorCode ?? (reply.errorText != nil ? 0 : nil) {
            let text = reply.errorText ?? "network error"
            if code == NSURLErrorTimedOut {
                return .retry(status: nil, error: "timed out after \(timeoutSeconds) s (\(text))", retryAfterSeconds: nil)
            }
            if code == NSURLErrorBadURL || code == NSURLErrorUnsupportedURL {
                return .permanent(status: nil, error: text)
            }
            return .retry(status: nil, error: text, retryAfterSeconds: nil)
        }
        guard let status = reply.status else {
            return .retry(status: nil, error: "no HTTP response", retryAfterSeconds: nil)
        }
        let detail = "HTTP \(status)" + (reply.bodyPrefix.map { $0.isEmpty ? "" : ": " + $0 } ?? "")
        switch status {
        case 200..<300:
            return .delivered(status: status)
        case 408, 429, 500..<600:
            let seconds = reply.retryAfter.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }.map { max(0, $0) }
            return .retry(status: status, error: detail, retryAfterSeconds: seconds)
        case 300..<400:
            return .permanent(status: status, error: detail + " (redirects are not followed: configure the final URL)")
        default:
            return .permanent(status: status, error: detail)
        }
    }

    private static func describe(_ e: NSError) -> String {
        guard e.domain == NSURLErrorDomain else { return "\(e.domain) \(e.code): \(e.localizedDescription)" }
        let what: String
        switch e.code {
        case NSURLErrorTimedOut: what = "timed out"
        case NSURLErrorCannotConnectToHost: what = "cannot connect to host (connection refused)"
        case NSURLErrorCannotFindHost: what = "cannot find host"
        case NSURLErrorDNSLookupFailed: what = "DNS lookup failed"
        case NSURLErrorNetworkConnectionLost: what = "connection lost"
        case NSURLErrorNotConnectedToInternet: what = "not connected to the network"
        case NSURLErrorBadServerResponse: what = "bad server response"
        case NSURLErrorSecureConnectionFailed: what = "TLS handshake failed"
        case NSURLErrorServerCertificateUntrusted, NSURLErrorServerCertificateHasBadDate,
            NSURLErrorServerCertificateHasUnknownRoot, NSURLErrorServerCertificateNotYetValid:
            what = "server certificate not trusted"
        case NSURLErrorCancelled: what = "cancelled"
        case NSURLErrorBadURL: what = "bad URL"
        case NSURLErrorUnsupportedURL: what = "unsupported URL"
        default: what = e.localizedDescription
        }
        return "\(what) (NSURLErrorDomain \(e.code))"
    }
}

/// Answers every redirect with "do not follow": the 3xx response becomes the result, and a
/// misconfigured URL fails loudly instead of a POST silently turning into a GET elsewhere.
private final class RefuseRedirects: NSObject, URLSessionTaskDelegate, Sendable {
    func urlSession(
        _ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
        newRequest request: URLRequest, completionHandler: @escaping @Sendable (URLRequest?) -> Void
    ) {
        completionHandler(nil)
    }
}

/// Mixes a notification's key into the jitter seed (FNV-1a).
extension SplitMix64 {
    static func fnv1a(_ s: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        return h
    }
}

// MARK: - JSON Lines outbox

/// Appends each notification as one JSON line `{key, uscc, kind, text, data, at}` to a file
/// that another system picks up (or an operator reads), fsyncing every batch of lines before
/// it counts as delivered.
///
/// Idempotent by key, across restarts, for the most recent `window` keys (default 100,000): a
/// key among them is not written again. What needs it is a crash between a batch's fsync and
/// the commit that records it as sent — the batch is delivered again after the restart, and it
/// is the file's last one — so the channel remembers a bounded window, not every key ever
/// written (at a million merchants that was 3.5 million keys, ~600 MB). The window is read from
/// the file's last `tailBytes` when the channel is created and again on its first delivery (to
/// catch lines written in between, e.g. by the previous run of a service that is restarting);
/// after that the channel keeps it in memory, so one process should own a file. Appends take an
/// exclusive `flock`, and a line cut short by a crash is left alone (it is not valid JSON, so
/// its key counts as not delivered) and the next line starts on a line of its own.
public struct JSONLinesChannel: NotificationChannel {
    public let name: String
    public let path: String
    private let clock: any WallClock
    private let state: State

    /// The most recent keys, in a set and in a ring of their arrival order (the oldest is
    /// forgotten when the window is full).
    struct KeyWindow: Sendable {
        let capacity: Int
        private(set) var members: Set<String> = []
        private var ring: [String] = []
        private var oldest = 0

        init(capacity: Int) { self.capacity = max(capacity, 1) }

        func contains(_ key: String) -> Bool { members.contains(key) }
        var count: Int { members.count }

        mutating func insert(_ key: String) {
            guard members.insert(key).inserted else { return }
            if ring.count < capacity {
                ring.append(key)
            } else {
                members.remove(ring[oldest])
                ring[oldest] = key
                oldest = (oldest + 1) % capacity
            }
        }
    }

    private struct Keys: Sendable {
        var window: KeyWindow
        var rescanned: Bool
    }

    private final class State: Sendable {
        let keys: Mutex<Keys>
        init(_ window: KeyWindow) { self.keys = Mutex(Keys(window: window, rescanned: false)) }
    }

    /// How many of the last keys are remembered.
    public let window: Int
    /// How much of the file's end is read for them (lines are ~0.6 KB).
    public let tailBytes: Int

    public init(
        name: String = "jsonl", path: String, clock: any WallClock = SystemClock(), window: Int = 100_000, tailBytes: Int = 128 << 20
    ) {
        self.name = name
        self.path = path
        self.clock = clock
        self.window = window
        self.tailBytes = tailBytes
        var keys = KeyWindow(capacity: window)
        for k in (try? Self.scanKeys(path, tailBytes: tailBytes)) ?? [] { keys.insert(k) }
        self.state = State(keys)
    }

    /// Whether `key` is among the remembered keys of the file.
    public func contains(key: String) -> Bool {
        state.keys.withLock { $0.window.contains(key) }
    }

    /// How many keys are remembered (at most `window`).
    public var rememberedKeys: Int { state.keys.withLock { $0.window.count } }

    public func deliver(_ n: Notification) -> DeliveryResult { deliver(batch: [n])[0] }

    /// Appends every notification not yet in the file as one write and one fsync.
    public func deliver(batch: [Notification]) -> [DeliveryResult] {
        let at = clock.now()
        return state.keys.withLock { k -> [DeliveryResult] in
            do {
                if !k.rescanned {
                    for key in try Self.scanKeys(path, tailBytes: tailBytes) { k.window.insert(key) }
                    k.rescanned = true
                }
                var bytes: [UInt8] = []
                var results: [DeliveryResult] = []
                var keys = Set<String>()
                var order: [String] = []
                for n in batch {
                    if k.window.contains(n.key) || keys.contains(n.key) {
                        results.append(DeliveryResult(delivered: true, attempts: [], duplicate: true))
                        continue
                    }
                    var line = n.payload
                    if case .object(var o) = line {
                        o["at"] = .string(Timestamp.format(at))
                        line = .object(o)
                    }
                    bytes.append(contentsOf: line.serializedBytes())
                    bytes.append(UInt8(ascii: "\n"))
                    keys.insert(n.key)
                    order.append(n.key)
                    results.append(DeliveryResult(delivered: true, attempts: [DeliveryAttempt(at: at, ok: true)]))
                }
                if !bytes.isEmpty { try Self.append(bytes, to: path) }
                for key in order { k.window.insert(key) }
                return results
            } catch {
                return batch.map { _ in DeliveryResult(delivered: false, attempts: [DeliveryAttempt(at: at, ok: false, error: "\(error)")])
                }
            }
        }
    }

    /// The keys of the complete, valid lines in the last `tailBytes` of the file, in file order
    /// (none if it does not exist). A line cut by the start of the tail is skipped.
    public static func scanKeys(_ path: String, tailBytes: Int = .max) throws(ChannelConfigError) -> [String] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return [] }
            throw ChannelConfigError("\(path): cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var keys: [String] = []
        var pending: [UInt8] = []
        let size = lseek(fd, 0, SEEK_END)
        var skipFirstLine = false
        if size > 0, Int64(size) > Int64(tailBytes) {
            // Start one byte early: if that byte ends a line, the tail starts on a whole line.
            lseek(fd, off_t(Int64(size) - Int64(tailBytes) - 1), SEEK_SET)
            skipFirstLine = true
        } else {
            lseek(fd, 0, SEEK_SET)
        }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        func take(_ line: ArraySlice<UInt8>) {
            if skipFirstLine {
                skipFirstLine = false
                return
            }
            guard !line.isEmpty, let j = try? JSONParser.parse(line), let key = j["key"]?.stringValue else { return }
            keys.append(key)
        }
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ChannelConfigError("\(path): cannot read: \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            var start = 0
            for i in 0..<n where buffer[i] == UInt8(ascii: "\n") {
                if pending.isEmpty {
                    take(buffer[start..<i])
                } else {
                    pending.append(contentsOf: buffer[start..<i])
                    take(pending[...])
                    pending.removeAll(keepingCapacity: true)
                }
                start = i + 1
            }
            pending.append(contentsOf: buffer[start..<n])
        }
        take(pending[...])
        return keys
    }

    /// Appends `bytes` (one line) under an exclusive lock, starting a new line if the file
    /// ends in a cut-off line, and fsyncs the file (and, when it was created, its directory).
    static func append(_ bytes: [UInt8], to path: String) throws(ChannelConfigError) {
        func failure(_ what: String) -> ChannelConfigError {
            ChannelConfigError("\(path): cannot \(what): \(String(cString: strerror(errno)))")
        }
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty, !FileManager.default.fileExists(atPath: dir) {
            do {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            } catch {
                throw ChannelConfigError("\(dir): cannot create the directory: \(error)")
            }
        }
        let existed = FileManager.default.fileExists(atPath: path)
        let fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, mode_t(0o640))
        guard fd >= 0 else { throw failure("open") }
        defer { close(fd) }
        guard flock(fd, LOCK_EX) == 0 else { throw failure("lock") }
        defer { flock(fd, LOCK_UN) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw failure("stat") }
        var out = bytes
        if st.st_size > 0 {
            var last: UInt8 = 0
            guard pread(fd, &last, 1, off_t(st.st_size - 1)) == 1 else { throw failure("read") }
            if last != UInt8(ascii: "\n") { out.insert(UInt8(ascii: "\n"), at: 0) }
        }
        var written = 0
        while written < out.count {
            let n = out.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0 {
                if errno == EINTR { continue }
                throw failure("write")
            }
            written += n
        }
        guard fsync(fd) == 0 else { throw failure("fsync") }
        if !existed {
            let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_CLOEXEC)
            if dfd >= 0 {
                _ = fsync(dfd)
                close(dfd)
            }
        }
    }
}
