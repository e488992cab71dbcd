/**
 * `transit6 lab up|down|status`: the whole system in namespace labs, left running for a person to explore. `up`
 * builds one lab per part (--only): the Teredo lab of the Miredo reference study (shared/reference/miredo-lab-report.md
 * §2–3), whose clients' states it prints next to the NATs' real mappings with a reachability matrix from real pings;
 * the ISATAP lab and the 6to4 lab (src/lab/proto41-lab.ts), whose addresses and pings it prints; the PortProxy lab
 * (src/lab/portproxy-lab.ts), whose connections through the proxy it prints; then releases the
 * labs so that they outlive the command. `down` takes every lab down; `status` says what runs.
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { UsageError } from '../core/errors.js';
import type { ClientStateJson } from '../io/control.js';
import { isAlive } from '../lab/exec.js';
import { assertLabPrefix, cleanupStale, installCleanupHandlers, Lab, listNamespaces, randomLabPrefix, readLabStates, type LabState } from '../lab/netns.js';
import { startPortProxyPart, type PortProxyResult } from '../lab/portproxy-lab.js';
import { loadPart, mapLimit, partStatus, STATUS_CONCURRENCY, startIsatapPart, startSixToFourPart, type Proto41Result } from '../lab/proto41-lab.js';
import {
  clientRows,
  formatClientTable,
  formatMatrix,
  loadTopology,
  peerEntry,
  pingMatrix,
  saveTopology,
  showJson,
  startTeredoLab,
  TRANSIT6_BIN,
  waitForClients,
  type ClientRow,
  type MatrixCell,
  type MatrixNode,
  type RunningTeredoLab,
} from '../lab/teredo-lab.js';
import { ALL_CLIENTS, type ClientName } from '../lab/teredo-topology.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, type CliIo } from './io.js';

const HELP = `usage: transit6 lab up [--only teredo,isatap,6to4,portproxy] [--clients prc,sym,...] [--json] [--prefix t6-NAME-]
                     [--timeout S] [--no-matrix]
       transit6 lab down [--prefix t6-NAME-]
       transit6 lab status [--json]

The whole system in network namespaces named t6-*, one lab per part, our daemons in each:

  teredo  an IPv4/IPv6 "Internet" router, our Teredo server (198.51.100.1 and .2), our relay (198.51.100.17:3545),
          a native IPv6 host (v6host, 2001:db8:1::10) and clients behind NATs:
            cli-prc, cli-prc2   port-restricted cone NAT           cli-fc    full cone (static mapping, port 3550)
            cli-sym             symmetric NAT                      cli-pub   no NAT
            cli-lan1, cli-lan2  two clients behind one port-restricted NAT, on one LAN
  isatap  an IPv4 intranet 10.20.0.0/24: our ISATAP router (10.20.0.1, advertises 2001:db8:5e:1::/64) and two
          hosts (host1 finds the router by the name "isatap", host2 with --router), and a native IPv6 host
          (2001:db8:60::10) behind the router
  6to4    an IPv4 Internet: our 6to4 host (203.0.113.2 = 2002:cb00:7102::/48), our 6to4 router (198.51.100.2)
          with a LAN host autoconfigured by radvd from 2002:c633:6402:1::/64, our relay (198.51.100.18) in front
          of a native IPv6 host (2001:db8:70::10)
  portproxy  an IPv4-only host (198.51.100.10, IPv6 off) and an IPv6-only host (2001:db8:6::10), each with a TCP
          service on port 7007, and our proxy between them (transit6 portproxy run, forwarding off) with the rules
          v6tov4 listenport=8004 -> 198.51.100.10:7007 and v4tov6 198.51.100.1:8006 -> [2001:db8:6::10]:7007

  up       builds each part, starts the daemons and waits until they are configured (Teredo: every client
           qualified and its NAT detection done), then prints per part:
             teredo  each client's state and NAT mapping (daemon vs conntrack) and the reachability matrix from
                     real pings (ping -6 -c 3 -i 0.2 -W 2, every ordered pair of clients and v6host)
             isatap  each node's ISATAP addresses ('isatap show state --json', checked on isatap0), pings
                     host1 <-> host2 (direct: the router's counters must not move) and host -> native host
             6to4    each node's 2002:: addresses (checked on tun6to4) and the LAN host's, pings host <-> LAN
                     host across the IPv4 Internet, host and LAN host -> native host via the relay, and back
             portproxy  the hosts' addresses, the rules ('portproxy show --live --json'), each host failing to
                     reach the other's service directly and reaching it through the proxy (socat), the service
                     seeing the proxy's address in its own family
           then leaves every part running (lab status lists them, lab down removes them). Any failure (a part
           that does not come up, an ISATAP or 6to4 ping unanswered, a PortProxy connection not as expected) tears down everything this 'up' built
           (exit 1); Teredo matrix cells that differ from RFC 6081's expectation are marked, not fatal.
  down     stops every lab daemon by PID and removes every t6- lab namespace (all labs, also other users' and
           test runs'; --prefix limits it to one lab or to the parts of one 'up').
  status   lists the labs, their daemons and, for a lab from 'up', each Teredo client's state and each ISATAP
           and 6to4 daemon's addresses.

  --only LIST      up: which parts (teredo, isatap, 6to4, portproxy; default all, in that order)
  --clients LIST   up: which Teredo clients (prc, sym, fc, pub, prc2, lan1, lan2; default all)
  --json           the result as JSON on stdout, an object per part (progress stays on stderr)
  --prefix P       up: the base prefix (default t6-<random>-); each part's lab is P<part>-, e.g. P'isatap-';
                   down: only the labs under P
  --timeout S      up: seconds for each wait (Teredo qualification and NAT detection, configuration; default 30)
  --no-matrix      up: skip the pings

Needs root.

examples:
  sudo transit6 lab up
  sudo transit6 lab up --only isatap,6to4
  sudo transit6 lab up --only teredo --clients prc,sym,pub
  sudo ip netns exec t6-1a2b3c-teredo-cli-prc transit6 teredo show state
  sudo ip netns exec t6-1a2b3c-isatap-isa-h1 transit6 isatap show state
  sudo ip netns exec t6-1a2b3c-portproxy-pp-v6 socat - TCP6:[2001:db8:6::1]:8004
  sudo transit6 lab down`;

export const LAB_PARTS = ['teredo', 'isatap', '6to4', 'portproxy'] as const;
export type LabPart = (typeof LAB_PARTS)[number];

function partList(text: string | undefined): LabPart[] {
  if (text === undefined) return [...LAB_PARTS];
  const names = text.split(',').map((x) => x.trim()).filter(Boolean);
  if (names.length === 0) throw new UsageError('--only wants a list such as isatap,6to4');
  for (const n of names) if (!(LAB_PARTS as readonly string[]).includes(n)) throw new UsageError(`unknown part '${n}' (one of ${LAB_PARTS.join(', ')})`);
  // Always in the canonical order, each once.
  return LAB_PARTS.filter((p) => names.includes(p));
}

function clientList(text: string | undefined): ClientName[] {
  if (text === undefined) return [...ALL_CLIENTS];
  const names = text.split(',').map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) throw new UsageError('--clients wants a list such as prc,sym,pub');
  const out: ClientName[] = [];
  for (const n of names) {
    const full = (n.startsWith('cli-') ? n : `cli-${n}`) as ClientName;
    if (!ALL_CLIENTS.includes(full)) throw new UsageError(`unknown client '${n}' (one of ${ALL_CLIENTS.map((c) => c.slice(4)).join(', ')})`);
    if (!out.includes(full)) out.push(full);
  }
  return out;
}

export async function labCommand(argv: string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    io.out(HELP);
    return sub === undefined ? EXIT_USAGE : EXIT_OK;
  }
  const { values, positionals } = parseArgs({
    args: rest,
    options: {
      only: { type: 'string' },
      clients: { type: 'string' },
      json: { type: 'boolean' },
      prefix: { type: 'string' },
      timeout: { type: 'string' },
      'no-matrix': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: true,
  });
  if (values.help) {
    io.out(HELP);
    return EXIT_OK;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
  if (sub !== 'up' && sub !== 'down' && sub !== 'status') throw new UsageError(`unknown subcommand '${sub}': up, down or status`);
  if (sub !== 'up') {
    for (const k of ['only', 'clients', 'timeout', 'no-matrix'] as const) if (values[k] !== undefined) throw new UsageError(`--${k} goes with 'lab up'`);
  }
  if (sub === 'status' && values.prefix !== undefined) throw new UsageError("--prefix goes with 'lab up' or 'lab down'");
  if (sub === 'down' && values.json) throw new UsageError("--json goes with 'lab up' or 'lab status'");
  // Usage first, so that a wrong option says so without root.
  let up: UpOptions | undefined;
  if (sub === 'up') {
    let timeoutMs = 30_000;
    if (values.timeout !== undefined) {
      const secs = Number(values.timeout);
      if (!/^[0-9]+(\.[0-9]+)?$/.test(values.timeout) || secs <= 0 || secs > 600) throw new UsageError(`--timeout wants seconds (0-600), not '${values.timeout}'`);
      timeoutMs = Math.round(secs * 1000);
    }
    const parts = partList(values.only);
    if (values.clients !== undefined && !parts.includes('teredo')) throw new UsageError('--clients is for the teredo part, which --only leaves out');
    const base = values.prefix ?? randomLabPrefix();
    try {
      assertLabPrefix(base);
    } catch (e) {
      throw new UsageError(`--prefix: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (base === 't6-') throw new UsageError("--prefix wants a prefix of its own ('t6-NAME-'), not the bare 't6-'");
    up = { parts, clients: clientList(values.clients), json: values.json ?? false, base, timeoutMs, matrix: !values['no-matrix'] };
  }
  if (process.getuid?.() !== 0) {
    io.err(`transit6 lab ${sub}: needs root (network namespaces, iptables): run it with sudo`);
    return EXIT_USAGE;
  }
  switch (sub) {
    case 'up': {
      const o = up!;
      const taken = readLabStates().find((x) => x.prefix.startsWith(o.base) || o.base.startsWith(x.prefix));
      if (taken) throw new UsageError(`--prefix ${o.base}: lab ${taken.prefix} is there already ('lab down --prefix ${taken.prefix}' removes it)`);
      return labUp(io, o);
    }
    case 'down':
      return labDown(io, values.prefix);
    case 'status':
      return labStatus(io, values.json ?? false);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// up

interface UpOptions {
  parts: LabPart[];
  clients: ClientName[];
  json: boolean;
  /** The base prefix: each part's lab is <base><part>-. */
  base: string;
  timeoutMs: number;
  matrix: boolean;
}

interface LocalDiscovery {
  from: ClientName;
  to: ClientName;
  endpoint: string | null;
  local: string | null;
  overLan: boolean;
}

interface TeredoPartResult {
  l: RunningTeredoLab;
  rows: ClientRow[];
  nodes: MatrixNode[];
  cells: MatrixCell[];
  matrixMs: number;
  local: LocalDiscovery[];
}

async function labUp(io: CliIo, o: UpOptions): Promise<number> {
  // Ctrl-C during the build tears the labs down; once released, nothing here touches them any more.
  installCleanupHandlers();
  const progress = (msg: string): void => io.err(`transit6 lab up: ${msg}`);
  const built: Lab[] = [];
  let teredo: TeredoPartResult | undefined;
  const proto41: Proto41Result[] = [];
  let portproxy: PortProxyResult | undefined;
  try {
    for (const part of o.parts) {
      const prefix = `${o.base}${part}-`;
      if (part === 'teredo') {
        teredo = await teredoPart(o, prefix, progress, (lab) => built.push(lab));
      } else if (part === 'portproxy') {
        const r = await startPortProxyPart({ prefix, progress, timeoutMs: o.timeoutMs, pings: o.matrix });
        built.push(r.lab);
        portproxy = r.result;
        progress(`portproxy: ${r.result.rules.length} rules listening${o.matrix ? `, ${r.result.connections.length} connections as expected` : ''}`);
      } else {
        const opts = { prefix, progress, timeoutMs: o.timeoutMs, pings: o.matrix };
        const r = part === 'isatap' ? await startIsatapPart(opts) : await startSixToFourPart(opts);
        built.push(r.lab);
        proto41.push(r.result);
        progress(`${part}: ${r.result.nodes.length} nodes with their addresses on their interfaces${o.matrix ? `, ${r.result.pings.length} pings answered` : ''}`);
      }
    }
    if (teredo) saveTopology(teredo.l);
    for (const lab of built) lab.release();
    if (o.json) {
      const out: Record<string, unknown> = { prefix: o.base, parts: o.parts };
      if (teredo) {
        const t = teredo;
        out.teredo = { prefix: t.l.lab.prefix, runDir: t.l.lab.runDir, namespaces: t.l.topology.namespaces, daemons: daemonList(t.l), clients: t.rows, matrix: t.cells, matrixMs: t.matrixMs, localDiscovery: t.local };
      }
      for (const r of proto41) out[r.part] = r;
      if (portproxy) out.portproxy = portproxy;
      io.out(JSON.stringify(out, null, 2));
    } else {
      const sections: string[] = [];
      if (teredo) sections.push(renderTeredo(teredo));
      for (const r of proto41) sections.push(renderProto41(r));
      if (portproxy) sections.push(renderPortProxy(portproxy));
      sections.push(renderFooter(o, built));
      io.out(sections.join('\n\n'));
    }
    return EXIT_OK;
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    for (const lab of built) {
      if (lab.isDestroyed) continue;
      await lab.destroy().catch((d: unknown) => io.err(`transit6 lab up: teardown of ${lab.prefix}: ${d instanceof Error ? d.message : String(d)}`));
    }
    const keep = process.env.T6_LAB_KEEP === '1' ? '' : ' (with its logs: T6_LAB_KEEP=1 keeps them)';
    io.err(`transit6 lab up: ${reason}\ntransit6 lab up: failed; everything it made was torn down${keep}`);
    return EXIT_FAILURE;
  }
}

/** The Teredo part: built, every client qualified, the NAT mappings read, the ping matrix. */
async function teredoPart(o: UpOptions, prefix: string, progress: (msg: string) => void, built: (lab: Lab) => void): Promise<TeredoPartResult> {
  const l = await startTeredoLab({ clients: o.clients, detached: true, progress: (m) => progress(`teredo: ${m}`), prefix });
  built(l.lab);
  const t0 = Date.now();
  const ready = await waitForClients(l, o.clients, { timeoutMs: o.timeoutMs });
  progress(`teredo: all ${o.clients.length} client(s) qualified with NAT detection done (${Date.now() - t0} ms after start)`);
  const rows = await clientRows(l, ready);

  const nodes: MatrixNode[] = [...o.clients, 'v6host'];
  let cells: MatrixCell[] = [];
  let matrixMs = 0;
  if (o.matrix) {
    const addresses: Record<string, string> = { v6host: l.topology.v6host.ipv6 };
    for (const r of rows) if (r.teredoAddress) addresses[r.name] = r.teredoAddress;
    const pairs = nodes.length * (nodes.length - 1);
    progress(`teredo: pinging ${pairs} ordered pairs (a few seconds per round of unreachable pairs)`);
    const m0 = Date.now();
    cells = await pingMatrix(l, nodes, addresses);
    matrixMs = Date.now() - m0;
  }
  const local: LocalDiscovery[] = [];
  if (o.matrix && o.clients.includes('cli-lan1') && o.clients.includes('cli-lan2')) {
    for (const [from, to] of [['cli-lan1', 'cli-lan2'], ['cli-lan2', 'cli-lan1']] as const) {
      const addr = rows.find((r) => r.name === to)?.teredoAddress;
      const p = addr ? await peerEntry(l, from, addr) : undefined;
      const endpoint = p?.endpoint ?? null;
      const isLan = (ep: string | null): boolean => ep !== null && ep.startsWith('192.168.');
      local.push({ from, to, endpoint, local: p?.local ?? null, overLan: isLan(endpoint) || isLan(p?.local ?? null) });
    }
  }
  return { l, rows, nodes, cells, matrixMs, local };
}

function daemonList(l: RunningTeredoLab): { name: string; ns: string; pid: number; log: string }[] {
  const d = l.daemons;
  const procs = [d.server, ...(d.relay ? [d.relay] : []), ...Object.values(d.clients)];
  return procs.map((p) => ({ name: p!.name, ns: p!.ns, pid: p!.pid, log: p!.logPath }));
}

function renderTeredo(p: TeredoPartResult): string {
  const { l, rows, nodes, cells, matrixMs, local } = p;
  const t = l.topology;
  const lines: string[] = [];
  lines.push(`== Teredo lab ${l.lab.prefix}: ${t.namespaces.length} namespaces, server, relay and ${rows.length} client(s); logs in ${l.lab.runDir}`);
  lines.push('');
  lines.push("Clients ('teredo show state --json' in each namespace; conntrack mapping read in the NAT's namespace, '=' when the");
  lines.push('daemon\'s external mapping, the Teredo address and conntrack agree; times from each daemon\'s log, after exec):');
  lines.push(formatClientTable(rows));
  if (cells.length > 0) {
    lines.push('');
    lines.push(`Reachability from real pings (ping -6 -c 3 -i 0.2 -W 2, row pings column; received/sent and first RTT; ${(matrixMs / 1000).toFixed(1)} s):`);
    lines.push(formatMatrix(nodes, cells));
    const off = cells.filter((c) => !c.asExpected);
    lines.push(
      off.length === 0
        ? `All ${cells.length} cells are what RFC 6081 expects: port-restricted <-> symmetric fails both ways, everything else connects.`
        : `${off.length} of ${cells.length} cells are NOT what RFC 6081 expects (marked !): ${off.map((c) => `${c.from}->${c.to}`).join(', ')}`,
    );
    lines.push('State is not fresh per pair: pairs run in round-robin rounds, both directions, after any earlier exchange.');
  }
  for (const d of local) {
    const where = [d.endpoint ? `endpoint ${d.endpoint}` : '', d.local ? `local ${d.local}` : ''].filter(Boolean).join(', ') || 'no peer entry';
    lines.push(`Local discovery ('show peers' in ${d.from}): ${d.to} at ${where}: ${d.overLan ? 'over the LAN' : 'NOT over the LAN'}`);
  }
  lines.push('');
  lines.push('Inspect it:');
  const bin = TRANSIT6_BIN;
  const first = rows[0]?.ns ?? `${l.lab.prefix}cli-prc`;
  lines.push(`  sudo ip netns exec ${first} node ${bin} teredo show state     (also: show peers, show stats)`);
  lines.push(`  sudo ip netns exec ${t.relay.ns} node ${bin} teredo show peers`);
  lines.push(`  sudo ip netns exec ${first} ping -6 ${t.v6host.ipv6}`);
  return lines.join('\n');
}

const PART_TITLE: Record<Proto41Result['part'], string> = {
  isatap: 'ISATAP lab (RFC 5214): router 10.20.0.1 advertising 2001:db8:5e:1::/64, two hosts on the IPv4 intranet, a native IPv6 host behind the router',
  '6to4': '6to4 lab (RFC 3056): a 6to4 host and a 6to4 router with a LAN on the IPv4 Internet, a relay in front of a native IPv6 host',
};

function renderProto41(r: Proto41Result): string {
  const lines: string[] = [];
  lines.push(`== ${PART_TITLE[r.part]}`);
  lines.push(`   ${r.prefix}: ${r.namespaces.length} namespaces, ${r.daemons.length} daemons; logs in ${r.runDir}`);
  lines.push('');
  lines.push(`Addresses (the daemon's '${r.part} show state --json'; 'on' when 'ip -6 addr' on the interface lists them all):`);
  const rows = r.nodes.map((n) => [n.name, n.ipv4 ?? '-', n.state ?? '-', `${n.interface} ${n.onInterface ? 'on' : 'MISSING'}`, n.addresses.join(' '), n.defaultRouter ? `default router ${n.defaultRouter}` : '']);
  lines.push(table(['node', 'IPv4', 'state', 'interface', 'IPv6 addresses', ''], rows));
  if (r.pings.length > 0) {
    lines.push('');
    lines.push('Pings (ping -6 -c 3 -i 0.2 -W 2; received/sent and first RTT):');
    lines.push(table(['from', 'to', 'address', 'result', 'path'], r.pings.map((p) => [p.from, p.to, p.addr, `${p.received}/${p.sent}${p.firstRttMs !== null ? ` ${p.firstRttMs} ms` : ''}`, p.path])));
  }
  for (const f of r.facts) lines.push(`Also: ${f}`);
  lines.push('');
  lines.push('Inspect it:');
  const d = r.daemons[r.daemons.length - 1]!;
  lines.push(`  sudo ip netns exec ${d.ns} node ${TRANSIT6_BIN} ${r.part} show state     (also: show stats)`);
  return lines.join('\n');
}

function renderPortProxy(r: PortProxyResult): string {
  const lines: string[] = [];
  lines.push('== PortProxy lab: an IPv4-only host and an IPv6-only host, our proxy between them (forwarding off)');
  lines.push(`   ${r.prefix}: ${r.namespaces.length} namespaces; rules in ${r.config}; logs in ${r.runDir}`);
  lines.push('');
  lines.push("Addresses ('ip -o addr' on each interface: the IPv4-only host has no IPv6 address, the IPv6-only host no IPv4 one):");
  lines.push(table(['node', 'IPv4', 'IPv6', 'interface'], r.nodes.map((n) => [n.name, n.ipv4 ?? '-', n.addresses.join(' ') || '-', n.interface])));
  lines.push('');
  lines.push("Rules ('portproxy show --live --json'):");
  lines.push(table(['mode', 'listen', 'target', 'status', 'accepted'], r.rules.map((x) => [x.mode, x.listen, x.target, x.status, String(x.accepted)])));
  if (r.connections.length > 0) {
    lines.push('');
    lines.push("Connections (socat; each service answers with the peer address it sees):");
    lines.push(table(['from', 'to', 'via', 'answer'], r.connections.map((c) => [c.from, c.to, c.mode ? `${c.mode} -> ${c.target}` : 'direct', c.reply ? `${c.reply.replace(/ answers .*$/, '')}, saw the client as ${c.seenAs ?? '?'}` : 'none (no path without the proxy: as expected)'])));
  }
  lines.push('');
  lines.push('Inspect it:');
  const proxy = r.nodes.find((n) => n.name === 'proxy')!;
  lines.push(`  sudo ip netns exec ${proxy.ns} node ${TRANSIT6_BIN} portproxy show all --config ${r.config}`);
  return lines.join('\n');
}

function table(header: string[], rows: string[][]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((row) => (row[i] ?? '').length)));
  return all.map((row) => `  ${row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')}`.trimEnd()).join('\n');
}

function renderFooter(o: UpOptions, built: Lab[]): string {
  const bin = TRANSIT6_BIN;
  return [
    `Up: ${o.parts.join(', ')} (${built.map((l) => l.prefix).join(' ')}), left running.`,
    `  sudo node ${bin} lab status`,
    'Take it down:',
    `  sudo node ${bin} lab down --prefix ${o.base}     (one part: --prefix ${built[0]?.prefix ?? o.base}; 'lab down' for every t6- lab)`,
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------------------------
// down

async function labDown(io: CliIo, prefix: string | undefined): Promise<number> {
  const r = await cleanupStale(prefix ?? 't6-', { includeLive: true });
  if (r.removed.length === 0 && r.stopped.length === 0) {
    io.out(`no lab to take down${prefix ? ` under ${prefix}` : ''}`);
    return EXIT_OK;
  }
  io.out(`stopped ${r.stopped.length} process(es)${r.stopped.length ? ` (pids ${r.stopped.join(' ')})` : ''}; removed ${r.removed.length} namespace(s)`);
  if (r.skippedLive.length > 0) io.out(`left alone (a lab of this very process): ${r.skippedLive.join(' ')}`);
  return EXIT_OK;
}

// ---------------------------------------------------------------------------------------------------------------
// status

interface StatusLab {
  prefix: string;
  persistent: boolean;
  ownerPid: number;
  ownerAlive: boolean;
  createdAt: string;
  runDir: string;
  namespaces: { total: number; present: number };
  processes: { name: string; ns: string; pid: number; running: boolean }[];
  clients: { name: string; state: string; natType: string; teredoAddress: string | null; error?: string }[];
  /** ISATAP and 6to4 daemons of a lab from 'up', with the addresses they report. */
  tunnels: { name: string; ns: string; state: string; addresses: string[]; error?: string }[];
}

async function labStatus(io: CliIo, json: boolean): Promise<number> {
  const present = new Set((await listNamespaces()).filter((n) => n.startsWith('t6-')));
  const states = readLabStates();
  const labs: StatusLab[] = [];
  for (const s of states) labs.push(await statusOf(s, present));
  const known = new Set(states.flatMap((s) => s.namespaces));
  const orphans = [...present].filter((n) => !known.has(n)).sort();
  if (json) {
    io.out(JSON.stringify({ labs, orphanNamespaces: orphans }, null, 2));
    return EXIT_OK;
  }
  if (labs.length === 0 && orphans.length === 0) {
    io.out('no lab is running');
    return EXIT_OK;
  }
  const lines: string[] = [];
  const width = Math.max(10, ...labs.flatMap((x) => [...x.processes.map((p) => p.name.length), ...x.clients.map((c) => c.name.length), ...x.tunnels.map((c) => c.name.length)]));
  for (const x of labs) {
    const who = x.persistent ? `left running by 'lab up' (pid ${x.ownerPid})` : `owned by pid ${x.ownerPid}${x.ownerAlive ? '' : ' (gone: stale, lab down removes it)'}`;
    lines.push(`lab ${x.prefix}: ${who}, since ${x.createdAt}; ${x.namespaces.present} of ${x.namespaces.total} namespaces present; logs in ${x.runDir}`);
    for (const p of x.processes) lines.push(`  ${p.name.padEnd(width)} pid ${String(p.pid).padEnd(8)} ${p.running ? 'running' : 'NOT running'}  ${p.ns}`);
    for (const c of x.clients) {
      lines.push(`  ${c.name.padEnd(width)} ${c.error ? `no answer: ${c.error}` : `${c.state}, NAT ${c.natType}, ${c.teredoAddress ?? 'no Teredo address'}`}`);
    }
    for (const c of x.tunnels) lines.push(`  ${c.name.padEnd(width)} ${c.error ? `no answer: ${c.error}` : `${c.state}, ${c.addresses.join(' ') || 'no address'}`}`);
  }
  if (orphans.length > 0) lines.push(`namespaces without a lab record (lab down removes them): ${orphans.join(' ')}`);
  io.out(lines.join('\n'));
  return EXIT_OK;
}

async function statusOf(s: LabState, present: Set<string>): Promise<StatusLab> {
  const processes = s.processes.map((p) => ({ name: p.name, ns: p.ns, pid: p.pid, running: isAlive(p.pid, p.startTime ?? undefined) }));
  const topo = s.persistent ? loadTopology(s.runDir) : undefined;
  const clients: StatusLab['clients'] = topo
    ? await mapLimit(
        topo.clients.filter((c) => present.has(c.ns) && processes.some((p) => p.ns === c.ns && p.running)),
        STATUS_CONCURRENCY,
        async (c) => {
          try {
            const j = await showJson<ClientStateJson>(c.ns, 'state', 'client', 10_000);
            return { name: c.name, state: j.state, natType: j.natType, teredoAddress: j.teredoAddress };
          } catch (e) {
            return { name: c.name, state: 'unknown', natType: 'unknown', teredoAddress: null, error: e instanceof Error ? e.message : String(e) };
          }
        },
      )
    : [];
  const part = s.persistent ? loadPart(s.runDir) : undefined;
  const alive = (ns: string): boolean => present.has(ns) && processes.some((p) => p.ns === ns && p.running);
  const tunnels = part ? await partStatus({ ...part, nodes: part.nodes.filter((n) => alive(n.ns)) }) : [];
  return {
    prefix: s.prefix,
    persistent: s.persistent === true,
    ownerPid: s.ownerPid,
    ownerAlive: isAlive(s.ownerPid, s.ownerStartTime ?? undefined),
    createdAt: s.createdAt,
    runDir: existsSync(s.runDir) ? s.runDir : `${s.runDir} (gone)`,
    namespaces: { total: s.namespaces.length, present: s.namespaces.filter((n) => present.has(n)).length },
    processes,
    clients,
    tunnels,
  };
}
