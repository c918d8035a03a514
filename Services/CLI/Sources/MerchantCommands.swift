import ArgumentParser
import Bus
import Foundation
import Models

struct RegistryEndpointOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The registry's replay endpoint (queries go there).", valueName: "EP"))
    var replay: String?

    @Option(name: .customLong("timeout-ms"), help: "How long to wait for the registry.")
    var timeoutMs: Int = 10_000

    func target() throws(CLIError) -> ServiceTarget {
        try EndpointResolver.resolve(service: "registry", replay: replay)
    }
}

/// `bangfu merchant show|facts`: what the registry holds about one merchant.
public enum MerchantCommands {
    /// `merchant.facts`: the facts behind a merchant's profile, oldest first, personal data masked.
    public static func facts(
        context: ZContext, target: ServiceTarget, uscc: String, after: Int64, max: Int, json: Bool, timeoutMs: Int, console: Console
    ) async throws -> Int32 {
        let a = try await Query.require(
            context: context, target: target,
            ["op": "merchant.facts", "uscc": .string(uscc), "after": .int(after), "max": .int(Int64(max))], timeoutMs: timeoutMs)
        let items = a["items"]?.arrayValue ?? []
        if json {
            for f in items { console.line(f.serialized()) }
            return ExitCodes.ok
        }
        if items.isEmpty {
            console.line("no facts about \(uscc)" + (after > 0 ? " after \(after)" : ""))
            return ExitCodes.ok
        }
        Table.print(
            header: ["SEQ", "RECEIVED", "SOURCE", "TYPE", "ID"],
            rows: items.map { [$0["seq"].text, $0["received_at"].text, $0["source"].text, $0["type"].text, $0["id"].text] },
            console: console)
        if a["more"]?.boolValue == true, let last = items.last?["seq"]?.intValue { console.line("(more: --after \(last))") }
        return ExitCodes.ok
    }
}

struct MerchantVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merchant", abstract: "A merchant as the registry has it: its profile, and the facts behind it.",
        subcommands: [MerchantShowVerb.self, MerchantFactsVerb.self])
}

struct MerchantShowVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "The merchant's current profile (merchant.show), personal data masked, with its version.")
    @Option(help: "The merchant's USCC.") var uscc: String
    @OptionGroup var endpoints: RegistryEndpointOptions

    func run() async throws {
        try await execute { context, console in
            let a = try await Query.require(
                context: context, target: try endpoints.target(), ["op": "merchant.show", "uscc": .string(uscc)],
                timeoutMs: endpoints.timeoutMs)
            console.line(Mask.personalData(in: a["profile"] ?? .null).serialized())
            return ExitCodes.ok
        }
    }
}

struct MerchantFactsVerb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "facts",
        abstract:
            "The facts the registry took about the merchant, oldest first: agency (source), type, id, when (merchant.facts); --json adds their data, personal data masked."
    )
    @Option(help: "The merchant's USCC.") var uscc: String
    @Option(help: "Facts after this intake sequence (to page on).") var after: Int64 = 0
    @Option(help: "At most this many (1–1000).") var max: Int = 200
    @Flag(help: "One JSON object per line, with the fact's data.") var json = false
    @OptionGroup var endpoints: RegistryEndpointOptions

    func run() async throws {
        try await execute { context, console in
            try await MerchantCommands.facts(
                context: context, target: try endpoints.target(), uscc: uscc, after: after, max: max, json: json,
                timeoutMs: endpoints.timeoutMs, console: console)
        }
    }
}
