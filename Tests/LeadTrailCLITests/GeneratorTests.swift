import Foundation
import LeadTrailEvents
import Testing
@testable import LeadTrailCLIKit

@Suite("Event generator")
struct GeneratorTests {
    static let start = Timestamp.parse("2024-01-15T09:00:00.000Z") ?? 0

    static func generate(leads: Int, seed: UInt64) -> [[UInt8]] {
        Array(EventGenerator(GeneratorOptions(leads: leads, seed: seed, startMs: start)))
    }

    @Test("the same seed gives the same bytes, another seed other bytes")
    func deterministic() {
        let a = Self.generate(leads: 40, seed: 7)
        let b = Self.generate(leads: 40, seed: 7)
        let c = Self.generate(leads: 40, seed: 8)
        #expect(a == b)
        #expect(a != c)
    }

    @Test("the first leads do not depend on how many are generated")
    func prefixStable() throws {
        func leadsOf(_ events: [[UInt8]]) throws -> [String] {
            try events.compactMap { (try JSONSerialization.jsonObject(with: Data($0)) as? [String: Any])?["lead_id"] as? String }
        }
        let few = try Set(leadsOf(Self.generate(leads: 5, seed: 3)))
        let many = try Set(leadsOf(Self.generate(leads: 50, seed: 3)))
        #expect(few.isSubset(of: many))
        #expect(few.count == 5)
    }

    @Test("every event is valid for the daemon, in time order, with unique ids")
    func valid() throws {
        let events = Self.generate(leads: 300, seed: 42)
        let preparer = EventPreparer()
        var previous: Int64 = .min
        var ids = Set<String>()
        var types: [String: Int] = [:]
        var bytes = 0
        for json in events {
            let prepared = try json.withUnsafeBufferPointer { buffer in
                try preparer.prepare(buffer, now: 0, newEventID: { "unused" })
            }
            #expect(!prepared.eventIDAssigned)
            #expect(prepared.timestampMs >= previous)
            previous = prepared.timestampMs
            #expect(ids.insert(prepared.eventID).inserted)
            #expect(prepared.json == json, "the generator writes canonical timestamps, so nothing is rewritten")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(json)) as? [String: Any])
            types[object["type"] as? String ?? "", default: 0] += 1
            bytes += json.count
        }
        let average = bytes / events.count
        #expect(average > 1000 && average < 1400, "average event size \(average) bytes")
        for type in ["source.submitted", "source.accepted", "source.rejected", "enhancement.success", "enhancement.failure",
                     "filter.passed", "filter.failed", "recipient.delivered", "recipient.failed", "flow.completed",
                     "feedback.received", "retry.attempted"] {
            #expect(types[type, default: 0] > 0, "no \(type) in 300 leads")
        }
        #expect(types["source.submitted"] == 300)
        #expect(types["flow.completed"] == 300)
    }

    @Test("deliveries carry a buyer price and rejections a reason")
    func fields() throws {
        for json in Self.generate(leads: 100, seed: 9) {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(json)) as? [String: Any])
            let metadata = object["metadata"] as? [String: Any] ?? [:]
            let snapshot = try #require(object["lead_snapshot"] as? [String: Any])
            for key in ["first_name", "last_name", "email", "phone", "address", "dob", "ssn"] {
                #expect(snapshot[key] is String)
            }
            for key in ["flow_id", "entity_id", "step_id", "outcome"] { #expect(object[key] is String) }
            switch object["type"] as? String {
            case "recipient.delivered":
                #expect(JSONAccess.double(JSONAccess.value(metadata, path: ["buyer_response", "price"])) ?? 0 > 0)
            case "source.rejected", "filter.failed", "recipient.failed":
                #expect(metadata["rejection_reason"] is String)
            case "enhancement.success":
                #expect(JSONAccess.double(metadata["cost"]) ?? 0 > 0)
                #expect(JSONAccess.int(object["duration_ms"]) ?? -1 >= 0)
            default: break
            }
        }
    }

    @Test("the seeded generator is stable across releases")
    func knownValues() {
        var rng = SeededRandom(seed: 0)
        #expect(rng.next() == 0xE220_A839_7B1D_CDAF)
        #expect(rng.next() == 0x6E78_9E6A_A1B9_65F4)
    }
}
