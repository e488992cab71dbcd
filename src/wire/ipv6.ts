/** IPv6 header (RFC 8200 §3). Parsing trims to the payload length; trailing bytes are returned separately. */
import { fail, ok, type Parsed } from './result.js';

export const IPV6_HEADER = 40;
export const NEXT_HEADER_HOP_BY_HOP = 0;
export const NEXT_HEADER_TCP = 6;
export const NEXT_HEADER_UDP = 17;
export const NEXT_HEADER_ICMPV6 = 58;
export const NEXT_HEADER_NONE = 59; // RFC 8200 §4.7: a Teredo bubble carries nothing after the header
export const NEXT_HEADER_FRAGMENT = 44;

// Field offsets.
export const OFF_VERSION = 0;
export const OFF_PAYLOAD_LENGTH = 4;
export const OFF_NEXT_HEADER = 6;
export const OFF_HOP_LIMIT = 7;
export const OFF_SRC = 8;
export const OFF_DST = 24;

export interface Ipv6Header {
  trafficClass: number;
  flowLabel: number;
  payloadLength: number;
  nextHeader: number;
  hopLimit: number;
  /** Views into the parsed buffer: copy them to keep them. */
  src: Uint8Array;
  dst: Uint8Array;
}

export interface Ipv6Packet {
  header: Ipv6Header;
  /** Payload view (payloadLength bytes). */
  payload: Uint8Array;
  /** The whole packet, header included, without trailing bytes. */
  packet: Uint8Array;
  /** Bytes after the packet (Teredo trailers, RFC 6081 §3; link padding). */
  trailing: Uint8Array;
}

export type Ipv6Error = 'truncated' | 'bad-version' | 'bad-payload-length';

export function parseIpv6(buf: Uint8Array): Parsed<Ipv6Packet, Ipv6Error> {
  if (buf.length < IPV6_HEADER) return fail('truncated');
  if (buf[0]! >> 4 !== 6) return fail('bad-version');
  const payloadLength = (buf[OFF_PAYLOAD_LENGTH]! << 8) | buf[OFF_PAYLOAD_LENGTH + 1]!;
  // A zero length with a hop-by-hop header would be a jumbogram (RFC 2675): never over Teredo's 1280-byte MTU.
  if (IPV6_HEADER + payloadLength > buf.length) return fail('bad-payload-length');
  const end = IPV6_HEADER + payloadLength;
  return ok({
    header: {
      trafficClass: ((buf[0]! & 0x0f) << 4) | (buf[1]! >> 4),
      flowLabel: ((buf[1]! & 0x0f) << 16) | (buf[2]! << 8) | buf[3]!,
      payloadLength,
      nextHeader: buf[OFF_NEXT_HEADER]!,
      hopLimit: buf[OFF_HOP_LIMIT]!,
      src: buf.subarray(OFF_SRC, OFF_SRC + 16),
      dst: buf.subarray(OFF_DST, OFF_DST + 16),
    },
    payload: buf.subarray(IPV6_HEADER, end),
    packet: buf.subarray(0, end),
    trailing: buf.subarray(end),
  });
}

export interface Ipv6HeaderInit {
  src: Uint8Array;
  dst: Uint8Array;
  nextHeader: number;
  payloadLength: number;
  hopLimit?: number;
  trafficClass?: number;
  flowLabel?: number;
}

export function emitIpv6Header(h: Ipv6HeaderInit, buf: Uint8Array, offset = 0): number {
  if (h.payloadLength > 0xffff) throw new RangeError(`IPv6 payload too long: ${h.payloadLength}`);
  if (buf.length < offset + IPV6_HEADER) throw new RangeError('emitIpv6Header: buffer too small');
  const tc = h.trafficClass ?? 0;
  const fl = h.flowLabel ?? 0;
  // Out-of-range values would spill into the version nibble (traffic class) or lose bits silently (flow label).
  if (!Number.isInteger(tc) || tc < 0 || tc > 0xff) throw new RangeError(`IPv6 traffic class out of range: ${tc}`);
  if (!Number.isInteger(fl) || fl < 0 || fl > 0xfffff) throw new RangeError(`IPv6 flow label out of range: ${fl}`);
  buf[offset] = 0x60 | (tc >> 4);
  buf[offset + 1] = ((tc & 0x0f) << 4) | ((fl >> 16) & 0x0f);
  buf[offset + 2] = (fl >> 8) & 0xff;
  buf[offset + 3] = fl & 0xff;
  buf[offset + 4] = h.payloadLength >> 8;
  buf[offset + 5] = h.payloadLength & 0xff;
  buf[offset + 6] = h.nextHeader;
  buf[offset + 7] = h.hopLimit ?? 64;
  buf.set(h.src.subarray(0, 16), offset + OFF_SRC);
  buf.set(h.dst.subarray(0, 16), offset + OFF_DST);
  return IPV6_HEADER;
}

/** RFC 4380 §2.8: a bubble is an IPv6 header with no payload and next header 59. */
export function buildBubble(src: Uint8Array, dst: Uint8Array): Uint8Array {
  const out = new Uint8Array(IPV6_HEADER);
  emitIpv6Header({ src, dst, nextHeader: NEXT_HEADER_NONE, payloadLength: 0, hopLimit: 255 }, out, 0);
  return out;
}

/** Whether a parsed packet is a bubble (next header 59, empty payload). */
export function isBubble(h: Ipv6Header): boolean {
  return h.nextHeader === NEXT_HEADER_NONE && h.payloadLength === 0;
}

/** Quick accessors over an unparsed packet, for the forwarding fast path (caller checked the length). */
export function ipv6Src(packet: Uint8Array): Uint8Array {
  return packet.subarray(OFF_SRC, OFF_SRC + 16);
}

export function ipv6Dst(packet: Uint8Array): Uint8Array {
  return packet.subarray(OFF_DST, OFF_DST + 16);
}
