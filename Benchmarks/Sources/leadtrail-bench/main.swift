// leadtrail-bench: whole-engine figures for the storage issue, printed as a table.
//
//   leadtrail-bench store [--events N] [--writers W] [--batch B] [--dir DIR] [--keep]
//
// Loads N events (realistic ~1.2 KB lead events) into a fresh store, then measures
// durable append throughput with W writer threads, timeline lookups, startup
// after a clean close, and resident memory. Wall-clock figures: compare ratios
// measured in one run, never across machines.
import Foundation
import LeadTrailEvents
import LeadTrailQuery
import LeadTrailStorage
import LeadTrailWire

struct Options {
    var events = 1_000_000
    var writers = [1, 4]
    var batch = 1000
    var directory = NSTemporaryDirectory() + "leadtrail-bench-\(getpid())"
    var keep = false
    var lookups = 2000
    /// Events from a file (one JSON object a line) instead of the synthetic ones: `--ndjson FILE`.
    var ndjson: String? = nil
    /// `reopen --append-forever`: after the measurements, append batches until killed (for kill -9 starts).
    var appendForever = false
}

/// Realistic events read from `--ndjson FILE` (each line once; ids stay unique while N <= lines).
nonisolated(unsafe) var fileEvents: [[UInt8]] = []
nonisolated(unsafe) var fileLeadIDs: [String] = []

func loadNDJSON(_ path: String, limit: Int) {
    guard let data = FileManager.default.contents(atPath: path) else {
        FileHandle.standardError.write("cannot read \(path)\n".data(using: .utf8)!)
        exit(2)
    }
    let key = Array("\"lead_id\":\"".utf8)
    data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
        let bytes = raw.bindMemory(to: UInt8.self)
        var start = 0
        while start < bytes.count && fileEvents.count < limit {
            var end = start
            while end < bytes.count && bytes[end] != 0x0A { end += 1 }
            if end > start {
                let line = Array(bytes[start..<end])
                fileEvents.append(line)
                var lead = ""
                var at = 0
                search: while at + key.count <= line.count {
                    for k in 0..<key.count where line[at + k] != key[k] {
                        at += 1
                        continue search
                    }
                    var e = at + key.count
                    while e < line.count && line[e] != 0x22 { e += 1 }
                    lead = String(decoding: line[(at + key.count)..<e], as: UTF8.self)
                    break
                }
                fileLeadIDs.append(lead)
            }
            start = end + 1
        }
    }
}

func parseOptions() -> Options {
    var options = Options()
    var arguments = CommandLine.arguments.dropFirst(2).makeIterator()
    while let argument = arguments.next() {
        switch argument {
        case "--events": options.events = Int(arguments.next() ?? "") ?? options.events
        case "--writers": options.writers = (arguments.next() ?? "1").split(separator: ",").compactMap { Int($0) }
        case "--batch": options.batch = Int(arguments.next() ?? "") ?? options.batch
        case "--dir": options.directory = arguments.next() ?? options.directory
        case "--keep": options.keep = true
        case "--lookups": options.lookups = Int(arguments.next() ?? "") ?? options.lookups
        case "--ndjson": options.ndjson = arguments.next()
        case "--append-forever": options.appendForever = true
        default:
            FileHandle.standardError.write("unknown option \(argument)\n".data(using: .utf8)!)
            exit(2)
        }
    }
    if let path = options.ndjson {
        loadNDJSON(path, limit: options.events)
        options.events = min(options.events, fileEvents.count)
    }
    return options
}

/// Deterministic synthetic lead events of about 1.2 KB, shaped like the generator's.
struct EventFactory {
    static let types = [
        "source.submitted", "source.accepted", "enhancement.success", "filter.passed", "recipient.delivered",
        "recipient.failed", "feedback.received", "flow.completed",
    ]
    static let filler = String(repeating: "lorem ipsum dolor sit amet ", count: 20)
    let runID: String

    /// Events of a lead are spread over 8,000 consecutive events, like interleaved live traffic.
    func leadID(for index: Int) -> String {
        if !fileLeadIDs.isEmpty { return fileLeadIDs[index % fileLeadIDs.count] }
        return "lead_\(runID)_\((index / 8000) * 1000 + index % 1000)"
    }

    func json(_ index: Int) -> [UInt8] {
        if !fileEvents.isEmpty { return fileEvents[index % fileEvents.count] }
        let type = Self.types[(index / 1000) % Self.types.count]
        let ts = Timestamp.format(1_735_689_600_000 + Int64(index) * 37)
        let text = """
        {"type":"\(type)","lead_id":"\(leadID(for: index))","event_id":"ev_\(runID)_\(index)","timestamp":"\(ts)",\
        "flow_id":"flow_\(index % 17)","entity_id":"buyer_\(index % 23)","step_id":"step_\(index % 5)","outcome":"\(index % 7 == 0 ? "failure" : "success")",\
        "duration_ms":\(index % 900),"metadata":{"cost":\(Double(index % 300) / 100),"buyer_response":{"price":\(index % 90).5,"status":"accepted"},\
        "reason":"none","notes":"\(Self.filler.prefix(300 + index % 200))"},\
        "lead_snapshot":{"first_name":"Jane","last_name":"Doe","email":"jane.doe\(index)@example.com","phone":"555-010-\(index % 10000)",\
        "address":"\(index % 999) Main Street, Springfield","dob":"1980-01-0\(1 + index % 9)","ssn":"000-00-\(index % 10000)","state":"CA","zip":"9\(index % 10000)"}}
        """
        return Array(text.utf8)
    }

    func prepared(_ index: Int) -> PreparedEvent {
        let bytes = json(index)
        // Synthetic events are valid by construction.
        return try! bytes.withUnsafeBufferPointer { try EventPreparer().prepare($0, now: 0) }
    }
}

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// CPU time of the calling thread (user and system), in seconds.
func threadCPUSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

func residentMegabytes() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        let kb = Double(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
        return kb / 1024
    }
    return 0
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    return sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * p))]
}

func row(_ name: String, _ value: String) {
    print(name.padding(toLength: 52, withPad: " ", startingAt: 0) + value)
}

/// Appends `batches` from `writers` threads at once; returns seconds taken.
func timedAppend(_ store: EventStore, batches: [[PreparedEvent]], writers: Int) -> Double {
    let group = DispatchGroup()
    let start = now()
    for w in 0..<writers {
        group.enter()
        Thread {
            var i = w
            while i < batches.count {
                _ = try? store.appendAndWait(batches[i])
                i += writers
            }
            group.leave()
        }.start()
    }
    group.wait()
    return now() - start
}

/// Bytes on disk over raw JSON bytes, in percent (headers, indexes, footers).
func overhead(_ store: EventStore) -> Double {
    var raw = 0
    _ = try? store.scan(ScanHints()) { raw += $0.body.count; return true }
    return (Double(store.stats().hot.bytes) / Double(max(raw, 1)) - 1) * 100
}

func runStore(_ options: Options) throws {
    try? FileManager.default.removeItem(atPath: options.directory)
    let factory = EventFactory(runID: "r")
    var configuration = StoreConfiguration(directory: options.directory)
    configuration.durability = .fsync
    var store = try EventStore.open(configuration)
    print("leadtrail-bench store: \(options.events) events, batches of \(options.batch), dir \(options.directory)")
    print("machine: \(ProcessInfo.processInfo.activeProcessorCount) cores, CRC32C hardware: \(CRC32C.usesHardware), folded with VPCLMULQDQ: \(CRC32C.usesFolding)")
    print(String(repeating: "-", count: 80))

    // 1. Preparation cost (validation + field extraction), single thread.
    let sample = (0..<20_000).map { factory.json($0) }
    var start = now()
    for bytes in sample { _ = bytes.withUnsafeBufferPointer { try? EventPreparer().prepare($0, now: 0) } }
    let prepareSeconds = now() - start
    let sampleBytes = sample.reduce(0) { $0 + $1.count }
    row("validate+prepare (1 thread)", String(format: "%.0f events/s, %.0f MB/s, avg event %d B", Double(sample.count) / prepareSeconds, Double(sampleBytes) / prepareSeconds / 1e6, sampleBytes / sample.count))

    // 2. Durable append throughput, batches of `batch`, with each writer count (events already prepared).
    var next = 0
    for writers in options.writers {
        let count = max(200, 200 * writers) * options.batch / 1000
        let batches = (0..<count).map { b in (0..<options.batch).map { factory.prepared(next + b * options.batch + $0) } }
        next += count * options.batch
        let bytes = batches.reduce(0) { $0 + $1.reduce(0) { $0 + $1.json.count } }
        let seconds = timedAppend(store, batches: batches, writers: writers)
        let stats = store.stats()
        row("durable append, \(writers) writer(s)", String(format: "%.0f events/s, %.1f MB/s (%d syncs so far)", Double(count * options.batch) / seconds, Double(bytes) / seconds / 1e6, stats.syncs))
    }

    // 3. Load up to `events`, 4 writers, generation overlapped.
    start = now()
    let loadWriters = 2
    let group = DispatchGroup()
    let total = max(options.events, next)
    let firstLoad = next
    for w in 0..<loadWriters {
        group.enter()
        Thread { [store] in
            var b = firstLoad / options.batch + w
            while b * options.batch < total {
                let batch = (0..<options.batch).map { factory.prepared(b * options.batch + $0) }
                _ = try? store.appendAndWait(batch)
                b += loadWriters
            }
            group.leave()
        }.start()
    }
    group.wait()
    let loaded = store.stats()
    row("store holds \(loaded.events) events", String(format: "load %.1f s, %d segments, %.2f GB on disk, %.1f%% over raw JSON", now() - start, loaded.hot.segments, Double(loaded.hot.bytes) / 1e9, overhead(store)))

    // 4. Timeline lookups (random leads), hot.
    func lookups() -> [Double] {
        var times: [Double] = []
        var rng = SystemRandomNumberGenerator()
        let query = QueryEngine(store: store)
        for _ in 0..<options.lookups {
            let lead = factory.leadID(for: Int.random(in: 0..<total, using: &rng))
            let t0 = now()
            _ = try? query.timeline(leadID: lead)
            times.append((now() - t0) * 1000)
        }
        return times.sorted()
    }
    _ = lookups()  // warm the page cache
    let times = lookups()
    row("timeline lookup at \(total) events", String(format: "p50 %.3f ms, p99 %.3f ms", percentile(times, 0.5), percentile(times, 0.99)))
    row("resident memory after load", String(format: "%.0f MB", residentMegabytes()))

    // 5. Startup after a clean close.
    store.close()
    start = now()
    store = try EventStore.open(configuration)
    let startup = now() - start
    row("startup after clean close at \(total) events", String(format: "%.2f s", startup))
    _ = lookups()
    // Malloc still holds what the load freed: `reopen --dir D` measures a store opened by a fresh process.
    row("resident after restart (same process; see reopen)", String(format: "%.0f MB", residentMegabytes()))
    store.close()
    if !options.keep { try? FileManager.default.removeItem(atPath: options.directory) }
}

/// Only validation and preparation, for profilers: `leadtrail-bench prepare N`.
func runPrepare(_ count: Int) {
    let factory = EventFactory(runID: "p")
    let sample = (0..<count).map { factory.json($0) }
    let start = now()
    var total = 0
    for _ in 0..<5 {
        for bytes in sample {
            if let event = bytes.withUnsafeBufferPointer({ try? EventPreparer().prepare($0, now: 0) }) { total += event.json.count }
        }
    }
    let seconds = now() - start
    print(String(format: "prepared %d events (%d bytes) in %.3f s: %.0f events/s", count * 5, total, seconds, Double(count * 5) / seconds))
}

/// The daemon's CPU work per append frame, stage by stage, in one thread:
/// `leadtrail-bench append-path EVENTS.ndjson [--batch 1000] [--rounds 3]`.
///
/// Frames are built from the file's lines as `leadtrail-load` builds them; each
/// stage is timed over all frames: a plain validation of the JSON, the envelope
/// pass (which also finds every event and its members), and the whole parse
/// (envelope, validation and preparation of every event).
func runAppendPath(_ arguments: [String]) {
    guard let path = arguments.first, let data = FileManager.default.contents(atPath: path) else {
        FileHandle.standardError.write("usage: leadtrail-bench append-path EVENTS.ndjson [--batch N] [--rounds R]\n".data(using: .utf8)!)
        exit(2)
    }
    var batch = 1000
    var rounds = 3
    var iterator = arguments.dropFirst().makeIterator()
    while let argument = iterator.next() {
        if argument == "--batch" { batch = Int(iterator.next() ?? "") ?? batch }
        if argument == "--rounds" { rounds = Int(iterator.next() ?? "") ?? rounds }
    }
    // Split by hand: this runs once, before any clock, but must stay cheap under callgrind too.
    let all = [UInt8](data)
    var lines: [ArraySlice<UInt8>] = []
    var lineStart = 0
    for index in all.indices where all[index] == UInt8(ascii: "\n") {
        if index > lineStart { lines.append(all[lineStart..<index]) }
        lineStart = index + 1
    }
    if lineStart < all.count { lines.append(all[lineStart...]) }
    var frames: [[UInt8]] = []
    for start in stride(from: 0, to: lines.count, by: batch) {
        var frame = Array(#"{"op":"append","events":["#.utf8)
        for (i, line) in lines[start..<min(lines.count, start + batch)].enumerated() {
            if i > 0 { frame.append(UInt8(ascii: ",")) }
            frame.append(contentsOf: line)
        }
        frame.append(contentsOf: Array("]}".utf8))
        frames.append(frame)
    }
    let bytes = frames.reduce(0) { $0 + $1.count }
    func stage(_ name: String, _ body: ([UInt8]) -> Int) {
        var best = Double.infinity
        var check = 0
        for _ in 0..<rounds {
            let start = now()
            for frame in frames { check &+= body(frame) }
            best = min(best, now() - start)
        }
        row(name, String(format: "%.0f events/s, %.0f MB/s, %.2f us/event (check %d)",
            Double(lines.count) / best, Double(bytes) / best / 1e6, best / Double(lines.count) * 1e6, check))
    }
    print("append path, \(lines.count) events in \(frames.count) frames, best of \(rounds) rounds, 1 thread")
    stage("JSONScanner.validate (whole frame)") { frame in
        frame.withUnsafeBufferPointer { (try? JSONScanner.validate($0))?.range.count ?? -1 }
    }
    stage("RequestEnvelope.parse (envelope + events found)") { frame in
        RequestEnvelope.parse(frame).id?.count ?? 0
    }
    let parser = RequestParser()
    stage("RequestParser.parse (validated + prepared)") { frame in
        guard case .append(let events)? = try? parser.parse(frame: frame, now: 0) else { return -1 }
        return events.count
    }
}

/// Opens an existing store in a fresh process: startup time, timeline lookups and
/// resident memory without the loader's allocations: `leadtrail-bench reopen --dir DIR`.
func runReopen(_ options: Options) throws {
    let configuration = StoreConfiguration(directory: options.directory)
    let start = now()
    let store = try EventStore.open(configuration)
    let startup = now() - start
    let stats = store.stats()
    row("startup at \(stats.events) events (\(stats.hot.segments) segments)", String(format: "%.2f s (engine says %d ms)", startup, stats.startupMilliseconds))
    row("resident memory right after startup", String(format: "%.0f MB", residentMegabytes()))
    let factory = EventFactory(runID: "r")
    let query = QueryEngine(store: store)
    var rng = SystemRandomNumberGenerator()
    var times: [Double] = []
    var cpuTimes: [Double] = []
    var found = 0
    for round in 0..<2 {
        for _ in 0..<options.lookups {
            let lead = factory.leadID(for: Int.random(in: 0..<Int(stats.events), using: &rng))
            let t0 = now(), c0 = threadCPUSeconds()
            let events = (try? query.timeline(leadID: lead).events.count) ?? 0
            if round == 1 {
                times.append((now() - t0) * 1000)
                cpuTimes.append((threadCPUSeconds() - c0) * 1000)
                found += events
            }
        }
    }
    times.sort()
    cpuTimes.sort()
    row("timeline lookup (\(options.lookups) random leads)", String(format: "p50 %.3f ms, p99 %.3f ms, avg %.1f events", percentile(times, 0.5), percentile(times, 0.99), Double(found) / Double(max(times.count, 1))))
    // The thread's own CPU time leaves out the time it waited for a core: on a shared 2-core machine
    // the wall-clock p99 of a 50 µs lookup is mostly other processes' time slices.
    row("timeline lookup, CPU time of the thread", String(format: "p50 %.3f ms, p99 %.3f ms", percentile(cpuTimes, 0.5), percentile(cpuTimes, 0.99)))
    row("resident memory after lookups", String(format: "%.0f MB", residentMegabytes()))
    if options.appendForever {
        // Until killed: batches of fresh events (ids past the loaded ones), two writers.
        print("appending until killed")
        fflush(stdout)
        let base = Int(stats.lastSeq) + 1_000_000_000
        for w in 0..<2 {
            Thread {
                var b = w
                while true {
                    _ = try? store.appendAndWait((0..<options.batch).map { factory.prepared(base + b * options.batch + $0) })
                    b += 2
                }
            }.start()
        }
        while true { sleep(1) }
    }
    store.close()
}

/// Runs a command line tool on a file; returns its wall time in seconds and the output size.
func timeTool(_ arguments: [String], output: String) -> (seconds: Double, bytes: Int)? {
    // Never remove /dev/null (the decompression timings write there): that would replace it with a file for everyone.
    if output != "/dev/null" { try? FileManager.default.removeItem(atPath: output) }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    process.standardError = FileHandle.nullDevice
    process.standardOutput = FileHandle.nullDevice
    let start = now()
    guard (try? process.run()) != nil else { return nil }
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { return nil }
    let size = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? nil
    return (now() - start, size ?? 0)
}

/// Tier figures: warm and cold compression beside the lz4 and gzip tools on the same bytes,
/// move speeds, timeline latency on warm data, restore throughput.
///   leadtrail-bench tiers [--events N] [--dir DIR]
func runTiers(_ options: Options) throws {
    try? FileManager.default.removeItem(atPath: options.directory)
    let factory = EventFactory(runID: "t")
    var configuration = StoreConfiguration(directory: options.directory)
    configuration.tiers.intervalSeconds = 0
    configuration.segmentMaxBytes = 64 << 20
    let store = try EventStore.open(configuration)
    defer {
        store.close()
        if !options.keep { try? FileManager.default.removeItem(atPath: options.directory) }
    }
    var b = 0
    while b * options.batch < options.events {
        _ = try store.appendAndWait((0..<options.batch).map { factory.prepared(b * options.batch + $0) })
        b += 1
    }
    _ = try store.rotate()
    let hot = store.stats().hot
    print("leadtrail-bench tiers: \(hot.events) events in \(hot.segments) hot segments, \(String(format: "%.1f", Double(hot.bytes) / 1e6)) MB")
    print(String(repeating: "-", count: 80))

    // The same bytes through the command-line tools: one sealed segment file.
    let hotDir = options.directory + "/hot"
    let sample = try FileManager.default.contentsOfDirectory(atPath: hotDir).filter { $0.hasSuffix(".seg") }.sorted().first ?? ""
    let samplePath = hotDir + "/" + sample
    let sampleSize = (try FileManager.default.attributesOfItem(atPath: samplePath)[.size] as? Int) ?? 1
    let scratch = NSTemporaryDirectory() + "leadtrail-bench-tools-\(getpid())"
    try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: scratch) }
    for (name, args, out) in [
        ("lz4 -1, 64 KiB independent blocks", ["lz4", "-1", "-B4", "-BI", "-f", samplePath, scratch + "/s.lz4"], scratch + "/s.lz4"),
        ("gzip -6", ["sh", "-c", "gzip -6 -c '\(samplePath)' > '\(scratch)/s.gz'"], scratch + "/s.gz"),
    ] {
        if let r = timeTool(args, output: out) {
            row("tool: \(name)", String(format: "ratio %.2f, %.0f MB/s compress", Double(sampleSize) / Double(max(r.bytes, 1)), Double(sampleSize) / r.seconds / 1e6))
        } else {
            row("tool: \(name)", "not installed (apt-get install lz4 gzip)")
        }
    }
    if let r = timeTool(["sh", "-c", "lz4 -d -c '\(scratch)/s.lz4' > /dev/null"], output: "/dev/null") {
        row("tool: lz4 -d", String(format: "%.0f MB/s decompress", Double(sampleSize) / r.seconds / 1e6))
    }
    if let r = timeTool(["sh", "-c", "gzip -d -c '\(scratch)/s.gz' > /dev/null"], output: "/dev/null") {
        row("tool: gzip -d", String(format: "%.0f MB/s decompress", Double(sampleSize) / r.seconds / 1e6))
    }

    let query = QueryEngine(store: store)
    func timelines(_ label: String) {
        var rng = SystemRandomNumberGenerator()
        var times: [Double] = []
        for round in 0..<2 {
            for _ in 0..<options.lookups {
                let lead = factory.leadID(for: Int.random(in: 0..<options.events, using: &rng))
                let t0 = now()
                _ = try? query.timeline(leadID: lead)
                if round == 1 { times.append((now() - t0) * 1000) }
            }
        }
        times.sort()
        row("timeline lookup, \(label)", String(format: "p50 %.3f ms, p99 %.3f ms", percentile(times, 0.5), percentile(times, 0.99)))
    }
    timelines("hot")

    // Warm: everything sealed is past hot_days but not warm_days.
    let newest = hot.newestMs ?? (1_735_689_600_000 + Int64(options.events) * 37)
    var start = now()
    _ = try store.tier(now: newest + 31 * 86_400_000)
    var seconds = now() - start
    let warm = store.stats().warm
    row("warm move (LZ4 blocks)", String(format: "ratio %.2f, %.0f MB/s compress (checks included)", warm.compressionRatio, Double(warm.rawBytes) / seconds / 1e6))
    start = now()
    var events = 0
    try store.scan(ScanHints()) { _ in events += 1; return true }
    seconds = now() - start
    row("full scan of warm data", String(format: "%.0f MB/s of raw segments, %.0f events/s", Double(warm.rawBytes) / seconds / 1e6, Double(events) / seconds))
    timelines("warm")

    // Cold: past warm_days.
    start = now()
    _ = try store.tier(now: newest + 91 * 86_400_000)
    seconds = now() - start
    let cold = store.stats().cold
    row("cold move (gzip -6 members)", String(format: "ratio %.2f, %.0f MB/s compress (warm decompress + checks included)", cold.compressionRatio, Double(cold.rawBytes) / seconds / 1e6))
    let coldDir = options.directory + "/cold"
    let idsBytes = ((try? FileManager.default.contentsOfDirectory(atPath: coldDir)) ?? []).filter { $0.hasSuffix(".ids") }.reduce(0) {
        $0 + (((try? FileManager.default.attributesOfItem(atPath: coldDir + "/" + $1)[.size]) as? Int) ?? 0)
    }
    row("cold with its event-id files (.ids)", String(format: "ratio %.2f (%d bytes of .ids, %.1f an event)", Double(cold.rawBytes) / Double(max(1, Int(cold.bytes) + idsBytes)), idsBytes, Double(idsBytes) / Double(max(1, cold.events))))
    // Archived events sent again, one per append: each duplicate is confirmed against the day's `.ids` file.
    var rng = SystemRandomNumberGenerator()
    var resends: [Double] = []
    var duplicates = 0
    for _ in 0..<options.lookups {
        let t0 = now()
        let results = try store.appendAndWait([factory.prepared(Int.random(in: 0..<options.events, using: &rng))])
        resends.append((now() - t0) * 1000)
        if results.first?.duplicate == true { duplicates += 1 }
    }
    resends.sort()
    row("resent archived event (duplicate check)", String(format: "p50 %.3f ms, p99 %.3f ms, %d of %d duplicates", percentile(resends, 0.5), percentile(resends, 0.99), duplicates, resends.count))
    start = now()
    let restored = try store.restore(fromMs: nil, toMs: nil)
    seconds = now() - start
    row("restore from cold", String(format: "%.0f events/s, %.0f MB/s of segments", Double(restored.restored) / seconds, Double(restored.bytes) / seconds / 1e6))
    timelines("restored")
}

let mode = CommandLine.arguments.dropFirst().first ?? "store"
switch mode {
case "tiers":
    do {
        try runTiers(parseOptions())
    } catch {
        FileHandle.standardError.write("leadtrail-bench: \(error)\n".data(using: .utf8)!)
        exit(1)
    }
case "reopen":
    do {
        try runReopen(parseOptions())
    } catch {
        FileHandle.standardError.write("leadtrail-bench: \(error)\n".data(using: .utf8)!)
        exit(1)
    }
case "append-path":
    runAppendPath(Array(CommandLine.arguments.dropFirst(2)))
case "prepare":
    runPrepare(Int(CommandLine.arguments.dropFirst(2).first ?? "") ?? 100_000)
case "store":
    do {
        try runStore(parseOptions())
    } catch {
        FileHandle.standardError.write("leadtrail-bench: \(error)\n".data(using: .utf8)!)
        exit(1)
    }
default:
    FileHandle.standardError.write("usage: leadtrail-bench store [--events N] [--writers 1,4] [--batch B] [--dir DIR] [--keep]\n".data(using: .utf8)!)
    exit(2)
}
