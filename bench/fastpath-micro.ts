/**
 * Per-packet cost of the relay's data decisions in process, core vs fast path (no I/O): a relay with one trusted
 * client; N native packets to it (handleIpv6 + poll, vs RelayFastPath.ipv6 into a copying sink) and N packets from
 * it (handleDatagram + poll, vs RelayFastPath.datagram). Prints ns per packet for each.
 *
 *   node dist/bench/fastpath-micro.js [N]     (default 2000000)
 */
import { SeededRng } from '../src/core/rng.js';
import { RelayFastPath, type FastSink } from '../src/teredo/fastpath.js';
import { TeredoRelay } from '../src/teredo/relay.js';
import { emitIpv6Header } from '../src/wire/ipv6.js';
import { encodeTeredoAddress } from '../src/wire/teredo.js';

const n = Number(process.argv[2] ?? 2_000_000);
const mapped = { addr: 0xcb007101, port: 40000 };
const client = encodeTeredoAddress({ server: 0xc6336401, flags: 0, mappedAddr: mapped.addr, mappedPort: mapped.port });
const host = Uint8Array.of(0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10);
const down = new Uint8Array(40 + 72);
emitIpv6Header({ src: host, dst: client, nextHeader: 17, payloadLength: 72, hopLimit: 64 }, down, 0);
const up = new Uint8Array(40 + 72);
emitIpv6Header({ src: client, dst: host, nextHeader: 17, payloadLength: 72, hopLimit: 64 }, up, 0);

function trustedRelay(): TeredoRelay {
  const relay = new TeredoRelay({ limits: { maxPeers: 1000 } }, new SeededRng(1));
  relay.handleIpv6(0, down); // creates the peer, queues, bubbles
  while (relay.poll());
  relay.handleDatagram(1, mapped, { addr: 0xc6336411, port: 3545 }, up); // from its mapping: trusted
  while (relay.poll());
  if (!relay.peers.get(client)?.trusted) throw new Error('setup: the client is not trusted');
  return relay;
}

const arena = new Uint8Array(65536);
let at = 0;
const copy = (buf: Uint8Array, offset: number, length: number): void => {
  if (at + length > arena.length) at = 0;
  arena.set(buf.subarray(offset, offset + length), at);
  at += length;
};
const sink: FastSink = { udp: (_a, _p, b, o, l) => copy(b, o, l), forward: copy, deliver: copy };

function time(label: string, f: (i: number) => void): void {
  for (let i = 0; i < 50_000; i++) f(i); // warm up
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) f(i);
  const ns = Number(process.hrtime.bigint() - t0) / n;
  process.stdout.write(`${label.padEnd(44)} ${ns.toFixed(0).padStart(5)} ns/packet\n`);
}

const core = trustedRelay();
const relay2 = trustedRelay();
const fast = new RelayFastPath(relay2);
const from = { addr: mapped.addr, port: mapped.port };
const to = { addr: 0xc6336411, port: 3545 };
time('native -> client, core (handleIpv6 + poll)', (i) => {
  core.handleIpv6(2 + i / 1e6, down);
  while (core.poll());
});
time('native -> client, fast path', (i) => {
  if (!fast.ipv6(2 + i / 1e6, down, 0, down.length, sink)) throw new Error('declined');
});
time('client -> native, core (handleDatagram + poll)', (i) => {
  core.handleDatagram(2 + i / 1e6, from, to, up);
  while (core.poll());
});
time('client -> native, fast path', (i) => {
  if (!fast.datagram(2 + i / 1e6, mapped.addr, mapped.port, to.addr, up, 0, up.length, sink)) throw new Error('declined');
});
