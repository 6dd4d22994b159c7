/// An in-memory table from event-id hashes to seqs, used to find duplicates on
/// append and events by id without touching the disk.
///
/// The table is 1,024 open-addressing partitions, picked by the hash's top 10 bits.
/// Each 8-byte slot packs the next 24 bits of the hash (its fingerprint) with a
/// 40-bit seq, and a hash's first slot in its partition is its fingerprint scaled
/// into the partition. So a slot alone says where it belongs: a partition that
/// reaches 80% full is rebuilt at 60% from its own slots, without reading any file
/// and without a second copy of the whole table; the append that fills it waits
/// for one partition's rebuild (about 15,000 slots at 10 million events), not for
/// the table's. The table stays between 60% and 80% full, 10 to 13 bytes per event
/// (a store opens with it 70% full: 119 MB at 10.4 million events).
///
/// A hit is only a candidate: with n events stored, a lookup meets another id with
/// the same partition and fingerprint with a chance of about n / 2^34 (one in 1,700
/// at 10 million), so the caller reads the record and compares the event id itself.
///
/// Because first slots follow hash order, entries inserted in hash order (a
/// sealed segment's event-id index is sorted by hash) fill the partitions front to
/// back instead of jumping around them: loading a store's footers at start streams
/// through memory rather than missing the cache on every entry.
struct EventIDTable {
    private(set) var partitions: [[UInt64]]
    private var partitionCounts: [Int]
    private(set) var count = 0

    static let seqBits: UInt64 = 40
    static let seqMask: UInt64 = (1 << 40) - 1
    static let partitionBits: UInt64 = 10
    static let partitionCount = 1 << Int(partitionBits)
    static let fingerprintBits: UInt64 = 24
    /// Linear probing stays short (about 3 probes for a hit, 13 for a miss) up to this load; past it a
    /// partition is rebuilt to ``grownLoad``.
    static let maximumLoad = 0.8
    static let grownLoad = 0.6
    /// A table sized for a known number of entries starts this full, so it takes some appends before
    /// partitions grow.
    static let startLoad = 0.7

    /// A table for `expectedCount` entries (it grows past them as needed).
    init(expectedCount: Int = 0) {
        let perPartition = Double(expectedCount) / Double(Self.partitionCount)
        let capacity = max(16, Int((perPartition / Self.startLoad).rounded(.up)))
        // The partitions share one zeroed buffer until each is first written.
        partitions = Array(repeating: [UInt64](repeating: 0, count: capacity), count: Self.partitionCount)
        partitionCounts = Array(repeating: 0, count: Self.partitionCount)
    }

    @inline(__always) static func partition(_ hash: UInt64) -> Int { Int(truncatingIfNeeded: hash >> (64 - partitionBits)) }

    /// The 24 bits below the partition bits.
    @inline(__always) static func fingerprint(_ hash: UInt64) -> UInt64 {
        (hash >> (64 - partitionBits - fingerprintBits)) & ((1 << fingerprintBits) - 1)
    }

    /// The first slot to probe: the fingerprint scaled into the partition (monotone in the hash).
    @inline(__always) static func home(fingerprint: UInt64, capacity: Int) -> Int {
        Int(truncatingIfNeeded: (fingerprint &* UInt64(capacity)) >> fingerprintBits)
    }

    /// Slots in all partitions.
    var capacity: Int { partitions.reduce(0) { $0 + $1.count } }

    var memoryBytes: Int { capacity * 8 }

    /// Adds (hash → seq). The table never removes entries.
    mutating func insert(hash: UInt64, seq: UInt64) {
        precondition(seq > 0 && seq <= Self.seqMask, "seq out of range for the event id table")
        let p = Self.partition(hash)
        if Double(partitionCounts[p] + 1) > Double(partitions[p].count) * Self.maximumLoad { grow(p, toHold: partitionCounts[p] + 1) }
        let fp = Self.fingerprint(hash)
        Self.place(fp << Self.seqBits | seq, fingerprint: fp, in: &partitions[p])
        partitionCounts[p] += 1
        count += 1
    }

    /// Adds many (hash → seq) entries; fastest when they come sorted by hash (a footer's event-id index): the
    /// entries of one partition go in together, and the first slots of every 16 are read before any is probed,
    /// so their cache misses overlap instead of queueing. Returns false, having added the entries before it,
    /// at a seq outside the table's range.
    @discardableResult
    mutating func insert(contentsOf entries: [(hash: UInt64, seq: UInt64)]) -> Bool {
        var touched: UInt64 = 0
        var start = 0
        while start < entries.count {
            // The run of entries in the same partition.
            let p = Self.partition(entries[start].hash)
            var end = start + 1
            while end < entries.count, Self.partition(entries[end].hash) == p { end += 1 }
            for k in start..<end where !(entries[k].seq > 0 && entries[k].seq <= Self.seqMask) {
                for j in start..<k { insert(hash: entries[j].hash, seq: entries[j].seq) }
                return false
            }
            while Double(partitionCounts[p] + end - start) > Double(partitions[p].count) * Self.maximumLoad { grow(p, toHold: partitionCounts[p] + end - start) }
            partitions[p].withUnsafeMutableBufferPointer { table in
                let capacity = table.count
                var batch = start
                while batch < end {
                    let batchEnd = min(batch + 16, end)
                    for k in batch..<batchEnd { touched &+= table[Self.home(fingerprint: Self.fingerprint(entries[k].hash), capacity: capacity)] }
                    for k in batch..<batchEnd {
                        let fp = Self.fingerprint(entries[k].hash)
                        var i = Self.home(fingerprint: fp, capacity: capacity)
                        while table[i] != 0 { i = i + 1 == capacity ? 0 : i + 1 }
                        table[i] = fp << Self.seqBits | entries[k].seq
                    }
                    batch = batchEnd
                }
            }
            partitionCounts[p] += end - start
            count += end - start
            start = end
        }
        lastTouched = touched
        return true
    }

    /// Keeps the reads of the batched first slots from being optimised away.
    private var lastTouched: UInt64 = 0

    @inline(__always)
    private static func place(_ slot: UInt64, fingerprint: UInt64, in partition: inout [UInt64]) {
        partition.withUnsafeMutableBufferPointer { table in
            let capacity = table.count
            var i = home(fingerprint: fingerprint, capacity: capacity)
            while table[i] != 0 { i = i + 1 == capacity ? 0 : i + 1 }
            table[i] = slot
        }
    }

    /// Rebuilds partition `p` from its own slots, sized to hold `entries` at ``grownLoad``.
    private mutating func grow(_ p: Int, toHold entries: Int) {
        let old = partitions[p]
        let capacity = max(16, Int((Double(entries) / Self.grownLoad).rounded(.up)))
        var grown = [UInt64](repeating: 0, count: capacity)
        for slot in old where slot != 0 {
            Self.place(slot, fingerprint: slot >> Self.seqBits, in: &grown)
        }
        partitions[p] = grown
    }

    /// For each hash, whether the table may hold it (an entry with the same partition and fingerprint):
    /// ``candidates(hash:_:)`` finds nothing for the others. The first slots of every 16 hashes are read
    /// before any is probed, so their cache misses overlap instead of queueing.
    func mayHold(_ hashes: [UInt64]) -> [Bool] {
        var result = [Bool](repeating: false, count: hashes.count)
        var first = InlineArray<16, UInt64>(repeating: 0)
        var batch = 0
        while batch < hashes.count {
            let batchEnd = min(batch + 16, hashes.count)
            for k in batch..<batchEnd {
                partitions[Self.partition(hashes[k])].withUnsafeBufferPointer { table in
                    first[k - batch] = table[Self.home(fingerprint: Self.fingerprint(hashes[k]), capacity: table.count)]
                }
            }
            for k in batch..<batchEnd where first[k - batch] != 0 {  // an empty first slot: not held
                candidates(hash: hashes[k]) { _ in
                    result[k] = true
                    return true
                }
            }
            batch = batchEnd
        }
        return result
    }

    /// Calls `body` with every seq whose entry has the same partition and fingerprint; stops when it returns true.
    func candidates(hash: UInt64, _ body: (UInt64) -> Bool) {
        let fp = Self.fingerprint(hash)
        partitions[Self.partition(hash)].withUnsafeBufferPointer { table in
            var i = Self.home(fingerprint: fp, capacity: table.count)
            while true {
                let slot = table[i]
                if slot == 0 { return }
                if slot >> Self.seqBits == fp, body(slot & Self.seqMask) { return }
                i = i + 1 == table.count ? 0 : i + 1
            }
        }
    }
}
