// swift-tools-version:6.0
// libFuzzer targets for leadtrail's decoders of untrusted bytes. A package of its own so
// that `swift build` and `swift test` of the main package never build them; `scripts/fuzz`
// builds them with coverage and AddressSanitizer and runs each for a while.
import PackageDescription

let fuzzTarget = { (name: String, dependencies: [Target.Dependency]) in
    Target.executableTarget(name: name, dependencies: dependencies, swiftSettings: [.swiftLanguageMode(.v5)])
}

let package = Package(
    name: "leadtrail-fuzz",
    dependencies: [.package(name: "leadtrail", path: "..")],
    targets: [
        fuzzTarget("fuzz-frame", [.product(name: "LeadTrailWire", package: "leadtrail")]),
        fuzzTarget("fuzz-event", [.product(name: "LeadTrailEvents", package: "leadtrail")]),
        fuzzTarget("fuzz-segment", [.product(name: "LeadTrailStorage", package: "leadtrail")]),
        fuzzTarget("fuzz-warm", [.product(name: "LeadTrailStorage", package: "leadtrail")]),
        fuzzTarget("fuzz-cold", [.product(name: "LeadTrailStorage", package: "leadtrail")]),
    ]
)
