/**
 * SipHash-2-4 (Aumasson and Bernstein, 2012): a keyed 64-bit hash for short inputs. The relay uses it to make
 * the link-local source of its bubbles unforgeable (a reply bubble to that address proves the path), and the
 * peer tables use it so that an attacker cannot aim collisions. Returns the hash as 8 bytes, little-endian as the
 * reference implementation does.
 */

const MASK = (1n << 64n) - 1n;

function rotl(x: bigint, b: bigint): bigint {
  return ((x << b) | (x >> (64n - b))) & MASK;
}

function readU64le(b: Uint8Array, o: number): bigint {
  let v = 0n;
  for (let i = 7; i >= 0; i--) v = (v << 8n) | BigInt(b[o + i]!);
  return v;
}

export function siphash24(key: Uint8Array, data: Uint8Array): Uint8Array {
  if (key.length !== 16) throw new RangeError('SipHash needs a 16-byte key');
  const k0 = readU64le(key, 0);
  const k1 = readU64le(key, 8);
  let v0 = k0 ^ 0x736f6d6570736575n;
  let v1 = k1 ^ 0x646f72616e646f6dn;
  let v2 = k0 ^ 0x6c7967656e657261n;
  let v3 = k1 ^ 0x7465646279746573n;
  const round = (): void => {
    v0 = (v0 + v1) & MASK;
    v1 = rotl(v1, 13n);
    v1 ^= v0;
    v0 = rotl(v0, 32n);
    v2 = (v2 + v3) & MASK;
    v3 = rotl(v3, 16n);
    v3 ^= v2;
    v0 = (v0 + v3) & MASK;
    v3 = rotl(v3, 21n);
    v3 ^= v0;
    v2 = (v2 + v1) & MASK;
    v1 = rotl(v1, 17n);
    v1 ^= v2;
    v2 = rotl(v2, 32n);
  };
  const len = data.length;
  const end = len - (len % 8);
  for (let i = 0; i < end; i += 8) {
    const m = readU64le(data, i);
    v3 ^= m;
    round();
    round();
    v0 ^= m;
  }
  let last = BigInt(len & 0xff) << 56n;
  for (let i = 0; i < len % 8; i++) last |= BigInt(data[end + i]!) << BigInt(8 * i);
  v3 ^= last;
  round();
  round();
  v0 ^= last;
  v2 ^= 0xffn;
  round();
  round();
  round();
  round();
  const h = (v0 ^ v1 ^ v2 ^ v3) & MASK;
  const out = new Uint8Array(8);
  for (let i = 0; i < 8; i++) out[i] = Number((h >> BigInt(8 * i)) & 0xffn);
  return out;
}
