#if canImport(Glibc)
import Glibc
#endif
import LeadTrailEvents
import LeadTrailStorage
import LeadTrailWire
import Logging

/// A startup configuration problem, naming the key at fault.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    /// The offending key, dotted for nested keys (`roles.support.uids`); empty for the whole file.
    public var key: String
    public var message: String

    public init(key: String, _ message: String) {
        self.key = key
        self.message = message
    }

    public var description: String { key.isEmpty ? message : "configuration key '\(key)': \(message)" }
}

/// Everything the daemon is told at startup: PROTOCOL.md section 6 plus paths and logging.
///
/// Every property has its documented default, so `DaemonConfiguration()` is a
/// working daemon on the default paths. ``load(path:)`` reads a JSON file where
/// every key is optional; an unknown key, a value of the wrong type or a value out
/// of range is a ``ConfigurationError`` that names the key. ``validate()`` checks
/// the values set in code the same way.
public struct DaemonConfiguration: Sendable {
    /// `data_dir`: the store's directory. Default: ``DefaultPaths/dataDirectory``.
    public var dataDirectory: String = DefaultPaths.dataDirectory
    /// `socket`: the Unix socket path. Default: ``DefaultPaths/socketPath``.
    public var socketPath: String = DefaultPaths.socketPath
    /// `log_level`: `trace`, `debug`, `info`, `notice`, `warning`, `error` or `critical`. Default `info`.
    public var logLevel: Logger.Level = .info
    /// `hot_days`: sealed segments move to warm when their newest event is older. Default 30.
    public var hotDays: Int = 30
    /// `warm_days`: and to cold when older than this. Default 90.
    public var warmDays: Int = 90
    /// `retain_days`: cold archives older than this are deleted. Default nil: keep everything.
    public var retainDays: Int? = nil
    /// `restore_expiry_seconds`: restored cold data leaves query reach after this long unless released first. Default 7 days.
    public var restoreExpirySeconds: Int = 7 * 86_400
    /// `tier_interval_seconds`: how often the background tiering runs; 0 turns it off. Default 3600.
    public var tierIntervalSeconds: Int = 3600
    /// `segment_max_bytes`: the active segment is sealed at this size. Default 128 MiB.
    public var segmentMaxBytes: Int = 128 << 20
    /// `segment_max_age_seconds`: the active segment is sealed once its first event is this old. Default 3600.
    public var segmentMaxAgeSeconds: Int = 3600
    /// `durability`: `fsync` (acknowledge after fdatasync) or `relaxed`. Default `fsync`.
    public var durability: Durability = .fsync
    /// `max_frame_bytes`: the largest request frame. Default 16 MiB.
    public var maxFrameBytes: Int = 16 << 20
    /// `max_event_bytes`: the largest event. Default 1 MiB (at most 3 MiB, so scan frames stay under 4 MiB).
    public var maxEventBytes: Int = 1 << 20
    /// `max_batch_events`: the most events in one append. Default 10,000.
    public var maxBatchEvents: Int = 10_000
    /// `socket_mode`: permission bits of the socket file, an octal string. Default `"0660"`.
    public var socketMode: UInt32 = 0o660
    /// `roles`: who holds which role, by uid and gid. Default: nobody but the daemon's own uid (admin).
    public var roles: RoleAssignments = RoleAssignments()
    /// `max_pipelined_requests`: a connection with this many unanswered requests is not read from
    /// until one is answered (back-pressure). Default 8.
    public var maxPipelinedRequests: Int = 8
    /// The bytes of request frames taken and not yet answered, over every connection, past which no
    /// connection is read from (back-pressure; see `RequestAdmission`). Not a configuration-file key:
    /// a connection with nothing in progress is always read, so a frame of `max_frame_bytes` still
    /// gets through. Default 6 MiB: five batches of 1,000 lead events, enough to keep group commit busy
    /// (4 producers: the same events/s as 16 MiB, and 35 MB less resident at the peak at 10 million events).
    public var requestBytesInFlight: Int = 6 << 20
    /// `idle_timeout_seconds`: a connection with nothing in flight and no traffic for this long is closed. Default 600.
    public var idleTimeoutSeconds: Int = 600
    /// `stall_timeout_seconds`: a connection that leaves a frame half-sent, or does not read its
    /// responses, for this long is closed. Default 30.
    public var stallTimeoutSeconds: Int = 30
    /// `max_connections`: connections beyond this are closed at once. Default 1024.
    public var maxConnections: Int = 1024
    /// `query_threads`: threads that run reads (get, timeline, scan, stats, verify, rotate). Default 4.
    public var queryThreads: Int = 4

    public init() {}

    /// The storage engine's settings derived from this configuration.
    public var storeConfiguration: StoreConfiguration {
        var store = StoreConfiguration(directory: dataDirectory)
        store.segmentMaxBytes = segmentMaxBytes
        store.segmentMaxAgeSeconds = segmentMaxAgeSeconds
        store.durability = durability
        store.tiers.hotDays = Double(hotDays)
        store.tiers.warmDays = Double(warmDays)
        store.tiers.retainDays = retainDays.map(Double.init)
        store.tiers.restoreExpirySeconds = restoreExpirySeconds
        store.tiers.intervalSeconds = tierIntervalSeconds
        return store
    }

    /// The keys ``load(path:)`` accepts.
    public static let keys: [String] = [
        "data_dir", "socket", "log_level", "hot_days", "warm_days", "retain_days", "restore_expiry_seconds", "tier_interval_seconds", "segment_max_bytes",
        "segment_max_age_seconds", "durability", "max_frame_bytes", "max_event_bytes", "max_batch_events",
        "socket_mode", "roles", "max_pipelined_requests", "idle_timeout_seconds", "stall_timeout_seconds",
        "max_connections", "query_threads",
    ]

    /// Reads a configuration file (JSON); nil gives the defaults.
    ///
    /// Keys not in the file keep their defaults. Throws ``ConfigurationError`` naming the key
    /// for an unknown key, a wrong type or a value out of range, and with an empty key when the
    /// file cannot be read or is not a JSON object.
    public static func load(path: String?) throws(ConfigurationError) -> DaemonConfiguration {
        var configuration = DaemonConfiguration()
        guard let path else { return configuration }
        let bytes = try readFile(path)
        let root: ConfigValue
        do {
            root = try bytes.withUnsafeBufferPointer { (buffer) throws(JSONSyntaxError) -> ConfigValue in
                try ConfigValue.parse(buffer)
            }
        } catch {
            throw ConfigurationError(key: "", "\(path) is not valid JSON: \(error)")
        }
        guard case .object(let members) = root else {
            throw ConfigurationError(key: "", "\(path) must hold a JSON object")
        }
        try configuration.apply(members)
        try configuration.validate()
        return configuration
    }

    /// Applies the members of a configuration object on top of the current values.
    mutating func apply(_ members: [(String, ConfigValue)]) throws(ConfigurationError) {
        var seen: Set<String> = []
        for (key, value) in members {
            guard seen.insert(key).inserted else { throw ConfigurationError(key: key, "appears more than once") }
            switch key {
            case "data_dir": dataDirectory = try value.string(key, nonEmpty: true)
            case "socket": socketPath = try value.string(key, nonEmpty: true)
            case "log_level":
                let name = try value.string(key)
                guard let level = Logger.Level(rawValue: name) else {
                    throw ConfigurationError(key: key, "must be one of trace, debug, info, notice, warning, error, critical")
                }
                logLevel = level
            case "hot_days": hotDays = try value.int(key, min: 0)
            case "warm_days": warmDays = try value.int(key, min: 0)
            case "retain_days": retainDays = value.isNull ? nil : try value.int(key, min: 0)
            case "restore_expiry_seconds": restoreExpirySeconds = try value.int(key, min: 1)
            case "tier_interval_seconds": tierIntervalSeconds = try value.int(key, min: 0)
            case "segment_max_bytes": segmentMaxBytes = try value.int(key, min: 4096, max: 2 << 30)
            case "segment_max_age_seconds": segmentMaxAgeSeconds = try value.int(key, min: 1)
            case "durability":
                let name = try value.string(key)
                guard let mode = Durability(rawValue: name) else { throw ConfigurationError(key: key, "must be \"fsync\" or \"relaxed\"") }
                durability = mode
            case "max_frame_bytes": maxFrameBytes = try value.int(key, min: 1024, max: Int(UInt32.max))
            case "max_event_bytes": maxEventBytes = try value.int(key, min: 256, max: 3 << 20)
            case "max_batch_events": maxBatchEvents = try value.int(key, min: 1)
            case "socket_mode":
                let text = try value.string(key)
                guard !text.isEmpty, text.count <= 4, let mode = UInt32(text, radix: 8), mode <= 0o777 else {
                    throw ConfigurationError(key: key, "must be an octal permission string like \"0660\"")
                }
                socketMode = mode
            case "roles": roles = try RoleAssignments.parse(value, key: key)
            case "max_pipelined_requests": maxPipelinedRequests = try value.int(key, min: 1, max: 1024)
            case "idle_timeout_seconds": idleTimeoutSeconds = try value.int(key, min: 1)
            case "stall_timeout_seconds": stallTimeoutSeconds = try value.int(key, min: 1)
            case "max_connections": maxConnections = try value.int(key, min: 1)
            case "query_threads": queryThreads = try value.int(key, min: 1, max: 64)
            default:
                throw ConfigurationError(key: key, "unknown key (known keys: \(Self.keys.joined(separator: ", ")))")
            }
        }
    }

    /// Checks values that depend on each other or were set in code.
    public func validate() throws(ConfigurationError) {
        if warmDays < hotDays { throw ConfigurationError(key: "warm_days", "must be at least hot_days (\(hotDays))") }
        if let retainDays, retainDays < warmDays {
            throw ConfigurationError(key: "retain_days", "must be at least warm_days (\(warmDays))")
        }
        if maxEventBytes > maxFrameBytes {
            throw ConfigurationError(key: "max_event_bytes", "must not exceed max_frame_bytes (\(maxFrameBytes))")
        }
        if maxEventBytes < 256 || maxEventBytes > 3 << 20 {
            throw ConfigurationError(key: "max_event_bytes", "must be between 256 and 3145728")
        }
        if maxFrameBytes < 1024 || maxFrameBytes > Int(UInt32.max) {
            throw ConfigurationError(key: "max_frame_bytes", "must be between 1024 and 4294967295")
        }
        if maxBatchEvents < 1 { throw ConfigurationError(key: "max_batch_events", "must be at least 1") }
        if socketMode > 0o777 { throw ConfigurationError(key: "socket_mode", "must be at most 0777") }
        if maxPipelinedRequests < 1 { throw ConfigurationError(key: "max_pipelined_requests", "must be at least 1") }
        if dataDirectory.isEmpty { throw ConfigurationError(key: "data_dir", "must not be empty") }
        if socketPath.isEmpty { throw ConfigurationError(key: "socket", "must not be empty") }
        if socketPath.utf8.count > 107 {
            throw ConfigurationError(key: "socket", "path is longer than the 107 bytes a Unix socket address holds")
        }
    }

    private static func readFile(_ path: String) throws(ConfigurationError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ConfigurationError(key: "", "cannot read \(path): \(String(cString: strerror(errno)))") }
        defer { _ = Glibc.close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ConfigurationError(key: "", "cannot read \(path): \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            out.append(contentsOf: chunk[0..<n])
            if out.count > 16 << 20 { throw ConfigurationError(key: "", "\(path) is larger than 16 MiB") }
        }
        return out
    }
}

/// A decoded JSON value of a configuration file.
indirect enum ConfigValue {
    case null
    case bool(Bool)
    /// A number, as written.
    case number(String)
    case string(String)
    case array([ConfigValue])
    case object([(String, ConfigValue)])

    static func parse(_ buffer: UnsafeBufferPointer<UInt8>) throws(JSONSyntaxError) -> ConfigValue {
        let span = try JSONScanner.validate(buffer)
        return try build(span, buffer)
    }

    private static func build(_ span: JSONSpan, _ buffer: UnsafeBufferPointer<UInt8>) throws(JSONSyntaxError) -> ConfigValue {
        switch span.kind {
        case .null: return .null
        case .bool: return .bool(buffer[span.range.lowerBound] == UInt8(ascii: "t"))
        case .number: return .number(String(decoding: buffer[span.range], as: UTF8.self))
        case .string: return .string(JSONScanner.decodeString(span, in: buffer))
        case .array:
            var out: [ConfigValue] = []
            for element in try JSONScanner.elements(of: span, in: buffer) { out.append(try build(element, buffer)) }
            return .array(out)
        case .object:
            var out: [(String, ConfigValue)] = []
            for member in try JSONScanner.members(of: span, in: buffer) {
                out.append((JSONScanner.decodeString(member.key, in: buffer), try build(member.value, buffer)))
            }
            return .object(out)
        }
    }

    var isNull: Bool { if case .null = self { return true } else { return false } }

    var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "a list"
        case .object: "an object"
        }
    }

    func string(_ key: String, nonEmpty: Bool = false) throws(ConfigurationError) -> String {
        guard case .string(let value) = self else { throw ConfigurationError(key: key, "must be a string, not \(typeName)") }
        if nonEmpty, value.isEmpty { throw ConfigurationError(key: key, "must not be empty") }
        return value
    }

    func int(_ key: String, min: Int, max: Int = Int.max) throws(ConfigurationError) -> Int {
        guard case .number(let text) = self else { throw ConfigurationError(key: key, "must be an integer, not \(typeName)") }
        guard let value = Int(text) else { throw ConfigurationError(key: key, "must be an integer, not \(text)") }
        guard value >= min, value <= max else {
            throw ConfigurationError(key: key, max == Int.max ? "must be at least \(min)" : "must be between \(min) and \(max)")
        }
        return value
    }
}
