import Foundation
import Testing
@testable import LeadTrailStorage
import LeadTrailTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Segment files replaced by tiering go to `trash/` and are deleted a piece at a time once no reader holds them.
@Suite struct TrashTests {
    /// Waits up to twenty seconds for `condition` (CI machines run the suites side by side and sync slowly).
    static func eventually(_ condition: () -> Bool) -> Bool {
        for _ in 0..<2_000 {
            if condition() { return true }
            usleep(10_000)
        }
        return condition()
    }

    static func names(in directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
    }

    /// A hot segment moved to warm while a reader holds it: it leaves `hot/` at once, stays whole in the trash while
    /// the reader reads it, and is deleted once the reader lets go.
    @Test func aMovedSegmentStaysWholeWhileAReaderHoldsItAndIsDeletedAfter() throws {
        let dir = TemporaryDirectory()
        let store = try TieringTests.makeStore(dir)
        defer { store.close() }
        let hotBefore = Self.names(in: dir.path + "/hot").filter { $0.hasSuffix(".seg") }
        let sizes = try Dictionary(uniqueKeysWithValues: hotBefore.map { name in
            (name, try FileManager.default.attributesOfItem(atPath: dir.path + "/hot/" + name)[.size] as? Int ?? 0)
        })
        var held = store.snapshot().views.filter { $0.tier == .hot && $0.isSealed }
        #expect(held.count == 3)
        let contents = try held.map { try $0.data.read(count: 1 << 20, at: 0) }

        let report = try store.tier(now: TieringTests.now)
        #expect(report.moved.count == 3)
        let hotAfter = Self.names(in: dir.path + "/hot").filter { $0.hasSuffix(".seg") }
        #expect(hotAfter.count == hotBefore.count - 2)  // the 120- and 45-day segments left; the 10-day one stays
        // Held by the reader: in the trash, whole, and still read through the reader's view.
        // The 120-day segment's warm file, which archiving replaced and nobody holds, goes; then give the trash
        // more than its check interval to (wrongly) touch the two held ones.
        #expect(Self.eventually { Self.names(in: dir.path + "/trash").count == 2 })
        usleep(1_500_000)
        let trashed = Self.names(in: dir.path + "/trash")
        #expect(trashed.count == 2)
        for name in trashed {
            let original = String(name.split(separator: "-").last ?? "")
            let size = try FileManager.default.attributesOfItem(atPath: dir.path + "/trash/" + name)[.size] as? Int
            #expect(size == sizes[original] && size != nil, "\(name)")
        }
        for (view, before) in zip(held, contents) {
            #expect(try view.data.read(count: 1 << 20, at: 0) == before)
        }
        let waiting = store.stats()
        #expect(waiting.trashFiles == 2)
        #expect(waiting.trashBytes == hotBefore.filter { hotAfter.contains($0) == false }.reduce(0) { $0 + (sizes[$1] ?? 0) })

        held.removeAll()
        // The file leaves the directory a moment before the trash forgets it (it syncs the directory first).
        #expect(Self.eventually { Self.names(in: dir.path + "/trash").isEmpty && store.trash.count == 0 })
        #expect(store.stats().trashFiles == 0 && store.stats().trashBytes == 0)
        #expect(store.verify().isClean)
    }

    /// Retention deletes a cold archive past `retain_days`: the deletion is logged, the archive's files leave
    /// `cold/` and go through the trash, and the events are gone for good while the rest answers as before.
    @Test func retentionDeletesAnArchiveThroughTheTrash() throws {
        let dir = TemporaryDirectory()
        let store = try TieringTests.makeStore(dir, retainDays: 100)
        defer { store.close() }
        let before = try TieringTests.everything(store)

        let report = try store.tier(now: TieringTests.now)
        #expect(report.deleted.count == 1)  // the 120-day segment's archive; the 45-day one went to warm only
        #expect(Self.names(in: dir.path + "/cold") == ["deletions.log"])
        let log = try String(contentsOfFile: dir.path + "/cold/deletions.log", encoding: .utf8)
        #expect(log.contains("\"reason\":\"retain_days\"") && log.contains("\"events\":300"))
        #expect(Self.eventually { Self.names(in: dir.path + "/trash").isEmpty })
        #expect(try TieringTests.everything(store) == Array(before.dropFirst(300)))
        #expect(store.stats().cold.segments == 0)
        #expect(try store.restore(fromMs: nil, toMs: nil).restored == 0)
        #expect(store.verify().isClean)
    }

    /// A file is cut ``Trash/chunkBytes`` at a time, synced after each cut, then unlinked.
    @Test func aFileIsCutAPieceAtATimeWithASyncAfterEachCut() throws {
        let dir = TemporaryDirectory()
        let io = RecordingFileOperations()
        let trash = Trash(directory: dir.path, io: io, logger: .init(label: "test"))
        let path = dir.path + "/segment"
        let size = 2 * Trash.chunkBytes + 5
        #expect(FileManager.default.createFile(atPath: path, contents: Data(count: size)))

        try trash.deleteGradually(path)

        #expect(io.calls == [
            "ftruncate \(Trash.chunkBytes + 5)", "fsync", "ftruncate 5", "fsync", "ftruncate 0", "fsync", "unlink",
        ])
        #expect(!FileManager.default.fileExists(atPath: path))
        // A file that is already gone is no error.
        try trash.deleteGradually(path)
    }

    /// What a crash left in `trash/` is deleted after the next start, and never read as a segment.
    @Test func whatACrashLeftInTheTrashIsDeletedAfterTheNextStart() throws {
        let dir = TemporaryDirectory()
        var configuration = StoreConfiguration(directory: dir.path)
        configuration.tiers.intervalSeconds = 0
        do {
            let store = try EventStore.open(configuration)
            _ = try store.appendAndWait([try Events.make(lead: "lead_1", id: "kept")])
            store.close()
        }
        // A copy of the active segment, and half a cut file, as a crash in the middle of a deletion leaves them.
        let active = try #require(Self.names(in: dir.path + "/hot").first { $0.hasSuffix(".open") })
        try FileManager.default.copyItem(atPath: dir.path + "/hot/" + active, toPath: dir.path + "/trash/1-1-" + active)
        #expect(FileManager.default.createFile(atPath: dir.path + "/trash/2-2-0000000000000009.seg", contents: Data(count: 3 << 20)))

        let store = try EventStore.open(configuration)
        defer { store.close() }
        #expect(Self.eventually { Self.names(in: dir.path + "/trash").isEmpty })
        #expect(store.stats().events == 1)
        #expect(try store.event(withID: "kept") != nil)
        #expect(store.verify().isClean)
    }
}

/// Real file operations that note the calls a deletion makes.
final class RecordingFileOperations: FileOperations, @unchecked Sendable {
    private let base = PosixFileOperations()
    private let lock = NSLock()
    private var recorded: [String] = []

    var calls: [String] { lock.withLock { recorded } }

    private func note(_ call: String) { lock.withLock { recorded.append(call) } }

    func open(_ path: String, flags: Int32, mode: mode_t) throws(StoreError) -> Int32 { try base.open(path, flags: flags, mode: mode) }
    func close(_ fd: Int32) { base.close(fd) }
    func pread(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(StoreError) -> Int {
        try base.pread(fd, into: buffer, at: offset)
    }
    func pwrite(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, at offset: Int) throws(StoreError) { try base.pwrite(fd, buffer, at: offset) }
    func fdatasync(_ fd: Int32) throws(StoreError) {
        note("fdatasync")
        try base.fdatasync(fd)
    }
    func fsync(_ fd: Int32) throws(StoreError) {
        note("fsync")
        try base.fsync(fd)
    }
    func ftruncate(_ fd: Int32, length: Int) throws(StoreError) {
        note("ftruncate \(length)")
        try base.ftruncate(fd, length: length)
    }
    func fileSize(_ fd: Int32) throws(StoreError) -> Int { try base.fileSize(fd) }
    func rename(_ from: String, _ to: String) throws(StoreError) { try base.rename(from, to) }
    func unlink(_ path: String) throws(StoreError) {
        note("unlink")
        try base.unlink(path)
    }
    func syncDirectory(_ path: String) throws(StoreError) { try base.syncDirectory(path) }
}
