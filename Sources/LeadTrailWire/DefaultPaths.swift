#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where the daemon keeps its data and listens, when nothing else is said.
///
/// The client and the server resolve them the same way, so a CLI with no
/// flags finds a daemon started with no flags:
/// - data directory: `$LEADTRAIL_DATA_DIR`, else `$HOME/.local/share/leadtrail`
///   (`/tmp/leadtrail-<uid>/data` when `HOME` is unset);
/// - socket: `$LEADTRAIL_SOCKET`, else `$XDG_RUNTIME_DIR/leadtrail.sock` when that
///   directory exists, else `/tmp/leadtrail-<uid>/leadtrail.sock`.
public enum DefaultPaths {
    /// The default data directory, read from the environment now.
    public static var dataDirectory: String {
        dataDirectory(environment: currentEnvironment(), uid: currentUID())
    }

    /// The default socket path, read from the environment now.
    public static var socketPath: String {
        socketPath(environment: currentEnvironment(), uid: currentUID(), directoryExists: directoryExists)
    }

    /// The default data directory for a given environment (pure, for tests).
    public static func dataDirectory(environment: [String: String], uid: UInt32) -> String {
        if let dir = environment["LEADTRAIL_DATA_DIR"], !dir.isEmpty { return dir }
        if let home = environment["HOME"], !home.isEmpty { return join(home, ".local/share/leadtrail") }
        return "/tmp/leadtrail-\(uid)/data"
    }

    /// The default socket path for a given environment (pure, for tests).
    public static func socketPath(environment: [String: String], uid: UInt32, directoryExists: (String) -> Bool) -> String {
        if let path = environment["LEADTRAIL_SOCKET"], !path.isEmpty { return path }
        if let runtime = environment["XDG_RUNTIME_DIR"], !runtime.isEmpty, directoryExists(runtime) {
            return join(runtime, "leadtrail.sock")
        }
        return "/tmp/leadtrail-\(uid)/leadtrail.sock"
    }

    static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    static func currentEnvironment() -> [String: String] {
        var environment: [String: String] = [:]
        for key in ["LEADTRAIL_DATA_DIR", "LEADTRAIL_SOCKET", "XDG_RUNTIME_DIR", "HOME"] {
            if let value = getenv(key) { environment[key] = String(cString: value) }
        }
        return environment
    }

    static func currentUID() -> UInt32 { UInt32(getuid()) }

    /// Whether `path` names an existing directory.
    public static func directoryExists(_ path: String) -> Bool {
        var info = stat()
        guard stat(path, &info) == 0 else { return false }
        return (info.st_mode & S_IFMT) == S_IFDIR
    }
}
