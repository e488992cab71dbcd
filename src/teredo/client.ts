/**
 * The Teredo client (RFC 4380 §5.2, RFC 5991, with the NAT detection Windows performs): qualification with the
 * primary server address, NAT-type detection through the server's two addresses, maintenance that keeps the
 * NAT mapping alive, and the states offline / probe / qualified / dormant.
 *
 * Qualification order (each step only once the previous one has concluded, because every RS opens NAT
 * permissions that would spoil the next test):
 *   1. qualify:   RS (cone bit 0) to primary:3544. The RA's origin indication is the mapping M1; the client is
 *                 qualified at once and configures its address (RFC 5991 §3.2: the cone bit stays 0).
 *   2. cone:      RS with the cone bit to primary:3544; the server answers from its other address, which only
 *                 an endpoint-independent filter lets through (RFC 4380 §5.2.1, §5.3.2).
 *   3. port:      if the server offers the probe port (transit6 servers do), an RS to secondary:probePort is
 *                 answered from secondary:3544 and from secondary:probePort: the first gets through an
 *                 address-restricted NAT, not a port-restricted one.
 *   4. symmetric: RS to secondary:3544; a mapping M2 that differs from M1 means a symmetric NAT (§5.2.1).
 * Detection never changes the address: only a new mapping from the server does.
 */
import { ActionQueue, type Action, type Endpoint } from '../core/endpoint.js';
import { Counters } from '../core/counters.js';
import { ConfigError } from '../core/errors.js';
import { randomBelow, randomBetween, randomBytes, type Rng } from '../core/rng.js';
import { TimerTable, type Millis } from '../core/time.js';
import { buildIcmpv6Packet, parseIcmpv6 } from '../wire/icmpv6.js';
import { formatIpv4Port, isGlobalIpv4, ipv6Equal, sameIpv4Port, type Ipv4, type Ipv4Port } from '../wire/ip.js';
import { ALL_ROUTERS, isLinkLocal } from '../wire/ipv6class.js';
import { NEXT_HEADER_ICMPV6 } from '../wire/ipv6.js';
import { encodeTeredoAddress, encodeTeredoPacket, makeFlags, NONCE_LENGTH, TEREDO_PORT } from '../wire/teredo.js';
import { CLIENT_RS_SOURCE, CLIENT_RS_SOURCE_CONE, DEFAULT_NAT_UDP_TIMEOUT_MS, RS_ATTEMPTS, RS_TIMEOUT_MS, TEREDO_MTU } from './constants.js';
import { parseTeredoPacketChecked, type TeredoFrameDrop } from './server.js';

export type ClientState = 'offline' | 'probe' | 'qualified' | 'dormant';
export type NatType = 'unknown' | 'none' | 'cone' | 'restricted' | 'port-restricted' | 'symmetric';

export interface TeredoClientConfig {
  /** The Teredo server's primary IPv4 address (ServerAddress). */
  server: Ipv4;
  /** Its secondary address (ServerAddress2); Miredo servers use primary + 1, the default here too. */
  server2?: Ipv4;
  serverPort?: number;
  /** The server's NAT-probe port on its secondary address (a transit6 server extension); false to skip. */
  probePort?: number | false;
  /** The local UDP endpoint the client is bound to (the "local mapping" of `show state`). */
  local?: Ipv4Port;
  /** The UDP timeout the client assumes for its NAT; refreshes are fitted below it (RFC 4380 §2.15). */
  natUdpTimeoutMs?: number;
  /** Run the cone, port and symmetric probes after qualifying (default true). */
  detectNat?: boolean;
  /** Start dormant and qualify only when there is traffic (Windows' on-demand behaviour). */
  onDemand?: boolean;
  /** Go dormant after this long without IPv6 traffic; undefined keeps the address alive forever. */
  idleDormancyMs?: number;
  /** RS time-out and attempts (RFC 4380 §5.2.1: T = 4 s, N = 3). */
  rsTimeoutMs?: number;
  rsAttempts?: number;
  /** While offline, how often the server is tried again; keeps a returning server noticed within 5 s. */
  offlineRetryMs?: number;
}

export type ClientDrop =
  | TeredoFrameDrop
  | 'ra-unexpected-source'
  | 'ra-no-origin-indication'
  | 'ra-nonce-mismatch'
  | 'ra-no-auth'
  | 'ra-bad-destination'
  | 'ra-invalid'
  | 'ra-bad-prefix'
  | 'ra-non-global-mapping'
  | 'not-qualified'
  | 'not-router-advertisement';

export type ClientEvent = 'router-solicitations' | 'router-advertisements' | 'address-changes' | 'qualifications' | 'server-lost';

type Phase = 'qualify' | 'refresh' | 'cone' | 'port' | 'symmetric';

interface PendingRs {
  phase: Phase;
  nonce: Uint8Array;
  source: Uint8Array;
  target: Ipv4Port;
  sentAt: Millis;
  attempt: number;
  /** Port probe: which of the two expected answers have arrived. */
  answeredFrom3544?: boolean;
  answeredFromProbe?: boolean;
}

type TimerName = 'rs' | 'probe' | 'refresh' | 'grace' | 'dormancy';

/** What `show state` prints, as data. */
export interface ClientStatus {
  state: ClientState;
  reason: string;
  server: Ipv4;
  server2: Ipv4;
  natType: NatType;
  natDetection: 'not-started' | 'running' | 'done';
  portFilteringKnown: boolean;
  portPreserving: boolean | undefined;
  localMapping: Ipv4Port | undefined;
  externalMapping: Ipv4Port | undefined;
  teredoAddress: Uint8Array | undefined;
  mtu: number;
  refreshIntervalMs: [number, number];
  addressChanges: number;
  lastServerContact: Millis | undefined;
}

const LINK_LOCAL_ADDRESS = Uint8Array.of(0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
const DEFAULT_ROUTE = new Uint8Array(16);

export class TeredoClient implements Endpoint {
  readonly drops = new Counters<ClientDrop>();
  readonly events = new Counters<ClientEvent>();
  private readonly actions = new ActionQueue();
  private readonly timers = new TimerTable<TimerName>();
  private readonly server: Ipv4Port;
  private readonly server2: Ipv4;
  private readonly natTimeout: number;
  private readonly rsTimeout: number;
  private readonly rsAttempts: number;
  private readonly offlineRetry: number;

  private state: ClientState = 'probe';
  private reason = 'starting';
  /** The outstanding qualification or refresh RS, and the outstanding NAT probe: they run side by side. */
  private maint: PendingRs | undefined;
  private probe: PendingRs | undefined;
  private mapping: Ipv4Port | undefined;
  private address: Uint8Array | undefined;
  private random12 = 0;
  private mtu = TEREDO_MTU;
  private natType: NatType = 'unknown';
  private natDetection: ClientStatus['natDetection'] = 'not-started';
  private portFilteringKnown = false;
  private rttMs = 0;
  private lastServerContact: Millis | undefined;
  private lastTraffic: Millis | undefined;
  private qualifiedAt: Millis | undefined;

  constructor(
    private readonly config: TeredoClientConfig,
    private readonly rng: Rng,
  ) {
    if (!isGlobalIpv4(config.server)) throw new ConfigError('the Teredo server address must be a global unicast IPv4 address');
    this.server = { addr: config.server, port: config.serverPort ?? TEREDO_PORT };
    this.server2 = config.server2 ?? ((config.server + 1) >>> 0);
    this.natTimeout = config.natUdpTimeoutMs ?? DEFAULT_NAT_UDP_TIMEOUT_MS;
    if (this.natTimeout < 4000) throw new ConfigError('a NAT UDP timeout under 4 s cannot be kept alive by Teredo refreshes');
    this.rsTimeout = config.rsTimeoutMs ?? RS_TIMEOUT_MS;
    this.rsAttempts = config.rsAttempts ?? RS_ATTEMPTS;
    this.offlineRetry = config.offlineRetryMs ?? this.rsTimeout;
    if (config.onDemand) {
      this.state = 'dormant';
      this.reason = 'waiting for traffic';
    }
    // Starting is a deadline like any other, so that drivers need no special call.
    if (!config.onDemand) this.timers.set('rs', 0);
  }

  // ---------------------------------------------------------------------------------------------------
  // Endpoint

  handleDatagram(now: Millis, from: Ipv4Port, _to: Ipv4Port, data: Uint8Array): void {
    const checked = parseTeredoPacketChecked(data);
    if (!checked.ok) {
      this.drops.inc(checked.reason);
      return;
    }
    const { packet, ipv6 } = checked;
    if (sameIpv4Port(from, this.server)) this.lastServerContact = now;
    const h = ipv6.header;
    if (h.nextHeader === NEXT_HEADER_ICMPV6 && ipv6.payload[0] === 134) {
      this.handleRouterAdvertisement(now, from, packet.auth?.nonce, packet.origin, ipv6.header.dst, ipv6.header.src, ipv6.payload, h.hopLimit);
      return;
    }
    if (this.state !== 'qualified') {
      this.drops.inc('not-qualified');
      return;
    }
    // The data path (peers, bubbles, relays) is handled in peers.ts; until it exists nothing else is accepted.
    this.drops.inc('not-router-advertisement');
  }

  handleIpv6(now: Millis): void {
    this.lastTraffic = now;
    if (this.state === 'dormant') this.wake(now);
    if (this.state !== 'qualified') this.drops.inc('not-qualified');
  }

  handleTimeout(now: Millis): void {
    for (const name of this.timers.due(now)) {
      switch (name) {
        case 'rs':
          this.onRsTimer(now);
          break;
        case 'probe':
          this.onProbeTimer(now);
          break;
        case 'refresh':
          this.sendRs(now, 'refresh', 1);
          break;
        case 'grace':
          if (this.probe?.phase === 'port') this.concludePortProbe(now, this.probe);
          break;
        case 'dormancy':
          this.onDormancyTimer(now);
          break;
      }
    }
  }

  pollTimeout(): Millis | undefined {
    return this.timers.next();
  }

  poll(): Action | undefined {
    return this.actions.poll();
  }

  // ---------------------------------------------------------------------------------------------------
  // Status

  status(): ClientStatus {
    const local = this.config.local;
    return {
      state: this.state,
      reason: this.reason,
      server: this.server.addr,
      server2: this.server2,
      natType: this.natType,
      natDetection: this.natDetection,
      portFilteringKnown: this.portFilteringKnown,
      portPreserving: local && this.mapping ? local.port === this.mapping.port : undefined,
      localMapping: local,
      externalMapping: this.mapping,
      teredoAddress: this.address,
      mtu: this.mtu,
      refreshIntervalMs: this.refreshRange(),
      addressChanges: this.events.get('address-changes'),
      lastServerContact: this.lastServerContact,
    };
  }

  get currentState(): ClientState {
    return this.state;
  }

  get teredoAddress(): Uint8Array | undefined {
    return this.address;
  }

  // ---------------------------------------------------------------------------------------------------
  // Router solicitations

  /**
   * Refreshes are fitted below the NAT's UDP timeout: a random point between 50 % and 70 % of it after the
   * last RS, so that even a refresh RS retransmitted once still reaches the NAT before the mapping expires.
   * (RFC 4380 §5.2.5 randomizes the interval; Miredo's fixed 30 s races Linux's 30 s conntrack timeout.)
   */
  private refreshRange(): [number, number] {
    return [Math.floor(this.natTimeout * 0.5), Math.floor(this.natTimeout * 0.7)];
  }

  private sendRs(now: Millis, phase: Phase, attempt: number): void {
    const cone = phase === 'cone';
    const source = cone ? CLIENT_RS_SOURCE_CONE : CLIENT_RS_SOURCE;
    let target: Ipv4Port;
    switch (phase) {
      case 'qualify':
      case 'refresh':
      case 'cone':
        target = this.server;
        break;
      case 'port':
        target = { addr: this.server2, port: this.config.probePort as number };
        break;
      case 'symmetric':
        target = { addr: this.server2, port: this.server.port };
        break;
    }
    // RFC 4380 §5.2.2: a fresh nonce per RS; the RA must echo it (first level of protection).
    const nonce = randomBytes(this.rng, NONCE_LENGTH);
    const pending: PendingRs = { phase, nonce, source, target, sentAt: now, attempt };
    const isProbe = phase === 'cone' || phase === 'port' || phase === 'symmetric';
    if (isProbe) this.probe = pending;
    else this.maint = pending;
    const rs = buildIcmpv6Packet(source, ALL_ROUTERS, { type: 'router-solicitation', options: [] });
    const data = encodeTeredoPacket({ auth: { clientId: new Uint8Array(0), authValue: new Uint8Array(0), nonce, confirmation: 0 }, ipv6: rs });
    this.events.inc('router-solicitations');
    this.actions.push({ kind: 'udp-send', remote: target, data });
    this.timers.set(isProbe ? 'probe' : 'rs', now + this.waitFor(phase));
  }

  /** How long to wait for an answer: the RFC's T while the server is unknown, a few round trips for probes. */
  private waitFor(phase: Phase): number {
    if (phase === 'qualify' || phase === 'refresh') return this.state === 'offline' ? this.offlineRetry : this.rsTimeout;
    return Math.min(this.rsTimeout, Math.max(500, 4 * this.rttMs + 250));
  }

  private onRsTimer(now: Millis): void {
    const p = this.maint;
    if (!p) {
      // The start deadline.
      if (this.state === 'probe' && this.events.get('router-solicitations') === 0) {
        this.actions.push({ kind: 'state-changed', state: 'probe', reason: 'qualifying' });
      }
      this.sendRs(now, 'qualify', 1);
      return;
    }
    if (this.state === 'offline') {
      // Keep soliciting at a steady pace (Miredo pauses 100 s here): a returning server is seen at once.
      this.sendRs(now, 'qualify', p.attempt + 1);
      return;
    }
    if (p.attempt < this.rsAttempts) {
      this.sendRs(now, p.phase, p.attempt + 1);
      return;
    }
    this.goOffline(p.phase === 'refresh' ? 'server-lost' : 'server-unreachable');
    this.sendRs(now, 'qualify', 1);
  }

  private onProbeTimer(now: Millis): void {
    const p = this.probe;
    if (!p) return;
    if (p.attempt < 2) {
      this.sendRs(now, p.phase, p.attempt + 1);
      return;
    }
    this.probe = undefined;
    switch (p.phase) {
      case 'cone':
        // No RA from the other address: the NAT filters by remote address (RFC 4380 §5.2.1).
        this.startProbe(now, this.config.probePort === false ? 'symmetric' : 'port');
        break;
      case 'port':
        this.concludePortProbe(now, p);
        break;
      default:
        // The secondary address never answered: the mapping comparison could not be made.
        this.finishDetection('secondary server address did not answer');
    }
  }

  private goOffline(reason: string): void {
    const wasQualified = this.state === 'qualified';
    this.timers.clear('refresh');
    this.timers.clear('grace');
    this.timers.clear('probe');
    this.probe = undefined;
    if (this.state !== 'offline') {
      if (reason === 'server-lost') this.events.inc('server-lost');
      this.state = 'offline';
      this.reason = reason;
      if (wasQualified) this.actions.push({ kind: 'iface-down', reason });
      this.actions.push({ kind: 'state-changed', state: 'offline', reason });
      // Detection starts over with the next qualification.
      if (this.natDetection === 'running') this.natDetection = 'not-started';
    }
  }

  private wake(now: Millis): void {
    this.state = 'probe';
    this.reason = 'traffic';
    this.actions.push({ kind: 'state-changed', state: 'probe', reason: 'traffic' });
    this.sendRs(now, 'qualify', 1);
  }

  private onDormancyTimer(now: Millis): void {
    const idle = this.config.idleDormancyMs;
    if (idle === undefined || this.state !== 'qualified') return;
    // Idle means no IPv6 traffic since qualifying: the refresh exchange with the server does not count.
    const last = Math.max(this.lastTraffic ?? -Infinity, this.qualifiedAt ?? now);
    if (now - last >= idle) {
      this.state = 'dormant';
      this.reason = 'idle';
      this.maint = undefined;
      this.probe = undefined;
      this.timers.clear('refresh');
      this.timers.clear('rs');
      this.timers.clear('probe');
      this.actions.push({ kind: 'state-changed', state: 'dormant', reason: 'idle' });
    } else {
      this.timers.set('dormancy', last + idle);
    }
  }

  // ---------------------------------------------------------------------------------------------------
  // Router advertisements

  private handleRouterAdvertisement(
    now: Millis,
    from: Ipv4Port,
    nonce: Uint8Array | undefined,
    origin: Ipv4Port | undefined,
    dst: Uint8Array,
    src: Uint8Array,
    payload: Uint8Array,
    hopLimit: number,
  ): void {
    // RFC 4380 §5.2.2: the nonce must match the one sent, or the packet MUST be discarded.
    if (!nonce) {
      this.drops.inc('ra-no-auth');
      return;
    }
    const p = this.maint && bytesEqual(nonce, this.maint.nonce) ? this.maint : this.probe && bytesEqual(nonce, this.probe.nonce) ? this.probe : undefined;
    if (!p) {
      this.drops.inc('ra-nonce-mismatch');
      return;
    }
    if (!this.expectedSource(p, from)) {
      this.drops.inc('ra-unexpected-source');
      return;
    }
    // RFC 4380 §5.2.1: origin indication, a valid RA to the RS's own source, exactly one Teredo prefix.
    if (!origin) {
      this.drops.inc('ra-no-origin-indication');
      return;
    }
    if (!ipv6Equal(dst, p.source)) {
      this.drops.inc('ra-bad-destination');
      return;
    }
    const msg = parseIcmpv6(payload, src, dst);
    if (!msg.ok || msg.value.type !== 'router-advertisement' || hopLimit !== 255 || !isLinkLocal(src)) {
      this.drops.inc('ra-invalid');
      return;
    }
    const prefixes = msg.value.options.filter((o) => o.type === 'prefix-information');
    const pio = prefixes[0];
    if (prefixes.length !== 1 || !pio || pio.type !== 'prefix-information' || !isServerPrefix(pio.prefix, this.server.addr)) {
      this.drops.inc('ra-bad-prefix');
      return;
    }
    // A mapping outside the global range would give an address nobody can reach (RFC 4380 §5.2.4).
    if (!isGlobalIpv4(origin.addr)) {
      this.drops.inc('ra-non-global-mapping');
      return;
    }
    this.events.inc('router-advertisements');
    this.lastServerContact = now;
    const mtuOpt = msg.value.options.find((o) => o.type === 'mtu');
    if (mtuOpt && mtuOpt.type === 'mtu' && mtuOpt.mtu >= 1280 && mtuOpt.mtu <= 65535) this.mtu = mtuOpt.mtu;

    switch (p.phase) {
      case 'qualify':
      case 'refresh':
        this.rttMs = now - p.sentAt;
        this.maint = undefined;
        this.timers.clear('rs');
        this.onMapping(now, origin);
        break;
      case 'cone':
        this.probe = undefined;
        this.timers.clear('probe');
        this.natType = 'cone';
        this.startProbe(now, 'symmetric');
        break;
      case 'port':
        if (from.port === this.server.port) p.answeredFrom3544 = true;
        else p.answeredFromProbe = true;
        if (!sameIpv4Port(origin, this.mapping!)) this.natType = 'symmetric';
        if (p.answeredFrom3544) {
          this.concludePortProbe(now, p);
        } else if (!this.timers.has('grace')) {
          // The answer from 3544 left the server first; give it a moment before concluding it was filtered.
          this.timers.set('grace', now + Math.max(200, 2 * this.rttMs));
        }
        break;
      case 'symmetric':
        this.probe = undefined;
        this.timers.clear('probe');
        if (!sameIpv4Port(origin, this.mapping!)) this.natType = 'symmetric';
        this.finishDetection('done');
        break;
    }
  }

  private expectedSource(p: PendingRs, from: Ipv4Port): boolean {
    switch (p.phase) {
      case 'qualify':
      case 'refresh':
        return sameIpv4Port(from, this.server);
      case 'cone':
        // RFC 4380 §5.3.2: the answer to a cone RS comes from "a different IPv4 source address".
        return from.port === this.server.port && from.addr !== this.server.addr;
      case 'port':
        return from.addr === this.server2 && (from.port === this.server.port || from.port === this.config.probePort);
      case 'symmetric':
        return from.addr === this.server2 && from.port === this.server.port;
    }
  }

  /** A mapping from the primary server: qualify, or check it is unchanged (RFC 4380 §5.2.5). */
  private onMapping(now: Millis, mapping: Ipv4Port): void {
    const first = this.state !== 'qualified';
    const changed = this.mapping !== undefined && !sameIpv4Port(this.mapping, mapping);
    if (first || changed) {
      const old = this.address;
      if (changed || !this.address) this.random12 = randomBelow(this.rng, 0x1000);
      this.mapping = mapping;
      // RFC 5991 §3.2: the cone bit stays 0 in the address whatever the NAT; 12 random bits guard against scans.
      const address = encodeTeredoAddress({ server: this.server.addr, flags: makeFlags(false, this.random12), mappedPort: mapping.port, mappedAddr: mapping.addr });
      const addressChanged = old !== undefined && !ipv6Equal(old, address);
      this.address = address;
      if (addressChanged) this.events.inc('address-changes');
      if (first) {
        this.events.inc('qualifications');
        this.qualifiedAt = now;
      }
      this.state = 'qualified';
      this.reason = addressChanged ? 'mapping changed' : 'qualified';
      this.actions.push({
        kind: 'iface-up',
        addresses: [
          { address, prefixLength: 32 },
          { address: LINK_LOCAL_ADDRESS, prefixLength: 64 },
        ],
        mtu: this.mtu,
        routes: [{ prefix: DEFAULT_ROUTE, prefixLength: 0, metric: 1029 }],
      });
      this.actions.push({
        kind: 'state-changed',
        state: 'qualified',
        reason: this.reason,
        detail: { mapping: formatIpv4Port(mapping), ...(addressChanged ? { previous: old } : {}) },
      });
      if (changed) {
        // A new mapping may mean a new NAT: detect again.
        this.natType = 'unknown';
        this.natDetection = 'not-started';
      }
      if (this.config.idleDormancyMs !== undefined) this.timers.set('dormancy', now + this.config.idleDormancyMs);
    }
    this.scheduleRefresh(now);
    if (this.natDetection === 'not-started') {
      if (this.config.detectNat === false) {
        this.natDetection = 'done';
        this.natType = this.isUnNatted(mapping) ? 'none' : 'unknown';
      } else {
        this.natDetection = 'running';
        this.startProbe(now, 'cone');
      }
    }
  }

  private scheduleRefresh(now: Millis): void {
    const [lo, hi] = this.refreshRange();
    this.timers.set('refresh', now + randomBetween(this.rng, lo, hi));
  }

  private startProbe(now: Millis, phase: 'cone' | 'port' | 'symmetric'): void {
    if (this.state !== 'qualified') return;
    this.sendRs(now, phase, 1);
  }

  private concludePortProbe(now: Millis, p: PendingRs): void {
    this.timers.clear('grace');
    this.probe = undefined;
    this.timers.clear('probe');
    if (this.natType !== 'symmetric') {
      if (p.answeredFrom3544) {
        this.natType = 'restricted';
        this.portFilteringKnown = true;
      } else if (p.answeredFromProbe) {
        this.natType = 'port-restricted';
        this.portFilteringKnown = true;
      } else {
        // The server does not offer the probe: restricted and port-restricted look alike (RFC 4380 §5.2.1).
        this.natType = 'restricted';
        this.portFilteringKnown = false;
      }
    }
    this.startProbe(now, 'symmetric');
  }

  private finishDetection(note: string): void {
    this.natDetection = 'done';
    if (this.natType === 'unknown') this.natType = 'restricted';
    if (this.natType !== 'symmetric' && this.mapping && this.isUnNatted(this.mapping)) this.natType = 'none';
    this.actions.push({ kind: 'state-changed', state: this.state, reason: 'nat-type', detail: { natType: this.natType, note } });
  }

  private isUnNatted(mapping: Ipv4Port): boolean {
    const local = this.config.local;
    return local !== undefined && local.addr === mapping.addr && local.port === mapping.port;
  }
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** 2001:0:<server>::/64 (RFC 4380 §5.2.1: "a valid Teredo IPv6 server prefix"). */
function isServerPrefix(prefix: Uint8Array, server: Ipv4): boolean {
  return (
    prefix[0] === 0x20 &&
    prefix[1] === 0x01 &&
    prefix[2] === 0 &&
    prefix[3] === 0 &&
    prefix[4] === server >>> 24 &&
    prefix[5] === ((server >>> 16) & 0xff) &&
    prefix[6] === ((server >>> 8) & 0xff) &&
    prefix[7] === (server & 0xff)
  );
}
