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

    /// The contract's keys among `members` (the first of each, for bytes already validated).
    static func knownMembers(_ members: [JSONMember], in bytes: UnsafeBufferPointer<UInt8>) -> KnownFields {
        var known = KnownFields()
        for member in members {
            if let key = ContractKey(member.key, in: bytes), known[key] == nil { known[key] = member.value }
        }
        return known
    }

    /// The references of the indexed string fields, relative to `base`.
    static func fieldRefs(_ known: KnownFields, base: Int) -> EventFieldRefs {
        var fields = EventFieldRefs()
        for field in IndexedField.allCases {
            guard let span = known[ContractKey(field)], span.kind == .string else { continue }
            let content = span.contentRange
            fields[field] = FieldRef(range: (content.lowerBound - base)..<(content.upperBound - base), hasEscapes: span.hasEscapes)
        }
        return fields
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
        let typeBytes = JSONScanner.decodeStringBytes(typeSpan, in: bytes)
        guard Self.isValidType(typeBytes) else {
            throw EventValidationError("field 'type' must be 3-64 characters matching ^[a-z][a-z0-9_]*(\\.[a-z0-9_]+)+$")
        }

        // lead_id
        guard let leadSpan = known[.leadID], leadSpan.kind != .null else { throw EventValidationError("field 'lead_id' is required") }
        guard leadSpan.kind == .string else { throw EventValidationError("field 'lead_id' must be a string") }
        let leadBytes = JSONScanner.decodeStringBytes(leadSpan, in: bytes)
        guard !leadBytes.isEmpty, leadBytes.count <= 128 else {
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
        for key in [ContractKey.metadata, .leadSnapshot] {
            if let span = known[key], span.kind != .null, span.kind != .object {
                throw EventValidationError("field '\(key.name)' must be a JSON object")
            }
        }

        var fields: EventFieldRefs
        // Edits to the producer's bytes: replacements of existing values and insertions after '{'.
        var edits: [(range: Range<Int>, replacement: [UInt8])] = []
        var inserted: [UInt8] = []

        // event_id
        let eventID: String
        var eventIDAssigned = false
        if let span = known[.eventID], span.kind != .null {
            guard span.kind == .string else { throw EventValidationError("field 'event_id' must be a string") }
            let idBytes = JSONScanner.decodeStringBytes(span, in: bytes)
            guard EventID.isValid(idBytes) else {
                throw EventValidationError("field 'event_id' must be 1-64 characters of [A-Za-z0-9_-]")
            }
            eventID = String(decoding: idBytes, as: UTF8.self)
        } else {
            eventID = newEventID()
            eventIDAssigned = true
            var literal: [UInt8] = []
            JSONString.append(eventID, to: &literal)
            if let span = known[.eventID] {  // null: replace the value in place
                edits.append((span.range, literal))
            } else {
                inserted.append(contentsOf: Array("\"event_id\":".utf8))
                inserted.append(contentsOf: literal)
                inserted.append(UInt8(ascii: ","))
            }
        }

        // timestamp
        let timestampMs: Int64
        if let span = known[.timestamp], span.kind != .null {
            guard span.kind == .string else { throw EventValidationError("field 'timestamp' must be an RFC 3339 string") }
            let text = JSONScanner.decodeStringBytes(span, in: bytes)
            guard let ms = Timestamp.parse(text) else {
                throw EventValidationError("field 'timestamp' must be an RFC 3339 date-time, like 2024-01-15T14:30:45.234Z")
            }
            timestampMs = ms
            let canonical = Timestamp.formatBytes(ms)
            if span.hasEscapes || !bytes[span.contentRange].elementsEqual(canonical) {
                edits.append((span.range, [UInt8(ascii: "\"")] + canonical + [UInt8(ascii: "\"")]))
            }
        } else {
            timestampMs = now
            let literal = [UInt8(ascii: "\"")] + Timestamp.formatBytes(now) + [UInt8(ascii: "\"")]
            if let span = known[.timestamp] {
                edits.append((span.range, literal))
            } else {
                inserted.append(contentsOf: Array("\"timestamp\":".utf8))
                inserted.append(contentsOf: literal)
                inserted.append(UInt8(ascii: ","))
            }
        }

        if !inserted.isEmpty {
            // Insert right after the opening brace; the object has members (type, lead_id), so a trailing comma is right.
            let at = object.range.lowerBound + 1
            edits.append((at..<at, inserted))
        }

        // Apply the edits; the field references are then read off the final bytes.
        let json: [UInt8]
        if edits.isEmpty {
            json = Array(bytes[object.range])
            fields = Self.fieldRefs(known, base: object.range.lowerBound)
        } else {
            edits.sort { $0.range.lowerBound < $1.range.lowerBound }
            var out: [UInt8] = []
            out.reserveCapacity(object.range.count + inserted.count + 64)
            var cursor = object.range.lowerBound
            for edit in edits {
                out.append(contentsOf: bytes[cursor..<edit.range.lowerBound])
                out.append(contentsOf: edit.replacement)
                cursor = edit.range.upperBound
            }
            out.append(contentsOf: bytes[cursor..<object.range.upperBound])
            json = out
            fields = try json.withUnsafeBufferPointer { (final) throws(EventValidationError) -> EventFieldRefs in
                do {
                    let rescanned = try JSONScanner.topLevelMembers(final)
                    return Self.fieldRefs(Self.knownMembers(rescanned.members, in: final), base: 0)
                } catch {
                    throw EventValidationError("internal: the prepared event is not valid JSON: \(error)")
                }
            }
        }

        return PreparedEvent(
            json: json,
            timestampMs: timestampMs,
            eventID: eventID,
            eventIDHash: StableHash.hash64(eventID.utf8),
            leadHash: StableHash.hash64(leadBytes),
            fields: fields,
            eventIDAssigned: eventIDAssigned)
    }

    /// `^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$`, 3 to 64 characters.
    public static func isValidType(_ bytes: [UInt8]) -> Bool {
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

    var name: String {
        switch self {
        case .timestamp: "timestamp"
        case .durationMs: "duration_ms"
        case .metadata: "metadata"
        case .leadSnapshot: "lead_snapshot"
        case .seq: "seq"
        // The first seven are the indexed fields, in the same order.
        default: IndexedField(rawValue: rawValue)?.key ?? ""
        }
    }

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
        let count = content.count
        guard count >= 3, count <= 13 else { return nil }
        for (index, name) in Self.utf8Names.enumerated() where name.count == count && bytes[content].elementsEqual(name) {
            self = ContractKey(rawValue: index) ?? .type
            return
        }
        return nil
    }
}

/// The spans of the contract's keys found in one event, indexed by ``ContractKey``.
struct KnownFields {
    private var spans = [JSONSpan?](repeating: nil, count: ContractKey.allCases.count)

    subscript(key: ContractKey) -> JSONSpan? {
        get { spans[key.rawValue] }
        set { spans[key.rawValue] = newValue }
    }
}
