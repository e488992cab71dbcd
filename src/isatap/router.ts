/**
 * The ISATAP router (RFC 5214 §8.2): answers each Router Solicitation that reaches it over protocol 41 with a
 * unicast Router Advertisement carrying the configured /64 prefixes, and itself as a default router only when asked
 * (--default-route); forwards between the ISATAP link and native IPv6 by way of the kernel: packets from ISATAP
 * hosts go up the tunnel interface, packets the kernel routes into it go to the IPv4 address embedded in their
 * ISATAP destination.
 *
 * With `advertiser: 'kernel'` the advertisements come from a daemon on the tunnel interface (radvd): solicitations
 * are handed up to it, its unicast answers go out like any other packet, and its periodic multicast ones go to
 * every host that solicited recently (ISATAP has no multicast, RFC 5214 §8).
 */
import { Counters } from '../core/counters.js';
import { TimerTable, type Millis } from '../core/time.js';
import { buildIcmpv6Packet, parseIcmpv6Packet, type NdpOption } from '../wire/icmpv6.js';
import { formatIpv4, formatIpv6, ipv6HasPrefix, isGlobalIpv4, type Ipv4 } from '../wire/ip.js';
import { decodeIsatap, isatapAddress } from '../wire/isatap.js';
import { NEXT_HEADER_ICMPV6 } from '../wire/ipv6.js';
import { LINK_LOCAL_PREFIX } from './host.js';
import { ago, checkOutgoing, decapsulate, isMulticastIpv6, usableIpv4Destination, TunnelQueue, type TunnelAction, type TunnelCore } from './tunnel.js';

/** RFC 4861 §6.2.1 defaults: AdvDefaultLifetime 1800 s (3 × MaxRtrAdvInterval), AdvValidLifetime 30 days,
 *  AdvPreferredLifetime 7 days. */
export const DEFAULT_ROUTER_LIFETIME_S = 1800;
export const DEFAULT_VALID_LIFETIME_S = 2592000;
export const DEFAULT_PREFERRED_LIFETIME_S = 604800;
/** Hosts that solicited within this long receive the advertiser's multicast advertisements (kernel mode). */
export const SOLICITOR_MEMORY_MS = 3600_000;
/** One answer per host per second at most: a solicitation costs a spoofer less than the advertisement it draws
 *  (RFC 4861 §6.2.6 lets routers limit their answers). */
export const MIN_ANSWER_INTERVAL_MS = 1000;
/** Outer sources can be spoofed: the solicitor table (used only to relay an advertiser's multicast) is bounded. */
export const MAX_SOLICITORS = 4096;

export interface IsatapRouterConfig {
  local: Ipv4;
  /** The /64 prefixes to advertise, 16 bytes each (interface identifier ignored). */
  prefixes: Uint8Array[];
  /** Advertise a router lifetime (be a default router): --default-route. */
  defaultRoute: boolean;
  routerLifetimeS?: number;
  validLifetimeS?: number;
  preferredLifetimeS?: number;
  mtu?: number;
  /** 'core': we answer solicitations; 'kernel': a daemon on the tunnel interface (radvd) does. */
  advertiser?: 'core' | 'kernel';
}

export class IsatapRouter implements TunnelCore {
  readonly events = new Counters();
  readonly drops = new Counters();
  readonly linkLocal: Uint8Array;
  private readonly queue = new TunnelQueue();
  private readonly timers = new TimerTable<'forget'>();
  private readonly prefixes: Uint8Array[];
  private readonly isPublic: boolean;
  private readonly solicitors = new Map<Ipv4, Millis>();
  private started = false;

  constructor(private readonly config: IsatapRouterConfig) {
    this.isPublic = isGlobalIpv4(config.local);
    this.linkLocal = isatapAddress(LINK_LOCAL_PREFIX, config.local, this.isPublic);
    this.prefixes = config.prefixes.map((p) => {
      const out = new Uint8Array(16);
      out.set(p.subarray(0, 8));
      return out;
    });
  }

  start(_now: Millis): void {
    if (this.started) return;
    this.started = true;
    const addresses = [{ address: this.linkLocal, prefixLength: 64 }];
    const routes: { prefix: Uint8Array; prefixLength: number }[] = [];
    for (const p of this.prefixes) {
      addresses.push({ address: isatapAddress(p, this.config.local, this.isPublic), prefixLength: 64 });
      routes.push({ prefix: p, prefixLength: 64 });
    }
    this.queue.push({ kind: 'iface-up', addresses, mtu: this.config.mtu ?? 1280, routes });
    this.queue.push({ kind: 'state-changed', state: 'advertising', reason: 'started', detail: { prefixes: this.prefixes.map((p) => `${formatIpv6(p)}/64`) } });
  }

  handleIpv4(now: Millis, packet: Uint8Array): void {
    const d = decapsulate(packet, this.drops);
    if (!d) return;
    if (d.dst !== this.config.local) {
      this.drops.inc('wrong-ipv4-destination');
      return;
    }
    const inner = d.inner;
    // RFC 5214 §7.3: the inner source must be an ISATAP address on the link that embeds the outer source (a router
    // has no PRL of its own here). Solicitations from the unspecified address are let through to be answered.
    const src = inner.subarray(8, 24);
    const isatap = decodeIsatap(src);
    if (!isatap) {
      this.drops.inc('source-not-isatap');
      return;
    }
    if (!this.onLink(src)) {
      this.drops.inc('source-not-on-link');
      return;
    }
    if (isatap.ipv4 !== d.src) {
      this.drops.inc('source-ipv4-mismatch');
      return;
    }
    if (inner[6] === NEXT_HEADER_ICMPV6 && inner.length >= 41) {
      const type = inner[40]!;
      if (type === 133) {
        this.handleSolicit(now, d.src, inner);
        return;
      }
      if (type === 134) {
        // Another router's advertisement: this router does not learn from its peers.
        this.drops.inc('ra-from-peer');
        return;
      }
    }
    this.events.inc('rx-packets');
    this.queue.push({ kind: 'ipv6-deliver', packet: inner });
  }

  handleIpv6(now: Millis, packet: Uint8Array): void {
    if (!checkOutgoing(packet, this.drops)) return;
    if (isMulticastIpv6(packet, 24)) {
      this.multicastOut(now, packet);
      return;
    }
    const dst = packet.subarray(24, 40);
    const isatap = decodeIsatap(dst);
    if (!isatap || !this.onLink(dst)) {
      // The kernel routes only the ISATAP prefixes here; anything else has no next hop on this link.
      this.drops.inc('not-on-link');
      return;
    }
    if (!usableIpv4Destination(isatap.ipv4) || isatap.ipv4 === this.config.local) {
      this.drops.inc('bad-embedded-ipv4');
      return;
    }
    this.events.inc('tx-packets');
    this.queue.push({ kind: 'ipv4-send', src: this.config.local, dst: isatap.ipv4, packet });
  }

  handleResolved(): void {
    // A router resolves nothing.
  }

  handleTimeout(now: Millis): void {
    for (const t of this.timers.due(now)) {
      if (t === 'forget') {
        for (const [a, at] of this.solicitors) if (at + SOLICITOR_MEMORY_MS <= now) this.solicitors.delete(a);
      }
    }
    this.armForget();
  }

  pollTimeout(): Millis | undefined {
    return this.timers.next();
  }

  poll(): TunnelAction | undefined {
    return this.queue.poll();
  }

  private onLink(addr: Uint8Array): boolean {
    if (ipv6HasPrefix(addr, LINK_LOCAL_PREFIX, 64)) return true;
    for (const p of this.prefixes) if (ipv6HasPrefix(addr, p, 64)) return true;
    return false;
  }

  private handleSolicit(now: Millis, from: Ipv4, inner: Uint8Array): void {
    const parsed = parseIcmpv6Packet(inner);
    if (!parsed.ok || parsed.value.message.type !== 'router-solicitation') {
      this.drops.inc(`rs-${parsed.ok ? 'malformed' : parsed.reason}`);
      return;
    }
    // RFC 4861 §6.1.1: hop limit 255.
    if (parsed.value.hopLimit !== 255) {
      this.drops.inc('rs-hop-limit');
      return;
    }
    const dst = parsed.value.dst;
    const allRouters = dst[0] === 0xff && dst[1] === 0x02 && dst[15] === 2 && dst.subarray(2, 15).every((b) => b === 0);
    const forUs = allRouters || (decodeIsatap(dst)?.ipv4 === this.config.local && ipv6HasPrefix(dst, LINK_LOCAL_PREFIX, 64));
    if (!forUs) {
      this.drops.inc('rs-not-for-us');
      return;
    }
    const last = this.solicitors.get(from);
    if (last !== undefined && now - last < MIN_ANSWER_INTERVAL_MS) {
      this.drops.inc('rs-rate-limited');
      return;
    }
    this.events.inc('rs-received');
    if (this.solicitors.has(from) || this.solicitors.size < MAX_SOLICITORS) this.solicitors.set(from, now);
    else this.drops.inc('solicitors-full');
    this.armForget();
    if (this.config.advertiser === 'kernel') {
      this.queue.push({ kind: 'ipv6-deliver', packet: inner });
      return;
    }
    // RFC 5214 §8.2.3: the answer is unicast to the soliciting host, inside protocol 41 to its IPv4 address.
    const to = isatapAddress(LINK_LOCAL_PREFIX, from, isGlobalIpv4(from));
    const solicitedFrom = parsed.value.src.every((b) => b === 0) ? to : parsed.value.src;
    const ra = buildIcmpv6Packet(this.linkLocal, solicitedFrom, this.advertisement());
    this.events.inc('ra-sent');
    this.queue.push({ kind: 'ipv4-send', src: this.config.local, dst: from, packet: ra });
  }

  /** The advertisement: the prefixes (on-link, autonomous), the MTU, and a router lifetime only with --default-route. */
  advertisement(): Parameters<typeof buildIcmpv6Packet>[2] {
    const options: NdpOption[] = this.prefixes.map((prefix) => ({
      type: 'prefix-information',
      prefixLength: 64,
      onLink: true,
      autonomous: true,
      validLifetime: this.config.validLifetimeS ?? DEFAULT_VALID_LIFETIME_S,
      preferredLifetime: this.config.preferredLifetimeS ?? DEFAULT_PREFERRED_LIFETIME_S,
      prefix,
    }));
    options.push({ type: 'mtu', mtu: this.config.mtu ?? 1280 });
    return {
      type: 'router-advertisement',
      curHopLimit: 64,
      managed: false,
      other: false,
      routerLifetime: this.config.defaultRoute ? (this.config.routerLifetimeS ?? DEFAULT_ROUTER_LIFETIME_S) : 0,
      reachableTime: 0,
      retransTimer: 0,
      options,
    };
  }

  /** Multicast from the kernel side: an advertiser's periodic advertisement goes to each recent solicitor. */
  private multicastOut(now: Millis, packet: Uint8Array): void {
    const isRa = packet[6] === NEXT_HEADER_ICMPV6 && packet.length >= 41 && packet[40] === 134;
    if (!isRa || this.config.advertiser !== 'kernel') {
      this.drops.inc('multicast');
      return;
    }
    for (const [addr, at] of this.solicitors) {
      if (at + SOLICITOR_MEMORY_MS <= now) continue;
      this.events.inc('ra-relayed');
      this.queue.push({ kind: 'ipv4-send', src: this.config.local, dst: addr, packet });
    }
  }

  private armForget(): void {
    let first: Millis | undefined;
    for (const at of this.solicitors.values()) if (first === undefined || at < first) first = at;
    if (first === undefined) this.timers.clear('forget');
    else this.timers.set('forget', first + SOLICITOR_MEMORY_MS);
  }

  status(now: Millis): Record<string, unknown> {
    return {
      role: 'isatap-router',
      state: 'advertising',
      local: formatIpv4(this.config.local),
      ipv4Public: this.isPublic,
      linkLocal: formatIpv6(this.linkLocal),
      advertiser: this.config.advertiser ?? 'core',
      defaultRoute: this.config.defaultRoute,
      routerLifetimeS: this.config.defaultRoute ? (this.config.routerLifetimeS ?? DEFAULT_ROUTER_LIFETIME_S) : 0,
      mtu: this.config.mtu ?? 1280,
      prefixes: this.prefixes.map((p) => ({ prefix: `${formatIpv6(p)}/64`, address: formatIpv6(isatapAddress(p, this.config.local, this.isPublic)) })),
      solicitors: [...this.solicitors].map(([a, at]) => ({ host: formatIpv4(a), lastSolicitAgoMs: ago(now, at) })),
      events: this.events.snapshot(),
      drops: this.drops.snapshot(),
    };
  }
}
