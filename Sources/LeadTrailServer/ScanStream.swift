import Foundation
import LeadTrailEvents
import LeadTrailStorage
import LeadTrailWire
import NIOCore

/// Flow control between a scan running on a pool thread and its connection's event loop.
///
/// The producer takes a credit before it hands a frame to the event loop and the
/// event loop gives it back once the frame was written to the socket, so at most
/// `credits` frames of a scan are ever buffered in the daemon, however slowly the
/// client reads. Cancelling (the connection closed, or the daemon stops) wakes the
/// producer, which then stops.
final class ScanStream: @unchecked Sendable {
    private let condition = NSCondition()
    private var credits: Int
    private var cancelled = false

    init(credits: Int = 2) {
        self.credits = credits
    }

    /// Waits for a credit. False when the stream was cancelled or no credit came within `timeoutSeconds`.
    func acquire(timeoutSeconds: Double) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        let deadline = Date(timeIntervalSinceNow: timeoutSeconds)
        while credits == 0, !cancelled {
            if !condition.wait(until: deadline) {
                cancelled = true
                break
            }
        }
        guard !cancelled else { return false }
        credits -= 1
        return true
    }

    /// Gives a credit back (a frame left the daemon, or was dropped).
    func release() {
        condition.lock()
        credits += 1
        condition.signal()
        condition.unlock()
    }

    func cancel() {
        condition.lock()
        cancelled = true
        condition.broadcast()
        condition.unlock()
    }

    var isCancelled: Bool {
        condition.lock()
        defer { condition.unlock() }
        return cancelled
    }
}

/// The frame a scan is building and how many events it has sent, touched only by the scan's pool
/// thread: its properties skip the run-time exclusivity checks (one pair per access, per record).
final class ScanFrames {
    @exclusivity(unchecked) var frame: ScanFrameBuilder
    @exclusivity(unchecked) var sent = 0

    init(_ frame: ScanFrameBuilder) {
        self.frame = frame
    }
}

/// Builds one scan response frame (`{"id":..,"ok":true,"events":[...]...}` behind its
/// length prefix) straight in the buffer that goes to the socket: each event is copied once,
/// from the storage engine's read buffer into the frame, with `"seq":N` spliced in.
struct ScanFrameBuilder {
    private(set) var buffer: ByteBuffer
    /// Events in the frame so far.
    private(set) var count = 0
    /// Bytes of the events so far (commas included).
    private(set) var eventBytes = 0

    init(id: [UInt8]?, capacity: Int) {
        buffer = ByteBufferAllocator().buffer(capacity: capacity)
        buffer.writeInteger(UInt32(0))  // the length, set by `finish`
        buffer.writeStaticString("{")
        if let id {
            buffer.writeStaticString("\"id\":")
            buffer.writeBytes(id)
            buffer.writeStaticString(",")
        }
        buffer.writeStaticString("\"ok\":true,\"events\":[")
    }

    /// The bytes an event adds to the frame (its JSON with `seq`, and a comma).
    static func size(of record: RecordView) -> Int {
        record.body.count + 28
    }

    /// Adds a stored event as returned to clients (`"seq":N` first), with one write into the buffer
    /// (each write checks the buffer's uniqueness and, inlined from NIO, its exclusive access).
    mutating func append(_ record: RecordView) {
        let body = UnsafeRawBufferPointer(record.body)
        guard let bodyStart = body.baseAddress, body.count > 0 else { return }
        let first = count == 0
        // The body is a JSON object with at least type and lead_id, so a comma always follows `seq`.
        let written = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: body.count + 32) { out in
            var i = 0
            @inline(__always) func put(_ byte: StaticString) {
                out.baseAddress!.advanced(by: i).copyMemory(from: byte.utf8Start, byteCount: byte.utf8CodeUnitCount)
                i += byte.utf8CodeUnitCount
            }
            if !first { put(",") }
            put("{\"seq\":")
            JSONNumber.withDigits(record.seq) { digits in
                out.baseAddress!.advanced(by: i).copyMemory(from: digits.baseAddress!, byteCount: digits.count)
                i += digits.count
            }
            put(",")
            out.baseAddress!.advanced(by: i).copyMemory(from: bodyStart + 1, byteCount: body.count - 1)
            return i + body.count - 1
        }
        count += 1
        eventBytes += written
    }

    /// Adds an event that is already rendered JSON (a presenter rewrote it).
    mutating func append(rendered event: [UInt8]) {
        if count > 0 { buffer.writeStaticString(",") }
        buffer.writeBytes(event)
        count += 1
        eventBytes += event.count + 1
    }

    /// Closes the frame (with `done` and `last_seq` on the last one) and sets its length.
    mutating func finish(lastSeq: UInt64?) -> ByteBuffer {
        buffer.writeStaticString("]")
        if let lastSeq {
            buffer.writeStaticString(",\"done\":true,\"last_seq\":")
            JSONNumber.withDigits(lastSeq) { _ = buffer.writeBytes($0) }
        }
        buffer.writeStaticString("}")
        buffer.setInteger(UInt32(buffer.readableBytes - Frame.headerSize), at: buffer.readerIndex)
        return buffer
    }
}
