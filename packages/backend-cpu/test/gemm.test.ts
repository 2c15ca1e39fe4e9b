// The blocked f32 GEMM (src/kernels/gemm.ts), directly and through the `matmul` op.
//
// Oracle: a float64 triple loop written here over the exact f32 input values.
// Error bound (stated and asserted per output element):
//   |C_ij - ref_ij| <= 8 · 2^-24 · sum_k |op(A)_ik · op(B)_kj|      (K <= 1024 in these tests)
// Why it holds: f32 x f32 products are exact in f64, the kernel sums each 256-long K block in f64 and
// rounds into the f32 output once per block, so the error is at most ceil(K/256) f32 roundings of the
// running |sum| (3 for the K used here) plus O(K · 2^-53) from the f64 sums; plain f32 accumulation
// would allow K · 2^-24. Why it can fail: dropping or repeating one k term, a wrong transpose index
// or a polluted edge tile is an error of about |a_ik b_kj| ~ sum/K >= 1e-3 · sum, far above 8 · 2^-24.
import { describe, expect, it } from 'vitest';
import { matmul, tensor, type Tensor } from '@ring-linear/core';
import { gemmF32 } from '../src/kernels/gemm.js';
import '../src/index.js';

const SEED = Number(process.env.TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));
console.log(`gemm.test.ts: TEST_SEED=${SEED}`);

const U32 = 2 ** -24;
const BOUND = 8 * U32;

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

/** Values in ±[0.1, 2) with random sign: never zero, mixed magnitudes, so cancellation occurs. */
function randomF32(n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (R.u() < 0.5 ? -1 : 1) * (0.1 + 1.9 * R.u());
  return out;
}

interface Reference {
  value: Float64Array;
  /** sum_k |op(A)_ik op(B)_kj| per output, the scale of the error bound. */
  absSum: Float64Array;
}

/** float64 triple loop over op(A) [M,K] and op(B) [K,N] given by their stored layouts. */
function referenceGemm(
  a: ArrayLike<number>, b: ArrayLike<number>, M: number, N: number, K: number, tA: boolean, tB: boolean,
  aOff = 0, bOff = 0,
): Reference {
  const value = new Float64Array(M * N);
  const absSum = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      let sa = 0;
      for (let k = 0; k < K; k++) {
        const av = a[aOff + (tA ? k * M + i : i * K + k)]!;
        const bv = b[bOff + (tB ? j * K + k : k * N + j)]!;
        s += av * bv;
        sa += Math.abs(av * bv);
      }
      value[i * N + j] = s;
      absSum[i * N + j] = sa;
    }
  }
  return { value, absSum };
}

/** Largest |c - ref| / absSum over the outputs (in units of 2^-24), and the first violation. */
function check(c: ArrayLike<number>, ref: Reference, cOff = 0): { worstUlps: number; violation: string | null } {
  let worst = 0;
  let violation: string | null = null;
  for (let i = 0; i < ref.value.length; i++) {
    const err = Math.abs(c[cOff + i]! - ref.value[i]!);
    const scale = ref.absSum[i]!;
    const rel = scale > 0 ? err / scale : err;
    if (!(rel <= BOUND) && violation === null) violation = `element ${i}: got ${c[cOff + i]}, want ${ref.value[i]} (|err| ${err}, sum|ab| ${scale})`;
    if (rel > worst) worst = rel;
  }
  return { worstUlps: worst / U32, violation };
}

const COMBOS: Array<[boolean, boolean]> = [[false, false], [false, true], [true, false], [true, true]];
const name = (tA: boolean, tB: boolean) => `${tA ? 'A^T' : 'A'}·${tB ? 'B^T' : 'B'}`;

describe('gemmF32 vs a float64 triple loop', () => {
  // Sizes around the kernel's blocks: micro-tile 3, K block 256, M block 96, N block 768, and the
  // 63/64/65, 127/129 family; 1 exercises the vector paths.
  const shapes: Array<[number, number, number]> = [
    [1, 1, 1], [1, 7, 5], [6, 1, 9], [2, 2, 1], [3, 3, 3], [4, 5, 6], [5, 4, 3],
    [63, 64, 65], [65, 63, 64], [64, 65, 63], [127, 129, 33], [129, 31, 127],
    [95, 97, 255], [96, 10, 256], [97, 11, 257], [20, 769, 40], [33, 770, 17],
    [1, 300, 513], [300, 1, 513], [2, 300, 600], [200, 3, 300],
  ];
  for (const [tA, tB] of COMBOS) {
    it(`fixed edge shapes, ${name(tA, tB)}`, () => {
      let worst = 0;
      for (const [M, N, K] of shapes) {
        const a = randomF32(M * K);
        const b = randomF32(K * N);
        const c = new Float32Array(M * N).fill(NaN); // C is overwritten, never read
        gemmF32(a, b, c, M, N, K, tA, tB);
        const r = check(c, referenceGemm(a, b, M, N, K, tA, tB));
        expect(r.violation, `M=${M} N=${N} K=${K} ${name(tA, tB)}`).toBeNull();
        worst = Math.max(worst, r.worstUlps);
      }
      console.log(`  ${name(tA, tB)} fixed shapes: worst |err|/sum|ab| = ${worst.toFixed(3)} · 2^-24 (bound 8)`);
    });

    it(`random odd shapes, ${name(tA, tB)}`, () => {
      for (let t = 0; t < 12; t++) {
        const M = R.int(1, 140);
        const N = R.int(1, 140);
        const K = R.int(1, 300);
        const a = randomF32(M * K);
        const b = randomF32(K * N);
        const c = new Float32Array(M * N);
        gemmF32(a, b, c, M, N, K, tA, tB);
        expect(check(c, referenceGemm(a, b, M, N, K, tA, tB)).violation, `M=${M} N=${N} K=${K}`).toBeNull();
      }
    });
  }

  it('honours offsets and leaves the rest of C untouched', () => {
    const M = 7, N = 11, K = 13;
    for (const [tA, tB] of COMBOS) {
      const a = randomF32(5 + M * K + 3);
      const b = randomF32(9 + K * N + 2);
      const c = new Float32Array(4 + M * N + 6).fill(-123.5);
      gemmF32(a, b, c, M, N, K, tA, tB, 5, 9, 4);
      expect(check(c, referenceGemm(a, b, M, N, K, tA, tB, 5, 9), 4).violation).toBeNull();
      for (let i = 0; i < 4; i++) expect(c[i]).toBe(-123.5);
      for (let i = 4 + M * N; i < c.length; i++) expect(c[i]).toBe(-123.5);
    }
  });

  it('K = 0 gives zeros; M = 0 or N = 0 writes nothing', () => {
    const c = new Float32Array(6).fill(NaN);
    gemmF32(new Float32Array(0), new Float32Array(0), c, 2, 3, 0, false, false);
    expect(Array.from(c)).toEqual([0, 0, 0, 0, 0, 0]);
    const d = new Float32Array(3).fill(7);
    gemmF32(new Float32Array(0), new Float32Array(15), d, 0, 3, 5, false, false);
    gemmF32(new Float32Array(10), new Float32Array(0), d, 2, 0, 5, true, true);
    expect(Array.from(d)).toEqual([7, 7, 7]);
  });

  it('reuses its packing buffers: a small product after a large one is still exact', () => {
    const big = [200, 800, 300] as const; // crosses every block size
    const a1 = randomF32(big[0] * big[2]);
    const b1 = randomF32(big[2] * big[1]);
    gemmF32(a1, b1, new Float32Array(big[0] * big[1]), big[0], big[1], big[2], false, false);
    const a = randomF32(4 * 5);
    const b = randomF32(5 * 4);
    const c = new Float32Array(16);
    gemmF32(a, b, c, 4, 4, 5, false, true);
    expect(check(c, referenceGemm(a, b, 4, 4, 5, false, true)).violation).toBeNull();
  });

  it('non-finite values stay in their own rows/columns (zero padding does not leak NaN)', () => {
    // 5x5 output = one full 3x3 tile plus edge tiles; Inf in A row 4 and NaN in B column 1.
    const M = 5, N = 5, K = 4;
    const a = randomF32(M * K);
    const b = randomF32(K * N);
    a[4 * K + 2] = Infinity;
    b[3 * N + 1] = NaN;
    const c = new Float32Array(M * N);
    gemmF32(a, b, c, M, N, K, false, false);
    const ref = referenceGemm(a, b, M, N, K, false, false);
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        const v = c[i * N + j]!;
        if (j === 1) expect(v).toBeNaN();
        else if (i === 4) expect(v).toBe(ref.value[i * N + j]); // ±Infinity, sign from b[2, j]
        else expect(Number.isFinite(v)).toBe(true);
      }
    }
  });
});

describe('matmul op (batched, broadcast, transposes) uses the GEMM', () => {
  async function checkMatmul(aShape: number[], bShape: number[], tA: boolean, tB: boolean): Promise<void> {
    const ra = aShape.length, rb = bShape.length;
    const M = aShape[tA ? ra - 1 : ra - 2]!, K = aShape[tA ? ra - 2 : ra - 1]!;
    const N = bShape[tB ? rb - 2 : rb - 1]!;
    const av = randomF32(aShape.reduce((x, y) => x * y, 1));
    const bv = randomF32(bShape.reduce((x, y) => x * y, 1));
    const A: Tensor = tensor(av, aShape);
    const B: Tensor = tensor(bv, bShape);
    const C = matmul(A, B, { transposeA: tA, transposeB: tB });
    // Broadcast the batch dims (right-aligned, size 1 stretches) by hand.
    const batchA = aShape.slice(0, -2), batchB = bShape.slice(0, -2);
    const rank = Math.max(batchA.length, batchB.length);
    const pad = (s: number[]) => [...Array(rank - s.length).fill(1), ...s] as number[];
    const pa = pad(batchA), pb = pad(batchB);
    const outBatch = pa.map((d, i) => Math.max(d, pb[i]!));
    expect(C.shape).toEqual([...outBatch, M, N]);
    const got = (await C.data()) as Float32Array;
    const nBatch = outBatch.reduce((x, y) => x * y, 1);
    for (let bi = 0; bi < nBatch; bi++) {
      let rem = bi, offA = 0, offB = 0, strideA = 1, strideB = 1;
      for (let d = rank - 1; d >= 0; d--) {
        const idx = rem % outBatch[d]!;
        rem = Math.floor(rem / outBatch[d]!);
        if (pa[d]! > 1) offA += idx * strideA;
        if (pb[d]! > 1) offB += idx * strideB;
        strideA *= pa[d]!;
        strideB *= pb[d]!;
      }
      const ref = referenceGemm(av, bv, M, N, K, tA, tB, offA * M * K, offB * K * N);
      expect(check(got, ref, bi * M * N).violation, `batch ${bi} of ${JSON.stringify([aShape, bShape, tA, tB])}`).toBeNull();
    }
    A.dispose(); B.dispose(); C.dispose();
  }

  for (const [tA, tB] of COMBOS) {
    it(`broadcast batches, ${name(tA, tB)}`, async () => {
      await checkMatmul(tA ? [2, 1, 7, 5] : [2, 1, 5, 7], tB ? [3, 4, 7] : [3, 7, 4], tA, tB);
      await checkMatmul(tA ? [4, 65, 1] : [4, 1, 65], tB ? [130, 65] : [65, 130], tA, tB); // M = 1 per batch
      await checkMatmul(tA ? [70, 66] : [66, 70], tB ? [3, 1, 70] : [3, 70, 1], tA, tB); // N = 1 per batch
      await checkMatmul(tA ? [1, 64, 97] : [1, 97, 64], tB ? [5, 63, 64] : [5, 64, 63], tA, tB);
    });
  }
});
