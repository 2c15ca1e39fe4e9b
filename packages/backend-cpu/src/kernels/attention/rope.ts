/**
 * CPU kernel of `rope` (@ring-linear/attention, MODEL_SPEC §2.3): partial NeoX rotate-half on the
 * first rotaryDim channels, fp32 angles position * inv_freq as the reference computes them.
 */
import { commit, outValues, register, values } from '../../util.js';

interface RopeAttrs {
  rotaryDim: number;
  theta: number;
  inverse: boolean;
}

/** inv_freq[i] = 1 / theta^(2i / rotaryDim), each step rounded to f32 (the op's definition). */
function invFreq(rotaryDim: number, theta: number): Float32Array {
  const out = new Float32Array(rotaryDim / 2);
  for (let i = 0; i < out.length; i++) {
    out[i] = Math.fround(1 / Math.fround(Math.pow(Math.fround(theta), Math.fround((2 * i) / rotaryDim))));
  }
  return out;
}

register('rope', ({ inputs: [x, positions], outputs: [y], attrs }) => {
  const { rotaryDim, theta, inverse } = attrs as RopeAttrs;
  const r = x!.shape.length;
  const [T, H, D] = x!.shape.slice(r - 3) as [number, number, number];
  const B = r === 4 ? x!.shape[0]! : 1;
  const perBatch = positions!.shape.length === 2;
  const xv = values(x!) as Float32Array;
  const pv = values(positions!) as Int32Array;
  const yv = outValues(y!) as Float32Array;
  const half = rotaryDim / 2;
  const inv = invFreq(rotaryDim, theta);
  const cs = new Float64Array(half);
  const sn = new Float64Array(half);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const pos = Math.fround(pv[perBatch ? b * T + t : t]!);
      for (let i = 0; i < half; i++) {
        const angle = Math.fround(pos * inv[i]!);
        cs[i] = Math.fround(Math.cos(angle));
        const s = Math.fround(Math.sin(angle));
        sn[i] = inverse ? -s : s;
      }
      for (let h = 0; h < H; h++) {
        const o = ((b * T + t) * H + h) * D;
        for (let i = 0; i < half; i++) {
          const x1 = xv[o + i]!;
          const x2 = xv[o + i + half]!;
          yv[o + i] = x1 * cs[i]! - x2 * sn[i]!;
          yv[o + i + half] = x2 * cs[i]! + x1 * sn[i]!;
        }
        for (let d = rotaryDim; d < D; d++) yv[o + d] = xv[o + d]!;
      }
    }
  }
  commit(y!, yv);
});
