/** Shared by the lab tests: the root check and namespace listing. */
import type { TestContext } from 'node:test';
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
