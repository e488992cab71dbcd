/**
 * The deterministic network the protocol cores are tested in (DESIGN.md "Tests"): a virtual clock that jumps to
 * the next event, hosts that each run one core, NAT models between private realms and a public IPv4 "inet", and
 * a native IPv6 side routed by longest prefix. All randomness (jitter, loss) comes from generators forked off
 * one seed in a fixed order, and simultaneous events run in scheduling order, so a seed fixes the whole run.
 *
 * Topology and latency: every host has one access link (to its NAT when it is `behind` one, else to the public
 * core) and every NAT has one uplink to the public core. A hop's one-way delay is the sum of the links it
 * crosses: LAN host -> NAT is the host's link; NAT -> public host is the NAT's uplink plus the host's link;
 * LAN host -> LAN host on the same NAT is both hosts' links, as through a switch.
 */
import { Counters } from '../core/counters.js';
import type { Action, Endpoint } from '../core/endpoint.js';
import { ConfigError } from '../core/errors.js';
import { randomBetween, SeededRng } from '../core/rng.js';
import type { Millis } from '../core/time.js';
import { formatIpv4, ipv6HasPrefix, type Ipv4, type Ipv4Port } from '../wire/ip.js';
import { EventHeap, type HeapEntry } from '../core/heap.js';
import type { NatModel } from './nat.js';
import type { HopFate, HopView, TraceEntry, TraceUdp } from './trace.js';

export interface LinkOptions {
  /** One-way latency of this access link. Defaults: 1 ms for a host behind a NAT, 5 ms for a public host or a NAT uplink. */
  latencyMs?: number;
  /** Extra delay drawn uniformly from [0, jitterMs] per packet (whole milliseconds); jitter can reorder packets. */
  jitterMs?: number;
  /** Probability in [0, 1] that a packet crossing this link is lost. */
  lossRate?: number;
}

export interface HostOptions extends LinkOptions {
  /** The host's IPv4 address; give `addrs` instead for a host with several (a Teredo server has two). */
  addr?: Ipv4;
  addrs?: readonly Ipv4[];
  /** Name of the NAT whose private realm the host sits in; absent means the host is on the public side. */
  behind?: string;
  endpoint: Endpoint;
  /** The local port used when the core sends without `local`. Default 49152 + the host's index. */
  port?: number;
  /** More ports that accept datagrams from the start (a port the core sends from is opened on first use). */
  localPorts?: readonly number[];
  /** Called for every `ipv6-deliver` action, after it is recorded in `delivered`. */
  onIpv6Deliver?: (at: Millis, packet: Uint8Array, host: SimHost) => void;
}

export type NatLinkOptions = LinkOptions;

export type HostEventAction = Extract<Action, { kind: 'iface-up' | 'iface-down' | 'state-changed' }>;

export interface HostEvent {
  readonly at: Millis;
  readonly action: HostEventAction;
}

/** A host as tests see it. */
export interface SimHost {
  readonly name: string;
  readonly addrs: readonly Ipv4[];
  readonly port: number;
  readonly behind: string | undefined;
  readonly endpoint: Endpoint;
  /** Packets the core handed to the host's own IPv6 stack (`ipv6-deliver`). */
  readonly delivered: readonly { readonly at: Millis; readonly packet: Uint8Array }[];
  /** iface-up, iface-down and state-changed actions, in order. */
  readonly events: readonly HostEvent[];
  /** The `state` of the latest state-changed action, if any. */
  readonly state: string | undefined;
  readonly listening: ReadonlySet<number>;
}

/** Drop reasons the network itself counts (NAT reasons are prefixed 'nat-'). */
export type SimDropReason =
  | 'blocked'
  | 'loss'
  | 'no-route'
  | 'port-unreachable'
  | 'bad-local-address'
  | 'nat-no-mapping'
  | 'nat-filtered'
  | 'nat-no-hairpin'
  | 'nat-ports-exhausted'
  | 'nat-not-public-address'
  | 'bad-ipv6'
  | 'no-ipv6-route'
  | 'ipv6-loop';

export interface SimNetworkOptions {
  /** Virtual time at the start. Default 0. */
  startAt?: Millis;
  /** Keep the per-hop trace (default true); drop counters are kept either way. */
  recordTrace?: boolean;
}

interface Link {
  readonly latencyMs: number;
  readonly jitterMs: number;
  readonly lossRate: number;
  readonly rng: SeededRng;
}

class HostNode implements SimHost {
  readonly delivered: { at: Millis; packet: Uint8Array }[] = [];
  readonly events: HostEvent[] = [];
  readonly listening: Set<number>;
  state: string | undefined;
  /** Bumped whenever the armed timer changes; a timer event carrying an older number is stale. */
  generation = 0;
  armedAt: Millis | undefined;
  lastFireAt = -Infinity;
  firesAtSameInstant = 0;

  constructor(
    readonly name: string,
    readonly addrs: readonly Ipv4[],
    readonly port: number,
    readonly behind: string | undefined,
    public endpoint: Endpoint,
    readonly link: Link,
    readonly onIpv6Deliver: HostOptions['onIpv6Deliver'],
    localPorts: readonly number[],
  ) {
    this.listening = new Set([port, ...localPorts]);
  }
}

class NatNode {
  readonly lanHosts = new Map<Ipv4, HostNode>();
  constructor(
    readonly name: string,
    readonly nat: NatModel,
    readonly uplink: Link,
  ) {}

  get segment(): string {
    return `lan:${this.name}`;
  }
}

interface UdpHop {
  readonly segment: string;
  readonly from: string;
  readonly to: HostNode | NatNode;
  /** For a hop ending at a NAT: which side it arrives on. */
  readonly side: 'lan' | 'inet';
  readonly src: Ipv4Port;
  readonly dst: Ipv4Port;
  readonly data: Uint8Array;
  readonly links: readonly Link[];
}

type SimEvent =
  | { kind: 'udp-hop'; hop: UdpHop }
  | { kind: 'ipv6-hop'; from: HostNode; to: HostNode; packet: Uint8Array; links: readonly Link[] }
  | { kind: 'timer'; host: HostNode; generation: number }
  | { kind: 'drain'; host: HostNode }
  | { kind: 'inject-ipv6'; host: HostNode; packet: Uint8Array };

interface Ipv6Route {
  readonly prefix: Uint8Array;
  readonly length: number;
  readonly host: HostNode;
}

/**
 * A core that keeps asking to be woken at the instant it was just woken never lets time move; past this many
 * wake-ups at one instant the run stops with an error naming the host instead of hanging the test.
 */
const MAX_FIRES_PER_INSTANT = 10_000;
const FIRST_CLIENT_PORT = 49152;

export class SimNetwork {
  /** Virtual time: only ever moves forward. */
  get now(): Millis {
    return this.clock;
  }

  /** Every hop, in time order (empty when recordTrace is off). */
  readonly trace: TraceEntry[] = [];
  /** Packets the network dropped, by reason. Cores count their own drops. */
  readonly drops = new Counters<SimDropReason>();
  /** Events processed so far (stale timers excluded). */
  eventsProcessed = 0;

  private clock: Millis;
  private readonly recordTrace: boolean;
  private readonly rng: SeededRng;
  private readonly heap = new EventHeap<SimEvent>();
  private readonly hosts = new Map<string, HostNode>();
  private readonly nats = new Map<string, NatNode>();
  private readonly publicHosts = new Map<Ipv4, HostNode>();
  private readonly natsByPublic = new Map<Ipv4, NatNode>();
  private readonly ipv6Routes: Ipv6Route[] = [];
  private readonly blocks = new Map<number, (hop: HopView) => boolean>();
  private nextBlockId = 1;
  private traceSeq = 0;

  constructor(seed: number, opts: SimNetworkOptions = {}) {
    this.rng = new SeededRng(seed);
    this.clock = opts.startAt ?? 0;
    this.recordTrace = opts.recordTrace ?? true;
  }

  /** A generator with its own stream, for a NatModel's or a core's randomness in this run. */
  forkRng(): SeededRng {
    return this.rng.fork();
  }

  // ---- topology ----

  addNat(name: string, nat: NatModel, opts: NatLinkOptions = {}): NatModel {
    this.checkNewName(name);
    if (this.natsByPublic.has(nat.publicAddr) || this.publicHosts.has(nat.publicAddr)) {
      throw new ConfigError(`addNat ${name}: public address ${formatIpv4(nat.publicAddr)} is already in use`);
    }
    const node = new NatNode(name, nat, this.makeLink(`NAT ${name}`, opts, 5));
    this.nats.set(name, node);
    this.natsByPublic.set(nat.publicAddr, node);
    return nat;
  }

  addHost(name: string, opts: HostOptions): SimHost {
    this.checkNewName(name);
    const addrs = opts.addrs ?? (opts.addr !== undefined ? [opts.addr] : []);
    if (addrs.length === 0) throw new ConfigError(`addHost ${name}: give addr or addrs`);
    if (opts.addr !== undefined && opts.addrs !== undefined) throw new ConfigError(`addHost ${name}: give addr or addrs, not both`);
    const port = opts.port ?? FIRST_CLIENT_PORT + this.hosts.size;
    for (const p of [port, ...(opts.localPorts ?? [])]) {
      if (!Number.isInteger(p) || p < 1 || p > 65535) throw new ConfigError(`addHost ${name}: bad port ${p}`);
    }
    let realm: Map<Ipv4, HostNode> = this.publicHosts;
    let nat: NatNode | undefined;
    if (opts.behind !== undefined) {
      nat = this.nats.get(opts.behind);
      if (!nat) throw new ConfigError(`addHost ${name}: no NAT named ${opts.behind} (add it first)`);
      realm = nat.lanHosts;
    }
    for (const a of addrs) {
      if (realm.has(a) || (!nat && this.natsByPublic.has(a))) {
        throw new ConfigError(`addHost ${name}: address ${formatIpv4(a)} is already in use ${nat ? `behind ${nat.name}` : 'on the public side'}`);
      }
    }
    const link = this.makeLink(`host ${name}`, opts, nat ? 1 : 5);
    const host = new HostNode(name, [...addrs], port, opts.behind, opts.endpoint, link, opts.onIpv6Deliver, opts.localPorts ?? []);
    this.hosts.set(name, host);
    for (const a of addrs) realm.set(a, host);
    // The core may already hold actions or a deadline. They are drained from an event rather than now, so that
    // hosts added later in the same setup exist before its first packets are routed.
    this.heap.push(this.clock, { kind: 'drain', host });
    return host;
  }

  /**
   * A new core takes over the host's address, ports and NAT mapping (a daemon's reload in place). The old core's
   * pending actions and deadline are dropped, as the daemon's driver drops them.
   */
  replaceEndpoint(hostName: string, endpoint: Endpoint): void {
    const host = this.hostNode(hostName);
    host.endpoint = endpoint;
    host.generation++;
    host.armedAt = undefined;
    this.heap.push(this.clock, { kind: 'drain', host });
  }

  /** Routes native IPv6 packets whose destination matches prefix/prefixLength to `hostName` (longest match wins). */
  addIpv6Route(prefix: Uint8Array, prefixLength: number, hostName: string): void {
    if (prefix.length !== 16) throw new ConfigError(`addIpv6Route: prefix must be 16 bytes, got ${prefix.length}`);
    if (!Number.isInteger(prefixLength) || prefixLength < 0 || prefixLength > 128) {
      throw new ConfigError(`addIpv6Route: bad prefix length ${prefixLength}`);
    }
    const host = this.hostNode(hostName);
    for (const r of this.ipv6Routes) {
      if (r.length === prefixLength && ipv6HasPrefix(prefix, r.prefix, prefixLength)) {
        throw new ConfigError(`addIpv6Route: that /${prefixLength} already routes to ${r.host.name}`);
      }
    }
    this.ipv6Routes.push({ prefix: prefix.slice(), length: prefixLength, host });
  }

  host(name: string): SimHost {
    return this.hostNode(name);
  }

  nat(name: string): NatModel {
    const n = this.nats.get(name);
    if (!n) throw new ConfigError(`no NAT named ${name}`);
    return n.nat;
  }

  // ---- faults ----

  /** Drops every hop the predicate matches (counted as 'blocked') until unblock(id). */
  block(predicate: (hop: HopView) => boolean): number {
    const id = this.nextBlockId++;
    this.blocks.set(id, predicate);
    return id;
  }

  unblock(id: number): void {
    this.blocks.delete(id);
  }

  // ---- injection ----

  /**
   * Puts a datagram on `hostName`'s link now, as if the host had sent it; `from` is not checked, so tests can
   * spoof. It goes through the host's NAT like any other.
   */
  sendUdp(hostName: string, from: Ipv4Port, to: Ipv4Port, data: Uint8Array): void {
    const host = this.hostNode(hostName);
    this.hostSend(host, { addr: from.addr, port: from.port }, { addr: to.addr, port: to.port }, data.slice());
  }

  /** Hands a packet from the host's own IPv6 stack to its core, at the current time, once the run continues. */
  injectIpv6(hostName: string, packet: Uint8Array): void {
    this.heap.push(this.clock, { kind: 'inject-ipv6', host: this.hostNode(hostName), packet: packet.slice() });
  }

  // ---- driving ----

  /** Time of the next pending event, or undefined when nothing is pending. */
  nextEventAt(): Millis | undefined {
    return this.peekLive()?.at;
  }

  /** Processes the next event, moving the clock to it; false when nothing is pending. */
  step(): boolean {
    const e = this.peekLive();
    if (!e) return false;
    this.heap.pop();
    this.clock = Math.max(this.clock, e.at);
    this.eventsProcessed++;
    this.process(e.value);
    return true;
  }

  /** Runs every event due at or before `t` and leaves the clock at `t`. */
  runUntil(t: Millis): void;
  /** Runs until `done` holds (checked before the first event and after each), at most `limitMs` of virtual time. */
  runUntil(done: (net: SimNetwork) => boolean, limitMs: Millis): boolean;
  runUntil(arg: Millis | ((net: SimNetwork) => boolean), limitMs?: Millis): boolean | void {
    if (typeof arg === 'number') {
      if (!(arg >= this.clock)) throw new RangeError(`runUntil(${arg}): time only moves forward (now is ${this.clock})`);
      for (let e = this.peekLive(); e && e.at <= arg; e = this.peekLive()) this.step();
      this.clock = arg;
      return;
    }
    if (limitMs === undefined || !(limitMs >= 0)) throw new RangeError('runUntil(predicate, limitMs): limitMs must be a non-negative number');
    const deadline = this.clock + limitMs;
    if (arg(this)) return true;
    for (let e = this.peekLive(); e && e.at <= deadline; e = this.peekLive()) {
      this.step();
      if (arg(this)) return true;
    }
    this.clock = deadline;
    return false;
  }

  runFor(ms: Millis): void {
    this.runUntil(this.clock + ms);
  }

  /**
   * Runs until nothing is pending (true; the clock stays at the last event) or the next event lies after the
   * absolute time `maxTime` (false; the clock is left at `maxTime`). A core with a periodic timer never idles.
   */
  runUntilIdle(maxTime: Millis): boolean {
    for (let e = this.peekLive(); e; e = this.peekLive()) {
      if (e.at > maxTime) {
        this.clock = Math.max(this.clock, maxTime);
        return false;
      }
      this.step();
    }
    return true;
  }

  // ---- internals ----

  private checkNewName(name: string): void {
    if (this.hosts.has(name) || this.nats.has(name)) throw new ConfigError(`the name ${name} is already taken`);
  }

  private hostNode(name: string): HostNode {
    const h = this.hosts.get(name);
    if (!h) throw new ConfigError(`no host named ${name}`);
    return h;
  }

  private makeLink(what: string, o: LinkOptions, defaultLatency: number): Link {
    const latencyMs = o.latencyMs ?? defaultLatency;
    const jitterMs = o.jitterMs ?? 0;
    const lossRate = o.lossRate ?? 0;
    if (!(latencyMs >= 0) || !(jitterMs >= 0)) throw new ConfigError(`${what}: latency and jitter must be non-negative`);
    if (!(lossRate >= 0 && lossRate <= 1)) throw new ConfigError(`${what}: lossRate must be in [0, 1]`);
    return { latencyMs, jitterMs, lossRate, rng: this.rng.fork() };
  }

  /** The top event, after discarding timers that were re-armed since they were scheduled. */
  private peekLive(): HeapEntry<SimEvent> | undefined {
    for (;;) {
      const top = this.heap.peek();
      if (!top) return undefined;
      const v = top.value;
      if (v.kind === 'timer' && v.generation !== v.host.generation) {
        this.heap.pop();
        continue;
      }
      return top;
    }
  }

  private process(ev: SimEvent): void {
    switch (ev.kind) {
      case 'udp-hop':
        this.arriveUdp(ev.hop);
        return;
      case 'ipv6-hop':
        this.arriveIpv6(ev.from, ev.to, ev.packet, ev.links);
        return;
      case 'timer': {
        const host = ev.host;
        if (this.clock === host.lastFireAt) {
          if (++host.firesAtSameInstant > MAX_FIRES_PER_INSTANT) {
            throw new Error(`SimNetwork: the core on ${host.name} asked to be woken ${MAX_FIRES_PER_INSTANT} times at ${this.clock} ms; its pollTimeout never moves past now`);
          }
        } else {
          host.lastFireAt = this.clock;
          host.firesAtSameInstant = 0;
        }
        host.armedAt = undefined;
        host.endpoint.handleTimeout(this.clock);
        this.drain(host);
        return;
      }
      case 'drain':
        this.drain(ev.host);
        return;
      case 'inject-ipv6':
        this.record({ kind: 'ipv6', segment: `tun:${ev.host.name}`, from: `${ev.host.name}.stack`, to: ev.host.name, packet: ev.packet }, 'delivered');
        ev.host.endpoint.handleIpv6(this.clock, ev.packet.slice());
        this.drain(ev.host);
        return;
    }
  }

  /** Carries out everything the core has queued, then re-arms its one timer (DESIGN.md "handle and poll"). */
  private drain(host: HostNode): void {
    for (let a = host.endpoint.poll(); a; a = host.endpoint.poll()) this.perform(host, a);
    const d = host.endpoint.pollTimeout();
    if (d !== undefined && Number.isNaN(d)) throw new Error(`SimNetwork: the core on ${host.name} returned a NaN deadline`);
    // A deadline already past fires now: time never runs backwards.
    const at = d === undefined ? undefined : Math.max(d, this.clock);
    if (at === host.armedAt) return; // the event already in the heap is still the right one
    host.generation++;
    host.armedAt = at;
    if (at !== undefined) this.heap.push(at, { kind: 'timer', host, generation: host.generation });
  }

  private perform(host: HostNode, a: Action): void {
    switch (a.kind) {
      case 'udp-send': {
        const remote: Ipv4Port = { addr: a.remote.addr, port: a.remote.port };
        const data = a.data.slice();
        let src: Ipv4Port;
        if (a.local) {
          src = { addr: a.local.addr, port: a.local.port };
          if (!host.addrs.includes(src.addr)) {
            this.record({ kind: 'udp', segment: this.segmentOf(host), from: host.name, src, dst: remote, data }, 'dropped', 'bad-local-address');
            return;
          }
          // Sending from a port means a socket is bound there, so replies to it must arrive.
          host.listening.add(src.port);
        } else {
          src = { addr: host.addrs[0]!, port: host.port };
        }
        this.hostSend(host, src, remote, data);
        return;
      }
      case 'ipv6-deliver': {
        const packet = a.packet.slice();
        host.delivered.push({ at: this.clock, packet });
        this.record({ kind: 'ipv6', segment: `tun:${host.name}`, from: host.name, to: `${host.name}.stack`, packet }, 'delivered');
        host.onIpv6Deliver?.(this.clock, packet, host);
        return;
      }
      case 'ipv6-forward':
        this.routeIpv6(host, a.packet.slice());
        return;
      case 'udp-open':
        host.listening.add(a.local.port);
        return;
      case 'udp-close':
        if (a.local.port !== host.port) host.listening.delete(a.local.port);
        return;
      case 'state-changed':
        host.state = a.state;
        host.events.push({ at: this.clock, action: a });
        return;
      case 'iface-up':
      case 'iface-down':
        host.events.push({ at: this.clock, action: a });
        return;
    }
  }

  private segmentOf(host: HostNode): string {
    return host.behind === undefined ? 'inet' : `lan:${host.behind}`;
  }

  /** A datagram leaving `host` on its access link. */
  private hostSend(host: HostNode, src: Ipv4Port, dst: Ipv4Port, data: Uint8Array): void {
    if (dst.addr >>> 8 === 0xe00000) {
      // Link-local multicast (224.0.0.0/24, TTL 1): every other host on the sender's LAN, never past a NAT.
      // Public hosts share no link in this model, so theirs reach nobody.
      if (host.behind === undefined) return this.record({ kind: 'udp', segment: 'inet', from: host.name, src, dst, data }, 'dropped', 'no-route');
      const nat = this.nats.get(host.behind)!;
      for (const peer of nat.lanHosts.values()) {
        if (peer !== host) this.schedule({ segment: nat.segment, from: host.name, to: peer, side: 'lan', src, dst, data, links: [host.link, peer.link] });
      }
      return;
    }
    if (host.behind === undefined) {
      this.sendInet(host.name, host.link, src, dst, data);
      return;
    }
    const nat = this.nats.get(host.behind)!;
    const peer = nat.lanHosts.get(dst.addr);
    if (peer) this.schedule({ segment: nat.segment, from: host.name, to: peer, side: 'lan', src, dst, data, links: [host.link, peer.link] });
    else this.schedule({ segment: nat.segment, from: host.name, to: nat, side: 'lan', src, dst, data, links: [host.link] });
  }

  /** A datagram entering the public side from a public host or a NAT, routed by destination address. */
  private sendInet(from: string, fromLink: Link, src: Ipv4Port, dst: Ipv4Port, data: Uint8Array): void {
    const host = this.publicHosts.get(dst.addr);
    if (host) {
      this.schedule({ segment: 'inet', from, to: host, side: 'inet', src, dst, data, links: [fromLink, host.link] });
      return;
    }
    const nat = this.natsByPublic.get(dst.addr);
    if (nat) {
      this.schedule({ segment: 'inet', from, to: nat, side: 'inet', src, dst, data, links: [fromLink, nat.uplink] });
      return;
    }
    this.record({ kind: 'udp', segment: 'inet', from, src, dst, data }, 'dropped', 'no-route');
  }

  /** A datagram a NAT passes into its private realm. */
  private sendLan(nat: NatNode, src: Ipv4Port, dst: Ipv4Port, data: Uint8Array): void {
    const peer = nat.lanHosts.get(dst.addr);
    if (peer) this.schedule({ segment: nat.segment, from: nat.name, to: peer, side: 'lan', src, dst, data, links: [peer.link] });
    else this.record({ kind: 'udp', segment: nat.segment, from: nat.name, src, dst, data }, 'dropped', 'no-route');
  }

  private schedule(hop: UdpHop): void {
    this.heap.push(this.clock + this.delay(hop.links), { kind: 'udp-hop', hop });
  }

  private delay(links: readonly Link[]): Millis {
    let d = 0;
    for (const l of links) d += l.latencyMs + (l.jitterMs > 0 ? randomBetween(l.rng, 0, l.jitterMs) : 0);
    return d;
  }

  /** Loss is drawn per link crossed, each from that link's own generator. */
  private lost(links: readonly Link[]): boolean {
    let lost = false;
    for (const l of links) if (l.lossRate > 0 && l.rng.u32() / 0x100000000 < l.lossRate) lost = true;
    return lost;
  }

  private blocked(view: HopView): boolean {
    for (const p of this.blocks.values()) if (p(view)) return true;
    return false;
  }

  private arriveUdp(hop: UdpHop): void {
    const view: HopView = { at: this.clock, kind: 'udp', segment: hop.segment, from: hop.from, to: hop.to.name, src: hop.src, dst: hop.dst, data: hop.data };
    if (this.blocked(view)) return this.record(view, 'dropped', 'blocked');
    if (this.lost(hop.links)) return this.record(view, 'dropped', 'loss');
    const to = hop.to;
    if (to instanceof HostNode) {
      if (!to.listening.has(hop.dst.port)) return this.record(view, 'dropped', 'port-unreachable');
      this.record(view, 'delivered');
      // The core borrows the bytes; a fresh copy keeps a misbehaving core from rewriting the trace.
      to.endpoint.handleDatagram(this.clock, hop.src, hop.dst, hop.data.slice());
      this.drain(to);
      return;
    }
    const nat = to.nat;
    if (hop.side === 'inet') {
      const r = nat.inbound(this.clock, hop.src, hop.dst);
      if (!r.ok) return this.record(view, 'dropped', `nat-${r.reason}`);
      this.record(view, 'forwarded', undefined, { src: hop.src, dst: r.value });
      this.sendLan(to, hop.src, r.value, hop.data);
      return;
    }
    if (hop.dst.addr === nat.publicAddr) {
      const r = nat.hairpinTranslate(this.clock, hop.src, hop.dst);
      if (!r.ok) return this.record(view, 'dropped', `nat-${r.reason}`);
      this.record(view, 'forwarded', undefined, r.value);
      this.sendLan(to, r.value.src, r.value.dst, hop.data);
      return;
    }
    const r = nat.outbound(this.clock, hop.src, hop.dst);
    if (!r.ok) return this.record(view, 'dropped', `nat-${r.reason}`);
    this.record(view, 'forwarded', undefined, { src: r.value, dst: hop.dst });
    this.sendInet(to.name, to.uplink, r.value, hop.dst, hop.data);
  }

  private routeIpv6(from: HostNode, packet: Uint8Array): void {
    const view = { kind: 'ipv6', segment: 'ipv6', from: from.name, packet } as const;
    if (packet.length < 40 || packet[0]! >> 4 !== 6) return this.record(view, 'dropped', 'bad-ipv6');
    const dst = packet.subarray(24, 40);
    let best: Ipv6Route | undefined;
    for (const r of this.ipv6Routes) if (ipv6HasPrefix(dst, r.prefix, r.length) && (!best || r.length > best.length)) best = r;
    if (!best) return this.record(view, 'dropped', 'no-ipv6-route');
    // A core forwarding natively to a prefix that routes back to itself would loop forever.
    if (best.host === from) return this.record({ ...view, to: from.name }, 'dropped', 'ipv6-loop');
    const links = [from.link, best.host.link];
    this.heap.push(this.clock + this.delay(links), { kind: 'ipv6-hop', from, to: best.host, packet, links });
  }

  private arriveIpv6(from: HostNode, to: HostNode, packet: Uint8Array, links: readonly Link[]): void {
    const view: HopView = { at: this.clock, kind: 'ipv6', segment: 'ipv6', from: from.name, to: to.name, packet };
    if (this.blocked(view)) return this.record(view, 'dropped', 'blocked');
    if (this.lost(links)) return this.record(view, 'dropped', 'loss');
    this.record(view, 'delivered');
    to.endpoint.handleIpv6(this.clock, packet.slice());
    this.drain(to);
  }

  private record(
    hop: Omit<TraceUdp, 'seq' | 'fate' | 'reason' | 'translated' | 'at'> | Omit<Extract<TraceEntry, { kind: 'ipv6' }>, 'seq' | 'fate' | 'reason' | 'at'>,
    fate: HopFate,
    reason?: SimDropReason,
    translated?: TraceUdp['translated'],
  ): void {
    if (fate === 'dropped' && reason !== undefined) this.drops.inc(reason);
    if (!this.recordTrace) return;
    const base = { ...hop, at: this.clock, seq: this.traceSeq++, fate };
    const entry: TraceEntry = { ...base, ...(reason !== undefined ? { reason } : {}), ...(translated ? { translated } : {}) };
    this.trace.push(entry);
  }
}
