/**
 * PortProxy in namespaces (root): an IPv4-only host and an IPv6-only host that cannot reach each other, and the
 * proxy host between them with `transit6 portproxy run`. The proxy does no forwarding: whatever crosses, crosses
 * through the daemon.
 *
 *   v4host 198.51.100.10/24 ── 198.51.100.1/24  proxy  2001:db8:6::1/64 ── 2001:db8:6::10/64 v6host
 *   (IPv6 disabled)                                                          (no IPv4 address)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { installCleanupHandlers, Lab } from '../../src/lab/netns.js';
import { LAB_NS_PREFIX } from '../../src/lab/exec.js';
import type { ManagedProcess } from '../../src/lab/exec.js';
import { parseRules } from '../../src/portproxy/rules.js';
import { skipUnlessRoot } from './helpers.js';

installCleanupHandlers();

const MAIN = new URL('../../src/cli/main.js', import.meta.url).pathname;
const AGENT = new URL('./portproxy-agent.js', import.meta.url).pathname;
const V4HOST = '198.51.100.10';
const PROXY4 = '198.51.100.1';
const V6HOST = '2001:db8:6::10';
const PROXY6 = '2001:db8:6::1';

interface Topology {
  lab: Lab;
  conf: string;
  control: string;
  daemon: ManagedProcess;
}

async function build(): Promise<Topology> {
  const lab = new Lab({ stopGraceMs: 1000 });
  try {
    for (const n of ['v4host', 'proxy', 'v6host']) await lab.addNamespace(n);
    await lab.link('v4host', 'eth0', 'proxy', 'to4');
    await lab.link('proxy', 'to6', 'v6host', 'eth0');
    await lab.sysctl('v4host', { 'net.ipv6.conf.all.disable_ipv6': 1, 'net.ipv6.conf.default.disable_ipv6': 1 });
    await lab.addAddress('v4host', 'eth0', `${V4HOST}/24`);
    await lab.addAddress('proxy', 'to4', `${PROXY4}/24`);
    await lab.addAddress('proxy', 'to6', `${PROXY6}/64`);
    await lab.addAddress('v6host', 'eth0', `${V6HOST}/64`);
    await lab.setForwarding('proxy', { ipv4: false, ipv6: false });
    const conf = join(lab.runDir, 'portproxy.conf');
    const control = join(lab.runDir, 'portproxy.sock');
    const daemon = lab.spawn('proxy', 'portproxy', process.execPath, [MAIN, 'portproxy', 'run', '--config', conf, '--control', control], {
      env: { ...process.env, TRANSIT6_LOG_LEVEL: 'info' },
    });
    await daemon.waitForLog(/ready/, 10_000);
    return { lab, conf, control, daemon };
  } catch (e) {
    await lab.destroy();
    throw e;
  }
}

/** `transit6 portproxy ARGS --config CONF` in the proxy namespace. */
async function pp(t: Topology, args: string[]): Promise<string> {
  return (await t.lab.exec('proxy', process.execPath, [MAIN, 'portproxy', ...args, '--config', t.conf])).stdout;
}

async function agent(t: Topology, ns: string, args: string[], timeoutMs = 60_000): Promise<Record<string, unknown>> {
  const r = await t.lab.exec(ns, process.execPath, [AGENT, ...args], { timeoutMs, allowFailure: true });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(last) as Record<string, unknown>;
  } catch {
    throw new Error(`agent ${args.join(' ')} in ${ns}: exit ${r.exitCode}: ${r.stdout} ${r.stderr}`);
  }
}

function server(t: Topology, ns: string, name: string, args: string[]): ManagedProcess {
  return t.lab.spawn(ns, name, process.execPath, [AGENT, ...args]);
}

async function liveStats(t: Topology): Promise<{ listen: string; bufferedBytes: number; active: number; counters: Record<string, number> }[]> {
  const out = await pp(t, ['show', '--live', '--json', '--control', t.control]);
  return (JSON.parse(out) as { live: { listen: string; bufferedBytes: number; active: number; counters: Record<string, number> }[] }).live;
}

/** The daemon's resident memory in KiB (VmRSS). */
function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]);
}

async function waitFor(cond: () => Promise<boolean> | boolean, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('lab: the hosts cannot reach each other; the proxy carries all four modes, each target sees the right family', async (t) => {
  if (skipUnlessRoot(t)) return;
  const topo = await build();
  try {
    assert.ok(topo.lab.ns('proxy').startsWith(LAB_NS_PREFIX));
    const e6 = server(topo, 'v6host', 'echo6', ['echo', V6HOST, '7007']);
    const e4 = server(topo, 'v4host', 'echo4', ['echo', V4HOST, '7007']);
    const l4 = server(topo, 'proxy', 'echo-lo4', ['echo', '127.0.0.1', '7007']);
    const l6 = server(topo, 'proxy', 'echo-lo6', ['echo', '::1', '7007']);
    for (const p of [e6, e4, l4, l6]) await p.waitForLog(/listening/);
    // No path without the proxy: the IPv4-only host has no IPv6 at all, and the proxy does not route.
    const direct = await topo.lab.exec('v4host', process.execPath, [AGENT, 'send', V6HOST, '7007', '10'], { allowFailure: true });
    assert.notEqual(direct.exitCode, 0);

    await pp(topo, ['add', 'v4tov6', 'listenport=8001', `listenaddress=${PROXY4}`, `connectaddress=${V6HOST}`, 'connectport=7007']);
    await pp(topo, ['add', 'v6tov4', 'listenport=8002', `connectaddress=${V4HOST}`, 'connectport=7007']);
    await pp(topo, ['add', 'v4tov4', '8003', '127.0.0.1', '7007']);
    await pp(topo, ['add', 'v6tov6', '--listen-port', '8004', '--connect-address', '::1', '--connect-port', '7007']);
    await waitFor(async () => (await liveStats(topo)).length === 4, 'the daemon to take the four rules');

    const cases: [string, string, string, ManagedProcess, string][] = [
      ['v4tov6', 'v4host', PROXY4, e6, PROXY6],
      ['v6tov4', 'v6host', PROXY6, e4, PROXY4],
      ['v4tov4', 'v4host', PROXY4, l4, '127.0.0.1'],
      ['v6tov6', 'v6host', PROXY6, l6, '::1'],
    ];
    for (const [i, [mode, from, addr, backend, seenAs]] of cases.entries()) {
      const r = await agent(topo, from, ['send', addr, String(8001 + i), String(3 << 20)]);
      assert.deepEqual(r, { sent: 3 << 20, received: 3 << 20, sameHash: true, ended: true }, mode);
      assert.match(backend.log(), new RegExp(`conn ${seenAs.replace(/\./g, '\\.')}\\n`), `${mode}: the target sees the proxy's ${seenAs}`);
    }
  } finally {
    await topo.lab.destroy();
  }
});

test('lab: a slow reader keeps the proxy flat (RSS and buffered bytes) while the IPv6 host could send 512 MiB', async (t) => {
  if (skipUnlessRoot(t)) return;
  const topo = await build();
  try {
    const bulk = server(topo, 'v6host', 'bulk', ['bulk', V6HOST, '7100', '512']);
    await bulk.waitForLog(/listening/);
    await pp(topo, ['add', 'v4tov6', 'listenport=8100', `connectaddress=${V6HOST}`, 'connectport=7100']);
    await waitFor(async () => (await liveStats(topo)).length === 1, 'the rule');
    const before = rssKiB(topo.daemon.pid);
    const reader = server(topo, 'v4host', 'slowread', ['slowread', PROXY4, '8100', '4000']);
    await reader.waitForLog(/stalled/);
    let maxRss = 0;
    let maxBuffered = 0;
    while (!/stalled-done/.test(reader.log())) {
      maxRss = Math.max(maxRss, rssKiB(topo.daemon.pid));
      maxBuffered = Math.max(maxBuffered, ...(await liveStats(topo)).map((s) => s.bufferedBytes));
      await new Promise((r) => setTimeout(r, 200));
    }
    const growthMiB = (maxRss - before) / 1024;
    t.diagnostic(`proxy RSS ${before} KiB before, at most ${maxRss} KiB while the reader stalled; buffered at most ${maxBuffered} bytes`);
    assert.ok(maxBuffered <= 1 << 20, `the proxy buffered ${maxBuffered} bytes for one stalled reader (bound 1 MiB)`);
    assert.ok(growthMiB < 64, `the proxy grew by ${growthMiB.toFixed(1)} MiB while the reader stalled (bound 64 MiB; unbounded would be ~512 MiB)`);
    const done = await reader.waitForLog(/\{"received":\d+,"patternOk":(true|false)\}/, 120_000);
    assert.equal(done[0], `{"received":${512 << 20},"patternOk":true}`);
  } finally {
    await topo.lab.destroy();
  }
});

test('lab: set and delete mid-transfer leave the transfer intact; new connections follow the new rule', async (t) => {
  if (skipUnlessRoot(t)) return;
  const topo = await build();
  try {
    const e6 = server(topo, 'v6host', 'echo6', ['echo', V6HOST, '7007']);
    const tag = server(topo, 'v6host', 'tagB', ['tag', V6HOST, '7008', 'B']);
    await e6.waitForLog(/listening/);
    await tag.waitForLog(/listening/);
    await pp(topo, ['add', 'v4tov6', 'listenport=8200', `connectaddress=${V6HOST}`, 'connectport=7007']);
    await waitFor(async () => (await liveStats(topo)).length === 1, 'the rule');
    // 4 MiB in 64 KiB pieces every 40 ms: about 2.5 s of transfer.
    const sender = server(topo, 'v4host', 'sender', ['send', PROXY4, '8200', String(4 << 20), '40']);
    await waitFor(async () => (await liveStats(topo))[0]!.active === 1, 'the transfer to start');
    await pp(topo, ['set', 'v4tov6', 'listenport=8200', 'connectport=7008']);
    await topo.daemon.waitForLog(/rule changed/);
    assert.deepEqual(await agent(topo, 'v4host', ['get', PROXY4, '8200']), { received: 'B' });
    await pp(topo, ['delete', 'v4tov6', 'listenport=8200']);
    await topo.daemon.waitForLog(/rule removed/);
    const refused = await topo.lab.exec('v4host', process.execPath, [AGENT, 'get', PROXY4, '8200'], { allowFailure: true });
    assert.match(refused.stdout, /ECONNREFUSED/);
    const m = await sender.waitForLog(/\{"sent".*\}/, 30_000);
    assert.deepEqual(JSON.parse(m[0]), { sent: 4 << 20, received: 4 << 20, sameHash: true, ended: true });
  } finally {
    await topo.lab.destroy();
  }
});

test('lab: kill -9 of `portproxy add` in a loop: the file always parses as the old or the new set; the daemon never sees a broken one', async (t) => {
  if (skipUnlessRoot(t)) return;
  const topo = await build();
  try {
    // A big file makes each write long enough to be killed in the middle of it.
    const base = Array.from({ length: 1000 }, (_, i) => `v4tov4 listenport=${20000 + i} listenaddress=${PROXY4} connectaddress=127.0.0.1 connectport=7007`);
    writeFileSync(topo.conf, `${base.join('\n')}\n`);
    await topo.daemon.waitForLog(/config applied.*"added":1000|added=1000/, 30_000);
    const addCmd = (port: number): string[] => ['netns', 'exec', topo.lab.ns('proxy'), process.execPath, MAIN, 'portproxy', 'add', 'v6tov4', `listenport=${port}`, '--config', topo.conf];
    // How long one writer takes here (Node start-up dominates, and the machine may be busy): kill moments are
    // spread over 60-130 % of it, so that some writers are killed before, some during and some after the write.
    const t0 = Date.now();
    const first = spawn('ip', addCmd(29999), { stdio: 'ignore' });
    assert.equal(await new Promise<number | null>((r) => first.once('exit', (code) => r(code))), 0);
    const took = Date.now() - t0;
    let count = 1001;
    let killedMidway = 0;
    const rounds = 15;
    for (let i = 0; i < rounds; i++) {
      const child = spawn('ip', addCmd(30000 + i), { stdio: 'ignore' });
      // Listened for at once: the writer may finish before the kill.
      const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      await new Promise((r) => setTimeout(r, took * (0.6 + (0.7 * (i % 8)) / 7)));
      if (child.exitCode === null) child.kill('SIGKILL');
      const code = await exit;
      if (code === null) killedMidway++;
      else assert.equal(code, 0, `round ${i}: the writer failed`);
      const rules = parseRules(readFileSync(topo.conf, 'utf8'), topo.conf);
      assert.ok(rules.length === count || rules.length === count + 1, `round ${i}: ${rules.length} rules, expected ${count} or ${count + 1}`);
      count = rules.length;
    }
    t.diagnostic(`one writer took ${took} ms; ${killedMidway} of ${rounds} writers were killed before they finished; ${count - 1001} of them had written`);
    await new Promise((r) => setTimeout(r, 500));
    assert.doesNotMatch(topo.daemon.log(), /config not applied/);
  } finally {
    await topo.lab.destroy();
  }
});
