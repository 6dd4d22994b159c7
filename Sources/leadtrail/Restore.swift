import ArgumentParser
import Foundation
import LeadTrailCLIKit
import LeadTrailEvents

/// `leadtrail restore`: brings archived (cold) events back into query reach, or releases them.
struct Restore: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Bring archived (cold) events back into query reach, or release them again (admin).",
        discussion: """
            With --from and --to, every archived segment holding events of that time range is restored, \
            byte-identical, one UTC day at a time (with a progress bar on a terminal). With --lead, only \
            the segments that may hold that lead. Restored data stays queryable until --release or the \
            daemon's restore expiry; restoring twice never duplicates an event.
            """)

    @OptionGroup var connection: ConnectionOptions

    @Option(name: .long, help: ArgumentHelp("Events at or after this time (RFC 3339).", valueName: "timestamp"))
    var from: String?

    @Option(name: .long, help: ArgumentHelp("Events before this time (RFC 3339).", valueName: "timestamp"))
    var to: String?

    @Option(name: .customLong("lead"), help: ArgumentHelp("Only what this lead_id needs.", valueName: "id"))
    var leadID: String?

    @Flag(name: .long, help: "Release restored data (all of it, or what overlaps --from/--to).")
    var release = false

    @Flag(name: .long, help: "Print the daemon's answers as JSON.")
    var json = false

    func validate() throws {
        for (name, value) in [("--from", from), ("--to", to)] {
            if let value, Timestamp.parse(value) == nil {
                throw ValidationError("\(name) must be an RFC 3339 time, like 2024-01-15T14:30:45.234Z (got '\(value)')")
            }
        }
        if !release && leadID == nil && (from == nil || to == nil) {
            throw ValidationError("restore needs --from and --to, or --lead (or --release)")
        }
        if let f = from.flatMap(Timestamp.parse), let t = to.flatMap(Timestamp.parse), f >= t {
            throw ValidationError("--from must be before --to")
        }
    }

    func run() throws {
        let session = try connection.connect()
        defer { session.close() }
        if release || leadID != nil {
            var request: [String: Any] = ["op": "restore"]
            if let from { request["from"] = from }
            if let to { request["to"] = to }
            if let leadID { request["lead_id"] = leadID }
            if release { request["release"] = true }
            try session.callAndPrint(request, json: json) { [Self.describe($0, release: release)] }
            return
        }
        // A time range: one request per UTC day, so progress can be shown and a long restore is resumable.
        guard let start = from.flatMap(Timestamp.parse), let end = to.flatMap(Timestamp.parse) else { return }
        let days = Self.dayRanges(from: start, to: end)
        let showProgress = standardErrorIsTerminal && !json && days.count > 1
        var restored: Int64 = 0, already: Int64 = 0, segments = 0
        let began = Date()
        for (i, day) in days.enumerated() {
            let request: [String: Any] = ["op": "restore", "from": Timestamp.format(day.lowerBound), "to": Timestamp.format(day.upperBound)]
            let (body, _) = try session.callRaw(request)
            if json { Output.standard.line(bytes: body) }
            let answer = try DaemonSession.decode(body)
            restored += JSONAccess.int(answer["restored"]) ?? 0
            already += JSONAccess.int(answer["already_restored"]) ?? 0
            segments += (answer["segments"] as? [Any])?.count ?? 0
            if showProgress {
                let bar = ProgressBar().line(doneBytes: i + 1, totalBytes: days.count, events: Int(restored), seconds: Date().timeIntervalSince(began))
                FileHandle.standardError.write(Data(("\r" + bar).utf8))
            }
        }
        if showProgress { FileHandle.standardError.write(Data("\n".utf8)) }
        if !json {
            Output.standard.line("restored \(ProgressBar.grouped(Int(restored))) events from \(segments) archived segment\(segments == 1 ? "" : "s")"
                + (already > 0 ? " (\(ProgressBar.grouped(Int(already))) were already restored)" : ""))
        }
        Output.standard.flush()
    }

    /// [from, to) cut at UTC midnights.
    static func dayRanges(from: Int64, to: Int64) -> [Range<Int64>] {
        let day: Int64 = 86_400_000
        var ranges: [Range<Int64>] = []
        var start = from
        while start < to {
            let midnight = (start / day + 1) * day
            let end = min(to, midnight)
            ranges.append(start..<end)
            start = end
        }
        return ranges
    }

    static func describe(_ answer: [String: Any], release: Bool) -> String {
        if release {
            let n = Int(JSONAccess.int(answer["released_segments"]) ?? 0)
            return "released \(n) restored segment\(n == 1 ? "" : "s"); the archives still hold them"
        }
        let restored = Int(JSONAccess.int(answer["restored"]) ?? 0)
        let already = Int(JSONAccess.int(answer["already_restored"]) ?? 0)
        let segments = (answer["segments"] as? [Any])?.count ?? 0
        return "restored \(ProgressBar.grouped(restored)) events from \(segments) archived segment\(segments == 1 ? "" : "s")"
            + (already > 0 ? " (\(ProgressBar.grouped(already)) were already restored)" : "")
    }
}
