#if canImport(Glibc)
import Glibc
#endif
import Foundation
import LeadTrailEvents
import Logging

extension CrashPoint {
    // Tier moves are listed here so the reliability tests find them with the others.
}

extension EventStore {
    var warmDirectory: String { configuration.directory + "/warm" }
    var coldDirectory: String { configuration.directory + "/cold" }
    var restoredDirectory: String { configuration.directory + "/restored" }

    /// Applies the tier policy now: sealed hot segments whose newest event is
    /// older than `hot_days` become warm, warm ones older than `warm_days` go to
    /// a cold archive, restored data past its expiry is released, and archives
    /// past `retain_days` are deleted. Runs beside appends and reads; one run at a time.
    public func tier(now: Int64 = Timestamp.now()) throws(StoreError) -> TierReport {
        tierLock.lock()
        defer { tierLock.unlock() }
        var report = TierReport()
        let policy = configuration.tiers
        let hotCutoff = now - Int64(policy.hotDays * 86_400_000)
        let warmCutoff = now - Int64(policy.warmDays * 86_400_000)

        let candidates: [Segment] = stateLock.withLock {
            // The last segment is the active one, or one the writer has just sealed and not yet followed
            // with a new active segment: never tiered.
            let last = segments.last
            return segments.filter { $0 !== last && $0.isSealed && $0.count > 0 && $0.damage.isEmpty && $0.tier != .restored }
        }
        for segment in candidates {
            do throws(StoreError) {
                if segment.maxTs < warmCutoff {
                    if segment.tier == .hot { report.moved.append(try moveToWarm(segment)) }
                    report.moved.append(try moveToCold(currentSegment(id: segment.id) ?? segment))
                } else if segment.maxTs < hotCutoff && segment.tier == .hot {
                    report.moved.append(try moveToWarm(segment))
                } else if segment.tier == .warm, let file = segment.data as? WarmFile, file.version < WarmFormat.currentVersion {
                    report.rewritten.append(try rewriteWarm(segment))
                }
            } catch {
                if error.code == .unavailable || error.code == .io { throw error }
                report.skipped.append("\(segment.fileName): \(error.message)")
                logger.error("tier move skipped", metadata: ["segment.id": "\(segment.id)", "error": "\(error.message)"])
            }
        }
        report.expired = try releaseExpiredRestores(now: now)
        if let retain = policy.retainDays {
            report.deleted = try deleteArchives(olderThan: now - Int64(retain * 86_400_000))
        }
        if !report.moved.isEmpty || !report.rewritten.isEmpty || !report.deleted.isEmpty || !report.expired.isEmpty {
            logger.info(
                "tiering run",
                metadata: [
                    "moved": "\(report.moved.count)", "rewritten": "\(report.rewritten.count)", "deleted": "\(report.deleted.count)",
                    "expired": "\(report.expired.count)",
                ])
        }
        return report
    }

    func currentSegment(id: UInt64) -> Segment? {
        stateLock.withLock { segments.first { $0.id == id } }
    }

    /// Replaces a segment object (same id, same seqs and offsets) in the reader-visible list.
    func replaceSegment(_ old: Segment, with new: Segment?) {
        stateLock.withLock {
            guard let index = segments.firstIndex(where: { $0 === old }) else { return }
            if let new { segments[index] = new } else { segments.remove(at: index) }
        }
    }

    /// Rewrites a sealed hot segment as LZ4 blocks: temporary file, sync, rename,
    /// directory sync, swap for readers, and only then delete the hot file.
    func moveToWarm(_ segment: Segment) throws(StoreError) -> SegmentMove {
        let hotBytes = try segment.data.read(count: segment.fileSize, at: 0)
        let (trailer, sparse) = try checkedHotFile(hotBytes, name: segment.fileName)
        let warmBytes = WarmFormat.build(hotFile: hotBytes, trailer: trailer, sparse: sparse)
        let path = warmDirectory + "/" + Self.warmFileName(segment.id)
        try io.writeAtomically(warmBytes, to: path, directory: warmDirectory, crashPoint: .warmBeforeRename)
        CrashPoint.warmBeforeSourceDelete.reached()
        let warm = try openWarm(path: path, id: segment.id)
        replaceSegment(segment, with: warm)
        try trash.retire(segment.path, heldBy: segment.data)
        moveTypeIndexToWarm(id: segment.id, warm: warm)
        try io.syncDirectory(hotDirectory)
        return SegmentMove(
            segmentID: segment.id, from: "hot", to: "warm", firstSeq: segment.firstSeq, lastSeq: segment.lastSeq,
            events: segment.count, bytesBefore: hotBytes.count, bytesAfter: warmBytes.count)
    }

    /// Rewrites a warm file of an older format in the current one (format 3 keeps the lead index on disk):
    /// the hot file rebuilt from it and checked, the new warm file written to a temporary file, synced and
    /// renamed over the old one, and swapped for readers (who finish with the old file's descriptor).
    func rewriteWarm(_ segment: Segment) throws(StoreError) -> SegmentMove {
        let hotBytes = try rebuildHotFile(segment)
        let (trailer, sparse) = try checkedHotFile(hotBytes, name: segment.fileName)
        let warmBytes = WarmFormat.build(hotFile: hotBytes, trailer: trailer, sparse: sparse)
        try io.writeAtomically(warmBytes, to: segment.path, directory: warmDirectory, crashPoint: .warmBeforeRename)
        let warm = try openWarm(path: segment.path, id: segment.id)
        // Its type index file stays: the records, their offsets and the trailer are the same.
        stateLock.withLock { warm.typeIndexBytes = segment.typeIndexBytes }
        replaceSegment(segment, with: warm)
        return SegmentMove(
            segmentID: segment.id, from: "warm", to: "warm", firstSeq: segment.firstSeq, lastSeq: segment.lastSeq,
            events: segment.count, bytesBefore: segment.fileSize, bytesAfter: warmBytes.count)
    }

    static func warmFileName(_ id: UInt64) -> String {
        String(Segment.fileName(id: id, sealed: true).dropLast(4)) + ".lz4s"
    }

    /// Checks a whole hot segment file in memory (trailer, index CRC, every
    /// record's CRC via the chained data CRC) before it is copied to another tier.
    func checkedHotFile(_ bytes: [UInt8], name: String) throws(StoreError) -> (SegmentTrailer, [SparseEntry]) {
        guard bytes.count >= SegmentFormat.headerSize + SegmentFormat.trailerSize,
              let trailer = bytes.withUnsafeBytes({ SegmentTrailer.decode(UnsafeRawBufferPointer(rebasing: $0[(bytes.count - SegmentFormat.trailerSize)...])) }),
              Int(trailer.dataEnd) + trailer.indexSize + SegmentFormat.trailerSize == bytes.count
        else { throw StoreError(.corrupt, "\(name): trailer missing or damaged") }
        let dataEnd = Int(trailer.dataEnd)
        let dataCRC = bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[SegmentFormat.headerSize..<dataEnd])) }
        guard dataCRC == trailer.dataCRC else { throw StoreError(.corrupt, "\(name): records do not match the footer's data checksum") }
        let index = Array(bytes[dataEnd..<(bytes.count - SegmentFormat.trailerSize)])
        guard CRC32C.mask(CRC32C.checksum(index)) == trailer.indexCRC else { throw StoreError(.corrupt, "\(name): index checksum mismatch") }
        return (trailer, index.withUnsafeBytes { SparseEntry.decode($0, count: Int(trailer.sparseCount)) })
    }

    typealias WarmFooter = WarmFormat.Footer

    /// Reads and checks a warm file's footer (either version); the hot index sections come back decoded and checked.
    func readWarmFooter(fd: Int32, name: String) throws(StoreError) -> WarmFooter {
        let size = try io.fileSize(fd)
        guard size >= SegmentFormat.headerSize + WarmFormat.trailerSize else { throw StoreError(.corrupt, "\(name): too short for a warm file") }
        let trailerBytes = try io.read(fd, count: WarmFormat.trailerSize, at: size - WarmFormat.trailerSize)
        guard let trailer = trailerBytes.withUnsafeBytes({ WarmFormat.Trailer.decode($0) }) else {
            throw StoreError(.corrupt, "\(name): warm trailer missing or damaged")
        }
        let footerLength = size - WarmFormat.trailerSize - Int(trailer.footerStart)
        guard trailer.footerStart >= UInt64(SegmentFormat.headerSize), footerLength == Int(trailer.hotFooterLength) + Int(trailer.blockCount) * WarmFormat.directoryEntrySize,
              trailer.blocksEnd >= SegmentFormat.headerSize, (trailer.dictionary?.end ?? trailer.indexStart) == trailer.indexStart
        else {
            throw StoreError(.corrupt, "\(name): warm trailer sizes do not match the file")
        }
        let footer = try io.read(fd, count: footerLength, at: Int(trailer.footerStart))
        // Version 3: the lead section, stored apart, goes into the index checked against the hot trailer's CRC.
        let decoded: Result<WarmFooter, FormatError>
        if let offset = trailer.leadSectionOffset {
            let leadSection = try io.read(fd, count: Int(trailer.footerStart) - offset, at: offset)
            decoded = leadSection.withUnsafeBytes { WarmFormat.decodeFooter(footer, trailer: trailer, leadSection: $0) }
        } else {
            decoded = WarmFormat.decodeFooter(footer, trailer: trailer)
        }
        switch decoded {
        case .success(let decoded): return decoded
        case .failure(let failure): throw StoreError(.corrupt, "\(name): \(failure.reason)")
        }
    }

    /// Opens a warm file as a queryable segment (its event-id entries are already in the table).
    func openWarm(path: String, id: UInt64) throws(StoreError) -> Segment {
        let (segment, _) = try loadWarm(path: path, id: id)
        return segment
    }

    func loadWarm(path: String, id: UInt64) throws(StoreError) -> (Segment, [(hash: UInt64, seq: UInt64)]) {
        let name = String(path.split(separator: "/").last ?? "")
        let fd = try io.open(path, flags: O_RDONLY, mode: 0)
        let footer: WarmFooter
        do throws(StoreError) {
            footer = try readWarmFooter(fd: fd, name: name)
        } catch {
            io.close(fd)
            throw error
        }
        let size = (try? io.fileSize(fd)) ?? 0
        let header: SegmentHeader
        switch footer.hotHeader.withUnsafeBytes({ SegmentHeader.decode($0) }) {
        case .success(let h): header = h
        case .failure(let failure):
            io.close(fd)
            throw StoreError(.corrupt, "\(name): \(failure.reason)")
        }
        let file = WarmFile(
            io: io, fd: fd, name: name, blocks: footer.blocks, version: footer.trailer.version, dictionary: footer.trailer.dictionary,
            cache: warmBlocks)
        file.onDamage = { [weak self] report in self?.noteDamage(segmentID: id, report) }
        let hot = footer.hotTrailer
        let segment = Segment(id: id, path: path, data: file, header: header, isSealed: true, dataEnd: Int(hot.dataEnd), fileSize: size)
        segment.tier = .warm
        segment.rawFileSize = Int(hot.dataEnd) + footer.hotIndex.count + SegmentFormat.trailerSize
        segment.count = hot.recordCount
        segment.firstSeq = hot.firstSeq
        segment.lastSeq = hot.lastSeq
        segment.minTs = hot.minTs
        segment.maxTs = hot.maxTs
        segment.chainCRC = hot.dataCRC
        // The lead entries stay in the file (version 3) or are parsed into memory (older versions). (The footer's
        // hot index sections were checked against the hot trailer's index CRC when decoded.)
        let entries = Self.parseIndex(
            footer.hotIndex, trailer: hot, into: segment, leadSection: footer.trailer.leadSectionOffset.map { (WarmStoredBytes(file), $0) })
        return (segment, entries)
    }

    /// Fills a segment's sparse and lead indexes from index-section bytes; returns the event-id entries.
    /// `leadSection`, where the same lead entries are stored in a file (a sealed hot segment's footer, a
    /// version 3 warm file), leaves them there rather than in memory.
    static func parseIndex(
        _ index: [UInt8], trailer: SegmentTrailer, into segment: Segment, leadSection: (file: SegmentData, offset: Int)? = nil
    ) -> [(hash: UInt64, seq: UInt64)] {
        let sparseCount = Int(trailer.sparseCount), records = Int(trailer.recordCount)
        guard index.count >= sparseCount * SegmentFormat.sparseEntrySize + records * (SegmentFormat.leadEntrySize + SegmentFormat.eventEntrySize) else { return [] }
        // Local arrays filled through buffers, then assigned once (appending to the segment's properties one
        // entry at a time costs an exclusivity and uniqueness check per entry).
        let leadSectionRange = IndexCoding.leadSection(trailer)
        let leadStart = leadSectionRange.lowerBound, eventStart = leadSectionRange.upperBound
        return index.withUnsafeBytes { b in
            let sparse = [SparseEntry](unsafeUninitializedCapacity: sparseCount) { out, initialized in
                for i in 0..<sparseCount {
                    let at = i * SegmentFormat.sparseEntrySize
                    out.initializeElement(at: i, to: SparseEntry(firstSeq: b.u64(at: at), offset: b.u64(at: at + 8), minTs: b.i64(at: at + 16), maxTs: b.i64(at: at + 24)))
                }
                initialized = sparseCount
            }
            let leads = [UInt64](unsafeUninitializedCapacity: records) { out, initialized in
                for i in 0..<records { out.initializeElement(at: i, to: b.u64(at: leadStart + i * SegmentFormat.leadEntrySize)) }
                initialized = records
            }
            let entries = [(hash: UInt64, seq: UInt64)](unsafeUninitializedCapacity: records) { out, initialized in
                for i in 0..<records {
                    let at = eventStart + i * SegmentFormat.eventEntrySize
                    out.initializeElement(at: i, to: (b.u64(at: at), b.u64(at: at + 8)))
                }
                initialized = records
            }
            segment.sparse = sparse
            if let leadSection {
                segment.leadIndex = LeadIndex(sorted: leads, storedIn: leadSection.file, at: leadSection.offset)
            } else {
                segment.leadIndex = LeadIndex(sorted: leads)
            }
            return entries
        }
    }

    func noteDamage(segmentID: UInt64, _ report: CorruptionReport) {
        stateLock.withLock {
            guard let segment = segments.first(where: { $0.id == segmentID }), !segment.damage.contains(report) else { return }
            segment.damage.append(report)
            logger.error("\(report)")
        }
    }

    /// Rebuilds the exact bytes of the hot segment file a warm file was made from.
    func rebuildHotFile(_ segment: Segment) throws(StoreError) -> [UInt8] {
        guard let warm = segment.data as? WarmFile else { return try segment.data.read(count: segment.fileSize, at: 0) }
        let footer = try readWarmFooter(fd: warm.fd, name: segment.fileName)
        var bytes = footer.hotHeader
        bytes.reserveCapacity(segment.rawFileSize)
        for index in footer.blocks.indices {
            guard let block = try warm.block(index) else { throw StoreError(.corrupt, "\(segment.fileName): block \(index) is damaged") }
            bytes.append(contentsOf: block)
        }
        bytes.append(contentsOf: footer.hotIndex)
        bytes.append(contentsOf: footer.hotTrailerBytes)
        return bytes
    }

    /// Background tiering on the configured schedule.
    func startTiering() {
        let interval = configuration.tiers.intervalSeconds
        guard interval > 0 else { return }
        startThread(named: "leadtrail-tiering", priority: .background) { [weak self] in
            var waited = 0.0
            while true {
                Thread.sleep(forTimeInterval: 1)
                waited += 1
                guard let self else { return }
                if self.queueLock.withLock({ self.stopping }) { return }
                if waited >= Double(interval) {
                    waited = 0
                    do throws(StoreError) {
                        _ = try self.tier()
                    } catch {
                        self.logger.error("background tiering failed", metadata: ["error": "\(error.message)"])
                    }
                }
            }
        }
    }
}
