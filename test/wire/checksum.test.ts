/**
 * The Internet checksum (src/wire/checksum.ts) against published examples and against a deliberately plain
 * reference implementation (pairs of bytes, 32-bit accumulator folded after every add, pseudo-headers built as
 * bytes rather than summed as numbers).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { finish, fold, internetChecksum, pseudoSumV4, pseudoSumV6, sum16 } from '../../src/wire/checksum.js';
import { hex, concat, be32 } from './bytes.js';

const SEED = 4380;

/** RFC 1071 the slow way: big-endian 16-bit words, odd byte padded with zero, end-around carry after each add. */
function refSum(bytes: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < bytes.length; i += 2) {
    const word = (bytes[i]! << 8) | (i + 1 < bytes.length ? bytes[i + 1]! : 0);
    s += word;
    if (s > 0xffff) s = (s & 0xffff) + 1;
  }
  return s;
}

function refChecksum(bytes: Uint8Array): number {
  return ~refSum(bytes) & 0xffff;
}

/** RFC 8200 §8.1 pseudo-header as bytes: src, dst, 32-bit upper-layer length, 3 zero bytes, next header. */
function pseudoV6Bytes(src: Uint8Array, dst: Uint8Array, length: number, nextHeader: number): Uint8Array {
  return concat(src, dst, be32(length), Uint8Array.of(0, 0, 0, nextHeader));
}

/** RFC 768 pseudo-header as bytes: src, dst, zero, protocol, 16-bit length. */
function pseudoV4Bytes(src: number, dst: number, length: number, protocol: number): Uint8Array {
  return concat(be32(src), be32(dst), Uint8Array.of(0, protocol, length >> 8, length & 0xff));
}

test('RFC 1071 §3 numerical example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2', () => {
  const b = hex('0001 f203 f4f5 f6f7');
  assert.equal(fold(sum16(b, 0, b.length)), 0xddf2);
  assert.equal(finish(sum16(b, 0, b.length)), 0x220d);
  assert.equal(internetChecksum(b), 0x220d);
  // Byte order independence (RFC 1071 §2(B)): the swapped sum is the swap of the sum.
  const swapped = hex('0100 03f2 f5f4 f7f6');
  assert.equal(fold(sum16(swapped, 0, swapped.length)), 0xf2dd);
});

test('the classic IPv4 header checksum example: b861', () => {
  // 4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7
  const header = hex('4500 0073 0000 4000 4011 0000 c0a8 0001 c0a8 00c7');
  assert.equal(internetChecksum(header), 0xb861);
  header[10] = 0xb8;
  header[11] = 0x61;
  assert.equal(internetChecksum(header), 0, 'a header with its checksum in place sums to zero');
  assert.equal(fold(sum16(header, 0, 20)), 0xffff);
});

test('odd lengths pad the last byte on the right; offsets and initial values work', () => {
  assert.equal(sum16(hex('ab'), 0, 1), 0xab00);
  assert.equal(sum16(hex('0102 03'), 0, 3), 0x0102 + 0x0300);
  const buf = hex('ffff 0001 f203 f4f5 f6f7 ffff');
  assert.equal(fold(sum16(buf, 2, 8)), 0xddf2);
  assert.equal(internetChecksum(buf, 2, 8), 0x220d);
  assert.equal(sum16(buf, 2, 8, 0x10000), sum16(buf, 2, 8) + 0x10000);
  assert.equal(sum16(buf, 3, 0), 0);
  assert.equal(internetChecksum(new Uint8Array(0)), 0xffff);
});

test('fold and finish at the edges', () => {
  assert.equal(fold(0), 0);
  assert.equal(fold(0xffff), 0xffff);
  assert.equal(fold(0x10000), 1);
  assert.equal(fold(0x1ffff), 1); // 0xffff + 1 = 0x10000, folded again: 1
  assert.equal(fold(0x2fffd), 0xffff);
  assert.equal(fold(0xffffffff), 0xffff);
  assert.equal(fold(2 ** 40 + 5), 261); // 2^16 ≡ 1 (mod 0xffff), so 2^40 ≡ 2^8
  assert.equal(finish(0), 0xffff);
  assert.equal(finish(0xffff), 0);
  assert.equal(finish(0x1fffe), 0);
});

test('no precision loss on long inputs (1 MiB of 0xff, 256 KiB of random)', () => {
  const ones = new Uint8Array(1 << 20).fill(0xff);
  assert.equal(fold(sum16(ones, 0, ones.length)), 0xffff);
  const rnd = new Uint8Array(1 << 18);
  let x = 4380;
  for (let i = 0; i < rnd.length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    rnd[i] = x >>> 24;
  }
  assert.equal(internetChecksum(rnd), refChecksum(rnd));
});

test('internetChecksum equals the reference for any bytes, offset and length (property)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 1600 }), fc.nat(), fc.nat(), (b, a, c) => {
      const off = b.length === 0 ? 0 : a % (b.length + 1);
      const len = c % (b.length - off + 1);
      return internetChecksum(b, off, len) === refChecksum(b.subarray(off, off + len));
    }),
    { seed: SEED, numRuns: 2000 },
  );
});

test('writing the checksum into the data makes it verify (property)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 2, maxLength: 600 }), fc.nat(), (b, at) => {
      const pos = 2 * (at % Math.floor(b.length / 2));
      const d = b.slice();
      d[pos] = 0;
      d[pos + 1] = 0;
      const c = internetChecksum(d);
      d[pos] = c >> 8;
      d[pos + 1] = c & 0xff;
      return internetChecksum(d) === 0 && refSum(d) === 0xffff;
    }),
    { seed: SEED, numRuns: 2000 },
  );
});

test('sums split at an even boundary add up (property)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), fc.uint8Array({ maxLength: 400 }), (a0, b) => {
      const a = a0.length % 2 === 0 ? a0 : a0.subarray(1);
      const whole = concat(a, b);
      return fold(sum16(b, 0, b.length, sum16(a, 0, a.length))) === fold(sum16(whole, 0, whole.length)) && fold(sum16(whole, 0, whole.length)) === refSum(whole);
    }),
    { seed: SEED, numRuns: 2000 },
  );
});

test('pseudoSumV6 equals the sum of the RFC 8200 §8.1 pseudo-header bytes (property)', () => {
  const addr = fc.uint8Array({ minLength: 16, maxLength: 16 });
  fc.assert(
    fc.property(addr, addr, fc.oneof(fc.nat({ max: 0xffff }), fc.nat({ max: 0xffffffff })), fc.nat({ max: 255 }), (s, d, len, nh) => {
      return fold(pseudoSumV6(s, d, len, nh)) === refSum(pseudoV6Bytes(s, d, len, nh));
    }),
    { seed: SEED, numRuns: 2000 },
  );
});

test('pseudoSumV4 equals the sum of the RFC 768 pseudo-header bytes (property)', () => {
  const a = fc.nat({ max: 0xffffffff });
  fc.assert(
    fc.property(a, a, fc.nat({ max: 0xffff }), fc.nat({ max: 255 }), (s, d, len, proto) => {
      return fold(pseudoSumV4(s, d, len, proto)) === refSum(pseudoV4Bytes(s, d, len, proto));
    }),
    { seed: SEED, numRuns: 2000 },
  );
});

test('a pseudo-header checksum over a published ICMPv6 echo request (tshark-verified 0xbb9c)', () => {
  // Echo request from the lab's Teredo client 2001:0:c633:6401:2079:97eb:34ff:8efe to 2001:db8:1::10,
  // id 0x1234, seq 1, data "transit6"; tshark reports "Checksum: 0xbb9c [correct]".
  const src = hex('20010000c6336401207997eb34ff8efe');
  const dst = hex('20010db8000100000000000000000010');
  const msg = hex('8000 0000 1234 0001 7472616e73697436');
  const viaCodec = finish(sum16(msg, 0, msg.length, pseudoSumV6(src, dst, msg.length, 58)));
  const viaRef = refChecksum(concat(pseudoV6Bytes(src, dst, msg.length, 58), msg));
  assert.equal(viaRef, 0xbb9c);
  assert.equal(viaCodec, 0xbb9c);
});
