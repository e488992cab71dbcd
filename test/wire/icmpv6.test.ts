/**
 * ICMPv6 and Neighbor Discovery (src/wire/icmpv6.ts): hand-assembled packets whose checksums were confirmed by
 * tshark ("[correct]") and are recomputed here by a plain reference implementation, decoded and re-encoded byte for
 * byte; every failure reason; emission at an offset; and properties (round trips for arbitrary messages and NDP
 * option lists, never throws on random or mutated bytes).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';

import {
  buildIcmpv6Packet,
  emitIcmpv6,
  icmpv6EncodingLength,
  invokingPacket,
  MIN_MTU,
  parseIcmpv6,
  parseIcmpv6Packet,
  parseNdpOptions,
  type Icmpv6Message,
  type NdpOption,
} from '../../src/wire/icmpv6.js';
import { emitIpv6Header } from '../../src/wire/ipv6.js';
import { hex, toHex, concat } from './bytes.js';
import { v6 } from '../addresses.js';

const SEED = 4380;

/**
 * Reference ICMPv6 checksum (RFC 4443 §2.3): the RFC 8200 §8.1 pseudo-header written out as bytes, then RFC 1071
 * summed word by word with an end-around carry after each addition, independent of src/wire/checksum.ts.
 */
function refIcmpv6Checksum(src: Uint8Array, dst: Uint8Array, message: Uint8Array): number {
  const m = message.slice();
  m[2] = 0;
  m[3] = 0;
  const len = m.length;
  const pseudo = concat(src, dst, Uint8Array.of(len >>> 24, (len >>> 16) & 0xff, (len >>> 8) & 0xff, len & 0xff, 0, 0, 0, 58));
  const all = concat(pseudo, m);
  let s = 0;
  for (let i = 0; i < all.length; i += 2) {
    s += (all[i]! << 8) | (i + 1 < all.length ? all[i + 1]! : 0);
    if (s > 0xffff) s = (s & 0xffff) + 1;
  }
  return ~s & 0xffff;
}

function checksumField(packet: Uint8Array): number {
  return (packet[42]! << 8) | packet[43]!;
}

const TEREDO_CLIENT = v6('2001:0:c633:6401:2079:97eb:34ff:8efe');
const V6HOST = v6('2001:db8:1::10');
const HOST_LL = v6('fe80::200:5eff:fe00:5301');
const MAC = hex('00005e005301'); // RFC 7042 documentation MAC
const MAC2 = hex('00005e005302');
const TARGET = v6('2001:db8::1:2:3:4');
const ASCII = new TextEncoder().encode('transit6');

/** UDP over IPv6, tshark-verified (used as the invoking packet of the error messages). */
const UDP6 = hex('600000000010114020010db800000000000000000000000120010db8000000000000000000000002c0000035001026a37472616e73697436');

interface Vector {
  name: string;
  bytes: Uint8Array;
  src: Uint8Array;
  dst: Uint8Array;
  hopLimit: number;
  message: Icmpv6Message;
  checksum: number;
}

// Each of these was written to a pcap and decoded by tshark, which reported the ICMPv6 checksum as correct.
const VECTORS: Vector[] = [
  {
    name: 'echo request (Teredo client → native host, hop limit 128, as in the connectivity test)',
    bytes: hex('6000000000103a80 20010000c6336401207997eb34ff8efe 20010db8000100000000000000000010 8000bb9c12340001 7472616e73697436'),
    src: TEREDO_CLIENT,
    dst: V6HOST,
    hopLimit: 128,
    message: { type: 'echo-request', identifier: 0x1234, sequence: 1, data: ASCII },
    checksum: 0xbb9c,
  },
  {
    name: 'echo reply',
    bytes: hex('6000000000103a40 20010db8000100000000000000000010 20010000c6336401207997eb34ff8efe 8100ba9c12340001 7472616e73697436'),
    src: V6HOST,
    dst: TEREDO_CLIENT,
    hopLimit: 64,
    message: { type: 'echo-reply', identifier: 0x1234, sequence: 1, data: ASCII },
    checksum: 0xba9c,
  },
  {
    name: 'router solicitation with a source link-layer address option',
    bytes: hex('6000000000103aff fe8000000000000002005efffe005301 ff020000000000000000000000000002 8500192b00000000 010100005e005301'),
    src: HOST_LL,
    dst: v6('ff02::2'),
    hopLimit: 255,
    message: { type: 'router-solicitation', options: [{ type: 'source-link-layer', address: MAC }] },
    checksum: 0x192b,
  },
  {
    name: 'router solicitation as Miredo sends it (no options)',
    bytes: hex('6000000000083aff fe800000000000000000ffffffffffff ff020000000000000000000000000002 85007d3700000000'),
    src: v6('fe80::ffff:ffff:ffff'),
    dst: v6('ff02::2'),
    hopLimit: 255,
    message: { type: 'router-solicitation', options: [] },
    checksum: 0x7d37,
  },
  {
    name: 'neighbor solicitation to the solicited-node address',
    bytes: hex(
      '6000000000203aff fe8000000000000002005efffe005301 ff0200000000000000000001ff030004 8700ea5000000000 20010db8000000000001000200030004 010100005e005301',
    ),
    src: HOST_LL,
    dst: v6('ff02::1:ff03:4'),
    hopLimit: 255,
    message: { type: 'neighbor-solicitation', target: TARGET, options: [{ type: 'source-link-layer', address: MAC }] },
    checksum: 0xea50,
  },
  {
    name: 'neighbor advertisement (solicited, override) with a target link-layer address',
    bytes: hex(
      '6000000000203aff 20010db8000000000001000200030004 fe8000000000000002005efffe005301 8800589860000000 20010db8000000000001000200030004 020100005e005302',
    ),
    src: TARGET,
    dst: HOST_LL,
    hopLimit: 255,
    message: { type: 'neighbor-advertisement', router: false, solicited: true, override: true, target: TARGET, options: [{ type: 'target-link-layer', address: MAC2 }] },
    checksum: 0x5898,
  },
  {
    name: 'router advertisement as a Miredo server sends it (report §8.1 frame 2)',
    bytes: hex(
      '6000000000383aff fe800000000000008000f22739cc9bfe fe800000000000000000ffffffffffff' +
        '8600954c 0000 0000 00000000 000007d0' +
        '0304 4040 ffffffff ffffffff 00000000 20010000c6336401 0000000000000000' +
        '0501 0000 00000500',
    ),
    src: v6('fe80::8000:f227:39cc:9bfe'),
    dst: v6('fe80::ffff:ffff:ffff'),
    hopLimit: 255,
    message: {
      type: 'router-advertisement',
      curHopLimit: 0,
      managed: false,
      other: false,
      routerLifetime: 0,
      reachableTime: 0,
      retransTimer: 2000,
      options: [
        { type: 'prefix-information', prefixLength: 64, onLink: false, autonomous: true, validLifetime: 0xffffffff, preferredLifetime: 0xffffffff, prefix: v6('2001:0:c633:6401::') },
        { type: 'mtu', mtu: 1280 },
      ],
    },
    checksum: 0x954c,
  },
  {
    name: 'packet too big, MTU 1280',
    bytes: concat(hex('6000000000403a40 20010db80000000000000000000000ff 20010db8000000000000000000000001 02002ae400000500'), UDP6),
    src: v6('2001:db8::ff'),
    dst: v6('2001:db8::1'),
    hopLimit: 64,
    message: { type: 'packet-too-big', mtu: 1280, invoking: UDP6 },
    checksum: 0x2ae4,
  },
  {
    name: 'destination unreachable, port unreachable (code 4)',
    bytes: concat(hex('6000000000403a40 20010db8000000000000000000000002 20010db8000000000000000000000001 010431dd00000000'), UDP6),
    src: v6('2001:db8::2'),
    dst: v6('2001:db8::1'),
    hopLimit: 64,
    message: { type: 'destination-unreachable', code: 4, invoking: UDP6 },
    checksum: 0x31dd,
  },
  {
    name: 'time exceeded, hop limit (code 0)',
    bytes: concat(hex('6000000000403a40 20010db80000000000000000000000ff 20010db8000000000000000000000001 03002ee400000000'), UDP6),
    src: v6('2001:db8::ff'),
    dst: v6('2001:db8::1'),
    hopLimit: 64,
    message: { type: 'time-exceeded', code: 0, invoking: UDP6 },
    checksum: 0x2ee4,
  },
  {
    name: 'parameter problem, pointer 6 (next header)',
    bytes: concat(hex('6000000000403a40 20010db8000000000000000000000002 20010db8000000000000000000000001 04002edb00000006'), UDP6),
    src: v6('2001:db8::2'),
    dst: v6('2001:db8::1'),
    hopLimit: 64,
    message: { type: 'parameter-problem', code: 0, pointer: 6, invoking: UDP6 },
    checksum: 0x2edb,
  },
];

for (const v of VECTORS) {
  test(`vector decodes: ${v.name}`, () => {
    assert.equal(checksumField(v.bytes), v.checksum);
    assert.equal(refIcmpv6Checksum(v.src, v.dst, v.bytes.subarray(40)), v.checksum, 'the reference agrees with tshark');
    const r = parseIcmpv6Packet(v.bytes);
    assert.ok(r.ok, r.ok ? '' : r.reason);
    assert.equal(r.value.hopLimit, v.hopLimit);
    assert.deepEqual(r.value.src, v.src);
    assert.deepEqual(r.value.dst, v.dst);
    assert.deepEqual(r.value.message, v.message);
  });

  test(`vector encodes to the same bytes: ${v.name}`, () => {
    const built = buildIcmpv6Packet(v.src, v.dst, v.message, v.hopLimit === 64 || v.hopLimit === 255 ? undefined : v.hopLimit);
    assert.equal(toHex(built), toHex(v.bytes));
    assert.equal(icmpv6EncodingLength(v.message), v.bytes.length - 40);
  });
}

test('the NS vector goes to the solicited-node multicast address of its target (RFC 4291 §2.7.1)', () => {
  const ns = VECTORS.find((v) => v.message.type === 'neighbor-solicitation')!;
  const solicited = v6('ff02::1:ff00:0');
  solicited.set(TARGET.subarray(13, 16), 13);
  assert.deepEqual(ns.dst, solicited);
});

test('the Miredo RA source is the server link-local address: cone flag, ~3544, ~198.51.100.1 (report §8.1)', () => {
  const src = VECTORS.find((v) => v.message.type === 'router-advertisement')!.src;
  assert.equal(toHex(src.subarray(8)), '8000' + (3544 ^ 0xffff).toString(16) + (~0xc6336401 >>> 0).toString(16));
});

test('hop limit defaults: 255 for NDP (RFC 4861 §6.1), 64 otherwise; an explicit value wins', () => {
  const ll = v6('fe80::1');
  assert.equal(buildIcmpv6Packet(ll, ll, { type: 'router-solicitation', options: [] })[7], 255);
  assert.equal(buildIcmpv6Packet(ll, ll, { type: 'neighbor-advertisement', router: true, solicited: false, override: false, target: ll, options: [] })[7], 255);
  assert.equal(buildIcmpv6Packet(ll, ll, { type: 'echo-request', identifier: 0, sequence: 0, data: new Uint8Array(0) })[7], 64);
  assert.equal(buildIcmpv6Packet(ll, ll, { type: 'echo-request', identifier: 0, sequence: 0, data: new Uint8Array(0) }, 1)[7], 1);
  assert.equal(buildIcmpv6Packet(ll, ll, { type: 'router-solicitation', options: [] }, 254)[7], 254);
});

test('NA flags each decode on their own', () => {
  for (const [flags, router, solicited, override] of [
    [0x80, true, false, false],
    [0x40, false, true, false],
    [0x20, false, false, true],
    [0xe0, true, true, true],
    [0x1f, false, false, false], // reserved bits are ignored
  ] as const) {
    const body = concat(Uint8Array.of(136, 0, 0, 0, flags, 0, 0, 0), TARGET);
    const r = parseIcmpv6(body);
    assert.ok(r.ok && r.value.type === 'neighbor-advertisement');
    assert.deepEqual([r.value.router, r.value.solicited, r.value.override], [router, solicited, override]);
  }
});

test('RA flags, and unknown options and message types are kept', () => {
  const ra = parseIcmpv6(concat(hex('8600 0000 40c0 0708 00000001 00000002'), hex('1f01 aabbccddeeff'), hex('0501 0000 000005dc')));
  assert.ok(ra.ok && ra.value.type === 'router-advertisement');
  assert.deepEqual([ra.value.curHopLimit, ra.value.managed, ra.value.other, ra.value.routerLifetime, ra.value.reachableTime, ra.value.retransTimer], [64, true, true, 0x0708, 1, 2]);
  // An unknown option type (31) is kept whole, and does not stop the options after it.
  assert.deepEqual(ra.value.options, [
    { type: 'unknown', optionType: 31, data: hex('aabbccddeeff') },
    { type: 'mtu', mtu: 1500 },
  ]);
  // Redirect (137) is not decoded: it is passed through as "other".
  const redirect = parseIcmpv6(hex('8900 0000 00000000 0102'));
  assert.ok(redirect.ok);
  assert.deepEqual(redirect.value, { type: 'other', icmpType: 137, code: 0, body: hex('00000000 0102') });
});

test('link-layer options longer than 8 bytes keep their padding', () => {
  // RFC 4861 §4.6.1 leaves the address length to the link type; the codec returns the whole option body.
  const r = parseNdpOptions(hex('0102 00112233445566778899aabbccdd'));
  assert.ok(r.ok);
  assert.deepEqual(r.value, [{ type: 'source-link-layer', address: hex('00112233445566778899aabbccdd') }]);
});

test('every failure reason of parseIcmpv6 and parseNdpOptions', () => {
  const rs = (opts: string): Uint8Array => hex('8500 0000 00000000' + opts);
  const cases: Array<[string, Uint8Array, string]> = [
    ['empty', new Uint8Array(0), 'truncated'],
    ['3 bytes', hex('800000'), 'truncated'],
    ['echo of 7 bytes', hex('8000 0000 123400'), 'truncated'],
    ['packet too big of 7 bytes', hex('0200 0000 000005'), 'truncated'],
    ['destination unreachable of 4 bytes', hex('0104 0000'), 'truncated'],
    ['time exceeded of 6 bytes', hex('0300 0000 0000'), 'truncated'],
    ['parameter problem of 7 bytes', hex('0400 0000 000000'), 'truncated'],
    ['RS with code 1', hex('8501 0000 00000000'), 'bad-code'],
    ['RA with code 255', hex('86ff 0000 00000000 00000000 00000000'), 'bad-code'],
    ['NS with code 1', concat(hex('8701 0000 00000000'), TARGET), 'bad-code'],
    ['NA with code 1', concat(hex('8801 0000 00000000'), TARGET), 'bad-code'],
    ['RS of 7 bytes', hex('8500 0000 000000'), 'truncated'],
    ['RA of 15 bytes', hex('8600 0000 00000000 00000000 000000'), 'truncated'],
    ['NS of 23 bytes', concat(hex('8700 0000 00000000'), TARGET.subarray(0, 15)), 'truncated'],
    ['NA of 8 bytes', hex('8800 0000 00000000'), 'truncated'],
    ['option of length 0', rs('0100 000000000000'), 'bad-option-length'],
    ['option running past the end', rs('0102 000000000000'), 'truncated'],
    ['a lone trailing option byte', rs('01'), 'truncated'],
    ['a second option cut short', rs('0101 000000000000 05'), 'truncated'],
    ['prefix information of length 3', rs('0303' + '00'.repeat(22)), 'bad-option-length'],
    ['prefix information of length 5', rs('0305' + '00'.repeat(38)), 'bad-option-length'],
    ['prefix length 129', rs('0304 81c0' + '00'.repeat(28)), 'bad-option'],
    ['MTU option of length 2', rs('0502' + '00'.repeat(14)), 'bad-option-length'],
  ];
  for (const [name, bytes, reason] of cases) {
    const r = parseIcmpv6(bytes);
    assert.equal(r.ok, false, name);
    if (!r.ok) assert.equal(r.reason, reason, name);
  }
  // Prefix length 128 is the largest allowed.
  assert.ok(parseIcmpv6(rs('0304 80c0' + '00'.repeat(28))).ok);
});

test('checksums are verified only when both addresses are given', () => {
  const v = VECTORS[0]!;
  const body = v.bytes.slice(40);
  body[9] ^= 1;
  const r = parseIcmpv6(body, v.src, v.dst);
  assert.ok(!r.ok && r.reason === 'bad-checksum');
  assert.ok(parseIcmpv6(body).ok);
  assert.ok(parseIcmpv6(body, v.src).ok);
  // The wrong pseudo-header (another source) fails too.
  const w = parseIcmpv6(v.bytes.subarray(40), v.dst, v.dst);
  assert.ok(!w.ok && w.reason === 'bad-checksum');
});

test('parseIcmpv6Packet failure reasons', () => {
  const echo = VECTORS[0]!.bytes;
  const cases: Array<[string, Uint8Array, string]> = [
    ['39 bytes', echo.slice(0, 39), 'truncated'],
    ['version 4', Uint8Array.from(echo, (x, i) => (i === 0 ? 0x45 : x)), 'bad-version'],
    ['payload length 65535', Uint8Array.from(echo, (x, i) => (i === 4 || i === 5 ? 0xff : x)), 'bad-payload-length'],
    ['UDP, not ICMPv6', UDP6, 'not-icmpv6'],
    ['a corrupted checksum', Uint8Array.from(echo, (x, i) => (i === 43 ? x ^ 0x40 : x)), 'bad-checksum'],
    ['a hop-by-hop header first', Uint8Array.from(echo, (x, i) => (i === 6 ? 0 : x)), 'not-icmpv6'],
    ['ICMPv6 of 3 bytes', hex('6000000000033aff' + '00'.repeat(32) + '800000'), 'truncated'],
  ];
  for (const [name, bytes, reason] of cases) {
    const r = parseIcmpv6Packet(bytes);
    assert.equal(r.ok, false, name);
    if (!r.ok) assert.equal(r.reason, reason, name);
  }
  // Trailing bytes after the IPv6 payload length are not part of the checksum.
  const padded = parseIcmpv6Packet(concat(echo, hex('deadbeef')));
  assert.ok(padded.ok && padded.value.message.type === 'echo-request');
});

test('invokingPacket keeps an error message within the minimum MTU (RFC 4443 §2.4(c))', () => {
  const big = new Uint8Array(3000).map((_, i) => i & 0xff);
  const cut = invokingPacket(big);
  assert.equal(cut.length, MIN_MTU - 48);
  assert.equal(cut.buffer, big.buffer, 'a view, not a copy');
  const pkt = buildIcmpv6Packet(v6('2001:db8::ff'), v6('2001:db8::1'), { type: 'destination-unreachable', code: 0, invoking: cut });
  assert.equal(pkt.length, MIN_MTU);
  assert.equal(invokingPacket(UDP6).length, UDP6.length);
});

test('emitIcmpv6 rejects a buffer that is too small', () => {
  const m: Icmpv6Message = { type: 'echo-request', identifier: 1, sequence: 2, data: new Uint8Array(10) };
  assert.throws(() => emitIcmpv6(m, HOST_LL, HOST_LL, new Uint8Array(17)), RangeError);
  assert.throws(() => emitIcmpv6(m, HOST_LL, HOST_LL, new Uint8Array(40), 23), RangeError);
  assert.equal(emitIcmpv6(m, HOST_LL, HOST_LL, new Uint8Array(40), 22), 18);
});

test('an NDP option too long for its 8-bit length field is refused, not wrapped to length 0', () => {
  // 2 + 2038 bytes is 255 units, the most RFC 4861 §4.6 can express; one more unit would be written as 0.
  const fits: Icmpv6Message = { type: 'router-solicitation', options: [{ type: 'unknown', optionType: 200, data: new Uint8Array(2038) }] };
  const out = new Uint8Array(icmpv6EncodingLength(fits));
  emitIcmpv6(fits, HOST_LL, HOST_LL, out);
  assert.equal(out[9], 255);
  assert.ok(parseIcmpv6(out, HOST_LL, HOST_LL).ok);
  for (const opt of [
    { type: 'unknown', optionType: 200, data: new Uint8Array(2039) },
    { type: 'source-link-layer', address: new Uint8Array(2046) },
  ] as NdpOption[]) {
    const m: Icmpv6Message = { type: 'router-solicitation', options: [opt] };
    assert.throws(() => emitIcmpv6(m, HOST_LL, HOST_LL, new Uint8Array(4096)), RangeError);
  }
});

test('emit at offset 37 of a 2000-byte buffer for every vector: neighbours untouched, parses back, length exact', () => {
  for (const v of VECTORS) {
    const buf = new Uint8Array(2000).fill(0xaa);
    const n = emitIcmpv6(v.message, v.src, v.dst, buf, 37);
    assert.equal(n, icmpv6EncodingLength(v.message), v.name);
    for (let i = 0; i < 37; i++) assert.equal(buf[i], 0xaa, v.name);
    for (let i = 37 + n; i < 2000; i++) assert.equal(buf[i], 0xaa, v.name);
    assert.equal(toHex(buf.subarray(37, 37 + n)), toHex(v.bytes.subarray(40)), v.name);
    const r = parseIcmpv6(buf.subarray(37, 37 + n), v.src, v.dst);
    assert.ok(r.ok, v.name);
    assert.deepEqual(r.value, v.message, v.name);
  }
});

test('emitting over a dirty buffer leaves no stale bytes (reserved fields and option padding are zeroed)', () => {
  for (const v of VECTORS) {
    const buf = new Uint8Array(v.bytes.length - 40).fill(0xee);
    emitIcmpv6(v.message, v.src, v.dst, buf, 0);
    assert.equal(toHex(buf), toHex(v.bytes.subarray(40)), v.name);
  }
  // An odd-length link-layer address is padded with zeros.
  const m: Icmpv6Message = { type: 'router-solicitation', options: [{ type: 'source-link-layer', address: hex('0102030405') }] };
  const buf = new Uint8Array(16).fill(0xee);
  emitIcmpv6(m, HOST_LL, HOST_LL, buf);
  assert.equal(toHex(buf.subarray(8)), '01010102030405' + '00');
});

// ---------------------------------------------------------------------------------------------------------
// Properties

const u8 = fc.nat({ max: 0xff });
const u16 = fc.nat({ max: 0xffff });
const u32 = fc.nat({ max: 0xffffffff });
const bytes16 = fc.uint8Array({ minLength: 16, maxLength: 16 });
/** Lengths the codec round-trips exactly: option bodies fill whole 8-byte units (2 + 6 + 8k). */
const optionBody = fc.nat({ max: 3 }).chain((k) => fc.uint8Array({ minLength: 6 + 8 * k, maxLength: 6 + 8 * k }));

const ndpOption: fc.Arbitrary<NdpOption> = fc.oneof(
  fc.record({ type: fc.constant('source-link-layer' as const), address: optionBody }, { noNullPrototype: true }),
  fc.record({ type: fc.constant('target-link-layer' as const), address: optionBody }, { noNullPrototype: true }),
  fc.record(
    {
      type: fc.constant('prefix-information' as const),
      prefixLength: fc.nat({ max: 128 }),
      onLink: fc.boolean(),
      autonomous: fc.boolean(),
      validLifetime: u32,
      preferredLifetime: u32,
      prefix: bytes16,
    },
    { noNullPrototype: true },
  ),
  fc.record({ type: fc.constant('mtu' as const), mtu: u32 }, { noNullPrototype: true }),
  fc.record({ type: fc.constant('unknown' as const), optionType: u8.filter((t) => ![1, 2, 3, 5].includes(t)), data: optionBody }, { noNullPrototype: true }),
);
const options = fc.array(ndpOption, { maxLength: 5 });
const data = fc.uint8Array({ maxLength: 200 });
const knownTypes = [1, 2, 3, 4, 128, 129, 133, 134, 135, 136];

const message: fc.Arbitrary<Icmpv6Message> = fc.oneof(
  fc.record({ type: fc.constantFrom('echo-request' as const, 'echo-reply' as const), identifier: u16, sequence: u16, data }, { noNullPrototype: true }),
  fc.record({ type: fc.constant('router-solicitation' as const), options }, { noNullPrototype: true }),
  fc.record(
    {
      type: fc.constant('router-advertisement' as const),
      curHopLimit: u8,
      managed: fc.boolean(),
      other: fc.boolean(),
      routerLifetime: u16,
      reachableTime: u32,
      retransTimer: u32,
      options,
    },
    { noNullPrototype: true },
  ),
  fc.record({ type: fc.constant('neighbor-solicitation' as const), target: bytes16, options }, { noNullPrototype: true }),
  fc.record(
    { type: fc.constant('neighbor-advertisement' as const), router: fc.boolean(), solicited: fc.boolean(), override: fc.boolean(), target: bytes16, options },
    { noNullPrototype: true },
  ),
  fc.record({ type: fc.constantFrom('destination-unreachable' as const, 'time-exceeded' as const), code: u8, invoking: data }, { noNullPrototype: true }),
  fc.record({ type: fc.constant('packet-too-big' as const), mtu: u32, invoking: data }, { noNullPrototype: true }),
  fc.record({ type: fc.constant('parameter-problem' as const), code: u8, pointer: u32, invoking: data }, { noNullPrototype: true }),
  fc.record({ type: fc.constant('other' as const), icmpType: u8.filter((t) => !knownTypes.includes(t)), code: u8, body: data }, { noNullPrototype: true }),
);

test('parse(emit(m)) == m for arbitrary messages, with an exact length and a reference checksum (property)', () => {
  fc.assert(
    fc.property(message, bytes16, bytes16, fc.nat({ max: 40 }), (m, src, dst, offset) => {
      const len = icmpv6EncodingLength(m);
      const buf = new Uint8Array(offset + len + 8).fill(0x5a);
      assert.equal(emitIcmpv6(m, src, dst, buf, offset), len);
      assert.equal(buf[offset + len], 0x5a, 'nothing written past encodingLength');
      const body = buf.subarray(offset, offset + len);
      assert.equal((body[2]! << 8) | body[3]!, refIcmpv6Checksum(src, dst, body));
      const r = parseIcmpv6(body, src, dst);
      assert.ok(r.ok, r.ok ? '' : r.reason);
      assert.deepEqual(r.value, m);
    }),
    { seed: SEED, numRuns: 2000 },
  );
});

test('buildIcmpv6Packet → parseIcmpv6Packet round trip (property)', () => {
  fc.assert(
    fc.property(message, bytes16, bytes16, fc.option(u8, { nil: undefined }), (m, src, dst, hop) => {
      const r = parseIcmpv6Packet(buildIcmpv6Packet(src, dst, m, hop));
      assert.ok(r.ok);
      assert.deepEqual(r.value.message, m);
      assert.deepEqual([r.value.src, r.value.dst], [src, dst]);
      if (hop !== undefined) assert.equal(r.value.hopLimit, hop);
    }),
    { seed: SEED, numRuns: 1000 },
  );
});

test('NDP option lists round-trip through an RS (property)', () => {
  fc.assert(
    fc.property(options, (opts) => {
      const body = new Uint8Array(icmpv6EncodingLength({ type: 'router-solicitation', options: opts }));
      emitIcmpv6({ type: 'router-solicitation', options: opts }, HOST_LL, HOST_LL, body);
      const r = parseNdpOptions(body.subarray(8));
      assert.ok(r.ok);
      assert.deepEqual(r.value, opts);
    }),
    { seed: SEED, numRuns: 2000 },
  );
});

/** Random mutations of a valid packet: bit flips, byte overwrites, truncation, extension. */
function mutate(base: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  return fc
    .tuple(base, fc.array(fc.tuple(fc.nat({ max: 3 }), fc.nat(), u8), { minLength: 1, maxLength: 4 }), fc.uint8Array({ minLength: 1, maxLength: 24 }))
    .map(([b, edits, more]) => {
      let d: Uint8Array = b.slice();
      for (const [kind, at, value] of edits) {
        if (d.length === 0) break;
        if (kind === 0) d[at % d.length] ^= 1 << (value & 7);
        else if (kind === 1) d[at % d.length] = value;
        else if (kind === 2) d = d.slice(0, at % (d.length + 1));
        else d = concat(d, more);
      }
      return d;
    });
}

const validPackets = fc.oneof(
  fc.tuple(message, bytes16, bytes16).map(([m, s, d]) => buildIcmpv6Packet(s, d, m)),
  fc.constantFrom(...VECTORS.map((v) => v.bytes)),
);

test('parseIcmpv6Packet, parseIcmpv6 and parseNdpOptions never throw on random or mutated bytes (property)', () => {
  const reasons = ['truncated', 'bad-checksum', 'bad-code', 'bad-option-length', 'bad-option', 'bad-version', 'bad-payload-length', 'not-icmpv6'];
  const withIcmpHeader = fc.uint8Array({ minLength: 40, maxLength: 120 }).map((b) => {
    b[0] = 0x60;
    b[4] = 0;
    b[5] = b.length - 40;
    b[6] = 58;
    return b;
  });
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 100 }), withIcmpHeader, mutate(validPackets)), (b) => {
      const r = parseIcmpv6Packet(b);
      if (!r.ok) assert.ok(reasons.includes(r.reason), r.reason);
      const body = b.subarray(Math.min(40, b.length));
      for (const p of [parseIcmpv6(body), parseIcmpv6(b), parseNdpOptions(b), parseNdpOptions(body)]) if (!p.ok) assert.ok(reasons.includes(p.reason), p.reason);
    }),
    { seed: SEED, numRuns: 3000 },
  );
});

test('whatever parseIcmpv6 accepts, emit reproduces and parse reads identically (property)', () => {
  // Idempotence: parse ∘ emit ∘ parse == parse. Catches values that the parser can produce but the emitter
  // cannot write (or writes differently).
  const bodies = fc.oneof(
    mutate(validPackets).map((b) => b.subarray(Math.min(40, b.length))),
    fc.tuple(fc.constantFrom(...knownTypes, 137, 200), fc.uint8Array({ maxLength: 80 })).map(([t, rest]) => concat(Uint8Array.of(t, 0, 0, 0), rest)),
  );
  let accepted = 0;
  fc.assert(
    fc.property(bodies, bytes16, bytes16, (body, src, dst) => {
      const first = parseIcmpv6(body);
      if (!first.ok) return;
      accepted++;
      const out = new Uint8Array(icmpv6EncodingLength(first.value));
      emitIcmpv6(first.value, src, dst, out);
      const second = parseIcmpv6(out, src, dst);
      assert.ok(second.ok);
      assert.deepEqual(second.value, first.value);
    }),
    { seed: SEED, numRuns: 3000 },
  );
  assert.ok(accepted > 500, `enough inputs were accepted to mean something (${accepted})`);
});

test('an ICMPv6 message inside a larger IPv6 packet built by hand parses (emitIpv6Header + emitIcmpv6 at offset 40)', () => {
  const m: Icmpv6Message = { type: 'neighbor-solicitation', target: TARGET, options: [{ type: 'source-link-layer', address: MAC }] };
  const len = icmpv6EncodingLength(m);
  const buf = new Uint8Array(40 + len);
  emitIpv6Header({ src: HOST_LL, dst: v6('ff02::1:ff03:4'), nextHeader: 58, payloadLength: len, hopLimit: 255 }, buf, 0);
  emitIcmpv6(m, HOST_LL, v6('ff02::1:ff03:4'), buf, 40);
  assert.equal(toHex(buf), toHex(VECTORS.find((v) => v.message.type === 'neighbor-solicitation')!.bytes));
});
