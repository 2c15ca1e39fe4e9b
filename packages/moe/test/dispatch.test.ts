/**
 * Dispatch ops against naive loops: the plan is the stable sort of slots by expert (by expert, then
 * token, then k), permute/combine/groupedMatmul forward values and gradients against float64
 * formulas and finite differences, kernels against composites, the combine's fixed k order.
 */
import { describe, expect, it } from 'vitest';
import '@ring-linear/backend-cpu';
import { cast, dispose, mul, sum, valueAndGrad, withKernelsDisabled, type Tensor } from '@ring-linear/core';
import { groupedMatmul, groupedMatmulAtB, moeCombine, moeDispatchPlan, moePermute } from '../src/index.js';
import { SEED, expectClose, expectSameBits, read, rngFor, t, type Rng } from './helpers.js';

/** Random distinct experts per token (what a router gives): [N*K]. */
function randomRouting(rng: Rng, n: number, k: number, e: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(...rng.permutation(e).slice(0, k));
  return out;
}

/** The plan by definition: sort slots j by (expert, j). */
function naivePlan(ids: number[], e: number) {
  const bucket = (v: number) => (v >= 0 && v < e ? v : e);
  const order = ids.map((_, j) => j).sort((a, b) => bucket(ids[a]!) - bucket(ids[b]!) || a - b);
  const slotToRow = new Array<number>(ids.length);
  order.forEach((j, r) => (slotToRow[j] = r));
  const counts = new Array<number>(e).fill(0);
  for (const v of ids) if (v >= 0 && v < e) counts[v]++;
  const offsets = [0];
  for (let i = 0; i < e; i++) offsets.push(offsets[i]! + counts[i]!);
  return { rowToSlot: order, slotToRow, counts, offsets };
}

function runPlan(ids: number[], n: number, k: number, e: number, composite: boolean) {
  const idx = t(ids, [n, k], 'i32');
  const run = () => {
    const p = moeDispatchPlan(idx, e);
    const out = {
      slotToRow: Array.from(p.slotToRow.dataSync()),
      rowToSlot: Array.from(p.rowToSlot.dataSync()),
      offsets: Array.from(p.offsets.dataSync()),
      counts: Array.from(p.tokensPerExpert.dataSync()),
    };
    dispose(p);
    return out;
  };
  const out = composite ? withKernelsDisabled(['moeDispatchPlan'], run) : run();
  idx.dispose();
  return out;
}

describe(`moeDispatchPlan (seed ${SEED})`, () => {
  for (const path of ['kernel', 'composite'] as const) {
    it(`is the stable sort of slots by expert, then token, then k [${path}]`, () => {
      const rng = rngFor(`plan ${path}`);
      for (const [n, k, e] of [[13, 3, 7], [1, 1, 1], [20, 8, 16], [5, 2, 40]] as const) {
        const ids = randomRouting(rng, n, k, e);
        const got = runPlan(ids, n, k, e, path === 'composite');
        const want = naivePlan(ids, e);
        expect(got.rowToSlot).toEqual(want.rowToSlot);
        expect(got.slotToRow).toEqual(want.slotToRow);
        expect(got.counts).toEqual(want.counts);
        expect(got.offsets).toEqual(want.offsets);
        // Within each expert's segment, tokens ascend.
        for (let x = 0; x < e; x++) {
          const seg = got.rowToSlot.slice(got.offsets[x]!, got.offsets[x + 1]!).map((j) => Math.floor(j / k));
          expect(seg).toEqual([...seg].sort((a, b) => a - b));
        }
      }
    });

    it(`puts expert ids outside [0, E) in a trailing bucket that no expert owns [${path}]`, () => {
      const ids = [2, -1, 0, 5, 2, 0, 9, 1];
      const got = runPlan(ids, 4, 2, 5, path === 'composite');
      const want = naivePlan(ids, 5);
      expect(got.rowToSlot).toEqual(want.rowToSlot);
      expect(got.counts).toEqual([2, 1, 2, 0, 0]);
      expect(got.offsets).toEqual([0, 2, 3, 5, 5, 5]); // rows 5..7 hold the slots of -1, 5, 9
      expect(got.rowToSlot.slice(5)).toEqual([1, 3, 6]);
    });
  }

  it('handles zero tokens', () => {
    const got = runPlan([], 0, 4, 3, false);
    expect(got).toEqual({ slotToRow: [], rowToSlot: [], offsets: [0, 0, 0, 0], counts: [0, 0, 0] });
  });
});

/** Plan tensors for a random routing, plus host copies. */
function makePlan(rng: Rng, n: number, k: number, e: number) {
  const ids = randomRouting(rng, n, k, e);
  const p = naivePlan(ids, e);
  return {
    ids,
    host: p,
    slotToRow: t(p.slotToRow, [n, k], 'i32'),
    rowToSlot: t(p.rowToSlot, [n * k], 'i32'),
    offsets: t(p.offsets, [e + 1], 'i32'),
  };
}

describe('moePermute and moeCombine', () => {
  it('permute copies token rows into expert order (bit-exact for bf16 too); combine sums over k = 0..K-1', () => {
    const rng = rngFor('permute combine');
    const [n, k, e, h] = [9, 3, 5, 6];
    const plan = makePlan(rng, n, k, e);
    const xs = rng.array(n * h);
    for (const dtype of ['f32', 'bf16'] as const) {
      const x = cast(t(xs, [n, h]), dtype);
      const xv = read(x);
      for (const path of ['kernel', 'composite'] as const) {
        const run = () => moePermute(x, plan.rowToSlot, plan.slotToRow);
        const xp = path === 'composite' ? withKernelsDisabled(['moePermute'], run) : run();
        expect(xp.dtype).toBe(dtype);
        const got = read(xp);
        const want = plan.host.rowToSlot.flatMap((j) => Array.from(xv.subarray(Math.floor(j / k) * h, Math.floor(j / k) * h + h)));
        expectSameBits(got, want, `permute ${dtype} ${path}`);
        xp.dispose();
      }
      x.dispose();
    }
    // combine: y[n] = sum_k w[n,k] yp[slotToRow[n,k]]
    const yps = rng.array(n * k * h);
    const ws = rng.array(n * k);
    const yp = t(yps, [n * k, h]);
    const w = t(ws, [n, k]);
    const want = new Float64Array(n * h);
    for (let i = 0; i < n; i++) {
      for (let kk = 0; kk < k; kk++) {
        const r = plan.host.slotToRow[i * k + kk]!;
        for (let c = 0; c < h; c++) want[i * h + c] += ws[i * k + kk]! * yps[r * h + c]!;
      }
    }
    for (const path of ['kernel', 'composite'] as const) {
      const run = () => moeCombine(yp, w, plan.slotToRow, plan.rowToSlot);
      const y = path === 'composite' ? withKernelsDisabled(['moeCombine'], run) : run();
      expectClose(read(y), want, 1e-6, `combine ${path}`);
      y.dispose();
    }
    dispose([yp, w, plan]);
  });

  it('the combine kernel rounds once from a float64 sum in k order (exact where f32 would round)', () => {
    // One token, K = 3, rows [1, 2^-24, -1]: f32 left-to-right gives (1 + 2^-24) - 1 = 0 in f32
    // arithmetic; a float64 accumulator keeps 2^-24 (exactly representable in f32).
    const yp = t([1, 2 ** -24, -1], [3, 1]);
    const w = t([1, 1, 1], [1, 3]);
    const s2r = t([0, 1, 2], [1, 3], 'i32');
    const r2s = t([0, 1, 2], [3], 'i32');
    const y = moeCombine(yp, w, s2r, r2s);
    expect(read(y)[0]).toBe(2 ** -24);
    dispose([yp, w, s2r, r2s, y]);
  });

  it('gradients: permute (dx sums its K rows) and combine (dyp, dw) match finite differences and the composites', () => {
    const rng = rngFor('permute combine grad');
    const [n, k, e, h] = [6, 2, 4, 5];
    const plan = makePlan(rng, n, k, e);
    const xs = rng.array(n * h);
    const ws = rng.array(n * k);
    const rs = rng.array(n * h);
    // L = sum(combine(permute(x)^2, w) * R): exercises both ops and both of the combine's inputs.
    const lossRef = (xv: Float64Array, wv: Float64Array) => {
      let l = 0;
      for (let i = 0; i < n; i++) {
        for (let c = 0; c < h; c++) {
          let yv = 0;
          for (let kk = 0; kk < k; kk++) yv += wv[i * k + kk]! * xv[i * h + c]! ** 2;
          l += yv * rs[i * h + c]!;
        }
      }
      return l;
    };
    const x = t(xs, [n, h]);
    const w = t(ws, [n, k]);
    const r = t(rs, [n, h]);
    const f = () => {
      const xp = moePermute(x, plan.rowToSlot, plan.slotToRow);
      return sum(mul(moeCombine(mul(xp, xp), w, plan.slotToRow, plan.rowToSlot), r));
    };
    const kernel = valueAndGrad(f, [x, w]);
    const comp = withKernelsDisabled(['moePermute', 'moeCombine'], () => valueAndGrad(f, [x, w]));
    const fd = (arr: Float64Array, i: number) => {
      const v = arr[i]!;
      const hh = 1e-6;
      arr[i] = v + hh;
      const p = lossRef(xs, ws);
      arr[i] = v - hh;
      const m = lossRef(xs, ws);
      arr[i] = v;
      return (p - m) / (2 * hh);
    };
    const [dx, dw] = kernel.grads.map(read);
    expectClose(dx!, Array.from(xs, (_, i) => fd(xs, i)), 1e-4, 'dx vs fd', 1e-6);
    expectClose(dw!, Array.from(ws, (_, i) => fd(ws, i)), 1e-4, 'dw vs fd', 1e-6);
    const [cx, cw] = comp.grads.map(read);
    expectClose(cx!, dx!, 1e-6, 'dx composite vs kernel');
    expectClose(cw!, dw!, 1e-6, 'dw composite vs kernel');
    dispose([kernel, comp, x, w, r, plan]);
  });
});

describe('groupedMatmul', () => {
  /** y[r] = x[r] W_e^T over segments (float64). */
  function naive(xs: Float64Array, ws: Float64Array[], offsets: number[], rows: number, inDim: number, out: number, tB: boolean): Float64Array {
    const y = new Float64Array(rows * out);
    for (let e = 0; e + 1 < offsets.length; e++) {
      for (let r = offsets[e]!; r < offsets[e + 1]!; r++) {
        for (let j = 0; j < out; j++) {
          let s = 0;
          for (let i = 0; i < inDim; i++) s += xs[r * inDim + i]! * (tB ? ws[e]![j * inDim + i]! : ws[e]![i * out + j]!);
          y[r * out + j] = s;
        }
      }
    }
    return y;
  }

  const CASES = [
    { counts: [3, 0, 5, 1], inDim: 7, out: 6, desc: 'odd sizes, an empty expert, a one-row expert' },
    { counts: [9], inDim: 4, out: 5, desc: 'one expert' },
    { counts: [0, 0, 2], inDim: 3, out: 9, desc: 'leading empty experts' },
    { counts: [13, 6, 7, 4, 1, 9], inDim: 17, out: 11, desc: 'larger (4x4 blocks and tails)' },
  ];

  for (const c of CASES) {
    for (const form of ['list', 'stacked'] as const) {
      for (const tB of [true, false]) {
        it(`${c.desc}, ${form} weights, transposeB=${tB}: values, gradients, composite`, () => {
          const rng = rngFor(`gmm ${c.desc} ${form} ${tB}`);
          const e = c.counts.length;
          const rows = c.counts.reduce((a, b) => a + b, 0);
          const offsets = [0];
          for (const n of c.counts) offsets.push(offsets[offsets.length - 1]! + n);
          const xs = rng.array(rows * c.inDim);
          const ws = Array.from({ length: e }, () => rng.array(c.inDim * c.out, 0.5));
          const wShape = tB ? [c.out, c.inDim] : [c.inDim, c.out];
          const x = t(xs, [rows, c.inDim]);
          const off = t(offsets, [e + 1], 'i32');
          const weights: Tensor[] =
            form === 'list' ? ws.map((w) => t(w, wShape)) : [t(ws.flatMap((w) => Array.from(w)), [e, ...wShape])];
          const wArg = form === 'list' ? weights : weights[0]!;
          const want = naive(xs, ws, offsets, rows, c.inDim, c.out, tB);
          const y = groupedMatmul(x, wArg, off, { transposeB: tB });
          expectClose(read(y), want, 1e-6, 'kernel');
          const yc = withKernelsDisabled(['groupedMatmul'], () => groupedMatmul(x, wArg, off, { transposeB: tB }));
          expectClose(read(yc), want, 1e-6, 'composite');
          // Gradients of L = sum(y * R) against the float64 formulas dx = R W_e, dW_e = R_e^T x_e.
          const rs = rng.array(rows * c.out);
          const r = t(rs, [rows, c.out]);
          const f = () => sum(mul(groupedMatmul(x, wArg, off, { transposeB: tB }), r));
          const g = valueAndGrad(f, [x, ...weights]);
          const gc = withKernelsDisabled(['groupedMatmul', 'groupedMatmulAtB'], () => valueAndGrad(f, [x, ...weights]));
          const dxWant = new Float64Array(rows * c.inDim);
          const dwWant = ws.map(() => new Float64Array(c.inDim * c.out));
          for (let ex = 0; ex < e; ex++) {
            for (let row = offsets[ex]!; row < offsets[ex + 1]!; row++) {
              for (let j = 0; j < c.out; j++) {
                const rv = rs[row * c.out + j]!;
                for (let i = 0; i < c.inDim; i++) {
                  const wi = tB ? j * c.inDim + i : i * c.out + j;
                  dxWant[row * c.inDim + i] += rv * ws[ex]![wi]!;
                  dwWant[ex]![wi] += rv * xs[row * c.inDim + i]!;
                }
              }
            }
          }
          const dwFlat = (gs: Tensor[]) => (form === 'list' ? gs.slice(1).flatMap((q) => Array.from(read(q))) : Array.from(read(gs[1]!)));
          const dwWantFlat = dwWant.flatMap((a) => Array.from(a));
          expectClose(read(g.grads[0]!), dxWant, 1e-6, 'dx');
          expectClose(dwFlat(g.grads), dwWantFlat, 1e-6, 'dW');
          expectClose(read(gc.grads[0]!), dxWant, 1e-6, 'dx (composite)');
          expectClose(dwFlat(gc.grads), dwWantFlat, 1e-6, 'dW (composite)');
          dispose([x, off, weights, y, yc, r, g, gc]);
        });
      }
    }
  }

  it('rows outside [offsets[0], offsets[E]) are zero; a row gets the same bits whatever its segment size (batch invariance)', () => {
    const rng = rngFor('gmm invariance');
    const [inDim, out] = [37, 10];
    const xs = rng.array(9 * inDim);
    const ws = rng.array(out * inDim);
    const x = t(xs, [9, inDim]);
    const w = t(ws, [1, out, inDim]);
    const all = groupedMatmul(x, w, t([0, 9], [2], 'i32'));
    const part = groupedMatmul(x, w, t([2, 7], [2], 'i32'));
    const a = read(all);
    const p = read(part);
    expect(Array.from(p.subarray(0, 2 * out))).toEqual(new Array(2 * out).fill(0));
    expect(Array.from(p.subarray(7 * out))).toEqual(new Array(2 * out).fill(0));
    expectSameBits(p.subarray(2 * out, 7 * out), a.subarray(2 * out, 7 * out), 'rows 2..6 in a segment of 5 vs 9');
    for (let row = 0; row < 9; row++) {
      const one = groupedMatmul(t(xs.subarray(row * inDim, (row + 1) * inDim), [1, inDim]), w, t([0, 1], [2], 'i32'));
      expectSameBits(read(one), a.subarray(row * out, (row + 1) * out), `row ${row} alone`);
      one.dispose();
    }
    dispose([x, w, all, part]);
  });

  it('groupedMatmulAtB: per-expert a_e^T b_e, stacked or separate, and its own gradients', () => {
    const rng = rngFor('atb');
    const offsets = [0, 4, 4, 9];
    const [rows, p, q] = [9, 3, 5];
    const as = rng.array(rows * p);
    const bs = rng.array(rows * q);
    const a = t(as, [rows, p]);
    const b = t(bs, [rows, q]);
    const off = t(offsets, [4], 'i32');
    const want = new Float64Array(3 * p * q);
    for (let e = 0; e < 3; e++) {
      for (let r = offsets[e]!; r < offsets[e + 1]!; r++) {
        for (let i = 0; i < p; i++) for (let j = 0; j < q; j++) want[(e * p + i) * q + j] += as[r * p + i]! * bs[r * q + j]!;
      }
    }
    const [stacked] = groupedMatmulAtB(a, b, off);
    expect(stacked!.shape).toEqual([3, p, q]);
    expectClose(read(stacked!), want, 1e-6, 'stacked');
    const sep = groupedMatmulAtB(a, b, off, { separate: true });
    expect(sep.map((s) => s.shape)).toEqual([[p, q], [p, q], [p, q]]);
    expectClose(sep.flatMap((s) => Array.from(read(s))), want, 1e-6, 'separate');
    const comp = withKernelsDisabled(['groupedMatmulAtB'], () => groupedMatmulAtB(a, b, off));
    expectClose(read(comp[0]!), want, 1e-6, 'composite');
    // d/da of sum(out * R) = sum over e of b_e R_e^T
    const rs = rng.array(3 * p * q);
    const r = t(rs, [3, p, q]);
    const g = valueAndGrad(() => sum(mul(groupedMatmulAtB(a, b, off)[0]!, r)), [a, b]);
    const daWant = new Float64Array(rows * p);
    const dbWant = new Float64Array(rows * q);
    for (let e = 0; e < 3; e++) {
      for (let row = offsets[e]!; row < offsets[e + 1]!; row++) {
        for (let i = 0; i < p; i++) {
          for (let j = 0; j < q; j++) {
            daWant[row * p + i] += bs[row * q + j]! * rs[(e * p + i) * q + j]!;
            dbWant[row * q + j] += as[row * p + i]! * rs[(e * p + i) * q + j]!;
          }
        }
      }
    }
    expectClose(read(g.grads[0]!), daWant, 1e-6, 'da');
    expectClose(read(g.grads[1]!), dbWant, 1e-6, 'db');
    dispose([a, b, off, stacked, sep, comp, r, g]);
  });
});
