import LeadTrailEvents
import LeadTrailStorage

/// The filters of the contract's `scan` and `follow` (all optional, combined with AND).
///
/// Matching reads only the record's header fields (timestamp and the indexed
/// string fields), never the JSON body.
public struct ScanFilter: Sendable, Equatable {
    public var fromMs: Int64?
    public var toMs: Int64?
    /// Exact types, or prefixes written as `recipient.*`.
    public var types: [String]
    public var outcomes: [String]
    public var leadID: String?
    public var flowID: String?
    public var entityID: String?
    public var stepID: String?
    public var afterSeq: UInt64
    public var limit: Int?

    public init(
        fromMs: Int64? = nil, toMs: Int64? = nil, types: [String] = [], outcomes: [String] = [], leadID: String? = nil,
        flowID: String? = nil, entityID: String? = nil, stepID: String? = nil, afterSeq: UInt64 = 0, limit: Int? = nil
    ) {
        self.fromMs = fromMs
        self.toMs = toMs
        self.types = types
        self.outcomes = outcomes
        self.leadID = leadID
        self.flowID = flowID
        self.entityID = entityID
        self.stepID = stepID
        self.afterSeq = afterSeq
        self.limit = limit
        compile()
    }

    // Pre-encoded forms, so matching compares bytes.
    private var exactTypes: [[UInt8]] = []
    private var typePrefixes: [[UInt8]] = []
    private var outcomeBytes: [[UInt8]] = []
    private var exactFields: [(IndexedField, [UInt8])] = []

    public static func == (a: ScanFilter, b: ScanFilter) -> Bool {
        a.fromMs == b.fromMs && a.toMs == b.toMs && a.types == b.types && a.outcomes == b.outcomes && a.leadID == b.leadID
            && a.flowID == b.flowID && a.entityID == b.entityID && a.stepID == b.stepID && a.afterSeq == b.afterSeq
            && a.limit == b.limit
    }

    private mutating func compile() {
        for type in types {
            if type.hasSuffix(".*") {
                typePrefixes.append(Array(type.dropLast(1).utf8))  // keeps the dot: "recipient."
            } else {
                exactTypes.append(Array(type.utf8))
            }
        }
        outcomeBytes = outcomes.map { Array($0.utf8) }
        exactFields = [(.leadID, leadID), (.flowID, flowID), (.entityID, entityID), (.stepID, stepID)]
            .compactMap { field, value in value.map { (field, Array($0.utf8)) } }
    }

    /// What the storage engine can use to skip segments and index runs.
    public var hints: ScanHints {
        ScanHints(
            afterSeq: afterSeq, fromMs: fromMs, toMs: toMs, leadID: leadID,
            types: types.isEmpty ? nil : TypeSelection(exact: exactTypes, prefixes: typePrefixes))
    }

    /// Whether a record passes every filter (seq and time included).
    public func matches(_ record: RecordView) -> Bool {
        guard record.seq > afterSeq else { return false }
        if let fromMs, record.timestampMs < fromMs { return false }
        if let toMs, record.timestampMs >= toMs { return false }
        let body = record.body
        if !exactTypes.isEmpty || !typePrefixes.isEmpty {
            let ref = record.fields[.type]
            guard exactTypes.contains(where: { ref.equals($0, in: body) }) || typePrefixes.contains(where: { ref.hasPrefix($0, in: body) })
            else { return false }
        }
        if !outcomeBytes.isEmpty {
            let ref = record.fields[.outcome]
            guard outcomeBytes.contains(where: { ref.equals($0, in: body) }) else { return false }
        }
        for (field, value) in exactFields where !record.fields[field].equals(value, in: body) {
            return false
        }
        return true
    }
}
