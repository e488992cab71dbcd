import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildReachNetwork, expectedReachable, REACH_NODES, runReachPair, type ReachNode } from '../../src/sim/reach.js';
import { buildIcmpv6Packet, parseIcmpv6Packet } from '../../src/wire/icmpv6.js';

function expectedPath(from: ReachNode, to: ReachNode): string {
  if (from === 'v6host' || to === 'v6host') return 'relay';
  if ((from === 'lan1' && to === 'lan2') || (from === 'lan2' && to === 'lan1')) return 'local';
  return 'direct';
}

// One scenario per cell of the matrix: every pair RFC 4380 with RFC 6081 can connect does, in both directions of
// initiation, with the first packet queued and answered rather than lost.
for (const from of REACH_NODES) {
  for (const to of REACH_NODES) {
    if (from === to) continue;
    const want = expectedReachable(from, to);
    test(`reach ${from} -> ${to}: ${want ? `connects (${expectedPath(from, to)})` : 'cannot connect (RFC 6081 Figure 1)'}`, () => {
      const r = runReachPair(from, to);
      assert.equal(r.ok, want);
      if (want) {
        assert.equal(r.path, expectedPath(from, to));
        assert.ok(r.firstAnswered, 'the first echo request waited in a queue and was answered');
        assert.equal(r.answered, r.sent);
        assert.ok(r.firstPacketMs !== null && r.firstPacketMs < 1000);
      }
    });
  }
}

test('Miredo floor: what Miredo cannot do (report §7), transit6 does: the symmetric client starts exchanges', () => {
  for (const to of ['fc', 'rc', 'pub', 'v6host'] as const) assert.equal(runReachPair('sym', to).ok, true, `sym -> ${to}`);
});

test('queued packets leave in the order they came (Miredo: reversed, report §8.3)', () => {
  const network = buildReachNetwork({ clients: ['prc', 'prc2'] });
  const { net, clients } = network;
  net.runUntil(() => [...clients.values()].every((c) => c.status().natDetection === 'done'), 60_000);
  const seen: number[] = [];
  const prc2 = net.host('prc2');
  const before = prc2.delivered.length;
  for (let seq = 1; seq <= 8; seq++) {
    net.injectIpv6('prc', buildIcmpv6Packet(network.addressOf('prc')!, network.addressOf('prc2')!, { type: 'echo-request', identifier: 9, sequence: seq, data: new Uint8Array(4) }));
  }
  net.runFor(3000);
  for (const d of prc2.delivered.slice(before)) {
    const p = parseIcmpv6Packet(d.packet);
    if (p.ok && p.value.message.type === 'echo-request' && p.value.message.identifier === 9) seen.push(p.value.message.sequence);
  }
  assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7, 8]);
});
