import Foundation
import GRDB
import Logging
import Models
import Policy
import Storage

/// When a programme's application window closes (24:00 China Standard Time of its last day, on
/// the matcher's clock), an entitlement still `incomplete` for a merchant who never applied can
/// no longer come to anything (超过时限不再受理): it is evaluated again and so revoked, with the
/// reason, instead of asking for an application that would be refused. Nothing else triggers
/// that evaluation — no fact arrives when a deadline passes — so the node's loop asks for a
/// sweep on every tick; one that finds nothing due costs a clock read.
public final class DeadlineSweep: Sendable {
    let database: ServiceDatabase
    let engine: MatcherEngine

    init(database: ServiceDatabase, engine: MatcherEngine) {
        self.database = database
        self.engine = engine
    }

    /// The live policies whose window has closed and under which an entitlement may still be
    /// waiting for an application (the engine marks them as it evaluates; a simulated clock set
    /// back into a window can make new ones, and marks them again).
    func due() -> [CompiledPolicy] {
        engine.cache.policies.filter { p in
            engine.applicationsClosed(p.document) && engine.cache.mayAwaitApplication(p.document.id)
        }
    }

    /// Sweeps every policy whose window has closed; returns how many entitlements were looked at.
    @discardableResult
    public func run() throws -> Int {
        let policies = due()
        guard !policies.isEmpty else { return 0 }
        var looked = 0
        try database.writer.write { db in
            for p in policies {
                let stale = try Row.fetchAll(
                    db,
                    sql: """
                        SELECT DISTINCT e.uscc FROM entitlements e
                        WHERE e.policy_id = ? AND e.state = 'incomplete'
                          AND NOT EXISTS (SELECT 1 FROM applications a WHERE a.policy_id = e.policy_id AND a.uscc = e.uscc)
                        ORDER BY e.uscc
                        """, arguments: [p.document.id]
                ).map { $0["uscc"] as String }
                for uscc in stale {
                    guard let profile = try MatcherEngine.profile(uscc: uscc, db) else { continue }
                    try engine.evaluate(uscc: uscc, profile: profile, db: db, only: [p])
                }
                looked += stale.count
                if !stale.isEmpty {
                    engine.logger.info(
                        "application window closed: waiting entitlements evaluated again",
                        metadata: ["policy": "\(p.document.id)", "entitlements": "\(stale.count)"])
                }
            }
            engine.cache.swept(policies.map(\.document.id))
        }
        return looked
    }
}
