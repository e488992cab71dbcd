/**
 * IPv4 header codec (src/wire/ipv4.ts): known bytes both ways, every failure reason, emission at an offset of a
 * larger buffer, and properties (round trip, never throws on random or mutated bytes).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { internetChecksum } from '../../src/wire/checksum.js';
import { emitIpv4Header, IPV4_MIN_HEADER, parseIpv4, PROTO_IPV6, PROTO_UDP, type Ipv4HeaderInit } from '../../src/wire/ipv4.js';
import { hex, toHex } from './bytes.js';

const SEED = 4380;

function withPayload(header: Uint8Array, total: number): Uint8Array {
  const b = new Uint8Array(total);
  b.set(header, 0);
  for (let i = header.length; i < total; i++) b[i] = i & 0xff;
  return b;
}

/** Random mutations of a valid packet: bit flips, byte overwrites, truncation, extension. */
function mutations(base: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  const edit = fc.oneof(
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat({ max: 7 }) }),
    fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.nat({ max: 255 }) }),
    fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
    fc.record({ kind: fc.constant('extend' as const), more: fc.uint8Array({ minLength: 1, maxLength: 64 }) }),
  );
  return fc.tuple(base, fc.array(edit, { minLength: 1, maxLength: 4 })).map(([b, edits]) => {
    let d = b.slice();
    for (const e of edits) {
      if (e.kind === 'flip' && d.length > 0) d[e.at % d.length] ^= 1 << e.bit;
      else if (e.kind === 'set' && d.length > 0) d[e.at % d.length] = e.value;
      else if (e.kind === 'truncate') d = d.slice(0, e.at % (d.length + 1));
      else if (e.kind === 'extend') {
        const n = new Uint8Array(d.length + e.more.length);
        n.set(d, 0);
        n.set(e.more, d.length);
        d = n;
      }
    }
    return d;
  });
}

// The classic example: 4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7 (UDP, 192.168.0.1 → 192.168.0.199).
const CLASSIC = hex('4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7');

test('the classic IPv4 header decodes', () => {
  const r = parseIpv4(withPayload(CLASSIC, 0x73));
  assert.ok(r.ok);
  assert.deepEqual(r.value.header, {
    tos: 0,
    totalLength: 115,
    identification: 0,
    dontFragment: true,
    moreFragments: false,
    fragmentOffset: 0,
    ttl: 64,
    protocol: PROTO_UDP,
    src: 0xc0a80001,
    dst: 0xc0a800c7,
    headerLength: 20,
  });
  assert.equal(r.value.payload.length, 95);
  assert.equal(r.value.payload[0], 20);
});

test('the classic IPv4 header encodes to the same bytes', () => {
  const out = new Uint8Array(20);
  const n = emitIpv4Header({ src: 0xc0a80001, dst: 0xc0a800c7, protocol: PROTO_UDP, payloadLength: 95, ttl: 64, dontFragment: true }, out, 0);
  assert.equal(n, 20);
  assert.equal(toHex(out), toHex(CLASSIC));
});

test('a tshark-verified header with an identification (0x3247) goes both ways', () => {
  // 192.0.2.1 → 198.51.100.7, UDP, DF, id 0x1c46, 36 bytes; tshark: "Header Checksum: 0x3247 [correct]".
  const bytes = hex('4500 0024 1c46 4000 4011 3247 c000 0201 c633 6407');
  const r = parseIpv4(withPayload(bytes, 36));
  assert.ok(r.ok);
  assert.equal(r.value.header.identification, 0x1c46);
  assert.equal(r.value.header.src, 0xc0000201);
  assert.equal(r.value.header.dst, 0xc6336407);
  const out = new Uint8Array(20);
  emitIpv4Header({ src: 0xc0000201, dst: 0xc6336407, protocol: PROTO_UDP, payloadLength: 16, identification: 0x1c46, dontFragment: true }, out);
  assert.equal(toHex(out), toHex(bytes));
});

test('the lab capture frame 1 outer header (203.0.113.1 → 198.51.100.1, checksum 0x145e) goes both ways', () => {
  const bytes = hex('4500 0059 0000 0000 4011 145e cb00 7101 c633 6401');
  const r = parseIpv4(withPayload(bytes, 0x59));
  assert.ok(r.ok);
  assert.equal(r.value.header.dontFragment, false);
  const out = new Uint8Array(20);
  emitIpv4Header({ src: 0xcb007101, dst: 0xc6336401, protocol: PROTO_UDP, payloadLength: 0x59 - 20 }, out);
  assert.equal(toHex(out), toHex(bytes));
});

test('defaults: TTL 64, TOS 0, id 0, DF clear; other fields as given', () => {
  const out = new Uint8Array(20);
  emitIpv4Header({ src: 1, dst: 2, protocol: PROTO_IPV6, payloadLength: 0 }, out);
  const r = parseIpv4(out);
  assert.ok(r.ok);
  assert.equal(r.value.header.ttl, 64);
  assert.equal(r.value.header.tos, 0);
  assert.equal(r.value.header.identification, 0);
  assert.equal(r.value.header.dontFragment, false);
  assert.equal(r.value.header.protocol, 41);
  assert.equal(r.value.header.totalLength, 20);
  assert.equal(r.value.payload.length, 0);
});

test('fragment fields and options are read', () => {
  // MF set, offset 0x0123 units, one 4-byte option (IHL 6), checksum filled in below.
  const h = hex('4600 001c abcd 2123 0111 0000 0a00 0001 0a00 0002 9404 0000 deadbeef');
  const c = internetChecksum(h, 0, 24);
  h[10] = c >> 8;
  h[11] = c & 0xff;
  const r = parseIpv4(h);
  assert.ok(r.ok);
  assert.equal(r.value.header.headerLength, 24);
  assert.equal(r.value.header.moreFragments, true);
  assert.equal(r.value.header.dontFragment, false);
  assert.equal(r.value.header.fragmentOffset, 0x123);
  assert.equal(r.value.header.ttl, 1);
  assert.equal(toHex(r.value.payload), 'deadbeef');
});

test('link-layer padding after the total length is ignored', () => {
  const b = withPayload(CLASSIC, 0x73 + 30);
  const r = parseIpv4(b);
  assert.ok(r.ok);
  assert.equal(r.value.payload.length, 95);
  assert.equal(r.value.payload.byteOffset, b.byteOffset + 20, 'the payload is a view, not a copy');
});

test('every failure reason', () => {
  const good = withPayload(CLASSIC, 0x73);
  const cases: Array<[string, Uint8Array, string]> = [
    ['empty', new Uint8Array(0), 'truncated'],
    ['19 bytes', good.slice(0, 19), 'truncated'],
    ['version 6', Uint8Array.from(good, (x, i) => (i === 0 ? 0x65 : x)), 'bad-version'],
    ['version 0', Uint8Array.from(good, (x, i) => (i === 0 ? 0x05 : x)), 'bad-version'],
    ['IHL 4', Uint8Array.from(good, (x, i) => (i === 0 ? 0x44 : x)), 'bad-header-length'],
    ['IHL 0', Uint8Array.from(good, (x, i) => (i === 0 ? 0x40 : x)), 'bad-header-length'],
    ['IHL 15 in 20 bytes', Uint8Array.from(good.slice(0, 20), (x, i) => (i === 0 ? 0x4f : x)), 'truncated'],
    ['total length 19', Uint8Array.from(good, (x, i) => (i === 2 ? 0 : i === 3 ? 19 : x)), 'bad-total-length'],
    ['total length beyond the buffer', good.slice(0, 0x72), 'truncated'],
    ['total length 65535', Uint8Array.from(good, (x, i) => (i === 2 || i === 3 ? 0xff : x)), 'truncated'],
    ['checksum off by one', Uint8Array.from(good, (x, i) => (i === 11 ? 0x62 : x)), 'bad-checksum'],
    ['a flipped address bit', Uint8Array.from(good, (x, i) => (i === 19 ? x ^ 0x10 : x)), 'bad-checksum'],
  ];
  for (const [name, bytes, reason] of cases) {
    const r = parseIpv4(bytes);
    assert.equal(r.ok, false, name);
    if (!r.ok) assert.equal(r.reason, reason, name);
  }
  // verifyChecksum = false skips only the checksum.
  const bad = Uint8Array.from(good, (x, i) => (i === 11 ? 0x62 : x));
  assert.ok(parseIpv4(bad, false).ok);
});

test('emitIpv4Header rejects local misuse with a RangeError', () => {
  assert.throws(() => emitIpv4Header({ src: 1, dst: 2, protocol: 17, payloadLength: 65516 }, new Uint8Array(20)), RangeError);
  assert.throws(() => emitIpv4Header({ src: 1, dst: 2, protocol: 17, payloadLength: 0 }, new Uint8Array(19)), RangeError);
  assert.throws(() => emitIpv4Header({ src: 1, dst: 2, protocol: 17, payloadLength: 0 }, new Uint8Array(40), 21), RangeError);
  // The largest legal packet is fine.
  assert.equal(emitIpv4Header({ src: 1, dst: 2, protocol: 17, payloadLength: 65515 }, new Uint8Array(20)), 20);
});

test('emit at offset 37 of a 2000-byte buffer: neighbours untouched, parses back, written == 20', () => {
  const buf = new Uint8Array(2000).fill(0xaa);
  const init: Ipv4HeaderInit = { src: 0xcb007101, dst: 0xc6336401, protocol: PROTO_UDP, payloadLength: 100, ttl: 3, tos: 0xb8, identification: 0xfeed, dontFragment: true };
  const n = emitIpv4Header(init, buf, 37);
  assert.equal(n, IPV4_MIN_HEADER);
  for (let i = 0; i < 37; i++) assert.equal(buf[i], 0xaa, `byte ${i}`);
  for (let i = 37 + n; i < 2000; i++) assert.equal(buf[i], 0xaa, `byte ${i}`);
  const r = parseIpv4(buf.subarray(37, 37 + 20 + 100));
  assert.ok(r.ok);
  const h = r.value.header;
  assert.deepEqual(
    { src: h.src, dst: h.dst, protocol: h.protocol, payloadLength: h.totalLength - h.headerLength, ttl: h.ttl, tos: h.tos, identification: h.identification, dontFragment: h.dontFragment },
    init,
  );
});

const initArb: fc.Arbitrary<Ipv4HeaderInit> = fc.record(
  {
    src: fc.nat({ max: 0xffffffff }),
    dst: fc.nat({ max: 0xffffffff }),
    protocol: fc.nat({ max: 255 }),
    payloadLength: fc.nat({ max: 1500 }),
    ttl: fc.nat({ max: 255 }),
    tos: fc.nat({ max: 255 }),
    identification: fc.nat({ max: 0xffff }),
    dontFragment: fc.boolean(),
  },
  { noNullPrototype: true },
);

function packetOf(init: Ipv4HeaderInit, offset = 0): Uint8Array {
  const b = new Uint8Array(offset + 20 + init.payloadLength);
  emitIpv4Header(init, b, offset);
  return b.subarray(offset);
}

test('parse(emit(x)) == x, at any offset (property)', () => {
  fc.assert(
    fc.property(initArb, fc.nat({ max: 64 }), (init, offset) => {
      const r = parseIpv4(packetOf(init, offset));
      assert.ok(r.ok);
      const h = r.value.header;
      assert.deepEqual(
        { src: h.src, dst: h.dst, protocol: h.protocol, payloadLength: h.totalLength - 20, ttl: h.ttl, tos: h.tos, identification: h.identification, dontFragment: h.dontFragment },
        init,
      );
      assert.equal(h.moreFragments, false);
      assert.equal(h.fragmentOffset, 0);
      assert.equal(internetChecksum(packetOf(init), 0, 20), 0);
    }),
    { seed: SEED, numRuns: 2000 },
  );
});

test('parseIpv4 never throws on random bytes, and what it accepts is consistent (property)', () => {
  const check = (b: Uint8Array): void => {
    for (const verify of [true, false]) {
      const r = parseIpv4(b, verify);
      if (r.ok) {
        const h = r.value.header;
        assert.ok(h.headerLength >= 20 && h.headerLength <= 60 && h.headerLength <= b.length);
        assert.ok(h.totalLength >= h.headerLength && h.totalLength <= b.length);
        assert.equal(r.value.payload.length, h.totalLength - h.headerLength);
        if (verify) assert.equal(internetChecksum(b, 0, h.headerLength), 0);
      } else {
        assert.ok(['truncated', 'bad-version', 'bad-header-length', 'bad-total-length', 'bad-checksum'].includes(r.reason));
      }
    }
  };
  const random = fc.uint8Array({ maxLength: 200 }).map((b) => {
    if (b.length > 0) b[0] = 0x40 | (b[0]! & 0x0f); // mostly version 4, so the later checks are reached
    return b;
  });
  fc.assert(fc.property(fc.oneof(fc.uint8Array({ maxLength: 100 }), random), (b) => check(b)), { seed: SEED, numRuns: 3000 });
  fc.assert(fc.property(mutations(initArb.map((i) => packetOf({ ...i, payloadLength: i.payloadLength % 64 }))), (b) => check(b)), { seed: SEED, numRuns: 3000 });
});

test('any single bit flip in the header is caught by the checksum or a length check (property)', () => {
  fc.assert(
    fc.property(initArb, fc.nat({ max: 159 }), (init, bit) => {
      const b = packetOf({ ...init, payloadLength: init.payloadLength % 64 }).slice();
      b[bit >> 3] ^= 1 << (bit & 7);
      return !parseIpv4(b).ok;
    }),
    { seed: SEED, numRuns: 2000 },
  );
});
