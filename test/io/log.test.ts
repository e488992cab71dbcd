import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger, defaultLogFormat, stderrIsJournal } from '../../src/io/log.js';
import { logStateChange, stateChangeLine } from '../../src/io/statelog.js';
import type { StateAction } from '../../src/io/driver.js';
import { buildQualifyNetwork, QUALIFY_ADDRESSES } from '../../src/sim/qualify.js';

function capture(format: 'json' | 'text' | 'journal', level?: 'debug' | 'info' | 'warn' | 'error') {
  const lines: string[] = [];
  const log = createLogger('teredo-client', { format, ...(level ? { level } : {}), write: (l) => lines.push(l), now: () => new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 6)) });
  return { log, lines };
}

test('json: one object a line with time, level, component, pid, msg and the fields', () => {
  const { log, lines } = capture('json');
  log.info('qualified: address 2001:0:c633:6401::1', { event: 'qualified', mapping: '203.0.113.1:1024' });
  assert.equal(lines.length, 1);
  const o = JSON.parse(lines[0]!) as Record<string, unknown>;
  assert.deepEqual(o, { time: '2026-01-02T03:04:05.006Z', level: 'info', component: 'teredo-client', pid: process.pid, msg: 'qualified: address 2001:0:c633:6401::1', event: 'qualified', mapping: '203.0.113.1:1024' });
});

test('journal: <priority> prefix per syslog level, no time stamp, one line even for a multi-line message', () => {
  const { log, lines } = capture('journal', 'debug');
  log.debug('d');
  log.info('i', { k: 'two words' });
  log.warn('w');
  log.error('e\nforged line');
  assert.deepEqual(lines, ['<7>teredo-client: d', '<6>teredo-client: i  k="two words"', '<4>teredo-client: w', '<3>teredo-client: e forged line']);
});

test('text (a terminal): time, component, pid, level; levels filter; setLevel', () => {
  const { log, lines } = capture('text', 'warn');
  log.info('hidden');
  log.warn('shown', { n: 3 });
  log.setLevel('debug');
  log.debug('now shown');
  assert.equal(lines.length, 2);
  assert.match(lines[0]!, /^\d\d:\d\d:\d\d\.006 teredo-client\[\d+\] warn: shown {2}n=3$/);
  assert.match(lines[1]!, /debug: now shown$/);
  assert.equal(log.level, 'debug');
});

test('format choice: TRANSIT6_LOG_FORMAT wins; JOURNAL_STREAM counts only when it names our stderr', () => {
  assert.equal(defaultLogFormat({ TRANSIT6_LOG_FORMAT: 'journal' }), 'journal');
  assert.equal(defaultLogFormat({ TRANSIT6_LOG_FORMAT: 'json' }), 'json');
  // A JOURNAL_STREAM inherited from a parent whose stderr was the journal, while ours is not: not the journal.
  assert.equal(stderrIsJournal({ JOURNAL_STREAM: '1:1' }), false);
  assert.equal(stderrIsJournal({ JOURNAL_STREAM: 'junk' }), false);
  assert.equal(stderrIsJournal({}), false);
  const level = createLogger('x', { format: 'json', env: { TRANSIT6_LOG_LEVEL: 'error' }, write: () => {} });
  assert.equal(level.level, 'error');
});

test('every state change of a client is logged once with its reason: qualified, NAT type, address change, server lost', () => {
  // The NAT forgets mappings after 20 s but the client believes 60 s: its refreshes come too late and the mapping
  // changes; later the server goes away for good.
  const { net } = buildQualifyNetwork({ nat: 'port-restricted', udpTimeoutMs: 20_000, clientAssumedTimeoutMs: 60_000 });
  net.runFor(200_000);
  net.block((hop) => hop.kind === 'udp' && hop.segment === 'inet' && (hop.dst.addr === QUALIFY_ADDRESSES.serverPrimary || hop.dst.addr === QUALIFY_ADDRESSES.serverSecondary));
  net.runFor(200_000);
  const changes = net.host('client').events.filter((e) => e.action.kind === 'state-changed').map((e) => e.action as StateAction);
  const { log, lines } = capture('json');
  for (const a of changes) logStateChange(log, a, { server: '198.51.100.1' });
  assert.equal(lines.length, changes.length, 'one line per change');
  const logged = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  const count = (ev: string) => logged.filter((l) => l.event === ev).length;
  assert.equal(count('qualified'), 1);
  assert.ok(count('address-change') >= 1, JSON.stringify(logged.map((l) => l.event)));
  assert.equal(count('address-change'), changes.filter((a) => a.reason === 'mapping changed').length);
  assert.equal(count('nat-type'), changes.filter((a) => a.reason === 'nat-type').length);
  assert.ok(count('nat-type') >= 1);
  assert.equal(count('server-lost'), 1);
  for (const l of logged) {
    assert.equal(typeof l.reason, 'string');
    assert.ok(String(l.msg).length > 0);
  }
  const lost = logged.find((l) => l.event === 'server-lost')!;
  assert.equal(lost.level, 'warn');
  assert.match(String(lost.msg), /^server lost: no answer to the refresh from 198\.51\.100\.1/);
  const change = logged.find((l) => l.event === 'address-change')!;
  assert.match(String(change.msg), /^address change: the NAT mapping changed to 203\.0\.113\.1:\d+/);
  assert.match(String(logged.find((l) => l.event === 'nat-type')!.msg), /^NAT type: port-restricted NAT/);
  // No two consecutive lines say the same thing: nothing is logged twice.
  for (let i = 1; i < logged.length; i++) assert.notEqual(logged[i]!.msg, logged[i - 1]!.msg);
});

test('state lines name the address after qualification and keep detail fields', () => {
  const a: StateAction = { kind: 'state-changed', state: 'qualified', reason: 'qualified', detail: { mapping: '203.0.113.1:1024' } };
  const addr = new Uint8Array(16);
  addr.set([0x20, 0x01, 0, 0, 0xc6, 0x33, 0x64, 0x01]);
  const l = stateChangeLine(a, { address: addr });
  assert.equal(l.msg, 'qualified: address 2001:0:c633:6401::, mapping 203.0.113.1:1024');
  assert.deepEqual(l.fields, { event: 'qualified', state: 'qualified', reason: 'qualified', mapping: '203.0.113.1:1024', address: '2001:0:c633:6401::' });
  assert.equal(stateChangeLine({ kind: 'state-changed', state: 'offline', reason: 'server-unreachable' }).fields.event, 'offline');
});

test('a daemon whose stderr is the stream JOURNAL_STREAM names writes journal lines', async () => {
  const { mkdtempSync, openSync, closeSync, fstatSync, readFileSync, rmSync } = await import('node:fs');
  const { spawnSync } = await import('node:child_process');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 't6-journal-'));
  try {
    const mod = new URL('../../src/io/log.js', import.meta.url).href;
    const script = `import(${JSON.stringify(mod)}).then((m) => { const l = m.createLogger('teredo-client'); l.info('qualified', { event: 'qualified' }); l.warn('server lost'); l.debug('hidden'); })`;
    for (const [journal, expect] of [
      [true, '<6>teredo-client: qualified  event=qualified\n<4>teredo-client: server lost\n'],
      [false, undefined],
    ] as const) {
      const path = join(dir, `stderr-${journal}`);
      const fd = openSync(path, 'w');
      const st = fstatSync(fd);
      const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, JOURNAL_STREAM: journal ? `${st.dev}:${st.ino}` : `${st.dev}:${st.ino + 1}` };
      spawnSync(process.execPath, ['-e', script], { stdio: ['ignore', 'ignore', fd], env });
      closeSync(fd);
      const out = readFileSync(path, 'utf8');
      if (expect) assert.equal(out, expect);
      else assert.match(out, /^\{"time":.*"msg":"qualified"/); // not the journal: JSON, as for any file
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
