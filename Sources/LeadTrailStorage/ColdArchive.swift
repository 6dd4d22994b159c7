#if canImport(Glibc)
import Glibc
#endif
import CZlib
import Foundation
import LeadTrailEvents
import Logging

/// One archived segment: a gzip member of a day's archive holding the exact
/// bytes of the sealed hot segment file.
struct ColdMember: Sendable, Equatable {
    var segmentID: UInt64
    var offset: Int
    var length: Int
    var rawLength: Int
    var rawCRC: UInt32
    /// Where its event-id entries are in the day's `.ids` file (one per record; see ``idsFormat``),
    /// and the CRC32C of their bytes there.
    var idsOffset: Int
    var idsCount: Int
    var idsCRC: UInt32
    var firstSeq: UInt64
    var lastSeq: UInt64
    var minTs: Int64
    var maxTs: Int64
    var events: UInt64
    /// A Bloom filter over the 32-bit lead hashes of its events.
    var leadFilter: [UInt8]
    /// CRC32C of the member's compressed bytes (gzip header and trailer included): the gzip CRC-32
    /// covers only the inflated bytes, so a flipped bit in the header or in the deflate stream's
    /// padding would go unnoticed. Absent in manifests written before it existed.
    var memberCRC: UInt32? = nil
    /// Set for members that hold the segment without its lead and event-id index sections (member
    /// format 2): how many bytes the member inflates to. The lead section is rebuilt from the records
    /// and the event-id section comes from the day's `.ids` file; the rebuilt file must match
    /// `rawLength` and `rawCRC`. Nil for members holding the whole hot file (format 1).
    var inflatedLength: Int? = nil
    /// How its entries are stored in the `.ids` file. 1: the hot event-id section as it is, 16 bytes an
    /// entry (`hash u64, seq u64`, sorted by hash, then seq). 2: the hashes alone, 8 bytes each, in seq
    /// order, the n-th (from 0) being the hash of seq `firstSeq + n`; written when the segment's seqs run
    /// from `firstSeq` without a gap, so the hot section is rebuilt from them byte for byte.
    var idsFormat: Int = 1

    /// Bytes an entry takes in the `.ids` file.
    var idsEntrySize: Int { idsFormat == 2 ? 8 : 16 }
    /// Where its entries are in the `.ids` file.
    var idsRange: Range<Int> { idsOffset..<(idsOffset + idsCount * idsEntrySize) }

    static let filterHashes = 7

    static func makeFilter(leadHashes: [UInt32]) -> [UInt8] {
        let bits = max(64, leadHashes.count * 10)
        var filter = [UInt8](repeating: 0, count: (bits + 7) / 8)
        for hash in leadHashes {
            for k in 0..<filterHashes {
                let bit = Int(StableHash.finalize(UInt64(hash) &+ UInt64(k) &* 0x9E37_79B9_7F4A_7C15) % UInt64(filter.count * 8))
                filter[bit / 8] |= 1 << (bit % 8)
            }
        }
        return filter
    }

    func mayHoldLead(hash: UInt32) -> Bool {
        guard !leadFilter.isEmpty else { return true }
        for k in 0..<Self.filterHashes {
            let bit = Int(StableHash.finalize(UInt64(hash) &+ UInt64(k) &* 0x9E37_79B9_7F4A_7C15) % UInt64(leadFilter.count * 8))
            if leadFilter[bit / 8] & (1 << (bit % 8)) == 0 { return false }
        }
        return true
    }

    var json: [String: Any] {
        var out: [String: Any] = [
            "segment_id": segmentID, "offset": offset, "length": length, "raw_length": rawLength, "raw_crc32c": rawCRC,
            "ids_offset": idsOffset, "ids_count": idsCount, "ids_crc32c": idsCRC, "first_seq": firstSeq, "last_seq": lastSeq,
            "min_ts": minTs, "max_ts": maxTs, "events": events, "lead_filter": Data(leadFilter).base64EncodedString(),
        ]
        if let memberCRC { out["member_crc32c"] = memberCRC }
        if let inflatedLength { out["inflated_length"] = inflatedLength }
        if idsFormat != 1 { out["ids_format"] = idsFormat }
        return out
    }

    /// Whether `bytes` are this member's stored bytes (when the manifest records their checksum).
    func matchesStoredBytes(_ bytes: [UInt8]) -> Bool {
        guard let memberCRC else { return true }
        return CRC32C.checksum(bytes) == memberCRC
    }

    init(segmentID: UInt64, offset: Int, length: Int, rawLength: Int, rawCRC: UInt32, idsOffset: Int, idsCount: Int, idsCRC: UInt32,
         firstSeq: UInt64, lastSeq: UInt64, minTs: Int64, maxTs: Int64, events: UInt64, leadFilter: [UInt8], memberCRC: UInt32? = nil,
         inflatedLength: Int? = nil, idsFormat: Int = 1) {
        self.segmentID = segmentID
        self.offset = offset
        self.length = length
        self.rawLength = rawLength
        self.rawCRC = rawCRC
        self.idsOffset = idsOffset
        self.idsCount = idsCount
        self.idsCRC = idsCRC
        self.firstSeq = firstSeq
        self.lastSeq = lastSeq
        self.minTs = minTs
        self.maxTs = maxTs
        self.events = events
        self.leadFilter = leadFilter
        self.memberCRC = memberCRC
        self.inflatedLength = inflatedLength
        self.idsFormat = idsFormat
    }

    init?(json: [String: Any]) {
        func int(_ key: String) -> Int? { (json[key] as? NSNumber)?.intValue }
        func u64(_ key: String) -> UInt64? { (json[key] as? NSNumber)?.uint64Value }
        func i64(_ key: String) -> Int64? { (json[key] as? NSNumber)?.int64Value }
        guard let segmentID = u64("segment_id"), let offset = int("offset"), let length = int("length"),
              let rawLength = int("raw_length"), let rawCRC = u64("raw_crc32c"), let idsOffset = int("ids_offset"),
              let idsCount = int("ids_count"), let idsCRC = u64("ids_crc32c"), let firstSeq = u64("first_seq"),
              let lastSeq = u64("last_seq"), let minTs = i64("min_ts"), let maxTs = i64("max_ts"), let events = u64("events"),
              let filter = (json["lead_filter"] as? String).flatMap({ Data(base64Encoded: $0) })
        else { return nil }
        // Values no archive can hold would overflow the offset and seq arithmetic of recovery and restore.
        let limit = Int(SegmentFormat.maximumFileSize)
        guard (0...limit).contains(offset), (0...limit).contains(length), (0...limit).contains(rawLength),
              (0...limit).contains(idsOffset), (0...(limit / 16)).contains(idsCount),
              firstSeq <= SegmentFormat.maximumSeq, lastSeq <= SegmentFormat.maximumSeq
        else { return nil }
        self.init(
            segmentID: segmentID, offset: offset, length: length, rawLength: rawLength, rawCRC: UInt32(truncatingIfNeeded: rawCRC),
            idsOffset: idsOffset, idsCount: idsCount, idsCRC: UInt32(truncatingIfNeeded: idsCRC), firstSeq: firstSeq,
            lastSeq: lastSeq, minTs: minTs, maxTs: maxTs, events: events, leadFilter: [UInt8](filter))
        if let crc = u64("member_crc32c") { memberCRC = UInt32(truncatingIfNeeded: crc) }
        if json["inflated_length"] != nil {
            guard let inflated = int("inflated_length"), (0...limit).contains(inflated) else { return nil }
            inflatedLength = inflated
        }
        if json["ids_format"] != nil {
            guard let format = int("ids_format"), format == 1 || format == 2 else { return nil }
            idsFormat = format
        }
    }

    /// The `.ids` bytes of format 2 for a hot event-id section: its hashes in seq order. Nil when the section
    /// cannot be rebuilt from them byte for byte: its seqs are not exactly `firstSeq`, `firstSeq + 1`, ...
    /// (one entry each), or it is not sorted as sealing sorts it.
    static func compactIDs(eventSection: [UInt8], firstSeq: UInt64) -> [UInt8]? {
        guard eventSection.count % 16 == 0 else { return nil }
        let count = eventSection.count / 16
        var hashes = [UInt64](repeating: 0, count: count)
        var seen = [Bool](repeating: false, count: count)
        let placed: Bool = eventSection.withUnsafeBytes { b in
            for i in 0..<count {
                let seq = b.u64(at: i * 16 + 8)
                guard seq >= firstSeq, seq - firstSeq < UInt64(count), !seen[Int(seq - firstSeq)] else { return false }
                seen[Int(seq - firstSeq)] = true
                hashes[Int(seq - firstSeq)] = b.u64(at: i * 16)
            }
            return true
        }
        guard placed else { return nil }
        var compact = [UInt8]()
        compact.reserveCapacity(count * 8)
        for hash in hashes { withUnsafeBytes(of: hash.littleEndian) { compact.append(contentsOf: $0) } }
        guard Self.eventSection(fromCompactIDs: compact, firstSeq: firstSeq) == eventSection else { return nil }
        return compact
    }

    /// The hot event-id section (`hash u64, seq u64`, sorted by hash, then seq) from `.ids` bytes of format 2.
    static func eventSection(fromCompactIDs compact: [UInt8], firstSeq: UInt64) -> [UInt8] {
        let entries = EventIDEntrySort.sortedByHash(compactEntries(compact, firstSeq: firstSeq))
        var section = [UInt8]()
        section.reserveCapacity(entries.count * 16)
        for entry in entries {
            withUnsafeBytes(of: entry.hash.littleEndian) { section.append(contentsOf: $0) }
            withUnsafeBytes(of: entry.seq.littleEndian) { section.append(contentsOf: $0) }
        }
        return section
    }

    /// The (hash, seq) entries of `.ids` bytes of format 2, in seq order.
    static func compactEntries(_ compact: [UInt8], firstSeq: UInt64) -> [(hash: UInt64, seq: UInt64)] {
        compact.withUnsafeBytes { b in (0..<(b.count / 8)).map { (b.u64(at: $0 * 8), firstSeq + UInt64($0)) } }
    }

    /// The hot event-id section for this member's `.ids` bytes (already checked against `idsCRC`).
    func eventSection(fromIDs ids: [UInt8]) -> [UInt8] {
        idsFormat == 2 ? Self.eventSection(fromCompactIDs: ids, firstSeq: firstSeq) : ids
    }

    /// The (hash, seq) entries of this member's `.ids` bytes (already checked against `idsCRC`).
    func eventEntries(fromIDs ids: [UInt8]) -> [(hash: UInt64, seq: UInt64)] {
        if idsFormat == 2 { return Self.compactEntries(ids, firstSeq: firstSeq) }
        return ids.withUnsafeBytes { b in (0..<(b.count / 16)).map { (b.u64(at: $0 * 16), b.u64(at: $0 * 16 + 8)) } }
    }

    /// The lead hashes of a checked hot segment file's lead section.
    static func leadHashes(ofHotFile raw: [UInt8], trailer: SegmentTrailer) -> [UInt32] {
        let leadStart = Int(trailer.dataEnd) + Int(trailer.sparseCount) * SegmentFormat.sparseEntrySize
        return raw.withUnsafeBytes { b in
            (0..<Int(trailer.recordCount)).map { UInt32(truncatingIfNeeded: b.u64(at: leadStart + $0 * SegmentFormat.leadEntrySize) >> 32) }
        }
    }

    /// The hot segment file without its lead and event-id index sections: what a format 2 member holds.
    static func reducedHotFile(_ raw: [UInt8], trailer: SegmentTrailer) -> [UInt8] {
        let sparseEnd = Int(trailer.dataEnd) + Int(trailer.sparseCount) * SegmentFormat.sparseEntrySize
        return Array(raw[0..<sparseEnd]) + Array(raw[(raw.count - SegmentFormat.trailerSize)...])
    }

    /// Inflates this member and gives back the exact hot segment file it was made from, or nil when
    /// anything fails its checks (gzip CRC-32 and size, the event-id index's CRC, the whole file's CRC32C).
    /// `ids` reads `count` bytes at `offset` of the day's `.ids` file (members with `inflatedLength` only).
    func hotFile(fromStored stored: [UInt8], ids: (_ offset: Int, _ count: Int) -> [UInt8]?) -> [UInt8]? {
        guard stored.count == length, matchesStoredBytes(stored) else { return nil }
        guard let inflatedLength else {
            guard let raw = Gzip.decompress(stored, rawLength: rawLength), CRC32C.checksum(raw) == rawCRC else { return nil }
            return raw
        }
        guard let reduced = Gzip.decompress(stored, rawLength: inflatedLength),
              reduced.count >= SegmentFormat.headerSize + SegmentFormat.trailerSize,
              let trailer = reduced.withUnsafeBytes({ SegmentTrailer.decode(UnsafeRawBufferPointer(rebasing: $0[(reduced.count - SegmentFormat.trailerSize)...])) })
        else { return nil }
        let dataEnd = Int(trailer.dataEnd), records = Int(trailer.recordCount)
        let sparseEnd = dataEnd + Int(trailer.sparseCount) * SegmentFormat.sparseEntrySize
        guard dataEnd >= SegmentFormat.headerSize, sparseEnd + SegmentFormat.trailerSize == reduced.count, records == idsCount,
              dataEnd + trailer.indexSize + SegmentFormat.trailerSize == rawLength,
              let idsBytes = ids(idsRange.lowerBound, idsRange.count), idsBytes.count == idsRange.count, CRC32C.checksum(idsBytes) == idsCRC
        else { return nil }
        let eventSection = self.eventSection(fromIDs: idsBytes)
        // The lead section: one `lead_hash << 32 | offset` per record, sorted (as sealing writes it).
        var leads: [UInt64] = []
        leads.reserveCapacity(records)
        let walked: Bool = reduced.withUnsafeBytes { b in
            var offset = SegmentFormat.headerSize
            while offset < dataEnd {
                guard dataEnd - offset >= SegmentFormat.recordHeaderSize else { return false }
                let total = SegmentFormat.recordHeaderSize + Int(b.u32(at: offset + 4))
                guard total <= dataEnd - offset, leads.count < records else { return false }
                leads.append(UInt64(b.u32(at: offset + 12)) << 32 | UInt64(offset))
                offset += total
            }
            return leads.count == records
        }
        guard walked else { return nil }
        leads.sort()
        var raw = [UInt8]()
        raw.reserveCapacity(rawLength)
        raw.append(contentsOf: reduced[0..<sparseEnd])
        for entry in leads { withUnsafeBytes(of: entry.littleEndian) { raw.append(contentsOf: $0) } }
        raw.append(contentsOf: eventSection)
        raw.append(contentsOf: reduced[sparseEnd...])
        guard raw.count == rawLength, CRC32C.checksum(raw) == rawCRC else { return nil }
        return raw
    }
}

/// A day's archive: `cold/YYYY-MM-DD.ltz` (gzip members), `.ids`, and `.manifest`.
struct ColdArchive: Sendable {
    var day: String
    var members: [ColdMember]

    var archiveEnd: Int { members.map { $0.offset + $0.length }.max() ?? 0 }
    var idsEnd: Int { members.map(\.idsRange.upperBound).max() ?? 0 }

    /// The manifest: a checksummed header line, then the JSON body.
    func encodeManifest() -> [UInt8] {
        // Version 2 once any member holds a segment without its lead and event-id sections, 3 once any member's
        // `.ids` entries are of format 2 (older readers must refuse such a manifest rather than take those
        // members for damaged ones).
        let version = members.contains { $0.idsFormat == 2 } ? 3 : members.contains { $0.inflatedLength != nil } ? 2 : 1
        let body: [String: Any] = ["version": version, "day": day, "members": members.map(\.json)]
        let json = (try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])).map { [UInt8]($0) } ?? []
        let crc = String(CRC32C.mask(CRC32C.checksum(json)), radix: 16)
        return Array("leadtrail-manifest v\(version) crc32c=\(crc) length=\(json.count)\n".utf8) + json
    }

    static func decodeManifest(_ bytes: [UInt8]) -> ColdArchive? {
        guard let newline = bytes.firstIndex(of: 0x0A) else { return nil }
        let line = String(decoding: bytes[..<newline], as: UTF8.self).split(separator: " ")
        guard line.count == 4, line[0] == "leadtrail-manifest", ["v1", "v2", "v3"].contains(line[1]),
              line[2].hasPrefix("crc32c="), let crc = UInt32(line[2].dropFirst(7), radix: 16),
              line[3].hasPrefix("length="), let length = Int(line[3].dropFirst(7))
        else { return nil }
        let json = Array(bytes[(newline + 1)...])
        // Exactly the spelling encodeManifest writes: "A" for "a" in the hex digits is the same number, and a flipped bit.
        guard line[2] == "crc32c=" + String(crc, radix: 16), line[3] == "length=\(length)",
              json.count == length, CRC32C.mask(CRC32C.checksum(json)) == crc,
              let body = try? JSONSerialization.jsonObject(with: Data(json)) as? [String: Any],
              let day = body["day"] as? String, let members = body["members"] as? [[String: Any]],
              // The header's version is outside the checksum: it must say what the checked body says.
              (body["version"] as? NSNumber)?.intValue == Int(line[1].dropFirst())
        else { return nil }
        let decoded = members.compactMap(ColdMember.init(json:))
        guard decoded.count == members.count else { return nil }
        return ColdArchive(day: day, members: decoded)
    }
}

/// Everything the cold tier holds, by day.
struct ColdCatalog: Sendable {
    var archives: [String: ColdArchive] = [:]

    var members: [(day: String, member: ColdMember)] {
        archives.sorted { $0.key < $1.key }.flatMap { day, archive in archive.members.map { (day, $0) } }
    }

    func member(holdingSeq seq: UInt64) -> (day: String, member: ColdMember)? {
        members.first { $0.member.firstSeq <= seq && seq <= $0.member.lastSeq }
    }
}

/// gzip (RFC 1952) members through zlib.
enum Gzip {
    /// One complete gzip member of `bytes` at zlib level 6.
    static func compress(_ bytes: [UInt8], level: Int32 = 6) throws(StoreError) -> [UInt8] {
        var stream = z_stream()
        guard leadtrail_deflateInit2(&stream, level, 31) == Z_OK else { throw StoreError(.io, "zlib deflateInit2 failed") }
        defer { deflateEnd(&stream) }
        var out = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(bytes.count))) + 64)
        let status: Int32 = bytes.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in
                stream.next_in = UnsafeMutablePointer(mutating: src.baseAddress?.assumingMemoryBound(to: Bytef.self))
                stream.avail_in = uInt(src.count)
                stream.next_out = dst.baseAddress?.assumingMemoryBound(to: Bytef.self)
                stream.avail_out = uInt(dst.count)
                return deflate(&stream, Z_FINISH)
            }
        }
        guard status == Z_STREAM_END else { throw StoreError(.io, "zlib deflate failed (\(status))") }
        out.removeLast(out.count - Int(stream.total_out))
        return out
    }

    /// Inflates exactly one gzip member into `rawLength` bytes (its own CRC-32 and size are checked by zlib).
    static func decompress(_ member: [UInt8], rawLength: Int) -> [UInt8]? {
        var stream = z_stream()
        guard leadtrail_inflateInit2(&stream, 31) == Z_OK else { return nil }
        defer { inflateEnd(&stream) }
        var out = [UInt8](repeating: 0, count: rawLength + 1)
        let status: Int32 = member.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in
                stream.next_in = UnsafeMutablePointer(mutating: src.baseAddress?.assumingMemoryBound(to: Bytef.self))
                stream.avail_in = uInt(src.count)
                stream.next_out = dst.baseAddress?.assumingMemoryBound(to: Bytef.self)
                stream.avail_out = uInt(dst.count)
                return inflate(&stream, Z_FINISH)
            }
        }
        guard status == Z_STREAM_END, Int(stream.total_out) == rawLength, Int(stream.total_in) == member.count else { return nil }
        out.removeLast()
        return out
    }
}

extension EventStore {
    static func day(of ms: Int64) -> String {
        String(Timestamp.format(ms).prefix(10))
    }

    /// The exact hot segment file an archived member was made from; nil when the member or its ids fail their checks.
    func archivedHotFile(day: String, member: ColdMember) throws(StoreError) -> [UInt8]? {
        let fd = try io.open(coldDirectory + "/\(day).ltz", flags: O_RDONLY, mode: 0)
        defer { io.close(fd) }
        let bytes = try io.read(fd, count: member.length, at: member.offset)
        let idsPath = coldDirectory + "/\(day).ids"
        return member.hotFile(fromStored: bytes) { offset, count in
            guard let idsFD = try? io.open(idsPath, flags: O_RDONLY, mode: 0) else { return nil }
            defer { io.close(idsFD) }
            return try? io.read(idsFD, count: count, at: offset)
        }
    }

    /// Archives a warm segment: gzip member appended to its day's archive and synced,
    /// event ids appended to the day's `.ids`, the manifest rewritten crash-safely,
    /// and only then the warm file removed.
    func moveToCold(_ segment: Segment) throws(StoreError) -> SegmentMove {
        let raw = try rebuildHotFile(segment)
        let (trailer, _) = try checkedHotFile(raw, name: segment.fileName)
        // The member leaves out the lead and event-id sections: the first is rebuilt from the records on restore,
        // the second is the day's `.ids` entries written below (together a seventh of a compressed member).
        let reduced = ColdMember.reducedHotFile(raw, trailer: trailer)
        let member = try Gzip.compress(reduced)
        let day = Self.day(of: segment.maxTs)
        var archive = stateLock.withLock { coldCatalog.archives[day] } ?? ColdArchive(day: day, members: [])
        if archive.members.contains(where: { $0.segmentID == segment.id }) {
            throw StoreError(.invalidArgument, "segment \(segment.id) is already archived")
        }
        try makeDirectory(coldDirectory)

        // The member.
        let archivePath = coldDirectory + "/\(day).ltz"
        let fd = try io.open(archivePath, flags: O_RDWR | O_CREAT, mode: 0o644)
        let offset = archive.archiveEnd
        do throws(StoreError) {
            try io.ftruncate(fd, length: offset)  // drop what an interrupted move left
            try io.writeInPieces(fd, member, at: offset)
            try io.fdatasync(fd)
        } catch {
            io.close(fd)
            throw error
        }
        io.close(fd)

        // Its event ids: the hot index's last section (sorted by hash), stored as its hashes in seq order
        // (`.ids` format 2, half the size) whenever the section can be rebuilt from them, else as it is.
        let eventSection = Array(raw[(Int(trailer.dataEnd) + Int(trailer.sparseCount) * SegmentFormat.sparseEntrySize + Int(trailer.recordCount) * SegmentFormat.leadEntrySize)..<(raw.count - SegmentFormat.trailerSize)])
        let compactIDs = ColdMember.compactIDs(eventSection: eventSection, firstSeq: segment.firstSeq)
        let idsBytes = compactIDs ?? eventSection
        let idsPath = coldDirectory + "/\(day).ids"
        let idsFD = try io.open(idsPath, flags: O_RDWR | O_CREAT, mode: 0o644)
        let idsOffset = archive.idsEnd
        do throws(StoreError) {
            try io.ftruncate(idsFD, length: idsOffset)
            try io.writeInPieces(idsFD, idsBytes, at: idsOffset)
            try io.fdatasync(idsFD)
        } catch {
            io.close(idsFD)
            throw error
        }
        io.close(idsFD)
        try io.syncDirectory(coldDirectory)
        CrashPoint.coldAfterMember.reached()

        let leadHashes = ColdMember.leadHashes(ofHotFile: raw, trailer: trailer)
        archive.members.append(ColdMember(
            segmentID: segment.id, offset: offset, length: member.count, rawLength: raw.count, rawCRC: CRC32C.checksum(raw),
            idsOffset: idsOffset, idsCount: eventSection.count / 16, idsCRC: CRC32C.checksum(idsBytes),
            firstSeq: segment.firstSeq, lastSeq: segment.lastSeq, minTs: segment.minTs, maxTs: segment.maxTs,
            events: segment.count, leadFilter: ColdMember.makeFilter(leadHashes: leadHashes), memberCRC: CRC32C.checksum(member),
            inflatedLength: reduced.count, idsFormat: compactIDs == nil ? 1 : 2))
        try io.writeAtomically(archive.encodeManifest(), to: coldDirectory + "/\(day).manifest", directory: coldDirectory, crashPoint: .coldBeforeManifestRename)
        stateLock.withLock { coldCatalog.archives[day] = archive }
        CrashPoint.coldBeforeSourceDelete.reached()
        replaceSegment(segment, with: nil)
        try trash.retire(segment.path, heldBy: segment.data)
        removeTypeIndex(id: segment.id, tier: segment.tier)
        let sourceDirectory = String(segment.path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/"))
        try io.syncDirectory(sourceDirectory)
        return SegmentMove(
            segmentID: segment.id, from: segment.tier.rawValue, to: "cold", firstSeq: segment.firstSeq, lastSeq: segment.lastSeq,
            events: segment.count, bytesBefore: segment.fileSize, bytesAfter: member.count)
    }

    /// Brings archived events of a time range (and, with `leadID`, only the
    /// segments that may hold that lead) back into query reach, byte-identical.
    /// Segments already restored are not restored twice. `progress` gets (done, total) segments.
    public func restore(fromMs: Int64?, toMs: Int64?, leadID: String? = nil, progress: ((Int, Int) -> Void)? = nil)
        throws(StoreError) -> RestoreReport
    {
        tierLock.lock()
        defer { tierLock.unlock() }
        let leadHash = leadID.map { UInt32(truncatingIfNeeded: StableHash.hash64($0.utf8)) }
        let (catalog, present) = stateLock.withLock { (coldCatalog, Set(segments.map(\.id))) }
        let wanted = catalog.members.filter { entry in
            let m = entry.member
            if let fromMs, m.maxTs < fromMs { return false }
            if let toMs, m.minTs >= toMs { return false }
            if let leadHash, !m.mayHoldLead(hash: leadHash) { return false }
            return true
        }
        var report = RestoreReport()
        try makeDirectory(restoredDirectory)
        for (i, entry) in wanted.enumerated() {
            defer { progress?(i + 1, wanted.count) }
            let m = entry.member
            if present.contains(m.segmentID) {
                report.alreadyRestored += m.events
                continue
            }
            guard let raw = try archivedHotFile(day: entry.day, member: m) else {
                let report = CorruptionReport(file: "\(entry.day).ltz", offset: m.offset, reason: "archived segment \(m.segmentID) is damaged; not restored")
                stateLock.withLock { if !damage.contains(report) { damage.append(report) } }
                logger.error("\(report)")
                throw StoreError(.corrupt, report.description)
            }
            let path = restoredDirectory + "/" + Segment.fileName(id: m.segmentID, sealed: true)
            try io.writeAtomically(raw, to: path, directory: restoredDirectory, crashPoint: .restoreBeforeRename)
            let (segment, _) = try loadSealed(id: m.segmentID, path: path)
            segment.tier = .restored
            segment.expiresMs = Timestamp.now() + Int64(configuration.tiers.restoreExpirySeconds) * 1000
            insertRestored(segment)
            report.restored += segment.count
            report.segments.append(m.segmentID)
            report.bytes += raw.count
        }
        if !report.segments.isEmpty {
            logger.info("restored from cold", metadata: ["segments": "\(report.segments.count)", "events": "\(report.restored)"])
        }
        return report
    }

    /// Puts a restored segment in seq order among the queryable ones.
    func insertRestored(_ segment: Segment) {
        stateLock.withLock {
            let index = segments.firstIndex { $0.id > segment.id } ?? max(segments.count - 1, 0)
            segments.insert(segment, at: index)
        }
    }

    /// Takes restored data out of query reach again (the archive keeps it).
    /// With a time range, only segments overlapping it. Returns the released segment ids.
    @discardableResult
    public func releaseRestored(fromMs: Int64? = nil, toMs: Int64? = nil) throws(StoreError) -> [UInt64] {
        tierLock.lock()
        defer { tierLock.unlock() }
        return try releaseRestoredLocked { segment in
            if let fromMs, segment.maxTs < fromMs { return false }
            if let toMs, segment.minTs >= toMs { return false }
            return true
        }
    }

    func releaseExpiredRestores(now: Int64) throws(StoreError) -> [UInt64] {
        try releaseRestoredLocked { ($0.expiresMs ?? .max) <= now }
    }

    func releaseRestoredLocked(_ predicate: (Segment) -> Bool) throws(StoreError) -> [UInt64] {
        let victims = stateLock.withLock { segments.filter { $0.tier == .restored && predicate($0) } }
        for segment in victims {
            replaceSegment(segment, with: nil)
            try trash.retire(segment.path, heldBy: segment.data)
        }
        if !victims.isEmpty { try io.syncDirectory(restoredDirectory) }
        return victims.map(\.id)
    }

    /// Deletes whole day archives whose every event is older than `cutoff`, recording each deletion.
    func deleteArchives(olderThan cutoff: Int64) throws(StoreError) -> [String] {
        let victims = stateLock.withLock { coldCatalog.archives.values.filter { !$0.members.isEmpty && $0.members.allSatisfy { $0.maxTs < cutoff } } }
        var deleted: [String] = []
        for archive in victims.sorted(by: { $0.day < $1.day }) {
            let seqs = archive.members.map { "\($0.firstSeq)-\($0.lastSeq)" }.joined(separator: ",")
            let crcs = archive.members.map { String($0.rawCRC, radix: 16) }.joined(separator: ",")
            let events = archive.members.reduce(0) { $0 + $1.events }
            let record: [String: Any] = [
                "deleted_at": Timestamp.format(Timestamp.now()), "archive": "\(archive.day).ltz", "events": events,
                "seq_ranges": seqs, "segment_raw_crc32c": crcs, "reason": "retain_days",
            ]
            let line = ((try? JSONSerialization.data(withJSONObject: record, options: [.sortedKeys])).map { [UInt8]($0) } ?? []) + [0x0A]
            try appendLog(line, to: coldDirectory + "/deletions.log")
            // The manifest first: an archive without one is not read. Its data, the large part, goes through the
            // trash (no reader holds it: restores and verify hold `tierLock`, as this does).
            try io.unlink(coldDirectory + "/\(archive.day).manifest")
            for suffix in [".ltz", ".ids"] {
                let path = coldDirectory + "/\(archive.day)\(suffix)"
                if access(path, F_OK) == 0 { try trash.retire(path, heldBy: nil) }
            }
            try io.syncDirectory(coldDirectory)
            stateLock.withLock { coldCatalog.archives[archive.day] = nil }
            deleted.append("\(archive.day).ltz (\(events) events, seqs \(seqs))")
            logger.notice("deleted a cold archive past retain_days", metadata: ["archive": "\(archive.day).ltz", "events": "\(events)"])
        }
        return deleted
    }

    /// Appends a line to a log file and syncs it.
    func appendLog(_ line: [UInt8], to path: String) throws(StoreError) {
        let fd = try io.open(path, flags: O_WRONLY | O_CREAT | O_APPEND, mode: 0o644)
        defer { io.close(fd) }
        try io.write(fd, line, at: try io.fileSize(fd))
        try io.fdatasync(fd)
    }

    /// Whether an event id with this full hash is archived in the cold member holding `seq`.
    func coldHoldsEventID(hash: UInt64, seq: UInt64) -> Bool {
        guard let (day, member) = stateLock.withLock({ coldCatalog.member(holdingSeq: seq) }) else { return false }
        guard let fd = try? io.open(coldDirectory + "/\(day).ids", flags: O_RDONLY, mode: 0) else { return false }
        defer { io.close(fd) }
        if member.idsFormat == 2 {
            // The hashes are in seq order: the one of `seq` is the only one to read.
            let index = seq - member.firstSeq
            guard index < UInt64(member.idsCount),
                  let bytes = try? io.read(fd, count: 8, at: member.idsOffset + Int(index) * 8), bytes.count == 8
            else { return false }
            return bytes.withUnsafeBytes { $0.u64(at: 0) } == hash
        }
        guard let bytes = try? io.read(fd, count: member.idsCount * 16, at: member.idsOffset), bytes.count == member.idsCount * 16 else { return false }
        return bytes.withUnsafeBytes { b in
            var low = 0, high = member.idsCount
            while low < high {
                let mid = (low + high) / 2
                if b.u64(at: mid * 16) < hash { low = mid + 1 } else { high = mid }
            }
            while low < member.idsCount && b.u64(at: low * 16) == hash {
                if b.u64(at: low * 16 + 8) == seq { return true }
                low += 1
            }
            return false
        }
    }

    /// The exclusive upper bound of archived, not restored event times: older events may exist in cold.
    public var coldOnlyBefore: Int64? {
        stateLock.withLock {
            let restored = Set(segments.filter { $0.tier == .restored }.map(\.id))
            let newest = coldCatalog.members.filter { !restored.contains($0.member.segmentID) }.map(\.member.maxTs).max()
            return newest.map { $0 + 1 }
        }
    }
}
