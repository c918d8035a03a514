import Testing

@testable import Models

@Suite("Peeking at an event's type and sequence")
struct EventPeekTests {
    private func peek(_ s: String) -> (type: String, sequence: UInt64)? { EventPeek.typeAndSequence(Array(s.utf8)) }

    @Test func agreesWithTheFullParseOnEventsAsServicesWriteThem() throws {
        var rng = SplitMix64(seed: 7)
        let awkward: [JSON] = [
            "引号\"和\\反斜杠", .array([.object(JSONObject(["}": "]", "nested": .array([.null, true, .number("1.5")])]))]), .int(-3),
            .object(JSONObject(["sequence": "999", "type": "not.this"])), "\u{1}\u{7f}", .number("1e10"),
        ]
        for k in 0..<2_000 {
            var data = JSONObject()
            for j in 0..<Int.random(in: 0...5, using: &rng) { data["k\(j)"] = awkward.randomElement(using: &rng)! }
            var ev = CloudEvent(id: "e\(k)", source: "/bangfu/test", type: "entitlement.proposed", data: .object(data))
            ev.sequence = String(UInt64.random(in: 1...UInt64.max, using: &rng))
            ev.subject = k % 2 == 0 ? "9144030071526726XG" : nil
            let bytes = ev.json.serializedBytes()
            let full = try CloudEvent.parse(bytes)
            let p = try #require(EventPeek.typeAndSequence(bytes))
            #expect(p.type == full.type)
            #expect(p.sequence == full.sequenceNumber)
        }
    }

    @Test func anEventCanBeReadWithoutItsTrace() throws {
        let ev = CloudEvent(
            id: "entitlement.proposed/ent-1/1", source: "/bangfu/matcher", type: "entitlement.proposed", sequence: "42",
            data: ["entitlement_id": "ent-1", "amount_fen": 150_000, "trace": ["clauses": .array([["value": true]])]])
        let lean = try CloudEvent.parse(ev.json.serializedBytes(), omittingData: ["trace"])
        #expect(lean.data?["trace"] == nil)
        #expect(lean.data?["amount_fen"] == .int(150_000))
        #expect(lean.sequenceNumber == 42)
        #expect(try CloudEvent.parse(ev.json.serializedBytes()).data?["trace"] != nil)
    }

    @Test func declinesWhatItCannotBeSureOf() {
        #expect(peek(#"{"type":"a.b","sequence":"12"}"#)! == ("a.b", 12))
        #expect(peek(#" { "sequence" : "7" , "data" : {"type":"x"} , "type" : "a.b" } "#)! == ("a.b", 7))
        #expect(peek(#"{"type":"a.b"}"#) == nil)  // no sequence
        #expect(peek(#"{"sequence":"1"}"#) == nil)  // no type
        #expect(peek(#"{"type":"a\u002eb","sequence":"1"}"#) == nil)  // an escape: let the parser decide
        #expect(peek(#"{"type":"a.b","type":"c.d","sequence":"1"}"#) == nil)  // repeated member
        #expect(peek(#"{"type":"a.b","sequence":1}"#) == nil)  // not a string
        #expect(peek(#"{"type":"a.b","sequence":"-1"}"#) == nil)
        #expect(peek(#"{"type":"a.b","sequence":"18446744073709551616"}"#) == nil)  // past UInt64
        #expect(peek(#"{"type":"a.b","sequence":"1","data":{"x":[1,2}}"#) == nil)  // broken nesting
        #expect(peek(#"{"type":"a.b","sequence":"1"} trailing"#) == nil)
        #expect(peek(#"{"type":"a.b","sequence":"1","data":"unterminated}"#) == nil)
        #expect(peek(#"["type","a.b"]"#) == nil)
        #expect(peek("") == nil)
    }
}
