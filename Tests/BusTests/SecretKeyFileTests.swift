import Foundation
import ServiceKit
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The CURVE secret key from a file or a systemd credential (DESIGN §3.5, docs/operations.md
/// §11): a key file others may read is refused; a key given in clear where others can read it
/// is warned about.
@Suite("CURVE secret key files")
struct SecretKeyFileTests {
    static let publicKey = String(repeating: "P", count: 40)
    static let secretKey = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"

    /// A fresh directory, removed by the caller.
    static func directory() throws -> String {
        let dir = NSTemporaryDirectory() + "bangfu-keys-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    static func write(_ text: String, to path: String, mode: mode_t) throws {
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        #expect(chmod(path, mode) == 0)
    }

    static func parse(_ arguments: [String], environment: [String: String] = [:]) throws -> ServiceOptions {
        try ServiceOptions.parse(
            service: "registry", arguments: ["--curve-public-key", publicKey, "--curve-clients", "/dev/null"] + arguments,
            environment: environment)
    }

    @Test func aKeyFileOfModeSixHundredIsRead() throws {
        let dir = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/registry.key"
        try Self.write(Self.secretKey + "\n", to: path, mode: 0o600)
        let byFlag = try Self.parse(["--curve-secret-key-file", path])
        #expect(byFlag.curveSecretKey == Self.secretKey)
        #expect(byFlag.curveSecretKeyFile == path)
        #expect(byFlag.cautions.isEmpty, "\(byFlag.cautions)")
        #expect(byFlag.summary.contains("curve-secret-key: (set, not shown)"))
        #expect(byFlag.summary.contains("curve-secret-key-file: \(path)"))
        #expect(!byFlag.summary.contains(Self.secretKey))
        let byEnvironment = try Self.parse([], environment: ["BANGFU_CURVE_SECRET_KEY_FILE": path])
        #expect(byEnvironment.curveSecretKey == Self.secretKey)
        let config = dir + "/registry.yaml"
        try Self.write("curve-secret-key-file: \(path)\n", to: config, mode: 0o644)
        let byFile = try Self.parse(["--config", config])
        #expect(byFile.curveSecretKey == Self.secretKey)
        #expect(byFile.cautions.isEmpty, "a config file naming the key file gives nothing away")
    }

    @Test(arguments: [0o640, 0o604, 0o644, 0o620, 0o660])
    func aKeyFileTheGroupOrOthersMayOpenIsRefused(mode: Int) throws {
        let dir = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/registry.key"
        try Self.write(Self.secretKey, to: path, mode: mode_t(mode))
        do {
            _ = try Self.parse(["--curve-secret-key-file", path])
            Issue.record("a key file of mode \(String(mode, radix: 8)) was accepted")
        } catch let error as ConfigError {
            #expect(error.message.contains(path) && error.message.contains("chmod 600"), "\(error)")
            #expect(error.message.contains(String(mode, radix: 8)), "\(error)")
        }
    }

    @Test func aKeyFileMustHoldTheKeyAloneAndItsContentIsNeverEchoed() throws {
        let dir = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/registry.key"
        for text in ["", "\n", "public: \(Self.publicKey)\nsecret: \(Self.secretKey)\n", String(Self.secretKey.dropLast())] {
            try? FileManager.default.removeItem(atPath: path)
            try Self.write(text, to: path, mode: 0o600)
            do {
                _ = try Self.parse(["--curve-secret-key-file", path])
                Issue.record("accepted \(text.debugDescription)")
            } catch let error as ConfigError {
                #expect(error.message.contains("40-character"), "\(error)")
                #expect(!error.message.contains(Self.secretKey.prefix(20)), "the file's content is not echoed")
            }
        }
        #expect(throws: ConfigError.self) { try Self.parse(["--curve-secret-key-file", dir + "/missing.key"]) }
        #expect(throws: ConfigError.self) { try Self.parse(["--curve-secret-key-file", dir]) }
        // The key and a key file together: ambiguous.
        try? FileManager.default.removeItem(atPath: path)
        try Self.write(Self.secretKey, to: path, mode: 0o600)
        #expect(throws: ConfigError.self) {
            try Self.parse(["--curve-secret-key-file", path], environment: ["BANGFU_CURVE_SECRET_KEY": Self.secretKey])
        }
    }

    @Test func systemdsCredentialIsUsedWhenNothingElseGivesTheKey() throws {
        let credentials = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: credentials) }
        let path = credentials + "/curve-secret-key"
        // systemd protects its credentials directory: the file's own mode is not checked there.
        try Self.write(Self.secretKey + "\n", to: path, mode: 0o644)
        let o = try Self.parse([], environment: ["CREDENTIALS_DIRECTORY": credentials])
        #expect(o.curveSecretKey == Self.secretKey)
        #expect(o.curveSecretKeyFile == path)
        #expect(o.origins["curve-secret-key"] == "systemd credential curve-secret-key")
        #expect(o.cautions.isEmpty)
        // Named explicitly under the credentials directory: not checked either.
        let named = try Self.parse(["--curve-secret-key-file", path], environment: ["CREDENTIALS_DIRECTORY": credentials])
        #expect(named.curveSecretKey == Self.secretKey)
        // A key given by flag, variable or file wins over the credential (like STATE_DIRECTORY).
        let other = String(repeating: "S", count: 40)
        let flagged = try Self.parse(["--curve-secret-key", other], environment: ["CREDENTIALS_DIRECTORY": credentials])
        #expect(flagged.curveSecretKey == other)
        #expect(flagged.curveSecretKeyFile == nil)
        // The units' default when /etc/bangfu/keys/<service>.key is missing: a blank credential, no key.
        try Self.write("\n", to: path, mode: 0o400)
        let none = try ServiceOptions.parse(service: "registry", arguments: [], environment: ["CREDENTIALS_DIRECTORY": credentials])
        #expect(none.curveSecretKey == nil && none.curveSecretKeyFile == nil)
        // … and a public key without the secret one is still the usual configuration error.
        #expect(throws: ConfigError.self) { try Self.parse([], environment: ["CREDENTIALS_DIRECTORY": credentials]) }
    }

    @Test func aSecretKeyInClearWhereOthersCanReadItIsWarnedAbout() throws {
        let dir = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let flagged = try Self.parse(["--curve-secret-key", Self.secretKey])
        #expect(flagged.cautions.count == 1)
        #expect(flagged.cautions.first?.contains("command line") == true, "\(flagged.cautions)")
        #expect(flagged.cautions.allSatisfy { !$0.contains(Self.secretKey) })
        let config = dir + "/registry.yaml"
        try Self.write("curve-secret-key: \"\(Self.secretKey)\"\n", to: config, mode: 0o640)
        let readable = try Self.parse(["--config", config])
        #expect(readable.curveSecretKey == Self.secretKey)
        #expect(readable.cautions.count == 1)
        #expect(
            readable.cautions.first?.contains(config) == true && readable.cautions.first?.contains("640") == true, "\(readable.cautions)")
        #expect(chmod(config, 0o600) == 0)
        #expect(try Self.parse(["--config", config]).cautions.isEmpty, "a config file only its owner reads")
        #expect(try Self.parse([], environment: ["BANGFU_CURVE_SECRET_KEY": Self.secretKey]).cautions.isEmpty)
    }
}
