import ArgumentParser
import Foundation
import LeadTrailCLIKit

/// `leadtrail get EVENT_ID`: prints one event as stored.
struct Get: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print one event by its event_id, exactly as stored (with its seq).")

    @OptionGroup var connection: ConnectionOptions

    @Argument(help: "The event's event_id.")
    var eventID: String

    @Option(name: .long, help: ArgumentHelp("Why you read unmasked data (compliance role).", valueName: "text"))
    var purpose: String?

    @Flag(name: .long, help: "Indent the JSON.")
    var pretty = false

    func run() throws {
        let session = try connection.connect()
        defer { session.close() }
        var request: [String: Any] = ["op": "get", "event_id": eventID]
        if let purpose { request["purpose"] = purpose }
        let (_, response) = try session.callRaw(request)
        guard let event = response.event else {
            throw CLIFailure.failed("the daemon's answer has no event")
        }
        if pretty, let object = try? JSONSerialization.jsonObject(with: Data(event)) {
            Output.standard.line(JSONAccess.serialize(object, pretty: true))
        } else {
            Output.standard.line(bytes: event)
        }
    }
}
