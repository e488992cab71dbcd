/** Packet builders shared by the Teredo tests. */
import { buildIcmpv6Packet } from '../../src/wire/icmpv6.js';
import { type Ipv4Port } from '../../src/wire/ip.js';
import { ALL_ROUTERS } from '../../src/wire/ipv6class.js';
import { encodeTeredoPacket, type AuthHeader } from '../../src/wire/teredo.js';

import { v4, v6 } from '../addresses.js';
import type { ClientStatus } from '../../src/teredo/client.js';

export { v4, v6 };

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

/** A client qualified behind a port-restricted NAT, as `show state` sees it. */
export const QUALIFIED_STATUS: ClientStatus = {
  state: 'qualified',
  reason: 'qualified',
  server: v4('198.51.100.1'),
  server2: v4('198.51.100.2'),
  natType: 'port-restricted',
  natDetection: 'done',
  portFilteringKnown: true,
  portPreserving: false,
  localMapping: { addr: v4('192.168.1.10'), port: 50000 },
  externalMapping: { addr: v4('203.0.113.1'), port: 20001 },
  teredoAddress: v6('2001:0:c633:6401:104e:b1de:34ff:8efe'),
  mtu: 1280,
  refreshIntervalMs: [15000, 21000],
  addressChanges: 0,
  lastServerContact: 95_000,
};
