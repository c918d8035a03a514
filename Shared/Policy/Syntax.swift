// The expression language's syntax (DESIGN §6.1): tokens, the AST and a recursive-descent parser.
//
// Grammar (CEL precedence, lowest first):
//
//     expr     := or ("?" expr ":" expr)?
//     or       := and ("||" and)*
//     and      := rel ("&&" rel)*
//     rel      := add (("<" | "<=" | ">" | ">=" | "==" | "!=" | "in") add)*
//     add      := mul (("+" | "-") mul)*
//     mul      := unary (("*" | "/" | "%") unary)*
//     unary    := ("!" | "-") unary | member
//     member   := primary ("." IDENT ("(" args? ")")?)*
//     primary  := INT | DECIMAL | STRING | "true" | "false" | "[" args? "]" | "(" expr ")"
//               | IDENT | IDENT "(" args? ")"
//     args     := expr ("," expr)* ","?
//
// `#` starts a comment that runs to the end of the line. Positions are offsets in Unicode
// scalars into the expression text; `SourceMap` turns them into file lines and columns.

/// A problem found in an expression, at an offset (in Unicode scalars) into its text.
struct ExprDiagnostic: Error, Sendable {
    var offset: Int
    var message: String
    /// A consequence of an error reported elsewhere: fails compilation but is not shown.
    var quiet = false
}

enum TokenKind: Equatable, Sendable {
    case int(Int64)
    case decimal(Rational)
    case string(String)
    case ident(String)
    case op(String)
    case end
}

struct Token: Sendable {
    var kind: TokenKind
    var start: Int
    var end: Int
}

enum UnaryOp: String, Sendable {
    case not = "!"
    case negate = "-"
}

enum BinaryOp: String, Sendable {
    case or = "||"
    case and = "&&"
    case lt = "<"
    case le = "<="
    case gt = ">"
    case ge = ">="
    case eq = "=="
    case ne = "!="
    case `in` = "in"
    case add = "+"
    case sub = "-"
    case mul = "*"
    case div = "/"
    case mod = "%"
}

indirect enum ExprKind: Sendable {
    case int(Int64)
    case decimal(Rational)
    case string(String)
    case bool(Bool)
    case list([Expr])
    case ident(String)
    /// `base.name`; `namePos` is where the field name starts.
    case select(Expr, String, namePos: Int)
    /// `name(args)`.
    case call(String, [Expr])
    /// `base.name(args)`; `namePos` is where the method name starts.
    case method(Expr, String, [Expr], namePos: Int)
    case unary(UnaryOp, Expr)
    /// `opPos` is where the operator is written.
    case binary(BinaryOp, Expr, Expr, opPos: Int)
    case cond(Expr, Expr, Expr)
}

/// An expression node with its source range `[start, end)`.
struct Expr: Sendable {
    var kind: ExprKind
    var start: Int
    var end: Int
}

// MARK: - Lexer

struct Lexer {
    let text: [Unicode.Scalar]
    var i = 0

    init(_ text: [Unicode.Scalar]) { self.text = text }

    static let maxLength = 100_000

    static func tokenize(_ text: [Unicode.Scalar]) throws(ExprDiagnostic) -> [Token] {
        guard text.count <= maxLength else {
            throw ExprDiagnostic(offset: 0, message: "expression longer than \(maxLength) characters")
        }
        var lx = Lexer(text)
        var out: [Token] = []
        while true {
            let t = try lx.next()
            out.append(t)
            if t.kind == .end { return out }
        }
    }

    private func peek(_ k: Int = 0) -> Unicode.Scalar? { i + k < text.count ? text[i + k] : nil }

    private static func isIdentStart(_ c: Unicode.Scalar) -> Bool {
        (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || c == "_"
    }

    private static func isDigit(_ c: Unicode.Scalar) -> Bool { c >= "0" && c <= "9" }

    mutating func next() throws(ExprDiagnostic) -> Token {
        // Whitespace and comments.
        while let c = peek() {
            if c == " " || c == "\t" || c == "\n" || c == "\r" {
                i += 1
            } else if c == "#" {
                while let d = peek(), d != "\n" { i += 1 }
            } else {
                break
            }
        }
        let start = i
        guard let c = peek() else { return Token(kind: .end, start: i, end: i) }
        if Lexer.isIdentStart(c) {
            while let d = peek(), Lexer.isIdentStart(d) || Lexer.isDigit(d) { i += 1 }
            return Token(kind: .ident(String(String.UnicodeScalarView(text[start..<i]))), start: start, end: i)
        }
        if Lexer.isDigit(c) { return try number() }
        if c == "\"" || c == "'" { return try string(quote: c) }
        let two: [String] = ["&&", "||", "==", "!=", "<=", ">="]
        if let d = peek(1) {
            let s = String(Character(c)) + String(Character(d))
            if two.contains(s) {
                i += 2
                return Token(kind: .op(s), start: start, end: i)
            }
        }
        switch c {
        case "!", "<", ">", "+", "-", "*", "/", "%", "?", ":", "(", ")", "[", "]", ",", ".":
            i += 1
            return Token(kind: .op(String(Character(c))), start: start, end: i)
        case "=":
            throw ExprDiagnostic(offset: start, message: "'=' is not an operator: use '==' to compare (there is no assignment)")
        case "&":
            throw ExprDiagnostic(offset: start, message: "'&' is not an operator: use '&&'")
        case "|":
            throw ExprDiagnostic(offset: start, message: "'|' is not an operator: use '||'")
        default:
            throw ExprDiagnostic(offset: start, message: "unexpected character '\(Character(c))'")
        }
    }

    private mutating func number() throws(ExprDiagnostic) -> Token {
        let start = i
        var digits = ""
        var lastUnderscore = false
        while let d = peek(), Lexer.isDigit(d) || d == "_" {
            lastUnderscore = d == "_"
            if d != "_" { digits.unicodeScalars.append(d) }
            i += 1
        }
        if lastUnderscore { throw ExprDiagnostic(offset: i - 1, message: "a number cannot end with '_'") }
        if peek() == ".", let d = peek(1), Lexer.isDigit(d) {
            i += 1
            var frac = ""
            while let d = peek(), Lexer.isDigit(d) || d == "_" {
                if d != "_" { frac.unicodeScalars.append(d) }
                i += 1
            }
            guard let r = Rational.parseDecimal(digits + "." + frac) else {
                throw ExprDiagnostic(offset: start, message: "number \(digits).\(frac) is out of range")
            }
            try noIdentAfterNumber()
            return Token(kind: .decimal(r), start: start, end: i)
        }
        guard let v = Int64(digits) else {
            throw ExprDiagnostic(offset: start, message: "integer \(digits) is out of range (beyond 64 bits)")
        }
        try noIdentAfterNumber()
        return Token(kind: .int(v), start: start, end: i)
    }

    private func noIdentAfterNumber() throws(ExprDiagnostic) {
        if let d = peek(), Lexer.isIdentStart(d) {
            throw ExprDiagnostic(offset: i, message: "unexpected '\(Character(d))' after a number")
        }
    }

    private mutating func string(quote: Unicode.Scalar) throws(ExprDiagnostic) -> Token {
        let start = i
        i += 1
        var out = String.UnicodeScalarView()
        while true {
            guard let c = peek(), c != "\n" else {
                throw ExprDiagnostic(offset: start, message: "unterminated string")
            }
            i += 1
            if c == quote { break }
            if c != "\\" {
                out.append(c)
                continue
            }
            let escPos = i - 1
            guard let e = peek() else { throw ExprDiagnostic(offset: start, message: "unterminated string") }
            i += 1
            switch e {
            case "\"": out.append("\"")
            case "'": out.append("'")
            case "\\": out.append("\\")
            case "n": out.append("\n")
            case "t": out.append("\t")
            case "r": out.append("\r")
            case "u":
                var v: UInt32 = 0
                for _ in 0..<4 {
                    guard let h = peek(), let d = hexValue(h)
                    else { throw ExprDiagnostic(offset: escPos, message: "\\u needs four hexadecimal digits") }
                    v = v << 4 | d
                    i += 1
                }
                guard let u = Unicode.Scalar(v) else {
                    throw ExprDiagnostic(offset: escPos, message: "\\u escape is not a Unicode scalar")
                }
                out.append(u)
            default:
                throw ExprDiagnostic(offset: escPos, message: "unknown escape '\\\(Character(e))'")
            }
        }
        return Token(kind: .string(String(out)), start: start, end: i)
    }

    private func hexValue(_ c: Unicode.Scalar) -> UInt32? {
        switch c {
        case "0"..."9": c.value - 0x30
        case "a"..."f": c.value - 0x61 + 10
        case "A"..."F": c.value - 0x41 + 10
        default: nil
        }
    }
}

// MARK: - Parser

struct ExprParser {
    let tokens: [Token]
    var p = 0
    var depth = 0
    /// Nesting (parentheses, unary operators, conditionals, and each operator of a chain such
    /// as `a + b + c`) is bounded, so that checking and evaluation cannot exhaust the stack.
    static let maxDepth = 256

    /// Parses a whole expression (it must consume all the text).
    static func parse(_ text: [Unicode.Scalar]) throws(ExprDiagnostic) -> Expr {
        ParseCounter.current?.increment()
        let tokens = try Lexer.tokenize(text)
        var ps = ExprParser(tokens: tokens)
        if case .end = tokens[0].kind { throw ExprDiagnostic(offset: 0, message: "empty expression") }
        let e = try ps.expr()
        let t = ps.tokens[ps.p]
        if t.kind != .end { throw ExprDiagnostic(offset: t.start, message: "unexpected \(describe(t.kind)) after the expression") }
        return e
    }

    private var tok: Token { tokens[p] }

    private func isOp(_ s: String) -> Bool {
        if case .op(let o) = tok.kind { return o == s }
        return false
    }

    private mutating func expect(_ s: String, _ what: String) throws(ExprDiagnostic) {
        guard isOp(s) else { throw ExprDiagnostic(offset: tok.start, message: "expected \(what), found \(ExprParser.describe(tok.kind))") }
        p += 1
    }

    static func describe(_ k: TokenKind) -> String {
        switch k {
        case .int(let v): "number \(v)"
        case .decimal(let r): "number \(r)"
        case .string: "a string"
        case .ident(let s): "'\(s)'"
        case .op(let o): "'\(o)'"
        case .end: "the end of the expression"
        }
    }

    private mutating func nest() throws(ExprDiagnostic) {
        depth += 1
        if depth > ExprParser.maxDepth {
            throw ExprDiagnostic(offset: tok.start, message: "expression nested deeper than \(ExprParser.maxDepth)")
        }
    }

    mutating func expr() throws(ExprDiagnostic) -> Expr {
        try nest()
        defer { depth -= 1 }
        let c = try or()
        guard isOp("?") else { return c }
        p += 1
        let a = try expr()
        try expect(":", "':' of a conditional 'c ? a : b'")
        let b = try expr()
        return Expr(kind: .cond(c, a, b), start: c.start, end: b.end)
    }

    private mutating func binaryLevel(
        _ ops: [String], _ next: (inout ExprParser) throws(ExprDiagnostic) -> Expr
    ) throws(ExprDiagnostic) -> Expr {
        var l = try next(&self)
        let outer = depth
        defer { depth = outer }
        while true {
            var opText: String?
            if case .op(let o) = tok.kind, ops.contains(o) { opText = o }
            if case .ident("in") = tok.kind, ops.contains("in") { opText = "in" }
            guard let o = opText, let op = BinaryOp(rawValue: o) else { return l }
            let opPos = tok.start
            try nest()
            p += 1
            let r = try next(&self)
            l = Expr(kind: .binary(op, l, r, opPos: opPos), start: l.start, end: r.end)
        }
    }

    private mutating func or() throws(ExprDiagnostic) -> Expr {
        try binaryLevel(["||"]) { (ps: inout ExprParser) throws(ExprDiagnostic) in try ps.and() }
    }

    private mutating func and() throws(ExprDiagnostic) -> Expr {
        try binaryLevel(["&&"]) { (ps: inout ExprParser) throws(ExprDiagnostic) in try ps.rel() }
    }

    private mutating func rel() throws(ExprDiagnostic) -> Expr {
        try binaryLevel(["<", "<=", ">", ">=", "==", "!=", "in"]) { (ps: inout ExprParser) throws(ExprDiagnostic) in try ps.add() }
    }

    private mutating func add() throws(ExprDiagnostic) -> Expr {
        try binaryLevel(["+", "-"]) { (ps: inout ExprParser) throws(ExprDiagnostic) in try ps.mul() }
    }

    private mutating func mul() throws(ExprDiagnostic) -> Expr {
        try binaryLevel(["*", "/", "%"]) { (ps: inout ExprParser) throws(ExprDiagnostic) in try ps.unary() }
    }

    private mutating func unary() throws(ExprDiagnostic) -> Expr {
        let start = tok.start
        if isOp("!") || isOp("-") {
            let op: UnaryOp = isOp("!") ? .not : .negate
            p += 1
            try nest()
            defer { depth -= 1 }
            let e = try unary()
            // Fold `-<number literal>` into a literal.
            if op == .negate, case .int(let v) = e.kind { return Expr(kind: .int(-v), start: start, end: e.end) }
            if op == .negate, case .decimal(let r) = e.kind, let n = try? r.negated() {
                return Expr(kind: .decimal(n), start: start, end: e.end)
            }
            return Expr(kind: .unary(op, e), start: start, end: e.end)
        }
        return try member()
    }

    private mutating func member() throws(ExprDiagnostic) -> Expr {
        var e = try primary()
        while isOp(".") {
            p += 1
            guard case .ident(let name) = tok.kind else {
                throw ExprDiagnostic(offset: tok.start, message: "expected a field name after '.', found \(ExprParser.describe(tok.kind))")
            }
            let namePos = tok.start
            var end = tok.end
            p += 1
            if isOp("(") {
                p += 1
                let (args, close) = try arguments(closing: ")")
                end = close
                e = Expr(kind: .method(e, name, args, namePos: namePos), start: e.start, end: end)
            } else {
                e = Expr(kind: .select(e, name, namePos: namePos), start: e.start, end: end)
            }
        }
        return e
    }

    /// Parses `a, b, c` up to the closing bracket (already past the opening one); returns the
    /// arguments and the end offset of the closing bracket.
    private mutating func arguments(closing: String) throws(ExprDiagnostic) -> ([Expr], Int) {
        var args: [Expr] = []
        if isOp(closing) {
            let end = tok.end
            p += 1
            return (args, end)
        }
        while true {
            args.append(try expr())
            if isOp(",") {
                p += 1
                if isOp(closing) { break }
                continue
            }
            break
        }
        guard isOp(closing) else {
            throw ExprDiagnostic(offset: tok.start, message: "expected ',' or '\(closing)', found \(ExprParser.describe(tok.kind))")
        }
        let end = tok.end
        p += 1
        return (args, end)
    }

    private mutating func primary() throws(ExprDiagnostic) -> Expr {
        let t = tok
        switch t.kind {
        case .int(let v):
            p += 1
            return Expr(kind: .int(v), start: t.start, end: t.end)
        case .decimal(let r):
            p += 1
            return Expr(kind: .decimal(r), start: t.start, end: t.end)
        case .string(let s):
            p += 1
            return Expr(kind: .string(s), start: t.start, end: t.end)
        case .ident(let name):
            p += 1
            switch name {
            case "true": return Expr(kind: .bool(true), start: t.start, end: t.end)
            case "false": return Expr(kind: .bool(false), start: t.start, end: t.end)
            case "in": throw ExprDiagnostic(offset: t.start, message: "unexpected 'in'")
            case "null", "nil", "None":
                throw ExprDiagnostic(offset: t.start, message: "there is no '\(name)': a missing fact is unknown; test it with has(path)")
            default: break
            }
            if isOp("(") {
                p += 1
                let (args, end) = try arguments(closing: ")")
                return Expr(kind: .call(name, args), start: t.start, end: end)
            }
            return Expr(kind: .ident(name), start: t.start, end: t.end)
        case .op("("):
            p += 1
            try nest()
            defer { depth -= 1 }
            let e = try expr()
            let end = tok.end
            try expect(")", "')'")
            return Expr(kind: e.kind, start: t.start, end: end)
        case .op("["):
            p += 1
            let (items, end) = try arguments(closing: "]")
            return Expr(kind: .list(items), start: t.start, end: end)
        case .end:
            throw ExprDiagnostic(offset: t.start, message: "unexpected end of the expression")
        case .op(let o):
            throw ExprDiagnostic(offset: t.start, message: "unexpected '\(o)'")
        }
    }
}
