// The control socket: round trips, malformed and oversized requests, stale sockets, a second daemon, time-outs,
// permissions, and the JSON converters the daemons answer with. Unprivileged except the parts that need root to
// arrange (another user's directory, a non-root client), which skip otherwise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Counters } from '../../src/core/counters.js';
import {
  clientPeersJson,
  clientStateJson,
  clientStatsJson,
  controlDir,
  ControlError,
  controlRequest,
  ControlServer,
  defaultControlPath,
  findControlSockets,
  MAX_REQUEST_BYTES,
  netnsInode,
  peersJson,
  relayPeersJson,
  relayStateJson,
  relayStatsJson,
  roleFromPath,
  serverStateJson,
  serverStatsJson,
  type ControlRequest,
} from '../../src/io/control.js';
import type { ClientStatus, PeerInfo } from '../../src/teredo/client.js';
import { PeerList } from '../../src/teredo/peers.js';

import { v4, v6 } from '../addresses.js';
import { QUALIFIED_STATUS } from '../teredo/fixtures.js';

const isRoot = process.getuid?.() === 0;

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 't6-ctl-'));
}

async function withServer<T>(
  path: string,
  handler: (r: ControlRequest) => unknown,
  body: (s: ControlServer) => Promise<T>,
  options: ConstructorParameters<typeof ControlServer>[2] = {},
): Promise<T> {
  const s = new ControlServer(path, handler, options);
  await s.listen();
  try {
    return await body(s);
  } finally {
    await s.close();
  }
}

/** Writes raw bytes on one connection and collects `n` response lines (or whatever arrives before the close). */
function rawExchange(path: string, data: string | Buffer, n: number): Promise<{ lines: unknown[]; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const s = createConnection(path);
    let buf = '';
    const lines: unknown[] = [];
    let closed = false;
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ lines, closed });
    }, 3000);
    s.on('connect', () => s.write(data));
    s.on('data', (d) => {
      buf += d.toString('utf8');
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        lines.push(JSON.parse(buf.slice(0, nl)));
        buf = buf.slice(nl + 1);
      }
      if (lines.length >= n) {
        clearTimeout(timer);
        s.destroy();
        resolve({ lines, closed });
      }
    });
    s.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE' && e.code !== 'ECONNRESET') reject(e);
    });
    s.on('close', () => {
      closed = true;
      clearTimeout(timer);
      resolve({ lines, closed });
    });
  });
}

test('round trip: a request, the result, socket 0600 in a new 0700 directory', async () => {
  const dir = tempDir();
  const path = join(dir, 'sub', 'teredo-client.sock');
  try {
    await withServer(
      path,
      async ({ cmd, args }) => {
        if (cmd === 'echo') return { args: args ?? null };
        if (cmd === 'nothing') return undefined;
        throw new Error(`unknown command '${cmd}'`);
      },
      async () => {
        assert.equal(lstatSync(path).mode & 0o777, 0o600);
        assert.ok(lstatSync(path).isSocket());
        assert.equal(statSync(join(dir, 'sub')).mode & 0o777, 0o700);
        assert.deepEqual(await controlRequest(path, 'echo', { a: [1, 'b'] }), { args: { a: [1, 'b'] } });
        assert.deepEqual(await controlRequest(path, 'echo'), { args: null });
        assert.equal(await controlRequest(path, 'nothing'), null);
        const ping = (await controlRequest(path, 'ping')) as { pong: boolean; pid: number; role: string };
        assert.deepEqual(ping, { pong: true, pid: process.pid, role: 'client' });
        await assert.rejects(controlRequest(path, 'bogus'), (e: unknown) => e instanceof ControlError && e.code === 'remote' && e.message === "transit6 teredo client: unknown command 'bogus'");
      },
    );
    assert.equal(existsSync(path), false, 'close() removes the socket file');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('malformed requests get error answers on the same connection, in order, and never crash the server', async () => {
  const dir = tempDir();
  const path = join(dir, 'c.sock');
  try {
    await withServer(path, ({ cmd }) => ({ cmd, big: cmd === 'bigint' ? 1n : 0 }), async () => {
      const { lines, closed } = await rawExchange(path, 'not json\n{}\n{"cmd": 5}\n[]\n{"cmd":"x","args":[1]}\n\n{"cmd":"bigint"}\n{"cmd":"ok"}\n', 7);
      assert.equal(closed, false);
      const errors = lines.slice(0, 6).map((l) => (l as { ok: boolean; error: string }).error);
      assert.match(errors[0]!, /^malformed request: not JSON/);
      assert.match(errors[1]!, /^malformed request: want \{"cmd"/);
      assert.match(errors[2]!, /^malformed request/);
      assert.match(errors[3]!, /^malformed request/);
      assert.equal(errors[4], 'malformed request: "args" must be an object');
      assert.match(errors[5]!, /^the answer could not be encoded as JSON/);
      assert.deepEqual(lines[6], { ok: true, result: { cmd: 'ok', big: 0 } });
      assert.deepEqual(await controlRequest(path, 'after'), { cmd: 'after', big: 0 });
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('pipelined requests are answered in order even when the handler finishes them out of order', async () => {
  const dir = tempDir();
  const path = join(dir, 'c.sock');
  try {
    const handler = async ({ cmd }: ControlRequest) => {
      await new Promise((r) => setTimeout(r, cmd === 'slow' ? 50 : 0));
      return cmd;
    };
    await withServer(path, handler, async () => {
      const { lines } = await rawExchange(path, '{"cmd":"slow"}\n{"cmd":"fast"}\n', 2);
      assert.deepEqual(lines, [
        { ok: true, result: 'slow' },
        { ok: true, result: 'fast' },
      ]);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an oversized request is refused and the connection closed; the server goes on', async () => {
  const dir = tempDir();
  const path = join(dir, 'c.sock');
  try {
    await withServer(path, ({ cmd }) => cmd, async () => {
      // No newline at all: refused as soon as the limit is passed.
      const a = await rawExchange(path, Buffer.alloc(MAX_REQUEST_BYTES + 10, 0x61), 1);
      assert.deepEqual(a.lines, [{ ok: false, error: `request too large (the limit is ${MAX_REQUEST_BYTES} bytes)` }]);
      // A complete but too long line, after a good request on the same connection.
      const long = `{"cmd":"ok"}\n{"cmd":"x","args":{"pad":"${'p'.repeat(MAX_REQUEST_BYTES)}"}}\n`;
      const b = await rawExchange(path, long, 3);
      assert.equal(b.lines.length, 2);
      assert.deepEqual(b.lines[0], { ok: true, result: 'ok' });
      assert.match((b.lines[1] as { error: string }).error, /^request too large/);
      assert.equal(b.closed, true);
      assert.equal(await controlRequest(path, 'still-here'), 'still-here');
      // The client refuses to send one too.
      await assert.rejects(controlRequest(path, 'x', { pad: 'p'.repeat(MAX_REQUEST_BYTES) }), /request too large/);
    }, { maxRequestBytes: MAX_REQUEST_BYTES });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a stale socket file (its daemon was killed) is replaced', async () => {
  const dir = tempDir();
  const path = join(dir, 'teredo-relay.sock');
  try {
    // A process that binds the path and dies without cleaning up.
    const script = `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`;
    spawnSync(process.execPath, ['-e', script]);
    assert.ok(lstatSync(path).isSocket(), 'the dead daemon left its socket');
    await assert.rejects(controlRequest(path, 'state'), (e: unknown) =>
      e instanceof ControlError && e.code === 'stale' && e.message === `no transit6 teredo relay is running in this network namespace (stale control socket at ${path}: nothing answers)`);
    await withServer(path, () => 'fresh', async () => {
      assert.equal(await controlRequest(path, 'state'), 'fresh');
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a second daemon on the same socket is refused while the first answers; the first keeps its socket', async () => {
  const dir = tempDir();
  const path = join(dir, 'teredo-client.sock');
  try {
    await withServer(path, () => 'first', async () => {
      const second = new ControlServer(path, () => 'second');
      await assert.rejects(second.listen(), (e: unknown) =>
        e instanceof ControlError && e.code === 'in-use' && e.message === `a transit6 teredo client is already running in this network namespace (control socket ${path})`);
      await second.close();
      assert.equal(await controlRequest(path, 'x'), 'first');
    });
    // Named by role when the path does not say it.
    const other = join(dir, 'ctl');
    await withServer(other, () => 1, async () => {
      await assert.rejects(new ControlServer(other, () => 2, { role: 'server' }).listen(), /: a transit6 teredo server is already running in this network namespace \(control socket /);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a file that is not a socket is never replaced', async () => {
  const dir = tempDir();
  const path = join(dir, 'teredo-client.sock');
  try {
    writeFileSync(path, 'precious');
    await assert.rejects(new ControlServer(path, () => 1).listen(), (e: unknown) => e instanceof ControlError && e.code === 'unsafe' && /exists and is not a socket/.test(e.message));
    assert.ok(lstatSync(path).isFile());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('no daemon, a daemon that does not answer in time', async () => {
  const dir = tempDir();
  const path = join(dir, 'teredo-client.sock');
  try {
    await assert.rejects(controlRequest(path, 'state'), (e: unknown) =>
      e instanceof ControlError && e.code === 'no-daemon' && e.message === `no transit6 teredo client is running in this network namespace (no control socket at ${path})`);
    await withServer(path, () => new Promise(() => {}), async () => {
      const t0 = Date.now();
      await assert.rejects(controlRequest(path, 'state', undefined, 200), (e: unknown) =>
        e instanceof ControlError && e.code === 'timeout' && e.message === `the transit6 teredo client did not answer within 0.2 s (control socket ${path})`);
      assert.ok(Date.now() - t0 < 2000);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('close() is idempotent, leaves a newer daemon\'s socket alone, and the path can be reused', async () => {
  const dir = tempDir();
  const path = join(dir, 'c.sock');
  try {
    const a = new ControlServer(path, () => 'a');
    await a.listen();
    await a.close();
    await a.close();
    assert.equal(existsSync(path), false);
    await withServer(path, () => 'b', async () => {
      assert.equal(await controlRequest(path, 'x'), 'b');
      // A stale instance closing must not remove b's socket.
      await a.close();
      assert.ok(existsSync(path));
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('default paths are per network namespace; findControlSockets lists this namespace\'s sockets', async () => {
  const run = tempDir();
  try {
    const ino = netnsInode();
    assert.ok(ino > 0);
    assert.equal(controlDir(run), join(run, `netns-${ino}`));
    assert.equal(defaultControlPath('relay', run), join(run, `netns-${ino}`, 'teredo-relay.sock'));
    assert.equal(defaultControlPath('client'), `/run/transit6/netns-${ino}/teredo-client.sock`);
    assert.equal(roleFromPath('/x/teredo-server.sock'), 'server');
    assert.equal(roleFromPath('/x/other.sock'), undefined);
    assert.deepEqual(findControlSockets(undefined, run), []);
    const relay = defaultControlPath('relay', run);
    const client = defaultControlPath('client', run);
    await withServer(relay, () => 1, async () => {
      await withServer(client, () => 2, async () => {
        writeFileSync(join(controlDir(run), 'teredo-server.sock'), 'not a socket');
        writeFileSync(join(controlDir(run), 'notes.txt'), '');
        assert.deepEqual(findControlSockets(undefined, run), [
          { role: 'client', path: client },
          { role: 'relay', path: relay },
        ]);
        assert.deepEqual(findControlSockets('relay', run), [{ role: 'relay', path: relay }]);
        for (const d of [run, controlDir(run)]) assert.equal(statSync(d).mode & 0o777, 0o700, d);
      }, { runDir: run });
    }, { runDir: run });
  } finally {
    rmSync(run, { recursive: true, force: true });
  }
});

test('in the run directory tree, directories must be ours; loose modes are tightened', { skip: isRoot ? false : 'needs root to chown' }, async () => {
  const run = tempDir();
  try {
    const dir = controlDir(run);
    mkdirSync(dir, { recursive: true });
    chmodSync(dir, 0o755);
    await withServer(defaultControlPath('client', run), () => 1, async () => {
      assert.equal(statSync(dir).mode & 0o777, 0o700);
    }, { runDir: run });
    // The last daemon of a namespace takes its directory away when it closes.
    assert.equal(existsSync(dir), false);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chownSync(dir, 65534, 65534);
    await assert.rejects(new ControlServer(defaultControlPath('client', run), () => 1, { runDir: run }).listen(), (e: unknown) =>
      e instanceof ControlError && e.code === 'unsafe' && /belongs to uid 65534, not to us/.test(e.message));
  } finally {
    rmSync(run, { recursive: true, force: true });
  }
});

test('a non-root user is told to run as root', { skip: isRoot ? false : 'needs root to run a child as nobody' }, async () => {
  const run = tempDir();
  chmodSync(run, 0o755);
  const path = defaultControlPath('client', run);
  try {
    await withServer(path, () => 1, async () => {
      const mod = new URL('../../src/io/control.js', import.meta.url).href;
      const script = `import(${JSON.stringify(mod)}).then(async (m) => {
        try { await m.controlRequest(${JSON.stringify(path)}, 'state'); console.log('no error'); }
        catch (e) { console.log(e.code + ' ' + e.message); }
        try { m.findControlSockets(undefined, ${JSON.stringify(run)}); console.log('no error'); }
        catch (e) { console.log(e.code + ' ' + e.message); }
      })`;
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { uid: 65534, gid: 65534, cwd: '/' });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      await new Promise((r) => child.on('close', r));
      const lines = out.trim().split('\n');
      assert.equal(lines[0], `permission ${'permission denied: run as root'} (control socket ${path})`);
      assert.equal(lines[1], `permission permission denied: run as root (cannot read ${controlDir(run)})`);
    }, { runDir: run });
  } finally {
    rmSync(run, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------------------------------
// Converters

const QUALIFIED: ClientStatus = { ...QUALIFIED_STATUS, addressChanges: 1 };

test('clientStateJson: addresses as text, times as ago, daemon facts', () => {
  const j = clientStateJson(QUALIFIED, { now: 100_000, startedAt: 40_000, serverName: 'teredo.example.net', interfaceName: 'teredo', pid: 4242, interfaceStatus: 'pending', dataPath: 'fast path; offloads off' });
  assert.deepEqual(j, {
    role: 'client',
    state: 'qualified',
    reason: 'qualified',
    serverName: 'teredo.example.net',
    server: '198.51.100.1',
    server2: '198.51.100.2',
    clientPort: 50000,
    natType: 'port-restricted',
    natDetection: 'done',
    portFilteringKnown: true,
    portPreserving: false,
    localMapping: '192.168.1.10:50000',
    externalMapping: '203.0.113.1:20001',
    teredoAddress: '2001:0:c633:6401:104e:b1de:34ff:8efe',
    mtu: 1280,
    refreshIntervalMs: [15000, 21000],
    addressChanges: 1,
    lastServerContactAgoMs: 5000,
    interfaceStatus: 'pending',
    pid: 4242,
    uptimeMs: 60_000,
    interfaceName: 'teredo',
    dataPath: 'fast path; offloads off',
  });
  assert.deepEqual(JSON.parse(JSON.stringify(j)), j, 'JSON-safe');
  const offline = clientStateJson({ ...QUALIFIED, state: 'offline', reason: 'server-unreachable', localMapping: undefined, externalMapping: undefined, teredoAddress: undefined, portPreserving: undefined, lastServerContact: undefined });
  assert.equal(offline.localMapping, null);
  assert.equal(offline.teredoAddress, null);
  assert.equal(offline.portPreserving, null);
  assert.equal(offline.clientPort, null);
  assert.equal(offline.lastServerContactAgoMs, null);
  assert.equal(offline.interfaceStatus, null);
  assert.equal(offline.pid, null);
});

test('peers: most recently active first, limited, JSON-safe', () => {
  const peers: PeerInfo[] = [
    { address: v6('2001:0:c633:6401:0:e9f6:34ff:8efe'), trusted: true, teredo: true, endpoint: { addr: v4('203.0.113.17'), port: 5641 }, local: undefined, lastRx: 90_000, lastTx: 99_000, queued: 0 },
    { address: v6('2001:db8:1::10'), trusted: false, teredo: false, endpoint: undefined, local: undefined, lastRx: 70_000, lastTx: 99_500, queued: 2 },
    { address: v6('2001:0:c633:6401:0:ffff:34ff:8efe'), trusted: true, teredo: true, endpoint: { addr: v4('203.0.113.1'), port: 20002 }, local: { addr: v4('192.168.1.11'), port: 50001 }, lastRx: 10_000, lastTx: 10_000, queued: 0 },
  ];
  const j = clientPeersJson(peers, 100_000);
  assert.equal(j.role, 'client');
  assert.equal(j.total, 3);
  assert.equal(j.truncated, false);
  assert.deepEqual(j.peers.map((p) => p.address), ['2001:db8:1::10', '2001:0:c633:6401:0:e9f6:34ff:8efe', '2001:0:c633:6401:0:ffff:34ff:8efe']);
  assert.deepEqual(j.peers[2], {
    address: '2001:0:c633:6401:0:ffff:34ff:8efe', trusted: true, teredo: true, endpoint: '203.0.113.1:20002', local: '192.168.1.11:50001', lastRxAgoMs: 90_000, lastTxAgoMs: 90_000, queued: 0,
  });
  const limited = peersJson('client', peers, 100_000, { limit: 1 });
  assert.equal(limited.peers.length, 1);
  assert.equal(limited.truncated, true);
  assert.equal(peersJson('client', peers, 100_000, { limit: 0 }).peers.length, 3);
  assert.throws(() => peersJson('client', peers, 0, { limit: 'all' }), /'limit' must be a whole number/);
});

test('relay and server state and stats from the cores\' own objects', () => {
  const list = new PeerList();
  const a = list.create(v6('2001:0:c633:6401:0:e9f6:34ff:8efe'), 1000);
  a.trusted = true;
  a.mapped = { addr: v4('203.0.113.17'), port: 5641 };
  list.create(v6('2001:0:c633:6401:0:ffff:34ff:8efe'), 2000);
  const state = relayStateJson(list, { relayType: 'cone', local: { addr: v4('198.51.100.17'), port: 3545 }, interfaceName: 'teredo', now: 5000, startedAt: 0, pid: 7 });
  assert.deepEqual(state, {
    role: 'relay', state: 'online', relayType: 'cone', mode: 'relay', directBubbles: false, localEndpoint: '198.51.100.17:3545', prefix: '2001::/32', mtu: 1280, hostAddresses: [],
    peers: 2, trustedPeers: 1, queuedBytes: 0, pid: 7, uptimeMs: 5000, interfaceName: 'teredo', dataPath: null,
  });
  const host = relayStateJson(list, { relayType: 'restricted', hostAddresses: [v6('2001:db8:1::10')] });
  assert.equal(host.mode, 'host');
  assert.equal(host.directBubbles, true);
  assert.deepEqual(host.hostAddresses, ['2001:db8:1::10']);
  const peers = relayPeersJson(list, 32_000);
  assert.equal(peers.role, 'relay');
  assert.deepEqual(peers.peers.map((p) => [p.trusted, p.endpoint, p.lastRxAgoMs]), [[false, null, 60_000], [true, '203.0.113.17:5641', 61_000]]);
  assert.deepEqual(relayStatsJson({ events: { 'indirect-bubbles-sent': 3 }, drops: { 'unknown-peer': 2 }, peers: 2, queuedBytes: 0 }, { io: { 'tx:EMSGSIZE': 1 } }), {
    role: 'relay', events: { 'indirect-bubbles-sent': 3 }, drops: { 'unknown-peer': 2 }, peers: 2, queuedBytes: 0, io: { 'tx:EMSGSIZE': 1 },
  });
  const server = serverStateJson({ primary: v4('198.51.100.1'), secondary: v4('198.51.100.2'), probePort: 3546 }, { events: { 'router-solicitations': 9, 'router-advertisements': 11 } }, { pid: 1 });
  assert.deepEqual(server, {
    role: 'server', state: 'online', primary: '198.51.100.1', secondary: '198.51.100.2', port: 3544, probePort: 3546, clientPrefix: '2001:0:c633:6401::/64', mtu: 1280, forwardNative: true,
    routerSolicitations: 9, routerAdvertisements: 11, pid: 1, uptimeMs: null, interfaceName: null, dataPath: null,
  });
  assert.equal(serverStatsJson({ events: {}, drops: { 'non-global-source': 1 } }).peers, null);
  const events = new Counters();
  events.inc('router-solicitations', 4);
  const drops = new Counters();
  drops.inc('ra-nonce-mismatch');
  assert.deepEqual(clientStatsJson({ events, drops, peers: list }), { role: 'client', events: { 'router-solicitations': 4 }, drops: { 'ra-nonce-mismatch': 1 }, peers: 2, queuedBytes: 0, io: {} });
});
