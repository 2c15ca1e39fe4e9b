/**
 * CPU kernels of the FP8 GEMMs of @ring-linear/fp8: fp8Gemm, fp8GroupedGemm, and fp8Linear's
 * forward (quantize x in 1x128 tiles and W in 128x128 blocks, then the block-scaled GEMM).
 */
import { decodeToF32, type TensorInfo } from '@ring-linear/core';
import { commit, outValues, register, values } from '../../util.js';
import { BLOCK, ceilDiv, blockScaledGemm, quantizeInto, type Fp8 } from './common.js';

/** Writes a float64 accumulator to an output: rounded to f32 first, then once more to its dtype (as the composite's sum + cast). */
function store(y: TensorInfo, acc: Float64Array): void {
  const yv = outValues(y) as Float32Array;
  yv.set(acc);
  commit(y, yv);
}

register('fp8Gemm', ({ inputs: [a, sa, b, sb], outputs: [y], attrs }) => {
  const { bLayout } = attrs as { bLayout: 'block128x128' | 'tile1x128' };
  const [M, K] = [a!.shape[0]!, a!.shape[1]!];
  const N = b!.shape[0]!;
  const acc = new Float64Array(M * N);
  blockScaledGemm(
    values(a!) as Float32Array, 0, M, values(sa!) as Float32Array,
    values(b!) as Float32Array, 0, N, K,
    values(sb!) as Float32Array, 0, bLayout === 'block128x128' ? BLOCK : 1,
    acc,
  );
  store(y!, acc);
});

/**
 * Per expert, the block-scaled GEMM of its row segment; the composite runs each expert over all
 * rows and masks. Per element both are the same tile sums (exact in f64 for E4M3 x E4M3, so equal
 * whatever order the GEMM sums in), each rounded to f32 and added in expert order.
 */
register('fp8GroupedGemm', ({ inputs: [a, sa, b, sb, off], outputs: [y] }) => {
  const [M, K] = [a!.shape[0]!, a!.shape[1]!];
  const [E, N] = [b!.shape[0]!, b!.shape[1]!];
  const T = ceilDiv(K, BLOCK);
  const NB = ceilDiv(N, BLOCK);
  const av = values(a!) as Float32Array;
  const sav = values(sa!) as Float32Array;
  const bv = values(b!) as Float32Array;
  const sbv = values(sb!) as Float32Array;
  const offsets = values(off!) as Int32Array;
  const out = new Float32Array(M * N); // f32 sums over experts, as the composite's adds
  for (let e = 0; e < E; e++) {
    const r0 = Math.max(0, offsets[e]!);
    const r1 = Math.min(M, offsets[e + 1]!);
    if (r1 <= r0) continue;
    const rows = r1 - r0;
    const acc = new Float64Array(rows * N);
    blockScaledGemm(av, r0, rows, sav, bv, e * N * K, N, K, sbv, e * NB * T, BLOCK, acc);
    for (let i = 0; i < rows * N; i++) out[r0 * N + i] = out[r0 * N + i]! + Math.fround(acc[i]!);
  }
  const yv = outValues(y!) as Float32Array;
  yv.set(out);
  commit(y!, yv);
});

register('fp8Linear', ({ inputs: [x, w], outputs: [y], attrs }) => {
  const { dtype, pow2Scale } = attrs as { dtype: Fp8; pow2Scale: boolean };
  const [N, K] = [w!.shape[0]!, w!.shape[1]!];
  const M = x!.size / K;
  const T = ceilDiv(K, BLOCK);
  const xq = new Uint8Array(M * K);
  const xs = new Float32Array(M * T);
  quantizeInto(values(x!) as Float32Array, [M, K], 'tile1x128', dtype, pow2Scale, xq, xs);
  const wq = new Uint8Array(N * K);
  const ws = new Float32Array(ceilDiv(N, BLOCK) * T);
  quantizeInto(values(w!) as Float32Array, [N, K], 'block128x128', dtype, pow2Scale, wq, ws);
  const acc = new Float64Array(M * N);
  blockScaledGemm(decodeToF32(dtype, xq), 0, M, xs, decodeToF32(dtype, wq), 0, N, K, ws, 0, BLOCK, acc);
  store(y!, acc);
});
