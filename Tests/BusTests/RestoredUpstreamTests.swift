import BangfuTesting
import Bus
import Foundation
import GRDB
import Logging
import Models
import Storage
import Testing

/// An upstream whose database is restored from a backup reuses sequence numbers a subscriber
/// already applied, for other events. The subscriber must halt that feed and say so — never skip
/// the new events nor apply them on top of what it has — until an operator resets its cursor.
@Suite("Restored upstream", .serialized)
struct RestoredUpstreamTests {
    final class Scene {
        let dir = NSTemporaryDirectory() + "bangfu-restore-\(UUID().uuidString)"
        let ctx = ZContext()
        let tag = UUID().uuidString
        let consumer: NoteConsumer
        var svc: NoteService?

        init() throws {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            consumer = try NoteConsumer(path: dir + "/consumer.sqlite")
            svc = try NoteService(context: ctx, path: dir + "/notes.sqlite", tag: tag)
        }

        var upstream: UpstreamFeed { UpstreamFeed(name: "notes", feed: "inproc://\(tag)-feed", replay: "inproc://\(tag)-replay") }

        func subscriber() -> FeedSubscriber {
            FeedSubscriber(upstream: upstream, context: ctx, consumer: consumer, logger: quietLogger())
        }

        func publish(_ texts: [String]) async throws {
            let r = try await svc!.publish(texts.map { note($0) })
            #expect(r.allSatisfy { $0.ack?.status == .accepted })
        }

        /// SQLite's own consistent copy of the publisher's database.
        func backup() async throws {
            let path = dir + "/backup.sqlite"
            try await svc!.database.writer.writeWithoutTransaction { db in try db.execute(sql: "VACUUM INTO ?", arguments: [path]) }
        }

        /// The publisher stopped, its database replaced by the backup, and started again.
        func restore() throws {
            svc!.node.stopAndWait()
            svc = nil
            for s in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: dir + "/notes.sqlite" + s) }
            try FileManager.default.copyItem(atPath: dir + "/backup.sqlite", toPath: dir + "/notes.sqlite")
            svc = try NoteService(context: ctx, path: dir + "/notes.sqlite", tag: tag)
        }

        /// The publisher stopped and started again on the same database.
        func restart() throws {
            svc!.node.stopAndWait()
            svc = nil
            svc = try NoteService(context: ctx, path: dir + "/notes.sqlite", tag: tag)
        }

        func close() {
            svc?.node.stopAndWait()
            try? FileManager.default.removeItem(atPath: dir)
        }
    }

    /// Waits (a safety net of 20 s, not a timing assertion) until `f` holds.
    static func eventually(_ f: () throws -> Bool) async throws -> Bool {
        for _ in 0..<400 {
            if try f() { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return try f()
    }

    @Test func anUpstreamRestoredBelowTheCursorHaltsTheFeedUntilTheCursorIsReset() async throws {
        let s = try Scene()
        defer { s.close() }
        try await s.publish(["a0", "a1", "a2"])
        try await s.backup()
        try await s.publish(["b0", "b1"])
        let sub = s.subscriber()
        try sub.start()
        #expect(await s.consumer.wait { $0.count == 5 })
        try s.restore()
        // Sequences 4, 5 and 6 again, other events.
        try await s.publish(["after-restore 0", "after-restore 1", "after-restore 2"])
        #expect(try await Self.eventually { sub.status.halted != nil })
        sub.stopAndWait()
        #expect(try s.consumer.texts() == ["a0", "a1", "a2", "b0", "b1"], "nothing applied on top, nothing skipped")
        #expect(try s.consumer.storedCursor() == 5)
        #expect(sub.status.caughtUp == false)
        // The halt is kept: a subscriber started again stays halted, before it hears anything.
        let again = s.subscriber()
        try again.start()
        #expect(try await Self.eventually { again.status.halted != nil })
        again.stopAndWait()
        #expect(try s.consumer.texts().count == 5)

        // The operator reconciles (here: drops what came from the lost events 4 and 5) and resets
        // the cursor to the restored upstream's history; the feed goes on from there.
        try await s.consumer.database.writer.write { db in try db.execute(sql: "DELETE FROM copies WHERE sequence > 3") }
        try again.resetCursor(to: 3)
        let after = s.subscriber()
        try after.start()
        defer { after.stopAndWait() }
        #expect(await s.consumer.wait { $0.count == 6 })
        #expect(try s.consumer.texts() == ["a0", "a1", "a2", "after-restore 0", "after-restore 1", "after-restore 2"])
        #expect(after.status.halted == nil)
    }

    /// Restored to a point whose history then grows past the subscriber's cursor: the sequence
    /// alone cannot tell, the new epoch and the event at the last checked sequence do.
    @Test func anUpstreamRestoredAndGrownPastTheCursorIsCaughtByItsEpoch() async throws {
        let s = try Scene()
        defer { s.close() }
        try await s.publish(["a0", "a1", "a2"])
        try await s.backup()
        try await s.publish(["b0", "b1"])
        let sub = s.subscriber()
        try sub.start()
        #expect(await s.consumer.wait { $0.count == 5 })
        // The event at the cursor checked and saved (at the next heartbeat).
        #expect(try await Self.eventually { try s.consumer.feedGuard(feed: "notes")?.anchorSequence == 5 })
        sub.stopAndWait()
        try s.restore()
        try await s.publish((0..<4).map { "after-restore \($0)" })  // sequences 4…7: past the cursor
        let again = s.subscriber()
        try again.start()
        defer { again.stopAndWait() }
        #expect(try await Self.eventually { again.status.halted != nil })
        #expect(try s.consumer.texts() == ["a0", "a1", "a2", "b0", "b1"])
        #expect(again.status.halted?.contains("sequence 5") == true)
    }

    /// A publisher merely restarted (same database) has a new epoch but the same history: the
    /// subscriber checks it and goes on.
    @Test func aRestartedUpstreamIsFollowedOn() async throws {
        let s = try Scene()
        defer { s.close() }
        try await s.publish(["a0", "a1", "a2"])
        let sub = s.subscriber()
        try sub.start()
        defer { sub.stopAndWait() }
        #expect(await s.consumer.wait { $0.count == 3 })
        let epoch = try #require(sub.status.upstreamEpoch)
        try s.restart()
        try await s.publish(["b0", "b1"])
        #expect(await s.consumer.wait { $0.count == 5 })
        #expect(try await Self.eventually { sub.status.upstreamEpoch != epoch })
        #expect(sub.status.halted == nil)
        #expect(try s.consumer.texts() == ["a0", "a1", "a2", "b0", "b1"])
    }
}
