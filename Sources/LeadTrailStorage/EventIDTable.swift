/// An in-memory open-addressing table from event-id hashes to seqs, used to
/// find duplicates on append and events by id without touching the disk.
///
/// Each 8-byte slot packs a 24-bit fingerprint of the hash (its low 24 bits) with
/// a 40-bit seq, so 10 million events take about 100 MiB (the capacity is not
/// rounded to a power of two: a hash's first slot is the hash scaled into the
/// range, so it grows with the hash). A hit is only a candidate: the caller
/// reads the record and compares the event id itself.
///
/// Because first slots follow hash order, entries inserted in hash order (a
/// sealed segment's event-id index is sorted by hash) fill the table front to
/// back instead of jumping around it: loading a store's footers at start streams
/// through memory rather than missing the cache on every entry.
struct EventIDTable {
    private(set) var slots: [UInt64]
    private(set) var count = 0

    static let seqBits: UInt64 = 40
    static let seqMask: UInt64 = (1 << 40) - 1

    /// A table that holds `minimumCapacity` entries before it needs to grow.
    init(minimumCapacity: Int = 1 << 16) {
        let capacity = max(1 << 16, Int((Double(minimumCapacity) / Self.maximumLoad).rounded(.up)))
        slots = [UInt64](repeating: 0, count: capacity)
    }

    /// The table for when this one is full: room for twice the entries.
    func grown() -> EventIDTable { EventIDTable(minimumCapacity: max(count, 1) * 2) }

    /// The first slot to probe: the hash scaled into the capacity (monotone in the hash).
    @inline(__always) func home(_ hash: UInt64) -> Int {
        Self.home(hash, capacity: slots.count)
    }

    @inline(__always) static func home(_ hash: UInt64, capacity: Int) -> Int {
        Int(truncatingIfNeeded: hash.multipliedFullWidth(by: UInt64(capacity)).high)
    }

    var capacity: Int { slots.count }
    var needsGrowth: Bool { Double(count + 1) > Double(slots.count) * Self.maximumLoad }
    /// Past this load a bigger table is built in the background, so it is ready before ``needsGrowth``.
    var shouldStartGrowing: Bool { Double(count) > Double(slots.count) * Self.backgroundGrowthLoad }
    static let backgroundGrowthLoad = 0.6

    /// Linear probing stays short (about 3 probes for a miss) up to this load.
    static let maximumLoad = 0.8

    /// The low 24 bits: the first slot comes from the high bits, so the two say different things about the hash.
    @inline(__always) static func fingerprint(_ hash: UInt64) -> UInt64 { hash & 0xFF_FFFF }

    /// Adds (hash → seq). The table never removes entries.
    mutating func insert(hash: UInt64, seq: UInt64) {
        precondition(seq > 0 && seq <= Self.seqMask, "seq out of range for the event id table")
        let entry = Self.fingerprint(hash) << Self.seqBits | seq
        var i = home(hash)
        while slots[i] != 0 { i = i + 1 == slots.count ? 0 : i + 1 }
        slots[i] = entry
        count += 1
    }

    /// Adds many (hash → seq) entries, fastest when they come sorted by hash (a footer's event-id index):
    /// one pass with no copy-on-write checks per entry, and the first slots of every 16 entries are read
    /// before any is probed, so their cache misses overlap instead of queueing. Returns false (nothing added
    /// past that point) when a seq is out of the table's range or the table is full; callers size the table first.
    @discardableResult
    mutating func insert(contentsOf entries: [(hash: UInt64, seq: UInt64)]) -> Bool {
        var added = 0
        var touched: UInt64 = 0
        let already = count
        let ok = slots.withUnsafeMutableBufferPointer { table -> Bool in
            entries.withUnsafeBufferPointer { e -> Bool in
                let capacity = table.count
                var start = 0
                while start < e.count {
                    let end = min(start + 16, e.count)
                    for k in start..<end { touched &+= table[Self.home(e[k].hash, capacity: capacity)] }
                    for k in start..<end {
                        let entry = e[k]
                        guard entry.seq > 0, entry.seq <= Self.seqMask, already + added + 1 < capacity else { return false }
                        var i = Self.home(entry.hash, capacity: capacity)
                        while table[i] != 0 { i = i + 1 == capacity ? 0 : i + 1 }
                        table[i] = Self.fingerprint(entry.hash) << Self.seqBits | entry.seq
                        added += 1
                    }
                    start = end
                }
                return true
            }
        }
        count += added
        lastTouched = touched
        return ok
    }

    /// Keeps the reads of the batched first slots from being optimised away.
    private var lastTouched: UInt64 = 0

    /// Calls `body` with every seq whose entry has the same fingerprint; stops when it returns true.
    func candidates(hash: UInt64, _ body: (UInt64) -> Bool) {
        let fp = Self.fingerprint(hash)
        var i = home(hash)
        while true {
            let slot = slots[i]
            if slot == 0 { return }
            if slot >> Self.seqBits == fp, body(slot & Self.seqMask) { return }
            i = i + 1 == slots.count ? 0 : i + 1
        }
    }

    var memoryBytes: Int { slots.count * 8 }
}
