import Foundation
import LeadTrailClient
import Testing

/// The built `leadtrail` executable: `$LEADTRAIL_BINARY`, else the one next to the test bundle
/// (`.build/<triple>/debug/leadtrail`), when it has the `serve` command.
enum LeadtrailBinary {
    static let path: String? = {
        var candidates: [String] = []
        if let env = ProcessInfo.processInfo.environment["LEADTRAIL_BINARY"], !env.isEmpty { candidates.append(env) }
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var directory = exe.deletingLastPathComponent()
        // On Linux the test bundle is an executable; on Darwin it is a bundle directory.
        for _ in 0..<4 {
            candidates.append(directory.appendingPathComponent("leadtrail").path)
            directory = directory.deletingLastPathComponent()
        }
        for candidate in candidates where FileManager.default.isExecutableFile(atPath: candidate) {
            if supportsServe(candidate) { return candidate }
        }
        return nil
    }()

    static func supportsServe(_ path: String) -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["serve", "--help"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        do {
            try process.run()
        } catch {
            return false
        }
        let help = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return process.terminationStatus == 0 && help.contains("--data-dir") && help.contains("--socket")
    }
}

/// A `leadtrail serve` child process.
final class ServeProcess {
    let process = Process()
    let socketPath: String

    /// - Parameters:
    ///   - configPath: a `--config` file, if any.
    ///   - environment: variables added to this process's environment (e.g. `LEADTRAIL_CRASHPOINT`).
    init(binary: String, dataDirectory: String, socketPath: String, logPath: String, configPath: String? = nil,
         environment: [String: String] = [:]) throws {
        self.socketPath = socketPath
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["serve", "--data-dir", dataDirectory, "--socket", socketPath] + (configPath.map { ["--config", $0] } ?? [])
        if !environment.isEmpty {
            var merged = ProcessInfo.processInfo.environment
            for (key, value) in environment { merged[key] = value }
            process.environment = merged
        }
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        log.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        try process.run()
    }

    /// Waits until the daemon answers a ping.
    func waitUntilServing(timeoutSeconds: Double = 30) throws {
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while Date() < deadline {
            if let connection = try? LeadTrailConnection(socketPath: socketPath, timeoutSeconds: 5),
               (try? connection.request(["op": "ping"]))?["ok"] as? Bool == true {
                return
            }
            guard process.isRunning else { throw ClientError.unreachable("leadtrail serve exited with \(process.terminationStatus)") }
            usleep(20_000)
        }
        throw ClientError.unreachable("leadtrail serve did not start within \(timeoutSeconds) s")
    }

    func kill(_ signal: Int32) {
        Glibc.kill(process.processIdentifier, signal)
    }

    func wait() -> Int32 {
        process.waitUntilExit()
        return process.terminationStatus
    }
}

/// Acknowledged appends, shared by producer threads.
final class Acknowledged: @unchecked Sendable {
    private let lock = NSLock()
    private var seqByID: [String: Int] = [:]

    func add(_ id: String, _ seq: Int) { lock.withLock { seqByID[id] = seq } }
    var count: Int { lock.withLock { seqByID.count } }
    var all: [String: Int] { lock.withLock { seqByID } }
}

@Suite struct CrashRecoveryTests {
    @Test(.enabled(if: LeadtrailBinary.path != nil,
                   "needs the built `leadtrail` executable with `serve` (swift build; or set LEADTRAIL_BINARY)"),
          // A guard against a hang, not a speed check: beside the long load and soak suites on two cores it took 2.5 minutes.
          .timeLimit(.minutes(10)))
    func killNineDuringAppendsKeepsEveryAcknowledgedEvent() async throws {
        let binary = try #require(LeadtrailBinary.path)
        let directory = TemporaryDirectory()
        let dataDirectory = directory.path + "/data"
        let socketPath = directory.path + "/serve.sock"
        let logPath = directory.path + "/serve.log"

        let first = try ServeProcess(binary: binary, dataDirectory: dataDirectory, socketPath: socketPath, logPath: logPath)
        try first.waitUntilServing()

        let acknowledged = Acknowledged()
        let producers = 3
        let group = DispatchGroup()
        for producer in 0..<producers {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                guard let connection = try? LeadTrailConnection(socketPath: socketPath, timeoutSeconds: 10) else { return }
                for batch in 0..<10_000 {
                    let events: [[String: Any]] = (0..<20).map { i in
                        ["type": "source.submitted", "lead_id": "K\(producer)-\(batch % 13)", "event_id": "k\(producer)-\(batch)-\(i)",
                         "metadata": ["batch": batch, "note": String(repeating: "n", count: 200)]]
                    }
                    guard let response = try? connection.request(["op": "append", "events": events]),
                          let results = response["results"] as? [[String: Any]] else { return }
                    for result in results {
                        if let id = result["event_id"] as? String, let seq = int(result["seq"]) { acknowledged.add(id, seq) }
                    }
                }
            }
        }
        // Let appends flow, then kill the daemon in the middle of them.
        let deadline = Date().addingTimeInterval(30)
        while acknowledged.count < 1_500, Date() < deadline { usleep(5_000) }
        first.kill(SIGKILL)
        #expect(first.wait() == SIGKILL)
        group.wait()
        let acked = acknowledged.all
        #expect(acked.count >= 500)

        // The socket file of the killed daemon is stale: the restart must replace it.
        let second = try ServeProcess(binary: binary, dataDirectory: dataDirectory, socketPath: socketPath, logPath: logPath)
        try second.waitUntilServing()
        let connection = try LeadTrailConnection(socketPath: socketPath, timeoutSeconds: 20)
        // Pipeline the gets: every acknowledged event is there with the same seq.
        var missing = 0
        var wrongSeq = 0
        let ids = Array(acked.keys)
        for chunk in stride(from: 0, to: ids.count, by: 200) {
            let slice = ids[chunk..<min(ids.count, chunk + 200)]
            for id in slice { try connection.send(["op": "get", "event_id": id]) }
            for id in slice {
                let response = try connection.receive()
                guard let event = response["event"] as? [String: Any] else {
                    missing += 1
                    continue
                }
                if int(event["seq"]) != acked[id] { wrongSeq += 1 }
            }
        }
        #expect(missing == 0)
        #expect(wrongSeq == 0)
        // No gaps: the seqs run 1...last_seq.
        let stats = try connection.request(["op": "stats"])
        let lastSeq = try #require(int(stats["last_seq"]))
        #expect(lastSeq >= acked.values.max() ?? 0)
        var seen = 0
        try connection.stream(["op": "scan"]) { frame in
            for event in (frame["events"] as? [[String: Any]]) ?? [] {
                seen += 1
                #expect(int(event["seq"]) == seen)
            }
            return true
        }
        #expect(seen == lastSeq)
        connection.close()

        // A graceful stop exits 0 and removes the socket.
        second.kill(SIGTERM)
        #expect(second.wait() == 0)
        #expect(!FileManager.default.fileExists(atPath: socketPath))
    }
}
