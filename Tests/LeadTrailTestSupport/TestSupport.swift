import Foundation
import LeadTrailCLIKit

// What several test targets share: a seeded generator, the long-tests switch and temporary directories.

/// The event generator's seeded generator (SplitMix64): the same seed gives the same sequence, so a failing
/// random test reproduces from its seed.
public typealias SplitMix64 = SeededRandom

public enum Environment {
    /// `LEADTRAIL_LONG_TESTS=1` runs the long forms of the random, crash, fuzz and soak tests.
    public static var longTests: Bool { ProcessInfo.processInfo.environment["LEADTRAIL_LONG_TESTS"] == "1" }
}

/// Whether `/dev/shm` is writable and has room (containers often give it only 64 MiB).
public func memoryFileSystemIsRoomy() -> Bool {
    var info = statvfs()
    guard access("/dev/shm", W_OK) == 0, statvfs("/dev/shm", &info) == 0 else { return false }
    return UInt64(info.f_bavail) * UInt64(info.f_frsize) >= 1 << 30
}

/// A fresh temporary directory, removed when the test lets go of it.
public final class TemporaryDirectory {
    public let path: String

    /// - Parameter inMemory: use `/dev/shm` when there is one: for tests that create and delete thousands of
    ///   files to test logic (not durability), where a disk file system spends its time allocating inodes.
    public init(inMemory: Bool = false) {
        let base = inMemory && memoryFileSystemIsRoomy() ? "/dev/shm/" : NSTemporaryDirectory()
        path = base + "leadtrail-test-" + UUID().uuidString
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }
}
