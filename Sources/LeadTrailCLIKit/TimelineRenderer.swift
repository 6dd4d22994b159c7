import LeadTrailEvents

/// Renders a lead's events as the human timeline of `leadtrail timeline`:
///
/// ```
/// 10:30:45.123  source.submitted      lead_5T8n  src: acme-web
/// 10:30:45.156  source.accepted       +33ms
/// 10:30:45.342  recipient.delivered   +186ms  Summit Lending  $45.00
/// ... 3 hours later ...
/// 13:30:00.000  feedback.received     converted
/// ```
///
/// Times are UTC time of day with milliseconds. Each line after the first
/// shows the time since the previous event; a gap longer than `gapThresholdMs`
/// gets a line of its own instead (with the new date when the day changes).
/// Details come from well-known fields: source, buyer names and prices,
/// rejection reasons, enhancement costs, retry attempts and outcomes.
public struct TimelineRenderer: Sendable {
    /// Gaps longer than this (default one hour) are shown as `... N hours later ...`.
    public var gapThresholdMs: Int64
    /// The width the event type is padded to.
    public var typeColumnWidth: Int

    public init(gapThresholdMs: Int64 = 3_600_000, typeColumnWidth: Int = 22) {
        self.gapThresholdMs = gapThresholdMs
        self.typeColumnWidth = typeColumnWidth
    }

    /// The timeline as lines of text (no trailing newlines).
    ///
    /// - Parameter events: the events as decoded JSON objects, in timeline order.
    public func render(_ events: [[String: Any]]) -> [String] {
        var lines: [String] = []
        var previousMs: Int64?
        for (position, event) in events.enumerated() {
            let type = JSONAccess.string(event, "type") ?? "?"
            let timestampText = JSONAccess.string(event, "timestamp")
            let ms = timestampText.flatMap { Timestamp.parse($0) }
            var columns: [String] = []
            if let ms, let previousMs {
                let delta = ms - previousMs
                if delta > gapThresholdMs {
                    lines.append("... \(Self.describeGap(delta))\(Self.dayChange(from: previousMs, to: ms)) ...")
                } else if position > 0 {
                    columns.append("+" + Self.describeDelta(delta))
                }
            }
            if position == 0 {
                columns.append(JSONAccess.string(event, "lead_id") ?? "")
                if let source = Self.sourceName(event) { columns.append("src: " + source) }
            }
            columns.append(contentsOf: details(of: event, type: type))
            let time = ms.map(Self.timeOfDay) ?? (timestampText ?? "??:??:??.???")
            var line = time + "  " + Self.pad(type, typeColumnWidth)
            line += columns.filter { !$0.isEmpty }.joined(separator: "  ")
            while line.hasSuffix(" ") { line.removeLast() }
            lines.append(line)
            if let ms { previousMs = ms }
        }
        return lines
    }

    /// The words shown after the delta for one event.
    func details(of event: [String: Any], type: String) -> [String] {
        let metadata = JSONAccess.object(event, "metadata") ?? [:]
        let outcome = JSONAccess.string(event, "outcome")
        let entity = JSONAccess.string(event, "entity_id")
        var out: [String] = []
        let family = type.split(separator: ".").first.map(String.init) ?? type
        switch family {
        case "recipient":
            out.append(JSONAccess.string(metadata, "buyer_name") ?? entity ?? "")
            if let price = JSONAccess.double(JSONAccess.value(metadata, path: ["buyer_response", "price"])) {
                out.append(Self.money(price))
            }
        case "enhancement":
            out.append(JSONAccess.string(metadata, "provider") ?? entity ?? "")
            if let cost = JSONAccess.double(metadata["cost"]), cost > 0 { out.append(Self.money(cost)) }
        case "filter":
            if let entity { out.append(entity) }
        case "retry":
            if let attempt = JSONAccess.int(metadata["attempt"]) { out.append("attempt \(attempt)") }
            if let name = JSONAccess.string(metadata, "buyer_name") ?? entity { out.append(name) }
        case "feedback":
            if let name = JSONAccess.string(metadata, "buyer_name"), type != "feedback.received" { out.append(name) }
        default:
            break
        }
        if let outcome, !Self.outcomeIsImplied(outcome, by: type) { out.append(outcome) }
        if let reason = JSONAccess.string(metadata, "rejection_reason") ?? JSONAccess.string(metadata, "reason")
            ?? JSONAccess.string(metadata, "error"), reason != outcome {
            out.append("(\(reason))")
        }
        return out.filter { !$0.isEmpty }
    }

    /// Whether printing `outcome` would only repeat what the type says.
    static func outcomeIsImplied(_ outcome: String, by type: String) -> Bool {
        let last = type.split(separator: ".").last.map(String.init) ?? type
        if outcome == last { return true }
        switch outcome {
        case "success", "accepted", "passed", "received", "processed", "retrying": return true
        case "rejected": return last == "failed" || last == "rejected"
        case "failed", "error": return last == "failure" || last == "failed" || last == "error"
        default: return false
        }
    }

    static func sourceName(_ event: [String: Any]) -> String? {
        if let metadata = JSONAccess.object(event, "metadata"), let name = JSONAccess.string(metadata, "source_name") {
            return name
        }
        guard let type = JSONAccess.string(event, "type"), type.hasPrefix("source.") else { return nil }
        return JSONAccess.string(event, "entity_id")
    }

    /// `HH:MM:SS.mmm` of a UTC timestamp.
    public static func timeOfDay(_ ms: Int64) -> String {
        let text = Timestamp.format(ms)
        let start = text.index(text.startIndex, offsetBy: 11)
        let end = text.index(start, offsetBy: 12)
        return String(text[start..<end])
    }

    /// `33ms`, `1.25s`, `4m 12s` or `1h 5m`.
    public static func describeDelta(_ ms: Int64) -> String {
        if ms < 0 { return "-" + describeDelta(-ms) }
        if ms < 1000 { return "\(ms)ms" }
        if ms < 60_000 {
            let hundredths = (ms + 5) / 10
            let fraction = hundredths % 100
            return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)s"
        }
        let seconds = ms / 1000
        if seconds < 3600 { return "\(seconds / 60)m \(seconds % 60)s" }
        return "\(seconds / 3600)h \(seconds % 3600 / 60)m"
    }

    /// `3 hours later`, `1 hour 20 minutes later`, `2 days 4 hours later`.
    public static func describeGap(_ ms: Int64) -> String {
        let minutes = ms / 60_000
        let days = minutes / 1440
        let hours = minutes % 1440 / 60
        let mins = minutes % 60
        func unit(_ n: Int64, _ word: String) -> String { "\(n) \(word)\(n == 1 ? "" : "s")" }
        var parts: [String] = []
        if days > 0 {
            parts.append(unit(days, "day"))
            if hours > 0 { parts.append(unit(hours, "hour")) }
        } else {
            if hours > 0 { parts.append(unit(hours, "hour")) }
            if mins > 0 { parts.append(unit(mins, "minute")) }
        }
        if parts.isEmpty { parts.append(unit(max(1, ms / 1000), "second")) }
        return parts.joined(separator: " ") + " later"
    }

    /// `, 2024-01-16` when the UTC day differs, else empty.
    static func dayChange(from: Int64, to: Int64) -> String {
        let a = Timestamp.format(from).prefix(10)
        let b = Timestamp.format(to).prefix(10)
        return a == b ? "" : ", " + b
    }

    /// `$45.00` (amounts under a dollar keep three places: `$0.015`).
    public static func money(_ value: Double) -> String {
        let cents = (value * 100).rounded()
        if abs(value * 100 - cents) > 1e-6 {
            let mills = Int64((value * 1000).rounded())
            let fraction = String(abs(mills) % 1000)
            return "$\(mills / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)"
        }
        let whole = Int64(cents) / 100
        let fraction = abs(Int64(cents)) % 100
        return "$\(whole).\(fraction < 10 ? "0" : "")\(fraction)"
    }

    static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + "  " : text + String(repeating: " ", count: width - text.count)
    }
}
