import Foundation
import GRDB
import Logging
import Models
import Policy
import Storage
import Synchronization

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

    /// At most this many merchants are evaluated again per tick (one transaction): a window that
    /// closes on many waiting entitlements is worked off over several ticks, so the node's loop
    /// keeps answering intake, publishing and sending heartbeats (and systemd's watchdog) meanwhile.
    static let maxPerTick = 500

    /// Per policy, the last merchant swept in the pass under way (the next tick goes on after it).
    private let cursors = Mutex<[String: String]>([:])

    /// Evaluates again up to ``maxPerTick`` merchants still waiting for an application under a
    /// policy whose window has closed; returns how many. A policy counts as swept only when a
    /// pass over it has finished and its transaction committed.
    @discardableResult
    public func run() throws -> Int {
        let policies = due()
        guard !policies.isEmpty else { return 0 }
        var looked = 0
        try database.writer.write { db in
            var budget = Self.maxPerTick
            var finished: [String] = []
            var reached: [String: String] = [:]
            for p in policies where budget > 0 {
                let id = p.document.id
                let after = cursors.withLock { $0[id] } ?? ""
                let stale = try String.fetchAll(
                    db,
                    sql: """
                        SELECT DISTINCT e.uscc FROM entitlements e
                        WHERE e.policy_id = ? AND e.state = 'incomplete' AND e.uscc > ?
                          AND NOT EXISTS (SELECT 1 FROM applications a WHERE a.policy_id = e.policy_id AND a.uscc = e.uscc)
                        ORDER BY e.uscc LIMIT ?
                        """, arguments: [id, after, budget])
                for uscc in stale {
                    guard let profile = try MatcherEngine.profile(uscc: uscc, db) else { continue }
                    try engine.evaluate(uscc: uscc, profile: profile, db: db, only: [p])
                }
                if stale.count < budget { finished.append(id) } else if let last = stale.last { reached[id] = last }
                budget -= stale.count
                looked += stale.count
                if !stale.isEmpty {
                    engine.logger.info(
                        "application window closed: waiting entitlements evaluated again",
                        metadata: ["policy": "\(id)", "entitlements": "\(stale.count)"])
                }
            }
            let (done, next) = (finished, reached)
            db.afterNextTransaction(onCommit: { [self] _ in
                cursors.withLock { c in
                    for (k, v) in next { c[k] = v }
                    for k in done { c[k] = nil }
                }
                engine.cache.swept(done)
            })
        }
        return looked
    }
}
