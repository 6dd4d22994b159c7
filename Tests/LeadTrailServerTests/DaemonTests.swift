import Foundation
import LeadTrailClient
import LeadTrailEvents
import LeadTrailStorage
import LeadTrailWire
import Testing
@testable import LeadTrailServer

@Suite struct DaemonProtocolTests {
    @Test func pingEchoesEveryKindOfID() async throws {
        let daemon = try await TestDaemon.start()
        let connection = try daemon.connect()
        for id in [#""req-1""#, "42", "-1.5e3", "true", "null"] {
            try connection.sendRaw(Array(#"{"op":"ping","id":\#(id)}"#.utf8))
            let body = String(decoding: try connection.receiveRaw(), as: UTF8.self)
            #expect(body == #"{"id":\#(id),"ok":true}"#)
        }
        #expect(try connection.request(["op": "ping"])["ok"] as? Bool == true)
        connection.close()
        await daemon.stop()
    }

    @Test func appendGetTimelineAndDuplicates() async throws {
        let daemon = try await TestDaemon.start()
        let connection = try daemon.connect()
        let first = eventJSON(type: "source.submitted", lead: "L1", id: "e1", timestamp: "2024-01-15T14:30:45.234Z",
                              extra: #""metadata":{"b":1,"a":[1.50,"\u00e9"]},"x" : 1e2"#)
        let second = eventJSON(type: "recipient.delivered", lead: "L1", id: "e2", timestamp: "2024-01-15T14:30:44.000+00:00")
        let third = eventJSON(type: "source.accepted", lead: "L2", id: nil, timestamp: nil)
        try connection.sendRaw(appendFrame([first, second, third], id: "1"))
        let response = try connection.receive()
        try LeadTrailConnection.check(response)
        let results = try #require(response["results"] as? [[String: Any]])
        #expect(results.map { int($0["seq"]) } == [1, 2, 3])
        #expect(results.map { $0["duplicate"] as? Bool } == [false, false, false])
        #expect(results[0]["event_id"] as? String == "e1")
        let assigned = try #require(results[2]["event_id"] as? String)
        #expect(assigned.hasPrefix("evt_") && assigned.count == 24)

        // The stored bytes are the producer's, with seq spliced in.
        try connection.sendRaw(Array(#"{"op":"get","event_id":"e1"}"#.utf8))
        let raw = String(decoding: try connection.receiveRaw(), as: UTF8.self)
        #expect(raw == #"{"ok":true,"event":{"seq":1,"# + first.dropFirst() + "}")

        // Timestamps are normalised; server-assigned fields are returned.
        let got = try connection.request(["op": "get", "event_id": assigned])
        let event = try #require(got["event"] as? [String: Any])
        #expect(int(event["seq"]) == 3)
        #expect((event["timestamp"] as? String)?.hasSuffix("Z") == true)

        // A duplicate keeps its original seq and takes none.
        let again = try connection.request(["op": "append", "events": [
            ["type": "source.submitted", "lead_id": "L1", "event_id": "e1"],
            ["type": "source.submitted", "lead_id": "L3", "event_id": "e4"],
        ]])
        let againResults = try #require(again["results"] as? [[String: Any]])
        #expect(int(againResults[0]["seq"]) == 1)
        #expect(againResults[0]["duplicate"] as? Bool == true)
        #expect(int(againResults[1]["seq"]) == 4)

        let timeline = try connection.request(["op": "timeline", "lead_id": "L1"])
        let events = try #require(timeline["events"] as? [[String: Any]])
        #expect(events.map { $0["event_id"] as? String } == ["e2", "e1"])
        #expect(timeline["truncated"] as? Bool == false)

        #expect(throws: ClientError.self) { try connection.request(["op": "get", "event_id": "nope"]) }
        try connection.send(["op": "get", "event_id": "nope", "id": 9])
        let missing = try connection.receive()
        #expect(errorCode(missing) == "not_found")
        #expect(int(missing["id"]) == 9)
        connection.close()
        await daemon.stop()
    }

    /// An append's debug line says where its time went: validating the events, then the store (group commit,
    /// write, sync). Both for a small frame (validated on the event loop) and a large one (on the thread pool).
    @Test func appendLogLinesSayWhereTheTimeWent() async throws {
        let log = CapturedLog()
        let daemon = try await TestDaemon.start(logger: log.logger(level: .debug))
        let connection = try daemon.connect()
        let pad = String(repeating: "x", count: 4000)
        let small = [eventJSON(lead: "L1")]
        let large = (0..<100).map { eventJSON(lead: "L\($0)", extra: #""pad":"\#(pad)""#) }
        #expect(appendFrame(large).count > ConnectionHandler.inlineParseLimit)
        for events in [small, large] {
            try connection.sendRaw(appendFrame(events))
            #expect(try connection.receive()["ok"] as? Bool == true)
        }
        connection.close()
        await daemon.stop()
        let appends = log.entries.filter { $0.message == "request done" && $0.metadata["op"] == "append" }
        #expect(appends.count == 2)
        for entry in appends {
            func milliseconds(_ key: String) -> Double? { entry.metadata[key].flatMap { Double("\($0)") } }
            let total = try #require(milliseconds("duration_ms"))
            let validated = try #require(milliseconds("validated_ms"))
            let stored = try #require(milliseconds("store_ms"))
            #expect(validated >= 0 && stored > 0)
            #expect(validated + stored <= total)
        }
        #expect(appends.map { $0.metadata["events"] } == ["1", "100"])
    }

    /// `stats` says how long the recent syncs took, the disk's health at a glance, the group writes before them,
    /// and whether the sealer keeps up.
    @Test func statsReportRecentSyncAndWriteTimes() async throws {
        let daemon = try await TestDaemon.start()
        let connection = try daemon.connect()
        #expect(try connection.request(["op": "stats"])["sync_ms"] == nil)
        #expect(try connection.request(["op": "stats"])["write_ms"] == nil)
        for lead in ["S1", "S2", "S3"] {
            try connection.sendRaw(appendFrame([eventJSON(lead: lead)]))
            #expect(try connection.receive()["ok"] as? Bool == true)
        }
        let stats = try connection.request(["op": "stats"])
        let syncs = try #require(stats["sync_ms"] as? [String: Any])
        #expect(int(syncs["recent"]) == int(stats["syncs"]))
        #expect((int(syncs["recent"]) ?? 0) >= 3)
        func milliseconds(_ key: String) throws -> Double { try #require((syncs[key] as? NSNumber)?.doubleValue) }
        let (p50, p99, max) = (try milliseconds("p50"), try milliseconds("p99"), try milliseconds("max"))
        #expect(p50 > 0 && p50 <= p99 && p99 <= max)
        let writes = try #require(stats["write_ms"] as? [String: Any])
        #expect(int(writes["recent"]) == 3)
        #expect(((writes["mb_per_s"] as? NSNumber)?.doubleValue ?? 0) > 0)
        // No segment has rolled: none waits for the sealer, and no rotation waited for it.
        let sealer = try #require(stats["sealer"] as? [String: Any])
        #expect(int(sealer["pending"]) == 0)
        #expect(int(sealer["rotations_waited"]) == 0)
        // Nothing was replaced: the trash is empty.
        let trash = try #require(stats["trash"] as? [String: Any])
        #expect(int(trash["files"]) == 0 && int(trash["bytes"]) == 0)
        connection.close()
        await daemon.stop()
    }

    /// `stats` counts how lookups were answered: a short timeline of hot events in the page cache by the
    /// socket's thread, a timeline over the inline limit by a worker; other requests are not lookups.
    @Test func statsCountLookupsAnsweredInlineAndHandedToWorkers() async throws {
        let daemon = try await TestDaemon.start()
        let connection = try daemon.connect()
        func lookups() throws -> [Int?] {
            let counts = try #require(try connection.request(["op": "stats"])["lookups"] as? [String: Any])
            return [int(counts["answered_inline"]), int(counts["handed_to_workers"])]
        }
        #expect(try lookups() == [0, 0])
        try connection.sendRaw(appendFrame([eventJSON(lead: "L-short", id: "short-0")]))
        #expect(try connection.receive()["ok"] as? Bool == true)
        let long = (0...ConnectionHandler.inlineTimelineEvents).map { eventJSON(lead: "L-long", id: "long-\($0)") }
        try connection.sendRaw(appendFrame(long))
        #expect(try connection.receive()["ok"] as? Bool == true)

        let short = try connection.request(["op": "timeline", "lead_id": "L-short"])
        #expect((short["events"] as? [Any])?.count == 1)
        #expect(try lookups() == [1, 0])
        let longTimeline = try connection.request(["op": "timeline", "lead_id": "L-long"])
        #expect((longTimeline["events"] as? [Any])?.count == long.count)
        #expect(try lookups() == [1, 1])
        #expect(try connection.request(["op": "get", "event_id": "short-0"])["ok"] as? Bool == true)
        #expect(try lookups() == [2, 1])
        connection.close()
        await daemon.stop()
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        let daemon = try await TestDaemon.start()
        let connection = try daemon.connect()
        var expected: [(id: Int, ok: Bool)] = []
        for i in 0..<60 {
            switch i % 5 {
            case 0: try connection.sendRaw(appendFrame([eventJSON(lead: "P\(i)", id: "p\(i)")], id: "\(i)")); expected.append((i, true))
            case 1: try connection.send(["op": "ping", "id": i]); expected.append((i, true))
            case 2: try connection.send(["op": "stats", "id": i]); expected.append((i, true))
            case 3: try connection.send(["op": "get", "event_id": "p\(i - 3)", "id": i]); expected.append((i, true))
            default: try connection.send(["op": "follow", "id": i]); expected.append((i, false))
            }
        }
        // Garbage in the middle of a pipeline gets its answer in its place.
        try connection.sendRaw(Array("not json".utf8))
        try connection.send(["op": "ping", "id": 999])
        for (id, ok) in expected {
            let response = try connection.receive()
            #expect(int(response["id"]) == id)
            #expect((response["ok"] as? Bool) == ok)
        }
        let garbage = try connection.receive()
        #expect(errorCode(garbage) == "bad_frame")
        #expect(garbage["id"] == nil)
        #expect(int(try connection.receive()["id"]) == 999)
        connection.close()
        await daemon.stop()
    }

    @Test func largeAndSmallAppendsKeepRequestOrder() async throws {
        let daemon = try await TestDaemon.start()
        let connection = try daemon.connect()
        let padding = String(repeating: "w", count: 4_000)
        // Large batches are validated off the event loop; small ones inline. Seqs still follow request order.
        var expectedFirstSeq: [Int] = []
        var next = 1
        for i in 0..<12 {
            let count = i % 3 == 0 ? 100 : 1
            let events = (0..<count).map { eventJSON(lead: "O", id: "o\(i)-\($0)", extra: "\"pad\":\"\(padding)\"") }
            try connection.sendRaw(appendFrame(events, id: "\(i)"))
            expectedFirstSeq.append(next)
            next += count
        }
        // A large invalid batch in the middle fails alone.
        let bad = (0..<100).map { $0 == 70 ? #"{"type":"x","lead_id":"O"}"# : eventJSON(lead: "O", extra: "\"pad\":\"\(padding)\"") }
        try connection.sendRaw(appendFrame(bad, id: "99"))
        try connection.sendRaw(appendFrame([eventJSON(lead: "O", id: "last")], id: "100"))
        for i in 0..<12 {
            let response = try connection.receive()
            #expect(int(response["id"]) == i)
            #expect(int((response["results"] as? [[String: Any]])?.first?["seq"]) == expectedFirstSeq[i])
        }
        let refused = try connection.receive()
        #expect(errorCode(refused) == "invalid_event")
        #expect(int((refused["error"] as? [String: Any])?["index"]) == 70)
        let last = try connection.receive()
        #expect(int((last["results"] as? [[String: Any]])?.first?["seq"]) == next)
        connection.close()
        await daemon.stop()
    }

    @Test func largeFramesOfEveryKindKeepTheirPlace() async throws {
        let daemon = try await TestDaemon.start()
        let connection = try daemon.connect()
        let big = String(repeating: "b", count: 300_000)
        try connection.sendRaw(Array(#"{"op":"ping","id":1,"pad":"\#(big)"}"#.utf8))
        try connection.sendRaw(appendFrame([eventJSON(lead: "X", id: "x1")], id: "2"))
        try connection.sendRaw(Array(#"{"op":"nope","id":3,"pad":"\#(big)"}"#.utf8))
        try connection.sendRaw(Array(#"{"op":"ping","id":4,"pad":"\#(big)""#.utf8))  // unterminated: bad_frame
        try connection.sendRaw(appendFrame([eventJSON(lead: "X", id: "x5", extra: "\"pad\":\"\(big)\"")], id: "5"))
        try connection.send(["op": "get", "event_id": "x5", "id": 6])
        let answers = try (0..<6).map { _ in try connection.receive() }
        #expect(answers.map { int($0["id"]) } == [1, 2, 3, nil, 5, 6])
        #expect(answers.map { $0["ok"] as? Bool } == [true, true, false, false, true, true])
        #expect(errorCode(answers[2]) == "unknown_op")
        #expect(errorCode(answers[3]) == "bad_frame")
        #expect(int((answers[4]["results"] as? [[String: Any]])?.first?["seq"]) == 2)
        // A burst of large appends, the fourth refused: a connection's large frames are parsed one at a time, in
        // order; the answers keep it, and the refused batch takes no seq.
        for i in 0..<6 {
            let extra = (i == 3 ? "\"duration_ms\":-1," : "") + "\"pad\":\"\(big)\""
            try connection.sendRaw(appendFrame([eventJSON(lead: "Y", id: "y\(i)", extra: extra)], id: "\(10 + i)"))
        }
        let burst = try (0..<6).map { _ in try connection.receive() }
        #expect(burst.map { int($0["id"]) } == [10, 11, 12, 13, 14, 15])
        #expect(errorCode(burst[3]) == "invalid_event")
        #expect(burst.enumerated().filter { $0.offset != 3 }.map { int(($0.element["results"] as? [[String: Any]])?.first?["seq"]) } == [3, 4, 5, 6, 7])
        connection.close()
        await daemon.stop()
    }

    @Test func errorCodes() async throws {
        let daemon = try await TestDaemon.start { $0.maxBatchEvents = 3; $0.maxFrameBytes = 64 << 10; $0.maxEventBytes = 1024 }
        let connection = try daemon.connect()
        func answer(_ body: [UInt8]) throws -> [String: Any] {
            try connection.sendRaw(body)
            return try connection.receive()
        }
        #expect(errorCode(try answer(Array("[1,2]".utf8))) == "bad_frame")
        #expect(errorCode(try answer([0x7B, 0xFF, 0x7D])) == "bad_frame")
        #expect(errorCode(try answer([])) == "bad_frame")
        #expect(errorCode(try answer(Array(#"{"id":1}"#.utf8))) == "bad_request")
        #expect(errorCode(try answer(Array(#"{"op":"report","id":1}"#.utf8))) == "unknown_op")
        #expect(errorCode(try answer(Array(#"{"op":"get"}"#.utf8))) == "bad_request")
        #expect(errorCode(try answer(Array(#"{"op":"scan","limit":"ten"}"#.utf8))) == "bad_request")
        #expect(errorCode(try answer(Array(#"{"op":"append","events":[]}"#.utf8))) == "bad_request")
        let four = (0..<4).map { eventJSON(lead: "B\($0)") }
        #expect(errorCode(try answer(appendFrame(four))) == "batch_too_large")

        let invalid = try answer(appendFrame([eventJSON(lead: "ok"), eventJSON(lead: "ok2"), #"{"type":"Bad","lead_id":"x"}"#]))
        #expect(errorCode(invalid) == "invalid_event")
        #expect(int((invalid["error"] as? [String: Any])?["index"]) == 2)
        let big = try answer(appendFrame([eventJSON(lead: "x", extra: "\"pad\":\"" + String(repeating: "p", count: 2000) + "\"")]))
        #expect(errorCode(big) == "invalid_event")
        // All or nothing: nothing of the refused batches was stored.
        let stats = try connection.request(["op": "stats"])
        #expect(int(stats["last_seq"]) == 0)
        #expect(errorCode(try answer(Array(#"{"op":"get","event_id":"x"}"#.utf8))) == "not_found")

        // frame_too_large: the error, then the connection closes; others go on.
        let other = try daemon.connect()
        let ping = Frame.encode(Array(#"{"op":"ping","id":"before"}"#.utf8))
        try connection.writeBytes(ping + [0x00, 0x10, 0x00, 0x01] + [UInt8](repeating: 0x20, count: 1000))
        #expect(try connection.receive()["id"] as? String == "before")
        let tooLarge = try connection.receive()
        #expect(errorCode(tooLarge) == "frame_too_large")
        #expect(throws: ClientError.self) { try connection.receive() }
        #expect(try other.request(["op": "ping"])["ok"] as? Bool == true)
        other.close()
        await daemon.stop()
    }

    @Test func storageFailuresMapToUnavailableAndInternal() async throws {
        let unavailable = try await TestDaemon.start(backend: FailingBackend(StoreError(.unavailable, "disk full")))
        let connection = try unavailable.connect()
        try connection.sendRaw(appendFrame([eventJSON(lead: "x")]))
        #expect(errorCode(try connection.receive()) == "unavailable")
        try connection.send(["op": "rotate"])
        #expect(errorCode(try connection.receive()) == "unavailable")
        try connection.send(["op": "scan"])
        #expect(errorCode(try connection.receive()) == "unavailable")
        connection.close()
        await unavailable.stop()

        let corrupt = try await TestDaemon.start(backend: FailingBackend(StoreError(.corrupt, "bad crc")))
        let second = try corrupt.connect()
        try second.send(["op": "get", "event_id": "x"])
        #expect(errorCode(try second.receive()) == "internal")
        second.close()
        await corrupt.stop()
    }

    @Test func rolesAreEnforced() async throws {
        // No role: only ping.
        let nobody = try await TestDaemon.start(peer: PeerCredentials(pid: 1, uid: 4242, gid: 4242))
        let connection = try nobody.connect()
        #expect(try connection.request(["op": "ping"])["ok"] as? Bool == true)
        for op in ["append", "get", "stats", "scan", "rotate", "verify", "timeline"] {
            try connection.send(["op": op, "id": op])
            let response = try connection.receive()
            #expect(errorCode(response) == "forbidden", "\(op)")
            #expect(response["id"] as? String == op)
        }
        connection.close()
        await nobody.stop()

        // A peer whose groups are looked up (an unknown user here) and match nothing has no role.
        let grouped = try await TestDaemon.start(peer: PeerCredentials(pid: 1, uid: 4_000_000, gid: 4242)) {
            $0.roles = RoleAssignments(gids: [7777: .support])
        }
        let g = try grouped.connect()
        #expect(try g.request(["op": "ping"])["ok"] as? Bool == true)
        try g.send(["op": "stats"])
        #expect(errorCode(try g.receive()) == "forbidden")
        g.close()
        await grouped.stop()

        // A producer by gid may append but not read; a support uid may read but not rotate.
        let roles = RoleAssignments(uids: [5001: .support], gids: [6000: .producer])
        let producer = try await TestDaemon.start(peer: PeerCredentials(pid: 1, uid: 5000, gid: 6000)) { $0.roles = roles }
        let p = try producer.connect()
        try p.sendRaw(appendFrame([eventJSON(lead: "R1", id: "r1")]))
        try LeadTrailConnection.check(try p.receive())
        try p.send(["op": "get", "event_id": "r1"])
        #expect(errorCode(try p.receive()) == "forbidden")
        p.close()
        await producer.stop()

        let support = try await TestDaemon.start(peer: PeerCredentials(pid: 1, uid: 5001, gid: 1)) { $0.roles = roles }
        let s = try support.connect()
        #expect(try s.request(["op": "stats"])["ok"] as? Bool == true)
        try s.send(["op": "rotate"])
        #expect(errorCode(try s.receive()) == "forbidden")
        try s.send(["op": "verify"])
        #expect(errorCode(try s.receive()) == "forbidden")
        s.close()
        await support.stop()
    }

    @Test func archivedEventsShowInStatsAndTimeline() async throws {
        let daemon = try await TestDaemon.start()
        let connection = try daemon.connect()
        let old = (0..<5).map { eventJSON(lead: "A", id: "old\($0)", timestamp: "2020-01-0\($0 + 1)T00:00:00Z") }
        try LeadTrailConnection.check(try { try connection.sendRaw(appendFrame(old)); return try connection.receive() }())
        _ = try connection.request(["op": "rotate"])
        let recent = eventJSON(lead: "A", id: "new", timestamp: Timestamp.format(Timestamp.now()))
        try connection.sendRaw(appendFrame([recent]))
        try LeadTrailConnection.check(try connection.receive())
        let store = try #require(daemon.store)
        let report = try store.tier()
        #expect(!report.moved.isEmpty)

        let stats = try connection.request(["op": "stats"])
        let cold = try #require((stats["tiers"] as? [String: Any])?["cold"] as? [String: Any])
        #expect(int(cold["events"]) == 5)
        let timeline = try connection.request(["op": "timeline", "lead_id": "A"])
        #expect(timeline["cold_only_before"] as? String == "2020-01-05T00:00:00.001Z")
        #expect((timeline["events"] as? [[String: Any]])?.map { $0["event_id"] as? String } == ["new"])
        connection.close()
        await daemon.stop()
    }

    @Test func tierAndRestoreThroughTheSocket() async throws {
        let daemon = try await TestDaemon.start()
        let connection = try daemon.connect()
        let old = (0..<5).map { eventJSON(lead: "A", id: "old\($0)", timestamp: "2020-01-0\($0 + 1)T00:00:00Z") }
        try LeadTrailConnection.check(try { try connection.sendRaw(appendFrame(old)); return try connection.receive() }())
        _ = try connection.request(["op": "rotate"])
        let tiered = try connection.request(["op": "tier"])
        let moved = try #require(tiered["moved"] as? [[String: Any]])
        #expect(moved.compactMap { $0["to"] as? String } == ["warm", "cold"])
        #expect((tiered["rewritten"] as? [Any])?.isEmpty == true)  // warm files of older formats: none here
        #expect(try connection.request(["op": "timeline", "lead_id": "A"])["cold_only_before"] as? String == "2020-01-05T00:00:00.001Z")

        try connection.send(["op": "restore"])
        #expect(errorCode(try connection.receive()) == "bad_request")
        try connection.send(["op": "restore", "from": "2020-01-03T00:00:00Z", "to": "2020-01-01T00:00:00Z"])
        #expect(errorCode(try connection.receive()) == "bad_request")
        let restored = try connection.request(["op": "restore", "from": "2020-01-01T00:00:00Z", "to": "2020-01-02T00:00:00Z"])
        #expect(int(restored["restored"]) == 5)
        let timeline = try connection.request(["op": "timeline", "lead_id": "A"])
        #expect((timeline["events"] as? [[String: Any]])?.compactMap { $0["event_id"] as? String } == (0..<5).map { "old\($0)" })
        #expect(timeline["cold_only_before"] == nil)
        let again = try connection.request(["op": "restore", "lead_id": "A"])
        #expect(int(again["restored"]) == 0 && int(again["already_restored"]) == 5)
        let released = try connection.request(["op": "restore", "release": true])
        #expect(int(released["released_segments"]) == 1)
        #expect((try connection.request(["op": "timeline", "lead_id": "A"])["events"] as? [Any])?.isEmpty == true)
        connection.close()
        await daemon.stop()
    }

    @Test func statsRotateVerify() async throws {
        let daemon = try await TestDaemon.start()
        let connection = try daemon.connect()
        let empty = try connection.request(["op": "rotate"])
        #expect(empty["rotated"] as? Bool == false)
        _ = try connection.request(["op": "append", "events": (0..<5).map { ["type": "a.b", "lead_id": "S\($0)"] }])
        let rotated = try connection.request(["op": "rotate"])
        #expect(rotated["rotated"] as? Bool == true)
        #expect(int(rotated["first_seq"]) == 1)
        #expect(int(rotated["last_seq"]) == 5)
        let stats = try connection.request(["op": "stats"])
        #expect(int(stats["events"]) == 5)
        #expect(int(stats["last_seq"]) == 5)
        #expect(stats["durability"] as? String == "fsync")
        let tiers = try #require(stats["tiers"] as? [String: Any])
        for tier in ["hot", "warm", "cold"] {
            let t = try #require(tiers[tier] as? [String: Any])
            #expect(t["segments"] != nil && t["events"] != nil && t["bytes"] != nil)
        }
        let verify = try connection.request(["op": "verify"])
        #expect(int(verify["segments"]) ?? 0 >= 1)
        #expect((verify["corrupt"] as? [Any])?.isEmpty == true)
        connection.close()
        await daemon.stop()
    }
}

@Suite struct ScanTests {
    @Test func scanStreamsFramesUnder4MiBWithDoneAndLastSeq() async throws {
        let daemon = try await TestDaemon.start()
        let writer = try daemon.connect()
        let padding = String(repeating: "z", count: 30_000)
        var batch: [String] = []
        for i in 1...400 {
            let type = i % 2 == 0 ? "recipient.delivered" : "source.submitted"
            batch.append(eventJSON(type: type, lead: "S\(i % 7)", id: "s\(i)", extra: "\"pad\":\"\(padding)\""))
            if batch.count == 100 {
                try writer.sendRaw(appendFrame(batch))
                try LeadTrailConnection.check(try writer.receive())
                batch.removeAll()
            }
        }
        // Everything, reading frame by frame.
        let reader = try daemon.connect()
        try reader.send(["op": "scan", "id": "all"])
        var seqs: [Int] = []
        var frames = 0
        while true {
            let raw = try reader.receiveRaw()
            #expect(raw.count < 4 << 20)
            frames += 1
            let frame = try #require(try JSONSerialization.jsonObject(with: Data(raw)) as? [String: Any])
            #expect(frame["id"] as? String == "all")
            seqs += ((frame["events"] as? [[String: Any]]) ?? []).compactMap { int($0["seq"]) }
            if frame["done"] as? Bool == true {
                #expect(int(frame["last_seq"]) == 400)
                break
            }
        }
        #expect(frames >= 3)
        #expect(seqs == Array(1...400))

        // Filters, a limit and a resume point.
        var matched: [Int] = []
        var lastSeq = 0
        try reader.stream(["op": "scan", "types": ["recipient.*"], "lead_id": "S3", "after_seq": 100, "limit": 5]) { frame in
            matched += ((frame["events"] as? [[String: Any]]) ?? []).compactMap { int($0["seq"]) }
            if frame["done"] as? Bool == true { lastSeq = int(frame["last_seq"]) ?? -1 }
            return true
        }
        let expected = (101...400).filter { $0 % 2 == 0 && $0 % 7 == 3 }.prefix(5)
        #expect(matched == Array(expected))
        #expect(lastSeq >= matched.last ?? 0)
        writer.close()
        reader.close()
        await daemon.stop()
    }

    @Test func aSlowScanReaderDoesNotStallOthers() async throws {
        let daemon = try await TestDaemon.start()
        let writer = try daemon.connect()
        let padding = String(repeating: "q", count: 50_000)
        for chunk in 0..<4 {
            let events = (0..<100).map { eventJSON(lead: "Q", id: "q\(chunk)-\($0)", extra: "\"pad\":\"\(padding)\"") }
            try writer.sendRaw(appendFrame(events))
            try LeadTrailConnection.check(try writer.receive())
        }
        // 20 MB of scan answers that this client does not read yet.
        let slow = try daemon.connect()
        try slow.send(["op": "scan"])
        try await Task.sleep(nanoseconds: 300_000_000)
        // Others are served meanwhile, including reads and appends.
        let other = try daemon.connect()
        #expect(try other.request(["op": "ping"])["ok"] as? Bool == true)
        #expect(try other.request(["op": "get", "event_id": "q0-1"])["ok"] as? Bool == true)
        _ = try other.request(["op": "append", "events": [["type": "a.b", "lead_id": "late"]]])
        // The slow reader still gets everything, in order.
        var count = 0
        while true {
            let frame = try slow.receive()
            count += (frame["events"] as? [Any])?.count ?? 0
            if frame["done"] as? Bool == true { break }
        }
        #expect(count >= 400)
        slow.close()
        other.close()
        writer.close()
        await daemon.stop()
    }
}

@Suite struct ConnectionRobustnessTests {
    @Test func aHalfSentFrameIsDroppedAfterTheStallTimeout() async throws {
        let daemon = try await TestDaemon.start { $0.stallTimeoutSeconds = 1 }
        let stalled = try daemon.connect()
        try stalled.writeBytes([0, 0, 1, 0, 0x7B])  // 256 bytes announced, 1 sent
        let other = try daemon.connect()
        #expect(try other.request(["op": "ping"])["ok"] as? Bool == true)
        try await Task.sleep(nanoseconds: 2_500_000_000)
        #expect(throws: ClientError.self) { try stalled.receive() }
        #expect(try other.request(["op": "ping"])["ok"] as? Bool == true)
        other.close()
        await daemon.stop()
    }

    @Test func aClientThatStopsReadingIsDisconnected() async throws {
        let daemon = try await TestDaemon.start { $0.stallTimeoutSeconds = 1 }
        let writer = try daemon.connect()
        let padding = String(repeating: "r", count: 40_000)
        for chunk in 0..<3 {
            try writer.sendRaw(appendFrame((0..<100).map { eventJSON(lead: "R", id: "r\(chunk)-\($0)", extra: "\"pad\":\"\(padding)\"") }))
            try LeadTrailConnection.check(try writer.receive())
        }
        writer.close()
        let reader = try daemon.connect()
        try reader.send(["op": "scan"])  // 12 MB of answers, never read
        let deadline = Date().addingTimeInterval(8)
        while daemon.daemon.connectionCount > 0, Date() < deadline {
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        #expect(daemon.daemon.connectionCount == 0)
        reader.close()
        let other = try daemon.connect()
        #expect(try other.request(["op": "ping"])["ok"] as? Bool == true)
        other.close()
        await daemon.stop()
    }

    @Test func garbageNeverStopsTheDaemon() async throws {
        let daemon = try await TestDaemon.start()
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<20 {
            let connection = try daemon.connect(timeout: 5)
            var body = (0..<Int.random(in: 0..<300, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if Bool.random(using: &rng) { body = Array(#"{"op":"append","events":[{"type":"#.utf8) + body }
            try connection.sendRaw(body)
            let response = try connection.receive()
            #expect(response["ok"] as? Bool == false)
            connection.close()
        }
        let check = try daemon.connect()
        #expect(try check.request(["op": "ping"])["ok"] as? Bool == true)
        check.close()
        await daemon.stop()
    }

    @Test func pipelineDeeperThanTheLimitIsStillAnsweredInOrder() async throws {
        let daemon = try await TestDaemon.start { $0.maxPipelinedRequests = 2 }
        let connection = try daemon.connect()
        for i in 0..<200 {
            try connection.sendRaw(appendFrame([eventJSON(lead: "D", id: "d\(i)")], id: "\(i)"))
        }
        for i in 0..<200 {
            let response = try connection.receive()
            #expect(int(response["id"]) == i)
            #expect(int((response["results"] as? [[String: Any]])?.first?["seq"]) == i + 1)
        }
        connection.close()
        await daemon.stop()
    }
}

@Suite struct LifecycleTests {
    @Test func shutdownAcknowledgesInFlightAppendsAndRemovesTheSocket() async throws {
        let daemon = try await TestDaemon.start()
        let connection = try daemon.connect()
        for i in 0..<20 {
            try connection.sendRaw(appendFrame((0..<50).map { eventJSON(lead: "G", id: "g\(i)-\($0)") }, id: "\(i)"))
        }
        // Wait until the daemon has at least started on them, then stop it.
        let first = try connection.receive()
        try LeadTrailConnection.check(first)
        let transfer = UnsafeSendable(connection)
        async let reading: Int = onThread {
            var acknowledged = 50
            while true {
                guard let response = try? transfer.value.receive() else { break }
                if response["ok"] as? Bool == true { acknowledged += (response["results"] as? [Any])?.count ?? 0 }
            }
            return acknowledged
        }
        await daemon.stop()
        let acknowledged = try await reading
        #expect(!FileManager.default.fileExists(atPath: daemon.socketPath))
        let store = try EventStore.open(StoreConfiguration(directory: daemon.dataDirectory))
        #expect(store.lastSeq >= UInt64(acknowledged))
        store.close()
    }

    @Test func staleSocketIsReplacedButALiveDaemonIsNot() async throws {
        let directory = TemporaryDirectory()
        let configuration = TestDaemon.configuration(in: directory)
        // A socket file with nobody listening, as a crash leaves it.
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in configuration.socketPath.utf8.enumerated() { raw[i] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(bound == 0)
        close(fd)
        #expect(FileManager.default.fileExists(atPath: configuration.socketPath))

        let daemon = try await Daemon.start(configuration, logger: quietLogger)
        let connection = try LeadTrailConnection(socketPath: configuration.socketPath)
        #expect(try connection.request(["op": "ping"])["ok"] as? Bool == true)
        var mode = stat()
        stat(configuration.socketPath, &mode)
        #expect(mode.st_mode & 0o777 == 0o660)

        var second = configuration
        second.dataDirectory = directory.path + "/other"
        await #expect(throws: DaemonError.self) { _ = try await Daemon.start(second, logger: quietLogger) }
        // The live daemon is untouched.
        #expect(try connection.request(["op": "ping"])["ok"] as? Bool == true)
        connection.close()
        await daemon.shutdown()
    }
}

@Suite struct ConfigurationTests {
    func load(_ text: String) throws(ConfigurationError) -> DaemonConfiguration {
        let directory = TemporaryDirectory()
        let path = directory.path + "/config.json"
        _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
        return try DaemonConfiguration.load(path: path)
    }

    @Test func defaults() throws {
        let configuration = try DaemonConfiguration.load(path: nil)
        #expect(configuration.hotDays == 30)
        #expect(configuration.warmDays == 90)
        #expect(configuration.retainDays == nil)
        #expect(configuration.durability == .fsync)
        #expect(configuration.maxFrameBytes == 16 << 20)
        #expect(configuration.maxEventBytes == 1 << 20)
        #expect(configuration.maxBatchEvents == 10_000)
        #expect(configuration.socketMode == 0o660)
        #expect(configuration.roles == RoleAssignments())
    }

    @Test func everyKey() throws {
        let configuration = try load("""
            {"hot_days": 7, "warm_days": 30, "retain_days": 365, "segment_max_bytes": 1048576,
             "segment_max_age_seconds": 60, "durability": "relaxed", "max_frame_bytes": 1048576,
             "max_event_bytes": 65536, "max_batch_events": 100, "socket_mode": "0600",
             "roles": {"support": {"uids": [1001, "root"], "gids": [2000]}, "producer": {"gids": ["root"]}},
             "data_dir": "/tmp/x", "socket": "/tmp/x.sock", "log_level": "debug"}
            """)
        #expect(configuration.hotDays == 7)
        #expect(configuration.retainDays == 365)
        #expect(configuration.durability == .relaxed)
        #expect(configuration.socketMode == 0o600)
        #expect(configuration.roles.uids == [1001: .support, 0: .support])
        #expect(configuration.roles.gids == [2000: .support, 0: .producer])
        #expect(configuration.dataDirectory == "/tmp/x")
    }

    @Test(arguments: [
        (#"{"hot_dayz": 1}"#, "hot_dayz"),
        (#"{"hot_days": "1"}"#, "hot_days"),
        (#"{"durability": "sometimes"}"#, "durability"),
        (#"{"socket_mode": 660}"#, "socket_mode"),
        (#"{"socket_mode": "9999"}"#, "socket_mode"),
        (#"{"max_frame_bytes": 1.5}"#, "max_frame_bytes"),
        (#"{"roles": {"king": {"uids": [1]}}}"#, "roles.king"),
        (#"{"roles": {"support": {"uids": ["no-such-user-here"]}}}"#, "roles.support.uids"),
        (#"{"roles": {"support": {"people": [1]}}}"#, "roles.support.people"),
        (#"{"hot_days": 100}"#, "warm_days"),
        (#"{"max_event_bytes": 20000000}"#, "max_event_bytes"),
    ])
    func errorsNameTheKey(_ text: String, _ key: String) {
        do {
            _ = try load(text)
            Issue.record("expected an error for \(text)")
        } catch {
            #expect(error.key == key)
            #expect(error.description.contains(key))
        }
    }

    @Test func rolesResolution() {
        let roles = RoleAssignments(uids: [10: .analyst], gids: [20: .admin, 30: .producer])
        #expect(roles.role(of: PeerCredentials(pid: 0, uid: 10, gid: 30), daemonUID: 0) == .analyst)
        #expect(roles.role(of: PeerCredentials(pid: 0, uid: 11, gid: 20), daemonUID: 0) == .admin)
        #expect(roles.role(of: PeerCredentials(pid: 0, uid: 12, gid: 12), daemonUID: 0) == nil)
        #expect(roles.role(of: PeerCredentials(pid: 0, uid: 7, gid: 7), daemonUID: 7) == .admin)
        // Supplementary groups count too.
        #expect(roles.role(of: PeerCredentials(pid: 0, uid: 12, gid: 12), daemonUID: 0, supplementaryGroups: [30]) == .producer)
        #expect(roles.role(of: PeerCredentials(pid: 0, uid: 10, gid: 12), daemonUID: 0, supplementaryGroups: [30, 20]) == .admin)
        #expect(roles.needsSupplementaryGroups(for: PeerCredentials(pid: 0, uid: 10, gid: 12), daemonUID: 0))
        #expect(!roles.needsSupplementaryGroups(for: PeerCredentials(pid: 0, uid: 10, gid: 20), daemonUID: 0))
        #expect(!RoleAssignments(uids: [10: .admin]).needsSupplementaryGroups(for: PeerCredentials(pid: 0, uid: 11, gid: 1), daemonUID: 0))
        #expect(RoleAssignments.supplementaryGroups(uid: 0, primaryGID: 12_345).contains(12_345))
        #expect(RoleAssignments.supplementaryGroups(uid: 4_000_000, primaryGID: 1).isEmpty)
        #expect(AccessPolicy.allows(nil, .ping))
        #expect(!AccessPolicy.allows(nil, .append))
        #expect(AccessPolicy.allows(.producer, .append))
        #expect(!AccessPolicy.allows(.producer, .scan))
        #expect(AccessPolicy.allows(.support, .timeline))
        #expect(!AccessPolicy.allows(.compliance, .rotate))
        #expect(AccessPolicy.allows(.admin, .verify))
    }
}

@Suite struct RequestAdmissionTests {
    @Test func roomComesBackAndWakesEachWaiterOnce() {
        let admission = RequestAdmission(budgetBytes: 100)
        #expect(admission.hasRoom)
        #expect(!admission.waitForRoom(connection: 1) { Issue.record("woken while there was room") })
        admission.hold(60)
        admission.hold(60)
        #expect(!admission.hasRoom)
        let woken = UnsafeSendable(NSLock())
        nonisolated(unsafe) var wakes: [UInt64] = []
        for id in [UInt64(1), 2, 2] {
            #expect(admission.waitForRoom(connection: id) { woken.value.withLock { wakes.append(id) } })
        }
        admission.forget(connection: 3)
        admission.release(10)  // 110 held: still no room
        #expect(woken.value.withLock { wakes.isEmpty })
        admission.release(60)
        #expect(woken.value.withLock { wakes.sorted() } == [1, 2])
        admission.release(50)
        #expect(admission.heldBytes == 0)
        #expect(woken.value.withLock { wakes.count } == 2)
    }

    @Test func manyProducersOverATinyBudgetAreAllAnsweredInOrder() async throws {
        // A budget smaller than one frame: every connection still gets through, one frame at a time when it must.
        let daemon = try await TestDaemon.start { $0.requestBytesInFlight = 512 }
        let producers = 6, batches = 30, perBatch = 3
        try await withThrowingTaskGroup(of: Void.self) { group in
            for p in 0..<producers {
                let connection = UnsafeSendable(try daemon.connect())
                group.addTask {
                    try await onThread {
                        for b in 0..<batches {
                            let events = (0..<perBatch).map { eventJSON(lead: "P\(p)", id: "p\(p)-\(b)-\($0)") }
                            try connection.value.sendRaw(appendFrame(events, id: "\(b)"))
                        }
                        for b in 0..<batches {
                            let response = try connection.value.receive()
                            #expect(response["ok"] as? Bool == true)
                            #expect(int(response["id"]) == b)
                        }
                        connection.value.close()
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(daemon.store?.lastSeq == UInt64(producers * batches * perBatch))
        #expect(daemon.daemon.requestBytesHeld == 0)
        let big = try daemon.connect()
        let events = (0..<200).map { eventJSON(lead: "B", id: "big-\($0)") }
        #expect(appendFrame(events).count > 512 * 30)
        try big.sendRaw(appendFrame(events, id: "7"))
        let answer = try big.receive()
        #expect(answer["ok"] as? Bool == true, "\(answer)")
        big.close()
        await daemon.stop()
    }
}
