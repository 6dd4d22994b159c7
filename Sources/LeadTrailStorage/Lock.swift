#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CFileIO
import Foundation

/// A mutex with a condition variable, for the few places the engine shares state between threads.
final class ConditionLock: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()

    init() {
        pthread_mutex_init(&mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(&condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(&condition)
        pthread_mutex_destroy(&mutex)
    }

    func lock() { pthread_mutex_lock(&mutex) }
    func unlock() { pthread_mutex_unlock(&mutex) }

    @inline(__always)
    func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        lock()
        defer { unlock() }
        return try body()
    }

    /// Waits for a signal or until `seconds` pass; the lock must be held.
    func wait(seconds: Double) {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let nanos = Int(now.tv_nsec) + Int(seconds * 1e9)
        var deadline = timespec(tv_sec: now.tv_sec + nanos / 1_000_000_000, tv_nsec: nanos % 1_000_000_000)
        pthread_cond_timedwait(&condition, &mutex, &deadline)
    }

    func signalAll() { pthread_cond_broadcast(&condition) }
}

/// Monotonic milliseconds, for durations and timers (never for stored timestamps).
func monotonicMilliseconds() -> Int64 {
    Int64(monotonicNanoseconds() / 1_000_000)
}

/// Monotonic nanoseconds, for short durations.
func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// How much of a busy CPU an engine thread gets.
enum ThreadPriority {
    /// The append and read paths (writer, syncer, publisher): the scheduler's default.
    case normal
    /// Work no acknowledgement waits for (sealing, checkpoints, tiering): nice 10. A seal is tens of ms of
    /// sorting; at equal priority a syncer or writer woken on its CPU now and then waited out the sealer's whole
    /// time slice (a thread pinned with a spinning one woke up to 3.9 ms late at nice 0, at most 0.2 ms late
    /// against nice 10).
    case background

    /// The nice value the thread sets for itself.
    var niceness: Int32 {
        switch self {
        case .normal: 0
        case .background: 10
        }
    }
}

/// Starts a named thread running `body`: the engine's loops (writer, syncer, publisher, sealer, checkpointer,
/// tiering). The kernel knows it by ``kernelThreadName(_:)`` of `name`.
func startThread(named name: String, priority: ThreadPriority = .normal, _ body: @escaping @Sendable () -> Void) {
    let thread = Thread {
        // Foundation's quality of service does not reach the scheduler here; the nice value does. It is set
        // first, so a thread that shows its name already runs at its priority.
        if priority.niceness != 0 { _ = leadtrail_set_this_thread_niceness(priority.niceness) }
        // Foundation's name does not reach the kernel either (every engine thread showed as `oot.default-qos` in
        // `top -H` and `perf`): set the one `/proc/PID/task/*/comm` shows.
        _ = leadtrail_name_this_thread(kernelThreadName(name))
        body()
    }
    thread.name = name
    thread.start()
}

/// The name the kernel shows for an engine thread: at most 15 bytes, `leadtrail-` shortened to `lt-`
/// (`leadtrail-writer` is `lt-writer`).
func kernelThreadName(_ name: String) -> String {
    let short = name.hasPrefix("leadtrail-") ? "lt-" + name.dropFirst("leadtrail-".count) : name
    return String(decoding: Array(short.utf8.prefix(15)), as: UTF8.self)
}
