/**
 * 6to4 in the namespace lab (root only; src/lab/proto41-topology.ts): our 6to4 router with a LAN (radvd advertising
 * 2002:c633:6402:1::/64), our 6to4 host elsewhere on the IPv4 "Internet", our relay in front of a native IPv6 host.
 *   1. the LAN host autoconfigures from radvd's advertisements; the 6to4 host has 2002:cb00:7102::cb00:7102;
 *   2. the 6to4 host and the router's LAN talk across the IPv4 Internet (ping both ways, TCP);
 *   3. the 6to4 site (LAN host, 6to4 host) reaches the native IPv6 host through our relay and back (ping, TCP);
 *   4. a protocol-41 packet whose 6to4 source does not embed its outer source is dropped and counted (in `show
 *      state` and in the router's --metrics, scraped inside its namespace);
 *   5. tshark decodes every packet on the Internet and on the LAN cleanly (IPv6 in IPv4, RA).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ManagedProcess } from '../../src/lab/exec.js';
import { installCleanupHandlers, Lab } from '../../src/lab/netns.js';
import { ping } from '../../src/lab/probe.js';
import {
  buildSixToFourLab,
  countFrames,
  decodeProblems,
  haveCommand,
  sleep,
  startCapture,
  startTransit6,
  tcpTransfer,
  TRANSFER_PORT,
  tunnelShow,
  waitFor,
} from '../../src/lab/proto41-topology.js';
import { buildIcmpv6Packet } from '../../src/wire/icmpv6.js';
import { parseIpv6 } from '../../src/wire/ip.js';
import { sampleValue, scrapeMetrics, skipUnlessRoot } from './helpers.js';

installCleanupHandlers();

type State = Record<string, unknown> & { interfaceStatus?: string; events?: Record<string, number>; drops?: Record<string, number> };

const NATIVE_MODULE = new URL('../../src/io/native.js', import.meta.url).href;

async function up(lab: Lab, ns: string): Promise<State | undefined> {
  const s = (await tunnelShow(lab, ns, '6to4', 'state')) as State | undefined;
  return s && s.interfaceStatus === 'up' ? s : undefined;
}

/** The LAN host's autoconfigured 2002:c633:6402:1::/64 address, once radvd's advertisement has been processed. */
async function lanAddress(lab: Lab, ns: string): Promise<string | undefined> {
  const out = (await lab.exec(ns, 'ip', ['-6', '-o', 'addr', 'show', 'dev', 'eth0', 'scope', 'global'])).stdout;
  const m = /inet6 (2002:c633:6402:1:[0-9a-f:]+)\/64/.exec(out);
  if (!m) return undefined;
  const routes = (await lab.exec(ns, 'ip', ['-6', 'route', 'show', 'default'])).stdout;
  return /default via fe80::/.test(routes) ? m[1] : undefined;
}

test('6to4: router with a LAN (radvd), host, relay and a native IPv6 host', async (t) => {
  if (skipUnlessRoot(t)) return;
  if (!haveCommand('tshark', ['-v']) || !haveCommand('dumpcap', ['-v']) || !haveCommand('socat', ['-V']) || !haveCommand('radvd', ['-v'])) {
    t.skip('tshark/dumpcap/socat/radvd missing: run scripts/install-deps.sh');
    return;
  }
  const lab = new Lab();
  const procs: ManagedProcess[] = [];
  try {
    const topo = await buildSixToFourLab(lab);
    const inetCap = await startCapture(lab, topo.inet, 'any', 'inet');
    const lanCap = await startCapture(lab, topo.lanHost.ns, 'eth0', 'lan');
    procs.push(startTransit6(lab, topo.relay.ns, 'relay', ['6to4', 'relay', '--local', topo.relay.ipv4]));
    procs.push(startTransit6(lab, topo.router.ns, 'router', ['6to4', 'router', '--lan', topo.router.lanIface, '--subnet', '1', '--relay', topo.relay.ipv4, '--ra-interval', '4', '--metrics', '127.0.0.1:9546']));
    // The host finds its public address itself (203.0.113.2, its only IPv4 address).
    procs.push(startTransit6(lab, topo.host.ns, 'host', ['6to4', 'host', '--relay', topo.relay.ipv4]));
    const relayState = await waitFor('relay up', () => up(lab, topo.relay.ns), 15_000, procs);
    const routerState = await waitFor('router up', () => up(lab, topo.router.ns), 15_000, procs);
    const hostState = await waitFor('host up', () => up(lab, topo.host.ns), 15_000, procs);
    const lanAddr = await waitFor('LAN host autoconfigured from radvd', () => lanAddress(lab, topo.lanHost.ns), 30_000, procs);

    await t.test('1: addresses: 2002:WWXX:YYZZ::WWXX:YYZZ, the LAN /64 from radvd, the white paper’s routes', async () => {
      const routes = (await lab.exec(topo.router.ns, 'ip', ['-6', 'route', 'show', 'dev', 'tun6to4'])).stdout;
      assert.match(routes, /^2002::\/16 /m);
      assert.match(routes, /^default via 2002:c633:6412:: /m, 'default via the relay’s 6to4 address');
      assert.deepEqual(hostState.addresses, [topo.host.address]);
      assert.deepEqual(routerState.addresses, ['2002:c633:6402::c633:6402']);
      assert.equal(routerState.lanPrefix, '2002:c633:6402:1::/64');
      assert.equal(relayState.mode, 'relay');
      assert.equal(hostState.dataPlane, 'user space (raw protocol 41)');
      assert.match(lanAddr, /^2002:c633:6402:1:/);
    });
    await t.test('2: the 6to4 host and the router’s LAN talk across the IPv4 Internet', async () => {
      assert.ok(await ping(lab, topo.host.ns, lanAddr, { count: 3 }), `host -> ${lanAddr}`);
      assert.ok(await ping(lab, topo.lanHost.ns, topo.host.address, { count: 3 }), 'LAN host -> 6to4 host');
      assert.ok(await ping(lab, topo.host.ns, '2002:c633:6402::c633:6402', { count: 2 }), 'host -> router');
      const server = lab.spawn(topo.lanHost.ns, 'socat-lan', 'socat', ['-T', '10', 'TCP6-LISTEN:7001,reuseaddr', 'SYSTEM:echo sixtofour-site-ok']);
      procs.push(server);
      await sleep(300);
      const r = await lab.exec(topo.host.ns, 'socat', ['-T', '10', '-', `TCP6:[${lanAddr}]:7001`], { input: '' });
      assert.match(r.stdout, /sixtofour-site-ok/);
      const e = ((await tunnelShow(lab, topo.host.ns, '6to4', 'state')) as State).events ?? {};
      assert.ok((e['tx-direct'] ?? 0) > 0, JSON.stringify(e));
    });
    await t.test('3: the 6to4 site reaches the native IPv6 host through our relay and back', async () => {
      assert.ok(await ping(lab, topo.lanHost.ns, topo.v6host.ipv6, { count: 3 }), 'LAN host -> native host');
      assert.ok(await ping(lab, topo.host.ns, topo.v6host.ipv6, { count: 3 }), '6to4 host -> native host');
      assert.ok(await ping(lab, topo.v6host.ns, topo.host.address, { count: 2 }), 'native host -> 6to4 host');
      const server = lab.spawn(topo.v6host.ns, 'socat-v6', 'socat', ['-T', '10', 'TCP6-LISTEN:7002,reuseaddr', 'SYSTEM:echo native-via-relay-ok']);
      procs.push(server);
      await sleep(300);
      const r = await lab.exec(topo.lanHost.ns, 'socat', ['-T', '10', '-', `TCP6:[${topo.v6host.ipv6}]:7002`], { input: '' });
      assert.match(r.stdout, /native-via-relay-ok/);
      const rs = ((await tunnelShow(lab, topo.relay.ns, '6to4', 'state')) as State).events ?? {};
      assert.ok((rs['rx-packets'] ?? 0) > 0 && (rs['tx-direct'] ?? 0) > 0, JSON.stringify(rs));
      const hs = ((await tunnelShow(lab, topo.router.ns, '6to4', 'state')) as State).events ?? {};
      assert.ok((hs['tx-via-relay'] ?? 0) > 0 && (hs['rx-native-via-relay'] ?? 0) > 0, JSON.stringify(hs));
      // 16 MiB LAN host -> router -> relay -> native host (two user-space hops): intact; the rate is a diagnostic.
      const x = await tcpTransfer(lab, topo.lanHost.ns, topo.v6host.ns, topo.v6host.ipv6, TRANSFER_PORT, 16);
      assert.ok(x.intact, '16 MiB arrived intact');
      t.diagnostic(`TCP LAN host -> 6to4 router -> relay -> native host: 16 MiB in ${x.ms.toFixed(0)} ms, ${x.mbitPerS.toFixed(0)} Mbit/s`);
    });
    await t.test('4: a 6to4 source that does not embed the outer source is dropped (RFC 3056 §9)', async () => {
      const before = ((await tunnelShow(lab, topo.router.ns, '6to4', 'state')) as State).drops?.['source-ipv4-mismatch'] ?? 0;
      const dropped = async (): Promise<number> => sampleValue(await scrapeMetrics(lab, topo.router.ns, '127.0.0.1:9546'), 'transit6_drops_total', { reason: 'source-ipv4-mismatch' }) ?? 0;
      const m0 = await dropped();
      // From 203.0.113.2, an inner source claiming 203.0.113.3's site.
      const spoof = buildIcmpv6Packet(parseIpv6('2002:cb00:7103::cb00:7103')!, parseIpv6('2002:c633:6402::c633:6402')!, { type: 'echo-request', identifier: 7, sequence: 1, data: new Uint8Array(8) });
      const hex = Buffer.from(spoof).toString('hex');
      const script = `import { loadNative } from '${NATIVE_MODULE}'; const n = loadNative(); const fd = n.rawOpen(4, 41); const p = Buffer.from('${hex}', 'hex'); for (let i = 0; i < 3; i++) { const r = n.rawSend(fd, p, 0, p.length, 0xc6336402); if (r < 0) throw new Error('rawSend ' + r); }`;
      await lab.exec(topo.host.ns, process.execPath, ['--input-type=module', '-e', script]);
      const after = await waitFor('the drop counted', async () => {
        const d = ((await tunnelShow(lab, topo.router.ns, '6to4', 'state')) as State).drops?.['source-ipv4-mismatch'] ?? 0;
        return d >= before + 3 ? d : undefined;
      }, 5000, procs);
      assert.equal(after, before + 3);
      assert.equal(await dropped(), m0 + 3, 'the metrics count the same drops');
    });
    await inetCap.stop();
    await lanCap.stop();
    await t.test('5: tshark decodes every packet cleanly: IPv6 in IPv4 on the Internet, RAs on the LAN', () => {
      assert.deepEqual(decodeProblems(inetCap.path), []);
      assert.deepEqual(decodeProblems(lanCap.path), []);
      assert.ok(countFrames(inetCap.path, 'ip.proto == 41 && ipv6.src == 2002:cb00:7102::cb00:7102') >= 3, '6to4 host traffic');
      assert.ok(countFrames(inetCap.path, `ip.proto == 41 && ip.src == ${topo.relay.ipv4} && ipv6.src == ${topo.v6host.ipv6}`) >= 3, 'relay to the site');
      assert.ok(countFrames(inetCap.path, 'ip.proto == 41 && tcp') >= 3, 'TCP in protocol 41');
      assert.equal(countFrames(inetCap.path, 'ip.proto == 41 && !ipv6'), 0);
      assert.ok(countFrames(lanCap.path, 'icmpv6.type == 134 && icmpv6.opt.prefix == 2002:c633:6402:1::') >= 1, 'radvd advertisements with the 6to4 /64');
    });
  } finally {
    await lab.destroy();
  }
});
