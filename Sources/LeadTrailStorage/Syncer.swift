import Foundation
import LeadTrailEvents

/// Where the first event of a group with a given id hash is.
struct GroupEventID {
    var batch: Int
    var entry: Int
    var seq: UInt64
}

/// The event ids a group stores, so a resend is caught before the table learns them (after the sync).
///
/// Open addressing on the ids' 64-bit hashes, at most half full. The slot comes from a multiply-shift of
/// the hash with a multiplier drawn per process, so ids made to collide in a fixed number of bits do not
/// pile up; every hit is confirmed on the id's bytes. (A dictionary hashed each hash again with SipHash:
/// a tenth of the writer's time.)
struct GroupEventIDs {
    let batches: [PreparedBatch]
    private var hashes: [UInt64]
    /// A slot whose seq is 0 is empty (seqs start at 1).
    private var slots: [GroupEventID]
    private let shift: UInt64
    /// The process's multiplier, copied here: a static read in `home` would check its lazy initialisation per id.
    private let multiplier = Self.processMultiplier
    private var count = 0
    private static let processMultiplier = UInt64.random(in: 1...UInt64.max) | 1

    /// Room for `capacity` ids.
    init(batches: [PreparedBatch], capacity: Int) {
        self.batches = batches
        var bits: UInt64 = 4
        while 1 << bits < 2 * max(capacity, 1) { bits += 1 }
        shift = 64 - bits
        hashes = [UInt64](repeating: 0, count: 1 << bits)
        slots = [GroupEventID](repeating: GroupEventID(batch: 0, entry: 0, seq: 0), count: 1 << bits)
    }

    @inline(__always) private func home(_ hash: UInt64) -> Int { Int(truncatingIfNeeded: (hash &* multiplier) >> shift) }

    private func idBytes(_ id: GroupEventID) -> ArraySlice<UInt8> {
        let batch = batches[id.batch]
        return batch.bytes[batch.entries[id.entry].eventIDRange]
    }

    /// The seq this group gave the id, if any.
    func seq(ofEventID id: ArraySlice<UInt8>, hash: UInt64) -> UInt64? {
        let mask = slots.count - 1
        var i = home(hash)
        while slots[i].seq != 0 {
            if hashes[i] == hash, idBytes(slots[i]) == id { return slots[i].seq }
            i = (i + 1) & mask
        }
        return nil
    }

    mutating func insert(hash: UInt64, _ id: GroupEventID) {
        precondition(count < slots.count / 2 && id.seq != 0, "more ids than the group was sized for")
        let mask = slots.count - 1
        var i = home(hash)
        while slots[i].seq != 0 { i = (i + 1) & mask }
        hashes[i] = hash
        slots[i] = id
        count += 1
    }
}

/// A group the writer has written to the active segment: the syncer makes it durable, the publisher
/// publishes its records to readers and acknowledges its batches, in the order groups were written.
final class WrittenGroup: @unchecked Sendable {
    let segment: Segment
    /// Where the group's bytes start in the segment file, and how many there are (0 when every event was a duplicate).
    let offset: Int
    let byteCount: Int
    /// The segment's chain CRC after this group.
    let chainCRC: UInt32
    let records: [EventStore.EncodedRecord]
    let batches: [EventStore.PendingBatch]
    let outcomes: [[AppendOutcome]]
    let ids: GroupEventIDs
    /// Set by the syncer when the sync that covered this group failed (guarded by the store's `pipelineLock`).
    var syncFailure: StoreError?

    init(
        segment: Segment, offset: Int, byteCount: Int, chainCRC: UInt32, records: [EventStore.EncodedRecord],
        batches: [EventStore.PendingBatch], outcomes: [[AppendOutcome]], ids: GroupEventIDs
    ) {
        self.segment = segment
        self.offset = offset
        self.byteCount = byteCount
        self.chainCRC = chainCRC
        self.records = records
        self.batches = batches
        self.outcomes = outcomes
        self.ids = ids
    }
}

extension EventStore {
    /// Starts the two threads behind the writer (fsync durability): the syncer makes written groups durable,
    /// the publisher publishes and acknowledges them.
    ///
    /// One `fdatasync` covers every group written before it starts; meanwhile the writer encodes and writes the
    /// next groups, and the publisher publishes the groups the previous sync made durable, so the disk is not left
    /// idle while the indexes take them. Rotations wait until every written group is published
    /// (``drainPipeline()``), so the groups in flight always share one segment.
    func startSyncer() {
        pipelineLock.withLock {
            syncerStopping = false
            syncerFinished = false
            publisherFinished = false
        }
        startThread(named: "leadtrail-syncer") { [self] in syncerLoop() }
        startThread(named: "leadtrail-publisher") { [self] in publisherLoop() }
    }

    /// Syncs the groups written since the last sync, then hands them to the publisher, each marked with
    /// the sync's outcome.
    func syncerLoop() {
        while true {
            let (groups, stop): ([WrittenGroup], Bool) = pipelineLock.withLock {
                while syncedGroups == writtenGroups.count && !syncerStopping { pipelineLock.wait(seconds: 1) }
                return (Array(writtenGroups[syncedGroups...]), syncerStopping && syncedGroups == writtenGroups.count)
            }
            if stop { break }
            var failure = stateLock.withLock { fatalError_ }
            if let firstWritten = groups.first(where: { $0.byteCount > 0 }) {
                if failure == nil {
                    do throws(StoreError) {
                        try timedSync(firstWritten.segment.fd)
                        CrashPoint.afterSyncBeforeAck.reached()
                    } catch {
                        let refused = StoreError(.unavailable, "sync failed (\(error.message)); no further appends are acknowledged")
                        pipelineLock.withLock { fail(refused) }
                        failure = refused
                    }
                }
                if failure != nil {
                    // The groups are answered `unavailable` (nothing stored), whether this sync failed or another
                    // step did first (a seal's sync, say): take their bytes back out of the file, so a restart does
                    // not bring back what was refused (best effort: the disk may be failing). Under the pipeline
                    // lock, so no write of the writer's lands after the cut. Groups synced before stay. A cut made
                    // for earlier groups may have taken these already: the file is never lengthened.
                    let fd = firstWritten.segment.fd
                    pipelineLock.withLock {
                        if let size = try? io.fileSize(fd), size > firstWritten.offset { try? io.ftruncate(fd, length: firstWritten.offset) }
                    }
                }
            }
            pipelineLock.withLock {
                for group in groups { group.syncFailure = failure }
                syncedGroups += groups.count
                pipelineLock.signalAll()
            }
        }
        pipelineLock.withLock {
            syncerFinished = true
            pipelineLock.signalAll()
        }
    }

    /// Publishes the groups the syncer made durable and acknowledges them, in the order they were written;
    /// a group whose sync failed is answered with the failure.
    func publisherLoop() {
        while true {
            let (groups, stop): ([WrittenGroup], Bool) = pipelineLock.withLock {
                while syncedGroups == 0 && !syncerFinished { pipelineLock.wait(seconds: 1) }
                return (Array(writtenGroups.prefix(syncedGroups)), syncerFinished && syncedGroups == 0)
            }
            if stop { break }
            // Once a sync fails every later one is refused too, so the durable groups come first.
            let durable = Array(groups.prefix { $0.syncFailure == nil })
            publish(durable)
            pipelineLock.withLock {
                writtenGroups.removeFirst(groups.count)
                syncedGroups -= groups.count
                pipelineLock.signalAll()
            }
            acknowledge(durable)
            for group in groups[durable.count...] {
                let failure = group.syncFailure ?? StoreError(.unavailable, "sync failed")
                for pending in group.batches { pending.completion(.failure(failure)) }
            }
        }
        pipelineLock.withLock {
            publisherFinished = true
            pipelineLock.signalAll()
        }
    }

    /// One `fdatasync` of the append path, counted and timed for `stats`.
    func timedSync(_ fd: Int32) throws(StoreError) {
        let started = monotonicNanoseconds()
        try io.fdatasync(fd)
        let elapsed = monotonicNanoseconds() - started
        stateLock.withLock {
            counters.syncs += 1
            syncTimes.record(nanoseconds: elapsed)
        }
    }

    /// Waits until every written group is published and acknowledged (writer thread).
    func drainPipeline() {
        pipelineLock.withLock {
            while !writtenGroups.isEmpty { pipelineLock.wait(seconds: 0.1) }
        }
    }

    /// Drains the pipeline and stops the syncer and the publisher.
    func stopSyncer() {
        pipelineLock.withLock {
            syncerStopping = true
            pipelineLock.signalAll()
            while !publisherFinished { pipelineLock.wait(seconds: 0.1) }
        }
    }

    /// Makes durable groups visible to readers: their records enter the segment's indexes and the event-id table,
    /// and `dataEnd` moves past them. Runs on the publisher thread (on the writer's in relaxed durability), the only
    /// thread that changes the event-id table while the store serves.
    func publish(_ groups: [WrittenGroup]) {
        guard let last = groups.last(where: { $0.byteCount > 0 }) else { return }
        let segment = last.segment
        // The ids sorted by hash before the lock is taken: the table takes them partition by partition, its cache
        // misses overlapping, in one call (inserting them one by one was a third of this thread's time).
        var ids: [(hash: UInt64, seq: UInt64)] = []
        ids.reserveCapacity(groups.reduce(0) { $0 + $1.records.count })
        for group in groups {
            for record in group.records { ids.append((record.eventIDHash, record.seq)) }
        }
        ids = EventIDEntrySort.sortedByHash(ids)
        stateLock.withLock {
            for group in groups {
                for record in group.records {
                    segment.noteRecord(
                        seq: record.seq, timestampMs: record.timestampMs, leadHash: record.leadHash,
                        eventIDHash: record.eventIDHash, typeID: record.typeID, offset: group.offset + record.offsetInBuffer, size: record.size,
                        sparseInterval: configuration.sparseIndexInterval)
                }
            }
            let complete = eventIDs.insert(contentsOf: ids)
            precondition(complete, "seq out of range for the event id table")
            segment.chainCRC = last.chainCRC
            segment.dataEnd = last.offset + last.byteCount
            segment.fileSize = segment.dataEnd
            committedLastSeq = last.records.last?.seq ?? committedLastSeq
        }
        if configuration.durability == .fsync { noteDurable() }
    }

    /// Answers every batch of the groups, then tells the commit observers the new last seq.
    func acknowledge(_ groups: [WrittenGroup]) {
        let observersNow = stateLock.withLock {
            counters.batches += UInt64(groups.reduce(0) { $0 + $1.batches.count })
            return observers
        }
        for group in groups {
            for (b, pending) in group.batches.enumerated() { pending.completion(.success(group.outcomes[b])) }
        }
        if let last = groups.last(where: { $0.byteCount > 0 })?.records.last?.seq {
            for observer in observersNow { observer(last) }
        }
    }
}
