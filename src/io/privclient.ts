/** The daemon's side of the privileged helper: one command at a time, each answered before the next. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { IfaceCommand } from './iface.js';
import { onLines } from './lines.js';

let prestarted: PrivilegedHelper | undefined;

export class PrivilegedHelper {
  private readonly child: ChildProcess;
  private readonly waiting: ((r: { ok: boolean; error?: string }) => void)[] = [];

  /**
   * Starts a helper before the daemon's modules are loaded (transit6 teredo client as root, in the foreground): the
   * helper is a second Node process whose start-up takes about as long as that loading, so by the time the client
   * qualifies it can configure the Teredo address at once. Its pipes do not keep this process alive: if nothing
   * takes it (bad usage, User root), it exits with this process.
   */
  static prestart(): void {
    if (prestarted !== undefined) return;
    prestarted = new PrivilegedHelper();
    prestarted.setRef(false);
  }

  /** The prestarted helper, if there is one, handed over once; or a new one. */
  static take(): PrivilegedHelper {
    const h = prestarted ?? new PrivilegedHelper();
    prestarted = undefined;
    h.setRef(true);
    return h;
  }

  /** A prestarted helper nobody will take: told to exit. */
  static async discard(): Promise<void> {
    const h = prestarted;
    prestarted = undefined;
    if (h === undefined) return;
    h.setRef(true); // waiting for it to exit must keep this process alive
    await h.close();
  }

  private setRef(on: boolean): void {
    for (const s of [this.child.stdin, this.child.stdout] as ({ ref(): void; unref(): void } | null)[]) s?.[on ? 'ref' : 'unref']();
    if (on) this.child.ref();
    else this.child.unref();
  }

  /**
   * Starts the helper as early as possible (its own Node start-up then overlaps the daemon's); it serves no
   * interface until bind() names one, which must happen while this process is still privileged.
   */
  constructor() {
    const script = fileURLToPath(new URL('./privhelper.js', import.meta.url));
    this.child = spawn(process.execPath, [script], { stdio: ['pipe', 'pipe', 'inherit'] });
    onLines(this.child.stdout!, (line) => {
      const w = this.waiting.shift();
      try {
        w?.(JSON.parse(line) as { ok: boolean; error?: string });
      } catch {
        w?.({ ok: false, error: `bad answer: ${line}` });
      }
    });
    this.child.on('exit', () => {
      for (const w of this.waiting.splice(0)) w({ ok: false, error: 'the privileged helper exited' });
    });
  }

  /** Names the one interface the helper will touch (the first line it reads; it refuses a second). */
  bind(iface: string): Promise<void> {
    return this.request({ bind: iface });
  }

  run(c: IfaceCommand): Promise<void> {
    return this.request(c);
  }

  private request(r: IfaceCommand | { bind: string }): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiting.push((a) => (a.ok ? resolve() : reject(new Error(a.error ?? 'refused'))));
      this.child.stdin!.write(`${JSON.stringify(r)}\n`);
    });
  }

  /** Closing its stdin makes the helper take the interface down and exit. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.child.exitCode !== null) return resolve();
      this.child.once('exit', () => resolve());
      this.child.stdin!.end();
      setTimeout(() => this.child.kill('SIGKILL'), 5000).unref();
    });
  }
}
