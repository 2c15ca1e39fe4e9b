/**
 * JavaScript models of the fused FP8 kernels of kernels/fp8.cuh that live in the fp8fused module
 * (fp8SwigluBackwardQuant, fp8GroupRmsNormGateQuant) and of groupRmsNormGate, for the mock driver
 * (registered with registerKernelModel; imported by test/emulated-fp8.test.ts). Each computes what
 * the kernel computes with the emulator's models of the composites' kernels (the rms_norm model's
 * float64 row math, one f32 rounding per elementwise op, the quantizer's scale rule and saturating
 * encode), and checks the launch geometry the kernel is written for.
 */
import { encodeF32, type DType } from '@ring-linear/core';
import { registerKernelModel, type EmulatorIO } from './emulator.js';

const SFX: Record<string, DType> = { f32: 'f32', f16: 'f16', bf16: 'bf16', e4m3: 'f8e4m3', e5m2: 'f8e5m2' };
type Fp8 = 'f8e4m3' | 'f8e5m2';
const f = Math.fround;
const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);
const absBits = (v: number) => {
  F32[0] = v;
  return U32[0]! & 0x7fffffff;
};

/** The scale rule of kernels/fp8.cuh from the amax bits (as emulator.ts). */
function fp8Scale(bits: number, q: Fp8, pow2: boolean): number {
  if (bits > 0x7f800000) return NaN;
  U32[0] = bits;
  const s = f(F32[0]! / (q === 'f8e4m3' ? 448 : 57344));
  const c = s > 2 ** -126 ? s : 2 ** -126;
  F32[0] = c;
  const u = U32[0]!;
  if (!pow2 || u >= 0x7f800000 || (u & 0x7fffff) === 0) return c;
  U32[0] = ((u >>> 23) + 1) << 23;
  return F32[0]!;
}

// The unary kernels' models (emulator.ts): sigmoid and silu, each step rounded to f32.
const sigmoid = (x: number) => f(1 / f(1 + f(Math.exp(-x))));
const silu = (x: number) => f(x / f(1 + f(Math.exp(-x))));

/** rmsNormThreads of src/ops/nn.ts: the rmsNorm kernel's block size for rows of length d. */
const rmsNormThreads = (d: number) => Math.min(1024, Math.max(32, 2 ** Math.ceil(Math.log2(Math.max(1, Math.ceil(d / 8))))));

/** 1x128 tiles of y [rows, K] (f32 values) into codes at q and scales at s. */
function quantTiles(io: EmulatorIO, y: Float32Array, rows: number, K: number, qd: Fp8, pow2: boolean, q: number, s: number): void {
  const T = Math.ceil(K / 128);
  for (let r = 0; r < rows; r++) {
    for (let t = 0; t < T; t++) {
      let bits = 0;
      for (let k = t * 128; k < Math.min(K, t * 128 + 128); k++) bits = Math.max(bits, absBits(y[r * K + k]!));
      const scale = fp8Scale(bits, qd, pow2);
      io.store('f32', s, r * T + t, scale);
      for (let k = t * 128; k < Math.min(K, t * 128 + 128); k++) io.putRaw(1, q, r * K + k, encodeF32(qd, [f(y[r * K + k]! / scale)], undefined, true)[0]!);
    }
  }
}

// fp8_swiglu_bwd_<gu>_<dh>_<fmt>: dy = [dg | du] as the composite's kernels compute it, then
// fp8QuantTranspose's tiles of dy and dy^T. One 256-thread block per 128x128 block of dy.
registerKernelModel(/^fp8_swiglu_bwd_(f32|bf16|f16)_(f32|bf16|f16)_(e4m3|e5m2)$/, (m, a, io, grid, block) => {
  const gd = SFX[m[1]!]!, dd = SFX[m[2]!]!, qd = SFX[m[3]!]! as Fp8;
  const [gu, dh, q, s, qT, sT, M, I, pow2] = a as number[];
  const C = 2 * I!;
  if (block[0] !== 256) throw new Error(`${m[0]}: ${block[0]} threads a block, the kernel is written for 256`);
  if (grid[0] !== Math.ceil(M! / 128) * Math.ceil(C / 128)) throw new Error(`${m[0]}: grid.x ${grid[0]} does not cover [${M}, ${C}]`);
  const dy = new Float32Array(M! * C);
  for (let r = 0; r < M!; r++) {
    for (let j = 0; j < I!; j++) {
      const g = io.load(gd, gu!, r * C + j), u = io.load(gd, gu!, r * C + I! + j), d = io.load(dd, dh!, r * I! + j);
      const sg = sigmoid(g);
      const dsilu = f(sg + f(f(g * sg) * f(1 - sg)));
      dy[r * C + j] = f(f(d * u) * dsilu);
      dy[r * C + I! + j] = f(d * silu(g));
    }
  }
  const dyT = new Float32Array(M! * C);
  for (let r = 0; r < M!; r++) for (let c = 0; c < C; c++) dyT[c * M! + r] = dy[r * C + c]!;
  quantTiles(io, dy, M!, C, qd, pow2 !== 0, q!, s!);
  quantTiles(io, dyT, C, M!, qd, pow2 !== 0, qT!, sT!);
});

/**
 * y = (n * w) * sigmoid(gate) with n the rms_norm model's output on each group (unit weight): the
 * composite's kernels, step by step. `quantize`: rows of y to codes; else y stored in o's dtype.
 */
function groupGate(name: string, io: EmulatorIO, od: DType, gd: DType, wd: DType, o: number, gate: number, w: number,
  rows: number, C: number, S: number, B: number, eps: number, grid: readonly number[], block: readonly number[]): Float32Array {
  if (block[0] !== 256) throw new Error(`${name}: ${block[0]} threads a block, the kernel is written for 256`);
  if (grid[0] !== rows) throw new Error(`${name}: grid.x ${grid[0]} is not ${rows} rows`);
  if (C % S !== 0) throw new Error(`${name}: groups of ${S} do not divide ${C} channels`);
  if (B !== rmsNormThreads(S)) throw new Error(`${name}: B = ${B}, the rmsNorm kernel runs ${rmsNormThreads(S)} threads for rows of ${S}`);
  const y = new Float32Array(rows * C);
  for (let r = 0; r < rows; r++) {
    for (let g0 = 0; g0 < C; g0 += S) {
      let ss = 0;
      for (let j = 0; j < S; j++) ss += io.load(od, o, r * C + g0 + j) ** 2;
      const inv = 1 / Math.sqrt(ss / S + eps);
      for (let j = 0; j < S; j++) {
        const c = g0 + j;
        const n = f(io.load(od, o, r * C + c) * inv);
        y[r * C + c] = f(f(n * io.load(wd, w, c)) * sigmoid(io.load(gd, gate, r * C + c)));
      }
    }
  }
  return y;
}

registerKernelModel(/^fp8_group_gate_(f32|bf16|f16)_(f32|bf16|f16)_(f32|bf16|f16)_(e4m3|e5m2)$/, (m, a, io, grid, block) => {
  const [o, gate, w, q, s, rows, C, S, B, eps, pow2] = a as number[];
  const y = groupGate(m[0]!, io, SFX[m[1]!]!, SFX[m[2]!]!, SFX[m[3]!]!, o!, gate!, w!, rows!, C!, S!, B!, eps!, grid, block);
  quantTiles(io, y, rows!, C!, SFX[m[4]!]! as Fp8, pow2 !== 0, q!, s!);
});

registerKernelModel(/^group_rms_norm_gate_(f32|bf16|f16)_(f32|bf16|f16)$/, (m, a, io, grid, block) => {
  const od = SFX[m[1]!]!;
  const [o, gate, w, out, rows, C, S, B, eps] = a as number[];
  const y = groupGate(m[0]!, io, od, od, SFX[m[2]!]!, o!, gate!, w!, rows!, C!, S!, B!, eps!, grid, block);
  y.forEach((v, i) => io.store(od, out!, i, v));
});

// ---------------------------------------------------------------------------------------------
// v3 quantizers (kernels/fp8.cuh; same outputs as v2, other geometry).

const v3Tiles = (d: DType) => (d === 'f32' ? 2 : 4);

// fp8_tiles_<x>_<fmt>_v3: `tiles` 1x128 tiles of 128 contiguous elements, U a half-warp.
registerKernelModel(/^fp8_tiles_(f32|bf16|f16)_(e4m3|e5m2)_v3$/, (m, a, io, grid, block) => {
  const d = SFX[m[1]!]!, qd = SFX[m[2]!]! as Fp8;
  const [x, q, s, tiles, pow2] = a as number[];
  if (block[0] !== 256) throw new Error(`${m[0]}: ${block[0]} threads a block, the kernel is written for 256`);
  if ((grid[0] * block[0] / 16) * v3Tiles(d) < tiles!) throw new Error(`${m[0]}: grid ${grid[0]} does not cover ${tiles} tiles`);
  const y = Float32Array.from({ length: tiles! * 128 }, (_, i) => io.load(d, x!, i));
  quantTiles(io, y, tiles!, 128, qd, pow2 !== 0, q!, s!);
});

// fp8_swiglu_<x>_<fmt>_v3: silu(g) * u of rows with I % 128 == 0, U / 2 tiles a half-warp.
registerKernelModel(/^fp8_swiglu_(f32|bf16|f16)_(e4m3|e5m2)_v3$/, (m, a, io, grid, block) => {
  const d = SFX[m[1]!]!, qd = SFX[m[2]!]! as Fp8;
  const [gu, q, s, rows, I, pow2] = a as number[];
  if (I! % 128 !== 0) throw new Error(`${m[0]}: I = ${I} is not a multiple of 128`);
  if (block[0] !== 256) throw new Error(`${m[0]}: ${block[0]} threads a block, the kernel is written for 256`);
  if ((grid[0] * block[0] / 16) * (v3Tiles(d) / 2) < rows! * (I! / 128)) throw new Error(`${m[0]}: grid ${grid[0]} does not cover the tiles`);
  const y = new Float32Array(rows! * I!);
  for (let r = 0; r < rows!; r++) {
    for (let j = 0; j < I!; j++) y[r * I! + j] = f(silu(io.load(d, gu!, r * 2 * I! + j)) * io.load(d, gu!, r * 2 * I! + I! + j));
  }
  quantTiles(io, y, rows!, I!, qd, pow2 !== 0, q!, s!);
});

// fp8_rmsnorm_<x>_<w>_<fmt>_v3: the rows in registers (d % 8 == 0, at most 4 chunks of 8 a thread).
registerKernelModel(/^fp8_rmsnorm_(f32|bf16|f16)_(f32|bf16|f16)_(e4m3|e5m2)_v3$/, (m, a, io, grid, block) => {
  const d = SFX[m[1]!]!, wd = SFX[m[2]!]!, qd = SFX[m[3]!]! as Fp8;
  const [x, w, q, s, rows, dim, eps, pow2, vthreads] = a as number[];
  if (grid[0] < 1 || grid[0] > rows!) throw new Error(`${m[0]}: grid.x ${grid[0]} for ${rows} rows (blocks loop over rows)`);
  if (vthreads !== rmsNormThreads(dim!)) throw new Error(`${m[0]}: vthreads ${vthreads}, the rmsNorm kernel runs ${rmsNormThreads(dim!)} for d = ${dim}`);
  if (block[0] !== Math.min(vthreads!, 256)) throw new Error(`${m[0]}: ${block[0]} threads a block, expected ${Math.min(vthreads!, 256)}`);
  if (dim! % 8 !== 0 || dim! / 8 > 4 * block[0]) throw new Error(`${m[0]}: d = ${dim} is not held in registers`);
  const y = new Float32Array(rows! * dim!);
  for (let r = 0; r < rows!; r++) {
    // As the emulator's rms_norm model (the composite's kernel).
    let ss = 0;
    for (let j = 0; j < dim!; j++) ss += io.load(d, x!, r * dim! + j) ** 2;
    const inv = 1 / Math.sqrt(ss / dim! + eps!);
    for (let j = 0; j < dim!; j++) y[r * dim! + j] = f(io.load(wd, w!, j) * (io.load(d, x!, r * dim! + j) * inv));
  }
  quantTiles(io, y, rows!, dim!, qd, pow2 !== 0, q!, s!);
});

// fp8_transpose_<x>_<fmt>_v3: one 256-thread block per 128x128 block of x.
registerKernelModel(/^fp8_transpose_(f32|bf16|f16)_(e4m3|e5m2)_v3$/, (m, a, io, grid, block) => {
  const d = SFX[m[1]!]!, qd = SFX[m[2]!]! as Fp8;
  const [x, q, s, qT, sT, M, K, pow2] = a as number[];
  if (block[0] !== 256) throw new Error(`${m[0]}: ${block[0]} threads a block, the kernel is written for 256`);
  if (grid[0] !== Math.ceil(M! / 128) * Math.ceil(K! / 128)) throw new Error(`${m[0]}: grid.x ${grid[0]} does not cover [${M}, ${K}]`);
  const y = Float32Array.from({ length: M! * K! }, (_, i) => io.load(d, x!, i));
  const yT = new Float32Array(M! * K!);
  for (let r = 0; r < M!; r++) for (let c = 0; c < K!; c++) yT[c * M! + r] = y[r * K! + c]!;
  quantTiles(io, y, M!, K!, qd, pow2 !== 0, q!, s!);
  quantTiles(io, yT, K!, M!, qd, pow2 !== 0, qT!, sT!);
});
