// leadtrail-crashtest: a test-only driver for the reliability tests (never installed).
//
// Runs an in-process EventStore through every kind of step that has a crash point
// (appends, seals, segment creation, checkpoints, warm and cold tier moves,
// restores) and prints one line `A <event_id> <seq>` to stdout, unbuffered, for
// every acknowledged event. With LEADTRAIL_CRASHPOINT=name[:n] set, the process
// dies (exit 77) at that step; the test then reopens the directory and checks
// that every printed acknowledgement is there exactly once.
//
//   leadtrail-crashtest DATA_DIR RUN_TAG [ROUNDS]
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import LeadTrailEvents
import LeadTrailStorage

func say(_ line: String) {
    let text = line + "\n"
    _ = text.withCString { write(1, $0, strlen($0)) }
}

func die(_ message: String) -> Never {
    let text = "leadtrail-crashtest: " + message + "\n"
    _ = text.withCString { write(2, $0, strlen($0)) }
    exit(1)
}

let arguments = CommandLine.arguments
guard arguments.count >= 3 else { die("usage: leadtrail-crashtest DATA_DIR RUN_TAG [ROUNDS]") }
let directory = arguments[1]
let tag = arguments[2]
let rounds = arguments.count > 3 ? Int(arguments[3]) ?? 4 : 4

/// Events are dated from 2024-01-01; tiering runs with a `now` that makes them warm or cold.
let base: Int64 = 1_704_067_200_000
let day: Int64 = 86_400_000

var configuration = StoreConfiguration(directory: directory)
configuration.segmentMaxBytes = 8192
configuration.tiers.intervalSeconds = 0
configuration.tiers.hotDays = 30
configuration.tiers.warmDays = 90
let store: EventStore
do {
    store = try EventStore.open(configuration)
} catch {
    die("open: \(error)")
}

let preparer = EventPreparer()
var counter = 0
func batch(_ size: Int, round: Int) -> [PreparedEvent] {
    (0..<size).map { _ in
        counter += 1
        let ts = Timestamp.format(base + Int64(round) * 3_600_000 + Int64(counter))
        let json = "{\"type\":\"source.submitted\",\"lead_id\":\"lead-\(counter % 7)\",\"event_id\":\"\(tag)-\(counter)\",\"timestamp\":\"\(ts)\",\"metadata\":{\"n\":\(counter),\"pad\":\"\(String(repeating: "x", count: 120))\"}}"
        let bytes = Array(json.utf8)
        do {
            return try bytes.withUnsafeBufferPointer { try preparer.prepare($0, now: base) }
        } catch {
            die("prepare: \(error)")
        }
    }
}

func append(_ events: [PreparedEvent]) {
    do {
        for result in try store.appendAndWait(events) where !result.duplicate {
            say("A \(result.eventID) \(result.seq)")
        }
    } catch {
        die("append: \(error)")
    }
}

do {
    for round in 0..<rounds {
        // Appends that roll segments over (8 KiB segments), and a rotation.
        for _ in 0..<6 { append(batch(8, round: round)) }
        _ = try store.rotate()
        append(batch(3, round: round))
        // Sealed segments to warm, then warm to cold.
        _ = try store.tier(now: base + 40 * day)
        append(batch(3, round: round))
        _ = try store.rotate()
        _ = try store.tier(now: base + 200 * day)
        // Everything archived comes back, and is released again.
        _ = try store.restore(fromMs: nil, toMs: nil)
        append(batch(2, round: round))
        try store.releaseRestored()
        // Let a checkpoint fall due (they are written at most once a second).
        if round == 1 { Thread.sleep(forTimeInterval: 1.1) }
    }
} catch {
    die("\(error)")
}
store.close()
say("DONE")
