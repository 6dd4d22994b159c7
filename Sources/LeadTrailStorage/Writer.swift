import Foundation
import LeadTrailEvents
import Logging

extension EventStore {
    /// Largest amount of event bytes committed in one group (one write, one sync).
    static let maximumGroupBytes = 32 << 20

    func startWriter() {
        let thread = Thread { [self] in self.writerLoop() }
        thread.name = "leadtrail-writer"
        thread.qualityOfService = .userInitiated
        thread.start()
    }

    /// The writer thread: owns the active segment, commits every batch waiting at
    /// each moment with one write and one `fdatasync`, seals and rolls segments.
    func writerLoop() {
        while true {
            var commands: [WriterCommand] = []
            let finishing: Bool = queueLock.withLock {
                if pending.isEmpty && !stopping { queueLock.wait(seconds: 0.2) }
                // Take every waiting command, up to the group size limit.
                var bytes = 0
                var taken = 0
                for command in pending {
                    if case .append(let batch, _) = command {
                        let size = batch.jsonByteCount
                        if taken > 0 && bytes + size > Self.maximumGroupBytes { break }
                        bytes += size
                    }
                    taken += 1
                }
                commands = Array(pending.prefix(taken))
                pending.removeFirst(taken)
                pendingBytes -= bytes
                return stopping && pending.isEmpty
            }
            var group: [PendingBatch] = []
            for command in commands {
                switch command {
                case .append(let batch, let completion):
                    group.append(PendingBatch(batch: batch, completion: completion))
                case .rotate(let completion):
                    if !group.isEmpty {
                        commitGroup(group)
                        group = []
                    }
                    completion(rotateNow())
                }
            }
            if !group.isEmpty { commitGroup(group) }
            maintenance()
            if finishing {
                finalSync()
                queueLock.withLock {
                    writerFinished = true
                    queueLock.signalAll()
                }
                return
            }
        }
    }

    /// The newest segment (the one appends go to). Read under the lock: tiering and restores change
    /// `segments` from other threads. There is always one after recovery.
    var active: Segment {
        stateLock.withLock { segments[segments.count - 1] }
    }

    var hasSegments: Bool { stateLock.withLock { !segments.isEmpty } }

    /// Age-based sealing, relaxed-mode syncs and checkpoints.
    func maintenance() {
        guard stateLock.withLock({ fatalError_ }) == nil else { return }
        let now = monotonicMilliseconds()
        if let first = active.firstRecordMonotonicMs, now - first >= Int64(configuration.segmentMaxAgeSeconds) * 1000 {
            do throws(StoreError) {
                _ = try rotateSegment()
            } catch {
                logger.error("could not seal the active segment by age", metadata: ["error": "\(error)"])
            }
        }
        if dirtySinceSync && now - lastSyncMonotonicMs >= 1000 {
            do throws(StoreError) {
                try io.fdatasync(active.fd)
                stateLock.withLock { counters.syncs += 1 }
                dirtySinceSync = false
                lastSyncMonotonicMs = now
                noteDurable()
            } catch {
                fail(StoreError(.unavailable, "sync failed (\(error.message)); no further appends are acknowledged"))
            }
        }
    }

    /// Records that everything written so far is on stable storage (the checkpointer writes it down).
    func noteDurable() {
        stateLock.withLock {
            guard let segment = segments.last else { return }
            durablePosition = Checkpoint(segmentID: segment.id, durableOffset: UInt64(segment.dataEnd), lastSeq: committedLastSeq)
        }
    }

    func finalSync() {
        guard stateLock.withLock({ fatalError_ }) == nil, hasSegments else { return }
        if dirtySinceSync {
            do throws(StoreError) {
                try io.fdatasync(active.fd)
                dirtySinceSync = false
            } catch {
                fail(StoreError(.unavailable, "final sync failed: \(error.message)"))
                return
            }
        }
        noteDurable()
        try? writeCheckpoint(force: true)
    }

    /// Enters the failed state: nothing is acknowledged from now on.
    func fail(_ error: StoreError) {
        logger.critical("storage failed; appends are refused until restart", metadata: ["error": "\(error.message)"])
        stateLock.withLock { fatalError_ = error }
    }

    /// Writes the newest durable position to the checkpoint file when it moved (always when forced).
    ///
    /// Runs on the checkpointer thread about once a second, and at open and close; never on the
    /// writer's path, so its syncs do not delay acknowledgements.
    func writeCheckpoint(force: Bool) throws(StoreError) {
        checkpointWriteLock.lock()
        defer { checkpointWriteLock.unlock() }
        guard let checkpoint = stateLock.withLock({ fatalError_ == nil ? durablePosition : nil }) else { return }
        guard force || checkpoint != lastCheckpoint else { return }
        try io.writeAtomically(checkpoint.encode(), to: configuration.directory + "/checkpoint", directory: configuration.directory,
            crashPoint: .checkpointBeforeRename)
        lastCheckpoint = checkpoint
    }

    struct EncodedRecord {
        var offsetInBuffer: Int
        var size: Int
        var seq: UInt64
        var timestampMs: Int64
        var leadHash: UInt32
        var eventIDHash: UInt64
        var fields: EventFieldRefs
    }

    /// A batch waiting in a group commit, with whom to tell.
    struct PendingBatch {
        var batch: PreparedBatch
        var completion: @Sendable (Result<[AppendOutcome], StoreError>) -> Void
    }

    /// Where the first event of the group with a given id hash is.
    struct GroupEventID {
        var batch: Int
        var entry: Int
        var seq: UInt64
    }

    /// Commits a group of batches: dedupe, assign seqs, one write, one sync, then publish and acknowledge.
    ///
    /// Costs no allocation per event: the records are encoded straight from each batch's buffer
    /// into one group buffer.
    func commitGroup(_ group: [PendingBatch]) {
        if let failure = stateLock.withLock({ fatalError_ }) {
            for pending in group { pending.completion(.failure(failure)) }
            return
        }
        let eventCount = group.reduce(0) { $0 + $1.batch.count }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(group.reduce(0) { $0 + $1.batch.jsonByteCount } + eventCount * SegmentFormat.recordHeaderSize)
        var records: [EncodedRecord] = []
        records.reserveCapacity(eventCount)
        var outcomes: [[AppendOutcome]] = []
        outcomes.reserveCapacity(group.count)
        // The group's own ids, so a resend inside one group is caught too (the table only learns them after the sync).
        var groupIDs: [UInt64: GroupEventID] = [:]
        groupIDs.reserveCapacity(eventCount)
        var collidingIDs: [(hash: UInt64, id: GroupEventID)] = []
        var seq = nextSeq

        func idBytes(_ b: Int, _ e: Int) -> ArraySlice<UInt8> {
            let batch = group[b].batch
            return batch.bytes[batch.entries[e].eventIDRange]
        }
        /// The seq the group already gave this id, if any.
        func seqInGroup(_ hash: UInt64, _ id: ArraySlice<UInt8>) -> UInt64? {
            guard let first = groupIDs[hash] else { return nil }
            if idBytes(first.batch, first.entry) == id { return first.seq }
            return collidingIDs.first { $0.hash == hash && idBytes($0.id.batch, $0.id.entry) == id }?.id.seq
        }

        for (b, pending) in group.enumerated() {
            let batch = pending.batch
            // First decide which events are new, so the last new one can carry the batch-end flag.
            var batchOutcomes: [AppendOutcome] = []
            batchOutcomes.reserveCapacity(batch.count)
            var lastNew = -1
            for (e, entry) in batch.entries.enumerated() {
                var original: UInt64? = nil
                if !entry.eventIDAssigned {
                    let id = batch.bytes[entry.eventIDRange]
                    original = seqInGroup(entry.eventIDHash, id) ?? storedSeq(ofEventID: id, hash: entry.eventIDHash)
                }
                if let original {
                    batchOutcomes.append(AppendOutcome(seq: original, duplicate: true))
                } else {
                    batchOutcomes.append(AppendOutcome(seq: seq, duplicate: false))
                    let here = GroupEventID(batch: b, entry: e, seq: seq)
                    if groupIDs[entry.eventIDHash] == nil {
                        groupIDs[entry.eventIDHash] = here
                    } else {
                        collidingIDs.append((entry.eventIDHash, here))
                    }
                    lastNew = e
                    seq += 1
                }
            }
            batch.bytes.withUnsafeBytes { bytes in
                for (e, entry) in batch.entries.enumerated() where !batchOutcomes[e].duplicate {
                    let start = buffer.count
                    let leadHash = UInt32(truncatingIfNeeded: entry.leadHash)
                    RecordHeader.append(
                        seq: batchOutcomes[e].seq, timestampMs: entry.timestampMs, leadHash: leadHash,
                        flags: e == lastNew ? SegmentFormat.flagBatchEnd : 0, fields: entry.fields,
                        payload: UnsafeRawBufferPointer(rebasing: bytes[entry.range]), to: &buffer)
                    records.append(EncodedRecord(
                        offsetInBuffer: start, size: buffer.count - start, seq: batchOutcomes[e].seq,
                        timestampMs: entry.timestampMs, leadHash: leadHash, eventIDHash: entry.eventIDHash, fields: entry.fields))
                }
            }
            outcomes.append(batchOutcomes)
        }

        if !buffer.isEmpty {
            do throws(StoreError) {
                try writeAndSync(buffer, records: records)
            } catch {
                for pending in group { pending.completion(.failure(error)) }
                return
            }
            nextSeq = seq
        }
        let observersNow = stateLock.withLock {
            counters.batches += UInt64(group.count)
            return observers
        }
        for (b, pending) in group.enumerated() { pending.completion(.success(outcomes[b])) }
        if !buffer.isEmpty {
            let last = seq - 1
            for observer in observersNow { observer(last) }
        }
    }

    /// Writes one group's bytes to the active segment (rolling first if it is full), syncs, and publishes them.
    func writeAndSync(_ buffer: [UInt8], records: [EncodedRecord]) throws(StoreError) {
        // A rotation that sealed the last segment but failed to create the next one left no active segment.
        if active.isSealed { try createActiveSegment() }
        let segment0 = active
        if segment0.count > 0 && segment0.dataEnd + buffer.count > configuration.segmentMaxBytes {
            _ = try rotateSegment()
        }
        let segment = active
        let writeOffset = segment.dataEnd
        do throws(StoreError) {
            try io.write(segment.fd, buffer, at: writeOffset)
            CrashPoint.afterWriteBeforeSync.reached()
        } catch {
            // Nothing of the group may stay behind: cut the file back to where it was.
            do throws(StoreError) {
                try io.ftruncate(segment.fd, length: writeOffset)
            } catch let truncateError {
                fail(StoreError(.unavailable, "could not undo a failed write (\(truncateError.message))"))
            }
            logger.error("append write failed; nothing of the group was stored", metadata: ["error": "\(error.message)"])
            throw StoreError(.unavailable, "nothing was stored: \(error.message)")
        }
        if configuration.durability == .fsync {
            do throws(StoreError) {
                try io.fdatasync(segment.fd)
            } catch {
                // The group is answered `unavailable` (nothing stored): take its bytes back out of the file, so a
                // restart does not bring back what was refused (best effort: the disk is failing).
                try? io.ftruncate(segment.fd, length: writeOffset)
                let failure = StoreError(.unavailable, "sync failed (\(error.message)); no further appends are acknowledged")
                fail(failure)
                throw failure
            }
            lastSyncMonotonicMs = monotonicMilliseconds()
            CrashPoint.afterSyncBeforeAck.reached()
        } else {
            dirtySinceSync = true
        }
        let chain = CRC32C.checksum(buffer, extending: segment.chainCRC)
        stateLock.withLock {
            if configuration.durability == .fsync { counters.syncs += 1 }
            buffer.withUnsafeBytes { bytes in
                for record in records {
                    let recordBytes = UnsafeRawBufferPointer(rebasing: bytes[record.offsetInBuffer..<(record.offsetInBuffer + record.size)])
                    segment.noteRecord(
                        seq: record.seq, timestampMs: record.timestampMs, leadHash: record.leadHash,
                        eventIDHash: record.eventIDHash, typeID: segment.typeID(record: recordBytes, fields: record.fields),
                        offset: writeOffset + record.offsetInBuffer, size: record.size, sparseInterval: configuration.sparseIndexInterval)
                    eventIDs.insert(hash: record.eventIDHash, seq: record.seq)
                }
            }
            segment.chainCRC = chain
            segment.dataEnd = writeOffset + buffer.count
            segment.fileSize = segment.dataEnd
            committedLastSeq = records.last?.seq ?? committedLastSeq
        }
        if configuration.durability == .fsync { noteDurable() }
        if segment.firstRecordMonotonicMs == nil { segment.firstRecordMonotonicMs = monotonicMilliseconds() }
        adoptGrownEventIDTable()
        if !eventIDGrowthRunning && eventIDs.shouldStartGrowing { startEventIDTableGrowth() }
        if eventIDs.needsGrowth { growEventIDTable() }
    }

    /// Doubles the event-id table, reading the hashes of sealed segments from their footers.
    /// Grows the event-id table now, on the writer thread (acknowledgements wait): only when the background
    /// build did not finish in time.
    func growEventIDTable() {
        // A background build is under way: wait for its table rather than building another.
        while eventIDGrowthRunning && stateLock.withLock({ grownEventIDs == nil }) { usleep(1000) }
        adoptGrownEventIDTable()
        guard eventIDs.needsGrowth else { return }
        // No segment changes tier while the table is rebuilt.
        tierLock.lock()
        defer { tierLock.unlock() }
        rebuildEventIDTable(minimumCapacity: max(eventIDs.count, 1) * 2)
    }

    /// Builds a table twice the size on another thread from everything stored up to now, while appends
    /// go on into the current one; ``adoptGrownEventIDTable()`` adds what came since and swaps it in.
    /// Without it, each doubling stopped acknowledgements for as long as reading every footer takes
    /// (about a second at ten million events).
    func startEventIDTableGrowth() {
        eventIDGrowthRunning = true
        let coveredSeq = stateLock.withLock { committedLastSeq }
        let capacity = max(eventIDs.count, 1) * 2
        let thread = Thread { [self] in
            // No segment changes tier while the footers are read (one sealed after the snapshot is
            // covered by the seq filter here and by the adoption).
            tierLock.lock()
            let archived = stateLock.withLock { coldCatalog.members.count }
            let table = buildEventIDTable(minimumCapacity: capacity, maximumSeq: coveredSeq)
            tierLock.unlock()
            stateLock.withLock { grownEventIDs = (table, coveredSeq, archived) }
        }
        thread.name = "leadtrail-id-table"
        thread.start()
    }

    /// Swaps in the table built in the background once it is ready, after adding the ids stored since its
    /// snapshot (from the active segment, and the footers of segments sealed meanwhile).
    func adoptGrownEventIDTable() {
        guard eventIDGrowthRunning, let grown = stateLock.withLock({ grownEventIDs }) else { return }
        eventIDGrowthRunning = false
        stateLock.withLock { grownEventIDs = nil }
        var table = grown.table
        let (recent, archived) = stateLock.withLock {
            (segments.filter { $0.tier != .restored && $0.lastSeq > grown.coveredSeq }, coldCatalog.members.count)
        }
        // A segment archived since the build may hold ids stored after its snapshot: build again.
        guard archived == grown.archivedSegments else { return }
        for segment in recent {
            // An unreadable footer is passed over, as a full rebuild does (the segment is reported damaged).
            guard let entries = storedEventEntries(segment) else { continue }
            for entry in entries where entry.seq > grown.coveredSeq { table.insert(hash: entry.hash, seq: entry.seq) }
        }
        stateLock.withLock { eventIDs = table }
    }

    /// A segment's (event-id hash, seq) entries: from its footer when sealed, else from memory; nil when the
    /// footer cannot be read.
    func storedEventEntries(_ segment: Segment) -> [(hash: UInt64, seq: UInt64)]? {
        segment.isSealed ? try? footerEventEntries(segment) : stateLock.withLock { segment.eventEntries }
    }

    func footerEventEntries(_ segment: Segment) throws(StoreError) -> [(hash: UInt64, seq: UInt64)] {
        let sectionStart = segment.sparse.count * SegmentFormat.sparseEntrySize + Int(segment.count) * SegmentFormat.leadEntrySize
        let length = Int(segment.count) * SegmentFormat.eventEntrySize
        let bytes: [UInt8]
        if let warm = segment.data as? WarmFile {
            let footer = try readWarmFooter(fd: warm.fd, name: segment.fileName)
            bytes = Array(footer.hotIndex[sectionStart..<min(footer.hotIndex.count, sectionStart + length)])
        } else {
            bytes = try io.read(segment.fd, count: length, at: segment.dataEnd + sectionStart)
        }
        return bytes.withUnsafeBytes { b in
            stride(from: 0, to: b.count - 15, by: 16).map { (b.u64(at: $0), b.u64(at: $0 + 8)) }
        }
    }

    func rotateNow() -> Result<SealedSegment?, StoreError> {
        if let failure = stateLock.withLock({ fatalError_ }) { return .failure(failure) }
        do throws(StoreError) {
            return .success(try rotateSegment())
        } catch {
            return .failure(error)
        }
    }

    /// Seals the active segment (if it holds records) and starts a new one.
    func rotateSegment() throws(StoreError) -> SealedSegment? {
        let segment = active
        if segment.isSealed {
            // Sealed by an earlier rotation that could not create the next segment: only that step is left.
            try createActiveSegment()
            return nil
        }
        guard segment.count > 0 else { return nil }
        let started = monotonicMilliseconds()
        if dirtySinceSync {
            try io.fdatasync(segment.fd)
            dirtySinceSync = false
        }
        try seal(segment)
        try createActiveSegment()
        noteDurable()
        // Appends wait while this runs: operators see how long in the log.
        logger.info(
            "rotated segment",
            metadata: ["segment.id": "\(segment.id)", "duration_ms": "\(monotonicMilliseconds() - started)"])
        return SealedSegment(segmentID: segment.id, firstSeq: segment.firstSeq, lastSeq: segment.lastSeq, events: segment.count)
    }

    /// Writes the footer (indexes and trailer), syncs, renames `.open` to `.seg`, syncs the directory.
    func seal(_ segment: Segment) throws(StoreError) {
        let leadSorted = segment.leadIndex.sorted()
        let eventSorted = segment.eventEntries.sorted { $0.hash < $1.hash || ($0.hash == $1.hash && $0.seq < $1.seq) }
        var w = ByteWriter(capacity: segment.sparse.count * 32 + leadSorted.count * 8 + eventSorted.count * 16 + 80)
        for entry in segment.sparse {
            w.u64(entry.firstSeq)
            w.u64(entry.offset)
            w.i64(entry.minTs)
            w.i64(entry.maxTs)
        }
        for entry in leadSorted { w.u64(entry) }
        for entry in eventSorted {
            w.u64(entry.hash)
            w.u64(entry.seq)
        }
        let indexCRC = CRC32C.mask(CRC32C.checksum(w.bytes))
        let trailer = SegmentTrailer(
            recordCount: segment.count, firstSeq: segment.firstSeq, lastSeq: segment.lastSeq, minTs: segment.minTs,
            maxTs: segment.maxTs, dataEnd: UInt64(segment.dataEnd), sparseCount: UInt32(segment.sparse.count),
            indexCRC: indexCRC, dataCRC: segment.chainCRC)
        w.raw(trailer.encode())
        do throws(StoreError) {
            try io.write(segment.fd, w.bytes, at: segment.dataEnd)
        } catch {
            try? io.ftruncate(segment.fd, length: segment.dataEnd)
            throw error
        }
        CrashPoint.sealAfterFooterWrite.reached()
        let sealedPath = hotDirectory + "/" + Segment.fileName(id: segment.id, sealed: true)
        do throws(StoreError) {
            try io.fdatasync(segment.fd)
            CrashPoint.sealAfterFooterSync.reached()
            try io.rename(segment.path, sealedPath)
            CrashPoint.sealAfterRename.reached()
            try io.syncDirectory(hotDirectory)
        } catch {
            // A failed sync stops acknowledgements; and after a failed rename or directory sync the file may be
            // (or become) the sealed one, which must never be appended to. Recovery finishes or undoes the seal.
            let failure = StoreError(.unavailable, "sealing failed (\(error.message)); no further appends are acknowledged")
            fail(failure)
            throw failure
        }
        stateLock.withLock {
            segment.path = sealedPath
            segment.isSealed = true
            segment.leadIndex = LeadIndex(sorted: leadSorted)
            segment.eventEntries = []
            segment.fileSize = segment.dataEnd + w.bytes.count
        }
        logger.info(
            "sealed segment",
            metadata: [
                "segment.id": "\(segment.id)", "seq.first": "\(segment.firstSeq)", "seq.last": "\(segment.lastSeq)",
                "events": "\(segment.count)", "bytes": "\(segment.fileSize)",
            ])
    }

    /// Creates the next active segment: header written and synced, directory synced.
    func createActiveSegment() throws(StoreError) {
        // Ids are never reused: archived segments count too (they leave `segments`, and a tiering run may
        // take the one just sealed out of it before this runs), or a new segment would take an archived id.
        let (previous, highest) = stateLock.withLock {
            (segments.last, max(segments.map(\.id).max() ?? 0, coldCatalog.members.map(\.member.segmentID).max() ?? 0))
        }
        let id = highest + 1
        let path = hotDirectory + "/" + Segment.fileName(id: id, sealed: false)
        let header = SegmentHeader(
            segmentID: id, baseSeq: nextSeq, createdMs: Timestamp.now(), previousLastSeq: previous?.lastSeq ?? 0,
            previousChainCRC: previous?.chainCRC ?? 0)
        let fd = try io.open(path, flags: O_RDWR | O_CREAT | O_EXCL, mode: 0o644)
        do throws(StoreError) {
            CrashPoint.createAfterOpen.reached()
            try io.write(fd, header.encode(), at: 0)
            try io.fdatasync(fd)
            CrashPoint.createAfterHeader.reached()
            try io.syncDirectory(hotDirectory)
        } catch {
            io.close(fd)
            try? io.unlink(path)
            throw error
        }
        let segment = Segment(
            id: id, path: path, data: HotFile(io: io, fd: fd), header: header, isSealed: false, dataEnd: SegmentFormat.headerSize,
            fileSize: SegmentFormat.headerSize)
        stateLock.withLock { segments.append(segment) }
    }
}
