import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reads a JSON Lines input one line at a time with bounded memory: from a file descriptor in
/// 64 KiB blocks, or from bytes in memory (tests). A line longer than `maxLineBytes` is skipped
/// over and reported as `.tooLong`, so one huge line cannot exhaust memory. Owned by one thread.
public final class LineReader: @unchecked Sendable {
    public enum Line: Equatable {
        /// A line (1-based number) without its line terminator.
        case text(number: Int, bytes: [UInt8])
        case tooLong(number: Int, bytes: Int)
    }

    private let fd: Int32?
    private let ownsFD: Bool
    public let name: String
    public let maxLineBytes: Int
    private var buffer: [UInt8] = []
    private var start = 0
    private var eof = false
    private var lineNumber = 0

    /// Reads `bytes` (tests, small inputs).
    public init(bytes: [UInt8], name: String = "<input>", maxLineBytes: Int = 1 << 20) {
        fd = nil
        ownsFD = false
        buffer = bytes
        eof = true
        self.name = name
        self.maxLineBytes = maxLineBytes
    }

    public convenience init(text: String, name: String = "<input>", maxLineBytes: Int = 1 << 20) {
        self.init(bytes: Array(text.utf8), name: name, maxLineBytes: maxLineBytes)
    }

    /// Reads a file descriptor (not closed unless `closeWhenDone`).
    public init(fd: Int32, name: String, maxLineBytes: Int = 1 << 20, closeWhenDone: Bool = false) {
        self.fd = fd
        ownsFD = closeWhenDone
        self.name = name
        self.maxLineBytes = maxLineBytes
    }

    /// Opens a file, or stdin for nil or "-". Throws exit 66 when it cannot be opened.
    public static func open(path: String?, maxLineBytes: Int = 1 << 20) throws(CLIError) -> LineReader {
        guard let path, path != "-" else { return LineReader(fd: 0, name: "<stdin>", maxLineBytes: maxLineBytes) }
        let fd = Glibc.open(path, O_RDONLY)
        if fd < 0 {
            throw CLIError("cannot read \(path): \(String(cString: strerror(errno)))", exitCode: ExitCodes.noInput)
        }
        var st = stat()
        if fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR {
            Glibc.close(fd)
            throw CLIError("cannot read \(path): it is a directory", exitCode: ExitCodes.noInput)
        }
        return LineReader(fd: fd, name: path, maxLineBytes: maxLineBytes, closeWhenDone: true)
    }

    deinit {
        if ownsFD, let fd { Glibc.close(fd) }
    }

    /// True when the input is a regular file (so counting its lines first is cheap and safe).
    public var isRegularFile: Bool {
        guard let fd else { return true }
        var st = stat()
        return fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }

    /// The number of non-blank lines from the current position to the end, for a progress total;
    /// rewinds afterwards. Nil when the input cannot be rewound.
    public func countRemainingLines() -> Int? {
        if fd == nil {
            var n = 0
            var k = start
            var blank = true
            while k < buffer.count {
                let b = buffer[k]
                if b == 0x0A {
                    if !blank { n += 1 }
                    blank = true
                } else if !Self.isSpace(b) {
                    blank = false
                }
                k += 1
            }
            return blank ? n : n + 1
        }
        guard let fd, isRegularFile, lineNumber == 0, start == 0, buffer.isEmpty else { return nil }
        let pos = lseek(fd, 0, SEEK_CUR)
        guard pos >= 0 else { return nil }
        defer { lseek(fd, pos, SEEK_SET) }
        var n = 0
        var blank = true
        var block = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let r = block.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if r < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if r == 0 { break }
            for k in 0..<r {
                let b = block[k]
                if b == 0x0A {
                    if !blank { n += 1 }
                    blank = true
                } else if !Self.isSpace(b) {
                    blank = false
                }
            }
        }
        return blank ? n : n + 1
    }

    static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0D || b == 0x0A }

    /// True when the line holds only spaces, tabs and carriage returns.
    public static func isBlank(_ bytes: [UInt8]) -> Bool { bytes.allSatisfy(isSpace) }

    /// The next line, or nil at the end. Throws exit 66 on a read error.
    public func next() throws(CLIError) -> Line? {
        var skipping = 0  // bytes of an over-long line already discarded
        while true {
            if let nl = buffer[start...].firstIndex(of: 0x0A) {
                lineNumber += 1
                var end = nl
                if end > start, buffer[end - 1] == 0x0D { end -= 1 }
                let line = Array(buffer[start..<end])
                start = nl + 1
                compact()
                if skipping > 0 || line.count > maxLineBytes {
                    return .tooLong(number: lineNumber, bytes: skipping + line.count)
                }
                return .text(number: lineNumber, bytes: line)
            }
            if eof {
                guard start < buffer.count || skipping > 0 else { return nil }
                lineNumber += 1
                var line = Array(buffer[start...])
                if line.last == 0x0D { line.removeLast() }
                start = buffer.count
                compact()
                if skipping > 0 || line.count > maxLineBytes {
                    return .tooLong(number: lineNumber, bytes: skipping + line.count)
                }
                return .text(number: lineNumber, bytes: line)
            }
            // No full line in hand: drop an over-long partial line, then read more.
            if buffer.count - start > maxLineBytes {
                skipping += buffer.count - start
                start = buffer.count
                compact()
            }
            try fill()
        }
    }

    private func compact() {
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        } else if start > 1 << 20 {
            buffer.removeFirst(start)
            start = 0
        }
    }

    private func fill() throws(CLIError) {
        guard let fd else {
            eof = true
            return
        }
        var block = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let r = block.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if r < 0 {
                if errno == EINTR { continue }
                throw CLIError("cannot read \(name): \(String(cString: strerror(errno)))", exitCode: ExitCodes.noInput)
            }
            if r == 0 {
                eof = true
            } else {
                buffer.append(contentsOf: block[0..<r])
            }
            return
        }
    }
}
