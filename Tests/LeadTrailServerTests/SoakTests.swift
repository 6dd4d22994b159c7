import Foundation
import LeadTrailClient
import LeadTrailWire
import Testing

/// SIGKILL at random moments while several producers append: after every restart each
/// acknowledged event is present and unchanged, seqs run without gap or repeat, and
/// `verify` is clean. Short: a few rounds; `LEADTRAIL_LONG_TESTS=1`: hundreds
/// (`LEADTRAIL_SOAK_ROUNDS` overrides).
@Suite(.serialized) struct KillNineSoakTests {
    @Test(.enabled(if: LeadtrailBinary.path != nil, "needs the built `leadtrail` executable (swift build)"),
          .timeLimit(.minutes(180)))
    func randomKillsNeverLoseAnAcknowledgedEvent() throws {
        let binary = try #require(LeadtrailBinary.path)
        let rounds = Reliability.count("LEADTRAIL_SOAK_ROUNDS", short: 4, long: 200)
        let directory = TemporaryDirectory()
        let dataDirectory = directory.path + "/data", socketPath = directory.path + "/s.sock", logPath = directory.path + "/log"
        let configPath = directory.path + "/config.json"
        try Data(#"{"segment_max_bytes": 65536, "log_level": "warning"}"#.utf8).write(to: URL(fileURLWithPath: configPath))
        var rng = SystemRandomNumberGenerator()
        var acknowledged: [String: Int] = [:]
        var checkedEvents = 0

        for round in 0...rounds {
            let daemon = try ServeProcess(binary: binary, dataDirectory: dataDirectory, socketPath: socketPath, logPath: logPath, configPath: configPath)
            try daemon.waitUntilServing()
            // What the previous rounds acknowledged, checked before anything new is written.
            let connection = try LeadTrailConnection(socketPath: socketPath, timeoutSeconds: 60)
            let events = try scanAll(connection)
            let problems = auditScan(events, acknowledged: acknowledged)
            #expect(problems.isEmpty, "round \(round): \(problems)")
            let verify = try connection.request(["op": "verify"])
            #expect((verify["corrupt"] as? [Any])?.isEmpty == true, "round \(round): \(verify)")
            connection.close()
            checkedEvents += events.count
            if !problems.isEmpty || round == rounds {
                daemon.kill(SIGTERM)
                _ = daemon.wait()
                break
            }

            let producers = ProducerPool()
            producers.start(count: 4, socketPath: socketPath, tag: "r\(round)", batchSize: Int.random(in: 1...20, using: &rng))
            usleep(UInt32.random(in: 100_000...900_000, using: &rng))
            daemon.kill(SIGKILL)
            #expect(daemon.wait() == SIGKILL)
            producers.wait()
            acknowledged.merge(producers.acknowledged.all) { a, _ in a }
        }
        #expect(!acknowledged.isEmpty)
        Reliability.report("kill -9 soak: \(rounds) rounds survived, \(acknowledged.count) acknowledged events all present, \(checkedEvents) event reads checked")
    }
}

/// Many producers and readers at once against the built daemon: every acknowledgement
/// is honoured, readers always see a gap-free prefix up to the `last_seq` they were
/// told, and the daemon's resident memory stays flat. Short: a few seconds;
/// `LEADTRAIL_LONG_TESTS=1`: two minutes (`LEADTRAIL_LOAD_SECONDS` overrides).
@Suite(.serialized) struct LoadTests {
    @Test(.enabled(if: LeadtrailBinary.path != nil, "needs the built `leadtrail` executable (swift build)"),
          .timeLimit(.minutes(30)))
    func producersAndReadersTogether() throws {
        let binary = try #require(LeadtrailBinary.path)
        let seconds = Reliability.count("LEADTRAIL_LOAD_SECONDS", short: 4, long: 120)
        let directory = TemporaryDirectory()
        let dataDirectory = directory.path + "/data", socketPath = directory.path + "/s.sock", logPath = directory.path + "/log"
        let configPath = directory.path + "/config.json"
        try Data(#"{"segment_max_bytes": 1048576, "log_level": "warning"}"#.utf8).write(to: URL(fileURLWithPath: configPath))
        let daemon = try ServeProcess(binary: binary, dataDirectory: dataDirectory, socketPath: socketPath, logPath: logPath, configPath: configPath)
        defer {
            if daemon.process.isRunning {
                daemon.kill(SIGTERM)
                _ = daemon.wait()
            }
        }
        try daemon.waitUntilServing()
        let pid = daemon.process.processIdentifier

        let producers = ProducerPool()
        producers.start(count: 8, socketPath: socketPath, tag: "load", batchSize: 25)
        let readerProblems = Acknowledged()  // reused as a thread-safe counter of problem descriptions
        let readerChecks = Acknowledged()
        let stop = ConditionFlag()
        let readers = DispatchGroup()
        for reader in 0..<4 {
            readers.enter()
            Thread.detachNewThread {
                defer { readers.leave() }
                guard let connection = try? LeadTrailConnection(socketPath: socketPath, timeoutSeconds: 60) else {
                    readerProblems.add("reader \(reader) could not connect", 0)
                    return
                }
                defer { connection.close() }
                var round = 0
                while !stop.isSet {
                    round += 1
                    do {
                        let stats = try connection.request(["op": "stats"])
                        let told = int(stats["last_seq"]) ?? 0
                        let from = max(0, told - 300)
                        var expected = from + 1
                        var lastSeq = 0
                        try connection.stream(["op": "scan", "after_seq": from]) { frame in
                            for event in (frame["events"] as? [[String: Any]]) ?? [] {
                                let seq = int(event["seq"]) ?? -1
                                if seq != expected { readerProblems.add("reader \(reader): seq \(seq) where \(expected) was expected", seq) }
                                expected = seq + 1
                            }
                            if frame["done"] as? Bool == true { lastSeq = int(frame["last_seq"]) ?? 0 }
                            return true
                        }
                        // The scan saw at least what stats reported, and nothing past its own last_seq.
                        if expected - 1 < told { readerProblems.add("reader \(reader): scan ended at \(expected - 1) below last_seq \(told)", told) }
                        if expected - 1 > lastSeq { readerProblems.add("reader \(reader): scan passed its last_seq \(lastSeq)", lastSeq) }
                        readerChecks.add("r\(reader)-\(round)", told)
                    } catch {
                        readerProblems.add("reader \(reader): \(error)", 0)
                        return
                    }
                }
            }
        }
        // Memory after a warm-up third and at the end.
        var samples: [Int] = []
        let start = Date()
        while Date().timeIntervalSince(start) < Double(seconds) {
            usleep(250_000)
            if let kb = residentKilobytes(pid: pid) { samples.append(kb) }
        }
        stop.set()
        producers.stop()
        producers.wait()
        readers.wait()

        #expect(readerProblems.all.isEmpty, "\(readerProblems.all.keys.sorted().prefix(10))")
        #expect(readerChecks.count > 0)
        let acknowledged = producers.acknowledged.all
        #expect(acknowledged.count > 0)
        #expect(producers.refusals == 0)
        // Every acknowledgement is honoured, checked by a full scan.
        let connection = try LeadTrailConnection(socketPath: socketPath, timeoutSeconds: 60)
        let events = try scanAll(connection)
        let problems = auditScan(events, acknowledged: acknowledged)
        #expect(problems.isEmpty, "\(problems)")
        let verify = try connection.request(["op": "verify"])
        #expect((verify["corrupt"] as? [Any])?.isEmpty == true)
        connection.close()

        // Flat memory: the last samples are not far above the ones after warm-up (the id table
        // and the indexes grow with the events, a few bytes each; a leak of request or response
        // buffers would grow by their size).
        if samples.count >= 6 {
            let warm = samples[samples.count / 3]
            let end = samples.suffix(3).max() ?? warm
            let bytesPerEvent = acknowledged.count > 0 ? Double((end - warm) * 1024) / Double(acknowledged.count) : 0
            #expect(end <= warm + 96 * 1024, "resident memory grew from \(warm) kB to \(end) kB")
            Reliability.report("load: \(seconds) s, \(acknowledged.count) events acknowledged, \(readerChecks.count) prefix checks, RSS \(warm) kB -> \(end) kB (\(Int(bytesPerEvent)) B/event)")
        }
    }
}

/// A flag set once, read from many threads.
final class ConditionFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}
