/**
 * nn kernels: softmax, logSoftmax, rmsNorm, crossEntropy. Everything is computed in float64 from
 * the decoded inputs and rounded once to the output dtype (the contract asks for f32 or wider).
 */
import type { TensorInfo } from '@ring-linear/core';
import { commit, outValues, register, values } from '../util.js';

/** [outer, len, inner] view of a shape around `axis`: element (o, k, i) is at (o*len + k)*inner + i. */
function around(shape: readonly number[], axis: number): { outer: number; len: number; inner: number } {
  let outer = 1;
  let inner = 1;
  for (let d = 0; d < axis; d++) outer *= shape[d]!;
  for (let d = axis + 1; d < shape.length; d++) inner *= shape[d]!;
  return { outer, len: shape[axis]!, inner };
}

/**
 * Stable softmax / log-softmax along an axis: subtract the max first. NaN, +inf and all -inf
 * slices give NaN (x - max is NaN there), as the composite and PyTorch do.
 */
function softmaxKernel(logOut: boolean) {
  return ({ inputs: [x], outputs: [y], attrs }: { inputs: readonly TensorInfo[]; outputs: readonly TensorInfo[]; attrs: { axis: number } }) => {
    const xv = values(x!);
    const yv = outValues(y!);
    const { outer, len, inner } = around(x!.shape, attrs.axis);
    const e = new Float64Array(len);
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        const base = o * len * inner + i;
        let m = -Infinity;
        for (let k = 0; k < len; k++) {
          const v = xv[base + k * inner]!;
          if (v > m || v !== v) m = v;
          if (m !== m) break;
        }
        let s = 0;
        if (logOut) {
          for (let k = 0; k < len; k++) {
            const t = xv[base + k * inner]! - m;
            e[k] = t;
            s += Math.exp(t);
          }
          const ls = Math.log(s);
          for (let k = 0; k < len; k++) yv[base + k * inner] = e[k]! - ls;
        } else {
          // Keep exp(x - max) itself: one exp per element, not one for the sum and one for the output.
          for (let k = 0; k < len; k++) {
            const p = Math.exp(xv[base + k * inner]! - m);
            e[k] = p;
            s += p;
          }
          for (let k = 0; k < len; k++) yv[base + k * inner] = e[k]! / s;
        }
      }
    }
    commit(y!, yv);
  };
}

register('softmax', softmaxKernel(false));
register('logSoftmax', softmaxKernel(true));

register('rmsNorm', ({ inputs: [x, w], outputs: [y], attrs }) => {
  const eps = Math.fround((attrs as { eps: number }).eps); // eps as the f32 the composite adds
  const xv = values(x!);
  const wv = values(w!);
  const yv = outValues(y!);
  const d = x!.shape[x!.shape.length - 1]!;
  const rows = x!.size / d;
  for (let r = 0; r < rows; r++) {
    const base = r * d;
    let ss = 0;
    for (let j = 0; j < d; j++) {
      const v = xv[base + j]!;
      ss += v * v;
    }
    const inv = 1 / Math.sqrt(ss / d + eps);
    for (let j = 0; j < d; j++) yv[base + j] = wv[j]! * (xv[base + j]! * inv);
  }
  commit(y!, yv);
});

/**
 * Fused cross-entropy: per token logsumexp(row) - row[target]. Targets equal to ignoreIndex or
 * outside [0, V) are skipped (loss 0, not counted), as the op defines.
 */
register('crossEntropy', ({ inputs: [logits, targets], outputs: [y], attrs }) => {
  const { ignoreIndex, reduction } = attrs as { ignoreIndex: number; reduction: 'mean' | 'sum' | 'none' };
  const lv = values(logits!);
  const tv = values(targets!) as Int32Array;
  const yv = outValues(y!) as Float32Array;
  const vocab = logits!.shape[logits!.shape.length - 1]!;
  const n = targets!.size;
  let total = 0;
  let count = 0;
  for (let t = 0; t < n; t++) {
    const target = tv[t]!;
    const counted = target >= 0 && target < vocab && target !== ignoreIndex;
    let loss = 0;
    if (counted) {
      const base = t * vocab;
      let m = -Infinity;
      for (let k = 0; k < vocab; k++) {
        const v = lv[base + k]!;
        if (v > m || v !== v) m = v;
      }
      let s = 0;
      for (let k = 0; k < vocab; k++) s += Math.exp(lv[base + k]! - m);
      loss = m + Math.log(s) - lv[base + target]!;
      total += loss;
      count++;
    }
    if (reduction === 'none') yv[t] = loss;
  }
  if (reduction === 'sum') yv[0] = total;
  else if (reduction === 'mean') yv[0] = count > 0 ? total / count : 0;
});
