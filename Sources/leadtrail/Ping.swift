import ArgumentParser
import LeadTrailCLIKit

/// `leadtrail ping`: whether the daemon answers (any role may ping).
struct Ping: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check that the daemon answers: exit 0 if it does, 3 if it cannot be reached.")

    @OptionGroup var connection: ConnectionOptions

    @Flag(name: [.short, .long], help: "Print nothing; only the exit code tells.")
    var quiet = false

    func run() throws {
        let session = try connection.connect()
        defer { session.close() }
        _ = try session.call(["op": "ping"])
        if !quiet { Output.standard.line("the daemon at \(session.socketPath) answers") }
    }
}
