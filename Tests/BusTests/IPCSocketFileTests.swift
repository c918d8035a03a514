import Bus
import CZeroMQ
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Named `ipc://` socket files: a live one is never taken over, one left behind by a process
/// that is gone is, and a clean close removes the file this socket made — and only that one.
@Suite("ipc:// socket files")
struct IPCSocketFileTests {
    func freshPath() throws -> String {
        let dir = NSTemporaryDirectory() + "bangfu-ipc-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir + "/intake"
    }

    func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    @Test func closingRemovesTheFileItBound() throws {
        let context = ZContext()
        defer { context.terminate() }
        let path = try freshPath()
        let a = try context.socket(.router)
        try a.bind("ipc://" + path)
        #expect(exists(path))
        a.close()
        #expect(!exists(path), "the socket file is gone with the socket")
    }

    @Test func aLiveListenerIsNotTakenOver() throws {
        let context = ZContext()
        defer { context.terminate() }
        let path = try freshPath()
        let a = try context.socket(.router)
        try a.bind("ipc://" + path)
        let b = try context.socket(.router)
        #expect {
            try b.bind("ipc://" + path)
        } throws: { ($0 as? ZMQError)?.errno == EADDRINUSE }
        // The first one still answers: a client reaches it.
        let client = try context.socket(.dealer)
        try client.set(ZMQ_LINGER, Int32(0))
        try client.connect("ipc://" + path)
        #expect(try client.send([Array("hello".utf8)], dontWait: false))
        var poller = ZPoller([.socket(a)])
        #expect(try poller.poll(timeoutMs: 10_000)[0])
        #expect(try a.receive(dontWait: true)?.frames.last == Array("hello".utf8))
        client.close()
        b.close()
        #expect(exists(path), "closing the refused socket leaves the live one's file alone")
        a.close()
    }

    @Test func aFileLeftBehindByAGoneProcessIsTakenOver() throws {
        let context = ZContext()
        defer { context.terminate() }
        let path = try freshPath()
        // A socket file with nobody listening, as a killed process leaves it.
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (k, b) in path.utf8.enumerated() { raw[k] = b }
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(rc == 0)
        Glibc.close(fd)
        #expect(exists(path))
        let a = try context.socket(.router)
        try a.bind("ipc://" + path)
        a.close()
        #expect(!exists(path))
    }

    @Test func somethingElseAtThePathIsNeverDeleted() throws {
        let context = ZContext()
        defer { context.terminate() }
        let path = try freshPath()
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: path))
        let a = try context.socket(.router)
        #expect {
            try a.bind("ipc://" + path)
        } throws: { ($0 as? ZMQError)?.errno == EEXIST }
        a.close()
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "keep me")
    }

    @Test func aFileAnotherSocketBoundSinceIsLeftAlone() throws {
        let context = ZContext()
        defer { context.terminate() }
        let path = try freshPath()
        let a = try context.socket(.router)
        try a.bind("ipc://" + path)
        // Someone removes the file and another socket binds the path (a new file).
        unlink(path)
        let b = try context.socket(.router)
        try b.bind("ipc://" + path)
        a.close()
        #expect(exists(path), "the first socket's close does not remove the second one's file")
        b.close()
        #expect(!exists(path))
    }
}
