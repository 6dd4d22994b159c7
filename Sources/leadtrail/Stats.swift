import ArgumentParser
import LeadTrailCLIKit

/// `leadtrail stats`: counts, tiers and durability of the store.
struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the store's counts, tiers and durability mode.")

    @OptionGroup var connection: ConnectionOptions

    @Flag(name: .long, help: "Print the daemon's answer as JSON.")
    var json = false

    @Option(name: .long, help: ArgumentHelp("Why you read unmasked data (compliance role).", valueName: "text"))
    var purpose: String?

    func run() throws {
        let session = try connection.connect()
        defer { session.close() }
        var request: [String: Any] = ["op": "stats"]
        if let purpose { request["purpose"] = purpose }
        try session.callAndPrint(request, json: json, describe: Formatting.stats)
    }
}
