import Testing

@testable import Models

@Suite("Masking personal data")
struct MaskingTests {
    @Test func idNumber() {
        #expect(Mask.idNumber("410102198001011234") == "4101**********1234")
        #expect(Mask.idNumber("11010519491231002X") == "1101**********002X")
        #expect(Mask.idNumber("123456789") == "1234*6789")
        #expect(Mask.idNumber("12345678") == "********")
        #expect(Mask.idNumber("") == "")
    }

    @Test func names() {
        #expect(Mask.name("张三丰") == "张*丰")
        #expect(Mask.name("张三") == "张*")
        #expect(Mask.name("张") == "张")
        #expect(Mask.name("欧阳娜娜") == "欧**娜")
        #expect(Mask.name(" 李四 ") == "李*")
        #expect(Mask.name("") == "")
        #expect(Mask.name("Li Lei") == "L****i")
    }

    @Test func namesAreMaskedByCharacterNotByte() {
        // A name with a character outside the BMP (𠀋, 4 UTF-8 bytes) and a combining sequence.
        #expect(Mask.name("𠀋一二") == "𠀋*二")
        #expect(Mask.name("王e\u{301}") == "王*")
        #expect(Mask.name("王e\u{301}明") == "王*明")
    }

    @Test func bankAccounts() {
        #expect(Mask.bankAccount("6222021234567891234") == "6222 **** **** 1234")
        #expect(Mask.bankAccount("6222 0212 3456 7891 234") == "6222 **** **** 1234")
        #expect(Mask.bankAccount("622202123") == "6222 **** **** 2123")
        #expect(Mask.bankAccount("12345678") == "**** **** 78")
        #expect(Mask.bankAccount("1234") == "**** **** 4")
        #expect(Mask.bankAccount("") == "**** **** ")
    }

    @Test func phones() {
        #expect(Mask.phone("13812345678") == "138****5678")
        #expect(Mask.phone("+86 13812345678") == "+86********5678")
        #expect(Mask.phone("0371-12345678") == "037******5678")
        #expect(Mask.phone("12345678") == "123*5678")
        #expect(Mask.phone("1234567") == "*****67")
        #expect(Mask.phone("12345") == "****5")
        #expect(Mask.phone("") == "")
    }

    @Test func usccForThePublicBoard() {
        #expect(Mask.uscc("91350100M000100Y43") == "913501**********43")
        #expect(Mask.uscc("91411002MA9XYW1234") == "914110**********34")
        #expect(Mask.uscc("12345678") == "********")
    }

    @Test func maskedOutputNeverContainsTheHiddenPart() {
        let id = "41102319850615003X"
        let masked = Mask.idNumber(id)
        #expect(!masked.contains("19850615"))
        #expect(masked.count == id.count)
    }

    @Test func personalDataInsideAnEventAtAnyDepth() throws {
        let event = try JSONParser.parse(
            Array(
                #"""
                {"type":"payee.verified","data":{"account_no":"6222021234567890123","bank":"工行","n":3,
                "legal_rep":{"name":"张三丰","id_number":"41102319850615003X"},
                "contacts":[{"phone":"13812345678"},{"phone":null}],"note":"account_no"}}
                """#.utf8))
        let masked = Mask.personalData(in: event)
        #expect(masked["data"]?["account_no"]?.stringValue == "6222 **** **** 0123")
        #expect(masked["data"]?["legal_rep"]?["id_number"]?.stringValue == "4110**********003X")
        #expect(masked["data"]?["contacts"]?.arrayValue?.first?["phone"]?.stringValue == "138****5678")
        #expect(masked["data"]?["contacts"]?.arrayValue?.last?["phone"]?.isNull == true)
        // Everything else as it was, in the same order.
        #expect(masked["data"]?["bank"]?.stringValue == "工行")
        #expect(masked["data"]?["n"]?.intValue == 3)
        #expect(masked["data"]?["note"]?.stringValue == "account_no")
        #expect(masked["data"]?.objectValue?.keys == event["data"]?.objectValue?.keys)
        // Masking what is already masked changes nothing.
        #expect(Mask.personalData(in: masked) == masked)
    }

    /// Free text is scanned for the numbers people put in it; a contact is masked but for its end.
    @Test func numbersInFreeTextAndContacts() throws {
        let reason = "举报人身份证410102199001011234，电话13812345678，账户6222021234567890123，金额3000元，2022-04-01"
        let masked = Mask.numbersInText(reason)
        #expect(!masked.contains("199001011234") && !masked.contains("12345678") && !masked.contains("1234567890"))
        #expect(masked.contains("4101**********1234"))
        #expect(masked.contains("138****5678"))
        #expect(masked.contains("金额3000元，2022-04-01"), "short numbers and dates stay: \(masked)")
        #expect(Mask.numbersInText("41010219900101123X号") == "4101**********123X号")
        // Digits inside an identifier or a signed amount are not a phone number.
        let id = "already entitled under flood-relief (ent-3f2a1234567bc0000000000000000000)"
        #expect(Mask.numbersInText(id) == id)
        #expect(Mask.numbersInText("the amount works out at -1234567 fen") == "the amount works out at -1234567 fen")
        #expect(Mask.numbersInText("电话:13812345678。") == "电话:138****5678。")
        #expect(Mask.keepLastFour("王小明 wang@example.com 0374-1234567") == String(repeating: "*", count: 29) + "4567")
        let event = try JSONParser.parse(
            Array(#"{"data":{"entitlement_id":"ent-1","reason":"电话13812345678","contact":"王小明 13900001111"}}"#.utf8))
        let shown = Mask.personalData(in: event)
        #expect(shown["data"]?["reason"]?.stringValue == "电话138****5678")
        #expect(shown["data"]?["contact"]?.stringValue == String(repeating: "*", count: 11) + "1111")
        #expect(shown["data"]?["entitlement_id"]?.stringValue == "ent-1")
    }
}
