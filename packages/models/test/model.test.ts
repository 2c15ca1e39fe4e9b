import '@ring-linear/backend-cpu';
import { describe, expect, it } from 'vitest';
import { DTypeError, ShapeError, dispose, init, memory, scalar, tensor, type Tensor } from '@ring-linear/core';
import {
  RingLinearForCausalLM,
  configToJson,
  createConfig,
  hybridLayerTypes,
  nextTokenTargets,
  preset,
  type RingLinearConfig,
} from '../src/index.js';
import { maxAbs, maxAbsDiff, randomizeModel, rng, seedFromEnv } from './helpers.js';
import { referenceForward, referenceLoss, refSlopes, type RoutingStats } from './reference.js';

const SEED = seedFromEnv(20251022);
console.log(`model tests: seed ${SEED} (set RING_LINEAR_SEED to change)`);

/** A model built without random draws, then filled from the host RNG. */
function randomModel(config: RingLinearConfig, seed: number, dtype: 'f32' | 'bf16' = 'f32') {
  const model = init.skipInit(() => new RingLinearForCausalLM(config, { dtype }));
  const weights = randomizeModel(model, seed);
  return { model, weights };
}

function randomTokens(seed: number, n: number, vocab: number): number[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => Math.floor(r() * vocab));
}

function logitsOf(t: Tensor | null): Float32Array {
  expect(t).not.toBeNull();
  return t!.dataSync() as Float32Array;
}

function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, relTol: number, what: string): void {
  const err = maxAbsDiff(got, want);
  const scale = maxAbs(want);
  console.log(`${what}: max |diff| ${err.toExponential(2)} (scale ${scale.toFixed(3)})`);
  expect(scale).toBeGreaterThan(0.1);
  expect(err).toBeLessThan(relTol * scale);
}

describe('RingLinearForCausalLM vs a float64 reference written from MODEL_SPEC', () => {
  const config = preset('tiny');

  it('tiny preset, random weights: logits match the float64 forward (linear, softmax, dense and MoE layers)', () => {
    const { model, weights } = randomModel(config, SEED);
    const T = 13;
    const tokens = randomTokens(SEED + 1, T, config.vocab_size);
    const stats: RoutingStats = { minTopkGap: Infinity, minGroupGap: Infinity };
    const want = referenceForward(config as never, weights, tokens, stats);
    console.log(`routing: smallest top-k gap ${stats.minTopkGap.toExponential(2)}, group gap ${stats.minGroupGap.toExponential(2)}`);
    // A near tie could legitimately route differently in f32; the seed gives clear decisions.
    expect(stats.minTopkGap).toBeGreaterThan(1e-4);
    const ids = tensor(Int32Array.from(tokens), [1, T], 'i32');
    const out = model.forward(ids);
    expect(out.logits!.shape).toEqual([1, T, config.vocab_size]);
    expect(out.logits!.dtype).toBe('f32');
    expectClose(logitsOf(out.logits), want, 2e-4, 'tiny logits vs float64');
    dispose([ids, out]);
    model.dispose();
  });

  it('the loss equals the float64 cross-entropy of next-token targets', () => {
    const { model, weights } = randomModel(config, SEED + 2);
    const tokens = randomTokens(SEED + 3, 9, config.vocab_size);
    const ids = tensor(Int32Array.from(tokens), [1, 9], 'i32');
    const targets = nextTokenTargets([tokens]);
    expect(Array.from(targets.dataSync())).toEqual([...tokens.slice(1), -100]);
    const out = model.forward(ids, { targets });
    const want = referenceLoss(referenceForward(config as never, weights, tokens), config.vocab_size, [...tokens.slice(1), -100]);
    expect(out.loss!.shape).toEqual([]);
    expect(Math.abs(out.loss!.dataSync()[0]! - want)).toBeLessThan(2e-4 * Math.max(1, want));
    dispose([ids, targets, out]);
    model.dispose();
  });

  it('a custom hybrid (explicit layer_types and mlp_types, MHA softmax, no QK-norm, groups of 3) matches the reference', () => {
    const custom = createConfig({
      ...configToJson(preset('tiny')),
      num_hidden_layers: 5,
      layer_types: ['softmax', 'linear', 'linear', 'softmax', 'linear'],
      mlp_types: ['moe', 'dense', 'moe', 'dense', 'moe'],
      num_attention_heads: 3,
      num_key_value_heads: 3,
      head_dim: 24,
      hidden_size: 72,
      group_norm_size: 3,
      use_qk_norm: false,
      n_group: 2,
      topk_group: 1,
      num_experts: 6,
      num_experts_per_tok: 2,
      partial_rotary_factor: 1,
    });
    const { model, weights } = randomModel(custom, SEED + 4);
    expect(model.layerKinds.map((k) => `${k.attention}/${k.mlp}`)).toEqual([
      'softmax/moe', 'linear/dense', 'linear/moe', 'softmax/dense', 'linear/moe',
    ]);
    const tokens = randomTokens(SEED + 5, 7, custom.vocab_size);
    const want = referenceForward(custom as never, weights, tokens);
    const ids = tensor(Int32Array.from(tokens), [1, 7], 'i32');
    const out = model.forward(ids);
    expectClose(logitsOf(out.logits), want, 2e-4, 'custom hybrid logits vs float64');
    dispose([ids, out]);
    model.dispose();
  });
});

describe('training and sampling paths agree', () => {
  const config = preset('tiny');

  it('packed rows (cuSeqlens) equal the sequences run separately; last-position logits per sequence', () => {
    const { model } = randomModel(config, SEED + 10);
    const lens = [5, 1, 8];
    const seqs = lens.map((n, i) => randomTokens(SEED + 11 + i, n, config.vocab_size));
    const cu = [0, 5, 6, 14];
    const packed = tensor(Int32Array.from(seqs.flat()), [1, 14], 'i32');
    const out = model.forward(packed, { cuSeqlens: cu });
    const all = logitsOf(out.logits);
    const V = config.vocab_size;
    let off = 0;
    for (const s of seqs) {
      const ids = tensor(Int32Array.from(s), [1, s.length], 'i32');
      const single = model.forward(ids);
      expect(maxAbsDiff(all.subarray(off * V, (off + s.length) * V), logitsOf(single.logits))).toBeLessThan(1e-4);
      off += s.length;
      dispose([ids, single]);
    }
    const last = model.forward(packed, { cuSeqlens: cu, logits: 'last' });
    expect(last.logits!.shape).toEqual([1, 3, V]);
    const lv = logitsOf(last.logits);
    cu.slice(1).forEach((end, i) => expect(maxAbsDiff(lv.subarray(i * V, (i + 1) * V), all.subarray((end - 1) * V, end * V))).toBe(0));
    // Packed targets never cross a boundary.
    const targets = nextTokenTargets([seqs.flat()], { cuSeqlens: cu });
    const t = Array.from(targets.dataSync());
    expect([t[4], t[5], t[13]]).toEqual([-100, -100, -100]);
    expect(t[0]).toBe(seqs[0]![1]);
    dispose([packed, out, last, targets]);
    model.dispose();
  });

  it('prefill then decode (per-layer caches) equals the full forward, batch of 2', () => {
    const { model } = randomModel(config, SEED + 20);
    const T = 11;
    const rows = [randomTokens(SEED + 21, T, config.vocab_size), randomTokens(SEED + 22, T, config.vocab_size)];
    const ids = tensor(Int32Array.from(rows.flat()), [2, T], 'i32');
    const full = logitsOf(model.forward(ids).logits);
    const V = config.vocab_size;
    const cache = model.createCache(2, { initialCapacity: 2 });
    let before = -1;
    // Prefill 6 tokens (chunked kernels), then one token at a time (recurrent step, KV cache growth).
    const steps = [[0, 6], [6, 7], [7, 8], [8, 9], [9, 10], [10, 11]];
    for (const [t0, t1] of steps) {
      const chunk = tensor(Int32Array.from(rows.flatMap((r) => r.slice(t0, t1))), [2, t1! - t0!], 'i32');
      const out = model.forward(chunk, { cache });
      const got = logitsOf(out.logits);
      for (let b = 0; b < 2; b++) {
        for (let t = t0!; t < t1!; t++) {
          const g = got.subarray((b * (t1! - t0!) + (t - t0!)) * V, (b * (t1! - t0!) + (t - t0!) + 1) * V);
          const w = full.subarray((b * T + t) * V, (b * T + t + 1) * V);
          expect(maxAbsDiff(g, w)).toBeLessThan(1e-4);
        }
      }
      dispose([chunk, out]);
      // After the first call allocated the KV buffers, caches swap/grow in place: flat memory.
      if (before < 0) before = memory().tensors;
      expect(memory().tensors).toBe(before);
    }
    expect(cache.length).toBe(T);
    expect(cache.bytes).toBeGreaterThan(0);
    cache.dispose();
    dispose(ids);
    model.dispose();
  });

  it('bf16 parameters: residual stays f32, logits f32, close to the f32 model on the same (bf16-exact) weights', () => {
    const f32 = randomModel(config, SEED + 30);
    const bf16 = init.skipInit(() => new RingLinearForCausalLM(config, { dtype: 'bf16' }));
    // Same values: the f32 model's weights rounded to bf16 (router, final norm and lm_head stay f32).
    const w = randomizeModel(bf16, SEED + 30);
    for (const [name, p] of f32.model.namedParameters()) p.assign(tensor(Float32Array.from(w.get(name)!), p.shape, 'f32'));
    expect(bf16.lm_head.weight.dtype).toBe('f32');
    expect(bf16.model.norm.weight.dtype).toBe('f32');
    expect(bf16.model.layers.at(1).mlp.namedParameters().find(([n]) => n === 'gate.weight')![1].dtype).toBe('f32');
    expect(bf16.model.word_embeddings.weight.dtype).toBe('bf16');
    const tokens = randomTokens(SEED + 31, 8, config.vocab_size);
    const ids = tensor(Int32Array.from(tokens), [1, 8], 'i32');
    const a = logitsOf(f32.model.forward(ids).logits);
    const out = bf16.forward(ids);
    expect(out.logits!.dtype).toBe('f32');
    const b = logitsOf(out.logits);
    // bf16 activations between the blocks: a few bf16 ulps of drift, no more.
    expect(maxAbsDiff(a, b)).toBeLessThan(0.05 * maxAbs(a));
    expect(maxAbsDiff(a, b)).toBeGreaterThan(0);
    dispose([ids, out]);
    f32.model.dispose();
    bf16.dispose();
  });

  it('gradients reach every parameter through the loss; MoE load recorded and balancing runs', async () => {
    const { valueAndGrad } = await import('@ring-linear/core');
    const { model } = randomModel(config, SEED + 40);
    const tokens = randomTokens(SEED + 41, 10, config.vocab_size);
    const ids = tensor(Int32Array.from(tokens), [1, 10], 'i32');
    const targets = nextTokenTargets([tokens]);
    const params = model.parameters().filter((p) => p.requiresGrad);
    const { value, grads } = valueAndGrad(() => model.forward(ids, { targets, logits: 'none' }).loss!, params);
    expect(Number.isFinite(value.dataSync()[0]!)).toBe(true);
    const zeroGrad = params.filter((p, i) => maxAbs(grads[i]!.dataSync()) === 0).map((p) => model.namedParameters().find(([, q]) => q === p)![0]);
    // Only experts that no token chose may have no gradient.
    expect(zeroGrad.every((n) => /\.mlp\.experts\.\d+\./.test(n))).toBe(true);
    const loads = model.moeLoads();
    expect(loads.map((l) => l.layer)).toEqual([1, 2, 3]);
    for (const { load } of loads) expect(Array.from(load.dataSync()).reduce((a, b) => a + b, 0)).toBe(10 * config.num_experts_per_tok!);
    const stats = await model.loadStatistics();
    expect(stats).toHaveLength(3);
    const biasBefore = Array.from(model.moeLayers()[0]!.moe.gate.expert_bias.dataSync());
    model.updateExpertBias();
    const biasAfter = Array.from(model.moeLayers()[0]!.moe.gate.expert_bias.dataSync());
    expect(biasAfter).not.toEqual(biasBefore);
    dispose([ids, targets, value, grads]);
    model.dispose();
  });
});

describe('construction and errors', () => {
  it('hybridLayerTypes gives the Ring schedules; custom ratios build', () => {
    const kinds = hybridLayerTypes(20, 4);
    expect(kinds.flatMap((k, i) => (k === 'softmax' ? [i] : []))).toEqual([4, 9, 14, 19]);
    expect(hybridLayerTypes(32, 7).flatMap((k, i) => (k === 'softmax' ? [i] : []))).toEqual([7, 15, 23, 31]);
    // Trailing layers that do not fill a group are softmax (MODEL_SPEC §1).
    expect(hybridLayerTypes(5, 2)).toEqual(['linear', 'linear', 'softmax', 'softmax', 'softmax']);
    expect(hybridLayerTypes(3, 0)).toEqual(['softmax', 'softmax', 'softmax']);
    const c = createConfig({ ...configToJson(preset('tiny')), layer_types: hybridLayerTypes(4, 1) });
    const m = init.skipInit(() => new RingLinearForCausalLM(c));
    expect(m.layerKinds.map((k) => k.attention)).toEqual(['linear', 'softmax', 'linear', 'softmax']);
    m.dispose();
  });

  it('a fresh model is initialized by the Hugging Face rule (std = initializer_range) and leaks nothing when disposed', () => {
    const before = memory().tensors;
    const c = createConfig({ ...configToJson(preset('tiny')), num_hidden_layers: 2, num_experts: 4, num_experts_per_tok: 2, n_group: 2, topk_group: 1, initializer_range: 0.05 });
    const m = new RingLinearForCausalLM(c);
    const w = m.model.layers.at(0).attention.query_key_value.weight.dataSync();
    let ss = 0;
    for (const v of w) ss += v * v;
    expect(Math.sqrt(ss / w.length)).toBeCloseTo(0.05, 2);
    expect(Array.from(m.model.norm.weight.dataSync()).every((v) => v === 1)).toBe(true);
    m.dispose();
    expect(memory().tensors).toBe(before);
  });

  it('decay_convention reaches the linear layers: a_h = slopes(H)[h] * (1 - l\'/(L-1) + 1e-5) with l\' = l-1, max(0,l-1) or l', () => {
    const H = 4;
    const L = 4;
    const slopes = refSlopes(H);
    for (const [convention, idx] of [['hf', (l: number) => l - 1], ['clamped', (l: number) => Math.max(0, l - 1)], ['serving', (l: number) => l]] as const) {
      const c = createConfig({ ...configToJson(preset('tiny')), decay_convention: convention });
      const m = init.skipInit(() => new RingLinearForCausalLM(c));
      for (const l of [0, 1, 2]) {
        const att = m.model.layers.at(l).attention as unknown as { decay: Tensor };
        const got = Array.from(att.decay.dataSync());
        const want = slopes.map((s) => s * (1 - idx(l) / (L - 1) + 1e-5));
        expect(maxAbsDiff(got, want)).toBeLessThan(1e-6);
      }
      m.dispose();
    }
  });

  it('tied embeddings share one Parameter under two names', () => {
    const c = createConfig({ ...configToJson(preset('tiny')), tie_word_embeddings: true });
    const m = init.skipInit(() => new RingLinearForCausalLM(c));
    expect(m.lm_head.weight).toBe(m.model.word_embeddings.weight);
    expect(m.namedParameters().some(([n]) => n === 'lm_head.weight')).toBe(false);
    const ids = tensor(Int32Array.of(1, 2, 3), [1, 3], 'i32');
    const out = m.forward(ids);
    expect(out.logits!.shape).toEqual([1, 3, c.vocab_size]);
    dispose([ids, out]);
    m.dispose();
  });

  it('bad inputs get typed errors saying what was expected', () => {
    const m = init.skipInit(() => new RingLinearForCausalLM(preset('tiny')));
    const f = tensor([[1, 2]], [1, 2], 'f32');
    expect(() => m.forward(f)).toThrow(DTypeError);
    const flat = tensor(Int32Array.of(1, 2), [2], 'i32');
    expect(() => m.forward(flat)).toThrow(/\[batch, time\]/);
    const ids = tensor(Int32Array.of(1, 2, 3, 4), [2, 2], 'i32');
    expect(() => m.forward(ids, { cuSeqlens: [0, 4] })).toThrow(ShapeError);
    const row = tensor(Int32Array.of(1, 2, 3, 4), [1, 4], 'i32');
    expect(() => m.forward(row, { cuSeqlens: [0, 3, 2, 4] })).toThrow(/strictly increasing/);
    expect(() => m.forward(row, { cuSeqlens: [0, 3] })).toThrow(/end at the row length 4/);
    const cache = m.createCache(2);
    expect(() => m.forward(row, { cache })).toThrow(/2 sequences/);
    expect(() => m.forward(row, { logits: 'none' })).toThrow(/needs targets/);
    const bad = tensor(Int32Array.of(1, 2), [1, 2], 'i32');
    expect(() => m.forward(row, { targets: bad })).toThrow(/shape of the input ids/);
    cache.dispose();
    dispose([f, flat, ids, row, bad, scalar(0)]);
    m.dispose();
  });

  it('fp8: the attention and dense projections run through Fp8Linear; logits stay close', async () => {
    const c = preset('tiny');
    const base = randomModel(c, SEED + 50);
    const fp8 = init.skipInit(() => new RingLinearForCausalLM(c, { fp8: true }));
    expect(fp8.fp8Layers).toContain('model.layers.0.attention.query_key_value');
    expect(fp8.fp8Layers).toContain('model.layers.0.mlp.gate_proj');
    expect(fp8.fp8Layers).not.toContain('lm_head');
    const w = base.weights;
    for (const [name, p] of fp8.namedParameters()) p.assign(tensor(Float32Array.from(w.get(name)!), p.shape, p.dtype));
    const ids = tensor(Int32Array.from(randomTokens(SEED + 51, 6, c.vocab_size)), [1, 6], 'i32');
    const { Fp8Linear } = await import('@ring-linear/fp8');
    expect(fp8.model.layers.at(0).attention.query_key_value).toBeInstanceOf(Fp8Linear);
    const a = logitsOf(base.model.forward(ids).logits);
    const b = logitsOf(fp8.forward(ids).logits);
    // E4M3 has 3 mantissa bits: logits move, but stay strongly aligned with the full-precision ones.
    let dot = 0, na = 0, nb = 0;
    for (let i = 0; i < a.length; i++) {
      dot += a[i]! * b[i]!;
      na += a[i]! ** 2;
      nb += b[i]! ** 2;
    }
    const cosine = dot / Math.sqrt(na * nb);
    console.log(`fp8 vs f32 logits: cosine ${cosine.toFixed(4)}, max |diff| ${maxAbsDiff(a, b).toFixed(3)}`);
    expect(cosine).toBeGreaterThan(0.9);
    expect(maxAbsDiff(a, b)).toBeGreaterThan(0);
    dispose(ids);
    base.model.dispose();
    fp8.dispose();
  });
});
