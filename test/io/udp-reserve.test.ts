/**
 * UdpBatchSocket.reserve(): datagrams written in place into the send queue (the Teredo server's fast path) leave
 * like sendTo()'s, in queue order, from the chosen source; refusals are counted as sendTo() counts them.
 * Unprivileged, over loopback.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UdpBatchSocket, type UdpBatch } from '../../src/io/udp.js';
import { parseIpv4 } from '../../src/wire/ip.js';

const ip = (s: string): number => parseIpv4(s)!;

function receive(sock: UdpBatchSocket, n: number): Promise<{ src: number; data: number[] }[]> {
  const got: { src: number; data: number[] }[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out with ${got.length} of ${n} datagrams`)), 5000);
    sock.onDatagrams((b: UdpBatch) => {
      for (let i = 0; i < b.count; i++) got.push({ src: b.srcAddrs[i]!, data: [...b.datagram(i)] });
      if (got.length >= n) {
        clearTimeout(timer);
        resolve(got);
      }
    });
  });
}

test('reserve(): in-place datagrams go out in queue order with sendTo()s, from the chosen source', async () => {
  const rx = UdpBatchSocket.bind('0.0.0.0', 0);
  const tx = UdpBatchSocket.bind('0.0.0.0', 0, { sendQueuePackets: 3 });
  try {
    const got = receive(rx, 5);
    const lo = ip('127.0.0.1');
    tx.sendTo(lo, rx.port, Uint8Array.of(1, 1), 0, 2);
    const at = tx.reserve(lo, rx.port, 3, ip('127.0.0.7'));
    assert.ok(at >= 0);
    tx.sendBuffer.set([2, 2, 2], at);
    tx.sendTo(lo, rx.port, Uint8Array.of(3), 0, 1);
    // The queue is full (3 packets): the next reservation flushes it first, then takes the front.
    const at2 = tx.reserve(lo, rx.port, 4);
    assert.equal(at2, 0);
    assert.equal(tx.stats.txPackets, 3);
    tx.sendBuffer.set([4, 4, 4, 4], at2);
    const at3 = tx.reserve(lo, rx.port, 1);
    tx.sendBuffer[at3] = 5;
    assert.equal(tx.pending, 2);
    const d = await got;
    assert.deepEqual(d.map((g) => g.data), [[1, 1], [2, 2, 2], [3], [4, 4, 4, 4], [5]]);
    assert.equal(d[1]!.src, ip('127.0.0.7'));
    assert.equal(d[0]!.src, lo);
    assert.equal(tx.stats.txPackets, 5);
    assert.equal(tx.stats.txBytes, 2 + 3 + 1 + 4 + 1);
  } finally {
    rx.close();
    tx.close();
  }
});

test('reserve(): too long or on a closed socket is refused (-1) and counted', () => {
  const tx = UdpBatchSocket.bind('127.0.0.1', 0);
  assert.equal(tx.reserve(ip('127.0.0.1'), 9, 65536), -1);
  assert.equal(tx.stats.txErrors, 1);
  assert.equal(tx.errors.get('tx:EMSGSIZE'), 1);
  tx.close();
  assert.equal(tx.reserve(ip('127.0.0.1'), 9, 10), -1);
  assert.equal(tx.stats.txDropped, 1);
  assert.equal(tx.errors.get('tx:closed'), 1);
  assert.equal(tx.pending, 0);
});
