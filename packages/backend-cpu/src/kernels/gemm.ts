/**
 * Single-matrix f32 GEMM: C[M,N] = op(A)[M,K] · op(B)[K,N], op = optional transpose.
 *
 * Cache-blocked in the Goto/BLIS style:
 *   for ic over M in MC rows:
 *     for jc over N in NC columns:          ACC = 0  (MC x NC f64 partial sums of C's block)
 *       for pc over K in KC steps:
 *         pack B[pc:pc+kc, jc:jc+nc] into NR-wide micro-panels (k-major)   B panel ~ L2/L3
 *         pack A[ic:ic+mc, pc:pc+kc] into MR-tall micro-panels (k-major)   A block ~ L2
 *         for each NR strip, for each MR strip: MR x NR micro-kernel on ACC   micro-panels ~ L1
 *       C block = ACC rounded to f32
 * Transposes are absorbed by the packing routines (no separate transpose pass). Packed panels are
 * zero-padded to whole MR/NR strips and ACC has room for whole tiles, so the micro-kernel has no
 * edge branches; only the valid part of ACC is stored to C.
 *
 * Numerics: every output element is ONE float64 sum over k = 0..K-1 in increasing order (products
 * of f32 values are exact in f64), rounded once to f32. The K blocks carry their partial sums in an
 * f64 accumulator block (ACC) from one block to the next, so blocking never changes the order, and
 * the vector paths (M = 1, N = 1) sum in the same order: a row's result has the same bits whatever
 * M is and wherever the row sits — alone in a decode step or in a training batch (the batch
 * invariance MODEL_SPEC §7 asks for). Because of that the blocks loop rows outermost (ic, then jc,
 * then pc) and B panels are re-packed per row block (a few % of the work).
 *
 * The macro-kernel (the tile loops over a packed block) is WebAssembly with 128-bit SIMD, two
 * float64 lanes (gemm_wasm.ts: 4x4 tiles, ~3x the scalar JavaScript kernel), where the runtime has
 * it, else JavaScript; both add the same float64 products in the same order, so the bits do not
 * depend on which one ran. The JavaScript kernel computes a 4x4 tile as two 2x4 halves: V8 keeps
 * doubles in 16 XMM registers (one is its scratch), so 16 accumulators spill (3x3, 2x3 and 2x4
 * tiles measured ~15-20% faster than 4x4; docs/benchmarks.md). Each typed-array load costs a
 * bounds check, so the packing buffers are constants of fixed size (see createBlockedGemm):
 * TurboFan then folds their base address and length into the code (no map checks or length
 * reloads in the inner loop), which measured ~25% faster than passing them as arguments.
 * `| 0` on index arithmetic lets V8 drop overflow checks. Packing into Float64Array (not f32)
 * saves an f32->f64 conversion per load in the inner loop.
 */
import { instantiateMacroKernel } from './gemm_wasm.js';


/**
 * C = op(A) op(B) for row-major f32 matrices. op(A) is [M, K] (A stored [K, M] when transposeA),
 * op(B) is [K, N] (B stored [N, K] when transposeB). C is overwritten. Optional element offsets
 * let a caller address one matrix of a batch without making subarray views.
 */
export function gemmF32(
  a: Float32Array, b: Float32Array, c: Float32Array,
  M: number, N: number, K: number, transposeA: boolean, transposeB: boolean,
  aOffset = 0, bOffset = 0, cOffset = 0,
): void {
  if (M === 0 || N === 0) return;
  if (K === 0) {
    c.fill(0, cOffset, cOffset + M * N);
    return;
  }
  if (M === 1) {
    // Row vector times matrix: op(A) is a length-K vector whatever transposeA says.
    vecMat(a, aOffset, b, bOffset, c, cOffset, N, K, transposeB);
    return;
  }
  if (N === 1) {
    // Matrix times column vector: C[i] = sum_k op(A)[i,k] b[k]; as above with the roles swapped
    // (C^T = op(B)^T op(A)^T, and op(A)^T is A stored [K, M] exactly when transposeA is false).
    vecMat(b, bOffset, a, aOffset, c, cOffset, M, K, !transposeA);
    return;
  }
  blockedGemm(a, b, c, M, N, K, transposeA, transposeB, aOffset, bOffset, cOffset);
}

/**
 * Builds the blocked GEMM. Everything the inner loops touch (block sizes, packing buffers) is a
 * `const` of this closure rather than of the module: bundlers (esbuild, hence tsup) rewrite
 * top-level `const` into `var`, which TurboFan no longer treats as a constant, and that measured
 * ~2x slower. Closure constants of a function created once are folded in every build.
 */
function createBlockedGemm() {
  /** Micro-tile rows and columns (register block); the packers and both kernels are written for 4. */
  const MR = 4;
  const NR = 4;
  /** K block: one A micro-panel plus one B micro-panel (KC x 4 doubles = 8 KiB each) stay in L1. */
  const KC = 256;
  /**
   * M block: the packed A block (MC x KC doubles = 384 KiB) stays in L2. B panels are re-packed
   * once per M block, so a taller block packs less: 192 measured even with 96 on the 512 KiB-L2
   * EPYC at K = 512-1024 (96 lost 5-8% to the re-packing).
   */
  const MC = 192;
  /** N block: the packed B panel (KC x NC doubles = 1.5 MiB) is streamed from L2/L3. */
  const NC = 768;

  // The packed panels and the accumulator block live in the WebAssembly kernel's memory when it is
  // available (gemm_wasm.ts), else in plain arrays for the JavaScript kernel. Same layout either way.
  const WASM = instantiateMacroKernel(MC, KC, NC);
  const PACK_A = WASM ? WASM.packA : new Float64Array(MC * KC);
  const PACK_B = WASM ? WASM.packB : new Float64Array(KC * NC);
  /** f64 partial sums of the MC x NC block of C being computed (row stride NC). */
  const ACC = WASM ? WASM.acc : new Float64Array(MC * NC);
  const WASM_MACRO = WASM ? WASM.macro : null;
  const state = { useWasm: WASM !== null };

  function blocked(
    a: Float32Array, b: Float32Array, c: Float32Array,
    M: number, N: number, K: number, transposeA: boolean, transposeB: boolean,
    aOffset: number, bOffset: number, cOffset: number,
  ): void {
    const wasmMacro = state.useWasm ? WASM_MACRO : null;
    for (let ic = 0; ic < M; ic += MC) {
      const mc = Math.min(MC, M - ic);
      for (let jc = 0; jc < N; jc += NC) {
        const nc = Math.min(NC, N - jc);
        // Whole MR x NR tiles, edges included (the packers zero-pad).
        const mPad = Math.ceil(mc / MR) * MR;
        const nPad = Math.ceil(nc / NR) * NR;
        // The WebAssembly kernel starts the first K block's sums from 0 itself; the JavaScript
        // kernel reads ACC, so it is zeroed first.
        if (!wasmMacro) for (let i = 0; i < mPad; i++) ACC.fill(0, i * NC, i * NC + nPad);
        for (let pc = 0; pc < K; pc += KC) {
          const kc = Math.min(KC, K - pc);
          if (transposeB) packBTransposed(b, bOffset, K, pc, kc, jc, nc);
          else packB(b, bOffset, N, pc, kc, jc, nc);
          if (transposeA) packATransposed(a, aOffset, M, ic, mc, pc, kc);
          else packA(a, aOffset, K, ic, mc, pc, kc);
          if (wasmMacro) wasmMacro(mPad, nPad, kc, pc === 0 ? 1 : 0);
          else macroKernel(mPad, nPad, kc);
        }
        // One rounding to f32 per element.
        const acc = ACC;
        for (let i = 0; i < mc; i++) {
          const src = i * NC;
          const dst = cOffset + (ic + i) * N + jc;
          for (let j = 0; j < nc; j++) c[dst + j] = acc[src + j]!;
        }
      }
    }
  }

  /**
   * The JavaScript macro-kernel (no WebAssembly SIMD): every MR x NR tile of the packed block, as
   * two 2 x 4 halves (8 accumulators: V8 keeps them in registers; a whole 4 x 4 tile spills).
   * Splitting a tile changes which elements are computed together, never an element's order.
   */
  function macroKernel(mc: number, nc: number, kc: number): void {
    const panel = kc * MR; // = kc * NR
    for (let j = 0, bo = 0; j < nc; j += NR, bo += panel) {
      for (let i = 0, ao = 0; i < mc; i += MR, ao += panel) {
        halfTile(ao, bo, kc, i * NC + j);
        halfTile(ao + 2, bo, kc, (i + 2) * NC + j);
      }
    }
  }

  /**
   * ACC[co.., 2 x 4 with row stride NC] += rows (ao, ao + 1) of a PACK_A micro-panel · a PACK_B
   * micro-panel, both k-major (PACK_A[ao + 4k + i], PACK_B[bo + 4k + j]). The accumulators start
   * from ACC, so each element's sum continues in k order across K blocks.
   */
  function halfTile(ao: number, bo: number, kc: number, co: number): void {
    const pa = PACK_A;
    const pb = PACK_B;
    const acc = ACC;
    const c1 = (co + NC) | 0;
    let c00 = acc[co]!, c01 = acc[co + 1]!, c02 = acc[co + 2]!, c03 = acc[co + 3]!;
    let c10 = acc[c1]!, c11 = acc[c1 + 1]!, c12 = acc[c1 + 2]!, c13 = acc[c1 + 3]!;
    const bEnd = (bo + kc * NR) | 0;
    while (bo < bEnd) {
      const a0 = pa[ao]!, a1 = pa[(ao + 1) | 0]!;
      const b0 = pb[bo]!, b1 = pb[(bo + 1) | 0]!, b2 = pb[(bo + 2) | 0]!, b3 = pb[(bo + 3) | 0]!;
      c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
      c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
      ao = (ao + MR) | 0;
      bo = (bo + NR) | 0;
    }
    acc[co] = c00; acc[co + 1] = c01; acc[co + 2] = c02; acc[co + 3] = c03;
    acc[c1] = c10; acc[c1 + 1] = c11; acc[c1 + 2] = c12; acc[c1 + 3] = c13;
  }

  // ---------------------------------------------------------------------------------------------
  // Packing. PACK_A holds ceil(mc/MR) micro-panels, panel p at p*kc*MR with element (k, i) at
  // k*MR + i; PACK_B holds ceil(nc/NR) micro-panels, panel q at q*kc*NR with (k, j) at k*NR + j.
  // Rows/columns past the matrix are zero.

  /** A stored [M, K]: op(A)[i, k] = a[i*K + k]. */
  function packA(a: Float32Array, off: number, K: number, ic: number, mc: number, pc: number, kc: number): void {
    const pa = PACK_A;
    let o = 0;
    for (let i0 = 0; i0 < mc; i0 += MR) {
      const rows = Math.min(MR, mc - i0);
      const r0 = off + (ic + i0) * K + pc;
      if (rows === MR) {
        const r1 = r0 + K, r2 = r1 + K, r3 = r2 + K;
        for (let k = 0; k < kc; k++) {
          pa[o] = a[r0 + k]!; pa[o + 1] = a[r1 + k]!; pa[o + 2] = a[r2 + k]!; pa[o + 3] = a[r3 + k]!;
          o += MR;
        }
      } else {
        for (let k = 0; k < kc; k++) {
          for (let i = 0; i < MR; i++) pa[o + i] = i < rows ? a[r0 + i * K + k]! : 0;
          o += MR;
        }
      }
    }
  }

  /** A stored [K, M]: op(A)[i, k] = a[k*M + i]; MR consecutive values of a row form one k-step. */
  function packATransposed(a: Float32Array, off: number, M: number, ic: number, mc: number, pc: number, kc: number): void {
    const pa = PACK_A;
    let o = 0;
    for (let i0 = 0; i0 < mc; i0 += MR) {
      const rows = Math.min(MR, mc - i0);
      let src = off + pc * M + ic + i0;
      if (rows === MR) {
        for (let k = 0; k < kc; k++) {
          pa[o] = a[src]!; pa[o + 1] = a[src + 1]!; pa[o + 2] = a[src + 2]!; pa[o + 3] = a[src + 3]!;
          o += MR;
          src += M;
        }
      } else {
        for (let k = 0; k < kc; k++) {
          for (let i = 0; i < MR; i++) pa[o + i] = i < rows ? a[src + i]! : 0;
          o += MR;
          src += M;
        }
      }
    }
  }

  /** B stored [K, N]: op(B)[k, j] = b[k*N + j]. */
  function packB(b: Float32Array, off: number, N: number, pc: number, kc: number, jc: number, nc: number): void {
    const pb = PACK_B;
    let o = 0;
    for (let j0 = 0; j0 < nc; j0 += NR) {
      const cols = Math.min(NR, nc - j0);
      let src = off + pc * N + jc + j0;
      if (cols === NR) {
        for (let k = 0; k < kc; k++) {
          pb[o] = b[src]!; pb[o + 1] = b[src + 1]!; pb[o + 2] = b[src + 2]!; pb[o + 3] = b[src + 3]!;
          o += NR;
          src += N;
        }
      } else {
        for (let k = 0; k < kc; k++) {
          for (let j = 0; j < NR; j++) pb[o + j] = j < cols ? b[src + j]! : 0;
          o += NR;
          src += N;
        }
      }
    }
  }

  /** B stored [N, K]: op(B)[k, j] = b[j*K + k]. */
  function packBTransposed(b: Float32Array, off: number, K: number, pc: number, kc: number, jc: number, nc: number): void {
    const pb = PACK_B;
    let o = 0;
    for (let j0 = 0; j0 < nc; j0 += NR) {
      const cols = Math.min(NR, nc - j0);
      const r0 = off + (jc + j0) * K + pc;
      if (cols === NR) {
        const r1 = r0 + K, r2 = r1 + K, r3 = r2 + K;
        for (let k = 0; k < kc; k++) {
          pb[o] = b[r0 + k]!; pb[o + 1] = b[r1 + k]!; pb[o + 2] = b[r2 + k]!; pb[o + 3] = b[r3 + k]!;
          o += NR;
        }
      } else {
        for (let k = 0; k < kc; k++) {
          for (let j = 0; j < NR; j++) pb[o + j] = j < cols ? b[r0 + j * K + k]! : 0;
          o += NR;
        }
      }
    }
  }

  /** Switches between the WebAssembly and the JavaScript macro-kernel (tests run both). */
  function setWasm(enabled: boolean): boolean {
    state.useWasm = enabled && WASM !== null;
    return state.useWasm;
  }

  return { blocked, setWasm, hasWasm: WASM !== null };
}

const BLOCKED = createBlockedGemm();
const blockedGemm = BLOCKED.blocked;

/**
 * Chooses the blocked GEMM's macro-kernel: WebAssembly SIMD (the default where available) or
 * JavaScript. Both give the same bits; this exists so tests can check both. Returns whether the
 * WebAssembly kernel is now in use (false where it is unavailable).
 */
export function useWasmGemm(enabled: boolean): boolean {
  return BLOCKED.setWasm(enabled);
}

/** Whether this runtime has the WebAssembly SIMD macro-kernel. */
export const WASM_GEMM_AVAILABLE = BLOCKED.hasWasm;


// ---------------------------------------------------------------------------------------------
// Vector x matrix (M = 1, and N = 1 by symmetry): nothing to reuse, so no packing; each element of
// the matrix is read once, in storage order.

/** Row accumulator for vecMat, grown on demand and reused across calls. */
let rowAccumulator = new Float64Array(0);

/**
 * y[n] = sum_k x[k] · W(k, n) for n < N, W stored [K, N] or [N, K] (wIsNK). Each y[n] is one f64
 * sum in k order rounded once to f32: the same bits as the blocked path gives that row.
 */
function vecMat(
  x: Float32Array, xOff: number, w: Float32Array, wOff: number, y: Float32Array, yOff: number,
  N: number, K: number, wIsNK: boolean,
): void {
  if (wIsNK) {
    // y[n] is a dot product of x with the contiguous row n of W, summed in k order (as the blocked
    // path); eight (then four) rows at a time give independent sums for the CPU to overlap and
    // share each load of x (8 rows measured 1.2-1.3x over 4 on the EPYC).
    let n = 0;
    for (; n + 8 <= N; n += 8) {
      const r0 = wOff + n * K, r1 = r0 + K, r2 = r1 + K, r3 = r2 + K;
      const r4 = r3 + K, r5 = r4 + K, r6 = r5 + K, r7 = r6 + K;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
      for (let k = 0; k < K; k++) {
        const xk = x[xOff + k]!;
        s0 += xk * w[r0 + k]!;
        s1 += xk * w[r1 + k]!;
        s2 += xk * w[r2 + k]!;
        s3 += xk * w[r3 + k]!;
        s4 += xk * w[r4 + k]!;
        s5 += xk * w[r5 + k]!;
        s6 += xk * w[r6 + k]!;
        s7 += xk * w[r7 + k]!;
      }
      y[yOff + n] = s0; y[yOff + n + 1] = s1; y[yOff + n + 2] = s2; y[yOff + n + 3] = s3;
      y[yOff + n + 4] = s4; y[yOff + n + 5] = s5; y[yOff + n + 6] = s6; y[yOff + n + 7] = s7;
    }
    for (; n + 4 <= N; n += 4) {
      const r0 = wOff + n * K, r1 = r0 + K, r2 = r1 + K, r3 = r2 + K;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let k = 0; k < K; k++) {
        const xk = x[xOff + k]!;
        s0 += xk * w[r0 + k]!;
        s1 += xk * w[r1 + k]!;
        s2 += xk * w[r2 + k]!;
        s3 += xk * w[r3 + k]!;
      }
      y[yOff + n] = s0; y[yOff + n + 1] = s1; y[yOff + n + 2] = s2; y[yOff + n + 3] = s3;
    }
    for (; n < N; n++) {
      const row = wOff + n * K;
      let s = 0;
      for (let k = 0; k < K; k++) s += x[xOff + k]! * w[row + k]!;
      y[yOff + n] = s;
    }
    return;
  }
  // W stored [K, N]: y += x[k] · (row k of W), streaming W row by row (a column walk would hit one
  // cache set per row when N is a power of two).
  if (rowAccumulator.length < N) rowAccumulator = new Float64Array(N);
  const acc = rowAccumulator;
  acc.fill(0, 0, N);
  for (let k = 0; k < K; k++) {
    const xk = x[xOff + k]!;
    const row = wOff + k * N;
    for (let n = 0; n < N; n++) acc[n] += xk * w[row + n]!;
  }
  for (let n = 0; n < N; n++) y[yOff + n] = acc[n]!;
}
