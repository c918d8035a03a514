import Foundation
import GRDB
import Models
import Storage

#if canImport(Glibc)
    import Glibc
#endif

/// The record of each disclosure round (公示), kept after the board has moved on: the board is
/// rewritten as entitlements change and takes a row down `board-retention-days` after its round
/// closed, so what was disclosed could not be shown later. When a round closes, each of its
/// entitlements' amount and outcome (无异议, 异议不成立, 异议成立, 有异议待处理, …) is saved in
/// `round_outcomes` in the same transaction (`snapshot`); after that commit the notifier writes
/// `<reports-dir>/disclosures/<round id>.csv` — every entitlement of the round with the board's
/// columns (`board-fields`, the merchant's name and USCC masked as there) and that outcome — and
/// `<round id>.csv.sha256` (`sha256sum` format) beside it, then marks the round archived. A file
/// already there (a crash before that mark) is never replaced: the round is only marked.
enum RoundArchive {
    /// The folder under `reports-dir`.
    static let folder = "disclosures"

    /// Saves what the round disclosed and its outcome at the close: in `closeDue`'s transaction.
    static func snapshot(round: String, _ db: Database) throws {
        try db.execute(
            sql: """
                INSERT INTO round_outcomes(round_id, entitlement_id, amount_fen, status)
                SELECT round_id, id, amount_fen, COALESCE(board_status, '公示中') FROM entitlements WHERE round_id = ?
                ON CONFLICT DO NOTHING
                """, arguments: [round])
    }

    /// Archives the closed rounds not archived yet (a few per call); returns their ids.
    static func archiveClosed(
        database: ServiceDatabase, reportsDirectory: String, board: BoardConfig, districts: DistrictNames, now: String
    ) throws -> [String] {
        let rounds = try database.writer.read { db in
            try String.fetchAll(db, sql: "SELECT id FROM rounds WHERE state = 'closed' AND archived_at IS NULL ORDER BY id LIMIT 5")
        }
        guard !rounds.isEmpty else { return [] }
        let dir = (reportsDirectory as NSString).appendingPathComponent(folder)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        // A record is of the disclosure: the payment column has nothing to say there.
        let fields = board.fields.filter { $0 != .payment }
        for round in rounds {
            let name = "\(round).csv"
            let path = (dir as NSString).appendingPathComponent(name)
            if !FileManager.default.fileExists(atPath: path) {
                let temp = path + ".tmp-" + BoardFiles.randomSuffix()
                let out = try BoardFiles.SyncedWriter(path: temp)
                var hash = SHA256()
                func put(_ bytes: [UInt8]) {
                    hash.update(bytes)
                    out.append(bytes)
                }
                put([0xEF, 0xBB, 0xBF])
                try database.writer.read { db in
                    let titles = Dictionary(
                        try Row.fetchAll(db, sql: "SELECT policy_id, title FROM programmes").map {
                            ($0["policy_id"] as String, $0["title"] as String)
                        }, uniquingKeysWith: { a, _ in a })
                    put(Array(BoardSite.csvHeader(fields).utf8))
                    let cursor = try Row.fetchCursor(
                        db,
                        sql: """
                            SELECT e.id, o.round_id, e.policy_id, e.name, e.public_name, e.kind, e.uscc, o.amount_fen,
                                o.status AS board_status, e.district, NULL AS paid_fen, r.opened_on, r.closes_on
                            FROM round_outcomes o JOIN entitlements e ON e.id = o.entitlement_id JOIN rounds r ON r.id = o.round_id
                            WHERE o.round_id = ? ORDER BY o.entitlement_id
                            """, arguments: [round])
                    while let r = try cursor.next() {
                        guard let row = BoardRow(r, districts: districts) else { continue }
                        put(Array(BoardSite.csvRow(BoardSite.PublicRow(row, titles: titles), fields).utf8))
                    }
                }
                try out.finish()
                try publish(temp, as: path)
                let digest = hash.finalize().hexString
                try writeOnce(Array("\(digest)  \(name)\n".utf8), to: path + ".sha256")
            } else if !FileManager.default.fileExists(atPath: path + ".sha256") {
                let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
                try writeOnce(Array("\(SHA256.hash(bytes).hexString)  \(name)\n".utf8), to: path + ".sha256")
            }
            try database.writer.write { db in
                try db.execute(sql: "UPDATE rounds SET archived_at = ? WHERE id = ?", arguments: [now, round])
            }
        }
        return rounds
    }

    /// Writes `bytes` into `path` through a temp file, unless `path` exists already.
    static func writeOnce(_ bytes: [UInt8], to path: String) throws {
        guard !FileManager.default.fileExists(atPath: path) else { return }
        let temp = path + ".tmp-" + BoardFiles.randomSuffix()
        try BoardFiles.writeSynced(bytes, to: temp)
        try publish(temp, as: path)
    }

    /// Renames the fsynced `temp` to `path` (never over an existing file) and fsyncs the folder.
    static func publish(_ temp: String, as path: String) throws {
        // link(2) fails if `path` exists: a record, once written, is never replaced.
        let linked = link(temp, path)
        let e = errno
        unlink(temp)
        guard linked == 0 || e == EEXIST else { throw BoardWriteError(path: path, operation: "link", errno: e) }
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
