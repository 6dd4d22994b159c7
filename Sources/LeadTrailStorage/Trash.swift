import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Segment files the store no longer needs, deleted a piece at a time in the background.
///
/// Deleting a large file at once frees all of its extents together, and on a filesystem mounted with
/// `discard` each freed extent becomes a TRIM: ext4 sends them with the journal commit that the append
/// path's next `fdatasync` waits for, or, without a journal (the development machine's ext4 has none), as
/// the file is deleted, ahead of that `fdatasync` on the same disk. Either way the sync waits behind them
/// (a 262 MB file stalled a concurrent writer's sync by 18-38 ms on the development machine; cut down
/// 8 MiB at a time, 2.3-2.9 ms in four runs of five). So a segment that tiering, archiving or a
/// release replaced, and an expired cold archive's data, is renamed into `trash/`, and once no reader holds
/// its file any more it is cut
/// ``chunkBytes`` at a time, each cut synced on its own, and then unlinked, as RocksDB's DeleteScheduler does.
///
/// Guarantees: only files whose data is durable elsewhere (or no longer wanted) are put here; a file is
/// cut only after the last reader let go of it, so a read in flight never sees it shrink; what a crash
/// leaves in `trash/` is deleted after the next start. Nothing in `trash/` is ever read.
final class Trash: @unchecked Sendable {
    /// Bytes cut off a file per `ftruncate` (and sync).
    static let chunkBytes = 8 << 20
    /// The pause between two cuts, which leaves the disk to the append path in between.
    static let pauseSeconds = 0.005

    let directory: String
    private let io: FileOperations
    private let logger: Logger
    private let lock = ConditionLock()
    /// Files waiting to be deleted, each with the object whose last release lets it go (nil: right away).
    private var waiting: [(path: String, holder: Weak)] = []
    private var stopping = false
    private var finished = true
    private var serial = 0

    /// A weak reference to the object (a segment's file) that readers hold while they read.
    struct Weak {
        weak var object: AnyObject?
    }

    init(directory: String, io: FileOperations, logger: Logger) {
        self.directory = directory
        self.io = io
        self.logger = logger
    }

    /// Files in the trash now, waiting or being deleted.
    var count: Int { lock.withLock { waiting.count } }

    /// The files waiting or being deleted, and their bytes now.
    func contents() -> (files: Int, bytes: Int) {
        let paths = lock.withLock { waiting.map(\.path) }
        var bytes = 0
        for path in paths {
            var info = stat()
            if stat(path, &info) == 0 { bytes += Int(info.st_size) }
        }
        return (paths.count, bytes)
    }

    /// Queues what an earlier run left in the trash: nobody holds those.
    func adoptLeftovers() throws(StoreError) {
        let names = try listDirectory(directory)
        lock.withLock {
            for name in names.sorted() where !waiting.contains(where: { $0.path == directory + "/" + name }) {
                waiting.append((directory + "/" + name, Weak(object: nil)))
            }
        }
    }

    /// Moves `path` into the trash, where it is deleted once `holder` (the segment's file object, which readers
    /// keep while they read) is released. The caller syncs the directory it left, with its other changes there,
    /// as it did after an unlink: until then a crash may leave the file where it was, which recovery handles
    /// as it handles a replaced file that was not yet unlinked.
    func retire(_ path: String, heldBy holder: AnyObject?) throws(StoreError) {
        let name = path.split(separator: "/").last.map(String.init) ?? "file"
        let target: String = lock.withLock {
            serial += 1
            return directory + "/\(monotonicMilliseconds())-\(serial)-" + name
        }
        try io.rename(path, target)
        lock.withLock {
            waiting.append((target, Weak(object: holder)))
            lock.signalAll()
        }
    }

    /// Starts the thread that deletes what the trash holds (at nice 10, like the other background work).
    func start() {
        lock.withLock {
            stopping = false
            finished = false
        }
        startThread(named: "leadtrail-trash", priority: .background) { [self] in loop() }
    }

    /// Stops the thread after the file it is cutting, if any; files still waiting stay for the next start.
    func stop() {
        lock.withLock {
            stopping = true
            lock.signalAll()
            while !finished { lock.wait(seconds: 0.1) }
        }
    }

    private func loop() {
        while let path = nextUnheld() {
            do throws(StoreError) {
                try deleteGradually(path)
            } catch {
                // Left for the next start, which tries again.
                logger.error("could not delete a file in the trash", metadata: ["file": "\(path)", "error": "\(error.message)"])
            }
            lock.withLock { waiting.removeAll { $0.path == path } }
        }
        lock.withLock {
            finished = true
            lock.signalAll()
        }
    }

    /// The next file nobody holds any more, waiting for one (a released holder is noticed within a second); nil
    /// once the trash stops.
    private func nextUnheld() -> String? {
        lock.withLock {
            while !stopping {
                if let entry = waiting.first(where: { $0.holder.object == nil }) { return entry.path }
                lock.wait(seconds: 1)
            }
            return nil
        }
    }

    /// Cuts the file down ``chunkBytes`` at a time, syncing each cut, then unlinks it.
    func deleteGradually(_ path: String) throws(StoreError) {
        guard access(path, F_OK) == 0 else { return }  // already gone
        let fd = try io.open(path, flags: O_WRONLY, mode: 0)
        defer { io.close(fd) }
        var size = try io.fileSize(fd)
        while size > 0 {
            if lock.withLock({ stopping }) { return }
            size = max(0, size - Self.chunkBytes)
            try io.ftruncate(fd, length: size)
            try io.fsync(fd)
            if size > 0 { Thread.sleep(forTimeInterval: Self.pauseSeconds) }
        }
        try io.unlink(path)
        try io.syncDirectory(directory)
    }
}
