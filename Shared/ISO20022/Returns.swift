import Foundation

/// What the bank says happened to one payment.
public enum ReturnStatus: Sendable, Hashable {
    /// The money reached the creditor (pain.002 `ACCC`/`ACSC`, camt.054 booked entry).
    case settled
    /// Rejected or returned, with the ISO reason code (e.g. `AC04` closed account) and any text.
    case failed(reasonCode: String, reason: String?)
}

/// A line whose status is not final yet (e.g. pain.002 `ACTC`/`ACSP`/`PDNG`, camt.054 `PDNG`):
/// nothing to apply, but it counts towards the file's declared totals.
public struct PendingLine: Sendable, Hashable {
    public var endToEndID: String
    /// The ISO status code as the bank wrote it.
    public var statusCode: String
    public var amountFen: Int64?

    public init(endToEndID: String, statusCode: String, amountFen: Int64? = nil) {
        self.endToEndID = endToEndID
        self.statusCode = statusCode
        self.amountFen = amountFen
    }
}

/// One line of a return file: a payment, by its `EndToEndId`.
public struct ReturnLine: Sendable, Hashable {
    public var endToEndID: String
    public var status: ReturnStatus
    /// The amount the bank reports for the line, when it reports one.
    public var amountFen: Int64?

    public init(endToEndID: String, status: ReturnStatus, amountFen: Int64? = nil) {
        self.endToEndID = endToEndID
        self.status = status
        self.amountFen = amountFen
    }
}

/// A parsed return: a `pain.002` payment status report or a `camt.054` debit/credit notification.
public struct ReturnFile: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable, Codable {
        case pain002 = "pain.002"
        case camt054 = "camt.054"
    }

    /// The return's own `GrpHdr/MsgId`.
    public var messageID: String
    public var kind: Kind
    /// pain.002: `OrgnlGrpInfAndSts/OrgnlMsgId`, the batch the report is about.
    public var originalMessageID: String?
    /// pain.002: `OrgnlGrpInfAndSts/GrpSts` (e.g. `RJCT` for a wholly rejected batch, which may
    /// come without any transaction lines), with its first reason code.
    public var groupStatus: String?
    public var groupReasonCode: String?
    /// pain.002: `OrgnlNbOfTxs`; camt.054: `TxsSummry/TtlNtries/NbOfNtries`.
    public var declaredCount: Int?
    /// pain.002: `OrgnlCtrlSum`; camt.054: `TxsSummry/TtlNtries/Sum`.
    public var declaredTotalFen: Int64?
    /// The lines with a final status (settled or failed), in document order.
    public var lines: [ReturnLine]
    /// The lines whose status is not final, in document order.
    public var pendingLines: [PendingLine]

    public init(
        messageID: String, kind: Kind, originalMessageID: String? = nil, groupStatus: String? = nil,
        groupReasonCode: String? = nil, declaredCount: Int? = nil, declaredTotalFen: Int64? = nil, lines: [ReturnLine],
        pendingLines: [PendingLine] = []
    ) {
        self.messageID = messageID
        self.kind = kind
        self.originalMessageID = originalMessageID
        self.groupStatus = groupStatus
        self.groupReasonCode = groupReasonCode
        self.declaredCount = declaredCount
        self.declaredTotalFen = declaredTotalFen
        self.lines = lines
        self.pendingLines = pendingLines
    }

    /// A pain.002 that rejects the whole original batch at group level without any
    /// transaction line (`GrpSts` RJCT, no `TxInfAndSts`).
    public var isGroupRejection: Bool { kind == .pain002 && groupStatus == "RJCT" && lineCount == 0 }

    /// The number of lines, final and pending.
    public var lineCount: Int { lines.count + pendingLines.count }

    /// The sum of all lines' amounts (final and pending), or `nil` when a line has no amount (or
    /// on overflow).
    public var linesTotalFen: Int64? {
        var amounts: [Int64] = []
        for a in lines.map(\.amountFen) + pendingLines.map(\.amountFen) {
            guard let a else { return nil }
            amounts.append(a)
        }
        return YuanAmount.sum(amounts)
    }

    /// Declared totals, where present, must equal the count and sum of all lines (final and
    /// pending); otherwise
    /// `.totalsMismatch` (the service then quarantines the file). A declared total cannot be
    /// checked when some line has no amount, which is a mismatch too: the file cannot be trusted.
    ///
    /// camt.054 counts entries (`Ntry`); Bangfu reads one line per transaction detail, so a
    /// batch-booked entry with several details disagrees here and is quarantined for a person.
    ///
    /// A pain.002 rejecting a whole batch at group level (`GrpSts` RJCT) with no transaction
    /// lines declares the original batch's count and sum, not its own lines': those are checked
    /// against the batch by whoever applies the report.
    public func checkTotals() throws(ReturnError) {
        if isGroupRejection { return }
        let total = linesTotalFen
        let countOK = declaredCount.map { $0 == lineCount } ?? true
        let totalOK = declaredTotalFen.map { $0 == total } ?? true
        guard countOK, totalOK else {
            throw .totalsMismatch(
                declaredCount: declaredCount, actualCount: lineCount, declaredTotalFen: declaredTotalFen, actualTotalFen: total)
        }
    }
}

/// Why a return (or a batch read back) could not be read. Messages are stable and user-facing.
public enum ReturnError: Error, Sendable, Equatable, CustomStringConvertible {
    case unreadable(path: String, message: String)
    case malformedXML(message: String, line: Int)
    /// Well-formed, but neither a pain.002 nor a camt.054 (the name of the document's body).
    case unsupportedDocument(String)
    case missingElement(String)
    case invalidValue(field: String, text: String)
    case invalidAmount(field: String, AmountError)
    case unsupportedCurrency(String)
    case totalsMismatch(declaredCount: Int?, actualCount: Int, declaredTotalFen: Int64?, actualTotalFen: Int64?)

    public var description: String {
        switch self {
        case .unreadable(let path, let message): "cannot read \(path): \(message)"
        case .malformedXML(let message, let line): "not well-formed XML (line \(line)): \(message)"
        case .unsupportedDocument(let name): "not a pain.002 or camt.054 document (found <\(name.prefix(60))>)"
        case .missingElement(let path): "missing element \(path)"
        case .invalidValue(let field, let text): "\(field): invalid value \"\(text.prefix(40))\""
        case .invalidAmount(let field, let error): "\(field): \(error)"
        case .unsupportedCurrency(let ccy): "currency \(ccy.prefix(10)) is not CNY"
        case .totalsMismatch(let dc, let ac, let dt, let at):
            "totals disagree: declared \(dc.map(String.init) ?? "-") lines, \(dt.map { YuanAmount.format(fen: $0) } ?? "-") yuan; "
                + "found \(ac) lines, \(at.map { YuanAmount.format(fen: $0) } ?? "unknown") yuan"
        }
    }
}

/// Reads bank returns: `pain.002` status reports and `camt.054` notifications, any version,
/// matching elements on local names.
public enum ReturnParser {
    /// Documents larger than this are refused before parsing.
    public static let maxBytes = 64 << 20

    public static func parse(data: Data) throws(ReturnError) -> ReturnFile {
        try parse(bytes: [UInt8](data))
    }

    public static func parse(_ text: String) throws(ReturnError) -> ReturnFile {
        try parse(bytes: Array(text.utf8))
    }

    public static func parse(contentsOf url: URL) throws(ReturnError) -> ReturnFile {
        let bytes: [UInt8]?
        do {
            bytes = try AtomicFile.readIfExists(url.path)
        } catch {
            throw .unreadable(path: url.path, message: error.description)
        }
        guard let bytes else { throw .unreadable(path: url.path, message: "no such file") }
        return try parse(bytes: bytes)
    }

    public static func parse(bytes: [UInt8]) throws(ReturnError) -> ReturnFile {
        let root = try tree(bytes)
        let body = root.name == "Document" ? root.children.first : root
        switch body?.name {
        case "CstmrPmtStsRpt": return try pain002(body!)
        case "BkToCstmrDbtCdtNtfctn": return try camt054(body!)
        default: throw .unsupportedDocument(body?.name ?? root.name)
        }
    }

    static func tree(_ bytes: [UInt8], maxBytes: Int = maxBytes) throws(ReturnError) -> XMLNode {
        guard bytes.count <= maxBytes else { throw .malformedXML(message: "the document is larger than \(maxBytes) bytes", line: 0) }
        do {
            return try MiniXMLParser.parse(bytes)
        } catch {
            throw .malformedXML(message: error.message, line: error.line)
        }
    }

    static func reason(_ infos: [XMLNode]) -> (code: String?, text: String?) {
        var code: String?
        var texts: [String] = []
        for info in infos {
            if code == nil { code = info.path("Rsn", "Cd")?.text ?? info.path("Rsn", "Prtry")?.text }
            texts += info.all("AddtlInf").map(\.text).filter { !$0.isEmpty }
        }
        return (code.flatMap { $0.isEmpty ? nil : $0 }, texts.isEmpty ? nil : texts.joined(separator: " "))
    }

    static func optionalAmount(_ node: XMLNode?, _ field: String) throws(ReturnError) -> Int64? {
        guard let node else { return nil }
        try Pain001.checkCurrency(node)
        return try Pain001.amount(node, field)
    }

    static func pain002(_ body: XMLNode) throws(ReturnError) -> ReturnFile {
        let group = body.child("OrgnlGrpInfAndSts")
        let declaredCount = try group?.child("OrgnlNbOfTxs").map { _ throws(ReturnError) in try Pain001.count(group!, "OrgnlNbOfTxs") }
        let declaredTotal = try group?.child("OrgnlCtrlSum").map { n throws(ReturnError) in try Pain001.amount(n, "OrgnlCtrlSum") }
        var lines: [ReturnLine] = []
        var pending: [PendingLine] = []
        for block in body.all("OrgnlPmtInfAndSts") {
            for tx in block.all("TxInfAndSts") {
                let id = try Pain001.required(tx, "OrgnlEndToEndId")
                let code = tx.child("TxSts")?.text ?? block.child("PmtInfSts")?.text ?? group?.child("GrpSts")?.text ?? ""
                let amount = try optionalAmount(tx.path("OrgnlTxRef", "Amt", "InstdAmt"), "OrgnlTxRef/Amt/InstdAmt")
                switch code {
                case "ACCC", "ACSC":
                    lines.append(ReturnLine(endToEndID: id, status: .settled, amountFen: amount))
                case "RJCT":
                    let r = reason(tx.all("StsRsnInf"))
                    let fallback = reason(block.all("StsRsnInf"))
                    let status = ReturnStatus.failed(reasonCode: r.code ?? fallback.code ?? "NARR", reason: r.text ?? fallback.text)
                    lines.append(ReturnLine(endToEndID: id, status: status, amountFen: amount))
                case "": throw .missingElement("TxInfAndSts/TxSts")
                default:
                    pending.append(PendingLine(endToEndID: id, statusCode: code, amountFen: amount))
                }
            }
        }
        return ReturnFile(
            messageID: try Pain001.required(body, "GrpHdr", "MsgId"), kind: .pain002,
            originalMessageID: group?.child("OrgnlMsgId")?.text, groupStatus: group?.child("GrpSts")?.text,
            groupReasonCode: group.flatMap { reason($0.all("StsRsnInf")).code },
            declaredCount: declaredCount, declaredTotalFen: declaredTotal, lines: lines, pendingLines: pending)
    }

    static func camt054(_ body: XMLNode) throws(ReturnError) -> ReturnFile {
        var declaredCount: Int?
        var declaredTotal: Int64?
        var lines: [ReturnLine] = []
        var pending: [PendingLine] = []
        for note in body.all("Ntfctn") {
            if let totals = note.path("TxsSummry", "TtlNtries") {
                if totals.child("NbOfNtries") != nil {
                    declaredCount = (declaredCount ?? 0) + (try Pain001.count(totals, "NbOfNtries"))
                }
                if let sum = totals.child("Sum") {
                    let (s, overflow) = (declaredTotal ?? 0).addingReportingOverflow(try Pain001.amount(sum, "TtlNtries/Sum"))
                    guard !overflow else { throw .invalidValue(field: "TtlNtries/Sum", text: sum.text) }
                    declaredTotal = s
                }
            }
            for entry in note.all("Ntry") {
                // Sts is a code in camt.054.001.02–.07 and Sts/Cd from .08 on.
                let entryStatus = entry.path("Sts", "Cd")?.text ?? entry.path("Sts", "Prtry")?.text ?? entry.child("Sts")?.text ?? ""
                let reversal = entry.child("RvslInd")?.text == "true" || entry.child("RvslInd")?.text == "1"
                let details = entry.all("NtryDtls").flatMap { $0.all("TxDtls") }
                guard !details.isEmpty else { throw .missingElement("Ntry/NtryDtls/TxDtls") }
                let entryAmount = try optionalAmount(entry.child("Amt"), "Ntry/Amt")
                for tx in details {
                    let id = try Pain001.required(tx, "Refs", "EndToEndId")
                    let node = tx.child("Amt") ?? tx.path("AmtDtls", "InstdAmt", "Amt") ?? tx.path("AmtDtls", "TxAmt", "Amt")
                    var amount = try optionalAmount(node, "TxDtls/Amt")
                    if amount == nil && details.count == 1 { amount = entryAmount }
                    if let rtr = tx.child("RtrInf") {
                        let r = reason([rtr])
                        lines.append(
                            ReturnLine(endToEndID: id, status: .failed(reasonCode: r.code ?? "NARR", reason: r.text), amountFen: amount))
                    } else if reversal {
                        lines.append(
                            ReturnLine(endToEndID: id, status: .failed(reasonCode: "RVSL", reason: "entry reversed"), amountFen: amount))
                    } else if entryStatus == "BOOK" {
                        lines.append(ReturnLine(endToEndID: id, status: .settled, amountFen: amount))
                    } else if entryStatus.isEmpty {
                        throw .missingElement("Ntry/Sts")
                    } else {
                        pending.append(PendingLine(endToEndID: id, statusCode: entryStatus, amountFen: amount))
                    }
                }
            }
        }
        return ReturnFile(
            messageID: try Pain001.required(body, "GrpHdr", "MsgId"), kind: .camt054,
            declaredCount: declaredCount, declaredTotalFen: declaredTotal, lines: lines, pendingLines: pending)
    }
}
