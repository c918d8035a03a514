/// The unified social credit code (统一社会信用代码, GB 32100-2015), DESIGN §5.2.
///
/// 18 characters from `alphabet`; the 18th is a check character over the first 17 with weights
/// 3^i mod 31 (1 3 9 27 19 26 16 17 20 29 25 13 8 24 10 30 28):
/// check = (31 − Σ(value × weight) mod 31) mod 31. Characters 3–8 are the registering division
/// code: 6 digits. Validation is strict: uppercase only, no spaces, no full-width characters.
public enum USCC {
    public static let alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    public static let length = 18
    public static let weights = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]

    private static let alphabetCharacters: [Character] = Array(alphabet)
    private static let values: [Character: Int] = {
        var m: [Character: Int] = [:]
        for (i, c) in alphabet.enumerated() { m[c] = i }
        return m
    }()

    /// The value (0...30) of one character, or `nil` if it is not in the alphabet.
    public static func value(of c: Character) -> Int? { values[c] }

    /// The check character for the first 17 characters, or `nil` if `body17` is not 17 alphabet characters.
    public static func checkCharacter(body17: String) -> Character? {
        let chars = Array(body17)
        guard chars.count == 17 else { return nil }
        var sum = 0
        for (i, c) in chars.enumerated() {
            guard let v = values[c] else { return nil }
            sum += v * weights[i]
        }
        return alphabetCharacters[(31 - sum % 31) % 31]
    }

    /// Byte → value (0...30), 255 for bytes outside the alphabet.
    private static let byteValues: [UInt8] = {
        var t = [UInt8](repeating: 255, count: 256)
        for (i, b) in alphabet.utf8.enumerated() { t[Int(b)] = UInt8(i) }
        return t
    }()

    /// Characters 3–8 (0-based offsets 2..<8): the registering division code, 6 digits.
    public static let divisionRange = 2..<8

    /// The common case without allocation: 18 alphabet bytes, digits at 3–8, with the right
    /// check character.
    static func isValidFast(_ code: String) -> Bool {
        var code = code
        return code.withUTF8 { b in
            guard b.count == 18 else { return false }
            var sum = 0
            for i in 0..<17 {
                let v = byteValues[Int(b[i])]
                if v == 255 { return false }
                // Digits are the first ten values of the alphabet.
                if divisionRange.contains(i), v > 9 { return false }
                sum += Int(v) * weights[i]
            }
            let check = byteValues[Int(b[17])]
            return check != 255 && Int(check) == (31 - sum % 31) % 31
        }
    }

    /// Throws `invalid_uscc` with a precise message naming `field`.
    public static func validate(_ code: String, field: String) throws(Rejection) {
        if isValidFast(code) { return }
        let chars = Array(code)
        guard chars.count == length else {
            throw Rejection(.invalidUSCC, field: field, "must be 18 characters, got \(chars.count)")
        }
        for (i, c) in chars.enumerated() where values[c] == nil {
            let hint: String
            if c.isLowercase, values[Character(c.uppercased())] != nil {
                hint = " (letters must be uppercase)"
            } else if ["I", "O", "S", "V", "Z"].contains(c) {
                hint = " (the letters I, O, S, V and Z are never used)"
            } else {
                hint = ""
            }
            throw Rejection(
                .invalidUSCC, field: field,
                "character '\(printable(c))' at position \(i + 1) is not allowed\(hint)")
        }
        let division = chars[divisionRange]
        if let i = division.firstIndex(where: { !("0"..."9").contains($0) }) {
            throw Rejection(
                .invalidUSCC, field: field,
                "characters 3–8 are the registering division code and must be digits, got '\(String(division))' (character '\(chars[i])' at position \(i + 1))"
            )
        }
        let expected = checkCharacter(body17: String(chars[0..<17]))!
        guard chars[17] == expected else {
            throw Rejection(.invalidUSCC, field: field, "check digit mismatch: expected \(expected), got \(chars[17])")
        }
    }

    public static func isValid(_ code: String) -> Bool {
        (try? validate(code, field: "uscc")) != nil
    }

    /// Characters 3–8: the registering administrative division code (e.g. "411002").
    /// Returns the characters as they are; "" if the code is shorter than 8 characters.
    public static func division(of code: String) -> String {
        let chars = Array(code)
        guard chars.count >= 8 else { return "" }
        return String(chars[2..<8])
    }
}

/// The resident identity card number (公民身份号码, GB 11643-1999), DESIGN §5.2.
///
/// 17 digits then a check character: Σ(digit × weight) mod 11 with weights
/// 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2, mapped 0...10 to `1 0 X 9 8 7 6 5 4 3 2`.
/// Characters 1–6 are the division of household registration, 7–14 the birth date (YYYYMMDD,
/// which must be a real date in 1900...2100), 15–17 a sequence number.
/// Strict: the check character X must be uppercase; a lowercase 'x' is rejected.
public enum ResidentID {
    public static let length = 18
    public static let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    public static let checkCharacters: [Character] = Array("10X98765432")

    /// The check character for 17 digits, or `nil` if `body17` is not 17 ASCII digits.
    public static func checkCharacter(body17: String) -> Character? {
        let chars = Array(body17)
        guard chars.count == 17 else { return nil }
        var sum = 0
        for (i, c) in chars.enumerated() {
            guard let d = asciiDigit(c) else { return nil }
            sum += d * weights[i]
        }
        return checkCharacters[sum % 11]
    }

    private static let checkBytes: [UInt8] = Array("10X98765432".utf8)

    /// The common case without allocation: 17 digits, a real birth date, the right check.
    static func isValidFast(_ number: String) -> Bool {
        var number = number
        return number.withUTF8 { b in
            guard b.count == 18 else { return false }
            var sum = 0
            var birth = 0
            for i in 0..<17 {
                let d = Int(b[i]) - 48
                if d < 0 || d > 9 { return false }
                sum += d * weights[i]
                if i >= 6 && i < 14 { birth = birth * 10 + d }
            }
            guard CivilDate(year: birth / 10_000, month: birth / 100 % 100, day: birth % 100) != nil,
                (1900...2100).contains(birth / 10_000)
            else { return false }
            let expected = checkBytes[sum % 11]
            return b[17] == expected
        }
    }

    /// Throws `invalid_id_number` with a precise message naming `field`.
    public static func validate(_ number: String, field: String) throws(Rejection) {
        if isValidFast(number) { return }
        let chars = Array(number)
        guard chars.count == length else {
            throw Rejection(.invalidIDNumber, field: field, "must be 18 characters, got \(chars.count)")
        }
        for i in 0..<17 where asciiDigit(chars[i]) == nil {
            throw Rejection(
                .invalidIDNumber, field: field,
                "character '\(printable(chars[i]))' at position \(i + 1) is not allowed: characters 1–17 must be digits")
        }
        let last = chars[17]
        if last == "x" {
            throw Rejection(
                .invalidIDNumber, field: field, "check character must be an uppercase 'X', got lowercase 'x'")
        }
        guard asciiDigit(last) != nil || last == "X" else {
            throw Rejection(
                .invalidIDNumber, field: field,
                "character '\(printable(last))' at position 18 is not allowed: the check character is a digit or an uppercase 'X'")
        }
        // The message does not repeat the birth date: rejections are shown to operators and kept
        // in the quarantine list, which must not spell out personal data.
        guard birthDate(of: number) != nil else {
            throw Rejection(
                .invalidIDNumber, field: field,
                "characters 7–14 (the birth date) are not a real date between 1900 and 2100")
        }
        let expected = checkCharacter(body17: String(chars[0..<17]))!
        guard last == expected else {
            throw Rejection(.invalidIDNumber, field: field, "check digit mismatch: expected \(expected), got \(last)")
        }
    }

    public static func isValid(_ number: String) -> Bool {
        (try? validate(number, field: "id_number")) != nil
    }

    /// The birth date in characters 7–14, if it is a real date in 1900...2100.
    public static func birthDate(of number: String) -> CivilDate? {
        let chars = Array(number)
        guard chars.count >= 14 else { return nil }
        var digits: [Int] = []
        for c in chars[6..<14] {
            guard let d = asciiDigit(c) else { return nil }
            digits.append(d)
        }
        let y = digits[0] * 1000 + digits[1] * 100 + digits[2] * 10 + digits[3]
        let m = digits[4] * 10 + digits[5]
        let d = digits[6] * 10 + digits[7]
        guard CivilDate.yearRange.contains(y) else { return nil }
        return CivilDate(year: y, month: m, day: d)
    }

    /// Characters 1–6: the division code of household registration.
    public static func division(of number: String) -> String {
        let chars = Array(number)
        guard chars.count >= 6 else { return "" }
        return String(chars[0..<6])
    }
}

private func asciiDigit(_ c: Character) -> Int? {
    guard let a = c.asciiValue, a >= 0x30, a <= 0x39 else { return nil }
    return Int(a - 0x30)
}

/// A character as shown in a message: control characters as U+XXXX.
private func printable(_ c: Character) -> String {
    if c.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
        return c.unicodeScalars.map { "U+" + String($0.value, radix: 16, uppercase: true) }.joined(separator: " ")
    }
    return String(c)
}
