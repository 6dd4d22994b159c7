import Foundation
import LeadTrailEvents
import Logging

extension EventStore {
    /// Brings the directory to a consistent state before anything is served:
    /// deletes temporary files, finishes an interrupted seal, loads sealed
    /// segments' indexes from their footers, cuts a torn tail off the active
    /// segment (moving its bytes to `quarantine/`), and rebuilds the in-memory
    /// indexes. Damage is reported loudly and never served.
    func recover() throws(StoreError) {
        for directory in [warmDirectory, coldDirectory, restoredDirectory] { try makeDirectory(directory) }
        for directory in [hotDirectory, configuration.directory, warmDirectory, coldDirectory, restoredDirectory] {
            let temporaries = try listDirectory(directory).filter { $0.hasSuffix(".tmp") }
            for name in temporaries { try io.unlink(directory + "/" + name) }
            if !temporaries.isEmpty { try io.syncDirectory(directory) }
        }
        let checkpointBytes = try? io.readWhole(configuration.directory + "/checkpoint")
        let checkpoint = checkpointBytes.flatMap(Checkpoint.decode)
        if checkpointBytes != nil && checkpoint == nil {
            // Rewritten below; until then damage before the durable point cannot be told from a torn tail.
            logger.critical("the checkpoint is damaged; it is rewritten, but this start cannot check that every acknowledged event is readable")
        }

        var sealedIDs: [UInt64] = []
        var openIDs: [UInt64] = []
        for name in try listDirectory(hotDirectory) {
            let parts = name.split(separator: ".")
            guard parts.count == 2, let id = UInt64(parts[0], radix: 16) else {
                logger.warning("ignoring an unexpected file in the hot directory", metadata: ["file": "\(name)"])
                continue
            }
            if parts[1] == "seg" { sealedIDs.append(id) } else if parts[1] == "open" { openIDs.append(id) }
        }
        // A segment both sealed and open: the seal's rename happened; the .open is a stale hard link that cannot exist
        // with rename semantics, but be safe: keep the sealed one.
        for id in openIDs where sealedIDs.contains(id) {
            try io.unlink(hotDirectory + "/" + Segment.fileName(id: id, sealed: false))
            try io.syncDirectory(hotDirectory)
        }
        openIDs.removeAll { sealedIDs.contains($0) }

        // An open segment that already carries a complete footer was being sealed: finish the rename.
        for id in openIDs {
            let path = hotDirectory + "/" + Segment.fileName(id: id, sealed: false)
            if try hasValidTrailer(path: path) {
                try io.rename(path, hotDirectory + "/" + Segment.fileName(id: id, sealed: true))
                try io.syncDirectory(hotDirectory)
                sealedIDs.append(id)
                logger.notice("finished sealing a segment interrupted by a crash", metadata: ["segment.id": "\(id)"])
            }
        }
        openIDs.removeAll { sealedIDs.contains($0) }
        sealedIDs.sort()
        openIDs.sort()

        // Cold archives first: a segment listed in a manifest was archived, whatever copy is left elsewhere.
        let archived = try recoverColdCatalog()
        // Warm files: a hot copy of the same segment is the source of a move that got past its rename.
        var warmIDs: [UInt64] = []
        for name in try listDirectory(warmDirectory) where name.hasSuffix(".lz4s") {
            guard let id = UInt64(name.dropLast(5), radix: 16) else { continue }
            if archived.contains(id) {
                try io.unlink(warmDirectory + "/" + name)
                try io.syncDirectory(warmDirectory)
                logger.notice("removed a warm copy of an archived segment", metadata: ["segment.id": "\(id)"])
                continue
            }
            warmIDs.append(id)
        }
        for id in sealedIDs where warmIDs.contains(id) || archived.contains(id) {
            try io.unlink(hotDirectory + "/" + Segment.fileName(id: id, sealed: true))
            try io.syncDirectory(hotDirectory)
            logger.notice("finished a tier move interrupted by a crash", metadata: ["segment.id": "\(id)"])
        }
        sealedIDs.removeAll { warmIDs.contains($0) || archived.contains($0) }
        // A type index whose segment is gone from its tier. One left in hot/ by a move to warm that a crash
        // interrupted goes where the move would have put it (it checks out there unchanged); any other is removed.
        for (directory, ids) in [(hotDirectory, sealedIDs), (warmDirectory, warmIDs)] {
            for name in try listDirectory(directory) where name.hasSuffix(".types") {
                let id = UInt64(name.dropLast(6), radix: 16)
                if let id, ids.contains(id) { continue }
                if directory == hotDirectory, let id, warmIDs.contains(id), access(warmDirectory + "/" + name, F_OK) != 0,
                    (try? io.rename(directory + "/" + name, warmDirectory + "/" + name)) != nil
                {
                    continue
                }
                try? io.unlink(directory + "/" + name)
            }
        }

        // Size the event-id table once, from the trailers, then fill it segment by segment
        // (holding every segment's entries at once would double the memory needed at start).
        var expected = coldCatalog.members.reduce(0) { $0 + Int($1.member.events) }
        for id in sealedIDs { expected += recordCount(hotPath: hotDirectory + "/" + Segment.fileName(id: id, sealed: true)) }
        for id in warmIDs { expected += recordCount(warmPath: warmDirectory + "/" + Self.warmFileName(id)) }
        for id in openIDs { expected += recordCount(openPath: hotDirectory + "/" + Segment.fileName(id: id, sealed: false)) }
        eventIDs = EventIDTable(expectedCount: expected)
        // Entries go in one segment at a time (each footer's event-id index is sorted by hash, and the table's
        // slots follow hash order, so each pass streams through the table). Should the trailers have
        // undercounted (damaged ones are guessed from file sizes), the table's partitions grow as they fill.
        func index(_ entries: [(hash: UInt64, seq: UInt64)]) {
            if !eventIDs.insert(contentsOf: entries) {
                logger.critical("an event-id index holds a seq out of range; resent duplicates of its later events may be stored again")
            }
        }

        var loaded: [Segment] = []
        index(try coldEventEntries())
        // Warm and sealed hot segments: a second thread reads, checks and parses the next footer while this one
        // fills the event-id table from the previous one (the two largest costs of a start, on two cores).
        try pipelined(warmIDs, load: { (id: UInt64) -> Result<(Segment, [(hash: UInt64, seq: UInt64)]), StoreError> in
            do throws(StoreError) {
                return .success(try self.loadWarm(path: self.warmDirectory + "/" + Self.warmFileName(id), id: id))
            } catch {
                return .failure(error)
            }
        }) { (id: UInt64, result: Result<(Segment, [(hash: UInt64, seq: UInt64)]), StoreError>) throws(StoreError) in
            switch result {
            case .success(let (segment, entries)):
                loaded.append(segment)
                index(entries)
            case .failure(let error):
                let report = CorruptionReport(file: Self.warmFileName(id), offset: nil, reason: "\(error.message); not served")
                stateLock.withLock { damage.append(report) }
                logger.critical("warm segment is damaged: \(report)")
            }
        }
        for name in try listDirectory(restoredDirectory) where name.hasSuffix(".seg") {
            guard let id = UInt64(name.dropLast(4), radix: 16) else { continue }
            let path = restoredDirectory + "/" + name
            let (segment, _) = try loadSealed(id: id, path: path)
            segment.tier = .restored
            segment.expiresMs = Self.modificationMs(path).map { $0 + Int64(configuration.tiers.restoreExpirySeconds) * 1000 }
            loaded.append(segment)
        }
        try pipelined(sealedIDs, load: { (id: UInt64) -> Result<(Segment, [(hash: UInt64, seq: UInt64)]), StoreError> in
            do throws(StoreError) {
                return .success(try self.loadSealed(id: id))
            } catch {
                return .failure(error)
            }
        }) { (_: UInt64, result: Result<(Segment, [(hash: UInt64, seq: UInt64)]), StoreError>) throws(StoreError) in
            let (segment, entries) = try result.get()
            loaded.append(segment)
            index(entries)
        }

        // Open segments: normally one, the newest, the active segment. Older ones (a crash while the sealer
        // worked, or a copied directory) are recovered the same way and sealed; an empty spare segment after
        // the active one is removed by recoverOpen.
        var recoveredOpen: [Segment] = []
        for id in openIDs {
            if let segment = try recoverOpen(id: id, checkpoint: checkpoint) { recoveredOpen.append(segment) }
        }
        var active: Segment? = nil
        if let newest = recoveredOpen.last, newest.id > (sealedIDs.last ?? 0) { active = recoveredOpen.removeLast() }
        for segment in recoveredOpen {
            loaded.append(segment)
            index(segment.eventEntries)
            try seal(segment)
        }
        loaded.sort { $0.id < $1.id }

        // Check the chain between consecutive segments.
        for i in 1..<max(loaded.count, 1) where i < loaded.count && loaded[i].id == loaded[i - 1].id + 1 {
            let previous = loaded[i - 1], current = loaded[i]
            if current.header.previousLastSeq != previous.lastSeq || current.header.previousChainCRC != previous.chainCRC {
                let report = CorruptionReport(
                    file: current.fileName, offset: 0,
                    reason: "segment chain broken: previous segment \(previous.fileName) does not end where this one says")
                damage.append(report)
                logger.error("\(report)")
            }
        }

        if let active { index(active.eventEntries) }

        var last = max(loaded.map(\.lastSeq).max() ?? 0, active?.lastSeq ?? 0, coldCatalog.members.map(\.member.lastSeq).max() ?? 0)
        // The active segment's header says where the log stood when it was created, even when the segment
        // before it is unreadable (its header damaged) and the checkpoint is gone.
        if let active, active.header.baseSeq > 1 { last = max(last, active.header.baseSeq - 1) }
        if let checkpoint, checkpoint.lastSeq > last {
            // Acknowledged events are missing (damage was found above): never reuse their seqs.
            logger.critical(
                "events acknowledged up to seq \(checkpoint.lastSeq) but only \(last) are readable; see quarantine/",
                metadata: ["data_dir": "\(configuration.directory)"])
            damage.append(CorruptionReport(
                file: "checkpoint", offset: nil,
                reason: "events \(last + 1)...\(checkpoint.lastSeq) were acknowledged but are not readable"))
            last = checkpoint.lastSeq
        }
        committedLastSeq = last
        nextSeq = last + 1
        // Seqs run without gaps inside a segment (reads by seq and the type column count on it): when the log
        // goes on past seqs that are missing, it goes on in a new segment.
        if let current = active, nextSeq != (current.count > 0 ? current.lastSeq + 1 : current.header.baseSeq) {
            if current.count > 0 {
                try seal(current)
                loaded.append(current)
            } else {
                // Its descriptor closes when the segment is released, below.
                try io.unlink(current.path)
            }
            active = nil
        }
        segments = loaded
        for segment in segments {
            var st = stat()
            if let path = typeIndexPath(id: segment.id, tier: segment.tier), stat(path, &st) == 0 { segment.typeIndexBytes = Int(st.st_size) }
        }
        if let active {
            segments.append(active)
            if active.count > 0 { active.firstRecordMonotonicMs = monotonicMilliseconds() }
            writeOffset = active.dataEnd
            writeChainCRC = active.chainCRC
        } else {
            try createActiveSegment()
        }
        #if canImport(Glibc)
        // Loading freed tens of MB of footer buffers, some in the loader thread's malloc arena: hand them back.
        _ = leadtrailMallocTrim(0)
        #endif
        noteDurable()
        try writeCheckpoint(force: true)
    }

    /// Whether the file at `path` ends with a valid segment trailer.
    func hasValidTrailer(path: String) throws(StoreError) -> Bool {
        let fd = try io.open(path, flags: O_RDONLY, mode: 0)
        defer { io.close(fd) }
        let size = try io.fileSize(fd)
        guard size >= SegmentFormat.headerSize + SegmentFormat.trailerSize else { return false }
        let bytes = try io.read(fd, count: SegmentFormat.trailerSize, at: size - SegmentFormat.trailerSize)
        guard let trailer = bytes.withUnsafeBytes({ SegmentTrailer.decode($0) }) else { return false }
        return Int(trailer.dataEnd) + trailer.indexSize + SegmentFormat.trailerSize == size
    }

    /// Loads a sealed segment's header and footer indexes. A damaged footer is
    /// reported and the indexes are rebuilt by scanning the records.
    func loadSealed(id: UInt64, path: String? = nil) throws(StoreError) -> (Segment, [(hash: UInt64, seq: UInt64)]) {
        let path = path ?? hotDirectory + "/" + Segment.fileName(id: id, sealed: true)
        let fd = try io.open(path, flags: O_RDONLY, mode: 0)
        let size = try io.fileSize(fd)
        let headerBytes = try io.read(fd, count: SegmentFormat.headerSize, at: 0)
        let header: SegmentHeader
        switch headerBytes.withUnsafeBytes({ SegmentHeader.decode($0) }) {
        case .success(let h): header = h
        case .failure(let failure):
            // Without a header the file cannot be trusted at all: report, keep it out of reads.
            let report = CorruptionReport(file: Segment.fileName(id: id, sealed: true), offset: 0, reason: failure.reason)
            stateLock.withLock { damage.append(report) }
            logger.critical("sealed segment is damaged and will not be served: \(report)")
            let placeholder = SegmentHeader(segmentID: id, baseSeq: 0, createdMs: 0, previousLastSeq: 0, previousChainCRC: 0)
            let segment = Segment(
                id: id, path: path, data: HotFile(io: io, fd: fd), header: placeholder, isSealed: true, dataEnd: SegmentFormat.headerSize,
                fileSize: size)
            segment.damage.append(report)
            return (segment, [])
        }
        let segment = Segment(
            id: id, path: path, data: HotFile(io: io, fd: fd), header: header, isSealed: true, dataEnd: SegmentFormat.headerSize, fileSize: size)
        do throws(StoreError) {
            let entries = try loadFooter(segment, size: size)
            return (segment, entries)
        } catch {
            let report = CorruptionReport(file: segment.fileName, offset: nil, reason: "footer unusable (\(error.message)); indexes rebuilt from the records")
            logger.error("\(report)")
            segment.damage.append(report)
            let scan = try scanRecords(segment, from: SegmentFormat.headerSize, to: size, expectedSeq: nil, stopAtTrailer: true)
            segment.eventEntries = EventIDEntrySort.sortedByHash(segment.eventEntries)
            segment.leadIndex = LeadIndex(sorted: segment.leadIndex.sorted() ?? [])  // built in memory by the scan
            if let failure = scan.failure {
                segment.damage.append(CorruptionReport(file: segment.fileName, offset: failure.offset, reason: failure.reason))
            }
            let entries = segment.eventEntries
            segment.eventEntries = []
            return (segment, entries)
        }
    }

    struct FooterError: Error { var message: String }

    /// Reads the trailer and index sections of a sealed segment into memory.
    func loadFooter(_ segment: Segment, size: Int) throws(StoreError) -> [(hash: UInt64, seq: UInt64)] {
        guard size >= SegmentFormat.headerSize + SegmentFormat.trailerSize else {
            throw StoreError(.corrupt, "file too short for a footer")
        }
        let trailerBytes = try io.read(segment.fd, count: SegmentFormat.trailerSize, at: size - SegmentFormat.trailerSize)
        guard let trailer = trailerBytes.withUnsafeBytes({ SegmentTrailer.decode($0) }) else {
            throw StoreError(.corrupt, "trailer checksum mismatch")
        }
        let indexStart = Int(trailer.dataEnd)
        guard indexStart >= SegmentFormat.headerSize, indexStart + trailer.indexSize + SegmentFormat.trailerSize == size else {
            throw StoreError(.corrupt, "trailer sizes do not match the file size")
        }
        let index = try io.read(segment.fd, count: trailer.indexSize, at: indexStart)
        guard index.count == trailer.indexSize, CRC32C.mask(CRC32C.checksum(index)) == trailer.indexCRC else {
            throw StoreError(.corrupt, "index checksum mismatch")
        }
        let entries = Self.parseIndex(
            index, trailer: trailer, into: segment, leadSection: (segment.data, indexStart + IndexCoding.leadSection(trailer).lowerBound))
        segment.dataEnd = indexStart
        segment.count = trailer.recordCount
        segment.firstSeq = trailer.firstSeq
        segment.lastSeq = trailer.lastSeq
        segment.minTs = trailer.minTs
        segment.maxTs = trailer.maxTs
        segment.chainCRC = trailer.dataCRC
        return entries
    }

    struct ScanResult {
        /// End of the last record that closes a batch (the point recovery keeps).
        var batchEnd: Int
        var failure: (offset: Int, reason: String)?
    }

    /// Scans records in [from, to), indexing every whole batch into `segment`.
    /// Stops at the first record that is incomplete, fails its CRC or breaks the seq order.
    func scanRecords(_ segment: Segment, from: Int, to: Int, expectedSeq: UInt64?, stopAtTrailer: Bool = false)
        throws(StoreError) -> ScanResult
    {
        var result = ScanResult(batchEnd: from, failure: nil)
        var expected = expectedSeq
        var pendingBatch: [(seq: UInt64, ts: Int64, lead: UInt32, hash: UInt64, type: UInt8, offset: Int, size: Int)] = []
        var pendingCRC = segment.chainCRC
        let data = segment.data
        var cursor = RecordCursor(from: from, to: to) { (count, offset) throws(StoreError) in try data.read(count: count, at: offset) }
        scanning: while true {
            switch try cursor.next() {
            case .end:
                break scanning
            case .incomplete:
                if !stopAtTrailer { result.failure = (cursor.offset, "incomplete record at the end of the file") }
                return result
            case .corrupt(let reason):
                result.failure = (cursor.offset, reason)
                return result
            case .record(let header, let total):
                if let e = expected, header.seq != e {
                    result.failure = (cursor.recordOffset, "seq \(header.seq) where \(e) was expected")
                    return result
                }
                expected = header.seq + 1
                let (idHash, typeID) = cursor.withRecordBytes { record in
                    pendingCRC = CRC32C.checksum(record, extending: pendingCRC)
                    let body = UnsafeRawBufferPointer(rebasing: record[SegmentFormat.recordHeaderSize...])
                    let ref = header.fields[.eventID]
                    let typeID = segment.typeID(record: record, fields: header.fields)
                    if !ref.hasEscapes, ref.range.upperBound <= body.count {
                        return (StableHash.hash64(UnsafeRawBufferPointer(rebasing: body[ref.range])), typeID)
                    }
                    return (StableHash.hash64(ref.bytes(in: body.assumingMemoryBound(to: UInt8.self)) ?? []), typeID)
                }
                pendingBatch.append((header.seq, header.timestampMs, header.leadHash, idHash, typeID, cursor.recordOffset, total))
                if header.flags & SegmentFormat.flagBatchEnd != 0 {
                    for r in pendingBatch {
                        segment.noteRecord(
                            seq: r.seq, timestampMs: r.ts, leadHash: r.lead, eventIDHash: r.hash, typeID: r.type, offset: r.offset,
                            size: r.size, sparseInterval: configuration.sparseIndexInterval)
                    }
                    pendingBatch.removeAll(keepingCapacity: true)
                    result.batchEnd = cursor.offset
                    segment.dataEnd = cursor.offset
                    segment.chainCRC = pendingCRC
                }
            }
        }
        if !pendingBatch.isEmpty {
            result.failure = (pendingBatch[0].offset, "batch without its final record")
        }
        return result
    }

    /// Recovers the active segment: keeps every whole batch with valid records,
    /// moves whatever follows to `quarantine/` and truncates the file there.
    func recoverOpen(id: UInt64, checkpoint: Checkpoint?) throws(StoreError) -> Segment? {
        let name = Segment.fileName(id: id, sealed: false)
        let path = hotDirectory + "/" + name
        let fd = try io.open(path, flags: O_RDWR, mode: 0)
        let size = try io.fileSize(fd)
        let headerBytes = try io.read(fd, count: SegmentFormat.headerSize, at: 0)
        let header: SegmentHeader
        switch headerBytes.withUnsafeBytes({ SegmentHeader.decode($0) }) {
        case .success(let h):
            header = h
        case .failure(let failure):
            defer { io.close(fd) }
            // A header never made durable means nothing in the file was acknowledged: a new segment's header is
            // synced before (or, from a spare, together with) its first records. That is an empty or headerless
            // file, or a bad header followed by a first record that does not check out either (the first sync
            // never completed: the power went while both were in the page cache). A bad header in front of a
            // good record, or in a segment the checkpoint calls durable, is damage.
            if size <= SegmentFormat.headerSize {
                try io.unlink(path)
                try io.syncDirectory(hotDirectory)
                logger.notice("removed a segment whose creation was interrupted", metadata: ["file": "\(name)"])
            } else if checkpoint?.segmentID != id, try !firstRecordChecksOut(fd: fd, size: size) {
                let target = try quarantine(path: path, reason: "header never written")
                logger.notice(
                    "moved aside a new segment whose first write was interrupted before its sync (nothing in it was acknowledged)",
                    metadata: ["file": "\(name)", "quarantine": "\(target)"])
            } else {
                let target = try quarantine(path: path, reason: "header: \(failure.reason)")
                let report = CorruptionReport(file: name, offset: 0, reason: "\(failure.reason); moved to \(target)")
                damage.append(report)
                logger.critical("active segment is damaged: \(report)")
            }
            return nil
        }
        let segment = Segment(id: id, path: path, data: HotFile(io: io, fd: fd), header: header, isSealed: false, dataEnd: SegmentFormat.headerSize, fileSize: size)
        segment.chainCRC = 0
        let scan = try scanRecords(segment, from: SegmentFormat.headerSize, to: size, expectedSeq: header.baseSeq)
        if scan.batchEnd < size {
            let durable = checkpoint.flatMap { $0.segmentID == id ? Int($0.durableOffset) : nil } ?? 0
            let tail = try io.read(fd, count: size - scan.batchEnd, at: scan.batchEnd)
            let target = quarantineDirectory + "/" + name + "." + String(scan.batchEnd) + ".tail"
            try io.writeAtomically(tail, to: target, directory: quarantineDirectory)
            quarantined.append(target)
            try io.ftruncate(fd, length: scan.batchEnd)
            try io.fdatasync(fd)
            let reason = scan.failure?.reason ?? "incomplete batch"
            if scan.batchEnd < durable {
                let report = CorruptionReport(
                    file: name, offset: scan.batchEnd,
                    reason: "\(reason) before the durable point \(durable); \(tail.count) bytes moved to \(target)")
                damage.append(report)
                logger.critical("corruption in the active segment: \(report)")
            } else {
                logger.notice(
                    "cut a torn tail off the active segment",
                    metadata: ["file": "\(name)", "offset": "\(scan.batchEnd)", "bytes": "\(tail.count)", "quarantine": "\(target)"])
            }
        }
        segment.fileSize = segment.dataEnd
        return segment
    }

    /// Whether the record right after the header of a segment file is whole and passes its checks.
    func firstRecordChecksOut(fd: Int32, size: Int) throws(StoreError) -> Bool {
        let start = SegmentFormat.headerSize
        guard size >= start + SegmentFormat.recordHeaderSize else { return false }
        let header = try io.read(fd, count: SegmentFormat.recordHeaderSize, at: start).withUnsafeBytes { RecordHeader.decode($0) }
        guard header.payloadLength <= size - start - SegmentFormat.recordHeaderSize else { return false }
        let bytes = try io.read(fd, count: SegmentFormat.recordHeaderSize + header.payloadLength, at: start)
        let decoded = bytes.withUnsafeBytes { RecordReader.decode($0, at: start) }
        if case .success(_?) = decoded { return true }
        return false
    }

    /// Moves a whole file into `quarantine/` and returns its new path.
    func quarantine(path: String, reason: String) throws(StoreError) -> String {
        let name = String(path.split(separator: "/").last ?? "file")
        let target = quarantineDirectory + "/" + name + ".\(Timestamp.now())"
        try io.rename(path, target)
        try io.syncDirectory(quarantineDirectory)
        try io.syncDirectory(hotDirectory)
        quarantined.append(target)
        return target
    }
}

extension EventStore {
    /// Calls `load` for each item on a helper thread, one item ahead of `consume`, which runs on the calling
    /// thread in order. `load` must not touch what `consume` touches.
    func pipelined<Item, Output>(
        _ items: [Item], load: @escaping (Item) -> Output, consume: (Item, Output) throws(StoreError) -> Void
    ) throws(StoreError) {
        guard !items.isEmpty else { return }
        let queue = DispatchQueue(label: "leadtrail.recovery.loader")
        var next = PipelineSlot<Output>()
        var group = DispatchGroup()
        queue.async(group: group) { [next] in next.value = load(items[0]) }
        for i in items.indices {
            group.wait()
            let current = next
            if i + 1 < items.count {
                next = PipelineSlot<Output>()
                group = DispatchGroup()
                queue.async(group: group) { [next] in next.value = load(items[i + 1]) }
            }
            guard let output = current.value else { continue }
            current.value = nil
            do throws(StoreError) {
                try consume(items[i], output)
            } catch {
                group.wait()
                throw error
            }
        }
    }
}

#if canImport(Glibc)
/// glibc's `malloc_trim` (declared in `malloc.h`, which the Glibc module does not export).
@_silgen_name("malloc_trim")
func leadtrailMallocTrim(_ pad: Int) -> Int32
#endif

/// One result handed from the loader thread to the consumer (the dispatch group orders the two accesses).
final class PipelineSlot<Value>: @unchecked Sendable {
    var value: Value?
    init() {}
}

extension FileOperations {
    /// Reads a whole (small) file.
    func readWhole(_ path: String) throws(StoreError) -> [UInt8] {
        let fd = try open(path, flags: O_RDONLY, mode: 0)
        defer { close(fd) }
        return try read(fd, count: try fileSize(fd), at: 0)
    }
}

extension EventStore {
    /// Reads every cold manifest, cuts what an interrupted move left after the
    /// last listed member, and returns the ids of the archived segments.
    func recoverColdCatalog() throws(StoreError) -> Set<UInt64> {
        var catalog = ColdCatalog()
        for name in try listDirectory(coldDirectory) where name.hasSuffix(".manifest") {
            let day = String(name.dropLast(9))
            let bytes = try io.readWhole(coldDirectory + "/" + name)
            guard let archive = ColdArchive.decodeManifest(bytes) else {
                let report = CorruptionReport(file: name, offset: nil, reason: "cold manifest checksum mismatch; its archive is not restorable until repaired")
                damage.append(report)
                logger.critical("\(report)")
                continue
            }
            for (suffix, end) in [(".ltz", archive.archiveEnd), (".ids", archive.idsEnd)] {
                let path = coldDirectory + "/" + day + suffix
                let fd = try io.open(path, flags: O_RDWR | O_CREAT, mode: 0o644)
                defer { io.close(fd) }
                if try io.fileSize(fd) > end {
                    try io.ftruncate(fd, length: end)
                    try io.fdatasync(fd)
                    logger.notice("cut the unfinished tail of a cold archive", metadata: ["file": "\(day)\(suffix)"])
                }
            }
            catalog.archives[day] = archive
        }
        coldCatalog = catalog
        return Set(catalog.members.map(\.member.segmentID))
    }

    /// The (event-id hash, seq) entries of every archived segment, checked against the manifests. Those of
    /// `.ids` format 2 come in seq order, not hash order: the table's bulk insert overlaps the cache misses
    /// of unsorted entries well enough (about 0.1 s more per 10 million than sorted ones), and sorting them
    /// first would cost more than it saves.
    func coldEventEntries() throws(StoreError) -> [(hash: UInt64, seq: UInt64)] {
        var entries: [(hash: UInt64, seq: UInt64)] = []
        for (day, archive) in stateLock.withLock({ coldCatalog.archives }) {
            let path = coldDirectory + "/\(day).ids"
            let bytes = try io.readWhole(path)
            for member in archive.members {
                let range = member.idsRange
                let ids = range.upperBound <= bytes.count ? Array(bytes[range]) : []
                guard range.upperBound <= bytes.count, CRC32C.checksum(ids) == member.idsCRC else {
                    let report = CorruptionReport(file: "\(day).ids", offset: member.idsOffset, reason: "event-id index of archived segment \(member.segmentID) is damaged; duplicates of its events are not detected")
                    stateLock.withLock { if !damage.contains(report) { damage.append(report) } }
                    logger.error("\(report)")
                    continue
                }
                entries.append(contentsOf: member.eventEntries(fromIDs: ids))
            }
        }
        return entries
    }

    static func modificationMs(_ path: String) -> Int64? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return Int64(st.st_mtim.tv_sec) * 1000 + Int64(st.st_mtim.tv_nsec) / 1_000_000
    }
}

extension EventStore {
    /// Record counts read from trailers (cheap reads), to size the event-id table before loading.
    func recordCount(hotPath path: String) -> Int {
        guard let fd = try? io.open(path, flags: O_RDONLY, mode: 0) else { return 0 }
        defer { io.close(fd) }
        let size = (try? io.fileSize(fd)) ?? 0
        guard size >= SegmentFormat.trailerSize, let bytes = try? io.read(fd, count: SegmentFormat.trailerSize, at: size - SegmentFormat.trailerSize),
              let trailer = bytes.withUnsafeBytes({ SegmentTrailer.decode($0) })
        else { return size / 512 }
        return Int(trailer.recordCount)
    }

    func recordCount(warmPath path: String) -> Int {
        guard let fd = try? io.open(path, flags: O_RDONLY, mode: 0) else { return 0 }
        defer { io.close(fd) }
        let size = (try? io.fileSize(fd)) ?? 0
        guard size >= WarmFormat.trailerSize,
              let bytes = try? io.read(fd, count: WarmFormat.trailerSize, at: size - WarmFormat.trailerSize),
              let warm = bytes.withUnsafeBytes({ WarmFormat.Trailer.decode($0) }), warm.hotFooterLength >= UInt64(SegmentFormat.trailerSize),
              let hotBytes = try? io.read(fd, count: SegmentFormat.trailerSize, at: Int(warm.footerStart + warm.hotFooterLength) - SegmentFormat.trailerSize),
              let hot = hotBytes.withUnsafeBytes({ SegmentTrailer.decode($0) })
        else { return size / 128 }
        return Int(hot.recordCount)
    }

    /// An upper bound for the active segment: every record is at least a header and a small event.
    func recordCount(openPath path: String) -> Int {
        guard let fd = try? io.open(path, flags: O_RDONLY, mode: 0) else { return 0 }
        defer { io.close(fd) }
        return max(0, ((try? io.fileSize(fd)) ?? 0) - SegmentFormat.headerSize) / (SegmentFormat.recordHeaderSize + 40)
    }
}
