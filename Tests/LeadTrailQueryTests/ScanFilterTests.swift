import Foundation
import LeadTrailEvents
import Testing
@testable import LeadTrailQuery
@testable import LeadTrailStorage
import LeadTrailTestSupport

/// Whether `filter` matches the event `json` stored with `seq`.
private func matches(_ filter: ScanFilter, _ json: String, seq: UInt64 = 10) throws -> Bool {
    let event = try prepared(json)
    return event.json.withUnsafeBufferPointer { body in
        filter.matches(RecordView(seq: seq, timestampMs: event.timestampMs, leadHash: UInt32(truncatingIfNeeded: event.leadHash), fields: event.fields, body: body))
    }
}

private func event(type: String = "recipient.delivered", lead: String = "\"L1\"", _ extra: String = "", ts: String = "2024-01-15T14:30:45.234Z") -> String {
    "{\"type\":\(type.hasPrefix("\"") ? type : "\"\(type)\""),\"lead_id\":\(lead),\"event_id\":\"e\",\"timestamp\":\"\(ts)\"\(extra.isEmpty ? "" : "," + extra)}"
}

@Suite struct ScanFilterTests {
    @Test func emptyFilterMatchesEverything() throws {
        #expect(try matches(ScanFilter(), event()))
        #expect(try matches(ScanFilter(), event(type: "custom.x", "\"outcome\":null")))
    }

    @Test func exactTypesAndPrefixes() throws {
        let delivered = event(type: "recipient.delivered")
        #expect(try matches(ScanFilter(types: ["recipient.delivered"]), delivered))
        #expect(try !matches(ScanFilter(types: ["recipient.failed"]), delivered))
        #expect(try matches(ScanFilter(types: ["recipient.failed", "recipient.delivered"]), delivered))
        #expect(try matches(ScanFilter(types: ["recipient.*"]), delivered))
        #expect(try !matches(ScanFilter(types: ["source.*"]), delivered))
        #expect(try matches(ScanFilter(types: ["source.*", "recipient.*"]), delivered))
        // A prefix ends at the dot: recipient.* is not recipientx.* nor a string prefix of the type.
        #expect(try !matches(ScanFilter(types: ["recipient.*"]), event(type: "recipientx.delivered")))
        #expect(try !matches(ScanFilter(types: ["recip.*"]), delivered))
        #expect(try !matches(ScanFilter(types: ["recipient"]), delivered))
        #expect(try !matches(ScanFilter(types: ["recipient.deliver"]), delivered))
        // Deeper prefixes.
        #expect(try matches(ScanFilter(types: ["custom.x.*"]), event(type: "custom.x.y")))
        #expect(try !matches(ScanFilter(types: ["custom.x.*"]), event(type: "custom.xy.z")))
        #expect(try !matches(ScanFilter(types: ["custom.x.*"]), event(type: "custom.x")))
        #expect(try matches(ScanFilter(types: ["custom.*"]), event(type: "custom.x.y")))
    }

    @Test func escapedTypesAreMatchedDecoded() throws {
        let escaped = event(type: "\"recipient\\u002edelivered\"")
        #expect(try matches(ScanFilter(types: ["recipient.delivered"]), escaped))
        #expect(try matches(ScanFilter(types: ["recipient.*"]), escaped))
        #expect(try !matches(ScanFilter(types: ["source.*"]), escaped))
        let escapedEarly = event(type: "\"\\u0072ecipient.delivered\"")
        #expect(try matches(ScanFilter(types: ["recipient.*"]), escapedEarly))
        #expect(try matches(ScanFilter(types: ["recipient.delivered"]), escapedEarly))
    }

    @Test func outcomes() throws {
        #expect(try matches(ScanFilter(outcomes: ["ok"]), event("\"outcome\":\"ok\"")))
        #expect(try matches(ScanFilter(outcomes: ["bad", "ok"]), event("\"outcome\":\"ok\"")))
        #expect(try !matches(ScanFilter(outcomes: ["ok"]), event("\"outcome\":\"okay\"")))
        #expect(try !matches(ScanFilter(outcomes: ["okay"]), event("\"outcome\":\"ok\"")))
        #expect(try !matches(ScanFilter(outcomes: ["ok"]), event()))
        #expect(try !matches(ScanFilter(outcomes: ["ok"]), event("\"outcome\":null")))
        #expect(try !matches(ScanFilter(outcomes: ["null"]), event("\"outcome\":null")))
        #expect(try matches(ScanFilter(outcomes: [""]), event("\"outcome\":\"\"")))
        #expect(try !matches(ScanFilter(outcomes: [""]), event()))
        // Escapes in the stored value.
        #expect(try matches(ScanFilter(outcomes: ["ok"]), event("\"outcome\":\"o\\u006b\"")))
        #expect(try matches(ScanFilter(outcomes: ["a\"b\\c/é\n"]), event("\"outcome\":\"a\\\"b\\\\c\\/\\u00e9\\n\"")))
        #expect(try !matches(ScanFilter(outcomes: ["a\\\"b"]), event("\"outcome\":\"a\\\"b\"")))
    }

    @Test(arguments: ["lead_id", "flow_id", "entity_id", "step_id"])
    func exactFields(_ key: String) throws {
        func filter(_ value: String) -> ScanFilter {
            switch key {
            case "lead_id": ScanFilter(leadID: value)
            case "flow_id": ScanFilter(flowID: value)
            case "entity_id": ScanFilter(entityID: value)
            default: ScanFilter(stepID: value)
            }
        }
        func withValue(_ raw: String) -> String {
            key == "lead_id" ? event(lead: raw) : event("\"\(key)\":\(raw)")
        }
        #expect(try matches(filter("v1"), withValue("\"v1\"")))
        #expect(try !matches(filter("v1"), withValue("\"v2\"")))
        #expect(try !matches(filter("v"), withValue("\"v1\"")))  // exact, not a prefix
        #expect(try !matches(filter("v1"), withValue("\"v\"")))
        #expect(try matches(filter("v1"), withValue("\"\\u00761\"")))
        #expect(try matches(filter("é \"q\" \\"), withValue("\"\\u00e9 \\\"q\\\" \\\\\"")))
        #expect(try matches(filter("😀"), withValue("\"\\ud83d\\ude00\"")))
        if key != "lead_id" {
            #expect(try !matches(filter("v1"), event()))
            #expect(try !matches(filter("null"), withValue("null")))
        }
    }

    @Test func timeRangeIsHalfOpenAndSeqExclusive() throws {
        let t = Timestamp.parse("2024-01-15T14:30:45.234Z")!
        let e = event()
        #expect(try matches(ScanFilter(fromMs: t), e))
        #expect(try !matches(ScanFilter(fromMs: t + 1), e))
        #expect(try matches(ScanFilter(toMs: t + 1), e))
        #expect(try !matches(ScanFilter(toMs: t), e))
        #expect(try matches(ScanFilter(fromMs: t, toMs: t + 1), e))
        #expect(try !matches(ScanFilter(fromMs: t, toMs: t), e))
        // Offsets are compared as instants.
        #expect(try matches(ScanFilter(fromMs: t, toMs: t + 1), event(ts: "2024-01-15T15:30:45.234+01:00")))
        #expect(try matches(ScanFilter(afterSeq: 9), e, seq: 10))
        #expect(try !matches(ScanFilter(afterSeq: 10), e, seq: 10))
    }

    @Test func filtersCombineWithAnd() throws {
        let e = event(type: "recipient.failed", lead: "\"L9\"", "\"outcome\":\"rejected\",\"entity_id\":\"buyer-1\",\"flow_id\":\"f\",\"step_id\":\"s\"")
        let all = ScanFilter(types: ["recipient.*"], outcomes: ["rejected"], leadID: "L9", flowID: "f", entityID: "buyer-1", stepID: "s")
        #expect(try matches(all, e))
        var broken = all
        broken = ScanFilter(types: ["recipient.*"], outcomes: ["rejected"], leadID: "L9", flowID: "f", entityID: "buyer-2", stepID: "s")
        #expect(try !matches(broken, e))
        broken = ScanFilter(types: ["source.*"], outcomes: ["rejected"], leadID: "L9")
        #expect(try !matches(broken, e))
        broken = ScanFilter(types: ["recipient.*"], outcomes: ["accepted"], leadID: "L9")
        #expect(try !matches(broken, e))
    }

    @Test func hintsCarryTheStorageFilters() {
        let filter = ScanFilter(fromMs: 5, toMs: 9, types: ["a.b"], leadID: "L", afterSeq: 3, limit: 2)
        let hints = filter.hints
        #expect(hints.fromMs == 5)
        #expect(hints.toMs == 9)
        #expect(hints.afterSeq == 3)
        #expect(hints.leadID == "L")
    }
}

@Suite struct QueryEngineTests {
    static func store(_ dir: TemporaryDirectory, segmentMaxBytes: Int = 128 << 20) throws -> EventStore {
        var configuration = StoreConfiguration(directory: dir.path)
        configuration.segmentMaxBytes = segmentMaxBytes
        return try EventStore.open(configuration, fileOperations: NoSyncFileOperations())
    }

    @Test func timelineOrdersByTimestampThenSeq() throws {
        let dir = TemporaryDirectory(inMemory: true)
        let store = try Self.store(dir)
        defer { store.close() }
        let stamps = ["2024-01-15T14:30:45.500Z", "2024-01-15T14:30:45.100Z", "2024-01-15T15:30:45.100+01:00", "2024-01-15T14:30:45.999Z",
                      "2024-01-15T14:30:45.100Z", "2023-12-31T23:59:59.999Z"]
        var events: [PreparedEvent] = []
        for (i, ts) in stamps.enumerated() {
            events.append(try prepared("{\"type\":\"a.b\",\"lead_id\":\"L\",\"event_id\":\"t\(i)\",\"timestamp\":\"\(ts)\"}"))
            events.append(try prepared("{\"type\":\"a.b\",\"lead_id\":\"other\",\"event_id\":\"o\(i)\",\"timestamp\":\"\(ts)\"}"))
        }
        _ = try store.appendAndWait(events)
        let engine = QueryEngine(store: store)
        let (timeline, truncated) = try engine.timeline(leadID: "L")
        #expect(!truncated)
        // seqs: t0=1, t1=3, t2=5, t3=7, t4=9, t5=11. Equal timestamps (t1, t2, t4) keep seq order.
        #expect(timeline.map(\.seq) == [11, 3, 5, 9, 1, 7])
        #expect(timeline.allSatisfy { $0.value(of: .leadID) == "L" })
        #expect(try engine.timeline(leadID: "nobody").events.isEmpty)
    }

    @Test func timelineTruncatesToTheEarliest() throws {
        let dir = TemporaryDirectory(inMemory: true)
        let store = try Self.store(dir, segmentMaxBytes: 4096)
        defer { store.close() }
        var rng = SplitMix64(seed: 71)
        let base: Int64 = 1_705_329_045_000
        var stamps: [Int64] = []
        for batch in 0..<10 {
            let events = try (0..<6).map { i -> PreparedEvent in
                let ts = base + Int64.random(in: -50...50, using: &rng) * 1000
                stamps.append(ts)
                return try prepared("{\"type\":\"a.b\",\"lead_id\":\"L\",\"event_id\":\"x\(batch)_\(i)\",\"timestamp\":\"\(Timestamp.format(ts))\"}")
            }
            _ = try store.appendAndWait(events)
        }
        let engine = QueryEngine(store: store)
        let expected = stamps.enumerated().map { (ts: $0.element, seq: UInt64($0.offset + 1)) }.sorted { ($0.ts, $0.seq) < ($1.ts, $1.seq) }
        for limit in [1, 2, 17, 59, 60, 61, 10_000] {
            let (events, truncated) = try engine.timeline(leadID: "L", limit: limit)
            #expect(truncated == (limit < 60), "limit \(limit)")
            #expect(events.map(\.seq) == expected.prefix(limit).map(\.seq), "limit \(limit)")
            #expect(events.map(\.timestampMs) == expected.prefix(limit).map(\.ts))
        }
    }

    @Test func scanBatchesLimitsAndResumes() throws {
        let dir = TemporaryDirectory(inMemory: true)
        let store = try Self.store(dir, segmentMaxBytes: 4096)
        defer { store.close() }
        var all: [PreparedEvent] = []
        for batch in 0..<12 {
            let events = try (0..<5).map { i in
                try prepared("{\"type\":\"\(i % 2 == 0 ? "recipient.delivered" : "source.submitted")\",\"lead_id\":\"L\(i)\",\"event_id\":\"s\(batch)_\(i)\",\"timestamp\":\"2024-01-15T14:30:45.234Z\",\"pad\":\"\(String(repeating: "x", count: batch * 20))\"}")
            }
            all += events
            _ = try store.appendAndWait(events)
        }
        let engine = QueryEngine(store: store)
        func rendered(_ seq: Int) -> [UInt8] { Array("{\"seq\":\(seq),".utf8) + all[seq - 1].json.dropFirst() }

        // Batches of at least maxBatchBytes (but the last), in seq order, concatenating to every event.
        for maxBatchBytes in [1, 300, 1000, 1 << 22] {
            var batches: [[[UInt8]]] = []
            let (lastSeq, returned) = try engine.scan(ScanFilter(), maxBatchBytes: maxBatchBytes) { batches.append($0); return true }
            #expect(lastSeq == 60)
            #expect(returned == 60)
            #expect(batches.flatMap { $0 } == (1...60).map(rendered))
            for batch in batches.dropLast() { #expect(batch.reduce(0) { $0 + $1.count } >= maxBatchBytes) }
            #expect(batches.allSatisfy { !$0.isEmpty })
        }
        // A limit stops at the limit-th match and says where: the resume point.
        let delivered = ScanFilter(types: ["recipient.*"], limit: 7)
        var got: [[UInt8]] = []
        let first = try engine.scan(delivered, maxBatchBytes: 500) { got += $0; return true }
        let deliveredSeqs = (1...60).filter { ($0 - 1) % 5 % 2 == 0 }
        #expect(first.returned == 7)
        #expect(first.lastSeq == UInt64(deliveredSeqs[6]))
        #expect(got == deliveredSeqs.prefix(7).map(rendered))
        // Resuming after it gives the next ones.
        got = []
        let second = try engine.scan(ScanFilter(types: ["recipient.*"], afterSeq: first.lastSeq, limit: 7), maxBatchBytes: 500) { got += $0; return true }
        #expect(got == deliveredSeqs.dropFirst(7).prefix(7).map(rendered))
        #expect(second.lastSeq == UInt64(deliveredSeqs[13]))
        // Without a limit the resume point is the end of the log, even when the last event does not match.
        let rest = try engine.scan(ScanFilter(types: ["recipient.*"], afterSeq: 50), maxBatchBytes: 500) { _ in true }
        #expect(rest.lastSeq == 60)
        #expect(rest.returned == deliveredSeqs.filter { $0 > 50 }.count)
        // after_seq beyond the end.
        let beyond = try engine.scan(ScanFilter(afterSeq: 100), maxBatchBytes: 500) { _ in Issue.record("emitted"); return true }
        #expect(beyond.returned == 0)
        #expect(beyond.lastSeq == 100)
        // limit 0 and a consumer that stops.
        #expect(try engine.scan(ScanFilter(afterSeq: 3, limit: 0), maxBatchBytes: 1) { _ in true } == (3, 0))
        var calls = 0
        let stopped = try engine.scan(ScanFilter(), maxBatchBytes: 1) { _ in calls += 1; return calls < 3 }
        #expect(calls == 3)
        #expect(stopped.lastSeq == 3)
        // With a lead filter (through the lead index).
        got = []
        let lead = try engine.scan(ScanFilter(leadID: "L2", limit: 4), maxBatchBytes: 1) { got += $0; return true }
        let leadSeqs = (1...60).filter { ($0 - 1) % 5 == 2 }
        #expect(got == leadSeqs.prefix(4).map(rendered))
        #expect(lead.lastSeq == UInt64(leadSeqs[3]))
    }
}

/// Time-window scans read only the segments and index runs whose timestamps can hold a match,
/// and still return exactly the events a brute-force filter finds.
@Suite struct WindowScanTests {
    @Test func windowsSkipWhatTheyCannotMatchAndStayExact() throws {
        let dir = TemporaryDirectory(inMemory: true)
        let reads = ByteCounter()
        let io = NoSyncFileOperations(bytesRead: reads)
        var configuration = StoreConfiguration(directory: dir.path)
        configuration.segmentMaxBytes = 16 << 10
        configuration.sparseIndexInterval = 1024
        let store = try EventStore.open(configuration, fileOperations: io)
        defer { store.close() }
        // Timestamps mostly rising (a second per event), with some late arrivals.
        let base: Int64 = 1_705_329_045_000
        var rng = SystemRandomNumberGenerator()
        var events: [(seq: UInt64, ts: Int64, type: String)] = []
        for batch in 0..<40 {
            let batchEvents = try (0..<10).map { i -> PreparedEvent in
                let n = batch * 10 + i
                let ts = base + Int64(n) * 1000 - (n % 13 == 0 ? 120_000 : 0)
                let type = n % 3 == 0 ? "recipient.delivered" : "source.submitted"
                return try prepared(
                    "{\"type\":\"\(type)\",\"lead_id\":\"W\(n % 9)\",\"event_id\":\"w\(n)\",\"timestamp\":\"\(Timestamp.format(ts))\",\"pad\":\"\(String(repeating: "p", count: 300))\"}")
            }
            let results = try store.appendAndWait(batchEvents)
            for (event, result) in zip(batchEvents, results) {
                let type = event.json.withUnsafeBufferPointer { event.fields[IndexedField.type].value(in: $0) ?? "" }
                events.append((result.seq, event.timestampMs, type))
            }
        }
        #expect(store.stats().hot.segments >= 8)
        let engine = QueryEngine(store: store)
        let total = store.stats().hot.bytes
        for _ in 0..<40 {
            let from = base + Int64.random(in: -200_000...400_000, using: &rng)
            let to = from + Int64.random(in: 0...60_000, using: &rng)
            for types in [[], ["recipient.*"]] {
                let filter = ScanFilter(fromMs: from, toMs: to, types: types)
                var got: [UInt64] = []
                _ = try engine.scan(filter) { got.append($0.seq); return true }
                let want = events.filter { $0.ts >= from && $0.ts < to && (types.isEmpty || $0.type.hasPrefix("recipient.")) }.map(\.seq)
                #expect(got == want, "window \(from)..<\(to) \(types)")
            }
        }
        // A one-minute window reads a small part of the store.
        let before = reads.value
        var seen = 0
        _ = try engine.scan(ScanFilter(fromMs: base + 200_000, toMs: base + 260_000)) { _ in seen += 1; return true }
        #expect(seen >= 55)
        #expect(reads.value - before < Int(total) / 4, "read \(reads.value - before) of \(total) bytes")
    }
}
