/**
 * Load generators for bench/teredo.ts, run inside a lab namespace; each prints one JSON line.
 *
 *   node dist/bench/load.js rs --server A.B.C.D [--port 3544] [--duration S] [--sockets N] [--batch N]
 *     Teredo router solicitations (RFC 4380 §5.2.1: auth header with a fresh nonce, RS from fe80::8000:ffff:ffff:fffe
 *     to ff02::2) sent as fast as sendmmsg takes them, in batches from N sockets (N source ports), for S seconds;
 *     counts the router advertisements that come back. Output: {sent, answered, seconds, answeredPerS, ...}.
 *
 *   node dist/bench/load.js fill --server A.B.C.D --start I --count N [--pps R]
 *     N native IPv6/UDP packets from this host to N distinct Teredo addresses (server A.B.C.D, mapped address
 *     198.18.0.0/15 + port, numbered from I), through a raw socket, at R packets/s: every one makes the relay
 *     create a peer entry. Output: {sent, errors, seconds}.
 */
import { parseArgs } from 'node:util';
import { UdpBatchSocket } from '../src/io/udp.js';
import { loadNative } from '../src/io/native.js';
import { buildIcmpv6Packet } from '../src/wire/icmpv6.js';
import { formatIpv4, parseIpv4 } from '../src/wire/ip.js';
import { ALL_ROUTERS } from '../src/wire/ipv6class.js';
import { emitIpv6Header } from '../src/wire/ipv6.js';
import { encodeTeredoAddress, encodeTeredoPacket, TEREDO_PORT } from '../src/wire/teredo.js';

const RS_SOURCE = Uint8Array.of(0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x80, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe);
/** First mapped address of the fill: 198.18.0.0 (benchmarking range, global for Teredo, routed nowhere here). */
const FILL_BASE = 0xc6120000;

function num(s: string | undefined, name: string, min: number): number {
  const n = Number(s);
  if (!Number.isFinite(n) || n < min) throw new Error(`--${name} must be a number >= ${min}, not '${String(s)}'`);
  return n;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function rsLoad(server: number, port: number, durationS: number, nSockets: number, batch: number): Promise<Record<string, number>> {
  const rs = buildIcmpv6Packet(RS_SOURCE, ALL_ROUTERS, { type: 'router-solicitation', options: [] });
  const template = encodeTeredoPacket({ auth: { clientId: new Uint8Array(0), authValue: new Uint8Array(0), nonce: new Uint8Array(8), confirmation: 0 }, ipv6: rs });
  const nonceAt = 4; // auth header: 0x0001, id-len 0, au-len 0, then the 8-byte nonce
  const sockets = Array.from({ length: nSockets }, () => UdpBatchSocket.bind('0.0.0.0', 0, { rcvbuf: 4 << 20, sndbuf: 4 << 20, sendQueuePackets: batch * 2 }));
  let answered = 0;
  let other = 0;
  for (const s of sockets) {
    s.onDatagrams((b) => {
      for (let i = 0; i < b.count; i++) {
        // An RA is an auth header (13+ bytes), an origin indication (8) and an IPv6 packet with an ICMPv6 RA.
        if (b.lengths[i]! > 60) answered++;
        else other++;
      }
    });
  }
  const msg = template.slice();
  let seq = 0;
  const t0 = performance.now();
  const end = t0 + durationS * 1000;
  let stop = false;
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      if (performance.now() >= end) {
        stop = true;
        resolve();
        return;
      }
      for (const s of sockets) {
        for (let k = 0; k < batch; k++) {
          seq++;
          msg[nonceAt] = seq >>> 24;
          msg[nonceAt + 1] = (seq >>> 16) & 0xff;
          msg[nonceAt + 2] = (seq >>> 8) & 0xff;
          msg[nonceAt + 3] = seq & 0xff;
          s.sendTo(server, port, msg, 0, msg.length);
        }
        s.flush();
      }
      // Yield to the poll phase so the answers are read, then go on.
      setImmediate(tick);
    };
    tick();
  });
  const seconds = (performance.now() - t0) / 1000;
  const answeredInTime = answered;
  await sleep(300); // stragglers
  void stop;
  const sent = sockets.reduce((a, s) => a + s.stats.txPackets, 0);
  const dropped = sockets.reduce((a, s) => a + s.stats.txDropped + s.stats.txErrors, 0);
  for (const s of sockets) s.close();
  return { sent, notSent: dropped, answered: answeredInTime, answeredLate: answered - answeredInTime, other, seconds, answeredPerS: answeredInTime / seconds, sentPerS: sent / seconds };
}

async function fill(server: number, start: number, count: number, pps: number): Promise<Record<string, number>> {
  const native = loadNative();
  const fd = native.rawOpen(6, 255);
  const src = Uint8Array.of(0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10);
  const p = new Uint8Array(48);
  const t0 = performance.now();
  let sent = 0;
  let errors = 0;
  let eagain = 0;
  for (let i = 0; i < count; i++) {
    const n = start + i;
    const dst = encodeTeredoAddress({ server, flags: 0, mappedAddr: FILL_BASE + (n >>> 8), mappedPort: 10_000 + (n & 0xff) });
    emitIpv6Header({ src, dst, nextHeader: 17, payloadLength: 8, hopLimit: 64 }, p, 0);
    p[40] = 0x27; // UDP 10000 -> 9, length 8, no payload
    p[41] = 0x10;
    p[42] = 0;
    p[43] = 9;
    p[44] = 0;
    p[45] = 8;
    for (;;) {
      const r = native.rawSend(fd, p, 0, p.length, null);
      if (r === -11) {
        eagain++;
        await sleep(1);
        continue;
      }
      if (r < 0) errors++;
      else sent++;
      break;
    }
    // Pace: stay on schedule for `pps`, checking every 500 packets.
    if (i % 500 === 499) {
      const due = t0 + ((i + 1) / pps) * 1000;
      const ahead = due - performance.now();
      if (ahead > 1) await sleep(ahead);
    }
  }
  native.close(fd);
  return { sent, errors, eagain, seconds: (performance.now() - t0) / 1000 };
}

async function main(): Promise<void> {
  const [mode, ...rest] = process.argv.slice(2);
  const { values } = parseArgs({
    args: rest,
    options: {
      server: { type: 'string' },
      port: { type: 'string', default: String(TEREDO_PORT) },
      duration: { type: 'string', default: '5' },
      sockets: { type: 'string', default: '16' },
      batch: { type: 'string', default: '64' },
      start: { type: 'string', default: '0' },
      count: { type: 'string', default: '100000' },
      pps: { type: 'string', default: '50000' },
    },
  });
  const server = values.server !== undefined ? parseIpv4(values.server) : undefined;
  if (server === undefined) throw new Error('--server A.B.C.D is required');
  let out: Record<string, number>;
  if (mode === 'rs') {
    out = await rsLoad(server, num(values.port, 'port', 1), num(values.duration, 'duration', 0.1), num(values.sockets, 'sockets', 1), num(values.batch, 'batch', 1));
  } else if (mode === 'fill') {
    out = await fill(server, num(values.start, 'start', 0), num(values.count, 'count', 1), num(values.pps, 'pps', 1));
  } else throw new Error(`unknown mode '${String(mode)}' (rs, fill)`);
  process.stdout.write(`${JSON.stringify({ mode, server: formatIpv4(server), ...out })}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench/load: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(2);
});
