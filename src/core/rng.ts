/**
 * Randomness for the cores. Cores never call Math.random: they take an Rng, seeded in the simulator and backed
 * by the OS CSPRNG in the Linux driver (src/io/random.ts).
 */
export interface Rng {
  /** A uniformly distributed unsigned 32-bit integer. */
  u32(): number;
  /** Fills the buffer with random bytes. */
  fill(buf: Uint8Array): void;
}

/** xoshiro128** seeded through splitmix32: small, fast, good enough for simulation and tests (not for secrets). */
export class SeededRng implements Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number) {
    let x = seed >>> 0;
    const next = (): number => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
  }

  u32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.s1 << 9) >>> 0;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    this.s0 >>>= 0;
    this.s1 >>>= 0;
    this.s2 >>>= 0;
    return result;
  }

  fill(buf: Uint8Array): void {
    for (let i = 0; i < buf.length; i += 4) {
      const v = this.u32();
      for (let j = 0; j < 4 && i + j < buf.length; j++) buf[i + j] = (v >>> (8 * j)) & 0xff;
    }
  }

  /** A child generator with its own stream, for per-link or per-host randomness in the simulator. */
  fork(): SeededRng {
    return new SeededRng(this.u32());
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** Uniform integer in [0, n). */
export function randomBelow(rng: Rng, n: number): number {
  if (!(n > 0) || n > 0x100000000) throw new RangeError(`randomBelow: bad bound ${n}`);
  // Rejection sampling keeps it unbiased.
  const limit = Math.floor(0x100000000 / n) * n;
  for (;;) {
    const v = rng.u32();
    if (v < limit) return v % n;
  }
}

/** Uniform number of milliseconds in [lo, hi]. */
export function randomBetween(rng: Rng, lo: number, hi: number): number {
  return lo + randomBelow(rng, Math.floor(hi - lo) + 1);
}

export function randomBytes(rng: Rng, n: number): Uint8Array {
  const b = new Uint8Array(n);
  rng.fill(b);
  return b;
}
