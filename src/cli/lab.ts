/**
 * `transit6 lab up|down|status`: the Teredo lab of the Miredo reference study (shared/reference/miredo-lab-report.md
 * §2–3) with our daemons in it, left running for a person to explore. `up` builds it, waits until every client is
 * qualified and knows its NAT, prints each client's state next to the NAT's real mapping and a reachability matrix
 * from real pings, then releases the lab so that it outlives the command; `down` takes every lab down; `status`
 * says what runs.
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { UsageError } from '../core/errors.js';
import type { ClientStateJson } from '../io/control.js';
import { isAlive } from '../lab/exec.js';
import { cleanupStale, installCleanupHandlers, listNamespaces, readLabStates, type LabState } from '../lab/netns.js';
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

const HELP = `usage: transit6 lab up [--clients prc,sym,...] [--json] [--prefix t6-NAME-] [--timeout S] [--no-matrix]
       transit6 lab down [--prefix t6-NAME-]
       transit6 lab status [--json]

The Teredo lab in network namespaces named t6-*: an IPv4/IPv6 "Internet" router, our Teredo server (198.51.100.1
and .2), our relay (198.51.100.17:3545), a native IPv6 host (v6host, 2001:db8:1::10) and clients behind NATs:

  cli-prc, cli-prc2   port-restricted cone NAT           cli-fc    full cone (static mapping, client port 3550)
  cli-sym             symmetric NAT                      cli-pub   no NAT
  cli-lan1, cli-lan2  two clients behind one port-restricted NAT, on one LAN

  up       builds the lab, starts the daemons, waits until every client is qualified and its NAT detection done,
           prints each client's state and NAT mapping (daemon vs conntrack) and the reachability matrix from real
           pings (ping -6 -c 3 -i 0.2 -W 2, every ordered pair of clients and v6host), then leaves it running.
           Any failure tears everything down (exit 1).
  down     stops every lab daemon by PID and removes every t6- lab namespace (all labs, also other users' and
           test runs'; --prefix limits it to one lab).
  status   lists the labs, their daemons and, for a lab from 'up', each client's state.

  --clients LIST   up: which clients (prc, sym, fc, pub, prc2, lan1, lan2; default all)
  --json           the result as JSON on stdout (progress stays on stderr)
  --prefix P       up: the namespace prefix (default t6-<random>-); down: only this lab
  --timeout S      up: seconds for qualification and NAT detection (default 30)
  --no-matrix      up: skip the pings

Needs root.

examples:
  sudo transit6 lab up --clients prc,sym,pub
  sudo ip netns exec t6-1a2b3c-cli-prc transit6 teredo show state
  sudo transit6 lab down`;

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
    for (const k of ['clients', 'timeout', 'no-matrix'] as const) if (values[k] !== undefined) throw new UsageError(`--${k} goes with 'lab up'`);
  }
  if (sub === 'status' && values.prefix !== undefined) throw new UsageError("--prefix goes with 'lab up' or 'lab down'");
  if (sub === 'down' && values.json) throw new UsageError("--json goes with 'lab up' or 'lab status'");
  if (process.getuid?.() !== 0) {
    io.err(`transit6 lab ${sub}: needs root (network namespaces, iptables): run it with sudo`);
    return EXIT_USAGE;
  }
  switch (sub) {
    case 'up': {
      let timeoutMs = 30_000;
      if (values.timeout !== undefined) {
        const s = Number(values.timeout);
        if (!/^[0-9]+(\.[0-9]+)?$/.test(values.timeout) || s <= 0 || s > 600) throw new UsageError(`--timeout wants seconds (0-600), not '${values.timeout}'`);
        timeoutMs = Math.round(s * 1000);
      }
      return labUp(io, {
        clients: clientList(values.clients),
        json: values.json ?? false,
        ...(values.prefix !== undefined ? { prefix: values.prefix } : {}),
        timeoutMs,
        matrix: !values['no-matrix'],
      });
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
  clients: ClientName[];
  json: boolean;
  prefix?: string;
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

async function labUp(io: CliIo, o: UpOptions): Promise<number> {
  // Ctrl-C during the build tears the lab down; once released, nothing here touches it any more.
  installCleanupHandlers();
  const progress = (msg: string): void => io.err(`transit6 lab up: ${msg}`);
  let l: RunningTeredoLab | undefined;
  try {
    l = await startTeredoLab({ clients: o.clients, detached: true, progress, ...(o.prefix !== undefined ? { prefix: o.prefix } : {}) });
    const t0 = Date.now();
    const ready = await waitForClients(l, o.clients, { timeoutMs: o.timeoutMs });
    progress(`all ${o.clients.length} client(s) qualified with NAT detection done (${Date.now() - t0} ms after start)`);
    const rows = await clientRows(l, ready);

    const nodes: MatrixNode[] = [...o.clients, 'v6host'];
    let cells: MatrixCell[] = [];
    let matrixMs = 0;
    if (o.matrix) {
      const addresses: Record<string, string> = { v6host: l.topology.v6host.ipv6 };
      for (const r of rows) if (r.teredoAddress) addresses[r.name] = r.teredoAddress;
      const pairs = nodes.length * (nodes.length - 1);
      progress(`pinging ${pairs} ordered pairs (a few seconds per round of unreachable pairs)`);
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
    saveTopology(l);
    l.lab.release();
    const out = { prefix: l.lab.prefix, runDir: l.lab.runDir, namespaces: l.topology.namespaces, daemons: daemonList(l), clients: rows, matrix: cells, matrixMs, localDiscovery: local };
    if (o.json) io.out(JSON.stringify(out, null, 2));
    else io.out(renderUp(l, rows, nodes, cells, matrixMs, local));
    return EXIT_OK;
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    if (l && !l.lab.isDestroyed) {
      await l.lab.destroy().catch((d: unknown) => io.err(`transit6 lab up: teardown: ${d instanceof Error ? d.message : String(d)}`));
    }
    const keep = process.env.T6_LAB_KEEP === '1' ? '' : ' (with its logs: T6_LAB_KEEP=1 keeps them)';
    io.err(`transit6 lab up: ${reason}\ntransit6 lab up: failed; everything it made was torn down${keep}`);
    return EXIT_FAILURE;
  }
}

function daemonList(l: RunningTeredoLab): { name: string; ns: string; pid: number; log: string }[] {
  const d = l.daemons;
  const procs = [d.server, ...(d.relay ? [d.relay] : []), ...Object.values(d.clients)];
  return procs.map((p) => ({ name: p!.name, ns: p!.ns, pid: p!.pid, log: p!.logPath }));
}

function renderUp(l: RunningTeredoLab, rows: ClientRow[], nodes: MatrixNode[], cells: MatrixCell[], matrixMs: number, local: LocalDiscovery[]): string {
  const t = l.topology;
  const lines: string[] = [];
  lines.push(`Teredo lab ${l.lab.prefix} is up: ${t.namespaces.length} namespaces, server, relay and ${rows.length} client(s); logs in ${l.lab.runDir}`);
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
  lines.push(`  sudo node ${bin} lab status`);
  lines.push('Take it down:');
  lines.push(`  sudo node ${bin} lab down --prefix ${l.lab.prefix}     (or 'lab down' for every t6- lab)`);
  return lines.join('\n');
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
}

async function labStatus(io: CliIo, json: boolean): Promise<number> {
  const present = new Set((await listNamespaces()).filter((n) => n.startsWith('t6-')));
  const states = readLabStates();
  const labs: StatusLab[] = await Promise.all(states.map((s) => statusOf(s, present)));
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
  const width = Math.max(10, ...labs.flatMap((x) => [...x.processes.map((p) => p.name.length), ...x.clients.map((c) => c.name.length)]));
  for (const x of labs) {
    const who = x.persistent ? `left running by 'lab up' (pid ${x.ownerPid})` : `owned by pid ${x.ownerPid}${x.ownerAlive ? '' : ' (gone: stale, lab down removes it)'}`;
    lines.push(`lab ${x.prefix}: ${who}, since ${x.createdAt}; ${x.namespaces.present} of ${x.namespaces.total} namespaces present; logs in ${x.runDir}`);
    for (const p of x.processes) lines.push(`  ${p.name.padEnd(width)} pid ${String(p.pid).padEnd(8)} ${p.running ? 'running' : 'NOT running'}  ${p.ns}`);
    for (const c of x.clients) {
      lines.push(`  ${c.name.padEnd(width)} ${c.error ? `no answer: ${c.error}` : `${c.state}, NAT ${c.natType}, ${c.teredoAddress ?? 'no Teredo address'}`}`);
    }
  }
  if (orphans.length > 0) lines.push(`namespaces without a lab record (lab down removes them): ${orphans.join(' ')}`);
  io.out(lines.join('\n'));
  return EXIT_OK;
}

async function statusOf(s: LabState, present: Set<string>): Promise<StatusLab> {
  const processes = s.processes.map((p) => ({ name: p.name, ns: p.ns, pid: p.pid, running: isAlive(p.pid, p.startTime ?? undefined) }));
  const topo = s.persistent ? loadTopology(s.runDir) : undefined;
  const clients: StatusLab['clients'] = topo
    ? await Promise.all(
        topo.clients
          .filter((c) => present.has(c.ns) && processes.some((p) => p.ns === c.ns && p.running))
          .map(async (c) => {
            try {
              const j = await showJson<ClientStateJson>(c.ns, 'state', 'client', 3000);
              return { name: c.name, state: j.state, natType: j.natType, teredoAddress: j.teredoAddress };
            } catch (e) {
              return { name: c.name, state: 'unknown', natType: 'unknown', teredoAddress: null, error: e instanceof Error ? e.message : String(e) };
            }
          }),
      )
    : [];
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
  };
}
