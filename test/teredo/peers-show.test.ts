/**
 * `show peers` on a relay: relayPeersJson makes rows only for the entries that can make the list; its answer must be
 * the one the plain way gives (every entry's row, sorted, cut at the limit), ties at the cut included.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { peersJson, relayPeersJson } from '../../src/io/control.js';
import { PeerList, peerInfoList } from '../../src/teredo/peers.js';

function address(n: number): Uint8Array {
  const a = new Uint8Array(16);
  a.set([0x20, 0x01, 0, 0, 198, 51, 100, 1]);
  a[14] = (n >>> 8) & 0xff;
  a[15] = n & 0xff;
  return a;
}

test('relay show peers: the most recently active `limit` entries, exactly as listing every entry and cutting', () => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ n: fc.integer({ min: 0, max: 500 }), rx: fc.integer({ min: 0, max: 12 }), tx: fc.integer({ min: 0, max: 12 }), trusted: fc.boolean() }), { maxLength: 120 }),
      fc.option(fc.integer({ min: 0, max: 130 }), { nil: undefined }),
      fc.integer({ min: 0, max: 14 }),
      (entries, limit, nowStep) => {
        const list = new PeerList({ maxPeers: 1000, maxQueueBytesPerPeer: 100, maxQueueBytesTotal: 1000 });
        for (const e of entries) {
          const p = list.create(address(e.n), 0);
          // Few distinct times, some in the future of `now`: many ties, and clamping at 0.
          p.lastRx = e.rx * 1000;
          p.lastTx = e.tx * 1000;
          p.trusted = e.trusted;
          if (e.trusted) p.mapped = { addr: 0xc6336400 + e.n, port: 1000 + e.n };
        }
        const now = nowStep * 1000;
        const args = limit === undefined ? undefined : { limit };
        assert.deepEqual(relayPeersJson(list, now, args), peersJson('relay', peerInfoList(list), now, args));
      },
    ),
  );
});
