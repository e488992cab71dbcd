/** The proxy over loopback (127.0.0.1 and ::1; no root needed): all four modes, half-close, backpressure, live
 *  changes, limit, idle timeout, ACL, PROXY protocol, family-bound name resolution. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { createLogger } from '../../src/io/log.js';
import { defaultResolver, PortProxy, type Resolver } from '../../src/io/portproxy/proxy.js';
import { parseProxyHeader } from '../../src/portproxy/proxyheader.js';
import { MODES, parseRuleArgs, ruleFromSpec, type Mode, type Rule } from '../../src/portproxy/rules.js';
import { backend, dial, dialAndRead, echo, freePort, payload, readAll, sha256, until } from './helpers.js';

const LOOP: Record<4 | 6, string> = { 4: '127.0.0.1', 6: '::1' };
const lf = (m: Mode): 4 | 6 => (m.startsWith('v4') ? 4 : 6);
const cf = (m: Mode): 4 | 6 => (m.endsWith('v4') ? 4 : 6);

const quiet = createLogger('portproxy-test', { level: 'error', write: () => undefined });

function mkRule(mode: Mode, listenPort: number, connectPort: number, extra: string[] = [], connectAddress = LOOP[cf(mode)]): Rule {
  return ruleFromSpec(parseRuleArgs('add', mode, [`listenport=${listenPort}`, `listenaddress=${LOOP[lf(mode)]}`, `connectaddress=${connectAddress}`, `connectport=${connectPort}`, ...extra]));
}

async function withProxy(fn: (p: PortProxy) => Promise<void>, resolve?: Resolver): Promise<void> {
  const p = new PortProxy({ log: quiet, retryMs: 0, ...(resolve ? { resolve } : {}) });
  try {
    await fn(p);
  } finally {
    await p.close();
  }
}

const counters = (p: PortProxy, i = 0): Record<string, number> => p.stats()[i]!.counters;

for (const mode of MODES) {
  test(`${mode}: 1 MiB each way intact, the target sees the target family, half-close carries data after FIN`, async () => {
    const be = await backend(LOOP[cf(mode)], echo);
    await withProxy(async (p) => {
      const port = await freePort(LOOP[lf(mode)]);
      const r = await p.apply([mkRule(mode, port, be.port)]);
      assert.deepEqual(r.failed, []);
      const c = await dial(LOOP[lf(mode)], port);
      const data = payload(1 << 20);
      const got = readAll(c);
      c.end(data); // our FIN goes right after the data: the echo must still come back
      const res = await got;
      assert.equal(res.ended, true, 'the proxy passed the backend FIN on');
      assert.equal(res.error, undefined);
      assert.equal(res.data.length, data.length);
      assert.equal(sha256(res.data), sha256(data));
      assert.equal(be.peers.length, 1);
      assert.equal(be.peers[0], LOOP[cf(mode)]);
      await until(() => p.stats()[0]!.active === 0, 'the connection to be closed');
      const k = counters(p);
      assert.equal(k.accepted, 1);
      assert.equal(k.closed, 1);
      assert.equal(k['bytes-to-target'], data.length);
      assert.equal(k['bytes-to-client'], data.length);
    });
    await be.close();
  });
}

test('half-close the other way: the target ends first, the client keeps sending and the target receives it', async () => {
  let received: Promise<Buffer> | undefined;
  const be = await backend('::1', (s) => {
    s.end('bye');
    received = new Promise((resolve) => {
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('end', () => resolve(Buffer.concat(chunks)));
    });
  });
  await withProxy(async (p) => {
    const port = await freePort('127.0.0.1');
    await p.apply([mkRule('v4tov6', port, be.port)]);
    const c = await dial('127.0.0.1', port);
    const chunks: Buffer[] = [];
    c.on('data', (d: Buffer) => chunks.push(d));
    await new Promise((r) => c.once('end', r));
    assert.equal(Buffer.concat(chunks).toString(), 'bye');
    // Our direction is still open through the proxy.
    c.end('still here after your FIN');
    await until(() => received !== undefined, 'the backend connection');
    assert.equal((await received!).toString(), 'still here after your FIN');
  });
  await be.close();
});

test('backpressure: a client that does not read stops the proxy reading; buffers stay small; nothing is lost', async () => {
  const total = 64 << 20;
  const data = payload(1 << 20);
  let written = 0;
  let stalled = false;
  const be = await backend('127.0.0.1', (s) => {
    const pump = (): void => {
      while (written < total) {
        written += data.length;
        if (!s.write(data)) {
          stalled = true;
          s.once('drain', () => {
            stalled = false;
            pump();
          });
          return;
        }
      }
      s.end();
    };
    pump();
  });
  await withProxy(async (p) => {
    const port = await freePort('::1');
    await p.apply([mkRule('v6tov4', port, be.port)]);
    const c = await dial('::1', port);
    c.pause();
    // Wait until the backend can write no more: the whole path is full.
    let last = -1;
    let sameFor = 0;
    while (sameFor < 20) {
      await new Promise((r) => setTimeout(r, 25));
      sameFor = stalled && written === last ? sameFor + 1 : 0;
      last = written;
    }
    const buffered = p.stats()[0]!.bufferedBytes;
    assert.ok(written < total, `the backend was held back (wrote ${written} of ${total})`);
    assert.ok(buffered <= 1 << 20, `the proxy holds ${buffered} bytes for a client that does not read (bound: 1 MiB)`);
    // Now read: everything arrives, in order.
    const hash = (await import('node:crypto')).createHash('sha256');
    let n = 0;
    c.on('data', (d: Buffer) => {
      n += d.length;
      hash.update(d);
    });
    c.resume();
    await new Promise((r) => c.once('end', r));
    assert.equal(n, total);
    const expect = (await import('node:crypto')).createHash('sha256');
    for (let i = 0; i < total / data.length; i++) expect.update(data);
    assert.equal(hash.digest('hex'), expect.digest('hex'));
  });
  await be.close();
});

test('live apply: a changed rule keeps its open connection on the old target; a deleted rule stops listening but lets it finish', async () => {
  const conns: Socket[] = [];
  const a = await backend('127.0.0.1', (s) => {
    conns.push(s);
    s.pipe(s);
  });
  const b = await backend('127.0.0.1', (s) => s.end('B'));
  await withProxy(async (p) => {
    const port = await freePort('::1');
    await p.apply([mkRule('v6tov4', port, a.port)]);
    const c1 = await dial('::1', port);
    const got1 = readAll(c1);
    const part1 = payload(300_000);
    c1.write(part1);
    await until(() => conns.length === 1, 'backend A to accept');
    // Mid-transfer: the rule now points at B.
    const r = await p.apply([mkRule('v6tov4', port, b.port)]);
    assert.equal(r.changed.length, 1);
    const c2 = await dial('::1', port);
    assert.equal((await readAll(c2)).data.toString(), 'B', 'new connections go to the new target');
    // Mid-transfer again: the rule is deleted.
    const d = await p.apply([]);
    assert.equal(d.removed.length, 1);
    await assert.rejects(dial('::1', port), /ECONNREFUSED/, 'a deleted rule no longer listens');
    assert.equal(p.stats().length, 1, 'the draining listener is still reported');
    assert.equal(p.stats()[0]!.status, 'draining');
    const part2 = payload(300_000);
    c1.end(part2);
    const res = await got1;
    assert.equal(sha256(res.data), sha256(Buffer.concat([part1, part2])), 'the open transfer went on to A, intact');
    assert.equal(res.ended, true);
    await until(() => p.stats().length === 0, 'the draining listener to go once its connection closed');
  });
  await a.close();
  await b.close();
});

test('connection limit: the connection over the limit is reset and counted; a slot frees when one closes', async () => {
  const be = await backend('::1', echo);
  await withProxy(async (p) => {
    const port = await freePort('::1');
    await p.apply([mkRule('v6tov6', port, be.port, ['limit=2'])]);
    const c1 = await dial('::1', port);
    const c2 = await dial('::1', port);
    await until(() => p.stats()[0]!.active === 2, 'two connections');
    const r3 = await dialAndRead('::1', port);
    assert.equal(r3.data.length, 0);
    assert.equal(r3.error, 'ECONNRESET');
    assert.equal(counters(p)['rejected-limit'], 1);
    c1.end();
    await readAll(c1);
    await until(() => p.stats()[0]!.active === 1, 'a slot to free');
    const c4 = await dial('::1', port);
    const got = readAll(c4);
    c4.end('ok');
    assert.equal((await got).data.toString(), 'ok');
    c2.destroy();
  });
  await be.close();
});

test('source acl: a client outside it is reset; one inside it is proxied', async () => {
  const be = await backend('127.0.0.1', echo);
  await withProxy(async (p) => {
    const port = await freePort('127.0.0.1');
    await p.apply([mkRule('v4tov4', port, be.port, ['acl=198.51.100.0/24'])]);
    const r = await dialAndRead('127.0.0.1', port);
    assert.equal(r.error, 'ECONNRESET');
    assert.equal(counters(p)['rejected-acl'], 1);
    assert.equal(be.peers.length, 0, 'the target never saw the refused client');
    await p.apply([mkRule('v4tov4', port, be.port, ['acl=198.51.100.0/24,127.0.0.0/8'])]);
    const c2 = await dial('127.0.0.1', port);
    const got = readAll(c2);
    c2.end('in');
    assert.equal((await got).data.toString(), 'in');
  });
  await be.close();
});

test('idle timeout: a silent connection is closed and counted; a busy one is not', async () => {
  const be = await backend('::1', echo);
  await withProxy(async (p) => {
    const port = await freePort('127.0.0.1');
    await p.apply([mkRule('v4tov6', port, be.port, ['idle=1'])]);
    const c = await dial('127.0.0.1', port);
    const got = readAll(c);
    c.write('x');
    const res = await got;
    assert.equal(res.data.toString(), 'x');
    assert.equal(counters(p)['idle-timeout'], 1);
    // Traffic every 250 ms for 2 s keeps a connection with idle=1 open.
    const busy = await dial('127.0.0.1', port);
    const busyGot = readAll(busy);
    for (let i = 0; i < 8; i++) {
      busy.write('y');
      await new Promise((r) => setTimeout(r, 250));
    }
    busy.end();
    const b = await busyGot;
    assert.equal(b.data.toString(), 'yyyyyyyy');
    assert.equal(b.ended, true);
    assert.equal(counters(p)['idle-timeout'], 1);
  });
  await be.close();
});

for (const version of ['v1', 'v2'] as const) {
  test(`PROXY protocol ${version}: the target learns the client's address and port and the proxy's address`, async () => {
    let header: Buffer | undefined;
    const be = await backend('::1', (s) => {
      s.once('data', (d: Buffer) => {
        header = d;
        s.end();
      });
    });
    await withProxy(async (p) => {
      const port = await freePort('127.0.0.1');
      await p.apply([mkRule('v4tov6', port, be.port, [`proxy=${version}`])]);
      const c = await dial('127.0.0.1', port);
      const clientPort = c.localPort;
      c.write('payload');
      await readAll(c);
      const h = parseProxyHeader(header!);
      assert.ok(h.ok, 'a PROXY header first');
      assert.equal(h.version, version === 'v1' ? 1 : 2);
      assert.deepEqual(h.conn, { sourceAddress: '127.0.0.1', sourcePort: clientPort, destAddress: '127.0.0.1', destPort: port });
    });
    await be.close();
  });
}

test('names are resolved in the rule family only (v4tov6 asks for AAAA); a name that does not resolve resets the client', async () => {
  const asked: [string, number][] = [];
  const resolve: Resolver = async (host, family) => {
    asked.push([host, family]);
    if (host === 'v6only.example') return family === 6 ? '::1' : Promise.reject(Object.assign(new Error('no A record'), { code: 'ENOTFOUND' }));
    throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
  };
  const be = await backend('::1', echo);
  await withProxy(async (p) => {
    const port = await freePort('127.0.0.1');
    await p.apply([mkRule('v4tov6', port, be.port, [], 'v6only.example')]);
    const c = await dial('127.0.0.1', port);
    const got = readAll(c);
    c.end('hi');
    assert.equal((await got).data.toString(), 'hi');
    assert.deepEqual(asked, [['v6only.example', 6]]);
    await p.apply([mkRule('v4tov6', port, be.port, [], 'nowhere.example')]);
    const r = await dialAndRead('127.0.0.1', port);
    assert.equal(r.error, 'ECONNRESET');
    assert.equal(counters(p)['resolve-failed'], 1);
  }, resolve);
  await be.close();
});

test('a target that refuses: the client is reset and connect-failed counted; a port in use: the rule is reported failed', async () => {
  await withProxy(async (p) => {
    const port = await freePort('127.0.0.1');
    const dead = await freePort('127.0.0.1');
    await p.apply([mkRule('v4tov4', port, dead)]);
    const r = await dialAndRead('127.0.0.1', port);
    assert.equal(r.error, 'ECONNRESET');
    assert.equal(counters(p)['connect-failed'], 1);
    const busy = await backend('::1', echo);
    const rep = await p.apply([mkRule('v4tov4', port, dead), mkRule('v6tov6', busy.port, dead)]);
    assert.equal(rep.failed.length, 1);
    assert.match(rep.failed[0]!.error, /EADDRINUSE/);
    assert.equal(p.stats().find((s) => s.mode === 'v6tov6')!.status, 'failed');
    await busy.close();
  });
});

test('the default resolver asks getaddrinfo for the given family only', async () => {
  assert.equal(await defaultResolver('localhost', 4), '127.0.0.1');
  await assert.rejects(defaultResolver('no-such-host.invalid', 6));
});

test('a host name as listenaddress is resolved in the listening family and bound', async () => {
  const be = await backend('::1', echo);
  await withProxy(async (p) => {
    const port = await freePort('127.0.0.1');
    const rule = ruleFromSpec(parseRuleArgs('add', 'v4tov6', [`listenport=${port}`, 'listenaddress=localhost', `connectport=${be.port}`]));
    assert.deepEqual((await p.apply([rule])).failed, []);
    assert.deepEqual(p.stats()[0]!.bound, { address: '127.0.0.1', port });
    const c = await dial('127.0.0.1', port);
    const got = readAll(c);
    c.end('named');
    assert.equal((await got).data.toString(), 'named');
  });
  await be.close();
});

test('a reset from the target reaches the client as a reset, not as a clean end', async () => {
  const be = await backend('127.0.0.1', (s) => {
    s.write('partial');
    setTimeout(() => s.resetAndDestroy(), 50);
  });
  await withProxy(async (p) => {
    const port = await freePort('::1');
    await p.apply([mkRule('v6tov4', port, be.port)]);
    const r = await dialAndRead('::1', port);
    assert.equal(r.data.toString(), 'partial');
    assert.equal(r.ended, false);
    assert.equal(r.error, 'ECONNRESET');
    await until(() => p.stats()[0]!.active === 0, 'the connection to go');
    assert.equal(counters(p).reset, 1);
  });
  await be.close();
});
