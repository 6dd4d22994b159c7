import CLZ4
import LeadTrailEvents

/// The warm file format (`warm/<id>.lz4s`): a sealed hot segment rewritten as
/// independently decompressible LZ4 blocks.
///
/// Layout: the segment header (tier 1), then blocks of about 64 KiB of whole
/// records (each a 32-byte block header and the LZ4 block), then a footer that
/// keeps the hot segment's header, index sections and trailer (so offsets and
/// indexes stay those of the hot file, and the hot file can be rebuilt byte for
/// byte for the cold tier), the block directory, and a 64-byte warm trailer.
///
/// Version 2 adds a dictionary: about 64 KiB of the segment's own
/// records, sampled across it, stored (LZ4-compressed, twice) after the blocks.
/// Every block is compressed with LZ4HC against it, so each block starts with
/// history instead of empty and still decompresses on its own. The hot index
/// sections are kept delta-coded, byte-transposed and LZ4-compressed, and
/// checked against the hot trailer's index CRC when decoded.
///
/// Version 3 (written now) stores the lead section (8 bytes an event) as it is,
/// between the dictionary and the footer, and codes only the other index
/// sections: a warm segment's lead index then stays on disk like a hot one's
/// (``FooterLeadRun``) instead of taking 8 bytes an event of memory. Versions 1
/// (no dictionary, index sections verbatim) and 2 are still read.
/// `Documentation.docc/FileFormat.md` gives all three byte by byte.
enum WarmFormat {
    static let blockHeaderSize = 32
    static let directoryEntrySize = 24
    static let trailerSize = 64
    static let targetBlockSize = 64 << 10
    /// Version 1: blocks without a dictionary, the hot index sections verbatim.
    static let trailerMagicV1: [UInt8] = Array("LTRLWRM\u{1}".utf8)
    /// Version 2: a dictionary, LZ4HC blocks, the hot index sections encoded.
    static let trailerMagicV2: [UInt8] = Array("LTRLWRM\u{2}".utf8)
    /// Version 3: as version 2, but the lead section is stored as it is, outside the encoded index.
    static let trailerMagicV3: [UInt8] = Array("LTRLWRM\u{3}".utf8)
    /// The version ``build(hotFile:trailer:sparse:version:)`` writes unless told otherwise.
    static let currentVersion = 3
    /// Block flag: the bytes are stored uncompressed (LZ4 did not make them smaller).
    static let flagStored: UInt32 = 1
    /// Block flag (version 2): compressed against the file's dictionary.
    static let flagDictionary: UInt32 = 2
    /// Block flag (version 2): this block is one of the two copies of the dictionary.
    static let flagDictionaryCopy: UInt32 = 4
    /// The largest dictionary (LZ4 looks back at most 64 KiB).
    static let maximumDictionarySize = 64 << 10
    /// A dictionary smaller than this is not worth its two stored copies: such files have none.
    static let minimumDictionarySize = 4 << 10
    /// LZ4HC level of the blocks: ratio close to the slowest levels, compression ~100 MB/s here,
    /// decompression as fast as plain LZ4.
    static let blockLevel: Int32 = 5
    /// LZ4HC level of the encoded index sections (small, compressed once).
    static let indexLevel: Int32 = 9

    struct BlockEntry: Equatable {
        var rawOffset: UInt64
        var fileOffset: UInt64
        var compressedLength: UInt32
        var rawLength: UInt32
    }

    /// Where a version 2 file keeps its dictionary: two copies, one right after the other.
    struct DictionaryLocation: Equatable, Sendable {
        /// File offset of the first copy's block header.
        var offset: Int
        var storedLength: Int
        var rawLength: Int
        /// Masked CRC32C of the raw dictionary bytes.
        var crc: UInt32

        var copySize: Int { WarmFormat.blockHeaderSize + storedLength }
        var end: Int { offset + 2 * copySize }
    }

    struct Trailer {
        /// 1, 2 or 3.
        var version: Int = WarmFormat.currentVersion
        var blockCount: UInt32
        var footerStart: UInt64
        var hotFooterLength: UInt64
        var directoryCRC: UInt32
        /// Versions 2 and 3: the dictionary (nil when the file has none, and always in version 1).
        var dictionary: DictionaryLocation? = nil
        /// Version 3: where the stored lead section starts (it ends where the footer starts).
        var leadSectionOffset: Int? = nil

        func encode() -> [UInt8] {
            var w = ByteWriter(capacity: WarmFormat.trailerSize)
            w.raw([WarmFormat.trailerMagicV1, WarmFormat.trailerMagicV2, WarmFormat.trailerMagicV3][version - 1])  // 0
            w.u32(blockCount)                                          // 8
            w.u32(UInt32(dictionary?.rawLength ?? 0))                  // 12
            w.u64(footerStart)                                         // 16
            w.u64(hotFooterLength)                                     // 24
            w.u32(directoryCRC)                                        // 32
            w.u32(UInt32(dictionary?.storedLength ?? 0))               // 36
            w.u64(UInt64(dictionary?.offset ?? indexStart))            // 40
            w.u32(dictionary?.crc ?? 0)                                // 48
            w.u64(UInt64(leadSectionOffset ?? 0))                      // 52
            w.u32(CRC32C.mask(CRC32C.checksum(w.bytes)))               // 60
            return w.bytes
        }

        static func decode(_ b: UnsafeRawBufferPointer) -> Trailer? {
            guard b.count == WarmFormat.trailerSize,
                  CRC32C.mask(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[0..<60]))) == b.u32(at: 60)
            else { return nil }
            let magic = Array(b[0..<8])
            guard let version = [WarmFormat.trailerMagicV1, WarmFormat.trailerMagicV2, WarmFormat.trailerMagicV3].firstIndex(of: magic).map({ $0 + 1 })
            else { return nil }
            // Offsets no file can have would trap in the readers' Int arithmetic.
            guard b.u64(at: 16) <= SegmentFormat.maximumFileSize, b.u64(at: 24) <= SegmentFormat.maximumFileSize else { return nil }
            var trailer = Trailer(version: version, blockCount: b.u32(at: 8), footerStart: b.u64(at: 16), hotFooterLength: b.u64(at: 24), directoryCRC: b.u32(at: 32))
            if version >= 2 {
                if version == 3 {
                    let leads = b.u64(at: 52)
                    guard leads >= UInt64(SegmentFormat.headerSize), leads <= trailer.footerStart else { return nil }
                    trailer.leadSectionOffset = Int(leads)
                } else {
                    guard b.u64(at: 52) == 0 else { return nil }
                }
                let rawLength = Int(b.u32(at: 12)), storedLength = Int(b.u32(at: 36)), offset = b.u64(at: 40)
                guard rawLength <= WarmFormat.maximumDictionarySize, storedLength <= Int(LZ4_compressBound(Int32(WarmFormat.maximumDictionarySize))),
                      offset <= UInt64(trailer.indexStart)
                else { return nil }
                if rawLength > 0 {
                    trailer.dictionary = DictionaryLocation(offset: Int(offset), storedLength: storedLength, rawLength: rawLength, crc: b.u32(at: 48))
                } else {
                    guard storedLength == 0, offset == UInt64(trailer.indexStart) else { return nil }
                }
            }
            return trailer
        }

        /// Where what follows the blocks and the dictionary starts: the stored lead section (version 3), or the footer.
        var indexStart: Int { leadSectionOffset ?? Int(footerStart) }
        /// Where the data blocks end: the dictionary copies, or ``indexStart``.
        var blocksEnd: Int { dictionary?.offset ?? indexStart }
    }

    // MARK: - Blocks

    /// LZ4-compresses one block (fast mode, no dictionary: version 1's blocks); returns the stored bytes and whether they are compressed.
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
    /// A block compressed against a dictionary needs the same dictionary.
    static func decompress(_ stored: UnsafeRawBufferPointer, rawLength: Int, compressed: Bool, dictionary: [UInt8]? = nil) -> [UInt8]? {
        guard compressed else { return stored.count == rawLength ? Array(stored) : nil }
        // LZ4 never expands more than ~255 times: a larger claimed length is damage, refused before allocating.
        guard rawLength <= Int(Int32.max), stored.count <= Int(Int32.max), rawLength <= stored.count * 256 + 64 else { return nil }
        var out = [UInt8](repeating: 0, count: rawLength)
        let n = out.withUnsafeMutableBytes { dst -> Int32 in
            let src = stored.baseAddress?.assumingMemoryBound(to: CChar.self)
            let to = dst.baseAddress?.assumingMemoryBound(to: CChar.self)
            guard let dictionary, !dictionary.isEmpty else {
                return LZ4_decompress_safe(src, to, Int32(stored.count), Int32(rawLength))
            }
            return dictionary.withUnsafeBytes { d in
                LZ4_decompress_safe_usingDict(src, to, Int32(stored.count), Int32(rawLength), d.baseAddress?.assumingMemoryBound(to: CChar.self), Int32(d.count))
            }
        }
        return Int(n) == rawLength ? out : nil
    }

    /// LZ4HC, optionally against a dictionary, reusing one stream state for a whole file.
    final class HCCompressor {
        private let stream: OpaquePointer?

        init() { stream = OpaquePointer(LZ4_createStreamHC()) }
        deinit { if let stream { _ = LZ4_freeStreamHC(UnsafeMutablePointer(stream)) } }

        /// The stored bytes of one block and whether they are compressed (not when LZ4HC could not make them smaller).
        func compress(_ raw: UnsafeRawBufferPointer, level: Int32, dictionary: UnsafeRawBufferPointer?) -> ([UInt8], compressed: Bool) {
            guard let stream, raw.count > 0, raw.count <= Int(LZ4_MAX_INPUT_SIZE) else { return (Array(raw), false) }
            let bound = Int(LZ4_compressBound(Int32(raw.count)))
            var out = [UInt8](repeating: 0, count: bound)
            let written = out.withUnsafeMutableBytes { dst in
                leadtrail_lz4hc_compress_dict(
                    UnsafeMutablePointer(stream), level, dictionary?.baseAddress?.assumingMemoryBound(to: CChar.self), Int32(dictionary?.count ?? 0),
                    raw.baseAddress?.assumingMemoryBound(to: CChar.self), dst.baseAddress?.assumingMemoryBound(to: CChar.self),
                    Int32(raw.count), Int32(bound))
            }
            guard written > 0, Int(written) < raw.count else { return (Array(raw), false) }
            out.removeLast(bound - Int(written))
            return (out, true)
        }
    }

    /// Samples whole records spread over the segment's records into a dictionary of at most
    /// `maximumDictionarySize` bytes (one sixteenth of the records at most); empty when too small to pay.
    static func sampleDictionary(hotFile bytes: [UInt8], dataEnd: Int, sparse: [SparseEntry]) -> [UInt8] {
        let dataBytes = dataEnd - SegmentFormat.headerSize
        let size = min(maximumDictionarySize, dataBytes / 16)
        guard size >= minimumDictionarySize, !sparse.isEmpty else { return [] }
        // Sparse entries start runs of about 4 KiB at record boundaries: take the first record of evenly spaced runs.
        let averageRun = max(1, dataBytes / sparse.count)
        let runsWanted = max(1, size / min(averageRun, 1400))
        let step = max(1, sparse.count / runsWanted)
        var dictionary: [UInt8] = []
        dictionary.reserveCapacity(size)
        bytes.withUnsafeBytes { b in
            var i = step / 2
            while dictionary.count < size, i < sparse.count {
                let offset = Int(sparse[i].offset)
                i += step
                guard offset >= SegmentFormat.headerSize, offset + SegmentFormat.recordHeaderSize <= dataEnd else { continue }
                let total = SegmentFormat.recordHeaderSize + Int(b.u32(at: offset + 4))
                guard total <= dataEnd - offset else { continue }
                let take = min(total, size - dictionary.count)
                dictionary.append(contentsOf: UnsafeRawBufferPointer(rebasing: b[offset..<(offset + take)]))
            }
        }
        return dictionary.count >= minimumDictionarySize ? dictionary : []
    }

    /// Builds a warm file (version 3, or 2 for the tests that check older files still read) from the
    /// bytes of a sealed hot segment file.
    ///
    /// Blocks hold whole records, cut at the hot segment's sparse-index runs, so
    /// every block starts at a known record boundary.
    static func build(hotFile bytes: [UInt8], trailer: SegmentTrailer, sparse: [SparseEntry], version: Int = currentVersion) -> [UInt8] {
        precondition(version == 2 || version == 3)
        let dataEnd = Int(trailer.dataEnd)
        var out = ByteWriter(capacity: dataEnd / 6)
        out.raw(warmHeader(hotFile: bytes))

        let dictionary = sampleDictionary(hotFile: bytes, dataEnd: dataEnd, sparse: sparse)
        let compressor = HCCompressor()
        var directory: [BlockEntry] = []
        bytes.withUnsafeBytes { all in
            dictionary.withUnsafeBytes { dict in
                for (start, end) in blockRanges(dataEnd: dataEnd, sparse: sparse) {
                    let raw = UnsafeRawBufferPointer(rebasing: all[start..<end])
                    let (stored, compressed) = compressor.compress(raw, level: blockLevel, dictionary: dictionary.isEmpty ? nil : dict)
                    let fileOffset = out.bytes.count
                    appendBlock(&out, stored: stored, rawLength: raw.count, flags: compressed ? (dictionary.isEmpty ? 0 : flagDictionary) : flagStored, rawOffset: UInt64(start))
                    directory.append(BlockEntry(rawOffset: UInt64(start), fileOffset: UInt64(fileOffset), compressedLength: UInt32(stored.count), rawLength: UInt32(raw.count)))
                }
            }
        }
        // The dictionary, twice: one damaged copy must not make every block unreadable.
        var location: DictionaryLocation? = nil
        if !dictionary.isEmpty {
            let (stored, compressed) = dictionary.withUnsafeBytes { compressor.compress($0, level: indexLevel, dictionary: nil) }
            location = DictionaryLocation(offset: out.bytes.count, storedLength: stored.count, rawLength: dictionary.count, crc: CRC32C.mask(CRC32C.checksum(dictionary)))
            for copy in 0..<2 {
                appendBlock(&out, stored: stored, rawLength: dictionary.count, flags: flagDictionaryCopy | (compressed ? 0 : flagStored), rawOffset: UInt64(copy))
            }
        }
        // Version 3: the lead section as it is in the hot file.
        let index = dataEnd..<(bytes.count - SegmentFormat.trailerSize)
        var leadSectionOffset: Int? = nil
        if version == 3 {
            leadSectionOffset = out.bytes.count
            let leads = IndexCoding.leadSection(trailer)
            out.raw(Array(bytes[(index.lowerBound + leads.lowerBound)..<(index.lowerBound + leads.upperBound)]))
        }
        // Footer: hot header + hot index sections (encoded) + hot trailer; then the directory.
        let footerStart = out.bytes.count
        out.raw(Array(bytes[0..<SegmentFormat.headerSize]))
        let encodedIndex = bytes.withUnsafeBytes { b in
            IndexCoding.encode(UnsafeRawBufferPointer(rebasing: b[index]), trailer: trailer, leadsApart: version == 3)
        }
        out.raw(encodedIndex)
        out.raw(Array(bytes[(bytes.count - SegmentFormat.trailerSize)...]))
        let hotFooterLength = SegmentFormat.headerSize + encodedIndex.count + SegmentFormat.trailerSize
        appendDirectory(&out, directory)
        let directoryCRC = CRC32C.mask(CRC32C.checksum(Array(out.bytes[footerStart...])))
        out.raw(Trailer(
            version: version, blockCount: UInt32(directory.count), footerStart: UInt64(footerStart), hotFooterLength: UInt64(hotFooterLength),
            directoryCRC: directoryCRC, dictionary: location, leadSectionOffset: leadSectionOffset
        ).encode())
        return out.bytes
    }

    /// Builds a version 1 warm file (what releases before version 2 wrote): for the tests that check old files still read.
    static func buildVersion1(hotFile bytes: [UInt8], trailer: SegmentTrailer, sparse: [SparseEntry]) -> [UInt8] {
        let dataEnd = Int(trailer.dataEnd)
        var out = ByteWriter(capacity: dataEnd / 2)
        out.raw(warmHeader(hotFile: bytes))
        var directory: [BlockEntry] = []
        bytes.withUnsafeBytes { all in
            for (start, end) in blockRanges(dataEnd: dataEnd, sparse: sparse) {
                let raw = UnsafeRawBufferPointer(rebasing: all[start..<end])
                let (stored, compressed) = compress(raw)
                let fileOffset = out.bytes.count
                appendBlock(&out, stored: stored, rawLength: raw.count, flags: compressed ? 0 : flagStored, rawOffset: UInt64(start))
                directory.append(BlockEntry(rawOffset: UInt64(start), fileOffset: UInt64(fileOffset), compressedLength: UInt32(stored.count), rawLength: UInt32(raw.count)))
            }
        }
        let footerStart = out.bytes.count
        out.raw(Array(bytes[0..<SegmentFormat.headerSize]))
        out.raw(Array(bytes[dataEnd...]))
        let hotFooterLength = SegmentFormat.headerSize + (bytes.count - dataEnd)
        appendDirectory(&out, directory)
        let directoryCRC = CRC32C.mask(CRC32C.checksum(Array(out.bytes[footerStart...])))
        out.raw(Trailer(version: 1, blockCount: UInt32(directory.count), footerStart: UInt64(footerStart), hotFooterLength: UInt64(hotFooterLength), directoryCRC: directoryCRC).encode())
        return out.bytes
    }

    /// The hot header with tier = 1.
    static func warmHeader(hotFile bytes: [UInt8]) -> [UInt8] {
        var header = bytes.withUnsafeBytes { b -> SegmentHeader? in
            guard b.count >= SegmentFormat.headerSize else { return nil }
            if case .success(let h) = SegmentHeader.decode(UnsafeRawBufferPointer(rebasing: b[0..<SegmentFormat.headerSize])) { return h }
            return nil
        } ?? SegmentHeader(segmentID: 0, baseSeq: 0, createdMs: 0, previousLastSeq: 0, previousChainCRC: 0)
        header.tier = 1
        return header.encode()
    }

    /// Block boundaries: run starts, grouped to about `targetBlockSize`.
    static func blockRanges(dataEnd: Int, sparse: [SparseEntry]) -> [(Int, Int)] {
        var cuts: [Int] = [SegmentFormat.headerSize]
        for entry in sparse.dropFirst() where Int(entry.offset) - cuts[cuts.count - 1] >= targetBlockSize && Int(entry.offset) < dataEnd {
            cuts.append(Int(entry.offset))
        }
        cuts.append(dataEnd)
        return (0..<(cuts.count - 1)).compactMap { cuts[$0] < cuts[$0 + 1] ? (cuts[$0], cuts[$0 + 1]) : nil }
    }

    static func appendBlock(_ out: inout ByteWriter, stored: [UInt8], rawLength: Int, flags: UInt32, rawOffset: UInt64) {
        out.u32(UInt32(stored.count))
        out.u32(UInt32(rawLength))
        out.u32(CRC32C.mask(CRC32C.checksum(stored)))
        out.u32(flags)
        out.u32(0)
        out.u32(0)
        out.u64(rawOffset)
        out.raw(stored)
    }

    static func appendDirectory(_ out: inout ByteWriter, _ directory: [BlockEntry]) {
        for entry in directory {
            out.u64(entry.rawOffset)
            out.u64(entry.fileOffset)
            out.u32(entry.compressedLength)
            out.u32(entry.rawLength)
        }
    }

    /// Checks one stored block (its 32-byte header and bytes, `b`) against what the directory or trailer expects,
    /// and decompresses it; nil when anything is off. `allowedFlags` depends on the file's version and the block's role.
    static func checkBlock(
        _ b: UnsafeRawBufferPointer, compressedLength: Int, rawLength: Int, rawOffset: UInt64, allowedFlags: UInt32,
        dictionary: () -> [UInt8]?
    ) -> [UInt8]? {
        guard b.count == blockHeaderSize + compressedLength,
              b.u32(at: 0) == UInt32(compressedLength), b.u32(at: 4) == UInt32(rawLength),
              b.u64(at: 24) == rawOffset, b.u32(at: 12) & ~allowedFlags == 0, b.u32(at: 16) == 0, b.u32(at: 20) == 0
        else { return nil }
        let flags = b.u32(at: 12)
        // A block is either stored or compressed, never both.
        guard flags & flagStored == 0 || flags & flagDictionary == 0 else { return nil }
        let payload = UnsafeRawBufferPointer(rebasing: b[blockHeaderSize...])
        guard CRC32C.mask(CRC32C.checksum(payload)) == b.u32(at: 8) else { return nil }
        var dict: [UInt8]? = nil
        if flags & flagDictionary != 0 {
            guard let loaded = dictionary() else { return nil }
            dict = loaded
        }
        return decompress(payload, rawLength: rawLength, compressed: flags & flagStored == 0, dictionary: dict)
    }

    /// The raw dictionary from one stored copy (header and bytes), or nil when that copy is damaged.
    static func checkDictionaryCopy(_ b: UnsafeRawBufferPointer, copy: Int, location: DictionaryLocation) -> [UInt8]? {
        guard let raw = checkBlock(
            b, compressedLength: location.storedLength, rawLength: location.rawLength, rawOffset: UInt64(copy),
            allowedFlags: flagStored | flagDictionaryCopy, dictionary: { nil }),
            b.u32(at: 12) & flagDictionaryCopy != 0,
            CRC32C.mask(CRC32C.checksum(raw)) == location.crc
        else { return nil }
        return raw
    }

    // MARK: - Footer

    /// A warm file's footer, checked and decoded.
    struct Footer {
        var trailer: Trailer
        var hotHeader: [UInt8]
        /// The hot index sections, exactly as in the hot file (checked against the hot trailer's index CRC).
        var hotIndex: [UInt8]
        var hotTrailer: SegmentTrailer
        /// The hot trailer's 80 bytes as stored.
        var hotTrailerBytes: [UInt8]
        var blocks: [BlockEntry]
    }

    /// Checks and decodes the footer bytes (`[footerStart, size - trailerSize)`) of a warm file, with
    /// (version 3) the stored lead section (`[leadSectionOffset, footerStart)`).
    static func decodeFooter(_ footer: [UInt8], trailer: Trailer, leadSection: UnsafeRawBufferPointer? = nil) -> Result<Footer, FormatError> {
        func failure(_ reason: String) -> Result<Footer, FormatError> { .failure(FormatError(reason)) }
        let hotFooterLength = Int(trailer.hotFooterLength)
        guard hotFooterLength >= SegmentFormat.headerSize + SegmentFormat.trailerSize,
              footer.count == hotFooterLength + Int(trailer.blockCount) * directoryEntrySize
        else { return failure("warm trailer sizes do not match the file") }
        guard CRC32C.mask(CRC32C.checksum(footer)) == trailer.directoryCRC else { return failure("warm footer checksum mismatch") }
        return footer.withUnsafeBytes { f -> Result<Footer, FormatError> in
            guard let hotTrailer = SegmentTrailer.decode(UnsafeRawBufferPointer(rebasing: f[(hotFooterLength - SegmentFormat.trailerSize)..<hotFooterLength])) else {
                return failure("the hot trailer inside the warm footer is damaged")
            }
            let stored = UnsafeRawBufferPointer(rebasing: f[SegmentFormat.headerSize..<(hotFooterLength - SegmentFormat.trailerSize)])
            let hotIndex: [UInt8]
            if trailer.version == 1 {
                hotIndex = Array(stored)
            } else {
                guard trailer.version == 2 || leadSection?.count == IndexCoding.leadSection(hotTrailer).count else {
                    return failure("the warm lead section is not as long as the hot trailer's record count says")
                }
                guard let decoded = IndexCoding.decode(stored, trailer: hotTrailer, leadSection: trailer.version == 3 ? leadSection : nil) else {
                    return failure("the hot index inside the warm footer would not decode")
                }
                hotIndex = decoded
            }
            guard hotIndex.count == hotTrailer.indexSize, CRC32C.mask(CRC32C.checksum(hotIndex)) == hotTrailer.indexCRC else {
                return failure("the hot index inside the warm footer is damaged")
            }
            let blocks: [BlockEntry] = (0..<Int(trailer.blockCount)).map { i in
                let at = hotFooterLength + i * directoryEntrySize
                return BlockEntry(rawOffset: f.u64(at: at), fileOffset: f.u64(at: at + 8), compressedLength: f.u32(at: at + 16), rawLength: f.u32(at: at + 20))
            }
            return .success(Footer(
                trailer: trailer, hotHeader: Array(f[0..<SegmentFormat.headerSize]), hotIndex: hotIndex, hotTrailer: hotTrailer,
                hotTrailerBytes: Array(f[(hotFooterLength - SegmentFormat.trailerSize)..<hotFooterLength]), blocks: blocks))
        }
    }
}

/// The coding of a hot segment's index sections in warm files of version 2 and 3: every u64
/// column (sparse first seqs, offsets, min and max timestamps; lead entries, in version 2 only;
/// event-id hashes; their seqs) delta-coded from the previous value and zigzag-mapped,
/// the values' bytes transposed into eight planes (byte 0 of every value, then
/// byte 1, ...), and the planes LZ4HC-compressed as one block. Sorted columns
/// become small numbers whose high planes are runs of zeros. Decoding gives the
/// exact original bytes; callers check them against the hot trailer's index CRC.
enum IndexCoding {
    /// The column layout of the index sections: (start value index, count, stride in values) per column;
    /// `leadsApart` leaves out the lead entries (version 3 stores them as they are).
    static func columns(_ trailer: SegmentTrailer, leadsApart: Bool) -> [(start: Int, count: Int, stride: Int)] {
        let sparse = Int(trailer.sparseCount), records = Int(trailer.recordCount)
        let leadStart = sparse * 4, eventStart = leadStart + records
        return [
            (0, sparse, 4), (1, sparse, 4), (2, sparse, 4), (3, sparse, 4),
            (leadStart, leadsApart ? 0 : records, 1),
            (eventStart, records, 2), (eventStart + 1, records, 2),
        ]
    }

    /// Where the lead entries lie in the index sections, in bytes.
    static func leadSection(_ trailer: SegmentTrailer) -> Range<Int> {
        let start = Int(trailer.sparseCount) * SegmentFormat.sparseEntrySize
        return start..<(start + Int(trailer.recordCount) * SegmentFormat.leadEntrySize)
    }

    static func encode(_ index: UnsafeRawBufferPointer, trailer: SegmentTrailer, leadsApart: Bool = false) -> [UInt8] {
        let n = (index.count - (leadsApart ? leadSection(trailer).count : 0)) / 8
        guard index.count == trailer.indexSize, n > 0 else { return [] }
        var planes = [UInt8](repeating: 0, count: n * 8)
        planes.withUnsafeMutableBytes { out in
            var position = 0
            for column in columns(trailer, leadsApart: leadsApart) {
                var previous: UInt64 = 0
                for i in 0..<column.count {
                    let value = index.u64(at: (column.start + i * column.stride) * 8)
                    let delta = Int64(bitPattern: value &- previous)
                    previous = value
                    let zigzag = UInt64(bitPattern: (delta << 1) ^ (delta >> 63))
                    for byte in 0..<8 { out[byte * n + position] = UInt8(truncatingIfNeeded: zigzag >> (8 * UInt64(byte))) }
                    position += 1
                }
            }
        }
        let compressor = WarmFormat.HCCompressor()
        let (stored, compressed) = planes.withUnsafeBytes { compressor.compress($0, level: WarmFormat.indexLevel, dictionary: nil) }
        // One byte says how the planes are kept: 1 = LZ4, 0 = as they are.
        return [compressed ? 1 : 0] + stored
    }

    /// The index sections from their coding; `leadSection`, the lead entries stored apart (version 3),
    /// is copied in where they belong (nil when it does not have their size).
    static func decode(_ stored: UnsafeRawBufferPointer, trailer: SegmentTrailer, leadSection: UnsafeRawBufferPointer? = nil) -> [UInt8]? {
        let size = trailer.indexSize
        let leads = IndexCoding.leadSection(trailer)
        if let leadSection, leadSection.count != leads.count { return nil }
        let n = (size - (leadSection == nil ? 0 : leads.count)) / 8
        guard size > 0 else { return stored.isEmpty ? [] : nil }
        guard stored.count >= 1, stored[0] <= 1 else { return nil }
        let body = UnsafeRawBufferPointer(rebasing: stored[1...])
        guard let planes = WarmFormat.decompress(body, rawLength: n * 8, compressed: stored[0] == 1) else { return nil }
        var index = [UInt8](repeating: 0, count: size)
        planes.withUnsafeBytes { p in
            index.withUnsafeMutableBytes { out in
                if let leadSection, let base = leadSection.baseAddress, leads.count > 0 {
                    UnsafeMutableRawBufferPointer(rebasing: out[leads]).copyMemory(from: UnsafeRawBufferPointer(start: base, count: leads.count))
                }
                var position = 0
                for column in columns(trailer, leadsApart: leadSection != nil) {
                    var previous: UInt64 = 0
                    for i in 0..<column.count {
                        var zigzag: UInt64 = 0
                        for byte in 0..<8 { zigzag |= UInt64(p[byte * n + position]) << (8 * UInt64(byte)) }
                        position += 1
                        let delta = Int64(bitPattern: zigzag >> 1) ^ -Int64(bitPattern: zigzag & 1)
                        previous = previous &+ UInt64(bitPattern: delta)
                        out.storeBytes(of: previous.littleEndian, toByteOffset: (column.start + i * column.stride) * 8, as: UInt64.self)
                    }
                }
            }
        }
        return index
    }
}

/// Decompressed warm blocks (and dictionaries), shared by every warm file of a store and bounded in all: the
/// last ``capacity`` blocks used, the least recently used going first. A scan across many warm segments, or
/// timelines touching many, keep a few blocks in memory, not a few for every file they touched.
final class WarmBlockCache: @unchecked Sendable {
    let capacity: Int
    private let lock = ConditionLock()
    /// Least recently used first. A file's key is unique for the cache's life (never an address, which a new
    /// file could reuse).
    private var entries: [(file: UInt64, index: Int, bytes: [UInt8])] = []
    private var lastFileKey: UInt64 = 0

    init(capacity: Int = 32) {
        self.capacity = capacity
    }

    /// A key for a newly opened file.
    func makeFileKey() -> UInt64 {
        lock.withLock {
            lastFileKey += 1
            return lastFileKey
        }
    }

    func block(file: UInt64, index: Int) -> [UInt8]? {
        lock.withLock {
            guard let at = entries.lastIndex(where: { $0.file == file && $0.index == index }) else { return nil }
            let entry = entries.remove(at: at)
            entries.append(entry)
            return entry.bytes
        }
    }

    func insert(file: UInt64, index: Int, bytes: [UInt8]) {
        lock.withLock {
            entries.removeAll { $0.file == file && $0.index == index }
            entries.append((file, index, bytes))
            if entries.count > capacity { entries.removeFirst(entries.count - capacity) }
        }
    }

    /// Blocks held now.
    var count: Int { lock.withLock { entries.count } }
}

/// The record bytes of a warm file: blocks are read, checked and decompressed
/// on demand, and kept in the store's ``WarmBlockCache``.
final class WarmFile: SegmentData, @unchecked Sendable {
    let io: FileOperations
    let fd: Int32
    let name: String
    let blocks: [WarmFormat.BlockEntry]
    /// 1, 2 or 3.
    let version: Int
    /// Versions 2 and 3: where the dictionary is (read on the first block that needs it).
    let dictionaryLocation: WarmFormat.DictionaryLocation?
    private let cache: WarmBlockCache
    private let cacheKey: UInt64
    /// Called with a description when a block fails its checks.
    var onDamage: (@Sendable (CorruptionReport) -> Void)?

    init(
        io: FileOperations, fd: Int32, name: String, blocks: [WarmFormat.BlockEntry], version: Int = 1,
        dictionary: WarmFormat.DictionaryLocation? = nil, cache: WarmBlockCache
    ) {
        self.cache = cache
        self.cacheKey = cache.makeFileKey()
        self.io = io
        self.fd = fd
        self.name = name
        self.blocks = blocks
        self.version = version
        self.dictionaryLocation = dictionary
    }

    deinit {
        io.close(fd)
    }

    /// The dictionary's key in the block cache (blocks are numbered from 0).
    static let dictionaryIndex = -1

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

    /// The file's dictionary, from the first of its two copies that passes its checks (kept in the block cache,
    /// as block -1); nil when the file has none or both copies are damaged (a damaged copy is reported).
    func loadDictionary() throws(StoreError) -> [UInt8]? {
        guard let location = dictionaryLocation else { return nil }
        if let dictionary = cache.block(file: cacheKey, index: Self.dictionaryIndex) { return dictionary }
        let stored = try io.read(fd, count: 2 * location.copySize, at: location.offset)
        var found: [UInt8]? = nil
        for copy in 0..<2 {
            let start = copy * location.copySize
            let raw: [UInt8]? = stored.count >= start + location.copySize ? stored.withUnsafeBytes { b in
                WarmFormat.checkDictionaryCopy(UnsafeRawBufferPointer(rebasing: b[start..<(start + location.copySize)]), copy: copy, location: location)
            } : nil
            if let raw {
                if found == nil { found = raw }
            } else {
                onDamage?(CorruptionReport(file: name, offset: location.offset + start, reason: "warm dictionary copy \(copy + 1) of 2 failed its checksum\(copy == 0 ? "; the other copy is used" : "")"))
            }
        }
        if let found { cache.insert(file: cacheKey, index: Self.dictionaryIndex, bytes: found) }
        return found
    }

    /// The decompressed bytes of block `index`, checked against its CRC; nil when damaged.
    func block(_ index: Int) throws(StoreError) -> [UInt8]? {
        if let hit = cache.block(file: cacheKey, index: index) { return hit }
        let entry = blocks[index]
        let stored = try io.read(fd, count: WarmFormat.blockHeaderSize + Int(entry.compressedLength), at: Int(entry.fileOffset))
        let allowed = version == 1 ? WarmFormat.flagStored : WarmFormat.flagStored | WarmFormat.flagDictionary
        var dictionaryError: StoreError? = nil
        let bytes: [UInt8]? = stored.withUnsafeBytes { b in
            WarmFormat.checkBlock(
                b, compressedLength: Int(entry.compressedLength), rawLength: Int(entry.rawLength), rawOffset: entry.rawOffset, allowedFlags: allowed
            ) {
                do throws(StoreError) {
                    return try loadDictionary()
                } catch {
                    dictionaryError = error
                    return nil
                }
            }
        }
        if let dictionaryError { throw dictionaryError }
        guard let bytes else {
            onDamage?(CorruptionReport(file: name, offset: Int(entry.fileOffset), reason: "warm block failed its checksum or would not decompress; not served"))
            return nil
        }
        cache.insert(file: cacheKey, index: index, bytes: bytes)
        return bytes
    }

    /// Like ``read(count:at:)``, but copies each block's bytes straight into `buffer` (scans read through this).
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(StoreError) -> Int {
        if ReadsWithoutWaiting.active { throw StoreError.wouldBlock }
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
        if ReadsWithoutWaiting.active { throw StoreError.wouldBlock }
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
    /// Checks a whole warm file (trailer, footer, dictionary copies, every block's CRC and
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
        let footerStart = Int(trailer.footerStart)
        let footerEnd = bytes.count - trailerSize
        guard footerStart >= SegmentFormat.headerSize, footerStart <= footerEnd, trailer.blocksEnd >= SegmentFormat.headerSize
        else { return damage(footerStart, "warm trailer sizes do not match the file") }
        let footer: Footer
        let decoded = bytes.withUnsafeBytes { b in
            decodeFooter(
                Array(bytes[footerStart..<footerEnd]), trailer: trailer,
                leadSection: trailer.leadSectionOffset.map { UnsafeRawBufferPointer(rebasing: b[$0..<footerStart]) })
        }
        switch decoded {
        case .success(let decoded): footer = decoded
        case .failure(let failure): return damage(footerStart, failure.reason)
        }
        var hot = footer.hotHeader
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
        // Versions 2 and 3: two copies of the dictionary between the blocks and the lead section or footer; one good
        // copy is enough to read.
        var dictionary: [UInt8]? = nil
        if let location = trailer.dictionary {
            guard location.end == trailer.indexStart else {
                return damage(location.offset, "warm dictionary copies do not end where the \(trailer.leadSectionOffset == nil ? "footer" : "lead section") starts")
            }
            bytes.withUnsafeBytes { b in
                for copy in 0..<2 {
                    let start = location.offset + copy * location.copySize
                    if let raw = checkDictionaryCopy(UnsafeRawBufferPointer(rebasing: b[start..<(start + location.copySize)]), copy: copy, location: location) {
                        if dictionary == nil { dictionary = raw }
                    } else {
                        report.corrupt.append(CorruptionReport(file: file, offset: start, reason: "warm dictionary copy \(copy + 1) of 2 failed its checksum"))
                    }
                }
            }
        }
        let blocksEnd = trailer.blocksEnd
        let allowed = trailer.version == 1 ? flagStored : flagStored | flagDictionary
        // Blocks tile the area between the header and the dictionary (or the footer), in order.
        var expectedOffset = SegmentFormat.headerSize
        var expectedRaw = SegmentFormat.headerSize
        bytes.withUnsafeBytes { b in
            for (i, entry) in footer.blocks.enumerated() {
                let compressed = Int(entry.compressedLength), raw = Int(entry.rawLength)
                guard entry.fileOffset == UInt64(expectedOffset), entry.rawOffset == UInt64(expectedRaw),
                      expectedOffset + blockHeaderSize + compressed <= blocksEnd
                else {
                    damaged = true
                    _ = damage(expectedOffset, "block \(i) lies outside the block area or out of order")
                    return
                }
                let fileOffset = expectedOffset
                expectedOffset += blockHeaderSize + compressed
                expectedRaw += raw
                guard let block = checkBlock(
                    UnsafeRawBufferPointer(rebasing: b[fileOffset..<(fileOffset + blockHeaderSize + compressed)]),
                    compressedLength: compressed, rawLength: raw, rawOffset: entry.rawOffset, allowedFlags: allowed, dictionary: { dictionary })
                else {
                    damaged = true
                    _ = damage(fileOffset, "block \(i) failed its checksum or would not decompress")
                    continue
                }
                hot.append(contentsOf: block)
            }
        }
        if damaged { return nil }
        if expectedOffset != blocksEnd {
            let next = trailer.dictionary != nil ? "dictionary" : trailer.leadSectionOffset != nil ? "lead section" : "footer"
            return damage(expectedOffset, "\(blocksEnd - expectedOffset) bytes between the last block and the \(next)")
        }
        hot.append(contentsOf: footer.hotIndex)
        hot.append(contentsOf: footer.hotTrailerBytes)
        return hot
    }
}
