import Foundation

/// Typed reads of values decoded by `JSONSerialization` (`[String: Any]` trees).
///
/// Foundation hands numbers back as `NSNumber` on Linux and as `Int` or
/// `Double` elsewhere; these helpers accept every such form so callers never
/// need a force cast.
public enum JSONAccess {
    /// The string at `key`, if it is one.
    public static func string(_ object: [String: Any], _ key: String) -> String? {
        object[key] as? String
    }

    /// A number as `Double`, from any numeric representation (not `Bool`).
    public static func double(_ value: Any?) -> Double? {
        switch value {
        case let v as Int: return Double(v)
        case let v as Int64: return Double(v)
        case let v as UInt64: return Double(v)
        case let v as Double: return v
        case let v as NSNumber: return v.doubleValue
        default: return nil
        }
    }

    /// A number as `Int64` when it is integral.
    public static func int(_ value: Any?) -> Int64? {
        switch value {
        case let v as Int: return Int64(v)
        case let v as Int64: return v
        case let v as UInt64: return v <= UInt64(Int64.max) ? Int64(v) : nil
        default:
            guard let d = double(value), d.rounded() == d, abs(d) < 9.0e18 else { return nil }
            return Int64(d)
        }
    }

    /// The object at a path of keys, like `["metadata", "buyer_response"]`.
    public static func object(_ object: [String: Any], _ path: String...) -> [String: Any]? {
        var current: [String: Any] = object
        for key in path {
            guard let next = current[key] as? [String: Any] else { return nil }
            current = next
        }
        return current
    }

    /// The value at `path` below `object`, or `nil` when any step is missing.
    public static func value(_ object: [String: Any], path: [String]) -> Any? {
        var current: Any = object
        for key in path {
            guard let dict = current as? [String: Any], let next = dict[key] else { return nil }
            current = next
        }
        return current
    }

    /// A short text for a scalar: strings as is, numbers without a needless `.0`.
    public static func text(_ value: Any?) -> String? {
        switch value {
        case nil: return nil
        case let s as String: return s
        case let b as Bool where isBoolean(value):
            return b ? "true" : "false"
        default:
            if let i = int(value) { return String(i) }
            if let d = double(value) { return String(d) }
            if value is NSNull { return "null" }
            return nil
        }
    }

    /// Serialises a decoded value as compact JSON with sorted keys.
    public static func serialize(_ value: Any, pretty: Bool = false) -> String {
        var options: JSONSerialization.WritingOptions = [.sortedKeys, .withoutEscapingSlashes]
        if pretty { options.insert(.prettyPrinted) }
        guard JSONSerialization.isValidJSONObject(value),
              let data = try? JSONSerialization.data(withJSONObject: value, options: options)
        else {
            return String(describing: value)
        }
        return String(decoding: data, as: UTF8.self)
    }


    /// Whether a decoded value is a JSON boolean rather than the number 0 or 1
    /// (Foundation decodes both to `NSNumber`; booleans are its `__NSCFBoolean` subclass).
    public static func isBoolean(_ value: Any?) -> Bool {
        guard let value else { return false }
        if type(of: value) == Bool.self { return true }
        return String(describing: type(of: value)).contains("Boolean")
    }
}
