/** Shared by the lab tests: the root check and namespace listing. */
import type { TestContext } from 'node:test';
import { inNs } from '../../src/lab/exec.js';
import { listNamespaces, type Lab } from '../../src/lab/netns.js';
import { parseExposition, type ExpoFamily } from '../io/exposition.js';

export const isRoot = process.getuid?.() === 0;

/** Marks the test skipped unless running as root; returns true when the caller should return. */
export function skipUnlessRoot(t: TestContext): boolean {
  if (isRoot) return false;
  t.skip('needs root');
  return true;
}

/** Namespaces in `ip netns list` whose names start with `prefix`. */
export async function namespacesWith(prefix: string): Promise<string[]> {
  return (await listNamespaces()).filter((n) => n.startsWith(prefix)).sort();
}

/** The compiled lab modules, for child processes that play a crashed or concurrent lab owner. */
export const LAB_MODULE = new URL('../../src/lab/netns.js', import.meta.url).href;

/** GET http://HOSTPORT/metrics from inside namespace `ns` (a node child there), checked by the exposition parser. */
export async function scrapeMetrics(lab: Lab, ns: string, hostPort: string): Promise<Map<string, ExpoFamily>> {
  const script = `fetch('http://${hostPort}/metrics').then(async (r) => { if (r.status !== 200) throw new Error('HTTP ' + r.status); process.stdout.write(await r.text()); })`;
  const r = await lab.exec(ns, process.execPath, ['-e', script]);
  return parseExposition(r.stdout);
}

/** The value of the sample of `name` whose labels include `labels` (undefined if none). */
export function sampleValue(fams: Map<string, ExpoFamily>, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const f of fams.values()) {
    for (const s of f.samples) if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) return s.value;
  }
  return undefined;
}

/** bin/transit6.js of this checkout (from dist/test/lab/). */
export const BIN = new URL('../../../bin/transit6.js', import.meta.url).pathname;

/** Polls `fn` every 200 ms until it returns a value; throws once `timeoutMs` has passed. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** `transit6 teredo show state --json` of the daemon in namespace `ns`, or undefined while none answers. */
export async function teredoState(ns: string): Promise<Record<string, unknown> | undefined> {
  const r = await inNs(ns, process.execPath, [BIN, 'teredo', 'show', 'state', '--json'], { allowFailure: true });
  return r.exitCode === 0 ? (JSON.parse(r.stdout) as Record<string, unknown>) : undefined;
}
