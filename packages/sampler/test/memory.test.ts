/**
 * Memory is flat across thousands of decode steps (live tensor and byte counters of core): the
 * linear layers' state is constant, the softmax layer's KV buffer grows only by its doubling rule,
 * and nothing else accumulates. A very small hybrid model keeps the loop fast.
 */
import { describe, expect, it } from 'vitest';
import { memory } from '@ring-linear/core';
import { Sampler } from '../src/index.js';
import { microModel, newSeed } from './helpers.js';

const STEPS = 2000;

describe('flat memory', () => {
  const seed = newSeed('memory');
  // Layer 0 linear, layer 1 softmax, both with dense MLPs (the MoE's memory has its own test in
  // @ring-linear/moe; here the point is the attention caches).
  const model = microModel(seed, { max_position_embeddings: 4096, first_k_dense_replace: 2 });
  const c = model.config;
  const kvPerToken = 2 * c.num_key_value_heads * c.head_dim * 4; // the one softmax layer, f32 k and v
  const capacityFor = (tokens: number) => {
    let cap = 64;
    while (cap < tokens) cap *= 2;
    return cap;
  };

  it(`${STEPS} decode steps: constant live tensors; bytes = constant + the KV buffer's doubling capacity`, async () => {
    const prompt = [1, 2, 3, 4, 5];
    const sampler = new Sampler(model);
    // Warm-up: the model's own lazily made tensors (e.g. the MoE's most recent load) exist after it.
    await sampler.generate(prompt, { maxTokens: 3 });
    const before = memory();
    let tensors0 = -1;
    let rest0 = -1;
    let n = 0;
    const t0 = performance.now();
    for await (const ev of sampler.stream(prompt, { maxTokens: STEPS, ignoreEos: true, temperature: 1, seed })) {
      n++;
      if (ev.finishReason) break;
      // At event i the next step is enqueued: prompt + i + 1 tokens are in the caches.
      const m = memory();
      const rest = m.bytes - capacityFor(prompt.length + ev.index + 1) * kvPerToken;
      if (ev.index === 1) {
        tensors0 = m.tensors;
        rest0 = rest;
      } else if (ev.index > 1) {
        if (m.tensors !== tensors0) expect.fail(`step ${ev.index}: ${m.tensors} live tensors, ${tensors0} at step 1`);
        if (rest !== rest0) expect.fail(`step ${ev.index}: ${rest} bytes besides the KV buffer, ${rest0} at step 1`);
      }
    }
    const ms = performance.now() - t0;
    console.log(`[memory] ${n} tokens in ${(ms / 1000).toFixed(1)} s: ${tensors0} live tensors and ${rest0} bytes besides the KV buffer at every step`);
    expect(n).toBe(STEPS);
    // Everything freed at the end.
    expect(memory().tensors).toBe(before.tensors);
    expect(memory().bytes).toBe(before.bytes);
  });
});
