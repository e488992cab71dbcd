/**
 * The relay core over the slot-based peer table: what the rewrite for a million peers (peers.ts, relay.ts's typed
 * deadline heap) must keep, and the one thing it changed on purpose: an entry evicted while the relay bubbles it is
 * not bubbled again, and the entry that reuses its slot gets its own bubbles, not the evicted one's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Action } from '../../src/core/endpoint.js';
import { SeededRng } from '../../src/core/rng.js';
import { TeredoRelay } from '../../src/teredo/relay.js';
import { emitIpv6Header } from '../../src/wire/ipv6.js';
import { decodeTeredoAddress, encodeTeredoAddress, parseTeredoPacket } from '../../src/wire/teredo.js';
import { v4, v6 } from './fixtures.js';

const SERVER = v4('198.51.100.1');
const NATIVE = v6('2001:db8:1::10');

function teredo(n: number): Uint8Array {
  return encodeTeredoAddress({ server: SERVER, flags: 0, mappedAddr: v4('203.0.113.0') + n, mappedPort: 10_000 + n });
}

function nativePacket(dst: Uint8Array): Uint8Array {
  const p = new Uint8Array(48);
  emitIpv6Header({ src: NATIVE, dst, nextHeader: 17, payloadLength: 8, hopLimit: 64 }, p, 0);
  return p;
}

/** The Teredo addresses the relay's indirect bubbles (through the server) are for, and the other actions. */
function drain(relay: TeredoRelay): { bubblesFor: string[]; other: Action[] } {
  const bubblesFor: string[] = [];
  const other: Action[] = [];
  for (let a = relay.poll(); a; a = relay.poll()) {
    if (a.kind === 'udp-send' && a.remote.addr === SERVER) {
      const t = parseTeredoPacket(a.data);
      assert.ok(t.ok);
      const dst = t.value.ipv6.subarray(24, 40);
      bubblesFor.push(Buffer.from(dst).toString('hex'));
    } else other.push(a);
  }
  return { bubblesFor, other };
}

const hex = (a: Uint8Array): string => Buffer.from(a).toString('hex');

test('relay: an entry evicted while it is bubbled gets no more bubbles; the entry in its slot gets its own rounds', () => {
  const relay = new TeredoRelay({ limits: { maxPeers: 2 }, rateLimits: { newPeerPerSource: undefined, newPeerGlobal: undefined, icmpErrors: undefined } }, new SeededRng(3));
  const [a, b, c] = [teredo(1), teredo(2), teredo(3)];
  relay.handleIpv6(0, nativePacket(a));
  relay.handleIpv6(0, nativePacket(b));
  assert.deepEqual(drain(relay).bubblesFor, [hex(a), hex(b)]);
  relay.handleIpv6(500, nativePacket(c)); // the table is full: a (oldest, untrusted) goes, c takes its slot
  assert.equal(relay.peers.evictions, 1);
  assert.equal(relay.peers.get(a), undefined);
  assert.deepEqual(drain(relay).bubblesFor, [hex(c)]);
  assert.equal(relay.peers.droppedQueued, 1);
  // a's and b's second round was due at 2000, c's at 2500: only b's comes at 2000, c's at 2500, none for a.
  relay.handleTimeout(2000);
  assert.deepEqual(drain(relay).bubblesFor, [hex(b)]);
  assert.equal(relay.pollTimeout(), 2500);
  relay.handleTimeout(2500);
  assert.deepEqual(drain(relay).bubblesFor, [hex(c)]);
  // Rounds 3 and 4, then both give up: their queued packet becomes an ICMPv6 error each, and the table empties.
  for (let t = 4000; t <= 8500; t += 500) relay.handleTimeout(t);
  const end = drain(relay);
  assert.deepEqual(end.bubblesFor, [hex(b), hex(c), hex(b), hex(c)]);
  assert.equal(end.other.filter((x) => x.kind === 'ipv6-forward').length, 2);
  assert.equal(relay.peers.size, 0);
  assert.equal(relay.peers.queuedBytes, 0);
  assert.equal(relay.stats().events['indirect-bubbles-sent'], 2 + 1 + 1 + 1 + 4);
});

test('relay: a client that answers is trusted, its queued packet goes to its mapping, and show lists it', () => {
  const relay = new TeredoRelay({}, new SeededRng(4));
  const a = teredo(7);
  const t = decodeTeredoAddress(a)!;
  const packet = nativePacket(a);
  relay.handleIpv6(0, packet);
  drain(relay);
  // The client's direct bubble from the mapping its address names.
  const bubble = new Uint8Array(40);
  emitIpv6Header({ src: a, dst: relay.bubbleSourceFor(a), nextHeader: 59, payloadLength: 0, hopLimit: 255 }, bubble, 0);
  const from = { addr: t.mappedAddr, port: t.mappedPort };
  relay.handleDatagram(100, from, { addr: v4('198.51.100.17'), port: 3544 }, bubble);
  const sent = drain(relay).other.filter((x) => x.kind === 'udp-send');
  assert.equal(sent.length, 1);
  const s = sent[0]!;
  assert.ok(s.kind === 'udp-send');
  assert.deepEqual(s.remote, from);
  const inner = parseTeredoPacket(s.data);
  assert.ok(inner.ok);
  assert.equal(hex(inner.value.ipv6), hex(packet));
  const peer = relay.peers.get(a)!;
  assert.equal(peer.trusted, true);
  assert.deepEqual(peer.mapped, from);
  assert.equal(relay.peers.trustedCount, 1);
  assert.equal(peer.queued, 0);
  assert.equal(relay.peers.queuedBytes, 0);
});
