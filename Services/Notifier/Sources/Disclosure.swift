import Foundation
import GRDB
import Models
import Storage

/// Working days (DESIGN §5.3): Monday to Friday, minus the configured holidays, plus the
/// configured make-up working days (调休).
public struct WorkingCalendar: Sendable {
    public var holidays: Set<CivilDate>
    public var extraWorkdays: Set<CivilDate>

    public init(holidays: Set<CivilDate> = [], extraWorkdays: Set<CivilDate> = []) {
        self.holidays = holidays
        self.extraWorkdays = extraWorkdays
    }

    /// Reads a calendar file: one date per line; `YYYY-MM-DD` is a holiday, `+YYYY-MM-DD` a
    /// make-up working day; `#` starts a comment.
    public init(file: String) throws {
        self.init()
        let text = try String(contentsOfFile: file, encoding: .utf8)
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            line = line.trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            let extra = line.hasPrefix("+")
            guard let d = CivilDate.parse(extra ? String(line.dropFirst()) : line) else {
                throw ConfigProblem(
                    message: "\(file):\(n + 1): \(line) is not a date (YYYY-MM-DD, or +YYYY-MM-DD for a make-up working day)")
            }
            if extra { extraWorkdays.insert(d) } else { holidays.insert(d) }
        }
    }

    public struct ConfigProblem: Error, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    public func isWorkingDay(_ d: CivilDate) -> Bool {
        if extraWorkdays.contains(d) { return true }
        if holidays.contains(d) { return false }
        return d.weekday <= 5
    }

    /// The last day of a window of `n` working days that starts the day after `opened`
    /// (公示期 counts from the next working day).
    public func lastDay(after opened: CivilDate, workingDays n: Int) -> CivilDate {
        var d = opened
        var counted = 0
        while counted < max(n, 1) {
            d = d.adding(days: 1)
            if isWorkingDay(d) { counted += 1 }
        }
        return d
    }
}

/// The disclosure rounds (公示): proposed entitlements join the day's open round of their
/// programme; a round closes at 24:00 China Standard Time of its last working day, and then
/// every entitlement in it without a pending objection is cleared.
struct Disclosure {
    let calendar: WorkingCalendar
    let outbox: Outbox
    let clock: any WallClock

    var now: Date { clock.now() }

    /// Adds entitlements to today's round of their programme; returns (round, ids, closes).
    func enrol(_ ids: [(id: String, policy: String, workingDays: Int)], _ db: Database) throws -> [(String, [String], String)] {
        let today = ChinaTime.civilDate(of: now)
        var byRound: [String: (ids: [String], closes: String)] = [:]
        for e in ids where e.workingDays > 0 {
            let roundID = "R-\(e.policy)-\(today.description.replacingOccurrences(of: "-", with: ""))"
            var closes = try String.fetchOne(db, sql: "SELECT closes_at FROM rounds WHERE id = ?", arguments: [roundID])
            if closes == nil {
                let last = calendar.lastDay(after: today, workingDays: e.workingDays)
                let deadline = Timestamp.format(ChinaTime.endOfDay(last))
                try db.execute(
                    sql:
                        "INSERT INTO rounds(id, policy_id, opened_on, closes_on, closes_at, working_days, state) VALUES (?, ?, ?, ?, ?, ?, 'open')",
                    arguments: [roundID, e.policy, today.description, last.description, deadline, e.workingDays])
                closes = deadline
            }
            try db.execute(sql: "UPDATE entitlements SET round_id = ?, board_status = '公示中' WHERE id = ?", arguments: [roundID, e.id])
            byRound[roundID, default: ([], closes!)].ids.append(e.id)
        }
        var out: [(String, [String], String)] = []
        for (round, v) in byRound.sorted(by: { $0.key < $1.key }) {
            for start in stride(from: 0, to: v.ids.count, by: Self.maxIDsPerEvent) {
                let chunk = v.ids[start..<min(start + Self.maxIDsPerEvent, v.ids.count)]
                // Each entitlement joins a round once, so a chunk's first id names its event uniquely.
                try outbox.append(
                    db, type: "disclosure.opened", subject: round, id: "disclosure.opened/\(round)/\(chunk.first!)",
                    data: [
                        "round_id": .string(round), "entitlement_ids": .array(chunk.map { .string($0) }), "closes_at": .string(v.closes),
                    ])
            }
            out.append((round, v.ids, v.closes))
        }
        return out
    }

    /// Closes every round past its deadline: clears what has no pending objection.
    func closeDue(_ db: Database) throws -> [String] {
        let nowText = Timestamp.format(now)
        var cleared: [String] = []
        for round in try String.fetchAll(db, sql: "SELECT id FROM rounds WHERE state = 'open' AND closes_at <= ?", arguments: [nowText]) {
            let ids = try String.fetchAll(
                db,
                sql: """
                    SELECT e.id FROM entitlements e WHERE e.round_id = ? AND e.state = 'proposed'
                    AND NOT EXISTS (SELECT 1 FROM objections o WHERE o.entitlement_id = e.id AND o.state IN ('pending', 'upheld'))
                    ORDER BY e.id
                    """, arguments: [round])
            try db.execute(sql: "UPDATE rounds SET state = 'closed' WHERE id = ?", arguments: [round])
            if !ids.isEmpty {
                try clear(ids, round: round, db)
                cleared += ids
            }
            // What the round disclosed and how it ended, for its record (RoundArchive).
            try RoundArchive.snapshot(round: round, db)
        }
        return cleared
    }

    /// Most entitlement ids in one `disclosure.*` event (~200 KB): a round of a million
    /// merchants clears hundreds of thousands at once, and one event must stay well under the
    /// bus's 1 MiB message limit.
    static let maxIDsPerEvent = 5_000

    /// Whether an objection about the entitlement was raised and dismissed (the board then says
    /// 异议不成立, and the merchant's text says so, rather than 无异议).
    static func objectionDismissed(_ id: String, _ db: Database) throws -> Bool {
        try Bool.fetchOne(
            db.cachedStatement(sql: "SELECT EXISTS(SELECT 1 FROM objections WHERE entitlement_id = ? AND state = 'dismissed')"),
            arguments: [id]) ?? false
    }

    func clear(_ ids: [String], round: String, _ db: Database) throws {
        let update = try db.cachedStatement(sql: "UPDATE entitlements SET board_status = ? WHERE id = ?")
        for id in ids { try update.execute(arguments: [try Self.objectionDismissed(id, db) ? "异议不成立" : "无异议", id]) }
        for start in stride(from: 0, to: ids.count, by: Self.maxIDsPerEvent) {
            let chunk = ids[start..<min(start + Self.maxIDsPerEvent, ids.count)]
            // Each entitlement is cleared once, so a chunk's first id names its event uniquely.
            try outbox.append(
                db, type: "disclosure.cleared", subject: round, id: "disclosure.cleared/\(round)/\(chunk.first!)",
                data: ["round_id": .string(round), "entitlement_ids": .array(chunk.map { .string($0) })])
        }
    }
}
