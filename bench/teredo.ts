/**
 * Side-by-side Teredo benchmark: transit6 and Miredo 1.2.6 on the same lab path in the same run, measured the way the
 * reference study measured Miredo (shared/reference/miredo-lab-report.md §9).
 *
 *   node dist/bench/teredo.js [--runs N] [--duration S] [--json FILE] [--impl transit6,miredo] [--rates 20000,40000]
 *
 * For every run and every implementation (the order alternates between runs), a fresh lab is built with only cli-prc
 * (behind the port-restricted NAT nat-prc), tserver, relay, v6host and inet; that implementation's server, relay
 * (RelayType relay on 198.51.100.17:3545) and client are started; then:
 *
 *   - address:  time from the client process's start to a 2001:0:… address on its `teredo` interface
 *               (`ip -6 addr` polled every 10 ms; includes Node or Miredo start-up, qualification and the hook);
 *   - RTT:      `ping -6 -c 20 -i 0.05` cli-prc → v6host, median and mean (after a warm-up ping that sets up the
 *               relay path);
 *   - TCP:      `iperf3 -c 2001:db8:1::10 -t D -J -6` cli-prc → v6host (a fresh `iperf3 -s -1` in v6host each time);
 *   - UDP:      the same with `-u -l 64 -b <pps*512>` at each rate: delivered packets/s and loss %;
 *   - CPU:      utime+stime of the relay daemon and of the client daemon (each with all its descendants: Miredo's
 *               worker and privproc) from /proc/PID/stat before and after each traffic test, over wall time
 *               (100 % = one core); "machine" is how busy all cores were (/proc/stat).
 *
 * The table shows the median over runs and transit6/Miredo; the JSON has every run's raw numbers. Needs root, the
 * lab tools, Miredo (scripts/install-deps.sh) and iperf3 (installed with apt-get if missing). Every lab is torn
 * down after its measurement, also on failure and on SIGINT/SIGTERM.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { ManagedProcess } from '../src/lab/exec.js';
import { globalIpv6Addresses, missingMiredoFiles, startMiredoClient, startMiredoRelay, startMiredoServer, type MiredoDaemon } from '../src/lab/miredo.js';
import { installCleanupHandlers, listNamespaces, type Lab } from '../src/lab/netns.js';
import { clientArgs, LAB_TEREDO_IFACE, parsePing, relayArgs, serverArgs, TRANSIT6_BIN, waitForDaemon } from '../src/lab/teredo-lab.js';
import { buildTeredoTopology, LAB_RELAY_PORT, topologyClient, type TeredoTopology } from '../src/lab/teredo-topology.js';

export type Impl = 'transit6' | 'miredo';
export const IMPLS: readonly Impl[] = ['transit6', 'miredo'];

const CLIENT = 'cli-prc' as const;
const IPERF_PORT = 5201;
const TEREDO_PREFIX = '2001:0:';
const ADDRESS_POLL_MS = 10;
const ADDRESS_TIMEOUT_MS = 30_000;

export interface BenchOptions {
  runs: number;
  durationS: number;
  jsonPath: string;
  impls: Impl[];
  rates: number[];
  /** Directory for V8 CPU profiles of the transit6 daemons (node --cpu-prof), or undefined. */
  profileDir?: string;
}

export interface CpuShare {
  /** Percent of one core, user + system, the daemon and its descendants. */
  relayPct: number;
  clientPct: number;
  /** Percent of all cores busy (/proc/stat). */
  machinePct: number;
}

/** iperf3's own end-of-test sums, kept as they were. */
export type IperfEnd = Record<string, unknown>;

export interface TcpResult extends CpuShare {
  mbps: number;
  retransmits: number | null;
  iperfEnd: IperfEnd;
}

export interface UdpResult extends CpuShare {
  ratePps: number;
  sentPackets: number;
  lostPackets: number;
  seconds: number;
  deliveredPps: number;
  lossPct: number;
  iperfEnd: IperfEnd;
}

export interface RunResult {
  impl: Impl;
  run: number;
  ok: boolean;
  error?: string;
  teredoAddress?: string;
  addressMs?: number;
  rtt?: { sent: number; received: number; medianMs: number; avgMs: number; samplesMs: number[] };
  tcp?: TcpResult;
  udp: UdpResult[];
  startedAt: string;
  /** The lab's namespace prefix (t6-xxxxxx-). */
  labPrefix?: string;
  wallS?: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const now = (): number => performance.now();

// ---------------------------------------------------------------------------------------------------------------
// Arguments

function parseList<T extends string>(s: string, allowed: readonly T[], what: string): T[] {
  const out = s.split(',').map((x) => x.trim().toLowerCase()).filter((x) => x !== '');
  for (const x of out) if (!allowed.includes(x as T)) throw new Error(`unknown ${what} '${x}' (one of ${allowed.join(', ')})`);
  if (out.length === 0) throw new Error(`no ${what} given`);
  return [...new Set(out)] as T[];
}

function positiveInt(s: string, what: string): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${what} must be a positive integer, not '${s}'`);
  return n;
}

/** The repository root (dist/bench/teredo.js → ../../). */
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export function parseBenchArgs(argv: readonly string[]): BenchOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      runs: { type: 'string', default: '1' },
      duration: { type: 'string', default: '5' },
      json: { type: 'string' },
      impl: { type: 'string', default: IMPLS.join(',') },
      rates: { type: 'string', default: '20000,40000' },
      profile: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(
      'usage: node dist/bench/teredo.js [--runs N] [--duration S] [--json FILE] [--impl transit6,miredo] [--rates PPS,PPS]\n' +
        '  defaults: --runs 1 --duration 5 --rates 20000,40000 --json bench/results/teredo-<time>.json\n',
    );
    process.exit(0);
  }
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '');
  return {
    runs: positiveInt(values.runs!, '--runs'),
    durationS: positiveInt(values.duration!, '--duration'),
    jsonPath: resolve(values.json ?? join(REPO_ROOT, 'bench', 'results', `teredo-${stamp}.json`)),
    impls: parseList(values.impl!, IMPLS, 'implementation'),
    rates: values.rates!.split(',').map((x) => positiveInt(x.trim(), '--rates')),
    ...(values.profile !== undefined ? { profileDir: resolve(values.profile) } : {}),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// CPU accounting from /proc

const CLK_TCK = ((): number => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(r.stdout?.trim());
  return Number.isFinite(n) && n > 0 ? n : 100;
})();

interface ProcStat {
  ppid: number;
  ticks: number;
}

function readProcTable(): Map<number, ProcStat> {
  const table = new Map<number, ProcStat>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      // Fields after the command name: state(3) ppid(4) … utime(14) stime(15).
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      table.set(Number(e), { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) });
    } catch {
      // exited meanwhile
    }
  }
  return table;
}

/** CPU ticks (user + system) of `pid` and every live descendant. */
function treeTicks(table: Map<number, ProcStat>, pid: number): number {
  const children = new Map<number, number[]>();
  for (const [p, s] of table) {
    const list = children.get(s.ppid);
    if (list) list.push(p);
    else children.set(s.ppid, [p]);
  }
  let total = 0;
  const todo = [pid];
  const seen = new Set<number>();
  while (todo.length > 0) {
    const p = todo.pop()!;
    if (seen.has(p)) continue;
    seen.add(p);
    total += table.get(p)?.ticks ?? 0;
    todo.push(...(children.get(p) ?? []));
  }
  return total;
}

function machineTicks(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest is already in user)
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busy: total - idle, total };
}

interface CpuSnapshot {
  at: number;
  relay: number;
  client: number;
  machine: { busy: number; total: number };
}

function cpuSnapshot(relayPid: number, clientPid: number): CpuSnapshot {
  const table = readProcTable();
  return { at: now(), relay: treeTicks(table, relayPid), client: treeTicks(table, clientPid), machine: machineTicks() };
}

function cpuShare(a: CpuSnapshot, b: CpuSnapshot): CpuShare {
  const wallS = (b.at - a.at) / 1000;
  const pct = (ticks: number): number => (wallS > 0 ? (100 * ticks) / CLK_TCK / wallS : 0);
  const mt = b.machine.total - a.machine.total;
  return {
    relayPct: pct(b.relay - a.relay),
    clientPct: pct(b.client - a.client),
    machinePct: mt > 0 ? (100 * (b.machine.busy - a.machine.busy)) / mt : 0,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Daemons

interface Started {
  relay: ManagedProcess;
  client: ManagedProcess;
  teredoAddress: string;
  addressMs: number;
}

/** Polls `ip -6 addr` on the client's tunnel every 10 ms until a Teredo address is there. */
async function waitTeredoAddress(lab: Lab, client: ManagedProcess, t0: number): Promise<{ address: string; ms: number }> {
  const deadline = t0 + ADDRESS_TIMEOUT_MS;
  for (;;) {
    const addr = (await globalIpv6Addresses(lab, CLIENT, LAB_TEREDO_IFACE)).find((a) => a.startsWith(TEREDO_PREFIX));
    const t = now();
    if (addr) return { address: addr, ms: t - t0 };
    if (!client.running) throw new Error(`the client in ${client.ns} exited before it had a Teredo address; log ${client.logPath}:\n${logTail(client)}`);
    if (t > deadline) throw new Error(`no Teredo address on ${LAB_TEREDO_IFACE} in ${client.ns} within ${ADDRESS_TIMEOUT_MS} ms; log ${client.logPath}:\n${logTail(client)}`);
    await sleep(ADDRESS_POLL_MS);
  }
}

function logTail(p: ManagedProcess, lines = 12): string {
  return p.log().trimEnd().split('\n').slice(-lines).join('\n');
}

/** Node's flags for a transit6 daemon: with --profile, a CPU profile written when it exits (as nobody: dir is 0777). */
function nodeArgs(o: BenchOptions, name: string): string[] {
  return o.profileDir ? ['--cpu-prof', '--cpu-prof-dir', o.profileDir, '--cpu-prof-name', `${name}-${Date.now()}.cpuprofile`] : [];
}

async function startTransit6(lab: Lab, t: TeredoTopology, o: BenchOptions): Promise<Started> {
  const server = lab.spawn('tserver', 'server', process.execPath, [...nodeArgs(o, 'server'), TRANSIT6_BIN, ...serverArgs(t)]);
  const relay = lab.spawn('relay', 'relay', process.execPath, [...nodeArgs(o, 'relay'), TRANSIT6_BIN, ...relayArgs(t)]);
  await Promise.all([waitForDaemon(server, 'server'), waitForDaemon(relay, 'relay')]);
  const c = topologyClient(t, CLIENT);
  const t0 = now();
  const client = lab.spawn(CLIENT, 'client', process.execPath, [...nodeArgs(o, 'client'), TRANSIT6_BIN, ...clientArgs(t, c)]);
  const a = await waitTeredoAddress(lab, client, t0);
  return { relay, client, teredoAddress: a.address, addressMs: a.ms };
}

async function startMiredo(lab: Lab, t: TeredoTopology): Promise<Started> {
  const missing = missingMiredoFiles();
  if (missing.length > 0) throw new Error(`Miredo is not installed (missing ${missing.join(', ')}): run scripts/install-deps.sh`);
  const [, relay] = await Promise.all([
    startMiredoServer(lab, 'tserver', { serverBindAddress: t.server.primary }, { name: 'miredo-server' }),
    startMiredoRelay(
      lab,
      'relay',
      { relayType: 'relay', interfaceName: LAB_TEREDO_IFACE, bindAddress: t.relay.ipv4, bindPort: LAB_RELAY_PORT },
      { name: 'miredo-relay' },
    ),
  ]);
  const t0 = now();
  const client: MiredoDaemon = startMiredoClient(lab, CLIENT, { interfaceName: LAB_TEREDO_IFACE, serverAddress: t.server.primary }, { name: 'miredo-client' });
  const a = await waitTeredoAddress(lab, client.process, t0);
  return { relay: relay.process, client: client.process, teredoAddress: a.address, addressMs: a.ms };
}

// ---------------------------------------------------------------------------------------------------------------
// Measurements

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Pings v6host until one echo comes back: the relay path (and any peer state) is set up before RTT is measured. */
async function warmUp(lab: Lab, target: string): Promise<void> {
  const deadline = now() + 15_000;
  while (now() < deadline) {
    const r = await lab.exec(CLIENT, 'ping', ['-6', '-n', '-c', '1', '-W', '1', target], { allowFailure: true, timeoutMs: 5000 });
    if (r.exitCode === 0) return;
    await sleep(100);
  }
  throw new Error(`${target} did not answer a ping from ${CLIENT} within 15 s`);
}

async function measureRtt(lab: Lab, target: string): Promise<NonNullable<RunResult['rtt']>> {
  const r = await lab.exec(CLIENT, 'ping', ['-6', '-n', '-c', '20', '-i', '0.05', '-W', '1', target], { allowFailure: true, timeoutMs: 30_000 });
  const p = parsePing(r.stdout);
  const samples = p.replies.map((x) => x.ms);
  if (samples.length === 0) throw new Error(`ping ${target} from ${CLIENT}: no replies\n${r.stdout}${r.stderr}`);
  return {
    sent: p.sent,
    received: p.received,
    medianMs: median(samples),
    avgMs: samples.reduce((a, b) => a + b, 0) / samples.length,
    samplesMs: samples,
  };
}

interface IperfSum {
  seconds?: number;
  bits_per_second?: number;
  retransmits?: number;
  packets?: number;
  lost_packets?: number;
  lost_percent?: number;
}

interface IperfJson {
  error?: string;
  end?: { sum?: IperfSum; sum_sent?: IperfSum; sum_received?: IperfSum };
}

/** One iperf3 test cli-prc → v6host with a fresh `iperf3 -s -1` in v6host; CPU sampled around the client run. */
async function iperf(lab: Lab, t: TeredoTopology, d: Started, durationS: number, extra: readonly string[]): Promise<{ json: IperfJson; cpu: CpuShare }> {
  const target = t.v6host.ipv6;
  const srv = lab.spawn('v6host', `iperf3-s-${Date.now()}`, 'iperf3', ['-s', '-1', '-B', target, '-p', String(IPERF_PORT)]);
  try {
    const deadline = now() + 5000;
    for (;;) {
      const r = await lab.exec('v6host', 'ss', ['-H', '-t', '-l', '-n'], { allowFailure: true });
      if (r.stdout.includes(`:${IPERF_PORT} `) || r.stdout.includes(`:${IPERF_PORT}\t`)) break;
      if (!srv.running) throw new Error(`iperf3 -s exited at start:\n${logTail(srv)}`);
      if (now() > deadline) throw new Error(`iperf3 -s in v6host not listening within 5 s:\n${logTail(srv)}`);
      await sleep(20);
    }
    const before = cpuSnapshot(d.relay.pid, d.client.pid);
    const r = await lab.exec(CLIENT, 'iperf3', ['-c', target, '-p', String(IPERF_PORT), '-t', String(durationS), '-J', '-6', ...extra], {
      allowFailure: true,
      timeoutMs: (durationS + 30) * 1000,
    });
    const after = cpuSnapshot(d.relay.pid, d.client.pid);
    let json: IperfJson;
    try {
      json = JSON.parse(r.stdout) as IperfJson;
    } catch {
      throw new Error(`iperf3 ${extra.join(' ')}: no JSON (exit ${String(r.exitCode)}): ${r.stderr.trim() || r.stdout.slice(0, 400)}`);
    }
    if (json.error) throw new Error(`iperf3 ${extra.join(' ')}: ${json.error}`);
    if (!d.relay.running || !d.client.running) throw new Error('a daemon exited during the iperf3 test');
    await Promise.race([srv.exited, sleep(3000)]);
    return { json, cpu: cpuShare(before, after) };
  } finally {
    await srv.stop(1000);
  }
}

/** end.sum, end.sum_sent and end.sum_received as iperf3 printed them (no per-stream detail). */
function endSums(json: IperfJson): IperfEnd {
  const e = json.end ?? {};
  return { ...(e.sum ? { sum: e.sum } : {}), ...(e.sum_sent ? { sum_sent: e.sum_sent } : {}), ...(e.sum_received ? { sum_received: e.sum_received } : {}) };
}

async function measureTcp(lab: Lab, t: TeredoTopology, d: Started, durationS: number): Promise<TcpResult> {
  const { json, cpu } = await iperf(lab, t, d, durationS, []);
  const rx = json.end?.sum_received;
  if (rx?.bits_per_second === undefined) throw new Error('iperf3 TCP: no end.sum_received.bits_per_second');
  return { mbps: rx.bits_per_second / 1e6, retransmits: json.end?.sum_sent?.retransmits ?? null, ...cpu, iperfEnd: endSums(json) };
}

async function measureUdp(lab: Lab, t: TeredoTopology, d: Started, durationS: number, pps: number): Promise<UdpResult> {
  const { json, cpu } = await iperf(lab, t, d, durationS, ['-u', '-l', '64', '-b', String(pps * 512)]);
  // iperf3 3.12 puts the receiver's counts in end.sum; newer versions also in end.sum_received.
  const candidates = [json.end?.sum_received, json.end?.sum];
  const s = candidates.find((x) => x?.packets !== undefined && x.lost_packets !== undefined);
  if (!s) throw new Error('iperf3 UDP: no packet counts in end.sum');
  const seconds = s.seconds ?? durationS;
  const sent = s.packets!;
  const lost = s.lost_packets!;
  return {
    ratePps: pps,
    sentPackets: sent,
    lostPackets: lost,
    seconds,
    deliveredPps: (sent - lost) / seconds,
    lossPct: s.lost_percent ?? (sent > 0 ? (100 * lost) / sent : 0),
    ...cpu,
    iperfEnd: endSums(json),
  };
}

/** Builds a lab, starts one implementation, measures, tears everything down (also on failure). */
async function benchOne(impl: Impl, run: number, o: BenchOptions, say: (m: string) => void): Promise<RunResult> {
  const result: RunResult = { impl, run, ok: false, udp: [], startedAt: new Date().toISOString() };
  const w0 = now();
  let lab: Lab | undefined;
  try {
    const built = await buildTeredoTopology({ clients: [CLIENT] });
    lab = built.lab;
    result.labPrefix = lab.prefix;
    const t = built.topology;
    say(`  ${impl}: lab ${lab.prefix} built; starting server, relay and client`);
    const d = impl === 'transit6' ? await startTransit6(lab, t, o) : await startMiredo(lab, t);
    result.teredoAddress = d.teredoAddress;
    result.addressMs = d.addressMs;
    say(`  ${impl}: ${d.teredoAddress} after ${d.addressMs.toFixed(0)} ms`);
    await warmUp(lab, t.v6host.ipv6);
    result.rtt = await measureRtt(lab, t.v6host.ipv6);
    say(`  ${impl}: RTT median ${result.rtt.medianMs.toFixed(3)} ms (${result.rtt.received}/${result.rtt.sent})`);
    result.tcp = await measureTcp(lab, t, d, o.durationS);
    say(`  ${impl}: TCP ${result.tcp.mbps.toFixed(1)} Mbit/s, relay ${result.tcp.relayPct.toFixed(1)} %, client ${result.tcp.clientPct.toFixed(1)} %`);
    for (const pps of o.rates) {
      const u = await measureUdp(lab, t, d, o.durationS, pps);
      result.udp.push(u);
      say(`  ${impl}: UDP64 @${pps}: ${u.deliveredPps.toFixed(0)} pps delivered, ${u.lossPct.toFixed(2)} % loss, relay ${u.relayPct.toFixed(1)} %`);
    }
    result.ok = true;
  } catch (e) {
    result.error = e instanceof Error ? e.message : String(e);
    say(`  ${impl}: FAILED: ${result.error.split('\n')[0]}`);
  } finally {
    if (lab) {
      await lab.destroy().catch((e: unknown) => {
        const msg = `teardown: ${e instanceof Error ? e.message : String(e)}`;
        result.error = result.error ? `${result.error}\n${msg}` : msg;
        result.ok = false;
      });
    }
    result.wallS = (now() - w0) / 1000;
  }
  return result;
}

// ---------------------------------------------------------------------------------------------------------------
// Summary

interface Metric {
  name: string;
  /** 'higher' or 'lower' is better; for the reader only. */
  better: 'higher' | 'lower';
  digits: number;
  get: (r: RunResult) => number | undefined;
}

export function metrics(rates: readonly number[]): Metric[] {
  const udp = (r: RunResult, pps: number): UdpResult | undefined => r.udp.find((u) => u.ratePps === pps);
  const list: Metric[] = [
    { name: 'time to Teredo address (ms)', better: 'lower', digits: 0, get: (r) => r.addressMs },
    { name: 'RTT median (ms)', better: 'lower', digits: 3, get: (r) => r.rtt?.medianMs },
    { name: 'RTT mean (ms)', better: 'lower', digits: 3, get: (r) => r.rtt?.avgMs },
    { name: 'TCP throughput (Mbit/s)', better: 'higher', digits: 1, get: (r) => r.tcp?.mbps },
    { name: 'TCP retransmits', better: 'lower', digits: 0, get: (r) => r.tcp?.retransmits ?? undefined },
    { name: 'TCP relay CPU (% core)', better: 'lower', digits: 1, get: (r) => r.tcp?.relayPct },
    { name: 'TCP client CPU (% core)', better: 'lower', digits: 1, get: (r) => r.tcp?.clientPct },
    { name: 'TCP machine busy (%)', better: 'lower', digits: 1, get: (r) => r.tcp?.machinePct },
  ];
  for (const pps of rates) {
    list.push(
      { name: `UDP64 @${pps} delivered (pps)`, better: 'higher', digits: 0, get: (r) => udp(r, pps)?.deliveredPps },
      { name: `UDP64 @${pps} loss (%)`, better: 'lower', digits: 2, get: (r) => udp(r, pps)?.lossPct },
      { name: `UDP64 @${pps} relay CPU (% core)`, better: 'lower', digits: 1, get: (r) => udp(r, pps)?.relayPct },
      { name: `UDP64 @${pps} client CPU (% core)`, better: 'lower', digits: 1, get: (r) => udp(r, pps)?.clientPct },
    );
  }
  return list;
}

export interface SummaryRow {
  metric: string;
  better: 'higher' | 'lower';
  median: Partial<Record<Impl, number>>;
  perRun: Partial<Record<Impl, number[]>>;
  /** transit6 / Miredo, when both medians exist and Miredo's is not 0. */
  ratio: number | null;
}

export function summarize(results: readonly RunResult[], rates: readonly number[], impls: readonly Impl[]): SummaryRow[] {
  return metrics(rates).map((m) => {
    const row: SummaryRow = { metric: m.name, better: m.better, median: {}, perRun: {}, ratio: null };
    for (const impl of impls) {
      const xs = results.filter((r) => r.impl === impl && r.ok).map(m.get).filter((x): x is number => x !== undefined && Number.isFinite(x));
      row.perRun[impl] = xs;
      if (xs.length > 0) row.median[impl] = median(xs);
    }
    const a = row.median.transit6;
    const b = row.median.miredo;
    row.ratio = a !== undefined && b !== undefined && b !== 0 ? a / b : null;
    return row;
  });
}

function formatTable(rows: readonly SummaryRow[], rates: readonly number[]): string {
  const digits = new Map(metrics(rates).map((m) => [m.name, m.digits]));
  const fmt = (x: number | undefined, d: number): string => (x === undefined ? '-' : x.toFixed(d));
  const header = ['metric', 'transit6', 'Miredo', 'ratio', 'better'];
  const body = rows.map((r) => [
    r.metric,
    fmt(r.median.transit6, digits.get(r.metric) ?? 2),
    fmt(r.median.miredo, digits.get(r.metric) ?? 2),
    r.ratio === null ? '-' : `${r.ratio.toFixed(2)}x`,
    r.better,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

// ---------------------------------------------------------------------------------------------------------------
// Main

function ensureIperf3(say: (m: string) => void): void {
  if (spawnSync('iperf3', ['--version'], { encoding: 'utf8' }).status === 0) return;
  say('iperf3 not found: apt-get install -y iperf3');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const r = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'iperf3'], { encoding: 'utf8', env, stdio: 'inherit' });
  if (r.status !== 0 || spawnSync('iperf3', ['--version']).status !== 0) throw new Error('could not install iperf3 (apt-get install iperf3)');
}

function describeCpu(): string {
  try {
    const model = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '?';
    const n = readFileSync('/proc/cpuinfo', 'utf8').match(/^processor\s*:/gm)?.length ?? 0;
    return `${n} x ${model}`;
  } catch {
    return '?';
  }
}

export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<number> {
  const say = (m: string): void => {
    process.stderr.write(`${m}\n`);
  };
  const o = parseBenchArgs(argv);
  if (process.getuid?.() !== 0) throw new Error('the benchmark builds network namespaces: run it as root (sudo npm run bench)');
  ensureIperf3(say);
  if (o.profileDir) {
    mkdirSync(o.profileDir, { recursive: true });
    chmodSync(o.profileDir, 0o777);
  }
  installCleanupHandlers();
  // installCleanupHandlers tears the live lab down and exits on these signals; meanwhile start nothing new.
  let interrupted = false;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      interrupted = true;
    });
  }
  const t0 = now();
  const results: RunResult[] = [];
  say(`Teredo benchmark: ${o.impls.join(', ')}; ${o.runs} run(s) of ${o.durationS} s per test; UDP64 at ${o.rates.join(', ')} pps`);
  for (let run = 1; run <= o.runs; run++) {
    // Alternate the order between runs, so that neither implementation always goes first.
    const order = run % 2 === 1 ? o.impls : [...o.impls].reverse();
    for (const impl of order) {
      if (interrupted) break;
      say(`run ${run}/${o.runs}: ${impl}`);
      results.push(await benchOne(impl, run, o, say));
    }
  }
  const rows = summarize(results, o.rates, o.impls);
  // Every lab was destroyed after its measurement: check that none of its namespaces is left.
  const prefixes = results.map((r) => r.labPrefix).filter((p): p is string => p !== undefined);
  const leftovers = (await listNamespaces().catch(() => [] as string[])).filter((n) => prefixes.some((p) => n.startsWith(p)));
  const report = {
    tool: 'transit6 bench/teredo',
    date: new Date().toISOString(),
    machine: { cpus: describeCpu(), kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(), node: process.version },
    iperf3: spawnSync('iperf3', ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0] ?? '?',
    options: { runs: o.runs, durationS: o.durationS, impls: o.impls, rates: o.rates },
    path: `${CLIENT} (port-restricted NAT) -> relay 198.51.100.17:${LAB_RELAY_PORT} -> v6host 2001:db8:1::10`,
    wallS: (now() - t0) / 1000,
    leftoverNamespaces: leftovers,
    summary: rows,
    runs: results,
  };
  mkdirSync(dirname(o.jsonPath), { recursive: true });
  writeFileSync(o.jsonPath, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`\nTeredo: transit6 vs Miredo, median of ${o.runs} run(s), ${o.durationS} s per traffic test (ratio = transit6 / Miredo)\n`);
  process.stdout.write(`${formatTable(rows, o.rates)}\n`);
  const failed = results.filter((r) => !r.ok);
  for (const f of failed) process.stdout.write(`\nFAILED ${f.impl} run ${f.run}: ${f.error ?? '?'}\n`);
  if (leftovers.length > 0) process.stdout.write(`\nLEFT OVER namespaces: ${leftovers.join(' ')}\n`);
  process.stdout.write(`\nraw numbers: ${o.jsonPath}\n`);
  return failed.length > 0 || leftovers.length > 0 ? 1 : 0;
}

const invokedDirectly = process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (invokedDirectly) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`bench/teredo: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
