import LeadTrailEvents

/// Encodes response frames (PROTOCOL.md sections 2 and 4).
///
/// Every response is an object whose first members are the request's `id`
/// (echoed byte for byte, when the request carried one) and `ok`.
public enum ResponseEncoder {
    /// A writer for a successful response, with `id` and `"ok":true` already in place.
    public static func success(id: [UInt8]?, reservingCapacity capacity: Int = 128) -> JSONObjectWriter {
        var writer = JSONObjectWriter(reservingCapacity: capacity)
        if let id { writer.raw("id", id) }
        writer.bool("ok", true)
        return writer
    }

    /// The body of an error response: `{"id":..,"ok":false,"error":{"code","message"[,"index"]}}`.
    public static func error(id: [UInt8]?, _ error: WireError) -> [UInt8] {
        var writer = JSONObjectWriter()
        if let id { writer.raw("id", id) }
        writer.bool("ok", false)
        var detail = JSONObjectWriter()
        detail.string("code", error.code.rawValue)
        detail.string("message", error.message)
        if let index = error.index { detail.int("index", index) }
        writer.object("error", detail)
        return writer.finished()
    }

    /// `{"id":..,"ok":true}`, the answer of `ping`.
    public static func ok(id: [UInt8]?) -> [UInt8] {
        success(id: id).finished()
    }
}
