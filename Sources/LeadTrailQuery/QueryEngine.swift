import LeadTrailEvents
import LeadTrailStorage

/// Reads for operators on top of the storage engine: timelines and filtered scans.
public struct QueryEngine: Sendable {
    public let store: EventStore

    public init(store: EventStore) {
        self.store = store
    }

    /// Every event of a lead ordered by timestamp, then seq; at most `limit`
    /// (the earliest), with `truncated` set when the lead has more.
    public func timeline(leadID: String, limit: Int = 10_000) throws(StoreError) -> (events: [StoredEvent], truncated: Bool) {
        var events = try store.events(forLead: leadID)
        events.sort { ($0.timestampMs, $0.seq) < ($1.timestampMs, $1.seq) }
        guard events.count > limit else { return (events, false) }
        return (Array(events.prefix(limit)), true)
    }

    /// Streams matching events in seq order as rendered JSON objects (with `seq`),
    /// in batches of about `maxBatchBytes`. `emit` returns false to stop early.
    ///
    /// Returns the highest seq examined (the resume point) and the number emitted.
    public func scan(_ filter: ScanFilter, maxBatchBytes: Int, emit: ([[UInt8]]) throws -> Bool) throws -> (lastSeq: UInt64, returned: Int) {
        var batch: [[UInt8]] = []
        var batchBytes = 0
        var returned = 0
        var stopped = false
        let limit = filter.limit ?? .max
        if limit <= 0 { return (filter.afterSeq, 0) }
        let lastSeq = try store.scan(filter.hints) { record in
            guard filter.matches(record) else { return true }
            var json: [UInt8] = []
            json.reserveCapacity(record.body.count + 24)
            record.appendJSON(to: &json)
            batchBytes += json.count
            batch.append(json)
            returned += 1
            if batchBytes >= maxBatchBytes {
                let more = try emit(batch)
                batch.removeAll(keepingCapacity: true)
                batchBytes = 0
                if !more {
                    stopped = true
                    return false
                }
            }
            return returned < limit
        }
        if !batch.isEmpty && !stopped {
            if try !emit(batch) { stopped = true }
        }
        return (lastSeq, returned)
    }
}
