import Foundation
import LeadTrailEvents
import LeadTrailStorage
import NIOCore
import Testing
@testable import LeadTrailServer

/// The flow control that keeps a scan's memory bounded, and the frames a scan builds.
@Suite struct ScanStreamTests {
    /// Runs a blocking `acquire` on its own thread (never on the cooperative pool, which it would stall).
    final class Waiter: @unchecked Sendable {
        private let done = DispatchSemaphore(value: 0)
        private(set) var result: Bool?

        init(_ stream: ScanStream, timeoutSeconds: Double) {
            Thread {
                self.result = stream.acquire(timeoutSeconds: timeoutSeconds)
                self.done.signal()
            }.start()
        }

        /// Whether it has returned within `seconds`, and what it returned.
        func wait(seconds: Double) -> Bool? {
            guard done.wait(timeout: .now() + seconds) == .success else { return nil }
            done.signal()
            return result
        }
    }

    /// At most `credits` frames are out at once: the next producer waits until one is written.
    @Test func creditsBoundTheFramesInFlight() {
        let stream = ScanStream(credits: 2)
        #expect(stream.acquire(timeoutSeconds: 5))
        #expect(stream.acquire(timeoutSeconds: 5))
        let third = Waiter(stream, timeoutSeconds: 60)
        // Nothing gives a credit back yet: the third frame is not let out.
        #expect(third.wait(seconds: 0.1) == nil)
        #expect(!stream.isCancelled)
        stream.release()
        #expect(third.wait(seconds: 60) == true)
        #expect(!stream.isCancelled)
    }

    @Test func cancellingWakesAWaitingProducer() {
        let stream = ScanStream(credits: 1)
        #expect(stream.acquire(timeoutSeconds: 5))
        let waiting = Waiter(stream, timeoutSeconds: 60)
        #expect(waiting.wait(seconds: 0.05) == nil)
        stream.cancel()
        #expect(waiting.wait(seconds: 60) == false)
        #expect(!stream.acquire(timeoutSeconds: 5))
    }

    /// A reader that takes nothing for the whole wait ends the scan (the connection's stall timeout closes it).
    @Test func noCreditWithinTheWaitCancels() {
        let stream = ScanStream(credits: 1)
        #expect(stream.acquire(timeoutSeconds: 5))
        #expect(!stream.acquire(timeoutSeconds: 0.01))
        #expect(stream.isCancelled)
    }

    /// Frames built in place are length-prefixed JSON objects holding every event with its seq, in order.
    @Test(arguments: [nil, Array("\"scan-7\"".utf8), Array("12".utf8)])
    func framesAreWellFormed(id: [UInt8]?) throws {
        let bodies = [
            #"{"type":"a.b","lead_id":"L1","event_id":"e1"}"#,
            #"{"type":"recipient.delivered","lead_id":"L\"2","event_id":"e2","metadata":{"x":[1,2,{"y":null}]}}"#,
        ].map { Array($0.utf8) }
        for last in [nil, UInt64(4_294_967_297)] {
            var builder = ScanFrameBuilder(id: id, capacity: 64)
            for (k, body) in bodies.enumerated() {
                body.withUnsafeBufferPointer { b in
                    builder.append(RecordView(seq: UInt64(k) * 1000 + 7, timestampMs: 0, leadHash: 0, fields: EventFieldRefs(), body: b))
                }
            }
            builder.append(rendered: Array(#"{"seq":3,"type":"c.d"}"#.utf8))
            #expect(builder.count == 3)
            var frame = builder.finish(lastSeq: last)
            let prefix = frame.readInteger(as: UInt32.self)
            let length = try #require(prefix)
            #expect(Int(length) == frame.readableBytes)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(frame.readableBytesView)) as? [String: Any])
            #expect(object["ok"] as? Bool == true)
            let events = try #require(object["events"] as? [[String: Any]])
            #expect(events.compactMap { ($0["seq"] as? NSNumber)?.intValue } == [7, 1007, 3])
            #expect(events[1]["lead_id"] as? String == "L\"2")
            if let id {
                #expect("\(object["id"] ?? "")" == String(decoding: id, as: UTF8.self).replacingOccurrences(of: "\"", with: ""))
            } else {
                #expect(object["id"] == nil)
            }
            if let last {
                #expect(object["done"] as? Bool == true)
                #expect((object["last_seq"] as? NSNumber)?.uint64Value == last)
            } else {
                #expect(object["done"] == nil)
            }
        }
    }
}
