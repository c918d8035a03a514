import Foundation
import GRDB
import Models
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
                    "command_id", "reversals",
                ])
            // Batches from before reversals carried none.
            #expect(try Int.fetchAll(db, sql: "SELECT reversals FROM batches ORDER BY seq") == [0, 0])
            let rows = try Row.fetchAll(db, sql: "SELECT batch_id, settled, failed FROM batch_tallies ORDER BY batch_id")
            #expect(rows.map { $0["batch_id"] as String } == ["B000001", "B000002"])
            #expect(rows.map { $0["settled"] as Int } == [9_990, 0])
            #expect(rows.map { $0["failed"] as Int } == [10, 0])
            #expect(try Data.fetchAll(db, sql: "SELECT content FROM batch_files ORDER BY batch_id") == [file, file])
            #expect(try Int.fetchOne(db, sql: "SELECT total_fen FROM batches WHERE id = 'B000002'") == 123_456_789)
        }
    }
}

/// `payment.list`: only the filters given, in approval order, a page of one state on one
/// channel read straight from `payments_state_seq`.
@Suite("Payment list")
struct PaymentListTests {
    @Test func filtersAndOrder() throws {
        let f = try EngineFixture()
        let merchants = (1...5).map { String(format: "91411002MA00000%02dX", $0) }
        for (k, m) in merchants.enumerated() where k != 1 {
            try f.verified(m, name: "商户\(k)", account: "62220000000000\(k)")
        }
        try f.merchant(merchants[1], name: "商户1")  // no verified account: held
        try f.fund(10_000_000)
        for (k, m) in merchants.prefix(4).enumerated() { try f.approve("pay-\(k)", uscc: m) }
        #expect(try f.batch() != nil)
        try f.approve("pay-4", uscc: merchants[4])  // after the batch: ready
        let queries = PaymentsQueries(database: f.database.db, engine: f.engine)
        func ids(_ request: JSONObject) throws -> [String] {
            var r = request
            r["op"] = r["op"] ?? "payment.list"
            return try queries.respond(.object(r))?["items"]?.arrayValue?.compactMap { $0["payment_id"]?.stringValue } ?? []
        }
        #expect(try ids(["state": "instructed", "channel": "treasury"]) == ["pay-0", "pay-2", "pay-3"])
        #expect(try ids(["state": "instructed", "channel": "treasury", "max": 2]) == ["pay-0", "pay-2"])
        #expect(try ids(["state": "instructed", "channel": "lessor"]) == [])
        #expect(try ids(["state": "ready"]) == ["pay-4"])
        #expect(try ids(["op": "holds"]) == ["pay-1"])
        #expect(try ids(["channel": "treasury"]) == ["pay-0", "pay-1", "pay-2", "pay-3", "pay-4"])
        #expect(try ids([:]) == ["pay-0", "pay-1", "pay-2", "pay-3", "pay-4"])
    }

    /// A page of one state on one channel is an index range already in approval order: no
    /// scan of the table, no sort.
    @Test func aStateAndChannelPageReadsOneIndexRange() throws {
        let database = try PaymentsDatabase(stateDir: nil)
        let (sql, arguments) = PaymentsQueries.listSQL(state: "instructed", channel: "lessor", limit: 1_000)
        let plan = try database.db.writer.read { db in
            try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql, arguments: arguments).map { $0["detail"] as String }
        }
        #expect(plan.contains { $0.contains("USING INDEX payments_state_seq") }, "\(plan)")
        #expect(!plan.contains { $0.contains("TEMP B-TREE") || $0.hasPrefix("SCAN") }, "\(plan)")
    }
}
