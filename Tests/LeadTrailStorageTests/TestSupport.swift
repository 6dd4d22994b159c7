import Foundation
import LeadTrailEvents
import Testing
@testable import LeadTrailStorage

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
    static func openForTest(
        _ directory: String, segmentMaxBytes: Int = 128 << 20, durability: Durability = .fsync,
        fileOperations: FileOperations = PosixFileOperations()
    ) throws -> EventStore {
        var configuration = StoreConfiguration(directory: directory)
        configuration.segmentMaxBytes = segmentMaxBytes
        configuration.durability = durability
        return try EventStore.open(configuration, fileOperations: fileOperations)
    }
}

extension EventStore {
    /// Waits (up to 10 s) until the sealer has made its spare segment, so a test's one-shot fault is not taken by it.
    func waitForSpareSegment() {
        for _ in 0..<1000 where !spareLock.withLock({ spareSegment != nil }) { usleep(10_000) }
    }

    /// Waits (up to 10 s) until the sealer has sealed every rolled segment (it runs in the background, and a
    /// busy machine can leave the last one unsealed when a test looks).
    func waitForSeals() {
        for _ in 0..<1000 where !sealerSignal.withLock({ sealJobs.isEmpty }) { usleep(10_000) }
    }
}

/// Plain file helpers for tests that damage or inspect data directories.
enum Files {
    static func read(_ path: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    static func write(_ bytes: [UInt8], to path: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    static func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

    static func list(_ directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
    }

    static func isDirectory(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
    }

    /// Copies a data directory (without its lock holder: the copy is never open).
    static func copyDirectory(_ from: String, to: String) throws {
        try? FileManager.default.removeItem(atPath: to)
        try FileManager.default.copyItem(atPath: from, toPath: to)
    }

    /// The files of a (closed) data directory, read into memory once, to be written out again many times:
    /// faster than copying the directory for every case of a sweep.
    struct Image {
        var files: [(path: String, bytes: [UInt8])]

        init(of directory: String) throws {
            files = []
            // Top-level files (the checkpoint) and the hot tier; the other tier folders are empty here.
            for name in list(directory) where name != "LOCK" && !isDirectory(directory + "/" + name) {
                files.append((name, try read(directory + "/" + name)))
            }
            for name in list(directory + "/hot") { files.append(("hot/" + name, try read(directory + "/hot/" + name))) }
        }

        /// Writes the files into `directory`, which must not exist yet.
        func write(to directory: String) throws {
            try FileManager.default.createDirectory(atPath: directory + "/hot", withIntermediateDirectories: true)
            for file in files {
                guard FileManager.default.createFile(atPath: directory + "/" + file.path, contents: Data(file.bytes)) else {
                    throw CocoaError(.fileWriteUnknown)
                }
            }
        }
    }

    static func truncate(_ path: String, to length: Int) throws {
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.truncate(atOffset: UInt64(length))
        try handle.close()
    }

    static func flipBit(_ path: String, byte: Int, bit: Int) throws {
        var bytes = try read(path)
        bytes[byte] ^= UInt8(1) << UInt8(bit)
        try write(bytes, to: path)
    }

    static func remove(_ path: String) throws { try FileManager.default.removeItem(atPath: path) }

    static func rename(_ from: String, _ to: String) throws { try FileManager.default.moveItem(atPath: from, toPath: to) }

    /// Turns a sealed segment back into an `.open` one whose seal never wrote its footer (its records only);
    /// returns the `.open` path.
    @discardableResult
    static func unseal(_ sealedPath: String) throws -> String {
        let bytes = try read(sealedPath)
        let dataEnd = try #require(RecordLayout.dataEnd(ofSealed: bytes))
        let openPath = String(sealedPath.dropLast(4)) + ".open"
        try write(Array(bytes[..<dataEnd]), to: openPath)
        try remove(sealedPath)
        return openPath
    }

    /// A file's size in bytes (-1 when it cannot be read).
    static func size(_ path: String) -> Int {
        (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? -1
    }

    /// The paths of a data directory's hot segment files, sealed and open, in id order.
    /// The hot segment files, without the empty spare segment the sealer keeps ready.
    static func segments(_ directory: String) -> [String] {
        list(directory + "/hot").filter { $0.hasSuffix(".seg") || $0.hasSuffix(".open") }.map { directory + "/hot/" + $0 }
            .filter { !$0.hasSuffix(".open") || ((try? FileManager.default.attributesOfItem(atPath: $0)[.size] as? Int) ?? 0) > 0 }
    }

    static func openSegment(_ directory: String) -> String? { segments(directory).first { $0.hasSuffix(".open") } }
    static func sealedSegments(_ directory: String) -> [String] { segments(directory).filter { $0.hasSuffix(".seg") } }
}

/// Where each record of a segment file lies, from parsing its bytes (not through the engine).
struct RecordLayout {
    var offset: Int
    var size: Int
    var seq: UInt64
    var isBatchEnd: Bool
    var body: [UInt8]
    var end: Int { offset + size }

    /// The records of a segment file's bytes, stopping at the first one that does not check out.
    static func parse(_ bytes: [UInt8]) -> [RecordLayout] {
        var records: [RecordLayout] = []
        var offset = SegmentFormat.headerSize
        bytes.withUnsafeBytes { all in
            while offset < all.count {
                let rest = UnsafeRawBufferPointer(rebasing: all[offset...])
                guard case .success(let pair?) = RecordReader.decode(rest, at: offset) else { break }
                let (header, total) = pair
                records.append(RecordLayout(
                    offset: offset, size: total, seq: header.seq, isBatchEnd: header.flags & SegmentFormat.flagBatchEnd != 0,
                    body: Array(bytes[(offset + SegmentFormat.recordHeaderSize)..<(offset + total)])))
                offset += total
            }
        }
        return records
    }

    /// The end of a sealed segment's records, from its trailer.
    static func dataEnd(ofSealed bytes: [UInt8]) -> Int? {
        bytes.withUnsafeBytes { b -> Int? in
            guard b.count >= SegmentFormat.trailerSize,
                  let trailer = SegmentTrailer.decode(UnsafeRawBufferPointer(rebasing: b[(b.count - SegmentFormat.trailerSize)...]))
            else { return nil }
            return Int(trailer.dataEnd)
        }
    }
}

/// File operations that can be told to fail, to test what the engine does on a full disk or a failed sync.
/// Everything else goes to the real POSIX calls.
final class FaultyFileOperations: FileOperations, @unchecked Sendable {
    private let base = PosixFileOperations()
    private let lock = NSLock()
    private var paths: [Int32: String] = [:]
    private var _writeFailures = 0
    private var _partialWrites = true
    private var _syncFailures = false
    private var _createFailures = 0
    private var _allWritesFail = false
    private var _writesSeen = 0
    private var _unmatchedCloses = 0
    /// When false, syncs return at once: for tests of recovery logic that simulate crashes by editing files,
    /// where thousands of real `fdatasync`s would only cost time.
    private let syncs: Bool

    /// When true, every `pwrite` is noted in ``writes``.
    private let recordsWrites: Bool

    init(syncs: Bool = true, recordsWrites: Bool = false) {
        self.syncs = syncs
        self.recordsWrites = recordsWrites
    }

    /// Real file operations without the syncs.
    static let withoutSyncs = FaultyFileOperations(syncs: false)

    /// The next `n` writes to segment files fail with ENOSPC (after writing part of their bytes when `partial`).
    func failSegmentWrites(_ n: Int, partial: Bool = true) {
        lock.withLock {
            _writeFailures = n
            _partialWrites = partial
        }
    }

    enum OneShot: Hashable { case fdatasync, rename, syncDirectory }
    private var oneShots: Set<OneShot> = []

    /// The next call of `operation` (only that one) fails with EIO.
    func failNext(_ operation: OneShot) { lock.withLock { _ = oneShots.insert(operation) } }

    private func takeOneShot(_ operation: OneShot) -> Bool { lock.withLock { oneShots.remove(operation) != nil } }

    /// Every `fdatasync` from now on fails with EIO.
    func failSyncs() { lock.withLock { _syncFailures = true } }

    /// The next `n` creations of segment files fail with ENOSPC.
    func failSegmentCreations(_ n: Int) { lock.withLock { _createFailures = n } }

    var segmentWrites: Int { lock.withLock { _writesSeen } }

    /// While on, every write and every file creation, of any file, fails with ENOSPC (a full disk for tier moves, manifests, checkpoints).
    func failAllWrites(_ on: Bool) { lock.withLock { _allWritesFail = on } }

    static let diskFull = { (what: String) in StoreError(.unavailable, "\(what): No space left on device (disk full)") }

    private func isSegment(_ path: String) -> Bool { path.hasSuffix(".open") || path.hasSuffix(".seg") }

    func open(_ path: String, flags: Int32, mode: mode_t) throws(StoreError) -> Int32 {
        if flags & O_CREAT != 0, lock.withLock({ _allWritesFail }), access(path, F_OK) != 0 { throw Self.diskFull("open \(path)") }
        if flags & O_CREAT != 0, isSegment(path) {
            let fail: Bool = lock.withLock {
                guard _createFailures > 0 else { return false }
                _createFailures -= 1
                return true
            }
            if fail { throw Self.diskFull("open \(path)") }
        }
        let fd = try base.open(path, flags: flags, mode: mode)
        lock.withLock { paths[fd] = path }
        return fd
    }

    func close(_ fd: Int32) {
        lock.withLock {
            if paths.removeValue(forKey: fd) == nil { _unmatchedCloses += 1 }
        }
        base.close(fd)
    }

    /// Closes of a descriptor these operations did not open, or had closed already. A second close of a
    /// number can close a file another thread has since opened under it, so this must stay 0.
    var unmatchedCloses: Int { lock.withLock { _unmatchedCloses } }

    func pread(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(StoreError) -> Int {
        let n = try base.pread(fd, into: buffer, at: offset)
        lock.withLock {
            _reads += 1
            guard let path = paths[fd] else { return }
            if isSegment(path) { _segmentBytesRead += n }
            if path.hasSuffix(".lz4s") { _warmBytesRead += n }
        }
        return n
    }

    /// A ``prefetch(_:offset:count:)`` hint: the file's name as opened, and how many `pread`s had been made before it.
    struct Prefetch {
        var file: String
        var offset: Int
        var count: Int
        var readsBefore: Int
    }
    private var _prefetches: [Prefetch] = []
    private var _reads = 0
    /// The hints given so far (passed on to the system too).
    var prefetches: [Prefetch] { lock.withLock { _prefetches } }
    func forgetPrefetches() { lock.withLock { _prefetches = [] } }

    func prefetch(_ fd: Int32, offset: Int, count: Int) {
        lock.withLock { _prefetches.append(Prefetch(file: paths[fd] ?? "?", offset: offset, count: count, readsBefore: _reads)) }
        base.prefetch(fd, offset: offset, count: count)
    }

    private var _segmentBytesRead = 0
    /// Bytes read from segment files so far.
    var segmentBytesRead: Int { lock.withLock { _segmentBytesRead } }
    private var _warmBytesRead = 0
    /// Bytes read from warm files so far (compressed blocks, footers).
    var warmBytesRead: Int { lock.withLock { _warmBytesRead } }

    /// One `pwrite`: the file's name as opened, where, and how many bytes.
    struct Write {
        var file: String
        var offset: Int
        var count: Int
    }
    private var _writes: [Write] = []
    /// Every write so far, of any file (when made with `recordsWrites`).
    var writes: [Write] { lock.withLock { _writes } }

    func pwrite(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, at offset: Int) throws(StoreError) {
        if recordsWrites { lock.withLock { _writes.append(Write(file: paths[fd] ?? "?", offset: offset, count: buffer.count)) } }
        if lock.withLock({ _allWritesFail }) { throw Self.diskFull("write") }
        let (fail, partial): (Bool, Bool) = lock.withLock {
            guard let path = paths[fd], isSegment(path) else { return (false, false) }
            _writesSeen += 1
            guard _writeFailures > 0 else { return (false, false) }
            _writeFailures -= 1
            return (true, _partialWrites)
        }
        if fail {
            if partial && buffer.count > 1 {
                try base.pwrite(fd, UnsafeRawBufferPointer(rebasing: buffer[0..<(buffer.count / 2)]), at: offset)
            }
            throw Self.diskFull("write")
        }
        try base.pwrite(fd, buffer, at: offset)
    }

    private let syncGate = ConditionLock()
    private var segmentSyncsHeld = false
    private var _segmentSyncsWaiting = 0
    /// From now until ``releaseSegmentSyncs()``, an `fdatasync` of a segment file waits before it starts.
    func holdSegmentSyncs() { syncGate.withLock { segmentSyncsHeld = true } }
    /// How many `fdatasync`s of segment files wait for ``releaseSegmentSyncs()`` now.
    var segmentSyncsWaiting: Int { syncGate.withLock { _segmentSyncsWaiting } }
    private var heldSyncsFail = false
    /// Lets the held syncs go; with `failing`, each of them then fails with EIO (and later ones do not).
    func releaseSegmentSyncs(failing: Bool = false) {
        syncGate.withLock {
            segmentSyncsHeld = false
            heldSyncsFail = failing
            syncGate.signalAll()
        }
    }

    func fdatasync(_ fd: Int32) throws(StoreError) {
        if let path = lock.withLock({ paths[fd] }), isSegment(path) {
            let fails: Bool = syncGate.withLock {
                guard segmentSyncsHeld else { return false }
                _segmentSyncsWaiting += 1
                while segmentSyncsHeld { syncGate.wait(seconds: 1) }
                _segmentSyncsWaiting -= 1
                return heldSyncsFail
            }
            if fails { throw StoreError(.io, "fdatasync: Input/output error") }
        }
        if lock.withLock({ _syncFailures }) || takeOneShot(.fdatasync) { throw StoreError(.io, "fdatasync: Input/output error") }
        lock.withLock { if let path = paths[fd], isSegment(path) { _segmentSyncs += 1 } }
        if syncs { try base.fdatasync(fd) }
    }

    private var _segmentSyncs = 0
    /// `fdatasync` calls on segment files so far.
    var segmentSyncs: Int { lock.withLock { _segmentSyncs } }

    func fsync(_ fd: Int32) throws(StoreError) {
        if lock.withLock({ _syncFailures }) { throw StoreError(.io, "fsync: Input/output error") }
        if syncs { try base.fsync(fd) }
    }

    func ftruncate(_ fd: Int32, length: Int) throws(StoreError) { try base.ftruncate(fd, length: length) }
    func fileSize(_ fd: Int32) throws(StoreError) -> Int { try base.fileSize(fd) }
    func rename(_ from: String, _ to: String) throws(StoreError) {
        if takeOneShot(.rename) { throw StoreError(.io, "rename: Input/output error") }
        if from.hasSuffix(".open") { renameGate.withLock { while renamesHeld { renameGate.wait(seconds: 1) } } }
        try base.rename(from, to)
    }

    private let renameGate = ConditionLock()
    private var renamesHeld = false
    /// From now until ``releaseSealRenames()``, a seal's rename of a `.open` segment to `.seg` waits: the sealer
    /// stops there, holding no lock of the store.
    func holdSealRenames() { renameGate.withLock { renamesHeld = true } }
    func releaseSealRenames() {
        renameGate.withLock {
            renamesHeld = false
            renameGate.signalAll()
        }
    }
    func unlink(_ path: String) throws(StoreError) { try base.unlink(path) }
    func syncDirectory(_ path: String) throws(StoreError) {
        if lock.withLock({ _syncFailures }) || takeOneShot(.syncDirectory) { throw StoreError(.io, "fsync: Input/output error") }
        if syncs { try base.syncDirectory(path) }
    }
}
