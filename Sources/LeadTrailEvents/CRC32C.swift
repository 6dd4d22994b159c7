import CCRC32C

/// CRC32C (Castagnoli), computed with the CPU's instructions where it has them: VPCLMULQDQ folding (AVX-512)
/// for buffers of 256 bytes and more, the SSE4.2 crc32 instruction otherwise, else a table.
///
/// Stored checksums are *masked* as LevelDB does, so that a CRC of bytes that
/// themselves contain CRCs does not degenerate.
public enum CRC32C {
    /// The CRC32C of `bytes`, extending `crc` (0 to start).
    @inlinable
    public static func checksum(_ bytes: [UInt8], extending crc: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBytes { leadtrail_crc32c_extend(crc, $0.baseAddress, $0.count) }
    }

    /// The CRC32C of a raw buffer.
    @inlinable
    public static func checksum(_ buffer: UnsafeRawBufferPointer, extending crc: UInt32 = 0) -> UInt32 {
        leadtrail_crc32c_extend(crc, buffer.baseAddress, buffer.count)
    }

    /// The portable (table-driven) path, for tests that compare it with the hardware one.
    public static func portableChecksum(_ buffer: UnsafeRawBufferPointer, extending crc: UInt32 = 0) -> UInt32 {
        leadtrail_crc32c_extend_portable(crc, buffer.baseAddress, buffer.count)
    }

    /// The crc32 instruction's path alone, for tests that compare it with folding.
    public static func crc32InstructionChecksum(_ buffer: UnsafeRawBufferPointer, extending crc: UInt32 = 0) -> UInt32 {
        leadtrail_crc32c_extend_crc32_instruction(crc, buffer.baseAddress, buffer.count)
    }

    /// Whether the SSE4.2 instruction is in use.
    public static var usesHardware: Bool { leadtrail_crc32c_hardware() != 0 }

    /// Whether long buffers are folded with VPCLMULQDQ.
    public static var usesFolding: Bool { leadtrail_crc32c_hardware() == 2 }

    private static let maskDelta: UInt32 = 0xa282_ead8

    /// LevelDB's mask: rotate right by 15 bits and add a constant.
    @inlinable
    public static func mask(_ crc: UInt32) -> UInt32 {
        ((crc >> 15) | (crc << 17)) &+ 0xa282_ead8
    }

    /// The inverse of ``mask(_:)``.
    @inlinable
    public static func unmask(_ masked: UInt32) -> UInt32 {
        let rot = masked &- 0xa282_ead8
        return (rot >> 17) | (rot << 15)
    }
}
