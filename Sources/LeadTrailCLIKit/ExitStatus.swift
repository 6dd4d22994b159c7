/// The CLI's exit codes (PROTOCOL.md section 8).
public enum ExitStatus: Int32, Sendable, CaseIterable {
    /// The command did what was asked.
    case success = 0
    /// The operation failed: the daemon answered an error, the input was refused, or `verify` found damage.
    case failure = 1
    /// The command line was wrong (unknown option, missing argument, bad value).
    case usage = 2
    /// The daemon could not be reached (no socket, nobody listening, connection refused or timed out).
    case unreachable = 3

    /// The code swift-argument-parser uses for usage errors (`EX_USAGE`).
    public static let argumentParserUsageCode: Int32 = 64

    /// Maps an exit code chosen by swift-argument-parser to the contract's codes.
    ///
    /// The parser answers 0 for `--help` and `--version`, 64 for usage errors,
    /// and passes on the code of an `ExitCode` thrown by a command.
    public static func fromArgumentParser(_ code: Int32) -> Int32 {
        switch code {
        case 0: return ExitStatus.success.rawValue
        case argumentParserUsageCode: return ExitStatus.usage.rawValue
        case 1, 2, 3: return code
        default: return ExitStatus.failure.rawValue
        }
    }
}

/// A failure the CLI reports with one line on stderr and an exit code.
public struct CLIFailure: Error, Sendable, CustomStringConvertible {
    /// The exit code to leave with.
    public var status: ExitStatus
    /// The one-line message (without the `leadtrail: ` prefix).
    public var message: String

    public init(_ status: ExitStatus, _ message: String) {
        self.status = status
        self.message = message
    }

    /// A usage error (exit 2).
    public static func usage(_ message: String) -> CLIFailure { CLIFailure(.usage, message) }
    /// A failed operation (exit 1).
    public static func failed(_ message: String) -> CLIFailure { CLIFailure(.failure, message) }
    /// The daemon could not be reached (exit 3).
    public static func unreachable(_ message: String) -> CLIFailure { CLIFailure(.unreachable, message) }

    public var description: String { message }
}
