import { test } from 'node:test';
import assert from 'node:assert/strict';
import { emitTrailers, parseTrailers, trailersEncodingLength, withTrailers, type Trailers } from '../../src/wire/trailers.js';
import { hex } from './bytes.js';

test('RFC 6081 §4.2 nonce trailer: 01 04 + 4 bytes, both ways', () => {
  const bytes = hex('0104 deadbeef');
  const r = parseTrailers(bytes);
  assert.ok(r.ok);
  assert.deepEqual([...r.value.nonce!], [0xde, 0xad, 0xbe, 0xef]);
  const out = new Uint8Array(6);
  assert.equal(emitTrailers({ nonce: hex('deadbeef') }, out, 0), 6);
  assert.deepEqual(out, bytes);
});

test('RFC 6081 §4.3 alternate address trailer: reserved, then 6 bytes per address', () => {
  // 192.168.1.0:4095 and 192.168.1.1:4096, the hairpinning example of RFC 6081 §3.5.
  const bytes = hex('030e 0000 c0a80100 0fff c0a80101 1000');
  const r = parseTrailers(bytes);
  assert.ok(r.ok);
  assert.deepEqual(r.value.alternateAddresses, [
    { addr: 0xc0a80100, port: 4095 },
    { addr: 0xc0a80101, port: 4096 },
  ]);
  const t: Trailers = { alternateAddresses: r.value.alternateAddresses! };
  const out = new Uint8Array(trailersEncodingLength(t));
  emitTrailers(t, out, 0);
  assert.deepEqual(out, bytes);
});

test('RFC 6081 §5.1.2: unknown 01xxxxxx discards the packet, other unknown types are skipped, malformed stops', () => {
  assert.deepEqual(parseTrailers(hex('4100')), { ok: false, reason: 'discard-unknown-trailer' });
  const skipped = parseTrailers(hex('8102 aaaa 0104 01020304'));
  assert.ok(skipped.ok && skipped.value.nonce && skipped.value.nonce[3] === 4);
  // A trailer claiming more than is left stops processing: the nonce after it is never read.
  const malformed = parseTrailers(hex('0109 0102 0104 01020304'));
  assert.ok(malformed.ok && malformed.value.nonce === undefined);
  // The random port trailer under both of the type numbers RFC 6081 gives it.
  for (const t of ['05', '02']) {
    const r = parseTrailers(hex(`${t}02 1f90`));
    assert.ok(r.ok && r.value.randomPort === 8080);
  }
});

test('all trailers round trip, at an offset, and withTrailers appends them to a copy', () => {
  const t: Trailers = { nonce: hex('01020304'), alternateAddresses: [{ addr: 0xcb007101, port: 1 }], ndOption: 0, randomPort: 4242 };
  const n = trailersEncodingLength(t);
  const buf = new Uint8Array(n + 50).fill(0xaa);
  assert.equal(emitTrailers(t, buf, 37), n);
  assert.equal(buf[36], 0xaa);
  assert.equal(buf[37 + n], 0xaa);
  const back = parseTrailers(buf.subarray(37, 37 + n));
  assert.ok(back.ok);
  assert.deepEqual(back.value, t);
  const packet = Uint8Array.of(1, 2, 3);
  const joined = withTrailers(packet, { nonce: hex('0a0b0c0d') });
  assert.deepEqual([...joined], [1, 2, 3, 1, 4, 10, 11, 12, 13]);
  assert.equal(withTrailers(packet, {}), packet);
});

test('random bytes never throw', () => {
  let x = 7;
  for (let i = 0; i < 20000; i++) {
    const b = new Uint8Array(i % 40);
    for (let j = 0; j < b.length; j++) b[j] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
    parseTrailers(b);
  }
});
