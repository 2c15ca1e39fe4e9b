/**
 * FP8 formats, quantization layouts and the scale rule (MODEL_SPEC §8).
 *
 *   E4M3 (OCP "E4M3FN"): max 448, no infinities, NaN = S.1111.111; forward tensors.
 *   E5M2:                max 57344, IEEE-like inf/NaN; gradients where they need range.
 *
 * Scales are DEQUANTIZATION multipliers: x ~ q * scale. For a block of values (its real elements
 * only: partial edge tiles and blocks are not padded with anything that counts):
 *
 *   amax  = max |x|                          NaN if the block holds a NaN (NaN propagates)
 *   scale = max(fl32(amax / fp8_max), TINY)  TINY = 2^-126, the smallest normal f32
 *           then, with pow2Scale, rounded UP to a power of two (2^ceil(log2 scale))
 *   q     = RNE_fp8(fl32(x / scale)), saturated to +-fp8_max
 *
 * fl32(.) is one IEEE f32 operation (round to nearest even): the quotient is a DIVISION in f32
 * (not a multiplication by 1/scale), and the f32 quotient is then rounded once to the FP8 format
 * by core's bit-exact codec (saturating). Every backend computes exactly this.
 *
 * Non-finite input is never hidden: a block holding a NaN gets scale NaN (every code in it NaN);
 * a block holding +-inf (and no NaN) gets scale +inf, its finite values quantize to +-0 and its
 * infinities to NaN, and the whole block dequantizes to NaN (0 * inf = NaN). So a non-finite value
 * poisons exactly its own block, and a GEMM output that reads that block is NaN.
 *
 * An all-zero block gets scale TINY and zero codes (a -0 input keeps its sign: code 0x80).
 */
import { E4M3_MAX, E5M2_MAX, type DType } from '@ring-linear/core';

export type Fp8DType = 'f8e4m3' | 'f8e5m2';
export const FP8_DTYPES: readonly Fp8DType[] = ['f8e4m3', 'f8e5m2'];

/**
 * How scales are shared:
 *   tensor        one scale                                  scales shape []
 *   row           one per row (all leading indices)          [..., 1]
 *   tile1x128     one per row per 128 channels of the last   [..., ceil(K/128)]
 *                 dim (activations: per token, along the reduction dim)
 *   block128x128  one per 128x128 block of the last two dims [..., ceil(N/128), ceil(K/128)]
 *                 (weights [out, in])
 */
export type Fp8Layout = 'tensor' | 'row' | 'tile1x128' | 'block128x128';
export const FP8_LAYOUTS: readonly Fp8Layout[] = ['tensor', 'row', 'tile1x128', 'block128x128'];

/** Side of a tile / block. */
export const FP8_BLOCK = 128;

/** The smallest scale: 2^-126, the smallest normal f32 (an all-zero block gets it). */
export const SCALE_TINY = 2 ** -126;

/** Storage dtypes that quantizers and the fused ops read (computed in f32). */
export const HIGH_PRECISION_DTYPES: readonly DType[] = ['f32', 'bf16', 'f16'];

/** Dtypes a GEMM writes: its f32 accumulator rounded once. */
export const GEMM_OUT_DTYPES: readonly DType[] = ['f32', 'bf16', 'f16'];

export function isFp8DType(d: unknown): d is Fp8DType {
  return d === 'f8e4m3' || d === 'f8e5m2';
}

/** Largest finite value of an FP8 format. */
export function fp8Max(dtype: Fp8DType): number {
  return dtype === 'f8e4m3' ? E4M3_MAX : E5M2_MAX;
}

export const ceilDiv = (a: number, b: number): number => Math.ceil(a / b);

/** Shape of the scales of a tensor of `shape` in `layout` (see Fp8Layout). */
export function scalesShape(shape: readonly number[], layout: Fp8Layout): number[] {
  const r = shape.length;
  switch (layout) {
    case 'tensor':
      return [];
    case 'row':
      return [...shape.slice(0, -1), 1];
    case 'tile1x128':
      return [...shape.slice(0, -1), ceilDiv(shape[r - 1]!, FP8_BLOCK)];
    case 'block128x128':
      return [...shape.slice(0, -2), ceilDiv(shape[r - 2]!, FP8_BLOCK), ceilDiv(shape[r - 1]!, FP8_BLOCK)];
  }
}

/** The smallest power of two >= s, for a positive finite f32 s (exact; used by host code and tests). */
export function pow2Ceil(s: number): number {
  const e = Math.ceil(Math.log2(s));
  let p = 2 ** e;
  // Math.log2 may be off by an ulp near powers of two; one correction either way makes it exact.
  if (p < s) p *= 2;
  if (p / 2 >= s) p /= 2;
  return p;
}

/** The scale rule on the host, in the same f32 steps every kernel takes (see the file comment). */
export function scaleFromAmax(amax: number, dtype: Fp8DType, pow2Scale: boolean): number {
  const s = Math.fround(amax / fp8Max(dtype));
  if (s !== s) return NaN;
  const clamped = s > SCALE_TINY ? s : SCALE_TINY;
  return pow2Scale && Number.isFinite(clamped) ? Math.fround(pow2Ceil(clamped)) : clamped;
}
