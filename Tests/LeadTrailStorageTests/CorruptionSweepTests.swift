import Foundation
import LeadTrailEvents
import Logging
import Testing
@testable import LeadTrailStorage
import LeadTrailTestSupport

/// Single bit flips in every kind of file a store holds: hot segments (header, records,
/// footer index, trailer) and their type index files, the active segment, warm files (header,
/// blocks, footer, trailer), cold archives (gzip members), their `.ids` and manifests, restored
/// segments, and the checkpoint. Each flip must be named by `verify` (offline; for the
/// active segment also by recovery; a type index file, which holds no event and is built
/// again, among its warnings), the store must still open, and nothing it serves
/// may differ from what was stored. Short: a few flips per region; long: hundreds per file
/// (`LEADTRAIL_BITFLIPS_PER_FILE` overrides).
@Suite struct CorruptionSweepTests {
    static let day: Int64 = 86_400_000
    static let now: Int64 = 1_767_225_600_000

    /// A closed store with every kind of file, and its events by seq.
    static func makeStore(_ dir: String) throws -> [UInt64: [UInt8]] {
        var configuration = StoreConfiguration(directory: dir)
        configuration.tiers.intervalSeconds = 0
        let store = try EventStore.open(configuration)
        for (index, age) in [120, 45, 10].enumerated() {
            let base = now - Int64(age) * day
            let events = try (0..<120).map { i in
                try Events.make(lead: "lead_\(i % 9)", id: "a\(age)_\(i)", timestampMs: base + Int64(i) * 1000,
                                extra: "\"n\":\(index * 1000 + i),\"metadata\":{\"text\":\"\(String(repeating: "abc", count: i % 40))\"}")
            }
            _ = try store.appendAndWait(events)
            _ = try store.rotate()
        }
        _ = try store.appendAndWait(try (0..<20).map { try Events.make(lead: "lead_1", id: "fresh\($0)", timestampMs: now + Int64($0)) })
        _ = try store.tier(now: now)
        // A second cold member in the same day's archive is not needed; one restored copy is.
        _ = try store.restore(fromMs: nil, toMs: nil)
        var bySeq: [UInt64: [UInt8]] = [:]
        try store.scan(ScanHints()) { bySeq[$0.seq] = Array($0.body); return true }
        store.close()
        return bySeq
    }

    /// The regions of each file worth aiming at, as byte ranges.
    static func regions(of path: String, bytes: [UInt8]) -> [(String, Range<Int>)] {
        let n = bytes.count
        if path.hasSuffix("/checkpoint") { return [("checkpoint", 0..<n)] }
        if path.hasSuffix(".manifest") {
            let newline = bytes.firstIndex(of: 0x0A) ?? 0
            return [("manifest header line", 0..<newline + 1), ("manifest body", (newline + 1)..<n)]
        }
        if path.hasSuffix(".ids") { return [("id index", 0..<n)] }
        if path.hasSuffix(".types") { return [("type index header", 0..<56), ("type index body", 56..<n)] }
        if path.hasSuffix(".ltz") { return [("gzip header", 0..<10), ("gzip body", 10..<(n - 8)), ("gzip trailer", (n - 8)..<n)] }
        if path.hasSuffix(".lz4s") {
            return [("warm header", 0..<64), ("warm block header", 64..<96), ("warm blocks", 96..<(n - 600)), ("warm footer", (n - 600)..<(n - 64)),
                    ("warm trailer", (n - 64)..<n)]
        }
        if path.hasSuffix(".open") { return [("active header", 0..<64), ("active records", 64..<n)] }
        // Sealed hot or restored segment.
        let dataEnd = RecordLayout.dataEnd(ofSealed: bytes) ?? n - 80
        return [("segment header", 0..<64), ("record header", 64..<140), ("records", 140..<dataEnd), ("footer index", dataEnd..<(n - 80)),
                ("trailer", (n - 80)..<n)]
    }

    /// What a scan by type leaves out of what the same scan without types serves (every event of the store is of
    /// the scanned type), or nil when nothing.
    static func recordsMissedByATypeScan(_ store: EventStore) throws -> String? {
        var all: [UInt64] = [], byType: [UInt64] = []
        try store.scan(ScanHints()) { all.append($0.seq); return true }
        try store.scan(ScanHints(types: TypeSelection(exact: [], prefixes: [Array("source.".utf8)]))) { byType.append($0.seq); return true }
        return byType == all ? nil : "a scan by type served \(byType.count) of \(all.count) events"
    }

    @Test(.timeLimit(.minutes(120)))
    func everyBitFlipIsDetectedAndNeverServed() throws {
        let source = TemporaryDirectory(inMemory: true)
        let original = try Self.makeStore(source.path)
        var files: [String] = ["checkpoint"]
        for folder in ["hot", "warm", "cold", "restored"] {
            for name in Files.list(source.path + "/" + folder) where !name.hasSuffix(".log") { files.append(folder + "/" + name) }
        }
        // Every kind is present.
        for suffix in [".seg", ".types", ".open", ".lz4s", ".ltz", ".ids", ".manifest"] {
            #expect(files.contains { $0.hasSuffix(suffix) }, "no \(suffix) file")
        }
        #expect(files.contains { $0.hasPrefix("restored/") })

        let perRegion = Int(ProcessInfo.processInfo.environment["LEADTRAIL_BITFLIPS_PER_FILE"] ?? "") ?? (Environment.longTests ? 60 : 3)
        var rng = SplitMix64(seed: 20_260_101)
        var tried = 0
        var undetected: [String] = []
        var served: [String] = []
        for file in files {
            let bytes = try Files.read(source.path + "/" + file)
            for (region, range) in Self.regions(of: "/" + file, bytes: bytes) where !range.isEmpty {
                // The first and last byte of the region, and random ones.
                var offsets = [range.lowerBound, range.upperBound - 1]
                for _ in 0..<max(0, perRegion - 2) { offsets.append(Int.random(in: range, using: &rng)) }
                for offset in offsets.prefix(max(perRegion, 1)) {
                    let bit = Int.random(in: 0..<8, using: &rng)
                    tried += 1
                    let work = TemporaryDirectory(inMemory: true)
                    try Files.copyDirectory(source.path, to: work.path)
                    try Files.flipBit(work.path + "/" + file, byte: offset, bit: bit)
                    let what = "\(file) \(region) byte \(offset) bit \(bit)"
                    let name = String(file.split(separator: "/").last!)

                    // Offline verify names the file (or, for the active segment, the next start does).
                    let offline = try EventStore.verify(directory: work.path)
                    var named = offline.corrupt.contains { $0.file.hasSuffix(name) || $0.file == name }

                    var configuration = StoreConfiguration(directory: work.path)
                    configuration.tiers.intervalSeconds = 0
                    let store: EventStore
                    do {
                        store = try EventStore.open(configuration, logger: .init(label: "sweep", factory: { _ in SwiftLogNoOpLogHandler() }))
                    } catch {
                        undetected.append("\(what): the store did not open: \(error)")
                        continue
                    }
                    if !named && (file.hasSuffix(".open") || file == "checkpoint") {
                        named = store.stats().corruptSegments.contains { $0.contains(name) } || offline.warnings.contains { $0.contains(name) }
                    }
                    if !named && file.hasSuffix(".types") { named = offline.warnings.contains { $0.contains(name) } }
                    if !named { undetected.append(what) }
                    // Whatever is served is exactly what was stored.
                    _ = try? store.restore(fromMs: nil, toMs: nil)
                    try store.scan(ScanHints()) { record in
                        if original[record.seq] != Array(record.body) { served.append("\(what): seq \(record.seq) served changed") }
                        return true
                    }
                    // A scan by type (every event here is a source.submitted) passes over none that the full scan serves.
                    if let missed = try Self.recordsMissedByATypeScan(store) { served.append("\(what): \(missed)") }
                    for seq in stride(from: UInt64(1), through: UInt64(original.count), by: 37) {
                        if let event = try store.event(seq: seq), event.body != original[seq] { served.append("\(what): get seq \(seq) changed") }
                    }
                    _ = store.verify()
                    store.close()
                }
            }
        }
        #expect(undetected.isEmpty, "\(undetected.count) of \(tried) flips not detected: \(undetected.prefix(15))")
        #expect(served.isEmpty, "\(served.prefix(10))")
        print("reliability: bit flips: \(tried) single-bit flips over \(files.count) files of every kind, \(tried - undetected.count) detected, \(served.count) changed events served")
    }

    /// Every kind of file cut short (to nothing, one byte, half, all but the last byte), and the
    /// last 512 bytes zeroed or garbage: detected (named by verify, or reported by the next start),
    /// the store opens, and what it serves is unchanged.
    @Test(.timeLimit(.minutes(60)))
    func truncatedAndOverwrittenTailsOfEveryFile() throws {
        let source = TemporaryDirectory(inMemory: true)
        let original = try Self.makeStore(source.path)
        var files: [String] = ["checkpoint"]
        for folder in ["hot", "warm", "cold", "restored"] {
            for name in Files.list(source.path + "/" + folder) where !name.hasSuffix(".log") { files.append(folder + "/" + name) }
        }
        var rng = SplitMix64(seed: 512)
        var tried = 0
        var undetected: [String] = []
        var served: [String] = []
        for file in files {
            let bytes = try Files.read(source.path + "/" + file)
            let n = bytes.count
            var damages: [(String, [UInt8])] = [0, 1, n / 2, n - 1].map { ("cut to \($0) bytes", Array(bytes[0..<$0])) }
            let tail = max(0, n - 512)
            damages.append(("last 512 bytes zeroed", Array(bytes[0..<tail]) + [UInt8](repeating: 0, count: n - tail)))
            damages.append(("last 512 bytes garbage", Array(bytes[0..<tail]) + (tail..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }))
            for (what, damaged) in damages where damaged != bytes {
                tried += 1
                let work = TemporaryDirectory(inMemory: true)
                try Files.copyDirectory(source.path, to: work.path)
                try Files.write(damaged, to: work.path + "/" + file)
                let name = String(file.split(separator: "/").last!)
                let offline = try EventStore.verify(directory: work.path)
                var configuration = StoreConfiguration(directory: work.path)
                configuration.tiers.intervalSeconds = 0
                let store: EventStore
                do {
                    store = try EventStore.open(configuration, logger: .init(label: "sweep", factory: { _ in SwiftLogNoOpLogHandler() }))
                } catch {
                    undetected.append("\(file) \(what): the store did not open: \(error)")
                    continue
                }
                let named = offline.corrupt.contains { $0.file.hasSuffix(name) }
                    || ((file.hasSuffix(".open") || file == "checkpoint") && (!offline.isClean || !offline.warnings.isEmpty || !store.stats().corruptSegments.isEmpty))
                    || (file.hasSuffix(".types") && offline.warnings.contains { $0.contains(name) })
                if !named { undetected.append("\(file) \(what)") }
                _ = try? store.restore(fromMs: nil, toMs: nil)
                try store.scan(ScanHints()) { record in
                    if original[record.seq] != Array(record.body) { served.append("\(file) \(what): seq \(record.seq) served changed") }
                    return true
                }
                if let missed = try Self.recordsMissedByATypeScan(store) { served.append("\(file) \(what): \(missed)") }
                store.close()
            }
        }
        #expect(undetected.isEmpty, "\(undetected)")
        #expect(served.isEmpty, "\(served.prefix(10))")
        print("reliability: truncations and overwritten tails: \(tried) over \(files.count) files, \(tried - undetected.count) detected, \(served.count) changed events served")
    }

    /// Trailers with a valid checksum but sizes no file can have (what the fuzzer found): reported, never a trap.
    @Test(arguments: [(".seg", 8), (".seg", 48), (".lz4s", 16), (".lz4s", 24)])
    func validChecksumButImpossibleSizesAreDamageNotACrash(suffix: String, field: Int) throws {
        let source = TemporaryDirectory(inMemory: true)
        let original = try Self.makeStore(source.path)
        let folder = suffix == ".seg" ? "hot" : "warm"
        let name = try #require(Files.list(source.path + "/" + folder).first { $0.hasSuffix(suffix) })
        let path = source.path + "/" + folder + "/" + name
        var bytes = try Files.read(path)
        let trailerSize = suffix == ".seg" ? SegmentFormat.trailerSize : WarmFormat.trailerSize
        let start = bytes.count - trailerSize
        bytes.withUnsafeMutableBytes { b in
            b.storeBytes(of: UInt64(0x7FFF_FFFF_FFFF_FFF0).littleEndian, toByteOffset: start + field, as: UInt64.self)
            let crc = CRC32C.mask(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[start..<(start + trailerSize - 4)])))
            b.storeBytes(of: crc.littleEndian, toByteOffset: start + trailerSize - 4, as: UInt32.self)
        }
        try Files.write(bytes, to: path)
        #expect(try EventStore.verify(directory: source.path).corrupt.contains { $0.file.hasSuffix(name) })
        var configuration = StoreConfiguration(directory: source.path)
        configuration.tiers.intervalSeconds = 0
        let store = try EventStore.open(configuration, logger: .init(label: "sweep", factory: { _ in SwiftLogNoOpLogHandler() }))
        defer { store.close() }
        try store.scan(ScanHints()) { record in
            #expect(original[record.seq] == Array(record.body))
            return true
        }
        #expect(!store.verify().isClean)
    }

    /// A record, checkpoint or manifest with a valid checksum but a seq or offset no store can have
    /// (what the fuzzer found next): `seq + 1` and `offset + length` trapped at startup. Now damage.
    @Test(arguments: ["record", "checkpoint", "manifest"])
    func validChecksumButImpossibleValuesAreDamageNotACrash(_ kind: String) throws {
        let source = TemporaryDirectory(inMemory: true)
        let original = try Self.makeStore(source.path)
        switch kind {
        case "record":
            let path = try #require(Files.openSegment(source.path))
            var bytes = try Files.read(path)
            let last = try #require(RecordLayout.parse(bytes).last)
            bytes.withUnsafeMutableBytes { b in
                b.storeBytes(of: UInt64.max.littleEndian, toByteOffset: last.offset + 16, as: UInt64.self)
                let crc = CRC32C.mask(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[(last.offset + 4)..<last.end])))
                b.storeBytes(of: crc.littleEndian, toByteOffset: last.offset, as: UInt32.self)
            }
            try Files.write(bytes, to: path)
        case "checkpoint":
            try Files.write(Checkpoint(segmentID: 4, durableOffset: 64, lastSeq: .max).encode(), to: source.path + "/checkpoint")
        default:
            let name = try #require(Files.list(source.path + "/cold").first { $0.hasSuffix(".manifest") })
            var archive = try #require(ColdArchive.decodeManifest(try Files.read(source.path + "/cold/" + name)))
            archive.members[0].offset = .max - 10
            try Files.write(archive.encodeManifest(), to: source.path + "/cold/" + name)
        }
        // Named by verify before the start (the start rewrites a damaged checkpoint), or by the start itself.
        let offline = try EventStore.verify(directory: source.path)
        var configuration = StoreConfiguration(directory: source.path)
        configuration.tiers.intervalSeconds = 0
        let store = try EventStore.open(configuration, logger: .init(label: "sweep", factory: { _ in SwiftLogNoOpLogHandler() }))
        defer { store.close() }
        try store.scan(ScanHints()) { record in
            #expect(original[record.seq] == Array(record.body))
            return true
        }
        #expect(!store.stats().corruptSegments.isEmpty || !offline.isClean || !store.verify().isClean)
    }

    /// Every bit of a manifest's header line and of its first members' fields: no flip may decode.
    @Test func everyBitOfAManifestHeaderLineIsChecked() {
        let member = ColdMember(
            segmentID: 10, offset: 0, length: 2748, rawLength: 9000, rawCRC: 0xABCD_EF01, idsOffset: 0, idsCount: 120, idsCRC: 0xFACE_B00C,
            firstSeq: 1, lastSeq: 120, minTs: 1, maxTs: 2, events: 120, leadFilter: [1, 2, 3], memberCRC: 0xDEAD_BEEF)
        var current = member
        current.inflatedLength = 4000
        current.idsFormat = 2
        // A v1 manifest and a v3 one (a member without index sections and with 8-byte `.ids` entries).
        for members in [[member], [current]] {
            let bytes = ColdArchive(day: "2025-09-03", members: members).encodeManifest()
            #expect(ColdArchive.decodeManifest(bytes)?.members == members)
            var accepted: [String] = []
            for byte in 0..<bytes.count {
                for bit in 0..<8 {
                    var flipped = bytes
                    flipped[byte] ^= 1 << UInt8(bit)
                    if ColdArchive.decodeManifest(flipped) != nil { accepted.append("byte \(byte) bit \(bit)") }
                }
            }
            #expect(accepted.isEmpty, "\(accepted)")
        }
    }
}


/// Writes the seed corpus of the fuzz targets from a real store (`Fuzz/corpus/<target>/`).
/// Runs only when `LEADTRAIL_FUZZ_CORPUS_OUT` names the corpus folder: `scripts/fuzz-seeds`.
@Suite struct FuzzCorpusSeeds {
    @Test(.enabled(if: ProcessInfo.processInfo.environment["LEADTRAIL_FUZZ_CORPUS_OUT"] != nil, "set LEADTRAIL_FUZZ_CORPUS_OUT to write the fuzz seeds"))
    func writeSeeds() throws {
        let out = try #require(ProcessInfo.processInfo.environment["LEADTRAIL_FUZZ_CORPUS_OUT"])
        let source = TemporaryDirectory(inMemory: true)
        _ = try CorruptionSweepTests.makeStore(source.path)
        func put(_ target: String, _ name: String, _ bytes: [UInt8]) throws {
            try FileManager.default.createDirectory(atPath: out + "/" + target, withIntermediateDirectories: true)
            try Files.write(bytes, to: out + "/" + target + "/" + name)
        }
        for name in Files.list(source.path + "/hot") { try put("fuzz-segment", name, try Files.read(source.path + "/hot/" + name)) }
        for name in Files.list(source.path + "/restored") { try put("fuzz-segment", "restored-" + name, try Files.read(source.path + "/restored/" + name)) }
        try put("fuzz-segment", "checkpoint", try Files.read(source.path + "/checkpoint"))
        for name in Files.list(source.path + "/warm") { try put("fuzz-warm", name, try Files.read(source.path + "/warm/" + name)) }
        for name in Files.list(source.path + "/cold") {
            let bytes = try Files.read(source.path + "/cold/" + name)
            if name.hasSuffix(".manifest") {
                try put("fuzz-cold", name, bytes)
                // A gzip member with its raw length in front, as the target reads it.
                if let archive = ColdArchive.decodeManifest(bytes), let member = archive.members.first {
                    let ltz = try Files.read(source.path + "/cold/" + archive.day + ".ltz")
                    var length = UInt32(member.rawLength).littleEndian
                    let prefix = withUnsafeBytes(of: &length) { Array($0) }
                    try put("fuzz-cold", "member-" + archive.day, prefix + Array(ltz[member.offset..<(member.offset + member.length)]))
                }
            }
        }
        let events = [
            #"{"type":"source.submitted","lead_id":"L1","event_id":"e1","timestamp":"2024-01-15T14:30:45.234Z","metadata":{"cost":1.5}}"#,
            #"{"type":"recipient.delivered","lead_id":"L2","outcome":"success","duration_ms":12,"lead_snapshot":{"email":"a@b.c","phone":"5551234567","name":"Ann"}}"#,
            #"{"type":"custom.score_changed","lead_id":"L\u0033","timestamp":"2024-01-15T14:30:45+02:00","flow_id":"f","entity_id":"e","step_id":"s","extra":[1,2,{"x":null}]}"#,
            #"{"type":"x.y","lead_id":"z","event_id":null,"timestamp":null}"#,
        ]
        for (i, event) in events.enumerated() { try put("fuzz-event", "event-\(i)", Array(event.utf8)) }
        let requests = [
            #"{"op":"ping","id":1}"#,
            #"{"op":"append","id":"a","events":["# + events.joined(separator: ",") + "]}",
            #"{"op":"scan","types":["source.*"],"from":"2024-01-01T00:00:00Z","to":"2025-01-01T00:00:00Z","limit":5,"after_seq":3}"#,
            #"{"op":"timeline","lead_id":"L1","purpose":"audit"}"#,
            #"{"op":"get","event_id":"e1"}"#,
        ]
        for (i, request) in requests.enumerated() {
            let body = Array(request.utf8)
            var length = UInt32(body.count).bigEndian
            let header = withUnsafeBytes(of: &length) { Array($0) }
            try put("fuzz-frame", "frame-\(i)", header + body + header + body)
        }
    }
}
