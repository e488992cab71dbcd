/** UDP (RFC 768) over IPv4 or IPv6. */
import { finish, pseudoSumV4, pseudoSumV6, sum16 } from './checksum.js';
import { PROTO_UDP, emitIpv4Header, IPV4_MIN_HEADER } from './ipv4.js';
import type { Ipv4 } from './ip.js';
import { fail, ok, type Parsed } from './result.js';

export const UDP_HEADER = 8;
export const NEXT_HEADER_UDP = 17;

export interface UdpDatagram {
  srcPort: number;
  dstPort: number;
  /** A view into the input. */
  payload: Uint8Array;
  checksum: number;
}

export type UdpError = 'truncated' | 'bad-length' | 'bad-checksum';

export type UdpChecksumContext =
  | { family: 4; src: Ipv4; dst: Ipv4 }
  | { family: 6; src: Uint8Array; dst: Uint8Array }
  | undefined;

/** Parses a UDP datagram; with a context the checksum is verified (zero means "none" over IPv4 only). */
export function parseUdp(buf: Uint8Array, ctx?: UdpChecksumContext): Parsed<UdpDatagram, UdpError> {
  if (buf.length < UDP_HEADER) return fail('truncated');
  const length = (buf[4]! << 8) | buf[5]!;
  if (length < UDP_HEADER || length > buf.length) return fail('bad-length');
  const checksum = (buf[6]! << 8) | buf[7]!;
  if (ctx) {
    if (ctx.family === 6 && checksum === 0) return fail('bad-checksum');
    if (checksum !== 0) {
      const pseudo = ctx.family === 4 ? pseudoSumV4(ctx.src, ctx.dst, length, PROTO_UDP) : pseudoSumV6(ctx.src, ctx.dst, length, NEXT_HEADER_UDP);
      if (finish(sum16(buf, 0, length, pseudo)) !== 0) return fail('bad-checksum');
    }
  }
  return ok({ srcPort: (buf[0]! << 8) | buf[1]!, dstPort: (buf[2]! << 8) | buf[3]!, payload: buf.subarray(UDP_HEADER, length), checksum });
}

/**
 * Writes the UDP header in front of a payload that is already at buf[offset + 8 ...], computing the checksum
 * for the given context. Returns the UDP length.
 */
export function emitUdpHeader(buf: Uint8Array, offset: number, srcPort: number, dstPort: number, payloadLength: number, ctx: UdpChecksumContext): number {
  const length = UDP_HEADER + payloadLength;
  if (length > 0xffff) throw new RangeError(`UDP datagram too long: ${length}`);
  // The payload must already be in the buffer: a short one would get a length field it does not match and a
  // checksum summed over missing bytes.
  if (buf.length < offset + length) throw new RangeError('emitUdpHeader: buffer too small');
  buf[offset] = srcPort >> 8;
  buf[offset + 1] = srcPort & 0xff;
  buf[offset + 2] = dstPort >> 8;
  buf[offset + 3] = dstPort & 0xff;
  buf[offset + 4] = length >> 8;
  buf[offset + 5] = length & 0xff;
  buf[offset + 6] = 0;
  buf[offset + 7] = 0;
  if (ctx) {
    const pseudo = ctx.family === 4 ? pseudoSumV4(ctx.src, ctx.dst, length, PROTO_UDP) : pseudoSumV6(ctx.src, ctx.dst, length, NEXT_HEADER_UDP);
    let c = finish(sum16(buf, offset, length, pseudo));
    if (c === 0) c = 0xffff; // RFC 768: a computed zero is sent as all ones
    buf[offset + 6] = c >> 8;
    buf[offset + 7] = c & 0xff;
  }
  return length;
}

/** A whole IPv4+UDP packet around `payload` (used by the pcap writer and raw-socket tests). */
export function buildIpv4Udp(src: Ipv4, srcPort: number, dst: Ipv4, dstPort: number, payload: Uint8Array, ttl = 64): Uint8Array {
  const out = new Uint8Array(IPV4_MIN_HEADER + UDP_HEADER + payload.length);
  out.set(payload, IPV4_MIN_HEADER + UDP_HEADER);
  emitIpv4Header({ src, dst, protocol: PROTO_UDP, payloadLength: UDP_HEADER + payload.length, ttl }, out, 0);
  emitUdpHeader(out, IPV4_MIN_HEADER, srcPort, dstPort, payload.length, { family: 4, src, dst });
  return out;
}
