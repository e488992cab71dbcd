/**
 * The peer table against a plain Map model: lookups, insertion order, eviction, expiry, removed entries keeping
 * their address and times, the shared empty lists (copy on write), and queue accounting.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { PeerList, type Peer } from '../../src/teredo/peers.js';

/** Addresses from a small pool, so that operations hit the same entries and probe chains collide. */
function address(n: number): Uint8Array {
  const a = new Uint8Array(16);
  a.set([0x20, 0x01, 0, 0, 198, 51, 100, 1]);
  a[13] = (n >>> 16) & 0xff;
  a[14] = (n >>> 8) & 0xff;
  a[15] = n & 0xff;
  return a;
}

const hex = (a: Uint8Array): string => Buffer.from(a).toString('hex');

type Op = { op: 'create' | 'remove' | 'get'; n: number; at: number };

test('PeerList agrees with a Map model over random create/remove/get sequences (with eviction)', () => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ op: fc.constantFrom('create', 'create', 'remove', 'get'), n: fc.integer({ min: 0, max: 300 }), at: fc.integer({ min: 0, max: 1000 }) }), { maxLength: 600 }),
      fc.integer({ min: 1, max: 200 }),
      fc.integer(),
      (ops: Op[], maxPeers: number, seed: number) => {
        const list = new PeerList({ maxPeers, maxQueueBytesPerPeer: 1000, maxQueueBytesTotal: 10_000 }, seed);
        const model = new Map<string, Peer>(); // insertion order = creation order
        const removed: string[] = [];
        list.onRemove = (p) => removed.push(hex(p.addr));
        for (const { op, n, at } of ops) {
          const a = address(n);
          const k = hex(a);
          if (op === 'create') {
            const existed = model.get(k);
            removed.length = 0;
            const p = list.create(a, at);
            if (existed) assert.equal(p, existed);
            else {
              // Eviction picks the oldest untrusted entry (all are untrusted here): the first created.
              if (model.size >= maxPeers) {
                const victim = model.keys().next().value!;
                assert.deepEqual(removed, [victim]);
                model.delete(victim);
              }
              model.set(k, p);
              assert.equal(hex(p.addr), k);
              assert.equal(p.lastRx, at - 30_000);
            }
          } else if (op === 'remove') {
            const p = model.get(k);
            if (p) {
              list.remove(p);
              model.delete(k);
              // A removed entry keeps its own address and times although its slot is reused.
              assert.equal(hex(p.addr), k);
              assert.equal(list.get(a), undefined);
            }
          } else {
            assert.equal(list.get(a), model.get(k));
            assert.equal(list.getAt(Uint8Array.of(9, ...a), 1), model.get(k));
          }
          assert.equal(list.size, model.size);
        }
        assert.deepEqual([...list.values()].map((p) => hex(p.addr)), [...model.keys()]);
        for (const [k, p] of model) assert.equal(list.get(Buffer.from(k, 'hex')), p);
      },
    ),
    { numRuns: 150 },
  );
});

test('expire removes silent entries, keeps pending and recent ones, and tolerates removal while iterating', () => {
  const list = new PeerList();
  for (let i = 0; i < 1000; i++) {
    const p = list.create(address(i), 0);
    if (i % 3 === 0) p.lastRx = 200_000;
    if (i % 5 === 0) p.nextAttemptAt = 400_000;
  }
  const kept = [...list.values()].filter((p) => p.lastRx === 200_000 || p.nextAttemptAt !== undefined).map((p) => hex(p.addr));
  const n = list.expire(400_000, 300_000);
  assert.equal(n, 1000 - kept.length);
  assert.deepEqual([...list.values()].map((p) => hex(p.addr)), kept);
  // Slots are reused; every remaining entry still finds itself.
  for (let i = 1000; i < 1500; i++) list.create(address(i), 0);
  for (const p of list.values()) assert.equal(list.get(p.addr), p);
  assert.equal(list.size, kept.length + 500);
});

test('empty lists are shared and copied on write; queues are counted per peer and in total', () => {
  const list = new PeerList({ maxPeers: 10, maxQueueBytesPerPeer: 100, maxQueueBytesTotal: 150 });
  const a = list.create(address(1), 0);
  const b = list.create(address(2), 0);
  assert.throws(() => (a.alternates as unknown[]).push(1), TypeError);
  a.verified = [...a.verified, { addr: 1, port: 2 }];
  assert.equal(b.verified.length, 0);
  assert.equal(a.verified.length, 1);
  a.nonceSent = Uint8Array.of(1, 2, 3, 250);
  assert.deepEqual(a.nonceSent, Uint8Array.of(1, 2, 3, 250));
  assert.equal(b.nonceSent, undefined);
  assert.equal(list.enqueue(a, new Uint8Array(60)), 'queued');
  assert.equal(list.enqueue(a, new Uint8Array(60)), 'peer-queue-full');
  assert.equal(list.enqueue(b, new Uint8Array(60)), 'queued');
  assert.equal(list.enqueue(b, new Uint8Array(40)), 'global-queue-full');
  assert.equal(list.queuedBytes, 120);
  assert.equal(list.enqueueInbound(b, new Uint8Array(20), { addr: 1, port: 1 }), 'queued');
  const { out, inbound } = list.drain(b);
  assert.equal(out.length, 1);
  assert.equal(inbound.length, 1);
  assert.equal(list.queuedBytes, 60);
  list.remove(a);
  assert.equal(list.queuedBytes, 0);
  assert.equal(list.droppedQueued, 1);
  assert.equal(a.queued, 0);
});

test('queued packets (the shared chunk pool) come back byte for byte, FIFO per peer, over random enqueue/drain/remove', () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record({ op: fc.constantFrom('enqueue', 'enqueue', 'enqueue', 'drain', 'remove'), n: fc.integer({ min: 0, max: 20 }), len: fc.integer({ min: 0, max: 300 }), fill: fc.integer({ min: 0, max: 255 }) }),
        { maxLength: 400 },
      ),
      (ops) => {
        const limits = { maxPeers: 16, maxQueueBytesPerPeer: 1500, maxQueueBytesTotal: 6000 };
        const list = new PeerList(limits, 7);
        const model = new Map<string, Uint8Array[]>();
        let dropped = 0;
        const bytes = (q: Uint8Array[]): number => q.reduce((s, p) => s + p.length, 0);
        const total = (): number => [...model.values()].reduce((s, q) => s + bytes(q), 0);
        list.onRemove = (p) => {
          dropped += model.get(hex(p.addr))?.length ?? 0;
          model.delete(hex(p.addr));
        };
        for (const { op, n, len, fill } of ops) {
          const a = address(n);
          const k = hex(a);
          if (op === 'enqueue') {
            const peer = list.create(a, 0);
            if (!model.has(k)) model.set(k, []);
            const q = model.get(k)!;
            const packet = new Uint8Array(len).map((_, i) => (fill + i * 7) & 0xff);
            const want = bytes(q) + len > limits.maxQueueBytesPerPeer ? 'peer-queue-full' : total() + len > limits.maxQueueBytesTotal ? 'global-queue-full' : 'queued';
            assert.equal(list.enqueue(peer, packet), want);
            if (want === 'queued') q.push(packet.slice());
            packet.fill(0xee); // the table holds its own copy
            assert.equal(peer.queued, q.length);
            assert.equal(peer.queueBytes, bytes(q));
          } else if (op === 'drain') {
            const peer = list.get(a);
            if (!peer) continue;
            const { out } = list.drain(peer);
            assert.deepEqual(out.map(hex), (model.get(k) ?? []).map(hex));
            model.set(k, []);
            assert.equal(peer.queued, 0);
          } else {
            const peer = list.get(a);
            if (peer) list.remove(peer);
          }
          assert.equal(list.queuedBytes, total());
          assert.equal(list.droppedQueued, dropped);
        }
      },
    ),
  );
});

test('an entry is one object while in the table; once removed it keeps its own state, whatever reuses its slot', () => {
  const list = new PeerList({ maxPeers: 2, maxQueueBytesPerPeer: 100, maxQueueBytesTotal: 1000 });
  const a = list.create(address(1), 5);
  assert.equal(list.get(address(1)), a);
  assert.equal(list.create(address(1), 9), a);
  assert.equal([...list.values()][0], a);
  a.trusted = true;
  a.mapped = { addr: 0xc6336402, port: 4000 };
  a.lastRx = 1234.5;
  a.attempts = 3;
  a.nonceSent = Uint8Array.of(9, 8, 7, 6);
  a.local = { addr: 1, port: 2 };
  a.localUntil = 77;
  assert.equal(list.trustedCount, 1);
  // The view (what the relay uses) reads and writes the same entry without being it.
  const s = list.slotAt(address(1), 0);
  const v = list.view(s);
  assert.notEqual(v, a);
  assert.equal(v.lastRx, 1234.5);
  v.lastTx = 99;
  assert.equal(a.lastTx, 99);
  list.remove(a);
  assert.equal(list.trustedCount, 0);
  assert.equal(list.isLive(s), false);
  // Fill the table again (the freed slot is reused) and write to the new entries.
  for (let n = 2; n < 6; n++) {
    const p = list.create(address(n), 50);
    p.lastRx = 1;
    p.attempts = 0;
    p.nonceSent = undefined;
  }
  assert.equal(list.get(address(1)), undefined);
  assert.equal(hex(a.addr), hex(address(1)));
  assert.equal(a.trusted, true);
  assert.deepEqual(a.mapped, { addr: 0xc6336402, port: 4000 });
  assert.equal(a.lastRx, 1234.5);
  assert.equal(a.lastTx, 99);
  assert.equal(a.attempts, 3);
  assert.deepEqual(a.nonceSent, Uint8Array.of(9, 8, 7, 6));
  assert.deepEqual(a.local, { addr: 1, port: 2 });
  assert.equal(a.localUntil, 77);
  assert.equal(a.queued, 0);
  // A removed entry is no longer the table's: touching, queueing or removing it again changes nothing.
  list.touch(a, 10_000);
  assert.equal(list.enqueue(a, new Uint8Array(10)), 'peer-queue-full');
  list.remove(a);
  assert.equal(list.size, 2);
  assert.equal(list.queuedBytes, 0);
});

test('the queue pool grows past its first size (packets far smaller than a chunk) and keeps every byte', () => {
  const list = new PeerList({ maxPeers: 8, maxQueueBytesPerPeer: 10_000, maxQueueBytesTotal: 2000 });
  const peers = [0, 1, 2, 3].map((n) => list.create(address(n), 0));
  const want: Uint8Array[][] = [[], [], [], []];
  // 256 chunks at first (2 x 2000 / 64 is less); 1500 one- to three-byte packets take a chunk each.
  for (let i = 0; i < 1500; i++) {
    const p = Uint8Array.of(i & 0xff, (i >> 8) & 0xff, 0x5a).subarray(0, 1 + (i % 3));
    const k = i % 4;
    if (list.enqueue(peers[k]!, p) === 'queued') want[k]!.push(p.slice());
  }
  assert.ok(want.reduce((s, q) => s + q.length, 0) > 900); // about 2000 bytes at 2 a packet: far more than 256 chunks
  for (let k = 0; k < 4; k++) assert.deepEqual(list.drain(peers[k]!).out.map(hex), want[k]!.map(hex));
  assert.equal(list.queuedBytes, 0);
});
