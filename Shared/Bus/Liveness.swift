import Foundation
import Synchronization

/// Proof that a service is alive, for systemd's watchdog (`WATCHDOG=1`). The node's loop beats
/// it at every heartbeat tick; long work on the node's thread (the matcher screening every
/// merchant in one intake transaction) calls `progress` now and then, so the watchdog stays fed
/// while the loop cannot tick. Thread-safe: any thread may call it.
public final class Liveness: Sendable {
    struct State {
        var handlers: [@Sendable (String?) -> Void] = []
        var lastNs: UInt64 = 0
        var minIntervalNs: UInt64
    }

    private let state: Mutex<State>

    /// `minIntervalMs`: `progress` reports at most this often (the tick always does).
    public init(minIntervalMs: Int = 1_000) {
        state = Mutex(State(minIntervalNs: UInt64(max(0, minIntervalMs)) * 1_000_000))
    }

    /// Adds `f`, called with each beat (and the progress note, when long work gives one).
    public func onAlive(_ f: @escaping @Sendable (String?) -> Void) { state.withLock { $0.handlers.append(f) } }

    /// The least time between two beats sent by `progress`.
    public func setMinInterval(microseconds: UInt64) { state.withLock { $0.minIntervalNs = microseconds * 1_000 } }

    /// A beat from the node's loop: always reported.
    public func beat() { fire(note: nil, force: true) }

    /// Long work still progressing (`note` says how far, e.g. for systemd's `STATUS=`): reported
    /// when the least interval has passed since the last beat. Cheap enough to call every few
    /// hundred items.
    public func progress(_ note: String? = nil) { fire(note: note, force: false) }

    private func fire(note: String?, force: Bool) {
        let now = DispatchTime.now().uptimeNanoseconds
        let handlers = state.withLock { s -> [@Sendable (String?) -> Void] in
            guard force || now &- s.lastNs >= s.minIntervalNs else { return [] }
            s.lastNs = now
            return s.handlers
        }
        for f in handlers { f(note) }
    }
}
