import CZeroMQ

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Dedicated threads for blocking work (socket loops, waits on libzmq, child processes).
///
/// Every thread Bangfu starts goes through here rather than Foundation's `Thread`, for one
/// reason found the hard way: Foundation keeps a `Thread` (and the block it runs, with
/// everything the block captured) in thread-specific data and releases it in that data's
/// destructor as the thread exits — after libdispatch's own destructor has freed the thread's
/// cache of continuations without forgetting it. If releasing the block runs a `deinit` that
/// touches dispatch (an async hop, a queue, a resumed task), libdispatch takes continuations
/// from the freed cache and frees them again: heap corruption, seen as an abort in
/// `_dispatch_cache_cleanup` or `_dispatch_worker_thread` about one test run in six.
/// Here the body and its captures are released inside the thread's start routine, while
/// dispatch is still whole (tested in `ThreadTests`).
public enum DedicatedThread {
    /// The stack each thread gets (the usual Linux default, stated so it does not depend on
    /// the limits of the shell or unit that started the process).
    public static let stackBytes = 8 << 20

    private final class Start {
        let name: String
        var body: (@Sendable () -> Void)?
        init(name: String, body: @escaping @Sendable () -> Void) {
            self.name = name
            self.body = body
        }
    }

    /// Starts a detached thread named `name` (Linux keeps its first 15 bytes) running `body`.
    public static func start(name: String, _ body: @escaping @Sendable () -> Void) {
        let start = Unmanaged.passRetained(Start(name: name, body: body)).toOpaque()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setstacksize(&attributes, stackBytes)
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        var thread = pthread_t()
        let rc = pthread_create(
            &thread, &attributes,
            { raw in
                DedicatedThread.main(raw!)
                return nil
            }, start)
        precondition(rc == 0, "pthread_create failed: \(rc)")
    }

    /// Runs `body` on a thread of its own and returns its result to async code (never blocking
    /// the cooperative pool).
    public static func run<T: Sendable>(name: String, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { c in
            start(name: name) {
                do { c.resume(returning: try body()) } catch { c.resume(throwing: error) }
            }
        }
    }

    /// Non-throwing form of `run(name:_:)`.
    public static func run<T: Sendable>(name: String, _ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { c in
            start(name: name) { c.resume(returning: body()) }
        }
    }

    private static func main(_ raw: UnsafeMutableRawPointer) {
        let start = Unmanaged<Start>.fromOpaque(raw).takeRetainedValue()
        bangfu_name_this_thread(start.name)
        let body = start.body!
        start.body = nil
        body()
        // `body`, its captures and `start` are released here, before the thread's
        // thread-specific data is torn down.
    }
}
