// swift-tools-version:6.1
// Benchmarks live in their own package so that `swift test` at the root never builds them.
import PackageDescription

let package = Package(
    name: "leadtrail-benchmarks",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(name: "leadtrail", path: ".."),
    ],
    targets: [
        // Whole-engine figures (throughput, lookup latency, startup, memory) printed as a table.
        .executableTarget(
            name: "leadtrail-bench",
            dependencies: [
                .product(name: "LeadTrailEvents", package: "leadtrail"),
                .product(name: "LeadTrailStorage", package: "leadtrail"),
                .product(name: "LeadTrailQuery", package: "leadtrail"),
            ],
            swiftSettings: [.swiftLanguageMode(.v5)]),
    ]
)
