import Foundation
import GRDB
import Storage
import Testing

@testable import Payments

/// A payments database written before `payments-service-v11-batch-files` keeps each batch's
/// file and its counts of settled and failed lines, each now in a table of its own.
@Suite("Payments database migrations")
struct PaymentsMigrationTests {
    @Test func batchTalliesMoveOutOfTheFileRow() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("payments-migration-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/payments.sqlite"
        // The database as the migrations before the tallies left it, with two batches.
        let old = try DatabaseQueue(path: path)
        var before = DatabaseMigrator()
        BusSchema.register(&before)
        PaymentsSchema.register(&before)
        PaymentsDatabase.migrations(&before)
        try before.migrate(old, upTo: "payments-service-v10-unwritten")
        let file = Data(String(repeating: "<CdtTrfTxInf>…</CdtTrfTxInf>\n", count: 20_000).utf8)
        try old.write { db in
            for (id, seq, settled, failed) in [("B000001", 1, 9_990, 10), ("B000002", 2, 0, 0)] {
                try db.execute(
                    sql: """
                        INSERT INTO batches(id, seq, channel, file_name, content, count, total_fen, created_at, written, settled, failed, sha256)
                        VALUES (?, ?, 'treasury', ?, ?, 10000, 123456789, '2022-05-01T09:00:00.000+08:00', 1, ?, ?, 'abc')
                        """,
                    arguments: [id, seq, "BANGFU-\(id).xml", file, settled, failed])
            }
        }
        try old.close()

        let database = try PaymentsDatabase(stateDir: dir)
        try database.db.writer.read { db in
            let columns = try db.columns(in: "batches").map(\.name)
            #expect(
                columns == [
                    "id", "seq", "channel", "file_name", "count", "total_fen", "created_at", "written", "sha256", "audit_seq", "refused",
                    "command_id",
                ])
            let rows = try Row.fetchAll(db, sql: "SELECT batch_id, settled, failed FROM batch_tallies ORDER BY batch_id")
            #expect(rows.map { $0["batch_id"] as String } == ["B000001", "B000002"])
            #expect(rows.map { $0["settled"] as Int } == [9_990, 0])
            #expect(rows.map { $0["failed"] as Int } == [10, 0])
            #expect(try Data.fetchAll(db, sql: "SELECT content FROM batch_files ORDER BY batch_id") == [file, file])
            #expect(try Int.fetchOne(db, sql: "SELECT total_fen FROM batches WHERE id = 'B000002'") == 123_456_789)
        }
    }
}
