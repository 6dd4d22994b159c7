/// Builds one JSON object directly as UTF-8 bytes, member by member.
///
/// Keys and string values are escaped as RFC 8259 requires; `raw` values are
/// copied as they are, so the caller guarantees they are valid JSON.
public struct JSONObjectWriter: Sendable {
    public private(set) var bytes: [UInt8]
    private var empty = true

    public init(reservingCapacity capacity: Int = 128) {
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

    /// A member whose value is already valid JSON.
    public mutating func raw(_ name: String, _ json: some Sequence<UInt8>) {
        key(name)
        bytes.append(contentsOf: json)
    }

    public mutating func string(_ name: String, _ value: String) {
        key(name)
        JSONString.append(value, to: &bytes)
    }

    public mutating func bool(_ name: String, _ value: Bool) {
        key(name)
        bytes.append(contentsOf: value ? "true".utf8 : "false".utf8)
    }

    public mutating func int<I: BinaryInteger>(_ name: String, _ value: I) {
        key(name)
        if let unsigned = UInt64(exactly: value) {
            JSONNumber.append(unsigned, to: &bytes)
        } else {
            bytes.append(contentsOf: String(value).utf8)
        }
    }

    /// A finite number; non-finite values are written as `null`.
    public mutating func double(_ name: String, _ value: Double) {
        raw(name, value.isFinite ? Array(String(value).utf8) : Array("null".utf8))
    }

    public mutating func null(_ name: String) {
        raw(name, Array("null".utf8))
    }

    public mutating func object(_ name: String, _ value: JSONObjectWriter) {
        raw(name, value.finished())
    }

    /// An array of values that are each already valid JSON.
    public mutating func rawArray(_ name: String, _ elements: [[UInt8]]) {
        key(name)
        bytes.append(UInt8(ascii: "["))
        for (i, element) in elements.enumerated() {
            if i > 0 { bytes.append(UInt8(ascii: ",")) }
            bytes.append(contentsOf: element)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    /// An array of `count` values, each written as valid JSON by `element` straight into the output.
    public mutating func rawArray(_ name: String, count: Int, _ element: (Int, inout [UInt8]) -> Void) {
        key(name)
        bytes.append(UInt8(ascii: "["))
        for index in 0..<count {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            element(index, &bytes)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    /// An array of strings.
    public mutating func stringArray(_ name: String, _ elements: [String]) {
        rawArray(name, elements.map { value in
            var out: [UInt8] = []
            JSONString.append(value, to: &out)
            return out
        })
    }

    /// The object's bytes, closing brace included.
    public consuming func finished() -> [UInt8] {
        bytes.append(UInt8(ascii: "}"))
        return bytes
    }
}
