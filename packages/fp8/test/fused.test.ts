import { describe, expect, it } from 'vitest';
import '@ring-linear/backend-cpu';
import {
  AttrError,
  DTypeError,
  ShapeError,
  dispose,
  memory,
  mul,
  sum,
  tensor,
  tidy,
  valueAndGrad,
  withKernelsDisabled,
  type Tensor,
} from '@ring-linear/core';
import {
  FP8_OPS,
  groupRmsNormGateQuant,
  rmsNormQuant,
  routerGemm,
  swigluBackwardQuant,
  swigluQuant,
} from '../src/index.js';
import { SEED, decodeFp8, expectBytes, groupOf, read, rngFor, t, type Fp8 } from './helpers.js';

console.log(`fp8 fused-op tests: seed ${SEED} (FP8_SEED=${SEED} reproduces)`);

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/** Raw bytes of every output of fn (run in a scope), in order. */
async function outBytes(fn: () => Tensor[]): Promise<Uint8Array[]> {
  const outs = tidy(fn);
  try {
    return await Promise.all(outs.map((o) => o.bytes()));
  } finally {
    dispose(outs);
  }
}

/**
 * The fused kernel, its composite (the unfused ops, their kernels on), and the fully decomposed
 * composite (every FP8 kernel off: core ops only) give the same bytes.
 */
async function expectFusedEqualsComposite(op: string, fn: () => Tensor[], dtype: Fp8): Promise<void> {
  const fused = await outBytes(fn);
  const unfused = await withKernelsDisabled([op], () => outBytes(fn));
  const coreOnly = await withKernelsDisabled([...FP8_OPS], () => outBytes(fn));
  expect(unfused.length).toBe(fused.length);
  fused.forEach((b, i) => {
    // Outputs alternate [data, scales, (dataT, scalesT)]: even indices are FP8 codes.
    const fp8 = i % 2 === 0 ? dtype : undefined;
    expectBytes(unfused[i]!, b, `${op} output ${i}: composite vs fused`, fp8);
    expectBytes(coreOnly[i]!, b, `${op} output ${i}: core-ops composite vs fused`, fp8);
  });
}

/**
 * The dequantized output is within the quantization bound of the float64 formula y:
 * |deq - y| <= u |y| + h * scale (+ f32 rounding of y), u = 2^-4 (E4M3) / 2^-3 (E5M2), h = 2^-10 / 2^-17.
 */
function expectWithinQuantBound(codes: Uint8Array, scales: Float32Array, shape: number[], y: Float64Array, dtype: Fp8, what: string): void {
  const [u, h] = dtype === 'f8e4m3' ? [2 ** -4, 2 ** -10] : [2 ** -3, 2 ** -17];
  let worst = 0;
  for (let i = 0; i < y.length; i++) {
    const s = scales[groupOf(shape, 'tile1x128', i)]!;
    const deq = decodeFp8(dtype, codes[i]!) * s;
    const bound = (u + 2 ** -20) * Math.abs(y[i]!) + h * s * 1.001 + 1e-30;
    const err = Math.abs(deq - y[i]!);
    worst = Math.max(worst, err / bound);
    if (!(err <= bound)) expect.fail(`${what}: element ${i}: dequantized ${deq}, float64 ${y[i]}, error ${err} > bound ${bound}`);
  }
  expect(worst).toBeLessThanOrEqual(1);
}

describe('fp8RmsNormQuant', () => {
  for (const [rows, D] of [[1, 1], [3, 127], [4, 300], [2, 128]] as const) {
    for (const dtype of ['f8e4m3', 'f8e5m2'] as const) {
      it(`[${rows}, ${D}] ${dtype}: = quantize(rmsNorm(x)) byte for byte; within the quantization bound of float64`, async () => {
        const rng = rngFor(`rmsq ${rows} ${D} ${dtype}`);
        const x = rng.array(rows * D, 2);
        const w = Float64Array.from(rng.array(D), (v) => Math.fround(1 + 0.3 * v));
        const eps = 1e-5;
        const xt = t(x, [rows, D]);
        const wt = t(w, [D]);
        for (const pow2Scale of [false, true]) {
          await expectFusedEqualsComposite('fp8RmsNormQuant', () => rmsNormQuant(xt, wt, { eps, dtype, pow2Scale }), dtype);
        }
        const [codes, scales] = await outBytes(() => rmsNormQuant(xt, wt, { eps, dtype }));
        const y = new Float64Array(rows * D);
        for (let r = 0; r < rows; r++) {
          let ss = 0;
          for (let j = 0; j < D; j++) ss += x[r * D + j]! ** 2;
          const inv = 1 / Math.sqrt(ss / D + Math.fround(eps));
          for (let j = 0; j < D; j++) y[r * D + j] = w[j]! * x[r * D + j]! * inv;
        }
        expectWithinQuantBound(codes!, new Float32Array(scales!.buffer), [rows, D], y, dtype, 'rmsNormQuant');
        // bf16 activations: fused and composite still agree.
        const xb = t(x, [rows, D], 'bf16');
        await expectFusedEqualsComposite('fp8RmsNormQuant', () => rmsNormQuant(xb, wt, { eps, dtype }), dtype);
        dispose([xt, wt, xb]);
      });
    }
  }
});

describe('fp8SwigluQuant and fp8SwigluBackwardQuant', () => {
  for (const [M, I] of [[1, 1], [3, 130], [130, 64], [5, 200]] as const) {
    it(`[${M}, 2x${I}]: forward and backward = their composites byte for byte; within the quantization bound`, async () => {
      const rng = rngFor(`swiglu ${M} ${I}`);
      const gu = rng.array(M * 2 * I, 2);
      const dh = rng.array(M * I, 0.1);
      const gut = t(gu, [M, 2 * I]);
      const dht = t(dh, [M, I]);
      for (const dtype of ['f8e4m3', 'f8e5m2'] as const) {
        for (const pow2Scale of [false, true]) {
          await expectFusedEqualsComposite('fp8SwigluQuant', () => swigluQuant(gut, { dtype, pow2Scale }), dtype);
          await expectFusedEqualsComposite('fp8SwigluBackwardQuant', () => swigluBackwardQuant(gut, dht, { dtype, pow2Scale }), dtype);
        }
        // Forward vs float64.
        const h = new Float64Array(M * I);
        const dgu = new Float64Array(M * 2 * I);
        const dguT = new Float64Array(M * 2 * I);
        for (let m = 0; m < M; m++) {
          for (let j = 0; j < I; j++) {
            const g = gu[m * 2 * I + j]!;
            const u = gu[m * 2 * I + I + j]!;
            const s = sigmoid(g);
            h[m * I + j] = g * s * u;
            const d = dh[m * I + j]!;
            dgu[m * 2 * I + j] = d * u * (s + g * s * (1 - s));
            dgu[m * 2 * I + I + j] = d * g * s;
          }
        }
        for (let m = 0; m < M; m++) for (let c = 0; c < 2 * I; c++) dguT[c * M + m] = dgu[m * 2 * I + c]!;
        const [hq, hs] = await outBytes(() => swigluQuant(gut, { dtype }));
        expectWithinQuantBound(hq!, new Float32Array(hs!.buffer), [M, I], h, dtype, 'swiglu h');
        const [q, s, qT, sT] = await outBytes(() => swigluBackwardQuant(gut, dht, { dtype }));
        expectWithinQuantBound(q!, new Float32Array(s!.buffer), [M, 2 * I], dgu, dtype, 'd[g|u]');
        expectWithinQuantBound(qT!, new Float32Array(sT!.buffer), [2 * I, M], dguT, dtype, 'd[g|u]^T');
      }
      // bf16 inputs.
      const gub = t(gu, [M, 2 * I], 'bf16');
      await expectFusedEqualsComposite('fp8SwigluQuant', () => swigluQuant(gub), 'f8e4m3');
      await expectFusedEqualsComposite('fp8SwigluBackwardQuant', () => swigluBackwardQuant(gub, dht), 'f8e4m3');
      dispose([gut, dht, gub]);
    });
  }

  it('takes leading batch dims in the forward', async () => {
    const rng = rngFor('swiglu batch');
    const gu = t(rng.array(2 * 3 * 10), [2, 3, 10]);
    const [q, s] = swigluQuant(gu);
    expect(q.shape).toEqual([2, 3, 5]);
    expect(s.shape).toEqual([2, 3, 1]);
    await expectFusedEqualsComposite('fp8SwigluQuant', () => swigluQuant(gu), 'f8e4m3');
    dispose([gu, q, s]);
  });
});

describe('fp8GroupRmsNormGateQuant', () => {
  for (const [rows, C, groups] of [[1, 4, 1], [3, 256, 4], [5, 96, 3], [2, 130, 2]] as const) {
    it(`[${rows}, ${C}] in ${groups} groups: = the unfused gate + quantize byte for byte; within the bound`, async () => {
      const rng = rngFor(`gate ${rows} ${C} ${groups}`);
      const o = rng.array(rows * C, 2);
      const gate = rng.array(rows * C, 2);
      const w = Float64Array.from(rng.array(C), (v) => Math.fround(1 + 0.3 * v));
      const eps = 1e-6;
      const [ot, gt, wt] = [t(o, [rows, C]), t(gate, [rows, C]), t(w, [C])];
      for (const dtype of ['f8e4m3', 'f8e5m2'] as const) {
        for (const pow2Scale of [false, true]) {
          await expectFusedEqualsComposite(
            'fp8GroupRmsNormGateQuant', () => groupRmsNormGateQuant(ot, gt, wt, { groups, eps, dtype, pow2Scale }), dtype,
          );
        }
        const size = C / groups;
        const y = new Float64Array(rows * C);
        for (let r = 0; r < rows; r++) {
          for (let g = 0; g < groups; g++) {
            let ss = 0;
            for (let j = 0; j < size; j++) ss += o[r * C + g * size + j]! ** 2;
            const inv = 1 / Math.sqrt(ss / size + Math.fround(eps));
            for (let j = 0; j < size; j++) {
              const i = r * C + g * size + j;
              y[i] = o[i]! * inv * w[g * size + j]! * sigmoid(gate[i]!);
            }
          }
        }
        const [q, s] = await outBytes(() => groupRmsNormGateQuant(ot, gt, wt, { groups, eps, dtype }));
        expectWithinQuantBound(q!, new Float32Array(s!.buffer), [rows, C], y, dtype, 'gate');
      }
      dispose([ot, gt, wt]);
    });
  }
});

describe('routerGemm (fp32 from bf16 inputs)', () => {
  for (const [M, H, E] of [[1, 7, 3], [5, 64, 16], [33, 300, 9]] as const) {
    it(`[${M}, ${H}] x [${E}, ${H}]^T: float64 product to f32 rounding; = composite; gradients`, async () => {
      const rng = rngFor(`router ${M} ${H} ${E}`);
      for (const dt of ['bf16', 'f32'] as const) {
        const x = t(rng.array(M * H), [M, H], dt);
        const w = t(rng.array(E * H, 0.1), [E, H], dt);
        const xv = read(x);
        const wv = read(w);
        const y = routerGemm(x, w);
        expect(y.dtype).toBe('f32');
        const got = read(y);
        for (let m = 0; m < M; m++) {
          for (let e = 0; e < E; e++) {
            let ref = 0;
            let mag = 0;
            for (let k = 0; k < H; k++) {
              ref += xv[m * H + k]! * wv[e * H + k]!;
              mag += Math.abs(xv[m * H + k]! * wv[e * H + k]!);
            }
            expect(Math.abs(got[m * E + e]! - ref)).toBeLessThanOrEqual(2 ** -23 * mag + 1e-30);
          }
        }
        const [a] = await outBytes(() => [routerGemm(x, w)]);
        const [b] = await withKernelsDisabled(['routerGemm'], () => outBytes(() => [routerGemm(x, w)]));
        expectBytes(b!, a!, 'composite');
        // Gradients: dx = dy w, dw = dy^T x (float64), via the kernel and via the composite.
        if (dt === 'f32') {
          const dy = rng.array(M * E);
          const dyt = t(dy, [M, E]);
          const grads = (disabled: string[]) =>
            withKernelsDisabled(disabled, () => {
              const { value, grads: g } = valueAndGrad(() => sum(mul(routerGemm(x, w), dyt)), [x, w]);
              value.dispose();
              return g.map((gi) => {
                const r = read(gi);
                gi.dispose();
                return r;
              });
            });
          const [gx, gw] = grads([]);
          const [cx, cw] = grads(['routerGemm']);
          for (let m = 0; m < M; m++) {
            for (let k = 0; k < H; k++) {
              let ref = 0;
              let mag = 0;
              for (let e = 0; e < E; e++) {
                ref += dy[m * E + e]! * wv[e * H + k]!;
                mag += Math.abs(dy[m * E + e]! * wv[e * H + k]!);
              }
              expect(Math.abs(gx![m * H + k]! - ref)).toBeLessThanOrEqual(2 ** -22 * mag + 1e-30);
            }
          }
          for (let e = 0; e < E; e++) {
            for (let k = 0; k < H; k++) {
              let ref = 0;
              let mag = 0;
              for (let m = 0; m < M; m++) {
                ref += dy[m * E + e]! * xv[m * H + k]!;
                mag += Math.abs(dy[m * E + e]! * xv[m * H + k]!);
              }
              expect(Math.abs(gw![e * H + k]! - ref)).toBeLessThanOrEqual(2 ** -22 * mag + 1e-30);
            }
          }
          expect([...cx!]).toEqual([...gx!]);
          expect([...cw!]).toEqual([...gw!]);
          dyt.dispose();
        }
        dispose([x, w, y]);
      }
    });
  }

  it('takes leading batch dims; the weight may be f32 with bf16 activations', () => {
    const x = t(rngFor('rb').array(2 * 3 * 8), [2, 3, 8], 'bf16');
    const w = t(rngFor('rw').array(4 * 8), [4, 8]);
    const y = routerGemm(x, w);
    expect(y.shape).toEqual([2, 3, 4]);
    dispose([x, w, y]);
  });
});

describe('fused ops: memory and errors', () => {
  it('leave nothing behind', () => {
    const before = memory();
    const rng = rngFor('mem');
    const x = t(rng.array(4 * 130), [4, 130]);
    const w = t(rng.array(130), [130]);
    const gu = t(rng.array(4 * 260), [4, 260]);
    const dh = t(rng.array(4 * 130), [4, 130]);
    for (let i = 0; i < 3; i++) {
      dispose(rmsNormQuant(x, w));
      dispose(swigluQuant(gu));
      dispose(swigluBackwardQuant(gu, dh));
      dispose(groupRmsNormGateQuant(x, x, w, { groups: 2 }));
      dispose(withKernelsDisabled([...FP8_OPS], () => [rmsNormQuant(x, w), swigluBackwardQuant(gu, dh)]));
    }
    dispose([x, w, gu, dh]);
    expect(memory().tensors).toBe(before.tensors);
    expect(memory().bytes).toBe(before.bytes);
  });

  it('bad inputs get typed errors naming what was expected', () => {
    const x = t([1, 2, 3, 4, 5, 6], [2, 3]);
    const w = t([1, 1], [2]);
    expect(() => rmsNormQuant(x, w)).toThrow(ShapeError);
    expect(() => rmsNormQuant(x, w)).toThrow(/'weight' must have shape \[3\]/);
    expect(() => rmsNormQuant(x, t([1, 1, 1], [3]), { eps: -1 })).toThrow(AttrError);
    expect(() => swigluQuant(x)).toThrow(/must be even/);
    expect(() => swigluBackwardQuant(t([1, 2, 3, 4], [2, 2]), t([1, 2, 3, 4], [2, 2]))).toThrow(/'dh' must have shape \[2, 1\]/);
    expect(() => groupRmsNormGateQuant(x, x, t([1, 1, 1], [3]), { groups: 2 })).toThrow(/do not divide into 2 equal groups/);
    expect(() => groupRmsNormGateQuant(x, t([1, 2], [2]), t([1, 1, 1], [3]))).toThrow(/'gate' must have shape \[2, 3\]/);
    expect(() => routerGemm(x, t([1, 2, 3, 4], [2, 2]))).toThrow(/'w' must have shape \[E, 3\]/);
    expect(() => routerGemm(tensor([1, 2, 3], [1, 3], 'i32'), x)).toThrow(DTypeError);
    expect(() => rmsNormQuant(x, t([1, 1, 1], [3]), { dtype: 'bf16' as never })).toThrow(/expected an FP8 dtype/);
    dispose([x, w]);
  });
});

