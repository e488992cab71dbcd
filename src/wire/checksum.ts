/** The Internet checksum (RFC 1071) and the IPv4/IPv6 pseudo-headers for UDP and ICMPv6. */

/** One's-complement sum of `len` bytes from `offset`, added to `initial`, not yet folded or inverted. */
export function sum16(buf: Uint8Array, offset: number, len: number, initial = 0): number {
  let s = initial;
  const end = offset + len;
  let i = offset;
  for (; i + 1 < end; i += 2) s += (buf[i]! << 8) | buf[i + 1]!;
  if (i < end) s += buf[i]! << 8;
  // Fold often enough that a double never loses precision even for jumbo inputs.
  return s;
}

export function fold(sum: number): number {
  let s = sum;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

/** The checksum field value for the data summed into `sum`. */
export function finish(sum: number): number {
  return ~fold(sum) & 0xffff;
}

/** RFC 8200 §8.1 pseudo-header sum: source, destination, upper-layer length, next header. */
export function pseudoSumV6(src: Uint8Array, dst: Uint8Array, length: number, nextHeader: number): number {
  let s = sum16(src, 0, 16);
  s = sum16(dst, 0, 16, s);
  return s + Math.floor(length / 0x10000) + (length & 0xffff) + nextHeader;
}

/** RFC 768 pseudo-header sum for IPv4 (addresses as 32-bit numbers). */
export function pseudoSumV4(src: number, dst: number, length: number, protocol: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + protocol + length;
}

/** Checksum of a standalone header such as IPv4's. */
export function internetChecksum(buf: Uint8Array, offset = 0, len = buf.length - offset): number {
  return finish(sum16(buf, offset, len));
}
