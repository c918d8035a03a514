import Models
import Testing

@testable import Policy

@Suite("Policy documents: validation and positions")
struct DocumentTests {
    @Test func parsesTheDesignSketch() throws {
        let p = try PolicyCompiler.compile(yaml: Fx.rentWaiver)
        let d = p.document
        #expect(d.id == "soe-rent-waiver")
        #expect(d.revision == 1)
        #expect(d.title == "承租国有房屋的服务业小微企业和个体工商户免除3个月租金")
        #expect(d.benefit == .rentWaiver)
        #expect(d.channel == "lessor")
        #expect(d.pool == nil)
        #expect(d.requiresApplication)
        #expect(d.applyFrom == CivilDate.parse("2022-04-01"))
        #expect(d.applyUntil == CivilDate.parse("2022-06-30"))
        #expect(d.periodFrom == CivilDate.parse("2022-01-01"))
        #expect(d.periodTo == CivilDate.parse("2022-06-30"))
        #expect(d.disclosureWorkingDays == 5)
        #expect(!d.autoApprove)
        #expect(d.exclusiveGroup == nil)
        #expect(d.per == .lease)
        #expect(d.prioritySource == "merchant.tags.priority_sector")
        #expect(d.eligibleSource.hasPrefix("merchant.status == \"active\"\n&& (merchant.kind"))
        #expect(d.eligibleSource.contains("# a sublease chain benefits its final tenant only"))
        #expect(d.amountSource?.hasPrefix("overlap_days(lease, period) >= 90\n  ? lease.monthly_rent_fen * 3") == true)
        #expect(p.sourceHash == SHA256.hex(Fx.rentWaiver))
        #expect(p.sourceHash.count == 64)
        #expect(d.json["window"]?["apply_until"] == "2022-06-30")
    }

    @Test func quotedAndUnquotedDatesAndParams() throws {
        let yaml = Fx.document(
            eligible: "merchant.registered_on < params.since && params.cap_fen > 0 && params.on && \"a\" in params.names",
            amount: "min(params.cap_fen, params.rate * 10)",
            extra: """
                window: {apply_from: "2022-04-01", apply_until: '2022-06-30'}
                notes: 运营方可调整 params 中的数额
                exclusive_group: flood-relief
                params:
                  cap_fen: 1_000_000
                  rate: 0.5
                  since: 2022-03-01
                  on: true
                  names: [a, b]

                """)
        let p = try PolicyCompiler.compile(yaml: yaml)
        #expect(p.document.applyFrom == CivilDate.parse("2022-04-01"))
        #expect(p.document.applyUntil == CivilDate.parse("2022-06-30"))
        #expect(p.document.params["cap_fen"] == .int(1_000_000))
        #expect(p.document.params["rate"] == .number("0.5"))
        #expect(p.document.params["since"] == "2022-03-01")
        #expect(p.document.params["names"] == ["a", "b"])
        #expect(p.document.exclusiveGroup == "flood-relief")
        #expect(p.document.notes == "运营方可调整 params 中的数额")
        #expect(p.evaluate(PolicyInput(merchant: Fx.merchant()))[0].outcome == .eligible(amountFen: 5))
    }

    @Test func typoInAFieldPointsAtItsLineAndColumn() {
        let yaml = """
            id: typo
            revision: 1
            title: t
            authority: a
            benefit: deferral
            channel: agency:si
            pool: null
            requires_application: false
            period: {from: 2022-01-01, to: 2022-06-30}
            disclosure: {working_days: 5, auto_approve: true}
            per: merchant
            eligible: >
                merchant.status == "active"
                && merchant.tags.sise in ["small", "micro"]

            """
        let errs = Fx.compileErrors(yaml)
        #expect(errs.count == 1)
        #expect(errs.first?.line == 14)
        #expect(errs.first?.column == 22)
        #expect(errs.first?.message.contains("unknown field 'sise'") == true)
        #expect(errs.first?.description.hasPrefix("line 14, column 22: eligible: unknown field 'sise'") == true)
    }

    @Test func positionsInEveryScalarStyle() {
        let base = Fx.document(eligible: "true", amount: nil)
        // Plain scalar on the key's line: "priority: " is 10 characters.
        var errs = Fx.compileErrors(base + "priority: merchant.tags.priorty_sector\n")
        #expect(errs.map { [$0.line, $0.column] } == [[13, 25]])
        // Double-quoted.
        errs = Fx.compileErrors(base + "amount_fen: \"lease.monthly_rent_fen * 3\"\n")
        #expect(errs.map { [$0.line, $0.column] } == [[13, 14]])
        #expect(errs.first?.message.contains("only defined in a policy with per: lease") == true)
        // Literal block, second line, after a comment line.
        errs = Fx.compileErrors(base + "amount_fen: |\n  # the amount\n  10 +\n    \"x\"\n")
        #expect(errs.map { [$0.line, $0.column] } == [[15, 6]])
        // Folded block: a comment does not swallow the following lines.
        errs = Fx.compileErrors(base + "priority: >\n  true # paid first\n  && 1\n")
        #expect(errs.map { [$0.line, $0.column] } == [[15, 6]])
        // Plain multi-line scalar.
        errs = Fx.compileErrors(base + "priority: merchant.status == \"active\"\n  && merchant.nmae == \"x\"\n")
        #expect(errs.map { [$0.line, $0.column] } == [[14, 15]])
        // A syntax error.
        errs = Fx.compileErrors(base + "priority: merchant.status = \"active\"\n")
        #expect(errs.map { [$0.line, $0.column] } == [[13, 27]])
    }

    @Test func unknownKeysAreErrorsWithHints() {
        let errs = Fx.compileErrors(Fx.document() + "eligble: true\nfoo: 1\n")
        #expect(errs.count == 2)
        #expect(errs[0].line == 14 && errs[0].column == 1)
        #expect(errs[0].message == "unknown key 'eligble' (did you mean 'eligible'?)")
        #expect(errs[1].line == 15 && errs[1].message == "unknown key 'foo'")
        let nested = Fx.compileErrors(Fx.document() + "window: {apply_from: 2022-04-01, apply_untl: 2022-06-30}\n")
        #expect(
            nested.map(\.message) == [
                "window is missing 'apply_until'", "unknown key 'apply_untl' in window (did you mean 'apply_until'?)",
            ])
        #expect(nested.map(\.column) == [1, 34])
    }

    @Test func missingRequiredKeys() {
        let yaml = "id: x\nrevision: 1\ntitle: t\nauthority: a\nbenefit: deferral\nchannel: agency:si\n"
        let errs = Fx.compileErrors(yaml)
        let messages = errs.map(\.message)
        for key in ["requires_application", "period", "disclosure", "eligible", "per"] {
            #expect(messages.contains("missing required key '\(key)'"), "\(messages)")
        }
        #expect(errs.allSatisfy { $0.line == 1 && $0.column == 1 })
    }

    @Test func cashNeedsAPoolAndAnAmount() {
        var errs = Fx.compileErrors(
            Fx.document(benefit: "cash").replacingOccurrences(of: "pool: test-pool", with: "pool: null"))
        #expect(errs.map(\.message) == ["a cash benefit needs a pool (the fund pool it is paid from)"])
        #expect(errs.first?.line == 7 && errs.first?.column == 7)
        errs = Fx.compileErrors(Fx.document(amount: nil, benefit: "cash"))
        #expect(errs.map(\.message) == ["missing required key 'amount_fen' (a cash benefit needs an amount)"])
        errs = Fx.compileErrors(Fx.document(amount: nil, benefit: "rent_waiver"))
        #expect(errs.count == 1)
        // A deferral without an amount is an amount of 0.
        let p = try? PolicyCompiler.compile(yaml: Fx.document(amount: nil, benefit: "deferral"))
        #expect(p?.evaluate(PolicyInput(merchant: Fx.merchant())).first?.outcome == .eligible(amountFen: 0))
    }

    @Test func badDatesPointAtTheDate() {
        let yaml = Fx.document().replacingOccurrences(
            of: "period: {from: 2022-01-01, to: 2022-06-30}", with: "period: {from: 2022-02-30, to: 2022-13-01}")
        let errs = Fx.compileErrors(yaml)
        #expect(errs.map(\.message) == ["period.from: 2022-02-30 is not a real date", "period.to: 2022-13-01 is not a real date"])
        #expect(errs.map(\.line) == [9, 9])
        #expect(errs.map(\.column) == [16, 32])
        let reversed = Fx.compileErrors(
            Fx.document().replacingOccurrences(
                of: "period: {from: 2022-01-01, to: 2022-06-30}", with: "period: {from: 2022-06-30, to: 2022-01-01}"))
        #expect(reversed.map(\.message) == ["period.to (2022-01-01) is before period.from (2022-06-30)"])
        let words = Fx.compileErrors(Fx.document() + "window: {apply_from: soon, apply_until: 2022-06-30}\n")
        #expect(words.first?.message == "window.apply_from: must be a date written YYYY-MM-DD, got \"soon\"")
    }

    @Test func allErrorsAreReportedTogetherInOrder() {
        let yaml = """
            id: Bad_ID
            revision: 0
            title: t
            authority: a
            benefit: cash
            channel: bank
            pool: null
            requires_application: true
            period: {from: 2022-01-01, to: 2021-12-31}
            disclosure: {working_days: -1, auto_approve: maybe}
            per: shop
            eligible: merchant.tags.sise == "small" && frob(1)
            amount_fen: "\\"a\\" + 1"
            colour: red

            """
        let errs = Fx.compileErrors(yaml)
        let lines = errs.map(\.line)
        #expect(lines == lines.sorted())
        let messages = errs.map(\.message).joined(separator: "\n")
        for part in [
            "id must be lowercase", "revision must be at least 1", "benefit", "channel must be treasury",
            "a cash benefit needs a pool", "requires_application is true, so the policy needs a window",
            "period.to (2021-12-31) is before", "disclosure.working_days must be at least 0",
            "disclosure.auto_approve must be true or false", "per must be merchant, lease or damage",
            "unknown field 'sise'", "unknown function 'frob'", "'+' needs two numbers", "unknown key 'colour'",
        ] {
            #expect(messages.contains(part), "missing: \(part)\n\(messages)")
        }
        #expect(errs.count == 13, "\(errs)")
        let desc = PolicyErrors(errs).description
        #expect(desc.hasPrefix("line 1, column 5: id must be lowercase"))
        #expect(desc.contains("\nline 13, column 20: amount_fen: '+' needs two numbers"))
    }

    @Test func typeOfTheWholeExpressionIsChecked() {
        var errs = Fx.compileErrors(Fx.document(eligible: "merchant.finance.employees"))
        #expect(errs.map(\.message) == ["eligible: eligible must be a bool (true or false), got int"])
        errs = Fx.compileErrors(Fx.document(amount: "merchant.name"))
        #expect(errs.map(\.message) == ["amount_fen: amount_fen must be a number (an amount in fen), got string"])
        errs = Fx.compileErrors(Fx.document(extra: "priority: 1\n"))
        #expect(errs.map(\.message) == ["priority: priority must be a bool (true or false), got int"])
        errs = Fx.compileErrors(Fx.document(eligible: "window.apply_from < period.to"))
        #expect(errs.first?.message.contains("this policy has no window") == true)
    }

    @Test func yamlProblemsHavePositions() {
        var errs = Fx.compileErrors("id: x\nperiod: {from: 2022-01-01\nper: lease\n")
        #expect(errs.count == 1)
        #expect(errs.first?.line == 3)
        #expect(errs.first?.message.hasPrefix("YAML:") == true)
        errs = Fx.compileErrors(Fx.document() + "revision: 2\n")
        #expect(errs.map(\.message) == ["duplicate key 'revision'"])
        #expect(errs.first?.line == 14)
        errs = Fx.compileErrors("- a\n- b\n")
        #expect(errs.map(\.message) == ["a policy must be a YAML mapping"])
        errs = Fx.compileErrors("")
        #expect(errs.map(\.message) == ["the policy document is empty"])
    }

    @Test func paramProblems() {
        let errs = Fx.compileErrors(
            Fx.document(
                eligible: "params.ok",
                extra: "params:\n  ok: true\n  Bad: 1\n  nothing: null\n  mixed: [1, a]\n  deep: {a: 1}\n"))
        #expect(
            errs.map(\.message) == [
                "a param name must be lowercase letters, digits and '_', got \"Bad\"", "params.nothing cannot be null",
                "params.mixed: a list's elements must all have one type",
                "params.deep must be an int, a decimal, a string, a bool, a date or a list of them",
            ])
        #expect(errs.map(\.line) == [16, 17, 18, 19])
    }

    @Test func channelForms() {
        let deferral = Fx.document()
        #expect(
            Fx.compileErrors(deferral.replacingOccurrences(of: "channel: agency:test-bureau", with: "channel: agency:si-bureau")).isEmpty)
        #expect(Fx.compileErrors(deferral.replacingOccurrences(of: "channel: agency:test-bureau", with: "channel: lessor")).isEmpty)
        #expect(Fx.compileErrors(deferral.replacingOccurrences(of: "channel: agency:test-bureau", with: "channel: \"agency:\"")).count == 1)
    }

    /// An agency's name becomes part of its instruction files' names: a path separator, a dot,
    /// a space or a non-ASCII letter would make a file that cannot be written (and would stop
    /// every later file), so the policy is refused at check and publish time.
    @Test func agencyNamesAreFileSafe() {
        let deferral = Fx.document()
        for bad in [
            "agency:水务/电力", "agency:a/b", "agency:..", "agency:Water", "agency:water bureau", "agency:\(String(repeating: "a", count: 41))",
        ] {
            let errs = Fx.compileErrors(deferral.replacingOccurrences(of: "channel: agency:test-bureau", with: "channel: \"\(bad)\""))
            #expect(errs.count == 1, "\(bad)")
            #expect(errs.first?.message.hasPrefix("channel agency:<name> takes a name of 1 to 40 lowercase letters") == true, "\(bad)")
        }
        for good in ["agency:social-insurance", "agency:si_2", "agency:\(String(repeating: "a", count: 40))"] {
            #expect(
                Fx.compileErrors(deferral.replacingOccurrences(of: "channel: agency:test-bureau", with: "channel: \(good)")).isEmpty,
                "\(good)")
        }
        #expect(Channel.isAgencyName("utilities"))
        #expect(!Channel.isAgencyName(""))
        #expect(
            Channel.isValid("agency:utilities") && Channel.isValid("treasury") && !Channel.isValid("agency:a/b") && !Channel.isValid("bank")
        )
    }

    /// Cash leaves only through the treasury, and the treasury moves only cash.
    @Test func benefitAndChannelAgree() {
        #expect(Fx.compileErrors(Fx.document(benefit: "cash")).isEmpty)
        let cashByLessor = Fx.compileErrors(
            Fx.document(benefit: "cash").replacingOccurrences(of: "channel: treasury", with: "channel: agency:utilities"))
        #expect(cashByLessor.map(\.message) == ["a cash benefit is paid through the treasury channel, got \"agency:utilities\""])
        #expect(cashByLessor.first?.line == 6)
        let deferralByTreasury = Fx.compileErrors(
            Fx.document().replacingOccurrences(of: "channel: agency:test-bureau", with: "channel: treasury"))
        #expect(
            deferralByTreasury.map(\.message) == [
                "the treasury channel pays cash only; a deferral is carried out by the lessor or an agency:<name>"
            ])
    }
}
