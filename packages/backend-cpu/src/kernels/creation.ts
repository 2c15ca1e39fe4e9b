/** Creation kernels: arange, causalMask, randomUniform, randomNormal (Philox, rng/philox.ts in core). */
import { philoxNormalF32, philoxUniformF32, type PhiloxAttrs } from '@ring-linear/core';
import { commit, outValues, raw, register, storeNumbers } from '../util.js';

register('arange', ({ outputs: [y], attrs }) => {
  const { start, step } = attrs as { start: number; step: number };
  // start + i*step in float64 (as NumPy), then one rounding to the dtype.
  const vals = new Float64Array(y!.size);
  for (let i = 0; i < vals.length; i++) vals[i] = start + i * step;
  storeNumbers(y!, vals);
});

register('causalMask', ({ outputs: [y], attrs }) => {
  const { rows, cols, offset } = attrs as { rows: number; cols: number; offset: number };
  const r = raw(y!) as Uint8Array;
  for (let i = 0; i < rows; i++) {
    // Row i is true for j <= i + offset: a prefix of length clamp(i + offset + 1, 0, cols).
    const visible = Math.min(cols, Math.max(0, i + offset + 1));
    r.fill(1, i * cols, i * cols + visible);
    r.fill(0, i * cols + visible, (i + 1) * cols);
  }
});

register('randomUniform', ({ outputs: [y], attrs }) => {
  const a = attrs as PhiloxAttrs & { low: number; high: number };
  const yv = outValues(y!) as Float32Array;
  philoxUniformF32(a, a.low, a.high, yv);
  commit(y!, yv);
});

register('randomNormal', ({ outputs: [y], attrs }) => {
  const a = attrs as PhiloxAttrs & { mean: number; std: number };
  const yv = outValues(y!) as Float32Array;
  philoxNormalF32(a, a.mean, a.std, yv);
  commit(y!, yv);
});
