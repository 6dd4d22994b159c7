import Foundation
import LeadTrailCLIKit
import LeadTrailEvents
import Testing

/// The built `leadtrail` executable: `$LEADTRAIL_BINARY`, else the one beside the test
/// bundle (`.build/<triple>/debug/leadtrail`; `scripts/test` builds it first).
enum BuiltCLI {
    static let path: String? = {
        var candidates: [String] = []
        if let env = ProcessInfo.processInfo.environment["LEADTRAIL_BINARY"], !env.isEmpty { candidates.append(env) }
        var directory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<4 {
            candidates.append(directory.appendingPathComponent("leadtrail").path)
            directory = directory.deletingLastPathComponent()
        }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()
}

/// What one run of the CLI did.
struct CLIRun {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs the CLI against a daemon of its own, in a temporary directory.
final class CLIHarness {
    let binary: String
    let root: String
    let socket: String
    let dataDirectory: String
    private var daemon: Process?

    init(binary: String) throws {
        self.binary = binary
        root = "/tmp/ltcli-test-" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        socket = root + "/lt.sock"
        dataDirectory = root + "/data"
    }

    deinit {
        if let daemon, daemon.isRunning {
            daemon.terminate()
            daemon.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: root)
    }

    /// Runs `leadtrail ARGS` with `LEADTRAIL_SOCKET` set to this harness's socket.
    func run(_ arguments: [String], stdin: String? = nil, environment extra: [String: String] = [:]) throws -> CLIRun {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["LEADTRAIL_SOCKET"] = socket
        for (key, value) in extra { environment[key] = value }
        process.environment = environment
        let out = root + "/out.\(UInt32.random(in: 0...UInt32.max))"
        let err = out + ".err"
        #expect(FileManager.default.createFile(atPath: out, contents: nil))
        #expect(FileManager.default.createFile(atPath: err, contents: nil))
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
        let input = Pipe()
        process.standardInput = input
        try process.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        process.waitUntilExit()
        let stdout = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        let stderr = (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
        return CLIRun(status: process.terminationStatus, stdout: stdout, stderr: stderr)
    }

    /// Starts `leadtrail serve` and waits until `leadtrail ping` answers.
    func startDaemon() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["serve", "--data-dir", dataDirectory, "--socket", socket]
        let log = root + "/serve.log"
        #expect(FileManager.default.createFile(atPath: log, contents: nil))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        daemon = process
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if try run(["ping", "--quiet"]).status == 0 { return }
            guard process.isRunning else { break }
            usleep(50_000)
        }
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        throw CLIFailure.unreachable("leadtrail serve did not answer: \(text)")
    }

    /// SIGTERM, and the daemon's exit status.
    func stopDaemon() -> Int32? {
        guard let daemon else { return nil }
        daemon.terminate()
        daemon.waitUntilExit()
        self.daemon = nil
        return daemon.terminationStatus
    }
}

@Suite("leadtrail CLI against a real daemon", .serialized)
struct CLIEndToEndTests {
    static let events: [[UInt8]] = Array(EventGenerator(GeneratorOptions(
        leads: 40, seed: 11, startMs: Timestamp.parse("2026-11-23T09:00:00Z") ?? 0)))

    static var ndjson: String {
        events.map { String(decoding: $0, as: UTF8.self) }.joined(separator: "\n") + "\n"
    }

    static func object(_ line: [UInt8]) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(line))) as? [String: Any] ?? [:]
    }

    @Test("usage errors exit 2 and an unreachable daemon exits 3, without a daemon")
    func exitCodesWithoutDaemon() throws {
        let binary = try #require(BuiltCLI.path, "build first: swift build")
        let cli = try CLIHarness(binary: binary)
        #expect(try cli.run(["--help"]).status == 0)
        #expect(try cli.run(["no-such-command"]).status == 2)
        #expect(try cli.run(["scan", "--from", "yesterday"]).status == 2)
        #expect(try cli.run(["append", "--batch-size", "0"]).status == 2)
        let unreachable = try cli.run(["stats"])
        #expect(unreachable.status == 3)
        #expect(unreachable.stderr.hasPrefix("leadtrail: cannot reach the daemon"))
        #expect(unreachable.stderr.split(separator: "\n").count == 1)
        #expect(try cli.run(["ping", "--socket", "/tmp/ltcli-none/x.sock"]).status == 3)
        let generated = try cli.run(["generate", "--leads", "3", "--seed", "5"])
        #expect(generated.status == 0)
        #expect(generated.stdout == (try cli.run(["generate", "--leads", "3", "--seed", "5"])).stdout)
    }

    @Test("append, read back, refuse, rotate, verify and stop", .timeLimit(.minutes(3)))
    func fullSession() throws {
        let binary = try #require(BuiltCLI.path, "build first: swift build")
        let cli = try CLIHarness(binary: binary)
        try cli.startDaemon()

        // append from stdin, then again: every event is a duplicate the second time.
        let first = try cli.run(["append", "--batch-size", "100"], stdin: Self.ndjson)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stderr.contains("appended \(ProgressBar.grouped(Self.events.count)) events, 0 duplicates, seq 1-\(Self.events.count)"))
        let file = cli.root + "/events.ndjson"
        try Self.ndjson.write(toFile: file, atomically: true, encoding: .utf8)
        let second = try cli.run(["append", file])
        #expect(second.status == 0)
        #expect(second.stderr.contains("appended 0 events, \(ProgressBar.grouped(Self.events.count)) duplicates"))

        // get returns the stored bytes with their seq.
        let firstEvent = Self.object(Self.events[0])
        let eventID = try #require(firstEvent["event_id"] as? String)
        let got = try cli.run(["get", eventID])
        #expect(got.status == 0)
        #expect(got.stdout.hasPrefix(#"{"seq":1,"#) || got.stdout.contains(#""seq":1"#))
        #expect(got.stdout.contains(eventID))

        // timeline: the readable form starts with the lead and its source.
        let leadID = try #require(firstEvent["lead_id"] as? String)
        let leadEvents = Self.events.map(Self.object).filter { $0["lead_id"] as? String == leadID }
        let timeline = try cli.run(["timeline", leadID])
        #expect(timeline.status == 0)
        let lines = timeline.stdout.split(separator: "\n")
        #expect(lines.count >= leadEvents.count)
        #expect(lines.first?.contains("\(leadID)  src: ") == true)
        #expect(lines.first?.hasPrefix("09:00:00.000  source.submitted") == true)
        let json = try cli.run(["timeline", leadID, "--json"])
        let array = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]])
        #expect(array.count == leadEvents.count)

        // scan: filters and formats.
        let byLead = try cli.run(["scan", "--lead", leadID])
        #expect(byLead.stdout.split(separator: "\n").count == leadEvents.count)
        let delivered = Self.events.map(Self.object).filter { $0["type"] as? String == "recipient.delivered" }.count
        let scanned = try cli.run(["scan", "--type", "recipient.*", "--outcome", "accepted"])
        #expect(scanned.stdout.split(separator: "\n").count == delivered)
        let limited = try cli.run(["scan", "--after-seq", "10", "--limit", "5", "--format", "table"])
        let rows = limited.stdout.split(separator: "\n")
        #expect(rows.count == 6)
        #expect(rows.first?.hasPrefix("SEQ") == true)
        #expect(rows.dropFirst().first?.hasPrefix("11 ") == true)

        // stats.
        let stats = try cli.run(["stats", "--json"])
        let answer = try #require(try JSONSerialization.jsonObject(with: Data(stats.stdout.utf8)) as? [String: Any])
        #expect(JSONAccess.int(answer["events"]) == Int64(Self.events.count))
        #expect(try cli.run(["stats"]).stdout.contains("events      \(ProgressBar.grouped(Self.events.count))"))

        // Errors from the daemon exit 1 with one line naming the code.
        let missing = try cli.run(["get", "evt_nope"])
        #expect(missing.status == 1)
        #expect(missing.stderr.hasPrefix("leadtrail: not_found:"))
        let bad = try cli.run(["append"], stdin: "{\"type\":\"a.b\",\"lead_id\":\"x1\"}\n\n{\"type\":\"Bad\",\"lead_id\":\"x\"}\n")
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("leadtrail: line 3: invalid_event"))
        let broken = try cli.run(["append"], stdin: "{\"type\":\"a.b\",\"lead_id\":\"kept\"}\n{\"type\":\n")
        #expect(broken.status == 1)
        #expect(broken.stderr.contains("line 2: invalid JSON"))
        #expect(broken.stderr.contains("appended 1 event,"), "the line before the broken one is stored")

        // rotate seals the active segment; verify through the daemon finds it clean.
        let rotated = try cli.run(["rotate"])
        #expect(rotated.status == 0)
        #expect(rotated.stdout.hasPrefix("sealed segment 1: seq 1-\(Self.events.count + 1)"))
        let verified = try cli.run(["verify"])
        #expect(verified.status == 0, "\(verified.stdout)\(verified.stderr)")
        #expect(verified.stdout.contains("every checksum matches"))

        // SIGTERM stops the daemon cleanly; offline verify then sees the same store.
        #expect(cli.stopDaemon() == 0)
        #expect(try cli.run(["ping"]).status == 3)
        let offline = try cli.run(["verify", "--data-dir", cli.dataDirectory])
        #expect(offline.status == 0, "\(offline.stdout)\(offline.stderr)")

        // A type index file cut short is a warning, not damage: exit 0, the file named.
        let typeIndex = cli.dataDirectory + "/hot/0000000000000001.types"
        let typeIndexBytes = try Data(contentsOf: URL(fileURLWithPath: typeIndex))
        try typeIndexBytes.prefix(typeIndexBytes.count - 1).write(to: URL(fileURLWithPath: typeIndex))
        let warned = try cli.run(["verify", "--data-dir", cli.dataDirectory])
        #expect(warned.status == 0, "\(warned.stdout)\(warned.stderr)")
        #expect(warned.stdout.contains("warning: hot/0000000000000001.types: does not check out"))
        #expect(warned.stdout.contains("every checksum matches"))

        // One flipped byte in the sealed segment: exit 1, naming the file and position.
        let segment = cli.dataDirectory + "/hot/0000000000000001.seg"
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: segment))
        try handle.seek(toOffset: 4000)
        let original = try #require(try handle.read(upToCount: 1)?.first)
        try handle.seek(toOffset: 4000)
        try handle.write(contentsOf: [original ^ 0x20])
        try handle.close()
        let damaged = try cli.run(["verify", "--data-dir", cli.dataDirectory])
        #expect(damaged.status == 1)
        #expect(damaged.stdout.contains("DAMAGED 0000000000000001.seg at byte "))
    }
}
