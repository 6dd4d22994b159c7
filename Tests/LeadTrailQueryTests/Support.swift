import Foundation
import LeadTrailEvents
@testable import LeadTrailStorage

extension EventStore {
    /// Waits (up to 10 s) until the sealer has sealed every rolled segment: it runs in the background (below the
    /// append path's priority), so a busy machine can still be renaming one when a test copies the directory.
    func waitForSeals() {
        for _ in 0..<1000 where !sealerSignal.withLock({ sealJobs.isEmpty }) { usleep(10_000) }
    }
}

/// Real file operations whose syncs return at once: the property test checks logic, not durability,
/// and thousands of `fdatasync`s would only cost time.
struct NoSyncFileOperations: FileOperations {
    let base = PosixFileOperations()
    /// When given, counts the bytes `pread` returns (tests of how much a scan reads).
    var bytesRead: ByteCounter? = nil
    func open(_ path: String, flags: Int32, mode: mode_t) throws(StoreError) -> Int32 { try base.open(path, flags: flags, mode: mode) }
    func close(_ fd: Int32) { base.close(fd) }
    func pread(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(StoreError) -> Int {
        let n = try base.pread(fd, into: buffer, at: offset)
        bytesRead?.add(n)
        return n
    }
    func pwrite(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, at offset: Int) throws(StoreError) { try base.pwrite(fd, buffer, at: offset) }
    func fdatasync(_ fd: Int32) throws(StoreError) {}
    func fsync(_ fd: Int32) throws(StoreError) {}
    func ftruncate(_ fd: Int32, length: Int) throws(StoreError) { try base.ftruncate(fd, length: length) }
    func fileSize(_ fd: Int32) throws(StoreError) -> Int { try base.fileSize(fd) }
    func rename(_ from: String, _ to: String) throws(StoreError) { try base.rename(from, to) }
    func unlink(_ path: String) throws(StoreError) { try base.unlink(path) }
    func syncDirectory(_ path: String) throws(StoreError) {}
}

/// A running total that threads may add to.
final class ByteCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var total = 0
    var value: Int { lock.withLock { total } }
    func add(_ n: Int) { lock.withLock { total += n } }
}

/// Prepares an event from JSON text.
func prepared(_ json: String, now: Int64 = 1_700_000_000_000, id: String = "evt_assigned") throws -> PreparedEvent {
    try Array(json.utf8).withUnsafeBufferPointer { try EventPreparer().prepare($0, now: now, newEventID: { id }) }
}

/// Writes `value` as a JSON string literal, escaping a random share of its characters as \u sequences.
func jsonString<R: RandomNumberGenerator>(_ value: String, escapeShare: Int = 4, using rng: inout R) -> String {
    func hex4(_ v: UInt32) -> String {
        let h = String(v, radix: 16)
        return String(repeating: "0", count: 4 - h.count) + h
    }
    var out = "\""
    for scalar in value.unicodeScalars {
        let escape = escapeShare > 0 && Int.random(in: 0..<escapeShare, using: &rng) == 0
        switch scalar {
        case "\"": out += escape ? "\\u0022" : "\\\""
        case "\\": out += escape ? "\\u005C" : "\\\\"
        case "/" where escape: out += "\\/"
        default:
            if scalar.value < 0x20 {
                out += "\\u" + hex4(scalar.value)
            } else if !escape {
                out.unicodeScalars.append(scalar)
            } else if scalar.value < 0x10000 {
                out += "\\u" + hex4(scalar.value)
            } else {
                let v = scalar.value - 0x10000
                out += "\\u" + hex4(0xD800 + (v >> 10)) + "\\u" + hex4(0xDC00 + (v & 0x3FF))
            }
        }
    }
    return out + "\""
}

/// Like ``NoSyncFileOperations``, but a write to, or the creation of, a segment file can be made to fail
/// once with ENOSPC (a full disk), after writing part of the bytes.
final class DiskFullOnDemand: FileOperations, @unchecked Sendable {
    private let base = NoSyncFileOperations()
    private let lock = NSLock()
    private var paths: [Int32: String] = [:]
    private var failWrite = false
    private var failCreate = false

    func armWriteFailure() { lock.withLock { failWrite = true } }
    func armCreateFailure() { lock.withLock { failCreate = true } }
    func disarm() { lock.withLock { failWrite = false; failCreate = false } }

    private static func isSegment(_ path: String) -> Bool { path.hasSuffix(".open") || path.hasSuffix(".seg") }
    private static let diskFull = StoreError(.unavailable, "write: No space left on device (disk full)")

    func open(_ path: String, flags: Int32, mode: mode_t) throws(StoreError) -> Int32 {
        if flags & O_CREAT != 0, Self.isSegment(path) {
            let fail: Bool = lock.withLock { defer { failCreate = false }; return failCreate }
            if fail { throw Self.diskFull }
        }
        let fd = try base.open(path, flags: flags, mode: mode)
        lock.withLock { paths[fd] = path }
        return fd
    }
    func close(_ fd: Int32) { lock.withLock { paths[fd] = nil }; base.close(fd) }
    func pread(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(StoreError) -> Int { try base.pread(fd, into: buffer, at: offset) }
    func pwrite(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, at offset: Int) throws(StoreError) {
        let fail: Bool = lock.withLock {
            guard let path = paths[fd], Self.isSegment(path), failWrite else { return false }
            failWrite = false
            return true
        }
        if fail {
            if buffer.count > 1 { try base.pwrite(fd, UnsafeRawBufferPointer(rebasing: buffer[0..<(buffer.count / 2)]), at: offset) }
            throw Self.diskFull
        }
        try base.pwrite(fd, buffer, at: offset)
    }
    func fdatasync(_ fd: Int32) throws(StoreError) {}
    func fsync(_ fd: Int32) throws(StoreError) {}
    func ftruncate(_ fd: Int32, length: Int) throws(StoreError) { try base.ftruncate(fd, length: length) }
    func fileSize(_ fd: Int32) throws(StoreError) -> Int { try base.fileSize(fd) }
    func rename(_ from: String, _ to: String) throws(StoreError) { try base.rename(from, to) }
    func unlink(_ path: String) throws(StoreError) { try base.unlink(path) }
    func syncDirectory(_ path: String) throws(StoreError) {}
}
