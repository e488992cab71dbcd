/**
 * The Teredo relay (RFC 4380 §5.4) and host-specific relay (the white paper's "Teredo host-specific relay": a
 * dual-stack host that talks to Teredo clients directly). Towards a client it queues packets while it bubbles
 * through the client's server; it accepts packets only from clients that completed that exchange, and forwards
 * them only to the native addresses it serves. Never native to native, never Teredo to Teredo.
 *
 * The source of the relay's bubbles is fe80:: followed by a keyed hash of the client's address. A client behind
 * a symmetric NAT answers from a mapping its Teredo address does not name; the answer is still accepted when it
 * is addressed to that hash (what Miredo's relays do, so Miredo clients behind symmetric NATs work) or when it
 * echoes the nonce of the relay's indirect bubble (RFC 6081 §5.2.4.4).
 */
import { ActionQueue, type Action, type Endpoint } from '../core/endpoint.js';
import { Counters } from '../core/counters.js';
import { ConfigError } from '../core/errors.js';
import { randomBytes, type Rng } from '../core/rng.js';
import { siphash24 } from '../core/siphash.js';
import { TimerTable, type Millis } from '../core/time.js';
import { isGlobalIpv4, ipv6Equal, sameIpv4Port, type Ipv4Port } from '../wire/ip.js';
import { isGlobalUnicastIpv6, isLinkLocal } from '../wire/ipv6class.js';
import { isBubble, parseIpv6, type Ipv6Packet } from '../wire/ipv6.js';
import { decodeTeredoAddress, encodeTeredoPacket, isTeredoAddress, TEREDO_PORT } from '../wire/teredo.js';
import { parseTrailers, type Trailers } from '../wire/trailers.js';
import { addressUnreachable, bubbleDatagram } from './packets.js';
import { RelayLimiter, type RelayLimitDrop, type RelayRateLimits } from './limits.js';
import { DEFAULT_PEER_LIMITS, PEER_VALIDITY_MS, PeerList, type Peer, type PeerListLimits } from './peers.js';
import { parseTeredoPacketChecked, type TeredoFrameDrop, type TeredoServer } from './server.js';

export interface TeredoRelayConfig {
  /**
   * 'relay' forwards between Teredo clients and the IPv6 Internet; 'host' is a host-specific relay that serves
   * only its own addresses, delivering to and taking from the local stack.
   */
  mode?: 'relay' | 'host';
  /** Host mode: the host's own native IPv6 addresses. */
  hostAddresses?: Uint8Array[];
  /** Behind a NAT (Miredo's RelayType restricted): send direct bubbles too, to open our NAT (§5.4.1 case 3). */
  directBubbles?: boolean;
  limits?: Partial<PeerListLimits>;
  /** Rate limits on new peers (src/teredo/limits.ts); unset keys take the defaults. */
  rateLimits?: Partial<RelayRateLimits>;
  /** The relay's UDP endpoint, for show state. */
  local?: Ipv4Port;
}

export type RelayDrop =
  | TeredoFrameDrop
  | 'trailer-discard'
  | 'non-teredo-source'
  | 'unknown-peer'
  | 'unverified-source'
  | 'not-served-destination'
  | 'native-bad-ipv6'
  | 'native-not-teredo-destination'
  | 'native-teredo-source'
  | 'native-non-global-source'
  | 'non-global-mapped-destination'
  | 'peer-queue-full'
  | 'global-queue-full'
  | 'peer-unreachable'
  | RelayLimitDrop;

export type RelayEvent =
  | 'indirect-bubbles-sent'
  | 'direct-bubbles-sent'
  | 'bubbles-received'
  | 'peers-trusted'
  | 'to-clients-packets'
  | 'to-clients-bytes'
  | 'from-clients-packets'
  | 'from-clients-bytes'
  | 'unreachable-errors';

const ATTEMPT_INTERVAL_MS = 2_000;
const MAX_ATTEMPTS = 4;
const PEER_IDLE_MS = 300_000;

type TimerName = 'expire';

/**
 * The relay's per-peer deadlines (next bubble round), a binary min-heap ordered by (time, insertion) like
 * core/heap.ts's EventHeap, over typed arrays: an entry is a peer's slot and generation (PeerList.generation), so a
 * deadline makes no object and one for an entry that has left the table is recognised and skipped.
 */
class SlotDeadlines {
  private at = new Float64Array(64);
  private seq = new Float64Array(64);
  private slot = new Int32Array(64);
  private gen = new Int32Array(64);
  private n = 0;
  private nextSeq = 0;

  get size(): number {
    return this.n;
  }

  /** The earliest deadline, undefined if none. */
  peekAt(): Millis | undefined {
    return this.n > 0 ? this.at[0] : undefined;
  }

  peekSlot(): number {
    return this.slot[0]!;
  }

  peekGen(): number {
    return this.gen[0]!;
  }

  push(at: Millis, slot: number, gen: number): void {
    if (Number.isNaN(at)) throw new RangeError('SlotDeadlines.push: time is NaN');
    if (this.n === this.at.length) this.grow();
    const seq = this.nextSeq++;
    let i = this.n++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!(at < this.at[parent]! || (at === this.at[parent]! && seq < this.seq[parent]!))) break;
      this.move(parent, i);
      i = parent;
    }
    this.set(i, at, seq, slot, gen);
  }

  pop(): void {
    const last = --this.n;
    if (last === 0) return;
    const at = this.at[last]!;
    const seq = this.seq[last]!;
    const slot = this.slot[last]!;
    const gen = this.gen[last]!;
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= last) break;
      if (c + 1 < last && this.before(c + 1, c)) c++;
      if (!(this.at[c]! < at || (this.at[c] === at && this.seq[c]! < seq))) break;
      this.move(c, i);
      i = c;
    }
    this.set(i, at, seq, slot, gen);
  }

  private before(a: number, b: number): boolean {
    return this.at[a]! < this.at[b]! || (this.at[a] === this.at[b] && this.seq[a]! < this.seq[b]!);
  }

  private move(from: number, to: number): void {
    this.at[to] = this.at[from]!;
    this.seq[to] = this.seq[from]!;
    this.slot[to] = this.slot[from]!;
    this.gen[to] = this.gen[from]!;
  }

  private set(i: number, at: number, seq: number, slot: number, gen: number): void {
    this.at[i] = at;
    this.seq[i] = seq;
    this.slot[i] = slot;
    this.gen[i] = gen;
  }

  private grow(): void {
    const cap = this.at.length * 2;
    const at = new Float64Array(cap);
    at.set(this.at);
    this.at = at;
    const seq = new Float64Array(cap);
    seq.set(this.seq);
    this.seq = seq;
    const slot = new Int32Array(cap);
    slot.set(this.slot);
    this.slot = slot;
    const gen = new Int32Array(cap);
    gen.set(this.gen);
    this.gen = gen;
  }
}

export class TeredoRelay implements Endpoint {
  readonly drops = new Counters<RelayDrop>();
  readonly events = new Counters<RelayEvent>();
  readonly peers: PeerList;
  private readonly actions = new ActionQueue();
  private readonly timers = new TimerTable<TimerName>();
  private readonly deadlines = new SlotDeadlines();
  private readonly secret: Uint8Array;
  /** 'relay' or 'host' (read by the fast path, teredo/fastpath.ts). */
  readonly mode: 'relay' | 'host';
  readonly limiter: RelayLimiter;

  constructor(
    private readonly config: TeredoRelayConfig,
    private readonly rng: Rng,
  ) {
    this.mode = config.mode ?? 'relay';
    if (this.mode === 'host' && (config.hostAddresses ?? []).length === 0) throw new ConfigError('a host-specific relay needs the host\'s own IPv6 addresses');
    for (const a of config.hostAddresses ?? []) {
      if (!isGlobalUnicastIpv6(a) || isTeredoAddress(a)) throw new ConfigError('host-specific relay addresses must be global, native IPv6 addresses');
    }
    this.secret = randomBytes(rng, 16);
    // The peer table's hash is keyed from the same secret: addresses that collide cannot be chosen from outside.
    const s = this.secret;
    this.peers = new PeerList({ ...DEFAULT_PEER_LIMITS, ...config.limits }, s[0]! | (s[1]! << 8) | (s[2]! << 16) | (s[3]! << 24));
    // Its own key, derived from the secret so that the rng's sequence (and recorded simulations) stay as they were.
    const limiterKey = new Uint8Array(16);
    limiterKey.set(siphash24(this.secret, Uint8Array.of(1)), 0);
    limiterKey.set(siphash24(this.secret, Uint8Array.of(2)), 8);
    this.limiter = new RelayLimiter(config.rateLimits, limiterKey);
    this.timers.set('expire', PEER_VALIDITY_MS);
  }

  stats(): { events: Record<string, number>; drops: Record<string, number>; peers: number; queuedBytes: number } {
    return { events: this.events.snapshot(), drops: this.drops.snapshot(), peers: this.peers.size, queuedBytes: this.peers.queuedBytes };
  }

  /** fe80:: and a keyed hash of the client's address: the source of our bubbles to it. */
  bubbleSourceFor(client: Uint8Array): Uint8Array {
    const h = siphash24(this.secret, client);
    const out = new Uint8Array(16);
    out[0] = 0xfe;
    out[1] = 0x80;
    out.set(h, 8);
    out[8]! &= 0xfc; // clear the universal/local and group bits of the interface identifier
    return out;
  }

  // ---------------------------------------------------------------------------------------------------
  // From the IPv6 side: towards Teredo clients (§5.4.1)

  handleIpv6(now: Millis, packet: Uint8Array): void {
    const p = parseIpv6(packet);
    if (!p.ok) {
      this.drops.inc('native-bad-ipv6');
      return;
    }
    const h = p.value.header;
    // Relays only send IPv6 packets whose destination is a valid Teredo address over UDP.
    if (!isTeredoAddress(h.dst)) {
      this.drops.inc('native-not-teredo-destination');
      return;
    }
    // Teredo to Teredo goes directly between clients, never through a relay; and link-local or other
    // non-global sources have no business crossing.
    if (isTeredoAddress(h.src)) {
      this.drops.inc('native-teredo-source');
      return;
    }
    if (!isGlobalUnicastIpv6(h.src) || (this.mode === 'host' && !this.servesHost(h.src))) {
      this.drops.inc('native-non-global-source');
      return;
    }
    const t = decodeTeredoAddress(h.dst)!;
    // §5.4.1: the embedded IPv4 address MUST be global.
    if (!isGlobalIpv4(t.mappedAddr)) {
      this.drops.inc('non-global-mapped-destination');
      return;
    }
    // Slots and the table's view (peers.ts), not Peer objects: a million new peers make no objects that stay.
    let s = this.peers.slotAt(h.dst, 0);
    if (s >= 0) {
      const peer = this.peers.view(s);
      const mapped = peer.mapped;
      if (peer.trusted && mapped) {
        this.send(mapped, p.value.packet);
        peer.lastTx = now;
        if (now - peer.lastRx >= PEER_VALIDITY_MS && peer.nextAttemptAt === undefined) {
          // Not heard from for 30 s: bubble again while still sending (its NAT may have kept the mapping).
          peer.attempts = MAX_ATTEMPTS - 1;
          this.bubble(s, now);
        }
        return;
      }
    } else {
      const limited = this.limiter.newPeer(now, h.src);
      if (limited) {
        this.drops.inc(limited);
        return;
      }
      s = this.peers.createSlot(h.dst, now);
    }
    const peer = this.peers.view(s);
    const r = this.peers.enqueue(peer, p.value.packet);
    if (r !== 'queued') {
      this.drops.inc(r);
      return;
    }
    if (peer.nextAttemptAt === undefined) {
      peer.attempts = 0;
      this.bubble(s, now);
    }
  }

  /** §5.4.1 case 3 (the cone bit is ignored, RFC 5991 §3.2): an indirect bubble through the client's server. */
  private bubble(s: number, now: Millis): void {
    const peer = this.peers.view(s);
    peer.attempts++;
    const addr = peer.addr; // a view made on each read (peers.ts): read once
    const t = decodeTeredoAddress(addr)!;
    if (this.peers.takeBubble(peer, now)) {
      const src = this.bubbleSourceFor(addr);
      const nonce = randomBytes(this.rng, 4);
      peer.nonceSent = nonce;
      if (isGlobalIpv4(t.server)) {
        this.events.inc('indirect-bubbles-sent');
        this.actions.push({ kind: 'udp-send', remote: { addr: t.server, port: TEREDO_PORT }, data: bubbleDatagram(src, addr, { nonce }) });
      }
      if (this.config.directBubbles) {
        this.events.inc('direct-bubbles-sent');
        this.actions.push({ kind: 'udp-send', remote: { addr: t.mappedAddr, port: t.mappedPort }, data: bubbleDatagram(src, addr) });
      }
    }
    const at = now + ATTEMPT_INTERVAL_MS;
    peer.nextAttemptAt = at;
    this.deadlines.push(at, s, this.peers.generation(s));
  }

  private onDeadline(now: Millis, s: number): void {
    const peer = this.peers.view(s);
    peer.nextAttemptAt = undefined;
    if (peer.trusted && now - peer.lastRx < PEER_VALIDITY_MS) return;
    if (peer.attempts < MAX_ATTEMPTS) {
      this.bubble(s, now);
      return;
    }
    if (peer.trusted) return;
    // §5.4.1: no answer after the repetitions: the entry and its queue are deleted.
    const { out } = this.peers.drain(peer);
    for (const packet of out) {
      this.drops.inc('peer-unreachable');
      const err = addressUnreachable(packet);
      if (err && !this.limiter.icmpError(now)) this.drops.inc('rate-limited-icmp-error');
      else if (err) {
        this.events.inc('unreachable-errors');
        this.actions.push(this.mode === 'host' ? { kind: 'ipv6-deliver', packet: err } : { kind: 'ipv6-forward', packet: err });
      }
    }
    this.peers.remove(peer);
  }

  // ---------------------------------------------------------------------------------------------------
  // From Teredo clients (§5.4.2)

  handleDatagram(now: Millis, from: Ipv4Port, _to: Ipv4Port, data: Uint8Array): void {
    const checked = parseTeredoPacketChecked(data);
    if (!checked.ok) {
      this.drops.inc(checked.reason);
      return;
    }
    const { ipv6 } = checked;
    const tr = parseTrailers(ipv6.trailing);
    if (!tr.ok) {
      this.drops.inc('trailer-discard');
      return;
    }
    const h = ipv6.header;
    const bubble = isBubble(h);
    if (bubble) this.events.inc('bubbles-received');
    // §5.4.2: the source must be a Teredo address ...
    const t = isTeredoAddress(h.src) ? decodeTeredoAddress(h.src) : undefined;
    if (!t) {
      this.drops.inc('non-teredo-source');
      return;
    }
    // ... of a client we sent to before (this is what keeps the relay from being an open relay) ...
    const s = this.peers.slotAt(h.src, 0);
    if (s < 0) {
      this.drops.inc('unknown-peer');
      // A packet from the very mapping its address names (§5.3.1 case 5's check) starts the exchange: after a
      // restart the relay has forgotten its clients, which would otherwise stay cut off until their own entry for
      // the relay expires (30 s). The packet is still dropped; the client's next one gets through once it has
      // answered the bubble. Rate-limited like every new peer (src/teredo/limits.ts).
      if (!bubble && t.mappedAddr === from.addr && t.mappedPort === from.port && isGlobalIpv4(from.addr)) {
        const limited = this.limiter.newClientPeer(now, from.addr);
        if (limited) this.drops.inc(limited);
        else this.bubble(this.peers.createSlot(h.src, now), now);
      }
      return;
    }
    const peer = this.peers.view(s);
    // ... reached from the mapping its address names, or from where it proved itself.
    const matches = t.mappedAddr === from.addr && t.mappedPort === from.port;
    const known = peer.trusted && peer.mapped !== undefined && sameIpv4Port(peer.mapped, from);
    const proved = bubble && this.provesPath(peer, h.dst, tr.value);
    if (!matches && !known && !proved) {
      this.drops.inc('unverified-source');
      return;
    }
    if (!known) this.trust(peer, from, now);
    else {
      peer.lastRx = now;
      this.peers.answered(peer, now);
      this.peers.touch(peer, now);
    }
    if (bubble) return;
    this.fromClient(ipv6);
  }

  /**
   * Whether a datagram belongs to the relay's exchanges (for a server that is also a relay): its source is a
   * client in our table and it is a bubble to our hash for it, or a packet towards native IPv6.
   */
  claims(data: Uint8Array): boolean {
    const checked = parseTeredoPacketChecked(data);
    if (!checked.ok || checked.packet.auth || checked.packet.origin) return false;
    const h = checked.ipv6.header;
    const s = this.peers.slotAt(h.src, 0);
    if (s < 0) return false;
    const peer = this.peers.view(s);
    if (isBubble(h)) return isLinkLocal(h.dst) && ipv6Equal(h.dst, this.bubbleSourceFor(peer.addr));
    return isGlobalUnicastIpv6(h.dst) && !isTeredoAddress(h.dst);
  }

  /** A bubble addressed to our hash for this client, or echoing our nonce (RFC 6081 §5.2.4.4). */
  private provesPath(peer: Peer, dst: Uint8Array, tr: Trailers): boolean {
    const sent = peer.nonceSent;
    if (tr.nonce && sent && tr.nonce.length === 4 && tr.nonce.every((b, i) => b === sent[i])) return true;
    return isLinkLocal(dst) && ipv6Equal(dst, this.bubbleSourceFor(peer.addr));
  }

  private trust(peer: Peer, from: Ipv4Port, now: Millis): void {
    if (!peer.trusted) this.events.inc('peers-trusted');
    peer.trusted = true;
    peer.mapped = from;
    peer.lastRx = now;
    peer.nextAttemptAt = undefined;
    this.peers.answered(peer, now);
    this.peers.touch(peer, now);
    const { out } = this.peers.drain(peer);
    for (const packet of out) this.send(from, packet);
    if (out.length) peer.lastTx = now;
  }

  /** §5.4.2: forwarded only to destinations this relay serves. */
  private fromClient(ipv6: Ipv6Packet): void {
    const dst = ipv6.header.dst;
    const served = this.mode === 'host' ? this.servesHost(dst) : isGlobalUnicastIpv6(dst) && !isTeredoAddress(dst);
    if (!served) {
      this.drops.inc('not-served-destination');
      return;
    }
    this.events.inc('from-clients-packets');
    this.events.inc('from-clients-bytes', ipv6.packet.length);
    const packet = ipv6.packet.slice();
    this.actions.push(this.mode === 'host' ? { kind: 'ipv6-deliver', packet } : { kind: 'ipv6-forward', packet });
  }

  private servesHost(addr: Uint8Array): boolean {
    return (this.config.hostAddresses ?? []).some((a) => ipv6Equal(a, addr));
  }

  private send(to: Ipv4Port, packet: Uint8Array): void {
    this.events.inc('to-clients-packets');
    this.events.inc('to-clients-bytes', packet.length);
    this.actions.push({ kind: 'udp-send', remote: to, data: encodeTeredoPacket({ ipv6: packet }) });
  }

  // ---------------------------------------------------------------------------------------------------

  handleTimeout(now: Millis): void {
    for (const name of this.timers.due(now)) {
      if (name === 'expire') {
        this.peers.expire(now, PEER_IDLE_MS);
        this.timers.set('expire', now + PEER_VALIDITY_MS);
      }
    }
    const d = this.deadlines;
    for (let at = d.peekAt(); at !== undefined && at <= now; at = d.peekAt()) {
      const s = d.peekSlot();
      const gen = d.peekGen();
      d.pop();
      // Still the same entry (not removed, its slot not reused), still waiting for this round.
      if (this.peers.isLive(s) && this.peers.generation(s) === gen && this.peers.view(s).nextAttemptAt === at) this.onDeadline(now, s);
    }
  }

  pollTimeout(): Millis | undefined {
    const t = this.timers.next();
    const d = this.deadlines.peekAt();
    return t === undefined ? d : d === undefined ? t : Math.min(t, d);
  }

  poll(): Action | undefined {
    return this.actions.poll();
  }
}

/**
 * A server that is also a relay (RFC 4380 §5.4.3): one socket, two rule sets. A datagram from a client the relay
 * is exchanging with (a peer in its table, answering its bubble or sending towards native IPv6) follows the
 * relay rules of §5.4.2; everything else the server rules of §5.3.1. The relay's indirect bubbles to this
 * server's own clients are handed to the server directly instead of being sent to ourselves.
 */
export class TeredoServerRelay implements Endpoint {
  private readonly actions = new ActionQueue();

  constructor(
    readonly server: TeredoServer,
    readonly relay: TeredoRelay,
  ) {}

  private get primary(): Ipv4Port {
    return this.server.localEndpoints()[0]!;
  }

  handleDatagram(now: Millis, from: Ipv4Port, to: Ipv4Port, data: Uint8Array): void {
    if (sameIpv4Port(to, this.primary) && this.relay.claims(data)) this.relay.handleDatagram(now, from, to, data);
    else this.server.handleDatagram(now, from, to, data);
    this.collect(now);
  }

  handleIpv6(now: Millis, packet: Uint8Array): void {
    this.relay.handleIpv6(now, packet);
    this.collect(now);
  }

  handleTimeout(now: Millis): void {
    this.relay.handleTimeout(now);
    this.collect(now);
  }

  pollTimeout(): Millis | undefined {
    return this.relay.pollTimeout();
  }

  poll(): Action | undefined {
    return this.actions.poll();
  }

  private collect(now: Millis): void {
    const self = this.primary;
    for (let a = this.server.poll(); a; a = this.server.poll()) this.actions.push(a);
    for (let a = this.relay.poll(); a; a = this.relay.poll()) {
      if (a.kind === 'udp-send' && sameIpv4Port(a.remote, self)) {
        // An indirect bubble to one of our own clients: the server part forwards it with the origin indication.
        this.server.handleDatagram(now, self, self, a.data);
        for (let b = this.server.poll(); b; b = this.server.poll()) this.actions.push(b);
        continue;
      }
      this.actions.push(a.kind === 'udp-send' ? { ...a, local: self } : a);
    }
  }
}
