/**
 * Memory of the relay core's peer table, in process, without the lab: a TeredoRelay (the core the daemon runs) gets
 * native packets to N distinct Teredo addresses (server 198.51.100.1, mapped addresses from 198.18.0.0/15) at a
 * virtual 40k packets/s; each creates a peer entry, the first 16 MiB worth also a queued packet and a bubble.
 * Prints the entries held and the process's RSS.
 *
 *   node --expose-gc dist/bench/relay-memory.js [N]     (default 1000000)
 */
import { SeededRng } from '../src/core/rng.js';
import { TeredoRelay } from '../src/teredo/relay.js';
import { emitIpv6Header } from '../src/wire/ipv6.js';
import { encodeTeredoAddress } from '../src/wire/teredo.js';

const n = Number(process.argv[2] ?? 1_000_000);
if (!Number.isInteger(n) || n < 1) {
  process.stderr.write('usage: node --expose-gc dist/bench/relay-memory.js [N]\n');
  process.exit(2);
}
const gc = (globalThis as { gc?: () => void }).gc;
gc?.();
const rss0 = process.memoryUsage().rss;
const relay = new TeredoRelay({ limits: { maxPeers: 1_048_576 } }, new SeededRng(1));
const src = Uint8Array.of(0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10);
const p = new Uint8Array(48);
let now = 0;
const t0 = performance.now();
for (let i = 0; i < n; i++) {
  const dst = encodeTeredoAddress({ server: 0xc6336401, flags: 0, mappedAddr: 0xc6120000 + (i >>> 8), mappedPort: 10_000 + (i & 0xff) });
  emitIpv6Header({ src, dst, nextHeader: 17, payloadLength: 8, hopLimit: 64 }, p, 0);
  relay.handleIpv6(now, p);
  while (relay.poll());
  if (i % 40 === 39) now += 1.0137; // 40k/s of virtual time, fractional as the daemon's clock: nothing expires
}
const ms = performance.now() - t0;
gc?.();
const m = process.memoryUsage();
process.stdout.write(
  `${JSON.stringify({
    destinations: n,
    peers: relay.peers.size,
    queuedBytes: relay.peers.queuedBytes,
    rssMiB: Math.round(m.rss / 2 ** 20),
    rssBeforeMiB: Math.round(rss0 / 2 ** 20),
    heapUsedMiB: Math.round(m.heapUsed / 2 ** 20),
    bytesPerPeer: Math.round((m.rss - rss0) / relay.peers.size),
    newPeersPerS: Math.round((n / ms) * 1000),
  })}\n`,
);
