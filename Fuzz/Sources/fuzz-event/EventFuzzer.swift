// The event validator: every event the daemon stores went through EventPreparer.
import LeadTrailEvents

let preparer = EventPreparer(maxEventBytes: 1 << 20)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let buffer = UnsafeBufferPointer(start: data, count: size)
    if let event = try? preparer.prepare(buffer, now: 1_700_000_000_000, newEventID: { "evt_fuzz" }) {
        // What the store then does with it: indexed fields from the prepared bytes.
        event.json.withUnsafeBufferPointer { body in
            for field in IndexedField.allCases { _ = event.fields[field].value(in: body) }
        }
    }
    return 0
}
