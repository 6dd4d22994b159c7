import LeadTrailEvents

/// Entry points for the libFuzzer targets in `Fuzz/` (`@_spi(Fuzzing)`, not API).
///
/// Each runs one of the engine's readers of on-disk bytes over an arbitrary buffer, the
/// way recovery, reads and `verify` run them over files. With `fixChecksums`, the
/// checksums that guard the structure (segment header and trailer, record CRCs, warm
/// trailer, directory and block CRCs, the manifest's CRC) are first recomputed over the
/// fuzzed bytes, so the fuzzer gets past them to the parsing behind (LevelDB's
/// `FixChecksum`): a file with valid checksums and bad content must not crash either.
/// Each returns a number derived from what it decoded, so nothing is optimised away.
@_spi(Fuzzing) public enum FuzzEntryPoints {
    /// A hot segment file (sealed when `sealed`), through `verify`'s segment check
    /// (header, trailer, index CRC, every record, the footer's agreement with them).
    public static func segmentFile(_ input: [UInt8], sealed: Bool, fixChecksums: Bool) -> Int {
        var bytes = input
        if fixChecksums { fixSegmentChecksums(&bytes) }
        var report = VerifyReport(segments: 0, records: 0, corrupt: [], warnings: [])
        let summary = try? EventStore.verifySegment(
            name: "fuzz", size: bytes.count, sealed: sealed, limit: nil, previous: nil, report: &report
        ) { (count, offset) throws(StoreError) in
            guard offset >= 0, count >= 0, offset <= bytes.count else { return [] }
            return Array(bytes[offset..<(offset + min(count, bytes.count - offset))])
        }
        return Int(summary?.records ?? 0) + report.corrupt.count
    }

    /// A buffer of records, read one after another as recovery's scan and reads do.
    public static func records(_ input: [UInt8], fixChecksums: Bool) -> Int {
        var bytes = input
        if fixChecksums { fixRecordChecksums(&bytes, from: 0) }
        var offset = 0
        var found = 0
        bytes.withUnsafeBytes { all in
            while offset < all.count {
                switch RecordReader.decode(UnsafeRawBufferPointer(rebasing: all[offset...]), at: offset) {
                case .success(let pair?):
                    let (header, total) = pair
                    let body = UnsafeRawBufferPointer(rebasing: all[(offset + SegmentFormat.recordHeaderSize)..<(offset + total)])
                    // What readers do with a record: its indexed fields and the JSON returned to clients.
                    for field in IndexedField.allCases {
                        _ = header.fields[field].value(in: body.assumingMemoryBound(to: UInt8.self))
                    }
                    var out: [UInt8] = []
                    RecordView.appendJSON(seq: header.seq, body: body, to: &out)
                    found += out.count
                    offset += total
                case .success(nil), .failure:
                    return
                }
            }
        }
        return found
    }

    /// A warm file: trailer, footer, every block's check and decompression, the hot file rebuilt from it.
    public static func warmFile(_ input: [UInt8], fixChecksums: Bool) -> Int {
        var bytes = input
        if fixChecksums { fixWarmChecksums(&bytes) }
        var report = VerifyReport(segments: 0, records: 0, corrupt: [], warnings: [])
        guard let hot = WarmFormat.rebuildHotFile(fromWarm: bytes, name: "fuzz", report: &report) else { return report.corrupt.count }
        return segmentFile(hot, sealed: true, fixChecksums: false)
    }

    /// A cold archive's manifest, and a gzip member inflated to the raw length its first four bytes give (under 256 KiB).
    public static func coldArchive(_ input: [UInt8], fixChecksums: Bool) -> Int {
        var total = 0
        var manifest = input
        if fixChecksums { fixManifestChecksum(&manifest) }
        if let archive = ColdArchive.decodeManifest(manifest) {
            total += archive.members.count + archive.archiveEnd + archive.idsEnd
            for member in archive.members { total += member.mayHoldLead(hash: 7) ? 1 : 0 }
        }
        if input.count >= 4 {
            let rawLength = Int(input.withUnsafeBytes { $0.u32(at: 0) } % (256 << 10))
            total += Gzip.decompress(Array(input[4...]), rawLength: rawLength)?.count ?? 0
        }
        return total
    }

    /// A type index file, checked against the segment its own header names (so that the fuzzer gets past that
    /// check to the names, ids and offsets behind it), with a sparse index of one entry at the first record.
    public static func typeIndex(_ input: [UInt8], fixChecksums: Bool) -> Int {
        var bytes = input
        guard bytes.count >= TypeIndexFile.headerSize + 4 else { return 0 }
        if fixChecksums {
            let crc = CRC32C.mask(CRC32C.checksum(Array(bytes[0..<(bytes.count - 4)])))
            withUnsafeBytes(of: crc.littleEndian) { bytes.replaceSubrange((bytes.count - 4)..., with: $0) }
        }
        let identity = bytes.withUnsafeBytes { b in
            TypeIndexFile.Identity(
                segmentID: b.u64(at: 16), recordCount: b.u64(at: 24), firstSeq: b.u64(at: 32), dataEnd: b.u64(at: 40), dataCRC: b.u32(at: 48))
        }
        let sparse = [SparseEntry(firstSeq: identity.firstSeq, offset: UInt64(SegmentFormat.headerSize), minTs: 0, maxTs: 0)]
        guard let column = TypeIndexFile.decode(bytes, for: identity, sparse: sparse) else { return 0 }
        return column.count + column.names.count
    }

    /// A checkpoint file.
    public static func checkpoint(_ input: [UInt8]) -> Int {
        Checkpoint.decode(input).map { Int(truncatingIfNeeded: $0.lastSeq) } ?? 0
    }

    // MARK: - Checksum fixing

    static func fixSegmentChecksums(_ bytes: inout [UInt8]) {
        guard bytes.count >= SegmentFormat.headerSize else { return }
        bytes.withUnsafeMutableBytes { b in
            let crc = CRC32C.mask(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[0..<60])))
            b.storeBytes(of: crc.littleEndian, toByteOffset: 60, as: UInt32.self)
        }
        if bytes.count >= SegmentFormat.headerSize + SegmentFormat.trailerSize {
            let start = bytes.count - SegmentFormat.trailerSize
            bytes.withUnsafeMutableBytes { b in
                let crc = CRC32C.mask(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[start..<(start + 76)])))
                b.storeBytes(of: crc.littleEndian, toByteOffset: start + 76, as: UInt32.self)
            }
        }
        fixRecordChecksums(&bytes, from: SegmentFormat.headerSize)
    }

    static func fixRecordChecksums(_ bytes: inout [UInt8], from start: Int) {
        var offset = start
        while offset + SegmentFormat.recordHeaderSize <= bytes.count {
            let length = bytes.withUnsafeBytes { Int($0.u32(at: offset + 4)) }
            let end = offset + SegmentFormat.recordHeaderSize + length
            guard length <= SegmentFormat.maximumPayload, end <= bytes.count else { return }
            let at = offset
            bytes.withUnsafeMutableBytes { b in
                let crc = CRC32C.mask(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[(at + 4)..<end])))
                b.storeBytes(of: crc.littleEndian, toByteOffset: at, as: UInt32.self)
            }
            offset = end
        }
    }

    static func fixWarmChecksums(_ bytes: inout [UInt8]) {
        let size = bytes.count
        guard size >= SegmentFormat.headerSize + WarmFormat.trailerSize else { return }
        let trailerStart = size - WarmFormat.trailerSize
        let (blockCount, footerStart, hotFooterLength) = bytes.withUnsafeBytes { b in
            (Int(b.u32(at: trailerStart + 8)), Int(truncatingIfNeeded: b.u64(at: trailerStart + 16)), Int(truncatingIfNeeded: b.u64(at: trailerStart + 24)))
        }
        if footerStart >= SegmentFormat.headerSize, footerStart <= trailerStart {
            // Block CRCs, for the blocks the directory lists inside the block area.
            if hotFooterLength >= 0, hotFooterLength <= trailerStart - footerStart {
                for i in 0..<blockCount {
                    let at = footerStart + hotFooterLength + i * WarmFormat.directoryEntrySize
                    guard at + WarmFormat.directoryEntrySize <= trailerStart else { break }
                    let (fileOffset, compressed) = bytes.withUnsafeBytes { b in (Int(truncatingIfNeeded: b.u64(at: at + 8)), Int(b.u32(at: at + 16))) }
                    guard fileOffset >= 0, fileOffset <= footerStart, compressed <= footerStart - fileOffset - WarmFormat.blockHeaderSize else { continue }
                    bytes.withUnsafeMutableBytes { b in
                        let start = fileOffset + WarmFormat.blockHeaderSize
                        let crc = CRC32C.mask(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[start..<(start + compressed)])))
                        b.storeBytes(of: crc.littleEndian, toByteOffset: fileOffset + 8, as: UInt32.self)
                    }
                }
            }
            // Version 2: the two dictionary copies' block CRCs.
            let (storedLength, dictionaryOffset) = bytes.withUnsafeBytes { b in
                (Int(b.u32(at: trailerStart + 36)), Int(truncatingIfNeeded: b.u64(at: trailerStart + 40)))
            }
            if bytes[trailerStart + 7] == 2, storedLength > 0, dictionaryOffset >= SegmentFormat.headerSize,
               dictionaryOffset <= footerStart, storedLength <= (footerStart - dictionaryOffset) / 2 - WarmFormat.blockHeaderSize {
                for copy in 0..<2 {
                    let at = dictionaryOffset + copy * (WarmFormat.blockHeaderSize + storedLength)
                    bytes.withUnsafeMutableBytes { b in
                        let start = at + WarmFormat.blockHeaderSize
                        let crc = CRC32C.mask(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[start..<(start + storedLength)])))
                        b.storeBytes(of: crc.littleEndian, toByteOffset: at + 8, as: UInt32.self)
                    }
                }
            }
            bytes.withUnsafeMutableBytes { b in
                let crc = CRC32C.mask(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[footerStart..<trailerStart])))
                b.storeBytes(of: crc.littleEndian, toByteOffset: trailerStart + 32, as: UInt32.self)
            }
        }
        bytes.withUnsafeMutableBytes { b in
            let crc = CRC32C.mask(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[trailerStart..<(trailerStart + 60)])))
            b.storeBytes(of: crc.littleEndian, toByteOffset: trailerStart + 60, as: UInt32.self)
        }
    }

    static func fixManifestChecksum(_ bytes: inout [UInt8]) {
        guard let newline = bytes.firstIndex(of: 0x0A) else { return }
        let json = Array(bytes[(newline + 1)...])
        let crc = String(CRC32C.mask(CRC32C.checksum(json)), radix: 16)
        bytes = Array("leadtrail-manifest v1 crc32c=\(crc) length=\(json.count)\n".utf8) + json
    }
}
