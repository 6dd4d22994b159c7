/// The fictional businesses, people and places the event generator draws from.
///
/// Every name here is invented; e-mail domains are the reserved `example.*`
/// ones, phone numbers use the fictional 555-01xx range, SSNs start with 9
/// (never issued) and IP addresses are from the documentation ranges.
enum GeneratorCatalog {
    struct Source {
        var id: String
        var name: String
        var acceptance: Double
        var weight: Double
        var channel: String
    }

    struct Buyer {
        var id: String
        var name: String
        var basePriceCents: Int
        var priceSpreadCents: Int
        var acceptance: Double
        var errorRate: Double
        var medianResponseMs: Double
    }

    struct Enhancement {
        var id: String
        var provider: String
        var step: String
        var costMills: Int
        var medianMs: Double
        var noMatchRate: Double
        var errorRate: Double
        var fields: [String]
    }

    struct Filter {
        var id: String
        var step: String
        var rule: String
        var failRate: Double
        var reason: String
    }

    struct Vertical {
        var name: String
        var flowID: String
        var weight: Double
        var enhancements: [Enhancement]
        var filters: [Filter]
        var buyers: [Buyer]
    }

    static let sources: [Source] = [
        Source(id: "src_acme_web", name: "acme-web", acceptance: 0.93, weight: 5, channel: "web_form"),
        Source(id: "src_bluefin_media", name: "bluefin-media", acceptance: 0.86, weight: 3, channel: "api"),
        Source(id: "src_leadspring", name: "leadspring", acceptance: 0.78, weight: 2, channel: "api"),
        Source(id: "src_quoteharbor", name: "quoteharbor", acceptance: 0.89, weight: 3, channel: "web_form"),
        Source(id: "src_northwind_ppc", name: "northwind-ppc", acceptance: 0.71, weight: 2, channel: "landing_page"),
        Source(id: "src_partner_api", name: "partner-api", acceptance: 0.96, weight: 1, channel: "api"),
    ]

    static let sourceRejections: [(String, Double)] = [
        ("duplicate_lead", 4), ("invalid_phone", 3), ("missing_consent", 1.5), ("out_of_area", 2),
        ("fraud_score_high", 1.5), ("invalid_email", 1),
    ]

    static let addressVerify = Enhancement(
        id: "enh_address_verify", provider: "verifyco", step: "enhance_address_verify", costMills: 20, medianMs: 85,
        noMatchRate: 0.05, errorRate: 0.02, fields: ["address_standardized", "county", "dpv_confirmed"])
    static let phoneLookup = Enhancement(
        id: "enh_phone_lookup", provider: "teleinfo", step: "enhance_phone_lookup", costMills: 10, medianMs: 45,
        noMatchRate: 0.08, errorRate: 0.015, fields: ["line_type", "carrier", "phone_active"])
    static let emailValidate = Enhancement(
        id: "enh_email_validate", provider: "mailcheck", step: "enhance_email_validate", costMills: 5, medianMs: 30,
        noMatchRate: 0.04, errorRate: 0.01, fields: ["email_deliverable", "email_age_days"])
    static let creditPrefill = Enhancement(
        id: "enh_credit_prefill", provider: "scoregrid", step: "enhance_credit_prefill", costMills: 350, medianMs: 420,
        noMatchRate: 0.12, errorRate: 0.03, fields: ["credit_band", "open_tradelines", "estimated_dti"])
    static let vehicleDecode = Enhancement(
        id: "enh_vehicle_decode", provider: "vinsight", step: "enhance_vehicle_decode", costMills: 40, medianMs: 120,
        noMatchRate: 0.06, errorRate: 0.02, fields: ["vehicle_trim", "vehicle_msrp", "safety_rating"])
    static let solarScore = Enhancement(
        id: "enh_solar_potential", provider: "sunmap", step: "enhance_solar_potential", costMills: 75, medianMs: 260,
        noMatchRate: 0.1, errorRate: 0.025, fields: ["roof_sqft", "annual_sun_hours", "solar_score"])

    static let duplicateCheck = Filter(
        id: "flt_duplicate_check", step: "filter_duplicate_check", rule: "no_duplicate_within_30_days", failRate: 0.03,
        reason: "duplicate_within_30_days")
    static let consentCheck = Filter(
        id: "flt_tcpa_consent", step: "filter_tcpa_consent", rule: "tcpa_consent_present", failRate: 0.01,
        reason: "missing_tcpa_consent")
    static let stateEligibility = Filter(
        id: "flt_state_eligibility", step: "filter_state_eligibility", rule: "state_in_service_area", failRate: 0.04,
        reason: "state_not_serviced")
    static let creditMinimum = Filter(
        id: "flt_credit_minimum", step: "filter_credit_minimum", rule: "credit_band_at_least_fair", failRate: 0.08,
        reason: "credit_score_below_minimum")
    static let homeowner = Filter(
        id: "flt_homeowner", step: "filter_homeowner", rule: "owns_home", failRate: 0.09, reason: "not_homeowner")

    static let verticals: [Vertical] = [
        Vertical(
            name: "mortgage", flowID: "flow_mortgage_refi_v3", weight: 4,
            enhancements: [addressVerify, phoneLookup, creditPrefill],
            filters: [duplicateCheck, consentCheck, creditMinimum],
            buyers: [
                Buyer(id: "buyer_summit_lending", name: "Summit Lending", basePriceCents: 4500, priceSpreadCents: 1500,
                      acceptance: 0.62, errorRate: 0.03, medianResponseMs: 180),
                Buyer(id: "buyer_harbor_mortgage", name: "Harbor Mortgage", basePriceCents: 3800, priceSpreadCents: 1200,
                      acceptance: 0.55, errorRate: 0.05, medianResponseMs: 320),
                Buyer(id: "buyer_keystone_finance", name: "Keystone Finance", basePriceCents: 2900, priceSpreadCents: 900,
                      acceptance: 0.7, errorRate: 0.02, medianResponseMs: 140),
            ]),
        Vertical(
            name: "auto_insurance", flowID: "flow_auto_insurance_v2", weight: 4,
            enhancements: [phoneLookup, emailValidate, vehicleDecode],
            filters: [duplicateCheck, consentCheck, stateEligibility],
            buyers: [
                Buyer(id: "buyer_northstar_insurance", name: "Northstar Insurance", basePriceCents: 1800, priceSpreadCents: 600,
                      acceptance: 0.58, errorRate: 0.04, medianResponseMs: 210),
                Buyer(id: "buyer_redwood_auto", name: "Redwood Auto Insure", basePriceCents: 1400, priceSpreadCents: 500,
                      acceptance: 0.66, errorRate: 0.03, medianResponseMs: 160),
                Buyer(id: "buyer_guardian_direct", name: "Guardian Direct", basePriceCents: 1100, priceSpreadCents: 400,
                      acceptance: 0.74, errorRate: 0.06, medianResponseMs: 450),
            ]),
        Vertical(
            name: "solar", flowID: "flow_solar_quote_v1", weight: 2,
            enhancements: [addressVerify, solarScore],
            filters: [duplicateCheck, homeowner, stateEligibility],
            buyers: [
                Buyer(id: "buyer_brightpath_solar", name: "BrightPath Solar", basePriceCents: 6500, priceSpreadCents: 2500,
                      acceptance: 0.48, errorRate: 0.04, medianResponseMs: 260),
                Buyer(id: "buyer_sunvest_energy", name: "SunVest Energy", basePriceCents: 5200, priceSpreadCents: 1800,
                      acceptance: 0.57, errorRate: 0.05, medianResponseMs: 380),
            ]),
    ]

    static let buyerRejections: [(String, Double)] = [
        ("duplicate_in_buyer_system", 4), ("price_below_floor", 2), ("daily_cap_reached", 2), ("geo_not_covered", 1.5),
        ("failed_buyer_validation", 1),
    ]

    static let feedbackDispositions: [(String, Double)] = [
        ("contacted", 38), ("no_contact", 28), ("converted", 18), ("bad_lead", 10), ("returned", 6),
    ]

    static let badLeadReasons = ["wrong_number", "not_interested", "already_customer", "fake_information"]

    static let firstNames = [
        "Ava", "Liam", "Maya", "Noah", "Elena", "Mateo", "Grace", "Owen", "Priya", "Caleb", "Sofia", "Julian",
        "Hannah", "Isaac", "Leah", "Marcus", "Nora", "Theo", "Zara", "Felix", "Ruby", "Diego", "Ivy", "Samuel",
        "Clara", "Omar", "Lucy", "Ezra", "Mila", "Victor",
    ]
    static let lastNames = [
        "Whitaker", "Okafor", "Lindqvist", "Moreno", "Castellano", "Brennan", "Nakamura", "Fairbanks", "Delacroix",
        "Holloway", "Ramires", "Thornbury", "Kowalczyk", "Ashford", "Vance", "Pemberton", "Sato", "Ellison",
        "Marchetti", "Quinlan", "Abernathy", "Oyelaran", "Haverford", "Lindgren", "Beaumont", "Cardenas",
    ]
    static let streets = [
        "Maple Avenue", "Cedar Lane", "Harbor View Drive", "Old Mill Road", "Willow Court", "Juniper Street",
        "Lakeshore Boulevard", "Aspen Way", "Sycamore Place", "Prospect Hill Road", "Birch Hollow", "Foundry Street",
    ]
    /// City, state, zip prefix, area code.
    static let places: [(String, String, String, String)] = [
        ("Springfield", "IL", "627", "217"), ("Fairview", "TX", "750", "214"), ("Riverton", "WY", "825", "307"),
        ("Franklin", "TN", "370", "615"), ("Greenville", "SC", "296", "864"), ("Madison", "WI", "537", "608"),
        ("Salem", "OR", "973", "503"), ("Georgetown", "KY", "403", "502"), ("Clinton", "IA", "527", "563"),
        ("Arlington", "VA", "222", "703"), ("Ashland", "OH", "448", "419"), ("Burlington", "VT", "054", "802"),
        ("Oxford", "MS", "386", "662"), ("Dover", "DE", "199", "302"), ("Bristol", "CT", "060", "860"),
    ]
    static let emailDomains = ["example.com", "example.net", "example.org"]
    static let userAgents = [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.6422.165 Mobile Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    ]
    static let campaigns = ["spring_refi_push", "evergreen_search", "social_retarget", "partner_newsletter", "tv_followup"]
    static let vehicleMakes: [(String, [String])] = [
        ("Toyota", ["Camry", "RAV4", "Corolla"]), ("Ford", ["F-150", "Escape", "Explorer"]),
        ("Honda", ["Civic", "CR-V", "Accord"]), ("Subaru", ["Outback", "Forester"]), ("Hyundai", ["Elantra", "Tucson"]),
    ]
    static let insurers = ["Bluebird Mutual", "Coastline Auto", "Evergreen Casualty", "none"]
}
