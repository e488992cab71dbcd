/**
 * `transit6 teredo show state|peers|stats`: asks a running Teredo daemon of this network namespace, through its
 * control socket (src/io/control.ts), and prints what netsh's `show state` prints, a peer table, or counters.
 */
import { parseArgs } from 'node:util';
import { UsageError } from '../core/errors.js';
import {
  CONTROL_ROLES,
  controlDir,
  controlRequest,
  ControlError,
  defaultControlPath,
  findControlSockets,
  DEFAULT_RUN_DIR,
  DEFAULT_TIMEOUT_MS,
  type ClientStateJson,
  type ControlRole,
  type PeersJson,
  type RelayStateJson,
  type ServerStateJson,
  type StatsJson,
} from '../io/control.js';
import { EXIT_OK, type CliIo } from './io.js';
import { formatClientStateJson, formatPeersJson, formatRelayStateJson, formatServerStateJson, formatStatsJson } from './show.js';

const SHOW_HELP = `usage: transit6 teredo show state|peers|stats [--json] [--role client|relay|server] [--control PATH]

Asks the Teredo daemon running in this network namespace (transit6 teredo client, relay or server) through
its control socket, /run/transit6/netns-<inode>/teredo-<role>.sock. Needs root.

  state      what netsh's 'show state' prints: type, server, refresh interval, state, NAT type, local and
             external mapping, Teredo address (a relay or server: its addresses, ports, peers)
  peers      the peer table: address, trusted, endpoint, local endpoint, last reception and transmission, queue
  stats      events (RS/RA, bubbles, packets and bytes each way) and drops by reason

  --json          the daemon's answer as JSON
  --role ROLE     which daemon, when several run here (default: the only one)
  --control PATH  the daemon's control socket (for one started with --control PATH)
  --limit N       peers: the N most recently active (default 1000, 0 for all)
  --timeout S     seconds to wait for the answer (default 3)

examples:
  transit6 teredo show state
  transit6 teredo show peers --role relay
  ip netns exec lab-client transit6 teredo show stats --json`;

const VIEWS = ['state', 'peers', 'stats'] as const;
type View = (typeof VIEWS)[number];

export interface TeredoShowDeps {
  /** Where the per-namespace socket directories live (tests use a temporary directory). */
  runDir?: string;
}

/** `transit6 teredo show ...`, argv being what follows `show`. */
export async function teredoShowCommand(argv: string[], io: CliIo, deps: TeredoShowDeps = {}): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      json: { type: 'boolean' },
      role: { type: 'string' },
      control: { type: 'string' },
      limit: { type: 'string' },
      timeout: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: true,
  });
  if (values.help) {
    io.out(SHOW_HELP);
    return EXIT_OK;
  }
  if (positionals.length === 0) throw new UsageError(`what to show: ${VIEWS.join(', ')} (try 'transit6 teredo show --help')`);
  if (positionals.length > 1) throw new UsageError(`one view at a time, not '${positionals.join(' ')}'`);
  const view = positionals[0] as View;
  if (!VIEWS.includes(view)) throw new UsageError(`unknown view '${positionals[0]}': one of ${VIEWS.join(', ')}`);
  const role = values.role as ControlRole | undefined;
  if (role !== undefined && !CONTROL_ROLES.includes(role)) throw new UsageError(`--role '${values.role}' is not one of ${CONTROL_ROLES.join(', ')}`);
  let args: Record<string, unknown> | undefined;
  if (values.limit !== undefined) {
    if (view !== 'peers') throw new UsageError('--limit goes with show peers');
    if (!/^[0-9]{1,9}$/.test(values.limit)) throw new UsageError(`--limit wants a whole number, not '${values.limit}'`);
    args = { limit: Number(values.limit) };
  }
  let timeoutMs = DEFAULT_TIMEOUT_MS;
  if (values.timeout !== undefined) {
    const t = Number(values.timeout);
    if (!/^[0-9]+(\.[0-9]+)?$/.test(values.timeout) || t <= 0 || t > 600) throw new UsageError(`--timeout wants seconds (0-600), not '${values.timeout}'`);
    timeoutMs = Math.round(t * 1000);
  }

  const path = values.control ?? (await pickSocket(role, deps.runDir ?? DEFAULT_RUN_DIR));
  const result = await controlRequest(path, view, args, timeoutMs);
  if (values.json) {
    io.out(JSON.stringify(result, null, 2));
    return EXIT_OK;
  }
  io.out(render(view, result));
  return EXIT_OK;
}

/** --role's socket, or the only daemon's socket in this namespace; stale sockets do not count when choosing. */
export async function pickSocket(role: ControlRole | undefined, runDir: string): Promise<string> {
  if (role) return defaultControlPath(role, runDir);
  const found = findControlSockets(undefined, runDir);
  if (found.length === 0) {
    throw new ControlError('no-daemon', `no transit6 teredo daemon is running in this network namespace (no control socket in ${controlDir(runDir)})`);
  }
  if (found.length === 1) return found[0]!.path;
  const alive: typeof found = [];
  for (const f of found) {
    try {
      await controlRequest(f.path, 'ping', undefined, 1000);
      alive.push(f);
    } catch (e) {
      if (e instanceof ControlError && e.code === 'permission') throw e;
    }
  }
  if (alive.length === 1) return alive[0]!.path;
  if (alive.length === 0) throw new ControlError('stale', `no transit6 teredo daemon is running in this network namespace (only stale control sockets in ${controlDir(runDir)})`);
  throw new UsageError(`several transit6 teredo daemons run in this network namespace (${alive.map((f) => f.role).join(', ')}): choose one with --role`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Checks the answer's shape before formatting it, so an older or foreign daemon gives a clear error. */
function render(view: View, result: unknown): string {
  const bad = (what: string) => new ControlError('protocol', `the daemon's '${view}' answer is not ${what}: try --json`);
  if (!isObject(result) || typeof result.role !== 'string') throw bad('a transit6 object');
  // The answer names its role: a --control socket may belong to any of them.
  const role = result.role as ControlRole;
  switch (view) {
    case 'state':
      if (role === 'client') {
        if (!Array.isArray(result.refreshIntervalMs)) throw bad('a client state');
        return formatClientStateJson(result as unknown as ClientStateJson);
      }
      if (role === 'relay') return formatRelayStateJson(result as unknown as RelayStateJson);
      if (role === 'server') return formatServerStateJson(result as unknown as ServerStateJson);
      throw bad('a client, relay or server state');
    case 'peers':
      if (!Array.isArray(result.peers) || typeof result.total !== 'number') throw bad('a peer table');
      return formatPeersJson(result as unknown as PeersJson);
    case 'stats':
      if (!isObject(result.events) || !isObject(result.drops)) throw bad('a set of counters');
      return formatStatsJson({ peers: null, queuedBytes: null, io: {}, ...result } as unknown as StatsJson);
  }
}
