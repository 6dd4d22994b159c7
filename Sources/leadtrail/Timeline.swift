import ArgumentParser
import Foundation
import LeadTrailCLIKit

/// `leadtrail timeline LEAD_ID`: a lead's events, as a readable timeline or JSON.
struct Timeline: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show every event of one lead in time order.",
        discussion: """
            Times are UTC. Each step shows the time since the previous one; gaps over an hour \
            read "... 3 hours later ...". With --json, prints the events as a JSON array, exactly as stored.
            """)

    @OptionGroup var connection: ConnectionOptions

    @Argument(help: "The lead_id.")
    var leadID: String

    @Flag(name: .long, help: "Print the events as a JSON array instead of a timeline.")
    var json = false

    @Option(name: .long, help: ArgumentHelp("Why you read unmasked data (compliance role).", valueName: "text"))
    var purpose: String?

    @Option(name: .long, help: ArgumentHelp("Show gaps longer than this many minutes on a line of their own.", valueName: "minutes"))
    var gapMinutes: Int = 60

    func validate() throws {
        if leadID.isEmpty { throw ValidationError("LEAD_ID must not be empty") }
        if gapMinutes < 1 { throw ValidationError("--gap-minutes must be at least 1") }
    }

    func run() throws {
        let session = try connection.connect()
        defer { session.close() }
        var request: [String: Any] = ["op": "timeline", "lead_id": leadID]
        if let purpose { request["purpose"] = purpose }
        let (body, response) = try session.callRaw(request)
        let answer = try DaemonSession.decode(body)

        if json {
            var out: [UInt8] = [UInt8(ascii: "[")]
            for (i, event) in response.events.enumerated() {
                if i > 0 { out.append(contentsOf: Array(",\n".utf8)) }
                out.append(contentsOf: event)
            }
            out.append(UInt8(ascii: "]"))
            Output.standard.line(bytes: out)
        } else {
            let events = answer["events"] as? [[String: Any]] ?? []
            if events.isEmpty {
                printError("no events for lead \(leadID)")
            }
            let renderer = TimelineRenderer(gapThresholdMs: Int64(gapMinutes) * 60_000)
            for line in renderer.render(events) { Output.standard.line(line) }
        }
        if (answer["truncated"] as? Bool) == true {
            printError("note: only the first \(response.events.count) events are shown; `leadtrail scan --lead \(leadID)` reads them all")
        }
        if let before = answer["cold_only_before"] as? String {
            printError("note: events before \(before) are archived (cold) and not shown; restore them to see them")
        }
    }
}
