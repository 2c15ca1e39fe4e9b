import { describe, expect, it } from 'vitest';
import '@ring-linear/backend-cpu';
import {
  AttrError,
  DTypeError,
  ShapeError,
  add,
  memory,
  mul,
  sum,
  tidy,
  valueAndGrad,
  withKernelsDisabled,
  type Tensor,
} from '@ring-linear/core';
import {
  lightningAttention,
  lightningAttentionStep,
  lightningChunkedComposite,
  lightningRecurrentComposite,
  type LightningAttrs,
} from '../src/index.js';
import {
  SEED,
  dot,
  expectClose,
  finiteDiff,
  linearQuadraticRef,
  linearRecurrentRef,
  read,
  rngFor,
  t,
  type LinearRefInput,
} from './helpers.js';

console.log(`lightning attention tests: seed ${SEED} (ATTN_SEED=${SEED} reproduces)`);

interface Case {
  name: string;
  B: number;
  T: number;
  H: number;
  D: number;
  Dv: number;
  C: number;
  cu?: number[];
}

const CASES: Case[] = [
  { name: 'odd T (37), chunk 16, batch 2', B: 2, T: 37, H: 3, D: 8, Dv: 5, C: 16 },
  { name: 'chunk-boundary T (32 = 2 chunks of 16)', B: 1, T: 32, H: 2, D: 4, Dv: 4, C: 16 },
  { name: 'T (5) smaller than a chunk (64)', B: 3, T: 5, H: 1, D: 6, Dv: 3, C: 64 },
  { name: 'single token, chunk 1', B: 2, T: 1, H: 2, D: 3, Dv: 2, C: 1 },
  { name: 'packed sequences [0, 7, 23, 24, 40], chunk 8', B: 1, T: 40, H: 2, D: 5, Dv: 4, C: 8, cu: [0, 7, 23, 24, 40] },
];

function makeInput(c: Case, label: string, decayRange: [number, number] = [0.02, 1.5]): LinearRefInput {
  const rng = rngFor(label);
  const N = c.cu ? c.cu.length - 1 : c.B;
  const decay = new Float64Array(c.H);
  for (let h = 0; h < c.H; h++) decay[h] = Math.fround(rng.uniform(decayRange[0], decayRange[1]));
  return {
    B: c.B, T: c.T, H: c.H, D: c.D, Dv: c.Dv,
    q: rng.array(c.B * c.T * c.H * c.D),
    k: rng.array(c.B * c.T * c.H * c.D),
    v: rng.array(c.B * c.T * c.H * c.Dv),
    decay,
    s0: rng.array(N * c.H * c.D * c.Dv, 0.5),
    scale: 1 / Math.sqrt(c.D),
    cuSeqlens: c.cu ?? null,
  };
}

function tensors(x: LinearRefInput) {
  const N = x.s0.length / (x.H * x.D * x.Dv);
  return {
    q: t(x.q, [x.B, x.T, x.H, x.D]),
    k: t(x.k, [x.B, x.T, x.H, x.D]),
    v: t(x.v, [x.B, x.T, x.H, x.Dv]),
    decay: t(x.decay, [x.H]),
    s0: t(x.s0, [N, x.H, x.D, x.Dv]),
  };
}

const attrsOf = (x: LinearRefInput, C: number): LightningAttrs => ({ scale: x.scale, chunkSize: C, cuSeqlens: x.cuSeqlens ? [...x.cuSeqlens] : null });

describe('lightningAttention forward: chunked == recurrent == quadratic float64 formula', () => {
  for (const c of CASES) {
    it(c.name, () => {
      const x = makeInput(c, `fwd ${c.name}`);
      const quad = linearQuadraticRef(x);
      const rec = linearRecurrentRef(x);
      // The two float64 references agree to float64 rounding.
      expectClose(rec.out, quad.out, 1e-12, 'recurrent ref vs quadratic ref (out)');
      expectClose(rec.state, quad.state, 1e-12, 'recurrent ref vs quadratic ref (state)');

      tidy(() => {
        const { q, k, v, decay, s0 } = tensors(x);
        const opts = { decay, initialState: s0, chunkSize: c.C, cuSeqlens: c.cu ?? null };
        const fused = lightningAttention(q, k, v, opts);
        expect(fused.out.shape).toEqual([c.B, c.T, c.H, c.Dv]);
        expect(fused.finalState.dtype).toBe('f32');
        expectClose(read(fused.out), quad.out, 2e-6, 'fused kernel out');
        expectClose(read(fused.finalState), quad.state, 2e-6, 'fused kernel final state');

        const comp = withKernelsDisabled(['lightningAttention'], () => lightningAttention(q, k, v, opts));
        expectClose(read(comp.out), quad.out, 2e-5, 'composite out');
        expectClose(read(comp.finalState), quad.state, 2e-5, 'composite final state');

        // The recurrent decode op, sequence by sequence, from the same initial state.
        if (!c.cu) {
          const step = lightningAttentionStep(q, k, v, { decay, state: s0 });
          expectClose(read(step.out), quad.out, 2e-6, 'step (recurrent) kernel out');
          expectClose(read(step.state), quad.state, 2e-6, 'step (recurrent) kernel state');
          const stepComp = withKernelsDisabled(['lightningAttentionStep'], () => lightningAttentionStep(q, k, v, { decay, state: s0 }));
          expectClose(read(stepComp.out), quad.out, 2e-5, 'step composite out');
          expectClose(read(stepComp.state), quad.state, 2e-5, 'step composite state');
        }
      });
    });
  }

  it('omitted initial state means zeros; chunk size changes only the evaluation order', () => {
    const c: Case = { name: '', B: 1, T: 29, H: 2, D: 4, Dv: 3, C: 8 };
    const x = makeInput(c, 'zero state');
    x.s0.fill(0);
    const quad = linearQuadraticRef(x);
    tidy(() => {
      const { q, k, v, decay } = tensors(x);
      for (const chunkSize of [1, 3, 8, 29, 64]) {
        const r = lightningAttention(q, k, v, { decay, chunkSize });
        expectClose(read(r.out), quad.out, 2e-6, `chunkSize ${chunkSize} out`);
        expectClose(read(r.finalState), quad.state, 2e-6, `chunkSize ${chunkSize} state`);
      }
    });
  });

  it('bf16 and f16 inputs: computed wide, rounded once; state stays f32', () => {
    const c: Case = { name: '', B: 2, T: 19, H: 2, D: 8, Dv: 8, C: 8 };
    const x = makeInput(c, 'low precision');
    for (const dtype of ['bf16', 'f16'] as const) {
      tidy(() => {
        const q = t(x.q, [2, 19, 2, 8], dtype);
        const k = t(x.k, [2, 19, 2, 8], dtype);
        const v = t(x.v, [2, 19, 2, 8], dtype);
        // The reference sees the same rounded inputs.
        const xr = { ...x, q: read(q), k: read(k), v: read(v) };
        const quad = linearQuadraticRef(xr);
        const decay = t(x.decay, [2]);
        const s0 = t(x.s0, [2, 2, 8, 8]);
        const r = lightningAttention(q, k, v, { decay, initialState: s0, chunkSize: 8 });
        expect(r.out.dtype).toBe(dtype);
        expect(r.finalState.dtype).toBe('f32');
        const ulp = dtype === 'bf16' ? 2 ** -8 : 2 ** -11;
        expectClose(read(r.out), quad.out, ulp, `${dtype} out`);
        expectClose(read(r.finalState), quad.state, 2e-6, `${dtype} state (f32)`);
        const comp = withKernelsDisabled(['lightningAttention'], () => lightningAttention(q, k, v, { decay, initialState: s0, chunkSize: 8 }));
        expectClose(read(comp.out), quad.out, 2 * ulp, `${dtype} composite out`);
      });
    }
  });

  it('T = 8192 with strong decay stays finite (decay powers in log space) and matches the recurrence', () => {
    const c: Case = { name: '', B: 1, T: 8192, H: 3, D: 4, Dv: 4, C: 64 };
    const x = makeInput(c, 'long');
    x.decay = Float64Array.from([Math.fround(0.0005), Math.fround(12), Math.fround(80)]); // weak, strong, extreme
    const rec = linearRecurrentRef(x);
    tidy(() => {
      const { q, k, v, decay, s0 } = tensors(x);
      const r = lightningAttention(q, k, v, { decay, initialState: s0 });
      const out = read(r.out);
      expect(out.every(Number.isFinite)).toBe(true);
      expectClose(out, rec.out, 2e-6, 'T=8192 kernel out');
      expectClose(read(r.finalState), rec.state, 2e-6, 'T=8192 kernel state');
      const comp = withKernelsDisabled(['lightningAttention'], () => lightningAttention(q, k, v, { decay, initialState: s0 }));
      const cout = read(comp.out);
      expect(cout.every(Number.isFinite)).toBe(true);
      expectClose(cout, rec.out, 5e-5, 'T=8192 composite out');
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Gradients

/** A scalar loss of both outputs with fixed random weights: sum(out * Wo) + sum(state * Ws). */
function lossRef(x: LinearRefInput, wo: Float64Array, ws: Float64Array): number {
  const r = linearQuadraticRef(x);
  return dot(r.out, wo) + dot(r.state, ws);
}

describe('lightningAttention gradients', () => {
  const gradCases: Case[] = [
    { name: 'odd T, chunk 4, batch 2', B: 2, T: 11, H: 2, D: 3, Dv: 2, C: 4 },
    { name: 'packed [0, 3, 4, 10]', B: 1, T: 10, H: 2, D: 3, Dv: 3, C: 4, cu: [0, 3, 4, 10] },
  ];
  for (const c of gradCases) {
    it(`${c.name}: kernel vs finite differences of float64, vs the composite's autograd, vs the backward composite`, () => {
      const x = makeInput(c, `grad ${c.name}`);
      const rng = rngFor(`grad weights ${c.name}`);
      const wo = rng.array(x.q.length / x.D * x.Dv);
      const ws = rng.array(x.s0.length);
      const fd = [x.q, x.k, x.v, x.s0].map((arr) => finiteDiff(() => lossRef(x, wo, ws), arr));
      tidy(() => {
        const { q, k, v, decay, s0 } = tensors(x);
        const Wo = t(wo, [c.B, c.T, c.H, c.Dv]);
        const Ws = t(ws, s0.shape);
        const attrs = attrsOf(x, c.C);
        const loss = (r: { out: Tensor; finalState: Tensor }) => add(sum(mul(r.out, Wo)), sum(mul(r.finalState, Ws)));
        const viaOp = valueAndGrad(() => loss(lightningAttention(q, k, v, { decay, initialState: s0, chunkSize: c.C, cuSeqlens: c.cu ?? null })), [q, k, v, s0]);
        const viaComposite = valueAndGrad(() => {
          const [out, finalState] = lightningChunkedComposite(q, k, v, decay, s0, attrs);
          return loss({ out, finalState });
        }, [q, k, v, s0]);
        const viaBackwardComposite = withKernelsDisabled(['lightningAttentionBackward'], () =>
          valueAndGrad(() => loss(lightningAttention(q, k, v, { decay, initialState: s0, chunkSize: c.C, cuSeqlens: c.cu ?? null })), [q, k, v, s0]),
        );
        expect(viaOp.value.dataSync()[0]).toBeCloseTo(lossRef(x, wo, ws), 3);
        ['q', 'k', 'v', 'initialState'].forEach((name, i) => {
          expectClose(read(viaOp.grads[i]!), fd[i]!, 1e-5, `d${name}: backward kernel vs finite differences`);
          expectClose(read(viaComposite.grads[i]!), read(viaOp.grads[i]!), 2e-5, `d${name}: composite autograd vs backward kernel`);
          expectClose(read(viaBackwardComposite.grads[i]!), read(viaOp.grads[i]!), 2e-5, `d${name}: backward composite vs backward kernel`);
        });
      });
    });
  }

  it('lightningAttentionStep: gradients vs finite differences and the recurrent composite', () => {
    const c: Case = { name: '', B: 2, T: 3, H: 2, D: 3, Dv: 2, C: 64 };
    const x = makeInput(c, 'step grad');
    const rng = rngFor('step grad weights');
    const wo = rng.array(c.B * c.T * c.H * c.Dv);
    const ws = rng.array(x.s0.length);
    const fd = [x.q, x.k, x.v, x.s0].map((arr) => finiteDiff(() => lossRef(x, wo, ws), arr));
    tidy(() => {
      const { q, k, v, decay, s0 } = tensors(x);
      const Wo = t(wo, [c.B, c.T, c.H, c.Dv]);
      const Ws = t(ws, s0.shape);
      const viaOp = valueAndGrad(() => {
        const r = lightningAttentionStep(q, k, v, { decay, state: s0 });
        return add(sum(mul(r.out, Wo)), sum(mul(r.state, Ws)));
      }, [q, k, v, s0]);
      const viaComposite = valueAndGrad(() => {
        const [out, state] = lightningRecurrentComposite(q, k, v, decay, s0, x.scale);
        return add(sum(mul(out, Wo)), sum(mul(state, Ws)));
      }, [q, k, v, s0]);
      for (let i = 0; i < 4; i++) {
        expectClose(read(viaOp.grads[i]!), fd[i]!, 1e-5, `step grad ${i} vs finite differences`);
        expectClose(read(viaComposite.grads[i]!), read(viaOp.grads[i]!), 2e-5, `step grad ${i} composite vs kernel`);
      }
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe('lightning attention: prefill then decode == one pass; flat memory', () => {
  it('prefill T0 tokens (chunked), then decode the rest one and three at a time (recurrent)', () => {
    const c: Case = { name: '', B: 2, T: 23, H: 2, D: 8, Dv: 8, C: 8 };
    const x = makeInput(c, 'prefill decode');
    x.s0.fill(0);
    const quad = linearQuadraticRef(x);
    tidy(() => {
      const { q, k, v, decay } = tensors(x);
      const sliceT = sliceRows;
      const T0 = 13;
      const pre = lightningAttention(sliceT(q, 0, T0), sliceT(k, 0, T0), sliceT(v, 0, T0), { decay, chunkSize: 8 });
      const outs: Float64Array[] = [read(pre.out)];
      let state = pre.finalState;
      let t0 = T0;
      for (const n of [1, 3, 1, 1, 3, 1]) {
        const r = lightningAttentionStep(sliceT(q, t0, n), sliceT(k, t0, n), sliceT(v, t0, n), { decay, state });
        outs.push(read(r.out));
        state = r.state;
        t0 += n;
      }
      expect(t0).toBe(c.T);
      // Reassemble [B, T, H, Dv] from the per-call [B, n, H, Dv] pieces.
      const got = new Float64Array(quad.out.length);
      const row = c.H * c.Dv;
      let start = 0;
      for (const piece of outs) {
        const n = piece.length / (c.B * row);
        for (let b = 0; b < c.B; b++) got.set(piece.subarray(b * n * row, (b + 1) * n * row), (b * c.T + start) * row);
        start += n;
      }
      expectClose(got, quad.out, 2e-6, 'prefill + decode vs one pass');
      expectClose(read(state), quad.state, 2e-6, 'state after decode');
    });
  });

  it('many decode steps keep memory flat', () => {
    tidy(() => {
      const rng = rngFor('flat memory');
      const B = 1, H = 2, D = 4;
      const decay = t(Float64Array.from([0.1, 0.5]), [H]);
      let state = t(new Float64Array(B * H * D * D), [B, H, D, D]);
      const step = () => {
        const next = tidy(() => {
          const q = t(rng.array(B * H * D), [B, 1, H, D]);
          return lightningAttentionStep(q, q, q, { decay, state }).state;
        });
        state.dispose();
        state = next;
      };
      for (let i = 0; i < 5; i++) step();
      const before = memory();
      for (let i = 0; i < 200; i++) step();
      const after = memory();
      expect(after.tensors).toBe(before.tensors);
      expect(after.bytes).toBe(before.bytes);
      state.dispose();
    });
  });
});

function sliceRows(a: Tensor, t0: number, n: number): Tensor {
  const [B, T, H, D] = a.shape as [number, number, number, number];
  const src = read(a);
  const out = new Float64Array(B * n * H * D);
  for (let b = 0; b < B; b++) out.set(src.subarray((b * T + t0) * H * D, (b * T + t0 + n) * H * D), b * n * H * D);
  return t(out, [B, n, H, D]);
}

// ---------------------------------------------------------------------------------------------

describe('lightning attention: bad input gets clear typed errors', () => {
  const q = () => t(new Float64Array(2 * 5 * 4 * 8).fill(0.5), [2, 5, 4, 8]);
  const decay4 = () => t([0.1, 0.2, 0.3, 0.4], [4]);
  it('head counts that differ between q and k', () => {
    tidy(() => {
      const k = t(new Float64Array(2 * 5 * 3 * 8).fill(1), [2, 5, 3, 8]);
      expect(() => lightningAttention(q(), k, k, { decay: decay4() })).toThrow(ShapeError);
      expect(() => lightningAttention(q(), k, k, { decay: decay4() })).toThrow(/q has 4 heads but 'k' has 3/);
    });
  });
  it('head_dim mismatch', () => {
    tidy(() => {
      const k = t(new Float64Array(2 * 5 * 4 * 6).fill(1), [2, 5, 4, 6]);
      expect(() => lightningAttention(q(), k, q(), { decay: decay4() })).toThrow(/head_dim mismatch: q has head_dim 8, k has 6/);
    });
  });
  it('decay of the wrong length or dtype', () => {
    tidy(() => {
      expect(() => lightningAttention(q(), q(), q(), { decay: t([0.1, 0.2], [2]) })).toThrow(/'decay' must have shape \[4\]/);
      expect(() => lightningAttention(q(), q(), q(), { decay: t([0.1, 0.2, 0.3, 0.4], [4], 'bf16') })).toThrow(DTypeError);
    });
  });
  it('state of the wrong shape or dtype', () => {
    tidy(() => {
      const bad = t(new Float64Array(2 * 4 * 8 * 7).fill(0), [2, 4, 8, 7]);
      expect(() => lightningAttention(q(), q(), q(), { decay: decay4(), initialState: bad })).toThrow(
        /'initialState' must have shape \[2, 4, 8, 8\].*got \[2, 4, 8, 7\]/,
      );
      const bf = t(new Float64Array(2 * 4 * 8 * 8).fill(0), [2, 4, 8, 8], 'bf16');
      expect(() => lightningAttention(q(), q(), q(), { decay: decay4(), initialState: bf })).toThrow(/input 'initialState' must have dtype f32, got bf16/);
      expect(() => lightningAttentionStep(q(), q(), q(), { decay: decay4(), state: bf })).toThrow(/input 'state' must have dtype f32, got bf16/);
      const small = t(new Float64Array(1 * 4 * 8 * 8).fill(0), [1, 4, 8, 8]);
      expect(() => lightningAttentionStep(q(), q(), q(), { decay: decay4(), state: small })).toThrow(/'state' must have shape \[2, 4, 8, 8\]/);
    });
  });
  it('sequence offsets not increasing, not starting at 0, not ending at T; packed with batch > 1', () => {
    tidy(() => {
      const q1 = t(new Float64Array(10 * 4 * 8).fill(0.5), [1, 10, 4, 8]);
      const d = decay4();
      expect(() => lightningAttention(q1, q1, q1, { decay: d, cuSeqlens: [0, 6, 4, 10] })).toThrow(AttrError);
      expect(() => lightningAttention(q1, q1, q1, { decay: d, cuSeqlens: [0, 6, 4, 10] })).toThrow(/strictly increasing.*offset 2 is 4 after 6/);
      expect(() => lightningAttention(q1, q1, q1, { decay: d, cuSeqlens: [0, 5, 5, 10] })).toThrow(/strictly increasing/);
      expect(() => lightningAttention(q1, q1, q1, { decay: d, cuSeqlens: [1, 10] })).toThrow(/must start at 0/);
      expect(() => lightningAttention(q1, q1, q1, { decay: d, cuSeqlens: [0, 9] })).toThrow(/last 'cuSeqlens' offset must equal the packed length 10/);
      expect(() => lightningAttention(q(), q(), q(), { decay: d, cuSeqlens: [0, 5] })).toThrow(/need batch size 1/);
    });
  });
  it('mixed dtypes and bad chunk size', () => {
    tidy(() => {
      const qb = t(new Float64Array(2 * 5 * 4 * 8).fill(0.5), [2, 5, 4, 8], 'bf16');
      expect(() => lightningAttention(q(), qb, q(), { decay: decay4() })).toThrow(/same dtype/);
      expect(() => lightningAttention(q(), q(), q(), { decay: decay4(), chunkSize: 0 })).toThrow(/'chunkSize' expected an integer >= 1/);
    });
  });
});
