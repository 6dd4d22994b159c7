import ArgumentParser
import Foundation
import LeadTrailCLIKit

/// `leadtrail tier`: applies the retention policy now.
struct Tier: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply the tier policy now: move old sealed segments to warm and cold (admin).",
        discussion: """
            A sealed segment moves to warm (LZ4 blocks, still queryable) when its newest event is older \
            than hot_days, and to a cold zlib archive when older than warm_days. Archives older than \
            retain_days are deleted. The daemon also does this in the background on a schedule.
            """)

    @OptionGroup var connection: ConnectionOptions

    @Flag(name: .long, help: "Print the daemon's answer as JSON.")
    var json = false

    func run() throws {
        let session = try connection.connect()
        defer { session.close() }
        try session.callAndPrint(["op": "tier"], json: json, describe: Self.describe)
    }

    /// One line per move, rewrite, deletion, expiry and skip; or that nothing was due.
    static func describe(_ answer: [String: Any]) -> [String] {
        var lines: [String] = []
        for move in answer["moved"] as? [[String: Any]] ?? [] {
            let segment = JSONAccess.text(move["segment"]) ?? "?"
            let from = JSONAccess.text(move["from"]) ?? "?", to = JSONAccess.text(move["to"]) ?? "?"
            let events = Int(JSONAccess.int(move["events"]) ?? 0)
            let before = Int(JSONAccess.int(move["bytes_before"]) ?? 0), after = Int(JSONAccess.int(move["bytes_after"]) ?? 0)
            let seqs = "seq \(JSONAccess.text(move["first_seq"]) ?? "?")-\(JSONAccess.text(move["last_seq"]) ?? "?")"
            lines.append("segment \(segment) \(from) -> \(to): \(seqs), \(ProgressBar.grouped(events)) events, \(ProgressBar.grouped(before)) -> \(ProgressBar.grouped(after)) bytes")
        }
        for rewritten in answer["rewritten"] as? [[String: Any]] ?? [] {
            let before = Int(JSONAccess.int(rewritten["bytes_before"]) ?? 0), after = Int(JSONAccess.int(rewritten["bytes_after"]) ?? 0)
            lines.append(
                "segment \(JSONAccess.text(rewritten["segment"]) ?? "?") warm: rewritten in the current format (lead index on disk), "
                    + "\(ProgressBar.grouped(before)) -> \(ProgressBar.grouped(after)) bytes")
        }
        for deleted in answer["deleted"] as? [String] ?? [] { lines.append("deleted \(deleted)") }
        for expired in answer["expired"] as? [Any] ?? [] { lines.append("released expired restore of segment \(JSONAccess.text(expired) ?? "?")") }
        for skipped in answer["skipped"] as? [String] ?? [] { lines.append("skipped \(skipped)") }
        return lines.isEmpty ? ["nothing to move: no sealed segment is past its tier's age"] : lines
    }
}
