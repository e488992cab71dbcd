/**
 * Memory of the relay core's peer table, in process, without the lab: a TeredoRelay (the core the daemon runs, behind
 * its fast path, with the rate limits off as the lab bench runs it) gets native packets to N distinct Teredo
 * addresses (server 198.51.100.1, mapped addresses from 198.18.0.0/15), on a virtual clock at `--pps` packets/s.
 * Each creates a peer entry, the first 16 MiB worth also a queued packet and a bubble.
 *
 *   --mode hold (default): timers never run, so every entry stays: the table's size per entry (bytes/entry from the
 *                          RSS after a full GC).
 *   --mode lab:            timers run as in the daemon (bubbles every 2 s, an unanswered entry and its queued packet
 *                          removed after 4, ICMPv6 errors about them): what the lab's `bench/load.js fill` does to
 *                          the daemon, garbage included.
 *
 * Prints the entries held, RSS sampled every 10k packets during the fill (peak) and after it (before and after a
 * full GC), and the kernel's high-water mark (VmHWM, what the lab bench reports as peak).
 *
 *   node --expose-gc dist/bench/relay-memory.js [N] [--mode hold|lab] [--pps R]     (default 1000000, hold, 40000)
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { SeededRng } from '../src/core/rng.js';
import { RelayFastPath, type FastSink } from '../src/teredo/fastpath.js';
import { TeredoRelay } from '../src/teredo/relay.js';
import { emitIpv6Header } from '../src/wire/ipv6.js';
import { encodeTeredoAddress } from '../src/wire/teredo.js';

function usage(): never {
  process.stderr.write('usage: node --expose-gc dist/bench/relay-memory.js [N] [--mode hold|lab] [--pps R]\n');
  process.exit(2);
}

let parsed;
try {
  parsed = parseArgs({ allowPositionals: true, options: { mode: { type: 'string', default: 'hold' }, pps: { type: 'string', default: '40000' } } });
} catch {
  usage();
}
const n = Number(parsed.positionals[0] ?? 1_000_000);
const mode = parsed.values.mode;
const pps = Number(parsed.values.pps);
if (!Number.isInteger(n) || n < 1 || (mode !== 'hold' && mode !== 'lab') || !(pps > 0)) usage();

const gc = (globalThis as { gc?: () => void }).gc;
const mib = (b: number): number => Math.round(b / 2 ** 20);
function hwmBytes(): number {
  try {
    return Number(/VmHWM:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

gc?.();
const rss0 = process.memoryUsage().rss;
const relay = new TeredoRelay(
  {
    limits: { maxPeers: 1_048_576 },
    rateLimits: { newPeerPerSource: undefined, newPeerGlobal: undefined, icmpErrors: undefined },
  },
  new SeededRng(1),
);
const fast = new RelayFastPath(relay);
const sink: FastSink = { udp: () => {}, forward: () => {}, deliver: () => {} };
const src = Uint8Array.of(0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10);
const p = new Uint8Array(48);
p.set([0x27, 0x10, 0, 9, 0, 8], 40); // UDP 10000 -> 9, as bench/load.js fill sends
const step = 1000 / pps;
let now = 0.0137; // fractional as the daemon's clock
let actions = 0;
let peakRss = 0;
let maxPeers = 0;
const t0 = performance.now();
for (let i = 0; i < n; i++) {
  const dst = encodeTeredoAddress({ server: 0xc6336401, flags: 0, mappedAddr: 0xc6120000 + (i >>> 8), mappedPort: 10_000 + (i & 0xff) });
  emitIpv6Header({ src, dst, nextHeader: 17, payloadLength: 8, hopLimit: 64 }, p, 0);
  if (!fast.ipv6(now, p, 0, p.length, sink)) relay.handleIpv6(now, p);
  while (relay.poll()) actions++;
  now += step;
  if (mode === 'lab') {
    const due = relay.pollTimeout();
    if (due !== undefined && due <= now) {
      relay.handleTimeout(now);
      while (relay.poll()) actions++;
    }
  }
  if (i % 10_000 === 9_999) {
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
    maxPeers = Math.max(maxPeers, relay.peers.size);
  }
}
const ms = performance.now() - t0;
const rssNoGc = process.memoryUsage().rss;
peakRss = Math.max(peakRss, rssNoGc);
gc?.();
const m = process.memoryUsage();
process.stdout.write(
  `${JSON.stringify({
    mode,
    destinations: n,
    peers: relay.peers.size,
    maxPeers,
    queuedBytes: relay.peers.queuedBytes,
    actions,
    rssBeforeMiB: mib(rss0),
    peakRssMiB: mib(peakRss),
    hwmMiB: mib(hwmBytes()),
    rssAfterMiB: mib(rssNoGc),
    rssAfterGcMiB: mib(m.rss),
    heapUsedMiB: mib(m.heapUsed),
    heapTotalMiB: mib(m.heapTotal),
    externalMiB: mib(m.external),
    bytesPerPeer: Math.round((m.rss - rss0) / Math.max(1, relay.peers.size)),
    packetsPerS: Math.round((n / ms) * 1000),
  })}\n`,
);
