import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildReachNetwork, HSR_ADDRESSES, REACH_ADDRESSES, runReachPair } from '../../src/sim/reach.js';
import { TeredoClient } from '../../src/teredo/client.js';
import { TeredoRelay } from '../../src/teredo/relay.js';
import { TeredoServer } from '../../src/teredo/server.js';
import type { Action } from '../../src/core/endpoint.js';
import { SeededRng } from '../../src/core/rng.js';
import { buildIcmpv6Packet, parseIcmpv6Packet } from '../../src/wire/icmpv6.js';
import { ipv6Equal } from '../../src/wire/ip.js';
import { buildBubble } from '../../src/wire/ipv6.js';
import { decodeTeredoAddress, encodeTeredoAddress, encodeTeredoPacket, parseTeredoPacket } from '../../src/wire/teredo.js';
import { parseTrailers } from '../../src/wire/trailers.js';
import { ep, v4, v6 } from './fixtures.js';

const SERVER = { addr: v4('198.51.100.1'), port: 3544 };
const LOCAL = ep('192.168.1.10:50000');
const MAPPED = ep('203.0.113.1:40000');

function drain(e: { poll(): Action | undefined }): Action[] {
  const out: Action[] = [];
  for (let a = e.poll(); a; a = e.poll()) out.push(a);
  return out;
}

/** A client qualified by a real server core, fed by hand. */
function qualifiedClient(opts: ConstructorParameters<typeof TeredoClient>[0] extends infer C ? Partial<C> : never = {}): TeredoClient {
  const client = new TeredoClient({ server: SERVER.addr, local: LOCAL, detectNat: false, localDiscovery: false, ...opts }, new SeededRng(3));
  const server = new TeredoServer({ primary: SERVER.addr, secondary: v4('198.51.100.2') });
  client.handleTimeout(0);
  const rs = drain(client).find((a) => a.kind === 'udp-send') as Extract<Action, { kind: 'udp-send' }>;
  server.handleDatagram(0, MAPPED, SERVER, rs.data);
  const ra = server.poll() as Extract<Action, { kind: 'udp-send' }>;
  client.handleDatagram(1, SERVER, LOCAL, ra.data);
  assert.equal(client.currentState, 'qualified');
  drain(client);
  return client;
}

function teredo(mapped: string, server = '198.51.100.1'): Uint8Array {
  const m = ep(mapped);
  return encodeTeredoAddress({ server: v4(server), flags: 0, mappedPort: m.port, mappedAddr: m.addr });
}

function sends(actions: Action[]): Extract<Action, { kind: 'udp-send' }>[] {
  return actions.filter((a): a is Extract<Action, { kind: 'udp-send' }> => a.kind === 'udp-send');
}

test('bubble rate limits (RFC 4380 §5.2.6): at least 2 s apart, at most 4 per 300 s, then ICMPv6 unreachable', () => {
  const client = qualifiedClient();
  const own = client.teredoAddress!;
  const dead = teredo('203.0.113.250:1000');
  const bubbleTimes: number[] = [];
  const errors: Uint8Array[] = [];
  let now = 10;
  const send = (seq: number) =>
    client.handleIpv6(now, buildIcmpv6Packet(own, dead, { type: 'echo-request', identifier: 1, sequence: seq, data: new Uint8Array(4) }));
  send(1);
  for (let i = 0; i < 400_000; i += 100) {
    now = 10 + i;
    if (i % 500 === 0) send(2 + i);
    client.handleTimeout(now);
    for (const a of drain(client)) {
      if (a.kind === 'udp-send' && a.remote.addr === v4('203.0.113.250')) bubbleTimes.push(now);
      if (a.kind === 'ipv6-deliver') errors.push(a.packet);
    }
  }
  // Within any 300 s window, at most 4 direct bubbles, each at least 2 s after the previous one.
  for (let i = 1; i < bubbleTimes.length; i++) assert.ok(bubbleTimes[i]! - bubbleTimes[i - 1]! >= 2000);
  for (let i = 0; i < bubbleTimes.length; i++) {
    const inWindow = bubbleTimes.filter((t) => t >= bubbleTimes[i]! && t < bubbleTimes[i]! + 300_000);
    assert.ok(inWindow.length <= 4, `${inWindow.length} bubbles in 300 s`);
  }
  assert.ok(bubbleTimes.length >= 4);
  // Every queued packet got an ICMPv6 destination unreachable back.
  assert.ok(errors.length > 0);
  const e = parseIcmpv6Packet(errors[0]!);
  assert.ok(e.ok && e.value.message.type === 'destination-unreachable' && e.value.message.code === 3);
  assert.ok(ipv6Equal(e.value.dst, own));
  assert.ok(client.drops.get('peer-unreachable') > 0);
});

test('spoofed bubbles are rejected: a Teredo source that does not come from its mapping earns no trust', () => {
  const client = qualifiedClient();
  const victim = teredo('203.0.113.77:5555');
  // The attacker sends from its own endpoint, claiming the victim's address.
  client.handleDatagram(5, ep('203.0.113.66:1234'), LOCAL, encodeTeredoPacket({ ipv6: buildBubble(victim, client.teredoAddress!) }));
  // And data too.
  const data = buildIcmpv6Packet(victim, client.teredoAddress!, { type: 'echo-request', identifier: 1, sequence: 1, data: new Uint8Array(1) });
  client.handleDatagram(6, ep('203.0.113.66:1234'), LOCAL, encodeTeredoPacket({ ipv6: data }));
  assert.equal(drain(client).filter((a) => a.kind === 'ipv6-deliver').length, 0);
  assert.equal(client.peerTable().filter((p) => p.trusted).length, 0);
  assert.equal(client.drops.get('unknown-source-bubble'), 1);
  assert.equal(client.drops.get('unverified-teredo-source'), 1);
  // The genuine peer, from its mapping, is accepted.
  client.handleDatagram(7, ep('203.0.113.77:5555'), LOCAL, encodeTeredoPacket({ ipv6: data }));
  assert.equal(drain(client).filter((a) => a.kind === 'ipv6-deliver').length, 1);
});

test('spoofed echo replies are rejected: the connectivity test trusts only the right nonce (RFC 4380 §5.2.9)', () => {
  const client = qualifiedClient();
  const own = client.teredoAddress!;
  const native = v6('2001:db8:1::10');
  client.handleIpv6(10, buildIcmpv6Packet(own, native, { type: 'echo-request', identifier: 1, sequence: 1, data: new Uint8Array(4) }));
  const test = sends(drain(client));
  assert.equal(test.length, 1);
  assert.deepEqual(test[0]!.remote, SERVER);
  const echo = parseTeredoPacket(test[0]!.data);
  assert.ok(echo.ok);
  const req = parseIcmpv6Packet(echo.value.ipv6);
  assert.ok(req.ok && req.value.message.type === 'echo-request' && req.value.message.data.length === 8);
  const { identifier, sequence, data } = req.value.message;
  const attacker = ep('203.0.113.66:3545');
  // Wrong nonce, right id/seq: refused.
  const forged = buildIcmpv6Packet(native, own, { type: 'echo-reply', identifier, sequence, data: new Uint8Array(8) });
  client.handleDatagram(11, attacker, LOCAL, encodeTeredoPacket({ ipv6: forged }));
  assert.equal(client.peerTable().find((p) => ipv6Equal(p.address, native))!.trusted, false);
  assert.equal(sends(drain(client)).length, 0);
  // The real reply, through the relay that carries it: trusted, and the queued packet leaves for that relay.
  const relay = ep('198.51.100.17:3545');
  client.handleDatagram(12, relay, LOCAL, encodeTeredoPacket({ ipv6: buildIcmpv6Packet(native, own, { type: 'echo-reply', identifier, sequence, data }) }));
  const out = sends(drain(client));
  assert.equal(out.length, 1);
  assert.deepEqual(out[0]!.remote, relay);
  const peer = client.peerTable().find((p) => ipv6Equal(p.address, native))!;
  assert.ok(peer.trusted);
  assert.deepEqual(peer.endpoint, relay);
});

test('1M distinct spoofed sources: the client peer table and queues stay within their caps', () => {
  const client = qualifiedClient({ limits: { maxPeers: 4096, maxQueueBytesPerPeer: 4096, maxQueueBytesTotal: 256 * 1024 } });
  const own = client.teredoAddress!;
  const src = new Uint8Array(16);
  src[0] = 0x20;
  src[1] = 0x01;
  src[2] = 0x0d;
  src[3] = 0xb8;
  const packet = buildIcmpv6Packet(src, own, { type: 'echo-request', identifier: 1, sequence: 1, data: new Uint8Array(16) });
  const relay = ep('198.51.100.17:3545');
  for (let i = 0; i < 1_000_000; i++) {
    // A different native source each time (bytes 12-15 of the source address), as a flood through a relay.
    packet[8 + 12] = i >>> 24;
    packet[8 + 13] = (i >>> 16) & 0xff;
    packet[8 + 14] = (i >>> 8) & 0xff;
    packet[8 + 15] = i & 0xff;
    client.handleDatagram(100 + (i >> 10), relay, LOCAL, encodeTeredoPacket({ ipv6: packet }));
    while (client.poll());
  }
  assert.ok(client.peers.size <= 4096, `${client.peers.size} peers`);
  assert.ok(client.peers.queuedBytes <= 256 * 1024);
  assert.ok(client.peers.evictions > 900_000);
  // Nothing unverified was delivered.
  assert.equal(client.status().state, 'qualified');
});

test('1M distinct spoofed destinations at the relay: peer table and queues stay within their caps', () => {
  const relay = new TeredoRelay({ limits: { maxPeers: 65_536, maxQueueBytesTotal: 4 * 1024 * 1024 } }, new SeededRng(9));
  const src = v6('2001:db8:1::10');
  const dst = teredo('203.0.113.1:1');
  const packet = buildIcmpv6Packet(src, dst, { type: 'echo-request', identifier: 1, sequence: 1, data: new Uint8Array(16) });
  for (let i = 0; i < 1_000_000; i++) {
    // Destination mapped port and address vary: 1M different Teredo destinations.
    packet[24 + 10] = (i >>> 8) & 0xff;
    packet[24 + 11] = i & 0xff;
    packet[24 + 15] = (i >>> 16) & 0xff;
    relay.handleIpv6(i >> 8, packet);
    while (relay.poll());
  }
  assert.ok(relay.peers.size <= 65_536);
  assert.ok(relay.peers.queuedBytes <= 4 * 1024 * 1024);
});

test('no open relay: packets from clients that never completed the exchange are dropped, native-to-native too', () => {
  const relay = new TeredoRelay({}, new SeededRng(1));
  const client = teredo('203.0.113.1:40000');
  const data = buildIcmpv6Packet(client, v6('2001:db8:1::10'), { type: 'echo-request', identifier: 1, sequence: 1, data: new Uint8Array(4) });
  relay.handleDatagram(0, ep('203.0.113.1:40000'), { addr: v4('198.51.100.17'), port: 3545 }, encodeTeredoPacket({ ipv6: data }));
  relay.handleIpv6(0, buildIcmpv6Packet(v6('2001:db8:1::10'), v6('2001:db8:9::1'), { type: 'echo-request', identifier: 1, sequence: 1, data: new Uint8Array(4) }));
  relay.handleIpv6(0, buildIcmpv6Packet(teredo('203.0.113.5:5'), client, { type: 'echo-request', identifier: 1, sequence: 1, data: new Uint8Array(4) }));
  relay.handleDatagram(0, ep('198.51.100.99:1'), { addr: v4('198.51.100.17'), port: 3545 }, encodeTeredoPacket({ ipv6: buildIcmpv6Packet(v6('2001:db8:5::1'), v6('2001:db8:1::10'), { type: 'echo-request', identifier: 1, sequence: 1, data: new Uint8Array(4) }) }));
  // Nothing is forwarded. The client that sent from its own mapping gets an indirect bubble through its server, so
  // that it can complete the exchange (after a relay restart), and nothing else happens.
  const out = drain(relay);
  assert.equal(out.filter((a) => a.kind !== 'udp-send').length, 0);
  assert.equal(out.length, 1);
  const bubble = out[0]! as Extract<Action, { kind: 'udp-send' }>;
  assert.equal(bubble.remote.port, 3544);
  assert.equal(bubble.remote.addr, decodeTeredoAddress(client)!.server);
  assert.deepEqual(relay.drops.snapshot(), { 'native-not-teredo-destination': 1, 'native-teredo-source': 1, 'non-teredo-source': 1, 'unknown-peer': 1 });
  // A spoofed one (its mapping is not where it came from) gets nothing at all.
  const spoofed = new TeredoRelay({}, new SeededRng(1));
  spoofed.handleDatagram(0, ep('203.0.113.200:7777'), { addr: v4('198.51.100.17'), port: 3545 }, encodeTeredoPacket({ ipv6: data }));
  assert.equal(drain(spoofed).length, 0);
  assert.equal(spoofed.peers.size, 0);
});

test('a client that completed the exchange can reach native IPv6 through the relay, and only native IPv6', () => {
  const r = runReachPair('prc', 'v6host');
  assert.ok(r.ok);
  const relay = r.network.relay;
  const prc = r.network.clients.get('prc')!;
  const before = relay.drops.get('not-served-destination');
  // The same client now aims at another Teredo address through the relay: refused.
  const other = teredo('203.0.113.65:1');
  const mapping = prc.status().externalMapping!;
  relay.handleDatagram(r.network.net.now, mapping, REACH_ADDRESSES.relay, encodeTeredoPacket({ ipv6: buildIcmpv6Packet(prc.teredoAddress!, other, { type: 'echo-request', identifier: 1, sequence: 1, data: new Uint8Array(4) }) }));
  assert.equal(relay.drops.get('not-served-destination'), before + 1);
});

test('the relay accepts a symmetric-NAT client by its hash or its nonce, and names its bubbles with the hash', () => {
  const relay = new TeredoRelay({}, new SeededRng(5));
  const client = teredo('203.0.113.17:29251');
  relay.handleIpv6(0, buildIcmpv6Packet(v6('2001:db8:1::10'), client, { type: 'echo-reply', identifier: 1, sequence: 1, data: new Uint8Array(4) }));
  const out = sends(drain(relay));
  assert.equal(out.length, 1);
  assert.deepEqual(out[0]!.remote, SERVER);
  const t = parseTeredoPacket(out[0]!.data);
  assert.ok(t.ok);
  const hash = t.value.ipv6.subarray(8, 24);
  assert.ok(ipv6Equal(hash, relay.bubbleSourceFor(client)));
  assert.equal(hash[0], 0xfe);
  const nonce = parseTrailers(t.value.ipv6.subarray(40));
  assert.ok(nonce.ok && nonce.value.nonce?.length === 4);
  // The answer comes from a port the Teredo address does not name (a symmetric NAT), to the hash: accepted,
  // and the queued packet leaves for that port.
  const newPort = ep('203.0.113.17:4813');
  relay.handleDatagram(1, newPort, { addr: v4('198.51.100.17'), port: 3545 }, encodeTeredoPacket({ ipv6: buildBubble(client, hash) }));
  const flushed = sends(drain(relay));
  assert.equal(flushed.length, 1);
  assert.deepEqual(flushed[0]!.remote, newPort);
  // A bubble to a made-up hash from yet another port is not.
  const relay2 = new TeredoRelay({}, new SeededRng(6));
  relay2.handleIpv6(0, buildIcmpv6Packet(v6('2001:db8:1::10'), client, { type: 'echo-reply', identifier: 1, sequence: 1, data: new Uint8Array(4) }));
  drain(relay2);
  relay2.handleDatagram(1, newPort, { addr: v4('198.51.100.17'), port: 3545 }, encodeTeredoPacket({ ipv6: buildBubble(client, v6('fe80::1234')) }));
  assert.equal(sends(drain(relay2)).length, 0);
  assert.equal(relay2.drops.get('unverified-source'), 1);
});

test('RFC 6081 extensions interoperate with peers that ignore them: nonce-less clients still connect where RFC 4380 does', () => {
  for (const [from, to] of [
    ['prc', 'prc2'],
    ['fc', 'prc'],
    ['prc', 'v6host'],
  ] as const) {
    const r = runReachPair(from, to, { clientOptions: { symmetricNatSupport: false, hairpinning: false, localDiscovery: false } });
    assert.ok(r.ok, `${from} -> ${to}`);
  }
  // And the symmetric client needs them: without the nonces, sym -> fc fails as in RFC 4380 alone.
  assert.equal(runReachPair('sym', 'fc', { clientOptions: { symmetricNatSupport: false } }).ok, false);
});

test('two clients behind one NAT find each other by local discovery and talk over the LAN', () => {
  const network = buildReachNetwork({ clients: ['lan1', 'lan2'] });
  network.net.runUntil(() => [...network.clients.values()].every((c) => c.status().natDetection === 'done'), 60_000);
  const lan1 = network.clients.get('lan1')!;
  const lan2 = network.clients.get('lan2')!;
  assert.ok(lan1.events.get('discovery-bubbles-sent') > 0);
  const p = lan2.peerTable().find((x) => ipv6Equal(x.address, lan1.teredoAddress!));
  assert.ok(p && p.local && p.local.addr === v4('192.168.5.10'));
  assert.equal(decodeTeredoAddress(lan1.teredoAddress!)!.mappedAddr, decodeTeredoAddress(lan2.teredoAddress!)!.mappedAddr);
});

test('RFC 6081 §3.3/§3.4: port-preserving and sequential symmetric NATs reach port-restricted ones, both ways', () => {
  const clients = ['fc', 'prc', 'sympp', 'symseq'] as const;
  for (const [from, to] of [
    ['sympp', 'prc'],
    ['prc', 'sympp'],
    ['symseq', 'prc'],
    ['prc', 'symseq'],
    ['fc', 'symseq'],
  ] as const) {
    const r = runReachPair(from, to, { clients });
    assert.ok(r.ok, `${from} -> ${to}`);
    assert.equal(r.path, 'direct');
    assert.ok(r.firstAnswered);
  }
  // The random-port symmetric NAT (Linux --random-fully) still cannot meet a port-restricted one.
  assert.equal(runReachPair('sym', 'prc', { clients: ['prc', 'sym'] }).ok, false);
});

test('the sequential-NAT client predicts its port with the Echo Test: an RS, a bubble and an RS from one random port', () => {
  const r = runReachPair('symseq', 'prc', { clients: ['prc', 'symseq'] });
  const rs = r.network.net.trace.filter((e) => e.kind === 'udp' && e.segment === 'lan:nat-symseq' && e.src.port !== 50008 && e.dst.port === 3544);
  assert.ok(rs.length >= 2, 'two RSs from the random port');
  const ports = new Set(rs.map((e) => (e.kind === 'udp' ? e.src.port : 0)));
  assert.equal(ports.size, 1);
});

test('a host-specific relay: a dual-stack host answers Teredo clients directly over IPv4, no relay in the path', () => {
  const n = buildReachNetwork({ clients: ['prc', 'sym'], hostSpecificRelay: true });
  n.net.runUntil(() => [...n.clients.values()].every((c) => c.status().natDetection === 'done'), 60_000);
  for (const c of ['prc', 'sym'] as const) {
    const t0 = n.net.now;
    n.net.injectIpv6(c, buildIcmpv6Packet(n.addressOf(c)!, HSR_ADDRESSES.ipv6, { type: 'echo-request', identifier: 5, sequence: 1, data: new Uint8Array(8) }));
    n.net.runFor(3000);
    assert.equal(n.replies.get(c)!.filter((r) => r.at >= t0).length, 1, c);
    const peer = n.clients.get(c)!.peerTable().find((p) => ipv6Equal(p.address, HSR_ADDRESSES.ipv6))!;
    assert.deepEqual(peer.endpoint, { addr: HSR_ADDRESSES.ipv4, port: HSR_ADDRESSES.port });
  }
  assert.equal(n.relay.peers.size, 0, 'the 2001::/32 relay was never involved');
  // And the host starts an exchange itself.
  const t1 = n.net.now;
  n.net.injectIpv6('hsr', buildIcmpv6Packet(HSR_ADDRESSES.ipv6, n.addressOf('prc')!, { type: 'echo-request', identifier: 6, sequence: 1, data: new Uint8Array(8) }));
  n.net.runFor(3000);
  assert.ok(n.hsr!.received.some((r) => r.at >= t1 && parseIcmpv6Packet(r.packet).ok));
  // A host-specific relay serves only its own addresses.
  assert.throws(() => new TeredoRelay({ mode: 'host' }, new SeededRng(1)), /own IPv6 addresses/);
});

test('a server that is also the relay (RFC 4380 §5.4.3) carries native traffic both ways', () => {
  for (const [a, b] of [
    ['prc', 'v6host'],
    ['v6host', 'prc'],
    ['sym', 'v6host'],
  ] as const) {
    const r = runReachPair(a, b, { serverRelay: true, clients: ['prc', 'sym'] });
    assert.ok(r.ok, `${a} -> ${b}`);
    assert.equal(r.network.relay.peers.size, 0, 'the separate relay stayed idle');
  }
});

test('RFC 6081 §3.6: a direct bubble that solicits an answer gets one', () => {
  const client = qualifiedClient();
  const peerAddr = teredo('203.0.113.77:5555');
  const from = ep('203.0.113.77:5555');
  // The peer proves itself first, then solicits.
  client.handleDatagram(5, from, LOCAL, encodeTeredoPacket({ ipv6: buildBubble(peerAddr, client.teredoAddress!) }));
  drain(client);
  const solicit = new Uint8Array(43);
  solicit.set(buildBubble(peerAddr, client.teredoAddress!), 0);
  solicit.set([0x04, 0x01, 0x00], 40);
  client.handleDatagram(6, from, LOCAL, encodeTeredoPacket({ ipv6: solicit }));
  const out = sends(drain(client));
  assert.equal(out.length, 1);
  assert.deepEqual(out[0]!.remote, from);
  const t = parseTeredoPacket(out[0]!.data);
  assert.ok(t.ok);
  const tr = parseTrailers(t.value.ipv6.subarray(40));
  assert.ok(tr.ok && tr.value.ndOption === 1);
});
