/**
 * The 'tap' control command: a running daemon's packets, streamed over its control socket to `transit6 trace
 * --live`. Needs no privilege beyond the control socket's (root, like `teredo show`), and no packet socket.
 *
 * Request: {"cmd": "tap", "args": {"replay": true}}. The answer's result is the header (role, the daemon's
 * 'state'), then one line per packet, {"at": epoch ms, "dir": "udp-in"|"udp-out"|"tun-in"|"tun-out", "src":
 * "a.b.c.d:p", "dst": ..., "data": base64}, and one per state change, {"at", "event": {"state", "reason", ...}}.
 * With replay the first packets and state changes since the daemon started (qualification) come first; then
 * {"live": true} says that what follows happens now. A reader that falls
 * behind loses packets rather than slowing the daemon; the next line then says {"lost": n}.
 */
import { createConnection } from 'node:net';
import { formatIpv4Port, parseIpv4Port, type Ipv4Port } from '../wire/ip.js';
import { ControlError, type ControlStream } from './control.js';
import type { TapDir, TapHub, TapPacket } from './tap.js';

export interface TapLine {
  at: number;
  dir: TapDir;
  src?: string;
  dst?: string;
  data: string;
}

export interface TapEventLine {
  at: number;
  event: Record<string, unknown>;
}

/** Where state changes come from: the daemon calls every listener with each change. */
export class EventFeed {
  private readonly listeners = new Set<(e: Record<string, unknown>) => void>();
  /** The first changes since the start, replayed with the packets' backlog. */
  readonly recent: TapEventLine[] = [];

  constructor(
    private readonly keep = 50,
    private readonly now: () => number = () => performance.timeOrigin + performance.now(),
  ) {}

  emit(e: Record<string, unknown>): void {
    if (this.recent.length < this.keep) this.recent.push({ at: this.now(), event: e });
    for (const l of this.listeners) l(e);
  }

  add(l: (e: Record<string, unknown>) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}

export function tapLine(p: TapPacket): TapLine {
  const line: TapLine = { at: p.at, dir: p.dir, data: Buffer.from(p.data.buffer, p.data.byteOffset, p.data.byteLength).toString('base64') };
  if (p.src) line.src = formatIpv4Port(p.src);
  if (p.dst) line.dst = formatIpv4Port(p.dst);
  return line;
}

/** The handler's answer to 'tap'. */
export function tapStream(hub: TapHub, events: EventFeed, header: unknown, args: Record<string, unknown> | undefined): ControlStream {
  const replay = args?.replay === true;
  return {
    kind: 'control-stream',
    header,
    start(send) {
      let lost = 0;
      const put = (obj: unknown): void => {
        if (lost > 0 && send({ lost })) lost = 0;
        if (lost > 0 || !send(obj)) lost++;
      };
      if (replay) {
        // The start in time order: the first packets and the state changes among them.
        const backlog: (TapLine | TapEventLine)[] = [...hub.recent().map(tapLine), ...events.recent];
        backlog.sort((a, b) => a.at - b.at);
        for (const line of backlog) put(line);
      }
      // What follows happens now.
      put({ live: true });
      const stopTap = hub.add((p) => put(tapLine(p)));
      const stopEvents = events.add((event) => put({ at: performance.timeOrigin + performance.now(), event }));
      return () => {
        stopTap();
        stopEvents();
      };
    },
  };
}

export type TapMessage =
  | { kind: 'packet'; at: number; dir: TapDir; src?: Ipv4Port; dst?: Ipv4Port; data: Uint8Array }
  | { kind: 'event'; at: number; event: Record<string, unknown> }
  | { kind: 'lost'; count: number }
  /** The replayed start is over: what follows happens now. */
  | { kind: 'live' };

/** Parses one streamed line; undefined for a line that is none of the three forms. */
export function parseTapLine(line: string): TapMessage | undefined {
  let o: unknown;
  try {
    o = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof o !== 'object' || o === null) return undefined;
  const r = o as Record<string, unknown>;
  if (typeof r.lost === 'number') return { kind: 'lost', count: r.lost };
  if (r.live === true) return { kind: 'live' };
  if (typeof r.at !== 'number') return undefined;
  if (typeof r.event === 'object' && r.event !== null) return { kind: 'event', at: r.at, event: r.event as Record<string, unknown> };
  const dirs: readonly string[] = ['udp-in', 'udp-out', 'tun-in', 'tun-out'];
  if (typeof r.dir !== 'string' || !dirs.includes(r.dir) || typeof r.data !== 'string') return undefined;
  const m: TapMessage = { kind: 'packet', at: r.at, dir: r.dir as TapDir, data: new Uint8Array(Buffer.from(r.data, 'base64')) };
  if (typeof r.src === 'string') {
    const e = parseIpv4Port(r.src);
    if (e) m.src = e;
  }
  if (typeof r.dst === 'string') {
    const e = parseIpv4Port(r.dst);
    if (e) m.dst = e;
  }
  return m;
}

/**
 * Opens a tap stream: calls onHeader with the daemon's answer and resolves, then calls onMessage per line. The
 * returned close() hangs up; `done` settles when the stream ends (the daemon stopped or close() was called).
 */
export function openTapStream(
  path: string,
  onHeader: (header: unknown) => void,
  onMessage: (m: TapMessage) => void,
  opts: { replay?: boolean; timeoutMs?: number } = {},
): Promise<{ header: unknown; close: () => void; done: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    let header: unknown;
    let started = false;
    let buf = '';
    let finish: () => void = () => {};
    const done = new Promise<void>((r) => (finish = r));
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new ControlError('timeout', `the daemon did not answer within ${(opts.timeoutMs ?? 3000) / 1000} s (control socket ${path})`));
    }, opts.timeoutMs ?? 3000);
    socket.setEncoding('utf8');
    socket.once('connect', () => socket.write(`${JSON.stringify({ cmd: 'tap', args: { replay: opts.replay ?? true } })}\n`));
    socket.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (!started) {
        const code = e.code === 'ENOENT' || e.code === 'ECONNREFUSED' ? 'no-daemon' : e.code === 'EACCES' || e.code === 'EPERM' ? 'permission' : 'protocol';
        const why = code === 'no-daemon' ? `no daemon is running there (control socket ${path})` : code === 'permission' ? `permission denied: run as root (control socket ${path})` : `cannot reach the daemon at ${path}: ${e.message}`;
        reject(new ControlError(code, why));
      }
    });
    socket.on('close', () => {
      clearTimeout(timer);
      if (!started) reject(new ControlError('protocol', `the daemon closed the connection without answering (control socket ${path})`));
      finish();
    });
    socket.on('data', (chunk: string) => {
      buf += chunk;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!started) {
          clearTimeout(timer);
          let r: { ok?: unknown; result?: unknown; error?: unknown };
          try {
            r = JSON.parse(line) as typeof r;
          } catch {
            socket.destroy();
            reject(new ControlError('protocol', 'the daemon answered something that is not JSON'));
            return;
          }
          if (r.ok !== true) {
            socket.destroy();
            reject(new ControlError('remote', `the daemon refused: ${String(r.error)}`));
            return;
          }
          started = true;
          header = r.result;
          // Before the lines that follow in the same chunk: they are read in the header's light.
          onHeader(header);
          resolve({ header, close: () => socket.destroy(), done });
          continue;
        }
        const m = parseTapLine(line);
        if (m) onMessage(m);
      }
    });
  });
}
