import Foundation
import LeadTrailEvents
import Testing
@testable import LeadTrailStorage
import LeadTrailTestSupport

/// Scans that want some types read only the records of those types, through the type column of
/// each segment this process wrote. They must serve exactly what a scan that reads every record
/// serves, and treat damage the same way: reported, never served.
@Suite struct TypeColumnScanTests {
    static let types = ["source.submitted", "recipient.delivered", "recipient.failed", "filter.passed", "recipient.error"]

    /// A store of a few small segments (sparse entries every 512 bytes), events of `types` (one with an
    /// escaped dot, decoded `recipient.escaped`), left open so its segments keep their type columns.
    static func store(in directory: String, types: [String] = Self.types, count: Int = 400) throws -> (EventStore, [ExpectedEvent]) {
        let store = try EventStore.open({
            var c = StoreConfiguration(directory: directory)
            c.segmentMaxBytes = 16 << 10
            c.sparseIndexInterval = 512
            return c
        }(), fileOperations: FaultyFileOperations.withoutSyncs)
        var rng = SplitMix64(seed: 5)
        var events: [ExpectedEvent] = []
        var n = 0
        while n < count {
            let prepared = try (0..<Int.random(in: 1...7, using: &rng)).map { i -> PreparedEvent in
                let type = n + i == 7 ? #"recipient\u002eescaped"# : types[Int.random(in: 0..<types.count, using: &rng)]
                return try Events.make(
                    lead: "lead\(Int.random(in: 0..<9, using: &rng))", id: "e\(n + i)", type: type,
                    timestampMs: 1_705_329_045_000 + Int64(n + i) * 1000,
                    extra: "\"pad\":\"\(String(repeating: "p", count: Int.random(in: 0..<300, using: &rng)))\"")
            }
            for (event, result) in zip(prepared, try store.appendAndWait(prepared)) {
                let lead = event.json.withUnsafeBufferPointer { event.fields[.leadID].value(in: $0)! }
                events.append(ExpectedEvent(seq: result.seq, id: event.eventID, lead: lead, body: event.json))
            }
            n += prepared.count
        }
        store.waitForSeals()
        return (store, events)
    }

    /// The decoded type of a stored body.
    static func type(of body: [UInt8]) throws -> String {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])
        return try #require(object["type"] as? String)
    }

    /// The filter a scan with `selection` applies (the hint alone decides nothing).
    static func predicate(_ selection: TypeSelection) -> (RecordView) -> Bool {
        { record in
            guard let bytes = record.fields[.type].bytes(in: record.body) else { return false }
            return selection.matches(bytes)
        }
    }

    /// (seq, body) of what a scan serves, on one thread or two (pieces of a few records).
    static func served(_ store: EventStore, _ hints: ScanHints, twoThreads: Bool, matching predicate: @escaping (RecordView) -> Bool)
        throws -> [(UInt64, [UInt8])]
    {
        var got: [(UInt64, [UInt8])] = []
        _ = try store.scan(hints, matching: predicate, pieceBytes: twoThreads ? 700 : .max, parallelFrom: twoThreads ? 0 : .max) {
            got.append(($0.seq, Array($0.body)))
            return true
        }
        return got
    }

    static let selections: [TypeSelection] = [
        TypeSelection(exact: [], prefixes: [Array("recipient.".utf8)]),
        TypeSelection(exact: [Array("filter.passed".utf8)], prefixes: []),
        TypeSelection(exact: [Array("recipient.escaped".utf8), Array("source.submitted".utf8)], prefixes: []),
        TypeSelection(exact: [Array("nothing.such".utf8)], prefixes: []),
    ]

    /// With and without the type hint, with seq and time bounds, on one thread or two: the same records, byte for byte.
    @Test func typeHintServesExactlyWhatTheFilterServes() throws {
        let dir = TemporaryDirectory(inMemory: true)
        let (store, events) = try Self.store(in: dir.path)
        defer { store.close() }
        let views = store.snapshot().views
        #expect(views.count > 3)
        #expect(views.allSatisfy { $0.typeColumn != nil }, "every segment this store wrote has its type column")
        let from = events[events.count / 4].seq
        for selection in Self.selections {
            let predicate = Self.predicate(selection)
            for (afterSeq, fromMs, toMs) in [(UInt64(0), Int64?.none, Int64?.none), (from, nil, nil), (0, 1_705_329_045_000 + 100_000, 1_705_329_045_000 + 200_000)] {
                for twoThreads in [false, true] {
                    var hints = ScanHints(afterSeq: afterSeq, fromMs: fromMs, toMs: toMs)
                    let everything = try Self.served(store, hints, twoThreads: twoThreads, matching: predicate)
                    hints.types = selection
                    let picked = try Self.served(store, hints, twoThreads: twoThreads, matching: predicate)
                    #expect(picked.map(\.0) == everything.map(\.0), "\(selection) after \(afterSeq) \(String(describing: fromMs))")
                    #expect(picked.map(\.1) == everything.map(\.1))
                    let want = events.filter { event in
                        let ts = 1_705_329_045_000 + Int64(event.id.dropFirst())! * 1000
                        let type = (try? Self.type(of: event.body)).map { Array($0.utf8) } ?? []
                        return event.seq > afterSeq && fromMs.map { ts >= $0 } ?? true && toMs.map { ts < $0 } ?? true && selection.matches(type)
                    }
                    #expect(picked.map(\.0) == want.map(\.seq))
                }
            }
        }
        #expect(try Self.served(store, ScanHints(types: Self.selections[2]), twoThreads: false, matching: Self.predicate(Self.selections[2]))
            .contains { $0.0 == events[7].seq }, "the escaped type decodes to recipient.escaped")
        #expect(store.stats().corruptSegments.isEmpty)
    }

    /// Reopened without the sealed segments' type index files, only the active segment is recovered record by
    /// record (and has a column); the first scan by type reads the sealed ones' headers once and keeps their
    /// columns. Every scan serves the same records.
    @Test func sealedSegmentsGetTheirColumnFromTheFirstScanByType() throws {
        let dir = TemporaryDirectory(inMemory: true)
        let (first, events) = try Self.store(in: dir.path)
        first.close()
        try Self.removeTypeIndexFiles(dir.path)
        let store = try EventStore.openForTest(dir.path, fileOperations: FaultyFileOperations.withoutSyncs)
        defer { store.close() }
        #expect(store.snapshot().views.filter { $0.typeColumn != nil }.count == 1)
        // A scan without types leaves them as they are, and so does a scan by type that reads a small part of them.
        _ = try Self.served(store, ScanHints(), twoThreads: false, matching: { _ in true })
        #expect(store.snapshot().views.filter { $0.typeColumn != nil }.count == 1)
        let narrow = ScanHints(fromMs: 1_705_329_045_000 + 200_000, toMs: 1_705_329_045_000 + 203_000, types: Self.selections[0])
        let inWindow = try Self.served(store, narrow, twoThreads: false, matching: Self.predicate(Self.selections[0]))
        #expect(store.snapshot().views.filter { $0.typeColumn != nil }.count == 1)
        #expect(inWindow.map(\.0) == (try events.filter { event in
            let ts = 1_705_329_045_000 + Int64(event.id.dropFirst())! * 1000
            return try ts >= 1_705_329_045_000 + 200_000 && ts < 1_705_329_045_000 + 203_000
                && Self.selections[0].matches(Array(Self.type(of: event.body).utf8))
        }.map(\.seq)))
        for selection in Self.selections {
            let want = try events.filter { try selection.matches(Array(Self.type(of: $0.body).utf8)) }
            for twoThreads in [false, true] {
                let picked = try Self.served(store, ScanHints(types: selection), twoThreads: twoThreads, matching: Self.predicate(selection))
                #expect(picked.map(\.0) == want.map(\.seq))
                #expect(picked.map(\.1) == want.map(\.body))
            }
            #expect(store.snapshot().views.allSatisfy { $0.typeColumn != nil })
        }
        #expect(store.stats().corruptSegments.isEmpty)
    }

    /// Type columns stay within their record budget, newest segments first, as segments are sealed and as scans
    /// build them after a restart; scans by type serve the same records with or without them.
    @Test func typeColumnsStayWithinTheirBudget() throws {
        let dir = TemporaryDirectory(inMemory: true)
        let (first, events) = try Self.store(in: dir.path)
        first.close()
        var configuration = StoreConfiguration(directory: dir.path)
        configuration.typeColumnRecordBudget = 100
        configuration.segmentMaxBytes = 16 << 10
        configuration.sparseIndexInterval = 512
        let store = try EventStore.open(configuration, fileOperations: FaultyFileOperations.withoutSyncs)
        defer { store.close() }
        func columnRecords() -> [Int] { store.snapshot().views.map { $0.typeColumn == nil ? 0 : Int($0.count) } }
        for selection in Self.selections {
            let want = try events.filter { try selection.matches(Array(Self.type(of: $0.body).utf8)) }
            let picked = try Self.served(store, ScanHints(types: selection), twoThreads: false, matching: Self.predicate(selection))
            #expect(picked.map(\.0) == want.map(\.seq))
            #expect(picked.map(\.1) == want.map(\.body))
            let columns = columnRecords()
            // The active segment always keeps its column; sealed ones only within the budget, the newest first.
            #expect(columns.dropLast().reduce(0, +) <= 100)
            #expect(columns.last.map { $0 > 0 } == true)
            #expect(columns.dropLast().contains { $0 > 0 })
            #expect(columns.first == 0)
        }
        // Appends that seal more segments keep to the budget as well.
        let segmentsBefore = store.snapshot().views.count
        for k in 0..<60 { _ = try store.appendAndWait([try Events.make(lead: "l", id: "more\(k)", extra: "\"pad\":\"\(String(repeating: "q", count: 900))\"")]) }
        store.waitForSeals()  // a rolled segment keeps its column until it is sealed
        #expect(store.snapshot().views.count > segmentsBefore + 2)
        #expect(columnRecords().dropLast().reduce(0, +) <= 100)
        #expect(columnRecords().dropLast().last.map { $0 > 0 } == true)
    }

    /// A sealed segment (without a type index file) whose record length is wrong gets no column (its records do not add up): it is scanned
    /// record by record, which finds the damage; a flipped bit past a record's type leaves the headers whole, so
    /// the column is built and the picked record fails its CRC. Either way the damaged record is never served.
    @Test(arguments: ["length", "bit"])
    func damageFoundWhileBuildingAColumn(kind: String) throws {
        let selection = Self.selections[0]
        let dir = TemporaryDirectory(inMemory: true)
        let (first, events) = try Self.store(in: dir.path)
        first.close()
        try Self.removeTypeIndexFiles(dir.path)
        let sealed = Files.sealedSegments(dir.path)
        let path = sealed[sealed.count / 2]
        let records = RecordLayout.parse(try Files.read(path))
        let target = try #require(try records.filter { try selection.matches(Array(Self.type(of: $0.body).utf8)) }.first)
        if kind == "length" {
            try Self.poke(path, at: target.offset + 4) { $0 &+ 3 }
        } else {
            try Self.poke(path, at: target.end - 3) { $0 ^ 0x10 }
        }
        let store = try EventStore.openForTest(dir.path, fileOperations: FaultyFileOperations.withoutSyncs)
        defer { store.close() }
        let want = try events.filter { try $0.seq != target.seq && selection.matches(Array(Self.type(of: $0.body).utf8)) }
        for twoThreads in [false, true] {
            let got = try Self.served(store, ScanHints(types: selection), twoThreads: twoThreads, matching: Self.predicate(selection))
            #expect(got.map(\.0) == want.map(\.seq), "\(kind)")
            #expect(got.map(\.1) == want.map(\.body))
        }
        #expect(!store.stats().corruptSegments.isEmpty, "\(kind): the damage is reported")
        let withColumns = store.snapshot().views.filter { $0.typeColumn != nil }.count
        #expect(kind == "length" ? withColumns == store.snapshot().views.count - 1 : withColumns == store.snapshot().views.count)
    }

    /// More distinct types than the column has ids: the later ones share the "unknown" id, whose records
    /// are always read and left to the filter.
    @Test func typesBeyondTheColumnsIdsAreStillFound() throws {
        let dir = TemporaryDirectory(inMemory: true)
        let many = (0..<300).map { "t.\($0)" }
        let store = try EventStore.open({
            var c = StoreConfiguration(directory: dir.path)
            c.segmentMaxBytes = 1 << 20
            return c
        }(), fileOperations: FaultyFileOperations.withoutSyncs)
        defer { store.close() }
        let prepared = try many.enumerated().map { try Events.make(lead: "l", id: "m\($0.offset)", type: $0.element) }
        _ = try store.appendAndWait(prepared)
        #expect(store.snapshot().views.last?.typeColumn?.names.count == TypeColumn.maximumNames)
        for prefix in ["t.29", "t.1", "t.2"] {
            let selection = TypeSelection(exact: [], prefixes: [Array(prefix.utf8)])
            let got = try Self.served(store, ScanHints(types: selection), twoThreads: false, matching: Self.predicate(selection))
            let want = many.enumerated().filter { $0.element.hasPrefix(prefix) }.map { UInt64($0.offset + 1) }
            #expect(got.map(\.0) == want, "prefix \(prefix)")
        }
    }

    /// Removes every type index file beside the sealed segments (as a store written before they existed).
    static func removeTypeIndexFiles(_ directory: String) throws {
        for name in Files.list(directory + "/hot") where name.hasSuffix(".types") { try Files.remove(directory + "/hot/" + name) }
    }

    /// Writes one byte of a file in place (the store has it open).
    static func poke(_ path: String, at offset: Int, _ change: (UInt8) -> UInt8) throws {
        let handle = try #require(FileHandle(forUpdatingAtPath: path))
        defer { try? handle.close() }
        try handle.seek(toOffset: UInt64(offset))
        let old = try #require(try handle.read(upToCount: 1)).first!
        try handle.seek(toOffset: UInt64(offset))
        try handle.write(contentsOf: [change(old)])
    }

    /// A flipped bit, or a wrong length, in a record the column picks: that record is reported and never
    /// served; every other one is, since the column (not the damaged length) says where the next one starts.
    @Test(arguments: ["bit", "length", "seq"])
    func damageInPickedRecordsIsReportedAndNeverServed(kind: String) throws {
        let selection = Self.selections[0]
        var rng = SplitMix64(seed: 9)
        for trial in 0..<12 {
            let dir = TemporaryDirectory(inMemory: true)
            let (store, events) = try Self.store(in: dir.path)
            defer { store.close() }
            let files = Files.list(dir.path + "/hot").map { dir.path + "/hot/" + $0 }
            let path = files[trial % files.count]
            let records = RecordLayout.parse(try Files.read(path))
            let matching = try records.filter { selection.matches(Array(try Self.type(of: $0.body).utf8)) }
            guard let target = matching.randomElement(using: &rng) else { continue }
            switch kind {
            case "bit":
                // In the record's last bytes, past its type: the record still matches, so the scan checks its CRC.
                let byte = Int.random(in: (target.end - 8)..<target.end, using: &rng)
                try Self.poke(path, at: byte) { $0 ^ UInt8(1) << UInt8(Int.random(in: 0..<8, using: &rng)) }
            case "length":
                try Self.poke(path, at: target.offset + 4) { $0 &+ UInt8(Int.random(in: 1...200, using: &rng)) }
            default:
                try Self.poke(path, at: target.offset + 16) { $0 &+ 1 }  // the seq's low byte
            }
            let predicate = Self.predicate(selection)
            for twoThreads in [false, true] {
                let got = try Self.served(store, ScanHints(types: selection), twoThreads: twoThreads, matching: predicate)
                let want = try events.filter { event in
                    try event.seq != target.seq && selection.matches(Array(Self.type(of: event.body).utf8))
                }
                #expect(got.map(\.0) == want.map(\.seq), "\(kind) in seq \(target.seq) of \(path)")
                #expect(got.map(\.1) == want.map(\.body))
            }
            #expect(!store.stats().corruptSegments.isEmpty, "\(kind): the damage is reported")
        }
    }
}
