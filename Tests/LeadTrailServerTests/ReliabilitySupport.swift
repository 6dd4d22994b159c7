import Foundation
import LeadTrailClient
@testable import LeadTrailStorage
import Testing

/// Switches and counters shared by the reliability suites.
enum Reliability {
    /// `LEADTRAIL_LONG_TESTS=1` runs the long forms (hundreds of rounds, minutes of load).
    static var long: Bool { ProcessInfo.processInfo.environment["LEADTRAIL_LONG_TESTS"] == "1" }

    /// A number from the environment, else the short or long default.
    static func count(_ name: String, short: Int, long longValue: Int) -> Int {
        if let text = ProcessInfo.processInfo.environment[name], let n = Int(text) { return n }
        return long ? longValue : short
    }

    /// Prints one line of counts for the closing report (stderr, so it shows in CI logs).
    static func report(_ line: String) {
        FileHandle.standardError.write(Data(("reliability: " + line + "\n").utf8))
    }
}

/// The test-only `leadtrail-crashtest` driver, built next to `leadtrail`.
enum CrashtestBinary {
    static let path: String? = {
        var candidates: [String] = []
        if let env = ProcessInfo.processInfo.environment["LEADTRAIL_CRASHTEST_BINARY"], !env.isEmpty { candidates.append(env) }
        if let leadtrail = LeadtrailBinary.path {
            candidates.append(URL(fileURLWithPath: leadtrail).deletingLastPathComponent().appendingPathComponent("leadtrail-crashtest").path)
        }
        var directory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<4 {
            candidates.append(directory.appendingPathComponent("leadtrail-crashtest").path)
            directory = directory.deletingLastPathComponent()
        }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()
}

/// What a producer sent, so that what comes back can be compared with it.
struct SentEvent: Sendable {
    var lead: String
    var k: Int
}

/// The expected body fields of the events the reliability producers send: `lead_id` and `metadata.k` follow from the id.
func producerEvent(id: String, k: Int) -> [String: Any] {
    ["type": "source.submitted", "lead_id": "L\(k % 11)", "event_id": id,
     "metadata": ["k": k, "note": String(repeating: "r", count: 100 + k % 200)]]
}

/// Every event of a live daemon, in the order a full scan returns them.
func scanAll(_ connection: LeadTrailConnection) throws -> [[String: Any]] {
    var events: [[String: Any]] = []
    try connection.stream(["op": "scan"]) { frame in
        events.append(contentsOf: (frame["events"] as? [[String: Any]]) ?? [])
        return true
    }
    return events
}

/// The checks every reliability suite makes after a crash: each acknowledged event is
/// present exactly once with its acknowledged seq and unchanged content, seqs run
/// 1...n without gap or repeat, no event id appears twice. Returns the problems found.
func auditEvents(_ events: [(seq: Int, id: String, lead: String?, k: Int?)], acknowledged: [String: Int]) -> [String] {
    var problems: [String] = []
    var seen: [String: Int] = [:]
    var previous = 0
    for event in events {
        if event.seq != previous + 1 { problems.append("seq \(event.seq) follows \(previous)") }
        previous = event.seq
        if let first = seen[event.id] { problems.append("event \(event.id) stored twice (seqs \(first) and \(event.seq))") }
        seen[event.id] = event.seq
        if let k = event.k, event.lead != "L\(k % 11)" { problems.append("event \(event.id) changed: lead \(event.lead ?? "nil")") }
    }
    for (id, seq) in acknowledged {
        guard let stored = seen[id] else {
            problems.append("acknowledged event \(id) (seq \(seq)) is missing")
            continue
        }
        if stored != seq { problems.append("acknowledged event \(id) had seq \(seq), now \(stored)") }
    }
    return Array(problems.prefix(20))
}

/// `auditEvents` over a daemon's scan answer, also checking that `metadata.k` matches the id's number.
func auditScan(_ events: [[String: Any]], acknowledged: [String: Int]) -> [String] {
    var problems: [String] = []
    let rows = events.map { event -> (seq: Int, id: String, lead: String?, k: Int?) in
        let id = event["event_id"] as? String ?? ""
        let k = int((event["metadata"] as? [String: Any])?["k"])
        if let k, let number = id.split(separator: "-").last.flatMap({ Int($0) }), number != k {
            problems.append("event \(id) changed: metadata.k is \(k)")
        }
        return (int(event["seq"]) ?? -1, id, event["lead_id"] as? String, k)
    }
    return problems + auditEvents(rows, acknowledged: acknowledged)
}

/// Reads a process's resident set size (kB) from /proc.
func residentKilobytes(pid: Int32) -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    }
    return nil
}

/// Producers over their own connections, appending unique events and recording every acknowledgement
/// until their connection fails or they are told to stop.
final class ProducerPool: @unchecked Sendable {
    let acknowledged = Acknowledged()
    private let lock = NSLock()
    private var stopFlag = false
    private var refused = 0
    private let group = DispatchGroup()

    var stopped: Bool { lock.withLock { stopFlag } }
    var refusals: Int { lock.withLock { refused } }

    /// Starts `count` producers; ids are `<tag>p<i>-<k>` with k unique per producer.
    func start(count: Int, socketPath: String, tag: String, batchSize: Int = 10, maxBatches: Int = 100_000) {
        for producer in 0..<count {
            group.enter()
            Thread.detachNewThread { [self] in
                defer { group.leave() }
                guard let connection = try? LeadTrailConnection(socketPath: socketPath, timeoutSeconds: 20) else { return }
                defer { connection.close() }
                var k = 0
                for _ in 0..<maxBatches where !stopped {
                    var events: [[String: Any]] = []
                    var ids: [String] = []
                    for _ in 0..<batchSize {
                        k += 1
                        let id = "\(tag)p\(producer)-\(k)"
                        ids.append(id)
                        events.append(producerEvent(id: id, k: k))
                    }
                    let response: [String: Any]
                    do {
                        try connection.send(["op": "append", "events": events])
                        response = try connection.receive()
                    } catch {
                        return
                    }
                    guard let results = response["results"] as? [[String: Any]] else {
                        lock.withLock { refused += 1 }
                        if errorCode(response) == "unavailable" { continue }
                        return
                    }
                    for result in results {
                        if let id = result["event_id"] as? String, let seq = int(result["seq"]) { acknowledged.add(id, seq) }
                    }
                }
            }
        }
    }

    func stop() { lock.withLock { stopFlag = true } }
    func wait() { group.wait() }
}
