import Foundation
import Models

@testable import ISO20022

/// Shared fixtures for the ISO 20022 tests.
enum Fixture {
    static let createdAt = Timestamp.parse("2022-05-06T10:15:30.250+08:00")!
    static let treasury = DebtorAccount(
        name: "上海市财政局国库存款户", accountNumber: "310066726018800001234",
        agent: FinancialAgent(bic: "PBOCCNBJSHA", name: "中国人民银行上海总部"))

    static func transfer(_ id: String, _ fen: Int64, name: String = "上海阿强小吃店", uscc: String? = nil) -> CreditTransfer {
        CreditTransfer(
            endToEndID: id, amountFen: fen, creditorName: name, creditorAccountNumber: "6222021001123456789",
            creditorAgent: FinancialAgent(memberID: "102290000019", name: "中国工商银行上海市分行"),
            remittanceInfo: "2022年小微企业和个体工商户纾困补贴", creditorUSCC: uscc)
    }

    static func batch(_ id: String = "BF-20220506-0001", payments: [CreditTransfer]? = nil) -> CreditTransferBatch {
        CreditTransferBatch(
            messageID: id, createdAt: createdAt, initiatingPartyName: "Bangfu 帮扶 treasury channel", debtor: treasury,
            requestedExecutionDate: CivilDate(year: 2022, month: 5, day: 9)!,
            payments: payments ?? [
                transfer("PAY-0001", 1_000_000, uscc: "92310115MA1K3XXX1A"),
                transfer("PAY-0002", 250_075, name: "王记修车铺（个体工商户）"),
                transfer("PAY-0003", 1, name: "Smith & Sons <Shanghai> \"Ltd\" 'Co'"),
            ])
    }

    /// A fresh empty directory.
    static func directory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("bangfu-iso-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func names(in dir: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
    }
}
