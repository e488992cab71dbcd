/**
 * The Teredo server (RFC 4380 §5.3, RFC 5991 §3.2): stateless, on a primary and a secondary IPv4 address.
 * It answers Router Solicitations with Router Advertisements carrying the origin indication, and forwards
 * bubbles and ICMPv6 between Teredo clients and towards native IPv6 exactly as §5.3.1 allows.
 *
 * One extension, for NAT-type detection: with a probe port configured, an RS received on
 * secondary:probePort is answered twice, from secondary:3544 (a port the client never sent to) and from
 * secondary:probePort. A client behind an address-restricted NAT receives both, one behind a port-restricted
 * NAT only the second. Servers without the extension (miredo-server) simply never answer on that port.
 */
import { ActionQueue, type Action, type Endpoint } from '../core/endpoint.js';
import { Counters } from '../core/counters.js';
import { ConfigError } from '../core/errors.js';
import type { Millis } from '../core/time.js';
import { buildIcmpv6Packet, parseIcmpv6, type Icmpv6Message } from '../wire/icmpv6.js';
import { formatIpv4, isGlobalIpv4, ipv6Equal, ipv6Key, type Ipv4, type Ipv4Port } from '../wire/ip.js';
import { isAllRouters, isGlobalUnicastIpv6, isLinkLocal } from '../wire/ipv6class.js';
import { isBubble, NEXT_HEADER_ICMPV6, parseIpv6, type Ipv6Error, type Ipv6Packet } from '../wire/ipv6.js';
import {
  decodeTeredoAddress,
  encodeTeredoPacket,
  FLAG_CONE,
  isTeredoAddress,
  parseTeredoPacket,
  teredoLinkLocal,
  TEREDO_PORT,
  type AuthHeader,
  type TeredoError,
  type TeredoPacket,
} from '../wire/teredo.js';
import { TEREDO_MTU } from './constants.js';
import { ServerLimiter, type ServerLimitDrop, type ServerRateLimits } from './limits.js';

export interface TeredoServerConfig {
  /** The server's IPv4 address: it goes into every client's prefix 2001:0:<primary>::/64. */
  primary: Ipv4;
  /** The second address, for cone probes and symmetric-NAT detection (RFC 4380 §5.2.1, §5.3.2). */
  secondary: Ipv4;
  /** UDP port on both addresses (RFC 4380 §2.7: 3544). */
  port?: number;
  /** NAT-probe port on the secondary address (see the file comment); undefined turns the extension off. */
  probePort?: number;
  /** MTU option in the RA (RFC 4380 §5.1.2). */
  mtu?: number;
  /** Forward ICMPv6 echo from clients to native IPv6 (the direct connectivity test, RFC 4380 §5.2.9). */
  forwardNative?: boolean;
  /** Largest ICMPv6 message forwarded to native IPv6, in bytes (Miredo: 88 bytes of payload). */
  maxNativeIcmpv6?: number;
  /** Prefix lifetimes in the RA's prefix information option. */
  prefixValidLifetime?: number;
  prefixPreferredLifetime?: number;
  /** Rate limits (src/teredo/limits.ts); unset keys take the defaults. */
  rateLimits?: Partial<ServerRateLimits>;
  /** 16 secret bytes keying the per-source tables (the daemon draws them; a fixed key otherwise). */
  rateLimitKey?: Uint8Array;
}

export type ServerDrop =
  | TeredoFrameDrop // §5.3.1 case 1
  | 'not-bubble-or-icmpv6' // §5.3.1 case 2
  | 'non-global-source' // §5.3.1 case 3
  | 'source-check-failed' // §5.3.1 case 7
  | 'bad-router-solicitation'
  | 'non-global-destination'
  | 'non-global-mapped-destination'
  | 'local-message-ignored'
  | 'native-forward-disabled'
  | 'native-not-echo'
  | 'native-too-big'
  | 'bubble-to-native'
  | 'unexpected-origin-indication'
  | 'wrong-local-endpoint'
  | 'ipv6-input-on-server'
  | ServerLimitDrop;

export type ServerEvent =
  | 'datagrams-received'
  | 'router-solicitations'
  | 'router-advertisements'
  | 'cone-probes'
  | 'port-probes'
  | 'bubbles-forwarded'
  | 'icmpv6-forwarded'
  | 'native-forwarded'
  | 'echo-replies';

const DEFAULT_MAX_NATIVE_ICMPV6 = 8 + 120;

export class TeredoServer implements Endpoint {
  readonly drops = new Counters<ServerDrop>();
  readonly events = new Counters<ServerEvent>();
  private readonly actions = new ActionQueue();
  private readonly port: number;
  private readonly mtu: number;
  private readonly prefix: Uint8Array;
  readonly limiter: ServerLimiter;

  constructor(private readonly config: TeredoServerConfig) {
    this.limiter = new ServerLimiter(config.rateLimits, config.rateLimitKey);
    if (config.primary === config.secondary) throw new ConfigError('the Teredo server needs two different IPv4 addresses');
    for (const a of [config.primary, config.secondary]) {
      // RFC 4380 §5.2.4: clients would refuse a server whose address is not global.
      if (!isGlobalIpv4(a)) throw new ConfigError(`server address ${formatIpv4(a)} is not a global unicast IPv4 address`);
    }
    this.port = config.port ?? TEREDO_PORT;
    if (config.probePort !== undefined && config.probePort === this.port) throw new ConfigError('the probe port must differ from the Teredo port');
    this.mtu = config.mtu ?? TEREDO_MTU;
    if (this.mtu < 1280 || this.mtu > 65535) throw new ConfigError(`MTU ${this.mtu} is outside 1280-65535`);
    this.prefix = new Uint8Array(16);
    this.prefix.set([0x20, 0x01, 0x00, 0x00], 0);
    this.prefix[4] = config.primary >>> 24;
    this.prefix[5] = (config.primary >>> 16) & 0xff;
    this.prefix[6] = (config.primary >>> 8) & 0xff;
    this.prefix[7] = config.primary & 0xff;
  }

  /** The server's addresses and ports (for the fast path, teredo/serverfast.ts). */
  get addresses(): { primary: Ipv4; secondary: Ipv4; port: number; probePort: number | undefined } {
    return { primary: this.config.primary, secondary: this.config.secondary, port: this.port, probePort: this.config.probePort };
  }

  /** The UDP endpoints the driver must bind. */
  localEndpoints(): Ipv4Port[] {
    const eps = [
      { addr: this.config.primary, port: this.port },
      { addr: this.config.secondary, port: this.port },
    ];
    if (this.config.probePort !== undefined) eps.push({ addr: this.config.secondary, port: this.config.probePort });
    return eps;
  }

  /** Counters for `show stats`, drops and events together. */
  stats(): { events: Record<string, number>; drops: Record<string, number> } {
    return { events: this.events.snapshot(), drops: this.drops.snapshot() };
  }

  handleDatagram(now: Millis, from: Ipv4Port, to: Ipv4Port, data: Uint8Array): void {
    this.events.inc('datagrams-received');
    const isProbe = this.config.probePort !== undefined && to.port === this.config.probePort && to.addr === this.config.secondary;
    if (!isProbe && (to.port !== this.port || (to.addr !== this.config.primary && to.addr !== this.config.secondary))) {
      this.drops.inc('wrong-local-endpoint');
      return;
    }
    // §5.3.1 case 1: the UDP content must be a well-formed Teredo IPv6 packet (§5.1.1).
    const teredo = parseTeredoPacketChecked(data);
    if (!teredo.ok) {
      this.drops.inc(teredo.reason);
      return;
    }
    const { packet, ipv6 } = teredo;
    // Only a server puts origin indications on packets; a client or relay never sends one to a server.
    if (packet.origin) {
      this.drops.inc('unexpected-origin-indication');
      return;
    }
    const h = ipv6.header;
    // §5.3.1 case 2: only bubbles and ICMPv6 (this server is not also a relay).
    const bubble = isBubble(h);
    if (!bubble && h.nextHeader !== NEXT_HEADER_ICMPV6) {
      this.drops.inc('not-bubble-or-icmpv6');
      return;
    }
    // §5.3.1 case 3: the IPv4 source must be global unicast (§5.2.4 list).
    if (!isGlobalIpv4(from.addr)) {
      this.drops.inc('non-global-source');
      return;
    }
    // §5.3.1 case 4: a link-local source soliciting ff02::2 with an RS.
    if (!bubble && isLinkLocal(h.src) && isAllRouters(h.dst)) {
      const msg = parseIcmpv6(ipv6.payload, h.src, h.dst);
      if (!msg.ok || msg.value.type !== 'router-solicitation' || h.hopLimit !== 255) {
        this.drops.inc('bad-router-solicitation');
        return;
      }
      const limited = this.limiter.routerSolicitation(now, from.addr);
      if (limited) {
        this.drops.inc(limited);
        return;
      }
      this.answerRouterSolicitation(from, to, h.src, packet.auth, isProbe);
      return;
    }
    if (isProbe) {
      // The probe port exists for router solicitations only.
      this.drops.inc('source-check-failed');
      return;
    }
    const srcTeredo = decodeTeredoAddress(h.src);
    let accepted = false;
    // §5.3.1 case 5: a Teredo source whose embedded mapping is the datagram's own source.
    if (srcTeredo && srcTeredo.prefix === 'rfc4380' && srcTeredo.mappedAddr === from.addr && srcTeredo.mappedPort === from.port) accepted = true;
    // §5.3.1 case 6: a non-Teredo source towards a Teredo address allocated through this server.
    else if (!isTeredoAddress(h.src) && isTeredoAddress(h.dst) && this.servedHere(h.dst)) accepted = true;
    if (!accepted) {
      // §5.3.1 case 7.
      this.drops.inc('source-check-failed');
      return;
    }
    const limited = this.limiter.forward(now, from.addr);
    if (limited) {
      this.drops.inc(limited);
      return;
    }
    this.forward(from, to, ipv6, packet.ipv6, bubble);
  }

  handleIpv6(): void {
    // A pure server has no IPv6 interface to receive on (§5.4.3: that would make it a relay).
    this.drops.inc('ipv6-input-on-server');
  }

  handleTimeout(): void {
    // Stateless: nothing is ever scheduled.
  }

  pollTimeout(): Millis | undefined {
    return undefined;
  }

  poll(): Action | undefined {
    return this.actions.poll();
  }

  /** Bits 32-63 of a Teredo address name this server (§5.3.1, origin indication rule). */
  private servedHere(addr: Uint8Array): boolean {
    return addr[4] === this.prefix[4] && addr[5] === this.prefix[5] && addr[6] === this.prefix[6] && addr[7] === this.prefix[7];
  }

  private forward(from: Ipv4Port, to: Ipv4Port, ipv6: Ipv6Packet, withTrailers: Uint8Array, bubble: boolean): void {
    const h = ipv6.header;
    // Packets for the server itself.
    const serverLinkLocals = [teredoLinkLocal(FLAG_CONE, { addr: to.addr, port: this.port })];
    if (isAllRouters(h.dst) || serverLinkLocals.some((ll) => ipv6Equal(ll, h.dst))) {
      this.answerLocal(from, to, ipv6);
      return;
    }
    // "If the destination IPv6 address is not a global scope IPv6 address, the packet MUST NOT be forwarded."
    if (!isGlobalUnicastIpv6(h.dst)) {
      this.drops.inc('non-global-destination');
      return;
    }
    const dstTeredo = isTeredoAddress(h.dst) ? decodeTeredoAddress(h.dst) : undefined;
    if (!dstTeredo) {
      // Towards native IPv6: only the direct connectivity test (ICMPv6 echo) leaves, and only small ones.
      if (bubble) {
        this.drops.inc('bubble-to-native');
        return;
      }
      if (this.config.forwardNative === false) {
        this.drops.inc('native-forward-disabled');
        return;
      }
      const type = ipv6.payload[0];
      if (type !== 128 && type !== 129) {
        this.drops.inc('native-not-echo');
        return;
      }
      if (ipv6.payload.length > (this.config.maxNativeIcmpv6 ?? DEFAULT_MAX_NATIVE_ICMPV6)) {
        this.drops.inc('native-too-big');
        return;
      }
      this.events.inc('native-forwarded');
      this.actions.push({ kind: 'ipv6-forward', packet: ipv6.packet.slice() });
      return;
    }
    // "the Teredo Server MUST check that the IPv4 address derived from this IPv6 address is ... global".
    if (!isGlobalIpv4(dstTeredo.mappedAddr)) {
      this.drops.inc('non-global-mapped-destination');
      return;
    }
    // RFC 6081 trailers (nonces, alternate addresses) travel on with the packet, as Miredo's server does too.
    const out: TeredoPacket = { ipv6: withTrailers };
    // Origin indication only towards clients of this server (bits 32-63 equal our address).
    if (this.servedHere(h.dst)) out.origin = from;
    this.events.inc(bubble ? 'bubbles-forwarded' : 'icmpv6-forwarded');
    this.actions.push({
      kind: 'udp-send',
      local: { addr: this.config.primary, port: this.port },
      remote: { addr: dstTeredo.mappedAddr, port: dstTeredo.mappedPort },
      data: encodeTeredoPacket(out),
    });
  }

  /** Echo requests to the server's own link-local address get a reply; nothing else is answered. */
  private answerLocal(from: Ipv4Port, to: Ipv4Port, ipv6: Ipv6Packet): void {
    const h = ipv6.header;
    if (h.nextHeader === NEXT_HEADER_ICMPV6) {
      const msg = parseIcmpv6(ipv6.payload, h.src, h.dst);
      if (msg.ok && msg.value.type === 'echo-request' && !isAllRouters(h.dst)) {
        const reply: Icmpv6Message = { type: 'echo-reply', identifier: msg.value.identifier, sequence: msg.value.sequence, data: msg.value.data };
        this.events.inc('echo-replies');
        this.actions.push({ kind: 'udp-send', local: to, remote: from, data: encodeTeredoPacket({ ipv6: buildIcmpv6Packet(h.dst, h.src, reply) }) });
        return;
      }
    }
    this.drops.inc('local-message-ignored');
  }

  /** §5.3.2: the RA goes to the mapped address and port, with the origin indication and the RS's own nonce. */
  private answerRouterSolicitation(from: Ipv4Port, to: Ipv4Port, rsSource: Uint8Array, auth: AuthHeader | undefined, isProbe: boolean): void {
    this.events.inc('router-solicitations');
    const cone = (rsSource[8]! & 0x80) !== 0;
    const other = to.addr === this.config.primary ? this.config.secondary : this.config.primary;
    const replies: Ipv4Port[] = [];
    if (isProbe) {
      this.events.inc('port-probes');
      // From a port the client never sent to first, so it is ahead of the one that always gets through.
      replies.push({ addr: this.config.secondary, port: this.port }, { addr: this.config.secondary, port: this.config.probePort! });
    } else if (cone) {
      // RFC 5991 §3.2: servers MUST NOT ignore the cone bit: the RA leaves from the other address.
      this.events.inc('cone-probes');
      replies.push({ addr: other, port: this.port });
    } else {
      replies.push({ addr: to.addr, port: this.port });
    }
    for (const local of replies) {
      const ra = this.routerAdvertisement(local.addr, rsSource);
      const out: TeredoPacket = { origin: from, ipv6: ra };
      // RFC 4380 §5.3.2: the nonce echoed is the one this RS carried, and only when it carried one.
      if (auth) out.auth = { clientId: auth.clientId, authValue: new Uint8Array(0), nonce: auth.nonce, confirmation: 0 };
      this.events.inc('router-advertisements');
      this.actions.push({ kind: 'udp-send', local, remote: from, data: encodeTeredoPacket(out) });
    }
  }

  /**
   * The RA's IPv6 packet depends only on the answering address and the RS's source (checksum included): built once
   * and reused (encodeTeredoPacket copies it), which halves the cost of an answer. A few entries suffice: clients
   * use two link-local sources; anything else just rebuilds (the cache is cleared when it grows).
   */
  private readonly raCache = new Map<string, Uint8Array>();

  private routerAdvertisement(localAddr: number, rsSource: Uint8Array): Uint8Array {
    const key = `${localAddr}/${ipv6Key(rsSource)}`;
    const hit = this.raCache.get(key);
    if (hit) return hit;
    if (this.raCache.size >= 16) this.raCache.clear();
    const ra = this.buildRouterAdvertisement(localAddr, rsSource);
    this.raCache.set(key, ra);
    return ra;
  }

  /** The RA answered from localAddr with an all-zero destination: the fast path's template (it patches the rest). */
  routerAdvertisementTemplate(localAddr: Ipv4): Uint8Array {
    return this.buildRouterAdvertisement(localAddr, new Uint8Array(16));
  }

  private buildRouterAdvertisement(localAddr: number, rsSource: Uint8Array): Uint8Array {
    return buildIcmpv6Packet(teredoLinkLocal(FLAG_CONE, { addr: localAddr, port: this.port }), rsSource, {
      type: 'router-advertisement',
      curHopLimit: 0,
      managed: false,
      other: false,
      routerLifetime: 0,
      reachableTime: 0,
      retransTimer: 2000,
      options: [
        {
          type: 'prefix-information',
          prefixLength: 64,
          onLink: false,
          autonomous: true,
          validLifetime: this.config.prefixValidLifetime ?? 0xffffffff,
          preferredLifetime: this.config.prefixPreferredLifetime ?? 0xffffffff,
          prefix: this.prefix,
        },
        { type: 'mtu', mtu: this.mtu },
      ],
    });
  }
}

export type TeredoFrameDrop = `malformed-${TeredoError}` | `malformed-ipv6-${Ipv6Error}`;
type CheckedTeredo = { ok: true; packet: TeredoPacket; ipv6: Ipv6Packet } | { ok: false; reason: TeredoFrameDrop };

/** §5.1.1 framing plus a valid IPv6 header whose payload fits the datagram (RFC 6081 trailers may follow). */
export function parseTeredoPacketChecked(data: Uint8Array): CheckedTeredo {
  const t = parseTeredoPacket(data);
  if (!t.ok) return { ok: false, reason: `malformed-${t.reason}` };
  const p = parseIpv6(t.value.ipv6);
  if (!p.ok) return { ok: false, reason: `malformed-ipv6-${p.reason}` };
  return { ok: true, packet: t.value, ipv6: p.value };
}
