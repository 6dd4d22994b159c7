import ArgumentParser
import Foundation
import LeadTrailCLIKit
import LeadTrailClient
import LeadTrailWire

/// The options every client command shares: where the daemon's socket is.
struct ConnectionOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "The daemon's Unix socket (default: $LEADTRAIL_SOCKET, else \(DefaultPaths.socketPath)).", valueName: "path"))
    var socket: String?

    @Option(name: .long, help: ArgumentHelp("Give up on a daemon that does not answer within this many seconds.", valueName: "seconds"))
    var timeout: Double?

    func validate() throws {
        if let timeout, !(timeout > 0) { throw ValidationError("--timeout must be a positive number of seconds") }
        if let socket, socket.isEmpty { throw ValidationError("--socket must not be empty") }
    }

    /// `--socket`, else `$LEADTRAIL_SOCKET`, else the default path.
    var socketPath: String {
        if let socket { return socket }
        if let fromEnvironment = ProcessInfo.processInfo.environment["LEADTRAIL_SOCKET"], !fromEnvironment.isEmpty {
            return fromEnvironment
        }
        return DefaultPaths.socketPath
    }

    /// Connects to the daemon; exit 3 when it cannot be reached.
    func connect() throws(CLIFailure) -> DaemonSession {
        let path = socketPath
        do {
            return DaemonSession(connection: try LeadTrailConnection(socketPath: path, timeoutSeconds: timeout), socketPath: path)
        } catch {
            throw DaemonSession.failure(error, socketPath: path)
        }
    }
}

/// A connection to the daemon that turns every problem into a ``CLIFailure``.
///
/// Answers are read as raw frames and decoded here, so an error answer
/// (`"ok": false`) is handled the same way whichever client call produced it.
struct DaemonSession {
    let connection: LeadTrailConnection
    let socketPath: String

    /// Sends one request and returns its (successful) answer.
    func call(_ request: [String: Any]) throws(CLIFailure) -> [String: Any] {
        do {
            try connection.send(request)
        } catch {
            throw Self.failure(error, socketPath: socketPath)
        }
        return try receive()
    }

    /// Sends one request and returns its successful answer as raw bytes.
    func callRaw(_ request: [String: Any]) throws(CLIFailure) -> (body: [UInt8], response: RawResponse) {
        do {
            try connection.send(request)
        } catch {
            throw Self.failure(error, socketPath: socketPath)
        }
        return try receiveRaw()
    }

    /// Reads one answer frame, decoded; an error answer becomes a failure.
    func receive() throws(CLIFailure) -> [String: Any] {
        let (body, _) = try receiveRaw()
        return try Self.decode(body)
    }

    /// Reads one answer frame as bytes; an error answer becomes a failure.
    func receiveRaw() throws(CLIFailure) -> (body: [UInt8], response: RawResponse) {
        let body: [UInt8]
        do {
            body = try connection.receiveRaw()
        } catch {
            throw Self.failure(error, socketPath: socketPath)
        }
        let response = try RawResponse(body)
        if !response.ok {
            throw Self.serverFailure(try Self.decode(body, checkOK: false))
        }
        return (body, response)
    }

    /// Sends a frame body that is already serialised.
    func sendRaw(_ body: [UInt8]) throws(CLIFailure) {
        do {
            try connection.sendRaw(body)
        } catch {
            throw Self.failure(error, socketPath: socketPath)
        }
    }

    func close() {
        connection.close()
    }

    /// Sends `request` and prints the answer: the daemon's JSON as sent with `json`, else `describe`'s lines.
    func callAndPrint(_ request: [String: Any], json: Bool, describe: ([String: Any]) -> [String]) throws(CLIFailure) {
        let (body, _) = try callRaw(request)
        if json {
            Output.standard.line(bytes: body)
        } else {
            for line in describe(try Self.decode(body)) { Output.standard.line(line) }
        }
        Output.standard.flush()
    }

    static func decode(_ body: [UInt8], checkOK: Bool = true) throws(CLIFailure) -> [String: Any] {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] else {
            throw .failed("the daemon sent a frame that is not a JSON object")
        }
        if checkOK, (object["ok"] as? Bool) != true { throw serverFailure(object) }
        return object
    }

    /// The failure for an error answer: `code: message`.
    static func serverFailure(_ answer: [String: Any]) -> CLIFailure {
        let error = answer["error"] as? [String: Any] ?? [:]
        let code = error["code"] as? String ?? "error"
        let message = error["message"] as? String ?? "the daemon refused the request"
        return .failed("\(code): \(message)")
    }

    /// Maps a client error to the contract's exit codes.
    static func failure(_ error: Error, socketPath: String) -> CLIFailure {
        if let failure = error as? CLIFailure { return failure }
        guard let clientError = error as? ClientError else {
            return .failed("talking to the daemon at \(socketPath) failed: \(error)")
        }
        switch clientError {
        case .unreachable(let reason):
            return .unreachable("cannot reach the daemon at \(socketPath): \(reason) (is `leadtrail serve` running?)")
        case .protocolError(let reason):
            return .failed("the daemon at \(socketPath) broke the protocol: \(reason)")
        case .closed:
            return .failed("the daemon at \(socketPath) closed the connection")
        case .server(let code, let message, _):
            return .failed("\(code): \(message)")
        }
    }
}
