/// Reads the records of a byte range one after another, in chunks of up to
/// 1 MiB (a longer record is read whole), checking each one's length, CRC,
/// kind and field references. Recovery, scans and verify all read through it.
struct RecordCursor {
    /// What is at the cursor.
    enum Step {
        /// A whole, valid record; its bytes are ``withRecordBytes(_:)`` until the next step.
        case record(RecordHeader, size: Int)
        /// The range (or the file) ends before the record does.
        case incomplete
        /// The record fails a check; its length cannot be trusted.
        case corrupt(String)
        case end
    }

    static let chunkSize = 1 << 20

    private let read: (Int, Int) throws(StoreError) -> [UInt8]
    let end: Int
    /// Where the next record starts.
    private(set) var offset: Int
    /// Where the record last returned starts.
    private(set) var recordOffset = 0
    private var chunk: [UInt8] = []
    private var chunkStart = 0
    private var recordRange = 0..<0

    /// - Parameter read: `(count, offset)` → up to `count` bytes at `offset`.
    init(from: Int, to end: Int, read: @escaping (Int, Int) throws(StoreError) -> [UInt8]) {
        self.read = read
        self.end = end
        self.offset = from
    }

    /// Moves to a known record boundary (after damage, whose length is not to be trusted).
    mutating func seek(to offset: Int) {
        self.offset = offset
        chunk = []
    }

    private mutating func load(_ count: Int) throws(StoreError) {
        chunkStart = offset
        chunk = try read(count, offset)
    }

    private func decodeHere() -> Result<(RecordHeader, Int)?, RecordReader.ReadFailure> {
        chunk.withUnsafeBytes { RecordReader.decode(UnsafeRawBufferPointer(rebasing: $0[(offset - chunkStart)...]), at: offset) }
    }

    mutating func next() throws(StoreError) -> Step {
        guard offset < end else { return .end }
        if chunk.isEmpty || offset + SegmentFormat.recordHeaderSize > chunkStart + chunk.count {
            try load(min(Self.chunkSize, end - offset))
        }
        var decoded = decodeHere()
        if case .success(nil) = decoded, chunk.count - (offset - chunkStart) >= SegmentFormat.recordHeaderSize {
            // The record runs past the chunk: read it whole (the decoder already bounded its length).
            let total = chunk.withUnsafeBytes { RecordHeader.decode(UnsafeRawBufferPointer(rebasing: $0[(offset - chunkStart)...])).totalSize }
            guard offset + total <= end else { return .incomplete }
            try load(max(total, min(Self.chunkSize, end - offset)))
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
            return .record(header, size: total)
        }
    }

    /// The bytes (header and payload) of the record last returned.
    func withRecordBytes<T>(_ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        try chunk.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[recordRange])) }
    }
}
