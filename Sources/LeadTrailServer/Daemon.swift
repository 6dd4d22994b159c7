#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Foundation
import LeadTrailEvents
import LeadTrailStorage
import LeadTrailWire
import Logging
import NIOCore
import NIOPosix

/// Why the daemon could not start.
public struct DaemonError: Error, Sendable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}

/// The leadtrail daemon: a Unix-socket server (PROTOCOL.md) over one event store.
///
/// ``run(_:logger:)`` is what `leadtrail serve` calls. It guarantees:
/// - the store is recovered before the socket is bound, so every connection sees a ready store;
/// - a socket file left by a crashed daemon is replaced, but a live daemon's socket is never
///   taken over (startup fails instead);
/// - on SIGTERM or SIGINT it stops accepting, answers every request already received
///   (appends are acknowledged once durable), closes the store (which syncs), removes its
///   socket file and returns.
public enum Daemon {
    /// Runs the daemon until SIGTERM or SIGINT, then shuts it down gracefully and returns.
    public static func run(_ configuration: DaemonConfiguration, logger: Logger) async throws {
        let watcher = SignalWatcher(signals: [SIGTERM, SIGINT])
        defer { watcher.cancel() }
        let daemon = try await start(configuration, logger: logger)
        let signal = await watcher.next()
        logger.info("signal received; shutting down", metadata: ["signal": "\(signal == SIGTERM ? "SIGTERM" : "SIGINT")"])
        await daemon.shutdown()
    }

    /// Opens the store (running recovery) and starts serving; returns once the socket accepts connections.
    ///
    /// The caller stops it with ``RunningDaemon/shutdown()``; no signal handling is installed.
    public static func start(_ configuration: DaemonConfiguration, logger: Logger) async throws -> RunningDaemon {
        try configuration.validate()
        try SocketFile.prepare(configuration.socketPath, logger: logger)
        let backend = try EventStoreBackend.open(configuration, logger: logger)
        do {
            return try await start(configuration, backend: backend, logger: logger)
        } catch {
            backend.close()
            throw error
        }
    }

    /// Starts serving over a given backend (tests pass their own backend and peer identities).
    static func start(
        _ configuration: DaemonConfiguration,
        backend: any StoreBackend,
        logger: Logger,
        presenter: any EventPresenter = UnmaskedPresenter(),
        auditor: (any AccessAuditor)? = nil,
        credentials: (@Sendable (Channel) -> EventLoopFuture<PeerCredentials>)? = nil
    ) async throws -> RunningDaemon {
        try configuration.validate()
        try SocketFile.prepare(configuration.socketPath, logger: logger)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, min(2, System.coreCount)))
        let threadPool = NIOThreadPool(numberOfThreads: configuration.queryThreads)
        threadPool.start()
        let registry = ConnectionRegistry()
        let server = ServerContext(
            configuration: configuration, store: backend, threadPool: threadPool, presenter: presenter,
            auditor: auditor ?? LoggingAuditor(logger: logger), logger: logger, daemonUID: UInt32(getuid()),
            registry: registry, credentials: credentials ?? PeerCredentials.read(from:))
        let maxConnections = configuration.maxConnections
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: 64 << 10, high: 256 << 10))
            // Room in the kernel for two 1 MiB scan frames (the default, about 208 KiB, takes a dozen wake-ups of
            // the daemon and of the client per frame); a scan's frames still wait for their credits.
            .childChannelOption(.socketOption(.so_sndbuf), value: 2 << 20)
            // Append frames are often megabytes: let reads grow to 1 MiB (fewer syscalls and loop turns per frame);
            // the allocator shrinks them again for connections that send little.
            .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 1024, initial: 16 << 10, maximum: 1 << 20))
            .childChannelInitializer { channel in
                guard let id = registry.add(channel, limit: maxConnections) else {
                    logger.warning("connection limit reached; refusing a connection", metadata: ["max_connections": "\(maxConnections)"])
                    return channel.close()
                }
                return channel.eventLoop.makeCompletedFuture {
                    let handler = ConnectionHandler(server: server, connectionID: id)
                    try channel.pipeline.syncOperations.addHandler(handler)
                    registry.setDrain(id) { [weak handler] in handler?.beginDrain() }
                }
            }
        let channel: Channel
        do {
            channel = try await bootstrap.bind(unixDomainSocketPath: configuration.socketPath).get()
        } catch {
            try? await threadPool.shutdownGracefully()
            try? await group.shutdownGracefully()
            throw DaemonError("cannot listen on \(configuration.socketPath): \(error)")
        }
        guard chmod(configuration.socketPath, mode_t(configuration.socketMode)) == 0 else {
            let reason = String(cString: strerror(errno))
            try? await channel.close()
            try? await threadPool.shutdownGracefully()
            try? await group.shutdownGracefully()
            throw DaemonError("cannot set the mode of \(configuration.socketPath): \(reason)")
        }
        let identity = SocketFile.identity(configuration.socketPath)
        logger.info("serving", metadata: [
            "socket": "\(configuration.socketPath)", "data_dir": "\(configuration.dataDirectory)",
            "last_seq": "\(backend.lastSeq)", "durability": "\(configuration.durability.rawValue)",
        ])
        return RunningDaemon(
            configuration: configuration, group: group, threadPool: threadPool, channel: channel,
            registry: registry, admission: server.admission, backend: backend, logger: logger, socketIdentity: identity)
    }
}

/// A daemon that is serving. ``shutdown()`` stops it gracefully; it is safe to call more than once.
public final class RunningDaemon: @unchecked Sendable {
    public let configuration: DaemonConfiguration
    private let group: MultiThreadedEventLoopGroup
    private let threadPool: NIOThreadPool
    private let channel: Channel
    private let registry: ConnectionRegistry
    private let admission: RequestAdmission
    private let backend: any StoreBackend
    private let logger: Logger
    private let socketIdentity: SocketFile.Identity?
    private let stateLock = OnceFlag()

    init(
        configuration: DaemonConfiguration, group: MultiThreadedEventLoopGroup, threadPool: NIOThreadPool, channel: Channel,
        registry: ConnectionRegistry, admission: RequestAdmission, backend: any StoreBackend, logger: Logger,
        socketIdentity: SocketFile.Identity?
    ) {
        self.configuration = configuration
        self.group = group
        self.threadPool = threadPool
        self.channel = channel
        self.registry = registry
        self.admission = admission
        self.backend = backend
        self.logger = logger
        self.socketIdentity = socketIdentity
    }

    /// The socket path the daemon listens on.
    public var socketPath: String { configuration.socketPath }

    /// Open connections now.
    public var connectionCount: Int { registry.count }

    /// Bytes of request frames taken and not yet answered (see ``DaemonConfiguration/requestBytesInFlight``).
    public var requestBytesHeld: Int { admission.heldBytes }

    /// Stops accepting, answers every request already received, closes the store, removes the socket.
    ///
    /// Connections that have not finished within `drainTimeoutSeconds` are closed.
    public func shutdown(drainTimeoutSeconds: Double = 10) async {
        guard stateLock.claim() else { return }
        let started = NIODeadline.now()
        try? await channel.close()
        registry.drainAll()
        let deadline = NIODeadline.now() + .milliseconds(Int64(drainTimeoutSeconds * 1000))
        while registry.count > 0, NIODeadline.now() < deadline {
            try? await Task.sleep(nanoseconds: 10_000_000)
        }
        if registry.count > 0 {
            logger.warning("closing connections that did not finish in time", metadata: ["connections": "\(registry.count)"])
            registry.closeAll()
        }
        try? await threadPool.shutdownGracefully()
        backend.close()
        try? await group.shutdownGracefully()
        SocketFile.remove(configuration.socketPath, ifIdentity: socketIdentity)
        logger.info("stopped", metadata: ["duration_ms": "\((NIODeadline.now() - started).nanoseconds / 1_000_000)"])
    }
}

/// A flag that can be claimed once, from any thread.
final class OnceFlag: @unchecked Sendable {
    private var claimed = false
    private let lock = NSLock()

    func claim() -> Bool {
        lock.withLock {
            if claimed { return false }
            claimed = true
            return true
        }
    }
}

/// The open connections of a daemon, so shutdown can drain them.
final class ConnectionRegistry: @unchecked Sendable {
    private struct Entry {
        var channel: Channel
        var drain: (() -> Void)?
    }

    private let lock = NSLock()
    private var entries: [UInt64: Entry] = [:]
    private var nextID: UInt64 = 1
    private var accepting = true

    var count: Int { lock.withLock { entries.count } }

    /// Registers a new connection; nil when the limit is reached or the daemon is stopping.
    func add(_ channel: Channel, limit: Int) -> UInt64? {
        lock.withLock {
            guard accepting, entries.count < limit else { return nil }
            let id = nextID
            nextID += 1
            entries[id] = Entry(channel: channel, drain: nil)
            return id
        }
    }

    /// Sets how to drain a connection; it is drained at once when shutdown has begun.
    func setDrain(_ id: UInt64, _ drain: @escaping () -> Void) {
        let channel: Channel? = lock.withLock {
            entries[id]?.drain = drain
            return accepting ? nil : entries[id]?.channel
        }
        if let channel { channel.eventLoop.execute { drain() } }
    }

    func remove(_ id: UInt64) {
        lock.withLock { _ = entries.removeValue(forKey: id) }
    }

    func drainAll() {
        let all: [Entry] = lock.withLock {
            accepting = false
            return Array(entries.values)
        }
        for entry in all {
            guard let drain = entry.drain else { continue }
            let boxed = UnsafeTransfer(drain)
            entry.channel.eventLoop.execute { boxed.value() }
        }
    }

    func closeAll() {
        let channels = lock.withLock { entries.values.map(\.channel) }
        for channel in channels { channel.close(promise: nil) }
    }
}

/// Moves a value that is only used on its own event loop across a `@Sendable` boundary.
struct UnsafeTransfer<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

extension PeerCredentials {
    /// Reads `SO_PEERCRED` of an accepted Unix-domain channel.
    @Sendable static func read(from channel: Channel) -> EventLoopFuture<PeerCredentials> {
        guard let provider = channel as? SocketOptionProvider else {
            return channel.eventLoop.makeFailedFuture(DaemonError("the channel has no socket options"))
        }
        let future: EventLoopFuture<RawPeerCredentials> = provider.unsafeGetSocketOption(
            level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
        return future.map { cred in PeerCredentials(pid: cred.pid, uid: UInt32(cred.uid), gid: UInt32(cred.gid)) }
    }
}

/// The layout of Linux's `struct ucred` (`<sys/socket.h>`, needs `_GNU_SOURCE`, so not imported by Glibc).
struct RawPeerCredentials: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}

/// The socket file: stale-file cleanup, live-daemon detection, removal at shutdown.
enum SocketFile {
    struct Identity: Sendable, Equatable {
        var device: UInt64
        var inode: UInt64
    }

    /// Makes `path` ready for bind: creates its directory (mode 0700) when missing, removes a
    /// stale socket, and fails when a daemon answers on it or a non-socket file is there.
    static func prepare(_ path: String, logger: Logger) throws(DaemonError) {
        guard path.utf8.count <= 107 else { throw DaemonError("socket path \(path) is longer than 107 bytes") }
        let directory = parentDirectory(path)
        if !directory.isEmpty, !DefaultPaths.directoryExists(directory) {
            try makeDirectories(directory)
        }
        if directory.hasPrefix("/tmp/leadtrail-") {
            // A shared /tmp: the directory must be ours and closed to others, or anyone could swap the socket.
            var owner = stat()
            guard stat(directory, &owner) == 0, owner.st_uid == getuid(), owner.st_mode & 0o022 == 0 else {
                throw DaemonError("\(directory) is not owned by this user or is writable by others; remove it or choose another --socket")
            }
        }
        var info = stat()
        guard lstat(path, &info) == 0 else { return }  // nothing there
        guard (info.st_mode & S_IFMT) == S_IFSOCK else {
            throw DaemonError("\(path) exists and is not a socket; refusing to replace it")
        }
        if isLive(path) {
            throw DaemonError("another daemon is serving on \(path); stop it first (or use another --socket)")
        }
        guard unlink(path) == 0 || errno == ENOENT else {
            throw DaemonError("cannot remove the stale socket \(path): \(String(cString: strerror(errno)))")
        }
        logger.notice("removed a stale socket file left by a previous daemon", metadata: ["socket": "\(path)"])
    }

    /// Whether something accepts connections on the socket at `path`.
    static func isLive(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in bytes.enumerated() { raw[i] = byte }
            raw[bytes.count] = 0
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        return result == 0
    }

    static func identity(_ path: String) -> Identity? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return Identity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    }

    /// Removes the socket file if it is still the one this daemon bound.
    static func remove(_ path: String, ifIdentity expected: Identity?) {
        guard let expected, identity(path) == expected else { return }
        unlink(path)
    }

    static func parentDirectory(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "" }
        return String(path[..<slash])
    }

    static func makeDirectories(_ directory: String) throws(DaemonError) {
        let parent = parentDirectory(directory)
        if !parent.isEmpty, !DefaultPaths.directoryExists(parent) { try makeDirectories(parent) }
        guard mkdir(directory, 0o700) == 0 || errno == EEXIST else {
            throw DaemonError("cannot create the socket directory \(directory): \(String(cString: strerror(errno)))")
        }
    }
}

/// Waits for termination signals without letting them kill the process.
final class SignalWatcher: @unchecked Sendable {
    private var sources: [DispatchSourceSignal] = []
    private let lock = NSLock()
    private var received: [Int32] = []
    private var waiter: CheckedContinuation<Int32, Never>?

    init(signals: [Int32]) {
        for number in signals {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [weak self] in self?.deliver(number) }
            source.resume()
            sources.append(source)
        }
    }

    private func deliver(_ number: Int32) {
        let continuation: CheckedContinuation<Int32, Never>? = lock.withLock {
            if let waiter {
                self.waiter = nil
                return waiter
            }
            received.append(number)
            return nil
        }
        continuation?.resume(returning: number)
    }

    /// The next signal received (or one received before this call).
    func next() async -> Int32 {
        await withCheckedContinuation { continuation in
            let ready: Int32? = lock.withLock {
                if !received.isEmpty { return received.removeFirst() }
                waiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    func cancel() {
        for source in sources { source.cancel() }
        sources.removeAll()
    }
}
