import Models

/// The trace as an entitlement event carries it. A trace records every input it read whole, so a
/// merchant with thousands of leases makes a trace of megabytes (the flood-relief programme reads
/// `merchant.leases` twice) — over `max-message-bytes`, which would cut every subscriber off at
/// that event. Over the budget, each bulky list input is replaced by a summary (its element
/// count, its size and the SHA-256 of its canonical JSON) and the trace says
/// `"trace_truncated": true`; clause values, scalar inputs, the formula, the exact amount and
/// the rounded amount stay. The matcher keeps the full trace (`entitlement.show`, `bangfu explain`).
enum PublishedTrace {
    /// The most trace bytes an entitlement event carries as is.
    static let budget = 256 * 1_024
    /// A list input larger than this (serialised) is bulky.
    static let bulkyListBytes = 1_024

    /// `trace` (compact JSON) as it goes on the feed: unchanged when it fits `budget`.
    static func fit(_ trace: [UInt8], budget: Int = PublishedTrace.budget) -> [UInt8] {
        guard trace.count > budget, case .object(var o)? = try? JSONParser.parse(trace) else { return trace }
        for bulky in [bulkyListBytes, 0] {
            o["clauses"] = o["clauses"]?.arrayValue.map { .array($0.map { clause($0, over: bulky) }) } ?? o["clauses"]
            if let p = o["priority"], p.objectValue != nil { o["priority"] = clause(p, over: bulky) }
            if let a = o["amount"], a.objectValue != nil { o["amount"] = clause(a, over: bulky) }
            o["trace_truncated"] = true
            let bytes = JSON.object(o).serializedBytes()
            // Every list summarised only when summarising the bulky ones was not enough.
            if bytes.count <= budget || bulky == 0 { return bytes }
        }
        return trace
    }

    /// A clause (or the amount) with its list inputs over `over` bytes summarised.
    static func clause(_ c: JSON, over: Int) -> JSON {
        guard case .object(var m) = c, let inputs = m["inputs"]?.arrayValue else { return c }
        m["inputs"] = .array(inputs.map { input($0, over: over) })
        return .object(m)
    }

    static func input(_ i: JSON, over: Int) -> JSON {
        guard case .object(var m) = i, let value = m["value"], let list = value.arrayValue else { return i }
        let canonical = value.serializedBytes(sortedKeys: true)
        guard canonical.count > over else { return i }
        m["value"] = nil
        m["summary"] = [
            "count": .int(Int64(list.count)), "bytes": .int(Int64(canonical.count)), "sha256": .string(SHA256.hash(canonical).hexString),
        ]
        return .object(m)
    }
}
