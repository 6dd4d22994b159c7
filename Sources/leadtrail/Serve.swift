import ArgumentParser
import CMallocArena
import LeadTrailCLIKit
import LeadTrailServer
import Logging

/// `leadtrail serve`: runs the daemon in the foreground until SIGTERM or SIGINT.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the daemon: serve the store over its Unix socket until SIGTERM or SIGINT.",
        discussion: """
            Settings come from the defaults, then --config FILE (JSON, PROTOCOL.md section 6), \
            then --data-dir and --socket. Logs go to stderr.
            """)

    @Option(name: .long, help: ArgumentHelp("The data directory (overrides the configuration file).", valueName: "dir"))
    var dataDir: String?

    @Option(name: .long, help: ArgumentHelp("The Unix socket to listen on (overrides the configuration file).", valueName: "path"))
    var socket: String?

    @Option(name: .long, help: ArgumentHelp("A configuration file (JSON).", valueName: "file"))
    var config: String?

    @Option(name: .long, help: ArgumentHelp(
        "trace, debug, info, notice, warning, error or critical (overrides the configuration file; default info).",
        valueName: "level"))
    var logLevel: String?

    @Flag(name: .long, help: "Check the configuration, print the data directory and socket it gives, and exit.")
    var checkConfig = false

    func validate() throws {
        if let logLevel, Logger.Level(rawValue: logLevel) == nil {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
        if dataDir?.isEmpty == true { throw ValidationError("--data-dir must not be empty") }
        if socket?.isEmpty == true { throw ValidationError("--socket must not be empty") }
    }

    func run() async throws {
        var settings: DaemonConfiguration
        do {
            settings = try DaemonConfiguration.load(path: config)
        } catch {
            throw CLIFailure.usage("\(config.map { "\($0): " } ?? "")\(error)")
        }
        if let dataDir { settings.dataDirectory = dataDir }
        if let socket { settings.socketPath = socket }
        if let logLevel, let level = Logger.Level(rawValue: logLevel) { settings.logLevel = level }
        do {
            try settings.validate()
        } catch {
            throw CLIFailure.usage("\(error)")
        }

        if checkConfig {
            Output.standard.line("data directory  \(settings.dataDirectory)")
            Output.standard.line("socket          \(settings.socketPath)")
            return
        }

        let level = settings.logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: "leadtrail")
        logger.logLevel = level
        logger.debug("malloc arenas", metadata: ["limit": "\(leadtrail_malloc_arena_limit() == 1 ? "1" : "glibc default")"])
        do {
            try await Daemon.run(settings, logger: logger)
        } catch {
            throw CLIFailure.failed("serve: \(error)")
        }
    }
}
