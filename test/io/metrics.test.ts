import { connect } from 'node:net';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clientStateJson, clientStatsJson, relayStateJson, relayStatsJson, serverStateJson, serverStatsJson } from '../../src/io/control.js';
import { escapeLabelValue, MetricsServer, metricsText, renderFamilies } from '../../src/io/metrics.js';
import { TapHub } from '../../src/io/tap.js';
import { runQualify } from '../../src/sim/qualify.js';
import { TeredoRelay } from '../../src/teredo/relay.js';
import { SeededRng } from '../../src/core/rng.js';
import { parseExposition } from './exposition.js';
import { IsatapHost } from '../../src/isatap/host.js';
import { IsatapRouter } from '../../src/isatap/router.js';
import { SixToFour } from '../../src/sixtofour/node.js';
import { parseIpv4, parseIpv6 } from '../../src/wire/ip.js';
import { createLogger } from '../../src/io/log.js';
import { PortProxy } from '../../src/io/portproxy/proxy.js';
import { parseRuleArgs, ruleFromSpec } from '../../src/portproxy/rules.js';
import { encapsulate, TunnelSim, type SimNode } from '../isatap/sim.js';
import { backend, dial, echo, freePort, until } from '../portproxy/helpers.js';
import type { TunnelMetricsInput } from '../../src/io/metrics.js';

const traffic = new TapHub().counts();

function value(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const f of parseExposition(text).values()) {
    for (const s of f.samples) if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) return s.value;
  }
  return undefined;
}

test('client metrics from a simulated qualification: valid exposition text with state, NAT type, RS/RA, drops', () => {
  const r = runQualify({ nat: 'port-restricted' });
  const state = clientStateJson(r.client.status(), { now: r.endedAt, startedAt: 0 });
  const stats = clientStatsJson(r.client, { io: { rxPackets: 7, 'tx:EMSGSIZE': 1 } });
  const text = metricsText({ role: 'client', version: '0.1.0', state, stats, traffic });
  const fams = parseExposition(text);
  for (const f of fams.values()) {
    assert.ok(f.help.length > 0, `${f.name} has HELP`);
    assert.ok(f.type === 'gauge' || f.type === 'counter', `${f.name} has TYPE`);
  }
  assert.equal(value(text, 'transit6_state', { state: 'qualified' }), 1);
  assert.equal(value(text, 'transit6_state', { state: 'probe' }), 0);
  assert.equal(value(text, 'transit6_qualified'), 1);
  assert.equal(value(text, 'transit6_nat_type', { type: 'port-restricted' }), 1);
  assert.equal(value(text, 'transit6_nat_type', { type: 'cone' }), 0);
  assert.equal(value(text, 'transit6_router_solicitations_total'), r.client.events.get('router-solicitations'));
  assert.equal(value(text, 'transit6_router_advertisements_total'), r.client.events.get('router-advertisements'));
  assert.equal(value(text, 'transit6_qualifications_total'), 1);
  assert.equal(value(text, 'transit6_peers'), 0);
  assert.equal(value(text, 'transit6_queue_bytes'), 0);
  assert.equal(value(text, 'transit6_io_total', { counter: 'tx:EMSGSIZE' }), 1);
  assert.equal(value(text, 'transit6_packets_total', { side: 'udp', direction: 'in' }), 0);
  assert.equal(value(text, 'transit6_info', { role: 'client', version: '0.1.0' }), 1);
  // Exactly one state and one NAT type are 1.
  const ones = (name: string) => fams.get(name)!.samples.filter((s) => s.value === 1).length;
  assert.equal(ones('transit6_state'), 1);
  assert.equal(ones('transit6_nat_type'), 1);
});

test('relay and server metrics: peers, queue, bubbles, drops by reason, RS/RA on the server only', () => {
  const relay = new TeredoRelay({ local: { addr: 0xc6336411, port: 3545 } }, new SeededRng(1));
  relay.handleDatagram(0, { addr: 0xcb007101, port: 4000 }, { addr: 0xc6336411, port: 3545 }, new Uint8Array([1, 2, 3]));
  const rtext = metricsText({
    role: 'relay',
    version: '0.1.0',
    state: relayStateJson(relay.peers, { relayType: 'cone', now: 1000, startedAt: 0 }),
    stats: relayStatsJson(relay.stats()),
    traffic,
  });
  parseExposition(rtext);
  assert.equal(value(rtext, 'transit6_state', { state: 'online' }), 1);
  assert.equal(value(rtext, 'transit6_peers_trusted'), 0);
  assert.equal(value(rtext, 'transit6_router_solicitations_total'), undefined);
  const drops = parseExposition(rtext).get('transit6_drops_total')!.samples;
  assert.equal(drops.reduce((a, s) => a + s.value, 0), 1, rtext);
  const r = runQualify({ nat: 'full-cone' });
  const stext = metricsText({
    role: 'server',
    version: '0.1.0',
    state: serverStateJson({ primary: 0xc6336401, secondary: 0xc6336402 }, r.server.stats()),
    stats: serverStatsJson(r.server.stats()),
    traffic,
  });
  parseExposition(stext);
  assert.equal(value(stext, 'transit6_router_solicitations_total'), r.server.stats().events['router-solicitations']);
  assert.ok(value(stext, 'transit6_router_advertisements_total')! >= 3);
  assert.equal(value(stext, 'transit6_peers'), undefined);
});

test('label values and HELP are escaped; the checker refuses what would break a scrape', () => {
  assert.equal(escapeLabelValue('a"b\\c\nd'), 'a\\"b\\\\c\\nd');
  const text = renderFamilies([{ name: 't_total', type: 'counter', help: 'with \\ and\nnewline', samples: [{ labels: { reason: 'we"ird\\re\nason' }, value: 3 }] }]);
  const f = parseExposition(text).get('t_total')!;
  assert.equal(f.samples[0]!.labels.reason, 'we"ird\\re\nason');
  assert.equal(text.split('\n').length, 4); // HELP, TYPE, one sample: the newlines are escaped
  assert.throws(() => parseExposition('x 1\n'), /before its TYPE/);
  assert.throws(() => parseExposition('# TYPE x_total counter\nx_total{a="b"c"} 1\n'), /expected ',' or '}'/);
  assert.throws(() => parseExposition('# TYPE x gauge\nx 1\nx 2\n'), /twice/);
  assert.throws(() => parseExposition('# TYPE x counter\nx 1\n'), /_total/);
  assert.throws(() => parseExposition('# TYPE x gauge\nx one\n'), /not a number/);
  assert.throws(() => parseExposition('# TYPE x gauge\nx 1'), /newline/);
  assert.throws(() => parseExposition('# TYPE x gauge\nx{a="\\q"} 1\n'), /bad escape/);
  assert.throws(() => parseExposition('# TYPE x gauge\n# TYPE y gauge\nx 1\ny 1\nx{a="b"} 2\n'), /contiguous/);
});

test('MetricsServer: GET /metrics with the 0.0.4 content type, HEAD, 404 and 405', async () => {
  let n = 0;
  const server = new MetricsServer(() => `# HELP a_total A.\n# TYPE a_total counter\na_total ${++n}\n`);
  const at = await server.listen('127.0.0.1', 0);
  try {
    const base = `http://127.0.0.1:${at.port}`;
    const r = await fetch(`${base}/metrics`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    assert.equal(value(await r.text(), 'a_total'), 1);
    assert.equal(value(await (await fetch(`${base}/metrics?x=1`)).text(), 'a_total'), 2);
    assert.equal((await fetch(`${base}/metrics`, { method: 'HEAD' })).status, 200);
    assert.equal((await fetch(`${base}/nope`)).status, 404);
    assert.equal((await fetch(`${base}/metrics`, { method: 'POST' })).status, 405);
  } finally {
    await server.close();
  }
});

test('MetricsServer: a port in use is an error at listen, not later', async () => {
  const a = new MetricsServer(() => '');
  const at = await a.listen('127.0.0.1', 0);
  try {
    await assert.rejects(new MetricsServer(() => '').listen('127.0.0.1', at.port), /EADDRINUSE/);
  } finally {
    await a.close();
  }
});

/** A tunnel daemon's metrics input as src/io/proto41.ts builds it (its state and stats answers) from a simulated core. */
function tunnelInput(node: SimNode, now: number, traffic = { 'ipv4-in': { packets: 3, bytes: 300 }, 'ipv4-out': { packets: 2, bytes: 200 }, 'tun-in': { packets: 1, bytes: 80 }, 'tun-out': { packets: 0, bytes: 0 } }): TunnelMetricsInput {
  const state: Record<string, unknown> = { ...node.core.status(now), interfaceStatus: 'up', uptimeMs: now };
  return {
    role: state.role as TunnelMetricsInput['role'],
    version: '0.1.0',
    state,
    stats: { events: node.core.events.snapshot(), drops: node.core.drops.snapshot(), io: { 'rx-packets': 3, 'tx:ENETUNREACH': 1 } },
    traffic,
  };
}

test('ISATAP host and router metrics from a simulated exchange: state, PRL, prefixes, RS/RA each way, traffic by side', () => {
  const ROUTER = parseIpv4('10.0.0.1')!;
  const H1 = parseIpv4('10.0.0.11')!;
  const sim = new TunnelSim();
  const router = sim.add('router', ROUTER, new IsatapRouter({ local: ROUTER, prefixes: [parseIpv6('2001:db8:5e:1::')!], defaultRoute: true }));
  const h1 = sim.add('h1', H1, new IsatapHost({ local: H1, routers: [ROUTER] }, new SeededRng(1)));
  sim.start();
  sim.run(3000);
  const htext = metricsText(tunnelInput(h1, sim.now));
  const hf = parseExposition(htext);
  assert.equal(value(htext, 'transit6_info', { role: 'isatap-host', version: '0.1.0' }), 1);
  assert.equal(value(htext, 'transit6_state', { state: 'configured' }), 1);
  assert.equal(value(htext, 'transit6_state', { state: 'soliciting' }), 0);
  assert.equal(hf.get('transit6_state')!.samples.filter((x) => x.value === 1).length, 1);
  assert.equal(value(htext, 'transit6_interface_status', { status: 'up' }), 1);
  assert.equal(value(htext, 'transit6_routers'), 1);
  assert.equal(value(htext, 'transit6_prefixes'), 1);
  assert.equal(value(htext, 'transit6_default_router'), 1);
  const rs = h1.core.events.get('rs-sent');
  assert.ok(rs >= 1);
  assert.equal(value(htext, 'transit6_router_solicitations_total'), rs);
  assert.equal(value(htext, 'transit6_router_advertisements_total'), h1.core.events.get('ra-received'));
  assert.equal(value(htext, 'transit6_events_total', { event: 'rs-sent' }), undefined, 'RS/RA have their own families');
  assert.equal(value(htext, 'transit6_packets_total', { side: 'ipv4', direction: 'in' }), 3);
  assert.equal(value(htext, 'transit6_bytes_total', { side: 'tun', direction: 'in' }), 80);
  assert.equal(value(htext, 'transit6_io_total', { counter: 'tx:ENETUNREACH' }), 1);
  assert.equal(value(htext, 'transit6_uptime_seconds'), 3);

  const rtext = metricsText(tunnelInput(router, sim.now));
  parseExposition(rtext);
  assert.equal(value(rtext, 'transit6_state', { state: 'advertising' }), 1);
  assert.equal(value(rtext, 'transit6_router_solicitations_total'), rs, 'every solicitation reached the router');
  assert.equal(value(rtext, 'transit6_router_advertisements_total'), router.core.events.get('ra-sent'));
  assert.ok(value(rtext, 'transit6_router_advertisements_total')! >= 1);
  assert.equal(value(rtext, 'transit6_solicitors'), 1);
  assert.equal(value(rtext, 'transit6_routers'), undefined);
});

test('6to4 metrics: drops by reason move with a bad packet, no RS/RA families', () => {
  const HOST = parseIpv4('198.51.100.10')!;
  const sim = new TunnelSim();
  const host = sim.add('host', HOST, new SixToFour({ mode: 'host', locals: [HOST] }));
  sim.start();
  const before = metricsText(tunnelInput(host, sim.now));
  const dropsOf = (t: string): number => (parseExposition(t).get('transit6_drops_total')?.samples ?? []).reduce((a, x) => a + x.value, 0);
  // An IPv6 packet too short to be one, from a public sender.
  sim.inject(HOST, encapsulate(parseIpv4('203.0.113.9')!, HOST, new Uint8Array([0x60, 0, 0])));
  const after = metricsText(tunnelInput(host, sim.now));
  assert.equal(value(after, 'transit6_info', { role: '6to4-host' }), 1);
  assert.equal(value(after, 'transit6_state', { state: 'up' }), 1);
  assert.equal(dropsOf(after), dropsOf(before) + 1, after);
  assert.equal(value(after, 'transit6_router_solicitations_total'), undefined);
  assert.equal(value(after, 'transit6_prefixes'), undefined);
});

test('port proxy metrics over a live loopback proxy: accepted, refused by limit, active, bytes each way while open and after, errors by reason', async () => {
  const quiet = createLogger('metrics-test', { level: 'error', write: () => undefined });
  const be = await backend('127.0.0.1', echo);
  const p = new PortProxy({ log: quiet, retryMs: 0 });
  try {
    const port = await freePort('127.0.0.1');
    const deadPort = await freePort('127.0.0.1');
    const deadListen = await freePort('127.0.0.1');
    const rule = (listen: number, target: number, extra: string[] = []) =>
      ruleFromSpec(parseRuleArgs('add', 'v4tov4', [`listenport=${listen}`, 'listenaddress=127.0.0.1', 'connectaddress=127.0.0.1', `connectport=${target}`, ...extra]));
    assert.deepEqual((await p.apply([rule(port, be.port, ['limit=1']), rule(deadListen, deadPort)])).failed, []);
    const scrape = (): string => metricsText({ role: 'portproxy', version: '0.1.0', uptimeMs: 1500, listeners: p.stats() });
    const live = { mode: 'v4tov4', listen: `127.0.0.1:${port}`, target: `127.0.0.1:${be.port}` };
    const c = await dial('127.0.0.1', port);
    const echoed = new Promise<void>((resolve) => {
      let n = 0;
      c.on('data', (d: Buffer) => {
        n += d.length;
        if (n >= 5) resolve();
      });
    });
    c.write('hello');
    await echoed;
    let t = scrape();
    parseExposition(t);
    assert.equal(value(t, 'transit6_portproxy_rules'), 2);
    assert.equal(value(t, 'transit6_portproxy_listening', live), 1);
    assert.equal(value(t, 'transit6_portproxy_connections_accepted_total', live), 1);
    assert.equal(value(t, 'transit6_portproxy_connections_active', live), 1);
    assert.equal(value(t, 'transit6_portproxy_bytes_total', { ...live, direction: 'to_target' }), 5, 'bytes of an open connection count');
    assert.equal(value(t, 'transit6_portproxy_bytes_total', { ...live, direction: 'to_client' }), 5);
    // Over the limit of 1: refused.
    const closed = (at: number): Promise<void> =>
      new Promise<void>((resolve) => connect({ host: '127.0.0.1', port: at }).on('error', () => undefined).once('close', () => resolve()));
    await closed(port);
    // A target nobody listens on: an error.
    await closed(deadListen);
    c.end();
    await until(() => p.stats()[0]!.active === 0 && (p.stats()[1]!.counters['connect-failed'] ?? 0) === 1, 'the connections to close');
    t = scrape();
    parseExposition(t);
    assert.equal(value(t, 'transit6_portproxy_connections_refused_total', { ...live, reason: 'limit' }), 1);
    assert.equal(value(t, 'transit6_portproxy_connections_refused_total', { ...live, reason: 'acl' }), 0);
    assert.equal(value(t, 'transit6_portproxy_connections_active', live), 0);
    assert.equal(value(t, 'transit6_portproxy_bytes_total', { ...live, direction: 'to_target' }), 5, 'still 5 once closed: counted once');
    assert.equal(value(t, 'transit6_portproxy_errors_total', { listen: `127.0.0.1:${deadListen}`, reason: 'connect-failed' }), 1);
    assert.equal(value(t, 'transit6_portproxy_errors_total', { ...live, reason: 'connect-failed' }), 0);
    assert.equal(value(t, 'transit6_info', { role: 'portproxy' }), 1);
    assert.equal(value(t, 'transit6_uptime_seconds'), 1.5);
  } finally {
    await p.close();
    await be.close();
  }
});
