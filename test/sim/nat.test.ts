import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NatModel, natPreset, type NatBehavior, type NatConfig } from '../../src/sim/nat.js';
import { SeededRng } from '../../src/core/rng.js';
import { ConfigError } from '../../src/core/errors.js';
import type { Ipv4Port } from '../../src/wire/ip.js';
import { ep, ip } from './doubles.js';

const PUB = ip('203.0.113.1');
const PRIV = ep('192.168.1.10:5000');
const A1 = ep('198.51.100.1:3544');
const A2 = ep('198.51.100.1:3545'); // same address as A1, other port
const B1 = ep('198.51.100.2:3544'); // other address, same port

function nat(mapping: NatBehavior, filtering: NatBehavior, extra: Partial<NatConfig> = {}): NatModel {
  return new NatModel({ publicAddr: PUB, mapping, filtering, allocation: 'sequential', ...extra });
}

function out(n: NatModel, now: number, src: Ipv4Port, dst: Ipv4Port): Ipv4Port {
  const r = n.outbound(now, src, dst);
  assert.ok(r.ok, `outbound failed: ${r.ok ? '' : r.reason}`);
  return r.value;
}

const behaviors: NatBehavior[] = ['endpoint-independent', 'address-dependent', 'address-and-port-dependent'];

// RFC 4787 §4.1: whether a second destination reuses the first destination's mapping.
const mappingCases: { mapping: NatBehavior; sameForOtherPort: boolean; sameForOtherAddr: boolean }[] = [
  { mapping: 'endpoint-independent', sameForOtherPort: true, sameForOtherAddr: true },
  { mapping: 'address-dependent', sameForOtherPort: true, sameForOtherAddr: false },
  { mapping: 'address-and-port-dependent', sameForOtherPort: false, sameForOtherAddr: false },
];

for (const c of mappingCases) {
  test(`mapping ${c.mapping}: other port ${c.sameForOtherPort ? 'same' : 'new'} mapping, other address ${c.sameForOtherAddr ? 'same' : 'new'} mapping`, () => {
    const n = nat(c.mapping, 'endpoint-independent');
    const p1 = out(n, 0, PRIV, A1);
    const p2 = out(n, 0, PRIV, A2);
    const p3 = out(n, 0, PRIV, B1);
    assert.equal(p1.addr, PUB);
    assert.equal(p1.port === p2.port, c.sameForOtherPort);
    assert.equal(p1.port === p3.port, c.sameForOtherAddr);
    // Sending again to the first destination always reuses its mapping.
    assert.deepEqual(out(n, 1, PRIV, A1), p1);
    const distinct = new Set([p1.port, p2.port, p3.port]).size;
    assert.equal(n.mappings(1).length, distinct);
  });
}

// RFC 4787 §5: who may send in after the inside host has sent to A1 only.
const filteringCases: { filtering: NatBehavior; fromA1: boolean; fromA2: boolean; fromB1: boolean }[] = [
  { filtering: 'endpoint-independent', fromA1: true, fromA2: true, fromB1: true },
  { filtering: 'address-dependent', fromA1: true, fromA2: true, fromB1: false },
  { filtering: 'address-and-port-dependent', fromA1: true, fromA2: false, fromB1: false },
];

for (const c of filteringCases) {
  test(`filtering ${c.filtering}: A1 ${c.fromA1}, same address other port ${c.fromA2}, other address ${c.fromB1}`, () => {
    const n = nat('endpoint-independent', c.filtering);
    const pub = out(n, 0, PRIV, A1);
    for (const [remote, allowed] of [[A1, c.fromA1], [A2, c.fromA2], [B1, c.fromB1]] as const) {
      const r = n.inbound(10, remote, pub);
      if (allowed) assert.deepEqual(r, { ok: true, value: PRIV });
      else assert.deepEqual(r, { ok: false, reason: 'filtered' });
    }
  });
}

for (const filtering of behaviors) {
  test(`filtering ${filtering}: an unmapped public port or a foreign address is dropped`, () => {
    const n = nat('endpoint-independent', filtering);
    const pub = out(n, 0, PRIV, A1);
    assert.deepEqual(n.inbound(0, A1, { addr: PUB, port: pub.port + 1 }), { ok: false, reason: 'no-mapping' });
    assert.deepEqual(n.inbound(0, A1, { addr: ip('203.0.113.99'), port: pub.port }), { ok: false, reason: 'not-public-address' });
  });
}

test('a mapping lapses udpTimeoutMs after the last outbound packet, and outbound refreshes it', () => {
  const n = nat('endpoint-independent', 'endpoint-independent', { udpTimeoutMs: 30_000, refreshOnInbound: false });
  const pub = out(n, 0, PRIV, A1);
  assert.ok(n.inbound(29_999, A1, pub).ok);
  assert.deepEqual(n.inbound(30_000, A1, pub), { ok: false, reason: 'no-mapping' });

  const m = nat('endpoint-independent', 'endpoint-independent', { udpTimeoutMs: 30_000, refreshOnInbound: false });
  const pub2 = out(m, 0, PRIV, A1);
  assert.deepEqual(out(m, 20_000, PRIV, A1), pub2);
  assert.ok(m.inbound(49_999, A1, pub2).ok);
  assert.equal(m.inbound(50_000, A1, pub2).ok, false);
});

test('refreshOnInbound decides whether inbound traffic keeps a mapping alive', () => {
  for (const refreshOnInbound of [true, false]) {
    const n = nat('endpoint-independent', 'address-and-port-dependent', { udpTimeoutMs: 30_000, refreshOnInbound });
    const pub = out(n, 0, PRIV, A1);
    assert.ok(n.inbound(20_000, A1, pub).ok);
    assert.equal(n.inbound(40_000, A1, pub).ok, refreshOnInbound);
  }
});

test('permissions lapse on their own: the mapping lives on for the peer still being talked to', () => {
  const n = nat('endpoint-independent', 'address-dependent', { udpTimeoutMs: 30_000, refreshOnInbound: false });
  const pub = out(n, 0, PRIV, A1);
  assert.deepEqual(out(n, 20_000, PRIV, B1), pub);
  assert.deepEqual(n.inbound(35_000, A1, pub), { ok: false, reason: 'filtered' });
  assert.ok(n.inbound(35_000, B1, pub).ok);
  assert.deepEqual(n.mappings(35_000)[0]!.destinations, [B1]);
});

test('preserving allocation keeps the private port when free, else falls back to sequential', () => {
  const n = new NatModel({ publicAddr: PUB, mapping: 'endpoint-independent', filtering: 'endpoint-independent', allocation: 'preserving' });
  assert.equal(out(n, 0, PRIV, A1).port, 5000);
  const other = ep('192.168.1.11:5000');
  assert.equal(out(n, 0, other, A1).port, 1024);
  assert.equal(out(n, 0, ep('192.168.1.12:5000'), A1).port, 1025);
  assert.equal(out(n, 0, ep('192.168.1.12:6000'), A1).port, 6000);
});

test('sequential allocation counts up through the range and wraps to free ports', () => {
  const n = nat('address-and-port-dependent', 'address-and-port-dependent', { portRange: [40000, 40002], udpTimeoutMs: 1000 });
  const ports = [A1, A2, B1].map((d) => out(n, 0, PRIV, d).port);
  assert.deepEqual(ports, [40000, 40001, 40002]);
  assert.deepEqual(n.outbound(0, PRIV, ep('198.51.100.3:1')), { ok: false, reason: 'ports-exhausted' });
  // Once the old mappings have lapsed their ports are handed out again, continuing from the cursor.
  assert.equal(out(n, 1000, PRIV, ep('198.51.100.3:1')).port, 40000);
});

test('random allocation: in range, distinct, repeatable for a seed', () => {
  const run = (seed: number): number[] => {
    const n = new NatModel({ publicAddr: PUB, mapping: 'address-and-port-dependent', filtering: 'address-and-port-dependent', allocation: 'random', portRange: [20000, 29999] }, new SeededRng(seed));
    return Array.from({ length: 20 }, (_, i) => out(n, 0, PRIV, { addr: A1.addr, port: 1000 + i }).port);
  };
  const a = run(1);
  assert.deepEqual(run(1), a);
  assert.notDeepEqual(run(2), a);
  assert.equal(new Set(a).size, a.length);
  for (const p of a) assert.ok(p >= 20000 && p <= 29999);
  // Not simply counting up.
  assert.notDeepEqual(a, [...a].sort((x, y) => x - y));
});

test('random allocation fills a small range completely', () => {
  const n = new NatModel({ publicAddr: PUB, mapping: 'address-and-port-dependent', filtering: 'address-and-port-dependent', allocation: 'random', portRange: [100, 107] }, new SeededRng(3));
  const ports = Array.from({ length: 8 }, (_, i) => out(n, 0, PRIV, { addr: A1.addr, port: i + 1 }).port);
  assert.deepEqual([...ports].sort((x, y) => x - y), [100, 101, 102, 103, 104, 105, 106, 107]);
  assert.equal(n.outbound(0, PRIV, { addr: A1.addr, port: 99 }).ok, false);
});

test('hairpin: off drops, on translates to the sender\'s public endpoint', () => {
  const inner = ep('192.168.1.20:6000');
  for (const hairpin of [false, true]) {
    const n = nat('endpoint-independent', 'endpoint-independent', { hairpin });
    const target = out(n, 0, PRIV, A1);
    const r = n.hairpinTranslate(1, inner, target);
    if (!hairpin) {
      assert.deepEqual(r, { ok: false, reason: 'no-hairpin' });
      continue;
    }
    assert.ok(r.ok);
    assert.deepEqual(r.value.dst, PRIV);
    assert.deepEqual(r.value.src, n.publicEndpointFor(1, inner, target));
    assert.equal(r.value.src.addr, PUB);
  }
});

test('hairpinned packets still pass the filter', () => {
  const n = nat('endpoint-independent', 'address-and-port-dependent', { hairpin: true });
  const target = out(n, 0, PRIV, A1);
  assert.deepEqual(n.hairpinTranslate(1, ep('192.168.1.20:6000'), target), { ok: false, reason: 'filtered' });
});

test('expireAll keeps the allocation cursor; dropAllMappings starts over', () => {
  const n = nat('endpoint-independent', 'endpoint-independent');
  assert.equal(out(n, 0, PRIV, A1).port, 1024);
  n.expireAll();
  assert.equal(n.mappings(0).length, 0);
  assert.equal(n.inbound(0, A1, { addr: PUB, port: 1024 }).ok, false);
  assert.equal(out(n, 0, PRIV, A1).port, 1025);
  n.dropAllMappings();
  assert.equal(out(n, 0, PRIV, A1).port, 1024);
});

test('mappings() lists live mappings with their destinations; publicEndpointFor does not create one', () => {
  const n = nat('endpoint-independent', 'address-dependent', { udpTimeoutMs: 10_000 });
  assert.equal(n.publicEndpointFor(0, PRIV, A1), undefined);
  assert.equal(n.mappings(0).length, 0);
  const pub = out(n, 0, PRIV, A1);
  out(n, 5, PRIV, B1);
  assert.deepEqual(n.publicEndpointFor(5, PRIV, B1), pub);
  const list = n.mappings(5);
  assert.equal(list.length, 1);
  assert.deepEqual(list[0]!.private, PRIV);
  assert.deepEqual(list[0]!.public, pub);
  assert.deepEqual(list[0]!.destinations, [A1, B1]);
  assert.equal(list[0]!.createdAt, 0);
  assert.equal(list[0]!.lastOutboundAt, 5);
  assert.equal(list[0]!.expiresAt, 10_005);
  assert.equal(n.mappings(10_005).length, 0);
});

test('presets map to RFC 4787 behaviour', () => {
  const expect = {
    'full-cone': ['endpoint-independent', 'endpoint-independent', 'sequential'],
    restricted: ['endpoint-independent', 'address-dependent', 'sequential'],
    'port-restricted': ['endpoint-independent', 'address-and-port-dependent', 'sequential'],
    symmetric: ['address-and-port-dependent', 'address-and-port-dependent', 'random'],
  } as const;
  for (const [kind, [mapping, filtering, allocation]] of Object.entries(expect) as [keyof typeof expect, readonly [string, string, string]][]) {
    const n = natPreset(kind, PUB);
    assert.deepEqual([n.mappingBehavior, n.filteringBehavior, n.allocation], [mapping, filtering, allocation], kind);
    assert.equal(n.publicAddr, PUB);
    assert.equal(n.udpTimeoutMs, 30_000);
    assert.equal(n.refreshOnInbound, true);
    assert.equal(n.hairpin, false);
  }
  const custom = natPreset('restricted', PUB, { udpTimeoutMs: 5000, hairpin: true, allocation: 'preserving', mapping: undefined });
  assert.deepEqual([custom.mappingBehavior, custom.allocation, custom.udpTimeoutMs, custom.hairpin], ['endpoint-independent', 'preserving', 5000, true]);
});

test('a symmetric preset hands out repeatable ports for a given rng', () => {
  const ports = (seed: number): number[] => {
    const n = natPreset('symmetric', PUB, { rng: new SeededRng(seed) });
    return [A1, A2, B1].map((d) => out(n, 0, PRIV, d).port);
  };
  assert.deepEqual(ports(9), ports(9));
  assert.equal(new Set(ports(9)).size, 3);
});

test('bad configuration throws ConfigError', () => {
  const base = { publicAddr: PUB, mapping: 'endpoint-independent', filtering: 'endpoint-independent', allocation: 'sequential' } as const;
  assert.throws(() => new NatModel({ ...base, portRange: [2000, 1000] }), ConfigError);
  assert.throws(() => new NatModel({ ...base, portRange: [0, 1000] }), ConfigError);
  assert.throws(() => new NatModel({ ...base, udpTimeoutMs: 0 }), ConfigError);
  assert.throws(() => new NatModel({ ...base, publicAddr: -1 }), ConfigError);
});
