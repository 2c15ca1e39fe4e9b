/**
 * Test helpers: a seeded RNG (the seed is printed; set ATTN_SEED to reproduce), host tensors in
 * float64, float64 references written from MODEL_SPEC §2-3, comparisons and finite differences.
 */
import { expect } from 'vitest';
import { tensor, type DType, type Tensor } from '@ring-linear/core';

const envSeed = Number(process.env.ATTN_SEED);
export const SEED = Number.isFinite(envSeed) && process.env.ATTN_SEED ? envSeed : (Date.now() ^ (process.pid << 8)) >>> 0;

/** mulberry32: small, fast, good enough for test data. */
export function makeRng(seed: number) {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = () => {
    const u = Math.max(next(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next());
  };
  return {
    next,
    normal,
    uniform: (lo: number, hi: number) => lo + (hi - lo) * next(),
    int: (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo)),
    /** f32-representable normal values (never all zero). */
    array(n: number, scale = 1): Float64Array {
      const a = new Float64Array(n);
      for (let i = 0; i < n; i++) a[i] = Math.fround(normal() * scale);
      if (n > 0 && a.every((x) => x === 0)) a[0] = scale;
      return a;
    },
  };
}
export type Rng = ReturnType<typeof makeRng>;

/** A test-local rng derived from the run seed and a label, so every test is reproducible alone. */
export function rngFor(label: string): Rng {
  let h = SEED ^ 0x9e3779b9;
  for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193);
  return makeRng(h >>> 0);
}

export function t(values: Float64Array | number[], shape: readonly number[], dtype: DType = 'f32'): Tensor {
  return tensor(Float32Array.from(values), shape, dtype);
}

export function read(x: Tensor): Float64Array {
  return Float64Array.from(x.dataSync());
}

/**
 * Asserts |a - b| <= atol + rtol * scale elementwise, where scale is max|b| over the array (outputs
 * of sums cancel, so the error follows the magnitude of the whole, not of each element).
 */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol: number, what: string, atol = 0): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]!));
  let worst = 0;
  let at = -1;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (!Number.isFinite(a)) {
      throw new Error(`${what}: element ${i} is ${a} (expected ${e}); seed ${SEED}`);
    }
    const err = Math.abs(a - e);
    if (err > worst) {
      worst = err;
      at = i;
    }
  }
  const tol = atol + rtol * scale;
  if (worst > tol) {
    throw new Error(`${what}: max error ${worst.toExponential(3)} at ${at} (got ${actual[at]}, expected ${expected[at]}) > tol ${tol.toExponential(3)} (scale ${scale.toExponential(3)}); seed ${SEED}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Float64 references, written from MODEL_SPEC

export interface LinearRefInput {
  B: number;
  T: number;
  H: number;
  D: number;
  Dv: number;
  q: Float64Array;
  k: Float64Array;
  v: Float64Array;
  /** a_h */
  decay: Float64Array;
  /** [N, H, D, Dv] */
  s0: Float64Array;
  scale: number;
  cuSeqlens?: readonly number[] | null;
}

/**
 * The quadratic form with the decay mask (MODEL_SPEC §2, step 4):
 *   o_t = s * sum_{j<=t} lambda^(t-j) (q_t . k_j) v_j + s lambda^(t - t0 + 1) q_t S_0
 *   S_final = lambda^len S_0 + sum_j lambda^(t1-1-j) k_j^T v_j
 */
export function linearQuadraticRef(x: LinearRefInput): { out: Float64Array; state: Float64Array } {
  const { B, T, H, D, Dv, q, k, v, decay, s0, scale } = x;
  const segs: [number, number][] = x.cuSeqlens ? x.cuSeqlens.slice(0, -1).map((s, i) => [s, x.cuSeqlens![i + 1]!]) : [[0, T]];
  const N = x.cuSeqlens ? segs.length : B;
  const out = new Float64Array(B * T * H * Dv);
  const state = new Float64Array(N * H * D * Dv);
  const qi = (b: number, t: number, h: number) => ((b * T + t) * H + h) * D;
  const vi = (b: number, t: number, h: number) => ((b * T + t) * H + h) * Dv;
  for (let b = 0; b < B; b++) {
    segs.forEach(([t0, t1], n) => {
      const sIdx = x.cuSeqlens ? n : b;
      for (let h = 0; h < H; h++) {
        const a = decay[h]!;
        const S0 = (sIdx * H + h) * D * Dv;
        for (let t = t0; t < t1; t++) {
          for (let j = t0; j <= t; j++) {
            let dot = 0;
            for (let d = 0; d < D; d++) dot += q[qi(b, t, h) + d]! * k[qi(b, j, h) + d]!;
            const w = scale * Math.exp(-a * (t - j)) * dot;
            for (let e = 0; e < Dv; e++) out[vi(b, t, h) + e]! += w * v[vi(b, j, h) + e]!;
          }
          const w0 = scale * Math.exp(-a * (t - t0 + 1));
          for (let e = 0; e < Dv; e++) {
            let acc = 0;
            for (let d = 0; d < D; d++) acc += q[qi(b, t, h) + d]! * s0[S0 + d * Dv + e]!;
            out[vi(b, t, h) + e]! += w0 * acc;
          }
        }
        for (let d = 0; d < D; d++) {
          for (let e = 0; e < Dv; e++) {
            let acc = Math.exp(-a * (t1 - t0)) * s0[S0 + d * Dv + e]!;
            for (let j = t0; j < t1; j++) acc += Math.exp(-a * (t1 - 1 - j)) * k[qi(b, j, h) + d]! * v[vi(b, j, h) + e]!;
            state[S0 + d * Dv + e] = acc;
          }
        }
      }
    });
  }
  return { out, state };
}

/** The recurrence itself (MODEL_SPEC §2): S_t = lambda S_{t-1} + k_t^T v_t; o_t = s q_t S_t. */
export function linearRecurrentRef(x: LinearRefInput): { out: Float64Array; state: Float64Array } {
  const { B, T, H, D, Dv, q, k, v, decay, s0, scale } = x;
  const segs: [number, number][] = x.cuSeqlens ? x.cuSeqlens.slice(0, -1).map((s, i) => [s, x.cuSeqlens![i + 1]!]) : [[0, T]];
  const out = new Float64Array(B * T * H * Dv);
  const state = new Float64Array(s0.length);
  for (let b = 0; b < B; b++) {
    segs.forEach(([t0, t1], n) => {
      const sIdx = x.cuSeqlens ? n : b;
      for (let h = 0; h < H; h++) {
        const lambda = Math.exp(-decay[h]!);
        const base = (sIdx * H + h) * D * Dv;
        const S = s0.slice(base, base + D * Dv);
        for (let t = t0; t < t1; t++) {
          const qb = ((b * T + t) * H + h) * D;
          const vb = ((b * T + t) * H + h) * Dv;
          for (let d = 0; d < D; d++) for (let e = 0; e < Dv; e++) S[d * Dv + e] = lambda * S[d * Dv + e]! + k[qb + d]! * v[vb + e]!;
          for (let e = 0; e < Dv; e++) {
            let acc = 0;
            for (let d = 0; d < D; d++) acc += q[qb + d]! * S[d * Dv + e]!;
            out[vb + e] = scale * acc;
          }
        }
        state.set(S, base);
      }
    });
  }
  return { out, state };
}

export interface SoftmaxRefInput {
  B: number;
  Tq: number;
  Tk: number;
  H: number;
  Hkv: number;
  D: number;
  Dv: number;
  q: Float64Array;
  k: Float64Array;
  v: Float64Array;
  scale: number;
  causal: boolean;
  cuSeqlens?: readonly number[] | null;
  kvLen?: number;
  kvOffset?: number;
}

/** Plain softmax attention in float64 (MODEL_SPEC §3): full score rows, max-subtracted softmax. */
export function softmaxRef(x: SoftmaxRefInput): { out: Float64Array; lse: Float64Array } {
  const { B, Tq, Tk, H, Hkv, D, Dv, q, k, v, scale, causal } = x;
  const G = H / Hkv;
  const kvLen = x.kvLen ?? Tk;
  const kvOffset = x.kvOffset ?? Math.max(kvLen - Tq, 0);
  const out = new Float64Array(B * Tq * H * Dv);
  const lse = new Float64Array(B * H * Tq);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const hk = Math.floor(h / G);
      for (let i = 0; i < Tq; i++) {
        // keys visible to query i: [lo, hi)
        let lo = 0;
        let hi = kvLen;
        let pos = kvOffset + i;
        if (x.cuSeqlens) {
          let s = 0;
          while (x.cuSeqlens[s + 1]! <= i) s++;
          lo = x.cuSeqlens[s]!;
          hi = x.cuSeqlens[s + 1]!;
          pos = i - lo;
        }
        const scores: number[] = [];
        for (let j = lo; j < hi; j++) {
          if (causal && j - lo > pos) break;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[((b * Tq + i) * H + h) * D + d]! * k[((b * Tk + j) * Hkv + hk) * D + d]!;
          scores.push(scale * dot);
        }
        const m = Math.max(...scores);
        const p = scores.map((s) => Math.exp(s - m));
        const z = p.reduce((a, c) => a + c, 0);
        lse[(b * H + h) * Tq + i] = m + Math.log(z);
        for (let e = 0; e < Dv; e++) {
          let acc = 0;
          p.forEach((pj, jj) => (acc += pj * v[((b * Tk + lo + jj) * Hkv + hk) * Dv + e]!));
          out[((b * Tq + i) * H + h) * Dv + e] = acc / z;
        }
      }
    }
  }
  return { out, lse };
}

/**
 * Central finite differences of a float64 function's scalar output with respect to one input array
 * (perturbed in place and restored).
 */
export function finiteDiff(f: () => number, x: Float64Array, eps = 1e-5): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const x0 = x[i]!;
    x[i] = x0 + eps;
    const fp = f();
    x[i] = x0 - eps;
    const fm = f();
    x[i] = x0;
    g[i] = (fp - fm) / (2 * eps);
  }
  return g;
}

export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}
