#if canImport(Glibc)
import Glibc
#endif
import LeadTrailEvents

/// A sealed segment's type column kept on disk beside it (`hot/<id>.types`, and `warm/<id>.types` once
/// the segment is warm), as Kafka keeps a segment's `.index` beside its `.log`: a scan by type after a
/// restart, or of a segment whose column the memory budget dropped, reads this small file instead of
/// every record header; in a warm segment it decompresses only the blocks that hold wanted records.
///
/// Derived data only: the file is written without a sync, and one that is missing, cut short, damaged
/// or written for other records (its segment id, record count, first seq, `data_end` and chain CRC must
/// all match the segment's trailer) is ignored, and the next scan that needs it builds it again. The
/// records stay the truth: a picked record is still read whole and checked, and `verify` compares the
/// file with every record. Layout (little-endian), after the ``magic``:
///
/// | offset | size | field |
/// |---|---|---|
/// | 8 | 2 | version (1) |
/// | 10 | 2 | name count (at most ``TypeColumn/maximumNames``) |
/// | 12 | 4 | reserved, zero |
/// | 16 | 8 | segment id |
/// | 24 | 8 | record count |
/// | 32 | 8 | first seq |
/// | 40 | 8 | `data_end` |
/// | 48 | 4 | the segment's chain CRC (`data_crc`) |
/// | 52 | 4 | reserved, zero |
/// | 56 | | each name: a byte (1 = decoded, 0 = not decodable), a u16 length, the decoded bytes |
/// | | count | each record's type id, in seq order |
/// | | 4 × count | each record's offset (u32), in seq order |
/// | | 4 | masked CRC32C of every byte before it |
struct TypeIndexFile {
    static let magic: [UInt8] = Array("LTRLTYP\u{1}".utf8)
    static let version: UInt16 = 1
    static let headerSize = 56

    /// What ties the file to one segment's exact records.
    struct Identity: Equatable {
        var segmentID: UInt64
        var recordCount: UInt64
        var firstSeq: UInt64
        var dataEnd: UInt64
        var dataCRC: UInt32
    }

    /// The file name beside segment `id`'s file.
    static func fileName(id: UInt64) -> String {
        String(Segment.fileName(id: id, sealed: true).dropLast(4)) + ".types"
    }

    static func encode(_ column: TypeColumn, for identity: Identity) -> [UInt8] {
        var w = ByteWriter(capacity: headerSize + column.count * 5 + column.names.reduce(0) { $0 + 3 + ($1?.count ?? 0) } + 4)
        w.raw(magic)
        w.u16(version)
        w.u16(UInt16(column.names.count))
        w.u32(0)
        w.u64(identity.segmentID)
        w.u64(identity.recordCount)
        w.u64(identity.firstSeq)
        w.u64(identity.dataEnd)
        w.u32(identity.dataCRC)
        w.u32(0)
        for name in column.names {
            w.u8(name == nil ? 0 : 1)
            w.u16(UInt16(name?.count ?? 0))
            if let name { w.raw(name) }
        }
        column.forEachID(in: 0..<column.count) { _, id in w.u8(id) }
        for k in 0..<column.count { w.u32(UInt32(column.offset(at: k))) }
        w.u32(CRC32C.mask(CRC32C.checksum(w.bytes)))
        return w.bytes
    }

    /// The column the file holds, when it is whole, checks out and belongs to `identity`'s records, and its
    /// offsets agree with the segment's sparse index (`sparse`: every entry's seq starts a record at its
    /// offset); nil otherwise.
    static func decode(_ bytes: [UInt8], for identity: Identity, sparse: [SparseEntry]) -> TypeColumn? {
        bytes.withUnsafeBytes { raw -> TypeColumn? in
            guard raw.count >= headerSize + 4, raw.starts(with: magic), raw.u16(at: 8) == version,
                CRC32C.mask(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<(raw.count - 4)]))) == raw.u32(at: raw.count - 4)
            else { return nil }
            let stored = Identity(
                segmentID: raw.u64(at: 16), recordCount: raw.u64(at: 24), firstSeq: raw.u64(at: 32), dataEnd: raw.u64(at: 40),
                dataCRC: raw.u32(at: 48))
            let nameCount = Int(raw.u16(at: 10))
            guard stored == identity, nameCount <= TypeColumn.maximumNames, identity.recordCount <= UInt64(raw.count),
                identity.dataEnd <= UInt64(UInt32.max)
            else { return nil }
            let count = Int(identity.recordCount)
            var p = headerSize
            var names: [[UInt8]?] = []
            for _ in 0..<nameCount {
                guard p + 3 <= raw.count else { return nil }
                let decoded = raw[p] == 1
                let length = Int(raw.u16(at: p + 1))
                p += 3
                guard p + length <= raw.count, decoded || length == 0 else { return nil }
                names.append(decoded ? Array(raw[p..<(p + length)]) : nil)
                p += length
            }
            guard p + count * 5 + 4 == raw.count else { return nil }
            let ids = UnsafeRawBufferPointer(rebasing: raw[p..<(p + count)])
            let offsetsStart = p + count
            var column = TypeColumn(names: names)
            var previous = -1
            for k in 0..<count {
                let id = ids[k]
                let offset = Int(raw.u32(at: offsetsStart + 4 * k))
                guard Int(id) < nameCount || id == TypeColumn.unknown, offset > previous,
                    offset >= SegmentFormat.headerSize, offset + SegmentFormat.recordHeaderSize <= Int(identity.dataEnd)
                else { return nil }
                column.append(id: id, offset: offset)
                previous = offset
            }
            // Every sparse entry starts a record: the column must put that record where the entry does.
            for entry in sparse {
                guard entry.firstSeq >= identity.firstSeq, entry.firstSeq - identity.firstSeq < identity.recordCount,
                    column.offset(at: Int(entry.firstSeq - identity.firstSeq)) == Int(entry.offset)
                else { return nil }
            }
            return column
        }
    }
}

extension EventStore {
    /// Where segment `id`'s type index lives while the segment is in `tier`: beside its file in `hot/` or
    /// `warm/` (the offsets it holds are the hot file's, which a warm file keeps). Nil for restored segments.
    func typeIndexPath(id: UInt64, tier: Tier) -> String? {
        switch tier {
        case .hot: hotDirectory + "/" + TypeIndexFile.fileName(id: id)
        case .warm: warmDirectory + "/" + TypeIndexFile.fileName(id: id)
        case .restored: nil
        }
    }

    static func typeIndexIdentity(of view: SegmentView) -> TypeIndexFile.Identity {
        TypeIndexFile.Identity(
            segmentID: view.id, recordCount: view.count, firstSeq: view.firstSeq, dataEnd: UInt64(view.dataEnd), dataCRC: view.chainCRC)
    }

    /// The type column stored beside the sealed segment `view`, when there is one that checks out. One
    /// that does not is removed (so that scans stop reading it), and the next scan by type that reads most of
    /// the segment builds it again.
    func loadTypeIndex(for view: SegmentView) -> TypeColumn? {
        guard view.isSealed, view.count > 0, let path = typeIndexPath(id: view.id, tier: view.tier) else { return nil }
        switch readTypeIndex(for: view) {
        case .missing:
            return nil
        case .good(let column):
            return column
        case .bad:
            let removed: Bool = typeIndexLock.withLock {
                // Unless a scan has just written a good one in its place (writers hold the lock).
                guard case .bad = readTypeIndex(for: view) else { return false }
                try? io.unlink(path)
                stateLock.withLock { segments.first { $0.id == view.id && $0.data === view.data }?.typeIndexBytes = 0 }
                return true
            }
            if removed {
                logger.notice(
                    "removed a type index that does not check out; the next scan by type that reads its segment builds it again",
                    metadata: ["file": "\(view.tier.rawValue)/\(TypeIndexFile.fileName(id: view.id))"])
            }
            return nil
        }
    }

    /// What reading a segment's type index file found.
    enum TypeIndexRead {
        case missing
        case bad
        case good(TypeColumn)
    }

    /// Reads and checks the type index file beside `view` (no side effects).
    func readTypeIndex(for view: SegmentView) -> TypeIndexRead {
        guard let path = typeIndexPath(id: view.id, tier: view.tier), let fd = try? io.open(path, flags: O_RDONLY, mode: 0) else {
            return .missing
        }
        defer { io.close(fd) }
        // No good file is larger than this: refused before allocating for it.
        let largest = TypeIndexFile.headerSize + Int(view.count) * 5 + 4 + TypeColumn.maximumNames * (3 + Int(UInt16.max))
        guard let size = try? io.fileSize(fd), size <= largest, let bytes = try? io.read(fd, count: size, at: 0),
            let column = TypeIndexFile.decode(bytes, for: Self.typeIndexIdentity(of: view), sparse: view.sparse)
        else { return .bad }
        return .good(column)
    }

    /// Writes `column` beside the sealed segment `view`: a temporary file renamed into place, with no sync
    /// (one that a crash leaves short or empty does not check out, and is built again). A failure is logged
    /// and costs only speed.
    func storeTypeIndex(_ column: TypeColumn, for view: SegmentView) {
        guard view.isSealed, view.count > 0, column.count == Int(view.count), !column.isBroken,
            let path = typeIndexPath(id: view.id, tier: view.tier)
        else { return }
        let bytes = TypeIndexFile.encode(column, for: Self.typeIndexIdentity(of: view))
        let temporary = path + ".tmp"
        typeIndexLock.withLock {
            // Under the lock a tier move takes to move or remove the file: one whose segment has left its tier is not written.
            guard stateLock.withLock({ segments.contains { $0.id == view.id && $0.tier == view.tier && $0.data === view.data } }) else { return }
            do throws(StoreError) {
                let fd = try io.open(temporary, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644)
                do throws(StoreError) {
                    try io.writeInPieces(fd, bytes, at: 0)
                } catch {
                    io.close(fd)
                    throw error
                }
                io.close(fd)
                try io.rename(temporary, path)
                stateLock.withLock { segments.first { $0.id == view.id && $0.data === view.data }?.typeIndexBytes = bytes.count }
            } catch {
                try? io.unlink(temporary)
                logger.warning(
                    "could not write a type index; scans by type read the segment's record headers instead",
                    metadata: ["segment.id": "\(view.id)", "error": "\(error.message)"])
            }
        }
    }

    /// Removes segment `id`'s type index from `tier`: its file there is gone (moved to another tier).
    func removeTypeIndex(id: UInt64, tier: Tier) {
        guard let path = typeIndexPath(id: id, tier: tier) else { return }
        typeIndexLock.withLock { try? io.unlink(path) }
    }

    /// Moves segment `id`'s type index from `hot/` to `warm/` with the segment (`warm`, now in the list): the
    /// warm file keeps the hot file's offsets, trailer and sparse index, so the same file checks out there.
    func moveTypeIndexToWarm(id: UInt64, warm: Segment) {
        guard let from = typeIndexPath(id: id, tier: .hot), let to = typeIndexPath(id: id, tier: .warm) else { return }
        typeIndexLock.withLock {
            var info = stat()
            guard stat(from, &info) == 0 else { return }
            do throws(StoreError) {
                try io.rename(from, to)
                stateLock.withLock { warm.typeIndexBytes = Int(info.st_size) }
            } catch {
                try? io.unlink(from)
            }
        }
    }
}
