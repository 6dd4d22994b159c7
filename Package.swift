// swift-tools-version:6.0
import PackageDescription

let swiftSettings: [SwiftSetting] = [.swiftLanguageMode(.v5)]

let package = Package(
    name: "leadtrail",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "leadtrail", targets: ["leadtrail"]),
        .library(name: "LeadTrailEvents", targets: ["LeadTrailEvents"]),
        .library(name: "LeadTrailStorage", targets: ["LeadTrailStorage"]),
        .library(name: "LeadTrailQuery", targets: ["LeadTrailQuery"]),
        .library(name: "LeadTrailClient", targets: ["LeadTrailClient"]),
        .library(name: "LeadTrailWire", targets: ["LeadTrailWire"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-system.git", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.3.0"),
    ],
    targets: [
        // C shims: hardware CRC32C, and the system LZ4 and zlib libraries.
        .target(name: "CCRC32C"),
        // preadv2 with RWF_NOWAIT (not in Swift's Glibc module): reads that must not wait for the disk.
        .target(name: "CFileIO"),
        .target(name: "CLZ4", linkerSettings: [.linkedLibrary("lz4")]),
        .target(name: "CZlib", linkerSettings: [.linkedLibrary("z")]),
        // SSE2 helpers for the JSON scanner (inline, in the header).
        .target(name: "CJSONScan"),
        // The leadtrail executable's malloc settings, applied before main (see arena.c).
        .target(name: "CMallocArena"),

        // The event schema: JSON scanning, validation, normalisation, ids and hashes.
        .target(
            name: "LeadTrailEvents",
            dependencies: ["CCRC32C", "CJSONScan"],
            swiftSettings: swiftSettings),

        // The storage engine: segments, indexes, group commit, recovery, verify. Knows nothing about sockets.
        .target(
            name: "LeadTrailStorage",
            dependencies: [
                "LeadTrailEvents", "CCRC32C", "CFileIO", "CLZ4", "CZlib",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Atomics", package: "swift-atomics"),
            ],
            swiftSettings: swiftSettings),

        // The query layer: filters, scans, timelines over the storage engine.
        .target(
            name: "LeadTrailQuery",
            dependencies: ["LeadTrailEvents", "LeadTrailStorage"],
            swiftSettings: swiftSettings),

        // The wire codec: frames, requests and responses of PROTOCOL.md (no I/O).
        .target(
            name: "LeadTrailWire",
            dependencies: ["LeadTrailEvents"],
            swiftSettings: swiftSettings),

        // The daemon: SwiftNIO Unix-socket server, configuration, roles.
        .target(
            name: "LeadTrailServer",
            dependencies: [
                "LeadTrailEvents", "LeadTrailStorage", "LeadTrailQuery", "LeadTrailWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings),

        // A small blocking client for the CLI and tests.
        .target(
            name: "LeadTrailClient",
            dependencies: ["LeadTrailWire"],
            swiftSettings: swiftSettings),

        // The CLI's testable logic: NDJSON batching, timeline and table rendering, the event generator.
        .target(
            name: "LeadTrailCLIKit",
            dependencies: ["LeadTrailEvents"],
            swiftSettings: swiftSettings),

        // The operator CLI (one file per subcommand) and the daemon entry point.
        .executableTarget(
            name: "leadtrail",
            dependencies: [
                "LeadTrailCLIKit", "LeadTrailEvents", "LeadTrailStorage", "LeadTrailServer", "LeadTrailClient", "LeadTrailWire",
                "CMallocArena",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings),

        // Test-only: drives an in-process store through every crash point (tier moves, restores included)
        // for the reliability tests, printing each acknowledgement. Not a product; never installed.
        .executableTarget(
            name: "leadtrail-crashtest",
            dependencies: ["LeadTrailEvents", "LeadTrailStorage"],
            swiftSettings: swiftSettings),

        // Test-only: what several test targets share (a seeded generator, temporary directories).
        .target(name: "LeadTrailTestSupport", dependencies: ["LeadTrailCLIKit"], path: "Tests/LeadTrailTestSupport", swiftSettings: swiftSettings),
        .testTarget(name: "LeadTrailEventsTests", dependencies: ["LeadTrailEvents", "LeadTrailTestSupport"], swiftSettings: swiftSettings),
        .testTarget(
            name: "LeadTrailStorageTests",
            dependencies: [
                "LeadTrailStorage", "LeadTrailEvents", "LeadTrailQuery", "LeadTrailTestSupport", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "LeadTrailQueryTests", dependencies: ["LeadTrailQuery", "LeadTrailStorage", "LeadTrailEvents", "LeadTrailTestSupport"],
            swiftSettings: swiftSettings),
        .testTarget(name: "LeadTrailCLITests", dependencies: ["LeadTrailCLIKit", "LeadTrailEvents"], swiftSettings: swiftSettings),
        .testTarget(name: "LeadTrailWireTests", dependencies: ["LeadTrailWire", "LeadTrailTestSupport"], swiftSettings: swiftSettings),
        .testTarget(
            name: "LeadTrailServerTests",
            dependencies: ["LeadTrailServer", "LeadTrailClient", "LeadTrailWire", "LeadTrailStorage"],
            swiftSettings: swiftSettings),
    ]
)
