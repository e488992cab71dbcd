/**
 * IP addresses in the forms the cores use: IPv4 as an unsigned 32-bit number (0xC6336401 is 198.51.100.1),
 * IPv6 as 16 bytes. Text parsing returns undefined on bad input; formatting follows RFC 5952.
 */

export type Ipv4 = number;
export type Ipv6 = Uint8Array;

/** A UDP endpoint: IPv4 address and port. */
export interface Ipv4Port {
  readonly addr: Ipv4;
  readonly port: number;
}

export function parseIpv4(text: string): Ipv4 | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let v = 0;
  for (const p of parts) {
    // No leading zeros: inet_pton refuses them, and some parsers read them as octal.
    if (!/^(0|[1-9]\d{0,2})$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    v = v * 256 + n;
  }
  return v >>> 0;
}

export function formatIpv4(addr: Ipv4): string {
  return `${(addr >>> 24) & 0xff}.${(addr >>> 16) & 0xff}.${(addr >>> 8) & 0xff}.${addr & 0xff}`;
}

export function formatIpv4Port(ep: Ipv4Port): string {
  return `${formatIpv4(ep.addr)}:${ep.port}`;
}

/** "A.B.C.D:PORT" */
export function parseIpv4Port(text: string): Ipv4Port | undefined {
  const m = /^([0-9.]+):(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  const addr = parseIpv4(m[1]!);
  const port = Number(m[2]);
  if (addr === undefined || port > 65535) return undefined;
  return { addr, port };
}

export function sameIpv4Port(a: Ipv4Port, b: Ipv4Port): boolean {
  return a.addr === b.addr && a.port === b.port;
}

/** A number key for an endpoint, for maps on hot paths (addr * 65536 + port fits in a double exactly). */
export function ipv4PortKey(ep: Ipv4Port): number {
  return ep.addr * 65536 + ep.port;
}

export function readIpv4(buf: Uint8Array, offset: number): Ipv4 {
  return ((buf[offset]! << 24) | (buf[offset + 1]! << 16) | (buf[offset + 2]! << 8) | buf[offset + 3]!) >>> 0;
}

export function writeIpv4(buf: Uint8Array, offset: number, addr: Ipv4): void {
  buf[offset] = addr >>> 24;
  buf[offset + 1] = (addr >>> 16) & 0xff;
  buf[offset + 2] = (addr >>> 8) & 0xff;
  buf[offset + 3] = addr & 0xff;
}

/** Parses any RFC 4291 §2.2 text form, including an embedded dotted quad and a %zone (ignored). */
export function parseIpv6(input: string): Ipv6 | undefined {
  let text = input.trim();
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  if (text.length === 0 || text.length > 45) return undefined;
  const out = new Uint8Array(16);
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const parseGroups = (s: string, allowV4Tail: boolean): number[] | undefined => {
    if (s === '') return [];
    const parts = s.split(':');
    const groups: number[] = [];
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (allowV4Tail && i === parts.length - 1 && p.includes('.')) {
        const v4 = parseIpv4(p);
        if (v4 === undefined) return undefined;
        groups.push(v4 >>> 16, v4 & 0xffff);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(p)) return undefined;
        groups.push(parseInt(p, 16));
      }
    }
    return groups;
  };
  let groups: number[];
  if (halves.length === 2) {
    const head = parseGroups(halves[0]!, false);
    const tail = parseGroups(halves[1]!, true);
    if (!head || !tail || head.length + tail.length > 7) return undefined;
    groups = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  } else {
    const all = parseGroups(text, true);
    if (!all || all.length !== 8) return undefined;
    groups = all;
  }
  for (let i = 0; i < 8; i++) {
    out[2 * i] = groups[i]! >>> 8;
    out[2 * i + 1] = groups[i]! & 0xff;
  }
  return out;
}

/**
 * RFC 5952 canonical text: lower case, longest run (first on ties) of two or more zero groups as "::", and
 * IPv4-mapped addresses with a dotted quad (§5).
 */
export function formatIpv6(addr: Ipv6): string {
  if (addr.length === 16 && addr.subarray(0, 10).every((b) => b === 0) && addr[10] === 0xff && addr[11] === 0xff) {
    return `::ffff:${addr[12]}.${addr[13]}.${addr[14]}.${addr[15]}`;
  }
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((addr[2 * i]! << 8) | addr[2 * i + 1]!);
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestLen < 2) return g.map((x) => x.toString(16)).join(':');
  const head = g.slice(0, bestStart).map((x) => x.toString(16)).join(':');
  const tail = g.slice(bestStart + bestLen).map((x) => x.toString(16)).join(':');
  return `${head}::${tail}`;
}

export function ipv6Equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== 16 || b.length !== 16) return false;
  for (let i = 0; i < 16; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Whether the first `bits` bits of `addr` equal those of `prefix`. */
export function ipv6HasPrefix(addr: Uint8Array, prefix: Uint8Array, bits: number): boolean {
  const whole = bits >> 3;
  for (let i = 0; i < whole; i++) if (addr[i] !== prefix[i]) return false;
  const rest = bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (addr[whole]! & mask) === (prefix[whole]! & mask);
}

/** "prefix/len" → bytes and length. */
export function parseIpv6Prefix(text: string): { prefix: Ipv6; length: number } | undefined {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(text.trim());
  if (!m) return undefined;
  const prefix = parseIpv6(m[1]!);
  const length = Number(m[2]);
  if (!prefix || length > 128) return undefined;
  return { prefix, length };
}

/** A string key for an IPv6 address: one call, no intermediate strings (peer tables look these up per packet). */
export function ipv6Key(a: Uint8Array): string {
  return String.fromCharCode(a[0]!, a[1]!, a[2]!, a[3]!, a[4]!, a[5]!, a[6]!, a[7]!, a[8]!, a[9]!, a[10]!, a[11]!, a[12]!, a[13]!, a[14]!, a[15]!);
}

/** Copies 16 bytes out of a larger buffer (cores keep copies, never borrowed views). */
export function copyIpv6(buf: Uint8Array, offset = 0): Ipv6 {
  return buf.slice(offset, offset + 16);
}

/** RFC 4380 §5.2.4 / RFC 6890: addresses a Teredo server or client must never treat as a global IPv4 peer. */
export function isGlobalIpv4(addr: Ipv4): boolean {
  const a = addr >>> 24;
  const b = (addr >>> 16) & 0xff;
  const c = (addr >>> 8) & 0xff;
  if (a === 0 || a === 10 || a === 127) return false; // "this network", private, loopback
  if (a === 169 && b === 254) return false; // link-local
  if (a === 172 && (b & 0xf0) === 16) return false; // private 172.16/12
  if (a === 192 && b === 168) return false; // private
  if (a === 192 && b === 88 && c === 99) return false; // 6to4 relay anycast (Miredo wrongly lists 192.88.98/24)
  if (a >= 224) return false; // multicast 224/4, reserved 240/4, limited broadcast
  // Shared address space (100.64/10), benchmarking (198.18/15) and the documentation ranges stay "global":
  // labs use 198.51.100/24 and 203.0.113/24 as their public Internet, as Miredo allows.
  return true;
}
