import Models
import Testing

@testable import Policy

@Suite("Expression syntax: precedence, operators, literals, syntax errors")
struct ParserTests {
    @Test(arguments: [
        ("1 + 2 * 3", R.int(7)),
        ("(1 + 2) * 3", R.int(9)),
        ("10 - 4 - 3", R.int(3)),
        ("2 * 3 % 4", R.int(2)),
        ("-2 * 3", R.int(-6)),
        ("- (2 + 3)", R.int(-5)),
        ("--4", R.int(4)),
        ("7 % 3", R.int(1)),
        ("-7 % 3", R.int(-1)),
        ("1_000_000 + 1", R.int(1_000_001)),
        ("true || false && false", R.t),
        ("(true || false) && false", R.f),
        ("!false && false == false", R.t),
        ("!(false && false)", R.t),
        ("!!true", R.t),
        ("1 < 2 == true", R.t),
        ("1 + 1 == 2 && 2 * 2 == 4", R.t),
        ("3 > 2 && 2 >= 2 && 1 <= 1 && 0 < 1 && 1 != 2", R.t),
        ("false ? 1 : true ? 2 : 3", R.int(2)),
        ("true ? 1 + 1 : 0", R.int(2)),
        ("1 < 2 ? \"yes\" : \"no\"", R.value("yes")),
        ("\"a\" in [\"a\", \"b\"]", R.t),
        ("3 in [1, 2]", R.f),
        ("1 + 1 in [2, 3]", R.t),
        ("[1, 2] == [1, 2]", R.t),
        ("[1, 2] != [2, 1]", R.t),
        ("\"ab\" + \"cd\" == \"abcd\"", R.t),
        ("\"abc\" < \"abd\"", R.t),
        ("size(\"a\\\"b\\\\c\\n\\t\\u4e2d\")", R.int(8)),
        ("'single' == \"single\"", R.t),
        ("\"中文\" == \"\\u4e2d\\u6587\"", R.t),
        ("size([1, 2, 3,])", R.int(3)),
        ("[1, 2, 3].size()", R.int(3)),
        ("0.5 + 0.25 == 3 / 4", R.t),
        ("date(\"2022-04-01\") < date(\"2022-04-02\")", R.t),
        ("date(\"2022-04-01\") == date(\"2022-04-01\")", R.t),
        ("true # a comment\n && true  # another", R.t),
        ("\"a#b\" == \"a\" + \"#b\"", R.t),
        ("\"merchant\".startsWith(\"mer\") && \"merchant\".endsWith(\"ant\") && \"merchant\".contains(\"cha\")", R.t),
    ])
    func evaluates(_ expr: String, _ expected: R) throws {
        #expect(try Fx.eval(expr) == expected)
    }

    @Test func numbersFoldedAsLiterals() throws {
        #expect(try Fx.eval("-9223372036854775807") == .int(-9_223_372_036_854_775_807))
        #expect(try Fx.eval("9223372036854775807") == .int(Int64.max))
    }

    @Test(arguments: [
        // (expression, offset of the problem, part of the message)
        ("1 +", 3, "unexpected end"),
        ("a = 1", 2, "'=' is not an operator"),
        ("true & false", 5, "use '&&'"),
        ("true | false", 5, "use '||'"),
        ("\"abc", 0, "unterminated string"),
        ("(1 + 2", 6, "expected ')'"),
        ("1 2", 2, "after the expression"),
        ("", 0, "empty expression"),
        ("   # only a comment", 0, "empty expression"),
        ("f(1, 2", 6, "expected ',' or ')'"),
        ("[1, 2", 5, "expected ',' or ']'"),
        ("a.", 2, "expected a field name"),
        ("x ? 1", 5, "expected ':'"),
        ("\"\\q\"", 1, "unknown escape"),
        ("\"\\u12\"", 1, "four hexadecimal digits"),
        ("99999999999999999999", 0, "out of range"),
        ("1_", 1, "cannot end with '_'"),
        ("12abc", 2, "after a number"),
        ("null", 0, "has(path)"),
        ("1 @ 2", 2, "unexpected character '@'"),
        ("in", 0, "unexpected 'in'"),
    ])
    func syntaxErrorsHaveOffsets(_ expr: String, _ offset: Int, _ message: String) {
        let errs = Fx.errors(expr)
        #expect(errs.count == 1)
        #expect(errs.first?.offset == offset, "\(errs)")
        #expect(errs.first?.message.contains(message) == true, "\(errs)")
    }

    @Test func deepNestingIsRejectedNotCrashing() {
        let deep = String(repeating: "(", count: 500) + "1" + String(repeating: ")", count: 500)
        let errs = Fx.errors(deep)
        #expect(errs.first?.message.contains("nested deeper") == true)
        let unary = String(repeating: "!", count: 500) + "true"
        #expect(Fx.errors(unary).first?.message.contains("nested deeper") == true)
        let chain = Array(repeating: "1", count: 1_000).joined(separator: " + ")
        #expect(Fx.errors(chain).first?.message.contains("nested deeper") == true)
    }

    @Test func longButReasonableChainsWork() throws {
        let chain = Array(repeating: "1", count: 200).joined(separator: " + ")
        #expect(try Fx.eval(chain) == .int(200))
        let clauses = Array(repeating: "merchant.status == \"active\"", count: 100).joined(separator: "\n && ")
        #expect(try Fx.eval(clauses) == .t)
    }

    @Test func astKeepsSourceRanges() throws {
        let text = Array("merchant.tags.size in [\"small\"]".unicodeScalars)
        let e = try ExprParser.parse(text)
        guard case .binary(.in, let l, let r, let opPos) = e.kind else {
            Issue.record("not an in")
            return
        }
        #expect(opPos == 19)
        #expect(l.start == 0 && l.end == 18)
        #expect(r.start == 22 && r.end == 31)
        if case .select(_, "size", let namePos) = l.kind { #expect(namePos == 14) } else { Issue.record("not a select") }
    }

    @Test func clauseSourceDropsCommentsAndFoldsWhitespace() {
        let text = Array("a\n  && b   # why\n  && \"x # y\"".unicodeScalars)
        #expect(ExprCompiler.source(text, 0, text.count) == "a && b && \"x # y\"")
    }
}
