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
    public mutating func feed<Bytes: Collection>(_ chunk: Bytes) throws(NDJSONLineError) -> [AppendBatch] where Bytes.Element == UInt8 {
        var ready: [AppendBatch] = []
        var start = chunk.startIndex
        var index = chunk.startIndex
        do {
            while index != chunk.endIndex {
                if chunk[index] == 0x0A {
                    if partial.isEmpty {
                        try takeLine(chunk[start..<index], rawLength: chunk.distance(from: start, to: index) + 1, into: &ready)
                    } else {
                        partial.append(contentsOf: chunk[start..<index])
                        let line = partial
                        partial.removeAll(keepingCapacity: true)
                        try takeLine(line[...], rawLength: line.count + 1, into: &ready)
                    }
                    start = chunk.index(after: index)
                }
                index = chunk.index(after: index)
            }
        } catch {
            stranded += ready
            throw error
        }
        partial.append(contentsOf: chunk[start..<chunk.endIndex])
        if partial.count > maxFrameBytes {
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
                try takeLine(line[...], rawLength: line.count, into: &ready)
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

    private mutating func takeLine<Line: Collection>(_ raw: Line, rawLength: Int, into ready: inout [AppendBatch]) throws(NDJSONLineError) where Line.Element == UInt8 {
        lineNumber += 1
        currentInputBytes += rawLength
        let line = Self.trimmed(raw)
        guard !line.isEmpty else { return }
        do {
            _ = try line.withUnsafeBufferPointer { (buffer) throws(JSONSyntaxError) in
                try JSONScanner.topLevelMembers(buffer)
            }
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
    static func trimmed<Line: Collection>(_ raw: Line) -> [UInt8] where Line.Element == UInt8 {
        let bytes = Array(raw)
        func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0D || c == 0x0B || c == 0x0C }
        var lower = 0
        var upper = bytes.count
        while lower < upper, isSpace(bytes[lower]) { lower += 1 }
        while upper > lower, isSpace(bytes[upper - 1]) { upper -= 1 }
        if lower == 0, upper == bytes.count { return bytes }
        return Array(bytes[lower..<upper])
    }
}
