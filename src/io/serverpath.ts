/**
 * The Teredo server daemon's receive path with its fast path (teredo/serverfast.ts): the sockets on the Teredo
 * port deliver their batches here instead of to the driver; each datagram goes to the fast path, which answers the
 * common Router Solicitation straight into the answering socket's send queue, and whatever it declines goes to the
 * core through the driver (Driver.feedDatagram: the core's actions are carried out at once, so answers leave in
 * the order the datagrams came). The NAT-probe socket stays with the driver.
 *
 * While someone listens on the packet tap (pcap, trace --live) or its start-up backlog is open, every datagram
 * takes the driver's path, which shows it to the tap; otherwise the fast path adds its packets to the tap's counts
 * (the metrics) without building anything.
 */
import type { ServerFastPath } from '../teredo/serverfast.js';
import type { Ipv4Port } from '../wire/ip.js';
import type { Driver } from './driver.js';
import type { TapHub } from './tap.js';
import type { UdpBatch, UdpBatchSocket } from './udp.js';

/** `fastPath()` is asked once per batch (a reload replaces it); undefined sends everything to the driver. */
export function attachServerFastPath(
  driver: Driver,
  sockets: readonly { local: Ipv4Port; socket: UdpBatchSocket }[],
  teredoPort: number,
  hub: TapHub,
  fastPath: () => ServerFastPath | undefined,
): void {
  for (const { local, socket } of sockets) {
    if (local.port !== teredoPort) continue;
    const port = local.port;
    socket.onDatagrams((batch: UdpBatch) => {
      const now = driver.now();
      const fast = hub.idle ? fastPath() : undefined;
      const { arena, offsets, lengths, srcAddrs, srcPorts, dstAddrs } = batch;
      for (let i = 0; i < batch.count; i++) {
        const off = offsets[i]!;
        const len = lengths[i]!;
        const dst = dstAddrs[i] || local.addr;
        if (fast !== undefined) {
          const sent = fast.datagram(now, srcAddrs[i]!, srcPorts[i]!, dst, port, arena, off, len);
          if (sent >= 0) {
            hub.count('udp-in', len);
            if (sent > 0) hub.count('udp-out', sent);
            continue;
          }
        }
        driver.feedDatagram({ addr: srcAddrs[i]!, port: srcPorts[i]! }, { addr: dst, port }, arena.subarray(off, off + len));
      }
      fast?.flush();
    });
  }
}
