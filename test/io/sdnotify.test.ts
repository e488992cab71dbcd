import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNotifier, formatNotify } from '../../src/io/sdnotify.js';
import { loadNative } from '../../src/io/native.js';

test('the notifier: READY, STATUS, RELOADING with MONOTONIC_USEC, STOPPING; nothing without NOTIFY_SOCKET', () => {
  const sent: [string, string][] = [];
  const n = createNotifier({ env: { NOTIFY_SOCKET: '@t6-test' }, send: (p, d) => (sent.push([p, Buffer.from(d).toString()]), d.length), monotonicUsec: () => 123456789n });
  assert.equal(n.enabled, true);
  n.ready('running (client)');
  n.status('qualified: address 2001:0:c633:6401::1\nsecond line');
  n.reloading();
  n.stopping();
  assert.deepEqual(sent, [
    ['@t6-test', 'READY=1\nSTATUS=running (client)'],
    ['@t6-test', 'STATUS=qualified: address 2001:0:c633:6401::1 second line'],
    ['@t6-test', 'RELOADING=1\nMONOTONIC_USEC=123456789'],
    ['@t6-test', 'STOPPING=1'],
  ]);
  let calls = 0;
  const off = createNotifier({ env: {}, send: () => ++calls });
  off.ready();
  assert.equal(off.enabled, false);
  assert.equal(calls, 0);
  assert.equal(createNotifier({ env: { NOTIFY_SOCKET: 'vsock:2:1' } }).enabled, false);
  assert.throws(() => formatNotify({ 'bad name': 1 }), /bad variable name/);
});

test('a failing socket is reported once and never throws', () => {
  const errors: string[] = [];
  const n = createNotifier({ env: { NOTIFY_SOCKET: '/nonexistent/notify' }, onError: (m) => errors.push(m) });
  n.ready();
  n.status('x');
  assert.equal(errors.length, 1);
  assert.match(errors[0]!, /sd_notify to \/nonexistent\/notify failed \(errno 2\)/);
});

async function receive(address: string, send: () => void, expect: number): Promise<string> {
  // socat prints each datagram it receives; -u: one way.
  const rx = spawn('socat', ['-u', address, 'STDOUT'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  rx.stdout.on('data', (c: Buffer) => (out += c.toString()));
  try {
    for (let i = 0; i < 100 && out.length < expect; i++) {
      send();
      await new Promise((r) => setTimeout(r, 50));
      if (out.length >= expect) break;
    }
    return out;
  } finally {
    rx.kill();
  }
}

test('unixDgramSend reaches a real AF_UNIX datagram socket, by path and in the abstract namespace', { skip: spawnSync('socat', ['-V']).status !== 0 ? 'socat is not installed (scripts/install-deps.sh)' : false }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 't6-notify-'));
  try {
    const path = join(dir, 'notify.sock');
    const byPath = await receive(`UNIX-RECV:${path}`, () => createNotifier({ env: { NOTIFY_SOCKET: path } }).ready('up'), 'READY=1\nSTATUS=up'.length);
    assert.match(byPath, /^READY=1\nSTATUS=up/);
    const name = `t6-notify-${process.pid}`;
    const abstract = await receive(`ABSTRACT-RECV:${name}`, () => createNotifier({ env: { NOTIFY_SOCKET: `@${name}` } }).stopping(), 'STOPPING=1'.length);
    assert.match(abstract, /^STOPPING=1/);
    assert.throws(() => loadNative().unixDgramSend('x'.repeat(200), new Uint8Array(1), 0, 1), RangeError);
    assert.throws(() => loadNative().unixDgramSend(path, new Uint8Array(1), 0, 2), RangeError);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
