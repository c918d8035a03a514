import Bus
import Foundation
import Models

/// One request/answer on a service's replay endpoint, from a dedicated thread.
enum Query {
    /// The answer's last frame, or nil when nothing came back within `timeoutMs`.
    static func ask(context: ZContext, endpoint: String, _ request: JSON, timeoutMs: Int) async throws(CLIError) -> JSON? {
        do {
            return try await OwnerThread.run {
                try QueryClient.request(
                    context: context, endpoint: endpoint, request, timeoutMs: timeoutMs, curve: CLICurve.keys(for: endpoint))?.last
            }
        } catch let e as CLIError {
            throw e
        } catch {
            throw CLIError("request to \(endpoint) failed: \(error)")
        }
    }

    /// Like `ask`, but a missing answer or an `error` op is a `CLIError`.
    static func require(context: ZContext, target: ServiceTarget, _ request: JSON, timeoutMs: Int) async throws(CLIError) -> JSON {
        guard let answer = try await ask(context: context, endpoint: target.replay, request, timeoutMs: timeoutMs) else {
            throw CLIError("\(target.service) did not answer on \(target.replay) within \(timeoutMs) ms")
        }
        if answer["op"]?.stringValue == "error" {
            let code = answer["code"]?.stringValue ?? "error"
            throw CLIError("\(target.service): \(code): \(answer["message"]?.stringValue ?? "")")
        }
        return answer
    }
}

extension JSON {
    /// A field as display text: strings as they are, null/missing as "-", the rest as JSON.
    var text: String {
        switch self {
        case .string(let s): s
        case .null: "-"
        default: serialized()
        }
    }
}

extension Optional where Wrapped == JSON {
    var text: String { self?.text ?? "-" }
}
