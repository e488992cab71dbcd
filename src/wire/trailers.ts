/**
 * RFC 6081 §4 trailers: type-length-value entries after the IPv6 packet in a Teredo datagram (allowed since
 * RFC 6081 §4 relaxes "consistent" to "the IPv6 packet is no longer than the UDP payload").
 */
import { readIpv4, writeIpv4, type Ipv4Port } from './ip.js';
import { fail, ok, type Parsed } from './result.js';

/** RFC 6081 §4.2. */
export const TRAILER_NONCE = 0x01;
/** RFC 6081 §4.3. */
export const TRAILER_ALTERNATE_ADDRESS = 0x03;
/** RFC 6081 §4.4. */
export const TRAILER_ND_OPTION = 0x04;
/** RFC 6081 §4.5 says 0x05 while its IANA table (§9) says 0x02: both are read. */
export const TRAILER_RANDOM_PORT = 0x05;
export const TRAILER_RANDOM_PORT_IANA = 0x02;

export interface Trailers {
  /** 4-byte nonce (Symmetric NAT Support and Hairpinning extensions). */
  nonce?: Uint8Array;
  /** Alternate addresses/ports of the sender (Hairpinning extension), at most 4. */
  alternateAddresses?: Ipv4Port[];
  /** ND option trailer: 0 = solicitation (Server Load Reduction), 1 = advertisement. */
  ndOption?: number;
  /** Random port (Sequential Port-Symmetric NAT extension). */
  randomPort?: number;
}

export type TrailerError = 'discard-unknown-trailer';

/**
 * RFC 6081 §5.1.2: trailers are processed in order; processing stops at the first malformed one; an unknown
 * type whose two high bits are 01 means the whole packet is discarded, any other unknown type is skipped.
 */
export function parseTrailers(buf: Uint8Array): Parsed<Trailers, TrailerError> {
  const out: Trailers = {};
  let o = 0;
  while (buf.length - o >= 2) {
    const type = buf[o]!;
    const len = buf[o + 1]!;
    if (buf.length - o < 2 + len) break; // malformed: stop processing
    const v = buf.subarray(o + 2, o + 2 + len);
    switch (type) {
      case TRAILER_NONCE:
        if (len === 4) out.nonce = v.slice();
        break;
      case TRAILER_ALTERNATE_ADDRESS:
        // 2 reserved bytes, then 6 bytes per address/port; 8, 14, 20 or 26 bytes (RFC 6081 §4.3).
        if (len >= 8 && len <= 26 && (len - 2) % 6 === 0) {
          const list: Ipv4Port[] = [];
          for (let p = 2; p + 6 <= len; p += 6) list.push({ addr: readIpv4(v, p), port: (v[p + 4]! << 8) | v[p + 5]! });
          out.alternateAddresses = list;
        }
        break;
      case TRAILER_ND_OPTION:
        if (len === 1) out.ndOption = v[0]!;
        break;
      case TRAILER_RANDOM_PORT:
      case TRAILER_RANDOM_PORT_IANA:
        if (len === 2) out.randomPort = (v[0]! << 8) | v[1]!;
        break;
      default:
        if ((type & 0xc0) === 0x40) return fail('discard-unknown-trailer');
    }
    o += 2 + len;
  }
  return ok(out);
}

export function trailersEncodingLength(t: Trailers): number {
  let n = 0;
  if (t.nonce) n += 6;
  if (t.alternateAddresses && t.alternateAddresses.length > 0) n += 4 + 6 * Math.min(4, t.alternateAddresses.length);
  if (t.ndOption !== undefined) n += 3;
  if (t.randomPort !== undefined) n += 4;
  return n;
}

export function emitTrailers(t: Trailers, buf: Uint8Array, offset: number): number {
  let o = offset;
  if (t.nonce) {
    if (t.nonce.length !== 4) throw new RangeError('the nonce trailer carries 4 bytes');
    buf[o++] = TRAILER_NONCE;
    buf[o++] = 4;
    buf.set(t.nonce, o);
    o += 4;
  }
  if (t.alternateAddresses && t.alternateAddresses.length > 0) {
    const list = t.alternateAddresses.slice(0, 4);
    buf[o++] = TRAILER_ALTERNATE_ADDRESS;
    buf[o++] = 2 + 6 * list.length;
    buf[o++] = 0;
    buf[o++] = 0;
    for (const a of list) {
      writeIpv4(buf, o, a.addr);
      buf[o + 4] = a.port >> 8;
      buf[o + 5] = a.port & 0xff;
      o += 6;
    }
  }
  if (t.ndOption !== undefined) {
    buf[o++] = TRAILER_ND_OPTION;
    buf[o++] = 1;
    buf[o++] = t.ndOption & 0xff;
  }
  if (t.randomPort !== undefined) {
    buf[o++] = TRAILER_RANDOM_PORT;
    buf[o++] = 2;
    buf[o++] = t.randomPort >> 8;
    buf[o++] = t.randomPort & 0xff;
  }
  return o - offset;
}

/** Appends trailers to a copy of an IPv6 packet. */
export function withTrailers(packet: Uint8Array, t: Trailers): Uint8Array {
  const n = trailersEncodingLength(t);
  if (n === 0) return packet;
  const out = new Uint8Array(packet.length + n);
  out.set(packet, 0);
  emitTrailers(t, out, packet.length);
  return out;
}
