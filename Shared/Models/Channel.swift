/// The channels a benefit is carried out through: `treasury` (cash, pain.001 credit transfers),
/// `lessor` (rent waivers, instruction files for the lessors) and `agency:<name>` (deferrals
/// and fee waivers, instruction files for that agency).
public enum Channel {
    /// An agency's name in `agency:<name>`: 1 to 40 of `a-z`, `0-9`, `-`, `_`. It names the
    /// agency's instruction files, so it never holds a path separator, a space or a dot.
    public static func isAgencyName<S: StringProtocol>(_ name: S) -> Bool {
        (1...40).contains(name.utf8.count)
            && name.utf8.allSatisfy { (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2D || $0 == 0x5F }
    }

    /// `treasury`, `lessor`, or `agency:` followed by an agency name.
    public static func isValid(_ channel: String) -> Bool {
        if channel == "treasury" || channel == "lessor" { return true }
        guard channel.hasPrefix("agency:") else { return false }
        return isAgencyName(channel.dropFirst("agency:".count))
    }
}
