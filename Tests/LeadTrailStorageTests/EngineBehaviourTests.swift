import Foundation
import LeadTrailEvents
import Testing
@testable import LeadTrailStorage
import LeadTrailTestSupport

@Suite struct EngineBehaviourTests {
    /// The engine's threads carry their names where `top -H`, `perf` and `/proc/PID/task/*/comm` show them.
    @Test func engineThreadsAreNamedForTheKernel() throws {
        #expect(kernelThreadName("leadtrail-publisher") == "lt-publisher")
        #expect(kernelThreadName("a-thread-name-over-15-bytes") == "a-thread-name-o")
        let dir = TemporaryDirectory()
        let store = try EventStore.openForTest(dir.path)
        defer { store.close() }
        _ = try store.appendAndWait([try Events.make(lead: "named")])
        let wanted: Set = ["lt-writer", "lt-syncer", "lt-publisher", "lt-sealer", "lt-checkpoint"]
        func threadNames() -> Set<String> {
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
            return Set(tasks.compactMap {
                try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            })
        }
        // A thread names itself when it starts; give the last ones started a moment.
        for _ in 0..<100 where !wanted.isSubset(of: threadNames()) { Thread.sleep(forTimeInterval: 0.02) }
        #expect(wanted.subtracting(threadNames()).isEmpty, "missing: \(wanted.subtracting(threadNames()).sorted())")
    }

    /// Events of up to the contract's 1 MiB, several of which straddle the 1 MiB read chunks of scans and recovery.
    @Test func largeEventsRoundTripThroughEveryReadPath() throws {
        let dir = TemporaryDirectory(inMemory: true)
        func event(_ id: String, size: Int) throws -> PreparedEvent {
            let base = Events.json(lead: "big", id: id, extra: "\"pad\":\"\"")
            return try Events.prepare(Events.json(lead: "big", id: id, extra: "\"pad\":\"" + String(repeating: "x", count: size - base.utf8.count) + "\""))
        }
        let events = try [event("max", size: 1 << 20)] + (0..<5).map { try event("third\($0)", size: 300_000) } + [event("small", size: 200)]
        #expect(events[0].json.count == 1 << 20)
        let configuration = StoreConfiguration(directory: dir.path)
        func check(_ store: EventStore) throws {
            for event in events {
                let same = try store.event(withID: event.eventID)?.body == event.json
                #expect(same, "\(event.eventID)")
            }
            var scanned: [[UInt8]] = []
            try store.scan(ScanHints()) { scanned.append(Array($0.body)); return true }
            let sameScan = scanned == events.map(\.json)
            #expect(sameScan)
            let sameLead = try store.events(forLead: "big").map(\.body) == events.map(\.json)
            #expect(sameLead)
        }
        var store = try EventStore.open(configuration, fileOperations: FaultyFileOperations.withoutSyncs)
        _ = try store.appendAndWait(Array(events.prefix(3)))
        _ = try store.appendAndWait(Array(events.dropFirst(3)))
        try check(store)
        store.close()
        store = try EventStore.open(configuration, fileOperations: FaultyFileOperations.withoutSyncs)  // recovery scan
        try check(store)
        _ = try store.rotate()
        try check(store)
        store.close()
        store = try EventStore.open(configuration, fileOperations: FaultyFileOperations.withoutSyncs)  // footer
        defer { store.close() }
        try check(store)
        #expect(store.verify().isClean)
    }

    @Test func relaxedDurabilityKeepsEverythingOnACleanClose() throws {
        let dir = TemporaryDirectory()
        let store = try EventStore.openForTest(dir.path, segmentMaxBytes: 4096, durability: .relaxed)
        #expect(store.stats().durability == .relaxed)
        var all: [PreparedEvent] = []
        for b in 0..<30 {
            let batch = try (0..<3).map { try Events.make(lead: "l\($0)", id: "rx\(b)_\($0)") }
            all += batch
            _ = try store.appendAndWait(batch)
        }
        store.close()
        let reopened = try EventStore.openForTest(dir.path, segmentMaxBytes: 4096)
        defer { reopened.close() }
        #expect(reopened.lastSeq == 90)
        for (i, event) in all.enumerated() { #expect(try reopened.event(withID: event.eventID)?.seq == UInt64(i + 1)) }
        #expect(reopened.verify().isClean)
    }

    @Test func commitObserversSeeEveryDurableLastSeq() throws {
        let dir = TemporaryDirectory()
        let store = try EventStore.openForTest(dir.path)
        defer { store.close() }
        let seen = LockedArray()
        store.addCommitObserver { seen.append($0) }
        _ = try store.appendAndWait([try Events.make(lead: "l", id: "a"), try Events.make(lead: "l", id: "b")])
        _ = try store.appendAndWait([try Events.make(lead: "l", id: "a")])  // duplicate only: nothing new
        _ = try store.appendAndWait([try Events.make(lead: "l", id: "c")])
        // Observers run on the writer thread right after the acknowledgements: wait for the second call
        // (a bound against hanging, not a timing check).
        let deadline = Date().addingTimeInterval(30)
        while seen.values.count < 2 && Date() < deadline { usleep(1000) }
        #expect(seen.values == [2, 3])
        let stats = store.stats()
        #expect(stats.events == 3)
        #expect(stats.lastSeq == 3)
        #expect(stats.durability == .fsync)
    }

    /// Two leads whose 32-bit lead fingerprints collide: each timeline holds only its own events.
    @Test func leadFingerprintCollisionsAreResolved() throws {
        var seen: [UInt32: String] = [:]
        var pair: (String, String)? = nil
        var i = 0
        while pair == nil {
            let lead = "lead-\(i)"
            let fp = UInt32(truncatingIfNeeded: StableHash.hash64(lead))
            if let other = seen[fp] { pair = (other, lead) } else { seen[fp] = lead }
            i += 1
        }
        let (a, b) = pair!
        let dir = TemporaryDirectory()
        let store = try EventStore.openForTest(dir.path, segmentMaxBytes: 4096)
        defer { store.close() }
        for k in 0..<10 {
            _ = try store.appendAndWait([try Events.make(lead: k % 3 == 0 ? a : b, id: "c\(k)")])
            if k == 4 { _ = try store.rotate() }
        }
        #expect(try store.events(forLead: a).map(\.seq) == [1, 4, 7, 10])
        #expect(try store.events(forLead: b).map(\.seq) == [2, 3, 5, 6, 8, 9])
        var scanned: [UInt64] = []
        try store.scan(ScanHints(leadID: a)) { scanned.append($0.seq); return true }
        #expect(scanned == [1, 4, 7, 10])
    }

    /// The header of the newest sealed segment is damaged and the active segment is empty: the seqs of the
    /// unreadable events must not be handed out again, whether the checkpoint survived or not.
    @Test(arguments: [true, false])
    func damagedNewestSegmentDoesNotRewindSeq(keepCheckpoint: Bool) throws {
        let dir = TemporaryDirectory()
        do {
            let store = try EventStore.openForTest(dir.path)
            _ = try store.appendAndWait(try (0..<4).map { try Events.make(lead: "l", id: "d\($0)") })
            _ = try store.rotate()
            store.close()
        }
        let sealed = try #require(Files.sealedSegments(dir.path).last)
        try Files.flipBit(sealed, byte: 20, bit: 3)
        if !keepCheckpoint { try Files.remove(dir.path + "/checkpoint") }
        let store = try EventStore.openForTest(dir.path)
        defer { store.close() }
        #expect(!store.stats().corruptSegments.isEmpty)
        #expect(store.lastSeq == 4)
        #expect(try store.appendAndWait([try Events.make(lead: "l", id: "new")]).first?.seq == 5)
    }

    /// Readers running beside the writer (with rollovers) only ever see a gapless, acknowledged prefix, byte-identical.
    @Test func readersBesideTheWriterSeeConsistentPrefixes() throws {
        let dir = TemporaryDirectory(inMemory: true)
        let store = try EventStore.openForTest(dir.path, segmentMaxBytes: 4096, fileOperations: FaultyFileOperations.withoutSyncs)
        defer { store.close() }
        let batches = try (0..<120).map { b in
            try (0..<3).map { i in try Events.make(lead: "lead\((b + i) % 5)", id: "c\(b)_\(i)", extra: "\"n\":\(b)") }
        }
        let bodies = batches.flatMap { $0 }.map(\.json)
        let done = LockedFlag()
        let problems = LockedArray()
        let group = DispatchGroup()
        for reader in 0..<2 {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                var lastSeen: UInt64 = 0
                while !done.value {
                    let before = store.lastSeq
                    var seqs: [UInt64] = []
                    do {
                        try store.scan(ScanHints()) { record in
                            seqs.append(record.seq)
                            if Array(record.body) != bodies[Int(record.seq) - 1] { problems.append(record.seq) }
                            return true
                        }
                        if seqs != Array(1...UInt64(max(seqs.count, 1))).prefix(seqs.count).map({ $0 }) { problems.append(UInt64(1_000_000 + reader)) }
                        if UInt64(seqs.count) < max(before, lastSeen) { problems.append(UInt64(2_000_000 + reader)) }
                        lastSeen = UInt64(seqs.count)
                        let lead = "lead\(Int(lastSeen) % 5)"
                        let events = try store.events(forLead: lead)
                        if events.map(\.seq) != events.map(\.seq).sorted() { problems.append(UInt64(3_000_000 + reader)) }
                        for e in events where e.body != bodies[Int(e.seq) - 1] { problems.append(e.seq) }
                    } catch {
                        problems.append(UInt64(4_000_000 + reader))
                    }
                }
            }
        }
        for batch in batches { _ = try store.appendAndWait(batch) }
        done.set()
        group.wait()
        #expect(problems.values.isEmpty, "\(problems.values.prefix(10))")
        #expect(store.lastSeq == 360)
    }
}

final class LockedArray: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [UInt64] = []
    func append(_ value: UInt64) { lock.withLock { storage.append(value) } }
    var values: [UInt64] { lock.withLock { storage } }
}

final class LockedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false
    func set() { lock.withLock { flag = true } }
    var value: Bool { lock.withLock { flag } }
}
