/**
 * The privileged helper (Miredo's privproc): a daemon that dropped its privileges keeps this small root process
 * beside it, which takes interface commands on stdin, one JSON object a line, checks that they concern the
 * Teredo interface only and are what a Teredo node needs, runs them, and answers "ok" or an error on stdout.
 * The interface is named once, by the first line ({"bind": name}), which the daemon sends while it is still root
 * (the helper starts before the tunnel exists, so that its start-up overlaps the daemon's); a second bind is
 * refused. It exits when its stdin closes (the daemon is gone), taking the interface's addresses and routes with it.
 */
import { applyIfaceCommand, validateIfaceCommand, validInterfaceName, type IfaceCommand } from './iface.js';
import { onLines } from './lines.js';

let iface: string | undefined;
let last: Promise<void> = Promise.resolve();

const answer = (a: { ok: boolean; error?: string }): void => {
  process.stdout.write(`${JSON.stringify(a)}\n`);
};

/** One request line: the bind, then interface commands. */
async function handle(line: string): Promise<void> {
  let c: IfaceCommand & { bind?: unknown };
  try {
    c = JSON.parse(line) as IfaceCommand & { bind?: unknown };
  } catch {
    return answer({ ok: false, error: 'bad JSON' });
  }
  if (c === null || typeof c !== 'object') return answer({ ok: false, error: 'not a request' });
  if ('bind' in c) {
    if (iface !== undefined) return answer({ ok: false, error: `already serving ${iface}` });
    if (typeof c.bind !== 'string' || !validInterfaceName(c.bind)) return answer({ ok: false, error: `bad interface name ${JSON.stringify(c.bind)}` });
    iface = c.bind;
    return answer({ ok: true });
  }
  if (iface === undefined) return answer({ ok: false, error: 'no interface yet (bind first)' });
  const refusal = validateIfaceCommand(c, iface);
  if (refusal) return answer({ ok: false, error: refusal });
  try {
    await applyIfaceCommand(c);
    answer({ ok: true });
  } catch (e) {
    answer({ ok: false, error: (e as Error).message });
  }
}

onLines(
  process.stdin,
  (line) => {
    last = last.then(() => handle(line));
  },
  () => {
    const bound = iface;
    void last
      .then(() => (bound !== undefined ? applyIfaceCommand({ op: 'down', iface: bound }).catch(() => undefined) : undefined))
      .then(() => process.exit(0));
  },
);
