import Foundation
import LeadTrailEvents
import Logging

extension EventStore {
    /// Largest amount of event bytes the writer encodes and writes as one group (one `pwrite`); a batch
    /// bigger than this is a group on its own. Groups do not share a sync by being one write: the syncer's
    /// one `fdatasync` covers every group written since its last, so small groups lose no sharing.
    ///
    /// Small, because the writer hands each group to the syncer only once it is written: with 32 MiB the
    /// writer took every batch waiting (up to 16 of 1.2 MB with four producers) and encoded them all before
    /// the syncer could start on the first, so the stages took turns instead of overlapping. At 2 MiB four
    /// producers appended 435-520k events/s against 332-429k (8 alternating pairs, the same machine), one
    /// producer the same (408-507k against 416-486k), and at a paced 200k events/s the p99 was the same.
    static let maximumGroupBytes = 2 << 20
    /// The largest group buffer the writer keeps for the next group (a bigger one is freed).
    static let keptGroupBufferBytes = 8 << 20

    func startWriter() {
        startThread(named: "leadtrail-writer") { [self] in writerLoop() }
        if configuration.durability == .fsync { startSyncer() }
    }

    /// The writer thread: owns the active segment, commits every batch waiting at
    /// each moment with one write and one `fdatasync`, seals and rolls segments.
    func writerLoop() {
        while true {
            var commands: [WriterCommand] = []
            let finishing: Bool = queueLock.withLock {
                if pending.isEmpty && !stopping { queueLock.wait(seconds: 0.2) }
                let (taken, bytes) = Self.nextGroup(eventBytes: pending.lazy.map(\.eventBytes))
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
                    rotateNow(completion)
                }
            }
            if !group.isEmpty { commitGroup(group) }
            maintenance()
            if finishing {
                finalSync()
                if configuration.durability == .fsync { stopSyncer() }
                queueLock.withLock {
                    writerFinished = true
                    queueLock.signalAll()
                }
                return
            }
        }
    }

    /// How many of the waiting commands (each an append's event bytes, or nil for another command) the next
    /// group takes, and their event bytes: every one in order up to `limit` bytes, and always the first.
    static func nextGroup(eventBytes: some Sequence<Int?>, limit: Int = maximumGroupBytes) -> (taken: Int, bytes: Int) {
        var bytes = 0
        var taken = 0
        for size in eventBytes {
            if let size {
                if taken > 0 && bytes + size > limit { break }
                bytes += size
            }
            taken += 1
        }
        return (taken, bytes)
    }

    /// The newest segment (the one appends go to). Read under the lock: tiering and restores change
    /// `segments` from other threads. There is always one after recovery.
    var active: Segment {
        stateLock.withLock { segments[segments.count - 1] }
    }

    var hasSegments: Bool { stateLock.withLock { !segments.isEmpty } }

    /// Age-based sealing, relaxed-mode syncs, checkpoints, and handing memory back once appends pause.
    func maintenance() {
        guard stateLock.withLock({ fatalError_ }) == nil else { return }
        let now = monotonicMilliseconds()
        #if canImport(Glibc)
        // A burst of appends leaves megabyte buffers (frames, prepared batches) freed in malloc's free lists,
        // where glibc keeps them: after a second without appends they go back to the system.
        if let last = lastGroupBeforeTrimMonotonicMs, now - last >= 1000 {
            _ = leadtrailMallocTrim(0)
            lastGroupBeforeTrimMonotonicMs = nil
        }
        #endif
        if let first = active.firstRecordMonotonicMs, now - first >= Int64(configuration.segmentMaxAgeSeconds) * 1000 {
            do throws(StoreError) {
                _ = try rotateSegment()
            } catch {
                logger.error("could not seal the active segment by age", metadata: ["error": "\(error)"])
            }
        }
        if dirtySinceSync && now - lastSyncMonotonicMs >= 1000 {
            do throws(StoreError) {
                try timedSync(active.fd)
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
        drainPipeline()
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
        /// The record's id in its segment's type column (found by the writer, noted when published).
        var typeID = TypeColumn.unknown
    }

    /// A batch waiting in a group commit, with whom to tell.
    struct PendingBatch {
        var batch: PreparedBatch
        var completion: @Sendable (Result<[AppendOutcome], StoreError>) -> Void
    }

    /// Commits a group of batches: dedupe, assign seqs, one write; then (on the syncer thread) one sync,
    /// and (on the publisher thread) publish and acknowledge.
    ///
    /// Costs no allocation per event: the records are encoded straight from each batch's buffer
    /// into one group buffer. The writer does not wait for the sync: it goes on with the next group while
    /// the syncer makes this one durable, so a group's parsing, encoding and write overlap the sync before it.
    func commitGroup(_ group: [PendingBatch]) {
        if let failure = stateLock.withLock({ fatalError_ }) {
            for pending in group { pending.completion(.failure(failure)) }
            return
        }
        lastGroupBeforeTrimMonotonicMs = monotonicMilliseconds()
        let eventCount = group.reduce(0) { $0 + $1.batch.count }
        // The previous group's buffer, reused: a fresh megabyte would cost a page fault per 4 KiB on this path.
        var buffer: [UInt8] = []
        swap(&buffer, &groupBuffer)
        defer {
            buffer.removeAll(keepingCapacity: true)
            if buffer.capacity <= Self.keptGroupBufferBytes { groupBuffer = buffer }
        }
        buffer.reserveCapacity(group.reduce(0) { $0 + $1.batch.jsonByteCount } + eventCount * SegmentFormat.recordHeaderSize)
        var records: [EncodedRecord] = []
        records.reserveCapacity(eventCount)
        var outcomes: [[AppendOutcome]] = []
        outcomes.reserveCapacity(group.count)
        // The group's own ids, so a resend inside one group is caught too (the table only learns them after the sync).
        var ids = GroupEventIDs(batches: group.map(\.batch), capacity: eventCount)
        // Groups written but not yet published: their ids are not in the table yet either.
        let unpublished = pipelineLock.withLock { writtenGroups }
        var seq = nextSeq

        for (b, pending) in group.enumerated() {
            let batch = pending.batch
            // First decide which events are new, so the last new one can carry the batch-end flag.
            var batchOutcomes: [AppendOutcome] = []
            batchOutcomes.reserveCapacity(batch.count)
            var lastNew = -1
            // Which of the ids sent the table may hold, for the whole batch under one lock: only those are looked
            // up in full (an id the daemon assigned is new).
            let sent = batch.entries.indices.filter { !batch.entries[$0].eventIDAssigned }
            let held = stateLock.withLock { eventIDs.mayHold(sent.map { batch.entries[$0].eventIDHash }) }
            var mayBeStored = [Bool](repeating: false, count: batch.count)
            for (k, e) in sent.enumerated() { mayBeStored[e] = held[k] }
            for (e, entry) in batch.entries.enumerated() {
                var original: UInt64? = nil
                if !entry.eventIDAssigned {
                    let id = batch.bytes[entry.eventIDRange]
                    original = ids.seq(ofEventID: id, hash: entry.eventIDHash)
                        ?? unpublished.lazy.compactMap { $0.ids.seq(ofEventID: id, hash: entry.eventIDHash) }.first
                        ?? (mayBeStored[e] ? storedSeq(ofEventID: id, hash: entry.eventIDHash) : nil)
                }
                if let original {
                    batchOutcomes.append(AppendOutcome(seq: original, duplicate: true))
                } else {
                    batchOutcomes.append(AppendOutcome(seq: seq, duplicate: false))
                    ids.insert(hash: entry.eventIDHash, GroupEventID(batch: b, entry: e, seq: seq))
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

        let written: WrittenGroup
        do throws(StoreError) {
            written = try write(buffer, records: records, batches: group, outcomes: outcomes, ids: ids)
        } catch {
            for pending in group { pending.completion(.failure(error)) }
            return
        }
        if !buffer.isEmpty { nextSeq = seq }
        if configuration.durability == .relaxed {
            publish([written])
            acknowledge([written])
        }
    }

    /// Writes one group's bytes to the active segment (rolling first if it is full) and queues it for the syncer.
    /// Nothing is published or acknowledged here.
    func write(
        _ buffer: [UInt8], records: [EncodedRecord], batches: [PendingBatch], outcomes: [[AppendOutcome]], ids: GroupEventIDs
    ) throws(StoreError) -> WrittenGroup {
        // A rotation that sealed the last segment but failed to create the next one left no active segment.
        if active.isSealed { try createActiveSegment() }
        if !buffer.isEmpty && writeOffset > SegmentFormat.headerSize && writeOffset + buffer.count > configuration.segmentMaxBytes {
            try rotateSegment()
        }
        let segment = active
        let offset = writeOffset
        let chain = buffer.isEmpty ? writeChainCRC : CRC32C.checksum(buffer, extending: writeChainCRC)
        // Type ids come from the record bytes, which only the writer holds: found now, noted when published.
        var records = records
        buffer.withUnsafeBytes { bytes in
            stateLock.withLock {
                for i in records.indices {
                    let record = bytes[records[i].offsetInBuffer..<(records[i].offsetInBuffer + records[i].size)]
                    records[i].typeID = segment.typeID(record: UnsafeRawBufferPointer(rebasing: record), fields: records[i].fields)
                }
            }
        }
        let group = WrittenGroup(
            segment: segment, offset: offset, byteCount: buffer.count, chainCRC: chain, records: records, batches: batches,
            outcomes: outcomes, ids: ids)
        // Under the pipeline lock, so a failed sync (which cuts the file back under it) cannot miss this write.
        try pipelineLock.withLock { () throws(StoreError) in
            if let failure = stateLock.withLock({ fatalError_ }) { throw failure }
            if !buffer.isEmpty {
                do throws(StoreError) {
                    let started = monotonicNanoseconds()
                    try io.write(segment.fd, buffer, at: offset)
                    let elapsed = monotonicNanoseconds() - started
                    stateLock.withLock { writeTimes.record(nanoseconds: elapsed, bytes: buffer.count) }
                    CrashPoint.afterWriteBeforeSync.reached()
                } catch {
                    // Nothing of the group may stay behind: cut the file back to where it was.
                    do throws(StoreError) {
                        try io.ftruncate(segment.fd, length: offset)
                    } catch let truncateError {
                        fail(StoreError(.unavailable, "could not undo a failed write (\(truncateError.message))"))
                    }
                    logger.error("append write failed; nothing of the group was stored", metadata: ["error": "\(error.message)"])
                    throw StoreError(.unavailable, "nothing was stored: \(error.message)")
                }
            }
            if configuration.durability == .fsync {
                writtenGroups.append(group)
                pipelineLock.signalAll()
            }
        }
        writeOffset = offset + buffer.count
        writeChainCRC = chain
        if !buffer.isEmpty && segment.firstRecordMonotonicMs == nil { segment.firstRecordMonotonicMs = monotonicMilliseconds() }
        // With fsync the syncer's sync of this group also makes a new segment's header durable; relaxed mode
        // leaves the group to the timer's sync.
        if !buffer.isEmpty { dirtySinceSync = configuration.durability == .relaxed }
        return group
    }

    /// An explicit rotation: answered once the rolled segment is sealed.
    func rotateNow(_ completion: @escaping @Sendable (Result<SealedSegment?, StoreError>) -> Void) {
        if let failure = stateLock.withLock({ fatalError_ }) { return completion(.failure(failure)) }
        do throws(StoreError) {
            if !(try rotateSegment(completion: completion)) { completion(.success(nil)) }
        } catch {
            completion(.failure(error))
        }
    }

    /// Starts a new active segment and hands the old one (if it holds records) to the sealer, which calls
    /// `completion` once it is sealed. Returns whether a segment was rolled.
    ///
    /// The writer's part is small: with a spare segment ready it is one header write, made durable by the
    /// next group's sync. The old segment's data is durable already (each group is synced; in relaxed mode
    /// the seal's sync covers it).
    @discardableResult
    func rotateSegment(completion: (@Sendable (Result<SealedSegment?, StoreError>) -> Void)? = nil) throws(StoreError) -> Bool {
        let segment = active
        if segment.isSealed {
            // Recovery sealed it, or an earlier rotation could not create the next segment: only that step is left.
            try createActiveSegment()
            return false
        }
        // The segment's last groups are published before it is sealed or the next one's header takes its chain.
        drainPipeline()
        guard segment.count > 0 else { return false }
        let waited = waitForSealerToCatchUp()
        if waited > 0 {
            stateLock.withLock { counters.rotationsWaitedForSealer += 1 }
            logger.info("rotation waited for the sealer", metadata: ["pending_seals": "\(Self.maximumPendingSeals)", "duration_ms": "\(waited)"])
        }
        let started = monotonicMilliseconds()
        if dirtySinceSync {
            // Relaxed mode: the old segment's records become durable before the next segment is noted durable.
            try io.fdatasync(segment.fd)
            dirtySinceSync = false
        }
        try createActiveSegment()
        enqueueSeal(SealJob(segment: segment, completion: completion))
        logger.info(
            "rotated segment",
            metadata: ["segment.id": "\(segment.id)", "duration_ms": "\(monotonicMilliseconds() - started)"])
        return true
    }

    /// Writes the footer (indexes and trailer), syncs, renames `.open` to `.seg`, syncs the directory.
    func seal(_ segment: Segment) throws(StoreError) {
        let started = monotonicMilliseconds()
        guard let leadSorted = segment.leadIndex.sorted() else {
            throw StoreError(.corrupt, "\(segment.fileName): its lead index could not be read back for the footer")
        }
        let eventSorted = EventIDEntrySort.sortedByHash(segment.eventEntries)
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
            try io.writeInPieces(segment.fd, w.bytes, at: segment.dataEnd)
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
        let sealedView = stateLock.withLock {
            segment.path = sealedPath
            segment.isSealed = true
            // Taken before the budget may drop the type column, which goes to its file below.
            let view = segment.view()
            trimTypeColumns()
            // From now on the lead entries are read from the footer just written.
            segment.leadIndex = LeadIndex(
                sorted: leadSorted, storedIn: segment.data, at: segment.dataEnd + segment.sparse.count * SegmentFormat.sparseEntrySize)
            segment.eventEntries = []
            segment.fileSize = segment.dataEnd + w.bytes.count
            return view
        }
        storeTypeIndex(sealedView.types, for: sealedView)
        logger.info(
            "sealed segment",
            metadata: [
                "segment.id": "\(segment.id)", "seq.first": "\(segment.firstSeq)", "seq.last": "\(segment.lastSeq)",
                "events": "\(segment.count)", "bytes": "\(segment.fileSize)",
                "duration_ms": "\(monotonicMilliseconds() - started)",
            ])
    }

    /// Creates the next active segment.
    ///
    /// From the spare segment when one is ready: its header is written and made durable by the next sync of
    /// the active segment (a group's, or the timer's), before any record in it is acknowledged. A crash before
    /// that leaves an empty file, or one whose header and first record do not check out, which recovery removes
    /// or moves aside. Without a spare: header written and synced, directory synced.
    func createActiveSegment() throws(StoreError) {
        spareLock.lock()
        defer { spareLock.unlock() }
        let id = nextSegmentID()
        let previous = chainOfSegment(before: id)
        let header = SegmentHeader(
            segmentID: id, baseSeq: nextSeq, createdMs: Timestamp.now(), previousLastSeq: previous.lastSeq,
            previousChainCRC: previous.chainCRC)
        let path: String, fd: Int32
        if let spare = takeSpareSegment(id: id) {
            (path, fd) = (spare.path, spare.fd)
            do throws(StoreError) {
                try io.write(fd, header.encode(), at: 0)
                CrashPoint.createAfterHeader.reached()
            } catch {
                removeSpareFile(spare)
                throw error
            }
            // The next sync of the active segment makes the header durable: the first group's, or the timer's
            // within a second (nothing in the segment is acknowledged before).
            dirtySinceSync = true
            lastSyncMonotonicMs = monotonicMilliseconds()
        } else {
            (path, fd) = try createSegmentFile(id: id) { (fd) throws(StoreError) in
                try io.write(fd, header.encode(), at: 0)
                try io.fdatasync(fd)
                CrashPoint.createAfterHeader.reached()
            }
        }
        let segment = Segment(
            id: id, path: path, data: HotFile(io: io, fd: fd), header: header, isSealed: false,
            dataEnd: SegmentFormat.headerSize, fileSize: SegmentFormat.headerSize)
        writeOffset = SegmentFormat.headerSize
        writeChainCRC = 0
        stateLock.withLock { segments.append(segment) }
    }

    /// The chain fields a new segment `id` carries: the last seq and data CRC of segment `id - 1`. That one is
    /// the active segment being rolled, except at a start after a crash cut the active segment's creation short:
    /// then it may already be archived, and its trailer is read back from the archive. Without a segment
    /// `id - 1` (the first segment, or one lost to damage), the newest segment held.
    func chainOfSegment(before id: UInt64) -> (lastSeq: UInt64, chainCRC: UInt32) {
        let (held, archived, newest) = stateLock.withLock {
            (segments.last { $0.id + 1 == id }, coldCatalog.members.first { $0.member.segmentID + 1 == id }, segments.last)
        }
        if let held { return (held.lastSeq, held.chainCRC) }
        if let archived, let raw = try? archivedHotFile(day: archived.day, member: archived.member),
           let (trailer, _) = try? checkedHotFile(raw, name: "cold/\(archived.day).ltz") {
            return (trailer.lastSeq, trailer.dataCRC)
        }
        return (newest?.lastSeq ?? 0, newest?.chainCRC ?? 0)
    }
}
