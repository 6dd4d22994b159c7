import Foundation
import LeadTrailEvents
@testable import LeadTrailStorage

/// A fresh temporary directory, removed when the test ends.
final class TemporaryDirectory {
    let path: String

    init() {
        path = NSTemporaryDirectory() + "leadtrail-test-" + UUID().uuidString
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// Builds valid events for tests.
enum Events {
    static let preparer = EventPreparer()

    static func json(
        type: String = "source.submitted", lead: String, id: String? = nil, timestamp: String? = "2024-01-15T14:30:45.234Z",
        extra: String = ""
    ) -> String {
        var fields = ["\"type\":\"\(type)\"", "\"lead_id\":\"\(lead)\""]
        if let id { fields.append("\"event_id\":\"\(id)\"") }
        if let timestamp { fields.append("\"timestamp\":\"\(timestamp)\"") }
        if !extra.isEmpty { fields.append(extra) }
        return "{" + fields.joined(separator: ",") + "}"
    }

    static func prepare(_ json: String, now: Int64 = 1_700_000_000_000) throws -> PreparedEvent {
        let bytes = Array(json.utf8)
        return try bytes.withUnsafeBufferPointer { try preparer.prepare($0, now: now) }
    }

    static func make(lead: String, id: String? = nil, type: String = "source.submitted", timestampMs: Int64 = 1_705_329_045_234, extra: String = "") throws -> PreparedEvent {
        try prepare(json(type: type, lead: lead, id: id, timestamp: Timestamp.format(timestampMs), extra: extra))
    }
}

extension EventStore {
    static func openForTest(_ directory: String, segmentMaxBytes: Int = 128 << 20, durability: Durability = .fsync) throws -> EventStore {
        var configuration = StoreConfiguration(directory: directory)
        configuration.segmentMaxBytes = segmentMaxBytes
        configuration.durability = durability
        return try EventStore.open(configuration)
    }
}
