/**
 * Microbenchmark of the I/O layer through its wrappers (not a test: run it by hand).
 *
 *   node dist/test/io/bench.js udp [count]    UDP loopback: UdpBatchSocket -> UdpBatchSocket, and node:dgram for scale
 *   node dist/test/io/bench.js tun [count]    root: TUN -> kernel -> UDP and UDP -> kernel -> TUN, in a private
 *                                             network namespace created and removed by the benchmark
 *
 * Single thread, one process: the sender keeps at most WINDOW datagrams in flight, so the figures are the
 * event-loop cost of both ends together (one core), with no loss from buffer overflow.
 */
import { spawnSync, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { fileURLToPath } from 'node:url';
import { UdpBatchSocket } from '../../src/io/udp.js';
import { TunDevice } from '../../src/io/tun.js';
import { ipv4Packet } from './packets.js';

const WINDOW = 1024;
const PER_TURN = 256;
const SIZE = 64;

interface Result { name: string; count: number; delivered: number; ms: number }

/** Calls send(i) for i < count keeping sent - received() <= WINDOW, yielding to the loop every PER_TURN. */
function pump(name: string, count: number, send: (i: number) => void, received: () => number): Promise<Result> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let sent = 0;
    let lastProgress = t0;
    let lastReceived = 0;
    const step = (): void => {
      const now = performance.now();
      const got = received();
      if (got !== lastReceived) {
        lastReceived = got;
        lastProgress = now;
      }
      if (got >= count || now - lastProgress > 500) {
        resolve({ name, count, delivered: got, ms: (got >= count ? now : lastProgress) - t0 });
        return;
      }
      for (let k = 0; k < PER_TURN && sent < count && sent - got < WINDOW; k++) send(sent++);
      setImmediate(step);
    };
    setImmediate(step);
  });
}

function report(r: Result): void {
  const pps = (r.delivered / r.ms) * 1000;
  const loss = Math.max(0, r.count - r.delivered); // the TUN also carries the kernel's own IPv6 chatter (RS, MLD)
  console.log(`${r.name.padEnd(34)} ${Math.round(pps).toString().padStart(8)} pps  ${(1000 / pps * 1000).toFixed(2)} µs/pkt` +
    `  (${Math.min(r.delivered, r.count)}/${r.count} in ${r.ms.toFixed(0)} ms${loss ? `, ${loss} lost` : ''})`);
}

async function benchUdp(count: number): Promise<void> {
  {
    const rx = UdpBatchSocket.bind('127.0.0.1', 0, { rcvbuf: 4 << 20 });
    const tx = UdpBatchSocket.bind('127.0.0.1', 0);
    let got = 0;
    rx.onDatagrams((b) => { got += b.count; });
    const data = new Uint8Array(SIZE);
    const dst = { addr: 0x7f000001, port: rx.port };
    report(await pump(`UdpBatchSocket loopback ${SIZE} B`, count, () => { tx.send(dst, data); }, () => got));
    console.log(`  rx batches ${rx.stats.rxBatches} (avg ${(rx.stats.rxPackets / rx.stats.rxBatches).toFixed(1)}), tx flushes ${tx.stats.txFlushes}`);
    rx.close();
    tx.close();
  }
  {
    const rx = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
    const tx = dgram.createSocket('udp4');
    await new Promise<void>((r) => rx.bind(0, '127.0.0.1', r));
    await new Promise<void>((r) => tx.bind(0, '127.0.0.1', r));
    let got = 0;
    rx.on('message', () => { got++; });
    const data = new Uint8Array(SIZE);
    const port = rx.address().port;
    report(await pump(`node:dgram loopback ${SIZE} B`, Math.min(count, 200_000), () => tx.send(data, port, '127.0.0.1'), () => got));
    rx.close();
    tx.close();
  }
}

/** Runs inside the benchmark's namespace. */
async function benchTunInner(count: number): Promise<void> {
  const sh = (...a: string[]) => execFileSync('ip', a, { stdio: 'inherit' });
  const tun = TunDevice.open('t6bench0');
  sh('link', 'set', 'lo', 'up');
  sh('link', 'set', 't6bench0', 'mtu', '1280', 'txqueuelen', '10000', 'up');
  sh('addr', 'add', '10.78.0.1/24', 'dev', 't6bench0');
  const udp = UdpBatchSocket.bind('10.78.0.1', 0, { rcvbuf: 4 << 20, sndbuf: 4 << 20 });
  let udpGot = 0;
  let tunGot = 0;
  udp.onDatagrams((b) => { udpGot += b.count; });
  tun.onPackets((_a, _l, n) => { tunGot += n; });
  // TUN -> kernel -> UDP socket: IPv4/UDP packets from 10.78.0.2:9 to our socket (UDP checksum 0 = none).
  const payload = new Uint8Array(8 + SIZE);
  const dv = new DataView(payload.buffer);
  dv.setUint16(0, 9);
  dv.setUint16(2, udp.port);
  dv.setUint16(4, 8 + SIZE);
  const pkt = ipv4Packet(0x0a4e0002, 0x0a4e0001, 17, payload);
  report(await pump(`TUN write -> UDP recv ${SIZE} B`, count, () => { tun.write(pkt); }, () => udpGot));
  // UDP socket -> kernel -> TUN.
  const data = new Uint8Array(SIZE);
  const dst = { addr: 0x0a4e0002, port: 9 };
  report(await pump(`UDP send -> TUN read ${SIZE} B`, count, () => { udp.send(dst, data); }, () => tunGot));
  console.log(`  tun rx batches ${tun.stats.rxBatches} (avg ${(tun.stats.rxPackets / tun.stats.rxBatches).toFixed(1)}), udp rx batches ${udp.stats.rxBatches}`);
  udp.close();
  tun.close();
}

const mode = process.argv[2];
const count = Number(process.argv[3] ?? 1_000_000);
if (mode === 'udp') await benchUdp(count);
else if (mode === 'tun-inner') await benchTunInner(count);
else if (mode === 'tun') {
  if (process.getuid?.() !== 0) {
    console.error('tun benchmark needs root');
    process.exit(1);
  }
  const ns = `t6-io-bench-${randomBytes(3).toString('hex')}`;
  execFileSync('ip', ['netns', 'add', ns]);
  try {
    spawnSync('ip', ['netns', 'exec', ns, process.execPath, fileURLToPath(import.meta.url), 'tun-inner', String(count)], { stdio: 'inherit' });
  } finally {
    execFileSync('ip', ['netns', 'del', ns]);
  }
} else {
  console.error('usage: node dist/test/io/bench.js udp|tun [count]');
  process.exit(2);
}
