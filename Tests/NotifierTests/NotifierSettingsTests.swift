import BangfuTesting
import Foundation
import Models
import Notifier
import ServiceKit
import Testing

/// What the public board shows is decided by configuration (DESIGN §9): its fields and the
/// retention period, like every setting, from the config file, the environment or a flag.
@Suite("Notifier settings")
struct NotifierSettingsTests {
    static func options(_ arguments: [String] = [], environment: [String: String] = [:]) throws -> ServiceOptions {
        try ServiceOptions.parse(
            service: NotifierService.name, upstreams: NotifierService.upstreams, extraKeys: NotifierService.settings,
            arguments: arguments, environment: environment)
    }

    static func board(_ arguments: [String] = [], environment: [String: String] = [:]) throws -> BoardConfig {
        try NotifierService.makeSettings(options: try options(arguments, environment: environment)).board
    }

    /// A holiday calendar that misses this year or the next, or none at all, is named as a
    /// warning by `--check-config` and at start.
    @Test func aHolidayCalendarMissingTheYearIsAWarning() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("notifier-holidays-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/holidays.txt"
        try Data("2026-01-01\n2026-02-16\n+2026-02-14\n".utf8).write(to: URL(fileURLWithPath: file))
        let today = try #require(CivilDate.parse("2026-12-02"))
        let missing2027 = NotifierService.warnings(options: try Self.options(["--holidays", file]), today: today)
        #expect(missing2027 == ["the holiday calendar has no entry for 2027: add that year's holidays and make-up working days"])
        try Data("2026-01-01\n2027-01-01\n".utf8).write(to: URL(fileURLWithPath: file))
        #expect(NotifierService.warnings(options: try Self.options(["--holidays", file]), today: today).isEmpty)
        #expect(NotifierService.warnings(options: try Self.options(), today: today).first?.hasPrefix("no holiday calendar") == true)
    }

    /// `--check-config` prints every setting with the value the service would use — a default
    /// as its value, marked `(default)` — never "(the built-in default)".
    @Test func checkConfigShowsEveryEffectiveValue() throws {
        func lines(_ o: ServiceOptions) -> [String] {
            o.summary(effective: NotifierService.effectiveSettings(options: o)).split(separator: "\n").map(String.init)
        }
        let dry = lines(try Self.options())
        #expect(!dry.contains { $0.contains("built-in default") }, "\(dry)")
        for key in NotifierService.settings.keys { #expect(dry.contains { $0.hasPrefix(key + ": ") }, "\(key) missing: \(dry)") }
        #expect(dry.contains("board-dir: <state-dir>/board (default)"), "\(dry)")
        #expect(dry.contains("notifications-file: <state-dir>/notifications.jsonl (default)"), "\(dry)")
        #expect(dry.contains("board-retention-days: 180 (default)"), "\(dry)")
        #expect(dry.contains("board-fields: name,uscc,programme,amount,status,district,round,payment (default)"), "\(dry)")
        #expect(dry.contains("webhook-url: none (the JSON Lines file only) (default)"), "\(dry)")
        #expect(dry.contains("holidays: none (every Monday to Friday is a working day) (default)"), "\(dry)")
        #expect(dry.contains("templates-dir: none (the built-in zh-CN texts) (default)"), "\(dry)")
        #expect(dry.contains("districts: none (the board and the monthly report show division codes) (default)"), "\(dry)")
        #expect(dry.contains("intake: tcp://127.0.0.1:7301 (default)") && dry.contains("log-level: info (default)"), "\(dry)")
        #expect(dry.contains("curve-secret-key: none (default)"), "\(dry)")

        let given = lines(
            try Self.options(["--state-dir", "/var/lib/bangfu/notifier", "--board-retention-days", "30", "--log-level", "debug"]))
        #expect(given.contains("state-dir: /var/lib/bangfu/notifier"), "\(given)")
        #expect(given.contains("board-dir: /var/lib/bangfu/notifier/board (default)"), "\(given)")
        #expect(given.contains("board-retention-days: 30") && given.contains("log-level: debug"), "\(given)")
    }

    @Test func theDefaultsAreTodaysBoard() throws {
        let board = try Self.board()
        #expect(board.fields == BoardField.allCases)
        #expect(board.retentionDays == 180)
        #expect(NotifierService.settings["board-fields"] == "name,uscc,programme,amount,status,district,round,payment")
        #expect(NotifierService.settings["board-retention-days"] == "180")
    }

    @Test func fromAFlagTheEnvironmentOrTheConfigFile() throws {
        let flags = try Self.board(["--board-fields", "name, amount,programme", "--board-retention-days=30"])
        #expect(flags.fields == [.name, .amount, .programme])
        #expect(flags.retentionDays == 30)

        let env = try Self.board(environment: ["BANGFU_BOARD_FIELDS": "uscc name", "BANGFU_BOARD_RETENTION_DAYS": "0"])
        #expect(env.fields == [.uscc, .name])
        #expect(env.retentionDays == 0)

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("notifier-settings-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (yaml, fields) in [
            ("board-fields: name, uscc, programme, amount\n", [BoardField.name, .uscc, .programme, .amount]),
            ("board-fields: [name, amount]\n", [.name, .amount]),
            ("board-fields:\n  - status\n  - name\n", [.status, .name]),
        ] {
            try (yaml + "board-retention-days: 90\n").write(toFile: dir + "/notifier.yaml", atomically: true, encoding: .utf8)
            let file = try Self.board(["--config", dir + "/notifier.yaml"])
            #expect(file.fields == fields, "\(yaml)")
            #expect(file.retentionDays == 90)
            // A flag overrides the file.
            #expect(try Self.board(["--config", dir + "/notifier.yaml", "--board-retention-days", "7"]).retentionDays == 7)
        }
    }

    @Test func anUnknownFieldOrABadRetentionIsAConfigurationError() async throws {
        for bad in ["name,phone", "name,name", ",", " , ", "Name"] {
            #expect(throws: ConfigError.self, "\(bad)") { try Self.board(environment: ["BANGFU_BOARD_FIELDS": bad]) }
        }
        let error = #expect(throws: ConfigError.self) { try Self.board(["--board-fields", "name,id_number"]) }
        #expect(error?.message.contains("id_number") == true)
        #expect(error?.message.contains("flag --board-fields") == true, "says where the value came from")
        for bad in ["-1", "abc", "1.5", "36501"] {
            #expect(throws: ConfigError.self, "\(bad)") { try Self.board(["--board-retention-days", bad]) }
        }
        // The service refuses to start with it.
        let h = try Harness()
        var o = h.options(NotifierService.name, upstreams: NotifierService.upstreams)
        o.extra = NotifierService.settings.merging(["board-fields": "name,amount,secret"]) { $1 }
        #expect(throws: ConfigError.self) { try NotifierService.build(options: o, environment: h.environment()) }
        #expect(throws: ConfigError.self) { try NotifierService.checkSettings(options: o) }
        await h.shutdown()
    }

    /// The table of division names (`districts`): the shipped example and the demo's county
    /// load; `--check-config` counts them; a code that is not six digits, a line with no name,
    /// a code named twice, or a file that cannot be read is a configuration error with the line.
    @Test func theDistrictTableLoadsAndABadOneIsAConfigurationError() throws {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let shipped = repo.appendingPathComponent("deploy/config/districts.txt").path
        let settings = try NotifierService.makeSettings(options: try Self.options(["--districts", shipped]))
        #expect(settings.districts.label("411002") == "魏都区")
        #expect(settings.districts.label("411071") == "经开区")
        #expect(settings.districts.label("110101") == "110101")
        #expect(settings.districts.name("110101") == nil)
        let shown = NotifierService.effectiveSettings(options: try Self.options(["--districts", shipped]))["districts"]
        #expect(shown == "\(shipped) (\(settings.districts.count) divisions)")
        let county = try DistrictNames(parsing: SyntheticCounty.districtTable, origin: "demo")
        for code in SyntheticCounty.districts + [SyntheticCounty.developmentZone] { #expect(county.name(code) != nil, "\(code)") }

        let path = FileManager.default.temporaryDirectory.appendingPathComponent("districts-\(UUID().uuidString).txt").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        for (text, message) in [
            ("411002 魏都区\n41100 短码\n", "\(path):2: 41100 is not a six-digit division code"),
            ("# 注释\n411002\n", "\(path):2: 411002 has no name"),
            ("411002 魏都区\n411002 建安区\n", "\(path):2: 411002 is listed twice (魏都区, 建安区)"),
        ] {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            do {
                _ = try NotifierService.makeSettings(options: try Self.options(["--districts", path]))
                Issue.record("\(text) was taken")
            } catch let e as ConfigError {
                #expect(e.description.hasPrefix("districts: " + message), "\(e)")
            }
        }
        // The same name twice, or comments and blank lines: fine.
        try "411002 魏都区 # 区政府\n\n411002 魏都区\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try NotifierService.makeSettings(options: try Self.options(["--districts", path])).districts.name("411002") == "魏都区")
        do {
            _ = try NotifierService.makeSettings(options: try Self.options(["--districts", "/nonexistent/districts.txt"]))
            Issue.record("a missing table was taken")
        } catch let e as ConfigError {
            #expect(e.description.hasPrefix("districts: cannot read the table of division names /nonexistent/districts.txt"), "\(e)")
        }
    }

    /// A holiday calendar that cannot be read, or has a line that is not a date, is a
    /// configuration error naming the setting and the file, not a raw system error.
    @Test func aBadHolidayCalendarIsAConfigurationError() throws {
        do {
            _ = try NotifierService.makeSettings(options: try Self.options(["--holidays", "/nonexistent/holidays.txt"]))
            Issue.record("a missing calendar was taken")
        } catch let e as ConfigError {
            #expect(e.description.hasPrefix("holidays: cannot read the holiday calendar /nonexistent/holidays.txt"), "\(e)")
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("holidays-\(UUID().uuidString).txt").path
        try "2022-10-01\nnot a date\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            _ = try NotifierService.makeSettings(options: try Self.options(["--holidays", path]))
            Issue.record("a bad line was taken")
        } catch let e as ConfigError {
            #expect(e.description.contains("\(path):2: not a date is not a date"), "\(e)")
        }
        #expect(throws: ConfigError.self) { _ = try Self.options(["--state-dir="]) }
    }
}
