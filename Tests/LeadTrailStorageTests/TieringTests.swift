import Foundation
import LeadTrailEvents
import LeadTrailQuery
import Testing
@testable import LeadTrailStorage
import LeadTrailTestSupport

@Suite struct TieringTests {
    static let day: Int64 = 86_400_000
    static let now: Int64 = 1_767_225_600_000  // 2026-01-01T00:00:00Z

    /// A store with three sealed segments whose events are 120, 45 and 10 days old, plus a fresh active one.
    static func makeStore(_ dir: TemporaryDirectory, retainDays: Double? = nil) throws -> EventStore {
        var configuration = StoreConfiguration(directory: dir.path)
        configuration.tiers.intervalSeconds = 0
        configuration.tiers.retainDays = retainDays
        let store = try EventStore.open(configuration)
        for (index, age) in [120, 45, 10].enumerated() {
            let base = now - Int64(age) * day
            let events = try (0..<300).map { i in
                try Events.make(
                    lead: "lead_\(i % 25)", id: "age\(age)_\(i)", type: i % 3 == 0 ? "recipient.delivered" : "source.submitted",
                    timestampMs: base + Int64(i) * 1000, extra: "\"outcome\":\"\(i % 2 == 0 ? "success" : "failure")\",\"n\":\(index * 1000 + i)")
            }
            _ = try store.appendAndWait(events)
            _ = try store.rotate()
        }
        _ = try store.appendAndWait([try Events.make(lead: "lead_1", id: "fresh", timestampMs: now)])
        return store
    }

    /// Eight sealed segments of 160 events, 38 down to 31 days old, move to warm one at a time (a tiering run at each of eight
    /// clock times) while two reader threads run timelines, gets and a scan by type over and over: every answer
    /// stays exactly what it was before the first move, through every swap of a segment's file and lead index.
    @Test func readersGetTheSameAnswersWhileSegmentsMoveToWarm() throws {
        let dir = TemporaryDirectory()
        var configuration = StoreConfiguration(directory: dir.path)
        configuration.tiers.intervalSeconds = 0
        configuration.tiers.warmDays = 10_000
        let store = try EventStore.open(configuration)
        defer { store.close() }
        for age in (31...38).reversed() {
            let base = Self.now - Int64(age) * Self.day
            _ = try store.appendAndWait(try (0..<160).map { i in
                try Events.make(
                    lead: "lead_\(i % 20)", id: "d\(age)_\(i)", type: i % 4 == 0 ? "recipient.delivered" : "source.submitted",
                    timestampMs: base + Int64(i) * 1000, extra: "\"n\":\(age * 1000 + i)")
            })
            _ = try store.rotate()
        }
        let leads = (0..<20).map { "lead_\($0)" }
        let timelines = try leads.map { try store.events(forLead: $0) }
        @Sendable func recipients() throws -> [StoredEvent] {
            var found: [StoredEvent] = []
            try store.scan(ScanHints(types: TypeSelection(exact: [], prefixes: [Array("recipient.".utf8)]))) { record in
                let event = record.copy()
                if event.value(of: .type)?.hasPrefix("recipient.") == true { found.append(event) }
                return true
            }
            return found
        }
        let scanned = try recipients()
        let sample = try store.event(withID: "d33_77")
        #expect(timelines.allSatisfy { $0.count == 8 * 160 / 20 } && scanned.count == 8 * 160 / 4 && sample != nil)

        let tally = ReaderTally()
        let readers = (0..<2).map { _ in
            Thread {
                while !tally.stopping {
                    do {
                        for (lead, expected) in zip(leads, timelines) where try store.events(forLead: lead) != expected { tally.fail() }
                        if try recipients() != scanned { tally.fail() }
                        if try store.event(withID: "d33_77") != sample { tally.fail() }
                    } catch {
                        tally.fail()
                    }
                    tally.round()
                }
                tally.finish()
            }
        }
        readers.forEach { $0.start() }
        var moved = 0
        for daysBack in (0..<8).reversed() {
            let roundsBefore = tally.rounds
            moved += try store.tier(now: Self.now - Int64(daysBack) * Self.day).moved.count
            // Each reader finishes a round begun during or after this move before the next one.
            while tally.rounds < roundsBefore + 2 * readers.count { Thread.sleep(forTimeInterval: 0.001) }
        }
        tally.stop(waitingFor: readers.count)
        #expect(moved == 8)
        #expect(store.stats().warm.segments == 8)
        #expect(tally.failures == 0)
        #expect(try leads.map { try store.events(forLead: $0) } == timelines)
    }

    /// What the reader threads of a test saw: failed answers, rounds run, and when to stop.
    final class ReaderTally: @unchecked Sendable {
        private let lock = NSCondition()
        private var failed = 0, roundsRun = 0, stopped = false, finished = 0

        var failures: Int { lock.withLock { failed } }
        var rounds: Int { lock.withLock { roundsRun } }
        var stopping: Bool { lock.withLock { stopped } }
        func fail() { lock.withLock { failed += 1 } }
        func round() { lock.withLock { roundsRun += 1 } }
        func finish() { lock.withLock { finished += 1; lock.broadcast() } }

        /// Tells the readers to stop and waits until `count` of them have.
        func stop(waitingFor count: Int) {
            lock.withLock {
                stopped = true
                while finished < count { lock.wait() }
            }
        }
    }

    static func everything(_ store: EventStore) throws -> [StoredEvent] {
        var all: [StoredEvent] = []
        try store.scan(ScanHints()) { all.append($0.copy()); return true }
        return all
    }

    /// Decompressed warm blocks are kept in one cache for the whole store, bounded, least recently used out
    /// first: a scan across many warm segments holds at most `capacity` blocks, not some for every file.
    @Test func warmBlocksAreCachedWithinOneBoundForTheWholeStore() throws {
        let dir = TemporaryDirectory()
        var configuration = StoreConfiguration(directory: dir.path)
        configuration.tiers.intervalSeconds = 0
        let store = try EventStore.open(configuration)
        defer { store.close() }
        var rng = SplitMix64(seed: 3)
        for segment in 0..<10 {
            let events = try (0..<150).map { i in
                // Random padding: LZ4 leaves the blocks about as large as the records.
                let pad = String((0..<2000).map { _ in "abcdefghijklmnopqrstuvwxyz0123456789".randomElement(using: &rng)! })
                return try Events.make(
                    lead: "lead_\(i % 9)", id: "w\(segment)_\(i)", timestampMs: Self.now - 60 * Self.day + Int64(segment * 150 + i) * 1000,
                    extra: "\"pad\":\"\(pad)\"")
            }
            _ = try store.appendAndWait(events)
            _ = try store.rotate()
        }
        store.waitForSeals()
        let before = try Self.everything(store)
        _ = try store.tier(now: Self.now)
        let warm = store.snapshot().views.filter { $0.tier == .warm }
        #expect(warm.count == 10)
        let blocks = warm.reduce(0) { $0 + (($1.data as? WarmFile)?.blocks.count ?? 0) }
        #expect(blocks > store.warmBlocks.capacity, "\(blocks) blocks")
        #expect(try Self.everything(store) == before)
        #expect(store.warmBlocks.count > 0)
        #expect(store.warmBlocks.count <= store.warmBlocks.capacity)
    }

    @Test func theWarmBlockCacheDropsTheLeastRecentlyUsedBlock() {
        let cache = WarmBlockCache(capacity: 3)
        let a = cache.makeFileKey(), b = cache.makeFileKey()
        #expect(a != b)
        cache.insert(file: a, index: 0, bytes: [1])
        cache.insert(file: a, index: 1, bytes: [2])
        cache.insert(file: b, index: 0, bytes: [3])
        #expect(cache.block(file: a, index: 0) == [1], "now the most recently used")
        cache.insert(file: b, index: 1, bytes: [4])
        #expect(cache.block(file: a, index: 1) == nil, "the least recently used went")
        #expect(cache.block(file: a, index: 0) == [1])
        #expect(cache.block(file: b, index: 0) == [3])
        #expect(cache.block(file: b, index: 1) == [4])
        #expect(cache.count == 3)
    }

    @Test func segmentsMoveToTheRightTiersAndQueriesDoNotChange() throws {
        let dir = TemporaryDirectory()
        let store = try Self.makeStore(dir)
        defer { store.close() }
        let query = QueryEngine(store: store)
        let before = try Self.everything(store)
        let timelineBefore = try query.timeline(leadID: "lead_7").events

        let report = try store.tier(now: Self.now)
        #expect(report.moved.map(\.to).sorted() == ["cold", "warm", "warm"])  // 120 days: hot→warm→cold; 45: hot→warm
        let stats = store.stats()
        #expect(stats.hot.segments == 2)   // the 10-day segment and the active one
        #expect(stats.warm.segments == 1)
        #expect(stats.cold.segments == 1)
        #expect(stats.warm.events == 300 && stats.cold.events == 300)
        #expect(stats.warm.compressionRatio > 1.5)
        #expect(stats.events == 901)

        // Warm data answers exactly as hot did; cold data is out of reach.
        let after = try Self.everything(store)
        #expect(after == Array(before.dropFirst(300)))
        #expect(try store.event(withID: "age45_7")?.body == before.first { $0.value(of: .eventID) == "age45_7" }?.body)
        #expect(try store.event(withID: "age120_7") == nil)
        let timelineAfter = try query.timeline(leadID: "lead_7").events
        #expect(timelineAfter == timelineBefore.filter { $0.seq > 300 })
        #expect(store.coldOnlyBefore == Self.now - 120 * Self.day + 299_000 + 1)

        // A duplicate of an archived event is still a duplicate.
        let dup = try store.appendAndWait([try Events.make(lead: "lead_1", id: "age120_3")])
        #expect(dup == [AppendResult(seq: 4, eventID: "age120_3", duplicate: true)])
        #expect(store.verify().isClean)

        // Restore brings back identical events, once.
        let restored = try store.restore(fromMs: Self.now - 121 * Self.day, toMs: Self.now - 119 * Self.day)
        #expect(restored.restored == 300)
        let again = try store.restore(fromMs: nil, toMs: nil)
        #expect(again.restored == 0 && again.alreadyRestored == 300)
        #expect(try Self.everything(store) == before)
        #expect(try query.timeline(leadID: "lead_7").events == timelineBefore)
        #expect(store.coldOnlyBefore == nil)
        #expect(store.stats().events == 901)

        // Released data is out of reach again; the archive still holds it.
        #expect(try store.releaseRestored() == [1])
        #expect(try Self.everything(store) == after)
    }

    @Test func restoreByLeadOnlyTouchesSegmentsThatMayHoldIt() throws {
        let dir = TemporaryDirectory()
        let store = try Self.makeStore(dir)
        defer { store.close() }
        _ = try store.tier(now: Self.now + 200 * Self.day)  // everything sealed is cold now
        #expect(store.stats().cold.segments == 3)
        let none = try store.restore(fromMs: nil, toMs: nil, leadID: "no_such_lead_anywhere")
        #expect(none.restored == 0)
        let one = try store.restore(fromMs: nil, toMs: nil, leadID: "lead_3")
        #expect(one.restored == 900)
        #expect(try QueryEngine(store: store).timeline(leadID: "lead_3").events.count == 36)
    }

    @Test func tiersSurviveRestartAndVerifyCoversThem() throws {
        let dir = TemporaryDirectory()
        var before: [StoredEvent] = []
        do {
            let store = try Self.makeStore(dir)
            _ = try store.tier(now: Self.now)
            _ = try store.restore(fromMs: nil, toMs: nil)
            before = try Self.everything(store)
            store.close()
        }
        let store = try EventStore.open({ var c = StoreConfiguration(directory: dir.path); c.tiers.intervalSeconds = 0; return c }())
        defer { store.close() }
        #expect(try Self.everything(store) == before)
        let stats = store.stats()
        #expect(stats.warm.segments == 1 && stats.cold.segments == 1 && stats.restored.segments == 1)
        let report = store.verify()
        #expect(report.isClean, "\(report.corrupt)")
        #expect(report.records == 901)
        #expect(try EventStore.verify(directory: dir.path).isClean)
    }

    @Test func damageInAWarmBlockOrColdMemberIsFoundAndContained() throws {
        let dir = TemporaryDirectory()
        do {
            let store = try Self.makeStore(dir)
            _ = try store.tier(now: Self.now)
            store.close()
        }
        // Flip a bit in the middle of the warm file's first block, and in the cold member.
        let warm = try #require(try FileManager.default.contentsOfDirectory(atPath: dir.path + "/warm").first { $0.hasSuffix(".lz4s") })
        try flipBit(dir.path + "/warm/" + warm, at: 64 + 32 + 100)
        let cold = try #require(try FileManager.default.contentsOfDirectory(atPath: dir.path + "/cold").first { $0.hasSuffix(".ltz") })
        try flipBit(dir.path + "/cold/" + cold, at: 200)

        let report = try EventStore.verify(directory: dir.path)
        #expect(report.corrupt.contains { $0.file == "warm/" + warm })
        #expect(report.corrupt.contains { $0.file == "cold/" + cold })

        var configuration = StoreConfiguration(directory: dir.path)
        configuration.tiers.intervalSeconds = 0
        let store = try EventStore.open(configuration)
        defer { store.close() }
        // The 10-day segment and the active one still answer; the damaged warm block is not served.
        #expect(try store.event(withID: "age10_5") != nil)
        let all = try Self.everything(store)
        #expect(all.contains { $0.value(of: .eventID) == "age10_299" })
        #expect(!all.contains { $0.value(of: .eventID) == "age45_0" })
        #expect(throws: StoreError.self) { _ = try store.restore(fromMs: nil, toMs: nil) }
        #expect(!store.stats().corruptSegments.isEmpty)
    }

    @Test func interruptedMovesLeaveEveryEventInExactlyOneTier() throws {
        let dir = TemporaryDirectory()
        var before: [StoredEvent] = []
        do {
            let store = try Self.makeStore(dir)
            before = try Self.everything(store)
            _ = try store.tier(now: Self.now)
            store.close()
        }
        // A warm move that renamed but did not delete its source: put the hot file back.
        // (Simulated by restoring a copy of the hot file next to its warm twin.)
        let warm = try #require(try FileManager.default.contentsOfDirectory(atPath: dir.path + "/warm").first { $0.hasSuffix(".lz4s") })
        let id = String(warm.dropLast(5))
        var configuration = StoreConfiguration(directory: dir.path + "-copy")
        configuration.tiers.intervalSeconds = 0
        try FileManager.default.copyItem(atPath: dir.path, toPath: dir.path + "-copy")
        defer { try? FileManager.default.removeItem(atPath: dir.path + "-copy") }
        try Data("not a real segment".utf8).write(to: URL(fileURLWithPath: dir.path + "-copy/hot/\(id).seg"))
        // A cold move that wrote its member but no manifest: garbage after the manifest's end.
        let ltz = try #require(try FileManager.default.contentsOfDirectory(atPath: dir.path + "/cold").first { $0.hasSuffix(".ltz") })
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: dir.path + "-copy/cold/" + ltz))
        handle.seekToEndOfFile()
        handle.write(Data(repeating: 0x1f, count: 1000))
        try handle.close()

        let store = try EventStore.open(configuration)
        defer { store.close() }
        #expect(try Self.everything(store) == Array(before.dropFirst(300)))
        #expect(!FileManager.default.fileExists(atPath: dir.path + "-copy/hot/\(id).seg"))
        _ = try store.restore(fromMs: nil, toMs: nil)
        #expect(try Self.everything(store) == before)
        #expect(store.verify().isClean)
    }

    func flipBit(_ path: String, at offset: Int) throws {
        var data = try Data(contentsOf: URL(fileURLWithPath: path))
        data[offset] ^= 0x10
        try data.write(to: URL(fileURLWithPath: path))
    }
}
