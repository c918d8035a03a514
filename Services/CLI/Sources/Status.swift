import Bus
import Foundation
import Models

/// `bangfu status`: each asked service's health and counters, from `{"op":"status"}`.
public enum StatusCommand {
    public struct Report: Sendable {
        public var target: ServiceTarget
        /// The status answer; nil when the service did not answer.
        public var status: JSON?
        /// Set when the service could not be asked or answered with an error.
        public var problem: String?

        public var answered: Bool { status != nil && problem == nil }
    }

    /// Asks every target at once; returns 0 if each answered, 1 otherwise.
    public static func run(context: ZContext, targets: [ServiceTarget], timeoutMs: Int = 2_000, json: Bool = false, console: Console) async
        -> Int32
    {
        let reports = await withTaskGroup(of: (Int, Report).self) { group in
            for (k, t) in targets.enumerated() {
                group.addTask { (k, await ask(context: context, target: t, timeoutMs: timeoutMs)) }
            }
            var out = [Report?](repeating: nil, count: targets.count)
            for await (k, r) in group { out[k] = r }
            return out.map { $0! }
        }
        if json {
            let j: JSON = ["services": .array(reports.map { jsonReport($0, timeoutMs: timeoutMs) })]
            console.line(j.serialized())
        } else {
            for (k, r) in reports.enumerated() {
                if k > 0 { console.line("") }
                console.out(text(r, timeoutMs: timeoutMs))
            }
        }
        console.flush()
        return reports.allSatisfy(\.answered) ? ExitCodes.ok : ExitCodes.failure
    }

    static func ask(context: ZContext, target: ServiceTarget, timeoutMs: Int) async -> Report {
        do {
            guard let a = try await Query.ask(context: context, endpoint: target.replay, ["op": "status"], timeoutMs: timeoutMs) else {
                return Report(target: target, status: nil, problem: nil)
            }
            if a["op"]?.stringValue == "error" {
                return Report(
                    target: target, status: a,
                    problem: "\(a["code"]?.stringValue ?? "error"): \(a["message"]?.stringValue ?? "")")
            }
            return Report(target: target, status: a, problem: nil)
        } catch {
            return Report(target: target, status: nil, problem: error.message)
        }
    }

    static func jsonReport(_ r: Report, timeoutMs: Int) -> JSON {
        var o = JSONObject()
        o["service"] = .string(r.target.service)
        o["replay"] = .string(r.target.replay)
        o["reachable"] = .bool(r.status != nil)
        if let p = r.problem { o["problem"] = .string(p) }
        if r.status == nil && r.problem == nil {
            o["problem"] = .string("unreachable: no answer within \(timeoutMs) ms")
        }
        if let s = r.status, r.problem == nil { o["status"] = s }
        return .object(o)
    }

    static let known: Set<String> = [
        "op", "service", "ready", "last", "intake_events", "quarantined", "quarantined_by_code", "inbox", "counters",
        "simulated_clock", "clock", "intake_batch_ms", "pools", "feeds", "live_policies", "curve", "unwritten_batches",
        "unwritten_oldest_batch", "unwritten_oldest_age_s", "unwritten_last_error", "refused_batches", "batch_numbering_blocked",
    ]

    /// Payments' batch files: `all written`, or how many wait for their file (the oldest, its age
    /// and last error: retried every second), and how many were refused.
    static func batchFilesLine(_ s: JSON) -> String? {
        guard let unwritten = s["unwritten_batches"]?.intValue else { return nil }
        var line = unwritten == 0 ? "all written" : "\(Format.grouped(unwritten)) NOT WRITTEN (retried every second)"
        if unwritten > 0, let oldest = s["unwritten_oldest_batch"]?.stringValue {
            line += "; oldest \(oldest)"
            if let age = s["unwritten_oldest_age_s"]?.intValue { line += ", \(Format.grouped(age)) s old" }
            if let error = s["unwritten_last_error"]?.stringValue { line += ": " + error }
        }
        if let refused = s["refused_batches"]?.intValue, refused > 0 {
            line += "; \(Format.grouped(refused)) refused (bangfu payments batches)"
        }
        return line
    }

    /// One line per upstream feed: `matcher: applied 120 of 120 (caught up)`, with resubscribes and
    /// replay timeouts when there were any.
    static func feedLines(_ feeds: JSON?) -> [String] {
        guard let o = feeds?.objectValue else { return [] }
        return o.members.sorted { $0.key < $1.key }.map { name, f in
            var line = "\(name): applied \(f["cursor"].text) of \(f["upstream_last"].text)"
            if let why = f["halted"]?.stringValue {
                // The upstream's history changed under this feed (docs/operations.md, restored upstream).
                return line + " — HALTED: \(why)"
            }
            if f["caught_up"]?.boolValue == true {
                line += " (caught up)"
            } else {
                line += " (\(f["lag"]?.intValue.map(Format.grouped) ?? f["lag"].text) behind)"
            }
            if let r = f["resubscribes"]?.intValue, r > 0 { line += ", resubscribed \(r)×" }
            if let t = f["replay_timeouts_in_a_row"]?.intValue, t > 0 { line += ", \(t) replay timeouts in a row" }
            return line
        }
    }

    static func counts(_ o: JSON?) -> String {
        guard let obj = o?.objectValue, !obj.isEmpty else { return "none" }
        return obj.members.map { "\($0.key) \($0.value.intValue.map(Format.grouped) ?? $0.value.text)" }.joined(separator: ", ")
    }

    static func text(_ r: Report, timeoutMs: Int) -> String {
        let name = r.target.service
        guard let s = r.status else {
            let why = r.problem ?? "no answer within \(timeoutMs) ms"
            return "\(name)  unreachable  (\(r.target.replay): \(why))\n"
        }
        if let p = r.problem { return "\(name)  error  (\(r.target.replay): \(p))\n" }
        let ready = s["ready"]?.boolValue == true ? "ready" : "not ready"
        var out = "\(name)  \(ready)  (\(r.target.replay))\n"
        func row(_ k: String, _ v: String) { out += "  \(Format.pad(k, 16)) \(v)\n" }
        row("last sequence", s["last"].text)
        if let n = s["intake_events"]?.intValue { row("intake events", Format.grouped(n)) }
        if let c = s["counters"]?.objectValue {
            var parts: [String] = []
            for k in ["accepted", "duplicate", "rejected"] { parts.append("\(k) \(c[k]?.intValue.map(Format.grouped) ?? "-")") }
            row("intake", parts.joined(separator: ", "))
            let others = c.members.filter { !["accepted", "duplicate", "rejected"].contains($0.key) }
            if !others.isEmpty {
                row(
                    "counters", others.map { "\($0.key) \($0.value.intValue.map(Format.grouped) ?? $0.value.text)" }.joined(separator: ", ")
                )
            }
        }
        if let q = s["quarantined"]?.intValue {
            let by = s["quarantined_by_code"]?.objectValue.map { $0.isEmpty ? "" : " (\(counts(s["quarantined_by_code"])))" } ?? ""
            row("quarantined", Format.grouped(q) + by)
        }
        if let inbox = s["inbox"]?.objectValue {
            row("inbox", inbox.isEmpty ? "none" : inbox.members.map { "\($0.key) at \($0.value.text)" }.joined(separator: ", "))
        }
        if let l = s["intake_batch_ms"], let p50 = l["p50"]?.stringValue, let p99 = l["p99"]?.stringValue {
            row(
                "intake batches",
                "p50 \(p50) ms, p99 \(p99) ms, max \(l["max"]?.stringValue ?? "-") ms (last \(l["batches"]?.intValue ?? 0))")
        }
        for p in s["pools"]?.arrayValue ?? [] {
            let fen = { (k: String) in p[k]?.intValue.map(Money.yuan) ?? "-" }
            row(
                "pool " + (p["pool"]?.stringValue ?? "?"),
                "available \(fen("available_fen")), reserved \(fen("reserved_fen")), posted \(fen("posted_fen"))")
        }
        for (k, line) in feedLines(s["feeds"]).enumerated() { row(k == 0 ? "feeds" : "", line) }
        if let live = s["live_policies"]?.arrayValue {
            row("live policies", live.isEmpty ? "none" : live.map(\.text).joined(separator: ", "))
        }
        if let c = s["curve"]?.objectValue {
            row("curve", "connections refused \(c["zap_refused"]?.intValue ?? 0), admitted \(c["zap_admitted"]?.intValue ?? 0)")
        }
        if let files = batchFilesLine(s) { row("batch files", files) }
        if let clock = s["clock"]?.stringValue { row("clock", clock) }
        if let o = s.objectValue {
            for (k, v) in o.members where !known.contains(k) { row(k.replacingOccurrences(of: "_", with: " "), v.text) }
        }
        if let blocked = s["batch_numbering_blocked"]?.stringValue {
            out += "  WARNING: no batch is made: \(blocked)\n"
        }
        if s["simulated_clock"]?.boolValue == true {
            out += "  WARNING: simulated clock: this service accepts clock.advanced (not for production)\n"
        }
        return out
    }
}
