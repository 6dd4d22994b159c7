/// Reads the records of a byte range one after another, in chunks of up to
/// ``chunkSize`` bytes (a longer record is read whole), checking each one's length,
/// kind, field references and, unless ``verifiesChecksums`` is off, its CRC.
/// Recovery, scans and verify all read through it.
///
/// The chunk buffer is allocated once per cursor and reused: reading a range
/// costs one `pread` per chunk and no allocation per record.
struct RecordCursor {
    /// What is at the cursor.
    enum Step {
        /// A whole record that passed the checks; its bytes are ``withRecordBytes(_:)`` until the next step.
        case record(RecordHeader, size: Int)
        /// The range (or the file) ends before the record does.
        case incomplete
        /// The record fails a check; its length cannot be trusted.
        case corrupt(String)
        case end
    }

    static let chunkSize = 1 << 20

    /// Fills the buffer with the bytes at an offset; returns how many it read (fewer only at the end of the data).
    typealias Loader = (UnsafeMutableRawBufferPointer, Int) throws(StoreError) -> Int

    private let load: Loader
    private let chunkSize: Int
    let end: Int
    /// Where the next record starts.
    private(set) var offset: Int
    /// Where the record last returned starts.
    private(set) var recordOffset = 0
    /// When false, ``next()`` checks the length, seq range and kind but not the CRC or the field
    /// references; the caller checks those for the records it keeps (a scan skips the records its
    /// filter rules out).
    var verifiesChecksums = true
    /// Whether the record last returned was checked in full (CRC included) by ``next()``.
    private(set) var lastRecordVerified = false
    private var buffer: ChunkBuffer
    private var chunkStart = 0
    private var chunkCount = 0
    private var recordRange = 0..<0

    /// - Parameter read: `(count, offset)` → up to `count` bytes at `offset`.
    init(from: Int, to end: Int, read: @escaping (Int, Int) throws(StoreError) -> [UInt8]) {
        self.init(from: from, to: end) { (target: UnsafeMutableRawBufferPointer, offset: Int) throws(StoreError) -> Int in
            let bytes = try read(target.count, offset)
            let n = min(bytes.count, target.count)
            bytes.withUnsafeBytes { target.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            return n
        }
    }

    /// Reads from a segment's data straight into the cursor's buffer.
    init(from: Int, to end: Int, data: SegmentData, chunkSize: Int = Self.chunkSize) {
        self.init(from: from, to: end, chunkSize: chunkSize) { (target: UnsafeMutableRawBufferPointer, offset: Int) throws(StoreError) -> Int in
            try data.read(into: target, at: offset)
        }
    }

    init(from: Int, to end: Int, chunkSize: Int = Self.chunkSize, loader: @escaping Loader) {
        self.load = loader
        self.end = end
        self.offset = from
        self.chunkSize = max(chunkSize, SegmentFormat.recordHeaderSize)
        self.buffer = ChunkBuffer(capacity: min(self.chunkSize, max(end - from, SegmentFormat.recordHeaderSize)))
    }

    /// Moves to a known record boundary (after damage, whose length is not to be trusted).
    mutating func seek(to offset: Int) {
        self.offset = offset
        chunkCount = 0
    }

    private mutating func fill(_ count: Int) throws(StoreError) {
        if count > buffer.bytes.count { buffer = ChunkBuffer(capacity: count) }
        chunkStart = offset
        chunkCount = 0
        chunkCount = try load(UnsafeMutableRawBufferPointer(rebasing: buffer.bytes[0..<count]), offset)
    }

    private func decodeHere() -> Result<(RecordHeader, Int)?, RecordReader.ReadFailure> {
        let here = offset - chunkStart
        return RecordReader.decode(
            UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer.bytes)[here..<chunkCount]), at: offset,
            checksum: verifiesChecksums)
    }

    mutating func next() throws(StoreError) -> Step {
        lastRecordVerified = false
        guard offset < end else { return .end }
        if chunkCount == 0 || offset < chunkStart || offset + SegmentFormat.recordHeaderSize > chunkStart + chunkCount {
            try fill(min(chunkSize, end - offset))
        }
        var decoded = decodeHere()
        if case .success(nil) = decoded, chunkCount - (offset - chunkStart) >= SegmentFormat.recordHeaderSize {
            // The record runs past the chunk: read it whole (the decoder already bounded its length).
            let here = offset - chunkStart
            let total = RecordHeader.decode(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer.bytes)[here...])).totalSize
            guard offset + total <= end else { return .incomplete }
            try fill(max(total, min(chunkSize, end - offset)))
            decoded = decodeHere()
        }
        switch decoded {
        case .success(nil):
            return .incomplete
        case .failure(.corrupt(_, let reason)):
            return .corrupt(reason)
        case .success(let (header, total)?):
            recordOffset = offset
            recordRange = (offset - chunkStart)..<(offset - chunkStart + total)
            offset += total
            lastRecordVerified = verifiesChecksums
            return .record(header, size: total)
        }
    }

    /// The bytes (header and payload) of the record last returned, valid until the next step or seek.
    var recordBytes: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer.bytes)[recordRange])
    }

    /// The bytes (header and payload) of the record last returned.
    func withRecordBytes<T>(_ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        try body(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer.bytes)[recordRange]))
    }
}

/// A cursor's reusable read buffer (replaced by a larger one for a record larger than a chunk).
/// Its memory never changes once allocated, so reading it needs no exclusivity checks.
final class ChunkBuffer {
    let bytes: UnsafeMutableRawBufferPointer

    init(capacity: Int) {
        bytes = .allocate(byteCount: max(capacity, 1), alignment: 16)
    }

    deinit {
        bytes.deallocate()
    }
}
