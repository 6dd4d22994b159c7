#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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

    @inlinable
    public var isPresent: Bool { offset != .max }
    @inlinable
    public var hasEscapes: Bool { packedLength & 0x8000 != 0 }
    @inlinable
    public var length: Int { Int(packedLength & 0x7FFF) }
    @inlinable
    public var range: Range<Int> { Int(offset)..<(Int(offset) + length) }
}

/// The indexed fields of one event, in ``IndexedField`` order.
///
/// Stored inline (no heap allocation): a scan decodes one of these per record it looks at.
public struct EventFieldRefs: Sendable, Equatable {
    /// How many fields are indexed (`IndexedField.allCases.count`, which a test checks).
    @inlinable public static var count: Int { 7 }
    @usableFromInline var storage: (FieldRef, FieldRef, FieldRef, FieldRef, FieldRef, FieldRef, FieldRef)

    public init() {
        storage = (.absent, .absent, .absent, .absent, .absent, .absent, .absent)
    }

    /// From the seven references in ``IndexedField`` order (a record header's decoder builds one per record).
    @inlinable
    public init(
        _ type: FieldRef, _ leadID: FieldRef, _ eventID: FieldRef, _ flowID: FieldRef, _ entityID: FieldRef, _ stepID: FieldRef,
        _ outcome: FieldRef
    ) {
        storage = (type, leadID, eventID, flowID, entityID, stepID, outcome)
    }

    /// From exactly ``count`` references in ``IndexedField`` order (missing ones are absent, extra ones ignored).
    public init(refs: [FieldRef]) {
        self.init()
        for (k, ref) in refs.prefix(Self.count).enumerated() { self[k] = ref }
    }

    /// The references in ``IndexedField`` order.
    public var refs: [FieldRef] {
        get { (0..<Self.count).map { self[$0] } }
        set { self = EventFieldRefs(refs: newValue) }
    }

    @inlinable
    public subscript(field: IndexedField) -> FieldRef {
        get { self[field.rawValue] }
        set { self[field.rawValue] = newValue }
    }

    /// The reference at position `index` (0..<``count``).
    @inlinable
    public subscript(index: Int) -> FieldRef {
        get {
            precondition(index >= 0 && index < Self.count, "field index out of range")
            return withUnsafeBytes(of: storage) { $0.load(fromByteOffset: index * MemoryLayout<FieldRef>.stride, as: FieldRef.self) }
        }
        set {
            precondition(index >= 0 && index < Self.count, "field index out of range")
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: newValue, toByteOffset: index * MemoryLayout<FieldRef>.stride, as: FieldRef.self) }
        }
    }

    public static func == (a: EventFieldRefs, b: EventFieldRefs) -> Bool {
        (0..<count).allSatisfy { a[$0] == b[$0] }
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
    @inlinable
    public func equals(_ expected: [UInt8], in body: UnsafeBufferPointer<UInt8>) -> Bool {
        guard isPresent, range.upperBound <= body.count else { return false }
        if !hasEscapes {
            return length == expected.count && Self.bytesEqual(body, at: Int(offset), expected)
        }
        return bytes(in: body).map { $0 == expected } ?? false
    }

    /// Whether this field's decoded value inside `body` equals `expected`, without allocating when it holds no escapes.
    @inlinable
    public func equals(_ expected: some Collection<UInt8>, in body: UnsafeBufferPointer<UInt8>) -> Bool {
        guard isPresent, range.upperBound <= body.count else { return false }
        if !hasEscapes {
            return length == expected.count && body[range].elementsEqual(expected)
        }
        return bytes(in: body).map { $0.elementsEqual(expected) } ?? false
    }

    /// Whether this field's decoded value starts with `prefix`.
    @inlinable
    public func hasPrefix(_ prefix: [UInt8], in body: UnsafeBufferPointer<UInt8>) -> Bool {
        guard isPresent, range.upperBound <= body.count else { return false }
        if !hasEscapes {
            return length >= prefix.count && Self.bytesEqual(body, at: Int(offset), prefix)
        }
        return bytes(in: body).map { $0.starts(with: prefix) } ?? false
    }

    /// Whether this field's decoded value starts with `prefix`.
    @inlinable
    public func hasPrefix(_ prefix: some Collection<UInt8>, in body: UnsafeBufferPointer<UInt8>) -> Bool {
        guard isPresent, range.upperBound <= body.count else { return false }
        if !hasEscapes {
            return length >= prefix.count && body[range].starts(with: prefix)
        }
        return bytes(in: body).map { $0.starts(with: prefix) } ?? false
    }

    /// Whether `body` holds `expected` at `start` (the caller checked that it fits).
    @inlinable
    static func bytesEqual(_ body: UnsafeBufferPointer<UInt8>, at start: Int, _ expected: [UInt8]) -> Bool {
        expected.withUnsafeBufferPointer { e in
            guard let base = body.baseAddress, let other = e.baseAddress else { return e.isEmpty }
            return memcmp(base + start, other, e.count) == 0
        }
    }
}
