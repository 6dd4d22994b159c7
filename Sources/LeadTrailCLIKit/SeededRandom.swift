/// A small, fast, seedable random number generator (SplitMix64).
///
/// The system generator cannot be seeded; the event generator needs the same
/// output for the same seed on every platform and Swift version, so it uses
/// this one and draws every value through the helpers below (never through
/// standard-library methods whose algorithm may change between releases).
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// A generator whose whole sequence is fixed by `seed`.
    public init(seed: UInt64) {
        self.state = seed
    }

    /// A generator for the `index`-th independent stream of `seed`.
    public init(seed: UInt64, stream index: UInt64) {
        var mixer = SeededRandom(seed: seed ^ (index &* 0xD1B5_4A32_D192_ED03))
        self.state = mixer.next() ^ index
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform integer in `range` (modulo bias is negligible for the small ranges used here).
    public mutating func int(_ range: ClosedRange<Int>) -> Int {
        let span = UInt64(range.upperBound - range.lowerBound) + 1
        return range.lowerBound + Int(next() % span)
    }

    /// A uniform double in [0, 1), from 53 random bits.
    public mutating func unit() -> Double {
        Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// `true` with probability `p`.
    public mutating func chance(_ p: Double) -> Bool {
        unit() < p
    }

    /// One element of a non-empty array.
    public mutating func pick<T>(_ items: [T]) -> T {
        items[int(0...(items.count - 1))]
    }

    /// One element chosen by weight (weights need not sum to 1).
    public mutating func weighted<T>(_ items: [(T, Double)]) -> T {
        let total = items.reduce(0) { $0 + $1.1 }
        var r = unit() * total
        for (item, weight) in items {
            if r < weight { return item }
            r -= weight
        }
        return items[items.count - 1].0
    }

    /// An exponentially distributed value with the given mean.
    public mutating func exponential(mean: Double) -> Double {
        let u = max(unit(), 1e-12)
        return -mean * _log(u)
    }

    /// A log-normal-ish duration around `median` ms, at least `minimum`.
    public mutating func duration(median: Double, spread: Double = 0.5, minimum: Int = 1) -> Int {
        // Sum of uniforms approximates a normal; exponentiate for a right-skewed latency.
        let normal = (unit() + unit() + unit() + unit() - 2.0) * 1.7
        return max(minimum, Int((median * _exp(normal * spread)).rounded()))
    }

    /// `count` base62 characters.
    public mutating func base62(_ count: Int) -> String {
        let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(count)
        for _ in 0..<count { out.append(alphabet[Int(next() % 62)]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// `count` lowercase hexadecimal digits.
    public mutating func hex(_ count: Int) -> String {
        let alphabet = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for _ in 0..<count { out.append(alphabet[Int(next() & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// `count` decimal digits.
    public mutating func digits(_ count: Int) -> String {
        var out = ""
        for _ in 0..<count { out.append(Character(Unicode.Scalar(UInt8(0x30 + next() % 10)))) }
        return out
    }
}

// libm's exp and log: correctly rounded in practice on glibc and Darwin for these inputs,
// and results only feed rounded millisecond and cent values.
@inline(__always) private func _exp(_ x: Double) -> Double { exp(x) }
@inline(__always) private func _log(_ x: Double) -> Double { log(x) }

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
