/**
 * Interoperability with Miredo 1.2.6 (Debian miredo, miredo-server) in the namespace lab, both directions:
 *
 *   1. our client qualifies against miredo-server and reaches v6host through a Miredo relay;
 *   2. Miredo clients (port-restricted and symmetric NAT) qualify against our server and reach v6host through our
 *      relay;
 *   3. a Miredo client (cli-prc) and our client (cli-fc, BindPort 3550) ping each other, once with our server and
 *      once with miredo-server;
 *   4. tshark's Teredo dissector decodes everything captured on the inet router during 1-3 without a malformed
 *      packet or an expert error, and every datagram our daemons sent is decoded as Teredo/IPv6.
 *
 * Topology and Miredo set-up as in shared/reference/miredo-lab-report.md §2-3. Our daemons are configured with
 * Miredo configuration files too (-c), with the same directives as the Miredo daemons in the same role. Needs root, Miredo (scripts/install-deps.sh) and
 * tshark/dumpcap; skips with a message otherwise. T6_LAB_KEEP=1 keeps the run directory (logs, pcaps).
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ManagedProcess } from '../../src/lab/exec.js';
import {
  boundUdp,
  missingMiredoFiles,
  miredoPidsInOwnNamespace,
  startMiredoClient,
  startMiredoRelay,
  startMiredoServer,
  stopMiredo,
  waitMiredoAddress,
  writeMiredoConf,
  miredoClientDirectives,
  miredoRelayDirectives,
  miredoServerDirectives,
  type MiredoDaemon,
} from '../../src/lab/miredo.js';
import { installCleanupHandlers, type Lab } from '../../src/lab/netns.js';
import { buildTeredoTopology, type TeredoTopology } from '../../src/lab/teredo-topology.js';
import { PcapWriter } from '../../src/sim/pcap.js';
import { formatIpv4, parseIpv4, parseIpv6 } from '../../src/wire/ip.js';
import { decodeTeredoAddress } from '../../src/wire/teredo.js';
import { buildIpv4Udp } from '../../src/wire/udp.js';
import { skipUnlessRoot } from './helpers.js';

installCleanupHandlers();

const BIN = new URL('../../../bin/transit6.js', import.meta.url).pathname;
const SERVER = '198.51.100.1';
const SERVER2 = '198.51.100.2';
const RELAY = '198.51.100.17';
const RELAY_PORT = 3545;
const V6HOST = '2001:db8:1::10';
/** 2001:0:c633:6401::/64: the Teredo prefix plus 198.51.100.1. */
const TEREDO_SERVER_PREFIX = '2001:0:c633:6401:';
const FC_PORT = 3550;
/** tshark options of the reference study (report §8): the Teredo heuristic is off by default, the relay port
 *  is not 3544. */
const DECODE = ['--enable-heuristic', 'teredo_udp', '-d', `udp.port==${RELAY_PORT},teredo`];

const have = (cmd: string, args: string[]): boolean => spawnSync(cmd, args, { encoding: 'utf8' }).status === 0;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number, procs: ManagedProcess[] = []): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    const dead = procs.find((p) => !p.running);
    if (dead) throw new Error(`${dead.name} in ${dead.ns} exited while waiting for ${what}:\n${logTail(dead)}`);
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${procs.map(logTail).join('\n')}`);
    await sleep(100);
  }
}

function logTail(p: ManagedProcess, lines = 12): string {
  return `--- ${p.name} (${p.ns}) ${p.logPath}\n${p.log().trim().split('\n').slice(-lines).join('\n')}`;
}

/** Stops what a step started, newest first; never throws. */
async function stopAll(items: (ManagedProcess | MiredoDaemon | undefined)[]): Promise<void> {
  for (const x of items.reverse()) {
    if (!x) continue;
    if ('process' in x) await stopMiredo(x).catch(() => undefined);
    else await x.stop(3000).catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Our daemons

function startOurs(lab: Lab, ns: string, name: string, role: 'client' | 'relay' | 'server', confPath: string): ManagedProcess {
  return lab.spawn(ns, name, process.execPath, [BIN, 'teredo', role, '-f', '-c', confPath]);
}

interface ClientState {
  state: string;
  natType: string;
  natDetection: string;
  portFilteringKnown: boolean;
  externalMapping: string;
  teredoAddress: string;
  [k: string]: unknown;
}

async function ourState(lab: Lab, ns: string): Promise<ClientState | undefined> {
  const r = await lab.exec(ns, process.execPath, [BIN, 'teredo', 'show', 'state', '--json'], { allowFailure: true });
  if (r.exitCode !== 0) return undefined;
  try {
    return JSON.parse(r.stdout) as ClientState;
  } catch {
    return undefined;
  }
}

/** Our client once it is qualified and its NAT-type detection has finished. */
async function ourQualified(lab: Lab, ns: string, p: ManagedProcess, timeoutMs = 15_000): Promise<ClientState> {
  return waitFor(
    `our client in ${ns} to qualify`,
    async () => {
      const s = await ourState(lab, ns);
      return s && s.state === 'qualified' && s.interfaceStatus === 'up' && s.natDetection !== 'running' && typeof s.teredoAddress === 'string' ? s : undefined;
    },
    timeoutMs,
    [p],
  );
}

/** Milliseconds from the exec (the log's header line) to our client's "qualified" log line, or '?'. */
function qualifiedAfter(p: ManagedProcess): string {
  const log = p.log();
  const start = /^# (\S+) /.exec(log)?.[1];
  const q = /"time":"([^"]+)"[^\n]*"msg":"qualified: qualified"/.exec(log)?.[1];
  return start && q ? String(Date.parse(q) - Date.parse(start)) : '?';
}

async function ourServerReady(lab: Lab, ns: string, p: ManagedProcess): Promise<void> {
  await waitFor(`our server bound ${SERVER}:3544`, async () => ((await boundUdp(lab, ns)).includes(`${SERVER}:3544`) ? true : undefined), 10_000, [p]);
}

async function ourRelayReady(lab: Lab, ns: string, p: ManagedProcess): Promise<void> {
  await waitFor(
    `our relay bound ${RELAY}:${RELAY_PORT} with its tunnel`,
    async () => {
      if (!(await boundUdp(lab, ns)).includes(`${RELAY}:${RELAY_PORT}`)) return undefined;
      return (await lab.ip(ns, ['link', 'show', 'dev', 'teredo'], { allowFailure: true })).exitCode === 0 ? true : undefined;
    },
    10_000,
    [p],
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Checks

/** The mapping (public IPv4:port) a Teredo address carries. */
function mappingOf(teredo: string): string {
  const bytes = parseIpv6(teredo);
  assert.ok(bytes, `not an IPv6 address: ${teredo}`);
  const a = decodeTeredoAddress(bytes);
  assert.ok(a, `not a Teredo address: ${teredo}`);
  assert.equal(formatIpv4(a.server), SERVER, `${teredo}: embedded server`);
  return `${formatIpv4(a.mappedAddr)}:${a.mappedPort}`;
}

interface PingResult {
  received: number;
  text: string;
}

async function ping6(lab: Lab, ns: string, dst: string): Promise<PingResult> {
  const r = await lab.exec(ns, 'ping', ['-6', '-n', '-c', '3', '-i', '0.2', '-W', '2', dst], { allowFailure: true, timeoutMs: 15_000 });
  const m = /(\d+) received/.exec(r.stdout);
  return { received: m ? Number(m[1]) : 0, text: (r.stdout + r.stderr).trim() };
}

async function assertPing3(t: TestContext, lab: Lab, ns: string, dst: string, procs: ManagedProcess[]): Promise<void> {
  const t0 = Date.now();
  const r = await ping6(lab, ns, dst);
  const rtts = [...r.text.matchAll(/time=([\d.]+) ms/g)].map((m) => m[1]).join('/');
  t.diagnostic(`${short(lab, ns)} -> ${dst}: ${r.received}/3 in ${Date.now() - t0} ms (rtt ${rtts} ms)`);
  assert.equal(r.received, 3, `ping -6 -c 3 ${dst} from ${ns}:\n${r.text}\n${procs.map((p) => logTail(p)).join('\n')}`);
}

const short = (lab: Lab, ns: string): string => ns.slice(lab.prefix.length);

// ---------------------------------------------------------------------------------------------------------------
// Captures on the inet router (report §8: every packet crossing the "Internet" once, at its ingress interface)

interface CaptureRecord {
  label: string;
  path: string;
  /** Display filters selecting UDP datagrams our daemons sent in this step. */
  ours: { who: string; filter: string }[];
  /** dumpcap's closing statistics ("received/dropped"). */
  stats?: string;
}

const captures: CaptureRecord[] = [];

async function startCapture(lab: Lab, label: string): Promise<{ proc: ManagedProcess; rec: CaptureRecord }> {
  const path = join(lab.runDir, `capture-${label}.pcap`);
  // 'inbound': each forwarded packet once, as it enters inet (tcpdump -Q in in the study). -P: classic pcap.
  const proc = lab.spawn('inet', `dumpcap-${label}`, 'dumpcap', ['-q', '-P', '-i', 'any', '-f', 'inbound', '-w', path]);
  await proc.waitForLog(/Capturing on/, 10_000);
  await sleep(200);
  const rec: CaptureRecord = { label, path, ours: [] };
  return { proc, rec };
}

async function stopCapture(c: { proc: ManagedProcess; rec: CaptureRecord } | undefined): Promise<void> {
  if (!c) return;
  await sleep(300);
  await c.proc.stop(5000).catch(() => undefined);
  c.rec.stats = /received\/dropped on interface '[^']*': (\d+\/\d+)/.exec(c.proc.log())?.[1];
  captures.push(c.rec);
}

/** UDP sent by us from `addr` (not ICMP errors quoting UDP). */
const udpFrom = (addr: string): string => `ip.src == ${addr} && udp && !icmp`;

function tshark(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('tshark', args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Problems tshark reports in one pcap: malformed frames, expert errors, bad ICMPv6 checksums. */
function decodeProblems(path: string): string[] {
  const problems: string[] = [];
  const bad = tshark(['-r', path, ...DECODE, '-Y', '_ws.malformed || _ws.expert.severity >= "error" || icmpv6.checksum.status == 0', '-T', 'fields', '-e', 'frame.number', '-e', 'frame.protocols', '-e', '_ws.expert.message']);
  assert.equal(bad.status, 0, `tshark -r ${path}: ${bad.stderr}`);
  for (const l of bad.stdout.split('\n').filter(Boolean)) problems.push(`frame ${l}`);
  const expert = tshark(['-r', path, ...DECODE, '-q', '-z', 'expert,error']);
  assert.equal(expert.status, 0, expert.stderr);
  if (/Errors \(/.test(expert.stdout)) problems.push(expert.stdout.trim());
  return problems;
}

// ---------------------------------------------------------------------------------------------------------------

interface Ctx {
  lab: Lab;
  topo: TeredoTopology;
  ns: (short: string) => string;
  conf: { miredoServer: string; relay: string; client: string; clientFc: string };
}

test('Miredo 1.2.6 interop: qualification, relaying and client to client in both directions', { timeout: 175_000 }, async (t) => {
  if (skipUnlessRoot(t)) return;
  const missing = missingMiredoFiles();
  if (missing.length > 0) {
    t.skip(`Miredo is not installed (missing ${missing.join(', ')}): run scripts/install-deps.sh`);
    return;
  }
  if (!have('tshark', ['-v']) || !have('dumpcap', ['-v'])) {
    t.skip('tshark/dumpcap not installed: run scripts/install-deps.sh');
    return;
  }
  const tStart = Date.now();
  const before = new Set(miredoPidsInOwnNamespace());
  // segmentGso: our daemons' UDP GSO messages (offload, on by default) cross as single datagrams, as on a wire.
  const { lab, topology: topo } = await buildTeredoTopology({ clients: ['cli-prc', 'cli-sym', 'cli-fc'], segmentGso: true });
  try {
    t.diagnostic(`lab ${lab.prefix}: ${topo.namespaces.length} namespaces built in ${Date.now() - tStart} ms; run dir ${lab.runDir}`);
    // Report §3's configuration files, for our daemons (-c); the Miredo daemons get per-instance files with the
    // same directives from the start helpers.
    const ctx: Ctx = {
      lab,
      topo,
      ns: (s) => lab.nsName(s),
      conf: {
        miredoServer: writeMiredoConf(lab, 'miredo-server', miredoServerDirectives({ serverBindAddress: SERVER })),
        relay: writeMiredoConf(lab, 'relay', miredoRelayDirectives({ relayType: 'relay', interfaceName: 'teredo', bindAddress: RELAY, bindPort: RELAY_PORT })),
        client: writeMiredoConf(lab, 'client', miredoClientDirectives({ interfaceName: 'teredo', serverAddress: SERVER })),
        clientFc: writeMiredoConf(lab, 'client-fc', miredoClientDirectives({ interfaceName: 'teredo', serverAddress: SERVER, bindPort: FC_PORT })),
      },
    };

    await t.test('1: our client qualifies against miredo-server and reaches v6host through a Miredo relay', async (st) => {
      const t0 = Date.now();
      const cap = await startCapture(lab, '1');
      const started: (ManagedProcess | MiredoDaemon | undefined)[] = [];
      try {
        const srv = await startMiredoServer(lab, 'tserver', { serverBindAddress: SERVER }, { name: 'miredo-server-1' });
        started.push(srv);
        const rel = await startMiredoRelay(lab, 'relay', { relayType: 'relay', interfaceName: 'teredo', bindAddress: RELAY, bindPort: RELAY_PORT }, { name: 'miredo-relay-1' });
        started.push(rel);
        const tq = Date.now();
        const cli = startOurs(lab, 'cli-prc', 'transit6-client-1', 'client', ctx.conf.client);
        started.push(cli);
        cap.rec.ours.push({ who: 'our client (cli-prc via nat-prc)', filter: udpFrom('203.0.113.1') });
        const s = await ourQualified(lab, 'cli-prc', cli);
        st.diagnostic(`qualified ${qualifiedAfter(cli)} ms after exec, NAT detection done after ${Date.now() - tq} ms: ${s.teredoAddress} mapping ${s.externalMapping} natType ${s.natType} portFilteringKnown ${s.portFilteringKnown}`);
        assert.ok(s.teredoAddress.startsWith(TEREDO_SERVER_PREFIX), `address ${s.teredoAddress}`);
        assert.equal(mappingOf(s.teredoAddress), s.externalMapping);
        assert.match(s.externalMapping, /^203\.0\.113\.1:\d+$/);
        // miredo-server has no NAT-probe port: 'restricted' with port filtering unknown is as far as one can get.
        assert.ok(
          s.natType === 'port-restricted' || (s.natType === 'restricted' && s.portFilteringKnown === false),
          `NAT type behind the port-restricted NAT: ${s.natType} (portFilteringKnown ${String(s.portFilteringKnown)})`,
        );
        await assertPing3(st, lab, ctx.ns('cli-prc'), V6HOST, [cli, srv.process, rel.process]);
      } finally {
        await stopAll(started);
        await stopCapture(cap);
        st.diagnostic(`step 1 took ${Date.now() - t0} ms`);
      }
    });

    await t.test('2: Miredo clients qualify against our server and reach v6host through our relay', async (st) => {
      const t0 = Date.now();
      const cap = await startCapture(lab, '2');
      const started: (ManagedProcess | MiredoDaemon | undefined)[] = [];
      try {
        const srv = startOurs(lab, 'tserver', 'transit6-server-2', 'server', ctx.conf.miredoServer);
        started.push(srv);
        const rel = startOurs(lab, 'relay', 'transit6-relay-2', 'relay', ctx.conf.relay);
        started.push(rel);
        cap.rec.ours.push({ who: 'our server (primary)', filter: udpFrom(SERVER) }, { who: 'our server (secondary)', filter: udpFrom(SERVER2) });
        cap.rec.ours.push({ who: 'our relay', filter: udpFrom(RELAY) });
        await ourServerReady(lab, 'tserver', srv);
        await ourRelayReady(lab, 'relay', rel);
        const tq = Date.now();
        const clients = [
          { ns: 'cli-prc', nat: '203.0.113.1' },
          { ns: 'cli-sym', nat: '203.0.113.17' },
        ].map((c) => ({ ...c, d: startMiredoClient(lab, c.ns, { interfaceName: 'teredo', serverAddress: SERVER }, { name: `miredo-client-2-${c.ns}` }) }));
        started.push(...clients.map((c) => c.d));
        for (const c of clients) {
          const addr = await waitMiredoAddress(lab, c.d, 'teredo', { timeoutMs: 15_000 });
          st.diagnostic(`Miredo client in ${c.ns}: ${addr} after ${Date.now() - tq} ms (mapping ${mappingOf(addr)})`);
          assert.ok(addr.startsWith(TEREDO_SERVER_PREFIX), `${c.ns}: ${addr}`);
          assert.ok(mappingOf(addr).startsWith(`${c.nat}:`), `${c.ns}: ${addr} maps to ${mappingOf(addr)}, not ${c.nat}`);
        }
        for (const c of clients) await assertPing3(st, lab, ctx.ns(c.ns), V6HOST, [c.d.process, srv, rel]);
      } finally {
        await stopAll(started);
        await stopCapture(cap);
        st.diagnostic(`step 2 took ${Date.now() - t0} ms`);
      }
    });

    for (const which of ['ours', 'miredo'] as const) {
      const label = which === 'ours' ? '3a' : '3b';
      await t.test(`${label}: a Miredo client (cli-prc) and our client (cli-fc) ping each other, both on ${which === 'ours' ? 'our server' : 'miredo-server'}`, async (st) => {
        const t0 = Date.now();
        const cap = await startCapture(lab, label);
        const started: (ManagedProcess | MiredoDaemon | undefined)[] = [];
        try {
          const procs: ManagedProcess[] = [];
          if (which === 'ours') {
            const srv = startOurs(lab, 'tserver', `transit6-server-${label}`, 'server', ctx.conf.miredoServer);
            started.push(srv);
            procs.push(srv);
            cap.rec.ours.push({ who: 'our server (primary)', filter: udpFrom(SERVER) }, { who: 'our server (secondary)', filter: udpFrom(SERVER2) });
            await ourServerReady(lab, 'tserver', srv);
          } else {
            const srv = await startMiredoServer(lab, 'tserver', { serverBindAddress: SERVER }, { name: `miredo-server-${label}` });
            started.push(srv);
            procs.push(srv.process);
          }
          const tq = Date.now();
          const mc = startMiredoClient(lab, 'cli-prc', { interfaceName: 'teredo', serverAddress: SERVER }, { name: `miredo-client-${label}` });
          started.push(mc);
          const oc = startOurs(lab, 'cli-fc', `transit6-client-${label}`, 'client', ctx.conf.clientFc);
          started.push(oc);
          procs.push(mc.process, oc);
          cap.rec.ours.push({ who: 'our client (cli-fc via nat-fc)', filter: udpFrom('203.0.113.33') });
          const [maddr, os] = await Promise.all([waitMiredoAddress(lab, mc, 'teredo', { timeoutMs: 15_000 }), ourQualified(lab, 'cli-fc', oc)]);
          st.diagnostic(`both qualified after ${Date.now() - tq} ms (ours: ${qualifiedAfter(oc)} ms after exec): Miredo ${maddr}, ours ${os.teredoAddress} (${os.natType})`);
          assert.equal(mappingOf(os.teredoAddress), '203.0.113.33:45454', 'our client behind the static full-cone mapping');
          assert.ok(mappingOf(maddr).startsWith('203.0.113.1:'), `Miredo client mapping ${mappingOf(maddr)}`);
          await assertPing3(st, lab, ctx.ns('cli-fc'), maddr, procs);
          await assertPing3(st, lab, ctx.ns('cli-prc'), os.teredoAddress, procs);
        } finally {
          await stopAll(started);
          await stopCapture(cap);
          st.diagnostic(`step ${label} took ${Date.now() - t0} ms`);
        }
      });
    }

    await t.test('4: tshark decodes every captured packet; our datagrams all decode as Teredo/IPv6', async (st) => {
      // The checker itself: it must flag a truncated IPv6 packet inside a Teredo datagram, and pass a good one.
      const self = join(lab.runDir, 'selfcheck.pcap');
      const w = new PcapWriter();
      const bubble = new Uint8Array(40);
      bubble[0] = 0x60;
      bubble[6] = 59;
      bubble.set(parseIpv6('fe80::8000:f227:39cc:9bfe')!, 8);
      bubble.set(parseIpv6('2001:0:c633:6401:8000:b1ab:34ff:8efe')!, 24);
      w.add(0, buildIpv4Udp(parseIpv4('203.0.113.1')!, 40000, parseIpv4(SERVER)!, 3544, bubble));
      w.add(1, buildIpv4Udp(parseIpv4('203.0.113.1')!, 40000, parseIpv4(SERVER)!, 3544, Uint8Array.of(0x60, 0, 0, 0, 0, 16, 58, 255, 0x20, 1)));
      writeFileSync(self, w.bytes());
      const selfProblems = decodeProblems(self);
      assert.equal(selfProblems.filter((p) => p.startsWith('frame')).length, 1, `self-check: exactly the truncated datagram is flagged: ${selfProblems.join('\n')}`);
      assert.match(selfProblems[0]!, /^frame 2\t/);

      assert.deepEqual(captures.map((c) => c.label), ['1', '2', '3a', '3b'], 'a capture from each of steps 1-3');
      const failures: string[] = [];
      for (const c of captures) {
        const count = tshark(['-r', c.path, '-T', 'fields', '-e', 'frame.number']);
        assert.equal(count.status, 0, count.stderr);
        const frames = count.stdout.split('\n').filter(Boolean).length;
        const teredo = tshark(['-r', c.path, ...DECODE, '-Y', 'teredo', '-T', 'fields', '-e', 'frame.number']).stdout.split('\n').filter(Boolean).length;
        const problems = decodeProblems(c.path);
        if (problems.length > 0) failures.push(`capture ${c.label} (${c.path}):\n  ${problems.join('\n  ')}`);
        const ourCounts: string[] = [];
        for (const o of c.ours) {
          const r = tshark(['-r', c.path, ...DECODE, '-Y', o.filter, '-T', 'fields', '-e', 'frame.number', '-e', 'frame.protocols', '-e', '_ws.col.Info']);
          assert.equal(r.status, 0, r.stderr);
          const lines = r.stdout.split('\n').filter(Boolean);
          const notTeredo = lines.filter((l) => !/:udp:teredo:ipv6(:|$)/.test(l.split('\t')[1] ?? ''));
          ourCounts.push(`${o.who} ${lines.length}`);
          if (o.who.includes('secondary')) {
            // Our server's secondary address answers only cone-bit RSs; Miredo clients never send one.
          } else if (lines.length === 0) failures.push(`capture ${c.label}: no datagram from ${o.who} (${o.filter})`);
          if (notTeredo.length > 0) failures.push(`capture ${c.label}: from ${o.who}, not decoded as Teredo/IPv6:\n  ${notTeredo.join('\n  ')}`);
        }
        st.diagnostic(`capture ${c.label}: ${frames} frames (dumpcap received/dropped ${c.stats ?? '?'}), ${teredo} Teredo; ours: ${ourCounts.join(', ')}; problems: ${problems.length}`);
        assert.ok(frames > 0, `capture ${c.label} is empty`);
      }
      assert.deepEqual(failures, []);
    });
  } finally {
    // Every Miredo daemon ran inside a lab namespace: none may have appeared in ours (the root namespace).
    const strays = miredoPidsInOwnNamespace().filter((p) => !before.has(p));
    await lab.destroy();
    t.diagnostic(`total ${Date.now() - tStart} ms`);
    assert.deepEqual(strays, [], 'Miredo processes in the root namespace');
  }
});
