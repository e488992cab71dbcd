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
 *               relay path), then `ping -c 200 -i 0.02`: median and 90th percentile once the daemons are warm;
 *   - TCP:      `iperf3 -c 2001:db8:1::10 -t D -J -6` cli-prc → v6host (a fresh `iperf3 -s -1` in v6host each time);
 *   - UDP:      the same with `-u -l 64 -b <pps*512> -w 4M` at each rate: delivered packets/s and loss % (-w: both
 *               ends' socket buffers, --udp-window; with iperf3's default 208 KiB the receiving iperf3 itself
 *               drops ~0.1 % at 100k pps on the bare path, so the measurement, not the tunnel, was the limit);
 *   - CPU:      utime+stime of the relay daemon and of the client daemon (each with all its descendants: Miredo's
 *               worker and privproc) from /proc/PID/stat before and after each traffic test, over wall time
 *               (100 % = one core); "machine" is how busy all cores were (/proc/stat).
 *
 *   - UDP max:  the highest 64-byte rate delivered with < 0.1 % loss, searched upward (x1.25 from --search-start
 *               until loss, then two bisection steps), --search-duration seconds per probe; a probe where iperf3
 *               sent less than 98 % of the asked rate fails too (its single-threaded sender tops out at ~140k pps
 *               here, and then reports no loss at any rate), and the search says it hit the sender's limit;
 *   - bare:     the same search on the bare path (relay namespace -> v6host, native IPv6, no tunnel): the
 *               ceiling of the measurement on this machine, in the same run;
 *   - CPU/1k:   relay and client CPU (% of a core) per 1 000 pps delivered, from the fixed-rate UDP tests;
 *   - c2c:      client <-> client direct: cli-prc -> cli-prc2 (another port-restricted NAT) over Teredo, RTT and
 *               iperf3 TCP, no relay involved;
 *   - RS/s:     router solicitations answered per second by the server at saturation: bench/load.js rs in inet,
 *               batches of 64 from 16 source ports, as fast as sendmmsg goes (it shares the 2 cores);
 *   - RSS:      the relay's resident memory (VmRSS of its process tree; VmHWM too) after native packets from v6host
 *               to 100k and then 1M distinct Teredo addresses (bench/load.js fill, raw socket, paced), i.e. that
 *               many peer entries (transit6 runs with --max-peers 1048576, Miredo's own cap with libJudy).
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
import { clientArgs, LAB_TEREDO_IFACE, parsePing, relayArgs, serverArgs, showJson, TRANSIT6_BIN, waitForDaemon } from '../src/lab/teredo-lab.js';
import { buildTeredoTopology, LAB_RELAY_PORT, topologyClient, type TeredoTopology } from '../src/lab/teredo-topology.js';

/** transit6: its defaults (offload on: GRO into the tunnel, UDP GSO, io/gro.ts); transit6-no-offload: the same
 *  daemons with `--offload no` on the relay and the client. */
export type Impl = 'transit6' | 'transit6-no-offload' | 'miredo';
export const IMPLS: readonly Impl[] = ['transit6', 'transit6-no-offload', 'miredo'];
const DEFAULT_IMPLS: readonly Impl[] = ['transit6', 'miredo'];
const isTransit6 = (impl: Impl): boolean => impl !== 'miredo';

const CLIENT = 'cli-prc' as const;
/** The second client, for client <-> client direct: behind another port-restricted NAT. */
const CLIENT2 = 'cli-prc2' as const;
/** Miredo's own peer cap when built with libJudy, as Debian's is (libteredo relay.c MAX_PEERS). */
const MIREDO_MAX_PEERS = 1_048_576;
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
  /** Parts to leave out: rtt, tcp, udp, search, c2c, rs, rss. */
  skip: Set<string>;
  searchStart: number;
  searchDurationS: number;
  rsDurationS: number;
  fill: number[];
  /** iperf3 -w for the UDP tests (both ends' socket buffers), or undefined for iperf3's default (208 KiB here). */
  udpWindow?: string;
}

export const PARTS = ['rtt', 'tcp', 'udp', 'search', 'bare', 'c2c', 'rs', 'rss'] as const;

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

export interface UdpSearch {
  /** Highest offered rate with < 0.1 % loss that iperf3 really sent (0 if even the first probe failed). */
  bestPps: number;
  bestDeliveredPps: number;
  /** The search ended because iperf3's sender could not reach the asked rate: bestPps is the measurement's ceiling,
   *  not the path's. */
  senderLimited: boolean;
  probes: { ratePps: number; sentPps: number; deliveredPps: number; lossPct: number; relayPct: number; clientPct: number }[];
}

export interface RsResult {
  sent: number;
  answered: number;
  seconds: number;
  answeredPerS: number;
  sentPerS: number;
  serverPct: number;
  raw: Record<string, unknown>;
}

export interface RssPoint {
  /** Distinct Teredo destinations sent to so far. */
  destinations: number;
  rssKiB: number;
  hwmKiB: number;
  /** Peer entries the relay reports (transit6 only; Miredo has no such counter). */
  tablePeers: number | null;
  /** Packets the kernel handed to the relay's tunnel, and dropped at its queue, during the fill. */
  tunTx: number;
  tunDropped: number;
  fill: Record<string, unknown>;
}

export interface RunResult {
  impl: Impl;
  run: number;
  /** Every part measured (no entry in errors, no fatal error). */
  ok: boolean;
  /** Parts that failed ('c2c: ...'); the others were measured. */
  errors: string[];
  /** What stopped the whole run (lab, daemons), if anything. */
  error?: string;
  teredoAddress?: string;
  addressMs?: number;
  /** The first 20 pings after the warm-up (medianMs, avgMs, samplesMs), then 200 more 20 ms apart (steady*). */
  rtt?: { sent: number; received: number; medianMs: number; avgMs: number; samplesMs: number[]; steadyMedianMs?: number; steadyP90Ms?: number; steadyReceived?: number };
  tcp?: TcpResult;
  udp: UdpResult[];
  udpSearch?: UdpSearch;
  /** The same search on the bare path: relay namespace -> v6host over native IPv6, no tunnel, no daemon. */
  bareSearch?: UdpSearch;
  c2c?: { address2: string; rtt?: NonNullable<RunResult['rtt']>; tcp?: TcpResult };
  rs?: RsResult;
  rss: RssPoint[];
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

/** iperf3's -w: a number with an optional K/M suffix. */
function udpWindow(v: string): string {
  if (!/^[1-9][0-9]*[KM]?$/.test(v)) throw new Error(`--udp-window: '${v}' is not a size like 4M or 'default'`);
  return v;
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
      impl: { type: 'string', default: DEFAULT_IMPLS.join(',') },
      rates: { type: 'string', default: '20000,40000' },
      profile: { type: 'string' },
      skip: { type: 'string', default: '' },
      'search-start': { type: 'string', default: '40000' },
      'search-duration': { type: 'string', default: '4' },
      'rs-duration': { type: 'string', default: '5' },
      'udp-window': { type: 'string', default: '4M' },
      fill: { type: 'string', default: '100000,1000000' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(
      'usage: node dist/bench/teredo.js [--runs N] [--duration S] [--json FILE] [--impl transit6,transit6-no-offload,miredo] [--rates PPS,PPS]\n' +
        '         [--search-start PPS] [--search-duration S] [--rs-duration S] [--fill N,N] [--skip PART,...] [--profile DIR]\n' +
        '         [--udp-window SIZE|default]\n' +
        '  defaults: --runs 1 --duration 5 --rates 20000,40000 --search-start 40000 --search-duration 4 --rs-duration 5\n' +
        '            --fill 100000,1000000 --udp-window 4M --json bench/results/teredo-<time>.json\n' +
        '  parts: rtt, tcp, udp, search, bare, c2c, rs, rss\n' +
        '       node dist/bench/teredo.js --summarize FILE   (the table again from a JSON report)\n',
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
    skip: new Set(values.skip!.split(',').map((x) => x.trim()).filter((x) => x !== '').map((x) => {
      if (!(PARTS as readonly string[]).includes(x)) throw new Error(`--skip: unknown part '${x}' (${PARTS.join(', ')})`);
      return x;
    })),
    searchStart: positiveInt(values['search-start']!, '--search-start'),
    searchDurationS: positiveInt(values['search-duration']!, '--search-duration'),
    rsDurationS: positiveInt(values['rs-duration']!, '--rs-duration'),
    ...(values['udp-window'] === 'default' ? {} : { udpWindow: udpWindow(values['udp-window']!) }),
    fill: values.fill!.split(',').map((x) => positiveInt(x.trim(), '--fill')).sort((a, b) => a - b),
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
  impl: Impl;
  server: ManagedProcess;
  relay: ManagedProcess;
  client: ManagedProcess;
  teredoAddress: string;
  addressMs: number;
  client2?: ManagedProcess;
  teredoAddress2?: string;
}

/** Polls `ip -6 addr` on the client's tunnel every 10 ms until a Teredo address is there. */
async function waitTeredoAddress(lab: Lab, client: ManagedProcess, t0: number, ns: string = CLIENT): Promise<{ address: string; ms: number }> {
  const deadline = t0 + ADDRESS_TIMEOUT_MS;
  for (;;) {
    const addr = (await globalIpv6Addresses(lab, ns, LAB_TEREDO_IFACE)).find((a) => a.startsWith(TEREDO_PREFIX));
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

const SERVER_LIMITS_OFF = ['--rs-rate-limit', 'no', '--rs-global-rate-limit', 'no', '--forward-rate-limit', 'no'];
const RELAY_LIMITS_OFF = ['--new-peer-rate-limit', 'no', '--new-peer-global-rate-limit', 'no', '--icmp-error-rate-limit', 'no'];

/** Node's flags for a transit6 daemon: with --profile, a CPU profile written when it exits (as nobody: dir is 0777). */
function nodeArgs(o: BenchOptions, name: string): string[] {
  return o.profileDir ? ['--cpu-prof', '--cpu-prof-dir', o.profileDir, '--cpu-prof-name', `${name}-${Date.now()}.cpuprofile`] : [];
}

async function startTransit6(lab: Lab, t: TeredoTopology, o: BenchOptions, offload: boolean): Promise<Started> {
  const off = ['--offload', offload ? 'yes' : 'no'];
  // Capacity is measured with the per-source and global rate limits off (Miredo has none): the load generator's
  // 16 ports share one address, and the 1M fill is far above the relay's default new-peer limit.
  const server = lab.spawn('tserver', 'server', process.execPath, [...nodeArgs(o, 'server'), TRANSIT6_BIN, ...serverArgs(t), ...SERVER_LIMITS_OFF]);
  const relay = lab.spawn('relay', 'relay', process.execPath, [...nodeArgs(o, 'relay'), TRANSIT6_BIN, ...relayArgs(t), '--max-peers', String(MIREDO_MAX_PEERS), ...RELAY_LIMITS_OFF, ...off]);
  await Promise.all([waitForDaemon(server, 'server'), waitForDaemon(relay, 'relay')]);
  const c = topologyClient(t, CLIENT);
  const t0 = now();
  const client = lab.spawn(CLIENT, 'client', process.execPath, [...nodeArgs(o, 'client'), TRANSIT6_BIN, ...clientArgs(t, c, off)]);
  const a = await waitTeredoAddress(lab, client, t0);
  const started: Started = { impl: offload ? 'transit6' : 'transit6-no-offload', server, relay, client, teredoAddress: a.address, addressMs: a.ms };
  if (!o.skip.has('c2c')) {
    const c2 = topologyClient(t, CLIENT2);
    started.client2 = lab.spawn(CLIENT2, 'client2', process.execPath, [TRANSIT6_BIN, ...clientArgs(t, c2, off)]);
    started.teredoAddress2 = (await waitTeredoAddress(lab, started.client2, now(), CLIENT2)).address;
  }
  return started;
}

async function startMiredo(lab: Lab, t: TeredoTopology, o: BenchOptions): Promise<Started> {
  const missing = missingMiredoFiles();
  if (missing.length > 0) throw new Error(`Miredo is not installed (missing ${missing.join(', ')}): run scripts/install-deps.sh`);
  const [server, relay] = await Promise.all([
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
  const started: Started = { impl: 'miredo', server: server.process, relay: relay.process, client: client.process, teredoAddress: a.address, addressMs: a.ms };
  if (!o.skip.has('c2c')) {
    const c2 = startMiredoClient(lab, CLIENT2, { interfaceName: LAB_TEREDO_IFACE, serverAddress: t.server.primary }, { name: 'miredo-client2' });
    started.client2 = c2.process;
    started.teredoAddress2 = (await waitTeredoAddress(lab, c2.process, now(), CLIENT2)).address;
  }
  return started;
}

// ---------------------------------------------------------------------------------------------------------------
// Measurements

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Pings v6host until one echo comes back: the relay path (and any peer state) is set up before RTT is measured. */
async function warmUp(lab: Lab, target: string, from: string = CLIENT): Promise<void> {
  const deadline = now() + 15_000;
  while (now() < deadline) {
    const r = await lab.exec(from, 'ping', ['-6', '-n', '-c', '1', '-W', '1', target], { allowFailure: true, timeoutMs: 5000 });
    if (r.exitCode === 0) return;
    await sleep(100);
  }
  throw new Error(`${target} did not answer a ping from ${from} within 15 s`);
}

/** RTT: 20 pings 50 ms apart right after the warm-up (what a new connection sees), then 200 pings 20 ms apart. */
async function measureRtt(lab: Lab, target: string, from: string = CLIENT): Promise<NonNullable<RunResult['rtt']>> {
  const ping = async (count: number, interval: string): Promise<{ sent: number; received: number; samples: number[] }> => {
    const r = await lab.exec(from, 'ping', ['-6', '-n', '-c', String(count), '-i', interval, '-W', '1', target], { allowFailure: true, timeoutMs: 30_000 });
    const p = parsePing(r.stdout);
    const samples = p.replies.map((x) => x.ms);
    if (samples.length === 0) throw new Error(`ping ${target} from ${from}: no replies\n${r.stdout}${r.stderr}`);
    return { sent: p.sent, received: p.received, samples };
  };
  const first = await ping(20, '0.05');
  const steady = await ping(200, '0.02');
  return {
    sent: first.sent,
    received: first.received,
    medianMs: median(first.samples),
    avgMs: first.samples.reduce((a, b) => a + b, 0) / first.samples.length,
    samplesMs: first.samples,
    steadyMedianMs: median(steady.samples),
    steadyP90Ms: quantile(steady.samples, 0.9),
    steadyReceived: steady.received,
  };
}

/** The q-quantile (nearest rank) of xs. */
function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
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

/** Where an iperf3 test runs: client namespace, server namespace and the address the server binds. */
interface IperfPath {
  from: string;
  serverNs: string;
  target: string;
}

/** One iperf3 test (default cli-prc → v6host) with a fresh `iperf3 -s -1`; CPU sampled around the client run. */
async function iperf(lab: Lab, path: IperfPath, d: Started, durationS: number, extra: readonly string[]): Promise<{ json: IperfJson; cpu: CpuShare }> {
  const { target, serverNs, from } = path;
  const srv = lab.spawn(serverNs, `iperf3-s-${Date.now()}`, 'iperf3', ['-s', '-1', '-B', target, '-p', String(IPERF_PORT)]);
  try {
    const deadline = now() + 5000;
    for (;;) {
      const r = await lab.exec(serverNs, 'ss', ['-H', '-t', '-l', '-n'], { allowFailure: true });
      if (r.stdout.includes(`:${IPERF_PORT} `) || r.stdout.includes(`:${IPERF_PORT}\t`)) break;
      if (!srv.running) throw new Error(`iperf3 -s exited at start:\n${logTail(srv)}`);
      if (now() > deadline) throw new Error(`iperf3 -s in ${serverNs} not listening within 5 s:\n${logTail(srv)}`);
      await sleep(20);
    }
    const before = cpuSnapshot(d.relay.pid, d.client.pid);
    const r = await lab.exec(from, 'iperf3', ['-c', target, '-p', String(IPERF_PORT), '-t', String(durationS), '-J', '-6', ...extra], {
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

function v6hostPath(t: TeredoTopology): IperfPath {
  return { from: CLIENT, serverNs: 'v6host', target: t.v6host.ipv6 };
}

async function measureTcp(lab: Lab, path: IperfPath, d: Started, durationS: number): Promise<TcpResult> {
  const { json, cpu } = await iperf(lab, path, d, durationS, []);
  const rx = json.end?.sum_received;
  if (rx?.bits_per_second === undefined) throw new Error('iperf3 TCP: no end.sum_received.bits_per_second');
  return { mbps: rx.bits_per_second / 1e6, retransmits: json.end?.sum_sent?.retransmits ?? null, ...cpu, iperfEnd: endSums(json) };
}

/** The bare path for the ceiling of the measurement itself: relay namespace -> v6host, native IPv6. */
function barePath(t: TeredoTopology): IperfPath {
  return { from: 'relay', serverNs: 'v6host', target: t.v6host.ipv6 };
}

async function measureUdp(lab: Lab, path: IperfPath, d: Started, durationS: number, pps: number, window: string | undefined): Promise<UdpResult> {
  const w = window !== undefined ? ['-w', window] : [];
  const { json, cpu } = await iperf(lab, path, d, durationS, ['-u', '-l', '64', '-b', String(pps * 512), ...w]);
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

const LOSS_LIMIT_PCT = 0.1;
/** A probe counts only if iperf3 sent at least this share of the asked rate: a single-threaded 64-byte sender tops out
 *  near 140k pps here, and above that it sends less without loss, which says nothing about the path. */
const SENT_MIN_SHARE = 0.98;
const step = (pps: number): number => Math.round((pps * 1.25) / 1000) * 1000;

/** Whether a probe passes: < 0.1 % loss at (nearly) the asked rate; 'sender' when iperf3 itself fell short. */
export function probeVerdict(u: Pick<UdpResult, 'ratePps' | 'sentPackets' | 'seconds' | 'lossPct'>): 'pass' | 'loss' | 'sender' {
  if (u.seconds <= 0 || u.sentPackets / u.seconds < SENT_MIN_SHARE * u.ratePps) return 'sender';
  return u.lossPct < LOSS_LIMIT_PCT ? 'pass' : 'loss';
}

/** The highest 64-byte rate with < 0.1 % loss: x1.25 steps up from `start` until a probe loses, then bisect twice. */
async function searchUdp(lab: Lab, path: IperfPath, d: Started, o: BenchOptions, say: (m: string) => void): Promise<UdpSearch> {
  const probes: UdpSearch['probes'] = [];
  let senderLimited = false;
  const probe = async (pps: number): Promise<boolean> => {
    const u = await measureUdp(lab, path, d, o.searchDurationS, pps, o.udpWindow);
    const sentPps = u.seconds > 0 ? u.sentPackets / u.seconds : 0;
    probes.push({ ratePps: pps, sentPps, deliveredPps: u.deliveredPps, lossPct: u.lossPct, relayPct: u.relayPct, clientPct: u.clientPct });
    const verdict = probeVerdict(u);
    if (verdict === 'sender') senderLimited = true;
    say(`    probe ${pps} pps: ${u.lossPct.toFixed(3)} % loss${verdict === 'sender' ? `, iperf3 sent only ${sentPps.toFixed(0)} pps` : ''}`);
    return verdict === 'pass';
  };
  // Bracket: up x1.25 while lossless; if the start already loses, down /2 until a rate is lossless (or 1k pps).
  let good = 0;
  let bad = 0;
  if (await probe(o.searchStart)) {
    good = o.searchStart;
    for (let pps = step(good); pps <= 2_000_000; pps = step(pps)) {
      if (await probe(pps)) good = pps;
      else {
        bad = pps;
        break;
      }
    }
  } else {
    bad = o.searchStart;
    for (let pps = Math.round(bad / 2000) * 1000; pps >= 1000; pps = Math.round(pps / 2000) * 1000) {
      if (await probe(pps)) {
        good = pps;
        break;
      }
      bad = pps;
    }
  }
  // Then bisect twice between the last lossless and the first lossy rate.
  for (let i = 0; i < 2 && good > 0 && bad - good > 2000; i++) {
    const mid = Math.round((good + bad) / 2000) * 1000;
    if (await probe(mid)) good = mid;
    else bad = mid;
  }
  const best = probes.filter((p) => p.ratePps === good).at(-1);
  return { bestPps: good, bestDeliveredPps: best?.deliveredPps ?? 0, senderLimited, probes };
}

/** VmRSS and VmHWM (KiB) summed over a process and its descendants. */
function treeMemory(pid: number): { rssKiB: number; hwmKiB: number } {
  const table = readProcTable();
  const pids: number[] = [];
  const todo = [pid];
  while (todo.length > 0) {
    const p = todo.pop()!;
    pids.push(p);
    for (const [c, s] of table) if (s.ppid === p) todo.push(c);
  }
  let rssKiB = 0;
  let hwmKiB = 0;
  for (const p of pids) {
    try {
      const st = readFileSync(`/proc/${p}/status`, 'utf8');
      rssKiB += Number(/VmRSS:\s+(\d+)/.exec(st)?.[1] ?? 0);
      hwmKiB += Number(/VmHWM:\s+(\d+)/.exec(st)?.[1] ?? 0);
    } catch {
      // exited
    }
  }
  return { rssKiB, hwmKiB };
}

/** Fill pace, below what either relay sustains here while also bubbling and expiring the earlier entries (Miredo keeps an entry 30 s). */
const FILL_PPS = 25_000;

const LOAD_BIN = fileURLToPath(new URL('./load.js', import.meta.url));

async function runLoad(lab: Lab, ns: string, args: string[], timeoutMs: number): Promise<Record<string, unknown>> {
  const r = await lab.exec(ns, process.execPath, [LOAD_BIN, ...args], { allowFailure: true, timeoutMs });
  if (r.exitCode !== 0) throw new Error(`bench/load ${args[0]} in ${ns}: exit ${String(r.exitCode)}: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
}

/** The server at saturation: RS from inet as fast as the load generator goes, RAs counted. */
async function measureRs(lab: Lab, t: TeredoTopology, d: Started, o: BenchOptions): Promise<RsResult> {
  const table0 = readProcTable();
  const t0 = now();
  const before = treeTicks(table0, d.server.pid);
  const raw = await runLoad(lab, 'inet', ['rs', '--server', t.server.primary, '--duration', String(o.rsDurationS)], (o.rsDurationS + 30) * 1000);
  const after = treeTicks(readProcTable(), d.server.pid);
  const wallS = (now() - t0) / 1000;
  if (isTransit6(d.impl)) raw.serverStats = await showJson(lab.ns('tserver'), 'stats', 'server').catch((e: unknown) => String(e));
  return {
    sent: Number(raw.sent),
    answered: Number(raw.answered),
    seconds: Number(raw.seconds),
    answeredPerS: Number(raw.answeredPerS),
    sentPerS: Number(raw.sentPerS),
    serverPct: (100 * (after - before)) / CLK_TCK / wallS,
    raw,
  };
}

async function tunCounters(lab: Lab): Promise<{ tx: number; dropped: number }> {
  const r = await lab.exec('relay', 'ip', ['-s', '-j', 'link', 'show', 'dev', LAB_TEREDO_IFACE], { allowFailure: true });
  try {
    const j = JSON.parse(r.stdout) as { stats64?: { tx?: { packets?: number; dropped?: number } } }[];
    return { tx: j[0]?.stats64?.tx?.packets ?? 0, dropped: j[0]?.stats64?.tx?.dropped ?? 0 };
  } catch {
    return { tx: 0, dropped: 0 };
  }
}

/** Peer entries: native packets from v6host to N distinct Teredo addresses, then the relay's memory. */
async function measureRss(lab: Lab, t: TeredoTopology, d: Started, impl: Impl, o: BenchOptions, say: (m: string) => void): Promise<RssPoint[]> {
  const out: RssPoint[] = [];
  let done = 0;
  // A deeper tunnel queue for both implementations (Miredo's is 500): the fill measures memory, not burst loss.
  await lab.ip('relay', ['link', 'set', 'dev', LAB_TEREDO_IFACE, 'txqueuelen', '10000']);
  for (const target of o.fill) {
    const count = target - done;
    if (count <= 0) continue;
    const c0 = await tunCounters(lab);
    const fill = await runLoad(lab, 'v6host', ['fill', '--server', t.server.primary, '--start', String(done), '--count', String(count), '--pps', String(FILL_PPS)], 600_000);
    done = target;
    await sleep(1000); // let the relay finish reading its queue
    const c1 = await tunCounters(lab);
    let tablePeers: number | null = null;
    if (isTransit6(impl)) {
      const st = await showJson<{ peers?: number }>(lab.ns('relay'), 'stats', 'relay').catch(() => undefined);
      tablePeers = typeof st?.peers === 'number' ? st.peers : null;
    }
    const mem = treeMemory(d.relay.pid);
    out.push({ destinations: target, ...mem, tablePeers, tunTx: c1.tx - c0.tx, tunDropped: c1.dropped - c0.dropped, fill });
    say(`  ${impl}: ${target} peers: relay RSS ${(mem.rssKiB / 1024).toFixed(0)} MiB (peak ${(mem.hwmKiB / 1024).toFixed(0)} MiB), table ${tablePeers ?? '?'}, tun ${c1.tx - c0.tx} in / ${c1.dropped - c0.dropped} dropped`);
    if (!d.relay.running) throw new Error('the relay exited during the peer fill');
  }
  return out;
}

/** Builds a lab, starts one implementation, measures, tears everything down (also on failure). */
async function benchOne(impl: Impl, run: number, o: BenchOptions, say: (m: string) => void): Promise<RunResult> {
  const result: RunResult = { impl, run, ok: false, errors: [], udp: [], rss: [], startedAt: new Date().toISOString() };
  const w0 = now();
  let lab: Lab | undefined;
  try {
    const built = await buildTeredoTopology({ clients: o.skip.has('c2c') ? [CLIENT] : [CLIENT, CLIENT2] });
    lab = built.lab;
    result.labPrefix = lab.prefix;
    const t = built.topology;
    say(`  ${impl}: lab ${lab.prefix} built; starting server, relay and client(s)`);
    const d = isTransit6(impl) ? await startTransit6(lab, t, o, impl === 'transit6') : await startMiredo(lab, t, o);
    result.teredoAddress = d.teredoAddress;
    result.addressMs = d.addressMs;
    say(`  ${impl}: ${d.teredoAddress} after ${d.addressMs.toFixed(0)} ms`);
    // Each part on its own: one that fails (say, Miredo's client-to-client ping) is recorded and the rest go on.
    const part = async (name: string, fn: () => Promise<void>): Promise<void> => {
      if (o.skip.has(name)) return;
      try {
        await fn();
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        result.errors.push(`${name}: ${msg}`);
        say(`  ${impl}: ${name} FAILED: ${msg.split('\n')[0]}`);
        if (!d.relay.running || !d.client.running) throw new Error(`a daemon exited during ${name}`);
      }
    };
    await part('rtt', async () => {
      await warmUp(lab!, t.v6host.ipv6);
      result.rtt = await measureRtt(lab!, t.v6host.ipv6);
      say(`  ${impl}: RTT median ${result.rtt.medianMs.toFixed(3)} ms (${result.rtt.received}/${result.rtt.sent}), then ${result.rtt.steadyMedianMs?.toFixed(3)} ms (90 % under ${result.rtt.steadyP90Ms?.toFixed(3)})`);
    });
    await part('tcp', async () => {
      result.tcp = await measureTcp(lab!, v6hostPath(t), d, o.durationS);
      say(`  ${impl}: TCP ${result.tcp.mbps.toFixed(1)} Mbit/s, relay ${result.tcp.relayPct.toFixed(1)} %, client ${result.tcp.clientPct.toFixed(1)} %`);
    });
    await part('udp', async () => {
      for (const pps of o.rates) {
        const u = await measureUdp(lab!, v6hostPath(t), d, o.durationS, pps, o.udpWindow);
        result.udp.push(u);
        say(`  ${impl}: UDP64 @${pps}: ${u.deliveredPps.toFixed(0)} pps delivered, ${u.lossPct.toFixed(2)} % loss, relay ${u.relayPct.toFixed(1)} %, client ${u.clientPct.toFixed(1)} %`);
      }
    });
    await part('search', async () => {
      result.udpSearch = await searchUdp(lab!, v6hostPath(t), d, o, say);
      say(`  ${impl}: UDP64 highest rate with < ${LOSS_LIMIT_PCT} % loss: ${result.udpSearch.bestPps} pps${result.udpSearch.senderLimited ? " (iperf3's sender limit)" : ''}`);
    });
    await part('bare', async () => {
      result.bareSearch = await searchUdp(lab!, barePath(t), d, o, say);
      say(`  ${impl}: bare path (no tunnel): UDP64 highest rate with < ${LOSS_LIMIT_PCT} % loss: ${result.bareSearch.bestPps} pps${result.bareSearch.senderLimited ? " (iperf3's sender limit)" : ''}`);
    });
    await part('c2c', async () => {
      const a2 = d.teredoAddress2;
      if (!a2) throw new Error('no second client');
      result.c2c = { address2: a2 };
      await warmUp(lab!, a2);
      result.c2c.rtt = await measureRtt(lab!, a2);
      if (!o.skip.has('tcp')) result.c2c.tcp = await measureTcp(lab!, { from: CLIENT, serverNs: CLIENT2, target: a2 }, d, o.durationS);
      say(`  ${impl}: client<->client RTT ${result.c2c.rtt.medianMs.toFixed(3)} ms, TCP ${result.c2c.tcp?.mbps.toFixed(1) ?? '-'} Mbit/s`);
    });
    await part('rs', async () => {
      result.rs = await measureRs(lab!, t, d, o);
      say(`  ${impl}: server ${result.rs.answeredPerS.toFixed(0)} RS answered/s (${result.rs.sentPerS.toFixed(0)} sent/s), server CPU ${result.rs.serverPct.toFixed(1)} %`);
    });
    await part('rss', async () => {
      result.rss = await measureRss(lab!, t, d, impl, o, say);
    });
    result.ok = result.errors.length === 0;
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
  /** The same for every implementation (a ceiling of the measurement): no ratio. */
  noRatio?: true;
}

export function metrics(rates: readonly number[], fill: readonly number[] = []): Metric[] {
  const udp = (r: RunResult, pps: number): UdpResult | undefined => r.udp.find((u) => u.ratePps === pps);
  const per1k = (pct: number | undefined, pps: number | undefined): number | undefined => (pct === undefined || !pps ? undefined : pct / (pps / 1000));
  const list: Metric[] = [
    { name: 'time to qualified, address on the interface (ms)', better: 'lower', digits: 0, get: (r) => r.addressMs },
    { name: 'RTT median, first 20 pings (ms)', better: 'lower', digits: 3, get: (r) => r.rtt?.medianMs },
    { name: 'RTT mean, first 20 pings (ms)', better: 'lower', digits: 3, get: (r) => r.rtt?.avgMs },
    { name: 'RTT median, 200 pings after those (ms)', better: 'lower', digits: 3, get: (r) => r.rtt?.steadyMedianMs },
    { name: 'RTT 90th percentile, the 200 pings (ms)', better: 'lower', digits: 3, get: (r) => r.rtt?.steadyP90Ms },
    { name: 'TCP throughput (Mbit/s)', better: 'higher', digits: 1, get: (r) => r.tcp?.mbps },
    { name: 'TCP retransmits', better: 'lower', digits: 0, get: (r) => r.tcp?.retransmits ?? undefined },
    { name: 'TCP relay CPU (% core)', better: 'lower', digits: 1, get: (r) => r.tcp?.relayPct },
    { name: 'TCP client CPU (% core)', better: 'lower', digits: 1, get: (r) => r.tcp?.clientPct },
    { name: 'TCP machine busy (%)', better: 'lower', digits: 1, get: (r) => r.tcp?.machinePct },
    { name: 'UDP64 highest rate with <0.1 % loss (pps)', better: 'higher', digits: 0, get: (r) => r.udpSearch?.bestPps },
    { name: '  the same search on the bare path, no tunnel (pps)', better: 'higher', digits: 0, get: (r) => r.bareSearch?.bestPps, noRatio: true },
  ];
  for (const pps of rates) {
    list.push(
      { name: `UDP64 @${pps} delivered (pps)`, better: 'higher', digits: 0, get: (r) => udp(r, pps)?.deliveredPps },
      { name: `UDP64 @${pps} loss (%)`, better: 'lower', digits: 2, get: (r) => udp(r, pps)?.lossPct },
      { name: `UDP64 @${pps} relay CPU per 1k pps (% core)`, better: 'lower', digits: 2, get: (r) => per1k(udp(r, pps)?.relayPct, udp(r, pps)?.deliveredPps) },
      { name: `UDP64 @${pps} client CPU per 1k pps (% core)`, better: 'lower', digits: 2, get: (r) => per1k(udp(r, pps)?.clientPct, udp(r, pps)?.deliveredPps) },
    );
  }
  list.push(
    { name: 'client<->client RTT median, first 20 pings (ms)', better: 'lower', digits: 3, get: (r) => r.c2c?.rtt?.medianMs },
    { name: 'client<->client RTT median, 200 pings after those (ms)', better: 'lower', digits: 3, get: (r) => r.c2c?.rtt?.steadyMedianMs },
    { name: 'client<->client TCP (Mbit/s)', better: 'higher', digits: 1, get: (r) => r.c2c?.tcp?.mbps },
    { name: 'server RS answered per second', better: 'higher', digits: 0, get: (r) => r.rs?.answeredPerS },
    { name: 'server CPU at saturation (% core)', better: 'lower', digits: 1, get: (r) => r.rs?.serverPct },
  );
  for (const n of fill) {
    const point = (r: RunResult): RssPoint | undefined => r.rss.find((x) => x.destinations === n);
    const label = n % 1_000_000 === 0 ? `${n / 1_000_000}M` : n % 1000 === 0 ? `${n / 1000}k` : String(n);
    const readSoFar = (r: RunResult): number | undefined => {
      const pts = r.rss.filter((x) => x.destinations <= n);
      return pts.length === 0 ? undefined : pts.reduce((a, x) => a + x.tunTx, 0);
    };
    list.push(
      { name: `relay RSS after ${label} destinations (MiB)`, better: 'lower', digits: 0, get: (r) => (point(r) ? point(r)!.rssKiB / 1024 : undefined) },
      { name: `relay peak RSS after ${label} destinations (MiB)`, better: 'lower', digits: 0, get: (r) => (point(r) ? point(r)!.hwmKiB / 1024 : undefined) },
      { name: `  of ${label}: packets the relay read (rest dropped at its tunnel queue)`, better: 'higher', digits: 0, get: readSoFar },
      { name: `  of ${label}: entries in the peer table (transit6 only)`, better: 'higher', digits: 0, get: (r) => point(r)?.tablePeers ?? undefined },
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
  /** transit6 with --offload no / Miredo, the same way. */
  ratioNoOffload: number | null;
}

export function summarize(results: readonly RunResult[], rates: readonly number[], impls: readonly Impl[], fill: readonly number[] = []): SummaryRow[] {
  return metrics(rates, fill).map((m) => {
    const row: SummaryRow = { metric: m.name, better: m.better, median: {}, perRun: {}, ratio: null, ratioNoOffload: null };
    for (const impl of impls) {
      // Partial runs count for the parts they measured (RunResult.errors lists the others).
      const xs = results.filter((r) => r.impl === impl).map(m.get).filter((x): x is number => x !== undefined && Number.isFinite(x));
      row.perRun[impl] = xs;
      if (xs.length > 0) row.median[impl] = median(xs);
    }
    if (m.noRatio) return row;
    const a = row.median.transit6;
    const b = row.median.miredo;
    row.ratio = a !== undefined && b !== undefined && b !== 0 ? a / b : null;
    const c = row.median['transit6-no-offload'];
    row.ratioNoOffload = c !== undefined && b !== undefined && b !== 0 ? c / b : null;
    return row;
  });
}

export function formatTable(rows: readonly SummaryRow[], rates: readonly number[], fill: readonly number[] = []): string {
  const digits = new Map(metrics(rates, fill).map((m) => [m.name, m.digits]));
  const fmt = (x: number | undefined, d: number): string => (x === undefined ? '-' : x.toFixed(d));
  // The no-offload columns only when transit6-no-offload was measured.
  const off = rows.some((r) => r.median['transit6-no-offload'] !== undefined);
  const ratio = (x: number | null): string => (x === null ? '-' : `${x.toFixed(2)}x`);
  const header = off
    ? ['metric', 'transit6', 'no offload', 'Miredo', 'ratio', 'ratio no offload', 'better']
    : ['metric', 'transit6', 'Miredo', 'ratio', 'better'];
  const body = rows.map((r) => {
    const d = digits.get(r.metric) ?? 2;
    return off
      ? [r.metric, fmt(r.median.transit6, d), fmt(r.median['transit6-no-offload'], d), fmt(r.median.miredo, d), ratio(r.ratio), ratio(r.ratioNoOffload), r.better]
      : [r.metric, fmt(r.median.transit6, d), fmt(r.median.miredo, d), ratio(r.ratio), r.better];
  });
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

/** `--summarize FILE`: the table again from a JSON report (runs, rates and fill as recorded). */
function summarizeFile(path: string): number {
  const report = JSON.parse(readFileSync(path, 'utf8')) as { options: { rates: number[]; impls: Impl[]; fill?: number[]; skip?: string[]; runs: number; durationS: number }; runs: RunResult[] };
  const { rates, impls } = report.options;
  const fill = report.options.skip?.includes('rss') ? [] : (report.options.fill ?? []);
  const runs = report.runs.map((r) => ({ ...r, errors: r.errors ?? [], rss: r.rss ?? [] }));
  process.stdout.write(`Teredo: transit6 vs Miredo, median of ${report.options.runs} run(s), ${report.options.durationS} s per traffic test (ratio = transit6 / Miredo)\n`);
  process.stdout.write(`${formatTable(summarize(runs, rates, impls, fill), rates, fill)}\n`);
  for (const f of runs.filter((r) => !r.ok)) process.stdout.write(`\npartial ${f.impl} run ${f.run}: ${[...f.errors, ...(f.error ? [f.error] : [])].map((e) => e.split('\n')[0]).join('; ')}\n`);
  return 0;
}

export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<number> {
  const say = (m: string): void => {
    process.stderr.write(`${m}\n`);
  };
  const si = argv.indexOf('--summarize');
  if (si >= 0) {
    if (argv[si + 1] === undefined) throw new Error('--summarize needs a JSON file');
    return summarizeFile(argv[si + 1]!);
  }
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
  const fill = o.skip.has('rss') ? [] : o.fill;
  const rows = summarize(results, o.rates, o.impls, fill);
  // Every lab was destroyed after its measurement: check that none of its namespaces is left.
  const prefixes = results.map((r) => r.labPrefix).filter((p): p is string => p !== undefined);
  const leftovers = (await listNamespaces().catch(() => [] as string[])).filter((n) => prefixes.some((p) => n.startsWith(p)));
  const report = {
    tool: 'transit6 bench/teredo',
    date: new Date().toISOString(),
    machine: { cpus: describeCpu(), kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(), node: process.version },
    iperf3: spawnSync('iperf3', ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0] ?? '?',
    options: { runs: o.runs, durationS: o.durationS, impls: o.impls, rates: o.rates, skip: [...o.skip], searchStart: o.searchStart, searchDurationS: o.searchDurationS, rsDurationS: o.rsDurationS, fill: o.fill, udpWindow: o.udpWindow ?? 'default' },
    command: process.argv.slice(1).join(' '),
    path: `${CLIENT} (port-restricted NAT) -> relay 198.51.100.17:${LAB_RELAY_PORT} -> v6host 2001:db8:1::10`,
    wallS: (now() - t0) / 1000,
    leftoverNamespaces: leftovers,
    summary: rows,
    runs: results,
  };
  mkdirSync(dirname(o.jsonPath), { recursive: true });
  writeFileSync(o.jsonPath, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`\nTeredo: transit6 vs Miredo, median of ${o.runs} run(s), ${o.durationS} s per traffic test (ratio = transit6 / Miredo)\n`);
  process.stdout.write(`${formatTable(rows, o.rates, fill)}\n`);
  const failed = results.filter((r) => !r.ok);
  for (const f of failed) process.stdout.write(`\nFAILED ${f.impl} run ${f.run}: ${[...f.errors, ...(f.error ? [f.error] : [])].map((e) => e.split('\n')[0]).join('; ')}\n`);
  if (leftovers.length > 0) process.stdout.write(`\nLEFT OVER namespaces: ${leftovers.join(' ')}\n`);
  process.stdout.write(`\nraw numbers: ${o.jsonPath}\n`);
  // What Miredo fails at (its clients behind two port-restricted NATs often never reach each other) is a result of
  // the comparison, shown above; the command fails for our own failures and for anything left behind.
  return failed.some((r) => r.impl !== 'miredo') || leftovers.length > 0 ? 1 : 0;
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
