import LeadTrailEvents
import LeadTrailWire
import Testing

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

func parseError(_ frame: [UInt8], parser: RequestParser = RequestParser()) -> WireError? {
    do {
        _ = try parser.parse(frame: frame, now: 1_700_000_000_000)
        return nil
    } catch {
        return error
    }
}

@Suite struct EnvelopeTests {
    @Test func badUTF8IsBadFrame() {
        let frame: [UInt8] = Array(#"{"op":"ping","x":""#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8)
        #expect(RequestEnvelope.parse(frame).operation.failureCode == .badFrame)
        #expect(RequestEnvelope.parse([0xFF, 0xFE]).operation.failureCode == .badFrame)
    }

    @Test(arguments: ["", "[]", "42", "\"op\"", "null", "{", "{\"op\":\"ping\"} {}", "{\"op\":\"ping\",}"])
    func notAnObjectIsBadFrame(_ text: String) {
        #expect(RequestEnvelope.parse(bytes(text)).operation.failureCode == .badFrame)
    }

    @Test func missingOrMistypedOpIsBadRequest() {
        #expect(RequestEnvelope.parse(bytes(#"{}"#)).operation.failureCode == .badRequest)
        #expect(RequestEnvelope.parse(bytes(#"{"id":1}"#)).operation.failureCode == .badRequest)
        #expect(RequestEnvelope.parse(bytes(#"{"op":5}"#)).operation.failureCode == .badRequest)
        #expect(RequestEnvelope.parse(bytes(#"{"op":"ping","op":"stats"}"#)).operation.failureCode == .badRequest)
    }

    @Test(arguments: ["follow", "report", "audit", "PING", "nope"])
    func otherOpsAreUnknown(_ op: String) {
        let envelope = RequestEnvelope.parse(bytes(#"{"op":"\#(op)","id":"r1"}"#))
        #expect(envelope.operation.failureCode == .unknownOp)
        #expect(envelope.id == bytes(#""r1""#))
    }

    @Test(arguments: [#""abc""#, "12", "-1.5e3", "true", "false", "null", #""\u00e9\n""#])
    func idIsEchoedExactly(_ id: String) {
        let envelope = RequestEnvelope.parse(bytes(#"{"id": \#(id) ,"op":"ping"}"#))
        #expect(envelope.id == bytes(id))
        #expect(envelope.operation.successValue == .ping)
    }

    @Test func nonScalarIdIsBadRequest() {
        #expect(RequestEnvelope.parse(bytes(#"{"id":[1],"op":"ping"}"#)).operation.failureCode == .badRequest)
        #expect(RequestEnvelope.parse(bytes(#"{"id":{},"op":"ping"}"#)).operation.failureCode == .badRequest)
    }

    @Test func overlongIdIsBadRequest() {
        let long = "\"" + String(repeating: "i", count: RequestEnvelope.maximumIDBytes) + "\""
        let envelope = RequestEnvelope.parse(bytes(#"{"id":\#(long),"op":"ping"}"#))
        #expect(envelope.operation.failureCode == .badRequest)
        #expect(envelope.id == nil)
    }

    @Test func purposeIsRead() {
        #expect(RequestEnvelope.parse(bytes(#"{"op":"get","purpose":"case 12"}"#)).purpose == "case 12")
    }
}

@Suite struct RequestBodyTests {
    @Test func appendKeepsTheProducersBytes() throws {
        let event1 = #"{ "type" : "source.submitted", "lead_id":"L1", "event_id":"e1", "timestamp":"2024-01-15T14:30:45.234Z", "metadata":{"z":1,"a":[1.50,"\u00e9"]}, "x" : 1e2 }"#
        let event2 = #"{"type":"recipient.delivered","lead_id":"L\"2","event_id":"e2","timestamp":"2024-01-15T14:30:46.000Z","n":-0.0}"#
        let frame = bytes(#"{"op":"append","events":[ \#(event1) ,\#(event2)],"id":7}"#)
        guard case .append(let events) = try RequestParser().parse(frame: frame, now: 0) else {
            Issue.record("not an append")
            return
        }
        #expect(events.count == 2)
        #expect(events[0].json == bytes(event1))
        #expect(events[1].json == bytes(event2))
        #expect(events[0].eventID == "e1")
        #expect(events[1].timestampMs == 1_705_329_046_000)
    }

    /// Events that need no edit stay in the frame's own bytes (no copy). When one does need an edit, those
    /// before it are copied out and the batch goes on as a copy. Either way every event comes out exactly as
    /// when prepared on its own, wherever in the batch the first edit comes.
    @Test(arguments: [nil, 0, 1, 3] as [Int?])
    func appendBatchesReferenceTheFrameUntilAnEventNeedsAnEdit(firstEdited: Int?) throws {
        let plain = (0..<4).map { k in
            #"{"type":"source.submitted","lead_id":"L\#(k)","event_id":"e\#(k)","flow_id":"f\#(k)","timestamp":"2024-01-15T14:30:4\#(k).234Z","metadata":{"k":\#(k)}}"#
        }
        let edited = [
            #"{"type":"a.b","lead_id":"L0","timestamp":"2024-01-15T14:30:40.234Z"}"#,       // no id: one is assigned
            #"{"type":"a.b","lead_id":"L1","event_id":"e1","timestamp":"2024-01-15T14:30:41Z"}"#,  // timestamp rewritten
            #"{"type":"a.b","lead_id":"L2","event_id":"e2x","timestamp":"2024-01-15T14:30:42.234Z"}"#,  // id with an escape
        ]
        var events = plain
        if let firstEdited {
            for (offset, event) in edited.enumerated() where firstEdited + offset < events.count { events[firstEdited + offset] = event }
        }
        let frame = bytes(#"{"op":"append","events":[ "# + events.joined(separator: " , ") + "]}")
        let parser = RequestParser()
        guard case .append(let batch) = try parser.parse(RequestEnvelope.parse(frame), now: 1_700_000_000_123, newEventID: { "evt_fixed" }) else {
            Issue.record("not an append")
            return
        }
        #expect(batch.referencesSource == (firstEdited == nil))
        if batch.referencesSource { #expect(batch.bytes == frame) }
        #expect(batch.count == events.count)
        for (index, event) in events.enumerated() {
            let alone = try bytes(event).withUnsafeBufferPointer { (b) throws in
                try parser.preparer.prepare(b, now: 1_700_000_000_123, newEventID: { "evt_fixed" })
            }
            let fromBatch = batch[index]
            #expect(fromBatch.json == alone.json)
            #expect(fromBatch.eventID == alone.eventID)
            #expect(fromBatch.eventIDHash == alone.eventIDHash)
            #expect(fromBatch.leadHash == alone.leadHash)
            #expect(fromBatch.fields == alone.fields)
            #expect(fromBatch.timestampMs == alone.timestampMs)
            #expect(fromBatch.eventIDAssigned == alone.eventIDAssigned)
        }
        #expect(batch.jsonByteCount == (0..<batch.count).reduce(0) { $0 + batch[$1].json.count })
    }

    @Test func appendAssignsIDAndTimestampWhenAbsent() throws {
        let frame = bytes(#"{"op":"append","events":[{"type":"a.b","lead_id":"L1","event_id":null}]}"#)
        guard case .append(let events) = try RequestParser().parse(RequestEnvelope.parse(frame), now: 1_700_000_000_123, newEventID: { "evt_fixed" }) else {
            Issue.record("not an append")
            return
        }
        let json = String(decoding: events[0].json, as: UTF8.self)
        #expect(json.contains(#""event_id":"evt_fixed""#))
        #expect(json.contains(#""timestamp":"2023-11-14T22:13:20.123Z""#))
        #expect(events[0].eventIDAssigned)
    }

    @Test func appendErrors() {
        #expect(parseError(bytes(#"{"op":"append"}"#))?.code == .badRequest)
        #expect(parseError(bytes(#"{"op":"append","events":{}}"#))?.code == .badRequest)
        #expect(parseError(bytes(#"{"op":"append","events":[]}"#))?.code == .badRequest)
        let small = RequestParser(maxEventBytes: 1 << 20, maxBatchEvents: 2)
        let three = bytes(#"{"op":"append","events":[{"type":"a.b","lead_id":"1"},{"type":"a.b","lead_id":"2"},{"type":"a.b","lead_id":"3"}]}"#)
        #expect(parseError(three, parser: small)?.code == .batchTooLarge)

        let bad = parseError(bytes(#"{"op":"append","events":[{"type":"a.b","lead_id":"1"},{"type":"A","lead_id":"2"},5]}"#))
        #expect(bad?.code == .invalidEvent)
        #expect(bad?.index == 1)
        let notObject = parseError(bytes(#"{"op":"append","events":[{"type":"a.b","lead_id":"1"},[1]]}"#))
        #expect(notObject?.code == .invalidEvent)
        #expect(notObject?.index == 1)
        let missingLead = parseError(bytes(#"{"op":"append","events":[{"type":"a.b"}]}"#))
        #expect(missingLead?.index == 0)
        let seqSent = parseError(bytes(#"{"op":"append","events":[{"type":"a.b","lead_id":"x","seq":3}]}"#))
        #expect(seqSent?.code == .invalidEvent)
    }

    @Test func eventSizeLimit() {
        let parser = RequestParser(maxEventBytes: 256, maxBatchEvents: 10)
        let padding = String(repeating: "x", count: 300)
        let error = parseError(bytes(#"{"op":"append","events":[{"type":"a.b","lead_id":"1","p":"\#(padding)"}]}"#), parser: parser)
        #expect(error?.code == .invalidEvent)
        #expect(error?.index == 0)
    }

    @Test func getAndTimelineNeedTheirIDs() throws {
        #expect(parseError(bytes(#"{"op":"get"}"#))?.code == .badRequest)
        #expect(parseError(bytes(#"{"op":"get","event_id":3}"#))?.code == .badRequest)
        #expect(parseError(bytes(#"{"op":"timeline","lead_id":""}"#))?.code == .badRequest)
        guard case .get(let id) = try RequestParser().parse(frame: bytes(#"{"op":"get","event_id":"e\u0031"}"#), now: 0) else {
            Issue.record("not a get")
            return
        }
        #expect(id == "e1")
    }

    @Test func scanFilters() throws {
        let frame = bytes(#"{"op":"scan","from":"2024-01-15T00:00:00Z","to":"2024-01-16T00:00:00+01:00","types":["recipient.*","a.b"],"outcomes":["ok"],"lead_id":"L","flow_id":"F","entity_id":"E","step_id":"S","after_seq":10,"limit":5}"#)
        guard case .scan(let scan) = try RequestParser().parse(frame: frame, now: 0) else {
            Issue.record("not a scan")
            return
        }
        #expect(scan.fromMs == 1_705_276_800_000)
        #expect(scan.toMs == 1_705_359_600_000)
        #expect(scan.types == ["recipient.*", "a.b"])
        #expect(scan.outcomes == ["ok"])
        #expect(scan.leadID == "L")
        #expect(scan.flowID == "F")
        #expect(scan.entityID == "E")
        #expect(scan.stepID == "S")
        #expect(scan.afterSeq == 10)
        #expect(scan.limit == 5)
    }

    @Test(arguments: [
        #"{"op":"scan","from":"yesterday"}"#, #"{"op":"scan","types":"a.b"}"#, #"{"op":"scan","types":[1]}"#,
        #"{"op":"scan","after_seq":-1}"#, #"{"op":"scan","limit":1.5}"#, #"{"op":"scan","lead_id":7}"#,
        #"{"op":"scan","after_seq":"3"}"#,
    ])
    func badScanFilters(_ text: String) {
        #expect(parseError(bytes(text))?.code == .badRequest)
    }
}

@Suite struct ResponseTests {
    @Test func errorShape() {
        let body = ResponseEncoder.error(id: bytes(#""x""#), WireError(.invalidEvent, "bad \"type\"", index: 3))
        #expect(String(decoding: body, as: UTF8.self)
            == #"{"id":"x","ok":false,"error":{"code":"invalid_event","message":"bad \"type\"","index":3}}"#)
        #expect(String(decoding: ResponseEncoder.ok(id: nil), as: UTF8.self) == #"{"ok":true}"#)
    }

    @Test func everyErrorCodeIsSpelledAsInTheContract() {
        #expect(ErrorCode.allCases.map(\.rawValue) == [
            "bad_frame", "frame_too_large", "unknown_op", "bad_request", "invalid_event", "batch_too_large",
            "not_found", "forbidden", "unavailable", "internal",
        ])
    }

    @Test func writerEscapes() {
        var writer = JSONObjectWriter()
        writer.string("k\n", "v\u{01}")
        writer.int("n", -3)
        writer.rawArray("a", [bytes("1"), bytes("{}")])
        #expect(String(decoding: writer.finished(), as: UTF8.self) == #"{"k\n":"v\u0001","n":-3,"a":[1,{}]}"#)
    }
}

@Suite struct DefaultPathsTests {
    @Test func dataDirectory() {
        #expect(DefaultPaths.dataDirectory(environment: ["LEADTRAIL_DATA_DIR": "/d", "HOME": "/h"], uid: 5) == "/d")
        #expect(DefaultPaths.dataDirectory(environment: ["HOME": "/h"], uid: 5) == "/h/.local/share/leadtrail")
        #expect(DefaultPaths.dataDirectory(environment: [:], uid: 5) == "/tmp/leadtrail-5/data")
    }

    @Test func socketPath() {
        let exists: (String) -> Bool = { $0 == "/run/user/5" }
        #expect(DefaultPaths.socketPath(environment: ["LEADTRAIL_SOCKET": "/s.sock"], uid: 5, directoryExists: exists) == "/s.sock")
        #expect(DefaultPaths.socketPath(environment: ["XDG_RUNTIME_DIR": "/run/user/5"], uid: 5, directoryExists: exists) == "/run/user/5/leadtrail.sock")
        #expect(DefaultPaths.socketPath(environment: ["XDG_RUNTIME_DIR": "/gone"], uid: 5, directoryExists: exists) == "/tmp/leadtrail-5/leadtrail.sock")
    }
}

extension Result {
    var failureCode: ErrorCode? {
        if case .failure(let error) = self, let wire = error as? WireError { return wire.code }
        return nil
    }

    var successValue: Success? {
        if case .success(let value) = self { return value }
        return nil
    }
}

@Suite struct BufferedRandomTests {
    @Test func idsAreValidAndDistinct() {
        var random = BufferedRandom()
        var seen: Set<String> = []
        for _ in 0..<5_000 {
            let id = EventID.generate(using: &random)
            #expect(id.hasPrefix("evt_") && id.count == 24)
            seen.insert(id)
        }
        #expect(seen.count == 5_000)
    }
}
