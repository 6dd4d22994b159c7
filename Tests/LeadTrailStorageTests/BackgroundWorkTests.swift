import Foundation
import LeadTrailEvents
import Testing
@testable import LeadTrailStorage
import LeadTrailTestSupport

/// The engine's background work (sealing, checkpoints, tiering) keeps out of the append path's way: its threads
/// run at a lower priority, and its big writes go to the kernel in pieces.
@Suite struct BackgroundWorkTests {
    /// The nice value of the calling thread (field 19 of `/proc/thread-self/stat`).
    static func currentThreadNiceness() -> Int? {
        niceness(statFile: "/proc/thread-self/stat")
    }

    /// The nice value in a `/proc/.../stat` file: the fields after the command name, which is in parentheses.
    static func niceness(statFile: String) -> Int? {
        guard let stat = try? String(contentsOfFile: statFile, encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // Fields 3 onwards follow the name: state is field 3, nice is field 19.
        return fields.count > 16 ? Int(fields[16]) : nil
    }

    /// Each of this process's threads named `name` (as the kernel shows it), with its nice value.
    static func threads(named name: String) -> [Int?] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.compactMap { task -> Int?? in
            let comm = (try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            return comm == name ? .some(niceness(statFile: "/proc/self/task/\(task)/stat")) : nil
        }
    }

    @Test(arguments: [(ThreadPriority.normal, 0), (.background, 10)])
    func aThreadRunsAtItsPriority(priority: ThreadPriority, expected: Int) {
        let seen = ConditionLock()
        nonisolated(unsafe) var niceness: Int?? = nil
        startThread(named: "leadtrail-test", priority: priority) {
            let mine = Self.currentThreadNiceness()
            seen.withLock {
                niceness = .some(mine)
                seen.signalAll()
            }
        }
        let result: Int?? = seen.withLock {
            while niceness == nil { seen.wait(seconds: 1) }
            return niceness
        }
        #expect(result == .some(expected))
    }

    @Test func theSealerAndTheCheckpointerRunBelowTheAppendPath() throws {
        let dir = TemporaryDirectory()
        let store = try EventStore.openForTest(dir.path)
        defer { store.close() }
        // Each store has its own threads; tests run in parallel, so other stores' threads may show too. A thread
        // takes its name once it runs, so look for a while.
        func threads(named name: String) -> [Int?] {
            for _ in 0..<500 {
                let found = Self.threads(named: name)
                if !found.isEmpty { return found }
                usleep(10_000)
            }
            return []
        }
        for (name, niceness) in [("lt-sealer", 10), ("lt-checkpoint", 10), ("lt-trash", 10), ("lt-writer", 0), ("lt-syncer", 0), ("lt-publisher", 0)] {
            let found = threads(named: name)
            #expect(!found.isEmpty, "no \(name) thread")
            #expect(found.allSatisfy { $0 == niceness }, "\(name): \(found)")
        }
    }

    @Test func writeInPiecesWritesEveryByteInPiecesOfAtMost256KiB() throws {
        let dir = TemporaryDirectory()
        let io = FaultyFileOperations(syncs: false, recordsWrites: true)
        let path = dir.path + "/file"
        let fd = try io.open(path, flags: O_RDWR | O_CREAT, mode: 0o644)
        defer { io.close(fd) }
        var rng = SystemRandomNumberGenerator()
        let bytes = (0..<(600 << 10)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        try io.writeInPieces(fd, bytes, at: 100)
        let pieces = io.writes.filter { $0.file == path }
        #expect(pieces.map(\.count) == [256 << 10, 256 << 10, 88 << 10])
        #expect(pieces.map(\.offset) == [100, 100 + (256 << 10), 100 + (512 << 10)])
        #expect(try io.read(fd, count: bytes.count + 100, at: 0) == [UInt8](repeating: 0, count: 100) + bytes)
    }

    /// A footer bigger than one piece (24 bytes an event: 12,000 events make 288 KB) is written in pieces, and
    /// the sealed segment reads back whole after a restart.
    @Test func aSealWritesItsFooterInPieces() throws {
        let dir = TemporaryDirectory()
        let io = FaultyFileOperations(syncs: false, recordsWrites: true)
        let store = try EventStore.openForTest(dir.path, fileOperations: io)
        let count = 12_000
        for first in stride(from: 0, to: count, by: 1_000) {
            _ = try store.appendAndWait(try (first..<(first + 1_000)).map { try Events.make(lead: "lead-\($0 % 997)", id: "e\($0)") })
        }
        _ = try #require(try store.rotate())
        store.close()
        let sealed = try #require(Files.sealedSegments(dir.path).first)
        let bytes = try Files.read(sealed)
        let dataEnd = try #require(RecordLayout.dataEnd(ofSealed: bytes))
        let footer = io.writes.filter { $0.file == sealed.replacingOccurrences(of: ".seg", with: ".open") && $0.offset >= dataEnd }
        #expect(footer.count == 2)
        #expect(footer.allSatisfy { $0.count <= 256 << 10 })
        #expect(footer.map(\.count).reduce(0, +) == bytes.count - dataEnd)

        let reopened = try EventStore.openForTest(dir.path)
        defer { reopened.close() }
        #expect(reopened.stats().corruptSegments.isEmpty)
        #expect(try reopened.event(withID: "e0")?.seq == 1)
        #expect(try reopened.event(withID: "e\(count - 1)")?.seq == UInt64(count))
    }

    /// Rolled segments waiting for the sealer are bounded: with the sealer held up (its rename blocked), the
    /// writer rolls at most ``EventStore/maximumPendingSeals`` segments and the append that needs another waits;
    /// once the sealer goes on, every append completes and every rolled segment is sealed.
    @Test func rotationsWaitWhenTheSealerFallsBehind() throws {
        let dir = TemporaryDirectory()
        let io = FaultyFileOperations(syncs: false)
        let store = try EventStore.openForTest(dir.path, segmentMaxBytes: 4096, fileOperations: io)
        defer { store.close() }
        store.waitForSpareSegment()
        io.holdSealRenames()
        // Each batch is bigger than a segment: every batch after the first rolls one.
        let batches = 10
        let progress = ConditionLock()
        nonisolated(unsafe) var completed = 0
        nonisolated(unsafe) var failure: Error?
        startThread(named: "test-producer") {
            do {
                for b in 0..<batches {
                    _ = try store.appendAndWait(try (0..<20).map { try Events.make(lead: "lead-\($0)", id: "b\(b)-\($0)") })
                    progress.withLock {
                        completed += 1
                        progress.signalAll()
                    }
                }
            } catch {
                progress.withLock {
                    failure = error
                    progress.signalAll()
                }
            }
        }
        // The first batch fills segment 1; batches 2-5 roll segments 1-4 to the sealer; the 6th must wait.
        let stalledAt = EventStore.maximumPendingSeals + 1
        let reached = progress.withLock { () -> Int in
            let deadline = Date().addingTimeInterval(10)
            while completed < stalledAt && failure == nil && Date() < deadline { progress.wait(seconds: 0.1) }
            return completed
        }
        #expect(reached == stalledAt)
        usleep(300_000)
        #expect(progress.withLock { completed } == stalledAt, "appends went on while \(stalledAt - 1) segments waited for the sealer")
        #expect(store.stats().sealsPending == EventStore.maximumPendingSeals)

        io.releaseSealRenames()
        let finished = progress.withLock { () -> Int in
            let deadline = Date().addingTimeInterval(20)
            while completed < batches && failure == nil && Date() < deadline { progress.wait(seconds: 0.1) }
            return completed
        }
        #expect(finished == batches)
        #expect(progress.withLock { failure } == nil)
        store.waitForSeals()
        #expect(Files.sealedSegments(dir.path).count == batches - 1)
        #expect(store.stats().sealsPending == 0)
        // The sixth batch's rotation waited (later ones may have too, while the sealer caught up).
        #expect(store.stats().rotationsWaitedForSealer >= 1)
    }
}
