#if canImport(Glibc)
import Glibc
#endif
import LeadTrailEvents

extension EventStore {
    /// Checks every checksum of the store, in all three tiers: each record, each
    /// footer and index, each warm block, each cold member and manifest, and the
    /// chain between segments. Runs beside appends (it reads only what is
    /// acknowledged) and names every damaged file and position.
    public func verify() -> VerifyReport {
        let views = snapshot().views
        let limits = Dictionary(uniqueKeysWithValues: views.filter { !$0.isSealed }.map { ($0.fileName, $0.dataEnd) })
        tierLock.lock()
        defer { tierLock.unlock() }
        var report = Self.verifyDirectory(configuration.directory, activeLimits: limits, io: io)
        report.corrupt.append(contentsOf: stateLock.withLock { damage.filter { $0.file == "checkpoint" } })
        return report
    }

    /// Checks a data directory without opening it as a store (no lock, no
    /// recovery): usable while the daemon is stopped, or beside it.
    public static func verify(directory: String) throws(StoreError) -> VerifyReport {
        guard (try? listDirectory(directory + "/hot")) != nil else {
            throw StoreError(.invalidArgument, "\(directory) is not a leadtrail data directory (no hot/ folder)")
        }
        return verifyDirectory(directory, activeLimits: [:], io: PosixFileOperations())
    }

    /// What one segment file holds, as far as its records tell.
    struct FileSummary {
        var lastSeq: UInt64 = 0
        var chainCRC: UInt32 = 0
        var records: UInt64 = 0
    }

    /// A segment to check, in any tier, and how to get its hot-format bytes.
    struct VerifyItem {
        var id: UInt64
        var name: String
        var check: (inout VerifyReport, FileSummary?) throws(StoreError) -> FileSummary
    }

    static func verifyDirectory(_ directory: String, activeLimits: [String: Int], io: FileOperations) -> VerifyReport {
        var report = VerifyReport(segments: 0, records: 0, corrupt: [], warnings: [])
        var items: [VerifyItem] = []
        let hot = directory + "/hot", warm = directory + "/warm", cold = directory + "/cold", restored = directory + "/restored"

        for name in (try? listDirectory(hot)) ?? [] where name.hasSuffix(".seg") || name.hasSuffix(".open") {
            guard let id = UInt64(name.split(separator: ".")[0], radix: 16) else { continue }
            let path = hot + "/" + name
            // An empty `.open` file is the spare segment made ahead of the next rotation: it holds nothing.
            var info = stat()
            if name.hasSuffix(".open"), stat(path, &info) == 0, info.st_size == 0 { continue }
            // A sealed segment's type index is checked against its records too.
            let typeIndexName = TypeIndexFile.fileName(id: id)
            let typeIndex = name.hasSuffix(".seg") ? try? io.readWhole(hot + "/" + typeIndexName) : nil
            items.append(VerifyItem(id: id, name: name) { (report, previous) throws(StoreError) in
                let fd = try io.open(path, flags: O_RDONLY, mode: 0)
                defer { io.close(fd) }
                let size = try io.fileSize(fd)
                return try verifySegment(
                    name: name, size: size, sealed: name.hasSuffix(".seg"), limit: activeLimits[name], previous: previous,
                    typeIndex: typeIndex.map { ("hot/" + typeIndexName, $0) }, report: &report
                ) { (count, offset) throws(StoreError) in
                    try io.read(fd, count: count, at: offset)
                }
            })
        }
        for name in (try? listDirectory(restored)) ?? [] where name.hasSuffix(".seg") {
            let path = restored + "/" + name
            report.segments += 1
            let fd = try? io.open(path, flags: O_RDONLY, mode: 0)
            if let fd {
                var scratch = report
                _ = try? verifySegment(name: "restored/" + name, size: (try? io.fileSize(fd)) ?? 0, sealed: true, limit: nil, previous: nil, report: &scratch) { (count, offset) throws(StoreError) in
                    try io.read(fd, count: count, at: offset)
                }
                report = scratch
                io.close(fd)
            }
        }
        for name in (try? listDirectory(warm)) ?? [] where name.hasSuffix(".lz4s") {
            guard let id = UInt64(name.dropLast(5), radix: 16) else { continue }
            let path = warm + "/" + name
            let typeIndexName = TypeIndexFile.fileName(id: id)
            let typeIndex = try? io.readWhole(warm + "/" + typeIndexName)
            items.append(VerifyItem(id: id, name: name) { (report, previous) throws(StoreError) in
                let bytes = try io.readWhole(path)
                guard let hotBytes = WarmFormat.rebuildHotFile(fromWarm: bytes, name: name, report: &report) else { return FileSummary() }
                return try verifySegment(
                    name: "warm/" + name, size: hotBytes.count, sealed: true, limit: nil, previous: previous,
                    typeIndex: typeIndex.map { ("warm/" + typeIndexName, $0) }, report: &report
                ) { (count, offset) throws(StoreError) in
                    Array(hotBytes[min(offset, hotBytes.count)..<min(offset + count, hotBytes.count)])
                }
            })
        }
        for name in (try? listDirectory(cold)) ?? [] where name.hasSuffix(".manifest") {
            let day = String(name.dropLast(9))
            guard let manifest = try? io.readWhole(cold + "/" + name), let archive = ColdArchive.decodeManifest(manifest) else {
                report.corrupt.append(CorruptionReport(file: "cold/" + name, offset: nil, reason: "manifest checksum mismatch"))
                continue
            }
            let archiveBytes = (try? io.readWhole(cold + "/\(day).ltz")) ?? []
            let ids = (try? io.readWhole(cold + "/\(day).ids")) ?? []
            for member in archive.members {
                items.append(VerifyItem(id: member.segmentID, name: "\(day).ltz") { (report, previous) throws(StoreError) in
                    let file = "cold/\(day).ltz"
                    let idsRange = member.idsRange
                    if idsRange.upperBound > ids.count || CRC32C.checksum(Array(ids[idsRange])) != member.idsCRC {
                        report.corrupt.append(CorruptionReport(file: "cold/\(day).ids", offset: member.idsOffset, reason: "event-id index of segment \(member.segmentID) damaged"))
                    }
                    let stored = member.offset + member.length <= archiveBytes.count ? Array(archiveBytes[member.offset..<(member.offset + member.length)]) : []
                    guard member.offset + member.length <= archiveBytes.count,
                          let raw = member.hotFile(fromStored: stored, ids: { offset, count in
                              offset + count <= ids.count ? Array(ids[offset..<(offset + count)]) : nil
                          })
                    else {
                        report.corrupt.append(CorruptionReport(file: file, offset: member.offset, reason: "gzip member of segment \(member.segmentID) is damaged"))
                        return FileSummary(lastSeq: member.lastSeq, chainCRC: 0, records: 0)
                    }
                    return try verifySegment(name: file, size: raw.count, sealed: true, limit: nil, previous: previous, report: &report) { (count, offset) throws(StoreError) in
                        Array(raw[min(offset, raw.count)..<min(offset + count, raw.count)])
                    }
                })
            }
        }

        // The checkpoint: without it recovery cannot tell a torn tail from damage before the durable point.
        if let bytes = try? io.readWhole(directory + "/checkpoint"), Checkpoint.decode(bytes) == nil {
            report.corrupt.append(CorruptionReport(file: "checkpoint", offset: nil, reason: "checkpoint checksum mismatch or wrong size"))
        }

        items.sort { $0.id < $1.id }
        var previous: (id: UInt64, summary: FileSummary)? = nil
        for item in items {
            report.segments += 1
            do throws(StoreError) {
                let chained = previous.flatMap { $0.id + 1 == item.id ? $0.summary : nil }
                let damageBefore = report.corrupt.count
                let summary = try item.check(&report, chained)
                report.records += summary.records
                // A damaged file's records do not tell where it really ends, so the next file's chain fields
                // cannot be checked against them (that would blame the next, intact file).
                previous = report.corrupt.count == damageBefore ? (item.id, summary) : nil
            } catch {
                report.corrupt.append(CorruptionReport(file: item.name, offset: nil, reason: "unreadable: \(error.message)"))
                previous = nil
            }
        }
        return report
    }

    /// Checks one segment in hot format, read through `read(count, offset)`, and the bytes of its type index
    /// file (``TypeIndexFile``) when it has one: a file that does not check out is only a warning (the store
    /// ignores it), one that checks out but says another type or offset than a record does is damage (a scan by
    /// type would pass over that record).
    static func verifySegment(
        name: String, size: Int, sealed: Bool, limit: Int?, previous: FileSummary?, typeIndex: (name: String, bytes: [UInt8])? = nil,
        report: inout VerifyReport, read: @escaping (Int, Int) throws(StoreError) -> [UInt8]
    ) throws(StoreError) -> FileSummary {
        func damage(_ offset: Int?, _ reason: String) {
            report.corrupt.append(CorruptionReport(file: name, offset: offset, reason: reason))
        }
        let headerBytes = try read(SegmentFormat.headerSize, 0)
        let header: SegmentHeader
        switch headerBytes.withUnsafeBytes({ SegmentHeader.decode($0) }) {
        case .success(let h): header = h
        case .failure(let failure):
            damage(0, failure.reason)
            return FileSummary()
        }
        if let previous, header.previousLastSeq != previous.lastSeq || header.previousChainCRC != previous.chainCRC {
            damage(0, "segment chain broken: the previous segment ends at seq \(previous.lastSeq), this one expects \(header.previousLastSeq)")
        }

        var dataEnd = limit ?? size
        var trailer: SegmentTrailer? = nil
        var types: TypeColumn? = nil
        var typeMismatch: (ordinal: Int, offset: Int)? = nil
        if sealed {
            let bytes = size >= SegmentFormat.trailerSize ? try read(SegmentFormat.trailerSize, size - SegmentFormat.trailerSize) : []
            if let t = bytes.withUnsafeBytes({ SegmentTrailer.decode($0) }),
               Int(t.dataEnd) + t.indexSize + SegmentFormat.trailerSize == size, t.dataEnd >= UInt64(SegmentFormat.headerSize)
            {
                trailer = t
                dataEnd = Int(t.dataEnd)
                let index = try read(t.indexSize, Int(t.dataEnd))
                if CRC32C.mask(CRC32C.checksum(index)) != t.indexCRC {
                    damage(Int(t.dataEnd), "index checksum mismatch")
                } else if let typeIndex {
                    let identity = TypeIndexFile.Identity(
                        segmentID: header.segmentID, recordCount: t.recordCount, firstSeq: t.firstSeq, dataEnd: t.dataEnd, dataCRC: t.dataCRC)
                    let sparse = index.withUnsafeBytes { SparseEntry.decode($0, count: Int(t.sparseCount)) }
                    types = TypeIndexFile.decode(typeIndex.bytes, for: identity, sparse: sparse)
                    if types == nil {
                        report.warnings.append("\(typeIndex.name): does not check out; ignored, and built again by the next scan by type")
                    }
                }
            } else {
                damage(max(0, size - SegmentFormat.trailerSize), "trailer missing or checksum mismatch")
            }
        }

        // Every record: checksum, seq order.
        var summary = FileSummary(lastSeq: header.previousLastSeq, chainCRC: 0, records: 0)
        var expected = header.baseSeq
        var minTs = Int64.max, maxTs = Int64.min
        var cursor = RecordCursor(from: SegmentFormat.headerSize, to: dataEnd, read: read)
        scanning: while true {
            switch try cursor.next() {
            case .end:
                break scanning
            case .record(let header, _):
                if header.seq != expected {
                    damage(cursor.recordOffset, "seq \(header.seq) where \(expected) was expected")
                }
                expected = header.seq + 1
                summary.lastSeq = header.seq
                summary.records += 1
                minTs = min(minTs, header.timestampMs)
                maxTs = max(maxTs, header.timestampMs)
                summary.chainCRC = cursor.withRecordBytes { CRC32C.checksum($0, extending: summary.chainCRC) }
                if let types, typeMismatch == nil {
                    let ordinal = Int(summary.records) - 1
                    let agrees = ordinal < types.count && types.offset(at: ordinal) == cursor.recordOffset
                        && cursor.withRecordBytes { types.admits(record: $0, fields: header.fields, at: ordinal) }
                    if !agrees { typeMismatch = (ordinal, cursor.recordOffset) }
                }
            case .incomplete:
                if sealed {
                    damage(cursor.offset, "record cut short")
                } else {
                    report.warnings.append("\(name): torn tail of \(dataEnd - cursor.offset) bytes at byte \(cursor.offset) (cut off at the next start)")
                }
                break scanning
            case .corrupt(let reason):
                if sealed || limit != nil {
                    damage(cursor.offset, reason)
                } else {
                    report.warnings.append("\(name): unreadable tail from byte \(cursor.offset) (\(reason)); recovery cuts it off or reports it at the next start")
                }
                break scanning
            }
        }
        if let typeIndex, let typeMismatch {
            report.corrupt.append(CorruptionReport(
                file: typeIndex.name, offset: nil,
                reason: "says another type or offset than record \(typeMismatch.ordinal) of \(name) (at byte \(typeMismatch.offset)) holds; "
                    + "a scan by type could pass over records: delete the file (scans build it again)"))
        }
        if let trailer {
            if trailer.recordCount != summary.records || trailer.lastSeq != summary.lastSeq || trailer.dataCRC != summary.chainCRC
                || (summary.records > 0 && (trailer.minTs != minTs || trailer.maxTs != maxTs))
            {
                damage(Int(trailer.dataEnd), "footer does not match the records (count \(trailer.recordCount) vs \(summary.records))")
            }
        }
        return summary
    }
}
