// Tests of the Philox4x32-10 generator (src/rng/philox.ts).
//
// Oracles: the published Random123 known-answer vectors (kat_vectors, philox4x32_10); a BigInt
// re-statement of the round function from Salmon et al. (SC'11) for random counters and keys;
// exact BigInt products for the 32x32->64 multiply; and statistics (moments, Kolmogorov-Smirnov)
// against the uniform and normal distributions for 10^5 draws.
import { describe, expect, it } from 'vitest';
import {
  AttrError,
  DEFAULT_SEED,
  Generator,
  PHILOX_UNIT,
  getDefaultGenerator,
  manualSeed,
  mulHi32,
  philox4x32,
  philoxNormalF32,
  philoxUniformF32,
  philoxUnitUniform,
  type PhiloxAttrs,
} from '../src/index.js';

const RUN_SEED = Number(process.env.TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));
console.log(`philox.test.ts: TEST_SEED=${RUN_SEED}`);

/** A small deterministic PRNG for choosing test counters/keys (mulberry32), seeded per run. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0);
  };
}

const hex = (xs: ArrayLike<number>) => Array.from(xs, (v) => (v >>> 0).toString(16).padStart(8, '0')).join(' ');

/** Philox4x32-10 in BigInt arithmetic, straight from the paper's definition. */
function philoxBig(ctr: readonly number[], key: readonly number[]): number[] {
  const M = 0xffffffffn;
  let [c0, c1, c2, c3] = ctr.map((v) => BigInt(v >>> 0)) as [bigint, bigint, bigint, bigint];
  let [k0, k1] = key.map((v) => BigInt(v >>> 0)) as [bigint, bigint];
  for (let r = 0; r < 10; r++) {
    if (r > 0) {
      k0 = (k0 + 0x9e3779b9n) & M;
      k1 = (k1 + 0xbb67ae85n) & M;
    }
    const p0 = 0xd2511f53n * c0;
    const p1 = 0xcd9e8d57n * c2;
    [c0, c1, c2, c3] = [((p1 >> 32n) ^ c1 ^ k0) & M, p1 & M, ((p0 >> 32n) ^ c3 ^ k1) & M, p0 & M];
  }
  return [c0, c1, c2, c3].map(Number);
}

const attrsOf = (key0: number, key1: number, counterLo: number, counterHi: number): PhiloxAttrs => ({ key0, key1, counterLo, counterHi });

describe('Philox4x32-10 block function', () => {
  it('matches the Random123 known-answer vectors', () => {
    expect(hex(philox4x32(0, 0, 0, 0, 0, 0))).toBe('6627e8d5 e169c58d bc57ac4c 9b00dbd8');
    const f = 0xffffffff;
    expect(hex(philox4x32(f, f, f, f, f, f))).toBe('408f276d 41c83b0e a20bc7c6 6d5451fd');
    expect(hex(philox4x32(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0))).toBe(
      'd16cfe09 94fdcceb 5001e420 24126ea1',
    );
  });

  it('agrees with a BigInt statement of the rounds on random counters and keys', () => {
    const rnd = mulberry32(RUN_SEED);
    for (let t = 0; t < 500; t++) {
      const c = [rnd(), rnd(), rnd(), rnd()];
      const k = [rnd(), rnd()];
      expect(hex(philox4x32(c[0]!, c[1]!, c[2]!, c[3]!, k[0]!, k[1]!))).toBe(hex(philoxBig(c, k)));
    }
  });

  it('mulHi32 is the exact high word of the 64-bit product', () => {
    const rnd = mulberry32(RUN_SEED ^ 0x5bd1e995);
    const edge = [0, 1, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, 0xd2511f53, 0xcd9e8d57];
    const pairs: [number, number][] = [];
    for (const a of edge) for (const b of edge) pairs.push([a, b]);
    for (let i = 0; i < 2000; i++) pairs.push([rnd(), rnd()]);
    for (const [a, b] of pairs) {
      expect(mulHi32(a, b)).toBe(Number((BigInt(a) * BigInt(b)) >> 32n));
    }
  });
});

describe('draws', () => {
  const N = 100_000;

  it('element i uses counter (offset + i) with the carry into the high word', () => {
    // offset 2^32 - 2: elements 0, 1 use c1 = 7, element 2 wraps to c0 = 0, c1 = 8.
    const a = attrsOf(0x12345678, 0x9abcdef0, 0xfffffffe, 7);
    const s = new Uint32Array(4);
    const expected = [
      philoxBig([0xfffffffe, 7, 0, 0], [0x12345678, 0x9abcdef0]),
      philoxBig([0xffffffff, 7, 0, 0], [0x12345678, 0x9abcdef0]),
      philoxBig([0, 8, 0, 0], [0x12345678, 0x9abcdef0]),
      philoxBig([1, 8, 0, 0], [0x12345678, 0x9abcdef0]),
    ];
    expected.forEach((x, i) => {
      expect(philoxUnitUniform(a, i, s)).toBe((x[0]! >>> 8) * 2 ** -24);
    });
    // The high word itself wraps modulo 2^32.
    const w = attrsOf(1, 2, 0xffffffff, 0xffffffff);
    expect(philoxUnitUniform(w, 1)).toBe((philoxBig([0, 0, 0, 0], [1, 2])[0]! >>> 8) * 2 ** -24);
  });

  it('uniform: on the 2^-24 grid in [0, 1), moments and KS within bounds', () => {
    const a = attrsOf(RUN_SEED >>> 0, 0x2545f491, 0, 0);
    const u = philoxUniformF32(a, 0, 1, new Float32Array(N));
    let sum = 0;
    let sq = 0;
    let offGrid = 0;
    for (const v of u) {
      if (!(v >= 0 && v < 1 && Number.isInteger(v / PHILOX_UNIT))) offGrid++;
      sum += v;
      sq += v * v;
    }
    expect(offGrid).toBe(0);
    const mean = sum / N;
    const variance = sq / N - mean * mean;
    // 6 standard errors: sd(mean) = sqrt(1/12 / N); sd(var) = sqrt(1/180 / N).
    expect(Math.abs(mean - 0.5)).toBeLessThan(6 * Math.sqrt(1 / 12 / N));
    expect(Math.abs(variance - 1 / 12)).toBeLessThan(6 * Math.sqrt(1 / 180 / N));
    const sorted = Float64Array.from(u).sort();
    expect(ks(sorted, (x) => Math.min(1, Math.max(0, x)))).toBeLessThan(ksBound(N));
  });

  it('uniform in [low, high): f32 arithmetic with separate roundings', () => {
    const a = attrsOf(7, RUN_SEED >>> 0, 123, 0);
    const low = -3.7;
    const high = 11.2;
    const out = philoxUniformF32(a, low, high, new Float32Array(1000));
    const lo = Math.fround(low);
    const d = Math.fround(Math.fround(high) - lo);
    for (let i = 0; i < out.length; i++) {
      const u = philoxUnitUniform(a, i);
      expect(out[i]).toBe(Math.fround(lo + Math.fround(d * u)));
      expect(out[i]! >= lo && out[i]! < Math.fround(high)).toBe(true);
    }
    // A later window of the same stream equals the matching slice of a longer draw.
    const tail = philoxUniformF32(a, low, high, new Float32Array(10), 990);
    expect(Array.from(tail)).toEqual(Array.from(out.subarray(990)));
  });

  it('normal: Box-Muller as specified, moments and KS within bounds', () => {
    const a = attrsOf(0xdeadbeef, RUN_SEED >>> 0, 5, 1);
    const z = philoxNormalF32(a, 0, 1, new Float32Array(N));
    // Element-wise formula for the first few, from the block function itself.
    for (let i = 0; i < 50; i++) {
      const x = philoxBig([5 + i, 1, 0, 0], [0xdeadbeef, RUN_SEED >>> 0]);
      const u1 = ((x[0]! >>> 8) + 1) * 2 ** -24;
      const u2 = (x[1]! >>> 8) * 2 ** -24;
      expect(z[i]).toBe(Math.fround(Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2)));
    }
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    let s4 = 0;
    const zmax = Math.sqrt(-2 * Math.log(2 ** -24));
    let outOfRange = 0;
    for (const v of z) {
      if (!(Number.isFinite(v) && Math.abs(v) <= zmax + 1e-6)) outOfRange++;
      s1 += v;
      s2 += v * v;
      s3 += v * v * v;
      s4 += v * v * v * v;
    }
    expect(outOfRange).toBe(0);
    const mean = s1 / N;
    const variance = s2 / N - mean * mean;
    expect(Math.abs(mean)).toBeLessThan(6 / Math.sqrt(N));
    expect(Math.abs(variance - 1)).toBeLessThan(6 * Math.sqrt(2 / N));
    expect(Math.abs(s3 / N)).toBeLessThan(6 * Math.sqrt(15 / N)); // skewness ~ 0
    expect(Math.abs(s4 / N - 3)).toBeLessThan(6 * Math.sqrt(96 / N)); // kurtosis ~ 3
    const sorted = Float64Array.from(z).sort();
    expect(ks(sorted, normalCdf)).toBeLessThan(ksBound(N));
    // mean and std are applied after z.
    const shifted = philoxNormalF32(a, 2.5, 0.5, new Float32Array(10));
    for (let i = 0; i < 10; i++) expect(shifted[i]).toBeCloseTo(2.5 + 0.5 * z[i]!, 5);
  });

  it('a stream of 10^5 consecutive counters never repeats a 128-bit block', () => {
    const g = new Generator(RUN_SEED);
    const seen = new Set<string>();
    const out = new Uint32Array(4);
    let total = 0;
    // Successive draws of odd sizes, as successive random ops would take them.
    while (total < N) {
      const n = 1 + (total % 997);
      const a = g.draw(n);
      expect(a.counterLo).toBe(total);
      for (let i = 0; i < n; i++) {
        philox4x32(a.counterLo + i, a.counterHi, 0, 0, a.key0, a.key1, out);
        seen.add(`${out[0]},${out[1]},${out[2]},${out[3]}`);
      }
      total += n;
    }
    expect(seen.size).toBe(total);
  });
});

describe('Generator', () => {
  it('same seed, same bits; different seeds, different bits', () => {
    const a = new Generator(RUN_SEED);
    const b = new Generator(RUN_SEED);
    const c = new Generator(RUN_SEED + 1);
    const draw = (g: Generator) => Array.from(philoxUniformF32(g.draw(64), 0, 1, new Float32Array(64)));
    const da = draw(a);
    expect(draw(b)).toEqual(da);
    const dc = draw(c);
    expect(dc.filter((v, i) => v === da[i]).length).toBeLessThan(3);
    // The next draw continues the stream: it differs from the first.
    const da2 = draw(a);
    expect(da2.filter((v, i) => v === da[i]).length).toBeLessThan(3);
  });

  it('key words come from the 64-bit seed; negative seeds wrap modulo 2^64', () => {
    const g = new Generator(0x1234_5678_9abcn | (0xfedcn << 48n));
    expect(g.peek()).toEqual({ key0: 0x56789abc, key1: 0xfedc1234, counterLo: 0, counterHi: 0 });
    expect(new Generator(-1).peek()).toMatchObject({ key0: 0xffffffff, key1: 0xffffffff });
    expect(new Generator(2 ** 40 + 3).peek()).toMatchObject({ key0: 3, key1: 256 });
    expect(new Generator(2n ** 64n + 5n).seed).toBe(5n);
  });

  it('draw advances the offset by the count, with carry, and wraps at 2^64', () => {
    const g = new Generator(1);
    expect(g.draw(10)).toMatchObject({ counterLo: 0, counterHi: 0 });
    expect(g.offset).toBe(10n);
    g.setState({ key: [1, 0], offset: [0xfffffff0, 3] });
    expect(g.draw(0x20)).toMatchObject({ counterLo: 0xfffffff0, counterHi: 3 });
    expect(g.peek()).toMatchObject({ counterLo: 0x10, counterHi: 4 });
    g.setState({ key: [1, 0], offset: [0xffffffff, 0xffffffff] });
    g.advance(2);
    expect(g.offset).toBe(1n);
    expect(() => g.advance(-1)).toThrow(AttrError);
    expect(() => g.advance(1.5)).toThrow(/non-negative integer count/);
  });

  it('state() / setState() round-trip through JSON and reproduce the stream', () => {
    const g = new Generator(RUN_SEED);
    g.draw(12345);
    const saved = JSON.parse(JSON.stringify(g.state()));
    const first = philoxUniformF32(g.draw(100), 0, 1, new Float32Array(100));
    const h = new Generator(0).setState(saved);
    expect(h.seed).toBe(g.seed);
    expect(Array.from(philoxUniformF32(h.draw(100), 0, 1, new Float32Array(100)))).toEqual(Array.from(first));
    const k = g.clone();
    expect(k.state()).toEqual(g.state());
    k.draw(1);
    expect(k.offset).toBe(g.offset + 1n);
  });

  it('rejects bad seeds and states with AttrError', () => {
    expect(() => new Generator(1.5)).toThrow(AttrError);
    expect(() => new Generator(2 ** 60)).toThrow(/safe integer or a bigint, got 1152921504606847000/);
    expect(() => new Generator('3' as unknown as number)).toThrow(/got string/);
    const g = new Generator(1);
    expect(() => g.setState({ key: [1, 2], offset: [2 ** 32, 0] })).toThrow(/offset\[0\] must be a u32 integer, got 4294967296/);
    expect(() => g.setState({ key: [1] } as never)).toThrow(/expected \{ key: \[lo, hi\], offset: \[lo, hi\] \}/);
    expect(() => g.setState({ key: [-1, 0], offset: [0, 0] })).toThrow(AttrError);
    expect(g.peek()).toMatchObject({ key0: 1, key1: 0 }); // unchanged after failed setState
  });

  it('manualSeed re-seeds the shared default generator and resets its offset', () => {
    const d = getDefaultGenerator();
    const before = d.state();
    try {
      expect(manualSeed(99)).toBe(d);
      d.draw(5);
      manualSeed(99);
      expect(d.offset).toBe(0n);
      expect(d.seed).toBe(99n);
      expect(getDefaultGenerator()).toBe(d);
    } finally {
      d.setState(before);
    }
    expect(typeof DEFAULT_SEED).toBe('bigint');
  });
});

// ---------------------------------------------------------------------------------------------
// Statistics helpers

/** Kolmogorov-Smirnov statistic of sorted samples against a CDF. */
function ks(sorted: Float64Array, cdf: (x: number) => number): number {
  const n = sorted.length;
  let d = 0;
  for (let i = 0; i < n; i++) {
    const f = cdf(sorted[i]!);
    d = Math.max(d, f - i / n, (i + 1) / n - f);
  }
  return d;
}

/** KS critical value at significance 1e-6: sqrt(ln(2/alpha) / 2) / sqrt(n). */
function ksBound(n: number): number {
  return Math.sqrt(Math.log(2 / 1e-6) / 2) / Math.sqrt(n);
}

/** Standard normal CDF via erfc (W. J. Cody's rational approximations would do; this is Numerical Recipes' erfc, |err| < 1.2e-7). */
function normalCdf(x: number): number {
  return 0.5 * erfc(-x / Math.SQRT2);
}

function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z - 1.26551223 +
        t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628288 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? r : 2 - r;
}
