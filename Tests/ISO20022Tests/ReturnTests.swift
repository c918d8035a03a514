import Foundation
import Models
import Testing

@testable import ISO20022

@Suite("pain.002 and camt.054 returns")
struct ReturnTests {
    static let bankPain002 = """
        <?xml version="1.0" encoding="UTF-8"?>
        <!-- as a bank would send it: prefixed namespace, only some lines carry amounts -->
        <p:Document xmlns:p="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10">
          <p:CstmrPmtStsRpt>
            <p:GrpHdr><p:MsgId>ICBC-STS-0001</p:MsgId><p:CreDtTm>2022-05-09T16:00:00+08:00</p:CreDtTm></p:GrpHdr>
            <p:OrgnlGrpInfAndSts>
              <p:OrgnlMsgId>BF-20220506-0001</p:OrgnlMsgId>
              <p:OrgnlMsgNmId>pain.001.001.09</p:OrgnlMsgNmId>
              <p:OrgnlNbOfTxs>3</p:OrgnlNbOfTxs>
              <p:OrgnlCtrlSum>12500.76</p:OrgnlCtrlSum>
              <p:GrpSts>PART</p:GrpSts>
            </p:OrgnlGrpInfAndSts>
            <p:OrgnlPmtInfAndSts>
              <p:OrgnlPmtInfId>BF-20220506-0001</p:OrgnlPmtInfId>
              <p:TxInfAndSts>
                <p:OrgnlEndToEndId>PAY-0001</p:OrgnlEndToEndId>
                <p:TxSts>ACSC</p:TxSts>
                <p:OrgnlTxRef><p:Amt><p:InstdAmt Ccy="CNY">10000.00</p:InstdAmt></p:Amt></p:OrgnlTxRef>
              </p:TxInfAndSts>
              <p:TxInfAndSts>
                <p:OrgnlEndToEndId>PAY-0002</p:OrgnlEndToEndId>
                <p:TxSts>RJCT</p:TxSts>
                <p:StsRsnInf>
                  <p:Rsn><p:Cd>AC06</p:Cd></p:Rsn>
                  <p:AddtlInf>账户已冻结</p:AddtlInf>
                  <p:AddtlInf>account &amp; card blocked</p:AddtlInf>
                </p:StsRsnInf>
                <p:OrgnlTxRef><p:Amt><p:InstdAmt Ccy="CNY">2500.75</p:InstdAmt></p:Amt></p:OrgnlTxRef>
              </p:TxInfAndSts>
              <p:TxInfAndSts>
                <p:OrgnlEndToEndId>PAY-0003</p:OrgnlEndToEndId>
                <p:TxSts>ACCC</p:TxSts>
                <p:OrgnlTxRef><p:Amt><p:InstdAmt Ccy="CNY">0.01</p:InstdAmt></p:Amt></p:OrgnlTxRef>
              </p:TxInfAndSts>
            </p:OrgnlPmtInfAndSts>
          </p:CstmrPmtStsRpt>
        </p:Document>
        """

    @Test func readsAPain002WithARejectionAndItsReasonCode() throws {
        let file = try ReturnParser.parse(data: Data(Self.bankPain002.utf8))
        #expect(file.kind == .pain002)
        #expect(file.messageID == "ICBC-STS-0001")
        #expect(file.originalMessageID == "BF-20220506-0001")
        #expect(file.groupStatus == "PART")
        #expect(file.declaredCount == 3)
        #expect(file.declaredTotalFen == 1_250_076)
        #expect(
            file.lines == [
                ReturnLine(endToEndID: "PAY-0001", status: .settled, amountFen: 1_000_000),
                ReturnLine(
                    endToEndID: "PAY-0002", status: .failed(reasonCode: "AC06", reason: "账户已冻结 account & card blocked"),
                    amountFen: 250_075),
                ReturnLine(endToEndID: "PAY-0003", status: .settled, amountFen: 1),
            ])
        try file.checkTotals()
    }

    @Test func aWhollyRejectedBatchCarriesItsGroupStatus() throws {
        let xml = Pain002.xml(for: "BF-1", lines: [], declareTotals: false)
            .replacingOccurrences(
                of: "</OrgnlMsgNmId>", with: "</OrgnlMsgNmId><GrpSts>RJCT</GrpSts><StsRsnInf><Rsn><Cd>AM05</Cd></Rsn></StsRsnInf>")
        let file = try ReturnParser.parse(xml)
        #expect(file.groupStatus == "RJCT")
        #expect(file.groupReasonCode == "AM05")
        #expect(file.lines.isEmpty)
    }

    @Test func writtenStatusReportsRoundTripEveryStatus() throws {
        let lines = [
            ReturnLine(endToEndID: "A", status: .settled, amountFen: 5),
            ReturnLine(endToEndID: "B", status: .failed(reasonCode: "AC04", reason: nil), amountFen: 7),
            ReturnLine(endToEndID: "D & <E>", status: .failed(reasonCode: "MS03", reason: "原因 <未说明>"), amountFen: 11),
        ]
        let pending = [PendingLine(endToEndID: "C", statusCode: "ACSP", amountFen: 9)]
        let file = try ReturnParser.parse(Pain002.xml(for: "BF-X", lines: lines, pending: pending, messageID: "STS-X"))
        #expect(file.messageID == "STS-X")
        #expect(file.lines == lines)
        #expect(file.pendingLines == pending)
        #expect(file.declaredCount == 4)
        #expect(file.declaredTotalFen == 32)
        try file.checkTotals()
    }

    @Test func readsACamt054() throws {
        let lines = [
            ReturnLine(endToEndID: "PAY-0001", status: .settled, amountFen: 1_000_000),
            ReturnLine(endToEndID: "PAY-0002", status: .failed(reasonCode: "AC04", reason: "收款账户已销户"), amountFen: 250_075),
        ]
        let pending = [PendingLine(endToEndID: "PAY-0003", statusCode: "PDNG", amountFen: 1)]
        let xml = Camt054.xml(messageID: "CAMT-0001", accountNumber: Fixture.treasury.accountNumber, lines: lines, pending: pending)
        #expect(xml.contains("<NbOfNtries>3</NbOfNtries>"))
        #expect(xml.contains("<Sum>12500.76</Sum>"))
        let file = try ReturnParser.parse(xml)
        #expect(file.kind == .camt054)
        #expect(file.messageID == "CAMT-0001")
        #expect(file.declaredCount == 3)
        #expect(file.declaredTotalFen == 1_250_076)
        #expect(file.lines == lines)
        #expect(file.pendingLines == pending)
        try file.checkTotals()
    }

    @Test func readsAnOlderCamt054WithACodeStatusAndAReversal() throws {
        let xml = """
            <?xml version='1.0' encoding='utf-8'?>
            <Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.02">
              <BkToCstmrDbtCdtNtfctn>
                <GrpHdr><MsgId>OLD-1</MsgId><CreDtTm>2022-05-09T16:00:00</CreDtTm></GrpHdr>
                <Ntfctn>
                  <Id>N1</Id>
                  <Ntry>
                    <Amt Ccy="CNY">100.5</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts>BOOK</Sts>
                    <NtryDtls><TxDtls><Refs><EndToEndId>P1</EndToEndId></Refs></TxDtls></NtryDtls>
                  </Ntry>
                  <Ntry>
                    <Amt Ccy="CNY">20</Amt><CdtDbtInd>DBIT</CdtDbtInd><RvslInd>true</RvslInd><Sts>BOOK</Sts>
                    <NtryDtls><TxDtls><Refs><EndToEndId>P2</EndToEndId></Refs>
                      <AmtDtls><InstdAmt><Amt Ccy="CNY">20.00</Amt></InstdAmt></AmtDtls></TxDtls></NtryDtls>
                  </Ntry>
                </Ntfctn>
              </BkToCstmrDbtCdtNtfctn>
            </Document>
            """
        let file = try ReturnParser.parse(xml)
        #expect(
            file.lines == [
                ReturnLine(endToEndID: "P1", status: .settled, amountFen: 10_050),
                ReturnLine(endToEndID: "P2", status: .failed(reasonCode: "RVSL", reason: "entry reversed"), amountFen: 2000),
            ])
        #expect(file.declaredCount == nil)
        try file.checkTotals()
    }

    @Test func detectsTotalsThatDisagree() throws {
        let lines = [
            ReturnLine(endToEndID: "A", status: .settled, amountFen: 100),
            ReturnLine(endToEndID: "B", status: .settled, amountFen: 200),
        ]
        let badSum = try ReturnParser.parse(
            Pain002.xml(for: "BF-1", lines: lines, totalsOverride: ControlTotals(count: 2, totalFen: 301)))
        #expect(throws: ReturnError.totalsMismatch(declaredCount: 2, actualCount: 2, declaredTotalFen: 301, actualTotalFen: 300)) {
            try badSum.checkTotals()
        }
        let badCount = try ReturnParser.parse(
            Camt054.xml(messageID: "C-1", accountNumber: "1", lines: lines, totalsOverride: ControlTotals(count: 3, totalFen: 300)))
        #expect(throws: ReturnError.totalsMismatch(declaredCount: 3, actualCount: 2, declaredTotalFen: 300, actualTotalFen: 300)) {
            try badCount.checkTotals()
        }
        // A declared total that cannot be checked because a line has no amount is not trusted.
        let noAmount = try ReturnParser.parse(
            Pain002.xml(
                for: "BF-1", lines: [ReturnLine(endToEndID: "A", status: .settled)], totalsOverride: ControlTotals(count: 1, totalFen: 1)))
        #expect(throws: ReturnError.self) { try noAmount.checkTotals() }
        // The same with totals given directly.
        let direct = try ReturnParser.parse(
            Pain002.xml(
                originalMessageID: "BF-1", messageID: "RET-BAD", lines: Array(lines.prefix(1)), declaredCount: 2, declaredTotalFen: 200))
        #expect(throws: ReturnError.totalsMismatch(declaredCount: 2, actualCount: 1, declaredTotalFen: 200, actualTotalFen: 100)) {
            try direct.checkTotals()
        }
        try ReturnParser.parse(Pain002.xml(originalMessageID: "BF-1", messageID: "RET-OK", lines: lines)).checkTotals()
        // Without declared totals there is nothing to disagree with.
        try ReturnParser.parse(Pain002.xml(for: "BF-1", lines: lines, declareTotals: false)).checkTotals()
        #expect(
            ReturnError.totalsMismatch(declaredCount: 2, actualCount: 2, declaredTotalFen: 301, actualTotalFen: 300).description
                == "totals disagree: declared 2 lines, 3.01 yuan; found 2 lines, 3.00 yuan")
    }

    @Test(arguments: [
        ("", "not well-formed XML (line 1): the document is empty"),
        ("<Document>", "not well-formed XML (line 1): unterminated element <Document>"),
        ("<a><b></a></b>", "not well-formed XML (line 1): </a> does not close <b>"),
        ("<a>&bogus;</a>", "not well-formed XML (line 1): unknown entity &bogus;"),
        ("<a>&#0;</a>", "not well-formed XML (line 1): invalid character reference &#0;"),
        ("<a x=1/>", "not well-formed XML (line 1): attribute values must be quoted"),
        ("<a x='1' x='2'/>", "not well-formed XML (line 1): duplicate attribute x"),
        ("<a/><b/>", "not well-formed XML (line 1): content after the root element"),
        ("hello", "not well-formed XML (line 1): expected the root element"),
        ("<?xml version='1.0' encoding='ISO-8859-1'?><a/>", "not well-formed XML (line 1): only UTF-8 documents are accepted"),
        (
            "<?xml version='1.0'?>\n<!DOCTYPE d [<!ENTITY x 'y'>]>\n<d>&x;</d>",
            "not well-formed XML (line 2): a DTD (<!DOCTYPE) is not accepted"
        ),
        ("<Document><Other/></Document>", "not a pain.002 or camt.054 document (found <Other>)"),
        (
            "<Document><CstmrPmtStsRpt><GrpHdr/></CstmrPmtStsRpt></Document>",
            "missing element GrpHdr/MsgId"
        ),
    ])
    func malformedInputIsAClearErrorNeverACrash(_ text: String, _ message: String) {
        #expect {
            try ReturnParser.parse(text)
        } throws: { error in
            (error as? ReturnError)?.description == message
        }
    }

    @Test func invalidUTF8AndDeepNestingAreRefused() {
        #expect(throws: ReturnError.malformedXML(message: "the document is not valid UTF-8", line: 0)) {
            try ReturnParser.parse(data: Data([0x3C, 0x61, 0x3E, 0xFF, 0x3C, 0x2F, 0x61, 0x3E]))
        }
        let deep = String(repeating: "<a>", count: 10_000) + String(repeating: "</a>", count: 10_000)
        #expect(throws: ReturnError.malformedXML(message: "elements nested deeper than 64", line: 1)) {
            try ReturnParser.parse(deep)
        }
        // Every prefix of a valid document fails cleanly.
        let full = Array(ReturnTests.bankPain002.utf8)
        for n in stride(from: 0, to: full.count, by: 7) {
            #expect(throws: ReturnError.self) { try ReturnParser.parse(bytes: Array(full[0..<n])) }
        }
    }

    @Test(arguments: ["10.001", "-5.00", "1e2", "abc"])
    func amountsThatAreNotExactNonNegativeTwoDecimalsAreRejected(_ amount: String) {
        let xml = ReturnTests.bankPain002.replacingOccurrences(of: ">2500.75<", with: ">\(amount)<")
        #expect {
            try ReturnParser.parse(xml)
        } throws: { error in
            guard case .invalidAmount(let field, let e) = error as? ReturnError else { return false }
            return field == "OrgnlTxRef/Amt/InstdAmt" && e.text == amount
        }
    }

    @Test func otherCurrenciesAreRejected() {
        let xml = ReturnTests.bankPain002.replacingOccurrences(of: "Ccy=\"CNY\">2500.75", with: "Ccy=\"USD\">2500.75")
        #expect(throws: ReturnError.unsupportedCurrency("USD")) { try ReturnParser.parse(xml) }
    }

    @Test func readsFromAFile() throws {
        let dir = try Fixture.directory()
        let url = try AtomicFile.write(Array(ReturnTests.bankPain002.utf8), name: "in.xml", to: dir)
        #expect(try ReturnParser.parse(contentsOf: url).lines.count == 3)
        #expect(throws: ReturnError.self) { try ReturnParser.parse(contentsOf: dir.appendingPathComponent("none.xml")) }
    }
}
