/**
 * The MoE module against the naive float64 per-token loop (helpers.refMoE, MODEL_SPEC §4): chosen
 * experts identical, outputs to tolerance, with groups, shared experts, constructed ties; results
 * independent of batch order and of how tokens are split across calls (bit for bit on the CPU);
 * gradients against finite differences of the float64 loop and against the composites; checkpoint
 * names; the router staying f32 under to('bf16'); DenseMLP.
 */
import { describe, expect, it } from 'vitest';
import '@ring-linear/backend-cpu';
import {
  Parameter,
  SwiGLUMLP,
  cast,
  dispose,
  gather,
  mul,
  sum,
  tensor,
  valueAndGrad,
  withKernelsDisabled,
} from '@ring-linear/core';
import { DenseMLP, MOE_OPS, MoE, moeConfigFromHf, type MoEConfig } from '../src/index.js';
import { SEED, expectClose, expectSameBits, read, refMoE, refSwiGLU, rngFor, t, type RefExpert, type RefMoEParams, type Rng } from './helpers.js';

/** A module with N(0, scale^2) weights and a small random expert bias, from the test rng. */
function makeMoE(rng: Rng, config: MoEConfig, scale = 0.4): MoE {
  const m = new MoE(config);
  for (const [, p] of m.namedParameters()) p.assign(t(rng.array(p.size, scale), p.shape));
  m.gate.expert_bias.assign(t(rng.array(config.numExperts, 0.03), [config.numExperts]));
  return m;
}

function expertOf(m: SwiGLUMLP): RefExpert {
  return { gate: read(m.gate_proj.weight), up: read(m.up_proj.weight), down: read(m.down_proj.weight) };
}

function refParams(m: MoE): RefMoEParams {
  const c = m.config;
  return {
    hidden: c.hiddenSize,
    experts: c.numExperts,
    inter: c.moeIntermediateSize,
    sharedInter: c.moeSharedExpertIntermediateSize * c.numSharedExperts,
    gateWeight: read(m.gate.weight),
    bias: read(m.gate.expert_bias),
    routed: [...m.experts].map(expertOf),
    shared: m.shared_experts ? expertOf(m.shared_experts) : null,
    router: { topK: c.numExpertsPerTok, nGroup: c.nGroup, topkGroup: c.topkGroup, scoreFunction: c.scoreFunction, normTopkProb: c.normTopkProb, routedScalingFactor: c.routedScalingFactor },
  };
}

const CONFIGS: { c: MoEConfig; n: number; desc: string }[] = [
  {
    c: { hiddenSize: 8, numExperts: 16, numExpertsPerTok: 4, moeIntermediateSize: 5, numSharedExperts: 1, nGroup: 4, topkGroup: 2, routedScalingFactor: 2.5 },
    n: 13,
    desc: 'Ring-style: sigmoid, groups 4 keep 2, one shared expert, scale 2.5',
  },
  { c: { hiddenSize: 6, numExperts: 5, numExpertsPerTok: 2, moeIntermediateSize: 3 }, n: 7, desc: 'no groups, no shared expert' },
  {
    c: { hiddenSize: 5, numExperts: 6, numExpertsPerTok: 3, moeIntermediateSize: 4, numSharedExperts: 2, moeSharedExpertIntermediateSize: 3, scoreFunction: 'softmax', normTopkProb: false },
    n: 9,
    desc: 'softmax, unnormalized, two shared experts of 3',
  },
  { c: { hiddenSize: 4, numExperts: 3, numExpertsPerTok: 1, moeIntermediateSize: 2, numSharedExperts: 1 }, n: 1, desc: 'one token, top-1' },
];

describe(`MoE vs the naive float64 per-token loop (seed ${SEED})`, () => {
  for (const { c, n, desc } of CONFIGS) {
    it(desc, () => {
      const rng = rngFor(`moe ${desc}`);
      const m = makeMoE(rng, c);
      const xs = rng.array(n * c.hiddenSize);
      const x = t(xs, [n, c.hiddenSize]);
      const y = m.forward(x);
      const want = refMoE(xs, n, refParams(m));
      const r = m.gate.route(x);
      expect(Array.from(r.indices.dataSync())).toEqual(want.indices);
      const counts = new Array(c.numExperts).fill(0);
      for (const e of want.indices) counts[e]++;
      expect(Array.from(m.lastLoad!.dataSync())).toEqual(counts);
      expectClose(read(y), want.y, 1e-5, 'output');
      // The composites of every MoE op compute the same.
      const yc = withKernelsDisabled(MOE_OPS, () => m.forward(x));
      expectClose(read(yc), want.y, 1e-5, 'output (composites)');
      dispose([x, y, yc, r]);
      m.dispose();
    });
  }

  it('x [B, T, H] keeps its shape; constructed exact ties (experts and groups) resolve to the lower index end to end', () => {
    const rng = rngFor('moe ties');
    for (const [nGroup, topkGroup, topK] of [[4, 1, 2], [1, 1, 1], [1, 1, 2]] as const) {
      const c: MoEConfig = { hiddenSize: 4, numExperts: 8, numExpertsPerTok: topK, moeIntermediateSize: 3, nGroup, topkGroup };
      const m = makeMoE(rng, c);
      // Router rows 2 and 6 are [1, 0, 0, 0], rows 3 and 7 are [0, 1, 0, 0]; the others are small.
      // Tokens lean on dims 0 and 1, so experts 2 and 6 tie at the top, 3 and 7 next (and with
      // groups of 2, groups 1 and 3 tie). Their FFNs differ: the output shows which twin won.
      const gw = rng.array(8 * 4, 0.1);
      for (const [row, dim] of [[2, 0], [6, 0], [3, 1], [7, 1]] as const) for (let d = 0; d < 4; d++) gw[row * 4 + d] = d === dim ? 1 : 0;
      m.gate.weight.assign(t(gw, [8, 4]));
      m.gate.expert_bias.assign(t(new Float64Array(8), [8]));
      const xs = new Float64Array(2 * 3 * 4);
      for (let i = 0; i < 6; i++) {
        xs[i * 4] = Math.fround(3 + 0.2 * rng.next());
        xs[i * 4 + 1] = Math.fround(2 + 0.2 * rng.next());
        xs[i * 4 + 2] = Math.fround(0.5 * rng.normal());
        xs[i * 4 + 3] = Math.fround(0.5 * rng.normal());
      }
      const x = t(xs, [2, 3, 4]);
      const y = m.forward(x);
      expect(y.shape).toEqual([2, 3, 4]);
      const want = refMoE(xs, 6, refParams(m));
      const r = m.gate.route(t(xs, [6, 4]));
      const got = Array.from(r.indices.dataSync());
      expect(got).toEqual(want.indices);
      // top-1: expert 2 (not its twin 6); top-2 without groups: 2, then its tied twin 6 (before
      // 3); top-2 within one group: group 1 (not its tied twin group 3): experts 2 and 3.
      const perToken = nGroup > 1 ? [2, 3] : topK === 1 ? [2] : [2, 6];
      expect(got).toEqual(new Array(6).fill(perToken).flat());
      expectClose(read(y), want.y, 1e-5, `output (nGroup ${nGroup}, topK ${topK})`);
      dispose([x, y, r]);
      m.dispose();
    }
  });
});

describe('MoE determinism', () => {
  for (const dtype of ['f32', 'bf16'] as const) {
    it(`${dtype}: a token's output does not depend on batch order or on how tokens are split across calls (bit for bit)`, () => {
      const rng = rngFor(`moe determinism ${dtype}`);
      const c = CONFIGS[0]!.c;
      const m = makeMoE(rng, c);
      if (dtype !== 'f32') m.to(dtype);
      const n = 23;
      const x = cast(t(rng.array(n * c.hiddenSize), [n, c.hiddenSize]), dtype);
      const whole = read(m.forward(x));
      // Shuffled batch: row i of the result is token perm[i].
      const perm = rng.permutation(n);
      const shuffled = read(m.forward(gather(x, tensor(Int32Array.from(perm), [n], 'i32'))));
      for (let i = 0; i < n; i++) {
        expectSameBits(
          shuffled.subarray(i * c.hiddenSize, (i + 1) * c.hiddenSize),
          whole.subarray(perm[i]! * c.hiddenSize, (perm[i]! + 1) * c.hiddenSize),
          `shuffled row ${i}`,
        );
      }
      // Splits: 1 + 3 + 7 + 12 tokens in separate calls, and one token at a time.
      const bounds = [0, 1, 4, 11, 23];
      const parts: Float64Array[] = [];
      for (let s = 0; s + 1 < bounds.length; s++) {
        const idx = tensor(Int32Array.from({ length: bounds[s + 1]! - bounds[s]! }, (_, i) => bounds[s]! + i), [bounds[s + 1]! - bounds[s]!], 'i32');
        parts.push(read(m.forward(gather(x, idx))));
      }
      expectSameBits(Float64Array.from(parts.flatMap((p) => Array.from(p))), whole, 'split into 1, 3, 7, 12');
      for (let i = 0; i < n; i++) {
        const one = read(m.forward(gather(x, tensor(Int32Array.of(i), [1], 'i32'))));
        expectSameBits(one, whole.subarray(i * c.hiddenSize, (i + 1) * c.hiddenSize), `token ${i} alone`);
      }
      m.dispose();
    });
  }
});

describe('MoE gradients', () => {
  it('x, router weight, expert and shared weights vs finite differences of the float64 loop; kernels vs composites; the bias gets none', () => {
    const rng = rngFor('moe grad');
    const c: MoEConfig = { hiddenSize: 4, numExperts: 6, numExpertsPerTok: 2, moeIntermediateSize: 3, numSharedExperts: 1, nGroup: 3, topkGroup: 2, routedScalingFactor: 1.5 };
    const m = makeMoE(rng, c, 0.6);
    const n = 5;
    const xs = rng.array(n * c.hiddenSize);
    const rs = rng.array(n * c.hiddenSize);
    const x = t(xs, [n, c.hiddenSize]);
    const r = t(rs, [n, c.hiddenSize]);
    const base = refParams(m);
    const gwHost = Float64Array.from(base.gateWeight);
    // The experts that the tokens use, plus one that none uses (its gradient must be 0).
    const routed = refMoE(xs, n, base).indices;
    const used = routed[0]!;
    const unused = [...Array(c.numExperts).keys()].find((e) => !routed.includes(e));
    const eU = m.experts.at(used);
    const watched: Parameter[] = [m.gate.weight, m.gate.expert_bias, eU.gate_proj.weight, eU.up_proj.weight, eU.down_proj.weight, m.shared_experts!.down_proj.weight];
    if (unused !== undefined) watched.push(m.experts.at(unused).up_proj.weight);
    const f = () => sum(mul(m.forward(x), r));
    const g = valueAndGrad(f, [x, ...watched]);
    const gc = withKernelsDisabled(MOE_OPS, () => valueAndGrad(f, [x, ...watched]));
    // float64 loss with host arrays that finite differences perturb in place
    const expU = { gate: Float64Array.from(base.routed[used]!.gate), up: Float64Array.from(base.routed[used]!.up), down: Float64Array.from(base.routed[used]!.down) };
    const sharedDown = Float64Array.from(base.shared!.down);
    const params = (): RefMoEParams => ({
      ...base,
      gateWeight: gwHost,
      routed: base.routed.map((e, i) => (i === used ? expU : e)),
      shared: { ...base.shared!, down: sharedDown },
    });
    const loss = () => refMoE(xs, n, params()).y.reduce((a, v, i) => a + v * rs[i]!, 0);
    const fd = (arr: Float64Array) =>
      Array.from(arr, (v, i) => {
        const hh = 1e-6 * Math.max(1, Math.abs(v));
        arr[i] = v + hh;
        const p = loss();
        arr[i] = v - hh;
        const q = loss();
        arr[i] = v;
        return (p - q) / (2 * hh);
      });
    const [dx, dgw, dbias, dg, du, dd, dsd, dunused] = g.grads.map(read);
    expectClose(dx!, fd(xs), 5e-4, 'dx', 1e-6);
    expectClose(dgw!, fd(gwHost), 5e-4, 'd gate.weight', 1e-6);
    expect(Array.from(dbias!)).toEqual(new Array(c.numExperts).fill(0));
    expectClose(dg!, fd(expU.gate), 5e-4, `d experts.${used}.gate_proj`, 1e-6);
    expectClose(du!, fd(expU.up), 5e-4, `d experts.${used}.up_proj`, 1e-6);
    expectClose(dd!, fd(expU.down), 5e-4, `d experts.${used}.down_proj`, 1e-6);
    expectClose(dsd!, fd(sharedDown), 5e-4, 'd shared_experts.down_proj', 1e-6);
    if (dunused) expect(Array.from(dunused)).toEqual(new Array(dunused.length).fill(0));
    g.grads.forEach((gr, i) => expectClose(read(gc.grads[i]!), read(gr), 1e-5, `grad ${i} composite vs kernel`, 1e-7));
    dispose([g, gc, x, r]);
    m.dispose();
  });
});

describe('MoE parameters and dtypes', () => {
  it('state dict names follow the checkpoint layout (MODEL_SPEC §6) and load by name', () => {
    const c: MoEConfig = { hiddenSize: 4, numExperts: 3, numExpertsPerTok: 2, moeIntermediateSize: 2, numSharedExperts: 1 };
    const m = new MoE(c);
    const names = [...m.stateDict('model.layers.1.mlp').keys()];
    expect(names).toEqual([
      'model.layers.1.mlp.gate.weight',
      'model.layers.1.mlp.gate.expert_bias',
      ...[0, 1, 2].flatMap((e) => ['gate_proj', 'up_proj', 'down_proj'].map((p) => `model.layers.1.mlp.experts.${e}.${p}.weight`)),
      'model.layers.1.mlp.shared_experts.gate_proj.weight',
      'model.layers.1.mlp.shared_experts.up_proj.weight',
      'model.layers.1.mlp.shared_experts.down_proj.weight',
    ]);
    const sd = m.stateDict();
    expect(sd.get('gate.weight')!.shape).toEqual([3, 4]);
    expect(sd.get('gate.expert_bias')!.shape).toEqual([3]);
    expect(sd.get('experts.2.down_proj.weight')!.shape).toEqual([4, 2]);
    expect(m.gate.expert_bias.requiresGrad).toBe(false);
    // A second module loads the first's values by name and computes the same.
    const rng = rngFor('moe load');
    for (const [, p] of m.namedParameters()) p.assign(t(rng.array(p.size), p.shape));
    const m2 = new MoE(c);
    const snapshot = m.stateDict();
    m2.loadStateDict(snapshot);
    const x = t(rng.array(5 * 4), [5, 4]);
    expectSameBits(read(m2.forward(x)), read(m.forward(x)), 'loaded module');
    dispose([sd, snapshot, x]);
    m.dispose();
    m2.dispose();
  });

  it("to('bf16') casts the experts and keeps the router f32; bf16 tokens route as their f32 values", () => {
    const rng = rngFor('moe bf16');
    const c = CONFIGS[0]!.c;
    const m = makeMoE(rng, c).to('bf16');
    expect(m.gate.weight.dtype).toBe('f32');
    expect(m.gate.expert_bias.dtype).toBe('f32');
    expect(m.experts.at(3).up_proj.weight.dtype).toBe('bf16');
    expect(m.shared_experts!.gate_proj.weight.dtype).toBe('bf16');
    const n = 9;
    const x = cast(t(rng.array(n * c.hiddenSize), [n, c.hiddenSize]), 'bf16');
    const y = m.forward(x);
    expect(y.dtype).toBe('bf16');
    const want = refMoE(read(x), n, refParams(m)); // the bf16 values, exactly
    expect(Array.from(m.gate.route(x).indices.dataSync())).toEqual(want.indices);
    // bf16 rounds the intermediates (g, u, their product, expert outputs) and the result.
    expectClose(read(y), want.y, 3e-2, 'bf16 output');
    dispose([x, y]);
    m.dispose();
  });

  it('DenseMLP is the SwiGLU of the dense layer with the same names', () => {
    const rng = rngFor('dense');
    const mlp = new DenseMLP(6, 10);
    expect([...mlp.stateDict().keys()]).toEqual(['gate_proj.weight', 'up_proj.weight', 'down_proj.weight']);
    const xs = rng.array(3 * 6);
    const y = read(mlp.forward(t(xs, [3, 6])));
    const ex = expertOf(mlp);
    const want = [0, 1, 2].flatMap((i) => Array.from(refSwiGLU(xs.subarray(i * 6, i * 6 + 6), ex, 10)));
    expectClose(y, want, 1e-5, 'dense');
    mlp.dispose();
  });

  it('moeConfigFromHf reads the Hugging Face names (Ring-mini values)', () => {
    const cfg = moeConfigFromHf({
      hidden_size: 2048, num_experts: 256, num_experts_per_tok: 8, moe_intermediate_size: 512, num_shared_experts: 1,
      n_group: 8, topk_group: 4, routed_scaling_factor: 2.5, norm_topk_prob: true, score_function: 'sigmoid', vocab_size: 157184,
    });
    expect(cfg).toMatchObject({
      hiddenSize: 2048, numExperts: 256, numExpertsPerTok: 8, moeIntermediateSize: 512, numSharedExperts: 1,
      moeSharedExpertIntermediateSize: 512, nGroup: 8, topkGroup: 4, routedScalingFactor: 2.5, normTopkProb: true, scoreFunction: 'sigmoid',
    });
  });
});
