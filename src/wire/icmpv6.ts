/**
 * ICMPv6 (RFC 4443) and the Neighbor Discovery messages (RFC 4861) that Teredo, ISATAP and 6to4 use:
 * echo, Router Solicitation/Advertisement with Prefix Information, MTU and link-layer options,
 * Neighbor Solicitation/Advertisement, and the error messages. Checksums use the IPv6 pseudo-header.
 */
import { finish, pseudoSumV6, sum16 } from './checksum.js';
import { emitIpv6Header, IPV6_HEADER, NEXT_HEADER_ICMPV6, parseIpv6 } from './ipv6.js';
import { fail, ok, type Parsed } from './result.js';

export const ICMPV6_DEST_UNREACHABLE = 1;
export const ICMPV6_PACKET_TOO_BIG = 2;
export const ICMPV6_TIME_EXCEEDED = 3;
export const ICMPV6_PARAM_PROBLEM = 4;
export const ICMPV6_ECHO_REQUEST = 128;
export const ICMPV6_ECHO_REPLY = 129;
export const ICMPV6_ROUTER_SOLICITATION = 133;
export const ICMPV6_ROUTER_ADVERTISEMENT = 134;
export const ICMPV6_NEIGHBOR_SOLICITATION = 135;
export const ICMPV6_NEIGHBOR_ADVERTISEMENT = 136;

export const OPT_SOURCE_LINK_LAYER = 1;
export const OPT_TARGET_LINK_LAYER = 2;
export const OPT_PREFIX_INFORMATION = 3;
export const OPT_MTU = 5;

/** RFC 4443 §2.4(c): an error message carries as much of the invoking packet as fits in the minimum MTU. */
export const MIN_MTU = 1280;

export type NdpOption =
  | { type: 'source-link-layer'; address: Uint8Array }
  | { type: 'target-link-layer'; address: Uint8Array }
  | {
      type: 'prefix-information';
      prefixLength: number;
      onLink: boolean;
      autonomous: boolean;
      validLifetime: number;
      preferredLifetime: number;
      prefix: Uint8Array;
    }
  | { type: 'mtu'; mtu: number }
  | { type: 'unknown'; optionType: number; data: Uint8Array };

export type Icmpv6Message =
  | { type: 'echo-request' | 'echo-reply'; identifier: number; sequence: number; data: Uint8Array }
  | { type: 'router-solicitation'; options: NdpOption[] }
  | {
      type: 'router-advertisement';
      curHopLimit: number;
      managed: boolean;
      other: boolean;
      routerLifetime: number;
      reachableTime: number;
      retransTimer: number;
      options: NdpOption[];
    }
  | { type: 'neighbor-solicitation'; target: Uint8Array; options: NdpOption[] }
  | { type: 'neighbor-advertisement'; router: boolean; solicited: boolean; override: boolean; target: Uint8Array; options: NdpOption[] }
  | { type: 'destination-unreachable'; code: number; invoking: Uint8Array }
  | { type: 'packet-too-big'; mtu: number; invoking: Uint8Array }
  | { type: 'time-exceeded'; code: number; invoking: Uint8Array }
  | { type: 'parameter-problem'; code: number; pointer: number; invoking: Uint8Array }
  | { type: 'other'; icmpType: number; code: number; body: Uint8Array };

export type Icmpv6Error = 'truncated' | 'bad-checksum' | 'bad-code' | 'bad-option-length' | 'bad-option';

/** Destination unreachable codes (RFC 4443 §3.1). */
export const UNREACH_NO_ROUTE = 0;
export const UNREACH_ADMIN = 1;
export const UNREACH_ADDRESS = 3;
export const UNREACH_PORT = 4;

function u16(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}

function u32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

function put16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >> 8) & 0xff;
  b[o + 1] = v & 0xff;
}

function put32(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 24) & 0xff;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}

/** RFC 4861 §4.6: options are TLVs in units of 8 octets; a zero length is invalid. */
export function parseNdpOptions(buf: Uint8Array): Parsed<NdpOption[], Icmpv6Error> {
  const options: NdpOption[] = [];
  let o = 0;
  while (o < buf.length) {
    if (o + 2 > buf.length) return fail('truncated');
    const type = buf[o]!;
    const len = buf[o + 1]! * 8;
    if (len === 0) return fail('bad-option-length');
    if (o + len > buf.length) return fail('truncated');
    const body = buf.subarray(o, o + len);
    switch (type) {
      case OPT_SOURCE_LINK_LAYER:
      case OPT_TARGET_LINK_LAYER:
        options.push({ type: type === OPT_SOURCE_LINK_LAYER ? 'source-link-layer' : 'target-link-layer', address: body.slice(2) });
        break;
      case OPT_PREFIX_INFORMATION:
        if (len !== 32) return fail('bad-option-length'); // RFC 4861 §4.6.2: length 4
        if (body[2]! > 128) return fail('bad-option');
        options.push({
          type: 'prefix-information',
          prefixLength: body[2]!,
          onLink: (body[3]! & 0x80) !== 0,
          autonomous: (body[3]! & 0x40) !== 0,
          validLifetime: u32(body, 4),
          preferredLifetime: u32(body, 8),
          prefix: body.slice(16, 32),
        });
        break;
      case OPT_MTU:
        if (len !== 8) return fail('bad-option-length'); // RFC 4861 §4.6.4: length 1
        options.push({ type: 'mtu', mtu: u32(body, 4) });
        break;
      default:
        options.push({ type: 'unknown', optionType: type, data: body.slice(2) });
    }
    o += len;
  }
  return ok(options);
}

function optionLength(opt: NdpOption): number {
  switch (opt.type) {
    case 'source-link-layer':
    case 'target-link-layer':
      return Math.ceil((2 + opt.address.length) / 8) * 8;
    case 'prefix-information':
      return 32;
    case 'mtu':
      return 8;
    case 'unknown':
      return Math.ceil((2 + opt.data.length) / 8) * 8;
  }
}

function emitOption(opt: NdpOption, buf: Uint8Array, o: number): number {
  const len = optionLength(opt);
  // RFC 4861 §4.6: the length is one octet in units of 8 octets; a longer option would wrap to an invalid 0.
  if (len > 255 * 8) throw new RangeError(`NDP option too long: ${len} bytes`);
  buf.fill(0, o, o + len);
  buf[o + 1] = len / 8;
  switch (opt.type) {
    case 'source-link-layer':
    case 'target-link-layer':
      buf[o] = opt.type === 'source-link-layer' ? OPT_SOURCE_LINK_LAYER : OPT_TARGET_LINK_LAYER;
      buf.set(opt.address, o + 2);
      break;
    case 'prefix-information':
      buf[o] = OPT_PREFIX_INFORMATION;
      buf[o + 2] = opt.prefixLength;
      buf[o + 3] = (opt.onLink ? 0x80 : 0) | (opt.autonomous ? 0x40 : 0);
      put32(buf, o + 4, opt.validLifetime);
      put32(buf, o + 8, opt.preferredLifetime);
      buf.set(opt.prefix.subarray(0, 16), o + 16);
      break;
    case 'mtu':
      buf[o] = OPT_MTU;
      put32(buf, o + 4, opt.mtu);
      break;
    case 'unknown':
      buf[o] = opt.optionType;
      buf.set(opt.data, o + 2);
      break;
  }
  return len;
}

function optionsLength(options: NdpOption[]): number {
  let n = 0;
  for (const opt of options) n += optionLength(opt);
  return n;
}

/**
 * Parses an ICMPv6 message (the IPv6 payload). With src and dst the checksum is verified.
 * RFC 4861 validity checks that need the IPv6 header (hop limit 255) are left to the caller.
 */
export function parseIcmpv6(body: Uint8Array, src?: Uint8Array, dst?: Uint8Array): Parsed<Icmpv6Message, Icmpv6Error> {
  if (body.length < 4) return fail('truncated');
  if (src && dst) {
    if (finish(sum16(body, 0, body.length, pseudoSumV6(src, dst, body.length, NEXT_HEADER_ICMPV6))) !== 0) return fail('bad-checksum');
  }
  const type = body[0]!;
  const code = body[1]!;
  const ndp = (fixed: number): Parsed<NdpOption[], Icmpv6Error> => {
    if (code !== 0) return fail('bad-code'); // RFC 4861 §6.1.1, §6.1.2, §7.1.1, §7.1.2
    if (body.length < fixed) return fail('truncated');
    return parseNdpOptions(body.subarray(fixed));
  };
  switch (type) {
    case ICMPV6_ECHO_REQUEST:
    case ICMPV6_ECHO_REPLY:
      if (body.length < 8) return fail('truncated');
      return ok({ type: type === ICMPV6_ECHO_REQUEST ? 'echo-request' : 'echo-reply', identifier: u16(body, 4), sequence: u16(body, 6), data: body.subarray(8) });
    case ICMPV6_ROUTER_SOLICITATION: {
      const opts = ndp(8);
      return opts.ok ? ok({ type: 'router-solicitation', options: opts.value }) : opts;
    }
    case ICMPV6_ROUTER_ADVERTISEMENT: {
      const opts = ndp(16);
      if (!opts.ok) return opts;
      return ok({
        type: 'router-advertisement',
        curHopLimit: body[4]!,
        managed: (body[5]! & 0x80) !== 0,
        other: (body[5]! & 0x40) !== 0,
        routerLifetime: u16(body, 6),
        reachableTime: u32(body, 8),
        retransTimer: u32(body, 12),
        options: opts.value,
      });
    }
    case ICMPV6_NEIGHBOR_SOLICITATION: {
      const opts = ndp(24);
      return opts.ok ? ok({ type: 'neighbor-solicitation', target: body.slice(8, 24), options: opts.value }) : opts;
    }
    case ICMPV6_NEIGHBOR_ADVERTISEMENT: {
      const opts = ndp(24);
      if (!opts.ok) return opts;
      const f = body[4]!;
      return ok({ type: 'neighbor-advertisement', router: (f & 0x80) !== 0, solicited: (f & 0x40) !== 0, override: (f & 0x20) !== 0, target: body.slice(8, 24), options: opts.value });
    }
    case ICMPV6_DEST_UNREACHABLE:
    case ICMPV6_TIME_EXCEEDED:
      if (body.length < 8) return fail('truncated');
      return ok({ type: type === ICMPV6_DEST_UNREACHABLE ? 'destination-unreachable' : 'time-exceeded', code, invoking: body.subarray(8) });
    case ICMPV6_PACKET_TOO_BIG:
      if (body.length < 8) return fail('truncated');
      return ok({ type: 'packet-too-big', mtu: u32(body, 4), invoking: body.subarray(8) });
    case ICMPV6_PARAM_PROBLEM:
      if (body.length < 8) return fail('truncated');
      return ok({ type: 'parameter-problem', code, pointer: u32(body, 4), invoking: body.subarray(8) });
    default:
      return ok({ type: 'other', icmpType: type, code, body: body.subarray(4) });
  }
}

export function icmpv6EncodingLength(m: Icmpv6Message): number {
  switch (m.type) {
    case 'echo-request':
    case 'echo-reply':
      return 8 + m.data.length;
    case 'router-solicitation':
      return 8 + optionsLength(m.options);
    case 'router-advertisement':
      return 16 + optionsLength(m.options);
    case 'neighbor-solicitation':
    case 'neighbor-advertisement':
      return 24 + optionsLength(m.options);
    case 'destination-unreachable':
    case 'time-exceeded':
    case 'packet-too-big':
    case 'parameter-problem':
      return 8 + m.invoking.length;
    case 'other':
      return 4 + m.body.length;
  }
}

/** Writes the message at buf[offset] with its checksum for (src, dst); returns the bytes written. */
export function emitIcmpv6(m: Icmpv6Message, src: Uint8Array, dst: Uint8Array, buf: Uint8Array, offset = 0): number {
  const len = icmpv6EncodingLength(m);
  if (buf.length < offset + len) throw new RangeError('emitIcmpv6: buffer too small');
  const b = buf.subarray(offset, offset + len);
  b.fill(0, 0, Math.min(len, 24));
  let o = 0;
  const putOptions = (options: NdpOption[], at: number): void => {
    o = at;
    for (const opt of options) o += emitOption(opt, b, o);
  };
  switch (m.type) {
    case 'echo-request':
    case 'echo-reply':
      b[0] = m.type === 'echo-request' ? ICMPV6_ECHO_REQUEST : ICMPV6_ECHO_REPLY;
      put16(b, 4, m.identifier);
      put16(b, 6, m.sequence);
      b.set(m.data, 8);
      break;
    case 'router-solicitation':
      b[0] = ICMPV6_ROUTER_SOLICITATION;
      putOptions(m.options, 8);
      break;
    case 'router-advertisement':
      b[0] = ICMPV6_ROUTER_ADVERTISEMENT;
      b[4] = m.curHopLimit;
      b[5] = (m.managed ? 0x80 : 0) | (m.other ? 0x40 : 0);
      put16(b, 6, m.routerLifetime);
      put32(b, 8, m.reachableTime);
      put32(b, 12, m.retransTimer);
      putOptions(m.options, 16);
      break;
    case 'neighbor-solicitation':
      b[0] = ICMPV6_NEIGHBOR_SOLICITATION;
      b.set(m.target.subarray(0, 16), 8);
      putOptions(m.options, 24);
      break;
    case 'neighbor-advertisement':
      b[0] = ICMPV6_NEIGHBOR_ADVERTISEMENT;
      b[4] = (m.router ? 0x80 : 0) | (m.solicited ? 0x40 : 0) | (m.override ? 0x20 : 0);
      b.set(m.target.subarray(0, 16), 8);
      putOptions(m.options, 24);
      break;
    case 'destination-unreachable':
    case 'time-exceeded':
      b[0] = m.type === 'destination-unreachable' ? ICMPV6_DEST_UNREACHABLE : ICMPV6_TIME_EXCEEDED;
      b[1] = m.code;
      b.set(m.invoking, 8);
      break;
    case 'packet-too-big':
      b[0] = ICMPV6_PACKET_TOO_BIG;
      put32(b, 4, m.mtu);
      b.set(m.invoking, 8);
      break;
    case 'parameter-problem':
      b[0] = ICMPV6_PARAM_PROBLEM;
      b[1] = m.code;
      put32(b, 4, m.pointer);
      b.set(m.invoking, 8);
      break;
    case 'other':
      b[0] = m.icmpType;
      b[1] = m.code;
      b.set(m.body, 4);
      break;
  }
  b[2] = 0;
  b[3] = 0;
  const c = finish(sum16(b, 0, len, pseudoSumV6(src, dst, len, NEXT_HEADER_ICMPV6)));
  put16(b, 2, c);
  return len;
}

/** A whole IPv6 packet carrying one ICMPv6 message. NDP messages get hop limit 255 (RFC 4861 §6.1). */
export function buildIcmpv6Packet(src: Uint8Array, dst: Uint8Array, m: Icmpv6Message, hopLimit?: number): Uint8Array {
  const len = icmpv6EncodingLength(m);
  const out = new Uint8Array(IPV6_HEADER + len);
  const ndp = m.type === 'router-solicitation' || m.type === 'router-advertisement' || m.type === 'neighbor-solicitation' || m.type === 'neighbor-advertisement';
  emitIpv6Header({ src, dst, nextHeader: NEXT_HEADER_ICMPV6, payloadLength: len, hopLimit: hopLimit ?? (ndp ? 255 : 64) }, out, 0);
  emitIcmpv6(m, src, dst, out, IPV6_HEADER);
  return out;
}

/**
 * RFC 4443 §2.4(c): the invoking packet, cut so that the error message fits in the minimum MTU.
 */
export function invokingPacket(packet: Uint8Array): Uint8Array {
  return packet.subarray(0, Math.min(packet.length, MIN_MTU - IPV6_HEADER - 8));
}

export type ParsedIcmpv6Packet = { hopLimit: number; src: Uint8Array; dst: Uint8Array; message: Icmpv6Message };

/** Parses an IPv6 packet that must carry ICMPv6 directly (no extension headers), verifying the checksum. */
export function parseIcmpv6Packet(packet: Uint8Array): Parsed<ParsedIcmpv6Packet, Icmpv6Error | 'bad-version' | 'bad-payload-length' | 'not-icmpv6'> {
  const p = parseIpv6(packet);
  if (!p.ok) return p;
  if (p.value.header.nextHeader !== NEXT_HEADER_ICMPV6) return fail('not-icmpv6');
  const m = parseIcmpv6(p.value.payload, p.value.header.src, p.value.header.dst);
  if (!m.ok) return m;
  return ok({ hopLimit: p.value.header.hopLimit, src: p.value.header.src, dst: p.value.header.dst, message: m.value });
}
