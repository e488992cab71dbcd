/**
 * The "list of recent peers" (RFC 4380 §5.2, §5.4) shared by clients and relays: per-peer state, the bubble
 * budget of §5.2.6, and FIFO queues of packets waiting for a peer to be reached, bounded per peer and in total.
 * Besides the map, entries sit on one of two intrusive lists (untrusted, trusted), oldest first; a peer that
 * shows activity moves to the young end at most once a second. When the table is full the oldest untrusted entry
 * goes first, so a flood of spoofed sources cannot push out the peers that proved themselves. All O(1).
 */
import type { Millis } from '../core/time.js';
import { ipv6Key, type Ipv4Port } from '../wire/ip.js';
import { isTeredoAddress } from '../wire/teredo.js';
import { BUBBLE_MAX_COUNT, BUBBLE_MIN_INTERVAL_MS, BUBBLE_WINDOW_MS } from './constants.js';

export interface Peer {
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

export class PeerList {
  private readonly peers = new Map<string, Peer>();
  private readonly untrustedChain = new PeerChain();
  private readonly trustedChain = new PeerChain();
  private totalQueued = 0;
  /** Packets dropped because their peer was evicted or expired with them still queued. */
  droppedQueued = 0;
  evictions = 0;

  /** Called for every entry that leaves the table (evicted, expired or removed), so its owner can tidy up. */
  onRemove: ((peer: Peer) => void) | undefined;

  constructor(readonly limits: PeerListLimits = DEFAULT_PEER_LIMITS) {}

  get size(): number {
    return this.peers.size;
  }

  get queuedBytes(): number {
    return this.totalQueued;
  }

  get(addr: Uint8Array): Peer | undefined {
    return this.peers.get(ipv6Key(addr));
  }

  /**
   * Creates an entry (RFC 4380 §5.2.3 case 3 and §5.2.6: last reception and transmission 30 s in the past, no
   * bubbles yet), evicting the oldest entry when the table is full.
   */
  create(addr: Uint8Array, now: Millis): Peer {
    const key = ipv6Key(addr);
    const existing = this.peers.get(key);
    if (existing) return existing;
    if (this.peers.size >= this.limits.maxPeers) this.evictOne();
    const peer: Peer = {
      key,
      addr: addr.slice(0, 16),
      mapped: undefined,
      trusted: false,
      local: undefined,
      localUntil: -Infinity,
      alternates: [],
      verified: [],
      lastRx: now - PEER_VALIDITY_MS,
      lastTx: now - PEER_VALIDITY_MS,
      bubbleCount: 0,
      bubbleWindowStart: now,
      lastBubbleAt: -Infinity,
      attempts: 0,
      nextAttemptAt: undefined,
      nonceSent: undefined,
      nonceReceived: undefined,
      echoNonce: undefined,
      echoId: 0,
      echoSeq: 0,
      queue: [],
      inbound: [],
      queueBytes: 0,
      touchedAt: now,
      randomPort: 0,
      advertisedPort: 0,
      peerRandomPort: 0,
      sendFrom: 0,
      echoTest: undefined,
      prev: undefined,
      next: undefined,
      list: undefined,
    };
    this.peers.set(key, peer);
    this.untrustedChain.append(peer);
    return peer;
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
    if (this.peers.get(peer.key) !== peer) return;
    this.droppedQueued += peer.queue.length + peer.inbound.length;
    this.totalQueued -= peer.queueBytes;
    peer.queue = [];
    peer.inbound = [];
    peer.queueBytes = 0;
    peer.list?.unlink(peer);
    this.peers.delete(peer.key);
    this.onRemove?.(peer);
  }

  /** Queues a copy of an outbound packet, FIFO (Miredo flushes LIFO, reference study §8.3). */
  enqueue(peer: Peer, packet: Uint8Array): EnqueueResult {
    const r = this.reserve(peer, packet.length);
    if (r !== 'queued') return r;
    peer.queue.push(packet.slice());
    return r;
  }

  /** Queues a copy of an inbound packet whose source is being verified. */
  enqueueInbound(peer: Peer, packet: Uint8Array, from: Ipv4Port): EnqueueResult {
    const r = this.reserve(peer, packet.length);
    if (r !== 'queued') return r;
    peer.inbound.push({ packet: packet.slice(), from });
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
    peer.queue = [];
    peer.inbound = [];
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
    for (const peer of this.peers.values()) {
      const silent = now - Math.max(peer.lastRx, peer.lastTx) > idleMs;
      if (silent && peer.nextAttemptAt === undefined) {
        this.remove(peer);
        n++;
      }
    }
    return n;
  }

  *values(): IterableIterator<Peer> {
    yield* this.peers.values();
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
