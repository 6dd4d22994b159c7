import Testing
@testable import LeadTrailEvents

/// The inline field references behave like the array they replaced.
@Suite struct FieldRefsTests {
    @Test func countMatchesTheIndexedFields() {
        #expect(EventFieldRefs.count == IndexedField.allCases.count)
    }

    @Test func subscriptsAndRefsRoundTrip() {
        var fields = EventFieldRefs()
        #expect(fields.refs == Array(repeating: FieldRef.absent, count: EventFieldRefs.count))
        for field in IndexedField.allCases {
            fields[field] = FieldRef(offset: UInt32(10 * field.rawValue + 1), packedLength: UInt16(field.rawValue) | 0x8000)
        }
        for field in IndexedField.allCases {
            #expect(fields[field].offset == UInt32(10 * field.rawValue + 1))
            #expect(fields[field].length == field.rawValue)
            #expect(fields[field].hasEscapes)
            #expect(fields[field.rawValue] == fields[field])
        }
        let copy = EventFieldRefs(refs: fields.refs)
        #expect(copy == fields)
        var changed = copy
        changed[.outcome] = .absent
        #expect(changed != fields)
        #expect(EventFieldRefs(refs: []) == EventFieldRefs())
    }

    @Test func byteComparisonsWithAndWithoutEscapes() {
        let body = Array(#"{"type":"recipient.delivered","lead_id":"a\"b"}"#.utf8)
        body.withUnsafeBufferPointer { b in
            let type = FieldRef(range: 9..<28, hasEscapes: false)
            #expect(type.equals(Array("recipient.delivered".utf8), in: b))
            #expect(!type.equals(Array("recipient.delivere".utf8), in: b))
            #expect(type.hasPrefix(Array("recipient.".utf8), in: b))
            #expect(!type.hasPrefix(Array("source.".utf8), in: b))
            #expect(type.hasPrefix([UInt8](), in: b))
            let lead = FieldRef(range: 41..<45, hasEscapes: true)
            #expect(lead.equals(Array("a\"b".utf8), in: b))
            #expect(lead.hasPrefix(Array("a\"".utf8), in: b))
            // Out of the body's bounds: never equal.
            #expect(!FieldRef(range: 40..<90, hasEscapes: false).equals(Array("x".utf8), in: b))
            #expect(!FieldRef.absent.hasPrefix([UInt8](), in: b))
        }
    }
}
