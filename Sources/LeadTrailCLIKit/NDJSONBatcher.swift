import LeadTrailEvents

/// An input line that cannot be sent as an event.
public struct NDJSONLineError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The 1-based line number in the input.
    public var line: Int
    /// Why the line was refused.
    public var reason: String

    public init(line: Int, reason: String) {
        self.line = line
        self.reason = reason
    }

    public var description: String { "line \(line): \(reason)" }
}

/// One `append` request ready to send, and where its events came from.
public struct AppendBatch: Sendable, Equatable {
    /// The complete frame body: `{"op":"append","events":[...]}` with the input lines copied verbatim.
    public var frame: [UInt8]
    /// The input line number of each event, in batch order (the server's error `index` maps through it).
    public var lineNumbers: [Int]
    /// How many input bytes (lines, blank ones and newlines included) this batch accounts for.
    public var inputBytes: Int

    /// How many events the batch holds.
    public var count: Int { lineNumbers.count }

    /// The input line of the event at `index` in this batch, if the index is in range.
    public func line(ofIndex index: Int) -> Int? {
        lineNumbers.indices.contains(index) ? lineNumbers[index] : nil
    }
}

/// Splits NDJSON input into `append` frames without re-serialising events.
///
/// Feed it chunks of bytes as they are read; it cuts lines (LF or CRLF),
/// skips blank ones, checks that each line is one JSON object (so a broken
/// line is reported with its number instead of spoiling a whole frame), and
/// concatenates the raw lines into frames of at most `maxEvents` events and
/// about `maxFrameBytes` bytes. Schema rules (required fields and so on) are
/// left to the daemon, whose limits are configurable; its error `index`
/// maps back to an input line through ``AppendBatch/lineNumbers``.
public struct NDJSONBatcher {
    /// The most events in one frame.
    public let maxEvents: Int
    /// The target upper bound of a frame body in bytes.
    public let maxFrameBytes: Int

    private static let prefix = Array(#"{"op":"append","events":["#.utf8)
    private static let suffix = Array("]}".utf8)

    private var partial: [UInt8] = []
    private var lineNumber = 0
    private var current: [UInt8] = []
    private var currentLines: [Int] = []
    private var currentInputBytes = 0

    /// - Parameters:
    ///   - maxEvents: events per frame (the contract allows up to 10,000 by default).
    ///   - maxFrameBytes: frame body size to stay under (the daemon's default limit is 16 MiB).
    public init(maxEvents: Int = 1000, maxFrameBytes: Int = 8 << 20) {
        self.maxEvents = max(1, maxEvents)
        self.maxFrameBytes = max(1024, maxFrameBytes)
    }

    /// How many input lines were seen so far.
    public var linesRead: Int { lineNumber }

    /// Takes the next chunk of input and returns the batches it completed.
    public mutating func feed(_ chunk: [UInt8]) throws(NDJSONLineError) -> [AppendBatch] {
        try feed(chunk[...])
    }

    /// Takes the next chunk of input and returns the batches it completed.
    public mutating func feed(_ chunk: ArraySlice<UInt8>) throws(NDJSONLineError) -> [AppendBatch] {
        var ready: [AppendBatch] = []
        var failure: NDJSONLineError?
        chunk.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }  // an empty chunk
            var start = 0
            var index = 0
            let count = buffer.count
            while index < count {
                // memchr finds the next newline far faster than a byte loop.
                guard let found = memchr(base + index, 0x0A, count - index) else { break }
                let newline = base.distance(to: found.assumingMemoryBound(to: UInt8.self))
                do throws(NDJSONLineError) {
                    if partial.isEmpty {
                        try takeLine(UnsafeBufferPointer(rebasing: buffer[start..<newline]), rawLength: newline - start + 1, into: &ready)
                    } else {
                        partial.append(contentsOf: buffer[start..<newline])
                        let line = partial
                        partial.removeAll(keepingCapacity: true)
                        try line.withUnsafeBufferPointer { (line) throws(NDJSONLineError) in
                            try takeLine(line, rawLength: line.count + 1, into: &ready)
                        }
                    }
                } catch {
                    failure = error
                    return
                }
                start = newline + 1
                index = newline + 1
            }
            partial.append(contentsOf: buffer[start..<count])
        }
        if let failure {
            stranded += ready
            throw failure
        }
        if partial.count > maxFrameBytes {
            stranded += ready
            throw NDJSONLineError(line: lineNumber + 1, reason: "line is longer than \(maxFrameBytes) bytes")
        }
        return ready
    }

    /// Ends the input: takes a last line without a newline and returns the remaining batches (none, one or two).
    public mutating func finish() throws(NDJSONLineError) -> [AppendBatch] {
        var ready: [AppendBatch] = []
        if !partial.isEmpty {
            let line = partial
            partial.removeAll()
            do {
                try line.withUnsafeBufferPointer { (line) throws(NDJSONLineError) in
                    try takeLine(line, rawLength: line.count, into: &ready)
                }
            } catch {
                stranded += ready
                throw error
            }
        }
        if let last = flush() { ready.append(last) }
        return ready
    }

    /// After an error: the batches of the lines before the bad one that were not returned yet
    /// (so a caller can store the input up to that line).
    public mutating func takePending() -> [AppendBatch] {
        var batches = stranded
        stranded.removeAll()
        if let last = flush() { batches.append(last) }
        return batches
    }

    /// Batches completed by a `feed` or `finish` call that then threw.
    private var stranded: [AppendBatch] = []

    private mutating func takeLine(_ raw: UnsafeBufferPointer<UInt8>, rawLength: Int, into ready: inout [AppendBatch]) throws(NDJSONLineError) {
        lineNumber += 1
        currentInputBytes += rawLength
        let line = Self.trimmed(raw)
        guard !line.isEmpty else { return }
        do {
            _ = try JSONScanner.topLevelMembers(line)
        } catch {
            throw NDJSONLineError(line: lineNumber, reason: error.reason == "expected a JSON object"
                ? "not a JSON object" : "invalid JSON at column \(error.offset + 1): \(error.reason)")
        }
        let projected = Self.prefix.count + current.count + 1 + line.count + Self.suffix.count
        if !currentLines.isEmpty, currentLines.count >= maxEvents || projected > maxFrameBytes {
            if let batch = flush(carryingInputBytes: rawLength) { ready.append(batch) }
        }
        if Self.prefix.count + line.count + Self.suffix.count > maxFrameBytes {
            throw NDJSONLineError(line: lineNumber, reason: "event is \(line.count) bytes, more than a frame may hold (\(maxFrameBytes))")
        }
        if !current.isEmpty { current.append(UInt8(ascii: ",")) }
        current.append(contentsOf: line)
        currentLines.append(lineNumber)
    }

    /// Closes the current batch. `carryingInputBytes` of the line just read belong to the next one.
    private mutating func flush(carryingInputBytes carried: Int = 0) -> AppendBatch? {
        guard !currentLines.isEmpty else { return nil }
        var frame: [UInt8] = []
        frame.reserveCapacity(Self.prefix.count + current.count + Self.suffix.count)
        frame.append(contentsOf: Self.prefix)
        frame.append(contentsOf: current)
        frame.append(contentsOf: Self.suffix)
        let batch = AppendBatch(frame: frame, lineNumbers: currentLines, inputBytes: currentInputBytes - carried)
        current.removeAll(keepingCapacity: true)
        currentLines.removeAll(keepingCapacity: true)
        currentInputBytes = carried
        return batch
    }

    /// The line without surrounding ASCII whitespace (CR of CRLF included).
    static func trimmed(_ bytes: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8> {
        func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0D || c == 0x0B || c == 0x0C }
        var lower = 0
        var upper = bytes.count
        while lower < upper, isSpace(bytes[lower]) { lower += 1 }
        while upper > lower, isSpace(bytes[upper - 1]) { upper -= 1 }
        return UnsafeBufferPointer(rebasing: bytes[lower..<upper])
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
