/**
 * 6to4 addresses (RFC 3056 §2): 2002::/16, then the site's public IPv4 address, then a 16-bit subnet (SLA ID)
 * and a 64-bit interface identifier.
 *
 *   | 2002 | WWXX:YYZZ (w.x.y.z) | SSSS (subnet) | interface ID (64 bits) |
 *
 * Windows host/routers use the interface ID ::WWXX:YYZZ, giving 2002:WWXX:YYZZ:SSSS::WWXX:YYZZ (Microsoft's IPv6
 * transition white paper, "6to4 Addressing Example": 131.107.0.1 → 2002:836b:1::836b:1).
 */
import { ConfigError } from '../core/errors.js';
import { formatIpv4, readIpv4, writeIpv4, type Ipv4 } from './ip.js';
import { specialIpv4Range } from './isatap.js';

/** RFC 3056 §2: the 6to4 prefix 2002::/16. */
export const SIXTOFOUR_PREFIX = Uint8Array.of(0x20, 0x02);
/** RFC 3068 §2.3: the 6to4 relay anycast address 192.88.99.1. RFC 7526 deprecated the anycast relay service. */
export const SIXTOFOUR_RELAY_ANYCAST: Ipv4 = 0xc0586301;

const IID_MAX = (1n << 64n) - 1n;

export function isSixToFourAddress(addr: Uint8Array): boolean {
  return addr.length === 16 && addr[0] === 0x20 && addr[1] === 0x02;
}

/** The site prefix 2002:WWXX:YYZZ::/48 as a 16-byte address (bytes 6-15 zero). */
export function sixToFourPrefix(ipv4: Ipv4): Uint8Array {
  const out = new Uint8Array(16);
  out.set(SIXTOFOUR_PREFIX, 0);
  writeIpv4(out, 2, ipv4);
  return out;
}

/**
 * A 6to4 address: the /48 of `ipv4`, the 16-bit `subnet`, and an interface identifier that is either a 64-bit
 * number or 'ipv4' for the white paper's host form ::WWXX:YYZZ. Without `host` the interface identifier is 0, so the
 * result is the subnet's /64 prefix 2002:WWXX:YYZZ:SSSS::.
 */
export function sixToFourAddress(ipv4: Ipv4, subnet = 0, host: 'ipv4' | bigint = 0n): Uint8Array {
  if (!Number.isInteger(subnet) || subnet < 0 || subnet > 0xffff) throw new RangeError(`6to4 subnet out of range: ${subnet}`);
  const out = sixToFourPrefix(ipv4);
  out[6] = subnet >> 8;
  out[7] = subnet & 0xff;
  if (host === 'ipv4') {
    writeIpv4(out, 12, ipv4);
  } else {
    if (host < 0n || host > IID_MAX) throw new RangeError(`6to4 interface identifier out of range: ${host}`);
    let v = host;
    for (let i = 15; i >= 8; i--) {
      out[i] = Number(v & 0xffn);
      v >>= 8n;
    }
  }
  return out;
}

export interface SixToFourAddress {
  /** The site's IPv4 address, bits 16-47. */
  ipv4: Ipv4;
  /** The subnet (SLA ID), bits 48-63. */
  subnet: number;
  /** The interface identifier, bits 64-127. */
  interfaceId: bigint;
  /** Set when the interface identifier is ::WWXX:YYZZ repeating `ipv4` (the white paper's host form). */
  hostFormIpv4?: Ipv4;
}

/** Decodes an address in 2002::/16; undefined for anything else. */
export function decodeSixToFour(addr: Uint8Array): SixToFourAddress | undefined {
  if (!isSixToFourAddress(addr)) return undefined;
  const ipv4 = readIpv4(addr, 2);
  let interfaceId = 0n;
  for (let i = 8; i < 16; i++) interfaceId = (interfaceId << 8n) | BigInt(addr[i]!);
  const value: SixToFourAddress = { ipv4, subnet: (addr[6]! << 8) | addr[7]!, interfaceId };
  if (interfaceId === BigInt(ipv4)) value.hostFormIpv4 = ipv4;
  return value;
}

/**
 * Why `ipv4` cannot be a 6to4 site address, or undefined when it can. RFC 3056 §2 builds the prefix from a
 * globally unique IPv4 address, so private, loopback, link-local, multicast and the like are refused, and so is the
 * relay anycast range. The documentation and benchmarking ranges count as public: labs use them as their Internet.
 */
export function sixToFourRefusal(ipv4: Ipv4): string | undefined {
  const range = specialIpv4Range(ipv4);
  if (!range || range.global) return undefined;
  const text = formatIpv4(ipv4);
  if (range.cidr === '192.88.99.0/24') {
    return `${text} is in ${range.cidr}, the ${range.name}: it names the relays, not a 6to4 site`;
  }
  return `${text} is in ${range.cidr}, ${range.name}: 6to4 needs a public IPv4 address (RFC 3056 §2)`;
}

/** Throws a ConfigError with sixToFourRefusal's reason when `ipv4` cannot be a 6to4 site address. */
export function checkSixToFourIpv4(ipv4: Ipv4): void {
  const reason = sixToFourRefusal(ipv4);
  if (reason !== undefined) throw new ConfigError(reason);
}
