import Bus
import Dispatch
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Counts what a captured object's `deinit` did, and where.
private final class Counts: Sendable {
    let released = Atomic<Int>(0)
    let releasedOnItsThread = Atomic<Int>(0)
    let dispatched = Atomic<Int>(0)
    let ran = Atomic<Bool>(false)
}

/// Captured by a thread's body; its `deinit` does dispatch work, as releasing a real service's
/// objects can (a queue hop, a resumed task).
private final class Tripwire: Sendable {
    let counts: Counts
    let bodyThread = Mutex<pthread_t?>(nil)
    let done: DispatchGroup
    init(_ counts: Counts, done: DispatchGroup) {
        self.counts = counts
        self.done = done
    }
    deinit {
        counts.released.add(1, ordering: .relaxed)
        if let t = bodyThread.withLock({ $0 }), pthread_equal(t, pthread_self()) != 0 {
            counts.releasedOnItsThread.add(1, ordering: .relaxed)
        }
        let counts = counts
        let done = done
        for _ in 0..<4 {
            done.enter()
            DispatchQueue.global().async {
                counts.dispatched.add(1, ordering: .relaxed)
                done.leave()
            }
        }
        done.leave()
    }
}

@Suite("Dedicated threads")
struct ThreadTests {
    /// Foundation's `Thread` released its block (and so these captures) in a thread-specific-data
    /// destructor after libdispatch had freed the thread's continuation cache; the dispatch work in
    /// the deinit then took continuations from the freed cache and freed them again (this loop
    /// aborted the process — double free — within a few hundred threads, every run). A dedicated
    /// thread releases its body before it ends: should that regress, this test crashes the
    /// process rather than failing an expectation.
    @Test func aBodyAndItsCapturesAreReleasedOnTheThreadBeforeItEnds() async throws {
        let counts = Counts()
        let done = DispatchGroup()
        let threads = 2_000
        for _ in 0..<threads {
            done.enter()
            // Only the body holds the tripwire, so its deinit runs when the body is released; the
            // body waits until `start` has returned (and the caller has let go of the closure), so
            // the thread always holds the last reference.
            let go = DispatchSemaphore(value: 0)
            try DedicatedThread.start(name: "test.tripwire") { [wire = Tripwire(counts, done: done)] in
                go.wait()
                wire.bodyThread.withLock { $0 = pthread_self() }
                // Fill this thread's dispatch continuation cache, as the intake's parallel
                // preparation does.
                DispatchQueue.concurrentPerform(iterations: 4) { _ in _ = [Int](repeating: 1, count: 16) }
            }
            go.signal()
        }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            done.notify(queue: .global()) { c.resume() }
        }
        #expect(counts.released.load(ordering: .relaxed) == threads)
        #expect(counts.releasedOnItsThread.load(ordering: .relaxed) == threads)
        #expect(counts.dispatched.load(ordering: .relaxed) == threads * 4)
    }

    /// A thread the system refuses is an error the caller can report (a service then exits with
    /// its reason in the log), not a crash; the body never runs and is released.
    @Test(arguments: [1, 1 << 50])
    func aRefusedThreadThrowsAndReleasesItsBodyUnrun(stackBytes: Int) async throws {
        let counts = Counts()
        let done = DispatchGroup()
        done.enter()
        let ran = counts
        let error = #expect(throws: ThreadStartError.self) {
            try DedicatedThread.start(name: "test.refused", stackBytes: stackBytes) { [wire = Tripwire(counts, done: done)] in
                _ = wire
                ran.ran.store(true, ordering: .relaxed)
            }
        }
        #expect(error?.name == "test.refused")
        #expect(error.map { $0.code == EINVAL || $0.code == EAGAIN || $0.code == ENOMEM } == true, "\(String(describing: error))")
        #expect(error?.description.contains("cannot start thread test.refused") == true)
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            done.notify(queue: .global()) { c.resume() }
        }
        #expect(counts.released.load(ordering: .relaxed) == 1)
        let bodyRan = counts.ran.load(ordering: .relaxed)
        #expect(!bodyRan)
    }

    @Test func runReturnsTheBodysResultAndRethrowsItsError() async throws {
        struct Refused: Error {}
        let value = try await DedicatedThread.run(name: "test.value") { () throws -> Int in 6 * 7 }
        #expect(value == 42)
        let plain = await DedicatedThread.run(name: "test.plain") { 6 * 7 }
        #expect(plain == 42)
        await #expect(throws: Refused.self) {
            try await DedicatedThread.run(name: "test.error") { () throws -> Int in throw Refused() }
        }
    }
}
