/**
 * The local control socket between a running Teredo daemon and `transit6 teredo show ...`.
 *
 * Where: a Unix stream socket, by default /run/transit6/netns-<inode of /proc/self/ns/net>/teredo-<role>.sock.
 * The inode names the network namespace, so daemons in different namespaces (`ip netns exec`, the lab) run side
 * by side, and `show` run in a namespace finds that namespace's daemons. Directories are 0700 and the socket 0600:
 * only root (the daemon's user) talks to it.
 *
 * Protocol: newline-delimited JSON. Each request line {"cmd": "state", "args": {...}} gets one response line,
 * {"ok": true, "result": ...} or {"ok": false, "error": "..."}, in order. Requests are capped at 64 KiB;
 * malformed or oversized ones get an error answer, never a crash. The server answers "ping" itself; the daemon's
 * handler answers the rest: 'state' | 'peers' | 'stats', with the JSON shapes below, built by the converters
 * (clientStateJson, peersJson, clientStatsJson, relayStateJson, ...) from the cores' own status objects.
 *
 * A daemon's handler, for example:
 *   new ControlServer(cfg.controlSocket, ({ cmd, args }) => {
 *     const now = clock.now();
 *     if (cmd === 'state') return clientStateJson(client.status(), { now, serverName, interfaceName, startedAt });
 *     if (cmd === 'peers') return clientPeersJson(client.peerTable(), now, args);
 *     if (cmd === 'stats') return clientStatsJson(client, { io: udp.errors.snapshot() });
 *     throw new Error(`unknown command '${cmd}'`);
 *   }, { role: 'client' });
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { chmodSync, lstatSync, mkdirSync, readdirSync, rmdirSync, statSync, unlinkSync } from 'node:fs';
import { basename, dirname, join, resolve as resolvePath } from 'node:path';
import type { Counters } from '../core/counters.js';
import type { Millis } from '../core/time.js';
import type { ClientState, ClientStatus, NatType, PeerInfo } from '../teredo/client.js';
import { peerInfoList, type PeerList } from '../teredo/peers.js';
import type { TeredoServerConfig } from '../teredo/server.js';
import { formatIpv4, formatIpv4Port, formatIpv6, type Ipv4Port } from '../wire/ip.js';
import { TEREDO_PORT } from '../wire/teredo.js';

export type ControlRole = 'client' | 'relay' | 'server';
export const CONTROL_ROLES: readonly ControlRole[] = ['client', 'relay', 'server'];

export const DEFAULT_RUN_DIR = '/run/transit6';
export const MAX_REQUEST_BYTES = 64 * 1024;
/** Peer tables of a busy relay run to megabytes: the client accepts answers up to this size. */
export const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;
export const DEFAULT_TIMEOUT_MS = 3000;

export type ControlErrorCode = 'no-daemon' | 'stale' | 'permission' | 'timeout' | 'in-use' | 'unsafe' | 'remote' | 'protocol';

/** A failure talking to (or starting) a daemon, with a message a user can act on. */
export class ControlError extends Error {
  override readonly name = 'ControlError';
  constructor(
    readonly code: ControlErrorCode,
    message: string,
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Paths

/** The inode of this process's network namespace (what `ip netns identify` and `lsns` compare). */
export function netnsInode(): number {
  try {
    return statSync('/proc/self/ns/net').ino;
  } catch (e) {
    throw new ControlError('protocol', `cannot identify the network namespace (/proc/self/ns/net: ${(e as NodeJS.ErrnoException).code ?? e})`);
  }
}

/** This network namespace's directory of control sockets. */
export function controlDir(runDir: string = DEFAULT_RUN_DIR): string {
  return join(runDir, `netns-${netnsInode()}`);
}

export function defaultControlPath(role: ControlRole, runDir: string = DEFAULT_RUN_DIR): string {
  return join(controlDir(runDir), `teredo-${role}.sock`);
}

const SOCKET_NAME = /^teredo-(client|relay|server)\.sock$/;

/** The role a socket path names (teredo-relay.sock → relay), if it follows the default naming. */
export function roleFromPath(path: string): ControlRole | undefined {
  const m = SOCKET_NAME.exec(basename(path));
  return m ? (m[1] as ControlRole) : undefined;
}

function daemonNoun(role: ControlRole | undefined): string {
  return role ? `transit6 teredo ${role}` : 'transit6 teredo daemon';
}

/** The control sockets of this network namespace's daemons (existing socket files; they may be stale). */
export function findControlSockets(role?: ControlRole, runDir: string = DEFAULT_RUN_DIR): { role: ControlRole; path: string }[] {
  const dir = controlDir(runDir);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return [];
    if (code === 'EACCES' || code === 'EPERM') throw new ControlError('permission', `permission denied: run as root (cannot read ${dir})`);
    throw e;
  }
  const out: { role: ControlRole; path: string }[] = [];
  for (const name of names.sort()) {
    const r = roleFromPath(name);
    if (!r || (role && r !== role)) continue;
    const path = join(dir, name);
    try {
      if (lstatSync(path).isSocket()) out.push({ role: r, path });
    } catch {
      // Gone since readdir.
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Server

export interface ControlRequest {
  cmd: string;
  args?: Record<string, unknown>;
}
export type ControlResponse = { ok: true; result: unknown } | { ok: false; error: string };

/**
 * A handler's answer that goes on: the client gets {"ok": true, "result": header}, then one JSON line per
 * object `send` is given, until it hangs up (`transit6 trace --live` reads a daemon's packets this way). `send`
 * returns false, and sends nothing, while the client is more than `MAX_STREAM_BACKLOG` bytes behind: the
 * daemon never waits for a slow reader.
 */
export interface ControlStream {
  readonly kind: 'control-stream';
  readonly header: unknown;
  /** Starts sending; the returned function stops (called when the client goes away or the server closes). */
  start(send: (obj: unknown) => boolean): () => void;
}

export const MAX_STREAM_BACKLOG = 4 * 1024 * 1024;

function isControlStream(v: unknown): v is ControlStream {
  return typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === 'control-stream';
}
export type ControlHandler = (request: ControlRequest) => unknown | Promise<unknown>;

export interface ControlServerOptions {
  /** Names the daemon in messages ("a transit6 teredo relay is already running..."); default: from the path. */
  role?: ControlRole;
  /** Names a daemon that is not a Teredo role in those messages ("transit6 isatap host"). */
  daemon?: string;
  maxRequestBytes?: number;
  /** A connection silent this long is closed. Default 60 s. */
  idleTimeoutMs?: number;
  maxConnections?: number;
  /** The tree whose directories must be 0700 and ours (default /run/transit6). */
  runDir?: string;
}

export class ControlServer {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly role: ControlRole | undefined;
  private readonly maxRequest: number;
  /** The socket file we created (device and inode), so close() never removes another daemon's socket. */
  private created: { dev: number; ino: number } | undefined;

  constructor(
    readonly path: string,
    private readonly handler: ControlHandler,
    private readonly options: ControlServerOptions = {},
  ) {
    this.role = options.role ?? roleFromPath(path);
    this.maxRequest = options.maxRequestBytes ?? MAX_REQUEST_BYTES;
  }

  get listening(): boolean {
    return this.server !== undefined;
  }

  async listen(): Promise<void> {
    if (this.server) return;
    this.prepareDirectory();
    for (let attempt = 0; ; attempt++) {
      await this.clearStale();
      const server = createServer((s) => this.onConnection(s));
      server.maxConnections = this.options.maxConnections ?? 64;
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(this.path, () => {
            server.off('error', reject);
            resolve();
          });
        });
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        // Another daemon bound the path between our check and our bind: check again, once.
        if (code === 'EADDRINUSE' && attempt === 0) continue;
        if (code === 'EACCES' || code === 'EPERM') throw new ControlError('permission', `permission denied: run as root (cannot create ${this.path})`);
        throw e;
      }
      server.on('error', () => {
        // Accept errors (EMFILE...) must not bring the daemon down.
      });
      this.server = server;
      break;
    }
    chmodSync(this.path, 0o600);
    const st = lstatSync(this.path);
    this.created = { dev: st.dev, ino: st.ino };
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    await closed;
    // Node unlinks the socket file itself when it closes; make sure, but only if the file is still ours.
    try {
      const st = lstatSync(this.path);
      if (this.created && st.dev === this.created.dev && st.ino === this.created.ino) unlinkSync(this.path);
    } catch {
      // Already gone, or no longer ours to remove (privileges dropped): the next start replaces it as stale.
    }
    this.created = undefined;
    // The per-namespace directory goes too when we were its last daemon (rmdir refuses a non-empty one).
    const dir = dirname(resolvePath(this.path));
    if (dir.startsWith(`${resolvePath(this.options.runDir ?? DEFAULT_RUN_DIR)}/netns-`)) {
      try {
        rmdirSync(dir);
      } catch {
        // Another daemon's socket is still there, or it is not ours to remove.
      }
    }
  }

  /** mkdir -p at 0700; in our own tree, each directory must be ours and private. */
  private prepareDirectory(): void {
    const dir = dirname(resolvePath(this.path));
    const runDir = resolvePath(this.options.runDir ?? DEFAULT_RUN_DIR);
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') throw new ControlError('permission', `permission denied: run as root (cannot create ${dir})`);
      throw e;
    }
    if (dir !== runDir && !dir.startsWith(`${runDir}/`)) return;
    const uid = process.getuid?.() ?? 0;
    for (let d = dir; ; d = dirname(d)) {
      const st = statSync(d);
      if (st.uid !== uid) throw new ControlError('unsafe', `${d} belongs to uid ${st.uid}, not to us (uid ${uid}): refusing to put a control socket there`);
      if ((st.mode & 0o077) !== 0) chmodSync(d, 0o700);
      if (d === runDir) break;
    }
  }

  /** A socket file nobody answers on is left over from a daemon that died: remove it. One that answers is not. */
  private async clearStale(): Promise<void> {
    let st;
    try {
      st = lstatSync(this.path);
    } catch {
      return;
    }
    if (!st.isSocket()) throw new ControlError('unsafe', `${this.path} exists and is not a socket: refusing to replace it`);
    const alive = await probe(this.path);
    if (alive) {
      throw new ControlError('in-use', `a ${this.options.daemon ?? daemonNoun(this.role)} is already running in this network namespace (control socket ${this.path})`);
    }
    try {
      unlinkSync(this.path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }

  private onConnection(socket: Socket): void {
    this.sockets.add(socket);
    socket.setTimeout(this.options.idleTimeoutMs ?? 60_000, () => socket.destroy());
    socket.on('error', () => {
      // EPIPE, ECONNRESET: the client went away.
    });
    socket.on('close', () => this.sockets.delete(socket));
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let chain = Promise.resolve();
    let refused = false;
    const reply = (r: ControlResponse) => {
      if (!socket.destroyed && socket.writable) socket.write(`${serialize(r)}\n`);
    };
    socket.on('data', (chunk: Buffer) => {
      if (refused) return;
      let start = 0;
      for (let nl = chunk.indexOf(10, start); nl >= 0; nl = chunk.indexOf(10, start)) {
        const piece = chunk.subarray(start, nl);
        const size = pendingBytes + piece.length;
        const line = size > this.maxRequest ? undefined : Buffer.concat([...pending, piece]).toString('utf8');
        pending = [];
        pendingBytes = 0;
        start = nl + 1;
        if (line === undefined) {
          this.refuse(socket, (chain = chain.then(() => reply(tooLarge(this.maxRequest)))));
          refused = true;
          return;
        }
        if (line.trim() === '') continue;
        chain = chain.then(async () => {
          const r = await this.answer(line);
          if (!isControlStream(r)) {
            reply(r);
            return;
          }
          // From now on the connection carries the stream: no idle timeout, no further requests.
          reply({ ok: true, result: r.header === undefined ? null : r.header });
          refused = true;
          socket.setTimeout(0);
          const stop = r.start((obj) => {
            if (socket.destroyed || !socket.writable || socket.writableLength > MAX_STREAM_BACKLOG) return false;
            socket.write(`${JSON.stringify(obj)}\n`);
            return true;
          });
          socket.once('close', stop);
          if (socket.destroyed) stop();
        });
      }
      const rest = chunk.subarray(start);
      if (pendingBytes + rest.length > this.maxRequest) {
        // No newline within the limit: answer and hang up, there is no way to find the next request.
        this.refuse(socket, (chain = chain.then(() => reply(tooLarge(this.maxRequest)))));
        refused = true;
        return;
      }
      if (rest.length > 0) {
        pending.push(Buffer.from(rest));
        pendingBytes += rest.length;
      }
    });
  }

  private refuse(socket: Socket, after: Promise<void>): void {
    void after.then(() => socket.end());
  }

  private async answer(line: string): Promise<ControlResponse | ControlStream> {
    let req: unknown;
    try {
      req = JSON.parse(line);
    } catch {
      return { ok: false, error: 'malformed request: not JSON (want {"cmd": "...", "args": {...}} on one line)' };
    }
    if (!isPlainObject(req) || typeof req.cmd !== 'string' || req.cmd === '') {
      return { ok: false, error: 'malformed request: want {"cmd": "...", "args": {...}}' };
    }
    if (req.args !== undefined && !isPlainObject(req.args)) return { ok: false, error: 'malformed request: "args" must be an object' };
    if (req.cmd === 'ping') return { ok: true, result: { pong: true, pid: process.pid, role: this.role ?? null } };
    try {
      const request: ControlRequest = { cmd: req.cmd };
      if (req.args !== undefined) request.args = req.args;
      const result = await this.handler(request);
      if (isControlStream(result)) return result;
      return { ok: true, result: result === undefined ? null : result };
    } catch (e) {
      return { ok: false, error: e instanceof Error ? e.message : String(e) };
    }
  }
}

function tooLarge(max: number): ControlResponse {
  return { ok: false, error: `request too large (the limit is ${max} bytes)` };
}

function serialize(r: ControlResponse): string {
  try {
    return JSON.stringify(r);
  } catch (e) {
    return JSON.stringify({ ok: false, error: `the answer could not be encoded as JSON: ${e instanceof Error ? e.message : String(e)}` });
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Whether something accepts connections on a Unix socket path. */
async function probe(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path);
    const done = (alive: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve(alive);
    };
    // A listener whose backlog is full still counts as alive: it does not answer in time but is there.
    const timer = setTimeout(() => done(true), timeoutMs);
    s.once('connect', () => done(true));
    s.once('error', (e: NodeJS.ErrnoException) => done(e.code === 'EAGAIN'));
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Client

/**
 * Sends one request and returns the daemon's result. Errors are ControlErrors whose messages say what to do:
 * no daemon, a stale socket, permission denied (not root), no answer in time, or the daemon's own error.
 */
export function controlRequest(path: string, cmd: string, args?: Record<string, unknown>, timeoutMs: number = DEFAULT_TIMEOUT_MS): Promise<unknown> {
  const role = roleFromPath(path);
  const who = daemonNoun(role);
  const line = `${JSON.stringify(args === undefined ? { cmd } : { cmd, args })}\n`;
  if (Buffer.byteLength(line) > MAX_REQUEST_BYTES) return Promise.reject(new ControlError('protocol', `request too large (the limit is ${MAX_REQUEST_BYTES} bytes)`));
  return new Promise((resolve, reject) => {
    let settled = false;
    const chunks: Buffer[] = [];
    let size = 0;
    const socket = createConnection(path);
    const finish = (err: Error | undefined, value?: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(value);
    };
    const timer = setTimeout(
      () => finish(new ControlError('timeout', `the ${who} did not answer within ${formatSeconds(timeoutMs)} (control socket ${path})`)),
      timeoutMs,
    );
    socket.once('connect', () => socket.write(line));
    socket.on('error', (e: NodeJS.ErrnoException) => finish(connectError(e, path, role)));
    socket.on('data', (chunk: Buffer) => {
      const nl = chunk.indexOf(10);
      if (nl < 0) {
        chunks.push(chunk);
        size += chunk.length;
        if (size > MAX_RESPONSE_BYTES) finish(new ControlError('protocol', `the ${who}'s answer exceeds ${MAX_RESPONSE_BYTES} bytes`));
        return;
      }
      chunks.push(chunk.subarray(0, nl));
      let resp: unknown;
      try {
        resp = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        finish(new ControlError('protocol', `the ${who} answered something that is not JSON (control socket ${path})`));
        return;
      }
      if (isPlainObject(resp) && resp.ok === true) finish(undefined, resp.result);
      else if (isPlainObject(resp) && resp.ok === false) finish(new ControlError('remote', `${who}: ${String(resp.error)}`));
      else finish(new ControlError('protocol', `the ${who} answered in an unknown format (control socket ${path})`));
    });
    socket.on('close', () => finish(new ControlError('protocol', `the ${who} closed the connection without answering (control socket ${path})`)));
  });
}

function connectError(e: NodeJS.ErrnoException, path: string, role: ControlRole | undefined): Error {
  const who = daemonNoun(role);
  switch (e.code) {
    case 'ENOENT':
      return new ControlError('no-daemon', `no ${who} is running in this network namespace (no control socket at ${path})`);
    case 'ECONNREFUSED':
    case 'ENOTSOCK':
      return new ControlError('stale', `no ${who} is running in this network namespace (stale control socket at ${path}: nothing answers)`);
    case 'EACCES':
    case 'EPERM':
      return new ControlError('permission', `permission denied: run as root (control socket ${path})`);
    case 'EAGAIN':
      return new ControlError('timeout', `the ${who} is too busy to accept a connection (control socket ${path})`);
    default:
      return new ControlError('protocol', `cannot reach the ${who} at ${path}: ${e.message}`);
  }
}

function formatSeconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}

// ---------------------------------------------------------------------------------------------------------------
// JSON shapes of the answers, and the converters the daemons use

/** Process facts every role's state carries. */
export interface DaemonJson {
  pid: number | null;
  /** Since the daemon started, on its own clock. */
  uptimeMs: number | null;
  interfaceName: string | null;
  /** How packets move (fast path, offloads), when the daemon says; e.g. "fast path; GRO into the tunnel (TCP,
   *  UDP), UDP GSO". Optional in answers from older daemons. */
  dataPath?: string | null;
}

/** 'state' from a client: ClientStatus with addresses as text and times as "milliseconds ago". */
export interface ClientStateJson extends DaemonJson {
  role: 'client';
  state: ClientState;
  reason: string;
  /** The server as configured (a name or an address), when the daemon knows it. */
  serverName: string | null;
  server: string;
  server2: string;
  /** The configured client port; null: unspecified. */
  clientPort: number | null;
  natType: NatType;
  natDetection: ClientStatus['natDetection'];
  portFilteringKnown: boolean;
  portPreserving: boolean | null;
  localMapping: string | null;
  externalMapping: string | null;
  teredoAddress: string | null;
  mtu: number;
  refreshIntervalMs: [number, number];
  addressChanges: number;
  lastServerContactAgoMs: number | null;
  /**
   * The kernel side of the address: 'up' once the Teredo address and route are on the interface, 'pending' while
   * they are being applied, 'down' before qualification or after a withdrawal, 'failed' if applying them failed.
   */
  interfaceStatus: 'up' | 'pending' | 'down' | 'failed' | null;
}

export interface DaemonExtras {
  /** The daemon's current time on the clock the core uses: turns the core's times into "ago". */
  now?: Millis;
  /** When the daemon started, on the same clock. */
  startedAt?: Millis;
  interfaceName?: string;
  pid?: number;
  dataPath?: string;
}

export interface ClientStateExtras extends DaemonExtras {
  serverName?: string;
  /** The configured port (BindPort); undefined or 0 falls back to the local mapping's port. */
  clientPort?: number;
  interfaceStatus?: ClientStateJson['interfaceStatus'];
}

function daemonJson(x: DaemonExtras): DaemonJson {
  return {
    pid: x.pid ?? null,
    uptimeMs: x.now !== undefined && x.startedAt !== undefined ? Math.max(0, x.now - x.startedAt) : null,
    interfaceName: x.interfaceName ?? null,
    dataPath: x.dataPath ?? null,
  };
}

const ep = (e: Ipv4Port | undefined): string | null => (e ? formatIpv4Port(e) : null);

export function clientStateJson(s: ClientStatus, x: ClientStateExtras = {}): ClientStateJson {
  return {
    role: 'client',
    state: s.state,
    reason: s.reason,
    serverName: x.serverName ?? null,
    server: formatIpv4(s.server),
    server2: formatIpv4(s.server2),
    clientPort: x.clientPort || s.localMapping?.port || null,
    natType: s.natType,
    natDetection: s.natDetection,
    portFilteringKnown: s.portFilteringKnown,
    portPreserving: s.portPreserving ?? null,
    localMapping: ep(s.localMapping),
    externalMapping: ep(s.externalMapping),
    teredoAddress: s.teredoAddress ? formatIpv6(s.teredoAddress) : null,
    mtu: s.mtu,
    refreshIntervalMs: [s.refreshIntervalMs[0], s.refreshIntervalMs[1]],
    addressChanges: s.addressChanges,
    lastServerContactAgoMs: s.lastServerContact !== undefined && x.now !== undefined ? Math.max(0, x.now - s.lastServerContact) : null,
    interfaceStatus: x.interfaceStatus ?? null,
    ...daemonJson(x),
  };
}

/** One row of 'peers'. */
export interface PeerJson {
  address: string;
  trusted: boolean;
  teredo: boolean;
  /** Where packets to the peer go (its mapped address, once learned). */
  endpoint: string | null;
  /** Its local endpoint when it sits on our link or behind our NAT. */
  local: string | null;
  lastRxAgoMs: number;
  lastTxAgoMs: number;
  /** Packets waiting for the peer (both ways). */
  queued: number;
}

export interface PeersJson {
  role: ControlRole;
  /** Peers in the table; `peers` holds the most recently active `limit` of them. */
  total: number;
  truncated: boolean;
  peers: PeerJson[];
}

export const DEFAULT_PEER_LIMIT = 1000;

/** The `limit` argument of a 'peers' request: a positive integer, or the default. */
function peerLimit(args: Record<string, unknown> | undefined): number {
  const l = args?.limit;
  if (l === undefined) return DEFAULT_PEER_LIMIT;
  if (typeof l !== 'number' || !Number.isInteger(l) || l < 0) throw new Error(`'limit' must be a whole number, not ${JSON.stringify(l)}`);
  return l === 0 ? Infinity : l;
}

export function peerJson(p: PeerInfo, now: Millis): PeerJson {
  return {
    address: formatIpv6(p.address),
    trusted: p.trusted,
    teredo: p.teredo,
    endpoint: ep(p.endpoint),
    local: ep(p.local),
    lastRxAgoMs: Math.max(0, now - p.lastRx),
    lastTxAgoMs: Math.max(0, now - p.lastTx),
    queued: p.queued,
  };
}

/** Peers, most recently active first, at most args.limit (default 1000; 0 for all). */
export function peersJson(role: ControlRole, peers: Iterable<PeerInfo>, now: Millis, args?: Record<string, unknown>): PeersJson {
  const limit = peerLimit(args);
  const all = [...peers].map((p) => peerJson(p, now));
  all.sort((a, b) => Math.min(a.lastRxAgoMs, a.lastTxAgoMs) - Math.min(b.lastRxAgoMs, b.lastTxAgoMs) || (a.address < b.address ? -1 : 1));
  return { role, total: all.length, truncated: all.length > limit, peers: all.slice(0, limit) };
}

export function clientPeersJson(peers: PeerInfo[], now: Millis, args?: Record<string, unknown>): PeersJson {
  return peersJson('client', peers, now, args);
}

/** A relay's peer list in the client's PeerInfo form. */
export function peerListInfo(list: PeerList): PeerInfo[] {
  return peerInfoList(list);
}

/** As peersJson, but rows only for the entries that can make the list (a relay may hold a million). */
export function relayPeersJson(peers: PeerList, now: Millis, args?: Record<string, unknown>): PeersJson {
  const limit = peerLimit(args);
  const listed = peersJson('relay', peerInfoList(peers, { now, limit }), now, args);
  return { ...listed, total: peers.size, truncated: peers.size > limit };
}

/** 'stats': the core's counters by name, plus the adapters' (UDP, TUN errors by errno) when the daemon adds them. */
export interface StatsJson {
  role: ControlRole;
  events: Record<string, number>;
  drops: Record<string, number>;
  peers: number | null;
  queuedBytes: number | null;
  io: Record<string, number>;
}

export interface StatsExtras {
  io?: Record<string, number>;
}

export function clientStatsJson(client: { events: Counters; drops: Counters; peers: PeerList }, x: StatsExtras = {}): StatsJson {
  return {
    role: 'client',
    events: client.events.snapshot(),
    drops: client.drops.snapshot(),
    peers: client.peers.size,
    queuedBytes: client.peers.queuedBytes,
    io: { ...x.io },
  };
}

/** From TeredoRelay.stats(). */
export function relayStatsJson(stats: { events: Record<string, number>; drops: Record<string, number>; peers: number; queuedBytes: number }, x: StatsExtras = {}): StatsJson {
  return { role: 'relay', events: { ...stats.events }, drops: { ...stats.drops }, peers: stats.peers, queuedBytes: stats.queuedBytes, io: { ...x.io } };
}

/** From TeredoServer.stats(). */
export function serverStatsJson(stats: { events: Record<string, number>; drops: Record<string, number> }, x: StatsExtras = {}): StatsJson {
  return { role: 'server', events: { ...stats.events }, drops: { ...stats.drops }, peers: null, queuedBytes: null, io: { ...x.io } };
}

/** 'state' from a relay. */
export interface RelayStateJson extends DaemonJson {
  role: 'relay';
  state: string;
  /** Miredo's RelayType: relay/cone bubble indirectly only, restricted directly too. */
  relayType: 'relay' | 'cone' | 'restricted';
  mode: 'relay' | 'host';
  directBubbles: boolean;
  /** The relay's UDP endpoint. */
  localEndpoint: string | null;
  prefix: string;
  mtu: number;
  hostAddresses: string[];
  peers: number;
  trustedPeers: number;
  queuedBytes: number;
}

export interface RelayStateExtras extends DaemonExtras {
  relayType: RelayStateJson['relayType'];
  mode?: 'relay' | 'host';
  directBubbles?: boolean;
  local?: Ipv4Port;
  /** 16 bytes, of which the first 4 count (default 2001:0::). */
  prefix?: Uint8Array;
  mtu?: number;
  hostAddresses?: Uint8Array[];
  /** Default 'online'. */
  state?: string;
}

export function relayStateJson(peers: PeerList, x: RelayStateExtras): RelayStateJson {
  const trusted = peers.trustedCount;
  const prefix = new Uint8Array(16);
  prefix.set((x.prefix ?? Uint8Array.of(0x20, 0x01, 0, 0)).subarray(0, 4));
  return {
    role: 'relay',
    state: x.state ?? 'online',
    relayType: x.relayType,
    mode: x.mode ?? ((x.hostAddresses ?? []).length > 0 ? 'host' : 'relay'),
    directBubbles: x.directBubbles ?? x.relayType === 'restricted',
    localEndpoint: ep(x.local),
    prefix: `${formatIpv6(prefix)}/32`,
    mtu: x.mtu ?? 1280,
    hostAddresses: (x.hostAddresses ?? []).map(formatIpv6),
    peers: peers.size,
    trustedPeers: trusted,
    queuedBytes: peers.queuedBytes,
    ...daemonJson(x),
  };
}

/** 'state' from a server. */
export interface ServerStateJson extends DaemonJson {
  role: 'server';
  state: string;
  primary: string;
  secondary: string;
  port: number;
  /** The NAT-probe port on the secondary address; null: off (a plain, Miredo-like server). */
  probePort: number | null;
  /** The prefix clients get: 2001:0:<primary>::/64. */
  clientPrefix: string;
  mtu: number;
  forwardNative: boolean;
  routerSolicitations: number;
  routerAdvertisements: number;
}

export interface ServerStateExtras extends DaemonExtras {
  state?: string;
}

export function serverStateJson(config: TeredoServerConfig, stats: { events: Record<string, number> }, x: ServerStateExtras = {}): ServerStateJson {
  const p = new Uint8Array(16);
  p.set([0x20, 0x01, 0, 0, config.primary >>> 24, (config.primary >>> 16) & 0xff, (config.primary >>> 8) & 0xff, config.primary & 0xff]);
  return {
    role: 'server',
    state: x.state ?? 'online',
    primary: formatIpv4(config.primary),
    secondary: formatIpv4(config.secondary),
    port: config.port ?? TEREDO_PORT,
    probePort: config.probePort ?? null,
    clientPrefix: `${formatIpv6(p)}/64`,
    mtu: config.mtu ?? 1280,
    forwardNative: config.forwardNative !== false,
    routerSolicitations: stats.events['router-solicitations'] ?? 0,
    routerAdvertisements: stats.events['router-advertisements'] ?? 0,
    ...daemonJson(x),
  };
}

export type StateJson = ClientStateJson | RelayStateJson | ServerStateJson;
