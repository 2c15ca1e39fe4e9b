/**
 * CPU kernels of the grouped GEMMs (@ring-linear/moe ops/grouped_matmul.ts).
 *
 * groupedMatmul: every output element is one dot product accumulated in float64, sequentially
 * over the reduction index, and rounded once. Blocking (4 rows x 4 columns of independent
 * accumulators) changes which elements are computed together, never the order inside one
 * element, so a row's result does not depend on how many rows its segment has or where it sits:
 * a token gets the same bits alone (decode) or in a batch (training), the batch invariance
 * MODEL_SPEC §7 asks of the trainer and the sampler.
 *
 * groupedMatmulAtB: out_e[p, q] = sum over the rows r of segment e (in order) of a[r, p] b[r, q],
 * float64, rounded once.
 */
import type { TensorInfo } from '@ring-linear/core';
import { commit, outValues, raw, register, values } from '../../util.js';

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

/**
 * y[r, j] = sum_i x[r, i] w[j, i] for rows [lo, hi), W stored [out, in] at wOff. 4x4 register
 * blocks; each accumulator runs over i = 0..in-1 in order.
 */
function rowsTimesWT(
  x: Float32Array, w: Float32Array, wOff: number, y: Float32Array,
  lo: number, hi: number, inDim: number, out: number,
): void {
  let r = lo;
  for (; r + 4 <= hi; r += 4) {
    const x0 = r * inDim, x1 = x0 + inDim, x2 = x1 + inDim, x3 = x2 + inDim;
    let j = 0;
    for (; j + 4 <= out; j += 4) {
      const w0 = wOff + j * inDim, w1 = w0 + inDim, w2 = w1 + inDim, w3 = w2 + inDim;
      let a00 = 0, a01 = 0, a02 = 0, a03 = 0, a10 = 0, a11 = 0, a12 = 0, a13 = 0;
      let a20 = 0, a21 = 0, a22 = 0, a23 = 0, a30 = 0, a31 = 0, a32 = 0, a33 = 0;
      for (let i = 0; i < inDim; i++) {
        const b0 = w[w0 + i]!, b1 = w[w1 + i]!, b2 = w[w2 + i]!, b3 = w[w3 + i]!;
        let v = x[x0 + i]!;
        a00 += v * b0; a01 += v * b1; a02 += v * b2; a03 += v * b3;
        v = x[x1 + i]!;
        a10 += v * b0; a11 += v * b1; a12 += v * b2; a13 += v * b3;
        v = x[x2 + i]!;
        a20 += v * b0; a21 += v * b1; a22 += v * b2; a23 += v * b3;
        v = x[x3 + i]!;
        a30 += v * b0; a31 += v * b1; a32 += v * b2; a33 += v * b3;
      }
      let o = r * out + j;
      y[o] = a00; y[o + 1] = a01; y[o + 2] = a02; y[o + 3] = a03;
      o += out;
      y[o] = a10; y[o + 1] = a11; y[o + 2] = a12; y[o + 3] = a13;
      o += out;
      y[o] = a20; y[o + 1] = a21; y[o + 2] = a22; y[o + 3] = a23;
      o += out;
      y[o] = a30; y[o + 1] = a31; y[o + 2] = a32; y[o + 3] = a33;
    }
    for (; j < out; j++) {
      const w0 = wOff + j * inDim;
      let a0 = 0, a1 = 0, a2 = 0, a3 = 0;
      for (let i = 0; i < inDim; i++) {
        const b = w[w0 + i]!;
        a0 += x[x0 + i]! * b; a1 += x[x1 + i]! * b; a2 += x[x2 + i]! * b; a3 += x[x3 + i]! * b;
      }
      y[r * out + j] = a0; y[(r + 1) * out + j] = a1; y[(r + 2) * out + j] = a2; y[(r + 3) * out + j] = a3;
    }
  }
  for (; r < hi; r++) {
    const x0 = r * inDim;
    let j = 0;
    for (; j + 4 <= out; j += 4) {
      const w0 = wOff + j * inDim, w1 = w0 + inDim, w2 = w1 + inDim, w3 = w2 + inDim;
      let a0 = 0, a1 = 0, a2 = 0, a3 = 0;
      for (let i = 0; i < inDim; i++) {
        const v = x[x0 + i]!;
        a0 += v * w[w0 + i]!; a1 += v * w[w1 + i]!; a2 += v * w[w2 + i]!; a3 += v * w[w3 + i]!;
      }
      const o = r * out + j;
      y[o] = a0; y[o + 1] = a1; y[o + 2] = a2; y[o + 3] = a3;
    }
    for (; j < out; j++) {
      const w0 = wOff + j * inDim;
      let a = 0;
      for (let i = 0; i < inDim; i++) a += x[x0 + i]! * w[w0 + i]!;
      y[r * out + j] = a;
    }
  }
}

/** y[r, j] = sum_i x[r, i] w[i, j] for rows [lo, hi), W stored [in, out]: a float64 row accumulator. */
function rowsTimesW(
  x: Float32Array, w: Float32Array, wOff: number, y: Float32Array,
  lo: number, hi: number, inDim: number, out: number, acc: Float64Array,
): void {
  for (let r = lo; r < hi; r++) {
    acc.fill(0, 0, out);
    const x0 = r * inDim;
    for (let i = 0; i < inDim; i++) {
      const v = x[x0 + i]!;
      const w0 = wOff + i * out;
      for (let j = 0; j < out; j++) acc[j] += v * w[w0 + j]!;
    }
    for (let j = 0; j < out; j++) y[r * out + j] = acc[j]!;
  }
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
  const acc = transposeB ? new Float64Array(0) : new Float64Array(out);
  for (let e = 0; e < experts; e++) {
    const [lo, hi] = segment(off, e, rows);
    if (lo === hi) continue;
    if (transposeB) rowsTimesWT(xv, arrays[e]!, wOffs[e]!, yv, lo, hi, inDim, out);
    else rowsTimesW(xv, arrays[e]!, wOffs[e]!, yv, lo, hi, inDim, out, acc);
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
  const acc = new Float64Array(p * q);
  for (let e = 0; e < experts; e++) {
    const [lo, hi] = segment(off, e, rows);
    acc.fill(0);
    for (let r = lo; r < hi; r++) {
      const a0 = r * p;
      const b0 = r * q;
      for (let i = 0; i < p; i++) {
        const v = av[a0 + i]!;
        const o = i * q;
        for (let j = 0; j < q; j++) acc[o + j] += v * bv[b0 + j]!;
      }
    }
    if (stacked) stacked.set(acc, e * p * q);
    else {
      const o = outputs[e]!;
      const ov = outValues(o) as Float32Array;
      ov.set(acc);
      commit(o, ov);
    }
  }
  if (stacked) commit(outputs[0]!, stacked);
});
