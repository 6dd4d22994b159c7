// The frame decoder (arbitrary byte streams, split at arbitrary points) and, for every
// frame it yields, the request envelope and body parsers the daemon runs on it.
import LeadTrailWire

let parser = RequestParser(maxEventBytes: 64 << 10, maxBatchEvents: 100)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    // The first byte chooses how the stream is cut into reads.
    let step = 1 + Int(bytes.first ?? 0) % 97
    var decoder = FrameDecoder(maximumLength: 1 << 20)
    var offset = 0
    var frames = 0
    decoding: while offset < bytes.count {
        decoder.append(bytes[offset..<min(bytes.count, offset + step)])
        offset += step
        while true {
            do {
                guard let frame = try decoder.next() else { break }
                frames += 1
                let envelope = RequestEnvelope.parse(frame)
                _ = try? parser.parse(envelope, now: 1_700_000_000_000, newEventID: { "evt_fuzz" })
            } catch {
                break decoding
            }
        }
    }
    // A whole input as one frame body, too.
    _ = try? parser.parse(frame: bytes, now: 1_700_000_000_000)
    return frames > Int.max - 1 ? 1 : 0
}
