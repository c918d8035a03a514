import Bus
import Foundation
import Models

public struct PublishOptions: Sendable {
    /// Events in flight at once.
    public var window = 1_000
    public var timeoutMs = 5_000
    /// Re-sends after the first attempt, with the same id (Lazy Pirate).
    public var retries = 3
    /// Lines read and published per round, so memory stays bounded on big files.
    public var chunkLines = 5_000
    /// Lines longer than this are not sent (the service would drop the connection); they count
    /// as rejected `too_large`.
    public var maxMessageBytes = 1 << 20
    /// No progress bar and no text summary (the exit code tells).
    public var quiet = false
    /// Print the summary as one JSON object.
    public var json = false
    /// Rejected lines listed in the text summary.
    public var listedRejections = 20

    public init() {}
}

/// One rejected input line.
public struct RejectedLine: Sendable, Equatable {
    public var line: Int
    public var id: String?
    public var code: String
    public var field: String?
    public var message: String

    public var text: String {
        "line \(line)  id=\(id ?? "-")  \(code)  \(field ?? "-")  \(Format.truncate(message, 200))"
    }

    public var json: JSON {
        [
            "line": .int(Int64(line)), "id": id.map { .string($0) } ?? .null, "code": .string(code),
            "field": field.map { .string($0) } ?? .null, "message": .string(message),
        ]
    }
}

public struct PublishSummary: Sendable {
    public var input = ""
    public var endpoint = ""
    /// Non-blank lines handled (sent, or refused locally as too large).
    public var lines = 0
    public var accepted = 0
    public var duplicate = 0
    public var rejected = 0
    public var unacknowledged = 0
    public var rejectedByCode: [String: Int] = [:]
    /// The first rejected lines (up to 1,000 kept).
    public var rejections: [RejectedLine] = []
    /// The first unacknowledged line numbers (up to 1,000 kept).
    public var unacknowledgedLines: [Int] = []
    /// Set when publishing stopped early because the service did not answer at all.
    public var abandonedAfterLine: Int?
    public var seconds: Double = 0

    static let keep = 1_000

    /// 0 if everything was accepted or duplicate, 2 if anything was rejected, 3 if anything went
    /// unacknowledged.
    public var exitCode: Int32 {
        if unacknowledged > 0 { return ExitCodes.unacknowledged }
        if rejected > 0 { return ExitCodes.rejected }
        return ExitCodes.ok
    }

    mutating func reject(line: Int, id: String?, code: String, field: String?, message: String) {
        rejected += 1
        rejectedByCode[code, default: 0] += 1
        if rejections.count < Self.keep {
            rejections.append(RejectedLine(line: line, id: id, code: code, field: field, message: message))
        }
    }

    mutating func unanswered(line: Int) {
        unacknowledged += 1
        if unacknowledgedLines.count < Self.keep { unacknowledgedLines.append(line) }
    }

    public var json: JSON {
        var codes = JSONObject()
        for (k, v) in rejectedByCode.sorted(by: { $0.key < $1.key }) { codes[k] = .int(Int64(v)) }
        var o = JSONObject()
        o["input"] = .string(input)
        o["endpoint"] = .string(endpoint)
        o["lines"] = .int(Int64(lines))
        o["accepted"] = .int(Int64(accepted))
        o["duplicate"] = .int(Int64(duplicate))
        o["rejected"] = .int(Int64(rejected))
        o["unacknowledged"] = .int(Int64(unacknowledged))
        o["rejected_by_code"] = .object(codes)
        o["rejections"] = .array(rejections.map(\.json))
        o["unacknowledged_lines"] = .array(unacknowledgedLines.map { .int(Int64($0)) })
        if let a = abandonedAfterLine { o["abandoned_after_line"] = .int(Int64(a)) }
        o["exit_code"] = .int(Int64(exitCode))
        return .object(o)
    }

    public func text(listed: Int = 20) -> String {
        var out = "\(input) → \(endpoint): \(Format.grouped(lines)) lines in \(String(format: "%.1f", seconds)) s\n"
        out += "  accepted        \(Format.grouped(accepted))\n"
        out += "  duplicate       \(Format.grouped(duplicate))\n"
        out += "  rejected        \(Format.grouped(rejected))\n"
        out += "  unacknowledged  \(Format.grouped(unacknowledged))\n"
        if !rejectedByCode.isEmpty {
            out += "rejected by code:\n"
            for (code, n) in rejectedByCode.sorted(by: { ($0.value, $1.key) > ($1.value, $0.key) }) {
                out += "  \(Format.pad(code, 18)) \(Format.grouped(n))\n"
            }
            out += "rejected lines:\n"
            for r in rejections.prefix(listed) { out += "  \(r.text)\n" }
            if rejected > listed {
                out += "  … and \(Format.grouped(rejected - listed)) more (bangfu quarantine list)\n"
            }
        }
        if unacknowledged > 0 {
            let shown = unacknowledgedLines.prefix(listed).map(String.init).joined(separator: ", ")
            out += "unacknowledged lines (safe to publish again: ids are idempotent): \(shown)"
            out += unacknowledged > listed ? ", …\n" : "\n"
        }
        if let a = abandonedAfterLine {
            out += "stopped after line \(a): the service did not answer; the rest was not sent\n"
        }
        return out
    }
}

/// `bangfu publish`: JSON Lines → a service intake, pipelined, with a summary.
public enum PublishCommand {
    /// Publishes every non-blank line of `input` and writes the summary (unless quiet) to the
    /// console. Returns the summary; its `exitCode` is the command's.
    public static func run(
        context: ZContext, endpoint: String, input: LineReader, options: PublishOptions = PublishOptions(), console: Console
    ) async throws -> PublishSummary {
        let showProgress = !options.quiet && !options.json ? console.progress : nil
        var summary = try await OwnerThread.run {
            try publish(context: context, endpoint: endpoint, input: input, options: options, progress: showProgress)
        }
        summary.input = input.name
        summary.endpoint = endpoint
        if options.json {
            console.line(summary.json.serialized())
        } else if !options.quiet {
            console.out(summary.text(listed: options.listedRejections))
        }
        console.flush()
        return summary
    }

    static func publish(
        context: ZContext, endpoint: String, input: LineReader, options: PublishOptions, progress: (@Sendable (String) -> Void)?
    ) throws -> PublishSummary {
        var clientOptions = IntakeClientOptions()
        clientOptions.window = max(1, options.window)
        clientOptions.timeoutMs = max(1, options.timeoutMs)
        clientOptions.retries = max(0, options.retries)
        clientOptions.curve = CLICurve.keys(for: endpoint)
        let client = IntakeClient(context: context, endpoint: endpoint, options: clientOptions)
        defer { client.close() }

        var summary = PublishSummary()
        let started = DispatchTime.now().uptimeNanoseconds
        var meter = progress.map { ProgressMeter(total: input.countRemainingLines(), draw: $0) }
        var first = true

        while true {
            // The first event goes alone: if the service is not there, we find out after one
            // event's retries instead of a whole window's.
            let limit = first ? 1 : max(1, options.chunkLines)
            var chunk: [OutgoingEvent] = []
            var lineNumbers: [Int] = []
            var exhausted = false
            while chunk.count < limit {
                guard let line = try input.next() else {
                    exhausted = true
                    break
                }
                switch line {
                case .text(let number, let bytes):
                    if LineReader.isBlank(bytes) { continue }
                    chunk.append(OutgoingEvent(frame: bytes))
                    lineNumbers.append(number)
                case .tooLong(let number, let size):
                    summary.lines += 1
                    summary.reject(
                        line: number, id: nil, code: "too_large", field: nil,
                        message: "line is \(size) bytes, over max_message_bytes (\(options.maxMessageBytes)); not sent")
                    meter?.advance(to: summary.lines)
                }
            }
            if !chunk.isEmpty {
                first = false
                let base = summary.lines
                let results: [PublishResult]
                do {
                    results = try client.publish(chunk) { done, _ in meter?.advance(to: base + done) }
                } catch {
                    throw CLIError("publishing to \(endpoint) failed: \(error)")
                }
                summary.lines += chunk.count
                var anyAck = false
                for r in results {
                    let lineNo = lineNumbers[r.index]
                    guard let ack = r.ack else {
                        summary.unanswered(line: lineNo)
                        continue
                    }
                    anyAck = true
                    switch ack.status {
                    case .accepted: summary.accepted += 1
                    case .duplicate: summary.duplicate += 1
                    case .rejected:
                        let rej = ack.rejection
                        summary.reject(
                            line: lineNo, id: ack.id ?? r.id, code: rej?.code.rawValue ?? "unknown", field: rej?.field,
                            message: rej?.message ?? "")
                    }
                }
                if !anyAck {
                    // Nobody is answering: count the rest as unacknowledged instead of waiting
                    // out every line's retries.
                    summary.abandonedAfterLine = lineNumbers.last
                    while let line = try input.next() {
                        switch line {
                        case .text(let number, let bytes):
                            if LineReader.isBlank(bytes) { continue }
                            summary.lines += 1
                            summary.unanswered(line: number)
                        case .tooLong(let number, _):
                            summary.lines += 1
                            summary.unanswered(line: number)
                        }
                    }
                    break
                }
            }
            if exhausted { break }
        }
        meter?.finish(at: summary.lines)
        summary.seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        return summary
    }
}

/// The progress line on a terminal: `[#####.....] 12,000/50,000  8,400/s`.
struct ProgressMeter {
    let total: Int?
    let draw: @Sendable (String) -> Void
    let started = DispatchTime.now().uptimeNanoseconds
    var lastDraw: UInt64 = 0
    var drawn = false

    init(total: Int?, draw: @escaping @Sendable (String) -> Void) {
        self.total = total
        self.draw = draw
    }

    mutating func advance(to done: Int) {
        let now = DispatchTime.now().uptimeNanoseconds
        guard now - lastDraw >= 100_000_000 else { return }
        lastDraw = now
        render(done, now: now)
    }

    mutating func finish(at done: Int) {
        guard drawn || done > 0 else { return }
        render(done, now: DispatchTime.now().uptimeNanoseconds)
        draw("\n")
    }

    private mutating func render(_ done: Int, now: UInt64) {
        drawn = true
        let secs = max(Double(now - started) / 1e9, 0.001)
        let rate = Int(Double(done) / secs)
        var line = "\r"
        if let total, total > 0 {
            let width = 30
            let filled = min(width, done * width / total)
            line += "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] "
            line += "\(Format.grouped(done))/\(Format.grouped(total))"
        } else {
            line += "\(Format.grouped(done)) lines"
        }
        line += "  \(Format.grouped(rate))/s\u{1B}[K"
        draw(line)
    }
}
