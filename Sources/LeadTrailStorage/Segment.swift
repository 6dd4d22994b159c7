import LeadTrailEvents

/// One segment file and what the engine knows about it in memory.
///
/// Sealed segments are immutable: their indexes come from the footer. The one
/// active segment is appended to by the writer thread only; readers see its
/// records up to `dataEnd`, which moves only after a batch is durable.
final class Segment: @unchecked Sendable {
    let id: UInt64
    var path: String {
        didSet { fileName = Self.lastComponent(path) }
    }
    /// The last component of `path`, kept rather than computed: every read takes a view of every segment.
    private(set) var fileName: String
    /// Where reads get the record bytes (a hot file, or a warm file's blocks).
    let data: SegmentData
    let header: SegmentHeader
    var isSealed: Bool
    var tier: Tier = .hot

    /// End of the last committed record (readers never look beyond it).
    var dataEnd: Int
    var count: UInt64 = 0
    var firstSeq: UInt64 = 0
    var lastSeq: UInt64 = 0
    var minTs: Int64 = .max
    var maxTs: Int64 = .min
    /// CRC32C of every record byte in order; chained into the next segment's header.
    var chainCRC: UInt32 = 0
    var sparse: [SparseEntry] = []
    /// Which records belong to which lead.
    var leadIndex = LeadIndex()
    /// (event-id hash, seq) of the active segment's records; written to the footer at seal time.
    var eventEntries: [(hash: UInt64, seq: UInt64)] = []
    /// Each record's type and offset, when every record was noted in this process (see ``TypeColumn``).
    var types = TypeColumn()
    /// The ids behind `types` (writer and recovery only).
    var typeDictionary = TypeDictionary()
    /// Bytes since the last sparse-index entry began.
    var bytesSinceSparse = 0
    /// When the active segment received its first record (monotonic ms), for age-based sealing.
    var firstRecordMonotonicMs: Int64? = nil
    /// Damage found in this segment at startup or by reads.
    var damage: [CorruptionReport] = []
    /// Total file size on disk (records and footer).
    var fileSize: Int
    /// The size of the segment in hot format (equal to `fileSize` for hot segments).
    var rawFileSize: Int = 0
    /// The size of the sealed hot segment's type index file, when it has one (``TypeIndexFile``).
    var typeIndexBytes = 0
    /// For restored segments: when they stop being queryable (ms since the epoch).
    var expiresMs: Int64? = nil

    init(id: UInt64, path: String, data: SegmentData, header: SegmentHeader, isSealed: Bool, dataEnd: Int, fileSize: Int) {
        self.id = id
        self.path = path
        self.fileName = Self.lastComponent(path)
        self.data = data
        self.header = header
        self.isSealed = isSealed
        self.dataEnd = dataEnd
        self.fileSize = fileSize
    }

    static func lastComponent(_ path: String) -> String { String(path.split(separator: "/").last ?? "") }

    /// The hot file's descriptor, for the writer and recovery (hot segments only).
    var fd: Int32 { (data as? HotFile)?.fd ?? -1 }

    static func fileName(id: UInt64, sealed: Bool) -> String {
        let hex = String(id, radix: 16)
        return String(repeating: "0", count: max(0, 16 - hex.count)) + hex + (sealed ? ".seg" : ".open")
    }

    /// The type id of the record whose bytes (header and payload) are `record`, for ``noteRecord``
    /// (``TypeColumn/unknown`` when its type reference does not lie inside them). Called under the
    /// state lock once the segment is visible to readers.
    func typeID(record: UnsafeRawBufferPointer, fields: EventFieldRefs) -> UInt8 {
        typeDictionary.id(record: record, fields: fields, column: &types)
    }

    /// Records one committed record in the in-memory indexes.
    func noteRecord(
        seq: UInt64, timestampMs: Int64, leadHash: UInt32, eventIDHash: UInt64, typeID: UInt8, offset: Int, size: Int, sparseInterval: Int
    ) {
        // Seqs are consecutive inside a segment: the column's n-th entry is the record with seq firstSeq + n.
        if types.count == Int(count) { types.append(id: typeID, offset: offset) }
        if count == 0 { firstSeq = seq }
        count += 1
        lastSeq = seq
        minTs = min(minTs, timestampMs)
        maxTs = max(maxTs, timestampMs)
        if sparse.isEmpty || bytesSinceSparse >= sparseInterval {
            sparse.append(SparseEntry(firstSeq: seq, offset: UInt64(offset), minTs: timestampMs, maxTs: timestampMs))
            bytesSinceSparse = 0
        } else {
            let last = sparse.count - 1
            sparse[last].minTs = min(sparse[last].minTs, timestampMs)
            sparse[last].maxTs = max(sparse[last].maxTs, timestampMs)
        }
        bytesSinceSparse += size
        leadIndex.append(UInt64(leadHash) << 32 | UInt64(offset))
        eventEntries.append((eventIDHash, seq))
    }

    /// A value snapshot for readers.
    func view() -> SegmentView {
        SegmentView(
            id: id, data: data, tier: tier, isSealed: isSealed, dataEnd: dataEnd, count: count, firstSeq: firstSeq, lastSeq: lastSeq,
            minTs: minTs, maxTs: maxTs, chainCRC: chainCRC, sparse: sparse, leadIndex: leadIndex, types: types, fileName: fileName)
    }
}

/// A reader's consistent picture of one segment: it never changes under the reader.
struct SegmentView: Sendable {
    var id: UInt64
    var data: SegmentData
    var tier: Tier
    var isSealed: Bool
    var dataEnd: Int
    var count: UInt64
    var firstSeq: UInt64
    var lastSeq: UInt64
    var minTs: Int64
    var maxTs: Int64
    /// CRC32C of every record byte in order (a sealed segment's `data_crc`).
    var chainCRC: UInt32
    var sparse: [SparseEntry]
    var leadIndex: LeadIndex
    var types: TypeColumn
    var fileName: String

    /// Offsets of the records whose lead hash matches, in file (and so seq) order; nil when the index
    /// in the footer cannot be read or fails its checks.
    func offsets(forLeadHash hash: UInt32) -> [Int]? {
        leadIndex.offsets(forLeadHash: hash)
    }

    /// The index of the sparse entry whose run holds `seq`.
    func sparseIndex(forSeq seq: UInt64) -> Int? {
        guard !sparse.isEmpty, seq >= firstSeq, seq <= lastSeq else { return nil }
        var low = 0, high = sparse.count
        while low < high {
            let mid = (low + high) / 2
            if sparse[mid].firstSeq <= seq { low = mid + 1 } else { high = mid }
        }
        return low - 1
    }

    /// The offset of the first record after `offset`, from the lead index (which holds every record's offset):
    /// where a read resumes after a damaged record, whose length cannot be trusted.
    func nextRecordOffset(after offset: Int) -> Int? {
        leadIndex.nextOffset(after: offset)
    }

    /// The type column, when it holds every record of the view and the view's file can serve picked records.
    var typeColumn: TypeColumn? {
        guard types.count == Int(count), count > 0, !types.isBroken, servesPickedRecords else { return nil }
        return types
    }

    /// Whether a scan by type may read this view's records one by one, as its type column picks them: a hot
    /// file, or a warm one (the picks come in offset order, so each block that holds one is decompressed once,
    /// through the block cache, and the others are skipped).
    var servesPickedRecords: Bool { data is HotFile || data is WarmFile }

    /// Where the run of sparse entry `i` ends.
    func runEnd(_ i: Int) -> Int {
        i + 1 < sparse.count ? Int(sparse[i + 1].offset) : dataEnd
    }
}

/// Which tier a queryable segment is in.
public enum Tier: String, Sendable {
    /// Raw records, the active segment and recent sealed ones.
    case hot
    /// LZ4-compressed blocks, still queryable.
    case warm
    /// Brought back from a cold archive by `restore`, queryable until released or expired.
    case restored
}

/// Bytes of a segment's record area, by offset, whatever the file's layout.
protocol SegmentData: AnyObject, Sendable {
    /// Up to `count` bytes at `offset` (fewer at the end of the data).
    func read(count: Int, at offset: Int) throws(StoreError) -> [UInt8]
    /// Fills `buffer` with the bytes at `offset`; returns how many it read (fewer only at the end of the data).
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(StoreError) -> Int
    /// Starts reading `count` bytes at `offset` from the disk without waiting (a hint; warm files ignore it).
    func prefetch(_ offset: Int, count: Int)
}

extension SegmentData {
    /// Through ``read(count:at:)`` and a copy (warm files decompress into arrays anyway).
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(StoreError) -> Int {
        let bytes = try read(count: buffer.count, at: offset)
        let n = min(bytes.count, buffer.count)
        bytes.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        return n
    }

    func prefetch(_ offset: Int, count: Int) {}
}

/// Segment data read from a descriptor exactly as the file stores it.
protocol StoredFileData: SegmentData {
    var io: FileOperations { get }
    var fd: Int32 { get }
}

extension StoredFileData {
    func read(count: Int, at offset: Int) throws(StoreError) -> [UInt8] {
        guard ReadsWithoutWaiting.active else { return try io.read(fd, count: count, at: offset) }
        var bytes = [UInt8](repeating: 0, count: count)
        try storeErrors { try bytes.withUnsafeMutableBytes { _ = try read(into: $0, at: offset) } }
        return bytes
    }

    /// One `pread` straight into the caller's buffer (from the page cache only, for a read that may not wait).
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(StoreError) -> Int {
        guard ReadsWithoutWaiting.active else { return try io.pread(fd, into: buffer, at: offset) }
        guard let n = io.preadWithoutWaiting(fd, into: buffer, at: offset) else { throw StoreError.wouldBlock }
        return n
    }

    func prefetch(_ offset: Int, count: Int) { io.prefetch(fd, offset: offset, count: count) }
}

/// A raw (hot format) segment file. The descriptor closes when the last reader lets go.
final class HotFile: StoredFileData, @unchecked Sendable {
    let io: FileOperations
    let fd: Int32

    init(io: FileOperations, fd: Int32) {
        self.io = io
        self.fd = fd
    }

    deinit {
        io.close(fd)
    }
}

/// A warm file's bytes as stored rather than its records: what a version 3 warm segment's lead
/// index reads its lead section through. It holds the file, so the descriptor stays open with it.
final class WarmStoredBytes: StoredFileData {
    let file: WarmFile
    var io: FileOperations { file.io }
    var fd: Int32 { file.fd }

    init(_ file: WarmFile) {
        self.file = file
    }
}

/// Reads and checks records from a segment file.
struct RecordReader {

    enum ReadFailure: Error {
        case corrupt(offset: Int, reason: String)
    }

    /// Checks and decodes the record at the start of `bytes` (which holds at least its header);
    /// returns nil when more bytes are needed to hold the whole record. With `checksum` false
    /// every check but the CRC is made (the caller checks it before it serves the record).
    static func decode(
        _ bytes: UnsafeRawBufferPointer, at offset: Int, maxPayload: Int = SegmentFormat.maximumPayload, checksum: Bool = true
    ) -> Result<(RecordHeader, Int)?, ReadFailure> {
        guard bytes.count >= SegmentFormat.recordHeaderSize else { return .success(nil) }
        let header = RecordHeader.decode(bytes)
        guard header.payloadLength <= maxPayload else {
            return .failure(.corrupt(offset: offset, reason: "record length \(header.payloadLength) exceeds the maximum"))
        }
        let total = header.totalSize
        guard bytes.count >= total else { return .success(nil) }
        guard !checksum || RecordHeader.checksumMatches(bytes, totalSize: total) else {
            return .failure(.corrupt(offset: offset, reason: "record checksum mismatch"))
        }
        guard header.seq <= SegmentFormat.maximumSeq else {
            return .failure(.corrupt(offset: offset, reason: "seq \(header.seq) out of range"))
        }
        guard header.kind == SegmentFormat.kindEvent || header.kind >= 0x80 else {
            return .failure(.corrupt(offset: offset, reason: "unknown record kind \(header.kind)"))
        }
        // Without the CRC check, the field references are checked with it, for the records that are served.
        guard header.kind >= 0x80 || !checksum || header.fieldsAreConsistent() else {
            return .failure(.corrupt(offset: offset, reason: "record field references are inconsistent"))
        }
        return .success((header, total))
    }

    /// Reads the whole record at `offset` (bounded by `limit`) and checks its CRC.
    func readRecord(_ data: SegmentData, at offset: Int, limit: Int) throws(StoreError) -> (RecordHeader, [UInt8])? {
        try withRecord(data, at: offset, limit: limit) { header, record in
            (header, Array(UnsafeRawBufferPointer(rebasing: record[SegmentFormat.recordHeaderSize...])))
        }
    }

    /// What a record's first read asks for: records up to this size take one `pread`.
    static let firstReadBytes = 4096

    /// Reads the whole record at `offset` (bounded by `limit`), checks it (CRC included) and passes
    /// its header and bytes (header and payload, valid only during the call) to `body`; nil when the
    /// record is absent or damaged. A record of up to 4 KiB takes one `pread` into a stack buffer.
    func withRecord<T>(
        _ data: SegmentData, at offset: Int, limit: Int, _ body: (RecordHeader, UnsafeRawBufferPointer) throws(StoreError) -> T
    ) throws(StoreError) -> T? {
        let guess = min(Self.firstReadBytes, limit - offset)
        guard guess >= SegmentFormat.recordHeaderSize else { return nil }
        let first: Result<T?, StoreError>? = withUnsafeTemporaryAllocation(byteCount: guess, alignment: 16) { scratch in
            let n: Int
            do throws(StoreError) { n = try data.read(into: scratch, at: offset) } catch { return .failure(error) }
            let bytes = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(scratch)[0..<n])
            switch Self.decode(bytes, at: offset) {
            case .success(let (header, total)?):
                do throws(StoreError) {
                    return .success(try body(header, UnsafeRawBufferPointer(rebasing: bytes[0..<total])))
                } catch {
                    return .failure(error)
                }
            case .failure:
                return .success(nil)
            case .success(nil):
                // Longer than the guess (or cut short): read it whole below.
                return n >= SegmentFormat.recordHeaderSize && n == guess ? nil : .success(nil)
            }
        }
        if let first { return try first.get() }
        let head = try data.read(count: SegmentFormat.recordHeaderSize, at: offset)
        guard head.count == SegmentFormat.recordHeaderSize else { return nil }
        let total = head.withUnsafeBytes { RecordHeader.decode($0).totalSize }
        guard total <= SegmentFormat.recordHeaderSize + SegmentFormat.maximumPayload, offset + total <= limit else { return nil }
        let bytes = try data.read(count: total, at: offset)
        guard case .success(let (header, size)?) = bytes.withUnsafeBytes({ Self.decode($0, at: offset) }) else { return nil }
        return try storeErrors { try bytes.withUnsafeBytes { try body(header, UnsafeRawBufferPointer(rebasing: $0[0..<size])) } }
    }
}
