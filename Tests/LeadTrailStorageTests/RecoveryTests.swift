import Foundation
import LeadTrailEvents
import Testing
@testable import LeadTrailStorage
import LeadTrailTestSupport

/// One event as the tests expect to read it back.
struct ExpectedEvent {
    var seq: UInt64
    var id: String
    var lead: String
    var body: [UInt8]
}

/// A data directory written by a store and then closed, with what it holds.
struct WrittenStore {
    var directory: String
    var events: [ExpectedEvent]
    /// Batch sizes (in stored records), in order.
    var batches: [[UInt64]]

    /// Writes `batchSizes` batches (after `sealedBatches` batches that end up in a sealed segment, if any).
    static func make(in directory: String, sealedBatches: Int = 0, batchSizes: [Int], seed: UInt64) throws -> WrittenStore {
        var rng = SplitMix64(seed: seed)
        let store = try EventStore.openForTest(directory, fileOperations: FaultyFileOperations.withoutSyncs)
        var events: [ExpectedEvent] = []
        var batches: [[UInt64]] = []
        let allSizes = Array(repeating: 2, count: sealedBatches) + batchSizes
        for (b, size) in allSizes.enumerated() {
            let prepared = try (0..<size).map { i -> PreparedEvent in
                let lead = "lead\(Int.random(in: 0..<4, using: &rng))"
                let pad = String(repeating: "p", count: Int.random(in: 0..<120, using: &rng))
                return try Events.make(lead: lead, id: "b\(b)e\(i)", timestampMs: 1_705_329_045_000 + Int64.random(in: -5000...5000, using: &rng), extra: "\"pad\":\"\(pad)\"")
            }
            let results = try store.appendAndWait(prepared)
            var seqs: [UInt64] = []
            for (event, result) in zip(prepared, results) {
                let lead = event.json.withUnsafeBufferPointer { event.fields[.leadID].value(in: $0)! }
                events.append(ExpectedEvent(seq: result.seq, id: event.eventID, lead: lead, body: event.json))
                seqs.append(result.seq)
            }
            batches.append(seqs)
            if b == sealedBatches - 1 { _ = try store.rotate() }
        }
        store.close()
        return WrittenStore(directory: directory, events: events, batches: batches)
    }
}

/// Writes a checkpoint that says `lastSeq` and `durableOffset` of segment `segmentID` were durable.
func writeCheckpoint(_ directory: String, segmentID: UInt64, durableOffset: Int, lastSeq: UInt64) throws {
    try Files.write(Checkpoint(segmentID: segmentID, durableOffset: UInt64(durableOffset), lastSeq: lastSeq).encode(), to: directory + "/checkpoint")
}

/// The id of a segment file from its name.
func segmentID(_ path: String) -> UInt64 {
    UInt64(String(path.split(separator: "/").last!.split(separator: ".").first!), radix: 16)!
}

/// Checks that the store serves exactly `expected` (by id, by lead, by seq, by scan) and nothing of `absent`.
func expectServes(_ store: EventStore, _ expected: [ExpectedEvent], absent: [ExpectedEvent] = [], sourceLocation: SourceLocation = #_sourceLocation) throws {
    var scanned: [(UInt64, [UInt8])] = []
    try store.scan(ScanHints()) { scanned.append(($0.seq, Array($0.body))); return true }
    #expect(scanned.map(\.0) == expected.map(\.seq), sourceLocation: sourceLocation)
    let bodiesMatch = scanned.map(\.1) == expected.map(\.body)
    #expect(bodiesMatch, "scanned bodies differ", sourceLocation: sourceLocation)
    for event in expected {
        let got = try store.event(withID: event.id)
        #expect(got?.seq == event.seq, "\(event.id)", sourceLocation: sourceLocation)
        #expect(got?.body == event.body, "\(event.id)", sourceLocation: sourceLocation)
    }
    for event in absent {
        #expect(try store.event(withID: event.id) == nil, "\(event.id) should be gone", sourceLocation: sourceLocation)
    }
    for lead in Set(expected.map(\.lead) + absent.map(\.lead)) {
        let got = try store.events(forLead: lead)
        let want = expected.filter { $0.lead == lead }
        #expect(got.map(\.seq) == want.map(\.seq), "\(lead)", sourceLocation: sourceLocation)
        let leadBodiesMatch = got.map(\.body) == want.map(\.body)
        #expect(leadBodiesMatch, "\(lead): bodies differ", sourceLocation: sourceLocation)
    }
}

@Suite struct RecoverySweepTests {
    /// Cuts the active segment at `cut` in a copy of `written`, with a checkpoint at the last batch end before the
    /// cut (what a crash during the next write leaves), reopens, and checks everything.
    private func checkCut(_ written: WrittenStore, image: Files.Image, at cut: Int, work: String, withCheckpoint: Bool, deep: Bool) throws {
        try image.write(to: work)
        let open = try #require(Files.openSegment(work))
        let original = try Files.read(open)
        let layout = RecordLayout.parse(original)
        try Files.truncate(open, to: cut)

        // What survives: whole batches that end at or before the cut.
        let keptEnd = layout.filter { $0.isBatchEnd && $0.end <= cut }.last?.end ?? SegmentFormat.headerSize
        let keptInOpen = Set(layout.filter { $0.end <= keptEnd }.map(\.seq))
        let openSeqs = Set(layout.map(\.seq))
        let kept = written.events.filter { !openSeqs.contains($0.seq) || keptInOpen.contains($0.seq) }
        let lost = written.events.filter { openSeqs.contains($0.seq) && !keptInOpen.contains($0.seq) }
        if withCheckpoint {
            try writeCheckpoint(work, segmentID: segmentID(open), durableOffset: keptEnd, lastSeq: kept.last?.seq ?? 0)
        } else {
            try? Files.remove(work + "/checkpoint")
        }

        let store = try EventStore.openForTest(work, fileOperations: FaultyFileOperations.withoutSyncs)
        #expect(store.lastSeq == (kept.last?.seq ?? 0), "cut at \(cut)")
        #expect(store.stats().corruptSegments.isEmpty, "cut at \(cut): \(store.stats().corruptSegments)")
        // The cut-off bytes of a partial batch are kept in quarantine/, byte for byte.
        let quarantined = Files.list(work + "/quarantine")
        if cut > keptEnd {
            #expect(quarantined.count == 1, "cut at \(cut)")
            if let name = quarantined.first {
                #expect(try Files.read(work + "/quarantine/" + name) == Array(original[keptEnd..<cut]), "cut at \(cut)")
            }
        } else {
            #expect(quarantined.isEmpty, "cut at \(cut)")
        }
        #expect(try Files.read(open).count == keptEnd)
        if deep {
            try expectServes(store, kept, absent: lost)
        } else {
            var seqs: [UInt64] = []
            try store.scan(ScanHints()) { seqs.append($0.seq); return true }
            #expect(seqs == kept.map(\.seq), "cut at \(cut)")
            if let last = kept.last { #expect(try store.event(withID: last.id)?.body == last.body) }
            if let first = lost.first { #expect(try store.event(withID: first.id) == nil) }
        }
        // The log continues right after the last kept event; a lost id is new again.
        let next = (kept.last?.seq ?? 0) + 1
        let retryID = lost.first?.id ?? "fresh"
        let retry = try Events.make(lead: "after", id: retryID)
        let appended = try store.appendAndWait([retry])
        #expect(appended == [AppendResult(seq: next, eventID: retryID, duplicate: false)], "cut at \(cut)")
        #expect(store.verify().isClean, "cut at \(cut)")
        store.close()
        if deep {
            let again = try EventStore.openForTest(work, fileOperations: FaultyFileOperations.withoutSyncs)
            defer { again.close() }
            #expect(again.lastSeq == next)
            #expect(again.stats().corruptSegments.isEmpty)
            #expect(try again.event(withID: retryID)?.seq == next)
            let now = kept + [ExpectedEvent(seq: next, id: retryID, lead: "after", body: retry.json)]
            try expectServes(again, now, absent: lost.dropFirst().map { $0 })
        }
    }

    @Test(arguments: [false, true])
    func everyByteOfTheLastTwoRecords(withSealedSegment: Bool) throws {
        let dir = TemporaryDirectory(inMemory: true)
        let source = dir.path + "/source"
        // The last batch has one record, the one before two: the last two records span both batches.
        let written = try WrittenStore.make(in: source, sealedBatches: withSealedSegment ? 3 : 0, batchSizes: [3, 1, 4, 2, 1], seed: 21)
        let image = try Files.Image(of: source)
        let layout = RecordLayout.parse(try Files.read(try #require(Files.openSegment(source))))
        #expect(layout.count == 11)
        let from = layout[layout.count - 2].offset
        let size = layout.last!.end
        for cut in from...size {
            try checkCut(
                written, image: image, at: cut, work: dir.path + "/work\(cut)", withCheckpoint: cut % 2 == 0,
                deep: cut % 16 == 0 || cut == size || cut == from)
        }
    }

    @Test func randomCutPoints() throws {
        let dir = TemporaryDirectory(inMemory: true)
        let source = dir.path + "/source"
        let written = try WrittenStore.make(in: source, sealedBatches: 2, batchSizes: [1, 5, 2, 3, 1, 1, 4, 2, 6, 1], seed: 22)
        let image = try Files.Image(of: source)
        let size = try Files.read(try #require(Files.openSegment(source))).count
        var rng = SplitMix64(seed: 23)
        let rounds = Environment.longTests ? 400 : 100
        for k in 0..<rounds {
            let cut = Int.random(in: SegmentFormat.headerSize...size, using: &rng)
            try checkCut(
                written, image: image, at: cut, work: dir.path + "/work\(k)", withCheckpoint: Bool.random(using: &rng),
                deep: k % 10 == 0)
        }
    }

    /// A segment whose header never became durable (cut inside it) holds nothing; the store starts a new one.
    @Test(arguments: [0, 1, 40, 63, 64])
    func cutInsideTheHeader(at cut: Int) throws {
        let dir = TemporaryDirectory(inMemory: true)
        let source = dir.path + "/source"
        let written = try WrittenStore.make(in: source, sealedBatches: 2, batchSizes: [2], seed: 24)
        let work = dir.path + "/work"
        try Files.copyDirectory(source, to: work)
        let open = try #require(Files.openSegment(work))
        try Files.truncate(open, to: cut)
        let sealedEvents = Array(written.events.prefix(4))
        try writeCheckpoint(work, segmentID: segmentID(open), durableOffset: SegmentFormat.headerSize, lastSeq: 4)
        let store = try EventStore.openForTest(work, fileOperations: FaultyFileOperations.withoutSyncs)
        defer { store.close() }
        #expect(store.lastSeq == 4)
        #expect(store.stats().corruptSegments.isEmpty)
        try expectServes(store, sealedEvents, absent: Array(written.events.suffix(2)))
        #expect(try store.appendAndWait([try Events.make(lead: "x", id: "next")]).first?.seq == 5)
        #expect(store.verify().isClean)
    }
}

@Suite struct TornTailTests {
    /// Zeros or garbage after the last durable batch (preallocated or half-written sectors): cut off and quarantined.
    @Test(arguments: [(false, 512), (false, 4096), (true, 1), (true, 75), (true, 512), (true, 5000)])
    func junkAfterTheLastBatch(garbage: Bool, length: Int) throws {
        let dir = TemporaryDirectory()
        let written = try WrittenStore.make(in: dir.path, sealedBatches: 2, batchSizes: [3, 2], seed: 31)
        let open = try #require(Files.openSegment(dir.path))
        let clean = try Files.read(open)
        var rng = SplitMix64(seed: UInt64(length))
        let junk = garbage ? (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) } : [UInt8](repeating: 0, count: length)
        try Files.write(clean + junk, to: open)
        let store = try EventStore.openForTest(dir.path)
        defer { store.close() }
        #expect(store.stats().corruptSegments.isEmpty)
        try expectServes(store, written.events)
        let quarantined = Files.list(dir.path + "/quarantine")
        #expect(quarantined.count == 1)
        if let name = quarantined.first { #expect(try Files.read(dir.path + "/quarantine/" + name) == junk) }
        #expect(try Files.read(open) == clean)
        #expect(try store.appendAndWait([try Events.make(lead: "x", id: "n")]).first?.seq == written.events.last!.seq + 1)
        #expect(store.verify().isClean)
    }

    /// The final sector overwritten (a torn write of the last batches): whole batches before it survive.
    @Test(arguments: [false, true])
    func lastSectorOverwritten(garbage: Bool) throws {
        let dir = TemporaryDirectory()
        let written = try WrittenStore.make(in: dir.path, batchSizes: [2, 3, 1, 2, 2, 1, 3], seed: 32)
        let open = try #require(Files.openSegment(dir.path))
        var bytes = try Files.read(open)
        let layout = RecordLayout.parse(bytes)
        let sectorStart = (bytes.count - 1) / 512 * 512
        var rng = SplitMix64(seed: 33)
        for i in sectorStart..<bytes.count { bytes[i] = garbage ? UInt8.random(in: 0...255, using: &rng) : 0 }
        try Files.write(bytes, to: open)
        let keptEnd = layout.filter { $0.isBatchEnd && $0.end <= sectorStart }.last?.end ?? SegmentFormat.headerSize
        let keptSeqs = Set(layout.filter { $0.end <= keptEnd }.map(\.seq))
        let kept = written.events.filter { keptSeqs.contains($0.seq) }
        try writeCheckpoint(dir.path, segmentID: segmentID(open), durableOffset: keptEnd, lastSeq: kept.last?.seq ?? 0)
        let store = try EventStore.openForTest(dir.path)
        defer { store.close() }
        #expect(store.stats().corruptSegments.isEmpty)
        try expectServes(store, kept, absent: written.events.filter { !keptSeqs.contains($0.seq) })
        let quarantined = Files.list(dir.path + "/quarantine")
        #expect(quarantined.count == 1)
        if let name = quarantined.first { #expect(try Files.read(dir.path + "/quarantine/" + name) == Array(bytes[keptEnd...])) }
        #expect(try store.appendAndWait([try Events.make(lead: "x", id: "n")]).first?.seq == (kept.last?.seq ?? 0) + 1)
    }

    /// Damage before the durable point is corruption: reported, never served, acknowledged seqs never reused.
    @Test func damageBeforeTheDurablePointIsReported() throws {
        let dir = TemporaryDirectory()
        let written = try WrittenStore.make(in: dir.path, sealedBatches: 1, batchSizes: [2, 2, 2, 2], seed: 34)
        let open = try #require(Files.openSegment(dir.path))
        let layout = RecordLayout.parse(try Files.read(open))
        // Flip a bit in the payload of the 5th record of the open segment (its third batch); the checkpoint covers it all.
        try Files.flipBit(open, byte: layout[4].offset + SegmentFormat.recordHeaderSize + 3, bit: 2)
        let store = try EventStore.openForTest(dir.path)
        defer { store.close() }
        let lastAcknowledged = written.events.last!.seq
        let damaged = store.stats().corruptSegments
        #expect(!damaged.isEmpty)
        #expect(damaged.contains { $0.contains(String(open.split(separator: "/").last!)) })
        // Everything before the damaged batch is served; the damaged record's bytes never are.
        let keptSeqs = Set(layout.prefix(4).map(\.seq))
        let kept = written.events.filter { $0.seq <= 2 || keptSeqs.contains($0.seq) }
        try expectServes(store, kept)
        #expect(try store.event(withID: written.events.first { $0.seq == layout[4].seq }!.id) == nil)
        // Seqs that were acknowledged are not handed out again.
        #expect(store.lastSeq == lastAcknowledged)
        #expect(try store.appendAndWait([try Events.make(lead: "x", id: "n")]).first?.seq == lastAcknowledged + 1)
        // Past the missing seqs the log goes on in a new segment (seqs run without gaps inside one); the damaged one is sealed.
        let openName = String(try #require(open.split(separator: "/").last))
        #expect(Files.sealedSegments(dir.path).contains { $0.hasSuffix(openName.dropLast(5) + ".seg") })
        #expect(try store.event(seq: lastAcknowledged + 1)?.seq == lastAcknowledged + 1)
        #expect(try store.event(withID: "n")?.seq == lastAcknowledged + 1)
        var scanned: [UInt64] = []
        try store.scan(ScanHints()) { scanned.append($0.seq); return true }
        #expect(scanned == kept.map(\.seq) + [lastAcknowledged + 1])
        // The damaged bytes were kept for an operator.
        #expect(!Files.list(dir.path + "/quarantine").isEmpty)
    }
}

@Suite struct CheckpointTests {
    /// A damaged, empty or missing checkpoint is only a hint lost: the store opens with everything and writes a new one.
    @Test(arguments: ["flip", "empty", "missing", "garbage"])
    func unusableCheckpoint(_ damage: String) throws {
        let dir = TemporaryDirectory()
        let written = try WrittenStore.make(in: dir.path, sealedBatches: 2, batchSizes: [3, 1], seed: 45)
        let path = dir.path + "/checkpoint"
        switch damage {
        case "flip": try Files.flipBit(path, byte: 20, bit: 1)
        case "empty": try Files.write([], to: path)
        case "missing": try Files.remove(path)
        default: try Files.write(Array("not a checkpoint at all, but forty bytes".utf8), to: path)
        }
        let store = try EventStore.openForTest(dir.path)
        #expect(store.stats().corruptSegments.isEmpty)
        try expectServes(store, written.events)
        #expect(try store.appendAndWait([try Events.make(lead: "x", id: "n")]).first?.seq == written.events.last!.seq + 1)
        store.close()
        #expect(Checkpoint.decode(try Files.read(path))?.lastSeq == written.events.last!.seq + 1)
    }
}

@Suite struct InterruptedSealTests {
    /// A crash after the footer was written and synced but before the rename: recovery finishes the seal.
    @Test(arguments: [false, true])
    func footerWrittenRenameMissing(nextSegmentCreated: Bool) throws {
        let dir = TemporaryDirectory()
        let written = try WrittenStore.make(in: dir.path, sealedBatches: 3, batchSizes: [], seed: 41)
        let sealed = try #require(Files.sealedSegments(dir.path).last)
        let next = try #require(Files.openSegment(dir.path))
        let sealedBytes = try Files.read(sealed)
        try Files.rename(sealed, String(sealed.dropLast(4)) + ".open")
        if !nextSegmentCreated { try Files.remove(next) }
        let store = try EventStore.openForTest(dir.path)
        #expect(store.stats().corruptSegments.isEmpty)
        #expect(Files.sealedSegments(dir.path) == [sealed])
        #expect(try Files.read(sealed) == sealedBytes)
        try expectServes(store, written.events)
        #expect(try store.appendAndWait([try Events.make(lead: "x", id: "n")]).first?.seq == 7)
        #expect(store.verify().isClean)
        store.close()
        let again = try EventStore.openForTest(dir.path)
        defer { again.close() }
        #expect(again.verify().isClean)
        #expect(try again.event(withID: "n")?.seq == 7)
        #expect(try EventStore.verify(directory: dir.path).isClean)
    }

    /// An older segment left open without its footer (a copied directory can hold one) beside the active one:
    /// recovery seals it, and every event is served once, in order.
    @Test func olderOpenSegmentIsSealed() throws {
        let dir = TemporaryDirectory()
        let written = try WrittenStore.make(in: dir.path, sealedBatches: 3, batchSizes: [2, 1], seed: 44)
        let sealed = try #require(Files.sealedSegments(dir.path).last)
        try Files.unseal(sealed)
        #expect(Files.segments(dir.path).filter { $0.hasSuffix(".open") }.count == 2)
        let store = try EventStore.openForTest(dir.path)
        defer { store.close() }
        #expect(store.stats().corruptSegments.isEmpty)
        #expect(Files.sealedSegments(dir.path) == [sealed])
        try expectServes(store, written.events)
        #expect(try store.appendAndWait([try Events.make(lead: "x", id: "n")]).first?.seq == written.events.last!.seq + 1)
        #expect(store.verify().isClean)
    }

    /// A crash while the footer was being written: the partial footer is a torn tail; the records stay, unsealed.
    @Test func partialFooter() throws {
        let dir = TemporaryDirectory()
        let source = dir.path + "/source"
        let written = try WrittenStore.make(in: source, sealedBatches: 3, batchSizes: [], seed: 42)
        let sealedName = try #require(Files.sealedSegments(source).last).split(separator: "/").last!
        let sealedBytes = try Files.read(source + "/hot/" + sealedName)
        let dataEnd = try #require(RecordLayout.dataEnd(ofSealed: sealedBytes))
        var rng = SplitMix64(seed: 43)
        var cuts = [dataEnd + 1, sealedBytes.count - 1, sealedBytes.count - SegmentFormat.trailerSize]
        for _ in 0..<10 { cuts.append(Int.random(in: (dataEnd + 1)..<sealedBytes.count, using: &rng)) }
        for cut in cuts {
            let work = dir.path + "/work"
            try Files.copyDirectory(source, to: work)
            try Files.remove(work + "/hot/" + sealedName)
            try Files.remove(try #require(Files.openSegment(work)))
            let openPath = work + "/hot/" + sealedName.dropLast(4) + ".open"
            try Files.write(Array(sealedBytes[0..<cut]), to: openPath)
            try writeCheckpoint(work, segmentID: segmentID(openPath), durableOffset: dataEnd, lastSeq: 6)
            let store = try EventStore.openForTest(work, fileOperations: FaultyFileOperations.withoutSyncs)
            #expect(store.stats().corruptSegments.isEmpty, "cut at \(cut)")
            try expectServes(store, written.events)
            #expect(Files.list(work + "/quarantine").count == 1)
            #expect(try store.appendAndWait([try Events.make(lead: "x", id: "n")]).first?.seq == 7)
            #expect(store.verify().isClean, "cut at \(cut)")
            store.close()
        }
    }
}

/// What the long power-loss sweep found: a crash cut the new active segment's creation short (its header never
/// written) after a tier move had archived the segment before it. Recovery removes the headerless file and
/// creates the active segment again; its header must chain to the archived segment (which `verify` checks
/// across tiers), not to the newest segment still hot.
@Suite struct ChainAcrossTiersTests {
    static let day: Int64 = 86_400_000
    static let now: Int64 = 1_767_225_600_000

    @Test func aRecreatedActiveSegmentChainsToAnArchivedPredecessor() throws {
        let dir = TemporaryDirectory()
        var configuration = StoreConfiguration(directory: dir.path)
        configuration.tiers.intervalSeconds = 0
        let store = try EventStore.open(configuration)
        _ = try store.appendAndWait(try (0..<5).map { try Events.make(lead: "old", id: "old\($0)", timestampMs: Self.now - 300 * Self.day + Int64($0)) })
        _ = try store.rotate()
        _ = try store.appendAndWait(try (0..<5).map { try Events.make(lead: "old", id: "older\($0)", timestampMs: Self.now - 299 * Self.day + Int64($0)) })
        _ = try store.rotate()
        _ = try store.tier(now: Self.now)
        _ = try store.tier(now: Self.now)
        store.close()
        #expect(Files.list(dir.path + "/cold").contains { $0.hasSuffix(".ltz") })
        // The active segment: its header only, never made durable (zeros after the crash).
        let open = try #require(Files.openSegment(dir.path))
        #expect(try Files.read(open).count == SegmentFormat.headerSize)
        try Files.write([UInt8](repeating: 0, count: SegmentFormat.headerSize), to: open)

        let reopened = try EventStore.open(configuration)
        defer { reopened.close() }
        #expect(reopened.stats().corruptSegments.isEmpty)
        let report = reopened.verify()
        #expect(report.isClean, "\(report.corrupt)")
        #expect(try reopened.appendAndWait([try Events.make(lead: "new", id: "new0", timestampMs: Self.now)]).first?.seq == 11)
        #expect(reopened.verify().isClean)
    }
}
