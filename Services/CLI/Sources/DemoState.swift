import Foundation
import ISO20022
import Models

/// The end state of a demo run, as sorted text lines that two runs of the same seed can be
/// compared by (`bangfu demo --end-state FILE`; `scripts/crash-proof` diffs an undisturbed run
/// with one whose services were killed): every merchant profile (digest), every entitlement
/// (programme, merchant, state, amount), every payment (channel, state, amount, hold, batch),
/// every pool's balances, every batch, every reversal and the digest of every payment file,
/// disclosure rounds, and notifications by kind. The checks — ledger balanced, audit chain
/// intact, no payment (nor reversal) in two files, no notification written twice — must hold
/// on their own.
struct DemoEndState {
    var lines: [String] = []
    var problems: [String] = []
    var auditEntries: Int64 = 0

    static func collect(
        link: DemoLink, registry: DemoProcess, matcher: DemoProcess, payments: DemoProcess, notifier: DemoProcess, dir: String
    ) async throws -> DemoEndState {
        var s = DemoEndState()
        var profiles: [String: String] = [:]
        try await link.replay(registry) { e in
            if e.type == "merchant.profiled", let u = e.subject, let d = e.data { profiles[u] = SHA256.hex(unsalted(d).serialized()) }
        }
        for (u, digest) in profiles { s.lines.append("profile\t\(u)\t\(digest)") }

        // Each entitlement as the matcher has it, a page at a time. Not its feed's latest event:
        // some steps are not announced there (a clawback), and which event came last can depend
        // on which of two upstreams was read first — a fraud finding reaches the matcher from the
        // registry and, as a clawback, from payments.
        var after: String?
        while true {
            var req: JSONObject = ["op": "entitlement.list", "max": 1_000]
            if let after { req["after"] = .string(after) }
            let page = try await link.query(matcher, .object(req))["items"]?.arrayValue ?? []
            for d in page {
                s.lines.append(
                    ["entitlement", d["id"].text, d["policy_id"].text, d["uscc"].text, d["state"].text, d["amount_fen"].text].joined(
                        separator: "\t"))
            }
            guard page.count == 1_000, let last = page.last?["id"]?.stringValue else { break }
            after = last
        }

        // The latest line of each payment (not the events: a county's traces need not sit in
        // memory).

        var paymentStates: [String: String] = [:]
        try await link.replay(payments) { e in
            if e.type.hasPrefix("payment."), let d = e.data, let id = d["payment_id"]?.stringValue {
                paymentStates[id] =
                    ["payment", id, d["channel"].text, d["state"].text, d["amount_fen"].text, d["hold_code"].text, d["batch_id"].text]
                    .joined(separator: "\t")
            }
        }
        s.lines += paymentStates.values
        for p in try await link.query(payments, ["op": "pool.status"])["items"]?.arrayValue ?? [] {
            s.lines.append(
                ["pool", p["pool"].text, p["posted_fen"].text, p["reserved_fen"].text, p["available_fen"].text].joined(separator: "\t"))
        }
        for b in try await link.query(payments, ["op": "batch.list"])["items"]?.arrayValue ?? [] {
            s.lines.append(
                [
                    "batch", b["batch_id"].text, b["channel"].text, b["file"].text, b["count"].text, b["total_fen"].text, b["settled"].text,
                    b["failed"].text, b["reversals"].text,
                ].joined(separator: "\t"))
        }
        for state in ["pending", "instructed", "confirmed", "declined"] {
            for r in try await link.query(payments, ["op": "reversals", "state": .string(state), "max": 1_000])["items"]?.arrayValue ?? [] {
                s.lines.append(
                    [
                        "reversal", r["payment_id"].text, r["channel"].text, r["action"].text, r["reason"].text, r["state"].text,
                        r["batch_id"].text,
                    ]
                    .joined(separator: "\t"))
            }
        }
        s.checkPaymentFiles(dir + "/payment-files")

        for r in try await link.query(notifier, ["op": "round.list"])["items"]?.arrayValue ?? [] {
            s.lines.append(["round", r["round_id"].text, r["state"].text, r["entitlements"].text].joined(separator: "\t"))
        }
        for n in try await link.query(notifier, ["op": "notification.summary"])["items"]?.arrayValue ?? [] {
            s.lines.append(["notification", n["kind"].text, n["state"].text, n["count"].text].joined(separator: "\t"))
        }
        s.checkNotificationFile(dir + "/notifier/notifications.jsonl")

        let ledger = try await link.query(payments, ["op": "ledger.check"])
        if ledger["ok"]?.boolValue != true { s.problems.append("ledger check failed: \(ledger["problems"]?.serialized() ?? "")") }
        let audit = try await link.query(payments, ["op": "audit.verify"])
        if audit["ok"]?.boolValue != true {
            s.problems.append("audit chain broken at \(audit["first_broken"].text): \(audit["reason"].text)")
        }
        s.auditEntries = audit["entries"]?.intValue ?? 0
        s.lines.sort()
        return s
    }

    /// A profile without its keyed fingerprints: each installation salts them with a secret of
    /// its own (DESIGN §3.5), so two runs never share them.
    static func unsalted(_ v: JSON) -> JSON {
        switch v {
        case .object(let o):
            var out = JSONObject()
            for (k, x) in o.members { out[k] = k.hasSuffix("fingerprint") ? .string("salted") : unsalted(x) }
            return .object(out)
        case .array(let a): return .array(a.map(unsalted))
        default: return v
        }
    }

    /// Every payment file's digest; no payment in two files (pain.001 EndToEndId, instruction
    /// lines' payment_id).
    mutating func checkPaymentFiles(_ directory: String) {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter {
            $0.hasSuffix(".xml") || $0.hasSuffix(".jsonl")
        }
        var seen: [String: String] = [:]
        for name in names.sorted() {
            guard let bytes = FileManager.default.contents(atPath: directory + "/" + name) else { continue }
            lines.append("file\t\(name)\t\(SHA256.hash(bytes).hexString)")
            var ids: [String] = []
            if name.hasSuffix(".xml") {
                guard let text = String(data: bytes, encoding: .utf8), let batch = try? Pain001.parse(text) else {
                    problems.append("\(name) does not parse as pain.001")
                    continue
                }
                ids = batch.payments.map(\.endToEndID)
            } else {
                // A reversal line takes back a payment of an earlier file: a reversal in two files
                // is as much a problem as an instruction in two.
                for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n").dropFirst() {
                    guard let l = try? JSONParser.parse(String(line)) else { continue }
                    if let id = l["reversal_of"]?.stringValue {
                        ids.append("reversal of \(id)")
                    } else if let id = l["payment_id"]?.stringValue {
                        ids.append(id)
                    }
                }
            }
            for id in ids {
                if let other = seen[id] {
                    problems.append("\(id.hasPrefix("reversal") ? id : "payment \(id)") is in both \(other) and \(name)")
                }
                seen[id] = name
            }
        }
    }

    /// Notifications actually written, by kind; a key written twice is a problem.
    mutating func checkNotificationFile(_ path: String) {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return }
        var keys = Set<String>()
        var byKind: [String: Int] = [:]
        for line in text.split(separator: "\n") {
            guard let n = try? JSONParser.parse(String(line)), let key = n["key"]?.stringValue else { continue }
            if !keys.insert(key).inserted { problems.append("notification \(key) written twice") }
            byKind[n["kind"].text, default: 0] += 1
        }
        for (kind, count) in byKind { lines.append("notified\t\(kind)\t\(count)") }
    }

    func write(to path: String) throws {
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
    }

    var digest: String { SHA256.hex(lines.joined(separator: "\n")) }
}
