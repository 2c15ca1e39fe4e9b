/**
 * Per-dtype tolerances and the elementwise comparison the runner uses.
 *
 * A value passes when |got - want| <= atol + rtol * |want| (+ ACCUMULATION_RTOL * magnitude where
 * the op reports the magnitude of the terms it summed). `want` is the float64 reference rounded
 * to the output dtype. A backend computes low-precision dtypes in f32 and rounds once, so it can
 * land one rounding step away from the rounded reference where the f32 and float64 results
 * straddle a rounding boundary: rtol is one step of the format at the bottom of a binade
 * (2^-mantissa_bits), atol covers the subnormal range. NaN must match NaN, +-inf must match exactly.
 */
import type { DType } from '@ring-linear/core';
import type { Tolerance } from './opinfo/types.js';
import { unflatten } from './host.js';

export const DEFAULT_TOLERANCES: Readonly<Record<DType, Tolerance>> = {
  // f32: transcendental functions on GPUs are a few ulp off (2^-23 ~ 1.2e-7 per ulp).
  f32: { atol: 1e-6, rtol: 1e-5 },
  // One step: 10 mantissa bits (2^-10), 7 (2^-7), 3 (2^-3), 2 (2^-2). atol: at least the
  // smallest subnormal of the format, and not below f32's (results near 0 computed in f32).
  f16: { atol: 1e-6, rtol: 2 ** -10 },
  bf16: { atol: 1e-6, rtol: 2 ** -7 },
  f8e4m3: { atol: 2 ** -9, rtol: 2 ** -3 },
  f8e5m2: { atol: 2 ** -16, rtol: 2 ** -2 },
  i32: { atol: 0, rtol: 0 },
  u8: { atol: 0, rtol: 0 },
  bool: { atol: 0, rtol: 0 },
};

/**
 * Accumulation in f32 (the contract for every float dtype): the error of a sum of n terms grows
 * with the terms' magnitude, not the result's (cancellation). 1e-5 covers naive sequential f32
 * sums of a few hundred terms (n * 2^-24 worst case); blocked or pairwise sums do far better.
 */
export const ACCUMULATION_RTOL = 1e-5;

/** Gradient checks: analytic (f32, on the backend) vs central differences of the float64 reference. */
export const GRAD_TOLERANCE = { rtol: 1e-3, atolOfMax: 1e-4, atol: 1e-6 } as const;

export function toleranceFor(dtype: DType, overrides?: Partial<Record<DType, Tolerance>>): Tolerance {
  return overrides?.[dtype] ?? DEFAULT_TOLERANCES[dtype];
}

export function isExactDType(dtype: DType): boolean {
  return dtype === 'i32' || dtype === 'u8' || dtype === 'bool';
}

export interface CompareOptions {
  readonly tolerance: Tolerance;
  /** Bit-for-bit values (NaN matches NaN; -0 and +0 differ for floats). */
  readonly exact?: boolean;
  /** Per-element magnitude of summed terms (see OpInfo.magnitude). */
  readonly magnitude?: Float64Array;
  /** Multiplies the whole allowance (comparing two approximations: 2). */
  readonly factor?: number;
  /** Apply rtol to the magnitude too (composite vs kernel in low precision: several roundings). */
  readonly rtolOnMagnitude?: boolean;
}

export interface Comparison {
  readonly ok: boolean;
  /** Elements out of tolerance. */
  readonly bad: number;
  readonly count: number;
  readonly maxAbs: number;
  readonly maxRel: number;
  /** Flat index of the worst element (largest error relative to its allowance), -1 if none. */
  readonly worst: number;
  readonly worstGot: number;
  readonly worstWant: number;
  readonly worstAllowed: number;
}

/** Compares two arrays of the same length elementwise. */
export function compareValues(got: ArrayLike<number>, want: ArrayLike<number>, opts: CompareOptions): Comparison {
  const { tolerance: tol, exact = false, magnitude, factor = 1, rtolOnMagnitude = false } = opts;
  const n = Math.min(got.length, want.length);
  let bad = 0;
  let maxAbs = 0;
  let maxRel = 0;
  let worst = -1;
  let worstScore = -1;
  let worstAllowed = 0;
  for (let i = 0; i < n; i++) {
    const g = got[i]!;
    const w = want[i]!;
    let allowed = 0;
    let err: number;
    let fail: boolean;
    if (w !== w || g !== g) {
      err = w !== w && g !== g ? 0 : Infinity;
      fail = err !== 0;
    } else if (exact) {
      err = Object.is(g, w) ? 0 : Math.abs(g - w) || Number.MIN_VALUE; // -0 vs +0 is an error
      fail = err !== 0;
    } else if (!Number.isFinite(w) || !Number.isFinite(g)) {
      err = g === w ? 0 : Infinity;
      fail = err !== 0;
    } else {
      err = Math.abs(g - w);
      const mag = magnitude ? magnitude[i]! : 0;
      allowed = factor * (tol.atol + tol.rtol * (Math.abs(w) + (rtolOnMagnitude ? mag : 0)) + ACCUMULATION_RTOL * mag);
      fail = err > allowed;
    }
    if (err > maxAbs) maxAbs = err;
    const rel = err === 0 ? 0 : err / Math.max(Math.abs(w), Number.MIN_VALUE);
    if (rel > maxRel && Number.isFinite(w)) maxRel = rel;
    if (fail) bad++;
    const score = err === 0 ? 0 : allowed > 0 ? err / allowed : Infinity;
    if (err > 0 && score > worstScore) {
      worstScore = score;
      worst = i;
      worstAllowed = allowed;
    }
  }
  return {
    ok: bad === 0,
    bad,
    count: n,
    maxAbs,
    maxRel,
    worst,
    worstGot: worst >= 0 ? got[worst]! : NaN,
    worstWant: worst >= 0 ? want[worst]! : NaN,
    worstAllowed,
  };
}

const fmt = (v: number) => (Object.is(v, -0) ? '-0' : Number.isInteger(v) ? String(v) : v.toPrecision(8));

/** One line describing a failed comparison: errors, the worst element and its index. */
export function describeComparison(c: Comparison, shape: readonly number[]): string {
  const where = c.worst >= 0 ? `[${unflatten(c.worst, shape).join(', ')}]` : '-';
  return (
    `${c.bad} of ${c.count} elements out of tolerance; max abs err ${c.maxAbs.toExponential(3)}, max rel err ${c.maxRel.toExponential(3)}; ` +
    `worst at ${where}: got ${fmt(c.worstGot)}, want ${fmt(c.worstWant)}` +
    (c.worstAllowed > 0 ? ` (allowed +-${c.worstAllowed.toExponential(2)})` : ' (exact)')
  );
}
