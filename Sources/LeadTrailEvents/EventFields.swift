/// The event fields that the storage engine records outside the JSON body, so
/// that filters and indexes never need to parse it.
public enum IndexedField: Int, CaseIterable, Sendable {
    case type = 0, leadID, eventID, flowID, entityID, stepID, outcome

    /// The field's JSON key.
    public var key: String { ContractKey(self).name }
}

/// Where one indexed string field's value lies inside an event's JSON body:
/// the raw bytes between its quotes, and whether they hold escapes.
public struct FieldRef: Sendable, Equatable {
    public var offset: UInt32
    /// Raw length in the low 15 bits; bit 15 set when the raw bytes hold escapes.
    public var packedLength: UInt16

    public static let absent = FieldRef(offset: .max, packedLength: 0)

    public init(offset: UInt32, packedLength: UInt16) {
        self.offset = offset
        self.packedLength = packedLength
    }

    public init(range: Range<Int>, hasEscapes: Bool) {
        self.offset = UInt32(range.lowerBound)
        self.packedLength = UInt16(range.count) | (hasEscapes ? 0x8000 : 0)
    }

    public var isPresent: Bool { offset != .max }
    public var hasEscapes: Bool { packedLength & 0x8000 != 0 }
    public var length: Int { Int(packedLength & 0x7FFF) }
    public var range: Range<Int> { Int(offset)..<(Int(offset) + length) }
}

/// The indexed fields of one event, in ``IndexedField`` order.
///
/// A fixed-size value (no heap storage): every record header decodes into one.
public struct EventFieldRefs: Sendable, Equatable {
    public static let count = 7
    private var storage = InlineArray<7, FieldRef>(repeating: .absent)

    /// Every field absent.
    public init() {}

    /// The references in ``IndexedField`` order; missing entries are absent, extra ones ignored.
    public init(refs: [FieldRef]) {
        for (index, ref) in refs.prefix(Self.count).enumerated() { storage[index] = ref }
    }

    /// The references in ``IndexedField`` order.
    public var refs: [FieldRef] { (0..<Self.count).map { storage[$0] } }

    public subscript(field: IndexedField) -> FieldRef {
        get { storage[field.rawValue] }
        set { storage[field.rawValue] = newValue }
    }

    /// The reference at `index` in ``IndexedField`` order (0..<7).
    public subscript(index: Int) -> FieldRef {
        get { storage[index] }
        set { storage[index] = newValue }
    }

    public static func == (lhs: EventFieldRefs, rhs: EventFieldRefs) -> Bool {
        for index in 0..<count where lhs.storage[index] != rhs.storage[index] { return false }
        return true
    }
}

extension FieldRef {
    /// The decoded value of this field inside `body`, or nil when absent.
    public func value(in body: UnsafeBufferPointer<UInt8>) -> String? {
        guard isPresent, range.upperBound <= body.count else { return nil }
        let span = JSONSpan(kind: .string, range: (range.lowerBound - 1)..<(range.upperBound + 1), hasEscapes: hasEscapes)
        return JSONScanner.decodeString(span, in: body)
    }

    /// The decoded UTF-8 bytes of this field inside `body`, or nil when absent.
    public func bytes(in body: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        guard isPresent, range.upperBound <= body.count else { return nil }
        let span = JSONSpan(kind: .string, range: (range.lowerBound - 1)..<(range.upperBound + 1), hasEscapes: hasEscapes)
        return JSONScanner.decodeStringBytes(span, in: body)
    }

    /// Whether this field's decoded value inside `body` equals `expected`, without allocating when it holds no escapes.
    public func equals(_ expected: some Collection<UInt8>, in body: UnsafeBufferPointer<UInt8>) -> Bool {
        guard isPresent, range.upperBound <= body.count else { return false }
        if !hasEscapes {
            return length == expected.count && body[range].elementsEqual(expected)
        }
        return bytes(in: body).map { $0.elementsEqual(expected) } ?? false
    }

    /// Whether this field's decoded value starts with `prefix`.
    public func hasPrefix(_ prefix: some Collection<UInt8>, in body: UnsafeBufferPointer<UInt8>) -> Bool {
        guard isPresent, range.upperBound <= body.count else { return false }
        if !hasEscapes {
            return length >= prefix.count && body[range].starts(with: prefix)
        }
        return bytes(in: body).map { $0.starts(with: prefix) } ?? false
    }
}
