import Testing

@testable import Models

/// Builds valid identifiers for tests from a body, with the check character computed by our own
/// functions (whose correctness `realWorldCodes` pins against codes issued in real life).
enum IdentifierSamples {
    static func uscc(_ body17: String) -> String { body17 + String(USCC.checkCharacter(body17: body17)!) }
    static func idNumber(_ body17: String) -> String { body17 + String(ResidentID.checkCharacter(body17: body17)!) }

    /// Replaces the character at 0-based `index`.
    static func replacing(_ s: String, at index: Int, with c: Character) -> String {
        var chars = Array(s)
        chars[index] = c
        return String(chars)
    }

    /// A wrong check character for `code`, in `alphabet`.
    static func wrongLast(_ code: String, alphabet: String) -> String {
        let chars = Array(code)
        let last = chars.last!
        let other = alphabet.first { $0 != last }!
        return String(chars.dropLast()) + String(other)
    }
}

@Suite("USCC (GB 32100-2015)")
struct USCCTests {
    @Test(arguments: [
        "91350100M000100Y43", "911000001000013428", "9144030071526726XG", "91330100799655058B",
        "91110000802100433B",
    ])
    func realWorldCodes(_ code: String) throws {
        #expect(USCC.checkCharacter(body17: String(code.prefix(17))) == code.last)
        try USCC.validate(code, field: "data.uscc")
        #expect(USCC.isValid(code))
    }

    @Test func generatedCodeIsValid() throws {
        let code = IdentifierSamples.uscc("91411002MA9XYW123")
        #expect(code.count == 18)
        try USCC.validate(code, field: "data.uscc")
        #expect(USCC.division(of: code) == "411002")
    }

    @Test func weightsArePowersOfThreeMod31() {
        var w = 1
        for k in 0..<17 {
            #expect(USCC.weights[k] == w)
            w = w * 3 % 31
        }
        #expect(USCC.alphabet.count == 31)
    }

    @Test func checkDigitMismatchIsPrecise() {
        // 91350100M000100Y43: the check is 3.
        #expect(throws: Rejection(.invalidUSCC, field: "data.uscc", "check digit mismatch: expected 3, got 7")) {
            try USCC.validate("91350100M000100Y47", field: "data.uscc")
        }
    }

    @Test func everySingleCharacterChangeIsCaught() {
        let code = "91350100M000100Y43"
        let alphabet = Array(USCC.alphabet)
        var undetected: [String] = []
        for i in 0..<18 {
            for c in alphabet where c != Array(code)[i] {
                let changed = IdentifierSamples.replacing(code, at: i, with: c)
                if USCC.isValid(changed) { undetected.append(changed) }
            }
        }
        #expect(undetected.isEmpty)
    }

    @Test func wrongLength() {
        #expect(throws: Rejection(.invalidUSCC, field: "f", "must be 18 characters, got 17")) {
            try USCC.validate("91350100M000100Y4", field: "f")
        }
        #expect(throws: Rejection(.invalidUSCC, field: "f", "must be 18 characters, got 19")) {
            try USCC.validate("91350100M000100Y433", field: "f")
        }
        #expect(throws: Rejection(.invalidUSCC, field: "f", "must be 18 characters, got 0")) {
            try USCC.validate("", field: "f")
        }
    }

    @Test(arguments: [("I", 5), ("O", 9), ("S", 1), ("V", 18), ("Z", 12)])
    func forbiddenLetters(_ letter: String, _ position: Int) {
        let code = IdentifierSamples.replacing("91350100M000100Y43", at: position - 1, with: Character(letter))
        #expect(
            throws: Rejection(
                .invalidUSCC, field: "data.uscc",
                "character '\(letter)' at position \(position) is not allowed (the letters I, O, S, V and Z are never used)")
        ) { try USCC.validate(code, field: "data.uscc") }
    }

    @Test func lowercaseIsRejected() {
        #expect(
            throws: Rejection(
                .invalidUSCC, field: "u", "character 'm' at position 9 is not allowed (letters must be uppercase)")
        ) { try USCC.validate("91350100m000100Y43", field: "u") }
    }

    @Test func otherCharacters() {
        #expect(throws: Rejection(.invalidUSCC, field: "u", "character ' ' at position 1 is not allowed")) {
            try USCC.validate(" 1350100M000100Y43", field: "u")
        }
        // Full-width digit: counted as one character.
        #expect(throws: Rejection(.invalidUSCC, field: "u", "character '９' at position 1 is not allowed")) {
            try USCC.validate("９1350100M000100Y43", field: "u")
        }
        #expect(throws: Rejection(.invalidUSCC, field: "u", "character 'U+A' at position 2 is not allowed")) {
            try USCC.validate("9\n350100M000100Y43", field: "u")
        }
    }

    /// DESIGN §5.2: characters 3–8 are the registering division code — digits. A letter there
    /// with a check character computed over it passes the check digit; the division rule catches it.
    @Test(arguments: 3...8)
    func divisionCodeMustBeDigits(_ position: Int) {
        for letter: Character in ["A", "M", "Y", "0"] {
            let body = IdentifierSamples.replacing("91350100M000100Y4", at: position - 1, with: letter)
            let code = IdentifierSamples.uscc(body)
            if letter == "0" {
                #expect(USCC.isValid(code), "a digit is fine: \(code)")
                continue
            }
            #expect(!USCC.isValidFast(code), "\(code)")
            #expect(!USCC.isValid(code), "\(code)")
            let rejection = #expect(throws: Rejection.self) { try USCC.validate(code, field: "data.uscc") }
            #expect(rejection?.code == .invalidUSCC)
            #expect(rejection?.field == "data.uscc")
        }
        #expect(
            throws: Rejection(
                .invalidUSCC, field: "u",
                "characters 3–8 are the registering division code and must be digits, got '3A0100' (character 'A' at position 4)")
        ) { try USCC.validate(IdentifierSamples.uscc("913A0100M000100Y4"), field: "u") }
    }

    @Test func checkCharacterNeeds17AlphabetCharacters() {
        #expect(USCC.checkCharacter(body17: "9135010") == nil)
        #expect(USCC.checkCharacter(body17: "91350100M000100YI") == nil)
        #expect(USCC.checkCharacter(body17: "91350100M000100Y4") == "3")
    }
}

@Suite("Resident ID number (GB 11643-1999)")
struct ResidentIDTests {
    @Test func standardExample() throws {
        try ResidentID.validate("11010519491231002X", field: "data.legal_rep.id_number")
        #expect(ResidentID.checkCharacter(body17: "11010519491231002") == "X")
        #expect(ResidentID.birthDate(of: "11010519491231002X")?.description == "1949-12-31")
        #expect(ResidentID.division(of: "11010519491231002X") == "110105")
    }

    @Test func checkDigitMismatch() {
        // The masking example's number has the wrong check digit (the right one is X).
        #expect(
            throws: Rejection(.invalidIDNumber, field: "data.legal_rep.id_number", "check digit mismatch: expected X, got 4")
        ) { try ResidentID.validate("410102198001011234", field: "data.legal_rep.id_number") }
        let valid = IdentifierSamples.idNumber("41010219800101123")
        #expect(valid == "41010219800101123X")
        #expect(ResidentID.isValid(valid))
    }

    @Test func everySingleDigitChangeIsCaughtOrRejected() {
        let number = IdentifierSamples.idNumber("41102319850615003")
        var undetected: [String] = []
        for i in 0..<17 {
            for c in "0123456789" where c != Array(number)[i] {
                let changed = IdentifierSamples.replacing(number, at: i, with: c)
                if ResidentID.isValid(changed) { undetected.append(changed) }
            }
        }
        #expect(undetected.isEmpty)
    }

    @Test func lowercaseXIsRejected() {
        #expect(
            throws: Rejection(
                .invalidIDNumber, field: "id", "check character must be an uppercase 'X', got lowercase 'x'")
        ) { try ResidentID.validate("11010519491231002x", field: "id") }
    }

    @Test func lengthAndCharacters() {
        #expect(throws: Rejection(.invalidIDNumber, field: "id", "must be 18 characters, got 15")) {
            try ResidentID.validate("110105491231002", field: "id")
        }
        #expect(
            throws: Rejection(
                .invalidIDNumber, field: "id",
                "character 'A' at position 5 is not allowed: characters 1–17 must be digits")
        ) { try ResidentID.validate("1101A519491231002X", field: "id") }
        #expect(
            throws: Rejection(
                .invalidIDNumber, field: "id",
                "character 'X' at position 17 is not allowed: characters 1–17 must be digits")
        ) { try ResidentID.validate("1101051949123100XX", field: "id") }
        #expect(
            throws: Rejection(
                .invalidIDNumber, field: "id",
                "character 'Y' at position 18 is not allowed: the check character is a digit or an uppercase 'X'")
        ) { try ResidentID.validate("11010519491231002Y", field: "id") }
    }

    @Test(arguments: ["19800230", "19810229", "19801301", "19800100", "18991231", "21010101"])
    func impossibleBirthDates(_ birth: String) {
        // A correct check digit, so the birth date is what is wrong.
        let number = IdentifierSamples.idNumber("410102" + birth + "123")
        #expect(
            throws: Rejection(
                .invalidIDNumber, field: "id",
                "characters 7–14 (the birth date) are not a real date between 1900 and 2100")
        ) { try ResidentID.validate(number, field: "id") }
        // The message an operator sees does not spell out the birth date.
        do {
            try ResidentID.validate(number, field: "id")
        } catch {
            #expect(!error.message.contains(birth))
        }
    }

    @Test func leapDayBirth() throws {
        try ResidentID.validate(IdentifierSamples.idNumber("41010220000229123"), field: "id")
    }

    @Test func checkCharacterNeeds17Digits() {
        #expect(ResidentID.checkCharacter(body17: "1101051949123100") == nil)
        #expect(ResidentID.checkCharacter(body17: "1101051949123100A") == nil)
    }
}
