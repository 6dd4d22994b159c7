#if canImport(Glibc)
import Glibc
#endif
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
                noteReadDamage(view, offset: offset)
                // The records after a damaged one are still served: go on at the next known record.
                guard let next = view.nextRecordOffset(after: offset) else { return nil }
                offset = next
                expected += 1
                continue
            }
            if header.seq != expected {
                // Its checksum holds but it is not where its seq says: never served.
                noteReadDamage(view, offset: offset, reason: "record has seq \(header.seq) where \(expected) belongs; not served")
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

    /// The seq of the stored event with this id, if any (writer thread: reads the table without the lock).
    func storedSeq(ofEventID idBytes: some Collection<UInt8>, hash: UInt64) -> UInt64? {
        var candidates: [UInt64] = []
        eventIDs.candidates(hash: hash) { candidates.append($0); return false }
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

    /// Every readable event of one lead, in seq order, found through the lead indexes.
    public func events(forLead leadID: String) throws(StoreError) -> [StoredEvent] {
        var result: [StoredEvent] = []
        try scanLead(leadID, hints: ScanHints()) { view in
            result.append(view.copy())
            return true
        }
        return result
    }

    /// Visits the events of one lead in seq order; returns false when the visitor stopped.
    @discardableResult
    func scanLead(_ leadID: String, hints: ScanHints, _ visitor: (RecordView) throws -> Bool) throws(StoreError) -> Bool {
        let leadBytes = Array(leadID.utf8)
        let hash32 = UInt32(truncatingIfNeeded: StableHash.hash64(leadBytes))
        let (views, _) = snapshot()
        for view in views where view.count > 0 && view.lastSeq > hints.afterSeq {
            if let from = hints.fromMs, view.maxTs < from { continue }
            if let to = hints.toMs, view.minTs >= to { continue }
            for offset in view.offsets(forLeadHash: hash32) {
                guard let (header, body) = try reader.readRecord(view.data, at: offset, limit: view.dataEnd) else {
                    noteReadDamage(view, offset: offset)
                    continue
                }
                guard header.seq > hints.afterSeq else { continue }
                if let from = hints.fromMs, header.timestampMs < from { continue }
                if let to = hints.toMs, header.timestampMs >= to { continue }
                let keep = try body.withUnsafeBufferPointer { (b) throws(StoreError) -> Bool in
                    guard header.fields[.leadID].equals(leadBytes, in: b) else { return true }
                    let record = RecordView(seq: header.seq, timestampMs: header.timestampMs, leadHash: header.leadHash, fields: header.fields, body: b)
                    return try storeErrors { try visitor(record) }
                }
                if !keep { return false }
            }
        }
        return true
    }

    /// Visits acknowledged records in seq order, skipping whole segments and
    /// index runs that the hints rule out. The visitor returns false to stop.
    ///
    /// Returns the highest seq examined: the seq of the last visited record when
    /// stopped early, else the last seq of the log at the start of the scan.
    @discardableResult
    public func scan(_ hints: ScanHints, _ visitor: (RecordView) throws -> Bool) throws -> UInt64 {
        let (views, lastSeq) = snapshot()
        if let leadID = hints.leadID {
            var lastVisited = hints.afterSeq
            let completed = try scanLead(leadID, hints: hints) { record in
                lastVisited = record.seq
                return try visitor(record)
            }
            return completed ? max(lastSeq, hints.afterSeq) : lastVisited
        }
        for view in views where view.count > 0 && view.lastSeq > hints.afterSeq {
            if let from = hints.fromMs, view.maxTs < from { continue }
            if let to = hints.toMs, view.minTs >= to { continue }
            // The byte ranges of the index runs worth reading (with the seq each starts at), adjacent runs merged.
            var ranges: [(bytes: Range<Int>, firstSeq: UInt64)] = []
            let firstRun = view.sparseIndex(forSeq: hints.afterSeq + 1) ?? 0
            for i in firstRun..<view.sparse.count {
                let entry = view.sparse[i]
                if let from = hints.fromMs, entry.maxTs < from { continue }
                if let to = hints.toMs, entry.minTs >= to { continue }
                let range = Int(entry.offset)..<view.runEnd(i)
                if let last = ranges.last, last.bytes.upperBound == range.lowerBound {
                    ranges[ranges.count - 1].bytes = last.bytes.lowerBound..<range.upperBound
                } else {
                    ranges.append((range, entry.firstSeq))
                }
            }
            for range in ranges {
                let stopped = try scanRange(view, range.bytes, firstSeq: range.firstSeq, hints: hints, visitor)
                if let stopped { return stopped }
            }
        }
        return max(lastSeq, hints.afterSeq)
    }

    /// Visits the records in one byte range of a segment; returns the seq where the visitor stopped, if it did.
    func scanRange(
        _ view: SegmentView, _ range: Range<Int>, firstSeq: UInt64, hints: ScanHints, _ visitor: (RecordView) throws -> Bool
    ) throws -> UInt64? {
        // Seqs are consecutive inside a segment: a record whose seq is not the expected one is not served.
        var expected = firstSeq
        let data = view.data
        var cursor = RecordCursor(from: range.lowerBound, to: range.upperBound) { (count, offset) throws(StoreError) in
            try data.read(count: count, at: offset)
        }
        while true {
            let step = try cursor.next()
            guard case .record(let header, let total) = step else {
                if case .end = step { return nil }
                // The length cannot be trusted after damage: go on at the next known record.
                noteReadDamage(view, offset: cursor.offset)
                guard let next = view.nextRecordOffset(after: cursor.offset) else { return nil }
                cursor.seek(to: next)
                expected += 1
                continue
            }
            defer { expected += 1 }
            if header.seq != expected {
                noteReadDamage(view, offset: cursor.recordOffset, reason: "record has seq \(header.seq) where \(expected) belongs; not served")
                continue
            }
            if header.kind != SegmentFormat.kindEvent || header.seq <= hints.afterSeq { continue }
            if let from = hints.fromMs, header.timestampMs < from { continue }
            if let to = hints.toMs, header.timestampMs >= to { continue }
            let keepGoing = try cursor.withRecordBytes { record in
                let body = UnsafeRawBufferPointer(rebasing: record[SegmentFormat.recordHeaderSize..<total]).assumingMemoryBound(to: UInt8.self)
                return try visitor(RecordView(seq: header.seq, timestampMs: header.timestampMs, leadHash: header.leadHash, fields: header.fields, body: body))
            }
            if !keepGoing { return header.seq }
        }
        return nil
    }
}
