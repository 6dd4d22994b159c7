/// The progress line `leadtrail append` redraws on a terminal's stderr.
///
/// It is pure formatting: the caller decides when to draw (on a terminal,
/// for large inputs, a few times a second) and writes `"\r" + line`.
public struct ProgressBar: Sendable {
    /// The width of the bar between the brackets.
    public var width: Int

    public init(width: Int = 30) {
        self.width = width
    }

    /// One progress line.
    ///
    /// - Parameters:
    ///   - doneBytes: input bytes sent and acknowledged so far.
    ///   - totalBytes: the input size when known (a regular file), else `nil` for a running count only.
    ///   - events: events acknowledged so far.
    ///   - seconds: time since the start.
    public func line(doneBytes: Int, totalBytes: Int?, events: Int, seconds: Double) -> String {
        let rate = seconds > 0 ? Int(Double(events) / seconds) : 0
        let counts = "\(Self.grouped(events)) events  \(Self.grouped(rate)) ev/s"
        guard let totalBytes, totalBytes > 0 else { return counts }
        let fraction = min(1.0, Double(doneBytes) / Double(totalBytes))
        let filled = Int((fraction * Double(width)).rounded(.down))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let percent = Int((fraction * 100).rounded(.down))
        let padded = String(repeating: " ", count: max(0, 3 - String(percent).count)) + String(percent)
        return "[\(bar)] \(padded)%  \(counts)"
    }

    /// `1,234,567`.
    public static func grouped(_ value: Int) -> String {
        let digits = String(abs(value))
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0, (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return value < 0 ? "-" + out : out
    }
}
