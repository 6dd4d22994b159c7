#if canImport(Glibc)
import Glibc
#endif
import Foundation
import LeadTrailWire

/// Why a client call failed.
public enum ClientError: Error, CustomStringConvertible {
    /// No daemon could be reached at the socket (missing file, refused, permission).
    case unreachable(String)
    /// The daemon sent something that is not a valid frame or response, or a call timed out.
    case protocolError(String)
    /// The daemon closed the connection.
    case closed
    /// The daemon answered `"ok": false`: its error `code`, `message`, and the other error members (like `index`).
    case server(code: String, message: String, details: [String: Any])

    public var description: String {
        switch self {
        case .unreachable(let reason): "cannot reach the leadtrail daemon: \(reason)"
        case .protocolError(let reason): "protocol error: \(reason)"
        case .closed: "the daemon closed the connection"
        case .server(let code, let message, let details):
            if let index = details["index"] { "\(code) (event \(index)): \(message)" } else { "\(code): \(message)" }
        }
    }
}

/// A blocking connection to the leadtrail daemon over its Unix socket (PROTOCOL.md section 2).
///
/// Requests are `[String: Any]` objects made into JSON with `JSONSerialization`;
/// responses come back the same way. Calls block the calling thread; with
/// `timeoutSeconds`, every send and every receive fails with
/// ``ClientError/protocolError(_:)`` after that long. Not thread-safe: use one
/// connection per thread. Requests may be pipelined with ``send(_:)`` and
/// ``receive()``; responses come back in request order.
public final class LeadTrailConnection {
    /// The socket this connection talks to.
    public let socketPath: String
    /// Responses larger than this are refused as a protocol error (default 1 GiB).
    public var maximumResponseBytes = 1 << 30
    private var fd: Int32

    /// Connects to the daemon at `socketPath` (usually ``DefaultPaths/socketPath``).
    public init(socketPath: String, timeoutSeconds: Double? = nil) throws(ClientError) {
        self.socketPath = socketPath
        let bytes = Array(socketPath.utf8)
        var address = sockaddr_un()
        guard !bytes.isEmpty, bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw .unreachable("socket path '\(socketPath)' is empty or longer than 107 bytes")
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .unreachable("socket(): \(String(cString: strerror(errno)))") }
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in bytes.enumerated() { raw[i] = byte }
            raw[bytes.count] = 0
        }
        if let timeoutSeconds, timeoutSeconds > 0 {
            var tv = timeval(tv_sec: Int(timeoutSeconds), tv_usec: Int((timeoutSeconds - timeoutSeconds.rounded(.towardZero)) * 1_000_000))
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        }
        var result: Int32
        repeat {
            result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
        } while result != 0 && errno == EINTR
        guard result == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(fd)
            throw .unreachable("\(socketPath): \(reason)")
        }
        self.fd = fd
    }

    deinit { close() }

    /// Whether the connection is still open on this side.
    public var isOpen: Bool { fd >= 0 }

    /// Closes the connection (idempotent).
    public func close() {
        if fd >= 0 {
            Glibc.close(fd)
            fd = -1
        }
    }

    // MARK: - Sending

    /// Sends one request object as a frame.
    public func send(_ request: [String: Any]) throws {
        guard JSONSerialization.isValidJSONObject(request) else {
            throw ClientError.protocolError("the request is not a JSON object")
        }
        let data: Data
        do {
            data = try JSONSerialization.data(withJSONObject: request)
        } catch {
            throw ClientError.protocolError("cannot encode the request: \(error)")
        }
        try sendRaw([UInt8](data))
    }

    /// Sends `frameBody` as one frame (the length prefix is added).
    public func sendRaw(_ frameBody: [UInt8]) throws {
        var frame: [UInt8] = []
        frame.reserveCapacity(frameBody.count + 4)
        Frame.appendHeader(length: frameBody.count, to: &frame)
        frame.append(contentsOf: frameBody)
        try writeBytes(frame)
    }

    /// Sends bytes exactly as given, with no framing (for tests of malformed input).
    public func writeBytes(_ bytes: [UInt8]) throws {
        guard fd >= 0 else { throw ClientError.closed }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                return Glibc.send(fd, base + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
            }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { throw ClientError.protocolError("timed out sending to the daemon") }
                if errno == EPIPE || errno == ECONNRESET { throw ClientError.closed }
                throw ClientError.protocolError("send(): \(String(cString: strerror(errno)))")
            }
            offset += n
        }
    }

    // MARK: - Receiving

    /// Receives one frame's body.
    public func receiveRaw() throws -> [UInt8] {
        let header = try readExactly(Frame.headerSize, atFrameStart: true)
        guard let length = Frame.readHeader(header) else { throw ClientError.protocolError("short frame header") }
        guard length <= maximumResponseBytes else {
            throw ClientError.protocolError("response frame of \(length) bytes is larger than \(maximumResponseBytes)")
        }
        return try readExactly(length, atFrameStart: false)
    }

    /// Receives one response object, whatever its `ok`.
    public func receive() throws -> [String: Any] {
        let body = try receiveRaw()
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed])
        } catch {
            throw ClientError.protocolError("response is not JSON: \(error)")
        }
        guard let response = object as? [String: Any] else { throw ClientError.protocolError("response is not a JSON object") }
        return response
    }

    /// Sends a request and returns its response; an `"ok": false` answer throws ``ClientError/server(code:message:details:)``.
    public func request(_ request: [String: Any]) throws -> [String: Any] {
        try send(request)
        let response = try receive()
        try Self.check(response)
        return response
    }

    /// Sends a multi-frame request (`scan`) and hands each response frame to `onFrame`
    /// until the frame with `"done": true`. An error frame throws
    /// ``ClientError/server(code:message:details:)``. When `onFrame` returns false the
    /// rest of the answer is not read and the connection is closed.
    public func stream(_ request: [String: Any], onFrame: ([String: Any]) throws -> Bool) throws {
        try send(request)
        while true {
            let frame = try receive()
            try Self.check(frame)
            let done = (frame["done"] as? Bool) ?? false
            guard try onFrame(frame) else {
                if !done { close() }
                return
            }
            if done { return }
        }
    }

    /// Throws the server's error when `response` says `"ok": false`.
    public static func check(_ response: [String: Any]) throws {
        if let ok = response["ok"] as? Bool, ok { return }
        guard let error = response["error"] as? [String: Any] else {
            throw ClientError.protocolError("response has neither \"ok\": true nor an error")
        }
        var details = error
        details.removeValue(forKey: "code")
        details.removeValue(forKey: "message")
        throw ClientError.server(
            code: error["code"] as? String ?? "internal", message: error["message"] as? String ?? "", details: details)
    }

    private func readExactly(_ count: Int, atFrameStart: Bool) throws -> [UInt8] {
        guard fd >= 0 else { throw ClientError.closed }
        var out = [UInt8](repeating: 0, count: count)
        var offset = 0
        while offset < count {
            let n = out.withUnsafeMutableBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                return Glibc.recv(fd, base + offset, count - offset, 0)
            }
            if n == 0 {
                if atFrameStart && offset == 0 { throw ClientError.closed }
                throw ClientError.protocolError("the daemon closed the connection in the middle of a frame")
            }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { throw ClientError.protocolError("timed out waiting for the daemon") }
                if errno == ECONNRESET { throw ClientError.closed }
                throw ClientError.protocolError("recv(): \(String(cString: strerror(errno)))")
            }
            offset += n
        }
        return out
    }
}
