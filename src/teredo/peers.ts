/**
 * The "list of recent peers" (RFC 4380 §5.2, §5.4) shared by clients and relays: per-peer state, the bubble
 * budget of §5.2.6, and FIFO queues of packets waiting for a peer to be reached, bounded per peer and in total.
 * Besides the map, entries sit on one of two intrusive lists (untrusted, trusted), oldest first; a peer that
 * shows activity moves to the young end at most once a second. When the table is full the oldest untrusted entry
 * goes first, so a flood of spoofed sources cannot push out the peers that proved themselves. All O(1).
 *
 * Storage is built for a relay with a million peers and a lookup per packet (issue 6: 1M peers well under 512 MiB,
 * and no garbage per new peer): an entry is a slot number, and everything about it lives in typed arrays indexed
 * by slot (SlotStore: address, times, counters, list links), 113 bytes a slot plus three sparse object slots, made
 * for `maxPeers` slots at once (PRESIZED_SLOTS). An open-addressing table (linear probing, backward-shift deletion) of slot numbers, keyed by a
 * seeded hash of the 16 address bytes, finds them. Queued packets are copied into one shared pool of 64-byte
 * chunks (PacketPool), not one object each. Only what clients use (same-link peers, RFC 6081 extensions, inbound
 * queues) and a trusted peer's mapping are JS objects, held in sparse per-slot arrays.
 *
 * A Peer object (PeerEntry: store + slot) is made only when asked for (get, create, values) and then kept for the
 * slot, so the same entry is always the same object; when its entry leaves the table it gets a private one-slot
 * store with a copy of the state. A relay works on slot numbers and one reusable view (PeerList.view) instead, so
 * that bubbling and expiring a million entries makes no objects. getAt() looks a peer up straight from a packet
 * buffer, without a view.
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
  /** Packets waiting for the peer (PeerList.enqueue, enqueueInbound, drain): outbound ones, inbound ones, bytes. */
  readonly queued: number;
  readonly queuedInbound: number;
  readonly queueBytes: number;
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
}

/** Shared by every peer whose list is empty; replaced by a fresh array on the first addition. Never mutate. */
const EMPTY: never[] = Object.freeze([]) as unknown as never[];

/** An empty list for a peer's field, shared until something is added (copy-on-write: assign, never push). */
export function emptyList<T>(): T[] {
  return EMPTY;
}

type Inbound = { packet: Uint8Array; from: Ipv4Port };

/** Fields only clients use (same-link peers, RFC 6081 extensions, connectivity tests): allocated on first write. */
class PeerExt {
  local: Ipv4Port | undefined = undefined;
  localUntil: Millis = -Infinity;
  alternates: Ipv4Port[] = EMPTY;
  verified: Ipv4Port[] = EMPTY;
  nonceReceived: Uint8Array | undefined = undefined;
  echoNonce: Uint8Array | undefined = undefined;
  echoId = 0;
  echoSeq = 0;
  inbound: Inbound[] = EMPTY;
  randomPort = 0;
  advertisedPort = 0;
  peerRandomPort = 0;
  sendFrom = 0;
  echoTest: Peer['echoTest'] = undefined;
  /** nonceSent when it is not 4 bytes long. */
  nonceOther: Uint8Array | undefined = undefined;
}

const NO_EXT: Readonly<PeerExt> = Object.freeze(new PeerExt());

/** Times per slot (Float64Array, TIMES a slot). */
const T_LAST_RX = 0;
const T_LAST_TX = 1;
const T_BUBBLE_WINDOW = 2;
const T_LAST_BUBBLE = 3;
const T_TOUCHED = 4;
/** nextAttemptAt; NaN stands for undefined. */
const T_NEXT_ATTEMPT = 5;
const TIMES = 6;

/** Int32 fields per slot (INTS a slot). */
const I_INS_PREV = 0; // insertion order (values, expire); for a free slot, I_INS_NEXT links the free stack
const I_INS_NEXT = 1;
const I_CH_PREV = 2; // the untrusted or trusted chain (eviction order)
const I_CH_NEXT = 3;
const I_BUBBLES = 4;
const I_ATTEMPTS = 5;
const I_NONCE = 6; // nonceSent when 4 bytes long (F_NONCE set)
const I_Q_HEAD = 7; // outbound queue: first chunk of the first and last packets in the pool, -1 for none
const I_Q_TAIL = 8;
const I_Q_COUNT = 9;
const I_Q_BYTES = 10; // outbound and inbound
const I_GEN = 11; // bumped each time the slot is taken: (slot, generation) names one entry for good
const INTS = 12;

const F_LIVE = 1;
const F_TRUSTED = 2;
const F_NONCE = 4;
const F_IN_UNTRUSTED = 8;
const F_IN_TRUSTED = 16;
const F_CHAINS = F_IN_UNTRUSTED | F_IN_TRUSTED;

/** Per-slot state in typed arrays; a table's store grows by doubling, a removed entry's is one slot. */
class SlotStore {
  cap: number;
  addrs: Uint8Array;
  times: Float64Array;
  ints: Int32Array;
  flags: Uint8Array;
  /** Sparse per-slot objects: a trusted peer's mapping, the client-only fields, the slot's Peer object. */
  mapped: (Ipv4Port | undefined)[] = [];
  exts: (PeerExt | undefined)[] = [];
  handles: (PeerEntry | undefined)[] = [];

  constructor(cap: number) {
    this.cap = cap;
    this.addrs = new Uint8Array(cap * 16);
    this.times = new Float64Array(cap * TIMES);
    this.ints = new Int32Array(cap * INTS);
    this.flags = new Uint8Array(cap);
  }

  grow(cap: number): void {
    const addrs = new Uint8Array(cap * 16);
    addrs.set(this.addrs);
    this.addrs = addrs;
    const times = new Float64Array(cap * TIMES);
    times.set(this.times);
    this.times = times;
    const ints = new Int32Array(cap * INTS);
    ints.set(this.ints);
    this.ints = ints;
    const flags = new Uint8Array(cap);
    flags.set(this.flags);
    this.flags = flags;
    this.cap = cap;
  }

  /** A one-slot copy of slot s (what a removed entry keeps). */
  copyOut(s: number): SlotStore {
    const c = new SlotStore(1);
    c.addrs.set(this.addrs.subarray(s * 16, s * 16 + 16));
    c.times.set(this.times.subarray(s * TIMES, s * TIMES + TIMES));
    c.ints.set(this.ints.subarray(s * INTS, s * INTS + INTS));
    c.ints[I_Q_HEAD] = c.ints[I_Q_TAIL] = -1;
    c.ints[I_Q_COUNT] = c.ints[I_Q_BYTES] = 0;
    c.flags[0] = this.flags[s]! & ~(F_LIVE | F_CHAINS);
    c.mapped[0] = this.mapped[s];
    c.exts[0] = this.exts[s];
    return c;
  }
}

/** A peer: a slot of a store. The table's own entries point into its store; a removed one into a private copy. */
class PeerEntry implements Peer {
  constructor(
    public store: SlotStore,
    public slot: number,
    /** The table (trusted count); undefined once removed. */
    public owner: PeerList | undefined,
  ) {}

  get addr(): Uint8Array {
    return this.store.addrs.subarray(this.slot * 16, this.slot * 16 + 16);
  }

  get key(): string {
    return ipv6Key(this.addr);
  }

  private getT(k: number): number {
    return this.store.times[this.slot * TIMES + k]!;
  }

  private setT(k: number, v: number): void {
    this.store.times[this.slot * TIMES + k] = v;
  }

  private getI(k: number): number {
    return this.store.ints[this.slot * INTS + k]!;
  }

  private setI(k: number, v: number): void {
    this.store.ints[this.slot * INTS + k] = v;
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
  get nextAttemptAt(): Millis | undefined {
    const v = this.getT(T_NEXT_ATTEMPT);
    return Number.isNaN(v) ? undefined : v;
  }

  set nextAttemptAt(v: Millis | undefined) {
    this.setT(T_NEXT_ATTEMPT, v ?? NaN);
  }

  get bubbleCount(): number { return this.getI(I_BUBBLES); }
  set bubbleCount(v: number) { this.setI(I_BUBBLES, v); }
  get attempts(): number { return this.getI(I_ATTEMPTS); }
  set attempts(v: number) { this.setI(I_ATTEMPTS, v); }
  get queued(): number { return this.getI(I_Q_COUNT); }
  get queuedInbound(): number { return this.x.inbound.length; }
  get queueBytes(): number { return this.getI(I_Q_BYTES); }

  get trusted(): boolean {
    return (this.store.flags[this.slot]! & F_TRUSTED) !== 0;
  }

  set trusted(v: boolean) {
    const f = this.store.flags[this.slot]!;
    if (v === ((f & F_TRUSTED) !== 0)) return;
    this.store.flags[this.slot] = v ? f | F_TRUSTED : f & ~F_TRUSTED;
    if (this.owner) this.owner.trustedCount += v ? 1 : -1;
  }

  get mapped(): Ipv4Port | undefined { return this.store.mapped[this.slot]; }
  set mapped(v: Ipv4Port | undefined) { this.store.mapped[this.slot] = v; }

  get nonceSent(): Uint8Array | undefined {
    if ((this.store.flags[this.slot]! & F_NONCE) === 0) return this.x.nonceOther;
    const w = this.getI(I_NONCE);
    return Uint8Array.of(w >>> 24, (w >>> 16) & 0xff, (w >>> 8) & 0xff, w & 0xff);
  }

  set nonceSent(v: Uint8Array | undefined) {
    const s = this.slot;
    const flags = this.store.flags;
    if (v !== undefined && v.length === 4) {
      this.setI(I_NONCE, (v[0]! << 24) | (v[1]! << 16) | (v[2]! << 8) | v[3]!);
      flags[s] = flags[s]! | F_NONCE;
      if (this.x !== NO_EXT) this.x.nonceOther = undefined;
    } else {
      flags[s] = flags[s]! & ~F_NONCE;
      if (v !== undefined || this.x !== NO_EXT) this.w().nonceOther = v?.slice();
    }
  }

  /** The client-only fields (shared with nothing: NO_EXT until the first write). */
  get x(): PeerExt {
    return this.store.exts[this.slot] ?? NO_EXT;
  }

  /** The client-only fields, allocated on the first write. */
  w(): PeerExt {
    let x = this.store.exts[this.slot];
    if (x === undefined) this.store.exts[this.slot] = x = new PeerExt();
    return x;
  }

  get local(): Ipv4Port | undefined { return this.x.local; }
  set local(v: Ipv4Port | undefined) { if (v !== undefined || this.x !== NO_EXT) this.w().local = v; }
  get localUntil(): Millis { return this.x.localUntil; }
  set localUntil(v: Millis) { if (v !== -Infinity || this.x !== NO_EXT) this.w().localUntil = v; }
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
}

/** Bytes of queued packet per chunk of the shared pool. */
const CHUNK = 64;

/**
 * Queued packets of all peers: chunks of CHUNK bytes from one growable slab, a packet in a chain of chunks, a
 * peer's queue a chain of packets. What it holds is bounded by the table's byte limits (plus under CHUNK bytes a
 * packet); it keeps its size once grown.
 */
class PacketPool {
  private data = new Uint8Array(0);
  /** Per chunk: the next chunk of the same packet, or of the free list; -1 ends. */
  private next = new Int32Array(0);
  /** Per first chunk: the packet's length, and the first chunk of the next packet in its queue. */
  private len = new Int32Array(0);
  private nextPacket = new Int32Array(0);
  private freeHead = -1;
  /** Chunks from here on were never used (not on the free list). */
  private fresh = 0;

  /**
   * Made for `chunks` at once (zero pages until touched, like the slot store: freed chunks are reused first, then
   * never-used ones in order), so that filling the queue limit copies nothing; more only for packets that waste
   * most of a chunk.
   */
  constructor(chunks: number) {
    this.grow(Math.max(256, chunks));
  }

  /** Copies a packet in; returns its first chunk. */
  put(packet: Uint8Array): number {
    const n = packet.length;
    const chunks = Math.max(1, Math.ceil(n / CHUNK));
    let first = -1;
    let prev = -1;
    for (let k = 0; k < chunks; k++) {
      let c = this.freeHead;
      if (c >= 0) this.freeHead = this.next[c]!;
      else {
        if (this.fresh === this.next.length) this.grow(this.next.length * 2);
        c = this.fresh++;
      }
      this.next[c] = -1;
      const o = k * CHUNK;
      this.data.set(packet.subarray(o, Math.min(n, o + CHUNK)), c * CHUNK);
      if (prev >= 0) this.next[prev] = c;
      else first = c;
      prev = c;
    }
    this.len[first] = n;
    this.nextPacket[first] = -1;
    return first;
  }

  link(first: number, nextFirst: number): void {
    this.nextPacket[first] = nextFirst;
  }

  following(first: number): number {
    return this.nextPacket[first]!;
  }

  /** A copy of the packet starting at `first`, which is freed. */
  take(first: number): Uint8Array {
    const n = this.len[first]!;
    const out = new Uint8Array(n);
    let o = 0;
    for (let c = first; c >= 0; ) {
      const k = Math.min(CHUNK, n - o);
      out.set(this.data.subarray(c * CHUNK, c * CHUNK + k), o);
      o += k;
      const nx = this.next[c]!;
      this.next[c] = this.freeHead;
      this.freeHead = c;
      c = nx;
    }
    return out;
  }

  /** Frees the packet starting at `first`. */
  free(first: number): void {
    for (let c = first; c >= 0; ) {
      const nx = this.next[c]!;
      this.next[c] = this.freeHead;
      this.freeHead = c;
      c = nx;
    }
  }

  private grow(cap: number): void {
    const data = new Uint8Array(cap * CHUNK);
    data.set(this.data);
    this.data = data;
    const next = new Int32Array(cap);
    next.set(this.next);
    this.next = next;
    const len = new Int32Array(cap);
    len.set(this.len);
    this.len = len;
    const np = new Int32Array(cap);
    np.set(this.nextPacket);
    this.nextPacket = np;
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
/**
 * The slot arrays are made for min(maxPeers, this) slots at once (a relay's --max-peers 1048576: 113 MiB): large
 * typed arrays are zero pages mapped on first touch, so this costs only what is used, and the table never copies
 * itself while it fills (a doubling would hold old and new arrays at once, the peak the lab measures).
 */
const PRESIZED_SLOTS = 1 << 21;

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
  private readonly store: SlotStore;
  private readonly pool: PacketPool;
  private totalQueued = 0;
  /** Packets dropped because their peer was evicted or expired with them still queued. */
  droppedQueued = 0;
  evictions = 0;
  /** Entries marked trusted (kept by PeerEntry's setter). */
  trustedCount = 0;

  /** Called for every entry that leaves the table (evicted, expired or removed), so its owner can tidy up. */
  onRemove: ((peer: Peer) => void) | undefined;

  /** Slots handed out so far (the rest of the store is unused); free ones are stacked through I_INS_NEXT. */
  private used = 0;
  private freeHead = -1;
  private count = 0;
  private insHead = -1;
  private insTail = -1;
  /** The untrusted and trusted chains (eviction order), through I_CH_PREV/I_CH_NEXT. */
  private uHead = -1;
  private uTail = -1;
  private tHead = -1;
  private tTail = -1;
  // Open addressing: index[i] = slot + 1, 0 = empty; the size is a power of two, at most half full.
  private index = new Int32Array(INITIAL_SLOTS * 2);
  private mask = INITIAL_SLOTS * 2 - 1;
  private readonly seed: number;
  private readonly cursor: PeerEntry;

  /** `seed` keys the address hash (a relay passes a secret one, so that colliding addresses cannot be chosen). */
  constructor(readonly limits: PeerListLimits = DEFAULT_PEER_LIMITS, seed = 0) {
    this.seed = seed | 0;
    // Queued packets of the usual sizes (40 to 64 bytes: a chunk each; up to 1280: under 2 % lost) fit in 2x the bytes.
    this.pool = new PacketPool(Math.ceil((2 * limits.maxQueueBytesTotal) / CHUNK));
    this.store = new SlotStore(Math.max(1, Math.min(limits.maxPeers, PRESIZED_SLOTS)));
    this.cursor = new PeerEntry(this.store, 0, this);
  }

  get size(): number {
    return this.count;
  }

  get queuedBytes(): number {
    return this.totalQueued;
  }

  get(addr: Uint8Array): Peer | undefined {
    return addr.length < 16 ? undefined : this.getAt(addr, 0);
  }

  /** The peer whose address is buf[offset, offset+16), without making a view. */
  getAt(buf: Uint8Array, offset: number): Peer | undefined {
    const s = this.slotAt(buf, offset);
    return s < 0 ? undefined : this.peerAt(s);
  }

  /** The slot of the entry whose address is buf[offset, offset+16), or -1. */
  slotAt(buf: Uint8Array, offset: number): number {
    const i = this.find(buf, offset);
    return i < 0 ? -1 : this.index[i]! - 1;
  }

  /** The Peer object of a live slot (made on first use, then the same one until the entry leaves). */
  peerAt(slot: number): Peer {
    const st = this.store;
    return (st.handles[slot] ??= new PeerEntry(st, slot, this));
  }

  /**
   * A view of a live slot's entry for code that works on slot numbers (the relay): one object per table, re-pointed
   * at each call, so it is only good until the next call. Never keep it.
   */
  view(slot: number): Peer {
    this.cursor.slot = slot;
    return this.cursor;
  }

  /** The entry's generation: a slot with the same generation still holds the same entry. */
  generation(slot: number): number {
    return this.store.ints[slot * INTS + I_GEN]!;
  }

  isLive(slot: number): boolean {
    return slot >= 0 && slot < this.used && (this.store.flags[slot]! & F_LIVE) !== 0;
  }

  /** Index position holding the address, or -1. */
  private find(buf: Uint8Array, o: number): number {
    const { index, mask } = this;
    const addrs = this.store.addrs;
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
    return this.peerAt(this.createSlot(addr, now));
  }

  /** create() returning the slot, with no object made. */
  createSlot(addr: Uint8Array, now: Millis): number {
    if (addr.length < 16) throw new RangeError('a peer address is 16 bytes');
    const existing = this.slotAt(addr, 0);
    if (existing >= 0) return existing;
    if (this.count >= this.limits.maxPeers) this.evictOne();
    const s = this.allocSlot();
    const st = this.store;
    st.addrs.set(addr.subarray(0, 16), s * 16);
    const t = s * TIMES;
    st.times[t + T_LAST_RX] = now - PEER_VALIDITY_MS;
    st.times[t + T_LAST_TX] = now - PEER_VALIDITY_MS;
    st.times[t + T_BUBBLE_WINDOW] = now;
    st.times[t + T_LAST_BUBBLE] = -Infinity;
    st.times[t + T_TOUCHED] = now;
    st.times[t + T_NEXT_ATTEMPT] = NaN;
    const b = s * INTS;
    const ints = st.ints;
    ints[b + I_BUBBLES] = 0;
    ints[b + I_ATTEMPTS] = 0;
    ints[b + I_NONCE] = 0;
    ints[b + I_Q_HEAD] = -1;
    ints[b + I_Q_TAIL] = -1;
    ints[b + I_Q_COUNT] = 0;
    ints[b + I_Q_BYTES] = 0;
    ints[b + I_GEN] = (ints[b + I_GEN]! + 1) | 0;
    st.flags[s] = F_LIVE;
    this.count++;
    if (this.count * 2 > this.index.length) this.rehash(this.index.length * 2);
    else this.insertIndex(s);
    // Insertion order.
    ints[b + I_INS_PREV] = this.insTail;
    ints[b + I_INS_NEXT] = -1;
    if (this.insTail >= 0) ints[this.insTail * INTS + I_INS_NEXT] = s;
    else this.insHead = s;
    this.insTail = s;
    this.chainAppend(s, false);
    return s;
  }

  private allocSlot(): number {
    const st = this.store;
    if (this.freeHead >= 0) {
      const s = this.freeHead;
      this.freeHead = st.ints[s * INTS + I_INS_NEXT]!;
      return s;
    }
    const s = this.used++;
    // Past PRESIZED_SLOTS: doubling, up to the most the table may hold.
    if (s >= st.cap) st.grow(Math.max(s + 1, Math.min(st.cap * 2, this.limits.maxPeers)));
    st.mapped.push(undefined);
    st.exts.push(undefined);
    st.handles.push(undefined);
    return s;
  }

  private insertIndex(slot: number): void {
    const { index, mask } = this;
    let i = hash16(this.store.addrs, slot * 16, this.seed) & mask;
    while (index[i] !== 0) i = (i + 1) & mask;
    index[i] = slot + 1;
  }

  private rehash(size: number): void {
    this.index = new Int32Array(size);
    this.mask = size - 1;
    const flags = this.store.flags;
    for (let s = 0; s < this.used; s++) if (flags[s]! & F_LIVE) this.insertIndex(s);
  }

  /** Backward-shift deletion at index position i (linear probing keeps no tombstones). */
  private deleteIndex(i: number): void {
    const { index, mask } = this;
    const addrs = this.store.addrs;
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

  private chainAppend(s: number, trusted: boolean): void {
    const ints = this.store.ints;
    const tail = trusted ? this.tTail : this.uTail;
    ints[s * INTS + I_CH_PREV] = tail;
    ints[s * INTS + I_CH_NEXT] = -1;
    if (tail >= 0) ints[tail * INTS + I_CH_NEXT] = s;
    else if (trusted) this.tHead = s;
    else this.uHead = s;
    if (trusted) this.tTail = s;
    else this.uTail = s;
    this.store.flags[s] = this.store.flags[s]! | (trusted ? F_IN_TRUSTED : F_IN_UNTRUSTED);
  }

  private chainUnlink(s: number): void {
    const st = this.store;
    const f = st.flags[s]!;
    if ((f & F_CHAINS) === 0) return;
    const trusted = (f & F_IN_TRUSTED) !== 0;
    const ints = st.ints;
    const p = ints[s * INTS + I_CH_PREV]!;
    const n = ints[s * INTS + I_CH_NEXT]!;
    if (p >= 0) ints[p * INTS + I_CH_NEXT] = n;
    else if (trusted) this.tHead = n;
    else this.uHead = n;
    if (n >= 0) ints[n * INTS + I_CH_PREV] = p;
    else if (trusted) this.tTail = p;
    else this.uTail = p;
    st.flags[s] = f & ~F_CHAINS;
  }

  /** The slot of a peer of this table, or -1 (a removed peer, or another table's). */
  private slotOf(peer: Peer): number {
    const e = peer as PeerEntry;
    return e instanceof PeerEntry && e.store === this.store && this.isLive(e.slot) ? e.slot : -1;
  }

  /** Keeps an active peer away from eviction, and files it by trust. */
  touch(peer: Peer, now: Millis): void {
    const s = this.slotOf(peer);
    if (s < 0) return;
    const st = this.store;
    const f = st.flags[s]!;
    const trusted = (f & F_TRUSTED) !== 0;
    const t = s * TIMES + T_TOUCHED;
    if ((f & (trusted ? F_IN_TRUSTED : F_IN_UNTRUSTED)) !== 0 && now - st.times[t]! < 1000) return;
    st.times[t] = now;
    this.chainUnlink(s);
    this.chainAppend(s, trusted);
  }

  remove(peer: Peer): void {
    const s = this.slotOf(peer);
    if (s >= 0) this.removeSlot(s);
  }

  private removeSlot(s: number): void {
    const st = this.store;
    const ints = st.ints;
    const b = s * INTS;
    const x = st.exts[s];
    this.droppedQueued += ints[b + I_Q_COUNT]! + (x?.inbound.length ?? 0);
    this.totalQueued -= ints[b + I_Q_BYTES]!;
    for (let q = ints[b + I_Q_HEAD]!; q >= 0; ) {
      const nx = this.pool.following(q);
      this.pool.free(q);
      q = nx;
    }
    ints[b + I_Q_HEAD] = ints[b + I_Q_TAIL] = -1;
    ints[b + I_Q_COUNT] = ints[b + I_Q_BYTES] = 0;
    if (x) x.inbound = EMPTY;
    this.chainUnlink(s);
    this.deleteIndex(this.find(st.addrs, s * 16));
    const p = ints[b + I_INS_PREV]!;
    const n = ints[b + I_INS_NEXT]!;
    if (p >= 0) ints[p * INTS + I_INS_NEXT] = n;
    else this.insHead = n;
    if (n >= 0) ints[n * INTS + I_INS_PREV] = p;
    else this.insTail = p;
    if (st.flags[s]! & F_TRUSTED) this.trustedCount--;
    // The entry's object (made now if the owner wants it) keeps a private copy of its state.
    let h = st.handles[s];
    if (h === undefined && this.onRemove) h = st.handles[s] = new PeerEntry(st, s, this);
    if (h) {
      h.store = st.copyOut(s);
      h.slot = 0;
      h.owner = undefined;
    }
    st.handles[s] = st.mapped[s] = st.exts[s] = undefined;
    st.flags[s] = 0;
    ints[b + I_INS_NEXT] = this.freeHead;
    this.freeHead = s;
    this.count--;
    if (h) this.onRemove?.(h);
  }

  /** Queues a copy of an outbound packet, FIFO (Miredo flushes LIFO, reference study §8.3). */
  enqueue(peer: Peer, packet: Uint8Array): EnqueueResult {
    const s = this.slotOf(peer);
    if (s < 0) return 'peer-queue-full';
    const r = this.reserve(s, packet.length);
    if (r !== 'queued') return r;
    const ints = this.store.ints;
    const b = s * INTS;
    const first = this.pool.put(packet);
    const tail = ints[b + I_Q_TAIL]!;
    if (tail >= 0) this.pool.link(tail, first);
    else ints[b + I_Q_HEAD] = first;
    ints[b + I_Q_TAIL] = first;
    ints[b + I_Q_COUNT]!++;
    return r;
  }

  /** Queues a copy of an inbound packet whose source is being verified. */
  enqueueInbound(peer: Peer, packet: Uint8Array, from: Ipv4Port): EnqueueResult {
    const s = this.slotOf(peer);
    if (s < 0) return 'peer-queue-full';
    const r = this.reserve(s, packet.length);
    if (r !== 'queued') return r;
    const x = (peer as PeerEntry).w();
    if (x.inbound === EMPTY) x.inbound = [{ packet: packet.slice(), from }];
    else x.inbound.push({ packet: packet.slice(), from });
    return r;
  }

  private reserve(s: number, bytes: number): EnqueueResult {
    const b = s * INTS + I_Q_BYTES;
    const ints = this.store.ints;
    if (ints[b]! + bytes > this.limits.maxQueueBytesPerPeer) return 'peer-queue-full';
    if (this.totalQueued + bytes > this.limits.maxQueueBytesTotal) return 'global-queue-full';
    ints[b] = ints[b]! + bytes;
    this.totalQueued += bytes;
    return 'queued';
  }

  /** Takes the queued outbound and inbound packets, in the order they came. */
  drain(peer: Peer): { out: Uint8Array[]; inbound: Inbound[] } {
    const s = this.slotOf(peer);
    if (s < 0) return { out: [], inbound: [] };
    const ints = this.store.ints;
    const b = s * INTS;
    const out: Uint8Array[] = [];
    for (let q = ints[b + I_Q_HEAD]!; q >= 0; ) {
      const nx = this.pool.following(q);
      out.push(this.pool.take(q));
      q = nx;
    }
    const x = this.store.exts[s];
    const inbound = x?.inbound ?? [];
    if (x) x.inbound = EMPTY;
    this.totalQueued -= ints[b + I_Q_BYTES]!;
    ints[b + I_Q_HEAD] = ints[b + I_Q_TAIL] = -1;
    ints[b + I_Q_COUNT] = ints[b + I_Q_BYTES] = 0;
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
    const st = this.store;
    for (let s = this.insHead; s >= 0; ) {
      const next = st.ints[s * INTS + I_INS_NEXT]!;
      const t = s * TIMES;
      const silent = now - Math.max(st.times[t + T_LAST_RX]!, st.times[t + T_LAST_TX]!) > idleMs;
      if (silent && Number.isNaN(st.times[t + T_NEXT_ATTEMPT]!)) {
        this.removeSlot(s);
        n++;
      }
      s = next;
    }
    return n;
  }

  /** Every entry, oldest created first. Removing the current entry while iterating is allowed. */
  *values(): IterableIterator<Peer> {
    for (const s of this.slots()) yield this.peerAt(s);
  }

  /** Every entry's slot, oldest created first (removing the current one while iterating is allowed). */
  *slots(): IterableIterator<number> {
    for (let s = this.insHead; s >= 0; ) {
      const next = this.store.ints[s * INTS + I_INS_NEXT]!;
      yield s;
      s = next;
    }
  }

  /** Evicts the oldest untrusted peer, else the oldest trusted one. */
  private evictOne(): void {
    const victim = this.uHead >= 0 ? this.uHead : this.tHead;
    if (victim >= 0) {
      this.evictions++;
      this.removeSlot(victim);
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

/**
 * A peer table as `show peers` lists it (clients and relays alike), without making the entries' objects. With
 * `recent`, only the entries that can be among the `limit` most recently active at `now` (the order of `show
 * peers`: the least time since the last reception or transmission, clamped at 0), ties with the last one included:
 * a relay with a million peers lists its most recent thousand without a million rows in memory.
 */
export function peerInfoList(list: PeerList, recent?: { now: Millis; limit: number }): PeerInfo[] {
  let cut = Infinity;
  if (recent !== undefined && recent.limit < list.size) {
    if (recent.limit < 1) return [];
    const keys = new Float64Array(list.size);
    let i = 0;
    for (const s of list.slots()) keys[i++] = idleFor(list.view(s), recent.now);
    cut = keys.sort()[recent.limit - 1]!;
  }
  const out: PeerInfo[] = [];
  for (const s of list.slots()) {
    const p = list.view(s);
    if (cut !== Infinity && idleFor(p, recent!.now) > cut) continue;
    const address = p.addr.slice();
    out.push({
      address,
      trusted: p.trusted,
      teredo: isTeredoAddress(address),
      endpoint: p.mapped,
      local: p.local,
      lastRx: p.lastRx,
      lastTx: p.lastTx,
      queued: p.queued + p.queuedInbound,
    });
  }
  return out;
}

/** Time since the last reception or transmission, clamped at 0 (what `show peers` sorts on). */
function idleFor(p: Peer, now: Millis): number {
  return Math.max(0, Math.min(now - p.lastRx, now - p.lastTx));
}
