/**
 * ISATAP in the namespace lab (root only; src/lab/proto41-topology.ts): our router on an IPv4 intranet with a native
 * IPv6 segment behind it, two of our hosts (one finds the router by the name "isatap" through a hosts file and the
 * search domain, one with --router ADDR).
 *   1. both hosts get the advertised prefix's address (prefix + ::5efe:w.x.y.z) and a default route;
 *   2. host to host goes direct: the router forwards none of it;
 *   3. a host reaches the native IPv6 host through the router: ping and a TCP exchange (socat);
 *   5. radvd as the advertisement source on the router's tunnel interface (--advertiser radvd, UnicastOnly);
 *   6. tshark decodes every packet on the intranet cleanly: IPv6 in IPv4 protocol 41, RS and RA included;
 *      and host 1's own --pcap files (its protocol-41 side and its tunnel side) with no malformed frame.
 * Host 1 also serves --metrics inside its namespace: test 2 scrapes it around a ping.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ManagedProcess } from '../../src/lab/exec.js';
import { installCleanupHandlers, Lab } from '../../src/lab/netns.js';
import { ping } from '../../src/lab/probe.js';
import {
  buildIsatapLab,
  countFrames,
  decodeProblems,
  haveCommand,
  ISATAP_PREFIX,
  startCapture,
  startTransit6,
  tcpTransfer,
  TRANSFER_PORT,
  tunnelShow,
  waitFor,
} from '../../src/lab/proto41-topology.js';
import { sampleValue, scrapeMetrics, skipUnlessRoot } from './helpers.js';
import { fakeNotifySocket, type FakeNotifySocket } from '../io/fake-notify.js';

installCleanupHandlers();

type State = Record<string, unknown> & { state?: string; interfaceStatus?: string; prefixes?: { address: string | null }[]; events?: Record<string, number>; drops?: Record<string, number> };

async function configured(lab: Lab, ns: string): Promise<State | undefined> {
  const s = (await tunnelShow(lab, ns, 'isatap', 'state')) as State | undefined;
  if (!s || s.state !== 'configured' || s.interfaceStatus !== 'up' || !s.defaultRouter || (s.prefixes ?? []).length === 0) return undefined;
  return s;
}

test('ISATAP: our router and two hosts on an intranet, a native IPv6 host behind the router', async (t) => {
  if (skipUnlessRoot(t)) return;
  if (!haveCommand('tshark', ['-v']) || !haveCommand('dumpcap', ['-v']) || !haveCommand('socat', ['-V']) || !haveCommand('radvd', ['-v'])) {
    t.skip('tshark/dumpcap/socat/radvd missing: run scripts/install-deps.sh');
    return;
  }
  const lab = new Lab();
  const procs: ManagedProcess[] = [];
  let notify: FakeNotifySocket | undefined;
  try {
    const topo = await buildIsatapLab(lab);
    const [h1, h2] = topo.hosts as [{ ns: string; ipv4: string }, { ns: string; ipv4: string }];
    const hosts = join(lab.runDir, 'hosts');
    const resolv = join(lab.runDir, 'resolv.conf');
    writeFileSync(hosts, `127.0.0.1 localhost\n${topo.router.ipv4} isatap.corp.example\n`);
    writeFileSync(resolv, 'search corp.example\nnameserver 127.0.0.1\n');
    const capture = await startCapture(lab, lab.nsName('isa-lan'), 'br0', 'isatap');
    procs.push(startTransit6(lab, topo.router.ns, 'router', ['isatap', 'router', '--local', topo.router.ipv4, '--prefix', `${ISATAP_PREFIX}/64`, '--default-route']));
    await waitFor('the router', () => tunnelShow(lab, topo.router.ns, 'isatap', 'state'), 15_000, procs);
    const h1Pcap = join(lab.runDir, 'h1');
    procs.push(startTransit6(lab, h1.ns, 'host', ['isatap', 'host', '--hosts-file', hosts, '--resolv-conf', resolv, '--metrics', '127.0.0.1:9545', '--pcap', h1Pcap, '--log-level', 'debug']));
    procs.push(startTransit6(lab, h2.ns, 'host', ['isatap', 'host', '--router', topo.router.ipv4]));
    const s1 = await waitFor('host 1 configured', () => configured(lab, h1.ns), 20_000, procs);
    const s2 = await waitFor('host 2 configured', () => configured(lab, h2.ns), 20_000, procs);
    const a1 = `${ISATAP_PREFIX}5efe:${h1.ipv4}`;
    const a2 = `${ISATAP_PREFIX}5efe:${h2.ipv4}`;
    await t.test('1: both hosts have prefix + ::5efe:w.x.y.z, the link-local ISATAP address and a default route', async () => {
      assert.equal(s1.routerName, 'isatap');
      assert.equal(s1.linkLocal, 'fe80::5efe:a14:b');
      assert.deepEqual(s1.prefixes!.map((p) => p.address), ['2001:db8:5e:1:0:5efe:a14:b']);
      assert.deepEqual(s2.prefixes!.map((p) => p.address), ['2001:db8:5e:1:0:5efe:a14:c']);
      assert.equal(s1.dataPlane, 'user space (raw protocol 41)');
      const addrs = (await lab.exec(h1.ns, 'ip', ['-6', 'addr', 'show', 'dev', 'isatap0'])).stdout;
      assert.match(addrs, /2001:db8:5e:1:0:5efe:a14:b\/64/);
      assert.match(addrs, /fe80::5efe:a14:b\/64/);
      const routes = (await lab.exec(h1.ns, 'ip', ['-6', 'route', 'show', 'dev', 'isatap0'])).stdout;
      assert.match(routes, /^2001:db8:5e:1::\/64/m);
      assert.match(routes, /^default via fe80::5efe:a14:1 /m);
      const text = (await lab.exec(h1.ns, process.execPath, [join(import.meta.dirname, '../../../bin/transit6.js'), 'isatap', 'show', 'state'])).stdout;
      assert.match(text, /data plane\s*: user space \(raw protocol 41\)/);
    });
    await t.test('2: host to host goes direct, the router forwards none of it', async () => {
      const before = ((await tunnelShow(lab, topo.router.ns, 'isatap', 'state')) as State).events ?? {};
      const m0 = await scrapeMetrics(lab, h1.ns, '127.0.0.1:9545');
      assert.ok(await ping(lab, h1.ns, a2, { count: 3 }), `ping ${a2} from host 1`);
      // Host 1's metrics: the three echo requests went out as protocol-41 packets, the replies came in.
      const m1 = await scrapeMetrics(lab, h1.ns, '127.0.0.1:9545');
      assert.equal(sampleValue(m1, 'transit6_state', { state: 'configured' }), 1);
      const out = (m: typeof m0): number => sampleValue(m, 'transit6_packets_total', { side: 'ipv4', direction: 'out' }) ?? -1;
      const tunIn = (m: typeof m0): number => sampleValue(m, 'transit6_packets_total', { side: 'tun', direction: 'in' }) ?? -1;
      assert.ok(out(m1) >= out(m0) + 3, `ipv4 out ${out(m0)} -> ${out(m1)}`);
      assert.ok(tunIn(m1) >= tunIn(m0) + 3, `tun in ${tunIn(m0)} -> ${tunIn(m1)}`);
      assert.ok((sampleValue(m1, 'transit6_events_total', { event: 'tx-direct' }) ?? 0) >= 3);
      assert.ok(await ping(lab, h2.ns, a1, { count: 3 }), `ping ${a1} from host 2`);
      const after = ((await tunnelShow(lab, topo.router.ns, 'isatap', 'state')) as State).events ?? {};
      assert.equal(after['rx-packets'] ?? 0, before['rx-packets'] ?? 0, 'the router saw host-to-host packets');
      const e1 = ((await tunnelShow(lab, h1.ns, 'isatap', 'state')) as State).events ?? {};
      assert.ok((e1['tx-direct'] ?? 0) >= 3, JSON.stringify(e1));
    });
    await t.test('3: a host reaches the native IPv6 host through the router (ping, TCP); SIGHUP does not stop the router', async () => {
      // SIGHUP (no reload for these daemons): logged, and the router keeps forwarding.
      const router = procs[0]!;
      process.kill(router.pid, 'SIGHUP');
      await router.waitForLog(/SIGHUP ignored/, 5000);
      assert.ok(router.running, 'the router survived SIGHUP');
      assert.ok(await ping(lab, h1.ns, topo.v6host.ipv6, { count: 3 }), 'ping the native host');
      const server = lab.spawn(topo.v6host.ns, 'socat', 'socat', ['-T', '10', 'TCP6-LISTEN:7000,reuseaddr', 'SYSTEM:echo isatap-tcp-ok']);
      procs.push(server);
      await sleep(300);
      const r = await lab.exec(h2.ns, 'socat', ['-T', '10', '-', `TCP6:[${topo.v6host.ipv6}]:7000`], { input: '' });
      assert.match(r.stdout, /isatap-tcp-ok/);
      const rs = ((await tunnelShow(lab, topo.router.ns, 'isatap', 'state')) as State).events ?? {};
      assert.ok((rs['rx-packets'] ?? 0) > 0 && (rs['tx-packets'] ?? 0) > 0, JSON.stringify(rs));
      // 16 MiB host -> native host through the user-space router: intact; the rate is a diagnostic only.
      const x = await tcpTransfer(lab, h1.ns, topo.v6host.ns, topo.v6host.ipv6, TRANSFER_PORT, 16);
      assert.ok(x.intact, '16 MiB arrived intact');
      t.diagnostic(`TCP host -> router -> native host: 16 MiB in ${x.ms.toFixed(0)} ms, ${x.mbitPerS.toFixed(0)} Mbit/s`);
    });
    await t.test('5: radvd on the router’s tunnel interface as the advertisement source (--advertiser radvd)', async () => {
      await procs[0]!.stop(5000);
      await procs[2]!.stop(5000);
      // As systemd would run it (a fake NOTIFY_SOCKET): READY=1 comes once radvd runs, STOPPING=1 when it stops.
      notify = await fakeNotifySocket();
      const radvdRouter = startTransit6(lab, topo.router.ns, 'router-radvd', ['isatap', 'router', '--local', topo.router.ipv4, '--prefix', '2001:db8:5e:2::/64', '--default-route', '--advertiser', 'radvd'], { NOTIFY_SOCKET: notify.path });
      procs.push(radvdRouter);
      await notify.waitFor(/READY=1\nSTATUS=running \(isatap router on isatap0\)/, 15_000);
      assert.match(radvdRouter.log(), /radvd started/, 'READY=1 after radvd started');
      await waitFor('the radvd router', () => tunnelShow(lab, topo.router.ns, 'isatap', 'state'), 15_000, procs);
      procs.push(startTransit6(lab, h2.ns, 'host-radvd', ['isatap', 'host', '--router', topo.router.ipv4]));
      const s = await waitFor('host 2 configured by radvd', async () => {
        const st = await configured(lab, h2.ns);
        return st && st.prefixes!.some((p) => p.address === '2001:db8:5e:2:0:5efe:a14:c') ? st : undefined;
      }, 30_000, procs);
      assert.equal(s.defaultRouter, topo.router.ipv4);
      const rs = ((await tunnelShow(lab, topo.router.ns, 'isatap', 'state')) as State & { advertiser?: string });
      assert.equal(rs.advertiser, 'kernel');
      assert.ok((rs.events?.['rs-received'] ?? 0) >= 1 && (rs.events?.['ra-sent'] ?? 0) === 0, JSON.stringify(rs.events));
      assert.ok(await ping(lab, h2.ns, topo.v6host.ipv6, { count: 3 }), 'ping the native host with the radvd-advertised prefix');
      await radvdRouter.stop(5000);
      const said = await notify.waitFor(/STOPPING=1\nSTATUS=stopping \(SIGTERM\)/, 5000);
      assert.match(said, /^(STATUS=[^\n]*)?READY=1\n[^]*STOPPING=1\n[^]*$/);
      assert.equal(said.match(/READY=1/g)!.length, 1, said);
    });
    await capture.stop();
    await t.test('6: tshark decodes every captured packet; RS, RA and data are IPv6 in IPv4 protocol 41', () => {
      assert.deepEqual(decodeProblems(capture.path), []);
      assert.ok(countFrames(capture.path, 'ip.proto == 41 && icmpv6.type == 133') >= 2, 'router solicitations');
      assert.ok(countFrames(capture.path, 'ip.proto == 41 && icmpv6.type == 134 && icmpv6.opt.prefix == 2001:db8:5e:1::') >= 2, 'router advertisements with the prefix');
      assert.ok(countFrames(capture.path, `ip.proto == 41 && ip.src == ${h1.ipv4} && ip.dst == ${h2.ipv4} && ipv6.dst == ${a2}`) >= 3, 'direct host-to-host');
      assert.ok(countFrames(capture.path, 'ip.proto == 41 && tcp') >= 3, 'TCP inside protocol 41');
      // Every protocol-41 frame carries an IPv6 packet whose source embeds the outer source (RFC 5214 §7.3), or is
      // the router's.
      assert.equal(countFrames(capture.path, 'ip.proto == 41 && !ipv6'), 0);
      assert.ok(countFrames(capture.path, 'ip.proto == 41 && icmpv6.type == 134 && icmpv6.opt.prefix == 2001:db8:5e:2::') >= 1, "radvd's advertisements");
    });
    await t.test("6b: host 1's --pcap files decode cleanly: IPv6 in IPv4 on its protocol-41 side, IPv6 on its tunnel side", async () => {
      await procs[1]!.stop(5000); // flushes the capture
      const outer = `${h1Pcap}-ipv4.pcap`;
      const inner = `${h1Pcap}-tun.pcap`;
      assert.deepEqual(decodeProblems(outer), []);
      assert.deepEqual(decodeProblems(inner), []);
      assert.ok(countFrames(outer, 'ip.proto == 41 && icmpv6.type == 133') >= 1, 'its router solicitations');
      assert.ok(countFrames(outer, 'ip.proto == 41 && icmpv6.type == 134') >= 1, 'the advertisements it received');
      assert.ok(countFrames(outer, `ip.proto == 41 && ip.src == ${h1.ipv4} && ip.dst == ${h2.ipv4} && icmpv6.type == 128`) >= 3, 'its pings to host 2');
      assert.equal(countFrames(outer, '!(ip.proto == 41 && ipv6)'), 0, 'every frame IPv6 in IPv4');
      assert.ok(countFrames(inner, `ipv6.dst == ${a2} && icmpv6.type == 128`) >= 3, 'the pings on the tunnel side');
      assert.equal(countFrames(inner, 'ip || !ipv6'), 0, 'the tunnel side is IPv6 only');
    });
  } finally {
    notify?.close();
    await lab.destroy();
  }
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
