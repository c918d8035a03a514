import Foundation
import Models

/// A financial institution (bank) as ISO 20022 identifies it: a BIC, or else a domestic
/// identifier such as a CNAPS bank code (written as `FinInstnId/Othr/Id`), and optionally a name.
public struct FinancialAgent: Sendable, Hashable, Codable {
    /// A BIC (`BICFI`), e.g. "ICBKCNBJ" or "ICBKCNBJBJM".
    public var bic: String?
    /// A clearing member or other domestic bank identifier (e.g. a 12-digit CNAPS code).
    public var memberID: String?
    /// The bank's name (`Nm`).
    public var name: String?

    public init(bic: String? = nil, memberID: String? = nil, name: String? = nil) {
        self.bic = bic
        self.memberID = memberID
        self.name = name
    }
}

/// The account the money leaves: the treasury account of a batch.
public struct DebtorAccount: Sendable, Hashable, Codable {
    public var name: String
    /// A domestic account number (no IBAN in China), written as `Id/Othr/Id`.
    public var accountNumber: String
    public var agent: FinancialAgent

    public init(name: String, accountNumber: String, agent: FinancialAgent) {
        self.name = name
        self.accountNumber = accountNumber
        self.agent = agent
    }
}

/// The count and total a caller declares for a batch (e.g. from its own ledger); a batch whose
/// lines disagree with them is never written.
public struct ControlTotals: Sendable, Hashable, Codable {
    public var count: Int
    public var totalFen: Int64

    public init(count: Int, totalFen: Int64) {
        self.count = count
        self.totalFen = totalFen
    }
}

/// One payment of a batch.
public struct CreditTransfer: Sendable, Hashable, Codable {
    /// The payment id (`EndToEndId`, at most 35 characters: the caller shortens longer ids).
    public var endToEndID: String
    /// More than zero.
    public var amountFen: Int64
    public var creditorName: String
    public var creditorAccountNumber: String
    public var creditorAgent: FinancialAgent
    /// Unstructured remittance information (`RmtInf/Ustrd`, at most 140 characters), e.g. the
    /// programme title.
    public var remittanceInfo: String?
    /// The creditor's unified social credit code (统一社会信用代码), written as
    /// `Cdtr/Id/OrgId/Othr` with the proprietary scheme `USCC`: the bank can check the account
    /// holder against the merchant paid (实名制), and the treasury match its own records.
    public var creditorUSCC: String?

    public init(
        endToEndID: String, amountFen: Int64, creditorName: String, creditorAccountNumber: String,
        creditorAgent: FinancialAgent, remittanceInfo: String? = nil, creditorUSCC: String? = nil
    ) {
        self.endToEndID = endToEndID
        self.amountFen = amountFen
        self.creditorName = creditorName
        self.creditorAccountNumber = creditorAccountNumber
        self.creditorAgent = creditorAgent
        self.remittanceInfo = remittanceInfo
        self.creditorUSCC = creditorUSCC
    }
}

/// A treasury payment batch: one `pain.001.001.09` file with one payment information block.
public struct CreditTransferBatch: Sendable, Hashable, Codable {
    /// `MsgId` (and `PmtInfId`), also the file name: 1–35 characters of `A-Z a-z 0-9 . _ -`,
    /// not starting with '.'.
    public var messageID: String
    /// `CreDtTm`, written in China Standard Time with millisecond precision.
    public var createdAt: Date
    public var initiatingPartyName: String
    public var debtor: DebtorAccount
    public var requestedExecutionDate: CivilDate
    public var payments: [CreditTransfer]
    /// When set, the lines must add up to exactly these totals or the batch is refused.
    public var declaredTotals: ControlTotals?

    public init(
        messageID: String, createdAt: Date, initiatingPartyName: String, debtor: DebtorAccount,
        requestedExecutionDate: CivilDate, payments: [CreditTransfer], declaredTotals: ControlTotals? = nil
    ) {
        self.messageID = messageID
        self.createdAt = createdAt
        self.initiatingPartyName = initiatingPartyName
        self.debtor = debtor
        self.requestedExecutionDate = requestedExecutionDate
        self.payments = payments
        self.declaredTotals = declaredTotals
    }

    /// The number of payments and their sum in fen (`nil` sum on overflow).
    public var lineTotals: (count: Int, totalFen: Int64?) {
        (payments.count, YuanAmount.sum(payments.map(\.amountFen)))
    }
}

/// Why a batch or instruction file was not written. Messages are stable and user-facing.
public enum BatchError: Error, Sendable, Equatable, CustomStringConvertible {
    case noPayments(messageID: String)
    case nonPositiveAmount(endToEndID: String, amountFen: Int64)
    /// An amount or the batch total beyond what ISO 20022 can carry (`YuanAmount.maxFen`).
    case amountTooLarge(field: String)
    case duplicateEndToEndID(String)
    case emptyField(field: String)
    case fieldTooLong(field: String, maxLength: Int, length: Int)
    case invalidCharacters(field: String)
    case invalidIdentifier(field: String, value: String, expected: String)
    case controlTotalsMismatch(declared: ControlTotals, lineCount: Int, lineTotalFen: Int64)
    /// The written document did not read back as the batch: a bug, never written.
    case selfCheckFailed(String)
    case invalidInstructionFile(String)
    /// A different file of the same name was already written; it is never overwritten.
    case fileConflict(path: String)
    case io(path: String, message: String)

    public var description: String {
        switch self {
        case .noPayments(let id): "batch \(id) has no payments"
        case .nonPositiveAmount(let id, let fen): "payment \(id): amount must be more than zero, got \(fen) fen"
        case .amountTooLarge(let field): "\(field): amount too large for ISO 20022 (at most \(YuanAmount.maxFen) fen)"
        case .duplicateEndToEndID(let id): "duplicate EndToEndId \(id) in one batch"
        case .emptyField(let field): "\(field) is empty"
        case .fieldTooLong(let field, let max, let length): "\(field) has \(length) characters, at most \(max) allowed"
        case .invalidCharacters(let field): "\(field) contains characters XML cannot carry"
        case .invalidIdentifier(let field, let value, let expected): "\(field) \"\(value.prefix(40))\" is not \(expected)"
        case .controlTotalsMismatch(let declared, let count, let total):
            "control totals disagree: declared \(declared.count) payments, \(YuanAmount.format(fen: declared.totalFen)) yuan; "
                + "the lines are \(count) payments, \(YuanAmount.format(fen: total)) yuan"
        case .selfCheckFailed(let why): "the written batch does not read back as the batch: \(why)"
        case .invalidInstructionFile(let why): "invalid instruction file: \(why)"
        case .fileConflict(let path): "\(path) already exists with different content; a written file is never overwritten"
        case .io(let path, let message): "\(path): \(message)"
        }
    }
}

/// Writes and reads `pain.001.001.09` customer credit transfer initiations.
public enum Pain001 {
    public static let namespace = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"
    public static let currency = "CNY"

    /// The document for `batch`, after validating every field against the XSD's limits and the
    /// control totals, and reading the result back to check it (a batch whose lines disagree is
    /// never written).
    public static func xml(_ batch: CreditTransferBatch) throws(BatchError) -> String {
        let total = try validate(batch)
        let text = render(batch, totalFen: total)
        try selfCheck(text, against: batch, totalFen: total)
        return text
    }

    /// Writes `batch` to `<directory>/<MsgId>.xml` atomically (temp file, fsync, rename). Writing
    /// the same content again returns the existing file; different content under the same name
    /// throws `.fileConflict`.
    @discardableResult
    public static func writeAtomically(_ batch: CreditTransferBatch, to directory: URL) throws(BatchError) -> URL {
        let text = try xml(batch)
        return try AtomicFile.write(Array(text.utf8), name: batch.messageID + ".xml", to: directory)
    }

    /// Reads a `pain.001.001.09` document back (one or more `PmtInf` blocks are accepted; the
    /// first one's debtor is returned). Checks its group header totals against its lines.
    public static func parse(_ text: String) throws(ReturnError) -> CreditTransferBatch {
        try parse(tree: try ReturnParser.tree(Array(text.utf8), maxBytes: Int.max))
    }

    static func parse(tree root: XMLNode) throws(ReturnError) -> CreditTransferBatch {
        guard root.name == "Document", let body = root.child("CstmrCdtTrfInitn") else {
            throw .unsupportedDocument(root.children.first?.name ?? root.name)
        }
        let messageID = try required(body, "GrpHdr", "MsgId")
        guard let parsedAt = Timestamp.parse(try required(body, "GrpHdr", "CreDtTm")) else {
            throw .invalidValue(field: "GrpHdr/CreDtTm", text: body.path("GrpHdr", "CreDtTm")?.text ?? "")
        }
        // Whole milliseconds, as written, so that the instant formats back to the same text.
        let createdAt = Date(timeIntervalSince1970: (parsedAt.timeIntervalSince1970 * 1000).rounded() / 1000)
        let declaredCount = try count(body, "GrpHdr", "NbOfTxs")
        let declaredSum = try body.path("GrpHdr", "CtrlSum").map { n throws(ReturnError) in try amount(n, "GrpHdr/CtrlSum") }
        let blocks = body.all("PmtInf")
        guard let first = blocks.first else { throw .missingElement("PmtInf") }
        var payments: [CreditTransfer] = []
        for block in blocks {
            for tx in block.all("CdtTrfTxInf") {
                guard let amt = tx.path("Amt", "InstdAmt") else { throw .missingElement("CdtTrfTxInf/Amt/InstdAmt") }
                try checkCurrency(amt)
                payments.append(
                    CreditTransfer(
                        endToEndID: try required(tx, "PmtId", "EndToEndId"),
                        amountFen: try amount(amt, "InstdAmt"),
                        creditorName: tx.path("Cdtr", "Nm")?.text ?? "",
                        creditorAccountNumber: tx.path("CdtrAcct", "Id", "Othr", "Id")?.text
                            ?? tx.path("CdtrAcct", "Id", "IBAN")?.text ?? "",
                        creditorAgent: agent(tx.child("CdtrAgt")),
                        remittanceInfo: tx.path("RmtInf", "Ustrd")?.text,
                        creditorUSCC: tx.path("Cdtr", "Id", "OrgId", "Othr", "Id")?.text))
            }
        }
        let sum = YuanAmount.sum(payments.map(\.amountFen))
        if declaredCount != payments.count || (declaredSum != nil && declaredSum != sum) {
            throw .totalsMismatch(
                declaredCount: declaredCount, actualCount: payments.count, declaredTotalFen: declaredSum, actualTotalFen: sum)
        }
        let dateText = try required(first, "ReqdExctnDt", "Dt")
        guard let date = CivilDate.parse(dateText) else { throw .invalidValue(field: "ReqdExctnDt/Dt", text: dateText) }
        return CreditTransferBatch(
            messageID: messageID, createdAt: createdAt, initiatingPartyName: body.path("GrpHdr", "InitgPty", "Nm")?.text ?? "",
            debtor: DebtorAccount(
                name: first.path("Dbtr", "Nm")?.text ?? "",
                accountNumber: first.path("DbtrAcct", "Id", "Othr", "Id")?.text ?? first.path("DbtrAcct", "Id", "IBAN")?.text ?? "",
                agent: agent(first.child("DbtrAgt"))),
            requestedExecutionDate: date, payments: payments)
    }

    // MARK: validation

    static let fileNameBytes: Set<UInt8> = Set(Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-".utf8))

    /// Validates everything the XSD and Bangfu require; returns the total in fen.
    static func validate(_ batch: CreditTransferBatch) throws(BatchError) -> Int64 {
        try text(batch.messageID, "messageID", max: 35)
        guard batch.messageID.utf8.allSatisfy({ fileNameBytes.contains($0) }), !batch.messageID.hasPrefix(".") else {
            throw .invalidIdentifier(field: "messageID", value: batch.messageID, expected: "made of A-Z a-z 0-9 . _ - (it names the file)")
        }
        try text(batch.initiatingPartyName, "initiatingPartyName", max: 140)
        try text(batch.debtor.name, "debtor.name", max: 140)
        try text(batch.debtor.accountNumber, "debtor.accountNumber", max: 34)
        try validate(batch.debtor.agent, "debtor.agent")
        guard !batch.payments.isEmpty else { throw .noPayments(messageID: batch.messageID) }
        var seen: Set<String> = []
        var total: Int64 = 0
        for (k, p) in batch.payments.enumerated() {
            try validate(p, field: "payments[\(k)]")
            guard seen.insert(p.endToEndID).inserted else { throw .duplicateEndToEndID(p.endToEndID) }
            total += p.amountFen  // cannot overflow before exceeding maxFen below: both ≤ 10^18
            guard total <= YuanAmount.maxFen else { throw .amountTooLarge(field: "control sum") }
        }
        if let d = batch.declaredTotals, d.count != batch.payments.count || d.totalFen != total {
            throw .controlTotalsMismatch(declared: d, lineCount: batch.payments.count, lineTotalFen: total)
        }
        return total
    }

    /// Validates one payment on its own against the XSD's limits (what `xml` checks of each
    /// line), so that a caller can leave out a payment that cannot be written and write the rest.
    public static func validate(_ p: CreditTransfer, field f: String) throws(BatchError) {
        try text(p.endToEndID, f + ".endToEndID", max: 35)
        guard p.amountFen > 0 else { throw .nonPositiveAmount(endToEndID: p.endToEndID, amountFen: p.amountFen) }
        guard p.amountFen <= YuanAmount.maxFen else { throw .amountTooLarge(field: f + ".amountFen") }
        try text(p.creditorName, f + ".creditorName", max: 140)
        try text(p.creditorAccountNumber, f + ".creditorAccountNumber", max: 34)
        try validate(p.creditorAgent, f + ".creditorAgent")
        if let r = p.remittanceInfo { try text(r, f + ".remittanceInfo", max: 140) }
        if let u = p.creditorUSCC { try text(u, f + ".creditorUSCC", max: 35) }
    }

    static func text(_ s: String, _ field: String, max: Int) throws(BatchError) {
        let n = s.unicodeScalars.count
        guard n > 0 else { throw .emptyField(field: field) }
        guard n <= max else { throw .fieldTooLong(field: field, maxLength: max, length: n) }
        guard !hasNonXMLCharacters(s), !s.unicodeScalars.contains(where: { $0.value < 0x20 }) else {
            throw .invalidCharacters(field: field)
        }
    }

    static func validate(_ agent: FinancialAgent, _ field: String) throws(BatchError) {
        if let bic = agent.bic {
            guard isBIC(bic) else { throw .invalidIdentifier(field: field + ".bic", value: bic, expected: "a BIC (8 or 11 characters)") }
        }
        if let id = agent.memberID { try text(id, field + ".memberID", max: 35) }
        if let name = agent.name { try text(name, field + ".name", max: 140) }
    }

    /// `[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?` (BICFIDec2014Identifier).
    static func isBIC(_ s: String) -> Bool {
        let b = Array(s.utf8)
        guard b.count == 8 || b.count == 11 else { return false }
        let upper = { (c: UInt8) in c >= 0x41 && c <= 0x5A }
        for (k, c) in b.enumerated() {
            let ok = (4...5).contains(k) ? upper(c) : (upper(c) || isDigit(c))
            if !ok { return false }
        }
        return true
    }

    // MARK: rendering

    static func render(_ batch: CreditTransferBatch, totalFen: Int64) -> String {
        var x = XMLBuilder()
        let count = String(batch.payments.count)
        let sum = YuanAmount.format(fen: totalFen)
        x.open("Document", ["xmlns": namespace])
        x.open("CstmrCdtTrfInitn")
        x.element("GrpHdr") { x in
            x.leaf("MsgId", batch.messageID)
            x.leaf("CreDtTm", Timestamp.format(batch.createdAt))
            x.leaf("NbOfTxs", count)
            x.leaf("CtrlSum", sum)
            x.element("InitgPty") { $0.leaf("Nm", batch.initiatingPartyName) }
        }
        x.open("PmtInf")
        x.leaf("PmtInfId", batch.messageID)
        x.leaf("PmtMtd", "TRF")
        x.leaf("NbOfTxs", count)
        x.leaf("CtrlSum", sum)
        x.element("ReqdExctnDt") { $0.leaf("Dt", batch.requestedExecutionDate.description) }
        x.element("Dbtr") { $0.leaf("Nm", batch.debtor.name) }
        account(&x, "DbtrAcct", batch.debtor.accountNumber)
        agent(&x, "DbtrAgt", batch.debtor.agent)
        for p in batch.payments {
            x.open("CdtTrfTxInf")
            x.element("PmtId") { $0.leaf("EndToEndId", p.endToEndID) }
            x.element("Amt") { $0.leaf("InstdAmt", YuanAmount.format(fen: p.amountFen), ["Ccy": currency]) }
            agent(&x, "CdtrAgt", p.creditorAgent)
            x.element("Cdtr") { x in
                x.leaf("Nm", p.creditorName)
                if let uscc = p.creditorUSCC {
                    x.element("Id") { x in
                        x.element("OrgId") { x in
                            x.element("Othr") { x in
                                x.leaf("Id", uscc)
                                x.element("SchmeNm") { $0.leaf("Prtry", "USCC") }
                            }
                        }
                    }
                }
            }
            account(&x, "CdtrAcct", p.creditorAccountNumber)
            if let r = p.remittanceInfo { x.element("RmtInf") { $0.leaf("Ustrd", r) } }
            x.close()
        }
        x.close()
        x.close()
        x.close()
        return x.text
    }

    static func account(_ x: inout XMLBuilder, _ tag: String, _ number: String) {
        x.element(tag) { x in
            x.element("Id") { x in x.element("Othr") { $0.leaf("Id", number) } }
        }
    }

    static func agent(_ x: inout XMLBuilder, _ tag: String, _ a: FinancialAgent) {
        x.element(tag) { x in
            x.element("FinInstnId") { x in
                if let bic = a.bic { x.leaf("BICFI", bic) }
                if let name = a.name { x.leaf("Nm", name) }
                if let id = a.memberID {
                    x.element("Othr") { $0.leaf("Id", id) }
                } else if a.bic == nil && a.name == nil {
                    x.element("Othr") { $0.leaf("Id", "NOTPROVIDED") }
                }
            }
        }
    }

    static func agent(_ node: XMLNode?) -> FinancialAgent {
        let fin = node?.child("FinInstnId")
        let other = fin?.path("Othr", "Id")?.text
        return FinancialAgent(
            bic: fin?.child("BICFI")?.text, memberID: other == "NOTPROVIDED" ? nil : other, name: fin?.child("Nm")?.text)
    }

    // MARK: self-check

    static func selfCheck(_ text: String, against batch: CreditTransferBatch, totalFen: Int64) throws(BatchError) {
        let back: CreditTransferBatch
        let root: XMLNode
        do {
            root = try ReturnParser.tree(Array(text.utf8), maxBytes: Int.max)
            back = try parse(tree: root)
        } catch {
            throw .selfCheckFailed(error.description)
        }
        guard let block = root.path("CstmrCdtTrfInitn", "PmtInf"),
            block.child("NbOfTxs")?.text == String(batch.payments.count),
            block.child("CtrlSum")?.text == YuanAmount.format(fen: totalFen)
        else {
            throw .selfCheckFailed("the payment information totals disagree with the lines")
        }
        var expected = batch
        expected.createdAt = back.createdAt
        expected.declaredTotals = nil
        guard back == expected else { throw .selfCheckFailed("fields differ after reading back") }
        let written = Timestamp.format(batch.createdAt)
        guard root.path("CstmrCdtTrfInitn", "GrpHdr", "CreDtTm")?.text == written, Timestamp.format(back.createdAt) == written else {
            throw .selfCheckFailed("CreDtTm differs after reading back")
        }
    }

    // MARK: reading helpers

    static func required(_ node: XMLNode, _ names: String...) throws(ReturnError) -> String {
        var n: XMLNode? = node
        for name in names { n = n?.child(name) }
        guard let t = n?.text, !t.isEmpty else { throw .missingElement(names.joined(separator: "/")) }
        return t
    }

    static func count(_ node: XMLNode, _ names: String...) throws(ReturnError) -> Int {
        var n: XMLNode? = node
        for name in names { n = n?.child(name) }
        let field = names.joined(separator: "/")
        guard let t = n?.text else { throw .missingElement(field) }
        guard !t.isEmpty, t.utf8.count <= 15, t.utf8.allSatisfy(isDigit), let v = Int(t) else {
            throw .invalidValue(field: field, text: t)
        }
        return v
    }

    static func amount(_ node: XMLNode, _ field: String) throws(ReturnError) -> Int64 {
        do {
            return try YuanAmount.parse(node.text)
        } catch {
            throw .invalidAmount(field: field, error)
        }
    }

    static func checkCurrency(_ node: XMLNode) throws(ReturnError) {
        if let ccy = node.attributes["Ccy"], ccy != currency { throw .unsupportedCurrency(ccy) }
    }
}

// MARK: - Conveniences for callers that know a bank by one text

extension FinancialAgent {
    /// An agent from one bank reference: a BIC if it is one; else, if it is printable ASCII
    /// without spaces and at most 35 characters, a domestic bank code (`Othr/Id`, e.g. CNAPS);
    /// else the bank's name. An empty reference gives an agent written as `NOTPROVIDED`.
    public init(reference: String) {
        self.init()
        if reference.isEmpty { return }
        if Pain001.isBIC(reference) {
            bic = reference
        } else if reference.utf8.count <= 35, reference.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) {
            memberID = reference
        } else {
            name = reference
        }
    }
}

extension CreditTransfer {
    /// A transfer whose creditor bank is known by one reference (see `FinancialAgent(reference:)`).
    public init(
        endToEndID: String, amountFen: Int64, creditorName: String, creditorAccount: String, creditorAgent: String,
        remittanceInformation: String? = nil, creditorUSCC: String? = nil
    ) {
        self.init(
            endToEndID: endToEndID, amountFen: amountFen, creditorName: creditorName, creditorAccountNumber: creditorAccount,
            creditorAgent: FinancialAgent(reference: creditorAgent), remittanceInfo: remittanceInformation, creditorUSCC: creditorUSCC)
    }
}

extension CreditTransferBatch {
    /// A batch whose debtor bank is known by one reference (see `FinancialAgent(reference:)`).
    public init(
        messageID: String, createdAt: Date, initiatingParty: String, debtorName: String, debtorAccount: String, debtorAgent: String,
        requestedExecutionDate: CivilDate, payments: [CreditTransfer], declaredTotals: ControlTotals? = nil
    ) {
        self.init(
            messageID: messageID, createdAt: createdAt, initiatingPartyName: initiatingParty,
            debtor: DebtorAccount(name: debtorName, accountNumber: debtorAccount, agent: FinancialAgent(reference: debtorAgent)),
            requestedExecutionDate: requestedExecutionDate, payments: payments, declaredTotals: declaredTotals)
    }
}
