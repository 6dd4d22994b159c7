import Foundation
import LeadTrailEvents
import LeadTrailQuery
import Testing
@testable import LeadTrailStorage
import LeadTrailTestSupport

/// `eventsWithoutWaiting(forLead:limit:)`: what an event loop may answer itself, and what it must leave to the pool.
@Suite struct ReadsWithoutWaitingTests {
    @Test func hotCachedLeadsAnswerExactlyAsTheBlockingRead() throws {
        let dir = TemporaryDirectory()
        let store = try EventStore.openForTest(dir.path, segmentMaxBytes: 64 << 10)
        defer { store.close() }
        for batch in 0..<6 {
            _ = try store.appendAndWait(try (0..<100).map { i in
                try Events.make(lead: "lead_\(i % 20)", id: "e\(batch)_\(i)", extra: "\"pad\":\"\(String(repeating: "x", count: 200))\"")
            })
        }
        #expect(store.stats().hot.segments > 2)  // sealed segments (lead index in the footer) and the active one
        for lead in ["lead_0", "lead_7", "lead_19", "nobody"] {
            let blocking = try store.events(forLead: lead)
            #expect(store.eventsWithoutWaiting(forLead: lead, limit: 256) == blocking)
        }
        // More events than the limit: left to the pool, however cached.
        #expect(store.eventsWithoutWaiting(forLead: "lead_3", limit: 29) == nil)
        #expect(store.eventsWithoutWaiting(forLead: "lead_3", limit: 30)?.count == 30)
        #expect(!ReadsWithoutWaiting.active)
    }

    /// The read that may wait (the pool's, after the event loop met a cache miss) hints every record of the lead
    /// to the system before it reads the first, so the misses come from the disk side by side; the read that
    /// may not wait hints nothing, and a lead of one record needs no hint.
    @Test func theWaitingReadHintsEveryRecordOfTheLeadBeforeReadingOne() throws {
        let dir = TemporaryDirectory()
        let io = FaultyFileOperations()
        let store = try EventStore.openForTest(dir.path, segmentMaxBytes: 64 << 10, fileOperations: io)
        defer { store.close() }
        for batch in 0..<6 {
            _ = try store.appendAndWait(try (0..<100).map { i in
                try Events.make(lead: "lead_\(i % 20)", id: "e\(batch)_\(i)", extra: "\"pad\":\"\(String(repeating: "x", count: 200))\"")
            } + [try Events.make(lead: "single_\(batch)", id: "s\(batch)")])
        }
        store.waitForSeals()
        #expect(store.stats().hot.segments > 2)
        io.forgetPrefetches()
        // These operations cannot read without waiting: the event loop's attempt gives up, having hinted nothing.
        #expect(store.eventsWithoutWaiting(forLead: "lead_7", limit: 256) == nil)
        #expect(io.prefetches.isEmpty)

        let events = try store.events(forLead: "lead_7")
        #expect(events.count == 30)
        let hints = io.prefetches
        // One hint per record, at the record, as long as its first read; all of them before any record is read.
        // (A segment is named by its id: it was opened as `.open` and may be `.seg` by now.)
        func place(_ path: String, _ offset: Int) -> String { "\((path as NSString).lastPathComponent.split(separator: ".")[0])@\(offset)" }
        var expected: Set<String> = []
        for path in Files.segments(dir.path) {
            for record in RecordLayout.parse(try Files.read(path)) where events.contains(where: { $0.seq == record.seq }) {
                expected.insert(place(path, record.offset))
            }
        }
        #expect(Set(hints.map { place($0.file, $0.offset) }) == expected)
        #expect(hints.count == 30)
        #expect(hints.allSatisfy { $0.count > 0 && $0.count <= RecordReader.firstReadBytes })
        #expect(Set(hints.map(\.readsBefore)).count == 1)

        io.forgetPrefetches()
        #expect(try store.events(forLead: "single_3").count == 1)
        #expect(io.prefetches.isEmpty)
    }

    @Test func warmEventsAreLeftToThePool() throws {
        let dir = TemporaryDirectory()
        let store = try TieringTests.makeStore(dir)
        defer { store.close() }
        _ = try store.tier(now: TieringTests.now)
        #expect(store.stats().warm.segments == 1)
        // lead_1 has events in the warm segment (decompressing is work an event loop must not do) and hot ones.
        #expect(store.eventsWithoutWaiting(forLead: "lead_1", limit: 1000) == nil)
        #expect(try store.events(forLead: "lead_1").count == 25)
    }

    @Test func damageIsLeftToThePoolWhichReportsIt() throws {
        let dir = TemporaryDirectory()
        var target: (seq: UInt64, lead: String)? = nil
        do {
            let store = try EventStore.openForTest(dir.path, segmentMaxBytes: 1 << 20)
            let written = try store.appendAndWait(try (0..<50).map { i in try Events.make(lead: "lead_\(i % 5)", id: "d\(i)") })
            target = (written[21].seq, "lead_1")
            _ = try store.rotate()
            store.close()
        }
        let sealed = try #require(Files.sealedSegments(dir.path).first)
        let record = try #require(RecordLayout.parse(try Files.read(sealed)).first { $0.seq == target?.seq })
        try Files.flipBit(sealed, byte: record.offset + SegmentFormat.recordHeaderSize + 3, bit: 2)
        let store = try EventStore.openForTest(dir.path)
        defer { store.close() }
        #expect(store.eventsWithoutWaiting(forLead: "lead_1", limit: 256) == nil)
        #expect(store.stats().corruptSegments.isEmpty)  // nothing reported by the read that may not wait
        let events = try store.events(forLead: "lead_1")
        #expect(events.count == 9 && !events.contains { $0.seq == target?.seq })
        #expect(!store.stats().corruptSegments.isEmpty)
        #expect(store.eventsWithoutWaiting(forLead: "lead_2", limit: 256) == (try store.events(forLead: "lead_2")))
    }
}

extension ReadsWithoutWaitingTests {
    @Test func getsAnswerAsTheBlockingReadOrLeaveItToThePool() throws {
        let dir = TemporaryDirectory()
        let store = try TieringTests.makeStore(dir)
        defer { store.close() }
        _ = try store.tier(now: TieringTests.now)
        for id in ["age10_7", "fresh", "no_such_event"] {
            let answered = try #require(store.eventWithoutWaiting(withID: id), "\(id) should be answered without waiting")
            #expect(answered == (try store.event(withID: id)))
        }
        #expect(store.eventWithoutWaiting(withID: "age10_7")??.seq != nil)
        // In the warm segment: decompressing is left to the pool.
        #expect(store.eventWithoutWaiting(withID: "age45_7") == nil)
        #expect(try store.event(withID: "age45_7") != nil)
    }
}
