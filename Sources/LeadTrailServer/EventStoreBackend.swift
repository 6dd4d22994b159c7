import LeadTrailEvents
import LeadTrailQuery
import LeadTrailStorage
import LeadTrailWire
import Logging

/// The daemon's backend over the real storage engine and its query layer.
final class EventStoreBackend: StoreBackend {
    let store: EventStore
    let query: QueryEngine

    init(store: EventStore) {
        self.store = store
        self.query = QueryEngine(store: store)
    }

    /// Opens the store of `configuration.dataDirectory`, running recovery first.
    static func open(_ configuration: DaemonConfiguration, logger: Logger) throws(DaemonError) -> EventStoreBackend {
        do {
            var storeLogger = logger
            storeLogger[metadataKey: "component"] = "storage"
            return EventStoreBackend(store: try EventStore.open(configuration.storeConfiguration, logger: storeLogger))
        } catch {
            throw DaemonError("cannot open the store in \(configuration.dataDirectory): \(error)")
        }
    }

    func append(_ batch: PreparedBatch, completion: @escaping @Sendable (Result<[AppendOutcome], StoreError>) -> Void) {
        store.append(batch, completion: completion)
    }

    func event(withID id: String) throws(StoreError) -> StoredEvent? {
        try store.event(withID: id)
    }

    func timeline(leadID: String, limit: Int) throws(StoreError) -> (events: [StoredEvent], truncated: Bool) {
        try query.timeline(leadID: leadID, limit: limit)
    }

    func eventWithoutWaiting(withID id: String) -> StoredEvent?? {
        store.eventWithoutWaiting(withID: id)
    }

    func timelineWithoutWaiting(leadID: String, limit: Int) -> [StoredEvent]? {
        query.timelineWithoutWaiting(leadID: leadID, limit: limit)
    }

    func scan(_ request: ScanRequest, visit: (RecordView) throws -> Bool) throws -> (lastSeq: UInt64, returned: Int) {
        let filter = ScanFilter(
            fromMs: request.fromMs, toMs: request.toMs, types: request.types, outcomes: request.outcomes,
            leadID: request.leadID, flowID: request.flowID, entityID: request.entityID, stepID: request.stepID,
            afterSeq: request.afterSeq, limit: request.limit)
        return try query.scan(filter, visit: visit)
    }

    var lastSeq: UInt64 { store.lastSeq }

    var coldOnlyBefore: Int64? { store.coldOnlyBefore }

    func stats() -> StoreStats { store.stats() }

    func rotate() throws(StoreError) -> SealedSegment? { try store.rotate() }

    func tier() throws(StoreError) -> TierReport { try store.tier() }

    func restore(_ request: RestoreRequest) throws(StoreError) -> RestoreReport {
        if request.release {
            let released = try store.releaseRestored(fromMs: request.fromMs, toMs: request.toMs)
            var report = RestoreReport()
            report.segments = released
            return report
        }
        return try store.restore(fromMs: request.fromMs, toMs: request.toMs, leadID: request.leadID)
    }

    func verify() -> VerifyReport { store.verify() }

    func close() { store.close() }
}
