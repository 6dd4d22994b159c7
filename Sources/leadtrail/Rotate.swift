import ArgumentParser
import Foundation
import LeadTrailCLIKit

/// `leadtrail rotate`: seals the active segment now.
struct Rotate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Seal the active segment now and start a new one (admin).")

    @OptionGroup var connection: ConnectionOptions

    @Flag(name: .long, help: "Print the daemon's answer as JSON.")
    var json = false

    func run() throws {
        let session = try connection.connect()
        defer { session.close() }
        try session.callAndPrint(["op": "rotate"], json: json) { [Self.describe($0)] }
    }

    /// `sealed segment 3: seq 1001-2000 (1,000 events)`, or that there was nothing to seal.
    static func describe(_ answer: [String: Any]) -> String {
        guard (answer["rotated"] as? Bool) == true else {
            return "nothing to seal: the active segment is empty"
        }
        var text = "sealed segment"
        if let segment = JSONAccess.text(answer["segment"]) { text += " \(segment)" }
        if let first = JSONAccess.int(answer["first_seq"]), let last = JSONAccess.int(answer["last_seq"]) {
            text += ": seq \(first)-\(last)"
        }
        if let events = JSONAccess.int(answer["events"]) {
            text += " (\(ProgressBar.grouped(Int(events))) event\(events == 1 ? "" : "s"))"
        }
        return text + "; a new active segment takes the next appends"
    }
}
