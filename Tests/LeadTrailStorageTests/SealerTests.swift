import Foundation
import LeadTrailEvents
import Testing
@testable import LeadTrailStorage
import LeadTrailTestSupport

/// Sealing off the writer's path: rolled segments are sealed by the sealer thread, new segments come from a
/// spare file made ahead, and recovery handles what a crash leaves of either.
@Suite struct SealerTests {
    /// The spare segment's file name in `directory` (the empty `.open` file), if there is one.
    static func spareFiles(_ directory: String) -> [String] {
        Files.list(directory + "/hot").filter { $0.hasSuffix(".open") }.map { directory + "/hot/" + $0 }
            .filter { ((try? FileManager.default.attributesOfItem(atPath: $0)[.size] as? Int) ?? -1) == 0 }
    }

    @Test func rotationTakesTheSpareAndTheSealerMakesTheNextOne() throws {
        let dir = TemporaryDirectory()
        let store = try EventStore.openForTest(dir.path)
        var spareReady = false
        for _ in 0..<200 where !spareReady {
            spareReady = !Self.spareFiles(dir.path).isEmpty
            if !spareReady { usleep(10_000) }
        }
        #expect(spareReady)
        let spare = try #require(Self.spareFiles(dir.path).first)
        _ = try store.appendAndWait([try Events.make(lead: "l", id: "a")])
        let sealed = try #require(try store.rotate())
        #expect(sealed.events == 1)
        // The spare became the active segment (it now has a header), and a rotation answered means sealed.
        #expect(try Files.read(spare).count == SegmentFormat.headerSize)
        #expect(Files.sealedSegments(dir.path).count == 1)
        _ = try store.appendAndWait([try Events.make(lead: "l", id: "b")])
        #expect(try store.event(withID: "b")?.seq == 2)
        store.close()
        // A clean close removes the spare.
        #expect(Self.spareFiles(dir.path).isEmpty)
        let reopened = try EventStore.openForTest(dir.path)
        defer { reopened.close() }
        #expect(reopened.stats().quarantinedFiles.isEmpty)
        #expect(try reopened.event(withID: "a")?.seq == 1)
        #expect(try reopened.event(withID: "b")?.seq == 2)
    }

    /// A crash while the sealer worked: the rolled segment is still `.open` without a footer, the active one
    /// follows it, and an empty spare follows that. Recovery seals the rolled one, keeps appending to the
    /// active one and removes the spare, with nothing reported damaged.
    @Test func rolledSegmentLeftOpenIsSealedAtRecovery() throws {
        let dir = TemporaryDirectory()
        let written = try WrittenStore.make(in: dir.path, sealedBatches: 3, batchSizes: [3, 2], seed: 5)
        let sealedPath = try #require(Files.sealedSegments(dir.path).first)
        try Files.unseal(sealedPath)
        let activeID = try #require(Files.segments(dir.path).map(segmentID).max())
        let sparePath = dir.path + "/hot/" + Segment.fileName(id: activeID + 1, sealed: false)
        try Files.write([], to: sparePath)

        let store = try EventStore.openForTest(dir.path)
        defer { store.close() }
        #expect(store.stats().corruptSegments.isEmpty)
        #expect(store.stats().quarantinedFiles.isEmpty)
        #expect(store.stats().activeSegmentID == activeID)
        #expect(FileManager.default.fileExists(atPath: sealedPath))
        try expectServes(store, written.events)
        let next = try store.appendAndWait([try Events.make(lead: "l", id: "after")])
        #expect(next.first?.seq == UInt64(written.events.count + 1))
        #expect(store.verify().isClean)
    }

    /// Power lost during the first write into a segment taken from the spare: its header and records were to be
    /// synced together, and the header never reached the disk. Nothing in it was acknowledged, so recovery moves
    /// it aside without calling it damage; the log goes on from the segment before it.
    @Test func segmentWhoseHeaderNeverReachedTheDiskIsMovedAside() throws {
        let dir = TemporaryDirectory()
        let written = try WrittenStore.make(in: dir.path, batchSizes: [3, 2], seed: 9)
        let activeID = try #require(Files.segments(dir.path).map(segmentID).max())
        let torn = dir.path + "/hot/" + Segment.fileName(id: activeID + 1, sealed: false)
        try Files.write([UInt8](repeating: 0, count: SegmentFormat.headerSize) + Array("{\"unsynced\":1}".utf8), to: torn)

        let store = try EventStore.openForTest(dir.path)
        defer { store.close() }
        #expect(store.stats().corruptSegments.isEmpty)
        #expect(store.stats().quarantinedFiles.count == 1)
        // Appends go on in the segment before it; the free id is at most taken by a new (empty) spare.
        #expect(((try? Files.read(torn))?.count ?? 0) == 0)
        try expectServes(store, written.events)
        #expect(try store.appendAndWait([try Events.make(lead: "l", id: "after")]).first?.seq == UInt64(written.events.count + 1))
        #expect(store.verify().isClean)
    }

    /// A header of zeros in front of records that check out, or in a segment the checkpoint calls durable, is
    /// damage, not an interrupted creation.
    @Test(arguments: [true, false]) func zeroHeaderInADurableSegmentIsDamage(checkpointNamesIt: Bool) throws {
        let dir = TemporaryDirectory()
        _ = try WrittenStore.make(in: dir.path, batchSizes: [3, 2], seed: 13)
        let path = try #require(Files.openSegment(dir.path))
        var bytes = try Files.read(path)
        for i in 0..<SegmentFormat.headerSize { bytes[i] = 0 }
        if checkpointNamesIt {
            // The first record garbled too: only the checkpoint tells the segment held acknowledged events.
            for i in SegmentFormat.headerSize..<(SegmentFormat.headerSize + 8) { bytes[i] ^= 0xFF }
            try writeCheckpoint(dir.path, segmentID: segmentID(path), durableOffset: bytes.count, lastSeq: 5)
        } else {
            try FileManager.default.removeItem(atPath: dir.path + "/checkpoint")
        }
        try Files.write(bytes, to: path)

        let store = try EventStore.openForTest(dir.path)
        defer { store.close() }
        #expect(!store.stats().corruptSegments.isEmpty)
    }

    /// Many rotations while readers scan and look up: every read sees contiguous seqs, and every id is found,
    /// whether its segment is active, rolled and waiting for its seal, or sealed.
    @Test func readsStayWholeAcrossBackgroundSeals() throws {
        let dir = TemporaryDirectory()
        let store = try EventStore.openForTest(dir.path, segmentMaxBytes: 4096, fileOperations: FaultyFileOperations.withoutSyncs)
        let stop = ConditionLock()
        nonisolated(unsafe) var stopped = false
        nonisolated(unsafe) var readerProblems: [String] = []
        let reader = Thread {
            while !stop.withLock({ stopped }) {
                var seqs: [UInt64] = []
                do {
                    try store.scan(ScanHints()) { seqs.append($0.seq); return true }
                } catch {
                    stop.withLock { readerProblems.append("scan failed: \(error)") }
                }
                if !seqs.isEmpty && seqs != Array(1...UInt64(seqs.count)) {
                    stop.withLock { readerProblems.append("seqs not contiguous: \(seqs.count) read") }
                }
            }
        }
        reader.start()
        var ids: [String] = []
        for b in 0..<120 {
            let batch = try (0..<3).map { try Events.make(lead: "lead\($0)", id: "b\(b)e\($0)", extra: "\"pad\":\"\(String(repeating: "x", count: 200))\"") }
            _ = try store.appendAndWait(batch)
            ids += batch.map(\.eventID)
            if b % 10 == 0 { #expect(try store.event(withID: ids[ids.count / 2]) != nil) }
        }
        stop.withLock { stopped = true }
        while !reader.isFinished { usleep(1000) }
        #expect(stop.withLock { readerProblems }.isEmpty)
        for (k, id) in ids.enumerated() { #expect(try store.event(withID: id)?.seq == UInt64(k + 1)) }
        #expect(try store.events(forLead: "lead1").count == 120)
        store.close()
        #expect(Files.sealedSegments(dir.path).count >= 20)
        let reopened = try EventStore.openForTest(dir.path, segmentMaxBytes: 4096)
        defer { reopened.close() }
        #expect(reopened.verify().isClean)
        for (k, id) in ids.enumerated() { #expect(try reopened.event(withID: id)?.seq == UInt64(k + 1)) }
    }
}
