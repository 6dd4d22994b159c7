import Foundation
import LeadTrailEvents
import LeadTrailStorage
import Testing
@testable import LeadTrailServer

/// The append answer, written with plain stores into a buffer measured beforehand.
@Suite struct ResponsesTests {
    @Test func appendAnswerHasEveryResultInOrderByteForByte() throws {
        let preparer = EventPreparer()
        var batch = PreparedBatch()
        let ids = ["a", "evt_0123456789", String(repeating: "z", count: 64), nil, "x-y_z"]
        for (k, id) in ids.enumerated() {
            let idMember = id.map { #""event_id":"\#($0)","# } ?? ""
            let bytes = Array(#"{\#(idMember)"type":"source.submitted","lead_id":"L\#(k)","timestamp":"2026-01-01T00:00:00.000Z"}"#.utf8)
            try bytes.withUnsafeBufferPointer { (b) throws in
                let (object, members) = try JSONScanner.topLevelMembers(b)
                try preparer.prepare(b, object: object, members: members[...], now: 0, newEventID: { "assigned_1" }, into: &batch)
            }
        }
        let seqs: [UInt64] = [1, 9, 10, 1_099_511_627_775, UInt64.max]
        let outcomes = zip(seqs, [false, true, false, false, true]).map { AppendOutcome(seq: $0, duplicate: $1) }
        let expected = #"{"id":7,"ok":true,"results":["#
            + zip(ids.map { $0 ?? "assigned_1" }, outcomes).map { id, outcome in
                #"{"seq":\#(outcome.seq),"event_id":"\#(id)","duplicate":\#(outcome.duplicate)}"#
            }.joined(separator: ",") + "]}"
        #expect(String(decoding: Responses.append(id: Array("7".utf8), batch, outcomes), as: UTF8.self) == expected)
        #expect(String(decoding: Responses.append(id: nil, PreparedBatch(), []), as: UTF8.self) == #"{"ok":true,"results":[]}"#)
        #expect([0, 9, 10, 99, 100, 18_446_744_073_709_551_615].map { Responses.digitCount($0) } == [1, 1, 2, 2, 3, 20])
    }
}
