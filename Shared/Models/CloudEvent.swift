import Foundation

/// One CloudEvents 1.0 event in JSON structured mode (DESIGN §3.1).
public struct CloudEvent: Sendable, Equatable {
    public var id: String
    public var source: String
    public var type: String
    public var subject: String?
    public var time: String?
    public var datacontenttype: String?
    /// The `sequence` extension: set on events carried by a feed.
    public var sequence: String?
    public var data: JSON?
    /// Any other extension attributes, kept as received.
    public var extensions: JSONObject

    public static let specVersion = "1.0"

    public init(
        id: String, source: String, type: String, subject: String? = nil, time: String? = nil,
        datacontenttype: String? = "application/json", sequence: String? = nil, data: JSON? = nil,
        extensions: JSONObject = JSONObject()
    ) {
        self.id = id
        self.source = source
        self.type = type
        self.subject = subject
        self.time = time
        self.datacontenttype = datacontenttype
        self.sequence = sequence
        self.data = data
        self.extensions = extensions
    }

    /// Whether `datacontenttype` names JSON: `application/json` or a `+json` type, in any
    /// case (media types are case-insensitive, RFC 2045), with optional parameters after `;`,
    /// where a `charset` must be UTF-8 (RFC 8259 JSON is UTF-8).
    public static func isJSONMediaType(_ value: String) -> Bool {
        let parts = value.split(separator: ";", omittingEmptySubsequences: false)
        let type = parts[0].trimmingCharacters(in: .whitespaces).lowercased()
        guard type == "application/json" || (type.hasSuffix("+json") && type.contains("/")) else { return false }
        for parameter in parts.dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pair.count == 2, !pair[0].isEmpty else { return false }
            if pair[0].lowercased() == "charset" {
                let charset = pair[1].trimmingCharacters(in: CharacterSet(charactersIn: "\"")).lowercased()
                guard charset == "utf-8" || charset == "utf8" else { return false }
            }
        }
        return true
    }

    /// Parses one frame: UTF-8 JSON object carrying a valid CloudEvents 1.0 envelope.
    /// Throws `invalid_json` or `invalid_envelope`.
    public static func parse(_ frame: some Sequence<UInt8>) throws(Rejection) -> CloudEvent {
        try parse(Array(frame), omittingData: [])
    }

    /// Parses one frame leaving out the named members of `data` (checked as JSON, not built):
    /// for a reader that never looks at them.
    public static func parse(_ frame: [UInt8], omittingData omitted: Set<String>) throws(Rejection) -> CloudEvent {
        let json: JSON
        do {
            json = try JSONParser.parse(frame, omitting: omitted, atDepth: 2)
        } catch {
            throw Rejection(.invalidJSON, "not a JSON document: \(error.description)")
        }
        return try CloudEvent(json: json)
    }

    public init(json: JSON) throws(Rejection) {
        guard case .object(var o) = json else {
            throw Rejection(.invalidJSON, "the event must be a JSON object, not \(json.kindName)")
        }
        func required(_ name: String) throws(Rejection) -> String {
            guard let v = o[name] else {
                throw Rejection(.invalidEnvelope, field: name, "required attribute \(name) is missing")
            }
            guard case .string(let s) = v, !s.isEmpty else {
                throw Rejection(.invalidEnvelope, field: name, "attribute \(name) must be a non-empty string")
            }
            return s
        }
        func optional(_ name: String) throws(Rejection) -> String? {
            guard let v = o[name], !v.isNull else { return nil }
            guard case .string(let s) = v else {
                throw Rejection(.invalidEnvelope, field: name, "attribute \(name) must be a string")
            }
            return s
        }
        let spec = try required("specversion")
        guard spec == CloudEvent.specVersion else {
            throw Rejection(.invalidEnvelope, field: "specversion", "specversion must be \"1.0\", got \"\(spec.prefix(20))\"")
        }
        id = try required("id")
        guard id.utf8.count <= 256 else { throw Rejection(.invalidEnvelope, field: "id", "id is longer than 256 bytes") }
        source = try required("source")
        guard source.utf8.count <= 512 else {
            throw Rejection(.invalidEnvelope, field: "source", "source is longer than 512 bytes")
        }
        type = try required("type")
        subject = try optional("subject")
        time = try optional("time")
        if let time, !Timestamp.isRFC3339(time) {
            throw Rejection(.invalidEnvelope, field: "time", "time must be an RFC 3339 instant")
        }
        datacontenttype = try optional("datacontenttype")
        if let ct = datacontenttype, !Self.isJSONMediaType(ct) {
            throw Rejection(
                .invalidEnvelope, field: "datacontenttype", "only JSON data (in UTF-8) is accepted, got \(ct.prefix(60))")
        }
        if o["data_base64"] != nil {
            throw Rejection(.invalidEnvelope, field: "data_base64", "binary data is not accepted; send JSON in data")
        }
        if let seq = o["sequence"] {
            guard case .string(let s) = seq else {
                throw Rejection(.invalidEnvelope, field: "sequence", "sequence must be a decimal string")
            }
            sequence = s
        } else {
            sequence = nil
        }
        data = o["data"]
        for k in ["specversion", "id", "source", "type", "subject", "time", "datacontenttype", "sequence", "data"] {
            o[k] = nil
        }
        extensions = o
    }

    public var json: JSON {
        var o = JSONObject()
        o["specversion"] = .string(CloudEvent.specVersion)
        o["id"] = .string(id)
        o["source"] = .string(source)
        o["type"] = .string(type)
        if let subject { o["subject"] = .string(subject) }
        if let time { o["time"] = .string(time) }
        if let datacontenttype { o["datacontenttype"] = .string(datacontenttype) }
        if let sequence { o["sequence"] = .string(sequence) }
        for (k, v) in extensions.members { o[k] = v }
        if let data { o["data"] = data }
        return .object(o)
    }

    public func serialized() -> String { json.serialized() }

    /// The canonical text used to decide whether a re-sent id carries the same content:
    /// every attribute but `sequence`, keys sorted.
    public func canonicalContent() -> String {
        var copy = self
        copy.sequence = nil
        return copy.json.serialized(sortedKeys: true)
    }

    /// The sequence as a number (feeds only).
    public var sequenceNumber: UInt64? { sequence.flatMap { UInt64($0) } }
}

/// RFC 3339 instants, as written on the wire.
public enum Timestamp {
    /// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
    public static func isRFC3339(_ s: String) -> Bool {
        let b = Array(s.utf8)
        guard b.count >= 20 else { return false }
        func digits(_ r: Range<Int>) -> Int? {
            var v = 0
            for k in r {
                guard k < b.count, b[k] >= 0x30, b[k] <= 0x39 else { return nil }
                v = v * 10 + Int(b[k] - 0x30)
            }
            return v
        }
        guard let y = digits(0..<4), b[4] == 0x2D, let mo = digits(5..<7), b[7] == 0x2D, let d = digits(8..<10),
            b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: "t"), let h = digits(11..<13), b[13] == 0x3A,
            let mi = digits(14..<16), b[16] == 0x3A, let sec = digits(17..<19)
        else { return false }
        guard (1...12).contains(mo), d >= 1, d <= CivilDate.daysInMonth(year: y, month: mo), h < 24, mi < 60, sec <= 60
        else { return false }
        var k = 19
        if k < b.count, b[k] == UInt8(ascii: ".") {
            k += 1
            let s0 = k
            while k < b.count, b[k] >= 0x30, b[k] <= 0x39 { k += 1 }
            if k == s0 { return false }
        }
        guard k < b.count else { return false }
        if b[k] == UInt8(ascii: "Z") || b[k] == UInt8(ascii: "z") { return k + 1 == b.count }
        guard b[k] == UInt8(ascii: "+") || b[k] == UInt8(ascii: "-"), k + 6 == b.count,
            let oh = digits((k + 1)..<(k + 3)), b[k + 3] == 0x3A, let om = digits((k + 4)..<(k + 6))
        else { return false }
        return oh < 24 && om < 60
    }
}

/// Reads an event's top-level `type` and `sequence` without building it: a subscriber uses it
/// to pass over the events it does not need (the matcher has no use for the notifier's millions
/// of `notification.sent`) at the cost of one scan of the bytes. Returns nil for anything it
/// is not sure of (escapes in those members, a repeated member, unbalanced quotes or brackets);
/// the caller then parses the event in full, which gives the real verdict. It checks structure,
/// not every number and literal: an event passed over on its word is not validated further,
/// which is why only feeds of Bangfu's own services are read this way.
public enum EventPeek {
    public static func typeAndSequence(_ bytes: [UInt8]) -> (type: String, sequence: UInt64)? {
        bytes.withUnsafeBufferPointer { scan($0) }
    }

    static func scan(_ b: UnsafeBufferPointer<UInt8>) -> (type: String, sequence: UInt64)? {
        var i = 0
        let n = b.count
        func space() { while i < n, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 } }
        /// A string with no escapes; i is on its opening quote. Returns its byte range.
        func plainString() -> Range<Int>? {
            guard i < n, b[i] == 0x22 else { return nil }
            let start = i + 1
            var k = start
            while k < n {
                if b[k] == 0x22 {
                    i = k + 1
                    return start..<k
                }
                if b[k] == 0x5C || b[k] < 0x20 { return nil }
                k += 1
            }
            return nil
        }
        /// Skips any value, nested or not; strings may hold escapes.
        func skipValue() -> Bool {
            var depth = 0
            repeat {
                space()
                guard i < n else { return false }
                switch b[i] {
                case 0x22:
                    i += 1
                    while i < n, b[i] != 0x22 { i += b[i] == 0x5C ? 2 : 1 }
                    guard i < n else { return false }
                    i += 1
                case 0x7B, 0x5B:
                    depth += 1
                    i += 1
                case 0x7D, 0x5D:
                    depth -= 1
                    guard depth >= 0 else { return false }
                    i += 1
                case 0x2C, 0x3A:
                    guard depth > 0 else { return false }
                    i += 1
                default:
                    let start = i
                    while i < n,
                        !(b[i] == 0x2C || b[i] == 0x7D || b[i] == 0x5D || b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09)
                    {
                        i += 1
                    }
                    if i == start { return false }
                }
            } while depth > 0
            return true
        }
        func equals(_ r: Range<Int>, _ word: StaticString) -> Bool {
            guard r.count == word.utf8CodeUnitCount else { return false }
            let w = word.utf8Start
            for (k, x) in r.enumerated() where b[x] != w[k] { return false }
            return true
        }
        space()
        guard i < n, b[i] == 0x7B else { return nil }
        i += 1
        var type: String?
        var sequence: UInt64?
        while true {
            space()
            guard let key = plainString() else { return nil }
            space()
            guard i < n, b[i] == 0x3A else { return nil }
            i += 1
            space()
            if equals(key, "type") || equals(key, "sequence") {
                let isType = equals(key, "type")
                if (isType ? type != nil : sequence != nil) { return nil }
                guard let r = plainString(), !r.isEmpty else { return nil }
                if isType {
                    guard let s = UTF8Text.string(UnsafeBufferPointer(rebasing: b[r])) else { return nil }
                    type = s
                } else {
                    var v: UInt64 = 0
                    for x in r {
                        guard b[x] >= 0x30 && b[x] <= 0x39 else { return nil }
                        let (m, o1) = v.multipliedReportingOverflow(by: 10)
                        let (a, o2) = m.addingReportingOverflow(UInt64(b[x] - 0x30))
                        if o1 || o2 { return nil }
                        v = a
                    }
                    sequence = v
                }
            } else {
                guard skipValue() else { return nil }
            }
            space()
            guard i < n else { return nil }
            if b[i] == 0x2C {
                i += 1
                continue
            }
            guard b[i] == 0x7D else { return nil }
            i += 1
            space()
            guard i == n, let type, let sequence else { return nil }
            return (type, sequence)
        }
    }
}
