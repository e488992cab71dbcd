/**
 * Network-namespace labs: a Lab owns a set of namespaces named `<prefix><name>` (prefix `t6-<random>-`), the veth
 * links between them, their addresses, routes, sysctls and NAT rules, and the processes started inside them.
 * destroy() kills those processes and deletes those namespaces; nothing is ever created in the root namespace
 * (veth pairs are made from inside a lab namespace with `ip -n A link add … peer name … netns B`).
 *
 * The model is the Miredo reference lab (shared/reference/miredo-lab-report.md §2–3): forwarding on in routers,
 * DAD and accept_ra off everywhere, NAT kinds built from iptables MASQUERADE/SNAT/DNAT plus the same
 * FORWARD/INPUT filtering, and a per-namespace conntrack UDP timeout.
 *
 * A state file per lab (LAB_STATE_DIR/<prefix>.json) names its owner process, namespaces and processes, so that
 * cleanupStale() can tell a crashed run's leftovers from a lab that is still in use, and `transit6 lab down` can
 * stop a lab that another process brought up.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../core/errors.js';
import {
  assertLabNamespace,
  inNs,
  isAlive,
  LAB_NS_PREFIX,
  processStartTime,
  run,
  runSync,
  spawnInNs,
  stopPid,
  stopPidSync,
  type ManagedProcess,
  type ProcessRecord,
  type RunOptions,
  type RunResult,
} from './exec.js';

const DEFAULT_BASE = join(tmpdir(), 'transit6-lab');
/** Where labs keep their state files (one JSON per lab). T6_LAB_STATE_DIR overrides it. */
export const LAB_STATE_DIR = process.env.T6_LAB_STATE_DIR ?? join(DEFAULT_BASE, 'state');
/** Default parent of each lab's run directory (logs, configs, PID files). T6_LAB_RUN_DIR overrides it. */
export const LAB_RUN_BASE = process.env.T6_LAB_RUN_DIR ?? join(DEFAULT_BASE, 'run');

const PREFIX_RE = /^t6-[A-Za-z0-9][A-Za-z0-9_.-]*-$|^t6-$/;
const SHORT_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const IFNAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;

/** A fresh prefix `t6-<6 hex digits>-`. */
export function randomLabPrefix(): string {
  return `${LAB_NS_PREFIX}${randomBytes(3).toString('hex')}-`;
}

/** Throws unless `prefix` starts with `t6-` (and, if longer, ends with '-', so 't6-ab' cannot match 't6-abc-…'). */
export function assertLabPrefix(prefix: string): void {
  if (!PREFIX_RE.test(prefix)) {
    throw new ConfigError(`refusing prefix '${prefix}': lab prefixes are 't6-' or 't6-<letters, digits, . _ ->-' (ending in '-')`);
  }
}

function assertIfName(ifname: string): void {
  if (!IFNAME_RE.test(ifname)) throw new ConfigError(`bad interface name '${ifname}' (1-15 letters, digits, . _ -)`);
}

const isV6 = (addr: string): boolean => addr.includes(':');

export type NatKind = 'port-restricted' | 'symmetric' | 'full-cone' | 'none';

export interface StaticUdpMapping {
  /** The LAN host and port that the public port maps to. */
  lanAddr: string;
  lanPort: number;
  /** The NAT's public UDP port. */
  publicPort: number;
}

export interface NatOptions {
  /** Interface towards the Internet. */
  wan: string;
  /** Interface (or bridge) towards the LAN. */
  lan: string;
  /** The NAT's public IPv4 address (on `wan`). */
  publicAddr: string;
  /** 'port-restricted': MASQUERADE --to-ports for UDP; default [20000, 29999] as in the report. */
  udpPortRange?: [number, number];
  /** 'full-cone': the static 1:1 UDP mapping (required). */
  staticUdp?: StaticUdpMapping;
  /** The report's FORWARD/INPUT filtering on `wan` (default true; 'none' never filters). */
  filter?: boolean;
}

/** The iptables-restore input for one NAT kind (shared/reference/miredo-lab-report.md §3, "NAT rules"). */
export function natRules(kind: NatKind, o: NatOptions): string {
  assertIfName(o.wan);
  assertIfName(o.lan);
  if (kind === 'none') return '';
  const nat: string[] = [];
  switch (kind) {
    case 'port-restricted': {
      const [lo, hi] = o.udpPortRange ?? [20000, 29999];
      if (!(Number.isInteger(lo) && Number.isInteger(hi) && lo >= 1 && lo <= hi && hi <= 65535)) {
        throw new ConfigError(`bad udpPortRange ${lo}-${hi}`);
      }
      // Plain MASQUERADE keeps a source's mapping across destinations (endpoint-independent mapping); the range
      // makes the translation visible.
      nat.push(`-A POSTROUTING -o ${o.wan} -p udp -j MASQUERADE --to-ports ${lo}-${hi}`);
      nat.push(`-A POSTROUTING -o ${o.wan} -j MASQUERADE`);
      break;
    }
    case 'symmetric':
      // --random-fully skips the "reuse this source's mapping" step: every new 5-tuple gets a random port.
      nat.push(`-A POSTROUTING -o ${o.wan} -j MASQUERADE --random-fully`);
      break;
    case 'full-cone': {
      const m = o.staticUdp;
      if (!m) throw new ConfigError("a 'full-cone' NAT needs staticUdp {lanAddr, lanPort, publicPort}");
      // Emulated: Linux has no dynamic full-cone NAT, so one UDP port is mapped 1:1 both ways.
      nat.push(`-A PREROUTING -i ${o.wan} -p udp --dport ${m.publicPort} -j DNAT --to-destination ${m.lanAddr}:${m.lanPort}`);
      nat.push(`-A POSTROUTING -o ${o.wan} -s ${m.lanAddr} -p udp --sport ${m.lanPort} -j SNAT --to-source ${o.publicAddr}:${m.publicPort}`);
      nat.push(`-A POSTROUTING -o ${o.wan} -j MASQUERADE`);
      break;
    }
    default:
      throw new ConfigError(`unknown NAT kind '${String(kind)}'`);
  }
  const lines = ['*nat', ...nat, 'COMMIT'];
  if (o.filter ?? true) {
    lines.push(
      '*filter',
      `-A FORWARD -i ${o.wan} -m conntrack --ctstate ESTABLISHED,RELATED,DNAT -j ACCEPT`,
      `-A FORWARD -i ${o.wan} -j DROP`,
      `-A INPUT -i ${o.wan} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT`,
      `-A INPUT -i ${o.wan} -p icmp --icmp-type echo-request -j ACCEPT`,
      // Silent drop, no ICMP error: an unsolicited datagram simply vanishes, as at a real NAT.
      `-A INPUT -i ${o.wan} -j DROP`,
      'COMMIT',
    );
  }
  return `${lines.join('\n')}\n`;
}

/** One UDP entry of `conntrack -L -p udp`. */
export interface ConntrackUdpEntry {
  /** Seconds left. */
  timeout: number;
  orig: { src: string; dst: string; sport: number; dport: number };
  reply: { src: string; dst: string; sport: number; dport: number };
  assured: boolean;
  unreplied: boolean;
}

export function parseConntrackUdp(text: string): ConntrackUdpEntry[] {
  const out: ConntrackUdpEntry[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*udp\s+17\s+(\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const kv = [...m[2]!.matchAll(/(\w+)=(\S+)/g)].map((x) => [x[1]!, x[2]!] as const);
    const pick = (key: string, nth: number): string => kv.filter(([k]) => k === key)[nth]?.[1] ?? '';
    const side = (nth: number) => ({
      src: pick('src', nth),
      dst: pick('dst', nth),
      sport: Number(pick('sport', nth)),
      dport: Number(pick('dport', nth)),
    });
    out.push({ timeout: Number(m[1]), orig: side(0), reply: side(1), assured: /\[ASSURED\]/.test(line), unreplied: /\[UNREPLIED\]/.test(line) });
  }
  return out;
}

/** Names in `ip netns list` (read-only, root namespace). */
export async function listNamespaces(): Promise<string[]> {
  const r = await run('ip', ['netns', 'list']);
  return parseNetnsList(r.stdout);
}

export function listNamespacesSync(): string[] {
  return parseNetnsList(runSync('ip', ['netns', 'list']).stdout);
}

function parseNetnsList(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n !== '');
}

async function netnsPids(ns: string): Promise<number[]> {
  assertLabNamespace(ns);
  const r = await run('ip', ['netns', 'pids', ns], { allowFailure: true });
  return r.exitCode === 0 ? r.stdout.split(/\s+/).filter(Boolean).map(Number) : [];
}

function netnsPidsSync(ns: string): number[] {
  assertLabNamespace(ns);
  const r = runSync('ip', ['netns', 'pids', ns], { allowFailure: true });
  return r.exitCode === 0 ? r.stdout.split(/\s+/).filter(Boolean).map(Number) : [];
}

// ---------------------------------------------------------------------------------------------------------------
// State files

export interface LabState {
  prefix: string;
  ownerPid: number;
  ownerStartTime: number | undefined;
  runDir: string;
  createdAt: string;
  namespaces: string[];
  processes: ProcessRecord[];
  /** Released by its owner to outlive it (`transit6 lab up`): only an explicit includeLive cleanup removes it. */
  persistent?: boolean;
}

function statePath(prefix: string): string {
  return join(LAB_STATE_DIR, `${prefix}.json`);
}

export function readLabStates(): LabState[] {
  let names: string[];
  try {
    names = readdirSync(LAB_STATE_DIR);
  } catch {
    return [];
  }
  const states: LabState[] = [];
  for (const n of names) {
    if (!n.startsWith(LAB_NS_PREFIX) || !n.endsWith('.json')) continue;
    try {
      const s = JSON.parse(readFileSync(join(LAB_STATE_DIR, n), 'utf8')) as LabState;
      if (typeof s.prefix === 'string' && s.prefix.startsWith(LAB_NS_PREFIX)) states.push(s);
    } catch {
      // A half-written or foreign file: ignored (the namespaces themselves are still found by name).
    }
  }
  return states;
}

/** The default parent folders go once nothing is left in them (rmdir refuses a non-empty one); folders named by
 *  T6_LAB_* variables are the user's and stay. */
function removeEmptyBaseDirs(): void {
  for (const dir of [LAB_STATE_DIR, LAB_RUN_BASE, DEFAULT_BASE]) {
    if (!dir.startsWith(DEFAULT_BASE)) continue;
    try {
      rmdirSync(dir);
    } catch {
      // not empty (another lab is using it) or already gone
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Registry of live labs, for exit and signal handlers

const liveLabs = new Set<Lab>();
let exitHookInstalled = false;
let signalHooksInstalled = false;

function ensureExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort: only synchronous work runs in 'exit'.
  process.on('exit', () => destroyAllSync());
}

/** Labs created in this process and not yet destroyed. */
export function liveLabList(): Lab[] {
  return [...liveLabs];
}

/** Destroys every live lab of this process. Never throws; returns the errors it met. */
export async function destroyAll(): Promise<Error[]> {
  const errors: Error[] = [];
  await Promise.all(
    [...liveLabs].map((l) =>
      l.destroy().catch((e: unknown) => {
        errors.push(e instanceof Error ? e : new Error(String(e)));
      }),
    ),
  );
  return errors;
}

export function destroyAllSync(): Error[] {
  const errors: Error[] = [];
  for (const l of [...liveLabs]) {
    try {
      l.destroySync();
    } catch (e) {
      errors.push(e instanceof Error ? e : new Error(String(e)));
    }
  }
  return errors;
}

/** On SIGINT, SIGTERM or SIGHUP: destroy every live lab, then exit with 128+signal. Also destroys on 'exit'.
 *  Safe to call more than once. */
export function installCleanupHandlers(): void {
  ensureExitHook();
  if (signalHooksInstalled) return;
  signalHooksInstalled = true;
  const codes: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };
  for (const sig of Object.keys(codes) as NodeJS.Signals[]) {
    process.once(sig, () => {
      process.stderr.write(`transit6 lab: ${sig}, tearing down ${liveLabs.size} lab(s)\n`);
      void destroyAll().then((errs) => {
        for (const e of errs) process.stderr.write(`transit6 lab: cleanup: ${e.message}\n`);
        process.exit(codes[sig]);
      });
    });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The Lab

export interface LabOptions {
  /** Namespace name prefix; default randomLabPrefix(). Must start with 't6-' and end with '-'. */
  prefix?: string;
  /** Directory for logs and configs; default LAB_RUN_BASE/<prefix without the final '-'>. */
  runDir?: string;
  /** Keep the run directory (logs) after destroy(); default false, or true if T6_LAB_KEEP=1. A runDir that
   *  existed before the lab is always kept. */
  keepRunDir?: boolean;
  /** SIGTERM grace for processes at destroy(); default 2000 ms. */
  stopGraceMs?: number;
}

export interface RouteOptions {
  dev?: string;
  metric?: number;
  /** Needed only for 'default' without `via`. */
  family?: 4 | 6;
}

export interface ForwardingOptions {
  ipv4?: boolean;
  ipv6?: boolean;
}

export interface LabSpawnOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Log file; default <runDir>/<ns short name>.<name>.log */
  logPath?: string;
  detached?: boolean;
}

/** DAD and router advertisements off everywhere (report §2): addresses are usable at once and nothing autoconfigures. */
const BASE_SYSCTLS: Record<string, string> = {
  'net.ipv6.conf.all.accept_dad': '0',
  'net.ipv6.conf.default.accept_dad': '0',
  'net.ipv6.conf.all.accept_ra': '0',
  'net.ipv6.conf.default.accept_ra': '0',
  'net.ipv6.conf.all.autoconf': '0',
  'net.ipv6.conf.default.autoconf': '0',
};

export class Lab {
  readonly prefix: string;
  readonly runDir: string;
  private readonly keepRunDir: boolean;
  /** Only a run directory this lab made is removed at destroy(): never a folder the caller already had. */
  private readonly ownsRunDir: boolean;
  private readonly stopGraceMs: number;
  /** Full names, in creation order. */
  private readonly nsList: string[] = [];
  private readonly procs: ManagedProcess[] = [];
  private destroying: Promise<void> | undefined;
  private destroyed = false;
  private persistent = false;

  constructor(opts: LabOptions = {}) {
    this.prefix = opts.prefix ?? randomLabPrefix();
    assertLabPrefix(this.prefix);
    if (this.prefix === LAB_NS_PREFIX) throw new ConfigError("a lab needs its own prefix ('t6-<id>-'), not the bare 't6-'");
    this.runDir = opts.runDir ?? join(LAB_RUN_BASE, this.prefix.slice(0, -1));
    this.keepRunDir = opts.keepRunDir ?? process.env.T6_LAB_KEEP === '1';
    this.stopGraceMs = opts.stopGraceMs ?? 2000;
    const other = readLabStates().find((s) => s.prefix === this.prefix);
    if (other && isAlive(other.ownerPid, other.ownerStartTime ?? undefined)) {
      throw new ConfigError(`lab prefix ${this.prefix} is in use by process ${other.ownerPid}`);
    }
    this.ownsRunDir = !existsSync(this.runDir);
    mkdirSync(this.runDir, { recursive: true });
    mkdirSync(LAB_STATE_DIR, { recursive: true });
    liveLabs.add(this);
    ensureExitHook();
    this.saveState();
  }

  /** The full namespace name for a short name: prefix + name. */
  nsName(name: string): string {
    return name.startsWith(this.prefix) ? name : `${this.prefix}${name}`;
  }

  /** Full names of the namespaces created so far. */
  get namespaces(): readonly string[] {
    return this.nsList;
  }

  get processes(): readonly ManagedProcess[] {
    return this.procs;
  }

  get isDestroyed(): boolean {
    return this.destroyed;
  }

  /** Resolves a short or full name to a namespace this lab created; anything else throws. */
  ns(name: string): string {
    const full = this.nsName(name);
    if (!this.nsList.includes(full)) throw new ConfigError(`namespace '${name}' is not part of lab ${this.prefix}`);
    return full;
  }

  private checkOpen(): void {
    if (this.destroyed || this.destroying) throw new ConfigError(`lab ${this.prefix} has been destroyed`);
  }

  /** Creates namespace <prefix><name>, brings lo up and applies the base sysctls. Returns the full name. */
  async addNamespace(name: string): Promise<string> {
    this.checkOpen();
    if (!SHORT_NAME_RE.test(name) || name.startsWith(LAB_NS_PREFIX)) throw new ConfigError(`bad namespace name '${name}'`);
    const full = this.nsName(name);
    assertLabNamespace(full);
    if (this.nsList.includes(full)) throw new ConfigError(`namespace '${full}' already exists in this lab`);
    // Recorded before it exists, so that a crash right after still leaves it findable; forgotten again if it
    // could not be made (the name may belong to someone else: never delete what we did not create).
    this.nsList.push(full);
    this.saveState();
    try {
      await run('ip', ['netns', 'add', full]);
    } catch (e) {
      this.nsList.splice(this.nsList.indexOf(full), 1);
      this.saveState();
      throw e;
    }
    await this.ip(full, ['link', 'set', 'lo', 'up']);
    await this.sysctl(full, BASE_SYSCTLS);
    return full;
  }

  /** `ip -n NS args…` */
  async ip(ns: string, args: readonly string[], opts?: RunOptions): Promise<RunResult> {
    return run('ip', ['-n', this.ns(ns), ...args], opts);
  }

  /** Runs a command inside one of this lab's namespaces. */
  async exec(ns: string, command: string, args: readonly string[] = [], opts?: RunOptions): Promise<RunResult> {
    return inNs(this.ns(ns), command, args, opts);
  }

  /**
   * A veth pair nsA:ifA <-> nsB:ifB, created from inside nsA, both ends up. `segmentGso`: both ends take no
   * GSO packet of more than one segment (gso_max_segs 1), so the kernel splits UDP GSO messages and TCP
   * super-packets before they cross, as in front of a NIC without those offloads: a capture on the link sees the
   * datagrams that are on a wire (a veth otherwise hands a GSO message on whole, and a capture shows it as one frame).
   */
  async link(nsA: string, ifA: string, nsB: string, ifB: string, opts: { mtu?: number; segmentGso?: boolean } = {}): Promise<void> {
    this.checkOpen();
    assertIfName(ifA);
    assertIfName(ifB);
    const a = this.ns(nsA);
    const b = this.ns(nsB);
    const mtu = opts.mtu !== undefined ? ['mtu', String(opts.mtu)] : [];
    await run('ip', ['-n', a, 'link', 'add', ifA, ...mtu, 'type', 'veth', 'peer', 'name', ifB, ...mtu, 'netns', b]);
    const segs = opts.segmentGso === true ? ['gso_max_segs', '1'] : [];
    await this.ip(a, ['link', 'set', ifA, ...segs, 'up']);
    await this.ip(b, ['link', 'set', ifB, ...segs, 'up']);
  }

  /** A bridge inside `ns` with the given ports enslaved; all up. */
  async addBridge(ns: string, bridge: string, ports: readonly string[]): Promise<void> {
    this.checkOpen();
    assertIfName(bridge);
    await this.ip(ns, ['link', 'add', bridge, 'type', 'bridge', 'forward_delay', '0']);
    for (const p of ports) {
      assertIfName(p);
      await this.ip(ns, ['link', 'set', p, 'master', bridge]);
    }
    await this.ip(ns, ['link', 'set', bridge, 'up']);
  }

  /** Adds an address in CIDR form (IPv4 or IPv6; IPv6 without DAD). */
  async addAddress(ns: string, ifname: string, cidr: string): Promise<void> {
    this.checkOpen();
    assertIfName(ifname);
    if (!cidr.includes('/')) throw new ConfigError(`address '${cidr}' needs a prefix length`);
    if (isV6(cidr)) await this.ip(ns, ['-6', 'addr', 'add', cidr, 'dev', ifname, 'nodad']);
    else await this.ip(ns, ['-4', 'addr', 'add', cidr, 'dev', ifname]);
  }

  /** `ip route add DEST [via VIA] [dev DEV] [metric M]`; the family follows DEST, VIA or opts.family. */
  async addRoute(ns: string, dest: string, via?: string, opts: RouteOptions = {}): Promise<void> {
    this.checkOpen();
    const v6 = opts.family !== undefined ? opts.family === 6 : isV6(dest) || (via !== undefined && isV6(via));
    if (via === undefined && opts.dev === undefined) throw new ConfigError(`route ${dest} needs a gateway or a device`);
    const args = [v6 ? '-6' : '-4', 'route', 'add', dest];
    if (via !== undefined) args.push('via', via);
    if (opts.dev !== undefined) args.push('dev', opts.dev);
    if (opts.metric !== undefined) args.push('metric', String(opts.metric));
    await this.ip(ns, args);
  }

  /** Sets sysctls inside `ns` (net.* keys are per namespace). */
  async sysctl(ns: string, values: Record<string, string | number>): Promise<void> {
    const args = Object.entries(values).map(([k, v]) => {
      if (!/^[a-z0-9_.-]+$/i.test(k)) throw new ConfigError(`bad sysctl key '${k}'`);
      return `${k}=${v}`;
    });
    if (args.length > 0) await this.exec(ns, 'sysctl', ['-q', '-w', ...args]);
  }

  async readSysctl(ns: string, key: string): Promise<string> {
    return (await this.exec(ns, 'sysctl', ['-n', key])).stdout.trim();
  }

  /** Routers: IPv4 and/or IPv6 forwarding. */
  async setForwarding(ns: string, f: ForwardingOptions): Promise<void> {
    const v: Record<string, string> = {};
    if (f.ipv4 !== undefined) v['net.ipv4.ip_forward'] = f.ipv4 ? '1' : '0';
    if (f.ipv6 !== undefined) v['net.ipv6.conf.all.forwarding'] = f.ipv6 ? '1' : '0';
    await this.sysctl(ns, v);
  }

  /** Installs the NAT and filtering rules for `kind` (see natRules) and turns IPv4 forwarding on. */
  async nat(ns: string, kind: NatKind, o: NatOptions): Promise<void> {
    this.checkOpen();
    await this.setForwarding(ns, { ipv4: true });
    const rules = natRules(kind, o);
    if (rules) await this.exec(ns, 'iptables-restore', ['--noflush'], { input: rules });
  }

  /** net.netfilter.nf_conntrack_udp_timeout (and _stream) for this namespace only. */
  async setConntrackUdpTimeout(ns: string, seconds: number, streamSeconds?: number): Promise<void> {
    const v: Record<string, number> = { 'net.netfilter.nf_conntrack_udp_timeout': seconds };
    if (streamSeconds !== undefined) v['net.netfilter.nf_conntrack_udp_timeout_stream'] = streamSeconds;
    for (const s of Object.values(v)) if (!Number.isInteger(s) || s < 1) throw new ConfigError(`bad conntrack timeout ${s}`);
    await this.sysctl(ns, v);
  }

  /** The UDP conntrack entries of `ns`. */
  async conntrackUdp(ns: string): Promise<ConntrackUdpEntry[]> {
    const r = await this.exec(ns, 'conntrack', ['-L', '-p', 'udp']);
    return parseConntrackUdp(r.stdout);
  }

  /** `iptables-save` inside `ns`, for reports and debugging. */
  async iptablesSave(ns: string): Promise<string> {
    return (await this.exec(ns, 'iptables-save')).stdout;
  }

  /** Starts a long-running process in `ns`; it is stopped by destroy(). */
  spawn(ns: string, name: string, command: string, args: readonly string[], opts: LabSpawnOptions = {}): ManagedProcess {
    this.checkOpen();
    const full = this.ns(ns);
    const short = full.slice(this.prefix.length);
    const logPath = opts.logPath ?? join(this.runDir, `${short}.${name}.log`.replace(/[^A-Za-z0-9_.-]/g, '_'));
    const p = spawnInNs(full, command, args, { logPath, name, env: opts.env, cwd: opts.cwd, detached: opts.detached });
    this.procs.push(p);
    this.saveState();
    return p;
  }

  /** Lets the lab outlive this process (`transit6 lab up`): it leaves the registry, so exit and signal handlers no
   *  longer tear it down, and its state file is marked persistent, so cleanupStale() leaves it alone until called
   *  with includeLive (`transit6 lab down`). Start its daemons with `detached: true`. destroy() still works. */
  release(): void {
    this.checkOpen();
    this.persistent = true;
    liveLabs.delete(this);
    this.saveState();
  }

  /** Stops every recorded process, kills whatever else still runs in the lab's namespaces (only its own
   *  descendants can be there), deletes the namespaces and the state file. Idempotent; concurrent calls share one
   *  teardown. Throws once at the end if some step failed, after trying every step. */
  destroy(): Promise<void> {
    if (this.destroyed) return Promise.resolve();
    this.destroying ??= this.doDestroy();
    return this.destroying;
  }

  private async doDestroy(): Promise<void> {
    const errors: string[] = [];
    await Promise.all(
      this.procs.map((p) =>
        p.stop(this.stopGraceMs).catch((e: unknown) => {
          errors.push(`stop ${p.name} (pid ${p.pid}): ${String(e)}`);
        }),
      ),
    );
    const existing = new Set(await listNamespaces().catch(() => this.nsList));
    const mine = this.nsList.filter((n) => existing.has(n));
    await Promise.all(
      mine.map(async (ns) => {
        for (const pid of await netnsPids(ns)) {
          if (pid !== process.pid) await stopPid(pid, { graceMs: 0 }).catch(() => undefined);
        }
      }),
    );
    for (const ns of mine) {
      const r = await run('ip', ['netns', 'del', ns], { allowFailure: true });
      if (r.exitCode !== 0 && !/No such file/.test(r.stderr)) errors.push(`ip netns del ${ns}: ${r.stderr.trim()}`);
    }
    this.finish();
    if (errors.length > 0) throw new Error(`lab ${this.prefix} teardown: ${errors.join('; ')}`);
  }

  /** destroy() for exit handlers: synchronous, never throws. */
  destroySync(): void {
    if (this.destroyed) return;
    for (const p of this.procs) {
      try {
        p.stopSync(Math.min(this.stopGraceMs, 1000));
      } catch {
        // keep going: the namespace deletion below is what matters most
      }
    }
    let existing: Set<string>;
    try {
      existing = new Set(listNamespacesSync());
    } catch {
      existing = new Set(this.nsList);
    }
    for (const ns of this.nsList.filter((n) => existing.has(n))) {
      try {
        for (const pid of netnsPidsSync(ns)) if (pid !== process.pid) stopPidSync(pid, { graceMs: 0 });
        runSync('ip', ['netns', 'del', ns], { allowFailure: true });
      } catch {
        // best effort
      }
    }
    this.finish();
  }

  private finish(): void {
    this.destroyed = true;
    liveLabs.delete(this);
    rmSync(statePath(this.prefix), { force: true });
    if (!this.keepRunDir && this.ownsRunDir) rmSync(this.runDir, { recursive: true, force: true });
    removeEmptyBaseDirs();
  }

  private saveState(): void {
    if (this.destroyed) return;
    const state: LabState = {
      prefix: this.prefix,
      ownerPid: process.pid,
      ownerStartTime: processStartTime(process.pid),
      runDir: this.runDir,
      createdAt: new Date().toISOString(),
      namespaces: [...this.nsList],
      processes: this.procs.map((p) => p.record()),
      ...(this.persistent ? { persistent: true } : {}),
    };
    const path = statePath(this.prefix);
    mkdirSync(LAB_STATE_DIR, { recursive: true });
    writeFileSync(`${path}.tmp`, `${JSON.stringify(state, null, 2)}\n`);
    renameSync(`${path}.tmp`, path);
  }
}

export interface CleanupOptions {
  /** Also remove labs whose owner process is still alive, and released (persistent) labs: `transit6 lab down`.
   *  Default false. */
  includeLive?: boolean;
  /** SIGTERM grace for recorded processes; default 1000 ms. */
  graceMs?: number;
}

export interface CleanupReport {
  /** Namespaces deleted. */
  removed: string[];
  /** Namespaces left alone because their lab's owner is alive or the lab was released. */
  skippedLive: string[];
  /** PIDs stopped. */
  stopped: number[];
}

/** Removes leftover lab namespaces whose names start with `prefix` (which must start with 't6-'), with the
 *  processes recorded for them or still running inside them, and their state files. A lab whose owner process
 *  is still alive, or that was released (Lab.release), is left alone unless includeLive. Labs of this very process are never touched here (use
 *  destroy()). Nothing whose name does not start with 't6-' is ever considered. */
export async function cleanupStale(prefix: string = LAB_NS_PREFIX, opts: CleanupOptions = {}): Promise<CleanupReport> {
  assertLabPrefix(prefix);
  const report: CleanupReport = { removed: [], skippedLive: [], stopped: [] };
  const ownLive = [...liveLabs];
  const states = readLabStates().filter((s) => s.prefix.startsWith(prefix) || prefix.startsWith(s.prefix));
  // A lab of this process is never touched; another process's lab only if its owner is gone and it was not
  // released (or includeLive).
  const keep = (s: LabState): boolean =>
    ownLive.some((l) => l.prefix === s.prefix) ||
    (!opts.includeLive && (s.persistent === true || isAlive(s.ownerPid, s.ownerStartTime ?? undefined)));
  // A namespace is kept only if a kept lab lists it (a lab records a name before creating it). One that merely
  // shares a live lab's prefix is an orphan.
  const kept = new Set([...ownLive.flatMap((l) => l.namespaces), ...states.filter(keep).flatMap((s) => s.namespaces)]);

  // Recorded processes first (they may be detached daemons whose namespace is already gone).
  for (const s of states) {
    if (keep(s)) continue;
    for (const p of s.processes) {
      if (!p.ns.startsWith(LAB_NS_PREFIX)) continue;
      const outcome = await stopPid(p.pid, { graceMs: opts.graceMs ?? 1000, startTime: p.startTime });
      if (outcome !== 'not-running') report.stopped.push(p.pid);
    }
  }
  const names = (await listNamespaces()).filter((n) => n.startsWith(LAB_NS_PREFIX) && n.startsWith(prefix));
  for (const ns of names) {
    if (kept.has(ns)) {
      report.skippedLive.push(ns);
      continue;
    }
    for (const pid of await netnsPids(ns)) {
      if (pid === process.pid) continue;
      if ((await stopPid(pid, { graceMs: opts.graceMs ?? 1000 })) !== 'not-running') report.stopped.push(pid);
    }
    const r = await run('ip', ['netns', 'del', ns], { allowFailure: true });
    if (r.exitCode === 0) report.removed.push(ns);
    else if (!/No such file/.test(r.stderr)) throw new Error(`ip netns del ${ns}: ${r.stderr.trim()}`);
  }
  for (const s of states) {
    if (keep(s)) continue;
    rmSync(statePath(s.prefix), { force: true });
    rmSync(`${statePath(s.prefix)}.tmp`, { force: true });
    // Only a run directory in the default place is removed: a state file never makes us delete arbitrary paths.
    if (typeof s.runDir === 'string' && s.runDir.startsWith(`${LAB_RUN_BASE}/${LAB_NS_PREFIX}`) && !s.runDir.includes('..')) {
      rmSync(s.runDir, { recursive: true, force: true });
    }
  }
  removeEmptyBaseDirs();
  return report;
}
