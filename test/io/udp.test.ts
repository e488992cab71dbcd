/**
 * UdpBatchSocket and the native UDP/poll calls over loopback. Unprivileged: loopback accepts all of 127/8, so
 * per-packet source selection (IP_PKTINFO) is testable without configuring anything.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { UdpBatchSocket, type UdpBatch } from '../../src/io/udp.js';
import { loadNative } from '../../src/io/native.js';
import { parseIpv4 } from '../../src/wire/ip.js';

const LO = 0x7f000001;
const ip = (s: string): number => parseIpv4(s)!;

/** Resolves when `cond()` holds, checked after each received batch; rejects after `ms`. */
function collector(sock: UdpBatchSocket) {
  const got: { src: number; sport: number; dst: number; data: Uint8Array }[] = [];
  let wake: (() => void) | undefined;
  sock.onDatagrams((b: UdpBatch) => {
    for (let i = 0; i < b.count; i++) {
      got.push({ src: b.srcAddrs[i]!, sport: b.srcPorts[i]!, dst: b.dstAddrs[i]!, data: b.datagram(i).slice() });
    }
    wake?.();
  });
  const until = (cond: () => boolean, ms = 5000, what = 'datagrams'): Promise<void> =>
    new Promise((resolve, reject) => {
      if (cond()) return resolve();
      const timer = setTimeout(() => {
        wake = undefined;
        reject(new Error(`timed out waiting for ${what}: have ${got.length}`));
      }, ms);
      wake = () => {
        if (cond()) {
          clearTimeout(timer);
          wake = undefined;
          resolve();
        }
      };
    });
  return { got, until };
}

test('10k datagrams over loopback arrive complete, in order, with the right addresses and ports', async () => {
  const rx = UdpBatchSocket.bind('127.0.0.1', 0);
  const tx = UdpBatchSocket.bind('127.0.0.1', 0);
  try {
    const { got, until } = collector(rx);
    const N = 10_000;
    // Keep at most WINDOW in flight so that the receiver's default (unprivileged) socket buffer never overflows:
    // loss there would be the kernel's, not ours.
    const WINDOW = 128;
    const msg = new Uint8Array(8 + 199);
    let sent = 0;
    while (sent < N) {
      while (sent < N && sent - got.length < WINDOW) {
        const len = 8 + (sent % 200);
        new DataView(msg.buffer).setUint32(0, sent);
        msg.fill(sent & 0xff, 4, len);
        assert.equal(tx.send({ addr: LO, port: rx.port }, msg.subarray(0, len)), true);
        sent++;
      }
      const target = sent;
      await until(() => got.length >= target - WINDOW / 2 || got.length === N);
    }
    await until(() => got.length === N);
    for (let i = 0; i < N; i++) {
      const g = got[i]!;
      assert.equal(new DataView(g.data.buffer).getUint32(0), i, `datagram ${i} out of order`);
      assert.equal(g.data.length, 8 + (i % 200));
      assert.ok(g.data.subarray(4).every((v) => v === (i & 0xff)), `datagram ${i} corrupted`);
      assert.equal(g.src, LO);
      assert.equal(g.sport, tx.port);
      assert.equal(g.dst, LO);
    }
    assert.equal(tx.stats.txPackets, N);
    assert.equal(tx.stats.txErrors + tx.stats.txDropped, 0);
    assert.equal(rx.stats.rxPackets, N);
    assert.ok(tx.stats.txFlushes < N / 10, `sends were batched (${tx.stats.txFlushes} flushes)`);
    assert.ok(rx.stats.rxBatches < N / 2, `receives were batched (${rx.stats.rxBatches} batches)`);
  } finally {
    rx.close();
    tx.close();
  }
});

test('IP_PKTINFO: per-packet source selection, and the local address each datagram was sent to', async () => {
  const server = UdpBatchSocket.bind('0.0.0.0', 0);
  const client = UdpBatchSocket.bind('0.0.0.0', 0);
  const pinned = UdpBatchSocket.bind('127.0.0.2', 0);
  try {
    const s = collector(server);
    const c = collector(client);
    const p = collector(pinned);
    const data = new Uint8Array([1, 2, 3]);
    client.send({ addr: ip('127.0.0.1'), port: server.port }, data, ip('127.0.0.2'));
    client.send({ addr: ip('127.0.0.3'), port: server.port }, data, ip('127.0.0.4'));
    client.send({ addr: ip('127.0.0.5'), port: server.port }, data); // kernel's choice: lo's primary, 127.0.0.1
    client.send({ addr: ip('127.0.0.2'), port: pinned.port }, data, ip('127.0.0.9'));
    await s.until(() => s.got.length === 3);
    await p.until(() => p.got.length === 1);
    assert.deepEqual(s.got.map((g) => [g.src, g.sport, g.dst]), [
      [ip('127.0.0.2'), client.port, ip('127.0.0.1')],
      [ip('127.0.0.4'), client.port, ip('127.0.0.3')],
      [ip('127.0.0.1'), client.port, ip('127.0.0.5')],
    ]);
    assert.deepEqual(p.got.map((g) => [g.src, g.dst]), [[ip('127.0.0.9'), ip('127.0.0.2')]]);
    // A server answers from the address it was asked on (RFC 4380 §5.3.1: the secondary address case).
    for (const g of s.got) server.send({ addr: g.src, port: g.sport }, g.data, g.dst);
    await c.until(() => c.got.length === 3);
    assert.deepEqual(c.got.map((g) => [g.src, g.sport, g.dst]), [
      [ip('127.0.0.1'), server.port, ip('127.0.0.2')],
      [ip('127.0.0.3'), server.port, ip('127.0.0.4')],
      [ip('127.0.0.5'), server.port, ip('127.0.0.1')],
    ]);
  } finally {
    server.close();
    client.close();
    pinned.close();
  }
});

test('per-packet send errors are counted by errno, never thrown, and do not stop the batch', async () => {
  const rx = UdpBatchSocket.bind('127.0.0.1', 0);
  const tx = UdpBatchSocket.bind('0.0.0.0', 0);
  try {
    const { got, until } = collector(rx);
    const dst = { addr: LO, port: rx.port };
    assert.equal(tx.send(dst, new Uint8Array([1])), true);
    assert.equal(tx.send(dst, new Uint8Array(65_508)), true); // > 65,507: the kernel says EMSGSIZE
    assert.equal(tx.send(dst, new Uint8Array([2])), true);
    assert.equal(tx.send(dst, new Uint8Array(70_000)), false); // not even a UDP length: dropped before the kernel
    assert.equal(tx.send(dst, new Uint8Array([3]), ip('192.0.2.1')), true); // source not local
    assert.equal(tx.send(dst, new Uint8Array([4])), true);
    await until(() => got.length === 3);
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(got.map((g) => g.data[0]), [1, 2, 4]);
    assert.equal(tx.errors.get('tx:EMSGSIZE'), 2);
    assert.equal(tx.stats.txPackets, 3);
    assert.equal(tx.stats.txErrors, 3);
    const nonLocal = Object.keys(tx.errors.snapshot()).filter((k) => k !== 'tx:EMSGSIZE');
    assert.equal(nonLocal.length, 1, `the non-local source is counted under its errno: ${nonLocal.join()}`);
    assert.match(nonLocal[0]!, /^tx:E[A-Z]+$/);
  } finally {
    rx.close();
    tx.close();
  }
});

test('a full send queue flushes early, then drops and counts', () => {
  const tx = UdpBatchSocket.bind('127.0.0.1', 0, { sendQueuePackets: 4 });
  const sink = UdpBatchSocket.bind('127.0.0.1', 0);
  try {
    for (let i = 0; i < 10; i++) assert.equal(tx.send({ addr: LO, port: sink.port }, new Uint8Array([i])), true);
    assert.equal(tx.pending, 2); // 4 + 4 flushed synchronously when the queue filled
    assert.equal(tx.stats.txPackets, 8);
    tx.close();
    assert.equal(tx.stats.txPackets, 10); // close() flushes what is left
    assert.equal(tx.send({ addr: LO, port: sink.port }, new Uint8Array([1])), false);
    assert.equal(tx.errors.get('tx:closed'), 1);
  } finally {
    tx.close();
    sink.close();
  }
});

test('native: arguments are validated before any I/O', () => {
  const n = loadNative();
  const s = n.udpOpen('127.0.0.1', 0, {});
  try {
    const u32 = (k: number) => new Uint32Array(k);
    const u16 = (k: number) => new Uint16Array(k);
    // Receive: arena must hold maxPackets * slotSize; every side array must hold maxPackets entries.
    assert.throws(() => n.udpRecvBatch(s.fd, new Uint8Array(100), 64, 2, u32(2), u32(2), u16(2), u32(2)), RangeError);
    assert.throws(() => n.udpRecvBatch(s.fd, new Uint8Array(128), 64, 2, u32(1), u32(2), u16(2), u32(2)), RangeError);
    assert.throws(() => n.udpRecvBatch(s.fd, new Uint8Array(128), 64, 2, u32(2), u32(2), u16(1), u32(2)), RangeError);
    assert.throws(() => n.udpRecvBatch(s.fd, new Uint8Array(128), 64, 2, u32(2), u32(2), u32(2) as never, u32(2)), TypeError);
    assert.throws(() => n.udpRecvBatch(s.fd, new Uint8Array(128), 0, 2, u32(2), u32(2), u16(2), u32(2)), RangeError);
    assert.throws(() => n.udpRecvBatch(s.fd, new Uint8Array(128), 64.5, 1, u32(2), u32(2), u16(2), u32(2)), TypeError);
    assert.throws(() => n.udpRecvBatch(-1, new Uint8Array(128), 64, 1, u32(2), u32(2), u16(2), u32(2)), RangeError);
    assert.equal(n.udpRecvBatch(s.fd, new Uint8Array(128), 64, 2, u32(2), u32(2), u16(2), u32(2)), 0); // EAGAIN
    // With offsets (GRO messages split), every array needs room for maxPackets * 128 datagrams.
    assert.throws(() => n.udpRecvBatch(s.fd, new Uint8Array(128), 64, 2, u32(256), u32(256), u16(256), u32(256), null, u32(255)), RangeError);
    assert.throws(() => n.udpRecvBatch(s.fd, new Uint8Array(128), 64, 2, u32(256), u32(256), u16(255), u32(256), null, u32(256)), RangeError);
    assert.equal(n.udpRecvBatch(s.fd, new Uint8Array(128), 64, 2, u32(256), u32(256), u16(256), u32(256), null, u32(256)), 0);
    // Send: every offset+length must lie inside the arena; count must not exceed any array.
    const one = (v: number) => Uint32Array.of(v);
    assert.throws(() => n.udpSendBatch(s.fd, new Uint8Array(10), one(8), one(3), one(LO), Uint16Array.of(9), null, 1), RangeError);
    assert.throws(() => n.udpSendBatch(s.fd, new Uint8Array(10), one(0), one(3), one(LO), Uint16Array.of(9), null, 2), RangeError);
    assert.throws(() => n.udpSendBatch(s.fd, new Uint8Array(10), one(0), one(3), one(LO), Uint16Array.of(9), new Uint32Array(0), 1), RangeError);
    assert.throws(() => n.udpSendBatch(s.fd, new Uint8Array(10), one(0), one(3), one(LO), Uint16Array.of(9), null, 1, new Uint32Array(0)), RangeError);
    assert.throws(() => n.udpSendBatch(s.fd, new Uint8Array(10), one(0xffffffff), one(2), one(LO), Uint16Array.of(9), null, 1), RangeError);
    // A subarray's bounds are its own, not its buffer's.
    const big = new Uint8Array(64);
    assert.throws(() => n.tunWrite(s.fd, big.subarray(60), 0, 5), RangeError);
    assert.throws(() => n.tunReadBatch(s.fd, big.subarray(32), 16, 3, u32(3)), RangeError);
    assert.throws(() => n.udpOpen('::1', 0), TypeError);
    assert.throws(() => n.udpOpen('127.0.0.1', 65536), RangeError);
    assert.throws(() => n.tunOpen('a-name-much-too-long-for-linux'), RangeError);
    assert.throws(() => n.pollStart(s.fd, 'x' as never, () => {}), TypeError);
    assert.throws(() => n.pollUpdate({} as never, 'r'), TypeError);
    assert.throws(() => n.udpOpen('192.0.2.1', 0), (e: NodeJS.ErrnoException) => e.code === 'EADDRNOTAVAIL' && /bind/.test(e.message));
  } finally {
    n.close(s.fd);
  }
  assert.throws(() => n.close(s.fd), (e: NodeJS.ErrnoException) => e.code === 'EBADF');
});

test('poll: a callback may stop its own poll; stopped polls reject updates', async () => {
  const n = loadNative();
  const a = n.udpOpen('127.0.0.1', 0, {});
  const b = n.udpOpen('127.0.0.1', 0, {});
  try {
    let calls = 0;
    const done = new Promise<void>((resolve) => {
      const h = n.pollStart(b.fd, 'r', (status, events) => {
        calls++;
        assert.equal(status, 0);
        assert.equal(events & 1, 1);
        n.pollStop(h);
        n.pollStop(h); // idempotent
        assert.throws(() => n.pollUpdate(h, 'r'), /stopped/);
        setTimeout(resolve, 20); // level-triggered: had the poll survived, it would fire again meanwhile
      });
    });
    n.udpSendBatch(a.fd, new Uint8Array(1), Uint32Array.of(0), Uint32Array.of(1), Uint32Array.of(LO), Uint16Array.of(b.port), null, 1);
    await done;
    assert.equal(calls, 1);
  } finally {
    n.close(a.fd);
    n.close(b.fd);
  }
});

/** Runs an ES module snippet in a fresh node and returns its exit status and timing. */
function runSnippet(code: string): { status: number | null; ms: number; stderr: string } {
  const udpUrl = new URL('../../src/io/udp.js', import.meta.url).href;
  const t0 = Date.now();
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', `import { UdpBatchSocket } from '${udpUrl}';\n${code}`], {
    timeout: 10_000, encoding: 'utf8', cwd: fileURLToPath(new URL('.', import.meta.url)),
  });
  return { status: r.status, ms: Date.now() - t0, stderr: r.stderr };
}

test('lifecycle: a process exits once its sockets are closed, or while they are unref()ed', () => {
  const closed = runSnippet(`
    const s = UdpBatchSocket.bind('127.0.0.1', 0);
    s.onDatagrams(() => {});
    s.send({ addr: 0x7f000001, port: s.port }, new Uint8Array(1));
    setTimeout(() => s.close(), 50);`);
  assert.equal(closed.status, 0, closed.stderr);
  const unrefed = runSnippet(`
    const s = UdpBatchSocket.bind('127.0.0.1', 0);
    s.onDatagrams(() => {});
    s.unref();`);
  assert.equal(unrefed.status, 0, unrefed.stderr);
  // And a reading, referenced socket does keep the process alive (killed by the timeout).
  const alive = runSnippet(`
    const s = UdpBatchSocket.bind('127.0.0.1', 0);
    s.onDatagrams(() => {});
    setTimeout(() => process.exit(7), 300).unref();`);
  assert.equal(alive.status, 7);
  // An exception in a batch callback surfaces as an uncaught exception, as in any Node I/O callback.
  const thrown = runSnippet(`
    const s = UdpBatchSocket.bind('127.0.0.1', 0);
    s.onDatagrams(() => { throw new Error('boom-from-callback'); });
    s.send({ addr: 0x7f000001, port: s.port }, new Uint8Array(1));`);
  assert.equal(thrown.status, 1);
  assert.match(thrown.stderr, /boom-from-callback/);
  // And process.nextTick / promise jobs queued in a callback run before the loop continues.
  const ticks = runSnippet(`
    const s = UdpBatchSocket.bind('127.0.0.1', 0);
    const order = [];
    s.onDatagrams(() => {
      process.nextTick(() => order.push('tick'));
      Promise.resolve().then(() => order.push('promise'));
      setImmediate(() => { order.push('immediate'); s.close(); if (order.join() !== 'tick,promise,immediate') process.exit(3); });
    });
    s.send({ addr: 0x7f000001, port: s.port }, new Uint8Array(1));`);
  assert.equal(ticks.status, 0, ticks.stderr);
});

test('worker threads: each has its own loop; terminating one with live or closing polls is clean', async () => {
  const { Worker } = await import('node:worker_threads');
  const udpUrl = new URL('../../src/io/udp.js', import.meta.url).href;
  const variants = {
    live: 'n === 3 && parentPort.postMessage(1);',
    closing: 'if (n === 3) { s.close(); parentPort.postMessage(1); }',
    unrefExit: 'if (n === 3) { s.unref(); parentPort.postMessage(1); }',
  };
  for (const [name, onBatch] of Object.entries(variants)) {
    for (let round = 0; round < 3; round++) {
      const src = `import { UdpBatchSocket } from '${udpUrl}';
        import { parentPort } from 'node:worker_threads';
        const s = UdpBatchSocket.bind('127.0.0.1', 0);
        let n = 0;
        s.onDatagrams((b) => { n += b.count; ${onBatch} });
        for (let i = 0; i < 3; i++) s.send({ addr: 0x7f000001, port: s.port }, new Uint8Array(4));`;
      const w = new Worker(new URL(`data:text/javascript,${encodeURIComponent(src)}`));
      const exited = new Promise<number>((resolve) => w.once('exit', resolve));
      await new Promise((resolve, reject) => {
        w.once('message', resolve);
        w.once('error', reject);
      });
      if (name !== 'unrefExit') await w.terminate();
      // A crash here (e.g. a close callback run after the worker unloaded the addon) would take the whole test
      // process down; a clean end is exit code 1 after terminate(), 0 after a natural exit.
      const code = await exited;
      if (name === 'closing') assert.ok(code === 0 || code === 1, `closing worker exit code ${code}`); // may end first
      else assert.equal(code, name === 'unrefExit' ? 0 : 1, `${name} worker exit code`);
    }
  }
});

for (const gro of [false, true]) {
  const what = gro ? 'UDP GSO to a socket with GRO: each GSO message arrives whole and is split back into' : 'UDP GSO: runs of same-size datagrams to one destination go as one message and arrive as';
  test(`${what} the same datagrams, in order`, async () => {
    await gsoRuns(gro);
  });
}

async function gsoRuns(gro: boolean): Promise<void> {
  const rx = UdpBatchSocket.bind('127.0.0.1', 0, { rcvbuf: 1 << 20, gro });
  const rx2 = UdpBatchSocket.bind('127.0.0.1', 0, { rcvbuf: 1 << 20, gro });
  assert.equal(rx.gro, gro, 'the kernel takes UDP_GRO');
  const tx = UdpBatchSocket.bind('127.0.0.1', 0, { gsoSegments: 64 });
  try {
    const a = collector(rx);
    const b = collector(rx2);
    // Runs broken by a shorter datagram, a longer one, another destination, and sizes that fill 65000 bytes.
    const plan: { to: UdpBatchSocket; len: number }[] = [];
    for (let i = 0; i < 40; i++) plan.push({ to: rx, len: 1308 });
    plan.push({ to: rx, len: 500 }, { to: rx, len: 1308 }, { to: rx, len: 1400 }, { to: rx2, len: 1308 }, { to: rx2, len: 1308 });
    for (let i = 0; i < 70; i++) plan.push({ to: rx, len: 1000 });
    plan.push({ to: rx, len: 1 }, { to: rx, len: 1 }, { to: rx2, len: 64 });
    const msg = new Uint8Array(2000);
    plan.forEach((p, i) => {
      msg.fill(i & 0xff, 0, p.len);
      msg[0] = i >> 8;
      assert.equal(tx.send({ addr: LO, port: p.to.port }, msg.subarray(0, p.len)), true);
    });
    tx.flush();
    const toA = plan.map((p, i) => ({ ...p, i })).filter((p) => p.to === rx);
    const toB = plan.map((p, i) => ({ ...p, i })).filter((p) => p.to === rx2);
    await a.until(() => a.got.length === toA.length);
    await b.until(() => b.got.length === toB.length);
    for (const [want, got] of [[toA, a.got], [toB, b.got]] as const) {
      want.forEach((p, k) => {
        const g = got[k]!.data;
        assert.equal(g.length, p.len, `datagram ${p.i}: length`);
        assert.equal(g[0], p.i >> 8, `datagram ${p.i}: order`);
        if (p.len > 1) assert.ok(g.subarray(1).every((v) => v === (p.i & 0xff)), `datagram ${p.i}: content`);
      });
    }
    assert.equal(tx.stats.txPackets, plan.length);
    assert.equal(tx.stats.txErrors, 0);
    // 40 + the shorter one; 1308 alone (1400 is longer); the rx2 pair; 1000-byte runs cut at 64 datagrams / 65000
    // bytes; the 1-byte pair: at least 4 GSO messages carrying at least 110 datagrams.
    assert.ok(tx.stats.txGsoMessages >= 4, `GSO messages: ${tx.stats.txGsoMessages}`);
    assert.ok(tx.stats.txGsoPackets >= 110, `datagrams in GSO messages: ${tx.stats.txGsoPackets}`);
    const groMessages = rx.stats.rxGroMessages + rx2.stats.rxGroMessages;
    const groPackets = rx.stats.rxGroPackets + rx2.stats.rxGroPackets;
    if (gro) {
      // Loopback hands the GSO messages on unsplit: a GRO socket reads each one as one message.
      assert.equal(groMessages, tx.stats.txGsoMessages, 'GSO messages received whole');
      assert.equal(groPackets, tx.stats.txGsoPackets, 'datagrams split back out of them');
    } else assert.equal(groMessages + groPackets, 0, 'without GRO the kernel splits them');
    assert.equal(rx.stats.rxPackets + rx2.stats.rxPackets, plan.length);
  } finally {
    rx.close();
    rx2.close();
    tx.close();
  }
}

test('UDP GRO: datagrams that did not come as one GSO message arrive alone; a zero-length one too', async () => {
  const rx = UdpBatchSocket.bind('127.0.0.1', 0, { gro: true });
  const tx = UdpBatchSocket.bind('127.0.0.1', 0);
  try {
    const c = collector(rx);
    const sizes = [0, 100, 100, 100, 1, 3000, 0];
    sizes.forEach((n, i) => {
      assert.equal(tx.send({ addr: LO, port: rx.port }, new Uint8Array(n).fill(i + 1)), true);
      tx.flush();
    });
    await c.until(() => c.got.length === sizes.length);
    assert.deepEqual(c.got.map((g) => g.data.length), sizes);
    c.got.forEach((g, i) => assert.ok(g.data.every((v) => v === i + 1), `datagram ${i}`));
    assert.equal(rx.stats.rxGroMessages, 0);
  } finally {
    rx.close();
    tx.close();
  }
});
