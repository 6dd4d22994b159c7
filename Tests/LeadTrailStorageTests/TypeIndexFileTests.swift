import Foundation
import LeadTrailEvents
import Testing
@testable import LeadTrailStorage
import LeadTrailTestSupport

/// The type index file beside each sealed segment: written at seal, read by the first scan by type after a
/// restart instead of every record header, ignored and built again when it does not check out, checked against
/// the records by `verify`, moved to warm with its segment and removed when the segment goes cold.
@Suite struct TypeIndexFileTests {
    typealias Scans = TypeColumnScanTests

    static func typeIndexFiles(_ directory: String) -> [String] {
        Files.list(directory + "/hot").filter { $0.hasSuffix(".types") }.sorted()
    }

    static func sealedIDs(_ directory: String) -> [String] {
        Files.sealedSegments(directory).map { String(($0 as NSString).lastPathComponent.dropLast(4)) }.sorted()
    }

    /// What the scans by type of `Scans.selections` serve must be exactly the events of those types.
    static func expectScansServeTheirTypes(_ store: EventStore, _ events: [ExpectedEvent], _ label: String = "") throws {
        for selection in Scans.selections {
            let want = try events.filter { try selection.matches(Array(Scans.type(of: $0.body).utf8)) }
            for twoThreads in [false, true] {
                let got = try Scans.served(store, ScanHints(types: selection), twoThreads: twoThreads, matching: Scans.predicate(selection))
                #expect(got.map(\.0) == want.map(\.seq), "\(label) \(selection)")
                #expect(got.map(\.1) == want.map(\.body))
            }
        }
    }

    /// Every sealed segment gets its file at seal; after a restart the first scan by type takes the columns from
    /// them (every sealed segment has one in memory afterwards) and serves exactly the records of its types. A
    /// file built again from the records, once removed, holds the same bytes as the one written at seal.
    @Test func sealedSegmentsKeepTheirTypeIndexBesideThem() throws {
        let dir = TemporaryDirectory(inMemory: true)
        let (first, events) = try Scans.store(in: dir.path)
        first.close()
        let sealed = Self.sealedIDs(dir.path)
        #expect(sealed.count > 3)
        #expect(Self.typeIndexFiles(dir.path) == sealed.map { $0 + ".types" })
        let written = try Self.typeIndexFiles(dir.path).map { try Files.read(dir.path + "/hot/" + $0) }

        let store = try EventStore.openForTest(dir.path, fileOperations: FaultyFileOperations.withoutSyncs)
        // The hot tier's bytes on disk count the files.
        let onDisk = try Files.list(dir.path + "/hot").filter { $0.hasSuffix(".seg") || $0.hasSuffix(".types") }
            .reduce(0) { $0 + (try Files.read(dir.path + "/hot/" + $1)).count }
        let active = try #require(store.snapshot().views.last { !$0.isSealed })
        #expect(store.stats().hot.bytes == UInt64(onDisk + active.dataEnd))
        #expect(store.snapshot().views.filter { $0.typeColumn != nil }.count == 1, "only the active segment, recovered record by record")
        try Self.expectScansServeTheirTypes(store, events)
        #expect(store.snapshot().views.allSatisfy { $0.typeColumn != nil })
        #expect(store.stats().corruptSegments.isEmpty)
        store.close()

        // Built again from the records: the same bytes.
        try Scans.removeTypeIndexFiles(dir.path)
        let reopened = try EventStore.openForTest(dir.path, fileOperations: FaultyFileOperations.withoutSyncs)
        defer { reopened.close() }
        try Self.expectScansServeTheirTypes(reopened, events, "rebuilt")
        #expect(try Self.typeIndexFiles(dir.path).map { try Files.read(dir.path + "/hot/" + $0) } == written)
        #expect(Self.verifyIsClean(dir.path))
    }

    /// With no memory budget for sealed segments' columns, a scan by type reads every sealed segment through its
    /// file when it reaches the segment's pieces (on one thread or two), whether the file was there or the
    /// scan's planning had to build it; it serves exactly the records of its types, and keeps no column.
    @Test(arguments: [true, false])
    func withoutAMemoryBudgetScansReadTheColumnsFromTheirFiles(filesThere: Bool) throws {
        let dir = TemporaryDirectory(inMemory: true)
        let (first, events) = try Scans.store(in: dir.path)
        first.close()
        if !filesThere { try Scans.removeTypeIndexFiles(dir.path) }
        var configuration = StoreConfiguration(directory: dir.path)
        configuration.typeColumnRecordBudget = 0
        let store = try EventStore.open(configuration, fileOperations: FaultyFileOperations.withoutSyncs)
        defer { store.close() }
        try Self.expectScansServeTheirTypes(store, events, "files there: \(filesThere)")
        #expect(store.snapshot().views.filter { $0.typeColumn != nil }.count == 1, "only the active segment keeps one")
        #expect(Self.typeIndexFiles(dir.path).count == Files.sealedSegments(dir.path).count)
        #expect(store.stats().corruptSegments.isEmpty)
    }

    static func verifyIsClean(_ directory: String) -> Bool {
        guard let report = try? EventStore.verify(directory: directory) else { return false }
        return report.isClean && report.warnings.isEmpty
    }

    /// A store whose matching records lie far apart (large events, a fifth of them `recipient.*`), so that a
    /// scan that picks them reads much less than the whole segment.
    static func sparseStore(in directory: String, fileOperations: FaultyFileOperations) throws -> (EventStore, [UInt64]) {
        let store = try EventStore.open({
            var c = StoreConfiguration(directory: directory)
            c.segmentMaxBytes = 256 << 10
            return c
        }(), fileOperations: fileOperations)
        var wanted: [UInt64] = []
        for batch in 0..<20 {
            let events = try (0..<10).map { i in
                let n = batch * 10 + i
                return try Events.make(
                    lead: "lead\(n % 7)", id: "s\(n)", type: n % 5 == 0 ? "recipient.delivered" : "filter.passed",
                    extra: "\"pad\":\"\(String(repeating: "x", count: 5000))\"")
            }
            for (k, result) in try store.appendAndWait(events).enumerated() where (batch * 10 + k) % 5 == 0 { wanted.append(result.seq) }
        }
        return (store, wanted)
    }

    /// Opens the store in `directory`, runs one scan by `selection` (which must serve exactly `wanted`), and returns
    /// what `bytesRead` of its file operations counted during the scan.
    static func bytesReadByScan(
        _ directory: String, _ selection: TypeSelection, wanted: [UInt64], budget: Int = StoreConfiguration(directory: "").typeColumnRecordBudget,
        counting bytesRead: KeyPath<FaultyFileOperations, Int>
    ) throws -> Int {
        let io = FaultyFileOperations(syncs: false)
        var configuration = StoreConfiguration(directory: directory)
        configuration.typeColumnRecordBudget = budget
        let store = try EventStore.open(configuration, fileOperations: io)
        defer { store.close() }
        let before = io[keyPath: bytesRead]
        let got = try Scans.served(store, ScanHints(types: selection), twoThreads: false, matching: Scans.predicate(selection))
        #expect(got.map(\.0) == wanted)
        return io[keyPath: bytesRead] - before
    }

    /// After a restart, the first scan by type reads only the picked records of the sealed segments (well under
    /// half of their bytes) when the files are there, and every record when they are not (the scan that then
    /// builds the files); also when the memory budget keeps no column of a sealed segment.
    @Test(arguments: [1_000_000, 0])
    func firstScanByTypeAfterARestartReadsOnlyThePickedRecords(budget: Int) throws {
        let dir = TemporaryDirectory(inMemory: true)
        let (first, wanted) = try Self.sparseStore(in: dir.path, fileOperations: FaultyFileOperations.withoutSyncs)
        first.close()
        let sealedBytes = Files.sealedSegments(dir.path).reduce(0) { $0 + ((try? Files.read($1).count) ?? 0) }
        #expect(Files.sealedSegments(dir.path).count >= 3)
        let selection = TypeSelection(exact: [], prefixes: [Array("recipient.".utf8)])

        func firstScanReads() throws -> Int {
            try Self.bytesReadByScan(dir.path, selection, wanted: wanted, budget: budget, counting: \.segmentBytesRead)
        }
        let withFiles = try firstScanReads()
        #expect(withFiles < sealedBytes / 2, "read \(withFiles) of \(sealedBytes) bytes")
        try Scans.removeTypeIndexFiles(dir.path)
        let withoutFiles = try firstScanReads()
        #expect(withoutFiles > sealedBytes * 9 / 10, "read \(withoutFiles) of \(sealedBytes) bytes")
        #expect(Self.typeIndexFiles(dir.path).count == Files.sealedSegments(dir.path).count, "that scan wrote them again")
        #expect(try firstScanReads() < sealedBytes / 2)
    }

    /// A file that is cut short, emptied, has a flipped bit, or belongs to another segment is ignored: scans
    /// serve exactly the same records, no data damage is reported, `verify` warns, and the next scan by type
    /// writes a good file in its place.
    @Test(arguments: ["truncated", "empty", "bit", "other segment", "header"])
    func aTypeIndexThatDoesNotCheckOutIsIgnoredAndBuiltAgain(damage: String) throws {
        let dir = TemporaryDirectory(inMemory: true)
        let (first, events) = try Scans.store(in: dir.path)
        first.close()
        let files = Self.typeIndexFiles(dir.path).map { dir.path + "/hot/" + $0 }
        let target = files[files.count / 2]
        let good = try Files.read(target)
        switch damage {
        case "truncated": try Files.truncate(target, to: good.count - 7)
        case "empty": try Files.truncate(target, to: 0)
        case "bit": try Files.flipBit(target, byte: good.count / 2, bit: 3)
        case "other segment": try Files.write(try Files.read(files[0]), to: target)
        default: try Files.flipBit(target, byte: 20, bit: 0)  // the segment id, in the header
        }
        let report = try EventStore.verify(directory: dir.path)
        #expect(report.isClean, "\(damage): the records are intact")
        #expect(report.warnings.contains { $0.contains((target as NSString).lastPathComponent) && $0.contains("does not check out") }, "\(damage)")

        let store = try EventStore.openForTest(dir.path, fileOperations: FaultyFileOperations.withoutSyncs)
        defer { store.close() }
        try Self.expectScansServeTheirTypes(store, events, damage)
        #expect(store.stats().corruptSegments.isEmpty, "\(damage): not data damage")
        #expect(try Files.read(target) == good, "\(damage): written again")
        #expect(Self.verifyIsClean(dir.path))
    }

    /// A scan by type that reads part of a segment (too little to build its column) removes a file that does
    /// not check out, so that the next such scans do not read it again; one that reads most of it writes it again.
    @Test func aBadFileIsRemovedByTheFirstScanThatReadsIt() throws {
        let dir = TemporaryDirectory(inMemory: true)
        let (first, events) = try Scans.store(in: dir.path)
        let sealed = first.snapshot().views.filter(\.isSealed)
        let view = sealed[sealed.count / 2]
        first.close()
        let target = dir.path + "/hot/" + TypeIndexFile.fileName(id: view.id)
        let good = try Files.read(target)
        try Files.flipBit(target, byte: good.count - 10, bit: 2)

        let store = try EventStore.openForTest(dir.path, fileOperations: FaultyFileOperations.withoutSyncs)
        defer { store.close() }
        let selection = Scans.selections[0]
        let (from, to) = (view.minTs + 5_000, view.minTs + 15_000)
        let got = try Scans.served(store, ScanHints(fromMs: from, toMs: to, types: selection), twoThreads: false, matching: Scans.predicate(selection))
        let want = try events.filter { event in
            let ts = 1_705_329_045_000 + Int64(event.id.dropFirst())! * 1000
            return try ts >= from && ts < to && selection.matches(Array(Scans.type(of: event.body).utf8))
        }
        #expect(!want.isEmpty)
        #expect(got.map(\.0) == want.map(\.seq))
        #expect(!Files.exists(target), "removed by the scan that found it bad")
        try Self.expectScansServeTheirTypes(store, events)
        #expect(try Files.read(target) == good, "written again by a scan that reads the whole segment")
        #expect(store.stats().corruptSegments.isEmpty)
    }

    /// A file that checks out but says another type than a record holds (a bug could write one) is damage to
    /// `verify`: a scan by type would pass over that record.
    @Test func verifyFindsATypeIndexThatDisagreesWithItsRecords() throws {
        let dir = TemporaryDirectory(inMemory: true)
        let (first, _) = try Scans.store(in: dir.path)
        let view = try #require(first.snapshot().views.first { $0.isSealed })
        let column = try #require(first.loadTypeIndex(for: view))
        first.close()
        #expect(Self.verifyIsClean(dir.path))
        // The same column with its first two names swapped: every record of those types named wrongly.
        #expect(column.names.count >= 2)
        var names = column.names
        names.swapAt(0, 1)
        var wrong = TypeColumn(names: names)
        for k in 0..<column.count { wrong.append(id: column.id(at: k), offset: column.offset(at: k)) }
        let path = dir.path + "/hot/" + TypeIndexFile.fileName(id: view.id)
        try Files.write(TypeIndexFile.encode(wrong, for: EventStore.typeIndexIdentity(of: view)), to: path)
        let report = try EventStore.verify(directory: dir.path)
        #expect(report.corrupt.contains { $0.file == "hot/" + TypeIndexFile.fileName(id: view.id) && $0.reason.contains("another type") })
    }

    static func warmTypeIndexFiles(_ directory: String) -> [String: [UInt8]] {
        var files: [String: [UInt8]] = [:]
        for name in Files.list(directory + "/warm") where name.hasSuffix(".types") {
            files[name] = try? Files.read(directory + "/warm/" + name)
        }
        return files
    }

    /// The newest event of `Scans.store` is from 2024-01-15: 31 days later every sealed segment is old enough
    /// for warm, 91 days later for cold.
    static let dayMs: Int64 = 86_400_000
    static let newestEventMs: Int64 = 1_705_329_045_000 + 400_000

    /// A move to warm takes the segment's file along, unchanged (the warm file keeps the hot file's offsets,
    /// trailer and sparse index), and scans by type of warm segments read through it, also after a restart; a
    /// move to cold removes it; a start removes a file whose segment is gone from its tier.
    @Test func theFileMovesWithItsSegmentToWarmAndLeavesForCold() throws {
        let dir = TemporaryDirectory(inMemory: true)
        let (first, events) = try Scans.store(in: dir.path)
        first.close()
        var written: [String: [UInt8]] = [:]
        for name in Self.typeIndexFiles(dir.path) { written[name] = try Files.read(dir.path + "/hot/" + name) }
        #expect(written.count == Files.sealedSegments(dir.path).count)
        let strays = ["hot", "warm"].map { dir.path + "/\($0)/" + TypeIndexFile.fileName(id: 0xffff) }
        for stray in strays { try Files.write(Array("not a segment's".utf8), to: stray) }

        let store = try EventStore.openForTest(dir.path, fileOperations: FaultyFileOperations.withoutSyncs)
        for stray in strays { #expect(!Files.exists(stray), "removed at start") }
        let report = try store.tier(now: Self.newestEventMs + 31 * Self.dayMs)
        #expect(report.moved.count == written.count)
        #expect(Files.sealedSegments(dir.path).isEmpty)
        #expect(Self.typeIndexFiles(dir.path).isEmpty)
        #expect(Self.warmTypeIndexFiles(dir.path) == written, "moved, byte for byte")
        // The warm tier's bytes on disk count them.
        let warmOnDisk = try Files.list(dir.path + "/warm").reduce(0) { $0 + (try Files.read(dir.path + "/warm/" + $1)).count }
        #expect(store.stats().warm.bytes == UInt64(warmOnDisk))
        try Self.expectScansServeTheirTypes(store, events, "warm")
        store.close()
        #expect(Self.verifyIsClean(dir.path))

        // After a restart the first scans by type take the warm segments' columns from the files.
        let reopened = try EventStore.openForTest(dir.path, fileOperations: FaultyFileOperations.withoutSyncs)
        defer { reopened.close() }
        #expect(reopened.snapshot().views.filter { $0.tier == .warm && $0.typeColumn != nil }.isEmpty)
        try Self.expectScansServeTheirTypes(reopened, events, "warm, reopened")
        #expect(reopened.snapshot().views.filter { $0.tier == .warm }.allSatisfy { $0.typeColumn != nil })
        #expect(reopened.stats().corruptSegments.isEmpty)
        #expect(Self.warmTypeIndexFiles(dir.path) == written)

        _ = try reopened.tier(now: Self.newestEventMs + 91 * Self.dayMs)
        #expect(Self.warmTypeIndexFiles(dir.path).isEmpty, "a move to cold removes them")
        #expect(Files.list(dir.path + "/warm").isEmpty)
    }

    /// A move to warm that a crash interrupted after the segment's hot file went, but before its type index
    /// followed: the next start moves the file to `warm/`, where the scans by type use it.
    @Test func aStartFinishesMovingATypeIndexThatACrashLeftInHot() throws {
        let dir = TemporaryDirectory(inMemory: true)
        let (first, events) = try Scans.store(in: dir.path)
        _ = try first.tier(now: Self.newestEventMs + 31 * Self.dayMs)
        first.close()
        let moved = Self.warmTypeIndexFiles(dir.path)
        #expect(!moved.isEmpty)
        let name = try #require(moved.keys.sorted().first)
        try Files.write(try #require(moved[name]), to: dir.path + "/hot/" + name)
        try Files.remove(dir.path + "/warm/" + name)

        let store = try EventStore.openForTest(dir.path, fileOperations: FaultyFileOperations.withoutSyncs)
        defer { store.close() }
        #expect(Self.typeIndexFiles(dir.path).isEmpty)
        #expect(Self.warmTypeIndexFiles(dir.path) == moved)
        try Self.expectScansServeTheirTypes(store, events, "after the interrupted move")
        #expect(store.snapshot().views.filter { $0.tier == .warm }.allSatisfy { $0.typeColumn != nil })
    }

    /// A warm segment's file is checked like a hot one's: `verify` warns about one that does not check out (which
    /// scans ignore, serving the same events, and write again) and reports one with wrong names as damage.
    @Test func aWarmSegmentsFileIsCheckedLikeAHotOnes() throws {
        let dir = TemporaryDirectory(inMemory: true)
        let (first, events) = try Scans.store(in: dir.path)
        _ = try first.tier(now: Self.newestEventMs + 31 * Self.dayMs)
        let view = try #require(first.snapshot().views.first { $0.tier == .warm })
        let column = try #require(first.loadTypeIndex(for: view))
        first.close()
        let name = TypeIndexFile.fileName(id: view.id)
        let path = dir.path + "/warm/" + name
        let good = try Files.read(path)
        #expect(Self.verifyIsClean(dir.path))

        var flipped = good
        flipped[flipped.count / 2] ^= 0x04
        try Files.write(flipped, to: path)
        let warned = try EventStore.verify(directory: dir.path)
        #expect(warned.isClean)
        #expect(warned.warnings.contains { $0.hasPrefix("warm/" + name) })
        let store = try EventStore.openForTest(dir.path, fileOperations: FaultyFileOperations.withoutSyncs)
        try Self.expectScansServeTheirTypes(store, events, "flipped warm file")
        #expect(store.stats().corruptSegments.isEmpty)
        store.close()
        #expect(try Files.read(path) == good, "written again")

        var names = column.names
        names.swapAt(0, 1)
        var wrong = TypeColumn(names: names)
        for k in 0..<column.count { wrong.append(id: column.id(at: k), offset: column.offset(at: k)) }
        try Files.write(TypeIndexFile.encode(wrong, for: EventStore.typeIndexIdentity(of: view)), to: path)
        let report = try EventStore.verify(directory: dir.path)
        #expect(report.corrupt.contains { $0.file == "warm/" + name && $0.reason.contains("another type") })
    }

    /// A warm store whose events of one type are rare (1 in 50, events of about 5 KB): a scan by that type reads
    /// well under half of what the same scan reads without the files, because it decompresses only the blocks
    /// that hold those events; and it serves the same events.
    @Test func aScanByARareTypeOfWarmSegmentsDecompressesOnlyTheBlocksThatHoldIt() throws {
        let dir = TemporaryDirectory(inMemory: true)
        let store = try EventStore.open({
            var c = StoreConfiguration(directory: dir.path)
            c.segmentMaxBytes = 512 << 10
            return c
        }(), fileOperations: FaultyFileOperations.withoutSyncs)
        var rng = SplitMix64(seed: 11)
        var wanted: [UInt64] = []
        for batch in 0..<40 {
            let events = try (0..<10).map { i in
                let n = batch * 10 + i
                // Random padding, so that LZ4 leaves the blocks about as large as the records.
                let pad = String((0..<5000).map { _ in "abcdefghijklmnopqrstuvwxyz0123456789".randomElement(using: &rng)! })
                return try Events.make(
                    lead: "lead\(n % 7)", id: "r\(n)", type: n % 50 == 0 ? "recipient.returned" : "filter.passed",
                    extra: "\"pad\":\"\(pad)\"")
            }
            for (k, result) in try store.appendAndWait(events).enumerated() where (batch * 10 + k) % 50 == 0 { wanted.append(result.seq) }
        }
        store.waitForSeals()
        let newest = try #require(store.snapshot().views.map(\.maxTs).max())
        _ = try store.tier(now: newest + 31 * Self.dayMs)
        store.close()
        #expect(Files.list(dir.path + "/warm").filter { $0.hasSuffix(".lz4s") }.count >= 3)
        let selection = TypeSelection(exact: [Array("recipient.returned".utf8)], prefixes: [])

        func scanReads() throws -> Int {
            try Self.bytesReadByScan(dir.path, selection, wanted: wanted, counting: \.warmBytesRead)
        }
        let withFiles = try scanReads()
        for name in Files.list(dir.path + "/warm") where name.hasSuffix(".types") { try Files.remove(dir.path + "/warm/" + name) }
        let withoutFiles = try scanReads()
        #expect(withFiles * 2 < withoutFiles, "read \(withFiles) bytes with the files, \(withoutFiles) without")
        #expect(!Self.warmTypeIndexFiles(dir.path).isEmpty, "the scan that read every block wrote them again")
        #expect(try scanReads() * 2 < withoutFiles)
    }

    /// The decoder refuses every cut of a good file, and every single flipped bit.
    @Test func decodeRefusesEveryCutAndFlippedBit() throws {
        let dir = TemporaryDirectory(inMemory: true)
        let (store, _) = try Scans.store(in: dir.path, count: 60)
        defer { store.close() }
        let view = try #require(store.snapshot().views.first { $0.isSealed })
        let good = try Files.read(dir.path + "/hot/" + TypeIndexFile.fileName(id: view.id))
        let identity = EventStore.typeIndexIdentity(of: view)
        #expect(TypeIndexFile.decode(good, for: identity, sparse: view.sparse) != nil)
        for cut in 0..<good.count {
            #expect(TypeIndexFile.decode(Array(good[0..<cut]), for: identity, sparse: view.sparse) == nil)
        }
        for byte in 0..<good.count {
            for bit in 0..<8 {
                var bad = good
                bad[byte] ^= UInt8(1) << UInt8(bit)
                #expect(TypeIndexFile.decode(bad, for: identity, sparse: view.sparse) == nil, "byte \(byte) bit \(bit)")
            }
        }
        var other = identity
        other.dataCRC &+= 1
        #expect(TypeIndexFile.decode(good, for: other, sparse: view.sparse) == nil)
    }
}
