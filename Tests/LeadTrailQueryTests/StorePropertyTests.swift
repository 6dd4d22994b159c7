import Foundation
import LeadTrailEvents
import Testing
@testable import LeadTrailQuery
@testable import LeadTrailStorage
import LeadTrailTestSupport

/// The property test of the storage engine and the query layer: random batches (random leads, duplicate
/// ids within and across batches, server-assigned ids, non-monotone timestamps in many spellings, random
/// sizes, escaped strings), random rotations, restarts, process crashes (with torn tails) and full disks;
/// after every step every read is compared with a simple in-memory model. It lives here rather than in LeadTrailStorageTests because it drives QueryEngine.
///
/// Reproduce a failure with its seed; `LEADTRAIL_LONG_TESTS=1` runs more seeds and steps.
@Suite struct StorePropertyTests {
    struct ModelEvent {
        var seq: UInt64
        var id: String
        var lead: String
        var type: String
        var timestampMs: Int64
        var outcome: String?
        var flow: String?
        var entity: String?
        var step: String?
        var body: [UInt8]
    }

    /// The model: the log as a list, and the id index.
    struct Model {
        var events: [ModelEvent] = []
        var seqOfID: [String: UInt64] = [:]
        var lastSeq: UInt64 { events.last?.seq ?? 0 }
        func event(seq: UInt64) -> ModelEvent? { seq >= 1 && seq <= UInt64(events.count) ? events[Int(seq - 1)] : nil }

        func matches(_ e: ModelEvent, _ f: ScanFilter) -> Bool {
            if e.seq <= f.afterSeq { return false }
            if let from = f.fromMs, e.timestampMs < from { return false }
            if let to = f.toMs, e.timestampMs >= to { return false }
            if !f.types.isEmpty {
                let ok = f.types.contains { t in t.hasSuffix(".*") ? e.type.hasPrefix(String(t.dropLast())) : e.type == t }
                if !ok { return false }
            }
            if !f.outcomes.isEmpty {
                guard let outcome = e.outcome, f.outcomes.contains(outcome) else { return false }
            }
            if let lead = f.leadID, lead != e.lead { return false }
            if let flow = f.flowID, flow != e.flow { return false }
            if let entity = f.entityID, entity != e.entity { return false }
            if let step = f.stepID, step != e.step { return false }
            return true
        }
    }

    static let types = ["source.submitted", "source.accepted", "recipient.delivered", "recipient.failed", "recipientx.delivered",
                        "custom.score_changed", "custom.x.y", "custom.xy", "flow.completed"]
    static let typeFilters = ["source.*", "recipient.*", "custom.*", "custom.x.*", "recipient.delivered", "custom.xy", "flow.completed", "nothing.here"]
    static let leads = ["lead-1", "lead-2", "lé-3", "lead \"4\"", "l\\5", "lead-6", "😀7", String(repeating: "L", count: 128)]
    static let outcomes = ["ok", "failed", "rejected", "é"]
    static let entities = ["buyer-1", "buyer-2", "src/1", "e\"q"]
    static let base: Int64 = 1_705_329_045_000

    /// A random timestamp text for `ms`, in one of several RFC 3339 spellings of the same instant.
    static func timestampText(_ ms: Int64, _ rng: inout SplitMix64) -> String {
        let canonical = Timestamp.format(ms)
        switch Int.random(in: 0..<5, using: &rng) {
        case 0: return canonical
        case 1: return canonical.lowercased()
        case 2: return String(canonical.dropLast()) + String(Int.random(in: 0...999, using: &rng)) + "Z"  // extra digits, truncated
        case 3:
            let minutes = Int.random(in: -(14 * 60)...(14 * 60), using: &rng)
            let local = Timestamp.format(ms + Int64(minutes) * 60_000)
            let h = abs(minutes) / 60, m = abs(minutes) % 60
            return String(local.dropLast()) + (minutes < 0 ? "-" : "+") + (h < 10 ? "0" : "") + String(h) + ":" + (m < 10 ? "0" : "") + String(m)
        default:
            return ms % 1000 == 0 ? String(canonical.dropLast(5)) + "Z" : canonical
        }
    }

    struct Generated {
        var json: String
        var id: String?  // nil: assigned by the server
        var lead, type: String
        var timestampMs: Int64?  // nil: assigned by the server
        var outcome, flow, entity, step: String?
    }

    static func randomEvent(_ rng: inout SplitMix64, idPool: Int) -> Generated {
        let lead = leads.randomElement(using: &rng)!
        let type = types.randomElement(using: &rng)!
        var members: [String] = [
            "\"type\":" + jsonString(type, escapeShare: 6, using: &rng),
            "\"lead_id\":" + jsonString(lead, using: &rng),
        ]
        var g = Generated(json: "", id: nil, lead: lead, type: type, timestampMs: nil)
        switch Int.random(in: 0..<10, using: &rng) {
        case 0: break
        case 1: members.append("\"event_id\":null")
        default:
            let id = "id-\(Int.random(in: 0..<idPool, using: &rng))"
            g.id = id
            members.append("\"event_id\":" + jsonString(id, escapeShare: 8, using: &rng))
        }
        switch Int.random(in: 0..<8, using: &rng) {
        case 0: break
        case 1: members.append("\"timestamp\":null")
        default:
            let ms = base + Int64.random(in: -3_600_000...3_600_000, using: &rng)
            g.timestampMs = ms
            members.append("\"timestamp\":\"" + timestampText(ms, &rng) + "\"")
        }
        func optional(_ key: String, _ pool: [String]) -> String? {
            switch Int.random(in: 0..<4, using: &rng) {
            case 0: return nil
            case 1:
                members.append("\"\(key)\":null")
                return nil
            default:
                let value = pool.randomElement(using: &rng)!
                members.append("\"\(key)\":" + jsonString(value, using: &rng))
                return value
            }
        }
        g.outcome = optional("outcome", outcomes)
        g.entity = optional("entity_id", entities)
        g.flow = optional("flow_id", ["flow-a", "flow-b"])
        g.step = optional("step_id", ["s1", "s2", "s3"])
        if Bool.random(using: &rng) { members.append("\"duration_ms\":\(Int.random(in: 0...5000, using: &rng))") }
        if Bool.random(using: &rng) {
            let size = Int.random(in: 0..<10, using: &rng) == 0 ? Int.random(in: 2000...6000, using: &rng) : Int.random(in: 0...300, using: &rng)
            members.append("\"metadata\":{\"pad\":\"\(String(repeating: "m", count: size))\",\"seq\":1,\"lead_id\":\"nested\"}")
        }
        if Bool.random(using: &rng) { members.append("\"unknown\":[1,{\"a\":null},\"\\u00e9\"]") }
        members.shuffle(using: &rng)
        g.json = "{" + members.joined(separator: ",") + "}"
        return g
    }

    static func randomFilter(_ rng: inout SplitMix64, lastSeq: UInt64) -> ScanFilter {
        func maybe<T>(_ value: @autoclosure () -> T) -> T? { Int.random(in: 0..<3, using: &rng) == 0 ? value() : nil }
        var types: [String] = []
        if Bool.random(using: &rng) { types = (0..<Int.random(in: 1...3, using: &rng)).map { _ in typeFilters.randomElement(using: &rng)! } }
        var outcomesFilter: [String] = []
        if Int.random(in: 0..<3, using: &rng) == 0 { outcomesFilter = (0..<Int.random(in: 1...2, using: &rng)).map { _ in outcomes.randomElement(using: &rng)! } }
        let from = maybe(base + Int64.random(in: -4_000_000...3_000_000, using: &rng))
        let to = maybe((from ?? base) + Int64.random(in: -100_000...4_000_000, using: &rng))
        let lead = Int.random(in: 0..<5, using: &rng) == 0 ? leads.randomElement(using: &rng)! : nil
        let entity = Int.random(in: 0..<4, using: &rng) == 0 ? entities.randomElement(using: &rng)! : nil
        let step = Int.random(in: 0..<6, using: &rng) == 0 ? ["s1", "s2", "s3"].randomElement(using: &rng)! : nil
        let flow = Int.random(in: 0..<6, using: &rng) == 0 ? ["flow-a", "flow-b"].randomElement(using: &rng)! : nil
        let afterSeq = Bool.random(using: &rng) ? UInt64.random(in: 0...(lastSeq + 2), using: &rng) : 0
        let limit = Bool.random(using: &rng) ? Int.random(in: 1...25, using: &rng) : nil
        return ScanFilter(
            fromMs: from, toMs: to, types: types, outcomes: outcomesFilter, leadID: lead, flowID: flow, entityID: entity, stepID: step,
            afterSeq: afterSeq, limit: limit)
    }

    static func open(_ directory: String, sparse: Int, io: DiskFullOnDemand) throws -> EventStore {
        var configuration = StoreConfiguration(directory: directory)
        configuration.segmentMaxBytes = 4096
        configuration.sparseIndexInterval = sparse
        return try EventStore.open(configuration, fileOperations: io)
    }

    static let seeds: [UInt64] = Environment.longTests ? Array(1...24) : [1, 2, 3]

    @Test(arguments: seeds)
    func storeAgreesWithTheModel(seed: UInt64) throws {
        let steps = Environment.longTests ? 600 : 80
        var rng = SplitMix64(seed: seed)
        let dir = TemporaryDirectory(inMemory: true)
        let sparse = [64, 512, 4096].randomElement(using: &rng)!
        let io = DiskFullOnDemand()
        var path = dir.path + "/gen0"
        var store = try Self.open(path, sparse: sparse, io: io)
        defer { store.close() }
        var model = Model()
        var idRNG = SplitMix64(seed: seed ^ 0xA5A5)
        let idPool = Int.random(in: 20...400, using: &rng)
        var now = Self.base
        var coverage = (rotations: 0, restarts: 0, duplicates: 0, assigned: 0, crashes: 0, refused: 0)

        for step in 0..<steps {
            let context = "seed \(seed) step \(step)"
            switch Int.random(in: 0..<24, using: &rng) {
            case 0:
                switch Result(catching: { () throws(StoreError) in try store.rotate() }) {
                case .success(let sealed): if sealed != nil { coverage.rotations += 1 }
                case .failure(let error): try #require(error.code == .unavailable, "\(context): rotate \(error)")
                }
            case 1:
                coverage.restarts += 1
                io.disarm()
                store.close()
                store = try Self.open(path, sparse: sparse, io: io)
                try #require(store.lastSeq == model.lastSeq, "\(context): lastSeq after restart")
                try #require(store.stats().corruptSegments.isEmpty, "\(context): \(store.stats().corruptSegments)")
            case 2:
                // A process crash (kill -9) at a quiet moment: the files as they are, maybe with a torn,
                // never-acknowledged write at the end of the active segment. Recovery must give back exactly the model.
                coverage.crashes += 1
                io.disarm()
                // Quiet means no append in flight and no seal either: the sealer renames files as it finishes.
                store.waitForSeals()
                let copy = dir.path + "/gen\(step + 1)"
                try FileManager.default.copyItem(atPath: path, toPath: copy)
                if Bool.random(using: &rng), let open = try FileManager.default.contentsOfDirectory(atPath: copy + "/hot").first(where: { $0.hasSuffix(".open") }) {
                    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: copy + "/hot/" + open))
                    try handle.seekToEnd()
                    let junk = (0..<Int.random(in: 1...300, using: &rng)).map { _ in Bool.random(using: &rng) ? 0 : UInt8.random(in: 0...255, using: &rng) }
                    try handle.write(contentsOf: Data(junk))
                    try handle.close()
                }
                store.close()
                path = copy
                store = try Self.open(path, sparse: sparse, io: io)
                try #require(store.lastSeq == model.lastSeq, "\(context): lastSeq after a crash")
                try #require(store.stats().corruptSegments.isEmpty, "\(context): \(store.stats().corruptSegments)")
            case 3:
                io.armWriteFailure()  // the next write to a segment: the next append, or a seal
            case 4:
                io.armCreateFailure()  // the next segment creation: a rollover or rotation
            default:
                // Append one batch.
                let size = Int.random(in: 0..<8, using: &rng) == 0 ? Int.random(in: 10...40, using: &rng) : Int.random(in: 1...6, using: &rng)
                var generated = (0..<size).map { _ in Self.randomEvent(&rng, idPool: idPool) }
                // Sometimes repeat an id of the batch, or one stored long ago.
                if size > 1, Bool.random(using: &rng), let id = generated.first?.id {
                    let k = Int.random(in: 1..<size, using: &rng)
                    if generated[k].id != nil {
                        generated[k].id = id
                        generated[k].json = generated[k].json.replacingOccurrences(of: "\"event_id\":", with: "\"event_id\":\"\(id)\",\"x_old_id\":")
                    }
                }
                now += Int64.random(in: 0...2000, using: &rng)
                let assignedIDs = generated.map { _ in EventID.generate(using: &idRNG) }
                let batch = try zip(generated, assignedIDs).map { g, assigned in
                    try Array(g.json.utf8).withUnsafeBufferPointer { try EventPreparer().prepare($0, now: now, newEventID: { assigned }) }
                }
                let results: [AppendResult]
                switch Result(catching: { () throws(StoreError) in try store.appendAndWait(batch) }) {
                case .success(let r): results = r
                case .failure(let error):
                    // A full disk: nothing of the batch is stored; the model does not change.
                    try #require(error.code == .unavailable, "\(context): append \(error)")
                    coverage.refused += 1
                    try check(store, model, &rng, context)
                    continue
                }
                // The model's answer.
                var expected: [AppendResult] = []
                var inBatch: [String: UInt64] = [:]
                var next = model.lastSeq + 1
                var added: [ModelEvent] = []
                for (i, g) in generated.enumerated() {
                    let id = g.id ?? assignedIDs[i]
                    try #require(batch[i].eventID == id, "\(context): event id")
                    if let original = model.seqOfID[id] ?? inBatch[id] {
                        expected.append(AppendResult(seq: original, eventID: id, duplicate: true))
                        continue
                    }
                    inBatch[id] = next
                    expected.append(AppendResult(seq: next, eventID: id, duplicate: false))
                    added.append(ModelEvent(
                        seq: next, id: id, lead: g.lead, type: g.type, timestampMs: g.timestampMs ?? now, outcome: g.outcome,
                        flow: g.flow, entity: g.entity, step: g.step, body: batch[i].json))
                    next += 1
                }
                try #require(results == expected, "\(context): append results")
                coverage.duplicates += expected.filter(\.duplicate).count
                coverage.assigned += generated.filter { $0.id == nil }.count
                for e in added {
                    model.events.append(e)
                    model.seqOfID[e.id] = e.seq
                }
            }
            try check(store, model, &rng, context)
        }
        // The run exercised what it is meant to.
        let sealed = store.stats().hot.segments - 1
        #expect(model.events.count > 150 && sealed >= 10 && coverage.rotations > 0 && coverage.restarts > 0
                && coverage.duplicates > 0 && coverage.assigned > 0 && coverage.crashes > 0 && coverage.refused > 0,
                "seed \(seed): \(model.events.count) events, \(sealed) sealed segments, \(coverage)")
        // Finally, everything, after one more restart.
        io.disarm()
        store.close()
        store = try Self.open(path, sparse: sparse, io: io)
        try check(store, model, &rng, "seed \(seed) final", everything: true)
        #expect(store.verify().isClean)
    }

    /// Compares a sample of reads (or all of them) with the model.
    private func check(_ store: EventStore, _ model: Model, _ rng: inout SplitMix64, _ context: String, everything: Bool = false) throws {
        try #require(store.lastSeq == model.lastSeq, "\(context): lastSeq")
        let engine = QueryEngine(store: store)

        // get, by id (stored ids, and ids never stored) and by seq.
        let ids: [String] = everything ? model.events.map(\.id) : (0..<6).compactMap { _ in model.events.randomElement(using: &rng)?.id } + ["id-never", "id-\(Int.random(in: 0..<500, using: &rng))"]
        for id in ids {
            let got = try store.event(withID: id)
            let want = model.seqOfID[id].flatMap { model.event(seq: $0) }
            try #require(got?.seq == want?.seq, "\(context): get \(id)")
            let same = got?.body == want?.body && got?.timestampMs == want?.timestampMs
            try #require(same, "\(context): get \(id) body")
        }
        for _ in 0..<(everything ? 0 : 3) {
            let seq = UInt64.random(in: 0...(model.lastSeq + 1), using: &rng)
            let same = try store.event(seq: seq)?.body == model.event(seq: seq)?.body
            try #require(same, "\(context): get seq \(seq)")
        }

        // Leads and timelines.
        for lead in everything ? Self.leads : [Self.leads.randomElement(using: &rng)!] {
            let want = model.events.filter { $0.lead == lead }
            let got = try store.events(forLead: lead)
            try #require(got.map(\.seq) == want.map(\.seq), "\(context): events(forLead: \(lead))")
            let sameBodies = got.map(\.body) == want.map(\.body)
            try #require(sameBodies, "\(context): events(forLead: \(lead)) bodies")
            let limit = Bool.random(using: &rng) ? 10_000 : Int.random(in: 1...max(1, want.count + 1), using: &rng)
            let ordered = want.sorted { ($0.timestampMs, $0.seq) < ($1.timestampMs, $1.seq) }
            let (timeline, truncated) = try engine.timeline(leadID: lead, limit: limit)
            try #require(timeline.map(\.seq) == ordered.prefix(limit).map(\.seq), "\(context): timeline \(lead) limit \(limit)")
            try #require(truncated == (ordered.count > limit), "\(context): timeline truncated")
        }

        // Scans with random filters.
        for _ in 0..<(everything ? 40 : 3) {
            let filter = Self.randomFilter(&rng, lastSeq: model.lastSeq)
            let matching = model.events.filter { model.matches($0, filter) }
            let limit = filter.limit ?? .max
            let want = Array(matching.prefix(limit))
            let wantLast: UInt64 = matching.count >= limit ? want.last!.seq : max(model.lastSeq, filter.afterSeq)
            var got: [[UInt8]] = []
            let maxBatchBytes = [1, 700, 1 << 20].randomElement(using: &rng)!
            let (lastSeq, returned) = try engine.scan(filter, maxBatchBytes: maxBatchBytes) { got += $0; return true }
            let rendered = want.map { Array("{\"seq\":\($0.seq),".utf8) + $0.body.dropFirst() }
            let same = got == rendered
            try #require(same, "\(context): scan \(filter) returned \(got.count), want seqs \(want.map(\.seq))")
            try #require(returned == want.count, "\(context): scan returned count")
            try #require(lastSeq == wantLast, "\(context): scan \(filter) lastSeq \(lastSeq), want \(wantLast)")
        }
    }
}
