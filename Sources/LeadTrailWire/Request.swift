import LeadTrailEvents

/// The operations this daemon implements (PROTOCOL.md section 3).
///
/// Ops of the contract that later issues add (`follow`, `report`, `audit`)
/// are not listed: they are answered with `unknown_op`.
public enum Operation: String, Sendable, CaseIterable {
    case ping, append, get, timeline, scan, stats, rotate, verify, tier, restore
}

/// `restore`: which archived events to bring back into query reach, or to release again.
public struct RestoreRequest: Sendable, Equatable {
    /// Lower bound (inclusive) of the events' timestamps, in ms since the epoch.
    public var fromMs: Int64?
    /// Upper bound (exclusive), in ms since the epoch.
    public var toMs: Int64?
    /// Only what this lead needs (found through the archives' lead filters).
    public var leadID: String?
    /// Take restored data out of query reach again instead (the archives keep it).
    public var release = false

    public init(fromMs: Int64? = nil, toMs: Int64? = nil, leadID: String? = nil, release: Bool = false) {
        self.fromMs = fromMs
        self.toMs = toMs
        self.leadID = leadID
        self.release = release
    }
}

/// The filters of `scan` (PROTOCOL.md section 3), decoded and checked.
public struct ScanRequest: Sendable, Equatable {
    /// Lower bound (inclusive) of the event timestamp, in ms since the epoch.
    public var fromMs: Int64?
    /// Upper bound (exclusive) of the event timestamp, in ms since the epoch.
    public var toMs: Int64?
    /// Types to match; an entry ending in `.*` matches a prefix.
    public var types: [String] = []
    public var outcomes: [String] = []
    public var leadID: String?
    public var flowID: String?
    public var entityID: String?
    public var stepID: String?
    /// Only events with seq greater than this.
    public var afterSeq: UInt64 = 0
    /// At most this many events in all; nil means no limit.
    public var limit: Int?

    public init() {}
}

/// A request whose fields were all decoded and checked.
public enum Request: Sendable {
    case ping
    /// Events already validated and prepared for storage, in batch order.
    case append(PreparedBatch)
    case get(eventID: String)
    case timeline(leadID: String)
    case scan(ScanRequest)
    case stats
    case rotate
    case verify
    case tier
    case restore(RestoreRequest)
}

/// The outer layer of a request frame: its `id`, its `op`, and the rest kept for
/// ``RequestParser/parse(_:now:newEventID:)``.
///
/// Parsing the envelope validates the whole frame as one JSON object, so the
/// caller can check access before the (possibly expensive) body is decoded.
public struct RequestEnvelope: Sendable {
    /// The request's `id`, exactly as sent (any JSON scalar), to be echoed in every response.
    public var id: [UInt8]?
    /// The op, or the error to answer (with `id` echoed when it could be read).
    public var operation: Result<Operation, WireError>
    /// The request's `op` as sent, when it was a string (for logs).
    public var opName: String?
    /// The request's `purpose` (compliance reads), when sent as a string.
    public var purpose: String?

    let frame: [UInt8]
    let members: [JSONMember]
    /// The `events` array with each event's members, found in the same pass as the envelope.
    var events: ExpandedArray?

    /// The longest `id` accepted, as JSON text (so echoing it never bloats a response).
    public static let maximumIDBytes = 4096

    /// Decodes the envelope of a frame body. Never throws: failures are in ``operation``.
    ///
    /// - `bad_frame` when the body is not one UTF-8 JSON object;
    /// - `bad_request` when `id` is not a scalar or longer than ``maximumIDBytes``, or `op` is missing or not a string;
    /// - `unknown_op` when `op` names an operation this daemon does not implement.
    public static func parse(_ frame: [UInt8]) -> RequestEnvelope {
        let scanned: Result<(object: JSONSpan, members: [JSONMember], expanded: ExpandedArray?), JSONSyntaxError> = frame.withUnsafeBufferPointer { buffer in
            do throws(JSONSyntaxError) {
                // One pass over the whole frame: it validates the JSON and finds every event of an append.
                return .success(try JSONScanner.topLevelMembers(buffer, expanding: "events"))
            } catch {
                return .failure(error)
            }
        }
        switch scanned {
        case .failure(let error):
            let message = frame.isEmpty ? "empty frame: expected a JSON object" : "frame is not a UTF-8 JSON object: \(error)"
            return RequestEnvelope(id: nil, operation: .failure(WireError(.badFrame, message)), frame: frame, members: [])
        case .success(let scanned):
            var envelope = frame.withUnsafeBufferPointer { buffer in
                parse(frame, buffer: buffer, members: scanned.members)
            }
            envelope.events = scanned.expanded
            return envelope
        }
    }

    private static func parse(_ frame: [UInt8], buffer: UnsafeBufferPointer<UInt8>, members: [JSONMember]) -> RequestEnvelope {
        var envelope = RequestEnvelope(id: nil, operation: .failure(WireError(.badRequest, "missing field 'op'")), frame: frame, members: members)
        var idSpan: JSONSpan?
        var opSpan: JSONSpan?
        var seen: Set<String> = []
        var duplicate: String?
        for member in members {
            let key = JSONScanner.decodeString(member.key, in: buffer)
            if !seen.insert(key).inserted, duplicate == nil, key == "id" || key == "op" || key == "purpose" { duplicate = key }
            switch key {
            case "id" where idSpan == nil: idSpan = member.value
            case "op" where opSpan == nil: opSpan = member.value
            case "purpose" where envelope.purpose == nil:
                if member.value.kind == .string { envelope.purpose = JSONScanner.decodeString(member.value, in: buffer) }
            default: break
            }
        }
        if let idSpan {
            guard idSpan.kind != .object, idSpan.kind != .array else {
                envelope.operation = .failure(WireError(.badRequest, "field 'id' must be a JSON scalar (string, number, boolean or null)"))
                return envelope
            }
            guard idSpan.range.count <= maximumIDBytes else {
                envelope.operation = .failure(WireError(.badRequest, "field 'id' is longer than \(maximumIDBytes) bytes"))
                return envelope
            }
            envelope.id = Array(buffer[idSpan.range])
        }
        if let duplicate {
            envelope.operation = .failure(WireError(.badRequest, "field '\(duplicate)' appears more than once"))
            return envelope
        }
        guard let opSpan else { return envelope }
        guard opSpan.kind == .string else {
            envelope.operation = .failure(WireError(.badRequest, "field 'op' must be a string"))
            return envelope
        }
        let name = JSONScanner.decodeString(opSpan, in: buffer)
        envelope.opName = name
        guard let operation = Operation(rawValue: name) else {
            envelope.operation = .failure(WireError(.unknownOp, "unknown op '\(name.prefix(64))'"))
            return envelope
        }
        envelope.operation = .success(operation)
        return envelope
    }
}

/// Decodes and checks request bodies (PROTOCOL.md section 3) under the daemon's limits.
///
/// Append events are found as byte spans of the request frame with
/// ``JSONScanner`` and validated by ``EventPreparer`` on those very bytes, so a
/// stored event is exactly what the producer sent, modulo what the preparer
/// assigns or normalises (`event_id`, `timestamp`).
public struct RequestParser: Sendable {
    /// The most events one append may carry (contract default 10,000).
    public var maxBatchEvents: Int
    public var preparer: EventPreparer

    public init(maxEventBytes: Int = 1 << 20, maxBatchEvents: Int = 10_000) {
        self.maxBatchEvents = maxBatchEvents
        self.preparer = EventPreparer(maxEventBytes: maxEventBytes)
    }

    /// Parses a whole frame: the envelope, then the body.
    public func parse(frame: [UInt8], now: Int64) throws(WireError) -> Request {
        try parse(RequestEnvelope.parse(frame), now: now)
    }

    /// Decodes the body of a request whose envelope named a known op.
    ///
    /// - Parameters:
    ///   - now: the server clock (ms since the epoch) for events sent without a timestamp.
    ///   - newEventID: makes ids for events sent without one (default: ``EventID`` from the kernel's CSPRNG).
    public func parse(
        _ envelope: RequestEnvelope,
        now: Int64,
        newEventID: (() -> String)? = nil
    ) throws(WireError) -> Request {
        var random = BufferedRandom()
        let newEventID = newEventID ?? { EventID.generate(using: &random) }
        let operation = try envelope.operation.get()
        return try envelope.frame.withUnsafeBufferPointer { (buffer) throws(WireError) -> Request in
            var fields = Fields(buffer: buffer)
            for member in envelope.members {
                let key = JSONScanner.decodeString(member.key, in: buffer)
                if fields.spans[key] == nil { fields.spans[key] = member.value }
            }
            switch operation {
            case .ping: return .ping
            case .stats: return .stats
            case .rotate: return .rotate
            case .verify: return .verify
            case .tier: return .tier
            case .restore: return .restore(try fields.restoreRequest())
            case .get:
                return .get(eventID: try fields.requiredString("event_id", nonEmpty: true))
            case .timeline:
                return .timeline(leadID: try fields.requiredString("lead_id", nonEmpty: true))
            case .scan:
                return .scan(try fields.scanRequest())
            case .append:
                return .append(try prepareEvents(
                    fields: fields, frame: envelope.frame, scanned: envelope.events, now: now, newEventID: newEventID))
            }
        }
    }

    /// The events of an append; `fields.buffer` holds the bytes of `frame`, which the batch keeps as its
    /// own while no event needs an edit.
    private func prepareEvents(
        fields: Fields, frame: [UInt8], scanned: ExpandedArray?, now: Int64, newEventID: () -> String
    ) throws(WireError) -> PreparedBatch {
        guard let span = fields.spans["events"] else { throw WireError(.badRequest, "missing field 'events'") }
        guard span.kind == .array else { throw WireError(.badRequest, "field 'events' must be an array of events") }
        // The envelope's pass found the events and their members already; re-read them only if it did not.
        let scanned = scanned?.span == span ? scanned : nil
        let elements: [JSONSpan]
        do {
            elements = try scanned?.elements ?? JSONScanner.elements(of: span, in: fields.buffer)
        } catch {
            throw WireError(.internal, "could not re-read a validated array: \(error)")
        }
        guard !elements.isEmpty else { throw WireError(.badRequest, "field 'events' must hold at least one event") }
        guard elements.count <= maxBatchEvents else {
            throw WireError(.batchTooLarge, "batch of \(elements.count) events is larger than the maximum of \(maxBatchEvents)")
        }
        // The frame's own bytes, until an event needs an edit (then a copy, with room for an assigned id and
        // timestamp for each event).
        var batch = PreparedBatch(referencing: frame, events: elements.count)
        for (index, element) in elements.enumerated() {
            guard element.kind == .object else {
                throw WireError(.invalidEvent, "event \(index) is not a JSON object", index: index)
            }
            if let scanned, index + 1 < elements.count { scanned.prefetchMemberKeys(of: index + 1, in: fields.buffer) }
            do {
                let members = try scanned?.members(of: index) ?? JSONScanner.members(of: element, in: fields.buffer)[...]
                try preparer.prepare(fields.buffer, object: element, members: members, now: now, newEventID: newEventID, into: &batch)
            } catch let error as EventValidationError {
                throw WireError(.invalidEvent, "event \(index): \(error.message)", index: index)
            } catch {
                throw WireError(.invalidEvent, "event \(index): \(error)", index: index)
            }
        }
        return batch
    }
}

/// Typed access to the top-level fields of a request.
struct Fields {
    let buffer: UnsafeBufferPointer<UInt8>
    var spans: [String: JSONSpan] = [:]

    init(buffer: UnsafeBufferPointer<UInt8>) {
        self.buffer = buffer
    }

    /// A string field; null counts as absent.
    func optionalString(_ key: String, nonEmpty: Bool = false) throws(WireError) -> String? {
        guard let span = spans[key], span.kind != .null else { return nil }
        guard span.kind == .string else { throw WireError(.badRequest, "field '\(key)' must be a string") }
        let value = JSONScanner.decodeString(span, in: buffer)
        if nonEmpty, value.isEmpty { throw WireError(.badRequest, "field '\(key)' must not be empty") }
        return value
    }

    func requiredString(_ key: String, nonEmpty: Bool = false) throws(WireError) -> String {
        guard let value = try optionalString(key, nonEmpty: nonEmpty) else {
            throw WireError(.badRequest, "missing field '\(key)'")
        }
        return value
    }

    /// A non-negative integer field written without fraction or exponent; null counts as absent.
    func optionalUInt(_ key: String) throws(WireError) -> UInt64? {
        guard let span = spans[key], span.kind != .null else { return nil }
        guard span.kind == .number, let value = UInt64(String(decoding: buffer[span.range], as: UTF8.self)) else {
            throw WireError(.badRequest, "field '\(key)' must be a non-negative integer")
        }
        return value
    }

    /// An RFC 3339 timestamp field, in ms since the epoch.
    func optionalBool(_ key: String) throws(WireError) -> Bool? {
        guard let span = spans[key], span.kind != .null else { return nil }
        guard span.kind == .bool else { throw WireError(.badRequest, "field '\(key)' must be true or false") }
        return buffer[span.range.lowerBound] == UInt8(ascii: "t")
    }

    /// The fields of `restore`: `from`/`to` (RFC 3339), `lead_id`, `release`.
    func restoreRequest() throws(WireError) -> RestoreRequest {
        let request = RestoreRequest(
            fromMs: try optionalTimestamp("from"), toMs: try optionalTimestamp("to"),
            leadID: try optionalString("lead_id", nonEmpty: true), release: try optionalBool("release") ?? false)
        if !request.release && request.fromMs == nil && request.toMs == nil && request.leadID == nil {
            throw WireError(.badRequest, "restore needs 'from' and 'to', or 'lead_id' (or 'release': true)")
        }
        if let from = request.fromMs, let to = request.toMs, from >= to {
            throw WireError(.badRequest, "'from' must be before 'to'")
        }
        return request
    }

    func optionalTimestamp(_ key: String) throws(WireError) -> Int64? {
        guard let span = spans[key], span.kind != .null else { return nil }
        guard span.kind == .string, let ms = Timestamp.parse(JSONScanner.decodeStringBytes(span, in: buffer)) else {
            throw WireError(.badRequest, "field '\(key)' must be an RFC 3339 timestamp, like 2024-01-15T14:30:45.234Z")
        }
        return ms
    }

    /// A list of non-empty strings; null counts as absent (an empty list).
    func stringList(_ key: String) throws(WireError) -> [String] {
        guard let span = spans[key], span.kind != .null else { return [] }
        let message = "field '\(key)' must be a list of non-empty strings"
        guard span.kind == .array else { throw WireError(.badRequest, message) }
        let elements: [JSONSpan]
        do {
            elements = try JSONScanner.elements(of: span, in: buffer)
        } catch {
            throw WireError(.badRequest, message)
        }
        var out: [String] = []
        for element in elements {
            guard element.kind == .string else { throw WireError(.badRequest, message) }
            let value = JSONScanner.decodeString(element, in: buffer)
            guard !value.isEmpty else { throw WireError(.badRequest, message) }
            out.append(value)
        }
        return out
    }

    func scanRequest() throws(WireError) -> ScanRequest {
        var scan = ScanRequest()
        scan.fromMs = try optionalTimestamp("from")
        scan.toMs = try optionalTimestamp("to")
        scan.types = try stringList("types")
        scan.outcomes = try stringList("outcomes")
        scan.leadID = try optionalString("lead_id")
        scan.flowID = try optionalString("flow_id")
        scan.entityID = try optionalString("entity_id")
        scan.stepID = try optionalString("step_id")
        scan.afterSeq = try optionalUInt("after_seq") ?? 0
        if let limit = try optionalUInt("limit") {
            scan.limit = limit > UInt64(Int.max) ? Int.max : Int(limit)
        }
        return scan
    }
}
