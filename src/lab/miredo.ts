/**
 * Miredo 1.2.6 (Debian `miredo`, `miredo-server`) as a peer in the lab: writes Miredo configuration files into the
 * lab's run directory and starts miredo / miredo-server inside lab namespaces, the way the reference study ran them
 * (shared/reference/miredo-lab-report.md §3):
 *
 *   miredo-server -f -c RUN/NAME.conf -p RUN/NAME.pid      (tserver; binds ServerBindAddress:3544 and primary+1)
 *   miredo        -f -c RUN/NAME.conf -p RUN/NAME.pid      (relay: RelayType relay; clients: RelayType client)
 *
 * - Configuration paths are absolute: Miredo fails with "No such file" on a relative -c (report §3).
 * - `-p` gives every instance its own PID file, so several run side by side.
 * - Miredo clients configure their tunnel through Debian's /etc/miredo/client-hook, run by miredo-privproc; the hook
 *   changes only the namespace the client runs in (addresses and a default route on InterfaceName).
 * - Miredo forks a worker (and, for clients, miredo-privproc); stopping the foreground parent with SIGTERM stops
 *   them too, and Lab.destroy() kills anything left in the lab's namespaces.
 *
 * Nothing here runs Miredo outside a lab namespace: every start goes through Lab.spawn (`ip netns exec t6-…`).
 */
import { existsSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { ConfigError } from '../core/errors.js';
import type { ManagedProcess } from './exec.js';
import type { Lab } from './netns.js';

/** The Debian packages' files that the lab needs. */
export const MIREDO_PATHS = {
  client: '/usr/sbin/miredo',
  server: '/usr/sbin/miredo-server',
  privproc: '/usr/libexec/miredo/miredo-privproc',
  clientHook: '/etc/miredo/client-hook',
} as const;

/** The Miredo files that are not installed (empty when the lab can run Miredo). */
export function missingMiredoFiles(which: readonly (keyof typeof MIREDO_PATHS)[] = ['client', 'server', 'privproc', 'clientHook']): string[] {
  return which.map((k) => MIREDO_PATHS[k]).filter((p) => !existsSync(p));
}

/** A directive value: written as one token (Miredo reads only the second whitespace-separated token of a line). */
export type MiredoValue = string | number;

/** Directives in file order; undefined values are left out. */
export type MiredoDirectives = Record<string, MiredoValue | undefined>;

const DIRECTIVE_RE = /^[A-Za-z][A-Za-z0-9]{0,30}$/;
const VALUE_RE = /^[^\s#]{1,1023}$/;
const FILE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** The text of a Miredo configuration file: one `Directive value` per line. */
export function formatMiredoConf(directives: MiredoDirectives): string {
  const lines: string[] = [];
  for (const [k, v] of Object.entries(directives)) {
    if (v === undefined) continue;
    if (!DIRECTIVE_RE.test(k)) throw new ConfigError(`bad Miredo directive name '${k}'`);
    const value = String(v);
    // Miredo's parser (src/conf.c) keeps only the second token, so a value with spaces would be cut short.
    if (!VALUE_RE.test(value)) throw new ConfigError(`bad value for Miredo directive ${k}: '${value}' (one token, no spaces or '#')`);
    lines.push(`${k} ${value}`);
  }
  return `${lines.join('\n')}\n`;
}

/** miredo.conf for `RelayType client` (report §3, conf/client.conf and conf/client-fc.conf). */
export interface MiredoClientConfig {
  serverAddress: string;
  interfaceName?: string;
  bindAddress?: string;
  bindPort?: number;
}

/** miredo.conf for a relay (report §3, conf/relay.conf). `relay` is an alias for `cone`. */
export interface MiredoRelayConfig {
  relayType?: 'relay' | 'cone' | 'restricted';
  interfaceName?: string;
  bindAddress?: string;
  bindPort?: number;
  prefix?: string;
  interfaceMtu?: number;
}

/** miredo-server.conf (report §3, conf/miredo-server.conf). */
export interface MiredoServerConfig {
  serverBindAddress: string;
  /** Default primary + 1. */
  serverBindAddress2?: string;
  prefix?: string;
  interfaceMtu?: number;
}

export function miredoClientDirectives(c: MiredoClientConfig): MiredoDirectives {
  return {
    RelayType: 'client',
    InterfaceName: c.interfaceName,
    ServerAddress: c.serverAddress,
    BindAddress: c.bindAddress,
    BindPort: c.bindPort,
  };
}

export function miredoRelayDirectives(c: MiredoRelayConfig): MiredoDirectives {
  return {
    RelayType: c.relayType ?? 'relay',
    InterfaceName: c.interfaceName,
    BindAddress: c.bindAddress,
    BindPort: c.bindPort,
    Prefix: c.prefix,
    InterfaceMTU: c.interfaceMtu,
  };
}

export function miredoServerDirectives(c: MiredoServerConfig): MiredoDirectives {
  return {
    ServerBindAddress: c.serverBindAddress,
    ServerBindAddress2: c.serverBindAddress2,
    Prefix: c.prefix,
    InterfaceMTU: c.interfaceMtu,
  };
}

/** The lab's run directory as an absolute path (T6_LAB_RUN_DIR may be relative). */
function runDir(lab: Lab): string {
  return isAbsolute(lab.runDir) ? lab.runDir : resolve(lab.runDir);
}

function checkFileName(name: string): void {
  if (!FILE_NAME_RE.test(name)) throw new ConfigError(`bad Miredo instance name '${name}' (letters, digits, . _ -)`);
}

/** Writes RUN/<name>.conf and returns its absolute path. */
export function writeMiredoConf(lab: Lab, name: string, directives: MiredoDirectives): string {
  checkFileName(name);
  const path = join(runDir(lab), `${name}.conf`);
  writeFileSync(path, formatMiredoConf(directives));
  return path;
}

export type MiredoRole = 'client' | 'relay' | 'server';

/** A running miredo or miredo-server inside a lab namespace. */
export interface MiredoDaemon {
  role: MiredoRole;
  /** Short namespace name as given. */
  ns: string;
  name: string;
  confPath: string;
  pidPath: string;
  process: ManagedProcess;
}

export interface MiredoStartOptions {
  /** Instance name: log, config and PID file names; default `miredo-<role>-<ns>`. */
  name?: string;
  /** How long start-up may take (sockets bound, tunnel present); default 5000 ms. */
  timeoutMs?: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function tail(text: string, lines = 15): string {
  return text.trim().split('\n').slice(-lines).join('\n');
}

/** Polls `check` until it returns a value; throws if the process exits first or time runs out. */
async function waitFor<T>(what: string, p: ManagedProcess | undefined, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (p && !p.running) throw new Error(`${p.name} in ${p.ns} exited before ${what}; log ${p.logPath}:\n${tail(p.log())}`);
    if (Date.now() >= deadline) {
      throw new Error(`${what}: not within ${timeoutMs} ms${p ? `; log ${p.logPath}:\n${tail(p.log())}` : ''}`);
    }
    await sleep(50);
  }
}

/** Local UDP endpoints bound in `ns` ('addr:port' as `ss` prints them). */
export async function boundUdp(lab: Lab, ns: string): Promise<string[]> {
  const r = await lab.exec(ns, 'ss', ['-H', '-u', '-a', '-n'], { allowFailure: true });
  return r.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[3] ?? '')
    .filter((x) => x !== '');
}

async function linkExists(lab: Lab, ns: string, ifname: string): Promise<boolean> {
  const r = await lab.ip(ns, ['link', 'show', 'dev', ifname], { allowFailure: true });
  return r.exitCode === 0;
}

function spawnMiredo(lab: Lab, ns: string, role: MiredoRole, directives: MiredoDirectives, opts: MiredoStartOptions): MiredoDaemon {
  const missing = missingMiredoFiles(role === 'server' ? ['server'] : role === 'client' ? ['client', 'privproc', 'clientHook'] : ['client']);
  if (missing.length > 0) throw new ConfigError(`Miredo is not installed (missing ${missing.join(', ')}): run scripts/install-deps.sh`);
  const name = opts.name ?? `miredo-${role}-${ns}`;
  checkFileName(name);
  const confPath = writeMiredoConf(lab, name, directives);
  const pidPath = join(runDir(lab), `${name}.pid`);
  const bin = role === 'server' ? MIREDO_PATHS.server : MIREDO_PATHS.client;
  // -f: stay in the foreground (logs go to stderr, i.e. the lab log); -c and -p absolute.
  const proc = lab.spawn(ns, name, bin, ['-f', '-c', confPath, '-p', pidPath]);
  return { role, ns, name, confPath, pidPath, process: proc };
}

/** Starts miredo-server in `ns` and waits until both its UDP sockets (primary and secondary :3544) are bound. */
export async function startMiredoServer(lab: Lab, ns: string, c: MiredoServerConfig, opts: MiredoStartOptions = {}): Promise<MiredoDaemon> {
  const d = spawnMiredo(lab, ns, 'server', miredoServerDirectives(c), opts);
  const secondary = c.serverBindAddress2 ?? nextIpv4(c.serverBindAddress);
  const want = [`${c.serverBindAddress}:3544`, `${secondary}:3544`];
  await waitFor(`miredo-server bound ${want.join(' and ')}`, d.process, opts.timeoutMs ?? 5000, async () => {
    const b = await boundUdp(lab, ns);
    return want.every((w) => b.includes(w)) ? true : undefined;
  });
  return d;
}

/** Starts a Miredo relay in `ns` and waits for its UDP socket and tunnel interface. */
export async function startMiredoRelay(lab: Lab, ns: string, c: MiredoRelayConfig, opts: MiredoStartOptions = {}): Promise<MiredoDaemon> {
  const d = spawnMiredo(lab, ns, 'relay', miredoRelayDirectives(c), opts);
  const port = c.bindPort ?? 0;
  await waitFor('the Miredo relay socket and tunnel', d.process, opts.timeoutMs ?? 5000, async () => {
    if (c.interfaceName !== undefined && !(await linkExists(lab, ns, c.interfaceName))) return undefined;
    if (port !== 0) {
      const b = await boundUdp(lab, ns);
      if (!b.includes(`${c.bindAddress ?? '0.0.0.0'}:${port}`)) return undefined;
    }
    return true;
  });
  return d;
}

/** Starts a Miredo client in `ns` (it qualifies on its own; see waitMiredoAddress). */
export function startMiredoClient(lab: Lab, ns: string, c: MiredoClientConfig, opts: MiredoStartOptions = {}): MiredoDaemon {
  return spawnMiredo(lab, ns, 'client', miredoClientDirectives(c), opts);
}

/** Global IPv6 addresses on `ifname` in `ns` (without prefix length); [] if the interface is missing. */
export async function globalIpv6Addresses(lab: Lab, ns: string, ifname: string): Promise<string[]> {
  const r = await lab.ip(ns, ['-6', '-o', 'addr', 'show', 'dev', ifname, 'scope', 'global'], { allowFailure: true });
  if (r.exitCode !== 0) return [];
  return [...r.stdout.matchAll(/\binet6 ([0-9a-f:]+)\/\d+/g)].map((m) => m[1]!);
}

/** Waits until the Miredo client's hook has put a Teredo address (2001:0::/32 unless `prefix` says otherwise) on
 *  its interface, and returns it. */
export async function waitMiredoAddress(
  lab: Lab,
  d: MiredoDaemon,
  ifname: string,
  opts: { timeoutMs?: number; prefix?: string } = {},
): Promise<string> {
  const prefix = opts.prefix ?? '2001:0:';
  return waitFor(`a ${prefix}… address on ${ifname} in ${d.ns}`, d.process, opts.timeoutMs ?? 10_000, async () => {
    // `ip` prints a Teredo address as 2001:0:<server>:…, the server being never 0.
    return (await globalIpv6Addresses(lab, d.ns, ifname)).find((a) => a.startsWith(prefix));
  });
}

/** Stops a Miredo daemon (SIGTERM to the foreground parent, which stops its worker and privproc). */
export async function stopMiredo(d: MiredoDaemon, graceMs = 3000): Promise<void> {
  await d.process.stop(graceMs);
}

/** PIDs of miredo / miredo-server / miredo-privproc processes running in the network namespace of this process
 *  (the root namespace when called from the tests). The lab must never add any. */
export function miredoPidsInOwnNamespace(): number[] {
  let self: string;
  try {
    self = readlinkSync('/proc/self/ns/net');
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (!readFileSync(`/proc/${entry}/comm`, 'utf8').startsWith('miredo')) continue;
      if (readlinkSync(`/proc/${entry}/ns/net`) === self) pids.push(Number(entry));
    } catch {
      // gone meanwhile, or not ours to inspect
    }
  }
  return pids;
}

function nextIpv4(a: string): string {
  const p = a.split('.').map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) throw new ConfigError(`bad IPv4 address '${a}'`);
  const n = ((p[0]! << 24) >>> 0) + (p[1]! << 16) + (p[2]! << 8) + p[3]! + 1;
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}
