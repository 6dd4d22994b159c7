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
        for name in try listDirectory(hotDirectory) where name.hasSuffix(".tmp") {
            try io.unlink(hotDirectory + "/" + name)
        }
        let checkpoint = (try? io.readWhole(configuration.directory + "/checkpoint")).flatMap(Checkpoint.decode)

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

        var loaded: [Segment] = []
        var eventEntries: [[(hash: UInt64, seq: UInt64)]] = []
        for id in sealedIDs {
            let (segment, entries) = try loadSealed(id: id)
            loaded.append(segment)
            eventEntries.append(entries)
        }

        // Open segments: normally one, the newest. Older ones (a crash between sealing and cleanup cannot make
        // them, but a copied directory could) are recovered the same way and sealed.
        var active: Segment? = nil
        for (i, id) in openIDs.enumerated() {
            guard let segment = try recoverOpen(id: id, checkpoint: checkpoint) else { continue }
            let isLast = i == openIDs.count - 1 && (sealedIDs.last ?? 0) < id
            if isLast {
                active = segment
            } else {
                loaded.append(segment)
                eventEntries.append(segment.eventEntries)
                try seal(segment)
            }
        }
        loaded.sort { $0.id < $1.id }

        // Check the chain between segments and seq continuity.
        for i in 1..<max(loaded.count, 1) where i < loaded.count {
            let previous = loaded[i - 1], current = loaded[i]
            if current.header.previousLastSeq != previous.lastSeq || current.header.previousChainCRC != previous.chainCRC {
                let report = CorruptionReport(
                    file: current.fileName, offset: 0,
                    reason: "segment chain broken: previous segment \(previous.fileName) does not end where this one says")
                damage.append(report)
                logger.error("\(report)")
            }
        }

        let total = eventEntries.reduce(0) { $0 + $1.count } + (active?.eventEntries.count ?? 0)
        var table = EventIDTable(minimumCapacity: max(total * 2, 1 << 16))
        for entries in eventEntries { for entry in entries { table.insert(hash: entry.hash, seq: entry.seq) } }
        if let active { for entry in active.eventEntries { table.insert(hash: entry.hash, seq: entry.seq) } }
        eventIDs = table

        var last = max(loaded.last?.lastSeq ?? 0, active?.lastSeq ?? 0)
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
        segments = loaded
        if let active {
            segments.append(active)
            if active.count > 0 { active.firstRecordMonotonicMs = monotonicMilliseconds() }
        } else {
            try createActiveSegment()
        }
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
    func loadSealed(id: UInt64) throws(StoreError) -> (Segment, [(hash: UInt64, seq: UInt64)]) {
        let path = hotDirectory + "/" + Segment.fileName(id: id, sealed: true)
        let fd = try io.open(path, flags: O_RDONLY, mode: 0)
        let size = try io.fileSize(fd)
        let headerBytes = try io.read(fd, count: SegmentFormat.headerSize, at: 0)
        let header: SegmentHeader
        switch headerBytes.withUnsafeBytes({ SegmentHeader.decode($0) }) {
        case .success(let h): header = h
        case .failure(let failure):
            // Without a header the file cannot be trusted at all: report, keep it out of reads.
            let report = CorruptionReport(file: Segment.fileName(id: id, sealed: true), offset: 0, reason: failure.reason)
            damage.append(report)
            logger.critical("sealed segment is damaged and will not be served: \(report)")
            let placeholder = SegmentHeader(segmentID: id, baseSeq: 0, createdMs: 0, previousLastSeq: 0, previousChainCRC: 0)
            let segment = Segment(
                id: id, path: path, fd: fd, header: placeholder, isSealed: true, dataEnd: SegmentFormat.headerSize,
                fileSize: size)
            segment.damage.append(report)
            return (segment, [])
        }
        let segment = Segment(
            id: id, path: path, fd: fd, header: header, isSealed: true, dataEnd: SegmentFormat.headerSize, fileSize: size)
        do throws(StoreError) {
            let entries = try loadFooter(segment, size: size)
            return (segment, entries)
        } catch {
            let report = CorruptionReport(file: segment.fileName, offset: nil, reason: "footer unusable (\(error.message)); indexes rebuilt from the records")
            logger.error("\(report)")
            segment.damage.append(report)
            let scan = try scanRecords(segment, from: SegmentFormat.headerSize, to: size, expectedSeq: nil, stopAtTrailer: true)
            segment.eventEntries.sort { $0.hash < $1.hash }
            segment.leadEntries.sort()
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
        var entries: [(hash: UInt64, seq: UInt64)] = []
        index.withUnsafeBytes { b in
            var at = 0
            segment.sparse.reserveCapacity(Int(trailer.sparseCount))
            for _ in 0..<trailer.sparseCount {
                segment.sparse.append(SparseEntry(firstSeq: b.u64(at: at), offset: b.u64(at: at + 8), minTs: b.i64(at: at + 16), maxTs: b.i64(at: at + 24)))
                at += SegmentFormat.sparseEntrySize
            }
            segment.leadEntries.reserveCapacity(Int(trailer.recordCount))
            for _ in 0..<trailer.recordCount {
                segment.leadEntries.append(b.u64(at: at))
                at += SegmentFormat.leadEntrySize
            }
            entries.reserveCapacity(Int(trailer.recordCount))
            for _ in 0..<trailer.recordCount {
                entries.append((b.u64(at: at), b.u64(at: at + 8)))
                at += SegmentFormat.eventEntrySize
            }
        }
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
        var offset = from
        var result = ScanResult(batchEnd: from, failure: nil)
        var expected = expectedSeq
        var pendingBatch: [(seq: UInt64, ts: Int64, lead: UInt32, hash: UInt64, offset: Int, size: Int, bytes: [UInt8])] = []
        var chunk: [UInt8] = []
        var chunkStart = 0
        var crc = segment.chainCRC
        while offset < to {
            if offset + SegmentFormat.recordHeaderSize > chunkStart + chunk.count || chunk.isEmpty {
                chunkStart = offset
                chunk = try io.read(segment.fd, count: min(1 << 20, to - offset), at: offset)
            }
            var decoded = chunk.withUnsafeBytes { all in
                RecordReader.decode(UnsafeRawBufferPointer(rebasing: all[(offset - chunkStart)...]), at: offset)
            }
            if case .success(nil) = decoded, chunk.count - (offset - chunkStart) >= SegmentFormat.recordHeaderSize {
                // The record runs past the chunk: read it whole (its length is bounded by the decoder).
                let total = chunk.withUnsafeBytes { RecordHeader.decode(UnsafeRawBufferPointer(rebasing: $0[(offset - chunkStart)...])).totalSize }
                if offset + total <= to {
                    chunkStart = offset
                    chunk = try io.read(segment.fd, count: max(total, min(1 << 20, to - offset)), at: offset)
                    decoded = chunk.withUnsafeBytes { RecordReader.decode($0, at: offset) }
                }
            }
            switch decoded {
            case .success(nil):
                if stopAtTrailer { return result }
                result.failure = (offset, "incomplete record at the end of the file")
                return result
            case .failure(.corrupt(let at, let reason)):
                result.failure = (at, reason)
                return result
            case .success(let pair?):
                let (header, total) = pair
                if let e = expected, header.seq != e {
                    result.failure = (offset, "seq \(header.seq) where \(e) was expected")
                    return result
                }
                expected = header.seq + 1
                let recordBytes = Array(chunk[(offset - chunkStart)..<(offset - chunkStart + total)])
                let body = Array(recordBytes[SegmentFormat.recordHeaderSize...])
                let idHash = body.withUnsafeBufferPointer { b in
                    StableHash.hash64(header.fields[.eventID].bytes(in: b) ?? [])
                }
                pendingBatch.append((header.seq, header.timestampMs, header.leadHash, idHash, offset, total, recordBytes))
                offset += total
                if header.flags & SegmentFormat.flagBatchEnd != 0 {
                    for r in pendingBatch {
                        segment.noteRecord(
                            seq: r.seq, timestampMs: r.ts, leadHash: r.lead, eventIDHash: r.hash, offset: r.offset, size: r.size,
                            sparseInterval: configuration.sparseIndexInterval)
                        crc = CRC32C.checksum(r.bytes, extending: crc)
                    }
                    pendingBatch.removeAll(keepingCapacity: true)
                    result.batchEnd = offset
                    segment.dataEnd = offset
                    segment.chainCRC = crc
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
            io.close(fd)
            if size <= SegmentFormat.headerSize {
                // Created but its header never became durable: nothing was ever written to it.
                try io.unlink(path)
                try io.syncDirectory(hotDirectory)
                logger.notice("removed a segment whose creation was interrupted", metadata: ["file": "\(name)"])
            } else {
                let target = try quarantine(path: path, reason: "header: \(failure.reason)")
                let report = CorruptionReport(file: name, offset: 0, reason: "\(failure.reason); moved to \(target)")
                damage.append(report)
                logger.critical("active segment is damaged: \(report)")
            }
            return nil
        }
        let segment = Segment(id: id, path: path, fd: fd, header: header, isSealed: false, dataEnd: SegmentFormat.headerSize, fileSize: size)
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

extension FileOperations {
    /// Reads a whole (small) file.
    func readWhole(_ path: String) throws(StoreError) -> [UInt8] {
        let fd = try open(path, flags: O_RDONLY, mode: 0)
        defer { close(fd) }
        return try read(fd, count: try fileSize(fd), at: 0)
    }
}
