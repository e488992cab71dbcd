/**
 * Per-RS cost of the Teredo server in process, core vs fast path (no I/O): the bench's Router Solicitation (auth
 * header with a nonce, cone bit, to the primary address, rate limits off as in bench/teredo.ts) answered N times.
 * Core: handleDatagram + poll + the copy of the answer into a send arena (what UdpBatchSocket.sendTo does); fast
 * path: ServerFastPath.datagram writing the answer in place. Prints ns per RS for each.
 *
 *   node dist/bench/serverfast-micro.js [N]     (default 2000000)
 */
import { ServerFastPath, type ServerFastOutput } from '../src/teredo/serverfast.js';
import { TeredoServer } from '../src/teredo/server.js';
import { buildIcmpv6Packet } from '../src/wire/icmpv6.js';
import { ALL_ROUTERS } from '../src/wire/ipv6class.js';
import { encodeTeredoPacket } from '../src/wire/teredo.js';

const n = Number(process.argv[2] ?? 2_000_000);
const PRIMARY = 0xc6336401;
const SECONDARY = 0xc6336402;
const source = Uint8Array.of(0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x80, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe);
const rs = encodeTeredoPacket({
  auth: { clientId: new Uint8Array(0), authValue: new Uint8Array(0), nonce: new Uint8Array(8), confirmation: 0 },
  ipv6: buildIcmpv6Packet(source, ALL_ROUTERS, { type: 'router-solicitation', options: [] }),
});
// The receive arena: 64 slots of 2048 bytes, each holding the RS with its own nonce.
const SLOT = 2048;
const rx = new Uint8Array(64 * SLOT);
for (let i = 0; i < 64; i++) {
  rx.set(rs, i * SLOT);
  rx[i * SLOT + 4] = i;
}

class Arena implements ServerFastOutput {
  readonly sendBuffer = new Uint8Array(1 << 20);
  private at = 0;
  reserve(_addr: number, _port: number, length: number): number {
    if (this.at + length > this.sendBuffer.length) this.at = 0;
    const a = this.at;
    this.at += length;
    return a;
  }
}

const config = { primary: PRIMARY, secondary: SECONDARY, rateLimits: { rsPerSource: undefined, rsGlobal: undefined, forwardPerSource: undefined } };
const to = { addr: PRIMARY, port: 3544 };
const out = new Arena();

function time(label: string, f: (i: number) => void): void {
  for (let i = 0; i < 100_000; i++) f(i); // warm up
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) f(i);
  const ns = Number(process.hrtime.bigint() - t0) / n;
  process.stdout.write(`${label.padEnd(44)} ${ns.toFixed(0).padStart(5)} ns/RS\n`);
}

const core = new TeredoServer(config);
time('core: handleDatagram + poll + copy', (i) => {
  const k = i & 63;
  core.handleDatagram(i, { addr: 0xcb007101, port: 40000 + (k & 15) }, to, rx.subarray(k * SLOT, k * SLOT + rs.length));
  for (let a = core.poll(); a; a = core.poll()) {
    if (a.kind === 'udp-send') {
      const at = out.reserve(0, 0, a.data.length);
      out.sendBuffer.set(a.data.subarray(0, a.data.length), at);
    }
  }
});
const fast = new ServerFastPath(new TeredoServer(config), out, out);
time('fast path: datagram, answer in place', (i) => {
  const k = i & 63;
  if (fast.datagram(i, 0xcb007101, 40000 + (k & 15), PRIMARY, 3544, rx, k * SLOT, rs.length) <= 0) throw new Error('not answered');
  if (k === 63) fast.flush(); // after each batch of 64, as the daemon does
});
