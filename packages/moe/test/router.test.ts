/**
 * moeRouter against the naive float64 per-token loop of MODEL_SPEC §4 (helpers.routeToken):
 * chosen experts identical, weights and scores to f32 tolerance; constructed exact ties (experts
 * and groups, ties to the lower index), the 0.0 masking of dropped groups, softmax scores, bf16
 * input; gradients against finite differences of the float64 loop and against the composite.
 */
import { describe, expect, it } from 'vitest';
import '@ring-linear/backend-cpu';
import { add, cast, dispose, memory, mul, sum, valueAndGrad, withKernelsDisabled, type Tensor } from '@ring-linear/core';
import { moeRouter, type MoeRouterOptions } from '../src/index.js';
import { SEED, expectClose, read, refRouter, rngFor, routeToken, t, type RouterSettings } from './helpers.js';

function runRouter(x: Tensor, w: Tensor, b: Tensor, o: MoeRouterOptions, composite = false) {
  const run = () => {
    const r = moeRouter(x, w, b, o);
    const out = { weights: read(r.weights), indices: Array.from(r.indices.dataSync()), scores: read(r.scores) };
    dispose(r);
    return out;
  };
  return composite ? withKernelsDisabled(['moeRouter'], run) : run();
}

interface Case {
  readonly n: number;
  readonly h: number;
  readonly e: number;
  readonly o: MoeRouterOptions;
  readonly desc: string;
}

const CASES: Case[] = [
  { n: 9, h: 7, e: 8, o: { topK: 2 }, desc: 'sigmoid, no groups' },
  { n: 11, h: 5, e: 16, o: { topK: 4, nGroup: 4, topkGroup: 2, routedScalingFactor: 2.5 }, desc: 'groups 4 keep 2, scale 2.5' },
  { n: 6, h: 9, e: 12, o: { topK: 3, nGroup: 3, topkGroup: 1, normTopkProb: false }, desc: 'one group kept, unnormalized' },
  { n: 5, h: 4, e: 8, o: { topK: 8, nGroup: 2, topkGroup: 2 }, desc: 'top-k = every expert' },
  { n: 7, h: 6, e: 10, o: { topK: 3, scoreFunction: 'softmax', normTopkProb: false }, desc: 'softmax scores' },
  { n: 1, h: 3, e: 6, o: { topK: 1, nGroup: 6, topkGroup: 3 }, desc: 'one token, groups of one expert, top-1' },
  { n: 8, h: 5, e: 32, o: { topK: 8, nGroup: 8, topkGroup: 4, routedScalingFactor: 2.5 }, desc: 'Ring-mini routing shape (E/8 per group)' },
];

describe(`moeRouter vs the float64 per-token loop (seed ${SEED})`, () => {
  for (const c of CASES) {
    for (const path of ['kernel', 'composite'] as const) {
      it(`${c.desc} [${path}]`, () => {
        const rng = rngFor(`router ${c.desc}`);
        const xs = rng.array(c.n * c.h);
        const ws = rng.array(c.e * c.h, 0.5);
        const bs = rng.array(c.e, 0.05);
        const x = t(xs, [c.n, c.h]);
        const w = t(ws, [c.e, c.h]);
        const b = t(bs, [c.e]);
        const got = runRouter(x, w, b, c.o, path === 'composite');
        const want = refRouter(xs, c.n, ws, bs, c.e, c.o as RouterSettings);
        expect(got.indices).toEqual(want.indices);
        expectClose(got.weights, want.weights, 2e-6, 'weights', 1e-7);
        expectClose(got.scores, want.scores, 2e-6, 'scores', 1e-7);
        dispose([x, w, b]);
      });
    }
  }

  it('bf16 input is cast to f32 before the projection (the result equals routing the f32 copy)', () => {
    const rng = rngFor('router bf16');
    const [n, h, e] = [6, 8, 8];
    const x32 = t(rng.array(n * h), [n, h]);
    const xb = cast(x32, 'bf16');
    const xr = cast(xb, 'f32'); // the bf16 values, exactly, in f32
    const w = t(rng.array(e * h), [e, h]);
    const b = t(rng.array(e, 0.02), [e]);
    const o = { topK: 2, nGroup: 4, topkGroup: 2 };
    const got = runRouter(xb, w, b, o);
    const want = refRouter(read(xr), n, read(w), read(b), e, o);
    expect(got.indices).toEqual(want.indices);
    expectClose(got.weights, want.weights, 2e-6, 'weights');
    dispose([x32, xb, xr, w, b]);
  });

  it('weights are s[idx] normalized (sum = routedScalingFactor), unbiased even with a large bias', () => {
    const rng = rngFor('router norm');
    const [n, h, e] = [5, 4, 6];
    const xs = rng.array(n * h);
    const ws = rng.array(e * h);
    const bs = Float64Array.from([0.9, -0.4, 0.3, 0, 0.7, -0.1]);
    const x = t(xs, [n, h]);
    const w = t(ws, [e, h]);
    const b = t(bs, [e]);
    const got = runRouter(x, w, b, { topK: 3, routedScalingFactor: 2.5 });
    for (let i = 0; i < n; i++) {
      const total = got.weights.slice(i * 3, i * 3 + 3).reduce((a, v) => a + v, 0);
      expect(total).toBeCloseTo(2.5, 5);
      for (let k = 0; k < 3; k++) {
        const j = got.indices[i * 3 + k]!;
        // w_k / w_0 = s_j / s_{idx0}: the bias is not in the weights.
        const ratio = got.weights[i * 3 + k]! / got.weights[i * 3]!;
        expect(ratio).toBeCloseTo(got.scores[i * e + j]! / got.scores[i * e + got.indices[i * 3]!]!, 5);
      }
    }
    dispose([x, w, b]);
  });
});

describe('moeRouter ties and group masking (constructed)', () => {
  // x = [1] and W = [[l_0], [l_1], ...] make logit_e = l_e exactly; equal logits give equal f32 scores.
  const route = (logits: number[], bias: number[], o: MoeRouterOptions, path: 'kernel' | 'composite') => {
    const x = t([1], [1, 1]);
    const w = t(logits, [logits.length, 1]);
    const b = t(bias, [bias.length]);
    const r = runRouter(x, w, b, o, path === 'composite');
    dispose([x, w, b]);
    return r;
  };

  for (const path of ['kernel', 'composite'] as const) {
    it(`exact ties between experts go to the lower expert index [${path}]`, () => {
      const logits = [0.5, 2, 1, 2, 2, 1, 0.5, 2];
      const zero = logits.map(() => 0);
      expect(route(logits, zero, { topK: 3 }, path).indices).toEqual([1, 3, 4]);
      expect(route(logits, zero, { topK: 6 }, path).indices).toEqual([1, 3, 4, 7, 2, 5]);
      // Ties created by the bias: s + b equal although s differ.
      const sig = (v: number) => 1 / (1 + Math.exp(-v));
      const l2 = [0, 1, 0, 0];
      const b2 = [Math.fround(sig(1)) - Math.fround(sig(0)), 0, 0, 0];
      const r = route(l2, b2, { topK: 2 }, path);
      expect(r.indices).toEqual(routeToken([1], l2, b2, 4, { topK: 2 }).indices);
      // the weights follow the unbiased scores of the chosen experts
      expect(r.weights[0]! / r.weights[1]!).toBeCloseTo(r.scores[r.indices[0]!]! / r.scores[r.indices[1]!]!, 6);
    });

    it(`group ties go to the lower group index; group score = sum of the top-2 [${path}]`, () => {
      // 4 groups of 3. Group sums of top-2 logits' scores: groups 1 and 3 tie for best, 0 and 2 tie.
      const logits = [1, 0, -3, /**/ 2, 1, -5, /**/ 1, 0, -1, /**/ 1, 2, 0];
      const zero = logits.map(() => 0);
      const o = { topK: 2, nGroup: 4, topkGroup: 1 };
      const r = route(logits, zero, o, path);
      expect(r.indices).toEqual([3, 4]); // group 1 (lower of the tied 1 and 3)
      expect(r.indices).toEqual(routeToken([1], logits, zero, 12, o).indices);
      // Keeping 3 groups: 1 and 3 and then group 0 (tied with 2, lower index). Expert 10 (score of
      // logit 2) ties expert 3 and comes after it.
      const r3 = route(logits, zero, { topK: 4, nGroup: 4, topkGroup: 3 }, path);
      expect(r3.indices).toEqual([3, 10, 0, 4]);
      // The top-2 sum, not the max: group 0 has the best single value but a poor second.
      const l2 = [3, -4, 2.5, 2.5, -9, -9];
      expect(route(l2, l2.map(() => 0), { topK: 1, nGroup: 3, topkGroup: 1 }, path).indices).toEqual([2]);
    });

    it(`dropped groups are masked to 0.0, not -inf: with negative biased scores a dropped expert can win [${path}]`, () => {
      // Biases push every biased score of group 0 below 0, so group 0 ranks... keep 1 group of 2.
      const logits = [3, 2.5, 0, -0.5];
      const bias = [-1.2, -1.3, -1.1, -1.05];
      const o = { topK: 2, nGroup: 2, topkGroup: 1 };
      const r = route(logits, bias, o, path);
      // b = s + bias: group 0 = [0.953-1.2, 0.924-1.3] = [-0.247, -0.376] (sum -0.62);
      // group 1 = [0.5-1.1, 0.378-1.05] = [-0.6, -0.672] (sum -1.27). Group 0 is kept; group 1's
      // entries become 0.0 and outrank group 0's negative values: experts 2 and 3 (a tie at 0.0).
      expect(r.indices).toEqual([2, 3]);
      expect(r.indices).toEqual(routeToken([1], logits, bias, 4, o).indices);
    });
  }
});

describe('moeRouter gradients', () => {
  // Loss L = sum(weights * Rw) + sum(scores * Rs) in float64 from the per-token loop.
  function lossRef(xs: Float64Array, ws: Float64Array, bs: Float64Array, n: number, e: number, o: RouterSettings, rw: Float64Array, rs: Float64Array) {
    const r = refRouter(xs, n, ws, bs, e, o);
    let l = 0;
    r.weights.forEach((v, i) => (l += v * rw[i]!));
    r.scores.forEach((v, i) => (l += v * rs[i]!));
    return l;
  }

  const GRAD_CASES: { o: MoeRouterOptions; desc: string }[] = [
    { o: { topK: 3, nGroup: 2, topkGroup: 1, routedScalingFactor: 2.5 }, desc: 'sigmoid, groups, normalized' },
    { o: { topK: 2, normTopkProb: false }, desc: 'sigmoid, unnormalized' },
    { o: { topK: 2, scoreFunction: 'softmax' }, desc: 'softmax, normalized' },
  ];

  for (const c of GRAD_CASES) {
    it(`${c.desc}: dx and dW match finite differences of the float64 loop and the composite's autograd; the bias gets none`, () => {
      const rng = rngFor(`router grad ${c.desc}`);
      const [n, h, e] = [5, 4, 8];
      const xs = rng.array(n * h);
      const ws = rng.array(e * h, 0.7);
      const bs = rng.array(e, 0.05);
      const rw = rng.array(n * c.o.topK);
      const rs = rng.array(n * e);
      const x = t(xs, [n, h]);
      const w = t(ws, [e, h]);
      const b = t(bs, [e]);
      const rwt = t(rw, [n, c.o.topK]);
      const rst = t(rs, [n, e]);
      const lossFn = () => {
        const r = moeRouter(x, w, b, c.o);
        return add(sum(mul(r.weights, rwt)), sum(mul(r.scores, rst)));
      };
      const kernel = valueAndGrad(lossFn, [x, w, b]);
      const comp = withKernelsDisabled(['moeRouter'], () => valueAndGrad(lossFn, [x, w, b]));
      const [dx, dw, db] = kernel.grads.map(read);
      expectClose(read(kernel.value), [lossRef(xs, ws, bs, n, e, c.o as RouterSettings, rw, rs)], 1e-6, 'loss value (a sum that cancels: absolute tolerance)', 1e-5);
      expect(Array.from(db!)).toEqual(new Array(e).fill(0));
      const fd = (arr: Float64Array, i: number) => {
        const v = arr[i]!;
        const hh = 1e-6 * Math.max(1, Math.abs(v));
        arr[i] = v + hh;
        const plusL = lossRef(xs, ws, bs, n, e, c.o as RouterSettings, rw, rs);
        arr[i] = v - hh;
        const minusL = lossRef(xs, ws, bs, n, e, c.o as RouterSettings, rw, rs);
        arr[i] = v;
        return (plusL - minusL) / (2 * hh);
      };
      expectClose(dx!, Array.from(xs, (_, i) => fd(xs, i)), 2e-4, 'dx vs finite differences', 1e-6);
      expectClose(dw!, Array.from(ws, (_, i) => fd(ws, i)), 2e-4, 'dW vs finite differences', 1e-6);
      const [cx, cw, cb] = comp.grads.map(read);
      expectClose(cx!, dx!, 1e-5, 'dx composite vs kernel', 1e-7);
      expectClose(cw!, dw!, 1e-5, 'dW composite vs kernel', 1e-7);
      expect(Array.from(cb!)).toEqual(new Array(e).fill(0));
      dispose([kernel, comp, x, w, b, rwt, rst]);
    });
  }

  it('leaves no tensors behind', () => {
    const before = memory().tensors;
    const x = t([1, 2, 3, 4, 5, 6], [2, 3]);
    const w = t([0.1, -0.2, 0.3, 0.4, 0.5, -0.6, 0.7, 0.8, -0.9, 1, 1.1, 1.2], [4, 3]);
    const b = t([0, 0.01, 0, -0.01], [4]);
    const g = valueAndGrad(() => sum(moeRouter(x, w, b, { topK: 2, nGroup: 2, topkGroup: 1 }).weights), [x, w]);
    dispose([g, x, w, b]);
    expect(memory().tensors).toBe(before);
  });
});

