import Foundation
import LeadTrailClient
import LeadTrailEvents
@testable import LeadTrailStorage
import Testing

/// Every named crash point, reached by a real process that then dies with `_exit(77)`:
/// the append, seal, segment-creation and checkpoint points through `leadtrail serve`,
/// the tier-move and restore points through the `leadtrail-crashtest` driver (an in-process
/// store that runs many moves and restores per run, beside its appends). After each death the directory is reopened and
/// every acknowledged event must be there exactly once, with its seq, seqs without gaps,
/// and `verify` clean.
@Suite(.serialized) struct CrashPointTests {
    static let daemonPoints: [CrashPoint] = [
        .afterWriteBeforeSync, .afterSyncBeforeAck, .sealAfterFooterWrite, .sealAfterFooterSync, .sealAfterRename,
        .createAfterOpen, .createAfterHeader, .checkpointBeforeRename,
    ]
    static let driverPoints: [CrashPoint] = CrashPoint.allCases.filter { !daemonPoints.contains($0) }

    /// How many times each point is hit: the n-th occurrence for n in 1...repetitions.
    static let repetitions = Reliability.count("LEADTRAIL_CRASH_REPETITIONS", short: 2, long: 5)
    /// The driver's runs take longer (each tier point is followed by a full second run): once in the short form.
    static let driverRepetitions = Reliability.count("LEADTRAIL_CRASH_REPETITIONS", short: 1, long: 5)

    @Test func everyPointIsCovered() {
        #expect(Set(Self.daemonPoints + Self.driverPoints) == Set(CrashPoint.allCases))
    }

    @Test(.enabled(if: LeadtrailBinary.path != nil, "needs the built `leadtrail` executable (swift build)"),
          .timeLimit(.minutes(20)), arguments: CrashPointTests.daemonPoints)
    func daemonDiesAtPoint(_ point: CrashPoint) throws {
        let binary = try #require(LeadtrailBinary.path)
        for occurrence in 1...Self.repetitions {
            // The startup itself reaches create.after-header and checkpoint.before-rename once, and create.after-open
            // twice (the active segment, then the spare one): those occurrences die while starting, later ones while serving.
            let n = occurrence
            try runDaemon(binary: binary, point: point, occurrence: n)
        }
        Reliability.report("crash point \(point.rawValue) (daemon): \(Self.repetitions) round(s) run, checked after each death")
    }

    func runDaemon(binary: String, point: CrashPoint, occurrence: Int) throws {
        let directory = TemporaryDirectory()
        let dataDirectory = directory.path + "/data", socketPath = directory.path + "/s.sock", logPath = directory.path + "/log"
        let configPath = directory.path + "/config.json"
        try Data(#"{"segment_max_bytes": 4096, "log_level": "warning"}"#.utf8).write(to: URL(fileURLWithPath: configPath))

        let daemon = try ServeProcess(
            binary: binary, dataDirectory: dataDirectory, socketPath: socketPath, logPath: logPath, configPath: configPath,
            environment: ["LEADTRAIL_CRASHPOINT": "\(point.rawValue):\(occurrence)"])
        var acknowledged: [String: Int] = [:]
        if (try? daemon.waitUntilServing()) != nil, let connection = try? LeadTrailConnection(socketPath: socketPath, timeoutSeconds: 20) {
            let deadline = Date().addingTimeInterval(20)
            var k = 0
            appending: while daemon.process.isRunning && Date() < deadline {
                var events: [[String: Any]] = []
                for _ in 0..<4 {
                    k += 1
                    events.append(producerEvent(id: "c-\(k)", k: k))
                }
                guard let response = try? connection.request(["op": "append", "events": events]),
                      let results = response["results"] as? [[String: Any]] else { break appending }
                for result in results {
                    if let id = result["event_id"] as? String, let seq = int(result["seq"]) { acknowledged[id] = seq }
                }
                if k % 24 == 0 { _ = try? connection.request(["op": "rotate"]) }
                // Checkpoints fall due once a second: give the writer idle moments.
                if point == .checkpointBeforeRename { usleep(50_000) }
            }
            connection.close()
        }
        // The daemon closed our connection as it died; give the exit a moment to be seen.
        let exitDeadline = Date().addingTimeInterval(10)
        while daemon.process.isRunning && Date() < exitDeadline { usleep(10_000) }
        if daemon.process.isRunning {
            daemon.kill(SIGKILL)
            Issue.record("crash point \(point.rawValue):\(occurrence) was never reached")
        }
        let status = daemon.wait()
        #expect(status == 77, "crash point \(point.rawValue):\(occurrence): exit status \(status)")

        // Restart without the crash point and check everything through the daemon.
        let restarted = try ServeProcess(binary: binary, dataDirectory: dataDirectory, socketPath: socketPath, logPath: logPath, configPath: configPath)
        defer {
            restarted.kill(SIGTERM)
            _ = restarted.wait()
        }
        try restarted.waitUntilServing()
        let connection = try LeadTrailConnection(socketPath: socketPath, timeoutSeconds: 30)
        defer { connection.close() }
        let events = try scanAll(connection)
        let problems = auditScan(events, acknowledged: acknowledged)
        #expect(problems.isEmpty, "crash point \(point.rawValue):\(occurrence): \(problems)")
        let verify = try connection.request(["op": "verify"])
        #expect((verify["corrupt"] as? [Any])?.isEmpty == true, "crash point \(point.rawValue):\(occurrence): verify \(verify)")
        // Appends go on after the restart, with the next seq.
        let after = try connection.request(["op": "append", "events": [producerEvent(id: "after-1", k: 1)]])
        let seq = int((after["results"] as? [[String: Any]])?.first?["seq"])
        #expect(seq == events.count + 1)
        let reachedAtStartup = point == .createAfterOpen ? 2 : 1
        #expect(!acknowledged.isEmpty || occurrence <= reachedAtStartup || [.afterWriteBeforeSync, .afterSyncBeforeAck].contains(point))
    }

    @Test(.enabled(if: CrashtestBinary.path != nil, "needs the built `leadtrail-crashtest` driver (swift build)"),
          .timeLimit(.minutes(20)), arguments: CrashPointTests.driverPoints)
    func storeDiesAtTierPoint(_ point: CrashPoint) throws {
        let binary = try #require(CrashtestBinary.path)
        for occurrence in 1...Self.driverRepetitions {
            try runDriver(binary: binary, point: point, occurrence: occurrence)
        }
        Reliability.report("crash point \(point.rawValue) (driver): \(Self.driverRepetitions) round(s) run, checked after each death")
    }

    /// Runs the driver; returns its acknowledgements and exit status.
    func drive(_ binary: String, _ dataDirectory: String, tag: String, crashPoint: String?, rounds: Int = 3) throws -> ([String: Int], Int32, Bool) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = [dataDirectory, tag, String(rounds)]
        var environment = ProcessInfo.processInfo.environment
        environment["LEADTRAIL_CRASHPOINT"] = crashPoint
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.standardError
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        var acknowledged: [String: Int] = [:]
        var done = false
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 3, parts[0] == "A", let seq = Int(parts[2]) { acknowledged[String(parts[1])] = seq }
            if line == "DONE" { done = true }
        }
        return (acknowledged, process.terminationStatus, done)
    }

    func runDriver(binary: String, point: CrashPoint, occurrence: Int) throws {
        let directory = TemporaryDirectory()
        let dataDirectory = directory.path + "/data"
        let (acknowledged, status, finished) = try drive(binary, dataDirectory, tag: "d1", crashPoint: "\(point.rawValue):\(occurrence)")
        #expect(status == 77 && !finished, "crash point \(point.rawValue):\(occurrence) was not reached (exit \(status))")
        try checkStore(dataDirectory, acknowledged: acknowledged, context: "\(point.rawValue):\(occurrence)")

        // The store goes on from where it was: a second full run on the same directory, then the same checks.
        let (more, status2, finished2) = try drive(binary, dataDirectory, tag: "d2", crashPoint: nil, rounds: 1)
        #expect(status2 == 0 && finished2)
        try checkStore(dataDirectory, acknowledged: acknowledged.merging(more) { a, _ in a }, context: "\(point.rawValue):\(occurrence) then a full run")
    }

    /// Opens the directory, restores every cold archive, and checks every acknowledgement across the tiers.
    func checkStore(_ dataDirectory: String, acknowledged: [String: Int], context: String) throws {
        var configuration = StoreConfiguration(directory: dataDirectory)
        configuration.tiers.intervalSeconds = 0
        configuration.segmentMaxBytes = 8192
        let store = try EventStore.open(configuration, logger: quietLogger)
        defer { store.close() }
        #expect(store.stats().corruptSegments.isEmpty, "\(context): \(store.stats().corruptSegments)")
        _ = try store.restore(fromMs: nil, toMs: nil)
        var rows: [(seq: Int, id: String, lead: String?, k: Int?)] = []
        try store.scan(ScanHints()) { record in
            rows.append((Int(record.seq), record.value(of: .eventID) ?? "", nil, nil))
            return true
        }
        let problems = auditEvents(rows, acknowledged: acknowledged)
        #expect(problems.isEmpty, "\(context): \(problems)")
        #expect(rows.count == Int(store.lastSeq), "\(context): \(rows.count) events readable, last seq \(store.lastSeq)")
        let report = store.verify()
        #expect(report.isClean, "\(context): \(report.corrupt)")
        // Every acknowledged event is also found by id (the id index across tiers).
        for (id, seq) in acknowledged.prefix(200) {
            #expect(try store.event(withID: id)?.seq == UInt64(seq), "\(context): \(id)")
        }
    }
}
