import Foundation
import LeadTrailEvents
import Testing
@testable import LeadTrailStorage
import LeadTrailTestSupport

@Suite struct RestartIndexTests {
    /// Everything a reader can ask, as plain values.
    struct Answers: Equatable {
        var byID: [String: [UInt8]]
        var bySeq: [UInt64: [UInt8]]
        var byLead: [String: [UInt64]]
        var scans: [[UInt64]]
    }

    static func answers(_ store: EventStore, ids: [String], leads: [String], lastSeq: UInt64) throws -> Answers {
        var byID: [String: [UInt8]] = [:]
        for id in ids { byID[id] = try store.event(withID: id)?.body }
        var bySeq: [UInt64: [UInt8]] = [:]
        for seq in 0...(lastSeq + 1) { bySeq[seq] = try store.event(seq: seq)?.body }
        var byLead: [String: [UInt64]] = [:]
        for lead in leads { byLead[lead] = try store.events(forLead: lead).map(\.seq) }
        let base: Int64 = 1_705_329_045_000
        let hints = [
            ScanHints(), ScanHints(afterSeq: lastSeq / 3), ScanHints(afterSeq: lastSeq), ScanHints(fromMs: base, toMs: base + 60_000),
            ScanHints(fromMs: base - 500_000), ScanHints(toMs: base - 200_000), ScanHints(afterSeq: lastSeq / 2, fromMs: base - 100_000, toMs: base + 100_000),
            ScanHints(leadID: leads[0]), ScanHints(afterSeq: lastSeq / 2, leadID: leads[1]), ScanHints(fromMs: base, leadID: leads[2]),
        ]
        var scans: [[UInt64]] = []
        for hint in hints {
            var seqs: [UInt64] = []
            try store.scan(hint) { seqs.append($0.seq); return true }
            scans.append(seqs)
        }
        return Answers(byID: byID, bySeq: bySeq, byLead: byLead, scans: scans)
    }

    /// The in-memory indexes of every segment, as plain values.
    struct Indexes: Equatable {
        var ids: [UInt64]
        var sealed: [Bool]
        var counts: [UInt64]
        var seqRanges: [[UInt64]]
        var tsRanges: [[Int64]]
        var dataEnds: [Int]
        var chains: [UInt32]
        var sparse: [[SparseEntry]]
        var leads: [[UInt64]?]
    }

    static func indexes(_ store: EventStore) -> Indexes {
        store.stateLock.withLock {
            let s = store.segments
            return Indexes(
                ids: s.map(\.id), sealed: s.map(\.isSealed), counts: s.map(\.count), seqRanges: s.map { [$0.firstSeq, $0.lastSeq] },
                tsRanges: s.map { [$0.minTs, $0.maxTs] }, dataEnds: s.map(\.dataEnd), chains: s.map(\.chainCRC), sparse: s.map(\.sparse),
                leads: s.map { $0.leadIndex.sorted() })
        }
    }

    @Test(arguments: [64, 4096])
    func indexesAndAnswersAreTheSameAfterARestart(sparseInterval: Int) throws {
        let dir = TemporaryDirectory(inMemory: true)
        var configuration = StoreConfiguration(directory: dir.path)
        configuration.segmentMaxBytes = 4096
        configuration.sparseIndexInterval = sparseInterval
        var rng = SplitMix64(seed: 61)
        let leads = (0..<7).map { "lead-\($0)" }
        var ids: [String] = ["missing"]
        let store = try EventStore.open(configuration, fileOperations: FaultyFileOperations.withoutSyncs)
        for b in 0..<80 {
            let events = try (0..<Int.random(in: 1...5, using: &rng)).map { i -> PreparedEvent in
                let id = "r\(b)_\(i)"
                ids.append(id)
                return try Events.make(
                    lead: leads.randomElement(using: &rng)!, id: id, type: ["source.submitted", "recipient.delivered", "custom.x"].randomElement(using: &rng)!,
                    timestampMs: 1_705_329_045_000 + Int64.random(in: -600_000...600_000, using: &rng),
                    extra: "\"pad\":\"\(String(repeating: "z", count: Int.random(in: 0..<300, using: &rng)))\"")
            }
            _ = try store.appendAndWait(events)
            if b % 23 == 22 { _ = try store.rotate() }
        }
        let lastSeq = store.lastSeq
        // Every rolled segment sealed, as it will be after the restart (the sealer runs in the background).
        store.waitForSeals()
        let before = try Self.answers(store, ids: ids, leads: leads, lastSeq: lastSeq)
        let indexesBefore = Self.indexes(store)
        #expect(indexesBefore.sealed.filter { $0 }.count >= 10)
        store.close()

        let reopened = try EventStore.open(configuration, fileOperations: FaultyFileOperations.withoutSyncs)
        #expect(reopened.lastSeq == lastSeq)
        #expect(reopened.stats().corruptSegments.isEmpty)
        let after = try Self.answers(reopened, ids: ids, leads: leads, lastSeq: lastSeq)
        #expect(after == before)
        // Footer indexes of sealed segments and the rebuilt indexes of the active one equal what was built while appending.
        let indexesAfter = Self.indexes(reopened)
        #expect(indexesAfter == indexesBefore)
        // Event-id tables agree on every id.
        for id in ids.dropFirst() { #expect(try reopened.event(withID: id) != nil) }
        reopened.close()

        // A third open, after nothing changed, too.
        let third = try EventStore.open(configuration, fileOperations: FaultyFileOperations.withoutSyncs)
        defer { third.close() }
        #expect(try Self.answers(third, ids: ids, leads: leads, lastSeq: lastSeq) == before)
        let report = third.verify()
        #expect(report.isClean)
        #expect(report.records == lastSeq)
        #expect(report.segments == Files.segments(dir.path).count)
        let offline = try EventStore.verify(directory: dir.path)
        #expect(offline.isClean)
        #expect(offline.records == lastSeq)
    }
}
