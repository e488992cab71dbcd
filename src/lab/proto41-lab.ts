/**
 * The ISATAP and 6to4 parts of `transit6 lab up`: the topologies of proto41-topology.ts with our daemons started
 * detached (so that the lab can be released and outlive the command), waited for until configured, each node's
 * addresses read from its daemon (`show state --json`) and checked on the kernel's interface, and the pings that
 * show the protocol working. Every check is a real exchange in the namespaces; a failed one throws (the caller tears
 * the lab down).
 */
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { inNs, type ManagedProcess } from './exec.js';
import { Lab } from './netns.js';
import { buildIsatapLab, buildSixToFourLab, ISATAP_PREFIX, TRANSIT6, tunnelShow, waitFor, type IsatapLab, type SixToFourLab } from './proto41-topology.js';
import { ping6 } from './teredo-lab.js';

export type Proto41Family = 'isatap' | '6to4';

/** What `lab up` leaves in a proto-41 lab's run directory for `lab status`. */
export const PART_FILE = 'part.json';

export interface PartNode {
  name: string;
  ns: string;
  /** The daemon family to ask (`transit6 <family> show state`), or null for a node without one. */
  family: Proto41Family | null;
}

export interface PartRecord {
  part: Proto41Family;
  nodes: PartNode[];
}

export interface Proto41Options {
  /** The lab's namespace prefix; default a random one. */
  prefix?: string;
  progress?: (msg: string) => void;
  /** Per wait (daemon answering, configured). */
  timeoutMs: number;
  /** Run the pings (false: --no-matrix). */
  pings: boolean;
}

export interface NodeAddresses {
  name: string;
  ns: string;
  ipv4: string | null;
  /** The daemon's role and state (`show state --json`), null for a node without a daemon. */
  role: string | null;
  state: string | null;
  /** The IPv6 addresses the daemon reports (link-local first for ISATAP), each checked on the interface. */
  addresses: string[];
  interface: string;
  /** `ip -6 addr show dev IFACE` in the namespace lists every one of `addresses`. */
  onInterface: boolean;
  defaultRouter?: string | null;
}

export interface PingCheck {
  from: string;
  to: string;
  addr: string;
  /** How the packets go, in words. */
  path: string;
  sent: number;
  received: number;
  firstRttMs: number | null;
  answered: boolean;
}

export interface Proto41Result {
  part: Proto41Family;
  prefix: string;
  runDir: string;
  namespaces: string[];
  daemons: { name: string; ns: string; pid: number; log: string }[];
  nodes: NodeAddresses[];
  pings: PingCheck[];
  /** Extra facts the part shows (ISATAP: the router forwarded no host-to-host packet). */
  facts: string[];
}

export interface RunningPart {
  lab: Lab;
  result: Proto41Result;
}

type State = Record<string, unknown> & {
  state?: string;
  role?: string;
  interfaceStatus?: string;
  defaultRouter?: string | null;
  linkLocal?: string;
  prefixes?: { address: string | null }[];
  addresses?: string[];
  lanPrefix?: string;
  events?: Record<string, number>;
};

function spawn(lab: Lab, ns: string, name: string, args: string[]): ManagedProcess {
  return lab.spawn(ns, name, process.execPath, [TRANSIT6, ...args], { detached: true });
}

function daemonList(procs: ManagedProcess[]): Proto41Result['daemons'] {
  return procs.map((p) => ({ name: p.name, ns: p.ns, pid: p.pid, log: p.logPath }));
}

/** True when `ip -6 addr show dev iface` in `ns` lists every address. */
async function onInterface(lab: Lab, ns: string, iface: string, addresses: readonly string[]): Promise<boolean> {
  const r = await lab.exec(ns, 'ip', ['-6', '-o', 'addr', 'show', 'dev', iface], { allowFailure: true });
  if (r.exitCode !== 0) return false;
  const have = new Set([...r.stdout.matchAll(/inet6 ([0-9a-f:]+)\//g)].map((m) => m[1]));
  return addresses.length > 0 && addresses.every((a) => have.has(a));
}

async function pingCheck(lab: Lab, from: { name: string; ns: string }, to: string, addr: string, path: string): Promise<PingCheck> {
  const r = await ping6(lab, from.ns, addr);
  return { from: from.name, to, addr, path, sent: r.sent, received: r.received, firstRttMs: r.firstRttMs ?? null, answered: r.received > 0 };
}

function failIfUnanswered(pings: readonly PingCheck[]): void {
  const bad = pings.filter((p) => !p.answered);
  if (bad.length > 0) throw new Error(`unanswered: ${bad.map((p) => `${p.from} -> ${p.to} (${p.addr}, ${p.received}/${p.sent})`).join(', ')}`);
}

function savePart(lab: Lab, rec: PartRecord): void {
  writeFileSync(join(lab.runDir, PART_FILE), `${JSON.stringify(rec, null, 2)}\n`);
}

export function loadPart(runDir: string): PartRecord | undefined {
  try {
    return JSON.parse(readFileSync(join(runDir, PART_FILE), 'utf8')) as PartRecord;
  } catch {
    return undefined;
  }
}

/** Builds `build(lab)` in a fresh Lab and runs `body`; on any failure the lab is destroyed and the error rethrown. */
async function inLab<T>(o: Proto41Options, body: (lab: Lab) => Promise<T>): Promise<{ lab: Lab; value: T }> {
  const lab = new Lab(o.prefix !== undefined ? { prefix: o.prefix } : {});
  try {
    return { lab, value: await body(lab) };
  } catch (e) {
    await lab.destroy().catch((d: unknown) => {
      if (e instanceof Error) e.message += `\n  (and teardown failed: ${d instanceof Error ? d.message : String(d)})`;
    });
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// ISATAP

async function isatapConfigured(lab: Lab, ns: string): Promise<State | undefined> {
  const s = (await tunnelShow(lab, ns, 'isatap', 'state')) as State | undefined;
  if (!s || s.state !== 'configured' || s.interfaceStatus !== 'up' || !s.defaultRouter || !(s.prefixes ?? []).some((p) => p.address)) return undefined;
  return s;
}

/**
 * The ISATAP lab: router (10.20.0.1, advertising 2001:db8:5e:1::/64 and a default route), host 1 finding the router
 * by the name "isatap" (hosts file and search domain), host 2 with --router, a native IPv6 host behind the router.
 * Shows: each host's ISATAP addresses; host <-> host direct (the router's counters do not move); host -> native host.
 */
export async function startIsatapPart(o: Proto41Options): Promise<RunningPart> {
  const say = o.progress ?? (() => undefined);
  const { lab, value } = await inLab(o, async (lab) => {
    const t0 = Date.now();
    const topo: IsatapLab = await buildIsatapLab(lab);
    say(`isatap: built ${lab.namespaces.length} namespaces (prefix ${lab.prefix}) in ${Date.now() - t0} ms`);
    const [h1, h2] = topo.hosts as [{ ns: string; ipv4: string }, { ns: string; ipv4: string }];
    const hostsFile = join(lab.runDir, 'hosts');
    const resolv = join(lab.runDir, 'resolv.conf');
    writeFileSync(hostsFile, `127.0.0.1 localhost\n${topo.router.ipv4} isatap.corp.example\n`);
    writeFileSync(resolv, 'search corp.example\nnameserver 127.0.0.1\n');
    const procs: ManagedProcess[] = [];
    procs.push(spawn(lab, topo.router.ns, 'isatap-router', ['isatap', 'router', '--local', topo.router.ipv4, '--prefix', `${ISATAP_PREFIX}/64`, '--default-route']));
    const routerState = await waitFor('the ISATAP router to answer', () => tunnelShow(lab, topo.router.ns, 'isatap', 'state') as Promise<State | undefined>, o.timeoutMs, procs);
    procs.push(spawn(lab, h1.ns, 'isatap-host', ['isatap', 'host', '--hosts-file', hostsFile, '--resolv-conf', resolv]));
    procs.push(spawn(lab, h2.ns, 'isatap-host', ['isatap', 'host', '--router', topo.router.ipv4]));
    const t1 = Date.now();
    const s1 = await waitFor('ISATAP host 1 configured', () => isatapConfigured(lab, h1.ns), o.timeoutMs, procs);
    const s2 = await waitFor('ISATAP host 2 configured', () => isatapConfigured(lab, h2.ns), o.timeoutMs, procs);
    say(`isatap: router, host 1 (router by name) and host 2 (--router) configured ${Date.now() - t1} ms after start`);
    const hostNode = async (name: string, ns: string, ipv4: string, s: State): Promise<NodeAddresses> => {
      const addresses = [s.linkLocal ?? '', ...(s.prefixes ?? []).map((p) => p.address).filter((a): a is string => typeof a === 'string')].filter(Boolean);
      return { name, ns, ipv4, role: s.role ?? 'isatap-host', state: s.state ?? null, addresses, interface: 'isatap0', onInterface: await onInterface(lab, ns, 'isatap0', addresses), defaultRouter: s.defaultRouter ?? null };
    };
    const nodes: NodeAddresses[] = [
      { name: 'router', ns: topo.router.ns, ipv4: topo.router.ipv4, role: routerState.role ?? 'isatap-router', state: routerState.state ?? null, addresses: [routerState.linkLocal ?? ''].filter(Boolean), interface: 'isatap0', onInterface: await onInterface(lab, topo.router.ns, 'isatap0', [routerState.linkLocal ?? '']) },
      await hostNode('host1', h1.ns, h1.ipv4, s1),
      await hostNode('host2', h2.ns, h2.ipv4, s2),
      { name: 'v6host', ns: topo.v6host.ns, ipv4: null, role: null, state: null, addresses: [topo.v6host.ipv6], interface: 'eth0', onInterface: await onInterface(lab, topo.v6host.ns, 'eth0', [topo.v6host.ipv6]) },
    ];
    const off = nodes.filter((n) => !n.onInterface);
    if (off.length > 0) throw new Error(`isatap: addresses missing on the interface of ${off.map((n) => `${n.name} (${n.addresses.join(' ')} on ${n.interface})`).join(', ')}`);
    const a1 = nodes[1]!.addresses[1]!;
    const a2 = nodes[2]!.addresses[1]!;
    const pings: PingCheck[] = [];
    const facts: string[] = [];
    if (o.pings) {
      const before = ((await tunnelShow(lab, topo.router.ns, 'isatap', 'state')) as State).events?.['rx-packets'] ?? 0;
      pings.push(await pingCheck(lab, { name: 'host1', ns: h1.ns }, 'host2', a2, 'direct, IPv6 in IPv4 10.20.0.11 -> 10.20.0.12'));
      pings.push(await pingCheck(lab, { name: 'host2', ns: h2.ns }, 'host1', a1, 'direct, IPv6 in IPv4 10.20.0.12 -> 10.20.0.11'));
      const after = ((await tunnelShow(lab, topo.router.ns, 'isatap', 'state')) as State).events?.['rx-packets'] ?? 0;
      facts.push(`the router received ${after - before} packet(s) during the host-to-host pings (direct: none expected)`);
      if (after !== before) throw new Error(`isatap: the router saw ${after - before} packet(s) of the host-to-host pings, which should go direct`);
      pings.push(await pingCheck(lab, { name: 'host1', ns: h1.ns }, 'v6host', topo.v6host.ipv6, 'through the ISATAP router'));
      pings.push(await pingCheck(lab, { name: 'host2', ns: h2.ns }, 'v6host', topo.v6host.ipv6, 'through the ISATAP router'));
      failIfUnanswered(pings);
    }
    savePart(lab, {
      part: 'isatap',
      nodes: [
        { name: 'router', ns: topo.router.ns, family: 'isatap' },
        { name: 'host1', ns: h1.ns, family: 'isatap' },
        { name: 'host2', ns: h2.ns, family: 'isatap' },
      ],
    });
    return { nodes, pings, facts, procs };
  });
  return { lab, result: { part: 'isatap', prefix: lab.prefix, runDir: lab.runDir, namespaces: [...lab.namespaces], daemons: daemonList(value.procs), nodes: value.nodes, pings: value.pings, facts: value.facts } };
}

// ---------------------------------------------------------------------------------------------------------------
// 6to4

async function tunnelUp(lab: Lab, ns: string): Promise<State | undefined> {
  const s = (await tunnelShow(lab, ns, '6to4', 'state')) as State | undefined;
  return s && s.interfaceStatus === 'up' ? s : undefined;
}

/** The LAN host's address from the router's advertisements (radvd), once it also has the default route. */
async function lanAddress(lab: Lab, ns: string, lanPrefix: string): Promise<string | undefined> {
  const net = lanPrefix.replace(/::\/64$/, ':');
  const out = (await lab.exec(ns, 'ip', ['-6', '-o', 'addr', 'show', 'dev', 'eth0', 'scope', 'global'])).stdout;
  const m = [...out.matchAll(/inet6 ([0-9a-f:]+)\/64/g)].map((x) => x[1]!).find((a) => a.startsWith(net));
  if (!m) return undefined;
  const routes = (await lab.exec(ns, 'ip', ['-6', 'route', 'show', 'default'])).stdout;
  return /default via fe80::/.test(routes) ? m : undefined;
}

/**
 * The 6to4 lab: a 6to4 router (198.51.100.2) serving its LAN 2002:c633:6402:1::/64 through radvd, a 6to4 host
 * (203.0.113.2) elsewhere on the IPv4 Internet, a relay (198.51.100.18) in front of a native IPv6 host.
 * Shows: the 2002:WWXX:YYZZ:: addresses and the LAN host's autoconfigured one; host <-> LAN across the IPv4
 * Internet; host and LAN host -> native host through the relay, and back.
 */
export async function startSixToFourPart(o: Proto41Options): Promise<RunningPart> {
  const say = o.progress ?? (() => undefined);
  const { lab, value } = await inLab(o, async (lab) => {
    const t0 = Date.now();
    const topo: SixToFourLab = await buildSixToFourLab(lab);
    say(`6to4: built ${lab.namespaces.length} namespaces (prefix ${lab.prefix}) in ${Date.now() - t0} ms`);
    const procs: ManagedProcess[] = [];
    procs.push(spawn(lab, topo.relay.ns, '6to4-relay', ['6to4', 'relay', '--local', topo.relay.ipv4]));
    procs.push(spawn(lab, topo.router.ns, '6to4-router', ['6to4', 'router', '--lan', topo.router.lanIface, '--subnet', '1', '--relay', topo.relay.ipv4, '--ra-interval', '4']));
    procs.push(spawn(lab, topo.host.ns, '6to4-host', ['6to4', 'host', '--relay', topo.relay.ipv4]));
    const t1 = Date.now();
    const relay = await waitFor('the 6to4 relay up', () => tunnelUp(lab, topo.relay.ns), o.timeoutMs, procs);
    const router = await waitFor('the 6to4 router up', () => tunnelUp(lab, topo.router.ns), o.timeoutMs, procs);
    const host = await waitFor('the 6to4 host up', () => tunnelUp(lab, topo.host.ns), o.timeoutMs, procs);
    const lanPrefix = router.lanPrefix ?? '2002:c633:6402:1::/64';
    const lanAddr = await waitFor('the LAN host autoconfigured from the router’s advertisements', () => lanAddress(lab, topo.lanHost.ns, lanPrefix), o.timeoutMs, procs);
    say(`6to4: relay, router and host up, LAN host autoconfigured ${Date.now() - t1} ms after start`);
    const daemonNode = async (name: string, ns: string, ipv4: string, s: State): Promise<NodeAddresses> => {
      const addresses = s.addresses ?? [];
      return { name, ns, ipv4, role: s.role ?? null, state: s.state ?? null, addresses, interface: 'tun6to4', onInterface: await onInterface(lab, ns, 'tun6to4', addresses) };
    };
    const nodes: NodeAddresses[] = [
      await daemonNode('host', topo.host.ns, topo.host.ipv4, host),
      await daemonNode('router', topo.router.ns, topo.router.ipv4, router),
      { name: 'lan-host', ns: topo.lanHost.ns, ipv4: null, role: null, state: null, addresses: [lanAddr], interface: 'eth0', onInterface: true },
      await daemonNode('relay', topo.relay.ns, topo.relay.ipv4, relay),
      { name: 'v6host', ns: topo.v6host.ns, ipv4: null, role: null, state: null, addresses: [topo.v6host.ipv6], interface: 'eth0', onInterface: await onInterface(lab, topo.v6host.ns, 'eth0', [topo.v6host.ipv6]) },
    ];
    const routerLan = lanPrefix.replace(/::\/64$/, '::1');
    const routerLanOk = await onInterface(lab, topo.router.ns, topo.router.lanIface, [routerLan]);
    const off = nodes.filter((n) => !n.onInterface);
    if (off.length > 0 || !routerLanOk) throw new Error(`6to4: addresses missing on the interface of ${[...off.map((n) => `${n.name} (${n.addresses.join(' ')} on ${n.interface})`), ...(routerLanOk ? [] : [`router (${routerLan} on ${topo.router.lanIface})`])].join(', ')}`);
    const facts = [`the router's LAN ${topo.router.lanIface} has ${routerLan}/64 and advertises ${lanPrefix} (radvd); the LAN host took ${lanAddr}`];
    const pings: PingCheck[] = [];
    if (o.pings) {
      const h = { name: 'host', ns: topo.host.ns };
      const lan = { name: 'lan-host', ns: topo.lanHost.ns };
      pings.push(await pingCheck(lab, h, 'lan-host', lanAddr, 'across the IPv4 Internet, 203.0.113.2 -> 198.51.100.2'));
      pings.push(await pingCheck(lab, lan, 'host', topo.host.address, 'across the IPv4 Internet, 198.51.100.2 -> 203.0.113.2'));
      pings.push(await pingCheck(lab, h, 'v6host', topo.v6host.ipv6, 'through the relay 198.51.100.18'));
      pings.push(await pingCheck(lab, lan, 'v6host', topo.v6host.ipv6, 'router -> relay -> native'));
      pings.push(await pingCheck(lab, { name: 'v6host', ns: topo.v6host.ns }, 'host', topo.host.address, 'native -> relay -> host'));
      failIfUnanswered(pings);
      const rs = ((await tunnelShow(lab, topo.relay.ns, '6to4', 'state')) as State).events ?? {};
      facts.push(`relay counters: rx-packets ${rs['rx-packets'] ?? 0}, tx-direct ${rs['tx-direct'] ?? 0}`);
    }
    savePart(lab, {
      part: '6to4',
      nodes: [
        { name: 'host', ns: topo.host.ns, family: '6to4' },
        { name: 'router', ns: topo.router.ns, family: '6to4' },
        { name: 'relay', ns: topo.relay.ns, family: '6to4' },
      ],
    });
    return { nodes, pings, facts, procs };
  });
  return { lab, result: { part: '6to4', prefix: lab.prefix, runDir: lab.runDir, namespaces: [...lab.namespaces], daemons: daemonList(value.procs), nodes: value.nodes, pings: value.pings, facts: value.facts } };
}

/** `show state --json` of each daemon node of a released part, for `lab status`. */
export async function partStatus(rec: PartRecord, timeoutMs = 10_000): Promise<{ name: string; ns: string; state: string; addresses: string[]; error?: string }[]> {
  return mapLimit(
    rec.nodes.filter((n): n is PartNode & { family: Proto41Family } => n.family !== null),
    STATUS_CONCURRENCY,
    async (n) => {
      const r = await inNs(n.ns, process.execPath, [TRANSIT6, n.family, 'show', 'state', '--json'], { allowFailure: true, timeoutMs });
      if (r.exitCode !== 0) return { name: n.name, ns: n.ns, state: 'unknown', addresses: [], error: r.stderr.trim().split('\n')[0] || `exit code ${String(r.exitCode)}` };
      const s = JSON.parse(r.stdout) as State;
      const addresses = n.family === 'isatap' ? [s.linkLocal ?? '', ...(s.prefixes ?? []).map((p) => p.address ?? '')].filter(Boolean) : (s.addresses ?? []);
      return { name: n.name, ns: n.ns, state: String(s.state ?? 'unknown'), addresses };
    },
  );
}

/** How many `show` commands `lab status` runs at once: each is a Node process, and a busy machine makes a dozen
 *  started together miss their timeout. */
export const STATUS_CONCURRENCY = 3;

/** `fn` over `items`, at most `limit` at a time, results in order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
