/**
 * Rate limits of the Teredo server and relay (SECURITY.md): what RFC 4380 §7 and RFC 5991 leave to the
 * implementation. Miredo has none (shared/reference/miredo-lab-report.md §11), so a spoofed Router Solicitation
 * flood turns a Miredo server into a reflector, and a stream of packets to a million Teredo addresses makes a
 * Miredo relay bubble a million times.
 *
 * Server: Router Solicitations per source IPv4 address and in total; forwarded bubbles and ICMPv6 per source.
 * Relay: new peers (each costs an entry and indirect bubbles through a server) per native source /64 and in total,
 * and the ICMPv6 errors it sends about peers it could not reach.
 * Over a limit the core answers nothing and counts the drop by reason.
 */
import { DEFAULT_LIMITER_SLOTS, FIXED_LIMITER_KEY, SourceAndGlobalLimiter, SourceLimiter, TokenBucket, type RateLimitSetting } from '../core/ratelimit.js';
import type { Millis } from '../core/time.js';

export interface ServerRateLimits {
  /** Router Solicitations answered per source IPv4 address. A NAT with N clients behind it sends about N/30 per second. */
  rsPerSource: RateLimitSetting;
  /** Router Solicitations answered in total (bounds what a spoofed flood can make the server send). */
  rsGlobal: RateLimitSetting;
  /** Bubbles and ICMPv6 forwarded (§5.3.1 cases 5 and 6) per source IPv4 address. */
  forwardPerSource: RateLimitSetting;
  /** Slots of each per-source table (a power of two); memory is 20 bytes a slot whatever the number of sources. */
  tableSlots: number;
}

export const DEFAULT_SERVER_RATE_LIMITS: ServerRateLimits = {
  rsPerSource: { perSecond: 10, burst: 20 },
  rsGlobal: { perSecond: 20_000, burst: 20_000 },
  forwardPerSource: { perSecond: 1_000, burst: 2_000 },
  tableSlots: DEFAULT_LIMITER_SLOTS,
};

export interface RelayRateLimits {
  /** New peers (entries, and the bubbles to reach them) per native IPv6 source /64, or per client IPv4 address. */
  newPeerPerSource: RateLimitSetting;
  /** New peers in total. */
  newPeerGlobal: RateLimitSetting;
  /**
   * ICMPv6 errors (address unreachable) the relay sends about packets it gave up on, in total: RFC 4443 §2.4(f)
   * says to rate-limit them, and a flood from spoofed native sources would otherwise turn into backscatter.
   */
  icmpErrors: RateLimitSetting;
  tableSlots: number;
}

export const DEFAULT_RELAY_RATE_LIMITS: RelayRateLimits = {
  newPeerPerSource: { perSecond: 100, burst: 200 },
  newPeerGlobal: { perSecond: 1_000, burst: 2_000 },
  icmpErrors: { perSecond: 100, burst: 200 },
  tableSlots: DEFAULT_LIMITER_SLOTS,
};

export type ServerLimitDrop = 'rate-limited-rs-source' | 'rate-limited-rs-global' | 'rate-limited-forward';
export type RelayLimitDrop = 'rate-limited-new-peer-source' | 'rate-limited-new-peer-global' | 'rate-limited-icmp-error';

/** The server's limiters. `key`: 16 secret bytes (the daemon's CSPRNG); a fixed key in simulations. */
export class ServerLimiter {
  readonly limits: ServerRateLimits;
  private readonly rsLimiter: SourceAndGlobalLimiter;
  private readonly forwardLimiter: SourceLimiter | undefined;

  constructor(limits: Partial<ServerRateLimits> = {}, key: Uint8Array = FIXED_LIMITER_KEY) {
    this.limits = { ...DEFAULT_SERVER_RATE_LIMITS, ...limits };
    this.rsLimiter = new SourceAndGlobalLimiter(this.limits.rsPerSource, this.limits.rsGlobal, key, this.limits.tableSlots);
    this.forwardLimiter = this.limits.forwardPerSource ? new SourceLimiter(this.limits.forwardPerSource, key, this.limits.tableSlots) : undefined;
  }

  /** undefined when this RS may be answered, else the drop reason. */
  routerSolicitation(now: Millis, source: number): ServerLimitDrop | undefined {
    const r = this.rsLimiter.check(now, source);
    return r === 'ok' ? undefined : r === 'source' ? 'rate-limited-rs-source' : 'rate-limited-rs-global';
  }

  forward(now: Millis, source: number): ServerLimitDrop | undefined {
    return !this.forwardLimiter || this.forwardLimiter.allowIpv4(now, source) ? undefined : 'rate-limited-forward';
  }

  /** Bytes held by the tables (fixed). */
  get memoryBytes(): number {
    return (this.rsLimiter.perSource?.memoryBytes ?? 0) + (this.forwardLimiter?.memoryBytes ?? 0);
  }
}

export class RelayLimiter {
  readonly limits: RelayRateLimits;
  private readonly newPeers: SourceAndGlobalLimiter;
  private readonly errors: TokenBucket | undefined;

  constructor(limits: Partial<RelayRateLimits> = {}, key: Uint8Array = FIXED_LIMITER_KEY) {
    this.limits = { ...DEFAULT_RELAY_RATE_LIMITS, ...limits };
    this.newPeers = new SourceAndGlobalLimiter(this.limits.newPeerPerSource, this.limits.newPeerGlobal, key, this.limits.tableSlots);
    this.errors = this.limits.icmpErrors ? new TokenBucket(this.limits.icmpErrors) : undefined;
  }

  /** A Teredo client (by its IPv4 address) asks for a new peer entry by sending from its own mapping. */
  newClientPeer(now: Millis, addr: number): RelayLimitDrop | undefined {
    const key = Uint8Array.of(addr >>> 24, (addr >>> 16) & 0xff, (addr >>> 8) & 0xff, addr & 0xff);
    const r = this.newPeers.check(now, key);
    return r === 'ok' ? undefined : r === 'source' ? 'rate-limited-new-peer-source' : 'rate-limited-new-peer-global';
  }

  /** An ICMPv6 error may be sent now. */
  icmpError(now: Millis): boolean {
    return !this.errors || this.errors.take(now);
  }

  /** A native source (its /64: one site, however many addresses it uses) asks for a new peer entry. */
  newPeer(now: Millis, source: Uint8Array): RelayLimitDrop | undefined {
    const r = this.newPeers.check(now, source.subarray(0, 8));
    return r === 'ok' ? undefined : r === 'source' ? 'rate-limited-new-peer-source' : 'rate-limited-new-peer-global';
  }

  get memoryBytes(): number {
    return this.newPeers.perSource?.memoryBytes ?? 0;
  }
}
