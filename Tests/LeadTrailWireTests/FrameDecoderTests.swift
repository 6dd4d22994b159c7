import LeadTrailWire
import Testing
import LeadTrailTestSupport

func sampleBodies() -> [[UInt8]] {
    var bodies: [[UInt8]] = [
        Array(#"{"op":"ping"}"#.utf8),
        [],
        Array(#"{"op":"append","events":[{"type":"a.b","lead_id":"L1"}]}"#.utf8),
        Array(repeating: UInt8(ascii: "x"), count: 70_000),
    ]
    for n in [1, 3, 255, 256, 257, 65_535, 65_536] {
        bodies.append((0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31) })
    }
    return bodies
}

func stream(_ bodies: [[UInt8]]) -> [UInt8] {
    bodies.flatMap { Frame.encode($0) }
}

@Suite struct FrameDecoderTests {
    @Test func encodesBigEndianLength() {
        #expect(Frame.encode([1, 2, 3]) == [0, 0, 0, 3, 1, 2, 3])
        #expect(Frame.readHeader([0x01, 0x02, 0x03, 0x04]) == 0x0102_0304)
    }

    @Test func dripFedOneByteAtATime() throws {
        let bodies = sampleBodies()
        var decoder = FrameDecoder(maximumLength: 1 << 20)
        var out: [[UInt8]] = []
        for byte in stream(bodies) {
            decoder.append(CollectionOfOne(byte))
            while let frame = try decoder.next() { out.append(frame) }
        }
        #expect(out == bodies)
        #expect(decoder.bufferedByteCount == 0)
        #expect(!decoder.hasPartialFrame)
    }

    @Test(arguments: [1, 2, 3, 4, 5, 7, 13, 64, 1000, 4096, 65_537])
    func fixedChunkSizes(_ chunk: Int) throws {
        let bodies = sampleBodies()
        let bytes = stream(bodies)
        var decoder = FrameDecoder()
        var out: [[UInt8]] = []
        var i = 0
        while i < bytes.count {
            let end = min(bytes.count, i + chunk)
            decoder.append(bytes[i..<end])
            while let frame = try decoder.next() { out.append(frame) }
            i = end
        }
        #expect(out == bodies)
    }

    @Test(arguments: [1, 2, 3, 42, 99])
    func randomChunkSizes(_ seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        let bodies = sampleBodies()
        let bytes = stream(bodies)
        var decoder = FrameDecoder()
        var out: [[UInt8]] = []
        var i = 0
        while i < bytes.count {
            let end = min(bytes.count, i + Int.random(in: 1...9000, using: &rng))
            decoder.append(bytes[i..<end])
            // Sometimes leave frames in the decoder across appends, as a paused connection does.
            if Bool.random(using: &rng) {
                while let frame = try decoder.next() { out.append(frame) }
            }
            i = end
        }
        while let frame = try decoder.next() { out.append(frame) }
        #expect(out == bodies)
    }

    @Test func oversizedLengthIsRefusedBeforeBuffering() throws {
        var decoder = FrameDecoder(maximumLength: 1024)
        // Header declares 1 GiB; follow it with lots of body bytes.
        decoder.append([0x40, 0x00, 0x00, 0x00])
        decoder.append([UInt8](repeating: 7, count: 100_000))
        #expect(decoder.bufferedByteCount <= 4)
        #expect(decoder.hasFailed)
        #expect(throws: WireError.self) { try decoder.next() }
        do {
            _ = try decoder.next()
            Issue.record("expected frame_too_large")
        } catch {
            #expect(error.code == .frameTooLarge)
            #expect(error.closesConnection)
        }
        // Further input is dropped, never buffered.
        decoder.append([UInt8](repeating: 1, count: 10_000))
        #expect(decoder.bufferedByteCount == 0)
    }

    @Test func oversizedHeaderInTheSameChunkIsCheckedFirst() {
        var decoder = FrameDecoder(maximumLength: 16)
        var bytes: [UInt8] = [0, 0, 0, 17]
        bytes += [UInt8](repeating: 0, count: 17)
        decoder.append(bytes)
        #expect(decoder.bufferedByteCount == 4)
        #expect(throws: WireError.self) { try decoder.next() }
    }

    @Test func frameAtExactlyTheMaximumIsAccepted() throws {
        var decoder = FrameDecoder(maximumLength: 16)
        decoder.append(Frame.encode([UInt8](repeating: 9, count: 16)))
        #expect(try decoder.next() == [UInt8](repeating: 9, count: 16))
    }

    @Test func oversizedFrameAfterAGoodOneStillYieldsTheGoodOne() throws {
        var decoder = FrameDecoder(maximumLength: 8)
        decoder.append(Frame.encode([1, 2]) + [0, 0, 1, 0])
        #expect(try decoder.next() == [1, 2])
        #expect(throws: WireError.self) { try decoder.next() }
    }

    /// A large frame is received straight into its own array once its header is read; what follows it
    /// (a small frame, then an oversized header) is handled as before: the oversized one is refused
    /// after the frames before it are returned.
    @Test func largeFrameReceivedDirectlyThenOversizedHeader() throws {
        let large = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        var decoder = FrameDecoder(maximumLength: 300_000)
        let bytes = Frame.encode(large)
        decoder.append(bytes[0..<1000])
        #expect(try decoder.next() == nil)  // header read: the body now fills its own array
        #expect(decoder.bufferedByteCount == 1000)
        #expect(decoder.hasPartialFrame)
        decoder.append(bytes[1000..<150_000])
        #expect(try decoder.next() == nil)
        // The rest of the body, a small frame, and an oversized header with bytes after it, in one chunk.
        decoder.append(Array(bytes[150_000...]) + Frame.encode([5]) + [0x7F, 0, 0, 0] + [UInt8](repeating: 1, count: 500))
        #expect(try decoder.next() == large)
        #expect(try decoder.next() == [5])
        #expect(decoder.hasFailed)
        #expect(throws: WireError.self) { try decoder.next() }
    }
}
