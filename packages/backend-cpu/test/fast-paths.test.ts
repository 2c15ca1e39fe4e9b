// The CPU backend's fast paths agree with plain formulas bit for bit:
// - gemmF32: every output element is fround(float64 sum over k in increasing order) — the blocked
//   path (K blocks carried in f64), the vector paths (M = 1, N = 1) and edge tiles alike — so a
//   row's bits do not depend on the batch it is computed in (MODEL_SPEC §7).
// - elementwise broadcasting (strided runs over merged dims): every binary op, `where` and
//   `broadcastTo` against an index computation written here, over random shapes with size-1 dims.
// Oracles are written in this file (float64 loops and explicit multi-index arithmetic).
import { describe, expect, it } from 'vitest';
import { argmax, broadcastTo, logsumexp, matmul, max, min, runOp1, sum, tensor, where, type DType } from '@ring-linear/core';
import { WASM_GEMM_AVAILABLE, gemmF32, useWasmGemm } from '../src/kernels/gemm.js';
import { WASM_GEMM64_AVAILABLE, gemm as gemm64, gemmJs as gemm64Js } from '../src/kernels/attention/gemm64.js';
import '../src/index.js';

const SEED = Number(process.env.TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));
console.log(`fast-paths.test.ts: TEST_SEED=${SEED}`);

/** mulberry32 */
function rng(seed: number): { u: () => number; int: (lo: number, hi: number) => number } {
  let s = seed >>> 0;
  const u = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { u, int: (lo, hi) => lo + Math.floor(u() * (hi - lo + 1)) };
}
const R = rng(SEED);

/** Nonzero values in ±[0.1, 2) (mixed signs, so sums cancel and the order of summation matters). */
function randomF32(n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (R.u() < 0.5 ? -1 : 1) * (0.1 + 1.9 * R.u());
  return out;
}

/** fround of the float64 sum over k = 0..K-1 in order: the value gemmF32 must produce exactly. */
function sequentialGemm(a: Float32Array, b: Float32Array, M: number, N: number, K: number, tA: boolean, tB: boolean): Float32Array {
  const c = new Float32Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += a[tA ? k * M + i : i * K + k]! * b[tB ? j * K + k : k * N + j]!;
      c[i * N + j] = s;
    }
  }
  return c;
}

function firstMismatch(got: ArrayLike<number>, want: ArrayLike<number>): string | null {
  for (let i = 0; i < want.length; i++) {
    if (!Object.is(got[i], want[i])) return `element ${i}: got ${got[i]}, want ${want[i]}`;
  }
  return null;
}

describe('gemmF32 sums every element in k order in float64 and rounds once', () => {
  // Around the blocks (micro-tile 3, K block 256, M block 192, N block 768) and the vector paths.
  const shapes: Array<[number, number, number]> = [
    [1, 1, 1], [1, 37, 700], [29, 1, 513], [2, 2, 257], [4, 5, 256], [7, 13, 600],
    [193, 5, 300], [5, 770, 259], [100, 31, 1025],
  ];
  // Both macro-kernels: WebAssembly SIMD (where the runtime has it) and JavaScript.
  const kernels = WASM_GEMM_AVAILABLE ? ['wasm', 'js'] : ['js'];
  if (!WASM_GEMM_AVAILABLE) console.log('  WebAssembly SIMD unavailable: only the JavaScript GEMM kernel is tested');
  for (const kernel of kernels) {
    for (const tA of [false, true]) {
      for (const tB of [false, true]) {
        it(`${kernel} kernel, ${tA ? 'A^T' : 'A'}·${tB ? 'B^T' : 'B'}: fixed and random shapes, bit for bit`, () => {
          expect(useWasmGemm(kernel === 'wasm')).toBe(kernel === 'wasm');
          try {
            const random: Array<[number, number, number]> = Array.from({ length: 4 }, () => [R.int(1, 60), R.int(1, 60), R.int(1, 600)]);
            for (const [M, N, K] of [...shapes, ...random]) {
              const a = randomF32(M * K);
              const b = randomF32(K * N);
              const c = new Float32Array(M * N).fill(NaN);
              gemmF32(a, b, c, M, N, K, tA, tB);
              expect(firstMismatch(c, sequentialGemm(a, b, M, N, K, tA, tB)), `M=${M} N=${N} K=${K}`).toBeNull();
            }
          } finally {
            useWasmGemm(true);
          }
        });
      }
    }
  }

  it('offsets address one matrix of a batch; the rest of C is untouched', () => {
    const M = 9, N = 10, K = 300;
    const a = randomF32(7 + M * K);
    const b = randomF32(5 + K * N);
    const c = new Float32Array(3 + M * N + 4).fill(-1.5);
    gemmF32(a, b, c, M, N, K, false, true, 7, 5, 3);
    expect(firstMismatch(c.subarray(3, 3 + M * N), sequentialGemm(a.subarray(7), b.subarray(5), M, N, K, false, true))).toBeNull();
    expect([...c.subarray(0, 3), ...c.subarray(3 + M * N)].every((v) => v === -1.5)).toBe(true);
  });

  it('matmul: a row alone has the bits it has inside a batch (x W^T and x W)', () => {
    for (const K of [5, 256, 300, 777]) {
      const M = R.int(2, 40);
      const N = R.int(2, 50);
      const x = randomF32(M * K);
      const w = randomF32(N * K);
      for (const transposeB of [true, false]) {
        const W = tensor(w, transposeB ? [N, K] : [K, N]);
        const all = matmul(tensor(x, [M, K]), W, { transposeB }).dataSync();
        const r = R.int(0, M - 1);
        const alone = matmul(tensor(x.slice(r * K, (r + 1) * K), [1, K]), W, { transposeB }).dataSync();
        expect(firstMismatch(alone, all.slice(r * N, (r + 1) * N)), `K=${K} M=${M} N=${N} row ${r}`).toBeNull();
      }
    }
  });
});

describe('attention float64 tile GEMM (both paths) sums in k order', () => {
  it('C (+)= A B with leading dims and offsets, bit for bit, WebAssembly and JavaScript paths', () => {
    if (!WASM_GEMM64_AVAILABLE) console.log('  WebAssembly SIMD unavailable: only the JavaScript path runs');
    const sizes: Array<[number, number, number]> = [[64, 32, 32], [33, 65, 7], [2, 2, 1025], [130, 260, 300], [5, 3, 2], [1, 40, 200]];
    for (const [M, N, K] of [...sizes, [R.int(2, 90), R.int(2, 90), R.int(1, 300)] as [number, number, number]]) {
      const lda = K + R.int(0, 3);
      const ldb = N + R.int(0, 3);
      const ldc = N + R.int(0, 3);
      const A = Float64Array.from(randomF32(5 + M * lda));
      const B = Float64Array.from(randomF32(3 + K * ldb));
      const C0 = Float64Array.from(randomF32(2 + M * ldc));
      for (const accumulate of [false, true]) {
        const want = Float64Array.from(C0);
        for (let i = 0; i < M; i++) {
          for (let j = 0; j < N; j++) {
            let s = 0;
            for (let k = 0; k < K; k++) s += A[5 + i * lda + k]! * B[3 + k * ldb + j]!;
            want[2 + i * ldc + j] = accumulate ? want[2 + i * ldc + j]! + s : s;
          }
        }
        for (const f of [gemm64, gemm64Js]) {
          const C = Float64Array.from(C0);
          f(M, N, K, A, 5, lda, B, 3, ldb, C, 2, ldc, accumulate);
          expect(firstMismatch(C, want), `${f.name} M=${M} N=${N} K=${K} accumulate=${accumulate}`).toBeNull();
        }
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Broadcasting

/** Flat index into `shape` (right-aligned against the output) of output multi-index `idx`. */
function sourceIndex(shape: readonly number[], outShape: readonly number[], flat: number): number {
  const rank = outShape.length;
  let rem = flat;
  const idx = new Array<number>(rank);
  for (let d = rank - 1; d >= 0; d--) {
    idx[d] = rem % outShape[d]!;
    rem = Math.floor(rem / outShape[d]!);
  }
  let off = 0;
  for (let i = 0; i < shape.length; i++) {
    const d = rank - shape.length + i;
    off = off * shape[i]! + (shape[i] === 1 ? 0 : idx[d]!);
  }
  return off;
}

/** A random output shape and an operand shape that broadcasts to it (dropped leading dims, 1s). */
function randomShapes(): { out: number[]; a: number[]; b: number[] } {
  const rank = R.int(0, 4);
  const out = Array.from({ length: rank }, () => (R.u() < 0.2 ? 1 : R.int(2, 7)));
  const operand = () => {
    const keep = R.int(0, rank);
    return out.slice(rank - keep).map((d) => (R.u() < 0.4 ? 1 : d));
  };
  // One operand must reach every dim of size > 1 for `out` to be the broadcast shape.
  const a = operand();
  const b = out.map((d, i) => (i >= rank - a.length && a[i - (rank - a.length)] === d ? (R.u() < 0.5 ? 1 : d) : d));
  return R.u() < 0.5 ? { out, a, b } : { out, a: b, b: a };
}

const sizeOf = (s: readonly number[]) => s.reduce((p, d) => p * d, 1);

describe('broadcasting fast paths agree with explicit index arithmetic', () => {
  const F32_OPS: Record<string, (x: number, y: number) => number> = {
    add: (x, y) => x + y,
    sub: (x, y) => x - y,
    mul: (x, y) => x * y,
    div: (x, y) => x / y,
    maximum: (x, y) => Math.max(x, y),
    minimum: (x, y) => Math.min(x, y),
    pow: (x, y) => Math.pow(Math.abs(x), y),
  };

  it('f32 arithmetic, 60 random shape pairs, bit for bit', () => {
    for (let t = 0; t < 60; t++) {
      const { out, a, b } = randomShapes();
      const av = randomF32(sizeOf(a));
      const bv = randomF32(sizeOf(b));
      for (const [op, f] of Object.entries(F32_OPS)) {
        const x = op === 'pow' ? av.map(Math.abs) : av;
        const got = runOp1(op, [tensor(x, a), tensor(bv, b)]);
        expect(got.shape).toEqual(out);
        const want = new Float32Array(sizeOf(out));
        for (let i = 0; i < want.length; i++) want[i] = f(x[sourceIndex(a, out, i)]!, bv[sourceIndex(b, out, i)]!);
        expect(firstMismatch(got.dataSync(), want), `${op} ${JSON.stringify(a)} ${JSON.stringify(b)}`).toBeNull();
      }
    }
  });

  it('i32 (integer mul/div), bf16 (rounded once) and comparisons', () => {
    for (let t = 0; t < 30; t++) {
      const { out, a, b } = randomShapes();
      const ai = Int32Array.from({ length: sizeOf(a) }, () => R.int(-50000, 50000));
      const bi = Int32Array.from({ length: sizeOf(b) }, () => R.int(1, 70000) * (R.u() < 0.5 ? -1 : 1));
      const n = sizeOf(out);
      const mulI = runOp1('mul', [tensor(ai, a, 'i32'), tensor(bi, b, 'i32')]).dataSync();
      const divI = runOp1('div', [tensor(ai, a, 'i32'), tensor(bi, b, 'i32')]).dataSync();
      const less = runOp1('less', [tensor(ai, a, 'i32'), tensor(bi, b, 'i32')]).dataSync();
      for (let i = 0; i < n; i++) {
        const x = ai[sourceIndex(a, out, i)]!;
        const y = bi[sourceIndex(b, out, i)]!;
        expect(mulI[i]).toBe(Math.imul(x, y));
        expect(divI[i]).toBe(Math.trunc(x / y) | 0);
        expect(less[i]).toBe(x < y ? 1 : 0);
      }
      const af = randomF32(sizeOf(a));
      const bf = randomF32(sizeOf(b));
      const dt: DType = 'bf16';
      const ta = tensor(af, a, dt);
      const tb = tensor(bf, b, dt);
      const got = runOp1('add', [ta, tb]).dataSync();
      const ad = ta.dataSync();
      const bd = tb.dataSync();
      // bf16 of the f32 sum: expected from a bf16 tensor of the f32 values computed here.
      const sums = new Float32Array(n);
      for (let i = 0; i < n; i++) sums[i] = ad[sourceIndex(a, out, i)]! + bd[sourceIndex(b, out, i)]!;
      expect(firstMismatch(got, tensor(sums, out, dt).dataSync())).toBeNull();
    }
  });

  it('where and broadcastTo', () => {
    for (let t = 0; t < 40; t++) {
      const { out, a, b } = randomShapes();
      const cShape = out.map((d) => (R.u() < 0.3 ? 1 : d)).slice(R.int(0, out.length));
      const cv = Uint8Array.from({ length: sizeOf(cShape) }, () => (R.u() < 0.5 ? 1 : 0));
      const av = randomF32(sizeOf(a));
      const bv = randomF32(sizeOf(b));
      const got = where(tensor(cv, cShape, 'bool'), tensor(av, a), tensor(bv, b));
      expect(got.shape).toEqual(out);
      const g = got.dataSync();
      for (let i = 0; i < g.length; i++) {
        const want = cv[sourceIndex(cShape, out, i)] ? av[sourceIndex(a, out, i)] : bv[sourceIndex(b, out, i)];
        expect(g[i], `where ${JSON.stringify([cShape, a, b])} at ${i}`).toBe(want);
      }
      const bt = broadcastTo(tensor(av, a), out).dataSync();
      for (let i = 0; i < bt.length; i++) expect(bt[i]).toBe(av[sourceIndex(a, out, i)]);
    }
  });
});

describe('reductions over consecutive and scattered axes agree with a flat-order float64 loop', () => {
  it('sum, max, min, logsumexp (all axis subsets of random shapes) and argmax along each axis, bit for bit', () => {
    for (let t = 0; t < 12; t++) {
      const rank = R.int(1, 4);
      const shape = Array.from({ length: rank }, () => R.int(1, 6));
      const n = sizeOf(shape);
      const xv = randomF32(n);
      if (t % 3 === 0 && n > 2) xv[R.int(0, n - 1)] = NaN; // a NaN wins max/min/argmax in its slice
      const x = tensor(xv, shape);
      for (let mask = 1; mask < 1 << rank; mask++) {
        const axes = shape.map((_, d) => d).filter((d) => (mask >> d) & 1);
        const outShape = shape.filter((_, d) => !axes.includes(d));
        const m = sizeOf(outShape);
        // Output index of each input element, visiting inputs in flat order.
        const outIndex = (flat: number) => {
          let rem = flat;
          const idx = new Array<number>(rank);
          for (let d = rank - 1; d >= 0; d--) {
            idx[d] = rem % shape[d]!;
            rem = Math.floor(rem / shape[d]!);
          }
          return idx.reduce((o, v, d) => (axes.includes(d) ? o : o * shape[d]! + v), 0);
        };
        const acc = new Float64Array(m);
        const hi = new Float64Array(m).fill(-Infinity);
        const lo = new Float64Array(m).fill(Infinity);
        for (let i = 0; i < n; i++) {
          const o = outIndex(i);
          const v = xv[i]!;
          acc[o] += v;
          if (v > hi[o]! || v !== v) hi[o] = v;
          if (v < lo[o]! || v !== v) lo[o] = v;
        }
        const lse = new Float64Array(m);
        for (let i = 0; i < n; i++) {
          const o = outIndex(i);
          if (Number.isFinite(hi[o]!)) lse[o] += Math.exp(xv[i]! - hi[o]!);
        }
        const want = (arr: Float64Array) => Float32Array.from(arr);
        const tag = `shape ${JSON.stringify(shape)} axes ${JSON.stringify(axes)}`;
        expect(firstMismatch(sum(x, axes).dataSync(), want(acc)), `sum ${tag}`).toBeNull();
        expect(firstMismatch(max(x, axes).dataSync(), want(hi)), `max ${tag}`).toBeNull();
        expect(firstMismatch(min(x, axes).dataSync(), want(lo)), `min ${tag}`).toBeNull();
        const got = logsumexp(x, axes).dataSync();
        for (let o = 0; o < m; o++) {
          const w = Number.isFinite(hi[o]!) ? Math.fround(hi[o]! + Math.log(lse[o]!)) : hi[o]!;
          expect(Object.is(got[o], w) || (Number.isNaN(got[o]) && Number.isNaN(w)), `logsumexp ${tag} at ${o}: ${got[o]} vs ${w}`).toBe(true);
        }
      }
      for (let axis = 0; axis < rank; axis++) {
        const got = argmax(x, axis).dataSync();
        const stride = shape.slice(axis + 1).reduce((p, d) => p * d, 1);
        const len = shape[axis]!;
        for (let o = 0; o < got.length; o++) {
          const outer = Math.floor(o / stride);
          const inner = o % stride;
          let best = 0;
          for (let r = 1; r < len; r++) {
            const b = xv[(outer * len + best) * stride + inner]!;
            const v = xv[(outer * len + r) * stride + inner]!;
            if (b !== b) break;
            if (v !== v || v > b) best = r;
          }
          expect(got[o], `argmax shape ${JSON.stringify(shape)} axis ${axis} at ${o}`).toBe(best);
        }
      }
    }
  });
});
