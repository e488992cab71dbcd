import { test } from 'node:test';
import assert from 'node:assert/strict';
import { siphash24 } from '../../src/core/siphash.js';

// The reference vectors of the SipHash paper (key 00..0f, messages 00..n-1), as little-endian bytes.
const vectors: [number, string][] = [
  [0, '310e0edd47db6f72'],
  [1, 'fd67dc93c539f874'],
  [7, '37d1018bf50002ab'],
  [8, '6224939a79f5f593'],
  [15, 'e545be4961ca29a1'],
  [63, '724506eb4c328a95'],
];

test('SipHash-2-4 matches the reference vectors', () => {
  const key = Uint8Array.from({ length: 16 }, (_, i) => i);
  for (const [n, hex] of vectors) {
    const data = Uint8Array.from({ length: n }, (_, i) => i);
    assert.equal(Buffer.from(siphash24(key, data)).toString('hex'), hex, `length ${n}`);
  }
});

test('SipHash rejects a key that is not 16 bytes', () => {
  assert.throws(() => siphash24(new Uint8Array(8), new Uint8Array(1)), /16-byte key/);
});
