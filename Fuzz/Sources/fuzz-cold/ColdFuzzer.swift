// The cold archive readers: manifests (with and without a fixed checksum) and gzip members.
@_spi(Fuzzing) import LeadTrailStorage

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let total = FuzzEntryPoints.coldArchive(bytes, fixChecksums: false) &+ FuzzEntryPoints.coldArchive(bytes, fixChecksums: true)
    return total == Int.min ? 1 : 0
}
