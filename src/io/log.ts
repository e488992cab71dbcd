/**
 * Daemon logs: one JSON object a line when stderr is not a terminal (journald and log shippers read these), a
 * readable line when it is. Every state change is logged once with its reason.
 */
export type Level = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function createLogger(component: string, opts: { json?: boolean; level?: Level; write?: (line: string) => void } = {}): Logger {
  const json = opts.json ?? !process.stderr.isTTY;
  const min = ORDER[opts.level ?? ((process.env.TRANSIT6_LOG_LEVEL as Level | undefined) ?? 'info')] ?? ORDER.info;
  const write = opts.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  const emit = (level: Level, msg: string, fields: Record<string, unknown> = {}): void => {
    if (ORDER[level] < min) return;
    if (json) {
      write(JSON.stringify({ time: new Date().toISOString(), level, component, pid: process.pid, msg, ...fields }));
    } else {
      const extra = Object.entries(fields)
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
        .join(' ');
      write(`transit6 ${component}[${process.pid}] ${level}: ${msg}${extra ? `  ${extra}` : ''}`);
    }
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
  };
}
