/**
 * A stand-in for systemd's notification socket (NOTIFY_SOCKET) in tests: socat receives the datagrams on a path
 * socket and prints them. Datagrams carry no newline at the end and one read may hold several, so messages are
 * matched in order on the concatenated text (e.g. /READY=1[^]*STOPPING=1/).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface FakeNotifySocket {
  path: string;
  /** Everything received so far. */
  text(): string;
  /** Resolves once `re` matches what was received; rejects after `timeoutMs` with what was received. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<string>;
  close(): void;
}

export function haveSocat(): boolean {
  return spawnSync('socat', ['-V']).status === 0;
}

export async function fakeNotifySocket(): Promise<FakeNotifySocket> {
  const dir = mkdtempSync(join(tmpdir(), 't6-notify-'));
  chmodSync(dir, 0o755);
  const path = join(dir, 'notify');
  let received = '';
  const rx: ChildProcess = spawn('socat', ['-u', `UNIX-RECV:${path},perm=0666`, 'STDOUT'], { stdio: ['ignore', 'pipe', 'ignore'] });
  rx.stdout!.on('data', (c: Buffer) => (received += c.toString()));
  const close = (): void => {
    if (rx.exitCode === null && rx.signalCode === null) rx.kill();
    rmSync(dir, { recursive: true, force: true });
  };
  const until = async (ok: () => boolean, what: string, timeoutMs: number): Promise<void> => {
    const end = Date.now() + timeoutMs;
    while (!ok()) {
      if (Date.now() > end) throw new Error(`${what}; received: ${JSON.stringify(received)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const waitFor = async (re: RegExp, timeoutMs = 10_000): Promise<string> => {
    await until(() => re.test(received), `no ${re} on the notify socket`, timeoutMs);
    return received;
  };
  try {
    await until(() => existsSync(path), `socat did not create ${path}`, 5000);
  } catch (e) {
    close();
    throw e;
  }
  return { path, text: () => received, waitFor, close };
}
