import LeadTrailEvents

/// The last point known durable: `{segment, durable offset, last seq}`.
///
/// Written crash-safely about once a second after a successful sync. Recovery
/// uses it to tell a torn tail (bytes after it: a crash mid-write, cut off
/// quietly) from corruption (a bad record before it: reported loudly).
struct Checkpoint: Equatable {
    var segmentID: UInt64
    var durableOffset: UInt64
    var lastSeq: UInt64

    static let magic: [UInt8] = Array("LTRLCKP\u{1}".utf8)
    static let size = 40

    func encode() -> [UInt8] {
        var w = ByteWriter(capacity: Self.size)
        w.raw(Self.magic)
        w.u64(segmentID)
        w.u64(durableOffset)
        w.u64(lastSeq)
        w.u32(0)
        w.u32(CRC32C.mask(CRC32C.checksum(w.bytes)))
        return w.bytes
    }

    static func decode(_ bytes: [UInt8]) -> Checkpoint? {
        guard bytes.count == size, Array(bytes[0..<8]) == magic else { return nil }
        return bytes.withUnsafeBytes { b in
            guard CRC32C.mask(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[0..<36]))) == b.u32(at: 36) else { return nil }
            guard b.u64(at: 24) <= SegmentFormat.maximumSeq, b.u64(at: 16) <= SegmentFormat.maximumFileSize else { return nil }
            return Checkpoint(segmentID: b.u64(at: 8), durableOffset: b.u64(at: 16), lastSeq: b.u64(at: 24))
        }
    }
}
