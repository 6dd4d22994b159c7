import Testing
@testable import LeadTrailStorage

/// Lookups through the lead index's fences and filters find exactly what a linear search finds.
@Suite struct LeadIndexTests {
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

    @Test(arguments: [(100, 40), (16_384, 3_000), (70_000, 9_000), (40_000, 40_000)])
    func sealedLookupsMatchALinearSearch(count: Int, leads: Int) {
        let all = Self.entries(count: count, leads: leads, seed: UInt64(count))
        let index = LeadIndex(sorted: all.sorted())
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
            #expect(index.offsets(forLeadHash: hash).isEmpty)
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
        // About 1% get through; far fewer than 5% must.
        #expect(passed < tried / 20)
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
}
