import Bus
import Foundation
import Models

/// `bangfu quarantine list|show|resubmit`: rejected input kept by a service (DESIGN §3.2).
public enum QuarantineCommand {
    public struct ListOptions: Sendable {
        public var code: String?
        public var after: String?
        public var max = 100
        public var json = false
        public var timeoutMs = 5_000
        public init() {}
    }

    /// Lists quarantined items as a table (or JSON lines with `json`). Returns the exit code.
    public static func list(context: ZContext, target: ServiceTarget, options: ListOptions, console: Console) async throws(CLIError)
        -> Int32
    {
        var after = options.after ?? "0"
        var items: [JSON] = []
        var more = false
        let wanted = Swift.max(0, options.max)
        while items.count < wanted {
            let ask = Swift.min(1_000, wanted - items.count)
            var req = JSONObject()
            req["op"] = "quarantine.list"
            req["after"] = .string(after)
            req["max"] = .int(Int64(ask))
            if let c = options.code { req["code"] = .string(c) }
            let answer = try await Query.require(context: context, target: target, .object(req), timeoutMs: options.timeoutMs)
            guard let page = answer["items"]?.arrayValue else {
                throw CLIError("\(target.service) answered quarantine.list without items")
            }
            items += page
            // A full page may have more behind it.
            more = page.count == ask
            guard more, let lastID = page.last?["id"]?.text else { break }
            after = lastID
        }
        if options.json {
            for item in items { console.line(item.serialized()) }
            console.flush()
            return ExitCodes.ok
        }
        if items.isEmpty {
            console.line(
                "no quarantined items\(options.code.map { " with code \($0)" } ?? "")\(options.after.map { " after \($0)" } ?? "")")
            console.flush()
            return ExitCodes.ok
        }
        // SOURCE is the sender as it named itself (CloudEvents `source`): the agency to send the list to.
        // KEY is the CURVE key it was sent with (its first characters), `-` without CURVE.
        let header = ["ID", "RECEIVED_AT", "CODE", "FIELD", "SOURCE", "KEY", "TYPE", "EVENT_ID", "MESSAGE"]
        let rows = items.map { i in
            [
                i["id"].text, i["received_at"].text, i["code"].text, i["field"].text, Format.truncate(i["source"].text, 40),
                shortKey(i["sender_key"]?.stringValue), Format.truncate(i["type"].text, 32), Format.truncate(i["event_id"].text, 36),
                Format.truncate(i["message"].text, 60),
            ]
        }
        var widths = header.map(\.count)
        for r in rows { for (k, c) in r.enumerated() { widths[k] = Swift.max(widths[k], c.count) } }
        func render(_ r: [String]) -> String {
            r.enumerated().map { k, c in k == r.count - 1 ? c : Format.pad(c, widths[k]) }.joined(separator: "  ")
        }
        console.line(render(header))
        for r in rows { console.line(render(r)) }
        if more, let l = items.last?["id"].text {
            console.line("(more: --after \(l))")
        }
        console.flush()
        return ExitCodes.ok
    }

    /// A sender key as the list shows it: its first 8 characters, or `-`.
    static func shortKey(_ key: String?) -> String { key.map { "\($0.prefix(8))…" } ?? "-" }

    /// Fetches one quarantined item (with its frame).
    static func fetch(context: ZContext, target: ServiceTarget, id: String, timeoutMs: Int) async throws(CLIError) -> JSON {
        let answer = try await Query.require(
            context: context, target: target, ["op": "quarantine.show", "id": .string(id)], timeoutMs: timeoutMs)
        guard let item = answer["item"], item.objectValue != nil else {
            throw CLIError("\(target.service) answered quarantine.show without an item")
        }
        return item
    }

    /// The item's frame as bytes.
    static func storedFrame(of item: JSON) -> [UInt8]? {
        if let t = item["frame"]?.stringValue { return Array(t.utf8) }
        if let b = item["frame_base64"]?.stringValue, let d = Data(base64Encoded: b) { return [UInt8](d) }
        return nil
    }

    /// Quarantine ids are numbers (`quarantine list`); anything else is a usage error (64).
    static func checkID(_ id: String) throws(CLIError) {
        guard !id.isEmpty, id.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            throw CLIError(
                "quarantine item ids are numbers (the ID column of bangfu quarantine list), got \"\(id)\"", exitCode: ExitCodes.usage)
        }
    }

    /// A value with the personal data an operator's terminal should not show masked: resident
    /// IDs, phones and bank accounts (`Mask.personalData`), and a `contact` (an objection's).
    static func masked(_ value: JSON) -> JSON {
        func walk(_ v: JSON) -> JSON {
            switch v {
            case .object(let o):
                var out = JSONObject()
                for (k, m) in o.members {
                    if k == "contact", case .string(let text) = m { out[k] = .string(Mask.phone(text)) } else { out[k] = walk(m) }
                }
                return .object(out)
            case .array(let a): return .array(a.map(walk))
            default: return v
            }
        }
        return walk(Mask.personalData(in: value))
    }

    /// The item as the operator sees it by default: its frame parsed and masked (`frame`, as JSON
    /// text, with `frame_masked: true`); a frame that is not JSON is left out (`frame_withheld`).
    static func maskedView(of item: JSON) -> JSON {
        guard var o = item.objectValue else { return item }
        let bytes = storedFrame(of: item)
        o["frame"] = nil
        o["frame_base64"] = nil
        if let bytes, let parsed = try? JSONParser.parse(bytes) {
            o["frame"] = .string(masked(parsed).serialized())
            o["frame_masked"] = true
        } else if let bytes {
            o["frame_withheld"] = .string("\(bytes.count) bytes, not JSON: shown only with --raw (it may hold personal data)")
        }
        return .object(o)
    }

    /// Prints one item's details and its frame: parsed and masked by default, exactly as
    /// received with `raw`.
    public static func show(
        context: ZContext, target: ServiceTarget, id: String, json: Bool = false, raw: Bool = false, timeoutMs: Int = 5_000,
        console: Console
    ) async throws(CLIError) -> Int32 {
        try checkID(id)
        let stored = try await fetch(context: context, target: target, id: id, timeoutMs: timeoutMs)
        let item = raw ? stored : maskedView(of: stored)
        if json {
            console.line(item.serialized())
            console.flush()
            return ExitCodes.ok
        }
        for key in ["id", "received_at", "origin", "code", "field", "message", "source", "event_id", "type", "sender_key"] {
            console.line(Format.pad(key + ":", 13) + item[key].text)
        }
        if raw, let t = item["frame"]?.stringValue {
            console.line("frame (\(t.utf8.count) bytes, as received):")
            console.line(t)
        } else if raw, let b = item["frame_base64"]?.stringValue {
            console.line("frame (not UTF-8, base64):")
            console.line(b)
        } else if let t = item["frame"]?.stringValue {
            console.line("frame (personal data masked; --raw prints it as received):")
            console.line(t)
        } else if let w = item["frame_withheld"]?.stringValue {
            console.line("frame: \(w)")
        } else {
            console.line("frame: (none)")
        }
        console.flush()
        return ExitCodes.ok
    }

    public struct ResubmitOptions: Sendable {
        /// A corrected event (one JSON object) to publish instead of the stored frame.
        public var file: String?
        public var timeoutMs = 5_000
        public var retries = 3
        public var json = false
        /// Re-send an item refused as `unauthorized` anyway (under the operator's own key).
        public var force = false
        public init() {}
    }

    /// Publishes a quarantined item again (its stored frame, or a corrected file) and prints the
    /// ack: exit 0 accepted/duplicate, 2 rejected, 3 no answer.
    public static func resubmit(
        context: ZContext, target: ServiceTarget, id: String, options: ResubmitOptions, console: Console
    ) async throws(CLIError) -> Int32 {
        try checkID(id)
        // The stored frame as received (never the masked view).
        let item = try await fetch(context: context, target: target, id: id, timeoutMs: options.timeoutMs)
        // A bank-return file from the payment router's inbox directory is not an event: it goes
        // back the way it came.
        if item["origin"]?.stringValue == "inbox" {
            throw CLIError(
                "quarantine item \(id) is a bank-return file from the inbox directory, not an event: put the corrected file into the payment router's inbox-dir",
                exitCode: ExitCodes.dataError)
        }
        // An event its sender's key was not allowed to publish would go in under the operator's
        // key, with the operator's rights: only on purpose.
        if item["code"]?.stringValue == RejectionCode.unauthorized.rawValue && !options.force {
            let sender = item["sender_key"]?.stringValue.map { "the key \(shortKey($0))" } ?? "a client without a key"
            throw CLIError(
                "quarantine item \(id) was refused as unauthorized: \(sender) may not publish it. Re-sending it would publish it under your own key; check who sent it and why, then add --force",
                exitCode: ExitCodes.usage)
        }
        let frame: [UInt8]
        if let path = options.file {
            let bytes: [UInt8]
            do {
                bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            } catch {
                throw CLIError("cannot read \(path): \((error as NSError).localizedDescription)", exitCode: ExitCodes.noInput)
            }
            let parsed: JSON
            do {
                parsed = try JSONParser.parse(bytes)
            } catch {
                throw CLIError("\(path) must hold exactly one JSON event: \(error.description)", exitCode: ExitCodes.dataError)
            }
            guard parsed.objectValue != nil else {
                throw CLIError("\(path) must hold one JSON object (a CloudEvent), not \(parsed.kindName)", exitCode: ExitCodes.dataError)
            }
            if let old = item["event_id"]?.stringValue, let new = parsed["id"]?.stringValue, old != new {
                console.error("note: the corrected event's id \(new) differs from the quarantined event's id \(old)")
            }
            // Send the document as written, minus surrounding whitespace.
            var lo = 0
            var hi = bytes.count
            while lo < hi, LineReader.isSpace(bytes[lo]) { lo += 1 }
            while hi > lo, LineReader.isSpace(bytes[hi - 1]) { hi -= 1 }
            frame = Array(bytes[lo..<hi])
        } else {
            guard let f = storedFrame(of: item) else { throw CLIError("quarantined item \(id) has no stored frame") }
            frame = f
        }
        var o = IntakeClientOptions()
        o.timeoutMs = options.timeoutMs
        o.retries = options.retries
        o.window = 1
        // A CURVE intake (tcp://) takes the operator's keys, as `publish` does.
        o.curve = CLICurve.keys(for: target.intake)
        let results: [PublishResult]
        do {
            results = try await IntakeClient.publish(
                context: context, endpoint: target.intake, events: [OutgoingEvent(frame: frame)], options: o)
        } catch {
            throw CLIError("publishing to \(target.intake) failed: \(error)")
        }
        let r = results[0]
        guard let ack = r.ack else {
            if options.json {
                let j: JSON = ["id": r.id.map { .string($0) } ?? .null, "status": .null]
                console.line(j.serialized())
            } else {
                console.line("no answer from \(target.intake) after \(r.attempts) attempts")
            }
            console.flush()
            return ExitCodes.unacknowledged
        }
        if options.json {
            console.line(ack.json.serialized())
        } else {
            var line = "\(ack.status.rawValue)  id=\(ack.id ?? r.id ?? "-")"
            if let rej = ack.rejection { line += "  \(rej.code.rawValue)  \(rej.field ?? "-")  \(rej.message)" }
            console.line(line)
        }
        console.flush()
        return ack.status == .rejected ? ExitCodes.rejected : ExitCodes.ok
    }
}
