/**
 * CPU kernels of the fused FP8 ops of @ring-linear/fp8. Each computes its f32 intermediate with the
 * same roundings as the composite's unfused ops on this backend (the rmsNorm kernel's float64 row
 * math, the elementwise kernels' one rounding per op), then quantizes it like fp8Quantize, so
 * fused and composite agree byte for byte.
 */
import { UNARY_FNS } from '../elementwise.js';
import { gemmF32 } from '../gemm.js';
import { raw, register, values } from '../../util.js';
import { RowQuantizer, quantizeInto, type Fp8 } from './common.js';

const silu = UNARY_FNS.silu!;
const sigmoid = UNARY_FNS.sigmoid!;
const f = Math.fround;

type QuantAttrs = { dtype: Fp8; pow2Scale: boolean };

/** RMSNorm of one row as the CPU rmsNorm kernel computes it: float64, eps as f32, one rounding. */
function rmsNormRow(x: Float32Array, base: number, w: Float32Array, d: number, eps: number, out: Float32Array, outBase = 0): void {
  let ss = 0;
  for (let j = 0; j < d; j++) ss += x[base + j]! * x[base + j]!;
  const inv = 1 / Math.sqrt(ss / d + eps);
  for (let j = 0; j < d; j++) out[outBase + j] = w[j]! * (x[base + j]! * inv);
}

register('fp8RmsNormQuant', ({ inputs: [x, w], outputs: [q, s], attrs }) => {
  const { eps, dtype, pow2Scale } = attrs as QuantAttrs & { eps: number };
  const d = x!.shape[x!.shape.length - 1]!;
  const xv = values(x!) as Float32Array;
  const wv = values(w!) as Float32Array;
  const rq = new RowQuantizer(d, dtype, pow2Scale, raw(q!) as Uint8Array, raw(s!) as Float32Array);
  const y = new Float32Array(d);
  for (let r = 0; r < x!.size / d; r++) {
    rmsNormRow(xv, r * d, wv, d, Math.fround(eps), y);
    rq.row(r, y);
  }
});

register('fp8SwigluQuant', ({ inputs: [gu], outputs: [q, s], attrs }) => {
  const { dtype, pow2Scale } = attrs as QuantAttrs;
  const guv = values(gu!) as Float32Array;
  const I = gu!.shape[gu!.shape.length - 1]! / 2;
  const rows = guv.length / (2 * I);
  const rq = new RowQuantizer(I, dtype, pow2Scale, raw(q!) as Uint8Array, raw(s!) as Float32Array);
  const h = new Float32Array(I);
  for (let r = 0; r < rows; r++) {
    const base = r * 2 * I;
    for (let j = 0; j < I; j++) h[j] = f(silu(guv[base + j]!)) * guv[base + I + j]!;
    rq.row(r, h);
  }
});

register('fp8SwigluBackwardQuant', ({ inputs: [gu, dh], outputs: [q, s, qT, sT], attrs }) => {
  const { dtype, pow2Scale } = attrs as QuantAttrs;
  const guv = values(gu!) as Float32Array;
  const dhv = values(dh!) as Float32Array;
  const M = gu!.shape[0]!;
  const C = gu!.shape[1]!;
  const I = C / 2;
  const dgu = new Float32Array(M * C);
  for (let m = 0; m < M; m++) {
    for (let j = 0; j < I; j++) {
      const g = guv[m * C + j]!;
      const u = guv[m * C + I + j]!;
      const d = dhv[m * I + j]!;
      // The composite's ops, one f32 rounding each: s = sigmoid(g); du = dh * silu(g);
      // dsilu = s + (g * s) * (1 - s); dg = (dh * u) * dsilu.
      const sg = f(sigmoid(g));
      const dsilu = f(sg + f(f(g * sg) * f(1 - sg)));
      dgu[m * C + j] = f(d * u) * dsilu;
      dgu[m * C + I + j] = d * f(silu(g));
    }
  }
  quantTransposeRows(dgu, M, C, dtype, pow2Scale, raw(q!) as Uint8Array, raw(s!) as Float32Array, raw(qT!) as Uint8Array, raw(sT!) as Float32Array);
});

/** The fp8QuantTranspose kernel's math on a host array x [M, C]. */
function quantTransposeRows(
  x: Float32Array, M: number, C: number, dtype: Fp8, pow2Scale: boolean,
  q: Uint8Array, s: Float32Array, qT: Uint8Array, sT: Float32Array,
): void {
  quantizeInto(x, [M, C], 'tile1x128', dtype, pow2Scale, q, s);
  const xT = new Float32Array(M * C);
  for (let m = 0; m < M; m++) for (let c = 0; c < C; c++) xT[c * M + m] = x[m * C + c]!;
  quantizeInto(xT, [C, M], 'tile1x128', dtype, pow2Scale, qT, sT);
}

register('fp8GroupRmsNormGateQuant', ({ inputs: [o, gate, w], outputs: [q, s], attrs }) => {
  const { groups, eps, dtype, pow2Scale } = attrs as QuantAttrs & { groups: number; eps: number };
  const ov = values(o!) as Float32Array;
  const gv = values(gate!) as Float32Array;
  const wv = values(w!) as Float32Array;
  const C = o!.shape[o!.shape.length - 1]!;
  const size = C / groups;
  const ones = new Float32Array(size).fill(1);
  const rq = new RowQuantizer(C, dtype, pow2Scale, raw(q!) as Uint8Array, raw(s!) as Float32Array);
  const y = new Float32Array(C);
  for (let r = 0; r < ov.length / C; r++) {
    // Group RMSNorm with unit weight, as the rmsNorm kernel on [..., groups, size].
    for (let g = 0; g < groups; g++) rmsNormRow(ov, r * C + g * size, ones, size, Math.fround(eps), y, g * size);
    for (let c = 0; c < C; c++) y[c] = f(y[c]! * wv[c]!) * f(sigmoid(gv[r * C + c]!));
    rq.row(r, y);
  }
});

/** fp32(x) @ fp32(w)^T: the operands decoded once, then the same GEMM as the matmul kernel. */
register('routerGemm', ({ inputs: [x, w], outputs: [y] }) => {
  const H = x!.shape[x!.shape.length - 1]!;
  const E = w!.shape[0]!;
  const M = x!.size / H;
  gemmF32(values(x!) as Float32Array, values(w!) as Float32Array, raw(y!) as Float32Array, M, E, H, false, true);
});

