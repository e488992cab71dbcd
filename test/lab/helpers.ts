/** Shared by the lab tests: the root check and namespace listing. */
import type { TestContext } from 'node:test';
import { listNamespaces } from '../../src/lab/netns.js';

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
