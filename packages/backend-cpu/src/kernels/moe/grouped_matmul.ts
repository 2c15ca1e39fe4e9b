/**
 * CPU kernels of the grouped GEMMs (@ring-linear/moe ops/grouped_matmul.ts), one gemmF32 call
 * (kernels/gemm.ts: packed, register-blocked) per expert segment.
 *
 * groupedMatmul: every output element is one dot product accumulated in float64, sequentially
 * over the reduction index, and rounded once. Blocking changes which elements are computed
 * together, never the order inside one element, so a row's result does not depend on how many
 * rows its segment has or where it sits: a token gets the same bits alone (decode) or in a batch
 * (training), the batch invariance MODEL_SPEC §7 asks of the trainer and the sampler.
 *
 * groupedMatmulAtB: out_e[p, q] = sum over the rows r of segment e (in order) of a[r, p] b[r, q],
 * float64, rounded once.
 */
import type { TensorInfo } from '@ring-linear/core';
import { commit, outValues, raw, register, values } from '../../util.js';
import { gemmF32 } from '../gemm.js';

/** Segment [lo, hi) of expert e, clamped to [0, rows] (malformed offsets give empty segments). */
function segment(offsets: Int32Array, e: number, rows: number): [number, number] {
  const lo = Math.min(Math.max(offsets[e]!, 0), rows);
  const hi = Math.min(Math.max(offsets[e + 1]!, lo), rows);
  return [lo, hi];
}

/** Each expert's weight as f32 values plus its element offset (stacked: one array, offset e*size). */
function expertWeights(ws: readonly TensorInfo[], experts: number): { arrays: Float32Array[]; offsets: number[] } {
  if (ws.length === 1 && ws[0]!.shape.length === 3) {
    const all = values(ws[0]!) as Float32Array;
    const size = ws[0]!.shape[1]! * ws[0]!.shape[2]!;
    return { arrays: Array.from({ length: experts }, () => all), offsets: Array.from({ length: experts }, (_, e) => e * size) };
  }
  return { arrays: ws.map((w) => values(w) as Float32Array), offsets: ws.map(() => 0) };
}

register('groupedMatmul', ({ inputs: [x, offsets, ...ws], outputs: [y], attrs }) => {
  const { transposeB } = attrs as { transposeB: boolean };
  const [rows, inDim] = x!.shape as [number, number];
  const out = y!.shape[1]!;
  const experts = offsets!.shape[0]! - 1;
  const xv = values(x!) as Float32Array;
  const off = raw(offsets!) as Int32Array;
  const yv = outValues(y!) as Float32Array;
  yv.fill(0); // rows outside every segment
  const { arrays, offsets: wOffs } = expertWeights(ws, experts);
  for (let e = 0; e < experts; e++) {
    const [lo, hi] = segment(off, e, rows);
    if (lo === hi) continue;
    // Segment rows times W ([in, out], or [out, in] with transposeB): gemmF32 sums each element
    // in f64 in reduction order and rounds once, whatever the segment's size (see gemm.ts).
    gemmF32(xv, arrays[e]!, yv, hi - lo, out, inDim, false, transposeB, lo * inDim, wOffs[e]!, lo * out);
  }
  commit(y!, yv);
});

register('groupedMatmulAtB', ({ inputs: [a, b, offsets], outputs, attrs }) => {
  const { separate } = attrs as { separate: boolean };
  const [rows, p] = a!.shape as [number, number];
  const q = b!.shape[1]!;
  const experts = offsets!.shape[0]! - 1;
  const av = values(a!) as Float32Array;
  const bv = values(b!) as Float32Array;
  const off = raw(offsets!) as Int32Array;
  const stacked = separate ? null : (outValues(outputs[0]!) as Float32Array);
  for (let e = 0; e < experts; e++) {
    const [lo, hi] = segment(off, e, rows);
    // a_seg^T b_seg: a_seg stored [rows, p] is op(A)^T, so transposeA; the reduction runs over the
    // segment's rows in order (an empty segment gives zeros).
    const o = stacked ? null : outputs[e]!;
    const ov = stacked ?? (outValues(o!) as Float32Array);
    gemmF32(av, bv, ov, p, q, hi - lo, true, false, lo * p, lo * q, stacked ? e * p * q : 0);
    if (o) commit(o, ov);
  }
  if (stacked) commit(outputs[0]!, stacked);
});
