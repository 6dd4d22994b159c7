import LeadTrailEvents
import LeadTrailWire
import Testing

@Suite struct JSONWriterTests {
    @Test(arguments: [UInt64(0), 7, 9, 10, 11, 99, 100, 12_345, 1_000_000, UInt64(Int64.max), .max])
    func numbersAreWrittenInDecimal(_ value: UInt64) {
        var out: [UInt8] = [UInt8(ascii: "x")]
        JSONNumber.append(value, to: &out)
        #expect(String(decoding: out, as: UTF8.self) == "x" + String(value))
    }

    @Test func objectMembers() {
        var writer = JSONObjectWriter()
        writer.int("a", -42)
        writer.int("b", UInt64.max)
        writer.bool("c", true)
        writer.string("d", "q\"\n")
        writer.rawArray("e", count: 3) { index, out in JSONNumber.append(UInt64(index), to: &out) }
        writer.rawArray("f", count: 0) { _, _ in }
        #expect(String(decoding: writer.finished(), as: UTF8.self)
            == #"{"a":-42,"b":18446744073709551615,"c":true,"d":"q\"\n","e":[0,1,2],"f":[]}"#)
    }
}
