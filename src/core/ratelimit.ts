/**
 * Token buckets for the cores: one global bucket, and a per-source limiter whose table has a fixed number of
 * slots, so that a flood from a million spoofed sources costs the same memory as one from ten. Time is the
 * caller's `now` (virtual in the simulator), never a clock.
 *
 * The per-source table is 2-way set associative, indexed by a keyed hash (SipHash-2-4 with a secret key), so an
 * attacker cannot choose sources that collide with a victim's slot. A source that finds no slot takes the one of
 * its pair that is idle (its bucket has refilled) or, failing that, the one used least recently: the evicted source
 * starts again with a full bucket. Eviction therefore only ever errs on the side of letting a source through; what
 * bounds a spoofed flood from many sources is the global bucket that callers check after the per-source one.
 */
import { siphash24 } from './siphash.js';
import type { Millis } from './time.js';

export interface RateLimit {
  /** Tokens added per second (the sustained rate). */
  perSecond: number;
  /** Bucket size (the largest burst). */
  burst: number;
}

/** A limit or none: `undefined` lets everything through. */
export type RateLimitSetting = RateLimit | undefined;

export function checkRateLimit(what: string, l: RateLimit): void {
  if (!(l.perSecond > 0) || !Number.isFinite(l.perSecond)) throw new RangeError(`${what}: the rate must be a positive number per second`);
  if (!(l.burst >= 1) || !Number.isFinite(l.burst)) throw new RangeError(`${what}: the burst must be at least 1`);
}

/** One bucket. */
export class TokenBucket {
  private tokens: number;
  private last: Millis | undefined;
  /** Requests refused since creation. */
  refused = 0;

  constructor(readonly limit: RateLimit) {
    checkRateLimit('token bucket', limit);
    this.tokens = limit.burst;
  }

  take(now: Millis, cost = 1): boolean {
    if (this.last !== undefined && now > this.last) this.tokens = Math.min(this.limit.burst, this.tokens + ((now - this.last) * this.limit.perSecond) / 1000);
    if (this.last === undefined || now > this.last) this.last = now;
    if (this.tokens >= cost) {
      this.tokens -= cost;
      return true;
    }
    this.refused++;
    return false;
  }
}

/** Default number of slots of a per-source table: 16 Ki slots × 20 bytes ≈ 320 KiB. */
export const DEFAULT_LIMITER_SLOTS = 16_384;

/**
 * Per-source token buckets in a fixed-size table. Keys are bytes (an IPv4 address as 4 bytes, an IPv6 /64 as 8
 * bytes ...); `allowIpv4` avoids the allocation for the common case.
 */
export class SourceLimiter {
  readonly slots: number;
  private readonly mask: number;
  /** Fingerprint of the source in each slot (0: empty). */
  private readonly tags: Uint32Array;
  private readonly tokens: Float64Array;
  private readonly last: Float64Array;
  private readonly scratch4 = new Uint8Array(4);
  /** Sources that took a slot from another one. */
  evictions = 0;
  refused = 0;

  constructor(
    readonly limit: RateLimit,
    private readonly key: Uint8Array,
    slots = DEFAULT_LIMITER_SLOTS,
  ) {
    checkRateLimit('per-source limit', limit);
    if (key.length !== 16) throw new RangeError('the limiter key is 16 bytes');
    if (!Number.isInteger(slots) || slots < 2 || slots > 1 << 24 || (slots & (slots - 1)) !== 0) throw new RangeError('the limiter table size must be a power of two, 2 to 16777216');
    this.slots = slots;
    this.mask = slots - 1;
    this.tags = new Uint32Array(slots);
    this.tokens = new Float64Array(slots);
    this.last = new Float64Array(slots);
  }

  /** Bytes the table holds, whatever the number of sources. */
  get memoryBytes(): number {
    return this.slots * (4 + 8 + 8);
  }

  /** Slots in use. */
  get used(): number {
    let n = 0;
    for (const t of this.tags) if (t !== 0) n++;
    return n;
  }

  allowIpv4(now: Millis, addr: number, cost = 1): boolean {
    const b = this.scratch4;
    b[0] = addr >>> 24;
    b[1] = (addr >>> 16) & 0xff;
    b[2] = (addr >>> 8) & 0xff;
    b[3] = addr & 0xff;
    return this.allow(now, b, cost);
  }

  allow(now: Millis, source: Uint8Array, cost = 1): boolean {
    const h = siphash24(this.key, source);
    const index = (h[0]! | (h[1]! << 8) | (h[2]! << 16) | (h[3]! << 24)) >>> 0;
    const tag = ((h[4]! | (h[5]! << 8) | (h[6]! << 16) | (h[7]! << 24)) >>> 0) || 1;
    const a = index & this.mask;
    const b = a ^ 1;
    let slot: number;
    if (this.tags[a] === tag) slot = a;
    else if (this.tags[b] === tag) slot = b;
    else {
      slot = this.victim(now, a, b);
      if (this.tags[slot] !== 0) this.evictions++;
      this.tags[slot] = tag;
      this.tokens[slot] = this.limit.burst;
      this.last[slot] = now;
    }
    const elapsed = now - this.last[slot]!;
    if (elapsed > 0) {
      this.tokens[slot] = Math.min(this.limit.burst, this.tokens[slot]! + (elapsed * this.limit.perSecond) / 1000);
      this.last[slot] = now;
    }
    if (this.tokens[slot]! >= cost) {
      this.tokens[slot]! -= cost;
      return true;
    }
    this.refused++;
    return false;
  }

  /** An empty slot, else one whose bucket has refilled by now, else the least recently used. */
  private victim(now: Millis, a: number, b: number): number {
    if (this.tags[a] === 0) return a;
    if (this.tags[b] === 0) return b;
    if (this.refilled(now, a)) return a;
    if (this.refilled(now, b)) return b;
    return this.last[a]! <= this.last[b]! ? a : b;
  }

  private refilled(now: Millis, slot: number): boolean {
    return this.tokens[slot]! + ((now - this.last[slot]!) * this.limit.perSecond) / 1000 >= this.limit.burst;
  }
}

/** A per-source limit and a global one, checked in that order (a source over its own limit spends no global token). */
export class SourceAndGlobalLimiter {
  readonly perSource: SourceLimiter | undefined;
  readonly global: TokenBucket | undefined;

  constructor(perSource: RateLimitSetting, global: RateLimitSetting, key: Uint8Array, slots = DEFAULT_LIMITER_SLOTS) {
    this.perSource = perSource ? new SourceLimiter(perSource, key, slots) : undefined;
    this.global = global ? new TokenBucket(global) : undefined;
  }

  /** 'ok', or which limit refused. */
  check(now: Millis, source: Uint8Array | number): 'ok' | 'source' | 'global' {
    if (this.perSource && !(typeof source === 'number' ? this.perSource.allowIpv4(now, source) : this.perSource.allow(now, source))) return 'source';
    if (this.global && !this.global.take(now)) return 'global';
    return 'ok';
  }
}

/** A fixed key for the simulator and tests; daemons pass 16 random bytes so that collisions cannot be chosen. */
export const FIXED_LIMITER_KEY = new Uint8Array([0x74, 0x72, 0x61, 0x6e, 0x73, 0x69, 0x74, 0x36, 0x2d, 0x72, 0x61, 0x74, 0x65, 0x6c, 0x69, 0x6d]);
