import Foundation
import LeadTrailEvents
import Testing
@testable import LeadTrailStorage
import LeadTrailTestSupport

/// Scans with a predicate check the CRC only of the records the predicate accepts. These tests
/// damage records in every way a bit flip or a bad length can, and check that a filtered scan
/// still returns exactly the servable records that match: never a damaged one, never one too few.
@Suite struct FilteredScanTests {
    /// A predicate that keeps the records of one lead (compared through the header's field reference).
    static func lead(_ name: String) -> (RecordView) -> Bool {
        let bytes = Array(name.utf8)
        return { $0.fields[.leadID].equals(bytes, in: $0.body) }
    }

    /// How a scan splits its work: one thread, or two sharing pieces of a few records each (from the start,
    /// or after a first stretch read alone, when that stretch served little of what it read).
    enum Split: CaseIterable {
        case oneThread, twoThreads, probedFirst
    }

    static func scan(
        _ store: EventStore, _ hints: ScanHints, _ split: Split, matching predicate: @escaping (RecordView) -> Bool,
        _ visitor: (RecordView) throws -> Bool
    ) throws -> UInt64 {
        switch split {
        case .oneThread: try store.scan(hints, matching: predicate, pieceBytes: .max, parallelFrom: .max, visitor)
        case .twoThreads: try store.scan(hints, matching: predicate, pieceBytes: 300, parallelFrom: 0, visitor)
        case .probedFirst: try store.scan(hints, matching: predicate, pieceBytes: 300, parallelFrom: 0, probeBytes: 1500, visitor)
        }
    }

    /// For every lead (and for no lead at all, and after a seq): the filtered scan holds exactly `servable`'s matches.
    static func expectExactScans(_ store: EventStore, servable: [ExpectedEvent], leads: Set<String>, what: String) throws {
        for split in Split.allCases {
            try expectExactScans(store, servable: servable, leads: leads, split: split, what: "\(what) (\(split))")
        }
    }

    static func expectExactScans(_ store: EventStore, servable: [ExpectedEvent], leads: Set<String>, split: Split, what: String) throws {
        let last = servable.map(\.seq).max() ?? 0
        for afterSeq in [UInt64(0), last / 3, last / 2] {
            for name in leads.sorted() {
                var got: [UInt64] = []
                var bodiesMatch = true
                let bySeq = Dictionary(uniqueKeysWithValues: servable.map { ($0.seq, $0) })
                _ = try scan(store, ScanHints(afterSeq: afterSeq), split, matching: Self.lead(name)) { record in
                    got.append(record.seq)
                    if bySeq[record.seq]?.body != Array(record.body) { bodiesMatch = false }
                    return true
                }
                let want = servable.filter { $0.lead == name && $0.seq > afterSeq }.map(\.seq)
                #expect(got == want, "\(what): lead \(name) after \(afterSeq)")
                #expect(bodiesMatch, "\(what): lead \(name) after \(afterSeq): wrong bytes served")
            }
            var everything: [UInt64] = []
            _ = try scan(store, ScanHints(afterSeq: afterSeq), split, matching: { _ in true }) { everything.append($0.seq); return true }
            #expect(everything == servable.map(\.seq).filter { $0 > afterSeq }, "\(what): accept-all predicate after \(afterSeq)")
        }
    }

    @Test func undamagedStoreFiltersExactly() throws {
        let dir = TemporaryDirectory(inMemory: true)
        let fixture = try BitFlipTests.fixture(in: dir.path)
        let work = dir.path + "/work"
        try fixture.image.write(to: work)
        let store = try EventStore.openForTest(work, segmentMaxBytes: 4096, fileOperations: FaultyFileOperations.withoutSyncs)
        defer { store.close() }
        let events = fixture.written.events
        try Self.expectExactScans(store, servable: events, leads: Set(events.map(\.lead)), what: "undamaged")
        #expect(store.stats().corruptSegments.isEmpty)
        // Stopping early still answers the last seq visited, on one thread or two.
        for split in Split.allCases {
            for stopAfter in [1, 2, 5, 9] {
                var visited = 0
                let stoppedAt = try Self.scan(store, ScanHints(), split, matching: Self.lead("lead1")) { _ in visited += 1; return visited < stopAfter }
                #expect(visited == stopAfter)
                #expect(stoppedAt == events.filter { $0.lead == "lead1" }.dropFirst(stopAfter - 1).first?.seq, "\(split) \(stopAfter)")
            }
        }
    }

    /// Random bit flips anywhere in the records of sealed segments and of the active one.
    @Test func flippedBitsInRecords() throws {
        let dir = TemporaryDirectory(inMemory: true)
        let fixture = try BitFlipTests.fixture(in: dir.path)
        var rng = SplitMix64(seed: 77)
        let trials = Environment.longTests ? 150 : 30
        let names = fixture.sealedNames + ["open"]
        for trial in 0..<trials {
            let work = dir.path + "/flip\(trial)"
            try fixture.image.write(to: work)
            let name = names[trial % names.count]
            let path = name == "open" ? try #require(Files.openSegment(work)) : work + "/hot/" + name
            let original = try Files.read(path)
            let records = RecordLayout.parse(original)
            let target = records[Int.random(in: 0..<records.count, using: &rng)]
            let byte = Int.random(in: target.offset..<target.end, using: &rng)
            let bit = Int.random(in: 0..<8, using: &rng)
            try Files.flipBit(path, byte: byte, bit: bit)
            let what = "\(name) byte \(byte) bit \(bit) (seq \(target.seq))"
            let store = try EventStore.openForTest(work, segmentMaxBytes: 4096, fileOperations: FaultyFileOperations.withoutSyncs)
            let servable = fixture.written.events.filter { $0.seq != target.seq }
            try Self.expectExactScans(store, servable: servable, leads: Set(fixture.written.events.map(\.lead)), what: what)
            store.close()
        }
    }

    /// A record's length field made wrong in ways that land on another record's start, inside one,
    /// exactly on the end of the segment's records, or beyond: the scan that passed over it unchecked
    /// goes back, finds it, and serves everything else.
    @Test func wrongLengthsAreFoundAfterTheFact() throws {
        let dir = TemporaryDirectory(inMemory: true)
        let fixture = try BitFlipTests.fixture(in: dir.path)
        let name = fixture.sealedNames[fixture.sealedNames.count / 2]
        let original = try #require(fixture.image.files.first { $0.path == "hot/" + name }).bytes
        let records = RecordLayout.parse(original)
        #expect(records.count >= 3)
        let dataEnd = try #require(RecordLayout.dataEnd(ofSealed: original))
        var trial = 0
        for (k, target) in records.enumerated() {
            let payload = target.size - SegmentFormat.recordHeaderSize
            var lengths = [payload + 1, payload - 1, 0, payload + 4096, Int(UInt32.max), dataEnd - target.offset - SegmentFormat.recordHeaderSize]
            if k + 2 < records.count { lengths.append(records[k + 2].offset - target.offset - SegmentFormat.recordHeaderSize) }
            for length in lengths where length >= 0 && length != payload && length <= Int(UInt32.max) {
                trial += 1
                let work = dir.path + "/len\(trial)"
                try fixture.image.write(to: work)
                var bytes = original
                withUnsafeBytes(of: UInt32(length).littleEndian) { for i in 0..<4 { bytes[target.offset + 4 + i] = $0[i] } }
                try Files.write(bytes, to: work + "/hot/" + name)
                let what = "\(name) seq \(target.seq) length \(payload) -> \(length)"
                let store = try EventStore.openForTest(work, segmentMaxBytes: 4096, fileOperations: FaultyFileOperations.withoutSyncs)
                let servable = fixture.written.events.filter { $0.seq != target.seq }
                // Only the other leads: the damaged record is passed over without its CRC.
                let target = try #require(fixture.written.events.first { $0.seq == target.seq })
                let others = Set(fixture.written.events.map(\.lead)).subtracting([target.lead])
                try Self.expectExactScans(store, servable: servable, leads: others.union([target.lead]), what: what)
                store.close()
            }
        }
        #expect(trial > 10)
    }
}
