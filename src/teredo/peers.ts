/**
 * The "list of recent peers" (RFC 4380 §5.2, §5.4) shared by clients and relays: per-peer state, the bubble
 * budget of §5.2.6, and FIFO queues of packets waiting for a peer to be reached, bounded per peer and in total.
 * Besides the map, entries sit on one of two intrusive lists (untrusted, trusted), oldest first; a peer that
 * shows activity moves to the young end at most once a second. When the table is full the oldest untrusted entry
 * goes first, so a flood of spoofed sources cannot push out the peers that proved themselves. All O(1).
 *
 * Storage is built for a relay with a million peers and a lookup per packet: no string keys. Each entry has a
 * slot number; its address lives in one growable byte slab (16 bytes per slot), found through an open-addressing
 * table (linear probing, backward-shift deletion) of slot numbers keyed by a seeded hash of the 16 bytes.
 * Insertion order (what values() and expire() follow) is a third intrusive list over typed arrays. Empty
 * per-peer lists share one frozen array until something is added. getAt() looks a peer up straight from a
 * packet buffer, without a view.
 */
import type { Millis } from '../core/time.js';
import { ipv6Key, type Ipv4Port } from '../wire/ip.js';
import { isTeredoAddress } from '../wire/teredo.js';
import { BUBBLE_MAX_COUNT, BUBBLE_MIN_INTERVAL_MS, BUBBLE_WINDOW_MS } from './constants.js';

export interface Peer {
  /** The address as a 16-character string (computed on demand; the table itself does not use it). */
  readonly key: string;
  readonly addr: Uint8Array;
  /** Where packets for this peer go once trusted (learned from the packets it sends). */
  mapped: Ipv4Port | undefined;
  trusted: boolean;
  /** A peer on the same link (RFC 4380 §5.2.8) or behind the same NAT (RFC 6081 §3.5): its local endpoint. */
  local: Ipv4Port | undefined;
  localUntil: Millis;
  /** Other endpoints worth bubbling (RFC 6081 alternate address trailer). */
  alternates: Ipv4Port[];
  /** Every endpoint the peer proved itself from (a symmetric-NAT peer may have several): packets from any count. */
  verified: Ipv4Port[];
  lastRx: Millis;
  lastTx: Millis;
  /** RFC 4380 §5.2.6: bubbles sent in the current 300 s window without a direct answer. */
  bubbleCount: number;
  bubbleWindowStart: Millis;
  lastBubbleAt: Millis;
  /** Bubble or test rounds sent while trying to reach the peer (the 2 s x 3 retries of §5.2.4). */
  attempts: number;
  nextAttemptAt: Millis | undefined;
  /** RFC 6081 §5.2.1: the nonce of our last indirect bubble, and of the last indirect bubble we received. */
  nonceSent: Uint8Array | undefined;
  nonceReceived: Uint8Array | undefined;
  /** RFC 4380 §5.2.9: the direct IPv6 connectivity test in flight (native peers). */
  echoNonce: Uint8Array | undefined;
  echoId: number;
  echoSeq: number;
  /** Packets waiting for the peer: outbound ones to send, inbound ones to deliver once the source is verified. */
  queue: Uint8Array[];
  inbound: { packet: Uint8Array; from: Ipv4Port }[];
  queueBytes: number;
  /** When the entry was last moved to the young end of the table. */
  touchedAt: Millis;
  /** RFC 6081 §5.4/§5.5: our random local port for this peer, the external port we tell it, its random port. */
  randomPort: number;
  advertisedPort: number;
  peerRandomPort: number;
  /** The local port packets to this peer leave from (0: the service port). */
  sendFrom: number;
  /** RFC 6081 §5.5.1: the Echo Test predicting the sequential NAT's port for this peer. */
  echoTest: { nonce1: string; nonce2: string; lower: number; upper: number; retries: number } | undefined;
  /** Intrusive list links (PeerList internals). */
  prev: Peer | undefined;
  next: Peer | undefined;
  list: PeerChain | undefined;
}

/** A doubly linked list of peers, oldest at the head. */
class PeerChain {
  head: Peer | undefined;
  tail: Peer | undefined;

  append(p: Peer): void {
    p.list = this;
    p.prev = this.tail;
    p.next = undefined;
    if (this.tail) this.tail.next = p;
    else this.head = p;
    this.tail = p;
  }

  unlink(p: Peer): void {
    if (p.prev) p.prev.next = p.next;
    else this.head = p.next;
    if (p.next) p.next.prev = p.prev;
    else this.tail = p.prev;
    p.prev = p.next = undefined;
    p.list = undefined;
  }
}

/** Shared by every peer whose list is empty; replaced by a fresh array on the first addition. Never mutate. */
const EMPTY: never[] = Object.freeze([]) as unknown as never[];

/** An empty list for a peer's field, shared until something is added (copy-on-write: assign, never push). */
export function emptyList<T>(): T[] {
  return EMPTY;
}

/** Fields only clients use (same-link peers, RFC 6081 extensions, connectivity tests): allocated on first write. */
class PeerExt {
  local: Ipv4Port | undefined = undefined;
  alternates: Ipv4Port[] = EMPTY;
  verified: Ipv4Port[] = EMPTY;
  nonceReceived: Uint8Array | undefined = undefined;
  echoNonce: Uint8Array | undefined = undefined;
  echoId = 0;
  echoSeq = 0;
  inbound: { packet: Uint8Array; from: Ipv4Port }[] = EMPTY;
  randomPort = 0;
  advertisedPort = 0;
  peerRandomPort = 0;
  sendFrom = 0;
  echoTest: Peer['echoTest'] = undefined;
  nonceOther: Uint8Array | undefined = undefined;
  /** Address and times of an entry that left the table. */
  ownAddr: Uint8Array | undefined = undefined;
  ownTimes: Float64Array | undefined = undefined;
}

const NO_EXT: Readonly<PeerExt> = Object.freeze(new PeerExt());

/** Times kept per slot in the owner's Float64Array (doubles there are not boxed one by one). */
const T_LAST_RX = 0;
const T_LAST_TX = 1;
const T_BUBBLE_WINDOW = 2;
const T_LAST_BUBBLE = 3;
const T_TOUCHED = 4;
const T_LOCAL_UNTIL = 5;
/** nextAttemptAt; NaN stands for undefined. */
const T_NEXT_ATTEMPT = 6;
const TIMES = 7;

class PeerEntry implements Peer {
  mapped: Ipv4Port | undefined = undefined;
  trusted = false;
  bubbleCount = 0;
  attempts = 0;
  queue: Uint8Array[] = EMPTY;
  queueBytes = 0;
  prev: Peer | undefined = undefined;
  next: Peer | undefined = undefined;
  list: PeerChain | undefined = undefined;
  /** Slot in the owner's arrays while in the table; -1 once removed (then `own*` hold address and times). */
  slot: number;
  private x: PeerExt = NO_EXT;
  /** nonceSent when it is 4 bytes (the usual case) as an unsigned word, -1 for none: a typed array costs ~200 B. */
  private nonceWord = -1;

  constructor(
    private readonly owner: PeerList,
    slot: number,
    now: Millis,
  ) {
    this.slot = slot;
    const t = owner.times;
    const b = slot * TIMES;
    t[b + T_LAST_RX] = now - PEER_VALIDITY_MS;
    t[b + T_LAST_TX] = now - PEER_VALIDITY_MS;
    t[b + T_BUBBLE_WINDOW] = now;
    t[b + T_LAST_BUBBLE] = -Infinity;
    t[b + T_TOUCHED] = now;
    t[b + T_LOCAL_UNTIL] = -Infinity;
    t[b + T_NEXT_ATTEMPT] = NaN;
  }

  get addr(): Uint8Array {
    return this.slot >= 0 ? this.owner.addressView(this.slot) : this.x.ownAddr!;
  }

  get key(): string {
    return ipv6Key(this.addr);
  }

  private getT(k: number): number {
    return this.slot >= 0 ? this.owner.times[this.slot * TIMES + k]! : this.x.ownTimes![k]!;
  }

  private setT(k: number, v: number): void {
    if (this.slot >= 0) this.owner.times[this.slot * TIMES + k] = v;
    else this.x.ownTimes![k] = v;
  }

  get lastRx(): Millis { return this.getT(T_LAST_RX); }
  set lastRx(v: Millis) { this.setT(T_LAST_RX, v); }
  get lastTx(): Millis { return this.getT(T_LAST_TX); }
  set lastTx(v: Millis) { this.setT(T_LAST_TX, v); }
  get bubbleWindowStart(): Millis { return this.getT(T_BUBBLE_WINDOW); }
  set bubbleWindowStart(v: Millis) { this.setT(T_BUBBLE_WINDOW, v); }
  get lastBubbleAt(): Millis { return this.getT(T_LAST_BUBBLE); }
  set lastBubbleAt(v: Millis) { this.setT(T_LAST_BUBBLE, v); }
  get touchedAt(): Millis { return this.getT(T_TOUCHED); }
  set touchedAt(v: Millis) { this.setT(T_TOUCHED, v); }
  get localUntil(): Millis { return this.getT(T_LOCAL_UNTIL); }
  set localUntil(v: Millis) { this.setT(T_LOCAL_UNTIL, v); }
  get nextAttemptAt(): Millis | undefined {
    const v = this.getT(T_NEXT_ATTEMPT);
    return Number.isNaN(v) ? undefined : v;
  }

  set nextAttemptAt(v: Millis | undefined) {
    this.setT(T_NEXT_ATTEMPT, v ?? NaN);
  }

  get nonceSent(): Uint8Array | undefined {
    const w = this.nonceWord;
    if (w < 0) return this.x.nonceOther;
    return Uint8Array.of(w >>> 24, (w >>> 16) & 0xff, (w >>> 8) & 0xff, w & 0xff);
  }

  set nonceSent(v: Uint8Array | undefined) {
    if (v !== undefined && v.length === 4) {
      this.nonceWord = ((v[0]! << 24) | (v[1]! << 16) | (v[2]! << 8) | v[3]!) >>> 0;
      if (this.x !== NO_EXT) this.x.nonceOther = undefined;
    } else {
      this.nonceWord = -1;
      if (v !== undefined || this.x !== NO_EXT) this.w().nonceOther = v?.slice();
    }
  }

  /** The client-only fields, allocated on the first write. */
  private w(): PeerExt {
    if (this.x === NO_EXT) this.x = new PeerExt();
    return this.x;
  }

  get local(): Ipv4Port | undefined { return this.x.local; }
  set local(v: Ipv4Port | undefined) { if (v !== undefined || this.x !== NO_EXT) this.w().local = v; }
  get alternates(): Ipv4Port[] { return this.x.alternates; }
  set alternates(v: Ipv4Port[]) { if (v.length > 0 || this.x !== NO_EXT) this.w().alternates = v.length > 0 ? v : EMPTY; }
  get verified(): Ipv4Port[] { return this.x.verified; }
  set verified(v: Ipv4Port[]) { if (v.length > 0 || this.x !== NO_EXT) this.w().verified = v.length > 0 ? v : EMPTY; }
  get nonceReceived(): Uint8Array | undefined { return this.x.nonceReceived; }
  set nonceReceived(v: Uint8Array | undefined) { if (v !== undefined || this.x !== NO_EXT) this.w().nonceReceived = v; }
  get echoNonce(): Uint8Array | undefined { return this.x.echoNonce; }
  set echoNonce(v: Uint8Array | undefined) { if (v !== undefined || this.x !== NO_EXT) this.w().echoNonce = v; }
  get echoId(): number { return this.x.echoId; }
  set echoId(v: number) { if (v !== 0 || this.x !== NO_EXT) this.w().echoId = v; }
  get echoSeq(): number { return this.x.echoSeq; }
  set echoSeq(v: number) { if (v !== 0 || this.x !== NO_EXT) this.w().echoSeq = v; }
  get inbound(): { packet: Uint8Array; from: Ipv4Port }[] { return this.x.inbound; }
  set inbound(v: { packet: Uint8Array; from: Ipv4Port }[]) { if (v.length > 0 || this.x !== NO_EXT) this.w().inbound = v.length > 0 ? v : EMPTY; }
  get randomPort(): number { return this.x.randomPort; }
  set randomPort(v: number) { if (v !== 0 || this.x !== NO_EXT) this.w().randomPort = v; }
  get advertisedPort(): number { return this.x.advertisedPort; }
  set advertisedPort(v: number) { if (v !== 0 || this.x !== NO_EXT) this.w().advertisedPort = v; }
  get peerRandomPort(): number { return this.x.peerRandomPort; }
  set peerRandomPort(v: number) { if (v !== 0 || this.x !== NO_EXT) this.w().peerRandomPort = v; }
  get sendFrom(): number { return this.x.sendFrom; }
  set sendFrom(v: number) { if (v !== 0 || this.x !== NO_EXT) this.w().sendFrom = v; }
  get echoTest(): Peer['echoTest'] { return this.x.echoTest; }
  set echoTest(v: Peer['echoTest']) { if (v !== undefined || this.x !== NO_EXT) this.w().echoTest = v; }

  /** Leaves the table: keeps private copies of address and times, since the slot will be reused. */
  detach(): void {
    const x = this.w();
    x.ownAddr = this.owner.addressView(this.slot).slice();
    x.ownTimes = this.owner.times.slice(this.slot * TIMES, this.slot * TIMES + TIMES);
    this.slot = -1;
  }
}

export interface PeerListLimits {
  maxPeers: number;
  /** Bytes queued for one peer. */
  maxQueueBytesPerPeer: number;
  /** Bytes queued over all peers. */
  maxQueueBytesTotal: number;
}

export const DEFAULT_PEER_LIMITS: PeerListLimits = {
  maxPeers: 65_536,
  maxQueueBytesPerPeer: 64 * 1024,
  maxQueueBytesTotal: 16 * 1024 * 1024,
};

/** RFC 4380 §5.2.4: an entry is valid for 30 s after the last reception. */
export const PEER_VALIDITY_MS = 30_000;

export type EnqueueResult = 'queued' | 'peer-queue-full' | 'global-queue-full';

const INITIAL_SLOTS = 64;

/** A seeded hash of 16 bytes at buf[o] (multiply-xorshift rounds over four 32-bit words). */
function hash16(buf: Uint8Array, o: number, seed: number): number {
  let h = seed ^ 0x9e3779b9;
  for (let i = 0; i < 16; i += 4) {
    const w = buf[o + i]! | (buf[o + i + 1]! << 8) | (buf[o + i + 2]! << 16) | (buf[o + i + 3]! << 24);
    h = Math.imul(h ^ w, 0x85ebca6b);
    h ^= h >>> 13;
  }
  h = Math.imul(h ^ (h >>> 16), 0xc2b2ae35);
  return (h ^ (h >>> 15)) >>> 0;
}

export class PeerList {
  private readonly untrustedChain = new PeerChain();
  private readonly trustedChain = new PeerChain();
  private totalQueued = 0;
  /** Packets dropped because their peer was evicted or expired with them still queued. */
  droppedQueued = 0;
  evictions = 0;

  /** Called for every entry that leaves the table (evicted, expired or removed), so its owner can tidy up. */
  onRemove: ((peer: Peer) => void) | undefined;

  // Slots: entries, their addresses (16 bytes each) and the insertion-order list; free slots are stacked.
  private entries: (PeerEntry | undefined)[] = [];
  private addrs = new Uint8Array(INITIAL_SLOTS * 16);
  /** Per-slot times (PeerEntry's lastRx, lastTx...), TIMES doubles per slot. */
  times = new Float64Array(INITIAL_SLOTS * TIMES);
  private insPrev = new Int32Array(INITIAL_SLOTS);
  private insNext = new Int32Array(INITIAL_SLOTS);
  private insHead = -1;
  private insTail = -1;
  private free: number[] = [];
  private count = 0;
  // Open addressing: index[i] = slot + 1, 0 = empty; the size is a power of two, at most half full.
  private index = new Int32Array(INITIAL_SLOTS * 2);
  private mask = INITIAL_SLOTS * 2 - 1;
  private readonly seed: number;

  /** `seed` keys the address hash (a relay passes a secret one, so that colliding addresses cannot be chosen). */
  constructor(readonly limits: PeerListLimits = DEFAULT_PEER_LIMITS, seed = 0) {
    this.seed = seed | 0;
  }

  get size(): number {
    return this.count;
  }

  get queuedBytes(): number {
    return this.totalQueued;
  }

  /** A view of slot's address (for PeerEntry). */
  addressView(slot: number): Uint8Array {
    return this.addrs.subarray(slot * 16, slot * 16 + 16);
  }

  get(addr: Uint8Array): Peer | undefined {
    return addr.length < 16 ? undefined : this.getAt(addr, 0);
  }

  /** The peer whose address is buf[offset, offset+16), without making a view. */
  getAt(buf: Uint8Array, offset: number): Peer | undefined {
    const i = this.find(buf, offset);
    return i < 0 ? undefined : this.entries[this.index[i]! - 1];
  }

  /** Index position holding the address, or -1. */
  private find(buf: Uint8Array, o: number): number {
    const { index, mask, addrs } = this;
    for (let i = hash16(buf, o, this.seed) & mask; ; i = (i + 1) & mask) {
      const v = index[i]!;
      if (v === 0) return -1;
      const a = (v - 1) * 16;
      // Addresses often share their first half (Teredo prefix and server): compare from the end.
      let k = 15;
      while (k >= 0 && addrs[a + k] === buf[o + k]) k--;
      if (k < 0) return i;
    }
  }

  /**
   * Creates an entry (RFC 4380 §5.2.3 case 3 and §5.2.6: last reception and transmission 30 s in the past, no
   * bubbles yet), evicting the oldest entry when the table is full.
   */
  create(addr: Uint8Array, now: Millis): Peer {
    const existing = this.get(addr);
    if (existing) return existing;
    if (addr.length < 16) throw new RangeError('a peer address is 16 bytes');
    if (this.count >= this.limits.maxPeers) this.evictOne();
    const slot = this.allocSlot();
    this.addrs.set(addr.subarray(0, 16), slot * 16);
    const peer = new PeerEntry(this, slot, now);
    this.entries[slot] = peer;
    this.count++;
    if (this.count * 2 > this.index.length) this.rehash(this.index.length * 2);
    else this.insertIndex(slot);
    // Insertion order.
    this.insPrev[slot] = this.insTail;
    this.insNext[slot] = -1;
    if (this.insTail >= 0) this.insNext[this.insTail] = slot;
    else this.insHead = slot;
    this.insTail = slot;
    this.untrustedChain.append(peer);
    return peer;
  }

  private allocSlot(): number {
    const f = this.free.pop();
    if (f !== undefined) return f;
    const slot = this.entries.length;
    if (slot >= this.insPrev.length) {
      const cap = this.insPrev.length * 2;
      const addrs = new Uint8Array(cap * 16);
      addrs.set(this.addrs);
      this.addrs = addrs;
      const times = new Float64Array(cap * TIMES);
      times.set(this.times);
      this.times = times;
      const prev = new Int32Array(cap);
      prev.set(this.insPrev);
      this.insPrev = prev;
      const next = new Int32Array(cap);
      next.set(this.insNext);
      this.insNext = next;
    }
    this.entries.push(undefined);
    return slot;
  }

  private insertIndex(slot: number): void {
    const { index, mask } = this;
    let i = hash16(this.addrs, slot * 16, this.seed) & mask;
    while (index[i] !== 0) i = (i + 1) & mask;
    index[i] = slot + 1;
  }

  private rehash(size: number): void {
    this.index = new Int32Array(size);
    this.mask = size - 1;
    for (let s = 0; s < this.entries.length; s++) if (this.entries[s]) this.insertIndex(s);
  }

  /** Backward-shift deletion at index position i (linear probing keeps no tombstones). */
  private deleteIndex(i: number): void {
    const { index, mask, addrs } = this;
    let hole = i;
    for (let j = (i + 1) & mask; index[j] !== 0; j = (j + 1) & mask) {
      const home = hash16(addrs, (index[j]! - 1) * 16, this.seed) & mask;
      // Move j into the hole if its home position is not cyclically within (hole, j].
      if (((j - home) & mask) >= ((j - hole) & mask)) {
        index[hole] = index[j]!;
        hole = j;
      }
    }
    index[hole] = 0;
  }

  /** Keeps an active peer away from eviction, and files it by trust. */
  touch(peer: Peer, now: Millis): void {
    const chain = peer.trusted ? this.trustedChain : this.untrustedChain;
    if (peer.list === chain && now - peer.touchedAt < 1000) return;
    peer.touchedAt = now;
    peer.list?.unlink(peer);
    chain.append(peer);
  }

  remove(peer: Peer): void {
    const e = peer as PeerEntry;
    if (!(e instanceof PeerEntry) || e.slot < 0 || this.entries[e.slot] !== e) return;
    this.droppedQueued += peer.queue.length + peer.inbound.length;
    this.totalQueued -= peer.queueBytes;
    peer.queue = EMPTY;
    peer.inbound = EMPTY;
    peer.queueBytes = 0;
    peer.list?.unlink(peer);
    const slot = e.slot;
    this.deleteIndex(this.find(this.addrs, slot * 16));
    const p = this.insPrev[slot]!;
    const n = this.insNext[slot]!;
    if (p >= 0) this.insNext[p] = n;
    else this.insHead = n;
    if (n >= 0) this.insPrev[n] = p;
    else this.insTail = p;
    e.detach();
    this.entries[slot] = undefined;
    this.free.push(slot);
    this.count--;
    this.onRemove?.(peer);
  }

  /** Queues a copy of an outbound packet, FIFO (Miredo flushes LIFO, reference study §8.3). */
  enqueue(peer: Peer, packet: Uint8Array): EnqueueResult {
    const r = this.reserve(peer, packet.length);
    if (r !== 'queued') return r;
    // A one-element literal, not push() onto []: push grows the backing store to 17 slots (1M peers: ~130 MB).
    if (peer.queue === EMPTY) peer.queue = [packet.slice()];
    else peer.queue.push(packet.slice());
    return r;
  }

  /** Queues a copy of an inbound packet whose source is being verified. */
  enqueueInbound(peer: Peer, packet: Uint8Array, from: Ipv4Port): EnqueueResult {
    const r = this.reserve(peer, packet.length);
    if (r !== 'queued') return r;
    if (peer.inbound === EMPTY) peer.inbound = [{ packet: packet.slice(), from }];
    else peer.inbound.push({ packet: packet.slice(), from });
    return r;
  }

  private reserve(peer: Peer, bytes: number): EnqueueResult {
    if (peer.queueBytes + bytes > this.limits.maxQueueBytesPerPeer) return 'peer-queue-full';
    if (this.totalQueued + bytes > this.limits.maxQueueBytesTotal) return 'global-queue-full';
    peer.queueBytes += bytes;
    this.totalQueued += bytes;
    return 'queued';
  }

  /** Takes the queued outbound and inbound packets, in the order they came. */
  drain(peer: Peer): { out: Uint8Array[]; inbound: { packet: Uint8Array; from: Ipv4Port }[] } {
    const out = peer.queue;
    const inbound = peer.inbound;
    this.totalQueued -= peer.queueBytes;
    peer.queue = EMPTY;
    peer.inbound = EMPTY;
    peer.queueBytes = 0;
    return { out, inbound };
  }

  /**
   * RFC 4380 §5.2.6: no bubble within 2 s of the last one, and at most 4 in 300 s without a direct answer.
   * Returns whether a bubble may go now, and if so counts it.
   */
  takeBubble(peer: Peer, now: Millis): boolean {
    if (now - peer.lastBubbleAt < BUBBLE_MIN_INTERVAL_MS) return false;
    if (now - peer.bubbleWindowStart >= BUBBLE_WINDOW_MS) {
      peer.bubbleWindowStart = now;
      peer.bubbleCount = 0;
    }
    if (peer.bubbleCount >= BUBBLE_MAX_COUNT) return false;
    peer.bubbleCount++;
    peer.lastBubbleAt = now;
    peer.lastTx = now;
    return true;
  }

  /** A direct answer resets the bubble budget. */
  answered(peer: Peer, now: Millis): void {
    peer.bubbleCount = 0;
    peer.bubbleWindowStart = now;
    peer.attempts = 0;
    peer.nextAttemptAt = undefined;
  }

  /** Untrusted entries with nothing pending, and entries silent for `idleMs`, are removed. */
  expire(now: Millis, idleMs: number): number {
    let n = 0;
    for (let s = this.insHead; s >= 0; ) {
      const next = this.insNext[s]!;
      const peer = this.entries[s]!;
      const silent = now - Math.max(peer.lastRx, peer.lastTx) > idleMs;
      if (silent && peer.nextAttemptAt === undefined) {
        this.remove(peer);
        n++;
      }
      s = next;
    }
    return n;
  }

  /** Every entry, oldest created first. Removing the current entry while iterating is allowed. */
  *values(): IterableIterator<Peer> {
    for (let s = this.insHead; s >= 0; ) {
      const next = this.insNext[s]!;
      yield this.entries[s]!;
      s = next;
    }
  }

  /** Evicts the oldest untrusted peer, else the oldest trusted one. */
  private evictOne(): void {
    const victim = this.untrustedChain.head ?? this.trustedChain.head;
    if (victim) {
      this.evictions++;
      this.remove(victim);
    }
  }
}

/** How a peer is reached, for `show peers` and the reachability matrix. */
export interface PeerInfo {
  address: Uint8Array;
  trusted: boolean;
  teredo: boolean;
  endpoint: Ipv4Port | undefined;
  local: Ipv4Port | undefined;
  lastRx: Millis;
  lastTx: Millis;
  queued: number;
}

/** A peer table as `show peers` lists it (clients and relays alike). */
export function peerInfoList(list: PeerList): PeerInfo[] {
  const out: PeerInfo[] = [];
  for (const p of list.values()) {
    out.push({
      address: p.addr,
      trusted: p.trusted,
      teredo: isTeredoAddress(p.addr),
      endpoint: p.mapped,
      local: p.local,
      lastRx: p.lastRx,
      lastTx: p.lastTx,
      queued: p.queue.length + p.inbound.length,
    });
  }
  return out;
}
