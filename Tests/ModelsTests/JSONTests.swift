import Testing

@testable import Models

@Suite("JSON parser and serialiser")
struct JSONTests {
    private func parse(_ s: String) throws -> JSON { try JSONParser.parse(s) }

    private func parseError(_ bytes: [UInt8]) -> JSONParseError? {
        do {
            _ = try JSONParser.parse(bytes)
            return nil
        } catch {
            return error
        }
    }

    private func parseError(_ s: String) -> JSONParseError? { parseError(Array(s.utf8)) }

    // MARK: numbers

    @Test func integersAreExact() throws {
        #expect(try JSONParser.parse("0") == .int(0))
        #expect(try JSONParser.parse("-0") == .int(0))
        #expect(try JSONParser.parse("123456789012345678") == .int(123_456_789_012_345_678))
        #expect(try JSONParser.parse("9223372036854775807") == .int(Int64.max))
        #expect(try JSONParser.parse("-9223372036854775808") == .int(Int64.min))
        #expect(try JSONParser.parse("[1000000000000000]") == .array([.int(1_000_000_000_000_000)]))
    }

    @Test func beyondInt64IsKeptAsText() throws {
        #expect(try JSONParser.parse("9223372036854775808") == .number("9223372036854775808"))
        #expect(try JSONParser.parse("-9223372036854775809") == .number("-9223372036854775809"))
        #expect(try JSONParser.parse("99999999999999999999") == .number("99999999999999999999"))
    }

    @Test func fractionsAndExponentsAreKeptAsText() throws {
        #expect(try JSONParser.parse("10.5") == .number("10.5"))
        #expect(try JSONParser.parse("1.0") == .number("1.0"))
        #expect(try JSONParser.parse("1e3") == .number("1e3"))
        #expect(try JSONParser.parse("-2.5E-3") == .number("-2.5E-3"))
        #expect(try JSONParser.parse("0.1").serialized() == "0.1")
        #expect(try JSONParser.parse("1e3").intValue == nil)
    }

    @Test(arguments: ["01", "1.", ".5", "+1", "1e", "1e+", "-", "--1", "0x10", "NaN", "Infinity", "1.5.2"])
    func malformedNumbers(_ s: String) {
        #expect(parseError(s) != nil)
    }

    // MARK: structure

    @Test func nestingUpTo64IsAccepted() throws {
        let s = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect(throws: Never.self) { try JSONParser.parse(s) }
        let o = String(repeating: "{\"a\":", count: 64) + "1" + String(repeating: "}", count: 64)
        #expect(throws: Never.self) { try JSONParser.parse(o) }
    }

    @Test func nesting65IsRejected() {
        let s = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        #expect(parseError(s)?.reason == "nesting deeper than 64")
        let o = String(repeating: "{\"a\":", count: 65) + "1" + String(repeating: "}", count: 65)
        #expect(parseError(o)?.reason == "nesting deeper than 64")
    }

    @Test(arguments: [1000, 100_000])
    func deepNestingFailsWithoutCrashing(_ depth: Int) {
        let closed = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        #expect(parseError(closed)?.reason == "nesting deeper than 64")
        let unclosed = String(repeating: "[", count: depth)
        #expect(parseError(unclosed) != nil)
    }

    @Test func duplicateKeysAreRejected() {
        #expect(parseError("{\"a\":1,\"a\":2}")?.reason.hasPrefix("duplicate member name") == true)
        #expect(parseError("{\"x\":{\"b\":1,\"b\":1}}") != nil)
        // Same key in different objects is fine.
        #expect(throws: Never.self) { try JSONParser.parse("[{\"a\":1},{\"a\":2}]") }
    }

    @Test func trailingAndMissingContent() {
        #expect(parseError("{} {}")?.reason == "trailing characters after the JSON value")
        #expect(parseError("") != nil)
        #expect(parseError("   ") != nil)
        #expect(parseError("[1,]") != nil)
        #expect(parseError("{\"a\":1,}") != nil)
        #expect(parseError("{a:1}") != nil)
        #expect(parseError("[1 2]") != nil)
        #expect(parseError("tru") != nil)
        #expect(parseError("nul") != nil)
        #expect(parseError("'a'") != nil)
    }

    @Test func whitespaceAndBOM() throws {
        #expect(try JSONParser.parse(" \t\r\n{ \"a\" : [ 1 , true , null ] } \n") == ["a": [1, true, .null]])
        #expect(try JSONParser.parse([0xEF, 0xBB, 0xBF] + Array("[1]".utf8)) == [1])
    }

    // MARK: strings

    @Test func invalidUTF8IsRejected() {
        #expect(parseError([0x22, 0xFF, 0x22])?.reason == "string is not valid UTF-8")
        // Overlong encoding of '/'.
        #expect(parseError([0x22, 0xC0, 0xAF, 0x22])?.reason == "string is not valid UTF-8")
        // A truncated 3-byte sequence.
        #expect(parseError([0x22, 0xE4, 0xB8, 0x22]) != nil)
        // A surrogate encoded directly in UTF-8 (CESU-8).
        #expect(parseError([0x22, 0xED, 0xA0, 0x80, 0x22]) != nil)
        // Invalid UTF-8 after an escape (slow path).
        #expect(parseError([0x22, 0x5C, 0x6E, 0xFF, 0x22]) != nil)
    }

    @Test func validUTF8IsKept() throws {
        #expect(try JSONParser.parse("\"张三丰\"") == .string("张三丰"))
        #expect(try JSONParser.parse("\"😀\"") == .string("😀"))
    }

    @Test func surrogatePairs() throws {
        #expect(try JSONParser.parse("\"\\uD83D\\uDE00\"") == .string("😀"))
        #expect(try JSONParser.parse("\"\\ud840\\udc0b\"") == .string("𠀋"))
        #expect(parseError("\"\\uD83D\"")?.reason == "unpaired surrogate")
        #expect(parseError("\"\\uD83Dx\"")?.reason == "unpaired surrogate")
        #expect(parseError("\"\\uDE00\"")?.reason == "unpaired surrogate")
        #expect(parseError("\"\\uD83D\\u0041\"")?.reason == "unpaired surrogate")
    }

    @Test func escapes() throws {
        #expect(try JSONParser.parse(#""\"\\\/\b\f\n\r\t\u5F20\u0000""#) == .string("\"\\/\u{8}\u{C}\n\r\t张\u{0}"))
        #expect(parseError(#""\x""#)?.reason == "invalid escape")
        #expect(parseError(#""\u12G4""#) != nil)
        #expect(parseError("\"a\nb\"")?.reason == "control character in string")
        #expect(parseError("\"abc") != nil)
    }

    // MARK: serialising

    @Test func roundTrip() throws {
        let texts = [
            #"{"b":1,"a":[true,false,null,-5,10.5,1e3,"x"],"c":{"z":"\"q\"\\","y":[]},"d":{}}"#,
            #"["张三丰","😀","\u0001\n\t",99999999999999999999]"#,
            "[]", "{}", "0", "\"\"",
        ]
        for t in texts {
            let v = try parse(t)
            let again = try parse(v.serialized())
            #expect(again == v, "\(t)")
            #expect(try JSONParser.parse(v.serialized(sortedKeys: true)) == v)
        }
    }

    @Test func serialisedForm() throws {
        let v = try parse(" { \"b\" : 1 , \"a\" : [ 1 , 2 ] } ")
        #expect(v.serialized() == #"{"b":1,"a":[1,2]}"#)
        #expect(JSON.string("a\u{1}\"\\\n").serialized() == #""a\u0001\"\\\n""#)
        #expect(JSON.string("张三").serialized() == "\"张三\"")
        #expect(JSON.int(-42).description == "-42")
        #expect(Array(JSON.bool(true).serializedBytes()) == Array("true".utf8))
    }

    @Test func sortedKeysCanonicalForm() throws {
        let a = try parse(#"{"b":1,"a":[{"d":1,"c":2}],"C":null}"#)
        let b = try parse(#"{"C":null,"a":[{"c":2,"d":1}],"b":1}"#)
        #expect(a.serialized(sortedKeys: true) == #"{"C":null,"a":[{"c":2,"d":1}],"b":1}"#)
        #expect(a.serialized(sortedKeys: true) == b.serialized(sortedKeys: true))
        #expect(a.serialized() != b.serialized())
        // Object equality ignores member order.
        #expect(a == b)
    }

    @Test func objectKeepsOrderAndRemoves() {
        var o = JSONObject()
        o["z"] = 1
        o["a"] = 2
        o["z"] = 3
        #expect(o.keys == ["z", "a"])
        #expect(o["z"] == .int(3))
        o["z"] = nil
        #expect(o.keys == ["a"])
        #expect(o.count == 1)
        #expect(JSON.object(o)["a"]?.intValue == 2)
    }

    @Test func accessors() throws {
        let v = try parse(#"{"s":"x","i":7,"b":true,"a":[1],"o":{},"n":null,"f":1.5}"#)
        #expect(v["s"]?.stringValue == "x")
        #expect(v["i"]?.intValue == 7)
        #expect(v["b"]?.boolValue == true)
        #expect(v["a"]?.arrayValue == [1])
        #expect(v["o"]?.objectValue?.isEmpty == true)
        #expect(v["n"]?.isNull == true)
        #expect(v["missing"] == nil)
        #expect(v["f"]?.kindName == "number")
        #expect(v["f"]?.intValue == nil)
        #expect(v["s"]?.intValue == nil)
    }
}

@Suite("SHA-256")
struct SHA256Tests {
    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    ])
    func knownVectors(input: String, digest: String) {
        #expect(SHA256.hex(input) == digest)
    }

    /// Lengths around the padding boundaries (55/56 bytes: one or two final blocks; 64, 120, 128).
    @Test(arguments: [
        (55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"),
        (56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"),
        (57, "f13b2d724659eb3bf47f2dd6af1accc87b81f09f59f2b75e5c0bed6589dfe8c6"),
        (63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"),
        (64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"),
        (65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"),
        (119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"),
        (120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c"),
        (127, "c57e9278af78fa3cab38667bef4ce29d783787a2f731d4e12200270f0c32320a"),
        (128, "6836cf13bac400e9105071cd6af47084dfacad4e5e302c94bfed24e013afb73e"),
        (129, "c12cb024a2e5551cca0e08fce8f1c5e314555cc3fef6329ee994a3db752166ae"),
    ])
    func paddingBoundaries(length: Int, digest: String) {
        let input = [UInt8](repeating: UInt8(ascii: "a"), count: length)
        #expect(SHA256.hash(input).hexString == digest)
        #expect(SHA256.hex(String(repeating: "a", count: length)) == digest)
        var h = SHA256()
        for b in input { h.update([b]) }
        #expect(h.finalize().hexString == digest)
    }

    /// The one-shot digest and the incremental one (in random pieces) agree on random input.
    @Test func oneShotAndIncrementalAgree() {
        var rng = SplitMix64(seed: 20_261_202)
        for length in 0..<300 {
            let input = (0..<length).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            var h = SHA256()
            var offset = 0
            while offset < length {
                let n = min(Int(rng.next() % 80), length - offset)
                h.update(input[offset..<(offset + n)])
                offset += n
            }
            #expect(h.finalize() == SHA256.hash(input), "length \(length)")
        }
    }

    @Test func aMillionAsInUnevenPiecesMatchesTheStandardVector() {
        var h = SHA256()
        var left = 1_000_000
        var piece = 1
        while left > 0 {
            let n = min(piece, left)
            h.update([UInt8](repeating: UInt8(ascii: "a"), count: n))
            left -= n
            piece = piece % 97 + 13
        }
        #expect(h.finalize().hexString == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    // MARK: UTF-8 and integers without the generic standard-library paths

    @Test func utf8ValidatorAgreesWithTheStandardLibrary() throws {
        var rng = SplitMix64(seed: 20_261_201)
        let pieces: [[UInt8]] = [
            Array("a".utf8), Array("名录".utf8), Array("😀".utf8), [0xC0, 0x80], [0xE0, 0x80, 0x80], [0xED, 0xA0, 0x80],
            [0xF4, 0x90, 0x80, 0x80], [0xF0, 0x9F, 0x98], [0xFF], [0x80], [0xC2], [0xE4, 0xB8], [0xF5, 0x80, 0x80, 0x80],
            [0xEF, 0xBF, 0xBD], [0xF0, 0x90, 0x80, 0x80], [0x7F], [0xC2, 0x80],
        ]
        var invalid = 0
        for _ in 0..<20_000 {
            var bytes: [UInt8] = []
            for _ in 0..<Int.random(in: 0...6, using: &rng) {
                if Bool.random(using: &rng) {
                    bytes += pieces.randomElement(using: &rng)!
                } else {
                    bytes.append(UInt8.random(in: 0...255, using: &rng))
                }
            }
            let ours = bytes.withUnsafeBufferPointer { UTF8Text.string($0) }
            let theirs = String(validating: bytes, as: UTF8.self)
            #expect(ours == theirs, "\(bytes)")
            if theirs == nil { invalid += 1 }
        }
        #expect(invalid > 1_000)
        #expect(throws: JSONParseError.self) { try JSONParser.parse([0x22, 0xED, 0xA0, 0x80, 0x22] as [UInt8]) }
        #expect(try JSONParser.parse("\"名录库 ✓\"") == .string("名录库 ✓"))
    }

    @Test func omittedMembersAreCheckedButNotBuilt() throws {
        let text =
            #"{"type":"e.x","data":{"id":"a","trace":{"clauses":[{"v":true,"s":"名\"录\u4e00"}],"n":-1.5e3},"amount":5,"inner":{"trace":1}},"trace":"top"}"#
        let full = try JSONParser.parse(text)
        let lean = try JSONParser.parse(Array(text.utf8), omitting: ["trace"], atDepth: 2)
        #expect(lean["data"]?["trace"] == nil)
        #expect(lean["data"]?["id"] == "a")
        #expect(lean["data"]?["amount"] == .int(5))
        #expect(lean["data"]?["inner"]?["trace"] == .int(1))  // deeper: kept
        #expect(lean["trace"] == "top")  // shallower: kept
        var expected = full
        if case .object(var o) = full, case .object(var d)? = o["data"] {
            d["trace"] = nil
            o["data"] = .object(d)
            expected = .object(o)
        }
        #expect(lean == expected)
        // An omitted value must still be JSON.
        for broken in [
            #"{"data":{"trace":{"a":}}}"#, #"{"data":{"trace":[1,2}}"#, #"{"data":{"trace":"\q"}}"#, #"{"data":{"trace":"x"#,
            #"{"data":{"trace":tru}}"#, #"{"data":{"trace":{"a" 1}}}"#, "{\"data\":{\"trace\":\"\u{1}\"}}",
        ] {
            #expect(throws: JSONParseError.self) { try JSONParser.parse(Array(broken.utf8), omitting: ["trace"], atDepth: 2) }
        }
        #expect(throws: JSONParseError.self) {
            try JSONParser.parse(
                [0x7B, 0x22, 0x64, 0x22, 0x3A, 0x7B, 0x22, 0x74, 0x22, 0x3A, 0x22, 0xFF, 0x22, 0x7D, 0x7D], omitting: ["t"], atDepth: 2)
        }
        let deep = "{\"data\":{\"trace\":" + String(repeating: "[", count: 80) + String(repeating: "]", count: 80) + "}}"
        #expect(throws: JSONParseError.self) { try JSONParser.parse(Array(deep.utf8), omitting: ["trace"], atDepth: 2) }
    }

    @Test func integersAtTheEdgesOfInt64() throws {
        #expect(try JSONParser.parse("9223372036854775807") == .int(Int64.max))
        #expect(try JSONParser.parse("-9223372036854775808") == .int(Int64.min))
        #expect(try JSONParser.parse("-0") == .int(0))
        #expect(try JSONParser.parse("9223372036854775808") == .number("9223372036854775808"))
        #expect(try JSONParser.parse("-9223372036854775809") == .number("-9223372036854775809"))
        #expect(try JSONParser.parse("[1,-23,450]") == .array([.int(1), .int(-23), .int(450)]))
    }
}
