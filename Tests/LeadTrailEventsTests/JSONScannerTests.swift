import Testing
@testable import LeadTrailEvents
import LeadTrailTestSupport

/// Runs `body` over the bytes of `input`.
private func withBytes<T>(_ input: [UInt8], _ body: (UnsafeBufferPointer<UInt8>) throws -> T) rethrows -> T {
    try input.withUnsafeBufferPointer(body)
}

private func validates(_ input: [UInt8]) -> Bool {
    withBytes(input) { (try? JSONScanner.validate($0)) != nil }
}

private func validates(_ input: String) -> Bool { validates(Array(input.utf8)) }

@Suite struct JSONScannerTests {
    static let validDocuments: [String] = [
        "{}", "[]", "0", "-0", "1.5", "-12.5e+3", "1E5", "0.0e-0", "\"\"", "\"a\"", "true", "false", "null",
        " \t\r\n{ \"a\" : [ 1 , 2 , { } ] } \n", "{\"a\":{\"b\":{\"c\":[]}}}", "[[[[]]]]",
        "\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\uD83D\\uDE00\"", "\"\u{7F}\"", "\"é€😀\"",
        "{\"\":\"\"}", "[1,\"two\",true,false,null,{\"x\":-1e-9}]",
        "\"\\uD800\"",  // a lone surrogate escape is grammatical (RFC 8259 section 8.2)
    ]

    @Test(arguments: validDocuments)
    func acceptsValidJSON(_ document: String) {
        #expect(validates(document), "\(document)")
    }

    static let invalidDocuments: [String] = [
        "", " ", "{", "}", "[", "]", "{]", "[}", "{\"a\"}", "{\"a\":}", "{\"a\" 1}", "{a:1}", "{'a':1}",
        "{\"a\":1,}", "[1,]", "[,1]", "[1 2]", "01", "-", "+1", "1.", ".5", "1e", "1e+", "0x10", "NaN", "Infinity",
        "-Infinity", "tru", "truee", "nul", "nulls", "True", "\"abc", "\"\\x\"", "\"\\u12\"", "\"\\u12G4\"", "\"\\",
        "\"a\tb\"", "\"a\nb\"", "\"\u{01}\"", "{} {}", "[] x", "1 2", "{\"a\":1}}", "[\"a\"]]", "\"\\'\"",
        "\u{FEFF}{}",  // no byte order mark
        "{\"a\":1 \"b\":2}", "[1,,2]",
    ]

    @Test(arguments: invalidDocuments)
    func refusesInvalidJSON(_ document: String) {
        #expect(!validates(document), "\(document)")
    }

    static let invalidUTF8: [(String, [UInt8])] = [
        ("lone continuation", [0x80]),
        ("overlong 2-byte slash", [0xC0, 0xAF]),
        ("overlong 2-byte C1", [0xC1, 0xBF]),
        ("overlong 3-byte", [0xE0, 0x80, 0xAF]),
        ("overlong 3-byte top", [0xE0, 0x9F, 0xBF]),
        ("overlong 4-byte", [0xF0, 0x80, 0x80, 0xAF]),
        ("overlong 4-byte top", [0xF0, 0x8F, 0xBF, 0xBF]),
        ("surrogate D800", [0xED, 0xA0, 0x80]),
        ("surrogate DFFF", [0xED, 0xBF, 0xBF]),
        ("beyond U+10FFFF", [0xF4, 0x90, 0x80, 0x80]),
        ("F5 lead", [0xF5, 0x80, 0x80, 0x80]),
        ("FF byte", [0xFF]),
        ("FE byte", [0xFE]),
        ("truncated 2-byte", [0xC3]),
        ("truncated 3-byte", [0xE2, 0x82]),
        ("truncated 4-byte", [0xF0, 0x9F, 0x98]),
        ("bad continuation", [0xC3, 0x28]),
        ("bad second continuation", [0xE2, 0x82, 0x28]),
        ("bad third continuation", [0xF0, 0x9F, 0x98, 0x28]),
    ]

    @Test(arguments: invalidUTF8)
    func refusesInvalidUTF8InStrings(_ name: String, _ sequence: [UInt8]) {
        let document = Array("{\"k\":\"a".utf8) + sequence + Array("b\"}".utf8)
        #expect(!validates(document), "\(name)")
        // Also in a key.
        let inKey = Array("{\"a".utf8) + sequence + Array("\":1}".utf8)
        #expect(!validates(inKey), "\(name) in a key")
    }

    static let validUTF8: [(String, [UInt8])] = [
        ("U+0080", [0xC2, 0x80]),
        ("U+07FF", [0xDF, 0xBF]),
        ("U+0800", [0xE0, 0xA0, 0x80]),
        ("U+D7FF", [0xED, 0x9F, 0xBF]),
        ("U+E000", [0xEE, 0x80, 0x80]),
        ("U+FFFF", [0xEF, 0xBF, 0xBF]),
        ("U+10000", [0xF0, 0x90, 0x80, 0x80]),
        ("U+10FFFF", [0xF4, 0x8F, 0xBF, 0xBF]),
    ]

    @Test(arguments: validUTF8)
    func acceptsBoundaryUTF8(_ name: String, _ sequence: [UInt8]) {
        let document = Array("[\"".utf8) + sequence + Array("\"]".utf8)
        #expect(validates(document), "\(name)")
    }

    @Test func rawNonASCIIOutsideStringsIsRefused() {
        #expect(!validates([0xC3, 0xA9]))
        #expect(!validates(Array("[1,".utf8) + [0xC3, 0xA9] + Array("]".utf8)))
    }

    @Test func depthLimit() {
        let limit = JSONScanner.maximumDepth
        let deepestArrays = String(repeating: "[", count: limit) + String(repeating: "]", count: limit)
        #expect(validates(deepestArrays))
        let tooDeepArrays = String(repeating: "[", count: limit + 1) + String(repeating: "]", count: limit + 1)
        #expect(!validates(tooDeepArrays))
        let deepestObjects = String(repeating: "{\"a\":", count: limit - 1) + "{}" + String(repeating: "}", count: limit - 1)
        #expect(validates(deepestObjects))
        let tooDeepObjects = String(repeating: "{\"a\":", count: limit) + "{}" + String(repeating: "}", count: limit)
        #expect(!validates(tooDeepObjects))
        // Far too deep, unterminated: refused without exhausting the stack.
        #expect(!validates(String(repeating: "[", count: 100_000)))
        #expect(!validates(String(repeating: "{\"a\":[", count: 50_000)))
    }

    @Test func spansPointAtTheValues() throws {
        let text = Array(" {\"a\" : \"x\\ny\", \"b\":[1,2], \"c\":null, \"d\":-1.5e3,\"e\":true} ".utf8)
        try withBytes(text) { b in
            let (object, members) = try JSONScanner.topLevelMembers(b)
            #expect(object.kind == .object)
            #expect(object.range == 1..<(text.count - 1))
            #expect(members.count == 5)
            let keys = members.map { JSONScanner.decodeString($0.key, in: b) }
            #expect(keys == ["a", "b", "c", "d", "e"])
            #expect(members.map(\.value.kind) == [.string, .array, .null, .number, .bool])
            let a = members[0].value
            #expect(a.hasEscapes)
            #expect(String(decoding: b[a.range], as: UTF8.self) == "\"x\\ny\"")
            #expect(String(decoding: b[a.contentRange], as: UTF8.self) == "x\\ny")
            #expect(JSONScanner.decodeString(a, in: b) == "x\ny")
            #expect(String(decoding: b[members[1].value.range], as: UTF8.self) == "[1,2]")
            #expect(String(decoding: b[members[3].value.range], as: UTF8.self) == "-1.5e3")
            let elements = try JSONScanner.elements(of: members[1].value, in: b)
            #expect(elements.map { String(decoding: b[$0.range], as: UTF8.self) } == ["1", "2"])
            let again = try JSONScanner.members(of: object, in: b)
            #expect(again.map { $0.value.range } == members.map { $0.value.range })
        }
    }

    @Test func topLevelMembersRequiresAnObject() {
        for text in ["[]", "1", "\"x\"", "null", "{} x", ""] {
            let ok = withBytes(Array(text.utf8)) { (try? JSONScanner.topLevelMembers($0)) != nil }
            #expect(!ok, "\(text)")
        }
    }

    static let escapes: [(String, String)] = [
        ("\\\"", "\""), ("\\\\", "\\"), ("\\/", "/"), ("\\b", "\u{08}"), ("\\f", "\u{0C}"), ("\\n", "\n"),
        ("\\r", "\r"), ("\\t", "\t"), ("\\u0041", "A"), ("\\u00e9", "é"), ("\\u00E9", "é"), ("\\u20AC", "€"),
        ("\\uD83D\\uDE00", "😀"), ("\\u0000", "\u{0}"), ("a\\u0062c", "abc"), ("\\uD800", "\u{FFFD}"),
        ("\\uDC00", "\u{FFFD}"), ("\\uD800x", "\u{FFFD}x"), ("\\uD800\\u0041", "\u{FFFD}A"),
        ("plain é", "plain é"),
    ]

    @Test(arguments: escapes)
    func decodesEscapes(_ raw: String, _ decoded: String) throws {
        let text = Array("\"\(raw)\"".utf8)
        try withBytes(text) { b in
            let span = try JSONScanner.validate(b)
            #expect(span.kind == .string)
            #expect(JSONScanner.decodeString(span, in: b) == decoded)
            #expect(JSONScanner.decodeStringBytes(span, in: b) == Array(decoded.utf8))
            #expect(JSONScanner.stringEquals(span, in: b, Array(decoded.utf8)))
        }
    }

    @Test func quotedRoundTrips() throws {
        for value in ["", "plain", "quote\" backslash\\ newline\n tab\t cr\r", "\u{01}\u{1F}", "é😀", "/"] {
            let text = Array(JSONString.quoted(value).utf8)
            try withBytes(text) { b in
                let span = try JSONScanner.validate(b)
                #expect(JSONScanner.decodeString(span, in: b) == value)
            }
        }
    }

    /// Never traps, whatever the bytes: random bytes, random JSON-ish tokens, and mutations of valid documents.
    @Test func neverTrapsOnRandomInput() {
        var rng = SplitMix64(seed: 0x5EED_0001)
        let long = Environment.longTests
        let tokens: [[UInt8]] = ["{", "}", "[", "]", ",", ":", "\"", "\\", "\\u", "\\uD83D", "1", "-", ".", "e", "0",
                                 "true", "null", "fals", " ", "\"a\"", "é", "\u{FFFF}"].map { Array($0.utf8) }
            + [[0xC0], [0xED, 0xA0], [0xF4, 0x90], [0xFF], [0x80], [0x00]]
        let seeds = Self.validDocuments.map { Array($0.utf8) }
        for round in 0..<(long ? 200_000 : 20_000) {
            var input: [UInt8] = []
            switch round % 3 {
            case 0:
                input = (0..<Int.random(in: 0...40, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            case 1:
                for _ in 0..<Int.random(in: 0...30, using: &rng) { input += tokens.randomElement(using: &rng)! }
            default:
                input = seeds.randomElement(using: &rng)!
                for _ in 0..<Int.random(in: 1...3, using: &rng) where !input.isEmpty {
                    let at = Int.random(in: 0..<input.count, using: &rng)
                    switch Int.random(in: 0...2, using: &rng) {
                    case 0: input[at] = UInt8.random(in: 0...255, using: &rng)
                    case 1: input.remove(at: at)
                    default: input.insert(UInt8.random(in: 0...255, using: &rng), at: at)
                    }
                }
            }
            input.withUnsafeBufferPointer { b in
                if let span = try? JSONScanner.validate(b) {
                    #expect(span.range.upperBound <= b.count)
                    if span.kind == .string { _ = JSONScanner.decodeString(span, in: b) }
                    if span.kind == .object, let members = try? JSONScanner.members(of: span, in: b) {
                        for member in members { _ = JSONScanner.decodeString(member.key, in: b) }
                    }
                    if span.kind == .array { _ = try? JSONScanner.elements(of: span, in: b) }
                }
                _ = try? JSONScanner.topLevelMembers(b)
            }
        }
    }

    /// The string scanner skips plain bytes 16 and then 8 at a time: every kind of byte that ends a plain run
    /// (closing quote, escape, control character, non-ASCII, invalid UTF-8, the buffer's end) is found at
    /// every offset from the opening quote, with the buffer ending at every distance after it.
    @Test func stringStopsAreFoundAtEveryOffset() throws {
        struct Case {
            let tail: [UInt8]
            /// The decoded string when the document is valid; nil when it must be refused.
            let decoded: String?
        }
        for plain in 0...40 {
            let prefix = String(repeating: "a", count: plain)
            let cases = [
                Case(tail: Array("\"".utf8), decoded: prefix),
                Case(tail: Array("\\nbc\"".utf8), decoded: prefix + "\nbc"),
                Case(tail: Array("\\u00e9\"".utf8), decoded: prefix + "é"),
                Case(tail: Array("é😀\"".utf8), decoded: prefix + "é😀"),
                Case(tail: Array("\u{7F}~\"".utf8), decoded: prefix + "\u{7F}~"),
                Case(tail: [0x01, 0x22], decoded: nil),
                Case(tail: [0x1F, 0x22], decoded: nil),
                Case(tail: [0xFF, 0x22], decoded: nil),
                Case(tail: [0xC3, 0x22], decoded: nil),  // a cut UTF-8 sequence
                Case(tail: Array("\\x\"".utf8), decoded: nil),
                Case(tail: [], decoded: nil),  // no closing quote
            ]
            for testCase in cases {
                for padding in 0...17 {
                    // Trailing whitespace moves the buffer's end, so the 16- and 8-byte steps meet it at every distance.
                    let document = [UInt8(ascii: "\"")] + Array(prefix.utf8) + testCase.tail
                        + [UInt8](repeating: UInt8(ascii: " "), count: padding)
                    try withBytes(document) { b in
                        let span = try? JSONScanner.validate(b)
                        if let expected = testCase.decoded {
                            let span = try #require(span, "plain \(plain), tail \(testCase.tail), padding \(padding)")
                            #expect(span.kind == .string)
                            #expect(span.range == 0..<(document.count - padding))
                            #expect(JSONScanner.decodeString(span, in: b) == expected)
                        } else {
                            #expect(span == nil, "plain \(plain), tail \(testCase.tail), padding \(padding)")
                        }
                    }
                }
            }
        }
    }

    /// What the scanner accepts is exactly what Foundation-free reference rules accept on short strings:
    /// a string made of one code point's UTF-8 bytes validates iff Swift's UTF-8 decoder accepts it.
    @Test func utf8ValidationAgreesWithTheStandardLibrary() {
        var rng = SplitMix64(seed: 0x5EED_0002)
        for _ in 0..<(Environment.longTests ? 200_000 : 20_000) {
            let count = Int.random(in: 1...4, using: &rng)
            var bytes = (0..<count).map { _ in UInt8.random(in: 0x80...0xFF, using: &rng) }
            if Bool.random(using: &rng) { bytes[0] = UInt8.random(in: 0xC0...0xF7, using: &rng) }
            let reference = String(validating: bytes, as: UTF8.self) != nil
            let document = [UInt8(ascii: "\"")] + bytes + [UInt8(ascii: "\"")]
            #expect(validates(document) == reference, "\(bytes.map { String($0, radix: 16) })")
        }
    }
}
