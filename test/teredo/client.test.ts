import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildQualifyNetwork, NAT_KINDS, runQualify, QUALIFY_ADDRESSES as A, qualifyJson } from '../../src/sim/qualify.js';
import { TeredoClient } from '../../src/teredo/client.js';
import { TeredoServer } from '../../src/teredo/server.js';
import type { Action } from '../../src/core/endpoint.js';
import { SeededRng } from '../../src/core/rng.js';
import { buildIcmpv6Packet } from '../../src/wire/icmpv6.js';
import { decodeTeredoAddress, encodeTeredoPacket, parseTeredoPacket } from '../../src/wire/teredo.js';
import { formatIpv4Port, type Ipv4Port } from '../../src/wire/ip.js';
import { authWithNonce, ep, v6 } from './fixtures.js';

const expectedType = {
  'full-cone': 'cone',
  restricted: 'restricted',
  'port-restricted': 'port-restricted',
  symmetric: 'symmetric',
  none: 'none',
} as const;

for (const nat of NAT_KINDS) {
  test(`qualification behind ${nat}: right NAT type, and the address decodes to the NAT's real mapping`, () => {
    const r = runQualify({ nat });
    assert.equal(r.status.state, 'qualified');
    assert.equal(r.status.natType, expectedType[nat]);
    assert.equal(r.status.natDetection, 'done');
    assert.ok(r.natMapping);
    const decoded = decodeTeredoAddress(r.status.teredoAddress!);
    assert.ok(decoded);
    assert.equal(formatIpv4Port({ addr: decoded.mappedAddr, port: decoded.mappedPort }), formatIpv4Port(r.natMapping));
    assert.equal(decoded.server, A.serverPrimary);
    // RFC 5991 §3.2: never the cone bit, never U, G or the reserved bit.
    assert.equal(decoded.flags & 0xc300, 0);
    assert.deepEqual(r.status.externalMapping, r.natMapping);
    // Qualified after one round trip, long before the NAT type is known.
    assert.ok(r.qualifiedAt! < 100, `qualified at ${r.qualifiedAt}`);
    assert.ok(r.detectionDoneAt! < 5000, `detection done at ${r.detectionDoneAt}`);
  });
}

test('with a server that has no probe port (like miredo-server), both restricted kinds read "restricted", port filtering unknown', () => {
  for (const nat of ['restricted', 'port-restricted'] as const) {
    const r = runQualify({ nat, plainServer: true });
    assert.equal(r.status.state, 'qualified');
    assert.equal(r.status.natType, 'restricted');
    assert.equal(r.status.portFilteringKnown, false);
  }
  const cone = runQualify({ nat: 'full-cone', plainServer: true });
  assert.equal(cone.status.natType, 'cone');
  const sym = runQualify({ nat: 'symmetric', plainServer: true });
  assert.equal(sym.status.natType, 'symmetric');
});

test('server unreachable for 14 s: offline after 3 RSs, then qualified within 5 s of its return (Miredo: +108 s)', () => {
  const { net, client } = buildQualifyNetwork({ nat: 'port-restricted' });
  const id = net.block((hop) => hop.kind === 'udp' && hop.dst.addr === A.serverPrimary);
  net.runUntil(13_000);
  const s = client.status();
  assert.equal(s.state, 'offline');
  assert.equal(s.reason, 'server-unreachable');
  const offlineEvents = net.host('client').events.filter((e) => e.action.kind === 'state-changed' && e.action.state === 'offline');
  assert.equal(offlineEvents.length, 1);
  assert.ok(offlineEvents[0]!.at >= 12_000 && offlineEvents[0]!.at < 12_100, `offline at ${offlineEvents[0]!.at}`);
  net.runUntil(14_000);
  net.unblock(id);
  const back = net.runUntil(() => client.currentState === 'qualified', 5_000);
  assert.ok(back, 'qualified within 5 s of the server coming back');
  assert.ok(net.now - 14_000 <= 5_000);
});

test('the server comes back at any moment: always noticed within 5 s', () => {
  for (const downFor of [6_000, 9_500, 14_000, 31_000, 100_000]) {
    const { net, client } = buildQualifyNetwork({ nat: 'restricted', seed: downFor });
    const id = net.block((hop) => hop.kind === 'udp' && hop.dst.addr === A.serverPrimary);
    net.runUntil(downFor);
    net.unblock(id);
    assert.ok(net.runUntil(() => client.currentState === 'qualified', 5_000), `down for ${downFor} ms`);
  }
});

for (const nat of ['full-cone', 'restricted', 'port-restricted', 'symmetric'] as const) {
  test(`30 s NAT UDP timeout, 10 minutes idle behind ${nat}: zero address changes`, () => {
    const r = runQualify({ nat, udpTimeoutMs: 30_000, idleMs: 600_000 });
    assert.equal(r.status.addressChanges, 0);
    assert.equal(r.status.state, 'qualified');
    const d = decodeTeredoAddress(r.status.teredoAddress!)!;
    assert.equal(formatIpv4Port({ addr: d.mappedAddr, port: d.mappedPort }), formatIpv4Port(r.natMapping!));
    // The refreshes really happened, all inside the 30 s window.
    const rs = r.packets.filter((p) => p.segment === 'inet' && p.label.startsWith('RS') && p.dst === '198.51.100.1:3544' && !p.label.includes('cone'));
    assert.ok(rs.length >= 600 / 21, `${rs.length} refreshes`);
    for (let i = 1; i < rs.length; i++) assert.ok(rs[i]!.at - rs[i - 1]!.at < 30_000);
  });
}

test('a client assuming a longer timeout than the NAT has loses its mapping, and reports each change', () => {
  // The NAT forgets after 20 s but the client was told 60 s: refreshes come at 30-42 s.
  const r = runQualify({ nat: 'port-restricted', udpTimeoutMs: 20_000, clientAssumedTimeoutMs: 60_000, idleMs: 300_000 });
  assert.ok(r.status.addressChanges > 0);
  const changes = r.net.host('client').events.filter((e) => e.action.kind === 'state-changed' && e.action.reason === 'mapping changed');
  assert.equal(changes.length, r.status.addressChanges);
  const d = decodeTeredoAddress(r.status.teredoAddress!)!;
  assert.equal(formatIpv4Port({ addr: d.mappedAddr, port: d.mappedPort }), formatIpv4Port(r.status.externalMapping!));
});

test('a NAT that drops every mapping: the next refresh learns the new one, one address change, reported once', () => {
  const { net, client, nat } = buildQualifyNetwork({ nat: 'port-restricted' });
  net.runUntil(() => client.status().natDetection === 'done', 10_000);
  const before = client.status().externalMapping!;
  const addrBefore = client.teredoAddress!;
  nat!.dropAllMappings();
  // Sequential allocation restarts: make sure the port really differs by using one first.
  nat!.outbound(net.now, { addr: A.clientPrivate, port: 1 }, { addr: A.serverPrimary, port: 3544 });
  net.runFor(30_000);
  const after = client.status().externalMapping!;
  assert.notDeepEqual(after, before);
  assert.equal(client.status().addressChanges, 1);
  assert.notDeepEqual([...client.teredoAddress!], [...addrBefore]);
  const ups = net.host('client').events.filter((e) => e.action.kind === 'iface-up');
  assert.equal(ups.length, 2);
});

test('server lost while qualified: offline (server-lost) with the interface down, qualified again when it returns', () => {
  const { net, client } = buildQualifyNetwork({ nat: 'full-cone' });
  net.runUntil(() => client.status().natDetection === 'done', 10_000);
  // The server's side goes dark: the client's RSs still cross its NAT, as they would in real life.
  const id = net.block((hop) => hop.kind === 'udp' && hop.segment === 'inet' && hop.dst.addr === A.serverPrimary);
  net.runFor(60_000);
  assert.equal(client.currentState, 'offline');
  assert.equal(client.status().reason, 'server-lost');
  assert.ok(net.host('client').events.some((e) => e.action.kind === 'iface-down'));
  net.unblock(id);
  assert.ok(net.runUntil(() => client.currentState === 'qualified', 5_000));
  // Same NAT mapping kept alive by the RS retries: the address did not change.
  assert.equal(client.status().addressChanges, 0);
});

test('same seed, same run; another seed, other random bits', () => {
  const a = JSON.stringify(qualifyJson(runQualify({ nat: 'symmetric', seed: 7 })));
  const b = JSON.stringify(qualifyJson(runQualify({ nat: 'symmetric', seed: 7 })));
  const c = JSON.stringify(qualifyJson(runQualify({ nat: 'symmetric', seed: 8 })));
  assert.equal(a, b);
  assert.notEqual(a, c);
});

// ---------------------------------------------------------------------------------------------------------
// The client alone, fed by hand

function drain(c: TeredoClient): Action[] {
  const out: Action[] = [];
  for (let a = c.poll(); a; a = c.poll()) out.push(a);
  return out;
}

const SERVER: Ipv4Port = { addr: A.serverPrimary, port: 3544 };
const LOCAL: Ipv4Port = { addr: A.clientPrivate, port: 50000 };

function startedClient(): { client: TeredoClient; rs: Uint8Array; server: TeredoServer } {
  const client = new TeredoClient({ server: A.serverPrimary, local: LOCAL, detectNat: false }, new SeededRng(1));
  client.handleTimeout(0);
  const sent = drain(client).filter((a) => a.kind === 'udp-send');
  assert.equal(sent.length, 1);
  const server = new TeredoServer({ primary: A.serverPrimary, secondary: A.serverSecondary });
  return { client, rs: (sent[0] as Extract<Action, { kind: 'udp-send' }>).data, server };
}

function raFor(server: TeredoServer, rs: Uint8Array, mapped: Ipv4Port): Uint8Array {
  server.handleDatagram(0, mapped, SERVER, rs);
  const a = server.poll();
  assert.ok(a && a.kind === 'udp-send');
  return a.data;
}

test('the RS carries an auth header with a fresh nonce, from fe80::ffff:ffff:ffff to ff02::2', () => {
  const { rs } = startedClient();
  const t = parseTeredoPacket(rs);
  assert.ok(t.ok && t.value.auth && t.value.auth.nonce.length === 8 && t.value.origin === undefined);
});

test('spoofed RAs are dropped: wrong nonce, wrong source, no origin indication, two prefixes', () => {
  const { client, rs, server } = startedClient();
  const mapped = ep('203.0.113.1:40000');
  const good = raFor(server, rs, mapped);
  const parsed = parseTeredoPacket(good);
  assert.ok(parsed.ok);
  // Wrong nonce.
  const forged = encodeTeredoPacket({ auth: authWithNonce([0, 0, 0, 0, 0, 0, 0, 0]), origin: mapped, ipv6: parsed.value.ipv6 });
  client.handleDatagram(1, SERVER, LOCAL, forged);
  // Right bytes from the wrong place.
  client.handleDatagram(1, ep('203.0.113.99:3544'), LOCAL, good);
  // No origin indication.
  client.handleDatagram(1, SERVER, LOCAL, encodeTeredoPacket({ auth: parsed.value.auth!, ipv6: parsed.value.ipv6 }));
  // Two prefix options.
  const twoPrefixes = buildIcmpv6Packet(v6('fe80::8000:f227:39cc:9bfe'), v6('fe80::ffff:ffff:ffff'), {
    type: 'router-advertisement',
    curHopLimit: 0,
    managed: false,
    other: false,
    routerLifetime: 0,
    reachableTime: 0,
    retransTimer: 0,
    options: [
      { type: 'prefix-information', prefixLength: 64, onLink: false, autonomous: true, validLifetime: 1, preferredLifetime: 1, prefix: v6('2001:0:c633:6401::') },
      { type: 'prefix-information', prefixLength: 64, onLink: false, autonomous: true, validLifetime: 1, preferredLifetime: 1, prefix: v6('2001:0:c633:6401::') },
    ],
  });
  client.handleDatagram(1, SERVER, LOCAL, encodeTeredoPacket({ auth: parsed.value.auth!, origin: mapped, ipv6: twoPrefixes }));
  assert.equal(client.currentState, 'probe');
  assert.deepEqual(client.drops.snapshot(), { 'ra-bad-prefix': 1, 'ra-no-origin-indication': 1, 'ra-nonce-mismatch': 1, 'ra-unexpected-source': 1 });
  // The genuine one still works afterwards.
  client.handleDatagram(2, SERVER, LOCAL, good);
  assert.equal(client.currentState, 'qualified');
  assert.deepEqual(client.status().externalMapping, mapped);
});

test('an RA to a mapping outside the global range is refused (RFC 4380 §5.2.4)', () => {
  const { client, rs } = startedClient();
  const t = parseTeredoPacket(rs);
  assert.ok(t.ok);
  const server = new TeredoServer({ primary: A.serverPrimary, secondary: A.serverSecondary });
  // The server itself refuses non-global sources, so forge the RA as a hostile server would.
  const good = raFor(server, rs, ep('203.0.113.1:40000'));
  const g = parseTeredoPacket(good);
  assert.ok(g.ok);
  client.handleDatagram(1, SERVER, LOCAL, encodeTeredoPacket({ auth: g.value.auth!, origin: ep('10.1.1.1:1000'), ipv6: g.value.ipv6 }));
  assert.equal(client.drops.get('ra-non-global-mapping'), 1);
  assert.equal(client.currentState, 'probe');
});

test('on demand: dormant until the first IPv6 packet, then qualified', () => {
  const { net, client } = buildQualifyNetwork({ nat: 'restricted', client: { onDemand: true } });
  net.runFor(60_000);
  assert.equal(client.currentState, 'dormant');
  assert.equal(net.trace.length, 0);
  net.injectIpv6('client', buildIcmpv6Packet(v6('fe80::ffff:ffff:ffff'), v6('2001:db8:1::10'), { type: 'echo-request', identifier: 1, sequence: 1, data: new Uint8Array(4) }));
  assert.ok(net.runUntil(() => client.currentState === 'qualified', 1_000));
});

test('idle dormancy: after the idle time without traffic the client goes dormant and stops refreshing', () => {
  const { net, client } = buildQualifyNetwork({ nat: 'restricted', client: { idleDormancyMs: 120_000 } });
  net.runFor(125_000);
  assert.equal(client.currentState, 'dormant');
  const n = net.trace.length;
  net.runFor(300_000);
  assert.equal(net.trace.length, n);
});

test('configuration errors are clear', () => {
  assert.throws(() => new TeredoClient({ server: 0x0a000001 }, new SeededRng(1)), /global unicast/);
  assert.throws(() => new TeredoClient({ server: A.serverPrimary, natUdpTimeoutMs: 1000 }, new SeededRng(1)), /under 4 s/);
});
