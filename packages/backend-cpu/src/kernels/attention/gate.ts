/**
 * CPU kernel of `groupRmsNormGate` (@ring-linear/attention, MODEL_SPEC §2.5): group RMSNorm over the
 * last dim (in float64 here, eps as the f32 the composite adds), times weight, times sigmoid(gate).
 */
import { commit, outValues, register, values } from '../../util.js';

register('groupRmsNormGate', ({ inputs: [o, gate, weight], outputs: [y], attrs }) => {
  const { groups } = attrs as { groups: number; eps: number };
  const eps = Math.fround((attrs as { eps: number }).eps);
  const C = o!.shape[o!.shape.length - 1]!;
  const rows = o!.size / C;
  const size = C / groups;
  const ov = values(o!) as Float32Array;
  const gv = values(gate!) as Float32Array;
  const wv = values(weight!) as Float32Array;
  const yv = outValues(y!) as Float32Array;
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < groups; g++) {
      const base = r * C + g * size;
      let ss = 0;
      for (let j = 0; j < size; j++) ss += ov[base + j]! * ov[base + j]!;
      const inv = 1 / Math.sqrt(ss / size + eps);
      for (let j = 0; j < size; j++) {
        const c = g * size + j;
        yv[base + j] = ov[base + j]! * inv * wv[c]! * (1 / (1 + Math.exp(-gv[base + j]!)));
      }
    }
  }
  commit(y!, yv);
});
