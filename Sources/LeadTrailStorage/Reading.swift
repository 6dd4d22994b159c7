#if canImport(Glibc)
import Glibc
#endif
import Foundation
import LeadTrailEvents
import Logging

extension EventStore {
    /// A consistent picture of the log for one reader: the segments and the last acknowledged seq.
    func snapshot() -> (views: [SegmentView], lastSeq: UInt64) {
        stateLock.withLock { (segments.map { $0.view() }, committedLastSeq) }
    }

    var reader: RecordReader { RecordReader() }

    /// Reads the record with `seq` from the views (nil when absent or damaged).
    func record(seq: UInt64, in views: [SegmentView]) throws(StoreError) -> (RecordHeader, [UInt8])? {
        // Non-empty segments hold ascending, disjoint seq ranges.
        let filled = views.filter { $0.count > 0 }
        var low = 0, high = filled.count
        while low < high {
            let mid = (low + high) / 2
            if filled[mid].firstSeq <= seq { low = mid + 1 } else { high = mid }
        }
        guard low > 0 else { return nil }
        let view = filled[low - 1]
        guard let run = view.sparseIndex(forSeq: seq) else { return nil }
        var offset = Int(view.sparse[run].offset)
        // Seqs are consecutive inside a segment: the n-th record of a run has the run's first seq + n.
        var expected = view.sparse[run].firstSeq
        let end = view.dataEnd
        while offset < end && expected <= seq {
            guard let (header, body) = try reader.readRecord(view.data, at: offset, limit: end) else {
                try noteReadDamageUnlessNotWaiting(view, offset: offset)
                // The records after a damaged one are still served: go on at the next known record.
                guard let next = view.nextRecordOffset(after: offset) else { return nil }
                offset = next
                expected += 1
                continue
            }
            if header.seq != expected {
                // Its checksum holds but it is not where its seq says: never served.
                try noteReadDamageUnlessNotWaiting(view, offset: offset, reason: "record has seq \(header.seq) where \(expected) belongs; not served")
            } else if header.seq == seq {
                return (header, body)
            }
            offset += header.totalSize
            expected += 1
        }
        return nil
    }

    func noteReadDamage(_ view: SegmentView, offset: Int, reason: String = "record failed its checksum on read; not served") {
        let report = CorruptionReport(file: view.fileName, offset: offset, reason: reason)
        stateLock.withLock {
            guard let segment = segments.first(where: { $0.id == view.id }), !segment.damage.contains(report) else { return }
            segment.damage.append(report)
            logger.error("\(report)")
        }
    }

    /// ``noteReadDamage(_:offset:reason:)``, except in a read that may not wait (``ReadsWithoutWaiting``): that one
    /// gives up with ``StoreError/wouldBlock`` and leaves the damage to the read that follows on a thread that may.
    func noteReadDamageUnlessNotWaiting(
        _ view: SegmentView, offset: Int, reason: String = "record failed its checksum on read; not served"
    ) throws(StoreError) {
        if ReadsWithoutWaiting.active { throw StoreError.wouldBlock }
        noteReadDamage(view, offset: offset, reason: reason)
    }

    /// The seq of the stored event with this id, if any (the writer's dedupe: the table's candidates, each checked
    /// against its record).
    func storedSeq(ofEventID idBytes: some Collection<UInt8>, hash: UInt64) -> UInt64? {
        let candidates: [UInt64] = stateLock.withLock {
            var seqs: [UInt64] = []
            eventIDs.candidates(hash: hash) { seqs.append($0); return false }
            return seqs
        }
        guard !candidates.isEmpty else { return nil }
        let views = snapshot().views
        for seq in candidates {
            if let (header, body) = try? record(seq: seq, in: views) {
                if body.withUnsafeBufferPointer({ header.fields[.eventID].equals(idBytes, in: $0) }) { return seq }
            } else if coldHoldsEventID(hash: hash, seq: seq) {
                // Archived: its full 64-bit id hash is in the archive's id index.
                return seq
            }
        }
        return nil
    }

    /// The stored event with this id, or nil.
    public func event(withID id: String) throws(StoreError) -> StoredEvent? {
        let hash = StableHash.hash64(id.utf8)
        let (views, _) = snapshot()
        let candidates: [UInt64] = stateLock.withLock {
            var seqs: [UInt64] = []
            eventIDs.candidates(hash: hash) { seqs.append($0); return false }
            return seqs
        }
        let idBytes = Array(id.utf8)
        for seq in candidates {
            guard let (header, body) = try record(seq: seq, in: views) else { continue }
            if body.withUnsafeBufferPointer({ header.fields[.eventID].equals(idBytes, in: $0) }) {
                return StoredEvent(seq: header.seq, timestampMs: header.timestampMs, body: body, fields: header.fields)
            }
        }
        return nil
    }

    /// The stored event with this seq, or nil.
    public func event(seq: UInt64) throws(StoreError) -> StoredEvent? {
        let (views, _) = snapshot()
        guard let (header, body) = try record(seq: seq, in: views) else { return nil }
        return StoredEvent(seq: header.seq, timestampMs: header.timestampMs, body: body, fields: header.fields)
    }

    /// ``event(withID:)`` when it can be answered without waiting for the disk (see
    /// ``eventsWithoutWaiting(forLead:limit:)``): nil when it cannot, `.some(nil)` when there is no such event.
    public func eventWithoutWaiting(withID id: String) -> StoredEvent?? {
        do {
            return .some(try ReadsWithoutWaiting.run { () throws(StoreError) in try event(withID: id) })
        } catch {
            return nil
        }
    }

    /// ``events(forLead:)`` when it can be answered without waiting for the disk: at most `limit` events,
    /// all in hot segments, every byte needed in the page cache, nothing damaged. Else nil, having
    /// reported nothing: the caller then asks ``events(forLead:)`` on a thread that may wait (which
    /// also reports any damage). Costs at most `limit` record reads from memory.
    public func eventsWithoutWaiting(forLead leadID: String, limit: Int) -> [StoredEvent]? {
        var result: [StoredEvent] = []
        do {
            _ = try ReadsWithoutWaiting.run { () throws(StoreError) in
                try scanLead(leadID, hints: ScanHints(), matching: nil) { view in
                    guard result.count < limit else { throw StoreError.wouldBlock }
                    result.append(view.copy())
                    return true
                }
            }
        } catch {
            return nil
        }
        return result
    }

    /// Every readable event of one lead, in seq order, found through the lead indexes.
    public func events(forLead leadID: String) throws(StoreError) -> [StoredEvent] {
        var result: [StoredEvent] = []
        try scanLead(leadID, hints: ScanHints(), matching: nil) { view in
            result.append(view.copy())
            return true
        }
        return result
    }

    /// Visits the events of one lead in seq order; returns false when the visitor stopped.
    ///
    /// Each record is read with one `pread` (two for records over 4 KiB) into a stack buffer and
    /// checked (CRC included) before `predicate` and `visitor` see it. A read that may wait first
    /// asks for every record it will read (``SegmentData/prefetch(_:count:)``): a lead's records lie
    /// far apart, and those the page cache no longer holds then come from the disk side by side.
    @discardableResult
    func scanLead(
        _ leadID: String, hints: ScanHints, matching predicate: ((RecordView) -> Bool)?, _ visitor: (RecordView) throws -> Bool
    ) throws(StoreError) -> Bool {
        let leadBytes = Array(leadID.utf8)
        let hash32 = UInt32(truncatingIfNeeded: StableHash.hash64(leadBytes))
        let (views, _) = snapshot()
        // Each segment that may hold the lead, with its records' offsets (nil: its index cannot be used).
        var segments: [(view: SegmentView, offsets: [Int]?)] = []
        for view in views where view.count > 0 && view.lastSeq > hints.afterSeq {
            if let from = hints.fromMs, view.maxTs < from { continue }
            if let to = hints.toMs, view.minTs >= to { continue }
            segments.append((view, view.offsets(forLeadHash: hash32)))
        }
        if !ReadsWithoutWaiting.active, segments.reduce(0, { $0 + ($1.offsets?.count ?? 0) }) > 1 {
            for (view, offsets) in segments {
                for offset in offsets ?? [] { view.data.prefetch(offset, count: min(RecordReader.firstReadBytes, view.dataEnd - offset)) }
            }
        }
        for (view, offsets) in segments {
            guard let offsets else {
                // In a read that may not wait, this may also be a footer block not in the page cache.
                try noteReadDamageUnlessNotWaiting(
                    view, offset: view.dataEnd, reason: "lead index block failed its checksum on read; its records are read in full instead")
                if !(try scanLeadWithoutIndex(leadBytes, in: view, hints: hints, matching: predicate, visitor)) { return false }
                continue
            }
            for offset in offsets {
                let outcome = try reader.withRecord(view.data, at: offset, limit: view.dataEnd) {
                    (header, bytes) throws(StoreError) -> Bool in
                    guard header.seq > hints.afterSeq else { return true }
                    if let from = hints.fromMs, header.timestampMs < from { return true }
                    if let to = hints.toMs, header.timestampMs >= to { return true }
                    let body = UnsafeRawBufferPointer(rebasing: bytes[SegmentFormat.recordHeaderSize...]).assumingMemoryBound(to: UInt8.self)
                    guard header.fields[.leadID].equals(leadBytes, in: body) else { return true }
                    let record = RecordView(seq: header.seq, timestampMs: header.timestampMs, leadHash: header.leadHash, fields: header.fields, body: body)
                    if let predicate, !predicate(record) { return true }
                    return try storeErrors { try visitor(record) }
                }
                guard let keepGoing = outcome else {
                    try noteReadDamageUnlessNotWaiting(view, offset: offset)
                    continue
                }
                if !keepGoing { return false }
            }
        }
        return true
    }

    /// ``scanLead(_:hints:matching:_:)`` in one segment whose lead index cannot be used: every record of the
    /// segment is read (and every one served checked), and those of the lead visited.
    private func scanLeadWithoutIndex(
        _ leadBytes: [UInt8], in view: SegmentView, hints: ScanHints, matching predicate: ((RecordView) -> Bool)?,
        _ visitor: (RecordView) throws -> Bool
    ) throws(StoreError) -> Bool {
        var segmentHints = hints
        segmentHints.leadID = nil
        segmentHints.types = nil
        segmentHints.afterSeq = max(hints.afterSeq, view.firstSeq - 1)
        var stopped = false
        _ = try storeErrors {
            // The first record past the segment is let through only to end the scan there.
            try scan(segmentHints, matching: { record in
                record.seq > view.lastSeq || (record.fields[.leadID].equals(leadBytes, in: record.body) && predicate?(record) != false)
            }) { record in
                guard record.seq <= view.lastSeq else { return false }
                if try !visitor(record) { stopped = true }
                return !stopped
            }
        }
        return !stopped
    }

    /// Visits acknowledged records in seq order, skipping whole segments and
    /// index runs that the hints rule out. The visitor returns false to stop.
    ///
    /// `predicate`, when given, is the caller's exact filter: it sees each record's header fields
    /// and body *before* its CRC is checked (it must only compare bytes, and be false for bytes it
    /// does not expect), and only the records it accepts are checked and visited. So a scan checks
    /// the CRC of every record it serves and reads the others' headers only; a record whose length
    /// or position does not add up sends the scan back to check the records before it in full, and
    /// damage is reported (logged and counted in `stats`) and never served. `verify` checks every
    /// byte of every record.
    ///
    /// Returns the highest seq examined: the seq of the last visited record when
    /// stopped early, else the last seq of the log at the start of the scan.
    @discardableResult
    public func scan(
        _ hints: ScanHints, matching predicate: ((RecordView) -> Bool)? = nil, _ visitor: (RecordView) throws -> Bool
    ) throws -> UInt64 {
        try scan(
            hints, matching: predicate, pieceBytes: Self.scanPieceBytes, parallelFrom: Self.parallelScanMinimumBytes,
            probeBytes: Self.parallelProbeBytes, visitor)
    }

    /// Records in one piece of a scan: pieces are what the two threads of a parallel scan share out.
    static let scanPieceBytes = 1 << 20
    /// A filtered scan that reads at least this many bytes may run on two threads.
    static let parallelScanMinimumBytes = 8 << 20
    /// A filtered scan first reads this much on its own thread, and takes a helper thread for the rest only
    /// if it served at most ``parallelServedShare`` of the bytes it read: a selective filter's header walk
    /// is work worth sharing, but a scan that serves most of what it reads is limited by copying records
    /// out to the client, and the helper's extra copy of each record and its thread only compete with that
    /// (on two cores, a one-hour window or a scan by type through the type columns took 10-20% longer).
    static let parallelProbeBytes = 2 << 20
    /// A scan that reads at least this much returns the free memory of the malloc arenas when it ends.
    static let trimAfterScanBytes = 256 << 20
    static let parallelServedShare = 0.25

    /// ``scan(_:matching:_:)`` with the sizes that decide how it splits its work (tests make them small;
    /// with `probeBytes` 0 a scan of at least `parallelMinimum` bytes takes a helper thread from the start).
    func scan(
        _ hints: ScanHints, matching predicate: ((RecordView) -> Bool)?, pieceBytes: Int, parallelFrom parallelMinimum: Int,
        probeBytes: Int = 0, _ visitor: (RecordView) throws -> Bool
    ) throws -> UInt64 {
        let (views, lastSeq) = snapshot()
        if let leadID = hints.leadID {
            var lastVisited = hints.afterSeq
            let completed = try scanLead(leadID, hints: hints, matching: predicate) { record in
                lastVisited = record.seq
                return try visitor(record)
            }
            return completed ? max(lastSeq, hints.afterSeq) : lastVisited
        }
        // The byte ranges of the index runs worth reading (with the seqs each starts and ends at), adjacent
        // runs merged into pieces of about `pieceBytes`. In a segment with a type column, when the scan wants
        // some types only, a piece reads only the records of those types (picked when the scan reaches it, so
        // that a scan of the whole store never holds every picked record, nor every column, at once).
        let typeColumns = hints.types.map { _ in ScanTypeColumns(store: self) }
        var pieces: [(view: SegmentView, range: ScanRange)] = []
        for view in views where view.count > 0 && view.lastSeq > hints.afterSeq {
            if let from = hints.fromMs, view.maxTs < from { continue }
            if let to = hints.toMs, view.minTs >= to { continue }
            var ranges: [ScanRange] = []
            let firstRun = view.sparseIndex(forSeq: hints.afterSeq + 1) ?? 0
            func wanted(_ entry: SparseEntry) -> Bool {
                if let from = hints.fromMs, entry.maxTs < from { return false }
                if let to = hints.toMs, entry.minTs >= to { return false }
                return true
            }
            var byType = typeColumns != nil && view.typeColumn != nil
            if typeColumns != nil, !byType {
                // Read from its file when this scan reads more than a sliver of the segment (the file holds 5 bytes
                // a record); built only when it reads most of the segment anyway (building costs a pass over all of it).
                let reading = (firstRun..<view.sparse.count).reduce(0) { wanted(view.sparse[$1]) ? $0 + view.runEnd($1) - Int(view.sparse[$1].offset) : $0 }
                let all = view.dataEnd - Int(view.sparse.first?.offset ?? 0)
                if reading * 16 >= all { byType = try typeColumn(for: view, mayBuild: reading * 2 >= all) != nil }
            }
            for i in firstRun..<view.sparse.count {
                let entry = view.sparse[i]
                if !wanted(entry) { continue }
                let range = Int(entry.offset)..<view.runEnd(i)
                let endSeq = i + 1 < view.sparse.count ? view.sparse[i + 1].firstSeq : view.lastSeq + 1
                if let last = ranges.last, last.bytes.upperBound == range.lowerBound, last.bytes.count < pieceBytes {
                    ranges[ranges.count - 1].bytes = last.bytes.lowerBound..<range.upperBound
                    ranges[ranges.count - 1].endSeq = endSeq
                } else {
                    ranges.append(ScanRange(bytes: range, firstSeq: entry.firstSeq, endSeq: endSeq, typeColumns: byType ? typeColumns : nil))
                }
            }
            for range in ranges { pieces.append((view, range)) }
        }
        // A long scan leaves megabytes of freed read buffers in the malloc arenas of the threads it used: hand
        // them back, so the resident set stays where it was.
        let plannedBytes = pieces.reduce(0) { $0 + $1.range.bytes.count }
        defer {
            #if canImport(Glibc)
            if plannedBytes >= Self.trimAfterScanBytes { _ = leadtrailMallocTrim(0) }
            #endif
        }
        var next = 0
        if let predicate, pieces.count > 1, plannedBytes >= parallelMinimum {
            // The probe: the first pieces on this thread, counting what they read and serve.
            var read = 0, served = 0
            while next < pieces.count, read < probeBytes {
                let stopped = try scanRange(pieces[next].view, pieces[next].range, hints: hints, matching: predicate, read: &read) { record in
                    served += record.body.count
                    return try visitor(record)
                }
                if let stopped { return stopped }
                next += 1
            }
            if pieces.count - next > 1, Double(served) <= Double(read) * Self.parallelServedShare {
                let stopped = try scanInParallel(Array(pieces[next...]), hints: hints, matching: predicate, visitor)
                return stopped ?? max(lastSeq, hints.afterSeq)
            }
        }
        for piece in pieces[next...] {
            let stopped = try scanRange(piece.view, piece.range, hints: hints, matching: predicate, visitor)
            if let stopped { return stopped }
        }
        return max(lastSeq, hints.afterSeq)
    }

    /// The type column of a sealed segment that has none in memory (it was loaded from its footer, or the memory
    /// budget dropped it): read from the type index file beside a hot or warm segment (``TypeIndexFile``), or,
    /// when `mayBuild`, built by reading its records' headers once (what a scan by type that reads most of the
    /// segment reads anyway) and stored in that file. Kept in memory while the newest segments' columns fit the
    /// budget. Nil for other segments, or when a record's length or seq does not add up: that segment is then
    /// scanned record by record, which finds and reports the damage.
    func typeColumn(for view: SegmentView, mayBuild: Bool) throws(StoreError) -> TypeColumn? {
        guard view.isSealed, view.count > 0, view.servesPickedRecords, let first = view.sparse.first else { return nil }
        // Only the newest segments' columns stay in memory (counting every newer segment, with a column or yet to
        // get one): past the budget a column would soon be dropped again.
        let newer = stateLock.withLock { segments.filter { $0.id > view.id }.reduce(0) { $0 + Int($1.count) } }
        let fitsBudget = newer + Int(view.count) <= configuration.typeColumnRecordBudget
        let stored = typeIndexPath(id: view.id, tier: view.tier) != nil
        var column: TypeColumn
        if let loaded = loadTypeIndex(for: view) {
            column = loaded
        } else if mayBuild && (stored || fitsBudget) {
            column = TypeColumn()
            var dictionary = TypeDictionary()
            var cursor = RecordCursor(from: Int(first.offset), to: view.dataEnd, data: view.data, chunkSize: Self.scanChunkSize)
            cursor.verifiesChecksums = false
            var expected = view.firstSeq
            reading: while true {
                switch try cursor.next() {
                case .end:
                    break reading
                case .record(let header, _):
                    guard header.seq == expected else { return nil }
                    column.append(id: dictionary.id(record: cursor.recordBytes, fields: header.fields, column: &column), offset: cursor.recordOffset)
                    expected += 1
                case .incomplete, .corrupt:
                    return nil
                }
            }
            guard column.count == Int(view.count), !column.isBroken else { return nil }
            if stored { storeTypeIndex(column, for: view) }
        } else {
            return nil
        }
        if fitsBudget {
            stateLock.withLock {
                guard let segment = segments.first(where: { $0.id == view.id }), segment.data === view.data, segment.isSealed,
                    segment.types.count == 0, segment.count == view.count
                else { return }
                segment.types = column
                trimTypeColumns()
            }
        }
        return column
    }

    /// Keeps type columns within ``StoreConfiguration/typeColumnRecordBudget``, newest segments first: an older
    /// sealed segment past the budget drops its column (a scan by type then reads it record by record, and
    /// builds a column for that scan only). The active and rolled segments keep theirs. Caller holds `stateLock`.
    func trimTypeColumns() {
        var kept = 0
        for segment in segments.reversed() where segment.types.count > 0 {
            if segment.isSealed && kept + segment.types.count > configuration.typeColumnRecordBudget {
                segment.types = TypeColumn()
            } else {
                kept += segment.types.count
            }
        }
    }

    /// The records a helper thread found in one piece, checked and copied, for the scan's own thread to visit.
    final class PieceRecords {
        var bytes: [UInt8] = []
        var records: [(seq: UInt64, timestampMs: Int64, leadHash: UInt32, fields: EventFieldRefs, body: Range<Int>)] = []
        var error: Error?
    }

    /// Two threads share a filtered scan: the scan's own thread reads the even pieces and visits their
    /// records as it finds them; a helper thread reads the odd pieces, copying the records that match
    /// (CRC checked) into a buffer per piece, which the scan's thread visits in turn. The helper stays
    /// at most a few pieces ahead, so memory stays bounded, and the visitor sees every record in seq
    /// order on the calling thread. Returns the seq where the visitor stopped, if it did.
    func scanInParallel(
        _ pieces: [(view: SegmentView, range: ScanRange)], hints: ScanHints, matching predicate: @escaping (RecordView) -> Bool,
        _ visitor: (RecordView) throws -> Bool
    ) throws -> UInt64? {
        let lock = ConditionLock()
        nonisolated(unsafe) var results: [Int: PieceRecords] = [:]
        nonisolated(unsafe) var position = 0  // the piece the scan's thread is at
        nonisolated(unsafe) var stop = false
        nonisolated(unsafe) var helperDone = false
        let aheadLimit = 4
        let helper = Thread { [self] in
            var i = 1
            while i < pieces.count {
                let go: Bool = lock.withLock {
                    while !stop && i > position + aheadLimit { lock.wait(seconds: 1) }
                    return !stop
                }
                guard go else { break }
                let found = PieceRecords()
                // Room for every record of the piece up front: growing the buffer would copy it again and again.
                found.bytes.reserveCapacity(pieces[i].range.typeColumns == nil ? pieces[i].range.bytes.count : 0)
                do {
                    _ = try scanRange(pieces[i].view, pieces[i].range, hints: hints, matching: predicate) { record in
                        let start = found.bytes.count
                        found.bytes.append(contentsOf: record.body)
                        found.records.append((record.seq, record.timestampMs, record.leadHash, record.fields, start..<found.bytes.count))
                        return true
                    }
                } catch {
                    found.error = error
                }
                lock.withLock {
                    results[i] = found
                    lock.signalAll()
                }
                i += 2
            }
            lock.withLock {
                helperDone = true
                lock.signalAll()
            }
        }
        helper.start()
        defer {
            lock.withLock {
                stop = true
                lock.signalAll()
                while !helperDone { lock.wait(seconds: 1) }
            }
        }
        for i in 0..<pieces.count {
            lock.withLock {
                position = i
                lock.signalAll()
            }
            if i % 2 == 0 {
                if let stopped = try scanRange(pieces[i].view, pieces[i].range, hints: hints, matching: predicate, visitor) { return stopped }
                continue
            }
            let found: PieceRecords = lock.withLock {
                while results[i] == nil { lock.wait(seconds: 1) }
                return results.removeValue(forKey: i) ?? PieceRecords()
            }
            if let error = found.error { throw error }
            let stopped: UInt64? = try found.bytes.withUnsafeBufferPointer { bytes in
                for record in found.records {
                    let view = RecordView(
                        seq: record.seq, timestampMs: record.timestampMs, leadHash: record.leadHash, fields: record.fields,
                        body: UnsafeBufferPointer(rebasing: bytes[record.body]))
                    if try !visitor(view) { return record.seq }
                }
                return nil
            }
            if let stopped { return stopped }
        }
        return nil
    }

    /// A stretch of a segment's records: its bytes, the seq of its first record and the seq after its last;
    /// and, for a scan by type through the segment's type column, where the scan gets the column.
    struct ScanRange {
        var bytes: Range<Int>
        var firstSeq: UInt64
        var endSeq: UInt64
        var typeColumns: ScanTypeColumns? = nil
    }

    /// One record a type column picked out: its seq and where it lies.
    struct PickedRecord {
        var seq: UInt64
        var bytes: Range<Int>
    }

    /// The records of `seqs` (a stretch of `view`) that a scan for `types` may want, by their ids in `column`,
    /// and where each lies.
    static func pickRecords(_ column: TypeColumn, types: TypeSelection, view: SegmentView, seqs: Range<UInt64>) -> [PickedRecord] {
        guard !seqs.isEmpty else { return [] }
        let wanted = column.wanted(by: types)
        var picked: [PickedRecord] = []
        column.forEachID(in: Int(seqs.lowerBound - view.firstSeq)..<Int(seqs.upperBound - view.firstSeq)) { k, id in
            guard wanted[Int(id)] else { return }
            let start = column.offset(at: k)
            let end = k + 1 < column.count ? column.offset(at: k + 1) : view.dataEnd
            picked.append(PickedRecord(seq: view.firstSeq + UInt64(k), bytes: start..<end))
        }
        return picked
    }

    /// Picked records less than this far apart are read with one `pread` (reading the gap costs less than a call).
    static let pickedGapBytes = 4 << 10

    /// Visits the picked records of a range: each read whole (neighbours with one `pread`), found exactly
    /// where the type column says, and checked in full (CRC included) before it is served. A record that is
    /// not what the column says (another length or seq) or fails a check is reported and skipped: the
    /// column gives the next one's offset, so no length read from the file is trusted.
    func scanPicked(
        _ segment: SegmentView, _ picked: [PickedRecord], hints: ScanHints, matching predicate: ((RecordView) -> Bool)?,
        _ visitor: (RecordView) throws -> Bool
    ) throws -> UInt64? {
        guard let span = picked.first.map({ $0.bytes.lowerBound..<picked[picked.count - 1].bytes.upperBound }) else { return nil }
        let keeps = Self.unwrapped(predicate)
        var buffer = ChunkBuffer(capacity: min(Self.scanChunkSize, span.count))
        var i = 0
        while i < picked.count {
            let start = picked[i].bytes.lowerBound
            var end = picked[i].bytes.upperBound
            var j = i + 1
            while j < picked.count, picked[j].bytes.lowerBound - end <= Self.pickedGapBytes,
                picked[j].bytes.upperBound - start <= Self.scanChunkSize
            {
                end = picked[j].bytes.upperBound
                j += 1
            }
            if end - start > buffer.bytes.count { buffer = ChunkBuffer(capacity: end - start) }
            let chunk = UnsafeMutableRawBufferPointer(rebasing: buffer.bytes[0..<(end - start)])
            let n = try segment.data.read(into: chunk, at: start)
            for pick in picked[i..<j] {
                let offset = pick.bytes.lowerBound
                let here = (offset - start)..<(pick.bytes.upperBound - start)
                let bytes = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(chunk)[here.clamped(to: 0..<n)])
                guard case .success(let (header, total)?) = RecordReader.decode(bytes, at: offset, checksum: false), total == here.count else {
                    noteReadDamage(segment, offset: offset)
                    continue
                }
                if header.seq != pick.seq {
                    noteReadDamage(segment, offset: offset, reason: "record has seq \(header.seq) where \(pick.seq) belongs; not served")
                    continue
                }
                if header.kind != SegmentFormat.kindEvent || header.seq <= hints.afterSeq { continue }
                if let from = hints.fromMs, header.timestampMs < from { continue }
                if let to = hints.toMs, header.timestampMs >= to { continue }
                let body = UnsafeRawBufferPointer(rebasing: bytes[SegmentFormat.recordHeaderSize...]).assumingMemoryBound(to: UInt8.self)
                let record = RecordView(seq: header.seq, timestampMs: header.timestampMs, leadHash: header.leadHash, fields: header.fields, body: body)
                if !keeps(record) { continue }
                guard RecordHeader.checksumMatches(bytes, totalSize: total), header.fieldsAreConsistent() else {
                    noteReadDamage(segment, offset: offset)
                    continue
                }
                if try !visitor(record) { return header.seq }
            }
            i = j
        }
        return nil
    }

    /// A scan's predicate, unwrapped once before its loop: an optional closure called inside the loop has its
    /// context retained and released for every record, atomics on memory that every scan thread shares.
    @inline(__always)
    static func unwrapped(_ predicate: ((RecordView) -> Bool)?) -> (RecordView) -> Bool {
        predicate ?? { _ in true }
    }

    /// Scans read segments in chunks of this size: one `pread` each, into a buffer that stays in the CPU's cache.
    static let scanChunkSize = 256 << 10

    /// Visits the records in one byte range of a segment; returns the seq where the visitor stopped, if it did.
    func scanRange(
        _ view: SegmentView, _ range: ScanRange, hints: ScanHints, matching predicate: ((RecordView) -> Bool)?,
        _ visitor: (RecordView) throws -> Bool
    ) throws -> UInt64? {
        var read = 0
        return try scanRange(view, range, hints: hints, matching: predicate, read: &read, visitor)
    }

    /// ``scanRange(_:_:hints:matching:_:)``, adding to `read` the bytes of records it reads.
    func scanRange(
        _ view: SegmentView, _ range: ScanRange, hints: ScanHints, matching predicate: ((RecordView) -> Bool)?, read: inout Int,
        _ visitor: (RecordView) throws -> Bool
    ) throws -> UInt64? {
        if let columns = range.typeColumns, let types = hints.types, let column = view.typeColumn ?? columns.column(for: view) {
            let picked = Self.pickRecords(column, types: types, view: view, seqs: max(range.firstSeq, hints.afterSeq + 1)..<range.endSeq)
            read += picked.reduce(0) { $0 + $1.bytes.count }
            return try scanPicked(view, picked, hints: hints, matching: predicate, visitor)
        }
        read += range.bytes.count
        // Seqs are consecutive inside a segment: a record whose seq is not the expected one is not served.
        var expected = range.firstSeq
        var cursor = RecordCursor(from: range.bytes.lowerBound, to: range.bytes.upperBound, data: view.data, chunkSize: Self.scanChunkSize)
        // Without a predicate every record is visited, so every CRC is checked as it is read.
        cursor.verifiesChecksums = predicate == nil
        let keeps = Self.unwrapped(predicate)
        // The previous record, when the scan passed over it without checking its CRC: if what follows it
        // does not add up, its length may be what is wrong.
        var unchecked: Int? = nil
        // After something that does not add up, while CRCs are not checked as records are read: goes back
        // to the unchecked previous record (or to `current`) and reads on with every check, so that damage
        // is found and reported exactly as a scan that checks everything finds it. False when already there.
        func recheck(from current: Int?) -> Bool {
            guard !cursor.verifiesChecksums, let back = unchecked ?? current else { return false }
            if unchecked != nil { expected -= 1 }
            unchecked = nil
            cursor.seek(to: back)
            cursor.verifiesChecksums = true
            return true
        }
        while true {
            let step = try cursor.next()
            guard case .record(let header, let total) = step else {
                if case .end = step {
                    if expected != range.endSeq, recheck(from: nil) { continue }
                    return nil
                }
                if recheck(from: nil) { continue }
                // The length cannot be trusted after damage: go on at the next known record.
                noteReadDamage(view, offset: cursor.offset)
                guard let next = view.nextRecordOffset(after: cursor.offset) else { return nil }
                cursor.seek(to: next)
                expected += 1
                continue
            }
            if header.seq != expected {
                if recheck(from: cursor.recordOffset) { continue }
                // Its checksum holds but it is not where its seq says: never served.
                noteReadDamage(view, offset: cursor.recordOffset, reason: "record has seq \(header.seq) where \(expected) belongs; not served")
                expected += 1
                continue
            }
            expected += 1
            let verified = cursor.lastRecordVerified
            unchecked = verified ? nil : cursor.recordOffset
            if header.kind != SegmentFormat.kindEvent || header.seq <= hints.afterSeq { continue }
            if let from = hints.fromMs, header.timestampMs < from { continue }
            if let to = hints.toMs, header.timestampMs >= to { continue }
            // The cursor's bytes stay put until its next step: no closure (and no retain of the predicate) per record.
            let bytes = cursor.recordBytes
            let body = UnsafeRawBufferPointer(rebasing: bytes[SegmentFormat.recordHeaderSize..<total]).assumingMemoryBound(to: UInt8.self)
            let record = RecordView(seq: header.seq, timestampMs: header.timestampMs, leadHash: header.leadHash, fields: header.fields, body: body)
            if !keeps(record) { continue }
            // Served: its CRC must hold.
            guard verified || (RecordHeader.checksumMatches(bytes, totalSize: total) && header.fieldsAreConsistent()) else {
                // Its bytes fail their CRC, so its length cannot be trusted either: go on at the next known record.
                noteReadDamage(view, offset: cursor.recordOffset)
                unchecked = nil
                guard let next = view.nextRecordOffset(after: cursor.recordOffset) else { return nil }
                cursor.seek(to: next)
                continue
            }
            unchecked = nil
            if try !visitor(record) { return header.seq }
        }
    }
}

/// The type columns a scan by type reads segments through when the memory budget keeps none for them: taken
/// from the segment if it has one by now, else read from its type index file when a piece of the segment is
/// reached. At most two are held (the scan's thread and its helper work on neighbouring pieces), so a scan of
/// the whole store holds one or two columns, not all of them.
final class ScanTypeColumns: @unchecked Sendable {
    private let store: EventStore
    private let lock = ConditionLock()
    private var recent: [(id: UInt64, column: TypeColumn?)] = []

    init(store: EventStore) {
        self.store = store
    }

    /// `view`'s column, or nil when it has none that checks out (its pieces then read every record).
    func column(for view: SegmentView) -> TypeColumn? {
        if let hit = lock.withLock({ recent.first { $0.id == view.id } }) { return hit.column }
        let kept = store.stateLock.withLock { store.segments.first { $0.id == view.id && $0.data === view.data }?.view().typeColumn }
        let column = kept ?? store.loadTypeIndex(for: view)
        lock.withLock {
            recent.removeAll { $0.id == view.id }
            recent.append((view.id, column))
            if recent.count > 2 { recent.removeFirst() }
        }
        return column
    }
}
