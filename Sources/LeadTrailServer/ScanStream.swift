import Foundation

/// Flow control between a scan running on a pool thread and its connection's event loop.
///
/// The producer takes a credit before it hands a frame to the event loop and the
/// event loop gives it back once the frame was written to the socket, so at most
/// `credits` frames of a scan are ever buffered in the daemon, however slowly the
/// client reads. Cancelling (the connection closed, or the daemon stops) wakes the
/// producer, which then stops.
final class ScanStream: @unchecked Sendable {
    private let condition = NSCondition()
    private var credits: Int
    private var cancelled = false

    init(credits: Int = 2) {
        self.credits = credits
    }

    /// Waits for a credit. False when the stream was cancelled or no credit came within `timeoutSeconds`.
    func acquire(timeoutSeconds: Double) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        let deadline = Date(timeIntervalSinceNow: timeoutSeconds)
        while credits == 0, !cancelled {
            if !condition.wait(until: deadline) {
                cancelled = true
                break
            }
        }
        guard !cancelled else { return false }
        credits -= 1
        return true
    }

    /// Gives a credit back (a frame left the daemon, or was dropped).
    func release() {
        condition.lock()
        credits += 1
        condition.signal()
        condition.unlock()
    }

    func cancel() {
        condition.lock()
        cancelled = true
        condition.broadcast()
        condition.unlock()
    }

    var isCancelled: Bool {
        condition.lock()
        defer { condition.unlock() }
        return cancelled
    }
}
