/**
 * A small float64 GEMM for the attention kernels' tiles (chunks of 64 tokens, heads of 128 channels):
 * C[M, N] (+)= A[M, K] B[K, N], row-major with leading dimensions and element offsets, so tiles of
 * larger buffers are addressed in place.
 *
 * Every element is one float64 sum over k in increasing order, started from 0, then stored into C
 * or added to it. Two implementations give those same bits:
 * - tiles of enough work go through the WebAssembly SIMD macro-kernel of the f32 GEMM
 *   (../gemm_wasm.ts; its own instance): A and B are packed into its memory in blocks, the k
 *   blocks carry their sums in its f64 accumulator block, and C gets the finished sums; ~3x the
 *   JavaScript kernel on these sizes despite the packing;
 * - the rest (and runtimes without WebAssembly SIMD) run the JavaScript kernel below.
 */
import { instantiateMacroKernel, WASM_MR, WASM_NR } from '../gemm_wasm.js';

/** Below this many multiply-adds the packing costs more than the SIMD kernel saves. */
const WASM_MIN_WORK = 4096;

export function gemm(
  M: number, N: number, K: number,
  A: Float64Array, ao: number, lda: number,
  B: Float64Array, bo: number, ldb: number,
  C: Float64Array, co: number, ldc: number,
  accumulate: boolean,
): void {
  const wasm = state.wasm;
  if (wasm !== null && M * N * K >= WASM_MIN_WORK && M >= 2 && N >= 2) {
    wasm(M, N, K, A, ao, lda, B, bo, ldb, C, co, ldc, accumulate);
  } else {
    gemmJs(M, N, K, A, ao, lda, B, bo, ldb, C, co, ldc, accumulate);
  }
}

/**
 * The JavaScript kernel. Register-blocked 2 x 4: each k step loads 2 values of A and 4 of B for 8
 * multiply-adds kept in locals (V8 holds doubles in XMM registers; 8 accumulators do not spill).
 * Edges fall back to plain loops. `| 0` on index arithmetic lets V8 drop overflow checks.
 */
export function gemmJs(
  M: number, N: number, K: number,
  A: Float64Array, ao: number, lda: number,
  B: Float64Array, bo: number, ldb: number,
  C: Float64Array, co: number, ldc: number,
  accumulate: boolean,
): void {
  const M2 = M - (M % 2);
  const N4 = N - (N % 4);
  for (let i = 0; i < M2; i += 2) {
    const a0 = (ao + i * lda) | 0;
    const a1 = (a0 + lda) | 0;
    const c0 = (co + i * ldc) | 0;
    const c1 = (c0 + ldc) | 0;
    for (let j = 0; j < N4; j += 4) {
      let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
      let bk = (bo + j) | 0;
      for (let k = 0; k < K; k++) {
        const x0 = A[a0 + k]!;
        const x1 = A[a1 + k]!;
        const y0 = B[bk]!;
        const y1 = B[bk + 1]!;
        const y2 = B[bk + 2]!;
        const y3 = B[bk + 3]!;
        s00 += x0 * y0; s01 += x0 * y1; s02 += x0 * y2; s03 += x0 * y3;
        s10 += x1 * y0; s11 += x1 * y1; s12 += x1 * y2; s13 += x1 * y3;
        bk = (bk + ldb) | 0;
      }
      const d0 = (c0 + j) | 0;
      const d1 = (c1 + j) | 0;
      if (accumulate) {
        C[d0] += s00; C[d0 + 1] += s01; C[d0 + 2] += s02; C[d0 + 3] += s03;
        C[d1] += s10; C[d1 + 1] += s11; C[d1 + 2] += s12; C[d1 + 3] += s13;
      } else {
        C[d0] = s00; C[d0 + 1] = s01; C[d0 + 2] = s02; C[d0 + 3] = s03;
        C[d1] = s10; C[d1 + 1] = s11; C[d1 + 2] = s12; C[d1 + 3] = s13;
      }
    }
    for (let j = N4; j < N; j++) {
      let s0 = 0;
      let s1 = 0;
      let bk = (bo + j) | 0;
      for (let k = 0; k < K; k++) {
        const y = B[bk]!;
        s0 += A[a0 + k]! * y;
        s1 += A[a1 + k]! * y;
        bk = (bk + ldb) | 0;
      }
      if (accumulate) {
        C[c0 + j] += s0;
        C[c1 + j] += s1;
      } else {
        C[c0 + j] = s0;
        C[c1 + j] = s1;
      }
    }
  }
  if (M2 < M) {
    const a0 = (ao + M2 * lda) | 0;
    const c0 = (co + M2 * ldc) | 0;
    for (let j = 0; j < N; j++) {
      let s = 0;
      let bk = (bo + j) | 0;
      for (let k = 0; k < K; k++) {
        s += A[a0 + k]! * B[bk]!;
        bk = (bk + ldb) | 0;
      }
      if (accumulate) C[c0 + j] += s;
      else C[c0 + j] = s;
    }
  }
}

/** dst[c, r] = src[r, c] for an R x Cc block (leading dims given): a transposed copy. */
export function transposeInto(
  R: number, Cc: number,
  src: Float64Array, so: number, lds: number,
  dst: Float64Array, dO: number, ldd: number,
): void {
  for (let r = 0; r < R; r++) {
    const s = so + r * lds;
    for (let c = 0; c < Cc; c++) dst[dO + c * ldd + r] = src[s + c]!;
  }
}

/** Builds the WebAssembly path (null without WebAssembly SIMD); block sizes cover one attention tile. */
function createWasmGemm(): typeof gemmJs | null {
  const MR = WASM_MR;
  const NR = WASM_NR;
  const MC = 128;
  const KC = 256;
  const NC = 256;
  const kernel = instantiateMacroKernel(MC, KC, NC);
  if (kernel === null) return null;
  const PACK_A = kernel.packA;
  const PACK_B = kernel.packB;
  const ACC = kernel.acc;
  const macro = kernel.macro;

  /** PACK_A = A[ic.., pc..] as MR-tall k-major micro-panels (rows past mc are zero). */
  function packA(A: Float64Array, ao: number, lda: number, mc: number, kc: number): void {
    const pa = PACK_A;
    let o = 0;
    for (let i0 = 0; i0 < mc; i0 += MR) {
      const rows = Math.min(MR, mc - i0);
      const r0 = ao + i0 * lda;
      if (rows === MR) {
        const r1 = r0 + lda, r2 = r1 + lda, r3 = r2 + lda;
        for (let k = 0; k < kc; k++) {
          pa[o] = A[r0 + k]!; pa[o + 1] = A[r1 + k]!; pa[o + 2] = A[r2 + k]!; pa[o + 3] = A[r3 + k]!;
          o += MR;
        }
      } else {
        for (let k = 0; k < kc; k++) {
          for (let i = 0; i < MR; i++) pa[o + i] = i < rows ? A[r0 + i * lda + k]! : 0;
          o += MR;
        }
      }
    }
  }

  /** PACK_B = B[pc.., jc..] as NR-wide k-major micro-panels (columns past nc are zero). */
  function packB(B: Float64Array, bo: number, ldb: number, kc: number, nc: number): void {
    const pb = PACK_B;
    let o = 0;
    for (let j0 = 0; j0 < nc; j0 += NR) {
      const cols = Math.min(NR, nc - j0);
      let src = bo + j0;
      if (cols === NR) {
        for (let k = 0; k < kc; k++) {
          pb[o] = B[src]!; pb[o + 1] = B[src + 1]!; pb[o + 2] = B[src + 2]!; pb[o + 3] = B[src + 3]!;
          o += NR;
          src += ldb;
        }
      } else {
        for (let k = 0; k < kc; k++) {
          for (let j = 0; j < NR; j++) pb[o + j] = j < cols ? B[src + j]! : 0;
          o += NR;
          src += ldb;
        }
      }
    }
  }

  return function gemmWasm(M, N, K, A, ao, lda, B, bo, ldb, C, co, ldc, accumulate): void {
    for (let ic = 0; ic < M; ic += MC) {
      const mc = Math.min(MC, M - ic);
      const mPad = Math.ceil(mc / MR) * MR;
      for (let jc = 0; jc < N; jc += NC) {
        const nc = Math.min(NC, N - jc);
        const nPad = Math.ceil(nc / NR) * NR;
        for (let pc = 0; pc < K; pc += KC) {
          const kc = Math.min(KC, K - pc);
          packA(A, ao + ic * lda + pc, lda, mc, kc);
          packB(B, bo + pc * ldb + jc, ldb, kc, nc);
          macro(mPad, nPad, kc, pc === 0 ? 1 : 0); // the first K block starts its sums from 0
        }
        const acc = ACC;
        for (let i = 0; i < mc; i++) {
          const src = i * NC;
          const dst = co + (ic + i) * ldc + jc;
          if (accumulate) for (let j = 0; j < nc; j++) C[dst + j] += acc[src + j]!;
          else for (let j = 0; j < nc; j++) C[dst + j] = acc[src + j]!;
        }
      }
    }
  };
}

/** The WebAssembly path in use (null: JavaScript only). */
const state: { wasm: typeof gemmJs | null } = { wasm: createWasmGemm() };

/** Whether this runtime has the WebAssembly path. */
export const WASM_GEMM64_AVAILABLE = state.wasm !== null;
