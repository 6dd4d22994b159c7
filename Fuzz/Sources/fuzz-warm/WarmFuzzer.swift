// The warm block reader: trailer, footer, block directory, LZ4 blocks, and the hot file rebuilt from them.
@_spi(Fuzzing) import LeadTrailStorage

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let total = FuzzEntryPoints.warmFile(bytes, fixChecksums: false) &+ FuzzEntryPoints.warmFile(bytes, fixChecksums: true)
    return total == Int.min ? 1 : 0
}
