/**
 * Minimal packet builders for the I/O tests. Self-contained on purpose: these tests check the OS adapters, so
 * they must not fail because a codec under src/wire changed.
 */

/** RFC 1071 one's-complement sum of `buf[off, off+len)` added to `sum`. */
export function sum16(buf: Uint8Array, off: number, len: number, sum = 0): number {
  for (let i = 0; i + 1 < len; i += 2) sum += (buf[off + i]! << 8) | buf[off + i + 1]!;
  if (len & 1) sum += buf[off + len - 1]! << 8;
  return sum;
}

export function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 65536);
  return ~sum & 0xffff;
}

export function ipv6(text: string): Uint8Array {
  // Test addresses only: full or with one '::'.
  const [head, tail] = text.includes('::') ? text.split('::') as [string, string] : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  return out;
}

/** An IPv6 packet carrying an ICMPv6 echo request/reply (type 128/129) with a correct checksum. */
export function icmpv6Echo(src: Uint8Array, dst: Uint8Array, type: 128 | 129, id: number, seq: number,
  payload: Uint8Array): Uint8Array {
  const icmpLen = 8 + payload.length;
  const p = new Uint8Array(40 + icmpLen);
  p[0] = 0x60;
  p[4] = icmpLen >> 8;
  p[5] = icmpLen & 0xff;
  p[6] = 58; // next header: ICMPv6
  p[7] = 64; // hop limit
  p.set(src, 8);
  p.set(dst, 24);
  p[40] = type;
  p[44] = id >> 8;
  p[45] = id & 0xff;
  p[46] = seq >> 8;
  p[47] = seq & 0xff;
  p.set(payload, 48);
  // RFC 4443 §2.3: pseudo-header (RFC 8200 §8.1) + ICMPv6 message.
  let s = sum16(p, 8, 32);
  s += icmpLen + 58;
  s = sum16(p, 40, icmpLen, s);
  const c = fold(s);
  p[42] = c >> 8;
  p[43] = c & 0xff;
  return p;
}

export interface EchoInfo { type: number; id: number; seq: number; src: Uint8Array; dst: Uint8Array; payload: Uint8Array; checksumOk: boolean }

/** Parses an IPv6 + ICMPv6 echo packet; undefined for anything else. */
export function parseEcho(p: Uint8Array): EchoInfo | undefined {
  if (p.length < 48 || p[0]! >> 4 !== 6 || p[6] !== 58) return undefined;
  const type = p[40]!;
  if (type !== 128 && type !== 129) return undefined;
  const icmpLen = (p[4]! << 8) | p[5]!;
  if (40 + icmpLen !== p.length) return undefined;
  let s = sum16(p, 8, 32);
  s += icmpLen + 58;
  s = sum16(p, 40, icmpLen, s);
  return {
    type, id: (p[44]! << 8) | p[45]!, seq: (p[46]! << 8) | p[47]!, src: p.slice(8, 24), dst: p.slice(24, 40),
    payload: p.slice(48), checksumOk: fold(s) === 0,
  };
}

/** An IPv4 header (no options) + payload, header checksum filled in. */
export function ipv4Packet(src: number, dst: number, protocol: number, payload: Uint8Array): Uint8Array {
  const p = new Uint8Array(20 + payload.length);
  const dv = new DataView(p.buffer);
  p[0] = 0x45;
  dv.setUint16(2, p.length);
  p[8] = 64;
  p[9] = protocol;
  dv.setUint32(12, src);
  dv.setUint32(16, dst);
  dv.setUint16(10, fold(sum16(p, 0, 20)));
  p.set(payload, 20);
  return p;
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
