/**
 * Our Teredo daemons in the Teredo lab (teredo-topology.ts): the server in tserver (198.51.100.1 and .2), the relay
 * in relay (198.51.100.17:3545, interface teredo) and a client in each client namespace, configured as Miredo was in
 * the reference study (shared/reference/miredo-lab-report.md §3). Then: what each daemon says about itself
 * (`transit6 teredo show … --json`, run inside its namespace), the NATs' real mappings (conntrack in the NAT
 * namespace), and reachability measured with real pings, against what RFC 6081 expects.
 *
 * Used by `transit6 lab up|status` (src/cli/lab.ts) and test/lab/teredo-daemons.test.ts.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClientStateJson, PeersJson } from '../io/control.js';
import { formatIpv4, formatIpv4Port, parseIpv6 } from '../wire/ip.js';
import { decodeTeredoAddress } from '../wire/teredo.js';
import { inNs, type ManagedProcess, type RunResult } from './exec.js';
import type { ConntrackUdpEntry, Lab, NatKind } from './netns.js';
import {
  buildTeredoTopology,
  LAB_RELAY_PORT,
  TEREDO_SERVER_PORT,
  topologyClient,
  type ClientInfo,
  type ClientName,
  type TeredoLab,
  type TeredoTopology,
  type TeredoTopologyOptions,
} from './teredo-topology.js';

/** bin/transit6.js of this checkout (from dist/src/lab/). */
export const TRANSIT6_BIN = fileURLToPath(new URL('../../../bin/transit6.js', import.meta.url));
/** The tunnel name every lab daemon uses (report §3: InterfaceName teredo). */
export const LAB_TEREDO_IFACE = 'teredo';
/** Written into the lab's run directory by `transit6 lab up`, read back by `lab status`. */
export const TOPOLOGY_FILE = 'topology.json';

export type DaemonRole = 'client' | 'relay' | 'server';

export interface TeredoDaemons {
  server: ManagedProcess;
  relay: ManagedProcess | undefined;
  clients: Partial<Record<ClientName, ManagedProcess>>;
}

export interface RunningTeredoLab extends TeredoLab {
  daemons: TeredoDaemons;
  detached: boolean;
}

export interface StartTeredoLabOptions extends TeredoTopologyOptions {
  /** The daemons outlive this process (`transit6 lab up`); default false. */
  detached?: boolean;
  /** Start the relay; default true. */
  relay?: boolean;
  /** Which of the built clients get a daemon at once; default all of them. Others: startLabClient later. */
  startClients?: readonly ClientName[];
  /** Runs once the server (and relay) answer, before any client starts: a capture, a blocked path… */
  beforeClients?: (l: RunningTeredoLab) => Promise<void>;
  /** One line per step, for progress output. */
  progress?: (msg: string) => void;
  /** How long a daemon has to answer on its control socket; default 15 s. */
  readyTimeoutMs?: number;
  /** More command-line flags for the server and the relay (rate limits, caps). */
  serverExtra?: readonly string[];
  relayExtra?: readonly string[];
}

// ---------------------------------------------------------------------------------------------------------------
// Starting daemons

export function serverArgs(t: TeredoTopology): string[] {
  return ['teredo', 'server', '-f', '--server-bind-address', t.server.primary];
}

export function relayArgs(t: TeredoTopology): string[] {
  return ['teredo', 'relay', '-f', '--relay-type', 'relay', '--bind-address', t.relay.ipv4, '--bind-port', String(LAB_RELAY_PORT), '--interface', LAB_TEREDO_IFACE];
}

/** cli-fc binds the static mapping's LAN port (report §3: BindPort 3550). */
export function clientArgs(t: TeredoTopology, c: ClientInfo, extra: readonly string[] = []): string[] {
  const port = c.bindPort !== undefined ? ['--bind-port', String(c.bindPort)] : [];
  return ['teredo', 'client', '-f', '--server', t.server.primary, '--interface', LAB_TEREDO_IFACE, ...port, ...extra];
}

/** Runs `transit6 teredo show VIEW --json` inside `ns` and returns the daemon's answer. */
export async function showJson<T>(ns: string, view: 'state' | 'peers' | 'stats', role?: DaemonRole, timeoutMs = 10_000): Promise<T> {
  const args = [TRANSIT6_BIN, 'teredo', 'show', view, '--json', ...(role ? ['--role', role] : [])];
  const r = await inNs(ns, process.execPath, args, { allowFailure: true, timeoutMs });
  if (r.exitCode !== 0) throw new Error(`teredo show ${view} in ${ns}: ${r.stderr.trim() || `exit code ${String(r.exitCode)}`}`);
  return JSON.parse(r.stdout) as T;
}

/** The same, as text (what a user sees). */
export async function showText(ns: string, view: 'state' | 'peers' | 'stats', role?: DaemonRole): Promise<string> {
  const r = await inNs(ns, process.execPath, [TRANSIT6_BIN, 'teredo', 'show', view, ...(role ? ['--role', role] : [])]);
  return r.stdout;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function logTail(p: ManagedProcess, lines = 15): string {
  return p.log().trimEnd().split('\n').slice(-lines).join('\n');
}

/** Waits until the daemon answers on its control socket; throws (with its log) if it exits or stays silent. */
export async function waitForDaemon(p: ManagedProcess, role: DaemonRole, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    if (!p.running) throw new Error(`the ${role} daemon in ${p.ns} exited at start; log ${p.logPath}:\n${logTail(p)}`);
    try {
      await showJson(p.ns, 'state', role, 3000);
      return;
    } catch (e) {
      last = e instanceof Error ? e.message : String(e);
    }
    if (Date.now() >= deadline) throw new Error(`the ${role} daemon in ${p.ns} did not answer within ${timeoutMs} ms (${last}); log ${p.logPath}:\n${logTail(p)}`);
    await sleep(100);
  }
}

function spawnDaemon(l: RunningTeredoLab | { lab: Lab; detached: boolean }, ns: string, name: string, args: readonly string[]): ManagedProcess {
  return l.lab.spawn(ns, name, process.execPath, [TRANSIT6_BIN, ...args], { detached: l.detached });
}

/** Starts a client daemon (a fresh one: any previous one must have been stopped) and records it. */
export function startLabClient(l: RunningTeredoLab, name: ClientName, extra: readonly string[] = []): ManagedProcess {
  const c = topologyClient(l.topology, name);
  const p = spawnDaemon(l, c.ns, name, clientArgs(l.topology, c, extra));
  l.daemons.clients[name] = p;
  return p;
}

/** Builds the topology and starts the daemons. On any failure everything is torn down and the error rethrown. */
export async function startTeredoLab(opts: StartTeredoLabOptions = {}): Promise<RunningTeredoLab> {
  const say = opts.progress ?? (() => undefined);
  const t0 = Date.now();
  const built = await buildTeredoTopology(opts);
  const { lab, topology: t } = built;
  say(`built ${t.namespaces.length} namespaces (prefix ${lab.prefix}) in ${Date.now() - t0} ms`);
  const detached = opts.detached ?? false;
  try {
    const server = spawnDaemon({ lab, detached }, t.server.ns, 'server', [...serverArgs(t), ...(opts.serverExtra ?? [])]);
    const relay = (opts.relay ?? true) ? spawnDaemon({ lab, detached }, t.relay.ns, 'relay', [...relayArgs(t), ...(opts.relayExtra ?? [])]) : undefined;
    const l: RunningTeredoLab = { lab, topology: t, daemons: { server, relay, clients: {} }, detached };
    const ready = opts.readyTimeoutMs ?? 15_000;
    await Promise.all([waitForDaemon(server, 'server', ready), relay ? waitForDaemon(relay, 'relay', ready) : undefined]);
    say(`server (pid ${server.pid})${relay ? ` and relay (pid ${relay.pid})` : ''} answer`);
    if (opts.beforeClients) await opts.beforeClients(l);
    const names = opts.startClients ?? t.clients.map((c) => c.name);
    for (const n of names) startLabClient(l, n);
    if (names.length > 0) say(`started ${names.length} client daemon(s): ${names.join(', ')}`);
    return l;
  } catch (e) {
    await lab.destroy().catch((d: unknown) => {
      if (e instanceof Error) e.message += `\n  (and teardown failed: ${d instanceof Error ? d.message : String(d)})`;
    });
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Qualification

export interface ClientReady {
  state: ClientStateJson;
  /** Measured from the client's log (JSON lines with ISO times) against the moment it was spawned. */
  timings: ClientTimings;
}

export interface ClientTimings {
  /** When it was spawned (epoch ms, from the log's header line). */
  execAt: number | undefined;
  /** exec → the daemon logged "started client" (Node start-up, tunnel and socket set-up). */
  startMs: number | undefined;
  /** exec → the first "qualified" state. */
  qualifiedMs: number | undefined;
  /** exec → NAT detection done. */
  natDoneMs: number | undefined;
}

interface LogLine {
  time?: string;
  msg?: string;
  state?: string;
  reason?: string;
  /** The state change's details: flat since src/io/statelog.ts (note, natType...), in `detail` before. */
  note?: string;
  detail?: Record<string, unknown>;
}

/** Reads the client's timings from its log: the spawn header (`# <ISO time> …`) and the JSON lines. */
export function clientTimings(log: string): ClientTimings {
  let spawnAt: number | undefined;
  let startAt: number | undefined;
  let qualifiedAt: number | undefined;
  let natAt: number | undefined;
  for (const line of log.split('\n')) {
    // The last spawn header counts: a log file is appended to when a client is restarted.
    const h = /^# (\S+) /.exec(line);
    if (h) {
      spawnAt = Date.parse(h[1]!);
      startAt = qualifiedAt = natAt = undefined;
      continue;
    }
    if (!line.startsWith('{')) continue;
    let j: LogLine;
    try {
      j = JSON.parse(line) as LogLine;
    } catch {
      continue;
    }
    const at = j.time ? Date.parse(j.time) : NaN;
    if (Number.isNaN(at)) continue;
    if (startAt === undefined && j.msg === 'started client') startAt = at;
    if (qualifiedAt === undefined && j.state === 'qualified') qualifiedAt = at;
    if (natAt === undefined && j.reason === 'nat-type' && (j.note ?? j.detail?.note) === 'done') natAt = at;
  }
  const since = (x: number | undefined): number | undefined => (x !== undefined && spawnAt !== undefined ? x - spawnAt : undefined);
  return { execAt: spawnAt, startMs: since(startAt), qualifiedMs: since(qualifiedAt), natDoneMs: since(natAt) };
}

export interface WaitClientsOptions {
  timeoutMs?: number;
  /** Also wait for NAT detection to be done; default true. */
  natDetection?: boolean;
  intervalMs?: number;
}

/** Polls `teredo show state --json` in each client namespace until every client is qualified (and its NAT
 *  detection done). Throws, naming the laggards with their state and log, if a daemon exits or time runs out. */
export async function waitForClients(l: RunningTeredoLab, names: readonly ClientName[], o: WaitClientsOptions = {}): Promise<Record<string, ClientReady>> {
  const deadline = Date.now() + (o.timeoutMs ?? 30_000);
  const wantNat = o.natDetection ?? true;
  const done: Record<string, ClientReady> = {};
  const last: Record<string, string> = {};
  const proc = (n: ClientName): ManagedProcess => {
    const p = l.daemons.clients[n];
    if (!p) throw new Error(`no client daemon was started in ${n}`);
    return p;
  };
  for (;;) {
    const pending = names.filter((n) => !done[n]);
    if (pending.length === 0) return done;
    await Promise.all(
      pending.map(async (n) => {
        const p = proc(n);
        if (!p.running) throw new Error(`the client daemon in ${p.ns} exited; log ${p.logPath}:\n${logTail(p)}`);
        try {
          const s = await showJson<ClientStateJson>(p.ns, 'state', 'client', 3000);
          last[n] = `${s.state} (${s.reason}), NAT ${s.natType}/${s.natDetection}`;
          if (s.state === 'qualified' && s.interfaceStatus === 'up' && (!wantNat || s.natDetection === 'done')) done[n] = { state: s, timings: clientTimings(p.log()) };
        } catch (e) {
          last[n] = e instanceof Error ? e.message : String(e);
        }
      }),
    );
    if (names.every((n) => done[n])) return done;
    if (Date.now() >= deadline) {
      const lag = names.filter((n) => !done[n]);
      const lines = lag.map((n) => `  ${n}: ${last[n] ?? 'no answer'}; log ${proc(n).logPath}:\n${logTail(proc(n), 6).replace(/^/gm, '    ')}`);
      throw new Error(`not qualified${wantNat ? ' with NAT detection done' : ''} within ${o.timeoutMs ?? 30_000} ms:\n${lines.join('\n')}`);
    }
    await sleep(o.intervalMs ?? 250);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The NATs' real mappings

/** What a NAT kind should be detected as (RFC 4380 §5.2.1 cone, RFC 6081 §3 port-restricted and symmetric). */
export function expectedNatType(kind: NatKind): ClientStateJson['natType'] {
  switch (kind) {
    case 'full-cone':
      return 'cone';
    case 'none':
      return 'none';
    default:
      return kind;
  }
}

/** The conntrack entry of the client's flow `local → server:3544` in its NAT's namespace. */
export async function serverFlowEntry(lab: Lab, t: TeredoTopology, name: ClientName, localMapping: string): Promise<ConntrackUdpEntry | undefined> {
  const c = topologyClient(t, name);
  if (c.nat === null) return undefined;
  const { addr, port } = splitEndpoint(localMapping);
  const entries = await lab.conntrackUdp(c.nat);
  return entries.find((x) => x.orig.src === addr && x.orig.sport === port && x.orig.dst === t.server.primary && x.orig.dport === TEREDO_SERVER_PORT);
}

function splitEndpoint(ep: string): { addr: string; port: number } {
  const i = ep.lastIndexOf(':');
  return { addr: ep.slice(0, i), port: Number(ep.slice(i + 1)) };
}

/**
 * The client's mapping towards the server's primary address as the NAT really made it: the reply tuple of the
 * conntrack entry `local → server:3544` in the NAT's namespace. For cli-pub (no NAT) the local endpoint itself,
 * once `ss` confirms a UDP socket is bound there. undefined when no such entry exists.
 */
export async function realMapping(lab: Lab, t: TeredoTopology, name: ClientName, localMapping: string): Promise<string | undefined> {
  const c = topologyClient(t, name);
  if (c.nat === null) {
    const { addr, port } = splitEndpoint(localMapping);
    const r = await lab.exec(c.ns, 'ss', ['-Huan']);
    const bound = r.stdout.split('\n').some((line) => new RegExp(`\\s(${addr.replace(/\./g, '\\.')}|0\\.0\\.0\\.0|\\*):${port}\\s`).test(line));
    return bound ? `${c.publicAddr}:${port}` : undefined;
  }
  const e = await serverFlowEntry(lab, t, name, localMapping);
  return e ? `${e.reply.dst}:${e.reply.dport}` : undefined;
}

/** The mapped endpoint a Teredo address carries (RFC 4380 §4), or undefined if it is not one. */
export function mappingInAddress(teredoAddress: string): string | undefined {
  const bytes = parseIpv6(teredoAddress);
  const d = bytes ? decodeTeredoAddress(bytes) : undefined;
  return d ? formatIpv4Port({ addr: d.mappedAddr, port: d.mappedPort }) : undefined;
}

export function serverInAddress(teredoAddress: string): string | undefined {
  const bytes = parseIpv6(teredoAddress);
  const d = bytes ? decodeTeredoAddress(bytes) : undefined;
  return d ? formatIpv4(d.server) : undefined;
}

export interface ClientRow {
  name: ClientName;
  ns: string;
  nat: string | null;
  natKind: NatKind;
  expectedNatType: ClientStateJson['natType'];
  natType: ClientStateJson['natType'];
  state: ClientStateJson['state'];
  localMapping: string | null;
  externalMapping: string | null;
  /** From conntrack in the NAT namespace (or the bound socket, without a NAT). */
  realMapping: string | null;
  teredoAddress: string | null;
  /** The mapping decoded from the Teredo address. */
  addressMapping: string | null;
  addressChanges: number;
  timings: ClientTimings;
}

/** One row per client: what the daemon reports next to what the NAT really did. */
export async function clientRows(l: RunningTeredoLab, ready: Record<string, ClientReady>): Promise<ClientRow[]> {
  const rows: ClientRow[] = [];
  for (const c of l.topology.clients) {
    const r = ready[c.name];
    if (!r) continue;
    const s = r.state;
    rows.push({
      name: c.name,
      ns: c.ns,
      nat: c.nat,
      natKind: c.natKind,
      expectedNatType: expectedNatType(c.natKind),
      natType: s.natType,
      state: s.state,
      localMapping: s.localMapping,
      externalMapping: s.externalMapping,
      realMapping: s.localMapping ? ((await realMapping(l.lab, l.topology, c.name, s.localMapping)) ?? null) : null,
      teredoAddress: s.teredoAddress,
      addressMapping: s.teredoAddress ? (mappingInAddress(s.teredoAddress) ?? null) : null,
      addressChanges: s.addressChanges,
      timings: r.timings,
    });
  }
  return rows;
}

const short = (n: string): string => n.replace(/^cli-/, '');

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string => r.map((x, i) => (i === r.length - 1 ? x : x.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

const secs = (ms: number | undefined): string => (ms === undefined ? '?' : `${(ms / 1000).toFixed(2)} s`);

/** "exec → qualified (of which after start-up) / exec → NAT known". */
function timingText(t: ClientTimings): string {
  const after = t.qualifiedMs !== undefined && t.startMs !== undefined ? ` (${t.qualifiedMs - t.startMs} ms after start)` : '';
  return `${secs(t.qualifiedMs)}${after} / ${secs(t.natDoneMs)}`;
}

/** The compact `show state` table: one row per client. */
export function formatClientTable(rows: readonly ClientRow[]): string {
  return table(
    ['client', 'behind', 'detected NAT', 'state', 'external mapping', 'conntrack mapping', 'Teredo address', 'qualified (exec →) / NAT known'],
    rows.map((r) => [
      short(r.name),
      r.nat ? `${r.nat} (${r.natKind})` : 'no NAT',
      r.natType === r.expectedNatType ? r.natType : `${r.natType} (expected ${r.expectedNatType})`,
      r.state,
      r.externalMapping ?? '-',
      r.realMapping === null ? '?' : r.realMapping === r.externalMapping && r.realMapping === r.addressMapping ? `${r.realMapping} =` : `${r.realMapping} DIFFERS`,
      r.teredoAddress ?? '-',
      timingText(r.timings),
    ]),
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Reachability

export type MatrixNode = ClientName | 'v6host';

export interface PingResult {
  sent: number;
  received: number;
  /** icmp_seq → RTT in ms, in the order the replies came. */
  replies: { seq: number; ms: number }[];
  /** RTT of the first reply, whatever its sequence number. */
  firstRttMs: number | undefined;
  /** The first echo request was answered (no first-packet loss). */
  seq1: boolean;
}

/** Parses iputils ping output. */
export function parsePing(out: string): PingResult {
  const replies = [...out.matchAll(/icmp_seq=(\d+)\s+ttl=\d+\s+time=([\d.]+)\s*ms/g)].map((m) => ({ seq: Number(m[1]), ms: Number(m[2]) }));
  const stats = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(out);
  return {
    sent: stats ? Number(stats[1]) : 0,
    received: stats ? Number(stats[2]) : replies.length,
    replies,
    firstRttMs: replies[0]?.ms,
    seq1: replies.some((r) => r.seq === 1),
  };
}

export interface PingOptions {
  count?: number;
  intervalS?: number;
  waitS?: number;
}

/** `ping -6 -n -c 3 -i 0.2 -W 2 addr` inside `ns`. */
export async function ping6(lab: Lab, ns: string, addr: string, o: PingOptions = {}): Promise<PingResult & { raw: RunResult }> {
  const args = ['-6', '-n', '-c', String(o.count ?? 3), '-i', String(o.intervalS ?? 0.2), '-W', String(o.waitS ?? 2), addr];
  const raw = await lab.exec(ns, 'ping', args, { allowFailure: true, timeoutMs: 60_000 });
  return { ...parsePing(raw.stdout), raw };
}

/**
 * What RFC 6081 (with RFC 4380) expects: a client behind a port-restricted NAT and one behind a symmetric NAT
 * cannot reach each other in either direction (RFC 6081 §3: the symmetric client's direct bubble leaves from a
 * port the restricted NAT never saw, and the restricted client's bubble is filtered by the symmetric NAT); every
 * other pair connects, native hosts through the relay included.
 */
export function expectedReachable(t: TeredoTopology, a: MatrixNode, b: MatrixNode): boolean {
  if (a === 'v6host' || b === 'v6host') return true;
  const ka = topologyClient(t, a).natKind;
  const kb = topologyClient(t, b).natKind;
  const pair = new Set([ka, kb]);
  return !(pair.has('symmetric') && pair.has('port-restricted'));
}

export interface MatrixCell extends PingResult {
  from: MatrixNode;
  to: MatrixNode;
  addr: string;
  expected: boolean;
  /** Reached (first echo answered and every echo answered) or not reached (nothing answered), as expected. */
  asExpected: boolean;
  /** 1-based round in which it ran: lower rounds ran first. */
  round: number;
}

/**
 * Round-robin pairings (circle method): every unordered pair once, each node in at most one pair per round. Each
 * round then runs one direction, then the other (alternating which goes first).
 */
export function pingSchedule(nodes: readonly MatrixNode[]): [MatrixNode, MatrixNode][][] {
  const ring: (MatrixNode | null)[] = [...nodes];
  if (ring.length % 2 === 1) ring.push(null);
  const n = ring.length;
  const rounds: [MatrixNode, MatrixNode][][] = [];
  for (let r = 0; r < n - 1; r++) {
    const pairs: [MatrixNode, MatrixNode][] = [];
    for (let i = 0; i < n / 2; i++) {
      const a = ring[i];
      const b = ring[n - 1 - i];
      if (a && b) pairs.push(r % 2 === 0 ? [a, b] : [b, a]);
    }
    rounds.push(pairs, pairs.map(([a, b]) => [b, a]));
    // Rotate everything but the first.
    ring.splice(1, 0, ring.pop()!);
  }
  return rounds;
}

/**
 * The reachability matrix from real pings: for every ordered pair, `ping -6 -c 3 -i 0.2 -W 2` from the first to the
 * second's address. State is not fresh per pair: a pair may already have met (the reverse direction, or an earlier
 * exchange), as it would in use.
 */
export async function pingMatrix(
  l: RunningTeredoLab,
  nodes: readonly MatrixNode[],
  addresses: Readonly<Record<string, string>>,
  o: PingOptions & { onCell?: (c: MatrixCell) => void } = {},
): Promise<MatrixCell[]> {
  const nsOf = (n: MatrixNode): string => (n === 'v6host' ? l.topology.v6host.ns : topologyClient(l.topology, n).ns);
  const cells: MatrixCell[] = [];
  let round = 0;
  for (const pairs of pingSchedule(nodes)) {
    round++;
    await Promise.all(
      pairs.map(async ([from, to]) => {
        const addr = addresses[to];
        if (!addr) throw new Error(`no address for ${to}`);
        const p = await ping6(l.lab, nsOf(from), addr, o);
        const expected = expectedReachable(l.topology, from, to);
        const reached = p.seq1 && p.received === p.sent && p.sent > 0;
        const cell: MatrixCell = {
          from, to, addr, expected, round,
          sent: p.sent, received: p.received, replies: p.replies, firstRttMs: p.firstRttMs, seq1: p.seq1,
          asExpected: expected ? reached : p.received === 0,
        };
        cells.push(cell);
        o.onCell?.(cell);
      }),
    );
  }
  return cells;
}

/** Rows ping columns; a cell is received/sent and the first RTT; '!' marks a cell that RFC 6081 does not expect. */
export function formatMatrix(nodes: readonly MatrixNode[], cells: readonly MatrixCell[]): string {
  const cellText = (a: MatrixNode, b: MatrixNode): string => {
    if (a === b) return '-';
    const c = cells.find((x) => x.from === a && x.to === b);
    if (!c) return '?';
    const rtt = c.firstRttMs !== undefined ? ` ${c.firstRttMs.toFixed(2)}ms` : '';
    const seq = c.received > 0 && !c.seq1 ? ' (seq1 lost)' : '';
    return `${c.received}/${c.sent}${rtt}${seq}${c.asExpected ? '' : ' !'}`;
  };
  return table(
    ['from \\ to', ...nodes.map(short)],
    nodes.map((a) => [short(a), ...nodes.map((b) => cellText(a, b))]),
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Local discovery

/** The peer entry `from` holds for `toAddress` (its `show peers`), if any. */
export async function peerEntry(l: RunningTeredoLab, from: ClientName, toAddress: string): Promise<PeersJson['peers'][number] | undefined> {
  const peers = await showJson<PeersJson>(topologyClient(l.topology, from).ns, 'peers', 'client');
  const want = parseIpv6(toAddress);
  return peers.peers.find((p) => {
    const a = parseIpv6(p.address);
    return a !== undefined && want !== undefined && a.every((x, i) => x === want[i]);
  });
}

// ---------------------------------------------------------------------------------------------------------------
// What `lab up` leaves behind for `lab status`

export function saveTopology(l: RunningTeredoLab): void {
  writeFileSync(join(l.lab.runDir, TOPOLOGY_FILE), `${JSON.stringify(l.topology, null, 2)}\n`);
}

export function loadTopology(runDir: string): TeredoTopology | undefined {
  try {
    return JSON.parse(readFileSync(join(runDir, TOPOLOGY_FILE), 'utf8')) as TeredoTopology;
  } catch {
    return undefined;
  }
}
