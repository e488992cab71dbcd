/**
 * IPv6 header codec (src/wire/ipv6.ts): known bytes both ways, bubbles, failure reasons (including a payload
 * length claiming 65535), trailing bytes, emission at an offset, and properties.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';

import {
  buildBubble,
  emitIpv6Header,
  IPV6_HEADER,
  ipv6Dst,
  ipv6Src,
  isBubble,
  NEXT_HEADER_ICMPV6,
  NEXT_HEADER_NONE,
  NEXT_HEADER_UDP,
  parseIpv6,
  type Ipv6HeaderInit,
} from '../../src/wire/ipv6.js';
import { hex, toHex, concat } from './bytes.js';
import { v6 } from '../addresses.js';

const SEED = 4380;

// The Teredo client's connectivity-test echo request (report §8.1 frame 3 shape), tshark-verified.
const TEREDO_CLIENT = '2001:0:c633:6401:2079:97eb:34ff:8efe';
const ECHO = hex(
  '6000 0000 0010 3a80 20010000c6336401207997eb34ff8efe 20010db8000100000000000000000010' + '8000 bb9c 1234 0001 7472616e73697436',
);
// The relay's indirect bubble as the server forwards it (frame 6 shape), IPv6 part.
const BUBBLE = hex('6000 0000 0000 3bff fe800000000000001c6605d1b2e34f07 20010000c6336401207997eb34ff8efe');

test('an ICMPv6 echo request header decodes', () => {
  const r = parseIpv6(ECHO);
  assert.ok(r.ok);
  const h = r.value.header;
  assert.equal(h.trafficClass, 0);
  assert.equal(h.flowLabel, 0);
  assert.equal(h.payloadLength, 16);
  assert.equal(h.nextHeader, NEXT_HEADER_ICMPV6);
  assert.equal(h.hopLimit, 128);
  assert.deepEqual(h.src, v6(TEREDO_CLIENT));
  assert.deepEqual(h.dst, v6('2001:db8:1::10'));
  assert.equal(toHex(r.value.payload), '8000bb9c123400017472616e73697436');
  assert.equal(r.value.packet.length, 56);
  assert.equal(r.value.trailing.length, 0);
});

test('an ICMPv6 echo request header encodes to the same bytes', () => {
  const out = new Uint8Array(40);
  const n = emitIpv6Header({ src: v6(TEREDO_CLIENT), dst: v6('2001:db8:1::10'), nextHeader: 58, payloadLength: 16, hopLimit: 128 }, out);
  assert.equal(n, 40);
  assert.equal(toHex(out), toHex(ECHO.subarray(0, 40)));
});

test('traffic class and flow label go both ways', () => {
  // Version 6, traffic class 0xe1, flow label 0x23456, payload 0, UDP, hop limit 1, :: → ::1.
  const bytes = hex('6e12 3456 0000 1101 00000000000000000000000000000000 00000000000000000000000000000001');
  const r = parseIpv6(bytes);
  assert.ok(r.ok);
  assert.equal(r.value.header.trafficClass, 0xe1);
  assert.equal(r.value.header.flowLabel, 0x23456);
  assert.equal(r.value.header.nextHeader, NEXT_HEADER_UDP);
  assert.equal(r.value.header.hopLimit, 1);
  const out = new Uint8Array(40);
  emitIpv6Header({ src: v6('::'), dst: v6('::1'), nextHeader: 17, payloadLength: 0, hopLimit: 1, trafficClass: 0xe1, flowLabel: 0x23456 }, out);
  assert.equal(toHex(out), toHex(bytes));
  // All ones.
  const ones = new Uint8Array(40);
  emitIpv6Header({ src: v6('::'), dst: v6('::'), nextHeader: 0, payloadLength: 0, trafficClass: 0xff, flowLabel: 0xfffff }, ones);
  assert.equal(toHex(ones.subarray(0, 4)), '6fffffff');
});

test('a bubble (RFC 4380 §2.8) goes both ways', () => {
  const built = buildBubble(v6('fe80::1c66:5d1:b2e3:4f07'), v6(TEREDO_CLIENT));
  assert.equal(toHex(built), toHex(BUBBLE));
  const r = parseIpv6(BUBBLE);
  assert.ok(r.ok);
  assert.ok(isBubble(r.value.header));
  assert.equal(r.value.header.nextHeader, NEXT_HEADER_NONE);
  assert.equal(r.value.header.hopLimit, 255);
  const echo = parseIpv6(ECHO);
  assert.ok(echo.ok && !isBubble(echo.value.header));
  // Next header 59 with a payload is not a bubble.
  const notBubble = concat(BUBBLE, hex('00000000'));
  notBubble[5] = 4;
  const nb = parseIpv6(notBubble);
  assert.ok(nb.ok && !isBubble(nb.value.header));
});

test('quick accessors return views of source and destination', () => {
  assert.deepEqual(ipv6Src(ECHO), v6(TEREDO_CLIENT));
  assert.deepEqual(ipv6Dst(ECHO), v6('2001:db8:1::10'));
  assert.equal(ipv6Src(ECHO).buffer, ECHO.buffer);
  const r = parseIpv6(ECHO);
  assert.ok(r.ok && r.value.header.src.buffer === ECHO.buffer, 'parsed addresses are views');
});

test('trailing bytes (RFC 6081 trailers, link padding) are split off', () => {
  const withTrailer = concat(ECHO, hex('0001 0203 04'));
  const r = parseIpv6(withTrailer);
  assert.ok(r.ok);
  assert.equal(r.value.packet.length, 56);
  assert.equal(toHex(r.value.trailing), '0001020304');
  assert.equal(r.value.payload.length, 16);
});

test('every failure reason, including a payload length claiming 65535', () => {
  const claim = (n: number, size: number): Uint8Array => {
    const b = new Uint8Array(size);
    b.set(ECHO.subarray(0, 40));
    b[4] = n >> 8;
    b[5] = n & 0xff;
    return b;
  };
  const cases: Array<[string, Uint8Array, string]> = [
    ['empty', new Uint8Array(0), 'truncated'],
    ['39 bytes', ECHO.slice(0, 39), 'truncated'],
    ['version 4', Uint8Array.from(ECHO, (x, i) => (i === 0 ? 0x45 : x)), 'bad-version'],
    ['version 0', Uint8Array.from(ECHO, (x, i) => (i === 0 ? 0x00 : x)), 'bad-version'],
    ['version 7', Uint8Array.from(ECHO, (x, i) => (i === 0 ? 0x70 : x)), 'bad-version'],
    ['payload length 65535 in 40 bytes', claim(65535, 40), 'bad-payload-length'],
    ['payload length 65535 in 56 bytes', claim(65535, 56), 'bad-payload-length'],
    ['payload length 65535, one byte short', claim(65535, 40 + 65534), 'bad-payload-length'],
    ['payload length 17 in 56 bytes', claim(17, 56), 'bad-payload-length'],
  ];
  for (const [name, bytes, reason] of cases) {
    const r = parseIpv6(bytes);
    assert.equal(r.ok, false, name);
    if (!r.ok) assert.equal(r.reason, reason, name);
  }
  const max = parseIpv6(claim(65535, 40 + 65535));
  assert.ok(max.ok && max.value.payload.length === 65535);
  const zero = parseIpv6(claim(0, 40));
  assert.ok(zero.ok && zero.value.payload.length === 0);
});

test('emitIpv6Header rejects local misuse with a RangeError', () => {
  const base: Ipv6HeaderInit = { src: v6('::1'), dst: v6('::1'), nextHeader: 59, payloadLength: 0 };
  assert.throws(() => emitIpv6Header({ ...base, payloadLength: 65536 }, new Uint8Array(40)), RangeError);
  assert.throws(() => emitIpv6Header(base, new Uint8Array(39)), RangeError);
  assert.throws(() => emitIpv6Header(base, new Uint8Array(80), 41), RangeError);
  // A traffic class or flow label that does not fit must not leak into the version nibble or vanish silently.
  assert.throws(() => emitIpv6Header({ ...base, trafficClass: 0x100 }, new Uint8Array(40)), RangeError);
  assert.throws(() => emitIpv6Header({ ...base, trafficClass: -1 }, new Uint8Array(40)), RangeError);
  assert.throws(() => emitIpv6Header({ ...base, flowLabel: 0x100000 }, new Uint8Array(40)), RangeError);
  assert.throws(() => emitIpv6Header({ ...base, flowLabel: -1 }, new Uint8Array(40)), RangeError);
});

test('emit at offset 37 of a 2000-byte buffer: neighbours untouched, parses back, written == 40', () => {
  const buf = new Uint8Array(2000).fill(0xaa);
  const init = { src: v6(TEREDO_CLIENT), dst: v6('2001:db8:1::10'), nextHeader: 58, payloadLength: 100, hopLimit: 7, trafficClass: 0x2e, flowLabel: 0xabcde };
  const n = emitIpv6Header(init, buf, 37);
  assert.equal(n, IPV6_HEADER);
  for (let i = 0; i < 37; i++) assert.equal(buf[i], 0xaa);
  for (let i = 37 + n; i < 2000; i++) assert.equal(buf[i], 0xaa);
  const r = parseIpv6(buf.subarray(37));
  assert.ok(r.ok);
  const h = r.value.header;
  assert.deepEqual(
    { src: h.src, dst: h.dst, nextHeader: h.nextHeader, payloadLength: h.payloadLength, hopLimit: h.hopLimit, trafficClass: h.trafficClass, flowLabel: h.flowLabel },
    init,
  );
  assert.equal(r.value.trailing.length, 2000 - 37 - 140);
});

test('defaults: hop limit 64, traffic class 0, flow label 0', () => {
  const out = new Uint8Array(40).fill(0xff);
  emitIpv6Header({ src: v6('::1'), dst: v6('::2'), nextHeader: 6, payloadLength: 0 }, out);
  assert.equal(toHex(out.subarray(0, 8)), '6000000000000640');
});

const addr = fc.uint8Array({ minLength: 16, maxLength: 16 });
const initArb = fc.record(
  {
    src: addr,
    dst: addr,
    nextHeader: fc.nat({ max: 255 }),
    payloadLength: fc.nat({ max: 2000 }),
    hopLimit: fc.nat({ max: 255 }),
    trafficClass: fc.nat({ max: 255 }),
    flowLabel: fc.nat({ max: 0xfffff }),
  },
  { noNullPrototype: true },
);

test('parse(emit(x)) == x, at any offset (property)', () => {
  fc.assert(
    fc.property(initArb, fc.nat({ max: 64 }), fc.uint8Array({ maxLength: 16 }), (init, offset, trailer) => {
      const buf = new Uint8Array(offset + 40 + init.payloadLength + trailer.length);
      buf.set(trailer, offset + 40 + init.payloadLength);
      emitIpv6Header(init, buf, offset);
      const r = parseIpv6(buf.subarray(offset));
      assert.ok(r.ok);
      const h = r.value.header;
      assert.deepEqual(
        { src: h.src, dst: h.dst, nextHeader: h.nextHeader, payloadLength: h.payloadLength, hopLimit: h.hopLimit, trafficClass: h.trafficClass, flowLabel: h.flowLabel },
        init,
      );
      assert.deepEqual(r.value.trailing, trailer);
    }),
    { seed: SEED, numRuns: 2000 },
  );
});

test('parseIpv6 never throws on random or mutated bytes, and what it accepts is consistent (property)', () => {
  const valid = initArb.map((i) => {
    const b = new Uint8Array(40 + (i.payloadLength % 100));
    emitIpv6Header({ ...i, payloadLength: i.payloadLength % 100 }, b);
    return b;
  });
  const mutated = fc.tuple(valid, fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { maxLength: 4 }), fc.nat(), fc.uint8Array({ maxLength: 20 })).map(([b, sets, cut, extra]) => {
    const d = b.slice();
    for (const [at, v] of sets) d[at % d.length] = v;
    return concat(d.subarray(0, cut % (d.length + 1)), extra);
  });
  const random = fc.uint8Array({ maxLength: 120 }).map((b) => {
    if (b.length > 0 && b[0]! & 1) b[0] = 0x60 | (b[0]! & 0x0f);
    return b;
  });
  fc.assert(
    fc.property(fc.oneof(random, mutated), (b) => {
      const r = parseIpv6(b);
      if (r.ok) {
        assert.equal(b[0]! >> 4, 6);
        assert.equal(r.value.packet.length, 40 + r.value.header.payloadLength);
        assert.equal(r.value.packet.length + r.value.trailing.length, b.length);
        assert.equal(r.value.header.src.length, 16);
      } else assert.ok(['truncated', 'bad-version', 'bad-payload-length'].includes(r.reason));
    }),
    { seed: SEED, numRuns: 3000 },
  );
});
