#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why an event was refused, in words meant for the producer.
public struct EventValidationError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// An event that passed validation, in the exact form the store keeps.
///
/// `json` is the producer's bytes with only what the contract allows changed:
/// a server-assigned `event_id` and `timestamp` where they were absent or null,
/// and `timestamp` normalised to UTC with millisecond precision.
public struct PreparedEvent: Sendable {
    public var json: [UInt8]
    public var timestampMs: Int64
    /// The decoded event id (assigned or sent).
    public var eventID: String
    public var eventIDHash: UInt64
    public var leadHash: UInt64
    public var fields: EventFieldRefs
    /// Whether the server assigned the event id (and so it cannot be a duplicate).
    public var eventIDAssigned: Bool
}

/// Validates events against PROTOCOL.md section 1 and prepares them for storage.
public struct EventPreparer: Sendable {
    /// The largest event accepted, in bytes of JSON (contract default 1 MiB).
    public var maxEventBytes: Int

    public init(maxEventBytes: Int = 1 << 20) {
        self.maxEventBytes = maxEventBytes
    }

    static let optionalStringFields: [ContractKey] = [.flowID, .entityID, .stepID, .outcome]

    /// Validates one event given as JSON bytes and prepares it.
    ///
    /// - Parameters:
    ///   - now: the server clock in milliseconds, used when no timestamp is sent.
    ///   - newEventID: makes an id when none is sent.
    public func prepare(
        _ bytes: UnsafeBufferPointer<UInt8>,
        now: Int64,
        newEventID: () -> String = { EventID.generate() }
    ) throws(EventValidationError) -> PreparedEvent {
        guard bytes.count <= maxEventBytes else {
            throw EventValidationError("event is \(bytes.count) bytes, more than the limit of \(maxEventBytes)")
        }
        let scanned: (object: JSONSpan, members: [JSONMember])
        do {
            scanned = try JSONScanner.topLevelMembers(bytes)
        } catch {
            throw EventValidationError("event is not a JSON object: \(error)")
        }
        return try prepare(bytes, object: scanned.object, members: scanned.members, now: now, newEventID: newEventID)
    }

    /// Validates an event whose object span and members were already scanned.
    public func prepare(
        _ bytes: UnsafeBufferPointer<UInt8>,
        object: JSONSpan,
        members: [JSONMember],
        now: Int64,
        newEventID: () -> String = { EventID.generate() }
    ) throws(EventValidationError) -> PreparedEvent {
        var batch = PreparedBatch(reservingBytes: object.range.count + 96, events: 1)
        try prepare(bytes, object: object, members: members[...], now: now, newEventID: newEventID, into: &batch)
        return batch[0]
    }

    /// Validates an event whose object span and members were already scanned, and appends it to `batch`.
    ///
    /// On error `batch` is left as it was. Costs no allocation unless the event needs an
    /// id or a timestamp assigned, or writes its id or lead id with escapes.
    public func prepare(
        _ bytes: UnsafeBufferPointer<UInt8>,
        object: JSONSpan,
        members: ArraySlice<JSONMember>,
        now: Int64,
        newEventID: () -> String = { EventID.generate() },
        into batch: inout PreparedBatch
    ) throws(EventValidationError) {
        guard object.range.count <= maxEventBytes else {
            throw EventValidationError("event is \(object.range.count) bytes, more than the limit of \(maxEventBytes)")
        }
        var known = KnownFields()
        for member in members {
            // Keys the contract gives meaning to must not be ambiguous.
            guard let key = ContractKey(member.key, in: bytes) else { continue }
            if known[key] != nil { throw EventValidationError("field '\(key.name)' appears more than once") }
            known[key] = member.value
        }
        if known[.seq] != nil {
            throw EventValidationError("field 'seq' is assigned by the server and may not be sent")
        }

        // type
        guard let typeSpan = known[.type], typeSpan.kind != .null else { throw EventValidationError("field 'type' is required") }
        guard typeSpan.kind == .string else { throw EventValidationError("field 'type' must be a string") }
        let typeIsValid = typeSpan.hasEscapes
            ? Self.isValidType(JSONScanner.decodeStringBytes(typeSpan, in: bytes))
            : Self.isValidType(bytes[typeSpan.contentRange])
        guard typeIsValid else {
            throw EventValidationError("field 'type' must be 3-64 characters matching ^[a-z][a-z0-9_]*(\\.[a-z0-9_]+)+$")
        }

        // lead_id
        guard let leadSpan = known[.leadID], leadSpan.kind != .null else { throw EventValidationError("field 'lead_id' is required") }
        guard leadSpan.kind == .string else { throw EventValidationError("field 'lead_id' must be a string") }
        let leadHash: UInt64
        let leadLength: Int
        if leadSpan.hasEscapes {
            let decoded = JSONScanner.decodeStringBytes(leadSpan, in: bytes)
            (leadHash, leadLength) = (StableHash.hash64(decoded), decoded.count)
        } else {
            let content = UnsafeBufferPointer(rebasing: bytes[leadSpan.contentRange])
            (leadHash, leadLength) = (StableHash.hash64(UnsafeRawBufferPointer(content)), content.count)
        }
        guard leadLength > 0, leadLength <= 128 else {
            throw EventValidationError("field 'lead_id' must be a non-empty string of at most 128 bytes")
        }

        // optional indexed strings
        for key in Self.optionalStringFields {
            guard let span = known[key], span.kind != .null else { continue }
            guard span.kind == .string else { throw EventValidationError("field '\(key.name)' must be a string") }
            let length = span.hasEscapes ? JSONScanner.decodeStringBytes(span, in: bytes).count : span.contentRange.count
            guard length <= 128 else { throw EventValidationError("field '\(key.name)' must be at most 128 bytes") }
        }

        if let span = known[.durationMs], span.kind != .null {
            guard span.kind == .number, bytes[span.range.lowerBound] != UInt8(ascii: "-") || Self.isZero(bytes, span) else {
                throw EventValidationError("field 'duration_ms' must be a number >= 0")
            }
        }
        if let span = known[.metadata], span.kind != .null, span.kind != .object {
            throw EventValidationError("field 'metadata' must be a JSON object")
        }
        if let span = known[.leadSnapshot], span.kind != .null, span.kind != .object {
            throw EventValidationError("field 'lead_snapshot' must be a JSON object")
        }

        // event_id: sent (checked), or assigned (replacing a null, or inserted after the opening brace).
        var assignedID: [UInt8]? = nil
        var decodedSentID: [UInt8]? = nil
        if let span = known[.eventID], span.kind != .null {
            guard span.kind == .string else { throw EventValidationError("field 'event_id' must be a string") }
            if span.hasEscapes {
                let decoded = JSONScanner.decodeStringBytes(span, in: bytes)
                guard EventID.isValid(decoded) else { throw Self.invalidEventID }
                decodedSentID = decoded
            } else {
                guard EventID.isValid(bytes[span.contentRange]) else { throw Self.invalidEventID }
            }
        } else {
            assignedID = Array(newEventID().utf8)
        }

        // timestamp: sent (parsed, rewritten if not canonical), or assigned.
        let timestampMs: Int64
        var timestampRewrite = false
        if let span = known[.timestamp], span.kind != .null {
            guard span.kind == .string else { throw EventValidationError("field 'timestamp' must be an RFC 3339 string") }
            let parsed = span.hasEscapes
                ? Timestamp.parse(JSONScanner.decodeStringBytes(span, in: bytes))
                : Timestamp.parse(bytes[span.contentRange])
            guard let ms = parsed else {
                throw EventValidationError("field 'timestamp' must be an RFC 3339 date-time, like 2024-01-15T14:30:45.234Z")
            }
            timestampMs = ms
            timestampRewrite = span.hasEscapes || !Timestamp.isCanonicalShape(UnsafeBufferPointer(rebasing: bytes[span.contentRange]))
        } else {
            timestampMs = now
            timestampRewrite = true
        }

        let insertAt = object.range.lowerBound + 1
        let insertsID = assignedID != nil && known[.eventID] == nil
        let insertsTimestamp = timestampRewrite && known[.timestamp] == nil
        let idNull = assignedID != nil ? known[.eventID]?.range : nil
        let timestampValue = timestampRewrite ? known[.timestamp]?.range : nil
        // An event that needs no edit, in a batch whose bytes are the request's, stays where it was sent.
        var storedAsSent = false
        if batch.referencesSource {
            let isSource = batch.bytes.withUnsafeBufferPointer { $0.baseAddress == bytes.baseAddress }
            storedAsSent = isSource && assignedID == nil && !timestampRewrite && decodedSentID == nil
            if !storedAsSent { batch.stopReferencingSource(sourceBytesLeft: bytes.count - object.range.lowerBound) }
        }

        // Write the event into the batch, applying the edits on the way (none when stored as sent).
        let start = storedAsSent ? object.range.lowerBound : batch.bytes.count
        var writer = EventWriter(source: bytes, object: object.range, start: start)
        var eventIDContent: Range<Int>? = nil  // in the batch, when assigned
        if insertsID || insertsTimestamp {
            // Right after the opening brace; the object has members (type, lead_id), so a trailing comma is right.
            writer.copy(upTo: insertAt, into: &batch.bytes)
            if insertsID, let assignedID {
                writer.insert(Self.eventIDKey, into: &batch.bytes)
                eventIDContent = writer.insertQuoted(assignedID, into: &batch.bytes)
                writer.insert([UInt8(ascii: ",")], into: &batch.bytes)
            }
            if insertsTimestamp {
                writer.insert(Self.timestampKey, into: &batch.bytes)
                writer.insertTimestamp(timestampMs, into: &batch.bytes)
                writer.insert([UInt8(ascii: ",")], into: &batch.bytes)
            }
        }
        // Replacements of existing values, in the order they appear.
        func replace(_ range: Range<Int>?) {
            guard let range else { return }
            writer.copy(upTo: range.lowerBound, into: &batch.bytes)
            if range == idNull, let assignedID {
                eventIDContent = writer.replaceQuoted(range, with: assignedID, into: &batch.bytes)
            } else {
                writer.replaceWithTimestamp(range, timestampMs, into: &batch.bytes)
            }
        }
        if let id = idNull, let time = timestampValue, time.lowerBound < id.lowerBound {
            replace(time)
            replace(id)
        } else {
            replace(idNull)
            replace(timestampValue)
        }
        if !storedAsSent { writer.copy(upTo: object.range.upperBound, into: &batch.bytes) }
        let end = storedAsSent ? object.range.upperBound : batch.bytes.count

        // Field references, moved by the edits before them.
        var fields = EventFieldRefs()
        for index in 0..<EventFieldRefs.count {
            guard let field = IndexedField(rawValue: index) else { continue }
            if field == .eventID, let eventIDContent {
                fields[field] = FieldRef(range: (eventIDContent.lowerBound - start)..<(eventIDContent.upperBound - start), hasEscapes: false)
                continue
            }
            guard let span = known[ContractKey(field)], span.kind == .string else { continue }
            let content = span.contentRange
            let moved = writer.outputOffset(of: content.lowerBound) - start
            fields[field] = FieldRef(range: moved..<(moved + content.count), hasEscapes: span.hasEscapes)
        }

        // The decoded id: inside the event, or (written with escapes) a decoded copy after it.
        let idRange: Range<Int>
        if let eventIDContent {
            idRange = eventIDContent
        } else if let decodedSentID {
            batch.bytes.append(contentsOf: decodedSentID)
            idRange = end..<batch.bytes.count
        } else {
            let ref = fields[.eventID]
            idRange = (start + ref.range.lowerBound)..<(start + ref.range.upperBound)
        }
        let eventIDHash = batch.bytes.withUnsafeBytes { StableHash.hash64(UnsafeRawBufferPointer(rebasing: $0[idRange])) }
        batch.add(PreparedBatch.Entry(
            range: start..<end, eventIDRange: idRange, timestampMs: timestampMs, eventIDHash: eventIDHash, leadHash: leadHash,
            fields: fields, eventIDAssigned: assignedID != nil))
    }

    static let invalidEventID = EventValidationError("field 'event_id' must be 1-64 characters of [A-Za-z0-9_-]")
    static let eventIDKey = Array("\"event_id\":".utf8)
    static let timestampKey = Array("\"timestamp\":".utf8)

    /// `^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$`, 3 to 64 characters.
    public static func isValidType<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> Bool {
        guard bytes.count >= 3, bytes.count <= 64 else { return false }
        guard let first = bytes.first, first >= 0x61, first <= 0x7A else { return false }
        var sawDot = false
        var previousWasDot = false
        for c in bytes.dropFirst() {
            if c == UInt8(ascii: ".") {
                if previousWasDot { return false }
                sawDot = true
                previousWasDot = true
            } else if (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) || c == UInt8(ascii: "_") {
                previousWasDot = false
            } else {
                return false
            }
        }
        return sawDot && !previousWasDot
    }

    /// Whether a number span is a (negative) zero, like -0 or -0.0.
    static func isZero(_ bytes: UnsafeBufferPointer<UInt8>, _ span: JSONSpan) -> Bool {
        for c in bytes[span.range] {
            switch c {
            case UInt8(ascii: "-"), UInt8(ascii: "0"), UInt8(ascii: "."): continue
            case UInt8(ascii: "e"), UInt8(ascii: "E"): return true
            default: return false
            }
        }
        return true
    }
}

/// The top-level keys the contract gives meaning to.
enum ContractKey: Int, CaseIterable {
    case type, leadID, eventID, flowID, entityID, stepID, outcome, timestamp, durationMs, metadata, leadSnapshot, seq

    var name: String { staticName.description }

    static let utf8Names: [[UInt8]] = allCases.map { Array($0.name.utf8) }

    init(_ field: IndexedField) {
        // IndexedField's cases are the first seven, in the same order.
        self = ContractKey(rawValue: field.rawValue) ?? .type
    }

    /// The contract key that `key` (a scanned string span) names, if any; compares bytes, no allocation.
    init?(_ key: JSONSpan, in bytes: UnsafeBufferPointer<UInt8>) {
        let content = key.contentRange
        if key.hasEscapes {
            let decoded = JSONScanner.decodeStringBytes(key, in: bytes)
            guard let index = Self.utf8Names.firstIndex(of: decoded) else { return nil }
            self = ContractKey(rawValue: index) ?? .type
            return
        }
        // One candidate by length and first byte, then one comparison.
        guard !content.isEmpty else { return nil }
        let candidate: ContractKey
        switch (content.count, bytes[content.lowerBound]) {
        case (3, UInt8(ascii: "s")): candidate = .seq
        case (4, UInt8(ascii: "t")): candidate = .type
        case (7, UInt8(ascii: "l")): candidate = .leadID
        case (7, UInt8(ascii: "f")): candidate = .flowID
        case (7, UInt8(ascii: "s")): candidate = .stepID
        case (7, UInt8(ascii: "o")): candidate = .outcome
        case (8, UInt8(ascii: "e")): candidate = .eventID
        case (8, UInt8(ascii: "m")): candidate = .metadata
        case (9, UInt8(ascii: "e")): candidate = .entityID
        case (9, UInt8(ascii: "t")): candidate = .timestamp
        case (11, UInt8(ascii: "d")): candidate = .durationMs
        case (13, UInt8(ascii: "l")): candidate = .leadSnapshot
        default: return nil
        }
        // Same length and first byte: the rest compared in one call (no table, so no lazy global to check per key).
        let name = candidate.staticName
        guard let base = bytes.baseAddress,
              memcmp(base + content.lowerBound + 1, name.utf8Start + 1, name.utf8CodeUnitCount - 1) == 0
        else { return nil }
        self = candidate
    }

    /// The key as a static string (no storage to retain when comparing).
    var staticName: StaticString {
        switch self {
        case .type: "type"
        case .leadID: "lead_id"
        case .eventID: "event_id"
        case .flowID: "flow_id"
        case .entityID: "entity_id"
        case .stepID: "step_id"
        case .outcome: "outcome"
        case .timestamp: "timestamp"
        case .durationMs: "duration_ms"
        case .metadata: "metadata"
        case .leadSnapshot: "lead_snapshot"
        case .seq: "seq"
        }
    }
}

/// The spans of the contract's keys found in one event, indexed by ``ContractKey`` (no heap storage).
struct KnownFields {
    private var spans = InlineArray<12, JSONSpan?>(repeating: nil)

    subscript(key: ContractKey) -> JSONSpan? {
        get { spans[key.rawValue] }
        set { spans[key.rawValue] = newValue }
    }
}

/// Copies an event's bytes into a batch while applying edits (insertions and
/// replacements, in increasing source order), and maps source offsets to output offsets.
struct EventWriter {
    let source: UnsafeBufferPointer<UInt8>
    /// The next source byte to copy.
    private(set) var cursor: Int
    /// Where the event starts in the output.
    let start: Int
    let objectStart: Int
    /// The edits made so far: source offset where each happened, and the output size change it caused.
    private var shifts: [(at: Int, delta: Int)] = []

    init(source: UnsafeBufferPointer<UInt8>, object: Range<Int>, start: Int) {
        self.source = source
        self.cursor = object.lowerBound
        self.objectStart = object.lowerBound
        self.start = start
    }

    mutating func copy(upTo end: Int, into out: inout [UInt8]) {
        guard end > cursor else { return }
        out.append(contentsOf: UnsafeBufferPointer(rebasing: source[cursor..<end]))
        cursor = end
    }

    mutating func insert(_ bytes: [UInt8], into out: inout [UInt8]) {
        out.append(contentsOf: bytes)
        shifts.append((cursor, bytes.count))
    }

    /// Inserts `"value"`; returns where the value's bytes are in the output.
    mutating func insertQuoted(_ value: [UInt8], into out: inout [UInt8]) -> Range<Int> {
        out.append(UInt8(ascii: "\""))
        let content = out.count
        out.append(contentsOf: value)
        out.append(UInt8(ascii: "\""))
        shifts.append((cursor, value.count + 2))
        return content..<(content + value.count)
    }

    mutating func insertTimestamp(_ ms: Int64, into out: inout [UInt8]) {
        let before = out.count
        Timestamp.appendQuoted(ms, to: &out)
        shifts.append((cursor, out.count - before))
    }

    /// Replaces the source bytes `range` (the cursor is at its start) with `"value"`.
    mutating func replaceQuoted(_ range: Range<Int>, with value: [UInt8], into out: inout [UInt8]) -> Range<Int> {
        let content = insertQuoted(value, into: &out)
        skip(range)
        return content
    }

    mutating func replaceWithTimestamp(_ range: Range<Int>, _ ms: Int64, into out: inout [UInt8]) {
        insertTimestamp(ms, into: &out)
        skip(range)
    }

    private mutating func skip(_ range: Range<Int>) {
        shifts.append((range.upperBound, -range.count))
        cursor = range.upperBound
    }

    /// Where the source byte at `offset` (not inside a replaced range) went in the output.
    func outputOffset(of offset: Int) -> Int {
        var moved = start + (offset - objectStart)
        for shift in shifts where shift.at <= offset { moved += shift.delta }
        return moved
    }
}
