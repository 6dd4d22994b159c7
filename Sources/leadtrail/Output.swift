import Foundation

/// Buffered writes to standard output (scan and generate print millions of lines).
final class Output: @unchecked Sendable {
    /// The process's standard output. Used from one thread at a time (the command's).
    static let standard = Output(handle: FileHandle.standardOutput)

    private let handle: FileHandle
    private var buffer: [UInt8] = []
    private let limit = 1 << 16

    init(handle: FileHandle) {
        self.handle = handle
        buffer.reserveCapacity(limit + 4096)
    }

    func write(_ bytes: [UInt8]) {
        buffer.append(contentsOf: bytes)
        if buffer.count >= limit { flush() }
    }

    func line(_ text: String) {
        buffer.append(contentsOf: text.utf8)
        buffer.append(0x0A)
        if buffer.count >= limit { flush() }
    }

    func line(bytes: [UInt8]) {
        buffer.append(contentsOf: bytes)
        buffer.append(0x0A)
        if buffer.count >= limit { flush() }
    }

    func flush() {
        guard !buffer.isEmpty else { return }
        handle.write(Data(buffer))
        buffer.removeAll(keepingCapacity: true)
    }
}

/// One line on standard error.
func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// Whether standard error is a terminal (progress bars and notes).
var standardErrorIsTerminal: Bool { isatty(2) == 1 }
