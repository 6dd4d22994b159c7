import Foundation
import LeadTrailEvents
import Testing
@testable import LeadTrailStorage
import LeadTrailTestSupport

private func batch(_ prefix: String, _ count: Int, lead: String = "L") throws -> [PreparedEvent] {
    try (0..<count).map { try Events.make(lead: lead, id: "\(prefix)\($0)", timestampMs: 1_705_329_045_000 + Int64($0)) }
}

/// Every stored event in seq order, as (seq, event id, body).
private func everything(_ store: EventStore) throws -> [(seq: UInt64, id: String, body: [UInt8])] {
    var all: [(UInt64, String, [UInt8])] = []
    try store.scan(ScanHints()) { record in
        all.append((record.seq, record.value(of: .eventID) ?? "", Array(record.body)))
        return true
    }
    return all
}

@Suite struct BatchAtomicityTests {
    @Test(arguments: [true, false])
    func fullDiskStoresNothingAndAppendsResume(partialWrite: Bool) throws {
        let dir = TemporaryDirectory()
        let io = FaultyFileOperations()
        let store = try EventStore.openForTest(dir.path, fileOperations: io)
        let first = try store.appendAndWait(try batch("a", 3))
        #expect(first.map(\.seq) == [1, 2, 3])

        io.failSegmentWrites(1, partial: partialWrite)
        #expect {
            _ = try store.appendAndWait(try batch("b", 5))
        } throws: { error in
            (error as? StoreError)?.code == .unavailable
        }
        #expect(store.lastSeq == 3)
        #expect(try store.event(withID: "b0") == nil)
        #expect(try store.event(withID: "b4") == nil)
        #expect(try everything(store).map(\.id) == ["a0", "a1", "a2"])
        #expect(store.verify().isClean)
        // Nothing of the failed batch is left in the file.
        let open = try #require(Files.openSegment(dir.path))
        #expect(RecordLayout.parse(try Files.read(open)).map(\.seq) == [1, 2, 3])
        #expect(try Files.read(open).count == RecordLayout.parse(try Files.read(open)).last!.end)

        // Space is back: the same batch goes in, with no seq gap, and is not a duplicate of anything.
        let retried = try store.appendAndWait(try batch("b", 5))
        #expect(retried == (0..<5).map { AppendResult(seq: UInt64(4 + $0), eventID: "b\($0)", duplicate: false) })
        #expect(try everything(store).map(\.seq) == Array(1...8))
        store.close()

        // And all of it survives a restart.
        let reopened = try EventStore.openForTest(dir.path)
        defer { reopened.close() }
        #expect(reopened.lastSeq == 8)
        #expect(try everything(reopened).map(\.id) == ["a0", "a1", "a2", "b0", "b1", "b2", "b3", "b4"])
        #expect(reopened.verify().isClean)
    }

    @Test func fullDiskFailsEveryBatchOfTheGroupAndNoneOfTheNext() throws {
        let dir = TemporaryDirectory()
        let io = FaultyFileOperations()
        let store = try EventStore.openForTest(dir.path, fileOperations: io)
        defer { store.close() }
        _ = try store.appendAndWait(try batch("a", 2))
        io.failSegmentWrites(1)
        // Several batches queued at once may share the failed write: each is answered, none is stored.
        let answers = ConditionLockedResults()
        for k in 0..<4 {
            store.append(try batch("g\(k)_", 3)) { answers.add(k, $0) }
        }
        let results = answers.wait(for: 4)
        let failed = results.filter { if case .failure = $0.value { return true } else { return false } }.map(\.key)
        #expect(!failed.isEmpty)
        for (k, result) in results {
            switch result {
            case .failure(let error):
                #expect(error.code == .unavailable)
                for i in 0..<3 { #expect(try store.event(withID: "g\(k)_\(i)") == nil) }
            case .success(let acks):
                for ack in acks { #expect(try store.event(withID: ack.eventID)?.seq == ack.seq) }
            }
        }
        // Stored seqs have no gap.
        let seqs = try everything(store).map(\.seq)
        #expect(seqs == Array(1...UInt64(seqs.count)))
        let after = try store.appendAndWait(try batch("z", 1))
        #expect(after.first?.seq == UInt64(seqs.count + 1))
    }

    @Test func failedSyncStopsEveryLaterAcknowledgement() throws {
        let dir = TemporaryDirectory()
        let io = FaultyFileOperations()
        let store = try EventStore.openForTest(dir.path, fileOperations: io)
        _ = try store.appendAndWait(try batch("a", 2))
        io.failSyncs()
        #expect {
            _ = try store.appendAndWait(try batch("b", 2))
        } throws: { error in
            (error as? StoreError)?.code == .unavailable
        }
        // The engine never retries and then acknowledges, even once the disk works again.
        for k in 0..<3 {
            #expect {
                _ = try store.appendAndWait(try batch("c\(k)_", 1))
            } throws: { error in
                (error as? StoreError)?.code == .unavailable
            }
        }
        #expect(throws: StoreError.self) { _ = try store.rotate() }
        #expect(store.lastSeq == 2)
        // Reads still serve what was acknowledged.
        #expect(try store.event(withID: "a1")?.seq == 2)
        #expect(try store.event(withID: "b0") == nil)
        store.close()
        // A restart recovers: acknowledged events are all there, and the seq continues after whatever is stored.
        let reopened = try EventStore.openForTest(dir.path)
        defer { reopened.close() }
        #expect(try reopened.event(withID: "a0")?.seq == 1)
        #expect(try reopened.event(withID: "a1")?.seq == 2)
        // `unavailable` means nothing of the batch was stored: the refused batch does not come back after a restart.
        #expect(try reopened.event(withID: "b0") == nil)
        #expect(try reopened.event(withID: "b1") == nil)
        #expect(reopened.lastSeq == 2)
        #expect(try reopened.appendAndWait(try batch("d", 1)).first?.seq == 3)
        #expect(reopened.verify().isClean)
    }

    /// A rotation that cannot create the next segment (disk full, no spare segment ready) leaves the active
    /// segment as it was: appends go on into it, a later rotation seals it, and sealed files never change.
    @Test func failedSegmentCreationLeavesTheActiveSegmentInUse() throws {
        let dir = TemporaryDirectory()
        let io = FaultyFileOperations()
        let store = try EventStore.openForTest(dir.path, fileOperations: io)
        _ = try store.appendAndWait(try batch("a", 3))
        #expect(try store.rotate() != nil)
        _ = try store.appendAndWait(try batch("m", 2))
        io.failSegmentCreations(1_000)
        store.discardSpareSegment()
        #expect(throws: StoreError.self) { _ = try store.rotate() }
        let sealed = Files.sealedSegments(dir.path)
        #expect(sealed.count == 1)
        let sealedBytes = try sealed.map { try Files.read($0) }

        var acknowledged: [AppendResult] = []
        for k in 0..<3 { acknowledged += try store.appendAndWait(try batch("b\(k)_", 2)) }
        #expect(try sealed.map { try Files.read($0) } == sealedBytes)
        io.failSegmentCreations(0)
        #expect(try store.rotate()?.events == 8)
        #expect(Files.sealedSegments(dir.path).count == 2)
        #expect(try sealed.map { try Files.read($0) } == sealedBytes)
        #expect(store.verify().isClean)
        for ack in acknowledged { #expect(try store.event(withID: ack.eventID)?.seq == ack.seq) }
        store.close()

        let reopened = try EventStore.openForTest(dir.path)
        defer { reopened.close() }
        #expect(reopened.verify().isClean)
        #expect(reopened.stats().corruptSegments.isEmpty)
        for id in ["a0", "a1", "a2", "m0", "m1"] { #expect(try reopened.event(withID: id) != nil) }
        for ack in acknowledged { #expect(try reopened.event(withID: ack.eventID)?.seq == ack.seq) }
        let seqs = try everything(reopened).map(\.seq)
        #expect(seqs == Array(1...11))
    }

    /// A sync, rename or directory sync that fails while sealing stops acknowledgements like any failed sync,
    /// and never leaves appends writing into a file that was (or may have been) renamed to `.seg`.
    @Test(arguments: [FaultyFileOperations.OneShot.fdatasync, .rename, .syncDirectory])
    func failedSealStepStopsAcknowledgements(_ step: FaultyFileOperations.OneShot) throws {
        let dir = TemporaryDirectory()
        let io = FaultyFileOperations()
        let store = try EventStore.openForTest(dir.path, fileOperations: io)
        let acknowledged = try store.appendAndWait(try batch("a", 4))
        store.waitForSpareSegment()
        io.failNext(step)
        #expect(throws: StoreError.self) { _ = try store.rotate() }
        let sealedBefore = try Files.sealedSegments(dir.path).map { try Files.read($0) }
        #expect {
            _ = try store.appendAndWait(try batch("b", 2))
        } throws: { error in
            (error as? StoreError)?.code == .unavailable
        }
        #expect(try Files.sealedSegments(dir.path).map { try Files.read($0) } == sealedBefore)
        store.close()
        // A restart sorts it out: every acknowledged event is there, once, and the files check out.
        let reopened = try EventStore.openForTest(dir.path)
        defer { reopened.close() }
        #expect(reopened.stats().corruptSegments.isEmpty)
        #expect(reopened.verify().isClean)
        for ack in acknowledged { #expect(try reopened.event(withID: ack.eventID)?.seq == ack.seq) }
        let stored = try everything(reopened)
        #expect(stored.map(\.seq) == Array(1...UInt64(stored.count)))
        #expect(try reopened.appendAndWait(try batch("c", 1)).first?.seq == UInt64(stored.count + 1))
    }

    @Test func fullDiskWhileSealingByRollover() throws {
        let dir = TemporaryDirectory()
        let io = FaultyFileOperations()
        let store = try EventStore.openForTest(dir.path, segmentMaxBytes: 4096, fileOperations: io)
        var acknowledged: [AppendResult] = []
        var refused = 0
        var rng = SplitMix64(seed: 11)
        for k in 0..<60 {
            if k % 7 == 3 { io.failSegmentWrites(1, partial: Bool.random(using: &rng)) }
            if k % 11 == 5 { io.failSegmentCreations(1) }
            let events = try batch("r\(k)_", Int.random(in: 1...6, using: &rng), lead: "lead\(k % 3)")
            switch Result(catching: { () throws(StoreError) in try store.appendAndWait(events) }) {
            case .success(let acks): acknowledged += acks
            case .failure(let error):
                #expect(error.code == .unavailable)
                refused += 1
            }
        }
        #expect(refused > 0)
        #expect(store.verify().isClean)
        store.close()
        let reopened = try EventStore.openForTest(dir.path, segmentMaxBytes: 4096)
        defer { reopened.close() }
        #expect(reopened.verify().isClean)
        #expect(reopened.stats().corruptSegments.isEmpty)
        let stored = try everything(reopened)
        #expect(stored.map(\.seq) == Array(1...UInt64(stored.count)))
        for ack in acknowledged { #expect(try reopened.event(withID: ack.eventID)?.seq == ack.seq) }
        #expect(stored.count == acknowledged.count)
    }
}

@Suite struct DedupeTests {
    @Test func withinABatch() throws {
        let dir = TemporaryDirectory()
        let store = try EventStore.openForTest(dir.path)
        defer { store.close() }
        let events = [
            try Events.make(lead: "l", id: "x"), try Events.make(lead: "l", id: "y"), try Events.make(lead: "other", id: "x"),
            try Events.make(lead: "l", id: "y"), try Events.make(lead: "l", id: "z"),
        ]
        let results = try store.appendAndWait(events)
        #expect(results == [
            AppendResult(seq: 1, eventID: "x", duplicate: false), AppendResult(seq: 2, eventID: "y", duplicate: false),
            AppendResult(seq: 1, eventID: "x", duplicate: true), AppendResult(seq: 2, eventID: "y", duplicate: true),
            AppendResult(seq: 3, eventID: "z", duplicate: false),
        ])
        // The first copy is the stored one.
        #expect(try store.event(withID: "x")?.body == events[0].json)
        #expect(try store.events(forLead: "other").isEmpty)
        #expect(store.lastSeq == 3)
    }

    @Test func aBatchOfOnlyDuplicatesUsesNoSeq() throws {
        let dir = TemporaryDirectory()
        let store = try EventStore.openForTest(dir.path)
        defer { store.close() }
        _ = try store.appendAndWait([try Events.make(lead: "l", id: "a"), try Events.make(lead: "l", id: "b")])
        let again = try store.appendAndWait([try Events.make(lead: "l", id: "b"), try Events.make(lead: "l", id: "a")])
        #expect(again == [AppendResult(seq: 2, eventID: "b", duplicate: true), AppendResult(seq: 1, eventID: "a", duplicate: true)])
        #expect(try store.appendAndWait([try Events.make(lead: "l", id: "c")]).first?.seq == 3)
    }

    @Test func concurrentBatchesInOneGroup() throws {
        let dir = TemporaryDirectory()
        let store = try EventStore.openForTest(dir.path)
        defer { store.close() }
        let answers = ConditionLockedResults()
        // The same ids from many batches queued together: each id is stored once.
        for k in 0..<20 {
            store.append([try Events.make(lead: "l", id: "shared\(k % 5)"), try Events.make(lead: "l", id: "own\(k)")]) { answers.add(k, $0) }
        }
        let results = answers.wait(for: 20)
        var seqOfID: [String: UInt64] = [:]
        var newSeqs: [UInt64] = []
        for (_, result) in results {
            let acks = try result.get()
            for ack in acks {
                if let known = seqOfID[ack.eventID] { #expect(known == ack.seq) } else { seqOfID[ack.eventID] = ack.seq }
                if !ack.duplicate { newSeqs.append(ack.seq) }
            }
        }
        #expect(newSeqs.sorted() == Array(1...25))
        #expect(store.lastSeq == 25)
        for (id, seq) in seqOfID { #expect(try store.event(withID: id)?.seq == seq) }
    }

    @Test func acrossRestartsSealedAndActive() throws {
        let dir = TemporaryDirectory()
        do {
            let store = try EventStore.openForTest(dir.path, segmentMaxBytes: 4096)
            for k in 0..<60 { _ = try store.appendAndWait([try Events.make(lead: "l\(k % 4)", id: "id\(k)")]) }
            store.close()
        }
        let store = try EventStore.openForTest(dir.path, segmentMaxBytes: 4096)
        defer { store.close() }
        #expect(Files.sealedSegments(dir.path).count >= 2)
        // Ids in sealed segments (footer indexes) and in the active one (rebuilt by a scan).
        let ids = (0..<60).map { "id\($0)" }.shuffled()
        let results = try store.appendAndWait(try ids.map { try Events.make(lead: "x", id: $0) })
        for (id, result) in zip(ids, results) {
            #expect(result.duplicate)
            #expect(result.seq == UInt64(Int(id.dropFirst(2))! + 1))
        }
        #expect(store.lastSeq == 60)
        #expect(try store.events(forLead: "x").isEmpty)
    }

    @Test func serverAssignedIDsAreNeverDuplicates() throws {
        let dir = TemporaryDirectory()
        let store = try EventStore.openForTest(dir.path)
        defer { store.close() }
        let events = try (0..<10).map { _ in try Events.prepare(Events.json(lead: "l", id: nil)) }
        let results = try store.appendAndWait(events)
        #expect(results.map(\.seq) == Array(1...10))
        #expect(Set(results.map(\.eventID)).count == 10)
        for (event, result) in zip(events, results) {
            #expect(result.eventID == event.eventID)
            #expect(try store.event(withID: event.eventID)?.body == event.json)
        }
    }

    @Test func escapedIDsAreTheSameID() throws {
        let dir = TemporaryDirectory()
        let store = try EventStore.openForTest(dir.path)
        defer { store.close() }
        _ = try store.appendAndWait([try Events.prepare(Events.json(lead: "l", id: "ab1"))])
        let again = try store.appendAndWait([try Events.prepare(Events.json(lead: "l", id: "a\\u0062\\u0031"))])
        #expect(again == [AppendResult(seq: 1, eventID: "ab1", duplicate: true)])
    }

    /// Enough ids to make every partition of the in-memory id table grow (a new store's table starts at
    /// 16 slots per partition), while segments are sealed: every id stored before, during and after the
    /// growth must still be found, and found again after a restart.
    @Test func idTableGrowthKeepsEveryID() throws {
        let dir = TemporaryDirectory()
        let store = try EventStore.openForTest(dir.path, segmentMaxBytes: 1 << 20)
        let total = 70_000
        // One prepared event, its id's digits rewritten in place (preparing 60,000 events in a debug build is slow).
        let template = try Events.prepare("{\"type\":\"a.b\",\"lead_id\":\"l\",\"event_id\":\"g000000\",\"timestamp\":\"2024-01-15T14:30:45.234Z\"}")
        func event(_ i: Int) -> PreparedEvent {
            var e = template
            let digits = Array(String(1_000_000 + i).utf8.dropFirst())
            let range = template.fields[.eventID].range
            e.json.replaceSubrange((range.lowerBound + 1)..<range.upperBound, with: digits)
            e.eventID = "g" + String(decoding: digits, as: UTF8.self)
            e.eventIDHash = StableHash.hash64(e.eventID)
            return e
        }
        var k = 0
        while k < total {
            let n = min(2_500, total - k)
            _ = try store.appendAndWait((k..<(k + n)).map(event))
            k += n
        }
        #expect(store.eventIDs.capacity > EventIDTable().capacity)  // its partitions grew
        store.waitForSeals()
        #expect(Files.sealedSegments(dir.path).count >= 2)
        var rng = SplitMix64(seed: 3)
        let sample = (0..<300).map { _ in Int.random(in: 0..<total, using: &rng) }
        for i in sample { #expect(try store.event(withID: event(i).eventID)?.seq == UInt64(i + 1)) }
        for i in sample.prefix(5) { #expect(try store.event(withID: event(i).eventID)?.body == event(i).json) }
        let again = try store.appendAndWait(sample.map(event))
        #expect(again.allSatisfy { $0.duplicate })
        #expect(again.map(\.seq) == sample.map { UInt64($0 + 1) })
        // After a restart the table is filled from the footers, sized for what they hold.
        store.close()
        let reopened = try EventStore.openForTest(dir.path, segmentMaxBytes: 1 << 20)
        defer { reopened.close() }
        #expect(reopened.eventIDs.count == total)
        let resent = Array(sample.prefix(50))
        let afterRestart = try reopened.appendAndWait(resent.map(event))
        let expectedSeqs = resent.map { UInt64($0 + 1) }
        #expect(afterRestart.map(\.seq) == expectedSeqs)
    }
}

/// Collects completion results from another thread.
final class ConditionLockedResults: @unchecked Sendable {
    private let condition = NSCondition()
    private var results: [Int: Result<[AppendResult], StoreError>] = [:]

    func add(_ key: Int, _ result: Result<[AppendResult], StoreError>) {
        condition.lock()
        results[key] = result
        condition.broadcast()
        condition.unlock()
    }

    func wait(for count: Int) -> [(key: Int, value: Result<[AppendResult], StoreError>)] {
        condition.lock()
        defer { condition.unlock() }
        while results.count < count { _ = condition.wait(until: Date().addingTimeInterval(1)) }
        return results.sorted { $0.key < $1.key }
    }
}
