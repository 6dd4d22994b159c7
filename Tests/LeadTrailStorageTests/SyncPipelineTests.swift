import Foundation
import LeadTrailEvents
import Testing
@testable import LeadTrailStorage
import LeadTrailTestSupport

/// The pipelined group commit: the writer writes the next groups while the syncer syncs earlier ones. Real
/// syncs, several appending threads and small segments, so groups are in flight across syncs and rotations.
@Suite struct SyncPipelineTests {
    /// Runs `body(thread)` on `threads` threads at once and waits for all.
    static func concurrently(_ threads: Int, _ body: @escaping @Sendable (Int) -> Void) {
        let group = DispatchGroup()
        for t in 0..<threads {
            group.enter()
            Thread {
                body(t)
                group.leave()
            }.start()
        }
        group.wait()
    }

    /// The writer's next group: waiting batches in order up to the byte limit, a batch over the limit alone
    /// (never left waiting), and other commands (rotations) taken where they stand without a size.
    @Test func groupsTakeWaitingBatchesUpToTheByteLimit() {
        func group(_ sizes: [Int?], limit: Int = 100) -> [Int] {
            let next = EventStore.nextGroup(eventBytes: sizes, limit: limit)
            return [next.taken, next.bytes]
        }
        #expect(group([]) == [0, 0])
        #expect(group([30, 30, 30, 30]) == [3, 90])
        #expect(group([40, 60, 1]) == [2, 100], "exactly the limit fits")
        #expect(group([250, 10]) == [1, 250], "a batch over the limit is a group of its own")
        #expect(group([10, 250]) == [1, 10], "and is not added to a group started before it")
        #expect(group([nil, 50, nil, 50, 50]) == [4, 100])
        #expect(EventStore.nextGroup(eventBytes: [1_200_000, 1_200_000]).taken == 1, "two 1.2 MB batches are two writes")
    }

    /// Every thread sends, in each batch, one id all threads send and one id it sent in its previous batch: one
    /// copy is stored, and every sender learns the stored copy's seq, wherever the original is (same group, a
    /// group written and waiting for its sync, or published).
    @Test func duplicatesAcrossGroupsInFlightGetTheOriginalSeq() throws {
        let dir = TemporaryDirectory()
        let store = try EventStore.openForTest(dir.path, segmentMaxBytes: 8192)
        let results = ConditionLock()
        nonisolated(unsafe) var seqOf: [String: Set<UInt64>] = [:]
        nonisolated(unsafe) var stored: [UInt64] = []
        nonisolated(unsafe) var errors: [String] = []
        Self.concurrently(4) { t in
            for k in 0..<40 {
                var ids = (0..<3).map { "t\(t)-\(k)-\($0)" } + ["shared-\(k)"]
                if k > 0 { ids.append("t\(t)-\(k - 1)-0") }
                do {
                    let events = try ids.map { try Events.make(lead: "lead\(t)", id: $0) }
                    let acks = try store.appendAndWait(events)
                    results.withLock {
                        for ack in acks {
                            seqOf[ack.eventID, default: []].insert(ack.seq)
                            if !ack.duplicate { stored.append(ack.seq) }
                        }
                    }
                } catch {
                    results.withLock { errors.append("\(error)") }
                }
            }
        }
        #expect(errors.isEmpty)
        let uniqueIDs = 4 * 40 * 3 + 40
        #expect(stored.count == uniqueIDs)
        #expect(stored.sorted() == Array(1...UInt64(uniqueIDs)))
        #expect(seqOf.count == uniqueIDs)
        #expect(seqOf.values.allSatisfy { $0.count == 1 })
        for (id, seqs) in seqOf { #expect(try store.event(withID: id)?.seq == seqs.first) }
        #expect(Files.sealedSegments(dir.path).count > 3)
        store.close()

        let reopened = try EventStore.openForTest(dir.path, segmentMaxBytes: 8192)
        defer { reopened.close() }
        #expect(reopened.verify().isClean)
        for (id, seqs) in seqOf { #expect(try reopened.event(withID: id)?.seq == seqs.first) }
    }

    /// A sync fails while other groups are written behind it: every batch is either acknowledged (and there
    /// after a restart, with its seq) or refused (and absent after a restart); nothing refused comes back.
    @Test func failedSyncWithGroupsInFlightRefusesEveryOneOfThem() throws {
        let dir = TemporaryDirectory()
        let io = FaultyFileOperations()
        let store = try EventStore.openForTest(dir.path, segmentMaxBytes: 64 << 10, fileOperations: io)
        let results = ConditionLock()
        nonisolated(unsafe) var acknowledged: [String: UInt64] = [:]
        nonisolated(unsafe) var refused: [String] = []
        Self.concurrently(4) { t in
            for k in 0..<60 {
                if t == 0 && k == 20 { io.failSyncs() }
                let ids = (0..<4).map { "t\(t)-\(k)-\($0)" }
                guard let events = try? ids.map({ try Events.make(lead: "lead\(k % 5)", id: $0, extra: "\"pad\":\"\(String(repeating: "p", count: 300))\"") })
                else { continue }
                switch Result(catching: { () throws(StoreError) in try store.appendAndWait(events) }) {
                case .success(let acks): results.withLock { for ack in acks { acknowledged[ack.eventID] = ack.seq } }
                case .failure: results.withLock { refused += ids }
                }
            }
        }
        #expect(!acknowledged.isEmpty)
        #expect(!refused.isEmpty)
        store.close()

        let reopened = try EventStore.openForTest(dir.path, segmentMaxBytes: 64 << 10)
        defer { reopened.close() }
        #expect(reopened.verify().isClean)
        #expect(reopened.stats().corruptSegments.isEmpty)
        for (id, seq) in acknowledged { #expect(try reopened.event(withID: id)?.seq == seq) }
        for id in refused { #expect(try reopened.event(withID: id) == nil) }
        #expect(reopened.lastSeq == UInt64(acknowledged.count))
    }

    /// Three events of one lead, with ids `name-0` to `name-2`.
    static func threeEvents(_ name: String) throws -> [PreparedEvent] {
        try (0..<3).map { try Events.make(lead: "lead", id: "\(name)-\($0)") }
    }

    /// Appends batch b, waits until the syncer waits in b's (held) sync, appends batch c behind it, and waits until
    /// c's group is written. `whileHeld` runs then; after it the syncs are released (b's failing when `failing`),
    /// and the two answers returned.
    static func appendTwoBehindAHeldSync(
        _ store: EventStore, _ io: FaultyFileOperations, failing: Bool = false,
        whileHeld: () -> Void = {}
    ) throws -> [String: Result<[AppendResult], StoreError>] {
        io.holdSegmentSyncs()
        let writesBefore = io.segmentWrites
        let answers = ConditionLock()
        nonisolated(unsafe) var results: [String: Result<[AppendResult], StoreError>] = [:]
        for name in ["b", "c"] {
            store.append(try threeEvents(name)) { result in
                answers.withLock {
                    results[name] = result
                    answers.signalAll()
                }
            }
            if name == "b" {
                for _ in 0..<5000 where io.segmentSyncsWaiting == 0 { usleep(1_000) }
            } else {
                for _ in 0..<5000 where io.segmentWrites < writesBefore + 2 { usleep(1_000) }
            }
        }
        #expect(io.segmentSyncsWaiting == 1)
        #expect(io.segmentWrites == writesBefore + 2)
        whileHeld()
        io.releaseSegmentSyncs(failing: failing)
        return answers.withLock {
            let deadline = Date().addingTimeInterval(10)
            while results.count < 2 && Date() < deadline { answers.wait(seconds: 0.1) }
            return results
        }
    }

    /// Appends refused because another step failed first (here the store is failed directly, as a seal whose
    /// sync fails does) leave nothing behind either: a group written while the syncer was busy is refused, its
    /// bytes are cut, and after a restart only the acknowledged batches are there. (CI met this in the test
    /// above once the sealer ran at a lower priority: the seal's failed sync came first, and the refused
    /// groups' bytes stayed in the file.)
    @Test func groupsRefusedAfterAnotherStepFailedLeaveNothingBehind() throws {
        let dir = TemporaryDirectory()
        let io = FaultyFileOperations()
        let store = try EventStore.openForTest(dir.path, fileOperations: io)
        _ = try store.appendAndWait(try Self.threeEvents("a"))
        let results = try Self.appendTwoBehindAHeldSync(store, io) {
            store.fail(StoreError(.unavailable, "a step other than the append path's sync failed"))
        }
        #expect(results.count == 2)
        // b's sync had started before the failure and succeeded: b is stored. c is refused.
        #expect((try? results["b"]?.get())?.count == 3)
        #expect((try? results["c"]?.get()) == nil)
        store.close()

        let reopened = try EventStore.openForTest(dir.path)
        defer { reopened.close() }
        #expect(reopened.verify().isClean)
        for k in 0..<3 {
            #expect(try reopened.event(withID: "a-\(k)") != nil)
            #expect(try reopened.event(withID: "b-\(k)") != nil)
            #expect(try reopened.event(withID: "c-\(k)") == nil)
        }
        #expect(reopened.lastSeq == 6)
    }

    /// A failed sync cuts its groups out, and the group written behind them is refused too without the file
    /// being lengthened back to where that group began (a cut to a length past the end would fill it with zeros).
    @Test func aGroupWrittenBehindAFailedSyncIsCutWithoutLengtheningTheFile() throws {
        let dir = TemporaryDirectory()
        let io = FaultyFileOperations()
        let store = try EventStore.openForTest(dir.path, fileOperations: io)
        _ = try store.appendAndWait(try Self.threeEvents("a"))
        let active = try #require(Files.segments(dir.path).first { $0.hasSuffix(".open") && Files.size($0) > SegmentFormat.headerSize })
        let sizeAfterA = Files.size(active)
        // b's sync fails when it is let go.
        let results = try Self.appendTwoBehindAHeldSync(store, io, failing: true)
        #expect(results.count == 2)
        #expect((try? results["b"]?.get()) == nil)
        #expect((try? results["c"]?.get()) == nil)
        #expect(Files.size(active) == sizeAfterA)
        store.close()

        let reopened = try EventStore.openForTest(dir.path)
        defer { reopened.close() }
        #expect(reopened.verify().isClean)
        #expect(reopened.stats().corruptSegments.isEmpty)
        #expect(reopened.lastSeq == 3)
        for name in ["b", "c"] { #expect(try reopened.event(withID: "\(name)-0") == nil) }
    }

    /// The next sync does not wait for the publishing and acknowledgement of the groups the last one made
    /// durable: while the publisher is held inside one batch's completion, a second batch is synced; once let
    /// go, the first is answered stored and the second after it.
    @Test func nextSyncOverlapsThePreviousGroupsAcknowledgement() throws {
        let dir = TemporaryDirectory()
        let io = FaultyFileOperations()
        let store = try EventStore.openForTest(dir.path, fileOperations: io)
        defer { store.close() }
        let firstAnswered = DispatchSemaphore(value: 0)
        let releaseFirst = DispatchSemaphore(value: 0)
        let secondAnswered = DispatchSemaphore(value: 0)
        store.append([try Events.make(lead: "a", id: "first")]) { result in
            #expect((try? result.get())?.first?.seq == 1)
            firstAnswered.signal()
            releaseFirst.wait()  // the publisher waits here
        }
        firstAnswered.wait()
        let syncsBefore = io.segmentSyncs
        nonisolated(unsafe) var secondResult: Result<[AppendResult], StoreError>?
        store.append([try Events.make(lead: "a", id: "second")]) { result in
            secondResult = result
            secondAnswered.signal()
        }
        var waited = 0
        while io.segmentSyncs == syncsBefore && waited < 500 {
            usleep(10_000)
            waited += 1
        }
        #expect(io.segmentSyncs == syncsBefore + 1, "the second batch is synced while the first is being answered")
        #expect(secondAnswered.wait(timeout: .now() + 0.05) == .timedOut, "answers stay in write order")
        releaseFirst.signal()
        secondAnswered.wait()
        #expect((try? secondResult?.get())?.first?.seq == 2)
        #expect(try store.event(withID: "second")?.seq == 2)
    }

    /// A sync fails while the group before it, already durable, is still being answered: that group is
    /// acknowledged and kept, the failed one refused and gone after a restart.
    @Test func failedSyncBehindADurableGroupKeepsTheDurableOne() throws {
        let dir = TemporaryDirectory()
        let io = FaultyFileOperations()
        let store = try EventStore.openForTest(dir.path, fileOperations: io)
        let firstAnswered = DispatchSemaphore(value: 0)
        let releaseFirst = DispatchSemaphore(value: 0)
        let secondAnswered = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var firstResult: Result<[AppendResult], StoreError>?
        nonisolated(unsafe) var secondResult: Result<[AppendResult], StoreError>?
        store.append([try Events.make(lead: "a", id: "durable")]) { result in
            firstResult = result
            firstAnswered.signal()
            releaseFirst.wait()
        }
        firstAnswered.wait()
        io.failSyncs()
        store.append([try Events.make(lead: "a", id: "refused")]) { result in
            secondResult = result
            secondAnswered.signal()
        }
        usleep(50_000)
        releaseFirst.signal()
        secondAnswered.wait()
        #expect((try? firstResult?.get())?.first?.seq == 1)
        #expect(secondResult.map { if case .failure = $0 { true } else { false } } == true)
        store.close()

        let reopened = try EventStore.openForTest(dir.path)
        defer { reopened.close() }
        #expect(reopened.verify().isClean)
        #expect(try reopened.event(withID: "durable")?.seq == 1)
        #expect(try reopened.event(withID: "refused") == nil)
        #expect(reopened.lastSeq == 1)
    }
}
