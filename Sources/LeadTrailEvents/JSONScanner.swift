import CJSONScan

/// The kind of a JSON value found by ``JSONScanner``.
public enum JSONKind: UInt8, Sendable {
    case object, array, string, number, bool, null
}

/// Where a JSON value lies in the scanned bytes.
///
/// For strings, `contentRange` is the raw bytes between the quotes and
/// `hasEscapes` says whether they contain backslash escapes (if not, the raw
/// bytes are the decoded UTF-8 value).
public struct JSONSpan: Sendable, Equatable {
    public var kind: JSONKind
    /// The whole value, quotes and brackets included.
    public var range: Range<Int>
    public var hasEscapes: Bool

    /// For a string, the bytes between the quotes.
    public var contentRange: Range<Int> {
        kind == .string ? (range.lowerBound + 1)..<(range.upperBound - 1) : range
    }
}

/// One member of a scanned object: its key (raw, between quotes) and its value.
public struct JSONMember: Sendable {
    public var key: JSONSpan
    public var value: JSONSpan
}

/// A JSON syntax error, with the byte offset where it was found.
public struct JSONSyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
    public var offset: Int
    public var reason: String
    public var description: String { "invalid JSON at byte \(offset): \(reason)" }
}

/// A strict, allocation-light JSON (RFC 8259) scanner over UTF-8 bytes.
///
/// It validates the complete grammar and the UTF-8 encoding of every string,
/// limits nesting depth, and reports byte ranges instead of building values, so
/// callers can store the exact bytes they were sent. It never traps on input.
public struct JSONScanner {
    /// Deeper nesting than this is refused (it guards the recursion).
    public static let maximumDepth = 512

    let bytes: UnsafeBufferPointer<UInt8>
    var position: Int
    var depth = 0

    init(_ bytes: UnsafeBufferPointer<UInt8>, position: Int = 0) {
        self.bytes = bytes
        self.position = position
    }

    // MARK: - Public entry points

    /// Validates that `bytes` hold exactly one JSON value (surrounding whitespace
    /// allowed) and returns its span.
    public static func validate(_ bytes: UnsafeBufferPointer<UInt8>) throws(JSONSyntaxError) -> JSONSpan {
        var scanner = JSONScanner(bytes)
        scanner.skipWhitespace()
        let span = try scanner.scanValue()
        scanner.skipWhitespace()
        guard scanner.position == bytes.count else { throw scanner.error("trailing characters after the value") }
        return span
    }

    /// Validates that `bytes` hold exactly one JSON object and returns its
    /// top-level members in order (nested values are validated, not listed).
    public static func topLevelMembers(_ bytes: UnsafeBufferPointer<UInt8>) throws(JSONSyntaxError) -> (object: JSONSpan, members: [JSONMember]) {
        var scanner = JSONScanner(bytes)
        scanner.skipWhitespace()
        guard scanner.peek() == UInt8(ascii: "{") else { throw scanner.error("expected a JSON object") }
        var members: [JSONMember] = []
        let span = try scanner.scanObject(collecting: &members)
        scanner.skipWhitespace()
        guard scanner.position == bytes.count else { throw scanner.error("trailing characters after the object") }
        return (span, members)
    }

    /// Like ``topLevelMembers(_:)``, and in the same single pass: when the first
    /// top-level member whose key decodes to `arrayKey` holds an array, its
    /// elements, each with its own top-level members when it is an object.
    ///
    /// The daemon reads an append request this way, so the bytes of a batch are
    /// scanned once instead of three times (envelope, then the `events` array,
    /// then each event). The result is the same as ``elements(of:in:)`` and
    /// ``members(of:in:)`` on the returned spans.
    public static func topLevelMembers(
        _ bytes: UnsafeBufferPointer<UInt8>, expanding arrayKey: String
    ) throws(JSONSyntaxError) -> (object: JSONSpan, members: [JSONMember], expanded: ExpandedArray?) {
        var scanner = JSONScanner(bytes)
        scanner.skipWhitespace()
        guard scanner.peek() == UInt8(ascii: "{") else { throw scanner.error("expected a JSON object") }
        let key = Array(arrayKey.utf8)
        var members: [JSONMember] = []
        var expanded: ExpandedArray?
        var seenKey = false
        let start = scanner.position
        scanner.depth += 1
        scanner.position += 1  // {
        scanner.skipWhitespace()
        if scanner.peek() == UInt8(ascii: "}") {
            scanner.position += 1
        } else {
            while true {
                scanner.skipWhitespace()
                guard scanner.peek() == UInt8(ascii: "\"") else { throw scanner.error("expected a string key") }
                let keySpan = try scanner.scanString()
                scanner.skipWhitespace()
                guard scanner.peek() == UInt8(ascii: ":") else { throw scanner.error("expected ':' after a key") }
                scanner.position += 1
                scanner.skipWhitespace()
                let value: JSONSpan
                if !seenKey, stringEquals(keySpan, in: bytes, key) {
                    seenKey = true
                    if scanner.peek() == UInt8(ascii: "[") {
                        var array = ExpandedArray()
                        // Room for what typical events need (about 1 KiB and 10 top-level members each), so the
                        // lists rarely grow by copying (a batch of lead events has 8-9 members a KiB: room for 8
                        // copied the 380 KB list once in every batch).
                        let remaining = bytes.count - scanner.position
                        array.elements.reserveCapacity(remaining / 1024 + 1)
                        array.memberEnds.reserveCapacity(remaining / 1024 + 1)
                        array.allMembers.reserveCapacity(remaining / 80 + 1)
                        value = try scanner.scanArrayExpandingObjects(into: &array)
                        array.span = value
                        expanded = array
                    } else {
                        value = try scanner.scanValue()
                    }
                } else {
                    value = try scanner.scanValue()
                }
                members.append(JSONMember(key: keySpan, value: value))
                scanner.skipWhitespace()
                guard let c = scanner.peek() else { throw scanner.error("unterminated object") }
                scanner.position += 1
                if c == UInt8(ascii: "}") { break }
                guard c == UInt8(ascii: ",") else {
                    scanner.position -= 1
                    throw scanner.error("expected ',' or '}' in an object")
                }
            }
        }
        scanner.depth -= 1
        let span = JSONSpan(kind: .object, range: start..<scanner.position, hasEscapes: false)
        scanner.skipWhitespace()
        guard scanner.position == bytes.count else { throw scanner.error("trailing characters after the object") }
        return (span, members, expanded)
    }

    /// The members of an object span that was already validated.
    public static func members(of object: JSONSpan, in bytes: UnsafeBufferPointer<UInt8>) throws(JSONSyntaxError) -> [JSONMember] {
        guard object.kind == .object else { throw JSONSyntaxError(offset: object.range.lowerBound, reason: "expected an object") }
        var scanner = JSONScanner(bytes, position: object.range.lowerBound)
        var members: [JSONMember] = []
        _ = try scanner.scanObject(collecting: &members)
        return members
    }

    /// The elements of an array span that was already validated.
    public static func elements(of array: JSONSpan, in bytes: UnsafeBufferPointer<UInt8>) throws(JSONSyntaxError) -> [JSONSpan] {
        guard array.kind == .array else { throw JSONSyntaxError(offset: array.range.lowerBound, reason: "expected an array") }
        var scanner = JSONScanner(bytes, position: array.range.lowerBound)
        var elements: [JSONSpan] = []
        _ = try scanner.scanArray(collecting: &elements)
        return elements
    }

    /// Decodes a string span (escapes resolved) into a Swift string.
    public static func decodeString(_ span: JSONSpan, in bytes: UnsafeBufferPointer<UInt8>) -> String {
        String(decoding: decodeStringBytes(span, in: bytes), as: UTF8.self)
    }

    /// Decodes a string span into its UTF-8 bytes, escapes resolved.
    /// The span must come from this scanner (so its escapes are valid).
    public static func decodeStringBytes(_ span: JSONSpan, in bytes: UnsafeBufferPointer<UInt8>) -> [UInt8] {
        let content = span.contentRange
        guard span.hasEscapes else { return Array(bytes[content]) }
        var out: [UInt8] = []
        out.reserveCapacity(content.count)
        var i = content.lowerBound
        func hex4(_ at: Int) -> UInt32 {
            var v: UInt32 = 0
            for k in 0..<4 { v = v << 4 | UInt32(hexValue(bytes[at + k])) }
            return v
        }
        while i < content.upperBound {
            let c = bytes[i]
            guard c == UInt8(ascii: "\\") else {
                out.append(c)
                i += 1
                continue
            }
            let e = bytes[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "u"):
                var scalar = hex4(i)
                i += 4
                if scalar >= 0xD800 && scalar < 0xDC00, i + 6 <= content.upperBound,
                   bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") {
                    let low = hex4(i + 2)
                    if low >= 0xDC00 && low < 0xE000 {
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        i += 6
                    }
                }
                let unicode = Unicode.Scalar(scalar) ?? "\u{FFFD}"
                out.append(contentsOf: Array(String(Character(unicode)).utf8))
            default: out.append(e)  // \" \\ \/
            }
        }
        return out
    }

    /// Whether the raw bytes between two quotes equal `expected` once decoded.
    public static func stringEquals(_ span: JSONSpan, in bytes: UnsafeBufferPointer<UInt8>, _ expected: some Collection<UInt8>) -> Bool {
        if !span.hasEscapes {
            let content = span.contentRange
            return content.count == expected.count && bytes[content].elementsEqual(expected)
        }
        return decodeStringBytes(span, in: bytes).elementsEqual(expected)
    }

    // MARK: - Grammar

    func error(_ reason: String) -> JSONSyntaxError {
        JSONSyntaxError(offset: position, reason: reason)
    }

    @inline(__always) func peek() -> UInt8? {
        position < bytes.count ? bytes[position] : nil
    }

    /// Compact JSON has no whitespace between tokens: one compare finds that (every other byte a token starts
    /// with is above 0x20), and only whitespace takes the loop.
    @inline(__always) mutating func skipWhitespace() {
        if position < bytes.count, bytes[position] > 0x20 { return }
        skipWhitespaceRun()
    }

    mutating func skipWhitespaceRun() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x0A, 0x0D, 0x09: position += 1
            default: return
            }
        }
    }

    mutating func scanValue() throws(JSONSyntaxError) -> JSONSpan {
        guard let c = peek() else { throw error("unexpected end of input") }
        switch c {
        case UInt8(ascii: "{"):
            var ignored: [JSONMember]? = nil
            return try scanObject(collecting: &ignored)
        case UInt8(ascii: "["):
            var ignored: [JSONSpan]? = nil
            return try scanArray(collecting: &ignored)
        case UInt8(ascii: "\""): return try scanString()
        case UInt8(ascii: "t"): return try scanLiteral("true", kind: .bool)
        case UInt8(ascii: "f"): return try scanLiteral("false", kind: .bool)
        case UInt8(ascii: "n"): return try scanLiteral("null", kind: .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try scanNumber()
        default: throw error("unexpected character")
        }
    }

    mutating func scanObject(collecting members: inout [JSONMember]) throws(JSONSyntaxError) -> JSONSpan {
        var optional: [JSONMember]? = members
        defer { members = optional ?? [] }
        return try scanObject(collecting: &optional)
    }

    mutating func scanObject(collecting members: inout [JSONMember]?) throws(JSONSyntaxError) -> JSONSpan {
        let start = position
        depth += 1
        guard depth <= Self.maximumDepth else { throw error("nesting deeper than \(Self.maximumDepth)") }
        defer { depth -= 1 }
        position += 1  // {
        skipWhitespace()
        if peek() == UInt8(ascii: "}") {
            position += 1
            return JSONSpan(kind: .object, range: start..<position, hasEscapes: false)
        }
        while true {
            skipWhitespace()
            guard peek() == UInt8(ascii: "\"") else { throw error("expected a string key") }
            let key = try scanString()
            skipWhitespace()
            guard peek() == UInt8(ascii: ":") else { throw error("expected ':' after a key") }
            position += 1
            skipWhitespace()
            // Most values are strings: scanned right here, without the call through scanValue.
            let value = peek() == UInt8(ascii: "\"") ? try scanString() : try scanValue()
            members?.append(JSONMember(key: key, value: value))
            skipWhitespace()
            guard let c = peek() else { throw error("unterminated object") }
            position += 1
            if c == UInt8(ascii: "}") { break }
            guard c == UInt8(ascii: ",") else {
                position -= 1
                throw error("expected ',' or '}' in an object")
            }
        }
        return JSONSpan(kind: .object, range: start..<position, hasEscapes: false)
    }

    mutating func scanArray(collecting elements: inout [JSONSpan]) throws(JSONSyntaxError) -> JSONSpan {
        var optional: [JSONSpan]? = elements
        defer { elements = optional ?? [] }
        return try scanArray(collecting: &optional)
    }

    mutating func scanArray(collecting elements: inout [JSONSpan]?) throws(JSONSyntaxError) -> JSONSpan {
        var notExpanding: ExpandedArray? = nil
        return try scanArray(collecting: &elements, expanding: &notExpanding)
    }

    /// Scans an array like ``scanArray(collecting:)``, collecting each element and,
    /// for elements that are objects, their members.
    mutating func scanArrayExpandingObjects(into array: inout ExpandedArray) throws(JSONSyntaxError) -> JSONSpan {
        var expanding: ExpandedArray? = array
        var notCollecting: [JSONSpan]? = nil
        defer { array = expanding ?? ExpandedArray() }
        return try scanArray(collecting: &notCollecting, expanding: &expanding)
    }

    /// The array grammar, once: optionally collecting the elements, and optionally the members of object elements.
    mutating func scanArray(collecting elements: inout [JSONSpan]?, expanding: inout ExpandedArray?) throws(JSONSyntaxError) -> JSONSpan {
        let start = position
        depth += 1
        guard depth <= Self.maximumDepth else { throw error("nesting deeper than \(Self.maximumDepth)") }
        defer { depth -= 1 }
        position += 1  // [
        skipWhitespace()
        if peek() == UInt8(ascii: "]") {
            position += 1
            return JSONSpan(kind: .array, range: start..<position, hasEscapes: false)
        }
        while true {
            skipWhitespace()
            let value: JSONSpan
            if expanding != nil, peek() == UInt8(ascii: "{") {
                // Members go straight into the array's flat list (no array per element).
                var members = expanding?.allMembers
                expanding?.allMembers = []
                defer { expanding?.allMembers = members ?? [] }
                value = try scanObject(collecting: &members)
            } else {
                value = try scanValue()
            }
            elements?.append(value)
            expanding?.elements.append(value)
            if let ends = expanding?.allMembers.count { expanding?.memberEnds.append(ends) }
            skipWhitespace()
            guard let c = peek() else { throw error("unterminated array") }
            position += 1
            if c == UInt8(ascii: "]") { break }
            guard c == UInt8(ascii: ",") else {
                position -= 1
                throw error("expected ',' or ']' in an array")
            }
        }
        return JSONSpan(kind: .array, range: start..<position, hasEscapes: false)
    }

    mutating func scanLiteral(_ literal: StaticString, kind: JSONKind) throws(JSONSyntaxError) -> JSONSpan {
        let start = position
        let count = literal.utf8CodeUnitCount
        guard position + count <= bytes.count else { throw error("unexpected end of input") }
        let matches = literal.withUTF8Buffer { lit in
            for k in 0..<count where bytes[position + k] != lit[k] { return false }
            return true
        }
        guard matches else { throw error("invalid literal") }
        position += count
        return JSONSpan(kind: kind, range: start..<position, hasEscapes: false)
    }

    mutating func scanNumber() throws(JSONSyntaxError) -> JSONSpan {
        let start = position
        func isDigit(_ c: UInt8?) -> Bool { c.map { $0 >= 0x30 && $0 <= 0x39 } ?? false }
        if peek() == UInt8(ascii: "-") { position += 1 }
        guard let first = peek(), isDigit(first) else { throw error("expected a digit") }
        position += 1
        if first != UInt8(ascii: "0") {
            while isDigit(peek()) { position += 1 }
        }
        if peek() == UInt8(ascii: ".") {
            position += 1
            guard isDigit(peek()) else { throw error("expected a digit after '.'") }
            while isDigit(peek()) { position += 1 }
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            position += 1
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { position += 1 }
            guard isDigit(peek()) else { throw error("expected a digit in the exponent") }
            while isDigit(peek()) { position += 1 }
        }
        return JSONSpan(kind: .number, range: start..<position, hasEscapes: false)
    }

    /// Scans a string whose opening quote is at `position`. Inlined where keys and values are read: the common
    /// string (plain ASCII up to its closing quote, found 16 bytes at a time without reading past the buffer) is
    /// found here; anything else (escapes, other UTF-8, a buffer end closer than 16 bytes, errors) starts over
    /// in ``scanStringInFull()``.
    @inline(__always)
    mutating func scanString() throws(JSONSyntaxError) -> JSONSpan {
        let start = position
        let end = bytes.count
        if let base = bytes.baseAddress {
            var p = start + 1
            while p + 16 <= end {
                let stops = leadtrail_json_string_stops16(base + p)
                if stops != 0 {
                    p += stops.trailingZeroBitCount
                    guard base[p] == UInt8(ascii: "\"") else { break }
                    position = p + 1
                    return JSONSpan(kind: .string, range: start..<position, hasEscapes: false)
                }
                p += 16
            }
        }
        return try scanStringInFull()
    }

    /// The whole string grammar: escapes, UTF-8 validation and every error.
    @inline(never)
    mutating func scanStringInFull() throws(JSONSyntaxError) -> JSONSpan {
        let start = position
        let end = bytes.count
        guard let base = bytes.baseAddress else { throw error("unterminated string") }
        // The position lives in a local while scanning (stored back before any call or exit).
        var p = start + 1  // after the opening quote
        var hasEscapes = false
        while true {
            // Fast path: skip plain ASCII bytes (no quote, backslash, control or non-ASCII byte), 16 at a time
            // with SSE2, then 8 at a time in a word.
            var stopped = false
            while p + 16 <= end {
                let stops = leadtrail_json_string_stops16(base + p)
                if stops != 0 {
                    p += stops.trailingZeroBitCount
                    stopped = true
                    break
                }
                p += 16
            }
            while !stopped, p + 8 <= end {
                let word = UInt64(littleEndian: UnsafeRawPointer(base + p).loadUnaligned(as: UInt64.self))
                let ones: UInt64 = 0x0101_0101_0101_0101
                let highs: UInt64 = 0x8080_8080_8080_8080
                let quote = word ^ (ones &* 0x22)
                let backslash = word ^ (ones &* 0x5C)
                let special = ((quote &- ones) & ~quote) | ((backslash &- ones) & ~backslash) | ((word &- ones &* 0x20) & ~word) | word
                let hits = special & highs
                if hits != 0 {
                    // The lowest flagged byte is exact (borrows only flag bytes above a true hit): go straight to it.
                    p += hits.trailingZeroBitCount >> 3
                    stopped = true
                    break
                }
                p += 8
            }
            guard p < end else {
                position = p
                throw error("unterminated string")
            }
            let c = base[p]
            if c == UInt8(ascii: "\"") {
                position = p + 1
                return JSONSpan(kind: .string, range: start..<position, hasEscapes: hasEscapes)
            }
            if c == UInt8(ascii: "\\") {
                hasEscapes = true
                guard p + 1 < end else {
                    position = p
                    throw error("unterminated escape")
                }
                switch base[p + 1] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                    UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    p += 2
                case UInt8(ascii: "u"):
                    position = p
                    guard p + 6 <= end else { throw error("truncated \\u escape") }
                    for k in 2..<6 where Self.hexValue(base[p + k]) == 0xFF {
                        throw error("invalid \\u escape")
                    }
                    p += 6
                default:
                    position = p
                    throw error("invalid escape")
                }
            } else if c < 0x20 {
                position = p
                throw error("control character in a string")
            } else if c < 0x80 {
                p += 1
            } else {
                position = p
                try scanUTF8Sequence(lead: c)
                p = position
            }
        }
    }

    /// Validates one multi-byte UTF-8 sequence (RFC 3629: no overlongs, no surrogates).
    @inline(__always)
    mutating func scanUTF8Sequence(lead c: UInt8) throws(JSONSyntaxError) {
        let end = bytes.count
        func cont(_ i: Int) -> Bool { i < end && bytes[i] & 0xC0 == 0x80 }
        switch c {
        case 0xC2...0xDF:
            guard cont(position + 1) else { throw error("invalid UTF-8") }
            position += 2
        case 0xE0...0xEF:
            guard cont(position + 1), cont(position + 2) else { throw error("invalid UTF-8") }
            let c1 = bytes[position + 1]
            if c == 0xE0 && c1 < 0xA0 { throw error("overlong UTF-8") }
            if c == 0xED && c1 >= 0xA0 { throw error("UTF-8 surrogate") }
            position += 3
        case 0xF0...0xF4:
            guard cont(position + 1), cont(position + 2), cont(position + 3) else { throw error("invalid UTF-8") }
            let c1 = bytes[position + 1]
            if c == 0xF0 && c1 < 0x90 { throw error("overlong UTF-8") }
            if c == 0xF4 && c1 >= 0x90 { throw error("UTF-8 beyond U+10FFFF") }
            position += 4
        default:
            throw error("invalid UTF-8")
        }
    }

    @inline(__always)
    static func hexValue(_ c: UInt8) -> UInt8 {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x41 + 10
        case 0x61...0x66: return c - 0x61 + 10
        default: return 0xFF
        }
    }
}

/// An array found by ``JSONScanner/topLevelMembers(_:expanding:)``: its span,
/// its elements, and the top-level members of each element (none for elements
/// that are not objects), all members kept in one flat list.
public struct ExpandedArray: Sendable {
    public var span = JSONSpan(kind: .array, range: 0..<0, hasEscapes: false)
    public var elements: [JSONSpan] = []
    /// The members of every object element, element after element.
    var allMembers: [JSONMember] = []
    /// For each element, where its members end in `allMembers`.
    var memberEnds: [Int] = []

    /// The top-level members of element `index`.
    public func members(of index: Int) -> ArraySlice<JSONMember> {
        allMembers[(index == 0 ? 0 : memberEnds[index - 1])..<memberEnds[index]]
    }

    /// Asks the CPU to bring in the keys of element `index`'s members, read next: a batch is larger than the
    /// cache, so after the scan its first events are no longer there.
    public func prefetchMemberKeys(of index: Int, in bytes: UnsafeBufferPointer<UInt8>) {
        guard let base = bytes.baseAddress else { return }
        for member in members(of: index) { leadtrail_prefetch(base + member.key.range.lowerBound) }
    }
}

/// Writes JSON string literals.
public enum JSONString {
    /// `value` as a quoted JSON string, escaped as RFC 8259 requires.
    public static func quoted(_ value: String) -> String {
        var out: [UInt8] = []
        append(value, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends `value` as a quoted JSON string to `out`.
    public static func append(_ value: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [0x5C, 0x22])
            case UInt8(ascii: "\\"): out.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hex[Int(byte >> 4)], hex[Int(byte & 0xF)]])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

/// Writes JSON numbers (non-negative integers) without allocating.
public enum JSONNumber {
    /// Calls `body` with the decimal digits of `value`, written on the stack.
    @inlinable
    public static func withDigits<R>(_ value: UInt64, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: room for the 20 digits of UInt64.max
        return withUnsafeMutableBytes(of: &digits) { raw in
            var n = value
            var i = raw.count
            repeat {
                i -= 1
                raw[i] = UInt8(ascii: "0") + UInt8(n % 10)
                n /= 10
            } while n > 0
            return body(UnsafeRawBufferPointer(rebasing: raw[i...]))
        }
    }

    /// Appends the decimal digits of `value` to `out`.
    @inlinable
    public static func append(_ value: UInt64, to out: inout [UInt8]) {
        withDigits(value) { out.append(contentsOf: $0) }
    }
}
