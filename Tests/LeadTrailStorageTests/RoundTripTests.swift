import Foundation
import LeadTrailEvents
import Testing
@testable import LeadTrailStorage
import LeadTrailTestSupport

@Suite struct RecordFormatTests {
    @Test func recordEncodesAndDecodes() throws {
        let event = try Events.prepare(Events.json(lead: "L\\u00e9", id: "e1", extra: "\"outcome\":\"ok\",\"x\":[1,2]"))
        var buffer: [UInt8] = [9, 9, 9]  // records are appended after whatever is there
        RecordHeader.append(seq: 42, timestampMs: event.timestampMs, leadHash: 0xDEAD_BEEF, flags: SegmentFormat.flagBatchEnd, fields: event.fields, payload: event.json, to: &buffer)
        #expect(buffer.count == 3 + SegmentFormat.recordHeaderSize + event.json.count)
        buffer.withUnsafeBytes { all in
            let b = UnsafeRawBufferPointer(rebasing: all[3...])
            guard case .success(let pair?) = RecordReader.decode(b, at: 3) else { Issue.record("not decoded"); return }
            let (header, total) = pair
            #expect(total == b.count)
            #expect(header.seq == 42)
            #expect(header.timestampMs == event.timestampMs)
            #expect(header.leadHash == 0xDEAD_BEEF)
            #expect(header.flags == SegmentFormat.flagBatchEnd)
            #expect(header.kind == SegmentFormat.kindEvent)
            #expect(header.fields == event.fields)
            #expect(Array(b[SegmentFormat.recordHeaderSize...]) == event.json)
            #expect(RecordHeader.checksumMatches(b, totalSize: total))
            // Any shorter prefix asks for more bytes, never decodes as something else.
            for cut in [0, 1, 75, 76, total - 1] {
                guard case .success(nil) = RecordReader.decode(UnsafeRawBufferPointer(rebasing: b[0..<cut]), at: 3) else {
                    Issue.record("prefix of \(cut) bytes decoded")
                    return
                }
            }
        }
    }

    @Test func everyBitOfARecordIsCovered() throws {
        let event = try Events.prepare(Events.json(lead: "L", id: "e1"))
        var buffer: [UInt8] = []
        RecordHeader.append(seq: 1, timestampMs: 0, leadHash: 1, flags: 1, fields: event.fields, payload: event.json, to: &buffer)
        for byte in 0..<buffer.count {
            for bit in 0..<8 {
                var damaged = buffer
                damaged[byte] ^= 1 << UInt8(bit)
                let decoded = damaged.withUnsafeBytes { RecordReader.decode($0, at: 0) }
                switch decoded {
                case .success(let pair?): Issue.record("flip at byte \(byte) bit \(bit) decoded as seq \(pair.0.seq)")
                case .success(nil), .failure: break  // a longer length asks for more bytes; anything else fails
                }
            }
        }
    }

    @Test func oversizedLengthIsCorruptionNotAnAllocation() {
        var header = [UInt8](repeating: 0, count: SegmentFormat.recordHeaderSize)
        header[4] = 0xFF; header[5] = 0xFF; header[6] = 0xFF; header[7] = 0x7F
        let decoded = header.withUnsafeBytes { RecordReader.decode($0, at: 64) }
        guard case .failure(.corrupt(let offset, _)) = decoded else { Issue.record("accepted a 2 GiB length"); return }
        #expect(offset == 64)
    }

    @Test func validChecksumButUnknownKindOrBadReferencesIsRefused() throws {
        let event = try Events.prepare(Events.json(lead: "L", id: "e1"))
        func encoded(_ edit: (inout [UInt8]) -> Void) -> [UInt8] {
            var buffer: [UInt8] = []
            RecordHeader.append(seq: 1, timestampMs: 0, leadHash: 1, flags: 1, fields: event.fields, payload: event.json, to: &buffer)
            edit(&buffer)
            // Fix the checksum after the edit (valid CRC, bad content).
            let crc = buffer.withUnsafeBytes { CRC32C.mask(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[4...]))) }
            withUnsafeBytes(of: crc.littleEndian) { for k in 0..<4 { buffer[k] = $0[k] } }
            return buffer
        }
        let unknownKind = encoded { $0[8] = 7 }
        let skippableKind = encoded { $0[8] = 0x80 }
        let referenceOutside = encoded { $0[32] = 0xF0; $0[33] = 0xFF }  // type offset far past the payload
        let noEventID = encoded { b in for k in 0..<4 { b[32 + 4 * IndexedField.eventID.rawValue + k] = 0xFF } }
        func isCorrupt(_ b: [UInt8]) -> Bool {
            if case .failure = b.withUnsafeBytes({ RecordReader.decode($0, at: 0) }) { return true }
            return false
        }
        #expect(isCorrupt(unknownKind))
        #expect(!isCorrupt(skippableKind))
        #expect(isCorrupt(referenceOutside))
        #expect(isCorrupt(noEventID))
    }

    @Test func headerAndTrailerRoundTrip() throws {
        let header = SegmentHeader(tier: 0, segmentID: 7, baseSeq: 100, createdMs: 1_705_329_045_234, previousLastSeq: 99, previousChainCRC: 0xABCD)
        let bytes = header.encode()
        #expect(bytes.count == SegmentFormat.headerSize)
        #expect(try bytes.withUnsafeBytes { SegmentHeader.decode($0) }.get() == header)
        for byte in 0..<bytes.count {
            var damaged = bytes
            damaged[byte] ^= 0x10
            if case .success = damaged.withUnsafeBytes({ SegmentHeader.decode($0) }) { Issue.record("header flip at \(byte) accepted") }
        }
        let trailer = SegmentTrailer(recordCount: 3, firstSeq: 100, lastSeq: 102, minTs: -5, maxTs: 9, dataEnd: 500, sparseCount: 1, indexCRC: 1, dataCRC: 2)
        let t = trailer.encode()
        #expect(t.count == SegmentFormat.trailerSize)
        #expect(t.withUnsafeBytes { SegmentTrailer.decode($0) } == trailer)
        for byte in 0..<t.count {
            var damaged = t
            damaged[byte] ^= 0x01
            #expect(damaged.withUnsafeBytes { SegmentTrailer.decode($0) } == nil)
        }
        #expect(trailer.indexSize == 32 + 3 * 24)
    }
}

@Suite struct RoundTripTests {
    static let bodies: [String] = [
        Events.json(lead: "L1", id: "a"),
        Events.json(lead: "L\\u00e9\\n\\\"", id: "e\\u0031", extra: "\"outcome\":\"o\\/k\",\"metadata\":{\"a\":[1,2,{\"b\":null}]}"),
        "{ \"type\" : \"custom.x\" ,\n\"lead_id\":\"L2\",\t\"event_id\":\"c\",\"timestamp\":\"2024-01-15T14:30:45.234Z\", \"n\":-0.0e+0 }",
        Events.json(lead: "L3", id: "big", extra: "\"pad\":\"" + String(repeating: "x", count: 200_000) + "\""),
        Events.json(lead: "L4", id: "utf", extra: "\"t\":\"é€😀\""),
        Events.json(lead: "L5", id: nil, timestamp: nil),
    ]

    @Test func bodiesAreByteIdenticalBeforeAndAfterRestartAndSealing() throws {
        let dir = TemporaryDirectory()
        let events = try Self.bodies.map { try Events.prepare($0) }
        var results: [AppendResult] = []
        do {
            let store = try EventStore.openForTest(dir.path)
            results = try store.appendAndWait(events)
            try check(store, events, results)
            store.close()
        }
        do {
            let store = try EventStore.openForTest(dir.path)
            try check(store, events, results)  // the active segment, rebuilt by a scan
            _ = try store.rotate()
            try check(store, events, results)  // sealed
            store.close()
        }
        let store = try EventStore.openForTest(dir.path)
        defer { store.close() }
        try check(store, events, results)  // sealed, indexes from the footer
        #expect(store.verify().isClean)
    }

    private func check(_ store: EventStore, _ events: [PreparedEvent], _ results: [AppendResult]) throws {
        #expect(results.map(\.seq) == Array(1...UInt64(events.count)))
        for (event, result) in zip(events, results) {
            let byID = try #require(try store.event(withID: event.eventID))
            #expect(byID.body == event.json)
            #expect(byID.seq == result.seq)
            #expect(byID.timestampMs == event.timestampMs)
            #expect(byID.fields == event.fields)
            let bySeq = try #require(try store.event(seq: result.seq))
            #expect(bySeq == byID)
            // Returned with seq first and the body's bytes after it.
            let rendered = String(decoding: byID.jsonWithSeq, as: UTF8.self)
            #expect(rendered == "{\"seq\":\(result.seq)," + String(decoding: event.json.dropFirst(), as: UTF8.self))
            #expect(rendered.utf8.withContiguousStorageIfAvailable { b in (try? JSONScanner.validate(b)) != nil } ?? true)
        }
        var scanned: [[UInt8]] = []
        try store.scan(ScanHints()) { scanned.append(Array($0.body)); return true }
        #expect(scanned == events.map(\.json))
    }

    @Test func emptyStore() throws {
        let dir = TemporaryDirectory()
        let store = try EventStore.openForTest(dir.path)
        defer { store.close() }
        #expect(store.lastSeq == 0)
        #expect(try store.event(withID: "x") == nil)
        #expect(try store.event(seq: 1) == nil)
        #expect(try store.event(seq: 0) == nil)
        #expect(try store.events(forLead: "x").isEmpty)
        #expect(try store.rotate() == nil)
        #expect(try store.appendAndWait([]).isEmpty)
        var count = 0
        #expect(try store.scan(ScanHints()) { _ in count += 1; return true } == 0)
        #expect(count == 0)
        #expect(store.verify().isClean)
    }

    @Test func closedStoreRefusesAppends() throws {
        let dir = TemporaryDirectory()
        let store = try EventStore.openForTest(dir.path)
        store.close()
        store.close()  // twice is fine
        #expect(throws: StoreError.self) { try store.appendAndWait([try Events.make(lead: "l", id: "a")]) }
        // And the directory can be opened again.
        let again = try EventStore.openForTest(dir.path)
        again.close()
    }
}
