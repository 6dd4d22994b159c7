#if canImport(Glibc)
import Glibc
#endif
import LeadTrailWire
import Logging

/// The roles of PROTOCOL.md section 5, from least to most privileged.
///
/// Each role may do everything the roles before it may (the contract's "also").
public enum Role: Int, Sendable, Comparable, CaseIterable, CustomStringConvertible {
    case producer = 1, support, analyst, compliance, admin

    public init?(name: String) {
        switch name {
        case "producer": self = .producer
        case "support": self = .support
        case "analyst": self = .analyst
        case "compliance": self = .compliance
        case "admin": self = .admin
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .producer: "producer"
        case .support: "support"
        case .analyst: "analyst"
        case .compliance: "compliance"
        case .admin: "admin"
        }
    }

    public static func < (lhs: Role, rhs: Role) -> Bool { lhs.rawValue < rhs.rawValue }

    /// Whether reads of this role return PII masked (section 5). `compliance` reads
    /// unmasked only with a `purpose`; `admin` always unmasked.
    public func masksPII(purpose: String?) -> Bool {
        switch self {
        case .producer, .support, .analyst: true
        case .compliance: purpose?.isEmpty ?? true
        case .admin: false
        }
    }
}

/// The least role that may run each op (section 5's table); `nil` means anyone, even with no role.
public enum AccessPolicy {
    public static func minimumRole(for operation: Operation) -> Role? {
        switch operation {
        case .ping: nil
        case .append: .producer
        case .get, .timeline, .scan, .stats: .support
        case .rotate, .verify, .tier, .restore: .admin
        }
    }

    /// Whether a peer with `role` (nil: no role) may run `operation`.
    public static func allows(_ role: Role?, _ operation: Operation) -> Bool {
        guard let needed = minimumRole(for: operation) else { return true }
        guard let role else { return false }
        return role >= needed
    }
}

/// Who is on the other end of a connection, from `SO_PEERCRED`.
public struct PeerCredentials: Sendable, Equatable {
    public var pid: Int32
    public var uid: UInt32
    public var gid: UInt32

    public init(pid: Int32, uid: UInt32, gid: UInt32) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
    }
}

/// The `roles` configuration: which uids and gids hold which role.
///
/// Names given in the file are resolved to ids when it is loaded (getpwnam,
/// getgrnam), so a name that does not exist stops startup. A peer holding several
/// roles (by uid, by its primary gid from SO_PEERCRED, or by the supplementary
/// groups the user database lists for its uid) gets the most privileged one; the
/// daemon's own uid is always `admin`.
public struct RoleAssignments: Sendable, Equatable {
    public var uids: [UInt32: Role] = [:]
    public var gids: [UInt32: Role] = [:]

    public init(uids: [UInt32: Role] = [:], gids: [UInt32: Role] = [:]) {
        self.uids = uids
        self.gids = gids
    }

    /// The role of a peer, or nil when it has none: the most privileged of the roles of its uid,
    /// its primary gid and the `supplementaryGroups` given.
    public func role(of peer: PeerCredentials, daemonUID: UInt32, supplementaryGroups: [UInt32] = []) -> Role? {
        if peer.uid == daemonUID { return .admin }
        var best = uids[peer.uid]
        for gid in [peer.gid] + supplementaryGroups {
            guard let role = gids[gid] else { continue }
            best = max(best ?? role, role)
        }
        return best
    }

    /// Whether a peer's supplementary groups could change its role (so they are worth looking up).
    public func needsSupplementaryGroups(for peer: PeerCredentials, daemonUID: UInt32) -> Bool {
        guard peer.uid != daemonUID, !gids.isEmpty else { return false }
        let known = role(of: peer, daemonUID: daemonUID)
        return gids.values.contains { candidate in known.map { candidate > $0 } ?? true }
    }

    /// The supplementary groups of the user `uid` as the system's user database lists them
    /// (getpwuid_r, getgrouplist). May block on NSS: call it off the event loop.
    public static func supplementaryGroups(uid: UInt32, primaryGID: UInt32) -> [UInt32] {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var scratch = [CChar](repeating: 0, count: 16_384)
        let found = scratch.withUnsafeMutableBufferPointer { buffer -> String? in
            guard let base = buffer.baseAddress, getpwuid_r(uid_t(uid), &entry, base, buffer.count, &result) == 0,
                  result != nil, let name = entry.pw_name else { return nil }
            return String(cString: name)
        }
        guard let name = found else { return [] }
        var count: Int32 = 64
        for _ in 0..<4 {
            var groups = [gid_t](repeating: 0, count: Int(count))
            var wanted = count
            if getgrouplist(name, gid_t(primaryGID), &groups, &wanted) >= 0 {
                return groups.prefix(Int(wanted)).map { UInt32($0) }
            }
            count = max(wanted, count * 2)
        }
        return []
    }

    /// Reads `{"support": {"uids": [1001, "alice"], "gids": [2000, "staff"]}, ...}`
    /// (`users` and `groups` are accepted as other names of `uids` and `gids`).
    static func parse(_ value: ConfigValue, key: String) throws(ConfigurationError) -> RoleAssignments {
        guard case .object(let roles) = value else { throw ConfigurationError(key: key, "must be an object of role names") }
        var result = RoleAssignments()
        for (roleName, entry) in roles {
            let roleKey = "\(key).\(roleName)"
            guard let role = Role(name: roleName) else {
                throw ConfigurationError(key: roleKey, "unknown role (roles are producer, support, analyst, compliance, admin)")
            }
            guard case .object(let members) = entry else {
                throw ConfigurationError(key: roleKey, "must be an object like {\"uids\": [1001], \"gids\": [2000]}")
            }
            for (field, list) in members {
                let fieldKey = "\(roleKey).\(field)"
                let isUser: Bool
                switch field {
                case "uids", "users": isUser = true
                case "gids", "groups": isUser = false
                default: throw ConfigurationError(key: fieldKey, "unknown key (use uids and gids)")
                }
                guard case .array(let items) = list else { throw ConfigurationError(key: fieldKey, "must be a list of ids or names") }
                for item in items {
                    let id: UInt32
                    switch item {
                    case .number(let text):
                        guard let value = UInt32(text) else { throw ConfigurationError(key: fieldKey, "\(text) is not a valid id") }
                        id = value
                    case .string(let name):
                        guard let value = isUser ? Self.uid(named: name) : Self.gid(named: name) else {
                            throw ConfigurationError(key: fieldKey, "no \(isUser ? "user" : "group") named '\(name)'")
                        }
                        id = value
                    default:
                        throw ConfigurationError(key: fieldKey, "entries must be numbers or names, not \(item.typeName)")
                    }
                    if isUser {
                        result.uids[id] = max(result.uids[id] ?? role, role)
                    } else {
                        result.gids[id] = max(result.gids[id] ?? role, role)
                    }
                }
            }
        }
        return result
    }

    static func uid(named name: String) -> UInt32? {
        if let numeric = UInt32(name) { return numeric }
        guard let entry = getpwnam(name) else { return nil }
        return UInt32(entry.pointee.pw_uid)
    }

    static func gid(named name: String) -> UInt32? {
        if let numeric = UInt32(name) { return numeric }
        guard let entry = getgrnam(name) else { return nil }
        return UInt32(entry.pointee.gr_gid)
    }
}

/// Who asked, as the request handlers see it.
public struct AccessContext: Sendable {
    public var connectionID: UInt64
    public var peer: PeerCredentials
    public var role: Role?
    /// The request's `purpose`, when it carried one.
    public var purpose: String?
}

/// How events are shown to a reader. The seam where PII masking plugs in (a later issue).
///
/// The daemon passes every event it returns (already rendered with `seq`) through
/// `present` for the asking peer; the stored bytes are never changed.
public protocol EventPresenter: Sendable {
    func present(_ event: [UInt8], to reader: AccessContext) -> [UInt8]
    /// True when `present` returns every event unchanged for this reader: scans then copy the
    /// stored bytes straight into their frames without rendering each event on its own first.
    func presentsUnchanged(to reader: AccessContext) -> Bool
}

extension EventPresenter {
    public func presentsUnchanged(to reader: AccessContext) -> Bool { false }
}

/// Shows events exactly as stored: the behaviour until masking lands.
public struct UnmaskedPresenter: EventPresenter {
    public init() {}
    public func present(_ event: [UInt8], to reader: AccessContext) -> [UInt8] { event }
    public func presentsUnchanged(to reader: AccessContext) -> Bool { true }
}

/// One access to record (section 5's audit log).
public struct AccessRecord: Sendable {
    public var timeMs: Int64
    public var context: AccessContext
    public var op: String
    public var refused: Bool
    /// How many events the answer returned.
    public var eventsReturned: Int
}

/// Where access records go. The seam for the persistent audit log (a later issue).
public protocol AccessAuditor: Sendable {
    func record(_ record: AccessRecord)
}

/// Writes access records to the daemon's log (debug level; refusals at notice).
public struct LoggingAuditor: AccessAuditor {
    let logger: Logger

    public init(logger: Logger) {
        self.logger = logger
    }

    public func record(_ record: AccessRecord) {
        let metadata: Logger.Metadata = [
            "conn.id": "\(record.context.connectionID)",
            "peer.uid": "\(record.context.peer.uid)",
            "peer.role": "\(record.context.role.map { $0.description } ?? "none")",
            "op": "\(record.op)",
            "events.returned": "\(record.eventsReturned)",
            "purpose": "\(record.context.purpose ?? "")",
        ]
        if record.refused {
            logger.notice("access refused", metadata: metadata)
        } else {
            logger.debug("access", metadata: metadata)
        }
    }
}
