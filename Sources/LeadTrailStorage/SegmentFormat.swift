import LeadTrailEvents

/// The on-disk layout of segment files. `Documentation.docc/FileFormat.md`
/// describes it byte by byte; every multi-byte integer is little-endian.
enum SegmentFormat {
    static let version: UInt16 = 1
    static let headerSize = 64
    static let recordHeaderSize = 76
    static let trailerSize = 80
    static let sparseEntrySize = 32
    static let leadEntrySize = 8
    static let eventEntrySize = 16
    /// No record payload is ever larger than this, whatever the configuration says;
    /// a length field above it is corruption, checked before allocating.
    static let maximumPayload = 64 << 20
    /// No segment file is anywhere near this large (they are sealed at 2 GiB at most); a trailer or
    /// directory field above it is damage (with a valid checksum), refused before any offset arithmetic.
    static let maximumFileSize: UInt64 = 1 << 40
    /// No seq ever comes near this (2^62 events); a stored seq above it is damage with a valid checksum,
    /// refused before `seq + 1` could overflow.
    static let maximumSeq: UInt64 = 1 << 62

    static let headerMagic: [UInt8] = Array("LTRLSEG\u{1}".utf8)
    static let trailerMagic: [UInt8] = Array("LTRLEND\u{1}".utf8)

    /// Record kinds: 1 is an event. Kinds of 0x80 and above may be skipped by readers that do not know them.
    static let kindEvent: UInt8 = 1
    /// Record flag: the last record of an append batch (recovery never keeps part of a batch).
    static let flagBatchEnd: UInt8 = 1
}

/// Little-endian encoding into a growing byte array.
struct ByteWriter {
    var bytes: [UInt8]

    init(capacity: Int = 0) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    @inline(__always) mutating func u8(_ v: UInt8) { bytes.append(v) }
    @inline(__always) mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    @inline(__always) mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    @inline(__always) mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    @inline(__always) mutating func i64(_ v: Int64) { u64(UInt64(bitPattern: v)) }
    mutating func raw(_ v: [UInt8]) { bytes.append(contentsOf: v) }
    mutating func zeros(_ n: Int) { bytes.append(contentsOf: repeatElement(0, count: n)) }
}

/// Little-endian reads at fixed offsets of a buffer; callers check the length first.
extension UnsafeRawBufferPointer {
    @inline(__always) func u16(at offset: Int) -> UInt16 { UInt16(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self)) }
    @inline(__always) func u32(at offset: Int) -> UInt32 { UInt32(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
    @inline(__always) func u64(at offset: Int) -> UInt64 { UInt64(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt64.self)) }
    @inline(__always) func i64(at offset: Int) -> Int64 { Int64(bitPattern: u64(at: offset)) }
}

/// Why a header, trailer or record failed its checks.
struct FormatError: Error, CustomStringConvertible {
    var reason: String
    init(_ reason: String) { self.reason = reason }
    var description: String { reason }
}

/// The 64-byte header at the start of every segment file.
struct SegmentHeader: Equatable {
    var tier: UInt8 = 0
    var segmentID: UInt64
    var baseSeq: UInt64
    var createdMs: Int64
    var previousLastSeq: UInt64
    var previousChainCRC: UInt32

    func encode() -> [UInt8] {
        var w = ByteWriter(capacity: SegmentFormat.headerSize)
        w.raw(SegmentFormat.headerMagic)        // 0
        w.u16(SegmentFormat.version)            // 8
        w.u8(tier)                              // 10
        w.u8(0)                                 // 11 compatible flags
        w.u32(0)                                // 12 incompatible flags
        w.u64(segmentID)                        // 16
        w.u64(baseSeq)                          // 24
        w.i64(createdMs)                        // 32
        w.u64(previousLastSeq)                  // 40
        w.u32(previousChainCRC)                 // 48
        w.zeros(8)                              // 52 reserved
        w.u32(CRC32C.mask(CRC32C.checksum(w.bytes)))  // 60
        return w.bytes
    }

    static func decode(_ b: UnsafeRawBufferPointer) -> Result<SegmentHeader, FormatError> {
        guard b.count >= SegmentFormat.headerSize else { return .failure(FormatError("file is shorter than a segment header")) }
        guard Array(b[0..<8]) == SegmentFormat.headerMagic else { return .failure(FormatError("bad magic bytes: not a leadtrail segment")) }
        let crc = CRC32C.mask(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[0..<60])))
        guard crc == b.u32(at: 60) else { return .failure(FormatError("header checksum mismatch")) }
        let version = b.u16(at: 8)
        guard version == SegmentFormat.version else { return .failure(FormatError("unsupported format version \(version)")) }
        guard b.u32(at: 12) == 0 else { return .failure(FormatError("unknown incompatible flags \(b.u32(at: 12))")) }
        guard b.u64(at: 24) <= SegmentFormat.maximumSeq, b.u64(at: 40) <= SegmentFormat.maximumSeq else {
            return .failure(FormatError("seq out of range"))
        }
        return .success(SegmentHeader(
            tier: b[10], segmentID: b.u64(at: 16), baseSeq: b.u64(at: 24), createdMs: b.i64(at: 32),
            previousLastSeq: b.u64(at: 40), previousChainCRC: b.u32(at: 48)))
    }
}

/// The fixed part of a record, before its JSON payload.
struct RecordHeader {
    var payloadLength: Int
    var kind: UInt8
    var flags: UInt8
    var leadHash: UInt32
    var seq: UInt64
    var timestampMs: Int64
    var fields: EventFieldRefs

    var totalSize: Int { SegmentFormat.recordHeaderSize + payloadLength }

    /// Appends a whole record (header, then payload) to `out`; the CRC covers everything after itself.
    static func append(
        seq: UInt64, timestampMs: Int64, leadHash: UInt32, flags: UInt8, fields: EventFieldRefs,
        payload: UnsafeRawBufferPointer, to out: inout [UInt8]
    ) {
        withUnsafeTemporaryAllocation(byteCount: SegmentFormat.recordHeaderSize, alignment: 8) { h in
            h.storeBytes(of: UInt32(payload.count).littleEndian, toByteOffset: 4, as: UInt32.self)
            h[8] = SegmentFormat.kindEvent
            h[9] = flags
            h.storeBytes(of: UInt16(0), toByteOffset: 10, as: UInt16.self)  // reserved
            h.storeBytes(of: leadHash.littleEndian, toByteOffset: 12, as: UInt32.self)
            h.storeBytes(of: seq.littleEndian, toByteOffset: 16, as: UInt64.self)
            h.storeBytes(of: timestampMs.littleEndian, toByteOffset: 24, as: Int64.self)
            for k in 0..<EventFieldRefs.count {
                h.storeBytes(of: fields[k].offset.littleEndian, toByteOffset: 32 + 4 * k, as: UInt32.self)  // 7 offsets
                h.storeBytes(of: fields[k].packedLength.littleEndian, toByteOffset: 60 + 2 * k, as: UInt16.self)  // 7 lengths
            }
            h.storeBytes(of: UInt16(0), toByteOffset: 74, as: UInt16.self)  // reserved
            let crc = CRC32C.mask(CRC32C.checksum(payload, extending: CRC32C.checksum(UnsafeRawBufferPointer(rebasing: h[4...]))))
            h.storeBytes(of: crc.littleEndian, toByteOffset: 0, as: UInt32.self)
            out.append(contentsOf: UnsafeRawBufferPointer(h))
        }
        out.append(contentsOf: payload)
    }

    /// Appends a whole record for `payload` given as an array (tests, tools).
    static func append(
        seq: UInt64, timestampMs: Int64, leadHash: UInt32, flags: UInt8, fields: EventFieldRefs,
        payload: [UInt8], to out: inout [UInt8]
    ) {
        payload.withUnsafeBytes {
            append(seq: seq, timestampMs: timestampMs, leadHash: leadHash, flags: flags, fields: fields, payload: $0, to: &out)
        }
    }

    /// Decodes the header at the start of `b` (at least `recordHeaderSize` bytes). The CRC is not checked here.
    static func decode(_ b: UnsafeRawBufferPointer) -> RecordHeader {
        @inline(__always) func ref(_ k: Int) -> FieldRef { FieldRef(offset: b.u32(at: 32 + 4 * k), packedLength: b.u16(at: 60 + 2 * k)) }
        let fields = EventFieldRefs(ref(0), ref(1), ref(2), ref(3), ref(4), ref(5), ref(6))
        return RecordHeader(
            payloadLength: Int(b.u32(at: 4)), kind: b[8], flags: b[9], leadHash: b.u32(at: 12),
            seq: b.u64(at: 16), timestampMs: b.i64(at: 24), fields: fields)
    }

    /// Whether the whole record at the start of `b` (header and payload) matches its CRC.
    static func checksumMatches(_ b: UnsafeRawBufferPointer, totalSize: Int) -> Bool {
        let stored = b.u32(at: 0)
        let actual = CRC32C.mask(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[4..<totalSize])))
        return stored == actual
    }

    /// Field references must lie inside the payload; a record whose do not is corrupt.
    func fieldsAreConsistent() -> Bool {
        for k in 0..<EventFieldRefs.count where fields[k].isPresent {
            let ref = fields[k]
            if ref.range.upperBound > payloadLength || ref.offset == 0 { return false }
        }
        return fields[.type].isPresent && fields[.leadID].isPresent && fields[.eventID].isPresent
    }
}

/// One entry of a segment's sparse index: a run of records starting at `offset`.
struct SparseEntry: Equatable {
    var firstSeq: UInt64
    var offset: UInt64
    var minTs: Int64
    var maxTs: Int64

    /// The first `count` entries of a footer's index sections (`index`, which the caller has checked holds them).
    static func decode(_ index: UnsafeRawBufferPointer, count: Int) -> [SparseEntry] {
        (0..<count).map { i in
            let at = i * SegmentFormat.sparseEntrySize
            return SparseEntry(firstSeq: index.u64(at: at), offset: index.u64(at: at + 8), minTs: index.i64(at: at + 16), maxTs: index.i64(at: at + 24))
        }
    }
}

/// The fixed 80-byte trailer at the very end of a sealed segment.
struct SegmentTrailer: Equatable {
    var recordCount: UInt64
    var firstSeq: UInt64
    var lastSeq: UInt64
    var minTs: Int64
    var maxTs: Int64
    var dataEnd: UInt64
    var sparseCount: UInt32
    var indexCRC: UInt32
    var dataCRC: UInt32

    func encode() -> [UInt8] {
        var w = ByteWriter(capacity: SegmentFormat.trailerSize)
        w.raw(SegmentFormat.trailerMagic)  // 0
        w.u64(recordCount)                 // 8
        w.u64(firstSeq)                    // 16
        w.u64(lastSeq)                     // 24
        w.i64(minTs)                       // 32
        w.i64(maxTs)                       // 40
        w.u64(dataEnd)                     // 48
        w.u32(sparseCount)                 // 56
        w.u32(indexCRC)                    // 60
        w.u32(dataCRC)                     // 64
        w.zeros(8)                         // 68 reserved
        w.u32(CRC32C.mask(CRC32C.checksum(w.bytes)))  // 76
        return w.bytes
    }

    static func decode(_ b: UnsafeRawBufferPointer) -> SegmentTrailer? {
        guard b.count == SegmentFormat.trailerSize, Array(b[0..<8]) == SegmentFormat.trailerMagic else { return nil }
        let crc = CRC32C.mask(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[0..<76])))
        guard crc == b.u32(at: 76) else { return nil }
        // Sizes no segment can have would overflow the readers' offset arithmetic (indexSize, dataEnd + indexSize).
        guard b.u64(at: 48) <= SegmentFormat.maximumFileSize, b.u64(at: 8) <= SegmentFormat.maximumFileSize / UInt64(SegmentFormat.recordHeaderSize),
              b.u64(at: 16) <= SegmentFormat.maximumSeq, b.u64(at: 24) <= SegmentFormat.maximumSeq
        else { return nil }
        return SegmentTrailer(
            recordCount: b.u64(at: 8), firstSeq: b.u64(at: 16), lastSeq: b.u64(at: 24), minTs: b.i64(at: 32),
            maxTs: b.i64(at: 40), dataEnd: b.u64(at: 48), sparseCount: b.u32(at: 56), indexCRC: b.u32(at: 60),
            dataCRC: b.u32(at: 64))
    }

    /// The size of the index sections that precede the trailer.
    var indexSize: Int {
        Int(sparseCount) * SegmentFormat.sparseEntrySize
            + Int(recordCount) * (SegmentFormat.leadEntrySize + SegmentFormat.eventEntrySize)
    }
}
