import Foundation
import Models

/// One line to write into a synthetic return, final or pending.
enum WrittenLine {
    case final(ReturnLine)
    case pending(PendingLine)

    var endToEndID: String {
        switch self {
        case .final(let l): l.endToEndID
        case .pending(let l): l.endToEndID
        }
    }

    var amountFen: Int64? {
        switch self {
        case .final(let l): l.amountFen
        case .pending(let l): l.amountFen
        }
    }

    static func all(_ lines: [ReturnLine], _ pending: [PendingLine]) -> [WrittenLine] {
        lines.map { .final($0) } + pending.map { .pending($0) }
    }
}

/// Writes `pain.002.001.10` payment status reports, for tests and the demo's synthetic bank.
public enum Pain002 {
    public static let namespace = "urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"

    /// A status report on `originalMessageID` with one `TxInfAndSts` per line (then one per
    /// pending line): settled → `ACCC`, failed → `RJCT` with `StsRsnInf/Rsn/Cd` and `AddtlInf`
    /// (cut to 105 characters), pending → its status code. With `declareTotals`, `OrgnlNbOfTxs`
    /// and `OrgnlCtrlSum` (the latter only when every line has an amount) are written, or
    /// `totalsOverride` instead (to make a report whose totals disagree).
    public static func xml(
        for originalMessageID: String, lines: [ReturnLine], pending: [PendingLine] = [], declareTotals: Bool = true,
        totalsOverride: ControlTotals? = nil, messageID: String? = nil, createdAt: Date = Date(timeIntervalSince1970: 1_640_966_400)
    ) -> String {
        let all = WrittenLine.all(lines, pending)
        var totals: (count: Int, fen: Int64?)?
        if let o = totalsOverride {
            totals = (o.count, o.totalFen)
        } else if declareTotals {
            totals = (all.count, ReturnFile(messageID: "", kind: .pain002, lines: lines, pendingLines: pending).linesTotalFen)
        }
        return render(originalMessageID, all, totals, messageID ?? "STS-" + originalMessageID, createdAt)
    }

    /// The same, with the totals given directly: `nil` declares the lines' own count and total.
    public static func xml(
        originalMessageID: String, messageID: String, lines: [ReturnLine], pending: [PendingLine] = [], declaredCount: Int? = nil,
        declaredTotalFen: Int64? = nil, createdAt: Date = Date(timeIntervalSince1970: 1_640_966_400)
    ) -> String {
        let actual = ReturnFile(messageID: "", kind: .pain002, lines: lines, pendingLines: pending)
        let totals = (declaredCount ?? actual.lineCount, declaredTotalFen ?? actual.linesTotalFen)
        return render(originalMessageID, WrittenLine.all(lines, pending), totals, messageID, createdAt)
    }

    static func render(
        _ originalMessageID: String, _ lines: [WrittenLine], _ totals: (count: Int, fen: Int64?)?, _ messageID: String, _ createdAt: Date
    ) -> String {
        var x = XMLBuilder()
        x.open("Document", ["xmlns": namespace])
        x.open("CstmrPmtStsRpt")
        x.element("GrpHdr") { x in
            x.leaf("MsgId", id(messageID))
            x.leaf("CreDtTm", Timestamp.format(createdAt))
        }
        x.element("OrgnlGrpInfAndSts") { x in
            x.leaf("OrgnlMsgId", id(originalMessageID))
            x.leaf("OrgnlMsgNmId", "pain.001.001.09")
            if let totals {
                x.leaf("OrgnlNbOfTxs", String(max(0, totals.count)))
                if let fen = totals.fen { x.leaf("OrgnlCtrlSum", YuanAmount.format(fen: max(0, fen))) }
            }
        }
        if !lines.isEmpty {
            x.open("OrgnlPmtInfAndSts")
            x.leaf("OrgnlPmtInfId", id(originalMessageID))
            for (k, line) in lines.enumerated() {
                x.open("TxInfAndSts")
                x.leaf("StsId", String(k + 1))
                x.leaf("OrgnlEndToEndId", id(line.endToEndID))
                switch line {
                case .final(let l):
                    switch l.status {
                    case .settled:
                        x.leaf("TxSts", "ACCC")
                    case .failed(let code, let reason):
                        x.leaf("TxSts", "RJCT")
                        x.element("StsRsnInf") { x in
                            x.element("Rsn") { $0.leaf("Cd", code4(code)) }
                            if let reason, !reason.isEmpty { x.leaf("AddtlInf", prefixScalars(xmlSafeLine(reason), 105)) }
                        }
                    }
                case .pending(let p):
                    let code = code4(p.statusCode)
                    x.leaf("TxSts", ["ACCC", "ACSC", "RJCT"].contains(code) ? "PDNG" : code)
                }
                if let fen = line.amountFen {
                    x.element("OrgnlTxRef") { x in
                        x.element("Amt") { $0.leaf("InstdAmt", YuanAmount.format(fen: max(0, fen)), ["Ccy": Pain001.currency]) }
                    }
                }
                x.close()
            }
            x.close()
        }
        x.close()
        x.close()
        return x.text
    }

    /// A Max35Text-safe identifier.
    static func id(_ s: String) -> String {
        let t = prefixScalars(xmlSafeLine(s), 35)
        return t.isEmpty ? "NOTPROVIDED" : t
    }

    /// An ExternalCode of at most 4 characters.
    static func code4(_ s: String) -> String {
        let t = prefixScalars(xmlSafeLine(s), 4)
        return t.isEmpty ? "NARR" : t
    }
}

/// Writes `camt.054.001.08` debit/credit notifications, for tests and the demo's synthetic bank.
public enum Camt054 {
    public static let namespace = "urn:iso:std:iso:20022:tech:xsd:camt.054.001.08"

    /// One `Ntry` per line on `accountNumber` (then one per pending line): settled → a booked
    /// debit (`DBIT`, `BOOK`); failed → a booked credit (`CRDT`) carrying `RtrInf/Rsn/Cd` (the
    /// money came back); pending → a `DBIT` with its status code (`PDNG`, `INFO`). Every entry has
    /// `NtryDtls/TxDtls/Refs/EndToEndId` and `Amt` (0.00 when the line has none). With
    /// `declareTotals`, `TxsSummry/TtlNtries` (`NbOfNtries`, `Sum`) is written, or
    /// `totalsOverride` instead.
    public static func xml(
        messageID: String, accountNumber: String, lines: [ReturnLine], pending: [PendingLine] = [], declareTotals: Bool = true,
        totalsOverride: ControlTotals? = nil, createdAt: Date = Date(timeIntervalSince1970: 1_640_966_400)
    ) -> String {
        let all = WrittenLine.all(lines, pending)
        var x = XMLBuilder()
        let amount = { (fen: Int64?) in YuanAmount.format(fen: max(0, fen ?? 0)) }
        x.open("Document", ["xmlns": namespace])
        x.open("BkToCstmrDbtCdtNtfctn")
        x.element("GrpHdr") { x in
            x.leaf("MsgId", Pain002.id(messageID))
            x.leaf("CreDtTm", Timestamp.format(createdAt))
        }
        x.open("Ntfctn")
        x.leaf("Id", Pain002.id(messageID))
        x.leaf("CreDtTm", Timestamp.format(createdAt))
        x.element("Acct") { x in
            x.element("Id") { x in x.element("Othr") { $0.leaf("Id", prefixScalars(xmlSafeLine(accountNumber), 34)) } }
        }
        if totalsOverride != nil || declareTotals {
            let count = totalsOverride?.count ?? all.count
            let total = totalsOverride?.totalFen ?? YuanAmount.sum(all.map { max(0, $0.amountFen ?? 0) }) ?? 0
            x.element("TxsSummry") { x in
                x.element("TtlNtries") { x in
                    x.leaf("NbOfNtries", String(max(0, count)))
                    x.leaf("Sum", amount(total))
                }
            }
        }
        for line in all {
            var failure: (code: String, reason: String?)?
            var status = "BOOK"
            switch line {
            case .final(let l): if case .failed(let code, let reason) = l.status { failure = (code, reason) }
            case .pending(let p): status = p.statusCode == "BOOK" ? "PDNG" : Pain002.code4(p.statusCode)
            }
            x.open("Ntry")
            x.leaf("Amt", amount(line.amountFen), ["Ccy": Pain001.currency])
            x.leaf("CdtDbtInd", failure == nil ? "DBIT" : "CRDT")
            x.element("Sts") { $0.leaf("Cd", status) }
            x.element("BkTxCd") { x in
                x.element("Domn") { x in
                    x.leaf("Cd", "PMNT")
                    x.element("Fmly") { x in
                        x.leaf("Cd", "ICDT")
                        x.leaf("SubFmlyCd", failure == nil ? "DMCT" : "RRTN")
                    }
                }
            }
            x.element("NtryDtls") { x in
                x.element("TxDtls") { x in
                    x.element("Refs") { $0.leaf("EndToEndId", Pain002.id(line.endToEndID)) }
                    x.leaf("Amt", amount(line.amountFen), ["Ccy": Pain001.currency])
                    if let failure {
                        x.element("RtrInf") { x in
                            x.element("Rsn") { $0.leaf("Cd", Pain002.code4(failure.code)) }
                            if let reason = failure.reason, !reason.isEmpty {
                                x.leaf("AddtlInf", prefixScalars(xmlSafeLine(reason), 105))
                            }
                        }
                    }
                }
            }
            x.close()
        }
        x.close()
        x.close()
        x.close()
        return x.text
    }
}

extension ReturnStatus {
    public var isFailed: Bool {
        if case .failed = self { return true }
        return false
    }
}
