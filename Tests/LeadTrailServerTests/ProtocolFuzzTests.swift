import Foundation
import LeadTrailClient
import LeadTrailWire
import Testing

/// A protocol fuzzer against a live in-process daemon: random bodies, mutated valid
/// requests (bit flips, byte edits, cuts, splices) in well-formed frames, and raw byte
/// streams with wrong or oversized length prefixes. Every well-formed frame gets a
/// well-formed answer in order, the daemon keeps serving others, and a well-behaved
/// producer beside it keeps every acknowledgement. Short: 4,000 frames; long: 200,000
/// (`LEADTRAIL_PROTOCOL_FUZZ_FRAMES` overrides).
@Suite struct ProtocolFuzzTests {
    static let errorCodes: Set<String> = [
        "bad_frame", "frame_too_large", "unknown_op", "bad_request", "invalid_event", "batch_too_large", "not_found",
        "forbidden", "unavailable", "internal",
    ]

    static let seeds: [String] = [
        #"{"op":"ping","id":1}"#,
        #"{"op":"append","id":"a","events":[{"type":"source.submitted","lead_id":"F1","event_id":"fz-seed-1","timestamp":"2024-01-15T14:30:45.234Z","metadata":{"cost":1.5,"tags":["a","b"]}}]}"#,
        #"{"op":"append","events":[{"type":"recipient.delivered","lead_id":"F2","outcome":"success","duration_ms":12,"lead_snapshot":{"email":"a@b.c","phone":"5551234567"}},{"type":"x.y","lead_id":"F3"}]}"#,
        #"{"op":"get","event_id":"fz-seed-1"}"#,
        #"{"op":"timeline","lead_id":"F1"}"#,
        #"{"op":"scan","types":["source.*"],"from":"2024-01-01T00:00:00Z","to":"2025-01-01T00:00:00Z","limit":5,"after_seq":0}"#,
        #"{"op":"scan","lead_id":"F2","outcomes":["success"],"limit":3}"#,
        #"{"op":"stats"}"#,
        #"{"op":"verify"}"#,
        #"{"op":"rotate"}"#,
    ]

    static func mutate(_ seed: [UInt8], _ rng: inout some RandomNumberGenerator) -> [UInt8] {
        var bytes = seed
        for _ in 0..<Int.random(in: 1...4, using: &rng) {
            guard !bytes.isEmpty else { bytes = [UInt8.random(in: 0...255, using: &rng)]; continue }
            let at = Int.random(in: 0..<bytes.count, using: &rng)
            switch Int.random(in: 0..<8, using: &rng) {
            case 0: bytes[at] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
            case 1: bytes[at] = UInt8.random(in: 0...255, using: &rng)
            case 2: bytes.insert(UInt8.random(in: 0...255, using: &rng), at: at)
            case 3: bytes.remove(at: at)
            case 4: bytes = Array(bytes[0..<at])
            case 5: bytes.insert(contentsOf: Array(#"{"a":[1,{"b":null}],"c":"\ud800"}"#.utf8), at: at)
            case 6:
                // Splice a piece of another seed.
                let other = Array(seeds.randomElement(using: &rng)!.utf8)
                let from = Int.random(in: 0..<other.count, using: &rng)
                bytes.insert(contentsOf: other[from..<min(other.count, from + Int.random(in: 1...40, using: &rng))], at: at)
            default:
                let interesting: [[UInt8]] = [Array("-1".utf8), Array("1e999".utf8), Array("18446744073709551616".utf8), Array("\"\"".utf8), Array("null".utf8), Array("[]".utf8), [0], [0xC0, 0x80], [0xFF]]
                bytes.insert(contentsOf: interesting.randomElement(using: &rng)!, at: at)
            }
        }
        return bytes
    }

    @Test(.timeLimit(.minutes(60)))
    func mutatedAndRandomFramesNeverStopTheDaemon() async throws {
        let daemon = try await TestDaemon.start { $0.maxFrameBytes = 1 << 20; $0.stallTimeoutSeconds = 2 }
        let frames = Reliability.count("LEADTRAIL_PROTOCOL_FUZZ_FRAMES", short: 4_000, long: 200_000)
        let socketPath = daemon.socketPath
        let outcome: (answered: Int, raw: Int, acked: Int) = try await onThread {
            var rng = SystemRandomNumberGenerator()
            var answered = 0, raw = 0
            var acknowledged: [String: Int] = [:]
            var connection = try LeadTrailConnection(socketPath: socketPath, timeoutSeconds: 30)
            var sent = 0
            while sent < frames {
                sent += 1
                if sent % 10 == 0 {
                    // Raw bytes on a connection of their own: any length prefix, any body, cut anywhere.
                    raw += 1
                    let junk = try LeadTrailConnection(socketPath: socketPath, timeoutSeconds: 5)
                    var bytes = (0..<Int.random(in: 0..<64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                    if Bool.random(using: &rng) { bytes = [0x7F, 0xFF, 0xFF, 0xFF] + bytes }  // 2 GiB announced
                    try? junk.writeBytes(bytes)
                    junk.close()
                    continue
                }
                if sent % 50 == 5 {
                    // A well-behaved producer in between: always answered, always kept.
                    let id = "fz-good-\(sent)"
                    let check = try LeadTrailConnection(socketPath: socketPath, timeoutSeconds: 30)
                    let response = try check.request(["op": "append", "events": [["type": "source.submitted", "lead_id": "G", "event_id": id]]])
                    if let seq = int((response["results"] as? [[String: Any]])?.first?["seq"]) { acknowledged[id] = seq }
                    check.close()
                }
                let body: [UInt8]
                if Int.random(in: 0..<5, using: &rng) == 0 {
                    body = (0..<Int.random(in: 0..<200, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                } else {
                    body = Self.mutate(Array(Self.seeds.randomElement(using: &rng)!.utf8), &rng)
                }
                // The fuzz frame, then a ping with a unique id: every frame up to the ping's answer belongs to the fuzz frame.
                let marker = "marker-\(sent)"
                try connection.sendRaw(body)
                try connection.send(["op": "ping", "id": marker])
                var sawMarker = false
                var closed = false
                for _ in 0..<10_000 {
                    let response: [String: Any]
                    do {
                        response = try connection.receive()
                    } catch {
                        closed = true
                        break
                    }
                    guard let ok = response["ok"] as? Bool else {
                        Issue.record("an answer without ok: \(response) to \(String(decoding: body, as: UTF8.self))")
                        break
                    }
                    if !ok {
                        let code = errorCode(response) ?? ""
                        #expect(Self.errorCodes.contains(code), "unknown error code \(code)")
                        if code == "frame_too_large" { closed = true }
                    }
                    if response["id"] as? String == marker {
                        sawMarker = true
                        break
                    }
                }
                answered += 1
                if !sawMarker {
                    // Only an oversized frame may close the connection; anything else must keep it usable.
                    #expect(closed, "no answer to the ping after \(String(decoding: body, as: UTF8.self))")
                    connection.close()
                    connection = try LeadTrailConnection(socketPath: socketPath, timeoutSeconds: 30)
                }
            }
            connection.close()

            // Still serving; nothing acknowledged was lost.
            let check = try LeadTrailConnection(socketPath: socketPath, timeoutSeconds: 30)
            #expect(try check.request(["op": "ping"])["ok"] as? Bool == true)
            for (id, seq) in acknowledged {
                let response = try check.request(["op": "get", "event_id": id])
                #expect(int((response["event"] as? [String: Any])?["seq"]) == seq)
            }
            let verify = try check.request(["op": "verify"])
            #expect((verify["corrupt"] as? [Any])?.isEmpty == true)
            check.close()
            return (answered, raw, acknowledged.count)
        }
        await daemon.stop()
        Reliability.report("protocol fuzz: \(outcome.answered) mutated frames answered, \(outcome.raw) raw byte streams, \(outcome.acked) interleaved appends kept")
    }
}
