import CJSONScan

/// The validated events of one append, in the exact form the store keeps, in one buffer.
///
/// Guarantees: every event passed ``EventPreparer``'s checks; each event's JSON
/// is the producer's bytes with only what the contract allows changed (an
/// assigned `event_id` and `timestamp`, a canonical `timestamp`); field
/// references are relative to the event's first byte. A batch holds one byte
/// buffer and one array of entries however many events it has, so preparing,
/// handing over and committing a batch costs no allocation per event. A batch
/// made with ``init(referencing:events:)`` whose events need no edit keeps the
/// request's own bytes as that buffer, each event where it was sent: no copy.
public struct PreparedBatch: Sendable {
    /// One event of the batch.
    public struct Entry: Sendable {
        /// The event's JSON in ``PreparedBatch/bytes``.
        public var range: Range<Int>
        /// The decoded event id in ``PreparedBatch/bytes`` (inside the event's JSON, unless the
        /// producer wrote the id with escapes: then a decoded copy follows the event).
        public var eventIDRange: Range<Int>
        public var timestampMs: Int64
        public var eventIDHash: UInt64
        public var leadHash: UInt64
        /// The indexed fields, relative to `range.lowerBound`.
        public var fields: EventFieldRefs
        /// Whether the server assigned the event id (and so it cannot be a duplicate).
        public var eventIDAssigned: Bool
    }

    /// The events' bytes: back to back, or (while ``referencesSource``) the request's bytes, with every
    /// event where it was sent.
    public internal(set) var bytes: [UInt8] = []
    /// The events, in batch order.
    public internal(set) var entries: [Entry] = []
    /// Whether ``bytes`` is the request the events are read from, not a copy: true until an event needs an
    /// edit (an assigned id or timestamp, a rewritten timestamp, an id decoded from escapes).
    public internal(set) var referencesSource = false

    /// An empty batch with room for `bytes` bytes and `events` events.
    public init(reservingBytes bytes: Int = 0, events: Int = 0) {
        self.bytes.reserveCapacity(bytes)
        entries.reserveCapacity(events)
    }

    /// An empty batch for events that will be prepared from `source`: as long as they need no edit, the
    /// batch keeps `source` itself as its bytes (shared, not copied) and each entry points where its event is.
    public init(referencing source: [UInt8], events: Int) {
        bytes = source
        referencesSource = true
        entries.reserveCapacity(events)
    }

    /// Copies the events so far out of the source, back to back, so the next can be written with edits.
    /// `sourceBytesLeft`: the source's bytes from the next event on.
    mutating func stopReferencingSource(sourceBytesLeft: Int) {
        guard referencesSource else { return }
        var copy: [UInt8] = []
        // Room for the rest as sent, plus an assigned id and timestamp for each event still to come.
        let eventsLeft = max(entries.capacity - entries.count, 1)
        copy.reserveCapacity(jsonByteCount + sourceBytesLeft + eventsLeft * 96)
        for index in entries.indices {
            let old = entries[index].range
            let start = copy.count
            copy.append(contentsOf: bytes[old])
            let moved = start - old.lowerBound
            entries[index].range = start..<copy.count
            let id = entries[index].eventIDRange
            entries[index].eventIDRange = (id.lowerBound + moved)..<(id.upperBound + moved)
        }
        bytes = copy
        referencesSource = false
    }

    /// A batch of events prepared one by one.
    public init(_ events: [PreparedEvent]) {
        self.init(reservingBytes: events.reduce(0) { $0 + $1.json.count + $1.eventID.utf8.count }, events: events.count)
        for event in events { append(event) }
    }

    /// Adds an event prepared on its own.
    public mutating func append(_ event: PreparedEvent) {
        let start = bytes.count
        bytes.append(contentsOf: event.json)
        let range = start..<bytes.count
        let idStart = bytes.count
        bytes.append(contentsOf: event.eventID.utf8)
        add(Entry(
            range: range, eventIDRange: idStart..<bytes.count, timestampMs: event.timestampMs, eventIDHash: event.eventIDHash,
            leadHash: event.leadHash, fields: event.fields, eventIDAssigned: event.eventIDAssigned))
    }

    /// Records an event whose bytes were just written to ``bytes``.
    mutating func add(_ entry: Entry) {
        entries.append(entry)
        jsonByteCount += entry.range.count
    }

    public var count: Int { entries.count }
    public var isEmpty: Bool { entries.isEmpty }

    /// Bytes of JSON of all events (what the store writes, before record headers).
    public internal(set) var jsonByteCount = 0

    /// Asks the CPU to bring event `index`'s id into the cache ahead of a read: a batch is larger than the
    /// cache, so ids read one event after another miss it otherwise.
    public func prefetchEventID(at index: Int) {
        guard entries.indices.contains(index) else { return }
        let offset = entries[index].eventIDRange.lowerBound
        bytes.withUnsafeBufferPointer { buffer in
            if let base = buffer.baseAddress, offset < buffer.count { leadtrail_prefetch(base + offset) }
        }
    }

    /// Event `index`'s decoded id.
    public func eventID(at index: Int) -> String {
        String(decoding: bytes[entries[index].eventIDRange], as: UTF8.self)
    }

    /// Event `index` on its own (a copy of its bytes).
    public subscript(index: Int) -> PreparedEvent {
        let entry = entries[index]
        return PreparedEvent(
            json: Array(bytes[entry.range]), timestampMs: entry.timestampMs, eventID: eventID(at: index),
            eventIDHash: entry.eventIDHash, leadHash: entry.leadHash, fields: entry.fields, eventIDAssigned: entry.eventIDAssigned)
    }

    /// Every event on its own.
    public var events: [PreparedEvent] { (0..<count).map { self[$0] } }
}
