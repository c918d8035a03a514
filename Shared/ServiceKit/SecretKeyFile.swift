import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The service's CURVE secret key read from a file (DESIGN §3.5, docs/operations.md §11): the
/// `curve-secret-key-file` setting, or systemd's credential `curve-secret-key`
/// (`LoadCredential=curve-secret-key:/etc/bangfu/keys/<service>.key`, read from
/// `$CREDENTIALS_DIRECTORY`). The file holds the 40-character Z85 key alone (surrounding
/// whitespace and a final newline are ignored), as `bangfu keys generate --secret-file` writes it.
public enum SecretKeyFile {
    /// The name of the systemd credential the units load.
    public static let credentialName = "curve-secret-key"

    /// Reads the key at `path`. A file that is not under `credentialsDirectory` (which systemd
    /// makes readable by the service's user alone) must be a regular file that neither its group
    /// nor others may read or write: the service refuses to start otherwise.
    public static func read(_ path: String, credentialsDirectory: String?) throws -> String {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw ConfigError("cannot read the CURVE secret key file \(path): \(String(cString: strerror(errno)))")
        }
        guard st.st_mode & S_IFMT == S_IFREG else {
            throw ConfigError("the CURVE secret key file \(path) is not a regular file")
        }
        let mode = st.st_mode & 0o777
        if !isUnder(path, credentialsDirectory), mode & 0o077 != 0 {
            throw ConfigError(
                "the CURVE secret key file \(path) is open to its group or to others (mode \(String(mode, radix: 8))): make it readable by the service's user alone (chmod 600 \(path)), or pass it as a systemd credential (LoadCredential=)"
            )
        }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ConfigError("cannot read the CURVE secret key file \(path): \(error.localizedDescription)")
        }
        let key = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        // The content is never echoed: it is, or is close to, a secret.
        guard key.utf8.count == 40, !key.contains(where: \.isWhitespace) else {
            throw ConfigError(
                "the CURVE secret key file \(path) must hold the 40-character Z85 secret key alone (bangfu keys generate --secret-file PATH writes one)"
            )
        }
        return key
    }

    /// Whether `path` lies inside `directory`.
    static func isUnder(_ path: String, _ directory: String?) -> Bool {
        guard let directory, !directory.isEmpty else { return false }
        let dir = (directory as NSString).standardizingPath
        let p = (path as NSString).standardizingPath
        return p.hasPrefix(dir.hasSuffix("/") ? dir : dir + "/")
    }
}

extension ServiceOptions {
    /// Resolves `curve-secret-key-file`, or else systemd's credential, into `curveSecretKey`.
    /// The credential is used only when no flag, variable or config file gives the secret key
    /// or its file (like `STATE_DIRECTORY` for the state directory); an empty credential (the
    /// units' `SetCredential=` default, when `/etc/bangfu/keys/<service>.key` is missing) gives
    /// none.
    mutating func loadSecretKey(environment: [String: String]) throws {
        let credentials = environment["CREDENTIALS_DIRECTORY"].flatMap { $0.isEmpty ? nil : $0 }
        if curveSecretKey != nil, curveSecretKeyFile != nil {
            throw ConfigError(
                "curve-secret-key (\(origins["curve-secret-key"] ?? "")) and curve-secret-key-file (\(origins["curve-secret-key-file"] ?? "")) are both set: give one"
            )
        }
        if curveSecretKey == nil, curveSecretKeyFile == nil, let credentials {
            let path = (credentials as NSString).appendingPathComponent(SecretKeyFile.credentialName)
            if let data = FileManager.default.contents(atPath: path),
                !String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
            {
                curveSecretKeyFile = path
                origins["curve-secret-key-file"] = "systemd credential \(SecretKeyFile.credentialName)"
            }
        }
        guard let path = curveSecretKeyFile else { return }
        curveSecretKey = try SecretKeyFile.read(path, credentialsDirectory: credentials)
        origins["curve-secret-key"] = origins["curve-secret-key-file"]
    }

    /// Warnings about where a secret key given in clear was found.
    func secretKeyCautions(configMode: mode_t?) -> [String] {
        guard curveSecretKey != nil, curveSecretKeyFile == nil, let origin = origins["curve-secret-key"] else { return [] }
        if origin.hasPrefix("flag ") {
            return [
                "curve-secret-key is given on the command line, where every user of this host can read it (ps, /proc/PID/cmdline): use curve-secret-key-file or a systemd credential"
            ]
        }
        if origin.hasPrefix("file "), let configMode, configMode & 0o044 != 0 {
            return [
                "curve-secret-key is in \(configFile ?? "the config file"), which its group or others may read (mode \(String(configMode, radix: 8))): move the key to a file of mode 0600 (curve-secret-key-file) or a systemd credential"
            ]
        }
        return []
    }
}
