/**
 * Shared pieces of the FP8 kernels (the ops are defined in @ring-linear/fp8, which this package does
 * not import: kernels are registered by op name). Every step reproduces, in the same f32 roundings,
 * what the op's composite computes on this backend, so a fused kernel and its composite agree byte
 * for byte:
 *
 *   amax  = max |x| over the block's real elements (NaN propagates, as core's max kernel)
 *   scale = max(fl32(amax / fp8_max), 2^-126), optionally rounded up to a power of two
 *   code  = encode_fp8_saturating(fl32(x / scale))      (a division, as the div kernel)
 */
import { E4M3_MAX, E5M2_MAX, encodeF32 } from '@ring-linear/core';
import { gemmF32 } from '../gemm.js';

export type Fp8 = 'f8e4m3' | 'f8e5m2';
export type Layout = 'tensor' | 'row' | 'tile1x128' | 'block128x128';

export const BLOCK = 128;
/** The smallest scale, 2^-126 (smallest normal f32). */
export const TINY = 2 ** -126;

export const fp8Max = (d: Fp8): number => (d === 'f8e4m3' ? E4M3_MAX : E5M2_MAX);
export const ceilDiv = (a: number, b: number): number => Math.ceil(a / b);

const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);

/** The smallest power of two >= s for a positive normal f32 s (exact, from the bit pattern). */
function pow2Ceil(s: number): number {
  F32[0] = s;
  const u = U32[0]!;
  if ((u & 0x7fffff) === 0) return s;
  U32[0] = ((u >>> 23) + 1) << 23; // next binade; exponent 255 is +inf, as the composite's pow(2, 128)
  return F32[0]!;
}

/** The scale rule of MODEL_SPEC §8 for one block. NaN stays NaN, +inf stays +inf. */
export function scaleOf(amax: number, maxValue: number, pow2Scale: boolean): number {
  const s = Math.fround(amax / maxValue);
  if (s !== s) return NaN;
  const c = s > TINY ? s : TINY;
  return pow2Scale && c !== Infinity ? pow2Ceil(c) : c;
}

/** max(acc, |v|) with NaN propagating. */
const amaxStep = (acc: number, v: number): number => {
  const a = Math.abs(v);
  return a > acc || a !== a ? a : acc;
};

/** Codes of the f32 quotients (saturating RNE), written into `codes`. */
export function encodeQuotients(dtype: Fp8, quotients: Float32Array, codes: Uint8Array): void {
  encodeF32(dtype, quotients, codes, true);
}

/**
 * Quantizes rows of length K in 1x128 tiles (or one tile per row: `width` = K), one row at a
 * time from a caller's row buffer, so a fused kernel keeps its intermediate row in cache instead of
 * writing a whole f32 tensor first. The arithmetic is the rule's, step for step.
 */
export class RowQuantizer {
  readonly tiles: number;
  private readonly quot: Float32Array;
  private readonly maxValue: number;

  constructor(
    readonly K: number, readonly dtype: Fp8, readonly pow2Scale: boolean,
    readonly codes: Uint8Array, readonly scales: Float32Array, readonly width = BLOCK,
  ) {
    this.tiles = ceilDiv(K, width);
    this.quot = new Float32Array(K);
    this.maxValue = fp8Max(dtype);
  }

  /** Quantizes row `r` whose values are y[off .. off + K). */
  row(r: number, y: Float32Array, off = 0): void {
    const { K, width, quot, tiles } = this;
    for (let t = 0; t < tiles; t++) {
      const k0 = t * width;
      const k1 = Math.min(K, k0 + width);
      let amax = 0;
      for (let k = k0; k < k1; k++) amax = amaxStep(amax, y[off + k]!);
      const s = scaleOf(amax, this.maxValue, this.pow2Scale);
      this.scales[r * tiles + t] = s;
      for (let k = k0; k < k1; k++) quot[k] = y[off + k]! / s;
    }
    encodeF32(this.dtype, quot, this.codes.subarray(r * K, (r + 1) * K), true);
  }
}

/**
 * Quantizes x (decoded f32 values of a tensor of `shape`) in `layout`: fills `scales` (the layout's
 * scales shape, flat) and `quot` (fl32(x / scale), then encoded by the caller or here into codes).
 */
export function quantizeInto(
  x: Float32Array, shape: readonly number[], layout: Layout, dtype: Fp8, pow2Scale: boolean,
  codes: Uint8Array, scales: Float32Array,
): void {
  const n = x.length;
  const maxValue = fp8Max(dtype);
  const r = shape.length;
  const quot = layout === 'tensor' || layout === 'block128x128' ? new Float32Array(n) : new Float32Array(0);
  switch (layout) {
    case 'tensor': {
      let amax = 0;
      for (let i = 0; i < n; i++) amax = amaxStep(amax, x[i]!);
      const s = scaleOf(amax, maxValue, pow2Scale);
      scales[0] = s;
      for (let i = 0; i < n; i++) quot[i] = x[i]! / s;
      break;
    }
    case 'row':
    case 'tile1x128': {
      const K = shape[r - 1]!;
      const rows = K === 0 ? 0 : n / K;
      const rq = new RowQuantizer(K, dtype, pow2Scale, codes, scales, layout === 'row' ? K : BLOCK);
      for (let row = 0; row < rows; row++) rq.row(row, x, row * K);
      return;
    }
    case 'block128x128': {
      const [N, K] = [shape[r - 2]!, shape[r - 1]!];
      const mats = N * K === 0 ? 0 : n / (N * K);
      const [NB, KB] = [ceilDiv(N, BLOCK), ceilDiv(K, BLOCK)];
      for (let b = 0; b < mats; b++) {
        for (let nb = 0; nb < NB; nb++) {
          const n0 = nb * BLOCK;
          const n1 = Math.min(N, n0 + BLOCK);
          for (let kb = 0; kb < KB; kb++) {
            const k0 = kb * BLOCK;
            const k1 = Math.min(K, k0 + BLOCK);
            let amax = 0;
            for (let row = n0; row < n1; row++) {
              const base = (b * N + row) * K;
              for (let k = k0; k < k1; k++) amax = amaxStep(amax, x[base + k]!);
            }
            const s = scaleOf(amax, maxValue, pow2Scale);
            scales[(b * NB + nb) * KB + kb] = s;
            for (let row = n0; row < n1; row++) {
              const base = (b * N + row) * K;
              for (let k = k0; k < k1; k++) quot[base + k] = x[base + k]! / s;
            }
          }
        }
      }
      break;
    }
  }
  encodeQuotients(dtype, quot, codes);
}

/** Index into the flat scales of `layout` for each element of a tensor of `shape`, as a function. */
export function scaleIndexer(shape: readonly number[], layout: Layout): (i: number) => number {
  const r = shape.length;
  switch (layout) {
    case 'tensor':
      return () => 0;
    case 'row': {
      const K = shape[r - 1]!;
      return (i) => Math.floor(i / K);
    }
    case 'tile1x128': {
      const K = shape[r - 1]!;
      const T = ceilDiv(K, BLOCK);
      return (i) => Math.floor(i / K) * T + Math.floor((i % K) / BLOCK);
    }
    case 'block128x128': {
      const [N, K] = [shape[r - 2]!, shape[r - 1]!];
      const [NB, KB] = [ceilDiv(N, BLOCK), ceilDiv(K, BLOCK)];
      return (i) => {
        const k = i % K;
        const rowAll = Math.floor(i / K);
        const b = Math.floor(rowAll / N);
        const row = rowAll % N;
        return (b * NB + Math.floor(row / BLOCK)) * KB + Math.floor(k / BLOCK);
      };
    }
  }
}

/**
 * Block-scaled GEMM of decoded FP8 codes, accumulated into `acc` (Float64Array [M*N], added to):
 *   acc[m, n] += sum over k-tiles t of fl32(fl32(P_t[m, n] * sa[m, t]) * sb[row(n), t])
 * with P_t = a_t b_t^T over one 128-wide tile (zero-padded past K), computed by the same f32 GEMM
 * the composite's batched matmul runs, so the two agree byte for byte.
 *   a: rows aRow0 .. aRow0+M-1 of a [*, K] matrix; sa: [*, T] matching a's rows
 *   b: [N, K] at element offset bOff; sb: rows of T scales at offset sbOff, one row per
 *      `bRowsPerScale` rows of b (128 for 128x128 blocks, 1 for 1x128 tiles)
 */
export function blockScaledGemm(
  a: Float32Array, aRow0: number, M: number, sa: Float32Array,
  b: Float32Array, bOff: number, N: number, K: number,
  sb: Float32Array, sbOff: number, bRowsPerScale: number,
  acc: Float64Array,
): void {
  if (M === 0 || N === 0) return;
  const T = ceilDiv(K, BLOCK);
  const pa = new Float32Array(M * BLOCK);
  const pb = new Float32Array(N * BLOCK);
  const P = new Float32Array(M * N);
  for (let t = 0; t < T; t++) {
    const k0 = t * BLOCK;
    const len = Math.min(BLOCK, K - k0);
    if (len < BLOCK) {
      pa.fill(0);
      pb.fill(0);
    }
    for (let m = 0; m < M; m++) {
      const src = (aRow0 + m) * K + k0;
      pa.set(a.subarray(src, src + len), m * BLOCK);
    }
    for (let n = 0; n < N; n++) {
      const src = bOff + n * K + k0;
      pb.set(b.subarray(src, src + len), n * BLOCK);
    }
    gemmF32(pa, pb, P, M, N, BLOCK, false, true);
    for (let m = 0; m < M; m++) {
      const s = sa[(aRow0 + m) * T + t]!;
      const row = m * N;
      for (let n = 0; n < N; n++) {
        const sbv = sb[sbOff + Math.floor(n / bRowsPerScale) * T + t]!;
        acc[row + n] += Math.fround(Math.fround(P[row + n]! * s) * sbv);
      }
    }
  }
}
