/**
 * User-space TCP GRO (src/io/gro.ts): merged super-packets must split back, the way the kernel's TCP segmentation
 * does it (segmentEntry), into exactly the packets that were pushed, in order; what cannot be merged passes through
 * unchanged behind a zero virtio_net_hdr.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  GroQueue, VIRTIO_NET_HDR_GSO_UDP_L4, VNET_HDR_LEN, fold16, mergeableTcpHeader, mergeableUdp, pseudoHeaderSum, segmentEntry,
  sum16, tcpChecksumValid, udpChecksumValid,
} from '../../src/io/gro.js';

const SRC = Uint8Array.from([0x20, 0x01, 0, 0, 0x35, 0x35, 0x64, 1, 0, 0, 0xf2, 0x27, 0x38, 0x9b, 0xaa, 0x01]);
const DST = Uint8Array.from([0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10]);

interface Seg {
  seq: number;
  payload: Uint8Array;
  flags?: number;
  ack?: number;
  window?: number;
  /** TSval/TSecr: a 12-byte NOP NOP TS option block. */
  ts?: [number, number];
  sport?: number;
  dport?: number;
  hop?: number;
  tclass?: number;
  src?: Uint8Array;
  options?: Uint8Array;
  badChecksum?: boolean;
}

function put32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}

/** A TCP/IPv6 segment with a correct checksum (unless badChecksum). */
function tcp6(s: Seg): Uint8Array {
  let opts = s.options ?? new Uint8Array(0);
  if (s.ts) {
    opts = new Uint8Array(12);
    opts.set([1, 1, 8, 10]);
    put32(opts, 4, s.ts[0]);
    put32(opts, 8, s.ts[1]);
  }
  const doff = 20 + opts.length;
  const p = new Uint8Array(40 + doff + s.payload.length);
  const tc = s.tclass ?? 0;
  p[0] = 0x60 | (tc >> 4);
  p[1] = (tc & 0x0f) << 4;
  const plen = doff + s.payload.length;
  p[4] = plen >> 8;
  p[5] = plen & 0xff;
  p[6] = 6;
  p[7] = s.hop ?? 64;
  p.set(s.src ?? SRC, 8);
  p.set(DST, 24);
  const t = 40;
  const sport = s.sport ?? 40000;
  const dport = s.dport ?? 5201;
  p[t] = sport >> 8;
  p[t + 1] = sport & 0xff;
  p[t + 2] = dport >> 8;
  p[t + 3] = dport & 0xff;
  put32(p, t + 4, s.seq >>> 0);
  put32(p, t + 8, s.ack ?? 0x11223344);
  p[t + 12] = (doff / 4) << 4;
  p[t + 13] = s.flags ?? 0x10;
  const w = s.window ?? 512;
  p[t + 14] = w >> 8;
  p[t + 15] = w & 0xff;
  p.set(opts, t + 20);
  p.set(s.payload, t + doff);
  const c = 0xffff - fold16(sum16(p, 40, p.length, pseudoHeaderSum(p, 0, plen, 6)));
  p[t + 16] = c >> 8;
  p[t + 17] = (c & 0xff) ^ (s.badChecksum ? 1 : 0);
  return p;
}

interface Dgram {
  payload: Uint8Array;
  sport?: number;
  dport?: number;
  hop?: number;
  flow?: number;
  badChecksum?: boolean;
  zeroChecksum?: boolean;
}

/** A UDP/IPv6 datagram with a correct checksum (unless badChecksum / zeroChecksum). */
function udp6(d: Dgram): Uint8Array {
  const p = new Uint8Array(48 + d.payload.length);
  const flow = d.flow ?? 0;
  p[0] = 0x60;
  p[1] = (flow >> 16) & 0x0f;
  p[2] = (flow >> 8) & 0xff;
  p[3] = flow & 0xff;
  const plen = 8 + d.payload.length;
  p[4] = p[44] = plen >> 8;
  p[5] = p[45] = plen & 0xff;
  p[6] = 17;
  p[7] = d.hop ?? 64;
  p.set(SRC, 8);
  p.set(DST, 24);
  const sport = d.sport ?? 40000;
  const dport = d.dport ?? 5201;
  p[40] = sport >> 8;
  p[41] = sport & 0xff;
  p[42] = dport >> 8;
  p[43] = dport & 0xff;
  p.set(d.payload, 48);
  const c = (0xffff - fold16(sum16(p, 40, p.length, pseudoHeaderSum(p, 0, plen, 17)))) || 0xffff;
  p[46] = d.zeroChecksum ? 0 : c >> 8;
  p[47] = d.zeroChecksum ? 0 : (c & 0xff) ^ (d.badChecksum ? 1 : 0);
  return p;
}

function bytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

function entries(q: GroQueue): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < q.count; i++) out.push(q.arena.slice(q.offsets[i]!, q.offsets[i]! + q.lengths[i]!));
  return out;
}

/** Pushes every packet, then returns the entries and what they split back into. */
function run(pkts: Uint8Array[], coalesce = true): { entries: Uint8Array[]; out: Uint8Array[] } {
  const q = new GroQueue(256, 1 << 20, coalesce);
  for (const p of pkts) assert.ok(q.push(p, 0, p.length));
  const es = entries(q);
  return { entries: es, out: es.flatMap((e) => segmentEntry(e)) };
}

/** A run of n segments of `mss` bytes (the last `last` bytes) from seq0. */
function stream(n: number, mss: number, opts: Partial<Seg> = {}, last = mss, seq0 = 1000): Uint8Array[] {
  const out: Uint8Array[] = [];
  let seq = seq0;
  for (let i = 0; i < n; i++) {
    const len = i === n - 1 ? last : mss;
    out.push(tcp6({ seq, payload: bytes(len, seq), ...opts }));
    seq += len;
  }
  return out;
}

test('checksum helpers: a built segment verifies, a flipped bit does not', () => {
  const p = tcp6({ seq: 1, payload: bytes(1220, 7), ts: [5, 6] });
  assert.ok(tcpChecksumValid(p, 0, p.length));
  p[100]! ^= 0x10;
  assert.ok(!tcpChecksumValid(p, 0, p.length));
  assert.equal(mergeableTcpHeader(p, 0, p.length), 32);
  const odd = tcp6({ seq: 1, payload: bytes(7, 3) });
  assert.ok(tcpChecksumValid(odd, 0, odd.length));
});

test('a run of equal segments becomes one super-packet that splits back exactly', () => {
  const pkts = stream(10, 1220, { ts: [100, 200] });
  const { entries: es, out } = run(pkts);
  assert.equal(es.length, 1);
  const e = es[0]!;
  // virtio_net_hdr: NEEDS_CSUM, GSO_TCPV6, hdr_len 72, gso_size 1220, csum_start 40, csum_offset 16.
  assert.deepEqual([...e.subarray(0, VNET_HDR_LEN)], [1, 4, 72, 0, 1220 & 0xff, 1220 >> 8, 40, 0, 16, 0]);
  // The payload is the concatenation of the segments' payloads, behind the first's headers.
  const super6 = e.subarray(VNET_HDR_LEN);
  assert.equal(super6.length, 72 + 10 * 1220);
  assert.equal((super6[4]! << 8) | super6[5]!, 32 + 10 * 1220);
  assert.deepEqual(super6.subarray(72), new Uint8Array(Buffer.concat(pkts.map((p) => p.subarray(72)))));
  assert.deepEqual(super6.subarray(0, 4), pkts[0]!.subarray(0, 4));
  // Split back: byte for byte the input, checksums included.
  assert.deepEqual(out, pkts);
});

test('PSH on the last segment is kept there, and closes the super-packet', () => {
  const pkts = stream(4, 1000, { ts: [1, 2] }, 300);
  const withPsh = pkts.map((p, i) => (i === 3 ? tcp6({ seq: 1000 + 3000, payload: bytes(300, 4000), ts: [1, 2], flags: 0x18 }) : p));
  const after = tcp6({ seq: 1000 + 3300, payload: bytes(1000, 4300), ts: [1, 2] });
  const { entries: es, out } = run([...withPsh, after]);
  assert.equal(es.length, 2);
  assert.deepEqual(out, [...withPsh, after]);
  // PSH in the middle: the next one does not join.
  const mid = stream(3, 1000).map((p, i) => (i === 0 ? tcp6({ seq: 1000, payload: bytes(1000, 1000), flags: 0x18 }) : p));
  const r = run(mid);
  assert.equal(r.entries.length, 2);
  assert.deepEqual(r.out, mid);
});

test('a shorter segment ends the super-packet; the next starts a new one', () => {
  const a = stream(3, 1220, {}, 500);
  const b = stream(3, 1220, {}, 1220, 1000 + 2 * 1220 + 500);
  const { entries: es, out } = run([...a, ...b]);
  assert.equal(es.length, 2);
  assert.deepEqual(out, [...a, ...b]);
  // A larger one never joins a smaller gso_size.
  const c = [tcp6({ seq: 1, payload: bytes(500, 1) }), tcp6({ seq: 501, payload: bytes(600, 2) })];
  assert.equal(run(c).entries.length, 2);
});

test('non-mergeable neighbours pass through unchanged behind a zero header, in order', () => {
  const base = { ts: [9, 9] as [number, number] };
  const cases: [string, Uint8Array[]][] = [
    ['sequence gap', [tcp6({ seq: 1, payload: bytes(100, 1) }), tcp6({ seq: 102, payload: bytes(100, 2) })]],
    ['retransmission', [tcp6({ seq: 1, payload: bytes(100, 1) }), tcp6({ seq: 1, payload: bytes(100, 1) })]],
    ['other ACK', [tcp6({ seq: 1, payload: bytes(100, 1), ack: 5 }), tcp6({ seq: 101, payload: bytes(100, 2), ack: 6 })]],
    ['other window', [tcp6({ seq: 1, payload: bytes(100, 1), window: 5 }), tcp6({ seq: 101, payload: bytes(100, 2), window: 6 })]],
    ['other timestamp', [tcp6({ seq: 1, payload: bytes(100, 1), ts: [1, 1] }), tcp6({ seq: 101, payload: bytes(100, 2), ts: [2, 1] })]],
    ['other port', [tcp6({ seq: 1, payload: bytes(100, 1) }), tcp6({ seq: 101, payload: bytes(100, 2), sport: 1 })]],
    ['other source', [tcp6({ seq: 1, payload: bytes(100, 1) }), tcp6({ seq: 101, payload: bytes(100, 2), src: DST })]],
    ['other hop limit', [tcp6({ seq: 1, payload: bytes(100, 1) }), tcp6({ seq: 101, payload: bytes(100, 2), hop: 3 })]],
    ['other traffic class (ECN CE)', [tcp6({ seq: 1, payload: bytes(100, 1) }), tcp6({ seq: 101, payload: bytes(100, 2), tclass: 3 })]],
    ['FIN', [tcp6({ seq: 1, payload: bytes(100, 1) }), tcp6({ seq: 101, payload: bytes(100, 2), flags: 0x11 })]],
    ['SYN first', [tcp6({ seq: 1, payload: bytes(100, 1), flags: 0x12 }), tcp6({ seq: 101, payload: bytes(100, 2) })]],
    ['URG', [tcp6({ seq: 1, payload: bytes(100, 1) }), tcp6({ seq: 101, payload: bytes(100, 2), flags: 0x30 })]],
    ['CWR', [tcp6({ seq: 1, payload: bytes(100, 1), flags: 0x90 }), tcp6({ seq: 101, payload: bytes(100, 2), flags: 0x90 })]],
    ['pure ACKs', [tcp6({ seq: 1, payload: new Uint8Array(0) }), tcp6({ seq: 1, payload: new Uint8Array(0) })]],
    ['SACK option', [tcp6({ seq: 1, payload: bytes(100, 1), options: Uint8Array.from([1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2]) }),
      tcp6({ seq: 101, payload: bytes(100, 2), options: Uint8Array.from([1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2]) })]],
    ['bad checksum second', [tcp6({ seq: 1, payload: bytes(100, 1) }), tcp6({ seq: 101, payload: bytes(100, 2), badChecksum: true })]],
    ['bad checksum first', [tcp6({ seq: 1, payload: bytes(100, 1), badChecksum: true }), tcp6({ seq: 101, payload: bytes(100, 2) })]],
    ['with timestamps vs without', [tcp6({ seq: 1, payload: bytes(100, 1), ...base }), tcp6({ seq: 101, payload: bytes(100, 2) })]],
  ];
  for (const [name, pkts] of cases) {
    const { entries: es, out } = run(pkts);
    assert.equal(es.length, pkts.length, name);
    for (let i = 0; i < es.length; i++) {
      assert.deepEqual([...es[i]!.subarray(0, VNET_HDR_LEN)], new Array(VNET_HDR_LEN).fill(0), name);
      assert.deepEqual(es[i]!.subarray(VNET_HDR_LEN), pkts[i], name);
    }
    assert.deepEqual(out, pkts, name);
  }
});

test('other traffic passes through: UDP, ICMPv6, IPv4-looking junk, short packets', () => {
  const udp = tcp6({ seq: 1, payload: bytes(50, 1) });
  udp[6] = 17;
  const junk = bytes(30, 9);
  const tiny = Uint8Array.from([0x60]);
  const pkts = [udp, junk, tiny, ...stream(3, 800)];
  const { entries: es, out } = run(pkts);
  assert.equal(es.length, 4);
  assert.deepEqual(es.slice(0, 3).map((e) => e.subarray(VNET_HDR_LEN)), [udp, junk, tiny]);
  assert.deepEqual(out.slice(3), pkts.slice(3));
});

test('the 65535-byte IPv6 payload limit starts a new super-packet', () => {
  const pkts = stream(120, 1220, { ts: [3, 4] });
  const { entries: es, out } = run(pkts);
  for (const e of es) assert.ok(e.length - VNET_HDR_LEN - 40 <= 0xffff);
  assert.ok(es.length >= 3);
  assert.deepEqual(out, pkts);
});

test('sequence numbers wrap around 2^32', () => {
  const pkts = stream(5, 1000, {}, 1000, 0xffffffff - 2500);
  const { entries: es, out } = run(pkts);
  assert.equal(es.length, 1);
  assert.deepEqual(out, pkts);
});

test('without coalescing, every packet gets a zero header', () => {
  const pkts = stream(5, 1000);
  const { entries: es } = run(pkts, false);
  assert.equal(es.length, 5);
  for (let i = 0; i < 5; i++) assert.deepEqual(es[i]!.subarray(VNET_HDR_LEN), pkts[i]);
});

test('a full queue says so; clear() empties it', () => {
  const q = new GroQueue(2, 4096);
  const a = tcp6({ seq: 1, payload: bytes(100, 1), flags: 0x18 });
  assert.ok(q.push(a, 0, a.length));
  assert.ok(q.push(a, 0, a.length));
  assert.ok(!q.push(a, 0, a.length));
  q.clear();
  assert.equal(q.count, 0);
  assert.ok(q.push(a, 0, a.length));
  // Bytes: a packet that does not fit in the arena at all.
  const small = new GroQueue(8, 100);
  assert.ok(!small.push(a, 0, a.length));
});

test('differential: random interleaved flows split back into exactly the pushed packets, in order', () => {
  let x = 12345;
  const rnd = (n: number): number => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return (x >>> 8) % n;
  };
  for (let round = 0; round < 200; round++) {
    const flows = 1 + rnd(3);
    const seqs = Array.from({ length: flows }, () => rnd(0x7fffffff) * 2);
    const pkts: Uint8Array[] = [];
    const n = 1 + rnd(60);
    for (let i = 0; i < n; i++) {
      const f = rnd(flows);
      const kind = rnd(20);
      const mss = [1220, 1208, 536][f % 3]!;
      const len = kind === 0 ? rnd(mss) + 1 : mss;
      const seg: Seg = { seq: seqs[f]!, payload: bytes(len, round * 1000 + i), sport: 40000 + f, ts: [round, f] };
      if (kind === 1) seg.flags = 0x18;
      if (kind === 2) seg.badChecksum = true;
      if (kind === 3) seg.seq = (seg.seq + 1) >>> 0; // a gap
      if (kind === 4) seg.payload = new Uint8Array(0);
      if (kind === 5) seg.ack = rnd(100);
      pkts.push(tcp6(seg));
      seqs[f] = (seg.seq + seg.payload.length) >>> 0;
    }
    const q = new GroQueue(256, 1 << 20);
    // Pushed in pieces, flushed (cleared) at random points, as TunDevice does when full or after a batch.
    const out: Uint8Array[] = [];
    for (const p of pkts) {
      assert.ok(q.push(p, 0, p.length));
      if (rnd(10) === 0) {
        out.push(...entries(q).flatMap((e) => segmentEntry(e)));
        q.clear();
      }
    }
    out.push(...entries(q).flatMap((e) => segmentEntry(e)));
    assert.deepEqual(out, pkts, `round ${round}`);
    // Merging happened where it could (not a test that can pass by never merging).
    if (round === 0) assert.ok(q.stats.packets > 0);
  }
});

test('merging does happen on a plain bulk stream (stats)', () => {
  const q = new GroQueue(256, 1 << 20);
  for (const p of stream(40, 1220, { ts: [7, 8] })) assert.ok(q.push(p, 0, p.length));
  assert.equal(q.count, 1);
  assert.equal(q.stats.merged, 39);
  assert.equal(q.stats.superPackets, 1);
});

test('UDP: a run of equal datagrams of one flow becomes one GSO_UDP_L4 super-packet that splits back exactly', () => {
  const pkts = Array.from({ length: 20 }, (_, i) => udp6({ payload: bytes(64, i + 1) }));
  const { entries: es, out } = run(pkts);
  assert.equal(es.length, 1);
  const e = es[0]!;
  assert.equal(e[0], 1); // NEEDS_CSUM
  assert.equal(e[1], VIRTIO_NET_HDR_GSO_UDP_L4);
  assert.equal(e[4]! | (e[5]! << 8), 64); // gso_size
  assert.equal(e[8]! | (e[9]! << 8), 6); // csum_offset: the UDP checksum
  assert.deepEqual(out, pkts);
  for (const p of pkts) assert.ok(mergeableUdp(p, 0, p.length) && udpChecksumValid(p, 0, p.length));
});

test('UDP: a shorter datagram is the last of its super-packet; 64 datagrams at most', () => {
  const short = udp6({ payload: bytes(10, 99) });
  const pkts = [...Array.from({ length: 5 }, (_, i) => udp6({ payload: bytes(100, i + 1) })), short, udp6({ payload: bytes(100, 7) })];
  const r = run(pkts);
  assert.equal(r.entries.length, 2);
  assert.deepEqual(r.out, pkts);
  const many = Array.from({ length: 130 }, (_, i) => udp6({ payload: bytes(32, i + 1) }));
  const m = run(many);
  assert.equal(m.entries.length, 3);
  assert.deepEqual(m.out, many);
});

test('UDP: other flows, hop limits, flow labels, bad or zero checksums are not merged; order is kept', () => {
  const base = (): Uint8Array => udp6({ payload: bytes(64, 5) });
  const cases: [string, Uint8Array][] = [
    ['other source port', udp6({ payload: bytes(64, 6), sport: 1 })],
    ['other destination port', udp6({ payload: bytes(64, 6), dport: 1 })],
    ['other hop limit', udp6({ payload: bytes(64, 6), hop: 3 })],
    ['other flow label', udp6({ payload: bytes(64, 6), flow: 0x12345 })],
    ['bad checksum', udp6({ payload: bytes(64, 6), badChecksum: true })],
    ['zero checksum', udp6({ payload: bytes(64, 6), zeroChecksum: true })],
    ['longer payload', udp6({ payload: bytes(65, 6) })],
    ['a TCP segment', tcp6({ seq: 1, payload: bytes(64, 6) })],
  ];
  for (const [name, other] of cases) {
    const pkts = [base(), other];
    const { entries: es, out } = run(pkts);
    assert.equal(es.length, 2, name);
    assert.deepEqual(out, pkts, name);
  }
  // The first datagram's own bad checksum keeps a run from forming on it.
  const bad = udp6({ payload: bytes(64, 1), badChecksum: true });
  const q = new GroQueue(16, 1 << 16);
  for (const p of [bad, base()]) assert.ok(q.push(p, 0, p.length));
  assert.equal(q.count, 2);
  assert.equal(q.stats.badChecksum, 1);
});

test('differential: random interleaved UDP and TCP flows split back into exactly the pushed packets', () => {
  let x = 777;
  const rnd = (n: number): number => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return (x >>> 8) % n;
  };
  for (let round = 0; round < 200; round++) {
    const pkts: Uint8Array[] = [];
    let seq = rnd(1 << 30);
    const n = 1 + rnd(120);
    for (let i = 0; i < n; i++) {
      const kind = rnd(24);
      if (kind === 0) {
        pkts.push(tcp6({ seq, payload: bytes(500, i) }));
        seq += 500;
        continue;
      }
      const size = kind === 1 ? rnd(200) : [64, 1200][round % 2]!;
      pkts.push(udp6({ payload: bytes(size, round * 1000 + i), sport: 40000 + rnd(2), badChecksum: kind === 2, zeroChecksum: kind === 3 }));
    }
    const q = new GroQueue(256, 1 << 20);
    const out: Uint8Array[] = [];
    for (const p of pkts) {
      assert.ok(q.push(p, 0, p.length));
      if (rnd(16) === 0) {
        out.push(...entries(q).flatMap((e) => segmentEntry(e)));
        q.clear();
      }
    }
    out.push(...entries(q).flatMap((e) => segmentEntry(e)));
    assert.deepEqual(out, pkts, `round ${round}`);
  }
});

test('UDP merging off (a kernel without USO from a TUN writer): datagrams pass alone, TCP still merges', () => {
  const q = new GroQueue(64, 1 << 16, true, false);
  const pkts = [...Array.from({ length: 4 }, (_, i) => udp6({ payload: bytes(64, i + 1) })), ...stream(3, 800)];
  for (const p of pkts) assert.ok(q.push(p, 0, p.length));
  assert.equal(q.count, 5);
  assert.equal(q.stats.udpSuperPackets, 0);
  assert.equal(q.stats.superPackets, 1);
  assert.deepEqual(entries(q).flatMap((e) => segmentEntry(e)), pkts);
});
