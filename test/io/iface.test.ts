/**
 * What the privileged helper agrees to run for an unprivileged daemon (src/io/iface.ts validateIfaceCommand): only
 * the Teredo interface, Teredo and link-local addresses, the Teredo and default routes, a sane MTU; the transmit
 * queue only at start (as root), never through the helper. And how commands become one `ip -batch` run.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { applyIfaceCommand, ifaceLines, runIpBatch, validateIfaceCommand, type IfaceCommand } from '../../src/io/iface.js';

const ok: IfaceCommand = {
  op: 'up',
  iface: 'teredo',
  mtu: 1280,
  addresses: [{ address: '2001:0:cb00:7101:0:f227:389b:aa01', prefixLength: 32 }, { address: 'fe80::ffff:ffff:ffff', prefixLength: 64 }],
  routes: [{ prefix: '2001::', prefixLength: 32 }, { prefix: '::', prefixLength: 0, metric: 1029 }],
};

test('a Teredo interface command is accepted', () => {
  assert.equal(validateIfaceCommand(ok, 'teredo'), undefined);
  assert.equal(validateIfaceCommand({ op: 'down', iface: 'teredo' }, 'teredo'), undefined);
});

test('anything a Teredo interface does not need is refused, with the reason', () => {
  const cases: [IfaceCommand, RegExp][] = [
    [{ ...ok, iface: 'eth0' }, /not ours/],
    [{ ...ok, iface: 'tere do' }, /not ours/],
    [{ ...ok, mtu: 1279 }, /bad MTU/],
    [{ ...ok, mtu: 1500.5 }, /bad MTU/],
    [{ ...ok, txQueueLen: 100000 }, /transmit queue/],
    [{ ...ok, addresses: [{ address: '2001:db8::1', prefixLength: 64 }] }, /not a Teredo address/],
    [{ ...ok, addresses: [{ address: '2001:0:1::1', prefixLength: 64 }] }, /not a Teredo address/],
    [{ ...ok, routes: [{ prefix: '2001:db8::', prefixLength: 32 }] }, /not a Teredo route/],
    [{ ...ok, routes: [{ prefix: '::', prefixLength: 0, metric: -1 }] }, /bad metric/],
  ];
  for (const [c, why] of cases) assert.match(validateIfaceCommand(c, 'teredo') ?? '(accepted)', why, JSON.stringify(c));
});

test('a command becomes ip batch lines: old routes and addresses flushed first (their failure harmless), then link, addresses, routes', () => {
  assert.deepEqual(ifaceLines(ok), [
    { line: 'route flush dev teredo proto boot', mayFail: true },
    { line: 'addr flush dev teredo scope global', mayFail: true },
    { line: 'link set dev teredo up mtu 1280' },
    { line: 'addr replace 2001:0:cb00:7101:0:f227:389b:aa01/32 dev teredo nodad' },
    { line: 'addr replace fe80::ffff:ffff:ffff/64 dev teredo nodad' },
    { line: 'route replace 2001::/32 dev teredo' },
    { line: 'route replace ::/0 dev teredo metric 1029' },
  ]);
  assert.deepEqual(ifaceLines({ op: 'down', iface: 'teredo' }), [
    { line: 'route flush dev teredo proto boot', mayFail: true },
    { line: 'addr flush dev teredo scope global', mayFail: true },
  ]);
  assert.deepEqual(ifaceLines({ op: 'link', iface: 'tun3', mtu: 1280, txQueueLen: 2000, addresses: [{ address: 'fe80::ffff:ffff:ffff', prefixLength: 64 }] }), [
    { line: 'link set dev tun3 up mtu 1280 txqueuelen 2000' },
    { line: 'addr replace fe80::ffff:ffff:ffff/64 dev tun3' },
  ]);
});

/** Runs runIpBatch against a fake `ip` (first in PATH) that fails the given lines the way ip -force -batch does. */
async function withFakeIp(failLines: number[], run: () => Promise<void>, exitCode = 1): Promise<{ stdin: string }> {
  const dir = mkdtempSync(join(tmpdir(), 't6-fakeip-'));
  const saved = process.env.PATH;
  try {
    const fails = failLines.map((n) => `echo 'Error: something about line ${n}' >&2; echo 'Command failed -:${n}' >&2`).join('\n');
    writeFileSync(join(dir, 'ip'), `#!/bin/sh\n[ "$*" = "-6 -force -batch -" ] || exit 9\ncat > "${dir}/stdin"\n${fails}\nexit ${failLines.length > 0 ? exitCode : 0}\n`, { mode: 0o755 });
    process.env.PATH = `${dir}:${saved ?? ''}`;
    await run();
    return { stdin: readFileSync(join(dir, 'stdin'), 'utf8') };
  } finally {
    process.env.PATH = saved;
    rmSync(dir, { recursive: true, force: true });
  }
}

test('runIpBatch: one ip process gets every line; failures of lines that may fail are ignored, any other rejects naming it', async () => {
  const lines = ifaceLines(ok);
  const all = await withFakeIp([], () => runIpBatch(lines));
  assert.equal(all.stdin, lines.map((l) => `${l.line}\n`).join(''));
  await withFakeIp([1, 2], () => runIpBatch(lines)); // flushes of an interface with nothing on it
  await assert.rejects(
    withFakeIp([2, 4], () => runIpBatch(lines)),
    (e: Error) => e.message.startsWith('ip -6 addr replace 2001:0:cb00:7101:0:f227:389b:aa01/32 dev teredo nodad: ') && /line 4/.test(e.message) && !/Command failed/.test(e.message),
  );
  // Not the exit status of failed lines (2: ip itself could not run the batch): an error even if nothing is named.
  await assert.rejects(withFakeIp([1], () => runIpBatch(lines), 2), /ip -6 -batch \(exit 2\)/);
  await assert.rejects(applyIfaceCommand({ ...ok, iface: 'a b' }), /not one ip can be given/);
});
