/// What `leadtrail append` did, accumulated from the daemon's answers.
public struct AppendSummary: Sendable, Equatable {
    /// Events stored by this run.
    public var appended = 0
    /// Events whose `event_id` was already stored (not stored again).
    public var duplicates = 0
    /// The lowest and highest `seq` of newly stored events.
    public var firstSeq: Int64?
    public var lastSeq: Int64?
    /// Requests answered.
    public var batches = 0

    public init() {}

    /// Adds one result of an append answer.
    public mutating func record(seq: Int64, duplicate: Bool) {
        if duplicate {
            duplicates += 1
            return
        }
        appended += 1
        firstSeq = min(firstSeq ?? seq, seq)
        lastSeq = max(lastSeq ?? seq, seq)
    }

    /// `appended 1,200 events, 3 duplicates, seq 1-1200, in 0.42 s (2,857 events/s)`.
    public func line(seconds: Double) -> String {
        var parts = ["appended \(ProgressBar.grouped(appended)) event\(appended == 1 ? "" : "s")"]
        parts.append("\(ProgressBar.grouped(duplicates)) duplicate\(duplicates == 1 ? "" : "s")")
        if let firstSeq, let lastSeq {
            parts.append(firstSeq == lastSeq ? "seq \(firstSeq)" : "seq \(firstSeq)-\(lastSeq)")
        }
        let total = appended + duplicates
        let rate = seconds > 0 ? Int(Double(total) / seconds) : total
        let hundredths = Int((max(0, seconds) * 100).rounded())
        let time = "\(hundredths / 100).\(hundredths % 100 < 10 ? "0" : "")\(hundredths % 100)"
        return parts.joined(separator: ", ") + ", in \(time) s (\(ProgressBar.grouped(rate)) events/s)"
    }
}
