import ArgumentParser
import Foundation
import LeadTrailCLIKit

/// `leadtrail append`: loads NDJSON events from a file or stdin.
struct Append: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Append NDJSON events (one JSON object per line) from a file or stdin.",
        discussion: """
            Lines are sent as they are, in batches (all-or-nothing each); blank lines are skipped. \
            A line that is not a JSON object, or that the daemon refuses, stops the load with its \
            line number; batches before it stay stored. Events with an event_id that is already \
            stored count as duplicates, so a load can be repeated safely.
            """)

    @OptionGroup var connection: ConnectionOptions

    @Argument(help: ArgumentHelp("The NDJSON file; - or nothing reads stdin.", valueName: "file"))
    var file: String?

    @Option(name: .long, help: "Events per append request (1-10000).")
    var batchSize: Int = 1000

    @Option(name: .long, help: "Requests in flight at once (pipelining).")
    var window: Int = 4

    @Flag(name: .long, help: "Never draw the progress bar.")
    var noProgress = false

    @Flag(name: .long, help: "Print nothing but errors.")
    var quiet = false

    func validate() throws {
        if !(1...10_000).contains(batchSize) { throw ValidationError("--batch-size must be between 1 and 10000") }
        if !(1...64).contains(window) { throw ValidationError("--window must be between 1 and 64") }
    }

    /// A progress bar is drawn for inputs above this size (or unknown-size inputs after a second).
    static let largeInputBytes = 4 << 20

    func run() throws {
        let input = try InputFile(path: file)
        defer { input.close() }
        let session = try connection.connect()
        defer { session.close() }

        let loader = Loader(session: session, window: window)
        var batcher = NDJSONBatcher(maxEvents: batchSize)
        let started = Date()
        let progress = ProgressBar()
        var lastDraw = Date.distantPast
        var drew = false
        func drawProgress(force: Bool = false) {
            guard !noProgress, !quiet, standardErrorIsTerminal else { return }
            let elapsed = Date().timeIntervalSince(started)
            let large = input.size.map { $0 > Self.largeInputBytes } ?? (elapsed > 1)
            guard large, force || Date().timeIntervalSince(lastDraw) > 0.1 else { return }
            lastDraw = Date()
            drew = true
            let line = progress.line(doneBytes: loader.acknowledgedBytes, totalBytes: input.size,
                                     events: loader.summary.appended + loader.summary.duplicates, seconds: elapsed)
            FileHandle.standardError.write(Data(("\r" + line + "\u{1B}[K").utf8))
        }

        var failure: CLIFailure?
        do {
            reading: while let chunk = try input.read() {
                let batches: [AppendBatch]
                do {
                    batches = try batcher.feed(chunk)
                } catch {
                    failure = .failed("line \(error.line): \(error.reason); the events before it were sent, none after it")
                    // The lines before the bad one form a valid batch: send them, so the input is stored up to that line.
                    for before in batcher.takePending() { try loader.submit(before) }
                    break reading
                }
                for batch in batches {
                    try loader.submit(batch)
                    drawProgress()
                }
            }
            if failure == nil {
                var last: [AppendBatch] = []
                do {
                    last = try batcher.finish()
                } catch {
                    failure = .failed("line \(error.line): \(error.reason); the events before it were sent")
                    last = batcher.takePending()
                }
                for batch in last { try loader.submit(batch) }
            }
            try loader.drain()
        } catch {
            // A refused batch: the batches already in flight are still answered and counted.
            try? loader.drain()
            failure = failure ?? error
        }
        if drew {
            drawProgress(force: true)
            FileHandle.standardError.write(Data("\n".utf8))
        }
        let seconds = Date().timeIntervalSince(started)
        if !quiet {
            printError(loader.summary.line(seconds: seconds))
        }
        if let failure = loader.refusal ?? failure { throw failure }
    }
}

/// Sends batches with up to `window` requests in flight and tallies the answers.
///
/// Answers are read on a thread of their own while the caller sends. A single
/// thread that alternates would deadlock on large batches: blocked in `send`
/// because the daemon stops reading a connection whose answers it cannot
/// write, while those answers wait unread (the daemon then closes the
/// connection as stalled). The two threads share only the queue of batches
/// in flight and the tallies, under one lock; one sends and one receives on
/// the connection, which the blocking client allows (separate syscalls on
/// one socket).
final class Loader: @unchecked Sendable {
    let session: DaemonSession
    let window: Int
    private let condition = NSCondition()
    /// Batches sent (or being sent) and not answered yet, in request order.
    private var inFlight: [AppendBatch] = []
    private var sendingDone = false
    private var receiverRunning = false
    private var summaryValue = AppendSummary()
    private var acknowledgedBytesValue = 0
    /// The first refusal (with the input line it is about); no batch is sent after it.
    private var refusalValue: CLIFailure?
    /// A broken connection: nothing more can be sent or received.
    private var fatal: CLIFailure?

    init(session: DaemonSession, window: Int) {
        self.session = session
        self.window = window
    }

    var summary: AppendSummary { locked { summaryValue } }
    var acknowledgedBytes: Int { locked { acknowledgedBytesValue } }
    var refusal: CLIFailure? { locked { refusalValue } }

    private func locked<T>(_ body: () -> T) -> T {
        condition.lock()
        defer { condition.unlock() }
        return body()
    }

    /// Sends one batch, waiting while `window` batches are unanswered.
    func submit(_ batch: AppendBatch) throws(CLIFailure) {
        condition.lock()
        if !receiverRunning {
            receiverRunning = true
            let thread = Thread { [self] in receiveLoop() }
            thread.name = "leadtrail-append-receiver"
            thread.start()
        }
        while inFlight.count >= window, fatal == nil, refusalValue == nil {
            condition.wait()
        }
        if let stop = fatal ?? refusalValue {
            condition.unlock()
            throw stop
        }
        inFlight.append(batch)
        condition.broadcast()
        condition.unlock()
        do {
            try session.sendRaw(batch.frame)
        } catch {
            condition.lock()
            if fatal == nil { fatal = error }
            condition.broadcast()
            condition.unlock()
            throw error
        }
    }

    /// Waits for every answer; throws the first refusal or connection failure.
    func drain() throws(CLIFailure) {
        condition.lock()
        sendingDone = true
        condition.broadcast()
        while receiverRunning {
            condition.wait()
        }
        let stop = fatal ?? refusalValue
        condition.unlock()
        if let stop { throw stop }
    }

    private func receiveLoop() {
        while true {
            condition.lock()
            while inFlight.isEmpty, !sendingDone, fatal == nil {
                condition.wait()
            }
            guard fatal == nil, let batch = inFlight.first else {
                receiverRunning = false
                condition.broadcast()
                condition.unlock()
                return
            }
            condition.unlock()

            let outcome: Result<[String: Any], CLIFailure>
            do {
                let body = try session.connection.receiveRaw()
                outcome = .success(try DaemonSession.decode(body, checkOK: false))
            } catch let failure as CLIFailure {
                outcome = .failure(failure)
            } catch {
                outcome = .failure(DaemonSession.failure(error, socketPath: session.socketPath))
            }

            condition.lock()
            inFlight.removeFirst()
            switch outcome {
            case .failure(let failure):
                fatal = fatal ?? failure
                inFlight.removeAll()
            case .success(let answer):
                if let failure = record(answer, for: batch) { fatal = fatal ?? failure }
            }
            condition.broadcast()
            condition.unlock()
        }
    }

    /// Tallies one answer (called under the lock); returns a failure that ends the load.
    private func record(_ answer: [String: Any], for batch: AppendBatch) -> CLIFailure? {
        summaryValue.batches += 1
        guard (answer["ok"] as? Bool) == true else {
            let error = answer["error"] as? [String: Any] ?? [:]
            let code = error["code"] as? String ?? "error"
            let message = error["message"] as? String ?? "the daemon refused the batch"
            let lines = "lines \(batch.lineNumbers.first ?? 0)-\(batch.lineNumbers.last ?? 0)"
            var location = "batch of input \(lines)"
            if let index = JSONAccess.int(error["index"]), let line = batch.line(ofIndex: Int(index)) {
                location = "line \(line)"
            }
            if refusalValue == nil {
                refusalValue = .failed("\(location): \(code): \(message) (its batch, \(lines), was not stored)")
            }
            return nil
        }
        let results = answer["results"] as? [[String: Any]] ?? []
        guard results.count == batch.count else {
            return .failed("the daemon answered \(results.count) results for a batch of \(batch.count) events")
        }
        for result in results {
            summaryValue.record(seq: JSONAccess.int(result["seq"]) ?? 0, duplicate: (result["duplicate"] as? Bool) == true)
        }
        acknowledgedBytesValue += batch.inputBytes
        return nil
    }
}

/// The input: a file, or stdin for `-` or no argument.
final class InputFile {
    let descriptor: Int32
    /// The size in bytes when the input is a regular file.
    let size: Int?
    private let owned: Bool
    private var buffer = [UInt8](repeating: 0, count: 1 << 20)

    init(path: String?) throws(CLIFailure) {
        if let path, path != "-" {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                throw .failed("cannot open \(path): \(String(cString: strerror(errno)))")
            }
            descriptor = fd
            owned = true
        } else {
            descriptor = 0
            owned = false
        }
        var info = stat()
        if fstat(descriptor, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG {
            size = Int(info.st_size)
        } else {
            size = nil
        }
    }

    /// The next chunk, or `nil` at the end of the input.
    func read() throws(CLIFailure) -> ArraySlice<UInt8>? {
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if n > 0 { return buffer[0..<n] }
            if n == 0 { return nil }
            if errno == EINTR { continue }
            throw .failed("cannot read the input: \(String(cString: strerror(errno)))")
        }
    }

    func close() {
        if owned { Glibc.close(descriptor) }
    }
}
