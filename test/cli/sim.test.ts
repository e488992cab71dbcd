import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main.js';
import type { CliIo } from '../../src/cli/io.js';

function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: CliIo = { out: (t) => (out += `${t}\n`), err: (t) => (err += `${t}\n`) };
  return main(args, io).then((code) => ({ code, out, err }));
}

test('sim qualify --json has the documented keys and the packets in time order', async () => {
  const r = await run(['sim', 'qualify', '--nat', 'port-restricted', '--json']);
  assert.equal(r.code, 0);
  const j = JSON.parse(r.out);
  for (const k of ['state', 'natType', 'localMapping', 'externalMapping', 'teredoAddress', 'addressChanges', 'packets']) assert.ok(k in j, k);
  assert.equal(j.state, 'qualified');
  assert.equal(j.natType, 'port-restricted');
  assert.equal(j.localMapping, '192.168.1.10:50000');
  assert.equal(j.externalMapping, j.natMapping);
  const labels: string[] = j.packets.map((p: { label: string }) => p.label);
  assert.ok(labels.some((l) => l.startsWith('RS with cone flag')));
  assert.ok(labels.some((l) => l.startsWith('RA from the secondary address')));
  assert.ok(labels.some((l) => l.includes('origin indication 203.0.113.1:')));
  const times = j.packets.map((p: { at: number }) => p.at);
  assert.deepEqual(times, [...times].sort((a: number, b: number) => a - b));
});

test('sim qualify prints show state and the packet list; --nat all a table; --idle counts address changes', async () => {
  const r = await run(['sim', 'qualify', '--nat', 'symmetric']);
  assert.match(r.out, /NAT\s+: symmetric/);
  assert.match(r.out, /External Mapping\s+: 203\.0\.113\.1:\d+/);
  assert.match(r.out, /matches the external mapping/);
  const all = await run(['sim', 'qualify', '--nat', 'all']);
  for (const t of ['cone', 'restricted', 'port-restricted', 'symmetric', 'none']) assert.match(all.out, new RegExp(`\\b${t}\\b`));
  const idle = await run(['sim', 'qualify', '--nat', 'port-restricted', '--udp-timeout', '30', '--idle', '600', '--json']);
  assert.equal(JSON.parse(idle.out).addressChanges, 0);
});

test('sim qualify --pcap writes a capture', async () => {
  const dir = mkdtempSync(join(tmpdir(), 't6-cli-'));
  try {
    const file = join(dir, 'q.pcap');
    const r = await run(['sim', 'qualify', '--nat', 'full-cone', '--pcap', file]);
    assert.equal(r.code, 0);
    const b = readFileSync(file);
    assert.equal(b.readUInt32LE(0), 0xa1b2c3d4);
    assert.ok(b.length > 200);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('sim reach --json: every pair, the documented keys', async () => {
  const r = await run(['sim', 'reach', '--json']);
  const j = JSON.parse(r.out);
  assert.equal(j.pairs.length, 72);
  for (const p of j.pairs) {
    for (const k of ['from', 'to', 'ok', 'path', 'firstPacketMs']) assert.ok(k in p, k);
    assert.equal(p.ok, p.expected, `${p.from} -> ${p.to}`);
  }
  const text = await run(['sim', 'reach']);
  assert.match(text.out, /64 of 72 pairs connected; RFC 4380 with RFC 6081 connects 64/);
  assert.match(text.out, /first echo request lost in 0 pair/);
});

test('sim trace draws each exchange, and --svg writes an SVG', async () => {
  for (const name of ['qualify', 'holepunch', 'relay', 'inbound', 'symmetric', 'local']) {
    const r = await run(['sim', 'trace', name, '--width', '100']);
    assert.equal(r.code, 0, name);
    for (const line of r.out.split('\n').slice(1)) assert.ok(line.length <= 100, `${name}: ${line}`);
  }
  const hp = await run(['sim', 'trace', 'holepunch']);
  assert.match(hp.out, /direct bubble/);
  assert.match(hp.out, /indirect bubble/);
  const relay = await run(['sim', 'trace', 'relay']);
  assert.match(relay.out, /connectivity-tes/);
  const dir = mkdtempSync(join(tmpdir(), 't6-cli-'));
  try {
    const file = join(dir, 'r.svg');
    await run(['sim', 'trace', 'relay', '--svg', file]);
    const svg = readFileSync(file, 'utf8');
    assert.match(svg, /^<svg|^<\?xml/);
    assert.match(svg, /xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad sim usage: one line, exit 2', async () => {
  for (const args of [
    ['sim', 'qualify', '--nat', 'bogus'],
    ['sim', 'qualify'],
    ['sim', 'qualify', '--nat', 'symmetric', '--udp-timeout', 'x'],
    ['sim', 'trace', 'nonsense'],
    ['sim', 'reach', '--seed', '-1'],
    ['sim', 'nothing'],
    ['sim', 'qualify', '--nat', 'none', '--bogus-flag'],
  ]) {
    const r = await run(args);
    assert.equal(r.code, 2, args.join(' '));
    assert.equal(r.err.trim().split('\n').length, 1, args.join(' '));
  }
  const p = spawnSync(process.execPath, ['bin/transit6.js', 'sim', 'trace', 'nonsense'], { encoding: 'utf8' });
  assert.equal(p.status, 2);
  assert.doesNotMatch(p.stderr, /\n\s+at /);
});
