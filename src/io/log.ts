/**
 * Daemon logs, in one of three forms chosen for where stderr goes:
 *   - 'journal': stderr is systemd's journal stream (JOURNAL_STREAM names its device:inode, systemd.exec(5)): one
 *     line per message, prefixed with its syslog priority as sd-daemon(3) describes ("<6>started client ..."),
 *     without a time stamp or pid of our own, since the journal records both;
 *   - 'text': a terminal: "12:00:01.234 teredo-client info: qualified ...  key=value", readable;
 *   - 'json': anything else (a file, a pipe to a log shipper): one JSON object a line with time, level,
 *     component, pid, msg and the fields.
 * TRANSIT6_LOG_FORMAT=json|text|journal overrides the choice. Levels: debug < info < warn < error; the daemon's
 * --log-level (LogLevel) or TRANSIT6_LOG_LEVEL sets the least shown, info by default.
 */
import { fstatSync } from 'node:fs';

export type Level = 'debug' | 'info' | 'warn' | 'error';
export type LogFormat = 'json' | 'text' | 'journal';
export const LEVELS: readonly Level[] = ['debug', 'info', 'warn', 'error'];

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** Changes the least level shown (a reload with a new LogLevel). */
  setLevel(level: Level): void;
  readonly level: Level;
  readonly format: LogFormat;
}

const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };
/** syslog(3) priorities: LOG_DEBUG 7, LOG_INFO 6, LOG_WARNING 4, LOG_ERR 3. */
export const SYSLOG_PRIORITY: Record<Level, number> = { debug: 7, info: 6, warn: 4, error: 3 };

export interface LoggerOptions {
  /** Default: from the environment and stderr (see the file comment). */
  format?: LogFormat;
  /** @deprecated use format: true is 'json', false 'text'. */
  json?: boolean;
  level?: Level;
  write?: (line: string) => void;
  /** For tests: the clock behind time stamps. */
  now?: () => Date;
  env?: NodeJS.ProcessEnv;
}

function isLevel(v: unknown): v is Level {
  return typeof v === 'string' && (LEVELS as readonly string[]).includes(v);
}

/** Whether fd 2 is the stream JOURNAL_STREAM ("<device>:<inode>") names. */
export function stderrIsJournal(env: NodeJS.ProcessEnv = process.env): boolean {
  const js = env.JOURNAL_STREAM;
  if (!js) return false;
  const m = /^(\d+):(\d+)$/.exec(js);
  if (!m) return false;
  try {
    const st = fstatSync(2);
    return String(st.dev) === m[1] && String(st.ino) === m[2];
  } catch {
    return false;
  }
}

export function defaultLogFormat(env: NodeJS.ProcessEnv = process.env): LogFormat {
  const f = env.TRANSIT6_LOG_FORMAT;
  if (f === 'json' || f === 'text' || f === 'journal') return f;
  if (stderrIsJournal(env)) return 'journal';
  return process.stderr.isTTY ? 'text' : 'json';
}

/** key=value, with values quoted when they hold spaces, quotes or '=' (logfmt's convention). */
function formatFields(fields: Record<string, unknown>): string {
  return Object.entries(fields)
    .map(([k, v]) => {
      const s = typeof v === 'string' ? v : JSON.stringify(v);
      return `${k}=${typeof v === 'string' && /[\s"=]/.test(s) ? JSON.stringify(s) : s}`;
    })
    .join(' ');
}

/** One line, whatever the message holds: a newline in a message must not start a forged log line. */
function oneLine(s: string): string {
  return s.replace(/[\r\n]+/g, ' ');
}

function clock(d: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

export function createLogger(component: string, opts: LoggerOptions = {}): Logger {
  const env = opts.env ?? process.env;
  const format: LogFormat = opts.format ?? (opts.json === undefined ? defaultLogFormat(env) : opts.json ? 'json' : 'text');
  let level: Level = opts.level ?? (isLevel(env.TRANSIT6_LOG_LEVEL) ? env.TRANSIT6_LOG_LEVEL : 'info');
  const write = opts.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  const now = opts.now ?? (() => new Date());
  const emit = (lvl: Level, msg: string, fields: Record<string, unknown> = {}): void => {
    if (ORDER[lvl] < ORDER[level]) return;
    if (format === 'json') {
      write(JSON.stringify({ time: now().toISOString(), level: lvl, component, pid: process.pid, msg, ...fields }));
      return;
    }
    const extra = Object.keys(fields).length > 0 ? `  ${oneLine(formatFields(fields))}` : '';
    if (format === 'journal') write(`<${SYSLOG_PRIORITY[lvl]}>${component}: ${oneLine(msg)}${extra}`);
    else write(`${clock(now())} ${component}[${process.pid}] ${lvl}: ${oneLine(msg)}${extra}`);
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    setLevel: (l) => {
      level = l;
    },
    get level() {
      return level;
    },
    format,
  };
}
