import Foundation

extension EventStore {
    /// How often the checkpointer writes a moved durable position down.
    static let checkpointIntervalSeconds = 1.0

    /// Starts the thread that writes the checkpoint about once a second.
    ///
    /// The checkpoint only speeds recovery's judgement (torn tail or corruption), so it may lag
    /// behind the durable position; writing it takes two syncs, which must not stall the writer.
    func startCheckpointer() {
        checkpointerSignal.withLock {
            checkpointerStopping = false
            checkpointerFinished = false
        }
        startThread(named: "leadtrail-checkpoint", priority: .background) { [self] in checkpointerLoop() }
    }

    func checkpointerLoop() {
        while true {
            let stop: Bool = checkpointerSignal.withLock {
                if !checkpointerStopping { checkpointerSignal.wait(seconds: Self.checkpointIntervalSeconds) }
                return checkpointerStopping
            }
            if stop { break }
            do throws(StoreError) {
                try writeCheckpoint(force: false)
            } catch {
                logger.warning("could not write the checkpoint", metadata: ["error": "\(error.message)"])
            }
        }
        checkpointerSignal.withLock {
            checkpointerFinished = true
            checkpointerSignal.signalAll()
        }
    }

    /// Stops the checkpointer and waits for it (a write in progress finishes first).
    func stopCheckpointer() {
        checkpointerSignal.withLock {
            checkpointerStopping = true
            checkpointerSignal.signalAll()
            while !checkpointerFinished { checkpointerSignal.wait(seconds: 0.1) }
        }
    }
}
