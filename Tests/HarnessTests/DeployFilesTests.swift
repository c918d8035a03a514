import Foundation
import Testing

/// What `deploy/` installs (docs/operations.md §5, §11): configuration that only root and the
/// group `bangfu` read, a key store only root reads, and units that hand each service its secret
/// key as a systemd credential and keep it out of the other services' state. (CI also runs
/// `systemd-analyze verify` and `systemd-analyze security` on the units: scripts/test.)
@Suite("deploy files")
struct DeployFilesTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let services = ["registry", "matcher", "payments", "notifier"]

    static func read(_ path: String) throws -> [String] {
        try String(contentsOf: repo.appendingPathComponent(path), encoding: .utf8).split(separator: "\n").map(String.init)
    }

    @Test func installShMakesTheConfigurationTheGroupsAndTheKeysRoots() throws {
        let lines = try Self.read("deploy/install.sh").filter { !$0.hasPrefix("#") }
        #expect(lines.contains("install -d -m 0750 -o root -g bangfu /etc/bangfu"))
        #expect(lines.contains("install -d -m 0700 -o root -g root /etc/bangfu/keys"))
        #expect(lines.contains { $0.contains("install -m 0640 -o root -g bangfu \"$f\" \"$dest\"") })
        #expect(!lines.contains { $0.contains("/etc/bangfu") && $0.contains("0755") }, "no world-readable configuration directory")
        #expect(!lines.contains { $0.contains("install -m 0644 \"$f\" \"$dest\"") }, "no world-readable configuration file")
        // The spool directories other users of the group write into exist, group-writable, before
        // the service (which makes its own directories 0750) would create them.
        let script = lines.joined(separator: "\n").replacingOccurrences(of: "\\\n", with: "")
        for dir in ["outbox", "outbox/sent", "inbox"] {
            #expect(
                script.contains("/var/spool/bangfu/payments/\(dir) ") || script.contains("/var/spool/bangfu/payments/\(dir)\n"), "\(dir)")
        }
        #expect(script.contains("install -d -m 0770 -o bangfu -g bangfu /var/spool/bangfu/payments /var/spool/bangfu/payments/outbox"))
        // The user exists before /etc/bangfu is given to its group.
        let user = lines.firstIndex { $0.contains("useradd") }
        let etc = lines.firstIndex { $0.contains("-g bangfu /etc/bangfu") }
        #expect(user != nil && etc != nil && user! < etc!)
    }

    @Test(arguments: services)
    func eachUnitLoadsItsKeyAsACredentialAndHidesTheOthersState(service: String) throws {
        let lines = try Self.read("deploy/systemd/bangfu-\(service).service")
        #expect(lines.contains("LoadCredential=curve-secret-key:/etc/bangfu/keys/\(service).key"))
        #expect(lines.contains("SetCredential=curve-secret-key:\\n"), "a unit without a key file still starts")
        for setting in [
            "SystemCallFilter=@system-service", "SystemCallArchitectures=native", "ProtectProc=invisible", "ProcSubset=pid",
            "RemoveIPC=yes", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "LockPersonality=yes", "MemoryDenyWriteExecute=yes",
            "PrivateDevices=yes", "RestrictNamespaces=yes", "RestrictRealtime=yes", "RestrictSUIDSGID=yes",
        ] {
            #expect(lines.contains(setting), "\(service): \(setting)")
        }
        #expect(lines.contains { $0.hasPrefix("MemoryMax=") } && lines.contains { $0.hasPrefix("TasksMax=") })
        let hidden = lines.first { $0.hasPrefix("InaccessiblePaths=") }?.dropFirst("InaccessiblePaths=".count).split(separator: " ") ?? []
        for other in Self.services where other != service { #expect(hidden.contains("-/var/lib/bangfu/\(other)"), "\(service) ↛ \(other)") }
        #expect(!hidden.contains { $0.contains("/var/lib/bangfu/\(service)") }, "its own state stays")
        #expect(!hidden.contains { $0.contains("/run/bangfu") }, "the shared socket directory stays")
        #expect(hidden.contains("-/var/spool/bangfu") == (service != "payments"))
    }
}
