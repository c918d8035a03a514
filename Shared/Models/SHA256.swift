/// SHA-256 (FIPS 180-4), used for content fingerprints of intake events and the audit chain.
/// Self-contained so that Models stays Foundation-only.
public struct SHA256: Sendable {
    private var h: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32) = (
        0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a, 0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19
    )
    private var buffer: [UInt8] = []
    private var length: UInt64 = 0

    private static let k: [UInt32] = [
        0x428a_2f98, 0x7137_4491, 0xb5c0_fbcf, 0xe9b5_dba5, 0x3956_c25b, 0x59f1_11f1, 0x923f_82a4, 0xab1c_5ed5,
        0xd807_aa98, 0x1283_5b01, 0x2431_85be, 0x550c_7dc3, 0x72be_5d74, 0x80de_b1fe, 0x9bdc_06a7, 0xc19b_f174,
        0xe49b_69c1, 0xefbe_4786, 0x0fc1_9dc6, 0x240c_a1cc, 0x2de9_2c6f, 0x4a74_84aa, 0x5cb0_a9dc, 0x76f9_88da,
        0x983e_5152, 0xa831_c66d, 0xb003_27c8, 0xbf59_7fc7, 0xc6e0_0bf3, 0xd5a7_9147, 0x06ca_6351, 0x1429_2967,
        0x27b7_0a85, 0x2e1b_2138, 0x4d2c_6dfc, 0x5338_0d13, 0x650a_7354, 0x766a_0abb, 0x81c2_c92e, 0x9272_2c85,
        0xa2bf_e8a1, 0xa81a_664b, 0xc24b_8b70, 0xc76c_51a3, 0xd192_e819, 0xd699_0624, 0xf40e_3585, 0x106a_a070,
        0x19a4_c116, 0x1e37_6c08, 0x2748_774c, 0x34b0_bcb5, 0x391c_0cb3, 0x4ed8_aa4a, 0x5b9c_ca4f, 0x682e_6ff3,
        0x748f_82ee, 0x78a5_636f, 0x84c8_7814, 0x8cc7_0208, 0x90be_fffa, 0xa450_6ceb, 0xbef9_a3f7, 0xc671_78f2,
    ]

    public init() {}

    public mutating func update(_ bytes: some Sequence<UInt8>) {
        if let done: Void = bytes.withContiguousStorageIfAvailable({ update(UnsafeRawBufferPointer($0)) }) {
            return done
        }
        let copy = Array(bytes)
        copy.withUnsafeBytes { update($0) }
    }

    public mutating func update(_ s: String) {
        var s = s
        s.withUTF8 { update(UnsafeRawBufferPointer($0)) }
    }

    public mutating func update(_ p: UnsafeRawBufferPointer) {
        length &+= UInt64(p.count)
        var offset = 0
        if !buffer.isEmpty {
            let take = min(64 - buffer.count, p.count)
            buffer.append(contentsOf: p[0..<take])
            offset = take
            if buffer.count == 64 {
                buffer.withUnsafeBytes { compress($0.baseAddress!) }
                buffer.removeAll(keepingCapacity: true)
            }
        }
        while offset + 64 <= p.count {
            compress(p.baseAddress! + offset)
            offset += 64
        }
        if offset < p.count { buffer.append(contentsOf: p[offset...]) }
    }

    public mutating func finalize() -> [UInt8] {
        buffer.withUnsafeBytes { rest in finish(rest, totalLength: length) }
    }

    /// Pads the last partial block (`rest`, under 64 bytes) on the stack, compresses it and
    /// writes the digest: no heap allocation but the digest's own.
    private mutating func finish(_ rest: UnsafeRawBufferPointer, totalLength: UInt64) -> [UInt8] {
        let bitLength = totalLength &* 8
        withUnsafeTemporaryAllocation(byteCount: 128, alignment: 8) { tail in
            let n = rest.count
            if n > 0 { tail.baseAddress!.copyMemory(from: rest.baseAddress!, byteCount: n) }
            tail[n] = 0x80
            let blocks = n < 56 ? 1 : 2
            let end = blocks * 64
            for i in (n + 1)..<(end - 8) { tail[i] = 0 }
            for i in 0..<8 { tail[end - 1 - i] = UInt8(truncatingIfNeeded: bitLength >> (UInt64(i) * 8)) }
            compress(UnsafeRawPointer(tail.baseAddress!))
            if blocks == 2 { compress(UnsafeRawPointer(tail.baseAddress! + 64)) }
        }
        return withUnsafeBytes(of: h) { words in
            [UInt8](unsafeUninitializedCapacity: 32) { out, count in
                for i in 0..<8 {
                    let w = words.load(fromByteOffset: i * 4, as: UInt32.self)
                    out[i * 4] = UInt8(truncatingIfNeeded: w >> 24)
                    out[i * 4 + 1] = UInt8(truncatingIfNeeded: w >> 16)
                    out[i * 4 + 2] = UInt8(truncatingIfNeeded: w >> 8)
                    out[i * 4 + 3] = UInt8(truncatingIfNeeded: w)
                }
                count = 32
            }
        }
    }

    /// One-shot digest of contiguous bytes: whole blocks straight from the input, the tail
    /// padded on the stack.
    static func digest(_ p: UnsafeRawBufferPointer) -> [UInt8] {
        var s = SHA256()
        let whole = p.count & ~63
        var offset = 0
        while offset < whole {
            s.compress(p.baseAddress! + offset)
            offset += 64
        }
        return s.finish(UnsafeRawBufferPointer(rebasing: p[whole...]), totalLength: UInt64(p.count))
    }

    mutating func compress(_ block: UnsafeRawPointer) {
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 64) { w in
            for i in 0..<16 { w[i] = UInt32(bigEndian: block.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)) }
            for i in 16..<64 {
                let s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
                let s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
                w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
            }
            var (a, b, c, d, e, f, g, hh) = h
            SHA256.k.withUnsafeBufferPointer { k in
                for i in 0..<64 {
                    let s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)
                    let ch = (e & f) ^ (~e & g)
                    let t1 = hh &+ s1 &+ ch &+ k[i] &+ w[i]
                    let s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)
                    let maj = (a & b) ^ (a & c) ^ (b & c)
                    let t2 = s0 &+ maj
                    hh = g
                    g = f
                    f = e
                    e = d &+ t1
                    d = c
                    c = b
                    b = a
                    a = t1 &+ t2
                }
            }
            h = (h.0 &+ a, h.1 &+ b, h.2 &+ c, h.3 &+ d, h.4 &+ e, h.5 &+ f, h.6 &+ g, h.7 &+ hh)
        }
    }

    @inline(__always) private func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }

    public static func hash(_ bytes: some Sequence<UInt8>) -> [UInt8] {
        if let d = bytes.withContiguousStorageIfAvailable({ digest(UnsafeRawBufferPointer($0)) }) { return d }
        return Array(bytes).withUnsafeBytes { digest($0) }
    }

    public static func hex(_ s: String) -> String {
        var s = s
        return s.withUTF8 { digest(UnsafeRawBufferPointer($0)) }.hexString
    }
}

extension Array where Element == UInt8 {
    public var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(count * 2)
        for b in self {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
