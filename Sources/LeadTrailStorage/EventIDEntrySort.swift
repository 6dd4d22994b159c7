/// Sorts a segment's (event-id hash, seq) entries into the order its footer stores them: by hash, ties by seq.
///
/// The hashes are spread evenly, so one counting pass on their top bits leaves about four entries per bucket
/// (one per bucket took longer: the bucket counts no longer fit the CPU's caches), and each bucket is then put in
/// order by insertion: two passes over the entries instead of a comparison sort's seventeen. 103,000 entries (a
/// full segment) take about 2-4 ms this way against 10 with the standard library's sort, time that a seal on two
/// cores takes from the appends. A bucket that holds many entries (ids made to share the top bits of their
/// hashes) is sorted with the standard library's sort, so no input makes it quadratic.
enum EventIDEntrySort {
    typealias Entry = (hash: UInt64, seq: UInt64)

    /// Buckets larger than this are sorted by the standard library rather than by insertion.
    static let insertionSortLimit = 32

    static func inOrder(_ a: Entry, _ b: Entry) -> Bool {
        a.hash < b.hash || (a.hash == b.hash && a.seq < b.seq)
    }

    /// `entries` by hash, ties by seq.
    static func sortedByHash(_ entries: [Entry]) -> [Entry] {
        let count = entries.count
        guard count > insertionSortLimit else { return entries.sorted(by: inOrder) }
        var bits = 1
        while 4 << bits < count && bits < 24 { bits += 1 }
        let shift = UInt64(64 - bits)
        let bucketCount = 1 << bits
        // starts[b] is where bucket b begins in the output; starts[bucketCount] == count.
        var starts = [Int](repeating: 0, count: bucketCount + 1)
        var sorted = [Entry](repeating: (0, 0), count: count)
        entries.withUnsafeBufferPointer { entries in
            starts.withUnsafeMutableBufferPointer { starts in
                for entry in entries { starts[Int(truncatingIfNeeded: entry.hash >> shift) + 1] += 1 }
                for bucket in 0..<bucketCount { starts[bucket + 1] += starts[bucket] }
                var next = Array(starts[0..<bucketCount])
                sorted.withUnsafeMutableBufferPointer { sorted in
                    next.withUnsafeMutableBufferPointer { next in
                        for entry in entries {
                            let bucket = Int(truncatingIfNeeded: entry.hash >> shift)
                            sorted[next[bucket]] = entry
                            next[bucket] += 1
                        }
                    }
                    for bucket in 0..<bucketCount {
                        let range = starts[bucket]..<starts[bucket + 1]
                        if range.count <= 1 { continue }
                        if range.count > insertionSortLimit {
                            sorted[range].sort(by: inOrder)
                            continue
                        }
                        for i in (range.lowerBound + 1)..<range.upperBound {
                            let entry = sorted[i]
                            var j = i
                            while j > range.lowerBound && inOrder(entry, sorted[j - 1]) {
                                sorted[j] = sorted[j - 1]
                                j -= 1
                            }
                            sorted[j] = entry
                        }
                    }
                }
            }
        }
        return sorted
    }
}
