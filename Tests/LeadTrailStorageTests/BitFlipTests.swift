import Foundation
import LeadTrailEvents
import Testing
@testable import LeadTrailStorage
import LeadTrailTestSupport

/// Where in a sealed segment a bit is flipped.
enum SegmentRegion: String, CaseIterable, Sendable {
    case header, records, index, trailer
}

@Suite struct BitFlipTests {
    /// A closed store with several sealed segments and a non-empty active one.
    struct Fixture {
        var written: WrittenStore
        var image: Files.Image
        var sealedNames: [String]
    }

    static func fixture(in directory: String) throws -> Fixture {
        let source = directory + "/source"
        var rng = SplitMix64(seed: 51)
        let store = try EventStore.open({
            var c = StoreConfiguration(directory: source)
            c.segmentMaxBytes = 4096
            c.sparseIndexInterval = 512
            return c
        }(), fileOperations: FaultyFileOperations.withoutSyncs)
        var events: [ExpectedEvent] = []
        for b in 0..<40 {
            let prepared = try (0..<Int.random(in: 1...4, using: &rng)).map { i in
                try Events.make(
                    lead: "lead\(Int.random(in: 0..<5, using: &rng))", id: "f\(b)_\(i)",
                    timestampMs: 1_705_329_045_000 + Int64.random(in: -100_000...100_000, using: &rng),
                    extra: "\"pad\":\"\(String(repeating: "q", count: Int.random(in: 0..<200, using: &rng)))\"")
            }
            let results = try store.appendAndWait(prepared)
            for (event, result) in zip(prepared, results) {
                let lead = event.json.withUnsafeBufferPointer { event.fields[.leadID].value(in: $0)! }
                events.append(ExpectedEvent(seq: result.seq, id: event.eventID, lead: lead, body: event.json))
            }
        }
        store.close()
        let sealed = Files.sealedSegments(source).map { String($0.split(separator: "/").last!) }
        return Fixture(written: WrittenStore(directory: source, events: events, batches: []), image: try Files.Image(of: source), sealedNames: sealed)
    }

    /// The byte range of a region of a sealed segment file.
    static func range(of region: SegmentRegion, in bytes: [UInt8]) -> Range<Int> {
        let dataEnd = RecordLayout.dataEnd(ofSealed: bytes)!
        switch region {
        case .header: return 0..<SegmentFormat.headerSize
        case .records: return SegmentFormat.headerSize..<dataEnd
        case .index: return dataEnd..<(bytes.count - SegmentFormat.trailerSize)
        case .trailer: return (bytes.count - SegmentFormat.trailerSize)..<bytes.count
        }
    }

    @Test(arguments: SegmentRegion.allCases)
    func oneFlippedBitIsFoundAndNeverServed(region: SegmentRegion) throws {
        let dir = TemporaryDirectory(inMemory: true)
        let fixture = try Self.fixture(in: dir.path)
        #expect(fixture.sealedNames.count >= 4)
        var rng = SplitMix64(seed: 52 + UInt64(region.rawValue.count))
        let trials = Environment.longTests ? 100 : 12
        for trial in 0..<trials {
            let work = dir.path + "/work\(trial)"
            try fixture.image.write(to: work)
            // Every sealed segment in turn, first and last included.
            let name = fixture.sealedNames[trial % fixture.sealedNames.count]
            let path = work + "/hot/" + name
            let original = try Files.read(path)
            let byte = Int.random(in: Self.range(of: region, in: original), using: &rng)
            let bit = Int.random(in: 0..<8, using: &rng)
            try Files.flipBit(path, byte: byte, bit: bit)
            let what = "\(name) byte \(byte) bit \(bit)"

            // Offline verify names exactly that file.
            let offline = try EventStore.verify(directory: work)
            #expect(!offline.isClean, "\(what)")
            #expect(Set(offline.corrupt.map(\.file)) == [name], "\(what): \(offline.corrupt)")

            // The store opens, and its own verify names exactly that file too.
            let store = try EventStore.openForTest(work, segmentMaxBytes: 4096, fileOperations: FaultyFileOperations.withoutSyncs)
            let online = store.verify()
            #expect(Set(online.corrupt.map(\.file)) == [name], "\(what): \(online.corrupt)")

            // Which events live in the damaged file, and which one holds the flipped byte.
            let records = RecordLayout.parse(original)
            let inFile = Set(records.map(\.seq))
            let damagedSeq = records.first { $0.offset <= byte && byte < $0.end }?.seq
            try expectNoWrongBytes(store, fixture.written.events, what: what)
            for event in fixture.written.events {
                let got = try store.event(withID: event.id)
                if event.seq == damagedSeq {
                    #expect(got == nil, "\(what): the damaged event was served")
                } else if !inFile.contains(event.seq) || region != .header {
                    // Everything else is served: other files always; this file's other records unless its header is gone.
                    let served = got?.body == event.body
                    #expect(served, "\(what): event \(event.seq) not served")
                }
            }
            // Scans and timelines hold exactly the servable events (the others in a file whose header is gone
            // are kept out of reads altogether).
            let servable = fixture.written.events.filter { $0.seq != damagedSeq && (region != .header || !inFile.contains($0.seq)) }
            for afterSeq in [UInt64(0), UInt64.random(in: 1...fixture.written.events.last!.seq, using: &rng)] {
                var scanned: [UInt64] = []
                try store.scan(ScanHints(afterSeq: afterSeq)) { scanned.append($0.seq); return true }
                #expect(scanned == servable.map(\.seq).filter { $0 > afterSeq }, "\(what): scan after \(afterSeq)")
            }
            for lead in Set(fixture.written.events.map(\.lead)) {
                #expect(try store.events(forLead: lead).map(\.seq) == servable.filter { $0.lead == lead }.map(\.seq), "\(what): \(lead)")
            }
            // Appends go on after the last acknowledged seq.
            let last = fixture.written.events.last!.seq
            #expect(store.lastSeq == last, "\(what)")
            #expect(try store.appendAndWait([try Events.make(lead: "after", id: "after\(trial)")]).first?.seq == last + 1, "\(what)")
            store.close()
            // And it opens again.
            let again = try EventStore.openForTest(work, segmentMaxBytes: 4096, fileOperations: FaultyFileOperations.withoutSyncs)
            #expect(again.lastSeq == last + 1)
            try expectNoWrongBytes(again, fixture.written.events, what: what)
            again.close()
        }
    }

    /// Whatever any read returns is byte-identical to what was appended: by id, by lead, by seq, by scan, timeline.
    private func expectNoWrongBytes(_ store: EventStore, _ events: [ExpectedEvent], what: String) throws {
        let bySeq = Dictionary(uniqueKeysWithValues: events.map { ($0.seq, $0) })
        func check(_ seq: UInt64, _ body: [UInt8], _ how: String) {
            guard let expected = bySeq[seq] else { return }  // appended by the test after the damage
            let same = body == expected.body
            #expect(same, "\(what): \(how) returned wrong bytes for seq \(seq)")
        }
        for event in events {
            if let got = try store.event(withID: event.id) { check(got.seq, got.body, "get") }
            if let got = try store.event(seq: event.seq) { check(got.seq, got.body, "get by seq") }
        }
        var seqs: [UInt64] = []
        try store.scan(ScanHints()) { record in
            check(record.seq, Array(record.body), "scan")
            seqs.append(record.seq)
            return true
        }
        #expect(seqs == seqs.sorted() && Set(seqs).count == seqs.count, "\(what): scan order")
        for lead in Set(events.map(\.lead)) {
            for got in try store.events(forLead: lead) {
                check(got.seq, got.body, "timeline")
                #expect(bySeq[got.seq].map { $0.lead == lead } ?? true)
            }
        }
    }

    /// A flipped bit in the active segment's acknowledged records is corruption, and is found by both verifies.
    @Test func flipInTheActiveSegment() throws {
        let dir = TemporaryDirectory(inMemory: true)
        let fixture = try Self.fixture(in: dir.path)
        let work = dir.path + "/work"
        try fixture.image.write(to: work)
        let open = try #require(Files.openSegment(work))
        let name = String(open.split(separator: "/").last!)
        let records = RecordLayout.parse(try Files.read(open))
        let target = records[records.count / 2]
        try Files.flipBit(open, byte: target.offset + SegmentFormat.recordHeaderSize + 5, bit: 0)
        let offline = try EventStore.verify(directory: work)
        // Offline, an unreadable spot in the .open file may be a torn tail: reported as damage or as a warning, naming the file.
        #expect(Set(offline.corrupt.map(\.file)).isSubset(of: [name]))
        #expect(!offline.corrupt.isEmpty || offline.warnings.contains { $0.contains(name) })
        let io = FaultyFileOperations(syncs: false)
        let store = try EventStore.openForTest(work, segmentMaxBytes: 4096, fileOperations: io)
        #expect(store.stats().corruptSegments.contains { $0.contains(name) })
        try expectNoWrongBytes(store, fixture.written.events, what: "active")
        #expect(try store.event(withID: fixture.written.events.first { $0.seq == target.seq }!.id) == nil)
        let last = fixture.written.events.last!.seq
        #expect(try store.appendAndWait([try Events.make(lead: "after", id: "after")]).first?.seq == last + 1)
        store.close()
        // Recovery left the damaged segment behind and started a new one: no descriptor was closed twice.
        #expect(io.unmatchedCloses == 0)
    }
}
