import Foundation
import Testing
@testable import LeadTrailCLIKit

@Suite("NDJSON batcher")
struct NDJSONBatcherTests {
    static func lines(_ count: Int) -> String {
        (1...count).map { #"{"type":"a.b","lead_id":"l\#($0)"}"# }.joined(separator: "\n") + "\n"
    }

    func all(_ input: String, maxEvents: Int = 1000, chunk: Int = 7) throws -> [AppendBatch] {
        var batcher = NDJSONBatcher(maxEvents: maxEvents)
        var batches: [AppendBatch] = []
        let bytes = Array(input.utf8)
        var i = 0
        while i < bytes.count {
            batches += try batcher.feed(bytes[i..<min(bytes.count, i + chunk)])
            i += chunk
        }
        batches += try batcher.finish()
        return batches
    }

    @Test("frames hold the raw lines verbatim", arguments: [1, 3, 64, 4096])
    func frame(chunk: Int) throws {
        let input = "{\"type\":\"a.b\",\"lead_id\":\"x\",\"n\":1.50}\r\n  \n{\"lead_id\":\"y\", \"type\":\"c.d\"}"
        let batches = try all(input, chunk: chunk)
        #expect(batches.count == 1)
        #expect(String(decoding: batches[0].frame, as: UTF8.self)
            == #"{"op":"append","events":[{"type":"a.b","lead_id":"x","n":1.50},{"lead_id":"y", "type":"c.d"}]}"#)
        #expect(batches[0].lineNumbers == [1, 3])
        #expect(batches[0].inputBytes == input.utf8.count)
        let decoded = try JSONSerialization.jsonObject(with: Data(batches[0].frame)) as? [String: Any]
        #expect((decoded?["events"] as? [Any])?.count == 2)
    }

    @Test("batches split at maxEvents and keep line numbers")
    func splitting() throws {
        let input = "\n" + Self.lines(25)
        let batches = try all(input, maxEvents: 10, chunk: 13)
        #expect(batches.map(\.count) == [10, 10, 5])
        #expect(batches[0].lineNumbers.first == 2)
        #expect(batches[2].lineNumbers.last == 26)
        #expect(batches[1].line(ofIndex: 0) == 12)
        #expect(batches[1].line(ofIndex: 10) == nil)
        #expect(batches.reduce(0) { $0 + $1.inputBytes } == input.utf8.count)
    }

    @Test("frames stay under maxFrameBytes")
    func byteLimit() throws {
        let big = String(repeating: "x", count: 600)
        let input = (1...10).map { #"{"type":"a.b","lead_id":"l\#($0)","pad":"\#(big)"}"# }.joined(separator: "\n")
        var batcher = NDJSONBatcher(maxEvents: 1000, maxFrameBytes: 2048)
        var batches = try batcher.feed(Array(input.utf8))
        batches += try batcher.finish()
        #expect(batches.count == 4)
        #expect(batches.allSatisfy { $0.frame.count <= 2048 })
        #expect(batches.flatMap(\.lineNumbers) == Array(1...10))
    }

    @Test("blank and whitespace-only input gives no batch")
    func blank() throws {
        #expect(try all("\n\n   \n\t\r\n").isEmpty)
        #expect(try all("").isEmpty)
    }

    static let brokenCases: [(String, Int, String)] = [
        ("{\"type\":\"a.b\"}\n\n{\"type\": }\n", 3, "invalid JSON"),
        ("{\"type\":\"a.b\"}\n[1,2]\n", 2, "not a JSON object"),
        ("{\"a\":1} {\"b\":2}\n", 1, "invalid JSON"),
        ("{\"a\":1}\n{\"b\":2", 2, "invalid JSON"),
    ]

    @Test("a broken line is reported with its number", arguments: brokenCases)
    func brokenLine(input: String, line: Int, reason: String) {
        #expect {
            _ = try all(input, chunk: 5)
        } throws: { error in
            guard let error = error as? NDJSONLineError else { return false }
            return error.line == line && error.reason.contains(reason)
        }
    }

    @Test("after a broken line, the lines before it can still be sent")
    func pendingBeforeError() throws {
        var batcher = NDJSONBatcher(maxEvents: 2)
        var batches: [AppendBatch] = []
        #expect(throws: NDJSONLineError.self) {
            batches += try batcher.feed(Array("{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n{oops}\n".utf8))
        }
        #expect(batches.isEmpty)
        let pending = batcher.takePending()
        #expect(pending.map(\.lineNumbers) == [[1, 2], [3]])
        #expect(String(decoding: pending[1].frame, as: UTF8.self) == #"{"op":"append","events":[{"n":3}]}"#)
        #expect(batcher.takePending().isEmpty)
    }
}
