#if canImport(Glibc)
import Glibc
#endif
import LeadTrailEvents

extension EventStore {
    /// Checks every checksum of the store: each record, each footer and index,
    /// and the chain between segments. Runs beside appends (it reads only what
    /// is acknowledged) and names every damaged file and position.
    public func verify() -> VerifyReport {
        let (views, _) = snapshot()
        let files = views.map { (path: hotDirectory + "/" + $0.fileName, limit: $0.isSealed ? nil : Optional($0.dataEnd)) }
        var report = Self.verifyFiles(files, io: io)
        report.corrupt.append(contentsOf: stateLock.withLock { damage.filter { $0.file == "checkpoint" } })
        return report
    }

    /// Checks a data directory without opening it as a store (no lock, no
    /// recovery): usable while the daemon is stopped, or beside it.
    public static func verify(directory: String) throws(StoreError) -> VerifyReport {
        let hot = directory + "/hot"
        let names = try listDirectory(hot).filter { $0.hasSuffix(".seg") || $0.hasSuffix(".open") }
        return verifyFiles(names.map { (path: hot + "/" + $0, limit: nil) }, io: PosixFileOperations())
    }

    /// What one segment file holds, as far as its records tell.
    struct FileSummary {
        var lastSeq: UInt64 = 0
        var chainCRC: UInt32 = 0
        var records: UInt64 = 0
    }

    static func verifyFiles(_ files: [(path: String, limit: Int?)], io: FileOperations) -> VerifyReport {
        var report = VerifyReport(segments: 0, records: 0, corrupt: [], warnings: [])
        var previous: FileSummary? = nil
        for file in files {
            report.segments += 1
            let name = String(file.path.split(separator: "/").last ?? "")
            do throws(StoreError) {
                let summary = try verifyFile(file.path, name: name, limit: file.limit, previous: previous, io: io, report: &report)
                report.records += summary.records
                previous = summary
            } catch {
                report.corrupt.append(CorruptionReport(file: name, offset: nil, reason: "unreadable: \(error.message)"))
                previous = nil
            }
        }
        return report
    }

    static func verifyFile(
        _ path: String, name: String, limit: Int?, previous: FileSummary?, io: FileOperations, report: inout VerifyReport
    ) throws(StoreError) -> FileSummary {
        let fd = try io.open(path, flags: O_RDONLY, mode: 0)
        defer { io.close(fd) }
        let size = try io.fileSize(fd)
        let sealed = path.hasSuffix(".seg")
        func damage(_ offset: Int?, _ reason: String) {
            report.corrupt.append(CorruptionReport(file: name, offset: offset, reason: reason))
        }
        let headerBytes = try io.read(fd, count: SegmentFormat.headerSize, at: 0)
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
        if sealed {
            let bytes = size >= SegmentFormat.trailerSize ? try io.read(fd, count: SegmentFormat.trailerSize, at: size - SegmentFormat.trailerSize) : []
            if let t = bytes.withUnsafeBytes({ SegmentTrailer.decode($0) }),
               Int(t.dataEnd) + t.indexSize + SegmentFormat.trailerSize == size, t.dataEnd >= UInt64(SegmentFormat.headerSize)
            {
                trailer = t
                dataEnd = Int(t.dataEnd)
                let index = try io.read(fd, count: t.indexSize, at: Int(t.dataEnd))
                if CRC32C.mask(CRC32C.checksum(index)) != t.indexCRC {
                    damage(Int(t.dataEnd), "index checksum mismatch")
                }
            } else {
                damage(max(0, size - SegmentFormat.trailerSize), "trailer missing or checksum mismatch")
            }
        }

        // Every record: checksum, seq order.
        var summary = FileSummary(lastSeq: header.previousLastSeq, chainCRC: 0, records: 0)
        var offset = SegmentFormat.headerSize
        var expected = header.baseSeq
        var chunk: [UInt8] = []
        var chunkStart = offset
        var minTs = Int64.max, maxTs = Int64.min
        scanning: while offset < dataEnd {
            if chunk.isEmpty || offset + SegmentFormat.recordHeaderSize > chunkStart + chunk.count {
                chunkStart = offset
                chunk = try io.read(fd, count: min(1 << 20, dataEnd - offset), at: offset)
            }
            var decoded = chunk.withUnsafeBytes { RecordReader.decode(UnsafeRawBufferPointer(rebasing: $0[(offset - chunkStart)...]), at: offset) }
            if case .success(nil) = decoded, chunk.count - (offset - chunkStart) >= SegmentFormat.recordHeaderSize {
                let total = chunk.withUnsafeBytes { RecordHeader.decode(UnsafeRawBufferPointer(rebasing: $0[(offset - chunkStart)...])).totalSize }
                if offset + total <= dataEnd {
                    chunkStart = offset
                    chunk = try io.read(fd, count: total, at: offset)
                    decoded = chunk.withUnsafeBytes { RecordReader.decode($0, at: offset) }
                }
            }
            switch decoded {
            case .success(let pair?):
                let (header, total) = pair
                if header.seq != expected {
                    damage(offset, "seq \(header.seq) where \(expected) was expected")
                }
                expected = header.seq + 1
                summary.lastSeq = header.seq
                summary.records += 1
                minTs = min(minTs, header.timestampMs)
                maxTs = max(maxTs, header.timestampMs)
                summary.chainCRC = chunk.withUnsafeBytes {
                    CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[(offset - chunkStart)..<(offset - chunkStart + total)]), extending: summary.chainCRC)
                }
                offset += total
            case .success(nil):
                if sealed {
                    damage(offset, "record cut short")
                } else {
                    report.warnings.append("\(name): torn tail of \(dataEnd - offset) bytes at byte \(offset) (cut off at the next start)")
                }
                break scanning
            case .failure(.corrupt(let at, let reason)):
                if sealed || limit != nil {
                    damage(at, reason)
                } else {
                    report.warnings.append("\(name): unreadable tail from byte \(at) (\(reason)); recovery cuts it off or reports it at the next start")
                }
                break scanning
            }
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
