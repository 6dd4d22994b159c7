import Foundation
import LeadTrailEvents
import Testing
@testable import LeadTrailStorage

/// Single bit flips in every kind of file a store holds: hot segments (header, records,
/// footer index, trailer), the active segment, warm files (header, blocks, footer,
/// trailer), cold archives (gzip members), their `.ids` and manifests, restored
/// segments, and the checkpoint. Each flip must be named by `verify` (offline; for the
/// active segment also by recovery), the store must still open, and nothing it serves
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

    @Test(.timeLimit(.minutes(120)))
    func everyBitFlipIsDetectedAndNeverServed() throws {
        let source = TemporaryDirectory(inMemory: true)
        let original = try Self.makeStore(source.path)
        var files: [String] = ["checkpoint"]
        for folder in ["hot", "warm", "cold", "restored"] {
            for name in Files.list(source.path + "/" + folder) where !name.hasSuffix(".log") { files.append(folder + "/" + name) }
        }
        // Every kind is present.
        for suffix in [".seg", ".open", ".lz4s", ".ltz", ".ids", ".manifest"] {
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
                        store = try EventStore.open(configuration, logger: .init(label: "sweep", factory: { _ in SwiftLogNoOp() }))
                    } catch {
                        undetected.append("\(what): the store did not open: \(error)")
                        continue
                    }
                    if !named && (file.hasSuffix(".open") || file == "checkpoint") {
                        named = store.stats().corruptSegments.contains { $0.contains(name) } || offline.warnings.contains { $0.contains(name) }
                    }
                    if !named { undetected.append(what) }
                    // Whatever is served is exactly what was stored.
                    _ = try? store.restore(fromMs: nil, toMs: nil)
                    try store.scan(ScanHints()) { record in
                        if original[record.seq] != Array(record.body) { served.append("\(what): seq \(record.seq) served changed") }
                        return true
                    }
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

    /// Every bit of a manifest's header line and of its first members' fields: no flip may decode.
    @Test func everyBitOfAManifestHeaderLineIsChecked() {
        let member = ColdMember(
            segmentID: 10, offset: 0, length: 2748, rawLength: 9000, rawCRC: 0xABCD_EF01, idsOffset: 0, idsCount: 120, idsCRC: 0xFACE_B00C,
            firstSeq: 1, lastSeq: 120, minTs: 1, maxTs: 2, events: 120, leadFilter: [1, 2, 3], memberCRC: 0xDEAD_BEEF)
        let bytes = ColdArchive(day: "2025-09-03", members: [member]).encodeManifest()
        #expect(ColdArchive.decodeManifest(bytes)?.members == [member])
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

import Logging

/// A log handler that drops everything (the sweeps log thousands of expected errors).
struct SwiftLogNoOp: LogHandler {
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .critical
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { nil }
        set {}
    }
    func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {}
}
