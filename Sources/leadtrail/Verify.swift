import ArgumentParser
import Foundation
import LeadTrailCLIKit
import LeadTrailStorage

/// `leadtrail verify`: checks every checksum, offline or through the daemon.
struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check every checksum of the store; exit 1 naming each damaged file and position.",
        discussion: """
            With --data-dir DIR the files are read directly (the daemon need not run; \
            run it on a stopped store or a copy). Without it, the daemon checks its own store (admin). \
            Findings that are not damage (a torn tail the next start cuts off, a type index file that is \
            built again) are printed as warnings and leave the exit status 0.
            """)

    @OptionGroup var connection: ConnectionOptions

    @Option(name: .long, help: ArgumentHelp("Verify this data directory offline instead of asking the daemon.", valueName: "dir"))
    var dataDir: String?

    @Flag(name: .long, help: "Print the result as JSON.")
    var json = false

    func run() throws {
        if let dataDir {
            try offline(dataDir)
        } else {
            try online()
        }
    }

    func offline(_ directory: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CLIFailure.failed("no data directory at \(directory)")
        }
        let report: VerifyReport
        do {
            report = try EventStore.verify(directory: directory)
        } catch {
            throw CLIFailure.failed("cannot verify \(directory): \(error)")
        }
        let damage = report.corrupt.map { Damage(file: $0.file, offset: $0.offset.map(Int64.init), reason: $0.reason) }
        try finish(segments: report.segments, records: Int64(report.records), damage: damage, warnings: report.warnings, place: directory)
    }

    func online() throws {
        let session = try connection.connect()
        defer { session.close() }
        let answer = try session.call(["op": "verify"])
        let segments = JSONAccess.int(answer["segments"]).map(Int.init) ?? 0
        let records = JSONAccess.int(answer["records"] ?? answer["events"])
        let damage = (answer["corrupt"] as? [Any] ?? []).map(Damage.init(decoded:))
        let warnings = (answer["warnings"] as? [Any] ?? []).compactMap { JSONAccess.text($0) }
        try finish(
            segments: segments, records: records, damage: damage, warnings: warnings, place: "the daemon's store (\(session.socketPath))")
    }

    struct Damage {
        var file: String
        var offset: Int64?
        var reason: String

        init(file: String, offset: Int64?, reason: String) {
            self.file = file
            self.offset = offset
            self.reason = reason
        }

        /// One entry of the daemon's `corrupt` list: an object with `file`, `offset`, `reason`, or a plain string.
        init(decoded: Any) {
            if let object = decoded as? [String: Any] {
                file = JSONAccess.text(object["file"] ?? object["segment"]) ?? "?"
                offset = JSONAccess.int(object["offset"] ?? object["position"])
                reason = JSONAccess.text(object["reason"] ?? object["message"]) ?? "damaged"
            } else {
                file = JSONAccess.text(decoded) ?? "?"
                offset = nil
                reason = "damaged"
            }
        }

        var line: String {
            "DAMAGED \(file)\(offset.map { " at byte \($0)" } ?? ""): \(reason)"
        }
    }

    func finish(segments: Int, records: Int64?, damage: [Damage], warnings: [String], place: String) throws {
        if json {
            var result: [String: Any] = [
                "segments": segments, "clean": damage.isEmpty,
                "corrupt": damage.map { d -> [String: Any] in
                    var entry: [String: Any] = ["file": d.file, "reason": d.reason]
                    if let offset = d.offset { entry["offset"] = offset }
                    return entry
                },
                "warnings": warnings,
            ]
            if let records { result["records"] = records }
            Output.standard.line(JSONAccess.serialize(result))
        } else {
            for d in damage { Output.standard.line(d.line) }
            for warning in warnings { Output.standard.line("warning: " + warning) }
            let counted = "\(ProgressBar.grouped(segments)) segment\(segments == 1 ? "" : "s")"
                + (records.map { ", \(ProgressBar.grouped(Int($0))) records" } ?? "")
            Output.standard.line(damage.isEmpty
                ? "verified \(place): \(counted), every checksum matches"
                : "verified \(place): \(counted), \(damage.count) damaged")
        }
        if !damage.isEmpty { throw ExitCode(ExitStatus.failure.rawValue) }
    }
}
