import Foundation
import LeadTrailEvents
import Testing
@testable import LeadTrailStorage
import LeadTrailTestSupport

/// A real full disk: a small tmpfs filled to the brim through the store. The injected-fault
/// versions (ENOSPC on a write, on segment creation, while sealing; EIO on sync) are in
/// `AtomicityTests.swift`; these add a full disk during tier moves, and the real thing.
@Suite(.serialized) struct DiskFullTests {
    /// Mounts an 8 MiB tmpfs, or says why it cannot.
    final class SmallFileSystem {
        let path: String
        init?(megabytes: Int) {
            let path = "/tmp/lt-full-" + UUID().uuidString.prefix(8)
            try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            let status = Self.run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(megabytes)m", "tmpfs", path])
            guard status == 0 else {
                try? FileManager.default.removeItem(atPath: path)
                return nil
            }
            self.path = path
        }

        deinit {
            _ = Self.run("/bin/umount", [path])
            try? FileManager.default.removeItem(atPath: path)
        }

        static func run(_ tool: String, _ arguments: [String]) -> Int32 {
            guard FileManager.default.isExecutableFile(atPath: tool) else { return -1 }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: tool)
            process.arguments = arguments
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            do { try process.run() } catch { return -1 }
            process.waitUntilExit()
            return process.terminationStatus
        }
    }

    static let canMount: Bool = SmallFileSystem(megabytes: 1) != nil

    @Test(.enabled(if: DiskFullTests.canMount, "mounting a tmpfs is not permitted here (needs root and CAP_SYS_ADMIN); skipped"))
    func aRealFullDiskAnswersUnavailableStoresNothingPartialAndRecovers() throws {
        let fs = try #require(SmallFileSystem(megabytes: 8))
        let dir = fs.path + "/data"
        var configuration = StoreConfiguration(directory: dir)
        configuration.segmentMaxBytes = 256 << 10
        configuration.tiers.intervalSeconds = 0
        let store = try EventStore.open(configuration)
        // A ballast file, to give space back later.
        let ballast = fs.path + "/ballast"
        try Files.write([UInt8](repeating: 7, count: 1 << 20), to: ballast)

        var acknowledged: [String: UInt64] = [:]
        var refused = 0
        var k = 0
        let pad = String(repeating: "z", count: 900)
        // Fill to the brim: batches of varying size until several in a row are refused.
        var refusedInARow = 0
        while refusedInARow < 5 && k < 200_000 {
            let size = 1 + k % 37
            let events = try (0..<size).map { i in try Events.make(lead: "F\(i % 5)", id: "full-\(k)-\(i)", extra: "\"pad\":\"\(pad)\"") }
            k += 1
            do {
                for r in try store.appendAndWait(events) { acknowledged[r.eventID] = r.seq }
                refusedInARow = 0
            } catch {
                #expect(error.code == .unavailable, "\(error)")
                refused += 1
                refusedInARow += 1
                // Nothing of a refused batch is readable.
                for i in 0..<size { #expect(try store.event(withID: "full-\(k - 1)-\(i)") == nil) }
            }
        }
        #expect(refused >= 5)
        #expect(acknowledged.count > 1000)
        // Every acknowledged event is readable, seqs have no gap.
        var seqs: [UInt64] = []
        try store.scan(ScanHints()) { seqs.append($0.seq); return true }
        #expect(seqs == Array(1...UInt64(seqs.count)))
        for (id, seq) in acknowledged.prefix(300) { #expect(try store.event(withID: id)?.seq == seq) }
        #expect(store.verify().isClean)

        // Space comes back: appends resume with the next seq.
        try Files.remove(ballast)
        let resumed = try store.appendAndWait([try Events.make(lead: "F", id: "after-space")])
        #expect(resumed.first?.seq == UInt64(seqs.count + 1))
        store.close()

        // And a restart on the once-full disk keeps everything.
        let reopened = try EventStore.open(configuration)
        defer { reopened.close() }
        #expect(reopened.lastSeq == UInt64(seqs.count + 1))
        for (id, seq) in acknowledged { #expect(try reopened.event(withID: id)?.seq == seq) }
        #expect(reopened.verify().isClean)
        #expect(reopened.stats().corruptSegments.isEmpty)
        print("reliability: real full disk (8 MiB tmpfs): \(acknowledged.count) acknowledged events kept, \(refused) batches refused with unavailable")
    }

    /// A full disk in the middle of tier moves: the move is skipped or refused, every event stays
    /// in exactly one tier, and the moves succeed later.
    @Test func fullDiskDuringTierMoves() throws {
        let dir = TemporaryDirectory()
        let io = FaultyFileOperations()
        var configuration = StoreConfiguration(directory: dir.path)
        configuration.tiers.intervalSeconds = 0
        configuration.segmentMaxBytes = 8192
        let store = try EventStore.open(configuration, fileOperations: io)
        let base: Int64 = 1_704_067_200_000, day: Int64 = 86_400_000
        var acknowledged: [String: UInt64] = [:]
        for k in 0..<30 {
            let events = try (0..<6).map { try Events.make(lead: "T\($0)", id: "t\(k)-\($0)", timestampMs: base + Int64(k * 10 + $0)) }
            for r in try store.appendAndWait(events) { acknowledged[r.eventID] = r.seq }
        }
        _ = try store.rotate()
        var failures = 0
        for now in [base + 40 * day, base + 200 * day] {
            io.failAllWrites(true)
            do { _ = try store.tier(now: now) } catch { failures += 1 }
            io.failAllWrites(false)
            _ = try store.tier(now: now)
        }
        io.failAllWrites(true)
        #expect(throws: StoreError.self) { _ = try store.restore(fromMs: nil, toMs: nil) }
        io.failAllWrites(false)
        _ = try store.restore(fromMs: nil, toMs: nil)
        #expect(failures == 2)
        for (id, seq) in acknowledged { #expect(try store.event(withID: id)?.seq == seq) }
        #expect(store.verify().isClean)
        store.close()
        let reopened = try EventStore.open(configuration)
        defer { reopened.close() }
        _ = try reopened.restore(fromMs: nil, toMs: nil)
        var seqs: [UInt64] = []
        try reopened.scan(ScanHints()) { seqs.append($0.seq); return true }
        #expect(seqs == Array(1...UInt64(acknowledged.count)))
        #expect(reopened.verify().isClean)
        #expect(reopened.stats().corruptSegments.isEmpty)
    }
}
