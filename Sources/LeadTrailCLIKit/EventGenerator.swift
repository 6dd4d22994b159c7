import LeadTrailEvents

/// Settings of the synthetic lead-event generator.
public struct GeneratorOptions: Sendable, Equatable {
    /// How many leads to simulate.
    public var leads: Int
    /// Fixes every random choice: the same seed gives the same bytes.
    public var seed: UInt64
    /// When the first lead arrives, in milliseconds since the epoch (UTC).
    public var startMs: Int64
    /// The mean time between two lead arrivals (exponentially distributed).
    public var meanArrivalMs: Double

    /// The default start used when none is given, so output never depends on the clock.
    public static let defaultStart = "2026-11-23T09:00:00.000Z"

    public init(leads: Int, seed: UInt64 = 1, startMs: Int64, meanArrivalMs: Double = 4000) {
        self.leads = leads
        self.seed = seed
        self.startMs = startMs
        self.meanArrivalMs = meanArrivalMs
    }
}

/// Writes realistic, deterministic lead timelines as NDJSON event lines.
///
/// Each lead arrives from a source (`source.submitted`), is accepted or
/// rejected (with `metadata.rejection_reason`), is enhanced by paid providers
/// (`metadata.cost`, `duration_ms`, errors and retries), passes or fails
/// filters, is offered to buyers in a ping-post waterfall
/// (`recipient.delivered` with `metadata.buyer_response.price`,
/// `recipient.failed`, `recipient.error`, `retry.attempted`), completes its
/// flow, and for sold leads gets buyer feedback hours later. Every event
/// carries a PII-like `lead_snapshot` of invented data.
///
/// The generator yields events of all leads merged in timestamp order (the
/// order a live system would append them), holding in memory only the events
/// scheduled after the next lead's arrival. Each lead draws from its own
/// random stream, so the first N leads are the same whatever `leads` is.
public struct EventGenerator: IteratorProtocol, Sequence {
    private let options: GeneratorOptions
    private var arrivals: SeededRandom
    private var nextLeadIndex = 0
    private var nextLeadStart: Int64
    private var pending = MinHeap()
    private var order: UInt64 = 0

    public init(_ options: GeneratorOptions) {
        self.options = options
        self.arrivals = SeededRandom(seed: options.seed, stream: UInt64.max)
        self.nextLeadStart = options.startMs
    }

    /// The next event line (a JSON object, no newline), or `nil` when all leads are done.
    public mutating func next() -> [UInt8]? {
        while nextLeadIndex < options.leads, pending.peek().map({ $0.timestamp >= nextLeadStart }) ?? true {
            var simulation = LeadSimulation(seed: options.seed, index: nextLeadIndex, start: nextLeadStart)
            for event in simulation.run() {
                pending.push(PendingEvent(timestamp: event.timestamp, order: order, json: event.json))
                order += 1
            }
            nextLeadIndex += 1
            nextLeadStart += Int64(arrivals.exponential(mean: options.meanArrivalMs).rounded()) + 1
        }
        return pending.pop()?.json
    }
}

struct PendingEvent {
    var timestamp: Int64
    var order: UInt64
    var json: [UInt8]

    func precedes(_ other: PendingEvent) -> Bool {
        timestamp != other.timestamp ? timestamp < other.timestamp : order < other.order
    }
}

/// A binary min-heap of pending events by (timestamp, insertion order).
struct MinHeap {
    private var items: [PendingEvent] = []

    func peek() -> PendingEvent? { items.first }

    mutating func push(_ item: PendingEvent) {
        items.append(item)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child].precedes(items[parent]) else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> PendingEvent? {
        guard !items.isEmpty else { return nil }
        items.swapAt(0, items.count - 1)
        let top = items.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < items.count, items[left].precedes(items[smallest]) { smallest = left }
            if right < items.count, items[right].precedes(items[smallest]) { smallest = right }
            if smallest == parent { break }
            items.swapAt(parent, smallest)
            parent = smallest
        }
        return top
    }
}

/// One lead's journey through the funnel.
struct LeadSimulation {
    typealias Catalog = GeneratorCatalog

    struct Event {
        var timestamp: Int64
        var json: [UInt8]
    }

    var rng: SeededRandom
    let start: Int64
    var now: Int64
    var events: [Event] = []
    let leadID: String
    let source: Catalog.Source
    let vertical: Catalog.Vertical
    var snapshot: [UInt8] = []

    init(seed: UInt64, index: Int, start: Int64) {
        rng = SeededRandom(seed: seed, stream: UInt64(index))
        self.start = start
        now = start
        leadID = "lead_" + rng.base62(10)
        source = rng.weighted(Catalog.sources.map { ($0, $0.weight) })
        vertical = rng.weighted(Catalog.verticals.map { ($0, $0.weight) })
    }

    mutating func run() -> [Event] {
        snapshot = makeSnapshot()
        let sourceName = source.name
        let channel = source.channel
        let campaign = rng.pick(Catalog.campaigns)
        let subID = "sub_" + rng.digits(5)
        let verticalName = vertical.name

        // Intake.
        emit("source.submitted", entity: source.id, step: "intake", outcome: "received") { m in
            m.string("source_name", sourceName)
            m.string("channel", channel)
            m.string("campaign", campaign)
            m.string("sub_id", subID)
            m.string("vertical", verticalName)
        }
        let validation = rng.duration(median: 28, spread: 0.4, minimum: 3)
        advance(validation)
        if !rng.chance(source.acceptance) {
            let reason = rng.weighted(Catalog.sourceRejections)
            emit("source.rejected", entity: source.id, step: "validate", outcome: "rejected", duration: validation) { m in
                m.string("source_name", sourceName)
                m.string("rejection_reason", reason)
            }
            complete(outcome: "rejected", enhancementMills: 0, extra: ["reason": reason])
            return events
        }
        emit("source.accepted", entity: source.id, step: "validate", outcome: "accepted", duration: validation) { m in
            m.string("source_name", sourceName)
            m.int("checks_passed", 6)
        }

        // Paid data enhancements.
        var spentMills = 0
        for enhancement in vertical.enhancements where rng.chance(0.92) {
            spentMills += enhance(enhancement)
        }

        // Eligibility filters.
        for filter in vertical.filters {
            advance(rng.int(1...4))
            let took = rng.int(1...6)
            if rng.chance(filter.failRate) {
                emit("filter.failed", entity: filter.id, step: filter.step, outcome: "failed", duration: took) { m in
                    m.string("rule", filter.rule)
                    m.string("rejection_reason", filter.reason)
                }
                complete(outcome: "filtered", enhancementMills: spentMills, extra: ["reason": filter.reason])
                return events
            }
            emit("filter.passed", entity: filter.id, step: filter.step, outcome: "passed", duration: took) { m in
                m.string("rule", filter.rule)
            }
        }

        // Ping-post waterfall: highest-paying buyers first, exclusive sale.
        var sold: Catalog.Buyer?
        var attempted = 0
        for buyer in vertical.buyers.sorted(by: { $0.basePriceCents > $1.basePriceCents }) where sold == nil {
            attempted += 1
            if deliver(to: buyer) { sold = buyer }
        }
        complete(outcome: sold == nil ? "unsold" : "delivered", enhancementMills: spentMills,
                 extra: ["buyers_attempted": String(attempted)])

        // Buyer feedback, hours later.
        if let buyer = sold, rng.chance(0.7) {
            feedback(from: buyer)
        }
        return events
    }

    // MARK: - Steps

    /// Runs one enhancement (with a retry after an error); returns what it cost in thousandths of a dollar.
    mutating func enhance(_ e: Catalog.Enhancement) -> Int {
        advance(rng.int(1...5))
        var cost = 0
        if rng.chance(e.errorRate) {
            let timeout = 2000
            advance(timeout)
            emit("enhancement.error", entity: e.id, step: e.step, outcome: "error", duration: timeout) { m in
                m.string("provider", e.provider)
                m.string("error", "timeout after \(timeout)ms")
                m.mills("cost", 0)
            }
            let backoff = rng.int(250...1500)
            advance(backoff)
            emit("retry.attempted", entity: e.id, step: e.step, outcome: "retrying") { m in
                m.int("attempt", 2)
                m.int("backoff_ms", backoff)
                m.string("reason", "timeout")
            }
        }
        let took = rng.duration(median: e.medianMs, spread: 0.45, minimum: 5)
        advance(took)
        if rng.chance(e.noMatchRate) {
            cost = e.costMills / 2
            emit("enhancement.failure", entity: e.id, step: e.step, outcome: "no_match", duration: took) { m in
                m.string("provider", e.provider)
                m.mills("cost", cost)
                m.string("reason", "no_match")
            }
        } else {
            cost = e.costMills
            emit("enhancement.success", entity: e.id, step: e.step, outcome: "success", duration: took) { m in
                m.string("provider", e.provider)
                m.mills("cost", cost)
                m.stringArray("fields_added", e.fields)
            }
        }
        return cost
    }

    /// Offers the lead to one buyer (retrying once after an error); returns whether it was sold.
    mutating func deliver(to buyer: Catalog.Buyer) -> Bool {
        let step = "deliver_" + buyer.id.replacingPrefix("buyer_")
        advance(rng.int(2...8))
        var attempt = 1
        if rng.chance(buyer.errorRate) {
            let took = rng.chance(0.5) ? 3000 : rng.duration(median: buyer.medianResponseMs, minimum: 20)
            let status = took == 3000 ? 0 : rng.pick([500, 502, 503])
            advance(took)
            emit("recipient.error", entity: buyer.id, step: step, outcome: "error", duration: took) { m in
                m.string("buyer_name", buyer.name)
                if status == 0 {
                    m.string("error", "timeout after 3000ms")
                } else {
                    m.int("http_status", status)
                    m.string("error", "buyer endpoint returned \(status)")
                }
            }
            guard rng.chance(0.75) else { return false }
            let backoff = rng.int(1000...4000)
            advance(backoff)
            attempt = 2
            emit("retry.attempted", entity: buyer.id, step: step, outcome: "retrying") { m in
                m.string("buyer_name", buyer.name)
                m.int("attempt", 2)
                m.int("backoff_ms", backoff)
                m.string("reason", status == 0 ? "timeout" : "http_\(status)")
            }
        }
        let took = rng.duration(median: buyer.medianResponseMs, spread: 0.5, minimum: 15)
        advance(took)
        let buyerLeadID = "BL-" + rng.digits(8)
        let tryNumber = attempt
        if rng.chance(buyer.acceptance) {
            let price = max(100, buyer.basePriceCents + rng.int(-buyer.priceSpreadCents...buyer.priceSpreadCents) / 25 * 25)
            emit("recipient.delivered", entity: buyer.id, step: step, outcome: "accepted", duration: took) { m in
                m.string("buyer_name", buyer.name)
                m.string("delivery_method", "http_post")
                m.int("attempt", tryNumber)
                m.object("buyer_response") { r in
                    r.string("status", "accepted")
                    r.money("price", cents: price)
                    r.string("buyer_lead_id", buyerLeadID)
                }
            }
            return true
        }
        let reason = rng.weighted(Catalog.buyerRejections)
        emit("recipient.failed", entity: buyer.id, step: step, outcome: "rejected", duration: took) { m in
            m.string("buyer_name", buyer.name)
            m.string("delivery_method", "http_post")
            m.int("attempt", tryNumber)
            m.string("rejection_reason", reason)
            m.object("buyer_response") { r in
                r.string("status", "rejected")
                r.string("reason", reason)
            }
        }
        return false
    }

    mutating func complete(outcome: String, enhancementMills: Int, extra: [String: String]) {
        advance(rng.int(1...3))
        let total = Int(now - start)
        let verticalName = vertical.name
        emit("flow.completed", entity: vertical.flowID, step: "complete", outcome: outcome, duration: total) { m in
            m.string("vertical", verticalName)
            m.mills("enhancement_spend", enhancementMills)
            for key in extra.keys.sorted() {
                m.string(key, extra[key] ?? "")
            }
        }
    }

    mutating func feedback(from buyer: Catalog.Buyer) {
        let hours: ClosedRange<Int> = rng.weighted([(1...3, 0.35), (3...8, 0.4), (8...24, 0.15), (24...72, 0.1)])
        let delay = Int64(rng.int(hours.lowerBound * 3_600_000...hours.upperBound * 3_600_000))
        now += delay
        let disposition = rng.weighted(Catalog.feedbackDispositions)
        let reason = disposition == "bad_lead" ? rng.pick(Catalog.badLeadReasons) : nil
        let step = "feedback"
        emit("feedback.received", entity: buyer.id, step: step, outcome: disposition) { m in
            m.string("buyer_name", buyer.name)
            m.string("disposition", disposition)
            m.string("reason", ifPresent: reason)
            m.string("reported_by", "buyer_api")
        }
        let took = rng.duration(median: 90, minimum: 10)
        advance(took)
        emit("feedback.processed", entity: buyer.id, step: step, outcome: "processed", duration: took) { m in
            m.string("buyer_name", buyer.name)
            m.string("disposition", disposition)
            m.bool("return_credit_issued", disposition == "returned")
        }
    }

    // MARK: - Building events

    mutating func advance(_ milliseconds: Int) {
        now += Int64(milliseconds)
    }

    mutating func emit(
        _ type: String, entity: String, step: String, outcome: String, duration: Int? = nil,
        metadata: (inout JSONObjectWriter) -> Void
    ) {
        var w = JSONObjectWriter(reservingCapacity: 1600)
        w.string("event_id", EventID.generate(using: &rng))
        w.string("type", type)
        w.string("timestamp", Timestamp.format(now))
        w.string("lead_id", leadID)
        w.string("flow_id", vertical.flowID)
        w.string("entity_id", entity)
        w.string("step_id", step)
        w.string("outcome", outcome)
        if let duration { w.int("duration_ms", duration) }
        w.object("metadata", metadata)
        w.raw("lead_snapshot", snapshot)
        events.append(Event(timestamp: now, json: w.finished()))
    }

    /// The lead as the source sent it: invented PII and tracking fields.
    mutating func makeSnapshot() -> [UInt8] {
        let first = rng.pick(Catalog.firstNames)
        let last = rng.pick(Catalog.lastNames)
        let place = rng.pick(Catalog.places)
        let (city, state, zipPrefix, areaCode) = place
        var w = JSONObjectWriter(reservingCapacity: 900)
        w.string("first_name", first)
        w.string("last_name", last)
        w.string("email", "\(first.lowercased()).\(last.lowercased())\(rng.int(1...99))@\(rng.pick(Catalog.emailDomains))")
        w.string("phone", "\(areaCode)-555-01\(rng.digits(2))")
        w.string("address", "\(rng.int(10...9899)) \(rng.pick(Catalog.streets))")
        w.string("city", city)
        w.string("state", state)
        w.string("zip", zipPrefix + rng.digits(2))
        let year = rng.int(1950...2003)
        let month = rng.int(1...12)
        let day = rng.int(1...28)
        w.string("dob", "\(year)-\(month < 10 ? "0" : "")\(month)-\(day < 10 ? "0" : "")\(day)")
        w.string("ssn", "9\(rng.digits(2))-\(rng.digits(2))-\(rng.digits(4))")
        switch vertical.name {
        case "mortgage":
            w.string("loan_purpose", rng.pick(["refinance", "purchase", "cash_out_refinance"]))
            w.int("loan_amount", rng.int(80...900) * 1000)
            w.int("property_value", rng.int(150...1400) * 1000)
            w.string("credit_rating", rng.pick(["excellent", "good", "fair", "poor"]))
        case "auto_insurance":
            let (make, models) = rng.pick(Catalog.vehicleMakes)
            w.int("vehicle_year", rng.int(2008...2025))
            w.string("vehicle_make", make)
            w.string("vehicle_model", rng.pick(models))
            w.string("current_insurer", rng.pick(Catalog.insurers))
            w.int("drivers", rng.int(1...4))
        default:
            w.int("monthly_electric_bill", rng.int(60...420))
            w.string("roof_type", rng.pick(["asphalt_shingle", "metal", "tile", "flat"]))
            w.bool("homeowner", true)
        }
        w.string("ip_address", rng.pick(["203.0.113.", "198.51.100.", "192.0.2."]) + String(rng.int(1...254)))
        w.string("user_agent", rng.pick(Catalog.userAgents))
        w.string("landing_page", "https://www.\(source.name).example/\(vertical.name.replacingOccurrencesOfUnderscore())/quote")
        w.string("trusted_form_cert", "https://cert.trustedform.example/" + rng.base62(32))
        w.string("utm_source", source.name)
        w.string("utm_medium", source.channel == "api" ? "partner" : "cpc")
        w.string("utm_campaign", rng.pick(Catalog.campaigns))
        w.string("universal_lead_id", "\(rng.hex(8))-\(rng.hex(4))-4\(rng.hex(3))-\(rng.hex(4))-\(rng.hex(12))")
        w.bool("tcpa_consent", true)
        w.string("submitted_at", Timestamp.format(start))
        return w.finished()
    }
}

extension String {
    func replacingPrefix(_ prefix: String) -> String {
        hasPrefix(prefix) ? String(dropFirst(prefix.count)) : self
    }

    func replacingOccurrencesOfUnderscore() -> String {
        String(map { $0 == "_" ? "-" : $0 })
    }
}
