import CFileIO
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The file operations the storage engine uses, behind a protocol so that
/// tests can inject faults (full disk, failed syncs, power loss).
///
/// Every method maps to one system call and reports failures as
/// ``StoreError`` with the errno's text; `ENOSPC` becomes `.unavailable`.
public protocol FileOperations: Sendable {
    func open(_ path: String, flags: Int32, mode: mode_t) throws(StoreError) -> Int32
    func close(_ fd: Int32)
    func pread(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(StoreError) -> Int
    func pwrite(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, at offset: Int) throws(StoreError)
    func fdatasync(_ fd: Int32) throws(StoreError)
    func fsync(_ fd: Int32) throws(StoreError)
    func ftruncate(_ fd: Int32, length: Int) throws(StoreError)
    func fileSize(_ fd: Int32) throws(StoreError) -> Int
    func rename(_ from: String, _ to: String) throws(StoreError)
    func unlink(_ path: String) throws(StoreError)
    func syncDirectory(_ path: String) throws(StoreError)
    /// Fills `buffer` from the page cache only, never waiting for the disk: the bytes read, or nil when
    /// not all of them are cached (or the system cannot tell). Implementations that inject faults leave
    /// this out, so that every read goes through ``pread(_:into:at:)``.
    func preadWithoutWaiting(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) -> Int?
    /// Asks the system to start reading `count` bytes at `offset` into the page cache, without waiting for
    /// them: a hint, which may do nothing. Reads of several places that may all miss the cache start them all
    /// this way first, so the disk serves them side by side instead of one after another.
    func prefetch(_ fd: Int32, offset: Int, count: Int)
}

extension FileOperations {
    public func preadWithoutWaiting(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) -> Int? { nil }
    public func prefetch(_ fd: Int32, offset: Int, count: Int) {}
}

/// Marks the reads of the calling thread as ones that may not wait for the disk: while ``run(_:)`` runs,
/// a hot segment is read from the page cache only, and any read that would wait (or a warm segment's,
/// which decompresses) throws ``StoreError/wouldBlock`` instead. An event loop answers a timeline this way
/// when it can, without the round trip through the thread pool.
enum ReadsWithoutWaiting {
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// Whether the calling thread is inside ``run(_:)``.
    static var active: Bool { pthread_getspecific(key) != nil }

    static func run<T>(_ body: () throws(StoreError) -> T) throws(StoreError) -> T {
        pthread_setspecific(key, UnsafeRawPointer(bitPattern: 1))
        defer { pthread_setspecific(key, nil) }
        return try body()
    }
}

/// The real thing: POSIX calls, retried on EINTR.
public struct PosixFileOperations: FileOperations {
    public init() {}

    static func failure(_ what: String, _ path: String = "", errno code: Int32 = errno) -> StoreError {
        let text = String(cString: strerror(code))
        let where_ = path.isEmpty ? "" : " \(path)"
        switch code {
        case ENOSPC, EDQUOT: return StoreError(.unavailable, "\(what)\(where_): \(text) (disk full)")
        default: return StoreError(.io, "\(what)\(where_): \(text)")
        }
    }

    /// Opens with `O_NOATIME` as well where the kernel allows it (the daemon owns its files): reading a
    /// segment then skips the access-time check and update that every `pread` otherwise makes.
    public func open(_ path: String, flags: Int32, mode: mode_t = 0o644) throws(StoreError) -> Int32 {
        var extra = Self.noAccessTime
        while true {
            let fd = Glibc.open(path, flags | O_CLOEXEC | extra, mode)
            if fd >= 0 { return fd }
            if errno == EPERM, extra != 0 {
                extra = 0  // not the file's owner: open it without the flag
                continue
            }
            if errno != EINTR { throw Self.failure("open", path) }
        }
    }

    private static let noAccessTime = leadtrail_o_noatime()

    public func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    public func pread(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(StoreError) -> Int {
        var done = 0
        while done < buffer.count {
            let n = Glibc.pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if n > 0 {
                done += n
            } else if n == 0 {
                break
            } else if errno != EINTR {
                throw Self.failure("read")
            }
        }
        return done
    }

    public func pwrite(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, at offset: Int) throws(StoreError) {
        var done = 0
        while done < buffer.count {
            let n = Glibc.pwrite(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if n > 0 {
                done += n
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                throw Self.failure("write", errno: n == 0 ? EIO : errno)
            }
        }
    }

    public func fdatasync(_ fd: Int32) throws(StoreError) {
        while Glibc.fdatasync(fd) != 0 {
            if errno != EINTR { throw Self.failure("fdatasync") }
        }
    }

    public func fsync(_ fd: Int32) throws(StoreError) {
        while Glibc.fsync(fd) != 0 {
            if errno != EINTR { throw Self.failure("fsync") }
        }
    }

    public func ftruncate(_ fd: Int32, length: Int) throws(StoreError) {
        while Glibc.ftruncate(fd, off_t(length)) != 0 {
            if errno != EINTR { throw Self.failure("ftruncate") }
        }
    }

    public func fileSize(_ fd: Int32) throws(StoreError) -> Int {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw Self.failure("fstat") }
        return Int(st.st_size)
    }

    public func rename(_ from: String, _ to: String) throws(StoreError) {
        guard Glibc.rename(from, to) == 0 else { throw Self.failure("rename", "\(from) -> \(to)") }
    }

    public func unlink(_ path: String) throws(StoreError) {
        guard Glibc.unlink(path) == 0 || errno == ENOENT else { throw Self.failure("unlink", path) }
    }

    public func syncDirectory(_ path: String) throws(StoreError) {
        let fd = try open(path, flags: O_RDONLY | O_DIRECTORY, mode: 0)
        defer { close(fd) }
        try fsync(fd)
    }

    public func preadWithoutWaiting(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) -> Int? {
        guard let base = buffer.baseAddress else { return 0 }
        let n = leadtrail_pread_nowait(fd, base, buffer.count, Int64(offset))
        return n == buffer.count ? n : nil
    }

    public func prefetch(_ fd: Int32, offset: Int, count: Int) {
        _ = posix_fadvise(fd, off_t(offset), off_t(count), POSIX_FADV_WILLNEED)
    }
}

/// Small helpers over a ``FileOperations``.
extension FileOperations {
    /// Reads exactly `count` bytes at `offset`, or fewer at the end of the file.
    func read(_ fd: Int32, count: Int, at offset: Int) throws(StoreError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let n = try storeErrors { try bytes.withUnsafeMutableBytes { try pread(fd, into: $0, at: offset) } }
        if n < count { bytes.removeLast(count - n) }
        return bytes
    }

    func write(_ fd: Int32, _ bytes: [UInt8], at offset: Int) throws(StoreError) {
        try storeErrors { try bytes.withUnsafeBytes { try pwrite(fd, $0, at: offset) } }
    }

    /// Writes `bytes` at `offset` in pieces of at most ``backgroundWritePiece`` bytes: for the threads no
    /// acknowledgement waits for (a seal's footer, a `.types` file, a checkpoint, an archive).
    ///
    /// The kernel here does not preempt a thread inside a system call (`CONFIG_PREEMPT_NONE`), and one write of
    /// megabytes into pages new to the page cache can take 10 ms (a 3.3 MB footer took 14 ms during a load on the
    /// 2-core VM, and the syncer on its CPU did not run meanwhile). Pinned to one CPU with a thread that sleeps
    /// 1 ms at a time, single 3.3 MB writes took up to 7-10.7 ms in 5 of 10 runs and the sleeper woke as late;
    /// in 256 KiB pieces no write took over 1.9 ms and no wake-up was over 2.7 ms late. Between pieces the thread
    /// is back in user space, where the scheduler can run the syncer or the writer.
    func writeInPieces(_ fd: Int32, _ bytes: [UInt8], at offset: Int) throws(StoreError) {
        try storeErrors {
            try bytes.withUnsafeBytes { all in
                var start = 0
                while start < all.count {
                    let end = min(all.count, start + Self.backgroundWritePiece)
                    try pwrite(fd, UnsafeRawBufferPointer(rebasing: all[start..<end]), at: offset + start)
                    start = end
                }
            }
        }
    }

    /// The largest single write of ``writeInPieces(_:_:at:)``: tenths of a millisecond of copying.
    static var backgroundWritePiece: Int { 256 << 10 }

    /// Writes `bytes` to `path` crash-safely: temporary file, sync, rename, sync the directory.
    func writeAtomically(_ bytes: [UInt8], to path: String, directory: String, crashPoint: CrashPoint? = nil) throws(StoreError) {
        let temporary = path + ".tmp"
        let fd = try open(temporary, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644)
        do throws(StoreError) {
            try writeInPieces(fd, bytes, at: 0)
            try fdatasync(fd)
        } catch {
            close(fd)
            try? unlink(temporary)
            throw error
        }
        close(fd)
        crashPoint?.reached()
        try rename(temporary, path)
        try syncDirectory(directory)
    }
}

/// Creates a directory (and its parents) if missing.
func makeDirectory(_ path: String) throws(StoreError) {
    var current = path.hasPrefix("/") ? "" : "."
    for part in path.split(separator: "/") {
        current += "/" + part
        if mkdir(current, 0o755) != 0 && errno != EEXIST {
            throw PosixFileOperations.failure("mkdir", current)
        }
    }
}

/// The names in a directory (without . and ..).
func listDirectory(_ path: String) throws(StoreError) -> [String] {
    guard let dir = opendir(path) else { throw PosixFileOperations.failure("opendir", path) }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafePointer(to: entry.pointee.d_name) {
            $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
        }
        if name != "." && name != ".." { names.append(name) }
    }
    return names.sorted()
}

/// Runs `body`, whose closures lose the thrown type in the standard library's
/// `withUnsafe...` calls, and gives its ``StoreError`` back its type.
@inline(__always)
func storeErrors<T>(_ body: () throws -> T) throws(StoreError) -> T {
    do {
        return try body()
    } catch let error as StoreError {
        throw error
    } catch {
        throw StoreError(.io, "\(error)")
    }
}
