/**
 * CPU kernels of the FP8 quantizer ops of @ring-linear/fp8: fp8Quantize, fp8QuantizeWithScales,
 * fp8Dequantize, fp8QuantTranspose.
 */
import { commit, outValues, raw, register, values } from '../../util.js';
import { BLOCK, ceilDiv, encodeQuotients, fp8Max, quantizeInto, scaleIndexer, scaleOf, type Fp8, type Layout } from './common.js';

register('fp8Quantize', ({ inputs: [x], outputs: [q, s], attrs }) => {
  const { dtype, layout, pow2Scale } = attrs as { dtype: Fp8; layout: Layout; pow2Scale: boolean };
  quantizeInto(values(x!) as Float32Array, x!.shape, layout, dtype, pow2Scale, raw(q!) as Uint8Array, raw(s!) as Float32Array);
});

register('fp8QuantizeWithScales', ({ inputs: [x, s], outputs: [q], attrs }) => {
  const { dtype, layout } = attrs as { dtype: Fp8; layout: Layout };
  const xv = values(x!) as Float32Array;
  const sv = values(s!) as Float32Array;
  const at = scaleIndexer(x!.shape, layout);
  const quot = new Float32Array(xv.length);
  for (let i = 0; i < xv.length; i++) quot[i] = xv[i]! / sv[at(i)]!;
  encodeQuotients(dtype, quot, raw(q!) as Uint8Array);
});

register('fp8Dequantize', ({ inputs: [q, s], outputs: [y], attrs }) => {
  const { layout } = attrs as { layout: Layout };
  const qv = values(q!) as Float32Array;
  const sv = values(s!) as Float32Array;
  const yv = outValues(y!) as Float32Array;
  const at = scaleIndexer(q!.shape, layout);
  for (let i = 0; i < qv.length; i++) yv[i] = qv[i]! * sv[at(i)]!;
  commit(y!, yv);
});

/**
 * x [M, K] -> 1x128 tiles of x (along K) and of x^T (along M). One pass over x gathers both sets
 * of tile amaxes; a second writes both quotient arrays (x^T's in 32x32 blocks, cache-friendly).
 */
register('fp8QuantTranspose', ({ inputs: [x], outputs: [q, s, qT, sT], attrs }) => {
  const { dtype, pow2Scale } = attrs as { dtype: Fp8; pow2Scale: boolean };
  const [M, K] = [x!.shape[0]!, x!.shape[1]!];
  const xv = values(x!) as Float32Array;
  const KT = ceilDiv(K, BLOCK);
  const MT = ceilDiv(M, BLOCK);
  const rowAmax = new Float64Array(M * KT); // [M, KT]
  const colAmax = new Float64Array(K * MT); // [K, MT]
  // Per block of 128 rows, the column amaxes accumulate in a contiguous [K] array (stays in cache).
  // Once NaN, an amax stays NaN: `a > NaN` is false and only a NaN `a` replaces it.
  const colAcc = new Float64Array(K);
  for (let mt = 0; mt < MT; mt++) {
    colAcc.fill(0);
    const m1 = Math.min(M, (mt + 1) * BLOCK);
    for (let m = mt * BLOCK; m < m1; m++) {
      const row = m * K;
      for (let t = 0; t < KT; t++) {
        const k1 = Math.min(K, (t + 1) * BLOCK);
        let ra = 0;
        for (let k = t * BLOCK; k < k1; k++) {
          const a = Math.abs(xv[row + k]!);
          if (a > ra || a !== a) ra = a;
          if (a > colAcc[k]! || a !== a) colAcc[k] = a;
        }
        rowAmax[m * KT + t] = ra;
      }
    }
    for (let k = 0; k < K; k++) colAmax[k * MT + mt] = colAcc[k]!;
  }
  const maxValue = fp8Max(dtype);
  const sv = raw(s!) as Float32Array;
  const sTv = raw(sT!) as Float32Array;
  for (let i = 0; i < rowAmax.length; i++) sv[i] = scaleOf(rowAmax[i]!, maxValue, pow2Scale);
  for (let i = 0; i < colAmax.length; i++) sTv[i] = scaleOf(colAmax[i]!, maxValue, pow2Scale);
  const quot = new Float32Array(M * K);
  for (let m = 0; m < M; m++) {
    const row = m * K;
    for (let t = 0; t < KT; t++) {
      const sc = sv[m * KT + t]!;
      const k1 = Math.min(K, (t + 1) * BLOCK);
      for (let k = t * BLOCK; k < k1; k++) quot[row + k] = xv[row + k]! / sc;
    }
  }
  encodeQuotients(dtype, quot, raw(q!) as Uint8Array);
  // x^T [K, M]: element (k, m) = x[m, k] / sT[k, m / 128].
  const TB = 32;
  for (let m0 = 0; m0 < M; m0 += TB) {
    const m1 = Math.min(M, m0 + TB);
    for (let k0 = 0; k0 < K; k0 += TB) {
      const k1 = Math.min(K, k0 + TB);
      for (let k = k0; k < k1; k++) {
        const out = k * M;
        const sRow = k * MT;
        for (let m = m0; m < m1; m++) quot[out + m] = xv[m * K + k]! / sTv[sRow + ((m / BLOCK) | 0)]!;
      }
    }
  }
  encodeQuotients(dtype, quot, raw(qT!) as Uint8Array);
});
