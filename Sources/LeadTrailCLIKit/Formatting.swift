import LeadTrailEvents

/// Human formats of `scan --format table` and `stats`.
public enum Formatting {
    /// The columns of `scan --format table`, with their minimum widths.
    public static let scanColumns: [(title: String, key: String, width: Int)] = [
        ("SEQ", "seq", 8), ("TIMESTAMP", "timestamp", 24), ("TYPE", "type", 21), ("LEAD", "lead_id", 15),
        ("ENTITY", "entity_id", 26), ("STEP", "step_id", 26), ("OUTCOME", "outcome", 0),
    ]

    /// The header line of the scan table.
    public static func scanHeader() -> String {
        row(scanColumns.map { ($0.title, $0.width) })
    }

    /// One event as a row of the scan table (fixed widths, so rows stream without buffering).
    public static func scanRow(_ event: [String: Any]) -> String {
        row(scanColumns.map { column in (JSONAccess.text(event[column.key]) ?? "-", column.width) })
    }

    static func row(_ cells: [(String, Int)]) -> String {
        var line = ""
        for (i, (text, width)) in cells.enumerated() {
            if i > 0 { line += "  " }
            line += text
            if i < cells.count - 1, text.count < width { line += String(repeating: " ", count: width - text.count) }
        }
        return line
    }

    /// `1.5 KiB`, `12.0 MiB`.
    public static func bytes(_ value: Double) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = value
        var unit = 0
        while v >= 1024, unit < units.count - 1 {
            v /= 1024
            unit += 1
        }
        if unit == 0 { return "\(Int(v)) B" }
        let tenths = Int((v * 10).rounded())
        return "\(tenths / 10).\(tenths % 10) \(units[unit])"
    }

    /// The answer of `stats` as readable lines.
    public static func stats(_ answer: [String: Any]) -> [String] {
        var lines: [String] = []
        let shown: Set<String> = ["ok", "id", "events", "last_seq", "durability", "tiers"]
        func number(_ key: String) -> String {
            JSONAccess.int(answer[key]).map { ProgressBar.grouped(Int($0)) } ?? (JSONAccess.text(answer[key]) ?? "-")
        }
        lines.append("events      \(number("events"))")
        lines.append("last seq    \(number("last_seq"))")
        lines.append("durability  \(JSONAccess.text(answer["durability"]) ?? "-")")
        if let tiers = answer["tiers"] as? [String: Any] {
            lines.append("")
            lines.append(row([("TIER", 9), ("SEGMENTS", 9), ("EVENTS", 12), ("BYTES", 11), ("RATIO", 7), ("OLDEST", 25), ("NEWEST", 0)]))
            let order = ["hot", "warm", "cold"] + tiers.keys.sorted().filter { !["hot", "warm", "cold"].contains($0) }
            for name in order {
                guard let tier = tiers[name] as? [String: Any] else { continue }
                let segments = JSONAccess.int(tier["segments"]).map { ProgressBar.grouped(Int($0)) } ?? "-"
                let events = JSONAccess.int(tier["events"]).map { ProgressBar.grouped(Int($0)) } ?? "-"
                let onDisk = JSONAccess.double(tier["bytes"])
                let size = onDisk.map(bytes) ?? "-"
                // Compression ratio: the segments' size in hot format over their size on disk.
                var ratio = "-"
                if let onDisk, onDisk > 0, let raw = JSONAccess.double(tier["raw_bytes"]) {
                    let hundredths = Int((raw / onDisk * 100).rounded())
                    ratio = "\(hundredths / 100).\(hundredths % 100 < 10 ? "0" : "")\(hundredths % 100)x"
                }
                let oldest = JSONAccess.text(tier["oldest"]) ?? "-", newest = JSONAccess.text(tier["newest"]) ?? "-"
                lines.append(row([(name, 9), (segments, 9), (events, 12), (size, 11), (ratio, 7), (oldest, 25), (newest, 0)]))
            }
        }
        let others = answer.keys.filter { !shown.contains($0) }.sorted()
        if !others.isEmpty {
            lines.append("")
            let width = (others.map(\.count).max() ?? 0) + 2
            for key in others {
                let value = answer[key].map { JSONAccess.text($0) ?? JSONAccess.serialize($0) } ?? "-"
                lines.append(key.replacingOccurrences(of: "_", with: " ") + String(repeating: " ", count: width - key.count) + value)
            }
        }
        return lines
    }
}

extension String {
    func replacingOccurrences(of target: Character, with replacement: String) -> String {
        var out = ""
        for c in self { if c == target { out += replacement } else { out.append(c) } }
        return out
    }
}
