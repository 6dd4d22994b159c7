// leadtrail-load: a load client for the real daemon, over its Unix socket.
//
//   leadtrail-load append --socket S --file EVENTS.ndjson [--connections C] [--batch 1000]
//                         [--window W] [--rate EVENTS_PER_S] [--limit N] [--pid DAEMON_PID]
//   leadtrail-load query  --socket S --file EVENTS.ndjson [--lookups N] [--from TS --to TS] [--scan-repeats N]
//   leadtrail-load slowscan --socket S --pid DAEMON_PID [--read-bytes 65536] [--pause-us 5000] [--scan JSON]
//   leadtrail-load scan   --socket S [--scan JSON] [--repeat N] [--pid DAEMON_PID] [--check]
//
// `append` reads raw NDJSON lines (the generator's events, as a producer would
// have them), builds one append frame per batch *before* the clock starts,
// deals the batches round-robin to C producer connections, and on each
// connection keeps up to W frames in flight (pipelining: one sender and one
// receiver thread per connection). It times each batch from the moment its
// frame is written to the moment its acknowledgement (sent by the daemon only
// after fsync) is read. With --rate it paces the batches to that many events/s
// in all, for latency at a given load. It prints the CPU time this client spent
// while the clock ran (and, with --pid, the daemon's), per 1,000 events: on a
// machine whose cores are all busy, the two together set the ceiling.
//
// `query` times timeline lookups of random leads of the file (one request at a
// time, p50/p99 through the socket) and two scans: a one-hour `from`/`to`
// window and the whole store filtered by `types: ["recipient.*"]`. Scans count
// the events they receive with one pass over each frame that follows strings and
// nesting without decoding anything (`leadtrail_count_scan_frame`, in C: 64 bytes
// at a time with SIMD compares), reading every frame into one reused buffer, so
// that the client is not what limits the scan. With --scan-repeats N each scan runs
// N times and the median is printed (one run is as noisy as the machine).
//
// `slowscan` reads a scan (the whole store by default) slowly while it samples the
// daemon's resident memory: it must stay flat however slowly the client reads.
//
// `scan` runs one scan (`--scan`, the whole store by default) `--repeat` times on one
// connection and prints each run's time, the fastest and the median, with the CPU time
// the client spent (and, with --pid, the daemon's): which side limits a scan. --check first
// runs it once counting every frame with both counters (C and scalar Swift), which must agree.
//
// Output is `key=value` lines, for scripts/bench.
import CScanCount
import Foundation
import LeadTrailEvents

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Options

struct Options {
    var mode = ""
    var socket = ""
    var file = ""
    var connections = 1
    var batch = 1000
    var window = 4
    var rate: Double = 0
    var limit = Int.max
    var lookups = 1000
    var from: String?
    var to: String?
    var seed: UInt64 = 42
    var pid: Int32 = 0
    var readBytes = 64 << 10
    var pauseMicroseconds: UInt32 = 5000
    var scan = #"{"op":"scan"}"#
    var repeats = 1
    /// `query`: runs of each scan; the median is printed.
    var scanRepeats = 1
    var check = false
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("leadtrail-load: \(message)\n".utf8))
    exit(1)
}

func parseOptions() -> Options {
    var options = Options()
    let arguments = Array(CommandLine.arguments.dropFirst())
    guard let mode = arguments.first else { fail("usage: leadtrail-load append|query --socket S --file F ...") }
    options.mode = mode
    var iterator = arguments.dropFirst().makeIterator()
    func value(_ name: String) -> String {
        guard let v = iterator.next() else { fail("\(name) needs a value") }
        return v
    }
    while let argument = iterator.next() {
        switch argument {
        case "--socket": options.socket = value(argument)
        case "--file": options.file = value(argument)
        case "--connections": options.connections = max(1, Int(value(argument)) ?? 1)
        case "--batch": options.batch = max(1, Int(value(argument)) ?? 1000)
        case "--window": options.window = max(1, Int(value(argument)) ?? 4)
        case "--rate": options.rate = Double(value(argument)) ?? 0
        case "--limit": options.limit = Int(value(argument)) ?? Int.max
        case "--lookups": options.lookups = Int(value(argument)) ?? 1000
        case "--from": options.from = value(argument)
        case "--to": options.to = value(argument)
        case "--seed": options.seed = UInt64(value(argument)) ?? 42
        case "--pid": options.pid = Int32(value(argument)) ?? 0
        case "--read-bytes": options.readBytes = max(1, Int(value(argument)) ?? (64 << 10))
        case "--pause-us": options.pauseMicroseconds = UInt32(value(argument)) ?? 5000
        case "--scan": options.scan = value(argument)
        case "--repeat": options.repeats = max(1, Int(value(argument)) ?? 1)
        case "--scan-repeats": options.scanRepeats = max(1, Int(value(argument)) ?? 1)
        case "--check": options.check = true
        default: fail("unknown option \(argument)")
        }
    }
    if options.socket.isEmpty || (options.file.isEmpty && options.mode != "slowscan" && options.mode != "scan") { fail("--socket and --file are required") }
    return options
}

// MARK: - Clock and statistics

@inline(__always) func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    let rank = Int((Double(sorted.count) * p).rounded(.up)) - 1
    return sorted[min(sorted.count - 1, max(0, rank))]
}

func emit(_ key: String, _ value: Any) { print("\(key)=\(value)") }

// MARK: - A raw framed connection

final class Connection {
    let fd: Int32

    init(path: String) {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { fail("socket(): \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { fail("socket path too long: \(path)") }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
            raw[bytes.count] = 0
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { fail("connect(\(path)): \(String(cString: strerror(errno)))") }
        self.fd = fd
    }

    deinit { close(fd) }

    func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    fail("write: \(String(cString: strerror(errno)))")
                }
                offset += n
            }
        }
    }

    /// The frame buffer, reused from frame to frame (grown, never shrunk).
    private var scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
    /// Bytes read at most per `read` call (`slowscan` makes it small), and a pause after each.
    var readSize = Int.max
    var pauseMicroseconds: UInt32 = 0

    /// Reads exactly `count` bytes into `target`, straight from the socket.
    private func readExact(_ target: UnsafeMutableRawBufferPointer) {
        var done = 0
        while done < target.count {
            let n = Glibc.read(fd, target.baseAddress! + done, min(target.count - done, readSize))
            if n < 0 {
                if errno == EINTR { continue }
                fail("read: \(String(cString: strerror(errno)))")
            }
            if n == 0 { fail("the daemon closed the connection") }
            done += n
            if pauseMicroseconds > 0 { usleep(pauseMicroseconds) }
        }
    }

    /// Reads one frame and passes its body to `body` (valid only during the call): no copy, no allocation.
    func withFrame<T>(_ body: (UnsafeBufferPointer<UInt8>) -> T) -> T {
        var header: UInt32 = 0
        withUnsafeMutableBytes(of: &header) { readExact($0) }
        let length = Int(UInt32(bigEndian: header))
        if length > scratch.count {
            scratch.deallocate()
            scratch = .allocate(byteCount: length, alignment: 16)
        }
        let target = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<length])
        readExact(target)
        return body(UnsafeRawBufferPointer(target).bindMemory(to: UInt8.self))
    }

    /// Reads one frame body.
    func readFrame() -> [UInt8] {
        withFrame { Array($0) }
    }
}

func frame(_ body: [UInt8]) -> [UInt8] {
    let n = UInt32(body.count)
    var out: [UInt8] = [UInt8(n >> 24), UInt8((n >> 16) & 0xFF), UInt8((n >> 8) & 0xFF), UInt8(n & 0xFF)]
    out.reserveCapacity(body.count + 4)
    out.append(contentsOf: body)
    return out
}

@inline(__always) func isTrue(_ span: JSONSpan, _ buffer: UnsafeBufferPointer<UInt8>) -> Bool {
    span.kind == .bool && buffer[span.range.lowerBound] == UInt8(ascii: "t")
}

/// Whether a response frame says `"ok":true` at its top level (a structural scan, no decoding).
func isOK(_ body: [UInt8]) -> Bool {
    body.withUnsafeBufferPointer { buffer in
        guard let scanned = try? JSONScanner.topLevelMembers(buffer) else { return false }
        for member in scanned.members where JSONScanner.stringEquals(member.key, in: buffer, "ok".utf8) {
            return isTrue(member.value, buffer)
        }
        return false
    }
}

func readLines(_ path: String, limit: Int) -> [[UInt8]] {
    guard let data = FileManager.default.contents(atPath: path) else { fail("cannot read \(path)") }
    var lines: [[UInt8]] = []
    data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
        let bytes = raw.bindMemory(to: UInt8.self)
        var start = 0
        for i in 0..<bytes.count where bytes[i] == 0x0A {
            if i > start, lines.count < limit { lines.append(Array(bytes[start..<i])) }
            start = i + 1
        }
        if start < bytes.count, lines.count < limit { lines.append(Array(bytes[start..<bytes.count])) }
    }
    return lines
}

// MARK: - append

final class Gate: @unchecked Sendable {
    let semaphore: DispatchSemaphore
    init(_ n: Int) { semaphore = DispatchSemaphore(value: n) }
}

final class ConnectionResult: @unchecked Sendable {
    var latencies: [Double] = []
    var errors = 0
    var firstError: String?
}

func runAppend(_ options: Options) {
    let lines = readLines(options.file, limit: options.limit)
    guard !lines.isEmpty else { fail("no events in \(options.file)") }
    // Build every frame before the clock starts: the producer's NDJSON lines, joined as they are.
    var frames: [[UInt8]] = []
    var eventBytes = 0
    var index = 0
    let prefix = Array(#"{"op":"append","events":["#.utf8)
    while index < lines.count {
        let end = min(lines.count, index + options.batch)
        var body = prefix
        body.reserveCapacity(prefix.count + (end - index) * (lines[index].count + 1) + 2)
        for i in index..<end {
            if i > index { body.append(UInt8(ascii: ",")) }
            body.append(contentsOf: lines[i])
            eventBytes += lines[i].count
        }
        body.append(contentsOf: Array("]}".utf8))
        frames.append(frame(body))
        index = end
    }
    let connections = (0..<options.connections).map { _ in Connection(path: options.socket) }
    let results = (0..<options.connections).map { _ in ConnectionResult() }
    let group = DispatchGroup()
    // Pacing: batch b (overall) may start at start + b * interval.
    let interval = options.rate > 0 ? Double(options.batch) / options.rate : 0
    let clientCPU0 = ownCPUSeconds()
    let daemonCPU0 = options.pid > 0 ? processCPUSeconds(pid: options.pid) : 0
    let start = now()
    for c in 0..<options.connections {
        let mine = stride(from: c, to: frames.count, by: options.connections).map { $0 }
        let connection = connections[c]
        let result = results[c]
        let gate = Gate(options.window)
        var sentAt = [Double](repeating: 0, count: mine.count)
        let sentAtLock = NSLock()
        group.enter()
        Thread {
            for (k, f) in mine.enumerated() {
                gate.semaphore.wait()
                if interval > 0 {
                    let due = start + Double(f) * interval
                    let wait = due - now()
                    if wait > 0 { usleep(UInt32(wait * 1e6)) }
                }
                sentAtLock.lock(); sentAt[k] = now(); sentAtLock.unlock()
                connection.write(frames[f])
            }
        }.start()
        Thread {
            result.latencies.reserveCapacity(mine.count)
            for k in 0..<mine.count {
                let body = connection.readFrame()
                let t = now()
                sentAtLock.lock(); let t0 = sentAt[k]; sentAtLock.unlock()
                result.latencies.append(t - t0)
                if !isOK(body) {
                    result.errors += 1
                    if result.firstError == nil { result.firstError = String(decoding: body.prefix(300), as: UTF8.self) }
                }
                gate.semaphore.signal()
            }
            group.leave()
        }.start()
    }
    group.wait()
    let seconds = now() - start
    let clientCPU = ownCPUSeconds() - clientCPU0
    let daemonCPU = options.pid > 0 ? processCPUSeconds(pid: options.pid) - daemonCPU0 : 0
    let latencies = results.flatMap(\.latencies).sorted()
    let errors = results.reduce(0) { $0 + $1.errors }
    emit("events", lines.count)
    emit("event_bytes", eventBytes)
    emit("batches", frames.count)
    emit("connections", options.connections)
    emit("window", options.window)
    emit("seconds", String(format: "%.4f", seconds))
    emit("events_per_s", String(format: "%.0f", Double(lines.count) / seconds))
    emit("mb_per_s", String(format: "%.2f", Double(eventBytes) / seconds / 1e6))
    emit("p50_ms", String(format: "%.3f", percentile(latencies, 0.50) * 1000))
    emit("p99_ms", String(format: "%.3f", percentile(latencies, 0.99) * 1000))
    emit("max_ms", String(format: "%.3f", (latencies.last ?? 0) * 1000))
    emit("errors", errors)
    let perThousand = 1000 / Double(max(1, lines.count)) * 1000
    emit("client_cpu_ms_per_1000", String(format: "%.2f", clientCPU * perThousand))
    if options.pid > 0 { emit("daemon_cpu_ms_per_1000", String(format: "%.2f", daemonCPU * perThousand)) }
    if let first = results.compactMap(\.firstError).first { emit("first_error", first.replacingOccurrences(of: "\n", with: " ")) }
}

// MARK: - query

struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The `lead_id` of each event line (decoded), in file order.
func leadIDs(_ lines: [[UInt8]]) -> [String] {
    var out: [String] = []
    out.reserveCapacity(lines.count)
    for line in lines {
        line.withUnsafeBufferPointer { buffer in
            guard let scanned = try? JSONScanner.topLevelMembers(buffer) else { return }
            for member in scanned.members where JSONScanner.stringEquals(member.key, in: buffer, "lead_id".utf8) {
                out.append(JSONScanner.decodeString(member.value, in: buffer))
                return
            }
        }
    }
    return out
}

/// Events in a response frame's `events` array, and whether the frame says `done`.
func countEvents(_ body: [UInt8]) -> (events: Int, done: Bool, ok: Bool) {
    body.withUnsafeBufferPointer { buffer in
        guard let scanned = try? JSONScanner.topLevelMembers(buffer) else { return (0, true, false) }
        var events = 0
        var done = false
        var ok = false
        for member in scanned.members {
            if JSONScanner.stringEquals(member.key, in: buffer, "events".utf8) {
                events = (try? JSONScanner.elements(of: member.value, in: buffer).count) ?? 0
            } else if JSONScanner.stringEquals(member.key, in: buffer, "done".utf8) {
                done = isTrue(member.value, buffer)
            } else if JSONScanner.stringEquals(member.key, in: buffer, "ok".utf8) {
                ok = isTrue(member.value, buffer)
            }
        }
        return (events, done || !ok, ok)
    }
}

func request(_ object: String) -> [UInt8] { frame(Array(object.utf8)) }

/// Events in a scan response frame (the objects of its top-level `events` array), and whether it
/// says `"ok":true` and `"done":true`, counted by the C counter: one pass over the bytes that
/// follows strings and nesting and decodes nothing, so the client keeps up with the daemon.
func countScanFrame(_ p: UnsafeBufferPointer<UInt8>) -> (events: Int, done: Bool, ok: Bool) {
    guard let base = p.baseAddress else { return (0, true, false) }
    let counted = leadtrail_count_scan_frame(base, p.count)
    return (Int(counted.events), counted.done != 0 || counted.ok == 0, counted.ok != 0)
}

/// The same count one byte (and one `memchr` per string) at a time: `scan --check` compares the two.
/// The contract's frames put only objects in `events`.
func countScanFrameScalar(_ p: UnsafeBufferPointer<UInt8>) -> (events: Int, done: Bool, ok: Bool) {
    guard let base = p.baseAddress else { return (0, true, false) }
    let n = p.count
    var i = 0
    var depth = 0
    var events = 0
    var ok = false, done = false
    var inEvents = false
    var key = 0..<0  // the last string seen at depth 1 (a key, when a value follows)
    @inline(__always) func keyIs(_ name: StaticString) -> Bool {
        key.count == name.utf8CodeUnitCount && memcmp(base + key.lowerBound, name.utf8Start, key.count) == 0
    }
    while i < n {
        switch p[i] {
        case UInt8(ascii: "\""):
            var j = i + 1
            while true {
                guard let hit = memchr(base + j, Int32(UInt8(ascii: "\"")), n - j) else { return (events, true, false) }
                j = UnsafeRawPointer(hit).assumingMemoryBound(to: UInt8.self) - base
                var k = j - 1
                while p[k] == UInt8(ascii: "\\") { k -= 1 }
                if (j - 1 - k) % 2 == 0 { break }  // not escaped
                j += 1
            }
            if depth == 1 { key = (i + 1)..<j }
            i = j + 1
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            depth += 1
            if depth == 2, p[i] == UInt8(ascii: "["), keyIs("events") { inEvents = true }
            if depth == 3, inEvents { events += 1 }
            i += 1
        case UInt8(ascii: "}"), UInt8(ascii: "]"):
            depth -= 1
            if depth == 1 { inEvents = false }
            i += 1
        case UInt8(ascii: "t"):
            if depth == 1 {
                if keyIs("ok") { ok = true }
                if keyIs("done") { done = true }
            }
            i += 4
        default:
            i += 1
        }
    }
    return (events, done || !ok, ok)
}

/// Runs one scan; returns (seconds, events, bytes received). With `check`, every frame is also counted
/// by the scalar counter and the two must agree.
func timedScan(_ connection: Connection, _ requestBody: String, check: Bool = false) -> (Double, Int, Int) {
    let start = now()
    connection.write(request(requestBody))
    var events = 0
    var bytes = 0
    while true {
        let (counted, failure) = connection.withFrame { body -> ((events: Int, done: Bool, ok: Bool), String?) in
            bytes += body.count + 4
            let counted = countScanFrame(body)
            if check, countScanFrameScalar(body) != counted { fail("the two frame counters disagree") }
            return (counted, counted.ok ? nil : String(decoding: body.prefix(300), as: UTF8.self))
        }
        if let failure { fail("scan failed: \(failure)") }
        events += counted.events
        if counted.done { break }
    }
    return (now() - start, events, bytes)
}

func runQuery(_ options: Options) {
    let lines = readLines(options.file, limit: options.limit)
    let leads = Array(Set(leadIDs(lines))).sorted()
    guard !leads.isEmpty else { fail("no leads in \(options.file)") }
    let connection = Connection(path: options.socket)
    var random = SplitMix(state: options.seed)
    // Warm up: a few lookups so the first ones do not pay for page faults of the binary.
    for _ in 0..<min(50, options.lookups) {
        connection.write(request(#"{"op":"timeline","lead_id":\#(JSONString.quoted(leads[Int(random.next() % UInt64(leads.count))]))}"#))
        _ = connection.readFrame()
    }
    var latencies: [Double] = []
    var returned = 0
    for _ in 0..<options.lookups {
        let lead = leads[Int(random.next() % UInt64(leads.count))]
        let body = request(#"{"op":"timeline","lead_id":\#(JSONString.quoted(lead))}"#)
        let t0 = now()
        connection.write(body)
        let response = connection.readFrame()
        latencies.append(now() - t0)
        let counted = countEvents(response)
        if !counted.ok { fail("timeline failed: \(String(decoding: response.prefix(300), as: UTF8.self))") }
        returned += counted.events
    }
    latencies.sort()
    emit("timeline_lookups", options.lookups)
    emit("timeline_events_avg", String(format: "%.1f", Double(returned) / Double(max(1, options.lookups))))
    emit("timeline_p50_ms", String(format: "%.3f", percentile(latencies, 0.50) * 1000))
    emit("timeline_p99_ms", String(format: "%.3f", percentile(latencies, 0.99) * 1000))
    // Each scan `--scan-repeats` times: the median time (every run returns the same events).
    func medianScan(_ body: String) -> (Double, Int, Int) {
        let runs = (0..<options.scanRepeats).map { _ in timedScan(connection, body) }
        let seconds = runs.map(\.0).sorted()
        return (percentile(seconds, 0.5), runs[0].1, runs[0].2)
    }
    if let from = options.from, let to = options.to {
        let (seconds, events, bytes) = medianScan(#"{"op":"scan","from":"\#(from)","to":"\#(to)"}"#)
        emit("scan_hour_s", String(format: "%.4f", seconds))
        emit("scan_hour_events", events)
        emit("scan_hour_bytes", bytes)
    }
    let (seconds, events, bytes) = medianScan(#"{"op":"scan","types":["recipient.*"]}"#)
    emit("scan_recipient_s", String(format: "%.4f", seconds))
    emit("scan_recipient_events", events)
    emit("scan_recipient_bytes", bytes)
}

// MARK: - slowscan

/// The resident set of a process in MB (0 when it cannot be read).
func residentMegabytes(pid: Int32) -> Double {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return (Double(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) / 1024
    }
    return 0
}

/// A scan (the whole store by default) read slowly, `--read-bytes` per read with `--pause-us`
/// after each, while the daemon's (`--pid`) resident memory is sampled every 20 ms: the daemon
/// must not buffer what the client has not read yet.
func runSlowScan(_ options: Options) {
    guard options.pid > 0 else { fail("slowscan needs --pid (the daemon's)") }
    let connection = Connection(path: options.socket)
    connection.readSize = options.readBytes
    connection.pauseMicroseconds = options.pauseMicroseconds
    let before = residentMegabytes(pid: options.pid)
    final class Samples: @unchecked Sendable {
        let lock = NSLock()
        var max = 0.0
        var stop = false
    }
    let samples = Samples()
    let sampler = Thread {
        while true {
            let rss = residentMegabytes(pid: options.pid)
            samples.lock.lock()
            samples.max = max(samples.max, rss)
            let stop = samples.stop
            samples.lock.unlock()
            if stop { break }
            usleep(20_000)
        }
    }
    sampler.start()
    let (seconds, events, bytes) = timedScan(connection, options.scan)
    samples.lock.lock()
    samples.stop = true
    let peak = samples.max
    samples.lock.unlock()
    let after = residentMegabytes(pid: options.pid)
    emit("slowscan_s", String(format: "%.2f", seconds))
    emit("slowscan_events", events)
    emit("slowscan_bytes", bytes)
    emit("slowscan_read_mb_per_s", String(format: "%.1f", Double(bytes) / seconds / 1e6))
    emit("rss_before_mb", String(format: "%.1f", before))
    emit("rss_peak_mb", String(format: "%.1f", peak))
    emit("rss_after_mb", String(format: "%.1f", after))
    emit("rss_growth_mb", String(format: "%.1f", peak - before))
}

// MARK: - scan

/// CPU seconds (user + system) of a process from /proc (0 when it cannot be read).
func processCPUSeconds(pid: Int32) -> Double {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return 0 }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    // After the command: state is field 3, utime and stime are fields 14 and 15.
    guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// CPU seconds (user + system) of this process.
func ownCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

func runScan(_ options: Options) {
    let connection = Connection(path: options.socket)
    var times: [Double] = []
    var clientCPU = 0.0, daemonCPU = 0.0
    var events = 0, bytes = 0
    if options.check { _ = timedScan(connection, options.scan, check: true) }
    for _ in 0..<max(1, options.repeats) {
        let cpu0 = ownCPUSeconds()
        let daemon0 = options.pid > 0 ? processCPUSeconds(pid: options.pid) : 0
        let (seconds, n, b) = timedScan(connection, options.scan)
        clientCPU += ownCPUSeconds() - cpu0
        if options.pid > 0 { daemonCPU += processCPUSeconds(pid: options.pid) - daemon0 }
        times.append(seconds)
        events = n
        bytes = b
    }
    let runs = Double(times.count)
    emit("scan_runs_ms", times.map { String(format: "%.1f", $0 * 1000) }.joined(separator: ","))
    emit("scan_events", events)
    emit("scan_bytes", bytes)
    let sorted = times.sorted()
    emit("scan_min_ms", String(format: "%.2f", sorted[0] * 1000))
    emit("scan_median_ms", String(format: "%.2f", percentile(sorted, 0.5) * 1000))
    emit("client_cpu_ms_per_scan", String(format: "%.1f", clientCPU / runs * 1000))
    if options.pid > 0 { emit("daemon_cpu_ms_per_scan", String(format: "%.1f", daemonCPU / runs * 1000)) }
}

let options = parseOptions()
switch options.mode {
case "append": runAppend(options)
case "query": runQuery(options)
case "slowscan": runSlowScan(options)
case "scan": runScan(options)
default: fail("unknown mode \(options.mode): expected append, query, slowscan or scan")
}
