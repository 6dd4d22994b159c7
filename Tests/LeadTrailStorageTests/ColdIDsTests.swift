import Foundation
import LeadTrailEvents
import Testing
@testable import LeadTrailStorage
import LeadTrailTestSupport

/// The cold archives' `.ids` files: event-id hashes in seq order (format 2, 8 bytes an event), the
/// 16-byte entries of earlier archives (format 1) still read beside them, and damage to either found.
@Suite struct ColdIDsTests {
    static let day = CompressionFormatTests.day
    static let now = CompressionFormatTests.now

    static func archives(_ dir: TemporaryDirectory) throws -> [ColdArchive] {
        try Files.list(dir.path + "/cold").filter { $0.hasSuffix(".manifest") }.sorted().map {
            try #require(ColdArchive.decodeManifest(try Files.read(dir.path + "/cold/" + $0)))
        }
    }

    static func sealedFiles(_ dir: TemporaryDirectory) throws -> [String: [UInt8]] {
        var files: [String: [UInt8]] = [:]
        for name in Files.list(dir.path + "/hot") where name.hasSuffix(".seg") { files[name] = try Files.read(dir.path + "/hot/" + name) }
        return files
    }

    /// A sealed hot file's event-id section: what the `.ids` file held for it before format 2.
    static func eventSection(ofHotFile bytes: [UInt8]) throws -> [UInt8] {
        let trailer = try #require(bytes.withUnsafeBytes { SegmentTrailer.decode(UnsafeRawBufferPointer(rebasing: $0[(bytes.count - SegmentFormat.trailerSize)...])) })
        let start = Int(trailer.dataEnd) + Int(trailer.sparseCount) * SegmentFormat.sparseEntrySize + Int(trailer.recordCount) * SegmentFormat.leadEntrySize
        return Array(bytes[start..<(bytes.count - SegmentFormat.trailerSize)])
    }

    static func hash(_ id: String) -> UInt64 { StableHash.hash64(id.utf8) }

    @Test func idsHoldEightBytesAnEventAndKeepDuplicatesOutAfterARestart() throws {
        let dir = TemporaryDirectory()
        var originals: [String: [UInt8]] = [:]
        var before: [StoredEvent] = []
        do {
            let store = try CompressionFormatTests.makeStore(dir)
            originals = try Self.sealedFiles(dir)
            before = try CompressionFormatTests.everything(store)
            _ = try store.tier(now: Self.now + 200 * Self.day)
            #expect(store.stats().cold.segments == 2 && store.stats().cold.events == 1200)
            store.close()
        }
        for name in Files.list(dir.path + "/cold") where name.hasSuffix(".manifest") {
            #expect(try Files.read(dir.path + "/cold/" + name).starts(with: Array("leadtrail-manifest v3 ".utf8)))
        }
        for archive in try Self.archives(dir) {
            #expect(archive.members.allSatisfy { $0.idsFormat == 2 && $0.idsRange.count == $0.idsCount * 8 })
            let size = try Files.read(dir.path + "/cold/\(archive.day).ids").count
            #expect(size == archive.members.reduce(0) { $0 + Int($1.events) * 8 })
            #expect(size == archive.idsEnd)
        }
        #expect(try EventStore.verify(directory: dir.path).isClean)

        let store = try CompressionFormatTests.reopen(dir)
        defer { store.close() }
        #expect(store.stats().corruptSegments.isEmpty)
        // Resent ids of archived events (one from each archive) are duplicates with their original seqs.
        let resent = try store.appendAndWait(
            try CompressionFormatTests.events(5..<6, baseMs: Self.now - 60 * Self.day)
                + CompressionFormatTests.events(1199..<1200, baseMs: Self.now - 45 * Self.day)
                + [try Events.make(lead: "lead_3", id: "new_after_restart", timestampMs: Self.now)])
        #expect(resent.map(\.duplicate) == [true, true, false])
        #expect(resent.map(\.seq) == [6, 1200, 1202])
        // The lookup reads the one hash of that seq.
        #expect(store.coldHoldsEventID(hash: Self.hash("ev_5"), seq: 6))
        #expect(!store.coldHoldsEventID(hash: Self.hash("ev_5"), seq: 7))
        #expect(!store.coldHoldsEventID(hash: Self.hash("ev_6"), seq: 6))

        // Restore gives back every hot file byte for byte; the events answer by id and in scans.
        let report = try store.restore(fromMs: nil, toMs: nil)
        #expect(report.restored == 1200)
        for (name, bytes) in originals { #expect(try Files.read(dir.path + "/restored/" + name) == bytes) }
        #expect(try store.event(withID: "ev_77")?.seq == 78)
        #expect(try store.event(withID: "ev_1100")?.body == before.first { $0.seq == 1101 }?.body)
        #expect(Array(try CompressionFormatTests.everything(store).prefix(1201)) == before)
        #expect(store.verify().isClean)
    }

    @Test func formatOneIdsOfEarlierArchivesAreStillReadBesideNewOnes() throws {
        let dir = TemporaryDirectory()
        var originals: [String: [UInt8]] = [:]
        do {
            let store = try CompressionFormatTests.makeStore(dir)
            originals = try Self.sealedFiles(dir)
            _ = try store.tier(now: Self.now + 200 * Self.day)
            store.close()
        }
        // Rewrite each archive's `.ids` as the previous release wrote it: each member's hot event-id section as it is.
        for var archive in try Self.archives(dir) {
            var ids: [UInt8] = []
            for i in archive.members.indices {
                let section = try Self.eventSection(ofHotFile: try #require(originals[Segment.fileName(id: archive.members[i].segmentID, sealed: true)]))
                archive.members[i].idsOffset = ids.count
                archive.members[i].idsCRC = CRC32C.checksum(section)
                archive.members[i].idsFormat = 1
                ids += section
            }
            let manifest = archive.encodeManifest()
            #expect(manifest.starts(with: Array("leadtrail-manifest v2 ".utf8)))
            try Files.write(ids, to: dir.path + "/cold/\(archive.day).ids")
            try Files.write(manifest, to: dir.path + "/cold/\(archive.day).manifest")
        }
        #expect(try EventStore.verify(directory: dir.path).isClean)

        var third: (name: String, bytes: [UInt8]) = ("", [])
        let oldDay = EventStore.day(of: Self.now - 60 * Self.day)
        do {
            let store = try CompressionFormatTests.reopen(dir)
            #expect(store.stats().corruptSegments.isEmpty)
            let resent = try store.appendAndWait(
                try CompressionFormatTests.events(5..<6, baseMs: Self.now - 60 * Self.day)
                    + CompressionFormatTests.events(650..<651, baseMs: Self.now - 45 * Self.day))
            #expect(resent.map(\.duplicate) == [true, true] && resent.map(\.seq) == [6, 651])
            // One more segment of the older archive's day: a format 2 member after format 1 ones in the same `.ids`.
            _ = try store.rotate()
            _ = try store.appendAndWait(try CompressionFormatTests.events(2000..<2100, baseMs: Self.now - 60 * Self.day + 3_600_000))
            _ = try store.rotate()
            let before = try Self.sealedFiles(dir)
            _ = try store.tier(now: Self.now + 200 * Self.day)
            let archive = try #require(try Self.archives(dir).first { $0.day == oldDay })
            #expect(archive.members.map(\.idsFormat) == [1, 2])
            #expect(archive.idsEnd == 600 * 16 + 100 * 8)
            #expect(try Files.read(dir.path + "/cold/\(oldDay).ids").count == archive.idsEnd)
            let name = Segment.fileName(id: try #require(archive.members.last).segmentID, sealed: true)
            third = (name, try #require(before[name]))
            store.close()
        }
        // What a move interrupted after its `.ids` append leaves: bytes past the manifest's end, cut at the start.
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: dir.path + "/cold/\(oldDay).ids"))
        handle.seekToEndOfFile()
        handle.write(Data(repeating: 0xA5, count: 800))
        handle.closeFile()

        let store = try CompressionFormatTests.reopen(dir)
        defer { store.close() }
        #expect(store.stats().corruptSegments.isEmpty)
        #expect(try Files.read(dir.path + "/cold/\(oldDay).ids").count == 600 * 16 + 100 * 8)
        #expect(store.verify().isClean)
        let resent = try store.appendAndWait(
            try CompressionFormatTests.events(7..<8, baseMs: Self.now - 60 * Self.day)
                + CompressionFormatTests.events(2050..<2051, baseMs: Self.now - 60 * Self.day + 3_600_000))
        #expect(resent.map(\.duplicate) == [true, true])
        #expect(resent.first?.seq == 8)
        _ = try store.restore(fromMs: nil, toMs: nil)
        for (name, bytes) in originals { #expect(try Files.read(dir.path + "/restored/" + name) == bytes) }
        #expect(try Files.read(dir.path + "/restored/" + third.name) == third.bytes)
    }

    @Test func damagedIdsAreFoundByVerifyAndAtStart() throws {
        let dir = TemporaryDirectory()
        do {
            let store = try CompressionFormatTests.makeStore(dir)
            _ = try store.tier(now: Self.now + 200 * Self.day)
            store.close()
        }
        let archives = try Self.archives(dir)
        #expect(archives.count == 2)
        let (damaged, cut) = (archives[0].day, archives[1].day)
        // One bit of one hash in the first archive; the second archive's `.ids` loses its last entry.
        try Files.flipBit(dir.path + "/cold/\(damaged).ids", byte: 8 * 37 + 3, bit: 5)
        try Files.truncate(dir.path + "/cold/\(cut).ids", to: archives[1].idsEnd - 8)
        let report = try EventStore.verify(directory: dir.path)
        #expect(report.corrupt.contains { $0.file == "cold/\(damaged).ids" })
        #expect(report.corrupt.contains { $0.file == "cold/\(cut).ids" })

        let store = try CompressionFormatTests.reopen(dir)
        defer { store.close() }
        let damage = store.stats().corruptSegments
        #expect(damage.contains { $0.contains("\(damaged).ids") })
        #expect(damage.contains { $0.contains("\(cut).ids") })
        // Neither member is restored from damaged ids.
        #expect(throws: StoreError.self) { _ = try store.restore(fromMs: nil, toMs: Self.now - 50 * Self.day) }
        #expect(throws: StoreError.self) { _ = try store.restore(fromMs: Self.now - 50 * Self.day, toMs: nil) }
        #expect(!store.verify().isClean)
    }

    @Test func compactIDsOnlyWhenTheSectionIsRebuiltExactly() throws {
        func section(_ entries: [(hash: UInt64, seq: UInt64)], sorted: Bool = true) -> [UInt8] {
            var w = ByteWriter()
            let ordered = sorted ? entries.sorted { $0.hash < $1.hash || ($0.hash == $1.hash && $0.seq < $1.seq) } : entries
            for entry in ordered { w.u64(entry.hash); w.u64(entry.seq) }
            return w.bytes
        }
        var rng = SplitMix64(seed: 11)
        var entries = (0..<1000).map { (hash: rng.next(), seq: UInt64(101 + $0)) }
        entries[500].hash = entries[20].hash  // two ids with one hash: ordered by seq
        let good = section(entries)
        let compact = try #require(ColdMember.compactIDs(eventSection: good, firstSeq: 101))
        #expect(compact.count == 8000)
        #expect(ColdMember.eventSection(fromCompactIDs: compact, firstSeq: 101) == good)
        #expect(ColdMember.compactEntries(compact, firstSeq: 101).map(\.seq) == Array(101...1100))
        #expect(ColdMember.compactEntries(compact, firstSeq: 101).map(\.hash) == entries.map(\.hash))
        #expect(ColdMember.compactIDs(eventSection: [], firstSeq: 1) == [])

        // Kept as they are (format 1): a gap in the seqs, a seq twice, another first seq, an unsorted section.
        var gap = entries
        gap[400].seq = 1101
        #expect(ColdMember.compactIDs(eventSection: section(gap), firstSeq: 101) == nil)
        var twice = entries
        twice[400].seq = 102
        #expect(ColdMember.compactIDs(eventSection: section(twice), firstSeq: 101) == nil)
        #expect(ColdMember.compactIDs(eventSection: good, firstSeq: 100) == nil)
        #expect(ColdMember.compactIDs(eventSection: section(entries, sorted: false), firstSeq: 101) == nil)
        #expect(ColdMember.compactIDs(eventSection: Array(good.dropLast(3)), firstSeq: 101) == nil)
    }

    @Test func manifestsRecordTheIdsFormatAndRefuseUnknownOnes() {
        var member = ColdMember(
            segmentID: 3, offset: 0, length: 100, rawLength: 900, rawCRC: 1, idsOffset: 64, idsCount: 12, idsCRC: 2,
            firstSeq: 10, lastSeq: 21, minTs: 1, maxTs: 2, events: 12, leadFilter: [1], memberCRC: 3, inflatedLength: 500, idsFormat: 2)
        var archive = ColdArchive(day: "2025-09-03", members: [member])
        #expect(archive.idsEnd == 64 + 12 * 8)
        let bytes = archive.encodeManifest()
        #expect(bytes.starts(with: Array("leadtrail-manifest v3 ".utf8)))
        #expect(ColdArchive.decodeManifest(bytes)?.members == [member])
        member.idsFormat = 1
        archive.members = [member]
        #expect(archive.idsEnd == 64 + 12 * 16)
        #expect(archive.encodeManifest().starts(with: Array("leadtrail-manifest v2 ".utf8)))
        #expect(ColdArchive.decodeManifest(archive.encodeManifest())?.members == [member])
        member.idsFormat = 3
        archive.members = [member]
        #expect(ColdArchive.decodeManifest(archive.encodeManifest()) == nil)
    }
}
