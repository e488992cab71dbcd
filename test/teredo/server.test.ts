import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TeredoServer, type TeredoServerConfig } from '../../src/teredo/server.js';
import type { Action } from '../../src/core/endpoint.js';
import { SeededRng } from '../../src/core/rng.js';
import { buildIcmpv6Packet, parseIcmpv6Packet } from '../../src/wire/icmpv6.js';
import { formatIpv6, type Ipv4Port } from '../../src/wire/ip.js';
import { buildBubble, emitIpv6Header, IPV6_HEADER, parseIpv6 as parseIpv6Packet } from '../../src/wire/ipv6.js';
import { decodeTeredoAddress, encodeTeredoAddress, encodeTeredoPacket, parseTeredoPacket } from '../../src/wire/teredo.js';
import { authWithNonce, ep, rsDatagram, v4, v6, RS_SOURCE, RS_SOURCE_CONE } from './fixtures.js';

const PRIMARY = v4('198.51.100.1');
const SECONDARY = v4('198.51.100.2');
const P = { addr: PRIMARY, port: 3544 };
const S = { addr: SECONDARY, port: 3544 };
const CLIENT = ep('203.0.113.1:23863');

function server(extra: Partial<TeredoServerConfig> = {}): TeredoServer {
  return new TeredoServer({ primary: PRIMARY, secondary: SECONDARY, probePort: 3546, ...extra });
}

function drain(s: TeredoServer): Action[] {
  const out: Action[] = [];
  for (let a = s.poll(); a; a = s.poll()) out.push(a);
  return out;
}

function sends(actions: Action[]): Extract<Action, { kind: 'udp-send' }>[] {
  return actions.filter((a): a is Extract<Action, { kind: 'udp-send' }> => a.kind === 'udp-send');
}

function clientAddress(mapped: Ipv4Port, server = PRIMARY): Uint8Array {
  return encodeTeredoAddress({ server, flags: 0x0c0, mappedPort: mapped.port, mappedAddr: mapped.addr });
}

test('RS → RA with the prefix, MTU option, origin indication and the RS nonce (RFC 4380 §5.3.2)', () => {
  const s = server();
  s.handleDatagram(0, CLIENT, P, rsDatagram({ auth: authWithNonce([1, 2, 3, 4, 5, 6, 7, 8]) }));
  const out = sends(drain(s));
  assert.equal(out.length, 1);
  const ra = out[0]!;
  assert.deepEqual(ra.local, P);
  assert.deepEqual(ra.remote, CLIENT);
  const t = parseTeredoPacket(ra.data);
  assert.ok(t.ok);
  assert.deepEqual(t.value.origin, CLIENT);
  assert.deepEqual([...t.value.auth!.nonce], [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.equal(t.value.auth!.confirmation, 0);
  const icmp = parseIcmpv6Packet(t.value.ipv6);
  assert.ok(icmp.ok);
  assert.equal(icmp.value.hopLimit, 255);
  assert.equal(formatIpv6(icmp.value.dst), 'fe80::ffff:ffff:ffff');
  // Source: the server's link-local address, cone bit 1, ~3544, ~198.51.100.1 (as Miredo's, report §8.1).
  assert.equal(formatIpv6(icmp.value.src), 'fe80::8000:f227:39cc:9bfe');
  const m = icmp.value.message;
  assert.equal(m.type, 'router-advertisement');
  if (m.type !== 'router-advertisement') return;
  const pio = m.options.find((o) => o.type === 'prefix-information');
  assert.ok(pio && pio.type === 'prefix-information');
  assert.equal(formatIpv6(pio.prefix), '2001:0:c633:6401::');
  assert.equal(pio.prefixLength, 64);
  const mtu = m.options.find((o) => o.type === 'mtu');
  assert.ok(mtu && mtu.type === 'mtu' && mtu.mtu === 1280);
});

test('an RS without an auth header gets an RA without one: no nonce leaks (Miredo bug, report §10.2)', () => {
  const s = server();
  s.handleDatagram(0, ep('203.0.113.65:1000'), P, rsDatagram({ auth: authWithNonce([9, 9, 9, 9, 9, 9, 9, 9]) }));
  drain(s);
  s.handleDatagram(1, CLIENT, P, rsDatagram());
  const out = sends(drain(s));
  assert.equal(out.length, 1);
  const t = parseTeredoPacket(out[0]!.data);
  assert.ok(t.ok);
  assert.equal(t.value.auth, undefined);
  assert.ok(!Buffer.from(out[0]!.data).includes(Buffer.from([9, 9, 9, 9, 9, 9, 9, 9])));
});

test('each RS gets its own nonce back, never the previous one', () => {
  const s = server();
  for (let i = 0; i < 50; i++) {
    const nonce = [i, i + 1, i + 2, i + 3, 7, 7, 7, i];
    s.handleDatagram(i * 1000, { addr: CLIENT.addr, port: 2000 + i }, i % 2 ? S : P, rsDatagram({ auth: authWithNonce(nonce) }));
    const out = sends(drain(s));
    const t = parseTeredoPacket(out[0]!.data);
    assert.ok(t.ok);
    assert.deepEqual([...t.value.auth!.nonce], nonce);
  }
});

test('an RS with the cone bit is answered from the other address (RFC 5991 §3.2)', () => {
  const s = server();
  s.handleDatagram(0, CLIENT, P, rsDatagram({ cone: true, auth: authWithNonce([1, 1, 1, 1, 1, 1, 1, 1]) }));
  let out = sends(drain(s));
  assert.equal(out.length, 1);
  assert.deepEqual(out[0]!.local, S);
  const icmp = parseIcmpv6Packet(parseTeredoPacket(out[0]!.data).ok ? (parseTeredoPacket(out[0]!.data) as { ok: true; value: { ipv6: Uint8Array } }).value.ipv6 : new Uint8Array());
  assert.ok(icmp.ok);
  assert.ok(Buffer.from(icmp.value.dst).equals(Buffer.from(RS_SOURCE_CONE)));
  s.handleDatagram(1, CLIENT, S, rsDatagram({ cone: true }));
  out = sends(drain(s));
  assert.deepEqual(out[0]!.local, P);
  assert.equal(s.events.get('cone-probes'), 2);
});

test('an RS on the probe port is answered from secondary:3544 first, then from the probe port', () => {
  const s = server();
  s.handleDatagram(0, CLIENT, { addr: SECONDARY, port: 3546 }, rsDatagram({ auth: authWithNonce([2, 2, 2, 2, 2, 2, 2, 2]) }));
  const out = sends(drain(s));
  assert.deepEqual(
    out.map((a) => a.local),
    [S, { addr: SECONDARY, port: 3546 }],
  );
  // Anything but an RS on the probe port is refused.
  s.handleDatagram(1, CLIENT, { addr: SECONDARY, port: 3546 }, encodeTeredoPacket({ ipv6: buildBubble(clientAddress(CLIENT), clientAddress(ep('203.0.113.17:5000'))) }));
  assert.equal(sends(drain(s)).length, 0);
  // Without the extension the port is not ours at all.
  const plain = server({ probePort: undefined });
  plain.handleDatagram(0, CLIENT, { addr: SECONDARY, port: 3546 }, rsDatagram());
  assert.equal(sends(drain(plain)).length, 0);
  assert.equal(plain.drops.get('wrong-local-endpoint'), 1);
  assert.deepEqual(plain.localEndpoints(), [P, S]);
});

test('§5.3.1 case 3: non-global IPv4 sources are dropped, 192.88.99/24 included, 192.88.98/24 not', () => {
  const s = server();
  for (const src of ['10.0.0.1', '127.0.0.1', '169.254.1.1', '172.16.0.1', '192.168.1.1', '192.88.99.1', '224.0.0.1', '0.1.2.3', '255.255.255.255']) {
    s.handleDatagram(0, ep(`${src}:4000`), P, rsDatagram());
  }
  assert.equal(sends(drain(s)).length, 0);
  assert.equal(s.drops.get('non-global-source'), 9);
  for (const src of ['192.88.98.1', '198.51.100.77', '203.0.113.9', '100.64.0.1']) s.handleDatagram(0, ep(`${src}:4000`), P, rsDatagram());
  assert.equal(sends(drain(s)).length, 4);
});

test('§5.3.1 cases 1 and 2: malformed packets and non-ICMPv6 payloads are dropped by name', () => {
  const s = server();
  s.handleDatagram(0, CLIENT, P, new Uint8Array(0));
  s.handleDatagram(0, CLIENT, P, Uint8Array.of(0, 1, 255, 255));
  s.handleDatagram(0, CLIENT, P, Uint8Array.of(0x45, 0, 0, 0));
  const udp = new Uint8Array(IPV6_HEADER + 8);
  emitIpv6Header({ src: clientAddress(CLIENT), dst: v6('2001:db8:1::10'), nextHeader: 17, payloadLength: 8 }, udp, 0);
  s.handleDatagram(0, CLIENT, P, encodeTeredoPacket({ ipv6: udp }));
  const lying = new Uint8Array(IPV6_HEADER);
  emitIpv6Header({ src: clientAddress(CLIENT), dst: v6('2001:db8:1::10'), nextHeader: 59, payloadLength: 65535 }, lying, 0);
  s.handleDatagram(0, CLIENT, P, lying);
  assert.equal(sends(drain(s)).length, 0);
  assert.deepEqual(s.drops.snapshot(), {
    'malformed-bad-auth-length': 1,
    'malformed-empty': 1,
    'malformed-ipv6-bad-payload-length': 1,
    'malformed-not-ipv6': 1,
    'not-bubble-or-icmpv6': 1,
  });
});

test('RS validity: hop limit 255 and a real RS are required (§5.3.1 case 4, RFC 4861 §6.1.1)', () => {
  const s = server();
  s.handleDatagram(0, CLIENT, P, rsDatagram({ hopLimit: 64 }));
  const echo = buildIcmpv6Packet(RS_SOURCE, v6('ff02::2'), { type: 'echo-request', identifier: 1, sequence: 1, data: new Uint8Array(4) });
  s.handleDatagram(0, CLIENT, P, encodeTeredoPacket({ ipv6: echo }));
  assert.equal(sends(drain(s)).length, 0);
  assert.equal(s.drops.get('bad-router-solicitation'), 2);
});

test('bubbles between clients: forwarded with an origin indication when the destination is served here (§5.3.1 case 5)', () => {
  const s = server();
  const a = ep('203.0.113.1:27239');
  const b = ep('203.0.113.65:20026');
  const bubble = buildBubble(clientAddress(a), clientAddress(b));
  s.handleDatagram(0, a, P, encodeTeredoPacket({ ipv6: bubble }));
  const out = sends(drain(s));
  assert.equal(out.length, 1);
  assert.deepEqual(out[0]!.remote, b);
  assert.deepEqual(out[0]!.local, P);
  const t = parseTeredoPacket(out[0]!.data);
  assert.ok(t.ok);
  assert.deepEqual(t.value.origin, a);
  assert.deepEqual([...t.value.ipv6], [...bubble]);
  // Served by another server: forwarded, but without an origin indication.
  const other = encodeTeredoAddress({ server: v4('203.0.113.200'), flags: 0, mappedPort: b.port, mappedAddr: b.addr });
  s.handleDatagram(0, a, P, encodeTeredoPacket({ ipv6: buildBubble(clientAddress(a), other) }));
  const out2 = sends(drain(s));
  const t2 = parseTeredoPacket(out2[0]!.data);
  assert.ok(t2.ok && t2.value.origin === undefined);
});

test('case 5 needs the embedded mapping to match the datagram source: spoofed Teredo sources are dropped', () => {
  const s = server();
  const a = ep('203.0.113.1:27239');
  const b = ep('203.0.113.65:20026');
  s.handleDatagram(0, ep('203.0.113.1:27240'), P, encodeTeredoPacket({ ipv6: buildBubble(clientAddress(a), clientAddress(b)) }));
  assert.equal(sends(drain(s)).length, 0);
  assert.equal(s.drops.get('source-check-failed'), 1);
});

test('case 6: a relay (non-Teredo source) may bubble a client of this server, and only of this server', () => {
  const s = server();
  const relay = ep('198.51.100.17:3545');
  const client = ep('203.0.113.1:23863');
  s.handleDatagram(0, relay, P, encodeTeredoPacket({ ipv6: buildBubble(v6('fe80::1c66:1:2:3'), clientAddress(client)) }));
  const out = sends(drain(s));
  assert.equal(out.length, 1);
  const t = parseTeredoPacket(out[0]!.data);
  assert.ok(t.ok);
  assert.deepEqual(t.value.origin, relay);
  const foreign = encodeTeredoAddress({ server: v4('203.0.113.200'), flags: 0, mappedPort: client.port, mappedAddr: client.addr });
  s.handleDatagram(0, relay, P, encodeTeredoPacket({ ipv6: buildBubble(v6('2001:db8:1::10'), foreign) }));
  assert.equal(sends(drain(s)).length, 0);
  assert.equal(s.drops.get('source-check-failed'), 1);
});

test('destinations: non-global and non-global-mapped Teredo destinations are never forwarded', () => {
  const s = server();
  const a = ep('203.0.113.1:27239');
  s.handleDatagram(0, a, P, encodeTeredoPacket({ ipv6: buildBubble(clientAddress(a), v6('fe80::1')) }));
  s.handleDatagram(0, a, P, encodeTeredoPacket({ ipv6: buildBubble(clientAddress(a), v6('fd00::1')) }));
  s.handleDatagram(0, a, P, encodeTeredoPacket({ ipv6: buildBubble(clientAddress(a), clientAddress(ep('10.1.2.3:4000'))) }));
  s.handleDatagram(0, a, P, encodeTeredoPacket({ ipv6: buildBubble(clientAddress(a), clientAddress(ep('169.254.2.3:4000'))) }));
  assert.equal(sends(drain(s)).length, 0);
  assert.equal(s.drops.get('non-global-destination'), 2);
  assert.equal(s.drops.get('non-global-mapped-destination'), 2);
});

test('native IPv6: only small ICMPv6 echo goes out (the connectivity test), never bubbles, UDP or big messages', () => {
  const s = server();
  const a = ep('203.0.113.1:27239');
  const src = clientAddress(a);
  const dst = v6('2001:db8:1::10');
  const echo = (n: number) => buildIcmpv6Packet(src, dst, { type: 'echo-request', identifier: 7, sequence: 1, data: new Uint8Array(n) });
  s.handleDatagram(0, a, P, encodeTeredoPacket({ ipv6: echo(8) }));
  const fwd = drain(s).filter((x) => x.kind === 'ipv6-forward');
  assert.equal(fwd.length, 1);
  s.handleDatagram(0, a, P, encodeTeredoPacket({ ipv6: echo(1000) }));
  s.handleDatagram(0, a, P, encodeTeredoPacket({ ipv6: buildBubble(src, dst) }));
  s.handleDatagram(0, a, P, encodeTeredoPacket({ ipv6: buildIcmpv6Packet(src, dst, { type: 'destination-unreachable', code: 1, invoking: new Uint8Array(48) }) }));
  assert.equal(drain(s).length, 0);
  assert.equal(s.drops.get('native-too-big'), 1);
  assert.equal(s.drops.get('bubble-to-native'), 1);
  assert.equal(s.drops.get('native-not-echo'), 1);
  const off = server({ forwardNative: false });
  off.handleDatagram(0, a, P, encodeTeredoPacket({ ipv6: echo(8) }));
  assert.equal(drain(off).length, 0);
  assert.equal(off.drops.get('native-forward-disabled'), 1);
});

test('the server answers echo requests to its own link-local address', () => {
  const s = server();
  const a = ep('203.0.113.1:27239');
  const ll = v6('fe80::8000:f227:39cc:9bfe');
  s.handleDatagram(0, a, P, encodeTeredoPacket({ ipv6: buildIcmpv6Packet(clientAddress(a), ll, { type: 'echo-request', identifier: 3, sequence: 9, data: Uint8Array.of(1, 2) }) }));
  const out = sends(drain(s));
  assert.equal(out.length, 1);
  const t = parseTeredoPacket(out[0]!.data);
  assert.ok(t.ok);
  const icmp = parseIcmpv6Packet(t.value.ipv6);
  assert.ok(icmp.ok && icmp.value.message.type === 'echo-reply' && icmp.value.message.sequence === 9);
});

test('configuration errors are clear', () => {
  assert.throws(() => new TeredoServer({ primary: PRIMARY, secondary: PRIMARY }), /two different/);
  assert.throws(() => new TeredoServer({ primary: v4('10.0.0.1'), secondary: SECONDARY }), /not a global/);
  assert.throws(() => new TeredoServer({ primary: PRIMARY, secondary: SECONDARY, probePort: 3544 }), /probe port/);
  assert.throws(() => new TeredoServer({ primary: PRIMARY, secondary: SECONDARY, mtu: 1000 }), /MTU/);
});

test('100k random and mutated datagrams: no throw, every datagram counted once', () => {
  const s = server();
  const rng = new SeededRng(4380);
  const a = ep('203.0.113.1:27239');
  const seeds = [
    rsDatagram({ auth: authWithNonce([1, 2, 3, 4, 5, 6, 7, 8]) }),
    rsDatagram({ cone: true }),
    encodeTeredoPacket({ ipv6: buildBubble(clientAddress(a), clientAddress(ep('203.0.113.65:20026'))) }),
    encodeTeredoPacket({ ipv6: buildIcmpv6Packet(clientAddress(a), v6('2001:db8:1::10'), { type: 'echo-request', identifier: 1, sequence: 1, data: new Uint8Array(8) }) }),
    encodeTeredoPacket({ origin: a, ipv6: buildBubble(clientAddress(a), v6('2001:db8::1')) }),
  ];
  const N = 100_000;
  const locals = [P, S, { addr: SECONDARY, port: 3546 }];
  let actions = 0;
  for (let i = 0; i < N; i++) {
    let data: Uint8Array;
    const mode = rng.u32() % 4;
    if (mode === 0) {
      data = new Uint8Array(rng.u32() % 1500);
      rng.fill(data);
      if (data.length > 2 && rng.u32() % 3 === 0) data[0] = 0x60;
    } else {
      const base = seeds[rng.u32() % seeds.length]!;
      data = base.slice(0, mode === 1 ? rng.u32() % (base.length + 1) : base.length);
      const flips = 1 + (rng.u32() % 4);
      for (let f = 0; f < flips && data.length > 0; f++) data[rng.u32() % data.length]! ^= 1 << rng.u32() % 8;
      if (mode === 3) data = Uint8Array.from([...data, ...new Uint8Array(rng.u32() % 64)]);
    }
    const from = rng.u32() % 5 === 0 ? ep('10.0.0.1:1') : a;
    s.handleDatagram(i, from, locals[rng.u32() % locals.length]!, data);
    for (let x = s.poll(); x; x = s.poll()) actions++;
  }
  const e = s.events;
  const accepted = e.get('router-solicitations') + e.get('bubbles-forwarded') + e.get('icmpv6-forwarded') + e.get('native-forwarded') + e.get('echo-replies');
  assert.equal(e.get('datagrams-received'), N);
  assert.equal(s.drops.total() + accepted, N);
  assert.ok(actions >= accepted);
  assert.ok(s.drops.total() > N / 2);
});

test('forwarded packets are copies: mutating the input afterwards changes nothing', () => {
  const s = server();
  const a = ep('203.0.113.1:27239');
  const b = ep('203.0.113.65:20026');
  const data = encodeTeredoPacket({ ipv6: buildBubble(clientAddress(a), clientAddress(b)) });
  s.handleDatagram(0, a, P, data);
  data.fill(0);
  const out = sends(drain(s));
  const p = parseIpv6Packet(parseTeredoPacket(out[0]!.data).ok ? out[0]!.data.subarray(8) : new Uint8Array());
  assert.ok(p.ok);
  assert.deepEqual(decodeTeredoAddress(p.value.header.dst)!.mappedPort, b.port);
});
