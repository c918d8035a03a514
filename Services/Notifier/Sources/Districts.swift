import Foundation

/// The names of the county's administrative divisions (`districts`): the registry's facts carry a
/// six-digit division code (GB/T 2260, e.g. `411002`), which means nothing to a merchant reading
/// the board or to the leadership reading the monthly evaluation. The operator lists the codes
/// the county uses and their names (魏都区, 经开区, …); the board and the report show the name,
/// and keep the code beside it where a machine reads them (`data.json`, the report's CSV). A code
/// not in the table is shown as it is.
public struct DistrictNames: Sendable, Equatable {
    public private(set) var names: [String: String]

    public init(_ names: [String: String] = [:]) { self.names = names }

    /// Reads a table: one division per line, its six-digit code, white space, then its name;
    /// `#` starts a comment. A code listed twice, a code that is not six digits or a line with
    /// no name is refused with the file and line.
    public init(file: String) throws {
        let text = try String(contentsOfFile: file, encoding: .utf8)
        try self.init(parsing: text, origin: file)
    }

    public init(parsing text: String, origin: String) throws {
        var names: [String: String] = [:]
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = (raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? "")
                .trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty { continue }
            let parts = line.split(maxSplits: 1, whereSeparator: { $0 == " " || $0 == "\t" })
            let code = String(parts[0])
            guard code.utf8.count == 6, code.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                throw ConfigProblem(message: "\(origin):\(n + 1): \(code) is not a six-digit division code (GB/T 2260, e.g. 411002)")
            }
            let name = parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : ""
            guard !name.isEmpty else {
                throw ConfigProblem(message: "\(origin):\(n + 1): \(code) has no name (a line is: code, a space, the name)")
            }
            if let before = names[code], before != name {
                throw ConfigProblem(message: "\(origin):\(n + 1): \(code) is listed twice (\(before), \(name))")
            }
            names[code] = name
        }
        self.names = names
    }

    public struct ConfigProblem: Error, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// The division's name, when the table has it.
    public func name(_ code: String) -> String? { names[code] }

    /// What a reader sees: the name, or the code when the table does not have it.
    public func label(_ code: String) -> String { names[code] ?? code }

    public var count: Int { names.count }
}
