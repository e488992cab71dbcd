/**
 * systemd's readiness protocol (sd_notify(3)) for Type=notify units: newline-separated VAR=value assignments in
 * one AF_UNIX datagram to the socket NOTIFY_SOCKET names. The daemons send
 *   READY=1 and STATUS=...            once the control socket answers and the core runs,
 *   STATUS=...                        after each state change ("qualified: address ...", "server lost: ..."),
 *   RELOADING=1 + MONOTONIC_USEC=...  when SIGHUP starts a reload, then READY=1 when it is done (Type=notify-reload
 *                                     wants the time stamp, systemd.service(5)),
 *   STOPPING=1                        when they begin to shut down.
 * Without NOTIFY_SOCKET (not started by systemd) every call does nothing. Failures are reported once through
 * onError and never stop the daemon. The datagram goes through the native addon (unixDgramSend), since Node has
 * no AF_UNIX datagram sockets.
 */
import { loadNative } from './native.js';

export interface Notifier {
  readonly enabled: boolean;
  ready(status?: string): void;
  reloading(): void;
  stopping(status?: string): void;
  status(text: string): void;
  /** Raw assignments, for what the helpers above do not cover. */
  send(fields: Record<string, string | number>): void;
}

export interface NotifierOptions {
  env?: NodeJS.ProcessEnv;
  /** The sender (for tests): returns bytes sent or -errno. */
  send?: (path: string, data: Uint8Array) => number;
  onError?: (message: string) => void;
  /** CLOCK_MONOTONIC in microseconds (for tests). */
  monotonicUsec?: () => bigint;
}

/** One assignment per line; a value cannot contain a newline (systemd would read a second assignment). */
export function formatNotify(fields: Record<string, string | number>): string {
  return Object.entries(fields)
    .map(([k, v]) => {
      if (!/^[A-Z_][A-Z0-9_]*$/.test(k)) throw new Error(`sd_notify: bad variable name '${k}'`);
      return `${k}=${String(v).replace(/[\r\n]+/g, ' ')}`;
    })
    .join('\n');
}

export function createNotifier(opts: NotifierOptions = {}): Notifier {
  const env = opts.env ?? process.env;
  const path = env.NOTIFY_SOCKET;
  // systemd.exec(5): an absolute path or an abstract socket ('@'); vsock addresses are not for us.
  const enabled = path !== undefined && (path.startsWith('/') || path.startsWith('@'));
  let reported = false;
  const sender = opts.send ?? ((p: string, d: Uint8Array) => loadNative().unixDgramSend(p, d, 0, d.length));
  // process.hrtime is CLOCK_MONOTONIC on Linux, the clock MONOTONIC_USEC is read against.
  const mono = opts.monotonicUsec ?? (() => process.hrtime.bigint() / 1000n);
  const send = (fields: Record<string, string | number>): void => {
    if (!enabled) return;
    const data = Buffer.from(formatNotify(fields), 'utf8');
    let r: number;
    try {
      r = sender(path!, data);
    } catch (e) {
      if (!reported) opts.onError?.(`sd_notify to ${path}: ${(e as Error).message}`);
      reported = true;
      return;
    }
    if (r < 0 && !reported) {
      reported = true;
      opts.onError?.(`sd_notify to ${path} failed (errno ${-r}): systemd will not hear from us`);
    }
  };
  return {
    enabled,
    send,
    ready: (status) => send({ READY: 1, ...(status ? { STATUS: status } : {}) }),
    reloading: () => send({ RELOADING: 1, MONOTONIC_USEC: mono().toString() }),
    stopping: (status) => send({ STOPPING: 1, ...(status ? { STATUS: status } : {}) }),
    status: (text) => send({ STATUS: text }),
  };
}
