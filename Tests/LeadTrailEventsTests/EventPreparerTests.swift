import Testing
@testable import LeadTrailEvents
import LeadTrailTestSupport

/// Prepares `json` with a fixed clock and a fixed assigned id.
private func prepare(
    _ json: String, maxBytes: Int = 1 << 20, now: Int64 = 1_700_000_000_123, assignedID: String = "evt_0123456789ABCDEFGHIJ"
) -> Result<PreparedEvent, EventValidationError> {
    prepareBytes(Array(json.utf8), maxBytes: maxBytes, now: now, assignedID: assignedID)
}

private func prepareBytes(
    _ bytes: [UInt8], maxBytes: Int = 1 << 20, now: Int64 = 1_700_000_000_123, assignedID: String = "evt_0123456789ABCDEFGHIJ"
) -> Result<PreparedEvent, EventValidationError> {
    let preparer = EventPreparer(maxEventBytes: maxBytes)
    return bytes.withUnsafeBufferPointer { b in
        Result { () throws(EventValidationError) -> PreparedEvent in try preparer.prepare(b, now: now, newEventID: { assignedID }) }
    }
}

private func isValid(_ json: String) -> Bool {
    if case .success = prepare(json) { return true }
    return false
}

/// An event with every required field, `fields` spliced in after them.
private func event(_ fields: String = "", type: String = "\"source.submitted\"", lead: String = "\"L1\"") -> String {
    var parts = ["\"type\":\(type)", "\"lead_id\":\(lead)", "\"event_id\":\"e1\"", "\"timestamp\":\"2024-01-15T14:30:45.234Z\""]
    if !fields.isEmpty { parts.append(fields) }
    return "{" + parts.joined(separator: ",") + "}"
}

private func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

/// Checks that every indexed field reference of a prepared event points at the raw bytes of
/// that field's string value in the final JSON (found by rescanning it) and decodes to it.
private func expectFieldRefsMatchRescan(_ prepared: PreparedEvent, sourceLocation: SourceLocation = #_sourceLocation) throws {
    try prepared.json.withUnsafeBufferPointer { b in
        let (_, members) = try JSONScanner.topLevelMembers(b)
        for field in IndexedField.allCases {
            let ref = prepared.fields[field]
            let member = members.first { JSONScanner.decodeString($0.key, in: b) == field.key }
            if let member, member.value.kind == .string {
                #expect(ref.isPresent, "\(field) missing", sourceLocation: sourceLocation)
                #expect(ref.range == member.value.contentRange, "\(field) range", sourceLocation: sourceLocation)
                #expect(ref.hasEscapes == member.value.hasEscapes, "\(field) escapes", sourceLocation: sourceLocation)
                #expect(ref.value(in: b) == JSONScanner.decodeString(member.value, in: b), sourceLocation: sourceLocation)
            } else {
                #expect(!ref.isPresent, "\(field) should be absent", sourceLocation: sourceLocation)
            }
        }
    }
}

@Suite struct EventPreparerTests {
    // MARK: type

    static let validTypes = [
        "a.b", "source.submitted", "recipient.delivered", "custom.score_changed", "a1_.x_9", "a.b.c.d", "a_.0", "x.1",
        "a" + String(repeating: "b", count: 61) + ".c",  // 64 characters
    ]
    static let invalidTypes = [
        "ab", "a.", ".a", "abc", "A.b", "a.B", "1a.b", "_a.b", "a..b", "a.b.", ".a.b", "a-b.c", "a b.c", "é.b", "a.b\\n",
        "a.b ", " a.b", "a.b/c", "",
        "a" + String(repeating: "b", count: 62) + ".c",  // 65 characters
    ]

    @Test(arguments: validTypes)
    func acceptsType(_ type: String) {
        #expect(isValid(event(type: "\"\(type)\"")), "\(type)")
        #expect(EventPreparer.isValidType(Array(type.utf8)))
    }

    @Test(arguments: invalidTypes)
    func refusesType(_ type: String) {
        #expect(!isValid(event(type: "\"\(type)\"")), "\(type)")
    }

    @Test func typeMustBeAStringAndIsRequired() {
        for value in ["1", "true", "[]", "{}", "null", "[\"a.b\"]"] {
            #expect(!isValid(event(type: value)), "\(value)")
        }
        #expect(!isValid("{\"lead_id\":\"L1\"}"))
    }

    @Test func typeWithEscapesIsCheckedDecoded() {
        #expect(isValid(event(type: "\"source\\u002esubmitted\"")))
        #expect(!isValid(event(type: "\"source\\u002Esub mitted\"")))
        #expect(!isValid(event(type: "\"Source\\u002esubmitted\"")))
    }

    // MARK: lead_id

    @Test func leadIDRules() {
        #expect(isValid(event(lead: "\"x\"")))
        #expect(isValid(event(lead: "\"" + String(repeating: "a", count: 128) + "\"")))
        #expect(!isValid(event(lead: "\"" + String(repeating: "a", count: 129) + "\"")))
        // Bytes, not characters: 64 two-byte characters are 128 bytes.
        #expect(isValid(event(lead: "\"" + String(repeating: "é", count: 64) + "\"")))
        #expect(!isValid(event(lead: "\"" + String(repeating: "é", count: 64) + "a\"")))
        // Escapes count as the bytes they decode to.
        #expect(isValid(event(lead: "\"" + String(repeating: "\\u0041", count: 128) + "\"")))
        #expect(!isValid(event(lead: "\"" + String(repeating: "\\u0041", count: 129) + "\"")))
        #expect(!isValid(event(lead: "\"\"")))
        for value in ["null", "1", "true", "[]", "{}", "[\"L1\"]"] {
            #expect(!isValid(event(lead: value)), "\(value)")
        }
        #expect(!isValid("{\"type\":\"source.submitted\"}"))
    }

    // MARK: event_id

    static let validIDs = ["a", "A", "0", "_", "-", "evt_0123456789abcdefghij", "Lead-42_x", String(repeating: "z", count: 64)]
    static let invalidIDs = ["", String(repeating: "z", count: 65), "a.b", "a b", "é", "a/b", "a+b", "a\\nb", "a:b", "ab="]

    @Test(arguments: validIDs)
    func acceptsEventID(_ id: String) throws {
        let prepared = try prepare("{\"type\":\"a.b\",\"lead_id\":\"L\",\"event_id\":\"\(id)\"}").get()
        #expect(prepared.eventID == id)
        #expect(!prepared.eventIDAssigned)
        #expect(prepared.eventIDHash == StableHash.hash64(id))
    }

    @Test(arguments: invalidIDs)
    func refusesEventID(_ id: String) {
        #expect(!isValid("{\"type\":\"a.b\",\"lead_id\":\"L\",\"event_id\":\"\(id)\"}"), "\(id)")
    }

    @Test func eventIDMustBeAString() {
        for value in ["1", "true", "[]", "{}", "[\"a\"]"] {
            #expect(!isValid("{\"type\":\"a.b\",\"lead_id\":\"L\",\"event_id\":\(value)}"), "\(value)")
        }
    }

    @Test func eventIDWithEscapesIsDecoded() throws {
        let prepared = try prepare("{\"type\":\"a.b\",\"lead_id\":\"L\",\"event_id\":\"e\\u0031\"}").get()
        #expect(prepared.eventID == "e1")
        #expect(prepared.eventIDHash == StableHash.hash64("e1"))
        // The stored bytes are the producer's (escapes kept).
        #expect(text(prepared.json).contains("\"event_id\":\"e\\u0031\""))
        try expectFieldRefsMatchRescan(prepared)
    }

    @Test func generatedIDsAreValid() {
        var rng = SplitMix64(seed: 7)
        for _ in 0..<1000 {
            let id = EventID.generate(using: &rng)
            #expect(id.utf8.count == 24)
            #expect(id.hasPrefix("evt_"))
            #expect(EventID.isValid(Array(id.utf8)))
        }
        #expect(EventID.generate() != EventID.generate())
    }

    // MARK: server-assigned event_id and timestamp

    @Test func absentIDAndTimestampAreAssigned() throws {
        let input = "{\"type\":\"source.submitted\",\"lead_id\":\"L1\"}"
        let prepared = try prepare(input, now: 1_705_329_045_234, assignedID: "evt_AAAAAAAAAAAAAAAAAAAA").get()
        #expect(text(prepared.json) == "{\"event_id\":\"evt_AAAAAAAAAAAAAAAAAAAA\",\"timestamp\":\"2024-01-15T14:30:45.234Z\",\"type\":\"source.submitted\",\"lead_id\":\"L1\"}")
        #expect(prepared.eventIDAssigned)
        #expect(prepared.eventID == "evt_AAAAAAAAAAAAAAAAAAAA")
        #expect(prepared.timestampMs == 1_705_329_045_234)
        try expectFieldRefsMatchRescan(prepared)
    }

    @Test func nullIDAndTimestampAreReplacedInPlace() throws {
        let input = "{\"type\":\"a.b\", \"event_id\" : null ,\"lead_id\":\"L1\",\"timestamp\":null,\"z\":1}"
        let prepared = try prepare(input, now: 0, assignedID: "evt_BBBBBBBBBBBBBBBBBBBB").get()
        #expect(text(prepared.json) == "{\"type\":\"a.b\", \"event_id\" : \"evt_BBBBBBBBBBBBBBBBBBBB\" ,\"lead_id\":\"L1\",\"timestamp\":\"1970-01-01T00:00:00.000Z\",\"z\":1}")
        #expect(prepared.eventIDAssigned)
        #expect(prepared.timestampMs == 0)
        try expectFieldRefsMatchRescan(prepared)
    }

    @Test func onlyTheMissingOneIsAssigned() throws {
        let noID = try prepare("{\"type\":\"a.b\",\"lead_id\":\"L\",\"timestamp\":\"2024-01-15T14:30:45.234Z\"}", assignedID: "evt_C").get()
        #expect(text(noID.json) == "{\"event_id\":\"evt_C\",\"type\":\"a.b\",\"lead_id\":\"L\",\"timestamp\":\"2024-01-15T14:30:45.234Z\"}")
        #expect(noID.timestampMs == 1_705_329_045_234)
        let noTime = try prepare("{\"type\":\"a.b\",\"lead_id\":\"L\",\"event_id\":\"x\"}", now: 1000).get()
        #expect(text(noTime.json) == "{\"timestamp\":\"1970-01-01T00:00:01.000Z\",\"type\":\"a.b\",\"lead_id\":\"L\",\"event_id\":\"x\"}")
        #expect(!noTime.eventIDAssigned)
        try expectFieldRefsMatchRescan(noID)
        try expectFieldRefsMatchRescan(noTime)
    }

    @Test func timestampMustBeAnRFC3339String() {
        for value in ["1705329045234", "true", "{}", "[]", "\"2024-01-15\"", "\"2024-02-30T00:00:00Z\"", "\"yesterday\"", "\"\"", "\"9999-12-31T23:30:00-01:00\""] {
            #expect(!isValid("{\"type\":\"a.b\",\"lead_id\":\"L\",\"timestamp\":\(value)}"), "\(value)")
        }
    }

    @Test func timestampIsNormalisedInPlace() throws {
        let input = "{\"type\":\"a.b\",\"timestamp\":\"2024-01-15t15:30:45.2349+01:00\",\"lead_id\":\"L\",\"event_id\":\"e\",\"outcome\":\"ok\"}"
        let prepared = try prepare(input).get()
        #expect(text(prepared.json) == "{\"type\":\"a.b\",\"timestamp\":\"2024-01-15T14:30:45.234Z\",\"lead_id\":\"L\",\"event_id\":\"e\",\"outcome\":\"ok\"}")
        #expect(prepared.timestampMs == 1_705_329_045_234)
        try expectFieldRefsMatchRescan(prepared)
        // Escapes in a timestamp are decoded, and the stored form is canonical.
        let escaped = try prepare("{\"type\":\"a.b\",\"lead_id\":\"L\",\"event_id\":\"e\",\"timestamp\":\"2024-01-15T14:30:45.234\\u005a\"}").get()
        #expect(text(escaped.json) == "{\"type\":\"a.b\",\"lead_id\":\"L\",\"event_id\":\"e\",\"timestamp\":\"2024-01-15T14:30:45.234Z\"}")
        // A canonical timestamp leaves the bytes untouched.
        let canonical = "{\"type\":\"a.b\",\"lead_id\":\"L\",\"event_id\":\"e\",\"timestamp\":\"2024-01-15T14:30:45.234Z\"}"
        #expect(try text(prepare(canonical).get().json) == canonical)
    }

    // MARK: optional strings

    @Test(arguments: ["flow_id", "entity_id", "step_id", "outcome"])
    func optionalStringRules(_ key: String) throws {
        #expect(isValid(event("\"\(key)\":\"\"")))
        #expect(isValid(event("\"\(key)\":\"" + String(repeating: "a", count: 128) + "\"")))
        #expect(!isValid(event("\"\(key)\":\"" + String(repeating: "a", count: 129) + "\"")))
        #expect(isValid(event("\"\(key)\":\"" + String(repeating: "é", count: 64) + "\"")))
        #expect(!isValid(event("\"\(key)\":\"" + String(repeating: "é", count: 64) + "x\"")))
        #expect(isValid(event("\"\(key)\":\"" + String(repeating: "\\n", count: 128) + "\"")))
        #expect(!isValid(event("\"\(key)\":\"" + String(repeating: "\\n", count: 129) + "\"")))
        for value in ["1", "true", "[]", "{}"] {
            #expect(!isValid(event("\"\(key)\":\(value)")), "\(key): \(value)")
        }
        // null counts as absent, and is stored as sent.
        let input = event("\"\(key)\":null")
        let prepared = try prepare(input).get()
        #expect(text(prepared.json) == input)
        let field = IndexedField.allCases.first { $0.key == key }!
        #expect(!prepared.fields[field].isPresent)
    }

    // MARK: duration_ms

    static let validDurations = ["0", "1", "1.5", "1e3", "0.0001", "12345678901234567890", "-0", "-0.0", "-0e5", "null", "0E-2"]
    static let invalidDurations = ["-1", "-0.5", "-1e-3", "-0.0001", "\"5\"", "true", "[]", "{}", "-1E2"]

    @Test(arguments: validDurations)
    func acceptsDuration(_ value: String) {
        #expect(isValid(event("\"duration_ms\":\(value)")), "\(value)")
    }

    @Test(arguments: invalidDurations)
    func refusesDuration(_ value: String) {
        #expect(!isValid(event("\"duration_ms\":\(value)")), "\(value)")
    }

    // MARK: metadata, lead_snapshot

    @Test(arguments: ["metadata", "lead_snapshot"])
    func objectFields(_ key: String) {
        #expect(isValid(event("\"\(key)\":{}")))
        #expect(isValid(event("\"\(key)\":{\"a\":{\"b\":{\"c\":[1,{\"d\":null}]}}}")))
        #expect(isValid(event("\"\(key)\":null")))
        for value in ["[]", "\"x\"", "1", "true", "[{}]"] {
            #expect(!isValid(event("\"\(key)\":\(value)")), "\(key): \(value)")
        }
    }

    // MARK: unknown fields, duplicates, seq

    @Test func unknownFieldsArePreservedByteForByte() throws {
        let input = "{ \"zeta\" : [1, 2.50, -0.0e+0, \"\\u00e9\\n\"] ,\"type\":\"a.b\",\"lead_id\":\"L\",\"event_id\":\"e\","
            + "\"timestamp\":\"2024-01-15T14:30:45.234Z\",\"é\":{\"nested\":{\"x\":null}},\"dup\":1,\"dup\":2,"
            + "\"big\":123456789012345678901234567890,\"t\":true\t}"
        let prepared = try prepare(input).get()
        #expect(text(prepared.json) == input)
        try expectFieldRefsMatchRescan(prepared)
    }

    @Test func surroundingWhitespaceIsNotStored() throws {
        let object = "{\"type\":\"a.b\",\"lead_id\":\"L\",\"event_id\":\"e\",\"timestamp\":\"2024-01-15T14:30:45.234Z\"}"
        let prepared = try prepare(" \n\t" + object + " \r\n").get()
        #expect(text(prepared.json) == object)
        try expectFieldRefsMatchRescan(prepared)
    }

    @Test func unknownFieldsAroundEditsArePreserved() throws {
        let input = "{\"m\":{\"timestamp\":null,\"event_id\":null},\"type\":\"a.b\",\"lead_id\":\"L\",\"x\":\"\\\"\"}"
        let prepared = try prepare(input, now: 0, assignedID: "evt_D").get()
        #expect(text(prepared.json) == "{\"event_id\":\"evt_D\",\"timestamp\":\"1970-01-01T00:00:00.000Z\",\"m\":{\"timestamp\":null,\"event_id\":null},\"type\":\"a.b\",\"lead_id\":\"L\",\"x\":\"\\\"\"}")
        try expectFieldRefsMatchRescan(prepared)
    }

    static let contractKeys = ["type", "lead_id", "event_id", "timestamp", "flow_id", "entity_id", "step_id", "outcome",
                               "duration_ms", "metadata", "lead_snapshot"]

    /// Contract keys are recognised by their exact bytes, and near misses are not, both where a key can be read
    /// as two words (16 bytes or more before the buffer ends) and where it is compared byte by byte (near the end).
    @Test(arguments: contractKeys + ["seq"])
    func contractKeysAreRecognisedExactly(_ key: String) {
        func recognised(_ candidate: String, paddedTo padding: Int) -> ContractKey? {
            let bytes = Array("\"\(candidate)\"".utf8) + [UInt8](repeating: UInt8(ascii: "x"), count: padding)
            return bytes.withUnsafeBufferPointer { buffer in
                ContractKey(JSONSpan(kind: .string, range: 0..<(candidate.utf8.count + 2), hasEscapes: false), in: buffer)
            }
        }
        let first = key.first.map(String.init) ?? ""
        let nearMisses = [
            String(key.dropLast()) + "x", String(key.dropLast()), key + "x", "x" + key.dropFirst(), first.uppercased() + key.dropFirst(),
            String(key.dropLast()) + key.suffix(1).uppercased(),
        ]
        for padding in [0, 1, 16] {
            #expect(recognised(key, paddedTo: padding)?.name == key, "padding \(padding)")
            for miss in nearMisses where miss != key {
                #expect(recognised(miss, paddedTo: padding) == nil, "\(miss), padding \(padding)")
            }
        }
    }

    @Test(arguments: contractKeys)
    func duplicateContractKeysAreRefused(_ key: String) {
        let value: String
        switch key {
        case "type": value = "\"a.b\""
        case "duration_ms": value = "1"
        case "metadata", "lead_snapshot": value = "{}"
        case "timestamp": value = "\"2024-01-15T14:30:45.234Z\""
        default: value = "\"v\""
        }
        // `event()` already holds type, lead_id, event_id and timestamp; the others go in once first.
        let inBase = ["type", "lead_id", "event_id", "timestamp"].contains(key)
        let first = inBase ? "" : "\"\(key)\":\(value),"
        #expect(isValid(event(first.isEmpty ? "" : String(first.dropLast()))), "\(key) once")
        #expect(!isValid(event(first + "\"\(key)\":\(value)")), "\(key) twice")
        #expect(!isValid(event(first + "\"\(key)\":null")), "\(key) twice, one null")
        // The same key spelled with an escape is the same key.
        let escaped = String(key.dropLast()) + "\\u00" + String(key.unicodeScalars.last!.value, radix: 16)
        #expect(!isValid(event(first + "\"\(escaped)\":\(value)")), "\(key) twice, escaped")
    }

    @Test func seqIsRefused() {
        #expect(!isValid(event("\"seq\":1")))
        #expect(!isValid(event("\"seq\":null")))
        #expect(!isValid(event("\"se\\u0071\":\"x\"")))
        // Only at the top level.
        #expect(isValid(event("\"metadata\":{\"seq\":1}")))
    }

    // MARK: size and shape

    @Test func maximumSize() throws {
        let base = event("\"pad\":\"\"")
        let limit = 1 << 20
        let exactly = event("\"pad\":\"" + String(repeating: "x", count: limit - base.utf8.count) + "\"")
        #expect(exactly.utf8.count == limit)
        #expect(isValid(exactly))
        let over = event("\"pad\":\"" + String(repeating: "x", count: limit - base.utf8.count + 1) + "\"")
        #expect(!isValid(over))
        // Configurable.
        let small = event()
        #expect(try prepare(small, maxBytes: small.utf8.count).get().json.count == small.utf8.count)
        #expect(throws: EventValidationError.self) { try prepare(small, maxBytes: small.utf8.count - 1).get() }
    }

    @Test func mustBeOneJSONObject() {
        for input in ["", "[]", "1", "\"x\"", "null", "{", event() + "{}", event() + ",", "{\"type\":\"a.b\",\"lead_id\":\"L\",}"] {
            #expect(!isValid(input), "\(input)")
        }
        #expect(!isValid("{\"type\":\"a.b\",\"lead_id\":\"L\",\"x\":\"\u{1}\"}"))
        let invalidUTF8 = Array("{\"type\":\"a.b\",\"lead_id\":\"L".utf8) + [0xC0, 0xAF] + Array("\"}".utf8)
        if case .success = prepareBytes(invalidUTF8) { Issue.record("invalid UTF-8 accepted") }
    }

    @Test func hashesAreOfTheDecodedValues() throws {
        let prepared = try prepare("{\"type\":\"a.b\",\"lead_id\":\"L\\u00e9\",\"event_id\":\"e\"}").get()
        #expect(prepared.leadHash == StableHash.hash64("Lé"))
        #expect(prepared.eventIDHash == StableHash.hash64("e"))
    }

    // MARK: field references

    @Test func fieldReferencesPointAtTheRightBytes() throws {
        let inputs = [
            // No edits.
            "{\"type\":\"a.b\",\"lead_id\":\"L1\",\"event_id\":\"e\",\"timestamp\":\"2024-01-15T14:30:45.234Z\",\"flow_id\":\"f\",\"entity_id\":\"en\",\"step_id\":\"s\",\"outcome\":\"ok\"}",
            // Escapes everywhere.
            "{\"typ\\u0065\":\"a\\u002eb\",\"lead_id\":\"L\\\"1\",\"event_id\":\"e\\u0031\",\"flow_id\":\"f\\\\\",\"entity_id\":\"\\u00e9n\",\"step_id\":\"s\\n\",\"outcome\":\"o\\/k\"}",
            // Edits before and after the fields: insertion at the front, in-place replacement in the middle.
            "{\"outcome\":\"first\",\"timestamp\":\"2024-01-15T15:30:45.2+01:00\",\"type\":\"a.b\",\"event_id\":null,\"lead_id\":\"L\",\"step_id\":\"last\"}",
            "{\"event_id\":null,\"flow_id\":\"f\",\"timestamp\":null,\"type\":\"a.b\",\"lead_id\":\"L\",\"entity_id\":\"e\"}",
            // Optional fields sent as null, nested look-alikes.
            "{\"type\":\"a.b\",\"lead_id\":\"L\",\"outcome\":null,\"metadata\":{\"outcome\":\"nested\",\"lead_id\":\"no\"},\"flow_id\":null}",
        ]
        for input in inputs {
            let prepared = try prepare(input).get()
            try expectFieldRefsMatchRescan(prepared)
            prepared.json.withUnsafeBufferPointer { b in
                #expect(prepared.fields[.type].value(in: b) == "a.b")
                #expect(prepared.fields[.eventID].value(in: b) == prepared.eventID)
                #expect(prepared.fields[.leadID].value(in: b).map { StableHash.hash64($0) } == prepared.leadHash)
            }
        }
    }

    /// Random events: every accepted event's references point at the right bytes, its JSON is valid, and
    /// everything but event_id and timestamp is unchanged.
    @Test func randomEventsPrepareConsistently() throws {
        var batchInputs: [String] = []
        var rng = SplitMix64(seed: 0x5EED_0003)
        let fields = ["flow_id", "entity_id", "step_id", "outcome", "x", "metadata", "duration_ms"]
        for _ in 0..<(Environment.longTests ? 50_000 : 3_000) {
            var members: [String] = ["\"type\":\"a.b\"", "\"lead_id\":\(randomString(&rng))"]
            if Bool.random(using: &rng) { members.append("\"event_id\":" + (Bool.random(using: &rng) ? "null" : "\"id\(rng.next() % 1000)\"")) }
            if Bool.random(using: &rng) { members.append("\"timestamp\":" + (Bool.random(using: &rng) ? "null" : "\"2024-03-0\(Int.random(in: 1...9, using: &rng))T10:00:00.5+02:00\"")) }
            for key in fields where Bool.random(using: &rng) {
                switch key {
                case "metadata": members.append("\"metadata\":{\"k\":\(randomString(&rng))}")
                case "duration_ms": members.append("\"duration_ms\":\(Int.random(in: 0...100, using: &rng))")
                default: members.append("\"\(key)\":\(Bool.random(using: &rng) ? "null" : randomString(&rng))")
                }
            }
            members.shuffle(using: &rng)
            let input = "{" + members.joined(separator: Bool.random(using: &rng) ? "," : " , ") + "}"
            let prepared = try prepare(input).get()
            try expectFieldRefsMatchRescan(prepared)
            batchInputs.append(input)
            // Unknown and optional members keep their exact bytes.
            let output = text(prepared.json)
            for member in members where !member.hasPrefix("\"event_id\"") && !member.hasPrefix("\"timestamp\"") {
                #expect(output.contains(member), "\(member) in \(output)")
            }
        }
        try expectBatchMatchesSingleEvents(batchInputs)
    }

    /// Events prepared into one shared batch (so each starts at a non-zero offset, after edits of the
    /// events before it) come out exactly as when prepared one by one.
    private func expectBatchMatchesSingleEvents(_ inputs: [String]) throws {
        let preparer = EventPreparer()
        var batch = PreparedBatch()
        for input in inputs {
            let bytes = Array(input.utf8)
            try bytes.withUnsafeBufferPointer { (b) throws in
                let (object, members) = try JSONScanner.topLevelMembers(b)
                try preparer.prepare(b, object: object, members: members[...], now: 1_700_000_000_123,
                    newEventID: { "evt_0123456789ABCDEFGHIJ" }, into: &batch)
            }
        }
        #expect(batch.count == inputs.count)
        for (index, input) in inputs.enumerated() {
            let single = try prepare(input).get()
            let fromBatch = batch[index]
            #expect(fromBatch.json == single.json)
            #expect(fromBatch.fields == single.fields)
            #expect(fromBatch.eventID == single.eventID)
            #expect(batch.eventID(at: index) == single.eventID)
            #expect(fromBatch.eventIDHash == single.eventIDHash)
            #expect(fromBatch.leadHash == single.leadHash)
            #expect(fromBatch.timestampMs == single.timestampMs)
            #expect(fromBatch.eventIDAssigned == single.eventIDAssigned)
        }
    }
}

/// A short JSON string literal with a random mix of plain characters, escapes and multi-byte characters.
private func randomString(_ rng: inout SplitMix64) -> String {
    let pieces = ["a", "Z", "0", "_", "é", "😀", "\\n", "\\\"", "\\\\", "\\u0041", "\\u00e9", "\\uD83D\\uDE00", " ", "/"]
    let n = Int.random(in: 1...8, using: &rng)
    return "\"" + (0..<n).map { _ in pieces.randomElement(using: &rng)! }.joined() + "\""
}