import NIOConcurrencyHelpers

/// The bytes of request frames the daemon has taken and not yet answered, over every connection,
/// against one budget: what bounds the daemon's memory however many producers send at once.
///
/// Guarantees:
/// - a connection reads more only while the frames held are under the budget, or while it has
///   nothing in progress itself (so a frame larger than the budget still gets through, and a
///   connection never waits for room only it could free);
/// - a connection that stopped reading for the budget is woken (once) as soon as there is room.
///
/// Producers feel it as back-pressure (their writes block, as when the daemon is busy), never as an error.
/// The daemon's request memory is then at most the budget plus one frame per connection.
final class RequestAdmission: Sendable {
    /// The budget (``DaemonConfiguration/requestBytesInFlight``).
    let budgetBytes: Int

    private struct State {
        var heldBytes = 0
        /// Connections waiting for room, by connection id: how to wake each.
        var waiting: [UInt64: @Sendable () -> Void] = [:]
    }

    private let state = NIOLockedValueBox(State())

    init(budgetBytes: Int) {
        self.budgetBytes = budgetBytes
    }

    /// The bytes of frames held now.
    var heldBytes: Int { state.withLockedValue { $0.heldBytes } }

    var hasRoom: Bool { state.withLockedValue { $0.heldBytes < budgetBytes } }

    /// A taken frame's bytes, held until its request is answered.
    func hold(_ bytes: Int) {
        state.withLockedValue { $0.heldBytes += bytes }
    }

    /// An answered (or dropped) request's bytes; wakes the waiting connections when there is room again.
    func release(_ bytes: Int) {
        guard bytes > 0 else { return }
        let wake: [@Sendable () -> Void] = state.withLockedValue { state in
            state.heldBytes -= bytes
            guard state.heldBytes < budgetBytes, !state.waiting.isEmpty else { return [] }
            defer { state.waiting.removeAll() }
            return Array(state.waiting.values)
        }
        for waker in wake { waker() }
    }

    /// Calls `wake` (once, from any thread) when there is room again; false, without registering it, when there is room now.
    func waitForRoom(connection id: UInt64, wake: @escaping @Sendable () -> Void) -> Bool {
        state.withLockedValue { state in
            guard state.heldBytes >= budgetBytes else { return false }
            state.waiting[id] = wake
            return true
        }
    }

    /// Drops a closed connection's waker.
    func forget(connection id: UInt64) {
        _ = state.withLockedValue { $0.waiting.removeValue(forKey: id) }
    }
}
