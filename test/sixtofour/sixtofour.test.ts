/**
 * The 6to4 core (host/router/relay) in the deterministic protocol-41 simulator: addresses, where packets go, the
 * RFC 3056 §9 / RFC 3964 ingress checks with their counted drops, and a site <-> relay <-> native scenario.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SeededRng } from '../../src/core/rng.js';
import { SixToFour } from '../../src/sixtofour/node.js';
import { buildIcmpv6Packet } from '../../src/wire/icmpv6.js';
import { formatIpv6, parseIpv4, parseIpv6, type Ipv4 } from '../../src/wire/ip.js';
import { encapsulate, TunnelSim } from '../isatap/sim.js';

const v4 = (t: string): Ipv4 => parseIpv4(t)!;
const v6 = (t: string): Uint8Array => parseIpv6(t)!;
const HOST = v4('203.0.113.2');
const ROUTER = v4('198.51.100.2');
const RELAY = v4('198.51.100.18');
const HOST6 = '2002:cb00:7102::cb00:7102';
const ROUTER_LAN = '2002:c633:6402:1::10';
const NATIVE = '2001:db8:70::10';

const echo = (src: string, dst: string, seq = 1): Uint8Array =>
  buildIcmpv6Packet(v6(src), v6(dst), { type: 'echo-request', identifier: 9, sequence: seq, data: new Uint8Array(8) });

function world(): { sim: TunnelSim; host: ReturnType<TunnelSim['add']>; router: ReturnType<TunnelSim['add']>; relay: ReturnType<TunnelSim['add']> } {
  const sim = new TunnelSim();
  const host = sim.add('host', HOST, new SixToFour({ mode: 'host', locals: [HOST], relay: RELAY }));
  const router = sim.add('router', ROUTER, new SixToFour({ mode: 'router', locals: [ROUTER], relay: RELAY, subnet: 1 }));
  const relay = sim.add('relay', RELAY, new SixToFour({ mode: 'relay', locals: [RELAY] }));
  sim.start();
  return { sim, host, router, relay };
}

test('addresses: 2002:WWXX:YYZZ::WWXX:YYZZ for each public IPv4 (the white paper: 131.107.0.1 -> 2002:836b:1::836b:1)', () => {
  const c = new SixToFour({ mode: 'host', locals: [v4('131.107.0.1'), HOST] });
  assert.deepEqual(c.addresses().map(formatIpv6), ['2002:836b:1::836b:1', HOST6]);
  const { router, relay } = world();
  assert.deepEqual(router.ifaces[0]!.routes.map((r) => `${formatIpv6(r.prefix)}/${r.prefixLength}${r.via ? ` via ${formatIpv6(r.via)}` : ''}`), ['2002::/16', '::/0 via 2002:c633:6412::']);
  assert.deepEqual(relay.ifaces[0]!.routes.map((r) => `${formatIpv6(r.prefix)}/${r.prefixLength}`), ['2002::/16'], 'a relay has no default into the tunnel');
  assert.equal((router.core.status(0) as { lanPrefix: string }).lanPrefix, '2002:c633:6402:1::/64');
});

test('private, special and relay-anycast IPv4 addresses are refused with the reason', () => {
  assert.throws(() => new SixToFour({ mode: 'host', locals: [v4('10.1.2.3')] }), /10\.1\.2\.3 is in 10\.0\.0\.0\/8, private \(RFC 1918\): 6to4 needs a public IPv4 address/);
  assert.throws(() => new SixToFour({ mode: 'host', locals: [v4('192.168.1.5')] }), /private \(RFC 1918\)/);
  assert.throws(() => new SixToFour({ mode: 'host', locals: [v4('192.88.99.1')] }), /relay anycast/);
  assert.throws(() => new SixToFour({ mode: 'host', locals: [v4('169.254.1.1')] }), /link-local/);
  assert.throws(() => new SixToFour({ mode: 'relay', locals: [RELAY], relay: HOST }), /a relay has no relay/);
  for (const ok of ['198.51.100.9', '203.0.113.9', '192.0.2.9', '8.8.8.8']) new SixToFour({ mode: 'host', locals: [v4(ok)] });
});

test('egress: 2002::/16 straight to the embedded IPv4, everything else to the relay', () => {
  const { sim, host } = world();
  sim.fromStack(host, echo(HOST6, ROUTER_LAN));
  sim.fromStack(host, echo(HOST6, NATIVE));
  assert.deepEqual(sim.sent.map((s) => [s.src, s.dst]), [[HOST, ROUTER], [HOST, RELAY]]);
  sim.fromStack(host, echo(HOST6, '2002:cb00:7102:5::1'));
  sim.fromStack(host, echo(HOST6, '2002:0a00:0001::1'));
  sim.fromStack(host, echo(HOST6, 'ff02::1'));
  assert.deepEqual(host.core.drops.snapshot(), { 'bad-6to4-destination': 1, multicast: 1, 'own-prefix-unrouted': 1 });
  const norelay = new TunnelSim();
  const lone = norelay.add('lone', HOST, new SixToFour({ mode: 'host', locals: [HOST] }));
  norelay.start();
  norelay.fromStack(lone, echo(HOST6, NATIVE));
  assert.equal(lone.core.drops.get('no-relay'), 1);
  assert.deepEqual(lone.ifaces[0]!.routes.map((r) => r.prefixLength), [16], 'no default route without a relay');
});

test('the outer source is the local address the inner 6to4 source embeds (several public addresses)', () => {
  const second = v4('203.0.113.40');
  const sim = new TunnelSim();
  const n = sim.add('multi', HOST, new SixToFour({ mode: 'host', locals: [HOST, second], relay: RELAY }));
  sim.start();
  sim.fromStack(n, echo('2002:cb00:7128::cb00:7128', ROUTER_LAN));
  sim.fromStack(n, echo(HOST6, ROUTER_LAN));
  assert.deepEqual(sim.sent.map((s) => s.src), [second, HOST]);
});

test('ingress checks (RFC 3056 §9, RFC 3964 §5): counted by reason', () => {
  const { sim, router, relay } = world();
  const at = (to: Ipv4, from: Ipv4, inner: Uint8Array): void => sim.inject(to, encapsulate(from, to, inner));
  at(ROUTER, HOST, echo(HOST6, ROUTER_LAN));
  assert.equal(router.delivered.length, 1, 'matching outer and embedded source');
  at(ROUTER, HOST, echo('2002:cb00:7103::1', ROUTER_LAN));
  at(ROUTER, RELAY, echo('2002:cb00:7103::1', ROUTER_LAN));
  assert.equal(router.delivered.length, 2, 'a mismatch is accepted from the relay only');
  at(ROUTER, v4('203.0.113.77'), echo(NATIVE, ROUTER_LAN));
  assert.equal(router.delivered.length, 3, 'native sources come from whichever relay is nearest the sender');
  at(ROUTER, v4('10.9.9.9'), echo('2002:0a09:0909::1', ROUTER_LAN));
  at(ROUTER, HOST, echo('2002:0a09:0909::1', ROUTER_LAN));
  at(ROUTER, HOST, echo(HOST6, '2002:0101:0101::1'));
  at(ROUTER, HOST, echo('::1', ROUTER_LAN));
  sim.inject(ROUTER, encapsulate(HOST, v4('198.51.100.3'), echo(HOST6, ROUTER_LAN)));
  assert.deepEqual(router.core.drops.snapshot(), {
    'inner-source-bad-ipv4': 1,
    'inner-source-invalid': 1,
    'not-our-prefix': 1,
    'outer-source-not-public': 1,
    'source-ipv4-mismatch': 1,
    'wrong-ipv4-destination': 1,
  });
  at(RELAY, HOST, echo(HOST6, NATIVE));
  assert.equal(relay.delivered.length, 1, 'relay: 6to4 to native');
  at(RELAY, HOST, echo(HOST6, ROUTER_LAN));
  at(RELAY, HOST, echo(NATIVE, '2001:db8:99::1'));
  assert.deepEqual(relay.core.drops.snapshot(), { 'native-source-to-relay': 1, 'relay-6to4-to-6to4': 1 });
});

test('--strict-relay: native sources only from the configured relay (RFC 3964 §5.3)', () => {
  const sim = new TunnelSim();
  const strict = sim.add('strict', ROUTER, new SixToFour({ mode: 'router', locals: [ROUTER], relay: RELAY, strictRelay: true }));
  sim.start();
  sim.inject(ROUTER, encapsulate(v4('203.0.113.77'), ROUTER, echo(NATIVE, ROUTER_LAN)));
  sim.inject(ROUTER, encapsulate(RELAY, ROUTER, echo(NATIVE, ROUTER_LAN)));
  assert.equal(strict.delivered.length, 1);
  assert.deepEqual(strict.core.drops.snapshot(), { 'native-source-not-from-relay': 1 });
});

test('scenario: a 6to4 site and a native host through the relay, both ways', () => {
  const { sim, host, router, relay } = world();
  // The LAN host behind the router pings the native host: router -> relay -> native (the relay's kernel).
  sim.fromStack(router, echo(ROUTER_LAN, NATIVE, 1));
  sim.run(10);
  assert.equal(relay.delivered.length, 1);
  // The native host answers: its kernel routes 2002::/16 into the relay's tunnel.
  sim.fromStack(relay, echo(NATIVE, ROUTER_LAN, 2));
  sim.fromStack(relay, echo(NATIVE, HOST6, 3));
  sim.fromStack(relay, echo(NATIVE, '2001:db8:1::1', 4));
  sim.run(10);
  assert.equal(router.delivered.length, 1);
  assert.equal(host.delivered.length, 1);
  assert.equal(relay.core.drops.get('relay-native-to-native'), 1);
  assert.equal(router.core.events.get('rx-native-via-relay'), 1);
  assert.deepEqual(sim.sent.map((s) => `${s.from}->${s.dst === RELAY ? 'relay' : s.dst === ROUTER ? 'router' : 'host'}`), ['router->relay', 'relay->router', 'relay->host']);
});

test('random input never throws', () => {
  const { sim, host, relay } = world();
  const rng = new SeededRng(5);
  for (let i = 0; i < 2000; i++) {
    const junk = new Uint8Array(rng.u32() % 100);
    rng.fill(junk);
    if (junk.length >= 60 && i % 2 === 0) junk.set(encapsulate(RELAY, HOST, echo(NATIVE, HOST6)).subarray(0, 60));
    sim.inject(HOST, junk);
    sim.fromStack(host, junk);
    sim.fromStack(relay, junk);
  }
  assert.ok(host.core.drops.total() > 0);
});
