/**
 * The rate limits of the server and relay (src/teredo/limits.ts), through the cores' entry points, and their
 * configuration keys.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Action } from '../../src/core/endpoint.js';
import { SeededRng } from '../../src/core/rng.js';
import { resolveDaemonConfig } from '../../src/config/daemon.js';
import { TeredoRelay } from '../../src/teredo/relay.js';
import { TeredoServer } from '../../src/teredo/server.js';
import { buildIcmpv6Packet } from '../../src/wire/icmpv6.js';
import { buildBubble } from '../../src/wire/ipv6.js';
import { encodeTeredoAddress, encodeTeredoPacket } from '../../src/wire/teredo.js';
import { authWithNonce, rsDatagram, v4, v6 } from './fixtures.js';

const PRIMARY = v4('198.51.100.1');
const SECONDARY = v4('198.51.100.2');
const P = { addr: PRIMARY, port: 3544 };

function drain(e: { poll(): Action | undefined }): Action[] {
  const out: Action[] = [];
  for (let a = e.poll(); a; a = e.poll()) out.push(a);
  return out;
}

test('server: RSs from one source beyond its limit get no answer and are counted; another source is still answered', () => {
  const s = new TeredoServer({ primary: PRIMARY, secondary: SECONDARY, rateLimits: { rsPerSource: { perSecond: 10, burst: 20 } } });
  let answered = 0;
  // 10 000 RSs in one second from one address, many ports (a storm from behind one NAT).
  for (let i = 0; i < 10_000; i++) {
    s.handleDatagram(i / 10, { addr: v4('203.0.113.9'), port: 1024 + (i % 60000) }, P, rsDatagram({ auth: authWithNonce([1, 2, 3, 4, 5, 6, 7, i & 0xff]) }));
    answered += drain(s).length;
  }
  assert.ok(answered >= 20 && answered <= 31, `answered ${answered}`);
  assert.equal(s.drops.get('rate-limited-rs-source'), 10_000 - answered);
  assert.equal(s.events.get('router-advertisements'), answered);
  s.handleDatagram(1000, { addr: v4('203.0.113.10'), port: 4000 }, P, rsDatagram());
  assert.equal(drain(s).length, 1);
});

test('server: a spoofed RS flood from distinct sources is held to the global limit', () => {
  const s = new TeredoServer({ primary: PRIMARY, secondary: SECONDARY, rateLimits: { rsGlobal: { perSecond: 1000, burst: 1000 } } });
  let answered = 0;
  // 100 000 sources in 10 s.
  for (let i = 0; i < 100_000; i++) {
    s.handleDatagram(i / 10, { addr: (v4('198.18.0.0') + 65536 * 16 + i) >>> 0, port: 40000 }, P, rsDatagram({ cone: i % 2 === 0 }));
    answered += drain(s).length;
  }
  // 1000 burst + 1000/s for 10 s.
  assert.ok(answered >= 10_900 && answered <= 11_001, `answered ${answered}`);
  assert.equal(s.drops.get('rate-limited-rs-global'), 100_000 - answered);
  assert.ok(s.limiter.memoryBytes <= 2 * 16_384 * 20);
});

test('server: forwarded bubbles per source are limited too; limits can be turned off', () => {
  const s = new TeredoServer({ primary: PRIMARY, secondary: SECONDARY, rateLimits: { forwardPerSource: { perSecond: 5, burst: 5 } } });
  const from = { addr: v4('203.0.113.20'), port: 5000 };
  const src = encodeTeredoAddress({ server: PRIMARY, flags: 0, mappedAddr: from.addr, mappedPort: from.port });
  const dst = encodeTeredoAddress({ server: PRIMARY, flags: 0, mappedAddr: v4('203.0.113.30'), mappedPort: 6000 });
  let forwarded = 0;
  for (let i = 0; i < 100; i++) {
    s.handleDatagram(0, from, P, encodeTeredoPacket({ ipv6: buildBubble(src, dst) }));
    forwarded += drain(s).length;
  }
  assert.equal(forwarded, 5);
  assert.equal(s.drops.get('rate-limited-forward'), 95);
  const open = new TeredoServer({ primary: PRIMARY, secondary: SECONDARY, rateLimits: { rsPerSource: undefined, rsGlobal: undefined } });
  let n = 0;
  for (let i = 0; i < 1000; i++) {
    open.handleDatagram(0, from, P, rsDatagram());
    n += drain(open).length;
  }
  assert.equal(n, 1000);
});

function echoTo(src: Uint8Array, dst: Uint8Array): Uint8Array {
  return buildIcmpv6Packet(src, dst, { type: 'echo-request', identifier: 1, sequence: 1, data: new Uint8Array(8) });
}

test('relay: new peers per native source /64 and in total are limited; known peers are not', () => {
  const r = new TeredoRelay({ rateLimits: { newPeerPerSource: { perSecond: 10, burst: 10 }, newPeerGlobal: { perSecond: 100, burst: 100 } } }, new SeededRng(1));
  const teredo = (i: number) => encodeTeredoAddress({ server: PRIMARY, flags: 0, mappedAddr: (v4('203.0.113.0') + (i % 200)) >>> 0, mappedPort: 1024 + Math.floor(i / 200) });
  // One host, varying its interface identifier: one /64.
  for (let i = 0; i < 1000; i++) {
    const src = v6(`2001:db8:1:2::${(i + 1).toString(16)}`);
    r.handleIpv6(0, echoTo(src, teredo(i)));
  }
  assert.equal(r.peers.size, 10);
  assert.equal(r.drops.get('rate-limited-new-peer-source'), 990);
  // Packets to the peers already created are not limited (they are queued).
  for (let i = 0; i < 10; i++) r.handleIpv6(0, echoTo(v6('2001:db8:1:2::1'), teredo(i)));
  assert.equal(r.drops.get('rate-limited-new-peer-source'), 990);
  // Many /64s: the global limit.
  for (let i = 0; i < 1000; i++) r.handleIpv6(0, echoTo(v6(`2001:db8:${(i + 100).toString(16)}::1`), teredo(1000 + i)));
  assert.equal(r.peers.size, 100);
  assert.equal(r.drops.get('rate-limited-new-peer-global'), 910);
  drain(r);
});

test('config: rate-limit keys from the file and flags, with defaults, "no", and clear errors', () => {
  const opts = { readFile: (): string => 'ServerBindAddress 198.51.100.1\nRsRateLimit 5/7\nRsGlobalRateLimit no\n', defaultControlPath: () => '/tmp/x.sock' };
  const s = resolveDaemonConfig('server', 'server.conf', { 'forward-rate-limit': '50', 'rate-limit-table-size': '1024' }, opts);
  assert.deepEqual(s.core.rateLimits, { rsPerSource: { perSecond: 5, burst: 7 }, rsGlobal: undefined, forwardPerSource: { perSecond: 50, burst: 100 }, tableSlots: 1024 });
  const plain = resolveDaemonConfig('server', undefined, { 'server-bind-address': '198.51.100.1' }, opts);
  assert.equal(plain.core.rateLimits, undefined);
  const r = resolveDaemonConfig('relay', undefined, { 'new-peer-rate-limit': '20/40', 'new-peer-global-rate-limit': 'off' }, opts);
  assert.deepEqual(r.core.rateLimits, { newPeerPerSource: { perSecond: 20, burst: 40 }, newPeerGlobal: undefined });
  assert.throws(() => resolveDaemonConfig('server', undefined, { 'server-bind-address': '198.51.100.1', 'rs-rate-limit': 'fast' }, opts), /--rs-rate-limit.*RATE\[\/BURST\]/);
  assert.throws(() => resolveDaemonConfig('server', undefined, { 'server-bind-address': '198.51.100.1', 'rate-limit-table-size': '1000' }, opts), /power of two/);
  assert.throws(() => resolveDaemonConfig('relay', undefined, { 'rs-rate-limit': '5' }, opts), /not an option/);
});

test('relay: the ICMPv6 errors about unreachable peers are rate-limited (RFC 4443 §2.4(f)): no backscatter storm', () => {
  const r = new TeredoRelay({ rateLimits: { newPeerPerSource: undefined, newPeerGlobal: undefined, icmpErrors: { perSecond: 10, burst: 10 } } }, new SeededRng(2));
  for (let i = 0; i < 1000; i++) {
    const dst = encodeTeredoAddress({ server: PRIMARY, flags: 0, mappedAddr: v4('203.0.113.50'), mappedPort: 1024 + i });
    r.handleIpv6(0, echoTo(v6(`2001:db8:${(i + 1).toString(16)}::1`), dst));
  }
  drain(r);
  // No answer: after the bubbles the relay gives up on all 1000 at once.
  for (let t = 0; t <= 20_000; t += 500) r.handleTimeout(t);
  const errors = drain(r).filter((a) => a.kind === 'ipv6-forward').length;
  assert.equal(errors, 10);
  assert.equal(r.drops.get('peer-unreachable'), 1000);
  assert.equal(r.drops.get('rate-limited-icmp-error'), 990);
  const cfg = resolveDaemonConfig('relay', undefined, { 'icmp-error-rate-limit': '5/5' }, { defaultControlPath: () => '/tmp/x.sock' });
  assert.deepEqual(cfg.core.rateLimits, { icmpErrors: { perSecond: 5, burst: 5 } });
});
