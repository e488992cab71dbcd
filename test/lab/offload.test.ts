/**
 * Offload (--offload: user-space TCP GRO into the tunnel, src/io/gro.ts; UDP GSO on the data socket) in the
 * namespace lab (root only): the
 * same pseudo-random TCP byte streams go from cli-prc (behind the port-restricted NAT) through the relay to v6host
 * and are echoed back, once with offload off and once with it on for both the relay and the client. Each way, the
 * bytes delivered must be exactly the bytes sent (SHA-256 and length), so identical with and without offload; with
 * it on, the relay and the client must really have written super-packets (their tunnel counters) and the client
 * sent GSO messages (through the NAT), so the test cannot pass by never merging. The same for UDP: bursts of
 * same-size datagrams echoed by v6host must come back unchanged (none altered, at least 90 % back), and with
 * offload on the relay and the client must have written GSO_UDP_L4 super-packets into their tunnels.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { installCleanupHandlers } from '../../src/lab/netns.js';
import type { ManagedProcess } from '../../src/lab/exec.js';
import {
  LAB_TEREDO_IFACE, relayArgs, showJson, startLabClient, startTeredoLab, TRANSIT6_BIN, waitForClients, waitForDaemon, type RunningTeredoLab,
} from '../../src/lab/teredo-lab.js';
import { skipUnlessRoot } from './helpers.js';

installCleanupHandlers();

const PORT = 5301;
const BYTES = 6 << 20;

/** v6host: a TCP echo server (each connection's bytes are written back as they come). */
const ECHO = `
const net = require('node:net');
const srv = net.createServer((s) => { s.on('error', () => {}); s.pipe(s); });
srv.listen(${PORT}, process.argv[1], () => console.log('listening'));
`;

/** cli-prc: sends SIZE pseudo-random bytes (seeded) in random-sized writes, reads the echo, prints the digests. */
const SENDER = `
const net = require('node:net');
const crypto = require('node:crypto');
const [host, seed, size] = [process.argv[1], process.argv[2], Number(process.argv[3])];
const data = Buffer.alloc(size);
for (let i = 0, off = 0; off < size; i++, off += 32) crypto.createHash('sha256').update(seed + ':' + i).digest().copy(data, off);
const sent = crypto.createHash('sha256').update(data).digest('hex');
const got = crypto.createHash('sha256');
let n = 0;
let x = 7;
const rnd = (m) => { x = (Math.imul(x, 1103515245) + 12345) >>> 0; return (x >>> 8) % m; };
function attempt(left) {
  const s = net.connect({ host, port: ${PORT} });
  s.once('error', (e) => { if (n === 0 && left > 0) setTimeout(() => attempt(left - 1), 200); else { console.error(e.message); process.exit(1); } });
  s.once('connect', () => {
    let off = 0;
    const pump = () => {
      while (off < size) {
        const k = Math.min(size - off, 1 + rnd(rnd(4) === 0 ? 200 : 65536));
        const ok = s.write(data.subarray(off, off + k));
        off += k;
        if (!ok) return s.once('drain', pump);
        if (rnd(16) === 0) return setImmediate(pump);
      }
      s.end();
    };
    pump();
  });
  s.on('data', (d) => { got.update(d); n += d.length; });
  s.on('end', () => { console.log(JSON.stringify({ sent, received: got.digest('hex'), bytes: n })); process.exit(0); });
}
attempt(25);
`;

const UDP_PORT = 5302;
const UDP_BURSTS = 40;
const UDP_BURST = 50;

/** v6host: a UDP echo server (each datagram sent back to where it came from). */
const UDP_ECHO = `
const s = require('node:dgram').createSocket('udp6');
s.on('message', (m, r) => s.send(m, r.port, r.address));
s.bind(${UDP_PORT}, process.argv[1], () => console.log('listening'));
`;

/** cli-prc: bursts of same-size datagrams (seeded bytes, the size changing per burst); counts the echoes that come
 *  back identical to a datagram it sent, and those that do not. */
const UDP_SENDER = `
const dgram = require('node:dgram');
const crypto = require('node:crypto');
const [host, seed] = [process.argv[1], process.argv[2]];
const sent = new Map();
let echoed = 0, wrong = 0, dup = 0;
const s = dgram.createSocket('udp6');
s.on('message', (m) => {
  const key = m.length >= 8 ? m.readUInt32BE(0) + ':' + m.readUInt32BE(4) : '';
  const want = sent.get(key);
  if (want === undefined) { wrong++; return; }
  if (want === null) { dup++; return; }
  if (Buffer.compare(want, m) === 0) { echoed++; sent.set(key, null); } else wrong++;
});
let b = 0;
function burst() {
  if (b === ${UDP_BURSTS}) return setTimeout(() => { console.log(JSON.stringify({ sent: sent.size, echoed, wrong, dup })); process.exit(0); }, 1500);
  const size = 64 + (b % 5) * 150;
  for (let i = 0; i < ${UDP_BURST}; i++) {
    const m = Buffer.alloc(size);
    crypto.createHash('sha512').update(seed + ':' + b + ':' + i).digest().copy(m, 8);
    for (let k = 72; k < size; k++) m[k] = (k * 31 + b + i) & 0xff;
    m.writeUInt32BE(b, 0);
    m.writeUInt32BE(i, 4);
    sent.set(b + ':' + i, m);
    s.send(m, ${UDP_PORT}, host);
  }
  b++;
  setTimeout(burst, 20);
}
s.bind(0, () => burst());
`;

interface UdpEcho {
  sent: number;
  echoed: number;
  wrong: number;
  dup: number;
}

interface Transfer {
  sent: string;
  received: string;
  bytes: number;
}

async function transfer(l: RunningTeredoLab, seed: string): Promise<Transfer> {
  const t = l.topology;
  const r = await l.lab.exec(t.clients.find((c) => c.name === 'cli-prc')!.ns, process.execPath, ['-e', SENDER, t.v6host.ipv6, seed, String(BYTES)], { timeoutMs: 120_000 });
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Transfer;
}

type Io = { io: Record<string, number> };

async function udpEcho(l: RunningTeredoLab, seed: string): Promise<UdpEcho> {
  const t = l.topology;
  const r = await l.lab.exec(t.clients.find((c) => c.name === 'cli-prc')!.ns, process.execPath, ['-e', UDP_SENDER, t.v6host.ipv6, seed], { timeoutMs: 60_000 });
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as UdpEcho;
}

test('offload: TCP and UDP through the relay deliver the same bytes with and without GRO', { timeout: 300_000 }, async (t) => {
  if (skipUnlessRoot(t)) return;
  const l = await startTeredoLab({ clients: ['cli-prc'], startClients: [] });
  let echo: ManagedProcess | undefined;
  let udpEchoProc: ManagedProcess | undefined;
  try {
    const topo = l.topology;
    const cliNs = topo.clients.find((c) => c.name === 'cli-prc')!.ns;
    echo = l.lab.spawn(topo.v6host.ns, 'echo', process.execPath, ['-e', ECHO, topo.v6host.ipv6]);
    udpEchoProc = l.lab.spawn(topo.v6host.ns, 'udp-echo', process.execPath, ['-e', UDP_ECHO, topo.v6host.ipv6]);
    await udpEchoProc.waitForLog(/listening/, 10_000);
    const udpResults: Record<'off' | 'on', UdpEcho[]> = { off: [], on: [] };
    const results: Record<'off' | 'on', Transfer[]> = { off: [], on: [] };
    const counters: Record<string, Record<string, number>> = {};
    for (const mode of ['off', 'on'] as const) {
      // Offload is on by default: both modes say it explicitly.
      await l.daemons.clients['cli-prc']?.stop();
      await l.daemons.relay!.stop();
      const relay = l.lab.spawn(topo.relay.ns, `relay-offload-${mode}`, process.execPath, [TRANSIT6_BIN, ...relayArgs(topo), '--offload', mode === 'on' ? 'yes' : 'no']);
      l.daemons.relay = relay;
      await waitForDaemon(relay, 'relay');
      startLabClient(l, 'cli-prc', ['--offload', mode === 'on' ? 'yes' : 'no']);
      await waitForClients(l, ['cli-prc'], { natDetection: false });
      for (const seed of ['a', 'b']) {
        const r = await transfer(l, seed);
        t.diagnostic(`offload ${mode}, stream ${seed}: ${JSON.stringify(r)}`);
        results[mode].push(r);
      }
      const u = await udpEcho(l, `u-${mode}`);
      t.diagnostic(`offload ${mode}, UDP echo: ${JSON.stringify(u)}`);
      udpResults[mode].push(u);
      // show state says how packets move.
      for (const [ns, role] of [[topo.relay.ns, 'relay'], [cliNs, 'client']] as const) {
        const st = await showJson<{ dataPath?: string }>(ns, 'state', role);
        assert.equal(st.dataPath, mode === 'on' ? 'fast path; GRO into the tunnel (TCP and UDP), UDP GSO and GRO' : 'fast path; offloads off', `${role} data path`);
      }
      // The tunnels' transmit queues are the daemons' (2000, src/io/daemon.ts), not TUN's default 500.
      for (const ns of [topo.relay.ns, cliNs]) {
        const link = JSON.parse((await l.lab.exec(ns, 'ip', ['-j', 'link', 'show', LAB_TEREDO_IFACE])).stdout) as { txqlen?: number }[];
        assert.equal(link[0]?.txqlen, 2000, `${ns}: txqueuelen`);
      }
      counters[`relay-${mode}`] = (await showJson<Io>(topo.relay.ns, 'stats', 'relay')).io;
      counters[`client-${mode}`] = (await showJson<Io>(cliNs, 'stats', 'client')).io;
    }
    for (const mode of ['off', 'on'] as const) {
      for (const r of results[mode]) {
        assert.equal(r.bytes, BYTES, `offload ${mode}: every byte came back`);
        assert.equal(r.received, r.sent, `offload ${mode}: the bytes came back unchanged`);
      }
    }
    for (const mode of ['off', 'on'] as const) {
      for (const u of udpResults[mode]) {
        assert.equal(u.sent, UDP_BURSTS * UDP_BURST);
        assert.equal(u.wrong, 0, `offload ${mode}: every UDP echo is a datagram sent, unchanged`);
        assert.ok(u.echoed >= u.sent * 0.9, `offload ${mode}: UDP echoes ${u.echoed}/${u.sent}`);
      }
    }
    // The same streams, the same bytes delivered either way.
    assert.deepEqual(results.on.map((r) => r.received), results.off.map((r) => r.received));
    const pick = (c: Record<string, number>): Record<string, number | undefined> => ({
      writes: c['tun.txPackets'], superPackets: c['tun.txSuperPackets'], udpSuperPackets: c['tun.txUdpSuperPackets'], merged: c['tun.txMerged'], errors: c['tun.txErrors'], badChecksum: c['tun.txBadChecksum'],
      udpSent: c.txPackets, udpGsoMessages: c.txGsoMessages, udpGsoPackets: c.txGsoPackets, udpErrors: c.txErrors,
    });
    for (const [k, c] of Object.entries(counters)) t.diagnostic(`${k}: ${JSON.stringify(pick(c))}`);
    assert.equal(counters['relay-off']!['tun.txSuperPackets'] ?? 0, 0);
    assert.ok((counters['relay-on']!['tun.txSuperPackets'] ?? 0) > 0, 'the relay wrote super-packets');
    assert.ok((counters['client-on']!['tun.txSuperPackets'] ?? 0) > 0, 'the client wrote super-packets');
    assert.ok((counters['relay-on']!['tun.txUdpSuperPackets'] ?? 0) > 0, 'the relay wrote UDP super-packets');
    assert.ok((counters['client-on']!['tun.txUdpSuperPackets'] ?? 0) > 0, 'the client wrote UDP super-packets');
    assert.ok((counters['client-on']!.txGsoMessages ?? 0) > 0, 'the client sent UDP GSO messages');
    assert.equal(counters['client-off']!.txGsoMessages ?? 0, 0);
    assert.equal(counters['client-on']!.txErrors, 0);
    assert.equal(counters['relay-on']!['tun.txErrors'], 0);
    assert.equal(counters['client-on']!['tun.txErrors'], 0);
  } finally {
    await echo?.stop();
    await udpEchoProc?.stop();
    await l.lab.destroy();
  }
});
