import Foundation
import LeadTrailEvents
import Testing
@testable import LeadTrailStorage
import LeadTrailTestSupport

@Suite struct EventStoreTests {
    @Test func appendThenReadBack() throws {
        let dir = TemporaryDirectory()
        let store = try EventStore.openForTest(dir.path)
        defer { store.close() }
        let events = try (0..<5).map { try Events.make(lead: "lead_\($0 % 2)", id: "e\($0)", timestampMs: 1_705_329_045_000 + Int64($0)) }
        let results = try store.appendAndWait(events)
        #expect(results.map(\.seq) == [1, 2, 3, 4, 5])
        #expect(results.allSatisfy { !$0.duplicate })
        #expect(store.lastSeq == 5)

        let got = try #require(try store.event(withID: "e3"))
        #expect(got.seq == 4)
        #expect(got.body == events[3].json)
        #expect(try store.event(withID: "nope") == nil)

        let lead0 = try store.events(forLead: "lead_0")
        #expect(lead0.map(\.seq) == [1, 3, 5])
        var seen: [UInt64] = []
        let last = try store.scan(ScanHints()) { seen.append($0.seq); return true }
        #expect(seen == [1, 2, 3, 4, 5])
        #expect(last == 5)
    }

    @Test func duplicatesKeepTheirOriginalSeq() throws {
        let dir = TemporaryDirectory()
        let store = try EventStore.openForTest(dir.path)
        defer { store.close() }
        _ = try store.appendAndWait([try Events.make(lead: "l", id: "a"), try Events.make(lead: "l", id: "b")])
        let again = try store.appendAndWait([try Events.make(lead: "l", id: "c"), try Events.make(lead: "l", id: "a"), try Events.make(lead: "l", id: "c")])
        #expect(again == [
            AppendResult(seq: 3, eventID: "c", duplicate: false),
            AppendResult(seq: 1, eventID: "a", duplicate: true),
            AppendResult(seq: 3, eventID: "c", duplicate: true),
        ])
        #expect(store.lastSeq == 3)
    }

    @Test func restartKeepsEverythingAndContinuesSeq() throws {
        let dir = TemporaryDirectory()
        do {
            let store = try EventStore.openForTest(dir.path, segmentMaxBytes: 4096)
            for batch in 0..<20 {
                _ = try store.appendAndWait(try (0..<7).map { try Events.make(lead: "lead_\($0)", id: "b\(batch)_\($0)") })
            }
            store.close()
        }
        let store = try EventStore.openForTest(dir.path, segmentMaxBytes: 4096)
        defer { store.close() }
        #expect(store.lastSeq == 140)
        #expect(store.stats().hot.segments > 3)
        #expect(try store.event(withID: "b7_3")?.seq == 7 * 7 + 4)
        #expect(try store.events(forLead: "lead_2").count == 20)
        let more = try store.appendAndWait([try Events.make(lead: "x", id: "new"), try Events.make(lead: "x", id: "b0_0")])
        #expect(more == [AppendResult(seq: 141, eventID: "new", duplicate: false), AppendResult(seq: 1, eventID: "b0_0", duplicate: true)])
        #expect(store.verify().isClean)
    }

    @Test func secondOpenIsRefused() throws {
        let dir = TemporaryDirectory()
        let store = try EventStore.openForTest(dir.path)
        defer { store.close() }
        #expect(throws: StoreError.self) { _ = try EventStore.openForTest(dir.path) }
    }
}
