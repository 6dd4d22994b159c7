/// The error codes of PROTOCOL.md section 4, spelled as on the wire.
public enum ErrorCode: String, Sendable, CaseIterable {
    /// The frame is not a UTF-8 JSON object.
    case badFrame = "bad_frame"
    /// The frame's declared length is above the configured maximum; the connection is then closed.
    case frameTooLarge = "frame_too_large"
    /// The `op` is not one this daemon implements.
    case unknownOp = "unknown_op"
    /// A request field is missing or has the wrong type or value.
    case badRequest = "bad_request"
    /// An event of an append batch failed validation (the error carries its `index`).
    case invalidEvent = "invalid_event"
    /// An append batch holds more events than allowed.
    case batchTooLarge = "batch_too_large"
    /// The requested event does not exist.
    case notFound = "not_found"
    /// The peer's role does not allow the op.
    case forbidden = "forbidden"
    /// The store cannot serve the request now; nothing of it was stored.
    case unavailable = "unavailable"
    /// An unexpected failure inside the daemon.
    case `internal` = "internal"
}

/// An error answer of the protocol: a code, a message for people and, for
/// `invalid_event`, the index of the first bad event of the batch.
///
/// It renders as `{"code":...,"message":...,"index":...}` inside the error frame.
public struct WireError: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: ErrorCode
    public var message: String
    /// The position of the first invalid event of a batch (only for `invalid_event`).
    public var index: Int?

    public init(_ code: ErrorCode, _ message: String, index: Int? = nil) {
        self.code = code
        self.message = message
        self.index = index
    }

    public var description: String {
        if let index { return "\(code.rawValue) (index \(index)): \(message)" }
        return "\(code.rawValue): \(message)"
    }

    /// Whether the connection must be closed after this error is sent.
    public var closesConnection: Bool { code == .frameTooLarge }
}
