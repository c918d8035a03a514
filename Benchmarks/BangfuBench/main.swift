import Foundation

// bangfu-bench: Bangfu's benchmarks, reported as figures (never as timed test assertions).
//   bangfu-bench intake [--events N] [--window W] [--seed S] [--json]
//   bangfu-bench screen [--merchants N] [--seed S] [--policies DIR] [--no-openfisca] [--json]
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
default:
    log("usage: bangfu-bench intake [--events N] [--window W] [--seed S] [--json]")
    log("       bangfu-bench screen [--merchants N] [--seed S] [--policies DIR] [--no-openfisca] [--json]")
    exit(64)
}
