/**
 * CPU kernels of the MoE dispatch ops (@ring-linear/moe ops/dispatch.ts): the stable counting
 * sort of routing slots by expert, the permute (pure data movement of raw codes, exact for every
 * dtype) and the weighted combine (float64 in the fixed order k = 0..K-1, rounded once).
 */
import { commit, outValues, raw, register, values } from '../../util.js';

register('moeDispatchPlan', ({ inputs: [idx], outputs: [s2rOut, r2sOut, offOut, countOut], attrs }) => {
  const e = (attrs as { numExperts: number }).numExperts;
  const ids = raw(idx!) as Int32Array;
  const slots = ids.length;
  const s2r = raw(s2rOut!) as Int32Array;
  const r2s = raw(r2sOut!) as Int32Array;
  const offsets = raw(offOut!) as Int32Array;
  const counts = raw(countOut!) as Int32Array;
  // Bucket E collects ids outside [0, E): after every expert, processed by none.
  const bucketOf = (j: number) => {
    const v = ids[j]!;
    return v >= 0 && v < e ? v : e;
  };
  const cursor = new Int32Array(e + 1);
  for (let j = 0; j < slots; j++) cursor[bucketOf(j)]++;
  let start = 0;
  for (let b = 0; b <= e; b++) {
    const c = cursor[b]!;
    if (b < e) {
      counts[b] = c;
      offsets[b] = start;
    } else offsets[e] = start;
    cursor[b] = start;
    start += c;
  }
  // Slots in increasing order: stable within each expert (token order, then k).
  for (let j = 0; j < slots; j++) {
    const row = cursor[bucketOf(j)]++;
    s2r[j] = row;
    r2s[row] = j;
  }
});

register('moePermute', ({ inputs: [x, r2s], outputs: [y] }) => {
  const [n, h] = x!.shape as [number, number];
  const rows = y!.shape[0]!;
  const k = n > 0 ? rows / n : 0;
  const src = raw(x!);
  const dst = raw(y!);
  const slots = raw(r2s!) as Int32Array;
  for (let r = 0; r < rows; r++) {
    const j = slots[r]!;
    const o = r * h;
    if (j >= 0 && j < rows) {
      const from = Math.floor(j / k) * h;
      for (let c = 0; c < h; c++) dst[o + c] = src[from + c]!;
    } else dst.fill(0, o, o + h);
  }
});

register('moeCombine', ({ inputs: [yp, w, s2r], outputs: [y] }) => {
  const [n, k] = w!.shape as [number, number];
  const [rows, h] = yp!.shape as [number, number];
  const ypv = values(yp!) as Float32Array;
  const wv = values(w!) as Float32Array;
  const rowOf = raw(s2r!) as Int32Array;
  const out = outValues(y!) as Float32Array;
  const acc = new Float64Array(h);
  for (let t = 0; t < n; t++) {
    acc.fill(0);
    for (let i = 0; i < k; i++) {
      const r = rowOf[t * k + i]!;
      const wt = wv[t * k + i]!;
      if (r < 0 || r >= rows) {
        // An out-of-range row reads as zeros (w * 0: NaN for a non-finite weight, as in the composite).
        const z = wt * 0;
        if (z !== 0) for (let c = 0; c < h; c++) acc[c] += z;
        continue;
      }
      const base = r * h;
      for (let c = 0; c < h; c++) acc[c] += wt * ypv[base + c]!;
    }
    out.set(acc, t * h);
  }
  commit(y!, out);
});
