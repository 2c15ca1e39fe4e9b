/**
 * The MoE layer on the WebGPU backend (Dawn; SwiftShader on machines without a GPU) against the
 * CPU backend and the float64 per-token loop (helpers.ts). Skipped, with the reason printed, where
 * there is no WebGPU adapter.
 *
 *   - router: the same experts as the CPU (float-float logits and scores on the GPU, see
 *     backend-webgpu src/kernels/moe/precise.ts), scores bit for bit but for rare 1-ulp
 *     rounding-boundary cases, constructed exact ties resolved to the lower index (experts and groups);
 *   - the whole MoE module: outputs to float tolerance, chosen experts and loads identical;
 *   - determinism: a token's output does not depend on batch order or on how tokens are split
 *     across calls (bit for bit on WebGPU);
 *   - dispatch plan: skewed routing over several sort chunks and invalid ids, exactly the CPU's;
 *   - grouped GEMM with a weight list split over several dispatches = the stacked form, bit for bit;
 *   - gradients of the MoE (all parameters) against the CPU's.
 */
import { afterAll, describe, expect, it, vi } from 'vitest';
import '@ring-linear/backend-cpu';
import {
  dispose,
  findBackend,
  gather,
  initBackend,
  mul,
  setBackend,
  sum,
  tensor,
  toBackend,
  valueAndGrad,
  withBackend,
  type Backend,
  type Tensor,
} from '@ring-linear/core';
import { optionalBackendReason } from '@ring-linear/conformance';
import { MoE, groupedMatmul, moeDispatchPlan, moeRouter, type MoEConfig, type MoeRouterOptions } from '../src/index.js';
import { SEED, expectClose, makeRng, refMoE, refRouter, rngFor, type RefMoEParams, type Rng } from './helpers.js';

vi.setConfig({ testTimeout: 300_000, hookTimeout: 300_000 });

const reason = await optionalBackendReason('webgpu', () => import('@ring-linear/backend-webgpu'), 'moe webgpu tests');
const gpu = reason === null ? findBackend('webgpu') : null;
const cpu = await initBackend('cpu');
afterAll(() => setBackend('cpu'));

const F = new Float32Array(1);
const U = new Uint32Array(F.buffer);
const bitsOf = (x: number) => ((F[0] = x), U[0]!);

/** Host values on a backend. */
function on(b: Backend, values: ArrayLike<number>, shape: readonly number[], dtype: 'f32' | 'bf16' | 'i32' = 'f32'): Tensor {
  return dtype === 'i32' ? tensor(Int32Array.from(values), shape, 'i32', b) : tensor(Float32Array.from(values), shape, dtype, b);
}

const read = async (t: Tensor) => Float64Array.from(await t.data());

/** Bit-equal arrays; returns how many elements differ by exactly one ulp (fails on anything else). */
function sameBitsBut1Ulp(got: Float64Array, want: Float64Array, what: string): number {
  expect(got.length, what).toBe(want.length);
  let oneUlp = 0;
  for (let i = 0; i < want.length; i++) {
    if (Object.is(got[i], want[i])) continue;
    if (Math.abs(bitsOf(got[i]!) - bitsOf(want[i]!)) === 1) oneUlp++;
    else throw new Error(`${what}: element ${i} is ${got[i]}, the CPU's is ${want[i]} (seed ${SEED})`);
  }
  return oneUlp;
}

/** The router on both backends from the same host inputs. */
async function routerBoth(rng: Rng, n: number, h: number, e: number, r: MoeRouterOptions, opts: { dtype?: 'f32' | 'bf16'; ties?: boolean } = {}) {
  const xs = opts.ties ? Array.from({ length: n * h }, () => rng.int(-2, 3)) : Array.from(rng.array(n * h));
  const ws = opts.ties ? Array.from({ length: e * h }, () => rng.int(-3, 4) / 8) : Array.from(rng.array(e * h, 0.6));
  const bs = opts.ties ? Array.from({ length: e }, () => (rng.next() < 0.5 ? 0 : rng.int(-2, 3) / 64)) : Array.from(rng.array(e, 0.05));
  const run = async (b: Backend) => {
    const out = withBackend(b, () => moeRouter(on(b, xs, [n, h], opts.dtype ?? 'f32'), on(b, ws, [e, h]), on(b, bs, [e]), r));
    const res = { w: await read(out.weights), idx: Array.from(await out.indices.data()), s: await read(out.scores) };
    dispose([out.weights, out.indices, out.scores]);
    return res;
  };
  return { xs, ws, bs, g: await run(gpu!), c: await run(cpu) };
}

describe.skipIf(!gpu)(`MoE on WebGPU vs the CPU (${gpu ? findBackend('webgpu').capabilities.device : reason}; seed ${SEED})`, () => {
  const routerCases: { desc: string; n: number; h: number; e: number; r: MoeRouterOptions; dtype?: 'f32' | 'bf16'; ties?: boolean }[] = [
    { desc: 'sigmoid, 64 experts in 8 groups keep 3, top-6, hidden 384', n: 41, h: 384, e: 64, r: { topK: 6, nGroup: 8, topkGroup: 3, routedScalingFactor: 2.5 } },
    { desc: 'bf16 x, sigmoid, 32 experts, top-8, hidden 512', n: 17, h: 512, e: 32, r: { topK: 8 }, dtype: 'bf16' },
    { desc: 'softmax, unnormalized, 16 experts, top-4', n: 23, h: 96, e: 16, r: { topK: 4, scoreFunction: 'softmax', normTopkProb: false, routedScalingFactor: 1.5 } },
    { desc: 'integer data: exact ties of experts and groups (16 in 4 groups keep 2, top-4)', n: 37, h: 4, e: 16, r: { topK: 4, nGroup: 4, topkGroup: 2 }, ties: true },
    { desc: 'integer data, softmax: exact ties', n: 19, h: 3, e: 8, r: { topK: 3, scoreFunction: 'softmax' }, ties: true },
  ];
  for (const c of routerCases) {
    it(`router: ${c.desc}: the CPU's experts, scores and weights`, async () => {
      const rng = rngFor(`webgpu router ${c.desc}`);
      const { xs, ws, bs, g, c: cp } = await routerBoth(rng, c.n, c.h, c.e, c.r, { dtype: c.dtype, ties: c.ties });
      expect(g.idx, 'chosen experts').toEqual(cp.idx);
      const off = sameBitsBut1Ulp(g.s, cp.s, 'scores');
      expect(off, `scores one ulp off the CPU's (of ${g.s.length})`).toBeLessThanOrEqual(Math.ceil(g.s.length / 1000));
      expectClose(g.w, cp.w, 1e-6, 'weights');
      if (c.dtype !== 'bf16') {
        // And the float64 per-token loop (selection on its f32 values) chooses the same.
        expect(g.idx).toEqual(refRouter(xs, c.n, ws, bs, c.e, c.r).indices);
      }
    });
  }

  const cfg: MoEConfig = { hiddenSize: 24, numExperts: 16, numExpertsPerTok: 4, moeIntermediateSize: 10, numSharedExperts: 1, nGroup: 4, topkGroup: 2, routedScalingFactor: 2.5 };

  /** A module with random weights on the CPU and the same module on WebGPU. */
  async function twins(rng: Rng, c: MoEConfig): Promise<{ mc: MoE; mg: MoE }> {
    const mc = withBackend(cpu, () => new MoE(c));
    for (const [, p] of mc.namedParameters()) p.assign(on(cpu, rng.array(p.size, 0.4), p.shape));
    mc.gate.expert_bias.assign(on(cpu, rng.array(c.numExperts, 0.03), [c.numExperts]));
    const mg = withBackend(gpu!, () => new MoE(c));
    const sd = new Map<string, Tensor>();
    for (const [name, t] of mc.stateDict()) sd.set(name, await toBackend(t, 'webgpu'));
    mg.loadStateDict(sd);
    dispose([...sd.values()]);
    return { mc, mg };
  }

  async function refParams(m: MoE): Promise<RefMoEParams> {
    const c = m.config;
    const ex = async (e: { gate_proj: { weight: Tensor }; up_proj: { weight: Tensor }; down_proj: { weight: Tensor } }) => ({
      gate: await read(e.gate_proj.weight),
      up: await read(e.up_proj.weight),
      down: await read(e.down_proj.weight),
    });
    return {
      hidden: c.hiddenSize,
      experts: c.numExperts,
      inter: c.moeIntermediateSize,
      sharedInter: c.moeSharedExpertIntermediateSize * c.numSharedExperts,
      gateWeight: await read(m.gate.weight),
      bias: await read(m.gate.expert_bias),
      routed: await Promise.all([...m.experts].map(ex)),
      shared: m.shared_experts ? await ex(m.shared_experts) : null,
      router: { topK: c.numExpertsPerTok, nGroup: c.nGroup, topkGroup: c.topkGroup, scoreFunction: c.scoreFunction, normTopkProb: c.normTopkProb, routedScalingFactor: c.routedScalingFactor },
    };
  }

  it('the MoE module: the CPU\'s experts and loads, outputs to float tolerance of the CPU and the float64 loop', async () => {
    const rng = rngFor('webgpu moe module');
    const { mc, mg } = await twins(rng, cfg);
    const n = 29;
    const xs = rng.array(n * cfg.hiddenSize);
    const yc = withBackend(cpu, () => mc.forward(on(cpu, xs, [n, cfg.hiddenSize])));
    const yg = withBackend(gpu!, () => mg.forward(on(gpu!, xs, [n, cfg.hiddenSize])));
    expect(Array.from(await mg.lastLoad!.data())).toEqual(Array.from(await mc.lastLoad!.data()));
    const want = refMoE(xs, n, await refParams(mc));
    const counts = new Array(cfg.numExperts).fill(0);
    for (const e of want.indices) counts[e]++;
    expect(Array.from(await mg.lastLoad!.data())).toEqual(counts);
    expectClose(await read(yg), await read(yc), 2e-6, 'WebGPU vs CPU');
    expectClose(await read(yg), want.y, 1e-5, 'WebGPU vs the float64 loop');
    dispose([yc, yg]);
    mc.dispose();
    mg.dispose();
  });

  it('constructed exact ties (twin router rows, twin groups) resolve to the lower index end to end', async () => {
    const rng = rngFor('webgpu moe ties');
    for (const [nGroup, topkGroup, topK] of [[4, 1, 2], [1, 1, 1], [1, 1, 2]] as const) {
      const c: MoEConfig = { hiddenSize: 4, numExperts: 8, numExpertsPerTok: topK, moeIntermediateSize: 3, nGroup, topkGroup };
      const { mc, mg } = await twins(rng, c);
      // Router rows 2 and 6 are [1, 0, 0, 0], rows 3 and 7 [0, 1, 0, 0] (as test/moe.test.ts).
      const gw = rng.array(8 * 4, 0.1);
      for (const [row, dim] of [[2, 0], [6, 0], [3, 1], [7, 1]] as const) for (let d = 0; d < 4; d++) gw[row * 4 + d] = d === dim ? 1 : 0;
      mg.gate.weight.assign(on(gpu!, gw, [8, 4]));
      mg.gate.expert_bias.assign(on(gpu!, new Float64Array(8), [8]));
      const xs = new Float64Array(6 * 4);
      for (let i = 0; i < 6; i++) {
        xs[i * 4] = Math.fround(3 + 0.2 * rng.next());
        xs[i * 4 + 1] = Math.fround(2 + 0.2 * rng.next());
        xs[i * 4 + 2] = Math.fround(0.5 * rng.normal());
        xs[i * 4 + 3] = Math.fround(0.5 * rng.normal());
      }
      const r = withBackend(gpu!, () => mg.gate.route(on(gpu!, xs, [6, 4])));
      const perToken = nGroup > 1 ? [2, 3] : topK === 1 ? [2] : [2, 6];
      expect(Array.from(await r.indices.data())).toEqual(new Array(6).fill(perToken).flat());
      const y = withBackend(gpu!, () => mg.forward(on(gpu!, xs, [6, 4])));
      expectClose(await read(y), refMoE(xs, 6, await refParams(mg)).y, 1e-5, `output (nGroup ${nGroup}, topK ${topK})`);
      dispose([r.weights, r.indices, r.scores, y]);
      mc.dispose();
      mg.dispose();
    }
  });

  it("determinism: a token's output does not depend on batch order or on how tokens are split across calls (bit for bit)", async () => {
    const rng = rngFor('webgpu moe determinism');
    const c: MoEConfig = { ...cfg, numSharedExperts: 0 };
    const { mc, mg } = await twins(rng, c);
    mc.dispose();
    const n = 21;
    const H = c.hiddenSize;
    const b = gpu!;
    const x = on(b, rng.array(n * H), [n, H]);
    const fwd = async (idx: number[]) => {
      const y = withBackend(b, () => mg.forward(gather(x, on(b, idx, [idx.length], 'i32'), 0)));
      const v = await read(y);
      y.dispose();
      return v;
    };
    const all = Array.from({ length: n }, (_, i) => i);
    const whole = await fwd(all);
    const perm = makeRng(SEED ^ 0x51ed).permutation(n);
    const shuffled = await fwd(perm);
    for (let i = 0; i < n; i++) {
      expect(Array.from(shuffled.subarray(i * H, (i + 1) * H)), `shuffled row ${i}`).toEqual(Array.from(whole.subarray(perm[i]! * H, (perm[i]! + 1) * H)));
    }
    const parts: number[] = [];
    for (const [lo, hi] of [[0, 1], [1, 5], [5, 12], [12, 21]] as const) parts.push(...(await fwd(all.slice(lo, hi))));
    expect(parts, 'split into 1, 4, 7, 9 tokens').toEqual(Array.from(whole));
    x.dispose();
    mg.dispose();
  });

  it('dispatch plan: skewed routing over several sort chunks and ids outside [0, E): exactly the CPU\'s', async () => {
    const rng = rngFor('webgpu plan');
    const [n, k, e] = [260, 3, 9];
    // Most slots to expert 4, some to others, a few invalid ids (-1, 9, 1000).
    const ids = Array.from({ length: n * k }, () => {
      const u = rng.next();
      return u < 0.7 ? 4 : u < 0.97 ? rng.int(0, e) : [-1, 9, 1000][rng.int(0, 3)]!;
    });
    const plans = [];
    for (const b of [gpu!, cpu]) {
      const p = withBackend(b, () => moeDispatchPlan(on(b, ids, [n, k], 'i32'), e));
      plans.push(await Promise.all([p.slotToRow, p.rowToSlot, p.offsets, p.tokensPerExpert].map(async (t) => Array.from(await t.data()))));
      dispose([p.slotToRow, p.rowToSlot, p.offsets, p.tokensPerExpert]);
    }
    expect(plans[0]).toEqual(plans[1]);
  });

  it('grouped GEMM: a weight list over several dispatches (2 experts each) = the stacked form bit for bit, = the CPU to tolerance', async () => {
    const rng = rngFor('webgpu grouped list');
    const counts = [5, 0, 9, 1, 0, 13, 4];
    const E = counts.length;
    const [IN, OUT] = [19, 11];
    const R = counts.reduce((a, v) => a + v, 0);
    const offs = [0];
    for (const c of counts) offs.push(offs[offs.length - 1]! + c);
    const xs = rng.array(R * IN);
    const wAll = rng.array(E * OUT * IN, 0.5);
    const run = async (b: Backend, list: boolean) =>
      read(
        withBackend(b, () => {
          const ws = list ? Array.from({ length: E }, (_, e) => on(b, wAll.subarray(e * OUT * IN, (e + 1) * OUT * IN), [OUT, IN])) : on(b, wAll, [E, OUT, IN]);
          return groupedMatmul(on(b, xs, [R, IN]), ws, on(b, offs, [E + 1], 'i32'));
        }),
      );
    const saved = process.env.RING_LINEAR_WEBGPU_EXPERTS_PER_DISPATCH;
    process.env.RING_LINEAR_WEBGPU_EXPERTS_PER_DISPATCH = '2';
    let chunked: Float64Array;
    try {
      chunked = await run(gpu!, true);
    } finally {
      if (saved === undefined) delete process.env.RING_LINEAR_WEBGPU_EXPERTS_PER_DISPATCH;
      else process.env.RING_LINEAR_WEBGPU_EXPERTS_PER_DISPATCH = saved;
    }
    const stacked = await run(gpu!, false);
    expect(Array.from(chunked)).toEqual(Array.from(stacked));
    expectClose(stacked, await run(cpu, true), 1e-6, 'WebGPU vs CPU');
  });

  it('gradients of the whole MoE (x, router, experts, shared expert) equal the CPU\'s to float tolerance', async () => {
    const rng = rngFor('webgpu moe grad');
    const c: MoEConfig = { hiddenSize: 8, numExperts: 6, numExpertsPerTok: 2, moeIntermediateSize: 5, numSharedExperts: 1, nGroup: 3, topkGroup: 2, routedScalingFactor: 1.5 };
    const { mc, mg } = await twins(rng, c);
    const n = 7;
    const xs = rng.array(n * c.hiddenSize);
    const rs = rng.array(n * c.hiddenSize);
    const grads = async (m: MoE, b: Backend) => {
      const x = on(b, xs, [n, c.hiddenSize]);
      const r = on(b, rs, [n, c.hiddenSize]);
      const params = m.parameters().filter((p) => p.requiresGrad);
      const { value, grads } = withBackend(b, () => valueAndGrad(() => sum(mul(m.forward(x), r)), [x, ...params]));
      const out = [await read(value), ...(await Promise.all(grads.map(read)))];
      dispose([value, ...grads, x, r]);
      return out;
    };
    const gg = await grads(mg, gpu!);
    const gc = await grads(mc, cpu);
    expect(gg.length).toBe(gc.length);
    // The loss sums n x hidden products of both signs, so it can be far smaller than its terms (a
    // seed gave 0.025 from terms near 1): its tolerance scales with the terms' total magnitude.
    const xc = on(cpu, xs, [n, c.hiddenSize]);
    const yc = withBackend(cpu, () => mc.forward(xc));
    const out = await read(yc);
    dispose([xc, yc]);
    let mass = 0;
    for (let i = 0; i < out.length; i++) mass += Math.abs(out[i]! * rs[i]!);
    expectClose(gg[0]!, gc[0]!, 0, 'loss', 1e-5 * mass);
    gg.slice(1).forEach((g, i) => expectClose(g, gc[i + 1]!, 1e-5, `gradient ${i}`, 1e-7));
    mc.dispose();
    mg.dispose();
  });
});
