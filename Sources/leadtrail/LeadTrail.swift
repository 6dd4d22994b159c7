import ArgumentParser
import Foundation
import LeadTrailCLIKit

/// The `leadtrail` command: the daemon (`serve`) and the operator's client commands.
///
/// Exit codes follow PROTOCOL.md section 8: 0 success, 1 the operation
/// failed (the daemon answered an error, or `verify` found damage), 2 usage
/// error, 3 the daemon could not be reached. swift-argument-parser's own
/// codes (64 for usage errors) are mapped in ``main()``.
@main
struct LeadTrail: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "leadtrail",
        abstract: "An immutable, checksummed audit log of sales-lead events.",
        discussion: """
            Client commands talk to the daemon over its Unix socket: --socket PATH, \
            else $LEADTRAIL_SOCKET, else the default path.
            Exit codes: 0 success, 1 the operation failed, 2 usage error, 3 daemon unreachable.
            """,
        version: "0.1.0",
        subcommands: [
            Serve.self, Ping.self, Append.self, Get.self, Timeline.self, Scan.self, Stats.self, Rotate.self, Tier.self,
            Restore.self, Verify.self,
            Generate.self,
        ])

    static func main() async {
        do {
            var command = try await asyncParseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            Output.standard.flush()
        } catch {
            Output.standard.flush()
            Foundation.exit(report(error))
        }
    }

    /// Prints what went wrong and returns the exit code (contract section 8).
    static func report(_ error: Error) -> Int32 {
        if let failure = error as? CLIFailure {
            FileHandle.standardError.write(Data("leadtrail: \(failure.message)\n".utf8))
            return failure.status.rawValue
        }
        if let exit = error as? ExitCode {
            return ExitStatus.fromArgumentParser(exit.rawValue)
        }
        // Errors of the parser itself (usage, --help, --version) and anything unexpected.
        let code = exitCode(for: error).rawValue
        let message = fullMessage(for: error)
        if code == 0 {
            if !message.isEmpty { print(message) }
        } else if !message.isEmpty {
            FileHandle.standardError.write(Data((message.hasSuffix("\n") ? message : message + "\n").utf8))
        }
        return ExitStatus.fromArgumentParser(code)
    }
}
