// A small XML writer and a small, strict, non-validating XML reader: just what ISO 20022 files
// need. The reader accepts UTF-8 only, refuses DTDs (so no entity expansion and no external
// entities), bounds nesting depth, and matches elements on their local names (namespace
// prefixes are dropped).

// MARK: - Writing

/// Text escaped for XML element content and attribute values (& < > " ').
func xmlEscaped(_ s: String) -> String {
    var out = ""
    out.reserveCapacity(s.utf8.count)
    for ch in s.unicodeScalars {
        switch ch {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&apos;"
        case "\r": out += "&#xD;"
        default: out.unicodeScalars.append(ch)
        }
    }
    return out
}

/// Whether `s` contains a character XML 1.0 cannot carry (C0 controls other than tab, LF, CR;
/// U+FFFE, U+FFFF).
func hasNonXMLCharacters(_ s: String) -> Bool {
    s.unicodeScalars.contains { c in
        (c.value < 0x20 && c.value != 0x09 && c.value != 0x0A && c.value != 0x0D) || c.value == 0xFFFE || c.value == 0xFFFF
    }
}

/// `s` with characters XML cannot carry (and line breaks) replaced by spaces; for writers that
/// must not fail.
func xmlSafeLine(_ s: String) -> String {
    var out = ""
    for c in s.unicodeScalars {
        if c.value < 0x20 || c.value == 0xFFFE || c.value == 0xFFFF {
            out += " "
        } else {
            out.unicodeScalars.append(c)
        }
    }
    return out
}

/// The first `n` Unicode scalars of `s` (XSD lengths count characters, i.e. scalars).
func prefixScalars(_ s: String, _ n: Int) -> String {
    var out = ""
    for (k, c) in s.unicodeScalars.enumerated() {
        if k == n { break }
        out.unicodeScalars.append(c)
    }
    return out
}

struct XMLBuilder {
    private(set) var text = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    private var stack: [String] = []

    private var indent: String { String(repeating: "  ", count: stack.count) }

    mutating func open(_ name: String, _ attributes: KeyValuePairs<String, String> = [:]) {
        text += indent + "<" + name + Self.attributeText(attributes) + ">\n"
        stack.append(name)
    }

    mutating func close() {
        let name = stack.removeLast()
        text += indent + "</" + name + ">\n"
    }

    mutating func leaf(_ name: String, _ value: String, _ attributes: KeyValuePairs<String, String> = [:]) {
        text += indent + "<" + name + Self.attributeText(attributes) + ">" + xmlEscaped(value) + "</" + name + ">\n"
    }

    mutating func element(_ name: String, _ body: (inout XMLBuilder) -> Void) {
        open(name)
        body(&self)
        close()
    }

    private static func attributeText(_ attributes: KeyValuePairs<String, String>) -> String {
        var s = ""
        for (k, v) in attributes { s += " " + k + "=\"" + xmlEscaped(v) + "\"" }
        return s
    }
}

// MARK: - Reading

/// An element of a parsed document: its local name, attributes by local name, child elements and
/// its own character data (concatenated).
struct XMLNode: Sendable {
    var name: String
    var attributes: [String: String] = [:]
    var children: [XMLNode] = []
    var rawText: String = ""

    /// The character data with surrounding XML whitespace removed.
    var text: String {
        let b = Array(rawText.utf8)
        var lo = 0
        var hi = b.count
        while lo < hi, isXMLSpace(b[lo]) { lo += 1 }
        while hi > lo, isXMLSpace(b[hi - 1]) { hi -= 1 }
        return String(decoding: b[lo..<hi], as: UTF8.self)
    }

    /// The first child with local name `name`.
    func child(_ name: String) -> XMLNode? { children.first { $0.name == name } }

    /// All children with local name `name`.
    func all(_ name: String) -> [XMLNode] { children.filter { $0.name == name } }

    /// Follows a path of local names, e.g. `path("GrpHdr", "MsgId")`.
    func path(_ names: String...) -> XMLNode? {
        var node: XMLNode? = self
        for n in names { node = node?.child(n) }
        return node
    }
}

struct XMLSyntaxError: Error, Sendable {
    var message: String
    var line: Int
}

/// A strict, non-validating XML 1.0 reader for UTF-8 documents without a DTD.
struct MiniXMLParser {
    static let maxDepth = 64

    private let b: [UInt8]
    private var i = 0

    private init(_ bytes: [UInt8]) { b = bytes }

    static func parse(_ bytes: [UInt8]) throws(XMLSyntaxError) -> XMLNode {
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw XMLSyntaxError(message: "the document is not valid UTF-8", line: 0)
        }
        var p = MiniXMLParser(bytes)
        return try p.document()
    }

    private func fail(_ message: String) -> XMLSyntaxError {
        var line = 1
        for k in 0..<min(i, b.count) where b[k] == 0x0A { line += 1 }
        return XMLSyntaxError(message: message, line: line)
    }

    private func starts(with s: StaticString) -> Bool {
        let n = s.utf8CodeUnitCount
        guard i + n <= b.count else { return false }
        let p = s.utf8Start
        for k in 0..<n where b[i + k] != p[k] { return false }
        return true
    }

    private mutating func skipSpace() {
        while i < b.count, isXMLSpace(b[i]) { i += 1 }
    }

    private mutating func document() throws(XMLSyntaxError) -> XMLNode {
        if b.count >= 3, b[0] == 0xEF, b[1] == 0xBB, b[2] == 0xBF { i = 3 }
        if starts(with: "<?xml") {
            let start = i
            try skipPast("?>", what: "XML declaration")
            let decl = String(decoding: b[start..<i], as: UTF8.self).lowercased()
            if let r = decl.range(of: "encoding") {
                let rest = decl[r.upperBound...].drop { $0 == " " || $0 == "=" || $0 == "\"" || $0 == "'" }
                guard rest.hasPrefix("utf-8") || rest.hasPrefix("utf8") else {
                    throw fail("only UTF-8 documents are accepted")
                }
            }
        }
        try miscellany()
        guard i < b.count, b[i] == UInt8(ascii: "<") else {
            throw fail(i < b.count ? "expected the root element" : "the document is empty")
        }
        let root = try element(depth: 1)
        try miscellany()
        guard i == b.count else { throw fail("content after the root element") }
        return root
    }

    /// Comments, processing instructions and whitespace outside the root element.
    private mutating func miscellany() throws(XMLSyntaxError) {
        while true {
            skipSpace()
            if starts(with: "<!--") {
                try comment()
            } else if starts(with: "<!DOCTYPE") || starts(with: "<!doctype") {
                throw fail("a DTD (<!DOCTYPE) is not accepted")
            } else if starts(with: "<?") {
                try skipPast("?>", what: "processing instruction")
            } else {
                return
            }
        }
    }

    private mutating func skipPast(_ end: StaticString, what: String) throws(XMLSyntaxError) {
        while i < b.count {
            if starts(with: end) {
                i += end.utf8CodeUnitCount
                return
            }
            i += 1
        }
        throw fail("unterminated \(what)")
    }

    private mutating func comment() throws(XMLSyntaxError) {
        i += 4
        while i < b.count {
            if starts(with: "--") {
                guard i + 2 < b.count, b[i + 2] == UInt8(ascii: ">") else { throw fail("'--' inside a comment") }
                i += 3
                return
            }
            i += 1
        }
        throw fail("unterminated comment")
    }

    private static func isNameByte(_ c: UInt8) -> Bool {
        !(isXMLSpace(c) || c == UInt8(ascii: "/") || c == UInt8(ascii: ">") || c == UInt8(ascii: "=")
            || c == UInt8(ascii: "<") || c == UInt8(ascii: "\"") || c == UInt8(ascii: "'") || c == UInt8(ascii: "&"))
    }

    private mutating func name() throws(XMLSyntaxError) -> String {
        let start = i
        while i < b.count, Self.isNameByte(b[i]) { i += 1 }
        guard i > start else { throw fail("expected a name") }
        let first = b[start]
        guard !isDigit(first), first != UInt8(ascii: "-"), first != UInt8(ascii: "."), first != UInt8(ascii: ":") else {
            throw fail("invalid name")
        }
        return String(decoding: b[start..<i], as: UTF8.self)
    }

    private static func localName(_ qualified: String) -> String {
        if let k = qualified.lastIndex(of: ":") { return String(qualified[qualified.index(after: k)...]) }
        return qualified
    }

    private mutating func element(depth: Int) throws(XMLSyntaxError) -> XMLNode {
        guard depth <= Self.maxDepth else { throw fail("elements nested deeper than \(Self.maxDepth)") }
        i += 1  // '<'
        let qname = try name()
        var node = XMLNode(name: Self.localName(qname))
        var seen: Set<String> = []
        while true {
            let hadSpace = i < b.count && isXMLSpace(b[i])
            skipSpace()
            guard i < b.count else { throw fail("unterminated start tag <\(qname)>") }
            if b[i] == UInt8(ascii: "/") {
                guard i + 1 < b.count, b[i + 1] == UInt8(ascii: ">") else { throw fail("expected '/>'") }
                i += 2
                return node
            }
            if b[i] == UInt8(ascii: ">") {
                i += 1
                break
            }
            guard hadSpace else { throw fail("expected whitespace before an attribute") }
            let attr = try name()
            guard seen.insert(attr).inserted else { throw fail("duplicate attribute \(attr)") }
            skipSpace()
            guard i < b.count, b[i] == UInt8(ascii: "=") else { throw fail("expected '=' after attribute \(attr)") }
            i += 1
            skipSpace()
            guard i < b.count, b[i] == UInt8(ascii: "\"") || b[i] == UInt8(ascii: "'") else {
                throw fail("attribute values must be quoted")
            }
            let quote = b[i]
            i += 1
            let value = try characterData(until: quote)
            i += 1
            if attr != "xmlns" && !attr.hasPrefix("xmlns:") { node.attributes[Self.localName(attr)] = value }
        }
        // Content.
        var text = ""
        while true {
            guard i < b.count else { throw fail("unterminated element <\(qname)>") }
            if b[i] != UInt8(ascii: "<") {
                text += try characterData(until: UInt8(ascii: "<"))
                continue
            }
            if starts(with: "</") {
                i += 2
                let closing = try name()
                guard closing == qname else { throw fail("</\(closing)> does not close <\(qname)>") }
                skipSpace()
                guard i < b.count, b[i] == UInt8(ascii: ">") else { throw fail("expected '>'") }
                i += 1
                node.rawText = text
                return node
            }
            if starts(with: "<!--") {
                try comment()
            } else if starts(with: "<![CDATA[") {
                i += 9
                let start = i
                while i < b.count, !starts(with: "]]>") { i += 1 }
                guard i < b.count else { throw fail("unterminated CDATA section") }
                text += String(decoding: b[start..<i], as: UTF8.self)
                i += 3
            } else if starts(with: "<!") {
                throw fail("unexpected markup declaration")
            } else if starts(with: "<?") {
                try skipPast("?>", what: "processing instruction")
            } else {
                node.children.append(try element(depth: depth + 1))
            }
        }
    }

    /// Character data up to (not including) `end`, with references resolved.
    private mutating func characterData(until end: UInt8) throws(XMLSyntaxError) -> String {
        var out: [UInt8] = []
        while i < b.count, b[i] != end {
            let c = b[i]
            if c == UInt8(ascii: "&") {
                try reference(into: &out)
                continue
            }
            if c == UInt8(ascii: "<") { throw fail("'<' in an attribute value") }
            if c < 0x20 && !isXMLSpace(c) { throw fail("control character in the document") }
            if c == 0x0D {
                // Line-end normalisation: CR LF and lone CR become LF.
                out.append(0x0A)
                i += 1
                if i < b.count, b[i] == 0x0A { i += 1 }
                continue
            }
            out.append(c)
            i += 1
        }
        guard i < b.count else { throw fail("unexpected end of the document") }
        return String(decoding: out, as: UTF8.self)
    }

    private mutating func reference(into out: inout [UInt8]) throws(XMLSyntaxError) {
        let start = i + 1
        var k = start
        while k < b.count, k - start < 12, b[k] != UInt8(ascii: ";") { k += 1 }
        guard k < b.count, b[k] == UInt8(ascii: ";") else { throw fail("unterminated entity reference") }
        let ref = String(decoding: b[start..<k], as: UTF8.self)
        let scalar: Unicode.Scalar?
        switch ref {
        case "lt": scalar = "<"
        case "gt": scalar = ">"
        case "amp": scalar = "&"
        case "quot": scalar = "\""
        case "apos": scalar = "'"
        default:
            var value: UInt32?
            if ref.hasPrefix("#x") {
                value = UInt32(ref.dropFirst(2), radix: 16)
            } else if ref.hasPrefix("#") {
                value = UInt32(ref.dropFirst(), radix: 10)
            } else {
                throw fail("unknown entity &\(ref);")
            }
            guard let v = value, v == 0x09 || v == 0x0A || v == 0x0D || (v >= 0x20 && v != 0xFFFE && v != 0xFFFF),
                let s = Unicode.Scalar(v)
            else {
                throw fail("invalid character reference &\(ref);")
            }
            scalar = s
        }
        out.append(contentsOf: Array(String(Character(scalar!)).utf8))
        i = k + 1
    }
}
