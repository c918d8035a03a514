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
    /// Throws if the system refuses a thread (at its thread or memory limit); `body` is then
    /// released without running.
    public static func start(
        name: String, stackBytes: Int = DedicatedThread.stackBytes, _ body: @escaping @Sendable () -> Void
    ) throws(ThreadStartError) {
        let start = Unmanaged.passRetained(Start(name: name, body: body)).toOpaque()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        var rc = pthread_attr_setstacksize(&attributes, stackBytes)
        if rc == 0 { rc = pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED)) }
        if rc == 0 {
            var thread = pthread_t()
            rc = pthread_create(
                &thread, &attributes,
                { raw in
                    DedicatedThread.main(raw!)
                    return nil
                }, start)
        }
        if rc != 0 {
            Unmanaged<Start>.fromOpaque(start).release()
            throw ThreadStartError(name: name, code: rc)
        }
    }

    /// Runs `body` on a thread of its own and returns its result to async code (never blocking
    /// the cooperative pool). Throws `ThreadStartError` if no thread could be started.
    public static func run<T: Sendable>(name: String, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { c in
            do {
                try start(name: name) {
                    do { c.resume(returning: try body()) } catch { c.resume(throwing: error) }
                }
            } catch {
                c.resume(throwing: error)
            }
        }
    }

    /// Non-throwing form of `run(name:_:)`, for work that must happen (stopping a loop). If no
    /// thread can be started, `body` runs on the caller's thread: holding one of the pool's
    /// threads for a while is better than leaving a service unstoppable.
    public static func run<T: Sendable>(name: String, _ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { c in
            do {
                try start(name: name) { c.resume(returning: body()) }
            } catch {
                c.resume(returning: body())
            }
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

/// The system refused a thread (`pthread_create`'s error number: `EAGAIN` at the thread or
/// process limit, `ENOMEM`, `EINVAL` for a stack size it does not take).
public struct ThreadStartError: Error, CustomStringConvertible, Equatable {
    public let name: String
    public let code: Int32

    public var description: String {
        "cannot start thread \(name): \(String(cString: strerror(code))) (errno \(code))"
    }
}
