import LeadTrailEvents
import LeadTrailStorage
import LeadTrailWire

/// Builds the bodies of successful responses (no I/O; every method is pure).
enum Responses {
    /// `{"id":..,"ok":true,"results":[{"seq":S,"event_id":ID,"duplicate":false},...]}`. The results are
    /// measured first and then written with plain stores into one buffer of exactly their size (appending
    /// them piece by piece cost as much as validating a tenth of the batch).
    static func append(id: [UInt8]?, _ batch: PreparedBatch, _ outcomes: [AppendOutcome]) -> [UInt8] {
        let seqKey: StaticString = #"{"seq":"#
        let idKey: StaticString = #","event_id":""#
        let fresh: StaticString = #"","duplicate":false}"#
        let duplicate: StaticString = #"","duplicate":true}"#
        var size = 2 + max(outcomes.count - 1, 0)  // the brackets and the commas
        for (index, outcome) in outcomes.enumerated() {
            size += seqKey.utf8CodeUnitCount + Self.digitCount(outcome.seq) + idKey.utf8CodeUnitCount
                + batch.entries[index].eventIDRange.count + (outcome.duplicate ? duplicate : fresh).utf8CodeUnitCount
        }
        // A stored id is 1-64 characters of [A-Za-z0-9_-]: nothing to escape.
        let results = batch.bytes.withUnsafeBufferPointer { source in
            [UInt8](unsafeUninitializedCapacity: size) { out, initialized in
                guard let base = out.baseAddress else { return }
                var p = 0
                func put(_ text: StaticString) {
                    (base + p).initialize(from: text.utf8Start, count: text.utf8CodeUnitCount)
                    p += text.utf8CodeUnitCount
                }
                base[p] = UInt8(ascii: "[")
                p += 1
                for (index, outcome) in outcomes.enumerated() {
                    batch.prefetchEventID(at: index + 8)
                    if index > 0 {
                        base[p] = UInt8(ascii: ",")
                        p += 1
                    }
                    put(seqKey)
                    p += JSONNumber.withDigits(outcome.seq) { digits in
                        UnsafeMutableRawBufferPointer(start: base + p, count: digits.count).copyMemory(from: digits)
                        return digits.count
                    }
                    put(idKey)
                    let range = batch.entries[index].eventIDRange
                    if let from = source.baseAddress, !range.isEmpty {
                        (base + p).initialize(from: from + range.lowerBound, count: range.count)
                    }
                    p += range.count
                    put(outcome.duplicate ? duplicate : fresh)
                }
                base[p] = UInt8(ascii: "]")
                initialized = p + 1
            }
        }
        var writer = ResponseEncoder.success(id: id, reservingCapacity: results.count + 40 + (id?.count ?? 0))
        writer.raw("results", results)
        return writer.finished()
    }

    /// How many decimal digits `value` takes.
    static func digitCount(_ value: UInt64) -> Int {
        var count = 1
        var rest = value
        while rest >= 10 {
            rest /= 10
            count += 1
        }
        return count
    }

    static func event(id: [UInt8]?, _ event: [UInt8]) -> [UInt8] {
        var writer = ResponseEncoder.success(id: id, reservingCapacity: event.count + 32)
        writer.raw("event", event)
        return writer.finished()
    }

    static func events(
        id: [UInt8]?, _ events: [[UInt8]], truncated: Bool? = nil, coldOnlyBefore: Int64? = nil, done: Bool = false, lastSeq: UInt64? = nil
    ) -> [UInt8] {
        let size = events.reduce(64) { $0 + $1.count + 1 }
        var writer = ResponseEncoder.success(id: id, reservingCapacity: size)
        writer.rawArray("events", events)
        if let truncated { writer.bool("truncated", truncated) }
        if let coldOnlyBefore { writer.string("cold_only_before", Timestamp.format(coldOnlyBefore)) }
        if done { writer.bool("done", true) }
        if let lastSeq { writer.int("last_seq", lastSeq) }
        return writer.finished()
    }

    /// `events` for stored events shown as they are: each is copied once, straight into the body.
    static func events(id: [UInt8]?, stored events: [StoredEvent], truncated: Bool? = nil, coldOnlyBefore: Int64? = nil) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(events.reduce(96 + (id?.count ?? 0)) { $0 + $1.body.count + 28 })
        out.append(UInt8(ascii: "{"))
        if let id {
            out.append(contentsOf: "\"id\":".utf8)
            out.append(contentsOf: id)
            out.append(UInt8(ascii: ","))
        }
        out.append(contentsOf: "\"ok\":true,\"events\":[".utf8)
        for (k, event) in events.enumerated() {
            if k > 0 { out.append(UInt8(ascii: ",")) }
            event.appendJSON(to: &out)
        }
        out.append(UInt8(ascii: "]"))
        if let truncated { out.append(contentsOf: (truncated ? ",\"truncated\":true" : ",\"truncated\":false").utf8) }
        if let coldOnlyBefore {
            out.append(contentsOf: ",\"cold_only_before\":".utf8)
            JSONString.append(Timestamp.format(coldOnlyBefore), to: &out)
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    static func stats(id: [UInt8]?, _ stats: StoreStats, extras: (inout JSONObjectWriter) -> Void) -> [UInt8] {
        var writer = ResponseEncoder.success(id: id, reservingCapacity: 512)
        writer.int("events", stats.events)
        writer.int("last_seq", stats.lastSeq)
        writer.string("durability", stats.durability.rawValue)
        var tiers = JSONObjectWriter()
        for (name, tier) in [("hot", stats.hot), ("warm", stats.warm), ("cold", stats.cold), ("restored", stats.restored)] {
            var t = JSONObjectWriter()
            t.int("segments", tier.segments)
            t.int("events", tier.events)
            t.int("bytes", tier.bytes)
            t.int("raw_bytes", tier.rawBytes)
            if let oldest = tier.oldestMs { t.string("oldest", Timestamp.format(oldest)) }
            if let newest = tier.newestMs { t.string("newest", Timestamp.format(newest)) }
            tiers.object(name, t)
        }
        writer.object("tiers", tiers)
        writer.int("active_segment", stats.activeSegmentID)
        writer.stringArray("corrupt_segments", stats.corruptSegments)
        writer.stringArray("quarantined_files", stats.quarantinedFiles)
        writer.int("startup_ms", stats.startupMilliseconds)
        writer.int("append_batches", stats.appendBatches)
        writer.int("syncs", stats.syncs)
        for (name, recent) in [("sync_ms", stats.recentSyncs), ("write_ms", stats.recentWrites)] {
            guard let recent else { continue }
            var times = JSONObjectWriter()
            times.int("recent", recent.count)
            times.double("p50", recent.p50Milliseconds)
            times.double("p99", recent.p99Milliseconds)
            times.double("max", recent.maxMilliseconds)
            if let rate = recent.megabytesPerSecond { times.double("mb_per_s", rate) }
            writer.object(name, times)
        }
        var sealer = JSONObjectWriter()
        sealer.int("pending", stats.sealsPending)
        sealer.int("rotations_waited", stats.rotationsWaitedForSealer)
        writer.object("sealer", sealer)
        var trash = JSONObjectWriter()
        trash.int("files", stats.trashFiles)
        trash.int("bytes", stats.trashBytes)
        writer.object("trash", trash)
        extras(&writer)
        return writer.finished()
    }

    static func rotate(id: [UInt8]?, _ sealed: SealedSegment?) -> [UInt8] {
        var writer = ResponseEncoder.success(id: id)
        writer.bool("rotated", sealed != nil)
        if let sealed {
            writer.int("segment", sealed.segmentID)
            writer.int("first_seq", sealed.firstSeq)
            writer.int("last_seq", sealed.lastSeq)
            writer.int("events", sealed.events)
        }
        return writer.finished()
    }

    static func tier(id: [UInt8]?, _ report: TierReport) -> [UInt8] {
        func moves(_ list: [SegmentMove]) -> [[UInt8]] {
            list.map { move in
                var item = JSONObjectWriter()
                item.int("segment", move.segmentID)
                item.string("from", move.from)
                item.string("to", move.to)
                item.int("first_seq", move.firstSeq)
                item.int("last_seq", move.lastSeq)
                item.int("events", move.events)
                item.int("bytes_before", move.bytesBefore)
                item.int("bytes_after", move.bytesAfter)
                return item.finished()
            }
        }
        var writer = ResponseEncoder.success(id: id)
        writer.rawArray("moved", moves(report.moved))
        writer.rawArray("rewritten", moves(report.rewritten))
        writer.stringArray("deleted", report.deleted)
        writer.rawArray("expired", report.expired.map { Array(String($0).utf8) })
        writer.stringArray("skipped", report.skipped)
        return writer.finished()
    }

    static func restore(id: [UInt8]?, _ report: RestoreReport, released: Bool) -> [UInt8] {
        var writer = ResponseEncoder.success(id: id)
        if released {
            writer.int("released_segments", report.segments.count)
        } else {
            writer.int("restored", report.restored)
            writer.int("already_restored", report.alreadyRestored)
            writer.int("bytes", report.bytes)
        }
        writer.rawArray("segments", report.segments.map { Array(String($0).utf8) })
        return writer.finished()
    }

    static func verify(id: [UInt8]?, _ report: VerifyReport) -> [UInt8] {
        var writer = ResponseEncoder.success(id: id, reservingCapacity: 128 + report.corrupt.count * 128)
        writer.int("segments", report.segments)
        writer.int("records", report.records)
        writer.rawArray("corrupt", report.corrupt.map { corruption in
            var item = JSONObjectWriter()
            item.string("file", corruption.file)
            if let offset = corruption.offset { item.int("offset", offset) } else { item.null("offset") }
            item.string("reason", corruption.reason)
            return item.finished()
        })
        writer.stringArray("warnings", report.warnings)
        return writer.finished()
    }

    /// The protocol error for a storage failure.
    static func wireError(_ error: StoreError) -> WireError {
        switch error.code {
        case .unavailable, .locked: WireError(.unavailable, error.message)
        case .io: WireError(.unavailable, "storage failure: \(error.message)")
        case .invalidArgument: WireError(.badRequest, error.message)
        case .corrupt: WireError(.internal, "stored data failed a check: \(error.message)")
        case .wouldBlock: WireError(.internal, "a read that may not wait was not retried: \(error.message)")
        }
    }
}
