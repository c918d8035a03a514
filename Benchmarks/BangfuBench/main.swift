import Foundation
import Models
import Payments

// bangfu-bench: Bangfu's benchmarks, reported as figures (never as timed test assertions).
//   bangfu-bench intake [--events N] [--window W] [--seed S] [--json]
//   bangfu-bench screen [--merchants N] [--seed S] [--policies DIR] [--no-openfisca] [--json]
//   bangfu-bench ledger [--payments N] [--batch B] [--json]
let args = Array(CommandLine.arguments.dropFirst())
func value(_ flag: String) -> String? {
    guard let i = args.firstIndex(of: flag), i + 1 < args.count else { return nil }
    return args[i + 1]
}
switch args.first {
case "intake":
    var bench = IntakeBench()
    if let v = value("--events").flatMap(Int.init) { bench.events = v }
    if let v = value("--window").flatMap(Int.init) { bench.window = v }
    if let v = value("--seed").flatMap(UInt64.init) { bench.seed = v }
    bench.json = args.contains("--json")
    do {
        print(try await bench.run())
    } catch {
        log("intake benchmark failed: \(error)")
        exit(1)
    }
case "screen":
    var bench = ScreenBench()
    if let v = value("--merchants").flatMap(Int.init) { bench.merchants = v }
    if let v = value("--seed").flatMap(UInt64.init) { bench.seed = v }
    if let v = value("--policies") { bench.policiesDir = v }
    bench.openfisca = !args.contains("--no-openfisca")
    bench.json = args.contains("--json")
    do {
        print(try bench.run())
    } catch {
        log("screen benchmark failed: \(error)")
        exit(1)
    }
case "ledger":
    let n = value("--payments").flatMap(Int.init) ?? 200_000
    let figures = try LedgerBenchmark.run(transfers: n, batchSize: value("--batch").flatMap(Int.init) ?? 1_000)
    if args.contains("--json") {
        let o: JSON = [
            "benchmark": "ledger", "payments": .int(Int64(figures.payments)), "batch": .int(Int64(figures.batchSize)),
            "ledgered_payments_per_second": .int(Int64(figures.paymentsPerSecond)),
            "raw_sqlite_payments_per_second": .int(Int64(figures.rawPaymentsPerSecond)),
            "ratio": .string(String(format: "%.3f", figures.ratio)), "check_ok": .bool(figures.checkOK),
            "verify_ok": .bool(figures.verifyOK),
        ]
        print(o.serialized())
    } else {
        print(figures.description)
    }
default:
    log("usage: bangfu-bench intake [--events N] [--window W] [--seed S] [--json]")
    log("       bangfu-bench screen [--merchants N] [--seed S] [--policies DIR] [--no-openfisca] [--json]")
    log("       bangfu-bench ledger [--payments N] [--batch B] [--json]")
    exit(64)
}
