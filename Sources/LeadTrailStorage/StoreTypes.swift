import LeadTrailEvents

/// How appends reach stable storage.
public enum Durability: String, Sendable, Codable {
    /// Every acknowledged batch has been `fdatasync`ed (group commit).
    case fsync
    /// Batches are written at once and synced about once a second; a crash may lose the last second.
    case relaxed
}

/// The storage engine's settings. Every field has the documented default.
public struct StoreConfiguration: Sendable {
    /// The data directory; it holds one store.
    public var directory: String
    /// The active segment is sealed once it holds this many bytes (default 128 MiB).
    public var segmentMaxBytes: Int = 128 << 20
    /// The active segment is sealed once its first record is this old (default 1 hour).
    public var segmentMaxAgeSeconds: Int = 3600
    public var durability: Durability = .fsync
    /// One sparse-index entry per this many bytes of records (default 4 KiB).
    public var sparseIndexInterval: Int = 4096
    /// How many records' type-column entries (5 bytes each) the newest segments keep in memory for scans by type;
    /// older sealed hot segments drop theirs, and a scan by type reads it back from the segment's type index file
    /// (others are scanned record by record). 1 million is 5 MB, about 1.2 GB of the newest events of 1.2 KB.
    public var typeColumnRecordBudget: Int = 1_000_000
    /// When sealed segments move to the warm and cold tiers.
    public var tiers = TierPolicy()

    public init(directory: String) {
        self.directory = directory
    }
}

/// A storage failure, with a code callers can match on.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// Nothing of the request was stored (disk full, failed sync, engine stopped).
        case unavailable
        /// Another process holds the data directory.
        case locked
        /// Stored bytes failed a check.
        case corrupt
        /// A file operation failed.
        case io
        /// The caller asked for something impossible.
        case invalidArgument
        /// A read that may not wait for the disk would have (``EventStore/eventsWithoutWaiting(forLead:limit:)``):
        /// the caller asks again on a thread that may wait. Never leaves the daemon.
        case wouldBlock
    }

    /// What a read that may not wait throws instead of waiting.
    static let wouldBlock = StoreError(.wouldBlock, "the read would wait for the disk")

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}

/// The outcome of one event of an append, in batch order.
public struct AppendResult: Sendable, Equatable {
    public var seq: UInt64
    public var eventID: String
    /// True when the event id was already stored; `seq` is then the original one.
    public var duplicate: Bool

    public init(seq: UInt64, eventID: String, duplicate: Bool) {
        self.seq = seq
        self.eventID = eventID
        self.duplicate = duplicate
    }
}

extension AppendResult {
    /// The results of `batch`'s events, from the outcomes the store gave them (in batch order).
    static func results(of batch: PreparedBatch, _ outcomes: [AppendOutcome]) -> [AppendResult] {
        outcomes.enumerated().map { AppendResult(seq: $1.seq, eventID: batch.eventID(at: $0), duplicate: $1.duplicate) }
    }
}

/// What an append did with one event of its batch.
public struct AppendOutcome: Sendable, Equatable {
    /// The event's seq: a new one, or the original one for a duplicate.
    public var seq: UInt64
    /// True when the event id was already stored (nothing new was stored for it).
    public var duplicate: Bool

    public init(seq: UInt64, duplicate: Bool) {
        self.seq = seq
        self.duplicate = duplicate
    }
}

/// A stored event read back from the log: what the producer's JSON became, plus its position.
public struct StoredEvent: Sendable, Equatable {
    public var seq: UInt64
    public var timestampMs: Int64
    /// The stored JSON body (without `seq`).
    public var body: [UInt8]
    public var fields: EventFieldRefs

    public init(seq: UInt64, timestampMs: Int64, body: [UInt8], fields: EventFieldRefs) {
        self.seq = seq
        self.timestampMs = timestampMs
        self.body = body
        self.fields = fields
    }

    /// The event as returned to clients: the stored JSON with `"seq":N` added first.
    public var jsonWithSeq: [UInt8] {
        var out: [UInt8] = []
        appendJSON(to: &out)
        return out
    }

    /// Appends the event as returned to clients to `out`.
    public func appendJSON(to out: inout [UInt8]) {
        RecordView.appendJSON(seq: seq, body: body, to: &out)
    }

    /// The decoded value of an indexed field.
    public func value(of field: IndexedField) -> String? {
        body.withUnsafeBufferPointer { fields[field].value(in: $0) }
    }
}

/// A record seen during a scan. Its `body` is valid only inside the visitor call.
public struct RecordView {
    public var seq: UInt64
    public var timestampMs: Int64
    public var leadHash: UInt32
    public var fields: EventFieldRefs
    public var body: UnsafeBufferPointer<UInt8>

    public init(seq: UInt64, timestampMs: Int64, leadHash: UInt32, fields: EventFieldRefs, body: UnsafeBufferPointer<UInt8>) {
        self.seq = seq
        self.timestampMs = timestampMs
        self.leadHash = leadHash
        self.fields = fields
        self.body = body
    }

    /// A copy that outlives the visitor.
    public func copy() -> StoredEvent {
        StoredEvent(seq: seq, timestampMs: timestampMs, body: Array(body), fields: fields)
    }

    public func value(of field: IndexedField) -> String? { fields[field].value(in: body) }

    /// Appends the event as returned to clients (`"seq":N` spliced after the opening brace).
    public func appendJSON(to out: inout [UInt8]) {
        Self.appendJSON(seq: seq, body: body, to: &out)
    }

    static func appendJSON(seq: UInt64, body: some Collection<UInt8>, to out: inout [UInt8]) {
        out.append(contentsOf: "{\"seq\":".utf8)
        JSONNumber.append(seq, to: &out)
        // body is a JSON object with at least type and lead_id, so a comma always follows.
        out.append(UInt8(ascii: ","))
        out.append(contentsOf: body.dropFirst())
    }
}

/// What a scan may skip without reading records: the storage engine uses these
/// with its sparse and segment indexes; the exact filter is the caller's.
public struct ScanHints: Sendable {
    /// Only records with seq > afterSeq.
    public var afterSeq: UInt64 = 0
    /// Only records with timestamp in [fromMs, toMs).
    public var fromMs: Int64? = nil
    public var toMs: Int64? = nil
    /// Only records of this lead, found through the lead indexes.
    public var leadID: String? = nil
    /// Only records whose `type` this selects, found through the segments' type columns where they have one.
    public var types: TypeSelection? = nil

    public init(afterSeq: UInt64 = 0, fromMs: Int64? = nil, toMs: Int64? = nil, leadID: String? = nil, types: TypeSelection? = nil) {
        self.afterSeq = afterSeq
        self.fromMs = fromMs
        self.toMs = toMs
        self.leadID = leadID
        self.types = types
    }
}

/// A set of event types: exact values, and prefixes (`recipient.` for the contract's `recipient.*`),
/// compared with the decoded value of the `type` field.
public struct TypeSelection: Sendable, Equatable {
    public var exact: [[UInt8]]
    public var prefixes: [[UInt8]]

    public init(exact: [[UInt8]], prefixes: [[UInt8]]) {
        self.exact = exact
        self.prefixes = prefixes
    }

    public func matches(_ decoded: [UInt8]) -> Bool {
        exact.contains(decoded) || prefixes.contains { decoded.starts(with: $0) }
    }
}

/// What the engine reports about itself.
public struct StoreStats: Sendable {
    public struct Tier: Sendable {
        public var segments: Int = 0
        public var events: UInt64 = 0
        /// Bytes on disk (for hot segments, their type index files included).
        public var bytes: UInt64 = 0
        /// Bytes of the segments in hot format (records, indexes, footer; and the hot tier's type index files).
        public var rawBytes: UInt64 = 0
        public var oldestMs: Int64? = nil
        public var newestMs: Int64? = nil

        public init() {}

        /// Raw bytes over bytes on disk (1 for hot).
        public var compressionRatio: Double { bytes == 0 ? 1 : Double(rawBytes) / Double(bytes) }

        mutating func add(events: UInt64, bytes: Int, rawBytes: Int, minTs: Int64, maxTs: Int64) {
            segments += 1
            self.events += events
            self.bytes += UInt64(bytes)
            self.rawBytes += UInt64(rawBytes)
            if events > 0 {
                oldestMs = min(oldestMs ?? minTs, minTs)
                newestMs = max(newestMs ?? maxTs, maxTs)
            }
        }
    }

    public var events: UInt64
    public var lastSeq: UInt64
    public var durability: Durability
    public var hot: Tier
    public var warm: Tier
    public var cold: Tier
    /// Cold data brought back into query reach.
    public var restored: Tier
    public var activeSegmentID: UInt64
    public var corruptSegments: [String]
    public var quarantinedFiles: [String]
    public var startupMilliseconds: Int
    public var appendBatches: UInt64
    public var syncs: UInt64
    /// How long the most recent of those syncs took; nil before the first.
    public var recentSyncs: RecentDurations? = nil
    /// How long the most recent group writes into the active segment took, and at what rate; nil before the first.
    public var recentWrites: RecentDurations? = nil
    /// Rolled segments waiting for the sealer, the one it is sealing included (at most
    /// `EventStore.maximumPendingSeals`).
    public var sealsPending: Int = 0
    /// Rotations that waited because that many were waiting: appends slowed down for the sealer.
    public var rotationsWaitedForSealer: UInt64 = 0
    /// Files in `trash/` waiting to be deleted (replaced segments still held by a reader, or being cut), and
    /// their bytes: disk space that tiering freed but the filesystem has not got back yet.
    public var trashFiles: Int = 0
    public var trashBytes: Int = 0
}

/// How long the append path's most recent operations of one kind took (the last 1,024 at most).
///
/// For its `fdatasync`s: the disk's health at a glance, since every acknowledgement waits for one, and a slow or
/// failing disk shows here first (etcd's operators watch its WAL fsync duration for the same reason). For its
/// group writes (`pwrite` into the page cache): the memory side, since the writer thread does them one after
/// another, and a write slows down when the kernel has to find new pages for it.
public struct RecentDurations: Sendable, Equatable {
    /// How many operations the figures cover.
    public var count: Int
    public var p50Milliseconds: Double
    public var p99Milliseconds: Double
    public var maxMilliseconds: Double
    /// Their bytes over their total time, when they carry bytes (the group writes).
    public var megabytesPerSecond: Double?
}

/// The durations (and bytes) of the most recent operations of one kind, in a ring of fixed size.
struct DurationRing {
    static let capacity = 1024
    private var microseconds: [UInt32] = []
    private var bytes: [UInt32] = []
    private var next = 0

    mutating func record(nanoseconds: UInt64, bytes count: Int = 0) {
        let value = UInt32(clamping: nanoseconds / 1000)
        if microseconds.count < Self.capacity {
            microseconds.append(value)
            bytes.append(UInt32(clamping: count))
        } else {
            microseconds[next] = value
            bytes[next] = UInt32(clamping: count)
        }
        next = (next + 1) % Self.capacity
    }

    /// Nearest-rank percentiles of what the ring holds.
    var summary: RecentDurations? {
        guard !microseconds.isEmpty else { return nil }
        let sorted = microseconds.sorted()
        func milliseconds(_ fraction: Double) -> Double {
            let rank = Int((fraction * Double(sorted.count)).rounded(.up))
            return Double(sorted[min(sorted.count, max(1, rank)) - 1]) / 1000
        }
        let totalBytes = bytes.reduce(0) { $0 + Int($1) }
        let totalMicroseconds = microseconds.reduce(0) { $0 + Int($1) }
        return RecentDurations(
            count: sorted.count, p50Milliseconds: milliseconds(0.5), p99Milliseconds: milliseconds(0.99),
            maxMilliseconds: Double(sorted[sorted.count - 1]) / 1000,
            megabytesPerSecond: totalBytes > 0 ? Double(totalBytes) / Double(max(1, totalMicroseconds)) : nil)
    }
}

/// One damaged place found by `verify`.
public struct CorruptionReport: Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var offset: Int?
    public var reason: String

    public init(file: String, offset: Int?, reason: String) {
        self.file = file
        self.offset = offset
        self.reason = reason
    }

    public var description: String {
        if let offset { return "\(file) at byte \(offset): \(reason)" }
        return "\(file): \(reason)"
    }
}

/// The result of a full check of every checksum.
public struct VerifyReport: Sendable {
    public var segments: Int
    public var records: UInt64
    public var corrupt: [CorruptionReport]
    /// Findings that are not damage, such as a torn tail that the next start cuts off.
    public var warnings: [String]
    public var isClean: Bool { corrupt.isEmpty }
}

/// The seq range of a segment that was sealed by `rotate`.
public struct SealedSegment: Sendable {
    public var segmentID: UInt64
    public var firstSeq: UInt64
    public var lastSeq: UInt64
    public var events: UInt64
}

/// When sealed segments move between tiers, by the age of their newest event.
public struct TierPolicy: Sendable, Equatable {
    /// A sealed segment moves to warm (LZ4 blocks) when its newest event is older than this (default 30 days).
    public var hotDays: Double = 30
    /// A warm segment moves to a cold zlib archive when its newest event is older than this (default 90 days).
    public var warmDays: Double = 90
    /// Cold archives whose every event is older than this are deleted (default: keep forever).
    public var retainDays: Double? = nil
    /// Restored cold data stays queryable this long unless released first (default 7 days).
    public var restoreExpirySeconds: Int = 7 * 86_400
    /// How often the background tiering runs, in seconds (default hourly; 0 turns it off).
    public var intervalSeconds: Int = 3600

    public init() {}
}

/// One segment that a tiering run moved.
public struct SegmentMove: Sendable, Equatable {
    public var segmentID: UInt64
    public var from: String
    public var to: String
    public var firstSeq: UInt64
    public var lastSeq: UInt64
    public var events: UInt64
    public var bytesBefore: Int
    public var bytesAfter: Int
}

/// What a tiering run did.
public struct TierReport: Sendable {
    public var moved: [SegmentMove] = []
    /// Warm files of an older format rewritten in the current one (from and to are both "warm").
    public var rewritten: [SegmentMove] = []
    /// Cold archives deleted by `retain_days`, with what they held.
    public var deleted: [String] = []
    /// Restored segments whose time was up.
    public var expired: [UInt64] = []
    /// Segments that could not move, and why (they stay where they were).
    public var skipped: [String] = []

    public init() {}
}

/// What a restore brought back.
public struct RestoreReport: Sendable {
    /// Events made readable again by this call.
    public var restored: UInt64 = 0
    public var segments: [UInt64] = []
    /// Events that were already restored and are counted in no new segment.
    public var alreadyRestored: UInt64 = 0
    public var bytes: Int = 0

    public init() {}
}
