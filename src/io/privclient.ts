/** The daemon's side of the privileged helper: one command at a time, each answered before the next. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { IfaceCommand } from './iface.js';

export class PrivilegedHelper {
  private readonly child: ChildProcess;
  private readonly waiting: ((r: { ok: boolean; error?: string }) => void)[] = [];

  constructor(iface: string) {
    const script = fileURLToPath(new URL('./privhelper.js', import.meta.url));
    this.child = spawn(process.execPath, [script, iface], { stdio: ['pipe', 'pipe', 'inherit'] });
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
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

  run(c: IfaceCommand): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiting.push((r) => (r.ok ? resolve() : reject(new Error(r.error ?? 'refused'))));
      this.child.stdin!.write(`${JSON.stringify(c)}\n`);
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
