import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FIXED_LIMITER_KEY, SourceAndGlobalLimiter, SourceLimiter, TokenBucket } from '../../src/core/ratelimit.js';

test('token bucket: a burst, then the sustained rate, refilled by elapsed virtual time', () => {
  const b = new TokenBucket({ perSecond: 10, burst: 5 });
  let ok = 0;
  for (let i = 0; i < 20; i++) if (b.take(0)) ok++;
  assert.equal(ok, 5);
  assert.equal(b.refused, 15);
  // 100 ms later: one token.
  assert.equal(b.take(100), true);
  assert.equal(b.take(100), false);
  // Over 10 s at 1 request per 10 ms (100/s offered): 10/s pass.
  let passed = 0;
  for (let t = 1000; t < 11_000; t += 10) if (b.take(t)) passed++;
  assert.ok(passed >= 100 && passed <= 106, `passed ${passed}`);
  // A clock that goes backwards gives nothing back.
  const c = new TokenBucket({ perSecond: 1, burst: 1 });
  assert.equal(c.take(5000), true);
  assert.equal(c.take(0), false);
  assert.equal(c.take(5000), false);
  assert.throws(() => new TokenBucket({ perSecond: 0, burst: 1 }), /rate/);
  assert.throws(() => new TokenBucket({ perSecond: 1, burst: 0 }), /burst/);
});

test('per-source limiter: each source has its own bucket; one flooding source does not starve another', () => {
  const l = new SourceLimiter({ perSecond: 10, burst: 20 }, FIXED_LIMITER_KEY, 1024);
  let flood = 0;
  for (let i = 0; i < 10_000; i++) if (l.allowIpv4(i / 10, 0xcb007101)) flood++;
  // 1 s of virtual time: the burst plus 10.
  assert.ok(flood >= 20 && flood <= 31, `flooding source passed ${flood}`);
  assert.equal(l.allowIpv4(1000, 0xcb007102), true);
  assert.equal(l.allow(1000, Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8)), true);
});

test('per-source limiter: memory is fixed whatever the number of sources; 1M distinct sources each get their first request', () => {
  const l = new SourceLimiter({ perSecond: 1, burst: 1 }, FIXED_LIMITER_KEY, 4096);
  const before = l.memoryBytes;
  let ok = 0;
  for (let i = 0; i < 1_000_000; i++) if (l.allowIpv4(i >>> 10, (0xc6336400 + i) >>> 0)) ok++;
  assert.equal(l.memoryBytes, before);
  assert.equal(l.memoryBytes, 4096 * 20);
  assert.ok(l.used <= 4096);
  // Every new source starts with a full bucket (fingerprint collisions aside, which are 2^-32 each).
  assert.ok(ok >= 999_990, `${ok}`);
  assert.ok(l.evictions > 990_000);
});

test('per-source limiter: a throttled source stays throttled while others come and go at a normal pace', () => {
  const l = new SourceLimiter({ perSecond: 1, burst: 2 }, FIXED_LIMITER_KEY, 1024);
  let attacker = 0;
  for (let t = 0; t < 10_000; t += 10) {
    if (l.allowIpv4(t, 0xcb000001)) attacker++;
    // 100 other sources, each once.
    if (t % 100 === 0) l.allowIpv4(t, (0xc6000000 + t) >>> 0);
  }
  assert.ok(attacker <= 12, `attacker passed ${attacker}`);
});

test('source and global: a source over its own limit spends no global token; the global limit caps many sources', () => {
  const l = new SourceAndGlobalLimiter({ perSecond: 1, burst: 1 }, { perSecond: 100, burst: 100 }, FIXED_LIMITER_KEY, 1024);
  assert.equal(l.check(0, 1), 'ok');
  for (let i = 0; i < 1000; i++) assert.equal(l.check(0, 1), 'source');
  let ok = 0;
  let global = 0;
  for (let i = 0; i < 1000; i++) {
    const r = l.check(0, 1000 + i);
    if (r === 'ok') ok++;
    else if (r === 'global') global++;
  }
  assert.equal(ok, 99);
  assert.equal(global, 901);
  const none = new SourceAndGlobalLimiter(undefined, undefined, FIXED_LIMITER_KEY);
  for (let i = 0; i < 1000; i++) assert.equal(none.check(0, 1), 'ok');
  assert.throws(() => new SourceLimiter({ perSecond: 1, burst: 1 }, FIXED_LIMITER_KEY, 1000), /power of two/);
  assert.throws(() => new SourceLimiter({ perSecond: 1, burst: 1 }, new Uint8Array(3)), /16 bytes/);
});
