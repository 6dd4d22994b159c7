/// A 64-bit hash that is the same in every process and on every run.
///
/// Used for persisted indexes (lead and event-id fingerprints), so it must never
/// change: it is FNV-1a over the bytes followed by the SplitMix64 finaliser.
/// (Swift's `Hasher` is seeded per process and must not be used on disk.)
public enum StableHash {
    @inlinable
    public static func hash64(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            h ^= UInt64(byte)
            h = h &* 0x0000_0100_0000_01b3
        }
        return finalize(h)
    }

    @inlinable
    public static func hash64<Bytes: Sequence>(_ bytes: Bytes) -> UInt64 where Bytes.Element == UInt8 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            h ^= UInt64(byte)
            h = h &* 0x0000_0100_0000_01b3
        }
        return finalize(h)
    }

    @inlinable
    public static func hash64(_ string: String) -> UInt64 {
        hash64(string.utf8)
    }

    /// SplitMix64's finaliser: spreads every input bit over the whole word.
    @inlinable
    public static func finalize(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
