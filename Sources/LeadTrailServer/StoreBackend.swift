import LeadTrailEvents
import LeadTrailStorage
import LeadTrailWire

/// What the daemon needs from the storage and query layers.
///
/// The daemon serves any backend; ``Daemon/run(_:logger:)`` uses the real
/// ``EventStore`` with its ``QueryEngine``. Every method but the asynchronous
/// `append` may block on disk: the daemon calls them on its thread pool, never on
/// an event loop.
protocol StoreBackend: AnyObject, Sendable {
    /// Durable append; `completion` runs once the batch is on stable storage (or failed), on any thread.
    func append(_ batch: PreparedBatch, completion: @escaping @Sendable (Result<[AppendOutcome], StoreError>) -> Void)
    func event(withID id: String) throws(StoreError) -> StoredEvent?
    func timeline(leadID: String, limit: Int) throws(StoreError) -> (events: [StoredEvent], truncated: Bool)
    /// The whole timeline of a lead with at most `limit` events when it can be read without waiting for
    /// the disk (an event loop may call it); nil to ask ``timeline(leadID:limit:)`` on the thread pool.
    func timelineWithoutWaiting(leadID: String, limit: Int) -> [StoredEvent]?
    /// ``event(withID:)`` when it can be read without waiting for the disk (an event loop may call it):
    /// nil to ask on the thread pool, `.some(nil)` when there is no such event.
    func eventWithoutWaiting(withID id: String) -> StoredEvent??
    /// Visits the matching events in seq order, each checked against its CRC; a record's bytes are
    /// valid only during the call. `visit` returns false to stop early. Returns the highest seq
    /// examined and the count visited.
    func scan(_ request: ScanRequest, visit: (RecordView) throws -> Bool) throws -> (lastSeq: UInt64, returned: Int)
    var lastSeq: UInt64 { get }
    /// When events older than this (ms) may exist only in unrestored cold archives; nil when none are archived.
    var coldOnlyBefore: Int64? { get }
    func stats() -> StoreStats
    func rotate() throws(StoreError) -> SealedSegment?
    /// Applies the tier policy now; answers what moved.
    func tier() throws(StoreError) -> TierReport
    /// Brings archived events back into query reach (or releases them, with `request.release`).
    func restore(_ request: RestoreRequest) throws(StoreError) -> RestoreReport
    func verify() -> VerifyReport
    /// Drains queued appends, syncs and releases the store.
    func close()
}

extension StoreBackend {
    func timelineWithoutWaiting(leadID: String, limit: Int) -> [StoredEvent]? { nil }
    func eventWithoutWaiting(withID id: String) -> StoredEvent?? { nil }
}
