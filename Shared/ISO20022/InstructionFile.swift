import Foundation
import Models

/// Instruction files for agencies (utilities, the social insurance agency: fee and contribution
/// deferrals) and lessors (rent waivers), in JSON Lines.
///
/// Format (UTF-8, one compact JSON value per line, each line ending in `\n`):
///
///     {"kind":"agency:social-insurance","batch_id":"B-2022-0042","count":2,"created_at":"2022-05-06T10:00:00.000+08:00"}
///     {"payment_id":"P-1","uscc":"91310000MA1FL0XX1X","months":["2022-04","2022-05"]}
///     {"payment_id":"P-2","uscc":"91310000MA1FL0XY2Y","months":["2022-04"]}
///
/// The first line is the header: an object with the string members `kind`, `batch_id` and
/// `created_at` (RFC 3339), and `count`, the number of lines after it (written by
/// `writeAtomically`). Further header members (e.g. `total_fen`) are kept. The file is written
/// with the same atomic, idempotent, never-overwrite semantics as `Pain001.writeAtomically`.
public enum InstructionFile {
    public struct Contents: Sendable, Equatable {
        public var header: JSONObject
        public var lines: [JSON]

        public var kind: String { header["kind"]?.stringValue ?? "" }
        public var batchID: String { header["batch_id"]?.stringValue ?? "" }
    }

    /// The file's text: the header (with `count` set to `lines.count`) and one line per value.
    public static func text(lines: [JSON], header: JSON) throws(BatchError) -> String {
        guard let given = header.objectValue else { throw .invalidInstructionFile("the header must be a JSON object") }
        for key in ["kind", "batch_id", "created_at"] {
            guard let v = given[key]?.stringValue, !v.isEmpty else {
                throw .invalidInstructionFile("the header needs a non-empty string \"\(key)\"")
            }
        }
        if let c = given["count"], c != .int(Int64(lines.count)) {
            throw .invalidInstructionFile("the header declares count \(c) but there are \(lines.count) lines")
        }
        var h = JSONObject()
        h["kind"] = given["kind"]
        h["batch_id"] = given["batch_id"]
        h["count"] = .int(Int64(lines.count))
        h["created_at"] = given["created_at"]
        for (k, v) in given.members where h[k] == nil { h[k] = v }
        var out = JSON.object(h).serialized() + "\n"
        for line in lines { out += line.serialized() + "\n" }
        return out
    }

    /// Writes `<directory>/<name>` atomically; identical content again is a no-op, different
    /// content throws `.fileConflict`.
    @discardableResult
    public static func writeAtomically(lines: [JSON], header: JSON, name: String, to directory: URL) throws(BatchError) -> URL {
        let t = try text(lines: lines, header: header)
        return try AtomicFile.write(Array(t.utf8), name: name, to: directory)
    }

    /// Reads an instruction file back, checking the header and its count.
    public static func parse(_ text: String) throws(BatchError) -> Contents {
        var rows = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard rows.last == "" else { throw .invalidInstructionFile("the last line does not end in a newline") }
        rows.removeLast()
        guard !rows.isEmpty else { throw .invalidInstructionFile("the file is empty") }
        var values: [JSON] = []
        for (k, row) in rows.enumerated() {
            do {
                values.append(try JSONParser.parse(String(row)))
            } catch {
                throw .invalidInstructionFile("line \(k + 1): \(error)")
            }
        }
        guard let header = values.removeFirst().objectValue else {
            throw .invalidInstructionFile("the first line must be the header object")
        }
        for key in ["kind", "batch_id", "created_at"] where header[key]?.stringValue == nil {
            throw .invalidInstructionFile("the header has no string \"\(key)\"")
        }
        guard header["count"]?.intValue == Int64(values.count) else {
            throw .invalidInstructionFile(
                "the header declares count \(header["count"].map(\.description) ?? "-") but there are \(values.count) lines")
        }
        return Contents(header: header, lines: values)
    }
}
