import Foundation
import LeadTrailEvents
import Testing
@testable import LeadTrailCLIKit

@Suite("Timeline renderer")
struct TimelineRendererTests {
    static func event(_ json: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any] ?? [:]
    }

    @Test("renders the issue's example")
    func issueExample() {
        let events = [
            #"{"type":"source.submitted","lead_id":"lead_5T8n","timestamp":"2024-01-15T10:30:45.123Z","entity_id":"src_acme_web","outcome":"received","metadata":{"source_name":"acme-web"}}"#,
            #"{"type":"source.accepted","lead_id":"lead_5T8n","timestamp":"2024-01-15T10:30:45.156Z","entity_id":"src_acme_web","outcome":"accepted"}"#,
            #"{"type":"recipient.delivered","lead_id":"lead_5T8n","timestamp":"2024-01-15T10:30:45.342Z","entity_id":"buyer_a","outcome":"accepted","metadata":{"buyer_name":"Buyer A","buyer_response":{"price":45.00}}}"#,
            #"{"type":"feedback.received","lead_id":"lead_5T8n","timestamp":"2024-01-15T13:30:00.000Z","entity_id":"buyer_a","outcome":"converted"}"#,
        ].map(Self.event)
        let lines = TimelineRenderer().render(events)
        #expect(lines == [
            "10:30:45.123  source.submitted      lead_5T8n  src: acme-web",
            "10:30:45.156  source.accepted       +33ms",
            "10:30:45.342  recipient.delivered   +186ms  Buyer A  $45.00",
            "... 2 hours 59 minutes later ...",
            "13:30:00.000  feedback.received     converted",
        ])
    }

    @Test("a gap at or under the threshold is a delta, over it a gap line")
    func gapThreshold() {
        let base = "2024-01-15T10:00:00.000Z"
        let events = [
            #"{"type":"source.submitted","lead_id":"l1","timestamp":"\#(base)"}"#,
            #"{"type":"flow.completed","lead_id":"l1","timestamp":"2024-01-15T11:00:00.000Z","outcome":"delivered"}"#,
            #"{"type":"feedback.received","lead_id":"l1","timestamp":"2024-01-15T14:00:00.001Z","outcome":"contacted"}"#,
        ].map(Self.event)
        let lines = TimelineRenderer().render(events)
        #expect(lines[1] == "11:00:00.000  flow.completed        +1h 0m  delivered")
        #expect(lines[2] == "... 3 hours later ...")
        #expect(lines[3] == "14:00:00.001  feedback.received     contacted")
    }

    @Test("a gap across midnight names the new day")
    func dayChange() {
        let events = [
            #"{"type":"flow.completed","lead_id":"l1","timestamp":"2024-01-15T22:00:00.000Z"}"#,
            #"{"type":"feedback.received","lead_id":"l1","timestamp":"2024-01-17T23:30:00.000Z"}"#,
        ].map(Self.event)
        let lines = TimelineRenderer().render(events)
        #expect(lines[1] == "... 2 days 1 hour later, 2024-01-17 ...")
    }

    static let deltaCases: [(Int64, String)] = [
        (0, "0ms"), (33, "33ms"), (999, "999ms"), (1000, "1.00s"), (1234, "1.23s"), (59_994, "59.99s"),
        (61_000, "1m 1s"), (3_599_000, "59m 59s"), (3_600_000, "1h 0m"),
    ]

    @Test("deltas", arguments: deltaCases)
    func deltas(ms: Int64, text: String) {
        #expect(TimelineRenderer.describeDelta(ms) == text)
    }

    static let gapCases: [(Int64, String)] = [
        (10_800_000, "3 hours later"), (3_660_000, "1 hour 1 minute later"),
        (93_600_000, "1 day 2 hours later"), (5_400_000, "1 hour 30 minutes later"),
    ]

    @Test("gap words", arguments: gapCases)
    func gaps(ms: Int64, text: String) {
        #expect(TimelineRenderer.describeGap(ms) == text)
    }

    static let moneyCases: [(Double, String)] = [(45.0, "$45.00"), (45.5, "$45.50"), (0.015, "$0.015"), (0.35, "$0.35"), (1234.05, "$1234.05")]

    @Test("money", arguments: moneyCases)
    func money(value: Double, text: String) {
        #expect(TimelineRenderer.money(value) == text)
    }

    @Test("failures show the reason, enhancements the provider and cost")
    func details() {
        let events = [
            #"{"type":"source.submitted","lead_id":"l1","timestamp":"2024-01-15T10:00:00.000Z","entity_id":"src_x"}"#,
            #"{"type":"enhancement.success","lead_id":"l1","timestamp":"2024-01-15T10:00:00.100Z","outcome":"success","metadata":{"provider":"verifyco","cost":0.02}}"#,
            #"{"type":"recipient.failed","lead_id":"l1","timestamp":"2024-01-15T10:00:00.300Z","entity_id":"buyer_x","outcome":"rejected","metadata":{"buyer_name":"X Corp","rejection_reason":"daily_cap_reached"}}"#,
            #"{"type":"retry.attempted","lead_id":"l1","timestamp":"2024-01-15T10:00:01.300Z","entity_id":"buyer_x","outcome":"retrying","metadata":{"attempt":2,"buyer_name":"X Corp","reason":"timeout"}}"#,
        ].map(Self.event)
        let lines = TimelineRenderer().render(events)
        #expect(lines[0] == "10:00:00.000  source.submitted      l1  src: src_x")
        #expect(lines[1] == "10:00:00.100  enhancement.success   +100ms  verifyco  $0.02")
        #expect(lines[2] == "10:00:00.300  recipient.failed      +200ms  X Corp  (daily_cap_reached)")
        #expect(lines[3] == "10:00:01.300  retry.attempted       +1.00s  attempt 2  X Corp  (timeout)")
    }

    @Test("an event without a timestamp does not break the timeline")
    func missingTimestamp() {
        let lines = TimelineRenderer().render([Self.event(#"{"type":"custom.note","lead_id":"l1"}"#)])
        #expect(lines == ["??:??:??.???  custom.note           l1"])
    }
}
