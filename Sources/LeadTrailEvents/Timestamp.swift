/// RFC 3339 timestamps as milliseconds since the Unix epoch, UTC.
///
/// Parsing accepts any RFC 3339 date-time (offsets, `t`/`z` in either case, any
/// number of fraction digits, which are truncated to milliseconds). Formatting
/// always gives the canonical stored form `YYYY-MM-DDTHH:MM:SS.mmmZ`.
public enum Timestamp {
    /// Parses an RFC 3339 date-time; `nil` when it is not one.
    public static func parse<Bytes: RandomAccessCollection>(_ text: Bytes) -> Int64? where Bytes.Element == UInt8, Bytes.Index == Int {
        var i = text.startIndex
        let end = text.endIndex
        func digits(_ n: Int) -> Int? {
            guard i + n <= end else { return nil }
            var v = 0
            for k in 0..<n {
                let c = text[i + k]
                guard c >= 0x30, c <= 0x39 else { return nil }
                v = v * 10 + Int(c - 0x30)
            }
            i += n
            return v
        }
        func expect(_ chars: UInt8...) -> Bool {
            guard i < end, chars.contains(text[i]) else { return false }
            i += 1
            return true
        }
        guard let year = digits(4), expect(UInt8(ascii: "-")), let month = digits(2), expect(UInt8(ascii: "-")),
              let day = digits(2), expect(UInt8(ascii: "T"), UInt8(ascii: "t"), UInt8(ascii: " ")),
              let hour = digits(2), expect(UInt8(ascii: ":")), let minute = digits(2), expect(UInt8(ascii: ":")),
              let second = digits(2)
        else { return nil }
        var millis = 0
        if i < end, text[i] == UInt8(ascii: ".") {
            i += 1
            var count = 0
            while i < end, text[i] >= 0x30, text[i] <= 0x39 {
                if count < 3 { millis = millis * 10 + Int(text[i] - 0x30) }
                count += 1
                i += 1
            }
            guard count > 0 else { return nil }
            for _ in count..<max(count, 3) { millis *= 10 }
        }
        var offsetMinutes = 0
        guard i < end else { return nil }
        if text[i] == UInt8(ascii: "Z") || text[i] == UInt8(ascii: "z") {
            i += 1
        } else {
            let sign = text[i]
            guard sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") else { return nil }
            i += 1
            guard let oh = digits(2), expect(UInt8(ascii: ":")), let om = digits(2), oh <= 23, om <= 59 else { return nil }
            offsetMinutes = (oh * 60 + om) * (sign == UInt8(ascii: "-") ? -1 : 1)
        }
        guard i == end else { return nil }
        guard (1...12).contains(month), day >= 1, day <= daysIn(month: month, year: year),
              hour <= 23, minute <= 59, second <= 60
        else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        let seconds = Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60 + second) - Int64(offsetMinutes * 60)
        let result = seconds * 1000 + Int64(millis)
        // An offset can move the instant outside years 0000-9999 in UTC, where the canonical form cannot hold it.
        guard result >= minimumMillis, result <= maximumMillis else { return nil }
        return result
    }

    /// 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z: the range of the canonical form.
    static let minimumMillis: Int64 = -62_167_219_200_000
    static let maximumMillis: Int64 = 253_402_300_799_999

    /// Parses a Swift string holding an RFC 3339 date-time.
    public static func parse(_ text: String) -> Int64? {
        parse(Array(text.utf8))
    }

    /// The canonical form, `2024-01-15T14:30:45.234Z`.
    public static func format(_ millis: Int64) -> String {
        String(decoding: formatBytes(millis), as: UTF8.self)
    }

    /// The canonical form as UTF-8 bytes (24 bytes for years 0-9999).
    public static func formatBytes(_ millis: Int64) -> [UInt8] {
        withCanonicalBytes(millis) { Array($0) }
    }

    /// Appends the canonical form, in quotes, to `out`.
    public static func appendQuoted(_ millis: Int64, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        withCanonicalBytes(millis) { out.append(contentsOf: $0) }
        out.append(UInt8(ascii: "\""))
    }

    /// Whether `text` is exactly the canonical form of `millis`.
    public static func isCanonical<Bytes: Collection<UInt8>>(_ text: Bytes, _ millis: Int64) -> Bool {
        text.count == canonicalLength && withCanonicalBytes(millis) { $0.elementsEqual(text) }
    }

    static let canonicalLength = 24

    /// Calls `body` with the canonical form of `millis`, written on the stack.
    static func withCanonicalBytes<R>(_ millis: Int64, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        let ms = Int(((millis % 1000) + 1000) % 1000)
        let totalSeconds = (millis - Int64(ms)) / 1000
        var days = Int(totalSeconds / 86_400)
        var secondOfDay = Int(totalSeconds % 86_400)
        if secondOfDay < 0 {
            secondOfDay += 86_400
            days -= 1
        }
        let (y, m, d) = civilFromDays(days)
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: canonicalLength) { out in
            // The low `width` decimal digits of |v| at `at`, then `separator`.
            func put(_ v: Int, _ width: Int, at: Int, _ separator: UInt8) {
                var x = abs(v)
                for k in stride(from: at + width - 1, through: at, by: -1) {
                    out[k] = UInt8(0x30 + x % 10)
                    x /= 10
                }
                out[at + width] = separator
            }
            put(y, 4, at: 0, UInt8(ascii: "-"))
            put(m, 2, at: 5, UInt8(ascii: "-"))
            put(d, 2, at: 8, UInt8(ascii: "T"))
            put(secondOfDay / 3600, 2, at: 11, UInt8(ascii: ":"))
            put(secondOfDay / 60 % 60, 2, at: 14, UInt8(ascii: ":"))
            put(secondOfDay % 60, 2, at: 17, UInt8(ascii: "."))
            put(ms, 3, at: 20, UInt8(ascii: "Z"))
            return body(UnsafeBufferPointer(out))
        }
    }

    /// Milliseconds since the epoch, now, from the system clock.
    public static func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    static func isLeap(_ y: Int) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Howard Hinnant's days_from_civil.
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// Howard Hinnant's civil_from_days.
    static func civilFromDays(_ z0: Int) -> (Int, Int, Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
