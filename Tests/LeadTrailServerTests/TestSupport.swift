import Foundation
import LeadTrailClient
import LeadTrailEvents
@testable import LeadTrailStorage
import LeadTrailWire
import Logging
import NIOCore
@testable import LeadTrailServer

/// A short temporary directory (socket paths must stay under 108 bytes), removed on deinit.
final class TemporaryDirectory: @unchecked Sendable {
    let path: String

    init() {
        var template = Array("/tmp/lt-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buffer -> String? in
            guard let base = buffer.baseAddress, mkdtemp(base) != nil else { return nil }
            return String(cString: base)
        }
        path = made ?? ("/tmp/lt-" + UUID().uuidString.prefix(8))
        if made == nil { try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }
}

let quietLogger: Logger = {
    var logger = Logger(label: "leadtrail.test", factory: { _ in SwiftLogNoOpLogHandler() })
    logger.logLevel = .critical
    return logger
}()

/// A daemon running in this process on a temporary socket and data directory.
final class TestDaemon: @unchecked Sendable {
    let directory: TemporaryDirectory
    let configuration: DaemonConfiguration
    let daemon: RunningDaemon
    /// The real store, when the daemon runs over one.
    let store: EventStore?

    var socketPath: String { configuration.socketPath }
    var dataDirectory: String { configuration.dataDirectory }

    private init(directory: TemporaryDirectory, configuration: DaemonConfiguration, daemon: RunningDaemon, store: EventStore?) {
        self.store = store
        self.directory = directory
        self.configuration = configuration
        self.daemon = daemon
    }

    static func configuration(in directory: TemporaryDirectory, _ configure: (inout DaemonConfiguration) -> Void = { _ in }) -> DaemonConfiguration {
        var configuration = DaemonConfiguration()
        configuration.dataDirectory = directory.path + "/data"
        configuration.socketPath = directory.path + "/d.sock"
        configure(&configuration)
        return configuration
    }

    /// Starts a daemon over the real store; `peer` overrides the peer credentials (to test roles).
    static func start(
        peer: PeerCredentials? = nil,
        backend: (any StoreBackend)? = nil,
        logger: Logger = quietLogger,
        _ configure: (inout DaemonConfiguration) -> Void = { _ in }
    ) async throws -> TestDaemon {
        let directory = TemporaryDirectory()
        let configuration = Self.configuration(in: directory, configure)
        let store = try backend ?? EventStoreBackend.open(configuration, logger: quietLogger)
        let credentials: (@Sendable (Channel) -> EventLoopFuture<PeerCredentials>)? = peer.map { peer in
            { @Sendable channel in channel.eventLoop.makeSucceededFuture(peer) }
        }
        let daemon = try await Daemon.start(configuration, backend: store, logger: logger, credentials: credentials)
        return TestDaemon(directory: directory, configuration: configuration, daemon: daemon, store: (store as? EventStoreBackend)?.store)
    }

    func connect(timeout: Double = 20) throws -> LeadTrailConnection {
        try LeadTrailConnection(socketPath: socketPath, timeoutSeconds: timeout)
    }

    func stop() async {
        await daemon.shutdown()
    }
}

/// A log handler that keeps every message with its metadata, for tests of what the daemon logs.
final class CapturedLog: @unchecked Sendable {
    struct Entry {
        var level: Logger.Level
        var message: String
        var metadata: Logger.Metadata
    }

    private let lock = NSLock()
    private var _entries: [Entry] = []
    var entries: [Entry] { lock.withLock { _entries } }

    /// A logger at `level` whose messages land here.
    func logger(level: Logger.Level = .debug) -> Logger {
        var logger = Logger(label: "leadtrail.test") { _ in Handler(log: self) }
        logger.logLevel = level
        return logger
    }

    private struct Handler: LogHandler {
        let log: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            var all = metadata
            if let extra = event.metadata { all.merge(extra) { _, new in new } }
            log.lock.withLock { log._entries.append(Entry(level: event.level, message: "\(event.message)", metadata: all)) }
        }
    }
}

/// Builds event JSON for tests.
func eventJSON(type: String = "source.submitted", lead: String, id: String? = nil, timestamp: String? = "2024-01-15T14:30:45.234Z", extra: String = "") -> String {
    var fields = ["\"type\":\"\(type)\"", "\"lead_id\":\"\(lead)\""]
    if let id { fields.append("\"event_id\":\"\(id)\"") }
    if let timestamp { fields.append("\"timestamp\":\"\(timestamp)\"") }
    if !extra.isEmpty { fields.append(extra) }
    return "{" + fields.joined(separator: ",") + "}"
}

/// An append request frame holding `events` (JSON texts) verbatim.
func appendFrame(_ events: [String], id: String? = nil) -> [UInt8] {
    var text = "{\"op\":\"append\""
    if let id { text += ",\"id\":\(id)" }
    text += ",\"events\":[" + events.joined(separator: ",") + "]}"
    return Array(text.utf8)
}

func errorCode(_ response: [String: Any]) -> String? {
    (response["error"] as? [String: Any])?["code"] as? String
}

func int(_ value: Any?) -> Int? {
    if let n = value as? Int { return n }
    if let n = value as? NSNumber { return n.intValue }
    return nil
}

/// A backend whose every call fails with a given storage error (to test error mapping).
final class FailingBackend: StoreBackend, @unchecked Sendable {
    let error: StoreError
    init(_ error: StoreError) { self.error = error }
    func append(_ batch: PreparedBatch, completion: @escaping @Sendable (Result<[AppendOutcome], StoreError>) -> Void) {
        completion(.failure(error))
    }
    func event(withID id: String) throws(StoreError) -> StoredEvent? { throw error }
    func timeline(leadID: String, limit: Int) throws(StoreError) -> (events: [StoredEvent], truncated: Bool) { throw error }
    func scan(_ request: ScanRequest, visit: (RecordView) throws -> Bool) throws -> (lastSeq: UInt64, returned: Int) { throw error }
    var lastSeq: UInt64 { 0 }
    var coldOnlyBefore: Int64? { nil }
    func stats() -> StoreStats {
        let tier = StoreStats.Tier()
        return StoreStats(events: 0, lastSeq: 0, durability: .fsync, hot: tier, warm: tier, cold: tier, restored: tier, activeSegmentID: 0,
                          corruptSegments: [], quarantinedFiles: [], startupMilliseconds: 0, appendBatches: 0, syncs: 0)
    }
    func rotate() throws(StoreError) -> SealedSegment? { throw error }
    func tier() throws(StoreError) -> TierReport { throw error }
    func restore(_ request: RestoreRequest) throws(StoreError) -> RestoreReport { throw error }
    func verify() -> VerifyReport { VerifyReport(segments: 0, records: 0, corrupt: [], warnings: []) }
    func close() {}
}

/// Runs blocking work on its own thread, so it never holds one of the few cooperative threads.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            do {
                continuation.resume(returning: try body())
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }
}

/// Hands a non-Sendable value to exactly one other thread.
struct UnsafeSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
