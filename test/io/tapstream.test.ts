import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlServer, controlRequest } from '../../src/io/control.js';
import { TapHub } from '../../src/io/tap.js';
import { EventFeed, openTapStream, parseTapLine, tapStream, type TapMessage } from '../../src/io/tapstream.js';

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond());
}

test("the 'tap' stream: header, the backlog since the start, live packets and events; other commands still answer", async () => {
  const dir = mkdtempSync(join(tmpdir(), 't6-tap-'));
  const path = join(dir, 'teredo-client.sock');
  let clock = 1_700_000_000_000;
  const hub = new TapHub({ backlog: 2, now: () => clock++ });
  const events = new EventFeed(1, () => 1_700_000_000_000.5);
  const server = new ControlServer(path, (req) => (req.cmd === 'tap' ? tapStream(hub, events, { role: 'client' }, req.args) : { pong: req.cmd }), { role: 'client', runDir: dir });
  await server.listen();
  try {
    const ep = (addr: number, port: number) => ({ addr, port });
    hub.tap('udp-out', Uint8Array.of(1, 2), ep(0xc0a8010a, 5000), ep(0xc6336401, 3544));
    hub.tap('udp-in', Uint8Array.of(3), ep(0xc6336401, 3544), ep(0xc0a8010a, 5000));
    events.emit({ event: 'qualifying', msg: 'qualifying with 198.51.100.1' }); // between the two packets, in time
    events.emit({ event: 'ignored', msg: 'past the backlog of 1' });
    hub.tap('udp-in', Uint8Array.of(4), ep(0xc6336401, 3544), ep(0xc0a8010a, 5000)); // past the backlog of 2
    assert.equal(hub.recent().length, 2);
    const got: TapMessage[] = [];
    let header: unknown;
    const s = await openTapStream(path, (h) => (header = h), (m) => got.push(m));
    assert.deepEqual(header, { role: 'client' });
    await until(() => got.length === 4);
    assert.deepEqual(got.map((m) => (m.kind === 'packet' ? [m.dir, [...m.data]] : m.kind === 'event' ? m.event.event : m.kind)), [['udp-out', [1, 2]], 'qualifying', ['udp-in', [3]], 'live']);
    hub.tap('tun-in', Uint8Array.of(0x60, 0, 0, 0));
    events.emit({ event: 'qualified', msg: 'qualified: address x' });
    await until(() => got.length === 6);
    assert.equal(got[4]!.kind === 'packet' && got[4]!.dir, 'tun-in');
    assert.equal(got[5]!.kind === 'event' && got[5]!.event.event, 'qualified');
    assert.equal(hub.listeners, 1);
    assert.deepEqual(await controlRequest(path, 'state'), { pong: 'state' });
    s.close();
    await s.done;
    await until(() => hub.listeners === 0);
    assert.deepEqual(hub.counts()['udp-in'], { packets: 2, bytes: 2 });
    assert.deepEqual(hub.counts()['tun-in'], { packets: 1, bytes: 4 });
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tap lines: malformed ones are ignored, not thrown', () => {
  assert.equal(parseTapLine('not json'), undefined);
  assert.equal(parseTapLine('{"at": 1, "dir": "sideways", "data": ""}'), undefined);
  assert.equal(parseTapLine('[1]'), undefined);
  assert.deepEqual(parseTapLine('{"lost": 3}'), { kind: 'lost', count: 3 });
  assert.deepEqual(parseTapLine('{"live": true}'), { kind: 'live' });
  const m = parseTapLine('{"at": 5, "dir": "udp-in", "src": "1.2.3.4:5", "dst": "bad", "data": "AQI="}');
  assert.ok(m && m.kind === 'packet');
  assert.deepEqual([...m.data], [1, 2]);
  assert.deepEqual(m.src, { addr: 0x01020304, port: 5 });
  assert.equal(m.dst, undefined);
});
