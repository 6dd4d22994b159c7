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
        let (body, _) = try session.callRaw(["op": "rotate"])
        if json {
            Output.standard.line(bytes: body)
            return
        }
        let answer = try DaemonSession.decode(body)
        Output.standard.line(Self.describe(answer))
    }

    /// `sealed segment 3: seq 1001-2000 (1,000 events)`, from whichever fields the daemon sends.
    static func describe(_ answer: [String: Any]) -> String {
        let sealed = answer["sealed"] as? [String: Any] ?? answer
        let first = JSONAccess.int(sealed["first_seq"])
        let last = JSONAccess.int(sealed["last_seq"])
        let segment = JSONAccess.text(sealed["segment"] ?? sealed["segment_id"])
        let events = JSONAccess.int(sealed["events"])
        if first == nil, last == nil, segment == nil {
            if answer["sealed"] is NSNull || events == 0 {
                return "nothing to seal: the active segment is empty"
            }
            let rest = answer.filter { $0.key != "ok" && $0.key != "id" }
            return rest.isEmpty ? "rotated" : "rotated: " + JSONAccess.serialize(rest)
        }
        var text = "sealed segment"
        if let segment { text += " \(segment)" }
        if let first, let last { text += ": seq \(first)-\(last)" }
        if let events { text += " (\(ProgressBar.grouped(Int(events))) events)" }
        return text
    }
}
