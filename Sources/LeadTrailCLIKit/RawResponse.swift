import LeadTrailEvents

/// A response frame read without re-serialising the events it carries.
///
/// `scan`, `get` and `timeline --json` print events exactly as the daemon
/// sent them (number formats, key order, escapes), so the CLI slices them out
/// of the frame with ``JSONScanner`` instead of decoding and encoding again.
public struct RawResponse: Sendable {
    /// `"ok"` of the frame.
    public var ok: Bool
    /// The bytes of each element of `"events"`, in order (empty when absent).
    public var events: [[UInt8]]
    /// The bytes of `"event"` (the answer to `get`).
    public var event: [UInt8]?
    /// `"done": true` (the last frame of a scan).
    public var done: Bool
    /// `"last_seq"` when present.
    public var lastSeq: Int64?

    /// Reads the top level of one frame body.
    public init(_ body: [UInt8]) throws(CLIFailure) {
        var ok = false
        var events: [[UInt8]] = []
        var event: [UInt8]?
        var done = false
        var lastSeq: Int64?
        let result: CLIFailure? = body.withUnsafeBufferPointer { buffer -> CLIFailure? in
            do {
                let top = try JSONScanner.topLevelMembers(buffer)
                for member in top.members {
                    let key = JSONScanner.decodeString(member.key, in: buffer)
                    let value = member.value
                    switch key {
                    case "ok":
                        ok = value.kind == .bool && buffer[value.range.lowerBound] == UInt8(ascii: "t")
                    case "done":
                        done = value.kind == .bool && buffer[value.range.lowerBound] == UInt8(ascii: "t")
                    case "last_seq":
                        if value.kind == .number {
                            lastSeq = Int64(String(decoding: buffer[value.range], as: UTF8.self))
                        }
                    case "event" where value.kind == .object:
                        event = Array(buffer[value.range])
                    case "events" where value.kind == .array:
                        for element in try JSONScanner.elements(of: value, in: buffer) {
                            events.append(Array(buffer[element.range]))
                        }
                    default:
                        continue
                    }
                }
                return nil
            } catch {
                return .failed("the daemon sent a frame that is not a JSON object: \(error)")
            }
        }
        if let result { throw result }
        self.ok = ok
        self.events = events
        self.event = event
        self.done = done
        self.lastSeq = lastSeq
    }
}
