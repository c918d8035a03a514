/// Masking of personal data for logs, the public board and notifications (DESIGN §3.5).
///
/// Every function counts `Character`s (grapheme clusters), so Chinese names and full-width
/// characters are masked whole, never cut in the middle of a UTF-8 sequence. Inputs that are too
/// short to keep the usual prefix and suffix are masked more, never less.
public enum Mask {
    /// Resident ID numbers: keep the first 4 and last 4 characters.
    /// `"410102198001011234"` → `"4101**********1234"`. 8 characters or fewer: all `*`.
    public static func idNumber(_ s: String) -> String {
        let c = Array(s)
        guard c.count > 8 else { return stars(c.count) }
        return String(c[0..<4]) + stars(c.count - 8) + String(c[(c.count - 4)...])
    }

    /// Natural persons' names: keep the first and (from 3 characters on) the last character.
    /// `"张三丰"` → `"张*丰"`, `"欧阳娜娜"` → `"欧**娜"`, `"张三"` → `"张*"`, `"张"` → `"张"`.
    /// Surrounding whitespace is dropped first.
    public static func name(_ s: String) -> String {
        let c = Array(trimmed(s))
        switch c.count {
        case 0, 1: return String(c)
        case 2: return String(c[0]) + "*"
        default: return String(c[0]) + stars(c.count - 2) + String(c[c.count - 1])
        }
    }

    /// Bank account numbers (spaces ignored): the first 4 and last 4 digits in the fixed form
    /// `"6222 **** **** 1234"`, whatever the length. 8 digits or fewer: `"**** **** " + last 2`.
    public static func bankAccount(_ s: String) -> String {
        let c = Array(s.filter { $0 != " " })
        guard c.count > 8 else {
            return "**** **** " + String(c.suffix(min(2, c.count / 4)))
        }
        return String(c[0..<4]) + " **** **** " + String(c[(c.count - 4)...])
    }

    /// Phone numbers: keep the first 3 and last 4 characters.
    /// `"13812345678"` → `"138****5678"`. 7 characters or fewer: all but the last 2 masked.
    public static func phone(_ s: String) -> String {
        let c = Array(trimmed(s))
        guard c.count > 7 else {
            let keep = min(2, c.count / 3)
            return stars(c.count - keep) + String(c.suffix(keep))
        }
        return String(c[0..<3]) + stars(c.count - 7) + String(c[(c.count - 4)...])
    }

    /// Unified social credit codes on the public board: keep the first 6 characters (registration
    /// authority, organisation type and the province/city part of the division code) and the last
    /// 2, with the 10 in between as `*`: `"91411002MA9XYZ1234"` → `"914110**********34"`.
    /// A code of 8 characters or fewer is masked entirely.
    public static func uscc(_ s: String) -> String {
        let c = Array(s)
        guard c.count > 8 else { return stars(c.count) }
        return String(c[0..<6]) + stars(c.count - 8) + String(c[(c.count - 2)...])
    }

    /// A copy of `value` with the personal data an operator's terminal should not show masked,
    /// wherever it sits: string members named `account_no` (bank account), `id_number` (resident
    /// ID) and `phone`. Values already masked stay as they are; other members are untouched.
    public static func personalData(in value: JSON) -> JSON {
        switch value {
        case .object(let o):
            var out = JSONObject()
            for (key, member) in o.members {
                if case .string(let text) = member, let mask = maskFor(key) {
                    out[key] = .string(mask(text))
                } else {
                    out[key] = personalData(in: member)
                }
            }
            return .object(out)
        case .array(let a):
            return .array(a.map(personalData(in:)))
        default:
            return value
        }
    }

    private static func maskFor(_ key: String) -> ((String) -> String)? {
        switch key {
        case "account_no": bankAccount
        case "id_number": idNumber
        case "phone": phone
        // Who to call back about an objection: anything may be in it (a name, a number, an
        // address), so all but its last four characters.
        case "contact": keepLastFour
        // Free text people write (an objection's reason, an operator's note): the numbers in it
        // that look like a resident ID, a bank account or a phone number.
        case "reason", "note", "detail", "remarks", "description": numbersInText
        default: nil
        }
    }

    /// All but the last four characters as `*`.
    public static func keepLastFour(_ s: String) -> String {
        let c = Array(s)
        guard c.count > 4 else { return stars(c.count) }
        return stars(c.count - 4) + String(c.suffix(4))
    }

    /// Free text with every run of 7 or more digits that stands on its own (a trailing `X` counts
    /// in an ID number's place) masked: 18 characters as a resident ID, 16–19 digits as a bank
    /// account, others as a phone number. Shorter runs (amounts, years, dates written with
    /// separators) stay, and so do digits inside a word — an identifier such as `ent-3f2a1234567bc…`
    /// or `-1234567` (next to a letter, `-` or `_`).
    public static func numbersInText(_ s: String) -> String {
        var out = ""
        var run: [Character] = []
        func joins(_ c: Character?) -> Bool {
            guard let c else { return false }
            return (c.isASCII && (c.isLetter || c.isNumber)) || c == "-" || c == "_"
        }
        func flush(next: Character?) {
            defer { run = [] }
            let before = out.last
            guard run.count >= 7, !joins(before), !joins(next) else {
                out.append(contentsOf: run)
                return
            }
            let text = String(run)
            switch run.count {
            case 18: out += idNumber(text)
            case 16...19: out += bankAccount(text).replacingOccurrences(of: " ", with: "")
            default: out += phone(text)
            }
        }
        let chars = Array(s)
        var i = 0
        while i < chars.count {
            let ch = chars[i]
            if ch.isASCII && ch.isNumber {
                run.append(ch)
            } else if (ch == "X" || ch == "x") && run.count == 17 {
                run.append(ch)
                flush(next: i + 1 < chars.count ? chars[i + 1] : nil)
            } else {
                flush(next: ch)
                out.append(ch)
            }
            i += 1
        }
        flush(next: nil)
        return out
    }

    private static func stars(_ n: Int) -> String { String(repeating: "*", count: max(0, n)) }

    private static func trimmed(_ s: String) -> Substring {
        var sub = Substring(s)
        while let f = sub.first, f.isWhitespace { sub.removeFirst() }
        while let l = sub.last, l.isWhitespace { sub.removeLast() }
        return sub
    }
}
