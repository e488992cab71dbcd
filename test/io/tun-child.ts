/**
 * The privileged half of tun.test.ts. Runs as `ip netns exec <test namespace> node tun-child.js <case>` so that
 * every interface it creates lives and dies in that namespace. Exits 0 and prints one JSON line on success;
 * throws (exit 1, stack on stderr) on failure.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { TunDevice } from '../../src/io/tun.js';
import { UdpBatchSocket } from '../../src/io/udp.js';
import { loadNative } from '../../src/io/native.js';
import { equalBytes, icmpv6Echo, ipv4Packet, ipv6, parseEcho } from './packets.js';

const IF = 't6io0';
const LOCAL6 = ipv6('fd00:6:1::1');
const PEER6 = ipv6('fd00:6:1::2');
const LOCAL4 = 0x0a4d0001; // 10.77.0.1
const PEER4 = 0x0a4d0002; // 10.77.0.2

function sh(cmd: string, ...args: string[]): void {
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] });
}

/** Opens the TUN and configures it the way a Teredo client's iface-up would. */
function upTun(opts: { mtu?: number; slotSize?: number } = {}): TunDevice {
  // This namespace is brand new, so the interface cannot exist yet: never touch a device we did not create.
  const tun = TunDevice.open(IF, { slotSize: opts.slotSize });
  assert.equal(tun.name, IF);
  sh('ip', 'link', 'set', 'lo', 'up');
  sh('ip', 'link', 'set', IF, 'mtu', String(opts.mtu ?? 1280), 'up');
  sh('ip', '-6', 'addr', 'add', 'fd00:6:1::1/64', 'dev', IF, 'nodad');
  sh('ip', 'addr', 'add', '10.77.0.1/24', 'dev', IF);
  return tun;
}

function rxPackets(): number {
  return Number(readFileSync(`/sys/class/net/${IF}/statistics/rx_packets`, 'utf8'));
}

/** Collects packets read from the TUN (copied) until `done` says so or the time runs out. */
function readUntil(tun: TunDevice, done: (pkts: Uint8Array[]) => boolean, ms = 5000,
  progress = (pkts: Uint8Array[]) => `read ${pkts.length} packets`): Promise<Uint8Array[]> {
  const pkts: Uint8Array[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timeout: ${progress(pkts)}; ${JSON.stringify(tun.counters())}`)), ms);
    tun.onPackets((arena, lengths, count, slot) => {
      for (let i = 0; i < count; i++) pkts.push(arena.slice(i * slot, i * slot + lengths[i]!));
      if (done(pkts)) {
        clearTimeout(timer);
        resolve(pkts);
      }
    });
  });
}

const replies = (pkts: Uint8Array[]) => pkts.map(parseEcho).filter((e) => e !== undefined && e.type === 129);

const cases: Record<string, () => Promise<unknown>> = {
  /** An echo request written into the TUN reaches the kernel, whose reply comes back out of the TUN. */
  async echo() {
    const tun = upTun();
    try {
      const payload = new TextEncoder().encode('transit6 tun echo');
      const req = icmpv6Echo(PEER6, LOCAL6, 128, 0x7406, 1, payload);
      const reading = readUntil(tun, (p) => replies(p).length > 0);
      assert.equal(tun.write(req), true);
      const pkts = await reading;
      const r = replies(pkts)[0]!;
      assert.ok(r.checksumOk, 'reply checksum');
      assert.deepEqual([r.id, r.seq], [0x7406, 1]);
      assert.ok(equalBytes(r.src, LOCAL6) && equalBytes(r.dst, PEER6), 'reply addressed back to the peer');
      assert.ok(equalBytes(r.payload, payload), 'payload echoed');
      assert.equal(tun.stats.txPackets, 1);
      return { read: pkts.length, stats: tun.counters() };
    } finally {
      tun.close();
    }
  },

  /** 1000 writes are 1000 packets (writev and fs streams would lose or merge them). */
  async writes1000() {
    const tun = upTun();
    try {
      const N = 1000;
      const before = rxPackets();
      const reading = readUntil(tun, (p) => replies(p).length >= N, 10_000);
      // 100 per turn: the TUN's transmit queue (txqueuelen 500) must not overflow while we are busy writing.
      for (let sent = 0; sent < N;) {
        for (const end = sent + 100; sent < end; sent++) {
          assert.equal(tun.write(icmpv6Echo(PEER6, LOCAL6, 128, 7, sent, Uint8Array.of(sent & 0xff))), true);
        }
        await new Promise((r) => setImmediate(r));
      }
      const got = replies(await reading);
      assert.equal(rxPackets() - before, N, 'the kernel saw exactly N packets');
      assert.equal(got.length, N);
      assert.deepEqual(got.map((e) => e!.seq).sort((a, b) => a - b), Array.from({ length: N }, (_, i) => i));
      assert.equal(tun.stats.txPackets, N);
      assert.equal(tun.stats.txErrors + tun.stats.txEagain, 0);
      return { rxBatches: tun.stats.rxBatches, rxPackets: tun.stats.rxPackets };
    } finally {
      tun.close();
    }
  },

  /** Raw sockets: whole IPv6 packets out (IPPROTO_RAW), IPv6-in-IPv4 (protocol 41) in and out. */
  async raw() {
    const n = loadNative();
    const tun = upTun();
    const raw6 = n.rawOpen(6, 255);
    const raw41 = n.rawOpen(4, 41);
    try {
      // IPv6 header included: the bytes leave through the TUN unchanged.
      const out6 = icmpv6Echo(LOCAL6, PEER6, 128, 99, 3, Uint8Array.of(1, 2, 3));
      let reading = readUntil(tun, (p) => p.some((x) => equalBytes(x, out6)));
      assert.equal(n.rawSend(raw6, out6, 0, out6.length), out6.length);
      await reading;
      // Protocol 41 out: the kernel adds the IPv4 header.
      const inner = icmpv6Echo(LOCAL6, PEER6, 128, 99, 4, Uint8Array.of(4));
      const isOut41 = (x: Uint8Array) => x[0] === 0x45 && x[9] === 41 && equalBytes(x.subarray(20), inner);
      reading = readUntil(tun, (p) => p.some(isOut41));
      assert.equal(n.rawSend(raw41, inner, 0, inner.length, PEER4), inner.length);
      const p41 = (await reading).find(isOut41)!;
      assert.equal(new DataView(p41.buffer, p41.byteOffset).getUint32(12), LOCAL4);
      // Protocol 41 in: an encapsulated packet written into the TUN is delivered with its IPv4 header.
      const encap = ipv4Packet(PEER4, LOCAL4, 41, inner);
      assert.equal(tun.write(encap), true);
      const arena = new Uint8Array(4 * 2048);
      const lengths = new Uint32Array(4);
      const srcs = new Uint8Array(4 * 16);
      let count = 0;
      for (let i = 0; i < 100 && count === 0; i++) {
        count = n.rawRecvBatch(raw41, arena, 2048, 4, lengths, srcs);
        if (count === 0) await new Promise((r) => setTimeout(r, 5));
      }
      assert.equal(count, 1);
      assert.ok(equalBytes(arena.subarray(0, lengths[0]), encap), 'received with the IPv4 header');
      assert.deepEqual([...srcs.subarray(0, 16)], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 77, 0, 2]);
      return { ok: true };
    } finally {
      n.close(raw6);
      n.close(raw41);
      tun.close();
    }
  },

  /** Open errors carry the errno name; multi-queue opens; packets longer than the slot are dropped and counted. */
  async errors() {
    const tun = upTun({ mtu: 4000, slotSize: 1500 });
    try {
      assert.throws(() => TunDevice.open(IF), (e: NodeJS.ErrnoException) => e.code === 'EBUSY' && /TUNSETIFF/.test(e.message));
      const q1 = TunDevice.open('t6io1', { multiQueue: true });
      const q2 = TunDevice.open('t6io1', { multiQueue: true });
      q1.close();
      q2.close();
      const big = icmpv6Echo(PEER6, LOCAL6, 128, 5, 1, new Uint8Array(2000));
      const okReq = icmpv6Echo(PEER6, LOCAL6, 128, 5, 2, new Uint8Array(10));
      const reading = readUntil(tun, (p) => replies(p).some((e) => e!.seq === 2));
      assert.equal(tun.write(big), true);
      assert.equal(tun.write(okReq), true);
      const got = replies(await reading);
      assert.deepEqual(got.map((e) => e!.seq), [2]);
      assert.equal(tun.stats.rxTruncated, 1);
      // A packet the kernel refuses (IP version 0: EINVAL) is counted, not thrown.
      assert.equal(tun.write(Uint8Array.of(0x00, 1, 2, 3)), false);
      assert.equal(tun.stats.txErrors, 1);
      assert.equal(tun.errors.get('tx:EINVAL'), 1);
      return { errors: tun.errors.snapshot() };
    } finally {
      tun.close();
    }
  },

  /** UDP: a full socket buffer (EAGAIN) parks the queue until the socket is writable, and nothing is lost. */
  async udpEagain() {
    const tun = upTun();
    try {
      // A slow qdisc holds the skbs, so the sender's small buffer fills and sendmmsg reports EAGAIN. 5 Mbit/s is
      // ~5k packets/s, far below what the reader drains, and a long TUN queue absorbs a slow (e.g. valgrind) reader.
      sh('ip', 'link', 'set', IF, 'txqueuelen', '10000');
      const tc = spawnSync('tc', ['qdisc', 'add', 'dev', IF, 'root', 'tbf', 'rate', '5mbit', 'burst', '4kb', 'limit', '2mb']);
      if (tc.status !== 0) return { skipped: `tc tbf unavailable: ${tc.stderr}` };
      const udp = UdpBatchSocket.bind('10.77.0.1', 0, { sndbuf: 4096 });
      try {
        const N = 2000;
        const seen = new Set<number>();
        const reading = readUntil(tun, (p) => {
          for (const x of p.splice(0)) {
            if (x[0] === 0x45 && x[9] === 17 && x.length === 20 + 8 + 100) seen.add(new DataView(x.buffer).getUint32(28));
          }
          return seen.size === N;
        }, 20_000, () => `${seen.size}/${N} datagrams seen; udp ${JSON.stringify(udp.counters())}`);
        const data = new Uint8Array(100);
        for (let i = 0; i < N; i++) {
          new DataView(data.buffer).setUint32(0, i);
          assert.equal(udp.send({ addr: PEER4, port: 9 }, data), true);
          // Back-pressure: while the socket is blocked the queue only drains on writability.
          while (udp.pending >= 512) await new Promise((r) => setTimeout(r, 1));
        }
        await reading;
        assert.ok(udp.stats.txEagain > 0, 'EAGAIN happened');
        assert.equal(udp.stats.txPackets, N);
        assert.equal(udp.pending, 0);
        return { txEagain: udp.stats.txEagain, txFlushes: udp.stats.txFlushes, sndbuf: udp.sndbuf };
      } finally {
        udp.close();
      }
    } finally {
      tun.close();
    }
  },
};

const name = process.argv[2] ?? '';
const run = cases[name];
if (!run) {
  console.error(`usage: tun-child.js <${Object.keys(cases).join('|')}>`);
  process.exit(2);
}
const result = await run();
process.stdout.write(`${JSON.stringify({ case: name, result })}\n`);
