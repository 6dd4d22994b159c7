// package-benchmark suite of leadtrail's hot paths.
//
//   cd Benchmarks && swift package --disable-sandbox benchmark
//
// Inputs are the project's own realistic generator events (data/sample-events.ndjson,
// about 1.2 KB each). Wall-clock figures are for reading, not for gating: the
// deterministic metric here is the malloc count (instructions need hardware
// counters, which this machine's VMs do not expose; use callgrind for those).
import Benchmark
import Foundation
import LeadTrailEvents
import LeadTrailStorage

/// The sample events of the repository, as raw NDJSON lines.
let sampleLines: [[UInt8]] = {
    let here = URL(fileURLWithPath: #filePath)
    let file = here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("data/sample-events.ndjson")
    guard let data = try? Data(contentsOf: file) else { fatalError("cannot read \(file.path)") }
    return data.split(separator: UInt8(ascii: "\n")).map { Array($0) }
}()

let batchOf1000: [[UInt8]] = (0..<1000).map { sampleLines[$0 % sampleLines.count] }

func prepare(_ line: [UInt8]) -> PreparedEvent {
    try! line.withUnsafeBufferPointer { try EventPreparer().prepare($0, now: 0) }
}

let preparedBatch: [PreparedEvent] = batchOf1000.map(prepare)

/// One append frame body of 1,000 events, as a producer sends it.
let appendFrame: [UInt8] = {
    var body = Array(#"{"op":"append","events":["#.utf8)
    for (i, line) in batchOf1000.enumerated() {
        if i > 0 { body.append(UInt8(ascii: ",")) }
        body.append(contentsOf: line)
    }
    body.append(contentsOf: Array("]}".utf8))
    return body
}()

/// 64 KiB of encoded records: what one warm block holds.
let warmBlock: [UInt8] = {
    var out: [UInt8] = []
    var seq: UInt64 = 1
    while out.count < 64 << 10 {
        StorageKernels.encodeRecord(preparedBatch[Int(seq) % preparedBatch.count], seq: seq, into: &out)
        seq += 1
    }
    return out
}()

let benchmarks = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal, .cpuTotal],
        maxDuration: .seconds(2),
        maxIterations: 10_000)

    // 1. Validation and field extraction of 1,000 events, the daemon's per-batch work
    //    after it found the event spans (EventPreparer.prepare over raw bytes).
    Benchmark("EventPreparer.prepare x1000", configuration: .init(scalingFactor: .kilo)) { benchmark in
        for line in batchOf1000 {
            blackHole(prepare(line))
        }
    }

    // 2. The whole request decode of one append frame as the daemon does it: one pass over the
    //    frame that finds the events and their members, then each event validated into one batch
    //    that refers to the frame's bytes (RequestParser's path). Minus benchmark 3: the validation.
    Benchmark("append frame scan+prepare x1000", configuration: .init(scalingFactor: .kilo)) { benchmark in
        appendFrame.withUnsafeBufferPointer { buffer in
            let scanned = try! JSONScanner.topLevelMembers(buffer, expanding: "events")
            let events = scanned.expanded!
            var batch = PreparedBatch(referencing: appendFrame, events: events.elements.count)
            for (index, element) in events.elements.enumerated() {
                try! EventPreparer().prepare(buffer, object: element, members: events.members(of: index), now: 0, into: &batch)
            }
            blackHole(batch)
        }
    }

    // 3. JSON structural scan alone (validate one ~1.2 MB frame).
    Benchmark("JSONScanner.validate 1.2 MB frame") { benchmark in
        appendFrame.withUnsafeBufferPointer { blackHole(try! JSONScanner.validate($0)) }
    }

    // 4. Record encoding with its CRC32C, 1,000 records into one buffer (the writer's batch buffer).
    Benchmark("encodeRecord+CRC x1000", configuration: .init(scalingFactor: .kilo)) { benchmark in
        var out: [UInt8] = []
        out.reserveCapacity(1_400_000)
        for (i, event) in preparedBatch.enumerated() {
            StorageKernels.encodeRecord(event, seq: UInt64(i + 1), into: &out)
        }
        blackHole(out)
    }

    // 5. CRC32C of 1 MiB: VPCLMULQDQ folding where the CPU has it, and the crc32 instruction's path for comparison.
    let mebibyte = [UInt8]((0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) })
    Benchmark("CRC32C 1 MiB", configuration: .init(metrics: [.wallClock, .throughput, .mallocCountTotal])) { benchmark in
        blackHole(CRC32C.checksum(mebibyte))
    }
    Benchmark("CRC32C 1 MiB, crc32 instruction", configuration: .init(metrics: [.wallClock, .throughput])) { benchmark in
        mebibyte.withUnsafeBytes { blackHole(CRC32C.crc32InstructionChecksum($0)) }
    }

    // 6. The event-id table: 1,000 dedupe lookups (misses and hits) in a table of 1M ids.
    var table = EventIDTableKernel(expectedCount: 1_000_000)
    var hashes: [UInt64] = []
    var state: UInt64 = 0x1234_5678
    for seq in 1...1_000_000 {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        let hash = StableHash.hash64(withUnsafeBytes(of: state) { Array($0) })
        table.insert(hash: hash, seq: UInt64(seq))
        if seq % 1000 == 0 { hashes.append(hash) }
    }
    let probes = hashes + hashes.map { $0 ^ 0xDEAD_BEEF_0000_0000 }  // 1,000 hits, 1,000 misses
    let filledTable = table
    Benchmark("EventIDTable 2000 lookups in 1M", configuration: .init(scalingFactor: .kilo)) { benchmark in
        var n = 0
        for hash in probes { n &+= filledTable.candidateCount(hash: hash) }
        blackHole(n)
    }

    // 6b. A seal's sort of a full segment's event-id entries (103,000 of 1.2 KB events in 128 MiB), against the
    // standard library's sort of the same entries.
    let segmentEntries: [(hash: UInt64, seq: UInt64)] = (1...103_000).map { seq in
        (StableHash.hash64(withUnsafeBytes(of: UInt64(seq) &* 0x9E37_79B9_7F4A_7C15) { Array($0) }), UInt64(seq))
    }
    Benchmark("seal: sort 103k event-id entries", configuration: .init(metrics: [.wallClock, .mallocCountTotal])) { benchmark in
        blackHole(StorageKernels.sortEventIDEntries(segmentEntries))
    }
    Benchmark("seal: sort 103k event-id entries, stdlib sort", configuration: .init(metrics: [.wallClock, .mallocCountTotal])) { benchmark in
        blackHole(segmentEntries.sorted { $0.hash < $1.hash || ($0.hash == $1.hash && $0.seq < $1.seq) })
    }

    // 7. Lead-index lookups: timelines of one lead in a store of 100,000 events (hot, in memory indexes).
    Benchmark(
        "EventStore.events(forLead:) x100 in 100k",
        configuration: .init(metrics: [.wallClock, .throughput, .mallocCountTotal], maxDuration: .seconds(3)),
        closure: { benchmark in
            let context = leadContext!
            for lead in context.leads { blackHole(try! context.store.events(forLead: lead)) }
        },
        setup: { leadContext = try LeadStoreContext.make(events: 100_000) },
        teardown: {
            leadContext?.close()
            leadContext = nil
        })

    // 8. LZ4 warm block round trip (64 KiB of records).
    Benchmark("LZ4 64 KiB block round trip") { benchmark in
        let (stored, compressed) = StorageKernels.warmCompress(warmBlock)
        blackHole(StorageKernels.warmDecompress(stored, rawLength: warmBlock.count, compressed: compressed))
    }

    // 9. zlib (gzip -6) round trip of the same block.
    Benchmark("zlib-6 64 KiB block round trip") { benchmark in
        let member = try! StorageKernels.coldCompress(warmBlock)
        blackHole(StorageKernels.coldDecompress(member, rawLength: warmBlock.count))
    }
}

nonisolated(unsafe) var leadContext: LeadStoreContext?

/// A store in a temporary directory with `events` events (relaxed durability for a fast setup).
final class LeadStoreContext: @unchecked Sendable {
    let store: EventStore
    let leads: [String]
    let directory: String

    init(store: EventStore, leads: [String], directory: String) {
        self.store = store
        self.leads = leads
        self.directory = directory
    }

    static func make(events: Int) throws -> LeadStoreContext {
        let directory = NSTemporaryDirectory() + "leadtrail-hotpaths-\(getpid())"
        try? FileManager.default.removeItem(atPath: directory)
        var configuration = StoreConfiguration(directory: directory)
        configuration.durability = .relaxed
        let store = try EventStore.open(configuration)
        var leads: [String] = []
        var batch: [PreparedEvent] = []
        for i in 0..<events {
            // Same shape as the sample events, with 10 events per lead and unique ids.
            let line = sampleLines[i % sampleLines.count]
            var text = String(decoding: line, as: UTF8.self)
            text = text.replacingOccurrences(of: #""event_id":"evt_"#, with: #""event_id":"b\#(i)_"#)
            if let range = text.range(of: #""lead_id":"[^"]*""#, options: .regularExpression) {
                text.replaceSubrange(range, with: #""lead_id":"lead_b\#(i / 10)""#)
            }
            if i % 10 == 0 { leads.append("lead_b\(i / 10)") }
            batch.append(prepare(Array(text.utf8)))
            if batch.count == 1000 {
                _ = try store.appendAndWait(batch)
                batch.removeAll(keepingCapacity: true)
            }
        }
        if !batch.isEmpty { _ = try store.appendAndWait(batch) }
        var random = SystemRandomNumberGenerator()
        return LeadStoreContext(store: store, leads: (0..<100).map { _ in leads.randomElement(using: &random)! }, directory: directory)
    }

    func close() {
        store.close()
        try? FileManager.default.removeItem(atPath: directory)
    }
}
