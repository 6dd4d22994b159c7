/// The framing of PROTOCOL.md section 2: a `uint32` big-endian length, then that many bytes.
public enum Frame {
    /// Bytes of the length prefix.
    public static let headerSize = 4

    /// The contract's default maximum frame length (16 MiB).
    public static let defaultMaximumLength = 16 << 20

    /// `body` with its length prefix. `body` must be shorter than 4 GiB.
    public static func encode(_ body: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(body.count + headerSize)
        appendHeader(length: body.count, to: &out)
        out.append(contentsOf: body)
        return out
    }

    /// Appends the 4-byte big-endian length prefix for a body of `length` bytes.
    public static func appendHeader(length: Int, to out: inout [UInt8]) {
        let n = UInt32(truncatingIfNeeded: length)
        out.append(UInt8(truncatingIfNeeded: n >> 24))
        out.append(UInt8(truncatingIfNeeded: n >> 16))
        out.append(UInt8(truncatingIfNeeded: n >> 8))
        out.append(UInt8(truncatingIfNeeded: n))
    }

    /// Reads a big-endian length prefix from the first four bytes of `bytes`.
    public static func readHeader<C: Collection>(_ bytes: C) -> Int? where C.Element == UInt8 {
        guard bytes.count >= headerSize else { return nil }
        var n = 0
        var i = bytes.startIndex
        for _ in 0..<headerSize {
            n = n << 8 | Int(bytes[i])
            i = bytes.index(after: i)
        }
        return n
    }
}

/// A context-free, incremental frame decoder.
///
/// Feed it bytes as they arrive with ``append(_:)``, then call ``next()`` until it
/// returns nil. Guarantees:
/// - a frame's declared length is compared with ``maximumLength`` as soon as its
///   4-byte header is complete, before any of its body is kept: an oversized frame
///   throws `frame_too_large` and the decoder then refuses all further input;
/// - it never keeps more than one partial frame plus whatever a single `append`
///   delivered after it;
/// - any split of the same byte stream yields the same frames.
public struct FrameDecoder: Sendable {
    /// The largest body accepted, in bytes.
    public let maximumLength: Int

    private var buffer: [UInt8] = []
    private var readIndex = 0
    private var failed: WireError?
    /// A large frame whose header was taken by ``next()`` before its body was complete: its body
    /// is filled here directly and handed over without another copy.
    private var body: [UInt8] = []
    private var bodyLength: Int?

    /// Frames at least this long are received straight into their own array once their header is read.
    static let directBodyThreshold = 64 << 10

    public init(maximumLength: Int = Frame.defaultMaximumLength) {
        self.maximumLength = maximumLength
    }

    /// Bytes received and not yet returned as frames.
    public var bufferedByteCount: Int { buffer.count - readIndex + (bodyLength == nil ? 0 : Frame.headerSize + body.count) }

    /// Whether part of a frame has been received (so the peer owes us more bytes).
    public var hasPartialFrame: Bool { bufferedByteCount > 0 }

    /// Whether a frame was refused as too large (the decoder then takes no more input).
    public var hasFailed: Bool { failed != nil || headerIsOversized }

    /// Whether the first pending frame declares too large a length.
    private var headerIsOversized: Bool { bodyLength == nil && bufferedHeaderIsOversized }

    /// Whether the first frame in `buffer` declares too large a length.
    private var bufferedHeaderIsOversized: Bool {
        guard let length = Frame.readHeader(buffer[readIndex...]) else { return false }
        return length > maximumLength
    }

    /// Adds received bytes. Bytes after an oversized header are dropped, never buffered.
    public mutating func append<Bytes: Sequence>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        let appended: Void? = bytes.withContiguousStorageIfAvailable { append(UnsafeRawBufferPointer($0)) }
        if appended == nil { Array(bytes).withUnsafeBytes { append($0) } }
    }

    /// Adds received bytes. Bytes after an oversized header are dropped, never buffered.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard failed == nil, !headerIsOversized else { return }
        var input = bytes[...]
        if let length = bodyLength, body.count < length {
            let take = min(length - body.count, input.count)
            body.append(contentsOf: UnsafeRawBufferPointer(rebasing: input.prefix(take)))
            input = input.dropFirst(take)
            if input.isEmpty { return }
        }
        if readIndex > 0, readIndex >= buffer.count / 2 {
            buffer.removeSubrange(0..<readIndex)
            readIndex = 0
        }
        // Frames whose header is complete were checked already: keep everything.
        guard buffer.count - readIndex < Frame.headerSize else {
            buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: input))
            return
        }
        // Otherwise take bytes until the header is complete, check it, then keep the rest.
        let missing = min(Frame.headerSize - (buffer.count - readIndex), input.count)
        buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: input.prefix(missing)))
        input = input.dropFirst(missing)
        if input.isEmpty || bufferedHeaderIsOversized { return }
        buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: input))
    }

    /// The next complete frame body, or nil when more bytes are needed.
    ///
    /// Throws `frame_too_large` (and keeps throwing it) once a header declares a
    /// frame longer than ``maximumLength``. A frame that follows a complete frame in
    /// the same `append` is checked here, before it is returned.
    public mutating func next() throws(WireError) -> [UInt8]? {
        if let failed { throw failed }
        if let length = bodyLength {
            guard body.count == length else { return nil }
            bodyLength = nil
            defer { body = [] }
            return body
        }
        guard let length = Frame.readHeader(buffer[readIndex...]) else { return nil }
        guard length <= maximumLength else {
            let error = WireError(.frameTooLarge, "frame of \(length) bytes is larger than the maximum of \(maximumLength)")
            failed = error
            buffer = []
            readIndex = 0
            throw error
        }
        let start = readIndex + Frame.headerSize
        guard buffer.count - start >= length else {
            if length >= Self.directBodyThreshold {
                // Receive the rest straight into the frame's own array: the buffer holds nothing after it.
                body = []
                body.reserveCapacity(length)
                body.append(contentsOf: buffer[start...])
                bodyLength = length
                buffer.removeAll(keepingCapacity: buffer.capacity <= 1 << 20)
                readIndex = 0
            }
            return nil
        }
        let frame = Array(buffer[start..<(start + length)])
        readIndex = start + length
        if readIndex == buffer.count {
            buffer.removeAll(keepingCapacity: buffer.capacity <= 1 << 20)
            readIndex = 0
        }
        return frame
    }
}
