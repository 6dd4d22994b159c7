import LeadTrailEvents

/// Each record's `type` and offset, in seq order, for the segments this process wrote or
/// recovered: a scan filtered by type reads only the records whose type it wants.
///
/// A segment's distinct types get small ids (the first ``maximumNames``; later ones share
/// ``unknown``, as does a type whose hash collides with another's): a record with
/// ``unknown`` is always read and checked by the scan's own filter, so the column only ever
/// rules out records that cannot match. Five bytes per record (an id and a 32-bit offset),
/// kept in chunks of ``chunkLength``: a reader's snapshot shares the full chunks, so the
/// writer's next append copies at most one chunk.
///
/// The active segment and those sealed since the process started have one from the start
/// (every record went through ``Segment/noteRecord``), and a sealed hot segment keeps it in a
/// ``TypeIndexFile`` as well: one loaded from its footer gets its column from that file, or from
/// the first scan by type that reads most of it (``EventStore/typeColumn(for:mayBuild:)``).
struct TypeColumn: Sendable, Equatable {
    static let unknown: UInt8 = 255
    static let maximumNames = 254
    static let chunkLength = 4096

    /// The decoded value of each id's type (nil when it did not decode: that id is then never ruled out).
    private(set) var names: [[UInt8]?] = []
    private var idChunks: [[UInt8]] = []
    private var offsetChunks: [[UInt32]] = []
    /// Records noted so far.
    private(set) var count = 0
    /// Whether a record did not fit (an offset beyond 32 bits): the column is not used.
    private(set) var isBroken = false

    /// An empty column whose ids name `names` (one read back from a ``TypeIndexFile`` gives them all at once).
    init(names: [[UInt8]?] = []) {
        self.names = names
    }

    @inline(__always) func id(at ordinal: Int) -> UInt8 {
        idChunks[ordinal / Self.chunkLength][ordinal % Self.chunkLength]
    }

    @inline(__always) func offset(at ordinal: Int) -> Int {
        Int(offsetChunks[ordinal / Self.chunkLength][ordinal % Self.chunkLength])
    }

    /// Calls `body` with each ordinal of `ordinals` and its type id, a chunk at a time.
    @inline(__always) func forEachID(in ordinals: Range<Int>, _ body: (Int, UInt8) -> Void) {
        var k = ordinals.lowerBound
        while k < ordinals.upperBound {
            let chunk = k / Self.chunkLength
            let chunkStart = chunk * Self.chunkLength
            let end = min(ordinals.upperBound, chunkStart + Self.chunkLength)
            idChunks[chunk].withUnsafeBufferPointer { ids in
                for j in k..<end { body(j, ids[j - chunkStart]) }
            }
            k = end
        }
    }

    mutating func addName(_ decoded: [UInt8]?) -> UInt8 {
        precondition(names.count < Self.maximumNames)
        names.append(decoded)
        return UInt8(names.count - 1)
    }

    mutating func append(id: UInt8, offset: Int) {
        guard offset >= 0, offset <= Int(UInt32.max) else {
            isBroken = true
            return
        }
        if count % Self.chunkLength == 0 {
            idChunks.append([])
            idChunks[idChunks.count - 1].reserveCapacity(Self.chunkLength)
            offsetChunks.append([])
            offsetChunks[offsetChunks.count - 1].reserveCapacity(Self.chunkLength)
        }
        idChunks[idChunks.count - 1].append(id)
        offsetChunks[offsetChunks.count - 1].append(UInt32(offset))
        count += 1
    }

    /// Whether the id at `ordinal` allows for the type of the record whose bytes (header and payload) are
    /// `record`: ``unknown``, an id whose name did not decode, or the record's own decoded type.
    func admits(record: UnsafeRawBufferPointer, fields: EventFieldRefs, at ordinal: Int) -> Bool {
        let id = id(at: ordinal)
        guard id != Self.unknown, Int(id) < names.count, let name = names[Int(id)] else { return true }
        let ref = fields[.type]
        let body = record.count - SegmentFormat.recordHeaderSize
        guard ref.isPresent, body >= 0, ref.range.upperBound <= body else { return false }
        let payload = UnsafeRawBufferPointer(rebasing: record[SegmentFormat.recordHeaderSize...]).assumingMemoryBound(to: UInt8.self)
        return ref.bytes(in: payload).map { $0 == name } ?? false
    }

    /// For each id (``unknown`` included), whether a record with it may match `selection`.
    func wanted(by selection: TypeSelection) -> [Bool] {
        var table = [Bool](repeating: true, count: 256)
        for (id, name) in names.enumerated() {
            if let name { table[id] = selection.matches(name) }
        }
        return table
    }
}

/// Which type ids a segment's writer has handed out (writer and recovery only; readers see ``TypeColumn``).
struct TypeDictionary {
    private var ids: [UInt64: UInt8] = [:]
    /// The raw bytes (as stored, escapes included) of each id's type, to tell a hash collision.
    private var raws: [[UInt8]] = []

    /// The type id of the record whose bytes (header and payload) are `record`: ``TypeColumn/unknown``
    /// when its type reference does not lie inside them.
    mutating func id(record: UnsafeRawBufferPointer, fields: EventFieldRefs, column: inout TypeColumn) -> UInt8 {
        let ref = fields[.type]
        let body = record.count - SegmentFormat.recordHeaderSize
        guard ref.isPresent, body >= 0, ref.range.upperBound <= body else { return TypeColumn.unknown }
        let start = SegmentFormat.recordHeaderSize + ref.range.lowerBound
        return id(raw: UnsafeRawBufferPointer(rebasing: record[start..<(start + ref.length)]), hasEscapes: ref.hasEscapes, column: &column)
    }

    /// The id of the type whose raw bytes (between the quotes) are `raw`, given one in `column` when new.
    mutating func id(raw: UnsafeRawBufferPointer, hasEscapes: Bool, column: inout TypeColumn) -> UInt8 {
        let hash = StableHash.hash64(raw) &+ (hasEscapes ? 1 : 0)
        if let id = ids[hash] {
            return raws[Int(id)].elementsEqual(raw) ? id : TypeColumn.unknown
        }
        guard raws.count < TypeColumn.maximumNames else { return TypeColumn.unknown }
        let bytes = Array(raw)
        var decoded: [UInt8]? = bytes
        if hasEscapes {
            // Decoded as a filter decodes the field (FieldRef.bytes): the raw bytes between their quotes.
            let quoted = [UInt8(ascii: "\"")] + bytes + [UInt8(ascii: "\"")]
            decoded = quoted.withUnsafeBufferPointer {
                FieldRef(range: 1..<(1 + bytes.count), hasEscapes: true).bytes(in: $0)
            }
        }
        let id = column.addName(decoded)
        raws.append(bytes)
        ids[hash] = id
        return id
    }
}
