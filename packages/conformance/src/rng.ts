/**
 * The seeded random source for sample generation (test data only, not the model RNG: that is
 * core's Philox). xoshiro128** (Blackman & Vigna, "Scrambled linear pseudorandom number
 * generators", 2018) on 32-bit integer state, seeded through splitmix32 so that nearby seeds give
 * unrelated streams. Every case of a run gets its own stream derived from (run seed, op, dtype),
 * so one case can be reproduced alone with `--seed S --ops op --dtypes dt`.
 */
import { isLowPrecisionFloat, roundToDtype, sizeOf, type DType } from '@ring-linear/core';
import type { HostTensor, SampleRng } from './opinfo/types.js';

/** Options of `SampleRng.tensor` (see the interface for the defaults). */
export interface TensorOptions {
  /** Uniform in [lo, hi) instead of normal * scale (integers: the integer range). */
  lo?: number;
  hi?: number;
  /** Standard deviation of the default normal draw (floats). */
  scale?: number;
  /** Strictly positive floats: log-normal around `scale` (about 0.1 .. 10 times it). */
  positive?: boolean;
  /** Integer values for float dtypes (ties and exact arithmetic), in [lo, hi) (default [-8, 8)). */
  int?: boolean;
  /** Floats: values with |v| < minAbs are pushed out to |v| >= minAbs (keeps divisors away from 0). */
  minAbs?: number;
}

/** splitmix32 step: a well-mixed 32-bit output from a counter. */
function splitmix32(state: number): number {
  let z = (state + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** A 32-bit hash of a seed and some strings (FNV-1a over the text, then mixed). */
export function deriveSeed(seed: number, ...parts: readonly (string | number)[]): number {
  let h = 0x811c9dc5 ^ (seed >>> 0);
  const text = parts.join('\u0000');
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return splitmix32(h ^ Math.imul(seed >>> 0, 0x9e3779b1));
}

/** A fresh seed for a run that was not given one (printed by the runner). */
export function freshSeed(): number {
  const c = globalThis.crypto;
  if (c?.getRandomValues) return c.getRandomValues(new Uint32Array(1))[0]!;
  return (Math.random() * 2 ** 32) >>> 0;
}

/** Rounds a float to a dtype's nearest representable value (saturating: no inf/NaN from overflow). */
function representable(dtype: DType, v: number): number {
  if (dtype === 'f32') return Math.fround(v);
  if (isLowPrecisionFloat(dtype)) return roundToDtype(dtype, v, true);
  return v;
}

export class XoshiroSampleRng implements SampleRng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  private spare: number | null = null;

  constructor(seed: number) {
    let x = seed >>> 0;
    const next = () => (x = splitmix32(x));
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    // The all-zero state is the generator's one fixed point.
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** Next 32 random bits (xoshiro128**). */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  next(): number {
    // 53 random bits for a double in [0, 1).
    const hi = this.nextU32() >>> 5;
    const lo = this.nextU32() >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  normal(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    // Box-Muller; 1 - next() is in (0, 1], so the log is finite.
    const r = Math.sqrt(-2 * Math.log(1 - this.next()));
    const t = 2 * Math.PI * this.next();
    this.spare = r * Math.sin(t);
    return r * Math.cos(t);
  }

  int(lo: number, hiExclusive: number): number {
    if (!(hiExclusive > lo)) throw new RangeError(`SampleRng.int: empty range [${lo}, ${hiExclusive})`);
    return lo + Math.floor(this.next() * (hiExclusive - lo));
  }

  pick<T>(xs: readonly T[]): T {
    if (xs.length === 0) throw new RangeError('SampleRng.pick: empty list');
    return xs[this.int(0, xs.length)]!;
  }

  /** A random permutation of 0..n-1. */
  permutation(n: number): number[] {
    const p = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(0, i + 1);
      [p[i], p[j]] = [p[j]!, p[i]!];
    }
    return p;
  }

  /** One random value of a dtype (exactly representable), drawn as `tensor` draws its elements. */
  value(dtype: DType, opts: TensorOptions = {}): number {
    if (dtype === 'bool') return this.next() < 0.5 ? 1 : 0;
    if (dtype === 'i32' || dtype === 'u8' || opts.int) {
      const lo = opts.lo ?? (dtype === 'u8' ? 0 : -8);
      const hi = opts.hi ?? (dtype === 'u8' ? 16 : 8);
      const v = this.int(Math.ceil(lo), Math.ceil(hi));
      return dtype === 'i32' || dtype === 'u8' ? v : representable(dtype, v);
    }
    const scale = opts.scale ?? 1;
    let v: number;
    if (opts.lo !== undefined || opts.hi !== undefined) v = this.uniform(opts.lo ?? 0, opts.hi ?? 1);
    else if (opts.positive) v = scale * Math.exp(0.75 * this.normal());
    else v = scale * this.normal();
    if (opts.minAbs !== undefined && Math.abs(v) < opts.minAbs) v = (v < 0 ? -1 : 1) * (opts.minAbs + Math.abs(v));
    let r = representable(dtype, v);
    // A positive draw must stay positive after rounding (fp8 flushes tiny values to 0).
    if (opts.positive && r <= 0) r = representable(dtype, scale);
    if (opts.minAbs !== undefined && Math.abs(r) < opts.minAbs) r = representable(dtype, (r < 0 ? -1 : 1) * opts.minAbs * 1.25);
    return r;
  }

  tensor(shape: readonly number[], dtype: DType, opts: TensorOptions = {}): HostTensor {
    const n = sizeOf(shape);
    const values = new Float64Array(n);
    for (let i = 0; i < n; i++) values[i] = this.value(dtype, opts);
    // Never all zeros: a kernel that writes nothing (or zeros) must not pass by accident.
    if (n > 0 && values.every((v) => v === 0)) {
      let nz = 1;
      if (dtype !== 'bool') {
        for (let tries = 0; tries < 64 && nz === 1; tries++) {
          const v = this.value(dtype, opts);
          if (v !== 0) nz = v;
        }
      }
      values[this.int(0, n)] = nz;
    }
    return { shape: [...shape], dtype, values };
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** A SampleRng for a seed (the runner derives one per case; see deriveSeed). */
export function createSampleRng(seed: number): XoshiroSampleRng {
  return new XoshiroSampleRng(seed);
}
