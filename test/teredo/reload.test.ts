/**
 * A client core replaced mid-life on the same socket (the daemon's reload in place on SIGHUP): the NAT mapping
 * is warm, and the filter still lets in the server addresses the first core's probes went to. The new core must
 * not read that as a more open NAT (RFC 4380 §5.2.1: the cone test only means something if nothing else opened
 * the NAT to the secondary address).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildQualifyNetwork, NAT_KINDS, QUALIFY_ADDRESSES as A, type NatKind } from '../../src/sim/qualify.js';
import type { SimNetwork } from '../../src/sim/network.js';
import type { TraceUdp } from '../../src/sim/trace.js';
import { TeredoClient, type ClientHandover, type TeredoClientConfig } from '../../src/teredo/client.js';
import { SeededRng } from '../../src/core/rng.js';
import { CLIENT_RS_SOURCE_CONE } from '../../src/teredo/constants.js';
import { parseIpv6 } from '../../src/wire/ipv6.js';
import { parseTeredoPacket } from '../../src/wire/teredo.js';
import { buildIcmpv6Packet } from '../../src/wire/icmpv6.js';
import { v6 } from './fixtures.js';

const expectedType = { 'full-cone': 'cone', restricted: 'restricted', 'port-restricted': 'port-restricted', symmetric: 'symmetric', none: 'none' } as const;

const baseConfig = (local: { addr: number; port: number }): TeredoClientConfig => ({
  server: A.serverPrimary,
  server2: A.serverSecondary,
  probePort: A.probePort,
  local,
  natUdpTimeoutMs: 30_000,
});

/** The second core, built as the daemon builds it, and put on the client host in place of the first. */
function reload(net: SimNetwork, old: TeredoClient, local: { addr: number; port: number }, handover: ClientHandover | undefined, extra: Partial<TeredoClientConfig> = {}): TeredoClient {
  const next = new TeredoClient({ ...baseConfig(local), ...extra }, new SeededRng(99), handover);
  void old;
  net.replaceEndpoint('client', next);
  return next;
}

/** Datagrams the client sent since `since`, as the NAT's LAN side saw them. */
function sent(net: SimNetwork, since: number): TraceUdp[] {
  return net.trace.filter((e): e is TraceUdp => e.kind === 'udp' && e.at >= since && e.from === 'client');
}

function isConeRs(e: TraceUdp): boolean {
  const t = parseTeredoPacket(e.data);
  if (!t.ok) return false;
  const p = parseIpv6(t.value.ipv6);
  return p.ok && p.value.header.src.every((b, i) => b === CLIENT_RS_SOURCE_CONE[i]);
}

function natTypeEvents(net: SimNetwork, since: number): { natType: string; note: string }[] {
  return net
    .host('client')
    .events.filter((e) => e.at >= since && e.action.kind === 'state-changed' && e.action.reason === 'nat-type')
    .map((e) => {
      const d = (e.action as { detail?: Record<string, unknown> }).detail ?? {};
      return { natType: String(d.natType), note: String(d.note) };
    });
}

test('premise: behind a port-restricted NAT, a fresh core on the warm mapping is fooled into "cone" without the handover', () => {
  const { net, client, clientLocal } = buildQualifyNetwork({ nat: 'port-restricted' });
  net.runUntil(() => client.status().natDetection === 'done', 10_000);
  assert.equal(client.status().natType, 'port-restricted');
  net.runFor(1_000);
  const next = reload(net, client, clientLocal, undefined);
  net.runUntil(() => next.status().natDetection === 'done', 10_000);
  // This is the lab's symptom: the symmetric probe opened secondary:3544, so the cone answer got through.
  assert.equal(next.status().natType, 'cone');
});

for (const nat of NAT_KINDS) {
  test(`reload behind ${nat} after detection: same mapping, the detection stands, no probe on the warm mapping`, () => {
    const { net, client, clientLocal } = buildQualifyNetwork({ nat });
    net.runUntil(() => client.status().natDetection === 'done', 10_000);
    assert.equal(client.status().natType, expectedType[nat]);
    net.runFor(5_000);
    const at = net.now;
    const next = reload(net, client, clientLocal, client.handover());
    net.runUntil(() => next.status().natDetection === 'done', 10_000);
    const s = next.status();
    assert.equal(s.state, 'qualified');
    assert.equal(s.natType, expectedType[nat]);
    assert.equal(s.portFilteringKnown, client.status().portFilteringKnown);
    assert.deepEqual(s.externalMapping, client.status().externalMapping);
    // The same server and mapping: the same address, random bits included (peers keep reaching it).
    assert.deepEqual(s.teredoAddress, client.status().teredoAddress);
    assert.equal(s.addressChanges, 0);
    assert.deepEqual(natTypeEvents(net, at), [{ natType: expectedType[nat], note: 'unchanged mapping: the previous detection stands' }]);
    // Only the qualification RS (and the discovery bubble) left: no cone RS, nothing to the secondary address.
    const out = sent(net, at);
    assert.equal(out.filter(isConeRs).length, 0);
    assert.equal(out.filter((e) => e.dst.addr === A.serverSecondary).length, 0);
    assert.ok(out.some((e) => e.dst.addr === A.serverPrimary));
  });
}

test('reload after reload: the result is handed on even before the second core qualified', () => {
  const { net, client, clientLocal } = buildQualifyNetwork({ nat: 'port-restricted' });
  net.runUntil(() => client.status().natDetection === 'done', 10_000);
  const second = reload(net, client, clientLocal, client.handover());
  // At once, before the second core heard from the server.
  const third = reload(net, second, clientLocal, second.handover());
  net.runUntil(() => third.status().natDetection === 'done', 10_000);
  assert.equal(third.status().natType, 'port-restricted');
  assert.equal(natTypeEvents(net, 0).at(-1)!.note, 'unchanged mapping: the previous detection stands');
});

/** Replaces the core as soon as the first one's RS to `target` has left, before its answer is in. */
function reloadMidDetection(nat: NatKind, target: { addr: number; port: number }): { net: SimNetwork; next: TeredoClient; at: number } {
  const { net, client, clientLocal } = buildQualifyNetwork({ nat });
  const hit = net.runUntil((n) => sent(n, 0).some((e) => e.dst.addr === target.addr && e.dst.port === target.port), 10_000);
  assert.ok(hit, 'the first core sent its probe');
  assert.equal(client.status().natDetection, 'running');
  const at = net.now;
  const next = reload(net, client, clientLocal, client.handover());
  net.runUntil(() => next.status().natDetection === 'done', 120_000);
  assert.deepEqual(next.status().teredoAddress, client.status().teredoAddress);
  return { net, next, at };
}

for (const nat of NAT_KINDS) {
  test(`reload behind ${nat} in the middle of detection: detects again, only once the probes' permissions lapsed, right type`, () => {
    const { net, next, at } = reloadMidDetection(nat, { addr: A.serverSecondary, port: 3544 });
    const s = next.status();
    assert.equal(s.natDetection, 'done');
    assert.equal(s.natType, expectedType[nat]);
    if (nat === 'none') return;
    // The cone RS waited for the NAT's UDP timeout (30 s, as the client assumes) after the last RS to the
    // secondary address, which left at `at`.
    const cone = sent(net, at).filter(isConeRs);
    assert.ok(cone.length > 0);
    assert.ok(cone[0]!.at >= at + 30_000, `cone RS at ${cone[0]!.at}, last probe at ${at}`);
  });
}

test('reload behind a restricted NAT right after the port probe: the secondary address is open, the new core still says "restricted"', () => {
  // The port probe went to secondary:3546, which opens the whole secondary address in an address-restricted NAT.
  const { next } = reloadMidDetection('restricted', { addr: A.serverSecondary, port: A.probePort });
  assert.equal(next.status().natType, 'restricted');
  assert.equal(next.status().portFilteringKnown, true);
});

test('without the handover the same mid-detection reload reads the restricted NAT as "cone" (what the handover prevents)', () => {
  const { net, client, clientLocal } = buildQualifyNetwork({ nat: 'restricted' });
  net.runUntil((n) => sent(n, 0).some((e) => e.dst.addr === A.serverSecondary && e.dst.port === A.probePort), 10_000);
  const next = reload(net, client, clientLocal, undefined);
  net.runUntil(() => next.status().natDetection === 'done', 10_000);
  assert.equal(next.status().natType, 'cone');
});

test('the NAT forgot the socket across the reload: a new mapping, detection runs at once and is right', () => {
  const { net, client, clientLocal, nat } = buildQualifyNetwork({ nat: 'port-restricted' });
  net.runUntil(() => client.status().natDetection === 'done', 10_000);
  net.runFor(1_000);
  const before = client.status().externalMapping!;
  const handover = client.handover();
  nat!.dropAllMappings();
  // Sequential allocation restarts: take the old port first so that the new mapping really differs.
  nat!.outbound(net.now, { addr: A.clientPrivate, port: 1 }, { addr: A.serverPrimary, port: 3544 });
  const at = net.now;
  const next = reload(net, client, clientLocal, handover);
  net.runUntil(() => next.status().natDetection === 'done', 10_000);
  assert.notDeepEqual(next.status().externalMapping, before);
  assert.notDeepEqual(next.status().teredoAddress, client.status().teredoAddress);
  assert.equal(next.status().natType, 'port-restricted');
  assert.deepEqual(natTypeEvents(net, at), [{ natType: 'port-restricted', note: 'done' }]);
  // No wait: the old permissions went with the old mapping.
  assert.ok(net.now - at < 5_000, `detection done ${net.now - at} ms after the reload`);
  assert.ok(sent(net, at).some(isConeRs));
});

test('the NAT forgot the socket during a reload in the middle of detection: no wait for permissions the old mapping held', () => {
  const { net, client, clientLocal, nat } = buildQualifyNetwork({ nat: 'restricted' });
  net.runUntil((n) => sent(n, 0).some((e) => e.dst.addr === A.serverSecondary && e.dst.port === A.probePort), 10_000);
  const handover = client.handover();
  assert.equal(handover.natDetection, 'running');
  nat!.dropAllMappings();
  nat!.outbound(net.now, { addr: A.clientPrivate, port: 1 }, { addr: A.serverPrimary, port: 3544 });
  const at = net.now;
  const next = reload(net, client, clientLocal, handover);
  net.runUntil(() => next.status().natDetection === 'done', 10_000);
  assert.equal(next.status().natType, 'restricted');
  assert.ok(net.now - at < 5_000, `detection done ${net.now - at} ms after the reload`);
});

test('a full cone NAT in place of the port-restricted one (another mapping): the new core re-detects "cone"', () => {
  // First behind a port-restricted NAT; the handover then goes to a core with the same private address and port
  // behind a full cone NAT (a new network). The server reports another mapping: the old result must not stand.
  const first = buildQualifyNetwork({ nat: 'port-restricted' });
  first.net.runUntil(() => first.client.status().natDetection === 'done', 10_000);
  const handover = first.client.handover();
  const second = buildQualifyNetwork({ nat: 'full-cone', seed: 7 });
  // Both NATs allocate sequentially from the same first port: take it, so that the mapping really differs.
  second.nat!.outbound(0, { addr: A.clientPrivate, port: 1 }, { addr: A.serverPrimary, port: 3544 });
  const next = reload(second.net, second.client, second.clientLocal, handover);
  second.net.runUntil(() => next.status().natDetection === 'done', 10_000);
  assert.notDeepEqual(next.status().externalMapping, handover.mapping);
  assert.equal(next.status().natType, 'cone');
});

test('the handover is ignored for another socket, and its result for other servers or tests', () => {
  const { net, client, clientLocal } = buildQualifyNetwork({ nat: 'port-restricted' });
  net.runUntil(() => client.status().natDetection === 'done', 10_000);
  const h = client.handover();
  assert.equal(h.natDetection, 'done');
  assert.equal(h.natType, 'port-restricted');
  assert.ok(h.sentToServers.some((e) => e.remote.addr === A.serverSecondary && e.remote.port === 3544));
  // Another local port: the previous probes opened nothing for it, and it detects at once.
  const otherPort = { ...clientLocal, port: clientLocal.port + 1 };
  const c1 = new TeredoClient(baseConfig(otherPort), new SeededRng(1), h);
  assert.deepEqual(c1.handover().sentToServers, []);
  assert.equal(c1.handover().natDetection, 'not-started');
  // Without the probe port the tests differ: no inherited result, but the socket's history still counts.
  const c2 = new TeredoClient({ ...baseConfig(clientLocal), probePort: false }, new SeededRng(1), h);
  assert.equal(c2.handover().natDetection, 'not-started');
  assert.equal(c2.handover().sentToServers.length, h.sentToServers.length);
  // Another server: another address, nothing of the old one kept.
  const c4 = new TeredoClient({ ...baseConfig(clientLocal), server: A.serverSecondary, server2: A.serverPrimary }, new SeededRng(1), h);
  assert.equal(c4.handover().random12, undefined);
  assert.equal(c4.handover().natDetection, 'not-started');
  // Detection turned off: 'done' but no result to hand on.
  const c3 = new TeredoClient({ ...baseConfig(clientLocal), detectNat: false }, new SeededRng(1));
  c3.handleTimeout(0);
  assert.equal(c3.handover().natDetection, 'not-started');
});

test('one core: detection cut short by dormancy after the port probe starts over on waking, and waits out the permission', () => {
  // The secondary address's answers are held back, so that the port probe (to secondary:3546, which opens the
  // whole secondary address in this address-restricted NAT) is still out when the client goes dormant.
  const { net, client } = buildQualifyNetwork({ nat: 'restricted', client: { idleDormancyMs: 1_500 } });
  const hold = net.block((hop) => hop.kind === 'udp' && hop.src.addr === A.serverSecondary);
  net.runUntil(() => client.currentState === 'dormant', 10_000);
  const portProbe = sent(net, 0).find((e) => e.dst.addr === A.serverSecondary && e.dst.port === A.probePort);
  assert.ok(portProbe, 'the port probe left before the client went dormant');
  assert.equal(client.status().natDetection, 'not-started');
  net.unblock(hold);
  net.runFor(1_000);
  const wokeAt = net.now;
  // Traffic every second from now on keeps it awake (it would doze off again after 1.5 s).
  const done = (): boolean => client.currentState === 'qualified' && client.status().natDetection === 'done';
  for (let seq = 1; seq <= 60 && !done(); seq++) {
    const src = client.teredoAddress ?? v6('fe80::ffff:ffff:ffff');
    net.injectIpv6('client', buildIcmpv6Packet(src, v6('2001:db8:1::10'), { type: 'echo-request', identifier: 1, sequence: seq, data: new Uint8Array(4) }));
    net.runUntil(done, 1_000);
  }
  assert.ok(done(), `detection ${client.status().natDetection}, state ${client.currentState}`);
  assert.equal(client.status().natType, 'restricted');
  const cone = sent(net, wokeAt).filter(isConeRs);
  assert.ok(cone.length > 0 && cone[0]!.at >= portProbe.at + 30_000, `cone RS at ${cone[0]?.at}, port probe at ${portProbe.at}`);
});
