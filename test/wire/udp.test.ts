/**
 * UDP codec (src/wire/udp.ts) over IPv4 and IPv6: tshark-verified datagrams both ways, the zero-checksum rules,
 * every failure reason, emission at an offset, and properties against a reference checksum.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseIpv4 } from '../../src/wire/ipv4.js';
import { parseIpv6 } from '../../src/wire/ipv6.js';
import { buildIpv4Udp, emitUdpHeader, parseUdp, UDP_HEADER, type UdpChecksumContext } from '../../src/wire/udp.js';
import { hex, toHex, concat, be32 } from './bytes.js';

const SEED = 4380;

/** RFC 1071 the slow way, over an explicit pseudo-header. */
function refChecksum(bytes: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < bytes.length; i += 2) {
    s += (bytes[i]! << 8) | (i + 1 < bytes.length ? bytes[i + 1]! : 0);
    if (s > 0xffff) s = (s & 0xffff) + 1;
  }
  return ~s & 0xffff;
}

function refUdpChecksum(ctx: Exclude<UdpChecksumContext, undefined>, udpWithZeroChecksum: Uint8Array): number {
  const len = udpWithZeroChecksum.length;
  const pseudo =
    ctx.family === 4
      ? concat(be32(ctx.src), be32(ctx.dst), Uint8Array.of(0, 17, len >> 8, len & 0xff))
      : concat(ctx.src, ctx.dst, be32(len), Uint8Array.of(0, 0, 0, 17));
  const c = refChecksum(concat(pseudo, udpWithZeroChecksum));
  return c === 0 ? 0xffff : c;
}

const PAYLOAD = new TextEncoder().encode('transit6');

// tshark-verified: "Checksum: 0x95db [correct]" (192.0.2.1:49152 → 198.51.100.7:53).
const UDP4_PACKET = hex('4500 0024 1c46 4000 4011 3247 c000 0201 c633 6407  c000 0035 0010 95db 7472616e73697436');
const V4: UdpChecksumContext = { family: 4, src: 0xc0000201, dst: 0xc6336407 };
// tshark-verified: "Checksum: 0x26a3 [correct]" ([2001:db8::1]:49152 → [2001:db8::2]:53).
const UDP6_PACKET = hex(
  '6000 0000 0010 1140 20010db8000000000000000000000001 20010db8000000000000000000000002  c000 0035 0010 26a3 7472616e73697436',
);
const V6: UdpChecksumContext = { family: 6, src: UDP6_PACKET.slice(8, 24), dst: UDP6_PACKET.slice(24, 40) };

// The lab capture's frame 1 (report §8.1): the Teredo RS with an auth header, 203.0.113.1:23863 → 198.51.100.1:3544.
// tshark: IPv4 "0x145e [correct]", UDP "0x07a1 [correct]".
const FRAME1 = hex(
  '4500 0059 0000 0000 4011 145e cb00 7101 c633 6401  5d37 0dd8 0045 07a1' +
    '0001 0000 4d3349d6f05ad97c 00' +
    '6000 0000 0008 3aff fe800000000000000000ffffffffffff ff020000000000000000000000000002  8500 7d37 0000 0000',
);

test('UDP over IPv4: decode a tshark-verified datagram', () => {
  const ip = parseIpv4(UDP4_PACKET);
  assert.ok(ip.ok);
  const r = parseUdp(ip.value.payload, V4);
  assert.ok(r.ok);
  assert.equal(r.value.srcPort, 49152);
  assert.equal(r.value.dstPort, 53);
  assert.equal(r.value.checksum, 0x95db);
  assert.deepEqual(r.value.payload, PAYLOAD);
});

test('UDP over IPv4: encode to the same bytes (buildIpv4Udp and emitUdpHeader)', () => {
  const udp = new Uint8Array(UDP_HEADER + PAYLOAD.length);
  udp.set(PAYLOAD, UDP_HEADER);
  assert.equal(emitUdpHeader(udp, 0, 49152, 53, PAYLOAD.length, V4), 16);
  assert.equal(toHex(udp), toHex(UDP4_PACKET.subarray(20)));
  assert.equal(refUdpChecksum(V4!, Uint8Array.from(udp, (x, i) => (i === 6 || i === 7 ? 0 : x))), 0x95db);
});

test('UDP over IPv6: a tshark-verified datagram both ways', () => {
  const ip = parseIpv6(UDP6_PACKET);
  assert.ok(ip.ok);
  const r = parseUdp(ip.value.payload, { family: 6, src: ip.value.header.src, dst: ip.value.header.dst });
  assert.ok(r.ok);
  assert.equal(r.value.srcPort, 49152);
  assert.equal(r.value.dstPort, 53);
  assert.equal(r.value.checksum, 0x26a3);
  assert.deepEqual(r.value.payload, PAYLOAD);
  const udp = new Uint8Array(16);
  udp.set(PAYLOAD, 8);
  emitUdpHeader(udp, 0, 49152, 53, PAYLOAD.length, V6);
  assert.equal(toHex(udp), toHex(UDP6_PACKET.subarray(40)));
});

test('the lab capture frame 1 (Teredo RS in IPv4/UDP) is rebuilt byte for byte by buildIpv4Udp', () => {
  const teredo = FRAME1.subarray(28);
  const built = buildIpv4Udp(0xcb007101, 23863, 0xc6336401, 3544, teredo);
  assert.equal(toHex(built), toHex(FRAME1));
  const ip = parseIpv4(FRAME1);
  assert.ok(ip.ok);
  const u = parseUdp(ip.value.payload, { family: 4, src: ip.value.header.src, dst: ip.value.header.dst });
  assert.ok(u.ok);
  assert.equal(u.value.srcPort, 23863);
  assert.equal(u.value.dstPort, 3544);
  assert.equal(u.value.checksum, 0x07a1);
  assert.deepEqual(u.value.payload, teredo);
});

test('a zero checksum means "none" over IPv4 and is refused over IPv6 (RFC 768, RFC 8200 §8.1)', () => {
  const udp = UDP4_PACKET.slice(20);
  udp[6] = 0;
  udp[7] = 0;
  assert.ok(parseUdp(udp, V4).ok);
  const r6 = parseUdp(udp, V6);
  assert.ok(!r6.ok && r6.reason === 'bad-checksum');
  // Without a context nothing is verified.
  assert.ok(parseUdp(udp).ok);
  // Emitting without a context writes a zero checksum.
  const e = UDP4_PACKET.slice(20);
  emitUdpHeader(e, 0, 49152, 53, 8, undefined);
  assert.equal(toHex(e.subarray(6, 8)), '0000');
});

test('a computed zero checksum is sent as 0xffff and verifies (RFC 768)', () => {
  for (const ctx of [V4, V6]) {
    // Choose the payload's first word so that the checksum comes out as zero: with the word w = 0 the checksum is
    // c = ~S; adding c to the sum makes it 0xffff, whose complement is 0.
    const udp = new Uint8Array(8 + 4);
    udp.set([0xde, 0xad], 10);
    emitUdpHeader(udp, 0, 1234, 5678, 4, ctx);
    const c = (udp[6]! << 8) | udp[7]!;
    udp[8] = c >> 8;
    udp[9] = c & 0xff;
    emitUdpHeader(udp, 0, 1234, 5678, 4, ctx);
    assert.equal(toHex(udp.subarray(6, 8)), 'ffff');
    assert.ok(parseUdp(udp, ctx).ok);
  }
});

test('every failure reason', () => {
  const good = UDP4_PACKET.slice(20);
  const cases: Array<[string, Uint8Array, UdpChecksumContext, string]> = [
    ['empty', new Uint8Array(0), V4, 'truncated'],
    ['7 bytes', good.slice(0, 7), V4, 'truncated'],
    ['length 7', Uint8Array.from(good, (x, i) => (i === 5 ? 7 : x)), V4, 'bad-length'],
    ['length 0', Uint8Array.from(good, (x, i) => (i === 5 ? 0 : x)), undefined, 'bad-length'],
    ['length beyond the buffer', Uint8Array.from(good, (x, i) => (i === 5 ? 17 : x)), undefined, 'bad-length'],
    ['length 65535', Uint8Array.from(good, (x, i) => (i === 4 || i === 5 ? 0xff : x)), undefined, 'bad-length'],
    ['payload changed', Uint8Array.from(good, (x, i) => (i === 15 ? x ^ 1 : x)), V4, 'bad-checksum'],
    ['port changed', Uint8Array.from(good, (x, i) => (i === 1 ? x ^ 0x80 : x)), V4, 'bad-checksum'],
    ['wrong pseudo-header', good, { family: 4, src: 0xc0000202, dst: 0xc6336407 }, 'bad-checksum'],
    ['IPv4 bytes checked as IPv6', good, V6, 'bad-checksum'],
  ];
  for (const [name, bytes, ctx, reason] of cases) {
    const r = parseUdp(bytes, ctx);
    assert.equal(r.ok, false, name);
    if (!r.ok) assert.equal(r.reason, reason, name);
  }
});

test('bytes after the UDP length are ignored and the payload is a view', () => {
  const b = concat(UDP4_PACKET.subarray(20), hex('0102030405'));
  const r = parseUdp(b, V4);
  assert.ok(r.ok);
  assert.deepEqual(r.value.payload, PAYLOAD);
  assert.equal(r.value.payload.buffer, b.buffer);
});

test('emitUdpHeader rejects local misuse with a RangeError', () => {
  assert.throws(() => emitUdpHeader(new Uint8Array(70000), 0, 1, 2, 65528, undefined), RangeError);
  // The buffer must hold the header and the payload it claims to cover.
  assert.throws(() => emitUdpHeader(new Uint8Array(15), 0, 1, 2, 8, V4), RangeError);
  assert.throws(() => emitUdpHeader(new Uint8Array(16), 1, 1, 2, 8, V4), RangeError);
  assert.equal(emitUdpHeader(new Uint8Array(65535), 0, 1, 2, 65527, V6), 65535);
});

test('emit at offset 37 of a 2000-byte buffer: neighbours untouched, parses back, written == length', () => {
  for (const ctx of [V4, V6, undefined]) {
    const buf = new Uint8Array(2000).fill(0xaa);
    const payload = new Uint8Array(101).map((_, i) => (i * 7) & 0xff);
    buf.set(payload, 37 + 8);
    const n = emitUdpHeader(buf, 37, 3544, 23863, payload.length, ctx);
    assert.equal(n, 8 + payload.length);
    for (let i = 0; i < 37; i++) assert.equal(buf[i], 0xaa);
    for (let i = 37 + n; i < 2000; i++) assert.equal(buf[i], 0xaa);
    const r = parseUdp(buf.subarray(37, 37 + n), ctx);
    assert.ok(r.ok);
    assert.equal(r.value.srcPort, 3544);
    assert.equal(r.value.dstPort, 23863);
    assert.deepEqual(r.value.payload, payload);
  }
});

const ctxArb: fc.Arbitrary<Exclude<UdpChecksumContext, undefined>> = fc.oneof(
  fc.record({ family: fc.constant(4 as const), src: fc.nat({ max: 0xffffffff }), dst: fc.nat({ max: 0xffffffff }) }, { noNullPrototype: true }),
  fc.record(
    { family: fc.constant(6 as const), src: fc.uint8Array({ minLength: 16, maxLength: 16 }), dst: fc.uint8Array({ minLength: 16, maxLength: 16 }) },
    { noNullPrototype: true },
  ),
);
const port = fc.nat({ max: 0xffff });

function datagram(ctx: UdpChecksumContext, sp: number, dp: number, payload: Uint8Array): Uint8Array {
  const b = new Uint8Array(8 + payload.length);
  b.set(payload, 8);
  emitUdpHeader(b, 0, sp, dp, payload.length, ctx);
  return b;
}

test('parse(emit(x)) == x and the checksum equals the reference (property)', () => {
  fc.assert(
    fc.property(ctxArb, port, port, fc.uint8Array({ maxLength: 1500 }), (ctx, sp, dp, payload) => {
      const b = datagram(ctx, sp, dp, payload);
      const r = parseUdp(b, ctx);
      assert.ok(r.ok);
      assert.equal(r.value.srcPort, sp);
      assert.equal(r.value.dstPort, dp);
      assert.deepEqual(r.value.payload, payload);
      assert.equal(r.value.checksum, refUdpChecksum(ctx, Uint8Array.from(b, (x, i) => (i === 6 || i === 7 ? 0 : x))));
      assert.notEqual(r.value.checksum, 0);
    }),
    { seed: SEED, numRuns: 2000 },
  );
});

test('buildIpv4Udp makes packets that both layers accept (property)', () => {
  const a = fc.nat({ max: 0xffffffff });
  fc.assert(
    fc.property(a, port, a, port, fc.uint8Array({ maxLength: 600 }), fc.integer({ min: 1, max: 255 }), (s, sp, d, dp, payload, ttl) => {
      const p = buildIpv4Udp(s, sp, d, dp, payload, ttl);
      const ip = parseIpv4(p);
      assert.ok(ip.ok);
      assert.equal(ip.value.header.ttl, ttl);
      const u = parseUdp(ip.value.payload, { family: 4, src: s, dst: d });
      assert.ok(u.ok);
      assert.deepEqual([u.value.srcPort, u.value.dstPort], [sp, dp]);
      assert.deepEqual(u.value.payload, payload);
    }),
    { seed: SEED, numRuns: 1000 },
  );
});

test('any single bit flip outside the length and checksum fields is detected (property)', () => {
  // One's-complement sums catch every single-bit error. Flips in the length or checksum fields are excluded: a
  // length flip may turn into 'bad-length' (fine) but a checksum flip to 0 means "no checksum" over IPv4.
  fc.assert(
    fc.property(ctxArb, port, port, fc.uint8Array({ minLength: 1, maxLength: 300 }), fc.nat(), fc.nat({ max: 7 }), (ctx, sp, dp, payload, at, bit) => {
      const b = datagram(ctx, sp, dp, payload);
      const positions = [0, 1, 2, 3, ...Array.from({ length: payload.length }, (_, i) => 8 + i)];
      const pos = positions[at % positions.length]!;
      b[pos] ^= 1 << bit;
      const r = parseUdp(b, ctx);
      return !r.ok && r.reason === 'bad-checksum';
    }),
    { seed: SEED, numRuns: 2000 },
  );
});

test('parseUdp never throws on random or mutated bytes (property)', () => {
  const bytes = fc.oneof(
    fc.uint8Array({ maxLength: 80 }),
    fc.tuple(ctxArb, port, port, fc.uint8Array({ maxLength: 60 }), fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { maxLength: 4 }), fc.nat()).map(([ctx, sp, dp, p, sets, cut]) => {
      const b = datagram(ctx, sp, dp, p);
      for (const [at, v] of sets) b[at % b.length] = v;
      return b.subarray(0, cut % (b.length + 2));
    }),
  );
  fc.assert(
    fc.property(bytes, fc.option(ctxArb, { nil: undefined }), (b, ctx) => {
      const r = parseUdp(b, ctx);
      if (r.ok) {
        const len = (b[4]! << 8) | b[5]!;
        assert.ok(len >= 8 && len <= b.length);
        assert.equal(r.value.payload.length, len - 8);
      } else assert.ok(['truncated', 'bad-length', 'bad-checksum'].includes(r.reason));
    }),
    { seed: SEED, numRuns: 3000 },
  );
});
