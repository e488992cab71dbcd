/**
 * The ISATAP cores in the deterministic protocol-41 simulator (test/isatap/sim.ts): router discovery and its
 * retransmission schedule, advertisements into addresses, routes and lifetimes, the PRL from a name, direct
 * host-to-host delivery, and the RFC 5214 §7.3 source checks with their counted drops.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SeededRng } from '../../src/core/rng.js';
import { IsatapHost, MAX_PRL, MAX_PREFIXES, MAX_RTR_SOLICITATION_INTERVAL_MS, RESOLVE_RETRY_MS } from '../../src/isatap/host.js';
import { IsatapRouter } from '../../src/isatap/router.js';
import { buildIcmpv6Packet, parseIcmpv6Packet } from '../../src/wire/icmpv6.js';
import { formatIpv6, parseIpv4, parseIpv6, type Ipv4 } from '../../src/wire/ip.js';
import { encapsulate, TunnelSim, type SimNode } from './sim.js';

const v4 = (t: string): Ipv4 => parseIpv4(t)!;
const v6 = (t: string): Uint8Array => parseIpv6(t)!;
const PREFIX = v6('2001:db8:5e:1::');
const ROUTER = v4('10.0.0.1');
const H1 = v4('10.0.0.11');
const H2 = v4('10.0.0.12');

function echo(src: string, dst: string, seq = 1, hopLimit?: number): Uint8Array {
  return buildIcmpv6Packet(v6(src), v6(dst), { type: 'echo-request', identifier: 1, sequence: seq, data: new Uint8Array(16) }, hopLimit);
}

function lastIface(n: SimNode): { addresses: string[]; routes: string[]; mtu: number } {
  const a = n.ifaces.at(-1)!;
  return { addresses: a.addresses.map((x) => `${formatIpv6(x.address)}/${x.prefixLength}`), routes: a.routes.map((r) => `${formatIpv6(r.prefix)}/${r.prefixLength}`), mtu: a.mtu };
}

function world(opts: { defaultRoute?: boolean; routerConfig?: Partial<ConstructorParameters<typeof IsatapRouter>[0]> } = {}): { sim: TunnelSim; router: SimNode; h1: SimNode; h2: SimNode } {
  const sim = new TunnelSim();
  const router = sim.add('router', ROUTER, new IsatapRouter({ local: ROUTER, prefixes: [PREFIX], defaultRoute: opts.defaultRoute ?? true, ...opts.routerConfig }));
  const h1 = sim.add('h1', H1, new IsatapHost({ local: H1, routers: [ROUTER] }, new SeededRng(1)));
  const h2 = sim.add('h2', H2, new IsatapHost({ local: H2, routers: [ROUTER] }, new SeededRng(2)));
  sim.start();
  return { sim, router, h1, h2 };
}

test('host: the link-local ISATAP address follows the u-bit rule (private ::5efe, public ::200:5efe)', () => {
  assert.equal(formatIpv6(new IsatapHost({ local: v4('10.0.0.11') }, new SeededRng(1)).linkLocal), 'fe80::5efe:a00:b');
  assert.equal(formatIpv6(new IsatapHost({ local: v4('198.51.100.7') }, new SeededRng(1)).linkLocal), 'fe80::200:5efe:c633:6407');
});

test('host and router: solicitation, advertisement, prefix address, on-link and default routes', () => {
  const { sim, router, h1 } = world();
  sim.run(2000);
  const rs = sim.sent.find((s) => s.from === 'h1')!;
  const m = parseIcmpv6Packet(rs.packet);
  assert.ok(m.ok);
  assert.equal(m.value.message.type, 'router-solicitation');
  assert.equal(m.value.hopLimit, 255);
  assert.equal(formatIpv6(m.value.src), 'fe80::5efe:a00:b');
  assert.equal(formatIpv6(m.value.dst), 'fe80::5efe:a00:1', "the router's link-local ISATAP address (RFC 5214 §8.3.4)");
  assert.equal(rs.dst, ROUTER);
  assert.deepEqual(lastIface(h1), {
    addresses: ['fe80::5efe:a00:b/64', '2001:db8:5e:1:0:5efe:a00:b/64'],
    routes: ['2001:db8:5e:1::/64', '::/0'],
    mtu: 1280,
  });
  assert.equal(formatIpv6(h1.ifaces.at(-1)!.routes.at(-1)!.via!), 'fe80::5efe:a00:1', 'the default route names the router');
  const st = h1.core.status(sim.now) as { state: string; defaultRouter: string; prefixes: { address: string }[] };
  assert.equal(st.state, 'configured');
  assert.equal(st.defaultRouter, '10.0.0.1');
  assert.equal(router.core.events.get('ra-sent'), 2);
  assert.deepEqual(lastIface(router), { addresses: ['fe80::5efe:a00:1/64', '2001:db8:5e:1:0:5efe:a00:1/64'], routes: ['2001:db8:5e:1::/64'], mtu: 1280 });
});

test('host to host on the ISATAP prefix goes direct; other destinations go to the default router', () => {
  const { sim, h1, h2 } = world();
  sim.run(2000);
  sim.sent.length = 0;
  sim.fromStack(h1, echo('2001:db8:5e:1:0:5efe:a00:b', '2001:db8:5e:1:0:5efe:a00:c'));
  sim.fromStack(h1, echo('fe80::5efe:a00:b', 'fe80::5efe:a00:c', 2));
  sim.fromStack(h1, echo('2001:db8:5e:1:0:5efe:a00:b', '2001:db8:60::10', 3));
  assert.deepEqual(sim.sent.map((s) => s.dst), [H2, H2, ROUTER]);
  sim.run(10);
  assert.equal(h2.delivered.length, 2);
  assert.equal(h1.core.events.get('tx-direct'), 2);
  assert.equal(h1.core.events.get('tx-via-router'), 1);
});

test('router: forwards ISATAP-bound packets from the kernel to the embedded IPv4, delivers hosts’ packets up', () => {
  const { sim, router, h1 } = world();
  sim.run(2000);
  sim.fromStack(router, echo('2001:db8:60::10', '2001:db8:5e:1:0:5efe:a00:b'));
  sim.run(10);
  assert.equal(h1.delivered.length, 1, 'accepted: the router is in the PRL');
  sim.fromStack(h1, echo('2001:db8:5e:1:0:5efe:a00:b', '2001:db8:60::10'));
  sim.run(10);
  assert.equal(router.delivered.length, 1);
  sim.fromStack(router, echo('2001:db8:60::10', '2001:db8:99::1'));
  assert.equal(router.core.drops.get('not-on-link'), 1);
  sim.fromStack(router, echo('2001:db8:60::10', '2001:db8:5e:1:0:5efe:a00:1'));
  assert.equal(router.core.drops.get('bad-embedded-ipv4'), 1, 'never to itself');
});

test('router without --default-route: router lifetime 0, hosts send nothing off-link', () => {
  const { sim, h1 } = world({ defaultRoute: false });
  sim.run(2000);
  assert.deepEqual(lastIface(h1).routes, ['2001:db8:5e:1::/64']);
  sim.sent.length = 0;
  sim.fromStack(h1, echo('2001:db8:5e:1:0:5efe:a00:b', '2001:db8:60::10'));
  assert.equal(sim.sent.length, 0);
  assert.equal(h1.core.drops.get('no-default-router'), 1);
});

test('RFC 5214 §7.3: inner source must embed the outer source on an on-link prefix unless the sender is in the PRL', () => {
  const { sim, h1 } = world();
  sim.run(2000);
  const X = v4('10.0.0.99');
  const inject = (src: Ipv4, inner: Uint8Array): void => sim.inject(H1, encapsulate(src, H1, inner));
  inject(X, echo('2001:db8:5e:1:0:5efe:a00:63', '2001:db8:5e:1:0:5efe:a00:b'));
  assert.equal(h1.delivered.length, 1, 'a neighbour on the prefix');
  inject(X, echo('fe80::5efe:a00:63', 'fe80::5efe:a00:b'));
  assert.equal(h1.delivered.length, 2, 'a neighbour link-local');
  inject(X, echo('2001:db8:5e:1:0:5efe:a00:c', '2001:db8:5e:1:0:5efe:a00:b'));
  inject(X, echo('2001:db8:77::1', '2001:db8:5e:1:0:5efe:a00:b'));
  inject(X, echo('2001:db8:77::5efe:a00:63', '2001:db8:5e:1:0:5efe:a00:b'));
  assert.equal(h1.delivered.length, 2);
  assert.deepEqual(h1.core.drops.snapshot(), { 'source-ipv4-mismatch': 1, 'source-not-isatap': 1, 'source-not-on-link': 1 });
  inject(ROUTER, echo('2001:db8:77::1', '2001:db8:5e:1:0:5efe:a00:b'));
  assert.equal(h1.delivered.length, 3, 'from a PRL member: any source (forwarded by the router)');
});

test('advertisements: only from PRL members, hop limit 255, link-local source; solicitations ignored by hosts', () => {
  const { sim, h1 } = world();
  sim.run(2000);
  const ra = (hopLimit: number, src = 'fe80::5efe:a00:63'): Uint8Array =>
    buildIcmpv6Packet(v6(src), v6('fe80::5efe:a00:b'), { type: 'router-advertisement', curHopLimit: 64, managed: false, other: false, routerLifetime: 1800, reachableTime: 0, retransTimer: 0, options: [] }, hopLimit);
  sim.inject(H1, encapsulate(v4('10.0.0.99'), H1, ra(255)));
  sim.inject(H1, encapsulate(ROUTER, H1, ra(64, 'fe80::5efe:a00:1')));
  sim.inject(H1, encapsulate(ROUTER, H1, ra(255, '2001:db8:5e:1:0:5efe:a00:1')));
  sim.inject(H1, encapsulate(v4('10.0.0.99'), H1, buildIcmpv6Packet(v6('fe80::5efe:a00:63'), v6('fe80::5efe:a00:b'), { type: 'router-solicitation', options: [] })));
  assert.deepEqual(h1.core.drops.snapshot(), { 'ra-hop-limit': 1, 'ra-not-from-prl': 1, 'ra-source-not-link-local': 1, 'rs-on-host': 1 });
});

test('solicitations without an answer: 3 at 4 s (RFC 4861), then doubling with ±10 % jitter up to an hour (RFC 7559)', () => {
  const sim = new TunnelSim();
  sim.add('h1', H1, new IsatapHost({ local: H1, routers: [ROUTER] }, new SeededRng(7)));
  sim.start();
  sim.run(6 * 3600_000);
  const times = sim.lost.map((s) => s.at);
  assert.ok(times[0]! <= 1000, `first after at most 1 s, was ${times[0]}`);
  const gaps = times.slice(1).map((t, i) => t - times[i]!);
  assert.deepEqual(gaps.slice(0, 2), [4000, 4000]);
  let expected = 8000;
  for (const g of gaps.slice(2)) {
    assert.ok(g >= expected * 0.9 - 1 && g <= expected * 1.1 + 1, `gap ${g} vs ${expected}`);
    expected = Math.min(MAX_RTR_SOLICITATION_INTERVAL_MS, expected * 2);
  }
  assert.ok(gaps.at(-1)! >= MAX_RTR_SOLICITATION_INTERVAL_MS * 0.9, 'reaches the ceiling');
  assert.equal((sim.nodes.get(H1)!.core.status(sim.now) as { state: string }).state, 'soliciting');
});

test('lifetimes: the default route and the prefix go when the router stops answering', () => {
  const { sim, router, h1 } = world({ routerConfig: { routerLifetimeS: 300, validLifetimeS: 600, preferredLifetimeS: 300 } });
  sim.run(2000);
  assert.deepEqual(lastIface(h1).routes, ['2001:db8:5e:1::/64', '::/0']);
  sim.nodes.delete(ROUTER); // the router is gone
  void router;
  sim.run(301_000);
  assert.deepEqual(lastIface(h1).routes, ['2001:db8:5e:1::/64']);
  sim.run(300_000);
  assert.deepEqual(lastIface(h1), { addresses: ['fe80::5efe:a00:b/64'], routes: [], mtu: 1280 });
  assert.equal(h1.core.events.get('prefix-expired'), 1);
  assert.equal(h1.core.events.get('router-expired'), 1);
  assert.ok(sim.lost.filter((s) => s.from === 'h1').length >= 1, 'kept soliciting before expiry (refresh at half the lifetime)');
});

test('RFC 4862 §5.5.3 (e): an advertisement cannot cut a prefix’s valid lifetime below two hours', () => {
  const { sim, h1 } = world();
  sim.run(2000);
  const short = buildIcmpv6Packet(v6('fe80::5efe:a00:1'), v6('fe80::5efe:a00:b'), {
    type: 'router-advertisement', curHopLimit: 64, managed: false, other: false, routerLifetime: 1800, reachableTime: 0, retransTimer: 0,
    options: [{ type: 'prefix-information', prefixLength: 64, onLink: true, autonomous: true, validLifetime: 10, preferredLifetime: 5, prefix: PREFIX }],
  });
  sim.inject(H1, encapsulate(ROUTER, H1, short));
  const st = h1.core.status(sim.now) as { prefixes: { validS: number }[] };
  assert.equal(st.prefixes[0]!.validS, 7200);
  const withdraw = buildIcmpv6Packet(v6('fe80::5efe:a00:1'), v6('fe80::5efe:a00:b'), {
    type: 'router-advertisement', curHopLimit: 64, managed: false, other: false, routerLifetime: 0, reachableTime: 0, retransTimer: 0,
    options: [{ type: 'prefix-information', prefixLength: 64, onLink: true, autonomous: true, validLifetime: 0, preferredLifetime: 0, prefix: PREFIX }],
  });
  sim.inject(H1, encapsulate(ROUTER, H1, withdraw));
  assert.deepEqual(lastIface(h1), { addresses: ['fe80::5efe:a00:b/64'], routes: [], mtu: 1280 });
});

test('the PRL from a name: resolved at start, re-resolved every PrlRefreshInterval, failures retried and the PRL kept', () => {
  const sim = new TunnelSim();
  const R2 = v4('10.0.0.2');
  sim.add('router', ROUTER, new IsatapRouter({ local: ROUTER, prefixes: [PREFIX], defaultRoute: true }));
  sim.add('router2', R2, new IsatapRouter({ local: R2, prefixes: [v6('2001:db8:5e:2::')], defaultRoute: true }));
  const h1 = sim.add('h1', H1, new IsatapHost({ local: H1, routerName: 'isatap', prlRefreshMs: 3600_000 }, new SeededRng(3)));
  let answer: Ipv4[] | undefined = [ROUTER];
  sim.resolver = (name) => (name === 'isatap' ? answer : undefined);
  sim.start();
  sim.run(2000);
  assert.deepEqual(lastIface(h1).addresses, ['fe80::5efe:a00:b/64', '2001:db8:5e:1:0:5efe:a00:b/64']);
  answer = undefined;
  sim.run(3600_000);
  assert.equal(h1.resolves.length, 2);
  assert.deepEqual(lastIface(h1).addresses, ['fe80::5efe:a00:b/64', '2001:db8:5e:1:0:5efe:a00:b/64'], 'a failed lookup keeps the PRL');
  answer = [R2];
  sim.run(RESOLVE_RETRY_MS + 2000);
  assert.equal(h1.resolves.length, 3, 'retried after a minute');
  assert.deepEqual(lastIface(h1).addresses, ['fe80::5efe:a00:b/64', '2001:db8:5e:2:0:5efe:a00:b/64'], 'the old router and its prefix left with the name');
  assert.equal(h1.core.events.get('prl-removed'), 1);
  const st = h1.core.status(sim.now) as { prl: { router: string; source: string }[] };
  assert.deepEqual(st.prl.map((p) => [p.router, p.source]), [['10.0.0.2', 'dns']]);
});

test('router: solicitation checks and the radvd mode (solicitations up the tunnel, multicast RAs to recent solicitors)', () => {
  const sim = new TunnelSim();
  const router = sim.add('router', ROUTER, new IsatapRouter({ local: ROUTER, prefixes: [PREFIX], defaultRoute: true, advertiser: 'kernel' }));
  sim.start();
  const rs = (src: string, dst: string, hop = 255): Uint8Array => buildIcmpv6Packet(v6(src), v6(dst), { type: 'router-solicitation', options: [] }, hop);
  sim.inject(ROUTER, encapsulate(H1, ROUTER, rs('fe80::5efe:a00:b', 'fe80::5efe:a00:1', 64)));
  sim.inject(ROUTER, encapsulate(H1, ROUTER, rs('fe80::5efe:a00:b', 'fe80::5efe:a00:2')));
  sim.inject(ROUTER, encapsulate(H2, ROUTER, rs('fe80::5efe:a00:b', 'fe80::5efe:a00:1')));
  assert.deepEqual(router.core.drops.snapshot(), { 'rs-hop-limit': 1, 'rs-not-for-us': 1, 'source-ipv4-mismatch': 1 });
  sim.inject(ROUTER, encapsulate(H1, ROUTER, rs('fe80::5efe:a00:b', 'ff02::2')));
  assert.equal(router.delivered.length, 1, 'handed up to radvd');
  sim.inject(ROUTER, encapsulate(H1, ROUTER, rs('fe80::5efe:a00:b', 'ff02::2')));
  assert.equal(router.core.drops.get('rs-rate-limited'), 1, 'one answer per host per second');
  sim.run(1000);
  sim.inject(ROUTER, encapsulate(H1, ROUTER, rs('fe80::5efe:a00:b', 'ff02::2')));
  assert.equal(router.delivered.length, 2);
  const periodic = buildIcmpv6Packet(v6('fe80::5efe:a00:1'), v6('ff02::1'), (router.core as IsatapRouter).advertisement());
  sim.fromStack(router, periodic);
  assert.deepEqual(sim.lost.map((s) => s.dst), [H1], 'to the one recent solicitor');
  assert.equal(router.core.drops.get('multicast'), 0);
  sim.fromStack(router, echo('fe80::5efe:a00:1', 'ff02::1'));
  assert.equal(router.core.drops.get('multicast'), 1);
});

test('bad input from the network is counted, never thrown (random bytes and truncations)', () => {
  const { sim, router, h1 } = world();
  sim.run(2000);
  const rng = new SeededRng(99);
  const good = encapsulate(ROUTER, H1, echo('2001:db8:60::10', '2001:db8:5e:1:0:5efe:a00:b'));
  for (let i = 0; i < 2000; i++) {
    const len = rng.u32() % 120;
    const junk = new Uint8Array(len);
    rng.fill(junk);
    if (i % 2 === 0 && len >= 20) junk.set(good.subarray(0, 20)); // a valid outer header over junk
    if (i % 3 === 0) junk.set(good.subarray(0, Math.min(len, good.length)));
    sim.inject(H1, junk);
    sim.inject(ROUTER, junk);
    sim.fromStack(h1, junk);
    sim.fromStack(router, junk);
  }
  assert.ok(h1.core.drops.total() > 0 && router.core.drops.total() > 0);
  sim.inject(H1, encapsulate(ROUTER, H1, echo('2001:db8:60::10', '2001:db8:5e:1:0:5efe:a00:b'), 17));
  assert.ok(h1.core.drops.get('not-protocol-41') > 0);
});

test('bounded state: a name with many addresses, an advertisement with many prefixes', () => {
  const sim = new TunnelSim();
  const h1 = sim.add('h1', H1, new IsatapHost({ local: H1, routerName: 'isatap' }, new SeededRng(4)));
  sim.resolver = () => Array.from({ length: 40 }, (_, i) => v4(`10.0.1.${i + 1}`));
  sim.start();
  assert.equal((h1.core.status(sim.now) as { prl: unknown[] }).prl.length, MAX_PRL);
  assert.equal(h1.core.drops.get('prl-full'), 40 - MAX_PRL);
  const many = buildIcmpv6Packet(v6('fe80::5efe:a00:101'), v6('fe80::5efe:a00:b'), {
    type: 'router-advertisement', curHopLimit: 64, managed: false, other: false, routerLifetime: 0, reachableTime: 0, retransTimer: 0,
    options: Array.from({ length: 20 }, (_, i) => ({ type: 'prefix-information' as const, prefixLength: 64, onLink: true, autonomous: true, validLifetime: 600, preferredLifetime: 600, prefix: v6(`2001:db8:${i + 1}::`) })),
  });
  sim.inject(H1, encapsulate(v4('10.0.1.1'), H1, many));
  assert.equal((h1.core.status(sim.now) as { prefixes: unknown[] }).prefixes.length, MAX_PREFIXES);
  assert.equal(h1.core.drops.get('prefix-table-full'), 20 - MAX_PREFIXES);
});

test('the white paper’s ISATAP examples: fe80::5efe:10.40.1.29, 2001:db8:0:7:0:5efe:192.168.47.99, 2001:db8:0:7:200:5efe:131.107.71.209', () => {
  assert.equal(formatIpv6(new IsatapHost({ local: v4('10.40.1.29') }, new SeededRng(1)).linkLocal), formatIpv6(v6('fe80::5efe:10.40.1.29')));
  const sim = new TunnelSim();
  const R = v4('192.168.39.1');
  sim.add('router', R, new IsatapRouter({ local: R, prefixes: [v6('2001:db8:0:7::')], defaultRoute: true }));
  const a = sim.add('a', v4('192.168.47.99'), new IsatapHost({ local: v4('192.168.47.99'), routers: [R] }, new SeededRng(1)));
  const b = sim.add('b', v4('131.107.71.209'), new IsatapHost({ local: v4('131.107.71.209'), routers: [R] }, new SeededRng(2)));
  sim.start();
  sim.run(2000);
  assert.equal(lastIface(a).addresses[1], `${formatIpv6(v6('2001:db8:0:7:0:5efe:192.168.47.99'))}/64`);
  assert.equal(lastIface(b).addresses[1], `${formatIpv6(v6('2001:db8:0:7:200:5efe:131.107.71.209'))}/64`);
  assert.equal(lastIface(b).addresses[1], '2001:db8:0:7:200:5efe:836b:47d1/64');
});
