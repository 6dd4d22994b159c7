import Foundation
import Testing
@testable import LeadTrailCLIKit

@Suite("Exit codes and formatting")
struct FormattingTests {
    static let codes: [(Int32, Int32)] = [(0, 0), (64, 2), (1, 1), (2, 2), (3, 3), (70, 1), (130, 1)]

    @Test("argument parser codes map to the contract's", arguments: codes)
    func exitCodes(parser: Int32, contract: Int32) {
        #expect(ExitStatus.fromArgumentParser(parser) == contract)
    }

    @Test("the contract's codes")
    func contractCodes() {
        #expect(ExitStatus.success.rawValue == 0)
        #expect(CLIFailure.failed("x").status.rawValue == 1)
        #expect(CLIFailure.usage("x").status.rawValue == 2)
        #expect(CLIFailure.unreachable("x").status.rawValue == 3)
    }

    @Test("append summary")
    func summary() {
        var s = AppendSummary()
        for seq in 1...1200 { s.record(seq: Int64(seq), duplicate: false) }
        s.record(seq: 5, duplicate: true)
        #expect(s.line(seconds: 0.5) == "appended 1,200 events, 1 duplicate, seq 1-1200, in 0.50 s (2,402 events/s)")
        #expect(AppendSummary().line(seconds: 1.999).hasSuffix("in 2.00 s (0 events/s)"))
    }

    @Test("progress line")
    func progress() {
        let bar = ProgressBar(width: 10)
        #expect(bar.line(doneBytes: 50, totalBytes: 100, events: 1500, seconds: 1) == "[#####.....]  50%  1,500 events  1,500 ev/s")
        #expect(bar.line(doneBytes: 5, totalBytes: nil, events: 10, seconds: 0) == "10 events  0 ev/s")
    }

    @Test("raw responses keep event bytes as sent")
    func rawResponse() throws {
        let body = Array(#"{"ok":true,"events":[{"seq":1,"price":45.00},{"seq":2,"s":"\u00e9"}],"done":true,"last_seq":9}"#.utf8)
        let response = try RawResponse(body)
        #expect(response.ok && response.done && response.lastSeq == 9)
        #expect(response.events.map { String(decoding: $0, as: UTF8.self) } == [#"{"seq":1,"price":45.00}"#, #"{"seq":2,"s":"\u00e9"}"#])
        #expect(throws: CLIFailure.self) { try RawResponse(Array("[1]".utf8)) }
    }

    @Test("stats are readable")
    func stats() throws {
        let answer = try #require(try JSONSerialization.jsonObject(with: Data(
            #"{"ok":true,"events":1234,"last_seq":1234,"durability":"fsync","tiers":{"hot":{"segments":2,"events":1234,"bytes":1572864,"raw_bytes":1572864,"oldest":"2026-01-01T00:00:00.000Z","newest":"2026-01-02T00:00:00.000Z"},"warm":{"segments":1,"events":10,"bytes":1000,"raw_bytes":4550}},"syncs":7}"#.utf8)) as? [String: Any])
        let lines = Formatting.stats(answer)
        #expect(lines.contains("events      1,234"))
        #expect(lines.contains("hot        2          1,234         1.5 MiB      1.00x    2026-01-01T00:00:00.000Z   2026-01-02T00:00:00.000Z"))
        #expect(lines.contains("warm       1          10            1000 B       4.55x    -                          -"))
        #expect(lines.last == "syncs  7")
    }
}
