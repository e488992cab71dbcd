import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clientStateJson, clientStatsJson, relayStateJson, relayStatsJson, serverStateJson, serverStatsJson } from '../../src/io/control.js';
import { escapeLabelValue, MetricsServer, metricsText, renderFamilies } from '../../src/io/metrics.js';
import { TapHub } from '../../src/io/tap.js';
import { runQualify } from '../../src/sim/qualify.js';
import { TeredoRelay } from '../../src/teredo/relay.js';
import { SeededRng } from '../../src/core/rng.js';
import { parseExposition } from './exposition.js';

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
