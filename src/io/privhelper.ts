/**
 * The privileged helper (Miredo's privproc): a daemon that dropped its privileges keeps this small root process
 * beside it, which takes interface commands on stdin, one JSON object a line, checks that they concern the
 * Teredo interface only and are what a Teredo node needs, runs them, and answers "ok" or an error on stdout.
 * It exits when its stdin closes (the daemon is gone), taking the interface's addresses and routes with it.
 */
import { createInterface } from 'node:readline';
import { applyIfaceCommand, validateIfaceCommand, type IfaceCommand } from './iface.js';

const iface = process.argv[2] ?? '';
let last: Promise<void> = Promise.resolve();

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  last = last.then(async () => {
    let c: IfaceCommand;
    try {
      c = JSON.parse(line) as IfaceCommand;
    } catch {
      process.stdout.write(`${JSON.stringify({ ok: false, error: 'bad JSON' })}\n`);
      return;
    }
    const refusal = validateIfaceCommand(c, iface);
    if (refusal) {
      process.stdout.write(`${JSON.stringify({ ok: false, error: refusal })}\n`);
      return;
    }
    try {
      await applyIfaceCommand(c);
      process.stdout.write(`${JSON.stringify({ ok: true })}\n`);
    } catch (e) {
      process.stdout.write(`${JSON.stringify({ ok: false, error: (e as Error).message })}\n`);
    }
  });
});
rl.on('close', () => {
  void last.then(() => applyIfaceCommand({ op: 'down', iface }).catch(() => undefined)).then(() => process.exit(0));
});
