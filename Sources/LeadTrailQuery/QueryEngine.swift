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
        events.sort(by: Self.timelineOrder)
        guard events.count > limit else { return (events, false) }
        return (Array(events.prefix(limit)), true)
    }

    /// The whole timeline of a lead with at most `limit` events, when the storage engine can read it
    /// without waiting for the disk (see ``EventStore/eventsWithoutWaiting(forLead:limit:)``); else nil.
    public func timelineWithoutWaiting(leadID: String, limit: Int) -> [StoredEvent]? {
        store.eventsWithoutWaiting(forLead: leadID, limit: limit)?.sorted(by: Self.timelineOrder)
    }

    /// A timeline's order: by timestamp, then by seq.
    static func timelineOrder(_ a: StoredEvent, _ b: StoredEvent) -> Bool {
        (a.timestampMs, a.seq) < (b.timestampMs, b.seq)
    }

    /// Visits the matching events in seq order, each checked against its CRC, without copying them:
    /// the record's body is valid only during the call. `visit` returns false to stop early.
    ///
    /// The filter runs on each record's header fields (never parsing JSON) before the storage
    /// engine checks the record's CRC, so records the filter rules out are not checksummed.
    /// Returns the highest seq examined (the resume point) and the number visited.
    public func scan(_ filter: ScanFilter, visit: (RecordView) throws -> Bool) throws -> (lastSeq: UInt64, returned: Int) {
        let limit = filter.limit ?? .max
        if limit <= 0 { return (filter.afterSeq, 0) }
        var returned = 0
        let lastSeq = try store.scan(filter.hints, matching: { filter.matches($0) }) { record in
            returned += 1
            return try visit(record) && returned < limit
        }
        return (lastSeq, returned)
    }

    /// Streams matching events in seq order as rendered JSON objects (with `seq`),
    /// in batches of about `maxBatchBytes`. `emit` returns false to stop early.
    ///
    /// Returns the highest seq examined (the resume point) and the number emitted.
    public func scan(_ filter: ScanFilter, maxBatchBytes: Int, emit: ([[UInt8]]) throws -> Bool) throws -> (lastSeq: UInt64, returned: Int) {
        var batch: [[UInt8]] = []
        var batchBytes = 0
        var stopped = false
        let result = try scan(filter) { record in
            var json: [UInt8] = []
            json.reserveCapacity(record.body.count + 24)
            record.appendJSON(to: &json)
            batchBytes += json.count
            batch.append(json)
            if batchBytes >= maxBatchBytes {
                let more = try emit(batch)
                batch.removeAll(keepingCapacity: true)
                batchBytes = 0
                if !more {
                    stopped = true
                    return false
                }
            }
            return true
        }
        if !batch.isEmpty && !stopped {
            _ = try emit(batch)
        }
        return result
    }
}
