import Foundation
import Testing
@testable import LeadTrailStorage
import LeadTrailTestSupport

/// Lookups through the lead index's fences and filters find exactly what a linear search finds,
/// from memory and from a footer.
@Suite struct LeadIndexTests {
    /// A sealed hot segment's form: `sorted` written after 100 bytes of a file, the index reading them from there.
    static func footerIndex(_ sorted: [UInt64], in dir: TemporaryDirectory) throws -> (LeadIndex, path: String, offset: Int) {
        let path = dir.path + "/footer"
        let bytes = [UInt8](repeating: 0xAB, count: 100) + sorted.flatMap { entry in (0..<8).map { UInt8(truncatingIfNeeded: entry >> ($0 * 8)) } }
        try Files.write(bytes, to: path)
        let io = PosixFileOperations()
        let file = HotFile(io: io, fd: try io.open(path, flags: O_RDONLY, mode: 0))
        return (LeadIndex(sorted: sorted, storedIn: file, at: 100), path, 100)
    }

    /// `count` entries over `leads` distinct lead hashes (some with long runs of entries, crossing fence blocks).
    static func entries(count: Int, leads: Int, seed: UInt64) -> [UInt64] {
        var rng = SplitMix64(seed: seed)
        let hashes = (0..<leads).map { _ in UInt32.random(in: 0...UInt32.max, using: &rng) }
        return (0..<count).map { offset in
            // A few leads take many entries each, the rest a handful.
            let lead = offset % 10 == 0 ? Int.random(in: 0..<min(3, leads), using: &rng) : Int.random(in: 0..<leads, using: &rng)
            return UInt64(hashes[lead]) << 32 | UInt64(offset * 97)
        }
    }

    /// What a linear search finds: every entry's offset by lead hash, ascending.
    static func oracle(_ entries: [UInt64]) -> [UInt32: [Int]] {
        var byHash: [UInt32: [Int]] = [:]
        for entry in entries { byHash[UInt32(truncatingIfNeeded: entry >> 32), default: []].append(Int(entry & 0xFFFF_FFFF)) }
        return byHash.mapValues { $0.sorted() }
    }

    @Test(arguments: [(100, 40), (16_384, 3_000), (70_000, 9_000), (40_000, 40_000)], [false, true])
    func sealedLookupsMatchALinearSearch(size: (count: Int, leads: Int), inFooter: Bool) throws {
        let (count, leads) = size
        let all = Self.entries(count: count, leads: leads, seed: UInt64(count))
        let dir = TemporaryDirectory()
        let index = inFooter ? try Self.footerIndex(all.sorted(), in: dir).0 : LeadIndex(sorted: all.sorted())
        #expect(index.count == all.count)
        #expect(index.sorted() == all.sorted())
        let oracle = Self.oracle(all)
        var rng = SplitMix64(seed: 9)
        for entry in all.shuffled(using: &rng).prefix(2_000) {
            let hash = UInt32(truncatingIfNeeded: entry >> 32)
            #expect(index.offsets(forLeadHash: hash) == oracle[hash])
        }
        // Hashes that are not there (the filter may let a few through; the search still finds nothing).
        let present = Set(all.map { UInt32(truncatingIfNeeded: $0 >> 32) })
        var absent = 0
        while absent < 2_000 {
            let hash = UInt32.random(in: 0...UInt32.max, using: &rng)
            guard !present.contains(hash) else { continue }
            absent += 1
            #expect(index.offsets(forLeadHash: hash) == [])
        }
        // The smallest and largest hashes, at the ends of the fences.
        for hash in [present.min(), present.max()].compactMap({ $0 }) {
            #expect(index.offsets(forLeadHash: hash) == oracle[hash])
        }
    }

    @Test func filterRulesOutMostAbsentLeads() throws {
        let all = Self.entries(count: 50_000, leads: 8_000, seed: 3)
        let filter = try #require(LeadFilter(sortedEntries: all.sorted()))
        let present = Set(all.map { UInt32(truncatingIfNeeded: $0 >> 32) })
        for hash in present { #expect(filter.mayContain(hash)) }
        var rng = SplitMix64(seed: 4)
        var passed = 0, tried = 0
        while tried < 20_000 {
            let hash = UInt32.random(in: 0...UInt32.max, using: &rng)
            guard !present.contains(hash) else { continue }
            tried += 1
            if filter.mayContain(hash) { passed += 1 }
        }
        // About 0.09% get through at 16 bits a lead (18 of 20,000); 10 bits let 1% through, which at 95
        // segments cost a timeline one needless index read in most lookups. Under 0.3% must.
        #expect(passed < tried * 3 / 1_000, "\(passed) of \(tried) absent leads got through")
    }

    @Test func activeRunsAndTailMatchALinearSearch() {
        let all = Self.entries(count: LeadIndex.runLength * 3 + 1_234, leads: 500, seed: 11)
        var index = LeadIndex()
        for entry in all { index.append(entry) }
        let oracle = Self.oracle(all)
        for entry in all.prefix(1_000) {
            let hash = UInt32(truncatingIfNeeded: entry >> 32)
            #expect(index.offsets(forLeadHash: hash) == oracle[hash])
        }
        #expect(index.sorted() == all.sorted())
    }

    /// A footer block that changed after the index was built is never used: the lookup says so (nil), and
    /// lookups that read only intact blocks still answer.
    @Test func aChangedFooterBlockIsNeverUsed() throws {
        let all = Self.entries(count: 20_000, leads: 2_000, seed: 5).sorted()
        let dir = TemporaryDirectory()
        let (index, path, offset) = try Self.footerIndex(all, in: dir)
        let oracle = Self.oracle(all)
        // Flip a bit in the lead part of entry 5,000 (block 78).
        try Files.flipBit(path, byte: offset + 5_000 * 8 + 6, bit: 3)
        let damagedHash = UInt32(truncatingIfNeeded: all[5_000] >> 32)
        #expect(index.offsets(forLeadHash: damagedHash) == nil)
        #expect(index.sorted() == nil)
        // A lead whose entries are blocks away from the flip.
        let farHash = UInt32(truncatingIfNeeded: all[15_000] >> 32)
        #expect(index.offsets(forLeadHash: farHash) == oracle[farHash])
    }

    /// The lead sections of sealed segments overwritten while the store is open (their blocks were checked at
    /// start): timelines still give every event, read from the records, and the damage is reported.
    @Test func aTimelineOverADamagedFooterIsCompleteAndReported() throws {
        let dir = TemporaryDirectory()
        let store = try EventStore.openForTest(dir.path, segmentMaxBytes: 4096)
        defer { store.close() }
        for batch in 0..<12 {
            _ = try store.appendAndWait(try (0..<10).map { try Events.make(lead: "lead_\($0 % 3)", id: "e\(batch)-\($0)") })
        }
        let expected = try (0..<3).map { try store.events(forLead: "lead_\($0)").map(\.seq) }
        #expect(expected.map(\.count) == [48, 36, 36])
        store.waitForSeals()
        let sealed = store.stateLock.withLock { store.segments.filter(\.isSealed) }
        #expect(sealed.count >= 3)
        for segment in sealed {
            let start = segment.dataEnd + segment.sparse.count * SegmentFormat.sparseEntrySize
            let fd = open(segment.path, O_WRONLY)
            _ = [UInt8](repeating: 0, count: Int(segment.count) * SegmentFormat.leadEntrySize).withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(start)) }
            close(fd)
        }
        let after = try (0..<3).map { try store.events(forLead: "lead_\($0)").map(\.seq) }
        #expect(after == expected)
        #expect(store.stats().corruptSegments.count >= sealed.count)
        // A scan by lead (with a time window) goes the same way.
        var scanned: [UInt64] = []
        try store.scan(ScanHints(fromMs: 0, leadID: "lead_2")) { scanned.append($0.seq); return true }
        #expect(scanned == expected[2])
    }
}
