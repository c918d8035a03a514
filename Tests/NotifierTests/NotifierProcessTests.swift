import BangfuTesting
import Bus
import Foundation
import Models
import Notifier
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The real `bangfu-notifier` executable: its own settings, SIGTERM exits 0, kill -9 and a
/// restart keep what was committed (the simulated clock's position here).
@Suite("Notifier process", .serialized)
struct NotifierProcessTests {
    @Test func settingsSigtermAndKill9() async throws {
        let proc = try ServiceProcess(name: "bangfu-notifier")
        defer { proc.cleanup() }
        proc.baseArguments = [
            "--registry-feed", "ipc://\(proc.dir)/r-f", "--registry-replay", "ipc://\(proc.dir)/r-r", "--matcher-feed",
            "ipc://\(proc.dir)/m-f",
            "--matcher-replay", "ipc://\(proc.dir)/m-r", "--payments-feed", "ipc://\(proc.dir)/p-f", "--payments-replay",
            "ipc://\(proc.dir)/p-r",
            "--board-dir", proc.dir + "/board", "--simulated-clock",
        ]
        try "2022-04-04\n2022-04-05 # 清明\n+2022-04-02\n".write(toFile: proc.dir + "/holidays.txt", atomically: true, encoding: .utf8)
        try await proc.start(["--holidays", proc.dir + "/holidays.txt"])
        let advance = CloudEvent(
            id: "t1", source: "/ops/test", type: "clock.advanced", data: ["to": "2022-06-30T12:00:00+08:00", "set": true])
        let r = try await IntakeClient.publish(
            context: proc.context, endpoint: proc.endpoint("intake"), events: [OutgoingEvent(advance)], options: .forTests)
        #expect(r[0].ack?.status == .accepted)
        #expect(try await proc.terminate() == 0)
        try await proc.start(["--holidays", proc.dir + "/holidays.txt"])
        kill(proc.pid, SIGKILL)
        _ = try await proc.waitForExit()
        try await proc.start(["--holidays", proc.dir + "/holidays.txt"])
        let status = try await proc.query(["op": "status"])
        #expect(status["clock"]?.stringValue?.hasPrefix("2022-06-30T12:00:00") == true)
        #expect(try await proc.terminate() == 0)

        // A bad holiday calendar stops the service with a message.
        try "2022-13-01\n".write(toFile: proc.dir + "/bad.txt", atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: proc.binaryPath)
        p.arguments = ["--state-dir", proc.dir + "/other", "--intake", "ipc://\(proc.dir)/o-i", "--holidays", proc.dir + "/bad.txt"]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus != 0)
        #expect(out.contains("bad.txt:1"))
    }

    @Test func workingDaysSkipWeekendsAndHolidaysAndCountMakeUpDays() {
        let cal = WorkingCalendar(
            holidays: [CivilDate.parse("2022-04-04")!, CivilDate.parse("2022-04-05")!], extraWorkdays: [CivilDate.parse("2022-04-02")!])
        // Opened Friday 2022-04-01: Sat 04-02 is a make-up working day (1), Mon/Tue are Qingming,
        // then Wed 04-06 (2), Thu (3), Fri (4), Mon 04-11 (5).
        #expect(cal.lastDay(after: CivilDate.parse("2022-04-01")!, workingDays: 5) == CivilDate.parse("2022-04-11")!)
        #expect(WorkingCalendar().lastDay(after: CivilDate.parse("2022-04-01")!, workingDays: 5) == CivilDate.parse("2022-04-08")!)
        #expect(!cal.isWorkingDay(CivilDate.parse("2022-04-03")!))
    }
}
