// swift-tools-version:6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny")
]

let package = Package(
    name: "Bangfu",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "bangfu-registry", targets: ["bangfu-registry"]),
        .executable(name: "bangfu-matcher", targets: ["bangfu-matcher"]),
        .executable(name: "bangfu-payments", targets: ["bangfu-payments"]),
        .executable(name: "bangfu-notifier", targets: ["bangfu-notifier"]),
        .executable(name: "bangfu", targets: ["bangfu"]),
        .executable(name: "bangfu-bench", targets: ["bangfu-bench"]),
        .library(name: "BangfuTesting", targets: ["BangfuTesting"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CZeroMQ",
            path: "Shared/CZeroMQ",
            pkgConfig: "libzmq",
            providers: [.apt(["libzmq3-dev"])]
        ),
        .target(name: "Models", path: "Shared/Models", swiftSettings: strict),
        .target(
            name: "Policy",
            dependencies: ["Models", .product(name: "Yams", package: "Yams")],
            path: "Shared/Policy",
            swiftSettings: strict
        ),
        .target(
            name: "ISO20022",
            dependencies: ["Models"],
            path: "Shared/ISO20022",
            swiftSettings: strict
        ),
        .target(
            name: "Bus",
            dependencies: ["CZeroMQ", "Models", .product(name: "Logging", package: "swift-log")],
            path: "Shared/Bus",
            swiftSettings: strict
        ),
        .target(
            name: "Storage",
            dependencies: ["Models", "Bus", .product(name: "GRDB", package: "GRDB.swift")],
            path: "Shared/Storage",
            swiftSettings: strict
        ),
        .target(
            name: "ServiceKit",
            dependencies: [
                "Models", "Bus", "Storage",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
            ],
            path: "Shared/ServiceKit",
            swiftSettings: strict
        ),
        .target(
            name: "Registry",
            dependencies: [
                "Models", "Bus", "Storage", "ServiceKit",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Services/Registry/Sources",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "bangfu-registry",
            dependencies: ["Registry", "ServiceKit"],
            path: "Services/Registry/Main",
            swiftSettings: strict
        ),
        .target(
            name: "Matcher",
            dependencies: [
                "Models", "Bus", "Storage", "ServiceKit", "Policy",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Services/Matcher/Sources",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "bangfu-matcher",
            dependencies: ["Matcher", "ServiceKit"],
            path: "Services/Matcher/Main",
            swiftSettings: strict
        ),
        .target(
            name: "Payments",
            dependencies: [
                "Models", "Bus", "Storage", "ServiceKit", "ISO20022",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Services/Payments/Sources",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "bangfu-payments",
            dependencies: ["Payments", "ServiceKit"],
            path: "Services/Payments/Main",
            swiftSettings: strict
        ),
        .target(
            name: "Notifier",
            dependencies: [
                "Models", "Bus", "Storage", "ServiceKit",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Services/Notifier/Sources",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "bangfu-notifier",
            dependencies: ["Notifier", "ServiceKit"],
            path: "Services/Notifier/Main",
            swiftSettings: strict
        ),
        .target(
            name: "BangfuTesting",
            dependencies: [
                "CZeroMQ", "Models", "Bus", "Storage", "ServiceKit", "Registry", "Matcher", "Payments", "Notifier",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            path: "Shared/Testing",
            swiftSettings: strict
        ),
        .target(
            name: "BangfuCLI",
            dependencies: [
                "Models", "Bus", "ServiceKit", "BangfuTesting", "Policy", "ISO20022",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Services/CLI/Sources",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "bangfu",
            dependencies: ["BangfuCLI"],
            path: "Services/CLI/Main",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "bangfu-bench",
            dependencies: [
                "CZeroMQ", "Models", "Bus", "Storage", "Registry", "ServiceKit", "BangfuTesting", "Policy", "Payments",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Benchmarks/BangfuBench",
            swiftSettings: strict
        ),
        .testTarget(name: "ModelsTests", dependencies: ["Models"], path: "Tests/ModelsTests"),
        .testTarget(name: "PolicyTests", dependencies: ["Policy", "Models"], path: "Tests/PolicyTests"),
        .testTarget(
            name: "BusTests",
            dependencies: ["Bus", "Storage", "Models", "BangfuTesting", .product(name: "GRDB", package: "GRDB.swift")],
            path: "Tests/BusTests"
        ),
        .testTarget(
            name: "RegistryTests",
            dependencies: ["Registry", "Models", "BangfuTesting"],
            path: "Tests/RegistryTests"
        ),
        .testTarget(
            name: "MatcherTests",
            dependencies: ["Matcher", "Policy", "Registry", "BangfuTesting", "Bus", "Models"],
            path: "Tests/MatcherTests"
        ),
        .testTarget(
            name: "ISO20022Tests",
            dependencies: ["ISO20022", "Models"],
            path: "Tests/ISO20022Tests"
        ),
        .testTarget(
            name: "PaymentsTests",
            dependencies: [
                "Payments", "ISO20022", "BangfuTesting", "Bus", "Storage", "Models", .product(name: "GRDB", package: "GRDB.swift"),
            ],
            path: "Tests/PaymentsTests"
        ),
        .testTarget(
            name: "NotifierTests",
            dependencies: [
                "Notifier", "BangfuTesting", "Bus", "Storage", "Models", "ServiceKit", .product(name: "GRDB", package: "GRDB.swift"),
            ],
            path: "Tests/NotifierTests"
        ),
        .testTarget(
            name: "CLITests",
            dependencies: ["BangfuCLI", "BangfuTesting", "Bus", "Models"],
            path: "Tests/CLITests"
        ),
        .testTarget(
            name: "HarnessTests",
            dependencies: [
                "BangfuTesting", "Registry", "Bus", "Models", "ServiceKit",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Tests/HarnessTests"
        ),
    ]
)
