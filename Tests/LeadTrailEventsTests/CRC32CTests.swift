import Testing
@testable import LeadTrailEvents

@Suite struct CRC32CTests {
    @Test func knownVectors() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
    }

    @Test func hardwareAndPortableAgreeOnEveryLengthAndAlignment() {
        var rng = SystemRandomNumberGenerator()
        let data = (0..<4200).map { _ in UInt8.random(in: 0...255, using: &rng) }
        data.withUnsafeBytes { all in
            for alignment in 0..<8 {
                for length in stride(from: 0, through: 4096, by: 7) {
                    let slice = UnsafeRawBufferPointer(rebasing: all[alignment..<(alignment + length)])
                    #expect(CRC32C.checksum(slice) == CRC32C.portableChecksum(slice))
                }
            }
        }
    }

    /// Long buffers take the three-stream paths (runs of 3 × 256 and 3 × 8192 bytes, then the rest).
    @Test func hardwareAndPortableAgreeOnLongBuffers() {
        var rng = SystemRandomNumberGenerator()
        let data = (0..<80_000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        data.withUnsafeBytes { all in
            for length in [767, 768, 769, 1_300, 24_575, 24_576, 24_577, 25_344, 49_152 + 800, 79_993] {
                for alignment in [0, 3] {
                    let slice = UnsafeRawBufferPointer(rebasing: all[alignment..<(alignment + length)])
                    #expect(CRC32C.checksum(slice) == CRC32C.portableChecksum(slice), "length \(length)")
                    #expect(CRC32C.checksum(slice, extending: 0x1234_5678) == CRC32C.portableChecksum(slice, extending: 0x1234_5678))
                }
            }
        }
    }

    /// Buffers of 256 bytes and more are folded with VPCLMULQDQ where the CPU has it: 256 bytes a step, then 64,
    /// then the last 16-byte lane and the bytes after it with the crc32 instruction. Every length from 250 to
    /// 1,100 bytes (each step's edges), longer ones up to a megabyte, odd alignments and starting values: the
    /// three paths agree.
    @Test func foldingAgreesWithTheCRC32InstructionAndTheTable() {
        var rng = SystemRandomNumberGenerator()
        let data = (0..<(1 << 20) + 300).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let starts: [UInt32] = [0, 0xFFFF_FFFF, 0x1234_5678]
        data.withUnsafeBytes { all in
            var lengths = Array(250...1_100)
            lengths += [4_095, 4_096, 4_097, 65_536 + 63, 1_300_000 % (1 << 20), 1 << 20]
            for (index, length) in lengths.enumerated() {
                let alignment = index % 13
                let slice = UnsafeRawBufferPointer(rebasing: all[alignment..<(alignment + length)])
                let start = starts[index % starts.count]
                let folded = CRC32C.checksum(slice, extending: start)
                #expect(folded == CRC32C.crc32InstructionChecksum(slice, extending: start), "length \(length)")
                if length <= 4_097 || length == 1 << 20 {
                    #expect(folded == CRC32C.portableChecksum(slice, extending: start), "length \(length)")
                }
            }
        }
        // A single flipped bit anywhere changes the folded CRC.
        var bytes = Array(data[0..<2_000])
        let whole = CRC32C.checksum(bytes)
        for bit in stride(from: 0, to: bytes.count * 8, by: 97) {
            bytes[bit / 8] ^= 1 << (bit % 8)
            #expect(CRC32C.checksum(bytes) != whole, "bit \(bit)")
            bytes[bit / 8] ^= 1 << (bit % 8)
        }
    }

    @Test func extendingEqualsWhole() {
        let a = Array("hello, ".utf8), b = Array("world".utf8)
        #expect(CRC32C.checksum(b, extending: CRC32C.checksum(a)) == CRC32C.checksum(a + b))
    }

    @Test func maskRoundTrips() {
        for value: UInt32 in [0, 1, 0xE306_9283, .max] {
            #expect(CRC32C.unmask(CRC32C.mask(value)) == value)
            #expect(CRC32C.mask(value) != value)
        }
    }
}
