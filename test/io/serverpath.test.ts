/**
 * The server daemon's receive path (src/io/serverpath.ts) with stand-ins for the driver and the sockets: RS on the
 * Teredo port are answered by the fast path and counted in the tap's metrics; everything else, the NAT-probe
 * socket, and every datagram while someone listens on the tap go to the driver with the right endpoints.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { attachServerFastPath } from '../../src/io/serverpath.js';
import type { Driver } from '../../src/io/driver.js';
import { TapHub } from '../../src/io/tap.js';
import type { UdpBatch, UdpBatchSocket, UdpDatagramsCallback } from '../../src/io/udp.js';
import { ServerFastPath, type ServerFastOutput } from '../../src/teredo/serverfast.js';
import { TeredoServer } from '../../src/teredo/server.js';
import type { Ipv4Port } from '../../src/wire/ip.js';
import { buildBubble } from '../../src/wire/ipv6.js';
import { encodeTeredoAddress, encodeTeredoPacket } from '../../src/wire/teredo.js';
import { authWithNonce, rsDatagram, v4 } from '../teredo/fixtures.js';

const PRIMARY = v4('198.51.100.1');
const SECONDARY = v4('198.51.100.2');
const CLIENT: Ipv4Port = { addr: v4('203.0.113.1'), port: 40000 };

class Output implements ServerFastOutput {
  readonly sendBuffer = new Uint8Array(4096);
  readonly sent: { addr: number; port: number; src: number; length: number }[] = [];
  reserve(addr: number, port: number, length: number, src: number): number {
    this.sent.push({ addr, port, src, length });
    return 0;
  }
}

function batchOf(datagrams: { from: Ipv4Port; data: Uint8Array }[], localPort: number): UdpBatch {
  const slotSize = 2048;
  const arena = new Uint8Array(slotSize * datagrams.length);
  const lengths = new Uint32Array(datagrams.length);
  const srcAddrs = new Uint32Array(datagrams.length);
  const srcPorts = new Uint16Array(datagrams.length);
  datagrams.forEach((d, i) => {
    arena.set(d.data, i * slotSize);
    lengths[i] = d.data.length;
    srcAddrs[i] = d.from.addr;
    srcPorts[i] = d.from.port;
  });
  // dstAddrs 0: the socket's own bound address stands in (as for a kernel without IP_PKTINFO).
  const offsets = Uint32Array.from(datagrams, (_, i) => i * slotSize);
  return { count: datagrams.length, arena, offsets, lengths, srcAddrs, srcPorts, dstAddrs: new Uint32Array(datagrams.length), localPort, datagram: (i) => arena.subarray(offsets[i]!, offsets[i]! + lengths[i]!) };
}

test('RS on the Teredo port go to the fast path, the rest and the probe socket to the driver; the tap counts both', () => {
  const server = new TeredoServer({ primary: PRIMARY, secondary: SECONDARY, probePort: 3546 });
  const callbacks = new Map<string, UdpDatagramsCallback>();
  const sockets = server.localEndpoints().map((local) => ({
    local,
    socket: { onDatagrams: (cb: UdpDatagramsCallback) => callbacks.set(`${local.addr}:${local.port}`, cb) } as unknown as UdpBatchSocket,
  }));
  const fed: string[] = [];
  const driver = {
    now: () => 1000,
    feedDatagram: (from: Ipv4Port, to: Ipv4Port, data: Uint8Array) => fed.push(`${from.addr}:${from.port} -> ${to.addr}:${to.port} ${data.length}`),
  } as unknown as Driver;
  const hub = new TapHub({ backlog: 0 });
  const p = new Output();
  const s = new Output();
  const fast = new ServerFastPath(server, p, s);
  attachServerFastPath(driver, sockets, 3544, hub, () => fast);
  assert.deepEqual([...callbacks.keys()].sort(), [`${PRIMARY}:3544`, `${SECONDARY}:3544`], 'the probe socket stays with the driver');

  const rs = rsDatagram({ auth: authWithNonce([1, 2, 3, 4, 5, 6, 7, 8]) });
  const cone = rsDatagram({ cone: true });
  const client = encodeTeredoAddress({ server: PRIMARY, flags: 0, mappedAddr: CLIENT.addr, mappedPort: CLIENT.port });
  const peer = encodeTeredoAddress({ server: PRIMARY, flags: 0, mappedAddr: v4('203.0.113.9'), mappedPort: 4444 });
  const bubble = encodeTeredoPacket({ ipv6: buildBubble(client, peer) });
  callbacks.get(`${PRIMARY}:3544`)!(batchOf([{ from: CLIENT, data: rs }, { from: CLIENT, data: bubble }, { from: CLIENT, data: cone }], 3544));
  // Non-cone from the address asked, cone from the other one (RFC 5991 §3.2).
  assert.deepEqual(p.sent, [{ addr: CLIENT.addr, port: CLIENT.port, src: PRIMARY, length: 13 + 8 + 96 }]);
  assert.deepEqual(s.sent, [{ addr: CLIENT.addr, port: CLIENT.port, src: SECONDARY, length: 8 + 96 }]);
  assert.deepEqual(fed, [`${CLIENT.addr}:${CLIENT.port} -> ${PRIMARY}:3544 ${bubble.length}`]);
  assert.equal(server.events.get('router-solicitations'), 2);
  const c = hub.counts();
  assert.deepEqual(c['udp-in'], { packets: 2, bytes: rs.length + cone.length });
  assert.deepEqual(c['udp-out'], { packets: 2, bytes: 13 + 8 + 96 + 8 + 96 });

  // With a listener on the tap, the driver (which shows every packet to it) takes everything.
  const stop = hub.add(() => undefined);
  callbacks.get(`${SECONDARY}:3544`)!(batchOf([{ from: CLIENT, data: rs }], 3544));
  assert.equal(p.sent.length + s.sent.length, 2);
  assert.deepEqual(fed.at(-1), `${CLIENT.addr}:${CLIENT.port} -> ${SECONDARY}:3544 ${rs.length}`);
  stop();
  callbacks.get(`${SECONDARY}:3544`)!(batchOf([{ from: CLIENT, data: rs }], 3544));
  assert.deepEqual(s.sent.at(-1), { addr: CLIENT.addr, port: CLIENT.port, src: SECONDARY, length: 13 + 8 + 96 });
  assert.equal(fed.length, 2);
});
