/// Server-assigned event identifiers: `evt_` followed by 20 base62 characters
/// (about 119 bits of randomness from the system's CSPRNG).
public enum EventID {
    static let alphabet: [UInt8] = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)

    /// A fresh random identifier.
    public static func generate() -> String {
        var rng = SystemRandomNumberGenerator()
        return generate(using: &rng)
    }

    /// A fresh identifier drawn from `rng` (tests pass a seeded generator).
    public static func generate<R: RandomNumberGenerator>(using rng: inout R) -> String {
        var bytes: [UInt8] = Array("evt_".utf8)
        bytes.reserveCapacity(24)
        for _ in 0..<20 {
            // 62 * 4 = 248: rejection sampling keeps the distribution uniform.
            while true {
                let r = UInt8.random(in: 0...255, using: &rng)
                if r < 248 {
                    bytes.append(alphabet[Int(r % 62)])
                    break
                }
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Whether `value` is a valid event id: 1-64 characters of `[A-Za-z0-9_-]`.
    public static func isValid<Bytes: Collection>(_ value: Bytes) -> Bool where Bytes.Element == UInt8 {
        guard !value.isEmpty, value.count <= 64 else { return false }
        return value.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x5F || c == 0x2D
        }
    }
}
