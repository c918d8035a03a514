import BangfuTesting
import Foundation
import Models
import Policy
import Registry

/// `bangfu-bench screen`: screening throughput of the policy engine — merchant × policy
/// evaluations per second over a generated county with all six seed policies — the latency of
/// one merchant's re-evaluation, and, in the same run, the same rent-waiver rule in OpenFisca
/// over the same leases (`Benchmarks/openfisca/run`), with the two engines' totals compared.
struct ScreenBench {
    var merchants = 1_000_000
    var seed: UInt64 = 20_220_401
    var chunk = 20_000
    var policiesDir = "policies"
    var openfisca = true
    var json = false

    struct Totals: Equatable {
        var leases = 0
        var eligible = 0
        var incomplete = 0
        var amountFen: Int64 = 0
    }

    func run() throws -> String {
        let policies = try loadPolicies()
        guard let rent = policies.first(where: { $0.document.id == "soe-rent-waiver" }) else {
            throw BenchError("policies/soe-rent-waiver.yaml is missing")
        }
        log("compiled \(policies.count) policies: \(policies.map(\.document.id).joined(separator: ", "))")
        let county = SyntheticCounty(seed: seed, merchants: merchants, badEvery: 0)
        let application: JSON = ["submitted_on": "2022-05-01", "submitted_at": "2022-05-01T10:00:00+08:00", "documents": ["申请书.pdf"]]
        let exportPath = NSTemporaryDirectory() + "bangfu-screen-\(UUID().uuidString.prefix(8)).jsonl"
        _ = FileManager.default.createFile(atPath: exportPath, contents: nil)
        let export = try FileHandle(forWritingTo: URL(fileURLWithPath: exportPath))
        defer {
            try? export.close()
            try? FileManager.default.removeItem(atPath: exportPath)
        }

        var evaluations = 0
        var determinations = 0
        var allSeconds = 0.0
        var parallelSeconds = 0.0
        var tracedSeconds = 0.0
        var rentSeconds = 0.0
        var totals = Totals()
        var latencies: [UInt64] = []
        var generated = 0
        var start = 0
        while start < merchants {
            let end = min(merchants, start + chunk)
            // Untimed: the profiles the registry would publish, and the OpenFisca export.
            var profiles: [JSON] = []
            profiles.reserveCapacity(end - start)
            var lines = ""
            for i in start..<end {
                let facts = county.facts(of: i).compactMap { try? Fact.decode(type: $0.type, data: $0.data) }
                guard let uscc = facts.first?.uscc, let p = OfflineProfiles.profile(uscc: uscc, facts: facts) else { continue }
                profiles.append(p)
                if openfisca { lines += Self.exportLines(p) }
            }
            generated += profiles.count
            if openfisca { export.write(Data(lines.utf8)) }

            // Timed, one core: every merchant against every policy.
            var t0 = DispatchTime.now().uptimeNanoseconds
            for p in profiles {
                let input = PolicyInput(merchant: p, application: application)
                let s = DispatchTime.now().uptimeNanoseconds
                for policy in policies { determinations += policy.evaluate(input, traced: false).count }
                if latencies.count < 20_000 { latencies.append(DispatchTime.now().uptimeNanoseconds - s) }
            }
            allSeconds += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            evaluations += profiles.count * policies.count

            // Timed, one core: the same with full traces (what `explain` and every kept
            // entitlement carry).
            t0 = DispatchTime.now().uptimeNanoseconds
            for p in profiles {
                let input = PolicyInput(merchant: p, application: application)
                for policy in policies { _ = policy.evaluate(input, traced: true) }
            }
            tracedSeconds += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9

            // Timed, one core: the rent waiver alone (the rule compared with OpenFisca).
            t0 = DispatchTime.now().uptimeNanoseconds
            var chunkTotals = Totals()
            for p in profiles {
                for d in rent.evaluate(PolicyInput(merchant: p, application: application), traced: false) {
                    chunkTotals.leases += 1
                    switch d.outcome {
                    case .eligible(let fen):
                        chunkTotals.eligible += 1
                        chunkTotals.amountFen += fen
                    case .incomplete: chunkTotals.incomplete += 1
                    default: break
                    }
                }
            }
            rentSeconds += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            totals.leases += chunkTotals.leases
            totals.eligible += chunkTotals.eligible
            totals.incomplete += chunkTotals.incomplete
            totals.amountFen += chunkTotals.amountFen

            // Timed, every core.
            let cores = ProcessInfo.processInfo.activeProcessorCount
            let per = (profiles.count + cores - 1) / cores
            t0 = DispatchTime.now().uptimeNanoseconds
            profiles.withUnsafeBufferPointer { buf in
                nonisolated(unsafe) let buf = buf
                DispatchQueue.concurrentPerform(iterations: cores) { c in
                    for k in (c * per)..<min(buf.count, (c + 1) * per) {
                        let input = PolicyInput(merchant: buf[k], application: application)
                        for policy in policies { _ = policy.evaluate(input, traced: false) }
                    }
                }
            }
            parallelSeconds += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            start = end
            if start % 100_000 == 0 || start == merchants { log("screened \(start)/\(merchants) merchants") }
        }
        latencies.sort()
        let p50 = Double(latencies[latencies.count / 2]) / 1_000
        let p99 = Double(latencies[min(latencies.count - 1, latencies.count * 99 / 100)]) / 1_000
        let perCore = Double(evaluations) / allSeconds
        let tracedPerCore = Double(evaluations) / tracedSeconds
        let allCores = Double(evaluations) / parallelSeconds
        let rentPerSecond = Double(totals.leases) / rentSeconds
        try? export.synchronize()

        var of: JSON?
        if openfisca { of = try runOpenFisca(exportPath) }
        let ofRate = of?["leases_per_second"].flatMap { Self.number($0) }
        // OpenFisca also spends time building its simulation from the input arrays; Bangfu's
        // figure includes reading every fact from the profile, so both ratios are reported.
        let ofBuildAndCalc = of.flatMap { o -> Double? in
            guard let b = o["build_seconds"].flatMap(Self.number), let c = o["calculate_seconds"].flatMap(Self.number), b + c > 0 else {
                return nil
            }
            return Double(o["leases"]?.intValue ?? 0) / (b + c)
        }
        let ofTotals = of.map {
            Totals(
                leases: Int($0["leases"]?.intValue ?? -1), eligible: Int($0["eligible"]?.intValue ?? -1),
                incomplete: Int($0["incomplete"]?.intValue ?? -1), amountFen: $0["total_amount_fen"]?.intValue ?? -1)
        }
        let agree = ofTotals.map { $0 == totals }

        if json {
            var o = JSONObject()
            o["benchmark"] = "screen"
            o["merchants"] = .int(Int64(generated))
            o["policies"] = .int(Int64(policies.count))
            o["evaluations"] = .int(Int64(evaluations))
            o["determinations"] = .int(Int64(determinations))
            o["evaluations_per_second_one_core"] = .int(Int64(perCore))
            o["evaluations_per_second_all_cores"] = .int(Int64(allCores))
            o["evaluations_per_second_one_core_traced"] = .int(Int64(tracedPerCore))
            o["reevaluation_p50_us"] = .string(String(format: "%.1f", p50))
            o["reevaluation_p99_us"] = .string(String(format: "%.1f", p99))
            o["rent_waiver_leases"] = .int(Int64(totals.leases))
            o["rent_waiver_leases_per_second_one_core"] = .int(Int64(rentPerSecond))
            o["rent_waiver_eligible"] = .int(Int64(totals.eligible))
            o["rent_waiver_total_fen"] = .int(totals.amountFen)
            if let of { o["openfisca"] = of }
            if let ofRate { o["ratio_to_openfisca_calculate_per_core"] = .string(String(format: "%.4f", rentPerSecond / ofRate)) }
            if let ofBuildAndCalc {
                o["ratio_to_openfisca_build_and_calculate_per_core"] = .string(String(format: "%.4f", rentPerSecond / ofBuildAndCalc))
            }
            if let agree { o["totals_agree"] = .bool(agree) }
            return JSON.object(o).serialized()
        }
        var rows = [
            "| measure | figure |", "| --- | --- |",
            "| merchants × policies | \(generated) × \(policies.count) = \(evaluations) evaluations (\(determinations) determinations: per lease / damage / merchant) |",
            "| screening, one core | \(Int(perCore)) merchant×policy evaluations/s |",
            "| screening, \(ProcessInfo.processInfo.activeProcessorCount) cores | \(Int(allCores)) evaluations/s |",
            "| evaluation with full traces, one core | \(Int(tracedPerCore)) evaluations/s |",
            "| one merchant re-evaluated against all \(policies.count) policies (engine) | p50 \(String(format: "%.1f", p50)) µs, p99 \(String(format: "%.1f", p99)) µs |",
            "| rent waiver alone, one core | \(Int(rentPerSecond)) leases/s over \(totals.leases) leases: \(totals.eligible) eligible, \(totals.incomplete) incomplete, \(totals.amountFen) fen |",
        ]
        if let of, let ofRate {
            rows.append(
                "| OpenFisca \(of["openfisca_core_version"]?.stringValue ?? "?"), same rule, same leases, one core | \(Int(ofRate)) leases/s (calculate only; build \(of["build_seconds"].map { $0.serialized() } ?? "?") s) |"
            )
            rows.append("| Bangfu ÷ OpenFisca (calculate only), per core | \(String(format: "%.4f", rentPerSecond / ofRate))× |")
            if let l = of["load_seconds"].flatMap(Self.number), let b = of["build_seconds"].flatMap(Self.number),
                let c = of["calculate_seconds"].flatMap(Self.number)
            {
                let endToEnd = Double(totals.leases) / (l + b + c)
                rows.append(
                    "| Bangfu ÷ OpenFisca (reading the JSON input + build + calculate: \(Int(endToEnd)) leases/s), per core | \(String(format: "%.3f", rentPerSecond / endToEnd))× |"
                )
            }
            if let ofBuildAndCalc {
                rows.append(
                    "| Bangfu ÷ OpenFisca (build + calculate: \(Int(ofBuildAndCalc)) leases/s), per core | \(String(format: "%.4f", rentPerSecond / ofBuildAndCalc))× |"
                )
            }
            rows.append(
                "| totals agree (leases, eligible, incomplete, fen) | \(agree == true ? "yes" : "NO: OpenFisca \(ofTotals.map { "\($0)" } ?? "?")") |"
            )
        } else if openfisca {
            rows.append("| OpenFisca | not run (Benchmarks/openfisca/run missing or failed) |")
        }
        return rows.joined(separator: "\n")
    }

    static func number(_ j: JSON) -> Double? {
        switch j {
        case .int(let v): Double(v)
        case .number(let t): Double(t)
        default: nil
        }
    }

    func loadPolicies() throws -> [CompiledPolicy] {
        let fm = FileManager.default
        guard let files = try? fm.contentsOfDirectory(atPath: policiesDir).filter({ $0.hasSuffix(".yaml") }).sorted(), !files.isEmpty else {
            throw BenchError("no policy files in \(policiesDir) (run from the repository root or pass --policies DIR)")
        }
        return try files.map { f in
            let yaml = try String(contentsOfFile: policiesDir + "/" + f, encoding: .utf8)
            do {
                return try PolicyCompiler.compile(yaml: yaml)
            } catch {
                throw BenchError("\(f): \(error)")
            }
        }
    }

    /// One JSON line per lease with the rent-waiver inputs, in the format of
    /// `Benchmarks/openfisca/run_openfisca.py`.
    static func exportLines(_ p: JSON) -> String {
        var out = ""
        let tags = p["tags"]
        let badCredit = (p["credit_flags"]?.arrayValue ?? []).contains {
            ["serious_violation", "dishonest_debtor"].contains($0["list"]?.stringValue ?? "")
        }
        for l in p["leases"]?.arrayValue ?? [] {
            var o = JSONObject()
            o["uscc"] = p["uscc"] ?? .null
            o["lease_id"] = l["lease_id"] ?? .null
            o["kind"] = p["kind"] ?? .null
            o["size"] = tags?["size"] ?? .null
            o["service_industry"] = tags?["service_industry"] ?? .bool(false)
            o["status"] = p["status"] ?? .null
            o["disqualified"] = p["disqualified"] ?? .bool(false)
            o["bad_credit"] = .bool(badCredit)
            o["root_ownership"] = l["root_lessor"]?["ownership"] ?? .null
            o["chain_complete"] = l["chain_complete"] ?? .bool(false)
            // sublet(lease, period): a sublease whose term overlaps the programme's first half of
            // 2022 (ISO dates compare as strings).
            let subletInPeriod = (l["sublets"]?.arrayValue ?? []).contains { t in
                guard let s = t["starts_on"]?.stringValue, let e = t["ends_on"]?.stringValue else { return true }
                return s <= "2022-06-30" && e >= "2022-01-01"
            }
            o["sublet"] = .bool(subletInPeriod)
            o["use"] = l["use"] ?? .null
            o["monthly_rent_fen"] = l["monthly_rent_fen"] ?? .int(0)
            o["starts_on"] = l["starts_on"] ?? .null
            o["ends_on"] = l["ends_on"] ?? .null
            out += JSON.object(o).serialized() + "\n"
        }
        return out
    }

    func runOpenFisca(_ path: String) throws -> JSON? {
        let script = "Benchmarks/openfisca/run"
        guard FileManager.default.isExecutableFile(atPath: script) else { return nil }
        log("running OpenFisca over the same leases (\(script))")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [script, "--input", path]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            log("OpenFisca run failed with status \(p.terminationStatus)")
            return nil
        }
        let last = String(decoding: data, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
        return try? JSONParser.parse(last)
    }
}
