/**
 * SipHash-2-4 (Aumasson and Bernstein, 2012): a keyed 64-bit hash for short inputs. The relay uses it to make
 * the link-local source of its bubbles unforgeable (a reply bubble to that address proves the path). Returns the
 * hash as 8 bytes, little-endian as the reference implementation does. The 64-bit lanes are kept as pairs of
 * 32-bit halves, which is an order of magnitude faster in JavaScript than BigInt arithmetic.
 */

// State: v0..v3 as [hi, lo] pairs held in one Uint32Array: v0 = s[0..1], v1 = s[2..3], v2 = s[4..5], v3 = s[6..7].
const s = new Uint32Array(8);

function add(a: number, b: number): void {
  const lo = s[a + 1]! + s[b + 1]!;
  s[a] = (s[a]! + s[b]! + (lo > 0xffffffff ? 1 : 0)) >>> 0;
  s[a + 1] = lo >>> 0;
}

function rotl(a: number, n: number): void {
  const hi = s[a]!;
  const lo = s[a + 1]!;
  if (n === 32) {
    s[a] = lo;
    s[a + 1] = hi;
  } else if (n < 32) {
    s[a] = ((hi << n) | (lo >>> (32 - n))) >>> 0;
    s[a + 1] = ((lo << n) | (hi >>> (32 - n))) >>> 0;
  } else {
    const m = n - 32;
    s[a] = ((lo << m) | (hi >>> (32 - m))) >>> 0;
    s[a + 1] = ((hi << m) | (lo >>> (32 - m))) >>> 0;
  }
}

function xor(a: number, b: number): void {
  s[a] = (s[a]! ^ s[b]!) >>> 0;
  s[a + 1] = (s[a + 1]! ^ s[b + 1]!) >>> 0;
}

function round(): void {
  add(0, 2);
  rotl(2, 13);
  xor(2, 0);
  rotl(0, 32);
  add(4, 6);
  rotl(6, 16);
  xor(6, 4);
  add(0, 6);
  rotl(6, 21);
  xor(6, 0);
  add(4, 2);
  rotl(2, 17);
  xor(2, 4);
  rotl(4, 32);
}

function le32(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}

export function siphash24(key: Uint8Array, data: Uint8Array): Uint8Array {
  if (key.length !== 16) throw new RangeError('SipHash needs a 16-byte key');
  const k0lo = le32(key, 0);
  const k0hi = le32(key, 4);
  const k1lo = le32(key, 8);
  const k1hi = le32(key, 12);
  s[0] = (k0hi ^ 0x736f6d65) >>> 0;
  s[1] = (k0lo ^ 0x70736575) >>> 0;
  s[2] = (k1hi ^ 0x646f7261) >>> 0;
  s[3] = (k1lo ^ 0x6e646f6d) >>> 0;
  s[4] = (k0hi ^ 0x6c796765) >>> 0;
  s[5] = (k0lo ^ 0x6e657261) >>> 0;
  s[6] = (k1hi ^ 0x74656462) >>> 0;
  s[7] = (k1lo ^ 0x79746573) >>> 0;
  const len = data.length;
  const end = len - (len % 8);
  const absorb = (mhi: number, mlo: number): void => {
    s[6] = (s[6]! ^ mhi) >>> 0;
    s[7] = (s[7]! ^ mlo) >>> 0;
    round();
    round();
    s[0] = (s[0]! ^ mhi) >>> 0;
    s[1] = (s[1]! ^ mlo) >>> 0;
  };
  for (let i = 0; i < end; i += 8) absorb(le32(data, i + 4), le32(data, i));
  // The last block: the remaining bytes and the length in the top byte.
  const tail = new Uint8Array(8);
  tail.set(data.subarray(end));
  tail[7] = len & 0xff;
  absorb(le32(tail, 4), le32(tail, 0));
  s[5] = (s[5]! ^ 0xff) >>> 0;
  round();
  round();
  round();
  round();
  const hi = (s[0]! ^ s[2]! ^ s[4]! ^ s[6]!) >>> 0;
  const lo = (s[1]! ^ s[3]! ^ s[5]! ^ s[7]!) >>> 0;
  const out = new Uint8Array(8);
  for (let i = 0; i < 4; i++) {
    out[i] = (lo >>> (8 * i)) & 0xff;
    out[i + 4] = (hi >>> (8 * i)) & 0xff;
  }
  return out;
}
