import Foundation
import LeadTrailEvents
import Testing
@testable import LeadTrailStorage
import LeadTrailTestSupport

/// Records and headers with a valid checksum but content that breaks a rule (LevelDB's "IncrementByte + FixChecksum").
@Suite struct CraftedRecordTests {
    /// Rewrites bytes of the record at `offset` in `bytes` and fixes its checksum.
    static func edit(_ bytes: inout [UInt8], recordAt offset: Int, size: Int, _ change: (inout [UInt8]) -> Void) {
        var record = Array(bytes[offset..<(offset + size)])
        change(&record)
        let crc = record.withUnsafeBytes { CRC32C.mask(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[4...]))) }
        withUnsafeBytes(of: crc.littleEndian) { for k in 0..<4 { record[k] = $0[k] } }
        bytes.replaceSubrange(offset..<(offset + size), with: record)
    }

    enum Crafted: String, CaseIterable, Sendable {
        case seqBackwards, seqGap, unknownKind, referenceOutsidePayload
    }

    /// A crafted record in the middle of the acknowledged part of the active segment: reported, never served,
    /// the records before it kept, the store opens and does not reuse acknowledged seqs.
    @Test(arguments: Crafted.allCases)
    func craftedRecordInTheActiveSegment(_ crafted: Crafted) throws {
        let dir = TemporaryDirectory(inMemory: true)
        let written = try WrittenStore.make(in: dir.path, batchSizes: [2, 2, 2, 2], seed: 81)
        let open = try #require(Files.openSegment(dir.path))
        var bytes = try Files.read(open)
        let layout = RecordLayout.parse(bytes)
        let target = layout[4]  // first record of the third batch
        Self.edit(&bytes, recordAt: target.offset, size: target.size) { r in
            switch crafted {
            case .seqBackwards: r[16] = 2; for k in 17..<24 { r[k] = 0 }
            case .seqGap: r[16] = 9; for k in 17..<24 { r[k] = 0 }
            case .unknownKind: r[8] = 5
            case .referenceOutsidePayload: r[32] = 0xF0; r[33] = 0xFF; r[34] = 0; r[35] = 0
            }
        }
        try Files.write(bytes, to: open)
        let store = try EventStore.openForTest(dir.path, fileOperations: FaultyFileOperations.withoutSyncs)
        defer { store.close() }
        #expect(!store.stats().corruptSegments.isEmpty)
        let kept = written.events.filter { $0.seq <= 4 }
        try expectServes(store, kept)
        var scanned: [UInt64] = []
        try store.scan(ScanHints()) { scanned.append($0.seq); return true }
        #expect(scanned == [1, 2, 3, 4])
        #expect(store.lastSeq == 8)
        #expect(try store.appendAndWait([try Events.make(lead: "x", id: "n")]).first?.seq == 9)
    }

    /// The same in a sealed segment: verify finds it, reads skip exactly that record.
    @Test(arguments: Crafted.allCases)
    func craftedRecordInASealedSegment(_ crafted: Crafted) throws {
        let dir = TemporaryDirectory(inMemory: true)
        let written = try WrittenStore.make(in: dir.path, sealedBatches: 4, batchSizes: [1], seed: 82)
        let sealed = try #require(Files.sealedSegments(dir.path).first)
        var bytes = try Files.read(sealed)
        let layout = RecordLayout.parse(bytes)
        let target = layout[3]
        Self.edit(&bytes, recordAt: target.offset, size: target.size) { r in
            switch crafted {
            case .seqBackwards: r[16] = 1; for k in 17..<24 { r[k] = 0 }
            case .seqGap: r[16] = 7; for k in 17..<24 { r[k] = 0 }
            case .unknownKind: r[8] = 5
            case .referenceOutsidePayload: r[32] = 0xF0; r[33] = 0xFF; r[34] = 0; r[35] = 0
            }
        }
        try Files.write(bytes, to: sealed)
        let name = String(sealed.split(separator: "/").last!)
        let offline = try EventStore.verify(directory: dir.path)
        #expect(Set(offline.corrupt.map(\.file)) == [name], "\(offline.corrupt)")
        let store = try EventStore.openForTest(dir.path, fileOperations: FaultyFileOperations.withoutSyncs)
        defer { store.close() }
        #expect(Set(store.verify().corrupt.map(\.file)) == [name])
        // The crafted record is never served, by get or by scan; every other event is.
        let damaged = written.events[3]
        #expect(try store.event(withID: damaged.id) == nil)
        #expect(try store.event(seq: damaged.seq) == nil)
        for event in written.events where event.seq != damaged.seq {
            let other = try store.event(withID: event.id)
            let same = other?.body == event.body && other?.seq == event.seq
            #expect(same, "\(event.id)")
            let bySeq = try store.event(seq: event.seq)?.body == event.body
            #expect(bySeq, "seq \(event.seq)")
        }
        var scanned: [(UInt64, [UInt8])] = []
        try store.scan(ScanHints()) { scanned.append(($0.seq, Array($0.body))); return true }
        #expect(scanned.map(\.0) == written.events.map(\.seq).filter { $0 != damaged.seq })
        let bodies = scanned.map(\.1) == written.events.filter { $0.seq != damaged.seq }.map(\.body)
        #expect(bodies)
        for after in [UInt64(2), 3, 4] {
            var seqs: [UInt64] = []
            try store.scan(ScanHints(afterSeq: after)) { seqs.append($0.seq); return true }
            #expect(seqs == written.events.map(\.seq).filter { $0 != damaged.seq && $0 > after })
        }
    }

    /// A segment header with an unknown incompatible flag (valid checksum) is refused, not guessed at.
    @Test func unknownIncompatibleFlagInASealedHeader() throws {
        let dir = TemporaryDirectory(inMemory: true)
        let written = try WrittenStore.make(in: dir.path, sealedBatches: 2, batchSizes: [2], seed: 83)
        let sealed = try #require(Files.sealedSegments(dir.path).first)
        var bytes = try Files.read(sealed)
        bytes[12] = 0x01
        let crc = bytes.withUnsafeBytes { CRC32C.mask(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<60]))) }
        withUnsafeBytes(of: crc.littleEndian) { for k in 0..<4 { bytes[60 + k] = $0[k] } }
        try Files.write(bytes, to: sealed)
        let name = String(sealed.split(separator: "/").last!)
        #expect(Set(try EventStore.verify(directory: dir.path).corrupt.map(\.file)) == [name])
        let store = try EventStore.openForTest(dir.path, fileOperations: FaultyFileOperations.withoutSyncs)
        defer { store.close() }
        #expect(store.stats().corruptSegments.contains { $0.contains(name) })
        // The other segment's events are served; the seq goes on.
        try expectServes(store, Array(written.events.suffix(2)))
        #expect(try store.appendAndWait([try Events.make(lead: "x", id: "n")]).first?.seq == 7)
    }
}
