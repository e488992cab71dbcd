/**
 * Teredo on the wire (RFC 4380 §4 and §5.1.1, RFC 5991 §4): the address format, the authentication header,
 * the origin indication, and the framing order auth → origin indication → IPv6 packet.
 */
import { readIpv4, writeIpv4, type Ipv4, type Ipv4Port } from './ip.js';
import { IPV6_HEADER } from './ipv6.js';
import { fail, ok, type Parsed } from './result.js';

/** RFC 4380 §2.7: the Teredo UDP port. */
export const TEREDO_PORT = 3544;
/** RFC 4380 §2.6: the global Teredo IPv6 service prefix 2001:0000::/32. */
export const TEREDO_PREFIX = Uint8Array.of(0x20, 0x01, 0x00, 0x00);
/** The prefix Windows XP used before RFC 4380 (white paper, "Teredo Address Format"); accepted when decoding. */
export const TEREDO_LEGACY_PREFIX = Uint8Array.of(0x3f, 0xfe, 0x83, 0x1f);

/** RFC 5991 §4 flags: C R A A A A U G A A A A A A A A. */
export const FLAG_CONE = 0x8000;
export const FLAG_RESERVED = 0x4000;
export const FLAG_UNIVERSAL = 0x0200;
export const FLAG_GROUP = 0x0100;
/** The 12 random bits (RFC 5991 §4): the four after C and R, and the low eight. */
export const FLAGS_RANDOM_MASK = 0x3cff;

export interface TeredoAddress {
  /** Which service prefix the address uses. */
  prefix: 'rfc4380' | 'legacy';
  /** The Teredo server's IPv4 address (bits 32-63). */
  server: Ipv4;
  /** The 16-bit flags field as it stands in the address. */
  flags: number;
  /** The mapped (external) port, de-obfuscated. */
  mappedPort: number;
  /** The mapped (external) IPv4 address, de-obfuscated. */
  mappedAddr: Ipv4;
}

export function isTeredoAddress(addr: Uint8Array): boolean {
  return addr.length === 16 && addr[0] === 0x20 && addr[1] === 0x01 && addr[2] === 0x00 && addr[3] === 0x00;
}

/** Decodes a Teredo address (2001:0::/32, or the legacy 3ffe:831f::/32); undefined for anything else. */
export function decodeTeredoAddress(addr: Uint8Array): TeredoAddress | undefined {
  if (addr.length !== 16) return undefined;
  let prefix: TeredoAddress['prefix'];
  if (isTeredoAddress(addr)) prefix = 'rfc4380';
  else if (addr[0] === 0x3f && addr[1] === 0xfe && addr[2] === 0x83 && addr[3] === 0x1f) prefix = 'legacy';
  else return undefined;
  return {
    prefix,
    server: readIpv4(addr, 4),
    flags: (addr[8]! << 8) | addr[9]!,
    // RFC 4380 §4: port and address are stored "obfuscated", every bit inverted, so NATs do not rewrite them.
    mappedPort: ((addr[10]! << 8) | addr[11]!) ^ 0xffff,
    mappedAddr: (readIpv4(addr, 12) ^ 0xffffffff) >>> 0,
  };
}

export function encodeTeredoAddress(a: Omit<TeredoAddress, 'prefix'> & { prefix?: TeredoAddress['prefix'] }): Uint8Array {
  if (!Number.isInteger(a.flags) || a.flags < 0 || a.flags > 0xffff) throw new RangeError(`Teredo flags out of range: ${a.flags}`);
  if (!Number.isInteger(a.mappedPort) || a.mappedPort < 0 || a.mappedPort > 0xffff) throw new RangeError(`port out of range: ${a.mappedPort}`);
  const out = new Uint8Array(16);
  out.set(a.prefix === 'legacy' ? TEREDO_LEGACY_PREFIX : TEREDO_PREFIX, 0);
  writeIpv4(out, 4, a.server);
  out[8] = a.flags >> 8;
  out[9] = a.flags & 0xff;
  const port = a.mappedPort ^ 0xffff;
  out[10] = port >> 8;
  out[11] = port & 0xff;
  writeIpv4(out, 12, (a.mappedAddr ^ 0xffffffff) >>> 0);
  return out;
}

/** RFC 5991 §4: flags from the cone bit and 12 random bits (U and G stay 0, R stays 0). */
export function makeFlags(cone: boolean, random12: number): number {
  const r = random12 & 0xfff;
  return (cone ? FLAG_CONE : 0) | ((r >> 8) << 10) | (r & 0xff);
}

/** The 12 random bits of a flags field, as one number (inverse of makeFlags). */
export function randomBitsOf(flags: number): number {
  return (((flags >> 10) & 0xf) << 8) | (flags & 0xff);
}

/**
 * RFC 4380 §5.2.1: the link-local address of a Teredo interface, fe80::/64 followed by the flags, the
 * obfuscated port and the obfuscated address, as the server uses in RAs (and Miredo as their source).
 */
export function teredoLinkLocal(flags: number, mapped: Ipv4Port): Uint8Array {
  const out = new Uint8Array(16);
  out[0] = 0xfe;
  out[1] = 0x80;
  out[8] = flags >> 8;
  out[9] = flags & 0xff;
  const port = mapped.port ^ 0xffff;
  out[10] = port >> 8;
  out[11] = port & 0xff;
  writeIpv4(out, 12, (mapped.addr ^ 0xffffffff) >>> 0);
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Authentication header (RFC 4380 §5.1.1)
//
//   +--------+--------+--------+--------+
//   |  0x00  | 0x01   | ID-len | AU-len |
//   +--------+--------+--------+--------+
//   |  Client identifier (ID-len octets) |
//   |  Authentication value (AU-len)     |
//   |  Nonce (8 octets)                  |
//   |  Confirmation byte (1 octet)       |
//   +------------------------------------+

export const AUTH_INDICATOR = 0x0001;
export const ORIGIN_INDICATOR = 0x0000;
export const AUTH_FIXED_LENGTH = 13; // 4 + 8 + 1
export const ORIGIN_LENGTH = 8;
export const NONCE_LENGTH = 8;

export interface AuthHeader {
  clientId: Uint8Array;
  authValue: Uint8Array;
  nonce: Uint8Array;
  confirmation: number;
}

export function authEncodingLength(a: AuthHeader): number {
  return AUTH_FIXED_LENGTH + a.clientId.length + a.authValue.length;
}

export function emitAuthHeader(a: AuthHeader, buf: Uint8Array, offset: number): number {
  if (a.clientId.length > 255 || a.authValue.length > 255) throw new RangeError('auth header: id or value longer than 255');
  if (a.nonce.length !== NONCE_LENGTH) throw new RangeError('auth header: the nonce is 8 bytes');
  let o = offset;
  buf[o++] = 0x00;
  buf[o++] = 0x01;
  buf[o++] = a.clientId.length;
  buf[o++] = a.authValue.length;
  buf.set(a.clientId, o);
  o += a.clientId.length;
  buf.set(a.authValue, o);
  o += a.authValue.length;
  buf.set(a.nonce, o);
  o += NONCE_LENGTH;
  buf[o++] = a.confirmation & 0xff;
  return o - offset;
}

/** The origin indication (RFC 4380 §5.1.1): 0x0000, obfuscated port, obfuscated IPv4 address. */
export function emitOriginIndication(origin: Ipv4Port, buf: Uint8Array, offset: number): number {
  buf[offset] = 0;
  buf[offset + 1] = 0;
  const port = origin.port ^ 0xffff;
  buf[offset + 2] = port >> 8;
  buf[offset + 3] = port & 0xff;
  writeIpv4(buf, offset + 4, (origin.addr ^ 0xffffffff) >>> 0);
  return ORIGIN_LENGTH;
}

export function readOriginIndication(buf: Uint8Array, offset: number): Ipv4Port {
  return { port: ((buf[offset + 2]! << 8) | buf[offset + 3]!) ^ 0xffff, addr: (readIpv4(buf, offset + 4) ^ 0xffffffff) >>> 0 };
}

// ---------------------------------------------------------------------------------------------------------
// The Teredo UDP payload

export interface TeredoPacket {
  auth?: AuthHeader;
  origin?: Ipv4Port;
  /**
   * The IPv6 packet and anything after it (RFC 6081 trailers): a view into the input. Its first 40 bytes are an
   * IPv6 header with version 6; its payload length is not yet checked (use parseIpv6).
   */
  ipv6: Uint8Array;
}

export type TeredoError =
  | 'empty'
  | 'truncated'
  | 'bad-auth-length'
  | 'auth-after-origin'
  | 'repeated-auth-header'
  | 'repeated-origin-indication'
  | 'unknown-indicator'
  | 'not-ipv6';

/**
 * Splits a Teredo UDP payload into its parts (RFC 4380 §5.1.1, §5.2.3). Copies nothing: the parts are views,
 * except the auth fields, which are small copies so a core may keep them.
 */
export function parseTeredoPacket(data: Uint8Array): Parsed<TeredoPacket, TeredoError> {
  if (data.length === 0) return fail('empty');
  let o = 0;
  let auth: AuthHeader | undefined;
  let origin: Ipv4Port | undefined;
  for (;;) {
    if (data.length - o < 2) return fail('truncated');
    if (data[o] !== 0x00) break; // IPv6 starts with 0x6X: anything else non-zero is checked below
    const indicator = data[o + 1]!;
    if (indicator === 0x01) {
      if (origin) return fail('auth-after-origin'); // the authentication header, when present, comes first
      if (auth) return fail('repeated-auth-header');
      if (data.length - o < 4) return fail('truncated');
      const idLen = data[o + 2]!;
      const auLen = data[o + 3]!;
      const total = AUTH_FIXED_LENGTH + idLen + auLen;
      if (data.length - o < total) return fail('bad-auth-length');
      let p = o + 4;
      const clientId = data.slice(p, p + idLen);
      p += idLen;
      const authValue = data.slice(p, p + auLen);
      p += auLen;
      const nonce = data.slice(p, p + NONCE_LENGTH);
      p += NONCE_LENGTH;
      auth = { clientId, authValue, nonce, confirmation: data[p]! };
      o += total;
    } else if (indicator === 0x00) {
      if (origin) return fail('repeated-origin-indication');
      if (data.length - o < ORIGIN_LENGTH) return fail('truncated');
      origin = readOriginIndication(data, o);
      o += ORIGIN_LENGTH;
    } else {
      return fail('unknown-indicator');
    }
  }
  if (data[o]! >> 4 !== 6) return fail('not-ipv6');
  if (data.length - o < IPV6_HEADER) return fail('truncated');
  const value: TeredoPacket = { ipv6: data.subarray(o) };
  if (auth) value.auth = auth;
  if (origin) value.origin = origin;
  return ok(value);
}

export function teredoEncodingLength(p: TeredoPacket): number {
  return (p.auth ? authEncodingLength(p.auth) : 0) + (p.origin ? ORIGIN_LENGTH : 0) + p.ipv6.length;
}

/** Writes auth → origin indication → IPv6 at buf[offset]; returns the bytes written. */
export function emitTeredoPacket(p: TeredoPacket, buf: Uint8Array, offset = 0): number {
  const len = teredoEncodingLength(p);
  if (buf.length < offset + len) throw new RangeError('emitTeredoPacket: buffer too small');
  let o = offset;
  if (p.auth) o += emitAuthHeader(p.auth, buf, o);
  if (p.origin) o += emitOriginIndication(p.origin, buf, o);
  buf.set(p.ipv6, o);
  return o + p.ipv6.length - offset;
}

export function encodeTeredoPacket(p: TeredoPacket): Uint8Array {
  const out = new Uint8Array(teredoEncodingLength(p));
  emitTeredoPacket(p, out, 0);
  return out;
}
