/**
 * No open relay (RFC 4380 §5.3.1, §5.4, §7), in the simulator: the seeds' topology (server, relay, native host,
 * a client behind a port-restricted NAT and a public one) plus an attacker on the public side that sends whatever
 * it likes, spoofing at will. Whatever it sends, the server forwards only bubbles and ICMPv6 (and towards native
 * IPv6 only a small echo), the relay forwards only for clients it exchanged bubbles with, from their own mapping,
 * and nothing goes to a private, loopback or link-local address. Checked on the whole trace, not just counters.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildReachNetwork, REACH_ADDRESSES } from '../../src/sim/reach.js';
import { buildIcmpv6Packet } from '../../src/wire/icmpv6.js';
import { isGlobalIpv4, ipv6Equal, type Ipv4Port } from '../../src/wire/ip.js';
import { buildBubble, emitIpv6Header } from '../../src/wire/ipv6.js';
import { decodeTeredoAddress, encodeTeredoAddress, encodeTeredoPacket, isTeredoAddress } from '../../src/wire/teredo.js';
import { v4, v6 } from '../addresses.js';
import { SinkCore } from './doubles.js';

const ATTACKER: Ipv4Port = { addr: v4('203.0.113.200'), port: 7777 };
const SERVER: Ipv4Port = { addr: REACH_ADDRESSES.serverPrimary, port: 3544 };
const teredo = (m: Ipv4Port): Uint8Array => encodeTeredoAddress({ server: REACH_ADDRESSES.serverPrimary, flags: 0, mappedAddr: m.addr, mappedPort: m.port });
const ATTACKER_T = teredo(ATTACKER);

function packet(src: Uint8Array, dst: Uint8Array, nextHeader: number, payload: Uint8Array): Uint8Array {
  const p = new Uint8Array(40 + payload.length);
  emitIpv6Header({ payloadLength: payload.length, nextHeader, hopLimit: 64, src, dst }, p, 0);
  p.set(payload, 40);
  return p;
}
const echo = (src: Uint8Array, dst: Uint8Array, size = 8): Uint8Array => buildIcmpv6Packet(src, dst, { type: 'echo-request', identifier: 0x4141, sequence: 1, data: new Uint8Array(size).fill(0x41) });
const TCP_SYN = Uint8Array.from([0x30, 0x39, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
const UDP_DNS = Uint8Array.from([0x30, 0x39, 0, 53, 0, 12, 0, 0, 1, 2, 3, 4]);

function setup() {
  const network = buildReachNetwork({ clients: ['prc', 'pub'] });
  const { net, clients } = network;
  const attacker = new SinkCore();
  net.addHost('attacker', { addr: ATTACKER.addr, port: ATTACKER.port, endpoint: attacker });
  assert.ok(net.runUntil(() => [...clients.values()].every((c) => c.status().natDetection === 'done'), 60_000));
  return { ...network, attacker };
}

/** No UDP hop from the server or relay to a non-global address, and the native host saw only what is listed. */
function assertNothingToNonGlobal(net: ReturnType<typeof setup>['net']): void {
  for (const e of net.trace) {
    if (e.kind !== 'udp' || (e.from !== 'server' && e.from !== 'relay')) continue;
    assert.ok(isGlobalIpv4(e.dst.addr), `${e.from} sent to a non-global address`);
  }
}

test('server: no TCP, UDP, large or non-echo ICMPv6 to native IPv6, no spoofed or non-global forwarding (§5.3.1)', () => {
  const { net, server, v6host, clients } = setup();
  const prc = clients.get('prc')!.teredoAddress!;
  const before = v6host.received.length;
  const send = (data: Uint8Array, from = ATTACKER): void => net.sendUdp('attacker', from, SERVER, data);
  // To native IPv6 through the server, from the attacker's own (valid) Teredo address.
  send(encodeTeredoPacket({ ipv6: packet(ATTACKER_T, REACH_ADDRESSES.v6host, 6, TCP_SYN) }));
  send(encodeTeredoPacket({ ipv6: packet(ATTACKER_T, REACH_ADDRESSES.v6host, 17, UDP_DNS) }));
  send(encodeTeredoPacket({ ipv6: echo(ATTACKER_T, REACH_ADDRESSES.v6host, 400) }));
  send(encodeTeredoPacket({ ipv6: buildIcmpv6Packet(ATTACKER_T, REACH_ADDRESSES.v6host, { type: 'router-solicitation', options: [] }) }));
  send(encodeTeredoPacket({ ipv6: buildBubble(ATTACKER_T, REACH_ADDRESSES.v6host) }));
  // TCP and UDP towards a Teredo client through the server (the server is not a relay).
  send(encodeTeredoPacket({ ipv6: packet(ATTACKER_T, prc, 6, TCP_SYN) }));
  send(encodeTeredoPacket({ ipv6: packet(ATTACKER_T, prc, 17, UDP_DNS) }));
  // Spoofed Teredo source: the prc client's address, sent from the attacker's endpoint.
  send(encodeTeredoPacket({ ipv6: buildBubble(clients.get('pub')!.teredoAddress!, prc) }));
  send(encodeTeredoPacket({ ipv6: echo(clients.get('pub')!.teredoAddress!, REACH_ADDRESSES.v6host) }));
  // Bubbles to Teredo addresses whose mapped address is private, loopback, or to link-local and multicast.
  for (const m of ['10.1.2.3', '192.168.1.1', '127.0.0.1', '169.254.1.1', '224.0.0.1']) send(encodeTeredoPacket({ ipv6: buildBubble(ATTACKER_T, teredo({ addr: v4(m), port: 53 })) }));
  send(encodeTeredoPacket({ ipv6: buildBubble(ATTACKER_T, v6('fe80::1')) }));
  send(encodeTeredoPacket({ ipv6: buildBubble(ATTACKER_T, v6('ff02::1')) }));
  // From a non-global source (spoofed).
  send(encodeTeredoPacket({ ipv6: buildBubble(teredo({ addr: v4('10.9.9.9'), port: 1 }), prc) }), { addr: v4('10.9.9.9'), port: 1 });
  net.runFor(2_000);
  assert.equal(v6host.received.length, before, 'nothing reached the native host');
  assert.equal(server.events.get('native-forwarded'), 0);
  const d = server.drops.snapshot();
  assert.equal(d['not-bubble-or-icmpv6'], 4);
  assert.equal(d['native-too-big'], 1);
  assert.equal(d['native-not-echo'], 1);
  assert.equal(d['bubble-to-native'], 1);
  assert.equal(d['source-check-failed'], 2);
  assert.equal(d['non-global-mapped-destination'], 5);
  assert.equal(d['non-global-destination'], 2);
  assert.equal(d['non-global-source'], 1);
  // prc got no bubble from the attacker's spoofed exchange (the server forwarded none of it).
  assert.equal(server.events.get('bubbles-forwarded'), 0);
  assertNothingToNonGlobal(net);
  // The one thing allowed: a small echo (the §5.2.9 connectivity test) from the sender's own Teredo address.
  send(encodeTeredoPacket({ ipv6: echo(ATTACKER_T, REACH_ADDRESSES.v6host) }));
  net.runFor(2_000);
  assert.equal(server.events.get('native-forwarded'), 1);
  assert.equal(v6host.received.length, before + 1);
});

test('relay: no native-to-native, no Teredo-to-Teredo, no spoofed Teredo sources, no bubbles to private mapped addresses (§5.4)', () => {
  const { net, relay, v6host, clients } = setup();
  const prc = clients.get('prc')!.teredoAddress!;
  // The native host talks to prc through the relay, so prc is a trusted peer of the relay.
  net.injectIpv6('v6host', echo(REACH_ADDRESSES.v6host, prc));
  net.runFor(5_000);
  const peer = relay.peers.get(prc);
  assert.ok(peer?.trusted, 'prc is a trusted peer');
  const got = v6host.received.length;
  const toRelay = (data: Uint8Array, from = ATTACKER): void => net.sendUdp('attacker', from, REACH_ADDRESSES.relay, data);
  // Spoofed: prc's Teredo address, from the attacker's endpoint, to the native host.
  toRelay(encodeTeredoPacket({ ipv6: packet(prc, REACH_ADDRESSES.v6host, 17, UDP_DNS) }));
  toRelay(encodeTeredoPacket({ ipv6: echo(prc, REACH_ADDRESSES.v6host) }));
  // A bubble claiming to be prc from the attacker: it must not move prc's mapping to the attacker.
  toRelay(encodeTeredoPacket({ ipv6: buildBubble(prc, v6('fe80::1')) }));
  // Unknown Teredo source (never bubbled by the relay): its own valid address.
  toRelay(encodeTeredoPacket({ ipv6: echo(ATTACKER_T, REACH_ADDRESSES.v6host) }));
  // Native source inside the Teredo packet (native to native through the relay), and Teredo to Teredo.
  toRelay(encodeTeredoPacket({ ipv6: echo(v6('2001:db8:9::1'), REACH_ADDRESSES.v6host) }));
  net.runFor(2_000);
  assert.equal(v6host.received.length, got, 'the native host got nothing from the attacker');
  assert.ok(peer.mapped && peer.mapped.addr !== ATTACKER.addr, 'prc\'s mapping was not hijacked');
  const d = relay.drops.snapshot();
  assert.equal(d['unverified-source'], 3);
  assert.equal(d['unknown-peer'], 1);
  assert.equal(d['non-teredo-source'], 1);
  // From the IPv6 side: native to native, Teredo to Teredo, and Teredo destinations with private mapped addresses.
  const dropsBefore = relay.drops.snapshot();
  net.injectIpv6('relay', echo(REACH_ADDRESSES.v6host, v6('2001:db8:9::1')));
  net.injectIpv6('relay', echo(clients.get('pub')!.teredoAddress!, prc));
  for (const m of ['10.1.2.3', '192.168.0.1', '127.0.0.1', '169.254.0.1', '0.0.0.1', '239.1.1.1']) net.injectIpv6('relay', echo(REACH_ADDRESSES.v6host, teredo({ addr: v4(m), port: 3544 })));
  net.injectIpv6('relay', echo(v6('fe80::1'), prc));
  net.runFor(10_000);
  const after = relay.drops.snapshot();
  const delta = (k: string): number => (after[k] ?? 0) - (dropsBefore[k] ?? 0);
  assert.equal(delta('native-not-teredo-destination'), 1);
  assert.equal(delta('native-teredo-source'), 1);
  assert.equal(delta('non-global-mapped-destination'), 6);
  assert.equal(delta('native-non-global-source'), 1);
  assertNothingToNonGlobal(net);
  // Every packet the relay put on the native side came from a Teredo client, to a native address.
  for (const e of net.trace) {
    if (e.kind !== 'ipv6' || e.from !== 'relay' || e.segment !== 'ipv6') continue;
    const src = e.packet.subarray(8, 24);
    const dst = e.packet.subarray(24, 40);
    assert.ok(isTeredoAddress(src) && !isTeredoAddress(dst), 'relay forwarded native to native or Teredo to Teredo');
    const t = decodeTeredoAddress(src)!;
    assert.ok(ipv6Equal(src, prc) || isGlobalIpv4(t.mappedAddr));
  }
});
