/**
 * The ISATAP host (RFC 5214): the potential router list (PRL) from a name ("isatap", re-resolved every
 * PrlRefreshInterval) and/or configured addresses; unicast Router Solicitations over protocol 41 to each PRL
 * member, retransmitted as RFC 4861 §6.3.7 says and then backed off as RFC 7559 does; Router Advertisements
 * processed into on-link prefixes, autoconfigured addresses (prefix + ISATAP interface identifier), default routers
 * and lifetimes; the inner/outer source check of RFC 5214 §7.3; direct host-to-host delivery for destinations on an
 * ISATAP prefix, everything else to a default router.
 */
import { Counters } from '../core/counters.js';
import type { Rng } from '../core/rng.js';
import { TimerTable, type Millis } from '../core/time.js';
import { buildIcmpv6Packet, parseIcmpv6Packet, type NdpOption } from '../wire/icmpv6.js';
import { formatIpv4, formatIpv6, ipv6HasPrefix, ipv6Key, isGlobalIpv4, type Ipv4 } from '../wire/ip.js';
import { decodeIsatap, isatapAddress } from '../wire/isatap.js';
import { NEXT_HEADER_ICMPV6 } from '../wire/ipv6.js';
import {
  ago,
  checkOutgoing,
  decapsulate,
  isLinkLocalIpv6,
  isMulticastIpv6,
  remainingS,
  usableIpv4Destination,
  TunnelQueue,
  type TunnelAction,
  type TunnelCore,
  type TunnelRoute,
} from './tunnel.js';

/** RFC 4861 §10 host constants. */
export const MAX_RTR_SOLICITATION_DELAY_MS = 1000;
export const RTR_SOLICITATION_INTERVAL_MS = 4000;
export const MAX_RTR_SOLICITATIONS = 3;
/** RFC 7559 §2: the ceiling of the solicitation backoff. */
export const MAX_RTR_SOLICITATION_INTERVAL_MS = 3600_000;
/** RFC 5214 §8.3.2 / §8.3.4 defaults. */
export const PRL_REFRESH_INTERVAL_MS = 3600_000;
export const MIN_ROUTER_SOLICIT_INTERVAL_MS = 120_000;
/** Bounds on what names and advertisements can make the host keep. */
export const MAX_PRL = 16;
export const MAX_PREFIXES = 16;
/** A failed resolution is retried sooner than a successful one is refreshed. */
export const RESOLVE_RETRY_MS = 60_000;
/** RFC 4862 §5.5.3 (e): the two-hour rule. */
const TWO_HOURS_MS = 7200_000;
const INFINITE = 0xffffffff;

export const LINK_LOCAL_PREFIX = Uint8Array.of(0xfe, 0x80, 0, 0, 0, 0, 0, 0);

export interface IsatapHostConfig {
  /** The host's IPv4 address: the tunnel endpoint, embedded in every ISATAP address of the host. */
  local: Ipv4;
  /** Name that gives the PRL (default none); `transit6 isatap host` uses "isatap" unless --router is given. */
  routerName?: string;
  /** Routers configured by address (as `netsh interface isatap set router` does); they stay in the PRL. */
  routers?: Ipv4[];
  prlRefreshMs?: number;
  minRouterSolicitIntervalMs?: number;
  mtu?: number;
}

export type IsatapHostState = 'resolving' | 'soliciting' | 'configured' | 'no-router';

interface PrlEntry {
  addr: Ipv4;
  /** Where it came from: --router, or the name. */
  source: 'configured' | 'dns';
  solicitations: number;
  lastSolicitAt?: Millis;
  lastAdvertAt?: Millis;
  /** Default router until then (0: not a default router). */
  defaultUntil: Millis;
  routerLifetimeS: number;
}

interface PrefixEntry {
  prefix: Uint8Array; // 16 bytes, the /64 with zero interface identifier
  onLink: boolean;
  autonomous: boolean;
  address?: Uint8Array;
  validUntil: Millis;
  preferredUntil: Millis;
  router: Ipv4;
}

export class IsatapHost implements TunnelCore {
  readonly events = new Counters();
  readonly drops = new Counters();
  readonly linkLocal: Uint8Array;
  private readonly queue = new TunnelQueue();
  private readonly timers = new TimerTable<string>();
  private readonly prl = new Map<Ipv4, PrlEntry>();
  private readonly prefixes = new Map<string, PrefixEntry>();
  private readonly isPublic: boolean;
  private readonly prlRefreshMs: number;
  private readonly minSolicitMs: number;
  private mtu: number;
  private state: IsatapHostState;
  private lastIface = '';
  private resolvedAt: Millis | undefined;
  private resolveError: string | undefined;
  private started = false;

  constructor(
    private readonly config: IsatapHostConfig,
    private readonly rng: Rng,
  ) {
    this.isPublic = isGlobalIpv4(config.local);
    // RFC 5214 §6.2: the link-local address fe80::5efe:w.x.y.z, or fe80::200:5efe:w.x.y.z for a public IPv4.
    this.linkLocal = isatapAddress(LINK_LOCAL_PREFIX, config.local, this.isPublic);
    this.prlRefreshMs = config.prlRefreshMs ?? PRL_REFRESH_INTERVAL_MS;
    this.minSolicitMs = config.minRouterSolicitIntervalMs ?? MIN_ROUTER_SOLICIT_INTERVAL_MS;
    this.mtu = config.mtu ?? 1280;
    this.state = config.routerName ? 'resolving' : 'soliciting';
    for (const r of config.routers ?? []) this.prl.set(r, newEntry(r, 'configured'));
  }

  /** First call: the interface with its link-local address, the name lookup and the first solicitations. */
  start(now: Millis): void {
    if (this.started) return;
    this.started = true;
    this.pushIface();
    if (this.config.routerName) this.queue.push({ kind: 'resolve', name: this.config.routerName });
    for (const e of this.prl.values()) this.scheduleFirstSolicit(now, e);
    this.setState(this.config.routerName ? 'resolving' : this.prl.size > 0 ? 'soliciting' : 'no-router', 'started');
  }

  // -------------------------------------------------------------------------------------------------------------
  // Inputs

  handleIpv4(now: Millis, packet: Uint8Array): void {
    const d = decapsulate(packet, this.drops);
    if (!d) return;
    if (d.dst !== this.config.local) {
      this.drops.inc('wrong-ipv4-destination');
      return;
    }
    const inner = d.inner;
    // RFC 5214 §7.3: the inner source is right for the outer one if it is an ISATAP address on an on-link prefix
    // (link-local included) that embeds the outer source, or if the outer source is in the PRL.
    const viaPrl = this.prl.has(d.src);
    if (!viaPrl) {
      const why = this.sourceProblem(inner, d.src);
      if (why) {
        this.drops.inc(why);
        return;
      }
    }
    if (inner[6] === NEXT_HEADER_ICMPV6 && inner.length >= 41) {
      const type = inner[40]!;
      if (type === 134) {
        this.handleAdvert(now, d.src, inner);
        return;
      }
      if (type === 133) {
        // RFC 4861 §6.1.1: hosts silently discard solicitations.
        this.drops.inc('rs-on-host');
        return;
      }
    }
    this.events.inc('rx-packets');
    this.queue.push({ kind: 'ipv6-deliver', packet: inner });
  }

  handleIpv6(now: Millis, packet: Uint8Array): void {
    if (!checkOutgoing(packet, this.drops)) return;
    if (isMulticastIpv6(packet, 24)) {
      // ISATAP links are NBMA (RFC 5214 §8): no multicast besides the unicast solicitations we make ourselves.
      this.drops.inc('multicast');
      return;
    }
    const dst = packet.subarray(24, 40);
    let to = this.directTarget(dst);
    if (to === undefined) {
      const router = this.defaultRouter(now);
      if (!router) {
        this.drops.inc('no-default-router');
        return;
      }
      to = router.addr;
      this.events.inc('tx-via-router');
    } else this.events.inc('tx-direct');
    if (!usableIpv4Destination(to) || to === this.config.local) {
      this.drops.inc('bad-embedded-ipv4');
      return;
    }
    this.queue.push({ kind: 'ipv4-send', src: this.config.local, dst: to, packet });
  }

  handleResolved(now: Millis, name: string, addresses: Ipv4[] | undefined, error?: string): void {
    if (name !== this.config.routerName) return;
    if (!addresses || addresses.length === 0) {
      // Keep what we have (RFC 5214 §8.3.2 does not say to forget the PRL on a failed lookup); try again sooner.
      this.events.inc('resolve-failed');
      this.resolveError = error ?? 'no addresses';
      this.timers.set('prl-refresh', now + Math.min(RESOLVE_RETRY_MS, this.prlRefreshMs));
      if (this.prl.size === 0) this.setState('no-router', `cannot resolve ${name}: ${this.resolveError}`);
      return;
    }
    this.events.inc('resolved');
    this.resolvedAt = now;
    this.resolveError = undefined;
    const fresh = new Set(addresses);
    // RFC 5214 §8.3.2: the PRL is re-initialized from the name; configured routers stay.
    for (const [addr, e] of this.prl) {
      if (e.source === 'dns' && !fresh.has(addr)) {
        this.prl.delete(addr);
        this.timers.clear(`rs:${addr}`);
        this.forgetRouter(addr);
        this.events.inc('prl-removed');
      }
    }
    for (const addr of addresses) {
      if (this.prl.has(addr) || addr === this.config.local || !usableIpv4Destination(addr)) continue;
      if (this.prl.size >= MAX_PRL) {
        this.drops.inc('prl-full');
        continue;
      }
      const e = newEntry(addr, 'dns');
      this.prl.set(addr, e);
      this.events.inc('prl-added');
      this.scheduleFirstSolicit(now, e);
    }
    this.timers.set('prl-refresh', now + this.prlRefreshMs);
    if (this.state === 'resolving' || this.state === 'no-router') this.setState(this.prl.size > 0 ? 'soliciting' : 'no-router', `${name} resolved`);
    this.pushIface();
  }

  handleTimeout(now: Millis): void {
    for (const name of this.timers.due(now)) {
      if (name === 'prl-refresh') {
        if (this.config.routerName) this.queue.push({ kind: 'resolve', name: this.config.routerName });
      } else if (name === 'expiry') {
        this.expire(now);
      } else if (name.startsWith('rs:')) {
        const e = this.prl.get(Number(name.slice(3)));
        if (e) this.solicit(now, e);
      }
    }
    this.armExpiry();
  }

  pollTimeout(): Millis | undefined {
    return this.timers.next();
  }

  poll(): TunnelAction | undefined {
    return this.queue.poll();
  }

  // -------------------------------------------------------------------------------------------------------------
  // Router discovery

  private scheduleFirstSolicit(now: Millis, e: PrlEntry): void {
    // RFC 4861 §6.3.7: a random delay of up to MAX_RTR_SOLICITATION_DELAY before the first solicitation.
    this.timers.set(`rs:${e.addr}`, now + (this.rng.u32() % (MAX_RTR_SOLICITATION_DELAY_MS + 1)));
  }

  private solicit(now: Millis, e: PrlEntry): void {
    // RFC 5214 §8.3.4: unicast to the PRL member, inner destination its link-local ISATAP address.
    const routerLinkLocal = isatapAddress(LINK_LOCAL_PREFIX, e.addr, isGlobalIpv4(e.addr));
    const rs = buildIcmpv6Packet(this.linkLocal, routerLinkLocal, { type: 'router-solicitation', options: [] });
    this.queue.push({ kind: 'ipv4-send', src: this.config.local, dst: e.addr, packet: rs });
    this.events.inc('rs-sent');
    e.solicitations++;
    e.lastSolicitAt = now;
    this.timers.set(`rs:${e.addr}`, now + this.nextSolicitDelay(e));
  }

  /** RFC 4861 §6.3.7 for the first three, then RFC 7559 §2's doubling with ±10 % jitter up to an hour. */
  private nextSolicitDelay(e: PrlEntry): Millis {
    if (e.solicitations < MAX_RTR_SOLICITATIONS) return RTR_SOLICITATION_INTERVAL_MS;
    const base = Math.min(MAX_RTR_SOLICITATION_INTERVAL_MS, RTR_SOLICITATION_INTERVAL_MS * 2 ** (e.solicitations - MAX_RTR_SOLICITATIONS + 1));
    const jitter = ((this.rng.u32() / 0x100000000) * 0.2 - 0.1) * base;
    return Math.round(base + jitter);
  }

  private handleAdvert(now: Millis, from: Ipv4, inner: Uint8Array): void {
    const e = this.prl.get(from);
    if (!e) {
      // RFC 5214 §8.3.2: advertisements count only from routers in the PRL.
      this.drops.inc('ra-not-from-prl');
      return;
    }
    const parsed = parseIcmpv6Packet(inner);
    if (!parsed.ok || parsed.value.message.type !== 'router-advertisement') {
      this.drops.inc(`ra-${parsed.ok ? 'malformed' : parsed.reason}`);
      return;
    }
    // RFC 4861 §6.1.2: hop limit 255 and a link-local source.
    if (parsed.value.hopLimit !== 255) {
      this.drops.inc('ra-hop-limit');
      return;
    }
    if (!isLinkLocalIpv6(parsed.value.src)) {
      this.drops.inc('ra-source-not-link-local');
      return;
    }
    const ra = parsed.value.message;
    this.events.inc('ra-received');
    e.lastAdvertAt = now;
    e.routerLifetimeS = ra.routerLifetime;
    e.defaultUntil = ra.routerLifetime > 0 ? now + ra.routerLifetime * 1000 : 0;
    let shortest = ra.routerLifetime > 0 ? ra.routerLifetime * 1000 : Infinity;
    for (const opt of ra.options) {
      const life = this.handleOption(now, from, opt);
      if (life !== undefined) shortest = Math.min(shortest, life);
    }
    // RFC 5214 §8.3.4: solicit again before what the router gave us runs out, but not more often than
    // MinRouterSolicitInterval.
    e.solicitations = 0;
    const refresh = shortest === Infinity ? MAX_RTR_SOLICITATION_INTERVAL_MS : Math.min(MAX_RTR_SOLICITATION_INTERVAL_MS, Math.max(this.minSolicitMs, shortest / 2));
    this.timers.set(`rs:${from}`, now + refresh);
    this.pushIface();
    this.armExpiry();
    this.setState('configured', `advertisement from ${formatIpv4(from)}`);
  }

  /** One option of an advertisement; returns the lifetime it carries (ms), if any. */
  private handleOption(now: Millis, router: Ipv4, opt: NdpOption): Millis | undefined {
    if (opt.type === 'mtu') {
      if (opt.mtu >= 1280 && opt.mtu <= 65515) this.mtu = opt.mtu;
      else this.drops.inc('ra-bad-mtu');
      return undefined;
    }
    if (opt.type !== 'prefix-information') return undefined;
    // RFC 4861 §6.3.4 / RFC 4862 §5.5.3: ignore link-local prefixes and preferred > valid.
    if (isLinkLocalIpv6(opt.prefix)) {
      this.drops.inc('prefix-link-local');
      return undefined;
    }
    if (opt.preferredLifetime > opt.validLifetime) {
      this.drops.inc('prefix-bad-lifetimes');
      return undefined;
    }
    if (opt.prefixLength !== 64) {
      // ISATAP interface identifiers are 64 bits (RFC 5214 §6.1): nothing else can be autoconfigured or be on-link
      // with direct delivery by embedded IPv4.
      this.drops.inc('prefix-not-64');
      return undefined;
    }
    const prefix = new Uint8Array(16);
    prefix.set(opt.prefix.subarray(0, 8));
    const key = ipv6Key(prefix);
    const old = this.prefixes.get(key);
    const validMs = opt.validLifetime === INFINITE ? Infinity : opt.validLifetime * 1000;
    const preferredMs = opt.preferredLifetime === INFINITE ? Infinity : opt.preferredLifetime * 1000;
    if (validMs === 0) {
      if (old) {
        this.prefixes.delete(key);
        this.events.inc('prefix-withdrawn');
      }
      return undefined;
    }
    let validUntil = now + validMs;
    if (old && old.autonomous && opt.autonomous) {
      // RFC 4862 §5.5.3 (e): an advertisement cannot shorten a valid lifetime below two hours.
      const remaining = old.validUntil - now;
      if (validMs <= TWO_HOURS_MS && validMs <= remaining) validUntil = now + (remaining <= TWO_HOURS_MS ? remaining : TWO_HOURS_MS);
    }
    const entry: PrefixEntry = {
      prefix,
      onLink: opt.onLink,
      autonomous: opt.autonomous,
      validUntil,
      preferredUntil: now + preferredMs,
      router,
      ...(opt.autonomous ? { address: isatapAddress(prefix, this.config.local, this.isPublic) } : {}),
    };
    if (!old && this.prefixes.size >= MAX_PREFIXES) {
      this.drops.inc('prefix-table-full');
      return undefined;
    }
    if (!old) this.events.inc('prefix-added');
    this.prefixes.set(key, entry);
    return validMs;
  }

  private forgetRouter(addr: Ipv4): void {
    for (const [k, p] of this.prefixes) if (p.router === addr) this.prefixes.delete(k);
    this.pushIface();
  }

  private expire(now: Millis): void {
    let changed = false;
    for (const [k, p] of this.prefixes) {
      if (p.validUntil <= now) {
        this.prefixes.delete(k);
        this.events.inc('prefix-expired');
        changed = true;
      }
    }
    for (const e of this.prl.values()) {
      if (e.defaultUntil !== 0 && e.defaultUntil <= now) {
        e.defaultUntil = 0;
        this.events.inc('router-expired');
        changed = true;
      }
    }
    if (changed) {
      this.pushIface();
      if (this.prefixes.size === 0 && !this.defaultRouter(now)) this.setState('soliciting', 'everything the routers advertised expired');
    }
  }

  private armExpiry(): void {
    let at = Infinity;
    for (const p of this.prefixes.values()) at = Math.min(at, p.validUntil);
    for (const e of this.prl.values()) if (e.defaultUntil !== 0) at = Math.min(at, e.defaultUntil);
    if (at === Infinity) this.timers.clear('expiry');
    else this.timers.set('expiry', at);
  }

  // -------------------------------------------------------------------------------------------------------------
  // Forwarding decisions

  /** The IPv4 address to send to directly, when `dst` is an ISATAP address on the link (link-local or on-link). */
  private directTarget(dst: Uint8Array): Ipv4 | undefined {
    const isatap = decodeIsatap(dst);
    if (!isatap) return undefined;
    if (ipv6HasPrefix(dst, LINK_LOCAL_PREFIX, 64)) return isatap.ipv4;
    for (const p of this.prefixes.values()) if (p.onLink && ipv6HasPrefix(dst, p.prefix, 64)) return isatap.ipv4;
    return undefined;
  }

  private defaultRouter(now: Millis): PrlEntry | undefined {
    let best: PrlEntry | undefined;
    for (const e of this.prl.values()) if (e.defaultUntil > now && (!best || e.defaultUntil > best.defaultUntil)) best = e;
    return best;
  }

  /** Why an inner source does not fit the outer one (RFC 5214 §7.3), for a sender outside the PRL. */
  private sourceProblem(inner: Uint8Array, outer: Ipv4): string | undefined {
    const src = inner.subarray(8, 24);
    const isatap = decodeIsatap(src);
    if (!isatap) return 'source-not-isatap';
    let onLink = ipv6HasPrefix(src, LINK_LOCAL_PREFIX, 64);
    if (!onLink) for (const p of this.prefixes.values()) if (p.onLink && ipv6HasPrefix(src, p.prefix, 64)) onLink = true;
    if (!onLink) return 'source-not-on-link';
    if (isatap.ipv4 !== outer) return 'source-ipv4-mismatch';
    return undefined;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Interface and state

  /** The whole interface configuration, pushed when it changes. */
  private pushIface(): void {
    const addresses = [{ address: this.linkLocal, prefixLength: 64 }];
    const routes: TunnelRoute[] = [];
    for (const p of this.prefixes.values()) {
      if (p.address) addresses.push({ address: p.address, prefixLength: 64 });
      if (p.onLink) routes.push({ prefix: p.prefix, prefixLength: 64 });
    }
    // The core picks the next hop itself (the router's IPv4); the route names the router's link-local ISATAP
    // address so that `ip -6 route` shows which router is the default (as Windows' route table does).
    let def: PrlEntry | undefined;
    for (const e of this.prl.values()) if (e.defaultUntil !== 0 && (!def || e.defaultUntil > def.defaultUntil)) def = e;
    if (def) routes.push({ prefix: new Uint8Array(16), prefixLength: 0, metric: 1024, via: isatapAddress(LINK_LOCAL_PREFIX, def.addr, isGlobalIpv4(def.addr)) });
    const key = JSON.stringify([this.mtu, addresses.map((a) => formatIpv6(a.address)), routes.map((r) => `${formatIpv6(r.prefix)}/${r.prefixLength}${r.via ? ` via ${formatIpv6(r.via)}` : ''}`)]);
    if (key === this.lastIface) return;
    this.lastIface = key;
    this.queue.push({ kind: 'iface-up', addresses, mtu: this.mtu, routes });
  }

  private setState(state: IsatapHostState, reason: string): void {
    if (state === this.state && this.started && reason !== 'started') return;
    this.state = state;
    this.queue.push({ kind: 'state-changed', state, reason });
  }

  status(now: Millis): Record<string, unknown> {
    const def = this.defaultRouter(now);
    return {
      role: 'isatap-host',
      state: this.state,
      local: formatIpv4(this.config.local),
      ipv4Public: this.isPublic,
      linkLocal: formatIpv6(this.linkLocal),
      routerName: this.config.routerName ?? null,
      resolvedAgoMs: ago(now, this.resolvedAt),
      resolveError: this.resolveError ?? null,
      mtu: this.mtu,
      defaultRouter: def ? formatIpv4(def.addr) : null,
      prl: [...this.prl.values()].map((e) => ({
        router: formatIpv4(e.addr),
        source: e.source,
        linkLocal: formatIpv6(isatapAddress(LINK_LOCAL_PREFIX, e.addr, isGlobalIpv4(e.addr))),
        solicitations: e.solicitations,
        lastSolicitAgoMs: ago(now, e.lastSolicitAt),
        lastAdvertisementAgoMs: ago(now, e.lastAdvertAt),
        routerLifetimeS: e.routerLifetimeS,
        defaultRouter: e.defaultUntil > now,
      })),
      prefixes: [...this.prefixes.values()].map((p) => ({
        prefix: `${formatIpv6(p.prefix)}/64`,
        address: p.address ? formatIpv6(p.address) : null,
        onLink: p.onLink,
        router: formatIpv4(p.router),
        validS: remainingS(now, p.validUntil),
        preferredS: remainingS(now, p.preferredUntil),
      })),
      events: this.events.snapshot(),
      drops: this.drops.snapshot(),
    };
  }
}

function newEntry(addr: Ipv4, source: PrlEntry['source']): PrlEntry {
  return { addr, source, solicitations: 0, defaultUntil: 0, routerLifetimeS: 0 };
}
