/**
 * A UDP NAT table in RFC 4787 terms (mapping behaviour §4.1, port assignment §4.2.1, mapping refresh §4.3,
 * filtering §5, hairpinning §6). It holds no clock: every call takes the time, and expiry is checked lazily
 * against it, so the simulator can jump ten minutes ahead without touching the table.
 */
import { ConfigError } from '../core/errors.js';
import { randomBelow, SeededRng, type Rng } from '../core/rng.js';
import type { Millis } from '../core/time.js';
import { ipv4PortKey, type Ipv4, type Ipv4Port } from '../wire/ip.js';

/** RFC 4787 §4.1 / §5: the three ways a NAT can key its mappings or its inbound filter. */
export type NatBehavior = 'endpoint-independent' | 'address-dependent' | 'address-and-port-dependent';
/** RFC 4787 §4.2.1: how a fresh mapping's public port is chosen. */
export type NatPortAllocation = 'preserving' | 'sequential' | 'random';

export interface NatConfig {
  publicAddr: Ipv4;
  mapping: NatBehavior;
  filtering: NatBehavior;
  allocation: NatPortAllocation;
  /** Idle time after which a mapping or a permission lapses. RFC 4787 REQ-5 asks for at least 2 min; many NATs use 30 s. */
  udpTimeoutMs?: number;
  /** RFC 4787 §4.3: whether inbound packets also keep a mapping alive (REQ-6 makes outbound refresh mandatory). */
  refreshOnInbound?: boolean;
  /** Inclusive range for sequential and random allocation (and the fallback of preserving). */
  portRange?: readonly [number, number];
  /** RFC 4787 §6: whether a LAN host may reach another LAN host through the public address. */
  hairpin?: boolean;
}

export type NatDropReason = 'no-mapping' | 'filtered' | 'no-hairpin' | 'ports-exhausted' | 'not-public-address';

export type NatResult<T, R extends NatDropReason = NatDropReason> = { ok: true; value: T } | { ok: false; reason: R };

/** A live mapping as tests and "show the NAT's real mapping" checks see it. */
export interface NatMappingInfo {
  readonly private: Ipv4Port;
  readonly public: Ipv4Port;
  /** Remote endpoints this mapping has sent to whose permission is still live, in first-contact order. */
  readonly destinations: readonly Ipv4Port[];
  readonly createdAt: Millis;
  readonly lastOutboundAt: Millis;
  readonly expiresAt: Millis;
}

interface Permission {
  readonly remote: Ipv4Port;
  expiresAt: Millis;
}

interface Mapping {
  readonly id: number;
  readonly key: string;
  readonly priv: Ipv4Port;
  readonly pub: Ipv4Port;
  readonly createdAt: Millis;
  lastOutboundAt: Millis;
  expiresAt: Millis;
  /** Keyed by ipv4PortKey(remote): the address-and-port-dependent filter's permissions. */
  readonly endpoints: Map<number, Permission>;
  /** Keyed by remote address: the address-dependent filter's permissions. */
  readonly addresses: Map<Ipv4, Millis>;
}

const DEFAULT_UDP_TIMEOUT_MS = 30_000;
const DEFAULT_PORT_RANGE: readonly [number, number] = [1024, 65535];
/** Random picks tried before scanning, so that a nearly full table still allocates in bounded time. */
const RANDOM_TRIES = 32;

export class NatModel {
  readonly publicAddr: Ipv4;
  readonly mappingBehavior: NatBehavior;
  readonly filteringBehavior: NatBehavior;
  readonly allocation: NatPortAllocation;
  readonly udpTimeoutMs: number;
  readonly refreshOnInbound: boolean;
  readonly portRange: readonly [number, number];
  readonly hairpin: boolean;

  private readonly rng: Rng;
  private readonly byKey = new Map<string, Mapping>();
  private readonly byPublicPort = new Map<number, Mapping>();
  private nextId = 0;
  private cursor: number;

  /** `rng` drives random allocation; without one a generator seeded from the public address keeps runs repeatable. */
  constructor(config: NatConfig, rng?: Rng) {
    if (!Number.isInteger(config.publicAddr) || config.publicAddr < 0 || config.publicAddr > 0xffffffff) {
      throw new ConfigError(`NatModel: bad public address ${config.publicAddr}`);
    }
    const range = config.portRange ?? DEFAULT_PORT_RANGE;
    const [lo, hi] = range;
    if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < 1 || hi > 65535 || lo > hi) {
      throw new ConfigError(`NatModel: bad port range [${lo}, ${hi}]`);
    }
    const timeout = config.udpTimeoutMs ?? DEFAULT_UDP_TIMEOUT_MS;
    if (!(timeout > 0)) throw new ConfigError(`NatModel: udpTimeoutMs must be positive, got ${timeout}`);
    this.publicAddr = config.publicAddr >>> 0;
    this.mappingBehavior = config.mapping;
    this.filteringBehavior = config.filtering;
    this.allocation = config.allocation;
    this.udpTimeoutMs = timeout;
    this.refreshOnInbound = config.refreshOnInbound ?? true;
    this.portRange = [lo, hi];
    this.hairpin = config.hairpin ?? false;
    this.rng = rng ?? new SeededRng(this.publicAddr);
    this.cursor = lo;
  }

  /**
   * A packet from the private realm to `dst`: finds or creates the mapping and refreshes it and the permission
   * for `dst`. Returns the public source the packet leaves with.
   */
  outbound(now: Millis, src: Ipv4Port, dst: Ipv4Port): NatResult<Ipv4Port, 'ports-exhausted'> {
    const key = this.mappingKey(src, dst);
    let m = this.byKey.get(key);
    if (m && m.expiresAt <= now) {
      this.release(m);
      m = undefined;
    }
    if (!m) {
      const port = this.allocate(now, src.port);
      if (port === undefined) return { ok: false, reason: 'ports-exhausted' };
      m = {
        id: this.nextId++,
        key,
        priv: { addr: src.addr, port: src.port },
        pub: { addr: this.publicAddr, port },
        createdAt: now,
        lastOutboundAt: now,
        expiresAt: now,
        endpoints: new Map(),
        addresses: new Map(),
      };
      this.byKey.set(key, m);
      this.byPublicPort.set(port, m);
    }
    const until = now + this.udpTimeoutMs;
    m.lastOutboundAt = now;
    m.expiresAt = Math.max(m.expiresAt, until);
    const ek = ipv4PortKey(dst);
    const perm = m.endpoints.get(ek);
    if (perm) perm.expiresAt = Math.max(perm.expiresAt, until);
    else m.endpoints.set(ek, { remote: { addr: dst.addr, port: dst.port }, expiresAt: until });
    m.addresses.set(dst.addr, Math.max(m.addresses.get(dst.addr) ?? until, until));
    return { ok: true, value: m.pub };
  }

  /**
   * A packet from `src` on the public side to `dst` (this NAT's public address): returns the private endpoint it
   * is translated to, or why it is dropped.
   */
  inbound(now: Millis, src: Ipv4Port, dst: Ipv4Port): NatResult<Ipv4Port, 'no-mapping' | 'filtered' | 'not-public-address'> {
    if (dst.addr !== this.publicAddr) return { ok: false, reason: 'not-public-address' };
    const m = this.byPublicPort.get(dst.port);
    if (!m) return { ok: false, reason: 'no-mapping' };
    if (m.expiresAt <= now) {
      this.release(m);
      return { ok: false, reason: 'no-mapping' };
    }
    const ek = ipv4PortKey(src);
    // RFC 4787 §5: endpoint-independent filtering admits anyone; the other two need a live permission.
    switch (this.filteringBehavior) {
      case 'endpoint-independent':
        break;
      case 'address-dependent':
        if (!((m.addresses.get(src.addr) ?? -Infinity) > now)) return { ok: false, reason: 'filtered' };
        break;
      case 'address-and-port-dependent':
        if (!((m.endpoints.get(ek)?.expiresAt ?? -Infinity) > now)) return { ok: false, reason: 'filtered' };
        break;
    }
    if (this.refreshOnInbound) {
      const until = now + this.udpTimeoutMs;
      m.expiresAt = Math.max(m.expiresAt, until);
      // Only permissions that already exist are refreshed: an unsolicited sender let in by a looser filter
      // must not thereby earn a permission it never had.
      const perm = m.endpoints.get(ek);
      if (perm && perm.expiresAt > now) perm.expiresAt = Math.max(perm.expiresAt, until);
      const addrUntil = m.addresses.get(src.addr);
      if (addrUntil !== undefined && addrUntil > now) m.addresses.set(src.addr, Math.max(addrUntil, until));
    }
    return { ok: true, value: m.priv };
  }

  /**
   * RFC 4787 §6: a LAN host sending to this NAT's public address. The packet is translated out (creating the
   * sender's mapping) and back in through the filter; REQ-9 wants the receiver to see the sender's public
   * endpoint, which is what `src` of the result is.
   */
  hairpinTranslate(now: Millis, src: Ipv4Port, dst: Ipv4Port): NatResult<{ src: Ipv4Port; dst: Ipv4Port }, 'no-hairpin' | 'ports-exhausted' | 'no-mapping' | 'filtered' | 'not-public-address'> {
    if (!this.hairpin) return { ok: false, reason: 'no-hairpin' };
    const out = this.outbound(now, src, dst);
    if (!out.ok) return out;
    const back = this.inbound(now, out.value, dst);
    if (!back.ok) return back;
    return { ok: true, value: { src: out.value, dst: back.value } };
  }

  /** The public endpoint `outbound(now, src, dst)` would use if a live mapping exists, without creating or refreshing one. */
  publicEndpointFor(now: Millis, src: Ipv4Port, dst: Ipv4Port): Ipv4Port | undefined {
    const m = this.byKey.get(this.mappingKey(src, dst));
    return m && m.expiresAt > now ? m.pub : undefined;
  }

  /** Every live mapping, oldest first. */
  mappings(now: Millis): NatMappingInfo[] {
    const out: NatMappingInfo[] = [];
    for (const m of [...this.byKey.values()].sort((a, b) => a.id - b.id)) {
      if (m.expiresAt <= now) {
        this.release(m);
        continue;
      }
      const destinations: Ipv4Port[] = [];
      for (const p of m.endpoints.values()) if (p.expiresAt > now) destinations.push(p.remote);
      out.push({ private: m.priv, public: m.pub, destinations, createdAt: m.createdAt, lastOutboundAt: m.lastOutboundAt, expiresAt: m.expiresAt });
    }
    return out;
  }

  /** Fault injection: every mapping times out at once, as if the idle timer had run out; allocation state is kept. */
  expireAll(): void {
    this.byKey.clear();
    this.byPublicPort.clear();
  }

  /** Fault injection: the NAT reboots. The table is emptied and sequential allocation starts over from the range start. */
  dropAllMappings(): void {
    this.expireAll();
    this.cursor = this.portRange[0];
  }

  private mappingKey(src: Ipv4Port, dst: Ipv4Port): string {
    const base = `${src.addr}:${src.port}`;
    switch (this.mappingBehavior) {
      case 'endpoint-independent':
        return base;
      case 'address-dependent':
        return `${base}>${dst.addr}`;
      case 'address-and-port-dependent':
        return `${base}>${dst.addr}:${dst.port}`;
    }
  }

  private release(m: Mapping): void {
    if (this.byKey.get(m.key) === m) this.byKey.delete(m.key);
    if (this.byPublicPort.get(m.pub.port) === m) this.byPublicPort.delete(m.pub.port);
  }

  private isFree(now: Millis, port: number): boolean {
    const m = this.byPublicPort.get(port);
    if (!m) return true;
    if (m.expiresAt <= now) {
      this.release(m);
      return true;
    }
    return false;
  }

  private allocate(now: Millis, privatePort: number): number | undefined {
    switch (this.allocation) {
      case 'preserving':
        // RFC 4787 §4.2.1: keep the private port when nobody holds it, even outside the range, as Linux does.
        if (privatePort > 0 && this.isFree(now, privatePort)) return privatePort;
        return this.allocateSequential(now);
      case 'sequential':
        return this.allocateSequential(now);
      case 'random':
        return this.allocateRandom(now);
    }
  }

  private allocateSequential(now: Millis): number | undefined {
    const [lo, hi] = this.portRange;
    const size = hi - lo + 1;
    for (let i = 0; i < size; i++) {
      const p = lo + ((this.cursor - lo + i) % size);
      if (this.isFree(now, p)) {
        this.cursor = p === hi ? lo : p + 1;
        return p;
      }
    }
    return undefined;
  }

  private allocateRandom(now: Millis): number | undefined {
    const [lo, hi] = this.portRange;
    const size = hi - lo + 1;
    for (let i = 0; i < RANDOM_TRIES; i++) {
      const p = lo + randomBelow(this.rng, size);
      if (this.isFree(now, p)) return p;
    }
    const start = randomBelow(this.rng, size);
    for (let i = 0; i < size; i++) {
      const p = lo + ((start + i) % size);
      if (this.isFree(now, p)) return p;
    }
    return undefined;
  }
}

export type NatPresetKind = 'full-cone' | 'restricted' | 'port-restricted' | 'symmetric';

export interface NatPresetOptions extends Partial<Omit<NatConfig, 'publicAddr'>> {
  rng?: Rng;
}

/**
 * The classic RFC 3489 names mapped onto RFC 4787 behaviour. The cone presets allocate sequentially rather than
 * preserving ports so that a core which confuses its local port with its mapped port fails visibly in tests;
 * pass `allocation: 'preserving'` to model a Linux-like NAT.
 */
export function natPreset(kind: NatPresetKind, publicAddr: Ipv4, opts: NatPresetOptions = {}): NatModel {
  const { rng, ...overrides } = opts;
  const base: NatConfig = (() => {
    switch (kind) {
      case 'full-cone':
        return { publicAddr, mapping: 'endpoint-independent', filtering: 'endpoint-independent', allocation: 'sequential' };
      case 'restricted':
        return { publicAddr, mapping: 'endpoint-independent', filtering: 'address-dependent', allocation: 'sequential' };
      case 'port-restricted':
        return { publicAddr, mapping: 'endpoint-independent', filtering: 'address-and-port-dependent', allocation: 'sequential' };
      case 'symmetric':
        return { publicAddr, mapping: 'address-and-port-dependent', filtering: 'address-and-port-dependent', allocation: 'random' };
    }
  })();
  // Field by field, so that an override spelled `undefined` keeps the preset's value.
  const config: NatConfig = {
    publicAddr,
    mapping: overrides.mapping ?? base.mapping,
    filtering: overrides.filtering ?? base.filtering,
    allocation: overrides.allocation ?? base.allocation,
  };
  if (overrides.udpTimeoutMs !== undefined) config.udpTimeoutMs = overrides.udpTimeoutMs;
  if (overrides.refreshOnInbound !== undefined) config.refreshOnInbound = overrides.refreshOnInbound;
  if (overrides.portRange !== undefined) config.portRange = overrides.portRange;
  if (overrides.hairpin !== undefined) config.hairpin = overrides.hairpin;
  return new NatModel(config, rng);
}
