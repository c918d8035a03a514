import Foundation
import Synchronization

/// Lets a test await a condition over state that other threads change, without polling: the
/// code that changes the state calls `signal()`, which re-checks every waiter's predicate.
public final class AsyncCondition: Sendable {
    struct Waiter {
        let check: @Sendable () -> Bool
        let continuation: CheckedContinuation<Bool, Never>
    }

    private let waiters = Mutex<[UUID: Waiter]>([:])

    public init() {}

    /// Re-evaluates every waiting predicate; resumes those now true.
    public func signal() {
        let ready = waiters.withLock { w -> [CheckedContinuation<Bool, Never>] in
            var done: [CheckedContinuation<Bool, Never>] = []
            for (k, v) in w where v.check() {
                done.append(v.continuation)
                w[k] = nil
            }
            return done
        }
        for c in ready { c.resume(returning: true) }
    }

    /// Waits until `predicate` holds (checked now and on every `signal()`); false after
    /// `timeout`, which is a safety net against hanging, not a way to synchronise.
    public func wait(timeout: Duration = .seconds(30), _ predicate: @escaping @Sendable () -> Bool) async -> Bool {
        let key = UUID()
        return await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
            let now = waiters.withLock { w -> Bool in
                if predicate() { return true }
                w[key] = Waiter(check: predicate, continuation: c)
                return false
            }
            if now {
                c.resume(returning: true)
                return
            }
            Task {
                try? await Task.sleep(for: timeout)
                let w = self.waiters.withLock { $0.removeValue(forKey: key) }
                w?.continuation.resume(returning: predicate())
            }
        }
    }
}
