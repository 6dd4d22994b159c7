// The segment reader: a hot segment file through verify's check (sealed and active),
// the record reader over raw records, and the type index reader; each with and without
// fixed checksums.
@_spi(Fuzzing) import LeadTrailStorage

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    var total = 0
    for fix in [false, true] {
        total &+= FuzzEntryPoints.segmentFile(bytes, sealed: true, fixChecksums: fix)
        total &+= FuzzEntryPoints.segmentFile(bytes, sealed: false, fixChecksums: fix)
        total &+= FuzzEntryPoints.records(Array(bytes.dropFirst(min(64, bytes.count))), fixChecksums: fix)
        total &+= FuzzEntryPoints.typeIndex(bytes, fixChecksums: fix)
    }
    total &+= FuzzEntryPoints.checkpoint(bytes)
    return total == Int.min ? 1 : 0
}
