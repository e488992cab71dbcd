/**
 * TunDevice and raw sockets against the real kernel. Root only, and only inside a network namespace created here
 * (t6-io-<random>) and deleted afterwards, even on failure: nothing is created in the root namespace. Each case
 * runs in a child process (`ip netns exec <ns> node tun-child.js <case>`), see tun-child.ts.
 */
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const child = fileURLToPath(new URL('./tun-child.js', import.meta.url));
const isRoot = process.getuid?.() === 0;
const rootSkip = isRoot ? false : 'TUN tests need root (they create a network namespace and a TUN device): skipped';

describe('TUN device in a private network namespace', { skip: rootSkip }, () => {
  const ns = `t6-io-${randomBytes(4).toString('hex')}`;
  let unavailable: string | undefined;
  let created = false;
  const removeNs = (): void => {
    if (!created) return;
    spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    created = false;
  };

  before(() => {
    if (!existsSync('/dev/net/tun')) {
      unavailable = '/dev/net/tun is missing: TUN tests skipped';
      return;
    }
    const r = spawnSync('ip', ['netns', 'add', ns], { encoding: 'utf8' });
    if (r.error || r.status !== 0) {
      unavailable = `cannot create a network namespace (${r.error?.message ?? r.stderr.trim()}): TUN tests skipped`;
      return;
    }
    created = true;
    process.once('exit', removeNs); // also when the runner is torn down before after() runs
  });

  after(() => {
    removeNs();
    const left = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
    assert.ok(!left.includes(ns), `namespace ${ns} was not removed`);
  });

  function runCase(t: TestContext, name: string): Record<string, unknown> | undefined {
    if (unavailable) {
      t.skip(unavailable);
      return undefined;
    }
    const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, child, name], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, `case ${name} failed (status ${r.status}, signal ${r.signal}):\n${r.stderr}${r.stdout}`);
    const line = r.stdout.trim().split('\n').pop() ?? '';
    const out = JSON.parse(line) as { case: string; result: Record<string, unknown> };
    assert.equal(out.case, name);
    t.diagnostic(`${name}: ${JSON.stringify(out.result)}`);
    return out.result;
  }

  test('an ICMPv6 echo request written into the TUN comes back as the kernel\'s echo reply', (t) => {
    runCase(t, 'echo');
  });

  test('1000 writes deliver 1000 packets', (t) => {
    runCase(t, 'writes1000');
  });

  test('raw sockets: IPv6 with header out, protocol 41 out and in', (t) => {
    runCase(t, 'raw');
  });

  test('open errors carry errno names; multi-queue; oversized packets are dropped and counted', (t) => {
    runCase(t, 'errors');
  });

  test('UDP EAGAIN parks the send queue until writable, losing nothing', (t) => {
    const r = runCase(t, 'udpEagain');
    if (r && typeof r.skipped === 'string') t.skip(r.skipped);
  });
});
