/// An in-memory open-addressing table from event-id hashes to seqs, used to
/// find duplicates on append and events by id without touching the disk.
///
/// Each 8-byte slot packs a 24-bit fingerprint of the hash with a 40-bit seq, so
/// 10 million events take about 100 MiB (the capacity is not rounded to a power
/// of two: slots are chosen by multiplying the hash into the range). A hit is only a candidate: the caller
/// reads the record and compares the event id itself.
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

    /// The first slot to probe: the hash's low 40 bits (the fingerprint is the high 24) scaled into the capacity.
    @inline(__always) func home(_ hash: UInt64) -> Int {
        Int(truncatingIfNeeded: (hash << 24).multipliedFullWidth(by: UInt64(slots.count)).high)
    }

    var capacity: Int { slots.count }
    var needsGrowth: Bool { Double(count + 1) > Double(slots.count) * Self.maximumLoad }

    /// Linear probing stays short (about 3 probes for a miss) up to this load.
    static let maximumLoad = 0.8

    @inline(__always) static func fingerprint(_ hash: UInt64) -> UInt64 { hash >> 40 }

    /// Adds (hash → seq). The table never removes entries.
    mutating func insert(hash: UInt64, seq: UInt64) {
        precondition(seq > 0 && seq <= Self.seqMask, "seq out of range for the event id table")
        let entry = Self.fingerprint(hash) << Self.seqBits | seq
        var i = home(hash)
        while slots[i] != 0 { i = i + 1 == slots.count ? 0 : i + 1 }
        slots[i] = entry
        count += 1
    }

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
