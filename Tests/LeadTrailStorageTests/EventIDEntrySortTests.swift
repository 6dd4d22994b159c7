import Testing
@testable import LeadTrailStorage
import LeadTrailTestSupport

/// The seal's sort of event-id entries gives exactly the standard library's order (hash, then seq), whatever
/// the hashes look like.
@Suite struct EventIDEntrySortTests {
    typealias Entry = EventIDEntrySort.Entry

    static func expectSameOrder(_ entries: [Entry]) {
        let expected = entries.sorted(by: EventIDEntrySort.inOrder)
        let sorted = EventIDEntrySort.sortedByHash(entries)
        #expect(sorted.map(\.hash) == expected.map(\.hash))
        #expect(sorted.map(\.seq) == expected.map(\.seq))
    }

    @Test(arguments: [0, 1, 2, 31, 32, 33, 1000, 103_000])
    func randomHashes(count: Int) {
        var rng = SplitMix64(seed: UInt64(count) + 7)
        Self.expectSameOrder((0..<count).map { (rng.next(), UInt64($0 + 1)) })
    }

    @Test func duplicateHashesKeepSeqOrderEvenWhenGivenOutOfOrder() {
        var rng = SplitMix64(seed: 11)
        var hashes: [UInt64] = []
        for _ in 0..<50 { hashes.append(rng.next()) }
        let entries: [Entry] = (0..<5000).map { _ in (hashes[Int(rng.next() % 50)], rng.next() % 1_000_000 + 1) }
        Self.expectSameOrder(entries)
    }

    /// Ids made to share the top bits of their hashes fill one bucket: sorted right, and not by insertion.
    @Test func hashesSharingTheirTopBits() {
        var rng = SplitMix64(seed: 12)
        let shared: [Entry] = (0..<20_000).map { (0xABCD_0000_0000_0000 | (rng.next() >> 24), UInt64($0 + 1)) }
        let mixed = shared + (0..<20_000).map { (rng.next(), UInt64($0 + 20_001)) }
        Self.expectSameOrder(shared)
        Self.expectSameOrder(mixed)
        Self.expectSameOrder([Entry](repeating: (42, 1), count: 100) + [(0, 2), (.max, 3)])
    }

    @Test func extremeHashes() {
        let entries: [Entry] = (0..<100).map { i in
            let base: UInt64 = i % 2 == 0 ? 0 : .max
            return (base ^ UInt64(i), UInt64(100 - i))
        }
        Self.expectSameOrder(entries)
    }
}
