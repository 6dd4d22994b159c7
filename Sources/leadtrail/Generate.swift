import ArgumentParser
import Foundation
import LeadTrailCLIKit
import LeadTrailEvents

/// `leadtrail generate`: realistic synthetic lead timelines as NDJSON.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write realistic, deterministic lead-event timelines as NDJSON (for demos, tests, benchmarks).",
        discussion: """
            Leads come from sources, are accepted or rejected, enhanced at a cost, filtered, offered \
            to buyers (prices, rejections, errors, retries) and get feedback hours later. Every event \
            has an event_id, so loading the same output twice stores nothing new. All personal data is invented.
            """)

    @Option(name: .long, help: "How many leads.")
    var leads: Int = 300

    @Option(name: .long, help: "Random seed: the same seed gives the same output.")
    var seed: UInt64 = 1

    @Option(name: .long, help: ArgumentHelp("When the first lead arrives (RFC 3339).", valueName: "timestamp"))
    var start: String = GeneratorOptions.defaultStart

    @Option(name: .long, help: ArgumentHelp("Mean milliseconds between two lead arrivals.", valueName: "ms"))
    var meanArrivalMs: Double = 4000

    @Option(name: [.short, .long], help: ArgumentHelp("Write to this file instead of stdout.", valueName: "file"))
    var output: String?

    func validate() throws {
        if leads < 0 { throw ValidationError("--leads must be 0 or more") }
        if Timestamp.parse(start) == nil { throw ValidationError("--start must be an RFC 3339 time (got '\(start)')") }
        if !(meanArrivalMs >= 0) || !meanArrivalMs.isFinite { throw ValidationError("--mean-arrival-ms must be 0 or more") }
    }

    func run() throws {
        guard let startMs = Timestamp.parse(start) else { throw CLIFailure.usage("--start is not an RFC 3339 time") }
        let sink: Output
        if let output {
            guard FileManager.default.createFile(atPath: output, contents: nil),
                  let handle = FileHandle(forWritingAtPath: output)
            else {
                throw CLIFailure.failed("cannot write \(output)")
            }
            sink = Output(handle: handle)
        } else {
            sink = Output.standard
        }
        var count = 0
        var bytes = 0
        for event in EventGenerator(GeneratorOptions(leads: leads, seed: seed, startMs: startMs, meanArrivalMs: meanArrivalMs)) {
            sink.line(bytes: event)
            count += 1
            bytes += event.count + 1
        }
        sink.flush()
        if let output {
            printError("wrote \(ProgressBar.grouped(count)) events of \(ProgressBar.grouped(leads)) leads (\(Formatting.bytes(Double(bytes)))) to \(output)")
        }
    }
}
