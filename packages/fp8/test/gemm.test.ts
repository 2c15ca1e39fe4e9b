/**
 * FP8 GEMM checks.
 *
 * (1) Against a float64 product of the DEQUANTIZED operands (the exact value the GEMM approximates):
 *     each output is a sum over k-tiles of fl32(fl32(P_t * sa) * sb) with P_t the f32-rounded
 *     tile sum, added in f64 and rounded once; so |err| <= 4 * 2^-24 * sum_k |a'||b'| (f32 rounding
 *     level: three roundings per tile term, one at the end).
 * (2) Against the UNQUANTIZED product. E4M3 round-to-nearest-even has relative error u = 2^-4 on
 *     normal values (3 mantissa bits: half an ulp of 2^-3) and absolute error h * scale (h = 2^-10,
 *     half the smallest subnormal 2^-9) below the normal range; with the f32 quotient rounded
 *     first, u grows by at most 2^-24. So per element |a' - a| <= ea = u|a| + h s_a, likewise eb, and
 *         |C' - C| <= sum_k (ea |b| + |a| eb + ea eb)  +  the f32 term of (1),
 *     i.e. at most (2u + u^2) sum_k |a||b| ~ 12.9% of sum_k |a||b| plus the subnormal terms
 *     (E5M2: u = 2^-3, h = 2^-17, ~26.6%). Random data lands far below the worst case.
 */
import { describe, expect, it } from 'vitest';
import '@ring-linear/backend-cpu';
import { DTypeError, ShapeError, dispose, tensor, tidy, withKernelsDisabled, type Tensor } from '@ring-linear/core';
import { fp8GemmRaw, fp8GroupedGemmRaw, quantize, quantizeRaw, type GemmBLayout } from '../src/index.js';
import { SEED, decodeFp8, expectBytes, groupOf, read, rngFor, t, type Fp8 } from './helpers.js';

console.log(`fp8 GEMM tests: seed ${SEED} (FP8_SEED=${SEED} reproduces)`);

const UH: Record<Fp8, [number, number]> = { f8e4m3: [2 ** -4 + 2 ** -24, 2 ** -10], f8e5m2: [2 ** -3 + 2 ** -24, 2 ** -17] };

interface Operand {
  /** Original f32 values. */
  x: Float64Array;
  /** Dequantized values (exact: code * scale in float64). */
  deq: Float64Array;
  /** The scale of each element. */
  scale: Float64Array;
  data: Tensor;
  scales: Tensor;
}

async function operand(x: Float64Array, shape: [number, number], layout: 'tile1x128' | 'block128x128', dtype: Fp8): Promise<Operand> {
  const [data, scales] = quantizeRaw(t(x, shape), { layout, dtype });
  const codes = await data.bytes();
  const sc = scales.dataSync();
  const scale = Float64Array.from(x, (_, i) => sc[groupOf(shape, layout, i)]!);
  const deq = Float64Array.from(codes, (c, i) => decodeFp8(dtype, c) * scale[i]!);
  return { x, deq, scale, data, scales };
}

function product(a: Float64Array, b: Float64Array, M: number, N: number, K: number, abs = false): Float64Array {
  const c = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += abs ? Math.abs(a[m * K + k]! * b[n * K + k]!) : a[m * K + k]! * b[n * K + k]!;
      c[m * N + n] = s;
    }
  }
  return c;
}

const SHAPES: [number, number, number][] = [[1, 1, 1], [3, 5, 129], [1, 130, 200], [130, 1, 64], [17, 140, 300], [64, 64, 128]];

describe('fp8Gemm (1x128 x 128x128 block scales, fp32 accumulation)', () => {
  for (const [M, N, K] of SHAPES) {
    for (const [da, db] of [['f8e4m3', 'f8e4m3'], ['f8e5m2', 'f8e4m3']] as [Fp8, Fp8][]) {
      it(`[${M}, ${K}] x [${N}, ${K}]^T ${da} x ${db}: f32 rounding of the dequantized product; within the ${da} bound of the exact one`, async () => {
        const rng = rngFor(`gemm ${M} ${N} ${K} ${da}`);
        const A = await operand(rng.array(M * K, 1), [M, K], 'tile1x128', da);
        const B = await operand(rng.array(N * K, 0.05), [N, K], 'block128x128', db);
        const y = fp8GemmRaw(A.data, A.scales, B.data, B.scales);
        const got = read(y);
        // (1) vs the float64 product of the dequantized operands.
        const ref = product(A.deq, B.deq, M, N, K);
        const mag = product(A.deq, B.deq, M, N, K, true);
        let worstRel = 0;
        for (let i = 0; i < M * N; i++) {
          const err = Math.abs(got[i]! - ref[i]!);
          worstRel = Math.max(worstRel, err / (mag[i]! || 1));
          expect(err, `element ${i}`).toBeLessThanOrEqual(4 * 2 ** -24 * mag[i]! + 1e-38);
        }
        // (2) vs the unquantized product, within the bound the formats imply.
        const exact = product(A.x, B.x, M, N, K);
        const [ua, ha] = UH[da];
        const [ub, hb] = UH[db];
        let used = 0;
        let relErr = 0;
        for (let m = 0; m < M; m++) {
          for (let n = 0; n < N; n++) {
            let bound = 4 * 2 ** -24 * mag[m * N + n]!;
            let absSum = 0;
            for (let k = 0; k < K; k++) {
              const a = Math.abs(A.x[m * K + k]!);
              const b = Math.abs(B.x[n * K + k]!);
              const ea = ua * a + ha * A.scale[m * K + k]!;
              const eb = ub * b + hb * B.scale[n * K + k]!;
              bound += ea * b + a * eb + ea * eb;
              absSum += a * b;
            }
            const err = Math.abs(got[m * N + n]! - exact[m * N + n]!);
            expect(err, `element [${m}, ${n}] vs unquantized`).toBeLessThanOrEqual(bound);
            used = Math.max(used, err / bound);
            relErr = Math.max(relErr, err / absSum);
          }
        }
        console.log(`  [${M},${K}]x[${N},${K}] ${da}: max err/sum|a'b'| vs dequantized ${worstRel.toExponential(2)}; vs exact max err/sum|ab| ${relErr.toExponential(2)} (${(used * 100).toFixed(1)}% of the bound)`);
        // Kernel = composite, byte for byte; bf16 output = bf16(f32 output).
        const fused = await y.bytes();
        const comp = await withKernelsDisabled(['fp8Gemm'], () => tidy(() => fp8GemmRaw(A.data, A.scales, B.data, B.scales)).bytes());
        expectBytes(comp, fused, 'composite vs kernel');
        const yb = fp8GemmRaw(A.data, A.scales, B.data, B.scales, { outDtype: 'bf16' });
        const yb32 = tensor(Float32Array.from(got), [M, N], 'bf16');
        expectBytes(await yb.bytes(), await yb32.bytes(), 'bf16 output');
        const ybc = withKernelsDisabled(['fp8Gemm'], () => fp8GemmRaw(A.data, A.scales, B.data, B.scales, { outDtype: 'bf16' }));
        expectBytes(await ybc.bytes(), await yb.bytes(), 'bf16 composite');
        dispose([A.data, A.scales, B.data, B.scales, y, yb, yb32, ybc]);
      });
    }
  }

  it('b in 1x128 tiles (the weight-gradient GEMM: both operands activations)', async () => {
    for (const [M, N, K] of [[5, 7, 300], [130, 129, 131]] as const) {
      const rng = rngFor(`gemm tile ${M} ${N} ${K}`);
      const A = await operand(rng.array(M * K), [M, K], 'tile1x128', 'f8e4m3');
      const B = await operand(rng.array(N * K), [N, K], 'tile1x128', 'f8e5m2');
      const opts = { bLayout: 'tile1x128' as GemmBLayout };
      const y = fp8GemmRaw(A.data, A.scales, B.data, B.scales, opts);
      const got = read(y);
      const ref = product(A.deq, B.deq, M, N, K);
      const mag = product(A.deq, B.deq, M, N, K, true);
      for (let i = 0; i < M * N; i++) expect(Math.abs(got[i]! - ref[i]!)).toBeLessThanOrEqual(4 * 2 ** -24 * mag[i]! + 1e-38);
      const comp = withKernelsDisabled(['fp8Gemm'], () => fp8GemmRaw(A.data, A.scales, B.data, B.scales, opts));
      expectBytes(await comp.bytes(), await y.bytes(), 'composite');
      dispose([A.data, A.scales, B.data, B.scales, y, comp]);
    }
  });

  it('a NaN in one tile of a makes exactly its output row NaN', () => {
    const x = rngFor('nan').array(4 * 200);
    x[2 * 200 + 150] = NaN;
    tidy(() => {
      const a = quantize(t(x, [4, 200]));
      const b = quantize(t(rngFor('nanb').array(3 * 200), [3, 200]), { layout: 'block128x128' });
      const y = read(fp8GemmRaw(a.data, a.scales, b.data, b.scales));
      y.forEach((v, i) => expect(Number.isNaN(v), `element ${i}`).toBe(Math.floor(i / 3) === 2));
    });
  });

  it('bad inputs get typed errors', () => {
    tidy(() => {
      const a = quantize(t(rngFor('e').array(2 * 130), [2, 130]));
      const b = quantize(t(rngFor('e2').array(3 * 130), [3, 130]), { layout: 'block128x128' });
      const bt = quantize(t(rngFor('e3').array(3 * 130), [3, 130]));
      expect(() => fp8GemmRaw(a.data, a.scales, b.data, a.scales)).toThrow(/'bScales' must have shape \[1, 2\]/);
      expect(() => fp8GemmRaw(a.data, a.scales, bt.data, bt.scales)).toThrow(ShapeError);
      expect(() => fp8GemmRaw(a.data, a.scales, bt.data, bt.scales, { bLayout: 'tile1x128' })).not.toThrow();
      expect(() => fp8GemmRaw(a.scales, a.scales, b.data, b.scales)).toThrow(DTypeError);
      expect(() => fp8GemmRaw(a.data, a.scales, t([1, 2], [1, 2]), b.scales)).toThrow(DTypeError);
      const q1 = quantize(t([1, 2, 3], [1, 3]));
      expect(() => fp8GemmRaw(a.data, a.scales, q1.data, q1.scales, { bLayout: 'tile1x128' })).toThrow(/must share K/);
      expect(() => fp8GemmRaw(a.data, a.scales, b.data, b.scales, { outDtype: 'f8e4m3' })).toThrow(/'outDtype' expected one of/);
    });
  });
});

describe('fp8GroupedGemm (MoE experts)', () => {
  it('rows of each segment use their expert; rows outside every segment are 0; = per-expert fp8Gemm and the composite', async () => {
    const rng = rngFor('grouped');
    const [M, N, K, E] = [11, 130, 200, 4];
    // Segments: expert 0 rows 0..2, expert 1 empty, expert 2 rows 3..3, expert 3 rows 4..8; 9, 10 in none.
    const offsets = [0, 3, 3, 4, 9];
    const x = t(rng.array(M * K), [M, K]);
    const w = t(rng.array(E * N * K, 0.05), [E, N, K]);
    for (const dtype of ['f8e4m3', 'f8e5m2'] as const) {
      const outs = tidy(() => {
        const a = quantize(x, { dtype });
        const b = quantize(w, { layout: 'block128x128' });
        const off = tensor(offsets, [E + 1], 'i32');
        const y = fp8GroupedGemmRaw(a.data, a.scales, b.data, b.scales, off);
        const yc = withKernelsDisabled(['fp8GroupedGemm'], () => fp8GroupedGemmRaw(a.data, a.scales, b.data, b.scales, off));
        const yb = fp8GroupedGemmRaw(a.data, a.scales, b.data, b.scales, off, { outDtype: 'bf16' });
        const ybc = withKernelsDisabled(['fp8GroupedGemm'], () => fp8GroupedGemmRaw(a.data, a.scales, b.data, b.scales, off, { outDtype: 'bf16' }));
        // Each expert alone, over all rows.
        const per = [0, 1, 2, 3].map((e) => {
          const be = quantize(t(read(w).subarray(e * N * K, (e + 1) * N * K), [N, K]), { layout: 'block128x128' });
          return fp8GemmRaw(a.data, a.scales, be.data, be.scales);
        });
        return { y, yc, yb, ybc, per };
      });
      const got = read(outs.y);
      const per = outs.per.map(read);
      for (let m = 0; m < M; m++) {
        const e = offsets.findIndex((o, i) => i < E && m >= o && m < offsets[i + 1]!);
        for (let n = 0; n < N; n++) {
          const want = e < 0 ? 0 : per[e]![m * N + n]!;
          if (!Object.is(got[m * N + n], want)) expect.fail(`${dtype}: row ${m} (expert ${e}), col ${n}: ${got[m * N + n]} vs ${want}`);
        }
      }
      expectBytes(await outs.yc.bytes(), await outs.y.bytes(), `${dtype} composite`);
      expectBytes(await outs.ybc.bytes(), await outs.yb.bytes(), `${dtype} bf16 composite`);
      dispose(outs);
    }
    dispose([x, w]);
  });

  it('bad inputs get typed errors', () => {
    tidy(() => {
      const a = quantize(t(rngFor('g').array(4 * 8), [4, 8]));
      const b = quantize(t(rngFor('g2').array(2 * 3 * 8), [2, 3, 8]), { layout: 'block128x128' });
      expect(() => fp8GroupedGemmRaw(a.data, a.scales, b.data, b.scales, tensor([0, 4], [2], 'i32'))).toThrow(/'offsets' must have shape \[3\]/);
      expect(() => fp8GroupedGemmRaw(a.data, a.scales, b.data, b.scales, tensor([0, 2, 4], [3], 'f32'))).toThrow(DTypeError);
      const b2 = quantize(t(rngFor('g3').array(3 * 8), [3, 8]), { layout: 'block128x128' });
      expect(() => fp8GroupedGemmRaw(a.data, a.scales, b2.data, b2.scales, tensor([0, 4], [2], 'i32'))).toThrow(/rank 3 \[E, N, K\]/);
    });
  });
});
