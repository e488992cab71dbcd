// `transit6 teredo show`: text and JSON from canned daemon answers served over a real control socket in a
// temporary run directory, the choice of daemon, and the usage errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { UsageError } from '../../src/core/errors.js';
import { teredoShowCommand } from '../../src/cli/teredo-show.js';
import { ago, formatClientState, formatClientStateJson, formatPeersJson, formatStatsJson } from '../../src/cli/show.js';
import { EXIT_USAGE, type CliIo } from '../../src/cli/io.js';
import {
  clientPeersJson,
  clientStateJson,
  ControlError,
  ControlServer,
  defaultControlPath,
  relayStateJson,
  serverStateJson,
  serverStatsJson,
  type ControlRequest,
  type ControlRole,
} from '../../src/io/control.js';
import type { ClientStatus, PeerInfo } from '../../src/teredo/client.js';
import { PeerList } from '../../src/teredo/peers.js';

import { v4, v6 } from '../addresses.js';
import { QUALIFIED_STATUS } from '../teredo/fixtures.js';

const STATUS: ClientStatus = QUALIFIED_STATUS;

const PEERS: PeerInfo[] = [
  { address: v6('2001:0:c633:6401:0:e9f6:34ff:8efe'), trusted: true, teredo: true, endpoint: { addr: v4('203.0.113.17'), port: 5641 }, local: undefined, lastRx: 98_800, lastTx: 99_150, queued: 0 },
  { address: v6('2001:db8:1::10'), trusted: false, teredo: false, endpoint: undefined, local: undefined, lastRx: 70_000, lastTx: 99_500, queued: 2 },
];

const STATS = {
  role: 'client',
  events: { 'bytes-from-tunnel': 1040, 'packets-from-tunnel': 10, 'router-solicitations': 6, 'router-advertisements': 6, 'indirect-bubbles-sent': 2, 'custom-thing': 1 },
  drops: { 'ra-nonce-mismatch': 1, 'not-for-us': 7 },
  peers: 2,
  queuedBytes: 208,
  io: { 'udp:tx:EMSGSIZE': 1 },
};

/** A client daemon's handler with canned answers, at the daemon's time 100 s. */
function clientHandler({ cmd, args }: ControlRequest): unknown {
  const now = 100_000;
  if (cmd === 'state') return clientStateJson(STATUS, { now, startedAt: 0, serverName: 'teredo.example.net', interfaceName: 'teredo', pid: 4242, dataPath: 'fast path; GRO into the tunnel (TCP and UDP), UDP GSO and GRO' });
  if (cmd === 'peers') return clientPeersJson(PEERS, now, args);
  if (cmd === 'stats') return STATS;
  throw new Error(`unknown command '${cmd}'`);
}

interface Run {
  code: number;
  out: string;
  err: string;
}

/** Like src/cli/main.ts: usage and config errors are exit 2, anything else exit 1, one line on stderr. */
async function run(runDir: string, ...argv: string[]): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = { out: (t) => out.push(t), err: (t) => err.push(t) };
  let code: number;
  try {
    code = await teredoShowCommand(argv, io, { runDir });
  } catch (e) {
    io.err(`transit6 teredo: ${(e as Error).message.split('\n')[0]}`);
    code = e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') ? EXIT_USAGE : 1;
  }
  return { code, out: out.join('\n'), err: err.join('\n') };
}

async function withDaemons<T>(roles: [ControlRole, (r: ControlRequest) => unknown][], body: (runDir: string) => Promise<T>): Promise<T> {
  const runDir = mkdtempSync(join(tmpdir(), 't6-show-'));
  const servers = roles.map(([role, h]) => new ControlServer(defaultControlPath(role, runDir), h, { runDir }));
  try {
    for (const s of servers) await s.listen();
    return await body(runDir);
  } finally {
    for (const s of servers) await s.close();
    rmSync(runDir, { recursive: true, force: true });
  }
}

const EXPECTED_CLIENT_STATE = `Teredo Parameters
---------------------------------------------
Type                    : client
Server Name             : teredo.example.net (198.51.100.1, secondary 198.51.100.2)
Client Refresh Interval : 15-21 seconds (randomized, below the NAT's UDP timeout)
Client Port             : 50000
State                   : qualified
Client Type             : teredo client
Network                 : unmanaged
NAT                     : port-restricted
NAT Special Behaviour   : UPNP: No, PortPreserving: No
Local Mapping           : 192.168.1.10:50000
External Mapping        : 203.0.113.1:20001
Teredo Address          : 2001:0:c633:6401:104e:b1de:34ff:8efe
MTU                     : 1280
Address Changes         : 0
Last Server Contact     : 5.0 s ago
Interface               : teredo
Data Path               : fast path; GRO into the tunnel (TCP and UDP), UDP GSO and GRO
Process                 : 4242, up 1 min 40 s`;

test('show state: the netsh block for a client, from the only daemon in the namespace', async () => {
  await withDaemons([['client', clientHandler]], async (runDir) => {
    const r = await run(runDir, 'state');
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, EXPECTED_CLIENT_STATE);
    const j = await run(runDir, 'state', '--json');
    assert.deepEqual(JSON.parse(j.out), JSON.parse(JSON.stringify(clientHandler({ cmd: 'state' }))));
  });
});

test('the daemon block starts with exactly what formatClientState (sim qualify) prints', () => {
  const base = formatClientState(STATUS);
  const full = formatClientStateJson(clientStateJson(STATUS, { now: 100_000, pid: 1 }));
  assert.ok(full.startsWith(`${base}\n`), full);
  assert.match(base, /Server Name\s+: 198\.51\.100\.1 \(secondary 198\.51\.100\.2\)/);
  assert.doesNotMatch(base, /Last Server Contact|Process|Interface/);
  const offline = formatClientState({ ...STATUS, state: 'offline', reason: 'server-unreachable', natDetection: 'running', teredoAddress: undefined, externalMapping: undefined, portPreserving: undefined });
  assert.match(offline, /State\s+: offline \(server-unreachable\)/);
  assert.match(offline, /NAT\s+: detecting\.\.\./);
  assert.match(offline, /External Mapping\s+: unknown/);
  assert.match(offline, /Teredo Address\s+: none/);
  assert.match(offline, /PortPreserving: unknown/);
});

test('show peers: a table, most recent first; --limit', async () => {
  await withDaemons([['client', clientHandler]], async (runDir) => {
    const r = await run(runDir, 'peers');
    assert.equal(r.code, 0, r.err);
    assert.equal(
      r.out,
      [
        'Address                            Trusted  Endpoint           Local  Last Rx  Last Tx  Queued',
        '2001:db8:1::10                     no       -                  -       30.0 s   500 ms       2',
        '2001:0:c633:6401:0:e9f6:34ff:8efe  yes      203.0.113.17:5641  -        1.2 s   850 ms       0',
        '',
        '2 peer(s), 1 trusted',
      ].join('\n'),
    );
    const limited = await run(runDir, 'peers', '--limit', '1');
    assert.match(limited.out, /1 most recently active of 2 peers shown/);
    const j = JSON.parse((await run(runDir, 'peers', '--json')).out);
    assert.equal(j.total, 2);
    assert.equal(j.peers[1].endpoint, '203.0.113.17:5641');
  });
  assert.equal(formatPeersJson({ role: 'relay', total: 0, truncated: false, peers: [] }), 'no peers (relay)');
});

test('show stats: events in reading order, drops by count, adapters', async () => {
  await withDaemons([['client', clientHandler]], async (runDir) => {
    const r = await run(runDir, 'stats');
    assert.equal(r.code, 0, r.err);
    assert.equal(
      r.out,
      [
        'Teredo client statistics',
        '',
        'Events',
        '  router-solicitations      6',
        '  router-advertisements     6',
        '  indirect-bubbles-sent     2',
        '  packets-from-tunnel      10',
        '  bytes-from-tunnel      1040',
        '  custom-thing              1',
        '',
        'Drops by reason (8 in all)',
        '  not-for-us         7',
        '  ra-nonce-mismatch  1',
        '',
        'Peers: 2, 208 bytes queued',
        '',
        'Sockets and tunnel',
        '  udp:tx:EMSGSIZE  1',
      ].join('\n'),
    );
    assert.deepEqual(JSON.parse((await run(runDir, 'stats', '--json')).out), STATS);
  });
  assert.match(formatStatsJson(serverStatsJson({ events: {}, drops: {} })), /Events\n {2}\(none\)\n\nDrops by reason \(0 in all\)\n {2}\(none\)$/);
});

test('relay and server state blocks; --role picks among several daemons', async () => {
  const list = new PeerList();
  list.create(v6('2001:0:c633:6401:0:e9f6:34ff:8efe'), 0).trusted = true;
  const relay = (r: ControlRequest) =>
    r.cmd === 'state' ? relayStateJson(list, { relayType: 'relay', local: { addr: v4('198.51.100.17'), port: 3545 }, interfaceName: 'teredo', mtu: 1280 }) : null;
  const server = (r: ControlRequest) =>
    r.cmd === 'state' ? serverStateJson({ primary: v4('198.51.100.1'), secondary: v4('198.51.100.2') }, { events: { 'router-solicitations': 3, 'router-advertisements': 3 } }) : null;
  await withDaemons([['relay', relay], ['server', server]], async (runDir) => {
    const ambiguous = await run(runDir, 'state');
    assert.equal(ambiguous.code, EXIT_USAGE);
    assert.equal(ambiguous.err, 'transit6 teredo: several transit6 teredo daemons run in this network namespace (relay, server): choose one with --role');
    const r = await run(runDir, 'state', '--role', 'relay');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^Teredo Parameters\n-+\nType\s+: relay\n/);
    assert.match(r.out, /Relay Type\s+: relay \(indirect bubbles only\)/);
    assert.match(r.out, /Local Endpoint\s+: 198\.51\.100\.17:3545/);
    assert.match(r.out, /Prefix\s+: 2001::\/32/);
    assert.match(r.out, /Peers\s+: 1 \(1 trusted\)/);
    assert.match(r.out, /Interface\s+: teredo/);
    const s = await run(runDir, 'state', '--role', 'server');
    assert.match(s.out, /Type\s+: server/);
    assert.match(s.out, /Primary Address\s+: 198\.51\.100\.1:3544/);
    assert.match(s.out, /Secondary Address\s+: 198\.51\.100\.2:3544/);
    assert.match(s.out, /NAT Probe Port\s+: none \(plain server, as Miredo\)/);
    assert.match(s.out, /Client Prefix\s+: 2001:0:c633:6401::\/64/);
    assert.match(s.out, /Router Solicitations\s+: 3/);
    const missing = await run(runDir, 'state', '--role', 'client');
    assert.equal(missing.code, 1);
    assert.match(missing.err, /^transit6 teredo: no transit6 teredo client is running in this network namespace \(no control socket at .*teredo-client\.sock\)$/);
  });
});

test('a stale socket beside a live one does not make the choice ambiguous; --control names a socket', async () => {
  await withDaemons([['client', clientHandler]], async (runDir) => {
    const stale = defaultControlPath('relay', runDir);
    spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    const r = await run(runDir, 'state');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /Type\s+: client/);
    const c = await run('/nonexistent', 'stats', '--control', defaultControlPath('client', runDir));
    assert.equal(c.code, 0, c.err);
    assert.match(c.out, /^Teredo client statistics/);
  });
});

test('no daemon at all; usage errors', async () => {
  const runDir = mkdtempSync(join(tmpdir(), 't6-show-'));
  try {
    const none = await run(runDir, 'state');
    assert.equal(none.code, 1);
    assert.match(none.err, /^transit6 teredo: no transit6 teredo daemon is running in this network namespace \(no control socket in .*netns-\d+\)$/);
    const cases: [string[], RegExp][] = [
      [[], /what to show: state, peers, stats/],
      [['everything'], /unknown view 'everything'/],
      [['state', 'peers'], /one view at a time/],
      [['state', '--role', 'router'], /--role 'router' is not one of client, relay, server/],
      [['state', '--limit', '5'], /--limit goes with show peers/],
      [['peers', '--limit', 'x'], /--limit wants a whole number/],
      [['state', '--timeout', '0'], /--timeout wants seconds/],
      [['state', '--bogus'], /Unknown option '--bogus'/],
    ];
    for (const [argv, re] of cases) {
      const r = await run(runDir, ...argv);
      assert.equal(r.code, EXIT_USAGE, argv.join(' '));
      assert.match(r.err, re);
      assert.equal(r.err.split('\n').length, 1);
    }
    assert.equal((await run(runDir, '--help')).code, 0);
    assert.match((await run(runDir, '--help')).out, /usage: transit6 teredo show state\|peers\|stats/);
    assert.equal((await run(runDir)).code, EXIT_USAGE);
  } finally {
    rmSync(runDir, { recursive: true, force: true });
  }
});

test('an answer of the wrong shape is a clear error, not a crash', async () => {
  await withDaemons([['client', () => ({ role: 'client' })]], async (runDir) => {
    await assert.rejects(teredoShowCommand(['peers'], { out: () => {}, err: () => {} }, { runDir }), (e: unknown) => e instanceof ControlError && /the daemon's 'peers' answer is not a peer table: try --json/.test(e.message));
  });
});

test('ago() across the ranges', () => {
  assert.deepEqual([0, 999, 1000, 59_949, 60_000, 3_599_000, 3_600_000, 90_061_000].map(ago), ['0 ms', '999 ms', '1.0 s', '59.9 s', '1 min 00 s', '59 min 59 s', '1 h 00 min', '1 d 01 h']);
});
