import LeadTrailEvents

/// What the generator writes beyond ``JSONObjectWriter``'s members: amounts with fixed decimals (so its
/// output is byte-for-byte stable), nested objects built in place, optional strings.
extension JSONObjectWriter {
    /// `"name":"value"` when `value` is not nil.
    mutating func string(_ name: String, ifPresent value: String?) {
        if let value { string(name, value) }
    }

    /// An amount of cents written as a decimal number with two places: `45.00`.
    mutating func money(_ name: String, cents: Int) {
        let sign = cents < 0 ? "-" : ""
        let absolute = abs(cents)
        let fraction = absolute % 100
        raw(name, "\(sign)\(absolute / 100).\(fraction < 10 ? "0" : "")\(fraction)".utf8)
    }

    /// An amount in thousandths written with three places: `0.015`.
    mutating func mills(_ name: String, _ mills: Int) {
        let absolute = abs(mills)
        let fraction = String(absolute % 1000)
        let padded = String(repeating: "0", count: 3 - fraction.count) + fraction
        raw(name, "\(mills < 0 ? "-" : "")\(absolute / 1000).\(padded)".utf8)
    }

    /// A nested object, built by `build`.
    mutating func object(_ name: String, _ build: (inout JSONObjectWriter) -> Void) {
        var nested = JSONObjectWriter(reservingCapacity: 256)
        build(&nested)
        object(name, nested)
    }
}
