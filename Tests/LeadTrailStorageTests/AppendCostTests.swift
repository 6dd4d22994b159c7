import Foundation
import LeadTrailEvents
import Testing
@testable import LeadTrailStorage
import LeadTrailTestSupport

/// The append path's cost in system calls, which no machine noise changes: the figures issue 6 lets CI gate on
/// (times are measured by the benchmarks, never asserted here).
@Suite struct AppendCostTests {
    /// Appends `batches` batches of `events` events one after another (each acknowledged before the next is
    /// sent) and returns the segment writes and syncs they cost.
    private static func syscalls(batches: Int, events: Int) throws -> (writes: Int, syncs: Int) {
        let dir = TemporaryDirectory()
        let io = FaultyFileOperations()
        let store = try EventStore.openForTest(dir.path, fileOperations: io)
        defer { store.close() }
        _ = try store.appendAndWait(try (0..<events).map { try Events.make(lead: "lead\($0 % 7)") })
        // The sealer makes its spare segment (a file and a directory sync) before counting starts.
        store.waitForSpareSegment()
        let (writes, syncs) = (io.segmentWrites, io.segmentSyncs)
        for _ in 0..<batches {
            let fresh = try (0..<events).map { try Events.make(lead: "lead\($0 % 7)") }
            _ = try store.appendAndWait(fresh)
        }
        return (io.segmentWrites - writes, io.segmentSyncs - syncs)
    }

    /// One `pwrite` and one `fdatasync` per group, however many events it holds: a batch alone is a group.
    @Test(arguments: [1, 100, 1000])
    func aBatchAloneCostsOneWriteAndOneSync(events: Int) throws {
        let cost = try Self.syscalls(batches: 12, events: events)
        #expect(cost.writes == 12)
        #expect(cost.syncs == 12)
    }

    /// Batches that arrive together share writes and syncs: never more than one of each per batch, and with
    /// eight producers at once, fewer (the first group's sync gathers the next group).
    @Test func batchesSentTogetherShareWritesAndSyncs() throws {
        let dir = TemporaryDirectory()
        let io = FaultyFileOperations()
        let store = try EventStore.openForTest(dir.path, fileOperations: io)
        defer { store.close() }
        _ = try store.appendAndWait([try Events.make(lead: "warm-up")])
        store.waitForSpareSegment()
        let (writes, syncs) = (io.segmentWrites, io.segmentSyncs)
        let producers = 8, batchesEach = 25
        let failures = ConditionLock()
        nonisolated(unsafe) var errors: [String] = []
        SyncPipelineTests.concurrently(producers) { p in
            for b in 0..<batchesEach {
                do {
                    let events = try (0..<20).map { try Events.make(lead: "p\(p)-b\(b)-\($0 % 3)") }
                    _ = try store.appendAndWait(events)
                } catch {
                    failures.withLock { errors.append("\(error)") }
                }
            }
        }
        #expect(errors.isEmpty)
        let batches = producers * batchesEach
        let cost = (writes: io.segmentWrites - writes, syncs: io.segmentSyncs - syncs)
        #expect(cost.writes <= batches)
        #expect(cost.syncs <= cost.writes)
        #expect(cost.writes < batches, "eight producers at once never shared a group: \(cost.writes) writes for \(batches) batches")
        #expect(store.eventCount == UInt64(batches * 20 + 1))
    }
}

/// `stats` reports how long the append path's recent syncs and group writes took.
@Suite struct RecentDurationsTests {
    @Test func statsReportTheRecentSyncs() throws {
        let dir = TemporaryDirectory()
        let store = try EventStore.openForTest(dir.path)
        defer { store.close() }
        #expect(store.stats().recentSyncs == nil)
        for b in 0..<5 { _ = try store.appendAndWait([try Events.make(lead: "lead\(b)")]) }
        let recent = try #require(store.stats().recentSyncs)
        #expect(recent.count == 5)
        #expect(recent.count == Int(store.stats().syncs))
        #expect(recent.p50Milliseconds > 0)
        #expect(recent.p50Milliseconds <= recent.p99Milliseconds && recent.p99Milliseconds <= recent.maxMilliseconds)
        #expect(recent.megabytesPerSecond == nil)
    }

    /// Each group's write into the segment is timed with its bytes: one per batch appended alone.
    @Test func statsReportTheRecentGroupWrites() throws {
        let dir = TemporaryDirectory()
        let store = try EventStore.openForTest(dir.path)
        defer { store.close() }
        #expect(store.stats().recentWrites == nil)
        for b in 0..<4 { _ = try store.appendAndWait(try (0..<50).map { _ in try Events.make(lead: "lead\(b)") }) }
        let writes = try #require(store.stats().recentWrites)
        #expect(writes.count == 4)
        #expect(writes.p50Milliseconds <= writes.p99Milliseconds && writes.p99Milliseconds <= writes.maxMilliseconds)
        #expect((writes.megabytesPerSecond ?? 0) > 0)
    }

    /// The rate is the ring's bytes over its time.
    @Test func theRateIsBytesOverTime() throws {
        var ring = DurationRing()
        ring.record(nanoseconds: 1_000_000, bytes: 3_000_000)
        ring.record(nanoseconds: 3_000_000, bytes: 1_000_000)
        let summary = try #require(ring.summary)
        #expect(summary.megabytesPerSecond == 1_000.0)
        #expect(summary.maxMilliseconds == 3)
    }

    /// The ring keeps the latest `capacity` durations: old ones fall out of the percentiles.
    @Test func theRingKeepsTheLatestSyncs() throws {
        var times = DurationRing()
        for _ in 0..<DurationRing.capacity { times.record(nanoseconds: 90_000_000) }
        for k in 1...DurationRing.capacity { times.record(nanoseconds: UInt64(k) * 1_000) }
        let summary = try #require(times.summary)
        #expect(summary.count == DurationRing.capacity)
        #expect(summary.maxMilliseconds == Double(DurationRing.capacity) / 1000)
        #expect(summary.p50Milliseconds == Double(DurationRing.capacity / 2) / 1000)
        #expect(summary.p99Milliseconds == Double(Int((0.99 * Double(DurationRing.capacity)).rounded(.up))) / 1000)
    }
}
