/**
 * ISATAP addresses (RFC 5214 §6.1): any 64-bit unicast prefix followed by the interface identifier
 * 00-00-5E-FE-w.x.y.z in modified EUI-64 form, where the u-bit says whether w.x.y.z is globally unique.
 *
 *   | 64-bit prefix | 0000:5efe (private IPv4) or 0200:5efe (public IPv4) | w.x.y.z |
 *
 * Also the IPv4 range names that decide that u-bit, shared with the 6to4 codec and the `addr` command.
 */
import { isGlobalIpv4, readIpv4, writeIpv4, formatIpv4, type Ipv4 } from './ip.js';

/** RFC 5214 §6.1: the IANA OUI 00-00-5E followed by the type 0xFE that marks an embedded IPv4 address. */
export const ISATAP_OUI_TYPE = 0x5efe;
/** The universal/local bit in the first octet of a modified EUI-64 interface identifier (RFC 4291 Appendix A). */
export const IID_UNIVERSAL_BIT = 0x02;
/** The individual/group bit next to it. */
export const IID_GROUP_BIT = 0x01;

/**
 * The 8-byte ISATAP interface identifier: 0000:5efe:WWXX:YYZZ for a private IPv4 address,
 * 0200:5efe:WWXX:YYZZ for a public one (RFC 5214 §6.1: u = 1 when the IPv4 address is known to be global).
 */
export function isatapInterfaceId(ipv4: Ipv4, isPublic: boolean): Uint8Array {
  const out = new Uint8Array(8);
  out[0] = isPublic ? IID_UNIVERSAL_BIT : 0;
  out[1] = 0;
  out[2] = ISATAP_OUI_TYPE >> 8;
  out[3] = ISATAP_OUI_TYPE & 0xff;
  writeIpv4(out, 4, ipv4);
  return out;
}

/**
 * The ISATAP address for a 64-bit prefix (the first 8 bytes of `prefix64`, which may be a full 16-byte address)
 * and an IPv4 address. The u-bit follows the IPv4 address unless `isPublic` says otherwise.
 */
export function isatapAddress(prefix64: Uint8Array, ipv4: Ipv4, isPublic: boolean = !isPrivateIpv4(ipv4)): Uint8Array {
  if (prefix64.length < 8) throw new RangeError(`ISATAP prefix needs 8 bytes, got ${prefix64.length}`);
  const out = new Uint8Array(16);
  out.set(prefix64.subarray(0, 8), 0);
  out.set(isatapInterfaceId(ipv4, isPublic), 8);
  return out;
}

export interface IsatapAddress {
  /** The embedded IPv4 address (the tunnel endpoint: IPv6 to this address goes in IPv4 protocol 41 to it). */
  ipv4: Ipv4;
  /** What the u-bit claims: the IPv4 address is globally unique (0200:5efe). Same as universalLocalBit. */
  ipv4Public: boolean;
  /** The u-bit as written. */
  universalLocalBit: boolean;
  /** The g-bit as written: 0100:5efe / 0300:5efe are group forms RFC 5214 does not assign to interfaces. */
  groupBit: boolean;
  /** The 64-bit prefix, 8 bytes (a copy). */
  prefix: Uint8Array;
}

/**
 * Decodes the ISATAP interface identifier of any 16-byte address, whatever its prefix (link-local fe80::/64, unique
 * local or global); undefined when bytes 8-15 are not xx00:5efe:w.x.y.z with xx in 00-03. Which prefixes make
 * sense is left to the caller.
 */
export function decodeIsatap(addr: Uint8Array): IsatapAddress | undefined {
  if (addr.length !== 16) return undefined;
  const first = addr[8]!;
  if ((first & ~(IID_UNIVERSAL_BIT | IID_GROUP_BIT)) !== 0) return undefined;
  if (addr[9] !== 0 || addr[10] !== ISATAP_OUI_TYPE >> 8 || addr[11] !== (ISATAP_OUI_TYPE & 0xff)) return undefined;
  const universal = (first & IID_UNIVERSAL_BIT) !== 0;
  return {
    ipv4: readIpv4(addr, 12),
    ipv4Public: universal,
    universalLocalBit: universal,
    groupBit: (first & IID_GROUP_BIT) !== 0,
    prefix: addr.slice(0, 8),
  };
}

/**
 * Whether an IPv4 address gets the u-bit 0 in an ISATAP interface identifier: RFC 1918 private space and every
 * other range src/wire/ip.ts isGlobalIpv4 does not count as global (loopback, link-local, "this network",
 * multicast, reserved, the 6to4 relay anycast). The documentation ranges count as public.
 */
export function isPrivateIpv4(ipv4: Ipv4): boolean {
  return !isGlobalIpv4(ipv4);
}

export interface Ipv4Range {
  /** The range in CIDR form, e.g. "10.0.0.0/8". */
  cidr: string;
  /** What it is, with its RFC, e.g. "private (RFC 1918)". */
  name: string;
  /** Whether isGlobalIpv4 counts addresses in it as global. */
  global: boolean;
}

const RANGES: readonly { base: number; bits: number; name: string; global: boolean }[] = [
  { base: 0x00000000, bits: 8, name: '"this network" (RFC 791, RFC 6890)', global: false },
  { base: 0x0a000000, bits: 8, name: 'private (RFC 1918)', global: false },
  { base: 0x64400000, bits: 10, name: 'shared address space for carrier-grade NAT (RFC 6598)', global: true },
  { base: 0x7f000000, bits: 8, name: 'loopback (RFC 1122)', global: false },
  { base: 0xa9fe0000, bits: 16, name: 'link-local (RFC 3927)', global: false },
  { base: 0xac100000, bits: 12, name: 'private (RFC 1918)', global: false },
  { base: 0xc0000200, bits: 24, name: 'documentation TEST-NET-1 (RFC 5737)', global: true },
  { base: 0xc0586300, bits: 24, name: '6to4 relay anycast (RFC 3068, deprecated by RFC 7526)', global: false },
  { base: 0xc0a80000, bits: 16, name: 'private (RFC 1918)', global: false },
  { base: 0xc6120000, bits: 15, name: 'benchmarking (RFC 2544)', global: true },
  { base: 0xc6336400, bits: 24, name: 'documentation TEST-NET-2 (RFC 5737)', global: true },
  { base: 0xcb007100, bits: 24, name: 'documentation TEST-NET-3 (RFC 5737)', global: true },
  { base: 0xe0000000, bits: 4, name: 'multicast (RFC 5771)', global: false },
  { base: 0xffffffff, bits: 32, name: 'limited broadcast (RFC 919)', global: false },
  { base: 0xf0000000, bits: 4, name: 'reserved (RFC 1112)', global: false },
];

/**
 * The special-purpose range an IPv4 address falls in, if any (RFC 6890 names), with whether this project treats it
 * as global; undefined for ordinary public addresses. Agrees with isGlobalIpv4 on every address.
 */
export function specialIpv4Range(ipv4: Ipv4): Ipv4Range | undefined {
  for (const r of RANGES) {
    const mask = r.bits === 0 ? 0 : (0xffffffff << (32 - r.bits)) >>> 0;
    if (((ipv4 & mask) >>> 0) === r.base) return { cidr: `${formatIpv4(r.base)}/${r.bits}`, name: r.name, global: r.global };
  }
  return undefined;
}
