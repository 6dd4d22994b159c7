import Testing
@testable import LeadTrailEvents
import LeadTrailTestSupport

@Suite struct TimestampTests {
    static let reference: Int64 = 1_705_329_045_234  // 2024-01-15T14:30:45.234Z

    static let equivalentForms: [(String, Int64)] = [
        ("2024-01-15T14:30:45.234Z", reference),
        ("2024-01-15t14:30:45.234z", reference),
        ("2024-01-15T14:30:45.234+00:00", reference),
        ("2024-01-15T14:30:45.234-00:00", reference),
        ("2024-01-15T15:30:45.234+01:00", reference),
        ("2024-01-15T09:00:45.234-05:30", reference),
        ("2024-01-16T00:30:45.234+10:00", reference),
        ("2024-01-14T14:31:45.234-23:59", reference),
        ("2024-01-15T14:30:45.2345Z", reference),
        ("2024-01-15T14:30:45.234999999Z", reference),
        ("2024-01-15T14:30:45.2Z", reference - 34),
        ("2024-01-15T14:30:45.23Z", reference - 4),
        ("2024-01-15T14:30:45Z", reference - 234),
        ("2024-01-15T14:30:45.000Z", reference - 234),
        ("1970-01-01T00:00:00Z", 0),
        ("1969-12-31T23:59:59.999Z", -1),
        ("1970-01-01T01:00:00+01:00", 0),
        ("2000-02-29T00:00:00Z", 951_782_400_000),
        ("2024-02-29T12:00:00Z", 1_709_208_000_000),
        ("2024-12-31T23:59:59.999Z", 1_735_689_599_999),
        ("0000-01-01T00:00:00Z", -62_167_219_200_000),
        ("9999-12-31T23:59:59.999Z", 253_402_300_799_999),
    ]

    @Test(arguments: equivalentForms)
    func parses(_ text: String, _ expected: Int64) {
        #expect(Timestamp.parse(text) == expected, "\(text)")
    }

    /// The shortcut the preparer takes agrees with formatting and comparing, on every accepted form.
    @Test(arguments: equivalentForms.map(\.0) + ["2016-12-31T23:59:60.000Z", "2016-12-31T23:59:60Z", "2024-01-15T14:30:45.234z"])
    func canonicalShapeMatchesFormatting(_ text: String) throws {
        let millis = try #require(Timestamp.parse(text))
        let bytes = Array(text.utf8)
        let shape = bytes.withUnsafeBufferPointer { Timestamp.isCanonicalShape($0) }
        #expect(shape == (Timestamp.format(millis) == text), "\(text)")
    }

    static let invalid = [
        "", "2024", "2024-01-15", "2024-01-15T14:30:45", "2024-01-15T14:30Z", "2024-01-15 14:30:45.234", "24-01-15T14:30:45Z",
        "2024-1-15T14:30:45Z", "2024-01-5T14:30:45Z", "2024-01-15T4:30:45Z", "2024-01-15T14:30:45.Z", "2024-01-15T14:30:45.234ZZ",
        "2024-01-15T14:30:45.234 Z", "2024-01-15T14:30:45+0100", "2024-01-15T14:30:45+01", "2024-01-15T14:30:45+24:00",
        "2024-01-15T14:30:45+01:60", "2024-01-15T14:30:45.234Zjunk", " 2024-01-15T14:30:45Z", "2024/01/15T14:30:45Z",
        "2024-01-15X14:30:45Z", "2024-00-10T00:00:00Z", "2024-13-10T00:00:00Z", "2024-01-00T00:00:00Z", "2024-01-32T00:00:00Z",
        "2023-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2024-02-30T00:00:00Z", "2024-02-31T00:00:00Z", "2024-04-31T00:00:00Z",
        "2024-06-31T00:00:00Z", "2024-09-31T00:00:00Z", "2024-11-31T00:00:00Z", "2024-01-15T24:00:00Z", "2024-01-15T14:60:00Z",
        "2024-01-15T14:30:61Z", "-2024-01-15T14:30:45Z", "+2024-01-15T14:30:45Z", "2024-01-15T14:30:45.-1Z",
        "２０２４-01-15T14:30:45Z", "2024-01-15T14:30:45.234\u{0}",
    ]

    @Test(arguments: invalid)
    func refuses(_ text: String) {
        #expect(Timestamp.parse(text) == nil, "\(text)")
    }

    static let formats: [(Int64, String)] = [
        (reference, "2024-01-15T14:30:45.234Z"),
        (0, "1970-01-01T00:00:00.000Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
        (-1000, "1969-12-31T23:59:59.000Z"),
        (-86_400_001, "1969-12-30T23:59:59.999Z"),
        (951_782_400_000, "2000-02-29T00:00:00.000Z"),
        (-62_167_219_200_000, "0000-01-01T00:00:00.000Z"),
        (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
    ]

    @Test(arguments: formats)
    func formats(_ millis: Int64, _ expected: String) {
        #expect(Timestamp.format(millis) == expected)
        #expect(Timestamp.formatBytes(millis).count == 24)
        #expect(Timestamp.parse(expected) == millis)
    }

    @Test func roundTripsEveryMillisecondOfTheFourDigitYears() {
        var rng = SplitMix64(seed: 0x5EED_0004)
        let low: Int64 = -62_167_219_200_000, high: Int64 = 253_402_300_799_999
        for _ in 0..<(Environment.longTests ? 1_000_000 : 50_000) {
            let ms = Int64.random(in: low...high, using: &rng)
            #expect(Timestamp.parse(Timestamp.formatBytes(ms)) == ms)
        }
        // Every day of a few leap cycles, each boundary included.
        var ms: Int64 = 946_684_800_000 - 86_400_000  // 1999-12-31
        for _ in 0..<(4 * 366 + 2) {
            #expect(Timestamp.parse(Timestamp.formatBytes(ms)) == ms)
            #expect(Timestamp.parse(Timestamp.formatBytes(ms - 1)) == ms - 1)
            ms += 86_400_000
        }
    }

    /// Whatever is accepted is stored in canonical form, and that form reads back as the same instant
    /// (an offset that moves the date outside years 0000-9999 cannot be written in the canonical form).
    static let extremes = [
        "0000-01-01T00:00:00.000+00:01", "0000-01-01T00:59:59.999+01:00", "0000-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999-00:01", "9999-12-31T23:00:00-01:00", "9999-12-31T23:59:59.999Z",
        "2024-01-15T14:30:60Z", "2016-12-31T23:59:60Z",
    ]

    @Test(arguments: extremes)
    func acceptedTimestampsHaveAFaithfulCanonicalForm(_ text: String) {
        guard let ms = Timestamp.parse(text) else { return }
        let canonical = Timestamp.formatBytes(ms)
        #expect(Timestamp.parse(canonical) == ms, "\(text) became \(String(decoding: canonical, as: UTF8.self))")
    }

    @Test func randomOffsetsAgreeWithUTC() {
        var rng = SplitMix64(seed: 0x5EED_0005)
        for _ in 0..<(Environment.longTests ? 200_000 : 10_000) {
            let utc = Int64.random(in: 0...4_102_444_800_000, using: &rng)  // 1970...2100
            let offsetMinutes = Int.random(in: -(23 * 60 + 59)...(23 * 60 + 59), using: &rng)
            let local = Timestamp.format(utc + Int64(offsetMinutes) * 60_000)
            let sign = offsetMinutes < 0 ? "-" : "+"
            let h = abs(offsetMinutes) / 60, m = abs(offsetMinutes) % 60
            let text = String(local.dropLast()) + sign + (h < 10 ? "0" : "") + String(h) + ":" + (m < 10 ? "0" : "") + String(m)
            #expect(Timestamp.parse(text) == utc, "\(text)")
        }
    }
}
