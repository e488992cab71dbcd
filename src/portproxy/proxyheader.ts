/**
 * The PROXY protocol header a proxy sends first on its connection to the backend, so that the backend learns the
 * original client (HAProxy's "The PROXY protocol", versions 1 and 2). The header describes the client's
 * connection to the proxy: source = the client, destination = the proxy address it connected to. In v4tov6 the
 * backend connection is IPv6 while the header says TCP4, as the spec intends.
 */
import { formatIpv4, formatIpv6, parseIpv4, parseIpv6 } from '../wire/ip.js';

export interface ProxiedConnection {
  sourceAddress: string;
  sourcePort: number;
  destAddress: string;
  destPort: number;
}

/** "::ffff:a.b.c.d" is an IPv4 client seen by a dual-stack socket: the header names it as IPv4. */
function unmap(a: string): string {
  return /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(a) ? a.slice(7) : a;
}

type Pair = { family: 4; src: number; dst: number } | { family: 6; src: Uint8Array; dst: Uint8Array } | undefined;

function classify(c: ProxiedConnection): Pair {
  const s = unmap(c.sourceAddress);
  const d = unmap(c.destAddress);
  const s4 = parseIpv4(s);
  const d4 = parseIpv4(d);
  if (s4 !== undefined && d4 !== undefined) return { family: 4, src: s4, dst: d4 };
  const s6 = s.includes(':') ? parseIpv6(s) : undefined;
  const d6 = d.includes(':') ? parseIpv6(d) : undefined;
  if (s6 && d6) return { family: 6, src: s6, dst: d6 };
  return undefined;
}

const okPort = (p: number): boolean => Number.isInteger(p) && p >= 0 && p <= 65535;

/** Version 1: one text line, at most 107 bytes. Addresses that cannot be told give "PROXY UNKNOWN". */
export function proxyV1(c: ProxiedConnection): string {
  const p = classify(c);
  if (!p || !okPort(c.sourcePort) || !okPort(c.destPort)) return 'PROXY UNKNOWN\r\n';
  if (p.family === 4) return `PROXY TCP4 ${formatIpv4(p.src)} ${formatIpv4(p.dst)} ${c.sourcePort} ${c.destPort}\r\n`;
  return `PROXY TCP6 ${formatIpv6(p.src)} ${formatIpv6(p.dst)} ${c.sourcePort} ${c.destPort}\r\n`;
}

/** The 12-byte v2 signature. */
export const PROXY_V2_SIGNATURE = new Uint8Array([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

/** Version 2: signature, version 2 + PROXY command (0x21), family/transport (0x11 TCP over IPv4, 0x21 TCP over
 *  IPv6), address length, then addresses and ports in network order. Unknown addresses give family 0x00 (UNSPEC)
 *  with no address block, which the receiver treats as a local connection. */
export function proxyV2(c: ProxiedConnection): Uint8Array {
  const p = classify(c);
  const valid = p !== undefined && okPort(c.sourcePort) && okPort(c.destPort);
  const addrLen = !valid ? 0 : p.family === 4 ? 12 : 36;
  const out = new Uint8Array(16 + addrLen);
  out.set(PROXY_V2_SIGNATURE, 0);
  out[12] = 0x21;
  const dv = new DataView(out.buffer);
  dv.setUint16(14, addrLen);
  if (!valid) {
    out[13] = 0x00;
    return out;
  }
  if (p.family === 4) {
    out[13] = 0x11;
    dv.setUint32(16, p.src);
    dv.setUint32(20, p.dst);
    dv.setUint16(24, c.sourcePort);
    dv.setUint16(26, c.destPort);
  } else {
    out[13] = 0x21;
    out.set(p.src, 16);
    out.set(p.dst, 32);
    dv.setUint16(48, c.sourcePort);
    dv.setUint16(50, c.destPort);
  }
  return out;
}

/** Reads a v1 or v2 header at the start of `buf` (used by the tests' backends and by anyone debugging a backend):
 *  the connection it names and the header's length, or a reason. */
export function parseProxyHeader(buf: Uint8Array):
  | { ok: true; version: 1 | 2; length: number; conn: ProxiedConnection | undefined }
  | { ok: false; reason: 'truncated' | 'bad-signature' | 'bad-header' } {
  if (buf.length >= 12 && PROXY_V2_SIGNATURE.every((b, i) => buf[i] === b)) {
    if (buf.length < 16) return { ok: false, reason: 'truncated' };
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const len = dv.getUint16(14);
    if (buf.length < 16 + len) return { ok: false, reason: 'truncated' };
    if (buf[12] !== 0x21 && buf[12] !== 0x20) return { ok: false, reason: 'bad-header' };
    const fam = buf[13];
    if (fam === 0x11 && len >= 12) {
      return {
        ok: true, version: 2, length: 16 + len,
        conn: { sourceAddress: formatIpv4(dv.getUint32(16)), destAddress: formatIpv4(dv.getUint32(20)), sourcePort: dv.getUint16(24), destPort: dv.getUint16(26) },
      };
    }
    if (fam === 0x21 && len >= 36) {
      return {
        ok: true, version: 2, length: 16 + len,
        conn: { sourceAddress: formatIpv6(buf.slice(16, 32)), destAddress: formatIpv6(buf.slice(32, 48)), sourcePort: dv.getUint16(48), destPort: dv.getUint16(50) },
      };
    }
    return { ok: true, version: 2, length: 16 + len, conn: undefined };
  }
  const prefix = 'PROXY ';
  for (let i = 0; i < Math.min(prefix.length, buf.length); i++) if (buf[i] !== prefix.charCodeAt(i)) return { ok: false, reason: 'bad-signature' };
  let end = -1;
  for (let i = 0; i + 1 < Math.min(buf.length, 107); i++) {
    if (buf[i] === 0x0d && buf[i + 1] === 0x0a) {
      end = i;
      break;
    }
  }
  if (end < 0) return buf.length >= 107 ? { ok: false, reason: 'bad-header' } : { ok: false, reason: 'truncated' };
  const line = String.fromCharCode(...buf.subarray(0, end));
  const w = line.split(' ');
  if (w[1] === 'UNKNOWN') return { ok: true, version: 1, length: end + 2, conn: undefined };
  if (w.length !== 6 || (w[1] !== 'TCP4' && w[1] !== 'TCP6')) return { ok: false, reason: 'bad-header' };
  const sp = Number(w[4]);
  const dp = Number(w[5]);
  if (!/^\d{1,5}$/.test(w[4]!) || !/^\d{1,5}$/.test(w[5]!) || sp > 65535 || dp > 65535) return { ok: false, reason: 'bad-header' };
  return { ok: true, version: 1, length: end + 2, conn: { sourceAddress: w[2]!, destAddress: w[3]!, sourcePort: sp, destPort: dp } };
}
