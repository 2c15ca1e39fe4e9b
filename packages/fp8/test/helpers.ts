/**
 * Test helpers: a seeded RNG (the seed is printed; FP8_SEED=N reproduces), host tensors, and an
 * INDEPENDENT float64 oracle of the FP8 formats and of the quantization rule (MODEL_SPEC §8): FP8
 * rounding here is a nearest-value search over the format's value table (decoded from the bit
 * fields by the OCP formulas), not core's codec.
 */
import { expect } from 'vitest';
import { tensor, type DType, type Tensor } from '@ring-linear/core';

const envSeed = Number(process.env.FP8_SEED);
export const SEED = process.env.FP8_SEED && Number.isFinite(envSeed) ? envSeed >>> 0 : (Date.now() ^ (process.pid << 8)) >>> 0;

/** mulberry32. */
export function makeRng(seed: number) {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = () => Math.sqrt(-2 * Math.log(Math.max(next(), 1e-12))) * Math.cos(2 * Math.PI * next());
  return {
    next,
    normal,
    int: (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo)),
    /** f32 values ~ N(0, scale^2), with a few larger outliers (never all zero). */
    array(n: number, scale = 1, outliers = true): Float64Array {
      const a = new Float64Array(n);
      for (let i = 0; i < n; i++) a[i] = Math.fround(normal() * scale * (outliers && next() < 0.02 ? 20 : 1));
      if (n > 0 && a.every((x) => x === 0)) a[0] = scale;
      return a;
    },
  };
}
export type Rng = ReturnType<typeof makeRng>;

/** A test-local RNG derived from the run seed and a label (each test reproduces alone). */
export function rngFor(label: string): Rng {
  let h = SEED ^ 0x9e3779b9;
  for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193);
  return makeRng(h >>> 0);
}

export function t(values: ArrayLike<number>, shape: readonly number[], dtype: DType = 'f32'): Tensor {
  return tensor(Float32Array.from(values), shape, dtype);
}

export function read(x: Tensor): Float64Array {
  return Float64Array.from(x.dataSync());
}

export async function bytes(x: Tensor): Promise<Uint8Array> {
  return x.bytes();
}

export const prod = (xs: readonly number[]) => xs.reduce((a, b) => a * b, 1);

// ---------------------------------------------------------------------------------------------
// The FP8 formats from their bit fields (OCP OFP8 rev 1.0 §4)

export type Fp8 = 'f8e4m3' | 'f8e5m2';
export const MAX: Record<Fp8, number> = { f8e4m3: 448, f8e5m2: 57344 };

/** Value of a code from its fields: E4M3FN (bias 7, no inf, NaN S.1111.111) and E5M2 (bias 15, IEEE). */
export function decodeFp8(dtype: Fp8, code: number): number {
  const sign = code & 0x80 ? -1 : 1;
  if (dtype === 'f8e4m3') {
    const e = (code >> 3) & 15;
    const m = code & 7;
    if (e === 15 && m === 7) return NaN;
    return sign * (e === 0 ? m * 2 ** -9 : (8 + m) * 2 ** (e - 10));
  }
  const e = (code >> 2) & 31;
  const m = code & 3;
  if (e === 31) return m === 0 ? sign * Infinity : NaN;
  return sign * (e === 0 ? m * 2 ** -16 : (4 + m) * 2 ** (e - 17));
}

const TABLES = new Map<Fp8, number[]>();
/** Non-negative finite values indexed by code (0 .. max code), ascending. */
function table(dtype: Fp8): number[] {
  let tb = TABLES.get(dtype);
  if (!tb) {
    tb = [];
    for (let c = 0; c < 0x80; c++) {
      const v = decodeFp8(dtype, c);
      if (Number.isFinite(v)) tb.push(v);
    }
    TABLES.set(dtype, tb);
  }
  return tb;
}

/** Whether a code is a NaN of the format (either sign). */
export function isNanCode(dtype: Fp8, c: number): boolean {
  return Number.isNaN(decodeFp8(dtype, c));
}

/**
 * Saturating round-to-nearest-even of v (a float64) to a code: |v| >= max -> max; ties go to the
 * even code (mantissa LSB 0); NaN -> the NaN code 0x7F (sign not specified); -0 -> 0x80.
 */
export function roundFp8(dtype: Fp8, v: number): number {
  if (Number.isNaN(v)) return 0x7f;
  const sign = v < 0 || Object.is(v, -0) ? 0x80 : 0;
  const a = Math.abs(v);
  const tb = table(dtype);
  if (a >= tb[tb.length - 1]!) return sign | (tb.length - 1);
  let lo = 0;
  let hi = tb.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (tb[mid]! <= a) lo = mid;
    else hi = mid;
  }
  const dl = a - tb[lo]!;
  const dh = tb[hi]! - a;
  const code = dl < dh ? lo : dh < dl ? hi : lo % 2 === 0 ? lo : hi;
  return sign | code;
}

// ---------------------------------------------------------------------------------------------
// The quantization rule

export type Layout = 'tensor' | 'row' | 'tile1x128' | 'block128x128';
export const TINY = 2 ** -126;

/** 2^ceil(log2 s), by exact doubling/halving. */
function pow2CeilExact(s: number): number {
  let p = 1;
  while (p < s) p *= 2;
  while (p / 2 >= s) p /= 2;
  return p;
}

export function oracleScale(amax: number, dtype: Fp8, pow2: boolean): number {
  if (Number.isNaN(amax)) return NaN;
  let s = Math.max(Math.fround(amax / MAX[dtype]), TINY);
  if (pow2 && Number.isFinite(s)) s = pow2CeilExact(s);
  return s;
}

/** For element index i of `shape`: which scale (flat index into the layout's scales) covers it. */
export function groupOf(shape: readonly number[], layout: Layout, i: number): number {
  const r = shape.length;
  const K = shape[r - 1] ?? 1;
  if (layout === 'tensor') return 0;
  if (layout === 'row') return Math.floor(i / K);
  if (layout === 'tile1x128') return Math.floor(i / K) * Math.ceil(K / 128) + Math.floor((i % K) / 128);
  const N = shape[r - 2]!;
  const row = Math.floor(i / K);
  const b = Math.floor(row / N);
  return (b * Math.ceil(N / 128) + Math.floor((row % N) / 128)) * Math.ceil(K / 128) + Math.floor((i % K) / 128);
}

export function scalesShapeOf(shape: readonly number[], layout: Layout): number[] {
  const r = shape.length;
  if (layout === 'tensor') return [];
  if (layout === 'row') return [...shape.slice(0, -1), 1];
  if (layout === 'tile1x128') return [...shape.slice(0, -1), Math.ceil(shape[r - 1]! / 128)];
  return [...shape.slice(0, -2), Math.ceil(shape[r - 2]! / 128), Math.ceil(shape[r - 1]! / 128)];
}

/** The definition, in float64 with the f32 roundings the rule names: codes and scales. */
export function oracleQuantize(x: ArrayLike<number>, shape: readonly number[], layout: Layout, dtype: Fp8, pow2 = false) {
  const ns = prod(scalesShapeOf(shape, layout));
  const amax = new Float64Array(ns);
  for (let i = 0; i < x.length; i++) {
    const g = groupOf(shape, layout, i);
    const a = Math.abs(x[i]!);
    if (Number.isNaN(a) || Number.isNaN(amax[g]!)) amax[g] = NaN;
    else amax[g] = Math.max(amax[g]!, a);
  }
  const scales = Float64Array.from(amax, (a) => oracleScale(a, dtype, pow2));
  const codes = new Uint8Array(x.length);
  for (let i = 0; i < x.length; i++) codes[i] = roundFp8(dtype, Math.fround(x[i]! / scales[groupOf(shape, layout, i)]!));
  return { codes, scales };
}

/** Codes equal, treating every NaN code of the format as one. */
export function expectCodes(dtype: Fp8, got: Uint8Array, want: Uint8Array, what: string): void {
  expect(got.length, `${what}: length`).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!;
    const w = want[i]!;
    if (g === w || (isNanCode(dtype, g) && isNanCode(dtype, w))) continue;
    expect.fail(`${what}: code ${i} is 0x${g.toString(16)} (${decodeFp8(dtype, g)}), expected 0x${w.toString(16)} (${decodeFp8(dtype, w)})`);
  }
}

/** Float arrays equal bit for bit (NaN equals NaN, -0 differs from +0). */
export function expectSame(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  expect(got.length, `${what}: length`).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    if (Object.is(got[i], want[i])) continue;
    expect.fail(`${what}: element ${i} is ${got[i]}, expected ${want[i]}`);
  }
}

/** Byte arrays equal, NaN codes of an FP8 format compared as NaN (their sign is unspecified). */
export function expectBytes(got: Uint8Array, want: Uint8Array, what: string, fp8?: Fp8): void {
  if (fp8) return expectCodes(fp8, got, want, what);
  expect(got.length, `${what}: length`).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i]) expect.fail(`${what}: byte ${i} is ${got[i]}, expected ${want[i]}`);
  }
}
