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
 *
 * A warm mapping spoils the tests: the NAT still lets in whatever this socket sent to recently, so an answer from
 * the secondary address passes a restricted NAT if the socket sent there within the NAT's UDP timeout (the
 * probes of an earlier detection, before a server loss or in a core this one replaced). The cone test therefore
 * waits until the secondary address has heard nothing from this mapping for that long. A core that takes over
 * the socket of another (a reload in place) receives its handover: what the socket sent to the server addresses
 * and when, and the finished detection, which stands as long as the server gives the same mapping.
 */
import { ActionQueue, type Action, type Endpoint } from '../core/endpoint.js';
import { EventHeap } from '../core/heap.js';
import { Counters } from '../core/counters.js';
import { ConfigError } from '../core/errors.js';
import { randomBelow, randomBetween, randomBytes, type Rng } from '../core/rng.js';
import { TimerTable, type Millis } from '../core/time.js';
import { buildIcmpv6Packet, parseIcmpv6 } from '../wire/icmpv6.js';
import { formatIpv4Port, isGlobalIpv4, ipv4PortKey, ipv6Equal, sameIpv4Port, type Ipv4, type Ipv4Port } from '../wire/ip.js';
import { ALL_NODES, ALL_ROUTERS, isAllNodes, isLinkLocal, isMulticast } from '../wire/ipv6class.js';
import { buildBubble, isBubble, NEXT_HEADER_ICMPV6, parseIpv6, type Ipv6Packet } from '../wire/ipv6.js';
import { decodeTeredoAddress, encodeTeredoAddress, encodeTeredoPacket, isTeredoAddress, makeFlags, NONCE_LENGTH, TEREDO_PORT } from '../wire/teredo.js';
import { parseTrailers, type Trailers } from '../wire/trailers.js';
import {
  CLIENT_RS_SOURCE,
  CLIENT_RS_SOURCE_CONE,
  DEFAULT_NAT_UDP_TIMEOUT_MS,
  RS_ATTEMPTS,
  RS_TIMEOUT_MS,
  TEREDO_DISCOVERY_ADDRESS,
  TEREDO_MTU,
} from './constants.js';
import { addressUnreachable, bubbleDatagram, connectivityTestEcho } from './packets.js';
import { DEFAULT_PEER_LIMITS, PEER_VALIDITY_MS, peerInfoList, PeerList, type Peer, type PeerInfo, type PeerListLimits } from './peers.js';

export type { PeerInfo } from './peers.js';
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
  /** Peer table and queue caps. */
  limits?: Partial<PeerListLimits>;
  /** RFC 4380 §5.2.8 local client discovery on 224.0.0.253 (default on). */
  localDiscovery?: boolean;
  /** RFC 6081 §5.2 nonce trailers in bubbles (default on). */
  symmetricNatSupport?: boolean;
  /** RFC 6081 §3.5: our local address in indirect bubbles, for peers behind the same NAT (default on). */
  hairpinning?: boolean;
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
  | 'trailer-discard'
  | 'not-for-us'
  | 'unverified-teredo-source'
  | 'unknown-source-bubble'
  | 'discovery-bubble-invalid'
  | 'peer-queue-full'
  | 'global-queue-full'
  | 'pre-qualification-queue-full'
  | 'tunnel-bad-ipv6'
  | 'tunnel-bad-source'
  | 'tunnel-multicast'
  | 'tunnel-link-local'
  | 'non-global-destination'
  | 'peer-unreachable'
  | 'offline';

export type ClientEvent =
  | 'router-solicitations'
  | 'router-advertisements'
  | 'address-changes'
  | 'qualifications'
  | 'server-lost'
  | 'direct-bubbles-sent'
  | 'indirect-bubbles-sent'
  | 'discovery-bubbles-sent'
  | 'bubbles-received'
  | 'connectivity-tests'
  | 'peers-trusted'
  | 'unreachable-errors'
  | 'packets-from-tunnel'
  | 'bytes-from-tunnel'
  | 'packets-to-tunnel'
  | 'bytes-to-tunnel'
  | 'packets-sent'
  | 'packets-received';

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

type TimerName = 'rs' | 'probe' | 'refresh' | 'grace' | 'dormancy' | 'expire' | 'discovery' | 'detect';

/**
 * What a client core hands to the core that takes over its UDP socket (and so its NAT mapping), from
 * `handover()` to the new core's constructor. Times are on the clock both cores share.
 */
export interface ClientHandover {
  local: Ipv4Port | undefined;
  server: Ipv4Port;
  server2: Ipv4;
  probePort: number | false;
  /** The mapping the server last reported, and the detection made through it. */
  mapping: Ipv4Port | undefined;
  /** The random bits of the address on that mapping, so that a reload keeps the address. */
  random12: number | undefined;
  natType: NatType;
  natDetection: 'not-started' | 'running' | 'done';
  portFilteringKnown: boolean;
  /** The socket's last datagram to each server address and port: the NAT permissions it may still hold. */
  sentToServers: readonly { remote: Ipv4Port; at: Millis }[];
}


/** Retries of the bubble or connectivity-test rounds (RFC 4380 §5.2.4: 2 s, up to 3 more times). */
const ATTEMPT_INTERVAL_MS = 2_000;
const MAX_ATTEMPTS = 4;
/** Local peers stay local this long after their discovery bubble (RFC 4380 §5.2.4 case 3). */
const LOCAL_PEER_MS = 600_000;
/** Peers silent this long are forgotten. */
const PEER_IDLE_MS = 300_000;
const PRE_QUALIFICATION_QUEUE = 64;

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
  /** The server's NAT-probe port (transit6 servers offer 3546), or false to skip the port probe. */
  private readonly probePort: number | false;

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
  readonly peers: PeerList;
  private readonly peerDeadlines = new EventHeap<Peer>();
  /** Packets from the tunnel while qualifying: sent once qualified. */
  private preQueue: Uint8Array[] = [];
  /** RFC 6081 §5.5: Echo Test router solicitations in flight, by nonce. */
  private readonly echoTests = new Map<string, { peer: Peer; which: 1 | 2 }>();
  /** Random local ports open for peers (RFC 6081 §5.4, §5.5). */
  private readonly randomPorts = new Set<number>();
  /** The main socket's last RS to each server address and port (keyed by ipv4PortKey): the permissions it opened. */
  private readonly sentToServers = new Map<number, { remote: Ipv4Port; at: Millis }>();
  /**
   * From the core this one replaced, until the first mapping: that core's mapping, and what stands if the server
   * reports the same one again (its detection, the random bits of its address).
   */
  private inherited: { mapping: Ipv4Port; detection?: { natType: NatType; portFilteringKnown: boolean }; random12?: number } | undefined;

  /** `previous`: the handover of the core whose socket this one takes over (a reload in place). */
  constructor(
    private readonly config: TeredoClientConfig,
    private readonly rng: Rng,
    previous?: ClientHandover,
  ) {
    if (!isGlobalIpv4(config.server)) throw new ConfigError('the Teredo server address must be a global unicast IPv4 address');
    this.server = { addr: config.server, port: config.serverPort ?? TEREDO_PORT };
    this.server2 = config.server2 ?? ((config.server + 1) >>> 0);
    this.natTimeout = config.natUdpTimeoutMs ?? DEFAULT_NAT_UDP_TIMEOUT_MS;
    if (this.natTimeout < 4000) throw new ConfigError('a NAT UDP timeout under 4 s cannot be kept alive by Teredo refreshes');
    this.rsTimeout = config.rsTimeoutMs ?? RS_TIMEOUT_MS;
    this.rsAttempts = config.rsAttempts ?? RS_ATTEMPTS;
    this.offlineRetry = config.offlineRetryMs ?? this.rsTimeout;
    this.probePort = config.probePort ?? 3546;
    this.peers = new PeerList({ ...DEFAULT_PEER_LIMITS, ...config.limits });
    this.peers.onRemove = (peer) => this.releaseRandomPort(peer);
    if (config.onDemand) {
      this.state = 'dormant';
      this.reason = 'waiting for traffic';
    }
    // Starting is a deadline like any other, so that drivers need no special call.
    if (!config.onDemand) this.timers.set('rs', 0);
    if (previous) this.takeOver(previous);
  }

  /** What the next core on this socket needs to know (see ClientHandover). */
  handover(): ClientHandover {
    // With detection turned off, 'done' holds no result.
    const done = this.natDetection === 'done' && this.config.detectNat !== false;
    // Before its first mapping a core hands on what it was handed.
    const own = this.mapping !== undefined;
    const known = own ? (done ? { natType: this.natType, portFilteringKnown: this.portFilteringKnown } : undefined) : this.inherited?.detection;
    return {
      local: this.config.local,
      server: this.server,
      server2: this.server2,
      probePort: this.probePort,
      mapping: own ? this.mapping : this.inherited?.mapping,
      random12: own ? this.random12 : this.inherited?.random12,
      natType: known?.natType ?? this.natType,
      natDetection: known ? 'done' : this.natDetection === 'done' ? 'not-started' : this.natDetection,
      portFilteringKnown: known?.portFilteringKnown ?? this.portFilteringKnown,
      sentToServers: [...this.sentToServers.values()].map((e) => ({ remote: { ...e.remote }, at: e.at })),
    };
  }

  private takeOver(previous: ClientHandover): void {
    const a = previous.local;
    const b = this.config.local;
    // Another socket means another NAT mapping: nothing the previous core knew applies.
    if (a === undefined ? b !== undefined : b === undefined || !sameIpv4Port(a, b)) return;
    for (const e of previous.sentToServers) this.noteSent(e.remote, e.at);
    if (previous.mapping === undefined) return;
    const inherited: NonNullable<typeof this.inherited> = { mapping: { ...previous.mapping } };
    const sameServer = sameIpv4Port(previous.server, this.server);
    // The result stands only if this core would have run the same tests against the same server.
    const sameTests = sameServer && previous.server2 === this.server2 && previous.probePort === this.probePort && this.config.detectNat !== false;
    if (sameTests && previous.natDetection === 'done') inherited.detection = { natType: previous.natType, portFilteringKnown: previous.portFilteringKnown };
    // The address embeds the server and the mapping: with the same server it can stay, whatever the tests.
    const r = previous.random12;
    if (sameServer && r !== undefined && Number.isInteger(r) && r >= 0 && r < 0x1000) inherited.random12 = r;
    this.inherited = inherited;
  }

  private noteSent(remote: Ipv4Port, at: Millis): void {
    const key = ipv4PortKey(remote);
    const e = this.sentToServers.get(key);
    if (!e || e.at < at) this.sentToServers.set(key, { remote: { addr: remote.addr, port: remote.port }, at });
  }

  /**
   * When an answer from the secondary address can only pass a filtering NAT if it filters by nothing: once
   * nothing went there from this mapping for the NAT's UDP timeout, plus the RS time-out for the answers that
   * followed (which refresh a permission too).
   */
  private coneTestAt(now: Millis): Millis {
    let last = -Infinity;
    for (const e of this.sentToServers.values()) if (e.remote.addr === this.server2 && e.at > last) last = e.at;
    return Math.max(now, last + this.natTimeout + this.rsTimeout);
  }

  // ---------------------------------------------------------------------------------------------------
  // For the fast path (teredo/fastpath.ts), which takes the trusted-peer data packets with the same decisions.

  /** Our Teredo address while qualified (what fromTunnel and handleDatagram require), else undefined. */
  get fastAddress(): Uint8Array | undefined {
    return this.state === 'qualified' ? this.address : undefined;
  }

  /** Whether `addr:port` is our server's endpoint (its datagrams take the core's path). */
  isServerEndpoint(addr: Ipv4, port: number): boolean {
    return addr === this.server.addr && port === this.server.port;
  }

  /** What handleIpv6 records for every tunnel packet before looking at it. */
  noteTunnelPacket(now: Millis, bytes: number): void {
    this.lastTraffic = now;
    this.events.inc('packets-from-tunnel');
    this.events.inc('bytes-from-tunnel', bytes);
  }

  // ---------------------------------------------------------------------------------------------------
  // Endpoint

  handleDatagram(now: Millis, from: Ipv4Port, to: Ipv4Port, data: Uint8Array): void {
    const checked = parseTeredoPacketChecked(data);
    if (!checked.ok) {
      this.drops.inc(checked.reason);
      return;
    }
    const { packet, ipv6 } = checked;
    const fromServer = sameIpv4Port(from, this.server);
    if (fromServer) this.lastServerContact = now;
    const h = ipv6.header;
    if (h.nextHeader === NEXT_HEADER_ICMPV6 && ipv6.payload[0] === 134) {
      this.handleRouterAdvertisement(now, from, packet.auth?.nonce, packet.origin, ipv6.header.dst, ipv6.header.src, ipv6.payload, h.hopLimit);
      return;
    }
    if (this.state !== 'qualified' || !this.address) {
      this.drops.inc('not-qualified');
      return;
    }
    // RFC 6081 §5.1.2: trailers are read in order; an unknown 01xxxxxx type discards the packet.
    const tr = parseTrailers(ipv6.trailing);
    if (!tr.ok) {
      this.drops.inc('trailer-discard');
      return;
    }
    this.events.inc('packets-received');
    const bubble = isBubble(h);
    if (bubble) this.events.inc('bubbles-received');
    // RFC 4380 §5.2.8: a local discovery bubble, to the discovery address and all-nodes.
    if (to.addr === TEREDO_DISCOVERY_ADDRESS || isAllNodes(h.dst)) {
      this.onDiscoveryBubble(now, from, to, ipv6, bubble);
      return;
    }
    // RFC 4380 §5.2.3: the destination must be our Teredo address (bubbles may answer our link-local one).
    if (!ipv6Equal(h.dst, this.address) && !(bubble && isLinkLocal(h.dst))) {
      this.drops.inc('not-for-us');
      return;
    }
    // What the server forwards carries an origin indication; without one, a packet from the server's address
    // comes from the relay that runs beside it (RFC 4380 §5.4.3) and follows the peer rules.
    if (fromServer && packet.origin) {
      this.onFromServer(now, packet.origin, ipv6, bubble, tr.value);
      return;
    }
    this.onFromPeer(now, from, to, ipv6, bubble, tr.value);
  }

  handleIpv6(now: Millis, packet: Uint8Array): void {
    this.lastTraffic = now;
    this.events.inc('packets-from-tunnel');
    this.events.inc('bytes-from-tunnel', packet.length);
    this.fromTunnel(now, packet);
  }

  private fromTunnel(now: Millis, packet: Uint8Array): void {
    const p = parseIpv6(packet);
    if (!p.ok) {
      this.drops.inc('tunnel-bad-ipv6');
      return;
    }
    const h = p.value.header;
    if (isMulticast(h.dst)) {
      // MLD reports and the like: nothing on a Teredo link listens to multicast.
      this.drops.inc('tunnel-multicast');
      return;
    }
    if (isLinkLocal(h.dst)) {
      this.drops.inc('tunnel-link-local');
      return;
    }
    if (this.state !== 'qualified' || !this.address) {
      if (this.state === 'dormant') this.wake(now);
      if (this.state === 'offline') {
        this.drops.inc('offline');
        this.unreachable(p.value.packet);
        return;
      }
      if (this.preQueue.length >= PRE_QUALIFICATION_QUEUE) {
        this.drops.inc('pre-qualification-queue-full');
        return;
      }
      this.preQueue.push(p.value.packet.slice());
      return;
    }
    if (!ipv6Equal(h.src, this.address)) {
      this.drops.inc('tunnel-bad-source');
      return;
    }
    this.transmit(now, p.value.packet, h.dst);
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
        case 'expire':
          this.peers.expire(now, PEER_IDLE_MS);
          this.timers.set('expire', now + PEER_VALIDITY_MS);
          break;
        case 'discovery':
          this.sendDiscoveryBubble();
          this.timers.set('discovery', now + randomBetween(this.rng, 200_000, 300_000));
          break;
        case 'detect':
          this.startDetection(now);
          break;
      }
    }
    for (let e = this.peerDeadlines.peek(); e && e.at <= now; e = this.peerDeadlines.peek()) {
      this.peerDeadlines.pop();
      // Lazy invalidation: only the peer's current deadline counts.
      if (e.value.nextAttemptAt === e.at) this.onPeerDeadline(now, e.value);
    }
  }

  pollTimeout(): Millis | undefined {
    const t = this.timers.next();
    const p = this.peerDeadlines.peek()?.at;
    return t === undefined ? p : p === undefined ? t : Math.min(t, p);
  }

  poll(): Action | undefined {
    return this.actions.poll();
  }

  // ---------------------------------------------------------------------------------------------------
  // Reception (RFC 4380 §5.2.3, RFC 6081 §5.2.4)

  /** From our server: forwarded bubbles carry the origin indication of the peer that sent them. */
  private onFromServer(now: Millis, origin: Ipv4Port, ipv6: Ipv6Packet, bubble: boolean, tr: Trailers): void {
    const h = ipv6.header;
    if (!bubble) {
      // ICMPv6 the server relayed (§5.3.1 lets it carry nothing else): generous in what we accept.
      this.deliver(ipv6.packet);
      return;
    }
    // An indirect bubble: answer straight to where it came from, so our NAT opens towards that peer. The reply
    // swaps the addresses exactly (Miredo relays recognize their own link-local source) and echoes the nonce.
    const echoNonce = this.config.symmetricNatSupport === false ? undefined : tr.nonce;
    this.sendDirectBubble(origin, h.src, echoNonce);
    if (!isTeredoAddress(h.src)) return;
    const peer = this.peers.get(h.src) ?? this.peers.create(h.src, now);
    // RFC 6081 §5.2.4.3: remember the nonce of the last indirect bubble (or forget it when there is none).
    peer.nonceReceived = echoNonce;
    if (tr.randomPort !== undefined && tr.randomPort !== 0 && this.config.symmetricNatSupport !== false) {
      // RFC 6081 §5.4.4.4: the peer's random port; a new one replaces it only after 30 s without traffic.
      const quiet = now - Math.max(peer.lastRx, peer.lastTx) > PEER_VALIDITY_MS;
      if (peer.peerRandomPort === 0 || (peer.peerRandomPort !== tr.randomPort && quiet)) peer.peerRandomPort = tr.randomPort;
      // Its NAT opened a mapping on that port towards us: answer there (§5.4.4.3).
      this.sendDirectBubble({ addr: origin.addr, port: peer.peerRandomPort }, h.src, echoNonce, false, peer.randomPort, peer.advertisedPort);
    }
    const sameNat = this.mapping !== undefined && decodeTeredoAddress(h.src)?.mappedAddr === this.mapping.addr;
    if (sameNat && tr.alternateAddresses && tr.alternateAddresses.length > 0) {
      // RFC 6081 §3.5: a peer behind our NAT told us its local endpoints; they may be reachable directly. Only
      // then: a private address must never be sent to across the Internet (RFC 4380 §5.2.4).
      peer.alternates = tr.alternateAddresses.slice(0, 4);
      for (const alt of peer.alternates) this.sendDirectBubble(alt, h.src, echoNonce);
    }
    if (peer.trusted && peer.mapped && !sameIpv4Port(peer.mapped, origin)) {
      // We reach this peer elsewhere than its Teredo address says (it is behind a symmetric NAT): answer there
      // too, or our bubble never gets through its NAT.
      this.sendDirectBubble(peer.mapped, h.src, echoNonce);
    }
    if (!peer.trusted) {
      // RFC 6081 §3.1, second case: a peer behind a symmetric NAT cannot receive our direct bubble at the address
      // in its Teredo address; an indirect bubble of ours lets it answer from the mapping it really uses.
      if (this.peers.takeBubble(peer, now)) this.sendIndirectBubble(peer, now);
    }
  }

  private onFromPeer(now: Millis, from: Ipv4Port, to: Ipv4Port, ipv6: Ipv6Packet, bubble: boolean, tr: Trailers): void {
    const h = ipv6.header;
    let peer = this.peers.get(h.src);
    // Case 1: a trusted peer, from where we know it.
    if (peer && peer.trusted && ((peer.local && sameIpv4Port(peer.local, from)) || peer.verified.some((v) => sameIpv4Port(v, from)))) {
      this.heard(peer, now);
      if (!bubble) this.deliver(ipv6.packet);
      // RFC 6081 §3.6 (server load reduction): a direct bubble that solicits an answer gets one, directly.
      else if (tr.ndOption === 0) this.sendDirectBubble(from, h.src, undefined, false, peer.sendFrom, 0, 1);
      return;
    }
    // Case 2: the answer to our direct IPv6 connectivity test (§5.2.9): the nonce proves it.
    if (peer && !peer.trusted && peer.echoNonce && this.isEchoReplyFor(peer, ipv6)) {
      this.trust(peer, from, now);
      return;
    }
    const teredo = isTeredoAddress(h.src) ? decodeTeredoAddress(h.src) : undefined;
    if (teredo) {
      const matches = teredo.mappedAddr === from.addr && teredo.mappedPort === from.port;
      // Case 3: the packet comes from the mapping its Teredo address names.
      // RFC 6081 §5.2.4.4: or it echoes the nonce of our indirect bubble (a peer behind a symmetric NAT).
      const nonceOk = bubble && peer?.nonceSent !== undefined && tr.nonce !== undefined && bytesEqual(tr.nonce, peer.nonceSent);
      // Case 5: a local peer (§5.2.8) from its local endpoint; RFC 6081 §3.5: from an alternate it told us.
      const localOk = peer !== undefined && ((peer.local !== undefined && sameIpv4Port(peer.local, from)) || peer.alternates.some((a) => sameIpv4Port(a, from)));
      // RFC 6081 §5.4.4.5: on the random port we opened for this peer (only it was told of that port) ...
      const onRandomPort = peer !== undefined && peer.randomPort !== 0 && to.port === peer.randomPort;
      // ... or from the random port it told us of, at the address its Teredo address names.
      const fromPeerRandom = peer !== undefined && peer.peerRandomPort !== 0 && from.addr === teredo.mappedAddr && from.port === peer.peerRandomPort;
      if (matches || nonceOk || localOk || onRandomPort || fromPeerRandom) {
        peer ??= this.peers.create(h.src, now);
        if (localOk && !matches) peer.local = from;
        const wasTrusted = peer.trusted;
        // The random port stays open while the entry lives: the peer may have learned either way to us.
        if (onRandomPort) peer.sendFrom = peer.randomPort;
        this.trust(peer, from, now);
        // RFC 6081 §3.1: the peer reached us from a mapping its address does not name (or on a random port); a
        // bubble back the same way lets it see us where it expects us, and trust us in turn.
        if ((!matches || onRandomPort) && !localOk && !wasTrusted) this.sendDirectBubble(from, h.src, undefined, false, peer.sendFrom);
        if (!bubble) this.deliver(ipv6.packet);
        return;
      }
      this.drops.inc(bubble ? 'unknown-source-bubble' : 'unverified-teredo-source');
      return;
    }
    if (bubble) {
      this.drops.inc('unknown-source-bubble');
      return;
    }
    // Case 6: a native source we do not know yet, through some relay. Hold the packet and run our own
    // connectivity test (§5.2.9); it is delivered only if the test's answer comes back through the same relay.
    peer ??= this.peers.create(h.src, now);
    const r = this.peers.enqueueInbound(peer, ipv6.packet, from);
    if (r !== 'queued') {
      this.drops.inc(r);
      return;
    }
    if (!peer.echoNonce) this.startAttempts(peer, now);
  }

  private onDiscoveryBubble(now: Millis, from: Ipv4Port, to: Ipv4Port, ipv6: Ipv6Packet, bubble: boolean): void {
    const h = ipv6.header;
    // §5.2.8: only bubbles, to the discovery address (never over unicast), from a Teredo address that shares our
    // mapped address (same NAT), to all-nodes.
    const src = decodeTeredoAddress(h.src);
    const own = this.mapping;
    if (
      this.config.localDiscovery === false ||
      !bubble ||
      to.addr !== TEREDO_DISCOVERY_ADDRESS ||
      !isAllNodes(h.dst) ||
      !src ||
      src.prefix !== 'rfc4380' ||
      !own ||
      src.mappedAddr !== own.addr ||
      ipv6Equal(h.src, this.address!)
    ) {
      this.drops.inc('discovery-bubble-invalid');
      return;
    }
    const peer = this.peers.get(h.src) ?? this.peers.create(h.src, now);
    peer.local = from;
    peer.localUntil = now + LOCAL_PEER_MS;
    peer.lastRx = now;
    // §5.2.3 case 4: answer with a unicast bubble to where the discovery bubble came from.
    this.sendDirectBubble(from, h.src, undefined);
    // Packets already waiting for this peer can try its local endpoint at once.
    if (peer.queued > 0 && !peer.trusted) this.sendDirectBubble(from, h.src, undefined);
  }

  private isEchoReplyFor(peer: Peer, ipv6: Ipv6Packet): boolean {
    const h = ipv6.header;
    if (h.nextHeader !== NEXT_HEADER_ICMPV6) return false;
    const m = parseIcmpv6(ipv6.payload, h.src, h.dst);
    return m.ok && m.value.type === 'echo-reply' && m.value.identifier === peer.echoId && m.value.sequence === peer.echoSeq && bytesEqual(m.value.data, peer.echoNonce!);
  }

  private heard(peer: Peer, now: Millis): void {
    peer.lastRx = now;
    this.peers.answered(peer, now);
    this.peers.touch(peer, now);
  }

  /** The peer is now reachable at `from`: send what waited for it, deliver what it sent while unverified. */
  private trust(peer: Peer, from: Ipv4Port, now: Millis): void {
    if (!peer.trusted) this.events.inc('peers-trusted');
    // The first proven endpoint is where we send; later ones (another mapping of a symmetric NAT) are accepted too.
    if (!peer.verified.some((v) => sameIpv4Port(v, from))) {
      // Copy on write: an empty list is shared between peers (peers.ts).
      peer.verified = [...peer.verified.slice(peer.verified.length >= 4 ? 1 : 0), from];
    }
    const stale = now - peer.lastRx >= PEER_VALIDITY_MS;
    if (!(peer.local && sameIpv4Port(peer.local, from)) && (!peer.trusted || !peer.mapped || stale)) peer.mapped = from;
    peer.trusted = true;
    peer.echoNonce = undefined;
    peer.nextAttemptAt = undefined;
    this.heard(peer, now);
    const { out, inbound } = this.peers.drain(peer);
    for (const packet of out) this.sendTo(from, packet, peer.sendFrom);
    peer.lastTx = now;
    for (const q of inbound) {
      // Miredo's rule too: only packets that came through the endpoint the test vouched for.
      if (sameIpv4Port(q.from, from)) this.deliver(q.packet);
      else this.drops.inc('unverified-teredo-source');
    }
  }

  // ---------------------------------------------------------------------------------------------------
  // Transmission (RFC 4380 §5.2.4)

  private transmit(now: Millis, packet: Uint8Array, dst: Uint8Array): void {
    let peer = this.peers.get(dst);
    // Case 1: a trusted peer.
    if (peer && peer.trusted) {
      const target = peer.local && now < peer.localUntil ? peer.local : peer.mapped;
      if (target) {
        this.sendTo(target, packet, target === peer.local ? 0 : peer.sendFrom);
        peer.lastTx = now;
        // A peer silent for 30 s may have lost its NAT mapping: solicit an answer, keep sending (RFC 6081 §3.6).
        if (now - peer.lastRx >= PEER_VALIDITY_MS && peer.nextAttemptAt === undefined) this.refreshPeer(peer, now);
        return;
      }
    }
    const teredo = isTeredoAddress(dst) ? decodeTeredoAddress(dst) : undefined;
    if (teredo && !isGlobalIpv4(teredo.mappedAddr) && !(peer && peer.local)) {
      // §5.2.4 cases 4 and 5: never towards a non-global IPv4 address.
      this.drops.inc('non-global-destination');
      return;
    }
    peer ??= this.peers.create(dst, now);
    const r = this.peers.enqueue(peer, packet);
    if (r !== 'queued') {
      this.drops.inc(r);
      return;
    }
    if (peer.nextAttemptAt === undefined) this.startAttempts(peer, now);
  }

  /** Starts the rounds that reach a peer: bubbles for Teredo peers, the connectivity test for native ones. */
  private startAttempts(peer: Peer, now: Millis): void {
    peer.attempts = 0;
    this.attempt(peer, now);
  }

  private attempt(peer: Peer, now: Millis): void {
    peer.attempts++;
    if (isTeredoAddress(peer.addr)) {
      const t = decodeTeredoAddress(peer.addr)!;
      if (peer.local && now < peer.localUntil) {
        // §5.2.4 case 3: a local peer: a unicast bubble to its local endpoint and a discovery bubble.
        this.sendDirectBubble(peer.local, peer.addr, undefined);
        this.sendDiscoveryBubble();
      } else if (this.peers.takeBubble(peer, now)) {
        // §5.2.4 case 5, cone bit ignored (RFC 5991 §3.2): a direct bubble to open our NAT towards the peer,
        // and an indirect one through the peer's server to make it answer.
        this.sendDirectBubble({ addr: t.mappedAddr, port: t.mappedPort }, peer.addr, peer.nonceReceived);
        for (const alt of peer.alternates) this.sendDirectBubble(alt, peer.addr, peer.nonceReceived);
        this.sendIndirectBubble(peer, now);
        // RFC 6081 §5.4.4.3: from our random port too (our symmetric NAT maps it for this peer only), and to the
        // peer's random port when it told us one.
        if (peer.randomPort !== 0 && !peer.echoTest) this.sendDirectBubble({ addr: t.mappedAddr, port: t.mappedPort }, peer.addr, peer.nonceReceived, false, peer.randomPort, peer.advertisedPort);
        if (peer.peerRandomPort !== 0) this.sendDirectBubble({ addr: t.mappedAddr, port: peer.peerRandomPort }, peer.addr, peer.nonceReceived, false, peer.randomPort, peer.advertisedPort);
      }
    } else {
      this.sendConnectivityTest(peer);
    }
    this.setPeerDeadline(peer, now + ATTEMPT_INTERVAL_MS);
  }

  /** RFC 6081 §3.6: a direct bubble soliciting an answer, falling back to the full exchange. */
  private refreshPeer(peer: Peer, now: Millis): void {
    if (isTeredoAddress(peer.addr) && peer.mapped) {
      if (this.peers.takeBubble(peer, now)) this.sendDirectBubble(peer.mapped, peer.addr, undefined, true);
    } else if (!isTeredoAddress(peer.addr)) {
      this.sendConnectivityTest(peer);
    }
    peer.attempts = MAX_ATTEMPTS - 1;
    this.setPeerDeadline(peer, now + ATTEMPT_INTERVAL_MS);
  }

  private onPeerDeadline(now: Millis, peer: Peer): void {
    peer.nextAttemptAt = undefined;
    if (peer.trusted && peer.queued === 0 && peer.queuedInbound === 0) return;
    if (peer.trusted && now - peer.lastRx < PEER_VALIDITY_MS) return;
    if (peer.attempts < MAX_ATTEMPTS) {
      this.attempt(peer, now);
      return;
    }
    if (peer.trusted) return; // a refresh that got no answer: keep sending, the next packet tries again
    // §5.2.4: the peer cannot be reached: tell the sender of every queued packet. The entry stays (until it
    // expires) so that its bubble budget of §5.2.6 keeps counting: new packets cannot buy new bubbles.
    const { out, inbound } = this.peers.drain(peer);
    for (const packet of out) {
      this.drops.inc('peer-unreachable');
      this.unreachable(packet);
    }
    for (let i = 0; i < inbound.length; i++) this.drops.inc('unverified-teredo-source');
    peer.echoNonce = undefined;
  }

  private setPeerDeadline(peer: Peer, at: Millis): void {
    peer.nextAttemptAt = at;
    this.peerDeadlines.push(at, peer);
  }

  private sendConnectivityTest(peer: Peer): void {
    // §5.2.9: an echo request with a 64-bit nonce, through our server; id and sequence are random too.
    peer.echoNonce = randomBytes(this.rng, 8);
    peer.echoId = randomBelow(this.rng, 0x10000);
    peer.echoSeq = randomBelow(this.rng, 0x10000);
    this.events.inc('connectivity-tests');
    const echo = connectivityTestEcho(this.address!, peer.addr, peer.echoId, peer.echoSeq, peer.echoNonce);
    this.actions.push({ kind: 'udp-send', remote: this.server, data: encodeTeredoPacket({ ipv6: echo }) });
  }

  private sendDirectBubble(to: Ipv4Port, peerAddr: Uint8Array, nonce: Uint8Array | undefined, solicit = false, fromPort = 0, randomPort = 0, ndOption?: number): void {
    const trailers: Trailers = {};
    if (nonce) trailers.nonce = nonce;
    if (solicit) trailers.ndOption = 0;
    else if (ndOption !== undefined) trailers.ndOption = ndOption;
    if (randomPort !== 0) trailers.randomPort = randomPort;
    this.events.inc('direct-bubbles-sent');
    this.actions.push({ kind: 'udp-send', ...this.localFor(fromPort), remote: to, data: bubbleDatagram(this.address!, peerAddr, trailers) });
  }

  /** The `local` of a udp-send: the service port unless a random port is named. */
  private localFor(port: number): { local?: Ipv4Port } {
    return port !== 0 && this.config.local ? { local: { addr: this.config.local.addr, port } } : {};
  }

  /** RFC 6081 §5.4.4.2, §5.5.4.1: a random local port for a peer, listened on until the peer is reached. */
  private openRandomPort(): number {
    for (;;) {
      const port = 1024 + randomBelow(this.rng, 65536 - 1024);
      if (port !== this.config.local?.port && port !== TEREDO_PORT && !this.randomPorts.has(port)) {
        this.randomPorts.add(port);
        if (this.config.local) this.actions.push({ kind: 'udp-open', local: { addr: this.config.local.addr, port } });
        return port;
      }
    }
  }

  /** Closes the peer's random port (when its entry leaves the table). */
  private releaseRandomPort(peer: Peer): void {
    if (peer.echoTest) {
      this.echoTests.delete(peer.echoTest.nonce1);
      this.echoTests.delete(peer.echoTest.nonce2);
      peer.echoTest = undefined;
    }
    if (peer.randomPort === 0) return;
    this.randomPorts.delete(peer.randomPort);
    if (this.config.local) this.actions.push({ kind: 'udp-close', local: { addr: this.config.local.addr, port: peer.randomPort } });
    peer.randomPort = 0;
    peer.advertisedPort = 0;
  }

  /**
   * RFC 6081 §5.5.4.1.1: from the random port, an RS to the server, a direct bubble to the peer, an RS to the
   * secondary address. A sequential NAT gives the bubble the port between the two the RAs report.
   */
  private startEchoTest(peer: Peer, now: Millis): void {
    const t = decodeTeredoAddress(peer.addr)!;
    const retries = (peer.echoTest?.retries ?? 0) + 1;
    if (peer.echoTest) {
      this.echoTests.delete(peer.echoTest.nonce1);
      this.echoTests.delete(peer.echoTest.nonce2);
    }
    const n1 = randomBytes(this.rng, NONCE_LENGTH);
    const n2 = randomBytes(this.rng, NONCE_LENGTH);
    peer.echoTest = { nonce1: hexOf(n1), nonce2: hexOf(n2), lower: 0, upper: 0, retries };
    this.echoTests.set(peer.echoTest.nonce1, { peer, which: 1 });
    this.echoTests.set(peer.echoTest.nonce2, { peer, which: 2 });
    const rs = buildIcmpv6Packet(CLIENT_RS_SOURCE, ALL_ROUTERS, { type: 'router-solicitation', options: [] });
    const auth = (nonce: Uint8Array) => ({ clientId: new Uint8Array(0), authValue: new Uint8Array(0), nonce, confirmation: 0 });
    const local = this.localFor(peer.randomPort);
    this.events.inc('router-solicitations', 2);
    this.actions.push({ kind: 'udp-send', ...local, remote: this.server, data: encodeTeredoPacket({ auth: auth(n1), ipv6: rs }) });
    this.sendDirectBubble({ addr: t.mappedAddr, port: t.mappedPort }, peer.addr, peer.nonceReceived, false, peer.randomPort);
    this.actions.push({ kind: 'udp-send', ...local, remote: { addr: this.server2, port: this.server.port }, data: encodeTeredoPacket({ auth: auth(n2), ipv6: rs }) });
    void now;
  }

  private onEchoTestAnswer(now: Millis, peer: Peer, which: 1 | 2, port: number): void {
    const test = peer.echoTest;
    if (!test) return;
    if (which === 1 && test.lower === 0) test.lower = port;
    if (which === 2 && test.upper === 0) test.upper = port;
    if (test.lower === 0 || test.upper === 0) return;
    // RFC 6081 §5.5.4.4 writes "(EchoTestUpperPort + EchoTestUpperPort)/2"; its §6.4 example (1200, 1202 -> 1201)
    // shows the midpoint was meant.
    peer.advertisedPort = Math.floor((test.lower + test.upper) / 2);
    this.echoTests.delete(test.nonce1);
    this.echoTests.delete(test.nonce2);
    peer.echoTest = undefined;
    this.sendIndirectBubble(peer, now);
  }

  private sendIndirectBubble(peer: Peer, now: Millis): void {
    const t = decodeTeredoAddress(peer.addr);
    if (!t || !isGlobalIpv4(t.server)) return;
    if (this.config.symmetricNatSupport !== false && this.natType === 'symmetric' && !peer.trusted && this.config.local) {
      const portPreserving = this.mapping !== undefined && this.mapping.port === this.config.local.port;
      if (peer.randomPort === 0) {
        peer.randomPort = this.openRandomPort();
        if (portPreserving) {
          // RFC 6081 §5.4.4.2: a port-preserving NAT will map the random port to itself. A bubble from it to the
          // peer first, so that our NAT holds that mapping, open for the peer, before the peer learns the port.
          peer.advertisedPort = peer.randomPort;
          this.sendDirectBubble({ addr: t.mappedAddr, port: t.mappedPort }, peer.addr, peer.nonceReceived, false, peer.randomPort, peer.advertisedPort);
        } else {
          // RFC 6081 §5.5.4.1: predict the port first; the indirect bubble goes once the Echo Test answers.
          this.startEchoTest(peer, now);
          return;
        }
      } else if (peer.echoTest && peer.advertisedPort === 0 && peer.echoTest.retries < 2) {
        // §5.5.2.2: the first Echo Test got no answers in time: one more try.
        this.startEchoTest(peer, now);
        return;
      }
    }
    const trailers: Trailers = {};
    if (peer.advertisedPort !== 0) trailers.randomPort = peer.advertisedPort;
    if (this.config.symmetricNatSupport !== false) {
      // RFC 6081 §5.2.4.1: a fresh 4-byte nonce in every indirect bubble.
      peer.nonceSent = randomBytes(this.rng, 4);
      trailers.nonce = peer.nonceSent;
    }
    if (this.config.hairpinning !== false && this.config.local && this.mapping && !sameIpv4Port(this.config.local, this.mapping)) {
      trailers.alternateAddresses = [this.config.local];
    }
    this.events.inc('indirect-bubbles-sent');
    this.actions.push({ kind: 'udp-send', remote: { addr: t.server, port: TEREDO_PORT }, data: bubbleDatagram(this.address!, peer.addr, trailers) });
  }

  /** §5.2.8: a bubble to all-nodes over 224.0.0.253 (the driver sends it with TTL 1). */
  private sendDiscoveryBubble(): void {
    if (this.config.localDiscovery === false || !this.address) return;
    const bubble = buildBubble(this.address, ALL_NODES);
    bubble[7] = 1; // hop limit 1
    this.events.inc('discovery-bubbles-sent');
    this.actions.push({ kind: 'udp-send', remote: { addr: TEREDO_DISCOVERY_ADDRESS, port: TEREDO_PORT }, data: encodeTeredoPacket({ ipv6: bubble }) });
  }

  private sendTo(to: Ipv4Port, packet: Uint8Array, fromPort = 0): void {
    this.events.inc('packets-sent');
    this.actions.push({ kind: 'udp-send', ...this.localFor(fromPort), remote: to, data: encodeTeredoPacket({ ipv6: packet }) });
  }

  private deliver(packet: Uint8Array): void {
    this.events.inc('packets-to-tunnel');
    this.events.inc('bytes-to-tunnel', packet.length);
    this.actions.push({ kind: 'ipv6-deliver', packet: packet.slice() });
  }

  private unreachable(packet: Uint8Array): void {
    const err = addressUnreachable(packet);
    if (!err) return;
    this.events.inc('unreachable-errors');
    this.actions.push({ kind: 'ipv6-deliver', packet: err });
  }

  /** The peer table for `show peers`. */
  peerTable(): PeerInfo[] {
    return peerInfoList(this.peers);
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
        target = { addr: this.server2, port: this.probePort as number };
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
    this.noteSent(target, now);
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
        this.startProbe(now, this.probePort === false ? 'symmetric' : 'port');
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
    this.timers.clear('discovery');
    this.timers.clear('detect');
    this.probe = undefined;
    if (this.state !== 'offline') {
      if (reason === 'server-lost') this.events.inc('server-lost');
      this.state = 'offline';
      this.reason = reason;
      if (wasQualified) this.actions.push({ kind: 'iface-down', reason });
      this.actions.push({ kind: 'state-changed', state: 'offline', reason });
      // Detection starts over with the next qualification.
      if (this.natDetection === 'running') this.natDetection = 'not-started';
      const waiting = this.preQueue;
      this.preQueue = [];
      for (const packet of waiting) this.unreachable(packet);
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
      this.timers.clear('discovery');
      this.timers.clear('detect');
      // An interrupted detection starts over on waking (on a warm mapping: see startDetection).
      if (this.natDetection === 'running') this.natDetection = 'not-started';
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
      const test = this.echoTests.get(hexOf(nonce));
      if (test && origin && (from.addr === this.server.addr || from.addr === this.server2) && from.port === this.server.port) {
        this.onEchoTestAnswer(now, test.peer, test.which, origin.port);
        return;
      }
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
        return from.addr === this.server2 && (from.port === this.server.port || from.port === this.probePort);
      case 'symmetric':
        return from.addr === this.server2 && from.port === this.server.port;
    }
  }

  /** A mapping from the primary server: qualify, or check it is unchanged (RFC 4380 §5.2.5). */
  private onMapping(now: Millis, mapping: Ipv4Port): void {
    const first = this.state !== 'qualified';
    const changed = this.mapping !== undefined && !sameIpv4Port(this.mapping, mapping);
    // A reload in place: what the previous core knew holds on the same mapping only. Another mapping means the NAT
    // changed or forgot the socket, and with it the permissions the old mapping held.
    const handed = this.inherited && sameIpv4Port(this.inherited.mapping, mapping) ? this.inherited : undefined;
    if (this.inherited && !handed) this.sentToServers.clear();
    this.inherited = undefined;
    if (first || changed) {
      const old = this.address;
      if (changed || !this.address) this.random12 = handed?.random12 ?? randomBelow(this.rng, 0x1000);
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
        // A new mapping may mean a new NAT: detect again. Peers knew the old address: start over with them.
        // The permissions the old mapping held went with it (a NAT drops them before it maps the socket anew).
        this.natType = 'unknown';
        this.natDetection = 'not-started';
        this.portFilteringKnown = false;
        this.timers.clear('detect');
        this.sentToServers.clear();
        for (const peer of [...this.peers.values()]) this.peers.remove(peer);
      }
      this.timers.set('expire', now + PEER_VALIDITY_MS);
      if (this.config.localDiscovery !== false) {
        // Announce ourselves now, so clients behind the same NAT find us before they need us (§5.2.8).
        this.sendDiscoveryBubble();
        this.timers.set('discovery', now + randomBetween(this.rng, 200_000, 300_000));
      }
      const waiting = this.preQueue;
      this.preQueue = [];
      for (const packet of waiting) this.fromTunnel(now, packet);
      if (this.config.idleDormancyMs !== undefined) this.timers.set('dormancy', now + this.config.idleDormancyMs);
    }
    this.scheduleRefresh(now);
    if (handed?.detection && this.natDetection === 'not-started') {
      // The same socket, server and mapping: the same NAT, whose filter the previous probes have opened since.
      this.natType = handed.detection.natType;
      this.portFilteringKnown = handed.detection.portFilteringKnown;
      this.finishDetection('unchanged mapping: the previous detection stands');
      return;
    }
    if (this.natDetection === 'not-started') {
      if (this.config.detectNat === false) {
        this.natDetection = 'done';
        this.natType = this.isUnNatted(mapping) ? 'none' : 'unknown';
      } else {
        this.natDetection = 'running';
        this.startDetection(now);
      }
    }
  }

  /** The cone test, once the secondary address can no longer get through on an old permission. */
  private startDetection(now: Millis): void {
    if (this.natDetection !== 'running') return;
    const at = this.coneTestAt(now);
    if (at > now) this.timers.set('detect', at);
    else this.startProbe(now, 'cone');
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

function hexOf(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += (b[i]! < 16 ? '0' : '') + b[i]!.toString(16);
  return s;
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
