import Foundation
import LeadTrailEvents
import LeadTrailQuery
import Testing
@testable import LeadTrailStorage
import LeadTrailTestSupport

/// Warm files with a dictionary and their lead section stored apart (format 3), warm files of formats 1
/// and 2, cold members without index
/// sections, the event-id table's bulk fill, and the dedupe they keep working after a start.
@Suite struct CompressionFormatTests {
    static let day: Int64 = 86_400_000
    static let now: Int64 = 1_767_225_600_000  // 2026-01-01T00:00:00Z

    /// Lead events of ~600 bytes with realistic repetition (so segments are large enough to get a dictionary).
    static func events(_ range: Range<Int>, baseMs: Int64) throws -> [PreparedEvent] {
        try range.map { i in
            try Events.make(
                lead: "lead_\(i % 40)", id: "ev_\(i)", type: i % 3 == 0 ? "recipient.delivered" : "source.submitted",
                timestampMs: baseMs + Int64(i) * 1000,
                extra: """
                "outcome":"\(i % 2 == 0 ? "success" : "failure")","flow_id":"flow_auto_\(i % 5)","metadata":{"campaign":"spring_\(i % 7)",\
                "sub_id":"sub_\(i * 7919 % 100_000)","notes":"lead moved through step \(i % 11) of the flow; buyer \(i % 13) answered"},\
                "lead_snapshot":{"first_name":"Name\(i % 97)","last_name":"Family\(i % 89)","email":"person\(i)@example.net",\
                "phone":"555-01\(i % 100)","address":"\(i % 999) Foundry Street","state":"CT","zip":"0\(6000 + i % 999)"}
                """)
        }
    }

    /// A store with two sealed segments of old events (60 and 45 days by default: both go warm at `now`, cold
    /// at `now + 200 days`) and one fresh event in the active segment.
    static func makeStore(_ dir: TemporaryDirectory, ages: [Int] = [60, 45]) throws -> EventStore {
        var configuration = StoreConfiguration(directory: dir.path)
        configuration.tiers.intervalSeconds = 0
        let store = try EventStore.open(configuration)
        for (index, age) in ages.enumerated() {
            _ = try store.appendAndWait(try events((index * 600)..<((index + 1) * 600), baseMs: now - Int64(age) * day))
            _ = try store.rotate()
        }
        _ = try store.appendAndWait([try Events.make(lead: "lead_1", id: "fresh", timestampMs: now)])
        return store
    }

    static func reopen(_ dir: TemporaryDirectory) throws -> EventStore {
        var configuration = StoreConfiguration(directory: dir.path)
        configuration.tiers.intervalSeconds = 0
        return try EventStore.open(configuration)
    }

    /// Makes the store, moves its sealed segments to warm and closes it; returns every event it held.
    static func storeMovedToWarm(_ dir: TemporaryDirectory) throws -> [StoredEvent] {
        let store = try makeStore(dir)
        defer { store.close() }
        let before = try everything(store)
        _ = try store.tier(now: now)
        return before
    }

    static func everything(_ store: EventStore) throws -> [StoredEvent] {
        var all: [StoredEvent] = []
        try store.scan(ScanHints()) { all.append($0.copy()); return true }
        return all
    }

    static func warmFiles(_ dir: TemporaryDirectory) -> [String] {
        Files.list(dir.path + "/warm").filter { $0.hasSuffix(".lz4s") }.sorted().map { dir.path + "/warm/" + $0 }
    }

    static func trailer(_ path: String) throws -> WarmFormat.Trailer {
        let bytes = try Files.read(path)
        return try #require(bytes.withUnsafeBytes { WarmFormat.Trailer.decode(UnsafeRawBufferPointer(rebasing: $0[(bytes.count - WarmFormat.trailerSize)...])) })
    }

    @Test func dictionaryBlocksRoundTripAndRebuildTheHotFileByteForByte() throws {
        let dir = TemporaryDirectory()
        let store = try Self.makeStore(dir)
        let hotFiles = Files.list(dir.path + "/hot").filter { $0.hasSuffix(".seg") }.sorted()
        let originals = try hotFiles.map { try Files.read(dir.path + "/hot/" + $0) }
        let before = try Self.everything(store)
        let timeline = try QueryEngine(store: store).timeline(leadID: "lead_7").events

        _ = try store.tier(now: Self.now)  // both sealed segments to warm
        let warm = Self.warmFiles(dir)
        #expect(warm.count == 2)
        for path in warm {
            let trailer = try Self.trailer(path)
            #expect(trailer.version == 3)
            #expect(trailer.dictionary != nil)
            #expect(trailer.leadSectionOffset != nil)
        }
        #expect(try Self.everything(store) == before)
        #expect(try QueryEngine(store: store).timeline(leadID: "lead_7").events == timeline)
        #expect(store.stats().warm.compressionRatio > 3)
        #expect(store.verify().isClean)

        // The hot file comes back byte for byte from each warm file.
        for (i, path) in warm.enumerated() {
            var report = VerifyReport(segments: 0, records: 0, corrupt: [], warnings: [])
            let rebuilt = WarmFormat.rebuildHotFile(fromWarm: try Files.read(path), name: "w", report: &report)
            #expect(report.isClean)
            #expect(rebuilt == originals[i])
        }
        store.close()

        // After a restart (footers decoded from disk, dictionaries read lazily) everything still answers.
        let reopened = try Self.reopen(dir)
        defer { reopened.close() }
        #expect(try Self.everything(reopened) == before)
        #expect(try reopened.event(withID: "ev_77")?.body == before.first { $0.value(of: .eventID) == "ev_77" }?.body)
        #expect(try EventStore.verify(directory: dir.path).isClean)
    }

    @Test func indexCodingRoundTripsEveryColumnShape() throws {
        var rng = SplitMix64(seed: 42)
        for (sparse, records) in [(0, 0), (1, 1), (3, 10), (40, 1000)] {
            let trailer = SegmentTrailer(
                recordCount: UInt64(records), firstSeq: 1, lastSeq: UInt64(max(records, 1)), minTs: 0, maxTs: 0, dataEnd: 64,
                sparseCount: UInt32(sparse), indexCRC: 0, dataCRC: 0)
            var w = ByteWriter()
            for i in 0..<sparse {
                w.u64(UInt64(i * 4 + 1)); w.u64(UInt64(64 + i * 4096)); w.i64(Int64(rng.next() % 1000) - 500); w.i64(.max - Int64(i))
            }
            for lead in (0..<records).map({ _ in rng.next() }).sorted() { w.u64(lead) }
            for _ in 0..<records { w.u64(rng.next()); w.u64(rng.next() % 5000) }
            let index = w.bytes
            let encoded = index.withUnsafeBytes { IndexCoding.encode($0, trailer: trailer) }
            let decoded = encoded.withUnsafeBytes { IndexCoding.decode($0, trailer: trailer) }
            #expect(decoded == index)
            // Cut short, it does not decode (damage is also caught by the footer CRC and the hot index CRC).
            if encoded.count > 2 {
                #expect(encoded.dropLast().withUnsafeBytes { IndexCoding.decode($0, trailer: trailer) } == nil)
            }
        }
    }

    @Test func indexCodingWithTheLeadSectionApartRoundTrips() throws {
        var rng = SplitMix64(seed: 7)
        let (sparse, records) = (5, 300)
        let trailer = SegmentTrailer(
            recordCount: UInt64(records), firstSeq: 1, lastSeq: UInt64(records), minTs: 0, maxTs: 0, dataEnd: 64,
            sparseCount: UInt32(sparse), indexCRC: 0, dataCRC: 0)
        var w = ByteWriter()
        for i in 0..<sparse { w.u64(UInt64(i * 60 + 1)); w.u64(UInt64(64 + i * 4096)); w.i64(Int64(i)); w.i64(Int64(i) + 9) }
        for lead in (0..<records).map({ _ in rng.next() }).sorted() { w.u64(lead) }
        for _ in 0..<records { w.u64(rng.next()); w.u64(rng.next() % 5000) }
        let index = w.bytes
        let leads = IndexCoding.leadSection(trailer)
        let encoded = index.withUnsafeBytes { IndexCoding.encode($0, trailer: trailer, leadsApart: true) }
        let section = Array(index[leads])
        #expect(encoded.withUnsafeBytes { e in section.withUnsafeBytes { IndexCoding.decode(e, trailer: trailer, leadSection: $0) } } == index)
        // Without its lead section, or with one of another length, it does not decode.
        #expect(encoded.withUnsafeBytes { IndexCoding.decode($0, trailer: trailer) } == nil)
        #expect(encoded.withUnsafeBytes { e in section.dropLast(8).withUnsafeBytes { IndexCoding.decode(e, trailer: trailer, leadSection: $0) } } == nil)
    }

    /// A format 3 warm segment reads its lead entries from the file (memory keeps fences, block CRCs and a filter,
    /// as for a sealed hot segment), in the process that moved it and after a restart; a lead section
    /// overwritten while the store is open is never used: timelines read the records instead and the damage is
    /// reported, and `verify` finds it.
    @Test func warmLeadSectionsStayOnDiskAndADamagedOneIsReadAround() throws {
        let dir = TemporaryDirectory()
        let store = try Self.makeStore(dir)
        let leads = (0..<40).map { "lead_\($0)" }
        let expected = try leads.map { try store.events(forLead: $0) }
        _ = try store.tier(now: Self.now)
        store.close()

        let reopened = try Self.reopen(dir)
        defer { reopened.close() }
        let warm = reopened.stateLock.withLock { reopened.segments.filter { $0.tier == .warm } }
        #expect(warm.count == 2)
        #expect(warm.allSatisfy { $0.leadIndex.footerRun != nil })
        #expect(try leads.map { try reopened.events(forLead: $0) } == expected)

        for path in Self.warmFiles(dir) {
            let trailer = try Self.trailer(path)
            let start = try #require(trailer.leadSectionOffset)
            let fd = open(path, O_WRONLY)
            _ = [UInt8](repeating: 0, count: Int(trailer.footerStart) - start).withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(start)) }
            close(fd)
        }
        #expect(try leads.map { try reopened.events(forLead: $0) } == expected)
        #expect(reopened.stats().corruptSegments.count >= 2)
        let report = try EventStore.verify(directory: dir.path)
        #expect(report.corrupt.filter { $0.file.hasSuffix(".lz4s") && $0.reason.contains("hot index inside the warm footer") }.count == 2)
    }

    /// Warm files of formats 1 and 2 (what earlier releases wrote) still read, dedupe and go to cold byte for byte;
    /// or, with `rewrittenFirst`, a tiering run first rewrites them in the current format, and then they do.
    @Test(arguments: [1, 2], [false, true]) func olderWarmFormatsStillRead(version: Int, rewrittenFirst: Bool) throws {
        let dir = TemporaryDirectory()
        var before: [StoredEvent] = []
        var originals: [String: [UInt8]] = [:]
        do {
            let store = try Self.makeStore(dir)
            before = try Self.everything(store)
            store.close()
        }
        // Rewrite both sealed segments as warm files of that format, as earlier releases did, and remove the hot files.
        for name in Files.list(dir.path + "/hot").filter({ $0.hasSuffix(".seg") }) {
            let path = dir.path + "/hot/" + name
            let bytes = try Files.read(path)
            originals[name] = bytes
            let trailer = try #require(bytes.withUnsafeBytes { SegmentTrailer.decode(UnsafeRawBufferPointer(rebasing: $0[(bytes.count - SegmentFormat.trailerSize)...])) })
            let sparse: [SparseEntry] = bytes.withUnsafeBytes { b in
                (0..<Int(trailer.sparseCount)).map { i in
                    let at = Int(trailer.dataEnd) + i * SegmentFormat.sparseEntrySize
                    return SparseEntry(firstSeq: b.u64(at: at), offset: b.u64(at: at + 8), minTs: b.i64(at: at + 16), maxTs: b.i64(at: at + 24))
                }
            }
            let warm = version == 1
                ? WarmFormat.buildVersion1(hotFile: bytes, trailer: trailer, sparse: sparse)
                : WarmFormat.build(hotFile: bytes, trailer: trailer, sparse: sparse, version: version)
            let id = try #require(UInt64(name.dropLast(4), radix: 16))
            try Files.write(warm, to: dir.path + "/warm/" + EventStore.warmFileName(id))
            try Files.remove(path)
        }
        for path in Self.warmFiles(dir) { #expect(try Self.trailer(path).version == version) }
        #expect(try EventStore.verify(directory: dir.path).isClean)

        let store = try Self.reopen(dir)
        defer { store.close() }
        #expect(store.stats().warm.segments == 2)
        // These formats have no lead section of their own: it is kept in memory, until a tiering run rewrites them.
        #expect(store.stateLock.withLock { store.segments.filter { $0.tier == .warm }.allSatisfy { $0.leadIndex.footerRun == nil } })
        #expect(try Self.everything(store) == before)
        if rewrittenFirst {
            // A tiering run rewrites them in the current format: the lead index goes to disk, nothing else changes.
            let rewrite = try store.tier(now: Self.now)
            #expect(rewrite.rewritten.map(\.segmentID).sorted() == [1, 2] && rewrite.moved.isEmpty)
            for path in Self.warmFiles(dir) { #expect(try Self.trailer(path).version == WarmFormat.currentVersion) }
            #expect(store.stateLock.withLock { store.segments.filter { $0.tier == .warm }.allSatisfy { $0.leadIndex.footerRun != nil } })
            #expect(try Self.everything(store) == before)
            #expect(store.verify().isClean)
            #expect(try store.tier(now: Self.now).rewritten.isEmpty)
        }
        // A resent id stored only in a warm file of that format is still a duplicate.
        let resent = try store.appendAndWait(try Self.events(5..<6, baseMs: Self.now - 60 * Self.day))
        #expect(resent.first?.duplicate == true && resent.first?.seq == 6)
        // Such files still go to cold and come back byte for byte.
        _ = try store.tier(now: Self.now + 200 * Self.day)
        #expect(store.stats().cold.segments == 2)
        _ = try store.restore(fromMs: nil, toMs: nil)
        for (name, bytes) in originals {
            #expect(try Files.read(dir.path + "/restored/" + name) == bytes)
        }
    }

    @Test func aDamagedDictionaryCopyIsReportedAndTheOtherCopyServes() throws {
        let dir = TemporaryDirectory()
        let before = try Self.storeMovedToWarm(dir)
        let path = try #require(Self.warmFiles(dir).first)
        let location = try #require(try Self.trailer(path).dictionary)
        // One bit in the first copy's stored bytes.
        try Files.flipBit(path, byte: location.offset + WarmFormat.blockHeaderSize + location.storedLength / 2, bit: 3)
        let report = try EventStore.verify(directory: dir.path)
        #expect(report.corrupt.contains { $0.file.hasSuffix(".lz4s") && $0.reason.contains("dictionary copy 1") })
        #expect(!report.corrupt.contains { $0.reason.contains("block") && !$0.reason.contains("dictionary") })

        let store = try Self.reopen(dir)
        defer { store.close() }
        #expect(try Self.everything(store) == before)
        #expect(store.stats().corruptSegments.contains { $0.contains("dictionary copy 1") })
    }

    @Test func bothDictionaryCopiesDamagedIsDetectedAndNothingWrongIsServed() throws {
        let dir = TemporaryDirectory()
        let before = try Self.storeMovedToWarm(dir)
        let path = try #require(Self.warmFiles(dir).first)
        let location = try #require(try Self.trailer(path).dictionary)
        for copy in 0..<2 {
            try Files.flipBit(path, byte: location.offset + copy * location.copySize + WarmFormat.blockHeaderSize + 5, bit: 1)
        }
        let report = try EventStore.verify(directory: dir.path)
        #expect(report.corrupt.contains { $0.reason.contains("dictionary copy 1") })
        #expect(report.corrupt.contains { $0.reason.contains("dictionary copy 2") })

        let store = try Self.reopen(dir)
        defer { store.close() }
        let after = try Self.everything(store)
        // The damaged file's events are not served; every event served is exactly as stored.
        #expect(after.count < before.count)
        #expect(after.allSatisfy { event in before.contains(event) })
        #expect(!store.stats().corruptSegments.isEmpty)
    }

    /// A bit inside the encoded index sections (just after the hot header kept in the footer), or inside the
    /// lead section stored apart.
    @Test(arguments: [false, true]) func aDamagedIndexIsDetected(inLeadSection: Bool) throws {
        let dir = TemporaryDirectory()
        do {
            let store = try Self.makeStore(dir)
            _ = try store.tier(now: Self.now)
            store.close()
        }
        let path = try #require(Self.warmFiles(dir).first)
        let trailer = try Self.trailer(path)
        let leadSection = try #require(trailer.leadSectionOffset)
        try Files.flipBit(path, byte: inLeadSection ? leadSection + 100 : Int(trailer.footerStart) + SegmentFormat.headerSize + 3, bit: 2)
        #expect(!(try EventStore.verify(directory: dir.path).isClean))
        let store = try Self.reopen(dir)
        defer { store.close() }
        #expect(store.stats().corruptSegments.contains { $0.contains(".lz4s") })
    }

    @Test func coldMembersWithoutIndexSectionsRestoreByteForByte() throws {
        let dir = TemporaryDirectory()
        let store = try Self.makeStore(dir)
        defer { store.close() }
        let originals = try Files.list(dir.path + "/hot").filter { $0.hasSuffix(".seg") }.map { ($0, try Files.read(dir.path + "/hot/" + $0)) }
        _ = try store.tier(now: Self.now + 200 * Self.day)
        let cold = store.stats().cold
        #expect(cold.segments == 2)
        // Smaller than gzip of the whole hot files.
        let wholeFiles = try originals.reduce(0) { $0 + (try Gzip.compress($1.1)).count }
        #expect(Int(cold.bytes) < wholeFiles)
        let manifest = try #require(Files.list(dir.path + "/cold").first { $0.hasSuffix(".manifest") })
        let archive = try #require(ColdArchive.decodeManifest(try Files.read(dir.path + "/cold/" + manifest)))
        #expect(archive.members.allSatisfy { $0.inflatedLength != nil })
        #expect(try EventStore.verify(directory: dir.path).isClean)

        _ = try store.restore(fromMs: nil, toMs: nil)
        for (name, bytes) in originals { #expect(try Files.read(dir.path + "/restored/" + name) == bytes) }
        // Resent ids of archived events are still duplicates.
        let resent = try store.appendAndWait(try Self.events(700..<701, baseMs: Self.now - 45 * Self.day))
        #expect(resent.first?.duplicate == true && resent.first?.seq == 701)
    }

    @Test func aDamagedIdsFileStopsTheRestoreOfItsMember() throws {
        let dir = TemporaryDirectory()
        do {
            let store = try Self.makeStore(dir)
            _ = try store.tier(now: Self.now + 200 * Self.day)
            store.close()
        }
        let ids = try #require(Files.list(dir.path + "/cold").first { $0.hasSuffix(".ids") })
        try Files.flipBit(dir.path + "/cold/" + ids, byte: 40, bit: 0)
        #expect(!(try EventStore.verify(directory: dir.path).isClean))
        let store = try Self.reopen(dir)
        defer { store.close() }
        #expect(throws: StoreError.self) { _ = try store.restore(fromMs: nil, toMs: nil) }
    }

    @Test func formatOneColdMembersStillRestore() throws {
        let dir = TemporaryDirectory()
        var originals: [(String, [UInt8])] = []
        do {
            let store = try Self.makeStore(dir)
            originals = try Files.list(dir.path + "/hot").filter { $0.hasSuffix(".seg") }.sorted().map { ($0, try Files.read(dir.path + "/hot/" + $0)) }
            _ = try store.tier(now: Self.now + 200 * Self.day)
            store.close()
        }
        // Rewrite each day's archive as an earlier release did: whole hot files as members, their hot event-id
        // sections as the `.ids` entries (format 1), a v1 manifest.
        for manifestName in Files.list(dir.path + "/cold").filter({ $0.hasSuffix(".manifest") }) {
            let day = String(manifestName.dropLast(9))
            var archive = try #require(ColdArchive.decodeManifest(try Files.read(dir.path + "/cold/" + manifestName)))
            var ltz: [UInt8] = []
            var ids: [UInt8] = []
            for i in archive.members.indices {
                let name = Segment.fileName(id: archive.members[i].segmentID, sealed: true)
                let raw = try #require(originals.first { $0.0 == name }?.1)
                let member = try Gzip.compress(raw)
                archive.members[i].offset = ltz.count
                archive.members[i].length = member.count
                archive.members[i].memberCRC = CRC32C.checksum(member)
                archive.members[i].inflatedLength = nil
                ltz += member
                let section = try ColdIDsTests.eventSection(ofHotFile: raw)
                archive.members[i].idsOffset = ids.count
                archive.members[i].idsCRC = CRC32C.checksum(section)
                archive.members[i].idsFormat = 1
                ids += section
            }
            let manifest = archive.encodeManifest()
            #expect(manifest.starts(with: Array("leadtrail-manifest v1 ".utf8)))
            try Files.write(ltz, to: dir.path + "/cold/\(day).ltz")
            try Files.write(ids, to: dir.path + "/cold/\(day).ids")
            try Files.write(manifest, to: dir.path + "/cold/" + manifestName)
        }
        #expect(try EventStore.verify(directory: dir.path).isClean)
        let store = try Self.reopen(dir)
        defer { store.close() }
        _ = try store.restore(fromMs: nil, toMs: nil)
        for (name, bytes) in originals { #expect(try Files.read(dir.path + "/restored/" + name) == bytes) }
    }

    @Test func resentIdsAreDuplicatesRightAfterAStartInEveryTier() throws {
        let dir = TemporaryDirectory()
        do {
            let store = try Self.makeStore(dir, ages: [120, 45])
            _ = try store.appendAndWait(try Self.events(2000..<2100, baseMs: Self.now))  // active segment
            _ = try store.tier(now: Self.now)  // 120 days: cold; 45 days: warm
            #expect(store.stats().cold.segments == 1 && store.stats().warm.segments == 1)
            store.close()
        }
        let store = try Self.reopen(dir)
        defer { store.close() }
        let lastSeq = store.lastSeq
        // One id from each tier (cold, warm, active), resent right after the start, beside a new one.
        let batch = try Self.events(3..<4, baseMs: Self.now - 120 * Self.day) + Self.events(650..<651, baseMs: Self.now - 45 * Self.day)
            + Self.events(2050..<2051, baseMs: Self.now) + [try Events.make(lead: "lead_9", id: "brand_new", timestampMs: Self.now)]
        let results = try store.appendAndWait(batch)
        #expect(results.map(\.duplicate) == [true, true, true, false])
        #expect(results.prefix(3).map(\.seq) == [4, 651, 1202 + 50])
        #expect(results[3].seq == lastSeq + 1)
        #expect(store.lastSeq == lastSeq + 1)
    }

    @Test func eventIDTableBulkFillFindsEveryEntry() {
        var rng = SplitMix64(seed: 7)
        let entries = (1...50_000).map { (hash: rng.next(), seq: UInt64($0)) }.sorted { $0.hash < $1.hash }
        var table = EventIDTable(expectedCount: 50_000)
        let filled = table.insert(contentsOf: entries)
        #expect(filled)
        #expect(table.count == entries.count)
        for entry in entries.prefix(5000) {
            var found = false
            table.candidates(hash: entry.hash) { seq in
                found = seq == entry.seq
                return found
            }
            #expect(found)
        }
        // The same entries one at a time give the same slots (partitions grow at other moments, so by sets).
        var single = EventIDTable(expectedCount: 50_000)
        for entry in entries { single.insert(hash: entry.hash, seq: entry.seq) }
        let sameSlots = zip(single.partitions, table.partitions).allSatisfy { Set($0.0) == Set($0.1) }
        #expect(sameSlots)
        // A seq the slots cannot hold is refused, not stored truncated.
        let outOfRange = table.insert(contentsOf: [(hash: 1, seq: EventIDTable.seqMask + 1)])
        #expect(!outOfRange)
        #expect(table.count == entries.count)
    }

    /// The batched check the writer runs before its dedupe lookups: true for every stored hash, and false only
    /// where ``EventIDTable/candidates(hash:_:)`` finds nothing (an unsorted batch, across partitions).
    @Test func eventIDTableMayHoldAgreesWithCandidates() {
        var rng = SplitMix64(seed: 11)
        var table = EventIDTable()
        let stored = (1...20_000).map { _ in rng.next() }
        for (k, hash) in stored.enumerated() { table.insert(hash: hash, seq: UInt64(k + 1)) }
        let absent = (0..<20_000).map { _ in rng.next() }
        let batch = Array((stored.prefix(700) + absent.prefix(1300)).shuffled(using: &rng))
        let verdicts = table.mayHold(batch)
        #expect(verdicts.count == batch.count)
        for (hash, mayHold) in zip(batch, verdicts) {
            var any = false
            table.candidates(hash: hash) { _ in
                any = true
                return true
            }
            #expect(mayHold == any)
        }
        #expect(table.mayHold(Array(stored)).allSatisfy { $0 })
        // Absent ids meet a candidate only by a fingerprint collision (about 20,000 / 2^34 each).
        #expect(table.mayHold(absent).filter { $0 }.count <= 2)
    }

    /// A table sized for nothing grows partition by partition, from its own slots, and loses no entry.
    @Test func eventIDTablePartitionsGrowFromTheirOwnSlots() {
        var rng = SplitMix64(seed: 11)
        var table = EventIDTable()
        let startCapacity = table.capacity
        let entries = (1...120_000).map { (hash: rng.next(), seq: UInt64($0)) }
        for entry in entries { table.insert(hash: entry.hash, seq: entry.seq) }
        #expect(table.capacity > startCapacity)
        // Every partition stays within its load bounds (60-80% once grown).
        for partition in table.partitions {
            let used = partition.filter { $0 != 0 }.count
            #expect(Double(used) <= Double(partition.count) * EventIDTable.maximumLoad)
        }
        #expect(Double(table.count) / Double(table.capacity) > 0.5)
        for entry in entries where entry.seq % 7 == 0 {
            var seqs: [UInt64] = []
            table.candidates(hash: entry.hash) { seqs.append($0); return false }
            #expect(seqs.contains(entry.seq))
        }
        // An id never stored finds (almost always) nothing; when it does, only as a candidate to check.
        var misses = 0
        for _ in 0..<10_000 {
            var n = 0
            table.candidates(hash: rng.next()) { _ in n += 1; return false }
            misses += n
        }
        #expect(misses < 10)
    }
}
