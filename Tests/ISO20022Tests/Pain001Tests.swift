import Foundation
import Models
import Testing

@testable import ISO20022

@Suite("pain.001.001.09 batches")
struct Pain001Tests {
    @Test func writesGroupHeaderAndPaymentInformation() throws {
        let xml = try Pain001.xml(Fixture.batch())
        #expect(xml.hasPrefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"))
        #expect(xml.contains("<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:pain.001.001.09\""))
        #expect(xml.contains("<MsgId>BF-20220506-0001</MsgId>"))
        #expect(xml.contains("<CreDtTm>2022-05-06T10:15:30.250+08:00</CreDtTm>"))
        #expect(xml.components(separatedBy: "<NbOfTxs>3</NbOfTxs>").count == 3)  // group header and PmtInf
        #expect(xml.components(separatedBy: "<CtrlSum>12500.76</CtrlSum>").count == 3)
        #expect(xml.contains("<PmtInfId>BF-20220506-0001</PmtInfId>"))
        #expect(xml.contains("<PmtMtd>TRF</PmtMtd>"))
        #expect(xml.contains("<ReqdExctnDt>\n        <Dt>2022-05-09</Dt>"))
        #expect(xml.contains("<InstdAmt Ccy=\"CNY\">10000.00</InstdAmt>"))
        #expect(xml.contains("<InstdAmt Ccy=\"CNY\">2500.75</InstdAmt>"))
        #expect(xml.contains("<InstdAmt Ccy=\"CNY\">0.01</InstdAmt>"))
        #expect(xml.contains("<BICFI>PBOCCNBJSHA</BICFI>"))
        #expect(xml.contains("<Othr>\n              <Id>102290000019</Id>"))
        #expect(xml.contains("<Ustrd>2022年小微企业和个体工商户纾困补贴</Ustrd>"))
        #expect(xml.components(separatedBy: "<CdtTrfTxInf>").count == 4)
        // The creditor's USCC, where the payment has one (the bank checks the holder against it).
        #expect(
            xml.contains(
                "<Cdtr>\n          <Nm>上海阿强小吃店</Nm>\n          <Id>\n            <OrgId>\n              <Othr>\n                <Id>92310115MA1K3XXX1A</Id>\n                <SchmeNm>\n                  <Prtry>USCC</Prtry>"
            ), "\(xml)")
        #expect(xml.components(separatedBy: "<Prtry>USCC</Prtry>").count == 2, "only the payment that has one")
    }

    @Test func batchOfThreeRoundTripsThroughTheWriterAndAStatusReport() throws {
        let batch = Fixture.batch()
        let back = try Pain001.parse(try Pain001.xml(batch))
        #expect(back == batch)
        let lines = [
            ReturnLine(endToEndID: "PAY-0001", status: .settled, amountFen: 1_000_000),
            ReturnLine(endToEndID: "PAY-0002", status: .failed(reasonCode: "AC04", reason: "账户已销户"), amountFen: 250_075),
            ReturnLine(endToEndID: "PAY-0003", status: .settled, amountFen: 1),
        ]
        let report = try ReturnParser.parse(Pain002.xml(for: batch.messageID, lines: lines))
        #expect(report.kind == .pain002)
        #expect(report.originalMessageID == batch.messageID)
        #expect(report.lines == lines)
        #expect(report.declaredCount == 3)
        #expect(report.declaredTotalFen == 1_250_076)
        try report.checkTotals()
        #expect(report.lines.map(\.endToEndID) == batch.payments.map(\.endToEndID))
    }

    @Test(arguments: [1_651_803_339.8984, 1_651_803_330.2491, 1_651_803_330.0, 1_651_803_330.9999])
    func creationTimeIsWrittenToTheMillisecondAndReadsBackToTheSameText(_ seconds: Double) throws {
        var batch = Fixture.batch()
        batch.createdAt = Date(timeIntervalSince1970: seconds)
        let xml = try Pain001.xml(batch)
        let written = Timestamp.format(batch.createdAt)
        #expect(xml.contains("<CreDtTm>\(written)</CreDtTm>"))
        #expect(Timestamp.format(try Pain001.parse(xml).createdAt) == written)
    }

    @Test func escapesMarkupInNames() throws {
        var batch = Fixture.batch()
        batch.initiatingPartyName = "A&B <Treasury> \"Q\" 'S'"
        let xml = try Pain001.xml(batch)
        #expect(xml.contains("<Nm>A&amp;B &lt;Treasury&gt; &quot;Q&quot; &apos;S&apos;</Nm>"))
        #expect(xml.contains("<Nm>Smith &amp; Sons &lt;Shanghai&gt; &quot;Ltd&quot; &apos;Co&apos;</Nm>"))
        #expect(!xml.contains("Smith & Sons"))
        let back = try Pain001.parse(xml)
        #expect(back.initiatingPartyName == batch.initiatingPartyName)
        #expect(back.payments[2].creditorName == "Smith & Sons <Shanghai> \"Ltd\" 'Co'")
    }

    @Test func refusesABatchWhoseDeclaredTotalsDisagreeWithTheLines() throws {
        var batch = Fixture.batch()
        batch.declaredTotals = ControlTotals(count: 3, totalFen: 1_250_075)
        #expect(
            throws: BatchError.controlTotalsMismatch(
                declared: ControlTotals(count: 3, totalFen: 1_250_075), lineCount: 3, lineTotalFen: 1_250_076)
        ) { try Pain001.xml(batch) }
        batch.declaredTotals = ControlTotals(count: 4, totalFen: 1_250_076)
        #expect(throws: BatchError.self) { try Pain001.xml(batch) }
        let dir = try Fixture.directory()
        #expect(throws: BatchError.self) { try Pain001.writeAtomically(batch, to: dir) }
        #expect(try Fixture.names(in: dir).isEmpty, "a batch whose lines disagree is never written")
        batch.declaredTotals = ControlTotals(count: 3, totalFen: 1_250_076)
        #expect(try Pain001.parse(Pain001.xml(batch)).payments.count == 3)
    }

    @Test func refusesDuplicateEndToEndIDs() {
        let batch = Fixture.batch(payments: [
            Fixture.transfer("PAY-1", 100), Fixture.transfer("PAY-2", 200), Fixture.transfer("PAY-1", 300),
        ])
        #expect(throws: BatchError.duplicateEndToEndID("PAY-1")) { try Pain001.xml(batch) }
    }

    @Test func refusesEmptyBatchesAndNonPositiveAmounts() {
        #expect(throws: BatchError.noPayments(messageID: "BF-EMPTY")) { try Pain001.xml(Fixture.batch("BF-EMPTY", payments: [])) }
        #expect(throws: BatchError.nonPositiveAmount(endToEndID: "P0", amountFen: 0)) {
            try Pain001.xml(Fixture.batch(payments: [Fixture.transfer("P0", 0)]))
        }
        #expect(throws: BatchError.nonPositiveAmount(endToEndID: "PN", amountFen: -100)) {
            try Pain001.xml(Fixture.batch(payments: [Fixture.transfer("PN", -100)]))
        }
        #expect(throws: BatchError.amountTooLarge(field: "payments[0].amountFen")) {
            try Pain001.xml(Fixture.batch(payments: [Fixture.transfer("PB", Int64.max)]))
        }
        #expect(throws: BatchError.amountTooLarge(field: "control sum")) {
            try Pain001.xml(Fixture.batch(payments: [Fixture.transfer("PB1", YuanAmount.maxFen), Fixture.transfer("PB2", 1)]))
        }
    }

    @Test func refusesFieldsTheSchemaCannotCarry() {
        let long36 = String(repeating: "x", count: 36)
        #expect(throws: BatchError.fieldTooLong(field: "payments[0].endToEndID", maxLength: 35, length: 36)) {
            try Pain001.xml(Fixture.batch(payments: [Fixture.transfer(long36, 100)]))
        }
        #expect(throws: BatchError.fieldTooLong(field: "messageID", maxLength: 35, length: 36)) {
            try Pain001.xml(Fixture.batch(long36))
        }
        // XSD lengths count characters, not bytes: 140 Chinese characters fit, 141 do not.
        var t = Fixture.transfer("P1", 100, name: String(repeating: "帮", count: 140))
        #expect(throws: Never.self) { try Pain001.xml(Fixture.batch(payments: [t])) }
        t.creditorName += "扶"
        #expect(throws: BatchError.fieldTooLong(field: "payments[0].creditorName", maxLength: 140, length: 141)) {
            try Pain001.xml(Fixture.batch(payments: [t]))
        }
        t = Fixture.transfer("P1", 100)
        t.remittanceInfo = String(repeating: "r", count: 141)
        #expect(throws: BatchError.fieldTooLong(field: "payments[0].remittanceInfo", maxLength: 140, length: 141)) {
            try Pain001.xml(Fixture.batch(payments: [t]))
        }
        t = Fixture.transfer("P1", 100)
        t.creditorAccountNumber = String(repeating: "1", count: 35)
        #expect(throws: BatchError.fieldTooLong(field: "payments[0].creditorAccountNumber", maxLength: 34, length: 35)) {
            try Pain001.xml(Fixture.batch(payments: [t]))
        }
        t = Fixture.transfer("P1", 100, name: "")
        #expect(throws: BatchError.emptyField(field: "payments[0].creditorName")) { try Pain001.xml(Fixture.batch(payments: [t])) }
        t = Fixture.transfer("P1", 100, name: "bell\u{7}")
        #expect(throws: BatchError.invalidCharacters(field: "payments[0].creditorName")) {
            try Pain001.xml(Fixture.batch(payments: [t]))
        }
        t = Fixture.transfer("P1", 100)
        t.creditorAgent.bic = "icbkcnbj"
        #expect(throws: BatchError.self) { try Pain001.xml(Fixture.batch(payments: [t])) }
        #expect(throws: BatchError.self) { try Pain001.xml(Fixture.batch("../escape")) }
    }

    @Test func aBankKnownByOneReference() throws {
        #expect(FinancialAgent(reference: "ICBKCNBJ") == FinancialAgent(bic: "ICBKCNBJ"))
        #expect(FinancialAgent(reference: "102290000019") == FinancialAgent(memberID: "102290000019"))
        #expect(FinancialAgent(reference: "PBOC-TREASURY") == FinancialAgent(memberID: "PBOC-TREASURY"))
        #expect(FinancialAgent(reference: "中国工商银行上海市分行") == FinancialAgent(name: "中国工商银行上海市分行"))
        #expect(FinancialAgent(reference: "") == FinancialAgent())
        let batch = CreditTransferBatch(
            messageID: "BANGFU-B000001", createdAt: Fixture.createdAt, initiatingParty: "Bangfu 帮扶", debtorName: "国库集中支付账户",
            debtorAccount: "0000000000000000", debtorAgent: "PBOC-TREASURY",
            requestedExecutionDate: CivilDate(year: 2022, month: 5, day: 6)!,
            payments: [
                CreditTransfer(
                    endToEndID: "P1", amountFen: 100_000, creditorName: "阿强小吃店", creditorAccount: "6222", creditorAgent: "中国银行",
                    remittanceInformation: "纾困")
            ])
        let back = try Pain001.parse(Pain001.xml(batch))
        #expect(back.debtor.agent.memberID == "PBOC-TREASURY")
        #expect(back.payments[0].creditorAgent.name == "中国银行")
    }

    @Test func agentWithoutAnyIdentifierIsWrittenAsNotProvided() throws {
        var t = Fixture.transfer("P1", 100)
        t.creditorAgent = FinancialAgent()
        let xml = try Pain001.xml(Fixture.batch(payments: [t]))
        #expect(xml.contains("<Id>NOTPROVIDED</Id>"))
        #expect(try Pain001.parse(xml).payments[0].creditorAgent == FinancialAgent())
    }

    @Test func readingABatchChecksItsGroupHeader() throws {
        let xml = try Pain001.xml(Fixture.batch()).replacingOccurrences(
            of: "<NbOfTxs>3</NbOfTxs>\n      <CtrlSum>", with: "<NbOfTxs>2</NbOfTxs>\n      <CtrlSum>")
        #expect(
            throws: ReturnError.totalsMismatch(declaredCount: 2, actualCount: 3, declaredTotalFen: 1_250_076, actualTotalFen: 1_250_076)
        ) {
            try Pain001.parse(xml)
        }
    }

    /// Writes sample files for the XSD check (Tests/iso20022/run) when BANGFU_ISO_SAMPLES_DIR is set.
    @Test func writesSamplesForTheSchemaCheck() throws {
        guard let path = ProcessInfo.processInfo.environment["BANGFU_ISO_SAMPLES_DIR"], !path.isEmpty else { return }
        let dir = URL(fileURLWithPath: path, isDirectory: true)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let big = Fixture.batch(
            "BF-SAMPLE-20220506-01",
            payments: [
                Fixture.transfer("PAY-2022-000001", 1_000_000, name: "上海阿强小吃店"),
                Fixture.transfer("PAY-2022-000002", 250_075, name: "王记修车铺（个体工商户）"),
                Fixture.transfer("PAY-2022-000003", 1, name: "Smith & Sons <Shanghai> \"Ltd\" 'Co'"),
                Fixture.transfer("PAY-2022-000004", 123_456_789_012_345, name: "浦东新区张江高科技园区某某科技有限公司"),
                CreditTransfer(
                    endToEndID: "PAY-2022-000005", amountFen: 880_000, creditorName: "李四（出租方）",
                    creditorAccountNumber: "31050161393600000123",
                    creditorAgent: FinancialAgent(bic: "PCBCCNBJSHX", name: "中国建设银行上海分行"), remittanceInfo: nil),
            ])
        try Pain001.writeAtomically(big, to: dir)
        var small = Fixture.batch("BF-SAMPLE-20220506-02", payments: [Fixture.transfer("PAY-2022-000006", 99)])
        small.debtor.agent = FinancialAgent(memberID: "011290000011")
        try Pain001.writeAtomically(small, to: dir)
        // The XSD's limits: the largest amount (18 digits) and 140-character names.
        let edge = Fixture.batch(
            "BF-SAMPLE-20220506-03",
            payments: [Fixture.transfer("PAY-2022-000007", YuanAmount.maxFen, name: String(repeating: "帮", count: 140))])
        try Pain001.writeAtomically(edge, to: dir)
        let lines = [
            ReturnLine(endToEndID: "PAY-2022-000001", status: .settled, amountFen: 1_000_000),
            ReturnLine(endToEndID: "PAY-2022-000002", status: .failed(reasonCode: "AC04", reason: "账户已销户 & closed"), amountFen: 250_075),
        ]
        let pending = [PendingLine(endToEndID: "PAY-2022-000003", statusCode: "ACSP", amountFen: 1)]
        try AtomicFile.write(
            Array(Pain002.xml(for: big.messageID, lines: lines, pending: pending).utf8), name: "pain.002-sample.xml", to: dir)
        try AtomicFile.write(
            Array(Camt054.xml(messageID: "CAMT-SAMPLE-1", accountNumber: Fixture.treasury.accountNumber, lines: lines).utf8),
            name: "camt.054-sample.xml", to: dir)
        #expect(try Fixture.names(in: dir).filter { $0.hasSuffix(".xml") }.count >= 5)
    }
}
