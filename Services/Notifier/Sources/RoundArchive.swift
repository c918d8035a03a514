import Foundation
import GRDB
import Models
import Storage

#if canImport(Glibc)
    import Glibc
#endif

/// The record of each disclosure round (公示), kept after the board has moved on: the board is
/// rewritten as entitlements change and takes a row down `board-retention-days` after its round
/// closed, so what was disclosed could not be shown later. When a round closes the notifier
/// writes `<reports-dir>/disclosures/<round id>.csv` — every entitlement of the round as the board
/// showed it (the merchant's name and USCC masked as there, the programme, the amount, the
/// district, the round's dates) with its outcome at the close (无异议, 异议不成立, 异议成立,
/// 有异议待处理) — and `<round id>.csv.sha256` (`sha256sum` format) beside it. Written once,
/// through a temp file, fsync and rename; the round is marked archived in the same database.
enum RoundArchive {
    /// The folder under `reports-dir`.
    static let folder = "disclosures"

    /// Archives every closed round not archived yet; returns their ids.
    static func archiveClosed(
        database: ServiceDatabase, reportsDirectory: String, districts: DistrictNames, now: String
    ) throws -> [String] {
        let rounds = try database.writer.read { db in
            try String.fetchAll(db, sql: "SELECT id FROM rounds WHERE state = 'closed' AND archived_at IS NULL ORDER BY id LIMIT 20")
        }
        guard !rounds.isEmpty else { return [] }
        let dir = (reportsDirectory as NSString).appendingPathComponent(folder)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for round in rounds {
            var csv: [UInt8] = [0xEF, 0xBB, 0xBF]
            try database.writer.read { db in
                let titles = Dictionary(
                    try Row.fetchAll(db, sql: "SELECT policy_id, title FROM programmes").map {
                        ($0["policy_id"] as String, $0["title"] as String)
                    },
                    uniquingKeysWith: { a, _ in a })
                csv += Array(BoardSite.csvHeader(BoardField.allCases).utf8)
                let cursor = try Row.fetchCursor(
                    db, sql: "\(BoardRow.selectSQL) WHERE e.round_id = ? ORDER BY e.id", arguments: [round])
                while let r = try cursor.next() {
                    // What the board showed, without the payment column: a round's record is of
                    // its disclosure.
                    guard var row = BoardRow(r, districts: districts) else { continue }
                    row.paidFen = nil
                    csv += Array(BoardSite.csvRow(BoardSite.PublicRow(row, titles: titles), BoardField.allCases).utf8)
                }
            }
            let name = "\(round).csv"
            let path = (dir as NSString).appendingPathComponent(name)
            try writeOnce(csv, to: path)
            try writeOnce(Array("\(SHA256.hash(csv).hexString)  \(name)\n".utf8), to: path + ".sha256")
            try database.writer.write { db in
                try db.execute(sql: "UPDATE rounds SET archived_at = ? WHERE id = ?", arguments: [now, round])
            }
        }
        return rounds
    }

    /// Temp file, fsync, rename over `path`, fsync of the folder.
    static func writeOnce(_ bytes: [UInt8], to path: String) throws {
        let temp = path + ".tmp-" + BoardFiles.randomSuffix()
        try BoardFiles.writeSynced(bytes, to: temp)
        guard rename(temp, path) == 0 else {
            let e = errno
            unlink(temp)
            throw BoardWriteError(path: path, operation: "rename", errno: e)
        }
        let dfd = open((path as NSString).deletingLastPathComponent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            _ = fsync(dfd)
            close(dfd)
        }
    }
}

extension BoardRow {
    /// The columns `init(_:districts:)` reads: an entitlement joined with its round.
    static let selectSQL = """
        SELECT e.id, e.round_id, e.policy_id, e.name, e.public_name, e.kind, e.uscc, e.amount_fen, e.board_status,
            e.district, e.paid_fen, r.opened_on, r.closes_on
        FROM entitlements e JOIN rounds r ON r.id = e.round_id
        """

    /// A board row from a `selectSQL` row; nil when the round's dates do not parse.
    init?(_ r: Row, districts: DistrictNames) {
        guard let opened = CivilDate.parse(r["opened_on"]), let closes = CivilDate.parse(r["closes_on"]) else { return nil }
        self.init(
            entitlementID: r["id"], roundID: r["round_id"], programmeID: r["policy_id"],
            merchantName: (r["public_name"] as String?) ?? r["name"] ?? "",
            // Masked whole only when the registry gave no public name to show.
            merchantIsPerson: (r["public_name"] as String?) == nil && (r["kind"] as String?) == "individual",
            uscc: r["uscc"], amountFen: r["amount_fen"], status: r["board_status"] ?? "公示中", district: r["district"] ?? "",
            openedOn: opened, closesOn: closes, paidFen: r["paid_fen"], districtName: districts.name(r["district"] ?? ""))
    }
}
