/**
 * Running commands for the namespace lab: one-shot commands (execFile, never a shell) with errors that say which
 * command failed, how and why; long-running processes inside a namespace, with their PID recorded and their output
 * in a log file; and stopping a process by PID (SIGTERM, then SIGKILL after a grace period).
 *
 * Safety: every namespace this module enters must be named `t6-…` (assertLabNamespace). Nothing here creates
 * anything in the root namespace; the only commands run there are read-only (`ip netns list`, `ip netns pids`).
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { ConfigError } from '../core/errors.js';

/** Every lab namespace name starts with this; nothing else is ever entered, changed or deleted. */
export const LAB_NS_PREFIX = 't6-';
const NS_NAME = /^t6-[A-Za-z0-9][A-Za-z0-9_.-]*$/;
/** `ip netns` keeps names under /run/netns; keep them short enough for every tool that prints them. */
export const MAX_NS_NAME_LENGTH = 64;

/** Throws ConfigError unless `ns` is a well-formed lab namespace name (`t6-…`). */
export function assertLabNamespace(ns: string): void {
  if (!NS_NAME.test(ns) || ns.length > MAX_NS_NAME_LENGTH) {
    throw new ConfigError(
      `refusing namespace '${ns}': lab namespaces are named ${LAB_NS_PREFIX}<letters, digits, . _ -> (at most ${MAX_NS_NAME_LENGTH} characters)`,
    );
  }
}

export interface RunOptions {
  /** Written to the command's standard input. */
  input?: string;
  /** Kill the command (SIGKILL) after this long; default 30 s. */
  timeoutMs?: number;
  /** Return the result instead of throwing when the command exits non-zero. */
  allowFailure?: boolean;
  env?: NodeJS.ProcessEnv;
}

export interface RunResult {
  command: string;
  args: readonly string[];
  /** null when the command was killed by a signal. */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A command that could not be started, exited non-zero, was killed or timed out. */
export class CommandError extends Error {
  override readonly name = 'CommandError';
  constructor(
    readonly command: string,
    readonly args: readonly string[],
    /** Exit status; null if the command never ran or was killed by a signal. */
    readonly exitCode: number | null,
    readonly signal: NodeJS.Signals | null,
    readonly stdout: string,
    readonly stderr: string,
    /** Why, when it is not the exit status: 'not found', 'timed out after 30000 ms', a spawn error. */
    readonly reason?: string,
  ) {
    const how = reason ?? (exitCode !== null ? `exit code ${exitCode}` : `killed by ${signal ?? 'a signal'}`);
    const err = stderr.trim();
    super(`command failed (${how}): ${formatCommand(command, args)}${err ? `\n  stderr: ${err.split('\n').join('\n          ')}` : ''}`);
  }
}

/** Shell-like rendering for messages only; nothing is ever run through a shell. */
export function formatCommand(command: string, args: readonly string[]): string {
  return [command, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

const DEFAULT_TIMEOUT_MS = 30_000;
const MAX_BUFFER = 64 * 1024 * 1024;

function missingHint(command: string): string {
  return `'${command}' not found (is it installed? scripts/install-deps.sh installs the lab's tools)`;
}

/** Runs a command without a shell and resolves with its output; rejects with CommandError on any failure. */
export function run(command: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const child = execFile(
      command,
      args,
      { encoding: 'utf8', maxBuffer: MAX_BUFFER, timeout: timeoutMs, killSignal: 'SIGKILL', env: opts.env ?? process.env },
      (error, stdout, stderr) => {
        if (!error) {
          resolve({ command, args, exitCode: 0, signal: null, stdout, stderr });
          return;
        }
        const e = error as NodeJS.ErrnoException & { killed?: boolean; signal?: NodeJS.Signals | null; code?: number | string };
        if (typeof e.code === 'string') {
          const reason = e.code === 'ENOENT' ? missingHint(command) : `could not start: ${e.message}`;
          reject(new CommandError(command, args, null, null, stdout, stderr, reason));
          return;
        }
        const exitCode = typeof e.code === 'number' ? e.code : null;
        const signal = e.signal ?? null;
        const reason = e.killed && signal === 'SIGKILL' ? `timed out after ${timeoutMs} ms` : undefined;
        const result: RunResult = { command, args, exitCode, signal, stdout, stderr };
        if (opts.allowFailure && reason === undefined) resolve(result);
        else reject(new CommandError(command, args, exitCode, signal, stdout, stderr, reason));
      },
    );
    // A command that does not read its input closes the pipe early: that is not our failure.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(opts.input ?? '');
  });
}

/** The synchronous form of run(), for exit handlers where nothing asynchronous runs any more. */
export function runSync(command: string, args: readonly string[], opts: RunOptions = {}): RunResult {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  try {
    const stdout = execFileSync(command, args, {
      encoding: 'utf8',
      maxBuffer: MAX_BUFFER,
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
      input: opts.input ?? '',
      stdio: ['pipe', 'pipe', 'pipe'],
      env: opts.env ?? process.env,
    });
    return { command, args, exitCode: 0, signal: null, stdout, stderr: '' };
  } catch (error) {
    const e = error as NodeJS.ErrnoException & { status?: number | null; signal?: NodeJS.Signals | null; stdout?: string; stderr?: string };
    const stdout = e.stdout ?? '';
    const stderr = e.stderr ?? '';
    if (e.code === 'ENOENT') throw new CommandError(command, args, null, null, stdout, stderr, missingHint(command));
    if (e.code === 'ETIMEDOUT') throw new CommandError(command, args, null, 'SIGKILL', stdout, stderr, `timed out after ${timeoutMs} ms`);
    const result: RunResult = { command, args, exitCode: e.status ?? null, signal: e.signal ?? null, stdout, stderr };
    if (opts.allowFailure) return result;
    throw new CommandError(command, args, result.exitCode, result.signal, stdout, stderr, e.status == null && e.signal == null ? e.message : undefined);
  }
}

/** `ip netns exec NS cmd args…`: runs a command inside a lab namespace. */
export async function inNs(ns: string, command: string, args: readonly string[] = [], opts: RunOptions = {}): Promise<RunResult> {
  assertLabNamespace(ns);
  return run('ip', ['netns', 'exec', ns, command, ...args], opts);
}

export function inNsSync(ns: string, command: string, args: readonly string[] = [], opts: RunOptions = {}): RunResult {
  assertLabNamespace(ns);
  return runSync('ip', ['netns', 'exec', ns, command, ...args], opts);
}

// ---------------------------------------------------------------------------------------------------------------
// Processes

/** Start time of a process in clock ticks since boot (/proc/PID/stat field 22): with the PID it names one process,
 *  so a recorded PID that the kernel has since reused is never signalled. undefined if the process is gone. */
export function processStartTime(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may contain spaces: count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const start = Number(fields[19]);
    return Number.isFinite(start) ? start : undefined;
  } catch {
    return undefined;
  }
}

/** True while `pid` names a live process (a zombie counts as gone) that, if startTime is given, started then. */
export function isAlive(pid: number, startTime?: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  if (state === 'Z' || state === 'X') return false;
  return startTime === undefined || processStartTime(pid) === startTime;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export type StopOutcome = 'not-running' | 'terminated' | 'killed';

export interface StopOptions {
  /** How long SIGTERM has before SIGKILL; default 2000 ms. */
  graceMs?: number;
  /** The process's recorded start time (processStartTime): a PID that now names another process is left alone. */
  startTime?: number;
}

/** Stops one process by PID: SIGTERM, then SIGKILL if it is still there after the grace period. */
export async function stopPid(pid: number, opts: StopOptions = {}): Promise<StopOutcome> {
  if (!isAlive(pid, opts.startTime)) return 'not-running';
  signal(pid, 'SIGTERM');
  const deadline = Date.now() + (opts.graceMs ?? 2000);
  while (Date.now() < deadline) {
    if (!isAlive(pid, opts.startTime)) return 'terminated';
    await sleep(20);
  }
  if (!isAlive(pid, opts.startTime)) return 'terminated';
  signal(pid, 'SIGKILL');
  for (let i = 0; i < 100 && isAlive(pid, opts.startTime); i++) await sleep(10);
  return 'killed';
}

export function stopPidSync(pid: number, opts: StopOptions = {}): StopOutcome {
  if (!isAlive(pid, opts.startTime)) return 'not-running';
  signal(pid, 'SIGTERM');
  const deadline = Date.now() + (opts.graceMs ?? 2000);
  while (Date.now() < deadline) {
    if (!isAlive(pid, opts.startTime)) return 'terminated';
    sleepSync(20);
  }
  if (!isAlive(pid, opts.startTime)) return 'terminated';
  signal(pid, 'SIGKILL');
  for (let i = 0; i < 100 && isAlive(pid, opts.startTime); i++) sleepSync(10);
  return 'killed';
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SpawnOptions {
  /** Where stdout and stderr go (appended; a header line names the command). */
  logPath: string;
  /** A label for messages and records; defaults to the command's base name. */
  name?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Own process group and not waited for by this process: for daemons that outlive the command that started
   *  them (`transit6 lab up`). They are stopped later by PID from the lab's state file. */
  detached?: boolean;
}

/** What is kept about a process so that it can be stopped later, also from another process. */
export interface ProcessRecord {
  name: string;
  ns: string;
  pid: number;
  startTime: number | undefined;
  logPath: string;
  command: string[];
}

/** A long-running process inside a lab namespace. `ip netns exec` execs the command in place, so `pid` is the
 *  command's own PID. */
export class ManagedProcess {
  readonly pid: number;
  readonly startTime: number | undefined;
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<ExitInfo>;
  private exit: ExitInfo | undefined;

  constructor(
    readonly name: string,
    readonly ns: string,
    readonly command: readonly string[],
    readonly logPath: string,
    child: ChildProcess,
  ) {
    if (child.pid === undefined) throw new Error(`no PID for ${name}`);
    this.pid = child.pid;
    this.startTime = processStartTime(this.pid);
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, sig) => {
        this.exit = { code, signal: sig };
        resolve(this.exit);
      });
    });
  }

  get running(): boolean {
    return this.exit === undefined && isAlive(this.pid, this.startTime);
  }

  /** The exit status once the process has exited. */
  get exitInfo(): ExitInfo | undefined {
    return this.exit;
  }

  record(): ProcessRecord {
    return { name: this.name, ns: this.ns, pid: this.pid, startTime: this.startTime, logPath: this.logPath, command: [...this.command] };
  }

  /** SIGTERM, then SIGKILL after graceMs. Resolves once the process has exited. */
  async stop(graceMs = 2000): Promise<StopOutcome> {
    if (this.exit !== undefined) return 'not-running';
    const outcome = await stopPid(this.pid, { graceMs, startTime: this.startTime });
    // The 'exit' event follows the kernel's reaping closely; do not hang if it never comes (detached child).
    await Promise.race([this.exited, sleep(500)]);
    return outcome;
  }

  stopSync(graceMs = 2000): StopOutcome {
    if (this.exit !== undefined) return 'not-running';
    return stopPidSync(this.pid, { graceMs, startTime: this.startTime });
  }

  /** Everything the process has written so far. */
  log(): string {
    try {
      return readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  /** Waits until the log matches `pattern` (returns the match), the process exits or the time is up (throws). */
  async waitForLog(pattern: RegExp, timeoutMs = 5000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.log().match(pattern);
      if (m) return m;
      if (this.exit !== undefined) {
        throw new Error(`${this.name} in ${this.ns} exited (${describeExit(this.exit)}) before its log matched ${pattern}; log ${this.logPath}:\n${tail(this.log())}`);
      }
      if (Date.now() >= deadline) {
        throw new Error(`${this.name} in ${this.ns}: log did not match ${pattern} within ${timeoutMs} ms; log ${this.logPath}:\n${tail(this.log())}`);
      }
      await sleep(25);
    }
  }
}

function describeExit(e: ExitInfo): string {
  return e.code !== null ? `exit code ${e.code}` : `signal ${e.signal ?? '?'}`;
}

function tail(text: string, lines = 20): string {
  return text.split('\n').slice(-lines).join('\n');
}

/** Starts `command args…` inside lab namespace `ns`, stdout and stderr appended to opts.logPath. */
export function spawnInNs(ns: string, command: string, args: readonly string[], opts: SpawnOptions): ManagedProcess {
  assertLabNamespace(ns);
  const name = opts.name ?? command.split('/').pop() ?? command;
  const argv = ['netns', 'exec', ns, command, ...args];
  writeFileSync(opts.logPath, `# ${new Date().toISOString()} ${name} in ${ns}: ${formatCommand(command, args)}\n`, { flag: 'a' });
  const fd = openSync(opts.logPath, 'a');
  let child: ChildProcess;
  try {
    child = spawn('ip', argv, {
      stdio: ['ignore', fd, fd],
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      detached: opts.detached ?? false,
    });
  } finally {
    closeSync(fd);
  }
  if (child.pid === undefined) {
    // spawn reports ENOENT asynchronously; `ip` missing is the only way to get here.
    child.on('error', () => undefined);
    throw new CommandError('ip', argv, null, null, '', '', missingHint('ip'));
  }
  if (opts.detached) child.unref();
  return new ManagedProcess(name, ns, [command, ...args], opts.logPath, child);
}
