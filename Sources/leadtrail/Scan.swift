import ArgumentParser
import Foundation
import LeadTrailCLIKit
import LeadTrailEvents

/// `leadtrail scan`: events matching filters, in seq order.
struct Scan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the events that match every given filter, in seq order.",
        discussion: """
            Filters combine with AND. --from is inclusive, --to exclusive (RFC 3339). \
            --type and --outcome repeat; a type ending in .* matches a prefix (recipient.*). \
            NDJSON output prints events exactly as stored; the last seq examined is printed \
            on stderr when it is a terminal, for resuming with --after-seq.
            """)

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case ndjson, table
    }

    @OptionGroup var connection: ConnectionOptions

    @Option(name: .long, help: ArgumentHelp("Events at or after this time (RFC 3339).", valueName: "timestamp"))
    var from: String?

    @Option(name: .long, help: ArgumentHelp("Events before this time (RFC 3339).", valueName: "timestamp"))
    var to: String?

    @Option(name: .customLong("type"), help: ArgumentHelp("An event type, or a prefix like recipient.* (repeatable).", valueName: "type"))
    var types: [String] = []

    @Option(name: .customLong("outcome"), help: ArgumentHelp("An outcome (repeatable).", valueName: "outcome"))
    var outcomes: [String] = []

    @Option(name: .customLong("lead"), help: ArgumentHelp("Only this lead_id.", valueName: "id"))
    var leadID: String?

    @Option(name: .customLong("flow"), help: ArgumentHelp("Only this flow_id.", valueName: "id"))
    var flowID: String?

    @Option(name: .customLong("entity"), help: ArgumentHelp("Only this entity_id.", valueName: "id"))
    var entityID: String?

    @Option(name: .customLong("step"), help: ArgumentHelp("Only this step_id.", valueName: "id"))
    var stepID: String?

    @Option(name: .long, help: ArgumentHelp("Only events with a seq greater than this (resume point).", valueName: "seq"))
    var afterSeq: Int64?

    @Option(name: .long, help: ArgumentHelp("At most this many events.", valueName: "n"))
    var limit: Int?

    @Option(name: .long, help: "ndjson (events as stored) or table.")
    var format: Format = .ndjson

    @Option(name: .long, help: ArgumentHelp("Why you read unmasked data (compliance role).", valueName: "text"))
    var purpose: String?

    func validate() throws {
        for (name, value) in [("--from", from), ("--to", to)] {
            if let value, Timestamp.parse(value) == nil {
                throw ValidationError("\(name) must be an RFC 3339 time, like 2024-01-15T14:30:45.234Z (got '\(value)')")
            }
        }
        for type in types {
            let name = type.hasSuffix(".*") ? String(type.dropLast(2)) : type
            let valid = type.hasSuffix(".*")
                ? !name.isEmpty && name.allSatisfy { $0.isLowercase || $0.isNumber || $0 == "_" || $0 == "." }
                : EventPreparer.isValidType(Array(type.utf8))
            if !valid { throw ValidationError("--type '\(type)' is not an event type or a prefix like recipient.*") }
        }
        if let afterSeq, afterSeq < 0 { throw ValidationError("--after-seq must be 0 or more") }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
    }

    /// The scan request of PROTOCOL.md section 3.
    var request: [String: Any] {
        var request: [String: Any] = ["op": "scan"]
        if let from { request["from"] = from }
        if let to { request["to"] = to }
        if !types.isEmpty { request["types"] = types }
        if !outcomes.isEmpty { request["outcomes"] = outcomes }
        if let leadID { request["lead_id"] = leadID }
        if let flowID { request["flow_id"] = flowID }
        if let entityID { request["entity_id"] = entityID }
        if let stepID { request["step_id"] = stepID }
        if let afterSeq { request["after_seq"] = afterSeq }
        if let limit { request["limit"] = limit }
        if let purpose { request["purpose"] = purpose }
        return request
    }

    func run() throws {
        let session = try connection.connect()
        defer { session.close() }
        let output = Output.standard
        if format == .table { output.line(Formatting.scanHeader()) }
        var count = 0
        var lastSeq: Int64?
        var (_, response) = try session.callRaw(request)
        while true {
            for event in response.events {
                switch format {
                case .ndjson:
                    output.line(bytes: event)
                case .table:
                    let object = (try? JSONSerialization.jsonObject(with: Data(event))) as? [String: Any] ?? [:]
                    output.line(Formatting.scanRow(object))
                }
            }
            count += response.events.count
            if response.done {
                lastSeq = response.lastSeq
                break
            }
            response = try session.receiveRaw().response
        }
        output.flush()
        if standardErrorIsTerminal || format == .table {
            printError("\(ProgressBar.grouped(count)) event\(count == 1 ? "" : "s")\(lastSeq.map { ", last seq examined \($0)" } ?? "")")
        }
    }
}
