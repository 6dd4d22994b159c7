import Foundation
import LeadTrailEvents
import Logging

/// The durable, checksummed, indexed event log of one data directory.
///
/// Guarantees:
/// - An append is acknowledged (its completion called with success) only after
///   its bytes are on stable storage (`fdatasync`), unless the store runs with
///   ``Durability/relaxed``. Batches waiting at the same moment share one write,
///   and groups written while a sync runs share the next sync (group commit).
/// - A batch is stored whole or not at all, also across a crash.
/// - `seq` starts at 1 and grows by one per stored event; an event id already
///   stored is not stored again (the caller gets the original seq).
/// - After a failed sync no append is ever acknowledged again (`unavailable`).
/// - Readers see only acknowledged events, and never bytes that fail their CRC.
/// - One process at a time: a second `open` of the same directory fails with `.locked`.
public final class EventStore: @unchecked Sendable {
    public let configuration: StoreConfiguration
    let io: FileOperations
    let logger: Logger
    let hotDirectory: String
    let quarantineDirectory: String
    /// Segment files replaced by tiering, archiving or a release, and expired archives' data, deleted a piece at a
    /// time (``Trash``).
    let trash: Trash
    private let lockFD: Int32

    // MARK: State shared with readers (guarded by `stateLock`)
    let stateLock = ConditionLock()
    var segments: [Segment] = []
    var eventIDs = EventIDTable()
    var committedLastSeq: UInt64 = 0
    var damage: [CorruptionReport] = []
    var quarantined: [String] = []
    var fatalError_: StoreError? = nil
    var observers: [@Sendable (UInt64) -> Void] = []
    var counters = (batches: UInt64(0), syncs: UInt64(0), rotationsWaitedForSealer: UInt64(0))
    var syncTimes = DurationRing()
    var writeTimes = DurationRing()
    var startupMilliseconds = 0

    /// One tiering, restore or release at a time.
    let tierLock = ConditionLock()
    /// Serialises writing, moving and removing the type index files beside segments (``TypeIndexFile``).
    let typeIndexLock = ConditionLock()
    /// The decompressed warm blocks last used, over all warm files (bounded; see ``WarmBlockCache``).
    let warmBlocks = WarmBlockCache()
    /// What the cold archives hold (guarded by `stateLock`).
    var coldCatalog = ColdCatalog()

    // MARK: Writer queue (guarded by `queueLock`)
    let queueLock = ConditionLock()
    var pending: [WriterCommand] = []
    var pendingBytes = 0
    var stopping = false
    var writerFinished = false

    // MARK: Writer-thread state (touched by the writer thread only, after open)
    var nextSeq: UInt64 = 1
    /// Where the writer writes next in the active segment, and the segment's chain CRC up to there: ahead of
    /// `dataEnd` and `chainCRC` while written groups wait for their sync.
    var writeOffset = SegmentFormat.headerSize
    var writeChainCRC: UInt32 = 0
    /// The buffer the writer encodes each group into, kept between groups.
    var groupBuffer: [UInt8] = []
    var dirtySinceSync = false
    /// When the writer last committed a group, until the memory freed since is handed back (writer thread only).
    var lastGroupBeforeTrimMonotonicMs: Int64? = nil
    var lastSyncMonotonicMs: Int64 = 0

    // MARK: Checkpoints (written by the checkpointer thread, see Checkpointer.swift)
    /// The newest position known durable (guarded by `stateLock`; set by the writer after each sync).
    var durablePosition: Checkpoint? = nil
    /// Serialises checkpoint writes; guards `lastCheckpoint`.
    let checkpointWriteLock = ConditionLock()
    var lastCheckpoint: Checkpoint? = nil
    /// Wakes and stops the checkpointer (guards the two flags).
    let checkpointerSignal = ConditionLock()
    var checkpointerStopping = false
    var checkpointerFinished = true

    // MARK: Sync pipeline (see Syncer.swift; guarded by `pipelineLock`)
    let pipelineLock = ConditionLock()
    /// Groups written and not yet published, in write order.
    var writtenGroups: [WrittenGroup] = []
    /// How many of `writtenGroups`, from the first, the syncer has finished with (waiting for the publisher).
    var syncedGroups = 0
    var syncerStopping = false
    var syncerFinished = true
    var publisherFinished = true

    // MARK: Sealer (see Sealer.swift)
    /// Guards the seal queue and the sealer's flags.
    let sealerSignal = ConditionLock()
    var sealJobs: [SealJob] = []
    var sealerStopping = false
    var sealerFinished = true
    /// Guards `spareSegment`; held while a segment file is created, so two never take one id.
    let spareLock = ConditionLock()
    var spareSegment: SpareSegment? = nil

    enum WriterCommand {
        case append(PreparedBatch, @Sendable (Result<[AppendOutcome], StoreError>) -> Void)
        case rotate(@Sendable (Result<SealedSegment?, StoreError>) -> Void)

        /// An append's event bytes (what a group's size counts); nil for another command.
        var eventBytes: Int? {
            if case .append(let batch, _) = self { batch.jsonByteCount } else { nil }
        }
    }

    /// Opens (creating if needed) the store in `configuration.directory`, runs
    /// recovery, and starts the writer. Returns when the store is ready to serve.
    public static func open(
        _ configuration: StoreConfiguration,
        fileOperations: FileOperations = PosixFileOperations(),
        logger: Logger = Logger(label: "leadtrail.storage")
    ) throws(StoreError) -> EventStore {
        let started = monotonicMilliseconds()
        try validate(configuration)
        try makeDirectory(configuration.directory)
        let lockFD = try acquireLock(directory: configuration.directory)
        let store = EventStore(configuration: configuration, io: fileOperations, logger: logger, lockFD: lockFD)
        do throws(StoreError) {
            try makeDirectory(store.hotDirectory)
            try makeDirectory(store.quarantineDirectory)
            try makeDirectory(store.trash.directory)
            try store.recover()
            try store.trash.adoptLeftovers()
        } catch {
            store.closeFiles()
            throw error
        }
        store.startupMilliseconds = Int(monotonicMilliseconds() - started)
        store.startWriter()
        store.startSealer()
        store.startCheckpointer()
        store.startTiering()
        store.trash.start()
        logger.info(
            "store open",
            metadata: [
                "data_dir": "\(configuration.directory)", "events": "\(store.eventCount)",
                "last_seq": "\(store.lastSeq)", "segments": "\(store.segments.count)",
                "startup_ms": "\(store.startupMilliseconds)", "durability": "\(configuration.durability.rawValue)",
            ])
        return store
    }

    init(configuration: StoreConfiguration, io: FileOperations, logger: Logger, lockFD: Int32) {
        self.configuration = configuration
        self.io = io
        self.logger = logger
        self.lockFD = lockFD
        self.hotDirectory = configuration.directory + "/hot"
        self.quarantineDirectory = configuration.directory + "/quarantine"
        self.trash = Trash(directory: configuration.directory + "/trash", io: io, logger: logger)
    }

    static func validate(_ configuration: StoreConfiguration) throws(StoreError) {
        guard configuration.segmentMaxBytes >= 4096, configuration.segmentMaxBytes <= 2 << 30 else {
            throw StoreError(.invalidArgument, "segment_max_bytes must be between 4096 and 2147483648")
        }
        guard configuration.segmentMaxAgeSeconds >= 1 else {
            throw StoreError(.invalidArgument, "segment_max_age_seconds must be at least 1")
        }
        guard configuration.sparseIndexInterval >= 64 else {
            throw StoreError(.invalidArgument, "sparse index interval must be at least 64 bytes")
        }
    }

    static func acquireLock(directory: String) throws(StoreError) -> Int32 {
        let path = directory + "/LOCK"
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw PosixFileOperations.failure("open", path) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let holder = (try? PosixFileOperations().read(fd, count: 32, at: 0)).map { String(decoding: $0, as: UTF8.self) } ?? ""
            Glibc.close(fd)
            let pid = holder.trimmingCharacters(in: .whitespacesAndNewlines)
            throw StoreError(
                .locked,
                "data directory \(directory) is in use by another leadtrail process\(pid.isEmpty ? "" : " (pid \(pid))")")
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = Glibc.ftruncate(fd, 0)
        _ = pid.withUnsafeBytes { Glibc.pwrite(fd, $0.baseAddress, $0.count, 0) }
        return fd
    }

    // MARK: - Appends

    /// Appends a batch of validated events. `completion` runs on the writer thread
    /// once the batch is durable (or refused), with one outcome per event in batch
    /// order; it must not block.
    public func append(_ batch: PreparedBatch, completion: @escaping @Sendable (Result<[AppendOutcome], StoreError>) -> Void) {
        guard !batch.isEmpty else {
            completion(.success([]))
            return
        }
        let refused: StoreError? = queueLock.withLock {
            if stopping { return StoreError(.unavailable, "the store is shutting down") }
            pending.append(.append(batch, completion))
            pendingBytes += batch.jsonByteCount
            queueLock.signalAll()
            return nil
        }
        if let refused { completion(.failure(refused)) }
    }

    /// Appends events prepared one by one; like ``append(_:completion:)-(PreparedBatch,_)``, with each result
    /// carrying its event id.
    public func append(_ events: [PreparedEvent], completion: @escaping @Sendable (Result<[AppendResult], StoreError>) -> Void) {
        let batch = PreparedBatch(events)
        append(batch) { result in
            completion(result.map { AppendResult.results(of: batch, $0) })
        }
    }

    /// Appends a batch and waits for it to be durable.
    public func append(_ events: [PreparedEvent]) async throws(StoreError) -> [AppendResult] {
        let result: Result<[AppendResult], StoreError> = await withCheckedContinuation { continuation in
            append(events) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    /// Appends a batch and blocks the calling thread until it is durable (tests, tools).
    public func appendAndWait(_ events: [PreparedEvent]) throws(StoreError) -> [AppendResult] {
        let batch = PreparedBatch(events)
        return AppendResult.results(of: batch, try appendAndWait(batch))
    }

    /// Appends a batch and blocks the calling thread until it is durable (tests, tools).
    public func appendAndWait(_ batch: PreparedBatch) throws(StoreError) -> [AppendOutcome] {
        let done = ConditionLock()
        nonisolated(unsafe) var outcome: Result<[AppendOutcome], StoreError>? = nil
        append(batch) { result in
            done.withLock {
                outcome = result
                done.signalAll()
            }
        }
        return try done.withLock {
            while true {
                if let outcome { return outcome }
                done.wait(seconds: 1)
            }
        }.get()
    }

    /// Seals the active segment now and starts a new one. Returns nil when the active segment is empty.
    public func rotate() throws(StoreError) -> SealedSegment? {
        let done = ConditionLock()
        nonisolated(unsafe) var outcome: Result<SealedSegment?, StoreError>? = nil
        let refused: StoreError? = queueLock.withLock {
            if stopping { return StoreError(.unavailable, "the store is shutting down") }
            pending.append(.rotate({ result in
                done.withLock {
                    outcome = result
                    done.signalAll()
                }
            }))
            queueLock.signalAll()
            return nil
        }
        if let refused { throw refused }
        return try done.withLock {
            while true {
                if let outcome { return outcome }
                done.wait(seconds: 1)
            }
        }.get()
    }

    /// Registers a function called (on the writer thread) with the new last seq after every durable commit.
    public func addCommitObserver(_ body: @escaping @Sendable (UInt64) -> Void) {
        stateLock.withLock { observers.append(body) }
    }

    /// The highest acknowledged seq (0 when empty).
    public var lastSeq: UInt64 { stateLock.withLock { committedLastSeq } }

    var eventCount: UInt64 { stateLock.withLock { segments.reduce(0) { $0 + $1.count } } }

    /// What the engine reports about itself.
    public func stats() -> StoreStats {
        let sealsPending = sealerSignal.withLock { sealJobs.count }
        let trashed = trash.contents()
        return stateLock.withLock {
            var hot = StoreStats.Tier(), warm = StoreStats.Tier(), restored = StoreStats.Tier(), cold = StoreStats.Tier()
            for segment in segments {
                let onDisk = (segment.isSealed ? segment.fileSize : segment.dataEnd) + segment.typeIndexBytes
                switch segment.tier {
                case .hot: hot.add(events: segment.count, bytes: onDisk, rawBytes: onDisk, minTs: segment.minTs, maxTs: segment.maxTs)
                case .warm: warm.add(events: segment.count, bytes: onDisk, rawBytes: segment.rawFileSize, minTs: segment.minTs, maxTs: segment.maxTs)
                case .restored: restored.add(events: segment.count, bytes: onDisk, rawBytes: onDisk, minTs: segment.minTs, maxTs: segment.maxTs)
                }
            }
            for (_, member) in coldCatalog.members {
                cold.add(events: member.events, bytes: member.length, rawBytes: member.rawLength, minTs: member.minTs, maxTs: member.maxTs)
            }
            let restoredIDs = Set(segments.filter { $0.tier == .restored }.map(\.id))
            let events = hot.events + warm.events + cold.events
                - coldCatalog.members.filter { restoredIDs.contains($0.member.segmentID) }.reduce(0) { $0 + $1.member.events } + restored.events
            return StoreStats(
                events: events, lastSeq: committedLastSeq, durability: configuration.durability,
                hot: hot, warm: warm, cold: cold, restored: restored,
                activeSegmentID: segments.last?.id ?? 0,
                corruptSegments: damage.map(\.description) + segments.flatMap { $0.damage.map(\.description) },
                quarantinedFiles: quarantined, startupMilliseconds: startupMilliseconds,
                appendBatches: counters.batches, syncs: counters.syncs, recentSyncs: syncTimes.summary,
                recentWrites: writeTimes.summary, sealsPending: sealsPending,
                rotationsWaitedForSealer: counters.rotationsWaitedForSealer, trashFiles: trashed.files, trashBytes: trashed.bytes)
        }
    }

    /// Stops accepting appends, finishes and acknowledges the queued ones, syncs,
    /// writes a checkpoint and releases the directory. Safe to call twice.
    public func close() {
        let alreadyStopping: Bool = queueLock.withLock {
            let was = stopping
            stopping = true
            queueLock.signalAll()
            return was
        }
        queueLock.withLock {
            while !writerFinished { queueLock.wait(seconds: 0.1) }
        }
        stopSealer()
        stopCheckpointer()
        trash.stop()
        if !alreadyStopping {
            closeFiles()
            logger.info("store closed", metadata: ["last_seq": "\(lastSeq)"])
        }
    }

    func closeFiles() {
        // Segment files close when the last reader lets go of them.
        stateLock.withLock { segments = [] }
        flock(lockFD, LOCK_UN)
        Glibc.close(lockFD)
    }

    deinit {
        // `close()` is the orderly path; this only guards against leaks in tests.
    }
}
