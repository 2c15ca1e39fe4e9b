/**
 * CPU kernel of `moeRouter` (@ring-linear/moe, MODEL_SPEC §4). Per token, in this order:
 *   logits_e = f32(sum_h x[h] W[e, h])            the dot product in float64, sequential in h
 *   s_e      = f32(sigmoid(logit_e))  or  f32(softmax(logits)_e)
 *   b_e      = f32(s_e + bias_e)
 *   group score = f32(top1 + top2) of b in the group; keep topkGroup groups; others' b = 0.0
 *   indices  = top-k of masked b (NaN first, then larger, then lower index)
 *   weights  = s[idx] / (sum + 1e-20) * routedScalingFactor    (float64, rounded once)
 * The f32 rounding points are those of the op's composite (matmul, sigmoid, add, sum of two), so
 * both choose the same experts. Each token is computed alone, in a fixed order: results do not
 * depend on the batch (the same bits for a token alone or among others).
 */
import { commit, outValues, raw, register, values } from '../../util.js';

interface RouterAttrs {
  topK: number;
  nGroup: number;
  topkGroup: number;
  scoreFunction: 'sigmoid' | 'softmax';
  normTopkProb: boolean;
  routedScalingFactor: number;
}

/** Whether (va, ia) ranks before (vb, ib): NaN above every number, then larger, then lower index (core's topk). */
function ranksBefore(va: number, ia: number, vb: number, ib: number): boolean {
  const na = va !== va;
  const nb = vb !== vb;
  if (na || nb) return na && (!nb || ia < ib);
  return va > vb || (va === vb && ia < ib);
}

/**
 * Writes the `k` best of vals[base .. base+n) (ranksBefore order, positions relative to base) into
 * outIdx, best first. Insertion into a sorted prefix: O(n k), small for router sizes (k <= 8).
 */
function selectTop(vals: Float64Array, base: number, n: number, k: number, outIdx: Int32Array): void {
  let filled = 0;
  for (let i = 0; i < n; i++) {
    const v = vals[base + i]!;
    if (filled === k) {
      const last = outIdx[k - 1]!;
      if (!ranksBefore(v, i, vals[base + last]!, last)) continue;
    }
    let pos = filled < k ? filled++ : k - 1;
    while (pos > 0) {
      const prev = outIdx[pos - 1]!;
      if (!ranksBefore(v, i, vals[base + prev]!, prev)) break;
      outIdx[pos] = prev;
      pos--;
    }
    outIdx[pos] = i;
  }
}

register('moeRouter', ({ inputs: [x, gw, bias], outputs: [wOut, iOut, sOut], attrs }) => {
  const a = attrs as RouterAttrs;
  const [n, h] = x!.shape as [number, number];
  const e = gw!.shape[0]!;
  const k = a.topK;
  const xv = values(x!) as Float32Array;
  const wv = values(gw!) as Float32Array;
  const bv = values(bias!) as Float32Array;
  const wo = outValues(wOut!) as Float32Array;
  const io = raw(iOut!) as Int32Array;
  const so = outValues(sOut!) as Float32Array;

  const logits = new Float64Array(e);
  const s = new Float64Array(e);
  const b = new Float64Array(e);
  const groupSize = e / a.nGroup;
  const limitGroups = a.topkGroup < a.nGroup;
  const groupScore = new Float64Array(a.nGroup);
  const keptGroups = new Int32Array(a.topkGroup);
  const keep = new Uint8Array(a.nGroup);
  const top2 = new Int32Array(2);
  const chosen = new Int32Array(k);

  for (let t = 0; t < n; t++) {
    const xo = t * h;
    // Four experts at a time: four independent sums for the CPU to overlap (one sum alone waits on
    // its previous add); each is still the dot product in order of h.
    let j = 0;
    for (; j + 4 <= e; j += 4) {
      const w0 = j * h, w1 = w0 + h, w2 = w1 + h, w3 = w2 + h;
      let a0 = 0, a1 = 0, a2 = 0, a3 = 0;
      for (let c = 0; c < h; c++) {
        const xc = xv[xo + c]!;
        a0 += xc * wv[w0 + c]!;
        a1 += xc * wv[w1 + c]!;
        a2 += xc * wv[w2 + c]!;
        a3 += xc * wv[w3 + c]!;
      }
      logits[j] = Math.fround(a0);
      logits[j + 1] = Math.fround(a1);
      logits[j + 2] = Math.fround(a2);
      logits[j + 3] = Math.fround(a3);
    }
    for (; j < e; j++) {
      const wo0 = j * h;
      let acc = 0;
      for (let c = 0; c < h; c++) acc += xv[xo + c]! * wv[wo0 + c]!;
      logits[j] = Math.fround(acc);
    }
    if (a.scoreFunction === 'sigmoid') {
      for (let j = 0; j < e; j++) s[j] = Math.fround(1 / (1 + Math.exp(-logits[j]!)));
    } else {
      // As core's softmax: subtract the max (NaN propagates), float64, rounded once.
      let m = -Infinity;
      for (let j = 0; j < e; j++) {
        const v = logits[j]!;
        if (v > m || v !== v) m = v;
      }
      let total = 0;
      for (let j = 0; j < e; j++) total += Math.exp(logits[j]! - m);
      for (let j = 0; j < e; j++) s[j] = Math.fround(Math.exp(logits[j]! - m) / total);
    }
    for (let j = 0; j < e; j++) {
      b[j] = Math.fround(s[j]! + bv[j]!);
      so[t * e + j] = s[j]!;
    }
    if (limitGroups) {
      const take = Math.min(2, groupSize);
      for (let g = 0; g < a.nGroup; g++) {
        const base = g * groupSize;
        selectTop(b, base, groupSize, take, top2);
        groupScore[g] = take === 2 ? Math.fround(b[base + top2[0]!]! + b[base + top2[1]!]!) : b[base + top2[0]!]!;
      }
      selectTop(groupScore, 0, a.nGroup, a.topkGroup, keptGroups);
      keep.fill(0);
      for (let i = 0; i < a.topkGroup; i++) keep[keptGroups[i]!] = 1;
      // The reference's choice: entries of dropped groups become 0.0 (not -inf), MODEL_SPEC §4.
      for (let g = 0; g < a.nGroup; g++) if (!keep[g]) b.fill(0, g * groupSize, (g + 1) * groupSize);
    }
    selectTop(b, 0, e, k, chosen);
    let total = 0;
    for (let i = 0; i < k; i++) total += s[chosen[i]!]!;
    const scale = a.normTopkProb ? a.routedScalingFactor / (total + 1e-20) : a.routedScalingFactor;
    for (let i = 0; i < k; i++) {
      io[t * k + i] = chosen[i]!;
      wo[t * k + i] = s[chosen[i]!]! * scale;
    }
  }
  commit(wOut!, wo);
  commit(sOut!, so);
});
