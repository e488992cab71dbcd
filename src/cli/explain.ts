/**
 * What an IPv6 address is, worked out step by step the way the seeds decode them by hand: hex to decimal for an
 * embedded IPv4 address, XOR with ffff for Teredo's obfuscated fields, the bits of the flags. Pure: the `addr`
 * command prints the result as text or JSON, and tests compare it field by field.
 */
import { formatIpv4, formatIpv6, isGlobalIpv4, readIpv4, type Ipv4 } from '../wire/ip.js';
import { decodeIsatap, isatapInterfaceId, specialIpv4Range } from '../wire/isatap.js';
import { decodeSixToFour, sixToFourPrefix, sixToFourRefusal, SIXTOFOUR_RELAY_ANYCAST } from '../wire/sixtofour.js';
import { decodeTeredoAddress, FLAG_CONE, FLAG_GROUP, FLAG_RESERVED, FLAG_UNIVERSAL, randomBitsOf } from '../wire/teredo.js';

export type AddressKind =
  | 'unspecified'
  | 'loopback'
  | 'ipv4-mapped'
  | 'ipv4-compatible'
  | 'teredo'
  | '6to4'
  | 'isatap'
  | 'link-local'
  | 'unique-local'
  | 'site-local'
  | 'multicast'
  | 'documentation'
  | 'nat64'
  | 'discard'
  | 'global-unicast'
  | 'reserved';

interface Common {
  /** Canonical text (RFC 5952). */
  address: string;
  /** The human explanation, one line each, with the arithmetic shown. */
  steps: string[];
}

export interface PlainExplanation extends Common {
  kind: 'unspecified' | 'loopback' | 'discard' | 'reserved';
}

export interface EmbeddedIpv4Explanation extends Common {
  kind: 'ipv4-mapped' | 'ipv4-compatible' | 'nat64';
  ipv4: string;
  /** RFC 5952 §5 mixed notation, e.g. ::ffff:192.0.2.1. */
  mixedNotation: string;
}

export interface TeredoExplanation extends Common {
  kind: 'teredo';
  /** "2001::/32" or "3ffe:831f::/32 (legacy)". */
  prefix: string;
  server: string;
  /** The 16-bit flags field as written, e.g. "0x8000". */
  flags: string;
  cone: boolean;
  reserved: boolean;
  universal: boolean;
  group: boolean;
  /** The 12 random bits of RFC 5991 §4 packed into one value, e.g. "0x427". */
  randomBits: string;
  mappedPort: number;
  mappedAddress: string;
}

export interface SixToFourExplanation extends Common {
  kind: '6to4';
  ipv4: string;
  /** The site's /48, e.g. "2002:9d3c:1::/48". */
  prefix: string;
  subnet: number;
  /** The interface identifier as four groups, e.g. "0:0:836b:1". */
  interfaceId: string;
  /** Whether the interface identifier repeats the IPv4 address (2002:WWXX:YYZZ:SSSS::WWXX:YYZZ). */
  hostForm: boolean;
  /** Set when the interface identifier is an ISATAP one: the ISATAP host's IPv4 address. */
  isatapIpv4?: string;
}

export interface IsatapExplanation extends Common {
  kind: 'isatap';
  ipv4: string;
  /** The u-bit as written: 0200:5efe claims a public IPv4 address, 0000:5efe a private one. */
  ipv4Public: boolean;
  /** The g-bit as written (0100:5efe, 0300:5efe): not an interface identifier RFC 5214 assigns. */
  group: boolean;
  /** The 64-bit prefix, e.g. "fe80::/64". */
  prefix: string;
  /** What the prefix is on its own: "link-local", "unique-local", "documentation", "global-unicast"... */
  prefixType: string;
  mixedNotation: string;
}

export interface LinkLocalExplanation extends Common {
  kind: 'link-local';
  interfaceId: string;
  /** Whether the interface identifier has ff:fe in the middle, i.e. is a modified EUI-64 from a MAC address. */
  eui64: boolean;
  /** The MAC address when eui64. */
  mac?: string;
}

export interface UniqueLocalExplanation extends Common {
  kind: 'unique-local';
  /** The L bit: true for fd00::/8 (locally assigned). */
  lBit: boolean;
  /** The 40-bit global ID, e.g. "0xcc7c4e3651". */
  globalId: string;
  subnetId: number;
  interfaceId: string;
}

export interface SiteLocalExplanation extends Common {
  kind: 'site-local';
  /** The 54-bit subnet ID in hex. */
  subnetId: string;
  interfaceId: string;
}

export interface MulticastExplanation extends Common {
  kind: 'multicast';
  /** The flag bits 0RPT (RFC 4291 §2.7, RFC 3306, RFC 3956). */
  flags: { R: boolean; P: boolean; T: boolean };
  /** The scope's name (RFC 7346), e.g. "link-local". */
  scope: string;
  /** The scope's 4-bit value. */
  scopeValue: number;
  /** The 112-bit group ID in IPv6 text, e.g. "::1:ff00:254". */
  group: string;
  /** A well-known group's name, e.g. "all-nodes", "solicited-node". */
  groupName?: string;
  /** For a solicited-node group: which addresses join it, by their last 24 bits, e.g. "…:xx00:254". */
  solicitedNodeFor?: string;
}

export interface UnicastExplanation extends Common {
  kind: 'documentation' | 'global-unicast';
  interfaceId: string;
}

export type AddressExplanation =
  | PlainExplanation
  | EmbeddedIpv4Explanation
  | TeredoExplanation
  | SixToFourExplanation
  | IsatapExplanation
  | LinkLocalExplanation
  | UniqueLocalExplanation
  | SiteLocalExplanation
  | MulticastExplanation
  | UnicastExplanation;

/** What the `addr` command says about an IPv4 address given where it wants IPv6. */
export interface Ipv4Explanation {
  kind: 'ipv4';
  address: string;
  global: boolean;
  /** The special-purpose range it is in, if any. */
  range?: string;
  /** Its 6to4 /48, when it can have one. */
  sixToFourPrefix?: string;
  /** Why it cannot have a 6to4 prefix. */
  sixToFourRefusal?: string;
  /** Its ISATAP interface identifier in the white paper's notation, e.g. ::0:5efe:192.168.41.30. */
  isatapInterfaceId: string;
  /** Its link-local ISATAP address. */
  isatapLinkLocal: string;
  ipv4Mapped: string;
  /** Through NAT64's well-known prefix, when the address is global (RFC 6052 §3.1). */
  nat64?: string;
  steps: string[];
}

/** One-line descriptions of each kind, for titles. */
export const KIND_TITLES: Record<AddressKind | 'ipv4', string> = {
  unspecified: 'the unspecified address (RFC 4291 §2.5.2)',
  loopback: 'the loopback address (RFC 4291 §2.5.3)',
  'ipv4-mapped': 'an IPv4-mapped IPv6 address (RFC 4291 §2.5.5.2)',
  'ipv4-compatible': 'an IPv4-compatible IPv6 address (deprecated, RFC 4291 §2.5.5.1)',
  teredo: 'a Teredo address (RFC 4380)',
  '6to4': 'a 6to4 address (RFC 3056)',
  isatap: 'an ISATAP address (RFC 5214)',
  'link-local': 'a link-local unicast address (RFC 4291 §2.5.6)',
  'unique-local': 'a unique local address (RFC 4193)',
  'site-local': 'a site-local address (deprecated, RFC 3879)',
  multicast: 'a multicast address (RFC 4291 §2.7)',
  documentation: 'a documentation address (RFC 3849)',
  nat64: 'a NAT64 address with the well-known prefix (RFC 6052)',
  discard: 'a discard-only address (RFC 6666)',
  'global-unicast': 'a global unicast address (RFC 4291 §2.5.4)',
  reserved: 'an address in a reserved or unassigned block',
  ipv4: 'an IPv4 address, not IPv6',
};

// ---------------------------------------------------------------------------------------------------------
// Arithmetic helpers: the text of each step

const hex2 = (n: number): string => n.toString(16).padStart(2, '0');
const hex4 = (n: number): string => n.toString(16).padStart(4, '0');

function group(addr: Uint8Array, i: number): number {
  return (addr[2 * i]! << 8) | addr[2 * i + 1]!;
}

/** Groups i..i+n-1 as written, each padded to four digits: "1117:34fa". */
function groupsText(addr: Uint8Array, i: number, n: number): string {
  const out: string[] = [];
  for (let k = i; k < i + n; k++) out.push(hex4(group(addr, k)));
  return out.join(':');
}

/** "0x11=17 0x17=23 0x34=52 0xfa=250" */
function bytesToDecimal(ipv4: Ipv4): string {
  return [24, 16, 8, 0].map((s) => `0x${hex2((ipv4 >>> s) & 0xff)}=${(ipv4 >>> s) & 0xff}`).join(' ');
}

/** "17=0x11 23=0x17 52=0x34 250=0xfa" */
function decimalToBytes(ipv4: Ipv4): string {
  return [24, 16, 8, 0].map((s) => `${(ipv4 >>> s) & 0xff}=0x${hex2((ipv4 >>> s) & 0xff)}`).join(' ');
}

/** "1117:34fa" for 17.23.52.250 */
function ipv4AsGroups(ipv4: Ipv4): string {
  return `${hex4(ipv4 >>> 16)}:${hex4(ipv4 & 0xffff)}`;
}

/** "0001 0000 0010 0111" */
function bits16(n: number): string {
  const b = n.toString(2).padStart(16, '0');
  return `${b.slice(0, 4)} ${b.slice(4, 8)} ${b.slice(8, 12)} ${b.slice(12, 16)}`;
}

/** Bits 64-127 as four groups without zero compression: "0:0:836b:1". */
function interfaceIdText(addr: Uint8Array): string {
  return [4, 5, 6, 7].map((i) => group(addr, i).toString(16)).join(':');
}

/** The first `bits` bits of addr as "prefix/len" text. */
function prefixText(addr: Uint8Array, bits: number): string {
  const p = new Uint8Array(16);
  const whole = bits >> 3;
  p.set(addr.subarray(0, whole), 0);
  if (bits & 7) p[whole] = addr[whole]! & ((0xff << (8 - (bits & 7))) & 0xff);
  return `${formatIpv6(p)}/${bits}`;
}

/** RFC 5952 §5 mixed notation: the first 96 bits as IPv6 text, then a dotted quad. */
export function mixedNotation(addr: Uint8Array): string {
  const g: number[] = [];
  for (let i = 0; i < 6; i++) g.push(group(addr, i));
  const v4 = formatIpv4(readIpv4(addr, 12));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 6; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 6 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]): string => xs.map((x) => x.toString(16)).join(':');
  if (bestLen < 2) return `${hex(g)}:${v4}`;
  const head = hex(g.slice(0, bestStart));
  const tail = hex(g.slice(bestStart + bestLen));
  return `${head}::${tail}${tail ? ':' : ''}${v4}`;
}

/** "c633:6401 → 0xc6=198 0x33=51 0x64=100 0x01=1 → <label> 198.51.100.1" */
function ipv4Step(ipv4: Ipv4, label: string): string {
  return `${ipv4AsGroups(ipv4)} → ${bytesToDecimal(ipv4)} → ${label}${formatIpv4(ipv4)}`;
}

/** A note when an embedded IPv4 address is not global, or is in a range worth naming. */
function ipv4RangeNote(ipv4: Ipv4, role: string): string | undefined {
  const range = specialIpv4Range(ipv4);
  if (!range) return undefined;
  if (range.global) return `${role} ${formatIpv4(ipv4)} is in ${range.cidr}, ${range.name}; treated as global (labs use these ranges as their Internet)`;
  return `note: ${role} ${formatIpv4(ipv4)} is in ${range.cidr}, ${range.name}: not a global IPv4 address`;
}

function solicitedNodeOf(addr: Uint8Array): string {
  const s = Uint8Array.of(0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, addr[13]!, addr[14]!, addr[15]!);
  return formatIpv6(s);
}

/** Steps about a unicast interface identifier: modified EUI-64 (with the MAC) or not. */
function interfaceIdSteps(addr: Uint8Array): { steps: string[]; mac?: string } {
  const iid = groupsText(addr, 4, 4);
  if (allZero(addr, 8, 16)) return { steps: [`interface ID ${iid}: all zero, the subnet-router anycast address of its /64 (RFC 4291 §2.6.1)`] };
  if (addr[11] === 0xff && addr[12] === 0xfe) {
    const first = addr[8]!;
    const mac = [first ^ 0x02, addr[9]!, addr[10]!, addr[13]!, addr[14]!, addr[15]!].map(hex2).join(':');
    return {
      mac,
      steps: [
        `interface ID ${iid}: ff:fe in the middle → modified EUI-64 from a 48-bit MAC (RFC 4291 Appendix A): ` +
          `${hex2(first)} XOR 02 (the u-bit flipped back) = ${hex2(first ^ 0x02)}, drop ff:fe → MAC ${mac}`,
      ],
    };
  }
  return { steps: [`interface ID ${iid}: not EUI-64 derived (random, privacy or manually assigned)`] };
}

function solicitedNodeStep(addr: Uint8Array): string {
  return `its solicited-node multicast group (RFC 4291 §2.7.1) is ${solicitedNodeOf(addr)}: ff02::1:ff00:0/104 + the last 24 bits`;
}

function allZero(addr: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (addr[i] !== 0) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------------------
// The kinds

function explainTeredo(addr: Uint8Array, address: string): TeredoExplanation | undefined {
  const t = decodeTeredoAddress(addr);
  if (!t) return undefined;
  const flags = t.flags;
  const cone = (flags & FLAG_CONE) !== 0;
  const reserved = (flags & FLAG_RESERVED) !== 0;
  const universal = (flags & FLAG_UNIVERSAL) !== 0;
  const groupBit = (flags & FLAG_GROUP) !== 0;
  const random = randomBitsOf(flags);
  const randomHex = `0x${random.toString(16).padStart(3, '0')}`;
  const bit = (b: boolean): string => (b ? '1' : '0');
  const flagBits = bits16(flags).replace(/ /g, '');
  const steps: string[] = [];
  steps.push(
    t.prefix === 'legacy'
      ? `${groupsText(addr, 0, 2)}::/32 → the legacy Teredo prefix Windows XP used before RFC 4380 (white paper, "Teredo Address Format")`
      : `${groupsText(addr, 0, 2)}::/32 → the Teredo prefix 2001::/32 (RFC 4380 §2.6)`,
  );
  steps.push(ipv4Step(t.server, 'server '));
  steps.push(
    `${hex4(flags)} = ${bits16(flags)}: C=${bit(cone)} R=${bit(reserved)} U=${bit(universal)} G=${bit(groupBit)}, ` +
      `random bits ${flagBits.slice(2, 6)} ${flagBits.slice(8)} = ${randomHex} (flags CRAAAAUG AAAAAAAA, RFC 5991 §4)`,
  );
  steps.push(
    cone
      ? 'C=1: the client is behind a cone NAT, so any peer can reach its mapped address directly (RFC 4380 §4)'
      : 'C=0: not (known to be) behind a cone NAT; a peer first opens the NAT with a bubble relayed by the server',
  );
  if (reserved) steps.push('note: R=1, but the R bit is reserved and clients set it to 0 (RFC 5991 §4)');
  if (universal || groupBit) steps.push('note: U and G are set to 0 by clients (RFC 5991 §4); this address has one set');
  const obscPort = group(addr, 5);
  steps.push(`${hex4(obscPort)} XOR ffff = ${hex4(obscPort ^ 0xffff)} = ${t.mappedPort} → mapped port ${t.mappedPort} ` +
    '(stored inverted so NATs do not rewrite it, RFC 4380 §4)');
  const obscAddr = readIpv4(addr, 12);
  steps.push(
    `${ipv4AsGroups(obscAddr)} XOR ffff:ffff = ${ipv4AsGroups(t.mappedAddr)} → ${formatIpv4(t.mappedAddr)} ` +
      `(${bytesToDecimal(t.mappedAddr)}): the mapped address, the NAT's external IPv4 address`,
  );
  if (t.mappedPort === 0) {
    steps.push('note: mapped port 0 cannot be a NAT mapping: the address is probably mistyped (ffff decodes to port 0)');
  }
  const serverNote = ipv4RangeNote(t.server, 'server');
  if (serverNote) steps.push(serverNote);
  const mappedNote = ipv4RangeNote(t.mappedAddr, 'mapped address');
  if (mappedNote) steps.push(mappedNote);
  return {
    kind: 'teredo',
    address,
    prefix: t.prefix === 'legacy' ? '3ffe:831f::/32 (legacy)' : '2001::/32',
    server: formatIpv4(t.server),
    flags: `0x${hex4(flags)}`,
    cone,
    reserved,
    universal,
    group: groupBit,
    randomBits: randomHex,
    mappedPort: t.mappedPort,
    mappedAddress: formatIpv4(t.mappedAddr),
    steps,
  };
}

function explainSixToFour(addr: Uint8Array, address: string): SixToFourExplanation | undefined {
  const s = decodeSixToFour(addr);
  if (!s) return undefined;
  const prefix48 = prefixText(sixToFourPrefix(s.ipv4), 48);
  const steps: string[] = [];
  steps.push('2002::/16 → the 6to4 prefix (RFC 3056 §2): 2002:WWXX:YYZZ::/48 carries a site\'s IPv4 address w.x.y.z');
  steps.push(`${ipv4Step(s.ipv4, '')}: WWXX:YYZZ → w.x.y.z, the site's IPv4 address; its /48 is ${prefix48}`);
  steps.push(`subnet (SLA ID) ${hex4(s.subnet)} = ${s.subnet} → the /64 ${prefixText(addr, 64)}`);
  const isatap = decodeIsatap(addr);
  const value: SixToFourExplanation = {
    kind: '6to4',
    address,
    ipv4: formatIpv4(s.ipv4),
    prefix: prefix48,
    subnet: s.subnet,
    interfaceId: interfaceIdText(addr),
    hostForm: s.hostFormIpv4 !== undefined,
    steps,
  };
  if (s.hostFormIpv4 !== undefined) {
    steps.push(
      `interface ID ${groupsText(addr, 4, 4)} repeats ${ipv4AsGroups(s.ipv4)}: the host form 2002:WWXX:YYZZ:SSSS::WWXX:YYZZ ` +
        'that Windows 6to4 host/routers configure (white paper, "6to4 Addressing Example")',
    );
  } else if (isatap) {
    value.isatapIpv4 = formatIpv4(isatap.ipv4);
    steps.push(
      `interface ID ${groupsText(addr, 4, 4)} is an ISATAP identifier (RFC 5214 §6.1): ` +
        `${ipv4Step(isatap.ipv4, 'ISATAP host ')} inside this 6to4 site`,
    );
  } else {
    steps.push(...interfaceIdSteps(addr).steps);
  }
  if (s.ipv4 === SIXTOFOUR_RELAY_ANYCAST) {
    steps.push('192.88.99.1 is the 6to4 relay anycast address (RFC 3068), deprecated by RFC 7526');
  } else {
    const refusal = sixToFourRefusal(s.ipv4);
    if (refusal) steps.push(`note: ${refusal}`);
  }
  steps.push(`IPv6 to this address goes over IPv4 (protocol 41) to ${formatIpv4(s.ipv4)} (RFC 3056 §5)`);
  return value;
}

/** What a unicast prefix is on its own (for ISATAP, whose identifier goes with any 64-bit prefix). */
function prefixType(addr: Uint8Array): string {
  if (addr[0] === 0xfe && (addr[1]! & 0xc0) === 0x80) return 'link-local';
  if (addr[0] === 0xfe && (addr[1]! & 0xc0) === 0xc0) return 'site-local';
  if ((addr[0]! & 0xfe) === 0xfc) return 'unique-local';
  if (addr[0] === 0x20 && addr[1] === 0x01 && addr[2] === 0x0d && addr[3] === 0xb8) return 'documentation';
  if ((addr[0]! & 0xe0) === 0x20) return 'global-unicast';
  return 'reserved';
}

function explainIsatap(addr: Uint8Array, address: string): IsatapExplanation | undefined {
  const d = decodeIsatap(addr);
  if (!d) return undefined;
  const prefix = prefixText(addr, 64);
  const type = prefixType(addr);
  const steps: string[] = [];
  switch (type) {
    case 'link-local':
      steps.push(
        `prefix ${prefix} → link-local scope: the ISATAP link-local address each ISATAP interface configures ` +
          '(RFC 5214 §6.2); used within the ISATAP link only, e.g. as the router\'s next hop',
      );
      if (!allZero(addr, 2, 8)) steps.push('note: bits 10-63 of a link-local address should be zero (RFC 4291 §2.5.6)');
      break;
    case 'documentation':
      steps.push(`prefix ${prefix} is in 2001:db8::/32, the documentation prefix (RFC 3849), as in the white paper's examples`);
      break;
    case 'unique-local':
      steps.push(`prefix ${prefix} → unique local (RFC 4193), advertised by an ISATAP router`);
      break;
    case 'site-local':
      steps.push(`prefix ${prefix} → site-local (deprecated, RFC 3879)`);
      break;
    case 'global-unicast':
      steps.push(`prefix ${prefix} → global unicast, advertised by an ISATAP router (RFC 5214 §6.2)`);
      break;
    default:
      steps.push(`prefix ${prefix} is not a unicast prefix ISATAP would be given`);
  }
  const first = addr[8]!;
  steps.push(
    `interface ID ${groupsText(addr, 4, 4)}: ${hex2(first)} = ${first.toString(2).padStart(8, '0')} → ` +
      `u-bit ${d.universalLocalBit ? 1 : 0} (${d.universalLocalBit ? 'public' : 'private'} IPv4 address), ` +
      `g-bit ${d.groupBit ? 1 : 0}; 00:5efe = IANA OUI 00-00-5e + type fe, "IPv4 address follows" (RFC 5214 §6.1)`,
  );
  steps.push(ipv4Step(d.ipv4, ''));
  if (d.groupBit) steps.push('note: the g-bit is set: RFC 5214 §6.1 identifiers have it 0, so this is not an interface\'s address');
  const actuallyGlobal = isGlobalIpv4(d.ipv4);
  if (actuallyGlobal !== d.universalLocalBit) {
    const range = specialIpv4Range(d.ipv4);
    steps.push(
      `note: the u-bit says ${d.universalLocalBit ? 'public' : 'private'}, but ${formatIpv4(d.ipv4)} is ` +
        (actuallyGlobal ? 'a global address' : `in ${range?.cidr ?? 'a non-global range'}${range ? `, ${range.name}` : ''}`),
    );
  } else {
    const range = specialIpv4Range(d.ipv4);
    if (range) steps.push(`${formatIpv4(d.ipv4)} is in ${range.cidr}, ${range.name}: the u-bit ${d.universalLocalBit ? 1 : 0} matches`);
  }
  steps.push(`IPv6 to this address goes over IPv4 (protocol 41) to ${formatIpv4(d.ipv4)} (RFC 5214 §7)`);
  return {
    kind: 'isatap',
    address,
    ipv4: formatIpv4(d.ipv4),
    ipv4Public: d.ipv4Public,
    group: d.groupBit,
    prefix,
    prefixType: type,
    mixedNotation: mixedNotation(addr),
    steps,
  };
}

const SCOPES: Record<number, string> = {
  0x0: 'reserved',
  0x1: 'interface-local',
  0x2: 'link-local',
  0x3: 'realm-local',
  0x4: 'admin-local',
  0x5: 'site-local',
  0x8: 'organization-local',
  0xe: 'global',
  0xf: 'reserved',
};

/** Well-known groups at one scope, by canonical address (IANA IPv6 multicast registry). */
const FIXED_GROUPS: Record<string, [string, string]> = {
  'ff01::1': ['all-nodes', 'all nodes on this interface'],
  'ff02::1': ['all-nodes', 'all nodes on the link'],
  'ff01::2': ['all-routers', 'all routers on this interface'],
  'ff02::2': ['all-routers', 'all routers on the link: where Router Solicitations go'],
  'ff05::2': ['all-routers', 'all routers in the site'],
  'ff02::5': ['ospf-all-spf-routers', 'OSPFv3 all SPF routers (RFC 5340)'],
  'ff02::6': ['ospf-designated-routers', 'OSPFv3 designated routers (RFC 5340)'],
  'ff02::9': ['ripng-routers', 'RIPng routers (RFC 2080)'],
  'ff02::a': ['eigrp-routers', 'EIGRP routers'],
  'ff02::d': ['pim-routers', 'all PIM routers (RFC 7761)'],
  'ff02::16': ['mldv2-routers', 'all MLDv2-capable routers (RFC 3810)'],
  'ff02::1a': ['rpl-nodes', 'all RPL nodes (RFC 6550)'],
  'ff02::1:2': ['dhcp', 'all DHCPv6 relay agents and servers (RFC 8415)'],
  'ff05::1:3': ['dhcp-servers', 'all DHCPv6 servers in the site (RFC 8415)'],
  'ff02::1:3': ['llmnr', 'Link-Local Multicast Name Resolution (RFC 4795)'],
};
/** Well-known groups at any scope, by group ID (the address with ff0s stripped). */
const VARIABLE_GROUPS: Record<string, [string, string]> = {
  '::c': ['ssdp', 'Simple Service Discovery Protocol'],
  '::fb': ['mdns', 'multicast DNS (RFC 6762)'],
  '::101': ['ntp', 'Network Time Protocol'],
};

function explainMulticast(addr: Uint8Array, address: string): MulticastExplanation {
  const flagBits = addr[1]! >> 4;
  const scopeValue = addr[1]! & 0x0f;
  const flags = { R: (flagBits & 4) !== 0, P: (flagBits & 2) !== 0, T: (flagBits & 1) !== 0 };
  const scope = SCOPES[scopeValue] ?? 'unassigned';
  const g = new Uint8Array(addr);
  g[0] = 0;
  g[1] = 0;
  const groupText = formatIpv6(g);
  const steps: string[] = [];
  steps.push(`ff → multicast (RFC 4291 §2.7): ff, then 4 flag bits, 4 scope bits and a 112-bit group ID`);
  const flagMeaning = [
    flags.T ? 'T=1 transient (dynamically assigned)' : 'T=0 permanent (IANA-assigned, well-known)',
    ...(flags.P ? ['P=1 derived from a unicast prefix (RFC 3306)'] : []),
    ...(flags.R ? ['R=1 embeds a rendezvous point address (RFC 3956)'] : []),
  ];
  if (flagBits & 8) flagMeaning.push('note: the high flag bit is reserved and should be 0');
  steps.push(
    `flags ${flagBits.toString(16)} = ${flagBits.toString(2).padStart(4, '0')}: R=${flags.R ? 1 : 0} P=${flags.P ? 1 : 0} ` +
      `T=${flags.T ? 1 : 0} → ${flagMeaning.join(', ')}`,
  );
  steps.push(`scope ${scopeValue.toString(16)} → ${scope} (RFC 7346)`);
  const value: MulticastExplanation = { kind: 'multicast', address, flags, scope, scopeValue, group: groupText, steps };
  const fixed = FIXED_GROUPS[address];
  const variable = flagBits === 0 ? VARIABLE_GROUPS[groupText] : undefined;
  const solicited =
    addr[1] === 0x02 && allZero(addr, 2, 11) && addr[11] === 0x01 && addr[12] === 0xff;
  if (fixed) {
    value.groupName = fixed[0];
    steps.push(`group ${groupText} at ${scope} scope → ${fixed[0]}: ${fixed[1]}`);
  } else if (variable) {
    value.groupName = variable[0];
    steps.push(`group ${groupText} → ${variable[0]}: ${variable[1]} (at any scope)`);
  } else if (solicited) {
    value.groupName = 'solicited-node';
    const low = `${hex2(addr[13]!)}:${hex4((addr[14]! << 8) | addr[15]!)}`;
    value.solicitedNodeFor = `…:xx${hex2(addr[13]!)}:${((addr[14]! << 8) | addr[15]!).toString(16)}`;
    const example = new Uint8Array(16);
    example[0] = 0xfe;
    example[1] = 0x80;
    example.set(addr.subarray(13, 16), 13);
    steps.push(
      `group ${groupText} = ff02::1:ff00:0/104 + the last 24 bits ${low} → the solicited-node group (RFC 4291 §2.7.1) ` +
        `that every unicast or anycast address ending in ${value.solicitedNodeFor} joins, e.g. ${formatIpv6(example)}; ` +
        'Neighbor Solicitations for such an address go here',
    );
  } else {
    steps.push(`group ${groupText}: not a group this tool knows by name`);
  }
  return value;
}

/**
 * Explains a 16-byte IPv6 address. Special forms take precedence over the blocks they sit in: Teredo and 6to4
 * first, then an ISATAP interface identifier under any unicast prefix (so fe80::5efe:10.0.0.1 is "isatap", with its
 * link-local scope in the steps), then the plain blocks.
 */
export function explainIpv6(addr: Uint8Array): AddressExplanation {
  if (addr.length !== 16) throw new RangeError(`an IPv6 address is 16 bytes, got ${addr.length}`);
  const address = formatIpv6(addr);
  const first96Zero = allZero(addr, 0, 12);

  if (first96Zero && allZero(addr, 12, 16)) {
    return { kind: 'unspecified', address, steps: ['all 128 bits zero → the unspecified address "::" (RFC 4291 §2.5.2): "no address yet", never a destination'] };
  }
  if (first96Zero && allZero(addr, 12, 15) && addr[15] === 1) {
    return { kind: 'loopback', address, steps: ['::1 → the loopback address (RFC 4291 §2.5.3): this host, never leaves it'] };
  }
  if (allZero(addr, 0, 10) && addr[10] === 0xff && addr[11] === 0xff) {
    const ipv4 = readIpv4(addr, 12);
    return {
      kind: 'ipv4-mapped',
      address,
      ipv4: formatIpv4(ipv4),
      mixedNotation: mixedNotation(addr),
      steps: [
        '::ffff:0:0/96 → IPv4-mapped (RFC 4291 §2.5.5.2): an IPv4 peer seen through an IPv6 socket; never on the wire',
        ipv4Step(ipv4, ''),
      ],
    };
  }
  if (first96Zero) {
    const ipv4 = readIpv4(addr, 12);
    return {
      kind: 'ipv4-compatible',
      address,
      ipv4: formatIpv4(ipv4),
      mixedNotation: mixedNotation(addr),
      steps: ['::/96 with an IPv4 address in the last 32 bits → IPv4-compatible, deprecated (RFC 4291 §2.5.5.1)', ipv4Step(ipv4, '')],
    };
  }
  if (addr[0] === 0x00 && addr[1] === 0x64 && addr[2] === 0xff && addr[3] === 0x9b && allZero(addr, 4, 12)) {
    const ipv4 = readIpv4(addr, 12);
    const steps = ['64:ff9b::/96 → the NAT64 well-known prefix (RFC 6052 §2.1): a NAT64 gateway translates it to IPv4', ipv4Step(ipv4, '')];
    if (!isGlobalIpv4(ipv4)) steps.push('note: RFC 6052 §3.1 forbids the well-known prefix with a non-global IPv4 address');
    return { kind: 'nat64', address, ipv4: formatIpv4(ipv4), mixedNotation: mixedNotation(addr), steps };
  }
  if (addr[0] === 0x01 && allZero(addr, 1, 8)) {
    return { kind: 'discard', address, steps: ['100::/64 → discard-only (RFC 6666): routed to nowhere, e.g. to sink DDoS traffic'] };
  }
  if (addr[0] === 0xff) return explainMulticast(addr, address);

  const teredo = explainTeredo(addr, address);
  if (teredo) return teredo;
  const sixToFour = explainSixToFour(addr, address);
  if (sixToFour) return sixToFour;
  const isatap = explainIsatap(addr, address);
  if (isatap) return isatap;

  const iid = interfaceIdSteps(addr);
  if (addr[0] === 0xfe && (addr[1]! & 0xc0) === 0x80) {
    const steps = ['fe80::/10 → link-local (RFC 4291 §2.5.6): valid on one link only, never forwarded by routers'];
    if (!allZero(addr, 2, 8)) steps.push('note: bits 10-63 should be zero (the address is in fe80::/64 in practice)');
    steps.push(...iid.steps, solicitedNodeStep(addr));
    const value: LinkLocalExplanation = { kind: 'link-local', address, interfaceId: interfaceIdText(addr), eui64: iid.mac !== undefined, steps };
    if (iid.mac !== undefined) value.mac = iid.mac;
    return value;
  }
  if (addr[0] === 0xfe && (addr[1]! & 0xc0) === 0xc0) {
    let subnet = 0n;
    for (let i = 1; i < 8; i++) subnet = (subnet << 8n) | BigInt(addr[i]!);
    subnet &= (1n << 54n) - 1n;
    return {
      kind: 'site-local',
      address,
      subnetId: `0x${subnet.toString(16)}`,
      interfaceId: interfaceIdText(addr),
      steps: [
        'fec0::/10 → site-local, deprecated by RFC 3879 (use unique local fc00::/7 instead)',
        `subnet ID (54 bits) 0x${subnet.toString(16)}`,
        ...iid.steps,
      ],
    };
  }
  if ((addr[0]! & 0xfe) === 0xfc) {
    const lBit = (addr[0]! & 1) === 1;
    let gid = '';
    for (let i = 1; i < 6; i++) gid += hex2(addr[i]!);
    const subnetId = group(addr, 3);
    return {
      kind: 'unique-local',
      address,
      lBit,
      globalId: `0x${gid}`,
      subnetId,
      interfaceId: interfaceIdText(addr),
      steps: [
        `${hex2(addr[0]!)} = ${addr[0]!.toString(2)}: fc00::/7 (1111110) → unique local (RFC 4193 §3.1); L=${lBit ? 1 : 0} → ` +
          (lBit ? 'fd00::/8, locally assigned' : 'fc00::/8, reserved for a central registry that was never set up'),
        `global ID ${hex2(addr[1]!)}:${hex4(group(addr, 1))}:${hex4(group(addr, 2))} → 0x${gid} (40 random bits, RFC 4193 §3.2)`,
        `subnet ID ${hex4(subnetId)} = ${subnetId}`,
        ...iid.steps,
        solicitedNodeStep(addr),
      ],
    };
  }
  if (addr[0] === 0x20 && addr[1] === 0x01 && addr[2] === 0x0d && addr[3] === 0xb8) {
    return {
      kind: 'documentation',
      address,
      interfaceId: interfaceIdText(addr),
      steps: ['2001:0db8::/32 → the documentation prefix (RFC 3849): for examples, never routed', ...iid.steps, solicitedNodeStep(addr)],
    };
  }
  if ((addr[0]! & 0xe0) === 0x20) {
    return {
      kind: 'global-unicast',
      address,
      interfaceId: interfaceIdText(addr),
      steps: [
        `${hex2(addr[0]!)} = ${addr[0]!.toString(2).padStart(8, '0')}: first 3 bits 001 → 2000::/3, global unicast (RFC 4291 §2.5.4)`,
        ...iid.steps,
        solicitedNodeStep(addr),
      ],
    };
  }
  const steps = ['not in an assigned block (RFC 4291 §2.4): reserved or unassigned by IANA'];
  if (allZero(addr, 0, 8) && addr[8] === 0xff && addr[9] === 0xff && addr[10] === 0 && addr[11] === 0) {
    steps.push(`::ffff:0:0:0/96 → IPv4-translated (SIIT, RFC 2765, obsoleted by RFC 6145): ${ipv4Step(readIpv4(addr, 12), '')}`);
  }
  return { kind: 'reserved', address, steps };
}

/** For an IPv4 address given where an IPv6 one was expected: what it is and the IPv6 forms that embed it. */
export function explainIpv4(ipv4: Ipv4): Ipv4Explanation {
  const text = formatIpv4(ipv4);
  const global = isGlobalIpv4(ipv4);
  const range = specialIpv4Range(ipv4);
  const iid = isatapInterfaceId(ipv4, global);
  const iidText = `::${iid[0] === 0 ? '0' : '200'}:5efe:${text}`;
  const linkLocal = new Uint8Array(16);
  linkLocal[0] = 0xfe;
  linkLocal[1] = 0x80;
  linkLocal.set(iid, 8);
  const mapped = new Uint8Array(16);
  mapped[10] = 0xff;
  mapped[11] = 0xff;
  mapped.set(iid.subarray(4), 12);
  const nat64 = Uint8Array.of(0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
  nat64.set(iid.subarray(4), 12);
  const refusal = sixToFourRefusal(ipv4);
  const steps = [
    `${text} is an IPv4 address, not IPv6: ${ipv4AsGroups(ipv4)} in hex (${bytesToDecimal(ipv4)})`,
    range ? `it is in ${range.cidr}, ${range.name}${range.global ? ' (counted as global here)' : ': not global'}` : 'it is a global unicast IPv4 address',
  ];
  const sixToFour = refusal === undefined ? prefixText(sixToFourPrefix(ipv4), 48) : undefined;
  const isatapLinkLocal = mixedNotation(linkLocal);
  const ipv4Mapped = mixedNotation(mapped);
  // RFC 6052 §3.1: the well-known prefix must not be used with non-global IPv4 addresses.
  const nat64Text = global ? mixedNotation(nat64) : undefined;
  if (sixToFour !== undefined) steps.push(`its 6to4 prefix (RFC 3056 §2): 2002:${ipv4AsGroups(ipv4)}::/48 = ${sixToFour}`);
  else steps.push(`no 6to4 prefix: ${refusal}`);
  steps.push(
    `its ISATAP interface identifier (RFC 5214 §6.1) is ${iidText} (u-bit ${global ? '1: public' : '0: private'}), ` +
      `its link-local ISATAP address ${isatapLinkLocal}`,
  );
  steps.push(
    `as IPv4-mapped IPv6 it is ${ipv4Mapped}; ` +
      (nat64Text ? `through NAT64's well-known prefix ${nat64Text}` : "NAT64's well-known prefix does not take non-global addresses (RFC 6052 §3.1)"),
  );
  return {
    kind: 'ipv4',
    address: text,
    global,
    ...(range ? { range: `${range.cidr} ${range.name}` } : {}),
    ...(sixToFour !== undefined ? { sixToFourPrefix: sixToFour } : { sixToFourRefusal: refusal }),
    isatapInterfaceId: iidText,
    isatapLinkLocal,
    ipv4Mapped,
    ...(nat64Text ? { nat64: nat64Text } : {}),
    steps,
  };
}

/** What `addr encode 6to4` prints without --host: the site's /48 and one subnet's /64. */
export interface SixToFourPrefixExplanation {
  kind: '6to4';
  ipv4: string;
  /** The site's /48, e.g. "2002:9d3c:1::/48". */
  prefix: string;
  subnet: number;
  /** The subnet's /64, e.g. "2002:9d3c:1:1::/64". */
  subnetPrefix: string;
  steps: string[];
}

export function explainSixToFourPrefix(ipv4: Ipv4, subnet: number): SixToFourPrefixExplanation {
  const p = sixToFourPrefix(ipv4);
  p[6] = subnet >> 8;
  p[7] = subnet & 0xff;
  const prefix = prefixText(p, 48);
  const subnetPrefix = prefixText(p, 64);
  return {
    kind: '6to4',
    ipv4: formatIpv4(ipv4),
    prefix,
    subnet,
    subnetPrefix,
    steps: [
      `${formatIpv4(ipv4)} → ${decimalToBytes(ipv4)} → WWXX:YYZZ ${ipv4AsGroups(ipv4)}`,
      `2002::/16 (RFC 3056 §2) + ${ipv4AsGroups(ipv4)} → the site prefix ${prefix}`,
      `subnet (SLA ID) ${subnet} = ${hex4(subnet)} → ${subnetPrefix}; hosts add a 64-bit interface ID to it`,
      `IPv6 to this site goes over IPv4 (protocol 41) to ${formatIpv4(ipv4)} (RFC 3056 §5)`,
    ],
  };
}
