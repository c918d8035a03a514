import Bus
import Foundation
import GRDB
import Logging
import Models
import ServiceKit
import Storage
import Synchronization

enum NotifierCommand: Sendable {
    case objection(entitlementID: String, reason: String, contact: String?)
    case resolve(entitlementID: String, upheld: Bool, by: String, note: String?)
    case retry(NotificationFilter)
}

/// The notifier's intake: objections during a disclosure window, and their resolution; an
/// operator's re-send of failed notifications.
struct NotifierApplier: IntakeApplier {
    typealias Command = NotifierCommand
    let acceptedTypes: Set<String> = ["objection.filed", "objection.resolved", "notifications.retry"]
    let refusesWhileApplying = true
    let engine: NotifierEngine
    /// The names of the configured channels (`notifications.retry`'s `channel`).
    let channels: [String]

    func validate(_ event: CloudEvent) throws(Rejection) -> NotifierCommand {
        if event.type == "notifications.retry" {
            // Every member is an optional filter: `{}` re-sends every failed one.
            guard case .object(let d)? = event.data else { throw Rejection(.invalidData, field: "data", "data must be an object") }
            return .retry(try NotificationFilter.parse(d, channels: channels, prefix: "data."))
        }
        guard case .object(let d)? = event.data else { throw Rejection(.invalidData, field: "data", "data must be an object") }
        func string(_ k: String) throws(Rejection) -> String {
            guard let s = d[k]?.stringValue, !s.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw Rejection(.invalidData, field: "data.\(k)", "\(k) is required")
            }
            return s
        }
        switch event.type {
        case "objection.filed":
            let reason = try string("reason")
            guard reason.count <= 2_000 else {
                throw Rejection(.invalidData, field: "data.reason", "reason is longer than 2,000 characters")
            }
            return .objection(entitlementID: try string("entitlement_id"), reason: reason, contact: d["contact"]?.stringValue)
        case "objection.resolved":
            let outcome = try string("outcome")
            guard outcome == "upheld" || outcome == "dismissed" else {
                throw Rejection(.invalidData, field: "data.outcome", "outcome must be upheld or dismissed")
            }
            return .resolve(
                entitlementID: try string("entitlement_id"), upheld: outcome == "upheld", by: try string("by"), note: d["note"]?.stringValue
            )
        default:
            throw Rejection(.unknownType, field: "type", "this service takes no events of type \(event.type)")
        }
    }

    func apply(_ command: NotifierCommand, event: CloudEvent, db: Database) throws {
        _ = try applyNoting(command, event: event, db: db)
    }

    /// `notifications.retry` answers how many it re-queued (the ack's note).
    func applyNoting(_ command: NotifierCommand, event: CloudEvent, db: Database) throws -> String? {
        let now = engine.now
        switch command {
        case .retry(let filter):
            let n = try engine.requeue(filter, db)
            return "requeued \(n) failed notification\(n == 1 ? "" : "s")"
        case .objection(let id, let reason, let contact):
            guard
                let row = try Row.fetchOne(
                    db,
                    sql:
                        "SELECT e.round_id, r.closes_at, r.state FROM entitlements e LEFT JOIN rounds r ON r.id = e.round_id WHERE e.id = ?",
                    arguments: [id])
            else {
                throw Rejection(.invalidData, field: "data.entitlement_id", "no entitlement \(id) on the board")
            }
            guard let round: String = row["round_id"], let closes: String = row["closes_at"] else {
                throw Rejection(.invalidData, field: "data.entitlement_id", "entitlement \(id) is not in a disclosure round")
            }
            guard (row["state"] as String?) == "open", now < closes else {
                throw Rejection(.late, field: "data.entitlement_id", "the disclosure window of \(round) closed at \(closes) (公示期已结束)")
            }
            try db.execute(
                sql: "INSERT INTO objections(entitlement_id, round_id, reason, contact, filed_at, state) VALUES (?, ?, ?, ?, ?, 'pending')",
                arguments: [id, round, reason, contact, now])
            try db.execute(sql: "UPDATE entitlements SET board_status = '有异议待处理' WHERE id = ?", arguments: [id])
            try engine.notifyObjection(id, round: round, event: event, db)
        case .resolve(let id, let upheld, let by, let note):
            guard
                let oid = try Int64.fetchOne(
                    db, sql: "SELECT id FROM objections WHERE entitlement_id = ? AND state = 'pending' ORDER BY id LIMIT 1", arguments: [id]
                )
            else {
                throw Rejection(.invalidData, field: "data.entitlement_id", "no pending objection about \(id)")
            }
            try db.execute(
                sql: "UPDATE objections SET state = ?, resolved_by = ?, resolved_at = ? WHERE id = ?",
                arguments: [upheld ? "upheld" : "dismissed", by, now, oid])
            let round = try String.fetchOne(db, sql: "SELECT round_id FROM entitlements WHERE id = ?", arguments: [id]) ?? ""
            if upheld {
                try db.execute(sql: "UPDATE entitlements SET board_status = '异议成立' WHERE id = ?", arguments: [id])
                try engine.outbox.append(
                    db, type: "disclosure.objection_upheld", subject: round, id: "disclosure.objection_upheld/\(id)/\(oid)",
                    data: [
                        "entitlement_id": .string(id), "round_id": .string(round), "by": .string(by),
                        "reason": note.map { .string($0) } ?? .null,
                    ])
            } else {
                try db.execute(sql: "UPDATE entitlements SET board_status = '公示中' WHERE id = ?", arguments: [id])
                let closed = try String.fetchOne(db, sql: "SELECT state FROM rounds WHERE id = ?", arguments: [round]) == "closed"
                let pending =
                    try Int.fetchOne(
                        db, sql: "SELECT COUNT(*) FROM objections WHERE entitlement_id = ? AND state = 'pending'", arguments: [id]) ?? 0
                if closed && pending == 0 {
                    // The window already passed; the objection held it back until now.
                    try engine.disclosure.clear([id], round: round, db)
                    try engine.notifyCleared([id], db)
                }
            }
        }
        return nil
    }
}

/// Applies the registry's, the matcher's and payments' feeds.
struct NotifierFeeds: DatabaseFeedConsumer {
    let database: ServiceDatabase
    let engine: NotifierEngine
    let handle: ServiceHandle
    let dirty: Dirty

    func wants(feed: String, type: String) -> Bool {
        type == "merchant.profiled" || type.hasPrefix("entitlement.") || type == "application.assessed" || type == "payment.failed"
            || type == "payment.held" || type == "clawback.opened"
    }

    /// The board and the notices show the outcome, not the matcher's trace (an operator reads it
    /// with `bangfu explain`).
    /// Of a profile, it keeps only what the monthly report reads (`NotifierEngine.reportedPart`).
    func omittedDataMembers(feed: String) -> Set<String> {
        feed == "registry" ? Self.unreadProfileMembers : ["trace", "determinations"]
    }

    static let unreadProfileMembers: Set<String> = [
        "industry", "registered_on", "status", "legal_rep", "contact", "tags", "finance", "tax", "social_insurance_history",
        "leases", "closures", "damages", "credit_flags", "account", "aid", "fraud", "disqualified", "public_name",
    ]

    func apply(feed: String, _ deliveries: [FeedDelivery], through: UInt64) throws {
        try database.writer.write { db in
            var enrol: [(id: String, policy: String, workingDays: Int)] = []
            for d in deliveries {
                guard let e = d.event else { continue }
                switch e.type {
                case "merchant.profiled": try e.data.map { try engine.profiled($0, db) }
                case let t where t.hasPrefix("entitlement."):
                    if let x = try engine.entitlement(e, db) { enrol.append((x.0, x.1, x.2)) }
                case "payment.failed", "payment.held", "clawback.opened": try engine.payment(e, db)
                case "application.assessed": try engine.assessed(e, db)
                default: break
                }
            }
            if !enrol.isEmpty { try engine.notifyDisclosure(try engine.disclosure.enrol(enrol, db), db) }
            try engine.notifyCleared(try engine.disclosure.closeDue(db), db)
            try InboxCursor.set(db, feed: feed, to: through)
        }
        dirty.mark()
        handle.node?.notifyOutbox()
    }
}

/// Set when the board or the notifications need work.
final class Dirty: Sendable {
    private let flag = Mutex(true)
    func mark() { flag.withLock { $0 = true } }
    func take() -> Bool {
        flag.withLock { v in
            defer { v = false }; return v
        }
    }
    var isSet: Bool { flag.withLock { $0 } }
}

/// Background work on its own queue, twice a second: close due rounds (time passes), deliver
/// pending notifications and those whose next attempt is due (`NotificationRetries.swift`),
/// regenerate the board when something changed.
final class NotifierWorker: Sendable {
    let database: ServiceDatabase
    let engine: NotifierEngine
    let settings: NotifierSettings
    let channels: [any NotificationChannel]
    let handle: ServiceHandle
    let dirty: Dirty
    let logger: Logger
    nonisolated(unsafe) let timer: any DispatchSourceTimer
    let queue = DispatchQueue(label: "bangfu.notifier.worker")
    /// When the board was last rebuilt and how long that took (uptime nanoseconds).
    let boardTiming = Mutex<(last: UInt64, took: UInt64)>((0, 0))
    /// When the round records may be tried again after a failure (uptime nanoseconds).
    let archiveRetryAt = Mutex<UInt64>(0)
    static let deliveryBatch = 1_000

    init(
        database: ServiceDatabase, engine: NotifierEngine, settings: NotifierSettings, channels: [any NotificationChannel],
        handle: ServiceHandle,
        dirty: Dirty, logger: Logger
    ) {
        self.database = database
        self.engine = engine
        self.settings = settings
        self.channels = channels
        self.handle = handle
        self.dirty = dirty
        self.logger = logger
        timer = DispatchSource.makeTimerSource(queue: queue)
    }

    func start() {
        timer.schedule(deadline: .now(), repeating: .milliseconds(500))
        timer.setEventHandler { [self] in self.tick() }
        timer.resume()
    }

    func stop() {
        timer.cancel()
        queue.sync {}
    }

    /// Also called after every intake commit (a `clock.advanced` may have closed a round).
    func kick() { queue.async { [self] in self.tick() } }

    func tick() {
        do {
            let cleared = try database.writer.write { db -> [String] in
                let ids = try engine.disclosure.closeDue(db)
                try engine.notifyCleared(ids, db)
                return ids
            }
            if !cleared.isEmpty {
                dirty.mark()
                handle.node?.notifyOutbox()
            }
            // Every pending notification and every failed one whose next attempt is due, a batch at a
            // time (bounded, so the board gets its turn).
            var rounds = 0
            var down = Set<String>()
            while try deliver(down: &down) == Self.deliveryBatch, rounds < 50 { rounds += 1 }
            // The board is rebuilt whole; a big one is rebuilt at most a tenth of the time.
            let now = DispatchTime.now().uptimeNanoseconds
            if dirty.isSet, now >= boardTiming.withLock({ $0.last &+ 10 &* $0.took }) {
                _ = dirty.take()
                try regenerateBoard()
                let took = DispatchTime.now().uptimeNanoseconds - now
                boardTiming.withLock { $0 = (now, took) }
            }
        } catch {
            logger.error("notifier background work failed; retried", metadata: ["error": "\(error)"])
        }
        archiveRounds()
    }

    /// Each closed round's record, once (disclosure evidence after the board moves on). Apart
    /// from the rest of the tick: a record that cannot be written (reports-dir not writable, the
    /// disk full) stops neither the notifications nor the board; it is tried again a minute later.
    func archiveRounds() {
        let now = DispatchTime.now().uptimeNanoseconds
        guard now >= archiveRetryAt.withLock({ $0 }) else { return }
        do {
            let archived = try RoundArchive.archiveClosed(
                database: database, reportsDirectory: settings.reportsDirectory, board: settings.board, districts: settings.districts,
                now: Timestamp.format(engine.clock.now()))
            if !archived.isEmpty { logger.info("disclosure rounds recorded", metadata: ["rounds": "\(archived.count)"]) }
        } catch {
            archiveRetryAt.withLock { $0 = now &+ 60_000_000_000 }
            logger.error(
                "a disclosure round's record could not be written; tried again in a minute",
                metadata: ["error": "\(error)", "dir": "\(settings.reportsDirectory)"])
        }
    }

    /// Rebuilds the board from one read transaction, streaming the rows twice through a cursor
    /// (count, then write): memory stays flat however many rows the board has.
    func regenerateBoard() throws {
        let settings = settings
        let now = engine.clock.now()
        try database.writer.read { db in
            let programmes = try Row.fetchAll(db, sql: "SELECT * FROM programmes ORDER BY policy_id").map {
                BoardProgramme(
                    id: $0["policy_id"], title: $0["title"], authority: $0["authority"] ?? "", standard: $0["standard"] ?? "",
                    benefit: $0["benefit"])
            }
            try BoardSite.generate(
                programmes: programmes, config: settings.board, generatedAt: now, today: ChinaTime.civilDate(of: now),
                into: settings.boardDirectory
            ) { body in
                let cursor = try Row.fetchCursor(
                    db, sql: "\(BoardRow.selectSQL) WHERE e.board_status IS NOT NULL ORDER BY e.round_id, e.id")
                while let r = try cursor.next() {
                    if let row = BoardRow(r, districts: settings.districts) { try body(row) }
                }
            }
        }
    }
}

/// Builds the notifier: the same function `bangfu-notifier`'s `main` and the tests call.
public enum NotifierService {
    public static let name = "notifier"
    public static let upstreams = ["registry", "matcher", "payments"]
    public static let settings: [String: String] = [
        "board-dir": "", "reports-dir": "", "notifications-file": "", "webhook-url": "", "holidays": "", "templates-dir": "",
        "districts": "",
        "board-fields": BoardConfig().fields.map(\.rawValue).joined(separator: ","),
        "board-retention-days": String(BoardConfig().retentionDays),
        "notification-retry-hours": String(RetrySchedule().horizonSeconds / 3600),
    ]

    /// The notifier's settings from its options (`options.extra`, by flag name; an empty value
    /// is the default): where the board, reports and notifications go, the webhook, the holiday
    /// calendar, and what the board shows (`board-fields`, `board-retention-days`).
    /// Throws `ConfigError` for a value that cannot be used.
    public static func makeSettings(options: ServiceOptions) throws -> NotifierSettings {
        func setting(_ key: String) -> String? { options.extra[key].flatMap { $0.isEmpty ? nil : $0 } }
        let base = options.stateDir ?? NSTemporaryDirectory()
        var settings = NotifierSettings(
            boardDirectory: setting("board-dir") ?? (base as NSString).appendingPathComponent("board"),
            reportsDirectory: setting("reports-dir") ?? (base as NSString).appendingPathComponent("reports"),
            notificationsFile: setting("notifications-file") ?? (base as NSString).appendingPathComponent("notifications.jsonl"),
            webhook: setting("webhook-url").flatMap(URL.init(string:)))
        if let h = setting("holidays") {
            do {
                settings.calendar = try WorkingCalendar(file: h)
            } catch let e as WorkingCalendar.ConfigProblem {
                throw ConfigError("holidays: \(e.message)")
            } catch {
                throw ConfigError("holidays: cannot read the holiday calendar \(h): \((error as NSError).localizedDescription)")
            }
        }
        if let file = setting("districts") {
            do {
                settings.districts = try DistrictNames(file: file)
            } catch let e as DistrictNames.ConfigProblem {
                throw ConfigError("districts: \(e.message)")
            } catch {
                throw ConfigError("districts: cannot read the table of division names \(file): \((error as NSError).localizedDescription)")
            }
        }
        let origin = { (key: String) in options.origins[key].map { " (\($0))" } ?? "" }
        if let text = setting("board-fields") {
            settings.board.fields = try BoardConfig.parseFields(text, setting: "board-fields" + origin("board-fields"))
        }
        if let text = setting("board-retention-days") {
            settings.board.retentionDays = try BoardConfig.parseRetentionDays(
                text, setting: "board-retention-days" + origin("board-retention-days"))
        }
        if let text = setting("notification-retry-hours") {
            settings.retry.horizonSeconds = try RetrySchedule.parseHours(
                text, setting: "notification-retry-hours" + origin("notification-retry-hours"))
        }
        return settings
    }

    /// Each of the notifier's settings as the service would use it, defaults included (for
    /// `--check-config`). A path under a state directory not given is shown as
    /// `<state-dir>/…`; empty when the settings are not valid (the check says why).
    public static func effectiveSettings(options: ServiceOptions) -> [String: String] {
        guard let s = try? makeSettings(options: options) else { return [:] }
        func given(_ key: String) -> String? { options.extra[key].flatMap { $0.isEmpty ? nil : $0 } }
        func path(_ key: String, _ value: String, _ name: String) -> String {
            options.stateDir == nil && given(key) == nil ? "<state-dir>/\(name)" : value
        }
        let days = s.calendar.holidays.count
        return [
            "board-dir": path("board-dir", s.boardDirectory, "board"), "reports-dir": path("reports-dir", s.reportsDirectory, "reports"),
            "notifications-file": path("notifications-file", s.notificationsFile, "notifications.jsonl"),
            "webhook-url": s.webhook?.absoluteString ?? "none (the JSON Lines file only)",
            "holidays": given("holidays").map {
                "\($0) (\(days) holiday\(days == 1 ? "" : "s"), \(s.calendar.extraWorkdays.count) make-up working days)"
            }
                ?? "none (every Monday to Friday is a working day)",
            "templates-dir": given("templates-dir") ?? "none (the built-in zh-CN texts)",
            "districts": given("districts").map { "\($0) (\(s.districts.count) division\(s.districts.count == 1 ? "" : "s"))" }
                ?? "none (the board and the monthly report show division codes)",
            "board-fields": s.board.fields.map(\.rawValue).joined(separator: ","),
            "board-retention-days": "\(s.board.retentionDays)",
            "notification-retry-hours": s.retry.horizonSeconds == 0
                ? "0 (a failed notification waits for bangfu notifications retry)"
                : "\(s.retry.horizonSeconds / 3600)",
        ]
    }

    /// Valid settings an operator probably does not want in production: a holiday calendar with
    /// no entry for this year or the next (disclosure windows would count the Spring Festival as
    /// working days). `--check-config` prints them; the service logs them at start.
    public static func warnings(options: ServiceOptions, today: CivilDate = ChinaTime.civilDate(of: Date())) -> [String] {
        guard let settings = try? makeSettings(options: options) else { return [] }
        let years = Set(settings.calendar.holidays.map(\.year)).union(settings.calendar.extraWorkdays.map(\.year))
        var out: [String] = []
        if options.extra["holidays"].map({ !$0.isEmpty }) != true {
            out.append("no holiday calendar (holidays): disclosure windows count every weekday as a working day")
        } else {
            for year in [today.year, today.year + 1] where !years.contains(year) {
                out.append("the holiday calendar has no entry for \(year): add that year's holidays and make-up working days")
            }
        }
        return out
    }

    /// Checks the notifier's own settings as `build` reads them (for `--check-config`): the
    /// board's fields and retention, the holiday calendar, the templates and the webhook URL.
    public static func checkSettings(options: ServiceOptions) throws {
        let settings = try makeSettings(options: options)
        if let dir = options.extra["templates-dir"], !dir.isEmpty { _ = try Templates(directory: dir) }
        if let url = settings.webhook { try WebhookChannel.validate(url) }
    }

    public static func build(options: ServiceOptions, environment env: ServiceEnvironment) throws -> BusService {
        var logger = env.logger
        logger[metadataKey: "service"] = "notifier"
        let security = try ServiceSecurity(options: options, environment: env)
        let database = try NotifierDatabase(stateDir: options.stateDir)
        try SimulatedTime.restore(env.clock, from: database.db)
        func setting(_ key: String) -> String? { options.extra[key].flatMap { $0.isEmpty ? nil : $0 } }
        let settings = try Self.makeSettings(options: options)
        let templates = try setting("templates-dir").map { try Templates(directory: $0) } ?? Templates.zhCN
        let outbox = Outbox(source: "/bangfu/notifier", clock: env.clock, maxEventBytes: options.maxMessageBytes)
        let engine = NotifierEngine(
            disclosure: Disclosure(calendar: settings.calendar, outbox: outbox, clock: env.clock), templates: templates, outbox: outbox,
            clock: env.clock,
            logger: logger)
        // The channels stamp each attempt with the service's clock, as everything else does: with
        // `--simulated-clock` (and the harness's test clock) a notification's `at` is in the same
        // time as its `created_at` and the events around it.
        var channels: [any NotificationChannel] = [JSONLinesChannel(path: settings.notificationsFile, clock: env.clock)]
        if let url = settings.webhook { channels.append(WebhookChannel(url: url, clock: env.clock)) }
        let channelNames = channels.map(\.name)
        let handle = ServiceHandle()
        let dirty = Dirty()
        let worker = NotifierWorker(
            database: database.db, engine: engine, settings: settings, channels: channels, handle: handle, dirty: dirty, logger: logger)
        let pipeline = IntakePipeline(
            database: database.db, applier: NotifierApplier(engine: engine, channels: channelNames), clock: env.clock,
            authorize: security.authorizer,
            logger: logger,
            afterCommit: {
                dirty.mark()
                worker.kick()
            })
        var nodeSettings = NodeSettings()
        security.secure(&nodeSettings)
        nodeSettings.socket.maxMessageBytes = options.maxMessageBytes
        let reports = settings.reportsDirectory
        let districts = settings.districts
        let queries = StandardQueries(
            service: name, database: database.db, live: { handle.figures(simulatedClock: options.simulatedClock, clock: env.clock) },
            extra: { req in
                try NotifierQueries(
                    database: database.db, clock: env.clock, reportsDirectory: reports, districts: districts, channels: channelNames
                )
                .respond(req)
            })
        let node = ServiceNode(
            name: name, context: env.context, endpoints: options.endpoints, settings: nodeSettings, processor: pipeline,
            feed: OutboxFeedStore(database: database.db), responder: queries, logger: logger)
        handle.node = node
        let consumer = NotifierFeeds(database: database.db, engine: engine, handle: handle, dirty: dirty)
        let subs = env.subscribers(options: options, consumer: consumer, security: security, handle: handle, logger: logger)
        return BusService(
            name: name, node: node, subscribers: subs, logger: logger, security: security, onStart: { worker.start() },
            onStop: { worker.stop() })
    }
}

/// `report.monthly`, `round.list`, `notification.summary`, `notification.list`.
struct NotifierQueries {
    let database: ServiceDatabase
    let clock: any WallClock
    let reportsDirectory: String
    var districts = DistrictNames()
    var channels: [String] = ["jsonl"]

    func respond(_ req: JSON) throws -> JSON? {
        switch req["op"]?.stringValue {
        case "report.monthly":
            guard let monthText = req["month"]?.stringValue, let month = YearMonth.parse(monthText) else {
                return ["op": "error", "code": "invalid_request", "message": "month (YYYY-MM) is required"]
            }
            let figures = try database.writer.read { db in try MonthlyFigures.compute(month: month, db) }.map {
                var f = $0
                f.name = districts.name(f.district)
                return f
            }
            let paths = try MonthlyReport.write(month: month, figures: figures, generatedAt: clock.now(), into: reportsDirectory)
            return [
                "op": "report", "month": .string(month.description), "html": .string(paths.html), "csv": .string(paths.csv),
                "districts": .int(Int64(figures.count)), "paid_fen": .int(figures.reduce(0) { $0 + $1.paidFen }),
            ]
        case "round.list":
            let rows = try database.writer.read { db in
                try Row.fetchAll(
                    db,
                    sql:
                        "SELECT r.*, (SELECT COUNT(*) FROM entitlements e WHERE e.round_id = r.id) AS n, (SELECT COUNT(*) FROM objections o WHERE o.round_id = r.id AND o.state = 'pending') AS pending FROM rounds r ORDER BY r.id"
                )
            }
            let items: [JSON] = rows.map { r in
                [
                    "round_id": .string(r["id"]), "policy_id": .string(r["policy_id"]), "opened_on": .string(r["opened_on"]),
                    "closes_at": .string(r["closes_at"]), "state": .string(r["state"]), "entitlements": .int(r["n"]),
                    "pending_objections": .int(r["pending"]),
                ]
            }
            return ["op": "rounds", "items": .array(items)]
        case "notification.summary":
            let rows = try database.writer.read { db in
                try Row.fetchAll(db, sql: "SELECT kind, state, COUNT(*) AS n FROM notifications GROUP BY kind, state ORDER BY kind, state")
            }
            let items: [JSON] = rows.map { r in ["kind": .string(r["kind"]), "state": .string(r["state"]), "count": .int(r["n"])] }
            let pending = rows.reduce(Int64(0)) { $0 + (($1["state"] as String) == "pending" ? ($1["n"] as Int64) : 0) }
            let failed = rows.reduce(Int64(0)) { $0 + (($1["state"] as String) == "failed" ? ($1["n"] as Int64) : 0) }
            // Of the failed: those with another attempt scheduled (the rest wait for an operator).
            let scheduled = try database.writer.read { db in
                try Int64.fetchOne(db, sql: "SELECT COUNT(*) FROM notifications WHERE next_attempt_at IS NOT NULL AND state = 'failed'")
            }
            return [
                "op": "notification.summary", "items": .array(items), "pending": .int(pending), "failed": .int(failed),
                "retry_scheduled": .int(scheduled ?? 0),
            ]
        case "notification.list":
            let channels = channels
            return try database.writer.read { db in try NotificationListing.respond(req, channels: channels, db) }
        default:
            return nil
        }
    }
}

extension MonthlyFigures {
    /// Per district for one month: 两直 funds allocated (approved cash) and paid; 四减 (tax
    /// relief reported by the tax bureau, fee waivers, rent waivers, interest relief); jobs kept
    /// (insured employees of merchants with an entitlement).
    static func compute(month: YearMonth, _ db: Database) throws -> [MonthlyFigures] {
        let prefix = month.description
        var byDistrict: [String: MonthlyFigures] = [:]
        func fig(_ d: String) -> MonthlyFigures {
            byDistrict[d]
                ?? MonthlyFigures(
                    district: d, allocatedFen: 0, paidFen: 0, taxReliefFen: 0, feeReliefFen: 0, rentReliefFen: 0, interestReliefFen: 0,
                    insuredEmployees: 0,
                    merchantsPaid: 0)
        }
        // 受益主体（户）counts merchants, not payments: one paid under two programmes is one.
        var paidMerchants: [String: Set<String>] = [:]
        // Cursors, not arrays: a county's profiles and entitlements need not fit in memory at once.
        let entitlements = try Row.fetchCursor(
            db, sql: "SELECT * FROM entitlements WHERE state IN ('approved', 'paid') OR paid_at IS NOT NULL")
        while let r = try entitlements.next() {
            let d: String = r["district"] ?? "?"
            var f = fig(d)
            let amount: Int64 = r["amount_fen"]
            let benefit: String = r["benefit"] ?? ""
            let approvedIn = ((r["approved_at"] as String?) ?? "").hasPrefix(prefix)
            let paidIn = ((r["paid_at"] as String?) ?? "").hasPrefix(prefix)
            if benefit == "cash" {
                if approvedIn { f.allocatedFen += amount }
                if paidIn {
                    f.paidFen += (r["paid_fen"] as Int64?) ?? amount
                    if paidMerchants[d, default: []].insert(r["uscc"]).inserted { f.merchantsPaid += 1 }
                }
            } else if benefit == "rent_waiver", approvedIn || paidIn {
                f.rentReliefFen += amount
            } else if benefit == "fee_waiver", approvedIn || paidIn {
                f.feeReliefFen += amount
            }
            byDistrict[d] = f
        }
        let profiles = try Row.fetchCursor(db, sql: "SELECT body FROM profiles")
        let counted = try db.cachedStatement(sql: "SELECT COUNT(*) FROM entitlements WHERE uscc = ? AND state != 'revoked'")
        while let row = try profiles.next() {
            let data: Data = row["body"]
            guard let p = try? JSONParser.parse([UInt8](data)), let d = p["district"]?.stringValue else { continue }
            var f = fig(d)
            for t in p["tax_history"]?.arrayValue ?? [] where t["period"]?.stringValue == prefix {
                f.taxReliefFen += t["tax_relief_fen"]?.intValue ?? 0
            }
            if let uscc = p["uscc"]?.stringValue,
                try Int.fetchOne(counted, arguments: [uscc]) ?? 0 > 0
            {
                f.insuredEmployees += p["social_insurance"]?["insured_employees"]?.intValue ?? 0
            }
            byDistrict[d] = f
        }
        return byDistrict.keys.sorted().map { byDistrict[$0]! }
    }
}
