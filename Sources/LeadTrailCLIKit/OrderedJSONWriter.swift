import LeadTrailEvents

/// Writes one JSON object with members in the order they are added.
///
/// The generator uses it so that its output is byte-for-byte stable (no
/// dictionary ordering, fixed number formats such as prices with two decimals).
public struct OrderedJSONWriter {
    /// The bytes written so far (a complete object only after ``finish()``).
    public private(set) var bytes: [UInt8]
    private var empty = true

    /// Starts an object.
    public init(reserving capacity: Int = 1024) {
        bytes = []
        bytes.reserveCapacity(capacity)
        bytes.append(UInt8(ascii: "{"))
    }

    private mutating func key(_ name: String) {
        if !empty { bytes.append(UInt8(ascii: ",")) }
        empty = false
        JSONString.append(name, to: &bytes)
        bytes.append(UInt8(ascii: ":"))
    }

    /// `"name":"value"`.
    public mutating func string(_ name: String, _ value: String) {
        key(name)
        JSONString.append(value, to: &bytes)
    }

    /// `"name":"value"` when `value` is not nil.
    public mutating func string(_ name: String, ifPresent value: String?) {
        if let value { string(name, value) }
    }

    /// `"name":123`.
    public mutating func int(_ name: String, _ value: Int) {
        key(name)
        bytes.append(contentsOf: Array(String(value).utf8))
    }

    /// `"name":true`.
    public mutating func bool(_ name: String, _ value: Bool) {
        key(name)
        bytes.append(contentsOf: Array((value ? "true" : "false").utf8))
    }

    /// An amount of cents written as a decimal number with two places: `45.00`.
    public mutating func money(_ name: String, cents: Int) {
        key(name)
        let sign = cents < 0 ? "-" : ""
        let absolute = abs(cents)
        let fraction = absolute % 100
        let text = "\(sign)\(absolute / 100).\(fraction < 10 ? "0" : "")\(fraction)"
        bytes.append(contentsOf: Array(text.utf8))
    }

    /// An amount in thousandths written with three places: `0.015`.
    public mutating func mills(_ name: String, _ mills: Int) {
        key(name)
        let absolute = abs(mills)
        let fraction = String(absolute % 1000)
        let padded = String(repeating: "0", count: 3 - fraction.count) + fraction
        bytes.append(contentsOf: Array("\(mills < 0 ? "-" : "")\(absolute / 1000).\(padded)".utf8))
    }

    /// A nested object.
    public mutating func object(_ name: String, _ build: (inout OrderedJSONWriter) -> Void) {
        key(name)
        var nested = OrderedJSONWriter(reserving: 256)
        build(&nested)
        bytes.append(contentsOf: nested.finish())
    }

    /// A list of strings.
    public mutating func strings(_ name: String, _ values: [String]) {
        key(name)
        bytes.append(UInt8(ascii: "["))
        for (i, value) in values.enumerated() {
            if i > 0 { bytes.append(UInt8(ascii: ",")) }
            JSONString.append(value, to: &bytes)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    /// A member whose value is already JSON.
    public mutating func raw(_ name: String, _ json: [UInt8]) {
        key(name)
        bytes.append(contentsOf: json)
    }

    /// Closes the object and returns its bytes.
    public mutating func finish() -> [UInt8] {
        bytes.append(UInt8(ascii: "}"))
        return bytes
    }
}
