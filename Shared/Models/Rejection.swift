/// The stable rejection codes of the intake protocol (DESIGN §3.2). Their raw values are part of
/// the wire contract: never rename one.
public enum RejectionCode: String, Sendable, CaseIterable, Codable {
    case invalidJSON = "invalid_json"
    case invalidEnvelope = "invalid_envelope"
    case unknownType = "unknown_type"
    case invalidData = "invalid_data"
    case invalidUSCC = "invalid_uscc"
    case invalidIDNumber = "invalid_id_number"
    case invalidDate = "invalid_date"
    case invalidAmount = "invalid_amount"
    case conflict = "conflict"
    case unauthorized = "unauthorized"
    case tooLarge = "too_large"
    case late = "late"
}

/// Why an event was refused: a stable code, the offending field (a path such as `data.name`)
/// and a human-readable message.
public struct Rejection: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: RejectionCode
    public var field: String?
    public var message: String

    public init(_ code: RejectionCode, field: String? = nil, _ message: String) {
        self.code = code
        self.field = field
        self.message = message
    }

    public var description: String {
        "\(code.rawValue)\(field.map { " (\($0))" } ?? ""): \(message)"
    }

    public var json: JSON {
        var o = JSONObject()
        o["code"] = .string(code.rawValue)
        if let field { o["field"] = .string(field) }
        o["message"] = .string(message)
        return .object(o)
    }
}
