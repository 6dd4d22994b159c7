/// An in-memory open-addressing table from event-id hashes to seqs, used to
/// find duplicates on append and events by id without touching the disk.
///
/// Each 8-byte slot packs a 24-bit fingerprint of the hash with a 40-bit seq, so
/// 10 million events take about 128 MiB. A hit is only a candidate: the caller
/// reads the record and compares the event id itself.
struct EventIDTable {
    private(set) var slots: [UInt64]
    private(set) var count = 0
    private var mask: Int

    static let seqBits: UInt64 = 40
    static let seqMask: UInt64 = (1 << 40) - 1

    init(minimumCapacity: Int = 1 << 16) {
        var capacity = 1 << 16
        while Double(capacity) * Self.maximumLoad < Double(minimumCapacity) { capacity <<= 1 }
        slots = [UInt64](repeating: 0, count: capacity)
        mask = capacity - 1
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
        var i = Int(truncatingIfNeeded: hash) & mask
        while slots[i] != 0 { i = (i + 1) & mask }
        slots[i] = entry
        count += 1
    }

    /// Calls `body` with every seq whose entry has the same fingerprint; stops when it returns true.
    func candidates(hash: UInt64, _ body: (UInt64) -> Bool) {
        let fp = Self.fingerprint(hash)
        var i = Int(truncatingIfNeeded: hash) & mask
        while true {
            let slot = slots[i]
            if slot == 0 { return }
            if slot >> Self.seqBits == fp, body(slot & Self.seqMask) { return }
            i = (i + 1) & mask
        }
    }

    var memoryBytes: Int { slots.count * 8 }
}
