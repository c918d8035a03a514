import Bus
import Foundation
import GRDB
import Models

/// The operator queries every service answers on its replay socket (see docs/protocol.md):
/// `status`, `quarantine.list`, `quarantine.show`. A service adds its own through `extra`.
public struct StandardQueries: QueryResponder {
    public let service: String
    public let database: ServiceDatabase
    /// Live figures from the running service (node counters, subscriber lag, clock mode).
    public let live: @Sendable () -> JSONObject
    public let extra: (@Sendable (JSON) throws -> JSON?)?

    public init(
        service: String, database: ServiceDatabase, live: @escaping @Sendable () -> JSONObject,
        extra: (@Sendable (JSON) throws -> JSON?)? = nil
    ) {
        self.service = service
        self.database = database
        self.live = live
        self.extra = extra
    }

    public func respond(to request: JSON) throws -> JSON? {
        switch request["op"]?.stringValue {
        case "status":
            var o = JSONObject()
            o["op"] = "status"
            o["service"] = .string(service)
            o["ready"] = true
            try database.writer.read { db in
                o["last"] = .string(String(try Outbox.lastSequence(db)))
                o["intake_events"] = .int(Int64(try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM bus_intake") ?? 0))
                o["quarantined"] = .int(Int64(try Quarantine.count(db)))
                var byCode = JSONObject()
                for (k, v) in try Quarantine.countsByCode(db).sorted(by: { $0.key < $1.key }) { byCode[k] = .int(Int64(v)) }
                o["quarantined_by_code"] = .object(byCode)
                var cursors = JSONObject()
                for (k, v) in try InboxCursor.all(db).sorted(by: { $0.key < $1.key }) { cursors[k] = .string(String(v)) }
                o["inbox"] = .object(cursors)
            }
            for (k, v) in live().members { o[k] = v }
            return .object(o)
        case "quarantine.list":
            let after = Int64(request["after"]?.stringValue ?? "") ?? request["after"]?.intValue ?? 0
            let max = Int(request["max"]?.intValue ?? 100)
            let items = try database.writer.read { db in
                try Quarantine.list(db, after: after, max: Swift.min(Swift.max(max, 0), 1_000), code: request["code"]?.stringValue)
            }
            return ["op": "quarantine", "items": .array(items)]
        case "quarantine.show":
            guard let id = Int64(request["id"]?.stringValue ?? "") ?? request["id"]?.intValue else {
                return ["op": "error", "code": "invalid_request", "message": "id is required"]
            }
            guard let item = try database.writer.read({ db in try Quarantine.show(db, id: id) }) else {
                return ["op": "error", "code": "not_found", "message": .string("no quarantined item \(id)")]
            }
            return ["op": "quarantine.item", "item": item]
        default:
            return try extra?(request)
        }
    }
}
