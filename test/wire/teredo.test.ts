/**
 * Teredo on the wire (src/wire/teredo.ts): addresses from the seeds, RFC 4380 and the lab, both ways; RFC 5991
 * flags; the origin indication and authentication header from the Miredo lab capture (report §8.1); whole
 * datagrams rebuilt byte for byte; hostile inputs with their reasons; and properties.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { formatIpv6, readIpv4, type Ipv4Port } from '../../src/wire/ip.js';
import { buildIcmpv6Packet, parseIcmpv6Packet, type Icmpv6Message } from '../../src/wire/icmpv6.js';
import { parseIpv4 } from '../../src/wire/ipv4.js';
import { buildBubble, emitIpv6Header, isBubble, parseIpv6 } from '../../src/wire/ipv6.js';
import {
  AUTH_FIXED_LENGTH,
  authEncodingLength,
  decodeTeredoAddress,
  emitAuthHeader,
  emitOriginIndication,
  emitTeredoPacket,
  encodeTeredoAddress,
  encodeTeredoPacket,
  FLAG_CONE,
  FLAG_GROUP,
  FLAG_RESERVED,
  FLAG_UNIVERSAL,
  FLAGS_RANDOM_MASK,
  isTeredoAddress,
  makeFlags,
  ORIGIN_LENGTH,
  parseTeredoPacket,
  randomBitsOf,
  readOriginIndication,
  TEREDO_LEGACY_PREFIX,
  TEREDO_PORT,
  TEREDO_PREFIX,
  teredoEncodingLength,
  teredoLinkLocal,
  type AuthHeader,
  type TeredoAddress,
  type TeredoPacket,
} from '../../src/wire/teredo.js';
import { buildIpv4Udp, parseUdp } from '../../src/wire/udp.js';
import { hex, toHex, concat } from './bytes.js';
import { v4, v6 } from '../addresses.js';

const SEED = 4380;

// ---------------------------------------------------------------------------------------------------------
// Addresses

interface AddressVector {
  source: string;
  text: string;
  value: TeredoAddress;
  cone: boolean;
}

const ADDRESSES: AddressVector[] = [
  {
    source: 'seed blog post (Notes on Teredo, part 4)',
    text: '2001:0:1117:34fa:1027:374b:e1fc:f635',
    value: { prefix: 'rfc4380', server: v4('17.23.52.250'), flags: 0x1027, mappedPort: 51380, mappedAddr: v4('30.3.9.202') },
    cone: false,
  },
  {
    source: 'Teredo white paper, client B (restricted NAT)',
    text: '2001:0:ce49:7601:2cad:dfff:7c94:fffe',
    value: { prefix: 'rfc4380', server: v4('206.73.118.1'), flags: 0x2cad, mappedPort: 8192, mappedAddr: v4('131.107.0.1') },
    cone: false,
  },
  {
    source: 'RFC 4380 §4 example',
    text: '2001:0:4136:e378:8000:63bf:3fff:fdd2',
    value: { prefix: 'rfc4380', server: v4('65.54.227.120'), flags: 0x8000, mappedPort: 40000, mappedAddr: v4('192.0.2.45') },
    cone: true,
  },
  {
    source: 'Miredo lab client cli-prc (report §13)',
    text: '2001:0:c633:6401:2079:97eb:34ff:8efe',
    value: { prefix: 'rfc4380', server: v4('198.51.100.1'), flags: 0x2079, mappedPort: 26644, mappedAddr: v4('203.0.113.1') },
    cone: false,
  },
  {
    source: 'white paper client A, with the port field it describes (EFFF = ~4096)',
    text: '2001:0:ce49:7601:e866:efff:62c3:fffe',
    value: { prefix: 'rfc4380', server: v4('206.73.118.1'), flags: 0xe866, mappedPort: 4096, mappedAddr: v4('157.60.0.1') },
    cone: true,
  },
  {
    source: 'the pre-RFC prefix 3ffe:831f::/32 Windows XP used',
    text: '3ffe:831f:ce49:7601:8000:efff:62c3:fffe',
    value: { prefix: 'legacy', server: v4('206.73.118.1'), flags: 0x8000, mappedPort: 4096, mappedAddr: v4('157.60.0.1') },
    cone: true,
  },
];

for (const a of ADDRESSES) {
  test(`Teredo address decodes: ${a.source}`, () => {
    const d = decodeTeredoAddress(v6(a.text));
    assert.deepEqual(d, a.value);
    assert.equal((d!.flags & FLAG_CONE) !== 0, a.cone);
    assert.equal(isTeredoAddress(v6(a.text)), a.value.prefix === 'rfc4380');
  });
  test(`Teredo address encodes to the same bytes: ${a.source}`, () => {
    const e = encodeTeredoAddress(a.value);
    assert.equal(formatIpv6(e), a.text);
  });
}

test('the seed addresses read as their sources describe them', () => {
  // Blog: 0x374b → 0xc8b4 = 51380; e1fc:f635 → 30.3.9.202.
  assert.equal(0x374b ^ 0xffff, 51380);
  // White paper client B: DFFF is the obscured 8192, 7C94:FFFE the obscured 131.107.0.1.
  assert.equal(0xdfff ^ 0xffff, 8192);
  // RFC 4380 §4: 63bf is ~40000, 3fff:fdd2 is ~192.0.2.45.
  assert.equal(0x63bf ^ 0xffff, 40000);
});

test('the white paper prints client A as 2001::CE49:7601:E866:FFFF:62C3:FFFE, which decodes to port 0, not 4096', () => {
  // The text says "EFFF is the obscured version of UDP port 4096", but the printed address carries FFFF: a typo
  // in the source. Decoding what is printed gives port 0; the vector list above encodes the described value.
  const d = decodeTeredoAddress(v6('2001::CE49:7601:E866:FFFF:62C3:FFFE'));
  assert.deepEqual(d, { prefix: 'rfc4380', server: v4('206.73.118.1'), flags: 0xe866, mappedPort: 0, mappedAddr: v4('157.60.0.1') });
  // E866 also has the R bit (0x4000) set, which RFC 5991 §4 reserves: decoding keeps the flags as they stand.
  assert.equal(d!.flags & FLAG_RESERVED, FLAG_RESERVED);
});

test('non-Teredo addresses and wrong lengths decode to undefined', () => {
  for (const text of ['2001:db8::1', '2002:c633:6401::1', '2001:1::1', 'fe80::8000:f227:39cc:9bfe', '3ffe:831e::1', '::', '2000:0:1117:34fa::']) {
    assert.equal(decodeTeredoAddress(v6(text)), undefined, text);
    assert.equal(isTeredoAddress(v6(text)), false, text);
  }
  const t = v6(ADDRESSES[0]!.text);
  assert.equal(decodeTeredoAddress(t.subarray(0, 15)), undefined);
  assert.equal(decodeTeredoAddress(concat(t, Uint8Array.of(0))), undefined);
  assert.equal(decodeTeredoAddress(new Uint8Array(0)), undefined);
  assert.equal(isTeredoAddress(t.subarray(0, 15)), false);
});

test('constants: port 3544, prefixes 2001:0::/32 and 3ffe:831f::/32', () => {
  assert.equal(TEREDO_PORT, 3544);
  assert.equal(toHex(TEREDO_PREFIX), '20010000');
  assert.equal(toHex(TEREDO_LEGACY_PREFIX), '3ffe831f');
  assert.equal(FLAGS_RANDOM_MASK, 0x3cff);
  assert.equal(FLAG_CONE | FLAG_RESERVED | FLAG_UNIVERSAL | FLAG_GROUP | FLAGS_RANDOM_MASK, 0xffff);
  assert.equal(FLAG_CONE & FLAGS_RANDOM_MASK, 0);
});

test('encodeTeredoAddress rejects out-of-range flags and ports', () => {
  const base = ADDRESSES[0]!.value;
  for (const bad of [{ flags: 0x10000 }, { flags: -1 }, { flags: 1.5 }, { mappedPort: 65536 }, { mappedPort: -1 }, { mappedPort: 80.5 }]) {
    assert.throws(() => encodeTeredoAddress({ ...base, ...bad }), RangeError, JSON.stringify(bad));
  }
  // Without a prefix the RFC 4380 one is used.
  const { prefix: _prefix, ...rest } = base;
  assert.equal(formatIpv6(encodeTeredoAddress(rest)), ADDRESSES[0]!.text);
});

// ---------------------------------------------------------------------------------------------------------
// Flags (RFC 5991 §4: C R A A A A U G A A A A A A A A)

test('makeFlags / randomBitsOf on the seed flags', () => {
  assert.equal(randomBitsOf(0x2cad), 0xbad);
  assert.equal(makeFlags(false, 0xbad), 0x2cad);
  assert.equal(randomBitsOf(0x1027), 0x427);
  assert.equal(makeFlags(false, 0x427), 0x1027);
  assert.equal(randomBitsOf(0x2079), 0x879);
  assert.equal(makeFlags(false, 0x879), 0x2079);
  assert.equal(makeFlags(true, 0), 0x8000);
  assert.equal(makeFlags(false, 0), 0);
  assert.equal(makeFlags(true, 0xfff), 0xbcff);
  assert.equal(makeFlags(false, 0x1000), 0, 'only 12 random bits are used');
});

test('makeFlags and randomBitsOf are inverse for all 8192 inputs, and never set R, U or G', () => {
  for (const cone of [false, true]) {
    for (let r = 0; r < 4096; r++) {
      const f = makeFlags(cone, r);
      assert.equal(randomBitsOf(f), r);
      assert.equal((f & FLAG_CONE) !== 0, cone);
      assert.equal(f & (FLAG_RESERVED | FLAG_UNIVERSAL | FLAG_GROUP), 0);
      assert.equal(f & ~(FLAG_CONE | FLAGS_RANDOM_MASK) & 0xffff, 0);
    }
  }
});

test('randomBitsOf ignores C, R, U and G', () => {
  for (const f of [0x1027, 0x2cad, 0xe866, 0xffff]) {
    assert.equal(randomBitsOf(f), randomBitsOf(f & FLAGS_RANDOM_MASK));
    assert.equal(makeFlags((f & FLAG_CONE) !== 0, randomBitsOf(f)), f & (FLAG_CONE | FLAGS_RANDOM_MASK));
  }
});

// ---------------------------------------------------------------------------------------------------------
// Link-local addresses (RFC 4380 §5.2.1)

test('teredoLinkLocal: the Miredo server RA source fe80::8000:f227:39cc:9bfe (cone, ~3544, ~198.51.100.1)', () => {
  assert.equal(formatIpv6(teredoLinkLocal(FLAG_CONE, { addr: v4('198.51.100.1'), port: 3544 })), 'fe80::8000:f227:39cc:9bfe');
  // The client RS sources seen in the lab: no flags and all-ones (port 0, address 0), with and without cone.
  assert.equal(formatIpv6(teredoLinkLocal(0, { addr: 0, port: 0 })), 'fe80::ffff:ffff:ffff');
  assert.equal(formatIpv6(teredoLinkLocal(FLAG_CONE, { addr: 0, port: 0 })), 'fe80::8000:ffff:ffff:ffff');
});

test('teredoLinkLocal carries the same interface identifier as the Teredo address (property)', () => {
  fc.assert(
    fc.property(fc.nat({ max: 0xffffffff }), fc.nat({ max: 0xffff }), fc.nat({ max: 0xffff }), fc.nat({ max: 0xffffffff }), (server, flags, port, addr) => {
      const ll = teredoLinkLocal(flags, { addr, port });
      const ta = encodeTeredoAddress({ server, flags, mappedPort: port, mappedAddr: addr });
      assert.equal(toHex(ll.subarray(0, 8)), 'fe80000000000000');
      assert.equal(toHex(ll.subarray(8)), toHex(ta.subarray(8)));
    }),
    { seed: SEED, numRuns: 1000 },
  );
});

// ---------------------------------------------------------------------------------------------------------
// Origin indication and authentication header (RFC 4380 §5.1.1)

const SERVER: Ipv4Port = { addr: v4('198.51.100.1'), port: 3544 };
const CLIENT_MAPPED: Ipv4Port = { addr: v4('203.0.113.1'), port: 23863 };
const RELAY: Ipv4Port = { addr: v4('198.51.100.17'), port: 3545 };
const NONCE = hex('4d3349d6f05ad97c');

test('origin indication from the lab capture: 203.0.113.1:23863 is 00 00 a2 c8 34 ff 8e fe', () => {
  assert.equal(23863 ^ 0xffff, 0xa2c8);
  const bytes = hex('0000 a2c8 34ff 8efe');
  assert.deepEqual(readOriginIndication(bytes, 0), CLIENT_MAPPED);
  const out = new Uint8Array(8);
  assert.equal(emitOriginIndication(CLIENT_MAPPED, out, 0), ORIGIN_LENGTH);
  assert.equal(toHex(out), toHex(bytes));
});

test('origin indication for the relay 198.51.100.17:3545 is 00 00 f2 26 39 cc 9b ee', () => {
  const bytes = hex('0000 f226 39cc 9bee');
  assert.deepEqual(readOriginIndication(bytes, 0), RELAY);
  const out = new Uint8Array(8);
  emitOriginIndication(RELAY, out, 0);
  assert.equal(toHex(out), toHex(bytes));
});

test('origin indication at offset 37 of a 2000-byte buffer', () => {
  const buf = new Uint8Array(2000).fill(0xaa);
  assert.equal(emitOriginIndication(CLIENT_MAPPED, buf, 37), 8);
  assert.ok(buf.subarray(0, 37).every((x) => x === 0xaa));
  assert.ok(buf.subarray(45).every((x) => x === 0xaa));
  assert.deepEqual(readOriginIndication(buf, 37), CLIENT_MAPPED);
});

test('auth header from the lab capture (id-len 0, auth-len 0, nonce, confirmation 0) goes both ways', () => {
  const bytes = hex('0001 0000 4d3349d6f05ad97c 00');
  const auth: AuthHeader = { clientId: new Uint8Array(0), authValue: new Uint8Array(0), nonce: NONCE, confirmation: 0 };
  assert.equal(authEncodingLength(auth), AUTH_FIXED_LENGTH);
  const out = new Uint8Array(13);
  assert.equal(emitAuthHeader(auth, out, 0), 13);
  assert.equal(toHex(out), toHex(bytes));
});

test('auth header with a client identifier and an authentication value', () => {
  const auth: AuthHeader = { clientId: hex('aabbcc'), authValue: hex('11223344'), nonce: NONCE, confirmation: 1 };
  const bytes = hex('0001 0304 aabbcc 11223344 4d3349d6f05ad97c 01');
  const buf = new Uint8Array(2000).fill(0xaa);
  const n = emitAuthHeader(auth, buf, 37);
  assert.equal(n, authEncodingLength(auth));
  assert.equal(n, bytes.length);
  assert.equal(toHex(buf.subarray(37, 37 + n)), toHex(bytes));
  assert.ok(buf.subarray(0, 37).every((x) => x === 0xaa));
  assert.ok(buf.subarray(37 + n).every((x) => x === 0xaa));
});

test('emitAuthHeader rejects local misuse with a RangeError', () => {
  const ok: AuthHeader = { clientId: new Uint8Array(0), authValue: new Uint8Array(0), nonce: NONCE, confirmation: 0 };
  const buf = new Uint8Array(1000);
  assert.throws(() => emitAuthHeader({ ...ok, nonce: new Uint8Array(7) }, buf, 0), RangeError);
  assert.throws(() => emitAuthHeader({ ...ok, nonce: new Uint8Array(9) }, buf, 0), RangeError);
  assert.throws(() => emitAuthHeader({ ...ok, clientId: new Uint8Array(256) }, buf, 0), RangeError);
  assert.throws(() => emitAuthHeader({ ...ok, authValue: new Uint8Array(256) }, buf, 0), RangeError);
  assert.equal(emitAuthHeader({ ...ok, clientId: new Uint8Array(255), authValue: new Uint8Array(255) }, buf, 0), 13 + 510);
});

// ---------------------------------------------------------------------------------------------------------
// Whole datagrams from the lab capture (report §8.1)

// Frame 1's UDP payload: auth header, then the RS fe80::ffff:ffff:ffff → ff02::2 (tshark: ICMPv6 checksum correct).
const FRAME1_TEREDO = hex('0001 0000 4d3349d6f05ad97c 00' + '6000 0000 0008 3aff fe800000000000000000ffffffffffff ff020000000000000000000000000002 8500 7d37 0000 0000');

// Frame 2 in full: IPv4/UDP 198.51.100.1:3544 → 203.0.113.1:23863, auth header echoing the nonce, origin
// indication, then the RA with prefix information 2001:0:c633:6401::/64 and MTU 1280. tshark: IPv4 0x1426, UDP
// 0x40ca and ICMPv6 0x954c all "[correct]".
const FRAME2 = hex(
  '4500 0091 0000 0000 4011 1426 c633 6401 cb00 7101  0dd8 5d37 007d 40ca' +
    '0001 0000 4d3349d6f05ad97c 00' +
    '0000 a2c8 34ff 8efe' +
    '6000 0000 0038 3aff fe800000000000008000f22739cc9bfe fe800000000000000000ffffffffffff' +
    '8600 954c 0000 0000 00000000 000007d0' +
    '0304 4040 ffffffff ffffffff 00000000 20010000c6336401 0000000000000000' +
    '0501 0000 00000500',
);
const FRAME2_TEREDO = FRAME2.subarray(28);

// Frame 6 shape: the server forwards the relay's indirect bubble with an origin indication naming the relay.
const FRAME6_TEREDO = hex('0000 f226 39cc 9bee' + '6000 0000 0000 3bff fe800000000000001c6605d1b2e34f07 20010000c6336401207997eb34ff8efe');

const MIREDO_RA: Icmpv6Message = {
  type: 'router-advertisement',
  curHopLimit: 0,
  managed: false,
  other: false,
  routerLifetime: 0,
  reachableTime: 0,
  retransTimer: 2000,
  options: [
    {
      type: 'prefix-information',
      prefixLength: 64,
      onLink: false,
      autonomous: true,
      validLifetime: 0xffffffff,
      preferredLifetime: 0xffffffff,
      prefix: concat(TEREDO_PREFIX, hex('c6336401'), new Uint8Array(8)),
    },
    { type: 'mtu', mtu: 1280 },
  ],
};

test('frame 1 (RS with auth header) decodes and re-encodes', () => {
  const r = parseTeredoPacket(FRAME1_TEREDO);
  assert.ok(r.ok);
  assert.deepEqual(r.value.auth, { clientId: new Uint8Array(0), authValue: new Uint8Array(0), nonce: NONCE, confirmation: 0 });
  assert.equal(r.value.origin, undefined);
  const m = parseIcmpv6Packet(r.value.ipv6);
  assert.ok(m.ok);
  assert.deepEqual(m.value.message, { type: 'router-solicitation', options: [] });
  assert.equal(formatIpv6(m.value.src), 'fe80::ffff:ffff:ffff');
  assert.equal(toHex(encodeTeredoPacket(r.value)), toHex(FRAME1_TEREDO));
});

test('frame 2 (Miredo RA) decodes: auth header echoing the nonce, origin indication, RA options', () => {
  const ip = parseIpv4(FRAME2);
  assert.ok(ip.ok);
  const udp = parseUdp(ip.value.payload, { family: 4, src: ip.value.header.src, dst: ip.value.header.dst });
  assert.ok(udp.ok);
  assert.deepEqual([udp.value.srcPort, udp.value.dstPort], [TEREDO_PORT, 23863]);
  const t = parseTeredoPacket(udp.value.payload);
  assert.ok(t.ok);
  assert.deepEqual(t.value.auth, { clientId: new Uint8Array(0), authValue: new Uint8Array(0), nonce: NONCE, confirmation: 0 });
  assert.deepEqual(t.value.origin, CLIENT_MAPPED);
  const ra = parseIcmpv6Packet(t.value.ipv6);
  assert.ok(ra.ok);
  assert.equal(ra.value.hopLimit, 255);
  assert.equal(formatIpv6(ra.value.src), 'fe80::8000:f227:39cc:9bfe');
  assert.equal(formatIpv6(ra.value.dst), 'fe80::ffff:ffff:ffff');
  assert.deepEqual(ra.value.message, MIREDO_RA);
  // What a client makes of it (RFC 4380 §5.2.1): the prefix names the server, the origin indication the mapping.
  const pi = MIREDO_RA.type === 'router-advertisement' ? MIREDO_RA.options[0] : undefined;
  assert.ok(pi && pi.type === 'prefix-information');
  const address = encodeTeredoAddress({ server: readIpv4(pi.prefix, 4), flags: 0x2079, mappedPort: t.value.origin!.port, mappedAddr: t.value.origin!.addr });
  assert.deepEqual(decodeTeredoAddress(address), { prefix: 'rfc4380', server: SERVER.addr, flags: 0x2079, mappedPort: 23863, mappedAddr: CLIENT_MAPPED.addr });
});

test('frame 2 is rebuilt byte for byte with our emitters', () => {
  const ipv6 = buildIcmpv6Packet(teredoLinkLocal(FLAG_CONE, SERVER), teredoLinkLocal(0, { addr: 0, port: 0 }), MIREDO_RA);
  const teredo = encodeTeredoPacket({ auth: { clientId: new Uint8Array(0), authValue: new Uint8Array(0), nonce: NONCE, confirmation: 0 }, origin: CLIENT_MAPPED, ipv6 });
  assert.equal(toHex(teredo), toHex(FRAME2_TEREDO));
  const datagram = buildIpv4Udp(SERVER.addr, SERVER.port, CLIENT_MAPPED.addr, CLIENT_MAPPED.port, teredo);
  assert.equal(toHex(datagram), toHex(FRAME2));
  // And the re-parse gives back the same parts.
  const r = parseTeredoPacket(teredo);
  assert.ok(r.ok);
  assert.deepEqual(r.value.origin, CLIENT_MAPPED);
  assert.deepEqual(r.value.ipv6, ipv6);
});

test('frame 6 shape (bubble forwarded with the relay as origin) goes both ways', () => {
  const r = parseTeredoPacket(FRAME6_TEREDO);
  assert.ok(r.ok);
  assert.equal(r.value.auth, undefined);
  assert.deepEqual(r.value.origin, RELAY);
  const b = parseIpv6(r.value.ipv6);
  assert.ok(b.ok && isBubble(b.value.header));
  const bubble = buildBubble(v6('fe80::1c66:5d1:b2e3:4f07'), v6('2001:0:c633:6401:2079:97eb:34ff:8efe'));
  assert.equal(toHex(encodeTeredoPacket({ origin: RELAY, ipv6: bubble })), toHex(FRAME6_TEREDO));
});

test('a plain IPv6 packet (no auth, no origin) passes through as a view', () => {
  const bubble = FRAME6_TEREDO.subarray(8);
  const r = parseTeredoPacket(bubble);
  assert.ok(r.ok);
  assert.ok(!('auth' in r.value) && !('origin' in r.value), 'absent parts are absent, not undefined-valued keys');
  assert.equal(r.value.ipv6.buffer, FRAME6_TEREDO.buffer);
  assert.equal(r.value.ipv6.byteOffset, bubble.byteOffset);
  // Trailing bytes (RFC 6081 trailers) stay in the ipv6 view for parseIpv6 to split off.
  const withTrailer = concat(bubble, hex('0102 0304'));
  const t = parseTeredoPacket(withTrailer);
  assert.ok(t.ok && t.value.ipv6.length === 44);
  const p = parseIpv6(t.value.ipv6);
  assert.ok(p.ok && toHex(p.value.trailing) === '01020304');
});

test('the auth fields are copies, so a core may keep them after the datagram buffer is reused', () => {
  const d = FRAME1_TEREDO.slice();
  const r = parseTeredoPacket(d);
  assert.ok(r.ok);
  d.fill(0);
  assert.deepEqual(r.value.auth!.nonce, NONCE);
});

// ---------------------------------------------------------------------------------------------------------
// Hostile datagrams (report §10.1's crafted list and more)

const IPV6_BUBBLE = FRAME6_TEREDO.subarray(8);
const AUTH0 = hex('0001 0000 4d3349d6f05ad97c 00');
const ORIGIN = hex('0000 a2c8 34ff 8efe');

test('hostile datagrams fail with their reasons', () => {
  const v4Header = hex('4500 0028 0000 0000 4011 0000 cb00 7101 c633 6401' + '00'.repeat(20));
  const cases: Array<[string, Uint8Array, string | string[]]> = [
    ['empty', new Uint8Array(0), 'empty'],
    ['1 byte 00', hex('00'), 'truncated'],
    ['1 byte 60', hex('60'), 'truncated'],
    ['7 bytes of an origin indication', ORIGIN.subarray(0, 7), 'truncated'],
    ['7 bytes of an IPv6 header', IPV6_BUBBLE.subarray(0, 7), 'truncated'],
    ['auth lengths 255/255 with nothing after', hex('0001 ffff'), 'bad-auth-length'],
    ['auth lengths exceeding the datagram', concat(hex('0001 0808'), new Uint8Array(10)), 'bad-auth-length'],
    ['auth lengths exceeding the datagram by one byte', concat(hex('0001 0102 aa bbcc'), NONCE), 'bad-auth-length'],
    ['auth header cut after the indicator', hex('0001'), 'truncated'],
    ['auth header cut after the id length', hex('0001 00'), 'truncated'],
    ['auth header alone', AUTH0, 'truncated'],
    ['origin indication alone', ORIGIN, ['truncated', 'not-ipv6']],
    ['origin indication then one byte', concat(ORIGIN, hex('60')), 'truncated'],
    ['origin indication before an auth header', concat(ORIGIN, AUTH0, IPV6_BUBBLE), 'auth-after-origin'],
    ['two origin indications', concat(ORIGIN, ORIGIN, IPV6_BUBBLE), 'repeated-origin-indication'],
    ['auth, origin, origin', concat(AUTH0, ORIGIN, ORIGIN, IPV6_BUBBLE), 'repeated-origin-indication'],
    ['two auth headers', concat(AUTH0, AUTH0, IPV6_BUBBLE), 'repeated-auth-header'],
    ['indicator 00 02', concat(hex('0002 0000 0000 0000'), IPV6_BUBBLE), 'unknown-indicator'],
    ['indicator 00 ff after an auth header', concat(AUTH0, hex('00ff'), IPV6_BUBBLE), 'unknown-indicator'],
    ['version nibble 4 (an IPv4 header)', v4Header, 'not-ipv6'],
    ['version nibble 4 after an origin indication', concat(ORIGIN, v4Header), 'not-ipv6'],
    ['first byte 01', concat(hex('01'), IPV6_BUBBLE.subarray(1)), 'not-ipv6'],
    ['first byte ff', new Uint8Array(60).fill(0xff), 'not-ipv6'],
    ['IPv6 header of 39 bytes', IPV6_BUBBLE.subarray(0, 39), 'truncated'],
    ['IPv6 header of 39 bytes after auth and origin', concat(AUTH0, ORIGIN, IPV6_BUBBLE.subarray(0, 39)), 'truncated'],
  ];
  for (const [name, bytes, reason] of cases) {
    const r = parseTeredoPacket(bytes);
    assert.equal(r.ok, false, name);
    if (!r.ok) assert.ok((Array.isArray(reason) ? reason : [reason]).includes(r.reason), `${name}: got ${r.reason}`);
  }
});

test('an IPv6 header claiming a 65535-byte payload passes the Teredo framing and fails parseIpv6 (bad-payload-length)', () => {
  const claim = IPV6_BUBBLE.slice();
  claim[4] = 0xff;
  claim[5] = 0xff;
  const r = parseTeredoPacket(claim);
  assert.ok(r.ok, 'the framing does not read the payload length');
  const p = parseIpv6(r.value.ipv6);
  assert.ok(!p.ok && p.reason === 'bad-payload-length');
});

test('65 507 bytes of zeros (report §10.1) fail fast as a truncated run of origin indications', () => {
  const r = parseTeredoPacket(new Uint8Array(65507));
  assert.ok(!r.ok && r.reason === 'repeated-origin-indication');
});

// ---------------------------------------------------------------------------------------------------------
// Emission at an offset and exact lengths

test('emitTeredoPacket at offset 37 of a 2000-byte buffer, for every combination of parts', () => {
  const auths: Array<AuthHeader | undefined> = [undefined, { clientId: new Uint8Array(0), authValue: new Uint8Array(0), nonce: NONCE, confirmation: 0 }, { clientId: hex('01020304'), authValue: new Uint8Array(20).fill(7), nonce: NONCE, confirmation: 0xfe }];
  const origins: Array<Ipv4Port | undefined> = [undefined, CLIENT_MAPPED, RELAY];
  for (const auth of auths) {
    for (const origin of origins) {
      const p: TeredoPacket = { ipv6: IPV6_BUBBLE };
      if (auth) p.auth = auth;
      if (origin) p.origin = origin;
      const buf = new Uint8Array(2000).fill(0xaa);
      const n = emitTeredoPacket(p, buf, 37);
      assert.equal(n, teredoEncodingLength(p));
      assert.ok(buf.subarray(0, 37).every((x) => x === 0xaa));
      assert.ok(buf.subarray(37 + n).every((x) => x === 0xaa));
      const r = parseTeredoPacket(buf.subarray(37, 37 + n));
      assert.ok(r.ok);
      assert.deepEqual(r.value, p);
      assert.deepEqual(encodeTeredoPacket(p), buf.subarray(37, 37 + n));
    }
  }
});

test('emitTeredoPacket rejects a buffer that is too small', () => {
  const p: TeredoPacket = { origin: RELAY, ipv6: IPV6_BUBBLE };
  assert.throws(() => emitTeredoPacket(p, new Uint8Array(47)), RangeError);
  assert.throws(() => emitTeredoPacket(p, new Uint8Array(60), 13), RangeError);
  assert.equal(emitTeredoPacket(p, new Uint8Array(60), 12), 48);
});

// ---------------------------------------------------------------------------------------------------------
// Properties

const u32 = fc.nat({ max: 0xffffffff });
const u16 = fc.nat({ max: 0xffff });

const teredoAddress: fc.Arbitrary<TeredoAddress> = fc.record(
  { prefix: fc.constantFrom('rfc4380' as const, 'legacy' as const), server: u32, flags: u16, mappedPort: u16, mappedAddr: u32 },
  { noNullPrototype: true },
);
const endpoint: fc.Arbitrary<Ipv4Port> = fc.record({ addr: u32, port: u16 }, { noNullPrototype: true });
const authHeader: fc.Arbitrary<AuthHeader> = fc.record(
  {
    clientId: fc.nat({ max: 255 }).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
    authValue: fc.nat({ max: 255 }).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
    nonce: fc.uint8Array({ minLength: 8, maxLength: 8 }),
    confirmation: fc.nat({ max: 255 }),
  },
  { noNullPrototype: true },
);
/** A version-6 packet: a real header, a payload of its stated length, and sometimes trailing bytes. */
const ipv6Packet: fc.Arbitrary<Uint8Array> = fc
  .tuple(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.nat({ max: 255 }), fc.uint8Array({ maxLength: 120 }), fc.uint8Array({ maxLength: 12 }))
  .map(([src, dst, nh, payload, trailer]) => {
    const b = new Uint8Array(40 + payload.length + trailer.length);
    emitIpv6Header({ src, dst, nextHeader: nh, payloadLength: payload.length }, b);
    b.set(payload, 40);
    b.set(trailer, 40 + payload.length);
    return b;
  });
const teredoPacket: fc.Arbitrary<TeredoPacket> = fc.tuple(fc.option(authHeader, { nil: undefined }), fc.option(endpoint, { nil: undefined }), ipv6Packet).map(([auth, origin, ipv6]) => {
  const p: TeredoPacket = { ipv6 };
  if (auth) p.auth = auth;
  if (origin) p.origin = origin;
  return p;
});

test('decode(encode(a)) == a for arbitrary Teredo addresses (property)', () => {
  fc.assert(
    fc.property(teredoAddress, (a) => {
      const e = encodeTeredoAddress(a);
      assert.deepEqual(decodeTeredoAddress(e), a);
      assert.equal(isTeredoAddress(e), a.prefix === 'rfc4380');
    }),
    { seed: SEED, numRuns: 2000 },
  );
});

test('encode(decode(b)) == b for any 16 bytes under either prefix (property)', () => {
  fc.assert(
    fc.property(fc.boolean(), fc.uint8Array({ minLength: 12, maxLength: 12 }), (legacy, rest) => {
      const b = concat(legacy ? TEREDO_LEGACY_PREFIX : TEREDO_PREFIX, rest);
      const d = decodeTeredoAddress(b);
      assert.ok(d);
      assert.deepEqual(encodeTeredoAddress(d), b);
    }),
    { seed: SEED, numRuns: 2000 },
  );
});

test('decodeTeredoAddress never throws, whatever the length (property)', () => {
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ minLength: 12, maxLength: 20 }).map((r) => concat(TEREDO_PREFIX, r))), (b) => {
      const d = decodeTeredoAddress(b);
      if (d !== undefined) assert.equal(b.length, 16);
    }),
    { seed: SEED, numRuns: 2000 },
  );
});

test('origin indications round-trip (property)', () => {
  fc.assert(
    fc.property(endpoint, fc.nat({ max: 100 }), (ep, offset) => {
      const buf = new Uint8Array(offset + 8);
      emitOriginIndication(ep, buf, offset);
      assert.equal(toHex(buf.subarray(offset, offset + 2)), '0000');
      assert.deepEqual(readOriginIndication(buf, offset), ep);
    }),
    { seed: SEED, numRuns: 2000 },
  );
});

test('auth headers with id and auth lengths 0-255 round-trip (property)', () => {
  fc.assert(
    fc.property(authHeader, ipv6Packet, (auth, ipv6) => {
      const bytes = encodeTeredoPacket({ auth, ipv6 });
      assert.equal(bytes.length, authEncodingLength(auth) + ipv6.length);
      assert.deepEqual([bytes[2], bytes[3]], [auth.clientId.length, auth.authValue.length]);
      const r = parseTeredoPacket(bytes);
      assert.ok(r.ok);
      assert.deepEqual(r.value.auth, auth);
    }),
    { seed: SEED, numRuns: 1000 },
  );
});

test('parse(encode(p)) == p for arbitrary Teredo packets, at any offset (property)', () => {
  fc.assert(
    fc.property(teredoPacket, fc.nat({ max: 64 }), (p, offset) => {
      const len = teredoEncodingLength(p);
      const buf = new Uint8Array(offset + len + 4).fill(0x77);
      assert.equal(emitTeredoPacket(p, buf, offset), len);
      assert.equal(buf[offset + len], 0x77);
      const r = parseTeredoPacket(buf.subarray(offset, offset + len));
      assert.ok(r.ok, r.ok ? '' : r.reason);
      assert.deepEqual(r.value, p);
    }),
    { seed: SEED, numRuns: 2000 },
  );
});

/** Random mutations of a valid datagram: bit flips, byte overwrites, truncation, extension, splices. */
function mutate(base: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  return fc
    .tuple(base, fc.array(fc.tuple(fc.nat({ max: 4 }), fc.nat(), fc.nat({ max: 255 })), { minLength: 1, maxLength: 4 }), fc.uint8Array({ minLength: 1, maxLength: 24 }))
    .map(([b, edits, more]) => {
      let d: Uint8Array = b.slice();
      for (const [kind, at, value] of edits) {
        if (kind === 0 && d.length > 0) d[at % d.length] ^= 1 << (value & 7);
        else if (kind === 1 && d.length > 0) d[at % d.length] = value;
        else if (kind === 2) d = d.slice(0, at % (d.length + 1));
        else if (kind === 3) d = concat(d, more);
        else {
          const i = at % (d.length + 1);
          d = concat(d.subarray(0, i), [ORIGIN, AUTH0, hex('0001 ffff'), hex('0002')][value % 4]!, d.subarray(i));
        }
      }
      return d;
    });
}

test('parseTeredoPacket never throws; whatever it accepts re-encodes to exactly the input (property)', () => {
  const reasons = ['empty', 'truncated', 'bad-auth-length', 'auth-after-origin', 'repeated-auth-header', 'repeated-origin-indication', 'unknown-indicator', 'not-ipv6'];
  const prefixed = fc.tuple(fc.constantFrom(hex('0001'), hex('0000'), hex('60'), hex('0001 0000'), ORIGIN, AUTH0), fc.uint8Array({ maxLength: 80 })).map(([h, rest]) => concat(h, rest));
  let accepted = 0;
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 100 }), prefixed, mutate(teredoPacket.map(encodeTeredoPacket)), mutate(fc.constantFrom(FRAME1_TEREDO, FRAME2_TEREDO, FRAME6_TEREDO))), (b) => {
      const r = parseTeredoPacket(b);
      if (!r.ok) {
        assert.ok(reasons.includes(r.reason), r.reason);
        return;
      }
      accepted++;
      assert.equal(r.value.ipv6[0]! >> 4, 6);
      assert.ok(r.value.ipv6.length >= 40);
      assert.deepEqual(encodeTeredoPacket(r.value), b);
    }),
    { seed: SEED, numRuns: 4000 },
  );
  assert.ok(accepted > 400, `enough mutated inputs were accepted (${accepted})`);
});
