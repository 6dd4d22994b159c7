import LeadTrailEvents
import LeadTrailStorage
import LeadTrailWire
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// What every connection of one daemon shares.
final class ServerContext: Sendable {
    let configuration: DaemonConfiguration
    let store: any StoreBackend
    let threadPool: NIOThreadPool
    let parser: RequestParser
    let presenter: any EventPresenter
    let auditor: any AccessAuditor
    let logger: Logger
    let daemonUID: UInt32
    let registry: ConnectionRegistry
    let admission: RequestAdmission
    let credentials: @Sendable (Channel) -> EventLoopFuture<PeerCredentials>
    let startedAtMs: Int64
    let lookups = LookupCounts()

    init(
        configuration: DaemonConfiguration, store: any StoreBackend, threadPool: NIOThreadPool,
        presenter: any EventPresenter, auditor: any AccessAuditor, logger: Logger, daemonUID: UInt32,
        registry: ConnectionRegistry, credentials: @escaping @Sendable (Channel) -> EventLoopFuture<PeerCredentials>
    ) {
        self.configuration = configuration
        self.store = store
        self.threadPool = threadPool
        self.parser = RequestParser(maxEventBytes: configuration.maxEventBytes, maxBatchEvents: configuration.maxBatchEvents)
        self.presenter = presenter
        self.auditor = auditor
        self.logger = logger
        self.daemonUID = daemonUID
        self.registry = registry
        self.admission = RequestAdmission(budgetBytes: configuration.requestBytesInFlight)
        self.credentials = credentials
        self.startedAtMs = Timestamp.now()
    }

    /// Scan frames hold at most this many bytes of events, so with the envelope (its `id` is at
    /// most 4 KiB) and the largest event (`max_event_bytes` is at most 3 MiB) a frame stays under 4 MiB.
    var scanFrameEventBytes: Int {
        max(64 << 10, (4 << 20) - configuration.maxEventBytes - RequestEnvelope.maximumIDBytes - (8 << 10))
    }
}

/// How the `get`s and `timeline`s since the start were answered: by the socket's thread, from the page
/// cache, or handed to a worker thread (a page the page cache no longer held, a warm segment, a timeline
/// over ``ConnectionHandler/inlineTimelineEvents`` events, or damage). `stats` reports both counts: a rising
/// share of handed lookups is a page cache that no longer holds the hot tier.
final class LookupCounts: Sendable {
    private let counts = NIOLockedValueBox((answeredInline: 0, handedToWorkers: 0))

    func count(answeredInline: Bool) {
        counts.withLockedValue { if answeredInline { $0.answeredInline += 1 } else { $0.handedToWorkers += 1 } }
    }

    var current: (answeredInline: Int, handedToWorkers: Int) { counts.withLockedValue { $0 } }
}

/// One response in a connection's ordered queue: its frames, written when it reaches the head.
final class ResponseSlot {
    /// The request's `id`, echoed in every response frame (known once the frame is parsed).
    var id: [UInt8]?
    var op: String
    let started: NIODeadline
    var frames = CircularBuffer<ByteBuffer>()
    var isComplete = false
    var closeAfter = false
    /// For scans: the flow control whose credits come back as frames are written.
    var stream: ScanStream?
    var logMetadata: Logger.Metadata = [:]
    var failed: ErrorCode?
    /// Whether this is an append (reads queued after it wait for it: read-your-writes per connection).
    var isAppend = false
    /// A read waiting for the appends before it on the connection to be acknowledged.
    var deferredStart: (() -> Void)?
    /// An append's validated events, until they are handed to the store.
    var preparedEvents: PreparedBatch?
    /// The bytes of the request's frame, held against the daemon's ``RequestAdmission`` budget until it is answered.
    var heldBytes = 0
    /// Whether the append was handed to the store.
    var submitted = false

    init(id: [UInt8]?, op: String) {
        self.id = id
        self.op = op
        self.started = .now()
    }

    /// Notes a duration in milliseconds for the request's log line.
    func noteDuration(_ key: String, _ elapsed: TimeAmount) {
        logMetadata[key] = "\(Double(elapsed.nanoseconds) / 1_000_000)"
    }

    /// Notes that the append's events are validated: how long after its frame was received.
    func noteValidated() {
        noteDuration("validated_ms", .now() - started)
    }
}

/// Serves one client connection (PROTOCOL.md sections 2-4).
///
/// Guarantees:
/// - responses leave in request order, whatever order the work completes in;
/// - a read starts only after every append sent before it on the same connection was
///   acknowledged, so a connection reads its own writes;
/// - at most `max_pipelined_requests` requests are in progress: beyond that, while the
///   socket does not take our writes, or while the daemon holds its budget of unanswered
///   request bytes (``RequestAdmission``), the connection is not read (back-pressure);
/// - a bad frame gets its error and the connection goes on, except `frame_too_large`,
///   which is answered and then closes the connection;
/// - blocking store calls, and the validation of large append batches, run on the thread
///   pool, never on the event loop; appends still reach the store in request order;
/// - a client that stalls mid-frame or stops reading its responses for
///   `stall_timeout_seconds`, or idles for `idle_timeout_seconds`, is disconnected.
final class ConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let server: ServerContext
    let connectionID: UInt64
    private var logger: Logger
    private var decoder: FrameDecoder
    private var access: AccessContext?
    private var pending = CircularBuffer<ResponseSlot>()
    /// Large frames waiting for this connection's parse in progress: they are parsed one at a time, in order.
    private var framesToParse = CircularBuffer<(frame: [UInt8], slot: ResponseSlot)>()
    private var parsingLargeFrame = false
    private var context: ChannelHandlerContext?
    private var readPending = false
    private var inPump = false
    private var pumpAgain = false
    private var draining = false
    private var closeRequested = false
    private var closed = false
    private var lastActivity = NIODeadline.now()
    private var writesInFlight = 0
    private var lastWriteProgress = NIODeadline.now()
    private var timer: RepeatedTask?

    init(server: ServerContext, connectionID: UInt64) {
        self.server = server
        self.connectionID = connectionID
        self.decoder = FrameDecoder(maximumLength: server.configuration.maxFrameBytes)
        var logger = server.logger
        logger[metadataKey: "conn.id"] = "\(connectionID)"
        self.logger = logger
    }

    // MARK: - Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let loopBoundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        server.credentials(context.channel).whenComplete { result in
            let handler = bound.value
            switch result {
            case .success(let peer):
                let roles = handler.server.configuration.roles
                let daemonUID = handler.server.daemonUID
                guard roles.needsSupplementaryGroups(for: peer, daemonUID: daemonUID) else {
                    handler.admit(peer, role: roles.role(of: peer, daemonUID: daemonUID))
                    return
                }
                // The user database may block (NSS): look the groups up on the thread pool.
                handler.server.threadPool.runIfActive(eventLoop: loopBoundContext.value.eventLoop) {
                    roles.role(of: peer, daemonUID: daemonUID,
                               supplementaryGroups: RoleAssignments.supplementaryGroups(uid: peer.uid, primaryGID: peer.gid))
                }.whenComplete { result in
                    switch result {
                    case .success(let role): bound.value.admit(peer, role: role)
                    case .failure: loopBoundContext.value.close(promise: nil)
                    }
                }
            case .failure(let error):
                handler.logger.warning("cannot read peer credentials; closing", metadata: ["error": "\(error)"])
                loopBoundContext.value.close(promise: nil)
            }
        }
        let tick = TimeAmount.milliseconds(Int64(min(5_000, max(100, server.configuration.stallTimeoutSeconds * 250))))
        timer = context.eventLoop.scheduleRepeatedTask(initialDelay: tick, delay: tick) { _ in
            bound.value.checkTimeouts()
        }
    }

    /// Records who the peer is and starts taking its requests.
    private func admit(_ peer: PeerCredentials, role: Role?) {
        access = AccessContext(connectionID: connectionID, peer: peer, role: role, purpose: nil)
        logger[metadataKey: "peer.uid"] = "\(peer.uid)"
        logger[metadataKey: "peer.pid"] = "\(peer.pid)"
        logger.debug("connection opened", metadata: ["peer.role": "\(role.map { $0.description } ?? "none")"])
        pump()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        teardown()
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        teardown()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        lastActivity = .now()
        buffer.withUnsafeReadableBytes { decoder.append($0) }
        pump()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        pump()
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        logger.debug("connection error; closing", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        readPending = true
        readIfAllowed()
    }

    // MARK: - Lifecycle

    /// Stops taking requests; the connection closes once every accepted request is answered.
    func beginDrain() {
        guard !draining else { return }
        draining = true
        for slot in pending { slot.stream?.cancel() }
        pump()
    }

    private func teardown() {
        guard !closed else { return }
        closed = true
        timer?.cancel()
        timer = nil
        for slot in pending {
            slot.stream?.cancel()
            release(slot)
        }
        server.admission.forget(connection: connectionID)
        server.registry.remove(connectionID)
        logger.debug("connection closed")
    }

    private func checkTimeouts() {
        guard let context, !closed else { return }
        let now = NIODeadline.now()
        let stall = TimeAmount.seconds(Int64(server.configuration.stallTimeoutSeconds))
        if decoder.hasPartialFrame, pending.isEmpty, now - lastActivity > stall {
            logger.notice("client left a frame unfinished; closing", metadata: ["bytes.buffered": "\(decoder.bufferedByteCount)"])
            context.close(promise: nil)
        } else if writesInFlight > 0, now - lastWriteProgress > stall {
            logger.notice("client does not read its responses; closing")
            context.close(promise: nil)
        } else if pending.isEmpty, !decoder.hasPartialFrame,
                  now - lastActivity > .seconds(Int64(server.configuration.idleTimeoutSeconds)) {
            logger.debug("idle connection; closing")
            context.close(promise: nil)
        } else if draining, pending.isEmpty {
            closeAfterFlush()
        }
    }

    // MARK: - The request pump

    private var shouldRead: Bool {
        guard let context, access != nil, !draining, !closed, !decoder.hasFailed else { return false }
        return pending.count < server.configuration.maxPipelinedRequests && context.channel.isWritable
            && (pending.isEmpty || server.admission.hasRoom)
    }

    /// Hands a request's frame bytes back to the daemon's budget (once).
    private func release(_ slot: ResponseSlot) {
        server.admission.release(slot.heldBytes)
        slot.heldBytes = 0
    }

    /// Writes the responses that are ready in order, then takes new requests while there is room.
    private func pump() {
        if inPump {
            pumpAgain = true
            return
        }
        inPump = true
        defer { inPump = false }
        repeat {
            pumpAgain = false
            submitReadyAppends()
            startDeferredReads()
            writeReadyResponses()
            takeRequests()
        } while pumpAgain && !closed
        guard context != nil, !closed else { return }
        if draining, pending.isEmpty {
            closeAfterFlush()
            return
        }
        if readPending { readIfAllowed() }
    }

    /// Issues the pending read if the connection may read now; while the daemon's budget of request bytes
    /// is spent, asks to be pumped again once there is room.
    private func readIfAllowed() {
        guard let context else { return }
        if !shouldRead, !server.admission.hasRoom, !pending.isEmpty {
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            let loop = context.eventLoop
            let waiting = server.admission.waitForRoom(connection: connectionID) {
                loop.execute { bound.value.pump() }
            }
            if waiting { return }
        }
        guard shouldRead else { return }
        readPending = false
        context.read()
    }

    /// Closes the connection once everything written so far has left (once).
    private func closeAfterFlush() {
        guard let context, !closeRequested else { return }
        closeRequested = true
        let loopBoundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(ByteBuffer())).whenComplete { _ in
            loopBoundContext.value.close(promise: nil)
        }
    }

    /// Starts the reads that no unacknowledged append precedes any more.
    private func startDeferredReads() {
        for slot in pending {
            if slot.isAppend, !slot.isComplete { return }
            if let start = slot.deferredStart {
                slot.deferredStart = nil
                start()
            }
        }
    }

    private func writeReadyResponses() {
        guard let context, !closed else { return }
        var wrote = false
        while let head = pending.first {
            while let frame = head.frames.popFirst() {
                write(frame, stream: head.stream, context: context)
                wrote = true
            }
            guard head.isComplete else { break }
            pending.removeFirst()
            release(head)
            logCompletion(head)
            if head.closeAfter {
                draining = true
                closeAfterFlush()
                return
            }
        }
        if wrote { context.flush() }
    }

    private func write(_ frame: ByteBuffer, stream: ScanStream?, context: ChannelHandlerContext) {
        if writesInFlight == 0 { lastWriteProgress = .now() }  // the stall clock starts with the first unfinished write
        writesInFlight += 1
        let promise = context.eventLoop.makePromise(of: Void.self)
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        promise.futureResult.whenComplete { _ in
            let handler = bound.value
            handler.writesInFlight -= 1
            handler.lastWriteProgress = .now()
            stream?.release()
        }
        context.write(wrapOutboundOut(frame), promise: promise)
    }

    private func takeRequests() {
        guard access != nil, !closed, !closeRequested else { return }
        if draining {
            refuseBufferedRequests()
            return
        }
        while pending.count < server.configuration.maxPipelinedRequests {
            let frame: [UInt8]
            do {
                guard let next = try decoder.next() else { break }
                frame = next
            } catch {
                logger.notice("frame too large; closing", metadata: ["error": "\(error.message)"])
                // No request after this one is taken; those before it are still answered.
                draining = true
                let slot = ResponseSlot(id: nil, op: "-")
                slot.closeAfter = true
                pending.append(slot)
                complete(slot, error: error)
                return
            }
            handle(frame)
        }
    }

    /// While the daemon stops: requests already received but not started get `unavailable`.
    private func refuseBufferedRequests() {
        while let frame = try? decoder.next() {
            let envelope = RequestEnvelope.parse(frame)
            let slot = ResponseSlot(id: envelope.id, op: envelope.opName ?? "-")
            pending.append(slot)
            complete(slot, error: WireError(.unavailable, "the daemon is shutting down; nothing of this request was done"))
        }
    }

    private func handle(_ frame: [UInt8]) {
        guard let access, context != nil else { return }
        let slot = ResponseSlot(id: nil, op: "-")
        slot.heldBytes = frame.count
        server.admission.hold(frame.count)
        pending.append(slot)
        guard frame.count > Self.inlineParseLimit else {
            dispatch(RequestEnvelope.parse(frame), slot: slot, access: access)
            return
        }
        // Validating a large frame (a big batch) is CPU work: do it off the event loop. Until it is
        // known, the slot is a barrier like an append: later appends and reads wait for it, so
        // appends still reach the store in request order (see submitReadyAppends).
        slot.isAppend = true
        framesToParse.append((frame, slot))
        if !parsingLargeFrame { parseNextLargeFrame() }
    }

    /// Parses the connection's next large frame on the thread pool, then the one after it. One at a time:
    /// the first batch is ready (for the writer, and so acknowledged) as soon as it can be, instead of
    /// sharing the cores with the batches behind it, and one producer's burst does not take every pool thread.
    private func parseNextLargeFrame() {
        guard let context, let access, let (frame, slot) = framesToParse.popFirst() else {
            parsingLargeFrame = false
            return
        }
        parsingLargeFrame = true
        let loop = context.eventLoop
        let bound = NIOLoopBound(self, eventLoop: loop)
        let boundSlot = NIOLoopBound(slot, eventLoop: loop)
        let parser = server.parser
        server.threadPool.runIfActive(eventLoop: loop) { () -> LargeFrame in
            let envelope = RequestEnvelope.parse(frame)
            guard case .success(.append) = envelope.operation, AccessPolicy.allows(access.role, .append) else {
                return .other(envelope)
            }
            do throws(WireError) {
                guard case .append(let events) = try parser.parse(envelope, now: Timestamp.now()) else {
                    return .failed(envelope.id, WireError(.internal, "an append parsed as another op"))
                }
                return .append(envelope.id, events)
            } catch {
                return .failed(envelope.id, error)
            }
        }.whenComplete { result in
            let handler = bound.value
            let slot = boundSlot.value
            switch result {
            case .success(.append(let id, let events)):
                slot.id = id
                slot.op = Operation.append.rawValue
                slot.preparedEvents = events
                slot.noteValidated()
                handler.pump()
            case .success(.failed(let id, let error)):
                slot.id = id
                slot.op = Operation.append.rawValue
                handler.complete(slot, error: error)
            case .success(.other(let envelope)):
                slot.isAppend = false
                handler.dispatch(envelope, slot: slot, access: access)
                handler.pump()
            case .failure:
                handler.complete(slot, error: WireError(.unavailable, "the daemon is shutting down"))
            }
            handler.parseNextLargeFrame()
        }
    }

    /// What the thread pool made of a large frame.
    private enum LargeFrame: Sendable {
        case append([UInt8]?, PreparedBatch)
        case failed([UInt8]?, WireError)
        /// Not an allowed append: handled like any other frame.
        case other(RequestEnvelope)
    }

    /// Checks access for a parsed envelope, decodes its body and runs it.
    private func dispatch(_ envelope: RequestEnvelope, slot: ResponseSlot, access: AccessContext) {
        var access = access
        slot.id = envelope.id
        slot.op = envelope.opName ?? "-"
        let operation: Operation
        switch envelope.operation {
        case .failure(let error):
            complete(slot, error: error)
            return
        case .success(let op):
            operation = op
        }
        access.purpose = envelope.purpose
        guard AccessPolicy.allows(access.role, operation) else {
            if operation != .ping, operation != .append {
                server.auditor.record(AccessRecord(timeMs: Timestamp.now(), context: access, op: operation.rawValue, refused: true, eventsReturned: 0))
            }
            let role = access.role.map { "role '\($0)'" } ?? "no role"
            complete(slot, error: WireError(.forbidden, "uid \(access.peer.uid) has \(role), which may not '\(operation.rawValue)'"))
            return
        }
        let request: Request
        do {
            request = try server.parser.parse(envelope, now: Timestamp.now())
        } catch {
            complete(slot, error: error)
            return
        }
        execute(request, operation: operation, slot: slot, access: access)
    }

    /// Frames larger than this are parsed and validated on the thread pool.
    static let inlineParseLimit = 256 << 10

    /// Hands parsed appends to the store in request order: an append waits while one before it is still being parsed.
    private func submitReadyAppends() {
        for slot in pending where slot.isAppend && !slot.isComplete && !slot.submitted {
            guard let events = slot.preparedEvents else { return }
            slot.submitted = true
            slot.preparedEvents = nil
            submitAppend(events, slot: slot)
        }
    }

    private func submitAppend(_ batch: PreparedBatch, slot: ResponseSlot) {
        guard let context else { return }
        let loop = context.eventLoop
        let bound = NIOLoopBound(self, eventLoop: loop)
        let boundSlot = NIOLoopBound(slot, eventLoop: loop)
        slot.logMetadata["events"] = "\(batch.count)"
        let handedOver = NIODeadline.now()
        server.store.append(batch) { result in
            // Measured where the store answers: the group commit's queue, write and sync, not the hop back.
            let stored = NIODeadline.now() - handedOver
            loop.execute {
                let handler = bound.value
                let slot = boundSlot.value
                slot.noteDuration("store_ms", stored)
                switch result {
                case .success(let outcomes):
                    if let first = outcomes.first, let last = outcomes.last {
                        slot.logMetadata["seq.first"] = "\(first.seq)"
                        slot.logMetadata["seq.last"] = "\(last.seq)"
                    }
                    handler.complete(slot, body: Responses.append(id: slot.id, batch, outcomes))
                case .failure(let error):
                    handler.complete(slot, error: Responses.wireError(error))
                }
            }
        }
    }

    // MARK: - Running requests

    private func execute(_ request: Request, operation: Operation, slot: ResponseSlot, access: AccessContext) {
        guard let context else { return }
        let loop = context.eventLoop
        let bound = NIOLoopBound(self, eventLoop: loop)
        let boundSlot = NIOLoopBound(slot, eventLoop: loop)
        switch request {
        case .ping:
            complete(slot, body: ResponseEncoder.ok(id: slot.id))
        case .append(let events):
            slot.isAppend = true
            slot.preparedEvents = events
            slot.noteValidated()
            pump()
        case .scan(let scan):
            whenPriorAppendsAreDone(slot) {
                bound.value.startScan(scan, slot: boundSlot.value, access: access, loop: loop, bound: bound)
            }
        case .get, .timeline, .stats, .rotate, .verify, .tier, .restore:
            whenPriorAppendsAreDone(slot) {
                bound.value.startRead(request, operation: operation, slot: boundSlot.value, access: access, loop: loop)
            }
        }
    }

    /// Runs `start` now, or once every append queued before `slot` is acknowledged.
    private func whenPriorAppendsAreDone(_ slot: ResponseSlot, _ start: @escaping () -> Void) {
        let blocked = pending.contains { $0 !== slot && $0.isAppend && !$0.isComplete }
        if blocked {
            slot.deferredStart = start
        } else {
            start()
        }
    }

    /// A timeline of at most this many events, or a `get`, is answered on the event loop when the store can
    /// read it without waiting for the disk (the usual case: hot events in the page cache): the round trip
    /// through the thread pool was about 60 of a timeline's 140 microseconds.
    static let inlineTimelineEvents = 256

    private func startRead(_ request: Request, operation: Operation, slot: ResponseSlot, access: AccessContext, loop: EventLoop) {
        let answered = Self.readWithoutWaiting(request, id: slot.id, access: access, server: server)
        switch request {
        case .get, .timeline: server.lookups.count(answeredInline: answered != nil)
        default: break
        }
        if let answered {
            finishRead(answered, operation: operation, slot: slot, access: access)
            return
        }
        let bound = NIOLoopBound(self, eventLoop: loop)
        let boundSlot = NIOLoopBound(slot, eventLoop: loop)
        let server = self.server
        let id = slot.id
        server.threadPool.runIfActive(eventLoop: loop) { () -> Result<([UInt8], Int), WireError> in
            Self.runRead(request, id: id, access: access, server: server)
        }.whenComplete { result in
            switch result {
            case .success(let answered):
                bound.value.finishRead(answered, operation: operation, slot: boundSlot.value, access: access)
            case .failure:
                bound.value.complete(boundSlot.value, error: WireError(.unavailable, "the daemon is shutting down"))
            }
        }
    }

    /// Audits a read and queues its answer.
    private func finishRead(_ answered: Result<([UInt8], Int), WireError>, operation: Operation, slot: ResponseSlot, access: AccessContext) {
        switch answered {
        case .success(let (body, count)):
            audit(operation, access: access, returned: count)
            complete(slot, body: body)
        case .failure(let error):
            audit(operation, access: access, returned: 0)
            complete(slot, error: error)
        }
    }

    /// A `get` or a short `timeline` answered on the calling thread (an event loop) when the store can read it
    /// without waiting for the disk; nil for every other request, or when it would wait.
    private static func readWithoutWaiting(
        _ request: Request, id: [UInt8]?, access: AccessContext, server: ServerContext
    ) -> Result<([UInt8], Int), WireError>? {
        switch request {
        case .get(let eventID):
            return server.store.eventWithoutWaiting(withID: eventID).map { getResponse($0, eventID: eventID, id: id, access: access, server: server) }
        case .timeline(let leadID):
            return server.store.timelineWithoutWaiting(leadID: leadID, limit: inlineTimelineEvents).map {
                .success(timelineResponse($0, truncated: false, id: id, access: access, server: server))
            }
        default:
            return nil
        }
    }

    private func audit(_ operation: Operation, access: AccessContext, returned: Int) {
        server.auditor.record(AccessRecord(timeMs: Timestamp.now(), context: access, op: operation.rawValue, refused: false, eventsReturned: returned))
    }

    /// A `get`'s answer: the event masked for `access`, or `not_found`.
    private static func getResponse(
        _ event: StoredEvent?, eventID: String, id: [UInt8]?, access: AccessContext, server: ServerContext
    ) -> Result<([UInt8], Int), WireError> {
        guard let event else { return .failure(WireError(.notFound, "no event with event_id '\(eventID.prefix(80))'")) }
        return .success((Responses.event(id: id, server.presenter.present(event.jsonWithSeq, to: access)), 1))
    }

    /// A timeline's response body, masked for `access`, and how many events it holds.
    private static func timelineResponse(
        _ stored: [StoredEvent], truncated: Bool, id: [UInt8]?, access: AccessContext, server: ServerContext
    ) -> ([UInt8], Int) {
        let coldOnlyBefore = server.store.coldOnlyBefore
        if server.presenter.presentsUnchanged(to: access) {
            return (Responses.events(id: id, stored: stored, truncated: truncated, coldOnlyBefore: coldOnlyBefore), stored.count)
        }
        let events = stored.map { server.presenter.present($0.jsonWithSeq, to: access) }
        return (Responses.events(id: id, events, truncated: truncated, coldOnlyBefore: coldOnlyBefore), events.count)
    }

    /// Runs a blocking read on a pool thread; returns the response body and how many events it holds.
    private static func runRead(_ request: Request, id: [UInt8]?, access: AccessContext, server: ServerContext) -> Result<([UInt8], Int), WireError> {
        let store = server.store
        do {
            switch request {
            case .get(let eventID):
                return getResponse(try store.event(withID: eventID), eventID: eventID, id: id, access: access, server: server)
            case .timeline(let leadID):
                let timeline = try store.timeline(leadID: leadID, limit: 10_000)
                return .success(timelineResponse(timeline.events, truncated: timeline.truncated, id: id, access: access, server: server))
            case .stats:
                let stats = store.stats()
                let body = Responses.stats(id: id, stats) { writer in
                    writer.int("connections", server.registry.count)
                    writer.int("uptime_seconds", max(0, (Timestamp.now() - server.startedAtMs) / 1000))
                    writer.int("max_frame_bytes", server.configuration.maxFrameBytes)
                    writer.int("max_event_bytes", server.configuration.maxEventBytes)
                    writer.int("max_batch_events", server.configuration.maxBatchEvents)
                    let lookups = server.lookups.current
                    var counts = JSONObjectWriter()
                    counts.int("answered_inline", lookups.answeredInline)
                    counts.int("handed_to_workers", lookups.handedToWorkers)
                    writer.object("lookups", counts)
                }
                return .success((body, 0))
            case .rotate:
                return .success((Responses.rotate(id: id, try store.rotate()), 0))
            case .verify:
                return .success((Responses.verify(id: id, store.verify()), 0))
            case .tier:
                return .success((Responses.tier(id: id, try store.tier()), 0))
            case .restore(let restore):
                let report = try store.restore(restore)
                return .success((Responses.restore(id: id, report, released: restore.release), Int(report.restored)))
            case .ping, .append, .scan:
                return .failure(WireError(.internal, "request routed to the wrong worker"))
            }
        } catch {
            return .failure(Responses.wireError(error))
        }
    }

    private func startScan(_ scan: ScanRequest, slot: ResponseSlot, access: AccessContext, loop: EventLoop, bound: NIOLoopBound<ConnectionHandler>) {
        let stream = ScanStream(credits: 2)
        slot.stream = stream
        let boundSlot = NIOLoopBound(slot, eventLoop: loop)
        let server = self.server
        let id = slot.id
        let frameLimit = server.scanFrameEventBytes
        let waitSeconds = Double(server.configuration.stallTimeoutSeconds) * 2
        server.threadPool.submit { state in
            guard case .active = state else {
                loop.execute { bound.value.complete(boundSlot.value, error: WireError(.unavailable, "the daemon is shutting down")) }
                return
            }
            // Frames hold about `frameTarget` bytes of events (never more than `frameLimit`): big enough
            // that per-frame costs vanish, small enough that building one overlaps the client reading the last.
            let frameTarget = min(1 << 20, frameLimit)
            let capacity = frameTarget + server.configuration.maxEventBytes + (8 << 10)
            let unchanged = server.presenter.presentsUnchanged(to: access)
            // Held by a class, not captured `var`s: variables that the local functions below capture are boxed
            // and checked for exclusive access at run time, at every record.
            let building = ScanFrames(ScanFrameBuilder(id: id, capacity: capacity))
            func send(_ buffer: ByteBuffer, last: Bool) {
                loop.execute { bound.value.enqueue(buffer, in: boundSlot.value, last: last) }
            }
            /// Sends the frame built so far once a credit allows (false when the stream was cancelled).
            func flush() -> Bool {
                guard stream.acquire(timeoutSeconds: waitSeconds) else { return false }
                send(building.frame.finish(lastSeq: nil), last: false)
                building.sent += building.frame.count
                building.frame = ScanFrameBuilder(id: id, capacity: capacity)
                return true
            }
            let outcome: Result<(lastSeq: UInt64, returned: Int), Error>
            do {
                let result = try server.store.scan(scan) { record in
                    if unchanged {
                        if building.frame.count > 0, building.frame.eventBytes + ScanFrameBuilder.size(of: record) > frameLimit, !flush() {
                            return false
                        }
                        building.frame.append(record)
                    } else {
                        var json: [UInt8] = []
                        json.reserveCapacity(record.body.count + 24)
                        record.appendJSON(to: &json)
                        let shown = server.presenter.present(json, to: access)
                        if building.frame.count > 0, building.frame.eventBytes + shown.count + 1 > frameLimit, !flush() { return false }
                        building.frame.append(rendered: shown)
                    }
                    if building.frame.eventBytes >= frameTarget { return flush() }
                    // `flush` notices a cancelled stream; between flushes, look now and then.
                    return building.frame.count % 256 != 0 || !stream.isCancelled
                }
                outcome = .success(result)
            } catch {
                outcome = .failure(error)
            }
            switch outcome {
            case .success(let result) where !stream.isCancelled:
                let returned = building.sent + building.frame.count
                send(building.frame.finish(lastSeq: result.lastSeq), last: true)
                loop.execute {
                    boundSlot.value.logMetadata["seq.last"] = "\(result.lastSeq)"
                    boundSlot.value.logMetadata["events"] = "\(returned)"
                    bound.value.audit(.scan, access: access, returned: returned)
                }
            case .success(let result):
                let error = WireError(.unavailable, "scan interrupted (the daemon is stopping or the client is gone); resume with after_seq \(result.lastSeq)")
                loop.execute { bound.value.complete(boundSlot.value, error: error) }
            case .failure(let error):
                let wire = (error as? StoreError).map(Responses.wireError) ?? (error as? WireError) ?? WireError(.internal, "scan failed: \(error)")
                loop.execute { bound.value.complete(boundSlot.value, error: wire) }
            }
        }
    }

    /// A scan frame from the pool thread.
    private func enqueue(_ frame: ByteBuffer, in slot: ResponseSlot, last: Bool) {
        slot.frames.append(frame)
        if last { slot.isComplete = true }
        pump()
    }

    private func complete(_ slot: ResponseSlot, body: [UInt8]) {
        var buffer = ByteBufferAllocator().buffer(capacity: body.count + Frame.headerSize)
        buffer.writeInteger(UInt32(body.count))
        buffer.writeBytes(body)
        slot.frames.append(buffer)
        slot.isComplete = true
        pump()
    }

    private func complete(_ slot: ResponseSlot, error: WireError) {
        slot.failed = error.code
        if error.code != .frameTooLarge {
            logger.debug("request refused", metadata: ["op": "\(slot.op)", "error.code": "\(error.code.rawValue)", "error": "\(error.message)"])
        }
        complete(slot, body: ResponseEncoder.error(id: slot.id, error))
    }

    /// Logs a finished request at debug level, or at info when it took more than a second. An append's line
    /// says where its time went: `validated_ms` (frame received to events validated, queue included) and
    /// `store_ms` (handed to the store to durable: group commit, write and sync).
    private func logCompletion(_ slot: ResponseSlot) {
        let elapsed = NIODeadline.now() - slot.started
        let slow = elapsed > .seconds(1)
        guard slow || logger.logLevel <= .debug else { return }
        slot.noteDuration("duration_ms", elapsed)
        var metadata = slot.logMetadata
        metadata["op"] = "\(slot.op)"
        if let failed = slot.failed { metadata["error.code"] = "\(failed.rawValue)" }
        if slow {
            logger.info("slow request", metadata: metadata)
        } else {
            logger.debug("request done", metadata: metadata)
        }
    }
}
