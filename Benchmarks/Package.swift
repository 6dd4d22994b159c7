// swift-tools-version:6.1
// Benchmarks live in their own package so that `swift test` at the root never builds them.
import PackageDescription

let package = Package(
    name: "leadtrail-benchmarks",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(name: "leadtrail", path: ".."),
        // package-benchmark; on Linux with Swift 6.3 only the malloc interposer trait builds here.
        .package(url: "https://github.com/ordo-one/package-benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // Whole-engine figures (throughput, lookup latency, startup, memory) printed as a table.
        .executableTarget(
            name: "leadtrail-bench",
            dependencies: [
                .product(name: "LeadTrailEvents", package: "leadtrail"),
                .product(name: "LeadTrailStorage", package: "leadtrail"),
                .product(name: "LeadTrailQuery", package: "leadtrail"),
                .product(name: "LeadTrailWire", package: "leadtrail"),
            ],
            swiftSettings: [.swiftLanguageMode(.v5)]),

        // A load client for the real daemon over its Unix socket (scripts/bench).
        .executableTarget(
            name: "leadtrail-load",
            dependencies: [
                "CScanCount",
                .product(name: "LeadTrailEvents", package: "leadtrail"),
            ],
            swiftSettings: [.swiftLanguageMode(.v5)]),

        // The load client's scan frame counter, in C for its SIMD compares.
        .target(name: "CScanCount"),

        // package-benchmark suite of the hot paths: `swift package --disable-sandbox benchmark` in this folder.
        .executableTarget(
            name: "HotPaths",
            dependencies: [
                .product(name: "Benchmark", package: "package-benchmark"),
                .product(name: "LeadTrailEvents", package: "leadtrail"),
                .product(name: "LeadTrailStorage", package: "leadtrail"),
            ],
            path: "Benchmarks/HotPaths",
            swiftSettings: [.swiftLanguageMode(.v5)],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]),
    ]
)
