import LeadTrailEvents

/// Narrow public entry points to the engine's hot inner loops, for the
/// benchmark package in `Benchmarks/` (which can only see public API).
///
/// Each one calls exactly the code the engine runs, with no extra work; none
/// of them touches a file. They are not part of the engine's contract and may
/// change with it.
public enum StorageKernels {
    /// Appends one record (header with its CRC32C, then the event's JSON) to `out`,
    /// exactly as the writer frames it in a segment.
    public static func encodeRecord(_ event: PreparedEvent, seq: UInt64, into out: inout [UInt8]) {
        RecordHeader.append(
            seq: seq, timestampMs: event.timestampMs, leadHash: UInt32(truncatingIfNeeded: event.leadHash),
            flags: SegmentFormat.flagBatchEnd, fields: event.fields, payload: event.json, to: &out)
    }

    /// Whether the record at the start of `bytes` matches its CRC (what recovery and verify check).
    public static func recordChecksumMatches(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { raw in
            guard raw.count >= SegmentFormat.recordHeaderSize else { return false }
            let header = RecordHeader.decode(raw)
            guard header.totalSize <= raw.count else { return false }
            return RecordHeader.checksumMatches(raw, totalSize: header.totalSize)
        }
    }

    /// LZ4-compresses one warm block as the warm tier does; returns the stored bytes and whether they are compressed.
    public static func warmCompress(_ raw: [UInt8]) -> (bytes: [UInt8], compressed: Bool) {
        let (bytes, compressed) = raw.withUnsafeBytes { WarmFormat.compress($0) }
        return (bytes, compressed)
    }

    /// Decompresses one warm block; nil when damaged.
    public static func warmDecompress(_ stored: [UInt8], rawLength: Int, compressed: Bool) -> [UInt8]? {
        stored.withUnsafeBytes { WarmFormat.decompress($0, rawLength: rawLength, compressed: compressed) }
    }

    /// Compresses bytes into one gzip member as the cold tier does (zlib level 6 by default).
    public static func coldCompress(_ bytes: [UInt8], level: Int32 = 6) throws(StoreError) -> [UInt8] {
        try Gzip.compress(bytes, level: level)
    }

    /// Inflates one gzip member of `rawLength` bytes; nil when damaged.
    public static func coldDecompress(_ member: [UInt8], rawLength: Int) -> [UInt8]? {
        Gzip.decompress(member, rawLength: rawLength)
    }
}

/// The engine's event-id table (hash → seq candidates), wrapped for benchmarks.
public struct EventIDTableKernel {
    private var table: EventIDTable

    /// A table sized for `expectedCount` entries (it grows past them).
    public init(expectedCount: Int) {
        table = EventIDTable(expectedCount: expectedCount)
    }

    /// Adds (hash → seq); `seq` must be in 1..<2^40.
    public mutating func insert(hash: UInt64, seq: UInt64) {
        table.insert(hash: hash, seq: seq)
    }

    /// How many candidate seqs the table offers for `hash` (what a dedupe check walks).
    public func candidateCount(hash: UInt64) -> Int {
        var n = 0
        table.candidates(hash: hash) { _ in
            n += 1
            return false
        }
        return n
    }

    public var count: Int { table.count }
}

extension StorageKernels {
    /// Sorts a segment's (event-id hash, seq) entries as its seal does: by hash, ties by seq.
    public static func sortEventIDEntries(_ entries: [(hash: UInt64, seq: UInt64)]) -> [(hash: UInt64, seq: UInt64)] {
        EventIDEntrySort.sortedByHash(entries)
    }
}
