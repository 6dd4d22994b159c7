import LeadTrailEvents

/// A segment's lead index: `leadHash32 << 32 | offset` entries.
///
/// While the segment is active: runs of 4,096 entries sorted as they fill and an
/// unsorted tail, so a lookup is a binary search per run, and a reader's snapshot
/// shares the runs instead of copying the whole index on the writer's next append.
/// A sealed hot segment leaves its sorted run in its file's footer, and a warm one
/// of format 3 in its stored lead section (``FooterLeadRun``): memory keeps a
/// fortieth of it, and a lookup reads one or two 512-byte blocks, each checked
/// against its CRC before it is used. Warm files of older formats (their copy is
/// compressed) and segments recovered without a footer keep one sorted run in memory.
struct LeadIndex: Sendable {
    private(set) var runs: [[UInt64]] = []
    private(set) var tail: [UInt64] = []
    /// For each run, every ``fenceStride``-th entry: a lookup binary-searches this small array (which
    /// stays in the CPU's caches) and then one block of the run, rather than the whole run: at 10
    /// million events, the ~80 sealed segments' lead indexes are far larger than the caches.
    private var fences: [[UInt64]] = []
    /// For each run of a sealed segment, a filter of its lead hashes: a lookup skips the runs
    /// (and so the segments) that do not hold the lead without touching them at all.
    private var filters: [LeadFilter?] = []
    /// A sealed segment's entries, left in its file (a hot footer, a warm lead section).
    private(set) var footerRun: FooterLeadRun?
    static let runLength = 4096
    static let fenceStride = 64

    init() {}

    init(sorted: [UInt64]) {
        runs = sorted.isEmpty ? [] : [sorted]
        fences = runs.map(Self.fence)
        filters = runs.map { LeadFilter(sortedEntries: $0) }
    }

    /// The index of a sealed segment whose `sorted` entries are stored at `offset` in `file` (a hot footer's
    /// lead section, a warm file's): only their fences, block CRCs and filter stay in memory.
    init(sorted: [UInt64], storedIn file: SegmentData, at offset: Int) {
        guard !sorted.isEmpty else { return }
        footerRun = FooterLeadRun(sorted: sorted, file: file, offset: offset)
    }

    static func fence(_ run: [UInt64]) -> [UInt64] {
        stride(from: 0, to: run.count, by: fenceStride).map { run[$0] }
    }

    /// The position of the first entry >= `key` in `sorted[low..<high]` (`high` when there is none).
    @inline(__always)
    static func lowerBound(of key: UInt64, in sorted: UnsafeBufferPointer<UInt64>, from low: Int = 0, to high: Int? = nil) -> Int {
        var low = low, high = high ?? sorted.count
        while low < high {
            let mid = (low + high) / 2
            if sorted[mid] < key { low = mid + 1 } else { high = mid }
        }
        return low
    }

    var count: Int { runs.reduce(tail.count + (footerRun?.count ?? 0)) { $0 + $1.count } }

    mutating func append(_ entry: UInt64) {
        tail.append(entry)
        if tail.count >= Self.runLength {
            let run = tail.sorted()
            runs.append(run)
            fences.append(Self.fence(run))
            filters.append(nil)  // small runs: a filter would not pay for itself
            tail = []
        }
    }

    /// Every entry, sorted by lead hash then offset (the footer's form); nil when a footer's entries
    /// cannot be read or fail their checks.
    func sorted() -> [UInt64]? {
        if let footerRun { return footerRun.entries() }
        if runs.count == 1 && tail.isEmpty { return runs[0] }
        return (runs.flatMap { $0 } + tail).sorted()
    }

    /// The smallest record offset above `offset` (every record has an entry). Linear: only used after damage.
    func nextOffset(after offset: Int) -> Int? {
        var next: Int? = nil
        for entry in footerRun.map({ $0.entries() ?? [] }) ?? Array(runs.joined()) + tail {
            let candidate = Int(entry & 0xFFFF_FFFF)
            if candidate > offset, candidate < next ?? .max { next = candidate }
        }
        return next
    }

    /// Offsets of the records with this lead hash, ascending; nil when a footer's block cannot be read
    /// or fails its CRC.
    func offsets(forLeadHash hash: UInt32) -> [Int]? {
        if let footerRun { return footerRun.offsets(forLeadHash: hash) }
        let key = UInt64(hash) << 32
        var result: [Int] = []
        for (k, run) in runs.enumerated() {
            if let filter = filters[k], !filter.mayContain(hash) { continue }
            let fence = fences[k]
            run.withUnsafeBufferPointer { run in
                // The first fence entry >= key: the run's first entry >= key lies after the block before it
                // (whose first entry is < key) and at or before that entry.
                let f = fence.withUnsafeBufferPointer { Self.lowerBound(of: key, in: $0) }
                var low = Self.lowerBound(
                    of: key, in: run, from: f == 0 ? 0 : (f - 1) * Self.fenceStride + 1,
                    to: f < fence.count ? f * Self.fenceStride : run.count)
                while low < run.count, run[low] >> 32 == UInt64(hash) {
                    result.append(Int(run[low] & 0xFFFF_FFFF))
                    low += 1
                }
            }
        }
        for entry in tail where entry >> 32 == UInt64(hash) { result.append(Int(entry & 0xFFFF_FFFF)) }
        return result
    }
}

/// A split-block Bloom filter of the lead hashes of a sorted lead-index run: ``bitsPerLead`` bits per
/// distinct lead, one bit in each of the eight words of one 64-byte block per lead (about 0.09%
/// false positives), so ruling a segment out reads one cache line.
struct LeadFilter: Sendable {
    private let words: [UInt64]
    private let blocks: UInt64

    /// Every segment a filter lets through costs a timeline a read of its lead-index blocks, one after
    /// the other, from the disk when they are not cached. With 10 bits (1% false positives) a lookup at 12
    /// million events (95 segments) read about one needless segment's index; with 16 (0.09%), one lookup
    /// in twelve does, for 6 bits more per lead (about 3 MB at 12 million events).
    static let bitsPerLead = 16

    /// Nil for runs too small to be worth it.
    init?(sortedEntries run: [UInt64]) {
        guard run.count >= 16_384 else { return nil }
        var distinct = 0
        var previous: UInt64? = nil
        for entry in run where entry >> 32 != previous {
            distinct += 1
            previous = entry >> 32
        }
        let blocks = UInt64(max(1, (distinct * Self.bitsPerLead + 511) / 512))
        var words = [UInt64](repeating: 0, count: Int(blocks) * 8)
        previous = nil
        words.withUnsafeMutableBufferPointer { w in
            for entry in run where entry >> 32 != previous {
                previous = entry >> 32
                let (base, bits) = Self.position(UInt32(truncatingIfNeeded: entry >> 32), blocks: blocks)
                for word in 0..<8 { w[base + word] |= UInt64(1) << ((bits >> (UInt64(word) * 6)) & 63) }
            }
        }
        self.words = words
        self.blocks = blocks
    }

    /// The first word of the hash's block, and 48 bits that pick one bit in each of its 8 words.
    @inline(__always)
    private static func position(_ hash: UInt32, blocks: UInt64) -> (Int, UInt64) {
        let h1 = UInt64(hash) &* 0x9E37_79B9_7F4A_7C15
        let block = ((h1 >> 32) &* blocks) >> 32
        let h2 = (h1 ^ (h1 >> 29)) &* 0xBF58_476D_1CE4_E5B9
        return (Int(block) * 8, h2)
    }

    /// False only when no entry of the run has this lead hash.
    func mayContain(_ hash: UInt32) -> Bool {
        let (base, bits) = Self.position(hash, blocks: blocks)
        return words.withUnsafeBufferPointer { w in
            for word in 0..<8 where w[base + word] & (UInt64(1) << ((bits >> (UInt64(word) * 6)) & 63)) == 0 {
                return false
            }
            return true
        }
    }
}

/// A sealed segment's sorted lead entries, read from its file when needed (a hot segment's footer,
/// a version 3 warm file's lead section).
///
/// Memory holds every ``LeadIndex/fenceStride``-th entry, the CRC32C of each block of
/// that many entries (computed from entries whose footer checksum was verified, or that
/// the writer itself sorted) and the filter: about half a byte per event instead of 8. A lookup
/// reads the block or two where the lead's entries start, and uses a block only if it
/// matches its CRC, so an index that changed on disk after the start is reported, never used.
struct FooterLeadRun: Sendable {
    let file: SegmentData
    /// Where the first entry is in the file.
    let offset: Int
    let count: Int
    private let fences: [UInt64]
    private let blockCRCs: [UInt32]
    private let filter: LeadFilter?
    static let blockEntries = LeadIndex.fenceStride
    static let blockBytes = blockEntries * SegmentFormat.leadEntrySize

    init(sorted: [UInt64], file: SegmentData, offset: Int) {
        self.file = file
        self.offset = offset
        count = sorted.count
        fences = LeadIndex.fence(sorted)
        blockCRCs = sorted.withUnsafeBytes { bytes in
            stride(from: 0, to: bytes.count, by: Self.blockBytes).map { start in
                CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[start..<min(start + Self.blockBytes, bytes.count)]))
            }
        }
        filter = LeadFilter(sortedEntries: sorted)
    }

    /// Entries `[first, first + n)` blocks' worth, from the file, each block checked; nil when one is not.
    private func readBlocks(_ first: Int, _ n: Int) -> [UInt64]? {
        let firstEntry = first * Self.blockEntries
        let entries = min(n * Self.blockEntries, count - firstEntry)
        guard entries > 0 else { return [] }
        var out = [UInt64](repeating: 0, count: entries)
        let ok = out.withUnsafeMutableBytes { buffer -> Bool in
            guard let read = try? file.read(into: buffer, at: offset + firstEntry * SegmentFormat.leadEntrySize), read == buffer.count else {
                return false
            }
            for (k, start) in stride(from: 0, to: buffer.count, by: Self.blockBytes).enumerated() {
                let block = UnsafeRawBufferPointer(rebasing: buffer[start..<min(start + Self.blockBytes, buffer.count)])
                guard CRC32C.checksum(block) == blockCRCs[first + k] else { return false }
            }
            return true
        }
        guard ok else { return nil }
        // Stored little-endian, as this machine keeps them.
        return out.map { UInt64(littleEndian: $0) }
    }

    /// Every entry, checked.
    func entries() -> [UInt64]? { readBlocks(0, blockCRCs.count) }

    func offsets(forLeadHash hash: UInt32) -> [Int]? {
        if let filter, !filter.mayContain(hash) { return [] }
        let key = UInt64(hash) << 32
        // The first fence >= key: the first entry >= key lies in the block before it, or is that fence.
        let f = fences.withUnsafeBufferPointer { LeadIndex.lowerBound(of: key, in: $0) }
        var block = max(f - 1, 0)
        var result: [Int] = []
        var started = false
        while block < blockCRCs.count {
            // Two blocks at first (the lead's entries may start at the end of the first), then one at a time.
            let n = started ? 1 : 2
            guard let entries = readBlocks(block, n) else { return nil }
            for entry in entries where entry >= key {
                guard entry >> 32 == UInt64(hash) else { return result }
                result.append(Int(entry & 0xFFFF_FFFF))
            }
            started = true
            block += n
        }
        return result
    }
}
