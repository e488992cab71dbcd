/** Packet builders shared by the Teredo tests. */
import { buildIcmpv6Packet } from '../../src/wire/icmpv6.js';
import { parseIpv4, parseIpv6, type Ipv4, type Ipv4Port } from '../../src/wire/ip.js';
import { ALL_ROUTERS } from '../../src/wire/ipv6class.js';
import { encodeTeredoPacket, type AuthHeader } from '../../src/wire/teredo.js';

export function v4(text: string): Ipv4 {
  const a = parseIpv4(text);
  if (a === undefined) throw new Error(`bad IPv4 in test: ${text}`);
  return a;
}

export function v6(text: string): Uint8Array {
  const a = parseIpv6(text);
  if (!a) throw new Error(`bad IPv6 in test: ${text}`);
  return a;
}

export function ep(text: string): Ipv4Port {
  const [a, p] = text.split(':');
  return { addr: v4(a!), port: Number(p) };
}

export const RS_SOURCE = v6('fe80::ffff:ffff:ffff');
export const RS_SOURCE_CONE = v6('fe80::8000:ffff:ffff:ffff');

export function authWithNonce(nonce: number[]): AuthHeader {
  return { clientId: new Uint8Array(0), authValue: new Uint8Array(0), nonce: Uint8Array.from(nonce), confirmation: 0 };
}

/** A Teredo RS datagram as a client sends it (RFC 4380 §5.2.1). */
export function rsDatagram(opts: { cone?: boolean; auth?: AuthHeader; source?: Uint8Array; hopLimit?: number } = {}): Uint8Array {
  const source = opts.source ?? (opts.cone ? RS_SOURCE_CONE : RS_SOURCE);
  const rs = buildIcmpv6Packet(source, ALL_ROUTERS, { type: 'router-solicitation', options: [] }, opts.hopLimit);
  return encodeTeredoPacket(opts.auth ? { auth: opts.auth, ipv6: rs } : { ipv6: rs });
}
