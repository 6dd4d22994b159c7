#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Test-only crash injection: `LEADTRAIL_CRASHPOINT=name[:n]` makes the process
/// exit abruptly (`_exit(77)`, no cleanup, like `kill -9`) the n-th time (default
/// first) it reaches the named step. Unset, each check is one load and compare.
///
/// The points, in the order an append and a seal reach them, are listed in
/// ``CrashPoint/all``; the reliability tests run every one.
public enum CrashPoint: String, CaseIterable, Sendable {
    /// Group commit: the batch bytes are written, not yet synced.
    case afterWriteBeforeSync = "append.after-write"
    /// Group commit: synced, not yet acknowledged.
    case afterSyncBeforeAck = "append.after-sync"
    /// Sealing: footer written, not yet synced.
    case sealAfterFooterWrite = "seal.after-footer-write"
    /// Sealing: footer synced, `.open` not yet renamed to `.seg`.
    case sealAfterFooterSync = "seal.after-footer-sync"
    /// Sealing: renamed, directory not yet synced.
    case sealAfterRename = "seal.after-rename"
    /// New segment or spare segment: file created, header not yet written (directory not yet synced).
    case createAfterOpen = "create.after-open"
    /// New segment: header written and synced, directory not yet synced; or, taken from the spare,
    /// header written and not yet synced (the next group's sync makes it durable).
    case createAfterHeader = "create.after-header"
    /// Checkpoint: temporary file written and synced, not yet renamed.
    case checkpointBeforeRename = "checkpoint.before-rename"
    /// Warm move: warm file written and synced under its temporary name, not yet renamed.
    case warmBeforeRename = "warm.before-rename"
    /// Warm move: warm file in place, hot source not yet deleted.
    case warmBeforeSourceDelete = "warm.before-source-delete"
    /// Cold move: gzip member appended and synced, manifest not yet written.
    case coldAfterMember = "cold.after-member"
    /// Cold move: manifest written under its temporary name, not yet renamed.
    case coldBeforeManifestRename = "cold.before-manifest-rename"
    /// Cold move: manifest in place, warm source not yet deleted.
    case coldBeforeSourceDelete = "cold.before-source-delete"
    /// Restore: restored file written under its temporary name, not yet renamed.
    case restoreBeforeRename = "restore.before-rename"

    public static var all: [CrashPoint] { allCases }

    struct Armed {
        var point: String
        var remaining: Int
    }

    nonisolated(unsafe) static var armed: Armed? = {
        guard let value = ProcessInfo.processInfo.environment["LEADTRAIL_CRASHPOINT"], !value.isEmpty else { return nil }
        let parts = value.split(separator: ":")
        return Armed(point: String(parts[0]), remaining: parts.count > 1 ? Int(parts[1]) ?? 1 : 1)
    }()

    static let lock = ConditionLock()

    /// Exits the process when this point is armed and its count is reached.
    @inline(__always)
    func reached() {
        guard CrashPoint.armed != nil else { return }
        CrashPoint.lock.withLock {
            guard var armed = CrashPoint.armed, armed.point == rawValue else { return }
            armed.remaining -= 1
            CrashPoint.armed = armed
            if armed.remaining <= 0 {
                let message = "leadtrail: crash point \(rawValue) reached, exiting\n"
                _ = message.withCString { write(2, $0, strlen($0)) }
                _exit(77)
            }
        }
    }
}
