import CLZ4
import LeadTrailEvents

/// The warm file format (`warm/<id>.lz4s`): a sealed hot segment rewritten as
/// independently decompressible LZ4 blocks.
///
/// Layout: the segment header (tier 1), then blocks of about 64 KiB of whole
/// records (each a 32-byte block header and the LZ4 block), then a footer that
/// keeps the hot segment's header, index sections and trailer verbatim (so
/// offsets and indexes stay those of the hot file, and the hot file can be
/// rebuilt byte for byte for the cold tier), the block directory, and a 64-byte
/// warm trailer.
enum WarmFormat {
    static let blockHeaderSize = 32
    static let directoryEntrySize = 24
    static let trailerSize = 64
    static let targetBlockSize = 64 << 10
    static let trailerMagic: [UInt8] = Array("LTRLWRM\u{1}".utf8)
    /// Block flag: the bytes are stored uncompressed (LZ4 did not make them smaller).
    static let flagStored: UInt32 = 1

    struct BlockEntry: Equatable {
        var rawOffset: UInt64
        var fileOffset: UInt64
        var compressedLength: UInt32
        var rawLength: UInt32
    }

    struct Trailer {
        var blockCount: UInt32
        var footerStart: UInt64
        var hotFooterLength: UInt64
        var directoryCRC: UInt32

        func encode() -> [UInt8] {
            var w = ByteWriter(capacity: WarmFormat.trailerSize)
            w.raw(WarmFormat.trailerMagic)  // 0
            w.u32(blockCount)               // 8
            w.u32(0)                        // 12
            w.u64(footerStart)              // 16
            w.u64(hotFooterLength)          // 24
            w.u32(directoryCRC)             // 32
            w.zeros(24)                     // 36
            w.u32(CRC32C.mask(CRC32C.checksum(w.bytes)))  // 60
            return w.bytes
        }

        static func decode(_ b: UnsafeRawBufferPointer) -> Trailer? {
            guard b.count == WarmFormat.trailerSize, Array(b[0..<8]) == WarmFormat.trailerMagic,
                  CRC32C.mask(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[0..<60]))) == b.u32(at: 60)
            else { return nil }
            // Offsets no file can have would trap in the readers' Int arithmetic.
            guard b.u64(at: 16) <= SegmentFormat.maximumFileSize, b.u64(at: 24) <= SegmentFormat.maximumFileSize else { return nil }
            return Trailer(blockCount: b.u32(at: 8), footerStart: b.u64(at: 16), hotFooterLength: b.u64(at: 24), directoryCRC: b.u32(at: 32))
        }
    }

    /// LZ4-compresses one block; returns the stored bytes and whether they are compressed.
    static func compress(_ raw: UnsafeRawBufferPointer) -> ([UInt8], compressed: Bool) {
        let bound = Int(LZ4_compressBound(Int32(raw.count)))
        var out = [UInt8](repeating: 0, count: bound)
        let written = out.withUnsafeMutableBytes { dst in
            LZ4_compress_default(
                raw.baseAddress?.assumingMemoryBound(to: CChar.self), dst.baseAddress?.assumingMemoryBound(to: CChar.self),
                Int32(raw.count), Int32(bound))
        }
        guard written > 0, Int(written) < raw.count else { return (Array(raw), false) }
        out.removeLast(bound - Int(written))
        return (out, true)
    }

    /// Decompresses one block into exactly `rawLength` bytes, or nil when the bytes are damaged.
    static func decompress(_ stored: UnsafeRawBufferPointer, rawLength: Int, compressed: Bool) -> [UInt8]? {
        guard compressed else { return stored.count == rawLength ? Array(stored) : nil }
        var out = [UInt8](repeating: 0, count: rawLength)
        let n = out.withUnsafeMutableBytes { dst in
            LZ4_decompress_safe(
                stored.baseAddress?.assumingMemoryBound(to: CChar.self), dst.baseAddress?.assumingMemoryBound(to: CChar.self),
                Int32(stored.count), Int32(rawLength))
        }
        return Int(n) == rawLength ? out : nil
    }

    /// Builds a warm file from the bytes of a sealed hot segment file.
    ///
    /// Blocks hold whole records, cut at the hot segment's sparse-index runs, so
    /// every block starts at a known record boundary.
    static func build(hotFile bytes: [UInt8], trailer: SegmentTrailer, sparse: [SparseEntry]) -> [UInt8] {
        let dataEnd = Int(trailer.dataEnd)
        var out = ByteWriter(capacity: dataEnd / 2)
        // Header: the hot header with tier = 1.
        var header = bytes.withUnsafeBytes { b -> SegmentHeader? in
            if case .success(let h) = SegmentHeader.decode(UnsafeRawBufferPointer(rebasing: b[0..<SegmentFormat.headerSize])) { return h }
            return nil
        } ?? SegmentHeader(segmentID: 0, baseSeq: 0, createdMs: 0, previousLastSeq: 0, previousChainCRC: 0)
        header.tier = 1
        out.raw(header.encode())

        // Block boundaries: run starts, grouped to about targetBlockSize.
        var cuts: [Int] = [SegmentFormat.headerSize]
        for entry in sparse.dropFirst() where Int(entry.offset) - cuts[cuts.count - 1] >= targetBlockSize {
            cuts.append(Int(entry.offset))
        }
        cuts.append(dataEnd)
        var directory: [BlockEntry] = []
        bytes.withUnsafeBytes { all in
            for i in 0..<(cuts.count - 1) where cuts[i] < cuts[i + 1] {
                let raw = UnsafeRawBufferPointer(rebasing: all[cuts[i]..<cuts[i + 1]])
                let (stored, compressed) = compress(raw)
                let fileOffset = out.bytes.count
                out.u32(UInt32(stored.count))
                out.u32(UInt32(raw.count))
                out.u32(CRC32C.mask(CRC32C.checksum(stored)))
                out.u32(compressed ? 0 : flagStored)
                out.u32(0)
                out.u32(0)
                out.u64(UInt64(cuts[i]))
                out.raw(stored)
                directory.append(BlockEntry(rawOffset: UInt64(cuts[i]), fileOffset: UInt64(fileOffset), compressedLength: UInt32(stored.count), rawLength: UInt32(raw.count)))
            }
        }
        // Footer: hot header + hot index sections + hot trailer, verbatim; then the directory.
        let footerStart = out.bytes.count
        out.raw(Array(bytes[0..<SegmentFormat.headerSize]))
        out.raw(Array(bytes[dataEnd...]))
        let hotFooterLength = SegmentFormat.headerSize + (bytes.count - dataEnd)
        for entry in directory {
            out.u64(entry.rawOffset)
            out.u64(entry.fileOffset)
            out.u32(entry.compressedLength)
            out.u32(entry.rawLength)
        }
        let directoryCRC = CRC32C.mask(CRC32C.checksum(Array(out.bytes[footerStart...])))
        out.raw(Trailer(blockCount: UInt32(directory.count), footerStart: UInt64(footerStart), hotFooterLength: UInt64(hotFooterLength), directoryCRC: directoryCRC).encode())
        return out.bytes
    }
}

/// The record bytes of a warm file: blocks are read, checked and decompressed
/// on demand, and the last few are cached.
final class WarmFile: SegmentData, @unchecked Sendable {
    let io: FileOperations
    let fd: Int32
    let name: String
    let blocks: [WarmFormat.BlockEntry]
    private let lock = ConditionLock()
    private var cache: [(index: Int, bytes: [UInt8])] = []
    /// Called with a description when a block fails its checks.
    var onDamage: (@Sendable (CorruptionReport) -> Void)?

    init(io: FileOperations, fd: Int32, name: String, blocks: [WarmFormat.BlockEntry]) {
        self.io = io
        self.fd = fd
        self.name = name
        self.blocks = blocks
    }

    deinit {
        io.close(fd)
    }

    /// The index of the block holding raw offset `offset`.
    func blockIndex(containing offset: Int) -> Int? {
        var low = 0, high = blocks.count
        while low < high {
            let mid = (low + high) / 2
            if Int(blocks[mid].rawOffset) <= offset { low = mid + 1 } else { high = mid }
        }
        guard low > 0 else { return nil }
        let block = blocks[low - 1]
        return offset < Int(block.rawOffset) + Int(block.rawLength) ? low - 1 : nil
    }

    /// The decompressed bytes of block `index`, checked against its CRC; nil when damaged.
    func block(_ index: Int) throws(StoreError) -> [UInt8]? {
        if let hit = lock.withLock({ cache.first(where: { $0.index == index })?.bytes }) { return hit }
        let entry = blocks[index]
        let stored = try io.read(fd, count: WarmFormat.blockHeaderSize + Int(entry.compressedLength), at: Int(entry.fileOffset))
        let bytes: [UInt8]? = stored.withUnsafeBytes { b in
            guard b.count == WarmFormat.blockHeaderSize + Int(entry.compressedLength),
                  b.u32(at: 0) == entry.compressedLength, b.u32(at: 4) == entry.rawLength,
                  b.u64(at: 24) == entry.rawOffset, b.u32(at: 12) & ~WarmFormat.flagStored == 0, b.u32(at: 16) == 0, b.u32(at: 20) == 0
            else { return nil }
            let payload = UnsafeRawBufferPointer(rebasing: b[WarmFormat.blockHeaderSize...])
            guard CRC32C.mask(CRC32C.checksum(payload)) == b.u32(at: 8) else { return nil }
            return WarmFormat.decompress(payload, rawLength: Int(entry.rawLength), compressed: b.u32(at: 12) & WarmFormat.flagStored == 0)
        }
        guard let bytes else {
            onDamage?(CorruptionReport(file: name, offset: Int(entry.fileOffset), reason: "warm block failed its checksum or would not decompress; not served"))
            return nil
        }
        lock.withLock {
            cache.append((index, bytes))
            if cache.count > 8 { cache.removeFirst() }
        }
        return bytes
    }

    /// Like ``read(count:at:)``, but copies each block's bytes straight into `buffer` (scans read through this).
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(StoreError) -> Int {
        var done = 0
        while done < buffer.count, let index = blockIndex(containing: offset + done) {
            guard let bytes = try block(index) else { break }
            let start = offset + done - Int(blocks[index].rawOffset)
            let take = min(buffer.count - done, bytes.count - start)
            bytes.withUnsafeBytes { b in
                UnsafeMutableRawBufferPointer(rebasing: buffer[done..<(done + take)]).copyMemory(from: UnsafeRawBufferPointer(rebasing: b[start..<(start + take)]))
            }
            done += take
        }
        return done
    }

    func read(count: Int, at offset: Int) throws(StoreError) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count)
        var position = offset
        while out.count < count, let index = blockIndex(containing: position) {
            guard let bytes = try block(index) else { break }
            let start = position - Int(blocks[index].rawOffset)
            let take = min(count - out.count, bytes.count - start)
            out.append(contentsOf: bytes[start..<(start + take)])
            position += take
        }
        return out
    }
}

extension WarmFormat {
    /// Checks a whole warm file (trailer, footer, every block's CRC and
    /// decompression) and rebuilds the hot segment file it was made from.
    /// Damage is added to `report`; nil when the file cannot be rebuilt.
    static func rebuildHotFile(fromWarm bytes: [UInt8], name: String, report: inout VerifyReport) -> [UInt8]? {
        let file = "warm/" + name
        func damage(_ offset: Int?, _ reason: String) -> [UInt8]? {
            report.corrupt.append(CorruptionReport(file: file, offset: offset, reason: reason))
            return nil
        }
        guard bytes.count >= SegmentFormat.headerSize + trailerSize,
              let trailer = bytes.withUnsafeBytes({ Trailer.decode(UnsafeRawBufferPointer(rebasing: $0[(bytes.count - trailerSize)...])) })
        else { return damage(max(0, bytes.count - trailerSize), "warm trailer missing or damaged") }
        let footerStart = Int(trailer.footerStart), hotFooterLength = Int(trailer.hotFooterLength)
        let footerEnd = bytes.count - trailerSize
        guard footerStart >= SegmentFormat.headerSize, footerStart <= footerEnd,
              footerEnd - footerStart == hotFooterLength + Int(trailer.blockCount) * directoryEntrySize,
              hotFooterLength >= SegmentFormat.headerSize + SegmentFormat.trailerSize
        else { return damage(footerStart, "warm trailer sizes do not match the file") }
        let footer = Array(bytes[footerStart..<footerEnd])
        guard CRC32C.mask(CRC32C.checksum(footer)) == trailer.directoryCRC else { return damage(footerStart, "warm footer checksum mismatch") }
        var hot = Array(footer[0..<SegmentFormat.headerSize])
        // The warm file's own header is the hot one with tier 1 (nothing reads it, so check it here).
        var warmHeader: SegmentHeader? = nil
        if case .success(var h) = hot.withUnsafeBytes({ SegmentHeader.decode($0) }) {
            h.tier = 1
            warmHeader = h
        }
        if warmHeader?.encode() != Array(bytes[0..<SegmentFormat.headerSize]) {
            report.corrupt.append(CorruptionReport(file: file, offset: 0, reason: "warm header does not match the segment header kept in the footer"))
        }
        var damaged = false
        // Blocks tile the area between the header and the footer, in order.
        var expectedOffset = SegmentFormat.headerSize
        var expectedRaw = SegmentFormat.headerSize
        footer.withUnsafeBytes { f in
            bytes.withUnsafeBytes { b in
                for i in 0..<Int(trailer.blockCount) {
                    let at = hotFooterLength + i * directoryEntrySize
                    let rawOffset = f.u64(at: at), fileOffset64 = f.u64(at: at + 8)
                    let compressed = Int(f.u32(at: at + 16)), raw = Int(f.u32(at: at + 20))
                    guard fileOffset64 == UInt64(expectedOffset), rawOffset == UInt64(expectedRaw),
                          expectedOffset + blockHeaderSize + compressed <= footerStart
                    else {
                        damaged = true
                        _ = damage(expectedOffset, "block \(i) lies outside the block area or out of order")
                        return
                    }
                    let fileOffset = expectedOffset
                    expectedOffset += blockHeaderSize + compressed
                    expectedRaw += raw
                    let payload = UnsafeRawBufferPointer(rebasing: b[(fileOffset + blockHeaderSize)..<(fileOffset + blockHeaderSize + compressed)])
                    let flags = b.u32(at: fileOffset + 12)
                    guard b.u32(at: fileOffset) == UInt32(compressed), b.u32(at: fileOffset + 4) == UInt32(raw),
                          flags & ~flagStored == 0, b.u32(at: fileOffset + 16) == 0, b.u32(at: fileOffset + 20) == 0,
                          b.u64(at: fileOffset + 24) == rawOffset,
                          CRC32C.mask(CRC32C.checksum(payload)) == b.u32(at: fileOffset + 8),
                          let block = decompress(payload, rawLength: raw, compressed: flags & flagStored == 0)
                    else {
                        damaged = true
                        _ = damage(fileOffset, "block \(i) failed its checksum or would not decompress")
                        continue
                    }
                    hot.append(contentsOf: block)
                }
            }
        }
        if damaged { return nil }
        if expectedOffset != footerStart {
            return damage(expectedOffset, "\(footerStart - expectedOffset) bytes between the last block and the footer")
        }
        hot.append(contentsOf: footer[SegmentFormat.headerSize..<hotFooterLength])
        return hot
    }
}
