/** IPv4 header (RFC 791): checked parse, emit into a caller's buffer. */
import { finish, sum16 } from './checksum.js';
import { readIpv4, writeIpv4, type Ipv4 } from './ip.js';
import { fail, ok, type Parsed } from './result.js';

export const IPV4_MIN_HEADER = 20;
export const PROTO_ICMP = 1;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_IPV6 = 41; // IPv6-in-IPv4 (6to4, ISATAP)

// Field offsets.
const VER_IHL = 0;
const TOS = 1;
const TOTAL_LENGTH = 2;
const IDENT = 4;
const FLAGS_FRAG = 6;
const TTL = 8;
const PROTOCOL = 9;
const CHECKSUM = 10;
const SRC = 12;
const DST = 16;

export interface Ipv4Header {
  tos: number;
  /** Header plus payload, in bytes. */
  totalLength: number;
  identification: number;
  dontFragment: boolean;
  moreFragments: boolean;
  fragmentOffset: number; // in 8-byte units
  ttl: number;
  protocol: number;
  src: Ipv4;
  dst: Ipv4;
  /** Header length in bytes (options are kept opaque). */
  headerLength: number;
}

export type Ipv4Error = 'truncated' | 'bad-version' | 'bad-header-length' | 'bad-total-length' | 'bad-checksum';

export interface Ipv4Packet {
  header: Ipv4Header;
  /** The payload (a view into the input, trimmed to totalLength). */
  payload: Uint8Array;
}

/** Parses an IPv4 packet; link-layer padding after totalLength is ignored. */
export function parseIpv4(buf: Uint8Array, verifyChecksum = true): Parsed<Ipv4Packet, Ipv4Error> {
  if (buf.length < IPV4_MIN_HEADER) return fail('truncated');
  const v = buf[VER_IHL]!;
  if (v >> 4 !== 4) return fail('bad-version');
  const headerLength = (v & 0x0f) * 4;
  if (headerLength < IPV4_MIN_HEADER) return fail('bad-header-length');
  if (buf.length < headerLength) return fail('truncated');
  const totalLength = (buf[TOTAL_LENGTH]! << 8) | buf[TOTAL_LENGTH + 1]!;
  if (totalLength < headerLength) return fail('bad-total-length');
  if (buf.length < totalLength) return fail('truncated');
  if (verifyChecksum && finish(sum16(buf, 0, headerLength)) !== 0) return fail('bad-checksum');
  const ff = (buf[FLAGS_FRAG]! << 8) | buf[FLAGS_FRAG + 1]!;
  return ok({
    header: {
      tos: buf[TOS]!,
      totalLength,
      identification: (buf[IDENT]! << 8) | buf[IDENT + 1]!,
      dontFragment: (ff & 0x4000) !== 0,
      moreFragments: (ff & 0x2000) !== 0,
      fragmentOffset: ff & 0x1fff,
      ttl: buf[TTL]!,
      protocol: buf[PROTOCOL]!,
      src: readIpv4(buf, SRC),
      dst: readIpv4(buf, DST),
      headerLength,
    },
    payload: buf.subarray(headerLength, totalLength),
  });
}

export interface Ipv4HeaderInit {
  src: Ipv4;
  dst: Ipv4;
  protocol: number;
  payloadLength: number;
  ttl?: number;
  tos?: number;
  identification?: number;
  dontFragment?: boolean;
}

/** Writes a 20-byte header (no options) with a correct checksum; returns the bytes written. */
export function emitIpv4Header(h: Ipv4HeaderInit, buf: Uint8Array, offset = 0): number {
  const total = IPV4_MIN_HEADER + h.payloadLength;
  if (total > 0xffff) throw new RangeError(`IPv4 packet too long: ${total}`);
  if (buf.length < offset + IPV4_MIN_HEADER) throw new RangeError('emitIpv4Header: buffer too small');
  const b = buf.subarray(offset, offset + IPV4_MIN_HEADER);
  b[VER_IHL] = 0x45;
  b[TOS] = h.tos ?? 0;
  b[TOTAL_LENGTH] = total >> 8;
  b[TOTAL_LENGTH + 1] = total & 0xff;
  const id = h.identification ?? 0;
  b[IDENT] = id >> 8;
  b[IDENT + 1] = id & 0xff;
  b[FLAGS_FRAG] = h.dontFragment ? 0x40 : 0;
  b[FLAGS_FRAG + 1] = 0;
  b[TTL] = h.ttl ?? 64;
  b[PROTOCOL] = h.protocol;
  b[CHECKSUM] = 0;
  b[CHECKSUM + 1] = 0;
  writeIpv4(b, SRC, h.src);
  writeIpv4(b, DST, h.dst);
  const c = finish(sum16(b, 0, IPV4_MIN_HEADER));
  b[CHECKSUM] = c >> 8;
  b[CHECKSUM + 1] = c & 0xff;
  return IPV4_MIN_HEADER;
}
