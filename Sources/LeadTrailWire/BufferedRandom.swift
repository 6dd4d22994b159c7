#if canImport(Glibc)
import Glibc
#endif

/// A random number generator that draws from glibc's `arc4random_buf` (backed by the
/// kernel's CSPRNG) 4 KiB at a time.
///
/// `SystemRandomNumberGenerator` makes one system call per `next()`; an event id
/// draws about twenty values, so a batch of server-assigned ids would cost tens of
/// thousands of system calls. This generator gives the same quality of randomness
/// with one library call per 512 values. Not thread-safe: use one per batch.
public struct BufferedRandom: RandomNumberGenerator {
    private var buffer = [UInt64](repeating: 0, count: 512)
    private var index = 512

    public init() {}

    public mutating func next() -> UInt64 {
        if index == buffer.count { refill() }
        defer { index += 1 }
        return buffer[index]
    }

    private mutating func refill() {
        buffer.withUnsafeMutableBytes { raw in
            if let base = raw.baseAddress { arc4random_buf(base, raw.count) }
        }
        index = 0
    }
}
